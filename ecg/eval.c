/*
 * eval.c - beat-by-beat comparison of QRS annotations as ANSI/AAMI EC57:1998
 * ("Testing and reporting performance results of cardiac rhythm and ST
 * segment measurement algorithms") prescribes it, with the rules of bxb from the
 * PhysioNet WFDB Software Package (G. B. Moody), including its 2002
 * refinement of the match criterion. The counts equal bxb's on the same
 * annotation files; that is checked against an independent scorer while
 * developing, and the unit tests pin the rules on hand-made cases.
 *
 * Each annotation set is read as a stream of beats: a current beat (T, A)
 * and the next one (T', A'). The streams advance as beats are paired:
 *   - the earlier of the two current beats is paired with the other stream's
 *     current beat when they are within the match window and no neighbour is
 *     a closer match (|T - t| < |T - t'|, or the next beats match each other
 *     better than the current one matches the next);
 *   - an unpaired reference beat is a false negative, an unpaired test beat
 *     a false positive.
 * Beats are the isqrs() codes mapped to AAMI classes (N, S, V, F, Q); the
 * flutter wave '!' maps to the non-beat class O, as in bxb. Reference VF
 * episodes ('[' .. ']') are read over: test beats inside them are not counted
 * (EC57 scores ventricular flutter by episode, not by beat). Shutdown (a NOISE
 * annotation with subtype bits 4 and 5 set, up to the next NOISE without
 * them) turns unmatched beats of the other stream into the pseudo-beat X,
 * counted in the totals as bxb does.
 */
#include "ecg_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* "No more beats": far beyond any record, yet safe to subtract from. */
#define EV_HUGE (INT64_MAX / 4)

typedef struct beats {
    const rdx_ecg_annset *set;
    size_t i;
    double tmul;      /* time rescaling of the set (1 when none) */
    int64_t match_dt; /* match window in samples */
    int is_ref;
    int64_t cur_t, next_t;              /* current and next beat times */
    char cur_c, next_c;                 /* their classes; 0 before the first beat */
    int64_t sdon, sdoff, psdon, psdoff; /* this and the previous shutdown */
    int64_t vfon, vfoff, pvfon, pvfoff; /* this and the previous VF episode */
} beats;

/* AAMI class of a beat code (bxb's amap() without the SVEB options). */
static char aami_class(int code)
{
    switch (code) {
    case RDX_ECG_ANN_NORMAL:
    case RDX_ECG_ANN_LBBB:
    case RDX_ECG_ANN_RBBB:
    case RDX_ECG_ANN_BBB:
    case RDX_ECG_ANN_NPC:
    case RDX_ECG_ANN_APC:
    case RDX_ECG_ANN_SVPB:
    case RDX_ECG_ANN_ABERR:
    case RDX_ECG_ANN_NESC:
    case RDX_ECG_ANN_AESC:
    case RDX_ECG_ANN_SVESC:
        return 'N';
    case RDX_ECG_ANN_PVC:
    case RDX_ECG_ANN_RONT:
    case RDX_ECG_ANN_VESC:
        return 'V';
    case RDX_ECG_ANN_FUSION:
        return 'F';
    case RDX_ECG_ANN_UNKNOWN:
    case RDX_ECG_ANN_PACE:
    case RDX_ECG_ANN_PFUS:
    case RDX_ECG_ANN_LEARN:
        return 'Q';
    default:
        return 'O';
    }
}

static int is_beat_class(char c)
{
    return c == 'N' || c == 'S' || c == 'V' || c == 'F' || c == 'Q';
}

/* Next annotation of the set, with its time rescaled; 0 at the end. */
static int next_ann(beats *b, rdx_ecg_ann *a)
{
    if (rdx_ecg_annset_get(b->set, b->i, a) != RDX_OK) {
        return 0;
    }
    b->i++;
    if (b->tmul != 1.0) {
        a->sample = (int64_t)((double)a->sample * b->tmul + 0.5);
    }
    return 1;
}

static void beats_init(beats *b, const rdx_ecg_annset *set, double fs, int64_t match_dt, int is_ref)
{
    memset(b, 0, sizeof *b);
    b->set = set;
    b->tmul = 1.0;
    double afreq = rdx_ecg_annset_time_resolution(set);
    if (afreq > 0.0 && fabs(afreq - fs) > 1e-9) {
        b->tmul = fs / afreq;
    }
    b->match_dt = match_dt;
    b->is_ref = is_ref;
    b->sdon = b->sdoff = b->psdon = b->psdoff = -1;
    b->vfon = b->vfoff = b->pvfon = b->pvfoff = -1;
}

/* Make the next beat current and read the one after it (bxb's getref() and
 * gettest()), noting VF and shutdown episodes on the way. */
static void beats_advance(beats *b)
{
    rdx_ecg_ann a, e;
    b->cur_t = b->next_t;
    b->cur_c = b->next_c;
    while (next_ann(b, &a)) {
        if (rdx_ecg_ann_isqrs(a.code)) {
            b->next_t = a.sample;
            b->next_c = aami_class(a.code);
            return;
        }
        if (a.code == RDX_ECG_ANN_NOISE && (a.subtype & 0x30) == 0x30) {
            b->psdon = b->sdon;
            b->psdoff = b->sdoff;
            b->sdon = a.sample;
            if (!next_ann(b, &e)) {
                /* The set ends in shutdown. */
                b->next_t = EV_HUGE;
                b->next_c = '*';
                if (b->is_ref) {
                    b->sdoff = EV_HUGE;
                }
                return;
            }
            if (e.code == RDX_ECG_ANN_NOISE && (e.subtype & 0x30) != 0x30) {
                b->sdoff = e.sample;
            } else {
                /* A single shutdown mark in mid-episode (AHA database
                 * style): shutdown starts a window after the last beat or VF
                 * and ends a window before the next annotation. */
                b->sdon = (b->vfoff > b->cur_t ? b->vfoff : b->cur_t) + b->match_dt;
                b->sdoff = e.sample - b->match_dt;
                if (b->sdon > b->sdoff) {
                    b->sdon = b->sdoff;
                }
                b->i--; /* read e again */
            }
        } else if (a.code == RDX_ECG_ANN_VFON) {
            b->pvfon = b->vfon;
            b->pvfoff = b->vfoff;
            b->vfon = a.sample;
            for (;;) {
                if (!next_ann(b, &e)) {
                    b->next_t = EV_HUGE;
                    b->next_c = '*';
                    return;
                }
                if (e.code == RDX_ECG_ANN_VFOFF) {
                    break;
                }
            }
            b->vfoff = e.sample;
        }
    }
    b->next_t = EV_HUGE;
    b->next_c = '*';
}

static int in_episode(int64_t t, int64_t on, int64_t off, int64_t pon, int64_t poff)
{
    return (on != -1 && on <= t && (t <= off || off == -1)) || (pon != -1 && pon <= t && t <= poff);
}

/* Pseudo-beat for an unmatched test beat at t: '*' (not counted) inside
 * reference VF, 'X' inside reference shutdown, 'O' otherwise. */
static char ref_pseudo(const beats *r, int64_t t)
{
    if (in_episode(t, r->vfon, r->vfoff, r->pvfon, r->pvfoff)) {
        return '*';
    }
    if (in_episode(t, r->sdon, r->sdoff, r->psdon, r->psdoff)) {
        return 'X';
    }
    return 'O';
}

/* Pseudo-beat for an unmatched reference beat at T (test shutdown only). */
static char test_pseudo(const beats *s, int64_t t)
{
    return in_episode(t, s->sdon, s->sdoff, s->psdon, s->psdoff) ? 'X' : 'O';
}

static void count_pair(rdx_ecg_eval_counts *c, char ref, char test, int64_t tref, int64_t ttest)
{
    if (is_beat_class(ref)) {
        if (is_beat_class(test)) {
            c->tp++;
            c->nmatched++;
            c->offset_sum += ttest - tref;
        } else if (test == 'O' || test == 'X') {
            c->fn++;
        }
    } else if (ref == 'O' || ref == 'X') {
        if (is_beat_class(test)) {
            c->fp++;
        }
    }
    /* '*' (VF, end of set) and 0 (before the first beat) are not counted. */
}

static int64_t iabs(int64_t x)
{
    return x < 0 ? -x : x;
}

rdx_status rdx_ecg_eval_compare(const rdx_ecg_annset *ref, const rdx_ecg_annset *test,
                                const rdx_ecg_eval_opts *opts, rdx_ecg_eval_counts *out,
                                rdx_error *err)
{
    if (ref == NULL || test == NULL || opts == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_eval_compare: NULL argument");
    }
    if (!(opts->fs_hz > 0.0) || opts->fs_hz > RDX_ECG_MAX_FS_HZ || !(opts->window_s >= 0.0) ||
        opts->window_s > 10.0 || opts->start_sample < 0 || opts->end_sample < -1) {
        return rdx_error_set(err, RDX_EINVAL,
                             "scoring: bad options (fs %g Hz, window %g s, start %lld, end %lld)",
                             opts->fs_hz, opts->window_s, (long long)opts->start_sample,
                             (long long)opts->end_sample);
    }
    memset(out, 0, sizeof *out);
    const double window = opts->window_s > 0.0 ? opts->window_s : 0.150;
    const int64_t dt = (int64_t)(window * opts->fs_hz + 0.5); /* as WFDB's strtim() */
    const int64_t start = opts->start_sample;
    const int64_t end = opts->end_sample;
    beats R, S;
    beats_init(&R, ref, opts->fs_hz, dt, 1);
    beats_init(&S, test, opts->fs_hz, dt, 0);

    /* The first reference beat at or after the start ... */
    do {
        beats_advance(&R);
    } while (R.cur_t < start);
    /* ... and the last test beat before it (current) and the first at or
     * after it (next). */
    do {
        beats_advance(&S);
    } while (S.next_t < start);

    if (R.cur_t - S.cur_t < iabs(R.cur_t - S.next_t) && R.cur_t - S.cur_t <= dt) {
        /* A test beat just before the start matches the first reference beat. */
        if (R.cur_c != 0 || S.cur_c != 0) {
            count_pair(out, R.cur_c, S.cur_c, R.cur_t, S.cur_t);
        }
        beats_advance(&R);
        beats_advance(&S);
    } else {
        /* A test beat within a window after the start that matches nothing
         * is dropped uncounted when the next one is the better match. */
        beats_advance(&S);
        if (S.cur_t - start <= dt && iabs(R.cur_t - S.next_t) < iabs(R.cur_t - S.cur_t)) {
            beats_advance(&S);
        }
    }

    for (;;) {
        const int64_t T = R.cur_t, Tn = R.next_t, t = S.cur_t, tn = S.next_t;
        int go;
        if (end > 0) {
            go = T <= end || t <= end;
        } else if (end == -1) {
            go = T != EV_HUGE;
        } else {
            go = T != EV_HUGE && t != EV_HUGE;
        }
        if (!go) {
            break;
        }
        if (t < T) {
            /* The test beat comes first. */
            if (T - t <= dt && (T - t < iabs(T - tn) || iabs(Tn - tn) < iabs(T - tn))) {
                count_pair(out, R.cur_c, S.cur_c, T, t);
                beats_advance(&R);
                beats_advance(&S);
            } else {
                count_pair(out, ref_pseudo(&R, t), S.cur_c, T, t);
                beats_advance(&S);
            }
        } else {
            /* The reference beat comes first (or they coincide). */
            if (t - T <= dt && (t - T < iabs(t - Tn) || iabs(tn - Tn) < iabs(t - Tn))) {
                count_pair(out, R.cur_c, S.cur_c, T, t);
                beats_advance(&S);
                beats_advance(&R);
            } else {
                count_pair(out, R.cur_c, test_pseudo(&S, T), T, t);
                beats_advance(&R);
            }
        }
    }
    return RDX_OK;
}

void rdx_ecg_eval_add(rdx_ecg_eval_counts *total, const rdx_ecg_eval_counts *c)
{
    if (total == NULL || c == NULL) {
        return;
    }
    total->tp += c->tp;
    total->fn += c->fn;
    total->fp += c->fp;
    total->nmatched += c->nmatched;
    total->offset_sum += c->offset_sum;
}

double rdx_ecg_eval_se(const rdx_ecg_eval_counts *c)
{
    uint64_t d = c ? c->tp + c->fn : 0;
    return d ? 100.0 * (double)c->tp / (double)d : NAN;
}

double rdx_ecg_eval_ppv(const rdx_ecg_eval_counts *c)
{
    uint64_t d = c ? c->tp + c->fp : 0;
    return d ? 100.0 * (double)c->tp / (double)d : NAN;
}
