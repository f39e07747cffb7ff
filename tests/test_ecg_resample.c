/*
 * Resampler: output count, a sine interpolated at other rates (up and down),
 * a constant kept exactly, block-size invariance (bit for bit), missing
 * samples, argument checks and the out-of-memory sweep.
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
    size_t nch;
    size_t n; /* frames received */
};

static void on_out(void *user, const float *frames, size_t n)
{
    struct sink *s = user;
    for (size_t k = 0; k < n; k++) {
        if (s->n + k < s->cap) {
            memcpy(s->y + (s->n + k) * s->nch, frames + k * s->nch, s->nch * sizeof(float));
        }
    }
    s->n += n;
}

/* Resample x (n frames of nch) from fi to fo, pushing `block` frames at a
 * time; returns the output (cap frames, caller frees) and its count. */
static float *run(const float *x, size_t n, size_t nch, double fi, double fo, size_t block,
                  size_t *nout)
{
    size_t cap = (size_t)ceil((double)n * fo / fi) + 16;
    struct sink s = {.y = calloc(cap * nch, sizeof(float)), .cap = cap, .nch = nch};
    assert_non_null(s.y);
    rdx_ecg_resampler *r = NULL;
    assert_int_equal(rdx_ecg_resampler_new(fi, fo, nch, on_out, &s, &r, NULL), RDX_OK);
    for (size_t done = 0; done < n; done += block) {
        size_t m = n - done < block ? n - done : block;
        assert_int_equal(rdx_ecg_resampler_push(r, x + done * nch, m, NULL), RDX_OK);
    }
    assert_int_equal(rdx_ecg_resampler_flush(r, NULL), RDX_OK);
    assert_int_equal(rdx_ecg_resampler_flush(r, NULL), RDX_ESTATE);
    assert_int_equal(rdx_ecg_resampler_push(r, x, 1, NULL), RDX_ESTATE);
    rdx_ecg_resampler_free(r);
    *nout = s.n;
    return s.y;
}

static void check_sine(double fi, double fo, double hz)
{
    size_t n = (size_t)(10.0 * fi);
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t k = 0; k < n; k++) {
        x[k] = (float)sin(2.0 * PI * hz * (double)k / fi);
    }
    size_t m = 0;
    float *y = run(x, n, 1, fi, fo, 1000, &m);
    assert_int_equal(m, (size_t)ceil((double)n * fo / fi));
    double worst = 0.0;
    /* Away from the edges (1 s each side), the interpolation is exact to
     * the window's stop-band level. */
    for (size_t j = (size_t)fo; j + (size_t)fo < m; j++) {
        double want = sin(2.0 * PI * hz * (double)j / fo);
        double e = fabs((double)y[j] - want);
        worst = e > worst ? e : worst;
    }
    if (worst > 2e-3) {
        fail_msg("%g -> %g Hz, %g Hz sine: error %g", fi, fo, hz, worst);
    }
    free(x);
    free(y);
}

static void test_resample_sine_up_and_down(void **state)
{
    (void)state;
    check_sine(360.0, 250.0, 10.0);
    check_sine(360.0, 128.0, 10.0);
    check_sine(360.0, 1000.0, 17.0);
    check_sine(250.0, 360.0, 30.0);
    check_sine(360.0, 500.0, 40.0);
}

static void test_resample_constant_stays_exact(void **state)
{
    (void)state;
    float x[2 * 700];
    for (size_t k = 0; k < 700; k++) {
        x[2 * k] = 1.5f;
        x[2 * k + 1] = -0.25f;
    }
    size_t m = 0;
    float *y = run(x, 700, 2, 360.0, 128.0, 7, &m);
    assert_int_equal(m, (size_t)ceil(700.0 * 128.0 / 360.0));
    for (size_t j = 0; j < m; j++) {
        assert_float_equal(y[2 * j], 1.5f, 1e-5f);
        assert_float_equal(y[2 * j + 1], -0.25f, 1e-5f);
    }
    free(y);
}

static void test_resample_block_size_does_not_change_output(void **state)
{
    (void)state;
    size_t n = 5000;
    float *x = malloc(2 * n * sizeof *x);
    assert_non_null(x);
    uint32_t seed = 12345u;
    for (size_t k = 0; k < 2 * n; k++) {
        seed = seed * 1664525u + 1013904223u;
        x[k] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
    const size_t blocks[] = {1, 3, 64, 1023, 1024, 1025, 5000};
    const double rates[] = {128.0, 250.0, 1000.0};
    for (size_t ri = 0; ri < 3; ri++) {
        size_t m0 = 0;
        float *y0 = run(x, n, 2, 360.0, rates[ri], 4096, &m0);
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            size_t m = 0;
            float *y = run(x, n, 2, 360.0, rates[ri], blocks[b], &m);
            assert_int_equal(m, m0);
            assert_memory_equal(y, y0, m * 2 * sizeof(float));
            free(y);
        }
        free(y0);
    }
    free(x);
}

static void test_resample_missing_samples_stay_local(void **state)
{
    (void)state;
    float x[3600];
    for (size_t k = 0; k < 3600; k++) {
        x[k] = 0.5f;
    }
    x[1800] = NAN;
    size_t m = 0;
    float *y = run(x, 3600, 1, 360.0, 250.0, 100, &m);
    size_t nan = 0;
    for (size_t j = 0; j < m; j++) {
        if (isnan(y[j])) {
            nan++;
            /* Only outputs whose kernel reaches input 1800 (24 taps each side at 360 -> 250 Hz). */
            assert_true(fabs((double)j * 360.0 / 250.0 - 1800.0) < 25.0);
        } else {
            assert_float_equal(y[j], 0.5f, 1e-5f);
        }
    }
    assert_true(nan > 0);
    free(y);
}

static void test_resample_bad_arguments(void **state)
{
    (void)state;
    struct sink s = {0};
    rdx_ecg_resampler *r = (rdx_ecg_resampler *)&s;
    rdx_error e;
    assert_int_equal(rdx_ecg_resampler_new(360, 250, 1, on_out, &s, NULL, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_new(360, 250, 1, NULL, &s, &r, &e), RDX_EINVAL);
    assert_null(r);
    assert_int_equal(rdx_ecg_resampler_new(0.0, 250, 1, on_out, &s, &r, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_new(360, NAN, 1, on_out, &s, &r, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_new(360, -1.0, 1, on_out, &s, &r, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_new(360, 250, 0, on_out, &s, &r, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_new(360, 250, 100000, on_out, &s, &r, &e), RDX_EINVAL);
    /* 360 -> 250.001 Hz reduces to 250001 phases. */
    assert_int_equal(rdx_ecg_resampler_new(360, 250.001, 1, on_out, &s, &r, &e), RDX_EINVAL);
    assert_non_null(strstr(e.msg, "phases"));
    /* A 1000:1 downsampling would need a kernel of 32000 taps. */
    assert_int_equal(rdx_ecg_resampler_new(100000, 100, 1, on_out, &s, &r, &e), RDX_EINVAL);
    assert_null(r);
    assert_int_equal(rdx_ecg_resampler_push(NULL, NULL, 0, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_flush(NULL, &e), RDX_EINVAL);
    assert_int_equal(rdx_ecg_resampler_new(360, 250, 1, on_out, &s, &r, &e), RDX_OK);
    assert_int_equal(rdx_ecg_resampler_push(r, NULL, 3, &e), RDX_EINVAL);
    /* Flushing an empty stream delivers nothing. */
    assert_int_equal(rdx_ecg_resampler_flush(r, &e), RDX_OK);
    assert_int_equal(s.n, 0);
    rdx_ecg_resampler_free(r);
    rdx_ecg_resampler_free(NULL);
}

static int make_resampler(void *ctx)
{
    (void)ctx;
    struct sink s = {.y = NULL, .cap = 0, .nch = 2};
    rdx_ecg_resampler *r = NULL;
    rdx_status st = rdx_ecg_resampler_new(360.0, 250.0, 2, on_out, &s, &r, NULL);
    if (st != RDX_OK) {
        assert_int_equal(st, RDX_ENOMEM);
        assert_null(r);
        return 1;
    }
    float x[200] = {0};
    assert_int_equal(rdx_ecg_resampler_push(r, x, 100, NULL), RDX_OK);
    assert_int_equal(rdx_ecg_resampler_flush(r, NULL), RDX_OK);
    rdx_ecg_resampler_free(r);
    return 0;
}

static void test_resample_out_of_memory_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(make_resampler, NULL) >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resample_sine_up_and_down),
        cmocka_unit_test(test_resample_constant_stays_exact),
        cmocka_unit_test(test_resample_block_size_does_not_change_output),
        cmocka_unit_test(test_resample_missing_samples_stay_local),
        cmocka_unit_test(test_resample_bad_arguments),
        cmocka_unit_test(test_resample_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
