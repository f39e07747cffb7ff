/*
 * stream_check.c - every declared length of a DICOM stream checked against
 * the bytes that are there, before a decoder reads it.
 *
 * GDCM's reader allocates what an element's length declares before it
 * reads the value, in the meta information as in the data set, so a few
 * bytes declaring 4 GiB ask for 4 GiB (found by fuzz_pixels). DCMTK's
 * header parse (which skips long values) does not see every element GDCM
 * reads, so the whole stream is walked here with rdx_rd: the File Meta
 * Information (explicit VR little endian, PS3.10 7.1), then the data set in
 * its transfer syntax (PS3.5 7.1), into sequences and items (PS3.5 7.5) of
 * defined or undefined length, down to RDX_IMG_MAX_SEQ_DEPTH.
 */
#include "dicom.h"
#include "imaging_limits.h"

#include <string.h>

struct walk {
    rdx_rd r;
    int explicit_vr;
    int big;
    int meta; /* walking group 0002: stop before the first element of another group */
    rdx_error *err;
};

static rdx_status u16(struct walk *w, uint16_t *v)
{
    return w->big ? rdx_rd_u16be(&w->r, v) : rdx_rd_u16le(&w->r, v);
}

static rdx_status u32(struct walk *w, uint32_t *v)
{
    return w->big ? rdx_rd_u32be(&w->r, v) : rdx_rd_u32le(&w->r, v);
}

/* VRs with a 2-byte reserved field and a 32-bit length (PS3.5 Table 7.1-1). */
static int long_vr(const uint8_t vr[2])
{
    static const char *const v[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                    "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (vr[0] == (uint8_t)v[i][0] && vr[1] == (uint8_t)v[i][1]) {
            return 1;
        }
    }
    return 0;
}

/* A VR of PS3.5 Table 6.2-1: anything else is read differently by each library. */
static int known_vr(const uint8_t vr[2])
{
    static const char *const v[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD",
                                    "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
                                    "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
                                    "UI", "UL", "UN", "UR", "US", "UT", "UV"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (vr[0] == (uint8_t)v[i][0] && vr[1] == (uint8_t)v[i][1]) {
            return 1;
        }
    }
    return 0;
}

static rdx_status elements(struct walk *w, size_t end, int depth, int until_item_delim);

static rdx_status short_at(struct walk *w, size_t at, const char *what)
{
    return rdx_error_set(w->err, RDX_ESHORT, "truncated: %s at byte %zu runs past the end", what,
                         at);
}

/* The items of a sequence (or of encapsulated Pixel Data when fragments is set). */
static rdx_status items(struct walk *w, size_t end, int defined, int depth, int fragments)
{
    if (depth > RDX_IMG_MAX_SEQ_DEPTH) {
        return rdx_error_set(w->err, RDX_ELIMIT, "sequences nested deeper than %d at byte %zu",
                             RDX_IMG_MAX_SEQ_DEPTH, w->r.off);
    }
    while (w->r.off < end) {
        size_t at = w->r.off;
        uint16_t g, e;
        uint32_t len;
        if (u16(w, &g) != RDX_OK || u16(w, &e) != RDX_OK || u32(w, &len) != RDX_OK) {
            return short_at(w, at, "an item header");
        }
        if (g == 0xFFFE && e == 0xE0DD) {
            if (defined) {
                continue; /* tolerated inside a defined-length sequence */
            }
            return RDX_OK;
        }
        if (g != 0xFFFE || e != 0xE000) {
            return rdx_error_set(w->err, RDX_EPARSE,
                                 "(%04X,%04X) at byte %zu where a sequence item (FFFE,E000) "
                                 "belongs",
                                 g, e, at);
        }
        if (len == 0xFFFFFFFFu) {
            if (fragments) {
                return rdx_error_set(w->err, RDX_EPARSE,
                                     "Pixel Data fragment at byte %zu of undefined length", at);
            }
            RDX_TRY(elements(w, end, depth + 1, 1));
            continue;
        }
        if (len > end - w->r.off) {
            return rdx_error_set(w->err, RDX_ESHORT,
                                 "truncated: item at byte %zu declares %u bytes, %zu remain", at,
                                 len, end - w->r.off);
        }
        size_t item_end = w->r.off + len;
        if (fragments) {
            w->r.off = item_end;
        } else {
            RDX_TRY(elements(w, item_end, depth + 1, 0));
            w->r.off = item_end;
        }
    }
    /* A stream may end inside a sequence of undefined length: GDCM and DCMTK accept it. */
    return RDX_OK;
}

/* Elements from the cursor to end (or to an Item Delimitation Item when until_item_delim). */
static rdx_status elements(struct walk *w, size_t end, int depth, int until_item_delim)
{
    while (w->r.off < end) {
        size_t at = w->r.off;
        uint16_t g, e;
        uint32_t len;
        if (w->meta && depth == 0 && end - at >= 2 &&
            (w->r.p[at] | w->r.p[at + 1] << 8) != 0x0002) {
            return RDX_OK;
        }
        if (u16(w, &g) != RDX_OK || u16(w, &e) != RDX_OK) {
            return short_at(w, at, "an element tag");
        }
        if (g == 0xFFFE) {
            /* Item and delimitation tags have no VR, even in explicit VR syntaxes (PS3.5 7.5). */
            if (u32(w, &len) != RDX_OK) {
                return short_at(w, at, "an item header");
            }
            if (e == 0xE00D && until_item_delim) {
                return RDX_OK;
            }
            if (len != 0xFFFFFFFFu && len > end - w->r.off) {
                return rdx_error_set(w->err, RDX_ESHORT,
                                     "truncated: (FFFE,%04X) at byte %zu declares %u bytes, %zu "
                                     "remain",
                                     e, at, len, end - w->r.off);
            }
            if (len != 0xFFFFFFFFu) {
                w->r.off += len;
            }
            continue;
        }
        int sq = 0;
        if (w->explicit_vr) {
            uint8_t vr[2];
            if (rdx_rd_bytes(&w->r, vr, 2) != RDX_OK) {
                return short_at(w, at, "an element header");
            }
            if (!known_vr(vr)) {
                return rdx_error_set(w->err, RDX_EPARSE,
                                     "element (%04X,%04X) at byte %zu has VR 0x%02X%02X, not a "
                                     "DICOM VR",
                                     g, e, at, vr[0], vr[1]);
            }
            if (long_vr(vr)) {
                uint16_t reserved;
                if (u16(w, &reserved) != RDX_OK || u32(w, &len) != RDX_OK) {
                    return short_at(w, at, "an element header");
                }
            } else {
                uint16_t l16;
                if (u16(w, &l16) != RDX_OK) {
                    return short_at(w, at, "an element header");
                }
                len = l16;
            }
            sq = vr[0] == 'S' && vr[1] == 'Q';
        } else if (u32(w, &len) != RDX_OK) {
            return short_at(w, at, "an element header");
        }
        if (len == 0xFFFFFFFFu) {
            /* Undefined length: a sequence, or encapsulated Pixel Data (PS3.5 A.4). */
            int pixels = g == 0x7FE0 && e == 0x0010;
            RDX_TRY(items(w, end, 0, depth, pixels));
            continue;
        }
        if (len > end - w->r.off) {
            return rdx_error_set(w->err, RDX_ESHORT,
                                 "truncated: element (%04X,%04X) at byte %zu declares %u bytes, "
                                 "only %zu remain",
                                 g, e, at, len, end - w->r.off);
        }
        size_t value_end = w->r.off + len;
        if (sq) {
            RDX_TRY(items(w, value_end, 1, depth, 0));
        }
        w->r.off = value_end;
    }
    return RDX_OK;
}

rdx_status img_stream_check(const uint8_t *p, size_t n, const char *ts, rdx_error *err)
{
    struct walk w = {.explicit_vr = 1, .big = 0, .meta = 0, .err = err};
    rdx_rd_init(&w.r, p, n);
    if (n >= 132 && memcmp(p + 128, "DICM", 4) == 0) {
        /* PS3.10 7.1: group 0002 follows the preamble, explicit VR little endian. */
        w.r.off = 132;
        w.meta = 1;
        RDX_TRY(elements(&w, n, 0, 0));
        w.meta = 0;
    }
    if (ts[0] == '\0' || strcmp(ts, "1.2.840.10008.1.2.1.99") == 0) {
        /* Unknown syntax: nothing to walk by; deflated: DCMTK inflated it under a cap. */
        return RDX_OK;
    }
    w.explicit_vr = strcmp(ts, "1.2.840.10008.1.2") != 0;
    w.big = strcmp(ts, "1.2.840.10008.1.2.2") == 0;
    return elements(&w, n, 0, 0);
}
