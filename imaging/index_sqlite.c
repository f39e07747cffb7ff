/*
 * index_sqlite.c - the index store on SQLite (WAL mode) and its query side.
 *
 * Schema: patients -> studies -> series -> instances, plus reports (one per
 * SR instance) and report_links (the studies a report belongs to: its own,
 * the requests it answers, the evidence it cites). Every column a query
 * filters on has an index. Matching follows PS3.4 C.2.2.2: single-value
 * (exact), wildcard ('*', '?', through GLOB with the other GLOB
 * metacharacters escaped) and range matching for dates.
 */
#define _POSIX_C_SOURCE 200809L
#include "rdx/imaging.h"

#include "imaging_int.h"
#include "imaging_limits.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCHEMA_VERSION "1"

enum stmt_id {
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
    S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
    [S_UNCHANGED] = "SELECT size, mtime_ns FROM instances WHERE path = ?1",
    [S_BY_SOP] = "SELECT path FROM instances WHERE sop_uid = ?1",
    [S_DEL_PATH_OTHER] = "DELETE FROM instances WHERE path = ?1 AND sop_uid <> ?2",
    [S_DEL_SOP] = "DELETE FROM instances WHERE sop_uid = ?1",
    [S_PATIENT] =
        "INSERT INTO patients(pkey, patient_id, issuer, name, name_alpha, name_alpha_uc,"
        " name_ideo, name_phon, birth_date, sex) VALUES(?1,?2,?3,?4,?5,upper(?5),?6,?7,?8,?9)"
        " ON CONFLICT(pkey) DO UPDATE SET name=coalesce(nullif(excluded.name, ''), patients.name), "
        "name_alpha=coalesce(nullif(excluded.name_alpha, ''), patients.name_alpha),"
        " name_alpha_uc=coalesce(nullif(excluded.name_alpha_uc, ''), patients.name_alpha_uc), "
        "name_ideo=coalesce(nullif(excluded.name_ideo, ''), patients.name_ideo),"
        " name_phon=coalesce(nullif(excluded.name_phon, ''), patients.name_phon), "
        "birth_date=coalesce(nullif(excluded.birth_date, ''), patients.birth_date), "
        "sex=coalesce(nullif(excluded.sex, ''), patients.sex)"
        " RETURNING id",
    [S_STUDY] = "INSERT INTO studies(study_uid, patient_ref, study_date, study_time, accession,"
                " description, referring, institution, study_id) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"
                " ON CONFLICT(study_uid) DO UPDATE SET patient_ref=excluded.patient_ref,"
                " study_date=coalesce(nullif(excluded.study_date, ''), studies.study_date), "
                "study_time=coalesce(nullif(excluded.study_time, ''), studies.study_time),"
                " accession=coalesce(nullif(excluded.accession, ''), studies.accession), "
                "description=coalesce(nullif(excluded.description, ''), studies.description),"
                " referring=coalesce(nullif(excluded.referring, ''), studies.referring), "
                "institution=coalesce(nullif(excluded.institution, ''), studies.institution),"
                " study_id=coalesce(nullif(excluded.study_id, ''), studies.study_id) RETURNING id",
    [S_SERIES] =
        "INSERT INTO series(series_uid, study_ref, modality, number, description, body_part)"
        " VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(series_uid) DO UPDATE SET"
        " study_ref=excluded.study_ref, modality=coalesce(nullif(excluded.modality, ''), "
        "series.modality), number=coalesce(excluded.number, series.number),"
        " description=coalesce(nullif(excluded.description, ''), series.description), "
        "body_part=coalesce(nullif(excluded.body_part, ''), series.body_part) RETURNING id",
    [S_INSTANCE] =
        "INSERT INTO instances(sop_uid, series_ref, sop_class, number, transfer_syntax,"
        " rows, columns, frames, path, size, mtime_ns) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
        "?10,?11) RETURNING id",
    [S_REPORT] =
        ("INSERT INTO reports(instance_ref, study_uid, title, completion, verification,"
         " content_date, content_time, text) VALUES(?1,?2,?3,?4,?5,?6,?7,?8) RETURNING id"),
    [S_LINK] = "INSERT OR IGNORE INTO report_links(report_ref, study_uid, how) VALUES(?1,?2,?3)",
};

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
    " study_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_ref);"
    "CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date, study_time);"
    "CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession);"
    "CREATE TABLE IF NOT EXISTS series("
    " id INTEGER PRIMARY KEY, series_uid TEXT NOT NULL UNIQUE,"
    " study_ref INTEGER NOT NULL REFERENCES studies(id),"
    " modality TEXT NOT NULL, number INTEGER, description TEXT NOT NULL, body_part TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS series_study ON series(study_ref);"
    "CREATE INDEX IF NOT EXISTS series_modality ON series(modality, study_ref);"
    "CREATE TABLE IF NOT EXISTS instances("
    " id INTEGER PRIMARY KEY, sop_uid TEXT NOT NULL UNIQUE,"
    " series_ref INTEGER NOT NULL REFERENCES series(id),"
    " sop_class TEXT NOT NULL, number INTEGER, transfer_syntax TEXT NOT NULL,"
    " rows INTEGER, columns INTEGER, frames INTEGER,"
    " path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS instances_series ON instances(series_ref);"
    "CREATE TABLE IF NOT EXISTS reports("
    " id INTEGER PRIMARY KEY,"
    " instance_ref INTEGER NOT NULL UNIQUE REFERENCES instances(id) ON DELETE CASCADE,"
    " study_uid TEXT NOT NULL, title TEXT NOT NULL, completion TEXT NOT NULL,"
    " verification TEXT NOT NULL, content_date TEXT NOT NULL, content_time TEXT NOT NULL,"
    " text TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_links("
    " report_ref INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,"
    " study_uid TEXT NOT NULL, how TEXT NOT NULL, PRIMARY KEY(report_ref, study_uid));"
    "CREATE INDEX IF NOT EXISTS report_links_study ON report_links(study_uid);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "');";

struct rdx_img_index {
    sqlite3 *db;
    sqlite3_stmt *st[S_NSTMT];
    char *path;
};

static rdx_status db_fail(rdx_img_index *ix, rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", ix->path, what, sqlite3_errmsg(ix->db));
}

void rdx_img_index_close(rdx_img_index *ix)
{
    if (ix == NULL) {
        return;
    }
    for (int i = 0; i < S_NSTMT; i++) {
        sqlite3_finalize(ix->st[i]);
    }
    sqlite3_close(ix->db);
    free(ix->path);
    free(ix);
}

rdx_status rdx_img_index_open(const char *uri, rdx_img_index **out, rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_open: out is NULL");
    }
    *out = NULL;
    if (uri == NULL || uri[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "index URI is empty");
    }
    if (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "%s: the PostgreSQL backend is not built yet; use sqlite:PATH", uri);
    }
    const char *path = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
    if (path[0] == '\0' || strstr(uri, "://") != NULL) {
        return rdx_error_set(err, RDX_EINVAL,
                             "%s: not an index URI (sqlite:PATH or postgresql://...)", uri);
    }
    rdx_img_index *ix = calloc(1, sizeof *ix);
    if (ix == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    ix->path = rdx_strndup(path, strlen(path));
    if (ix->path == NULL) {
        free(ix);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    rdx_status st = RDX_OK;
    int rc = sqlite3_open_v2(path, &ix->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        st = ix->db != NULL ? db_fail(ix, err, "cannot open")
                            : rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    sqlite3_busy_timeout(ix->db, 5000);
    /* WAL: readers never block the indexer; NORMAL sync is crash-safe in WAL mode. */
    if (sqlite3_exec(ix->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(ix->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(ix->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(ix, err, "cannot create the schema");
        goto fail;
    }
    for (int i = 0; i < S_NSTMT; i++) {
        if (sqlite3_prepare_v3(ix->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ix->st[i],
                               NULL) != SQLITE_OK) {
            st = db_fail(ix, err, "cannot prepare a statement");
            goto fail;
        }
    }
    *out = ix;
    return RDX_OK;
fail:
    rdx_img_index_close(ix);
    return st;
}

rdx_status img_store_begin(rdx_img_index *ix, rdx_error *err)
{
    if (sqlite3_exec(ix->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(ix, err, "BEGIN");
    }
    return RDX_OK;
}

rdx_status img_store_commit(rdx_img_index *ix, rdx_error *err)
{
    if (sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rdx_status st = db_fail(ix, err, "COMMIT");
        img_store_rollback(ix);
        return st;
    }
    return RDX_OK;
}

void img_store_rollback(rdx_img_index *ix)
{
    if (!sqlite3_get_autocommit(ix->db)) {
        sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v != NULL ? v : "", -1, SQLITE_STATIC);
}

static void bind_opt_int(sqlite3_stmt *s, int i, int64_t v)
{
    if (v == INT64_MIN) {
        sqlite3_bind_null(s, i);
    } else {
        sqlite3_bind_int64(s, i, v);
    }
}

rdx_status img_store_unchanged(rdx_img_index *ix, const char *path, int64_t size, int64_t mtime_ns,
                               int *same, rdx_error *err)
{
    sqlite3_stmt *s = ix->st[S_UNCHANGED];
    *same = 0;
    bind_text(s, 1, path);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *same = sqlite3_column_int64(s, 0) == size && sqlite3_column_int64(s, 1) == mtime_ns;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return db_fail(ix, err, "lookup");
    }
    return RDX_OK;
}

/* Step a RETURNING id statement and fetch the id. */
static rdx_status step_id(rdx_img_index *ix, sqlite3_stmt *s, int64_t *id, rdx_error *err,
                          const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s);
    }
    rdx_status st = RDX_OK;
    if (rc != SQLITE_DONE) {
        st = db_fail(ix, err, what);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

static rdx_status step_done(rdx_img_index *ix, sqlite3_stmt *s, rdx_error *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? RDX_OK : db_fail(ix, err, what);
}

rdx_status img_store_put(rdx_img_index *ix, const struct img_record *r, rdx_error *err)
{
    const char *const *f = r->f;
    /* Duplicate SOP Instance UID policy (imaging_int.h). */
    sqlite3_stmt *s = ix->st[S_BY_SOP];
    bind_text(s, 1, f[F_SOP_UID]);
    int rc = sqlite3_step(s);
    char other[RDX_IMG_MAX_PATH + 1] = "";
    if (rc == SQLITE_ROW) {
        snprintf(other, sizeof other, "%s", (const char *)sqlite3_column_text(s, 0));
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return db_fail(ix, err, "lookup");
    }
    struct stat sb;
    if (other[0] != '\0' && strcmp(other, f[F_PATH]) != 0 && stat(other, &sb) == 0) {
        return rdx_error_set(err, RDX_EDUPLICATE,
                             "%s: duplicate SOP Instance UID %s, already indexed from %s",
                             f[F_PATH], f[F_SOP_UID], other);
    }
    /* A changed file: drop what its path held before, then this UID's old row. */
    s = ix->st[S_DEL_PATH_OTHER];
    bind_text(s, 1, f[F_PATH]);
    bind_text(s, 2, f[F_SOP_UID]);
    RDX_TRY(step_done(ix, s, err, "delete"));
    s = ix->st[S_DEL_SOP];
    bind_text(s, 1, f[F_SOP_UID]);
    RDX_TRY(step_done(ix, s, err, "delete"));

    /*
     * Patient identity: Patient ID with its issuer. Files without a Patient ID
     * (anonymised teaching files) are kept apart by name, not merged into one.
     */
    char pkey[1024];
    if (f[F_PATIENT_ID][0] != '\0') {
        snprintf(pkey, sizeof pkey, "I\x1f%s\x1f%s", f[F_PATIENT_ID], f[F_ISSUER]);
    } else {
        snprintf(pkey, sizeof pkey, "N\x1f%s", f[F_PATIENT_NAME]);
    }
    int64_t pid = 0, stid = 0, seid = 0, iid = 0, rid = 0;
    s = ix->st[S_PATIENT];
    bind_text(s, 1, pkey);
    bind_text(s, 2, f[F_PATIENT_ID]);
    bind_text(s, 3, f[F_ISSUER]);
    bind_text(s, 4, f[F_PATIENT_NAME]);
    bind_text(s, 5, f[F_NAME_ALPHA]);
    bind_text(s, 6, f[F_NAME_IDEO]);
    bind_text(s, 7, f[F_NAME_PHON]);
    bind_text(s, 8, f[F_BIRTH_DATE]);
    bind_text(s, 9, f[F_SEX]);
    RDX_TRY(step_id(ix, s, &pid, err, "patient"));

    s = ix->st[S_STUDY];
    bind_text(s, 1, f[F_STUDY_UID]);
    sqlite3_bind_int64(s, 2, pid);
    bind_text(s, 3, f[F_STUDY_DATE]);
    bind_text(s, 4, f[F_STUDY_TIME]);
    bind_text(s, 5, f[F_ACCESSION]);
    bind_text(s, 6, f[F_STUDY_DESC]);
    bind_text(s, 7, f[F_REFERRING]);
    bind_text(s, 8, f[F_INSTITUTION]);
    bind_text(s, 9, f[F_STUDY_ID]);
    RDX_TRY(step_id(ix, s, &stid, err, "study"));

    s = ix->st[S_SERIES];
    bind_text(s, 1, f[F_SERIES_UID]);
    sqlite3_bind_int64(s, 2, stid);
    bind_text(s, 3, f[F_MODALITY]);
    bind_opt_int(s, 4, r->series_number);
    bind_text(s, 5, f[F_SERIES_DESC]);
    bind_text(s, 6, f[F_BODY_PART]);
    RDX_TRY(step_id(ix, s, &seid, err, "series"));

    s = ix->st[S_INSTANCE];
    bind_text(s, 1, f[F_SOP_UID]);
    sqlite3_bind_int64(s, 2, seid);
    bind_text(s, 3, f[F_SOP_CLASS]);
    bind_opt_int(s, 4, r->instance_number);
    bind_text(s, 5, f[F_XFER]);
    bind_opt_int(s, 6, r->rows);
    bind_opt_int(s, 7, r->columns);
    bind_opt_int(s, 8, r->frames);
    bind_text(s, 9, f[F_PATH]);
    sqlite3_bind_int64(s, 10, r->size);
    sqlite3_bind_int64(s, 11, r->mtime_ns);
    RDX_TRY(step_id(ix, s, &iid, err, "instance"));

    if (!r->is_report) {
        return RDX_OK;
    }
    s = ix->st[S_REPORT];
    sqlite3_bind_int64(s, 1, iid);
    bind_text(s, 2, f[F_STUDY_UID]);
    bind_text(s, 3, f[F_REPORT_TITLE]);
    bind_text(s, 4, f[F_COMPLETION]);
    bind_text(s, 5, f[F_VERIFICATION]);
    bind_text(s, 6, f[F_CONTENT_DATE]);
    bind_text(s, 7, f[F_CONTENT_TIME]);
    bind_text(s, 8, r->report_text);
    RDX_TRY(step_id(ix, s, &rid, err, "report"));
    for (size_t i = 0; i <= r->nlinks; i++) {
        s = ix->st[S_LINK];
        sqlite3_bind_int64(s, 1, rid);
        bind_text(s, 2, i == 0 ? f[F_STUDY_UID] : r->link_uid[i - 1]);
        bind_text(s, 3, i == 0 ? "own" : r->link_how[i - 1]);
        RDX_TRY(step_done(ix, s, err, "report link"));
    }
    return RDX_OK;
}

/* ---- Query ---------------------------------------------------------------- */

/*
 * Turn a DICOM wildcard pattern into a GLOB pattern: '*' and '?' keep their
 * meaning, '[' (GLOB's class opener) becomes "[[]". upper folds ASCII.
 */
static rdx_status glob_of(const char *pat, int upper, rdx_buf *out)
{
    rdx_buf_reset(out);
    for (const char *p = pat; *p != '\0'; p++) {
        char c = *p;
        if (c == '[') {
            RDX_TRY(rdx_buf_append_str(out, "[[]"));
            continue;
        }
        if (upper && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        RDX_TRY(rdx_buf_append_u8(out, (uint8_t)c));
    }
    return RDX_OK;
}

static int is_date8(const char *s, size_t n)
{
    if (n != 8) {
        return 0;
    }
    for (size_t i = 0; i < 8; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* Parse "D", "D1-D2", "D1-" or "-D2" (PS3.4 C.2.2.2.5 range matching). */
static rdx_status parse_range(const char *s, char from[9], char to[9], rdx_error *err)
{
    const char *dash = strchr(s, '-');
    size_t n = strlen(s);
    from[0] = to[0] = '\0';
    if (dash == NULL) {
        if (!is_date8(s, n)) {
            goto bad;
        }
        memcpy(from, s, 9);
        memcpy(to, s, 9);
        return RDX_OK;
    }
    size_t a = (size_t)(dash - s), b = n - a - 1;
    if ((a != 0 && !is_date8(s, a)) || (b != 0 && !is_date8(dash + 1, b)) || (a == 0 && b == 0)) {
        goto bad;
    }
    if (a) {
        memcpy(from, s, 8);
        from[8] = '\0';
    }
    if (b) {
        memcpy(to, dash + 1, 8);
        to[8] = '\0';
    }
    return RDX_OK;
bad:
    return rdx_error_set(err, RDX_EINVAL,
                         "study date '%s': expected YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or "
                         "-YYYYMMDD",
                         s);
}

static int has_wild(const char *s)
{
    return strchr(s, '*') != NULL || strchr(s, '?') != NULL;
}

static int set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static const char *col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

static int64_t col_int(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, i);
}

rdx_status rdx_img_index_query(rdx_img_index *ix, const rdx_img_query *q, rdx_img_row_fn fn,
                               void *user, size_t *count, rdx_error *err)
{
    if (count != NULL) {
        *count = 0;
    }
    if (ix == NULL || q == NULL || fn == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_query: NULL argument");
    }
    if (q->level < RDX_IMG_LEVEL_PATIENT || q->level > RDX_IMG_LEVEL_INSTANCE) {
        return rdx_error_set(err, RDX_EINVAL,
                             "query level %d is not one of patient, study, "
                             "series, instance",
                             (int)q->level);
    }
    char dfrom[9] = "", dto[9] = "";
    if (set(q->study_date)) {
        RDX_TRY(parse_range(q->study_date, dfrom, dto, err));
    }
    rdx_buf sql, g1, g2, g3;
    rdx_buf_init(&sql, 16384);
    rdx_buf_init(&g1, 4096);
    rdx_buf_init(&g2, 4096);
    rdx_buf_init(&g3, 4096);
    rdx_status st = RDX_OK;
    sqlite3_stmt *s = NULL;
    int lv = (int)q->level;

    /* Columns 0..: always the same list; levels above fill what they have. */
    st = rdx_buf_append_str(
        &sql, "SELECT p.patient_id, p.issuer, p.name, p.birth_date, p.sex,"
              " st.study_uid, st.study_date, st.study_time, st.accession, st.description,"
              " (SELECT group_concat(m, '\\') FROM (SELECT DISTINCT modality AS m FROM series"
              "   WHERE study_ref = st.id AND modality <> '' ORDER BY m)),");
    if (st == RDX_OK) {
        st =
            rdx_buf_append_str(&sql, lv >= RDX_IMG_LEVEL_SERIES
                                         ? " se.series_uid, se.modality, se.description, se.number,"
                                         : " '', '', '', NULL,");
    }
    if (st == RDX_OK) {
        st = rdx_buf_append_str(
            &sql, lv == RDX_IMG_LEVEL_INSTANCE
                      ? " i.sop_uid, i.sop_class, i.transfer_syntax, i.path, i.number, i.rows,"
                        " i.columns, i.frames,"
                      : " '', '', '', '', NULL, NULL, NULL, NULL,");
    }
    if (st == RDX_OK) {
        switch (lv) {
        case RDX_IMG_LEVEL_PATIENT:
            st = rdx_buf_append_str(
                &sql, " (SELECT count(*) FROM studies s2 WHERE s2.patient_ref = p.id),"
                      " (SELECT count(*) FROM series e2 JOIN studies s2 ON e2.study_ref = s2.id"
                      "   WHERE s2.patient_ref = p.id),"
                      " (SELECT count(*) FROM instances i2 JOIN series e2 ON i2.series_ref = e2.id"
                      "   JOIN studies s2 ON e2.study_ref = s2.id WHERE s2.patient_ref = p.id),"
                      " 0 FROM patients p JOIN studies st ON st.patient_ref = p.id");
            break;
        case RDX_IMG_LEVEL_STUDY:
            st = rdx_buf_append_str(
                &sql, " 1, (SELECT count(*) FROM series e2 WHERE e2.study_ref = st.id),"
                      " (SELECT count(*) FROM instances i2 JOIN series e2 ON i2.series_ref = e2.id"
                      "   WHERE e2.study_ref = st.id),"
                      " EXISTS(SELECT 1 FROM report_links rl WHERE rl.study_uid = st.study_uid)"
                      " FROM studies st JOIN patients p ON st.patient_ref = p.id");
            break;
        case RDX_IMG_LEVEL_SERIES:
            st = rdx_buf_append_str(
                &sql, " 1, 1, (SELECT count(*) FROM instances i2 WHERE i2.series_ref = se.id),"
                      " EXISTS(SELECT 1 FROM report_links rl WHERE rl.study_uid = st.study_uid)"
                      " FROM series se JOIN studies st ON se.study_ref = st.id"
                      " JOIN patients p ON st.patient_ref = p.id");
            break;
        default:
            st = rdx_buf_append_str(
                &sql, " 1, 1, 1,"
                      " EXISTS(SELECT 1 FROM report_links rl WHERE rl.study_uid = st.study_uid)"
                      " FROM instances i JOIN series se ON i.series_ref = se.id"
                      " JOIN studies st ON se.study_ref = st.id"
                      " JOIN patients p ON st.patient_ref = p.id");
            break;
        }
    }
    if (st == RDX_OK) {
        st = rdx_buf_append_str(&sql, " WHERE 1");
    }
    /* Parameters: ?1 patient id, ?2/?3 names, ?4/?5 dates, ?6 modality, ?7 accession, ?8 study, ?9
     * series */
    if (st == RDX_OK && set(q->patient_id)) {
        st = rdx_buf_append_str(&sql, has_wild(q->patient_id) ? " AND p.patient_id GLOB ?1"
                                                              : " AND p.patient_id = ?1");
    }
    if (st == RDX_OK && set(q->patient_name)) {
        /* Any component group may match; the alphabetic one ignores ASCII case. */
        st = rdx_buf_append_str(&sql, " AND (p.name_alpha_uc GLOB ?2 OR p.name_ideo GLOB ?3"
                                      " OR p.name_phon GLOB ?3 OR p.name GLOB ?3)");
    }
    if (st == RDX_OK && dfrom[0] != '\0') {
        st = rdx_buf_append_str(&sql, " AND st.study_date >= ?4");
    }
    if (st == RDX_OK && dto[0] != '\0') {
        st = rdx_buf_append_str(&sql, " AND st.study_date <= ?5 AND st.study_date <> ''");
    }
    if (st == RDX_OK && set(q->modality)) {
        st = rdx_buf_append_str(&sql, lv >= RDX_IMG_LEVEL_SERIES
                                          ? " AND se.modality = ?6"
                                          : " AND EXISTS(SELECT 1 FROM series e3 WHERE"
                                            " e3.study_ref = st.id AND e3.modality = ?6)");
    }
    if (st == RDX_OK && set(q->accession)) {
        st = rdx_buf_append_str(&sql, " AND st.accession = ?7");
    }
    if (st == RDX_OK && set(q->study_uid)) {
        st = rdx_buf_append_str(&sql, " AND st.study_uid = ?8");
    }
    if (st == RDX_OK && set(q->series_uid)) {
        st = rdx_buf_append_str(&sql, lv >= RDX_IMG_LEVEL_SERIES
                                          ? " AND se.series_uid = ?9"
                                          : " AND EXISTS(SELECT 1 FROM series e4 WHERE"
                                            " e4.study_ref = st.id AND e4.series_uid = ?9)");
    }
    if (st == RDX_OK) {
        switch (lv) {
        case RDX_IMG_LEVEL_PATIENT:
            st = rdx_buf_append_str(&sql, " GROUP BY p.id ORDER BY p.patient_id, p.name, p.id");
            break;
        case RDX_IMG_LEVEL_STUDY:
            st = rdx_buf_append_str(&sql, " ORDER BY st.study_date, st.study_time, st.study_uid");
            break;
        case RDX_IMG_LEVEL_SERIES:
            st = rdx_buf_append_str(&sql, " ORDER BY st.study_date, st.study_uid, se.number,"
                                          " se.series_uid");
            break;
        default:
            st = rdx_buf_append_str(&sql, " ORDER BY st.study_date, st.study_uid, se.number,"
                                          " se.series_uid, i.number, i.sop_uid");
            break;
        }
    }
    if (st == RDX_OK && q->limit > 0) {
        st = rdx_buf_printf(&sql, " LIMIT %zu", q->limit);
    }
    if (st != RDX_OK) {
        st = rdx_error_set(err, st, "query too long");
        goto out;
    }
    if (sqlite3_prepare_v2(ix->db, (const char *)sql.data, -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(ix, err, "query");
        goto out;
    }
    if (set(q->patient_id)) {
        if (has_wild(q->patient_id)) {
            st = glob_of(q->patient_id, 0, &g1);
            bind_text(s, 1, (const char *)g1.data);
        } else {
            bind_text(s, 1, q->patient_id);
        }
    }
    if (st == RDX_OK && set(q->patient_name)) {
        st = glob_of(q->patient_name, 1, &g2);
        if (st == RDX_OK) {
            st = glob_of(q->patient_name, 0, &g3);
        }
        if (st == RDX_OK) {
            bind_text(s, 2, (const char *)g2.data);
            bind_text(s, 3, (const char *)g3.data);
        }
    }
    if (st != RDX_OK) {
        st = rdx_error_set(err, st, "patient name or ID pattern too long");
        goto out;
    }
    if (dfrom[0] != '\0') {
        bind_text(s, 4, dfrom);
    }
    if (dto[0] != '\0') {
        bind_text(s, 5, dto);
    }
    if (set(q->modality)) {
        bind_text(s, 6, q->modality);
    }
    if (set(q->accession)) {
        bind_text(s, 7, q->accession);
    }
    if (set(q->study_uid)) {
        bind_text(s, 8, q->study_uid);
    }
    if (set(q->series_uid)) {
        bind_text(s, 9, q->series_uid);
    }
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            break;
        }
        if (rc != SQLITE_ROW) {
            st = db_fail(ix, err, "query");
            goto out;
        }
        rdx_img_row row;
        memset(&row, 0, sizeof row);
        row.level = q->level;
        row.patient_id = col(s, 0);
        row.issuer = col(s, 1);
        row.patient_name = col(s, 2);
        row.birth_date = col(s, 3);
        row.sex = col(s, 4);
        int lvl_study = lv >= RDX_IMG_LEVEL_STUDY;
        row.study_uid = lvl_study ? col(s, 5) : "";
        row.study_date = lvl_study ? col(s, 6) : "";
        row.study_time = lvl_study ? col(s, 7) : "";
        row.accession = lvl_study ? col(s, 8) : "";
        row.study_description = lvl_study ? col(s, 9) : "";
        row.modalities = lvl_study ? col(s, 10) : "";
        row.series_uid = col(s, 11);
        row.modality = col(s, 12);
        row.series_description = col(s, 13);
        row.series_number = col_int(s, 14);
        row.sop_instance_uid = col(s, 15);
        row.sop_class_uid = col(s, 16);
        row.transfer_syntax = col(s, 17);
        row.path = col(s, 18);
        row.instance_number = col_int(s, 19);
        row.rows = col_int(s, 20);
        row.columns = col_int(s, 21);
        row.frames = col_int(s, 22);
        row.n_studies = col_int(s, 23);
        row.n_series = col_int(s, 24);
        row.n_instances = col_int(s, 25);
        row.has_report = (int)col_int(s, 26);
        if (count != NULL) {
            (*count)++;
        }
        if (fn(user, &row) != 0) {
            break;
        }
    }
out:
    sqlite3_finalize(s);
    rdx_buf_free(&sql);
    rdx_buf_free(&g1);
    rdx_buf_free(&g2);
    rdx_buf_free(&g3);
    return st;
}

rdx_status rdx_img_index_report_text(rdx_img_index *ix, const char *study_uid, rdx_buf *out,
                                     rdx_error *err)
{
    if (ix == NULL || study_uid == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_report_text: NULL argument");
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(
            ix->db,
            "SELECT r.text, i.sop_uid, rl.how FROM report_links rl"
            " JOIN reports r ON rl.report_ref = r.id"
            " JOIN instances i ON r.instance_ref = i.id"
            " WHERE rl.study_uid = ?1 ORDER BY r.content_date, r.content_time, i.sop_uid",
            -1, &s, NULL) != SQLITE_OK) {
        return db_fail(ix, err, "report");
    }
    bind_text(s, 1, study_uid);
    rdx_status st = RDX_OK;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n > 0) {
            st = rdx_buf_append_str(out, "\n");
        }
        if (st == RDX_OK) {
            st = rdx_buf_append_str(out, col(s, 0));
        }
        if (st != RDX_OK) {
            st = rdx_error_set(err, st, "report for study %s: %s", study_uid, rdx_strerror(st));
            break;
        }
        n++;
    }
    if (st == RDX_OK && rc != SQLITE_DONE) {
        st = db_fail(ix, err, "report");
    }
    sqlite3_finalize(s);
    if (st == RDX_OK && n == 0) {
        st = rdx_error_set(err, RDX_ENOTFOUND, "study %s has no report in the index", study_uid);
    }
    return st;
}
