/* MLLP framing: round trip, any split, resynchronisation, bounds, refusal to frame bad payloads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/lab.h"
#include "support/testutil.h"

typedef struct got {
    rdx_buf all; /* frames joined by '#' */
    size_t frames;
    size_t stop_after; /* 0 = never */
} got;

static rdx_status on_frame(void *user, const uint8_t *p, size_t n)
{
    got *g = user;
    g->frames++;
    if (rdx_buf_append(&g->all, p, n) != RDX_OK || rdx_buf_append_u8(&g->all, '#') != RDX_OK) {
        return RDX_ENOMEM;
    }
    return g->stop_after && g->frames >= g->stop_after ? RDX_ECAPACITY : RDX_OK;
}

static void feed_all(rdx_lab_mllp_reader *r, const void *p, size_t n, size_t chunk, got *g)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        assert_int_equal(rdx_lab_mllp_reader_feed(r, b + i, k, on_frame, g, NULL), RDX_OK);
    }
}

static void test_mllp_roundtrip_any_split(void **state)
{
    (void)state;
    rdx_buf wire;
    rdx_buf_init(&wire, 1 << 16);
    const char *msgs[] = {"MSH|^~\\&|A\rPID|1\r", "", "MSH|^~\\&|B\r"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rdx_lab_mllp_wrap(msgs[i], strlen(msgs[i]), &wire, NULL), RDX_OK);
    }
    assert_int_equal(wire.data[0], 0x0B);
    assert_int_equal(wire.data[wire.len - 2], 0x1C);
    assert_int_equal(wire.data[wire.len - 1], 0x0D);
    for (size_t chunk = 1; chunk <= wire.len; chunk++) {
        rdx_lab_mllp_reader *r = NULL;
        got g = {.frames = 0};
        rdx_buf_init(&g.all, 1 << 16);
        assert_int_equal(rdx_lab_mllp_reader_new(0, &r, NULL), RDX_OK);
        feed_all(r, wire.data, wire.len, chunk, &g);
        assert_int_equal(rdx_lab_mllp_reader_finish(r, NULL), RDX_OK);
        assert_int_equal(g.frames, 3);
        assert_string_equal((char *)g.all.data, "MSH|^~\\&|A\rPID|1\r##MSH|^~\\&|B\r#");
        rdx_lab_mllp_stats st;
        rdx_lab_mllp_reader_stats(r, &st);
        assert_int_equal(st.frames, 3);
        assert_int_equal(st.bytes_skipped, 0);
        assert_int_equal(st.frames_dropped, 0);
        rdx_buf_free(&g.all);
        rdx_lab_mllp_reader_free(r);
    }
    rdx_buf_free(&wire);
}

static void test_mllp_resyncs_after_garbage(void **state)
{
    (void)state;
    /* garbage, a frame, a frame cut by a new SB, EB without CR, a good frame. */
    const char wire[] = "noise\r\n\x0B"
                        "A\x1C\r"
                        "xx\x0B"
                        "cut\x0B"
                        "B\x1C\r"
                        "\x0B"
                        "bad\x1Cz"
                        "\x0B"
                        "C\x1C\r";
    rdx_lab_mllp_reader *r = NULL;
    got g = {.frames = 0};
    rdx_buf_init(&g.all, 1 << 16);
    assert_int_equal(rdx_lab_mllp_reader_new(0, &r, NULL), RDX_OK);
    feed_all(r, wire, sizeof wire - 1, 3, &g);
    assert_string_equal((char *)g.all.data, "A#B#C#");
    rdx_lab_mllp_stats st;
    rdx_lab_mllp_reader_stats(r, &st);
    assert_int_equal(st.frames, 3);
    assert_int_equal(st.frames_dropped, 2);
    assert_int_equal(st.bytes_skipped, 7 + 2 + 1);
    rdx_buf_free(&g.all);
    rdx_lab_mllp_reader_free(r);
}

static void test_mllp_oversized_frame_is_dropped_memory_bounded(void **state)
{
    (void)state;
    rdx_lab_mllp_reader *r = NULL;
    got g = {.frames = 0};
    rdx_buf_init(&g.all, 1 << 16);
    assert_int_equal(rdx_lab_mllp_reader_new(16, &r, NULL), RDX_OK);
    uint8_t big[1000];
    memset(big, 'x', sizeof big);
    big[0] = 0x0B;
    feed_all(r, big, sizeof big, 100, &g);
    const char tail[] = "\x1C\r\x0B"
                        "0123456789abcdef\x1C\r";
    feed_all(r, tail, sizeof tail - 1, 1, &g);
    assert_int_equal(g.frames, 1);
    assert_string_equal((char *)g.all.data, "0123456789abcdef#");
    rdx_lab_mllp_stats st;
    rdx_lab_mllp_reader_stats(r, &st);
    assert_int_equal(st.frames_dropped, 1);
    /* A frame left open at the end of the stream is reported. */
    const char open[] = "\x0B"
                        "half";
    feed_all(r, open, sizeof open - 1, 2, &g);
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_mllp_reader_finish(r, &err), RDX_ESHORT);
    assert_non_null(strstr(err.msg, "4 bytes"));
    rdx_buf_free(&g.all);
    rdx_lab_mllp_reader_free(r);
    rdx_lab_mllp_reader_free(NULL);
    assert_int_equal(rdx_lab_mllp_reader_new((size_t)1 << 40, &r, NULL), RDX_EINVAL);
}

static void test_mllp_callback_stops_the_feed(void **state)
{
    (void)state;
    rdx_lab_mllp_reader *r = NULL;
    got g = {.frames = 0, .stop_after = 1};
    rdx_buf_init(&g.all, 1 << 16);
    assert_int_equal(rdx_lab_mllp_reader_new(0, &r, NULL), RDX_OK);
    const char two[] = "\x0B"
                       "A\x1C\r\x0B"
                       "B\x1C\r";
    assert_int_equal(rdx_lab_mllp_reader_feed(r, two, sizeof two - 1, on_frame, &g, NULL),
                     RDX_ECAPACITY);
    assert_int_equal(g.frames, 1);
    rdx_buf_free(&g.all);
    rdx_lab_mllp_reader_free(r);
}

static void test_mllp_wrap_refuses_block_bytes(void **state)
{
    (void)state;
    rdx_buf out;
    rdx_error err;
    rdx_buf_init(&out, 100);
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_mllp_wrap("a\x1C"
                                       "b",
                                       3, &out, &err),
                     RDX_EINVAL);
    assert_non_null(strstr(err.msg, "byte 1"));
    assert_int_equal(rdx_lab_mllp_wrap("a\x0B", 2, &out, NULL), RDX_EINVAL);
    assert_int_equal(out.len, 0);
    rdx_buf small;
    rdx_buf_init(&small, 4);
    assert_int_equal(rdx_lab_mllp_wrap("abc", 3, &small, NULL), RDX_ELIMIT);
    assert_int_equal(small.len, 0);
    rdx_buf_free(&small);
    rdx_buf_free(&out);
}

static int oom_reader(void *ctx)
{
    (void)ctx;
    rdx_lab_mllp_reader *r = NULL;
    got g = {.frames = 0};
    int rc = 1;
    rdx_buf_init(&g.all, 1 << 16);
    const char one[] = "\x0B"
                       "MSH|^~\\&|A\r\x1C\r";
    if (rdx_lab_mllp_reader_new(0, &r, NULL) != RDX_OK) {
        goto out;
    }
    if (rdx_lab_mllp_reader_feed(r, one, sizeof one - 1, on_frame, &g, NULL) != RDX_OK) {
        goto out;
    }
    rc = g.frames == 1 ? 0 : 1;
out:
    rdx_buf_free(&g.all);
    rdx_lab_mllp_reader_free(r);
    return rc;
}

static void test_mllp_oom_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(oom_reader, NULL) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mllp_roundtrip_any_split),
        cmocka_unit_test(test_mllp_resyncs_after_garbage),
        cmocka_unit_test(test_mllp_oversized_frame_is_dropped_memory_bounded),
        cmocka_unit_test(test_mllp_callback_stops_the_feed),
        cmocka_unit_test(test_mllp_wrap_refuses_block_bytes),
        cmocka_unit_test(test_mllp_oom_sweep),
    };
    return cmocka_run_group_tests_name("lab_mllp", tests, NULL, NULL);
}
