/*
 * Wire framing between nodes: an 8-byte versioned header (magic, version,
 * type, length) and a payload, with a ceiling per type enforced from the
 * header alone. The decoder is a small state machine that accepts bytes in
 * any chunking (TLS records, partial socket reads) and holds at most one
 * frame; once the framing is lost (bad magic, version, type or length) it
 * stays failed, because nothing after that point can be trusted to be a frame.
 */
#define _DEFAULT_SOURCE /* madvise */
#include "rdx/transport.h"
#include "transport_int.h"
#include "transport_limits.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const uint8_t MAGIC0 = 'R', MAGIC1 = 'X';

struct rdx_transport_decoder {
    size_t max_payload;
    uint8_t hdr[RDX_TRANSPORT_FRAME_HDR];
    size_t hdr_have;    /* bytes of the header read so far */
    unsigned type;      /* of the frame being read, once the header is complete */
    size_t len;         /* its payload length */
    rdx_buf payload;    /* its payload so far */
    uint64_t offset;    /* stream bytes consumed before the current frame */
    int keep;           /* the last frame was a chunk: keep its buffer size for the next one */
    unsigned long made; /* chunk buffers it allocated (rdx_tp_decoder_made) */
    rdx_status failed;  /* sticky error */
    char failmsg[RDX_ERROR_MSG_MAX];
    int deliver_reset; /* the last call delivered a frame: reset before reading on */
};

const char *rdx_transport_frame_type_name(unsigned type)
{
    switch (type) {
    case RDX_FRAME_HELLO:
        return "HELLO";
    case RDX_FRAME_OFFER:
        return "OFFER";
    case RDX_FRAME_PROGRESS:
        return "PROGRESS";
    case RDX_FRAME_CHUNK:
        return "CHUNK";
    case RDX_FRAME_COMMIT:
        return "COMMIT";
    case RDX_FRAME_ACK:
        return "ACK";
    case RDX_FRAME_REFUSE:
        return "REFUSE";
    case RDX_FRAME_PING:
        return "PING";
    case RDX_FRAME_PONG:
        return "PONG";
    default:
        return NULL;
    }
}

size_t rdx_transport_frame_type_max(unsigned type)
{
    switch (type) {
    case RDX_FRAME_CHUNK:
        return RDX_TRANSPORT_FRAME_MAX;
    case RDX_FRAME_OFFER:
        return RDX_TRANSPORT_OFFER_MAX;
    case RDX_FRAME_HELLO:
    case RDX_FRAME_PROGRESS:
    case RDX_FRAME_COMMIT:
    case RDX_FRAME_ACK:
    case RDX_FRAME_REFUSE:
    case RDX_FRAME_PING:
    case RDX_FRAME_PONG:
        return RDX_TRANSPORT_CONTROL_MAX;
    default:
        return 0;
    }
}

rdx_status rdx_transport_frame_header(uint8_t hdr[RDX_TRANSPORT_FRAME_HDR], unsigned type,
                                      size_t len, rdx_error *err)
{
    size_t max = rdx_transport_frame_type_max(type);
    if (max == 0) {
        return rdx_error_set(err, RDX_EINVAL, "frame type %u is not defined", type);
    }
    if (len > max) {
        return rdx_error_set(err, RDX_ELIMIT, "%s frame of %zu bytes exceeds the %zu allowed",
                             rdx_transport_frame_type_name(type), len, max);
    }
    hdr[0] = MAGIC0;
    hdr[1] = MAGIC1;
    hdr[2] = RDX_TRANSPORT_FRAME_VERSION;
    hdr[3] = (uint8_t)type;
    hdr[4] = (uint8_t)(len >> 24);
    hdr[5] = (uint8_t)(len >> 16);
    hdr[6] = (uint8_t)(len >> 8);
    hdr[7] = (uint8_t)len;
    return RDX_OK;
}

rdx_status rdx_transport_frame_encode(rdx_buf *out, unsigned type, const void *payload, size_t len,
                                      rdx_error *err)
{
    uint8_t hdr[RDX_TRANSPORT_FRAME_HDR];
    size_t total;
    if (out == NULL || (payload == NULL && len > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "frame: no buffer or payload");
    }
    RDX_TRY(rdx_transport_frame_header(hdr, type, len, err));
    if (!rdx_add_ok(len, sizeof hdr, &total) || total > out->max - out->len) {
        return rdx_error_set(err, RDX_ELIMIT, "frame of %zu bytes does not fit the buffer", len);
    }
    rdx_status st = rdx_buf_reserve(out, total);
    if (st != RDX_OK) {
        return rdx_error_set(err, st, "frame: out of memory");
    }
    /* Reserved: neither append can fail, so out never holds half a frame. */
    if (rdx_buf_append(out, hdr, sizeof hdr) != RDX_OK ||
        (len > 0 && rdx_buf_append(out, payload, len) != RDX_OK)) {
        return rdx_error_set(err, RDX_EINTERNAL, "frame: reserved append failed");
    }
    return RDX_OK;
}

rdx_status rdx_transport_decoder_new(size_t max_payload, rdx_transport_decoder **out,
                                     rdx_error *err)
{
    rdx_transport_decoder *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "frame decoder: out of memory");
    }
    if (max_payload == 0 || max_payload > RDX_TRANSPORT_FRAME_MAX) {
        max_payload = RDX_TRANSPORT_FRAME_MAX;
    }
    d->max_payload = max_payload;
    rdx_buf_init(&d->payload, max_payload);
    *out = d;
    return RDX_OK;
}

void rdx_transport_decoder_free(rdx_transport_decoder *d)
{
    if (d == NULL) {
        return;
    }
    rdx_buf_free(&d->payload);
    free(d);
}

static rdx_status fail(rdx_transport_decoder *d, rdx_error *err, rdx_status code, const char *fmt,
                       ...) RDX_PRINTF(4, 5);

static rdx_status fail(rdx_transport_decoder *d, rdx_error *err, rdx_status code, const char *fmt,
                       ...)
{
    rdx_error e;
    va_list ap;
    va_start(ap, fmt);
    rdx_error_setv(&e, code, fmt, ap);
    va_end(ap);
    d->failed = code;
    memcpy(d->failmsg, e.msg, sizeof d->failmsg);
    return rdx_error_set(err, code, "%s", e.msg);
}

/* The header is complete: check it before a byte of payload is accepted. */
static rdx_status check_header(rdx_transport_decoder *d, rdx_error *err)
{
    const uint8_t *h = d->hdr;
    unsigned long long off = (unsigned long long)d->offset;
    if (h[0] != MAGIC0 || h[1] != MAGIC1) {
        return fail(d, err, RDX_EPROTO, "frame at stream offset %llu: bad magic 0x%02x%02x", off,
                    h[0], h[1]);
    }
    if (h[2] != RDX_TRANSPORT_FRAME_VERSION) {
        return fail(d, err, RDX_EPROTO,
                    "frame at stream offset %llu: protocol version %u (this node speaks %d)", off,
                    h[2], RDX_TRANSPORT_FRAME_VERSION);
    }
    size_t tmax = rdx_transport_frame_type_max(h[3]);
    if (tmax == 0) {
        return fail(d, err, RDX_EPROTO, "frame at stream offset %llu: unknown type %u", off, h[3]);
    }
    uint32_t len = ((uint32_t)h[4] << 24) | ((uint32_t)h[5] << 16) | ((uint32_t)h[6] << 8) | h[7];
    size_t max = tmax < d->max_payload ? tmax : d->max_payload;
    if (len > max) {
        return fail(d, err, RDX_ELIMIT,
                    "frame at stream offset %llu: %s of %lu bytes exceeds the %zu allowed", off,
                    rdx_transport_frame_type_name(h[3]), (unsigned long)len, max);
    }
    d->type = h[3];
    d->len = len;
    return RDX_OK;
}

/* The previous frame was handed out; its memory may be reused now. */
static void reset_after_delivery(rdx_transport_decoder *d)
{
    if (!d->deliver_reset) {
        return;
    }
    d->offset += RDX_TRANSPORT_FRAME_HDR + d->len;
    d->hdr_have = 0;
    d->len = 0;
    /*
     * Keep a control-sized buffer for reuse, and a chunk-sized one while
     * chunks follow each other, but give it back after anything else: an
     * idle connection must not pin megabytes.
     */
    if (d->payload.cap > RDX_TRANSPORT_CONTROL_MAX && !d->keep) {
        rdx_buf_free(&d->payload);
        rdx_buf_init(&d->payload, d->max_payload);
    } else {
        rdx_buf_reset(&d->payload);
    }
    d->deliver_reset = 0;
}

/* The payload is complete: describe the frame. */
static void deliver(rdx_transport_decoder *d, rdx_transport_frame *frame, int *got)
{
    frame->type = d->type;
    frame->len = d->len;
    frame->payload = d->len > 0 ? d->payload.data : (const uint8_t *)"";
    *got = 1;
    d->deliver_reset = 1;
    d->keep = d->type == RDX_FRAME_CHUNK;
}

/*
 * Room for the whole payload of the frame whose header was just read. A large
 * chunk's storage is page-aligned, so that its data, which the sender puts at
 * a page-multiple offset, can be written with O_DIRECT without a copy.
 */
static rdx_status reserve_payload(rdx_transport_decoder *d, rdx_error *err)
{
    rdx_buf *b = &d->payload;
    size_t need = d->len;
    if (d->type == RDX_FRAME_CHUNK && need >= RDX_TRANSPORT_ALIGN_MIN && b->len == 0 &&
        (b->cap < need || ((uintptr_t)b->data % RDX_TRANSPORT_DATA_ALIGN) != 0)) {
        void *mem = NULL;
        size_t cap =
            (need + RDX_TRANSPORT_DATA_ALIGN - 1) & ~(size_t)(RDX_TRANSPORT_DATA_ALIGN - 1);
        size_t align =
            need >= RDX_TRANSPORT_HUGE_ALIGN ? RDX_TRANSPORT_HUGE_ALIGN : RDX_TRANSPORT_DATA_ALIGN;
        /* One byte more for rdx_buf's trailing NUL. */
        if (posix_memalign(&mem, align, cap + 1) != 0) {
            return fail(d, err, RDX_ENOMEM, "frame at stream offset %llu: no memory for %zu bytes",
                        (unsigned long long)d->offset, d->len);
        }
#ifdef MADV_HUGEPAGE
        if (align == RDX_TRANSPORT_HUGE_ALIGN) {
            /* Before the first touch. Only advice: without huge pages it works as before. */
            (void)madvise(mem, cap, MADV_HUGEPAGE);
        }
#endif
        free(b->data);
        b->data = mem;
        b->cap = cap;
        b->data[0] = 0;
        d->made++;
        return RDX_OK;
    }
    if (rdx_buf_reserve(b, need - b->len) != RDX_OK) {
        return fail(d, err, RDX_ENOMEM, "frame at stream offset %llu: no memory for %zu bytes",
                    (unsigned long long)d->offset, d->len);
    }
    return RDX_OK;
}

rdx_status rdx_transport_decoder_space(rdx_transport_decoder *d, uint8_t **p, size_t *n,
                                       rdx_error *err)
{
    *p = NULL;
    *n = 0;
    if (d->failed != RDX_OK) {
        return rdx_error_set(err, d->failed, "%s", d->failmsg);
    }
    reset_after_delivery(d);
    if (d->hdr_have < RDX_TRANSPORT_FRAME_HDR) {
        *p = d->hdr + d->hdr_have;
        *n = RDX_TRANSPORT_FRAME_HDR - d->hdr_have;
        return RDX_OK;
    }
    if (d->payload.cap < d->len || d->payload.data == NULL) {
        RDX_TRY(reserve_payload(d, err));
    }
    *p = d->payload.data + d->payload.len;
    *n = d->len - d->payload.len;
    return RDX_OK;
}

rdx_status rdx_transport_decoder_commit(rdx_transport_decoder *d, size_t n,
                                        rdx_transport_frame *frame, int *got, rdx_error *err)
{
    *got = 0;
    if (d->failed != RDX_OK) {
        return rdx_error_set(err, d->failed, "%s", d->failmsg);
    }
    if (d->deliver_reset) {
        return rdx_error_set(err, RDX_EINVAL, "frame decoder: commit without space");
    }
    if (d->hdr_have < RDX_TRANSPORT_FRAME_HDR) {
        if (n > RDX_TRANSPORT_FRAME_HDR - d->hdr_have) {
            return rdx_error_set(err, RDX_EINVAL, "frame decoder: commit past the space");
        }
        d->hdr_have += n;
        if (d->hdr_have == RDX_TRANSPORT_FRAME_HDR) {
            RDX_TRY(check_header(d, err));
            if (d->len == 0) {
                deliver(d, frame, got);
            }
        }
        return RDX_OK;
    }
    if (n > d->len - d->payload.len || (n > 0 && d->payload.data == NULL)) {
        return rdx_error_set(err, RDX_EINVAL, "frame decoder: commit past the space");
    }
    if (n > 0) {
        d->payload.len += n;
        d->payload.data[d->payload.len] = 0;
    }
    if (d->payload.len == d->len) {
        deliver(d, frame, got);
    }
    return RDX_OK;
}

rdx_status rdx_transport_decoder_feed(rdx_transport_decoder *d, const void *p, size_t n,
                                      size_t *used, rdx_transport_frame *frame, int *got,
                                      rdx_error *err)
{
    const uint8_t *in = p;
    size_t k = 0;
    *used = 0;
    *got = 0;
    if (d->failed != RDX_OK) {
        return rdx_error_set(err, d->failed, "%s", d->failmsg);
    }
    if (in == NULL && n > 0) {
        return rdx_error_set(err, RDX_EINVAL, "frame decoder: no input");
    }
    reset_after_delivery(d);
    while (d->hdr_have < RDX_TRANSPORT_FRAME_HDR && k < n) {
        d->hdr[d->hdr_have++] = in[k++];
        if (d->hdr_have == RDX_TRANSPORT_FRAME_HDR) {
            rdx_status st = check_header(d, err);
            if (st != RDX_OK) {
                *used = k;
                return st;
            }
        }
    }
    if (d->hdr_have == RDX_TRANSPORT_FRAME_HDR) {
        size_t want = d->len - d->payload.len;
        size_t take = n - k < want ? n - k : want;
        if (take > 0) {
            /* Reserve the whole payload once: one allocation per frame, bounded by len. */
            rdx_status st = d->payload.cap < d->len || d->payload.data == NULL
                                ? reserve_payload(d, err)
                                : RDX_OK;
            if (st != RDX_OK) {
                *used = k;
                return st;
            }
            if (rdx_buf_append(&d->payload, in + k, take) != RDX_OK) {
                *used = k;
                return fail(d, err, RDX_EINTERNAL,
                            "frame at stream offset %llu: reserved append failed",
                            (unsigned long long)d->offset);
            }
            k += take;
        }
        if (d->payload.len == d->len) {
            deliver(d, frame, got);
        }
    }
    *used = k;
    return RDX_OK;
}

rdx_status rdx_transport_decoder_finish(const rdx_transport_decoder *d, rdx_error *err)
{
    if (d->failed != RDX_OK) {
        return rdx_error_set(err, d->failed, "%s", d->failmsg);
    }
    if (d->deliver_reset || d->hdr_have == 0) {
        return RDX_OK;
    }
    unsigned long long off = (unsigned long long)d->offset;
    if (d->hdr_have < RDX_TRANSPORT_FRAME_HDR) {
        return rdx_error_set(err, RDX_ESHORT,
                             "stream ended at offset %llu, %zu bytes into a frame header", off,
                             d->hdr_have);
    }
    return rdx_error_set(err, RDX_ESHORT,
                         "stream ended inside the %s frame at offset %llu: %zu of %zu payload "
                         "bytes",
                         rdx_transport_frame_type_name(d->type), off, d->payload.len, d->len);
}

rdx_status rdx_transport_decoder_take(rdx_transport_decoder *d, rdx_buf *out, rdx_error *err)
{
    if (d == NULL || out == NULL || !d->deliver_reset || d->failed != RDX_OK) {
        return rdx_error_set(err, RDX_EINVAL, "frame decoder: no frame to take");
    }
    rdx_buf mine = d->payload;
    d->payload = *out;
    d->payload.len = 0;
    d->payload.max = d->max_payload;
    d->keep = 1; /* the caller gave this memory for the frames to come: it is not given back */
    mine.max = mine.max > mine.len ? mine.max : mine.len;
    *out = mine;
    return RDX_OK;
}

rdx_status rdx_transport_decoder_keep(rdx_transport_decoder *d, rdx_error *err)
{
    if (d == NULL || !d->deliver_reset || d->failed != RDX_OK) {
        return rdx_error_set(err, RDX_EINVAL, "frame decoder: no frame delivered");
    }
    d->keep = 1;
    return RDX_OK;
}

size_t rdx_transport_decoder_footprint(const rdx_transport_decoder *d)
{
    return d->payload.cap;
}

size_t rdx_transport_decoder_pending(const rdx_transport_decoder *d)
{
    if (d->deliver_reset) {
        return 0;
    }
    return d->hdr_have + d->payload.len;
}

unsigned long rdx_tp_decoder_made(const rdx_transport_decoder *d)
{
    return d->made;
}
