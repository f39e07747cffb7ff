/*
 * gdcm_shim.cpp - the C face over GDCM's pixel decoding: JPEG baseline,
 * extended and lossless, JPEG-LS, JPEG 2000, RLE and deflate, from bytes in
 * memory, one frame at a time, into a native buffer with the photometric
 * interpretation made usable (palette colour through its lookup table and
 * YBR to RGB, PS3.3 C.7.6.3.1.2, planar configuration 1 interleaved). An
 * encapsulated frame is handed to GDCM as the single fragment of a
 * one-frame image (fragments.c finds and checks it first). GDCM's own
 * messages, and those of its libjpeg, become the reason in the error instead
 * of going to stderr. Like dcmtk_shim.cpp it exposes plain C
 * (imaging/dicom.h) and catches every exception at the boundary.
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

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <istream>
#include <mutex>
#include <new>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

namespace
{

/*
 * GDCM reports why it failed only through gdcm::Trace, a process-wide stream
 * (std::cerr by default): a library must not print, and the reason belongs
 * in the caller's error. GDCM's streams are pointed once at an unbuffered
 * sink that appends to the string of the decode running on the calling
 * thread (and drops text outside one), so concurrent decodes keep their own
 * messages. GDCM's bundled libjpeg prints its warnings and errors to stderr
 * as well; its standard error manager is wrapped below to send them here.
 */
thread_local std::string *trace_target = nullptr;

class TraceSink : public std::streambuf
{
  protected:
    int_type overflow(int_type c) override
    {
        if (c != traits_type::eof() && trace_target != nullptr && trace_target->size() < 16384) {
            trace_target->push_back(static_cast<char>(c));
        }
        return traits_type::not_eof(c);
    }
    std::streamsize xsputn(const char *p, std::streamsize n) override
    {
        if (trace_target != nullptr && trace_target->size() < 16384) {
            trace_target->append(p, static_cast<size_t>(n));
        }
        return n;
    }
};

std::once_flag gdcm_once;

void quiet_gdcm()
{
    std::call_once(gdcm_once, [] {
        /* Never destroyed: GDCM may write to it until the process ends. */
        static TraceSink *sink = new TraceSink;
        static std::ostream *os = new std::ostream(sink);
        gdcm::Trace::SetStream(*os);
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(false);
        gdcm::Trace::SetError(true);
    });
}

/* Collects GDCM's messages for the current thread while it lives. */
class TraceCapture
{
  public:
    TraceCapture() : prev_(trace_target)
    {
        trace_target = &text_;
    }
    ~TraceCapture()
    {
        trace_target = prev_;
    }
    TraceCapture(const TraceCapture &) = delete;
    TraceCapture &operator=(const TraceCapture &) = delete;

    /*
     * The message lines, without GDCM's "Error: In FILE, line N, function F"
     * headers, joined with "; ", repeats and GDCM's search for the external
     * pvrg-jpeg program left out. Empty when GDCM said nothing.
     */
    /* Forget what was said so far (complaints of a step that went on to succeed). */
    void clear()
    {
        text_.clear();
    }

    std::string reason() const
    {
        std::string out;
        std::vector<std::string> seen;
        size_t i = 0;
        while (i < text_.size()) {
            size_t e = text_.find('\n', i);
            if (e == std::string::npos) {
                e = text_.size();
            }
            std::string line = text_.substr(i, e - i);
            i = e + 1;
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
                line.pop_back();
            }
            if (line.empty() || line.rfind("Error: In ", 0) == 0 ||
                line.rfind("Warning: In ", 0) == 0 || line.find("pvrg") != std::string::npos) {
                continue;
            }
            bool dup = false;
            for (const std::string &s : seen) {
                dup = dup || s == line;
            }
            if (dup) {
                continue;
            }
            seen.push_back(line);
            if (!out.empty()) {
                out += "; ";
            }
            out += line;
        }
        if (out.size() > 300) {
            out.resize(297);
            out += "...";
        }
        return out;
    }

  private:
    std::string text_;
    std::string *prev_;
};

/*
 * A read-only, seekable stream buffer over bytes in memory: GDCM seeks and
 * asks for positions while it reads, which a plain std::streambuf refuses.
 */
class MemBuf : public std::streambuf
{
  public:
    MemBuf(const uint8_t *p, size_t n)
    {
        char *b = const_cast<char *>(reinterpret_cast<const char *>(p));
        setg(b, b, b + n);
    }

  protected:
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override
    {
        off_type base = dir == std::ios_base::beg   ? 0
                        : dir == std::ios_base::cur ? gptr() - eback()
                                                    : egptr() - eback();
        off_type to = base + off;
        if (to < 0 || to > egptr() - eback()) {
            return pos_type(off_type(-1));
        }
        setg(eback(), eback() + to, egptr());
        return pos_type(to);
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode which) override
    {
        return seekoff(off_type(pos), std::ios_base::beg, which);
    }
};

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

/* Append GDCM's reason, if it gave one, to a message. */
rdx_status fail(rdx_error *err, rdx_status st, const TraceCapture &tc, const char *what)
{
    std::string why = tc.reason();
    if (why.empty()) {
        return rdx_error_set(err, st, "GDCM: %s", what);
    }
    return rdx_error_set(err, st, "GDCM: %s: %s", what, why.c_str());
}

/* Copy frame `frame` (one-bit data: bit-packed) out of a buffer holding every frame. */
uint8_t *cut_frame(const uint8_t *all, unsigned long long values_per_frame, unsigned bits,
                   uint32_t frame, size_t *len)
{
    if (bits == 1) {
        size_t n = static_cast<size_t>((values_per_frame + 7) / 8);
        uint8_t *f = static_cast<uint8_t *>(std::calloc(n > 0 ? n : 1, 1));
        if (f == nullptr) {
            return nullptr;
        }
        unsigned long long first = values_per_frame * frame;
        for (unsigned long long i = 0; i < values_per_frame; i++) {
            unsigned long long b = first + i;
            if ((all[b / 8] >> (b % 8)) & 1u) {
                f[i / 8] = static_cast<uint8_t>(f[i / 8] | (1u << (i % 8)));
            }
        }
        *len = n;
        return f;
    }
    size_t n = static_cast<size_t>(values_per_frame * (bits / 8));
    uint8_t *f = static_cast<uint8_t *>(std::malloc(n > 0 ? n : 1));
    if (f != nullptr) {
        std::memcpy(f, all + n * frame, n);
        *len = n;
    }
    return f;
}

rdx_status decode(const uint8_t *p, size_t n, uint32_t frame, const uint8_t *cs, size_t cs_len,
                  struct img_pixels *out, rdx_error *err)
{
    TraceCapture tc;
    MemBuf mb(p, n);
    std::istream is(&mb);
    gdcm::ImageReader reader;
    reader.SetStream(is);
    if (!reader.Read()) {
        return fail(err, RDX_EPARSE, tc, "cannot read the image");
    }
    /* Read succeeded: what it complained of (a missing orientation...) is not the reason. */
    tc.clear();
    gdcm::Image &src = reader.GetImage();
    unsigned int frames = src.GetNumberOfDimensions() >= 3 ? src.GetDimensions()[2] : 1;
    out->frames = frames;
    out->frame = frame;
    if (frame >= frames) {
        return rdx_error_set(err, RDX_ERANGE, "frame %u asked, GDCM reads %u (0-based)", frame,
                             frames);
    }
    bool encap = src.GetDataElement().GetSequenceOfFragments() != nullptr;
    if (encap != (cs != nullptr)) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "GDCM reads the Pixel Data as %s, the header parse as %s",
                             encap ? "encapsulated" : "native", encap ? "native" : "encapsulated");
    }
    unsigned int held = frames; /* frames in the buffer GDCM will decode */
    if (encap) {
        if (cs_len > 0xFFFFFFFEu) {
            return rdx_error_set(err, RDX_ELIMIT, "frame codestream of %zu bytes", cs_len);
        }
        /*
         * Decode only the frame asked for: the image becomes a single frame
         * whose one fragment is that frame's codestream (PS3.5 A.4).
         */
        gdcm::SmartPointer<gdcm::SequenceOfFragments> one = new gdcm::SequenceOfFragments;
        gdcm::Fragment f;
        f.SetByteValue(reinterpret_cast<const char *>(cs), static_cast<uint32_t>(cs_len));
        one->AddFragment(f);
        gdcm::DataElement pd = src.GetDataElement();
        pd.SetValue(*one);
        src.SetDataElement(pd);
        src.SetNumberOfDimensions(2);
        held = 1;
    }
    /*
     * The filters own their output: keep them alive and point at the last
     * one's image rather than copying gdcm::Image values around.
     */
    const gdcm::Image *cur = &src;
    gdcm::ImageApplyLookupTable lut;
    gdcm::ImageChangePlanarConfiguration pc;
    gdcm::PhotometricInterpretation pi = cur->GetPhotometricInterpretation();
    bool rgb_already = false, ybr = false;
    if (pi == gdcm::PhotometricInterpretation::PALETTE_COLOR) {
        lut.SetInput(*cur);
        if (!lut.Apply()) {
            return fail(err, RDX_EPARSE, tc, "palette lookup table cannot be applied");
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
            return fail(err, RDX_EPARSE, tc, "planar configuration cannot be changed");
        }
        cur = &pc.GetOutput();
    }
    const gdcm::Image &img = *cur;
    const gdcm::PixelFormat &pf = img.GetPixelFormat();
    const unsigned int *dims = img.GetDimensions();
    out->columns = dims[0];
    out->rows = dims[1];
    out->samples = pf.GetSamplesPerPixel();
    out->bits_allocated = pf.GetBitsAllocated();
    out->bits_stored = pf.GetBitsStored();
    if (out->bits_stored == 0 || out->bits_stored > out->bits_allocated) {
        out->bits_stored = out->bits_allocated;
    }
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
    if (out->rows == 0 || out->columns == 0 || (out->samples != 1 && out->samples != 3) ||
        (out->bits_allocated != 1 && out->bits_allocated != 8 && out->bits_allocated != 16 &&
         out->bits_allocated != 32)) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "unsupported pixel layout (%ux%u, %u samples, %u bits allocated)",
                             out->columns, out->rows, out->samples, out->bits_allocated);
    }
    unsigned long long per_frame =
        static_cast<unsigned long long>(out->rows) * out->columns * out->samples;
    /* Bits Allocated 1 (segmentations): frames are packed bit after bit (PS3.5 8.1.1). */
    unsigned long long values = per_frame * held;
    unsigned long long want =
        out->bits_allocated == 1 ? (values + 7) / 8 : values * (out->bits_allocated / 8);
    /* Checked before GDCM allocates or decodes anything: the header may lie. */
    if (want > RDX_IMG_MAX_PIXEL_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%llu bytes of pixels, over the %u-byte cap", want,
                             RDX_IMG_MAX_PIXEL_BYTES);
    }
    unsigned long long len = img.GetBufferLength();
    if (len > RDX_IMG_MAX_PIXEL_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%llu bytes of pixels, over the %u-byte cap", len,
                             RDX_IMG_MAX_PIXEL_BYTES);
    }
    if (len < want) {
        return rdx_error_set(err, RDX_ESHORT, "GDCM decodes %llu bytes, the header asks %llu", len,
                             want);
    }
    if (!encap) {
        /* Native data must be all there: GDCM would copy past a short value. */
        const gdcm::ByteValue *bv = src.GetDataElement().GetByteValue();
        unsigned long long have = bv != nullptr ? static_cast<uint32_t>(bv->GetLength()) : 0;
        unsigned long long need = out->bits_allocated == 1
                                      ? (values + 7) / 8
                                      : values * (src.GetPixelFormat().GetBitsAllocated() / 8);
        if (src.GetPixelFormat().GetSamplesPerPixel() != out->samples ||
            src.GetPixelFormat().GetBitsAllocated() != out->bits_allocated) {
            need = 0; /* palette: the LUT filter's output is checked by its length */
        }
        if (have < need) {
            return rdx_error_set(err, RDX_ESHORT,
                                 "truncated: native Pixel Data holds %llu bytes, %u frames of "
                                 "%ux%u need %llu",
                                 have, frames, out->columns, out->rows, need);
        }
    }
    std::vector<char> all(static_cast<size_t>(len > 0 ? len : 1));
    if (!img.GetBuffer(all.data())) {
        return fail(err, RDX_EPARSE, tc, "the codec refuses the frame");
    }
    const uint8_t *bytes = reinterpret_cast<const uint8_t *>(all.data());
    size_t flen = 0;
    uint8_t *buf = cut_frame(bytes, per_frame, out->bits_allocated, held == 1 ? 0 : frame, &flen);
    if (buf == nullptr) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory for a frame of pixels");
    }
    if (ybr) {
        if (out->samples != 3 || out->bits_allocated != 8) {
            std::free(buf);
            return rdx_error_set(err, RDX_EFORMAT, "YBR with %u bits per sample",
                                 out->bits_allocated);
        }
        ybr_to_rgb(buf, flen / 3);
    }
    out->data = buf;
    out->len = flen;
    return RDX_OK;
}

} // namespace

/*
 * GDCM's JPEG codecs set up libjpeg's standard error manager, whose
 * output_message prints to stderr. These definitions take precedence over
 * the ones in GDCM's libgdcmjpeg8/12/16 (the executable is searched first
 * when GDCM's libraries are bound), call them, and replace output_message so
 * that the message joins GDCM's reason for the decode running on this thread.
 * Only the first members of struct jpeg_error_mgr are used; their layout is
 * the same in every IJG libjpeg since version 6.
 */
namespace
{

struct jerr_head {
    void (*error_exit)(void *cinfo);
    void (*emit_message)(void *cinfo, int level);
    void (*output_message)(void *cinfo);
    void (*format_message)(void *cinfo, char *buffer);
};

void jpeg_to_trace(void *cinfo)
{
    /* struct jpeg_common_struct begins with its error manager pointer. */
    jerr_head *e = *static_cast<jerr_head **>(cinfo);
    char buf[256]; /* JMSG_LENGTH_MAX is 200 */
    buf[0] = '\0';
    e->format_message(cinfo, buf);
    buf[sizeof buf - 1] = '\0';
    if (trace_target != nullptr && trace_target->size() < 16384) {
        trace_target->append("libjpeg: ");
        trace_target->append(buf);
        trace_target->push_back('\n');
    }
}

void *wrap_std_error(const char *name, void *err)
{
    using std_error_fn = void *(*)(void *);
    std_error_fn real = reinterpret_cast<std_error_fn>(dlsym(RTLD_NEXT, name));
    if (real == nullptr) {
        std::abort(); /* GDCM called a function it does not link: cannot happen */
    }
    void *r = real(err);
    static_cast<jerr_head *>(err)->output_message = jpeg_to_trace;
    return r;
}

} // namespace

/*
 * GDCM's JPEG 2000 codec gives OpenJPEG an error handler that prints to
 * stderr; this definition takes its place in the same way and sends
 * OpenJPEG's errors to the calling thread's reason instead.
 */
namespace
{

void opj_to_trace(const char *msg, void *)
{
    if (msg != nullptr && trace_target != nullptr && trace_target->size() < 16384) {
        trace_target->append("OpenJPEG: ");
        trace_target->append(msg);
        if (trace_target->empty() || trace_target->back() != '\n') {
            trace_target->push_back('\n');
        }
    }
}

} // namespace

extern "C" int opj_set_error_handler(void *codec, void (*cb)(const char *, void *), void *user);
extern "C" int opj_set_error_handler(void *codec, void (*cb)(const char *, void *), void *user)
{
    (void)cb;
    (void)user;
    using set_fn = int (*)(void *, void (*)(const char *, void *), void *);
    set_fn real = reinterpret_cast<set_fn>(dlsym(RTLD_NEXT, "opj_set_error_handler"));
    if (real == nullptr) {
        std::abort(); /* GDCM called a function it does not link: cannot happen */
    }
    return real(codec, opj_to_trace, nullptr);
}

extern "C" void *gdcmjpeg8_jpeg_std_error(void *err);
extern "C" void *gdcmjpeg12_jpeg_std_error(void *err);
extern "C" void *gdcmjpeg16_jpeg_std_error(void *err);

extern "C" void *gdcmjpeg8_jpeg_std_error(void *err)
{
    return wrap_std_error("gdcmjpeg8_jpeg_std_error", err);
}

extern "C" void *gdcmjpeg12_jpeg_std_error(void *err)
{
    return wrap_std_error("gdcmjpeg12_jpeg_std_error", err);
}

extern "C" void *gdcmjpeg16_jpeg_std_error(void *err)
{
    return wrap_std_error("gdcmjpeg16_jpeg_std_error", err);
}

extern "C" void img_gdcm_init(void)
{
    try {
        quiet_gdcm();
    } catch (...) {
        /* Retried, and reported, by the decode itself. */
    }
}

extern "C" rdx_status img_gdcm_decode(const uint8_t *p, size_t n, uint32_t frame, const uint8_t *cs,
                                      size_t cs_len, struct img_pixels *out, rdx_error *err)
{
    if (p == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "img_gdcm_decode: NULL argument");
    }
    std::memset(out, 0, sizeof *out);
    try {
        quiet_gdcm();
        return decode(p, n, frame, cs, cs_len, out, err);
    } catch (const std::bad_alloc &) {
        return rdx_error_set(err, RDX_ENOMEM, "GDCM: out of memory");
    } catch (const std::exception &ex) {
        return rdx_error_set(err, RDX_EPARSE, "GDCM: %s", ex.what());
    } catch (const char *what) {
        /* GDCM throws string literals in places ("Impossible to backtrack"). */
        return rdx_error_set(err, RDX_EPARSE, "GDCM: %s", what != nullptr ? what : "exception");
    } catch (...) {
        return rdx_error_set(err, RDX_EPARSE, "GDCM raised an exception");
    }
}
