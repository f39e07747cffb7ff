/*
 * imaging_int.h - private to the imaging engine: the record an instance
 * becomes, and the store interface the indexer writes it through (SQLite in
 * index_sqlite.c; PostgreSQL will implement the same functions).
 */
#ifndef RDX_IMAGING_INT_H
#define RDX_IMAGING_INT_H

#include "rdx/common.h"
#include "rdx/imaging.h"

#include <stdint.h>

/* The fields the index keeps of one instance (UTF-8, "" when absent). */
enum img_field {
    F_PATIENT_ID,
    F_ISSUER,
    F_PATIENT_NAME,
    F_NAME_ALPHA,
    F_NAME_IDEO,
    F_NAME_PHON,
    F_BIRTH_DATE,
    F_SEX,
    F_STUDY_UID,
    F_STUDY_DATE,
    F_STUDY_TIME,
    F_ACCESSION,
    F_STUDY_DESC,
    F_REFERRING,
    F_INSTITUTION,
    F_STUDY_ID,
    F_SERIES_UID,
    F_MODALITY,
    F_SERIES_DESC,
    F_BODY_PART,
    F_SOP_UID,
    F_SOP_CLASS,
    F_XFER,
    F_PATH,
    /* Reports (SR documents). */
    F_REPORT_TITLE,
    F_COMPLETION,
    F_VERIFICATION,
    F_CONTENT_DATE,
    F_CONTENT_TIME,
    F_NFIELDS
};

#define IMG_MAX_LINKS 64

struct img_record {
    const char *f[F_NFIELDS];
    int64_t series_number, instance_number; /* INT64_MIN when absent */
    int64_t rows, columns, frames;
    int64_t size;
    int64_t mtime_ns;
    int is_report;
    const char *report_text;
    /* Studies the report refers to besides its own, and how ("request", "evidence"). */
    size_t nlinks;
    const char *link_uid[IMG_MAX_LINKS];
    const char *link_how[IMG_MAX_LINKS];
};

/*
 * The store (index_sqlite.c). Writes happen inside img_store_begin/commit;
 * the indexer commits every RDX_IMG_BATCH instances.
 */
rdx_status img_store_begin(rdx_img_index *ix, rdx_error *err);
rdx_status img_store_commit(rdx_img_index *ix, rdx_error *err);
void img_store_rollback(rdx_img_index *ix);

/*
 * Is path indexed with this size and mtime? *same is set to 1 when it is
 * (the file need not be read again), else 0.
 */
rdx_status img_store_unchanged(rdx_img_index *ix, const char *path, int64_t size, int64_t mtime_ns,
                               int *same, rdx_error *err);

/*
 * Write one instance with its patient, study, series and report rows.
 * Policy for a duplicate SOP Instance UID: the first file indexed keeps the
 * UID while that file still exists; a second file with the same UID is
 * refused with RDX_EDUPLICATE (err names the first file). When the first
 * file has gone, the row moves to the new file.
 */
rdx_status img_store_put(rdx_img_index *ix, const struct img_record *rec, rdx_error *err);

#endif /* RDX_IMAGING_INT_H */
