/* Bounds-checked reader: exact values, short reads that leave the cursor, and
 * lengths chosen to overflow naive offset arithmetic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "rdx/common.h"

static const uint8_t bytes[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};

static void test_rd_reads_each_width(void **state)
{
    (void)state;
    rdx_rd r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    rdx_rd_init(&r, bytes, sizeof bytes);
    assert_int_equal(rdx_rd_u8(&r, &u8), RDX_OK);
    assert_int_equal(u8, 0x01);
    assert_int_equal(rdx_rd_u16le(&r, &u16), RDX_OK);
    assert_int_equal(u16, 0x0302);
    assert_int_equal(rdx_rd_u32be(&r, &u32), RDX_OK);
    assert_int_equal(u32, 0x04050607);
    assert_int_equal(rdx_rd_remaining(&r), 0);

    rdx_rd_init(&r, bytes, sizeof bytes);
    assert_int_equal(rdx_rd_u16be(&r, &u16), RDX_OK);
    assert_int_equal(u16, 0x0102);
    assert_int_equal(rdx_rd_u32le(&r, &u32), RDX_OK);
    assert_int_equal(u32, 0x06050403);
}

static void test_rd_short_read_leaves_cursor(void **state)
{
    (void)state;
    rdx_rd r;
    uint32_t u32 = 0xdeadbeef;
    uint16_t u16 = 0xbeef;
    uint8_t out[8];
    rdx_rd_init(&r, bytes, sizeof bytes);
    assert_int_equal(rdx_rd_skip(&r, 5), RDX_OK);
    assert_int_equal(rdx_rd_u32le(&r, &u32), RDX_ESHORT);
    assert_int_equal(rdx_rd_u32be(&r, &u32), RDX_ESHORT);
    assert_int_equal(u32, 0xdeadbeef); /* output untouched */
    assert_int_equal(r.off, 5);
    assert_int_equal(rdx_rd_bytes(&r, out, 3), RDX_ESHORT);
    assert_int_equal(r.off, 5);
    assert_int_equal(rdx_rd_u16le(&r, &u16), RDX_OK);
    assert_int_equal(u16, 0x0706);
    uint8_t u8 = 0xaa;
    assert_int_equal(rdx_rd_u8(&r, &u8), RDX_ESHORT);
    assert_int_equal(u8, 0xaa);
    assert_int_equal(rdx_rd_u16be(&r, &u16), RDX_ESHORT);
    assert_int_equal(rdx_rd_skip(&r, 1), RDX_ESHORT);
    assert_int_equal(rdx_rd_skip(&r, 0), RDX_OK);
    assert_int_equal(r.off, 7);
}

static void test_rd_huge_lengths_do_not_wrap(void **state)
{
    (void)state;
    rdx_rd r;
    const uint8_t *v = NULL;
    uint8_t out[4];
    rdx_rd_init(&r, bytes, sizeof bytes);
    assert_int_equal(rdx_rd_skip(&r, 2), RDX_OK);
    /* off + SIZE_MAX would wrap to off - 1 with a naive check. */
    assert_int_equal(rdx_rd_skip(&r, SIZE_MAX), RDX_ESHORT);
    assert_int_equal(rdx_rd_skip(&r, SIZE_MAX - 1), RDX_ESHORT);
    assert_int_equal(rdx_rd_view(&r, &v, SIZE_MAX), RDX_ESHORT);
    assert_null(v);
    assert_int_equal(rdx_rd_bytes(&r, out, SIZE_MAX / 2), RDX_ESHORT);
    assert_int_equal(r.off, 2);
}

static void test_rd_view_points_into_input(void **state)
{
    (void)state;
    rdx_rd r;
    const uint8_t *v = NULL;
    rdx_rd_init(&r, bytes, sizeof bytes);
    assert_int_equal(rdx_rd_view(&r, &v, 3), RDX_OK);
    assert_ptr_equal(v, bytes);
    assert_int_equal(rdx_rd_view(&r, &v, 4), RDX_OK);
    assert_ptr_equal(v, bytes + 3);
    assert_int_equal(rdx_rd_view(&r, &v, 1), RDX_ESHORT);
}

static void test_rd_empty_and_null(void **state)
{
    (void)state;
    rdx_rd r;
    uint8_t u8;
    rdx_rd_init(&r, NULL, 100); /* a NULL pointer never claims bytes */
    assert_int_equal(rdx_rd_remaining(&r), 0);
    assert_int_equal(rdx_rd_u8(&r, &u8), RDX_ESHORT);
    assert_int_equal(rdx_rd_bytes(&r, &u8, 0), RDX_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rd_reads_each_width),
        cmocka_unit_test(test_rd_short_read_leaves_cursor),
        cmocka_unit_test(test_rd_huge_lengths_do_not_wrap),
        cmocka_unit_test(test_rd_view_points_into_input),
        cmocka_unit_test(test_rd_empty_and_null),
    };
    return cmocka_run_group_tests_name("common_rd", tests, NULL, NULL);
}
