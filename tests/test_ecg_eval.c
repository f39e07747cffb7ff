/* Beat-by-beat scoring (EC57, bxb rules) on hand-made cases with exact
 * expected counts, then `rdx ecg eval` as a user runs it. */
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

/* An annotation spec: time and mnemonic ("N", "[", "~30" for NOISE with
 * subtype 0x30, "~" for NOISE with subtype 0). */
typedef struct spec {
    int64_t t;
    const char *m;
} spec;

static rdx_ecg_annset *make(const spec *s, size_t n)
{
    rdx_ecg_annset *set = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_annset_new(&set, &err), RDX_OK);
    for (size_t i = 0; i < n; i++) {
        rdx_ecg_ann a;
        memset(&a, 0, sizeof a);
        a.sample = s[i].t;
        if (strcmp(s[i].m, "~30") == 0) {
            a.code = RDX_ECG_ANN_NOISE;
            a.subtype = 0x30;
        } else {
            int c = rdx_ecg_ann_code(s[i].m);
            assert_true(c > 0);
            a.code = (uint8_t)c;
        }
        assert_int_equal(rdx_ecg_annset_add(set, &a, &err), RDX_OK);
    }
    return set;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void score(const spec *r, size_t nr, const spec *t, size_t nt, double fs, double window,
                  int64_t start, int64_t end, uint64_t tp, uint64_t fn, uint64_t fp)
{
    rdx_ecg_annset *ref = make(r, nr), *test = make(t, nt);
    rdx_ecg_eval_opts o = {fs, start, end, window};
    rdx_ecg_eval_counts c;
    rdx_error err;
    assert_int_equal(rdx_ecg_eval_compare(ref, test, &o, &c, &err), RDX_OK);
    if (c.tp != tp || c.fn != fn || c.fp != fp) {
        fail_msg("got TP %llu FN %llu FP %llu, want %llu %llu %llu", (unsigned long long)c.tp,
                 (unsigned long long)c.fn, (unsigned long long)c.fp, (unsigned long long)tp,
                 (unsigned long long)fn, (unsigned long long)fp);
    }
    rdx_ecg_annset_free(ref);
    rdx_ecg_annset_free(test);
}

static void test_eval_match_window(void **state)
{
    (void)state;
    const spec ref[] = {{1000, "N"}, {2000, "N"}, {3000, "V"}};
    /* Identical beats, whatever their class. */
    const spec same[] = {{1000, "N"}, {2000, "A"}, {3000, "N"}};
    score(ref, 3, same, 3, 1000, 0, 0, -1, 3, 0, 0);
    /* 150 ms at 1000 Hz is 150 samples: just inside ... */
    const spec in[] = {{1150, "N"}, {1850, "N"}, {3150, "N"}};
    score(ref, 3, in, 3, 1000, 0, 0, -1, 3, 0, 0);
    /* ... and just outside, where each beat counts twice (the last extra one
     * comes after the reference ends, where bxb stops by default). */
    const spec out[] = {{1151, "N"}, {1849, "N"}, {3151, "N"}};
    score(ref, 3, out, 3, 1000, 0, 0, -1, 0, 3, 2);
    score(ref, 3, out, 3, 1000, 0, 0, 5000, 0, 3, 3);
    /* At 360 Hz the window is round(54.0) = 54 samples. */
    const spec r360[] = {{360, "N"}, {720, "N"}};
    const spec t360[] = {{414, "N"}, {775, "N"}};
    score(r360, 2, t360, 2, 360, 0, 0, 5000, 1, 1, 1);
    /* A custom window. */
    score(ref, 3, out, 3, 1000, 0.2, 0, -1, 3, 0, 0);
}

static void test_eval_missed_extra_and_non_beats(void **state)
{
    (void)state;
    const spec ref[] = {{1000, "N"}, {2000, "N"}, {3000, "N"}, {4000, "N"}};
    const spec missed[] = {{1000, "N"}, {3000, "N"}, {4000, "N"}};
    score(ref, 4, missed, 3, 1000, 0, 0, -1, 3, 1, 0);
    const spec extra[] = {{1000, "N"}, {1500, "N"}, {2000, "N"}, {3000, "N"}, {4000, "N"}};
    score(ref, 4, extra, 5, 1000, 0, 0, -1, 4, 0, 1);
    /* Non-beat annotations (rhythm, note, artifact) take no part. */
    const spec noisy[] = {{900, "+"},  {1000, "N"}, {1500, "\""}, {1600, "|"},
                          {2000, "N"}, {3000, "N"}, {4000, "N"}};
    score(ref, 4, noisy, N_OF(noisy), 1000, 0, 0, -1, 4, 0, 0);
    /* Nothing detected, and nothing to detect. */
    score(ref, 4, NULL, 0, 1000, 0, 0, -1, 0, 4, 0);
    score(NULL, 0, ref, 4, 1000, 0, 0, -1, 0, 0, 0); /* end -1: stops with the reference */
    score(NULL, 0, ref, 4, 1000, 0, 0, 10000, 0, 0, 4);
}

/* bxb's 2002 example (James Pardey): both refinements of the match rule. */
static void test_eval_closer_neighbour_rule(void **state)
{
    (void)state;
    /* window 0.037 s at 1000 Hz -> 37 samples */
    const spec ref[] = {{96, "N"}, {160, "N"}};
    const spec test[] = {{128, "N"}, {185, "N"}};
    score(ref, 2, test, 2, 1000, 0.037, 0, -1, 2, 0, 0);
    /* A test beat between two reference beats goes to the closer one. */
    const spec r2[] = {{1000, "N"}, {1100, "N"}};
    const spec t2[] = {{1080, "N"}};
    score(r2, 2, t2, 1, 1000, 0, 0, -1, 1, 1, 0);
    /* Two test beats near one reference beat: one matches, one is extra. */
    const spec r3[] = {{1000, "N"}};
    const spec t3[] = {{990, "N"}, {1040, "N"}};
    score(r3, 1, t3, 2, 1000, 0, 0, 10000, 1, 0, 1);
    /* With end -1 the comparison stops with the reference, as in bxb. */
    score(r3, 1, t3, 2, 1000, 0, 0, -1, 1, 0, 0);
}

static void test_eval_vf_and_flutter_waves(void **state)
{
    (void)state;
    /* Reference VF: its beats are skipped and test beats in it not counted. */
    const spec ref[] = {{1000, "N"}, {2000, "["}, {2500, "!"},
                        {3000, "N"}, {4000, "]"}, {5000, "N"}};
    const spec test[] = {{1000, "N"}, {2500, "N"}, {3000, "N"}, {3500, "N"}, {5000, "N"}};
    score(ref, N_OF(ref), test, N_OF(test), 1000, 0, 0, -1, 2, 0, 0);
    /* Outside VF a flutter wave is not a beat (bxb maps '!' to O). */
    const spec r2[] = {{1000, "N"}, {2000, "!"}};
    const spec t2[] = {{1000, "!"}, {2000, "N"}};
    score(r2, 2, t2, 2, 1000, 0, 0, -1, 0, 1, 1);
    /* VF that never ends: everything after its start is left out. */
    const spec r3[] = {{1000, "N"}, {2000, "["}, {3000, "N"}};
    const spec t3[] = {{1000, "N"}, {3000, "N"}, {4000, "N"}};
    score(r3, 3, t3, 3, 1000, 0, 0, -1, 1, 0, 0);
}

static void test_eval_shutdown(void **state)
{
    (void)state;
    /* Test beats during reference shutdown are false positives. */
    const spec ref[] = {{1000, "N"}, {2000, "~30"}, {4000, "~"}, {5000, "N"}};
    const spec test[] = {{1000, "N"}, {3000, "N"}, {5000, "N"}};
    score(ref, N_OF(ref), test, N_OF(test), 1000, 0, 0, -1, 2, 0, 1);
    /* Reference beats during test shutdown are false negatives. */
    const spec r2[] = {{1000, "N"}, {3000, "N"}, {5000, "N"}};
    const spec t2[] = {{1000, "N"}, {1500, "~30"}, {4500, "~"}, {5000, "N"}};
    score(r2, 3, t2, N_OF(t2), 1000, 0, 0, -1, 2, 1, 0);
}

static void test_eval_start_and_end(void **state)
{
    (void)state;
    /* A test beat just before the start may match the first reference beat. */
    const spec ref[] = {{5000, "N"}, {10050, "N"}, {11000, "N"}};
    const spec test[] = {{5000, "N"}, {9990, "N"}, {11000, "N"}};
    score(ref, 3, test, 3, 1000, 0, 10000, -1, 2, 0, 0);
    /* A stray test beat just after the start is dropped uncounted when the
     * next one is the better match (bxb's learning-period rule) ... */
    const spec r2[] = {{10500, "N"}, {11500, "N"}};
    const spec t2[] = {{10020, "N"}, {10500, "N"}, {11500, "N"}};
    score(r2, 2, t2, 3, 1000, 0, 10000, -1, 2, 0, 0);
    /* ... but counted later in the record. */
    const spec t3[] = {{10200, "N"}, {10500, "N"}, {11500, "N"}};
    score(r2, 2, t3, 3, 1000, 0, 10000, -1, 2, 0, 1);
    /* End: stop once both streams pass it; 0 stops with either file. */
    const spec r4[] = {{1000, "N"}, {2000, "N"}, {3000, "N"}};
    score(r4, 3, r4, 3, 1000, 0, 0, 2500, 2, 0, 0);
    const spec t4[] = {{1000, "N"}};
    score(r4, 3, t4, 1, 1000, 0, 0, 0, 1, 0, 0);
    score(r4, 3, t4, 1, 1000, 0, 0, -1, 1, 2, 0);
}

static void test_eval_time_resolution_and_figures(void **state)
{
    (void)state;
    /* The reference gives times in ms (time resolution 1000) for a 500 Hz record. */
    rdx_ecg_annset *ref = NULL, *test = NULL;
    rdx_error err;
    rdx_ecg_ann a;
    assert_int_equal(rdx_ecg_annset_new(&ref, &err), RDX_OK);
    memset(&a, 0, sizeof a);
    a.code = RDX_ECG_ANN_NOTE;
    a.aux = (const uint8_t *)"## time resolution: 1000";
    a.aux_len = (uint8_t)strlen((const char *)a.aux);
    assert_int_equal(rdx_ecg_annset_add(ref, &a, &err), RDX_OK);
    rdx_buf b;
    rdx_buf_init(&b, 4096);
    memset(&a, 0, sizeof a);
    a.code = RDX_ECG_ANN_NORMAL;
    a.sample = 2000;
    assert_int_equal(rdx_ecg_annset_add(ref, &a, &err), RDX_OK);
    a.sample = 4000;
    assert_int_equal(rdx_ecg_annset_add(ref, &a, &err), RDX_OK);
    assert_int_equal(rdx_ecg_ann_encode(ref, &b, &err), RDX_OK);
    rdx_ecg_annset_free(ref);
    assert_int_equal(rdx_ecg_ann_parse(b.data, b.len, "ref", &ref, &err), RDX_OK);
    rdx_buf_free(&b);
    const spec t[] = {{1000, "N"}, {2000, "N"}};
    test = make(t, 2);
    rdx_ecg_eval_opts o = {500, 0, -1, 0};
    rdx_ecg_eval_counts c, total;
    assert_int_equal(rdx_ecg_eval_compare(ref, test, &o, &c, &err), RDX_OK);
    assert_int_equal(c.tp, 2);
    assert_int_equal(c.fn + c.fp, 0);
    assert_int_equal(c.offset_sum, 0);

    /* Se and +P, and gross totals. */
    memset(&total, 0, sizeof total);
    assert_true(isnan(rdx_ecg_eval_se(&total)));
    assert_true(isnan(rdx_ecg_eval_ppv(&total)));
    rdx_ecg_eval_counts x = {99, 1, 3, 99, 0};
    rdx_ecg_eval_add(&total, &x);
    rdx_ecg_eval_add(&total, &c);
    assert_int_equal(total.tp, 101);
    assert_float_equal(rdx_ecg_eval_se(&total), 100.0 * 101 / 102, 1e-9);
    assert_float_equal(rdx_ecg_eval_ppv(&total), 100.0 * 101 / 104, 1e-9);

    /* Bad options. */
    o.fs_hz = 0;
    assert_int_equal(rdx_ecg_eval_compare(ref, test, &o, &c, &err), RDX_EINVAL);
    o.fs_hz = 360;
    o.window_s = -1;
    assert_int_equal(rdx_ecg_eval_compare(ref, test, &o, &c, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_eval_compare(NULL, test, &o, &c, &err), RDX_EINVAL);
    rdx_ecg_annset_free(ref);
    rdx_ecg_annset_free(test);
}

/* ---- rdx ecg eval ---- */

static void test_eval_cli_scores_the_fixture(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *self[] = {"ecg", "eval", "-t", "atr", "tests/fixtures/ecg/100s.hea", NULL};
    assert_int_equal(rdx_run_rdx(&r, self), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "100s"));
    assert_non_null(strstr(r.out, "Gross             74      74      0      0  100.000  100.000"));
    rdx_run_free(&r);

    /* A detector that missed the 10th beat and added one at 30 s. */
    rdx_ecg_annset *ref = NULL, *test = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_ann_read("tests/fixtures/ecg/100s.atr", &ref, &err), RDX_OK);
    assert_int_equal(rdx_ecg_annset_new(&test, &err), RDX_OK);
    size_t beat = 0;
    for (size_t i = 0; i < rdx_ecg_annset_count(ref); i++) {
        rdx_ecg_ann a;
        assert_int_equal(rdx_ecg_annset_get(ref, i, &a), RDX_OK);
        if (!rdx_ecg_ann_isqrs(a.code) || ++beat == 10) {
            continue;
        }
        rdx_ecg_ann n = {a.sample + 5, RDX_ECG_ANN_NORMAL, 0, 0, 0, 0, NULL};
        assert_int_equal(rdx_ecg_annset_add(test, &n, &err), RDX_OK);
        if (beat == 40) {
            n.sample += 100; /* 278 ms after a beat: an extra detection */
            assert_int_equal(rdx_ecg_annset_add(test, &n, &err), RDX_OK);
        }
    }
    char *dir = rdx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/100s.qrs", dir);
    assert_int_equal(rdx_ecg_ann_write(path, test, &err), RDX_OK);
    const char *json[] = {"ecg", "eval", "--test-dir", dir, "--json", "tests/fixtures/ecg/100s",
                          NULL};
    assert_int_equal(rdx_run_rdx(&r, json), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(
        r.out, "\"record\":\"100s\",\"path\":\"tests/fixtures/ecg/100s\",\"nref\":74,\"tp\":73,"
               "\"fn\":1,\"fp\":1,\"se\":98.6486,\"ppv\":98.6486"));
    assert_non_null(strstr(r.out, "\"mean_offset_ms\":13.8889"));
    assert_non_null(strstr(r.out, "\"failed\":false"));
    rdx_run_free(&r);

    /* --start 30 leaves only the second half. */
    const char *late[] = {
        "ecg", "eval", "--test-dir", dir, "--start", "0:30", "tests/fixtures/ecg/100s", NULL};
    assert_int_equal(rdx_run_rdx(&r, late), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Gross"));
    assert_null(strstr(r.out, "     74 "));
    rdx_run_free(&r);
    rdx_ecg_annset_free(ref);
    rdx_ecg_annset_free(test);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_eval_cli_errors(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *help[] = {"ecg", "eval", "--help", NULL};
    assert_int_equal(rdx_run_rdx(&r, help), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx ecg eval"));
    rdx_run_free(&r);

    const char *none[] = {"ecg", "eval", NULL};
    assert_int_equal(rdx_run_rdx(&r, none), 0);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "rdx ecg eval: no RECORD given"));
    rdx_run_free(&r);

    const char *badopt[] = {"ecg", "eval", "--start", "soon", "x", NULL};
    assert_int_equal(rdx_run_rdx(&r, badopt), 0);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "bad --start time 'soon'"));
    rdx_run_free(&r);

    const char *unknown[] = {"ecg", "eval", "--frob", "x", NULL};
    assert_int_equal(rdx_run_rdx(&r, unknown), 0);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);

    /* No test annotations: the file is named; other records still scored. */
    const char *nofile[] = {"ecg", "eval", "-t", "nosuch", "tests/fixtures/ecg/100s", NULL};
    assert_int_equal(rdx_run_rdx(&r, nofile), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx ecg eval: tests/fixtures/ecg/100s.nosuch"));
    rdx_run_free(&r);

    const char *nohdr[] = {
        "ecg", "eval", "-t", "atr", "tests/fixtures/ecg/nosuch", "tests/fixtures/ecg/100s", NULL};
    assert_int_equal(rdx_run_rdx(&r, nohdr), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "nosuch.hea"));
    assert_non_null(strstr(r.out, "100s"));
    rdx_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_match_window),
        cmocka_unit_test(test_eval_missed_extra_and_non_beats),
        cmocka_unit_test(test_eval_closer_neighbour_rule),
        cmocka_unit_test(test_eval_vf_and_flutter_waves),
        cmocka_unit_test(test_eval_shutdown),
        cmocka_unit_test(test_eval_start_and_end),
        cmocka_unit_test(test_eval_time_resolution_and_figures),
        cmocka_unit_test(test_eval_cli_scores_the_fixture),
        cmocka_unit_test(test_eval_cli_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
