/*
 * sha_bench: does hashing two independent SHA-256 streams at once, with the
 * SHA-NI instructions interleaved, beat OpenSSL's one stream at a time on
 * this CPU? The receiver's one SHA-256 pass is the largest single cost of a
 * bulk transfer (docs/transport-performance.md). OpenSSL's SHA-NI code runs
 * one dependent chain of sha256rnds2 per block, so it is bound by that
 * instruction's latency; two chains can overlap. Two chunks of one item can
 * be checked at once because each chunk's start state is the previous
 * chunk's check value (transport/digest.c).
 *
 * The kernel here is checked against OpenSSL's SHA-256 on every run before it
 * is timed; the figures are GB/s of data hashed, one core.
 *
 * It then times what the receiver runs (transport/digest.c,
 * rdx_tp_sha_links): MIB MiB as 8 MiB chunks, each checked against its link
 * values, once hashing one stride after another (OpenSSL) and once sixteen
 * strides at a time (transport/sha_x16.c, AVX-512), and checks that both
 * accept every chunk and end at OpenSSL's digest.
 * Usage: sha_bench [MIB]   (default 64: two streams of MIB MiB each)
 */
#define _POSIX_C_SOURCE 200809L
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"

static const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static int have_sha_ni(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) {
        return 0;
    }
    return (b >> 29) & 1;
}

#define TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* The state words (a..h) into the ABEF / CDGH layout sha256rnds2 works on. */
TARGET static void load_state(const uint32_t s[8], __m128i *abef, __m128i *cdgh)
{
    __m128i t = _mm_loadu_si128((const __m128i *)&s[0]);
    __m128i u = _mm_loadu_si128((const __m128i *)&s[4]);
    t = _mm_shuffle_epi32(t, 0xB1); /* CDAB */
    u = _mm_shuffle_epi32(u, 0x1B); /* EFGH */
    *abef = _mm_alignr_epi8(t, u, 8);
    *cdgh = _mm_blend_epi16(u, t, 0xF0);
}

TARGET static void store_state(uint32_t s[8], __m128i abef, __m128i cdgh)
{
    __m128i t = _mm_shuffle_epi32(abef, 0x1B);                       /* FEBA */
    __m128i u = _mm_shuffle_epi32(cdgh, 0xB1);                       /* DCHG */
    _mm_storeu_si128((__m128i *)&s[0], _mm_blend_epi16(t, u, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&s[4], _mm_alignr_epi8(u, t, 8));    /* HGFE */
}

/* n 64-byte blocks of each of two independent streams, their rounds interleaved. */
TARGET static void sha256_ni_x2(uint32_t sa[8], const uint8_t *pa, uint32_t sb[8],
                                const uint8_t *pb, size_t n)
{
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i a0, a1, b0, b1;
    load_state(sa, &a0, &a1);
    load_state(sb, &b0, &b1);
    for (; n > 0; n--, pa += 64, pb += 64) {
        __m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1;
        __m128i wa[4], wb[4];
        for (int g = 0; g < 16; g++) {
            __m128i xa, xb;
            if (g < 4) {
                xa = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 16 * g)), mask);
                xb = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 16 * g)), mask);
            } else {
                /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time. */
                xa = _mm_sha256msg1_epu32(wa[g & 3], wa[(g + 1) & 3]);
                xb = _mm_sha256msg1_epu32(wb[g & 3], wb[(g + 1) & 3]);
                xa = _mm_add_epi32(xa, _mm_alignr_epi8(wa[(g + 3) & 3], wa[(g + 2) & 3], 4));
                xb = _mm_add_epi32(xb, _mm_alignr_epi8(wb[(g + 3) & 3], wb[(g + 2) & 3], 4));
                xa = _mm_sha256msg2_epu32(xa, wa[(g + 3) & 3]);
                xb = _mm_sha256msg2_epu32(xb, wb[(g + 3) & 3]);
            }
            wa[g & 3] = xa;
            wb[g & 3] = xb;
            __m128i k = _mm_loadu_si128((const __m128i *)&rdx_tp_sha256_k[4 * g]);
            __m128i ma = _mm_add_epi32(xa, k), mb = _mm_add_epi32(xb, k);
            a1 = _mm_sha256rnds2_epu32(a1, a0, ma);
            b1 = _mm_sha256rnds2_epu32(b1, b0, mb);
            a0 = _mm_sha256rnds2_epu32(a0, a1, _mm_shuffle_epi32(ma, 0x0E));
            b0 = _mm_sha256rnds2_epu32(b0, b1, _mm_shuffle_epi32(mb, 0x0E));
        }
        a0 = _mm_add_epi32(a0, sa0);
        a1 = _mm_add_epi32(a1, sa1);
        b0 = _mm_add_epi32(b0, sb0);
        b1 = _mm_add_epi32(b1, sb1);
    }
    store_state(sa, a0, a1);
    store_state(sb, b0, b1);
}

/* The digest of a message of whole blocks, from its chaining state: SHA-256's padding block. */
TARGET static void finish(uint32_t s[8], uint64_t bytes, uint8_t out[32])
{
    uint8_t pad[64] = {0x80};
    uint64_t bits = bytes * 8;
    for (int i = 0; i < 8; i++) {
        pad[63 - i] = (uint8_t)(bits >> (8 * i));
    }
    uint32_t t[8];
    memcpy(t, IV, sizeof t);
    (void)t;
    sha256_ni_x2(s, pad, t, pad, 1); /* the second lane is thrown away */
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s[i] >> 8);
        out[4 * i + 3] = (uint8_t)s[i];
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * n bytes as chunks of 8 MiB through rdx_tp_sha_links with the values v (one
 * per link stride): the seconds taken, or -1 when a chunk or the digest fails.
 */
static double links_pass(const uint8_t *p, size_t n, const uint8_t *v, int serial,
                         const uint8_t want[32])
{
    const uint32_t chunk = RDX_TRANSPORT_CHUNK_MAX, stride = rdx_tp_link_stride(chunk);
    struct rdx_tp_sha s;
    uint8_t got[32];
    double t0 = now_s();
    rdx_tp_sha_init(&s);
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        size_t first = off / stride, last = (off + len - 1) / stride;
        if (rdx_tp_sha_links(&s, p + off, len, stride, v + 32 * first, (unsigned)(last - first),
                             serial) != 0 ||
            rdx_tp_chunk_check(&s, n, got) != 0 || memcmp(got, v + 32 * last, 32) != 0) {
            return -1;
        }
    }
    return memcmp(got, want, 32) == 0 ? now_s() - t0 : -1;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 64;
    if (mib == 0 || mib > 4096) {
        fprintf(stderr, "sha_bench: MIB must be 1 to 4096\n");
        return 2;
    }
    if (!have_sha_ni()) {
        printf("sha_bench: this CPU has no SHA-NI; nothing to compare\n");
        return 0;
    }
    size_t n = mib << 20;
    uint8_t *a = malloc(n), *b = malloc(n);
    if (a == NULL || b == NULL) {
        fprintf(stderr, "sha_bench: out of memory\n");
        return 1;
    }
    uint32_t x = 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        a[i] = (uint8_t)(x >> 24);
        b[i] = (uint8_t)(x >> 16);
    }
    uint8_t ref_a[32], ref_b[32], got_a[32], got_b[32];
    double best1 = 1e9, best2 = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        EVP_Digest(a, n, ref_a, NULL, EVP_sha256(), NULL);
        EVP_Digest(b, n, ref_b, NULL, EVP_sha256(), NULL);
        double t1 = now_s();
        uint32_t sa[8], sb[8];
        memcpy(sa, IV, sizeof sa);
        memcpy(sb, IV, sizeof sb);
        sha256_ni_x2(sa, a, sb, b, n / 64);
        finish(sa, n, got_a);
        finish(sb, n, got_b);
        double t2 = now_s();
        if (memcmp(ref_a, got_a, 32) != 0 || memcmp(ref_b, got_b, 32) != 0) {
            fprintf(stderr, "sha_bench: the interleaved kernel disagrees with OpenSSL\n");
            return 1;
        }
        best1 = t1 - t0 < best1 ? t1 - t0 : best1;
        best2 = t2 - t1 < best2 ? t2 - t1 : best2;
    }
    printf("sha_bench: 2 x %zu MiB, best of 5, one core: OpenSSL SHA-256 one stream at a time "
           "%.2f GB/s; two SHA-NI streams interleaved %.2f GB/s (x%.2f); digests agree\n",
           mib, 2.0 * (double)n / best1 / 1e9, 2.0 * (double)n / best2 / 1e9, best1 / best2);
    uint8_t *v = NULL;
    size_t nv = 0;
    if (rdx_tp_chunk_checks(a, n, rdx_tp_link_stride(RDX_TRANSPORT_CHUNK_MAX), &v, &nv, NULL) !=
        RDX_OK) {
        fprintf(stderr, "sha_bench: out of memory\n");
        return 1;
    }
    double bs = 1e9, bx = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double ts = links_pass(a, n, v, 1, ref_a), tx = links_pass(a, n, v, 0, ref_a);
        if (ts < 0 || tx < 0) {
            fprintf(stderr, "sha_bench: a chunk failed its link values\n");
            return 1;
        }
        bs = ts < bs ? ts : bs;
        bx = tx < bx ? tx : bx;
    }
    printf("sha_bench: the receiver's check (rdx_tp_sha_links), %zu MiB as 8 MiB chunks, best of "
           "5: one stride after another %.2f GB/s; sixteen strides at a time (%s) %.2f GB/s "
           "(x%.2f); every chunk checked\n",
           mib, (double)n / bs / 1e9,
           rdx_tp_sha256_x16_available() ? "AVX-512" : "not on this CPU: serial",
           (double)n / bx / 1e9, bs / bx);
    free(v);
    free(a);
    free(b);
    return 0;
}
