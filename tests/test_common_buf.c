/* Capped growable buffer: growth, the hard cap, failure atomicity, OOM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/common.h"
#include "support/testutil.h"

static void test_buf_grows_and_terminates(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rdx_buf_append_str(&b, "abc"), RDX_OK);
    }
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 2997, "abc", 3);
    assert_int_equal(rdx_buf_printf(&b, "%d-%s", 42, "x"), RDX_OK);
    assert_string_equal((char *)b.data + 3000, "42-x");
    rdx_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal((char *)b.data, "");
    rdx_buf_free(&b);
    assert_null(b.data);
    rdx_buf_free(NULL);
}

static void test_buf_cap_is_hard_and_atomic(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_buf_init(&b, 10);
    assert_int_equal(rdx_buf_append(&b, "0123456789", 10), RDX_OK);
    assert_int_equal(rdx_buf_append_u8(&b, 'x'), RDX_ELIMIT);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "0123456789", 10);
    rdx_buf_reset(&b);
    assert_int_equal(rdx_buf_append(&b, "abcdefgh", 8), RDX_OK);
    /* A printf that does not fit appends nothing at all. */
    assert_int_equal(rdx_buf_printf(&b, "%s", "xyz"), RDX_ELIMIT);
    assert_int_equal(b.len, 8);
    assert_string_equal((char *)b.data, "abcdefgh");
    /* An absurd length is refused without wrapping len + n. */
    assert_int_equal(rdx_buf_reserve(&b, SIZE_MAX), RDX_ELIMIT);
    assert_int_equal(rdx_buf_append(&b, "", SIZE_MAX - 3), RDX_ELIMIT);
    assert_true(b.cap <= 10);
    rdx_buf_free(&b);
}

static void test_buf_zero_cap(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_buf_init(&b, 0);
    assert_int_equal(rdx_buf_append(&b, "a", 1), RDX_ELIMIT);
    assert_int_equal(rdx_buf_append(&b, "", 0), RDX_OK);
    assert_int_equal(b.len, 0);
    rdx_buf_free(&b);
}

static void test_buf_take_transfers_ownership(void **state)
{
    (void)state;
    rdx_buf b;
    size_t n = 0;
    rdx_buf_init(&b, 100);
    assert_null(rdx_buf_take(&b, &n));
    assert_int_equal(n, 0);
    assert_int_equal(rdx_buf_append_str(&b, "hello"), RDX_OK);
    uint8_t *p = rdx_buf_take(&b, &n);
    assert_non_null(p);
    assert_int_equal(n, 5);
    assert_string_equal((char *)p, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(p);
}

static int build_some(void *ctx)
{
    (void)ctx;
    rdx_buf b;
    rdx_buf_init(&b, 1 << 16);
    rdx_status st = RDX_OK;
    for (int i = 0; i < 200 && st == RDX_OK; i++) {
        st = rdx_buf_printf(&b, "line %d of a growing buffer\n", i);
    }
    if (st == RDX_OK && (b.len == 0 || b.data[b.len] != '\0')) {
        st = RDX_EINTERNAL;
    }
    rdx_buf_free(&b);
    return st == RDX_OK ? 0 : 1;
}

static void test_buf_out_of_memory_sweep(void **state)
{
    (void)state;
    unsigned long points = rdx_oom_sweep(build_some, NULL);
    assert_true(points >= 3); /* it must have grown several times */
}

static void test_buf_enomem_leaves_contents(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    assert_int_equal(rdx_buf_append_str(&b, "keep"), RDX_OK);
    rdx_oom_arm(1);
    char big[200];
    memset(big, 'z', sizeof big);
    assert_int_equal(rdx_buf_append(&b, big, sizeof big), RDX_ENOMEM);
    rdx_oom_arm(0);
    assert_int_equal(b.len, 4);
    assert_string_equal((char *)b.data, "keep");
    rdx_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_and_terminates),
        cmocka_unit_test(test_buf_cap_is_hard_and_atomic),
        cmocka_unit_test(test_buf_zero_cap),
        cmocka_unit_test(test_buf_take_transfers_ownership),
        cmocka_unit_test(test_buf_out_of_memory_sweep),
        cmocka_unit_test(test_buf_enomem_leaves_contents),
    };
    return cmocka_run_group_tests_name("common_buf", tests, NULL, NULL);
}
