/*
 * wfdb_write.c - writes WFDB records in format 16 (all signals interleaved in
 * one .dat, 16-bit little-endian) with a header in the layout the WFDB
 * library's setheader() produces (CRLF line ends, "%.12g" gains, the units
 * only when they are not mV, the baseline only when it differs from the ADC
 * zero), so rdsamp, wfdbdesc, bxb and every PhysioNet tool read the result.
 *
 * Durability: samples go to a temporary file in the output directory; only
 * finish() renames it to NAME.dat, fsyncs, and then writes NAME.hea
 * atomically. A crash or error leaves no half-written record under the final
 * names.
 */
#define _POSIX_C_SOURCE 200809L
#include "ecg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WBUF_BYTES (64u * 1024u)

typedef struct wsig {
    double gain;
    int32_t baseline;
    char *units;
    unsigned adc_resolution;
    int32_t adc_zero;
    char *description;
    int32_t initial;
    uint32_t sum;
} wsig;

struct rdx_ecg_writer {
    char *dir;
    char *name;
    char *tmp_path;
    char *dat_path;
    char *hea_path;
    int fd;
    double fs_hz;
    size_t nsig;
    wsig *sig;
    char **comments;
    size_t ncomments;
    int clip;
    uint8_t *buf;
    size_t len;
    uint64_t frames;
    int finished;
    int failed;
};

static char *path_of(const char *dir, const char *name, const char *ext)
{
    size_t a = strlen(dir), b = strlen(name), c = strlen(ext), t;
    if (!rdx_add_ok(a, b, &t) || !rdx_add_ok(t, c, &t) || !rdx_add_ok(t, 2, &t)) {
        return NULL;
    }
    char *p = rdx_mallocarray(t, 1);
    if (p == NULL) {
        return NULL;
    }
    snprintf(p, t, "%s/%s%s", dir, name, ext);
    return p;
}

static char *dupstr(const char *s)
{
    return rdx_strndup(s, strlen(s));
}

static int text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t') {
            return 0;
        }
    }
    return 1;
}

void rdx_ecg_writer_free(rdx_ecg_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    if (!w->finished && w->tmp_path) {
        unlink(w->tmp_path);
    }
    if (w->sig) {
        for (size_t i = 0; i < w->nsig; i++) {
            free(w->sig[i].units);
            free(w->sig[i].description);
        }
    }
    if (w->comments) {
        for (size_t i = 0; i < w->ncomments; i++) {
            free(w->comments[i]);
        }
    }
    free(w->comments);
    free(w->sig);
    free(w->buf);
    free(w->dir);
    free(w->name);
    free(w->tmp_path);
    free(w->dat_path);
    free(w->hea_path);
    free(w);
}

static rdx_status check_cfg(const rdx_ecg_writer_cfg *c, rdx_error *err)
{
    if (c == NULL || c->dir == NULL || c->name == NULL || (c->nsig > 0 && c->sig == NULL)) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_writer_new: missing configuration");
    }
    size_t nl = strlen(c->name);
    if (nl == 0 || nl > RDX_ECG_MAX_NAME || !text_ok(c->name, RDX_ECG_MAX_NAME)) {
        return rdx_error_set(err, RDX_EINVAL, "bad record name '%.64s'", c->name);
    }
    for (size_t i = 0; i < nl; i++) {
        char ch = c->name[i];
        if (ch == '/' || ch == '\\' || ch == ' ' || ch == '\t' || ch == '#') {
            return rdx_error_set(err, RDX_EINVAL,
                                 "record name '%.64s' may not contain '/', blanks or '#'", c->name);
        }
    }
    if (!(c->fs_hz > 0.0) || c->fs_hz > RDX_ECG_MAX_FS_HZ) {
        return rdx_error_set(err, RDX_EINVAL, "%s: sampling frequency %g Hz is outside (0, %g]",
                             c->name, c->fs_hz, RDX_ECG_MAX_FS_HZ);
    }
    if (c->nsig == 0 || c->nsig > RDX_ECG_MAX_SIGNALS) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: %zu signals (1 to %u allowed)", c->name, c->nsig,
                             RDX_ECG_MAX_SIGNALS);
    }
    if (c->ncomments > RDX_ECG_MAX_COMMENTS || (c->ncomments > 0 && c->comments == NULL)) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: bad comments", c->name);
    }
    for (size_t i = 0; i < c->ncomments; i++) {
        if (c->comments[i] == NULL || !text_ok(c->comments[i], RDX_ECG_MAX_LINE - 2)) {
            return rdx_error_set(err, RDX_EINVAL, "%s: comment %zu is not one line of text",
                                 c->name, i);
        }
    }
    for (size_t s = 0; s < c->nsig; s++) {
        const rdx_ecg_signal_info *si = &c->sig[s];
        if (!(si->gain_adu_per_unit == si->gain_adu_per_unit) || si->gain_adu_per_unit == 0.0) {
            return rdx_error_set(err, RDX_EINVAL, "%s: signal %zu: gain must be nonzero", c->name,
                                 s);
        }
        const char *u = si->units ? si->units : "mV";
        const char *d = si->description ? si->description : "";
        if (!text_ok(u, RDX_ECG_MAX_NAME) || strchr(u, ' ') || strchr(u, '\t') || u[0] == '\0') {
            return rdx_error_set(err, RDX_EINVAL, "%s: signal %zu: bad units '%.32s'", c->name, s,
                                 u);
        }
        if (!text_ok(d, RDX_ECG_MAX_NAME)) {
            return rdx_error_set(err, RDX_EINVAL, "%s: signal %zu: bad description", c->name, s);
        }
        if (si->adc_resolution > 16) {
            return rdx_error_set(err, RDX_EINVAL,
                                 "%s: signal %zu: %u-bit resolution does not fit format 16",
                                 c->name, s, si->adc_resolution);
        }
    }
    return RDX_OK;
}

rdx_status rdx_ecg_writer_new(const rdx_ecg_writer_cfg *cfg, rdx_ecg_writer **out, rdx_error *err)
{
    rdx_status st;
    rdx_ecg_writer *w;
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_writer_new: NULL out");
    }
    *out = NULL;
    RDX_TRY(check_cfg(cfg, err));
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cfg->name);
    }
    w->fd = -1;
    w->fs_hz = cfg->fs_hz;
    w->nsig = cfg->nsig;
    w->clip = cfg->clip;
    w->dir = dupstr(cfg->dir);
    w->name = dupstr(cfg->name);
    w->dat_path = path_of(cfg->dir, cfg->name, ".dat");
    w->hea_path = path_of(cfg->dir, cfg->name, ".hea");
    w->tmp_path = path_of(cfg->dir, cfg->name, ".dat.tmp.XXXXXX");
    w->buf = rdx_mallocarray(WBUF_BYTES, 1);
    w->sig = rdx_callocarray(cfg->nsig, sizeof *w->sig);
    if (w->dir == NULL || w->name == NULL || w->dat_path == NULL || w->hea_path == NULL ||
        w->tmp_path == NULL || w->buf == NULL || w->sig == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cfg->name);
        goto fail;
    }
    for (size_t s = 0; s < cfg->nsig; s++) {
        const rdx_ecg_signal_info *si = &cfg->sig[s];
        wsig *o = &w->sig[s];
        o->gain = si->gain_adu_per_unit;
        o->baseline = si->baseline_adu;
        o->adc_resolution = si->adc_resolution ? si->adc_resolution : 16;
        o->adc_zero = si->adc_zero;
        o->units = dupstr(si->units ? si->units : "mV");
        o->description = dupstr(si->description ? si->description : "");
        if (o->units == NULL || o->description == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cfg->name);
            goto fail;
        }
    }
    if (cfg->ncomments > 0) {
        w->comments = rdx_callocarray(cfg->ncomments, sizeof *w->comments);
        if (w->comments == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cfg->name);
            goto fail;
        }
        for (size_t i = 0; i < cfg->ncomments; i++) {
            w->comments[i] = dupstr(cfg->comments[i]);
            w->ncomments = i + 1;
            if (w->comments[i] == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cfg->name);
                goto fail;
            }
        }
    }
    w->fd = mkstemp(w->tmp_path);
    if (w->fd < 0) {
        st = rdx_error_set(err, RDX_EIO, "%s: cannot create %s: %s", cfg->name, w->tmp_path,
                           strerror(errno));
        free(w->tmp_path);
        w->tmp_path = NULL; /* nothing to unlink */
        goto fail;
    }
    *out = w;
    return RDX_OK;
fail:
    rdx_ecg_writer_free(w);
    return st;
}

static rdx_status write_all(int fd, const uint8_t *p, size_t n, const char *path, rdx_error *err)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return rdx_error_set(err, RDX_EIO, "%s: write failed: %s", path, strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
    return RDX_OK;
}

static rdx_status flush(rdx_ecg_writer *w, rdx_error *err)
{
    rdx_status st = write_all(w->fd, w->buf, w->len, w->tmp_path, err);
    w->len = 0;
    if (st != RDX_OK) {
        w->failed = 1;
    }
    return st;
}

rdx_status rdx_ecg_writer_write(rdx_ecg_writer *w, const int32_t *frames, size_t nframes,
                                rdx_error *err)
{
    if (w == NULL || (frames == NULL && nframes > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_writer_write: NULL argument");
    }
    if (w->finished || w->failed) {
        return rdx_error_set(err, RDX_ESTATE, "%s: writer already finished or failed", w->name);
    }
    const size_t nsig = w->nsig;
    size_t total;
    if (!rdx_mul_ok(nframes, nsig, &total)) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: too many frames", w->name);
    }
    if (!w->clip) {
        for (size_t i = 0; i < total; i++) {
            int32_t v = frames[i];
            if (v != RDX_ECG_SAMPLE_INVALID && (v < -32767 || v > 32767)) {
                return rdx_error_set(
                    err, RDX_ERANGE, "%s: signal %zu, frame %llu: value %d does not fit format 16",
                    w->name, i % nsig, (unsigned long long)(w->frames + i / nsig), v);
            }
        }
    }
    for (size_t f = 0; f < nframes; f++) {
        if (w->len + 2 * nsig > WBUF_BYTES) {
            RDX_TRY(flush(w, err));
        }
        for (size_t s = 0; s < nsig; s++) {
            int32_t v = frames[f * nsig + s];
            if (v == RDX_ECG_SAMPLE_INVALID) {
                v = -32768;
            } else if (v < -32767) {
                v = -32767;
            } else if (v > 32767) {
                v = 32767;
            }
            if (w->frames == 0 && f == 0) {
                w->sig[s].initial = v;
            }
            w->sig[s].sum += (uint32_t)v;
            ecg_format_put16(w->buf + w->len, v);
            w->len += 2;
        }
    }
    w->frames += nframes;
    return RDX_OK;
}

rdx_status rdx_ecg_writer_finish(rdx_ecg_writer *w, rdx_error *err)
{
    rdx_status st;
    rdx_buf h;
    if (w == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_writer_finish: NULL writer");
    }
    if (w->finished || w->failed) {
        return rdx_error_set(err, RDX_ESTATE, "%s: writer already finished or failed", w->name);
    }
    RDX_TRY(flush(w, err));
    if (fsync(w->fd) != 0 || close(w->fd) != 0) {
        w->fd = -1;
        w->failed = 1;
        return rdx_error_set(err, RDX_EIO, "%s: %s", w->tmp_path, strerror(errno));
    }
    w->fd = -1;

    /* Build the header before publishing anything, so a failure here leaves
     * nothing behind. */
    rdx_buf_init(&h, RDX_ECG_MAX_HEADER_BYTES);
    st = rdx_buf_printf(&h, "%s %zu %.12g %llu\r\n", w->name, w->nsig, w->fs_hz,
                        (unsigned long long)w->frames);
    for (size_t s = 0; s < w->nsig && st == RDX_OK; s++) {
        const wsig *g = &w->sig[s];
        st = rdx_buf_printf(&h, "%s.dat 16 %.12g", w->name, g->gain);
        if (st == RDX_OK && g->baseline != g->adc_zero) {
            st = rdx_buf_printf(&h, "(%d)", (int)g->baseline);
        }
        if (st == RDX_OK && strcmp(g->units, "mV") != 0) {
            st = rdx_buf_printf(&h, "/%s", g->units);
        }
        if (st == RDX_OK) {
            st = rdx_buf_printf(&h, " %u %d %d %d 0", g->adc_resolution, (int)g->adc_zero,
                                (int)g->initial, (int)(int16_t)(uint16_t)(g->sum & 0xffff));
        }
        if (st == RDX_OK && g->description[0] != '\0') {
            st = rdx_buf_printf(&h, " %s", g->description);
        }
        if (st == RDX_OK) {
            st = rdx_buf_append_str(&h, "\r\n");
        }
    }
    for (size_t i = 0; i < w->ncomments && st == RDX_OK; i++) {
        st = rdx_buf_printf(&h, "#%s\r\n", w->comments[i]);
    }
    if (st != RDX_OK) {
        rdx_buf_free(&h);
        w->failed = 1;
        return rdx_error_set(err, st, "%s: cannot build the header", w->hea_path);
    }
    if (rename(w->tmp_path, w->dat_path) != 0) {
        rdx_buf_free(&h);
        w->failed = 1;
        return rdx_error_set(err, RDX_EIO, "%s: %s", w->dat_path, strerror(errno));
    }
    w->finished = 1; /* the .dat is in place; do not unlink it any more */
    st = rdx_file_write_atomic(w->hea_path, h.data, h.len, err);
    rdx_buf_free(&h);
    return st;
}
