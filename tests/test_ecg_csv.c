/* CSV uploads through the record API: lead names, values, time columns,
 * line ends, invalid samples, every malformed row with its line and column,
 * seeking, and an out-of-memory sweep. */
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

static char *write_csv(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static rdx_ecg_record_opts csv_opts(double fs)
{
    rdx_ecg_record_opts o;
    memset(&o, 0, sizeof o);
    o.csv_fs_hz = fs;
    return o;
}

static void test_csv_leads_and_values(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char *p = write_csv(dir, "up.csv", "I,II,V1\n0.1,0.25,-0.3\n1,-2.5e-1,0\n\n-0.0016,3,4\n");
    rdx_ecg_record_opts o = csv_opts(500);
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_record_open(p, &o, &rec, &err), RDX_OK);
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    assert_string_equal(in->name, "up");
    assert_int_equal(in->nsig, 3);
    assert_true(in->fs_hz == 500.0);
    assert_int_equal(in->nsamp, 3); /* blank lines are not rows */
    assert_string_equal(in->sig[0].description, "I");
    assert_string_equal(in->sig[2].description, "V1");
    assert_string_equal(in->sig[1].units, "mV");
    assert_true(in->sig[1].gain_adu_per_unit == 1000.0);
    int32_t v[12];
    size_t got;
    assert_int_equal(rdx_ecg_record_read(rec, v, 2, &got, &err), RDX_OK);
    assert_int_equal(got, 2);
    const int32_t want[] = {100, 250, -300, 1000, -250, 0};
    assert_memory_equal(v, want, sizeof want);
    assert_int_equal(rdx_ecg_record_read(rec, v, 4, &got, &err), RDX_OK);
    assert_int_equal(got, 1);
    assert_int_equal(v[0], -2); /* to the nearest microvolt */
    assert_int_equal(v[1], 3000);
    assert_int_equal(rdx_ecg_record_read(rec, v, 4, &got, &err), RDX_OK);
    assert_int_equal(got, 0);
    /* Seek back and read in physical units. */
    assert_int_equal(rdx_ecg_record_seek(rec, 1, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_tell(rec), 1);
    float f[3];
    assert_int_equal(rdx_ecg_record_read_phys(rec, f, 1, &got, &err), RDX_OK);
    assert_int_equal(got, 1);
    assert_float_equal(f[0], 1.0, 1e-6);
    assert_float_equal(f[1], -0.25, 1e-6);
    assert_int_equal(rdx_ecg_record_seek(rec, 9, &err), RDX_ERANGE);
    rdx_ecg_record_free(rec);
    free(p);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_csv_time_column_crlf_quotes_and_gaps(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char *p =
        write_csv(dir, "t.csv",
                  "\xef\xbb\xbf\"time\", \"lead I\" ,\"aVR\"\r\n0.000,1.5, 2\r\n0.002, ,NaN\r\n"
                  "0.004,\"-1\",0.001\r\n");
    rdx_ecg_record_opts o = csv_opts(500);
    o.csv_gain = 200;
    o.csv_units = "uV";
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_record_open(p, &o, &rec, &err), RDX_OK);
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    assert_int_equal(in->nsig, 2);
    assert_string_equal(in->sig[0].description, "lead I");
    assert_string_equal(in->sig[1].description, "aVR");
    assert_string_equal(in->sig[0].units, "uV");
    int32_t v[6];
    size_t got;
    assert_int_equal(rdx_ecg_record_read(rec, v, 3, &got, &err), RDX_OK);
    assert_int_equal(got, 3);
    const int32_t want[] = {300, 400, RDX_ECG_SAMPLE_INVALID, RDX_ECG_SAMPLE_INVALID, -200, 0};
    assert_memory_equal(v, want, sizeof want);
    float f[2];
    assert_int_equal(rdx_ecg_record_seek(rec, 1, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_read_phys(rec, f, 1, &got, &err), RDX_OK);
    assert_true(isnan(f[0]));
    rdx_ecg_record_free(rec);
    free(p);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_csv_bad_uploads_are_named(void **state)
{
    (void)state;
    struct {
        const char *text;
        rdx_status code;
        const char *msg;
    } cases[] = {
        {"", RDX_EPARSE, "b.csv: empty file"},
        {"\n\n", RDX_EPARSE, "empty file"},
        {"I,,V1\n1,2,3\n", RDX_EPARSE, "b.csv:1: column 2 has no lead name"},
        {"I,II\n1,2\n3,abc\n", RDX_EPARSE, "b.csv:3: column 2: 'abc' is not a number"},
        {"I,II\n1,2\n3\n", RDX_EPARSE, "b.csv:3: 1 columns, the header row has 2"},
        {"I,II\n1,2,3\n", RDX_EPARSE, "b.csv:2: more columns than the 2 of the header row"},
        {"I\n1e300\n", RDX_ERANGE, "b.csv:2: column 1: 1e+300 is out of range"},
        {"I\n0x10\n", RDX_EPARSE, "'0x10' is not a number"},
        {"I\ninf\n", RDX_EPARSE, "'inf' is not a number"},
    };
    char *dir = rdx_test_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_csv(dir, "b.csv", cases[i].text);
        rdx_ecg_record_opts o = csv_opts(250);
        rdx_ecg_record *rec = NULL;
        rdx_error err;
        rdx_error_clear(&err);
        rdx_status st = rdx_ecg_record_open(p, &o, &rec, &err);
        if (st == RDX_OK) {
            int32_t v[8];
            size_t got;
            do {
                st = rdx_ecg_record_read(rec, v, 1, &got, &err);
            } while (st == RDX_OK && got > 0);
            rdx_ecg_record_free(rec);
        }
        if (st != cases[i].code || strstr(err.msg, cases[i].msg) == NULL) {
            fail_msg("case %zu: got %d '%s', want '%s'", i, st, err.msg, cases[i].msg);
        }
        free(p);
    }
    /* No frequency, and a file that is not there. */
    char *p = write_csv(dir, "b.csv", "I\n1\n");
    rdx_ecg_record_opts o = csv_opts(0);
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_record_open(p, &o, &rec, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "needs its sampling frequency (--fs)"));
    o = csv_opts(1e9);
    assert_int_equal(rdx_ecg_record_open(p, &o, &rec, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_open(p, NULL, &rec, &err), RDX_EINVAL);
    free(p);
    o = csv_opts(250);
    assert_int_equal(rdx_ecg_record_open("tests/fixtures/ecg/none.csv", &o, &rec, &err),
                     RDX_ENOENT);
    assert_non_null(strstr(err.msg, "none.csv"));
    /* A line longer than the cap. */
    size_t big = 70 * 1024;
    char *text = malloc(big + 16);
    assert_non_null(text);
    memcpy(text, "I\n", 2);
    memset(text + 2, '1', big);
    text[big + 2] = '\n';
    text[big + 3] = '\0';
    p = write_csv(dir, "long.csv", text);
    assert_int_equal(rdx_ecg_record_open(p, &o, &rec, &err), RDX_ELIMIT);
    assert_non_null(strstr(err.msg, "long.csv:2: line longer than"));
    free(p);
    free(text);
    rdx_test_rmrf(dir);
    free(dir);
}

static int open_csv(void *ctx)
{
    const char *path = ctx;
    rdx_ecg_record_opts o = csv_opts(360);
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    if (rdx_ecg_record_open(path, &o, &rec, &err) != RDX_OK) {
        return 1;
    }
    int32_t v[8];
    size_t got;
    rdx_status st = rdx_ecg_record_read(rec, v, 4, &got, &err);
    rdx_ecg_record_free(rec);
    return st == RDX_OK ? 0 : 1;
}

static void test_csv_out_of_memory_sweep(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char *p = write_csv(dir, "m.csv", "t,MLII,V5\n0,1,2\n1,3,4\n");
    assert_true(rdx_oom_sweep(open_csv, p) > 5);
    free(p);
    rdx_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_leads_and_values),
        cmocka_unit_test(test_csv_time_column_crlf_quotes_and_gaps),
        cmocka_unit_test(test_csv_bad_uploads_are_named),
        cmocka_unit_test(test_csv_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
