/* The format-16 WFDB writer: record 100s written out and compared with a
 * golden header and an independent encoding, read back with its checksums,
 * range errors, clipping, abandoned writers, and an out-of-memory sweep. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rdx/ecg.h"
#include "support/testutil.h"

static rdx_buf slurp(const char *path)
{
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 1u << 24);
    if (rdx_file_read(path, &b, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return b;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* Copy record 100s into a format-16 record dir/100s via the writer. */
static rdx_status copy_100s(const char *dir, size_t block, rdx_error *err)
{
    rdx_ecg_record *rec = NULL;
    rdx_ecg_writer *w = NULL;
    rdx_status st = rdx_ecg_record_open("tests/fixtures/ecg/100s", NULL, &rec, err);
    if (st != RDX_OK) {
        return st;
    }
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    rdx_ecg_writer_cfg cfg = {dir,     "100s",        in->fs_hz,    in->nsig,
                              in->sig, in->ncomments, in->comments, 0};
    int32_t *buf = malloc(block * in->nsig * sizeof *buf);
    if (buf == NULL) {
        rdx_ecg_record_free(rec);
        return RDX_ENOMEM;
    }
    st = rdx_ecg_writer_new(&cfg, &w, err);
    while (st == RDX_OK) {
        size_t got = 0;
        st = rdx_ecg_record_read(rec, buf, block, &got, err);
        if (st == RDX_OK && got == 0) {
            st = rdx_ecg_writer_finish(w, err);
            break;
        }
        if (st == RDX_OK) {
            st = rdx_ecg_writer_write(w, buf, got, err);
        }
    }
    rdx_ecg_writer_free(w);
    rdx_ecg_record_free(rec);
    free(buf);
    return st;
}

static void test_writer_100s_matches_golden_and_reads_back(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    rdx_error err;
    assert_int_equal(copy_100s(dir, 1000, &err), RDX_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/100s.hea", dir);
    rdx_buf got = slurp(p), want = slurp("tests/fixtures/ecg/100s-f16.hea");
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    rdx_buf_free(&got);
    rdx_buf_free(&want);

    /* The .dat is the 212 samples as 16-bit little-endian words. */
    snprintf(p, sizeof p, "%s/100s.dat", dir);
    rdx_buf dat = slurp(p), src = slurp("tests/fixtures/ecg/100s.dat");
    assert_int_equal(dat.len, 21600 * 2 * 2);
    for (size_t i = 0; i < 43200; i++) {
        const uint8_t *b = src.data + (i / 2) * 3;
        int v = (i % 2 == 0) ? (b[0] | ((b[1] & 0x0f) << 8)) : (b[2] | ((b[1] & 0xf0) << 4));
        v = v >= 2048 ? v - 4096 : v;
        int16_t w = (int16_t)(uint16_t)(dat.data[2 * i] | dat.data[2 * i + 1] << 8);
        if (w != v) {
            fail_msg("sample %zu: %d, want %d", i, w, v);
        }
    }
    rdx_buf_free(&dat);
    rdx_buf_free(&src);

    /* Read back through the reader, checksums verified. */
    rdx_ecg_record *rec = NULL;
    snprintf(p, sizeof p, "%s/100s", dir);
    assert_int_equal(rdx_ecg_record_open(p, NULL, &rec, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_info_get(rec)->sig[0].format, 16);
    int32_t *all = malloc(21600 * 2 * sizeof *all);
    size_t n = 0, g;
    assert_non_null(all);
    do {
        assert_int_equal(rdx_ecg_record_read(rec, all + 2 * n, 777, &g, &err), RDX_OK);
        n += g;
    } while (g > 0);
    assert_int_equal(n, 21600);
    assert_int_equal(all[0], 995);
    assert_int_equal(all[1], 1011);
    free(all);
    rdx_ecg_record_free(rec);
    /* Only the two files: no temporary left behind. */
    assert_int_equal(count_entries(dir), 2);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_writer_ranges_invalid_and_clipping(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    rdx_error err;
    rdx_ecg_signal_info sig[2];
    memset(sig, 0, sizeof sig);
    sig[0].gain_adu_per_unit = 1000;
    sig[0].units = "uV";
    sig[0].description = "lead I";
    sig[1].gain_adu_per_unit = 200;
    sig[1].baseline_adu = -5;
    sig[1].adc_zero = 0;
    sig[1].adc_resolution = 12;
    rdx_ecg_writer_cfg cfg = {dir, "r", 500, 2, sig, 0, NULL, 0};
    rdx_ecg_writer *w = NULL;
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_OK);
    const int32_t ok[] = {1, -1, RDX_ECG_SAMPLE_INVALID, 32767};
    assert_int_equal(rdx_ecg_writer_write(w, ok, 2, &err), RDX_OK);
    const int32_t bad[] = {0, 0, 5, 40000};
    assert_int_equal(rdx_ecg_writer_write(w, bad, 2, &err), RDX_ERANGE);
    assert_non_null(strstr(err.msg, "r: signal 1, frame 3: value 40000 does not fit format 16"));
    assert_int_equal(rdx_ecg_writer_write(w, NULL, 0, &err), RDX_OK);
    assert_int_equal(rdx_ecg_writer_finish(w, &err), RDX_OK);
    assert_int_equal(rdx_ecg_writer_finish(w, &err), RDX_ESTATE);
    assert_int_equal(rdx_ecg_writer_write(w, ok, 1, &err), RDX_ESTATE);
    rdx_ecg_writer_free(w);
    char p[512];
    snprintf(p, sizeof p, "%s/r.hea", dir);
    rdx_buf h = slurp(p);
    assert_string_equal((const char *)h.data, "r 2 500 2\r\n"
                                              "r.dat 16 1000/uV 16 0 1 -32767 0 lead I\r\n"
                                              "r.dat 16 200(-5) 12 0 -1 32766 0\r\n");
    rdx_buf_free(&h);
    rdx_ecg_record *rec = NULL;
    int32_t v[4];
    size_t got;
    snprintf(p, sizeof p, "%s/r", dir);
    assert_int_equal(rdx_ecg_record_open(p, NULL, &rec, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_read(rec, v, 4, &got, &err), RDX_OK);
    assert_int_equal(got, 2);
    assert_memory_equal(v, ok, sizeof ok);
    rdx_ecg_record_free(rec);

    /* With clipping, out-of-range values are pinned to +-32767. */
    cfg.name = "c";
    cfg.clip = 1;
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_OK);
    const int32_t wide[] = {-100000, 100000};
    assert_int_equal(rdx_ecg_writer_write(w, wide, 1, &err), RDX_OK);
    assert_int_equal(rdx_ecg_writer_finish(w, &err), RDX_OK);
    rdx_ecg_writer_free(w);
    snprintf(p, sizeof p, "%s/c", dir);
    assert_int_equal(rdx_ecg_record_open(p, NULL, &rec, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_read(rec, v, 4, &got, &err), RDX_OK);
    assert_int_equal(got, 1);
    assert_int_equal(v[0], -32767);
    assert_int_equal(v[1], 32767);
    rdx_ecg_record_free(rec);

    /* An abandoned writer leaves nothing. */
    size_t before = count_entries(dir);
    cfg.name = "gone";
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_OK);
    assert_int_equal(rdx_ecg_writer_write(w, ok, 2, &err), RDX_OK);
    assert_int_equal(count_entries(dir), before + 1); /* the temporary */
    rdx_ecg_writer_free(w);
    assert_int_equal(count_entries(dir), before);
    rdx_ecg_writer_free(NULL);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_writer_rejects_bad_configuration(void **state)
{
    (void)state;
    rdx_error err;
    rdx_ecg_writer *w = (rdx_ecg_writer *)&err;
    rdx_ecg_signal_info sig;
    memset(&sig, 0, sizeof sig);
    sig.gain_adu_per_unit = 200;
    rdx_ecg_writer_cfg cfg = {"/tmp", "a/b", 360, 1, &sig, 0, NULL, 0};
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_EINVAL);
    assert_null(w);
    assert_non_null(strstr(err.msg, "may not contain"));
    cfg.name = "ok";
    cfg.fs_hz = 0;
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_EINVAL);
    cfg.fs_hz = 360;
    cfg.nsig = 0;
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_ELIMIT);
    cfg.nsig = 1;
    sig.gain_adu_per_unit = 0;
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_EINVAL);
    sig.gain_adu_per_unit = 200;
    sig.description = "two\nlines";
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_EINVAL);
    sig.description = NULL;
    sig.adc_resolution = 24;
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_EINVAL);
    sig.adc_resolution = 0;
    cfg.dir = "/nonexistent/dir";
    assert_int_equal(rdx_ecg_writer_new(&cfg, &w, &err), RDX_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
    assert_int_equal(rdx_ecg_writer_new(NULL, &w, &err), RDX_EINVAL);
}

static int write_small(void *ctx)
{
    const char *dir = ctx;
    rdx_error err;
    return copy_100s(dir, 4096, &err) == RDX_OK ? 0 : 1;
}

static void test_writer_out_of_memory_sweep(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    assert_true(rdx_oom_sweep(write_small, dir) > 5);
    rdx_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_100s_matches_golden_and_reads_back),
        cmocka_unit_test(test_writer_ranges_invalid_and_clipping),
        cmocka_unit_test(test_writer_rejects_bad_configuration),
        cmocka_unit_test(test_writer_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
