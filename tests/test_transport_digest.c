#define _GNU_SOURCE
/*
 * Chunk check values: the SHA-256 chaining value at each chunk boundary and
 * the item digest at the end. The chaining values are checked against golden
 * values from an independent SHA-256 compression function (a plain Python
 * implementation of FIPS 180-4, run over the same bytes), so the test does
 * not merely compare rdx with itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/testutil.h"

#define NDATA (4096 * 2 + 100)

static void fill(uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        d[i] = (uint8_t)(i * 7 + 3);
    }
}

static void hex(const uint8_t *v, char out[65])
{
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", v[i]);
    }
}

static void test_digest_chain_values_match_reference(void **state)
{
    (void)state;
    uint8_t data[NDATA];
    uint8_t *v = NULL;
    size_t n = 0;
    char h[65];
    fill(data, sizeof data);
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 4096, &v, &n, NULL), RDX_OK);
    assert_int_equal(n, 3);
    hex(v, h);
    assert_string_equal(h, "d68ddb5040b6f7532187edeb074344d4beddb672351f03073b97656c3fa74c88");
    hex(v + 32, h);
    assert_string_equal(h, "811ba67f0eb0a83f6e378ebecbec16337398fe05804bdd8b5250baffa3276a7b");
    /* The last chunk's value is the item's SHA-256, the one in the manifest. */
    hex(v + 64, h);
    assert_string_equal(h, "8e4d2b992a84cbe9dd4359c590b0002feb5549561b205495ef3deaf0f66ed187");
    uint8_t md[32];
    assert_int_equal(EVP_Digest(data, sizeof data, md, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(v + 64, md, 32);
    free(v);
}

static void test_digest_changed_byte_caught_in_its_chunk(void **state)
{
    (void)state;
    uint8_t data[NDATA];
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    fill(data, sizeof data);
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 4096, &a, &na, NULL), RDX_OK);
    data[5000] ^= 0x40; /* in the second chunk */
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 4096, &b, &nb, NULL), RDX_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, 32);               /* the first chunk is unaffected */
    assert_memory_not_equal(a + 32, b + 32, 32); /* the second is caught */
    assert_memory_not_equal(a + 64, b + 64, 32); /* and the item digest differs */
    free(a);
    free(b);
}

static void test_digest_streamed_in_pieces_equals_whole(void **state)
{
    (void)state;
    uint8_t data[NDATA], v[32];
    uint8_t *ref = NULL;
    size_t n = 0;
    struct rdx_tp_sha s;
    fill(data, sizeof data);
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 4096, &ref, &n, NULL), RDX_OK);
    rdx_tp_sha_init(&s);
    /* Odd pieces: the state between blocks must not depend on how the bytes came. */
    rdx_tp_sha_update(&s, data, 1000);
    assert_int_equal(rdx_tp_sha_chain(&s, v), -1); /* not on a block boundary */
    rdx_tp_sha_update(&s, data + 1000, 3096);
    assert_int_equal(rdx_tp_chunk_check(&s, sizeof data, v), 0);
    assert_memory_equal(v, ref, 32);
    rdx_tp_sha_update(&s, data + 4096, 4096);
    assert_int_equal(rdx_tp_chunk_check(&s, sizeof data, v), 0);
    assert_memory_equal(v, ref + 32, 32);
    rdx_tp_sha_update(&s, data + 8192, 100);
    assert_int_equal(rdx_tp_chunk_check(&s, sizeof data, v), 0);
    assert_memory_equal(v, ref + 64, 32);
    free(ref);
}

/* Each chunk hashed from the check value before it gives the same values as one pass. */
static void test_digest_resume_from_claimed_chain(void **state)
{
    (void)state;
    uint8_t data[NDATA], v[32];
    uint8_t *ref = NULL;
    size_t n = 0;
    struct rdx_tp_sha s;
    fill(data, sizeof data);
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 4096, &ref, &n, NULL), RDX_OK);
    assert_int_equal(n, 3);
    for (size_t k = 1; k < n; k++) {
        assert_int_equal(rdx_tp_sha_resume(&s, ref + 32 * (k - 1), 4096 * k), 0);
        size_t len = k + 1 < n ? 4096 : sizeof data - 4096 * k;
        rdx_tp_sha_update(&s, data + 4096 * k, len);
        assert_int_equal(rdx_tp_chunk_check(&s, sizeof data, v), 0);
        assert_memory_equal(v, ref + 32 * k, 32);
    }
    uint8_t md[32];
    assert_int_equal(EVP_Digest(data, sizeof data, md, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(v, md, 32); /* the last chunk's value is the item's digest */
    /* Only on a block boundary. */
    assert_int_equal(rdx_tp_sha_resume(&s, ref, 4000), -1);
    free(ref);
    /*
     * The length goes into the final padding: past 2^32 bits it must reach
     * the high word. Golden value from the same independent FIPS 180-4 code
     * (state = bytes 13i+5, 2^35 bytes before, then the 100 bytes of fill).
     */
    uint8_t chain[32];
    char got[65];
    for (int i = 0; i < 32; i++) {
        chain[i] = (uint8_t)(i * 13 + 5);
    }
    assert_int_equal(rdx_tp_sha_resume(&s, chain, (uint64_t)1 << 35), 0);
    rdx_tp_sha_update(&s, data, 100);
    rdx_tp_sha_final(&s, v);
    hex(v, got);
    assert_string_equal(got, "974950a3ea97d7f7458f0cdeee05f70b70699c9bcb4b3d44d7eae5ecb120ffb9");
}

static void test_digest_edge_sizes(void **state)
{
    (void)state;
    uint8_t data[4096], *v = NULL, md[32];
    size_t n = 9;
    fill(data, sizeof data);
    /* An empty item has no chunk; a chunk size that is no whole number of blocks is refused. */
    assert_int_equal(rdx_tp_chunk_checks(data, 0, 4096, &v, &n, NULL), RDX_OK);
    assert_int_equal(n, 0);
    free(v);
    rdx_error err;
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 1000, &v, &n, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "multiple of 64"));
    assert_null(v);
    /* An item of exactly one chunk: its one value is its digest. */
    assert_int_equal(rdx_tp_chunk_checks(data, sizeof data, 4096, &v, &n, NULL), RDX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(EVP_Digest(data, sizeof data, md, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(v, md, 32);
    free(v);
    assert_int_equal(rdx_tp_chunk_count(0, 4096), 0);
    assert_int_equal(rdx_tp_chunk_count(4096, 4096), 1);
    assert_int_equal(rdx_tp_chunk_count(4097, 4096), 2);
}

/*
 * A lane kernel against OpenSSL's SHA-256: nlanes lanes, each from its own
 * start state over its own bytes at an odd address, compared lane by lane;
 * the lanes past nlanes must be left as they were. ni picks rdx_tp_sha256_ni
 * (nlanes of them), otherwise rdx_tp_sha256_x16 (always sixteen).
 */
static void lanes_match_openssl(int ni, size_t nlanes)
{
    enum { BLOCKS = 37 };
    uint8_t *buf = malloc(16 * BLOCKS * 64 + 7);
    assert_non_null(buf);
    for (size_t i = 0; i < 16 * BLOCKS * 64 + 7; i++) {
        buf[i] = (uint8_t)((i * 2654435761u) >> 11);
    }
    uint32_t st[16][8], before[16][8];
    const uint8_t *d[16];
    uint8_t start[16][32];
    for (int i = 0; i < 16; i++) {
        /* Lane i starts where i+1 blocks of other bytes leave SHA-256. */
        struct rdx_tp_sha s;
        rdx_tp_sha_init(&s);
        rdx_tp_sha_update(&s, buf + 3 * i, 64 * (size_t)(i + 1));
        assert_int_equal(rdx_tp_sha_chain(&s, start[i]), 0);
        for (int k = 0; k < 8; k++) {
            st[i][k] = (uint32_t)start[i][4 * k] << 24 | (uint32_t)start[i][4 * k + 1] << 16 |
                       (uint32_t)start[i][4 * k + 2] << 8 | start[i][4 * k + 3];
        }
        d[i] = buf + 7 + (size_t)i * BLOCKS * 64 - (i % 2);
    }
    memcpy(before, st, sizeof st);
    assert_int_equal(
        ni ? rdx_tp_sha256_ni(st, d, nlanes, BLOCKS) : rdx_tp_sha256_x16(st, d, BLOCKS), 0);
    for (size_t i = 0; i < 16; i++) {
        if (i >= nlanes) {
            assert_memory_equal(st[i], before[i], sizeof st[i]);
            continue;
        }
        struct rdx_tp_sha s;
        uint8_t want[32], got[32];
        assert_int_equal(rdx_tp_sha_resume(&s, start[i], 64 * (uint64_t)(i + 1)), 0);
        rdx_tp_sha_update(&s, d[i], BLOCKS * 64);
        assert_int_equal(rdx_tp_sha_chain(&s, want), 0);
        for (int k = 0; k < 8; k++) {
            got[4 * k] = (uint8_t)(st[i][k] >> 24);
            got[4 * k + 1] = (uint8_t)(st[i][k] >> 16);
            got[4 * k + 2] = (uint8_t)(st[i][k] >> 8);
            got[4 * k + 3] = (uint8_t)st[i][k];
        }
        assert_memory_equal(got, want, 32);
    }
    free(buf);
}

/* The sixteen AVX-512 lanes against OpenSSL. */
static void test_digest_x16_lanes_match_openssl(void **state)
{
    (void)state;
    if (!rdx_tp_sha256_x16_available()) {
        uint32_t st[16][8] = {{0}};
        const uint8_t *d[16] = {NULL};
        assert_int_equal(rdx_tp_sha256_x16(st, d, 1), -1);
        skip(); /* no AVX-512 here: rdx_tp_sha_links uses another kernel */
    }
    lanes_match_openssl(0, 16);
}

/*
 * The SHA-NI lanes against OpenSSL: sixteen (four groups of four), seven (4,
 * 2 and 1), two and one.
 */
static void test_digest_ni_lanes_match_openssl(void **state)
{
    (void)state;
    uint32_t st[17][8] = {{0}};
    const uint8_t *d[17] = {NULL};
    assert_int_equal(rdx_tp_sha256_ni(st, d, 17, 0), -1);
    if (!rdx_tp_sha256_ni_available()) {
        assert_int_equal(rdx_tp_sha256_ni(st, d, 1, 1), -1);
        skip(); /* no SHA extensions here: rdx_tp_sha_links uses another kernel */
    }
    const size_t counts[] = {16, 7, 2, 1};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        lanes_match_openssl(1, counts[c]);
    }
}

/* The kernels to compare in the link tests: every one, and the pick for this CPU. */
static const enum rdx_tp_sha_path paths[] = {RDX_TP_SHA_SERIAL, RDX_TP_SHA_NI, RDX_TP_SHA_X16,
                                             RDX_TP_SHA_FASTEST};
#define NPATHS (sizeof paths / sizeof paths[0])

/* Whether this CPU has the kernel path: a forced one it lacks is refused. */
static int path_here(enum rdx_tp_sha_path p)
{
    return (p != RDX_TP_SHA_NI || rdx_tp_sha256_ni_available()) &&
           (p != RDX_TP_SHA_X16 || rdx_tp_sha256_x16_available());
}

#define STRIDE 1024u
#define CHUNK  (16u * STRIDE)

/*
 * One chunk through rdx_tp_sha_links, from the state after its predecessors,
 * with the values of one pass (v: one per stride of the item). 0 and its
 * check value in out when every link matched.
 */
static int links_chunk(const uint8_t *data, size_t size, const uint8_t *v, size_t chunk,
                       const uint8_t *links_override, enum rdx_tp_sha_path path, uint8_t out[32])
{
    struct rdx_tp_sha s;
    size_t off = chunk * CHUNK, len = size - off < CHUNK ? size - off : CHUNK;
    size_t first = off / STRIDE, last = (off + len - 1) / STRIDE;
    if (chunk == 0) {
        rdx_tp_sha_init(&s);
    } else {
        assert_int_equal(rdx_tp_sha_resume(&s, v + 32 * (first - 1), off), 0);
    }
    const uint8_t *links = links_override != NULL ? links_override : v + 32 * first;
    if (rdx_tp_sha_links(&s, data + off, len, STRIDE, links, (unsigned)(last - first), path) != 0) {
        return -1;
    }
    assert_int_equal(rdx_tp_chunk_check(&s, size, out), 0);
    return 0;
}

/*
 * Chunks checked stride by stride give the values of one pass, on every
 * path: whole chunks (sixteen lanes), a last chunk of 12 whole strides and a
 * short one (idle lanes), one of 10 whole strides, one of 4 and a bit, of 2,
 * of 1 and a block, and one of a single block.
 */
static void test_digest_links_check_every_stride(void **state)
{
    (void)state;
    const size_t tails[] = {12 * STRIDE + 100, 10 * STRIDE, 4 * STRIDE + 1000,
                            2 * STRIDE,        STRIDE + 64, 64};
    for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
        size_t size = 3 * CHUNK + tails[t];
        uint8_t *data = malloc(size), *v = NULL;
        size_t n = 0;
        uint8_t md[32];
        assert_non_null(data);
        fill(data, size);
        assert_int_equal(rdx_tp_chunk_checks(data, size, STRIDE, &v, &n, NULL), RDX_OK);
        for (size_t k = 0; k < 4; k++) {
            size_t last = (k * CHUNK + (k < 3 ? CHUNK : tails[t]) - 1) / STRIDE;
            for (size_t p = 0; p < NPATHS; p++) {
                uint8_t got[32];
                if (!path_here(paths[p])) {
                    assert_int_equal(links_chunk(data, size, v, k, NULL, paths[p], got), -1);
                    continue;
                }
                assert_int_equal(links_chunk(data, size, v, k, NULL, paths[p], got), 0);
                assert_memory_equal(got, v + 32 * last, 32);
            }
        }
        assert_int_equal(EVP_Digest(data, size, md, NULL, EVP_sha256(), NULL), 1);
        assert_memory_equal(v + 32 * (n - 1), md, 32);
        free(v);
        free(data);
    }
}

/*
 * A changed byte in any stride, or a lying link value, fails the chunk on
 * every path, even when the chunk's own check value is right.
 */
static void test_digest_links_catch_a_changed_stride(void **state)
{
    (void)state;
    size_t size = 2 * CHUNK + 12 * STRIDE + 100;
    uint8_t *data = malloc(size), *v = NULL, got[32];
    size_t n = 0;
    assert_non_null(data);
    fill(data, size);
    assert_int_equal(rdx_tp_chunk_checks(data, size, STRIDE, &v, &n, NULL), RDX_OK);
    for (size_t p = 0; p < NPATHS; p++) {
        enum rdx_tp_sha_path path = paths[p];
        if (!path_here(path)) {
            continue;
        }
        /* A byte in stride 7 of chunk 1, and then in the short last stride of chunk 2. */
        const size_t at[] = {CHUNK + 7 * STRIDE + 5, 2 * CHUNK + 12 * STRIDE + 50,
                             CHUNK + 15 * STRIDE};
        for (size_t a = 0; a < 3; a++) {
            data[at[a]] ^= 0x01;
            assert_int_equal(
                links_chunk(data, size, v, at[a] / CHUNK, NULL, path, got) == 0 &&
                    memcmp(got,
                           v + 32 * ((at[a] / CHUNK) * 16 + 15 < n ? (at[a] / CHUNK) * 16 + 15
                                                                   : n - 1),
                           32) == 0,
                0);
            data[at[a]] ^= 0x01;
        }
        /* The bytes are right, the chunk's check value too, but link 3 lies. */
        uint8_t lie[15 * 32];
        memcpy(lie, v + 32 * 16, sizeof lie);
        lie[3 * 32 + 9] ^= 0x80;
        assert_int_equal(links_chunk(data, size, v, 1, lie, path, got), -1);
        assert_int_equal(links_chunk(data, size, v, 1, NULL, path, got), 0);
    }
    /* A count that is neither 0 nor the strides less one; a start off a block boundary. */
    struct rdx_tp_sha s;
    rdx_tp_sha_init(&s);
    assert_int_equal(rdx_tp_sha_links(&s, data, CHUNK, STRIDE, v, 14, RDX_TP_SHA_FASTEST), -1);
    rdx_tp_sha_init(&s);
    rdx_tp_sha_update(&s, data, 10);
    assert_int_equal(rdx_tp_sha_links(&s, data + 10, CHUNK, STRIDE, v, 15, RDX_TP_SHA_FASTEST), -1);
    /* No links at all: a plain pass, checked by the chunk's value alone. */
    rdx_tp_sha_init(&s);
    assert_int_equal(rdx_tp_sha_links(&s, data, CHUNK, STRIDE, v, 0, RDX_TP_SHA_FASTEST), 0);
    assert_int_equal(rdx_tp_chunk_check(&s, size, got), 0);
    assert_memory_equal(got, v + 32 * 15, 32);
    assert_int_equal(rdx_tp_link_stride(8u << 20), 512u << 10);
    free(v);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_chain_values_match_reference),
        cmocka_unit_test(test_digest_changed_byte_caught_in_its_chunk),
        cmocka_unit_test(test_digest_streamed_in_pieces_equals_whole),
        cmocka_unit_test(test_digest_resume_from_claimed_chain),
        cmocka_unit_test(test_digest_edge_sizes),
        cmocka_unit_test(test_digest_x16_lanes_match_openssl),
        cmocka_unit_test(test_digest_ni_lanes_match_openssl),
        cmocka_unit_test(test_digest_links_check_every_stride),
        cmocka_unit_test(test_digest_links_catch_a_changed_stride),
    };
    return cmocka_run_group_tests_name("transport_digest", tests, NULL, NULL);
}
