/*
 * SHA-256 whose chaining value can be read between 64-byte blocks: the check
 * value of a chunk (see rdx_tp_chunk_check in transport_int.h).
 *
 * Why the low-level SHA256_CTX: OpenSSL 3's EVP interface does not expose
 * the intermediate state, and without it a receiver must hash every byte
 * twice (once for the chunk, once for the item). The low-level functions are
 * deprecated in OpenSSL 3 but still part of the 3.x API, and they run the
 * same SHA-NI / AVX2 block function as EVP; the deprecation is silenced in
 * this file only.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "transport_int.h"

#include <string.h>

#include <openssl/sha.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct rdx_tp_sha *)0)->opaque),
               "rdx_tp_sha is too small for SHA256_CTX");

static SHA256_CTX *ctx(struct rdx_tp_sha *s)
{
    return (SHA256_CTX *)(void *)s->opaque;
}

void rdx_tp_sha_init(struct rdx_tp_sha *s)
{
    memset(s, 0, sizeof *s);
    (void)SHA256_Init(ctx(s));
}

void rdx_tp_sha_update(struct rdx_tp_sha *s, const void *p, size_t n)
{
    if (n > 0) {
        (void)SHA256_Update(ctx(s), p, n);
        s->bytes += n;
    }
}

int rdx_tp_sha_chain(const struct rdx_tp_sha *s, uint8_t out[32])
{
    const SHA256_CTX *c = (const SHA256_CTX *)(const void *)s->opaque;
    if (c->num != 0 || s->bytes % 64 != 0) {
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
    return 0;
}

int rdx_tp_sha_resume(struct rdx_tp_sha *s, const uint8_t chain[32], uint64_t bytes)
{
    if (bytes % 64 != 0) {
        return -1;
    }
    rdx_tp_sha_init(s);
    SHA256_CTX *c = ctx(s);
    for (int i = 0; i < 8; i++) {
        c->h[i] = (SHA_LONG)chain[4 * i] << 24 | (SHA_LONG)chain[4 * i + 1] << 16 |
                  (SHA_LONG)chain[4 * i + 2] << 8 | (SHA_LONG)chain[4 * i + 3];
    }
    /* The message length in bits, as SHA256_Update would have counted it. */
    c->Nl = (SHA_LONG)(bytes << 3);
    c->Nh = (SHA_LONG)(bytes >> 29);
    s->bytes = bytes;
    return 0;
}

void rdx_tp_sha_final(struct rdx_tp_sha *s, uint8_t out[32])
{
    (void)SHA256_Final(out, ctx(s));
}

int rdx_tp_chunk_check(struct rdx_tp_sha *s, uint64_t item_size, uint8_t out[32])
{
    if (s->bytes == item_size) {
        rdx_tp_sha_final(s, out);
        return 0;
    }
    return rdx_tp_sha_chain(s, out);
}

rdx_status rdx_tp_chunk_checks(const uint8_t *data, uint64_t size, uint32_t chunk_size,
                               uint8_t **out, size_t *n, rdx_error *err)
{
    struct rdx_tp_sha s;
    size_t k = rdx_tp_chunk_count(size, chunk_size);
    *out = NULL;
    *n = 0;
    if (chunk_size == 0 || chunk_size % 64 != 0) {
        return rdx_error_set(err, RDX_EINVAL, "chunk size %lu is not a multiple of 64 bytes",
                             (unsigned long)chunk_size);
    }
    uint8_t *v = rdx_callocarray(k > 0 ? k : 1, 32);
    if (v == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    rdx_tp_sha_init(&s);
    for (size_t i = 0; i < k; i++) {
        uint64_t off = (uint64_t)i * chunk_size;
        uint64_t len = size - off < chunk_size ? size - off : chunk_size;
        rdx_tp_sha_update(&s, data + off, (size_t)len);
        (void)rdx_tp_chunk_check(&s, size, v + 32 * i);
    }
    *out = v;
    *n = k;
    return RDX_OK;
}

size_t rdx_tp_chunk_count(uint64_t size, uint32_t chunk_size)
{
    if (chunk_size == 0) {
        return 0;
    }
    return (size_t)((size + chunk_size - 1) / chunk_size);
}
