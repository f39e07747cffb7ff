/*
 * dcmtk_shim.cpp - the C face over DCMTK's dcmdata (rdx/imaging.h, "DICOM
 * headers"). The only C++ besides gdcm_shim.cpp: every extern "C" function
 * catches every exception and turns it into an rdx_status, so nothing of C++
 * crosses into the C engine (Orthanc's plugin SDK is the model).
 *
 * Headers are read with DcmFileFormat::readUntilTag(..., DCM_PixelData): the
 * parse stops at Pixel Data (7FE0,0010), values longer than
 * RDX_IMG_MAX_READ_LENGTH stay on disk, and the declared length of Pixel
 * Data is checked against the file size afterwards (PS3.5 7.1) so that a
 * truncated image is refused without reading its pixels.
 *
 * Text is converted to UTF-8 with DCMTK's DcmSpecificCharacterSet (glibc
 * iconv in Debian's build). That build refuses the Japanese ISO 2022 sets
 * (IR 87, IR 159 and IR 13 with extensions), and iconv refuses bytes that do
 * not belong to the declared set; both cases fall back on the engine's own
 * decoder (charset.c), which replaces what it cannot decode with U+FFFD.
 */
#include "rdx/imaging.h"

#include "dicom.h"
#include "imaging_limits.h"

#include <dcmtk/config/osconfig.h>

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcspchrs.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

namespace
{

/* One cached DCMTK converter per distinct Specific Character Set value. */
struct converter {
    std::string charset;
    std::unique_ptr<DcmSpecificCharacterSet> conv; /* null: DCMTK refused the set */
};

} // namespace

struct rdx_img_dataset {
    /* Bytes of a memory stream, kept for values DCMTK loads on first access. */
    std::vector<std::shared_ptr<const std::vector<uint8_t>>> mem;
    DcmFileFormat ff;
    std::string name;
    std::string xfer_uid;
    std::string sop_class;
    std::string sop_instance;
    bool has_meta = false;
    bool has_pixel = false;
    /* Pixel Data value offset in the opened bytes and its declared length (check_pixel_extent). */
    bool pixel_known = false;
    uint64_t pixel_off = 0;
    uint32_t pixel_len = 0;
    mutable std::vector<converter> convs;
};

namespace
{

/*
 * An input stream over bytes in memory that, unlike DcmInputBufferStream,
 * can make a factory. With a factory DCMTK skips values longer than
 * maxReadLength instead of allocating their declared length up front, and
 * a length past the end of the bytes fails the skip: a hostile 4 GiB length
 * costs nothing (the approach of VXL's vil_dicom_stream).
 */
class MemStream : public DcmInputStream
{
  public:
    MemStream(std::shared_ptr<const std::vector<uint8_t>> bytes, offile_off_t offset)
        : DcmInputStream(&producer_), bytes_(std::move(bytes)), offset_(offset)
    {
        producer_.setBuffer(bytes_->data(), static_cast<offile_off_t>(bytes_->size()));
        producer_.setEos();
        if (offset_ > 0) {
            producer_.skip(offset_);
        }
    }
    DcmInputStreamFactory *newFactory() const override;

  private:
    DcmBufferProducer producer_;
    std::shared_ptr<const std::vector<uint8_t>> bytes_;
    offile_off_t offset_;
};

class MemFactory : public DcmInputStreamFactory
{
  public:
    MemFactory(std::shared_ptr<const std::vector<uint8_t>> bytes, offile_off_t offset)
        : bytes_(std::move(bytes)), offset_(offset)
    {
    }
    DcmInputStream *create() const override
    {
        return new MemStream(bytes_, offset_);
    }
    DcmInputStreamFactory *clone() const override
    {
        return new MemFactory(bytes_, offset_);
    }
    DcmInputStreamFactoryType ident() const override
    {
        return DFT_DcmInputFileStreamFactory;
    }

  private:
    std::shared_ptr<const std::vector<uint8_t>> bytes_;
    offile_off_t offset_;
};

DcmInputStreamFactory *MemStream::newFactory() const
{
    /* Not once a compression filter sits in front of the producer. */
    if (currentProducer() != &producer_) {
        return nullptr;
    }
    return new MemFactory(bytes_, offset_ + tell());
}

std::once_flag log_once;

/* DCMTK logs to stderr by default; a library must not print (STYLE.md). */
void quiet_dcmtk()
{
    std::call_once(log_once, [] { OFLog::configure(OFLogger::OFF_LOG_LEVEL); });
}

DcmItem *as_dcm(const rdx_img_dataset *ds, const rdx_img_item *item)
{
    if (item == nullptr) {
        return const_cast<DcmFileFormat &>(ds->ff).getDataset();
    }
    return reinterpret_cast<DcmItem *>(const_cast<rdx_img_item *>(item));
}

const rdx_img_item *as_item(DcmItem *it)
{
    return reinterpret_cast<const rdx_img_item *>(it);
}

DcmTagKey key(uint32_t tag)
{
    return DcmTagKey(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xFFFFu));
}

rdx_status status_of(const OFCondition &c)
{
    if (c == EC_StreamNotifyClient || c == EC_EndOfStream ||
        c == EC_PrematureSequDelimitationItem) {
        return RDX_ESHORT;
    }
    if (c == EC_MemoryExhausted) {
        return RDX_ENOMEM;
    }
    if (c == EC_InvalidStream || c == EC_InvalidFilename) {
        return RDX_EIO;
    }
    return RDX_EPARSE;
}

/* Is VR one whose value the Specific Character Set governs (PS3.5 6.1.2.3)? */
bool charset_vr(DcmEVR vr)
{
    switch (vr) {
    case EVR_SH:
    case EVR_LO:
    case EVR_ST:
    case EVR_LT:
    case EVR_PN:
    case EVR_UC:
    case EVR_UT:
        return true;
    default:
        return false;
    }
}

bool text_vr(DcmEVR vr)
{
    switch (vr) {
    case EVR_AE:
    case EVR_AS:
    case EVR_CS:
    case EVR_DA:
    case EVR_DS:
    case EVR_DT:
    case EVR_IS:
    case EVR_TM:
    case EVR_UI:
    case EVR_UR:
        return true;
    default:
        return charset_vr(vr);
    }
}

bool binary_number_vr(DcmEVR vr)
{
    switch (vr) {
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
    case EVR_FL:
    case EVR_FD:
    case EVR_AT:
    case EVR_UV:
    case EVR_SV:
        return true;
    default:
        return false;
    }
}

/*
 * The value of e as text, trimmed of padding. An element stored as UN whose
 * tag the dictionary knows with a text VR is read as that VR (PS3.5 6.2.2:
 * UN may carry any VR; some writers store known attributes so).
 */
bool element_text(DcmElement *e, DcmEVR *vr, OFString &out)
{
    *vr = e->ident();
    if (*vr == EVR_UN) {
        DcmEVR dict = DcmTag(e->getTag().getXTag()).getEVR();
        if (!text_vr(dict)) {
            return false;
        }
        Uint8 *bytes = nullptr;
        if (e->getUint8Array(bytes).bad()) {
            return false;
        }
        size_t n = bytes != nullptr ? e->getLength() : 0;
        size_t b = 0;
        while (n > 0 && (bytes[n - 1] == ' ' || bytes[n - 1] == '\0')) {
            n--;
        }
        while (b < n && bytes[b] == ' ' && dict != EVR_ST && dict != EVR_LT && dict != EVR_UT) {
            b++;
        }
        out.assign(reinterpret_cast<const char *>(bytes) + b, n - b);
        *vr = dict;
        return true;
    }
    return e->getOFStringArray(out, OFTrue).good();
}

bool all_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80 || c == 0x1B) {
            return false;
        }
    }
    return true;
}

/*
 * The Specific Character Set in force for item: its own, else the nearest
 * enclosing item's (PS3.5 6.1.2.5: a sequence item may declare its own).
 */
std::string charset_of(DcmItem *item)
{
    int depth = 0;
    for (DcmItem *p = item; p != nullptr && depth < RDX_IMG_MAX_SEQ_DEPTH * 2;
         p = p->getParentItem(), depth++) {
        DcmElement *e = nullptr;
        if (p->findAndGetElement(DCM_SpecificCharacterSet, e, OFFalse).good() && e != nullptr) {
            OFString s;
            if (e->getOFStringArray(s, OFTrue).good()) {
                return std::string(s.c_str(), s.length());
            }
            return std::string();
        }
    }
    return std::string();
}

DcmSpecificCharacterSet *converter_for(const rdx_img_dataset *ds, const std::string &cs)
{
    for (converter &c : ds->convs) {
        if (c.charset == cs) {
            return c.conv.get();
        }
    }
    converter c;
    c.charset = cs;
    c.conv.reset(new DcmSpecificCharacterSet());
    if (c.conv->selectCharacterSet(OFString(cs.c_str(), cs.length()), "ISO_IR 192").bad()) {
        c.conv.reset();
    }
    ds->convs.push_back(std::move(c));
    return ds->convs.back().conv.get();
}

rdx_status append(rdx_buf *out, const char *s, size_t n)
{
    return rdx_buf_append(out, s, n);
}

/* Convert one text value (all its values, '\'-joined) into out as UTF-8. */
rdx_status convert_text(const rdx_img_dataset *ds, DcmItem *item, DcmEVR vr, const OFString &raw,
                        rdx_buf *out)
{
    const char *s = raw.c_str();
    size_t n = raw.length();
    if (all_ascii(s, n)) {
        return append(out, s, n);
    }
    if (!charset_vr(vr)) {
        /* CS, UI, DA ... are ASCII by definition (PS3.5 6.2); keep what is valid. */
        return rdx_img_utf8_sanitize(reinterpret_cast<const uint8_t *>(s), n, out);
    }
    std::string cs = charset_of(item);
    const char *delims = vr == EVR_PN                                     ? "\\^="
                         : (vr == EVR_SH || vr == EVR_LO || vr == EVR_UC) ? "\\"
                                                                          : "";
    if (cs == "ISO_IR 192") {
        return rdx_img_utf8_sanitize(reinterpret_cast<const uint8_t *>(s), n, out);
    }
    DcmSpecificCharacterSet *conv = cs.empty() ? nullptr : converter_for(ds, cs);
    if (conv != nullptr) {
        OFString utf8;
        if (conv->convertString(s, n, utf8, delims).good() &&
            rdx_img_utf8_valid(reinterpret_cast<const uint8_t *>(utf8.c_str()), utf8.length())) {
            return append(out, utf8.c_str(), utf8.length());
        }
    }
    return rdx_img_charset_decode(cs.c_str(), reinterpret_cast<const uint8_t *>(s), n, delims, out);
}

DcmElement *find_elem(DcmItem *it, uint32_t tag)
{
    DcmElement *e = nullptr;
    if (it->findAndGetElement(key(tag), e, OFFalse).bad()) {
        return nullptr;
    }
    return e;
}

std::string get_uid(DcmItem *it, const DcmTagKey &k)
{
    OFString s;
    DcmElement *e = nullptr;
    DcmEVR vr;
    if (it != nullptr && it->findAndGetElement(k, e, OFFalse).good() && e != nullptr &&
        element_text(e, &vr, s) && all_ascii(s.c_str(), s.length())) {
        return std::string(s.c_str(), s.length());
    }
    return std::string();
}

/* Read one element header (PS3.5 7.1.1/7.1.2) of hlen bytes at p: tag and length. */
bool elem_header(const DcmXfer &xf, const uint8_t *p, size_t hlen, uint16_t *g, uint16_t *e,
                 uint32_t *len)
{
    rdx_rd r;
    rdx_rd_init(&r, p, hlen);
    bool big = xf.isBigEndian();
    if ((big ? rdx_rd_u16be(&r, g) : rdx_rd_u16le(&r, g)) != RDX_OK ||
        (big ? rdx_rd_u16be(&r, e) : rdx_rd_u16le(&r, e)) != RDX_OK) {
        return false;
    }
    if (xf.isImplicitVR()) {
        return hlen == 8 && (big ? rdx_rd_u32be(&r, len) : rdx_rd_u32le(&r, len)) == RDX_OK;
    }
    uint8_t vr[2];
    if (rdx_rd_bytes(&r, vr, 2) != RDX_OK) {
        return false;
    }
    bool long_form = vr[0] == 'O' || vr[0] == 'U' || (vr[0] == 'S' && vr[1] == 'Q');
    if (long_form != (hlen == 12)) {
        return false;
    }
    if (long_form) {
        uint16_t reserved;
        return rdx_rd_u16le(&r, &reserved) == RDX_OK &&
               (big ? rdx_rd_u32be(&r, len) : rdx_rd_u32le(&r, len)) == RDX_OK;
    }
    uint16_t l16 = 0;
    if ((big ? rdx_rd_u16be(&r, &l16) : rdx_rd_u16le(&r, &l16)) != RDX_OK) {
        return false;
    }
    *len = l16;
    return true;
}

/*
 * The parse stops with the stream just past the element header of the
 * first tag at or above Pixel Data. win holds the wlen bytes before stop.
 * When that header is Pixel Data with a defined length, the value must fit
 * in the rest of the stream (size bytes in all), else the image is cut off.
 */
rdx_status check_pixel_extent(rdx_img_dataset *ds, const uint8_t *win, size_t wlen, uint64_t stop,
                              uint64_t size, rdx_error *err)
{
    DcmXfer xf(ds->ff.getDataset()->getOriginalXfer());
    if (xf.getStreamCompression() != ESC_none) {
        return RDX_OK; /* offsets are in the inflated stream */
    }
    static const size_t forms[2] = {12, 8};
    for (size_t hl : forms) {
        uint16_t g = 0, e = 0;
        uint32_t len = 0;
        if (wlen < hl || !elem_header(xf, win + wlen - hl, hl, &g, &e, &len)) {
            continue;
        }
        if (g != 0x7FE0 || e != 0x0010) {
            continue;
        }
        ds->has_pixel = true;
        ds->pixel_known = true;
        ds->pixel_off = stop;
        ds->pixel_len = len;
        if (len != 0xFFFFFFFFu && len > size - stop) {
            return rdx_error_set(
                err, RDX_ESHORT,
                "%s: truncated: Pixel Data (7FE0,0010) at offset %llu declares %lu "
                "bytes, only %llu remain",
                ds->name.c_str(), static_cast<unsigned long long>(stop - hl),
                static_cast<unsigned long>(len), static_cast<unsigned long long>(size - stop));
        }
        return RDX_OK;
    }
    return RDX_OK;
}

/*
 * Plausibility for a stream without the "DICM" prefix (PS3.10 7.1 allows
 * none only for bare data sets): it must open with an even group number
 * between 0x0002 and 0x0028 in either byte order, else it is not DICOM.
 */
bool looks_like_dataset(const uint8_t *p, size_t n)
{
    if (n < 8) {
        return false;
    }
    unsigned le = p[0] | (p[1] << 8);
    unsigned be = (p[0] << 8) | p[1];
    return (le >= 0x0002 && le <= 0x0028 && le % 2 == 0) ||
           (be >= 0x0002 && be <= 0x0028 && be % 2 == 0);
}

bool has_dicm(const uint8_t *p, size_t n)
{
    return n >= 132 && std::memcmp(p + 128, "DICM", 4) == 0;
}

rdx_status finish_open(rdx_img_dataset *ds, rdx_error *err)
{
    DcmMetaInfo *meta = ds->ff.getMetaInfo();
    DcmDataset *dset = ds->ff.getDataset();
    ds->has_meta = meta != nullptr && meta->card() > 0;
    if (dset == nullptr || (dset->card() == 0 && !ds->has_meta)) {
        return rdx_error_set(err, RDX_EFORMAT, "%s: not a DICOM file (no data elements)",
                             ds->name.c_str());
    }
    if (ds->has_meta) {
        ds->xfer_uid = get_uid(meta, DCM_TransferSyntaxUID);
        if (ds->xfer_uid.empty()) {
            /* PS3.10 7.1: Transfer Syntax UID (0002,0010) is Type 1. */
            return rdx_error_set(err, RDX_EPARSE,
                                 "%s: File Meta Information has no Transfer Syntax UID (0002,0010)",
                                 ds->name.c_str());
        }
    }
    if (ds->xfer_uid.empty()) {
        DcmXfer xf(dset->getOriginalXfer());
        ds->xfer_uid = xf.getXferID();
    }
    ds->sop_class = get_uid(dset, DCM_SOPClassUID);
    if (ds->sop_class.empty()) {
        ds->sop_class = get_uid(meta, DCM_MediaStorageSOPClassUID);
    }
    ds->sop_instance = get_uid(dset, DCM_SOPInstanceUID);
    if (ds->sop_instance.empty()) {
        ds->sop_instance = get_uid(meta, DCM_MediaStorageSOPInstanceUID);
    }
    return RDX_OK;
}

/*
 * Read the File Meta Information, then the data set up to Pixel Data, from
 * one stream. Done in two steps, not through DcmFileFormat::read, so that a
 * deflated data set is never handed to DCMTK's own inflater, which loads
 * values of any declared length: *deflated is set, *ds_start gives where the
 * deflated bytes begin, and the caller inflates them under a cap.
 */
rdx_status read_stream(rdx_img_dataset *ds, DcmInputStream &in, bool *deflated, uint64_t *ds_start,
                       rdx_error *err)
{
    *deflated = false;
    DcmMetaInfo *meta = ds->ff.getMetaInfo();
    meta->transferInit();
    OFCondition c = meta->read(in, EXS_Unknown, EGL_noChange, RDX_IMG_MAX_READ_LENGTH);
    meta->transferEnd();
    if (c.bad()) {
        return rdx_error_set(err, status_of(c), "%s: File Meta Information: %s", ds->name.c_str(),
                             c.text());
    }
    E_TransferSyntax xfer = EXS_Unknown;
    OFString ts;
    if (meta->card() > 0 && meta->findAndGetOFString(DCM_TransferSyntaxUID, ts).good()) {
        DcmXfer xf(ts.c_str());
        xfer = xf.getXfer();
        if (xf.getStreamCompression() != ESC_none) {
            *deflated = true;
            *ds_start = static_cast<uint64_t>(in.tell());
            return RDX_OK;
        }
    }
    DcmDataset *dset = ds->ff.getDataset();
    dset->transferInit();
    c = dset->readUntilTag(in, xfer, EGL_noChange, RDX_IMG_MAX_READ_LENGTH, DCM_PixelData);
    dset->transferEnd();
    if (c.bad()) {
        return rdx_error_set(err, status_of(c), "%s: %s", ds->name.c_str(), c.text());
    }
    return RDX_OK;
}

rdx_status open_mem(const void *data, size_t len, const char *name, rdx_img_dataset **out,
                    rdx_error *err);

rdx_status open_deflated_file(const char *path, uint64_t size, rdx_img_dataset **out,
                              rdx_error *err)
{
    if (size > RDX_IMG_MAX_DEFLATED_FILE) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: deflated file larger than %u bytes", path,
                             RDX_IMG_MAX_DEFLATED_FILE);
    }
    std::vector<uint8_t> all(static_cast<size_t>(size));
    FILE *f = std::fopen(path, "rb");
    if (f == nullptr) {
        int e = errno;
        return rdx_error_set(err, RDX_EIO, "%s: %s", path, std::strerror(e));
    }
    size_t n = std::fread(all.data(), 1, all.size(), f);
    std::fclose(f);
    if (n != all.size()) {
        return rdx_error_set(err, RDX_EIO, "%s: short read", path);
    }
    return open_mem(all.data(), all.size(), path, out, err);
}

rdx_status open_file(const char *path, rdx_img_dataset **out, rdx_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return rdx_error_set(err, e == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", path,
                             std::strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        return rdx_error_set(err, RDX_EFORMAT, "%s: not a regular file", path);
    }
    uint8_t head[132];
    size_t got = 0;
    {
        FILE *f = std::fopen(path, "rb");
        if (f == nullptr) {
            int e = errno;
            return rdx_error_set(err, RDX_EIO, "%s: %s", path, std::strerror(e));
        }
        got = std::fread(head, 1, sizeof head, f);
        std::fclose(f);
    }
    if (!has_dicm(head, got) && !looks_like_dataset(head, got)) {
        return rdx_error_set(err, RDX_EFORMAT, "%s: not a DICOM file (no DICM prefix, no data set)",
                             path);
    }
    std::unique_ptr<rdx_img_dataset> ds(new rdx_img_dataset());
    ds->name = path;
    uint64_t stop_off = 0;
    {
        DcmInputFileStream in(path);
        if (in.status().bad()) {
            return rdx_error_set(err, RDX_EIO, "%s: %s", path, in.status().text());
        }
        bool deflated = false;
        uint64_t ds_start = 0;
        RDX_TRY(read_stream(ds.get(), in, &deflated, &ds_start, err));
        if (deflated) {
            /* Read the whole (small) file and inflate it in memory under a cap. */
            return open_deflated_file(path, static_cast<uint64_t>(sb.st_size), out, err);
        }
        stop_off = static_cast<uint64_t>(in.tell());
    }
    RDX_TRY(finish_open(ds.get(), err));
    uint64_t fsize = static_cast<uint64_t>(sb.st_size);
    if (stop_off >= 8 && stop_off <= fsize) {
        uint8_t win[12];
        size_t wn = stop_off < 12 ? static_cast<size_t>(stop_off) : 12;
        size_t got_w = 0;
        FILE *f = std::fopen(path, "rb");
        if (f != nullptr) {
            if (fseeko(f, static_cast<off_t>(stop_off - wn), SEEK_SET) == 0) {
                got_w = std::fread(win, 1, wn, f);
            }
            std::fclose(f);
        }
        if (got_w == wn) {
            RDX_TRY(check_pixel_extent(ds.get(), win, wn, stop_off, fsize, err));
        }
    }
    *out = ds.release();
    return RDX_OK;
}

/*
 * Inflate a Deflated Explicit VR Little Endian data set (PS3.5 A.5: raw
 * RFC 1951 deflate, no zlib header) into out, at most RDX_IMG_MAX_INFLATED
 * bytes: a zip bomb is refused, not followed.
 */
rdx_status inflate_dataset(const uint8_t *p, size_t n, std::vector<uint8_t> &out,
                           const std::string &name, rdx_error *err)
{
    z_stream z;
    std::memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: cannot start inflating", name.c_str());
    }
    z.next_in = const_cast<Bytef *>(p);
    z.avail_in = static_cast<uInt>(n);
    rdx_status st = RDX_OK;
    uint8_t chunk[16384];
    for (;;) {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        int rc = inflate(&z, Z_NO_FLUSH);
        size_t got = sizeof chunk - z.avail_out;
        if (out.size() + got > RDX_IMG_MAX_INFLATED) {
            st = rdx_error_set(err, RDX_ELIMIT, "%s: deflated data set inflates past %u bytes",
                               name.c_str(), RDX_IMG_MAX_INFLATED);
            break;
        }
        out.insert(out.end(), chunk, chunk + got);
        if (rc == Z_STREAM_END) {
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && got > 0)) {
            if (z.avail_in == 0 && (rc == Z_BUF_ERROR || rc == Z_OK)) {
                break; /* input ended without the final block: keep what inflated */
            }
            st = rdx_error_set(err, RDX_EPARSE, "%s: deflated data set is corrupt at byte %lu: %s",
                               name.c_str(), static_cast<unsigned long>(z.total_in),
                               z.msg != nullptr ? z.msg : "zlib error");
            break;
        }
        if (z.avail_in == 0 && got == 0) {
            break;
        }
    }
    inflateEnd(&z);
    return st;
}

rdx_status open_mem(const void *data, size_t len, const char *name, rdx_img_dataset **out,
                    rdx_error *err)
{
    const char *label = name != nullptr ? name : "<memory>";
    const uint8_t *p = static_cast<const uint8_t *>(data);
    if (len == 0 || p == nullptr || (!has_dicm(p, len) && !looks_like_dataset(p, len))) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%s: not a DICOM stream (no DICM prefix, no data set)", label);
    }
    std::unique_ptr<rdx_img_dataset> ds(new rdx_img_dataset());
    ds->name = label;
    auto bytes = std::make_shared<const std::vector<uint8_t>>(p, p + len);
    ds->mem.push_back(bytes);
    uint64_t stop_off = 0;
    bool deflated = false;
    uint64_t ds_start = 0;
    {
        MemStream in(bytes, 0);
        RDX_TRY(read_stream(ds.get(), in, &deflated, &ds_start, err));
        stop_off = static_cast<uint64_t>(in.tell());
    }
    if (deflated) {
        /* PS3.5 A.5: the data set after the meta information is deflated. */
        if (ds_start > len) {
            return rdx_error_set(err, RDX_EPARSE, "%s: meta information runs past the end", label);
        }
        auto infl = std::make_shared<std::vector<uint8_t>>();
        RDX_TRY(inflate_dataset(p + ds_start, len - static_cast<size_t>(ds_start), *infl, ds->name,
                                err));
        ds->mem.push_back(infl);
        MemStream in(infl, 0);
        DcmDataset *dset = ds->ff.getDataset();
        dset->transferInit();
        OFCondition c = dset->readUntilTag(in, EXS_LittleEndianExplicit, EGL_noChange,
                                           RDX_IMG_MAX_READ_LENGTH, DCM_PixelData);
        dset->transferEnd();
        if (c.bad()) {
            return rdx_error_set(err, status_of(c), "%s: %s", ds->name.c_str(), c.text());
        }
        RDX_TRY(finish_open(ds.get(), err));
        uint64_t stop = static_cast<uint64_t>(in.tell());
        if (stop >= 8 && stop <= infl->size()) {
            size_t wn = stop < 12 ? static_cast<size_t>(stop) : 12;
            RDX_TRY(check_pixel_extent(ds.get(), infl->data() + stop - wn, wn, stop, infl->size(),
                                       err));
        }
        *out = ds.release();
        return RDX_OK;
    }
    RDX_TRY(finish_open(ds.get(), err));
    if (stop_off >= 8 && stop_off <= len) {
        size_t wn = stop_off < 12 ? static_cast<size_t>(stop_off) : 12;
        RDX_TRY(check_pixel_extent(ds.get(), p + stop_off - wn, wn, stop_off, len, err));
    }
    *out = ds.release();
    return RDX_OK;
}

rdx_status get_text(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag, rdx_buf *out,
                    rdx_error *err)
{
    rdx_buf_reset(out);
    DcmItem *it = as_dcm(ds, item);
    DcmElement *e = find_elem(it, tag);
    if (e == nullptr) {
        return rdx_error_set(err, RDX_ENOTFOUND, "%s: (%04X,%04X) absent", ds->name.c_str(),
                             tag >> 16, tag & 0xFFFFu);
    }
    DcmEVR vr = e->ident();
    if (vr == EVR_UN) {
        /* Only text can be recovered from UN bytes without knowing their byte order. */
        DcmEVR dict = DcmTag(e->getTag().getXTag()).getEVR();
        vr = text_vr(dict) ? dict : EVR_UN;
    }
    if (!text_vr(vr) && !binary_number_vr(vr)) {
        return rdx_error_set(err, RDX_EFORMAT, "%s: (%04X,%04X) has VR %s, which has no text form",
                             ds->name.c_str(), tag >> 16, tag & 0xFFFFu, DcmVR(vr).getVRName());
    }
    if (e->getLength() > RDX_IMG_MAX_TEXT_BYTES || e->getLength() > out->max) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: (%04X,%04X) is %lu bytes, over the %zu-byte cap",
                             ds->name.c_str(), tag >> 16, tag & 0xFFFFu,
                             static_cast<unsigned long>(e->getLength()), out->max);
    }
    OFString raw;
    if (!element_text(e, &vr, raw)) {
        return rdx_error_set(err, RDX_EPARSE, "%s: (%04X,%04X): value cannot be read as %s",
                             ds->name.c_str(), tag >> 16, tag & 0xFFFFu, DcmVR(vr).getVRName());
    }
    rdx_status st = convert_text(ds, it, vr, raw, out);
    if (st != RDX_OK) {
        rdx_buf_reset(out);
        return rdx_error_set(err, st, "%s: (%04X,%04X): %s", ds->name.c_str(), tag >> 16,
                             tag & 0xFFFFu, rdx_strerror(st));
    }
    return RDX_OK;
}

rdx_status get_number(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                      size_t index, int64_t *iout, double *dout, rdx_error *err)
{
    DcmItem *it = as_dcm(ds, item);
    DcmElement *e = find_elem(it, tag);
    if (e == nullptr || index >= e->getVM() || e->getLength() == 0) {
        return rdx_error_set(err, RDX_ENOTFOUND, "%s: (%04X,%04X) value %zu absent",
                             ds->name.c_str(), tag >> 16, tag & 0xFFFFu, index);
    }
    unsigned long pos = static_cast<unsigned long>(index);
    OFCondition c = EC_Normal;
    int64_t iv = 0;
    double dv = 0;
    bool is_float = false;
    switch (e->ident()) {
    case EVR_US: {
        Uint16 v = 0;
        c = e->getUint16(v, pos);
        iv = v;
        break;
    }
    case EVR_SS: {
        Sint16 v = 0;
        c = e->getSint16(v, pos);
        iv = v;
        break;
    }
    case EVR_UL: {
        Uint32 v = 0;
        c = e->getUint32(v, pos);
        iv = v;
        break;
    }
    case EVR_SL: {
        Sint32 v = 0;
        c = e->getSint32(v, pos);
        iv = v;
        break;
    }
    case EVR_UV: {
        Uint64 v = 0;
        c = e->getUint64(v, pos);
        if (v > static_cast<Uint64>(INT64_MAX)) {
            return rdx_error_set(err, RDX_ERANGE, "%s: (%04X,%04X) value %zu out of range",
                                 ds->name.c_str(), tag >> 16, tag & 0xFFFFu, index);
        }
        iv = static_cast<int64_t>(v);
        break;
    }
    case EVR_SV: {
        Sint64 v = 0;
        c = e->getSint64(v, pos);
        iv = v;
        break;
    }
    case EVR_FL: {
        Float32 v = 0;
        c = e->getFloat32(v, pos);
        dv = v;
        is_float = true;
        break;
    }
    case EVR_FD: {
        Float64 v = 0;
        c = e->getFloat64(v, pos);
        dv = v;
        is_float = true;
        break;
    }
    case EVR_IS:
    case EVR_DS: {
        OFString s;
        c = e->getOFString(s, pos, OFTrue);
        if (c.good()) {
            rdx_status st;
            if (e->ident() == EVR_IS && dout == nullptr) {
                st = rdx_parse_i64(s.c_str(), s.length(), INT64_MIN, INT64_MAX, &iv);
            } else {
                st = rdx_parse_double(s.c_str(), s.length(), &dv);
                is_float = true;
            }
            if (st != RDX_OK) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "%s: (%04X,%04X) value %zu '%s' is not a number",
                                     ds->name.c_str(), tag >> 16, tag & 0xFFFFu, index, s.c_str());
            }
        }
        break;
    }
    default:
        return rdx_error_set(err, RDX_EFORMAT, "%s: (%04X,%04X) has VR %s, not a number",
                             ds->name.c_str(), tag >> 16, tag & 0xFFFFu,
                             DcmVR(e->ident()).getVRName());
    }
    if (c.bad()) {
        return rdx_error_set(err, RDX_EPARSE, "%s: (%04X,%04X): %s", ds->name.c_str(), tag >> 16,
                             tag & 0xFFFFu, c.text());
    }
    if (iout != nullptr) {
        if (is_float) {
            if (!(dv >= -9.2e18 && dv <= 9.2e18) ||
                dv != static_cast<double>(static_cast<int64_t>(dv))) {
                return rdx_error_set(err, RDX_EPARSE, "%s: (%04X,%04X) value %zu is not an integer",
                                     ds->name.c_str(), tag >> 16, tag & 0xFFFFu, index);
            }
            iv = static_cast<int64_t>(dv);
        }
        *iout = iv;
    }
    if (dout != nullptr) {
        *dout = is_float ? dv : static_cast<double>(iv);
    }
    return RDX_OK;
}

rdx_status find_seq(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                    DcmSequenceOfItems **seq, rdx_error *err)
{
    DcmItem *it = as_dcm(ds, item);
    DcmElement *e = find_elem(it, tag);
    if (e == nullptr) {
        return rdx_error_set(err, RDX_ENOTFOUND, "%s: (%04X,%04X) absent", ds->name.c_str(),
                             tag >> 16, tag & 0xFFFFu);
    }
    if (e->ident() != EVR_SQ) {
        return rdx_error_set(err, RDX_EFORMAT, "%s: (%04X,%04X) is %s, not a sequence",
                             ds->name.c_str(), tag >> 16, tag & 0xFFFFu,
                             DcmVR(e->ident()).getVRName());
    }
    *seq = static_cast<DcmSequenceOfItems *>(e);
    return RDX_OK;
}

rdx_status fail_exception(rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EINTERNAL, "DCMTK raised an exception: %s", what);
}

} // namespace

#define SHIM_GUARD(expr)                                                                           \
    try {                                                                                          \
        return (expr);                                                                             \
    } catch (const std::bad_alloc &) {                                                             \
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");                                    \
    } catch (const std::exception &ex) {                                                           \
        return fail_exception(err, ex.what());                                                     \
    } catch (...) {                                                                                \
        return fail_exception(err, "unknown");                                                     \
    }

extern "C" {

rdx_status rdx_img_dataset_open_file(const char *path, rdx_img_dataset **out, rdx_error *err)
{
    if (out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_dataset_open_file: out is NULL");
    }
    *out = nullptr;
    if (path == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_dataset_open_file: path is NULL");
    }
    SHIM_GUARD((quiet_dcmtk(), open_file(path, out, err)))
}

rdx_status rdx_img_dataset_open_mem(const void *data, size_t len, const char *name,
                                    rdx_img_dataset **out, rdx_error *err)
{
    if (out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_dataset_open_mem: out is NULL");
    }
    *out = nullptr;
    SHIM_GUARD((quiet_dcmtk(), open_mem(data, len, name, out, err)))
}

void rdx_img_dataset_free(rdx_img_dataset *ds)
{
    try {
        delete ds;
    } catch (...) {
        /* A destructor that throws leaks rather than crossing into C. */
    }
}

const rdx_img_item *rdx_img_dataset_root(const rdx_img_dataset *ds)
{
    return ds == nullptr ? nullptr : as_item(const_cast<DcmFileFormat &>(ds->ff).getDataset());
}

const rdx_img_item *rdx_img_dataset_meta(const rdx_img_dataset *ds)
{
    if (ds == nullptr || !ds->has_meta) {
        return nullptr;
    }
    return as_item(const_cast<DcmFileFormat &>(ds->ff).getMetaInfo());
}

const char *rdx_img_dataset_transfer_syntax(const rdx_img_dataset *ds)
{
    return ds == nullptr ? "" : ds->xfer_uid.c_str();
}

const char *rdx_img_transfer_syntax_name(const char *uid)
{
    try {
        if (uid != nullptr && uid[0] != '\0') {
            /* DcmXfer's names are static strings of DCMTK's transfer syntax table. */
            DcmXfer xf(uid);
            if (xf.getXfer() != EXS_Unknown) {
                return xf.getXferName();
            }
        }
    } catch (...) {
    }
    return "unknown transfer syntax";
}

const char *rdx_img_dataset_sop_class(const rdx_img_dataset *ds)
{
    return ds == nullptr ? "" : ds->sop_class.c_str();
}

const char *rdx_img_dataset_sop_instance(const rdx_img_dataset *ds)
{
    return ds == nullptr ? "" : ds->sop_instance.c_str();
}

int rdx_img_dataset_has_pixel_data(const rdx_img_dataset *ds)
{
    return ds != nullptr && ds->has_pixel;
}

int img_dataset_pixel_value(const rdx_img_dataset *ds, uint64_t *offset, uint32_t *length)
{
    if (ds == nullptr || !ds->pixel_known) {
        return 0;
    }
    *offset = ds->pixel_off;
    *length = ds->pixel_len;
    return 1;
}

rdx_status rdx_img_item_get_text(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                 rdx_buf *out, rdx_error *err)
{
    if (ds == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_item_get_text: NULL argument");
    }
    SHIM_GUARD(get_text(ds, item, tag, out, err))
}

rdx_status rdx_img_item_get_i64(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                size_t index, int64_t *out, rdx_error *err)
{
    if (ds == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_item_get_i64: NULL argument");
    }
    SHIM_GUARD(get_number(ds, item, tag, index, out, nullptr, err))
}

rdx_status rdx_img_item_get_double(const rdx_img_dataset *ds, const rdx_img_item *item,
                                   uint32_t tag, size_t index, double *out, rdx_error *err)
{
    if (ds == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_item_get_double: NULL argument");
    }
    SHIM_GUARD(get_number(ds, item, tag, index, nullptr, out, err))
}

rdx_status rdx_img_item_seq_count(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                  size_t *count, rdx_error *err)
{
    if (ds == nullptr || count == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_item_seq_count: NULL argument");
    }
    *count = 0;
    try {
        DcmSequenceOfItems *seq = nullptr;
        RDX_TRY(find_seq(ds, item, tag, &seq, err));
        *count = seq->card();
        return RDX_OK;
    } catch (const std::bad_alloc &) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    } catch (...) {
        return fail_exception(err, "unknown");
    }
}

rdx_status rdx_img_item_seq_item(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                 size_t index, const rdx_img_item **out, rdx_error *err)
{
    if (ds == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_item_seq_item: NULL argument");
    }
    *out = nullptr;
    try {
        DcmSequenceOfItems *seq = nullptr;
        RDX_TRY(find_seq(ds, item, tag, &seq, err));
        if (index >= seq->card()) {
            return rdx_error_set(err, RDX_ENOTFOUND, "%s: (%04X,%04X) has no item %zu",
                                 ds->name.c_str(), tag >> 16, tag & 0xFFFFu, index);
        }
        *out = as_item(seq->getItem(static_cast<unsigned long>(index)));
        return *out != nullptr ? RDX_OK
                               : rdx_error_set(err, RDX_ENOTFOUND, "%s: no item", ds->name.c_str());
    } catch (const std::bad_alloc &) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    } catch (...) {
        return fail_exception(err, "unknown");
    }
}

size_t rdx_img_item_elem_count(const rdx_img_dataset *ds, const rdx_img_item *item)
{
    if (ds == nullptr) {
        return 0;
    }
    try {
        return as_dcm(ds, item)->card();
    } catch (...) {
        return 0;
    }
}

rdx_status rdx_img_item_elem(const rdx_img_dataset *ds, const rdx_img_item *item, size_t index,
                             rdx_img_elem *out)
{
    if (ds == nullptr || out == nullptr) {
        return RDX_EINVAL;
    }
    try {
        DcmItem *it = as_dcm(ds, item);
        if (index >= it->card()) {
            return RDX_ENOTFOUND;
        }
        DcmElement *e = it->getElement(static_cast<unsigned long>(index));
        if (e == nullptr) {
            return RDX_ENOTFOUND;
        }
        out->tag = RDX_IMG_TAG(e->getGTag(), e->getETag());
        const char *vr = DcmVR(e->ident()).getVRName();
        out->vr[0] = vr != nullptr && vr[0] != '\0' ? vr[0] : '?';
        out->vr[1] = vr != nullptr && vr[0] != '\0' ? vr[1] : '?';
        out->vr[2] = '\0';
        out->length = e->getLength();
        out->is_sequence = e->ident() == EVR_SQ;
        out->vm = out->is_sequence ? static_cast<DcmSequenceOfItems *>(e)->card() : e->getVM();
        return RDX_OK;
    } catch (const std::bad_alloc &) {
        return RDX_ENOMEM;
    } catch (...) {
        return RDX_EINTERNAL;
    }
}

} /* extern "C" */

/* ---- Pixel decoding with DCMTK's codecs (RLE, JPEG) ------------------------------ */

namespace
{

std::once_flag codecs_once;

/*
 * Register DCMTK's decoders once per process. Colour JPEG is turned into RGB
 * and written colour-by-pixel, the layout img_pixels promises. DCMTK's
 * JPEG-LS decoder is left out on purpose: its bundled CharLS exports the
 * same symbols (JpegLsDecode ...) as the newer CharLS GDCM is linked with,
 * and one of the two would silently call the other's ABI.
 */
void register_codecs()
{
    std::call_once(codecs_once, [] {
        DcmRLEDecoderRegistration::registerCodecs();
        DJDecoderRegistration::registerCodecs(EDC_photometricInterpretation, EUC_never,
                                              EPC_colorByPixel);
    });
}

uint8_t clamp8(double v)
{
    return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
}

rdx_status dcmtk_decode(const uint8_t *p, size_t n, uint32_t frame, struct img_pixels *out,
                        rdx_error *err)
{
    register_codecs();
    DcmInputBufferStream in;
    in.setBuffer(p, static_cast<offile_off_t>(n));
    in.setEos();
    DcmFileFormat ff;
    ff.transferInit();
    OFCondition c = ff.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    ff.transferEnd();
    if (c.bad()) {
        return rdx_error_set(err, status_of(c), "DCMTK: %s", c.text());
    }
    DcmDataset *d = ff.getDataset();
    Uint16 rows = 0, cols = 0, spp = 1, ba = 0, bs = 0, pr = 0, planar = 0;
    Sint32 frames = 1;
    OFString pi;
    d->findAndGetUint16(DCM_Rows, rows);
    d->findAndGetUint16(DCM_Columns, cols);
    d->findAndGetUint16(DCM_SamplesPerPixel, spp);
    d->findAndGetUint16(DCM_BitsAllocated, ba);
    d->findAndGetUint16(DCM_BitsStored, bs);
    d->findAndGetUint16(DCM_PixelRepresentation, pr);
    d->findAndGetUint16(DCM_PlanarConfiguration, planar);
    if (d->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) {
        frames = 1;
    }
    d->findAndGetOFString(DCM_PhotometricInterpretation, pi);
    if (rows == 0 || cols == 0 || (spp != 1 && spp != 3) || (ba != 8 && ba != 16 && ba != 32)) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "DCMTK: unsupported pixel layout (%u samples, %u bits allocated)", spp,
                             ba);
    }
    if (frame >= static_cast<uint32_t>(frames)) {
        return rdx_error_set(err, RDX_ERANGE, "frame %u asked, the file has %d (0-based)", frame,
                             static_cast<int>(frames));
    }
    /* Checked before decoding: the codec allocates what the header declares. */
    unsigned long long per_frame = static_cast<unsigned long long>(rows) * cols * spp * (ba / 8);
    unsigned long long want = per_frame * static_cast<unsigned long long>(frames);
    if (want > RDX_IMG_MAX_PIXEL_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%llu bytes of pixels, over the %u-byte cap", want,
                             RDX_IMG_MAX_PIXEL_BYTES);
    }
    c = d->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    if (c.bad() || !d->canWriteXfer(EXS_LittleEndianExplicit)) {
        return rdx_error_set(err, RDX_EPARSE, "DCMTK: %s",
                             c.bad() ? c.text() : "no decoder for this transfer syntax");
    }
    DcmElement *e = nullptr;
    if (d->findAndGetElement(DCM_PixelData, e).bad() || e == nullptr) {
        return rdx_error_set(err, RDX_ENOTFOUND, "no Pixel Data (7FE0,0010) to decode");
    }
    Uint8 *bytes = nullptr;
    if (ba == 8) {
        c = e->getUint8Array(bytes);
    } else {
        Uint16 *words = nullptr;
        c = e->getUint16Array(words);
        bytes = reinterpret_cast<Uint8 *>(words);
    }
    if (c.bad() || bytes == nullptr || e->getLength() < want) {
        return rdx_error_set(err, RDX_ESHORT, "DCMTK decoded %lu bytes, the header asks %llu",
                             static_cast<unsigned long>(e->getLength()), want);
    }
    size_t fb = static_cast<size_t>(per_frame);
    uint8_t *buf = static_cast<uint8_t *>(std::malloc(fb));
    if (buf == nullptr) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory for %zu bytes of pixels", fb);
    }
    size_t bps = ba / 8, npix = static_cast<size_t>(rows) * cols;
    const uint8_t *src = bytes + static_cast<size_t>(frame) * fb;
    if (spp == 3 && planar == 1) {
        /* Colour by plane to colour by pixel (PS3.3 C.7.6.3.1.3). */
        for (size_t i = 0; i < npix; i++) {
            for (size_t k = 0; k < 3; k++) {
                std::memcpy(buf + (i * 3 + k) * bps, src + (k * npix + i) * bps, bps);
            }
        }
    } else {
        std::memcpy(buf, src, fb);
    }
    bool ybr = spp == 3 && (pi == "YBR_FULL" || pi == "YBR_FULL_422");
    if (ybr) {
        if (ba != 8) {
            std::free(buf);
            return rdx_error_set(err, RDX_EFORMAT, "YBR with %u bits per sample", ba);
        }
        /* PS3.3 C.7.6.3.1.2. */
        for (size_t i = 0; i < fb; i += 3) {
            double y = buf[i], cb = buf[i + 1] - 128.0, cr = buf[i + 2] - 128.0;
            buf[i] = clamp8(y + 1.402 * cr);
            buf[i + 1] = clamp8(y - 0.344136 * cb - 0.714136 * cr);
            buf[i + 2] = clamp8(y + 1.772 * cb);
        }
    }
    out->data = buf;
    out->len = fb;
    out->rows = rows;
    out->columns = cols;
    out->frames = static_cast<uint32_t>(frames);
    out->frame = frame;
    out->samples = spp;
    out->bits_allocated = ba;
    out->bits_stored = bs != 0 && bs <= ba ? bs : ba;
    out->is_signed = pr != 0;
    std::snprintf(out->photometric, sizeof out->photometric, "%s",
                  ybr || pi == "YBR_RCT" || pi == "YBR_ICT" ? "RGB" : pi.c_str());
    return RDX_OK;
}

} // namespace

extern "C" void img_dcmtk_init(void)
{
    try {
        quiet_dcmtk();
        register_codecs();
    } catch (...) {
        /* Retried, and reported, by the decode itself. */
    }
}

extern "C" rdx_status img_dcmtk_decode(const uint8_t *p, size_t n, uint32_t frame,
                                       struct img_pixels *out, rdx_error *err)
{
    if (p == nullptr || out == nullptr) {
        return rdx_error_set(err, RDX_EINVAL, "img_dcmtk_decode: NULL argument");
    }
    std::memset(out, 0, sizeof *out);
    try {
        quiet_dcmtk();
        return dcmtk_decode(p, n, frame, out, err);
    } catch (const std::bad_alloc &) {
        return rdx_error_set(err, RDX_ENOMEM, "DCMTK: out of memory");
    } catch (const std::exception &ex) {
        return rdx_error_set(err, RDX_EPARSE, "DCMTK: %s", ex.what());
    } catch (...) {
        return rdx_error_set(err, RDX_EPARSE, "DCMTK raised an exception");
    }
}
