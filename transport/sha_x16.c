/*
 * Sixteen SHA-256 compressions at once, one per 32-bit lane of the AVX-512
 * registers (the multi-buffer technique of Intel's ISA-L and of Guilford et
 * al., "Fast SHA-256 implementations on Intel architecture processors", 2012).
 *
 * Why: the receiver must hash every byte it stores, and one SHA-256 stream is
 * a chain of dependent rounds. With SHA-NI one core does about 1.75 GB/s
 * (OpenSSL 3.0 on the machine measured); sixteen independent streams in
 * AVX-512 registers do about 1.6 times that on the same core (bench/sha_bench).
 * The streams come from the link values a chunk carries (digest.c,
 * rdx_tp_sha_links): each sixteenth of a chunk is hashed from the chaining
 * value the sender claims for its start and checked against the value it
 * claims for its end.
 *
 * Where the CPU also has the SHA extensions, four interleaved SHA-NI streams
 * are faster still (sha_ni.c, about 3.8 against 2.8 GB/s on the machine
 * measured), so the receiver uses this kernel only on CPUs with AVX-512 and
 * no SHA-NI.
 *
 * The code is compiled for AVX-512 through a function attribute only and run
 * only when the CPU (and the kernel's saved register state) has AVX-512F and
 * AVX-512BW, so the rest of rdx stays built for the baseline x86-64. Elsewhere
 * rdx_tp_sha256_x16 reports -1 and the caller hashes serially.
 */
#include "transport_int.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RDX_HAVE_X16 1
#include <immintrin.h>
#endif

/* FIPS 180-4 section 4.2.2. */
const uint32_t rdx_tp_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#ifdef RDX_HAVE_X16

#define X16 __attribute__((target("avx512f,avx512bw")))

/*
 * The 16 message words of one block of each lane, as 16 vectors of one word
 * per lane: load each lane's block (byte-swapped to big-endian words), then
 * transpose the 16 x 16 matrix of words in four rounds of shuffles.
 */
X16 static void load_block(__m512i w[16], const uint8_t *const p[16], size_t off)
{
    const __m512i bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) {
        r[i] = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p[i] + off)), bswap);
    }
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* Now each 128-bit quarter k of r[i..i+3] holds word 4k+m of rows i..i+3 (m = 0..3). */
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int m = 0; m < 4; m++) {
        __m512i lo = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44);
        __m512i hi = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xEE);
        __m512i lo2 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44);
        __m512i hi2 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xEE);
        w[m] = _mm512_shuffle_i32x4(lo, lo2, 0x88);
        w[4 + m] = _mm512_shuffle_i32x4(lo, lo2, 0xDD);
        w[8 + m] = _mm512_shuffle_i32x4(hi, hi2, 0x88);
        w[12 + m] = _mm512_shuffle_i32x4(hi, hi2, 0xDD);
    }
}

#define ROR(x, n)     _mm512_ror_epi32((x), (n))
#define ADD(a, b)     _mm512_add_epi32((a), (b))
#define XOR3(a, b, c) _mm512_ternarylogic_epi32((a), (b), (c), 0x96)

#define PREFETCH_BLOCKS 8

X16 static void x16_blocks(uint32_t state[16][8], const uint8_t *const data[16], size_t nblocks)
{
    __m512i s[8];
    for (int j = 0; j < 8; j++) {
        uint32_t col[16];
        for (int i = 0; i < 16; i++) {
            col[i] = state[i][j];
        }
        s[j] = _mm512_loadu_si512((const void *)col);
    }
    for (size_t b = 0; b < nblocks; b++) {
        __m512i w[16];
        for (int i = 0; i < 16; i++) {
            _mm_prefetch((const char *)(data[i] + (b + PREFETCH_BLOCKS) * 64), _MM_HINT_T0);
        }
        load_block(w, data, b * 64);
        __m512i a = s[0], bb = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
        for (int t = 0; t < 64; t++) {
            __m512i wt;
            if (t < 16) {
                wt = w[t];
            } else {
                __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
                __m512i s0 = XOR3(ROR(w15, 7), ROR(w15, 18), _mm512_srli_epi32(w15, 3));
                __m512i s1 = XOR3(ROR(w2, 17), ROR(w2, 19), _mm512_srli_epi32(w2, 10));
                wt = ADD(ADD(w[t & 15], s0), ADD(w[(t - 7) & 15], s1));
                w[t & 15] = wt;
            }
            __m512i big1 = XOR3(ROR(e, 6), ROR(e, 11), ROR(e, 25));
            __m512i ch = _mm512_ternarylogic_epi32(e, f, g, 0xCA);   /* (e & f) ^ (~e & g) */
            __m512i maj = _mm512_ternarylogic_epi32(a, bb, c, 0xE8); /* majority */
            __m512i big0 = XOR3(ROR(a, 2), ROR(a, 13), ROR(a, 22));
            __m512i t1 =
                ADD(ADD(h, big1), ADD(ch, ADD(wt, _mm512_set1_epi32((int)rdx_tp_sha256_k[t]))));
            __m512i t2 = ADD(big0, maj);
            h = g;
            g = f;
            f = e;
            e = ADD(d, t1);
            d = c;
            c = bb;
            bb = a;
            a = ADD(t1, t2);
        }
        s[0] = ADD(s[0], a);
        s[1] = ADD(s[1], bb);
        s[2] = ADD(s[2], c);
        s[3] = ADD(s[3], d);
        s[4] = ADD(s[4], e);
        s[5] = ADD(s[5], f);
        s[6] = ADD(s[6], g);
        s[7] = ADD(s[7], h);
    }
    for (int j = 0; j < 8; j++) {
        uint32_t col[16];
        _mm512_storeu_si512((void *)col, s[j]);
        for (int i = 0; i < 16; i++) {
            state[i][j] = col[i];
        }
    }
}

int rdx_tp_sha256_x16_available(void)
{
    /* libgcc's check includes the kernel's XSAVE support for the AVX-512 state (XCR0). */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

int rdx_tp_sha256_x16(uint32_t state[16][8], const uint8_t *const data[16], size_t nblocks)
{
    if (!rdx_tp_sha256_x16_available()) {
        return -1;
    }
    x16_blocks(state, data, nblocks);
    return 0;
}

#else /* not x86-64 */

int rdx_tp_sha256_x16_available(void)
{
    return 0;
}

int rdx_tp_sha256_x16(uint32_t state[16][8], const uint8_t *const data[16], size_t nblocks)
{
    (void)state;
    (void)data;
    (void)nblocks;
    return -1;
}

#endif
