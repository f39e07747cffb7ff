/*
 * resample.c - streaming rational resampler (polyphase windowed sinc).
 *
 * Output frame j is the input interpolated at input time
 * tau_j = j * fs_in / fs_out. With the ratio reduced to P / L (P input
 * samples per L output samples), tau_j = (j * P) / L: its integer part i
 * and its phase (j * P) mod L pick one of L precomputed rows of 2 * HW
 * taps, applied to the inputs i - HW + 1 .. i + HW (J. O. Smith,
 * "Digital Audio Resampling", the bandlimited interpolation method, with
 * a Blackman window; the kernel is widened by fs_in / fs_out when
 * downsampling, so that its cut-off follows the lower rate).
 *
 * The input history lives in a ring of 2 * HW + CHUNK frames; an output
 * frame is made as soon as the input it needs has arrived, so the result
 * does not depend on how the input is split into pushes.
 */
#include "rdx/ecg.h"

#include "ecg_limits.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Zero crossings of the sinc on each side, at the lower rate. */
#define ZC 16
/* Cut-off as a fraction of the lower rate (0.5 would be its Nyquist
 * frequency; the rest is the transition band). */
#define CUTOFF 0.45
/* Output frames collected before out_fn is called. */
#define OUT_FRAMES 1024

struct rdx_ecg_resampler {
    size_t nch;
    int64_t P, L;  /* tau_j = j * P / L input samples */
    int64_t hw;    /* taps on each side of tau */
    size_t taps;   /* 2 * hw */
    float *table;  /* L rows of taps */
    float *ring;   /* input frames, ring of ringn frames */
    size_t ringn;  /* power of two */
    int64_t nin;   /* input frames received (the padding at flush included) */
    int64_t nreal; /* real input frames */
    int64_t nout;  /* output frames delivered */
    float *out;    /* OUT_FRAMES frames */
    size_t nbuf;   /* frames in out */
    int flushed;
    rdx_ecg_resample_out_fn out_fn;
    void *user;
};

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b != 0) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void rdx_ecg_resampler_free(rdx_ecg_resampler *r)
{
    if (r == NULL) {
        return;
    }
    free(r->table);
    free(r->ring);
    free(r->out);
    free(r);
}

rdx_status rdx_ecg_resampler_new(double fs_in, double fs_out, size_t nch,
                                 rdx_ecg_resample_out_fn out_fn, void *user,
                                 rdx_ecg_resampler **out, rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: NULL output handle");
    }
    *out = NULL;
    if (out_fn == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: NULL output callback");
    }
    if (!(fs_in > 0.0 && fs_in <= RDX_ECG_MAX_FS_HZ) ||
        !(fs_out > 0.0 && fs_out <= RDX_ECG_MAX_FS_HZ)) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: frequencies %g -> %g Hz outside (0, %g]",
                             fs_in, fs_out, RDX_ECG_MAX_FS_HZ);
    }
    if (nch < 1 || nch > RDX_ECG_MAX_FILTER_LEADS) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: %zu channels (1-%d allowed)", nch,
                             RDX_ECG_MAX_FILTER_LEADS);
    }
    /* The ratio to a millihertz. */
    int64_t a = llround(fs_in * 1000.0), b = llround(fs_out * 1000.0);
    if (a < 1 || b < 1) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: frequencies %g -> %g Hz below 1 mHz",
                             fs_in, fs_out);
    }
    int64_t g = gcd64(a, b);
    int64_t P = a / g, L = b / g;
    if (L > RDX_ECG_RESAMPLE_MAX_PHASES) {
        return rdx_error_set(err, RDX_EINVAL,
                             "resampler: %g -> %g Hz needs %lld phases (at most %d)", fs_in, fs_out,
                             (long long)L, RDX_ECG_RESAMPLE_MAX_PHASES);
    }
    /* Kernel in input samples: the sinc's zero crossings are spaced by
     * the lower rate's sample period. */
    double stretch = fs_in > fs_out ? fs_in / fs_out : 1.0;
    int64_t hw = (int64_t)ceil(ZC * stretch);
    if (hw > 4096) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: %g -> %g Hz: ratio too large", fs_in,
                             fs_out);
    }
    if ((size_t)L * (size_t)(2 * hw) > ((size_t)1 << 22)) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: %g -> %g Hz: table too large", fs_in,
                             fs_out);
    }
    rdx_ecg_resampler *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "resampler: out of memory");
    }
    r->nch = nch;
    r->P = P;
    r->L = L;
    r->hw = hw;
    r->taps = (size_t)(2 * hw);
    r->out_fn = out_fn;
    r->user = user;
    r->ringn = 64;
    while (r->ringn < r->taps + OUT_FRAMES * (size_t)(P / L + 1) + 1) {
        r->ringn <<= 1;
    }
    r->table = rdx_mallocarray((size_t)L * r->taps, sizeof *r->table);
    r->ring = rdx_mallocarray(r->ringn * nch, sizeof *r->ring);
    r->out = rdx_mallocarray((size_t)OUT_FRAMES * nch, sizeof *r->out);
    if (r->table == NULL || r->ring == NULL || r->out == NULL) {
        rdx_ecg_resampler_free(r);
        return rdx_error_set(err, RDX_ENOMEM, "resampler: out of memory");
    }
    /* Row ph: tau = i + ph / L; tap m multiplies input i - hw + 1 + m, at
     * distance t = ph / L + hw - 1 - m from tau. */
    const double pi = 3.14159265358979323846;
    const double fc = CUTOFF / stretch; /* cycles per input sample */
    for (int64_t ph = 0; ph < L; ph++) {
        float *row = r->table + (size_t)ph * r->taps;
        double sum = 0.0;
        double h[2 * 4096];
        for (size_t m = 0; m < r->taps; m++) {
            double t = (double)ph / (double)L + (double)(hw - 1) - (double)m;
            double x = 2.0 * fc * t;
            double sinc = fabs(x) < 1e-12 ? 1.0 : sin(pi * x) / (pi * x);
            double u = t / (double)hw; /* -1..1 over the kernel */
            double win = fabs(u) >= 1.0 ? 0.0 : 0.42 + 0.5 * cos(pi * u) + 0.08 * cos(2.0 * pi * u);
            h[m] = sinc * win;
            sum += h[m];
        }
        for (size_t m = 0; m < r->taps; m++) {
            row[m] = (float)(h[m] / sum);
        }
    }
    *out = r;
    return RDX_OK;
}

static void emit(rdx_ecg_resampler *r)
{
    if (r->nbuf > 0) {
        r->out_fn(r->user, r->out, r->nbuf);
        r->nbuf = 0;
    }
}

/* Make every output frame whose inputs have all arrived (up to `limit`
 * output frames in all, or no limit when limit < 0). */
static void produce(rdx_ecg_resampler *r, int64_t limit)
{
    const size_t nch = r->nch, taps = r->taps, mask = r->ringn - 1;
    for (;;) {
        if (limit >= 0 && r->nout >= limit) {
            break;
        }
        int64_t num = r->nout * r->P;
        int64_t i = num / r->L, ph = num % r->L;
        if (i + r->hw >= r->nin) {
            break; /* input i + hw not here yet */
        }
        const float *row = r->table + (size_t)ph * taps;
        float *o = r->out + r->nbuf * nch;
        int64_t k0 = i - r->hw + 1;
        for (size_t c = 0; c < nch; c++) {
            double acc = 0.0;
            for (size_t m = 0; m < taps; m++) {
                int64_t k = k0 + (int64_t)m;
                k = k < 0 ? 0 : k; /* before the start: the first frame */
                acc += (double)row[m] * (double)r->ring[((size_t)k & mask) * nch + c];
            }
            o[c] = (float)acc;
        }
        r->nout++;
        if (++r->nbuf == OUT_FRAMES) {
            emit(r);
        }
    }
}

rdx_status rdx_ecg_resampler_push(rdx_ecg_resampler *r, const float *frames, size_t nframes,
                                  rdx_error *err)
{
    if (r == NULL || (frames == NULL && nframes > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: NULL argument");
    }
    if (r->flushed) {
        return rdx_error_set(err, RDX_ESTATE, "resampler: push after flush");
    }
    const size_t mask = r->ringn - 1;
    /* Fill in pieces small enough that the ring still holds what the
     * next outputs look back at. */
    const size_t piece = OUT_FRAMES;
    size_t done = 0;
    while (done < nframes) {
        size_t m = nframes - done < piece ? nframes - done : piece;
        for (size_t f = 0; f < m; f++) {
            memcpy(r->ring + ((size_t)(r->nin + (int64_t)f) & mask) * r->nch,
                   frames + (done + f) * r->nch, r->nch * sizeof *frames);
        }
        r->nin += (int64_t)m;
        r->nreal += (int64_t)m;
        produce(r, -1);
        done += m;
    }
    return RDX_OK;
}

rdx_status rdx_ecg_resampler_flush(rdx_ecg_resampler *r, rdx_error *err)
{
    if (r == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "resampler: NULL argument");
    }
    if (r->flushed) {
        return rdx_error_set(err, RDX_ESTATE, "resampler: flushed twice");
    }
    r->flushed = 1;
    if (r->nreal > 0) {
        /* After the last frame: that frame's value, for hw + 1 frames
         * (enough for every remaining output), in pieces as in push. */
        const size_t mask = r->ringn - 1;
        int64_t total = (r->nreal * r->L + r->P - 1) / r->P; /* ceil(nreal * L / P) */
        int64_t pad = r->hw + 1 + r->P / r->L + 1;
        const float *last = r->ring + ((size_t)(r->nreal - 1) & mask) * r->nch;
        float lastv[RDX_ECG_MAX_FILTER_LEADS];
        memcpy(lastv, last, r->nch * sizeof *lastv);
        for (int64_t p = 0; p < pad; p++) {
            memcpy(r->ring + ((size_t)r->nin & mask) * r->nch, lastv, r->nch * sizeof *lastv);
            r->nin++;
            produce(r, total);
        }
    }
    emit(r);
    return RDX_OK;
}
