/*
 * sha_bench: how fast does the receiver check a chunk (transport/digest.c,
 * rdx_tp_sha_links) with each of its SHA-256 kernels on this CPU? The
 * receiver's one SHA-256 pass is the largest single cost of a bulk transfer
 * after TLS itself (docs/transport-performance.md). One SHA-256 stream is a
 * chain of dependent rounds; a chunk's link values make its sixteen strides
 * sixteen independent streams, which the kernels hash side by side: four at
 * a time interleaved with the SHA-NI instructions (transport/sha_ni.c), or
 * sixteen in AVX-512 registers (transport/sha_x16.c).
 *
 * MIB MiB are checked as 8 MiB chunks against their link values: one stride
 * after another (OpenSSL), then with each kernel this CPU has. Every pass
 * must accept every chunk and end at OpenSSL's digest of the whole, or the
 * bench fails. The figures are GB/s of data hashed on one core, best of 5,
 * and each kernel's ratio to the serial pass; OpenSSL's plain one-pass
 * digest is timed too, as the baseline. It also says which kernel the
 * receiver picks here (RDX_TP_SHA_FASTEST).
 * Usage: sha_bench [MIB]   (default 64)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"

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
static double links_pass(const uint8_t *p, size_t n, const uint8_t *v, enum rdx_tp_sha_path path,
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
                             path) != 0 ||
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
    size_t n = mib << 20;
    uint8_t *a = malloc(n);
    if (a == NULL) {
        fprintf(stderr, "sha_bench: out of memory\n");
        return 1;
    }
    uint32_t x = 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        a[i] = (uint8_t)(x >> 24);
    }
    uint8_t ref[32];
    double base = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        EVP_Digest(a, n, ref, NULL, EVP_sha256(), NULL);
        double t = now_s() - t0;
        base = t < base ? t : base;
    }
    uint8_t *v = NULL;
    size_t nv = 0;
    if (rdx_tp_chunk_checks(a, n, rdx_tp_link_stride(RDX_TRANSPORT_CHUNK_MAX), &v, &nv, NULL) !=
        RDX_OK) {
        fprintf(stderr, "sha_bench: out of memory\n");
        return 1;
    }
    printf("sha_bench: %zu MiB, one core, best of 5: OpenSSL SHA-256 in one pass %.2f GB/s\n", mib,
           (double)n / base / 1e9);
    static const struct {
        enum rdx_tp_sha_path path;
        const char *name;
        int (*here)(void);
    } kernels[] = {
        {RDX_TP_SHA_SERIAL, "one stride after another (OpenSSL)", NULL},
        {RDX_TP_SHA_NI, "four strides at a time, SHA-NI interleaved", rdx_tp_sha256_ni_available},
        {RDX_TP_SHA_X16, "sixteen strides at a time, AVX-512", rdx_tp_sha256_x16_available},
    };
    double serial = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (kernels[k].here != NULL && !kernels[k].here()) {
            printf("sha_bench: the receiver's check, %s: not on this CPU\n", kernels[k].name);
            continue;
        }
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t = links_pass(a, n, v, kernels[k].path, ref);
            if (t < 0) {
                fprintf(stderr, "sha_bench: %s: a chunk failed its link values\n", kernels[k].name);
                return 1;
            }
            best = t < best ? t : best;
        }
        if (k == 0) {
            serial = best;
        }
        printf("sha_bench: the receiver's check as 8 MiB chunks, %s: %.2f GB/s (x%.2f of serial); "
               "every chunk checked\n",
               kernels[k].name, (double)n / best / 1e9, serial / best);
    }
    printf("sha_bench: the receiver picks %s here\n", rdx_tp_sha256_ni_available() ? "SHA-NI"
                                                      : rdx_tp_sha256_x16_available()
                                                          ? "AVX-512"
                                                          : "the serial pass");
    free(v);
    free(a);
    return 0;
}
