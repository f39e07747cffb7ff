/*
 * index_pg.c - the PostgreSQL backend of the index ("postgresql://...",
 * through libpq): what a hub uses when several rdx nodes share one index.
 *
 * The same statements as SQLite (index_store.c), prepared once per
 * connection with $N placeholders; the schema differs only in types
 * (BIGSERIAL keys, BIGINT sizes) and in declaring text keys COLLATE "C", so
 * that ordering and LIKE prefix matching behave as on SQLite whatever the
 * cluster's locale, and LIKE can use the btree indexes. The schema is
 * created under an advisory lock, so two nodes starting at once do not race.
 */
#include "rdx/imaging.h"

#include "imaging_int.h"
#include "imaging_limits.h"

/* Debian puts libpq in /usr/include/postgresql; its own includes are relative. */
#include <postgresql/libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION "2"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS patients("
    " id BIGSERIAL PRIMARY KEY, pkey TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " patient_id TEXT COLLATE \"C\" NOT NULL, issuer TEXT COLLATE \"C\" NOT NULL,"
    " name TEXT COLLATE \"C\" NOT NULL, name_alpha TEXT COLLATE \"C\" NOT NULL,"
    " name_alpha_uc TEXT COLLATE \"C\" NOT NULL, name_ideo TEXT COLLATE \"C\" NOT NULL,"
    " name_phon TEXT COLLATE \"C\" NOT NULL, birth_date TEXT COLLATE \"C\" NOT NULL,"
    " sex TEXT COLLATE \"C\" NOT NULL);"
    "CREATE INDEX IF NOT EXISTS patients_id ON patients(patient_id);"
    "CREATE INDEX IF NOT EXISTS patients_alpha ON patients(name_alpha_uc);"
    "CREATE INDEX IF NOT EXISTS patients_ideo ON patients(name_ideo);"
    "CREATE INDEX IF NOT EXISTS patients_phon ON patients(name_phon);"
    "CREATE TABLE IF NOT EXISTS studies("
    " id BIGSERIAL PRIMARY KEY, study_uid TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " patient_ref BIGINT NOT NULL REFERENCES patients(id),"
    " study_date TEXT COLLATE \"C\" NOT NULL, study_time TEXT COLLATE \"C\" NOT NULL,"
    " accession TEXT COLLATE \"C\" NOT NULL, description TEXT NOT NULL, referring TEXT NOT NULL,"
    " institution TEXT NOT NULL, study_id TEXT NOT NULL, num_series INTEGER NOT NULL DEFAULT 0,"
    " num_instances INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_ref);"
    "CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date, study_time, study_uid);"
    "CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession);"
    "CREATE TABLE IF NOT EXISTS series("
    " id BIGSERIAL PRIMARY KEY, series_uid TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " study_ref BIGINT NOT NULL REFERENCES studies(id), modality TEXT COLLATE \"C\" NOT NULL,"
    " number BIGINT, description TEXT NOT NULL, body_part TEXT NOT NULL,"
    " num_instances INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS series_study ON series(study_ref);"
    "CREATE INDEX IF NOT EXISTS series_modality ON series(modality, study_ref);"
    "CREATE TABLE IF NOT EXISTS study_modalities("
    " modality TEXT COLLATE \"C\" NOT NULL, study_ref BIGINT NOT NULL REFERENCES studies(id) ON "
    "DELETE CASCADE,"
    " study_date TEXT COLLATE \"C\" NOT NULL, study_time TEXT COLLATE \"C\" NOT NULL, study_uid "
    "TEXT COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY(modality, study_ref));"
    "CREATE INDEX IF NOT EXISTS study_modalities_order"
    " ON study_modalities(modality, study_date, study_time, study_uid);"
    "CREATE INDEX IF NOT EXISTS study_modalities_study ON study_modalities(study_ref);"
    "CREATE TABLE IF NOT EXISTS instances("
    " id BIGSERIAL PRIMARY KEY, sop_uid TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " series_ref BIGINT NOT NULL REFERENCES series(id), sop_class TEXT NOT NULL, number BIGINT,"
    " transfer_syntax TEXT NOT NULL, rows BIGINT, columns BIGINT, frames BIGINT,"
    " path TEXT COLLATE \"C\" NOT NULL UNIQUE, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS instances_series ON instances(series_ref);"
    "CREATE TABLE IF NOT EXISTS reports("
    " id BIGSERIAL PRIMARY KEY,"
    " instance_ref BIGINT UNIQUE REFERENCES instances(id) ON DELETE CASCADE,"
    " source TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    " study_uid TEXT COLLATE \"C\" NOT NULL, title TEXT NOT NULL, completion TEXT NOT NULL,"
    " verification TEXT NOT NULL, content_date TEXT COLLATE \"C\" NOT NULL,"
    " content_time TEXT COLLATE \"C\" NOT NULL, text TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_links("
    " report_ref BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,"
    " study_uid TEXT COLLATE \"C\" NOT NULL, how TEXT NOT NULL,"
    " PRIMARY KEY(report_ref, study_uid));"
    "CREATE INDEX IF NOT EXISTS report_links_study ON report_links(study_uid);"
    "CREATE INDEX IF NOT EXISTS reports_source ON reports(source);"
    "INSERT INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "')"
    " ON CONFLICT DO NOTHING;";

/*
 * The same triggers as the SQLite backend's (see there): counts on series and
 * studies, study_modalities, and the removal of emptied series, studies and
 * patients follow every write.
 */
static const char triggers[] =
    "CREATE OR REPLACE FUNCTION rdx_instances_ins() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " UPDATE series SET num_instances = num_instances + 1 WHERE id = NEW.series_ref;"
    " UPDATE studies SET num_instances = num_instances + 1"
    "  WHERE id = (SELECT study_ref FROM series WHERE id = NEW.series_ref);"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE FUNCTION rdx_instances_del() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " UPDATE series SET num_instances = num_instances - 1 WHERE id = OLD.series_ref;"
    " UPDATE studies SET num_instances = num_instances - 1"
    "  WHERE id = (SELECT study_ref FROM series WHERE id = OLD.series_ref);"
    " DELETE FROM series WHERE id = OLD.series_ref AND num_instances <= 0;"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE FUNCTION rdx_series_ins() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " UPDATE studies SET num_series = num_series + 1, num_instances = num_instances +"
    "  NEW.num_instances WHERE id = NEW.study_ref;"
    " INSERT INTO study_modalities(modality, study_ref, study_date, study_time, study_uid)"
    "  SELECT NEW.modality, id, study_date, study_time, study_uid FROM studies"
    "  WHERE id = NEW.study_ref AND NEW.modality <> '' ON CONFLICT DO NOTHING;"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE FUNCTION rdx_series_del() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " UPDATE studies SET num_series = num_series - 1, num_instances = num_instances -"
    "  OLD.num_instances WHERE id = OLD.study_ref;"
    " DELETE FROM study_modalities WHERE study_ref = OLD.study_ref AND modality = OLD.modality"
    "  AND NOT EXISTS(SELECT 1 FROM series WHERE study_ref = OLD.study_ref"
    "  AND modality = OLD.modality);"
    " DELETE FROM studies WHERE id = OLD.study_ref AND num_series <= 0;"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE FUNCTION rdx_series_move() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " IF OLD.study_ref <> NEW.study_ref THEN"
    "  UPDATE studies SET num_series = num_series - 1, num_instances = num_instances -"
    "   OLD.num_instances WHERE id = OLD.study_ref;"
    "  UPDATE studies SET num_series = num_series + 1, num_instances = num_instances +"
    "   NEW.num_instances WHERE id = NEW.study_ref;"
    " END IF;"
    " DELETE FROM study_modalities WHERE study_ref = OLD.study_ref AND modality = OLD.modality"
    "  AND NOT EXISTS(SELECT 1 FROM series WHERE study_ref = OLD.study_ref"
    "  AND modality = OLD.modality);"
    " INSERT INTO study_modalities(modality, study_ref, study_date, study_time, study_uid)"
    "  SELECT NEW.modality, id, study_date, study_time, study_uid FROM studies"
    "  WHERE id = NEW.study_ref AND NEW.modality <> '' ON CONFLICT DO NOTHING;"
    " DELETE FROM studies WHERE id = OLD.study_ref AND num_series <= 0;"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE FUNCTION rdx_studies_date() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " UPDATE study_modalities SET study_date = NEW.study_date, study_time = NEW.study_time"
    "  WHERE study_ref = NEW.id;"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE FUNCTION rdx_studies_gone() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " DELETE FROM patients WHERE id = OLD.patient_ref"
    "  AND NOT EXISTS(SELECT 1 FROM studies WHERE patient_ref = OLD.patient_ref);"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE TRIGGER instances_ins AFTER INSERT ON instances"
    " FOR EACH ROW EXECUTE FUNCTION rdx_instances_ins();"
    "CREATE OR REPLACE TRIGGER instances_del AFTER DELETE ON instances"
    " FOR EACH ROW EXECUTE FUNCTION rdx_instances_del();"
    "CREATE OR REPLACE TRIGGER series_ins AFTER INSERT ON series"
    " FOR EACH ROW EXECUTE FUNCTION rdx_series_ins();"
    "CREATE OR REPLACE TRIGGER series_del AFTER DELETE ON series"
    " FOR EACH ROW EXECUTE FUNCTION rdx_series_del();"
    "CREATE OR REPLACE TRIGGER series_move AFTER UPDATE OF study_ref, modality ON series"
    " FOR EACH ROW WHEN (OLD.study_ref <> NEW.study_ref OR OLD.modality <> NEW.modality)"
    " EXECUTE FUNCTION rdx_series_move();"
    "CREATE OR REPLACE TRIGGER studies_date AFTER UPDATE OF study_date, study_time ON studies"
    " FOR EACH ROW WHEN (OLD.study_date <> NEW.study_date OR OLD.study_time <> NEW.study_time)"
    " EXECUTE FUNCTION rdx_studies_date();"
    "CREATE OR REPLACE TRIGGER studies_patient AFTER UPDATE OF patient_ref ON studies"
    " FOR EACH ROW WHEN (OLD.patient_ref <> NEW.patient_ref)"
    " EXECUTE FUNCTION rdx_studies_gone();"
    "CREATE OR REPLACE TRIGGER studies_del AFTER DELETE ON studies"
    " FOR EACH ROW EXECUTE FUNCTION rdx_studies_gone();";

struct pg {
    PGconn *c;
    char label[256]; /* the URI without credentials, for messages */
};

/* "postgresql://user:secret@host/db" -> "postgresql://host/db": never print a password. */
static void redact(const char *uri, char *out, size_t n)
{
    const char *scheme = strstr(uri, "://");
    const char *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
    if (at != NULL && (slash == NULL || at < slash)) {
        snprintf(out, n, "%.*s%s", (int)(scheme + 3 - uri), uri, at + 1);
    } else {
        snprintf(out, n, "%s", uri);
    }
    char *q = strchr(out, '?');
    if (q != NULL && strstr(q, "password") != NULL) {
        *q = '\0';
    }
}

/* The schema version the open index holds ("" when none). */
static void schema_version(struct pg *p, char *out, size_t n)
{
    out[0] = '\0';
    PGresult *r = PQexec(p->c, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
}

/*
 * SQLSTATEs that another writer on the same index causes, and that go away
 * when the whole transaction runs again (docs/imaging-index.md, "Several
 * indexers on one PostgreSQL index"): serialization_failure and
 * deadlock_detected (PostgreSQL's own advice is to retry), unique_violation
 * and foreign_key_violation from an instance or row another indexer wrote
 * or removed between our check and our write.
 */
static int retryable(const char *state)
{
    static const char *const codes[] = {"40001", "40P01", "23505", "23503"};
    for (size_t i = 0; state != NULL && i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(state, codes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * The error of a failed command: RDX_EBUSY when r's SQLSTATE says the
 * transaction may succeed if retried, else RDX_EDB. r may be NULL.
 */
static rdx_status db_fail_r(struct pg *p, const PGresult *r, rdx_error *err, const char *what)
{
    char msg[RDX_ERROR_MSG_MAX];
    const char *text = r != NULL ? PQresultErrorMessage(r) : "";
    if (text == NULL || text[0] == '\0') {
        text = p->c != NULL ? PQerrorMessage(p->c) : "no connection";
    }
    snprintf(msg, sizeof msg, "%s", text);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        msg[--n] = '\0';
    }
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL) {
        return rdx_error_set(err, retryable(state) ? RDX_EBUSY : RDX_EDB,
                             "%s: %s: %s (SQLSTATE %s)", p->label, what, msg, state);
    }
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", p->label, what, msg);
}

static rdx_status db_fail(struct pg *p, rdx_error *err, const char *what)
{
    return db_fail_r(p, NULL, err, what);
}

/* Run sql (no parameters, no rows wanted). */
static rdx_status exec(struct pg *p, const char *sql, rdx_error *err, const char *what)
{
    PGresult *r = PQexec(p->c, sql);
    ExecStatusType s = PQresultStatus(r);
    rdx_status st = RDX_OK;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        st = db_fail_r(p, r, err, what);
    }
    PQclear(r);
    return st;
}

/* Rewrite ?N placeholders as $N (our SQL has no '?' inside literals). */
static rdx_status dollars(const char *sql, rdx_buf *out)
{
    rdx_buf_reset(out);
    for (const char *s = sql; *s != '\0'; s++) {
        char c = (*s == '?' && s[1] >= '0' && s[1] <= '9') ? '$' : *s;
        RDX_TRY(rdx_buf_append_u8(out, (uint8_t)c));
    }
    return RDX_OK;
}

static void pg_close(void *impl)
{
    struct pg *p = impl;
    if (p == NULL) {
        return;
    }
    PQfinish(p->c);
    free(p);
}

static rdx_status pg_begin(void *impl, rdx_error *err)
{
    return exec(impl, "BEGIN", err, "BEGIN");
}

static void pg_rollback(void *impl)
{
    struct pg *p = impl;
    if (PQtransactionStatus(p->c) != PQTRANS_IDLE) {
        PGresult *r = PQexec(p->c, "ROLLBACK");
        PQclear(r);
    }
}

static rdx_status pg_commit(void *impl, rdx_error *err)
{
    struct pg *p = impl;
    rdx_status st = exec(p, "COMMIT", err, "COMMIT");
    if (st != RDX_OK) {
        pg_rollback(p);
    }
    return st;
}

static const char *const stmt_names[S_NSTMT] = {
    "rdx_unchanged", "rdx_by_sop",     "rdx_del_path",   "rdx_del_sop",     "rdx_patient",
    "rdx_study",     "rdx_series",     "rdx_instance",   "rdx_report",      "rdx_link",
    "rdx_del_path2", "rdx_gc_series",  "rdx_gc_studies", "rdx_gc_patients", "rdx_gc_sm",
    "rdx_del_added", "rdx_add_report",
};

/*
 * The four upserts of one instance (img_stmt_sql's S_PATIENT, S_STUDY,
 * S_SERIES, S_INSTANCE, same SET clauses) chained through data-modifying
 * CTEs: one round trip instead of four. The AFTER triggers fire at the end of
 * the statement and see all four rows.
 */
static const char put_chain_sql[] =
    "WITH p AS (INSERT INTO patients(pkey, patient_id, issuer, name, name_alpha, name_alpha_uc,"
    " name_ideo, name_phon, birth_date, sex) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
    " ON CONFLICT(pkey) DO UPDATE SET"
    " name=coalesce(nullif(excluded.name, ''), patients.name),"
    " name_alpha=coalesce(nullif(excluded.name_alpha, ''), patients.name_alpha),"
    " name_alpha_uc=coalesce(nullif(excluded.name_alpha_uc, ''), patients.name_alpha_uc),"
    " name_ideo=coalesce(nullif(excluded.name_ideo, ''), patients.name_ideo),"
    " name_phon=coalesce(nullif(excluded.name_phon, ''), patients.name_phon),"
    " birth_date=coalesce(nullif(excluded.birth_date, ''), patients.birth_date),"
    " sex=coalesce(nullif(excluded.sex, ''), patients.sex) RETURNING id),"
    " st AS (INSERT INTO studies(study_uid, patient_ref, study_date, study_time, accession,"
    " description, referring, institution, study_id)"
    " SELECT $11::text, p.id, $12::text, $13::text, $14::text, $15::text, $16::text, $17::text,"
    " $18::text FROM p"
    " ON CONFLICT(study_uid) DO UPDATE SET patient_ref=excluded.patient_ref,"
    " study_date=coalesce(nullif(excluded.study_date, ''), studies.study_date),"
    " study_time=coalesce(nullif(excluded.study_time, ''), studies.study_time),"
    " accession=coalesce(nullif(excluded.accession, ''), studies.accession),"
    " description=coalesce(nullif(excluded.description, ''), studies.description),"
    " referring=coalesce(nullif(excluded.referring, ''), studies.referring),"
    " institution=coalesce(nullif(excluded.institution, ''), studies.institution),"
    " study_id=coalesce(nullif(excluded.study_id, ''), studies.study_id) RETURNING id),"
    " se AS (INSERT INTO series(series_uid, study_ref, modality, number, description, body_part)"
    " SELECT $19::text, st.id, $20::text, $21::bigint, $22::text, $23::text FROM st"
    " ON CONFLICT(series_uid) DO UPDATE SET study_ref=excluded.study_ref,"
    " modality=coalesce(nullif(excluded.modality, ''), series.modality),"
    " number=coalesce(excluded.number, series.number),"
    " description=coalesce(nullif(excluded.description, ''), series.description),"
    " body_part=coalesce(nullif(excluded.body_part, ''), series.body_part) RETURNING id)"
    " INSERT INTO instances(sop_uid, series_ref, sop_class, number, transfer_syntax, rows,"
    " columns, frames, path, size, mtime_ns)"
    " SELECT $24::text, se.id, $25::text, $26::bigint, $27::text, $28::bigint, $29::bigint,"
    " $30::bigint, $31::text, $32::bigint, $33::bigint FROM se RETURNING id";

static rdx_status pg_put_chain(void *impl, const char *const *params, char *out, size_t outsz,
                               rdx_error *err)
{
    struct pg *p = impl;
    PGresult *r =
        PQexecPrepared(p->c, "rdx_put_chain", IMG_PUT_CHAIN_NPARAMS, params, NULL, NULL, 0);
    rdx_status st = RDX_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        st = db_fail_r(p, r, err, "write");
    } else if (PQntuples(r) != 1) {
        st = rdx_error_set(err, RDX_EDB, "%s: write: the instance upsert returned no id", p->label);
    } else {
        snprintf(out, outsz, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return st;
}

static rdx_status pg_run(void *impl, enum img_stmt id, const char *const *params, int n, char *out,
                         size_t outsz, int *got_row, rdx_error *err)
{
    struct pg *p = impl;
    if (got_row != NULL) {
        *got_row = 0;
    }
    PGresult *r = PQexecPrepared(p->c, stmt_names[id], n, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    rdx_status st = RDX_OK;
    if (s == PGRES_TUPLES_OK) {
        if (out != NULL && outsz > 0 && PQntuples(r) > 0 && PQnfields(r) > 0) {
            snprintf(out, outsz, "%s", PQgetvalue(r, 0, 0));
            if (got_row != NULL) {
                *got_row = 1;
            }
        }
    } else if (s != PGRES_COMMAND_OK) {
        st = db_fail_r(p, r, err, "write");
    }
    PQclear(r);
    return st;
}

/*
 * Transaction-level advisory locks on the batch's row keys, taken in the
 * sorted order the caller gives (unnest keeps the array's order), released
 * at COMMIT or ROLLBACK. One round trip.
 */
static rdx_status pg_lock_keys(void *impl, const int64_t *keys, size_t n, rdx_error *err)
{
    struct pg *p = impl;
    rdx_buf arr;
    rdx_buf_init(&arr, 24 * n + 8);
    rdx_status st = rdx_buf_append_u8(&arr, '{');
    for (size_t i = 0; i < n && st == RDX_OK; i++) {
        st = rdx_buf_printf(&arr, "%s%lld", i > 0 ? "," : "", (long long)keys[i]);
    }
    if (st == RDX_OK) {
        st = rdx_buf_append(&arr, "}", 2);
    }
    if (st != RDX_OK) {
        rdx_buf_free(&arr);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    const char *params[1] = {(const char *)arr.data};
    PGresult *r = PQexecParams(p->c, "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) k",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        st = db_fail_r(p, r, err, "row key locks");
    }
    PQclear(r);
    rdx_buf_free(&arr);
    return st;
}

/*
 * Commands sent together in libpq pipeline mode (libpq 14+), results read
 * after one sync: one round trip for the lot. Every result up to the sync is
 * read whatever happens, so the connection stays usable; the first failure's
 * SQLSTATE decides the error, and the commands after it come back
 * PGRES_PIPELINE_ABORTED without having run.
 */
static rdx_status pg_pipeline(void *impl, struct img_cmd *cmds, size_t n, rdx_error *err)
{
    struct pg *p = impl;
    if (PQenterPipelineMode(p->c) != 1) {
        return db_fail(p, err, "cannot enter pipeline mode");
    }
    rdx_status st = RDX_OK;
    size_t sent = 0;
    for (; sent < n; sent++) {
        const struct img_cmd *c = &cmds[sent];
        const char *name = c->stmt == IMG_CMD_CHAIN ? "rdx_put_chain" : stmt_names[c->stmt];
        if (PQsendQueryPrepared(p->c, name, c->nparams, c->params, NULL, NULL, 0) != 1) {
            st = db_fail(p, err, "write");
            break;
        }
    }
    if (PQpipelineSync(p->c) != 1 && st == RDX_OK) {
        st = db_fail(p, err, "write");
    }
    /* Results of command k until a NULL, for k < sent; then the sync's. */
    size_t k = 0;
    int synced = 0, nulls_in_a_row = 0;
    while (!synced) {
        PGresult *r = PQgetResult(p->c);
        if (r == NULL) {
            k++;
            if (++nulls_in_a_row > 2 || PQstatus(p->c) != CONNECTION_OK) {
                if (st == RDX_OK) {
                    st = db_fail(p, err, "write");
                }
                break; /* the connection is gone: nothing more will come */
            }
            continue;
        }
        nulls_in_a_row = 0;
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_PIPELINE_SYNC) {
            synced = 1;
        } else if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK) {
            if (k < sent && cmds[k].out != NULL && rs == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
                PQnfields(r) > 0) {
                snprintf(cmds[k].out, cmds[k].outsz, "%s", PQgetvalue(r, 0, 0));
                cmds[k].got = 1;
            }
        } else if (st == RDX_OK) {
            st = rs == PGRES_PIPELINE_ABORTED ? db_fail(p, err, "write")
                                              : db_fail_r(p, r, err, "write");
        }
        PQclear(r);
    }
    if (PQexitPipelineMode(p->c) != 1 && st == RDX_OK) {
        st = db_fail(p, err, "cannot leave pipeline mode");
    }
    return st;
}

#define MAX_COLS 32

static rdx_status pg_select(void *impl, const char *sql, const char *const *params, int n,
                            img_row_cb cb, void *user, rdx_error *err)
{
    struct pg *p = impl;
    PGresult *r = NULL;
    int cached = -1;
    for (int i = 0; i < S_NSTMT; i++) {
        if (img_stmt_sql[i] == sql) {
            cached = i;
        }
    }
    if (cached >= 0) {
        r = PQexecPrepared(p->c, stmt_names[cached], n, params, NULL, NULL, 0);
    } else {
        rdx_buf q;
        rdx_buf_init(&q, 1u << 20);
        if (dollars(sql, &q) != RDX_OK) {
            rdx_buf_free(&q);
            return rdx_error_set(err, RDX_ENOMEM, "query too long");
        }
        r = PQexecParams(p->c, (const char *)q.data, n, NULL, params, NULL, NULL, 0);
        rdx_buf_free(&q);
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rdx_status st = db_fail_r(p, r, err, "query");
        PQclear(r);
        return st;
    }
    int rows = PQntuples(r), ncol = PQnfields(r);
    if (ncol > MAX_COLS) {
        ncol = MAX_COLS;
    }
    const char *vals[MAX_COLS];
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < ncol; c++) {
            vals[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
        }
        if (cb(user, ncol, vals) != 0) {
            break;
        }
    }
    PQclear(r);
    return RDX_OK;
}

static const struct img_backend pg_backend = {
    .name = "postgresql",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .run = pg_run,
    .put_chain = pg_put_chain,
    .lock_keys = pg_lock_keys,
    .pipeline = pg_pipeline,
    .select = pg_select,
};

rdx_status img_pg_open(const char *uri, const struct img_backend **be, void **impl, rdx_error *err)
{
    struct pg *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    redact(uri, p->label, sizeof p->label);
    rdx_status st = RDX_OK;
    rdx_buf q;
    rdx_buf_init(&q, 1u << 16);
    p->c = PQconnectdb(uri);
    if (p->c == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", p->label);
        goto fail;
    }
    if (PQstatus(p->c) != CONNECTION_OK) {
        st = db_fail(p, err, "cannot connect");
        goto fail;
    }
    /* Every value the engine hands over is UTF-8. */
    if (PQsetClientEncoding(p->c, "UTF8") != 0) {
        st = db_fail(p, err, "cannot set client encoding UTF8");
        goto fail;
    }
    PGresult *r = PQexec(p->c, "SET client_min_messages = warning");
    PQclear(r);
    if ((st = exec(p, "BEGIN", err, "BEGIN")) != RDX_OK ||
        /* 7496824 is 0x726478, "rdx": the key of the lock held while the schema is made. */
        (st = exec(p, "SELECT pg_advisory_xact_lock(7496824)", err, "schema lock")) != RDX_OK ||
        (st = exec(p, schema, err, "cannot create the schema")) != RDX_OK) {
        goto fail;
    }
    char version[16];
    schema_version(p, version, sizeof version);
    if (strcmp(version, "1") == 0 &&
        (st = exec(p, img_migrate_v1_sql, err, "cannot upgrade the schema from version 1")) !=
            RDX_OK) {
        goto fail;
    }
    if (strcmp(version, "1") != 0 && strcmp(version, SCHEMA_VERSION) != 0) {
        st = rdx_error_set(err, RDX_EDB,
                           "%s: index schema version '%s', this rdx reads " SCHEMA_VERSION,
                           p->label, version);
        goto fail;
    }
    if ((st = exec(p, triggers, err, "cannot create the schema triggers")) != RDX_OK ||
        (st = exec(p, "COMMIT", err, "COMMIT")) != RDX_OK) {
        goto fail;
    }
    for (int i = 0; i < S_NSTMT; i++) {
        if (dollars(img_stmt_sql[i], &q) != RDX_OK) {
            st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
            goto fail;
        }
        PGresult *pr = PQprepare(p->c, stmt_names[i], (const char *)q.data, 0, NULL);
        ExecStatusType s = PQresultStatus(pr);
        PQclear(pr);
        if (s != PGRES_COMMAND_OK) {
            st = db_fail(p, err, "cannot prepare a statement");
            goto fail;
        }
    }
    PGresult *cr = PQprepare(p->c, "rdx_put_chain", put_chain_sql, 0, NULL);
    ExecStatusType cs = PQresultStatus(cr);
    PQclear(cr);
    if (cs != PGRES_COMMAND_OK) {
        st = db_fail(p, err, "cannot prepare a statement");
        goto fail;
    }
    rdx_buf_free(&q);
    *be = &pg_backend;
    *impl = p;
    return RDX_OK;
fail:
    rdx_buf_free(&q);
    pg_close(p);
    return st;
}
