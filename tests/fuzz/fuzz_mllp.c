/*
 * libFuzzer target for the MLLP reader: the input is fed in chunks whose
 * sizes come from the first byte; every delivered frame must be within the
 * cap and free of block characters, and wrapping it again must round-trip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/lab.h"

static rdx_status on_frame(void *user, const uint8_t *p, size_t n)
{
    (void)user;
    if (n > 4096 || memchr(p, RDX_LAB_MLLP_SB, n) != NULL || memchr(p, RDX_LAB_MLLP_EB, n)) {
        abort();
    }
    rdx_buf w;
    rdx_buf_init(&w, 8192);
    if (rdx_lab_mllp_wrap(p, n, &w, NULL) != RDX_OK || w.len != n + 3) {
        abort();
    }
    rdx_buf_free(&w);
    return RDX_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_lab_mllp_reader *r = NULL;
    if (size == 0 || rdx_lab_mllp_reader_new(4096, &r, NULL) != RDX_OK) {
        return 0;
    }
    size_t chunk = (size_t)data[0] % 17 + 1;
    for (size_t i = 1; i < size; i += chunk) {
        size_t k = size - i < chunk ? size - i : chunk;
        if (rdx_lab_mllp_reader_feed(r, data + i, k, on_frame, NULL, NULL) != RDX_OK) {
            abort();
        }
    }
    rdx_lab_mllp_stats st;
    rdx_lab_mllp_reader_stats(r, &st);
    if (st.bytes_delivered > size) {
        abort();
    }
    (void)rdx_lab_mllp_reader_finish(r, NULL);
    rdx_lab_mllp_reader_free(r);
    return 0;
}
