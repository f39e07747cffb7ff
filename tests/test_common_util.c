/* Status names, error buffers, strict number parsing, overflow-checked
 * allocation, logging, clocks and file helpers. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rdx/common.h"
#include "support/testutil.h"

static void test_status_names_are_distinct(void **state)
{
    (void)state;
    const rdx_status all[] = {
        RDX_OK,      RDX_EINVAL, RDX_EPARSE,     RDX_EFORMAT,   RDX_ECHECKSUM, RDX_ESHORT,
        RDX_ERANGE,  RDX_ELIMIT, RDX_ENOMEM,     RDX_EBUSY,     RDX_ETIMEOUT,  RDX_ECAPACITY,
        RDX_EIO,     RDX_ENOENT, RDX_EEXIST,     RDX_EDB,       RDX_ENETWORK,  RDX_EAUTH,
        RDX_EDENIED, RDX_ESTATE, RDX_EDUPLICATE, RDX_ENOTFOUND, RDX_EPROTO,    RDX_EINTERNAL};
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(rdx_strerror(all[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++) {
            assert_string_not_equal(rdx_strerror(all[i]), rdx_strerror(all[j]));
        }
    }
    assert_string_equal(rdx_strerror((rdx_status)-9999), "unknown error");
    assert_true(rdx_status_is_input(RDX_EPARSE));
    assert_true(rdx_status_is_input(RDX_ELIMIT));
    assert_false(rdx_status_is_input(RDX_EIO));
    assert_false(rdx_status_is_input(RDX_OK));
}

static void test_error_set_prefix_truncate(void **state)
{
    (void)state;
    rdx_error e;
    rdx_error_clear(&e);
    assert_int_equal(e.code, RDX_OK);
    assert_int_equal(rdx_error_set(&e, RDX_EPARSE, "line %d: bad field '%s'", 3, "fs"), RDX_EPARSE);
    assert_string_equal(e.msg, "line 3: bad field 'fs'");
    rdx_error_prefix(&e, "%s:", "x/100.hea");
    assert_string_equal(e.msg, "x/100.hea:line 3: bad field 'fs'");
    assert_int_equal(e.code, RDX_EPARSE);
    char longs[2000];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    rdx_error_set(&e, RDX_EIO, "%s", longs);
    assert_int_equal(strlen(e.msg), RDX_ERROR_MSG_MAX - 1);
    rdx_error_prefix(&e, "%s", "file: ");
    assert_int_equal(strlen(e.msg), RDX_ERROR_MSG_MAX - 1);
    assert_memory_equal(e.msg, "file: aaa", 9);
    /* NULL error buffers are allowed everywhere. */
    assert_int_equal(rdx_error_set(NULL, RDX_EIO, "x"), RDX_EIO);
    rdx_error_prefix(NULL, "x");
    rdx_error_clear(NULL);
}

static void test_parse_i64_strict(void **state)
{
    (void)state;
    int64_t v = 7;
    assert_int_equal(rdx_parse_i64("360", 3, 0, 1000, &v), RDX_OK);
    assert_int_equal(v, 360);
    assert_int_equal(rdx_parse_i64("-12", 3, -100, 100, &v), RDX_OK);
    assert_int_equal(v, -12);
    assert_int_equal(rdx_parse_i64("+5", 2, 0, 10, &v), RDX_OK);
    assert_int_equal(v, 5);
    v = 7;
    assert_int_equal(rdx_parse_i64("", 0, 0, 10, &v), RDX_EPARSE);
    assert_int_equal(rdx_parse_i64("-", 1, -10, 10, &v), RDX_EPARSE);
    assert_int_equal(rdx_parse_i64(" 5", 2, 0, 10, &v), RDX_EPARSE);
    assert_int_equal(rdx_parse_i64("5 ", 2, 0, 10, &v), RDX_EPARSE);
    assert_int_equal(rdx_parse_i64("12x", 3, 0, 1000, &v), RDX_EPARSE);
    assert_int_equal(rdx_parse_i64("0x10", 4, 0, 1000, &v), RDX_EPARSE);
    assert_int_equal(rdx_parse_i64("1001", 4, 0, 1000, &v), RDX_ERANGE);
    assert_int_equal(rdx_parse_i64("99999999999999999999999", 23, 0, INT64_MAX, &v), RDX_ERANGE);
    assert_int_equal(rdx_parse_i64("-9223372036854775808", 20, INT64_MIN, 0, &v), RDX_OK);
    assert_true(v == INT64_MIN);
    assert_int_equal(rdx_parse_i64("9223372036854775808", 19, 0, INT64_MAX, &v), RDX_ERANGE);
    /* Only the first n bytes count: "36" out of "360". */
    assert_int_equal(rdx_parse_i64("360", 2, 0, 1000, &v), RDX_OK);
    assert_int_equal(v, 36);
}

static void test_parse_double_strict(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(rdx_parse_double("200.5", 5, &d), RDX_OK);
    assert_true(d == 200.5);
    assert_int_equal(rdx_parse_double("-1e3", 4, &d), RDX_OK);
    assert_true(d == -1000.0);
    assert_int_equal(rdx_parse_double("inf", 3, &d), RDX_EPARSE);
    assert_int_equal(rdx_parse_double("nan", 3, &d), RDX_EPARSE);
    assert_int_equal(rdx_parse_double("0x1p3", 5, &d), RDX_EPARSE);
    assert_int_equal(rdx_parse_double(" 1", 2, &d), RDX_EPARSE);
    assert_int_equal(rdx_parse_double("1.2.3", 5, &d), RDX_EPARSE);
    assert_int_equal(rdx_parse_double("1e999", 5, &d), RDX_ERANGE);
    assert_int_equal(rdx_parse_double("", 0, &d), RDX_EPARSE);
    char longnum[100];
    memset(longnum, '1', sizeof longnum);
    assert_int_equal(rdx_parse_double(longnum, sizeof longnum, &d), RDX_EPARSE);
}

static void test_alloc_overflow_checks(void **state)
{
    (void)state;
    size_t out;
    assert_true(rdx_mul_ok(1000, 1000, &out));
    assert_int_equal(out, 1000000);
    assert_false(rdx_mul_ok(SIZE_MAX / 2 + 1, 2, &out));
    assert_true(rdx_add_ok(1, 2, &out));
    assert_false(rdx_add_ok(SIZE_MAX, 1, &out));
    assert_null(rdx_mallocarray(SIZE_MAX / 4, 8));
    assert_null(rdx_callocarray(SIZE_MAX / 4, 8));
    void *p = rdx_mallocarray(0, 8);
    assert_non_null(p);
    void *q = rdx_reallocarray(p, SIZE_MAX, 2);
    assert_null(q); /* p is still valid */
    free(p);
    int *z = rdx_callocarray(16, sizeof(int));
    assert_non_null(z);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(z[i], 0);
    }
    free(z);
    char *s = rdx_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = rdx_strndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);
    uint8_t key[32];
    memset(key, 0x5a, sizeof key);
    rdx_secure_zero(key, sizeof key);
    for (size_t i = 0; i < sizeof key; i++) {
        assert_int_equal(key[i], 0);
    }
    rdx_oom_arm(1);
    assert_null(rdx_strndup("abc", 3));
    rdx_oom_arm(0);
}

struct logcap {
    int calls;
    rdx_log_level last;
    char msg[64];
};

static void capture(void *user, rdx_log_level level, const char *msg)
{
    struct logcap *c = user;
    c->calls++;
    c->last = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void test_log_filters_by_level(void **state)
{
    (void)state;
    struct logcap c = {0};
    rdx_logger lg = {capture, &c, RDX_LOG_INFO};
    rdx_log(&lg, RDX_LOG_DEBUG, "hidden %d", 1);
    assert_int_equal(c.calls, 0);
    rdx_log(&lg, RDX_LOG_WARN, "peer %s refused", "x");
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.last, RDX_LOG_WARN);
    assert_string_equal(c.msg, "peer x refused");
    rdx_log(NULL, RDX_LOG_ERROR, "nobody listens");
    rdx_logger silent = {NULL, NULL, RDX_LOG_DEBUG};
    rdx_log(&silent, RDX_LOG_ERROR, "nobody listens");
    assert_string_equal(rdx_log_level_name(RDX_LOG_ERROR), "error");
}

static void test_clock_is_monotonic(void **state)
{
    (void)state;
    uint64_t a = rdx_clock_mono_ns();
    uint64_t b = rdx_clock_mono_ns();
    assert_true(b >= a);
    /* After 2020-01-01 and before 2100. */
    int64_t w = rdx_clock_wall_ms();
    assert_true(w > 1577836800000LL && w < 4102444800000LL);
}

static void test_file_read_write_atomic(void **state)
{
    (void)state;
    rdx_error e;
    rdx_buf b;
    char path[512];
    char *dir = rdx_test_tmpdir();
    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/f.txt", dir);

    rdx_buf_init(&b, 100);
    assert_int_equal(rdx_file_read(path, &b, &e), RDX_ENOENT);
    assert_non_null(strstr(e.msg, path));
    assert_int_equal(rdx_file_write_atomic(path, "hello", 5, &e), RDX_OK);
    assert_int_equal(rdx_file_read(path, &b, &e), RDX_OK);
    assert_int_equal(b.len, 5);
    assert_string_equal((char *)b.data, "hello");
    rdx_buf_free(&b);

    /* A file larger than the cap is refused, and the message says so. */
    rdx_buf_init(&b, 3);
    assert_int_equal(rdx_file_read(path, &b, &e), RDX_ELIMIT);
    assert_non_null(strstr(e.msg, path));
    rdx_buf_free(&b);

    rdx_buf_init(&b, 100);
    assert_int_equal(rdx_file_read(dir, &b, &e), RDX_EINVAL);
    rdx_buf_free(&b);

    /* An exact mode regardless of the umask, and a file that grew past the
     * cap while being read is refused rather than cut. */
    char key[600];
    snprintf(key, sizeof key, "%s/key.pem", dir);
    mode_t old = umask(0);
    assert_int_equal(rdx_file_write_atomic_mode(key, "secret", 6, 0600, &e), RDX_OK);
    umask(old);
    struct stat ks;
    assert_int_equal(stat(key, &ks), 0);
    assert_int_equal(ks.st_mode & 0777, 0600);
    rdx_buf_init(&b, 6);
    assert_int_equal(rdx_file_read(key, &b, &e), RDX_OK);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "secret", 6);
    rdx_buf_free(&b);
    /* Appends to what the buffer holds; the cap counts both. */
    rdx_buf_init(&b, 8);
    assert_int_equal(rdx_buf_append(&b, "ab", 2), RDX_OK);
    assert_int_equal(rdx_file_read(key, &b, &e), RDX_OK);
    assert_string_equal((char *)b.data, "absecret");
    assert_int_equal(rdx_file_read(key, &b, &e), RDX_ELIMIT);
    rdx_buf_free(&b);

    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/f", dir);
    assert_int_equal(rdx_file_write_atomic(bad, "x", 1, &e), RDX_EIO);
    assert_non_null(strstr(e.msg, "no/such/dir"));
    rdx_test_rmrf(dir);
    free(dir);
}

static int read_fixture(void *ctx)
{
    rdx_buf b;
    rdx_error e;
    rdx_buf_init(&b, 1 << 20);
    rdx_status st = rdx_file_read(ctx, &b, &e);
    if (st == RDX_OK && b.len == 0) {
        st = RDX_EINTERNAL;
    }
    /* On failure the buffer must own nothing (LeakSanitizer checks). */
    if (st != RDX_OK && (b.data != NULL || b.len != 0)) {
        fail_msg("rdx_file_read failed but left %zu bytes in the buffer", b.len);
    }
    rdx_buf_free(&b);
    return st == RDX_OK ? 0 : 1;
}

static void test_file_read_out_of_memory_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(read_fixture, "Makefile") >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names_are_distinct),
        cmocka_unit_test(test_error_set_prefix_truncate),
        cmocka_unit_test(test_parse_i64_strict),
        cmocka_unit_test(test_parse_double_strict),
        cmocka_unit_test(test_alloc_overflow_checks),
        cmocka_unit_test(test_log_filters_by_level),
        cmocka_unit_test(test_clock_is_monotonic),
        cmocka_unit_test(test_file_read_write_atomic),
        cmocka_unit_test(test_file_read_out_of_memory_sweep),
    };
    return cmocka_run_group_tests_name("common_util", tests, NULL, NULL);
}
