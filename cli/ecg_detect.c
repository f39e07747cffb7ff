/*
 * ecg_detect.c - detection verbs of `rdx ecg`:
 *   rdx ecg detect   find the QRS complexes of records, write MIT annotations
 */
#include "cli.h"
#include "ecg_verbs.h"
#include "rdx/ecg.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Frames read and pushed per call: 16 leads x 4096 x 4 bytes = 256 KiB. */
#define BLOCK_FRAMES 4096
/* Most worker threads -j accepts. */
#define MAX_JOBS 64

static const char detect_usage[] =
    "Usage: rdx ecg detect [-o DIR] [-a ANN] [--json] [-j N] [--fs HZ] [--allow-short]\n"
    "                      RECORD...\n"
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
};

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
    c->beats[c->nbeats++] = b->sample;
    rdx_ecg_ann a;
    memset(&a, 0, sizeof a);
    a.sample = b->sample;
    a.code = RDX_ECG_ANN_NORMAL;
    c->st = rdx_ecg_annset_add(c->set, &a, &c->err);
}

static void on_loss(void *user, int64_t start, int64_t end)
{
    struct collect *c = user;
    if (c->nloss < sizeof c->loss / sizeof c->loss[0]) {
        c->loss[c->nloss].start = start;
        c->loss[c->nloss].end = end;
        c->nloss++;
    } else {
        c->loss_dropped++;
    }
}

static int detect_one(const struct detect_opts *o, struct detect_job *j)
{
    rdx_ecg_record *rec = NULL;
    rdx_ecg_detector *det = NULL;
    float *buf = NULL, *sel = NULL;
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
    dc.fs_hz = info->fs_hz;
    dc.nleads = j->nleads;
    dc.beat_fn = on_beat;
    dc.loss_fn = on_loss;
    dc.user = &c;
    st = rdx_ecg_detector_new(&dc, &det, err);
    if (st != RDX_OK) {
        rdx_error_prefix(err, "%s: ", j->path);
        goto fail;
    }
    buf = rdx_mallocarray((size_t)BLOCK_FRAMES * info->nsig, sizeof *buf);
    sel = j->nleads < info->nsig ? rdx_mallocarray((size_t)BLOCK_FRAMES * j->nleads, sizeof *sel)
                                 : buf;
    if (buf == NULL || sel == NULL) {
        rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", j->path);
        goto fail;
    }
    for (;;) {
        size_t got = 0;
        st = rdx_ecg_record_read_phys(rec, buf, BLOCK_FRAMES, &got, err);
        if (st != RDX_OK) {
            goto fail;
        }
        if (got == 0) {
            break;
        }
        if (sel != buf) {
            for (size_t f = 0; f < got; f++) {
                memcpy(sel + f * j->nleads, buf + f * info->nsig, j->nleads * sizeof *sel);
            }
        }
        if (rdx_ecg_detector_push(det, sel, got, err) != RDX_OK || c.st != RDX_OK) {
            goto cbfail;
        }
        j->nsamp += (int64_t)got;
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
    rdx_ecg_detector_free(det);
    rdx_ecg_record_free(rec);
    rdx_ecg_annset_free(c.set);
    if (sel != buf) {
        free(sel);
    }
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
    rdx_ecg_detector_free(det);
    rdx_ecg_record_free(rec);
    rdx_ecg_annset_free(c.set);
    if (sel != buf) {
        free(sel);
    }
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

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\') {
            fprintf(f, "\\%c", *q);
        } else if (*q < 0x20) {
            fprintf(f, "\\u%04x", *q);
        } else {
            fputc(*q, f);
        }
    }
    fputc('"', f);
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
        json_str(stdout, j->path);
        if (j->failed) {
            printf(",\"error\":");
            json_str(stdout, j->err.msg);
            printf("}");
            continue;
        }
        const rdx_ecg_summary *s = &j->sum;
        printf(",\"name\":");
        json_str(stdout, j->name);
        printf(",\"annotations\":");
        json_str(stdout, j->out_path);
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

int rdx_cli_ecg_detect(int argc, char **argv)
{
    struct detect_opts o = {.dir = ".", .ann = "qrs", .json = 0, .csv_fs = 0.0};
    long njobs = 1;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (rdx_cli_is_help(a)) {
            fputs(detect_usage, stdout);
            return RDX_EXIT_OK;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            break;
        }
        int takes = strcmp(a, "-o") == 0 || strcmp(a, "-a") == 0 || strcmp(a, "-j") == 0 ||
                    strcmp(a, "--fs") == 0;
        if (takes && i + 1 >= argc) {
            return rdx_cli_usage(DETECT, "%s needs a value", a);
        }
        if (strcmp(a, "-o") == 0) {
            o.dir = argv[++i];
            if (o.dir[0] == '\0') {
                return rdx_cli_usage(DETECT, "empty output directory");
            }
        } else if (strcmp(a, "-a") == 0) {
            o.ann = argv[++i];
            if (o.ann[0] == '\0' || strchr(o.ann, '/') || strlen(o.ann) > 64) {
                return rdx_cli_usage(DETECT, "bad annotator name '%s'", o.ann);
            }
        } else if (strcmp(a, "-j") == 0) {
            int64_t v;
            const char *s = argv[++i];
            if (rdx_parse_i64(s, strlen(s), 1, MAX_JOBS, &v) != RDX_OK) {
                return rdx_cli_usage(DETECT, "bad -j '%s' (1-%d)", s, MAX_JOBS);
            }
            njobs = (long)v;
        } else if (strcmp(a, "--fs") == 0) {
            const char *s = argv[++i];
            if (rdx_parse_double(s, strlen(s), &o.csv_fs) != RDX_OK || !(o.csv_fs > 0.0)) {
                return rdx_cli_usage(DETECT, "bad --fs '%s'", s);
            }
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--allow-short") == 0) {
            o.allow_short = 1;
        } else {
            return rdx_cli_usage(DETECT, "unknown option '%s'", a);
        }
    }
    if (i >= argc) {
        return rdx_cli_usage(DETECT, "no RECORD given");
    }
    size_t n = (size_t)(argc - i);
    struct detect_job *jobs = rdx_callocarray(n, sizeof *jobs);
    if (jobs == NULL) {
        return rdx_cli_fail(DETECT, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        char dir[4096];
        jobs[k].path = argv[i + (int)k];
        if (rdx_ecg_record_split_path(jobs[k].path, dir, sizeof dir, jobs[k].name,
                                      sizeof jobs[k].name) != RDX_OK) {
            free(jobs);
            return rdx_cli_usage(DETECT, "'%s' is not a record path", argv[i + (int)k]);
        }
        for (size_t m = 0; m < k; m++) {
            if (strcmp(jobs[m].name, jobs[k].name) == 0) {
                free(jobs);
                return rdx_cli_usage(DETECT, "two records named '%s': both would write %s/%s.%s",
                                     jobs[k].name, o.dir, jobs[k].name, o.ann);
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
