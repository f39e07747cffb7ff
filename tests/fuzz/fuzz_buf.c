/*
 * Fuzz the capped buffer against a shadow copy: appends of fuzzer-chosen
 * sizes under a fuzzer-chosen cap. The buffer must equal the shadow after
 * every operation, never exceed its cap, and stay NUL-terminated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t cap = (size_t)data[0] * 16 + data[1];
    uint8_t shadow[4096 + 256];
    size_t slen = 0;
    rdx_buf b;
    rdx_buf_init(&b, cap);
    size_t i = 2;
    while (i < size) {
        uint8_t op = data[i++];
        size_t n = op >> 2;
        if (n > size - i) {
            n = size - i;
        }
        rdx_status st;
        switch (op & 3) {
        case 0:
            st = rdx_buf_append(&b, data + i, n);
            if (st == RDX_OK) {
                memcpy(shadow + slen, data + i, n);
                slen += n;
            } else if (st != RDX_ELIMIT || slen + n <= cap) {
                abort();
            }
            i += n;
            break;
        case 1:
            st = rdx_buf_printf(&b, "%zu,", n);
            if (st == RDX_OK) {
                char tmp[32];
                size_t k = (size_t)snprintf(tmp, sizeof tmp, "%zu,", n);
                memcpy(shadow + slen, tmp, k);
                slen += k;
            } else if (st != RDX_ELIMIT) {
                abort();
            }
            break;
        case 2:
            if (op & 4) {
                rdx_buf_reset(&b);
                slen = 0;
            } else if (rdx_buf_reserve(&b, n) == RDX_OK && b.cap < b.len + n) {
                abort();
            }
            break;
        default:
            st = rdx_buf_append_u8(&b, op);
            if (st == RDX_OK) {
                shadow[slen++] = op;
            } else if (st != RDX_ELIMIT || slen + 1 <= cap) {
                abort();
            }
            break;
        }
        if (b.len != slen || b.len > cap || (b.data != NULL && b.data[b.len] != '\0') ||
            (slen > 0 && memcmp(b.data, shadow, slen) != 0)) {
            abort();
        }
    }
    rdx_buf_free(&b);
    return 0;
}
