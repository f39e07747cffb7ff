/*
 * csv_record.c - CSV uploads behind the same record API as WFDB records.
 *
 * The file has a header row of lead names and one row per sample, one
 * column per lead, values in physical units (mV unless the caller says
 * otherwise), separated by commas; LF or CRLF line ends. A first column named
 * "time", "t", "sample" or "index" is a time stamp and is skipped (the caller
 * gives the frequency). An empty field or "NaN" is an invalid sample. Values
 * A UTF-8 byte order mark before the header row is skipped. Values
 * are turned into integer ADC units with the caller's gain (1000 adu/mV by
 * default, i.e. microvolt resolution), so the detector sees the same int32
 * frames whichever the upload's format.
 *
 * The file is streamed through a fixed buffer: opening it counts the rows
 * (so info.nsamp is known up front), reading parses them in blocks.
 */
#define _POSIX_C_SOURCE 200809L
#include "ecg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct ecg_csv {
    int fd;
    char *path;
    char *buf; /* 2 * RDX_ECG_MAX_CSV_LINE bytes */
    size_t len, pos;
    int eof;
    size_t lineno;
    size_t ncols; /* columns in the file */
    int time_col; /* first column is a time stamp */
    size_t nsig;  /* leads */
    double gain;  /* adu per physical unit */
    char **names; /* lead names (owned by the header) */
    uint64_t data_start_line;
};

void ecg_csv_free(struct ecg_csv *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->path);
    free(c->buf);
    free(c);
}

#define CSV_BUF (2u * RDX_ECG_MAX_CSV_LINE)

/* Next line (without its end) in *p, *n; returns 1, 0 at end of file, or a
 * negative status (long line, read error) with err set. */
static int next_line(struct ecg_csv *c, const char **p, size_t *n, rdx_error *err)
{
    for (;;) {
        char *s = c->buf + c->pos;
        size_t avail = c->len - c->pos;
        char *nl = memchr(s, '\n', avail);
        if (nl != NULL || (c->eof && avail > 0)) {
            size_t l = nl ? (size_t)(nl - s) : avail;
            c->pos += nl ? l + 1 : l;
            c->lineno++;
            if (l > RDX_ECG_MAX_CSV_LINE) {
                return rdx_error_set(err, RDX_ELIMIT, "%s:%zu: line longer than %u bytes", c->path,
                                     c->lineno, RDX_ECG_MAX_CSV_LINE);
            }
            if (l > 0 && s[l - 1] == '\r') {
                l--;
            }
            *p = s;
            *n = l;
            return 1;
        }
        if (c->eof) {
            return 0;
        }
        if (avail > RDX_ECG_MAX_CSV_LINE) {
            return rdx_error_set(err, RDX_ELIMIT, "%s:%zu: line longer than %u bytes", c->path,
                                 c->lineno + 1, RDX_ECG_MAX_CSV_LINE);
        }
        memmove(c->buf, s, avail);
        c->len = avail;
        c->pos = 0;
        ssize_t r = read(c->fd, c->buf + c->len, CSV_BUF - c->len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return rdx_error_set(err, RDX_EIO, "%s: read failed: %s", c->path, strerror(errno));
        }
        if (r == 0) {
            c->eof = 1;
        }
        c->len += (size_t)r;
    }
}

static int blank_line(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t') {
            return 0;
        }
    }
    return 1;
}

/* Trim blanks and one pair of double quotes. */
static void trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) {
        (*n)--;
    }
    if (*n >= 2 && (*p)[0] == '"' && (*p)[*n - 1] == '"') {
        (*p)++;
        *n -= 2;
    }
}

static int is_time_name(const char *p, size_t n)
{
    static const char *const names[] = {"time", "t", "sample", "index", "time_s", "time_ms"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) == n && strncasecmp(p, names[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

rdx_status ecg_csv_rewind(struct ecg_csv *c, rdx_error *err)
{
    if (lseek(c->fd, 0, SEEK_SET) < 0) {
        return rdx_error_set(err, RDX_EIO, "%s: cannot seek: %s", c->path, strerror(errno));
    }
    c->len = c->pos = 0;
    c->eof = 0;
    c->lineno = 0;
    const char *p;
    size_t n;
    /* Skip to the data: everything up to and including the header row. */
    while (c->lineno < c->data_start_line) {
        int r = next_line(c, &p, &n, err);
        if (r < 0) {
            return (rdx_status)r;
        }
        if (r == 0) {
            return rdx_error_set(err, RDX_ESHORT, "%s: file shrank while being read", c->path);
        }
    }
    return RDX_OK;
}

rdx_status ecg_csv_open(const char *path, const rdx_ecg_record_opts *opts, ecg_header *h,
                        struct ecg_csv **out, rdx_error *err)
{
    rdx_status st = RDX_OK;
    struct ecg_csv *c;
    const char *p;
    size_t n;
    int r;

    memset(h, 0, sizeof *h);
    *out = NULL;
    if (!(opts->csv_fs_hz > 0.0) || opts->csv_fs_hz > RDX_ECG_MAX_FS_HZ || isnan(opts->csv_fs_hz)) {
        return rdx_error_set(err, RDX_EINVAL,
                             "%s: a CSV upload needs its sampling frequency (--fs), in (0, %g] Hz",
                             path, RDX_ECG_MAX_FS_HZ);
    }
    if (opts->csv_gain < 0.0 || isnan(opts->csv_gain) || isinf(opts->csv_gain)) {
        return rdx_error_set(err, RDX_EINVAL, "%s: bad CSV gain", path);
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
    }
    c->fd = -1;
    c->gain = opts->csv_gain > 0.0 ? opts->csv_gain : 1000.0;
    c->path = rdx_strndup(path, strlen(path));
    c->buf = rdx_mallocarray(CSV_BUF, 1);
    if (c->path == NULL || c->buf == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        int e = errno;
        st = rdx_error_set(err, e == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", path, strerror(e));
        goto out;
    }
    struct stat sb;
    if (fstat(c->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = rdx_error_set(err, RDX_EINVAL, "%s: not a regular file", path);
        goto out;
    }
    /* The header row: the first line that is not blank. */
    while ((r = next_line(c, &p, &n, err)) == 1 && blank_line(p, n)) {
    }
    if (r < 0) {
        st = (rdx_status)r;
        goto out;
    }
    if (r == 0) {
        st = rdx_error_set(err, RDX_EPARSE, "%s: empty file, no header row of lead names", path);
        goto out;
    }
    c->data_start_line = c->lineno;
    /* Spreadsheet exports often begin with a UTF-8 byte order mark. */
    if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3;
        n -= 3;
    }
    /* Count and copy the lead names. */
    size_t ncols = 1;
    for (size_t i = 0; i < n; i++) {
        ncols += p[i] == ',';
    }
    if (ncols > RDX_ECG_MAX_SIGNALS + 1) {
        st = rdx_error_set(err, RDX_ELIMIT, "%s:%zu: %zu columns, more than the %u leads allowed",
                           path, c->lineno, ncols, RDX_ECG_MAX_SIGNALS);
        goto out;
    }
    c->ncols = ncols;
    h->sig = rdx_callocarray(ncols, sizeof *h->sig);
    if (h->sig == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t col = 0;
    const char *f = p;
    const char *end = p + n;
    while (col < ncols) {
        const char *comma = memchr(f, ',', (size_t)(end - f));
        const char *fe = comma ? comma : end;
        const char *name = f;
        size_t nl = (size_t)(fe - f);
        trim(&name, &nl);
        if (col == 0 && is_time_name(name, nl) && ncols > 1) {
            c->time_col = 1;
        } else {
            rdx_ecg_signal_info *s = &h->sig[h->info.nsig];
            if (nl == 0 || nl > RDX_ECG_MAX_NAME) {
                st = rdx_error_set(err, RDX_EPARSE, "%s:%zu: column %zu has %s lead name", path,
                                   c->lineno, col + 1, nl == 0 ? "no" : "too long a");
                goto out;
            }
            h->info.nsig++;
            s->description = rdx_strndup(name, nl);
            s->file_name = rdx_strndup(path, strlen(path));
            const char *u = opts->csv_units ? opts->csv_units : "mV";
            s->units = rdx_strndup(u, strlen(u));
            if (s->description == NULL || s->file_name == NULL || s->units == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            for (size_t k = 0; k < nl; k++) {
                if ((unsigned char)name[k] < 0x20) {
                    st = rdx_error_set(err, RDX_EPARSE,
                                       "%s:%zu: column %zu: control byte in the "
                                       "lead name",
                                       path, c->lineno, col + 1);
                    goto out;
                }
            }
            s->samples_per_frame = 1;
            s->gain_adu_per_unit = c->gain;
            s->calibrated = 1;
            s->adc_resolution = 32;
        }
        col++;
        f = fe + 1;
    }
    c->nsig = h->info.nsig;
    /* Count the data rows (bounded memory: one buffer). */
    uint64_t rows = 0;
    while ((r = next_line(c, &p, &n, err)) == 1) {
        rows += !blank_line(p, n);
    }
    if (r < 0) {
        st = (rdx_status)r;
        goto out;
    }
    if (rows > (uint64_t)RDX_ECG_MAX_NSAMP) {
        st = rdx_error_set(err, RDX_ELIMIT, "%s: too many rows", path);
        goto out;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t bl = strlen(base);
    h->info.name = rdx_strndup(base, bl >= 4 ? bl - 4 : bl);
    if (h->info.name == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    h->info.fs_hz = opts->csv_fs_hz;
    h->info.counter_hz = opts->csv_fs_hz;
    h->info.nsamp = rows;
    h->info.nsamp_header = rows;
    h->info.sig = h->sig;
    st = ecg_csv_rewind(c, err);
out:
    if (st != RDX_OK) {
        ecg_csv_free(c);
        ecg_header_free(h);
        return st;
    }
    *out = c;
    return RDX_OK;
}

rdx_status ecg_csv_read(struct ecg_csv *c, int32_t *frames, size_t max, size_t *got, rdx_error *err)
{
    size_t done = 0;
    const char *p;
    size_t n;
    int r = 1;
    *got = 0;
    while (done < max && (r = next_line(c, &p, &n, err)) == 1) {
        if (blank_line(p, n)) {
            continue;
        }
        const char *end = p + n;
        const char *f = p;
        int32_t *o = frames + done * c->nsig;
        size_t lead = 0;
        for (size_t col = 0; col < c->ncols; col++) {
            const char *comma = memchr(f, ',', (size_t)(end - f));
            if (comma == NULL && col + 1 < c->ncols) {
                return rdx_error_set(err, RDX_EPARSE, "%s:%zu: %zu columns, the header row has %zu",
                                     c->path, c->lineno, col + 1, c->ncols);
            }
            if (comma != NULL && col + 1 == c->ncols) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "%s:%zu: more columns than the %zu of the header row", c->path,
                                     c->lineno, c->ncols);
            }
            const char *fe = comma ? comma : end;
            const char *v = f;
            size_t vl = (size_t)(fe - f);
            f = fe + 1;
            if (col == 0 && c->time_col) {
                continue;
            }
            trim(&v, &vl);
            if (vl == 0 || (vl == 3 && strncasecmp(v, "nan", 3) == 0)) {
                o[lead++] = RDX_ECG_SAMPLE_INVALID;
                continue;
            }
            double x;
            if (rdx_parse_double(v, vl, &x) != RDX_OK) {
                return rdx_error_set(err, RDX_EPARSE, "%s:%zu: column %zu: '%.*s' is not a number",
                                     c->path, c->lineno, col + 1, (int)(vl > 32 ? 32 : vl), v);
            }
            double a = nearbyint(x * c->gain);
            if (!(a > (double)INT32_MIN && a <= (double)INT32_MAX)) {
                return rdx_error_set(err, RDX_ERANGE,
                                     "%s:%zu: column %zu: %g is out of range for gain %g", c->path,
                                     c->lineno, col + 1, x, c->gain);
            }
            o[lead++] = (int32_t)a;
        }
        done++;
    }
    if (done < max && r < 0) {
        return (rdx_status)r;
    }
    *got = done;
    return RDX_OK;
}
