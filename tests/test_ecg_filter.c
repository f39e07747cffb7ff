/*
 * Conditioning filter: gains at chosen frequencies (designed and measured),
 * zero delay and phase, edges, missing samples, block-size invariance (bit
 * for bit), argument checks and the out-of-memory sweep.
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

#define PI 3.14159265358979323846

struct sink {
    float *y;
    size_t cap; /* frames */
    size_t nl;
    int64_t next; /* next frame expected */
    int gap;      /* a delivery was not contiguous */
};

static void on_out(void *user, const float *frames, size_t n, int64_t first)
{
    struct sink *s = user;
    if (first != s->next) {
        s->gap = 1;
    }
    for (size_t k = 0; k < n; k++) {
        if ((size_t)first + k < s->cap) {
            memcpy(s->y + ((size_t)first + k) * s->nl, frames + k * s->nl, s->nl * sizeof(float));
        }
    }
    s->next = first + (int64_t)n;
}

/* Filter x (n frames of nl leads) pushing `block` frames at a time. */
static float *run_filter(rdx_ecg_filter_config *cfg, const float *x, size_t n, size_t block)
{
    struct sink s = {.cap = n, .nl = cfg->nleads};
    s.y = calloc(n * cfg->nleads, sizeof *s.y);
    assert_non_null(s.y);
    cfg->out_fn = on_out;
    cfg->user = &s;
    rdx_ecg_filter *f = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_filter_new(cfg, &f, &err), RDX_OK);
    for (size_t i = 0; i < n; i += block) {
        size_t m = n - i < block ? n - i : block;
        assert_int_equal(rdx_ecg_filter_push(f, x + i * cfg->nleads, m, &err), RDX_OK);
    }
    assert_int_equal(rdx_ecg_filter_flush(f, &err), RDX_OK);
    assert_int_equal(rdx_ecg_filter_push(f, x, 1, &err), RDX_ESTATE);
    rdx_ecg_filter_free(f);
    /* Every frame came out exactly once, in order. */
    assert_false(s.gap);
    assert_int_equal(s.next, (int64_t)n);
    return s.y;
}

static float *sine(double fs, double secs, double hz, double amp, double dc, size_t *n)
{
    *n = (size_t)(fs * secs);
    float *x = malloc(*n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < *n; i++) {
        x[i] = (float)(dc + amp * sin(2.0 * PI * hz * (double)i / fs));
    }
    return x;
}

/* Amplitude of the sine y over its middle third (away from the edges):
 * sqrt(2) times its RMS, which does not depend on where the samples fall. */
static double amplitude(const float *y, size_t n)
{
    double ss = 0.0;
    for (size_t i = n / 3; i < 2 * n / 3; i++) {
        ss += (double)y[i] * (double)y[i];
    }
    return sqrt(2.0 * ss / (double)(2 * n / 3 - n / 3));
}

static void check_gain(rdx_ecg_filter_config cfg, double hz, double lo, double hi)
{
    size_t n;
    float *x = sine(cfg.fs_hz, 40.0, hz, 1.0, 0.0, &n);
    float *y = run_filter(&cfg, x, n, 4096);
    double g = amplitude(y, n);
    if (!(g >= lo && g <= hi)) {
        print_message("fs %g, %g Hz: gain %g not in [%g, %g]\n", cfg.fs_hz, hz, g, lo, hi);
    }
    assert_true(g >= lo && g <= hi);
    /* The designed response says the same within 1 % of full scale. */
    rdx_ecg_filter *f = NULL;
    cfg.out_fn = NULL;
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, NULL), RDX_OK);
    assert_true(fabs(rdx_ecg_filter_gain(f, hz) - g) < 0.01);
    rdx_ecg_filter_free(f);
    free(x);
    free(y);
}

static void test_filter_gain_at_chosen_frequencies(void **state)
{
    (void)state;
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter_config_init(&cfg);
    cfg.fs_hz = 360.0;
    /* Monitoring: 0.5 Hz high-pass, 50 Hz notch, 40 Hz low-pass. */
    check_gain(cfg, 0.1, 0.0, 0.005);  /* baseline wander: -46 dB or more */
    check_gain(cfg, 1.0, 0.99, 1.01);  /* pass band */
    check_gain(cfg, 10.0, 0.99, 1.01); /* QRS energy */
    check_gain(cfg, 30.0, 0.99, 1.01);
    check_gain(cfg, 45.0, 0.0, 0.005); /* above the 40 Hz low-pass */
    check_gain(cfg, 50.0, 0.0, 0.005);
    /* Diagnosis: 150 Hz low-pass; the notch now carries the 50 Hz. */
    cfg.lowpass_hz = 150.0;
    check_gain(cfg, 50.0, 0.0, 0.01);
    check_gain(cfg, 45.0, 0.99, 1.01);
    check_gain(cfg, 100.0, 0.99, 1.01);
    check_gain(cfg, 170.0, 0.0, 0.005);
    /* 60 Hz mains. */
    cfg.mains_hz = 60.0;
    check_gain(cfg, 60.0, 0.0, 0.01);
    check_gain(cfg, 50.0, 0.99, 1.01);
    /* 1000 Hz (PTB) and 125 Hz, where 150 Hz is above Nyquist and dropped. */
    cfg.fs_hz = 1000.0;
    check_gain(cfg, 60.0, 0.0, 0.01);
    check_gain(cfg, 120.0, 0.99, 1.01);
    cfg.fs_hz = 125.0;
    cfg.mains_hz = 50.0;
    check_gain(cfg, 50.0, 0.0, 0.01);
    check_gain(cfg, 20.0, 0.99, 1.01);
}

static void test_filter_has_no_delay_and_no_phase_shift(void **state)
{
    (void)state;
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter_config_init(&cfg);
    cfg.fs_hz = 500.0;
    /* An impulse comes out centred on the same sample, symmetric. */
    size_t n = 20000, at = 9000;
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    x[at] = 1.0f;
    float *y = run_filter(&cfg, x, n, 777);
    size_t peak = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(y[i]) > fabsf(y[peak])) {
            peak = i;
        }
    }
    assert_int_equal(peak, at);
    for (size_t k = 1; k < 2000; k++) {
        assert_true(fabsf(y[at + k] - y[at - k]) < 1e-6f);
    }
    free(x);
    free(y);
    /* A 7 Hz sine comes out on top of itself (phase 0). */
    x = sine(cfg.fs_hz, 30.0, 7.0, 1.0, 0.0, &n);
    y = run_filter(&cfg, x, n, 4096);
    for (size_t i = n / 4; i < 3 * n / 4; i++) {
        assert_true(fabsf(y[i] - x[i]) < 0.005f);
    }
    free(x);
    free(y);
}

static void test_filter_edges_have_no_transient(void **state)
{
    (void)state;
    /* A 3 mV electrode offset under a 10 Hz wave. Zero padding would put a
     * 3 mV step at each edge and ring for seconds; the reflected padding
     * keeps the error at the edges under 0.1 mV (the wave's phase at the end
     * is arbitrary, so a little remains) and, further than half the kernel
     * (3 s) from them, under 0.005. */
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter_config_init(&cfg);
    size_t n;
    float *x = sine(360.0, 20.0, 10.0, 0.5, 3.0, &n);
    float *y = run_filter(&cfg, x, n, 1000);
    for (size_t i = 0; i < n; i++) {
        float e = fabsf(y[i] - (x[i] - 3.0f));
        int edge = i < 1080 || i >= n - 1080;
        if (e >= (edge ? 0.1f : 0.005f)) {
            print_message("edge: error %g at %zu of %zu\n", e, i, n);
        }
        assert_true(e < (edge ? 0.1f : 0.005f));
    }
    free(x);
    free(y);
    /* A record shorter than the kernel still comes out whole. */
    x = sine(360.0, 0.5, 10.0, 0.5, 1.0, &n);
    y = run_filter(&cfg, x, n, 7);
    assert_true(isfinite(y[0]) && isfinite(y[n - 1]));
    free(x);
    free(y);
}

static void test_filter_block_size_does_not_change_output(void **state)
{
    (void)state;
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter_config_init(&cfg);
    cfg.fs_hz = 250.0;
    cfg.nleads = 3;
    size_t n = 25000;
    float *x = malloc(n * 3 * sizeof *x);
    assert_non_null(x);
    uint64_t s = 42;
    for (size_t i = 0; i < n * 3; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    float *ref = run_filter(&cfg, x, n, n);
    const size_t blocks[] = {1, 3, 100, 1023, 4096, 10000};
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        float *y = run_filter(&cfg, x, n, blocks[k]);
        assert_memory_equal(y, ref, n * 3 * sizeof *y);
        free(y);
    }
    free(ref);
    free(x);
}

static void test_filter_missing_samples_stay_missing(void **state)
{
    (void)state;
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter_config_init(&cfg);
    cfg.nleads = 2;
    size_t n = 7200;
    float *x = malloc(n * 2 * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (float)sin(2.0 * PI * 5.0 * (double)i / 360.0);
        x[2 * i + 1] = (i >= 3000 && i < 3100) ? NAN : x[2 * i];
    }
    float *y = run_filter(&cfg, x, n, 500);
    for (size_t i = 0; i < n; i++) {
        assert_true(isfinite(y[2 * i]));
        assert_int_equal(isnan(y[2 * i + 1]) != 0, i >= 3000 && i < 3100);
    }
    free(x);
    free(y);
}

static void test_filter_bad_arguments(void **state)
{
    (void)state;
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter *f = (rdx_ecg_filter *)&cfg;
    rdx_error err;
    rdx_ecg_filter_config_init(&cfg);
    assert_int_equal(rdx_ecg_filter_new(NULL, &f, &err), RDX_EINVAL);
    assert_null(f);
    assert_int_equal(rdx_ecg_filter_new(&cfg, NULL, &err), RDX_EINVAL);
    cfg.fs_hz = 10.0;
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, &err), RDX_EINVAL);
    cfg.fs_hz = 360.0;
    cfg.nleads = 0;
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, &err), RDX_EINVAL);
    cfg.nleads = 1;
    cfg.mains_hz = 55.0;
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, &err), RDX_EINVAL);
    cfg.mains_hz = 50.0;
    cfg.highpass_hz = 45.0; /* above the 40 Hz low-pass */
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "high-pass"));
    cfg.highpass_hz = NAN;
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, &err), RDX_EINVAL);
    cfg.highpass_hz = 0.0; /* no high-pass at all is allowed */
    assert_int_equal(rdx_ecg_filter_new(&cfg, &f, &err), RDX_OK);
    assert_int_equal(rdx_ecg_filter_taps(f), 2161);
    assert_int_equal(rdx_ecg_filter_push(f, NULL, 2, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_filter_flush(f, &err), RDX_OK); /* nothing pushed */
    assert_int_equal(rdx_ecg_filter_flush(f, &err), RDX_ESTATE);
    rdx_ecg_filter_free(f);
    rdx_ecg_filter_free(NULL);
    assert_int_equal(rdx_ecg_filter_taps(NULL), 0);
    assert_true(isnan(rdx_ecg_filter_gain(NULL, 1.0)));
    rdx_ecg_filter_config_init(NULL);
}

static int make_filter(void *ctx)
{
    (void)ctx;
    rdx_ecg_filter_config cfg;
    rdx_ecg_filter_config_init(&cfg);
    cfg.nleads = 2;
    rdx_ecg_filter *f = NULL;
    rdx_status st = rdx_ecg_filter_new(&cfg, &f, NULL);
    if (st != RDX_OK) {
        assert_int_equal(st, RDX_ENOMEM);
        assert_null(f);
        return 1;
    }
    float x[20] = {0};
    assert_int_equal(rdx_ecg_filter_push(f, x, 10, NULL), RDX_OK);
    assert_int_equal(rdx_ecg_filter_flush(f, NULL), RDX_OK);
    rdx_ecg_filter_free(f);
    return 0;
}

static void test_filter_out_of_memory_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(make_filter, NULL) >= 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_gain_at_chosen_frequencies),
        cmocka_unit_test(test_filter_has_no_delay_and_no_phase_shift),
        cmocka_unit_test(test_filter_edges_have_no_transient),
        cmocka_unit_test(test_filter_block_size_does_not_change_output),
        cmocka_unit_test(test_filter_missing_samples_stay_missing),
        cmocka_unit_test(test_filter_bad_arguments),
        cmocka_unit_test(test_filter_out_of_memory_sweep),
    };
    return cmocka_run_group_tests_name("ecg_filter", tests, NULL, NULL);
}
