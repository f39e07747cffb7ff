/*
 * ecg_detect.c - detection, conditioning and drawing verbs of `rdx ecg`:
 *   rdx ecg detect   find the QRS complexes of records, write MIT annotations,
 *                    print the rhythm summary (--json), N records at once (-j)
 *   rdx ecg filter   condition a record into a WFDB format-16 copy
 *   rdx ecg plot     draw a strip on ECG paper as SVG, with QRS marks and RR
 */
#define _XOPEN_SOURCE 700 /* realpath() */
#include "cli.h"
#include "ecg_verbs.h"
#include "rdx/ecg.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

/* Frames read and pushed per call: 16 leads x 4096 x 4 bytes = 256 KiB. */
#define BLOCK_FRAMES 4096
/* Most worker threads -j accepts. */
#define MAX_JOBS 64

static const char detect_usage[] =
    "Usage: rdx ecg detect [-o DIR] [-a ANN] [--json] [-j N] [--fs HZ] [--allow-short]\n"
    "                      [--resample HZ] RECORD...\n"
    "\n"
    "Find every QRS complex of each RECORD with rdx's streaming multi-lead\n"
    "detector and write DIR/<record>.<ANN>, a WFDB annotation file (MIT format)\n"
    "with one N annotation at each R peak, which PhysioNet's rdann and bxb read.\n"
    "\n"
    "RECORD is a WFDB header (x/100.hea), a record path (x/100) or a CSV upload\n"
    "(x/upload.csv: one column per lead, a header row of lead names; needs --fs).\n"
    "\n"
    "  -o DIR         output directory (default .)\n"
    "  -a ANN         annotator name, the file extension (default qrs)\n"
    "  --json         print per record the beat count, heart rate (mean, min,\n"
    "                 max over 8 beats), RR mean, SDNN, RMSSD, pauses over 2 s\n"
    "                 and signal-loss intervals as JSON on stdout\n"
    "  -j N           process N records at a time on N threads (default 1)\n"
    "  --fs HZ        sampling frequency of CSV records\n"
    "  --allow-short  process what there is of a signal file shorter than its\n"
    "                 header says, instead of failing\n"
    "  --resample HZ  run the detector on a copy of the record resampled to HZ\n"
    "                 (band-limited interpolation; a check of the detector at\n"
    "                 other rates); beats are still written at the record's own\n"
    "                 sample times\n"
    "  -h, --help     this help\n"
    "\n"
    "Exit status: 0 every record processed, 1 a record failed (the others are\n"
    "still processed; its message names the file), 2 usage.\n";

static const char *const DETECT = "ecg detect";

struct detect_opts {
    const char *dir;
    const char *ann;
    int json;
    double csv_fs;
    int allow_short;
    double resample_hz; /* 0: none */
};

/* One record's work and result. */
struct detect_job {
    const char *path;
    char name[256];
    char out_path[4096];
    int failed;
    rdx_error err;
    double fs;
    int64_t nsamp;
    size_t nleads;
    rdx_ecg_summary sum;
    int have_sum;
};

/* What the detector's callbacks fill. */
struct collect {
    rdx_ecg_annset *set;
    int64_t *beats;
    size_t nbeats, capbeats;
    rdx_ecg_span loss[1024];
    size_t nloss;
    int64_t loss_dropped;
    rdx_status st;
    rdx_error err;
    double tscale; /* detector sample -> record sample (--resample), 0: identity */
};

static int64_t to_record(const struct collect *c, int64_t s)
{
    return c->tscale > 0.0 ? (int64_t)llround((double)s * c->tscale) : s;
}

/* --resample: the resampler's output goes to the detector. */
struct to_detector {
    rdx_ecg_detector *det;
    rdx_status st;
    rdx_error err;
};

static void resampled(void *user, const float *frames, size_t n)
{
    struct to_detector *t = user;
    if (t->st == RDX_OK) {
        t->st = rdx_ecg_detector_push(t->det, frames, n, &t->err);
    }
}

static void on_beat(void *user, const rdx_ecg_beat *b)
{
    struct collect *c = user;
    if (c->st != RDX_OK) {
        return;
    }
    if (c->nbeats == c->capbeats) {
        size_t cap = c->capbeats ? c->capbeats * 2 : 4096;
        int64_t *nb = rdx_reallocarray(c->beats, cap, sizeof *nb);
        if (nb == NULL) {
            c->st = rdx_error_set(&c->err, RDX_ENOMEM, "out of memory");
            return;
        }
        c->beats = nb;
        c->capbeats = cap;
    }
    int64_t at = to_record(c, b->sample);
    c->beats[c->nbeats++] = at;
    rdx_ecg_ann a;
    memset(&a, 0, sizeof a);
    a.sample = at;
    a.code = RDX_ECG_ANN_NORMAL;
    c->st = rdx_ecg_annset_add(c->set, &a, &c->err);
}

static void on_loss(void *user, int64_t start, int64_t end)
{
    struct collect *c = user;
    if (c->nloss < sizeof c->loss / sizeof c->loss[0]) {
        c->loss[c->nloss].start = to_record(c, start);
        c->loss[c->nloss].end = to_record(c, end);
        c->nloss++;
    } else {
        c->loss_dropped++;
    }
}

static int detect_one(const struct detect_opts *o, struct detect_job *j)
{
    rdx_ecg_record *rec = NULL;
    rdx_ecg_detector *det = NULL;
    rdx_ecg_resampler *rs = NULL;
    float *buf = NULL;
    int32_t *adu = NULL;
    struct collect c;
    memset(&c, 0, sizeof c);
    rdx_error *err = &j->err;
    rdx_status st;
    char dir[4096];

    rdx_error_clear(err);
    st = rdx_ecg_record_split_path(j->path, dir, sizeof dir, j->name, sizeof j->name);
    if (st != RDX_OK) {
        rdx_error_set(err, st, "%s: not a record path", j->path);
        goto fail;
    }
    rdx_ecg_record_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.csv_fs_hz = o->csv_fs;
    ro.allow_short = o->allow_short;
    st = rdx_ecg_record_open(j->path, &ro, &rec, err);
    if (st != RDX_OK) {
        goto fail;
    }
    const rdx_ecg_record_info *info = rdx_ecg_record_info_get(rec);
    if (info->nsig == 0) {
        rdx_error_set(err, RDX_EFORMAT, "%s: the record has no signals", j->path);
        goto fail;
    }
    j->fs = info->fs_hz;
    j->nleads = info->nsig < RDX_ECG_QRS_MAX_LEADS ? info->nsig : RDX_ECG_QRS_MAX_LEADS;
    int n = snprintf(j->out_path, sizeof j->out_path, "%s/%s.%s", o->dir, j->name, o->ann);
    if (n < 0 || (size_t)n >= sizeof j->out_path) {
        rdx_error_set(err, RDX_EINVAL, "%s: output path too long", j->path);
        goto fail;
    }
    if (rdx_ecg_annset_new(&c.set, err) != RDX_OK) {
        goto fail;
    }
    rdx_ecg_detector_config dc;
    rdx_ecg_detector_config_init(&dc);
    dc.fs_hz = o->resample_hz > 0.0 ? o->resample_hz : info->fs_hz;
    dc.nleads = j->nleads;
    dc.beat_fn = on_beat;
    dc.loss_fn = on_loss;
    dc.user = &c;
    st = rdx_ecg_detector_new(&dc, &det, err);
    if (st != RDX_OK) {
        rdx_error_prefix(err, "%s: ", j->path);
        goto fail;
    }
    struct to_detector td = {.det = det, .st = RDX_OK};
    if (o->resample_hz > 0.0) {
        c.tscale = info->fs_hz / o->resample_hz;
        st =
            rdx_ecg_resampler_new(info->fs_hz, o->resample_hz, j->nleads, resampled, &td, &rs, err);
        if (st != RDX_OK) {
            rdx_error_prefix(err, "%s: ", j->path);
            goto fail;
        }
    }
    /* Raw ADC units are read and scaled here with one float multiply per
     * sample, keeping only the first nleads of the record's signals. */
    adu = rdx_mallocarray((size_t)BLOCK_FRAMES * info->nsig, sizeof *adu);
    buf = rdx_mallocarray((size_t)BLOCK_FRAMES * j->nleads, sizeof *buf);
    if (adu == NULL || buf == NULL) {
        rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", j->path);
        goto fail;
    }
    float scale[RDX_ECG_QRS_MAX_LEADS];
    float base[RDX_ECG_QRS_MAX_LEADS];
    for (size_t s = 0; s < j->nleads; s++) {
        scale[s] = (float)(1.0 / info->sig[s].gain_adu_per_unit);
        base[s] = (float)info->sig[s].baseline_adu;
    }
    for (;;) {
        size_t got = 0;
        st = rdx_ecg_record_read(rec, adu, BLOCK_FRAMES, &got, err);
        if (st != RDX_OK) {
            goto fail;
        }
        if (got == 0) {
            break;
        }
        /* Lead by lead: the scale stays in a register and the loop is tight
         * (two leads kept of two, the MIT-BIH layout: one contiguous loop
         * the compiler vectorises). */
        if (info->nsig == 2 && j->nleads == 2) {
            const float b0 = base[0], s0 = scale[0], b1 = base[1], s1 = scale[1];
            for (size_t f = 0; f < got; f++) {
                int32_t v0 = adu[2 * f], v1 = adu[2 * f + 1];
                buf[2 * f] = v0 == RDX_ECG_SAMPLE_INVALID ? NAN : ((float)v0 - b0) * s0;
                buf[2 * f + 1] = v1 == RDX_ECG_SAMPLE_INVALID ? NAN : ((float)v1 - b1) * s1;
            }
        }
        for (size_t s = 0; s < j->nleads && !(info->nsig == 2 && j->nleads == 2); s++) {
            const int32_t *a = adu + s;
            float *o = buf + s;
            const float bs = base[s], sc = scale[s];
            const size_t as = info->nsig, os = j->nleads;
            for (size_t f = 0; f < got; f++) {
                int32_t v = a[f * as];
                o[f * os] = v == RDX_ECG_SAMPLE_INVALID ? NAN : ((float)v - bs) * sc;
            }
        }
        if (rs != NULL) {
            if (rdx_ecg_resampler_push(rs, buf, got, err) != RDX_OK) {
                goto fail;
            }
            if (td.st != RDX_OK) {
                *err = td.err;
                goto fail;
            }
            if (c.st != RDX_OK) {
                goto cbfail;
            }
        } else if (rdx_ecg_detector_push(det, buf, got, err) != RDX_OK || c.st != RDX_OK) {
            goto cbfail;
        }
        j->nsamp += (int64_t)got;
    }
    if (rs != NULL) {
        if (rdx_ecg_resampler_flush(rs, err) != RDX_OK) {
            goto fail;
        }
        if (td.st != RDX_OK) {
            *err = td.err;
            goto fail;
        }
    }
    if (rdx_ecg_detector_flush(det, err) != RDX_OK || c.st != RDX_OK) {
        goto cbfail;
    }
    st = rdx_ecg_summary_compute(c.beats, c.nbeats, c.loss, c.nloss, j->fs, j->nsamp, &j->sum, err);
    if (st != RDX_OK) {
        goto fail;
    }
    j->have_sum = 1;
    if (rdx_ecg_ann_write(j->out_path, c.set, err) != RDX_OK) {
        goto fail;
    }
    rdx_ecg_resampler_free(rs);
    rdx_ecg_detector_free(det);
    rdx_ecg_record_free(rec);
    rdx_ecg_annset_free(c.set);
    free(adu);
    free(buf);
    free(c.beats);
    return 0;
cbfail:
    if (c.st != RDX_OK) {
        *err = c.err;
        rdx_error_prefix(err, "%s: ", j->path);
    }
fail:
    j->failed = 1;
    rdx_ecg_resampler_free(rs);
    rdx_ecg_detector_free(det);
    rdx_ecg_record_free(rec);
    rdx_ecg_annset_free(c.set);
    free(adu);
    free(buf);
    free(c.beats);
    return -1;
}

/* Work shared by the threads: the next record to take, and progress. */
struct pool {
    const struct detect_opts *o;
    struct detect_job *jobs;
    size_t njobs;
    size_t next;
    size_t done;
    int progress;
    pthread_mutex_t mu;
};

static void *worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t k = p->next < p->njobs ? p->next++ : p->njobs;
        pthread_mutex_unlock(&p->mu);
        if (k >= p->njobs) {
            return NULL;
        }
        detect_one(p->o, &p->jobs[k]);
        pthread_mutex_lock(&p->mu);
        p->done++;
        if (p->progress) {
            fprintf(stderr, "\rrdx ecg detect: %zu/%zu records", p->done, p->njobs);
            if (p->done == p->njobs) {
                fputc('\n', stderr);
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
}

static void json_num(FILE *f, double v, int prec)
{
    if (isfinite(v)) {
        fprintf(f, "%.*f", prec, v);
    } else {
        fputs("null", f);
    }
}

static void print_json(const struct detect_job *jobs, size_t n)
{
    printf("{\"records\":[");
    for (size_t k = 0; k < n; k++) {
        const struct detect_job *j = &jobs[k];
        printf("%s{\"record\":", k ? "," : "");
        rdx_cli_json_str(stdout, j->path);
        if (j->failed) {
            printf(",\"error\":");
            rdx_cli_json_str(stdout, j->err.msg);
            printf("}");
            continue;
        }
        const rdx_ecg_summary *s = &j->sum;
        printf(",\"name\":");
        rdx_cli_json_str(stdout, j->name);
        printf(",\"annotations\":");
        rdx_cli_json_str(stdout, j->out_path);
        printf(",\"fs_hz\":%.6g,\"samples\":%lld,\"leads\":%zu,\"duration_s\":", j->fs,
               (long long)j->nsamp, j->nleads);
        json_num(stdout, s->duration_s, 3);
        printf(",\"beats\":%zu,\"hr_mean_bpm\":", s->nbeats);
        json_num(stdout, s->hr_mean_bpm, 1);
        printf(",\"hr_min_bpm\":");
        json_num(stdout, s->hr_min_bpm, 1);
        printf(",\"hr_max_bpm\":");
        json_num(stdout, s->hr_max_bpm, 1);
        printf(",\"rr_mean_ms\":");
        json_num(stdout, s->rr_mean_ms, 1);
        printf(",\"sdnn_ms\":");
        json_num(stdout, s->sdnn_ms, 1);
        printf(",\"rmssd_ms\":");
        json_num(stdout, s->rmssd_ms, 1);
        printf(",\"pauses\":[");
        for (size_t i = 0; i < s->npauses; i++) {
            printf("%s{\"start_s\":", i ? "," : "");
            json_num(stdout, (double)s->pauses[i].start / j->fs, 3);
            printf(",\"duration_s\":");
            json_num(stdout, (double)(s->pauses[i].end - s->pauses[i].start) / j->fs, 3);
            printf("}");
        }
        printf("],\"signal_loss\":[");
        for (size_t i = 0; i < s->nloss; i++) {
            printf("%s{\"start_s\":", i ? "," : "");
            json_num(stdout, (double)s->loss[i].start / j->fs, 3);
            printf(",\"end_s\":");
            json_num(stdout, (double)s->loss[i].end / j->fs, 3);
            printf("}");
        }
        printf("]}");
    }
    printf("]}\n");
}

static void print_text(const struct detect_job *jobs, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const struct detect_job *j = &jobs[k];
        if (j->failed) {
            continue;
        }
        const rdx_ecg_summary *s = &j->sum;
        printf("%s: %zu beats in %.1f s", j->name, s->nbeats, s->duration_s);
        if (isfinite(s->hr_mean_bpm)) {
            printf(", HR %.0f bpm (%.0f-%.0f)", s->hr_mean_bpm, s->hr_min_bpm, s->hr_max_bpm);
        }
        if (s->npauses > 0) {
            printf(", %zu pauses > %.0f s", s->npauses, RDX_ECG_PAUSE_S);
        }
        if (s->nloss > 0) {
            printf(", %zu signal-loss spans", s->nloss);
        }
        printf(" -> %s\n", j->out_path);
    }
}

/* The verbs' usage, for rdx_cli_parse_opts. */
static void detect_help(FILE *f)
{
    fputs(detect_usage, f);
}

int rdx_cli_ecg_detect(int argc, char **argv)
{
    struct detect_opts o = {.dir = ".", .ann = "qrs", .json = 0, .csv_fs = 0.0};
    long njobs = 1;
    int np = 0;
    const char *jobs_s = NULL, *fs_s = NULL, *resample_s = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("-o", &o.dir),
                                RDX_CLI_VALUE("-a", &o.ann),
                                RDX_CLI_VALUE("-j", &jobs_s),
                                RDX_CLI_VALUE("--fs", &fs_s),
                                RDX_CLI_VALUE("--resample", &resample_s),
                                RDX_CLI_FLAG("--json", &o.json),
                                RDX_CLI_FLAG("--allow-short", &o.allow_short),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts(DETECT, argc, argv, opts, detect_help, &np);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (o.dir[0] == '\0') {
        return rdx_cli_usage(DETECT, "empty output directory");
    }
    if (o.ann[0] == '\0' || strchr(o.ann, '/') || strlen(o.ann) > 64) {
        return rdx_cli_usage(DETECT, "bad annotator name '%s'", o.ann);
    }
    if (jobs_s != NULL) {
        int64_t v;
        if (rdx_parse_i64(jobs_s, strlen(jobs_s), 1, MAX_JOBS, &v) != RDX_OK) {
            return rdx_cli_usage(DETECT, "bad -j '%s' (1-%d)", jobs_s, MAX_JOBS);
        }
        njobs = (long)v;
    }
    if (fs_s != NULL &&
        (rdx_parse_double(fs_s, strlen(fs_s), &o.csv_fs) != RDX_OK || !(o.csv_fs > 0.0))) {
        return rdx_cli_usage(DETECT, "bad --fs '%s'", fs_s);
    }
    if (resample_s != NULL &&
        (rdx_parse_double(resample_s, strlen(resample_s), &o.resample_hz) != RDX_OK ||
         !(o.resample_hz >= RDX_ECG_QRS_MIN_FS && o.resample_hz <= RDX_ECG_QRS_MAX_FS))) {
        return rdx_cli_usage(DETECT, "bad --resample '%s' (%g-%g Hz)", resample_s,
                             RDX_ECG_QRS_MIN_FS, RDX_ECG_QRS_MAX_FS);
    }
    if (np == 0) {
        return rdx_cli_usage(DETECT, "no RECORD given");
    }
    size_t n = (size_t)np;
    struct detect_job *jobs = rdx_callocarray(n, sizeof *jobs);
    if (jobs == NULL) {
        return rdx_cli_fail(DETECT, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        char dir[4096];
        jobs[k].path = argv[1 + (int)k];
        if (rdx_ecg_record_split_path(jobs[k].path, dir, sizeof dir, jobs[k].name,
                                      sizeof jobs[k].name) != RDX_OK) {
            free(jobs);
            return rdx_cli_usage(DETECT, "'%s' is not a record path", argv[1 + (int)k]);
        }
        for (size_t m = 0; m < k; m++) {
            if (strcmp(jobs[m].name, jobs[k].name) == 0) {
                int rc = rdx_cli_usage(DETECT, "two records named '%s': both would write %s/%s.%s",
                                       jobs[k].name, o.dir, jobs[k].name, o.ann);
                free(jobs);
                return rc;
            }
        }
    }
    struct pool p = {.o = &o, .jobs = jobs, .njobs = n};
    p.progress = n > 1 && isatty(STDERR_FILENO);
    pthread_mutex_init(&p.mu, NULL);
    if ((size_t)njobs > n) {
        njobs = (long)n;
    }
    pthread_t th[MAX_JOBS];
    long started = 0;
    for (long t = 1; t < njobs; t++) {
        if (pthread_create(&th[started], NULL, worker, &p) != 0) {
            break; /* fewer threads; the work still gets done */
        }
        started++;
    }
    worker(&p);
    for (long t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
    }
    pthread_mutex_destroy(&p.mu);
    int failed = 0;
    for (size_t k = 0; k < n; k++) {
        if (jobs[k].failed) {
            failed = 1;
            rdx_cli_fail_err(DETECT, &jobs[k].err);
        }
    }
    if (o.json) {
        print_json(jobs, n);
    } else {
        print_text(jobs, n);
    }
    for (size_t k = 0; k < n; k++) {
        rdx_ecg_summary_free(&jobs[k].sum);
    }
    free(jobs);
    return failed ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}

/* ---- rdx ecg filter ----------------------------------------------------- */

static const char filter_usage[] =
    "Usage: rdx ecg filter [--highpass HZ] [--mains 50|60|0] [--lowpass HZ] [--fs HZ]\n"
    "                      -o DIR RECORD\n"
    "\n"
    "Condition RECORD with one linear-phase FIR filter (FFT overlap-save):\n"
    "baseline-wander high-pass, mains notch and low-pass, its delay compensated\n"
    "so that every filtered sample lines up with the raw one. Writes\n"
    "DIR/<record>.hea and DIR/<record>.dat, a WFDB record in format 16 with the\n"
    "input's gains, units and lead names, which PhysioNet's tools read.\n"
    "\n"
    "  -o DIR          output directory (must exist; not the record's own)\n"
    "  --highpass HZ   baseline-wander cut-off (default 0.5; 0: none)\n"
    "  --mains HZ      notch at 50 (default, China) or 60 Hz; 0: none\n"
    "  --lowpass HZ    40 (default, monitoring) or 150 (diagnosis); 0: none\n"
    "  --fs HZ         sampling frequency of a CSV record\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 written, 1 bad input or write failure, 2 usage.\n";

static const char *const FILTER = "ecg filter";

struct fwrite_ctx {
    rdx_ecg_writer *w;
    const rdx_ecg_record_info *info;
    int32_t *adu;
    rdx_status st;
    rdx_error err;
};

static void on_filtered(void *user, const float *frames, size_t n, int64_t first)
{
    struct fwrite_ctx *c = user;
    (void)first;
    if (c->st != RDX_OK) {
        return;
    }
    size_t nsig = c->info->nsig;
    while (n > 0) {
        size_t m = n < BLOCK_FRAMES ? n : BLOCK_FRAMES;
        for (size_t k = 0; k < m * nsig; k++) {
            float v = frames[k];
            double g = c->info->sig[k % nsig].gain_adu_per_unit;
            c->adu[k] = isnan(v) ? RDX_ECG_SAMPLE_INVALID : (int32_t)lrint((double)v * g);
        }
        c->st = rdx_ecg_writer_write(c->w, c->adu, m, &c->err);
        if (c->st != RDX_OK) {
            return;
        }
        frames += m * nsig;
        n -= m;
    }
}

static int parse_hz(const char *s, double max, double *out)
{
    return rdx_parse_double(s, strlen(s), out) == RDX_OK && *out >= 0.0 && *out <= max ? 0 : -1;
}

static void filter_help(FILE *f)
{
    fputs(filter_usage, f);
}

int rdx_cli_ecg_filter(int argc, char **argv)
{
    const char *dir = NULL;
    rdx_ecg_filter_config fc;
    rdx_ecg_filter_config_init(&fc);
    double csv_fs = 0.0;
    int np = 0;
    const char *hp = NULL, *lp = NULL, *mains = NULL, *fs = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("-o", &dir),       RDX_CLI_VALUE("--highpass", &hp),
                                RDX_CLI_VALUE("--lowpass", &lp), RDX_CLI_VALUE("--mains", &mains),
                                RDX_CLI_VALUE("--fs", &fs),      RDX_CLI_END};
    int prc = rdx_cli_parse_opts(FILTER, argc, argv, opts, filter_help, &np);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (hp != NULL && parse_hz(hp, 20.0, &fc.highpass_hz) != 0) {
        return rdx_cli_usage(FILTER, "bad --highpass '%s' (0-20 Hz)", hp);
    }
    if (lp != NULL && parse_hz(lp, 1000.0, &fc.lowpass_hz) != 0) {
        return rdx_cli_usage(FILTER, "bad --lowpass '%s' (Hz)", lp);
    }
    if (mains != NULL && (parse_hz(mains, 60.0, &fc.mains_hz) != 0 ||
                          (fc.mains_hz != 0.0 && fc.mains_hz != 50.0 && fc.mains_hz != 60.0))) {
        return rdx_cli_usage(FILTER, "bad --mains '%s' (50, 60 or 0)", mains);
    }
    if (fs != NULL && (parse_hz(fs, 1e6, &csv_fs) != 0 || !(csv_fs > 0.0))) {
        return rdx_cli_usage(FILTER, "bad --fs '%s'", fs);
    }
    if (dir == NULL) {
        return rdx_cli_usage(FILTER, "-o DIR is required");
    }
    if (np != 1) {
        return rdx_cli_usage(FILTER, np == 0 ? "no RECORD given" : "one RECORD at a time");
    }
    const char *path = argv[1];
    char indir[4096], name[256];
    if (rdx_ecg_record_split_path(path, indir, sizeof indir, name, sizeof name) != RDX_OK) {
        return rdx_cli_usage(FILTER, "'%s' is not a record path", path);
    }
    /* Writing beside the input would replace the raw record by its filtered
     * copy; refuse, comparing the directories as the system resolves them. */
    char *ra = realpath(indir, NULL), *rb = realpath(dir, NULL);
    int same = ra != NULL && rb != NULL && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    if (same) {
        return rdx_cli_fail(FILTER, "%s: -o %s is the record's own directory; choose another", path,
                            dir);
    }

    rdx_error err;
    rdx_ecg_record *rec = NULL;
    rdx_ecg_filter *flt = NULL;
    float *buf = NULL;
    struct fwrite_ctx c;
    memset(&c, 0, sizeof c);
    int rc = RDX_EXIT_FAIL;
    rdx_ecg_record_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.csv_fs_hz = csv_fs;
    if (rdx_ecg_record_open(path, &ro, &rec, &err) != RDX_OK) {
        rdx_cli_fail_err(FILTER, &err);
        goto out;
    }
    const rdx_ecg_record_info *info = rdx_ecg_record_info_get(rec);
    c.info = info;
    fc.fs_hz = info->fs_hz;
    fc.nleads = info->nsig;
    fc.out_fn = on_filtered;
    fc.user = &c;
    if (rdx_ecg_filter_new(&fc, &flt, &err) != RDX_OK) {
        rdx_cli_fail(FILTER, "%s: %s", path, err.msg);
        goto out;
    }
    rdx_ecg_signal_info *sig = rdx_callocarray(info->nsig, sizeof *sig);
    buf = rdx_mallocarray((size_t)BLOCK_FRAMES * info->nsig, sizeof *buf);
    c.adu = rdx_mallocarray((size_t)BLOCK_FRAMES * info->nsig, sizeof *c.adu);
    if (sig == NULL || buf == NULL || c.adu == NULL) {
        free(sig);
        rdx_cli_fail(FILTER, "%s: out of memory", path);
        goto out;
    }
    for (size_t s = 0; s < info->nsig; s++) {
        sig[s] = info->sig[s];
        sig[s].baseline_adu = 0; /* the filtered signal has no offset */
        sig[s].adc_zero = 0;
        sig[s].adc_resolution = 16;
    }
    char note[256];
    snprintf(note, sizeof note,
             "filtered by rdx %s: high-pass %g Hz, notch %g Hz, low-pass %g Hz; linear-phase "
             "FIR, %zu taps, delay compensated",
             rdx_version(), fc.highpass_hz, fc.mains_hz, fc.lowpass_hz, rdx_ecg_filter_taps(flt));
    const char *comments[1] = {note};
    rdx_ecg_writer_cfg wc;
    memset(&wc, 0, sizeof wc);
    wc.dir = dir;
    wc.name = name;
    wc.fs_hz = info->fs_hz;
    wc.nsig = info->nsig;
    wc.sig = sig;
    wc.ncomments = 1;
    wc.comments = comments;
    wc.clip = 1;
    rdx_status st = rdx_ecg_writer_new(&wc, &c.w, &err);
    free(sig);
    if (st != RDX_OK) {
        rdx_cli_fail_err(FILTER, &err);
        goto out;
    }
    for (;;) {
        size_t got = 0;
        if (rdx_ecg_record_read_phys(rec, buf, BLOCK_FRAMES, &got, &err) != RDX_OK) {
            rdx_cli_fail_err(FILTER, &err);
            goto out;
        }
        if (got == 0) {
            break;
        }
        if (rdx_ecg_filter_push(flt, buf, got, &err) != RDX_OK) {
            rdx_cli_fail(FILTER, "%s: %s", path, err.msg);
            goto out;
        }
        if (c.st != RDX_OK) {
            rdx_cli_fail_err(FILTER, &c.err);
            goto out;
        }
    }
    if (rdx_ecg_filter_flush(flt, &err) != RDX_OK) {
        rdx_cli_fail(FILTER, "%s: %s", path, err.msg);
        goto out;
    }
    if (c.st != RDX_OK) {
        rdx_cli_fail_err(FILTER, &c.err);
        goto out;
    }
    if (rdx_ecg_writer_finish(c.w, &err) != RDX_OK) {
        rdx_cli_fail_err(FILTER, &err);
        goto out;
    }
    printf("%s: %llu frames x %zu leads filtered -> %s/%s.hea\n", name,
           (unsigned long long)info->nsamp, info->nsig, dir, name);
    rc = RDX_EXIT_OK;
out:
    rdx_ecg_writer_free(c.w);
    rdx_ecg_filter_free(flt);
    rdx_ecg_record_free(rec);
    free(buf);
    free(c.adu);
    return rc;
}

/* ---- rdx ecg plot ------------------------------------------------------- */

static const char plot_usage[] =
    "Usage: rdx ecg plot [--from SEC] [--to SEC] [-a ANN] [--fs HZ] -o FILE.svg RECORD\n"
    "\n"
    "Draw RECORD from --from to --to (default the first 10 s, at most 60 s) as an\n"
    "ECG strip in SVG: standard paper (1 mm and 5 mm squares at 25 mm/s and\n"
    "10 mm/mV, a 1 mV calibration pulse), every lead conditioned with the\n"
    "diagnostic filter (0.5-150 Hz, 50 Hz notch), and the QRS marks with each RR\n"
    "interval labelled in milliseconds. The marks come from rdx's detector, or\n"
    "from the annotation file RECORD.ANN with -a.\n"
    "\n"
    "  -o FILE.svg   output file (written atomically)\n"
    "  --from SEC    start of the strip (default 0)\n"
    "  --to SEC      end of the strip (default from + 10)\n"
    "  -a ANN        take the QRS marks from RECORD.ANN (e.g. atr, qrs)\n"
    "  --fs HZ       sampling frequency of a CSV record\n"
    "  -h, --help    this help\n"
    "\n"
    "Exit status: 0 written, 1 bad input or write failure, 2 usage.\n";

static const char *const PLOT = "ecg plot";

#define PLOT_MAX_S     60.0
#define PLOT_MARGIN_S  3.0  /* filter run-in on each side of the strip */
#define PLOT_LEARN_S   10.0 /* detector run-in before the strip */
#define MM_PER_S       25.0
#define MM_PER_MV      10.0
#define STRIP_MM       30.0 /* height of one lead's strip */
#define LEFT_MM        12.0 /* room for the calibration pulse and lead names */
#define TOP_MM         14.0 /* title and RR labels */
#define PLOT_MAX_BYTES (64u << 20)

struct plot_beats {
    int64_t *b;
    size_t n, cap;
    int failed;
};

static void plot_on_beat(void *user, const rdx_ecg_beat *b)
{
    struct plot_beats *p = user;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        int64_t *nb = rdx_reallocarray(p->b, cap, sizeof *nb);
        if (nb == NULL) {
            p->failed = 1;
            return;
        }
        p->b = nb;
        p->cap = cap;
    }
    p->b[p->n++] = b->sample;
}

struct plot_sig {
    float *y; /* filtered samples of [seg0, seg0 + nseg), interleaved */
    int64_t seg0;
    size_t nseg, nsig;
};

static void plot_on_filtered(void *user, const float *frames, size_t n, int64_t first)
{
    struct plot_sig *s = user;
    for (size_t k = 0; k < n; k++) {
        if ((size_t)first + k < s->nseg) {
            memcpy(s->y + ((size_t)first + k) * s->nsig, frames + k * s->nsig,
                   s->nsig * sizeof(float));
        }
    }
}

/* Read frames [a, b) of rec in physical units and push them to a detector
 * (det) and/or a filter (flt). */
static rdx_status feed_range(rdx_ecg_record *rec, size_t nsig, int64_t a, int64_t b,
                             rdx_ecg_detector *det, rdx_ecg_filter *flt, float *buf, rdx_error *err)
{
    RDX_TRY(rdx_ecg_record_seek(rec, (uint64_t)a, err));
    int64_t at = a;
    while (at < b) {
        size_t want = (size_t)(b - at) < BLOCK_FRAMES ? (size_t)(b - at) : BLOCK_FRAMES;
        size_t got = 0;
        RDX_TRY(rdx_ecg_record_read_phys(rec, buf, want, &got, err));
        if (got == 0) {
            break;
        }
        if (det != NULL) {
            /* The detector takes at most RDX_ECG_QRS_MAX_LEADS leads. */
            size_t nl = nsig < RDX_ECG_QRS_MAX_LEADS ? nsig : RDX_ECG_QRS_MAX_LEADS;
            if (nl == nsig) {
                RDX_TRY(rdx_ecg_detector_push(det, buf, got, err));
            } else {
                for (size_t f = 0; f < got; f++) {
                    RDX_TRY(rdx_ecg_detector_push(det, buf + f * nsig, 1, err));
                }
            }
        }
        if (flt != NULL) {
            RDX_TRY(rdx_ecg_filter_push(flt, buf, got, err));
        }
        at += (int64_t)got;
    }
    return RDX_OK;
}

static rdx_status svg_header(rdx_buf *o, double wmm, double hmm)
{
    RDX_TRY(rdx_buf_printf(o,
                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.1fmm\" "
                           "height=\"%.1fmm\" viewBox=\"0 0 %.1f %.1f\">\n"
                           "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
                           wmm, hmm, wmm, hmm));
    return RDX_OK;
}

/* ECG paper over [x0, x1] x [y0, y1] (mm): 1 mm and 5 mm squares. */
static rdx_status svg_grid(rdx_buf *o, double x0, double y0, double x1, double y1)
{
    RDX_TRY(rdx_buf_printf(o,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"#fff4f4\"/>\n<g stroke=\"#f5b7b7\" stroke-width=\"0.08\">\n",
                           x0, y0, x1 - x0, y1 - y0));
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            RDX_TRY(rdx_buf_append_str(o, "</g>\n<g stroke=\"#e06c6c\" stroke-width=\"0.2\">\n"));
        }
        int step = pass == 0 ? 1 : 5;
        int nx = (int)((x1 - x0) + 0.5), ny = (int)((y1 - y0) + 0.5);
        for (int k = 0; k <= nx; k++) {
            if (pass == 0 && k % 5 == 0) {
                continue;
            }
            if (k % step == 0) {
                RDX_TRY(rdx_buf_printf(o,
                                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                                       x0 + k, y0, x0 + k, y1));
            }
        }
        for (int k = 0; k <= ny; k++) {
            if (pass == 0 && k % 5 == 0) {
                continue;
            }
            if (k % step == 0) {
                RDX_TRY(rdx_buf_printf(o,
                                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                                       x0, y0 + k, x1, y0 + k));
            }
        }
    }
    RDX_TRY(rdx_buf_append_str(o, "</g>\n"));
    return RDX_OK;
}

/* XML-escape s (lead names and record names come from the upload). */
static rdx_status svg_text(rdx_buf *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            RDX_TRY(rdx_buf_append_str(o, "&lt;"));
            break;
        case '>':
            RDX_TRY(rdx_buf_append_str(o, "&gt;"));
            break;
        case '&':
            RDX_TRY(rdx_buf_append_str(o, "&amp;"));
            break;
        case '"':
            RDX_TRY(rdx_buf_append_str(o, "&quot;"));
            break;
        default:
            if ((unsigned char)*s >= 0x20) {
                RDX_TRY(rdx_buf_append_u8(o, (uint8_t)*s));
            }
            break;
        }
    }
    return RDX_OK;
}

static rdx_status render_svg(rdx_buf *o, const char *name, const rdx_ecg_record_info *info,
                             const struct plot_sig *sig, int64_t from, int64_t to,
                             const int64_t *beats, size_t nbeats, const char *source)
{
    double fs = info->fs_hz;
    double span_s = (double)(to - from) / fs;
    double gw = ceil(span_s * MM_PER_S / 5.0) * 5.0; /* whole big squares */
    double gh = STRIP_MM * (double)info->nsig;
    double W = LEFT_MM + gw + 4.0, H = TOP_MM + gh + 8.0;
    W = W < 190.0 ? 190.0 : W; /* room for the title over a short strip */
    double gx0 = LEFT_MM, gy0 = TOP_MM;
    RDX_TRY(svg_header(o, W, H));
    RDX_TRY(rdx_buf_append_str(
        o, "<g font-family=\"Helvetica,Arial,sans-serif\" font-size=\"3\" fill=\"#222\">\n"));
    RDX_TRY(rdx_buf_append_str(o, "<text x=\"2\" y=\"4.5\" font-size=\"3.6\">"));
    RDX_TRY(svg_text(o, name));
    RDX_TRY(rdx_buf_printf(o,
                           "  %.2f-%.2f s  |  25 mm/s, 10 mm/mV  |  filter 0.5-150 Hz, "
                           "notch 50 Hz  |  QRS marks: ",
                           (double)from / fs, (double)to / fs));
    RDX_TRY(svg_text(o, source));
    RDX_TRY(rdx_buf_append_str(o, "</text>\n</g>\n"));
    RDX_TRY(svg_grid(o, gx0, gy0, gx0 + gw, gy0 + gh));

    /* Leads: each centred in its strip, with a 1 mV calibration pulse. */
    for (size_t s = 0; s < info->nsig; s++) {
        double mid = gy0 + STRIP_MM * ((double)s + 0.6);
        RDX_TRY(rdx_buf_printf(o,
                               "<path d=\"M%.2f %.2f h1.5 v%.2f h5 v%.2f h1.5\" fill=\"none\" "
                               "stroke=\"#000\" stroke-width=\"0.25\"/>\n",
                               1.5, mid, -MM_PER_MV, MM_PER_MV));
        RDX_TRY(rdx_buf_printf(o,
                               "<text x=\"%.1f\" y=\"%.1f\" font-family=\"Helvetica,Arial\" "
                               "font-size=\"3\" fill=\"#000\">",
                               gx0 + 1.0, gy0 + STRIP_MM * (double)s + 4.0));
        RDX_TRY(svg_text(o, info->sig[s].description[0] ? info->sig[s].description : "lead"));
        RDX_TRY(rdx_buf_append_str(o, "</text>\n<polyline fill=\"none\" stroke=\"#000\" "
                                      "stroke-width=\"0.22\" stroke-linejoin=\"round\" "
                                      "points=\""));
        for (int64_t k = from; k < to; k++) {
            size_t idx = (size_t)(k - sig->seg0);
            float v = idx < sig->nseg ? sig->y[idx * sig->nsig + s] : NAN;
            if (isnan(v)) {
                continue; /* a gap in the trace */
            }
            double x = gx0 + (double)(k - from) / fs * MM_PER_S;
            double y = mid - (double)v * MM_PER_MV;
            /* Keep runaway values on the paper. */
            y = y < gy0 ? gy0 : (y > gy0 + gh ? gy0 + gh : y);
            RDX_TRY(rdx_buf_printf(o, "%.2f,%.2f ", x, y));
        }
        RDX_TRY(rdx_buf_append_str(o, "\"/>\n"));
    }

    /* QRS marks across every strip, and the RR interval between marks. */
    RDX_TRY(rdx_buf_append_str(o, "<g font-family=\"Helvetica,Arial,sans-serif\" "
                                  "font-size=\"2.6\" fill=\"#0645ad\" text-anchor=\"middle\">\n"));
    int64_t prev = -1;
    for (size_t i = 0; i < nbeats; i++) {
        int64_t b = beats[i];
        if (b >= from && b < to) {
            double x = gx0 + (double)(b - from) / fs * MM_PER_S;
            RDX_TRY(rdx_buf_printf(o,
                                   "<path d=\"M%.2f %.2f l-1 -1.6 h2 z\"/>\n"
                                   "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                                   "stroke=\"#0645ad\" stroke-width=\"0.12\" "
                                   "stroke-dasharray=\"0.6 0.6\"/>\n",
                                   x, gy0 - 0.3, x, gy0, x, gy0 + gh));
            if (prev >= 0) {
                double px = gx0 + (double)(prev - from) / fs * MM_PER_S;
                double rr_ms = (double)(b - prev) * 1000.0 / fs;
                RDX_TRY(rdx_buf_printf(o, "<text x=\"%.2f\" y=\"%.2f\">%.0f</text>\n",
                                       (px + x) / 2.0, gy0 - 2.6, rr_ms));
            }
            prev = b;
        } else if (b < from) {
            prev = -1;
        }
    }
    RDX_TRY(rdx_buf_printf(o,
                           "<text x=\"%.1f\" y=\"%.1f\" fill=\"#444\" text-anchor=\"start\">"
                           "RR in ms</text>\n</g>\n</svg>\n",
                           gx0, gy0 + gh + 5.0));
    return RDX_OK;
}

static void plot_help(FILE *f)
{
    fputs(plot_usage, f);
}

int rdx_cli_ecg_plot(int argc, char **argv)
{
    const char *out = NULL, *ann = NULL;
    double from_s = 0.0, to_s = -1.0, csv_fs = 0.0;
    int np = 0;
    const char *from_v = NULL, *to_v = NULL, *fs_v = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("-o", &out),        RDX_CLI_VALUE("-a", &ann),
                                RDX_CLI_VALUE("--from", &from_v), RDX_CLI_VALUE("--to", &to_v),
                                RDX_CLI_VALUE("--fs", &fs_v),     RDX_CLI_END};
    int prc = rdx_cli_parse_opts(PLOT, argc, argv, opts, plot_help, &np);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (ann != NULL && (ann[0] == '\0' || strchr(ann, '/') || strlen(ann) > 64)) {
        return rdx_cli_usage(PLOT, "bad annotator name '%s'", ann);
    }
    if (from_v != NULL && parse_hz(from_v, 1e9, &from_s) != 0) {
        return rdx_cli_usage(PLOT, "bad --from '%s' (seconds)", from_v);
    }
    if (to_v != NULL && parse_hz(to_v, 1e9, &to_s) != 0) {
        return rdx_cli_usage(PLOT, "bad --to '%s' (seconds)", to_v);
    }
    if (fs_v != NULL && (parse_hz(fs_v, 1e6, &csv_fs) != 0 || !(csv_fs > 0.0))) {
        return rdx_cli_usage(PLOT, "bad --fs '%s'", fs_v);
    }
    if (out == NULL) {
        return rdx_cli_usage(PLOT, "-o FILE.svg is required");
    }
    if (np != 1) {
        return rdx_cli_usage(PLOT, np == 0 ? "no RECORD given" : "one RECORD at a time");
    }
    if (to_s < 0.0) {
        to_s = from_s + 10.0;
    }
    if (!(to_s > from_s) || to_s - from_s > PLOT_MAX_S) {
        return rdx_cli_usage(PLOT, "the strip must be longer than 0 and at most %.0f s",
                             PLOT_MAX_S);
    }
    const char *path = argv[1];
    char dir[4096], name[256];
    if (rdx_ecg_record_split_path(path, dir, sizeof dir, name, sizeof name) != RDX_OK) {
        return rdx_cli_usage(PLOT, "'%s' is not a record path", path);
    }

    rdx_error err;
    rdx_ecg_record *rec = NULL;
    rdx_ecg_detector *det = NULL;
    rdx_ecg_filter *flt = NULL;
    rdx_ecg_annset *set = NULL;
    float *buf = NULL;
    struct plot_beats pb = {0};
    struct plot_sig ps = {0};
    rdx_buf svg;
    rdx_buf_init(&svg, PLOT_MAX_BYTES);
    int rc = RDX_EXIT_FAIL;
    char source[400];
    rdx_ecg_record_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.csv_fs_hz = csv_fs;
    if (rdx_ecg_record_open(path, &ro, &rec, &err) != RDX_OK) {
        rdx_cli_fail_err(PLOT, &err);
        goto out;
    }
    const rdx_ecg_record_info *info = rdx_ecg_record_info_get(rec);
    double fs = info->fs_hz;
    int64_t nsamp = (int64_t)info->nsamp;
    int64_t from = (int64_t)llround(from_s * fs);
    int64_t to = (int64_t)llround(to_s * fs);
    if (from >= nsamp) {
        rdx_cli_fail(PLOT, "%s: --from %.3f s is past the end of the record (%.3f s)", path, from_s,
                     (double)nsamp / fs);
        goto out;
    }
    to = to < nsamp ? to : nsamp;
    buf = rdx_mallocarray((size_t)BLOCK_FRAMES * info->nsig, sizeof *buf);
    if (buf == NULL) {
        rdx_cli_fail(PLOT, "out of memory");
        goto out;
    }

    /* QRS marks. */
    if (ann != NULL) {
        char apath[4400];
        snprintf(apath, sizeof apath, "%s/%s.%s", dir, name, ann);
        if (rdx_ecg_ann_read(apath, &set, &err) != RDX_OK) {
            rdx_cli_fail_err(PLOT, &err);
            goto out;
        }
        for (size_t k = 0; k < rdx_ecg_annset_count(set); k++) {
            rdx_ecg_ann a;
            if (rdx_ecg_annset_get(set, k, &a) == RDX_OK && rdx_ecg_ann_isqrs(a.code)) {
                rdx_ecg_beat b = {.sample = a.sample};
                plot_on_beat(&pb, &b);
            }
        }
        snprintf(source, sizeof source, "%s.%s", name, ann);
    } else {
        rdx_ecg_detector_config dc;
        rdx_ecg_detector_config_init(&dc);
        dc.fs_hz = fs;
        dc.nleads = info->nsig < RDX_ECG_QRS_MAX_LEADS ? info->nsig : RDX_ECG_QRS_MAX_LEADS;
        dc.beat_fn = plot_on_beat;
        dc.user = &pb;
        if (rdx_ecg_detector_new(&dc, &det, &err) != RDX_OK) {
            rdx_cli_fail(PLOT, "%s: %s", path, err.msg);
            goto out;
        }
        int64_t d0 = from - (int64_t)(PLOT_LEARN_S * fs);
        d0 = d0 > 0 ? d0 : 0;
        int64_t d1 = to + (int64_t)(0.5 * fs);
        d1 = d1 < nsamp ? d1 : nsamp;
        if (feed_range(rec, info->nsig, d0, d1, det, NULL, buf, &err) != RDX_OK ||
            rdx_ecg_detector_flush(det, &err) != RDX_OK) {
            rdx_cli_fail_err(PLOT, &err);
            goto out;
        }
        snprintf(source, sizeof source, "rdx detector");
    }
    if (pb.failed) {
        rdx_cli_fail(PLOT, "out of memory");
        goto out;
    }

    /* The conditioned signal over the strip, with a run-in on each side. */
    int64_t f0 = from - (int64_t)(PLOT_MARGIN_S * fs);
    f0 = f0 > 0 ? f0 : 0;
    int64_t f1 = to + (int64_t)(PLOT_MARGIN_S * fs);
    f1 = f1 < nsamp ? f1 : nsamp;
    ps.seg0 = f0;
    ps.nseg = (size_t)(f1 - f0);
    ps.nsig = info->nsig;
    ps.y = rdx_mallocarray(ps.nseg * ps.nsig, sizeof *ps.y);
    if (ps.y == NULL) {
        rdx_cli_fail(PLOT, "out of memory");
        goto out;
    }
    rdx_ecg_filter_config fc;
    rdx_ecg_filter_config_init(&fc);
    fc.fs_hz = fs;
    fc.nleads = info->nsig;
    fc.lowpass_hz = 150.0;
    fc.out_fn = plot_on_filtered;
    fc.user = &ps;
    if (rdx_ecg_filter_new(&fc, &flt, &err) != RDX_OK) {
        rdx_cli_fail(PLOT, "%s: %s", path, err.msg);
        goto out;
    }
    if (feed_range(rec, info->nsig, f0, f1, NULL, flt, buf, &err) != RDX_OK ||
        rdx_ecg_filter_flush(flt, &err) != RDX_OK) {
        rdx_cli_fail_err(PLOT, &err);
        goto out;
    }
    if (render_svg(&svg, name, info, &ps, from, to, pb.b, pb.n, source) != RDX_OK) {
        rdx_cli_fail(PLOT, "%s: the drawing is too large", out);
        goto out;
    }
    if (rdx_file_write_atomic(out, svg.data, svg.len, &err) != RDX_OK) {
        rdx_cli_fail_err(PLOT, &err);
        goto out;
    }
    size_t shown = 0;
    for (size_t k = 0; k < pb.n; k++) {
        shown += pb.b[k] >= from && pb.b[k] < to;
    }
    printf("%s: %.2f-%.2f s, %zu leads, %zu QRS marks -> %s\n", name, (double)from / fs,
           (double)to / fs, info->nsig, shown, out);
    rc = RDX_EXIT_OK;
out:
    rdx_buf_free(&svg);
    rdx_ecg_filter_free(flt);
    rdx_ecg_detector_free(det);
    rdx_ecg_annset_free(set);
    rdx_ecg_record_free(rec);
    free(buf);
    free(pb.b);
    free(ps.y);
    return rc;
}
