/*
 * rdx/ecg.h - the ECG engine: WFDB and CSV records, annotation files,
 * conditioning filters, the streaming QRS detector, beat-by-beat scoring and
 * rhythm summaries.
 *
 * All handles are opaque; each _new has a matching _free, and _free(NULL) is
 * a no-op. Functions return rdx_status and fill a caller's rdx_error with a
 * message naming the file and line or sample offset that is wrong. One handle
 * must not be used by two threads at once; distinct handles are independent.
 */
#ifndef RDX_ECG_H
#define RDX_ECG_H

#include "rdx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Records and annotations (ecg/wfdb*.c, ecg/csv*.c, ecg/ann*.c) ====== */

/* ==== Conditioning and detection (ecg/filter*.c, ecg/qrs*.c) ============= */

/*
 * Streaming multi-lead QRS detector (ecg/qrs.c).
 *
 * The caller pushes frames (one float per lead, interleaved, in millivolts;
 * NaN marks a missing sample) in blocks of any size, and gets each beat back
 * through beat_fn at most RDX_ECG_QRS_MAX_LATENCY_S seconds of signal after
 * its R peak. The same samples give the same beats whatever the block sizes:
 * batch processing and live monitoring run this one code path. Every time
 * constant is in seconds, so any frequency from RDX_ECG_QRS_MIN_FS to
 * RDX_ECG_QRS_MAX_FS works. Spans where every lead is flat or missing for at
 * least loss_min_s are reported through loss_fn and yield no beats.
 */
#define RDX_ECG_QRS_MIN_FS        100.0
#define RDX_ECG_QRS_MAX_FS        2000.0
#define RDX_ECG_QRS_MAX_LATENCY_S 0.3
#define RDX_ECG_QRS_MAX_LEADS     16

typedef struct rdx_ecg_detector rdx_ecg_detector;

/* One detected beat. */
typedef struct rdx_ecg_beat {
    int64_t sample; /* R peak, 0-based sample number since the stream start */
    int lead;       /* the lead the R peak was placed on */
    float amp_mv;   /* signed R amplitude on that lead, baseline removed */
} rdx_ecg_beat;

/* Called once per beat, in time order, from inside push() or flush(). */
typedef void (*rdx_ecg_beat_fn)(void *user, const rdx_ecg_beat *beat);
/* Called once per signal-loss span [start, end) (samples), in time order. */
typedef void (*rdx_ecg_loss_fn)(void *user, int64_t start, int64_t end);

typedef struct rdx_ecg_detector_config {
    double fs_hz;            /* sampling frequency, RDX_ECG_QRS_MIN_FS..MAX_FS */
    size_t nleads;           /* leads per frame, 1..RDX_ECG_QRS_MAX_LEADS */
    double loss_min_s;       /* shortest flat/missing span reported as loss (1 s) */
    double flat_mv;          /* a lead moving less than this is flat (0.01 mV) */
    rdx_ecg_beat_fn beat_fn; /* may be NULL */
    rdx_ecg_loss_fn loss_fn; /* may be NULL */
    void *user;              /* passed to both callbacks */
} rdx_ecg_detector_config;

/* Fill cfg with the defaults above (fs_hz 360, one lead, no callbacks). */
void rdx_ecg_detector_config_init(rdx_ecg_detector_config *cfg);

/*
 * Make a detector. All memory is allocated here; push and flush allocate
 * nothing. *out gets the handle (free it with rdx_ecg_detector_free).
 * Errors: RDX_EINVAL for a NULL argument or a frequency or lead count out of
 * range, RDX_ENOMEM. The configuration is copied.
 */
rdx_status rdx_ecg_detector_new(const rdx_ecg_detector_config *cfg, rdx_ecg_detector **out,
                                rdx_error *err);

/*
 * Push nframes frames (nframes * nleads floats, interleaved). Beats and loss
 * spans that become certain are delivered through the callbacks before it
 * returns. frames may be NULL only when nframes is 0. RDX_ESTATE after flush.
 */
rdx_status rdx_ecg_detector_push(rdx_ecg_detector *d, const float *frames, size_t nframes,
                                 rdx_error *err);

/*
 * End of the stream: deliver the beats and the loss span still pending. No
 * push is allowed afterwards (RDX_ESTATE).
 */
rdx_status rdx_ecg_detector_flush(rdx_ecg_detector *d, rdx_error *err);

/* Frames pushed so far. */
int64_t rdx_ecg_detector_samples(const rdx_ecg_detector *d);

/* Free the detector; NULL is a no-op. */
void rdx_ecg_detector_free(rdx_ecg_detector *d);

/* ==== Scoring and summaries (ecg/eval*.c, ecg/summary*.c) ================ */

#ifdef __cplusplus
}
#endif

#endif /* RDX_ECG_H */
