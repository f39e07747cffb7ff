/*
 * ann.c - WFDB annotation files in MIT format (annot(5) in the WFDB
 * Applications Guide; getann()/putann() in the WFDB library's annot.c).
 *
 * The file is a sequence of 16-bit little-endian words. The top 6 bits are a
 * code A, the low 10 bits a value I. For an annotation (A <= 58), I is the
 * time since the previous annotation and A its type. A = 0 with I = 0 ends
 * the file. Pseudo-annotations follow the annotation they modify:
 *   59 SKIP  next 4 bytes: a signed 32-bit interval, high 16-bit word first,
 *            each word little-endian, added to the running time
 *   60 NUM   I is "num" for this and later annotations
 *   61 SUB   I is this annotation's subtype
 *   62 CHN   I is "chan" for this and later annotations
 *   63 AUX   I & 0xff bytes of auxiliary data follow, padded to an even count
 * SKIPs before the first annotation only advance the time (annopen()); other
 * stray pseudo-annotations there apply their sticky fields.
 */
#include "ecg_int.h"

#include <stdlib.h>
#include <string.h>

enum { CODE_SKIP = 59, CODE_NUM = 60, CODE_SUB = 61, CODE_CHN = 62, CODE_AUX = 63 };

typedef struct ann_rec {
    int64_t sample;
    uint32_t aux_off;
    uint8_t code;
    int8_t subtype;
    uint8_t chan;
    int8_t num;
    uint8_t aux_len;
} ann_rec;

struct rdx_ecg_annset {
    ann_rec *a;
    size_t n, cap;
    rdx_buf aux; /* every aux string, each followed by a NUL */
    double time_resolution;
};

rdx_status rdx_ecg_annset_new(rdx_ecg_annset **out, rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_annset_new: NULL out");
    }
    *out = calloc(1, sizeof **out);
    if (*out == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "annotations: out of memory");
    }
    /* 256 bytes per annotation at most: the cap follows from the count cap. */
    rdx_buf_init(&(*out)->aux, (size_t)RDX_ECG_MAX_ANNOTATIONS * 257u);
    return RDX_OK;
}

void rdx_ecg_annset_free(rdx_ecg_annset *set)
{
    if (set == NULL) {
        return;
    }
    free(set->a);
    rdx_buf_free(&set->aux);
    free(set);
}

size_t rdx_ecg_annset_count(const rdx_ecg_annset *set)
{
    return set ? set->n : 0;
}

double rdx_ecg_annset_time_resolution(const rdx_ecg_annset *set)
{
    return set ? set->time_resolution : 0.0;
}

rdx_status rdx_ecg_annset_get(const rdx_ecg_annset *set, size_t i, rdx_ecg_ann *out)
{
    if (set == NULL || out == NULL) {
        return RDX_EINVAL;
    }
    if (i >= set->n) {
        return RDX_ERANGE;
    }
    const ann_rec *r = &set->a[i];
    out->sample = r->sample;
    out->code = r->code;
    out->subtype = r->subtype;
    out->chan = r->chan;
    out->num = r->num;
    out->aux_len = r->aux_len;
    out->aux = r->aux_len ? set->aux.data + r->aux_off : NULL;
    return RDX_OK;
}

rdx_status rdx_ecg_annset_add(rdx_ecg_annset *set, const rdx_ecg_ann *a, rdx_error *err)
{
    if (set == NULL || a == NULL || (a->aux_len > 0 && a->aux == NULL)) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_annset_add: NULL argument");
    }
    if (a->code >= CODE_SKIP) {
        return rdx_error_set(err, RDX_EINVAL, "annotation code %u is a pseudo-annotation code",
                             (unsigned)a->code);
    }
    if (a->sample < 0) {
        return rdx_error_set(err, RDX_EINVAL, "annotation time %lld is negative",
                             (long long)a->sample);
    }
    if (set->n >= RDX_ECG_MAX_ANNOTATIONS) {
        return rdx_error_set(err, RDX_ELIMIT, "more than %u annotations", RDX_ECG_MAX_ANNOTATIONS);
    }
    if (set->n == set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 256;
        ann_rec *na = rdx_reallocarray(set->a, ncap, sizeof *na);
        if (na == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "annotations: out of memory");
        }
        set->a = na;
        set->cap = ncap;
    }
    ann_rec r = {a->sample, 0, a->code, a->subtype, a->chan, a->num, a->aux_len};
    if (a->aux_len > 0) {
        size_t off = set->aux.len;
        rdx_status st = rdx_buf_append(&set->aux, a->aux, a->aux_len);
        if (st == RDX_OK) {
            st = rdx_buf_append_u8(&set->aux, 0);
            if (st != RDX_OK) {
                set->aux.len = off;
            }
        }
        if (st != RDX_OK) {
            return rdx_error_set(err, st, "annotations: out of memory for aux data");
        }
        r.aux_off = (uint32_t)off;
    }
    set->a[set->n++] = r;
    return RDX_OK;
}

/* A NOTE at time 0 saying "## time resolution: F" (put_ann_table()). */
static void note_time_resolution(rdx_ecg_annset *set, const rdx_ecg_ann *a)
{
    static const char key[] = "## time resolution: ";
    const size_t kl = sizeof key - 1;
    if (a->sample != 0 || a->code != RDX_ECG_ANN_NOTE || a->subtype != 0 || a->aux_len <= kl ||
        memcmp(a->aux, key, kl) != 0) {
        return;
    }
    size_t n = a->aux_len - kl;
    const char *p = (const char *)a->aux + kl;
    while (n > 0 && (p[n - 1] == '\0' || p[n - 1] == ' ')) {
        n--;
    }
    double f;
    if (rdx_parse_double(p, n, &f) == RDX_OK && f > 0.0) {
        set->time_resolution = f;
    }
}

rdx_status rdx_ecg_ann_parse(const uint8_t *data, size_t len, const char *name,
                             rdx_ecg_annset **out, rdx_error *err)
{
    rdx_status st;
    rdx_ecg_annset *set = NULL;
    rdx_rd r;
    uint16_t w;
    int64_t t = 0;
    uint8_t chan = 0;
    int8_t num = 0;
    int have = 0; /* an annotation is pending (pseudo-annotations modify it) */
    rdx_ecg_ann cur;
    const uint8_t *aux = NULL;

    if (out == NULL || (data == NULL && len > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_ann_parse: NULL argument");
    }
    *out = NULL;
    if (name == NULL) {
        name = "annotations";
    }
    if (len > RDX_ECG_MAX_ANN_FILE_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: %zu bytes, more than the %u allowed", name, len,
                             RDX_ECG_MAX_ANN_FILE_BYTES);
    }
    RDX_TRY(rdx_ecg_annset_new(&set, err));
    rdx_rd_init(&r, data, len);
    memset(&cur, 0, sizeof cur);
    for (;;) {
        size_t at = r.off;
        if (rdx_rd_u16le(&r, &w) != RDX_OK) {
            st = rdx_error_set(err, RDX_ESHORT,
                               "%s: byte %zu: file ends without its end-of-file "
                               "word",
                               name, at);
            goto fail;
        }
        unsigned code = w >> 10;
        unsigned val = w & 0x3ffu;
        if (code >= CODE_SKIP || w == 0) {
            switch (code) {
            case CODE_SKIP: {
                uint16_t hi, lo;
                if (rdx_rd_u16le(&r, &hi) != RDX_OK || rdx_rd_u16le(&r, &lo) != RDX_OK) {
                    st = rdx_error_set(err, RDX_ESHORT, "%s: byte %zu: SKIP interval cut off", name,
                                       at);
                    goto fail;
                }
                t += (int32_t)((uint32_t)hi << 16 | lo);
                break;
            }
            case CODE_NUM:
                num = (int8_t)(uint8_t)val;
                if (have) {
                    cur.num = num;
                }
                break;
            case CODE_SUB:
                if (have) {
                    cur.subtype = (int8_t)(uint8_t)val;
                }
                break;
            case CODE_CHN:
                chan = (uint8_t)val;
                if (have) {
                    cur.chan = chan;
                }
                break;
            case CODE_AUX: {
                size_t n = val & 0xffu;
                const uint8_t *p;
                if (rdx_rd_view(&r, &p, n) != RDX_OK || ((n & 1) && rdx_rd_skip(&r, 1) != RDX_OK)) {
                    st = rdx_error_set(err, RDX_ESHORT,
                                       "%s: byte %zu: AUX data of %zu bytes runs past the end",
                                       name, at, n);
                    goto fail;
                }
                if (have) {
                    aux = p;
                    cur.aux_len = (uint8_t)n;
                }
                break;
            }
            default: /* w == 0: the logical end of the file */
                break;
            }
            if (w != 0) {
                continue;
            }
        }
        /* An annotation word or the end: the pending annotation is complete. */
        if (have) {
            cur.aux = cur.aux_len ? aux : NULL;
            if (cur.sample < 0) {
                st = rdx_error_set(err, RDX_ERANGE, "%s: annotation %zu has time %lld, before 0",
                                   name, rdx_ecg_annset_count(set), (long long)cur.sample);
                goto fail;
            }
            st = rdx_ecg_annset_add(set, &cur, err);
            if (st != RDX_OK) {
                rdx_error_prefix(err, "%s: byte %zu: ", name, at);
                goto fail;
            }
            note_time_resolution(set, &cur);
            have = 0;
        }
        if (w == 0) {
            break;
        }
        t += val;
        memset(&cur, 0, sizeof cur);
        cur.sample = t;
        cur.code = (uint8_t)code;
        cur.chan = chan;
        cur.num = num;
        aux = NULL;
        have = 1;
    }
    *out = set;
    return RDX_OK;
fail:
    rdx_ecg_annset_free(set);
    return st;
}

rdx_status rdx_ecg_ann_read(const char *path, rdx_ecg_annset **out, rdx_error *err)
{
    rdx_buf b;
    if (path == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_ann_read: NULL argument");
    }
    *out = NULL;
    rdx_buf_init(&b, RDX_ECG_MAX_ANN_FILE_BYTES);
    rdx_status st = rdx_file_read(path, &b, err);
    if (st == RDX_OK) {
        st = rdx_ecg_ann_parse(b.data, b.len, path, out, err);
    }
    rdx_buf_free(&b);
    return st;
}

static rdx_status put16(rdx_buf *b, unsigned w)
{
    uint8_t x[2] = {(uint8_t)(w & 0xff), (uint8_t)((w >> 8) & 0xff)};
    return rdx_buf_append(b, x, 2);
}

static rdx_status put_skip(rdx_buf *b, int64_t d)
{
    uint32_t u = (uint32_t)(int32_t)d;
    RDX_TRY(put16(b, (unsigned)CODE_SKIP << 10));
    RDX_TRY(put16(b, u >> 16));
    return put16(b, u & 0xffff);
}

rdx_status rdx_ecg_ann_encode(const rdx_ecg_annset *set, rdx_buf *out, rdx_error *err)
{
    rdx_status st = RDX_OK;
    int64_t prev_t = 0;
    uint8_t prev_chan = 0;
    int8_t prev_num = 0;
    if (set == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_ann_encode: NULL argument");
    }
    size_t start_len = out->len;
    for (size_t i = 0; i < set->n && st == RDX_OK; i++) {
        const ann_rec *a = &set->a[i];
        int64_t delta = a->sample - prev_t;
        if (delta > INT32_MAX || delta < INT32_MIN) {
            st = rdx_error_set(err, RDX_ERANGE,
                               "annotation %zu: a step of %lld samples does not fit a SKIP", i,
                               (long long)delta);
            break;
        }
        if (a->code == 0) {
            /* A word of zeros would read as the end of the file, so a null
             * annotation goes one sample late after a SKIP one short. */
            st = put_skip(out, delta - 1);
            delta = 1;
        } else if (delta > 1023 || delta < 0) {
            st = put_skip(out, delta);
            delta = 0;
        }
        if (st == RDX_OK) {
            st = put16(out, (unsigned)delta | (unsigned)a->code << 10);
        }
        if (st == RDX_OK && a->subtype != 0) {
            st = put16(out, (unsigned)CODE_SUB << 10 | ((unsigned)(int)a->subtype & 0x3ffu));
        }
        if (st == RDX_OK && a->chan != prev_chan) {
            st = put16(out, (unsigned)CODE_CHN << 10 | a->chan);
        }
        if (st == RDX_OK && a->num != prev_num) {
            st = put16(out, (unsigned)CODE_NUM << 10 | ((unsigned)(int)a->num & 0x3ffu));
        }
        if (st == RDX_OK && a->aux_len > 0) {
            st = put16(out, (unsigned)CODE_AUX << 10 | a->aux_len);
            if (st == RDX_OK) {
                st = rdx_buf_append(out, set->aux.data + a->aux_off, a->aux_len);
            }
            if (st == RDX_OK && (a->aux_len & 1)) {
                st = rdx_buf_append_u8(out, 0);
            }
        }
        prev_t = a->sample;
        prev_chan = a->chan;
        prev_num = a->num;
    }
    if (st == RDX_OK) {
        st = put16(out, 0);
    }
    if (st != RDX_OK) {
        out->len = start_len;
        if (err && err->code != st) {
            rdx_error_set(err, st, "annotations: cannot encode (%s)", rdx_strerror(st));
        }
    }
    return st;
}

rdx_status rdx_ecg_ann_write(const char *path, const rdx_ecg_annset *set, rdx_error *err)
{
    rdx_buf b;
    if (path == NULL || set == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_ann_write: NULL argument");
    }
    rdx_buf_init(&b, (size_t)RDX_ECG_MAX_ANNOTATIONS * 270u);
    rdx_status st = rdx_ecg_ann_encode(set, &b, err);
    if (st == RDX_OK) {
        st = rdx_file_write_atomic(path, b.data ? (const void *)b.data : (const void *)"", b.len,
                                   err);
    } else {
        rdx_error_prefix(err, "%s: ", path);
    }
    rdx_buf_free(&b);
    return st;
}

/* ---- The code table (WFDB's ecgcodes.h and the isqrs table of ecgmap.h) ---- */

static const char *const mnemonics[RDX_ECG_ANN_ACMAX + 1] = {
    [0] = "",   [1] = "N",  [2] = "L",  [3] = "R",  [4] = "a",   [5] = "V",  [6] = "F",  [7] = "J",
    [8] = "A",  [9] = "S",  [10] = "E", [11] = "j", [12] = "/",  [13] = "Q", [14] = "~", [16] = "|",
    [18] = "s", [19] = "T", [20] = "*", [21] = "D", [22] = "\"", [23] = "=", [24] = "p", [25] = "B",
    [26] = "^", [27] = "t", [28] = "+", [29] = "u", [30] = "?",  [31] = "!", [32] = "[", [33] = "]",
    [34] = "e", [35] = "n", [36] = "@", [37] = "x", [38] = "f",  [39] = "(", [40] = ")", [41] = "r",
};

const char *rdx_ecg_ann_mnemonic(int code)
{
    if (code < 0 || code > RDX_ECG_ANN_ACMAX || mnemonics[code] == NULL) {
        return "";
    }
    return mnemonics[code];
}

int rdx_ecg_ann_code(const char *mnemonic)
{
    if (mnemonic == NULL || mnemonic[0] == '\0') {
        return -1;
    }
    for (int c = 1; c <= RDX_ECG_ANN_ACMAX; c++) {
        if (mnemonics[c] != NULL && strcmp(mnemonics[c], mnemonic) == 0) {
            return c;
        }
    }
    return -1;
}

int rdx_ecg_ann_isqrs(int code)
{
    switch (code) {
    case RDX_ECG_ANN_NORMAL:
    case RDX_ECG_ANN_LBBB:
    case RDX_ECG_ANN_RBBB:
    case RDX_ECG_ANN_ABERR:
    case RDX_ECG_ANN_PVC:
    case RDX_ECG_ANN_FUSION:
    case RDX_ECG_ANN_NPC:
    case RDX_ECG_ANN_APC:
    case RDX_ECG_ANN_SVPB:
    case RDX_ECG_ANN_VESC:
    case RDX_ECG_ANN_NESC:
    case RDX_ECG_ANN_PACE:
    case RDX_ECG_ANN_UNKNOWN:
    case RDX_ECG_ANN_BBB:
    case RDX_ECG_ANN_LEARN:
    case RDX_ECG_ANN_FLWAV:
    case RDX_ECG_ANN_AESC:
    case RDX_ECG_ANN_SVESC:
    case RDX_ECG_ANN_PFUS:
    case RDX_ECG_ANN_RONT:
        return 1;
    default:
        return 0;
    }
}
