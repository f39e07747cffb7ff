/*
 * Fuzz the bounded reader: the input is both the data and a script of reads.
 * Invariants checked: the cursor never passes the end, a failed read never
 * moves it, and a successful read returns exactly the bytes at the cursor.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    /* First byte: how much of the input is the script; the rest is the data. */
    size_t nscript = data[0] % 32;
    if (nscript > size - 1) {
        nscript = size - 1;
    }
    const uint8_t *script = data + 1;
    const uint8_t *payload = data + 1 + nscript;
    size_t plen = size - 1 - nscript;
    rdx_rd r;
    rdx_rd_init(&r, payload, plen);
    for (size_t i = 0; i < nscript; i++) {
        size_t before = r.off;
        uint8_t op = script[i];
        rdx_status st = RDX_OK;
        size_t want = 0;
        uint8_t tmp[64];
        const uint8_t *view = NULL;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        switch (op % 8) {
        case 0:
            want = 1;
            st = rdx_rd_u8(&r, &u8);
            break;
        case 1:
            want = 2;
            st = rdx_rd_u16le(&r, &u16);
            break;
        case 2:
            want = 2;
            st = rdx_rd_u16be(&r, &u16);
            break;
        case 3:
            want = 4;
            st = rdx_rd_u32le(&r, &u32);
            break;
        case 4:
            want = 4;
            st = rdx_rd_u32be(&r, &u32);
            break;
        case 5:
            want = op / 8 % sizeof tmp;
            st = rdx_rd_bytes(&r, tmp, want);
            if (st == RDX_OK && want > 0 && memcmp(tmp, payload + before, want) != 0) {
                abort();
            }
            break;
        case 6:
            want = op / 8;
            st = rdx_rd_view(&r, &view, want);
            if (st == RDX_OK && view != payload + before) {
                abort();
            }
            break;
        default:
            /* Huge skips probe the overflow-safe bounds check. */
            want = op & 0x80 ? SIZE_MAX - (op & 0x7f) : (size_t)(op / 8);
            st = rdx_rd_skip(&r, want);
            break;
        }
        if (st == RDX_OK) {
            if (r.off != before + want) {
                abort();
            }
        } else if (st != RDX_ESHORT || r.off != before || want <= plen - before) {
            abort();
        }
        if (r.off > r.len || rdx_rd_remaining(&r) != plen - r.off) {
            abort();
        }
    }
    return 0;
}
