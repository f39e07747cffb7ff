/*
 * preview.c - decoded frames and windowed 8-bit PNG thumbnails.
 *
 * Grey images go through the Modality LUT (Rescale Slope and Intercept,
 * PS3.3 C.11.1.1.2) and then the linear VOI window of PS3.3 C.11.2.1.2.1,
 * using the stored Window Center and Width when present (else the frame's
 * minimum and maximum); MONOCHROME1 is inverted so that the PNG shows what a
 * viewer shows. Colour images are RGB already (gdcm_shim.cpp converts
 * palette and YBR). Thumbnails shrink by an integer factor, averaging each
 * block, and are written as PNG (RFC 2083) with zlib.
 */
#include "rdx/imaging.h"

#include "dicom.h"
#include "imaging_limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define T(g, e) RDX_IMG_TAG(0x##g, 0x##e)

void rdx_img_frame_free(rdx_img_frame *f)
{
    if (f == NULL) {
        return;
    }
    free(f->values);
    f->values = NULL;
}

/*
 * Stored value number i (counted from the first frame) masked to Bits
 * Stored and sign-extended (PS3.5 8.1.1). One-bit data is packed with the
 * first pixel in the lowest bit, frames following each other without padding.
 */
static int32_t value_at(const struct img_pixels *px, size_t i)
{
    uint32_t raw;
    switch (px->bits_allocated) {
    case 1:
        return (px->data[i / 8] >> (i % 8)) & 1;
    case 8:
        raw = px->data[i];
        break;
    case 16: {
        uint16_t v;
        memcpy(&v, px->data + 2 * i, 2);
        raw = v;
        break;
    }
    default: {
        uint32_t v;
        memcpy(&v, px->data + 4 * i, 4);
        raw = v;
        break;
    }
    }
    uint32_t bits = px->bits_stored > 0 && px->bits_stored < 32 ? px->bits_stored : 32;
    if (bits < 32) {
        raw &= (1u << bits) - 1u;
        if (px->is_signed && (raw & (1u << (bits - 1))) != 0) {
            raw |= ~((1u << bits) - 1u);
        }
    }
    return px->is_signed ? (int32_t)raw : (int32_t)(raw > INT32_MAX ? INT32_MAX : raw);
}

/* How a transfer syntax's pixels are decoded. */
enum ts_kind {
    TS_NATIVE,  /* uncompressed or deflated (PS3.5 A.1-A.3, A.5): GDCM */
    TS_RLE,     /* PS3.5 A.4.2: DCMTK, then GDCM */
    TS_JPEG,    /* baseline, extended, lossless (A.4.1): GDCM, then DCMTK */
    TS_JPEGLS,  /* A.4.3: GDCM */
    TS_J2K,     /* A.4.4: GDCM */
    TS_NO_CODEC /* encapsulated, but no decoder here (HTJ2K, MPEG, deflated frames...) */
};

static enum ts_kind kind_of(const char *ts)
{
    static const struct {
        const char *uid;
        enum ts_kind kind;
    } table[] = {
        {"1.2.840.10008.1.2", TS_NATIVE},      {"1.2.840.10008.1.2.1", TS_NATIVE},
        {"1.2.840.10008.1.2.2", TS_NATIVE},    {"1.2.840.10008.1.2.1.99", TS_NATIVE},
        {"1.2.840.10008.1.2.5", TS_RLE},       {"1.2.840.10008.1.2.4.50", TS_JPEG},
        {"1.2.840.10008.1.2.4.51", TS_JPEG},   {"1.2.840.10008.1.2.4.57", TS_JPEG},
        {"1.2.840.10008.1.2.4.70", TS_JPEG},   {"1.2.840.10008.1.2.4.80", TS_JPEGLS},
        {"1.2.840.10008.1.2.4.81", TS_JPEGLS}, {"1.2.840.10008.1.2.4.90", TS_J2K},
        {"1.2.840.10008.1.2.4.91", TS_J2K},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(ts, table[i].uid) == 0) {
            return table[i].kind;
        }
    }
    /* An empty syntax (no meta information) was detected as one of the native three. */
    return ts[0] == '\0' ? TS_NATIVE : TS_NO_CODEC;
}

/* The first byte after FF that opens each frame's codestream, for splitting fragments. */
static uint8_t frame_marker(enum ts_kind k)
{
    switch (k) {
    case TS_JPEG:
    case TS_JPEGLS:
        return 0xD8; /* SOI */
    case TS_J2K:
        return 0x4F; /* SOC */
    default:
        return 0;
    }
}

/* A syntax's name; DCMTK 3.6.7 predates the last few, named here from PS3.6 Table A-1. */
static const char *ts_name(const char *ts)
{
    static const struct {
        const char *uid, *name;
    } newer[] = {
        {"1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)"},
        {"1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)"},
        {"1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000"},
        {"1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression"},
    };
    for (size_t i = 0; i < sizeof newer / sizeof newer[0]; i++) {
        if (strcmp(ts, newer[i].uid) == 0) {
            return newer[i].name;
        }
    }
    return ts[0] == '\0' ? "syntax detected from the bytes" : rdx_img_transfer_syntax_name(ts);
}

/* Number of Frames (0028,0008), 1 when absent; 0 when it is not a positive integer. */
static uint32_t header_frames(const rdx_img_dataset *ds)
{
    int64_t v = 1;
    rdx_error e;
    if (rdx_img_item_get_i64(ds, NULL, T(0028, 0008), 0, &v, &e) != RDX_OK) {
        return e.code == RDX_ENOTFOUND ? 1 : 0;
    }
    return v >= 1 && v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* Run one decoder on its stream, keeping its message for the combined error. */
static rdx_status run(int use_dcmtk, const rdx_buf *stream, uint32_t frame, const rdx_buf *cs,
                      struct img_pixels *px, rdx_error *e)
{
    rdx_error_clear(e);
    return img_decode_isolated(use_dcmtk ? IMG_DEC_DCMTK : IMG_DEC_GDCM, stream->data, stream->len,
                               frame, cs->data, cs->len, px, e);
}

/* Append an item header (PS3.5 7.5: tag, 32-bit length, little-endian). */
static rdx_status put_item(rdx_buf *b, uint16_t elem, uint32_t len)
{
    uint8_t h[8] = {0xFE,
                    0xFF,
                    (uint8_t)elem,
                    (uint8_t)(elem >> 8),
                    (uint8_t)len,
                    (uint8_t)(len >> 8),
                    (uint8_t)(len >> 16),
                    (uint8_t)(len >> 24)};
    return rdx_buf_append(b, h, sizeof h);
}

/*
 * The bytes each decoder is given: never more than the header parse and
 * fragments.c have checked. Everything after Pixel Data is dropped (GDCM and
 * DCMTK read every element and allocate what a length declares, so junk
 * after the pixels could ask for gigabytes). GDCM gets a one-frame stream:
 * the header, an empty offset table and the frame's codestream as the only
 * fragment, so it never parses the other frames; DCMTK, which decodes every
 * frame, gets the checked items as they are.
 */
static rdx_status decoder_streams(const uint8_t *p, size_t n, int encap, size_t value_off,
                                  uint32_t value_len, const struct img_encap *enc,
                                  const rdx_buf *cs, rdx_buf *for_gdcm, rdx_buf *for_dcmtk,
                                  rdx_error *err)
{
    size_t end = n;
    if (encap) {
        end = enc->end;
    } else if (value_len != 0xFFFFFFFFu && value_off + value_len <= n) {
        end = value_off + value_len;
    }
    rdx_status st;
    if ((st = rdx_buf_append(for_dcmtk, p, end)) != RDX_OK) {
        return rdx_error_set(err, st, "out of memory for the decoder's copy");
    }
    if (!encap) {
        if ((st = rdx_buf_append(for_gdcm, p, end)) != RDX_OK) {
            return rdx_error_set(err, st, "out of memory for the decoder's copy");
        }
        return RDX_OK;
    }
    if ((st = rdx_buf_append(for_gdcm, p, value_off)) != RDX_OK ||
        (st = put_item(for_gdcm, 0xE000, 0)) != RDX_OK ||
        (st = put_item(for_gdcm, 0xE000, (uint32_t)cs->len)) != RDX_OK ||
        (st = rdx_buf_append(for_gdcm, cs->data, cs->len)) != RDX_OK ||
        (st = put_item(for_gdcm, 0xE0DD, 0)) != RDX_OK) {
        return rdx_error_set(err, st, "out of memory for the decoder's copy");
    }
    return RDX_OK;
}

/* A decoder's failure that another decoder might not share (not a cap or resource). */
static int worth_retry(rdx_status st)
{
    return st == RDX_EPARSE || st == RDX_EFORMAT || st == RDX_ESHORT;
}

rdx_status img_frame_decode_mem(const uint8_t *p, size_t n, const char *name, uint32_t frame,
                                rdx_img_frame *out, rdx_error *err)
{
    if (out == NULL || (p == NULL && n > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "img_frame_decode_mem: NULL argument");
    }
    memset(out, 0, sizeof *out);
    const char *label = name != NULL ? name : "<memory>";
    /* The header first (DCMTK): is there anything to decode, in what syntax, where? */
    rdx_img_dataset *ds = NULL;
    RDX_TRY(rdx_img_dataset_open_mem(p, n, label, &ds, err));
    char ts[80];
    snprintf(ts, sizeof ts, "%s", rdx_img_dataset_transfer_syntax(ds));
    int has_pixels = rdx_img_dataset_has_pixel_data(ds);
    uint32_t frames = header_frames(ds);
    uint64_t value_off = 0;
    uint32_t value_len = 0;
    int located = img_dataset_pixel_value(ds, &value_off, &value_len);
    rdx_img_dataset_free(ds);
    if (!has_pixels) {
        return rdx_error_set(err, RDX_ENOTFOUND, "%s: no Pixel Data (7FE0,0010) to decode", label);
    }
    if (frames == 0) {
        return rdx_error_set(err, RDX_ERANGE,
                             "%s: Number of Frames (0028,0008) is not a positive integer", label);
    }
    if (frames > RDX_IMG_MAX_FRAMES) {
        return rdx_error_set(err, RDX_ELIMIT,
                             "%s: Number of Frames (0028,0008) is %u, over the %u-frame cap", label,
                             frames, RDX_IMG_MAX_FRAMES);
    }
    if (frame >= frames) {
        return rdx_error_set(err, RDX_ERANGE, "%s: frame %u asked, the file has %u (0-based)",
                             label, frame, frames);
    }
    enum ts_kind kind = kind_of(ts);
    struct img_pixels px;
    memset(&px, 0, sizeof px);
    struct img_encap enc;
    memset(&enc, 0, sizeof enc);
    rdx_buf cs, sg, sd;
    rdx_buf_init(&cs, RDX_IMG_MAX_PIXEL_BYTES);
    rdx_buf_init(&sg, (size_t)RDX_IMG_MAX_PIXEL_BYTES + 65536);
    rdx_buf_init(&sd, (size_t)RDX_IMG_MAX_PIXEL_BYTES + 65536);
    rdx_status st = RDX_OK;
    if (kind == TS_NO_CODEC) {
        st = rdx_error_set(err, RDX_EFORMAT,
                           "no decoder for this transfer syntax (neither GDCM 3.0 nor DCMTK "
                           "3.6.7 has one)");
        goto out;
    }
    if (kind != TS_NATIVE) {
        /* Encapsulated (PS3.5 A.4): check the fragments, then cut out this frame's codestream. */
        if (!located || value_len != 0xFFFFFFFFu) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "Pixel Data of a compressed syntax must be encapsulated "
                               "(undefined length, PS3.5 A.4)");
            goto out;
        }
        size_t first = 0, count = 0;
        if ((st = img_encap_parse(p, n, (size_t)value_off, &enc, err)) != RDX_OK ||
            (st = img_encap_frame(&enc, frames, frame, frame_marker(kind), &first, &count, err)) !=
                RDX_OK ||
            (st = img_encap_join(&enc, first, count, &cs, err)) != RDX_OK) {
            goto out;
        }
    }
    if ((st = img_stream_check(p, n, ts, err)) != RDX_OK ||
        (st = decoder_streams(p, n, kind != TS_NATIVE, (size_t)value_off,
                              located ? value_len : 0xFFFFFFFFu, &enc, &cs, &sg, &sd, err)) !=
            RDX_OK) {
        goto out;
    }
    /*
     * GDCM first, DCMTK when GDCM fails on JPEG; RLE the other way round
     * (GDCM 3.0 mis-orders the byte segments of 16-bit colour RLE). DCMTK has
     * no JPEG-LS (its CharLS would clash with GDCM's) nor JPEG 2000 decoder.
     */
    int second = kind == TS_RLE || kind == TS_JPEG;
    int dcmtk_first = kind == TS_RLE;
    rdx_error e1, e2;
    st = run(dcmtk_first, dcmtk_first ? &sd : &sg, frame, &cs, &px, &e1);
    if (st != RDX_OK && second && worth_retry(st)) {
        rdx_status st2 = run(!dcmtk_first, dcmtk_first ? &sg : &sd, frame, &cs, &px, &e2);
        if (st2 == RDX_OK) {
            st = RDX_OK;
        } else {
            /* Both reasons: the first decoder's status, as it is the one meant for the syntax. */
            rdx_error_set(err, st, "cannot decode: %s; %s", e1.msg, e2.msg);
        }
    } else if (st != RDX_OK) {
        rdx_error_set(err, st, "cannot decode: %s", e1.msg);
    }
out:
    if (st != RDX_OK) {
        rdx_error_prefix(err, "%s: frame %u of %u (%s%s%s): ", label, frame, frames, ts_name(ts),
                         ts[0] != '\0' ? ", " : "", ts);
        free(px.data);
        img_encap_free(&enc);
        rdx_buf_free(&cs);
        rdx_buf_free(&sg);
        rdx_buf_free(&sd);
        return st;
    }
    img_encap_free(&enc);
    rdx_buf_free(&cs);
    rdx_buf_free(&sg);
    rdx_buf_free(&sd);
    size_t nv = (size_t)px.rows * px.columns * px.samples;
    out->values = rdx_mallocarray(nv, sizeof *out->values);
    if (out->values == NULL) {
        free(px.data);
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", label);
    }
    for (size_t i = 0; i < nv; i++) {
        out->values[i] = value_at(&px, i);
    }
    out->rows = px.rows;
    out->columns = px.columns;
    out->samples = px.samples;
    out->frames = frames;
    out->bits_stored = px.bits_stored;
    out->is_signed = px.is_signed;
    memcpy(out->photometric, px.photometric, sizeof out->photometric);
    free(px.data);
    return RDX_OK;
}

rdx_status rdx_img_frame_decode(const char *path, uint32_t frame, rdx_img_frame *out,
                                rdx_error *err)
{
    if (path == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_frame_decode: NULL argument");
    }
    memset(out, 0, sizeof *out);
    /* One read: the header and the pixels are taken from the same bytes. */
    rdx_buf file;
    rdx_buf_init(&file, RDX_IMG_MAX_PIXEL_BYTES);
    RDX_TRY(rdx_file_read(path, &file, err));
    rdx_status st = img_frame_decode_mem(file.data, file.len, path, frame, out, err);
    rdx_buf_free(&file);
    return st;
}

/* ---- PNG ------------------------------------------------------------------ */

static rdx_status put_be32(rdx_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return rdx_buf_append(b, x, 4);
}

/* One PNG chunk: length, type, data, CRC over type and data (RFC 2083 3.2). */
static rdx_status chunk(rdx_buf *b, const char type[4], const uint8_t *data, size_t n)
{
    if (n > 0x7FFFFFFFu) {
        return RDX_ELIMIT;
    }
    RDX_TRY(put_be32(b, (uint32_t)n));
    RDX_TRY(rdx_buf_append(b, type, 4));
    if (n > 0) {
        RDX_TRY(rdx_buf_append(b, data, n));
    }
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (n > 0) {
        crc = crc32(crc, data, (uInt)n);
    }
    return put_be32(b, (uint32_t)crc);
}

rdx_status rdx_img_png_encode(const uint8_t *pix, uint32_t width, uint32_t height,
                              uint32_t channels, rdx_buf *out, rdx_error *err)
{
    if (pix == NULL || out == NULL || width == 0 || height == 0 ||
        (channels != 1 && channels != 3)) {
        return rdx_error_set(err, RDX_EINVAL, "PNG: bad image (%ux%u, %u channels)", width, height,
                             channels);
    }
    size_t row = (size_t)width * channels;
    size_t raw_len;
    if (!rdx_mul_ok(row + 1, height, &raw_len)) {
        return rdx_error_set(err, RDX_ELIMIT, "PNG: image too large");
    }
    uint8_t *raw = malloc(raw_len);
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen);
    rdx_status st = RDX_OK;
    if (raw == NULL || z == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "PNG: out of memory");
        goto out;
    }
    for (uint32_t y = 0; y < height; y++) {
        raw[y * (row + 1)] = 0; /* filter type None */
        memcpy(raw + y * (row + 1) + 1, pix + y * row, row);
    }
    if (compress2(z, &zlen, raw, (uLong)raw_len, 6) != Z_OK) {
        st = rdx_error_set(err, RDX_EINTERNAL, "PNG: zlib failed");
        goto out;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    uint8_t ihdr[13];
    ihdr[0] = (uint8_t)(width >> 24);
    ihdr[1] = (uint8_t)(width >> 16);
    ihdr[2] = (uint8_t)(width >> 8);
    ihdr[3] = (uint8_t)width;
    ihdr[4] = (uint8_t)(height >> 24);
    ihdr[5] = (uint8_t)(height >> 16);
    ihdr[6] = (uint8_t)(height >> 8);
    ihdr[7] = (uint8_t)height;
    ihdr[8] = 8;                        /* bit depth */
    ihdr[9] = channels == 3 ? 2 : 0;    /* colour type: truecolour or greyscale */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    if ((st = rdx_buf_append(out, sig, sizeof sig)) != RDX_OK ||
        (st = chunk(out, "IHDR", ihdr, sizeof ihdr)) != RDX_OK ||
        (st = chunk(out, "IDAT", z, zlen)) != RDX_OK ||
        (st = chunk(out, "IEND", NULL, 0)) != RDX_OK) {
        st = rdx_error_set(err, st, "PNG: %s", rdx_strerror(st));
    }
out:
    free(raw);
    free(z);
    return st;
}

/* ---- Rendering ------------------------------------------------------------ */

/* First value of a DS/FL/FD attribute, or 0 when absent (the caller checks *ok). */
static double header_double(const rdx_img_dataset *ds, uint32_t tag, int *ok)
{
    double v = 0;
    *ok =
        ds != NULL && rdx_img_item_get_double(ds, NULL, tag, 0, &v, NULL) == RDX_OK && isfinite(v);
    return v;
}

/* PS3.3 C.11.2.1.2.1: the LINEAR VOI function onto 0..255. */
static uint8_t window_linear(double x, double c, double w)
{
    double lo = c - 0.5 - (w - 1.0) / 2.0, hi = c - 0.5 + (w - 1.0) / 2.0;
    if (x <= lo) {
        return 0;
    }
    if (x > hi) {
        return 255;
    }
    double y = ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0;
    return (uint8_t)(y < 0 ? 0 : y > 255 ? 255 : y + 0.5);
}

rdx_status rdx_img_preview_png(const char *path, const rdx_img_preview_opts *opts,
                               const char *out_png, rdx_error *err)
{
    if (path == NULL || out_png == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_preview_png: NULL argument");
    }
    rdx_img_preview_opts o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    if (o.max_side > RDX_IMG_MAX_PREVIEW_SIDE) {
        return rdx_error_set(err, RDX_EINVAL, "preview side %u is over the %u-pixel cap",
                             o.max_side, RDX_IMG_MAX_PREVIEW_SIDE);
    }
    if (o.use_window && !(o.width >= 1.0)) {
        return rdx_error_set(err, RDX_EINVAL,
                             "window width %g: must be at least 1 (PS3.3 C.11.2.1.2)", o.width);
    }
    /* Rescale and window from the header (DCMTK), pixels from GDCM. */
    rdx_img_dataset *ds = NULL;
    RDX_TRY(rdx_img_dataset_open_file(path, &ds, err));
    int has_c, has_w, has_s, has_i;
    double wc = header_double(ds, T(0028, 1050), &has_c);
    double ww = header_double(ds, T(0028, 1051), &has_w);
    double slope = header_double(ds, T(0028, 1053), &has_s);
    double icpt = header_double(ds, T(0028, 1052), &has_i);
    rdx_img_dataset_free(ds);
    if (!has_s || slope == 0.0) {
        slope = 1.0;
    }
    if (!has_i) {
        icpt = 0.0;
    }
    rdx_img_frame fr;
    RDX_TRY(rdx_img_frame_decode(path, o.frame, &fr, err));
    size_t n = (size_t)fr.rows * fr.columns;
    uint8_t *full = malloc(n * fr.samples);
    uint8_t *thumb = NULL;
    rdx_buf png;
    rdx_buf_init(&png, 512u * 1024u * 1024u);
    rdx_status st = RDX_OK;
    if (full == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fr.samples == 1) {
        double c, w;
        if (o.use_window) {
            c = o.center;
            w = o.width;
        } else if (has_c && has_w && ww >= 1.0) {
            c = wc;
            w = ww;
        } else {
            /* No usable stored window: stretch the frame's own range. */
            double lo = INFINITY, hi = -INFINITY;
            for (size_t i = 0; i < n; i++) {
                double x = fr.values[i] * slope + icpt;
                lo = x < lo ? x : lo;
                hi = x > hi ? x : hi;
            }
            w = hi - lo + 1.0;
            c = lo + (hi - lo + 1.0) / 2.0;
        }
        int invert = strcmp(fr.photometric, "MONOCHROME1") == 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t y = window_linear(fr.values[i] * slope + icpt, c, w);
            full[i] = invert ? (uint8_t)(255 - y) : y;
        }
    } else {
        int shift = fr.bits_stored > 8 ? (int)fr.bits_stored - 8 : 0;
        for (size_t i = 0; i < n * 3; i++) {
            int32_t v = fr.values[i] >> shift;
            full[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    uint32_t f = 1, side = fr.rows > fr.columns ? fr.rows : fr.columns;
    if (o.max_side > 0 && side > o.max_side) {
        f = (side + o.max_side - 1) / o.max_side;
    }
    uint32_t tw = (fr.columns + f - 1) / f, th = (fr.rows + f - 1) / f;
    const uint8_t *img = full;
    if (f > 1) {
        thumb = malloc((size_t)tw * th * fr.samples);
        if (thumb == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        for (uint32_t ty = 0; ty < th; ty++) {
            for (uint32_t tx = 0; tx < tw; tx++) {
                for (uint32_t s = 0; s < fr.samples; s++) {
                    uint32_t sum = 0, cnt = 0;
                    for (uint32_t y = ty * f; y < (ty + 1) * f && y < fr.rows; y++) {
                        for (uint32_t x = tx * f; x < (tx + 1) * f && x < fr.columns; x++) {
                            sum += full[((size_t)y * fr.columns + x) * fr.samples + s];
                            cnt++;
                        }
                    }
                    thumb[((size_t)ty * tw + tx) * fr.samples + s] =
                        (uint8_t)((sum + cnt / 2) / cnt);
                }
            }
        }
        img = thumb;
    }
    st = rdx_img_png_encode(img, tw, th, fr.samples, &png, err);
    if (st == RDX_OK) {
        st = rdx_file_write_atomic(out_png, png.data, png.len, err);
    }
out:
    free(full);
    free(thumb);
    rdx_buf_free(&png);
    rdx_img_frame_free(&fr);
    return st;
}
