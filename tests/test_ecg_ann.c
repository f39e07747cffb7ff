/* MIT annotation files: the real 100s.atr read and written back byte for
 * byte, every pseudo-annotation encoded exactly as wrann does, the code
 * table, damaged files with their messages, and an out-of-memory sweep. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/ecg.h"
#include "support/testutil.h"

static rdx_buf file_bytes(const char *path)
{
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 1u << 26);
    assert_int_equal(rdx_file_read(path, &b, &err), RDX_OK);
    return b;
}

static void assert_round_trip(const char *path)
{
    rdx_buf in = file_bytes(path), out;
    rdx_ecg_annset *set = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_ann_parse(in.data, in.len, path, &set, &err), RDX_OK);
    rdx_buf_init(&out, 1u << 26);
    assert_int_equal(rdx_ecg_ann_encode(set, &out, &err), RDX_OK);
    if (out.len != in.len || memcmp(out.data, in.data, in.len) != 0) {
        fail_msg("%s: re-encoded %zu bytes differ from the %zu read", path, out.len, in.len);
    }
    rdx_buf_free(&in);
    rdx_buf_free(&out);
    rdx_ecg_annset_free(set);
}

static void test_ann_100s_contents(void **state)
{
    (void)state;
    rdx_ecg_annset *set = NULL;
    rdx_error err;
    rdx_ecg_ann a;
    assert_int_equal(rdx_ecg_ann_read("tests/fixtures/ecg/100s.atr", &set, &err), RDX_OK);
    assert_int_equal(rdx_ecg_annset_count(set), 75);
    size_t beats = 0, normal = 0, apc = 0;
    for (size_t i = 0; i < rdx_ecg_annset_count(set); i++) {
        assert_int_equal(rdx_ecg_annset_get(set, i, &a), RDX_OK);
        beats += rdx_ecg_ann_isqrs(a.code) != 0;
        normal += a.code == RDX_ECG_ANN_NORMAL;
        apc += a.code == RDX_ECG_ANN_APC;
    }
    assert_int_equal(beats, 74);
    assert_int_equal(normal, 73);
    assert_int_equal(apc, 1);
    /* The first annotation: the rhythm label "(N" at sample 18 (rdann: 0:00.050). */
    assert_int_equal(rdx_ecg_annset_get(set, 0, &a), RDX_OK);
    assert_int_equal(a.sample, 18);
    assert_int_equal(a.code, RDX_ECG_ANN_RHYTHM);
    assert_int_equal(a.aux_len, 3);
    assert_memory_equal(a.aux, "(N\0", 3);
    /* The first beat: N at sample 77 (0:00.214). */
    assert_int_equal(rdx_ecg_annset_get(set, 1, &a), RDX_OK);
    assert_int_equal(a.sample, 77);
    assert_int_equal(a.code, RDX_ECG_ANN_NORMAL);
    assert_null(a.aux);
    assert_int_equal(rdx_ecg_annset_get(set, 75, &a), RDX_ERANGE);
    assert_int_equal(rdx_ecg_annset_get(NULL, 0, &a), RDX_EINVAL);
    assert_int_equal(rdx_ecg_annset_count(NULL), 0);
    assert_true(rdx_ecg_annset_time_resolution(set) == 0.0);
    rdx_ecg_annset_free(set);
}

static void test_ann_100s_round_trip_is_byte_exact(void **state)
{
    (void)state;
    assert_round_trip("tests/fixtures/ecg/100s.atr");
    /* And through a file written by rdx_ecg_ann_write(). */
    rdx_ecg_annset *set = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_ann_read("tests/fixtures/ecg/100s.atr", &set, &err), RDX_OK);
    char *dir = rdx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/100s.atr", dir);
    assert_int_equal(rdx_ecg_ann_write(path, set, &err), RDX_OK);
    rdx_buf a = file_bytes("tests/fixtures/ecg/100s.atr"), b = file_bytes(path);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    rdx_buf_free(&a);
    rdx_buf_free(&b);
    rdx_ecg_annset_free(set);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_ann_every_mitdb_reference_round_trips(void **state)
{
    (void)state;
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        skip();
    }
    char dirp[512];
    snprintf(dirp, sizeof dirp, "%s/ecg/mitdb", data);
    DIR *d = opendir(dirp);
    if (d == NULL) {
        skip();
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".atr") == 0) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dirp, e->d_name);
            assert_round_trip(p);
            n++;
        }
    }
    closedir(d);
    assert_true(n >= 1);
}

static void add(rdx_ecg_annset *s, int64_t t, int code, int sub, int chan, int num, const char *aux)
{
    rdx_ecg_ann a;
    rdx_error err;
    memset(&a, 0, sizeof a);
    a.sample = t;
    a.code = (uint8_t)code;
    a.subtype = (int8_t)sub;
    a.chan = (uint8_t)chan;
    a.num = (int8_t)num;
    if (aux) {
        a.aux = (const uint8_t *)aux;
        a.aux_len = (uint8_t)strlen(aux);
    }
    assert_int_equal(rdx_ecg_annset_add(s, &a, &err), RDX_OK);
}

/* The exact words putann() writes for each case. */
static void test_ann_encoding_matches_putann(void **state)
{
    (void)state;
    rdx_ecg_annset *s = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_annset_new(&s, &err), RDX_OK);
    add(s, 100, RDX_ECG_ANN_NORMAL, 0, 0, 0, NULL);   /* 1<<10 | 100 */
    add(s, 1200, RDX_ECG_ANN_PVC, 0, 0, 0, NULL);     /* SKIP 1100, then 5<<10 | 0 */
    add(s, 1200, RDX_ECG_ANN_NOTQRS, 0, 0, 0, NULL);  /* SKIP -1, then 0<<10 | 1 */
    add(s, 1210, RDX_ECG_ANN_NOISE, -1, 1, 3, "ab");  /* SUB 0x3ff, CHN 1, NUM 3, AUX 2 */
    add(s, 1220, RDX_ECG_ANN_RHYTHM, 0, 1, 3, "(N");  /* sticky chan/num: no CHN/NUM */
    add(s, 1215, RDX_ECG_ANN_NORMAL, 0, 0, 3, "odd"); /* step back: SKIP -5; CHN 0; AUX 3+pad */
    rdx_buf b;
    rdx_buf_init(&b, 4096);
    assert_int_equal(rdx_ecg_ann_encode(s, &b, &err), RDX_OK);
    static const uint8_t want[] = {
        0x64, 0x04,                                     /* N +100 */
        0x00, 0xec, 0x00, 0x00, 0x4c, 0x04, 0x00, 0x14, /* SKIP 1100, V +0 */
        0x00, 0xec, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, /* SKIP -1, null +1 */
        0x0a, 0x38, 0xff, 0xf7, 0x01, 0xf8, 0x03, 0xf0, /* ~ +10, SUB -1, CHN 1, NUM 3 */
        0x02, 0xfc, 'a',  'b',                          /* AUX "ab" */
        0x0a, 0x70, 0x02, 0xfc, '(',  'N',              /* + +10, AUX "(N" */
        0x00, 0xec, 0xff, 0xff, 0xfb, 0xff, 0x00, 0x04, /* SKIP -5, N +0 */
        0x00, 0xf8, 0x03, 0xfc, 'o',  'd',  'd',  0x00, /* CHN 0, AUX "odd" + pad */
        0x00, 0x00,                                     /* end of file */
    };
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);

    /* Reading it back gives the same annotations. */
    rdx_ecg_annset *r = NULL;
    assert_int_equal(rdx_ecg_ann_parse(b.data, b.len, "mem", &r, &err), RDX_OK);
    assert_int_equal(rdx_ecg_annset_count(r), 6);
    for (size_t i = 0; i < 6; i++) {
        rdx_ecg_ann x, y;
        assert_int_equal(rdx_ecg_annset_get(s, i, &x), RDX_OK);
        assert_int_equal(rdx_ecg_annset_get(r, i, &y), RDX_OK);
        assert_int_equal(x.sample, y.sample);
        assert_int_equal(x.code, y.code);
        assert_int_equal(x.subtype, y.subtype);
        assert_int_equal(x.chan, y.chan);
        assert_int_equal(x.num, y.num);
        assert_int_equal(x.aux_len, y.aux_len);
        if (x.aux_len) {
            assert_memory_equal(x.aux, y.aux, x.aux_len);
            assert_int_equal(y.aux[y.aux_len], 0); /* NUL-terminated for callers */
        }
    }
    rdx_ecg_annset_free(r);
    rdx_buf_free(&b);
    rdx_ecg_annset_free(s);

    /* An empty set is just the end-of-file word. */
    assert_int_equal(rdx_ecg_annset_new(&s, &err), RDX_OK);
    rdx_buf_init(&b, 16);
    assert_int_equal(rdx_ecg_ann_encode(s, &b, &err), RDX_OK);
    assert_int_equal(b.len, 2);
    rdx_buf_free(&b);
    rdx_ecg_annset_free(s);
}

static void test_ann_reader_rules(void **state)
{
    (void)state;
    rdx_ecg_annset *s = NULL;
    rdx_error err;
    rdx_ecg_ann a;
    /* Leading SKIP and stray NUM/CHN apply before the first annotation;
     * SUB and AUX apply only to the annotation they follow. */
    static const uint8_t f[] = {
        0x00, 0xec, 0x01, 0x00, 0x00, 0x00, /* SKIP 65536 */
        0x05, 0xf0,                         /* NUM 5 (sticky) */
        0x02, 0xf8,                         /* CHN 2 (sticky) */
        0x0a, 0x04,                         /* N at 65546 */
        0x07, 0xf4,                         /* SUB 7 */
        0x01, 0xfc, 'z',  0x00,             /* AUX "z" */
        0x0a, 0x14,                         /* V at 65556: sub 0, no aux, chan 2, num 5 */
        0x00, 0x00, 0xde, 0xad,             /* end; trailing bytes are ignored */
    };
    assert_int_equal(rdx_ecg_ann_parse(f, sizeof f, "f", &s, &err), RDX_OK);
    assert_int_equal(rdx_ecg_annset_count(s), 2);
    assert_int_equal(rdx_ecg_annset_get(s, 0, &a), RDX_OK);
    assert_int_equal(a.sample, 65546);
    assert_int_equal(a.num, 5);
    assert_int_equal(a.chan, 2);
    assert_int_equal(a.subtype, 7);
    assert_int_equal(a.aux_len, 1);
    assert_int_equal(a.aux[0], 'z');
    assert_int_equal(rdx_ecg_annset_get(s, 1, &a), RDX_OK);
    assert_int_equal(a.sample, 65556);
    assert_int_equal(a.code, RDX_ECG_ANN_PVC);
    assert_int_equal(a.subtype, 0);
    assert_null(a.aux);
    assert_int_equal(a.chan, 2);
    assert_int_equal(a.num, 5);
    rdx_ecg_annset_free(s);

    /* A time-resolution note, as put_ann_table() writes it. */
    rdx_ecg_annset *w = NULL;
    assert_int_equal(rdx_ecg_annset_new(&w, &err), RDX_OK);
    add(w, 0, RDX_ECG_ANN_NOTE, 0, 0, 0, "## time resolution: 1000");
    add(w, 0, RDX_ECG_ANN_NOTQRS, 0, 0, 0, NULL);
    add(w, 2000, RDX_ECG_ANN_NORMAL, 0, 0, 0, NULL);
    rdx_buf b;
    rdx_buf_init(&b, 4096);
    assert_int_equal(rdx_ecg_ann_encode(w, &b, &err), RDX_OK);
    assert_int_equal(rdx_ecg_ann_parse(b.data, b.len, "tr", &s, &err), RDX_OK);
    assert_true(rdx_ecg_annset_time_resolution(s) == 1000.0);
    assert_int_equal(rdx_ecg_annset_count(s), 3);
    assert_int_equal(rdx_ecg_annset_get(s, 1, &a), RDX_OK);
    assert_int_equal(a.sample, 0);
    assert_int_equal(a.code, 0);
    rdx_ecg_annset_free(s);
    rdx_ecg_annset_free(w);
    rdx_buf_free(&b);
}

static void test_ann_damaged_files_are_named(void **state)
{
    (void)state;
    struct {
        const uint8_t *p;
        size_t n;
        rdx_status code;
        const char *msg;
    } cases[] = {
        {(const uint8_t *)"", 0, RDX_ESHORT, "x.atr: byte 0: file ends without its end-of-file"},
        {(const uint8_t *)"\x64\x04", 2, RDX_ESHORT, "byte 2: file ends without"},
        {(const uint8_t *)"\x64\x04\x00", 3, RDX_ESHORT, "byte 2: file ends without"},
        {(const uint8_t *)"\x64\x04\x00\xec\x00", 5, RDX_ESHORT, "byte 2: SKIP interval cut off"},
        {(const uint8_t *)"\x64\x04\x05\xfc\x61\x62", 6, RDX_ESHORT,
         "byte 2: AUX data of 5 bytes runs past the end"},
        {(const uint8_t *)"\x64\x04\x03\xfc\x61\x62\x63", 7, RDX_ESHORT, "runs past the end"},
        /* SKIP -200 puts the next annotation before sample 0. */
        {(const uint8_t *)"\x00\xec\xff\xff\x38\xff\x64\x04\x00\x00", 10, RDX_ERANGE, "before 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rdx_ecg_annset *s = (rdx_ecg_annset *)&cases; /* must come back NULL */
        rdx_error err;
        rdx_error_clear(&err);
        rdx_status st = rdx_ecg_ann_parse(cases[i].p, cases[i].n, "x.atr", &s, &err);
        if (st != cases[i].code || strstr(err.msg, cases[i].msg) == NULL) {
            fail_msg("case %zu: got %d '%s'", i, st, err.msg);
        }
        assert_null(s);
    }
    rdx_ecg_annset *s = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_ann_read("tests/fixtures/ecg/none.atr", &s, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "none.atr"));
    assert_int_equal(rdx_ecg_ann_parse(NULL, 4, "x", &s, &err), RDX_EINVAL);

    /* What may not be added. */
    assert_int_equal(rdx_ecg_annset_new(&s, &err), RDX_OK);
    rdx_ecg_ann a;
    memset(&a, 0, sizeof a);
    a.code = 59;
    assert_int_equal(rdx_ecg_annset_add(s, &a, &err), RDX_EINVAL);
    a.code = 1;
    a.sample = -1;
    assert_int_equal(rdx_ecg_annset_add(s, &a, &err), RDX_EINVAL);
    a.sample = 0;
    a.aux_len = 3;
    assert_int_equal(rdx_ecg_annset_add(s, &a, &err), RDX_EINVAL);
    /* A gap too long for one SKIP. */
    a.aux_len = 0;
    a.sample = (int64_t)1 << 33;
    assert_int_equal(rdx_ecg_annset_add(s, &a, &err), RDX_OK);
    rdx_buf b;
    rdx_buf_init(&b, 64);
    assert_int_equal(rdx_ecg_ann_encode(s, &b, &err), RDX_ERANGE);
    assert_int_equal(b.len, 0);
    rdx_buf_free(&b);
    rdx_ecg_annset_free(s);
    rdx_ecg_annset_free(NULL);
}

static void test_ann_code_table(void **state)
{
    (void)state;
    /* WFDB's isqrs table (ecgmap.h): exactly these codes are beats. */
    static const int qrs[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                              11, 12, 13, 25, 30, 31, 34, 35, 38, 41};
    int n = 0;
    for (int c = -1; c <= 64; c++) {
        int want = 0;
        for (size_t i = 0; i < sizeof qrs / sizeof qrs[0]; i++) {
            want |= qrs[i] == c;
        }
        assert_int_equal(rdx_ecg_ann_isqrs(c) != 0, want);
        n += want;
    }
    assert_int_equal(n, 20);
    assert_string_equal(rdx_ecg_ann_mnemonic(RDX_ECG_ANN_NORMAL), "N");
    assert_string_equal(rdx_ecg_ann_mnemonic(RDX_ECG_ANN_PVC), "V");
    assert_string_equal(rdx_ecg_ann_mnemonic(RDX_ECG_ANN_PACE), "/");
    assert_string_equal(rdx_ecg_ann_mnemonic(RDX_ECG_ANN_NOTE), "\"");
    assert_string_equal(rdx_ecg_ann_mnemonic(RDX_ECG_ANN_RONT), "r");
    assert_string_equal(rdx_ecg_ann_mnemonic(15), "");
    assert_string_equal(rdx_ecg_ann_mnemonic(99), "");
    assert_int_equal(rdx_ecg_ann_code("A"), RDX_ECG_ANN_APC);
    assert_int_equal(rdx_ecg_ann_code("["), RDX_ECG_ANN_VFON);
    assert_int_equal(rdx_ecg_ann_code("zz"), -1);
    assert_int_equal(rdx_ecg_ann_code(""), -1);
    assert_int_equal(rdx_ecg_ann_code(NULL), -1);
}

static int parse_and_encode(void *ctx)
{
    const rdx_buf *in = ctx;
    rdx_ecg_annset *s = NULL;
    rdx_error err;
    if (rdx_ecg_ann_parse(in->data, in->len, "100s.atr", &s, &err) != RDX_OK) {
        assert_null(s);
        return 1;
    }
    rdx_buf out;
    rdx_buf_init(&out, 1u << 20);
    rdx_status st = rdx_ecg_ann_encode(s, &out, &err);
    rdx_buf_free(&out);
    rdx_ecg_annset_free(s);
    return st == RDX_OK ? 0 : 1;
}

static void test_ann_out_of_memory_sweep(void **state)
{
    (void)state;
    rdx_buf in = file_bytes("tests/fixtures/ecg/100s.atr");
    assert_true(rdx_oom_sweep(parse_and_encode, &in) >= 3);
    rdx_buf_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ann_100s_contents),
        cmocka_unit_test(test_ann_100s_round_trip_is_byte_exact),
        cmocka_unit_test(test_ann_every_mitdb_reference_round_trips),
        cmocka_unit_test(test_ann_encoding_matches_putann),
        cmocka_unit_test(test_ann_reader_rules),
        cmocka_unit_test(test_ann_damaged_files_are_named),
        cmocka_unit_test(test_ann_code_table),
        cmocka_unit_test(test_ann_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
