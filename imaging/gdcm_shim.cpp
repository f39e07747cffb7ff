/*
 * gdcm_shim.cpp - the C face over GDCM's pixel decoding: JPEG baseline,
 * extended and lossless, JPEG-LS, JPEG 2000, RLE and deflate, into one
 * native buffer per file with the photometric interpretation made usable
 * (palette colour through its lookup table and YBR to RGB, PS3.3 C.7.6.3.1.2,
 * planar configuration 1 interleaved). Like dcmtk_shim.cpp it exposes plain
 * C (imaging/dicom.h) and catches every exception at the boundary.
 */
#include "dicom.h"
#include "imaging_limits.h"

/* Debian installs GDCM under /usr/include/gdcm-3.0; its own includes are relative. */
#include <gdcm-3.0/gdcmImage.h>
#include <gdcm-3.0/gdcmImageApplyLookupTable.h>
#include <gdcm-3.0/gdcmImageChangePlanarConfiguration.h>
#include <gdcm-3.0/gdcmImageReader.h>
#include <gdcm-3.0/gdcmTrace.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace
{

std::once_flag gdcm_once;

/* GDCM prints warnings to stderr by default; a library must not print. */
void quiet_gdcm()
{
    std::call_once(gdcm_once, [] {
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(false);
        gdcm::Trace::SetError(false);
    });
}

uint8_t clamp8(double v)
{
    return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
}

/* PS3.3 C.7.6.3.1.2: YBR_FULL to RGB, for n interleaved 8-bit pixels in place. */
void ybr_to_rgb(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++, p += 3) {
        double y = p[0], cb = p[1] - 128.0, cr = p[2] - 128.0;
        p[0] = clamp8(y + 1.402 * cr);
        p[1] = clamp8(y - 0.344136 * cb - 0.714136 * cr);
        p[2] = clamp8(y + 1.772 * cb);
    }
}

rdx_status decode(const char *path, struct img_pixels *out, rdx_error *err)
{
    gdcm::ImageReader reader;
    reader.SetFileName(path);
    if (!reader.Read()) {
        /* The caller, which has the header, says which transfer syntax it was. */
        return rdx_error_set(err, RDX_EFORMAT, "%s: GDCM cannot read this image", path);
    }
    /*
     * The filters own their output: keep them alive and point at the last
     * one's image rather than copying gdcm::Image values around.
     */
    const gdcm::Image *cur = &reader.GetImage();
    gdcm::ImageApplyLookupTable lut;
    gdcm::ImageChangePlanarConfiguration pc;
    gdcm::PhotometricInterpretation pi = cur->GetPhotometricInterpretation();
    bool rgb_already = false, ybr = false;
    if (pi == gdcm::PhotometricInterpretation::PALETTE_COLOR) {
        lut.SetInput(*cur);
        if (!lut.Apply()) {
            return rdx_error_set(err, RDX_EPARSE, "%s: palette lookup table cannot be applied",
                                 path);
        }
        cur = &lut.GetOutput();
    } else if (pi == gdcm::PhotometricInterpretation::YBR_RCT ||
               pi == gdcm::PhotometricInterpretation::YBR_ICT) {
        /* PS3.5 8.2.4: the JPEG 2000 decoder has already undone the component transform. */
        rgb_already = true;
    } else if (pi == gdcm::PhotometricInterpretation::YBR_FULL ||
               pi == gdcm::PhotometricInterpretation::YBR_FULL_422) {
        /* Converted after decoding (below): GDCM's filter works on native data only. */
        ybr = true;
    }
    if (cur->GetPixelFormat().GetSamplesPerPixel() == 3 && cur->GetPlanarConfiguration() == 1) {
        pc.SetInput(*cur);
        pc.SetPlanarConfiguration(0);
        if (!pc.Change()) {
            return rdx_error_set(err, RDX_EPARSE, "%s: planar configuration cannot be changed",
                                 path);
        }
        cur = &pc.GetOutput();
    }
    const gdcm::Image &img = *cur;
    const gdcm::PixelFormat &pf = img.GetPixelFormat();
    const unsigned int *dims = img.GetDimensions();
    out->columns = dims[0];
    out->rows = dims[1];
    out->frames = img.GetNumberOfDimensions() >= 3 ? dims[2] : 1;
    out->samples = pf.GetSamplesPerPixel();
    out->bits_allocated = pf.GetBitsAllocated();
    out->bits_stored = pf.GetBitsStored();
    out->is_signed = pf.GetPixelRepresentation() != 0;
    const char *pis =
        gdcm::PhotometricInterpretation::GetPIString(img.GetPhotometricInterpretation().GetType());
    std::snprintf(out->photometric, sizeof out->photometric, "%s",
                  rgb_already || ybr ? "RGB"
                  : pis != nullptr   ? pis
                                     : "");
    /* GDCM keeps the DICOM padding ("MONOCHROME2 "). */
    size_t pl = std::strlen(out->photometric);
    while (pl > 0 && out->photometric[pl - 1] == ' ') {
        out->photometric[--pl] = '\0';
    }
    if (out->rows == 0 || out->columns == 0 || out->frames == 0 ||
        (out->samples != 1 && out->samples != 3) ||
        (out->bits_allocated != 1 && out->bits_allocated != 8 && out->bits_allocated != 16 &&
         out->bits_allocated != 32)) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%s: unsupported pixel layout (%u samples, %u bits allocated)", path,
                             out->samples, out->bits_allocated);
    }
    unsigned long long len = img.GetBufferLength();
    unsigned long long values =
        static_cast<unsigned long long>(out->rows) * out->columns * out->frames * out->samples;
    /* Bits Allocated 1 (segmentations): frames are packed bit after bit (PS3.5 8.1.1). */
    unsigned long long want =
        out->bits_allocated == 1 ? (values + 7) / 8 : values * (out->bits_allocated / 8);
    if (len > RDX_IMG_MAX_PIXEL_BYTES || want > RDX_IMG_MAX_PIXEL_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: %llu bytes of pixels, over the %u-byte cap",
                             path, len, RDX_IMG_MAX_PIXEL_BYTES);
    }
    if (len < want) {
        return rdx_error_set(err, RDX_ESHORT, "%s: GDCM decoded %llu bytes, the header asks %llu",
                             path, len, want);
    }
    uint8_t *buf = static_cast<uint8_t *>(std::malloc(len > 0 ? len : 1));
    if (buf == nullptr) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory for %llu bytes of pixels", path,
                             len);
    }
    if (!img.GetBuffer(reinterpret_cast<char *>(buf))) {
        std::free(buf);
        return rdx_error_set(err, RDX_EPARSE, "%s: GDCM cannot decode the pixel data (%s)", path,
                             gdcm::TransferSyntax::GetTSString(img.GetTransferSyntax()));
    }
    if (ybr) {
        if (out->samples != 3 || out->bits_allocated != 8) {
            std::free(buf);
            return rdx_error_set(err, RDX_EFORMAT, "%s: YBR with %u bits per sample", path,
                                 out->bits_allocated);
        }
        ybr_to_rgb(buf, static_cast<size_t>(want / 3));
    }
    out->data = buf;
    out->len = static_cast<size_t>(want);
    return RDX_OK;
}

} // namespace

extern "C" rdx_status img_gdcm_decode(const char *path, struct img_pixels *out, rdx_error *err)
{
    if (path == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "img_gdcm_decode: NULL argument");
    }
    std::memset(out, 0, sizeof *out);
    try {
        quiet_gdcm();
        return decode(path, out, err);
    } catch (const std::bad_alloc &) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
    } catch (const std::exception &ex) {
        return rdx_error_set(err, RDX_EPARSE, "%s: GDCM: %s", path, ex.what());
    } catch (...) {
        return rdx_error_set(err, RDX_EPARSE, "%s: GDCM raised an exception", path);
    }
}
