/*
 * Streaming QRS detector: synthetic ECGs (every rate 125-1000 Hz, baseline
 * wander, mains hum, noise, ectopic beats, tall T waves, amplitude steps,
 * flat line and missing samples), block-size invariance, latency, argument
 * checks and the out-of-memory sweep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/ecg.h"
#include "support/testutil.h"

#define PI   3.14159265358979323846
#define MAXB 4096

/* ---- Synthetic ECG ------------------------------------------------------ */

struct synth {
    double fs;
    size_t nl;
    double secs;
    double wander_mv; /* 0.3 Hz baseline wander */
    double hum_mv;    /* 50 Hz mains */
    double noise_mv;  /* white noise, standard deviation */
    double t_amp;     /* T-wave amplitude relative to the default */
    int pvc_every;    /* every n-th beat is a premature wide beat (0: none) */
    double step_at;   /* amplitude changes by step_gain from here (s) */
    double step_gain;
    double flat_from, flat_to; /* all leads constant in [from, to) (s) */
    int flat_nan;              /* NaN instead of a constant */
    double first_beat;         /* time of the first R peak (s) */
    double burst_mv;           /* a muscle-like burst 170 ms before ... */
    int burst_every;           /* ... every n-th beat (0: none) */
};

struct truth {
    int64_t r[MAXB];
    size_t n;
};

static double gauss(double t, double mu, double sd)
{
    double z = (t - mu) / sd;
    return exp(-0.5 * z * z);
}

/* A small deterministic normal generator (no global state). */
static double randn(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        u[i] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(2.0 * PI * u[1]);
}

/* One beat's contribution at time t for lead l (mV). */
static double beat_wave(double t, double tb, int pvc, size_t l, double t_amp)
{
    double sign = l == 0 ? 1.0 : -0.6;
    double tw = l == 0 ? 1.0 : 0.7;
    if (pvc) {
        return sign * 1.6 * gauss(t, tb, 0.028) - sign * 0.4 * gauss(t, tb + 0.07, 0.03) -
               tw * 0.45 * t_amp * gauss(t, tb + 0.32, 0.07);
    }
    return 0.15 * gauss(t, tb - 0.16, 0.025) - sign * 0.12 * gauss(t, tb - 0.028, 0.008) +
           sign * 1.0 * gauss(t, tb, 0.0105) - sign * 0.28 * gauss(t, tb + 0.028, 0.009) +
           tw * 0.3 * t_amp * gauss(t, tb + 0.27, 0.045);
}

/* Fill x (n frames x nl) and the true R peaks. Returns the frame count. */
static size_t synth_make(const struct synth *sy, float **out, struct truth *tr)
{
    size_t n = (size_t)(sy->secs * sy->fs);
    float *x = calloc(n * sy->nl, sizeof *x);
    assert_non_null(x);
    double tb[MAXB];
    int pvc[MAXB];
    size_t nb = 0;
    double t = sy->first_beat > 0.0 ? sy->first_beat : 0.35;
    tr->n = 0;
    while (t < sy->secs && nb < MAXB) {
        int is_pvc = sy->pvc_every > 0 && nb > 0 && nb % (size_t)sy->pvc_every == 0;
        if (is_pvc) {
            t -= 0.3; /* premature */
        }
        tb[nb] = t;
        pvc[nb] = is_pvc;
        int in_flat =
            sy->flat_to > sy->flat_from && t >= sy->flat_from - 0.3 && t < sy->flat_to + 0.3;
        if (!in_flat && t < sy->secs - 0.05) {
            tr->r[tr->n++] = (int64_t)llround(t * sy->fs);
        }
        nb++;
        double rr = 0.82 + 0.06 * sin(2.0 * PI * t / 4.0);
        t += is_pvc ? 0.3 + 1.25 * rr : rr;
    }
    uint64_t seed = 12345;
    for (size_t i = 0; i < n; i++) {
        double ti = (double)i / sy->fs;
        double gain = (sy->step_at > 0.0 && ti >= sy->step_at) ? sy->step_gain : 1.0;
        for (size_t l = 0; l < sy->nl; l++) {
            double v = 0.0;
            for (size_t b = 0; b < nb; b++) {
                if (fabs(ti - tb[b]) < 0.6) {
                    v += beat_wave(ti, tb[b], pvc[b], l, sy->t_amp > 0 ? sy->t_amp : 1.0);
                }
            }
            for (size_t b = 3; sy->burst_every > 0 && b < nb; b += (size_t)sy->burst_every) {
                double tc = tb[b] - 0.17;
                if (fabs(ti - tc) < 0.06) {
                    v += sy->burst_mv * gauss(ti, tc, 0.012) * sin(2.0 * PI * 45.0 * (ti - tc));
                }
            }
            v *= gain;
            v += sy->wander_mv * sin(2.0 * PI * 0.3 * ti + (double)l);
            v += sy->hum_mv * sin(2.0 * PI * 50.0 * ti);
            v += sy->noise_mv * randn(&seed);
            if (sy->flat_to > sy->flat_from && ti >= sy->flat_from && ti < sy->flat_to) {
                v = sy->flat_nan ? NAN : 0.123;
            }
            x[i * sy->nl + l] = (float)v;
        }
    }
    *out = x;
    return n;
}

/* ---- Collecting what the detector says --------------------------------- */

struct got {
    rdx_ecg_beat b[MAXB];
    int64_t at[MAXB]; /* frames pushed when the beat was delivered */
    size_t n;
    int64_t loss[16][2];
    size_t nloss;
    const rdx_ecg_detector *d;
};

static void on_beat(void *user, const rdx_ecg_beat *b)
{
    struct got *g = user;
    if (g->n < MAXB) {
        g->b[g->n] = *b;
        g->at[g->n] = g->d != NULL ? rdx_ecg_detector_samples(g->d) : 0;
        g->n++;
    }
}

static void on_loss(void *user, int64_t s, int64_t e)
{
    struct got *g = user;
    if (g->nloss < 16) {
        g->loss[g->nloss][0] = s;
        g->loss[g->nloss][1] = e;
        g->nloss++;
    }
}

static void run_detector(const float *x, size_t n, double fs, size_t nl, size_t block,
                         struct got *g)
{
    rdx_ecg_detector_config cfg;
    rdx_ecg_detector_config_init(&cfg);
    cfg.fs_hz = fs;
    cfg.nleads = nl;
    cfg.beat_fn = on_beat;
    cfg.loss_fn = on_loss;
    cfg.user = g;
    rdx_ecg_detector *d = NULL;
    rdx_error err;
    memset(g, 0, sizeof *g);
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_OK);
    g->d = d;
    for (size_t i = 0; i < n; i += block) {
        size_t m = n - i < block ? n - i : block;
        assert_int_equal(rdx_ecg_detector_push(d, x + i * nl, m, &err), RDX_OK);
    }
    assert_int_equal(rdx_ecg_detector_flush(d, &err), RDX_OK);
    assert_int_equal(rdx_ecg_detector_push(d, x, 1, &err), RDX_ESTATE);
    rdx_ecg_detector_free(d);
    g->d = NULL;
}

/* Beat-by-beat match within 150 ms (EC57's window). */
static void score(const struct truth *tr, const struct got *g, double fs, size_t *tp, size_t *fn,
                  size_t *fp)
{
    int64_t win = (int64_t)llround(0.15 * fs);
    size_t i = 0, j = 0;
    *tp = *fn = *fp = 0;
    while (i < tr->n && j < g->n) {
        int64_t dt = g->b[j].sample - tr->r[i];
        if (dt < -win) {
            (*fp)++;
            j++;
        } else if (dt > win) {
            (*fn)++;
            i++;
        } else {
            (*tp)++;
            i++;
            j++;
        }
    }
    *fn += tr->n - i;
    *fp += g->n - j;
}

static void expect_perfect(const struct synth *sy, size_t block)
{
    float *x;
    struct truth tr;
    static struct got g;
    size_t n = synth_make(sy, &x, &tr);
    run_detector(x, n, sy->fs, sy->nl, block, &g);
    size_t tp, fn, fp;
    score(&tr, &g, sy->fs, &tp, &fn, &fp);
    if (fn != 0 || fp != 0) {
        print_message("fs %g: %zu beats, TP %zu FN %zu FP %zu\n", sy->fs, tr.n, tp, fn, fp);
        for (size_t i = 0; i < g.n && i < 4; i++) {
            print_message("  got %lld (true %lld)\n", (long long)g.b[i].sample,
                          (long long)(i < tr.n ? tr.r[i] : -1));
        }
    }
    assert_int_equal(fn, 0);
    assert_int_equal(fp, 0);
    free(x);
}

static struct synth base(double fs)
{
    struct synth sy;
    memset(&sy, 0, sizeof sy);
    sy.fs = fs;
    sy.nl = 2;
    sy.secs = 30.0;
    sy.wander_mv = 0.4;
    sy.hum_mv = 0.05;
    sy.noise_mv = 0.015;
    return sy;
}

/* ---- Tests -------------------------------------------------------------- */

static void test_qrs_every_rate_finds_every_beat(void **state)
{
    (void)state;
    const double rates[] = {125.0, 128.0, 250.0, 360.0, 500.0, 1000.0};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        struct synth sy = base(rates[i]);
        expect_perfect(&sy, 1000);
    }
}

static void test_qrs_r_peak_is_placed_on_the_r_wave(void **state)
{
    (void)state;
    struct synth sy = base(500.0);
    float *x;
    struct truth tr;
    static struct got g;
    size_t n = synth_make(&sy, &x, &tr);
    run_detector(x, n, sy.fs, sy.nl, 4096, &g);
    assert_int_equal(g.n, tr.n);
    for (size_t i = 0; i < g.n; i++) {
        /* Within 10 ms of the true R peak. */
        assert_true(llabs(g.b[i].sample - tr.r[i]) <= 5);
    }
    free(x);
}

static void test_qrs_first_beat_is_kept(void **state)
{
    (void)state;
    /* A 10 s resting ECG whose first R peak is 0.12 s into the record. */
    struct synth sy = base(500.0);
    sy.secs = 10.0;
    sy.first_beat = 0.12;
    expect_perfect(&sy, 512);
    /* And one that starts in the middle of a T wave. */
    sy.first_beat = 0.62;
    expect_perfect(&sy, 512);
}

static void test_qrs_block_size_does_not_change_beats(void **state)
{
    (void)state;
    struct synth sy = base(360.0);
    sy.pvc_every = 7;
    sy.noise_mv = 0.05;
    float *x;
    struct truth tr;
    static struct got ref, g;
    size_t n = synth_make(&sy, &x, &tr);
    run_detector(x, n, sy.fs, sy.nl, n, &ref);
    assert_true(ref.n > 30);
    const size_t blocks[] = {1, 2, 7, 100, 361, 4096};
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        run_detector(x, n, sy.fs, sy.nl, blocks[k], &g);
        assert_int_equal(g.n, ref.n);
        for (size_t i = 0; i < g.n; i++) {
            assert_int_equal(g.b[i].sample, ref.b[i].sample);
            assert_int_equal(g.b[i].lead, ref.b[i].lead);
            assert_memory_equal(&g.b[i].amp_mv, &ref.b[i].amp_mv, sizeof(float));
        }
    }
    free(x);
}

static void test_qrs_latency_is_at_most_300_ms(void **state)
{
    (void)state;
    const double rates[] = {125.0, 360.0, 1000.0};
    for (size_t k = 0; k < 3; k++) {
        struct synth sy = base(rates[k]);
        sy.pvc_every = 5;
        float *x;
        struct truth tr;
        static struct got g;
        size_t n = synth_make(&sy, &x, &tr);
        run_detector(x, n, sy.fs, sy.nl, 1, &g);
        assert_true(g.n > 30);
        for (size_t i = 0; i < g.n; i++) {
            /* Delivered when at most 0.3 s of signal after the R peak had
             * been pushed (at[] counts frames; the R frame is sample + 1). */
            int64_t late = g.at[i] - (g.b[i].sample + 1);
            assert_true(late >= 0);
            assert_true((double)late <= 0.3 * sy.fs + 1.0);
        }
        free(x);
    }
}

static void test_qrs_ectopic_beats_and_tall_t_waves(void **state)
{
    (void)state;
    struct synth sy = base(360.0);
    sy.pvc_every = 4;
    expect_perfect(&sy, 777);
    sy = base(360.0);
    sy.t_amp = 2.5; /* T wave 0.75 mV against an R of 1 mV */
    expect_perfect(&sy, 777);
}

/* A burst of artefact 170 ms before a QRS, large enough to be taken for a
 * beat, must not take the QRS's place (the QRS would fall in its refractory
 * period): the larger QRS replaces it before either is delivered. */
static void test_qrs_artefact_just_before_a_qrs_does_not_hide_it(void **state)
{
    (void)state;
    const double rates[] = {250.0, 360.0, 1000.0};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        struct synth sy = base(rates[i]);
        sy.burst_mv = 1.5; /* without the replacement: 7 of 37 beats lost */
        sy.burst_every = 5;
        expect_perfect(&sy, 500);
    }
}

static void test_qrs_noise_is_tolerated(void **state)
{
    (void)state;
    struct synth sy = base(250.0);
    sy.noise_mv = 0.08; /* SNR about 20 dB against a 1 mV R */
    sy.wander_mv = 1.0;
    sy.hum_mv = 0.2;
    expect_perfect(&sy, 300);
}

static void test_qrs_amplitude_steps_are_followed(void **state)
{
    (void)state;
    const double gains[] = {0.25, 4.0};
    for (size_t k = 0; k < 2; k++) {
        struct synth sy = base(360.0);
        sy.secs = 40.0;
        sy.step_at = 20.0;
        sy.step_gain = gains[k];
        float *x;
        struct truth tr;
        static struct got g;
        size_t n = synth_make(&sy, &x, &tr);
        run_detector(x, n, sy.fs, sy.nl, 1024, &g);
        size_t tp, fn, fp;
        score(&tr, &g, sy.fs, &tp, &fn, &fp);
        /* At most one beat lost or gained at the step itself. */
        assert_true(fn <= 1);
        assert_true(fp <= 1);
        free(x);
    }
}

static void test_qrs_flat_line_gives_loss_and_no_beats(void **state)
{
    (void)state;
    for (int nan = 0; nan <= 1; nan++) {
        struct synth sy = base(360.0);
        sy.flat_from = 10.0;
        sy.flat_to = 16.0;
        sy.flat_nan = nan;
        float *x;
        struct truth tr;
        static struct got g;
        size_t n = synth_make(&sy, &x, &tr);
        run_detector(x, n, sy.fs, sy.nl, 500, &g);
        for (size_t i = 0; i < g.n; i++) {
            double t = (double)g.b[i].sample / sy.fs;
            assert_false(t > 10.05 && t < 15.95);
        }
        assert_int_equal(g.nloss, 1);
        assert_true(llabs(g.loss[0][0] - (int64_t)(10.0 * sy.fs)) <= 2);
        assert_true(llabs(g.loss[0][1] - (int64_t)(16.0 * sy.fs)) <= 2);
        size_t tp, fn, fp;
        score(&tr, &g, sy.fs, &tp, &fn, &fp);
        assert_true(fn <= 1);
        assert_true(fp <= 1);
        free(x);
    }
}

static void test_qrs_all_flat_record(void **state)
{
    (void)state;
    size_t n = 3600;
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    static struct got g;
    run_detector(x, n, 360.0, 1, 100, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.nloss, 1);
    assert_int_equal(g.loss[0][0], 0);
    assert_int_equal(g.loss[0][1], (int64_t)n);
    free(x);
}

static void test_qrs_no_qrs_gives_no_beats(void **state)
{
    (void)state;
    /* Baseline wander, mains hum and a little noise, but no heart. */
    struct synth sy = base(500.0);
    sy.secs = 20.0;
    sy.first_beat = 1e9;
    float *x;
    struct truth tr;
    static struct got g;
    size_t n = synth_make(&sy, &x, &tr);
    assert_int_equal(tr.n, 0);
    run_detector(x, n, sy.fs, sy.nl, 1000, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.nloss, 0);
    free(x);
}

static void test_qrs_one_lead_lost_other_carries(void **state)
{
    (void)state;
    struct synth sy = base(360.0);
    float *x;
    struct truth tr;
    static struct got g;
    size_t n = synth_make(&sy, &x, &tr);
    /* Lead 1 drops out (electrode off: NaN) from 8 s to 20 s. */
    for (size_t i = (size_t)(8 * sy.fs); i < (size_t)(20 * sy.fs); i++) {
        x[i * 2 + 1] = NAN;
    }
    run_detector(x, n, sy.fs, sy.nl, 999, &g);
    size_t tp, fn, fp;
    score(&tr, &g, sy.fs, &tp, &fn, &fp);
    assert_int_equal(g.nloss, 0);
    assert_true(fn <= 1);
    assert_true(fp <= 1);
    free(x);
}

static void test_qrs_bad_arguments(void **state)
{
    (void)state;
    rdx_ecg_detector_config cfg;
    rdx_ecg_detector *d = (rdx_ecg_detector *)&cfg;
    rdx_error err;
    rdx_ecg_detector_config_init(&cfg);
    assert_int_equal(rdx_ecg_detector_new(NULL, &d, &err), RDX_EINVAL);
    assert_null(d);
    assert_int_equal(rdx_ecg_detector_new(&cfg, NULL, &err), RDX_EINVAL);
    cfg.fs_hz = 50.0;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "50"));
    cfg.fs_hz = NAN;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_EINVAL);
    cfg.fs_hz = 360.0;
    cfg.nleads = 0;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_EINVAL);
    cfg.nleads = RDX_ECG_QRS_MAX_LEADS + 1;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_EINVAL);
    cfg.nleads = 1;
    cfg.loss_min_s = -1.0;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_EINVAL);
    cfg.loss_min_s = 1.0;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_OK);
    assert_int_equal(rdx_ecg_detector_push(d, NULL, 3, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_detector_push(d, NULL, 0, &err), RDX_OK);
    assert_int_equal(rdx_ecg_detector_flush(d, &err), RDX_OK);
    assert_int_equal(rdx_ecg_detector_flush(d, &err), RDX_ESTATE);
    rdx_ecg_detector_free(d);
    rdx_ecg_detector_free(NULL);
    assert_int_equal(rdx_ecg_detector_push(NULL, NULL, 0, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_detector_samples(NULL), 0);
    rdx_ecg_detector_config_init(NULL);
}

/* ---- Real records: regression against thresholds kept in the repo ------ */

static double threshold(const char *key)
{
    char path[512];
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 1 << 16);
    assert_int_equal(rdx_file_read(rdx_test_fixture(path, sizeof path, "ecg/thresholds"), &b, &err),
                     RDX_OK);
    size_t kl = strlen(key);
    double v = NAN;
    const char *p = (const char *)b.data;
    while (p != NULL && *p) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll > kl + 1 && strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            assert_int_equal(rdx_parse_double(p + kl + 1, ll - kl - 1, &v), RDX_OK);
        }
        p = nl ? nl + 1 : NULL;
    }
    rdx_buf_free(&b);
    assert_true(isfinite(v));
    return v;
}

static void on_beat_ann(void *user, const rdx_ecg_beat *b)
{
    rdx_ecg_ann a;
    memset(&a, 0, sizeof a);
    a.sample = b->sample;
    a.code = RDX_ECG_ANN_NORMAL;
    assert_int_equal(rdx_ecg_annset_add(user, &a, NULL), RDX_OK);
}

/* Detect the beats of the record at path (without extension) and score them
 * against its .atr, as `rdx ecg detect` and `rdx ecg eval` do. */
static void score_record(const char *path, rdx_ecg_eval_counts *c)
{
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_record_open(path, NULL, &rec, &err), RDX_OK);
    const rdx_ecg_record_info *info = rdx_ecg_record_info_get(rec);
    rdx_ecg_annset *test = NULL, *ref = NULL;
    assert_int_equal(rdx_ecg_annset_new(&test, &err), RDX_OK);
    rdx_ecg_detector_config cfg;
    rdx_ecg_detector_config_init(&cfg);
    cfg.fs_hz = info->fs_hz;
    cfg.nleads = info->nsig;
    cfg.beat_fn = on_beat_ann;
    cfg.user = test;
    rdx_ecg_detector *d = NULL;
    assert_int_equal(rdx_ecg_detector_new(&cfg, &d, &err), RDX_OK);
    float *buf = malloc(4096 * info->nsig * sizeof *buf);
    assert_non_null(buf);
    for (;;) {
        size_t got = 0;
        assert_int_equal(rdx_ecg_record_read_phys(rec, buf, 4096, &got, &err), RDX_OK);
        if (got == 0) {
            break;
        }
        assert_int_equal(rdx_ecg_detector_push(d, buf, got, &err), RDX_OK);
    }
    assert_int_equal(rdx_ecg_detector_flush(d, &err), RDX_OK);
    char atr[1024];
    snprintf(atr, sizeof atr, "%s.atr", path);
    assert_int_equal(rdx_ecg_ann_read(atr, &ref, &err), RDX_OK);
    rdx_ecg_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.fs_hz = info->fs_hz;
    eo.end_sample = (int64_t)info->nsamp;
    assert_int_equal(rdx_ecg_eval_compare(ref, test, &eo, c, &err), RDX_OK);
    free(buf);
    rdx_ecg_detector_free(d);
    rdx_ecg_annset_free(test);
    rdx_ecg_annset_free(ref);
    rdx_ecg_record_free(rec);
}

static void test_qrs_fixture_record_scores_above_threshold(void **state)
{
    (void)state;
    char path[512];
    rdx_ecg_eval_counts c;
    score_record(rdx_test_fixture(path, sizeof path, "ecg/100s"), &c);
    double se = rdx_ecg_eval_se(&c), ppv = rdx_ecg_eval_ppv(&c);
    print_message("100s: TP %llu FN %llu FP %llu Se %.2f +P %.2f\n", (unsigned long long)c.tp,
                  (unsigned long long)c.fn, (unsigned long long)c.fp, se, ppv);
    assert_int_equal(c.tp + c.fn, 74);
    assert_true(se >= threshold("fixture_se"));
    assert_true(ppv >= threshold("fixture_ppv"));
}

static void test_qrs_mitdb_scores_above_threshold(void **state)
{
    (void)state;
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        skip();
    }
    static const char *const recs[] = {"100", "101", "102", "103", "105", "106", "109", "111",
                                       "113", "115", "118", "119", "121", "123", "200", "202",
                                       "203", "208", "212", "214", "217", "219", "221", "228"};
    rdx_ecg_eval_counts total;
    memset(&total, 0, sizeof total);
    double worst = 100.0;
    size_t nrec = 0;
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
        char path[1024], hea[1100];
        snprintf(path, sizeof path, "%s/ecg/mitdb/%s", data, recs[i]);
        snprintf(hea, sizeof hea, "%s.hea", path);
        FILE *f = fopen(hea, "r");
        if (f == NULL) {
            continue;
        }
        fclose(f);
        rdx_ecg_eval_counts c;
        score_record(path, &c);
        rdx_ecg_eval_add(&total, &c);
        double se = rdx_ecg_eval_se(&c), ppv = rdx_ecg_eval_ppv(&c);
        worst = se < worst ? se : worst;
        worst = ppv < worst ? ppv : worst;
        nrec++;
    }
    if (nrec == 0) {
        skip();
    }
    double se = rdx_ecg_eval_se(&total), ppv = rdx_ecg_eval_ppv(&total);
    print_message("mitdb (%zu records): TP %llu FN %llu FP %llu Se %.3f +P %.3f worst %.2f\n", nrec,
                  (unsigned long long)total.tp, (unsigned long long)total.fn,
                  (unsigned long long)total.fp, se, ppv, worst);
    assert_true(se >= threshold("mitdb_gross_se"));
    assert_true(ppv >= threshold("mitdb_gross_ppv"));
    assert_true(worst >= threshold("mitdb_record_min"));
}

static int make_detector(void *ctx)
{
    (void)ctx;
    rdx_ecg_detector_config cfg;
    rdx_ecg_detector_config_init(&cfg);
    cfg.nleads = 3;
    rdx_ecg_detector *d = NULL;
    rdx_error err;
    rdx_status st = rdx_ecg_detector_new(&cfg, &d, &err);
    if (st != RDX_OK) {
        assert_int_equal(st, RDX_ENOMEM);
        assert_null(d);
        return 1;
    }
    float x[30] = {0};
    assert_int_equal(rdx_ecg_detector_push(d, x, 10, &err), RDX_OK);
    rdx_ecg_detector_free(d);
    return 0;
}

static void test_qrs_out_of_memory_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(make_detector, NULL) >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qrs_every_rate_finds_every_beat),
        cmocka_unit_test(test_qrs_r_peak_is_placed_on_the_r_wave),
        cmocka_unit_test(test_qrs_first_beat_is_kept),
        cmocka_unit_test(test_qrs_block_size_does_not_change_beats),
        cmocka_unit_test(test_qrs_latency_is_at_most_300_ms),
        cmocka_unit_test(test_qrs_ectopic_beats_and_tall_t_waves),
        cmocka_unit_test(test_qrs_artefact_just_before_a_qrs_does_not_hide_it),
        cmocka_unit_test(test_qrs_noise_is_tolerated),
        cmocka_unit_test(test_qrs_amplitude_steps_are_followed),
        cmocka_unit_test(test_qrs_flat_line_gives_loss_and_no_beats),
        cmocka_unit_test(test_qrs_all_flat_record),
        cmocka_unit_test(test_qrs_no_qrs_gives_no_beats),
        cmocka_unit_test(test_qrs_one_lead_lost_other_carries),
        cmocka_unit_test(test_qrs_bad_arguments),
        cmocka_unit_test(test_qrs_fixture_record_scores_above_threshold),
        cmocka_unit_test(test_qrs_mitdb_scores_above_threshold),
        cmocka_unit_test(test_qrs_out_of_memory_sweep),
    };
    return cmocka_run_group_tests_name("ecg_qrs", tests, NULL, NULL);
}
