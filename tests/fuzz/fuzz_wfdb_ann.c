/* libFuzzer target: the MIT annotation decoder, and the encoder's round trip:
 * whatever decodes must encode, and decoding that again must give the same
 * bytes when encoded once more. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rdx/ecg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_ecg_annset *a = NULL, *b = NULL;
    rdx_error err;
    rdx_buf e1, e2;
    if (rdx_ecg_ann_parse(data, size, "fuzz.atr", &a, &err) != RDX_OK) {
        if (a != NULL || err.msg[0] == '\0') {
            __builtin_trap();
        }
        return 0;
    }
    rdx_buf_init(&e1, 1u << 24);
    rdx_buf_init(&e2, 1u << 24);
    if (rdx_ecg_ann_encode(a, &e1, &err) == RDX_OK) {
        if (rdx_ecg_ann_parse(e1.data, e1.len, "again", &b, &err) != RDX_OK) {
            __builtin_trap();
        }
        if (rdx_ecg_annset_count(a) != rdx_ecg_annset_count(b) ||
            rdx_ecg_ann_encode(b, &e2, &err) != RDX_OK || e1.len != e2.len ||
            memcmp(e1.data, e2.data, e1.len) != 0) {
            __builtin_trap();
        }
    }
    rdx_buf_free(&e1);
    rdx_buf_free(&e2);
    rdx_ecg_annset_free(a);
    rdx_ecg_annset_free(b);
    return 0;
}
