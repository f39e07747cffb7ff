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

static void words_be(const uint8_t v[32], uint32_t w[8])
{
    for (int i = 0; i < 8; i++) {
        w[i] = (uint32_t)v[4 * i] << 24 | (uint32_t)v[4 * i + 1] << 16 |
               (uint32_t)v[4 * i + 2] << 8 | (uint32_t)v[4 * i + 3];
    }
}

static void bytes_be(const uint32_t w[8], uint8_t v[32])
{
    for (int i = 0; i < 8; i++) {
        v[4 * i] = (uint8_t)(w[i] >> 24);
        v[4 * i + 1] = (uint8_t)(w[i] >> 16);
        v[4 * i + 2] = (uint8_t)(w[i] >> 8);
        v[4 * i + 3] = (uint8_t)w[i];
    }
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
    uint32_t w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = c->h[i];
    }
    bytes_be(w, out);
    return 0;
}

int rdx_tp_sha_resume(struct rdx_tp_sha *s, const uint8_t chain[32], uint64_t bytes)
{
    if (bytes % 64 != 0) {
        return -1;
    }
    rdx_tp_sha_init(s);
    SHA256_CTX *c = ctx(s);
    uint32_t w[8];
    words_be(chain, w);
    for (int i = 0; i < 8; i++) {
        c->h[i] = (SHA_LONG)w[i];
    }
    /* The message length in bits, as SHA256_Update would have counted it. */
    c->Nl = (SHA_LONG)(bytes << 3);
    c->Nh = (SHA_LONG)(bytes >> 29);
    s->bytes = bytes;
    return 0;
}

uint32_t rdx_tp_link_stride(uint32_t chunk_size)
{
    return chunk_size / RDX_TRANSPORT_LINKS;
}

/*
 * Below this many whole strides the sixteen-lane kernel is not worth it: it
 * costs the same for any number of busy lanes, about as much as eight strides
 * hashed one after the other on the machine measured (bench/sha_bench). The
 * SHA-NI kernel costs by the lane and pays from two.
 */
#define X16_MIN_LANES 9u
#define NI_MIN_LANES  2u

/*
 * The chunk's whole strides as lanes through the kernel path picked (the
 * caller checked this CPU has it): 0 when all links matched and s was
 * advanced past the chunk.
 */
static int links_lanes(struct rdx_tp_sha *s, const uint8_t *data, size_t len, uint32_t stride,
                       const uint8_t *links, size_t m, size_t full, enum rdx_tp_sha_path path)
{
    uint32_t st[16][8];
    const uint8_t *d[16];
    uint8_t got[32];
    const SHA256_CTX *c = ctx(s);
    uint64_t base = s->bytes;
    for (size_t i = 0; i < 16; i++) {
        if (i >= full) {
            /* An idle lane (of the sixteen-lane kernel) repeats lane 0; its result is not used. */
            d[i] = data;
            memcpy(st[i], st[0], sizeof st[0]);
        } else if (i == 0) {
            d[0] = data;
            for (int k = 0; k < 8; k++) {
                st[0][k] = c->h[k];
            }
        } else {
            d[i] = data + i * (size_t)stride;
            words_be(links + 32 * (i - 1), st[i]);
        }
    }
    if (path == RDX_TP_SHA_NI) {
        (void)rdx_tp_sha256_ni(st, d, full, stride / 64);
    } else {
        (void)rdx_tp_sha256_x16(st, d, stride / 64);
    }
    /* Lane i ends where link i is claimed; the last lane ends the chunk or its whole strides. */
    for (size_t i = 0; i < full && i < m - 1; i++) {
        bytes_be(st[i], got);
        if (memcmp(got, links + 32 * i, 32) != 0) {
            return -1;
        }
    }
    if (full == m) {
        bytes_be(st[full - 1], got);
        (void)rdx_tp_sha_resume(s, got, base + len);
    } else {
        /* A last, shorter stride: hashed from its claimed start, which lane full-1 just checked. */
        (void)rdx_tp_sha_resume(s, links + 32 * (full - 1), base + (uint64_t)full * stride);
        rdx_tp_sha_update(s, data + full * (size_t)stride, len - full * (size_t)stride);
    }
    return 0;
}

/* The kernel for a chunk of full whole strides: the one asked for, or the best this CPU has. */
static enum rdx_tp_sha_path pick_path(enum rdx_tp_sha_path path, size_t full)
{
    if (path != RDX_TP_SHA_FASTEST) {
        return path;
    }
    if (full >= NI_MIN_LANES && rdx_tp_sha256_ni_available()) {
        return RDX_TP_SHA_NI;
    }
    if (full >= X16_MIN_LANES && rdx_tp_sha256_x16_available()) {
        return RDX_TP_SHA_X16;
    }
    return RDX_TP_SHA_SERIAL;
}

int rdx_tp_sha_links(struct rdx_tp_sha *s, const uint8_t *data, size_t len, uint32_t stride,
                     const uint8_t *links, unsigned nlinks, enum rdx_tp_sha_path path)
{
    if ((path == RDX_TP_SHA_NI && !rdx_tp_sha256_ni_available()) ||
        (path == RDX_TP_SHA_X16 && !rdx_tp_sha256_x16_available())) {
        return -1;
    }
    if (nlinks == 0) {
        rdx_tp_sha_update(s, data, len);
        return 0;
    }
    if (stride == 0 || stride % 64 != 0 || s->bytes % 64 != 0 || ctx(s)->num != 0 || len == 0) {
        return -1;
    }
    size_t m = (len + stride - 1) / stride, full = len / stride;
    if (m != (size_t)nlinks + 1 || m > RDX_TRANSPORT_LINKS) {
        return -1;
    }
    path = pick_path(path, full);
    if (path != RDX_TP_SHA_SERIAL && full > 0) {
        return links_lanes(s, data, len, stride, links, m, full, path);
    }
    for (size_t i = 0; i < m; i++) {
        size_t off = i * (size_t)stride;
        uint8_t got[32];
        rdx_tp_sha_update(s, data + off, len - off < stride ? len - off : stride);
        if (i + 1 < m && (rdx_tp_sha_chain(s, got) != 0 || memcmp(got, links + 32 * i, 32) != 0)) {
            return -1;
        }
    }
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
