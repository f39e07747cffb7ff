/*
 * rdx/imaging.h - the imaging engine: a C face over DCMTK for reading DICOM
 * headers (stopping before Pixel Data), character-set conversion of every text
 * value to UTF-8, and the index of patients, studies, series, instances and
 * their reports, with its query side.
 *
 * All handles are opaque; each _open/_new has a matching _free or _close,
 * and those accept NULL. Functions return rdx_status and fill a caller's
 * rdx_error (which may be NULL) with a message that names the file and the
 * attribute or offset that is wrong. Nothing of C++ appears here: the DCMTK
 * shim catches every exception at the boundary and turns it into a status.
 *
 * Thread safety: one handle must not be used by two threads at once; distinct
 * handles are independent. The first dataset open in a process silences
 * DCMTK's own logger (DCMTK would otherwise print to stderr); that one-time
 * setup is itself thread-safe.
 */
#ifndef RDX_IMAGING_H
#define RDX_IMAGING_H

#include "rdx/common.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== DICOM headers (imaging/dcmtk_shim.cpp) ============================== */

/* A DICOM attribute tag as (group << 16) | element: RDX_IMG_TAG(0x0010, 0x0010). */
#define RDX_IMG_TAG(group, element) ((((uint32_t)(group)) << 16) | ((uint32_t)(element)))

/* A parsed DICOM header: File Meta Information (if any) plus the data set up to
 * (not including) Pixel Data. */
typedef struct rdx_img_dataset rdx_img_dataset;

/*
 * One item of a data set: the main data set, the File Meta Information, or an
 * item of a sequence. Borrowed: it lives as long as the rdx_img_dataset it came
 * from and is never freed by the caller.
 */
typedef struct rdx_img_item rdx_img_item;

/*
 * Read the header of the DICOM file at path: the File Meta Information when
 * present (a file without it is read as a bare data set, the transfer syntax
 * detected from the bytes), then the data set, stopping before Pixel Data
 * (7FE0,0010) so that pixels are never read. The declared length of Pixel
 * Data is checked against the file size, so a truncated image is refused.
 *
 * path:  file to read; must not be NULL.
 * out:   receives the new handle on success (free with rdx_img_dataset_free);
 *        set to NULL on failure.
 * err:   on failure names the file and the reason (may be NULL).
 *
 * Errors: RDX_ENOENT (no such file), RDX_EIO (unreadable), RDX_EFORMAT (not a
 * DICOM file: no preamble and no plausible data set), RDX_EPARSE (malformed:
 * bad element, length past the end, bad meta information), RDX_ESHORT
 * (truncated), RDX_ELIMIT (a cap of imaging_limits.h), RDX_ENOMEM.
 */
rdx_status rdx_img_dataset_open_file(const char *path, rdx_img_dataset **out, rdx_error *err);

/*
 * The same for a DICOM stream held in memory (a file's bytes, with or without
 * its 128-byte preamble and meta information). data is copied as needed and
 * not kept. name labels messages ("upload 17"); NULL means "<memory>".
 * len may be 0 (refused with RDX_EFORMAT). Same errors as _open_file.
 */
rdx_status rdx_img_dataset_open_mem(const void *data, size_t len, const char *name,
                                    rdx_img_dataset **out, rdx_error *err);

/* Free a header and every item borrowed from it. NULL is a no-op. */
void rdx_img_dataset_free(rdx_img_dataset *ds);

/* The main data set (never NULL for an open handle). */
const rdx_img_item *rdx_img_dataset_root(const rdx_img_dataset *ds);

/* The File Meta Information group, or NULL when the file had none. */
const rdx_img_item *rdx_img_dataset_meta(const rdx_img_dataset *ds);

/*
 * Transfer syntax UID the data set was read with ("1.2.840.10008.1.2.1"):
 * (0002,0010) when present, else the one detected from the bytes. Static or
 * owned by ds; never NULL (empty when unknown).
 */
const char *rdx_img_dataset_transfer_syntax(const rdx_img_dataset *ds);

/*
 * Name of a transfer syntax UID ("JPEG-LS Lossless", "Little Endian
 * Explicit") from DCMTK's dictionary, or "unknown transfer syntax". Static
 * storage; uid may be NULL. Thread-safe.
 */
const char *rdx_img_transfer_syntax_name(const char *uid);

/* SOP Class UID: (0008,0016), else (0002,0002); "" when neither is present. */
const char *rdx_img_dataset_sop_class(const rdx_img_dataset *ds);

/* SOP Instance UID: (0008,0018), else (0002,0003); "" when neither is present. */
const char *rdx_img_dataset_sop_instance(const rdx_img_dataset *ds);

/* Nonzero when the file carried a Pixel Data element after the header. */
int rdx_img_dataset_has_pixel_data(const rdx_img_dataset *ds);

/*
 * Get the value of tag in item as UTF-8 text. Text VRs are converted from the
 * Specific Character Set (0008,0005) in force for the item (its own, else the
 * nearest enclosing item's, else the data set's), including ISO 2022 code
 * extensions; Person Names keep all three component groups
 * ("Wang^XiaoDong=王^小东="). Multiple values are joined with '\'. Leading and
 * trailing padding is removed (PS3.5 6.2). Binary VRs are rendered as decimal
 * numbers joined with '\'; OB/OW/UN and sequences are refused.
 * Undecodable bytes become U+FFFD rather than failing: an index must not lose
 * a study over one bad byte in a name.
 *
 * ds, item: item may be NULL for the main data set.
 * out:      reset, then filled (NUL-terminated); its cap bounds the value.
 * Errors:   RDX_ENOTFOUND (tag absent), RDX_EFORMAT (a VR with no text
 *           form), RDX_ELIMIT (longer than out's cap), RDX_ENOMEM.
 */
rdx_status rdx_img_item_get_text(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                 rdx_buf *out, rdx_error *err);

/*
 * Get value number index (0-based) of tag as an integer: binary VRs (US, SS,
 * UL, SL, UV, SV, AT) directly, IS by strict parsing. RDX_ENOTFOUND when the
 * tag or that value is absent, RDX_EPARSE when the text is not an integer.
 */
rdx_status rdx_img_item_get_i64(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                size_t index, int64_t *out, rdx_error *err);

/* The same as a double: FL, FD, DS and every integer VR. */
rdx_status rdx_img_item_get_double(const rdx_img_dataset *ds, const rdx_img_item *item,
                                   uint32_t tag, size_t index, double *out, rdx_error *err);

/*
 * Number of items in sequence tag of item (0 for an empty sequence).
 * RDX_ENOTFOUND when absent, RDX_EFORMAT when tag is not a sequence.
 */
rdx_status rdx_img_item_seq_count(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                  size_t *count, rdx_error *err);

/* Item number index (0-based) of sequence tag; *out is borrowed from ds. */
rdx_status rdx_img_item_seq_item(const rdx_img_dataset *ds, const rdx_img_item *item, uint32_t tag,
                                 size_t index, const rdx_img_item **out, rdx_error *err);

/* What an attribute walk sees of one element. */
typedef struct rdx_img_elem {
    uint32_t tag;
    char vr[3];      /* "PN", "SQ", ...; NUL-terminated */
    uint32_t length; /* value length in bytes as stored (0xFFFFFFFF: undefined) */
    size_t vm;       /* value multiplicity (items, for a sequence) */
    int is_sequence;
} rdx_img_elem;

/* Number of elements directly in item (not counting those inside sequences). */
size_t rdx_img_item_elem_count(const rdx_img_dataset *ds, const rdx_img_item *item);

/* Describe element number index of item; RDX_ENOTFOUND past the end. */
rdx_status rdx_img_item_elem(const rdx_img_dataset *ds, const rdx_img_item *item, size_t index,
                             rdx_img_elem *out);

/* ==== Pixels and previews (imaging/gdcm_shim.cpp, imaging/preview.c) ==== */

/* One decoded frame: stored values, before any rescale or window. */
typedef struct rdx_img_frame {
    uint32_t rows, columns;
    uint32_t samples;     /* 1 (grey) or 3 (RGB, interleaved) */
    uint32_t frames;      /* frames in the file */
    uint32_t bits_stored; /* significant bits of each value */
    int is_signed;
    char photometric[32]; /* MONOCHROME1, MONOCHROME2 or RGB (palette and YBR are converted) */
    int32_t *values;      /* rows * columns * samples values, row by row */
} rdx_img_frame;

/*
 * Decode frame number frame (0-based) of the DICOM file at path with GDCM:
 * native, deflated, RLE, JPEG baseline/extended/lossless, JPEG-LS and JPEG
 * 2000 (DCMTK first for RLE, and as a second try for JPEG). Only that frame
 * is decoded; encapsulated Pixel Data is checked item by item first (PS3.5
 * A.4) and the frame's fragments found through the Basic Offset Table, one
 * fragment per frame, or the codestream markers. Values are masked to Bits
 * Stored and sign-extended when Pixel Representation is 1. out is filled on
 * success; release it with rdx_img_frame_free (out->values is malloc'd).
 * Errors: RDX_ERANGE (no such frame), RDX_ESHORT (truncated), RDX_EPARSE
 * (damaged item structure, or the decoder refuses the data), RDX_EFORMAT
 * (an unsupported layout or syntax, fragments that do not match the
 * frames), RDX_ELIMIT (over RDX_IMG_MAX_PIXEL_BYTES or
 * RDX_IMG_MAX_FRAGMENTS), RDX_ENOMEM. Decode errors read "FILE: frame F of N
 * (SYNTAX NAME, UID): reason", the reason naming the fragment and byte
 * offset, or giving GDCM's, libjpeg's, OpenJPEG's and DCMTK's own words;
 * none of them print anything. The codecs run in a short-lived child
 * process (fork): an assertion or crash inside GDCM, CharLS, OpenJPEG,
 * libjpeg or DCMTK on hostile data (Debian builds GDCM with assertions on)
 * becomes RDX_EPARSE naming the assertion or signal, and a codec that does
 * not finish is stopped after RDX_IMG_DECODE_SECONDS (RDX_ETIMEOUT). The
 * caller must not reap children it did not start (SIGCHLD ignored or a
 * wait-any loop). Thread safety: distinct calls are independent.
 */
rdx_status rdx_img_frame_decode(const char *path, uint32_t frame, rdx_img_frame *out,
                                rdx_error *err);

/* Free what rdx_img_frame_decode allocated; f may be NULL or already freed. */
void rdx_img_frame_free(rdx_img_frame *f);

typedef struct rdx_img_preview_opts {
    uint32_t frame;    /* 0-based frame to show */
    uint32_t max_side; /* longest side of the thumbnail in pixels; 0 keeps full size */
    int use_window;    /* nonzero: use center/width below instead of the stored window */
    double center, width;
} rdx_img_preview_opts;

/*
 * Write a windowed 8-bit PNG of one frame of the file at path to out_png
 * (atomically: readers see the old file or the whole new one). Grey images
 * go through Rescale Slope/Intercept and the linear VOI window (PS3.3
 * C.11.2.1.2): opts' window, else the stored Window Center/Width, else the
 * frame's range; MONOCHROME1 is inverted. Colour is written as RGB. opts
 * may be NULL (frame 0, full size, stored window).
 * Errors: those of rdx_img_frame_decode, RDX_EINVAL (bad window or size),
 * RDX_EIO (cannot write out_png).
 */
rdx_status rdx_img_preview_png(const char *path, const rdx_img_preview_opts *opts,
                               const char *out_png, rdx_error *err);

/*
 * Append a PNG (8-bit greyscale when channels is 1, RGB when 3) of
 * width x height pixels, row by row, to out. RDX_EINVAL, RDX_ELIMIT (out's
 * cap) or RDX_ENOMEM on failure.
 */
rdx_status rdx_img_png_encode(const uint8_t *pix, uint32_t width, uint32_t height,
                              uint32_t channels, rdx_buf *out, rdx_error *err);

/* ==== Index (imaging/index*.c) ============================================ */

/*
 * An open index. URIs: "sqlite:PATH" (or a bare PATH) for SQLite in WAL mode
 * (":memory:" for a private in-memory index); "postgresql://..." or
 * "postgres://..." (any libpq connection URI) for PostgreSQL, where several
 * rdx nodes may share one index. Both backends give the same answers.
 */
typedef struct rdx_img_index rdx_img_index;

/* The default index URI used by the rdx command. */
#define RDX_IMG_INDEX_DEFAULT_URI "sqlite:rdx-index.db"

/*
 * Open (creating it and its schema if needed) the index at uri.
 * out: receives the handle (close with rdx_img_index_close); NULL on failure.
 * Errors: RDX_EINVAL (bad URI), RDX_EDB (cannot connect or the database
 * refused; err has its message, with any password in the URI left out),
 * RDX_ENOMEM. The schema is created if missing (on PostgreSQL under an
 * advisory lock, so nodes starting together do not race).
 */
rdx_status rdx_img_index_open(const char *uri, rdx_img_index **out, rdx_error *err);

/* Close the index, committing nothing that was not already committed. NULL ok. */
void rdx_img_index_close(rdx_img_index *ix);

/* Counters of one indexing run; zero it before the first call. */
typedef struct rdx_img_index_stats {
    uint64_t files_seen; /* regular files looked at */
    uint64_t indexed;    /* instances written (new or changed) */
    uint64_t unchanged;  /* already indexed with the same size and mtime */
    uint64_t reports;    /* of the indexed instances, structured reports */
    uint64_t skipped;    /* not DICOM, or DICOM with nothing to index (DICOMDIR) */
    uint64_t failed;     /* DICOM files refused as malformed */
    uint64_t pruned;     /* rows of files that no longer exist, removed (rdx_img_index_prune) */
    uint64_t retried;    /* batches written again after PostgreSQL rolled them back (a
                            deadlock or serialization failure with another writer) */
} rdx_img_index_stats;

/*
 * Called once per file that was skipped or refused: path, the status and a
 * message with the reason. failed is nonzero for a refused (malformed) file,
 * zero for a skipped one. The strings live only for the call.
 */
typedef void (*rdx_img_index_report_fn)(void *user, const char *path, int failed, rdx_status st,
                                        const char *reason);

/* Called every few hundred files with the counters so far (progress on a terminal). */
typedef void (*rdx_img_index_progress_fn)(void *user, const rdx_img_index_stats *stats);

typedef struct rdx_img_index_opts {
    rdx_img_index_report_fn report;     /* may be NULL */
    rdx_img_index_progress_fn progress; /* may be NULL */
    void *user;                         /* handed to both */
    /*
     * Parser threads for the files found in folders (0 or 1: parse in the
     * calling thread). Writes stay in the calling thread and in walk order,
     * so results and reports are the same for any value; callbacks are made
     * from the calling thread only.
     */
    unsigned jobs;
} rdx_img_index_opts;

/*
 * Index the file or the folder tree at path (symbolic links are not followed
 * into folders). Every readable DICOM instance is written with its patient,
 * study and series; SR documents also become reports linked to their study and
 * to the studies they reference. Re-indexing is idempotent: a file whose size
 * and mtime match its row is counted as unchanged and not re-read; a changed
 * file replaces its rows. Bad files are counted, reported through opts and
 * skipped; they never stop the walk. Writes are batched in transactions;
 * problems of refused instances are reported when their batch commits.
 * Several indexers (threads with their own handles, or processes) may write
 * one PostgreSQL index at once: a batch locks the keys of its rows in one
 * order first, and a transaction PostgreSQL rolls back for a deadlock,
 * serialization failure or a row another writer changed under it is written
 * again, up to RDX_IMG_TXN_RETRIES times (stats->retried counts them;
 * docs/imaging-index.md). One handle is used by one thread at a time.
 *
 * Errors (the walk itself failed): RDX_ENOENT (path absent), RDX_EDB (also
 * when the retries are used up), RDX_ENOMEM, RDX_ELIMIT (folder nesting
 * deeper than the cap).
 */
/*
 * PostgreSQL only (a no-op on SQLite): write each batch in libpq pipeline
 * mode (on, the default: its duplicate checks, then its writes, sent
 * together, a few round trips per batch instead of five per instance) or one
 * statement at a time (off: for a connection pooler without pipeline
 * support, or to measure the difference, as bench/imaging_bench does). The
 * answers are the same either way. ix may be NULL (no-op). Not while another
 * call runs on ix.
 */
void rdx_img_index_set_pipeline(rdx_img_index *ix, int on);

rdx_status rdx_img_index_add_path(rdx_img_index *ix, const char *path,
                                  const rdx_img_index_opts *opts, rdx_img_index_stats *stats,
                                  rdx_error *err);

/*
 * Remove the rows of indexed files under path (the file itself, or anything
 * below the folder) that no longer exist, then the series, studies and
 * patients left without instances, and the reports of removed instances.
 * stats->pruned counts the instances removed. path must exist.
 * Errors: RDX_ENOENT (path absent), RDX_EDB, RDX_ENOMEM.
 */
rdx_status rdx_img_index_prune(rdx_img_index *ix, const char *path, rdx_img_index_stats *stats,
                               rdx_error *err);

/* Query levels (PS3.4 C.6.1.1: the patient-root and study-root levels). */
typedef enum rdx_img_level {
    RDX_IMG_LEVEL_PATIENT = 0,
    RDX_IMG_LEVEL_STUDY = 1,
    RDX_IMG_LEVEL_SERIES = 2,
    RDX_IMG_LEVEL_INSTANCE = 3
} rdx_img_level;

/*
 * Query filters; a NULL or empty field does not filter. Matching follows
 * PS3.4 C.2.2.2: patient_name and patient_id take the wildcards '*' and '?';
 * patient_name matches any of the three component groups, and the alphabetic
 * group case-insensitively (ASCII). study_date is "YYYYMMDD", "FROM-TO",
 * "FROM-" or "-TO" (range matching, both ends inclusive). Other fields match
 * exactly (modality against any series of the study at the study level,
 * i.e. Modalities in Study).
 */
typedef struct rdx_img_query {
    rdx_img_level level;
    const char *patient_id;
    const char *patient_name;
    const char *study_date;
    const char *modality;
    const char *accession;
    const char *study_uid;
    const char *series_uid;
    size_t limit; /* 0: no limit */
} rdx_img_query;

/*
 * One answer row. Fields not meaningful at the level are "" or 0. Strings
 * are UTF-8, owned by the library, and valid only during the callback.
 */
typedef struct rdx_img_row {
    rdx_img_level level;
    const char *patient_id;
    const char *issuer;
    const char *patient_name; /* the whole PN, all three groups */
    const char *birth_date;
    const char *sex;
    const char *study_uid;
    const char *study_date;
    const char *study_time;
    const char *accession;
    const char *study_description;
    const char *modalities; /* Modalities in Study, '\'-joined, sorted */
    const char *series_uid;
    const char *modality;
    const char *series_description;
    const char *sop_instance_uid;
    const char *sop_class_uid;
    const char *transfer_syntax;
    const char *path;
    int64_t series_number;
    int64_t instance_number;
    int64_t rows, columns, frames;
    int64_t n_studies, n_series, n_instances; /* counts below this row's level */
    int has_report;                           /* study level: a report is linked */
} rdx_img_row;

/* Called once per answer; return nonzero to stop early (not an error). */
typedef int (*rdx_img_row_fn)(void *user, const rdx_img_row *row);

/*
 * Run q against the index, calling fn for each answer in a stable order
 * (patient ID; study date, time and UID; series number; instance number).
 * *count (may be NULL) receives the number of rows delivered.
 * Errors: RDX_EINVAL (bad level or study_date), RDX_EDB, RDX_ENOMEM.
 */
rdx_status rdx_img_index_query(rdx_img_index *ix, const rdx_img_query *q, rdx_img_row_fn fn,
                               void *user, size_t *count, rdx_error *err);

/*
 * The text of the report(s) linked to study_uid, as readable UTF-8 (headings,
 * measurements with units), appended to out. RDX_ENOTFOUND when the study
 * has no report.
 */
rdx_status rdx_img_index_report_text(rdx_img_index *ix, const char *study_uid, rdx_buf *out,
                                     rdx_error *err);

/*
 * Link the plain-text or HTML report in the file at path to study_uid
 * (the study need not be indexed yet). HTML is turned into text (tags
 * dropped, character references decoded); text that is not UTF-8 is read as
 * GB18030. Adding the same file again replaces its text.
 * Errors: RDX_EINVAL (not a UID), RDX_ENOENT, RDX_EFORMAT (binary data),
 * RDX_ELIMIT (over RDX_IMG_MAX_REPORT_BYTES), RDX_EDB, RDX_ENOMEM.
 */
rdx_status rdx_img_index_report_add(rdx_img_index *ix, const char *study_uid, const char *path,
                                    rdx_error *err);

/*
 * Terminal columns the UTF-8 text s takes: East Asian wide and fullwidth
 * characters (UAX #11: CJK ideographs, kana, Hangul, fullwidth forms) count
 * 2, combining marks, zero-width and control characters 0, everything else 1;
 * a byte that is not part of well-formed UTF-8 counts 1 (it is shown as one
 * replacement character). For aligning tables of names. s may be NULL (0).
 * Pure; thread-safe.
 */
size_t rdx_img_text_width(const char *s);

/* Parse "patient", "study", "series" or "instance"; -1 when unknown. */
int rdx_img_level_parse(const char *s);

/* Static name of a level ("study"). */
const char *rdx_img_level_name(rdx_img_level level);

#ifdef __cplusplus
}
#endif

#endif /* RDX_IMAGING_H */
