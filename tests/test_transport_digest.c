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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_chain_values_match_reference),
        cmocka_unit_test(test_digest_changed_byte_caught_in_its_chunk),
        cmocka_unit_test(test_digest_streamed_in_pieces_equals_whole),
        cmocka_unit_test(test_digest_resume_from_claimed_chain),
        cmocka_unit_test(test_digest_edge_sizes),
    };
    return cmocka_run_group_tests_name("transport_digest", tests, NULL, NULL);
}
