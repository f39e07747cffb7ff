/*
 * fragments.c - the item structure of encapsulated Pixel Data (PS3.5 A.4),
 * read through rdx_rd before any codec sees the bytes, and the frame each
 * fragment belongs to.
 *
 * GDCM reads the same structure itself, but tolerates a truncated last
 * fragment ("use file at own risk") and asserts (aborting the process) on a
 * sequence delimiter with a non-zero length; checking here first turns both
 * into a clear error naming the fragment and its offset. The frame map then
 * gives the codec one codestream per frame: one fragment per frame, the
 * Basic Offset Table when present, or, with an empty table and more
 * fragments than frames, the start-of-codestream markers (A.4: each frame
 * starts in a new fragment).
 */
#include "dicom.h"
#include "imaging_limits.h"

#include <stdlib.h>
#include <string.h>

#define ITEM_GROUP     0xFFFEu
#define ITEM_ELEM      0xE000u
#define SEQ_DELIM_ELEM 0xE0DDu

void img_encap_free(struct img_encap *e)
{
    if (e == NULL) {
        return;
    }
    free(e->frag);
    memset(e, 0, sizeof *e);
}

rdx_status img_encap_parse(const uint8_t *p, size_t n, size_t value_off, struct img_encap *out,
                           rdx_error *err)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || value_off > n) {
        return rdx_error_set(err, RDX_ESHORT, "Pixel Data starts past the end of the bytes");
    }
    rdx_rd r;
    rdx_rd_init(&r, p, n);
    if (rdx_rd_skip(&r, value_off) != RDX_OK) {
        return rdx_error_set(err, RDX_ESHORT, "Pixel Data starts past the end of the bytes");
    }
    out->base = p;
    size_t cap = 0;
    rdx_status st = RDX_OK;
    /* Item 0 is the Basic Offset Table, then one item per fragment (PS3.5 A.4, Table A.4-1). */
    for (size_t item = 0;; item++) {
        size_t at = r.off;
        uint16_t g, e;
        uint32_t len;
        if (rdx_rd_remaining(&r) == 0 && item > 0) {
            /*
             * The file ends right after a whole fragment, without the Sequence
             * Delimitation Item: every fragment is complete, so accept it as
             * DCMTK and GDCM do.
             */
            out->end = r.off;
            break;
        }
        if (rdx_rd_u16le(&r, &g) != RDX_OK || rdx_rd_u16le(&r, &e) != RDX_OK ||
            rdx_rd_u32le(&r, &len) != RDX_OK) {
            st = rdx_error_set(err, RDX_ESHORT,
                               "truncated: Pixel Data item %zu at byte %zu has no complete "
                               "header (%zu bytes left)",
                               item, at, n - at);
            goto fail;
        }
        if (g == ITEM_GROUP && e == SEQ_DELIM_ELEM) {
            if (item == 0) {
                st = rdx_error_set(err, RDX_EPARSE,
                                   "encapsulated Pixel Data at byte %zu has no Basic Offset "
                                   "Table item (PS3.5 A.4)",
                                   at);
                goto fail;
            }
            if (len != 0) {
                st = rdx_error_set(err, RDX_EPARSE,
                                   "Sequence Delimitation Item at byte %zu has length %u, "
                                   "not 0 (PS3.5 7.5)",
                                   at, len);
                goto fail;
            }
            out->end = r.off;
            break;
        }
        if (g != ITEM_GROUP || e != ITEM_ELEM) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "Pixel Data item %zu at byte %zu is (%04X,%04X), not an item "
                               "(FFFE,E000)",
                               item, at, g, e);
            goto fail;
        }
        if (len == 0xFFFFFFFFu) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "Pixel Data item %zu at byte %zu has an undefined length; "
                               "fragments must have an explicit one (PS3.5 A.4)",
                               item, at);
            goto fail;
        }
        size_t value = r.off;
        if (rdx_rd_skip(&r, len) != RDX_OK) {
            if (item == 0) {
                st = rdx_error_set(err, RDX_ESHORT,
                                   "truncated: the Basic Offset Table at byte %zu declares %u "
                                   "bytes, only %zu remain in the file",
                                   at, len, n - value);
            } else {
                st = rdx_error_set(err, RDX_ESHORT,
                                   "truncated: Pixel Data fragment %zu at byte %zu declares %u "
                                   "bytes, only %zu remain in the file",
                                   item, at, len, n - value);
            }
            goto fail;
        }
        if (item == 0) {
            if (len % 4 != 0) {
                st = rdx_error_set(err, RDX_EPARSE,
                                   "Basic Offset Table at byte %zu is %u bytes long, not a "
                                   "multiple of 4 (PS3.5 A.4)",
                                   at, len);
                goto fail;
            }
            out->bot = p + value;
            out->nbot = len / 4;
            continue;
        }
        if (out->nfrag == RDX_IMG_MAX_FRAGMENTS) {
            st = rdx_error_set(err, RDX_ELIMIT, "more than %u Pixel Data fragments",
                               RDX_IMG_MAX_FRAGMENTS);
            goto fail;
        }
        if (out->nfrag == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            struct img_fragment *f = rdx_reallocarray(out->frag, ncap, sizeof *f);
            if (f == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory for %zu fragments", ncap);
                goto fail;
            }
            out->frag = f;
            cap = ncap;
        }
        if (out->nfrag == 0) {
            out->first_item = at;
        }
        out->frag[out->nfrag].item = at;
        out->frag[out->nfrag].off = value;
        out->frag[out->nfrag].len = len;
        out->nfrag++;
    }
    if (out->nfrag == 0) {
        st = rdx_error_set(err, RDX_EPARSE,
                           "encapsulated Pixel Data has no fragment after its Basic Offset "
                           "Table");
        goto fail;
    }
    return RDX_OK;
fail:
    img_encap_free(out);
    return st;
}

static uint32_t bot_entry(const struct img_encap *e, size_t k)
{
    const uint8_t *b = e->bot + 4 * k;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* True when fragment k starts a codestream: FF followed by the marker byte. */
static int starts_with(const struct img_encap *e, size_t k, uint8_t marker)
{
    const struct img_fragment *f = &e->frag[k];
    return f->len >= 2 && e->base[f->off] == 0xFF && e->base[f->off + 1] == marker;
}

/* True when fragment k ends with EOI/EOC (FFD9), allowing one pad byte (PS3.5 A.4). */
static int ends_with_eoi(const struct img_encap *e, size_t k)
{
    const struct img_fragment *f = &e->frag[k];
    size_t n = f->len;
    const uint8_t *p = e->base + f->off;
    if (n >= 1 && p[n - 1] == 0x00) {
        n--;
    }
    return n >= 2 && p[n - 2] == 0xFF && p[n - 1] == 0xD9;
}

rdx_status img_encap_frame(const struct img_encap *e, uint32_t frames, uint32_t frame,
                           uint8_t marker, size_t *first, size_t *count, rdx_error *err)
{
    if (frames == 0 || frame >= frames) {
        return rdx_error_set(err, RDX_ERANGE, "frame %u asked, the file has %u (0-based)", frame,
                             frames);
    }
    if (e->nfrag < frames) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%zu Pixel Data fragments for %u frames: each frame needs at least "
                             "one (PS3.5 A.4)",
                             e->nfrag, frames);
    }
    if (e->nbot > 0) {
        /* Offsets count from the first byte of the first fragment's item tag. */
        if (e->nbot != frames) {
            return rdx_error_set(err, RDX_EFORMAT,
                                 "the Basic Offset Table has %zu entries for %u frames", e->nbot,
                                 frames);
        }
        size_t k = 0, start = 0;
        for (uint32_t f = 0; f < frames && f <= frame + 1; f++) {
            uint32_t want = bot_entry(e, f);
            if (f == 0 && want != 0) {
                return rdx_error_set(err, RDX_EFORMAT,
                                     "the Basic Offset Table's first entry is %u, not 0", want);
            }
            size_t prev = k;
            while (k < e->nfrag && e->frag[k].item - e->first_item < want) {
                k++;
            }
            if (k == e->nfrag || e->frag[k].item - e->first_item != want || (f > 0 && k == prev)) {
                return rdx_error_set(err, RDX_EFORMAT,
                                     "Basic Offset Table entry %u (offset %u) does not point at "
                                     "a fragment after the previous frame's",
                                     f, want);
            }
            if (f == frame) {
                start = k;
            } else if (f == frame + 1) {
                /* The next frame starts here. */
                *first = start;
                *count = k - start;
                return RDX_OK;
            }
        }
        *first = start;
        *count = e->nfrag - start;
        return RDX_OK;
    }
    if (e->nfrag == frames) {
        *first = frame;
        *count = 1;
        return RDX_OK;
    }
    if (frames == 1) {
        *first = 0;
        *count = e->nfrag;
        return RDX_OK;
    }
    if (marker == 0) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%zu fragments for %u frames with an empty Basic Offset Table: "
                             "frames of this syntax cannot be told apart (PS3.5 A.4 wants one "
                             "fragment per frame)",
                             e->nfrag, frames);
    }
    /*
     * PS3.5 A.4: with an empty offset table, a frame starts in a new fragment;
     * find the fragments that open a codestream, and check that each frame's
     * last fragment closes one (EOI / EOC, FFD9) so a damaged marker is refused
     * rather than mis-split.
     */
    if (!starts_with(e, 0, marker)) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "the first fragment does not start a codestream (FF%02X)", marker);
    }
    uint32_t f = 0;
    for (size_t k = 0; k < e->nfrag; k++) {
        if (k > 0 && starts_with(e, k, marker)) {
            if (!ends_with_eoi(e, k - 1)) {
                return rdx_error_set(err, RDX_EFORMAT,
                                     "frame %u ends (fragment %zu) without EOI (FFD9)", f, k);
            }
            f++;
            if (f >= frames) {
                return rdx_error_set(err, RDX_EFORMAT,
                                     "fragment %zu starts a codestream beyond the %u frames of "
                                     "the header",
                                     k + 1, frames);
            }
            if (f == frame) {
                *first = k;
            } else if (f == frame + 1) {
                *count = k - *first;
            }
        } else if (k == 0 && frame == 0) {
            *first = 0;
        }
    }
    if (!ends_with_eoi(e, e->nfrag - 1)) {
        return rdx_error_set(err, RDX_EFORMAT, "frame %u ends (fragment %zu) without EOI (FFD9)", f,
                             e->nfrag);
    }
    if (f + 1 != frames) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "codestreams in the fragments: %u, frames in the header: %u", f + 1,
                             frames);
    }
    if (frame == frames - 1) {
        *count = e->nfrag - *first;
    }
    return RDX_OK;
}

rdx_status img_encap_join(const struct img_encap *e, size_t first, size_t count, rdx_buf *out,
                          rdx_error *err)
{
    for (size_t k = first; k < first + count; k++) {
        rdx_status st = rdx_buf_append(out, e->base + e->frag[k].off, e->frag[k].len);
        if (st != RDX_OK) {
            return rdx_error_set(err, st, "frame codestream over %zu bytes", out->max);
        }
    }
    if (out->len % 2 != 0) {
        /* PS3.5 A.4: an item has even length. */
        rdx_status st = rdx_buf_append_u8(out, 0);
        if (st != RDX_OK) {
            return rdx_error_set(err, st, "frame codestream over %zu bytes", out->max);
        }
    }
    return RDX_OK;
}
