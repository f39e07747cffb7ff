/*
 * libFuzzer target for the frame decoder. The first byte picks how the rest
 * is cut into pieces (as TLS records and short reads would cut it); every
 * frame decoded must respect its type's ceiling, and re-encoding the frames
 * must reproduce exactly the bytes the decoder consumed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t piece = (size_t)data[0] + 1;
    data++;
    size--;
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    rdx_buf re;
    if (rdx_transport_decoder_new(1u << 16, &d, &err) != RDX_OK) {
        return 0;
    }
    rdx_buf_init(&re, 1u << 20);
    size_t off = 0, consumed_ok = 0;
    int failed = 0;
    while (off < size && !failed) {
        size_t n = size - off < piece ? size - off : piece;
        size_t pos = 0;
        while (pos < n) {
            size_t used = 0;
            int got = 0;
            rdx_transport_frame f;
            if (rdx_transport_decoder_feed(d, data + off + pos, n - pos, &used, &f, &got, &err) !=
                RDX_OK) {
                failed = 1;
                break;
            }
            if (used == 0 && !got) {
                abort(); /* no progress: the decoder would spin */
            }
            pos += used;
            if (got) {
                if (f.len > rdx_transport_frame_type_max(f.type) || f.len > (1u << 16)) {
                    abort();
                }
                if (rdx_transport_frame_encode(&re, f.type, f.payload, f.len, &err) != RDX_OK) {
                    abort();
                }
                consumed_ok = off + pos;
            }
            if (rdx_transport_decoder_footprint(d) > (1u << 16)) {
                abort();
            }
        }
        off += n;
    }
    if (re.len != consumed_ok || (re.len > 0 && memcmp(re.data, data, re.len) != 0)) {
        abort();
    }
    (void)rdx_transport_decoder_finish(d, &err);
    rdx_transport_decoder_free(d);

    /*
     * The zero-copy path (_space/_commit, as the node drives it with SSL_read,
     * reads of at most `piece` bytes) must decode exactly the same frames.
     */
    rdx_buf re2;
    rdx_buf_init(&re2, 1u << 20);
    if (rdx_transport_decoder_new(1u << 16, &d, &err) != RDX_OK) {
        rdx_buf_free(&re);
        return 0;
    }
    off = 0;
    while (off < size) {
        uint8_t *p = NULL;
        size_t room = 0;
        if (rdx_transport_decoder_space(d, &p, &room, &err) != RDX_OK) {
            break;
        }
        if (p == NULL || room == 0) {
            abort(); /* no room: the reader would spin */
        }
        size_t n = size - off < piece ? size - off : piece;
        n = n < room ? n : room;
        memcpy(p, data + off, n);
        off += n;
        int got = 0;
        rdx_transport_frame f;
        if (rdx_transport_decoder_commit(d, n, &f, &got, &err) != RDX_OK) {
            break;
        }
        if (got && rdx_transport_frame_encode(&re2, f.type, f.payload, f.len, &err) != RDX_OK) {
            abort();
        }
    }
    if (re2.len != re.len || (re.len > 0 && memcmp(re2.data, re.data, re.len) != 0)) {
        abort();
    }
    rdx_buf_free(&re2);
    rdx_buf_free(&re);
    rdx_transport_decoder_free(d);
    return 0;
}
