/*
 * lab/mllp.c - the Minimal Lower Layer Protocol (HL7 v2.5.1 Appendix C,
 * "MLLP release 2"): each message is sent as <SB> payload <EB><CR>, with
 * SB = 0x0B, EB = 0x1C, CR = 0x0D.
 *
 * The reader is a byte-at-a-time state machine over whatever chunks the
 * socket hands it, so a frame may be split anywhere, including between EB
 * and CR. Its buffer never grows past max_frame: an oversized frame is
 * dropped and the reader waits for the next SB, as it does after garbage or
 * a broken trailer, so one bad peer write cannot wedge the stream.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdlib.h>
#include <string.h>

typedef enum mllp_state {
    MLLP_IDLE,   /* outside a frame, waiting for SB */
    MLLP_IN,     /* inside a frame */
    MLLP_EB,     /* saw EB, want CR */
    MLLP_DISCARD /* frame too large: skip to EB CR or the next SB */
} mllp_state;

struct rdx_lab_mllp_reader {
    rdx_buf frame;
    size_t max_frame;
    mllp_state state;
    rdx_lab_mllp_stats stats;
};

rdx_status rdx_lab_mllp_reader_new(size_t max_frame, rdx_lab_mllp_reader **out, rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "MLLP reader: out is NULL");
    }
    *out = NULL;
    if (max_frame == 0) {
        max_frame = RDX_LAB_MLLP_MAX_FRAME;
    }
    if (max_frame > RDX_LAB_MLLP_MAX_FRAME) {
        return rdx_error_set(err, RDX_EINVAL, "MLLP reader: max frame %zu above the cap %u",
                             max_frame, RDX_LAB_MLLP_MAX_FRAME);
    }
    rdx_lab_mllp_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    r->max_frame = max_frame;
    rdx_buf_init(&r->frame, max_frame);
    r->state = MLLP_IDLE;
    *out = r;
    return RDX_OK;
}

void rdx_lab_mllp_reader_free(rdx_lab_mllp_reader *r)
{
    if (r == NULL) {
        return;
    }
    rdx_buf_free(&r->frame);
    free(r);
}

static void drop(rdx_lab_mllp_reader *r)
{
    r->stats.frames_dropped++;
    rdx_buf_reset(&r->frame);
}

rdx_status rdx_lab_mllp_reader_feed(rdx_lab_mllp_reader *r, const void *data, size_t n,
                                    rdx_lab_mllp_frame_fn fn, void *user, rdx_error *err)
{
    const uint8_t *p = data;
    size_t i = 0;
    if (r == NULL || fn == NULL || (data == NULL && n != 0)) {
        return rdx_error_set(err, RDX_EINVAL, "MLLP feed: bad arguments");
    }
    while (i < n) {
        switch (r->state) {
        case MLLP_IDLE: {
            const uint8_t *sb = memchr(p + i, RDX_LAB_MLLP_SB, n - i);
            size_t skip = sb ? (size_t)(sb - (p + i)) : n - i;
            r->stats.bytes_skipped += skip;
            i += skip;
            if (sb != NULL) {
                i++;
                rdx_buf_reset(&r->frame);
                r->state = MLLP_IN;
            }
            break;
        }
        case MLLP_IN: {
            /* Copy the run up to the next control byte in one append. */
            size_t j = i;
            while (j < n && p[j] != RDX_LAB_MLLP_EB && p[j] != RDX_LAB_MLLP_SB) {
                j++;
            }
            if (j > i) {
                if (j - i > r->max_frame - r->frame.len) {
                    drop(r);
                    r->state = MLLP_DISCARD;
                    i = j;
                    break;
                }
                rdx_status st = rdx_buf_append(&r->frame, p + i, j - i);
                if (st != RDX_OK) {
                    return rdx_error_set(err, st, "MLLP: out of memory buffering a frame");
                }
                i = j;
            }
            if (i < n) {
                if (p[i] == RDX_LAB_MLLP_SB) {
                    /* A new frame before this one ended: resynchronise on it. */
                    drop(r);
                } else {
                    r->state = MLLP_EB;
                }
                i++;
            }
            break;
        }
        case MLLP_EB:
            if (p[i] == RDX_LAB_MLLP_CR) {
                i++;
                r->state = MLLP_IDLE;
                r->stats.frames++;
                r->stats.bytes_delivered += r->frame.len;
                static const uint8_t empty[1] = {0};
                rdx_status st = fn(user, r->frame.data ? r->frame.data : empty, r->frame.len);
                rdx_buf_reset(&r->frame);
                if (st != RDX_OK) {
                    return st;
                }
            } else {
                /* EB not followed by CR: not a valid trailer; drop and resync. */
                drop(r);
                r->state = MLLP_IDLE;
            }
            break;
        case MLLP_DISCARD: {
            size_t j = i;
            while (j < n && p[j] != RDX_LAB_MLLP_SB) {
                j++;
            }
            r->stats.bytes_skipped += j - i;
            i = j;
            if (i < n) {
                i++;
                rdx_buf_reset(&r->frame);
                r->state = MLLP_IN;
            }
            break;
        }
        default:
            return rdx_error_set(err, RDX_EINTERNAL, "MLLP: bad reader state");
        }
    }
    return RDX_OK;
}

rdx_status rdx_lab_mllp_reader_finish(rdx_lab_mllp_reader *r, rdx_error *err)
{
    if (r->state == MLLP_IN || r->state == MLLP_EB) {
        size_t held = r->frame.len;
        drop(r);
        r->state = MLLP_IDLE;
        return rdx_error_set(err, RDX_ESHORT,
                             "MLLP: stream ended inside a frame (%zu bytes without EB CR)", held);
    }
    r->state = MLLP_IDLE;
    return RDX_OK;
}

void rdx_lab_mllp_reader_stats(const rdx_lab_mllp_reader *r, rdx_lab_mllp_stats *out)
{
    *out = r->stats;
}

rdx_status rdx_lab_mllp_wrap(const void *payload, size_t n, rdx_buf *out, rdx_error *err)
{
    const uint8_t *p = payload;
    if (p == NULL && n != 0) {
        return rdx_error_set(err, RDX_EINVAL, "MLLP wrap: no payload");
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == RDX_LAB_MLLP_SB || p[i] == RDX_LAB_MLLP_EB) {
            return rdx_error_set(err, RDX_EINVAL,
                                 "MLLP wrap: payload byte %zu is 0x%02x, which would break the "
                                 "framing",
                                 i, p[i]);
        }
    }
    size_t total;
    if (!rdx_add_ok(n, 3, &total)) {
        return rdx_error_set(err, RDX_ELIMIT, "MLLP wrap: payload too large");
    }
    rdx_status st = rdx_buf_reserve(out, total);
    if (st != RDX_OK) {
        return rdx_error_set(err, st, "MLLP wrap: %s", rdx_strerror(st));
    }
    /* Cannot fail now: the room is reserved. */
    st = rdx_buf_append_u8(out, RDX_LAB_MLLP_SB);
    if (st == RDX_OK) {
        st = rdx_buf_append(out, p, n);
    }
    if (st == RDX_OK) {
        st = rdx_buf_append_u8(out, RDX_LAB_MLLP_EB);
    }
    if (st == RDX_OK) {
        st = rdx_buf_append_u8(out, RDX_LAB_MLLP_CR);
    }
    return st;
}
