/*
 * lab/hl7_text.c - HL7 v2 text: escape sequences (HL7 v2.5.1 section 2.7)
 * and character-set conversion to and from UTF-8 (MSH-18, table 0211).
 *
 * Decoding first resolves escape sequences into bytes of the message's own
 * character set, then converts those bytes to UTF-8 (glibc iconv for GB
 * 18030 and the ISO 8859 parts other than 1). Encoding does the reverse.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/*
 * Resolve escape sequences of s into out (bytes still in the message's
 * character set). Section 2.7.1: \F\ \S\ \T\ \R\ \E\ stand for the
 * delimiters, \P\ for the truncation character (v2.7); 2.7.2 \H\ \N\ mark
 * highlighting (dropped from plain text); 2.7.3 \.br\ a line break; 2.7.5
 * \Xhh..\ hexadecimal data. Character-set switches (\C..\ \M..\) and local
 * escapes (\Z..\) are kept as written. An escape character without a closing
 * one is an error, as is malformed hexadecimal data.
 */
static rdx_status unescape(const rdx_lab_hl7_msg *m, const uint8_t *p, size_t n, const char *what,
                           rdx_buf *out, rdx_error *err)
{
    const uint8_t esc = (uint8_t)m->d.escape;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] != esc) {
            run += lab_mb_step(m->cs, p, run, n);
        }
        if (run > n) {
            run = n;
        }
        RDX_TRY(rdx_buf_append(out, p + i, run - i));
        if (run >= n) {
            break;
        }
        size_t j = run + 1;
        while (j < n && p[j] != esc) {
            j += lab_mb_step(m->cs, p, j, n);
        }
        if (j >= n) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "%s: unterminated escape sequence at byte %zu of the value", what,
                                 run);
        }
        const uint8_t *e = p + run + 1;
        size_t en = j - run - 1;
        rdx_status st = RDX_OK;
        if (en == 1) {
            switch (e[0]) {
            case 'F':
                st = rdx_buf_append_u8(out, (uint8_t)m->d.field);
                break;
            case 'S':
                st = rdx_buf_append_u8(out, (uint8_t)m->d.component);
                break;
            case 'T':
                st = rdx_buf_append_u8(out, (uint8_t)m->d.subcomponent);
                break;
            case 'R':
                st = rdx_buf_append_u8(out, (uint8_t)m->d.repetition);
                break;
            case 'E':
                st = rdx_buf_append_u8(out, esc);
                break;
            case 'P':
                st = m->d.truncation ? rdx_buf_append_u8(out, (uint8_t)m->d.truncation)
                                     : rdx_buf_append(out, p + run, en + 2);
                break;
            case 'H':
            case 'N':
                break;
            default:
                st = rdx_buf_append(out, p + run, en + 2);
                break;
            }
        } else if (en >= 1 && e[0] == 'X') {
            if ((en - 1) % 2 != 0 || en == 1) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "%s: \\X escape at byte %zu needs an even, non-zero number "
                                     "of hex digits",
                                     what, run);
            }
            for (size_t k = 1; k < en; k += 2) {
                int hi = hexval(e[k]), lo = hexval(e[k + 1]);
                if (hi < 0 || lo < 0) {
                    return rdx_error_set(err, RDX_EPARSE,
                                         "%s: \\X escape at byte %zu has a non-hex digit", what,
                                         run);
                }
                RDX_TRY(rdx_buf_append_u8(out, (uint8_t)(hi * 16 + lo)));
            }
        } else if (en == 3 && memcmp(e, ".br", 3) == 0) {
            st = rdx_buf_append_u8(out, '\n');
        } else if (en >= 3 && memcmp(e, ".sp", 3) == 0) {
            st = rdx_buf_append_u8(out, '\n');
        } else if (en >= 2 && e[0] == '.') {
            /* Other formatting commands (.fi .nf .in .ti .sk .ce) have no plain-text form. */
        } else {
            st = rdx_buf_append(out, p + run, en + 2);
        }
        RDX_TRY(st);
        i = j + 1;
    }
    return RDX_OK;
}

static rdx_status latin1_to_utf8(const uint8_t *p, size_t n, rdx_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) {
            RDX_TRY(rdx_buf_append_u8(out, p[i]));
        } else {
            uint8_t two[2] = {(uint8_t)(0xC0 | (p[i] >> 6)), (uint8_t)(0x80 | (p[i] & 0x3F))};
            RDX_TRY(rdx_buf_append(out, two, 2));
        }
    }
    return RDX_OK;
}

static rdx_status iconv_convert(const char *to, const char *from, const uint8_t *p, size_t n,
                                const char *what, rdx_buf *out, rdx_error *err)
{
    iconv_t cd = iconv_open(to, from);
    if (cd == (iconv_t)-1) {
        return rdx_error_set(err, RDX_EFORMAT, "%s: iconv cannot convert %s to %s", what, from, to);
    }
    rdx_status st = RDX_OK;
    char *in = (char *)(uintptr_t)p;
    size_t inleft = n;
    char chunk[512];
    while (inleft > 0) {
        char *o = chunk;
        size_t oleft = sizeof chunk;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        if (o > chunk && (st = rdx_buf_append(out, chunk, (size_t)(o - chunk))) != RDX_OK) {
            break;
        }
        if (r == (size_t)-1 && errno != E2BIG) {
            st = rdx_error_set(err, RDX_EPARSE, "%s: byte %zu is not valid %s", what, n - inleft,
                               from);
            break;
        }
    }
    iconv_close(cd);
    return st;
}

/* Convert bytes of the message's character set to UTF-8, appending to out. */
static rdx_status to_utf8(const rdx_lab_hl7_msg *m, const uint8_t *p, size_t n, const char *what,
                          rdx_buf *out, rdx_error *err)
{
    switch (m->cs) {
    case LAB_CS_DEFAULT:
        if (lab_utf8_valid(p, n)) {
            return rdx_buf_append(out, p, n);
        }
        return latin1_to_utf8(p, n, out);
    case LAB_CS_UTF8:
        if (!lab_utf8_valid(p, n)) {
            return rdx_error_set(err, RDX_EPARSE, "%s: not valid UTF-8 (MSH-18 says %s)", what,
                                 m->charset);
        }
        return rdx_buf_append(out, p, n);
    case LAB_CS_8859_1:
        return latin1_to_utf8(p, n, out);
    case LAB_CS_GB18030:
    case LAB_CS_ICONV:
        return iconv_convert("UTF-8", m->iconv_name, p, n, what, out, err);
    default:
        return rdx_error_set(err, RDX_EINTERNAL, "%s: unknown character set", what);
    }
}

rdx_status lab_hl7_decode(const rdx_lab_hl7_msg *m, lab_span s, const char *what, rdx_buf *out,
                          rdx_error *err)
{
    size_t before = out->len;
    rdx_status st = RDX_OK;
    if (s.n == 0) {
        return RDX_OK;
    }
    if (s.literal) {
        return rdx_buf_append(out, s.p, s.n);
    }
    /* Fast path: plain ASCII without escapes is its own UTF-8. */
    int plain = 1;
    for (size_t i = 0; i < s.n && plain; i++) {
        plain = s.p[i] < 0x80 && s.p[i] != (uint8_t)m->d.escape;
    }
    if (plain) {
        return rdx_buf_append(out, s.p, s.n);
    }
    rdx_buf tmp;
    rdx_buf_init(&tmp, RDX_LAB_HL7_MAX_MESSAGE);
    st = unescape(m, s.p, s.n, what, &tmp, err);
    if (st == RDX_OK && tmp.len > 0) {
        st = to_utf8(m, tmp.data, tmp.len, what, out, err);
    }
    rdx_buf_free(&tmp);
    if (st != RDX_OK) {
        if (out->data != NULL) {
            out->len = before;
            out->data[before] = '\0';
        }
        if (err != NULL && err->code == RDX_OK) {
            rdx_error_set(err, st, "%s: %s", what, rdx_strerror(st));
        }
    }
    return st;
}

/* UTF-8 to ISO 8859-1 by hand; RDX_EPARSE for a code point above U+00FF. */
static rdx_status utf8_to_latin1(const uint8_t *p, size_t n, rdx_buf *out, rdx_error *err)
{
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            RDX_TRY(rdx_buf_append_u8(out, p[i]));
            i++;
        } else if ((p[i] == 0xC2 || p[i] == 0xC3) && i + 1 < n) {
            RDX_TRY(rdx_buf_append_u8(out, (uint8_t)(((p[i] & 0x03) << 6) | (p[i + 1] & 0x3F))));
            i += 2;
        } else {
            return rdx_error_set(err, RDX_EPARSE,
                                 "text byte %zu: character not representable in 8859/1", i);
        }
    }
    return RDX_OK;
}

rdx_status rdx_lab_hl7_escape(const rdx_lab_hl7_delims *d, const char *charset, const char *s,
                              size_t n, rdx_buf *out, rdx_error *err)
{
    lab_cs cs;
    char iconv_name[24];
    size_t before = out->len;
    rdx_status st = RDX_OK;
    const uint8_t *u = (const uint8_t *)s;
    if (charset == NULL) {
        charset = "";
    }
    if (lab_cs_from_name(charset, &cs, iconv_name, sizeof iconv_name) != 0) {
        return rdx_error_set(err, RDX_EFORMAT, "unsupported character set '%s'", charset);
    }
    if (!lab_utf8_valid(u, n)) {
        return rdx_error_set(err, RDX_EPARSE, "text to escape is not valid UTF-8");
    }
    rdx_buf tmp;
    rdx_buf_init(&tmp, RDX_LAB_HL7_MAX_MESSAGE);
    switch (cs) {
    case LAB_CS_DEFAULT:
    case LAB_CS_UTF8:
        st = rdx_buf_append(&tmp, u, n);
        break;
    case LAB_CS_8859_1:
        st = utf8_to_latin1(u, n, &tmp, err);
        break;
    default:
        st = iconv_convert(iconv_name, "UTF-8", u, n, "text to escape", &tmp, err);
        break;
    }
    for (size_t i = 0; st == RDX_OK && i < tmp.len;) {
        size_t step = lab_mb_step(cs, tmp.data, i, tmp.len);
        uint8_t c = tmp.data[i];
        char rep = 0;
        if (step > 1) {
            st = rdx_buf_append(out, tmp.data + i, step);
            i += step;
            continue;
        }
        if (c == (uint8_t)d->field) {
            rep = 'F';
        } else if (c == (uint8_t)d->component) {
            rep = 'S';
        } else if (c == (uint8_t)d->subcomponent) {
            rep = 'T';
        } else if (c == (uint8_t)d->repetition) {
            rep = 'R';
        } else if (c == (uint8_t)d->escape) {
            rep = 'E';
        } else if (d->truncation && c == (uint8_t)d->truncation) {
            rep = 'P';
        }
        if (rep) {
            char e[3] = {d->escape, rep, d->escape};
            st = rdx_buf_append(out, e, 3);
        } else if (c < 0x20 || c == 0x7F) {
            st = rdx_buf_printf(out, "%cX%02X%c", d->escape, c, d->escape);
        } else {
            st = rdx_buf_append_u8(out, c);
        }
        i++;
    }
    rdx_buf_free(&tmp);
    if (st != RDX_OK && out->data != NULL) {
        out->len = before;
        out->data[before] = '\0';
    }
    return st;
}
