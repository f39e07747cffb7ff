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

/* ---- Pixel data (gdcm_shim.cpp) ----------------------------------------------- */

/*
 * Every frame of a file, decoded: rows * columns * samples values per frame,
 * frame after frame, interleaved (planar configuration 0), little-endian
 * native integers of bits_allocated bits, colour as RGB.
 */
struct img_pixels {
    uint8_t *data; /* malloc'd; free() it */
    size_t len;    /* bytes of all frames */
    uint32_t rows, columns, frames, samples;
    uint32_t bits_allocated, bits_stored;
    int is_signed;
    char photometric[32]; /* after conversion: MONOCHROME1, MONOCHROME2 or RGB */
};

/*
 * Decode the pixel data of the file at path with GDCM (JPEG baseline,
 * extended and lossless, JPEG-LS, JPEG 2000, RLE, deflate, native).
 * Palette colour and YBR become RGB. Errors: RDX_EPARSE (undecodable),
 * RDX_EFORMAT (a layout the engine does not handle), RDX_ELIMIT (more than
 * RDX_IMG_MAX_PIXEL_BYTES), RDX_ESHORT, RDX_ENOMEM; err names the file.
 */
rdx_status img_gdcm_decode(const char *path, struct img_pixels *out, rdx_error *err);

/*
 * The same through DCMTK's codecs (RLE, JPEG baseline/extended/lossless;
 * not JPEG-LS, whose CharLS would clash with GDCM's, nor JPEG 2000). Used for RLE, whose 16-bit
 * colour GDCM 3.0 decodes with its byte segments out of order, and when GDCM fails. Loads the whole
 * file. Errors as img_gdcm_decode.
 */
rdx_status img_dcmtk_decode(const char *path, struct img_pixels *out, rdx_error *err);

#ifdef __cplusplus
}
#endif

#endif /* RDX_IMAGING_DICOM_H */
