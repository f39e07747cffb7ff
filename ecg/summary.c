/*
 * summary.c - rhythm figures from a beat list: heart rate (mean, and the
 * lowest and highest over RDX_ECG_HR_AVG_BEATS intervals, as Holter reports
 * give them), RR mean, SDNN and RMSSD (Task Force of the ESC and NASPE,
 * "Heart rate variability: standards of measurement", Circulation
 * 93:1043-1065, 1996), pauses and signal-loss spans.
 */
#include "rdx/ecg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rdx_ecg_summary_free(rdx_ecg_summary *s)
{
    if (s == NULL) {
        return;
    }
    free(s->pauses);
    free(s->loss);
    memset(s, 0, sizeof *s);
}

/* Nonzero when [a, b) overlaps a loss span. */
static int crosses_loss(int64_t a, int64_t b, const rdx_ecg_span *loss, size_t nloss)
{
    for (size_t i = 0; i < nloss; i++) {
        if (loss[i].start < b && loss[i].end > a) {
            return 1;
        }
    }
    return 0;
}

rdx_status rdx_ecg_summary_compute(const int64_t *beats, size_t nbeats, const rdx_ecg_span *loss,
                                   size_t nloss, double fs_hz, int64_t nsamp, rdx_ecg_summary *out,
                                   rdx_error *err)
{
    if (out == NULL || !(fs_hz > 0.0) || (beats == NULL && nbeats > 0) ||
        (loss == NULL && nloss > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "summary: bad argument");
    }
    memset(out, 0, sizeof *out);
    for (size_t i = 1; i < nbeats; i++) {
        if (beats[i] <= beats[i - 1]) {
            return rdx_error_set(err, RDX_EINVAL, "summary: beat %zu is not after beat %zu", i,
                                 i - 1);
        }
    }
    out->nbeats = nbeats;
    out->duration_s = (double)nsamp / fs_hz;
    out->hr_mean_bpm = out->hr_min_bpm = out->hr_max_bpm = NAN;
    out->rr_mean_ms = out->sdnn_ms = out->rmssd_ms = NAN;
    if (nloss > 0) {
        out->loss = rdx_mallocarray(nloss, sizeof *out->loss);
        if (out->loss == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "summary: out of memory");
        }
        memcpy(out->loss, loss, nloss * sizeof *loss);
        out->nloss = nloss;
    }
    int64_t pause = (int64_t)llround(RDX_ECG_PAUSE_S * fs_hz);
    size_t npause = 0;
    for (size_t i = 1; i < nbeats; i++) {
        if (beats[i] - beats[i - 1] > pause && !crosses_loss(beats[i - 1], beats[i], loss, nloss)) {
            npause++;
        }
    }
    if (npause > 0) {
        out->pauses = rdx_mallocarray(npause, sizeof *out->pauses);
        if (out->pauses == NULL) {
            rdx_ecg_summary_free(out);
            return rdx_error_set(err, RDX_ENOMEM, "summary: out of memory");
        }
    }
    /* One pass: sums for the mean and SD (Welford, stable over 24 h), the
     * successive differences, and a window of the last RRs for min/max HR. */
    double mean = 0.0, m2 = 0.0, sq = 0.0, prev = 0.0;
    size_t nrr = 0, ndiff = 0;
    double win[RDX_ECG_HR_AVG_BEATS];
    size_t nwin = 0, wpos = 0;
    double wsum = 0.0;
    double hrmin = INFINITY, hrmax = -INFINITY;
    int have_prev = 0;
    for (size_t i = 1; i < nbeats; i++) {
        if (crosses_loss(beats[i - 1], beats[i], loss, nloss)) {
            have_prev = 0;
            nwin = wpos = 0;
            wsum = 0.0;
            continue;
        }
        double rr = (double)(beats[i] - beats[i - 1]) * 1000.0 / fs_hz;
        if (beats[i] - beats[i - 1] > pause) {
            out->pauses[out->npauses].start = beats[i - 1];
            out->pauses[out->npauses].end = beats[i];
            out->npauses++;
        }
        nrr++;
        double delta = rr - mean;
        mean += delta / (double)nrr;
        m2 += delta * (rr - mean);
        if (have_prev) {
            sq += (rr - prev) * (rr - prev);
            ndiff++;
        }
        prev = rr;
        have_prev = 1;
        if (nwin == RDX_ECG_HR_AVG_BEATS) {
            wsum -= win[wpos];
        } else {
            nwin++;
        }
        win[wpos] = rr;
        wsum += rr;
        wpos = (wpos + 1) % RDX_ECG_HR_AVG_BEATS;
        if (nwin == RDX_ECG_HR_AVG_BEATS) {
            double hr = 60000.0 * (double)nwin / wsum;
            hrmin = hr < hrmin ? hr : hrmin;
            hrmax = hr > hrmax ? hr : hrmax;
        }
    }
    out->nrr = nrr;
    if (nrr > 0) {
        out->rr_mean_ms = mean;
        out->hr_mean_bpm = 60000.0 / mean;
        if (hrmin > hrmax) {
            /* Fewer intervals than the averaging window: a short strip (a
             * 10 s resting ECG at a slow rate); use what there is. */
            hrmin = hrmax = out->hr_mean_bpm;
        }
        out->hr_min_bpm = hrmin;
        out->hr_max_bpm = hrmax;
    }
    if (nrr > 1) {
        out->sdnn_ms = sqrt(m2 / (double)(nrr - 1));
    }
    if (ndiff > 0) {
        out->rmssd_ms = sqrt(sq / (double)ndiff);
    }
    return RDX_OK;
}
