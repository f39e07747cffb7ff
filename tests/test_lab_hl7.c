/* HL7 v2 ER7: parsing, paths, escapes, character sets, writing, batches, ACKs, orders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/lab.h"
#include "support/testutil.h"
#include "../lab/lab_limits.h"

static rdx_buf slurp(const char *path)
{
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 64u << 20);
    rdx_error_clear(&err);
    if (rdx_file_read(path, &b, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return b;
}

static rdx_buf fixture(const char *name)
{
    char rel[256], path[512];
    snprintf(rel, sizeof rel, "lab/%s", name);
    return slurp(rdx_test_fixture(path, sizeof path, rel));
}

/* The input with every CRLF or LF turned into CR, empty lines dropped, a final CR added. */
static rdx_buf normalise(const uint8_t *p, size_t n)
{
    rdx_buf b;
    rdx_buf_init(&b, n + 2);
    int line_has = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' || p[i] == '\n') {
            if (line_has) {
                assert_int_equal(rdx_buf_append_u8(&b, '\r'), RDX_OK);
            }
            line_has = 0;
            continue;
        }
        line_has = 1;
        assert_int_equal(rdx_buf_append_u8(&b, p[i]), RDX_OK);
    }
    if (line_has) {
        assert_int_equal(rdx_buf_append_u8(&b, '\r'), RDX_OK);
    }
    return b;
}

static rdx_lab_hl7_msg *parse_ok(const void *p, size_t n)
{
    rdx_lab_hl7_msg *m = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    rdx_status st = rdx_lab_hl7_parse(p, n, &m, &err);
    if (st != RDX_OK) {
        fail_msg("parse failed: %s", err.msg);
    }
    return m;
}

static rdx_lab_hl7_msg *parse_str(const char *s)
{
    return parse_ok(s, strlen(s));
}

static rdx_status parse_fails(const char *s, size_t n, const char *needle)
{
    rdx_lab_hl7_msg *m = (rdx_lab_hl7_msg *)1;
    rdx_error err;
    rdx_error_clear(&err);
    rdx_status st = rdx_lab_hl7_parse(s, n, &m, &err);
    assert_int_not_equal(st, RDX_OK);
    assert_null(m);
    if (needle != NULL && strstr(err.msg, needle) == NULL) {
        fail_msg("error '%s' lacks '%s'", err.msg, needle);
    }
    return st;
}

/* Decoded text at path, as a static-lifetime-free string the caller frees. */
static char *get(const rdx_lab_hl7_msg *m, const char *path)
{
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 1 << 20);
    rdx_error_clear(&err);
    rdx_status st = rdx_lab_hl7_get(m, path, &b, &err);
    if (st != RDX_OK) {
        fail_msg("get %s: %s", path, err.msg);
    }
    char *s = rdx_strndup(b.data ? (const char *)b.data : "", b.len);
    rdx_buf_free(&b);
    return s;
}

static void assert_get(const rdx_lab_hl7_msg *m, const char *path, const char *want)
{
    char *s = get(m, path);
    if (strcmp(s, want) != 0) {
        fail_msg("%s: got '%s', want '%s'", path, s, want);
    }
    free(s);
}

static void test_hl7_roundtrip_every_shared_file(void **state)
{
    (void)state;
    const char *dir = rdx_test_data_dir();
    if (dir == NULL) {
        print_message("%s\n", "RDX_DATA (../shared/data) absent: shared HL7 round trip skipped");
        skip();
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/hl7", dir);
    DIR *d = opendir(path);
    if (d == NULL) {
        print_message("%s\n", "no hl7/ under RDX_DATA");
        skip();
    }
    struct dirent *e;
    int files = 0;
    size_t messages = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/hl7/%s", dir, e->d_name);
        rdx_buf in = slurp(path);
        rdx_lab_hl7_batch *b = NULL;
        rdx_error err;
        rdx_error_clear(&err);
        if (rdx_lab_hl7_batch_parse(in.data, in.len, &b, &err) != RDX_OK) {
            fail_msg("%s: %s", e->d_name, err.msg);
        }
        rdx_buf out, want = normalise(in.data, in.len);
        rdx_buf_init(&out, 64u << 20);
        assert_int_equal(rdx_lab_hl7_batch_write(b, &out), RDX_OK);
        if (out.len != want.len || memcmp(out.data, want.data, out.len) != 0) {
            fail_msg("%s: written bytes differ from the input", e->d_name);
        }
        /* Every message alone also parses and writes back its own bytes. */
        for (size_t i = 0; i < rdx_lab_hl7_batch_count(b); i++) {
            rdx_buf one;
            rdx_buf_init(&one, 64u << 20);
            assert_int_equal(rdx_lab_hl7_write(rdx_lab_hl7_batch_msg(b, i), &one), RDX_OK);
            rdx_lab_hl7_msg *m = parse_ok(one.data, one.len);
            rdx_buf again;
            rdx_buf_init(&again, 64u << 20);
            assert_int_equal(rdx_lab_hl7_write(m, &again), RDX_OK);
            assert_int_equal(again.len, one.len);
            assert_memory_equal(again.data, one.data, one.len);
            rdx_buf_free(&again);
            rdx_buf_free(&one);
            rdx_lab_hl7_free(m);
            messages++;
        }
        rdx_buf_free(&out);
        rdx_buf_free(&want);
        rdx_buf_free(&in);
        rdx_lab_hl7_batch_free(b);
        files++;
    }
    closedir(d);
    assert_true(files >= 11);
    assert_true(messages >= 30);
}

static void test_hl7_roundtrip_lf_input_writes_cr(void **state)
{
    (void)state;
    rdx_buf in = fixture("oml_o21-full.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    rdx_buf out, want = normalise(in.data, in.len);
    rdx_buf_init(&out, 1 << 20);
    assert_int_equal(rdx_lab_hl7_write(m, &out), RDX_OK);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, out.len);
    assert_null(memchr(out.data, '\n', out.len));
    rdx_buf_free(&out);
    rdx_buf_free(&want);
    rdx_buf_free(&in);
    rdx_lab_hl7_free(m);
}

static void test_hl7_paths_on_real_order(void **state)
{
    (void)state;
    rdx_buf in = fixture("oml_o21-full.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    assert_get(m, "MSH-1", "|");
    assert_get(m, "MSH-2", "^~\\&");
    assert_get(m, "MSH-9", "OML");
    assert_get(m, "MSH-9.2", "O21");
    assert_get(m, "MSH-9.3", "OML_O21");
    assert_get(m, "MSH-10", "0123");
    assert_get(m, "MSH-12", "2.5.1");
    assert_string_equal(rdx_lab_hl7_charset(m), "UNICODE UTF-8");
    assert_get(m, "PID-3.1", "Patidlist");
    assert_get(m, "PID-3.4.2", "2.16.840.1.114222.4.3.3.2.1.2");
    assert_get(m, "PID-3[2].1", "PID123");
    size_t reps = 0;
    assert_int_equal(rdx_lab_hl7_repetitions(m, "PID-3", &reps, NULL), RDX_OK);
    assert_true(reps >= 2);
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "SPM"), 2);
    assert_get(m, "SPM[2]-2.1.1", "380614-p");
    assert_get(m, "SPM[2]-2.1.2", "Another Lab USA-p");
    assert_get(m, "SPM-4.3", "SCT");
    /* Absent places are empty, not errors; an absent segment is ENOTFOUND. */
    assert_get(m, "PID-250", "");
    assert_get(m, "PID-5.99", "");
    rdx_buf b;
    rdx_buf_init(&b, 100);
    assert_int_equal(rdx_lab_hl7_get(m, "SPM[3]-2", &b, NULL), RDX_ENOTFOUND);
    assert_int_equal(rdx_lab_hl7_get(m, "PID", &b, NULL), RDX_EINVAL);
    assert_int_equal(rdx_lab_hl7_get(m, "PID-0x", &b, NULL), RDX_EINVAL);
    assert_int_equal(rdx_lab_hl7_get(m, "pid-3", &b, NULL), RDX_EINVAL);
    assert_int_equal(rdx_lab_hl7_get(m, "PID[0]-3", &b, NULL), RDX_EINVAL);
    assert_int_equal(rdx_lab_hl7_get(m, "PID-3[99999]", &b, NULL), RDX_EINVAL);
    assert_int_equal(rdx_lab_hl7_get(m, "PID-3.1.1.1", &b, NULL), RDX_EINVAL);
    assert_int_equal(b.len, 0);
    /* Raw access keeps the encoding. */
    const uint8_t *p;
    size_t n;
    assert_int_equal(rdx_lab_hl7_get_raw(m, "MSH-9", &p, &n, NULL), RDX_OK);
    assert_int_equal(n, strlen("OML^O21^OML_O21"));
    assert_memory_equal(p, "OML^O21^OML_O21", n);
    rdx_buf_free(&b);
    rdx_buf_free(&in);
    rdx_lab_hl7_free(m);
}

static void test_hl7_escape_sequences_decode(void **state)
{
    (void)state;
    rdx_lab_hl7_msg *m = parse_str("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\r"
                                   "NTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f|x\\X414243\\y|"
                                   "l1\\.br\\l2|\\H\\bold\\N\\|\\Zlocal\\|\\C2842\\k|"
                                   "a\\M2442\\$B\\C2842\\z\r");
    assert_get(m, "NTE-3", "a|b^c&d~e\\f");
    assert_get(m, "NTE-4", "xABCy");
    assert_get(m, "NTE-5", "l1\nl2");
    assert_get(m, "NTE-6", "bold");
    assert_get(m, "NTE-7", "\\Zlocal\\");
    assert_get(m, "NTE-8", "\\C2842\\k");
    /* \C..\ and \M..\ (ISO 2022 switches) are kept as written, and the bytes after them are
     * not reinterpreted in the switched set: they stay in the MSH-18 character set. */
    assert_get(m, "NTE-9", "a\\M2442\\$B\\C2842\\z");
    /* Written back as text, the escape characters are escaped: \E\C2842\E\. */
    rdx_buf w;
    rdx_buf_init(&w, 256);
    assert_int_equal(rdx_lab_hl7_escape(rdx_lab_hl7_delimiters(m), "", "\\C2842\\", 7, &w, NULL),
                     RDX_OK);
    assert_string_equal((char *)w.data, "\\E\\C2842\\E\\");
    rdx_buf_free(&w);
    rdx_lab_hl7_free(m);
}

static void test_hl7_escape_errors_name_the_field(void **state)
{
    (void)state;
    rdx_lab_hl7_msg *m = parse_str("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\r"
                                   "NTE|1||unterminated \\F|bad \\X4G\\|odd \\X414\\\r");
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 100);
    assert_int_equal(rdx_buf_append_str(&b, "keep"), RDX_OK);
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_hl7_get(m, "NTE-3", &b, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "NTE-3"));
    assert_non_null(strstr(err.msg, "unterminated"));
    assert_int_equal(rdx_lab_hl7_get(m, "NTE-4", &b, &err), RDX_EPARSE);
    assert_int_equal(rdx_lab_hl7_get(m, "NTE-5", &b, &err), RDX_EPARSE);
    assert_string_equal((char *)b.data, "keep");
    rdx_buf_free(&b);
    rdx_lab_hl7_free(m);
}

static void test_hl7_escape_then_decode_is_identity(void **state)
{
    (void)state;
    const rdx_lab_hl7_delims d = {'|', '^', '~', '\\', '&', '#'};
    const char *text = "K+ 5.1 | ^ ~ \\ & # done\r\nnext 钾 µ";
    rdx_buf enc;
    rdx_buf_init(&enc, 1 << 16);
    assert_int_equal(rdx_buf_append_str(&enc, "MSH|^~\\&#|A|B|C|D|20260101||ACK|1|P|2.7|||||"
                                              "|UNICODE UTF-8\rNTE|1||"),
                     RDX_OK);
    assert_int_equal(rdx_lab_hl7_escape(&d, "UNICODE UTF-8", text, strlen(text), &enc, NULL),
                     RDX_OK);
    assert_int_equal(rdx_buf_append_u8(&enc, '\r'), RDX_OK);
    rdx_lab_hl7_msg *m = parse_ok(enc.data, enc.len);
    assert_int_equal(rdx_lab_hl7_delimiters(m)->truncation, '#');
    assert_get(m, "NTE-3", text);
    rdx_lab_hl7_free(m);
    /* Text that is not UTF-8, and characters 8859/1 cannot hold, are refused. */
    assert_int_equal(rdx_lab_hl7_escape(&d, "", "\xff", 1, &enc, NULL), RDX_EPARSE);
    assert_int_equal(rdx_lab_hl7_escape(&d, "8859/1", "钾", strlen("钾"), &enc, NULL), RDX_EPARSE);
    assert_int_equal(rdx_lab_hl7_escape(&d, "EBCDIC", "a", 1, &enc, NULL), RDX_EFORMAT);
    rdx_buf_free(&enc);
}

static void test_hl7_five_delimiters_and_cr_separators(void **state)
{
    (void)state;
    rdx_buf in = fixture("elims_1_72_3029202646_5532_NoPII.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    const rdx_lab_hl7_delims *d = rdx_lab_hl7_delimiters(m);
    assert_int_equal(d->field, '|');
    assert_int_equal(d->truncation, '#');
    assert_get(m, "MSH-2", "^~\\&#");
    assert_get(m, "MSH-9.1", "ORU");
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "SPM"), 5);
    rdx_buf_free(&in);
    rdx_lab_hl7_free(m);
}

static void test_hl7_cr_lf_crlf_parse_the_same(void **state)
{
    (void)state;
    const char *seps[] = {"\r", "\n", "\r\n", "\n\n"};
    rdx_buf first;
    rdx_buf_init(&first, 4096);
    for (size_t k = 0; k < 4; k++) {
        char msg[512];
        snprintf(msg, sizeof msg, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|7|P|2.5.1%sPID|1||42%s",
                 seps[k], seps[k]);
        rdx_lab_hl7_msg *m = parse_str(msg);
        assert_int_equal(rdx_lab_hl7_segment_count(m), 2);
        assert_get(m, "PID-3", "42");
        rdx_buf out;
        rdx_buf_init(&out, 4096);
        assert_int_equal(rdx_lab_hl7_write(m, &out), RDX_OK);
        if (k == 0) {
            assert_int_equal(rdx_buf_append(&first, out.data, out.len), RDX_OK);
        } else {
            assert_int_equal(out.len, first.len);
            assert_memory_equal(out.data, first.data, out.len);
        }
        rdx_buf_free(&out);
        rdx_lab_hl7_free(m);
    }
    rdx_buf_free(&first);
}

static void test_hl7_gb18030_converted_and_written_exactly(void **state)
{
    (void)state;
    rdx_buf in = fixture("gb18030_oml.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    assert_string_equal(rdx_lab_hl7_charset(m), "GB 18030-2000");
    /* 東 is 0x96 0x7C in GB 18030: its trail byte is '|' and must not split PID-5. */
    assert_get(m, "PID-5.1", "王");
    assert_get(m, "PID-5.2", "小東");
    assert_get(m, "PID-7", "19700101");
    assert_get(m, "PID-11.3", "南京");
    assert_get(m, "OBR-4.2", "钾 Potassium");
    /* 淺 ends in '\\', 區 in '^', 億 in '|'; 𠀀 is a four-byte sequence. */
    assert_get(m, "NTE-3", "淺區億𠀀 note&end");
    assert_get(m, "SPM-2.1.1", "NJGL000123");
    rdx_buf out;
    rdx_buf_init(&out, 4096);
    assert_int_equal(rdx_lab_hl7_write(m, &out), RDX_OK);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    /* Chinese in MSH itself, with 東's '|' trail byte before MSH-18. */
    rdx_buf in2 = fixture("gb18030_msh.hl7");
    rdx_lab_hl7_msg *m2 = parse_ok(in2.data, in2.len);
    assert_string_equal(rdx_lab_hl7_charset(m2), "GB 18030-2000");
    assert_get(m2, "MSH-4", "鼓楼東社区");
    assert_get(m2, "MSH-10", "GB0002");
    assert_get(m2, "PID-5.2", "小東");
    rdx_lab_hl7_free(m2);
    rdx_buf_free(&in2);
    /* Escaping for GB 18030 leaves the trail bytes alone and round-trips. */
    rdx_buf enc;
    rdx_buf_init(&enc, 4096);
    assert_int_equal(rdx_lab_hl7_escape(rdx_lab_hl7_delimiters(m), "GB 18030-2000", "東|區",
                                        strlen("東|區"), &enc, NULL),
                     RDX_OK);
    assert_int_equal(enc.len, 2 + 3 + 2);
    assert_memory_equal(enc.data, "\x96\x7c\\F\\\x85\x5e", enc.len);
    rdx_buf_free(&enc);
    rdx_buf_free(&out);
    rdx_buf_free(&in);
    rdx_lab_hl7_free(m);
}

static void test_hl7_latin1_and_undeclared_bytes(void **state)
{
    (void)state;
    rdx_buf in = fixture("latin1_oru.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    assert_get(m, "PID-5.1", "Müller");
    assert_get(m, "PID-5.2", "Jürgen");
    rdx_lab_hl7_free(m);
    rdx_buf_free(&in);
    /* No MSH-18: valid UTF-8 passes as UTF-8 (the real ORU with µmol/L)... */
    in = fixture("sample_oru_20241015-001.hl7");
    m = parse_ok(in.data, in.len);
    assert_get(m, "OBX[58]-6.1", "µmol/L");
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "OBX"), 149);
    rdx_lab_hl7_free(m);
    rdx_buf_free(&in);
    /* ...and other high bytes are read as ISO 8859-1. */
    m = parse_str("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|7|P|2.5.1\rPID|1||1||M\xfcller\r");
    assert_get(m, "PID-5", "Müller");
    rdx_lab_hl7_free(m);
    /* A message that declares UTF-8 must hold UTF-8. */
    m = parse_str("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|7|P|2.5.1||||||UNICODE UTF-8\r"
                  "PID|1||1||M\xfcller\r");
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 100);
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_hl7_get(m, "PID-5", &b, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "UTF-8"));
    rdx_buf_free(&b);
    rdx_lab_hl7_free(m);
}

static void test_hl7_adversarial_inputs_are_refused(void **state)
{
    (void)state;
    const char ok[] = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|7|P|2.5.1\r";
    (void)ok;
    parse_fails("", 0, "no MSH");
    parse_fails("\r\n\r\n", 4, "no MSH");
    parse_fails("PID|1||42\r", 10, "does not start with MSH");
    /* Found by fuzz_hl7 (tests/fuzz/crashes/hl7/): a one-byte segment was compared as three. */
    parse_fails("M", 1, "does not start with MSH");
    parse_fails("MS\rMSH|^~\\&|A\r", 13, "does not start with MSH");
    /* Found by fuzz_hl7: GB 18030 declared, but a lead byte in MSH-7 eats the '|' after it. */
    const char gbbad[] = "MSH|^~\\&|A|B|C|D|2026\xf7||ORU^R01|1|P|2.5.1|||||CHN|GB 18030-2000\r";
    parse_fails(gbbad, sizeof gbbad - 1, "swallows a delimiter");
    parse_fails("MSH|^~\\", 7, "too short");
    parse_fails("MSH|^^\\&|A\r", 11, "used twice");
    parse_fails("MSH|^~\\A|A\r", 11, "not a printable punctuation");
    parse_fails("MSH|^~|A\r", 9, "4 or 5");
    parse_fails("MSH|^~\\&|A|B|C|D|E||F^G|1|P|2.5.1||||||KLINGON\r", 47, "unsupported character");
    const char twomsh[] = "MSH|^~\\&|A\rMSH|^~\\&|B\r";
    parse_fails(twomsh, sizeof twomsh - 1, "inside a message");
    const char badid[] = "MSH|^~\\&|A\rpid|1\r";
    parse_fails(badid, sizeof badid - 1, "bad segment id");
    const char nulid[] = "MSH|^~\\&|A\rP\0D|1\r";
    parse_fails(nulid, sizeof nulid - 1, "bad segment id");
    const char badmshlater[] = "MSH|^~\\&|A\rBHS|^~\\&|B\r";
    parse_fails(badmshlater, sizeof badmshlater - 1, "inside a message");

    /* Absurd repetition counts stop at the cap. */
    rdx_buf b;
    rdx_buf_init(&b, 64u << 20);
    assert_int_equal(rdx_buf_append_str(&b, "MSH|^~\\&|A|B|C|D|E||ADT^A01|1|P|2.5.1\rPID|1||"),
                     RDX_OK);
    for (unsigned i = 0; i < RDX_LAB_HL7_MAX_REPETITIONS + 5; i++) {
        assert_int_equal(rdx_buf_append_u8(&b, '~'), RDX_OK);
    }
    assert_int_equal(parse_fails((char *)b.data, b.len, "repetitions"), RDX_ELIMIT);
    /* Too many fields. */
    rdx_buf_reset(&b);
    assert_int_equal(rdx_buf_append_str(&b, "MSH|^~\\&|A\rZZZ"), RDX_OK);
    for (unsigned i = 0; i < RDX_LAB_HL7_MAX_FIELDS + 5; i++) {
        assert_int_equal(rdx_buf_append_u8(&b, '|'), RDX_OK);
    }
    assert_int_equal(parse_fails((char *)b.data, b.len, "fields"), RDX_ELIMIT);
    /* Too many segments. */
    rdx_buf_reset(&b);
    assert_int_equal(rdx_buf_append_str(&b, "MSH|^~\\&|A\r"), RDX_OK);
    for (unsigned i = 0; i < RDX_LAB_HL7_MAX_SEGMENTS + 1; i++) {
        assert_int_equal(rdx_buf_append_str(&b, "NTE\r"), RDX_OK);
    }
    assert_int_equal(parse_fails((char *)b.data, b.len, "segments"), RDX_ELIMIT);
    /* A huge segment: past the message cap. */
    rdx_buf_reset(&b);
    assert_int_equal(rdx_buf_append_str(&b, "MSH|^~\\&|A\rOBX|1|ED|x||"), RDX_OK);
    assert_int_equal(rdx_buf_reserve(&b, RDX_LAB_HL7_MAX_MESSAGE), RDX_OK);
    memset(b.data + b.len, 'A', RDX_LAB_HL7_MAX_MESSAGE);
    b.len += RDX_LAB_HL7_MAX_MESSAGE;
    assert_int_equal(parse_fails((char *)b.data, b.len, "larger than"), RDX_ELIMIT);
    rdx_buf_free(&b);

    /* Every truncation of a real message either parses or fails cleanly. */
    rdx_buf in = fixture("ORU_deidentified.hl7");
    for (size_t n = 0; n < in.len; n += 7) {
        rdx_lab_hl7_msg *m = NULL;
        if (rdx_lab_hl7_parse(in.data, n, &m, NULL) == RDX_OK) {
            rdx_buf out;
            rdx_buf_init(&out, 1 << 20);
            assert_int_equal(rdx_lab_hl7_write(m, &out), RDX_OK);
            rdx_buf_free(&out);
            rdx_lab_hl7_free(m);
        } else {
            assert_null(m);
        }
    }
    rdx_buf_free(&in);
}

static void test_hl7_batch_envelope_and_counts(void **state)
{
    (void)state;
    const char *dir = rdx_test_data_dir();
    if (dir == NULL) {
        print_message("%s\n", "RDX_DATA absent: batch file skipped");
        skip();
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/hl7/sample-batch-pdi-20210608-0001.hl7", dir);
    rdx_buf in = slurp(path);
    rdx_lab_hl7_batch *b = NULL;
    assert_int_equal(rdx_lab_hl7_batch_parse(in.data, in.len, &b, NULL), RDX_OK);
    assert_int_equal(rdx_lab_hl7_batch_count(b), 20);
    const rdx_lab_hl7_msg *env = rdx_lab_hl7_batch_envelope(b);
    assert_non_null(env);
    assert_get(env, "BTS-1", "20");
    assert_get(env, "FTS-1", "1");
    assert_get(rdx_lab_hl7_batch_msg(b, 19), "MSH-9.1", "ORU");
    assert_null(rdx_lab_hl7_batch_msg(b, 20));
    rdx_lab_hl7_batch_free(b);
    rdx_buf_free(&in);

    /* A BTS that miscounts is refused, naming the field. */
    const char bad[] = "FHS|^~\\&|A\rBHS|^~\\&|A\rMSH|^~\\&|A|B|C|D|E||ORU^R01|1|P|2.5.1\r"
                       "BTS|2\rFTS|1\r";
    rdx_error err;
    rdx_error_clear(&err);
    b = (rdx_lab_hl7_batch *)1;
    assert_int_equal(rdx_lab_hl7_batch_parse(bad, sizeof bad - 1, &b, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "BTS[1]-1 says 2"));
    /* Garbage between messages names its byte offset. */
    const char junk[] = "MSH|^~\\&|A\rPID|1\r\rjunk here\r";
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_hl7_batch_parse(junk, sizeof junk - 1, &b, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "message 1"));
    /* A file of bare messages is a batch without an envelope. */
    const char two[] = "MSH|^~\\&|A|B|C|D|E||ORU^R01|1|P|2.5.1\nMSH|^~\\&|A|B|C|D|E||ORU^R01|2|P|"
                       "2.5.1\n";
    assert_int_equal(rdx_lab_hl7_batch_parse(two, sizeof two - 1, &b, NULL), RDX_OK);
    assert_int_equal(rdx_lab_hl7_batch_count(b), 2);
    assert_null(rdx_lab_hl7_batch_envelope(b));
    assert_get(rdx_lab_hl7_batch_msg(b, 1), "MSH-10", "2");
    rdx_lab_hl7_batch_free(b);
}

static void test_hl7_ack_accept_and_error(void **state)
{
    (void)state;
    rdx_buf in = fixture("oml_o21-full.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    rdx_buf out;
    rdx_buf_init(&out, 1 << 16);
    rdx_lab_ack_spec sp = {
        .code = RDX_LAB_ACK_AA, .control_id = "ACK-1", .timestamp = "20261201083000+0800"};
    assert_int_equal(rdx_lab_hl7_ack(m, &sp, &out, NULL), RDX_OK);
    rdx_lab_hl7_msg *a = parse_ok(out.data, out.len);
    assert_get(a, "MSH-9.1", "ACK");
    assert_get(a, "MSH-9.2", "O21");
    assert_get(a, "MSH-3.1", "txdshslabNBS");
    assert_get(a, "MSH-5.1", "OrderingFacilityApplicationName");
    assert_get(a, "MSH-10", "ACK-1");
    assert_get(a, "MSH-18", "UNICODE UTF-8");
    assert_get(a, "MSA-1", "AA");
    assert_get(a, "MSA-2", "0123");
    assert_int_equal(rdx_lab_hl7_segment_occurrences(a, "ERR"), 0);
    rdx_lab_hl7_free(a);

    rdx_buf_reset(&out);
    sp.code = RDX_LAB_ACK_AE;
    sp.control_id = "ACK-2";
    sp.text = "PID-3 missing | patient";
    sp.hl7_error = 101;
    sp.err_segment = "PID";
    sp.err_sequence = 1;
    sp.err_field = 3;
    assert_int_equal(rdx_lab_hl7_ack(m, &sp, &out, NULL), RDX_OK);
    a = parse_ok(out.data, out.len);
    assert_get(a, "MSA-1", "AE");
    assert_get(a, "MSA-2", "0123");
    assert_get(a, "ERR-2.1", "PID");
    assert_get(a, "ERR-2.2", "1");
    assert_get(a, "ERR-2.3", "3");
    assert_get(a, "ERR-3.1", "101");
    assert_get(a, "ERR-3.2", "Required field missing");
    assert_get(a, "ERR-3.3", "HL70357");
    assert_get(a, "ERR-4", "E");
    assert_get(a, "ERR-8", "PID-3 missing | patient");
    rdx_lab_hl7_free(a);

    /* Without an original (it could not be parsed): AR echoing the id given. */
    rdx_buf_reset(&out);
    rdx_lab_ack_spec sr = {.code = RDX_LAB_ACK_AR,
                           .control_id = "ACK-3",
                           .timestamp = "20261201083000",
                           .hl7_error = 200,
                           .orig_control_id = "X^9"};
    assert_int_equal(rdx_lab_hl7_ack(NULL, &sr, &out, NULL), RDX_OK);
    a = parse_ok(out.data, out.len);
    assert_get(a, "MSA-1", "AR");
    assert_get(a, "MSA-2", "X^9");
    assert_get(a, "ERR-3", "200");
    rdx_lab_hl7_free(a);
    /* Missing control id or timestamp is a caller error; a full buffer leaves it unchanged. */
    sr.control_id = NULL;
    assert_int_equal(rdx_lab_hl7_ack(NULL, &sr, &out, NULL), RDX_EINVAL);
    sr.control_id = "A";
    rdx_buf small;
    rdx_buf_init(&small, 20);
    assert_int_equal(rdx_lab_hl7_ack(m, &sp, &small, NULL), RDX_ELIMIT);
    assert_int_equal(small.len, 0);
    rdx_buf_free(&small);
    rdx_buf_free(&out);
    rdx_buf_free(&in);
    rdx_lab_hl7_free(m);
}

static void test_hl7_dtm_parse(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(rdx_lab_hl7_dtm_parse("19700101", 8, 0, &ms), RDX_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(rdx_lab_hl7_dtm_parse("202612010800+0800", 17, 0, &ms), RDX_OK);
    assert_int_equal(ms, INT64_C(1796083200000));
    assert_int_equal(rdx_lab_hl7_dtm_parse("202612010800", 12, 480, &ms), RDX_OK);
    assert_int_equal(ms, INT64_C(1796083200000));
    assert_int_equal(rdx_lab_hl7_dtm_parse("20230506052916-0500", 19, 0, &ms), RDX_OK);
    assert_int_equal(ms, INT64_C(1683368956000));
    assert_int_equal(rdx_lab_hl7_dtm_parse("20230506052916.25", 17, 0, &ms), RDX_OK);
    assert_int_equal(ms % 1000, 250);
    assert_int_equal(rdx_lab_hl7_dtm_parse("20240229", 8, 0, &ms), RDX_OK);
    const char *bad[] = {
        "2023",       "202313",         "20230230", "20230229",   "2023050612x",      "20230506+08",
        "20230506.5", "20230506252916", "",         "2023-05-06", "202305061200+2400"};
    assert_int_equal(rdx_lab_hl7_dtm_parse("2023", 4, 0, &ms), RDX_OK);
    for (size_t i = 1; i < sizeof bad / sizeof bad[0]; i++) {
        if (rdx_lab_hl7_dtm_parse(bad[i], strlen(bad[i]), 0, &ms) != RDX_EPARSE) {
            fail_msg("'%s' parsed", bad[i]);
        }
    }
}

static void test_order_from_real_orm_and_oml(void **state)
{
    (void)state;
    rdx_buf in = fixture("sample_orm_20230809-001.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    rdx_lab_order *o = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_order_from_hl7(m, 480, &o, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_string_equal(rdx_lab_order_sender(o), "Centracare");
    assert_string_equal(rdx_lab_order_control_id(o), "31808297");
    assert_string_equal(rdx_lab_order_patient_id(o), "11102779");
    assert_string_equal(rdx_lab_order_patient_authority(o), "CRPMRN");
    assert_int_equal(rdx_lab_order_test_count(o), 2);
    assert_string_equal(rdx_lab_order_test_at(o, 0)->code, "54089-8");
    assert_string_equal(rdx_lab_order_test_at(o, 1)->code, "57717-1");
    assert_string_equal(rdx_lab_order_test_at(o, 1)->system, "LN");
    assert_string_equal(rdx_lab_order_test_at(o, 0)->placer, "421832901");
    /* Two OBRs, no SPM, the same OBR-15 type: one tube. */
    assert_int_equal(rdx_lab_order_specimen_count(o), 1);
    const rdx_lab_order_specimen *sp = rdx_lab_order_specimen_at(o, 0);
    assert_string_equal(sp->type, "440500007");
    assert_int_equal(rdx_lab_order_test_at(o, 1)->specimen, 0);
    /* OBR-7 has no offset: taken in the given local offset (+08:00). */
    int64_t want;
    assert_int_equal(rdx_lab_hl7_dtm_parse("20230506050000", 14, 480, &want), RDX_OK);
    assert_int_equal(sp->collected_ms, want);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_buf_free(&in);

    in = fixture("gb18030_oml.hl7");
    m = parse_ok(in.data, in.len);
    assert_int_equal(rdx_lab_order_from_hl7(m, 480, &o, &err), RDX_OK);
    assert_int_equal(rdx_lab_order_test_count(o), 1);
    assert_string_equal(rdx_lab_order_test_at(o, 0)->text, "钾 Potassium");
    sp = rdx_lab_order_specimen_at(o, 0);
    assert_string_equal(sp->id, "NJGL000123");
    assert_string_equal(sp->authority, "NJ-GULOU-CHC");
    assert_string_equal(sp->type, "119364003");
    assert_int_equal(sp->collected_ms, INT64_C(1796083200000));
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_buf_free(&in);

    /* A result is not an order. */
    in = fixture("ORU_deidentified.hl7");
    m = parse_ok(in.data, in.len);
    rdx_error_clear(&err);
    o = (rdx_lab_order *)1;
    assert_int_equal(rdx_lab_order_from_hl7(m, 480, &o, &err), RDX_EFORMAT);
    assert_null(o);
    assert_non_null(strstr(err.msg, "MSH-9"));
    rdx_lab_hl7_free(m);
    rdx_buf_free(&in);
}

static void test_order_missing_fields_are_named(void **state)
{
    (void)state;
    struct {
        const char *msg, *needle;
    } cases[] = {
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rORC|NW|1\rOBR|1|1||2823-3\r", "PID"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rPID|1||\rOBR|1|1||2823-3\r", "PID-3"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21||P|2.5.1\rPID|1||9\rOBR|1|1||2823-3\r",
         "MSH-10"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rPID|1||9\r", "no test"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rPID|1||9\rOBR|1|1||\r", "OBR[1]-4"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rPID|1||9\rOBR|1|1||2823-3\r",
         "OBR-15"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rPID|1||9\rOBR|1|1||2823-3\rSPM|1|X||"
         "\r",
         "SPM[1]-4"},
        {"MSH|^~\\&|A|CLINIC|C|D|20261201||OML^O21|1|P|2.5.1\rPID|1||9\rOBR|1|1||2823-3\rSPM|1|X||"
         "S|||"
         "||||||||||2026-12-01\r",
         "SPM-17"},
        {"MSH|^~\\&|A|CLINIC|C|D|yesterday||OML^O21|1|P|2.5.1\rPID|1||9\rOBR|1|1||K\r", "MSH-7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rdx_lab_hl7_msg *m = parse_str(cases[i].msg);
        rdx_lab_order *o = NULL;
        rdx_error err;
        rdx_error_clear(&err);
        assert_int_not_equal(rdx_lab_order_from_hl7(m, 480, &o, &err), RDX_OK);
        assert_null(o);
        if (strstr(err.msg, cases[i].needle) == NULL) {
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].needle);
        }
        rdx_lab_hl7_free(m);
    }
}

static void test_result_statuses_and_corrections(void **state)
{
    (void)state;
    rdx_buf in = fixture("sample_oru_20241015-001.hl7");
    rdx_lab_hl7_msg *m = parse_ok(in.data, in.len);
    rdx_lab_result *r = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_result_from_hl7(m, &r, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(rdx_lab_result_obs_count(r), 149);
    assert_int_equal(rdx_lab_result_corrections(r), 0);
    const rdx_lab_result_obs *ob = rdx_lab_result_obs_at(r, 5);
    assert_string_equal(ob->code, "57724-7");
    assert_string_equal(ob->status, "F");
    /* \R\ and \.br\ in a TX value are decoded. */
    assert_non_null(strstr(ob->value, "LAB ~M 57752"));
    assert_non_null(strstr(ob->value, "ACTION REQUIRED\n\nNBS"));
    assert_string_equal(rdx_lab_result_placer(r, 1), "55555555");
    rdx_lab_result_free(r);
    rdx_lab_hl7_free(m);
    rdx_buf_free(&in);

    m = parse_str("MSH|^~\\&|LIS|LAB|RDX|HUB|20261201||ORU^R01|9|P|2.5.1\rPID|1||9\r"
                  "OBR|1|ORD1||2823-3\rOBX|1|NM|2823-3^K^LN||4.1|mmol/L|||||F\r"
                  "OBX|2|NM|2823-3^K^LN||4.3^x|mmol/L|||||C\r");
    assert_int_equal(rdx_lab_result_from_hl7(m, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_result_corrections(r), 1);
    assert_string_equal(rdx_lab_result_obs_at(r, 1)->value, "4.3^x");
    assert_string_equal(rdx_lab_result_obs_at(r, 1)->units, "mmol/L");
    rdx_lab_result_free(r);
    rdx_lab_hl7_free(m);

    /* An embedded report (OBX-5 of type ED, base64) far larger than any plain value. */
    rdx_buf big;
    rdx_buf_init(&big, 4u << 20);
    assert_int_equal(rdx_buf_append_str(&big, "MSH|^~\\&|LIS|LAB|RDX|HUB|20261201||ORU^R01|9|P|"
                                              "2.5.1\rOBR|1|ORD1||11502-2\rOBX|1|ED|11502-2^Lab "
                                              "report^LN||^application^pdf^Base64^"),
                     RDX_OK);
    for (int i = 0; i < 300000; i++) {
        assert_int_equal(rdx_buf_append_u8(&big, (uint8_t) "QUJD"[i % 4]), RDX_OK);
    }
    assert_int_equal(rdx_buf_append_str(&big, "||||||F\r"), RDX_OK);
    m = parse_ok(big.data, big.len);
    assert_int_equal(rdx_lab_result_from_hl7(m, &r, NULL), RDX_OK);
    assert_int_equal(strlen(rdx_lab_result_obs_at(r, 0)->value),
                     300000 + strlen("^application^pdf^Base64^"));
    rdx_lab_result_free(r);
    rdx_lab_hl7_free(m);
    rdx_buf_free(&big);

    m = parse_str("MSH|^~\\&|LIS|LAB|RDX|HUB|20261201||ORU^R01|9|P|2.5.1\rOBR|1|ORD1||2823-3\r"
                  "OBX|1|NM|2823-3^K^LN||4.1|mmol/L|||||\r");
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_result_from_hl7(m, &r, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "OBX[1]-11"));
    rdx_lab_hl7_free(m);
}

/* ---- Out-of-memory sweeps ---------------------------------------------- */

static int oom_parse_order(void *ctx)
{
    const rdx_buf *in = ctx;
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    rdx_buf b;
    int rc = 1;
    rdx_buf_init(&b, 1 << 20);
    if (rdx_lab_hl7_parse(in->data, in->len, &m, NULL) != RDX_OK) {
        goto out;
    }
    if (rdx_lab_order_from_hl7(m, 480, &o, NULL) != RDX_OK) {
        goto out;
    }
    if (rdx_lab_hl7_get(m, "PID-5.2", &b, NULL) != RDX_OK) {
        goto out;
    }
    rdx_lab_ack_spec sp = {.code = RDX_LAB_ACK_AE,
                           .control_id = "A1",
                           .timestamp = "20261201",
                           .hl7_error = 207,
                           .text = "x"};
    if (rdx_lab_hl7_ack(m, &sp, &b, NULL) != RDX_OK) {
        goto out;
    }
    rc = 0;
out:
    rdx_buf_free(&b);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    return rc;
}

static void test_hl7_oom_sweep_parse_order_ack(void **state)
{
    (void)state;
    rdx_buf in = fixture("gb18030_oml.hl7");
    assert_true(rdx_oom_sweep(oom_parse_order, &in) > 10);
    rdx_buf_free(&in);
}

static int oom_batch_result(void *ctx)
{
    const rdx_buf *in = ctx;
    rdx_lab_hl7_batch *b = NULL;
    rdx_lab_result *r = NULL;
    int rc = 1;
    if (rdx_lab_hl7_batch_parse(in->data, in->len, &b, NULL) != RDX_OK) {
        goto out;
    }
    if (rdx_lab_result_from_hl7(rdx_lab_hl7_batch_msg(b, 0), &r, NULL) != RDX_OK) {
        goto out;
    }
    rc = 0;
out:
    rdx_lab_result_free(r);
    rdx_lab_hl7_batch_free(b);
    return rc;
}

static void test_hl7_oom_sweep_batch_result(void **state)
{
    (void)state;
    rdx_buf in = fixture("latin1_oru.hl7");
    assert_true(rdx_oom_sweep(oom_batch_result, &in) > 5);
    rdx_buf_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hl7_roundtrip_every_shared_file),
        cmocka_unit_test(test_hl7_roundtrip_lf_input_writes_cr),
        cmocka_unit_test(test_hl7_paths_on_real_order),
        cmocka_unit_test(test_hl7_escape_sequences_decode),
        cmocka_unit_test(test_hl7_escape_errors_name_the_field),
        cmocka_unit_test(test_hl7_escape_then_decode_is_identity),
        cmocka_unit_test(test_hl7_five_delimiters_and_cr_separators),
        cmocka_unit_test(test_hl7_cr_lf_crlf_parse_the_same),
        cmocka_unit_test(test_hl7_gb18030_converted_and_written_exactly),
        cmocka_unit_test(test_hl7_latin1_and_undeclared_bytes),
        cmocka_unit_test(test_hl7_adversarial_inputs_are_refused),
        cmocka_unit_test(test_hl7_batch_envelope_and_counts),
        cmocka_unit_test(test_hl7_ack_accept_and_error),
        cmocka_unit_test(test_hl7_dtm_parse),
        cmocka_unit_test(test_order_from_real_orm_and_oml),
        cmocka_unit_test(test_order_missing_fields_are_named),
        cmocka_unit_test(test_result_statuses_and_corrections),
        cmocka_unit_test(test_hl7_oom_sweep_parse_order_ack),
        cmocka_unit_test(test_hl7_oom_sweep_batch_result),
    };
    return cmocka_run_group_tests_name("lab_hl7", tests, NULL, NULL);
}
