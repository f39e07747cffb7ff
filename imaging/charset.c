/*
 * charset.c - DICOM Specific Character Set (0008,0005) to UTF-8, the
 * engine's own decoder. The shim tries DCMTK's DcmSpecificCharacterSet first;
 * this decoder covers what Debian's glibc-iconv build of DCMTK refuses (the
 * Japanese ISO 2022 sets IR 87, IR 159 and IR 13 with code extensions) and
 * values whose bytes do not belong to their declared set.
 *
 * References: PS3.3 C.12.1.1.2 (defined terms and their escape sequences),
 * PS3.5 6.1.2.5 (code extension techniques: G0 and G1 designation, and
 * the return to the initial designations at delimiters, 6.1.2.5.3).
 * Each run of bytes in one coded character set is converted with iconv;
 * the 94x94 sets designated to G0 (JIS X 0208, JIS X 0212) are turned into
 * their EUC form (high bit set) first, which iconv reads as EUC-JP.
 */
#include "dicom.h"
#include "imaging_limits.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

enum set_kind {
    K_NONE = 0,  /* nothing designated (bytes in this half are errors) */
    K_ASCII,     /* ISO 646 IRV, ISO-IR 6 */
    K_JIS_ROMAN, /* JIS X 0201 Roman, ISO-IR 14 */
    K_JIS_KANA,  /* JIS X 0201 Katakana, ISO-IR 13 (G1) */
    K_JIS_0208,  /* JIS X 0208, ISO-IR 87 (G0, two bytes) */
    K_JIS_0212,  /* JIS X 0212, ISO-IR 159 (G0, two bytes) */
    K_KSX1001,   /* KS X 1001, ISO-IR 149 (G1, two bytes) */
    K_GB2312,    /* GB 2312, ISO-IR 58 (G1, two bytes) */
    K_SB         /* a 96-character ISO 8859 part in G1, via iconv */
};

struct gset {
    enum set_kind kind;
    const char *iconv; /* for K_SB */
};

/* A defined term: what it designates to G0 and G1 initially (PS3.3 Table C.12-3/4). */
struct term {
    const char *ir; /* the number after "ISO_IR " / "ISO 2022 IR " */
    struct gset g0, g1;
    const char *whole; /* without code extensions: iconv name for the whole value */
};

static const struct term terms[] = {
    {"6", {K_ASCII, NULL}, {K_NONE, NULL}, NULL},
    {"100", {K_ASCII, NULL}, {K_SB, "ISO-8859-1"}, "ISO-8859-1"},
    {"101", {K_ASCII, NULL}, {K_SB, "ISO-8859-2"}, "ISO-8859-2"},
    {"109", {K_ASCII, NULL}, {K_SB, "ISO-8859-3"}, "ISO-8859-3"},
    {"110", {K_ASCII, NULL}, {K_SB, "ISO-8859-4"}, "ISO-8859-4"},
    {"144", {K_ASCII, NULL}, {K_SB, "ISO-8859-5"}, "ISO-8859-5"},
    {"127", {K_ASCII, NULL}, {K_SB, "ISO-8859-6"}, "ISO-8859-6"},
    {"126", {K_ASCII, NULL}, {K_SB, "ISO-8859-7"}, "ISO-8859-7"},
    {"138", {K_ASCII, NULL}, {K_SB, "ISO-8859-8"}, "ISO-8859-8"},
    {"148", {K_ASCII, NULL}, {K_SB, "ISO-8859-9"}, "ISO-8859-9"},
    {"203", {K_ASCII, NULL}, {K_SB, "ISO-8859-15"}, "ISO-8859-15"},
    {"166", {K_ASCII, NULL}, {K_SB, "TIS-620"}, "TIS-620"},
    {"13", {K_JIS_ROMAN, NULL}, {K_JIS_KANA, NULL}, NULL},
    {"87", {K_NONE, NULL}, {K_NONE, NULL}, NULL},
    {"159", {K_NONE, NULL}, {K_NONE, NULL}, NULL},
    {"149", {K_ASCII, NULL}, {K_KSX1001, NULL}, NULL},
    {"58", {K_ASCII, NULL}, {K_GB2312, NULL}, NULL},
};
#define NTERMS (sizeof terms / sizeof terms[0])

/* Escape sequences (without the ESC) and the set each designates. */
struct escape {
    const char *seq;
    int g; /* 0 or 1 */
    struct gset set;
};

static const struct escape escapes[] = {
    {"(B", 0, {K_ASCII, NULL}},      {"(J", 0, {K_JIS_ROMAN, NULL}},
    {")I", 1, {K_JIS_KANA, NULL}},   {"$B", 0, {K_JIS_0208, NULL}},
    {"$@", 0, {K_JIS_0208, NULL}},   {"$(D", 0, {K_JIS_0212, NULL}},
    {"$)C", 1, {K_KSX1001, NULL}},   {"$)A", 1, {K_GB2312, NULL}},
    {"-A", 1, {K_SB, "ISO-8859-1"}}, {"-B", 1, {K_SB, "ISO-8859-2"}},
    {"-C", 1, {K_SB, "ISO-8859-3"}}, {"-D", 1, {K_SB, "ISO-8859-4"}},
    {"-L", 1, {K_SB, "ISO-8859-5"}}, {"-G", 1, {K_SB, "ISO-8859-6"}},
    {"-F", 1, {K_SB, "ISO-8859-7"}}, {"-H", 1, {K_SB, "ISO-8859-8"}},
    {"-M", 1, {K_SB, "ISO-8859-9"}}, {"-b", 1, {K_SB, "ISO-8859-15"}},
    {"-T", 1, {K_SB, "TIS-620"}},
};
#define NESCAPES (sizeof escapes / sizeof escapes[0])

/* ---- UTF-8 --------------------------------------------------------------- */

static rdx_status put_cp(rdx_buf *out, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return rdx_buf_append(out, b, n);
}

#define REPLACEMENT 0xFFFDu

/* Length of the well-formed UTF-8 sequence at p[0..n), or 0 when it is not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    uint32_t min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* Code point of the well-formed sequence of length len at p. */
static uint32_t utf8_cp(const uint8_t *p, size_t len)
{
    static const uint8_t lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = p[0] & lead_mask[len];
    for (size_t i = 1; i < len; i++) {
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    return cp;
}

struct cp_range {
    uint32_t lo, hi;
};

/*
 * East Asian Wide (W) and Fullwidth (F) blocks of Unicode 15's
 * EastAsianWidth.txt (UAX #11), coalesced by block: what a terminal draws
 * two cells wide. Halfwidth forms (U+FF61..U+FFDC) stay narrow.
 */
static const struct cp_range wide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
    {0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
    {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
    {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
    {0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x303E},
    {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},
    {0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE10, 0xFE19},
    {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x16FE0, 0x16FE4},
    {0x17000, 0x18CFF}, {0x1AFF0, 0x1B2FF}, {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF},
    {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F251}, {0x1F300, 0x1F64F},
    {0x1F680, 0x1F6FF}, {0x1F7E0, 0x1F7EB}, {0x1F90C, 0x1F9FF}, {0x1FA70, 0x1FAFF},
    {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

/* Combining marks, zero-width and format characters: no cell of their own. */
static const struct cp_range zero[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A},   {0x064B, 0x065F},
    {0x0670, 0x0670}, {0x06D6, 0x06DC}, {0x06DF, 0x06E4}, {0x0E31, 0x0E31},   {0x0E34, 0x0E3A},
    {0x0E47, 0x0E4E}, {0x1160, 0x11FF}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},   {0x200B, 0x200F},
    {0x202A, 0x202E}, {0x2060, 0x2064}, {0x20D0, 0x20FF}, {0x302A, 0x302D},   {0x3099, 0x309A},
    {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
};

static int in_ranges(const struct cp_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo) {
            hi = mid;
        } else if (cp > r[mid].hi) {
            lo = mid + 1;
        } else {
            return 1;
        }
    }
    return 0;
}

size_t rdx_img_text_width(const char *s)
{
    if (s == NULL) {
        return 0;
    }
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), i = 0, w = 0;
    while (i < n) {
        size_t len = utf8_seq(p + i, n - i);
        if (len == 0) {
            w++; /* a stray byte is shown as one replacement character */
            i++;
            continue;
        }
        uint32_t cp = utf8_cp(p + i, len);
        i += len;
        if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) ||
            in_ranges(zero, sizeof zero / sizeof zero[0], cp)) {
            continue;
        }
        w += in_ranges(wide, sizeof wide / sizeof wide[0], cp) ? 2 : 1;
    }
    return w;
}

int rdx_img_utf8_valid(const uint8_t *in, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(in + i, n - i);
        if (k == 0) {
            return 0;
        }
        i += k;
    }
    return 1;
}

rdx_status rdx_img_utf8_sanitize(const uint8_t *in, size_t n, rdx_buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(in + i, n - i);
        if (k == 0) {
            RDX_TRY(put_cp(out, REPLACEMENT));
            i++;
        } else {
            RDX_TRY(rdx_buf_append(out, in + i, k));
            i += k;
        }
    }
    return RDX_OK;
}

/* ---- iconv runs ---------------------------------------------------------- */

#define MAX_CD 6

struct decoder {
    rdx_buf *out;
    const char *names[MAX_CD];
    iconv_t cds[MAX_CD];
    size_t ncd;
    const char *run_enc; /* encoding of the pending run */
    uint8_t run[256];
    size_t run_len;
};

static iconv_t cd_for(struct decoder *d, const char *enc)
{
    for (size_t i = 0; i < d->ncd; i++) {
        if (strcmp(d->names[i], enc) == 0) {
            return d->cds[i];
        }
    }
    iconv_t cd = iconv_open("UTF-8", enc);
    if (cd == (iconv_t)-1) {
        return cd;
    }
    if (d->ncd == MAX_CD) {
        iconv_close(d->cds[0]);
        memmove(d->cds, d->cds + 1, (MAX_CD - 1) * sizeof d->cds[0]);
        memmove(d->names, d->names + 1, (MAX_CD - 1) * sizeof d->names[0]);
        d->ncd--;
    }
    d->names[d->ncd] = enc;
    d->cds[d->ncd] = cd;
    d->ncd++;
    return cd;
}

/* Convert p[0..n) from enc to UTF-8 into d->out; bad bytes become U+FFFD. */
static rdx_status iconv_lenient(struct decoder *d, const char *enc, const uint8_t *p, size_t n)
{
    iconv_t cd = cd_for(d, enc);
    if (cd == (iconv_t)-1) {
        for (size_t i = 0; i < n; i++) {
            RDX_TRY(put_cp(d->out, p[i] < 0x80 ? p[i] : REPLACEMENT));
        }
        return RDX_OK;
    }
    char *in = (char *)(uintptr_t)p;
    size_t inleft = n;
    char tmp[512];
    while (inleft > 0) {
        char *o = tmp;
        size_t oleft = sizeof tmp;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        int e = errno;
        RDX_TRY(rdx_buf_append(d->out, tmp, sizeof tmp - oleft));
        if (r == (size_t)-1 && e != E2BIG) {
            /* EILSEQ or EINVAL (cut-off sequence): replace one byte and go on. */
            RDX_TRY(put_cp(d->out, REPLACEMENT));
            in++;
            inleft--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    return RDX_OK;
}

static rdx_status flush(struct decoder *d)
{
    if (d->run_len == 0) {
        return RDX_OK;
    }
    rdx_status st = iconv_lenient(d, d->run_enc, d->run, d->run_len);
    d->run_len = 0;
    return st;
}

static rdx_status run_add(struct decoder *d, const char *enc, const uint8_t *b, size_t n)
{
    if (d->run_len > 0 && (strcmp(d->run_enc, enc) != 0 || d->run_len + n > sizeof d->run)) {
        RDX_TRY(flush(d));
    }
    d->run_enc = enc;
    memcpy(d->run + d->run_len, b, n);
    d->run_len += n;
    return RDX_OK;
}

static rdx_status emit(struct decoder *d, uint32_t cp)
{
    RDX_TRY(flush(d));
    return put_cp(d->out, cp);
}

static void decoder_close(struct decoder *d)
{
    for (size_t i = 0; i < d->ncd; i++) {
        iconv_close(d->cds[i]);
    }
    d->ncd = 0;
}

/* ---- Defined terms -------------------------------------------------------- */

/* Find the term for one value of (0008,0005); *ext is set for "ISO 2022 IR n". */
static const struct term *find_term(const char *v, size_t n, int *ext)
{
    const char *num = NULL;
    size_t numlen = 0;
    *ext = 0;
    if (n > 7 && memcmp(v, "ISO_IR ", 7) == 0) {
        num = v + 7;
        numlen = n - 7;
    } else if (n > 12 && memcmp(v, "ISO 2022 IR ", 12) == 0) {
        num = v + 12;
        numlen = n - 12;
        *ext = 1;
    } else {
        return NULL;
    }
    for (size_t i = 0; i < NTERMS; i++) {
        if (strlen(terms[i].ir) == numlen && memcmp(terms[i].ir, num, numlen) == 0) {
            return &terms[i];
        }
    }
    return NULL;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && (*s)[*n - 1] == ' ') {
        (*n)--;
    }
}

static int is_delim(uint8_t c, const char *delims)
{
    return c == '\r' || c == '\n' || c == '\f' || c == '\t' ||
           (delims != NULL && c != 0 && strchr(delims, c) != NULL);
}

static rdx_status decode_whole(struct decoder *d, const char *enc, const uint8_t *in, size_t n)
{
    if (strcmp(enc, "UTF-8") == 0) {
        return rdx_img_utf8_sanitize(in, n, d->out);
    }
    return iconv_lenient(d, enc, in, n);
}

static rdx_status decode_ext(struct decoder *d, struct gset init0, struct gset init1,
                             const uint8_t *in, size_t n, const char *delims)
{
    struct gset g0 = init0, g1 = init1;
    size_t i = 0;
    while (i < n) {
        uint8_t c = in[i];
        if (c == 0x1B) {
            size_t k;
            for (k = 0; k < NESCAPES; k++) {
                size_t sl = strlen(escapes[k].seq);
                if (i + 1 + sl <= n && memcmp(in + i + 1, escapes[k].seq, sl) == 0) {
                    break;
                }
            }
            if (k == NESCAPES) {
                RDX_TRY(emit(d, REPLACEMENT));
                i++;
                continue;
            }
            if (escapes[k].g == 0) {
                g0 = escapes[k].set;
            } else {
                g1 = escapes[k].set;
            }
            i += 1 + strlen(escapes[k].seq);
            continue;
        }
        if (c < 0x21 || c == 0x7F) {
            RDX_TRY(emit(d, c));
            if (is_delim(c, delims)) {
                g0 = init0;
                g1 = init1;
            }
            i++;
            continue;
        }
        if (c < 0x80) {
            switch (g0.kind) {
            case K_JIS_0208:
            case K_JIS_0212:
                if (i + 1 < n && in[i + 1] >= 0x21 && in[i + 1] < 0x7F) {
                    uint8_t b[3];
                    size_t bl = 0;
                    if (g0.kind == K_JIS_0212) {
                        b[bl++] = 0x8F;
                    }
                    b[bl++] = (uint8_t)(c | 0x80);
                    b[bl++] = (uint8_t)(in[i + 1] | 0x80);
                    RDX_TRY(run_add(d, "EUC-JP", b, bl));
                    i += 2;
                    continue;
                }
                /*
                 * A lone byte where a pair should be: a delimiter the writer
                 * failed to switch back for (PS3.5 6.1.2.5.3) is honoured as
                 * one; anything else is undecodable.
                 */
                if (!is_delim(c, delims)) {
                    RDX_TRY(emit(d, REPLACEMENT));
                    i++;
                    continue;
                }
                RDX_TRY(emit(d, c));
                break;
            case K_JIS_ROMAN:
                RDX_TRY(emit(d, c == 0x5C ? 0xA5u : c == 0x7E ? 0x203Eu : c));
                break;
            case K_ASCII:
            case K_NONE:
            case K_JIS_KANA:
            case K_KSX1001:
            case K_GB2312:
            case K_SB:
            default:
                RDX_TRY(emit(d, c));
                break;
            }
            if (is_delim(c, delims)) {
                g0 = init0;
                g1 = init1;
            }
            i++;
            continue;
        }
        /* c >= 0x80: the right half, G1. */
        switch (g1.kind) {
        case K_SB:
            RDX_TRY(run_add(d, g1.iconv, &c, 1));
            i++;
            break;
        case K_JIS_KANA:
            RDX_TRY(emit(d, c >= 0xA1 && c <= 0xDF ? 0xFF61u + (c - 0xA1u) : REPLACEMENT));
            i++;
            break;
        case K_KSX1001:
        case K_GB2312:
            if (i + 1 < n && in[i + 1] >= 0xA1 && in[i + 1] < 0xFF) {
                RDX_TRY(run_add(d, g1.kind == K_KSX1001 ? "EUC-KR" : "GB2312", in + i, 2));
                i += 2;
            } else {
                RDX_TRY(emit(d, REPLACEMENT));
                i++;
            }
            break;
        case K_NONE:
        case K_ASCII:
        case K_JIS_ROMAN:
        case K_JIS_0208:
        case K_JIS_0212:
        default:
            RDX_TRY(emit(d, REPLACEMENT));
            i++;
            break;
        }
    }
    return flush(d);
}

rdx_status rdx_img_charset_decode(const char *charset, const uint8_t *in, size_t n,
                                  const char *delims, rdx_buf *out)
{
    struct decoder d;
    memset(&d, 0, sizeof d);
    d.out = out;
    rdx_status st = RDX_OK;

    /* Split the (0008,0005) value into its terms. */
    const char *vals[RDX_IMG_MAX_CHARSET_TERMS];
    size_t lens[RDX_IMG_MAX_CHARSET_TERMS];
    size_t nv = 0;
    const char *cs = charset != NULL ? charset : "";
    const char *p = cs;
    for (;;) {
        const char *bs = strchr(p, '\\');
        size_t l = bs != NULL ? (size_t)(bs - p) : strlen(p);
        if (nv < RDX_IMG_MAX_CHARSET_TERMS) {
            vals[nv] = p;
            lens[nv] = l;
            trim(&vals[nv], &lens[nv]);
            nv++;
        }
        if (bs == NULL) {
            break;
        }
        p = bs + 1;
    }

    int ext = 0;
    const struct term *first = find_term(vals[0], lens[0], &ext);
    if (nv == 1 && !ext) {
        const char *v = vals[0];
        size_t l = lens[0];
        const char *enc = NULL;
        if (l == 10 && memcmp(v, "ISO_IR 192", 10) == 0) {
            enc = "UTF-8";
        } else if (l == 7 && memcmp(v, "GB18030", 7) == 0) {
            enc = "GB18030";
        } else if (l == 3 && memcmp(v, "GBK", 3) == 0) {
            enc = "GBK";
        } else if (first != NULL && first->whole != NULL) {
            enc = first->whole;
        } else if (first != NULL) {
            /* ISO_IR 13: JIS X 0201 in both halves, no escapes. */
            st = decode_ext(&d, first->g0, first->g1, in, n, delims);
            goto out;
        } else {
            /* Empty or unknown: ASCII, with other bytes read as ISO 8859-1. */
            enc = "ISO-8859-1";
        }
        st = decode_whole(&d, enc, in, n);
        goto out;
    }

    /* Code extensions (PS3.5 6.1.2.5): the first value gives the initial G0/G1. */
    struct gset g0 = {K_ASCII, NULL}, g1 = {K_NONE, NULL};
    if (first != NULL && first->g0.kind != K_NONE) {
        g0 = first->g0;
        g1 = first->g1;
    }
    st = decode_ext(&d, g0, g1, in, n, delims);
out:
    decoder_close(&d);
    return st;
}
