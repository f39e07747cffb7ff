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
 * The store (index_store.c) over a backend (index_sqlite.c, index_pg.c).
 * Writes happen inside img_store_begin/commit; the indexer commits every
 * RDX_IMG_BATCH instances.
 */
rdx_status img_store_begin(rdx_img_index *ix, rdx_error *err);
/*
 * Inside the open transaction, lock keys[0..n) (sorted, distinct: the keys
 * of the rows a batch writes) until it ends, in that order, so that writers
 * sharing rows queue instead of deadlocking. A no-op on SQLite, which has
 * one writer at a time anyway.
 */
rdx_status img_store_lock_keys(rdx_img_index *ix, const int64_t *keys, size_t n, rdx_error *err);
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
 * file has gone, the row moves to the new file. Study, series and patient
 * attributes are updated by each instance, except that an empty value never
 * overwrites a known one (an SR without a Study Date keeps the study's date).
 */
rdx_status img_store_put(rdx_img_index *ix, const struct img_record *rec, rdx_error *err);

/*
 * The readable text of an HTML report (index_store.c): tags dropped, block
 * tags as line breaks, script and style bodies dropped, character references
 * decoded, runs of blank lines squeezed; appended to out (RDX_ELIMIT at its cap).
 */
rdx_status img_html_to_text(const char *p, size_t n, rdx_buf *out);

/* ---- Backends ---------------------------------------------------------------- */

/* The statements every backend prepares, written with ?N placeholders. */
enum img_stmt {
    S_UNCHANGED,
    S_BY_SOP,
    S_DEL_PATH_OTHER,
    S_DEL_SOP,
    S_PATIENT,
    S_STUDY,
    S_SERIES,
    S_INSTANCE,
    S_REPORT,
    S_LINK,
    S_DEL_PATH,
    S_GC_SERIES,
    S_GC_STUDIES,
    S_GC_PATIENTS,
    S_GC_SM,
    S_DEL_ADDED,
    S_ADD_REPORT,
    S_NSTMT
};
extern const char *const img_stmt_sql[S_NSTMT];
/* Schema version 1 to 2, run by either backend inside its schema transaction. */
extern const char img_migrate_v1_sql[];

/* Parameters of img_backend.put_chain. */
#define IMG_PUT_CHAIN_NPARAMS 33

/*
 * Write the instances recs[0..n) in the open transaction with the outcome of
 * img_store_put for each in sts[i] (RDX_OK or RDX_EDUPLICATE, the reason in
 * msgs[i], RDX_ERROR_MSG_MAX bytes), exactly as n calls in order would. On a
 * backend with pipelining (PostgreSQL) the duplicate checks of the whole
 * batch go out in one pipeline, the decisions are taken in memory following
 * what each earlier write does to the (UID, path) rows, and the writes go
 * out in pipelines too: a few round trips per batch instead of five per
 * instance. Batches holding a report are written one instance at a time.
 * Errors as img_store_put (RDX_EBUSY: run the whole batch again).
 */
rdx_status img_store_put_batch(rdx_img_index *ix, const struct img_record *const *recs, size_t n,
                               rdx_status *sts, char *const *msgs, rdx_error *err);

/* One command of a pipeline (img_backend.pipeline). */
#define IMG_CMD_CHAIN (-1) /* stmt value for put_chain */
struct img_cmd {
    int stmt; /* enum img_stmt, or IMG_CMD_CHAIN */
    int nparams;
    const char *const *params;
    char *out; /* NULL, or where the first column of the first row goes */
    size_t outsz;
    int got; /* set to 1 when a row came back */
};

/* Called per result row with ncol text values (NULL for SQL NULL); nonzero stops. */
typedef int (*img_row_cb)(void *user, int ncol, const char *const *vals);

struct img_backend {
    const char *name;
    void (*close)(void *be);
    rdx_status (*begin)(void *be, rdx_error *err);
    rdx_status (*commit)(void *be, rdx_error *err);
    void (*rollback)(void *be);
    /*
     * Run prepared statement id with nparams text parameters (NULL: SQL NULL).
     * When out is not NULL and a row comes back, its first column is copied
     * into out (outsz bytes, truncated) and *got_row set to 1.
     */
    rdx_status (*run)(void *be, enum img_stmt id, const char *const *params, int nparams, char *out,
                      size_t outsz, int *got_row, rdx_error *err);
    /*
     * Optional (NULL: the store runs S_PATIENT, S_STUDY, S_SERIES and
     * S_INSTANCE one by one): the four upserts of one instance in one
     * statement, one round trip. params: the 10 of S_PATIENT, S_STUDY's
     * without patient_ref (8), S_SERIES's without study_ref (5), S_INSTANCE's
     * without series_ref (10). The instance id is copied into out.
     */
    rdx_status (*put_chain)(void *be, const char *const *params, char *out, size_t outsz,
                            rdx_error *err);
    /* Optional (NULL: nothing to do): see img_store_lock_keys. */
    rdx_status (*lock_keys)(void *be, const int64_t *keys, size_t n, rdx_error *err);
    /*
     * Optional: run cmds[0..n) in order, pipelined (sent together, results
     * read after a sync). The first failure decides the error; the commands
     * after it are not run. NULL: the store runs them one by one.
     */
    rdx_status (*pipeline)(void *be, struct img_cmd *cmds, size_t n, rdx_error *err);
    /* Run an ad hoc SELECT (?N placeholders) and deliver its rows. */
    rdx_status (*select)(void *be, const char *sql, const char *const *params, int nparams,
                         img_row_cb cb, void *user, rdx_error *err);
};

/* Open the SQLite backend on path (":memory:" allowed). */
rdx_status img_sqlite_open(const char *path, const struct img_backend **be, void **impl,
                           rdx_error *err);

/* Open the PostgreSQL backend on a libpq connection URI ("postgresql://..."). */
rdx_status img_pg_open(const char *uri, const struct img_backend **be, void **impl, rdx_error *err);

#endif /* RDX_IMAGING_INT_H */
