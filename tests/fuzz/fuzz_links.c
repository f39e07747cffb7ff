/*
 * libFuzzer target for the receiver's check of a chunk's link values
 * (rdx_tp_sha_links), whose values come from the peer. The input's first
 * byte picks the stride (64 to 256 bytes), the second a byte of the link
 * values to change (or none); the rest is the chunk, at most sixteen strides.
 * The link values are first made honestly from one SHA-256 pass. Then every
 * path this CPU has (one stream, SHA-NI lanes, AVX-512 lanes) must agree: all
 * accept honest values and reach the item's digest, all refuse a changed one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"
#include "../../transport/transport_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    uint32_t stride = 64u * (1u + data[0] % 4u);
    unsigned lie = data[1];
    data += 2;
    size -= 2;
    size_t len = size < RDX_TRANSPORT_LINKS * stride ? size : RDX_TRANSPORT_LINKS * stride;
    uint8_t *v = NULL;
    size_t nv = 0;
    if (rdx_tp_chunk_checks(data, len, stride, &v, &nv, NULL) != RDX_OK) {
        return 0;
    }
    unsigned nlinks = (unsigned)nv - 1;
    uint8_t links[(RDX_TRANSPORT_LINKS - 1) * 32];
    memcpy(links, v, 32 * (size_t)nlinks);
    int lied = lie < 32 * nlinks;
    if (lied) {
        links[lie] ^= 0x01;
    }
    static const enum rdx_tp_sha_path paths[] = {RDX_TP_SHA_SERIAL, RDX_TP_SHA_NI, RDX_TP_SHA_X16};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        if ((paths[p] == RDX_TP_SHA_NI && !rdx_tp_sha256_ni_available()) ||
            (paths[p] == RDX_TP_SHA_X16 && !rdx_tp_sha256_x16_available())) {
            continue;
        }
        struct rdx_tp_sha h;
        uint8_t got[32];
        rdx_tp_sha_init(&h);
        int r = rdx_tp_sha_links(&h, data, len, stride, links, nlinks, paths[p]);
        if (r != (lied ? -1 : 0)) {
            abort();
        }
        if (r == 0 &&
            (rdx_tp_chunk_check(&h, len, got) != 0 || memcmp(got, v + 32 * (nv - 1), 32) != 0)) {
            abort();
        }
    }
    free(v);
    return 0;
}
