/*
 * dicom.h - private C interface between the DCMTK shim and the rest of the
 * imaging engine: the character-set decoder the shim falls back on for the
 * sets Debian's DCMTK (built on glibc iconv) refuses, UTF-8 hygiene, and
 * the GDCM pixel decoder.
 * Not included from outside imaging/ (and the engine's own tests).
 */
#ifndef RDX_IMAGING_DICOM_H
#define RDX_IMAGING_DICOM_H

#include "rdx/common.h"
#include "rdx/imaging.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Decode in[0..n) from the DICOM Specific Character Set charset (the raw
 * (0008,0005) value, values separated by '\', e.g. "\ISO 2022 IR 87") to
 * UTF-8, appending to out. Implements PS3.5 6.1.2.5 code extensions for the
 * ISO 2022 terms (IR 6, 13, 14, 87, 159, 58, 149 and the 8-bit ISO 8859
 * parts) and the single-byte and multi-byte terms without extensions
 * (ISO_IR 100 ... 203, ISO_IR 13, 166, 192, GB18030, GBK). The initial
 * designations are restored after each delimiter in delims and after
 * CR, LF, FF and TAB (PS3.5 6.1.2.5.3). An empty or unknown charset is read as
 * ASCII with other bytes taken as ISO 8859-1, which is what unlabelled
 * files in the wild most often are. Undecodable bytes become U+FFFD.
 *
 * Returns RDX_OK, RDX_ELIMIT (out's cap) or RDX_ENOMEM; on failure out may
 * hold a partial value and the caller discards it.
 */
rdx_status rdx_img_charset_decode(const char *charset, const uint8_t *in, size_t n,
                                  const char *delims, rdx_buf *out);

/*
 * Append in[0..n) to out as valid UTF-8: well-formed sequences are copied,
 * every invalid byte becomes U+FFFD. RDX_ELIMIT or RDX_ENOMEM on failure.
 */
rdx_status rdx_img_utf8_sanitize(const uint8_t *in, size_t n, rdx_buf *out);

/* Nonzero when in[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates). */
int rdx_img_utf8_valid(const uint8_t *in, size_t n);

/* ---- Pixel data (preview.c, fragments.c, gdcm_shim.cpp, dcmtk_shim.cpp) ------------ */

/*
 * Where the header parse stopped: the offset of the Pixel Data value in the
 * bytes ds was opened from, and its declared length (0xFFFFFFFF for
 * encapsulated data). Returns 0 when unknown (no Pixel Data, or a deflated
 * data set, whose offsets are in the inflated stream).
 */
int img_dataset_pixel_value(const rdx_img_dataset *ds, uint64_t *offset, uint32_t *length);

/*
 * Walk every element of the DICOM stream p[0..n) (meta information, then the
 * data set in transfer syntax ts, into sequences and items) and check each
 * declared length against the bytes left in its container, so that a
 * decoder given the stream never allocates what a hostile length asks for.
 * Deflated and unknown syntaxes are not walked. RDX_ESHORT (a length past
 * the end, naming the element and byte), RDX_EPARSE (an item tag missing),
 * RDX_ELIMIT (nesting past RDX_IMG_MAX_SEQ_DEPTH).
 */
rdx_status img_stream_check(const uint8_t *p, size_t n, const char *ts, rdx_error *err);

/* One fragment of encapsulated Pixel Data: its item header and value in the stream. */
struct img_fragment {
    size_t item; /* offset of its (FFFE,E000) item tag */
    size_t off;  /* offset of its first value byte */
    uint32_t len;
};

/* The item structure of encapsulated Pixel Data (PS3.5 A.4), pointing into the stream. */
struct img_encap {
    const uint8_t *base;       /* the stream the offsets count in (not owned) */
    const uint8_t *bot;        /* Basic Offset Table entries, little-endian (not owned) */
    size_t nbot;               /* entries in it; 0 when empty */
    struct img_fragment *frag; /* malloc'd: the fragments after the offset table */
    size_t nfrag;
    size_t first_item; /* offset of the first fragment's item tag (offset table origin) */
    size_t end;        /* offset just past the Sequence Delimitation Item (or the last item) */
};

/*
 * Walk the items of encapsulated Pixel Data whose value starts at
 * p[value_off] (just after the (7FE0,0010) element header): the Basic Offset
 * Table item, the fragment items and the Sequence Delimitation Item, each
 * bounds-checked. A stream that ends right after a complete fragment is
 * accepted without the delimiter. Errors (messages name the item and its
 * byte offset, not the file): RDX_ESHORT (truncated), RDX_EPARSE (not an
 * item, undefined length, delimiter of non-zero length, no fragment),
 * RDX_ELIMIT (more than RDX_IMG_MAX_FRAGMENTS), RDX_ENOMEM. On success free
 * with img_encap_free; on failure nothing is held.
 */
rdx_status img_encap_parse(const uint8_t *p, size_t n, size_t value_off, struct img_encap *out,
                           rdx_error *err);
void img_encap_free(struct img_encap *e);

/*
 * The fragments [*first, *first + *count) holding frame `frame` of `frames`
 * (PS3.5 A.4): through the Basic Offset Table when it has entries, one
 * fragment per frame when the counts match, every fragment for a single
 * frame, else split where a fragment starts with FF marker (D8 for JPEG and
 * JPEG-LS, 4F for JPEG 2000), each frame ending with FFD9. marker 0 means
 * the syntax cannot be split that way (RLE). RDX_EFORMAT when the fragments
 * cannot be matched to the frames, RDX_ERANGE when frame >= frames.
 */
rdx_status img_encap_frame(const struct img_encap *e, uint32_t frames, uint32_t frame,
                           uint8_t marker, size_t *first, size_t *count, rdx_error *err);

/* Append the values of fragments [first, first + count) to out, padded to even length. */
rdx_status img_encap_join(const struct img_encap *e, size_t first, size_t count, rdx_buf *out,
                          rdx_error *err);

/*
 * One decoded frame: rows * columns * samples values, interleaved (planar
 * configuration 0), little-endian native integers of bits_allocated bits
 * (one-bit data packed from bit 0), colour as RGB.
 */
struct img_pixels {
    uint8_t *data; /* malloc'd; free() it */
    size_t len;    /* bytes of the frame */
    uint32_t rows, columns, samples;
    uint32_t frames; /* frames in the file */
    uint32_t frame;  /* the frame data holds (0-based) */
    uint32_t bits_allocated, bits_stored;
    int is_signed;
    char photometric[32]; /* after conversion: MONOCHROME1, MONOCHROME2 or RGB */
};

/*
 * Decode frame `frame` of the DICOM stream p[0..n) with GDCM. For
 * encapsulated syntaxes cs[0..cs_len) is that frame's codestream (the joined
 * fragments, see img_encap_join), which replaces the Pixel Data GDCM read;
 * for native data cs is NULL and the frame is cut from the decoded buffer.
 * Palette colour and YBR become RGB. Messages give the reason without the
 * file name or frame (the caller prefixes them), with GDCM's and the codec's
 * own words where they gave any. Errors: RDX_EPARSE (undecodable),
 * RDX_EFORMAT (a layout the engine does not handle), RDX_ELIMIT (more than
 * RDX_IMG_MAX_PIXEL_BYTES), RDX_ESHORT, RDX_ERANGE, RDX_ENOMEM. Every
 * exception is caught. Thread-safe: GDCM's messages are collected per thread.
 */
rdx_status img_gdcm_decode(const uint8_t *p, size_t n, uint32_t frame, const uint8_t *cs,
                           size_t cs_len, struct img_pixels *out, rdx_error *err);

/*
 * The same through DCMTK's codecs (RLE, JPEG baseline/extended/lossless;
 * not JPEG-LS, whose CharLS would clash with GDCM's, nor JPEG 2000), from
 * the whole stream. Used for RLE, whose 16-bit colour GDCM 3.0 decodes with
 * its byte segments out of order, and when GDCM fails on JPEG. Errors as
 * img_gdcm_decode.
 */
rdx_status img_dcmtk_decode(const uint8_t *p, size_t n, uint32_t frame, struct img_pixels *out,
                            rdx_error *err);

/*
 * The once-per-process set-up of each decoder (silenced logging, codec
 * registration), done by sandbox.c before it forks so that a child never
 * waits on a lock another thread held at the fork.
 */
void img_gdcm_init(void);
void img_dcmtk_init(void);

/* Which decoder img_decode_isolated runs. */
enum img_decoder { IMG_DEC_GDCM, IMG_DEC_DCMTK };

/*
 * Run img_gdcm_decode or img_dcmtk_decode (same arguments) in a forked
 * child process and take its result back through a pipe. Debian builds
 * GDCM with assertions on, and its codecs (and CharLS, OpenJPEG, libjpeg)
 * can abort, crash or loop on hostile data: in the child that costs the
 * child, and comes back as RDX_EPARSE naming the assertion or signal, or as
 * RDX_ETIMEOUT after RDX_IMG_DECODE_SECONDS. What the libraries print goes
 * into the reason, never to the caller's stderr. The child's answer is
 * checked like any input. In sanitizer builds a sanitizer report from the
 * child is printed and the caller aborts, so tests and fuzzing still see
 * memory errors. Errors also RDX_ENOMEM / RDX_EIO when fork or pipe fail.
 */
rdx_status img_decode_isolated(enum img_decoder which, const uint8_t *p, size_t n, uint32_t frame,
                               const uint8_t *cs, size_t cs_len, struct img_pixels *out,
                               rdx_error *err);

/*
 * rdx_img_frame_decode over a stream in memory; name labels the messages
 * (NULL: "<memory>"). What the fuzz target drives. Same errors.
 */
rdx_status img_frame_decode_mem(const uint8_t *p, size_t n, const char *name, uint32_t frame,
                                rdx_img_frame *out, rdx_error *err);

#ifdef __cplusplus
}
#endif

#endif /* RDX_IMAGING_DICOM_H */
