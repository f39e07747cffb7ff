/*
 * index_sqlite.c - the SQLite backend of the index (the default,
 * "sqlite:PATH"), in WAL mode so that readers never block the indexer and a
 * crash leaves the last committed batch intact.
 *
 * Schema: patients -> studies -> series -> instances, plus reports (one per
 * SR instance) and report_links (the studies a report belongs to: its own,
 * the requests it answers, the evidence it cites). Every column a query
 * filters on has an index.
 */
#include "rdx/imaging.h"

#include "imaging_int.h"
#include "imaging_limits.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION "2"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS patients("
    " id INTEGER PRIMARY KEY, pkey TEXT NOT NULL UNIQUE, patient_id TEXT NOT NULL,"
    " issuer TEXT NOT NULL, name TEXT NOT NULL, name_alpha TEXT NOT NULL,"
    " name_alpha_uc TEXT NOT NULL, name_ideo TEXT NOT NULL, name_phon TEXT NOT NULL,"
    " birth_date TEXT NOT NULL, sex TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS patients_id ON patients(patient_id);"
    "CREATE INDEX IF NOT EXISTS patients_alpha ON patients(name_alpha_uc);"
    "CREATE INDEX IF NOT EXISTS patients_ideo ON patients(name_ideo);"
    "CREATE INDEX IF NOT EXISTS patients_phon ON patients(name_phon);"
    "CREATE TABLE IF NOT EXISTS studies("
    " id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL UNIQUE,"
    " patient_ref INTEGER NOT NULL REFERENCES patients(id),"
    " study_date TEXT NOT NULL, study_time TEXT NOT NULL, accession TEXT NOT NULL,"
    " description TEXT NOT NULL, referring TEXT NOT NULL, institution TEXT NOT NULL,"
    " study_id TEXT NOT NULL, num_series INTEGER NOT NULL DEFAULT 0,"
    " num_instances INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_ref);"
    "CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date, study_time, study_uid);"
    "CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession);"
    "CREATE TABLE IF NOT EXISTS series("
    " id INTEGER PRIMARY KEY, series_uid TEXT NOT NULL UNIQUE,"
    " study_ref INTEGER NOT NULL REFERENCES studies(id),"
    " modality TEXT NOT NULL, number INTEGER, description TEXT NOT NULL, body_part TEXT NOT NULL,"
    " num_instances INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS series_study ON series(study_ref);"
    "CREATE INDEX IF NOT EXISTS series_modality ON series(modality, study_ref);"
    "CREATE TABLE IF NOT EXISTS study_modalities("
    " modality TEXT NOT NULL, study_ref INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,"
    " study_date TEXT NOT NULL, study_time TEXT NOT NULL, study_uid TEXT NOT NULL,"
    " PRIMARY KEY(modality, study_ref));"
    "CREATE INDEX IF NOT EXISTS study_modalities_order"
    " ON study_modalities(modality, study_date, study_time, study_uid);"
    "CREATE INDEX IF NOT EXISTS study_modalities_study ON study_modalities(study_ref);"
    "CREATE TABLE IF NOT EXISTS instances("
    " id INTEGER PRIMARY KEY, sop_uid TEXT NOT NULL UNIQUE,"
    " series_ref INTEGER NOT NULL REFERENCES series(id),"
    " sop_class TEXT NOT NULL, number INTEGER, transfer_syntax TEXT NOT NULL,"
    " rows INTEGER, columns INTEGER, frames INTEGER,"
    " path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS instances_series ON instances(series_ref);"
    "CREATE TABLE IF NOT EXISTS reports("
    " id INTEGER PRIMARY KEY,"
    " instance_ref INTEGER UNIQUE REFERENCES instances(id) ON DELETE CASCADE,"
    " source TEXT NOT NULL DEFAULT '',"
    " study_uid TEXT NOT NULL, title TEXT NOT NULL, completion TEXT NOT NULL,"
    " verification TEXT NOT NULL, content_date TEXT NOT NULL, content_time TEXT NOT NULL,"
    " text TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_links("
    " report_ref INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,"
    " study_uid TEXT NOT NULL, how TEXT NOT NULL, PRIMARY KEY(report_ref, study_uid));"
    "CREATE INDEX IF NOT EXISTS report_links_study ON report_links(study_uid);"
    "CREATE INDEX IF NOT EXISTS reports_source ON reports(source);"
    "INSERT INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "')"
    " ON CONFLICT DO NOTHING;";

/*
 * The counts on each series and study, study_modalities and the removal of
 * emptied series, studies and patients follow every write through triggers,
 * so no path (a changed file, a moved series, a pruned folder) can leave them
 * stale, and no answer row counts anything. WHEN clauses keep the upserts'
 * no-change updates free.
 */
static const char triggers[] =
    "CREATE TRIGGER IF NOT EXISTS instances_ins AFTER INSERT ON instances BEGIN"
    " UPDATE series SET num_instances = num_instances + 1 WHERE id = new.series_ref;"
    " UPDATE studies SET num_instances = num_instances + 1"
    "  WHERE id = (SELECT study_ref FROM series WHERE id = new.series_ref);"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS instances_del AFTER DELETE ON instances BEGIN"
    " UPDATE series SET num_instances = num_instances - 1 WHERE id = old.series_ref;"
    " UPDATE studies SET num_instances = num_instances - 1"
    "  WHERE id = (SELECT study_ref FROM series WHERE id = old.series_ref);"
    " DELETE FROM series WHERE id = old.series_ref AND num_instances <= 0;"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS series_ins AFTER INSERT ON series BEGIN"
    " UPDATE studies SET num_series = num_series + 1, num_instances = num_instances +"
    "  new.num_instances WHERE id = new.study_ref;"
    " INSERT OR IGNORE INTO study_modalities(modality, study_ref, study_date, study_time,"
    "  study_uid) SELECT new.modality, id, study_date, study_time, study_uid FROM studies"
    "  WHERE id = new.study_ref AND new.modality <> '';"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS series_del AFTER DELETE ON series BEGIN"
    " UPDATE studies SET num_series = num_series - 1, num_instances = num_instances -"
    "  old.num_instances WHERE id = old.study_ref;"
    " DELETE FROM study_modalities WHERE study_ref = old.study_ref AND modality = old.modality"
    "  AND NOT EXISTS(SELECT 1 FROM series WHERE study_ref = old.study_ref"
    "  AND modality = old.modality);"
    " DELETE FROM studies WHERE id = old.study_ref AND num_series <= 0;"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS series_move AFTER UPDATE OF study_ref, modality ON series"
    " WHEN old.study_ref <> new.study_ref OR old.modality <> new.modality BEGIN"
    " UPDATE studies SET num_series = num_series - 1, num_instances = num_instances -"
    "  old.num_instances WHERE id = old.study_ref AND old.study_ref <> new.study_ref;"
    " UPDATE studies SET num_series = num_series + 1, num_instances = num_instances +"
    "  new.num_instances WHERE id = new.study_ref AND old.study_ref <> new.study_ref;"
    " DELETE FROM study_modalities WHERE study_ref = old.study_ref AND modality = old.modality"
    "  AND NOT EXISTS(SELECT 1 FROM series WHERE study_ref = old.study_ref"
    "  AND modality = old.modality);"
    " INSERT OR IGNORE INTO study_modalities(modality, study_ref, study_date, study_time,"
    "  study_uid) SELECT new.modality, id, study_date, study_time, study_uid FROM studies"
    "  WHERE id = new.study_ref AND new.modality <> '';"
    " DELETE FROM studies WHERE id = old.study_ref AND num_series <= 0;"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS studies_date AFTER UPDATE OF study_date, study_time ON studies"
    " WHEN old.study_date <> new.study_date OR old.study_time <> new.study_time BEGIN"
    " UPDATE study_modalities SET study_date = new.study_date, study_time = new.study_time"
    "  WHERE study_ref = new.id;"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS studies_patient AFTER UPDATE OF patient_ref ON studies"
    " WHEN old.patient_ref <> new.patient_ref BEGIN"
    " DELETE FROM patients WHERE id = old.patient_ref"
    "  AND NOT EXISTS(SELECT 1 FROM studies WHERE patient_ref = old.patient_ref);"
    " END;"
    "CREATE TRIGGER IF NOT EXISTS studies_del AFTER DELETE ON studies BEGIN"
    " DELETE FROM patients WHERE id = old.patient_ref"
    "  AND NOT EXISTS(SELECT 1 FROM studies WHERE patient_ref = old.patient_ref);"
    " END;";

struct sq {
    sqlite3 *db;
    sqlite3_stmt *st[S_NSTMT];
    char *path;
};

static rdx_status db_fail(struct sq *q, rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", q->path, what, sqlite3_errmsg(q->db));
}

static void sq_close(void *impl)
{
    struct sq *q = impl;
    if (q == NULL) {
        return;
    }
    for (int i = 0; i < S_NSTMT; i++) {
        sqlite3_finalize(q->st[i]);
    }
    sqlite3_close(q->db);
    free(q->path);
    free(q);
}

static rdx_status sq_begin(void *impl, rdx_error *err)
{
    struct sq *q = impl;
    /* IMMEDIATE: take the write lock now, not halfway through a batch. */
    if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(q, err, "BEGIN");
    }
    return RDX_OK;
}

static void sq_rollback(void *impl)
{
    struct sq *q = impl;
    if (!sqlite3_get_autocommit(q->db)) {
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

static rdx_status sq_commit(void *impl, rdx_error *err)
{
    struct sq *q = impl;
    if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rdx_status st = db_fail(q, err, "COMMIT");
        sq_rollback(q);
        return st;
    }
    return RDX_OK;
}

static void bind_all(sqlite3_stmt *s, const char *const *params, int n)
{
    for (int i = 0; i < n; i++) {
        if (params[i] == NULL) {
            sqlite3_bind_null(s, i + 1);
        } else {
            sqlite3_bind_text(s, i + 1, params[i], -1, SQLITE_STATIC);
        }
    }
}

static rdx_status sq_run(void *impl, enum img_stmt id, const char *const *params, int n, char *out,
                         size_t outsz, int *got_row, rdx_error *err)
{
    struct sq *q = impl;
    sqlite3_stmt *s = q->st[id];
    if (got_row != NULL) {
        *got_row = 0;
    }
    bind_all(s, params, n);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (out != NULL && outsz > 0) {
            const unsigned char *t = sqlite3_column_text(s, 0);
            snprintf(out, outsz, "%s", t != NULL ? (const char *)t : "");
            if (got_row != NULL) {
                *got_row = 1;
            }
        }
        while (rc == SQLITE_ROW) {
            rc = sqlite3_step(s);
        }
    }
    rdx_status st = rc == SQLITE_DONE ? RDX_OK : db_fail(q, err, "write");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

#define MAX_COLS 32

static rdx_status sq_select(void *impl, const char *sql, const char *const *params, int n,
                            img_row_cb cb, void *user, rdx_error *err)
{
    struct sq *q = impl;
    sqlite3_stmt *s = NULL;
    /* The fixed statements are cached; an ad hoc query is prepared each time. */
    int cached = -1;
    for (int i = 0; i < S_NSTMT; i++) {
        if (img_stmt_sql[i] == sql) {
            cached = i;
        }
    }
    if (cached >= 0) {
        s = q->st[cached];
    } else if (sqlite3_prepare_v2(q->db, sql, -1, &s, NULL) != SQLITE_OK) {
        return db_fail(q, err, "query");
    }
    bind_all(s, params, n);
    rdx_status st = RDX_OK;
    const char *vals[MAX_COLS];
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            break;
        }
        if (rc != SQLITE_ROW) {
            st = db_fail(q, err, "query");
            break;
        }
        int ncol = sqlite3_column_count(s);
        if (ncol > MAX_COLS) {
            ncol = MAX_COLS;
        }
        for (int c = 0; c < ncol; c++) {
            vals[c] = (const char *)sqlite3_column_text(s, c);
        }
        if (cb(user, ncol, vals) != 0) {
            break;
        }
    }
    if (cached >= 0) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    } else {
        sqlite3_finalize(s);
    }
    return st;
}

static const struct img_backend sqlite_backend = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .run = sq_run,
    .select = sq_select,
};

rdx_status img_sqlite_open(const char *path, const struct img_backend **be, void **impl,
                           rdx_error *err)
{
    struct sq *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    q->path = rdx_strndup(path, strlen(path));
    if (q->path == NULL) {
        free(q);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    rdx_status st = RDX_OK;
    int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        st = q->db != NULL ? db_fail(q, err, "cannot open")
                           : rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    sqlite3_busy_timeout(q->db, 5000);
    /* WAL: readers never block the indexer; NORMAL sync is crash-safe in WAL mode. */
    if (sqlite3_exec(q->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(q, err, "cannot create the schema");
        goto fail;
    }
    char version[16] = "";
    sqlite3_stmt *vs = NULL;
    if (sqlite3_prepare_v2(q->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &vs,
                           NULL) == SQLITE_OK &&
        sqlite3_step(vs) == SQLITE_ROW && sqlite3_column_text(vs, 0) != NULL) {
        snprintf(version, sizeof version, "%s", (const char *)sqlite3_column_text(vs, 0));
    }
    sqlite3_finalize(vs);
    if (strcmp(version, "1") == 0 &&
        sqlite3_exec(q->db, img_migrate_v1_sql, NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(q, err, "cannot upgrade the schema from version 1");
        goto fail;
    }
    if (strcmp(version, "1") != 0 && strcmp(version, SCHEMA_VERSION) != 0) {
        st = rdx_error_set(err, RDX_EDB,
                           "%s: index schema version '%s', this rdx reads " SCHEMA_VERSION, path,
                           version);
        goto fail;
    }
    if (sqlite3_exec(q->db, triggers, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(q, err, "cannot create the schema");
        goto fail;
    }
    for (int i = 0; i < S_NSTMT; i++) {
        if (sqlite3_prepare_v3(q->db, img_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i],
                               NULL) != SQLITE_OK) {
            st = db_fail(q, err, "cannot prepare a statement");
            goto fail;
        }
    }
    *be = &sqlite_backend;
    *impl = q;
    return RDX_OK;
fail:
    sq_close(q);
    return st;
}
