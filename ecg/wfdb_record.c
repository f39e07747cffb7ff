/*
 * wfdb_record.c - the streaming record reader behind rdx_ecg_record_*: opens
 * a WFDB record (header plus one or more signal files) or a CSV upload, and
 * delivers frame-interleaved samples in blocks of any size.
 *
 * Memory is bounded by RDX_ECG_READ_BUF_BYTES per signal file plus
 * RDX_ECG_READ_CHUNK_FRAMES (+ the largest skew) frames, whatever the
 * record's length: a 24-hour Holter streams through the same buffers as a
 * 10-second resting ECG. In the common case (one signal file, one sample per
 * frame per signal, no skew) samples are decoded straight into the caller's
 * buffer from a reused byte buffer.
 *
 * Checksums: as the WFDB library's getskewedframe(), the 16-bit sum of every
 * sample of a signal over the header's nsamp frames must equal the header's
 * checksum; it is verified when a read reaches the end of a record that was
 * read from frame 0 without seeking.
 */
#define _POSIX_C_SOURCE 200809L
#include "ecg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One signal file and the signals stored in it. */
typedef struct group {
    int fd;
    char *path;
    const ecg_format *fmt;
    size_t first;         /* index of the group's first signal */
    size_t nsig;          /* signals in the group */
    size_t frame_samples; /* samples per frame over the group's signals */
    uint64_t byte_offset;
    uint64_t frames_in_file;
    uint8_t *buf; /* raw bytes read from the file; [pos, len) not yet decoded */
    size_t len, pos;
    int32_t carry[3]; /* decoded samples of a unit not yet handed out */
    size_t ncarry, carry_pos;
    uint64_t samples_done; /* samples handed out since sample 0 */
    int32_t *stream;       /* RDX_ECG_READ_CHUNK_FRAMES * frame_samples decoded samples */
    size_t *slot_sig;      /* frame slot -> signal index (for format 8 and scattering) */
    int32_t *acc;          /* format 8: running value per signal of the group */
} group;

struct rdx_ecg_record {
    ecg_header h;
    rdx_ecg_record_opts opts;
    char *hea_path;
    group *g;
    size_t ngroups;
    uint64_t pos; /* next frame delivered */
    int fast;     /* one group, spf 1 everywhere, no skew: decode into the caller's buffer */
    unsigned max_skew;
    int32_t *raw;   /* deskewing buffer: raw frames [raw_start, raw_start + raw_count) */
    size_t raw_cap; /* frames */
    size_t raw_count;
    uint64_t raw_start;
    uint64_t raw_next; /* next raw frame to decode */
    uint32_t *sum;     /* per-signal running checksum */
    int cksum_active;  /* read sequentially from frame 0 with checksums to verify */
    int cksum_checked;
    int32_t *ibuf; /* RDX_ECG_READ_CHUNK_FRAMES frames for read_phys */
    double *phys;  /* per signal: baseline, then 1 / gain (read_phys multiplies) */
    struct ecg_csv *csv;
};

static char *join_path(const char *dir, size_t dirlen, const char *name)
{
    size_t nl = strlen(name);
    size_t total;
    if (!rdx_add_ok(dirlen, nl, &total) || !rdx_add_ok(total, 2, &total)) {
        return NULL;
    }
    char *p = rdx_mallocarray(total, 1);
    if (p == NULL) {
        return NULL;
    }
    size_t o = 0;
    if (dirlen > 0) {
        memcpy(p, dir, dirlen);
        o = dirlen;
        if (dir[dirlen - 1] != '/') {
            p[o++] = '/';
        }
    }
    memcpy(p + o, name, nl);
    p[o + nl] = '\0';
    return p;
}

rdx_status rdx_ecg_record_split_path(const char *path, char *dir, size_t dirsz, char *name,
                                     size_t namesz)
{
    if (path == NULL || dir == NULL || name == NULL) {
        return RDX_EINVAL;
    }
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t bl = (size_t)(path + n - base);
    if (ecg_has_suffix(base, bl, ".hea") || ecg_has_suffix(base, bl, ".csv")) {
        bl -= 4;
    }
    if (bl == 0) {
        return RDX_EINVAL;
    }
    size_t dl = slash ? (size_t)(slash - path) : 0;
    const char *d = path;
    if (slash == NULL) {
        d = ".";
        dl = 1;
    } else if (dl == 0) {
        d = "/";
        dl = 1;
    }
    if (dl + 1 > dirsz || bl + 1 > namesz) {
        return RDX_EINVAL;
    }
    memcpy(dir, d, dl);
    dir[dl] = '\0';
    memcpy(name, base, bl);
    name[bl] = '\0';
    return RDX_OK;
}

static void group_release(group *g)
{
    if (g->fd >= 0) {
        close(g->fd);
    }
    free(g->path);
    free(g->buf);
    free(g->stream);
    free(g->slot_sig);
    free(g->acc);
}

void rdx_ecg_record_free(rdx_ecg_record *rec)
{
    if (rec == NULL) {
        return;
    }
    if (rec->g) {
        for (size_t i = 0; i < rec->ngroups; i++) {
            group_release(&rec->g[i]);
        }
    }
    free(rec->g);
    free(rec->raw);
    free(rec->sum);
    free(rec->ibuf);
    free(rec->phys);
    free(rec->hea_path);
    ecg_csv_free(rec->csv);
    ecg_header_free(&rec->h);
    free(rec);
}

const rdx_ecg_record_info *rdx_ecg_record_info_get(const rdx_ecg_record *rec)
{
    return rec ? &rec->h.info : NULL;
}

uint64_t rdx_ecg_record_tell(const rdx_ecg_record *rec)
{
    return rec ? rec->pos : 0;
}

/* Reset a group to sample 0 of its file. */
static rdx_status group_rewind(rdx_ecg_record *rec, group *g, rdx_error *err)
{
    if (lseek(g->fd, (off_t)g->byte_offset, SEEK_SET) < 0) {
        return rdx_error_set(err, RDX_EIO, "%s: cannot seek: %s", g->path, strerror(errno));
    }
    g->len = g->pos = 0;
    g->ncarry = g->carry_pos = 0;
    g->samples_done = 0;
    if (g->acc) {
        for (size_t i = 0; i < g->nsig; i++) {
            g->acc[i] = rec->h.sig[g->first + i].initial_value;
        }
    }
    return RDX_OK;
}

/* Read more bytes so that at least one whole unit is buffered, unless the
 * file ends first. Returns the bytes now buffered. */
static rdx_status group_refill(group *g, rdx_error *err)
{
    size_t left = g->len - g->pos;
    if (left > 0 && g->pos > 0) {
        memmove(g->buf, g->buf + g->pos, left);
    }
    g->len = left;
    g->pos = 0;
    while (g->len < g->fmt->unit_bytes) {
        ssize_t r = read(g->fd, g->buf + g->len, RDX_ECG_READ_BUF_BYTES - g->len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return rdx_error_set(err, RDX_EIO, "%s: read failed: %s", g->path, strerror(errno));
        }
        if (r == 0) {
            break;
        }
        g->len += (size_t)r;
    }
    return RDX_OK;
}

/* Hand out the next n samples of the group's sample stream into out. */
static rdx_status group_fill(group *g, int32_t *out, size_t n, rdx_error *err)
{
    const ecg_format *f = g->fmt;
    size_t done = 0;
    while (done < n && g->ncarry > 0) {
        out[done++] = g->carry[g->carry_pos++];
        g->ncarry--;
    }
    while (done < n) {
        size_t avail = g->len - g->pos;
        if (avail < f->unit_bytes) {
            RDX_TRY(group_refill(g, err));
            avail = g->len;
            if (avail < f->unit_bytes) {
                size_t t = ecg_format_decode_tail(f, g->buf, avail, g->carry);
                g->pos = g->len;
                if (t == 0) {
                    uint64_t at = g->samples_done + done;
                    return rdx_error_set(
                        err, RDX_ESHORT,
                        "%s: file ends at sample %llu of its stream (frame %llu), before the "
                        "header's end",
                        g->path, (unsigned long long)at,
                        (unsigned long long)(at / g->frame_samples));
                }
                g->ncarry = t;
                g->carry_pos = 0;
                while (done < n && g->ncarry > 0) {
                    out[done++] = g->carry[g->carry_pos++];
                    g->ncarry--;
                }
                continue;
            }
        }
        size_t want_units = (n - done) / f->unit_samples;
        size_t have_units = avail / f->unit_bytes;
        size_t u = want_units < have_units ? want_units : have_units;
        if (u > 0) {
            ecg_format_decode(f, g->buf + g->pos, u, out + done);
            g->pos += u * f->unit_bytes;
            done += u * f->unit_samples;
            continue;
        }
        /* Fewer samples wanted than one unit holds: keep the rest for later. */
        ecg_format_decode(f, g->buf + g->pos, 1, g->carry);
        g->pos += f->unit_bytes;
        g->ncarry = f->unit_samples;
        g->carry_pos = 0;
        while (done < n && g->ncarry > 0) {
            out[done++] = g->carry[g->carry_pos++];
            g->ncarry--;
        }
    }
    g->samples_done += n;
    return RDX_OK;
}

/* Post-process nf frames of a group's decoded stream s (frame_samples per
 * frame): first differences, checksums, the invalid code. */
static void group_fixup(rdx_ecg_record *rec, group *g, int32_t *s, size_t nf)
{
    const size_t fsm = g->frame_samples;
    const int32_t inval = g->fmt->invalid_raw;
    const int has_inval = !g->fmt->differences;
    uint32_t *sum = rec->sum;
    if (g->acc) {
        for (size_t f = 0; f < nf; f++) {
            int32_t *v = s + f * fsm;
            for (size_t k = 0; k < fsm; k++) {
                size_t si = g->slot_sig[k];
                /* Unsigned arithmetic: a hostile file may run the sum off int32. */
                g->acc[si - g->first] = (int32_t)((uint32_t)g->acc[si - g->first] + (uint32_t)v[k]);
                v[k] = g->acc[si - g->first];
                sum[si] += (uint32_t)v[k];
            }
        }
        return;
    }
    if (fsm == 2 && g->nsig == 2) {
        /* The MIT-BIH layout: the hot path, kept simple for the vectoriser. */
        uint32_t s0 = 0, s1 = 0;
        const size_t a = g->first, b = g->first + 1;
        for (size_t f = 0; f < nf; f++) {
            int32_t v0 = s[2 * f], v1 = s[2 * f + 1];
            s0 += (uint32_t)v0;
            s1 += (uint32_t)v1;
            s[2 * f] = v0 == inval ? RDX_ECG_SAMPLE_INVALID : v0;
            s[2 * f + 1] = v1 == inval ? RDX_ECG_SAMPLE_INVALID : v1;
        }
        sum[a] += s0;
        sum[b] += s1;
        return;
    }
    for (size_t f = 0; f < nf; f++) {
        int32_t *v = s + f * fsm;
        for (size_t k = 0; k < fsm; k++) {
            sum[g->slot_sig[k]] += (uint32_t)v[k];
            if (has_inval && v[k] == inval) {
                v[k] = RDX_ECG_SAMPLE_INVALID;
            }
        }
    }
}

/* Decode nf raw (not deskewed) frames into dst (nf * nsig values). */
static rdx_status decode_raw(rdx_ecg_record *rec, int32_t *dst, size_t nf, rdx_error *err)
{
    const size_t nsig = rec->h.info.nsig;
    if (rec->fast) {
        group *g = &rec->g[0];
        RDX_TRY(group_fill(g, dst, nf * nsig, err));
        group_fixup(rec, g, dst, nf);
        rec->raw_next += nf;
        return RDX_OK;
    }
    size_t done = 0;
    while (done < nf) {
        size_t c = nf - done;
        if (c > RDX_ECG_READ_CHUNK_FRAMES) {
            c = RDX_ECG_READ_CHUNK_FRAMES;
        }
        int32_t *out = dst + done * nsig;
        for (size_t gi = 0; gi < rec->ngroups; gi++) {
            group *g = &rec->g[gi];
            RDX_TRY(group_fill(g, g->stream, c * g->frame_samples, err));
            group_fixup(rec, g, g->stream, c);
            for (size_t f = 0; f < c; f++) {
                const int32_t *src = g->stream + f * g->frame_samples;
                int32_t *o = out + f * nsig + g->first;
                for (size_t k = 0; k < g->nsig; k++) {
                    unsigned spf = rec->h.sig[g->first + k].samples_per_frame;
                    if (spf == 1) {
                        o[k] = *src++;
                        continue;
                    }
                    /* As getvec() in WFDB_LOWRES mode: the frame's mean, or
                     * invalid when any of its samples is. */
                    int64_t acc = 0;
                    int bad = 0;
                    for (unsigned j = 0; j < spf; j++) {
                        bad |= src[j] == RDX_ECG_SAMPLE_INVALID;
                        acc += src[j];
                    }
                    src += spf;
                    o[k] = bad ? RDX_ECG_SAMPLE_INVALID : (int32_t)(acc / (int64_t)spf);
                }
            }
        }
        done += c;
        rec->raw_next += c;
    }
    return RDX_OK;
}

static rdx_status verify_checksums(rdx_ecg_record *rec, rdx_error *err)
{
    rec->cksum_checked = 1;
    for (size_t s = 0; s < rec->h.info.nsig; s++) {
        const rdx_ecg_signal_info *si = &rec->h.sig[s];
        if (!si->has_checksum) {
            continue;
        }
        uint16_t want = (uint16_t)si->checksum;
        uint16_t got = (uint16_t)(rec->sum[s] & 0xffff);
        if (want != got) {
            group *g = &rec->g[rec->h.group_of[s]];
            return rdx_error_set(err, RDX_ECHECKSUM,
                                 "%s: signal %zu (%s): checksum mismatch: the header says %d, the "
                                 "samples sum to %d",
                                 g->path, s, si->description[0] ? si->description : "unnamed",
                                 (int)(int16_t)want, (int)(int16_t)got);
        }
    }
    return RDX_OK;
}

static rdx_status read_skewed(rdx_ecg_record *rec, int32_t *frames, size_t n, rdx_error *err)
{
    const size_t nsig = rec->h.info.nsig;
    const uint64_t nsamp = rec->h.info.nsamp;
    size_t done = 0;
    while (done < n) {
        size_t c = n - done;
        if (c > RDX_ECG_READ_CHUNK_FRAMES) {
            c = RDX_ECG_READ_CHUNK_FRAMES;
        }
        /* Raw frames needed: up to pos + c + max_skew, never past the end. */
        uint64_t need_end = rec->pos + c + rec->max_skew;
        if (need_end > nsamp) {
            need_end = nsamp;
        }
        if (rec->raw_next < need_end) {
            size_t more = (size_t)(need_end - rec->raw_next);
            RDX_TRY(decode_raw(rec, rec->raw + rec->raw_count * nsig, more, err));
            rec->raw_count += more;
        }
        for (size_t i = 0; i < c; i++) {
            int32_t *o = frames + (done + i) * nsig;
            for (size_t s = 0; s < nsig; s++) {
                uint64_t j = i + rec->h.sig[s].skew_frames;
                o[s] = rec->pos + j < nsamp ? rec->raw[j * nsig + s] : RDX_ECG_SAMPLE_INVALID;
            }
        }
        size_t drop = c < rec->raw_count ? c : rec->raw_count;
        memmove(rec->raw, rec->raw + drop * nsig, (rec->raw_count - drop) * nsig * sizeof(int32_t));
        rec->raw_count -= drop;
        rec->raw_start += drop;
        rec->pos += c;
        done += c;
    }
    return RDX_OK;
}

rdx_status rdx_ecg_record_read(rdx_ecg_record *rec, int32_t *frames, size_t max_frames, size_t *got,
                               rdx_error *err)
{
    if (got) {
        *got = 0;
    }
    if (rec == NULL || got == NULL || frames == NULL || max_frames == 0) {
        return rdx_error_set(err, RDX_EINVAL,
                             "rdx_ecg_record_read: NULL argument or no room for a frame");
    }
    if (rec->opts.header_only) {
        return rdx_error_set(err, RDX_ESTATE, "%s: opened for its header only", rec->hea_path);
    }
    if (rec->csv) {
        rdx_status st = ecg_csv_read(rec->csv, frames, max_frames, got, err);
        rec->pos += *got;
        return st;
    }
    uint64_t left = rec->h.info.nsamp - rec->pos;
    size_t n = left < max_frames ? (size_t)left : max_frames;
    if (n > 0) {
        rdx_status st;
        if (rec->max_skew == 0) {
            st = decode_raw(rec, frames, n, err);
            if (st == RDX_OK) {
                rec->pos += n;
                rec->raw_start = rec->pos;
            }
        } else {
            st = read_skewed(rec, frames, n, err);
        }
        if (st != RDX_OK) {
            return st;
        }
        *got = n;
    }
    if (rec->pos == rec->h.info.nsamp && rec->cksum_active && !rec->cksum_checked) {
        return verify_checksums(rec, err);
    }
    return RDX_OK;
}

rdx_status rdx_ecg_record_read_phys(rdx_ecg_record *rec, float *frames, size_t max_frames,
                                    size_t *got, rdx_error *err)
{
    if (got) {
        *got = 0;
    }
    if (rec == NULL || got == NULL || frames == NULL || max_frames == 0) {
        return rdx_error_set(err, RDX_EINVAL,
                             "rdx_ecg_record_read_phys: NULL argument or no room for a frame");
    }
    const size_t nsig = rec->h.info.nsig;
    size_t done = 0;
    rdx_status st = RDX_OK;
    while (done < max_frames) {
        size_t c = max_frames - done;
        size_t g = 0;
        if (c > RDX_ECG_READ_CHUNK_FRAMES) {
            c = RDX_ECG_READ_CHUNK_FRAMES;
        }
        st = rdx_ecg_record_read(rec, rec->ibuf, c, &g, err);
        /* Signal by signal: the baseline and the reciprocal gain stay in
         * registers, one multiply per sample and no division. */
        for (size_t s = 0; s < nsig; s++) {
            const double base = rec->phys[2 * s], inv = rec->phys[2 * s + 1];
            const int32_t *in = rec->ibuf + s;
            float *o = frames + done * nsig + s;
            for (size_t f = 0; f < g; f++) {
                int32_t v = in[f * nsig];
                o[f * nsig] = v == RDX_ECG_SAMPLE_INVALID ? NAN : (float)(((double)v - base) * inv);
            }
        }
        done += g;
        if (st != RDX_OK || g == 0) {
            break;
        }
    }
    *got = done;
    return st;
}

/* Position one group at frame `frame` of its file. */
static rdx_status group_seek(rdx_ecg_record *rec, group *g, uint64_t frame, rdx_error *err)
{
    const ecg_format *f = g->fmt;
    uint64_t sample = frame * g->frame_samples;
    uint64_t skip;
    RDX_TRY(group_rewind(rec, g, err));
    if (f->differences) {
        skip = sample; /* every difference before the target must be summed */
    } else {
        uint64_t unit = sample / f->unit_samples;
        uint64_t byte = g->byte_offset + unit * f->unit_bytes;
        if (lseek(g->fd, (off_t)byte, SEEK_SET) < 0) {
            return rdx_error_set(err, RDX_EIO, "%s: cannot seek: %s", g->path, strerror(errno));
        }
        g->samples_done = unit * f->unit_samples;
        skip = sample - g->samples_done;
    }
    while (skip > 0) {
        size_t c = RDX_ECG_READ_CHUNK_FRAMES * g->frame_samples;
        if (c > skip) {
            c = (size_t)skip;
        }
        RDX_TRY(group_fill(g, g->stream, c, err));
        if (g->acc) {
            /* Sum the differences without touching the checksums. */
            for (size_t k = 0; k < c; k++) {
                size_t slot = (size_t)((g->samples_done - c + k) % g->frame_samples);
                size_t si = g->slot_sig[slot] - g->first;
                g->acc[si] = (int32_t)((uint32_t)g->acc[si] + (uint32_t)g->stream[k]);
            }
        }
        skip -= c;
    }
    return RDX_OK;
}

rdx_status rdx_ecg_record_seek(rdx_ecg_record *rec, uint64_t frame, rdx_error *err)
{
    if (rec == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_record_seek: NULL record");
    }
    if (rec->opts.header_only) {
        return rdx_error_set(err, RDX_ESTATE, "%s: opened for its header only", rec->hea_path);
    }
    if (rec->csv) {
        RDX_TRY(ecg_csv_rewind(rec->csv, err));
        rec->pos = 0;
        while (rec->pos < frame) {
            size_t c = RDX_ECG_READ_CHUNK_FRAMES;
            size_t g = 0;
            if (frame - rec->pos < c) {
                c = (size_t)(frame - rec->pos);
            }
            RDX_TRY(ecg_csv_read(rec->csv, rec->ibuf, c, &g, err));
            if (g == 0) {
                return rdx_error_set(err, RDX_ERANGE, "%s: frame %llu is past the end",
                                     rec->hea_path, (unsigned long long)frame);
            }
            rec->pos += g;
        }
        return RDX_OK;
    }
    if (frame > rec->h.info.nsamp) {
        return rdx_error_set(err, RDX_ERANGE, "%s: frame %llu is past the end (%llu frames)",
                             rec->hea_path, (unsigned long long)frame,
                             (unsigned long long)rec->h.info.nsamp);
    }
    for (size_t i = 0; i < rec->ngroups; i++) {
        RDX_TRY(group_seek(rec, &rec->g[i], frame, err));
    }
    rec->pos = rec->raw_start = rec->raw_next = frame;
    rec->raw_count = 0;
    memset(rec->sum, 0, rec->h.info.nsig * sizeof *rec->sum);
    rec->cksum_checked = 0;
    if (frame != 0) {
        rec->cksum_active = 0;
    } else {
        rec->cksum_active = !rec->opts.skip_checksum &&
                            rec->h.info.nsamp == rec->h.info.nsamp_header &&
                            rec->h.info.nsamp_header > 0;
    }
    return RDX_OK;
}

/* Open the signal files and measure what they hold. */
static rdx_status open_groups(rdx_ecg_record *rec, const char *dir, size_t dirlen, rdx_error *err)
{
    ecg_header *h = &rec->h;
    rec->ngroups = h->ngroups;
    rec->g = rdx_callocarray(h->ngroups ? h->ngroups : 1, sizeof *rec->g);
    if (rec->g == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", rec->hea_path);
    }
    for (size_t i = 0; i < h->ngroups; i++) {
        rec->g[i].fd = -1;
    }
    for (size_t s = 0; s < h->info.nsig; s++) {
        group *g = &rec->g[h->group_of[s]];
        if (g->nsig == 0) {
            g->first = s;
            g->fmt = ecg_format_find(h->sig[s].format);
            g->byte_offset = h->sig[s].byte_offset;
        }
        g->nsig++;
        g->frame_samples += h->sig[s].samples_per_frame;
    }
    uint64_t min_frames = UINT64_MAX;
    for (size_t i = 0; i < h->ngroups; i++) {
        group *g = &rec->g[i];
        const rdx_ecg_signal_info *s0 = &h->sig[g->first];
        g->path = join_path(dir, dirlen, s0->file_name);
        g->buf = rdx_mallocarray(RDX_ECG_READ_BUF_BYTES, 1);
        g->stream =
            rdx_mallocarray((size_t)RDX_ECG_READ_CHUNK_FRAMES * g->frame_samples, sizeof(int32_t));
        g->slot_sig = rdx_mallocarray(g->frame_samples, sizeof *g->slot_sig);
        if (g->path == NULL || g->buf == NULL || g->stream == NULL || g->slot_sig == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", rec->hea_path);
        }
        size_t k = 0;
        for (size_t j = 0; j < g->nsig; j++) {
            for (unsigned r = 0; r < h->sig[g->first + j].samples_per_frame; r++) {
                g->slot_sig[k++] = g->first + j;
            }
        }
        if (g->fmt->differences) {
            g->acc = rdx_callocarray(g->nsig, sizeof *g->acc);
            if (g->acc == NULL) {
                return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", rec->hea_path);
            }
        }
        g->fd = open(g->path, O_RDONLY | O_CLOEXEC);
        if (g->fd < 0) {
            int e = errno;
            return rdx_error_set(err, e == ENOENT ? RDX_ENOENT : RDX_EIO,
                                 "%s: signal %zu: cannot open signal file %s: %s", rec->hea_path,
                                 g->first, g->path, strerror(e));
        }
        struct stat sb;
        if (fstat(g->fd, &sb) != 0) {
            return rdx_error_set(err, RDX_EIO, "%s: %s", g->path, strerror(errno));
        }
        if (!S_ISREG(sb.st_mode)) {
            return rdx_error_set(err, RDX_EINVAL, "%s: not a regular file", g->path);
        }
        uint64_t size = (uint64_t)sb.st_size;
        uint64_t bytes = size > g->byte_offset ? size - g->byte_offset : 0;
        g->frames_in_file = ecg_format_samples_in(g->fmt, bytes) / g->frame_samples;
        if (g->frames_in_file < min_frames) {
            min_frames = g->frames_in_file;
        }
        RDX_TRY(group_rewind(rec, g, err));
    }
    if (h->ngroups == 0) {
        min_frames = h->info.nsamp_header;
    }
    if (h->info.nsamp_header == 0) {
        /* No length in the header: the record is as long as its shortest file. */
        h->info.nsamp = min_frames;
        return RDX_OK;
    }
    for (size_t i = 0; i < h->ngroups; i++) {
        group *g = &rec->g[i];
        if (g->frames_in_file >= h->info.nsamp_header) {
            continue;
        }
        if (rec->opts.allow_short) {
            rdx_log(rec->opts.log, RDX_LOG_WARN,
                    "%s: holds %llu samples per signal, the header says %llu; reading what is "
                    "there",
                    g->path, (unsigned long long)g->frames_in_file,
                    (unsigned long long)h->info.nsamp_header);
            continue;
        }
        return rdx_error_set(err, RDX_ESHORT,
                             "%s: holds %llu samples per signal but %s says %llu (expected %llu "
                             "samples, found %llu; use allow-short to read what is there)",
                             g->path, (unsigned long long)g->frames_in_file, rec->hea_path,
                             (unsigned long long)h->info.nsamp_header,
                             (unsigned long long)h->info.nsamp_header,
                             (unsigned long long)g->frames_in_file);
    }
    h->info.nsamp = min_frames < h->info.nsamp_header ? min_frames : h->info.nsamp_header;
    return RDX_OK;
}

static rdx_status open_wfdb(rdx_ecg_record *rec, const char *path, rdx_error *err)
{
    rdx_status st;
    size_t n = strlen(path);
    size_t base_len = ecg_has_suffix(path, n, ".hea") ? n - 4 : n;
    size_t dirlen = base_len;
    while (dirlen > 0 && path[dirlen - 1] != '/') {
        dirlen--;
    }
    rdx_buf text;

    rec->hea_path = rdx_mallocarray(base_len + 5, 1);
    if (rec->hea_path == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
    }
    memcpy(rec->hea_path, path, base_len);
    memcpy(rec->hea_path + base_len, ".hea", 5);
    if (base_len == dirlen) {
        return rdx_error_set(err, RDX_EINVAL, "%s: no record name", path);
    }

    rdx_buf_init(&text, RDX_ECG_MAX_HEADER_BYTES);
    st = rdx_file_read(rec->hea_path, &text, err);
    if (st == RDX_OK) {
        st = ecg_header_parse((const char *)text.data, text.len, rec->hea_path, &rec->h, err);
    }
    rdx_buf_free(&text);
    if (st != RDX_OK) {
        return st;
    }
    const char *base = path + dirlen;
    size_t bl = base_len - dirlen;
    if (strlen(rec->h.info.name) != bl || memcmp(rec->h.info.name, base, bl) != 0) {
        rdx_log(rec->opts.log, RDX_LOG_WARN, "%s: header names record '%s'", rec->hea_path,
                rec->h.info.name);
    }
    if (rec->opts.header_only) {
        return RDX_OK;
    }
    RDX_TRY(open_groups(rec, path, dirlen, err));

    const size_t nsig = rec->h.info.nsig;
    int single = rec->ngroups == 1;
    for (size_t s = 0; s < nsig; s++) {
        const rdx_ecg_signal_info *si = &rec->h.sig[s];
        if (si->skew_frames > rec->max_skew) {
            rec->max_skew = si->skew_frames;
        }
        single = single && si->samples_per_frame == 1;
    }
    rec->fast = single && rec->max_skew == 0;
    rec->sum = rdx_callocarray(nsig ? nsig : 1, sizeof *rec->sum);
    if (rec->sum == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", rec->hea_path);
    }
    if (rec->max_skew > 0) {
        rec->raw_cap = RDX_ECG_READ_CHUNK_FRAMES + rec->max_skew;
        rec->raw = rdx_mallocarray(rec->raw_cap * nsig, sizeof(int32_t));
        if (rec->raw == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", rec->hea_path);
        }
    }
    rec->cksum_active = !rec->opts.skip_checksum && rec->h.info.nsamp_header > 0 &&
                        rec->h.info.nsamp == rec->h.info.nsamp_header;
    return RDX_OK;
}

rdx_status rdx_ecg_record_open(const char *path, const rdx_ecg_record_opts *opts,
                               rdx_ecg_record **out, rdx_error *err)
{
    rdx_status st;
    rdx_ecg_record *rec;

    if (out) {
        *out = NULL;
    }
    if (path == NULL || out == NULL || path[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "rdx_ecg_record_open: no record path");
    }
    rec = calloc(1, sizeof *rec);
    if (rec == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
    }
    if (opts) {
        rec->opts = *opts;
    }
    size_t n = strlen(path);
    if (ecg_has_suffix(path, n, ".csv")) {
        rec->hea_path = rdx_strndup(path, n);
        if (rec->hea_path == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        st = ecg_csv_open(path, &rec->opts, &rec->h, &rec->csv, err);
    } else {
        st = open_wfdb(rec, path, err);
    }
    if (st != RDX_OK) {
        goto out;
    }
    rec->ibuf = rdx_mallocarray((size_t)RDX_ECG_READ_CHUNK_FRAMES * (rec->h.info.nsig + 1),
                                sizeof(int32_t));
    rec->phys = rdx_mallocarray(2 * (rec->h.info.nsig + 1), sizeof *rec->phys);
    if (rec->ibuf == NULL || rec->phys == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t s = 0; s < rec->h.info.nsig; s++) {
        rec->phys[2 * s] = rec->h.sig[s].baseline_adu;
        rec->phys[2 * s + 1] = 1.0 / rec->h.sig[s].gain_adu_per_unit;
    }
    *out = rec;
    return RDX_OK;
out:
    rdx_ecg_record_free(rec);
    return st;
}
