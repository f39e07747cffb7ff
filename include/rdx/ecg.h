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
 * Read up to max_frames frames from the current position into frames, which
 * has room for max_frames * info.nsig values: frame-interleaved, signal 0
 * first (frames[i * nsig + s]), in ADC units, skew corrected. Signals with
 * several samples per frame give their frame average (as WFDB's getvec). Any
 * block size works; memory stays bounded whatever the record's length.
 * *got receives the frames delivered; 0 with RDX_OK means the end of the
 * record. When the read that reaches the end finds a header checksum that
 * does not match, it still delivers its frames (*got > 0) and returns
 * RDX_ECHECKSUM naming the signal; checksums are verified only when the
 * record was read from frame 0 to the end without seeking. Errors name the
 * file and sample offset: RDX_ESHORT (file truncated while reading), RDX_EIO,
 * RDX_EPARSE (CSV row). After an error other than RDX_ECHECKSUM the position
 * is unspecified; seek or free.
 */
rdx_status rdx_ecg_record_read(rdx_ecg_record *rec, int32_t *frames, size_t max_frames, size_t *got,
                               rdx_error *err);

/*
 * As rdx_ecg_record_read() but in physical units: (adu - baseline) / gain,
 * NAN for an invalid sample. Shares the position with rdx_ecg_record_read().
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
 * signal and frame (nothing of that call is written).
 */
rdx_status rdx_ecg_writer_write(rdx_ecg_writer *w, const int32_t *frames, size_t nframes,
                                rdx_error *err);

/* Flush, fsync and publish the .dat, then write the .hea atomically. */
rdx_status rdx_ecg_writer_finish(rdx_ecg_writer *w, rdx_error *err);

/* Free the writer; if it was not finished, its temporary file is removed.
 * NULL is a no-op. */
void rdx_ecg_writer_free(rdx_ecg_writer *w);

/* ==== Conditioning and detection (ecg/filter*.c, ecg/qrs*.c) ============= */

/* ==== Scoring and summaries (ecg/eval*.c, ecg/summary*.c) ================ */

#ifdef __cplusplus
}
#endif

#endif /* RDX_ECG_H */
