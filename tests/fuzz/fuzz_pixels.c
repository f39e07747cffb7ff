/*
 * libFuzzer target: decode pixels from a DICOM stream in memory the way
 * rdx img preview does (imaging/preview.c img_frame_decode_mem): the DCMTK
 * header parse, the encapsulated Pixel Data walk and frame-to-fragment map
 * of fragments.c (Basic Offset Table, one fragment per frame, the SOI/EOI
 * regrouping of JPEG-LS frames spread over fragments), then GDCM's codecs
 * (and DCMTK's for RLE and JPEG) on the frame's codestream. The first and
 * the last frame are decoded, so multi-frame maps are followed to their end.
 * Nothing may crash, abort, hang, leak or read out of bounds, and no C++
 * exception may cross into C, whatever the bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "rdx/common.h"
#include "rdx/imaging.h"

#include "../../imaging/dicom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_img_frame f;
    rdx_error err;
    if (img_frame_decode_mem(data, size, "fuzz", 0, &f, &err) == RDX_OK) {
        uint32_t last = f.frames > 1 ? f.frames - 1 : 0;
        rdx_img_frame_free(&f);
        if (last > 0 && img_frame_decode_mem(data, size, "fuzz", last, &f, &err) == RDX_OK) {
            rdx_img_frame_free(&f);
        }
    }
    return 0;
}
