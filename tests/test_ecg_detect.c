/*
 * rdx ecg detect as a user runs it: the annotation file it writes (compared
 * with a golden copy byte for byte), --json figures, -j, exit codes and
 * messages for bad input, --help; and the rhythm summary behind --json.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/ecg.h"
#include "support/testutil.h"

static void run(struct rdx_run *r, const char *const *argv)
{
    assert_int_equal(rdx_run_rdx(r, argv), 0);
}

static void read_all(const char *path, rdx_buf *b)
{
    rdx_error err;
    rdx_buf_init(b, 1 << 24);
    assert_int_equal(rdx_file_read(path, b, &err), RDX_OK);
}

static void test_detect_writes_golden_annotations(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char rec[512], golden[512], out[1024];
    rdx_test_fixture(rec, sizeof rec, "ecg/100s");
    const char *argv[] = {"ecg", "detect", "-o", dir, rec, NULL};
    struct rdx_run r;
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "100s: 74 beats"));
    rdx_run_free(&r);
    snprintf(out, sizeof out, "%s/100s.qrs", dir);
    rdx_buf got, want;
    read_all(out, &got);
    read_all(rdx_test_fixture(golden, sizeof golden, "ecg/100s.qrs.expected"), &want);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, got.len);
    /* And it reads back as 74 N annotations. */
    rdx_ecg_annset *set = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_ann_read(out, &set, &err), RDX_OK);
    assert_int_equal(rdx_ecg_annset_count(set), 74);
    rdx_ecg_ann a;
    assert_int_equal(rdx_ecg_annset_get(set, 0, &a), RDX_OK);
    assert_int_equal(a.code, RDX_ECG_ANN_NORMAL);
    rdx_ecg_annset_free(set);
    rdx_buf_free(&got);
    rdx_buf_free(&want);
    rdx_test_rmrf(dir);
    free(dir);
}

/* Copy the fixture record to dir as record "copy". */
static void copy_fixture(const char *dir, char *hea_out, size_t n)
{
    char p[512], q[1024];
    rdx_buf b;
    rdx_error err;
    read_all(rdx_test_fixture(p, sizeof p, "ecg/100s.dat"), &b);
    snprintf(q, sizeof q, "%s/copy.dat", dir);
    assert_int_equal(rdx_file_write_atomic(q, b.data, b.len, &err), RDX_OK);
    rdx_buf_free(&b);
    const char hea[] = "copy 2 360 21600\n"
                       "copy.dat 212 200 11 1024 995 21537 0 MLII\n"
                       "copy.dat 212 200 11 1024 1011 -3962 0 V5\n";
    snprintf(hea_out, n, "%s/copy.hea", dir);
    assert_int_equal(rdx_file_write_atomic(hea_out, hea, sizeof hea - 1, &err), RDX_OK);
}

static void test_detect_json_and_threads(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char rec[512], copy[1024];
    rdx_test_fixture(rec, sizeof rec, "ecg/100s.hea");
    copy_fixture(dir, copy, sizeof copy);
    const char *argv[] = {"ecg", "detect", "--json", "-j", "2",  "-a",
                          "det", "-o",     dir,      rec,  copy, NULL};
    struct rdx_run r;
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    const char *keys[] = {"\"beats\":74",    "\"hr_mean_bpm\":", "\"hr_min_bpm\":",
                          "\"hr_max_bpm\":", "\"rr_mean_ms\":",  "\"sdnn_ms\":",
                          "\"rmssd_ms\":",   "\"pauses\":[]",    "\"signal_loss\":[]"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_non_null(strstr(r.out, keys[i]));
    }
    /* Two records, in the order given. */
    const char *second = strstr(strstr(r.out, "\"beats\":74") + 1, "\"beats\":74");
    assert_non_null(second);
    assert_non_null(strstr(r.out, "100s.det"));
    assert_non_null(strstr(r.out, "copy.det"));
    assert_true(strstr(r.out, "100s.det") < strstr(r.out, "copy.det"));
    rdx_run_free(&r);
    /* The same record twice would write one file twice: a usage error. */
    const char *twice[] = {"ecg", "detect", "-o", dir, rec, rec, NULL};
    run(&r, twice);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "two records named '100s'"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_detect_bad_input(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char rec[512], path[1024], hea[1024];
    rdx_test_fixture(rec, sizeof rec, "ecg/100s");
    struct rdx_run r;

    /* A missing record fails (1) and names it; the good one is still done. */
    snprintf(path, sizeof path, "%s/nope", dir);
    const char *missing[] = {"ecg", "detect", "-o", dir, path, rec, NULL};
    run(&r, missing);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx ecg detect: "));
    assert_non_null(strstr(r.err, "nope.hea"));
    assert_non_null(strstr(r.out, "100s: 74 beats"));
    rdx_run_free(&r);

    /* A header whose frequency is absurd. */
    snprintf(hea, sizeof hea, "%s/bad.hea", dir);
    const char text[] = "bad 1 0 100\nbad.dat 16 200 12 0 0 0 0 I\n";
    rdx_error err;
    assert_int_equal(rdx_file_write_atomic(hea, text, sizeof text - 1, &err), RDX_OK);
    const char *bad[] = {"ecg", "detect", "-o", dir, hea, NULL};
    run(&r, bad);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "bad.hea"));
    rdx_run_free(&r);

    /* An output directory that does not exist. */
    snprintf(path, sizeof path, "%s/no/such/dir", dir);
    const char *noout[] = {"ecg", "detect", "-o", path, rec, NULL};
    run(&r, noout);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "100s.qrs"));
    rdx_run_free(&r);

    /* Usage errors exit 2. */
    const char *none[] = {"ecg", "detect", NULL};
    run(&r, none);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *badj[] = {"ecg", "detect", "-j", "0", rec, NULL};
    run(&r, badj);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *bada[] = {"ecg", "detect", "-a", "x/y", rec, NULL};
    run(&r, bada);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *badopt[] = {"ecg", "detect", "--frob", rec, NULL};
    run(&r, badopt);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);

    const char *help[] = {"ecg", "detect", "--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx ecg detect"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

/* --resample: the detector runs on a copy at another rate and the beats come
 * back at the record's own sample times, so they score against its .atr. */
static void test_detect_resampled_copies_score_against_the_reference(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char rec[512];
    rdx_test_fixture(rec, sizeof rec, "ecg/100s");
    const char *const rates[] = {"128", "250", "500", "1000"};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        struct rdx_run r;
        const char *argv[] = {"ecg", "detect", "--resample", rates[i], "-o", dir, rec, NULL};
        run(&r, argv);
        assert_int_equal(r.exit_code, 0);
        assert_non_null(strstr(r.out, "100s: 74 beats"));
        rdx_run_free(&r);
        const char *ev[] = {"ecg", "eval", "--test-dir", dir, "--json", rec, NULL};
        run(&r, ev);
        assert_int_equal(r.exit_code, 0);
        if (strstr(r.out, "\"fn\":0,") == NULL || strstr(r.out, "\"fp\":0,") == NULL) {
            fail_msg("--resample %s: %s", rates[i], r.out);
        }
        rdx_run_free(&r);
    }
    struct rdx_run r;
    const char *low[] = {"ecg", "detect", "--resample", "50", "-o", dir, rec, NULL};
    run(&r, low);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--resample"));
    rdx_run_free(&r);
    const char *junk[] = {"ecg", "detect", "--resample", "2x", "-o", dir, rec, NULL};
    run(&r, junk);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_filter_verb_writes_a_readable_record(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char rec[512], out[1024];
    rdx_test_fixture(rec, sizeof rec, "ecg/100s");
    struct rdx_run r;
    const char *argv[] = {"ecg", "filter", rec, "-o", dir, "--mains", "60", NULL};
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "21600 frames x 2 leads"));
    rdx_run_free(&r);
    /* The copy is a format-16 record of the same shape, without an offset. */
    snprintf(out, sizeof out, "%s/100s", dir);
    rdx_ecg_record *fr = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_record_open(out, NULL, &fr, &err), RDX_OK);
    const rdx_ecg_record_info *info = rdx_ecg_record_info_get(fr);
    assert_int_equal(info->nsig, 2);
    assert_int_equal(info->nsamp, 21600);
    assert_int_equal(info->sig[0].format, 16);
    assert_true(info->sig[0].gain_adu_per_unit == 200.0);
    assert_string_equal(info->sig[0].description, "MLII");
    assert_int_equal(info->ncomments, 1);
    assert_non_null(strstr(info->comments[0], "notch 60 Hz"));
    static float x[21600 * 2];
    size_t got = 0;
    assert_int_equal(rdx_ecg_record_read_phys(fr, x, 21600, &got, &err), RDX_OK);
    assert_int_equal(got, 21600);
    double mean = 0.0;
    for (size_t i = 0; i < got; i++) {
        mean += x[2 * i] / (double)got;
    }
    assert_true(fabs(mean) < 0.02); /* the raw lead sits near -0.2 mV */
    rdx_ecg_record_free(fr);
    /* Its beats are where the raw record's are. */
    const char *det[] = {"ecg", "detect", "-o", dir, out, NULL};
    run(&r, det);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "100s: 74 beats"));
    rdx_run_free(&r);

    /* Refused: the record's own directory, a bad option value, no -o. */
    char own[512];
    rdx_test_fixture(own, sizeof own, "ecg");
    const char *same[] = {"ecg", "filter", "-o", own, rec, NULL};
    run(&r, same);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "own directory"));
    rdx_run_free(&r);
    const char *badm[] = {"ecg", "filter", "-o", dir, "--mains", "55", rec, NULL};
    run(&r, badm);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *noo[] = {"ecg", "filter", rec, NULL};
    run(&r, noo);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *help[] = {"ecg", "filter", "--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx ecg filter"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void test_plot_draws_grid_leads_and_marks(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char rec[512], out[1024];
    rdx_test_fixture(rec, sizeof rec, "ecg/100s");
    snprintf(out, sizeof out, "%s/strip.svg", dir);
    struct rdx_run r;
    const char *argv[] = {"ecg", "plot", rec, "--from", "2", "--to", "10", "-o", out, NULL};
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "2 leads"));
    rdx_run_free(&r);
    rdx_buf b;
    read_all(out, &b);
    const char *svg = (const char *)b.data;
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"216.0mm\""));
    /* 8 s at 25 mm/s is 200 mm: 201 vertical lines (40 of them 5 mm ones)
     * and, over two 30 mm strips, 61 horizontal ones. */
    assert_int_equal(count(svg, "<line x1="), 201 + 61 + count(svg, "stroke-dasharray"));
    assert_int_equal(count(svg, "<polyline"), 2);
    assert_non_null(strstr(svg, ">MLII<"));
    assert_non_null(strstr(svg, ">V5<"));
    /* The reference has 10 beats between 2 s and 10 s; one RR label fewer. */
    size_t marks = count(svg, "l-1 -1.6 h2 z");
    assert_int_equal(marks, 10);
    assert_int_equal(count(svg, "</text>") - 4, marks - 1);
    rdx_buf_free(&b);

    /* Marks from the reference annotations instead of the detector. */
    const char *atr[] = {"ecg", "plot", rec, "-a", "atr", "-o", out, NULL};
    run(&r, atr);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "0.00-10.00 s"));
    rdx_run_free(&r);
    read_all(out, &b);
    assert_non_null(strstr((const char *)b.data, "QRS marks: 100s.atr"));
    rdx_buf_free(&b);

    /* Bad ranges. */
    const char *past[] = {"ecg", "plot", rec, "--from", "100", "-o", out, NULL};
    run(&r, past);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "past the end"));
    rdx_run_free(&r);
    const char *longs[] = {"ecg", "plot", rec, "--to", "61", "-o", out, NULL};
    run(&r, longs);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *noann[] = {"ecg", "plot", rec, "-a", "nope", "-o", out, NULL};
    run(&r, noann);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "100s.nope"));
    rdx_run_free(&r);
    const char *help[] = {"ecg", "plot", "--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_summary_figures(void **state)
{
    (void)state;
    /* 250 Hz; RRs of 1.0, 0.8, 1.2 s, then a 2.4 s pause, then a loss. */
    const int64_t beats[] = {250, 500, 700, 1000, 1600, 1850, 3000, 3250};
    const rdx_ecg_span loss[] = {{1900, 2900}};
    rdx_ecg_summary s;
    rdx_error err;
    assert_int_equal(rdx_ecg_summary_compute(beats, 8, loss, 1, 250.0, 3500, &s, &err), RDX_OK);
    assert_int_equal(s.nbeats, 8);
    /* The RR from 1850 to 3000 crosses the loss and is left out. */
    assert_int_equal(s.nrr, 6);
    double rr[] = {1000, 800, 1200, 2400, 1000, 1000};
    double mean = 0, ss = 0, sd = 0;
    for (int i = 0; i < 6; i++) {
        mean += rr[i] / 6.0;
    }
    for (int i = 0; i < 6; i++) {
        ss += (rr[i] - mean) * (rr[i] - mean);
    }
    /* Successive differences within runs: 200, 400, 1200, 1400 (the run
     * breaks at the loss). */
    sd = sqrt((200.0 * 200 + 400.0 * 400 + 1200.0 * 1200 + 1400.0 * 1400) / 4.0);
    assert_true(fabs(s.rr_mean_ms - mean) < 1e-9);
    assert_true(fabs(s.sdnn_ms - sqrt(ss / 5.0)) < 1e-9);
    assert_true(fabs(s.rmssd_ms - sd) < 1e-9);
    assert_true(fabs(s.hr_mean_bpm - 60000.0 / mean) < 1e-9);
    /* Fewer than 8 intervals: min and max fall back to the mean. */
    assert_true(fabs(s.hr_min_bpm - s.hr_mean_bpm) < 1e-9);
    assert_int_equal(s.npauses, 1);
    assert_int_equal(s.pauses[0].start, 1000);
    assert_int_equal(s.pauses[0].end, 1600);
    assert_int_equal(s.nloss, 1);
    assert_int_equal(s.loss[0].end, 2900);
    rdx_ecg_summary_free(&s);
    rdx_ecg_summary_free(NULL);

    /* No beats at all. */
    assert_int_equal(rdx_ecg_summary_compute(NULL, 0, NULL, 0, 360.0, 3600, &s, &err), RDX_OK);
    assert_true(isnan(s.hr_mean_bpm));
    assert_true(isnan(s.sdnn_ms));
    rdx_ecg_summary_free(&s);

    /* Bad arguments. */
    const int64_t back[] = {10, 5};
    assert_int_equal(rdx_ecg_summary_compute(back, 2, NULL, 0, 360.0, 100, &s, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_summary_compute(beats, 8, NULL, 0, 0.0, 100, &s, &err), RDX_EINVAL);
}

static void test_summary_min_max_over_eight_beats(void **state)
{
    (void)state;
    /* 20 beats at 1 s, then 20 at 0.5 s: HR 60 then 120. */
    int64_t beats[40];
    int64_t t = 0;
    for (int i = 0; i < 40; i++) {
        beats[i] = t;
        t += i < 20 ? 100 : 50;
    }
    rdx_ecg_summary s;
    assert_int_equal(rdx_ecg_summary_compute(beats, 40, NULL, 0, 100.0, t, &s, NULL), RDX_OK);
    assert_true(fabs(s.hr_min_bpm - 60.0) < 1e-9);
    assert_true(fabs(s.hr_max_bpm - 120.0) < 1e-9);
    rdx_ecg_summary_free(&s);
}

static int summary_oom(void *ctx)
{
    (void)ctx;
    const int64_t beats[] = {0, 1000, 2000};
    const rdx_ecg_span loss[] = {{2100, 2200}};
    rdx_ecg_summary s;
    rdx_status st = rdx_ecg_summary_compute(beats, 3, loss, 1, 360.0, 3000, &s, NULL);
    if (st != RDX_OK) {
        assert_int_equal(st, RDX_ENOMEM);
        return 1;
    }
    rdx_ecg_summary_free(&s);
    return 0;
}

static void test_summary_out_of_memory_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(summary_oom, NULL) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_writes_golden_annotations),
        cmocka_unit_test(test_detect_json_and_threads),
        cmocka_unit_test(test_detect_bad_input),
        cmocka_unit_test(test_detect_resampled_copies_score_against_the_reference),
        cmocka_unit_test(test_filter_verb_writes_a_readable_record),
        cmocka_unit_test(test_plot_draws_grid_leads_and_marks),
        cmocka_unit_test(test_summary_figures),
        cmocka_unit_test(test_summary_min_max_over_eight_beats),
        cmocka_unit_test(test_summary_out_of_memory_sweep),
    };
    return cmocka_run_group_tests_name("ecg_detect", tests, NULL, NULL);
}
