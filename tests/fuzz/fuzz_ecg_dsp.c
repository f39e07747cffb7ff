/*
 * libFuzzer target for the ECG signal path: arbitrary sample values (huge,
 * NaN, infinite, flat, stepping) at any frequency and lead count, pushed in
 * arbitrary block sizes through the QRS detector and the conditioning
 * filter, and resampled (to a rate taken from the block-size byte). The
 * values come from untrusted uploads (CSV text or WFDB bytes), so
 * neither may crash, hang, read out of bounds or report beats out of order.
 *
 * Input: byte 0 frequency, byte 1 lead count, byte 2 block size, byte 3
 * flags (bit 0: also filter, bit 1: 60 Hz mains, bit 2: also resample), then 16-bit little-endian
 * samples in units of 5 uV; 0x8000 is a missing sample, 0x7fff infinity.
 */
#include "rdx/ecg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct order {
    int64_t last;
};

static void on_beat(void *user, const rdx_ecg_beat *b)
{
    struct order *o = user;
    if (b->sample <= o->last || b->sample < 0) {
        abort(); /* beats must come in strictly increasing order */
    }
    o->last = b->sample;
}

static void on_out(void *user, const float *frames, size_t n, int64_t first)
{
    int64_t *next = user;
    if (first != *next) {
        abort(); /* every frame comes out once, in order */
    }
    (void)frames;
    *next = first + (int64_t)n;
}

static void on_resampled(void *user, const float *frames, size_t n)
{
    size_t *count = user;
    (void)frames;
    *count += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return 0;
    }
    double fs = RDX_ECG_QRS_MIN_FS + (double)data[0] * 7.0;
    size_t nl = (size_t)(data[1] % RDX_ECG_QRS_MAX_LEADS) + 1;
    size_t block = (size_t)data[2] + 1;
    int do_filter = data[3] & 1;
    size_t n = (size - 4) / 2 / nl;
    if (n == 0) {
        return 0;
    }
    float *x = malloc(n * nl * sizeof *x);
    if (x == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n * nl; i++) {
        uint16_t u = (uint16_t)(data[4 + 2 * i] | (data[5 + 2 * i] << 8));
        x[i] = u == 0x8000 ? NAN : (u == 0x7fff ? INFINITY : (float)(int16_t)u / 200.0f);
    }
    struct order o = {-1};
    rdx_ecg_detector_config dc;
    rdx_ecg_detector_config_init(&dc);
    dc.fs_hz = fs;
    dc.nleads = nl;
    dc.beat_fn = on_beat;
    dc.user = &o;
    rdx_ecg_detector *d = NULL;
    if (rdx_ecg_detector_new(&dc, &d, NULL) == RDX_OK) {
        for (size_t i = 0; i < n; i += block) {
            size_t m = n - i < block ? n - i : block;
            rdx_ecg_detector_push(d, x + i * nl, m, NULL);
        }
        rdx_ecg_detector_flush(d, NULL);
        rdx_ecg_detector_free(d);
    }
    if (do_filter && n * nl < 20000) {
        int64_t next = 0;
        rdx_ecg_filter_config fc;
        rdx_ecg_filter_config_init(&fc);
        fc.fs_hz = fs;
        fc.nleads = nl;
        fc.mains_hz = (data[3] & 2) ? 60.0 : 50.0;
        fc.out_fn = on_out;
        fc.user = &next;
        rdx_ecg_filter *f = NULL;
        if (rdx_ecg_filter_new(&fc, &f, NULL) == RDX_OK) {
            for (size_t i = 0; i < n; i += block) {
                size_t m = n - i < block ? n - i : block;
                rdx_ecg_filter_push(f, x + i * nl, m, NULL);
            }
            rdx_ecg_filter_flush(f, NULL);
            if (next != (int64_t)n) {
                abort();
            }
            rdx_ecg_filter_free(f);
        }
    }
    if ((data[3] & 4) && n * nl < 20000) {
        double fo = RDX_ECG_QRS_MIN_FS + (double)data[2] * 3.5;
        size_t count = 0;
        rdx_ecg_resampler *r = NULL;
        if (rdx_ecg_resampler_new(fs, fo, nl, on_resampled, &count, &r, NULL) == RDX_OK) {
            for (size_t i = 0; i < n; i += block) {
                size_t m = n - i < block ? n - i : block;
                rdx_ecg_resampler_push(r, x + i * nl, m, NULL);
            }
            rdx_ecg_resampler_flush(r, NULL);
            double want = (double)n * fo / fs;
            if ((double)count < want - 1.0 || (double)count > want + 1.0) {
                abort(); /* ceil(n * fo / fs) frames, no more, no fewer */
            }
            rdx_ecg_resampler_free(r);
        }
    }
    free(x);
    return 0;
}
