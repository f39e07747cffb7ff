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

/* ==== Scoring and summaries (ecg/eval*.c, ecg/summary*.c) ================ */

#ifdef __cplusplus
}
#endif

#endif /* RDX_ECG_H */
