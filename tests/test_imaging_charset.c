/*
 * Specific Character Set (0008,0005) to UTF-8: every file of the charset set
 * against golden names established with DCMTK's own conversion (dcmdump +U8)
 * and glibc iconv, plus hand-built data sets for the sets no sample file
 * carries (GB2312 with code extensions, GBK, Greek, Hebrew) and hostile bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../imaging/dicom.h"
#include "rdx/common.h"
#include "rdx/imaging.h"
#include "support/testutil.h"

#define TAG RDX_IMG_TAG

/* Read tag path "gggg,eeee" or "gggg,eeee/i/gggg,eeee..." of ds as text into b. */
static rdx_status get_path(rdx_img_dataset *ds, const char *path, rdx_buf *b)
{
    const rdx_img_item *it = NULL;
    const char *p = path;
    for (;;) {
        unsigned g, e;
        char *end;
        g = (unsigned)strtoul(p, &end, 16);
        assert_true(*end == ',');
        e = (unsigned)strtoul(end + 1, &end, 16);
        if (*end == '\0') {
            return rdx_img_item_get_text(ds, it, TAG(g, e), b, NULL);
        }
        assert_true(*end == '/');
        unsigned long idx = strtoul(end + 1, &end, 10);
        assert_true(*end == '/');
        p = end + 1;
        const rdx_img_item *next = NULL;
        RDX_TRY(rdx_img_item_seq_item(ds, it, TAG(g, e), idx, &next, NULL));
        it = next;
    }
}

static void test_charset_golden_names(void **state)
{
    (void)state;
    char golden[512];
    rdx_test_fixture(golden, sizeof golden, "imaging/charset_names.tsv");
    FILE *f = fopen(golden, "r");
    assert_non_null(f);
    char line[2048];
    int checked = 0;
    rdx_buf b;
    rdx_buf_init(&b, 1 << 16);
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        const char *want = tab + 1;
        char *colon = strchr(line, ':');
        const char *tagpath = "0010,0010";
        if (colon != NULL) {
            *colon = '\0';
            tagpath = colon + 1;
        }
        char rel[2200], path[2300];
        snprintf(rel, sizeof rel, "imaging/charset/%s", line);
        rdx_test_fixture(path, sizeof path, rel);
        rdx_img_dataset *ds = NULL;
        rdx_error err;
        if (rdx_img_dataset_open_file(path, &ds, &err) != RDX_OK) {
            fail_msg("%s", err.msg);
        }
        assert_int_equal(get_path(ds, tagpath, &b), RDX_OK);
        if (strcmp((const char *)b.data, want) != 0) {
            fail_msg("%s %s: got '%s', want '%s'", line, tagpath, (const char *)b.data, want);
        }
        rdx_img_dataset_free(ds);
        checked++;
    }
    fclose(f);
    rdx_buf_free(&b);
    assert_int_equal(checked, 11);
}

/* ---- Hand-built data sets --------------------------------------------------- */

static void put16(rdx_buf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    assert_int_equal(rdx_buf_append(b, x, 2), RDX_OK);
}

static void put32(rdx_buf *b, uint32_t v)
{
    put16(b, v & 0xFFFF);
    put16(b, v >> 16);
}

/* One explicit-VR little-endian element with a short length (PS3.5 7.1.2). */
static void elem(rdx_buf *b, unsigned g, unsigned e, const char *vr, const char *v, size_t n,
                 char pad)
{
    put16(b, g);
    put16(b, e);
    assert_int_equal(rdx_buf_append(b, vr, 2), RDX_OK);
    put16(b, (unsigned)(n + (n & 1)));
    assert_int_equal(rdx_buf_append(b, v, n), RDX_OK);
    if (n & 1) {
        assert_int_equal(rdx_buf_append_u8(b, (uint8_t)pad), RDX_OK);
    }
}

/* A Part 10 stream with the given Specific Character Set and raw Patient Name bytes. */
static void build(rdx_buf *b, const char *charset, const char *pn)
{
    rdx_buf_reset(b);
    static const uint8_t zeros[128];
    assert_int_equal(rdx_buf_append(b, zeros, 128), RDX_OK);
    assert_int_equal(rdx_buf_append(b, "DICM", 4), RDX_OK);
    static const char ts[] = "1.2.840.10008.1.2.1";
    /* (0002,0000) UL group length, (0002,0001) OB 00\01, (0002,0010) UI. */
    put16(b, 0x0002);
    put16(b, 0x0000);
    assert_int_equal(rdx_buf_append(b, "UL", 2), RDX_OK);
    put16(b, 4);
    put32(b, 14 + 8 + 20);
    put16(b, 0x0002);
    put16(b, 0x0001);
    assert_int_equal(rdx_buf_append(b, "OB\0\0", 4), RDX_OK);
    put32(b, 2);
    assert_int_equal(rdx_buf_append(b, "\0\1", 2), RDX_OK);
    elem(b, 0x0002, 0x0010, "UI", ts, sizeof ts - 1, '\0');
    if (charset != NULL) {
        elem(b, 0x0008, 0x0005, "CS", charset, strlen(charset), ' ');
    }
    elem(b, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7", 25, '\0');
    elem(b, 0x0010, 0x0010, "PN", pn, strlen(pn), ' ');
}

static void expect_pn(const char *charset, const char *raw, const char *want)
{
    rdx_buf in, out;
    rdx_buf_init(&in, 4096);
    rdx_buf_init(&out, 4096);
    build(&in, charset, raw);
    rdx_img_dataset *ds = NULL;
    rdx_error err;
    if (rdx_img_dataset_open_mem(in.data, in.len, "built", &ds, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(rdx_img_item_get_text(ds, NULL, TAG(0x0010, 0x0010), &out, NULL), RDX_OK);
    if (strcmp((const char *)out.data, want) != 0) {
        fail_msg("charset '%s': got '%s', want '%s'", charset ? charset : "(none)",
                 (const char *)out.data, want);
    }
    rdx_img_dataset_free(ds);
    rdx_buf_free(&in);
    rdx_buf_free(&out);
}

static void test_charset_chinese_sets(void **state)
{
    (void)state;
    /* PS3.5 Annex K: GB2312 with code extensions, G1 designated by ESC $ ) A after each reset. */
    expect_pn("\\ISO 2022 IR 58",
              "Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=", "Zhang^XiaoDong=张^小东=");
    /* GBK and GB18030 without extensions. */
    expect_pn("GBK", "Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab=", "Wang^XiaoDong=王^小东=");
    expect_pn("GB18030", "Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab=", "Wang^XiaoDong=王^小东=");
    expect_pn("ISO_IR 192", "Wang^XiaoDong=王^小东=", "Wang^XiaoDong=王^小东=");
}

static void test_charset_european_and_middle_eastern(void **state)
{
    (void)state;
    /* PS3.5 Annex H/I examples: Greek (ISO 8859-7) and Hebrew (ISO 8859-8). */
    expect_pn("ISO_IR 126", "\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2", "Διονυσιος");
    expect_pn("ISO_IR 138", "\xf9\xf8\xe5\xef^\xe3\xe1\xe5\xf8\xe4", "שרון^דבורה");
    expect_pn("ISO_IR 100", "Buc^J\xe9r\xf4me", "Buc^Jérôme");
    expect_pn("ISO_IR 144", "\xbb\xee\xda\x63\x65\xdc\xd1\x79\x70\xd3", "Люкceмбypг");
    /* Unlabelled files in the wild are mostly Latin-1. */
    expect_pn(NULL, "Buc^J\xe9r\xf4me", "Buc^Jérôme");
}

static void test_charset_hostile_bytes(void **state)
{
    (void)state;
    /* Invalid UTF-8, a cut-off GB18030 pair, an unknown escape: U+FFFD, never a failure. */
    expect_pn("ISO_IR 192", "Bad\xff^Name", "Bad\xef\xbf\xbd^Name");
    expect_pn("ISO_IR 192", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
    expect_pn("GB18030", "Wang\xcd", "Wang\xef\xbf\xbd");
    expect_pn("\\ISO 2022 IR 87", "A\x1b$Zq", "A\xef\xbf\xbd$Zq");
    expect_pn("\\ISO 2022 IR 87", "\x1b$B;", "\xef\xbf\xbd");
    expect_pn("ISO 2022 IR 6\\ISO 2022 IR 149", "\xb1", "\xef\xbf\xbd");
    /* An unknown defined term falls back to ASCII plus Latin-1. */
    expect_pn("ISO_IR 999", "Ab\xe9", "Abé");
}

static void test_charset_decoder_resets_at_delimiters(void **state)
{
    (void)state;
    rdx_buf out;
    rdx_buf_init(&out, 1024);
    /* JIS X 0208 left active before '^' (non-conforming): the delimiter still resets G0. */
    const char *in = "\x1b$B;3ED^\x1b$BB@O:";
    assert_int_equal(
        rdx_img_charset_decode("\\ISO 2022 IR 87", (const uint8_t *)in, strlen(in), "^=", &out),
        RDX_OK);
    assert_string_equal((const char *)out.data, "山田^太郎");
    rdx_buf_reset(&out);
    const char *kana = "\xd4\xcf\xc0\xde";
    assert_int_equal(rdx_img_charset_decode("ISO_IR 13", (const uint8_t *)kana, 4, "^=", &out),
                     RDX_OK);
    assert_string_equal((const char *)out.data, "ﾔﾏﾀﾞ");
    rdx_buf_reset(&out);
    /* The output cap is honoured. */
    rdx_buf small;
    rdx_buf_init(&small, 4);
    assert_int_equal(
        rdx_img_charset_decode("ISO_IR 100", (const uint8_t *)"\xe9\xe9\xe9", 3, "", &small),
        RDX_ELIMIT);
    rdx_buf_free(&small);
    rdx_buf_free(&out);
    assert_true(rdx_img_utf8_valid((const uint8_t *)"", 0));
    assert_false(rdx_img_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* a surrogate */
}

static int oom_decode(void *ctx)
{
    (void)ctx;
    rdx_buf out;
    rdx_buf_init(&out, 4096);
    const char *in = "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B";
    rdx_status st =
        rdx_img_charset_decode("\\ISO 2022 IR 87", (const uint8_t *)in, strlen(in), "^=", &out);
    int bad = st != RDX_OK;
    if (!bad) {
        assert_string_equal((const char *)out.data, "Yamada^Tarou=山田^太郎");
    } else {
        assert_int_equal(st, RDX_ENOMEM);
    }
    rdx_buf_free(&out);
    return bad;
}

static void test_charset_oom_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(oom_decode, NULL) > 0);
}

/* Display width for table alignment: East Asian wide characters take two cells. */
static void test_charset_text_width(void **state)
{
    (void)state;
    assert_int_equal(rdx_img_text_width(NULL), 0);
    assert_int_equal(rdx_img_text_width(""), 0);
    assert_int_equal(rdx_img_text_width("Wang^XiaoDong"), 13);
    assert_int_equal(rdx_img_text_width("王^小东"), 7);      /* CJK ideographs */
    assert_int_equal(rdx_img_text_width("홍^길동"), 7);      /* Hangul syllables */
    assert_int_equal(rdx_img_text_width("やまだ"), 6);       /* hiragana */
    assert_int_equal(rdx_img_text_width("ﾔﾏﾀﾞ"), 4);         /* halfwidth katakana: narrow */
    assert_int_equal(rdx_img_text_width("ＡＢ"), 4);         /* fullwidth Latin */
    assert_int_equal(rdx_img_text_width("\xe3\x80\x80"), 2); /* U+3000 ideographic space */
    assert_int_equal(rdx_img_text_width("Buc^J\xc3\xa9r\xc3\xb4me"), 10); /* precomposed é, ô */
    assert_int_equal(rdx_img_text_width("e\xcc\x81"), 1);                 /* e + combining acute */
    assert_int_equal(rdx_img_text_width("Люкceмбypг"), 10);
    assert_int_equal(rdx_img_text_width("قباني"), 5);
    assert_int_equal(rdx_img_text_width("\xf0\xa0\x80\x80"), 2); /* U+20000, CJK ext. B */
    assert_int_equal(rdx_img_text_width("a\tb"), 2);             /* control: no cell */
    /* Not UTF-8: each stray byte is one replacement character. */
    assert_int_equal(rdx_img_text_width("\xff\xfe"), 2);
    assert_int_equal(rdx_img_text_width("\xe4\xb8"), 2);     /* truncated sequence */
    assert_int_equal(rdx_img_text_width("\xed\xa0\x80"), 3); /* surrogate */
    assert_int_equal(rdx_img_text_width("\xc0\xaf"), 2);     /* overlong */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charset_golden_names),
        cmocka_unit_test(test_charset_chinese_sets),
        cmocka_unit_test(test_charset_european_and_middle_eastern),
        cmocka_unit_test(test_charset_hostile_bytes),
        cmocka_unit_test(test_charset_decoder_resets_at_delimiters),
        cmocka_unit_test(test_charset_text_width),
        cmocka_unit_test(test_charset_oom_sweep),
    };
    return cmocka_run_group_tests_name("imaging_charset", tests, NULL, NULL);
}
