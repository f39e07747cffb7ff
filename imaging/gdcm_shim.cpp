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
#include <gdcm-3.0/gdcmSequenceOfFragments.h>
#include <gdcm-3.0/gdcmTrace.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

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

bool starts_with_soi(const gdcm::Fragment &f)
{
    const gdcm::ByteValue *bv = f.GetByteValue();
    return bv != nullptr && static_cast<uint32_t>(bv->GetLength()) >= 2 &&
           static_cast<uint8_t>(bv->GetPointer()[0]) == 0xFF &&
           static_cast<uint8_t>(bv->GetPointer()[1]) == 0xD8;
}

/* True when the codestream bytes end with EOI (FFD9), allowing one trailing pad byte. */
bool ends_with_eoi(const std::vector<char> &cs)
{
    size_t n = cs.size();
    if (n >= 1 && cs[n - 1] == '\0') {
        n--; /* PS3.5 A.4: a fragment is padded to even length. */
    }
    return n >= 2 && static_cast<uint8_t>(cs[n - 2]) == 0xFF &&
           static_cast<uint8_t>(cs[n - 1]) == 0xD9;
}

/*
 * PS3.5 A.4: when the Basic Offset Table is empty and there are more fragments
 * than frames, a frame may span several fragments; each frame starts in a new
 * fragment with SOI (FFD8) and ends with EOI (FFD9). GDCM 3.0's JPEG-LS codec
 * takes one fragment per frame, so regroup: concatenate each frame's fragments
 * into one. Returns RDX_OK when there was nothing to do or the regrouping
 * succeeded, RDX_EFORMAT when the fragments cannot be split into the frames,
 * RDX_ELIMIT past RDX_IMG_MAX_FRAGMENTS or RDX_IMG_MAX_PIXEL_BYTES.
 */
rdx_status regroup_jpegls_fragments(const char *path, gdcm::Image &img, rdx_error *err)
{
    gdcm::TransferSyntax ts = img.GetTransferSyntax();
    if (ts != gdcm::TransferSyntax::JPEGLSLossless &&
        ts != gdcm::TransferSyntax::JPEGLSNearLossless) {
        return RDX_OK;
    }
    const gdcm::SequenceOfFragments *sf = img.GetDataElement().GetSequenceOfFragments();
    unsigned int frames = img.GetNumberOfDimensions() >= 3 ? img.GetDimensions()[2] : 1;
    if (sf == nullptr || frames == 0 || sf->GetNumberOfFragments() <= frames) {
        return RDX_OK;
    }
    const gdcm::ByteValue *bot = sf->GetTable().GetByteValue();
    if (bot != nullptr && static_cast<uint32_t>(bot->GetLength()) > 0) {
        /* Offsets given: GDCM's own reading applies; nothing is guessed. */
        return RDX_OK;
    }
    if (sf->GetNumberOfFragments() > RDX_IMG_MAX_FRAGMENTS) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: %zu fragments, over the %u-fragment cap", path,
                             static_cast<size_t>(sf->GetNumberOfFragments()),
                             RDX_IMG_MAX_FRAGMENTS);
    }
    gdcm::SmartPointer<gdcm::SequenceOfFragments> grouped = new gdcm::SequenceOfFragments;
    std::vector<char> cs;
    unsigned long long total = 0;
    unsigned int done = 0;
    auto flush = [&]() -> rdx_status {
        if (!ends_with_eoi(cs)) {
            return rdx_error_set(err, RDX_EFORMAT,
                                 "%s: JPEG-LS frame %u (0-based) does not end with EOI (FFD9)",
                                 path, done);
        }
        if (cs.size() % 2 != 0) {
            cs.push_back('\0');
        }
        gdcm::Fragment f;
        f.SetByteValue(cs.data(), static_cast<uint32_t>(cs.size()));
        grouped->AddFragment(f);
        cs.clear();
        done++;
        return RDX_OK;
    };
    for (size_t i = 0; i < sf->GetNumberOfFragments(); i++) {
        const gdcm::Fragment &frag = sf->GetFragment(i);
        const gdcm::ByteValue *bv = frag.GetByteValue();
        size_t n = bv != nullptr ? static_cast<size_t>(static_cast<uint32_t>(bv->GetLength())) : 0;
        if (starts_with_soi(frag)) {
            if (i > 0) {
                RDX_TRY(flush());
            }
            if (done >= frames) {
                return rdx_error_set(err, RDX_EFORMAT,
                                     "%s: fragment %zu starts a codestream beyond the %u frames "
                                     "of the header",
                                     path, i, frames);
            }
        } else if (i == 0) {
            return rdx_error_set(err, RDX_EFORMAT,
                                 "%s: first fragment does not start with SOI (FFD8)", path);
        }
        total += n;
        if (total > RDX_IMG_MAX_PIXEL_BYTES) {
            return rdx_error_set(err, RDX_ELIMIT, "%s: over %u bytes of compressed pixel data",
                                 path, RDX_IMG_MAX_PIXEL_BYTES);
        }
        if (n > 0) {
            cs.insert(cs.end(), bv->GetPointer(), bv->GetPointer() + n);
        }
    }
    RDX_TRY(flush());
    if (done != frames) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%s: JPEG-LS codestreams (SOI to EOI) in the fragments: %u, "
                             "frames in the header: %u",
                             path, done, frames);
    }
    gdcm::DataElement pd = img.GetDataElement();
    pd.SetValue(*grouped);
    img.SetDataElement(pd);
    return RDX_OK;
}

rdx_status decode(const char *path, struct img_pixels *out, rdx_error *err)
{
    gdcm::ImageReader reader;
    reader.SetFileName(path);
    if (!reader.Read()) {
        /* The caller, which has the header, says which transfer syntax it was. */
        return rdx_error_set(err, RDX_EFORMAT, "%s: GDCM cannot read this image", path);
    }
    RDX_TRY(regroup_jpegls_fragments(path, reader.GetImage(), err));
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
