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

/*
 * A sample value that is not valid (lost signal, lead off). The reader maps
 * each format's reserved code (the most negative value of its width: -2048
 * for 212, -32768 for 16, ...) to this, as WFDB's getvec maps it to
 * WFDB_INVALID_SAMPLE. Filters and detectors must test for it.
 */
#define RDX_ECG_SAMPLE_INVALID INT32_MIN

/* What a WFDB header (.hea) says about one signal, or what a CSV column is. */
typedef struct rdx_ecg_signal_info {
    const char *file_name;      /* signal file as named in the header ("100.dat"); CSV path */
    int format;                 /* WFDB storage format (212, 16, ...); 0 for CSV */
    unsigned samples_per_frame; /* the "x" modifier; 1 unless multi-frequency */
    unsigned skew_frames;       /* the ":" modifier, converted to frames */
    uint64_t byte_offset;       /* the "+" modifier: bytes before sample 0 in the file */
    double gain_adu_per_unit;   /* ADC units per physical unit; 200 when not calibrated */
    int calibrated;             /* 0 when the header's gain was 0 or missing */
    int32_t baseline_adu;       /* ADC value of 0 physical units (defaults to adc_zero) */
    const char *units;          /* physical units ("mV" when the header names none) */
    unsigned adc_resolution;    /* bits */
    int32_t adc_zero;           /* ADC value at the middle of its range */
    int32_t initial_value;      /* first sample (used by format 8) */
    int has_checksum;           /* the header gave a checksum */
    int32_t checksum;           /* 16-bit sum of all samples, as the header gives it */
    unsigned block_size;        /* block size in bytes (0: not blocked) */
    const char *description;    /* "MLII"; "" when the header has none */
} rdx_ecg_signal_info;

/* What a record's header says as a whole. Strings live as long as the record. */
typedef struct rdx_ecg_record_info {
    const char *name;      /* record name ("100") */
    size_t nsig;           /* number of signals (leads) */
    double fs_hz;          /* frame (sampling) frequency */
    double counter_hz;     /* counter frequency (fs_hz when not given) */
    double base_counter;   /* counter value at sample 0 */
    uint64_t nsamp;        /* frames per signal that will be read */
    uint64_t nsamp_header; /* frames the header announced (0: not given) */
    int has_base_time;     /* base time given */
    uint32_t base_time_ms; /* milliseconds since midnight */
    int has_base_date;     /* base date given */
    int base_day, base_month, base_year;
    const rdx_ecg_signal_info *sig; /* nsig entries */
    size_t ncomments;               /* comment lines ("# ..."), in header order */
    const char *const *comments;    /* text after the '#', without line ending */
} rdx_ecg_record_info;

/* Options for opening a record. Zero-initialise, then set what you need. */
typedef struct rdx_ecg_record_opts {
    /* A signal file shorter than the header says is an error (RDX_ESHORT)
     * unless this is set; then the record ends where the data ends and
     * info.nsamp < info.nsamp_header. */
    int allow_short;
    /* Do not verify the header's checksums at the end of the record. */
    int skip_checksum;
    /* Parse the header only: signal files are neither opened nor checked,
     * info.nsamp is the header's, and reads fail with RDX_ESTATE (for tools
     * that need the frequency and length, such as scoring). */
    int header_only;
    /* CSV only: sampling frequency (required, > 0) and the ADC units per
     * physical unit used to turn the CSV's values into integer samples
     * (0 means 1000, i.e. 1 uV resolution for values in mV). */
    double csv_fs_hz;
    double csv_gain;
    /* CSV only: physical units of the values (NULL means "mV"). */
    const char *csv_units;
    /* Where warnings go (record name that differs from the file name, ...);
     * NULL is silent. */
    const rdx_logger *log;
} rdx_ecg_record_opts;

typedef struct rdx_ecg_record rdx_ecg_record;

/*
 * Open a record for streaming. path is a WFDB header ("x/100.hea"), a record
 * path without extension ("x/100"), or a CSV upload ending in ".csv" (one
 * column per lead, a header row of lead names, opts->csv_fs_hz required).
 * Signal files are looked up beside the header; their names must not contain
 * a directory separator. The header is parsed, every signal file is opened
 * and its length checked against the header here, so a missing or short .dat
 * fails now, not in the middle of a read.
 * opts may be NULL (defaults). On success *out owns the open files and must
 * be freed with rdx_ecg_record_free(). Errors: RDX_ENOENT (no header, no
 * .dat), RDX_EPARSE (bad header line; message "x/100.hea:3: ..."),
 * RDX_EFORMAT (unknown format, multi-segment record), RDX_ERANGE or
 * RDX_ELIMIT (absurd values, see ecg/ecg_limits.h), RDX_ESHORT (a signal file
 * holds fewer samples than the header says: expected and found are named),
 * RDX_EINVAL (NULL path/out, CSV without a frequency), RDX_ENOMEM.
 * Thread safety: the handle is for one thread at a time.
 */
rdx_status rdx_ecg_record_open(const char *path, const rdx_ecg_record_opts *opts,
                               rdx_ecg_record **out, rdx_error *err);

/* The record's description; owned by rec, valid until rdx_ecg_record_free().
 * Never NULL for a valid rec. */
const rdx_ecg_record_info *rdx_ecg_record_info_get(const rdx_ecg_record *rec);

/*
 * Read up to max_frames (>= 1) frames from the current position into frames,
 * which has room for max_frames * info.nsig values: frame-interleaved, signal 0
 * first (frames[i * nsig + s]), in ADC units, skew corrected (a skewed
 * signal reads RDX_ECG_SAMPLE_INVALID for the frames its skew moves past the
 * end). Signals with several samples per frame give their frame average, or
 * invalid when one of them is (as WFDB's getvec in low-resolution mode). Any
 * block size works; memory stays bounded whatever the record's length.
 * *got receives the frames delivered; 0 with RDX_OK means the end of the
 * record. When the read that reaches the end finds a header checksum that
 * does not match, it still delivers its frames (*got > 0) and returns
 * RDX_ECHECKSUM naming the signal; checksums are verified only when the
 * record was read from frame 0 to the end without seeking. Errors name the
 * file and sample offset: RDX_ESHORT (file truncated while reading), RDX_EIO,
 * RDX_EPARSE (CSV row), RDX_EINVAL (NULL pointer, max_frames 0), RDX_ESTATE
 * (opened header_only). After an error other than RDX_ECHECKSUM the position
 * is unspecified; seek or free.
 */
rdx_status rdx_ecg_record_read(rdx_ecg_record *rec, int32_t *frames, size_t max_frames, size_t *got,
                               rdx_error *err);

/*
 * As rdx_ecg_record_read() but in physical units: (adu - baseline) / gain
 * (computed in double as a product with the reciprocal gain, then rounded
 * to float), NAN for an invalid sample. Shares the position with rdx_ecg_record_read().
 */
rdx_status rdx_ecg_record_read_phys(rdx_ecg_record *rec, float *frames, size_t max_frames,
                                    size_t *got, rdx_error *err);

/*
 * Move to frame (0 <= frame <= info.nsamp). Seeking disables checksum
 * verification unless frame is 0. RDX_ERANGE past the end; RDX_EIO.
 */
rdx_status rdx_ecg_record_seek(rdx_ecg_record *rec, uint64_t frame, rdx_error *err);

/* Frame the next read starts at. */
uint64_t rdx_ecg_record_tell(const rdx_ecg_record *rec);

/* Close the files and free the record. NULL is a no-op. */
void rdx_ecg_record_free(rdx_ecg_record *rec);

/*
 * Split a RECORD argument ("x/100.hea", "x/100", "x/100.csv") into the
 * directory and the record name: dir receives "x" ("." when there is none),
 * name "100". Returns RDX_EINVAL when the name is empty or a buffer is too
 * small. Thread-safe.
 */
rdx_status rdx_ecg_record_split_path(const char *path, char *dir, size_t dirsz, char *name,
                                     size_t namesz);

/* ---- Writing WFDB records (format 16) ---- */

/* What to write. sig[i] gives gain, baseline, units, adc_resolution,
 * adc_zero and description; its file, format, checksum and initial value
 * fields are ignored (the writer fills them in). */
typedef struct rdx_ecg_writer_cfg {
    const char *dir;  /* output directory (must exist) */
    const char *name; /* record name: writes dir/name.hea and dir/name.dat */
    double fs_hz;
    size_t nsig;
    const rdx_ecg_signal_info *sig;
    size_t ncomments;
    const char *const *comments; /* written as "# text" lines; may be NULL */
    /* Clip values outside -32767..32767 to that range instead of failing
     * with RDX_ERANGE (for filtered output that may overshoot). */
    int clip;
} rdx_ecg_writer_cfg;

typedef struct rdx_ecg_writer rdx_ecg_writer;

/*
 * Start writing a WFDB record in format 16 (16-bit little-endian, the
 * signals interleaved in one .dat) that PhysioNet's tools read. Samples are
 * written to a temporary file; rdx_ecg_writer_finish() renames it into place
 * and then writes the header (with nsamp, initial values and checksums), so a
 * failure never leaves a half-written record under the final names. cfg is
 * copied. Errors: RDX_EINVAL (bad cfg), RDX_ELIMIT, RDX_EIO, RDX_ENOMEM.
 */
rdx_status rdx_ecg_writer_new(const rdx_ecg_writer_cfg *cfg, rdx_ecg_writer **out, rdx_error *err);

/*
 * Append nframes frame-interleaved frames (nframes * nsig values) in ADC
 * units. RDX_ECG_SAMPLE_INVALID is written as format 16's invalid code
 * (-32768); any other value outside -32767..32767 is RDX_ERANGE naming the
 * signal and frame (nothing of that call is written), unless cfg.clip is set.
 * nframes may be 0.
 */
rdx_status rdx_ecg_writer_write(rdx_ecg_writer *w, const int32_t *frames, size_t nframes,
                                rdx_error *err);

/* Flush, fsync and publish the .dat, then write the .hea atomically. */
rdx_status rdx_ecg_writer_finish(rdx_ecg_writer *w, rdx_error *err);

/* Free the writer; if it was not finished, its temporary file is removed.
 * NULL is a no-op. */
void rdx_ecg_writer_free(rdx_ecg_writer *w);

/* ---- Annotations (MIT format, as PhysioNet's rdann and wrann read and write) ---- */

/* Annotation codes of WFDB's <ecgcodes.h>. */
enum {
    RDX_ECG_ANN_NOTQRS = 0,    /* not-QRS (null annotation) */
    RDX_ECG_ANN_NORMAL = 1,    /* N normal beat */
    RDX_ECG_ANN_LBBB = 2,      /* L left bundle branch block beat */
    RDX_ECG_ANN_RBBB = 3,      /* R right bundle branch block beat */
    RDX_ECG_ANN_ABERR = 4,     /* a aberrated atrial premature beat */
    RDX_ECG_ANN_PVC = 5,       /* V premature ventricular contraction */
    RDX_ECG_ANN_FUSION = 6,    /* F fusion of ventricular and normal beat */
    RDX_ECG_ANN_NPC = 7,       /* J nodal (junctional) premature beat */
    RDX_ECG_ANN_APC = 8,       /* A atrial premature contraction */
    RDX_ECG_ANN_SVPB = 9,      /* S premature or ectopic supraventricular beat */
    RDX_ECG_ANN_VESC = 10,     /* E ventricular escape beat */
    RDX_ECG_ANN_NESC = 11,     /* j nodal (junctional) escape beat */
    RDX_ECG_ANN_PACE = 12,     /* / paced beat */
    RDX_ECG_ANN_UNKNOWN = 13,  /* Q unclassifiable beat */
    RDX_ECG_ANN_NOISE = 14,    /* ~ signal quality change */
    RDX_ECG_ANN_ARFCT = 16,    /* | isolated QRS-like artifact */
    RDX_ECG_ANN_STCH = 18,     /* s ST change */
    RDX_ECG_ANN_TCH = 19,      /* T T-wave change */
    RDX_ECG_ANN_SYSTOLE = 20,  /* * systole */
    RDX_ECG_ANN_DIASTOLE = 21, /* D diastole */
    RDX_ECG_ANN_NOTE = 22,     /* " comment annotation */
    RDX_ECG_ANN_MEASURE = 23,  /* = measurement annotation */
    RDX_ECG_ANN_PWAVE = 24,    /* p P-wave peak */
    RDX_ECG_ANN_BBB = 25,      /* B left or right bundle branch block */
    RDX_ECG_ANN_PACESP = 26,   /* ^ non-conducted pacer spike */
    RDX_ECG_ANN_TWAVE = 27,    /* t T-wave peak */
    RDX_ECG_ANN_RHYTHM = 28,   /* + rhythm change (aux holds the rhythm) */
    RDX_ECG_ANN_UWAVE = 29,    /* u U-wave peak */
    RDX_ECG_ANN_LEARN = 30,    /* ? learning */
    RDX_ECG_ANN_FLWAV = 31,    /* ! ventricular flutter wave */
    RDX_ECG_ANN_VFON = 32,     /* [ start of ventricular flutter/fibrillation */
    RDX_ECG_ANN_VFOFF = 33,    /* ] end of ventricular flutter/fibrillation */
    RDX_ECG_ANN_AESC = 34,     /* e atrial escape beat */
    RDX_ECG_ANN_SVESC = 35,    /* n supraventricular escape beat */
    RDX_ECG_ANN_LINK = 36,     /* @ link to external data (aux holds a URL) */
    RDX_ECG_ANN_NAPC = 37,     /* x non-conducted P-wave (blocked APB) */
    RDX_ECG_ANN_PFUS = 38,     /* f fusion of paced and normal beat */
    RDX_ECG_ANN_WFON = 39,     /* ( waveform onset */
    RDX_ECG_ANN_WFOFF = 40,    /* ) waveform end */
    RDX_ECG_ANN_RONT = 41,     /* r R-on-T premature ventricular contraction */
    RDX_ECG_ANN_ACMAX = 49     /* largest annotation code */
};

/* One annotation. aux points at aux_len bytes (followed by a NUL the set
 * adds), or is NULL when aux_len is 0. */
typedef struct rdx_ecg_ann {
    int64_t sample;  /* time, in samples from the start of the record */
    uint8_t code;    /* annotation type, 0..58 (RDX_ECG_ANN_*) */
    int8_t subtype;  /* "subtyp" (e.g. noise bits for NOISE) */
    uint8_t chan;    /* signal number */
    int8_t num;      /* "num" field */
    uint8_t aux_len; /* bytes of aux data, 0..255 */
    const uint8_t *aux;
} rdx_ecg_ann;

typedef struct rdx_ecg_annset rdx_ecg_annset;

/*
 * Annotation sets hold annotations in the order they were added (the order
 * of the file). A set is not safe for concurrent writers; concurrent readers
 * of a set nobody modifies are fine. Functions taking a NULL set return
 * RDX_EINVAL (or 0 / do nothing, for count and free).
 */

/* Make an empty annotation set; free with rdx_ecg_annset_free(). */
rdx_status rdx_ecg_annset_new(rdx_ecg_annset **out, rdx_error *err);
/* Append a copy of a (aux bytes included). RDX_EINVAL for a code > 58 or a
 * negative time, RDX_ELIMIT past RDX_ECG_MAX_ANNOTATIONS, RDX_ENOMEM. */
rdx_status rdx_ecg_annset_add(rdx_ecg_annset *set, const rdx_ecg_ann *a, rdx_error *err);
/* Number of annotations (0 for NULL). */
size_t rdx_ecg_annset_count(const rdx_ecg_annset *set);
/* Fill *out with annotation i (i < count). out->aux stays valid until the
 * next add or the set's free. Returns RDX_ERANGE for a bad index. */
rdx_status rdx_ecg_annset_get(const rdx_ecg_annset *set, size_t i, rdx_ecg_ann *out);
/* The "## time resolution: F" a file declared (annotation times are then in
 * units of 1/F s), or 0 when it declares none. */
double rdx_ecg_annset_time_resolution(const rdx_ecg_annset *set);
/* Free the set. NULL is a no-op. */
void rdx_ecg_annset_free(rdx_ecg_annset *set);

/*
 * Decode an MIT-format annotation file held in memory, as the WFDB library's
 * getann() does: the SKIP, NUM, SUB, CHN and AUX pseudo-annotations are
 * applied (NUM and CHN carry over to later annotations, SUB and AUX do not),
 * and the file ends at its end-of-file word. name is used in messages. On
 * success *out is a new set. Errors name the byte offset: RDX_ESHORT (a SKIP
 * or AUX cut off, no end-of-file word), RDX_ERANGE (a time before 0),
 * RDX_ELIMIT, RDX_ENOMEM. Thread-safe.
 */
rdx_status rdx_ecg_ann_parse(const uint8_t *data, size_t len, const char *name,
                             rdx_ecg_annset **out, rdx_error *err);

/* Read and decode the annotation file at path (RDX_ENOENT when absent). */
rdx_status rdx_ecg_ann_read(const char *path, rdx_ecg_annset **out, rdx_error *err);

/*
 * Encode set in MIT format exactly as WFDB's putann() does (a SKIP before a
 * gap over 1023 samples or a step back, SUB when the subtype is nonzero, CHN
 * and NUM when they change, AUX padded to even length, a closing zero word),
 * appending to out. A file read with rdx_ecg_ann_read() and encoded again is
 * byte-identical to one written by wrann.
 */
rdx_status rdx_ecg_ann_encode(const rdx_ecg_annset *set, rdx_buf *out, rdx_error *err);

/* Encode set and write it to path atomically (rdx_file_write_atomic()). */
rdx_status rdx_ecg_ann_write(const char *path, const rdx_ecg_annset *set, rdx_error *err);

/* Mnemonic of an annotation code ("N", "V", "+"); "" for an unused code. */
const char *rdx_ecg_ann_mnemonic(int code);
/* Code of a mnemonic, or -1. */
int rdx_ecg_ann_code(const char *mnemonic);
/* Nonzero when code denotes a QRS complex (WFDB's isqrs()): N L R a V F J A
 * S E j / Q B ? ! e n f r. */
int rdx_ecg_ann_isqrs(int code);

/* ==== Conditioning and detection (ecg/filter*.c, ecg/qrs*.c) ============= */

/*
 * Conditioning filter (ecg/filter.c): one linear-phase FIR kernel that
 * removes baseline wander (high-pass), mains interference (a notch at 50 or
 * 60 Hz) and out-of-band noise (low-pass: 40 Hz for monitoring, 150 Hz for
 * diagnosis), applied by overlap-save FFT convolution (FFTW). The kernel is
 * symmetric, so every frequency is delayed by the same (L - 1) / 2 samples;
 * the filter compensates that delay, so output frame k lines up with input
 * frame k. Before the first and after the last sample the signal is taken
 * to continue as its odd reflection about that sample (as filtfilt pads). Output values do not
 * depend on how the input is split into pushes (blocks are cut at fixed positions).
 */
#define RDX_ECG_FILTER_KERNEL_S 6.0 /* kernel length: 0.55 Hz transition bands */

typedef struct rdx_ecg_filter rdx_ecg_filter;

/* Called with nframes filtered frames (interleaved), the first being frame
 * first_frame of the stream; the data is valid during the call only. */
typedef void (*rdx_ecg_filter_out_fn)(void *user, const float *frames, size_t nframes,
                                      int64_t first_frame);

typedef struct rdx_ecg_filter_config {
    double fs_hz;       /* RDX_ECG_QRS_MIN_FS..RDX_ECG_QRS_MAX_FS */
    size_t nleads;      /* 1..RDX_ECG_MAX_FILTER_LEADS */
    double highpass_hz; /* baseline-wander cut-off (-6 dB); 0.5; 0 = none */
    double mains_hz;    /* notch centre: 50 (default), 60, or 0 = none */
    double lowpass_hz;  /* 40 (default) or 150; 0, or at or above fs/2: none */
    rdx_ecg_filter_out_fn out_fn;
    void *user;
} rdx_ecg_filter_config;

#define RDX_ECG_MAX_FILTER_LEADS 64

/* Defaults: 360 Hz, one lead, 0.5 Hz high-pass, 50 Hz notch, 40 Hz low-pass. */
void rdx_ecg_filter_config_init(rdx_ecg_filter_config *cfg);

/*
 * Design the kernel and make the FFTW plans and buffers; push and flush
 * allocate nothing. Errors: RDX_EINVAL (NULL, frequency or lead count out of
 * range, a notch that does not fit below fs/2, high-pass above low-pass),
 * RDX_ENOMEM. Thread safety: FFTW's planner is not thread-safe, so calls of
 * rdx_ecg_filter_new() and rdx_ecg_filter_free() must not run on two threads
 * at once (serialise them); push and flush on distinct filters may.
 */
rdx_status rdx_ecg_filter_new(const rdx_ecg_filter_config *cfg, rdx_ecg_filter **out,
                              rdx_error *err);

/* Push nframes frames (interleaved floats, NaN = missing: it stays NaN in
 * the output and is bridged by the last valid value inside the filter).
 * Filtered frames come out through out_fn, delayed by at most one FFT block.
 * RDX_ESTATE after flush. */
rdx_status rdx_ecg_filter_push(rdx_ecg_filter *f, const float *frames, size_t nframes,
                               rdx_error *err);

/* Deliver the remaining frames (every pushed frame comes out exactly once). */
rdx_status rdx_ecg_filter_flush(rdx_ecg_filter *f, rdx_error *err);

/* Kernel length in taps (odd), and the compensated delay (taps - 1) / 2. */
size_t rdx_ecg_filter_taps(const rdx_ecg_filter *f);

/* Gain of the designed kernel at freq_hz (for checks and documentation). */
double rdx_ecg_filter_gain(const rdx_ecg_filter *f, double freq_hz);

/* Free the filter (see the thread-safety note at _new). NULL is a no-op. */
void rdx_ecg_filter_free(rdx_ecg_filter *f);

/*
 * Streaming multi-lead QRS detector (ecg/qrs.c).
 *
 * The caller pushes frames (one float per lead, interleaved, in millivolts;
 * NaN or an infinite value marks a missing sample) in blocks of any size, and
 * gets each beat back
 * through beat_fn at most RDX_ECG_QRS_MAX_LATENCY_S seconds of signal after
 * its R peak. The same samples give the same beats whatever the block sizes:
 * batch processing and live monitoring run this one code path. Every time
 * constant is in seconds, so any frequency from RDX_ECG_QRS_MIN_FS to
 * RDX_ECG_QRS_MAX_FS works. Spans where every lead is flat or missing for at
 * least loss_min_s are reported through loss_fn and yield no beats.
 *
 * Callbacks run on the caller's thread inside push() or flush() and must not
 * call back into the same detector. A detector is used by one thread at a
 * time; distinct detectors are independent (no shared state).
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

/* Frames taken in so far (inside a callback: up to the frame being decided,
 * so at a beat this minus the beat's sample is its latency). 0 for NULL. */
int64_t rdx_ecg_detector_samples(const rdx_ecg_detector *d);

/* Free the detector; NULL is a no-op. */
void rdx_ecg_detector_free(rdx_ecg_detector *d);

/* ---- Rhythm summary (ecg/summary.c) ---- */

/* A span of samples [start, end). */
typedef struct rdx_ecg_span {
    int64_t start;
    int64_t end;
} rdx_ecg_span;

/*
 * Rhythm figures of one record from its beats. RR intervals that span a
 * signal-loss interval are left out of every figure (the beats between are
 * unknown). No beat classification is made, so SDNN and RMSSD are over all
 * RR intervals, ectopic beats included.
 */
typedef struct rdx_ecg_summary {
    size_t nbeats;
    size_t nrr;           /* RR intervals used */
    double duration_s;    /* record length */
    double hr_mean_bpm;   /* 60 / mean RR; NAN with no RR */
    double hr_min_bpm;    /* lowest and highest heart rate averaged over */
    double hr_max_bpm;    /* RDX_ECG_HR_AVG_BEATS consecutive RRs (Holter style) */
    double rr_mean_ms;    /* NAN with no RR */
    double sdnn_ms;       /* standard deviation of RR; NAN with fewer than 2 */
    double rmssd_ms;      /* root mean square of successive RR differences */
    size_t npauses;       /* RR intervals longer than RDX_ECG_PAUSE_S */
    rdx_ecg_span *pauses; /* [beat, next beat), npauses entries */
    size_t nloss;
    rdx_ecg_span *loss; /* copy of the loss spans given */
} rdx_ecg_summary;

#define RDX_ECG_PAUSE_S      2.0
#define RDX_ECG_HR_AVG_BEATS 8

/*
 * Compute the summary of beats (R-peak samples, ascending) and loss spans
 * (ascending, not overlapping) of a record of nsamp samples at fs_hz. *out is
 * overwritten; free its arrays with rdx_ecg_summary_free(). beats and loss
 * may be NULL when their count is 0. Errors: RDX_EINVAL (fs_hz <= 0, beats
 * out of order), RDX_ENOMEM. Thread-safe.
 */
rdx_status rdx_ecg_summary_compute(const int64_t *beats, size_t nbeats, const rdx_ecg_span *loss,
                                   size_t nloss, double fs_hz, int64_t nsamp, rdx_ecg_summary *out,
                                   rdx_error *err);

/* Free the arrays of a summary and zero it. NULL is a no-op. */
void rdx_ecg_summary_free(rdx_ecg_summary *s);

/* ==== Resampling (ecg/resample.c) ========================================= */

/*
 * A streaming rational resampler: frames at fs_in come out at fs_out, output
 * frame j being the band-limited interpolation of the input at time
 * j / fs_out. It is a polyphase windowed-sinc FIR (Blackman window, 16 zero
 * crossings each side at the lower of the two rates, cut-off at 0.45 of the
 * lower rate, every phase's taps summing to one so a constant stays exact).
 * Before the first and after the last input frame the signal is taken to
 * continue at that frame's value. The two frequencies are taken to a
 * millihertz and their ratio must reduce to at most RDX_ECG_RESAMPLE_MAX_PHASES
 * output phases. Used to check the detector at other rates (`rdx ecg detect
 * --resample`); a NaN (missing) input sample makes the outputs near it NaN.
 * Output does not depend on how the input is split into pushes.
 */
typedef struct rdx_ecg_resampler rdx_ecg_resampler;

#define RDX_ECG_RESAMPLE_MAX_PHASES 4096

/* Called with nframes output frames (interleaved), valid during the call only. */
typedef void (*rdx_ecg_resample_out_fn)(void *user, const float *frames, size_t nframes);

/*
 * Make a resampler for nch interleaved channels (1..RDX_ECG_MAX_FILTER_LEADS)
 * from fs_in to fs_out (each in (0, RDX_ECG_MAX_FS_HZ]); out_fn receives the
 * output. Tables and buffers are made here; push and flush allocate nothing.
 * Errors: RDX_EINVAL (NULL out or out_fn, a frequency or channel count out of
 * range, a ratio needing too many phases), RDX_ENOMEM. *out is NULL on error.
 * Distinct resamplers may be used on distinct threads.
 */
rdx_status rdx_ecg_resampler_new(double fs_in, double fs_out, size_t nch,
                                 rdx_ecg_resample_out_fn out_fn, void *user,
                                 rdx_ecg_resampler **out, rdx_error *err);

/* Push nframes input frames; completed output frames go to out_fn. RDX_EINVAL
 * for a NULL resampler or frames with nframes > 0; RDX_ESTATE after flush. */
rdx_status rdx_ecg_resampler_push(rdx_ecg_resampler *r, const float *frames, size_t nframes,
                                  rdx_error *err);

/* Deliver the rest: in all, ceil(frames_in * fs_out / fs_in) output frames
 * (as the ratio reduces). RDX_ESTATE when called twice. */
rdx_status rdx_ecg_resampler_flush(rdx_ecg_resampler *r, rdx_error *err);

/* Free the resampler; NULL is a no-op. */
void rdx_ecg_resampler_free(rdx_ecg_resampler *r);

/* ==== Scoring and summaries (ecg/eval*.c, ecg/summary*.c) ================ */

/*
 * Beat-by-beat comparison of a test annotation set (a detector's output)
 * with a reference set, by the rules of ANSI/AAMI EC57 as PhysioNet's bxb
 * implements them: only QRS annotations (rdx_ecg_ann_isqrs()) take part; a
 * test and a reference beat are paired when they lie within the match window
 * of each other and no neighbour is a closer match; reference ventricular
 * flutter episodes ('[' to ']') are skipped; test beats in reference
 * shutdown (NOISE with subtype bits 4 and 5 set) are false positives and
 * reference beats in test shutdown false negatives. The counts equal bxb's
 * on the same files.
 */
typedef struct rdx_ecg_eval_opts {
    double fs_hz;         /* sampling frequency of the record (required, > 0) */
    int64_t start_sample; /* scoring starts at the first reference beat at or after this
                           * (bxb -f; EC57's convention is 5 minutes) */
    int64_t end_sample;   /* > 0: stop after this sample (bxb's default is the record
                           * length); 0: at the end of either set; -1: at the end of the
                           * reference set */
    double window_s;      /* match window; 0 means EC57's 0.150 s */
} rdx_ecg_eval_opts;

/* Result of one comparison, or a sum of them. */
typedef struct rdx_ecg_eval_counts {
    uint64_t tp;        /* reference beats matched by a test beat */
    uint64_t fn;        /* reference beats missed */
    uint64_t fp;        /* test beats matching no reference beat */
    uint64_t nmatched;  /* pairs behind the offset below (= tp) */
    int64_t offset_sum; /* sum of (test - reference) sample times over the pairs */
} rdx_ecg_eval_counts;

/*
 * Compare test against ref. Annotation times are rescaled to opts->fs_hz when
 * a set declares its own time resolution. *out is overwritten. Errors:
 * RDX_EINVAL (NULL argument, fs_hz <= 0, negative window). Thread-safe; the
 * sets are only read.
 */
rdx_status rdx_ecg_eval_compare(const rdx_ecg_annset *ref, const rdx_ecg_annset *test,
                                const rdx_ecg_eval_opts *opts, rdx_ecg_eval_counts *out,
                                rdx_error *err);

/* total += c (gross totals over records). */
void rdx_ecg_eval_add(rdx_ecg_eval_counts *total, const rdx_ecg_eval_counts *c);

/* QRS sensitivity TP / (TP + FN) in percent; NAN when there is no reference beat. */
double rdx_ecg_eval_se(const rdx_ecg_eval_counts *c);
/* Positive predictivity TP / (TP + FP) in percent; NAN when there is no test beat. */
double rdx_ecg_eval_ppv(const rdx_ecg_eval_counts *c);

#ifdef __cplusplus
}
#endif

#endif /* RDX_ECG_H */
