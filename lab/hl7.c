/*
 * lab/hl7.c - HL7 v2 ER7 parsing: segments, delimiters from MSH-1/MSH-2,
 * MSH-18 character sets, the field index, paths, and writing back.
 *
 * The message keeps a copy of its input and an index of where each segment
 * and each field starts; repetitions, components and subcomponents are found
 * on demand by scanning a field's bytes. Nothing is rewritten on parse, so
 * writing a parsed message gives back exactly the bytes it was parsed from,
 * with CR between segments (HL7 v2.5.1 section 2.5.3: "Each segment is
 * ended with an ASCII carriage return character").
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t mb_step(const rdx_lab_hl7_msg *m, const uint8_t *p, size_t i, size_t n)
{
    return lab_mb_step(m->cs, p, i, n);
}

int lab_cs_from_name(const char *name, lab_cs *cs, char *iconv_name, size_t iconv_cap)
{
    iconv_name[0] = '\0';
    if (name[0] == '\0' || strcmp(name, "ASCII") == 0) {
        *cs = LAB_CS_DEFAULT;
        return 0;
    }
    if (strcmp(name, "UNICODE UTF-8") == 0) {
        *cs = LAB_CS_UTF8;
        return 0;
    }
    if (strcmp(name, "GB 18030-2000") == 0) {
        *cs = LAB_CS_GB18030;
        snprintf(iconv_name, iconv_cap, "GB18030");
        return 0;
    }
    if (strcmp(name, "8859/1") == 0) {
        *cs = LAB_CS_8859_1;
        return 0;
    }
    /* Other parts of ISO 8859 in table 0211: 8859/2 .. 8859/9 and 8859/15. */
    if (strncmp(name, "8859/", 5) == 0) {
        int64_t part;
        if (rdx_parse_i64(name + 5, strlen(name + 5), 2, 15, &part) == RDX_OK &&
            (part <= 9 || part == 15)) {
            *cs = LAB_CS_ICONV;
            snprintf(iconv_name, iconv_cap, "ISO-8859-%d", (int)part);
            return 0;
        }
    }
    return -1;
}

int lab_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= need) {
            return 0;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += need + 1;
    }
    return 1;
}

void rdx_lab_hl7_free(rdx_lab_hl7_msg *m)
{
    if (m == NULL) {
        return;
    }
    free(m->raw);
    free(m->segs);
    free(m->fstart);
    free(m);
}

static int seg_id_ok(const uint8_t *p, size_t n, char sep)
{
    if (n < 3) {
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        int c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return 0;
        }
    }
    return n == 3 || p[3] == (uint8_t)sep;
}

static int is_header_id(const char *id)
{
    return strcmp(id, "MSH") == 0 || strcmp(id, "FHS") == 0 || strcmp(id, "BHS") == 0;
}

static int is_envelope_id(const char *id)
{
    return strcmp(id, "FHS") == 0 || strcmp(id, "BHS") == 0 || strcmp(id, "BTS") == 0 ||
           strcmp(id, "FTS") == 0;
}

/*
 * Delimiters of a header segment (MSH, FHS, BHS): the byte after the id is
 * the field separator and the next four (or five, v2.7) bytes up to the
 * next field separator the encoding characters (HL7 v2.5.1 2.5.4 and
 * 2.14.9.1-2). They must be distinct and must not be letters, digits,
 * spaces or control characters, or no field could be told from data.
 */
static rdx_status read_delims(const uint8_t *p, size_t n, rdx_lab_hl7_delims *d, size_t segno,
                              rdx_error *err)
{
    if (n < 8) {
        return rdx_error_set(err, RDX_EPARSE,
                             "segment %zu (%.3s): too short to hold MSH-1 and MSH-2", segno,
                             (const char *)p);
    }
    uint8_t enc[6] = {0};
    size_t ne = 0;
    enc[ne++] = p[3];
    for (size_t i = 4; i < n && p[i] != p[3]; i++) {
        if (ne == 6) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "segment %zu (%.3s): MSH-2 has more than 5 encoding characters",
                                 segno, (const char *)p);
        }
        enc[ne++] = p[i];
    }
    if (ne != 5 && ne != 6) {
        return rdx_error_set(err, RDX_EPARSE,
                             "segment %zu (%.3s): MSH-2 must have 4 or 5 encoding characters, "
                             "has %zu",
                             segno, (const char *)p, ne - 1);
    }
    for (size_t i = 0; i < ne; i++) {
        uint8_t c = enc[i];
        if (c <= 0x20 || c >= 0x7F || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
            (c >= 'a' && c <= 'z')) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "segment %zu (%.3s): delimiter byte 0x%02x at offset %zu is "
                                 "not a printable punctuation character",
                                 segno, (const char *)p, c, i + 3);
        }
        for (size_t j = 0; j < i; j++) {
            if (enc[j] == c) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "segment %zu (%.3s): delimiter '%c' is used twice in "
                                     "MSH-1/MSH-2",
                                     segno, (const char *)p, c);
            }
        }
    }
    d->field = (char)enc[0];
    d->component = (char)enc[1];
    d->repetition = (char)enc[2];
    d->escape = (char)enc[3];
    d->subcomponent = (char)enc[4];
    d->truncation = ne == 6 ? (char)enc[5] : 0;
    return RDX_OK;
}

static rdx_status push_u32(uint32_t **arr, size_t *n, size_t *cap, uint32_t v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        uint32_t *t = rdx_reallocarray(*arr, nc, sizeof **arr);
        if (t == NULL) {
            return RDX_ENOMEM;
        }
        *arr = t;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return RDX_OK;
}

/* Index the elements (id, fields) of segment s, checking field and repetition caps. */
static rdx_status index_segment(rdx_lab_hl7_msg *m, lab_seg *s, size_t segno, size_t *fcap,
                                rdx_error *err)
{
    const uint8_t *p = m->raw + s->off;
    size_t n = s->len;
    uint8_t fs = (uint8_t)m->d.field, rs = (uint8_t)m->d.repetition;
    int header = is_header_id(s->id);
    size_t reps = 0;
    s->field0 = (uint32_t)m->nfstart;
    s->nelem = 0;
    rdx_status st = push_u32(&m->fstart, &m->nfstart, fcap, s->off);
    if (st != RDX_OK) {
        return rdx_error_set(err, st, "out of memory indexing segment %zu", segno);
    }
    s->nelem = 1;
    size_t i = 3;
    if (header) {
        /* MSH-2 holds the encoding characters themselves; skip over them. */
        i = 4;
        if (s->nelem >= RDX_LAB_HL7_MAX_FIELDS) {
            return RDX_ELIMIT;
        }
        if ((st = push_u32(&m->fstart, &m->nfstart, fcap, (uint32_t)(s->off + 4))) != RDX_OK) {
            return rdx_error_set(err, st, "out of memory indexing segment %zu", segno);
        }
        s->nelem++;
        while (i < n && p[i] != fs) {
            i++;
        }
    }
    while (i < n) {
        uint8_t c = p[i];
        if (c == fs) {
            if (s->nelem >= RDX_LAB_HL7_MAX_FIELDS) {
                return rdx_error_set(err, RDX_ELIMIT,
                                     "segment %zu (%s): more than %u fields (lab_limits.h)", segno,
                                     s->id, RDX_LAB_HL7_MAX_FIELDS);
            }
            st = push_u32(&m->fstart, &m->nfstart, fcap, (uint32_t)(s->off + i + 1));
            if (st != RDX_OK) {
                return rdx_error_set(err, st, "out of memory indexing segment %zu", segno);
            }
            s->nelem++;
            reps = 0;
            i++;
            continue;
        }
        if (c == rs && !(header && s->nelem == 2)) {
            if (++reps >= RDX_LAB_HL7_MAX_REPETITIONS) {
                return rdx_error_set(err, RDX_ELIMIT,
                                     "segment %zu (%s) field %u: more than %u repetitions "
                                     "(lab_limits.h)",
                                     segno, s->id, header ? s->nelem : s->nelem - 1,
                                     RDX_LAB_HL7_MAX_REPETITIONS);
            }
        }
        i += mb_step(m, p, i, n);
    }
    return RDX_OK;
}

/* MSH-18's first repetition, as text, scanned before the character set is known. */
static rdx_status read_charset(rdx_lab_hl7_msg *m, rdx_error *err)
{
    lab_span f = lab_hl7_field(m, 0, 18);
    f = lab_hl7_narrow(m, f, 1, 0, 0);
    while (f.n > 0 && f.p[0] == ' ') {
        f.p++;
        f.n--;
    }
    while (f.n > 0 && f.p[f.n - 1] == ' ') {
        f.n--;
    }
    if (f.n >= sizeof m->charset) {
        return rdx_error_set(err, RDX_EFORMAT, "MSH-18: character set name too long");
    }
    memcpy(m->charset, f.p, f.n);
    m->charset[f.n] = '\0';
    if (lab_cs_from_name(m->charset, &m->cs, m->iconv_name, sizeof m->iconv_name) != 0) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "MSH-18: unsupported character set '%s' (rdx reads ASCII, "
                             "UNICODE UTF-8, GB 18030-2000 and 8859/n)",
                             m->charset);
    }
    return RDX_OK;
}

rdx_status lab_hl7_parse_mode(const void *data, size_t len, int mode, rdx_lab_hl7_msg **out,
                              rdx_error *err)
{
    rdx_status st = RDX_OK;
    rdx_lab_hl7_msg *m = NULL;
    size_t segcap = 0, fcap = 0;

    *out = NULL;
    if (data == NULL && len != 0) {
        return rdx_error_set(err, RDX_EINVAL, "no input");
    }
    if (len > RDX_LAB_HL7_MAX_MESSAGE) {
        return rdx_error_set(err, RDX_ELIMIT, "message of %zu bytes is larger than %u bytes", len,
                             RDX_LAB_HL7_MAX_MESSAGE);
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    m->envelope = mode == LAB_PARSE_ENVELOPE;
    m->raw = malloc(len + 1);
    if (m->raw == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory copying %zu bytes", len);
        goto out;
    }
    if (len > 0) {
        memcpy(m->raw, data, len);
    }
    m->raw[len] = '\0';
    m->rawlen = len;

    /* Segments: separated by CR, LF or CRLF; empty lines are skipped. */
    for (size_t i = 0; i < len;) {
        size_t start = i;
        while (i < len && m->raw[i] != '\r' && m->raw[i] != '\n') {
            i++;
        }
        size_t n = i - start;
        while (i < len && (m->raw[i] == '\r' || m->raw[i] == '\n')) {
            i++;
        }
        if (n == 0) {
            continue;
        }
        if (m->nsegs >= RDX_LAB_HL7_MAX_SEGMENTS) {
            st = rdx_error_set(err, RDX_ELIMIT, "more than %u segments (lab_limits.h)",
                               RDX_LAB_HL7_MAX_SEGMENTS);
            goto out;
        }
        if (m->nsegs == segcap) {
            size_t nc = segcap ? segcap * 2 : 32;
            lab_seg *t = rdx_reallocarray(m->segs, nc, sizeof *t);
            if (t == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                goto out;
            }
            m->segs = t;
            segcap = nc;
        }
        lab_seg *s = &m->segs[m->nsegs++];
        memset(s, 0, sizeof *s);
        s->off = (uint32_t)start;
        s->len = (uint32_t)n;
        if (n >= 3) {
            memcpy(s->id, m->raw + start, 3);
        }
    }
    if (m->nsegs == 0) {
        st = rdx_error_set(err, RDX_EPARSE, "empty message: no MSH segment");
        goto out;
    }

    /* Delimiters: from MSH (or, for an envelope, its first FHS/BHS header). */
    if (mode == LAB_PARSE_MESSAGE) {
        if (m->segs[0].len < 3 || memcmp(m->raw + m->segs[0].off, "MSH", 3) != 0) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "segment 1 at byte %u: message does not start with MSH",
                               m->segs[0].off);
            goto out;
        }
        if ((st = read_delims(m->raw, m->segs[0].len, &m->d, 1, err)) != RDX_OK) {
            goto out;
        }
    } else {
        size_t h = 0;
        while (h < m->nsegs &&
               !(strcmp(m->segs[h].id, "FHS") == 0 || strcmp(m->segs[h].id, "BHS") == 0)) {
            h++;
        }
        if (h == m->nsegs) {
            m->d = (rdx_lab_hl7_delims){'|', '^', '~', '\\', '&', 0};
        } else if ((st = read_delims(m->raw + m->segs[h].off, m->segs[h].len, &m->d, h + 1, err)) !=
                   RDX_OK) {
            goto out;
        }
    }
    for (size_t k = 0; k < m->nsegs; k++) {
        lab_seg *s = &m->segs[k];
        if (!seg_id_ok(m->raw + s->off, s->len, m->d.field)) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "segment %zu at byte %u: bad segment id (want three capital "
                               "letters or digits followed by '%c')",
                               k + 1, s->off, m->d.field);
            goto out;
        }
        if (mode == LAB_PARSE_MESSAGE && k > 0 &&
            (strcmp(s->id, "MSH") == 0 || is_envelope_id(s->id))) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "segment %zu at byte %u: %s inside a message (a file of several "
                               "messages is a batch)",
                               k + 1, s->off, s->id);
            goto out;
        }
        if (mode == LAB_PARSE_ENVELOPE && !is_envelope_id(s->id)) {
            st = rdx_error_set(err, RDX_EINTERNAL, "envelope holds a %s segment", s->id);
            goto out;
        }
        if (is_header_id(s->id) && k > 0) {
            /* A header's own MSH-1/MSH-2 must agree with the message's. */
            rdx_lab_hl7_delims d2;
            if ((st = read_delims(m->raw + s->off, s->len, &d2, k + 1, err)) != RDX_OK) {
                goto out;
            }
            if (memcmp(&d2, &m->d, sizeof d2) != 0) {
                st = rdx_error_set(err, RDX_EPARSE,
                                   "segment %zu (%s): delimiters differ from the first header",
                                   k + 1, s->id);
                goto out;
            }
        }
    }

    /*
     * MSH first, to learn MSH-18; then every segment. MSH-3..MSH-17 may hold
     * GB 18030 text whose trail bytes look like delimiters, so when MSH has
     * bytes above 0x80 it is first read as GB 18030: if that reading finds
     * MSH-18 "GB 18030-2000", it is the right one. Otherwise MSH is read
     * bytewise (ASCII, UTF-8 and ISO 8859 never hide delimiters).
     */
    if (mode == LAB_PARSE_MESSAGE) {
        int high = 0;
        for (size_t i = 0; i < m->segs[0].len && !high; i++) {
            high = m->raw[m->segs[0].off + i] >= 0x81;
        }
        int gb = 0;
        if (high) {
            m->cs = LAB_CS_GB18030;
            if ((st = index_segment(m, &m->segs[0], 1, &fcap, err)) != RDX_OK) {
                goto out;
            }
            lab_span f = lab_hl7_narrow(m, lab_hl7_field(m, 0, 18), 1, 0, 0);
            gb = f.n == 13 && memcmp(f.p, "GB 18030-2000", 13) == 0;
            m->nfstart = 0;
            m->cs = LAB_CS_DEFAULT;
        }
        if (!gb) {
            if ((st = index_segment(m, &m->segs[0], 1, &fcap, err)) != RDX_OK) {
                goto out;
            }
        } else {
            m->cs = LAB_CS_GB18030;
            if ((st = index_segment(m, &m->segs[0], 1, &fcap, err)) != RDX_OK) {
                goto out;
            }
        }
        if ((st = read_charset(m, err)) != RDX_OK) {
            goto out;
        }
        if (!gb && high && m->cs == LAB_CS_GB18030) {
            /* Bytewise MSH-18 says GB 18030, but read as GB 18030 a multi-byte
             * character swallows a delimiter before it: the header contradicts itself. */
            st = rdx_error_set(err, RDX_EPARSE,
                               "MSH: read as GB 18030 (as MSH-18 declares) a multi-byte character "
                               "before MSH-18 swallows a delimiter");
            goto out;
        }
        m->nfstart = 0;
    }
    for (size_t k = 0; k < m->nsegs; k++) {
        if ((st = index_segment(m, &m->segs[k], k + 1, &fcap, err)) != RDX_OK) {
            if (st == RDX_ELIMIT && err != NULL && err->msg[0] == '\0') {
                rdx_error_set(err, st, "segment %zu: more than %u fields", k + 1,
                              RDX_LAB_HL7_MAX_FIELDS);
            }
            goto out;
        }
    }
out:
    if (st != RDX_OK) {
        rdx_lab_hl7_free(m);
        return st;
    }
    *out = m;
    return RDX_OK;
}

rdx_status rdx_lab_hl7_parse(const void *data, size_t len, rdx_lab_hl7_msg **out, rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_lab_hl7_parse: out is NULL");
    }
    return lab_hl7_parse_mode(data, len, LAB_PARSE_MESSAGE, out, err);
}

const rdx_lab_hl7_delims *rdx_lab_hl7_delimiters(const rdx_lab_hl7_msg *m)
{
    return &m->d;
}

const char *rdx_lab_hl7_charset(const rdx_lab_hl7_msg *m)
{
    return m->charset;
}

size_t rdx_lab_hl7_segment_count(const rdx_lab_hl7_msg *m)
{
    return m->nsegs;
}

void rdx_lab_hl7_segment_id(const rdx_lab_hl7_msg *m, size_t i, char id[4])
{
    if (i >= m->nsegs) {
        id[0] = '\0';
        return;
    }
    memcpy(id, m->segs[i].id, 4);
}

size_t rdx_lab_hl7_segment_occurrences(const rdx_lab_hl7_msg *m, const char *seg_id)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nsegs; i++) {
        n += strcmp(m->segs[i].id, seg_id) == 0;
    }
    return n;
}

size_t lab_hl7_find_seg(const rdx_lab_hl7_msg *m, const char *id, size_t occ)
{
    for (size_t i = 0; i < m->nsegs; i++) {
        if (strcmp(m->segs[i].id, id) == 0 && --occ == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

lab_span lab_hl7_field(const rdx_lab_hl7_msg *m, size_t si, unsigned field)
{
    lab_span s = {NULL, 0, 0};
    const lab_seg *g = &m->segs[si];
    size_t elem;
    if (is_header_id(g->id)) {
        if (field == 1) {
            s.p = m->raw + g->off + 3;
            s.n = 1;
            s.literal = 1;
            return s;
        }
        elem = field == 0 ? 0 : field - 1;
        s.literal = field == 2;
    } else {
        elem = field;
    }
    if (elem >= g->nelem) {
        s.p = m->raw + g->off + g->len;
        return s;
    }
    size_t start = m->fstart[g->field0 + elem];
    size_t end = elem + 1 < g->nelem ? m->fstart[g->field0 + elem + 1] - 1 : g->off + g->len;
    s.p = m->raw + start;
    s.n = end - start;
    return s;
}

/* The part-th (1-based) piece of s split on delimiter c; empty when absent. */
static lab_span split_nth(const rdx_lab_hl7_msg *m, lab_span s, uint8_t c, unsigned part)
{
    size_t i = 0, start = 0;
    unsigned k = 1;
    while (i < s.n) {
        if (s.p[i] == c) {
            if (k == part) {
                break;
            }
            k++;
            start = i + 1;
            i++;
            continue;
        }
        i += mb_step(m, s.p, i, s.n);
    }
    if (k != part) {
        return (lab_span){s.p + s.n, 0, 0};
    }
    return (lab_span){s.p + start, i - start, 0};
}

lab_span lab_hl7_narrow(const rdx_lab_hl7_msg *m, lab_span s, unsigned rep, unsigned comp,
                        unsigned sub)
{
    if (s.literal) {
        return s;
    }
    if (rep > 0) {
        s = split_nth(m, s, (uint8_t)m->d.repetition, rep);
    }
    if (comp > 0) {
        s = split_nth(m, s, (uint8_t)m->d.component, comp);
    }
    if (sub > 0) {
        s = split_nth(m, s, (uint8_t)m->d.subcomponent, sub);
    }
    return s;
}

/* ---- Paths --------------------------------------------------------------- */

typedef struct lab_path {
    char seg[4];
    unsigned occ, field, rep, comp, sub;
} lab_path;

static int read_num(const char *s, size_t *i, unsigned max, unsigned *out)
{
    size_t st = *i;
    unsigned v = 0;
    while (s[*i] >= '0' && s[*i] <= '9') {
        v = v * 10 + (unsigned)(s[*i] - '0');
        if (v > max) {
            return -1;
        }
        (*i)++;
    }
    if (*i == st || v == 0) {
        return -1;
    }
    *out = v;
    return 0;
}

static rdx_status parse_path(const char *path, lab_path *p, rdx_error *err)
{
    size_t i = 0;
    memset(p, 0, sizeof *p);
    if (path == NULL || strlen(path) > RDX_LAB_HL7_MAX_PATH) {
        return rdx_error_set(err, RDX_EINVAL, "bad HL7 path (empty or too long)");
    }
    for (; i < 3; i++) {
        char c = path[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': segment id", path);
        }
        p->seg[i] = c;
    }
    p->occ = 1;
    if (path[i] == '[') {
        i++;
        if (read_num(path, &i, RDX_LAB_HL7_MAX_SEGMENTS, &p->occ) != 0 || path[i] != ']') {
            return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': segment occurrence", path);
        }
        i++;
    }
    if (path[i] != '-') {
        return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': want SEG-field", path);
    }
    i++;
    if (read_num(path, &i, RDX_LAB_HL7_MAX_FIELDS, &p->field) != 0) {
        return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': field number", path);
    }
    if (path[i] == '[') {
        i++;
        if (read_num(path, &i, RDX_LAB_HL7_MAX_REPETITIONS, &p->rep) != 0 || path[i] != ']') {
            return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': repetition", path);
        }
        i++;
    }
    if (path[i] == '.') {
        i++;
        if (read_num(path, &i, RDX_LAB_HL7_MAX_COMPONENT, &p->comp) != 0) {
            return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': component", path);
        }
        if (path[i] == '.') {
            i++;
            if (read_num(path, &i, RDX_LAB_HL7_MAX_COMPONENT, &p->sub) != 0) {
                return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': subcomponent", path);
            }
        }
    }
    if (path[i] != '\0') {
        return rdx_error_set(err, RDX_EINVAL, "bad HL7 path '%s': trailing characters", path);
    }
    return RDX_OK;
}

static rdx_status resolve(const rdx_lab_hl7_msg *m, const char *path, lab_path *lp, lab_span *out,
                          rdx_error *err)
{
    RDX_TRY(parse_path(path, lp, err));
    size_t si = lab_hl7_find_seg(m, lp->seg, lp->occ);
    if (si == SIZE_MAX) {
        return rdx_error_set(err, RDX_ENOTFOUND, "%s: message has no segment %s[%u]", path, lp->seg,
                             lp->occ);
    }
    *out = lab_hl7_field(m, si, lp->field);
    return RDX_OK;
}

rdx_status rdx_lab_hl7_get_raw(const rdx_lab_hl7_msg *m, const char *path, const uint8_t **p,
                               size_t *n, rdx_error *err)
{
    lab_path lp;
    lab_span s;
    RDX_TRY(resolve(m, path, &lp, &s, err));
    if (lp.comp > 0 && lp.rep == 0) {
        lp.rep = 1;
    }
    s = lab_hl7_narrow(m, s, lp.rep, lp.comp, lp.sub);
    *p = s.p;
    *n = s.n;
    return RDX_OK;
}

rdx_status rdx_lab_hl7_get(const rdx_lab_hl7_msg *m, const char *path, rdx_buf *out, rdx_error *err)
{
    lab_path lp;
    lab_span s;
    RDX_TRY(resolve(m, path, &lp, &s, err));
    if (!s.literal) {
        s = lab_hl7_narrow(m, s, lp.rep ? lp.rep : 1, lp.comp ? lp.comp : 1, lp.sub ? lp.sub : 1);
    }
    return lab_hl7_decode(m, s, path, out, err);
}

rdx_status rdx_lab_hl7_repetitions(const rdx_lab_hl7_msg *m, const char *path, size_t *count,
                                   rdx_error *err)
{
    lab_path lp;
    lab_span s;
    RDX_TRY(resolve(m, path, &lp, &s, err));
    if (lp.rep || lp.comp || lp.sub) {
        return rdx_error_set(err, RDX_EINVAL, "%s: repetitions are counted on a whole field", path);
    }
    if (s.n == 0) {
        *count = 0;
        return RDX_OK;
    }
    if (s.literal) {
        *count = 1;
        return RDX_OK;
    }
    size_t c = 1;
    for (size_t i = 0; i < s.n; i += mb_step(m, s.p, i, s.n)) {
        c += s.p[i] == (uint8_t)m->d.repetition;
    }
    *count = c;
    return RDX_OK;
}

rdx_status lab_hl7_dup(const rdx_lab_hl7_msg *m, size_t si, unsigned field, unsigned rep,
                       unsigned comp, unsigned sub, char **out, rdx_error *err)
{
    rdx_buf b;
    char what[32];
    lab_span s = lab_hl7_field(m, si, field);
    s = lab_hl7_narrow(m, s, rep, comp, sub);
    snprintf(what, sizeof what, "%s-%u", m->segs[si].id, field);
    rdx_buf_init(&b, RDX_LAB_HL7_MAX_VALUE);
    rdx_status st = lab_hl7_decode(m, s, what, &b, err);
    if (st != RDX_OK) {
        rdx_buf_free(&b);
        return st;
    }
    if (b.data == NULL) {
        *out = rdx_strndup("", 0);
        return *out != NULL ? RDX_OK : rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    *out = (char *)rdx_buf_take(&b, NULL);
    return RDX_OK;
}

/* ---- Writing ------------------------------------------------------------- */

rdx_status rdx_lab_hl7_write(const rdx_lab_hl7_msg *m, rdx_buf *out)
{
    size_t total = 0;
    for (size_t i = 0; i < m->nsegs; i++) {
        total += m->segs[i].len + 1u;
    }
    size_t before = out->len;
    RDX_TRY(rdx_buf_reserve(out, total));
    for (size_t i = 0; i < m->nsegs; i++) {
        rdx_status st = rdx_buf_append(out, m->raw + m->segs[i].off, m->segs[i].len);
        if (st == RDX_OK) {
            st = rdx_buf_append_u8(out, '\r');
        }
        if (st != RDX_OK) {
            out->len = before;
            out->data[before] = '\0';
            return st;
        }
    }
    return RDX_OK;
}
