/*
 * The item structure of encapsulated Pixel Data (imaging/fragments.c, PS3.5
 * A.4): the walk that runs before any codec, and the frame each fragment
 * belongs to, on streams built here byte by byte: offset tables right and
 * wrong, frames split over fragments, and every way the items can be broken.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "rdx/common.h"
#include "support/testutil.h"

#include "../imaging/dicom.h"

/* A stream under construction: item headers and values, little-endian. */
struct stream {
    uint8_t b[512];
    size_t n;
};

static void item(struct stream *s, uint16_t elem, uint32_t len, const void *v, size_t vn)
{
    uint8_t h[8] = {0xFE,
                    0xFF,
                    (uint8_t)elem,
                    (uint8_t)(elem >> 8),
                    (uint8_t)len,
                    (uint8_t)(len >> 8),
                    (uint8_t)(len >> 16),
                    (uint8_t)(len >> 24)};
    assert_true(s->n + 8 + vn <= sizeof s->b);
    memcpy(s->b + s->n, h, 8);
    s->n += 8;
    if (vn > 0) {
        memcpy(s->b + s->n, v, vn);
        s->n += vn;
    }
}

static void bot(struct stream *s, const uint32_t *off, size_t k)
{
    uint8_t v[64];
    for (size_t i = 0; i < k; i++) {
        v[4 * i] = (uint8_t)off[i];
        v[4 * i + 1] = (uint8_t)(off[i] >> 8);
        v[4 * i + 2] = (uint8_t)(off[i] >> 16);
        v[4 * i + 3] = (uint8_t)(off[i] >> 24);
    }
    item(s, 0xE000, (uint32_t)(4 * k), v, 4 * k);
}

static const uint8_t whole[8] = {0xFF, 0xD8, 1, 2, 3, 4, 0xFF, 0xD9}; /* SOI ... EOI */
static const uint8_t head[6] = {0xFF, 0xD8, 1, 2, 3, 4};              /* SOI ... */
static const uint8_t tail[6] = {5, 6, 7, 8, 0xFF, 0xD9};              /* ... EOI */

static void frame_of(const struct stream *s, uint32_t frames, uint32_t frame, uint8_t marker,
                     rdx_status want, size_t first, size_t count, const char *why)
{
    struct img_encap e;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(img_encap_parse(s->b, s->n, 0, &e, &err), RDX_OK);
    size_t f = 99, c = 99;
    rdx_status st = img_encap_frame(&e, frames, frame, marker, &f, &c, &err);
    if (st != want || (st == RDX_OK && (f != first || c != count)) ||
        (why != NULL && strstr(err.msg, why) == NULL)) {
        fail_msg("frame %u of %u: got %d [%zu, +%zu) '%s'", frame, frames, (int)st, f, c, err.msg);
    }
    img_encap_free(&e);
}

static void test_fragments_frame_maps(void **state)
{
    (void)state;
    struct stream s = {.n = 0};
    /* One fragment per frame with a Basic Offset Table: 0 and 16 (8-byte header + 8). */
    uint32_t offs[2] = {0, 16};
    bot(&s, offs, 2);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE0DD, 0, NULL, 0);
    frame_of(&s, 2, 0, 0xD8, RDX_OK, 0, 1, NULL);
    frame_of(&s, 2, 1, 0xD8, RDX_OK, 1, 1, NULL);
    frame_of(&s, 2, 2, 0xD8, RDX_ERANGE, 0, 0, "frame 2 asked");
    frame_of(&s, 3, 0, 0xD8, RDX_EFORMAT, 0, 0, "2 Pixel Data fragments for 3 frames");

    /* The table pointing between items, or not starting at 0, is refused. */
    s.n = 0;
    uint32_t bad[2] = {0, 12};
    bot(&s, bad, 2);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    frame_of(&s, 2, 1, 0xD8, RDX_EFORMAT, 0, 0, "does not point at a fragment");
    s.n = 0;
    uint32_t late[2] = {16, 32};
    bot(&s, late, 2);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    frame_of(&s, 2, 0, 0xD8, RDX_EFORMAT, 0, 0, "first entry is 16");
    s.n = 0;
    bot(&s, offs, 1);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    frame_of(&s, 2, 0, 0xD8, RDX_EFORMAT, 0, 0, "1 entries for 2 frames");

    /* Empty table, frames over several fragments: split at SOI, each ending with EOI. */
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 6, head, 6);
    item(&s, 0xE000, 6, tail, 6);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE0DD, 0, NULL, 0);
    frame_of(&s, 2, 0, 0xD8, RDX_OK, 0, 2, NULL);
    frame_of(&s, 2, 1, 0xD8, RDX_OK, 2, 1, NULL);
    frame_of(&s, 1, 0, 0xD8, RDX_OK, 0, 3, NULL); /* one frame: every fragment */
    frame_of(&s, 2, 0, 0, RDX_EFORMAT, 0, 0, "cannot be told apart");
    frame_of(&s, 2, 0, 0x4F, RDX_EFORMAT, 0, 0, "does not start a codestream (FF4F)");

    /* A frame without EOI, and one SOI too many. */
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 6, head, 6);
    item(&s, 0xE000, 6, head, 6);
    item(&s, 0xE000, 8, whole, 8);
    frame_of(&s, 2, 0, 0xD8, RDX_EFORMAT, 0, 0, "frame 0 ends (fragment 1) without EOI");
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 8, whole, 8);
    frame_of(&s, 3, 0, 0xD8, RDX_EFORMAT, 0, 0, "beyond the 3 frames");
}

static void parse_refused(const struct stream *s, rdx_status want, const char *why)
{
    struct img_encap e;
    rdx_error err;
    rdx_error_clear(&err);
    rdx_status st = img_encap_parse(s->b, s->n, 0, &e, &err);
    if (st != want || strstr(err.msg, why) == NULL) {
        fail_msg("got %d '%s', want %d '%s'", (int)st, err.msg, (int)want, why);
    }
    assert_null(e.frag);
}

static void test_fragments_broken_items(void **state)
{
    (void)state;
    struct stream s = {.n = 0};
    /* A fragment cut short by the end of the file. */
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE000, 100, whole, 8);
    parse_refused(&s, RDX_ESHORT,
                  "truncated: Pixel Data fragment 2 at byte 24 declares 100 bytes, only 8 remain");
    /* A delimiter with a length (GDCM aborts on this), a foreign tag, an undefined length. */
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 8, whole, 8);
    item(&s, 0xE0DD, 4, NULL, 0);
    parse_refused(&s, RDX_EPARSE, "Sequence Delimitation Item at byte 24 has length 4");
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE00D, 8, whole, 8);
    parse_refused(&s, RDX_EPARSE, "item 1 at byte 8 is (FFFE,E00D)");
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 0xFFFFFFFFu, NULL, 0);
    parse_refused(&s, RDX_EPARSE, "undefined length");
    /* No offset table, an odd-sized table, no fragment, half an item header. */
    s.n = 0;
    item(&s, 0xE0DD, 0, NULL, 0);
    parse_refused(&s, RDX_EPARSE, "no Basic Offset Table item");
    s.n = 0;
    item(&s, 0xE000, 3, whole, 3);
    item(&s, 0xE000, 8, whole, 8);
    parse_refused(&s, RDX_EPARSE, "not a multiple of 4");
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE0DD, 0, NULL, 0);
    parse_refused(&s, RDX_EPARSE, "no fragment");
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 8, whole, 8);
    s.n += 3;
    memset(s.b + s.n - 3, 0xFE, 3);
    parse_refused(&s, RDX_ESHORT, "no complete header (3 bytes left)");
    /* Ending right after a whole fragment, without the delimiter, is accepted. */
    s.n = 0;
    item(&s, 0xE000, 0, NULL, 0);
    item(&s, 0xE000, 8, whole, 8);
    struct img_encap e;
    rdx_error err;
    assert_int_equal(img_encap_parse(s.b, s.n, 0, &e, &err), RDX_OK);
    assert_int_equal(e.nfrag, 1);
    assert_int_equal(e.end, s.n);
    rdx_buf cs;
    rdx_buf_init(&cs, 64);
    assert_int_equal(img_encap_join(&e, 0, 1, &cs, &err), RDX_OK);
    assert_int_equal(cs.len, 8);
    assert_memory_equal(cs.data, whole, 8);
    rdx_buf_free(&cs);
    img_encap_free(&e);
    /* Starting past the end. */
    assert_int_equal(img_encap_parse(s.b, s.n, s.n + 1, &e, &err), RDX_ESHORT);
}

/* Forty fragments: the fragment array grows; every allocation failure is clean. */
static int oom_parse(void *ctx)
{
    const struct stream *s = ctx;
    struct img_encap e;
    rdx_error err;
    if (img_encap_parse(s->b, s->n, 0, &e, &err) != RDX_OK) {
        return 1;
    }
    img_encap_free(&e);
    return 0;
}

static void test_fragments_oom_sweep(void **state)
{
    (void)state;
    struct stream s = {.n = 0};
    item(&s, 0xE000, 0, NULL, 0);
    for (int i = 0; i < 40; i++) {
        item(&s, 0xE000, 2, whole, 2);
    }
    item(&s, 0xE0DD, 0, NULL, 0);
    assert_true(rdx_oom_sweep(oom_parse, &s) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fragments_frame_maps),
        cmocka_unit_test(test_fragments_broken_items),
        cmocka_unit_test(test_fragments_oom_sweep),
    };
    return cmocka_run_group_tests_name("imaging_fragments", tests, NULL, NULL);
}
