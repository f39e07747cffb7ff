/*
 * wfdb_header.c - parser for WFDB header files (.hea), as specified in
 * PhysioNet's header(5) man page ("WFDB Applications Guide") and implemented
 * by readheader() in the WFDB library's signal.c.
 *
 * Record line:  name[/nseg] nsig [fs[/counter_fs[(base_counter)]] [nsamp [time [date]]]]
 * Signal line:  file format[xSPF][:skew][+offset] [gain[(baseline)][/units]
 *               [adc_res [adc_zero [initial [checksum [block_size [description]]]]]]]
 * Lines whose first non-blank character is '#' are comments and are kept;
 * blank lines are skipped; lines end in LF or CRLF.
 *
 * Unlike the WFDB library (which uses strtol/strtod and silently takes "12x"
 * as 12), every numeric field must be a number in full, and every value is
 * checked against ecg_limits.h, because headers arrive from clinics over the
 * network. Multi-segment records (name/nseg) are refused with RDX_EFORMAT.
 */
#include "ecg_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One whitespace-separated token of a line. */
typedef struct tok {
    const char *p;
    size_t n;
} tok;

typedef struct line_cur {
    const char *p;
    const char *end;
} line_cur;

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Next token; returns 0 at the end of the line (and leaves t empty). */
static int next_tok(line_cur *c, tok *t)
{
    while (c->p < c->end && is_blank(*c->p)) {
        c->p++;
    }
    t->p = c->p;
    while (c->p < c->end && !is_blank(*c->p)) {
        c->p++;
    }
    t->n = (size_t)(c->p - t->p);
    return t->n > 0;
}

int ecg_has_suffix(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Copy [p, p+n) into a new string after checking its length and bytes. */
static rdx_status dup_field(const char *p, size_t n, char **out)
{
    if (n > RDX_ECG_MAX_NAME) {
        return RDX_ELIMIT;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 && c != '\t') {
            return RDX_EPARSE; /* control bytes (NUL, ESC) have no place in a header */
        }
    }
    *out = rdx_strndup(p, n);
    return *out ? RDX_OK : RDX_ENOMEM;
}

void ecg_header_free(ecg_header *h)
{
    if (h == NULL) {
        return;
    }
    free((char *)h->info.name);
    if (h->sig) {
        for (size_t i = 0; i < h->info.nsig; i++) {
            free((char *)h->sig[i].file_name);
            free((char *)h->sig[i].units);
            free((char *)h->sig[i].description);
        }
    }
    free(h->sig);
    if (h->comments) {
        for (size_t i = 0; i < h->info.ncomments; i++) {
            free(h->comments[i]);
        }
    }
    free(h->comments);
    free(h->group_of);
    memset(h, 0, sizeof *h);
}

/* Parse a decimal integer token field in [min, max]. */
static rdx_status tok_i64(const char *p, size_t n, int64_t min, int64_t max, int64_t *out)
{
    return rdx_parse_i64(p, n, min, max, out);
}

/* Parse "HH:MM:SS[.sss]" (also "MM:SS" and "SS") into milliseconds. */
static rdx_status parse_time(const char *p, size_t n, uint32_t *ms_out)
{
    int64_t part[3] = {0, 0, 0};
    size_t nparts = 0;
    size_t i = 0;
    double frac_ms = 0.0;
    while (i <= n) {
        size_t j = i;
        while (j < n && p[j] != ':' && p[j] != '.') {
            j++;
        }
        if (nparts >= 3) {
            return RDX_EPARSE;
        }
        RDX_TRY(tok_i64(p + i, j - i, 0, 99, &part[nparts]));
        nparts++;
        if (j < n && p[j] == '.') {
            /* Fractional seconds end the field: 1 to 9 digits, nothing else
             * (no exponent that could push the value out of range). */
            size_t fl = n - j - 1;
            if (fl < 1 || fl > 9) {
                return RDX_EPARSE;
            }
            double scale = 100.0; /* the first digit is tenths: 100 ms */
            for (size_t k = j + 1; k < n; k++) {
                if (p[k] < '0' || p[k] > '9') {
                    return RDX_EPARSE;
                }
                frac_ms += (p[k] - '0') * scale;
                scale /= 10.0;
            }
            break;
        }
        if (j >= n) {
            break;
        }
        i = j + 1;
        if (i >= n) {
            return RDX_EPARSE; /* trailing ':' */
        }
    }
    int64_t h = 0, m = 0, s = 0;
    if (nparts == 3) {
        h = part[0];
        m = part[1];
        s = part[2];
    } else if (nparts == 2) {
        m = part[0];
        s = part[1];
    } else {
        s = part[0];
    }
    if (h > 23 || m > 59 || s > 60) {
        return RDX_ERANGE;
    }
    *ms_out = (uint32_t)((h * 3600 + m * 60 + s) * 1000 + (int64_t)frac_ms);
    return RDX_OK;
}

/* Parse "DD/MM/YYYY". */
static rdx_status parse_date(const char *p, size_t n, int *d, int *m, int *y)
{
    const char *s1 = memchr(p, '/', n);
    if (s1 == NULL) {
        return RDX_EPARSE;
    }
    const char *s2 = memchr(s1 + 1, '/', (size_t)(p + n - s1 - 1));
    if (s2 == NULL) {
        return RDX_EPARSE;
    }
    int64_t dd, mm, yy;
    RDX_TRY(tok_i64(p, (size_t)(s1 - p), 1, 31, &dd));
    RDX_TRY(tok_i64(s1 + 1, (size_t)(s2 - s1 - 1), 1, 12, &mm));
    RDX_TRY(tok_i64(s2 + 1, (size_t)(p + n - s2 - 1), 0, 9999, &yy));
    *d = (int)dd;
    *m = (int)mm;
    *y = (int)yy;
    return RDX_OK;
}

static const char *st_word(rdx_status st)
{
    switch (st) {
    case RDX_ERANGE:
        return "out of range";
    case RDX_ELIMIT:
        return "too long";
    default:
        return "not a number";
    }
}

/* The record line. */
static rdx_status parse_record_line(const char *p, const char *end, const char *fname,
                                    size_t lineno, ecg_header *h, rdx_error *err)
{
    line_cur c = {p, end};
    tok t;
    rdx_status st;
    int64_t v;

    next_tok(&c, &t);
    if (memchr(t.p, '/', t.n) != NULL) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%s:%zu: multi-segment record '%.*s' is not supported", fname, lineno,
                             (int)(t.n > 64 ? 64 : t.n), t.p);
    }
    st = dup_field(t.p, t.n, (char **)&h->info.name);
    if (st != RDX_OK) {
        return rdx_error_set(err, st == RDX_ENOMEM ? st : RDX_EPARSE, "%s:%zu: bad record name",
                             fname, lineno);
    }
    if (!next_tok(&c, &t)) {
        return rdx_error_set(err, RDX_EPARSE, "%s:%zu: record line has no number of signals", fname,
                             lineno);
    }
    st = tok_i64(t.p, t.n, INT64_MIN, INT64_MAX, &v);
    if (st != RDX_OK) {
        return rdx_error_set(err, RDX_EPARSE, "%s:%zu: number of signals '%.*s' is %s", fname,
                             lineno, (int)(t.n > 32 ? 32 : t.n), t.p, st_word(st));
    }
    if (v < 0) {
        return rdx_error_set(err, RDX_ERANGE, "%s:%zu: negative number of signals %lld", fname,
                             lineno, (long long)v);
    }
    if ((uint64_t)v > RDX_ECG_MAX_SIGNALS) {
        return rdx_error_set(err, RDX_ELIMIT, "%s:%zu: %lld signals is more than the %u allowed",
                             fname, lineno, (long long)v, RDX_ECG_MAX_SIGNALS);
    }
    h->info.nsig = (size_t)v;

    /* WFDB_DEFFREQ: a header without a frequency means 250 Hz. */
    h->info.fs_hz = 250.0;
    h->info.counter_hz = 0.0;
    if (next_tok(&c, &t)) {
        const char *slash = memchr(t.p, '/', t.n);
        size_t fl = slash ? (size_t)(slash - t.p) : t.n;
        double fs;
        if (rdx_parse_double(t.p, fl, &fs) != RDX_OK) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "%s:%zu: sampling frequency '%.*s' is not a number", fname, lineno,
                                 (int)(fl > 32 ? 32 : fl), t.p);
        }
        if (!(fs > 0.0) || fs > RDX_ECG_MAX_FS_HZ) {
            return rdx_error_set(err, RDX_ERANGE,
                                 "%s:%zu: sampling frequency %g Hz is outside (0, %g]", fname,
                                 lineno, fs, RDX_ECG_MAX_FS_HZ);
        }
        h->info.fs_hz = fs;
        if (slash) {
            const char *q = slash + 1;
            const char *te = t.p + t.n;
            const char *paren = memchr(q, '(', (size_t)(te - q));
            size_t cl = paren ? (size_t)(paren - q) : (size_t)(te - q);
            double cf;
            if (rdx_parse_double(q, cl, &cf) != RDX_OK || !(cf > 0.0)) {
                return rdx_error_set(err, RDX_EPARSE, "%s:%zu: bad counter frequency in '%.*s'",
                                     fname, lineno, (int)(t.n > 48 ? 48 : t.n), t.p);
            }
            h->info.counter_hz = cf;
            if (paren) {
                const char *b = paren + 1;
                if (te - b < 2 || te[-1] != ')' ||
                    rdx_parse_double(b, (size_t)(te - 1 - b), &h->info.base_counter) != RDX_OK) {
                    return rdx_error_set(err, RDX_EPARSE, "%s:%zu: bad base counter in '%.*s'",
                                         fname, lineno, (int)(t.n > 48 ? 48 : t.n), t.p);
                }
            }
        }
    }
    if (h->info.counter_hz <= 0.0) {
        h->info.counter_hz = h->info.fs_hz;
    }
    if (next_tok(&c, &t)) {
        st = tok_i64(t.p, t.n, INT64_MIN, INT64_MAX, &v);
        if (st != RDX_OK) {
            return rdx_error_set(err, RDX_EPARSE, "%s:%zu: number of samples '%.*s' is %s", fname,
                                 lineno, (int)(t.n > 32 ? 32 : t.n), t.p, st_word(st));
        }
        if (v < 0) {
            return rdx_error_set(err, RDX_ERANGE, "%s:%zu: negative number of samples %lld", fname,
                                 lineno, (long long)v);
        }
        if (v > RDX_ECG_MAX_NSAMP) {
            return rdx_error_set(err, RDX_ELIMIT,
                                 "%s:%zu: %lld samples per signal is more than the %lld allowed",
                                 fname, lineno, (long long)v, (long long)RDX_ECG_MAX_NSAMP);
        }
        h->info.nsamp_header = (uint64_t)v;
        h->info.nsamp = (uint64_t)v;
    }
    if (next_tok(&c, &t)) {
        if (parse_time(t.p, t.n, &h->info.base_time_ms) != RDX_OK) {
            return rdx_error_set(err, RDX_EPARSE, "%s:%zu: bad base time '%.*s' (want HH:MM:SS)",
                                 fname, lineno, (int)(t.n > 32 ? 32 : t.n), t.p);
        }
        h->info.has_base_time = 1;
    }
    if (next_tok(&c, &t)) {
        if (parse_date(t.p, t.n, &h->info.base_day, &h->info.base_month, &h->info.base_year) !=
            RDX_OK) {
            return rdx_error_set(err, RDX_EPARSE, "%s:%zu: bad base date '%.*s' (want DD/MM/YYYY)",
                                 fname, lineno, (int)(t.n > 32 ? 32 : t.n), t.p);
        }
        h->info.has_base_date = 1;
    }
    if (next_tok(&c, &t)) {
        return rdx_error_set(err, RDX_EPARSE, "%s:%zu: unexpected field '%.*s' on the record line",
                             fname, lineno, (int)(t.n > 32 ? 32 : t.n), t.p);
    }
    return RDX_OK;
}

/* Parse a non-negative modifier number that ends at the next modifier. */
static rdx_status modifier_num(const char **q, const char *te, int64_t max, int64_t *out)
{
    const char *s = *q;
    const char *e = s;
    while (e < te && *e >= '0' && *e <= '9') {
        e++;
    }
    if (e == s) {
        return RDX_EPARSE;
    }
    RDX_TRY(tok_i64(s, (size_t)(e - s), 0, max, out));
    *q = e;
    return RDX_OK;
}

/* "format[xSPF][:skew][+offset]" */
static rdx_status parse_format(const tok *t, rdx_ecg_signal_info *s, const char *fname,
                               size_t lineno, size_t si, rdx_error *err)
{
    const char *te = t->p + t->n;
    const char *q = t->p;
    while (q < te && *q >= '0' && *q <= '9') {
        q++;
    }
    int64_t fmt;
    if (q == t->p || tok_i64(t->p, (size_t)(q - t->p), 0, 100000, &fmt) != RDX_OK) {
        return rdx_error_set(err, RDX_EPARSE, "%s:%zu: signal %zu: bad format field '%.*s'", fname,
                             lineno, si, (int)(t->n > 32 ? 32 : t->n), t->p);
    }
    s->format = (int)fmt;
    s->samples_per_frame = 1;
    int64_t skew_samples = 0;
    unsigned seen = 0;
    while (q < te) {
        char m = *q++;
        int64_t v;
        unsigned bit = m == 'x' ? 1u : m == ':' ? 2u : m == '+' ? 4u : 0u;
        rdx_status st = RDX_EPARSE;
        if (bit != 0 && !(seen & bit)) {
            int64_t max = m == 'x'   ? (int64_t)RDX_ECG_MAX_SPF
                          : m == ':' ? (int64_t)RDX_ECG_MAX_SKEW * RDX_ECG_MAX_SPF
                                     : RDX_ECG_MAX_BYTE_OFFSET;
            st = modifier_num(&q, te, max, &v);
        }
        if (st != RDX_OK) {
            return rdx_error_set(err, st == RDX_ERANGE ? RDX_ELIMIT : RDX_EPARSE,
                                 "%s:%zu: signal %zu: %s in format field '%.*s'", fname, lineno, si,
                                 st == RDX_ERANGE ? "value over the limit" : "bad modifier",
                                 (int)(t->n > 32 ? 32 : t->n), t->p);
        }
        seen |= bit;
        if (m == 'x') {
            if (v < 1) {
                return rdx_error_set(err, RDX_ERANGE,
                                     "%s:%zu: signal %zu: samples per frame must be at least 1",
                                     fname, lineno, si);
            }
            s->samples_per_frame = (unsigned)v;
        } else if (m == ':') {
            skew_samples = v;
        } else {
            s->byte_offset = (uint64_t)v;
        }
    }
    /* As readheader(): the skew is given in samples and kept in frames. */
    s->skew_frames = (unsigned)(((double)skew_samples) / s->samples_per_frame + 0.5);
    if (s->skew_frames > RDX_ECG_MAX_SKEW) {
        return rdx_error_set(err, RDX_ELIMIT, "%s:%zu: signal %zu: skew of %u frames is over %u",
                             fname, lineno, si, s->skew_frames, RDX_ECG_MAX_SKEW);
    }
    const ecg_format *f = ecg_format_find(s->format);
    if (f == NULL) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%s:%zu: signal %zu: unknown or unsupported format %d (rdx reads 8, "
                             "16, 24, 32, 61, 80, 160, 212, 310, 311)",
                             fname, lineno, si, s->format);
    }
    s->adc_resolution = f->bits;
    return RDX_OK;
}

/* "gain[(baseline)][/units]" */
static rdx_status parse_gain(const tok *t, rdx_ecg_signal_info *s, int *has_baseline,
                             const char *fname, size_t lineno, size_t si, rdx_error *err)
{
    const char *te = t->p + t->n;
    const char *q = t->p;
    while (q < te && *q != '(' && *q != '/') {
        q++;
    }
    double g;
    if (rdx_parse_double(t->p, (size_t)(q - t->p), &g) != RDX_OK) {
        return rdx_error_set(err, RDX_EPARSE, "%s:%zu: signal %zu: bad gain field '%.*s'", fname,
                             lineno, si, (int)(t->n > 32 ? 32 : t->n), t->p);
    }
    if (g == 0.0) {
        /* WFDB_DEFGAIN: an uncalibrated signal is shown at 200 adu/mV. */
        s->gain_adu_per_unit = 200.0;
        s->calibrated = 0;
    } else {
        s->gain_adu_per_unit = g;
        s->calibrated = 1;
    }
    if (q < te && *q == '(') {
        const char *b = ++q;
        while (q < te && *q != ')') {
            q++;
        }
        int64_t bl;
        if (q == te || tok_i64(b, (size_t)(q - b), INT32_MIN, INT32_MAX, &bl) != RDX_OK) {
            return rdx_error_set(err, RDX_EPARSE, "%s:%zu: signal %zu: bad baseline in '%.*s'",
                                 fname, lineno, si, (int)(t->n > 32 ? 32 : t->n), t->p);
        }
        s->baseline_adu = (int32_t)bl;
        *has_baseline = 1;
        q++;
    }
    const char *units = "mV";
    size_t ul = 2;
    if (q < te) {
        if (*q != '/' || q + 1 == te) {
            return rdx_error_set(err, RDX_EPARSE, "%s:%zu: signal %zu: bad units in '%.*s'", fname,
                                 lineno, si, (int)(t->n > 32 ? 32 : t->n), t->p);
        }
        units = q + 1;
        ul = (size_t)(te - units);
    }
    rdx_status st = dup_field(units, ul, (char **)&s->units);
    if (st != RDX_OK) {
        return rdx_error_set(err, st == RDX_ENOMEM ? st : RDX_EPARSE,
                             "%s:%zu: signal %zu: bad units", fname, lineno, si);
    }
    return RDX_OK;
}

static rdx_status int_field(const tok *t, int64_t min, int64_t max, const char *what,
                            const char *fname, size_t lineno, size_t si, int64_t *out,
                            rdx_error *err)
{
    rdx_status st = tok_i64(t->p, t->n, min, max, out);
    if (st != RDX_OK) {
        return rdx_error_set(err, st == RDX_ERANGE ? RDX_ERANGE : RDX_EPARSE,
                             "%s:%zu: signal %zu: %s '%.*s' is %s", fname, lineno, si, what,
                             (int)(t->n > 32 ? 32 : t->n), t->p, st_word(st));
    }
    return RDX_OK;
}

static rdx_status parse_signal_line(const char *p, const char *end, const char *fname,
                                    size_t lineno, size_t si, rdx_ecg_signal_info *s,
                                    rdx_error *err)
{
    line_cur c = {p, end};
    tok t;
    rdx_status st;
    int64_t v;
    int has_baseline = 0;

    next_tok(&c, &t);
    if (memchr(t.p, '/', t.n) || memchr(t.p, '\\', t.n) || (t.n == 1 && t.p[0] == '.') ||
        (t.n == 2 && t.p[0] == '.' && t.p[1] == '.')) {
        return rdx_error_set(err, RDX_EPARSE,
                             "%s:%zu: signal %zu: signal file '%.*s' must be a plain file name "
                             "beside the header",
                             fname, lineno, si, (int)(t.n > 64 ? 64 : t.n), t.p);
    }
    if (t.n == 1 && t.p[0] == '~') {
        return rdx_error_set(err, RDX_EFORMAT, "%s:%zu: signal %zu: null signals are not supported",
                             fname, lineno, si);
    }
    st = dup_field(t.p, t.n, (char **)&s->file_name);
    if (st != RDX_OK) {
        return rdx_error_set(err, st == RDX_ENOMEM ? st : RDX_EPARSE,
                             "%s:%zu: signal %zu: bad signal file name", fname, lineno, si);
    }
    if (!next_tok(&c, &t)) {
        return rdx_error_set(err, RDX_EPARSE, "%s:%zu: signal %zu: no format field", fname, lineno,
                             si);
    }
    RDX_TRY(parse_format(&t, s, fname, lineno, si, err));
    s->gain_adu_per_unit = 200.0;
    if (next_tok(&c, &t)) {
        RDX_TRY(parse_gain(&t, s, &has_baseline, fname, lineno, si, err));
    } else {
        s->units = rdx_strndup("mV", 2);
        if (s->units == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", fname);
        }
    }
    if (next_tok(&c, &t)) {
        RDX_TRY(
            int_field(&t, 0, RDX_ECG_MAX_ADC_BITS, "ADC resolution", fname, lineno, si, &v, err));
        if (v != 0) {
            s->adc_resolution = (unsigned)v;
        }
    }
    if (next_tok(&c, &t)) {
        RDX_TRY(int_field(&t, INT32_MIN, INT32_MAX, "ADC zero", fname, lineno, si, &v, err));
        s->adc_zero = (int32_t)v;
    }
    if (!has_baseline) {
        s->baseline_adu = s->adc_zero;
    }
    s->initial_value = s->adc_zero;
    if (next_tok(&c, &t)) {
        RDX_TRY(int_field(&t, INT32_MIN, INT32_MAX, "initial value", fname, lineno, si, &v, err));
        s->initial_value = (int32_t)v;
    }
    if (next_tok(&c, &t)) {
        /* Written as a signed 16-bit number by WFDB; some writers use 0..65535. */
        RDX_TRY(int_field(&t, -32768, 65535, "checksum", fname, lineno, si, &v, err));
        s->checksum = (int32_t)(int16_t)(uint16_t)v;
        s->has_checksum = 1;
    }
    if (next_tok(&c, &t)) {
        RDX_TRY(int_field(&t, 0, 1 << 30, "block size", fname, lineno, si, &v, err));
        s->block_size = (unsigned)v;
    }
    /* The description is the rest of the line, inner blanks included. */
    while (c.p < c.end && is_blank(*c.p)) {
        c.p++;
    }
    const char *de = c.end;
    while (de > c.p && is_blank(de[-1])) {
        de--;
    }
    st = dup_field(c.p, (size_t)(de - c.p), (char **)&s->description);
    if (st != RDX_OK) {
        return rdx_error_set(err, st == RDX_ENOMEM ? st : RDX_EPARSE,
                             "%s:%zu: signal %zu: description is %s", fname, lineno, si,
                             st == RDX_ELIMIT ? "too long" : "not text");
    }
    return RDX_OK;
}

static rdx_status add_comment(ecg_header *h, const char *p, size_t n, const char *fname,
                              size_t lineno, size_t *cap, rdx_error *err)
{
    if (h->info.ncomments >= RDX_ECG_MAX_COMMENTS) {
        return rdx_error_set(err, RDX_ELIMIT, "%s:%zu: more than %u comment lines", fname, lineno,
                             RDX_ECG_MAX_COMMENTS);
    }
    if (h->info.ncomments == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char **nc = rdx_reallocarray(h->comments, ncap, sizeof *nc);
        if (nc == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", fname);
        }
        h->comments = nc;
        *cap = ncap;
    }
    char *s = rdx_strndup(p, n);
    if (s == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", fname);
    }
    h->comments[h->info.ncomments++] = s;
    return RDX_OK;
}

/* Signals that share a file form a group; they must be listed together and
 * agree on the format and block size (readheader() checks the same). */
static rdx_status make_groups(ecg_header *h, const char *fname, const size_t *linenos,
                              rdx_error *err)
{
    size_t n = h->info.nsig;
    h->group_of = rdx_mallocarray(n ? n : 1, sizeof *h->group_of);
    if (h->group_of == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", fname);
    }
    size_t g = 0;
    size_t frame = 0;
    for (size_t i = 0; i < n; i++) {
        const rdx_ecg_signal_info *s = &h->sig[i];
        if (i > 0 && strcmp(s->file_name, h->sig[i - 1].file_name) == 0) {
            const rdx_ecg_signal_info *p = &h->sig[i - 1];
            if (s->format != p->format || s->block_size != p->block_size) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "%s:%zu: signal %zu: format or block size differs from "
                                     "signal %zu, which shares file %s",
                                     fname, linenos[i], i, i - 1, s->file_name);
            }
            if (s->byte_offset != 0 && s->byte_offset != p->byte_offset) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "%s:%zu: signal %zu: byte offset differs from signal %zu, "
                                     "which shares file %s",
                                     fname, linenos[i], i, i - 1, s->file_name);
            }
            h->sig[i].byte_offset = p->byte_offset;
        } else {
            if (i > 0) {
                g++;
                frame = 0;
            }
            for (size_t k = 0; k + 1 < i; k++) {
                if (strcmp(h->sig[k].file_name, s->file_name) == 0) {
                    return rdx_error_set(err, RDX_EPARSE,
                                         "%s:%zu: signal %zu: file %s is also used by signal %zu; "
                                         "signals of one file must be listed together",
                                         fname, linenos[i], i, s->file_name, k);
                }
            }
        }
        frame += s->samples_per_frame;
        if (frame > RDX_ECG_MAX_FRAME_SAMPLES) {
            return rdx_error_set(err, RDX_ELIMIT, "%s:%zu: more than %u samples per frame in %s",
                                 fname, linenos[i], RDX_ECG_MAX_FRAME_SAMPLES, s->file_name);
        }
        h->group_of[i] = g;
    }
    h->ngroups = n ? g + 1 : 0;
    return RDX_OK;
}

rdx_status ecg_header_parse(const char *text, size_t len, const char *fname, ecg_header *h,
                            rdx_error *err)
{
    rdx_status st = RDX_OK;
    size_t lineno = 0;
    size_t nsig_seen = 0;
    int have_record = 0;
    size_t ccap = 0;
    size_t *linenos = NULL;
    const char *p = text;
    const char *end = text + len;

    memset(h, 0, sizeof *h);
    if (fname == NULL) {
        fname = "header";
    }
    if (text == NULL && len > 0) {
        return rdx_error_set(err, RDX_EINVAL, "%s: no text", fname);
    }
    if (len > RDX_ECG_MAX_HEADER_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: header is %zu bytes, more than the %u allowed",
                             fname, len, RDX_ECG_MAX_HEADER_BYTES);
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        lineno++;
        if (le > p && le[-1] == '\r') {
            le--;
        }
        if ((size_t)(le - p) > RDX_ECG_MAX_LINE) {
            st = rdx_error_set(err, RDX_ELIMIT, "%s:%zu: line is longer than %u bytes", fname,
                               lineno, RDX_ECG_MAX_LINE);
            goto out;
        }
        if (memchr(p, '\0', (size_t)(le - p)) != NULL || memchr(p, '\r', (size_t)(le - p))) {
            st = rdx_error_set(err, RDX_EPARSE, "%s:%zu: line contains a NUL or stray CR byte",
                               fname, lineno);
            goto out;
        }
        const char *q = p;
        while (q < le && is_blank(*q)) {
            q++;
        }
        if (q == le) {
            p = next;
            continue;
        }
        if (*q == '#') {
            st = add_comment(h, q + 1, (size_t)(le - q - 1), fname, lineno, &ccap, err);
            if (st != RDX_OK) {
                goto out;
            }
        } else if (!have_record) {
            st = parse_record_line(q, le, fname, lineno, h, err);
            if (st != RDX_OK) {
                goto out;
            }
            have_record = 1;
            h->sig = rdx_callocarray(h->info.nsig ? h->info.nsig : 1, sizeof *h->sig);
            linenos = rdx_callocarray(h->info.nsig ? h->info.nsig : 1, sizeof *linenos);
            if (h->sig == NULL || linenos == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", fname);
                goto out;
            }
        } else if (nsig_seen < h->info.nsig) {
            linenos[nsig_seen] = lineno;
            /* Count the signal before parsing so ecg_header_free sees its strings. */
            nsig_seen++;
            st =
                parse_signal_line(q, le, fname, lineno, nsig_seen - 1, &h->sig[nsig_seen - 1], err);
            if (st != RDX_OK) {
                goto out;
            }
        } else {
            st = rdx_error_set(err, RDX_EPARSE,
                               "%s:%zu: unexpected line after the %zu signal lines (only comments "
                               "may follow)",
                               fname, lineno, h->info.nsig);
            goto out;
        }
        p = next;
    }
    if (!have_record) {
        st = rdx_error_set(err, RDX_EPARSE, "%s: no record line", fname);
        goto out;
    }
    if (nsig_seen < h->info.nsig) {
        st = rdx_error_set(err, RDX_ESHORT, "%s:%zu: header ends after %zu of %zu signal lines",
                           fname, lineno, nsig_seen, h->info.nsig);
        goto out;
    }
    st = make_groups(h, fname, linenos, err);
    if (st != RDX_OK) {
        goto out;
    }
    h->info.sig = h->sig;
    h->info.comments = (const char *const *)h->comments;
out:
    if (st != RDX_OK) {
        /* Free exactly the signals that were started. */
        size_t nsig = h->info.nsig;
        if (h->sig) {
            h->info.nsig = nsig_seen;
        }
        ecg_header_free(h);
        (void)nsig;
    }
    free(linenos);
    return st;
}
