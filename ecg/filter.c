/*
 * filter.c - ECG conditioning: one linear-phase FIR kernel (baseline-wander
 * high-pass, mains notch, low-pass) applied by overlap-save FFT convolution.
 *
 * Design: the ideal zero-phase band-pass with the notch cut out of it is a
 * sum of differences of sincs; multiplied by a Hamming window of
 * RDX_ECG_FILTER_KERNEL_S seconds it gives transition bands of 3.3 / T =
 * 0.55 Hz and stop bands below -53 dB (A. V. Oppenheim, R. W. Schafer,
 * "Discrete-Time Signal Processing", 3rd ed., section 7.5). A linear-phase
 * FIR is what the AHA recommends for baseline removal, since it does not
 * distort the ST segment the way a causal IIR high-pass does (P. Kligfield et
 * al., "Recommendations for the standardization and interpretation of the
 * electrocardiogram, part I", Circulation 115:1306-1324, 2007; J. A. van
 * Alste, T. S. Schilder, "Removal of base-line wander and power-line
 * interference from the ECG by an efficient FIR filter with a reduced number
 * of taps", IEEE Trans. Biomed. Eng. 32(12):1052-1060, 1985).
 *
 * Application: overlap-save (Oppenheim and Schafer, section 8.7.3) with an
 * FFT of N >= 4 L points: each block takes B = N - L + 1 new samples, keeps
 * the L - 1 before them, and yields B outputs. Blocks are cut at fixed
 * multiples of B from the start of the stream, so the output does not depend
 * on how the caller splits the input. The FFTW plans (FFTW_ESTIMATE:
 * deterministic and quick to make) and every buffer are made in
 * rdx_ecg_filter_new(); push and flush allocate nothing.
 */
#include "rdx/ecg.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
/* Half-width of the ideal notch stop band (Hz). */
#define NOTCH_HALF_HZ 1.0

struct flead {
    float *buf;   /* N samples: L - 1 history, then the block being filled */
    uint8_t *nan; /* ring of "input was missing" flags, indexed by frame */
    float last;   /* last valid input value (bridges missing samples) */
};

struct rdx_ecg_filter {
    rdx_ecg_filter_config cfg;
    size_t nl;
    size_t L, D, N, B;
    double *h; /* kernel, L taps, centred on h[D] */
    fftw_complex *H;
    double *xin;
    fftw_complex *X;
    double *y;
    fftw_plan fwd, inv;
    struct flead *leads;
    float *obuf; /* B frames of output */
    float *pad;  /* D frames of end padding (flush) */
    size_t ring_mask;
    size_t fill;     /* new samples in the current block */
    int64_t blocks;  /* blocks done */
    int64_t nin;     /* real frames pushed */
    int64_t emitted; /* frames delivered */
    int started;
    int flushed;
};

void rdx_ecg_filter_config_init(rdx_ecg_filter_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->fs_hz = 360.0;
    cfg->nleads = 1;
    cfg->highpass_hz = 0.5;
    cfg->mains_hz = 50.0;
    cfg->lowpass_hz = 40.0;
}

/* Ideal zero-phase band [a, b] Hz at tap offset n. */
static double band(double a, double b, double fs, long n)
{
    if (n == 0) {
        return 2.0 * (b - a) / fs;
    }
    return (sin(2.0 * PI * b * (double)n / fs) - sin(2.0 * PI * a * (double)n / fs)) /
           (PI * (double)n);
}

void rdx_ecg_filter_free(rdx_ecg_filter *f)
{
    if (f == NULL) {
        return;
    }
    if (f->fwd != NULL) {
        fftw_destroy_plan(f->fwd);
    }
    if (f->inv != NULL) {
        fftw_destroy_plan(f->inv);
    }
    fftw_free(f->H);
    fftw_free(f->xin);
    fftw_free(f->X);
    fftw_free(f->y);
    if (f->leads != NULL) {
        for (size_t i = 0; i < f->nl; i++) {
            free(f->leads[i].buf);
            free(f->leads[i].nan);
        }
    }
    free(f->leads);
    free(f->obuf);
    free(f->pad);
    free(f->h);
    free(f);
}

size_t rdx_ecg_filter_taps(const rdx_ecg_filter *f)
{
    return f == NULL ? 0 : f->L;
}

double rdx_ecg_filter_gain(const rdx_ecg_filter *f, double freq_hz)
{
    if (f == NULL) {
        return NAN;
    }
    /* The kernel is symmetric about D: its response is real. */
    double w = 2.0 * PI * freq_hz / f->cfg.fs_hz;
    double g = f->h[f->D];
    for (size_t k = 1; k <= f->D; k++) {
        g += 2.0 * f->h[f->D + k] * cos(w * (double)k);
    }
    return fabs(g);
}

rdx_status rdx_ecg_filter_new(const rdx_ecg_filter_config *cfg, rdx_ecg_filter **out,
                              rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "filter: NULL output handle");
    }
    *out = NULL;
    if (cfg == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "filter: NULL configuration");
    }
    double fs = cfg->fs_hz;
    if (!(fs >= RDX_ECG_QRS_MIN_FS && fs <= RDX_ECG_QRS_MAX_FS)) {
        return rdx_error_set(err, RDX_EINVAL, "filter: sampling frequency %g Hz outside %g-%g", fs,
                             RDX_ECG_QRS_MIN_FS, RDX_ECG_QRS_MAX_FS);
    }
    if (cfg->nleads < 1 || cfg->nleads > RDX_ECG_MAX_FILTER_LEADS) {
        return rdx_error_set(err, RDX_EINVAL, "filter: %zu leads (1-%d allowed)", cfg->nleads,
                             RDX_ECG_MAX_FILTER_LEADS);
    }
    double nyq = fs / 2.0;
    double lo = cfg->highpass_hz;
    double hi = (cfg->lowpass_hz > 0.0 && cfg->lowpass_hz < nyq) ? cfg->lowpass_hz : nyq;
    if (!(lo >= 0.0) || !(cfg->lowpass_hz >= 0.0) || !(cfg->mains_hz >= 0.0) || lo >= hi) {
        return rdx_error_set(err, RDX_EINVAL,
                             "filter: bad band (high-pass %g Hz, low-pass %g Hz at %g Hz)", lo,
                             cfg->lowpass_hz, fs);
    }
    if (cfg->mains_hz != 0.0 && cfg->mains_hz != 50.0 && cfg->mains_hz != 60.0) {
        return rdx_error_set(err, RDX_EINVAL, "filter: mains %g Hz (50, 60 or 0)", cfg->mains_hz);
    }
    rdx_ecg_filter *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "filter: out of memory");
    }
    f->cfg = *cfg;
    f->nl = cfg->nleads;
    f->D = (size_t)llround(RDX_ECG_FILTER_KERNEL_S * fs / 2.0);
    f->L = 2 * f->D + 1;
    f->N = 1024;
    while (f->N < 4 * f->L) {
        f->N <<= 1;
    }
    f->B = f->N - f->L + 1;
    size_t ring = 1;
    while (ring < 2 * f->N) {
        ring <<= 1;
    }
    f->ring_mask = ring - 1;
    f->h = rdx_mallocarray(f->L, sizeof *f->h);
    f->leads = rdx_callocarray(f->nl, sizeof *f->leads);
    f->obuf = rdx_mallocarray(f->B * f->nl, sizeof *f->obuf);
    f->pad = rdx_mallocarray(f->D * f->nl, sizeof *f->pad);
    if (f->h == NULL || f->leads == NULL || f->obuf == NULL || f->pad == NULL) {
        goto oom;
    }
    for (size_t i = 0; i < f->nl; i++) {
        f->leads[i].buf = rdx_callocarray(f->N, sizeof *f->leads[i].buf);
        f->leads[i].nan = rdx_callocarray(ring, 1);
        if (f->leads[i].buf == NULL || f->leads[i].nan == NULL) {
            goto oom;
        }
    }
    /* The pass band [lo, hi] with the notch cut out where it falls inside. */
    double m = cfg->mains_hz;
    int notch = m > 0.0 && m - NOTCH_HALF_HZ < hi && m + NOTCH_HALF_HZ > lo;
    for (size_t k = 0; k < f->L; k++) {
        long n = (long)k - (long)f->D;
        double v;
        if (notch) {
            double a = m - NOTCH_HALF_HZ, b = m + NOTCH_HALF_HZ;
            v = (a > lo ? band(lo, a, fs, n) : 0.0) + (b < hi ? band(b, hi, fs, n) : 0.0);
        } else {
            v = band(lo, hi, fs, n);
        }
        double w = 0.54 + 0.46 * cos(2.0 * PI * (double)n / (double)(f->L - 1));
        f->h[k] = v * w;
    }
    if (lo > 0.0) {
        /* The window's side lobes leak about -54 dB of DC; an electrode
         * offset of 300 mV would still show 0.6 mV. Take out exactly the DC
         * gain by subtracting a scaled window (a low-pass far narrower than
         * the pass band), so the kernel sums to zero. */
        double sum = 0.0, wsum = 0.0;
        for (size_t k = 0; k < f->L; k++) {
            double n = (double)k - (double)f->D;
            sum += f->h[k];
            wsum += 0.54 + 0.46 * cos(2.0 * PI * n / (double)(f->L - 1));
        }
        for (size_t k = 0; k < f->L; k++) {
            double n = (double)k - (double)f->D;
            f->h[k] -= sum / wsum * (0.54 + 0.46 * cos(2.0 * PI * n / (double)(f->L - 1)));
        }
    }
    size_t nc = f->N / 2 + 1;
    f->H = fftw_malloc(nc * sizeof *f->H);
    f->X = fftw_malloc(nc * sizeof *f->X);
    f->xin = fftw_malloc(f->N * sizeof *f->xin);
    f->y = fftw_malloc(f->N * sizeof *f->y);
    if (f->H == NULL || f->X == NULL || f->xin == NULL || f->y == NULL) {
        goto oom;
    }
    f->fwd = fftw_plan_dft_r2c_1d((int)f->N, f->xin, f->X, FFTW_ESTIMATE);
    f->inv = fftw_plan_dft_c2r_1d((int)f->N, f->X, f->y, FFTW_ESTIMATE);
    if (f->fwd == NULL || f->inv == NULL) {
        goto oom;
    }
    /* H = FFT of the kernel, scaled by 1/N for FFTW's unnormalised inverse. */
    memset(f->xin, 0, f->N * sizeof *f->xin);
    for (size_t k = 0; k < f->L; k++) {
        f->xin[k] = f->h[k] / (double)f->N;
    }
    fftw_execute(f->fwd);
    memcpy(f->H, f->X, nc * sizeof *f->H);
    *out = f;
    return RDX_OK;
oom:
    rdx_ecg_filter_free(f);
    return rdx_error_set(err, RDX_ENOMEM, "filter: out of memory");
}

/* Filter the full block in every lead and deliver its outputs. limit is the
 * number of real frames when flushing (outputs past it are dropped), or -1. */
static void run_block(rdx_ecg_filter *f, int64_t limit)
{
    const size_t N = f->N, L = f->L, B = f->B, nl = f->nl;
    const size_t nc = N / 2 + 1;
    /* Block outputs y[s] for s = b0 .. b0 + B - 1; frame k = s - D. */
    int64_t b0 = f->blocks * (int64_t)B;
    int64_t k0 = b0 - (int64_t)f->D;
    size_t first = k0 < 0 ? (size_t)(-k0) : 0;
    size_t count = B;
    if (limit >= 0 && k0 + (int64_t)count > limit) {
        count = limit > k0 ? (size_t)(limit - k0) : 0;
    }
    for (size_t i = 0; i < nl; i++) {
        struct flead *l = &f->leads[i];
        if (f->blocks == 0) {
            /* Before the start, the signal is its own odd reflection about
             * the first sample (as MATLAB's filtfilt pads): value and slope
             * continue, so neither an offset nor a wave makes a transient. */
            float x0 = l->buf[L - 1];
            for (size_t j = 1; j <= f->D; j++) {
                l->buf[L - 1 - j] = 2.0f * x0 - l->buf[L - 1 + j];
            }
        }
        for (size_t j = 0; j < N; j++) {
            f->xin[j] = (double)l->buf[j];
        }
        fftw_execute(f->fwd);
        for (size_t j = 0; j < nc; j++) {
            double re = f->X[j][0] * f->H[j][0] - f->X[j][1] * f->H[j][1];
            double im = f->X[j][0] * f->H[j][1] + f->X[j][1] * f->H[j][0];
            f->X[j][0] = re;
            f->X[j][1] = im;
        }
        fftw_execute(f->inv);
        for (size_t j = first; j < count; j++) {
            int64_t k = k0 + (int64_t)j;
            float v = (float)f->y[L - 1 + j];
            f->obuf[(j - first) * nl + i] = l->nan[(size_t)k & f->ring_mask] ? NAN : v;
        }
        /* Keep the last L - 1 samples as the next block's history. */
        memmove(l->buf, l->buf + B, (L - 1) * sizeof *l->buf);
    }
    f->blocks++;
    f->fill = 0;
    if (count > first && f->cfg.out_fn != NULL) {
        f->cfg.out_fn(f->cfg.user, f->obuf, count - first, k0 + (int64_t)first);
    }
    if (count > first) {
        f->emitted = k0 + (int64_t)count;
    }
}

/* Append one frame (real, or padding from x when real is 0) to the
 * current block. */
static void put_frame(rdx_ecg_filter *f, const float *x, int real, int64_t limit)
{
    size_t at = f->L - 1 + f->fill;
    for (size_t i = 0; i < f->nl; i++) {
        struct flead *l = &f->leads[i];
        float v = x[i];
        int missing = isnan(v);
        if (missing) {
            v = l->last;
        } else {
            l->last = v;
        }
        l->buf[at] = v;
        if (real) {
            l->nan[(size_t)f->nin & f->ring_mask] = (uint8_t)missing;
        }
    }
    if (real) {
        f->nin++;
    }
    if (++f->fill == f->B) {
        run_block(f, limit);
    }
}

/* At the first frame: fill the history with the first value; the first
 * block replaces the part that matters by a reflection (run_block). */
static void start(rdx_ecg_filter *f, const float *x)
{
    for (size_t i = 0; i < f->nl; i++) {
        struct flead *l = &f->leads[i];
        float v = isnan(x[i]) ? 0.0f : x[i];
        l->last = v;
        for (size_t j = 0; j < f->L - 1; j++) {
            l->buf[j] = v;
        }
    }
    f->started = 1;
}

rdx_status rdx_ecg_filter_push(rdx_ecg_filter *f, const float *frames, size_t nframes,
                               rdx_error *err)
{
    if (f == NULL || (frames == NULL && nframes > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "filter: NULL argument");
    }
    if (f->flushed) {
        return rdx_error_set(err, RDX_ESTATE, "filter: push after flush");
    }
    for (size_t k = 0; k < nframes; k++) {
        const float *x = frames + k * f->nl;
        if (!f->started) {
            start(f, x);
        }
        put_frame(f, x, 1, -1);
    }
    return RDX_OK;
}

rdx_status rdx_ecg_filter_flush(rdx_ecg_filter *f, rdx_error *err)
{
    if (f == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "filter: NULL argument");
    }
    if (f->flushed) {
        return rdx_error_set(err, RDX_ESTATE, "filter: flushed twice");
    }
    f->flushed = 1;
    if (!f->started) {
        return RDX_OK;
    }
    /* After the end, the signal is its odd reflection about the last sample
     * (D frames are needed for the last output); beyond those, and for a
     * record shorter than D, it holds the last reflected value. */
    int64_t limit = f->nin;
    size_t at = f->L - 1 + f->fill; /* one past the last real sample */
    for (size_t i = 0; i < f->nl; i++) {
        const float *b = f->leads[i].buf;
        float xl = b[at - 1];
        for (size_t j = 1; j <= f->D; j++) {
            size_t back = j <= at - 1 ? at - 1 - j : 0;
            f->pad[(j - 1) * f->nl + i] = 2.0f * xl - b[back];
        }
    }
    size_t j = 0;
    while (f->emitted < limit) {
        put_frame(f, f->pad + j * f->nl, 0, limit);
        if (j + 1 < f->D) {
            j++;
        }
    }
    return RDX_OK;
}
