/*
 * ecg_int.h - private interfaces of the ECG engine, shared by its sources and
 * its own unit tests and fuzz targets; never included from outside ecg/.
 */
#ifndef RDX_ECG_INT_H
#define RDX_ECG_INT_H

#include "rdx/ecg.h"
#include "ecg_limits.h"

#include <stddef.h>
#include <stdint.h>

/* ---- WFDB header (wfdb_header.c) ---- */

/*
 * A parsed header. info.sig points at sig, info.comments at comments; every
 * string is a separate allocation owned by the header.
 */
typedef struct ecg_header {
    rdx_ecg_record_info info;
    rdx_ecg_signal_info *sig;
    char **comments;
    size_t *group_of; /* signal -> group index (signals sharing a file) */
    size_t ngroups;
} ecg_header;

/*
 * Parse the text of a .hea file (len bytes, need not be NUL-terminated).
 * fname names the file in messages ("x/100.hea:3: ..."). On success h owns
 * its strings (free with ecg_header_free); on failure h is left empty.
 */
rdx_status ecg_header_parse(const char *text, size_t len, const char *fname, ecg_header *h,
                            rdx_error *err);
void ecg_header_free(ecg_header *h);

/* ---- Sample formats (wfdb_format.c) ---- */

/* Layout of one storage format: bytes and samples in its smallest unit. */
typedef struct ecg_format {
    int format;
    unsigned unit_bytes;   /* 3 for 212, 4 for 310/311, 2 for 16, ... */
    unsigned unit_samples; /* 2 for 212, 3 for 310/311, 1 otherwise */
    unsigned bits;         /* default ADC resolution */
    int32_t invalid_raw;   /* the reserved "no sample" code; 0 when none (format 8) */
    int differences;       /* format 8: values are first differences */
} ecg_format;

/* The layout of format, or NULL when rdx does not read it. */
const ecg_format *ecg_format_find(int format);

/*
 * Decode nunits whole units from in (nunits * unit_bytes bytes) into out
 * (nunits * unit_samples values). Format 8 yields the raw differences.
 * A tight loop per format: no per-sample calls or branches on the format.
 */
void ecg_format_decode(const ecg_format *f, const uint8_t *in, size_t nunits, int32_t *out);

/*
 * Samples a trailing partial unit of nbytes (< unit_bytes) holds, decoding
 * them into out (room for unit_samples values). A 212 file with an odd
 * sample count ends in such a unit.
 */
size_t ecg_format_decode_tail(const ecg_format *f, const uint8_t *in, size_t nbytes, int32_t *out);

/* Whole samples in nbytes of a signal file of this format. */
uint64_t ecg_format_samples_in(const ecg_format *f, uint64_t nbytes);

/* Encode one sample for format 16 (the writer's format) at p. */
void ecg_format_put16(uint8_t *p, int32_t v);

/* ---- Record back-ends (wfdb_record.c, csv_record.c) ---- */

struct ecg_csv;

/* Open a CSV upload; fills h (name, one signal per column) and *csv. */
rdx_status ecg_csv_open(const char *path, const rdx_ecg_record_opts *opts, ecg_header *h,
                        struct ecg_csv **csv, rdx_error *err);
/* Read up to max frames of nsig int32 values; *got = 0 at the end. */
rdx_status ecg_csv_read(struct ecg_csv *c, int32_t *frames, size_t max, size_t *got,
                        rdx_error *err);
rdx_status ecg_csv_rewind(struct ecg_csv *c, rdx_error *err);
void ecg_csv_free(struct ecg_csv *c);

/* ---- Small text helpers (wfdb_header.c) ---- */

/* Nonzero when s[0..n) ends with the NUL-terminated suffix. */
int ecg_has_suffix(const char *s, size_t n, const char *suffix);

#endif /* RDX_ECG_INT_H */
