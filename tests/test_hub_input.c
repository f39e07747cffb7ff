/*
 * The dispatcher's parsers of what members send (hub/input.c): request.txt
 * and custody.tsv, good and hostile.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/hub.h"
#include "support/testutil.h"

static rdx_status request(const char *text, char uid[65], rdx_error *err)
{
    rdx_error_clear(err);
    return rdx_hub_request_parse((const uint8_t *)text, strlen(text), uid, err);
}

static void test_request_reads_the_uid(void **state)
{
    (void)state;
    char uid[65];
    rdx_error err;
    assert_int_equal(request("# from NJ-RAD\r\nstudy-uid=1.2.840.10008.1\r\n\n", uid, &err),
                     RDX_OK);
    assert_string_equal(uid, "1.2.840.10008.1");
}

static void test_request_refuses_bad_input(void **state)
{
    (void)state;
    char uid[65];
    rdx_error err;
    static const char *const bad[] = {
        "",
        "\n\n",
        "study=1.2.3\n",
        "study-uid=\n",
        "study-uid=1.2.3; rm -rf /\n",
        "study-uid=--db=sqlite:/tmp/x\n",
        "study-uid=1..2\n",
        "study-uid=.1.2\n",
        "study-uid=1.2.\n",
        "study-uid=1.2\nstudy-uid=1.3\n",
        "study-uid=12345678901234567890123456789012345678901234567890123456789012345\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (request(bad[i], uid, &err) != RDX_EPARSE) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_non_null(strstr(err.msg, "request.txt"));
    }
    assert_int_equal(request("study-uid=1.2\n#x\n", uid, &err), RDX_OK);
    assert_int_equal(request("study-uid=1.2\n", uid, &err), RDX_OK);
    char big[5000];
    memset(big, '#', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(request(big, uid, &err), RDX_ELIMIT);
    /* Embedded NUL: the line stops being a UID. */
    assert_int_equal(rdx_hub_request_parse((const uint8_t *)"study-uid=1.2\0003\n", 16, uid, &err),
                     RDX_EPARSE);
}

struct scans {
    char text[1024];
    size_t n;
};

static rdx_status keep(void *u, const rdx_hub_custody_scan *sc)
{
    struct scans *s = u;
    size_t l = strlen(s->text);
    snprintf(s->text + l, sizeof s->text - l, "%u:%s/%s/%s/%s ", sc->line, sc->barcode, sc->event,
             sc->at, sc->condition);
    s->n++;
    return RDX_OK;
}

static void test_ecg_meta_reads_the_rate(void **state)
{
    (void)state;
    double fs = 0.0;
    const char *t = "# Holter export\r\n[ecg]\r\n  fs =  250.5 \r\n; end\n";
    assert_int_equal(rdx_hub_ecg_meta_parse((const uint8_t *)t, strlen(t), &fs, NULL), RDX_OK);
    assert_true(fs == 250.5);
    assert_int_equal(rdx_hub_ecg_meta_parse((const uint8_t *)"fs=360", 6, &fs, NULL), RDX_OK);
    assert_true(fs == 360.0);
}

static void test_ecg_meta_refuses_bad_input(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"", "ecg.ini: no 'fs = HZ' line"},
        {"# only a comment\n", "ecg.ini: no 'fs = HZ' line"},
        {"fs\n", "ecg.ini:1: expected 'fs = HZ'"},
        {"rate = 360\n", "ecg.ini:1: unknown key (only 'fs')"},
        {"fs = 360\nfs = 250\n", "ecg.ini:2: a second fs"},
        {"fs = 0\n", "ecg.ini:1: fs is the sampling rate in Hz"},
        {"fs = -360\n", "ecg.ini:1: fs is the sampling rate in Hz"},
        {"fs = nan\n", "ecg.ini:1: fs is the sampling rate in Hz"},
        {"fs = inf\n", "ecg.ini:1: fs is the sampling rate in Hz"},
        {"fs = 1e9\n", "ecg.ini:1: fs is the sampling rate in Hz"},
        {"fs = 360 Hz\n", "ecg.ini:1: fs is the sampling rate in Hz"},
        {"fs = \n", "ecg.ini:1: fs is the sampling rate in Hz"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rdx_error err;
        double fs = 1.0;
        rdx_error_clear(&err);
        assert_int_equal(
            rdx_hub_ecg_meta_parse((const uint8_t *)bad[i].text, strlen(bad[i].text), &fs, &err),
            RDX_EPARSE);
        if (strstr(err.msg, bad[i].msg) == NULL) {
            fail_msg("'%s': got '%s'", bad[i].text, err.msg);
        }
    }
    char big[5000];
    memset(big, '#', sizeof big);
    assert_int_equal(rdx_hub_ecg_meta_parse((const uint8_t *)big, sizeof big, &(double){0}, NULL),
                     RDX_ELIMIT);
    assert_int_equal(rdx_hub_ecg_meta_parse(NULL, 0, &(double){0}, NULL), RDX_EPARSE);
}

static void test_custody_reads_scans(void **state)
{
    (void)state;
    struct scans s = {"", 0};
    size_t count = 0;
    rdx_error err;
    const char *t = "# scans\nZJE0107 collect 202612010705\n\n  ZJE0107\treceive\t202612010925 "
                    "hemolysed\r\nZJE0107 dispatch 202612010900";
    assert_int_equal(rdx_hub_custody_parse((const uint8_t *)t, strlen(t), keep, &s, &count, &err),
                     RDX_OK);
    assert_int_equal(count, 3);
    assert_string_equal(s.text, "2:ZJE0107/collect/202612010705/ 4:ZJE0107/receive/"
                                "202612010925/hemolysed 5:ZJE0107/dispatch/202612010900/ ");
    assert_int_equal(rdx_hub_custody_parse(NULL, 0, keep, &s, &count, &err), RDX_OK);
    assert_int_equal(count, 0);
}

static void test_custody_refuses_options_and_junk_before_acting(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ZJE0107 collect 202612010705\n--actor=NJ-HUB receive 202612010925\n",
        "ZJE0107 collect\n",
        "ZJE0107 collect 2026 ok extra\n",
        "ZJE0107 collect -202612010705\n",
        "ZJE0107 coll;ect 202612010705\n",
        "ZJE0107 collect 2026\xe4\xb8\xad\n",
        "ZJE0107 collect 20261201\x00"
        "0705\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scans s = {"", 0};
        rdx_error err;
        size_t n = i == 6 ? 30 : strlen(bad[i]);
        assert_int_equal(rdx_hub_custody_parse((const uint8_t *)bad[i], n, keep, &s, NULL, &err),
                         RDX_EPARSE);
        assert_non_null(strstr(err.msg, "custody.tsv:"));
        /* Nothing was acted on, not even the good first line. */
        assert_int_equal(s.n, 0);
    }
    char line[80];
    memset(line, 'A', 70);
    memcpy(line + 70, " x 1\n", 6);
    struct scans s = {"", 0};
    rdx_error err;
    assert_int_equal(
        rdx_hub_custody_parse((const uint8_t *)line, strlen(line), keep, &s, NULL, &err),
        RDX_EPARSE);
}

static void test_custody_limits(void **state)
{
    (void)state;
    size_t cap = 1025 * 12 + 1;
    char *t = malloc(cap);
    assert_non_null(t);
    size_t off = 0;
    for (int i = 0; i < 1025; i++) {
        off += (size_t)snprintf(t + off, cap - off, "B%04d e 1\n", i);
    }
    struct scans s = {"", 0};
    rdx_error err;
    assert_int_equal(rdx_hub_custody_parse((const uint8_t *)t, off, keep, &s, NULL, &err),
                     RDX_ELIMIT);
    assert_int_equal(s.n, 0);
    free(t);
    char *big = calloc(1, 70000);
    assert_non_null(big);
    memset(big, ' ', 69999);
    assert_int_equal(rdx_hub_custody_parse((const uint8_t *)big, 69999, keep, &s, NULL, &err),
                     RDX_ELIMIT);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reads_the_uid),
        cmocka_unit_test(test_request_refuses_bad_input),
        cmocka_unit_test(test_ecg_meta_reads_the_rate),
        cmocka_unit_test(test_ecg_meta_refuses_bad_input),
        cmocka_unit_test(test_custody_reads_scans),
        cmocka_unit_test(test_custody_refuses_options_and_junk_before_acting),
        cmocka_unit_test(test_custody_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
