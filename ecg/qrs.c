/*
 * qrs.c - streaming multi-lead QRS detector.
 *
 * The design follows the classical energy/slope detectors, combined so that
 * every decision is made within a fixed look-ahead:
 *
 *  - J. Pan, W. J. Tompkins, "A real-time QRS detection algorithm", IEEE
 *    Trans. Biomed. Eng. 32(3):230-236, 1985: band-pass, derivative,
 *    moving-window integration, adaptive signal/noise thresholds, a 200 ms
 *    refractory period, T-wave discrimination by slope within 360 ms, and a
 *    lowered threshold when a beat is overdue (their search-back).
 *  - P. S. Hamilton, W. J. Tompkins, "Quantitative investigation of QRS
 *    detection rules using the MIT/BIH arrhythmia database", IEEE Trans.
 *    Biomed. Eng. 33(12):1157-1165, 1986, and Hamilton's OSEA: the absolute
 *    derivative as feature (linear in amplitude, so a large dynamic range
 *    survives), the threshold placed between the medians of the last eight
 *    QRS and noise peaks (robust to one huge artefact), RR from a median.
 *  - G. B. Moody, gqrs (PhysioNet WFDB): decisions taken a fixed delay after
 *    the candidate so that the best peak in a neighbourhood wins.
 *  - M. Elgendi, "Fast QRS detection with an optimized knowledge-based
 *    method", PLoS ONE 8(9):e73557, 2013: 8-20 Hz class Butterworth
 *    band-pass and window lengths set in seconds, so the detector works at
 *    any sampling frequency.
 *  - Multi-lead: each lead's feature is normalised by its own slowly
 *    decaying peak level (an automatic gain, as in Christov, "Real time
 *    electrocardiogram QRS detection using combined adaptive threshold",
 *    BioMed. Eng. OnLine 3:28, 2004, which combines the leads' slopes), and
 *    the leads are fused by a weighted geometric mean. The weights follow
 *    each lead's quality: its feature at the beats over its largest feature
 *    between beats, a signal-to-noise ratio in the sense of the multi-lead
 *    SQI-weighted detectors (e.g. Johnson et al., "Multimodal heart beat
 *    detection using signal quality indices", Physiol. Meas. 36:1665, 2015).
 *    The geometric mean needs a QRS to show in every lead that carries
 *    weight, so an electrode artefact or muscle burst in one lead does not
 *    make a beat, while a lead that goes bad loses its vote.
 *
 * Differences from the papers, and why:
 *  - Search-back is causal. Pan-Tompkins look back at 1.66 RR for a peak
 *    above half the threshold; that would report the beat more than 300 ms
 *    late. Here the threshold itself drops once a beat is overdue (to a half
 *    after one median RR, a quarter after two), which finds those beats in
 *    time.
 *  - No learning period: thresholds start from the first candidates, so a
 *    10 s resting ECG keeps its first beat. The first beat must stand out
 *    against the level floor and be sharp (steep slope for its amplitude),
 *    so the T wave of a beat cut off by the start is not taken; both demands
 *    relax each second that passes without a beat.
 *  - Lost signal: a lead that stays within flat_mv for loss_min_s (or is
 *    NaN) is dropped from the fusion; when every lead is lost, no candidates
 *    are taken and the span is reported. A returning lead restarts its
 *    filters at its new level so the step does not ring through them.
 *
 *  - One beat per refractory period, the best: an accepted beat is held
 *    until its delivery deadline (300 ms after its R peak); if by then a
 *    larger fused peak, pending or still rising, has its R within the
 *    refractory period of the held beat, it is decided against the state
 *    from before the held beat and, when taken, replaces it. This is gqrs's
 *    "the best peak in a neighbourhood wins" stretched over the whole
 *    latency budget; it stops a muscle or motion artefact just before a
 *    QRS from taking the beat's place (the QRS would otherwise fall in the
 *    artefact's refractory period).
 *
 * Latency: the gain control looks AGC_S ahead; a candidate (a local maximum
 * of the fused feature) is decided LOOKAHEAD_S after it, and its R peak is
 * searched in the RSEARCH_S before it, so a beat is decided at most
 * AGC_S + LOOKAHEAD_S + RSEARCH_S <= 0.3 s after its R peak (checked at
 * compile time below); it is then held until 0.3 s after its R peak less one
 * fusion grid step, or delivered at once when that time has passed.
 *
 * Cost: per lead and sample, a two-biquad band-pass and a one-pole
 * high-pass (direct form I, the state in registers for a chunk of frames,
 * two leads at once in the lanes of a vector), a few ring-buffer reads and
 * writes, no data-dependent branch; per fusion grid point (FUSE_HZ), a
 * division-free log2 per lead; per candidate, a few short scans. No
 * allocation after rdx_ecg_detector_new().
 *
 * The constants below are physiological or come from the papers above.
 * Where a choice between values was measured (LEVEL_TAU_S, LEVEL_FLOOR,
 * GEO_FLOOR, W_FLOOR, PREM_MIN, FIRST_SHARP, FUSE_HZ), it was judged on the gross figures over
 * all the MIT-BIH records at hand and on the noise-stress and resampled
 * copies, never on one record.
 */
#include "rdx/ecg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Feature band-pass (Hz): QRS energy lies mostly here (Pan-Tompkins 5-15,
 * Elgendi 8-20). */
#define BP_LO_HZ 5.0
#define BP_HI_HZ 15.0
/* Derivative span: a difference over 10 ms (Pan-Tompkins' 5-point derivative
 * at 200 Hz spans +-10 ms). */
#define DERIV_S 0.010
/* Moving-window integration (OSEA uses 80 ms, Pan-Tompkins 150 ms). */
#define MWI_MS 100
#define MWI_S  (MWI_MS / 1000.0)
/* Decision delay after a feature peak: a larger peak within it wins. */
#define LOOKAHEAD_MS 110
#define LOOKAHEAD_S  (LOOKAHEAD_MS / 1000.0)
/* Where the R peak is searched, before the feature peak (the integration
 * window plus the widest ventricular complexes). */
#define RSEARCH_MS (MWI_MS + 40)
#define RSEARCH_S  (RSEARCH_MS / 1000.0)
/* Look-ahead of the gain control: a feature sample is divided by the lead's
 * peak level including the AGC_S after it, so a rising edge is not clipped
 * and the peak keeps its place. */
#define AGC_MS 50
#define AGC_S  (AGC_MS / 1000.0)
/* Time constant of each lead's peak-level (gain control) decay. */
#define LEVEL_TAU_S 8.0
/* Lowest peak level (mV per DERIV_S of band-passed signal, integrated): the
 * feature of a QRS of about 0.25 mV, so that the baseline noise before the
 * first beat, or in a low-voltage lead, is not amplified into beats. */
#define LEVEL_FLOOR 0.05
/* Floor of a normalised lead feature in the geometric mean, so one lead
 * showing nothing weighs, but does not veto outright. */
#define GEO_FLOOR 0.05f
/* Every lead that is not lost keeps this much of a vote in the fusion on
 * top of its per-beat quality weight (0 to 1): that weight can fall to 0
 * and is only raised again at beats found without the lead, so without a
 * floor a lead judged poor could never carry a beat when the lead judged
 * good loses its QRS. Chosen on the gross figures (0.1 to 0.3 measure
 * alike; 0.05 loses beats, 0.5 and above let noise through). */
#define W_FLOOR 0.2f
/* Absolute refractory period (Pan-Tompkins, AAMI EC57 practice): 200 ms. */
#define REFRACTORY_S 0.200
/* Beats closer than this to the last need half its slope (Pan-Tompkins). */
#define TWAVE_S  0.360
#define TW_RATIO 0.5f
/* Threshold position between the noise and QRS medians (Hamilton 0.3125,
 * Pan-Tompkins 0.25). */
#define THR_COEF 0.3125f
/* A beat earlier than PREMATURE x median RR must reach PREM_MIN of the
 * level: ectopic beats are tall, mid-diastolic noise usually is not. */
#define PREMATURE 0.5
#define PREM_MIN  0.6f
/* The first beat (no history yet) must reach FIRST_MIN of the level and
 * have a QRS-like sharpness; both demands halve every second without one,
 * at most FIRST_HALVINGS times (a lead of baseline wander and hum alone must
 * not end up producing beats). */
#define FIRST_MIN      0.6f
#define FIRST_SHARP    0.25f
#define FIRST_HALVINGS 2
/* Localisation signal: the raw lead with its baseline removed by a one-pole
 * 0.5 Hz high-pass (no delay at QRS frequencies to compensate). */
#define LOC_HP_HZ 0.5
/* Longest inter-beat span kept for the lead-quality estimate (s). */
#define QWIN_S 2.0
/* RR assumed before two beats are seen (75 bpm). */
#define RR_DEFAULT_S 0.8
/* The fused feature is smooth (integrated over MWI_S, band-limited to
 * BP_HI_HZ), so the fusion and the candidate search run at about FUSE_HZ:
 * on every dec-th frame, dec = floor(fs / FUSE_HZ), at fixed positions from
 * the start of the stream. The R peak is still placed on the full-rate
 * signal. */
#define FUSE_HZ 180.0
/* Frames per lead pass in push(): the rings keep CHUNK frames of headroom
 * beyond what the decisions look back at, so chunking changes nothing. */
#define CHUNK 256
/* History length of the QRS, noise, RR and quality medians (Hamilton: 8). */
#define NHIST 8

_Static_assert(NHIST == 8, "hist_sorted_median's network sorts 8 values");
_Static_assert(AGC_MS + LOOKAHEAD_MS + RSEARCH_MS <= 300 /* RDX_ECG_QRS_MAX_LATENCY_S */,
               "the detector's look-ahead exceeds the promised latency");

struct biquad {
    double b0, b1, b2, a1, a2;
};

struct hist {
    float v[NHIST];
    int n;
    int next;
    float med; /* the median of v[0..n-1] (0 while empty), kept by hist_push() */
};

struct lead {
    double x1, x2, u1, u2, y1, y2; /* band-pass (direct form I) state */
    double lhp_x, lhp_y;           /* localisation high-pass: last input and output */
    float *bp;                     /* band-passed signal (ring) */
    float *ad;                     /* |derivative| (ring) */
    float *f;                      /* integrated feature of this lead (ring) */
    float *loc;                    /* localisation signal (ring) */
    float *nf;                     /* normalised feature, as fused (ring) */
    float *sn;                     /* normalised |derivative| (ring) */
    struct hist q;                 /* lead quality: beat peak over inter-beat maximum */
    float w;                       /* fusion weight */
    float env;                     /* recent peak of nf (fast signal-quality envelope) */
    float we;                      /* w times the envelope index, at the last grid point */
    double mwi;                    /* running sum of ad over MWI window */
    double level;                  /* peak level (gain control) */
    float last_valid;
    float anchor;
    int64_t run_start;
    int lost;
    int seen;
};

/* What decide() changes, saved and restored around a replacement. */
struct snap {
    struct hist qrs, noise, rr;
    int have_last;
    int64_t last_r;
    float last_slope;
    struct hist *q; /* per lead */
    float *w;       /* per lead */
};

struct rdx_ecg_detector {
    rdx_ecg_detector_config cfg;
    double fs;
    size_t nl;
    size_t ring; /* power of two */
    size_t mask;
    size_t dk; /* derivative span, samples */
    size_t w;  /* MWI window, samples */
    float inv_w;
    int64_t look; /* look-ahead, samples */
    int64_t agc;
    int64_t dec; /* the fusion and candidate search run on every dec-th frame */
    int64_t rsearch;
    int64_t refractory;
    int64_t twave;
    int64_t loss_min;
    double level_decay; /* per-sample decay of the peak level */
    float env_decay;    /* per-grid-point decay of each lead's envelope */
    struct biquad hp, lp;
    double loc_a; /* one-pole high-pass coefficient of the localisation signal */
    struct lead *leads;
    float *ssum;        /* fused slope (ring) */
    uint8_t *lostk;     /* per lead and frame of the chunk in push(): the lead is lost */
    uint8_t *rst;       /* ... the lead's filters restart at this frame */
    float *xs;          /* ... the lead's input, missing samples bridged */
    uint8_t *rst_any;   /* per lead: a restart somewhere in the chunk */
    uint32_t lost_mask; /* the leads lost at the frame being decided */
    uint32_t all_mask;  /* every lead's bit */
    int64_t n;          /* frames pushed */
    int flushed;

    /* Candidate tracking. */
    float fm1, fm2;
    int64_t t1;   /* grid point of fm1 */
    int64_t nfed; /* grid points fed since the start or the last loss */
    int has_pend;
    int64_t pend_t;
    float pend_v;
    int has_decl;
    int64_t decl_t;
    float decl_v;

    /* Decision state. */
    struct hist qrs, noise, rr;
    int have_last;
    int64_t start; /* first sample since the start or the last loss */
    int64_t last_r;
    float last_slope;

    /* The last accepted beat, held until its delivery deadline in case a
     * larger candidate within the refractory period replaces it, with the
     * decision state from before it (pre) for that replacement. */
    int has_tent;
    rdx_ecg_beat tent;
    float tent_v;
    int64_t tent_deadline; /* grid point at which it is delivered */
    int64_t tent_wait;     /* deadline minus R peak */
    int accepted;          /* set by decide() when it takes a beat */
    struct snap *pre, *post;

    /* Signal loss. */
    int all_lost;
    int64_t loss_start;
};

/* ---- Filters ------------------------------------------------------------ */

/* Butterworth (Q = 1/sqrt 2) low- or high-pass, bilinear with prewarping. */
static struct biquad bq_design(double fc, double fs, int high)
{
    double w0 = 2.0 * 3.14159265358979323846 * fc / fs;
    double c = cos(w0);
    double alpha = sin(w0) / (2.0 * 0.70710678118654752440);
    double a0 = 1.0 + alpha;
    struct biquad q;
    if (high) {
        q.b0 = (1.0 + c) / 2.0 / a0;
        q.b1 = -(1.0 + c) / a0;
    } else {
        q.b0 = (1.0 - c) / 2.0 / a0;
        q.b1 = (1.0 - c) / a0;
    }
    q.b2 = q.b0;
    q.a1 = -2.0 * c / a0;
    q.a2 = (1.0 - alpha) / a0;
    return q;
}

/* ---- Small medians ------------------------------------------------------ */

static float hist_sorted_median(const struct hist *h)
{
    float t[NHIST];
    int n = h->n;
    if (n == 0) {
        return 0.0f;
    }
    memcpy(t, h->v, (size_t)n * sizeof t[0]);
    if (n == 8) {
        /* Full history: Batcher's network of 19 compare-exchanges, min and
         * max without a branch (an insertion sort's jumps on these values
         * are mispredicted). */
        float t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4], t5 = t[5], t6 = t[6],
              t7 = t[7];
#define CE(a, b)                                                                                   \
    do {                                                                                           \
        float lo_ = a < b ? a : b, hi_ = a < b ? b : a;                                            \
        a = lo_;                                                                                   \
        b = hi_;                                                                                   \
    } while (0)
        CE(t0, t1);
        CE(t2, t3);
        CE(t4, t5);
        CE(t6, t7);
        CE(t0, t2);
        CE(t1, t3);
        CE(t4, t6);
        CE(t5, t7);
        CE(t1, t2);
        CE(t5, t6);
        CE(t0, t4);
        CE(t3, t7);
        CE(t1, t5);
        CE(t2, t6);
        CE(t1, t4);
        CE(t3, t6);
        CE(t2, t4);
        CE(t3, t5);
        CE(t3, t4);
#undef CE
        (void)t0, (void)t1, (void)t2, (void)t5, (void)t6, (void)t7;
        return 0.5f * (t3 + t4);
    }
    for (int i = 1; i < n; i++) {
        float k = t[i];
        int j = i - 1;
        while (j >= 0 && t[j] > k) {
            t[j + 1] = t[j];
            j--;
        }
        t[j + 1] = k;
    }
    return (n & 1) ? t[n / 2] : 0.5f * (t[n / 2 - 1] + t[n / 2]);
}

/* The median is read at every candidate and changes only here, so it is
 * computed here, once per value. */
static void hist_push(struct hist *h, float v)
{
    h->v[h->next] = v;
    h->next = (h->next + 1) % NHIST;
    if (h->n < NHIST) {
        h->n++;
    }
    h->med = hist_sorted_median(h);
}

static float hist_median(const struct hist *h)
{
    return h->med;
}

/* ---- Construction ------------------------------------------------------- */

void rdx_ecg_detector_config_init(rdx_ecg_detector_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->fs_hz = 360.0;
    cfg->nleads = 1;
    cfg->loss_min_s = 1.0;
    cfg->flat_mv = 0.01;
}

void rdx_ecg_detector_free(rdx_ecg_detector *d)
{
    if (d == NULL) {
        return;
    }
    if (d->leads != NULL) {
        for (size_t i = 0; i < d->nl; i++) {
            free(d->leads[i].bp);
            free(d->leads[i].ad);
            free(d->leads[i].f);
            free(d->leads[i].loc);
            free(d->leads[i].nf);
            free(d->leads[i].sn);
        }
    }
    free(d->leads);
    free(d->ssum);
    free(d->lostk);
    free(d->rst);
    free(d->xs);
    free(d->rst_any);
    for (int k = 0; k < 2; k++) {
        struct snap *sp = k == 0 ? d->pre : d->post;
        if (sp != NULL) {
            free(sp->q);
            free(sp->w);
            free(sp);
        }
    }
    free(d);
}

static int64_t secs(double s, double fs)
{
    return (int64_t)llround(s * fs);
}

rdx_status rdx_ecg_detector_new(const rdx_ecg_detector_config *cfg, rdx_ecg_detector **out,
                                rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "detector: NULL output handle");
    }
    *out = NULL;
    if (cfg == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "detector: NULL configuration");
    }
    if (!(cfg->fs_hz >= RDX_ECG_QRS_MIN_FS && cfg->fs_hz <= RDX_ECG_QRS_MAX_FS)) {
        return rdx_error_set(err, RDX_EINVAL, "detector: sampling frequency %g Hz outside %g-%g",
                             cfg->fs_hz, RDX_ECG_QRS_MIN_FS, RDX_ECG_QRS_MAX_FS);
    }
    if (cfg->nleads < 1 || cfg->nleads > RDX_ECG_QRS_MAX_LEADS) {
        return rdx_error_set(err, RDX_EINVAL, "detector: %zu leads (1-%d allowed)", cfg->nleads,
                             RDX_ECG_QRS_MAX_LEADS);
    }
    if (!(cfg->loss_min_s > 0.0 && cfg->loss_min_s < 3600.0) ||
        !(cfg->flat_mv >= 0.0 && cfg->flat_mv < 1000.0)) {
        return rdx_error_set(err, RDX_EINVAL, "detector: bad loss_min_s or flat_mv");
    }
    rdx_ecg_detector *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "detector: out of memory");
    }
    double fs = cfg->fs_hz;
    d->cfg = *cfg;
    d->fs = fs;
    d->nl = cfg->nleads;
    d->dk = (size_t)secs(DERIV_S, fs);
    if (d->dk < 1) {
        d->dk = 1;
    }
    d->w = (size_t)secs(MWI_S, fs);
    d->inv_w = 1.0f / (float)d->w;
    d->look = secs(LOOKAHEAD_S, fs);
    d->rsearch = secs(RSEARCH_S, fs);
    d->agc = secs(AGC_S, fs);
    d->dec = (int64_t)(fs / FUSE_HZ);
    d->dec = d->dec < 1 ? 1 : d->dec;
    d->refractory = secs(REFRACTORY_S, fs);
    d->twave = secs(TWAVE_S, fs);
    d->loss_min = secs(cfg->loss_min_s, fs);
    if (d->loss_min < 1) {
        d->loss_min = 1;
    }
    /* Group delay of the 2nd-order Butterworth low-pass: sqrt(2) / wc. */
    d->level_decay = exp(-1.0 / (LEVEL_TAU_S * fs));
    d->env_decay = (float)exp(-(double)d->dec / (QWIN_S * fs));
    size_t need = (size_t)secs(QWIN_S + 0.5, fs) + CHUNK;
    d->ring = 16;
    while (d->ring < need) {
        d->ring <<= 1;
    }
    d->mask = d->ring - 1;
    d->hp = bq_design(BP_LO_HZ, fs, 1);
    d->lp = bq_design(BP_HI_HZ, fs, 0);
    d->loc_a = 1.0 / (1.0 + 2.0 * 3.14159265358979323846 * LOC_HP_HZ / fs);

    d->leads = rdx_callocarray(d->nl, sizeof *d->leads);
    d->ssum = rdx_callocarray(d->ring, sizeof *d->ssum);
    d->lostk = rdx_callocarray(d->nl * CHUNK, sizeof *d->lostk);
    d->rst = rdx_callocarray(d->nl * CHUNK, sizeof *d->rst);
    d->xs = rdx_callocarray(d->nl * CHUNK, sizeof *d->xs);
    d->rst_any = rdx_callocarray(d->nl, sizeof *d->rst_any);
    d->pre = calloc(1, sizeof *d->pre);
    d->post = calloc(1, sizeof *d->post);
    if (d->pre == NULL || d->post == NULL) {
        goto oom;
    }
    d->pre->q = rdx_callocarray(d->nl, sizeof *d->pre->q);
    d->pre->w = rdx_callocarray(d->nl, sizeof *d->pre->w);
    d->post->q = rdx_callocarray(d->nl, sizeof *d->post->q);
    d->post->w = rdx_callocarray(d->nl, sizeof *d->post->w);
    if (d->pre->q == NULL || d->pre->w == NULL || d->post->q == NULL || d->post->w == NULL) {
        goto oom;
    }
    /* A beat is delivered at most RDX_ECG_QRS_MAX_LATENCY_S after its R
     * peak: the grid point (AGC_S in the past) of its deadline is one grid
     * step short of that. */
    d->tent_wait = secs(0.300, fs) - d->agc - d->dec;
    d->all_mask = (uint32_t)((1ull << d->nl) - 1u);
    if (d->leads == NULL || d->ssum == NULL || d->lostk == NULL || d->rst == NULL ||
        d->xs == NULL || d->rst_any == NULL) {
        goto oom;
    }
    for (size_t i = 0; i < d->nl; i++) {
        struct lead *l = &d->leads[i];
        l->bp = rdx_callocarray(d->ring, sizeof *l->bp);
        l->ad = rdx_callocarray(d->ring, sizeof *l->ad);
        l->f = rdx_callocarray(d->ring, sizeof *l->f);
        l->loc = rdx_callocarray(d->ring, sizeof *l->loc);
        l->nf = rdx_callocarray(d->ring, sizeof *l->nf);
        l->sn = rdx_callocarray(d->ring, sizeof *l->sn);
        l->w = 1.0f;
        l->level = LEVEL_FLOOR;
        if (l->bp == NULL || l->ad == NULL || l->f == NULL || l->loc == NULL || l->nf == NULL ||
            l->sn == NULL) {
            goto oom;
        }
    }
    *out = d;
    return RDX_OK;
oom:
    rdx_ecg_detector_free(d);
    return rdx_error_set(err, RDX_ENOMEM, "detector: out of memory");
}

int64_t rdx_ecg_detector_samples(const rdx_ecg_detector *d)
{
    return d == NULL ? 0 : d->n;
}

/* ---- Decisions ---------------------------------------------------------- */

/* Place the R peak of the candidate whose feature peaks at t. */
static int64_t clamp_past(const rdx_ecg_detector *d, int64_t k)
{
    int64_t oldest = d->n + CHUNK - (int64_t)d->ring;
    if (k < oldest) {
        k = oldest;
    }
    return k < 0 ? 0 : k;
}

/*
 * Place the R peak of the candidate whose fused feature peaks at t: the
 * largest baseline-free deflection in the RSEARCH_S before t, on the lead of
 * best quality (the largest weight; among equals, the largest feature).
 */
static int64_t locate(const rdx_ecg_detector *d, int64_t t, int *lead_out, float *amp_out)
{
    size_t best_lead = 0;
    float best_w = -1.0f;
    float best_f = -1.0f;
    for (size_t i = 0; i < d->nl; i++) {
        const struct lead *l = &d->leads[i];
        if (d->lost_mask & (1u << i)) {
            continue;
        }
        float f = l->nf[(size_t)t & d->mask];
        float lw = d->nl > 1 ? l->we : l->w;
        if (lw > best_w || (lw == best_w && f > best_f)) {
            best_w = lw;
            best_f = f;
            best_lead = i;
        }
    }
    const struct lead *l = &d->leads[best_lead];
    int64_t rlo = clamp_past(d, t - d->rsearch);
    int64_t rhi = t;
    int64_t at = t;
    float amax = -1.0f;
    float amp = 0.0f;
    for (int64_t k = rlo; k <= rhi; k++) {
        float v = l->loc[(size_t)k & d->mask];
        float a = fabsf(v);
        if (a > amax) {
            amax = a;
            at = k;
            amp = v;
        }
    }
    if (at < 0) {
        at = 0;
    }
    *lead_out = (int)best_lead;
    *amp_out = amp;
    return at;
}

static float slope_at(const rdx_ecg_detector *d, int64_t t)
{
    int64_t lo = t - (int64_t)d->w;
    if (lo < 0) {
        lo = 0;
    }
    float m = 0.0f;
    for (int64_t k = t; k >= lo; k -= d->dec) {
        float v = d->ssum[(size_t)k & d->mask];
        if (v > m) {
            m = v;
        }
    }
    return m;
}

static float ring_max(const float *ring, size_t mask, int64_t lo, int64_t hi)
{
    float m = 0.0f;
    for (int64_t k = lo; k <= hi; k++) {
        float v = ring[(size_t)k & mask];
        m = v > m ? v : m;
    }
    return m;
}

/* Largest of ring[lo..hi] over the fusion grid (multiples of dec). */
static float ring_max_grid(const rdx_ecg_detector *d, const float *ring, int64_t lo, int64_t hi)
{
    lo = lo < 0 ? 0 : lo;
    int64_t r = lo % d->dec;
    lo += r == 0 ? 0 : d->dec - r;
    float m = 0.0f;
    for (int64_t k = lo; k <= hi; k += d->dec) {
        float v = ring[(size_t)k & d->mask];
        m = v > m ? v : m;
    }
    return m;
}

/*
 * After a beat: each lead's quality is its feature at this beat over its
 * largest feature between the last beat and this one (T waves, noise,
 * artefacts). The fusion weights follow the median quality, so a lead full of
 * artefacts or tall T waves stops voting and a clean lead carries the sum.
 */
static void update_quality(rdx_ecg_detector *d, int64_t t, int64_t r)
{
    int64_t lo = d->last_r + d->refractory;
    int64_t hi = r - secs(0.1, d->fs);
    int64_t oldest = d->n + CHUNK - (int64_t)d->ring;
    lo = lo > oldest ? lo : oldest;
    if (hi - lo < secs(0.1, d->fs)) {
        return;
    }
    int64_t half = secs(0.05, d->fs);
    float amax = 0.0f;
    for (size_t i = 0; i < d->nl; i++) {
        struct lead *l = &d->leads[i];
        if (d->lost_mask & (1u << i)) {
            continue;
        }
        float pk = ring_max_grid(d, l->nf, t - half, t + half < d->n ? t + half : d->n - 1);
        float between = ring_max_grid(d, l->nf, lo, hi);
        float q = pk / (between > 0.02f ? between : 0.02f);
        hist_push(&l->q, q < 20.0f ? q : 20.0f);
    }
    for (size_t i = 0; i < d->nl; i++) {
        struct lead *l = &d->leads[i];
        float a = hist_median(&l->q) - 1.0f;
        l->w = a > 0.0f ? a : 0.0f;
        amax = l->w > amax ? l->w : amax;
    }
    for (size_t i = 0; i < d->nl; i++) {
        struct lead *l = &d->leads[i];
        l->w = amax > 0.0f ? (l->w / amax) * (l->w / amax) : 1.0f;
    }
}

/*
 * Steepest band-passed slope (per DERIV_S) over the R amplitude: about 0.5
 * for a QRS complex, 0.3 for a wide ventricular one, below 0.2 for a T wave.
 * It does not depend on the amplitude or the sampling frequency.
 */
static float sharpness(const rdx_ecg_detector *d, int64_t t, int lead, float amp)
{
    const struct lead *l = &d->leads[lead];
    float sm = ring_max(l->ad, d->mask, clamp_past(d, t - d->rsearch), t);
    return sm / (fabsf(amp) + 1e-6f);
}

static void snap_save(const rdx_ecg_detector *d, struct snap *sp)
{
    sp->qrs = d->qrs;
    sp->noise = d->noise;
    sp->rr = d->rr;
    sp->have_last = d->have_last;
    sp->last_r = d->last_r;
    sp->last_slope = d->last_slope;
    for (size_t i = 0; i < d->nl; i++) {
        sp->q[i] = d->leads[i].q;
        sp->w[i] = d->leads[i].w;
    }
}

static void snap_restore(rdx_ecg_detector *d, const struct snap *sp)
{
    d->qrs = sp->qrs;
    d->noise = sp->noise;
    d->rr = sp->rr;
    d->have_last = sp->have_last;
    d->last_r = sp->last_r;
    d->last_slope = sp->last_slope;
    for (size_t i = 0; i < d->nl; i++) {
        d->leads[i].q = sp->q[i];
        d->leads[i].w = sp->w[i];
    }
}

static void deliver(rdx_ecg_detector *d)
{
    d->has_tent = 0;
    if (d->cfg.beat_fn != NULL) {
        d->cfg.beat_fn(d->cfg.user, &d->tent);
    }
}

static void decide(rdx_ecg_detector *d, int64_t t, float v)
{
    int lead;
    float amp;
    int64_t r = locate(d, t, &lead, &amp);
    int64_t delta = 0;
    if (d->have_last) {
        delta = r - d->last_r;
        if (delta < d->refractory) {
            return;
        }
    }
    float ql = hist_median(&d->qrs);
    float nl = hist_median(&d->noise);
    float thr = nl + (float)THR_COEF * (ql - nl);
    float first_sharp = FIRST_SHARP;
    double rr = d->rr.n > 0 ? (double)hist_median(&d->rr) : RR_DEFAULT_S * d->fs;
    double k = d->have_last ? (double)delta / rr : 0.0;
    if (d->have_last) {
        /* Overdue beat: the causal form of Pan-Tompkins' search-back. */
        float f = k >= 2.0 ? 0.25f : (k >= 1.0 ? 0.5f : 1.0f);
        thr = nl + f * (thr - nl);
    }
    if (d->qrs.n == 0) {
        /* No beat yet: a candidate must stand out against the level floor
         * (a QRS of about 0.3 mV); for an ECG smaller than that, the demand
         * halves every second without a beat. */
        int64_t halvings = (t - d->start) / secs(1.0, d->fs);
        thr = FIRST_MIN;
        first_sharp = FIRST_SHARP;
        for (int64_t h = 0; h < halvings && h < FIRST_HALVINGS; h++) {
            thr *= 0.5f;
            first_sharp *= 0.5f;
        }
    } else if (d->have_last && k < PREMATURE) {
        thr = thr > PREM_MIN ? thr : PREM_MIN;
    }
    if (d->qrs.n == 0 && v >= thr && sharpness(d, t, lead, amp) < first_sharp) {
        /* The first beat has no slope to be compared with: a broad wave
         * (the T wave of a beat cut off by the start) is not taken. */
        return;
    }
    if (v >= thr) {
        float s = slope_at(d, t);
        if (d->have_last && delta < d->twave && s < TW_RATIO * d->last_slope) {
            hist_push(&d->noise, v);
            return;
        }
        if (d->has_tent) {
            deliver(d); /* (not reached: a beat within its wait is refractory) */
        }
        snap_save(d, d->pre);
        hist_push(&d->qrs, v);
        if (d->have_last) {
            hist_push(&d->rr, (float)delta);
            update_quality(d, t, r);
        }
        d->have_last = 1;
        d->last_r = r;
        d->last_slope = s;
        d->has_tent = 1;
        d->tent = (rdx_ecg_beat){.sample = r, .lead = lead, .amp_mv = amp};
        d->tent_v = v;
        d->tent_deadline = r + d->tent_wait;
        d->accepted = 1;
    } else {
        hist_push(&d->noise, v);
    }
}

/* Feed the fused feature at sample n (already stored) to the peak finder. */
/* The fused feature from the value the candidates are found on. */
static float fused_value(const rdx_ecg_detector *d, float g)
{
    return d->nl > 1 ? exp2f(g) : g;
}

/*
 * The held beat's deadline: a QRS cannot follow another within the
 * refractory period, so when a larger candidate (gqrs's rule, the best peak
 * in a neighbourhood wins) is pending whose R peak falls within it, that
 * candidate is decided now, against the state from before the held beat;
 * if it is taken it replaces the held beat (an artefact just before a QRS
 * no longer hides the QRS). Otherwise the held beat is delivered.
 */
static void resolve(rdx_ecg_detector *d)
{
    /* The rival: the pending candidate, or else a rise of the fused feature
     * under way at the deadline (its peak is still to come). */
    int64_t ct = -1;
    float cv = 0.0f;
    if (d->has_pend && fused_value(d, d->pend_v) > d->tent_v) {
        ct = d->pend_t;
        cv = d->pend_v;
    } else if (d->nfed >= 2 && d->fm1 > d->fm2 && fused_value(d, d->fm1) > d->tent_v) {
        ct = d->t1;
        cv = d->fm1;
    }
    if (ct >= 0) {
        int lead;
        float amp;
        int64_t r2 = locate(d, ct, &lead, &amp);
        if (r2 - d->tent.sample < d->refractory) {
            snap_save(d, d->post);
            snap_restore(d, d->pre);
            rdx_ecg_beat held = d->tent;
            d->has_tent = 0;
            d->has_pend = 0;
            d->has_decl = 1;
            d->decl_t = ct;
            d->decl_v = cv;
            d->accepted = 0;
            decide(d, ct, fused_value(d, cv));
            if (d->accepted) {
                return; /* the new beat is held in its turn */
            }
            snap_restore(d, d->post);
            d->tent = held;
        }
    }
    deliver(d);
}

static void candidates(rdx_ecg_detector *d, int64_t n, float f)
{
    /* A local maximum at the previous grid point (a plateau counts once, at
     * its start). */
    if (d->nfed >= 2 && d->fm1 > d->fm2 && d->fm1 >= f) {
        int64_t t = d->t1;
        float v = d->fm1;
        if (d->has_pend) {
            if (v >= d->pend_v) {
                d->pend_t = t;
                d->pend_v = v;
            }
        } else if (!(d->has_decl && t - d->decl_t < d->look && v <= d->decl_v)) {
            d->has_pend = 1;
            d->pend_t = t;
            d->pend_v = v;
        }
    }
    d->fm2 = d->fm1;
    d->fm1 = f;
    d->t1 = n;
    d->nfed++;
    if (d->has_tent && n >= d->tent_deadline) {
        resolve(d);
    }
    if (d->has_pend && n - d->pend_t >= d->look) {
        d->has_pend = 0;
        d->has_decl = 1;
        d->decl_t = d->pend_t;
        d->decl_v = d->pend_v;
        decide(d, d->pend_t, fused_value(d, d->pend_v));
        if (d->has_tent && n >= d->tent_deadline) {
            resolve(d); /* taken at its deadline already (an R far back) */
        }
    }
}

/*
 * Base-2 logarithm for finite x > 0, to within 0.005: the exponent from the
 * bits plus a quadratic through the mantissa's end points. It is continuous
 * and strictly increasing, which is what the candidate search needs (the
 * fused feature is taken as 2^mean of these, so it is within 0.4 % of the
 * true geometric mean), has no division, and gives the same bits everywhere.
 */
static inline float fast_log2(float x)
{
    uint32_t i;
    memcpy(&i, &x, sizeof i);
    float e = (float)((int)((i >> 23) & 0xffu) - 127);
    i = (i & 0x7fffffu) | 0x3f800000u;
    float u;
    memcpy(&u, &i, sizeof u);
    u -= 1.0f;
    return e + u * (1.3465736f - 0.3465736f * u);
}

/*
 * Fuse the leads at sample t (AGC_S in the past): each lead's feature is
 * divided by its peak level as of now, which includes what follows t, so a
 * rising edge is never clipped and the fused peak keeps its place. The
 * candidates are found on the logarithm of the weighted geometric mean (the
 * same maxima); the mean itself is taken only at a candidate.
 *
 * The weight of a lead is its per-beat quality (update_quality()) plus
 * W_FLOOR, times a fast signal-quality index: its envelope (the recent peak of its
 * normalised feature, decaying over QWIN_S, the longest inter-beat span)
 * over the largest envelope of the leads. A lead whose QRS fades without
 * the lead going flat keeps a high gain level for LEVEL_TAU_S, so its
 * feature sits at the floor and, in a geometric mean, would veto the beats
 * the other leads show; its envelope falls within a beat or two and takes
 * its vote away before the per-beat weights, which need beats to update,
 * could (the SQI-weighted fusion of Li, Mark & Clifford, "Robust heart rate
 * estimation from multiple asynchronous noisy sources using signal quality
 * indices and a Kalman filter", Physiol. Meas. 29:15-32, 2008).
 */
static void feed(rdx_ecg_detector *d, int64_t t)
{
    size_t at = (size_t)t & d->mask;
    float gsum, ssum;
    if (d->nl == 1) {
        gsum = d->leads[0].nf[at];
        ssum = d->leads[0].sn[at];
    } else {
        const float decay = d->env_decay;
        float emax = 0.0f;
        for (size_t i = 0; i < d->nl; i++) {
            struct lead *l = &d->leads[i];
            float nf = l->nf[at];
            float e = l->env * decay;
            l->env = nf > e ? nf : e;
            if (!(d->lost_mask & (1u << i))) {
                emax = l->env > emax ? l->env : emax;
            }
        }
        float inv_emax = emax > 0.0f ? 1.0f / emax : 0.0f;
        float wsum = 0.0f;
        gsum = 0.0f;
        ssum = 0.0f;
        for (size_t i = 0; i < d->nl; i++) {
            struct lead *l = &d->leads[i];
            if (d->lost_mask & (1u << i)) {
                l->we = 0.0f;
                continue;
            }
            float we = (l->w + W_FLOOR) * (emax > 0.0f ? l->env * inv_emax : 1.0f);
            float nf = l->nf[at];
            l->we = we;
            wsum += we;
            gsum += we * fast_log2(nf > GEO_FLOOR ? nf : GEO_FLOOR);
            ssum += we * l->sn[at];
        }
        float inv_wsum = wsum > 0.0f ? 1.0f / wsum : 0.0f;
        gsum *= inv_wsum;
        ssum *= inv_wsum;
    }
    d->ssum[at] = ssum;
    candidates(d, t, gsum);
}

/* Every lead is lost from frame n: the last of them has been flat (or
 * missing) for exactly loss_min frames, and the others for longer. */
static void loss_begin(rdx_ecg_detector *d, int64_t n)
{
    int64_t start = n - d->loss_min + 1;
    if (d->has_tent) {
        deliver(d);
    }
    d->all_lost = 1;
    d->loss_start = start;
    d->has_pend = 0;
    d->has_decl = 0;
    d->have_last = 0;
    d->fm1 = d->fm2 = 0.0f;
    d->nfed = 0;
}

static void loss_end(rdx_ecg_detector *d, int64_t end)
{
    d->all_lost = 0;
    d->start = end;
    if (d->cfg.loss_fn != NULL) {
        d->cfg.loss_fn(d->cfg.user, d->loss_start, end);
    }
}

/* Branch-free selects, c ? a : b with c 0 or 1 (the compiler turns the
 * plain conditional into a jump, mispredicted on every small wiggle of the
 * signal around the flat-line threshold). */
static inline float sel_f(int c, float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    uint32_t r = ub ^ ((ua ^ ub) & (0u - (uint32_t)c));
    float f;
    memcpy(&f, &r, sizeof f);
    return f;
}

static inline int64_t sel_i(int c, int64_t a, int64_t b)
{
    return b ^ ((a ^ b) & -(int64_t)c);
}

/*
 * One lead through frames n0 .. n0 + m - 1 (of the interleaved block x): the
 * flat/missing check, the feature filters and rings, and the normalised
 * feature of frame n - AGC_S by the level as of frame n. The state lives in
 * locals for the whole pass, which is what makes the loop fast; nothing here
 * depends on another lead, so the result is the same for any chunking.
 */
static int lead_prep(rdx_ecg_detector *d, size_t li, const float *x, size_t m, int64_t n0)
{
    struct lead *l = &d->leads[li];
    const size_t nl = d->nl, mask = d->mask;
    float *xs = d->xs + li * CHUNK;
    uint8_t *lostk = d->lostk + li * CHUNK;
    uint8_t *rst = d->rst + li * CHUNK;
    int any_lost;

    if (!l->seen) {
        /* The first sample: as if the signal had been constant forever, so
         * the filters start without a transient. */
        float v = isfinite(x[li]) ? x[li] : 0.0f;
        l->seen = 1;
        l->last_valid = l->anchor = v;
        l->run_start = n0;
        l->x1 = l->x2 = l->lhp_x = (double)v;
    }

    /* 1a. The usual case: a lead that is not lost and stays so through the
     * chunk, every sample finite. The loop below does 1. for it with less
     * bookkeeping (no restarts, no bridging, no per-frame loss flags); when
     * the chunk turns out otherwise, 1. does it again from the same state. */
    if (!l->lost) {
        const float flat = (float)d->cfg.flat_mv;
        const int64_t lm1 = d->loss_min - 1;
        const double a = d->loc_a;
        double px = l->lhp_x, py = l->lhp_y;
        float *loc = l->loc;
        float anchor = l->anchor;
        int64_t lost_at = l->run_start + lm1;
        int ok = 1, hit = 0;
        for (size_t k = 0; k < m; k++) {
            const int64_t n = n0 + (int64_t)k;
            float v = x[k * nl + li];
            ok &= isfinite(v);
            int moved = fabsf(v - anchor) > flat;
            anchor = sel_f(moved, v, anchor);
            lost_at = sel_i(moved, n + lm1, lost_at);
            hit |= n >= lost_at;
            py = a * (py + (double)v - px);
            px = (double)v;
            loc[(size_t)n & mask] = (float)py;
            xs[k] = v;
        }
        if (ok && !hit) {
            if (m > 0) {
                l->last_valid = xs[m - 1];
            }
            l->anchor = anchor;
            l->run_start = lost_at - lm1;
            l->lhp_x = px;
            l->lhp_y = py;
            memset(lostk, 0, m);
            d->rst_any[li] = 0;
            return 0;
        }
    }

    /* 1. Flat line and missing samples, written without branches on the
     * data (a branch would be mispredicted on every small wiggle; only the
     * rare changes of state branch), and the localisation signal: a one-pole
     * high-pass takes the baseline out and leaves the QRS untouched. */
    {
        const float flat = (float)d->cfg.flat_mv;
        const int64_t loss_min = d->loss_min;
        const double a = d->loc_a;
        double px = l->lhp_x, py = l->lhp_y;
        float *loc = l->loc;
        float anchor = l->anchor, last = l->last_valid;
        int64_t run_start = l->run_start;
        int64_t lost_at = run_start + loss_min - 1; /* flat since run_start */
        int lost = l->lost;
        int anyl = lost, anyr = 0;
        for (size_t k = 0; k < m; k++) {
            const int64_t n = n0 + (int64_t)k;
            float v = x[k * nl + li];
            int valid = isfinite(v);
            v = sel_f(valid, v, last);
            last = v;
            int moved = valid & (fabsf(v - anchor) > flat);
            anchor = sel_f(moved, v, anchor);
            run_start = sel_i(moved, n, run_start);
            lost_at = sel_i(moved, n + loss_min - 1, lost_at);
            int restart = lost & moved;
            if (restart) {
                lost = 0; /* back from a flat or missing span */
                px = (double)v;
                py = 0.0;
            } else if (!lost && n >= lost_at) {
                lost = 1;
            }
            py = a * (py + (double)v - px);
            px = (double)v;
            loc[(size_t)n & mask] = (float)py;
            xs[k] = v;
            lostk[k] = (uint8_t)lost;
            anyl |= lost;
            rst[k] = (uint8_t)restart;
            anyr |= restart;
        }
        any_lost = anyl;
        d->rst_any[li] = (uint8_t)anyr;
        l->anchor = anchor;
        l->last_valid = last;
        l->run_start = run_start;
        l->lost = lost;
        l->lhp_x = px;
        l->lhp_y = py;
    }

    return any_lost;
}

static void lead_feature(rdx_ecg_detector *d, size_t li, size_t m, int64_t n0)
{
    struct lead *l = &d->leads[li];
    const size_t mask = d->mask;
    const float *xs = d->xs + li * CHUNK;
    const uint8_t *rst = d->rst + li * CHUNK;
    const int anyr = d->rst_any[li];

    /* 2. Feature: Butterworth high-pass then low-pass (direct form I, using
     * b1 = -2 b0 for the high-pass, b1 = 2 b0 for the low-pass, b2 = b0),
     * |derivative| over DERIV_S, moving-window integration; and in the same
     * loop 3. the gain control: level = max(f, max(level * decay,
     * LEVEL_FLOOR)), kept as 1/level, and the frame AGC_S back normalised by
     * the level as of now. Before AGC_S frames this writes ring slots the
     * stream has not reached yet (feed() never reads them), which saves a
     * branch. Only the fusion grid's frames are normalised: the rest is never
     * read; ph counts down to the next grid frame without a division. */
    {
        const int64_t dk = (int64_t)d->dk, w = (int64_t)d->w;
        const float inv_w = d->inv_w;
        const double hc = d->hp.b0, ha1 = d->hp.a1, ha2 = d->hp.a2;
        const double lc = d->lp.b0, la1 = d->lp.a1, la2 = d->lp.a2;
        double x1 = l->x1, x2 = l->x2, u1 = l->u1, u2 = l->u2, y1 = l->y1, y2 = l->y2;
        double mwi = l->mwi;
        float *bp = l->bp, *adr = l->ad, *fr = l->f;
        float *nfr = l->nf, *sn = l->sn;
        const int64_t agc = d->agc, dec = d->dec;
        const double decay = d->level_decay;
        double lev = l->level;
        int64_t ph = (n0 - agc) % dec;
        ph = ph < 0 ? -ph : (ph == 0 ? 0 : dec - ph);
        for (size_t k = 0; k < m; k++) {
            const int64_t n = n0 + (int64_t)k;
            const size_t at = (size_t)n & mask;
            double xv = (double)xs[k];
            if (anyr && rst[k]) {
                /* Restart at the new level so the step does not ring. */
                x1 = x2 = xv;
                u1 = u2 = y1 = y2 = 0.0;
            }
            double u = hc * (xv - 2.0 * x1 + x2) - ha1 * u1 - ha2 * u2;
            double y = lc * (u + 2.0 * u1 + u2) - la1 * y1 - la2 * y2;
            x2 = x1;
            x1 = xv;
            u2 = u1;
            u1 = u;
            y2 = y1;
            y1 = y;
            float yb = (float)y;
            float ad = fabsf(yb - bp[(size_t)(n - dk) & mask]);
            bp[at] = yb;
            mwi += (double)ad - (double)adr[(size_t)(n - w) & mask];
            adr[at] = ad;
            float fv = (float)mwi * inv_w;
            fv = fv > 0.0f ? fv : 0.0f;
            fr[at] = fv;
            double f = (double)fv;
            lev *= decay;
            lev = lev > LEVEL_FLOOR ? lev : LEVEL_FLOOR;
            lev = f > lev ? f : lev;
            if (ph == 0) {
                size_t ta = (size_t)(n - agc) & mask;
                float inv = (float)(1.0 / lev);
                nfr[ta] = fr[ta] * inv;
                sn[ta] = adr[ta] * inv;
                ph = dec;
            }
            ph--;
        }
        l->x1 = x1;
        l->x2 = x2;
        l->u1 = u1;
        l->u2 = u2;
        l->y1 = y1;
        l->y2 = y2;
        l->mwi = mwi;
        l->level = lev;
    }
}

/*
 * Step 1a of lead_prep() for leads li and li + 1 in one loop: the two leads'
 * localisation high-passes are independent chains of dependent arithmetic,
 * and interleaved they overlap instead of running one after the other. Same
 * operations, same results. Returns 1 when both leads took the usual path;
 * 0 when either needs the general one (nothing is committed then).
 */
static int pair_prep_fast(rdx_ecg_detector *d, size_t li, const float *x, size_t m, int64_t n0)
{
    struct lead *la = &d->leads[li], *lb = &d->leads[li + 1];
    if (la->lost || lb->lost || !la->seen || !lb->seen) {
        return 0;
    }
    const size_t nl = d->nl, mask = d->mask;
    const float flat = (float)d->cfg.flat_mv;
    const int64_t lm1 = d->loss_min - 1;
    const double a = d->loc_a;
    float *xa = d->xs + li * CHUNK, *xb = xa + CHUNK;
    double pxa = la->lhp_x, pya = la->lhp_y, pxb = lb->lhp_x, pyb = lb->lhp_y;
    float *loca = la->loc, *locb = lb->loc;
    float anca = la->anchor, ancb = lb->anchor;
    int64_t lata = la->run_start + lm1, latb = lb->run_start + lm1;
    int ok = 1, hit = 0;
    for (size_t k = 0; k < m; k++) {
        const int64_t n = n0 + (int64_t)k;
        const size_t at = (size_t)n & mask;
        float va = x[k * nl + li], vb = x[k * nl + li + 1];
        ok &= isfinite(va) & isfinite(vb);
        int ma = fabsf(va - anca) > flat, mb = fabsf(vb - ancb) > flat;
        anca = sel_f(ma, va, anca);
        ancb = sel_f(mb, vb, ancb);
        lata = sel_i(ma, n + lm1, lata);
        latb = sel_i(mb, n + lm1, latb);
        hit |= (n >= lata) | (n >= latb);
        pya = a * (pya + (double)va - pxa);
        pyb = a * (pyb + (double)vb - pxb);
        pxa = (double)va;
        pxb = (double)vb;
        loca[at] = (float)pya;
        locb[at] = (float)pyb;
        xa[k] = va;
        xb[k] = vb;
    }
    if (!ok || hit) {
        return 0;
    }
    if (m > 0) {
        la->last_valid = xa[m - 1];
        lb->last_valid = xb[m - 1];
    }
    la->anchor = anca;
    lb->anchor = ancb;
    la->run_start = lata - lm1;
    lb->run_start = latb - lm1;
    la->lhp_x = pxa;
    la->lhp_y = pya;
    lb->lhp_x = pxb;
    lb->lhp_y = pyb;
    memset(d->lostk + li * CHUNK, 0, 2 * CHUNK);
    d->rst_any[li] = d->rst_any[li + 1] = 0;
    return 1;
}

/*
 * lead_feature() for leads li and li + 1 at once, the two leads in the two
 * lanes of a vector: the same operations in the same order on each lane, so
 * the results are bit for bit those of lead_feature() (no fused multiply-add
 * is formed from vector operations without -ffp-contract), at about half the
 * arithmetic instructions. The rare per-lane events (a filter restart, a
 * rising level) are handled lane by lane.
 */
typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2l __attribute__((vector_size(16)));

static void pair_feature(rdx_ecg_detector *d, size_t li, size_t m, int64_t n0)
{
    struct lead *la = &d->leads[li], *lb = &d->leads[li + 1];
    const size_t mask = d->mask;
    const float *xa = d->xs + li * CHUNK, *xb = xa + CHUNK;
    const uint8_t *ra = d->rst + li * CHUNK, *rb = ra + CHUNK;
    const int anyr = d->rst_any[li] | d->rst_any[li + 1];
    const int64_t dk = (int64_t)d->dk, w = (int64_t)d->w;
    const float inv_w = d->inv_w;
    const v2d hc = {d->hp.b0, d->hp.b0}, ha1 = {d->hp.a1, d->hp.a1}, ha2 = {d->hp.a2, d->hp.a2};
    const v2d lc = {d->lp.b0, d->lp.b0}, la1 = {d->lp.a1, d->lp.a1}, la2 = {d->lp.a2, d->lp.a2};
    const v2d two = {2.0, 2.0};
    v2d x1 = {la->x1, lb->x1}, x2 = {la->x2, lb->x2};
    v2d u1 = {la->u1, lb->u1}, u2 = {la->u2, lb->u2};
    v2d y1 = {la->y1, lb->y1}, y2 = {la->y2, lb->y2};
    v2d mwi = {la->mwi, lb->mwi};
    float *bpa = la->bp, *bpb = lb->bp, *ada = la->ad, *adb = lb->ad, *fa = la->f, *fb = lb->f;
    float *nfa = la->nf, *nfb = lb->nf, *sna = la->sn, *snb = lb->sn;
    const int64_t agc = d->agc, dec = d->dec;
    const v2d decay = {d->level_decay, d->level_decay};
    const v2d floor_ = {LEVEL_FLOOR, LEVEL_FLOOR};
    const v2d one = {1.0, 1.0};
    v2d lev = {la->level, lb->level};
    int64_t ph = (n0 - agc) % dec;
    ph = ph < 0 ? -ph : (ph == 0 ? 0 : dec - ph);
    for (size_t k = 0; k < m; k++) {
        const int64_t n = n0 + (int64_t)k;
        const size_t at = (size_t)n & mask;
        const size_t ad_old = (size_t)(n - dk) & mask, w_old = (size_t)(n - w) & mask;
        v2d xv = {(double)xa[k], (double)xb[k]};
        if (anyr && (ra[k] | rb[k])) {
            /* Restart a lane at its new level so the step does not ring. */
            for (int q = 0; q < 2; q++) {
                if ((q == 0 ? ra[k] : rb[k]) != 0) {
                    x1[q] = x2[q] = xv[q];
                    u1[q] = u2[q] = y1[q] = y2[q] = 0.0;
                }
            }
        }
        v2d u = hc * (xv - two * x1 + x2) - ha1 * u1 - ha2 * u2;
        v2d y = lc * (u + two * u1 + u2) - la1 * y1 - la2 * y2;
        x2 = x1;
        x1 = xv;
        u2 = u1;
        u1 = u;
        y2 = y1;
        y1 = y;
        float yba = (float)y[0], ybb = (float)y[1];
        float ad0 = fabsf(yba - bpa[ad_old]), ad1 = fabsf(ybb - bpb[ad_old]);
        bpa[at] = yba;
        bpb[at] = ybb;
        v2d adv = {(double)ad0, (double)ad1};
        v2d oldv = {(double)ada[w_old], (double)adb[w_old]};
        mwi += adv - oldv;
        ada[at] = ad0;
        adb[at] = ad1;
        float f0 = (float)mwi[0] * inv_w, f1 = (float)mwi[1] * inv_w;
        f0 = f0 > 0.0f ? f0 : 0.0f;
        f1 = f1 > 0.0f ? f1 : 0.0f;
        fa[at] = f0;
        fb[at] = f1;
        v2d f = {(double)f0, (double)f1};
        /* level = max(f, max(level * decay, LEVEL_FLOOR)), as masks (a
         * branch on a rising QRS edge would be mispredicted). */
        lev *= decay;
        v2l above = lev > floor_;
        lev = (v2d)(((v2l)lev & above) | ((v2l)floor_ & ~above));
        v2l rise = f > lev;
        lev = (v2d)(((v2l)f & rise) | ((v2l)lev & ~rise));
        if (ph == 0) {
            size_t ta = (size_t)(n - agc) & mask;
            v2d inv = one / lev;
            nfa[ta] = fa[ta] * (float)inv[0];
            nfb[ta] = fb[ta] * (float)inv[1];
            sna[ta] = ada[ta] * (float)inv[0];
            snb[ta] = adb[ta] * (float)inv[1];
            ph = dec;
        }
        ph--;
    }
    la->x1 = x1[0], lb->x1 = x1[1];
    la->x2 = x2[0], lb->x2 = x2[1];
    la->u1 = u1[0], lb->u1 = u1[1];
    la->u2 = u2[0], lb->u2 = u2[1];
    la->y1 = y1[0], lb->y1 = y1[1];
    la->y2 = y2[0], lb->y2 = y2[1];
    la->mwi = mwi[0], lb->mwi = mwi[1];
    la->level = lev[0], lb->level = lev[1];
}

/* Everything after the leads for frame n: signal loss, fusion, candidates
 * and decisions. */
static void frame_step(rdx_ecg_detector *d, int64_t n, uint32_t lm)
{
    d->n = n + 1;
    if (lm != d->lost_mask) {
        d->lost_mask = lm;
    }
    if (lm == d->all_mask) {
        if (!d->all_lost) {
            loss_begin(d, n);
        }
        return;
    }
    if (d->all_lost) {
        loss_end(d, n);
    }
    int64_t t = n - d->agc;
    if (t >= 0 && t % d->dec == 0) {
        feed(d, t);
    }
}

rdx_status rdx_ecg_detector_push(rdx_ecg_detector *d, const float *frames, size_t nframes,
                                 rdx_error *err)
{
    if (d == NULL || (frames == NULL && nframes > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "detector: NULL argument");
    }
    if (d->flushed) {
        return rdx_error_set(err, RDX_ESTATE, "detector: push after flush");
    }
    size_t done = 0;
    while (done < nframes) {
        size_t m = nframes - done < CHUNK ? nframes - done : CHUNK;
        const float *x = frames + done * d->nl;
        int64_t n0 = d->n;
        int any_lost = 0;
        for (size_t i = 0; i < d->nl; i++) {
            if (i + 1 < d->nl && pair_prep_fast(d, i, x, m, n0)) {
                i++;
                continue;
            }
            any_lost |= lead_prep(d, i, x, m, n0);
        }
        size_t i = 0;
        for (; i + 1 < d->nl; i += 2) {
            pair_feature(d, i, m, n0);
        }
        if (i < d->nl) {
            lead_feature(d, i, m, n0);
        }
        if (!any_lost && d->lost_mask == 0 && !d->all_lost) {
            /* No lead lost anywhere in the chunk (the usual case): only the
             * fusion grid's frames have work, exactly as frame_step() would
             * do it. */
            int64_t t = n0 - d->agc;
            t = t < 0 ? 0 : t;
            int64_t r = t % d->dec;
            t += r == 0 ? 0 : d->dec - r;
            for (; t + d->agc < n0 + (int64_t)m; t += d->dec) {
                d->n = t + d->agc + 1;
                feed(d, t);
            }
            d->n = n0 + (int64_t)m;
        } else {
            for (size_t k = 0; k < m; k++) {
                uint32_t lm = 0;
                for (size_t i = 0; i < d->nl; i++) {
                    lm |= (uint32_t)d->lostk[i * CHUNK + k] << i;
                }
                frame_step(d, n0 + (int64_t)k, lm);
            }
        }
        done += m;
    }
    return RDX_OK;
}

rdx_status rdx_ecg_detector_flush(rdx_ecg_detector *d, rdx_error *err)
{
    if (d == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "detector: NULL argument");
    }
    if (d->flushed) {
        return rdx_error_set(err, RDX_ESTATE, "detector: flushed twice");
    }
    d->flushed = 1;
    if (d->all_lost) {
        loss_end(d, d->n);
        return RDX_OK;
    }
    /* The last AGC_S of features, normalised by the final levels (all of
     * them first: a decision may look a little past its candidate). */
    int64_t t0 = d->n - d->agc > 0 ? d->n - d->agc : 0;
    for (int64_t t = t0; t < d->n; t++) {
        size_t ta = (size_t)t & d->mask;
        for (size_t i = 0; i < d->nl; i++) {
            struct lead *l = &d->leads[i];
            l->nf[ta] = l->f[ta] * (float)(1.0 / l->level);
            l->sn[ta] = l->ad[ta] * (float)(1.0 / l->level);
        }
    }
    for (int64_t t = t0; t < d->n; t++) {
        if (t % d->dec == 0) {
            feed(d, t);
        }
    }
    /* The end of the stream closes a rising edge: a QRS whose R peak falls
     * in the last few samples still counts. */
    if (d->nfed >= 1) {
        candidates(d, d->t1 + d->dec, -INFINITY);
    }
    if (d->has_tent && d->has_pend) {
        resolve(d);
    }
    if (d->has_pend) {
        d->has_pend = 0;
        decide(d, d->pend_t, fused_value(d, d->pend_v));
    }
    if (d->has_tent) {
        deliver(d);
    }
    return RDX_OK;
}
