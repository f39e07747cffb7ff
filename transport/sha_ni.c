/*
 * Up to sixteen SHA-256 compression runs with the SHA extensions (SHA-NI),
 * four streams interleaved at a time.
 *
 * Why: one SHA-256 stream is a chain of dependent rounds, and SHA256RNDS2
 * has a latency of several cycles, so one stream leaves the unit idle most of
 * the time (OpenSSL 3.0: about 1.8 GB/s on the machine measured). Four
 * independent streams, their rounds interleaved, keep it busy: about 4 GB/s
 * on the same core, more than the sixteen AVX-512 lanes of sha_x16.c (about
 * 3 GB/s; bench/sha_bench measures all three). The streams are the strides of
 * a chunk, each hashed from the link value claimed for its start (digest.c,
 * rdx_tp_sha_links).
 *
 * The SHA instructions have only their legacy SSE encoding, sixteen xmm
 * registers: four streams' state and message words already spill a little,
 * so four is where it stops paying. The code is compiled for the SHA
 * extensions through a function attribute only and run only when the CPU
 * has them, so the rest of rdx stays built for the baseline x86-64.
 */
#include "transport_int.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RDX_HAVE_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#ifdef RDX_HAVE_NI

#define NI     __attribute__((target("sha,sse4.1,ssse3")))
#define INLINE inline __attribute__((always_inline))

/*
 * n streams (a constant at each call, so the loops unroll and the streams'
 * rounds interleave): stream l starts from st[l] and compresses nblocks
 * blocks from d[l]. The register layout (ABEF and CDGH) is the one SHA256RNDS2
 * works on; the message schedule is the usual SHA256MSG1 / SHA256MSG2 one.
 */
NI static INLINE void ni_lanes(uint32_t (*st)[8], const uint8_t *const *d, size_t nblocks, int n)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i abef[4], cdgh[4];
#pragma GCC unroll 4
    for (int l = 0; l < n; l++) {
        __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(void *)&st[l][0]), 0xB1);
        __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(void *)&st[l][4]), 0x1B);
        abef[l] = _mm_alignr_epi8(dcba, hgfe, 8);
        cdgh[l] = _mm_blend_epi16(hgfe, dcba, 0xF0);
    }
    for (size_t b = 0; b < nblocks; b++) {
        __m128i w[4][4], s0[4], s1[4];
#pragma GCC unroll 4
        for (int l = 0; l < n; l++) {
            const uint8_t *p = d[l] + b * 64;
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                w[l][q] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * q)), bswap);
            }
            s0[l] = abef[l];
            s1[l] = cdgh[l];
        }
        /* Sixteen steps of four rounds; step r uses words 4r..4r+3 and makes words 4r+16..4r+19. */
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) {
            const __m128i k =
                _mm_loadu_si128((const __m128i *)(const void *)&rdx_tp_sha256_k[4 * r]);
#pragma GCC unroll 4
            for (int l = 0; l < n; l++) {
                __m128i m = _mm_add_epi32(w[l][r & 3], k);
                cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], m);
                abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(m, 0x0E));
                if (r < 12) {
                    __m128i t = _mm_sha256msg1_epu32(w[l][r & 3], w[l][(r + 1) & 3]);
                    t = _mm_add_epi32(t, _mm_alignr_epi8(w[l][(r + 3) & 3], w[l][(r + 2) & 3], 4));
                    w[l][r & 3] = _mm_sha256msg2_epu32(t, w[l][(r + 3) & 3]);
                }
            }
        }
#pragma GCC unroll 4
        for (int l = 0; l < n; l++) {
            abef[l] = _mm_add_epi32(abef[l], s0[l]);
            cdgh[l] = _mm_add_epi32(cdgh[l], s1[l]);
        }
    }
#pragma GCC unroll 4
    for (int l = 0; l < n; l++) {
        __m128i feba = _mm_shuffle_epi32(abef[l], 0x1B);
        __m128i dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
        _mm_storeu_si128((__m128i *)(void *)&st[l][0], _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128((__m128i *)(void *)&st[l][4], _mm_alignr_epi8(dchg, feba, 8));
    }
}

NI static void ni_4(uint32_t (*st)[8], const uint8_t *const *d, size_t nblocks)
{
    ni_lanes(st, d, nblocks, 4);
}

NI static void ni_2(uint32_t (*st)[8], const uint8_t *const *d, size_t nblocks)
{
    ni_lanes(st, d, nblocks, 2);
}

NI static void ni_1(uint32_t (*st)[8], const uint8_t *const *d, size_t nblocks)
{
    ni_lanes(st, d, nblocks, 1);
}

int rdx_tp_sha256_ni_available(void)
{
#if defined(__GNUC__) && !defined(__clang__)
    /* libgcc reads CPUID once at start-up; asked per chunk, CPUID itself would trap to the
     * hypervisor each time on a virtual machine. */
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") &&
           __builtin_cpu_supports("ssse3");
#else
    /* clang's __builtin_cpu_supports does not know "sha". The xmm state is always enabled on
     * x86-64, so no XCR0 check is needed. */
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) == 0 || !(c & bit_SSSE3) || !(c & bit_SSE4_1)) {
        return 0;
    }
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (b & bit_SHA) != 0;
#endif
}

int rdx_tp_sha256_ni(uint32_t state[][8], const uint8_t *const data[], size_t nlanes,
                     size_t nblocks)
{
    if (nlanes > 16 || !rdx_tp_sha256_ni_available()) {
        return -1;
    }
    size_t i = 0;
    for (; i + 4 <= nlanes; i += 4) {
        ni_4(state + i, data + i, nblocks);
    }
    if (i + 2 <= nlanes) {
        ni_2(state + i, data + i, nblocks);
        i += 2;
    }
    if (i < nlanes) {
        ni_1(state + i, data + i, nblocks);
    }
    return 0;
}

#else /* not x86-64 */

int rdx_tp_sha256_ni_available(void)
{
    return 0;
}

int rdx_tp_sha256_ni(uint32_t state[][8], const uint8_t *const data[], size_t nlanes,
                     size_t nblocks)
{
    (void)state;
    (void)data;
    (void)nlanes;
    (void)nblocks;
    return -1;
}

#endif
