/*
 * lab/store.c - routing decisions kept in SQLite, so that each lab's load
 * per day survives between runs and an order routed twice (the same
 * MSH-4.1 and MSH-10) gets the decisions it was given the first time.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Schema versions (table lab_schema, one row):
 *  1  the tables below without lab_schema and lab_lab_down (stores written
 *     before versioning; recognised by lab_route existing without lab_schema);
 *  2  adds lab_schema and lab_lab_down (lab availability kept across runs);
 *  3  adds lab_test_result (each test's result state on its tube). A tube
 *     resulted before version 3 has no rows there: all its tests count as
 *     resulted (lab/custody.c), which is what version 2 recorded.
 *  4  adds lab_load: the tests routed to each lab on each day, kept by
 *     triggers on lab_route, so that reading the loads before routing an
 *     order costs the lab-days it can touch, not every decision ever stored
 *     (reading lab_route itself made a batch of N orders cost N^2). Filled
 *     from lab_route when an older store is brought up to date.
 *  5  adds lab_order_msg: each clinic order as the hub received it, from
 *     which rdx writes the order for a tube it opens itself (a recollection,
 *     an add-on's new collection, an aliquot: lab/order_new.c). Orders
 *     stored before version 5 have none.
 * A store of a version newer than LAB_SCHEMA_VERSION is refused untouched.
 * Every step only adds tables, so one script (CREATE ... IF NOT EXISTS)
 * brings any older version up to date.
 */
#define LAB_SCHEMA_VERSION 5

static rdx_status db_error(rdx_lab_store *s, rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static const char pragmas[] = "PRAGMA journal_mode=WAL;"
                              "PRAGMA busy_timeout=5000;";

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS lab_route ("
    " sender TEXT NOT NULL, control_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " test_code TEXT NOT NULL, test_text TEXT NOT NULL, specimen_id TEXT NOT NULL,"
    " parent_id TEXT NOT NULL, specimen_type TEXT NOT NULL, lab TEXT NOT NULL,"
    " lab_city TEXT NOT NULL, code INTEGER NOT NULL, reason TEXT NOT NULL,"
    " collected_ms INTEGER, pickup_ms INTEGER, arrival_ms INTEGER, result_ms INTEGER,"
    " day INTEGER NOT NULL, routed_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (sender, control_id, seq));"
    "CREATE INDEX IF NOT EXISTS lab_route_load ON lab_route (lab, day);"
    /* Chain of custody (lab/custody.c). */
    "CREATE TABLE IF NOT EXISTS lab_specimen ("
    " authority TEXT NOT NULL, barcode TEXT NOT NULL, patient_id TEXT NOT NULL,"
    " patient_authority TEXT NOT NULL, order_sender TEXT NOT NULL, order_control TEXT NOT NULL,"
    " parent_barcode TEXT NOT NULL, lab TEXT NOT NULL, tests TEXT NOT NULL,"
    " state INTEGER NOT NULL, condition INTEGER NOT NULL, stable_until_ms INTEGER,"
    " arrival_due_ms INTEGER, recollect_of TEXT NOT NULL, recollected_as TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, placer TEXT NOT NULL, void_tests TEXT NOT NULL,"
    " specimen_type TEXT NOT NULL, collected_ms INTEGER, volume_ml REAL,"
    " PRIMARY KEY (authority, barcode));"
    "CREATE INDEX IF NOT EXISTS lab_specimen_barcode ON lab_specimen (barcode);"
    "CREATE INDEX IF NOT EXISTS lab_specimen_placer ON lab_specimen (order_sender, placer);"
    /* Results (lab/result.c): each message once; observations with their history. */
    "CREATE TABLE IF NOT EXISTS lab_result_msg ("
    " sender TEXT NOT NULL, control_id TEXT NOT NULL, ack_code INTEGER NOT NULL,"
    " summary TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (sender, control_id));"
    "CREATE TABLE IF NOT EXISTS lab_result_obs ("
    " authority TEXT NOT NULL, barcode TEXT NOT NULL, sender TEXT NOT NULL,"
    " control_id TEXT NOT NULL, obx_seq INTEGER NOT NULL, code TEXT NOT NULL,"
    " value TEXT NOT NULL, units TEXT NOT NULL, status TEXT NOT NULL,"
    " superseded INTEGER NOT NULL, received_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS lab_event ("
    " id INTEGER PRIMARY KEY, authority TEXT NOT NULL, barcode TEXT NOT NULL,"
    " event INTEGER NOT NULL, from_state INTEGER NOT NULL, to_state INTEGER NOT NULL,"
    " condition INTEGER NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL,"
    " reported_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL,"
    " UNIQUE (authority, barcode, event, reported_ms, actor));"
    /* Version 2. */
    "CREATE TABLE IF NOT EXISTS lab_lab_down ("
    " lab TEXT PRIMARY KEY, since_ms INTEGER NOT NULL, actor TEXT NOT NULL,"
    " reason TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS lab_schema (version INTEGER NOT NULL);"
    /* Version 3: per-test result state (lab/result.c); final = 1 for OBX-11 F, C, U or X. */
    "CREATE TABLE IF NOT EXISTS lab_test_result ("
    " authority TEXT NOT NULL, barcode TEXT NOT NULL, test TEXT NOT NULL,"
    " status TEXT NOT NULL, final INTEGER NOT NULL, sender TEXT NOT NULL,"
    " control_id TEXT NOT NULL, resulted_ms INTEGER NOT NULL,"
    " PRIMARY KEY (authority, barcode, test));"
    /* Version 4: loads per day and lab, kept by the triggers below (only routed rows count). */
    "CREATE TABLE IF NOT EXISTS lab_load ("
    " day INTEGER NOT NULL, lab TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (day, lab)) WITHOUT ROWID;"
    "CREATE TRIGGER IF NOT EXISTS lab_load_insert AFTER INSERT ON lab_route"
    " WHEN NEW.lab <> '' BEGIN"
    " INSERT INTO lab_load (day, lab, n) VALUES (NEW.day, NEW.lab, 1)"
    " ON CONFLICT (day, lab) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS lab_load_delete AFTER DELETE ON lab_route"
    " WHEN OLD.lab <> '' BEGIN"
    " UPDATE lab_load SET n = n - 1 WHERE day = OLD.day AND lab = OLD.lab; END;"
    "CREATE TRIGGER IF NOT EXISTS lab_load_update AFTER UPDATE OF lab, day ON lab_route BEGIN"
    " UPDATE lab_load SET n = n - 1 WHERE OLD.lab <> '' AND day = OLD.day AND lab = OLD.lab;"
    " INSERT INTO lab_load (day, lab, n) SELECT NEW.day, NEW.lab, 1 WHERE NEW.lab <> ''"
    " ON CONFLICT (day, lab) DO UPDATE SET n = n + 1; END;"
    /* Version 5: the clinic's order, ER7 as received (lab/order_new.c). */
    "CREATE TABLE IF NOT EXISTS lab_order_msg ("
    " sender TEXT NOT NULL, control_id TEXT NOT NULL, received_ms INTEGER NOT NULL,"
    " message BLOB NOT NULL, PRIMARY KEY (sender, control_id));";

/* Version 4's lab_load from the decisions an older store holds (after the schema script). */
static const char load_fill[] = "DELETE FROM lab_load;"
                                "INSERT INTO lab_load (day, lab, n) SELECT day, lab, COUNT(*) "
                                "FROM lab_route WHERE lab <> '' GROUP BY day, lab;";

/* 1 when the query returns a row. */
static int has_row(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    int yes = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        yes = sqlite3_step(q) == SQLITE_ROW;
    }
    sqlite3_finalize(q);
    return yes;
}

/*
 * Create the tables of a new store, or bring an older one to
 * LAB_SCHEMA_VERSION, in one transaction; refuse a newer one.
 */
static rdx_status schema_setup(rdx_lab_store *s, rdx_error *err)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot start a transaction");
    }
    rdx_status st = RDX_OK;
    int64_t version = 0; /* 0: a new, empty store */
    if (has_row(s->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                       "'lab_schema'")) {
        sqlite3_stmt *q = NULL;
        version = -1;
        if (sqlite3_prepare_v2(s->db, "SELECT MAX(version) FROM lab_schema", -1, &q, NULL) ==
                SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) == SQLITE_INTEGER) {
            version = sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        if (version < 1) {
            st = rdx_error_set(err, RDX_EDB,
                               "%s: the lab store's lab_schema table is empty or "
                               "unreadable; refusing to guess its layout",
                               s->path);
            goto out;
        }
    } else if (has_row(s->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                              "'lab_route'")) {
        version = 1; /* written before versioning */
    }
    if (version > LAB_SCHEMA_VERSION) {
        st = rdx_error_set(err, RDX_EDB,
                           "%s: lab store schema version %lld is newer than this rdx knows (%d); "
                           "use the rdx that wrote it or a newer one (the store is left as it is)",
                           s->path, (long long)version, LAB_SCHEMA_VERSION);
        goto out;
    }
    if (version == LAB_SCHEMA_VERSION) {
        goto out;
    }
    /* New store or an older version: every table is CREATE IF NOT EXISTS, steps only add. */
    if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, load_fill, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "DELETE FROM lab_schema", NULL, NULL, NULL) != SQLITE_OK) {
        st = db_error(s, err, "cannot create or migrate the tables");
        goto out;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "INSERT INTO lab_schema VALUES (%d)", LAB_SCHEMA_VERSION);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        st = db_error(s, err, "cannot record the schema version");
    }
out:
    if (st == RDX_OK) {
        if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            st = db_error(s, err, "cannot commit");
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
    } else {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return st;
}

void rdx_lab_store_free(rdx_lab_store *s)
{
    if (s == NULL) {
        return;
    }
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

rdx_status rdx_lab_store_open(const char *uri, rdx_lab_store **out, rdx_error *err)
{
    if (uri == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "store: bad arguments");
    }
    *out = NULL;
    if (strncmp(uri, "sqlite:", 7) != 0 || uri[7] == '\0') {
        return rdx_error_set(err, RDX_EINVAL,
                             "%s: unsupported database URI (want sqlite:PATH or sqlite::memory:)",
                             uri);
    }
    rdx_lab_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    s->path = rdx_strndup(uri + 7, strlen(uri + 7));
    if (s->path == NULL) {
        free(s);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rdx_status st = s->db ? db_error(s, err, "cannot open")
                              : rdx_error_set(err, RDX_ENOMEM, "out of memory");
        rdx_lab_store_free(s);
        return st;
    }
    if (sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        rdx_status st = db_error(s, err, "cannot set up the database");
        rdx_lab_store_free(s);
        return st;
    }
    rdx_status st = schema_setup(s, err);
    if (st != RDX_OK) {
        rdx_lab_store_free(s);
        return st;
    }
    *out = s;
    return RDX_OK;
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    return t != NULL ? t : "";
}

rdx_status lab_store_load_days(rdx_lab_store *s, rdx_lab_router *r, int64_t from_day,
                               int64_t to_day, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT lab, day, n FROM lab_load WHERE day BETWEEN ?1 AND ?2 AND n > 0",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot read loads");
    }
    sqlite3_bind_int64(q, 1, from_day);
    sqlite3_bind_int64(q, 2, to_day);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *lab = (const char *)sqlite3_column_text(q, 0);
        int64_t day = sqlite3_column_int64(q, 1);
        int64_t n = sqlite3_column_int64(q, 2);
        if (lab == NULL || n <= 0 || n > UINT32_MAX) {
            continue;
        }
        rdx_status a = rdx_lab_router_add_load(r, lab, day, (unsigned)n, NULL);
        if (a != RDX_OK && a != RDX_ENOTFOUND) {
            st = rdx_error_set(err, a, "%s: lab %s: cannot count its load", s->path, lab);
            break;
        }
    }
    if (st == RDX_OK && rc != SQLITE_DONE) {
        st = db_error(s, err, "cannot read loads");
    }
    sqlite3_finalize(q);
    q = NULL;
    if (st != RDX_OK) {
        return st;
    }
    /* Labs marked down (rdx_lab_store_set_down) qualify for nothing until marked up. */
    if (sqlite3_prepare_v2(s->db, "SELECT lab FROM lab_lab_down", -1, &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot read lab availability");
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        (void)rdx_lab_router_set_down(r, col_text(q, 0), 1, NULL); /* unknown labs: skipped */
    }
    if (rc != SQLITE_DONE) {
        st = db_error(s, err, "cannot read lab availability");
    }
    sqlite3_finalize(q);
    return st;
}

rdx_status rdx_lab_store_load(rdx_lab_store *s, rdx_lab_router *r, rdx_error *err)
{
    return lab_store_load_days(s, r, INT64_MIN, INT64_MAX, err);
}

static int64_t col_time(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, i);
}

rdx_status rdx_lab_store_lookup(rdx_lab_store *s, const char *sender, const char *control_id,
                                rdx_lab_routing **out, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_lab_routing *rt = NULL;
    rdx_status st = RDX_OK;
    *out = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT test_code, test_text, specimen_id, parent_id, specimen_type, "
                           "lab, lab_city, code, reason, collected_ms, pickup_ms, arrival_ms, "
                           "result_ms, day FROM lab_route WHERE sender = ?1 AND control_id = ?2 "
                           "ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot look up an order");
    }
    sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, control_id, -1, SQLITE_STATIC);
    if ((st = lab_routing_new(&rt)) != RDX_OK) {
        st = rdx_error_set(err, st, "out of memory");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        rdx_lab_decision d = {
            .test_code = col_text(q, 0),
            .test_text = col_text(q, 1),
            .specimen_id = col_text(q, 2),
            .parent_id = col_text(q, 3),
            .specimen_type = col_text(q, 4),
            .lab = col_text(q, 5),
            .lab_city = col_text(q, 6),
            .code = (rdx_lab_route_code)sqlite3_column_int(q, 7),
            .reason = col_text(q, 8),
            .collected_ms = col_time(q, 9),
            .pickup_ms = col_time(q, 10),
            .arrival_ms = col_time(q, 11),
            .result_ms = col_time(q, 12),
            .day = sqlite3_column_int64(q, 13),
            .specimen_authority = "",
            .stable_until_ms = INT64_MIN,
        };
        if ((st = lab_routing_push(rt, &d)) != RDX_OK) {
            st = rdx_error_set(err, st, "out of memory");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        st = db_error(s, err, "cannot look up an order");
        goto out;
    }
    if (rdx_lab_routing_count(rt) == 0) {
        st = RDX_ENOTFOUND;
    }
out:
    sqlite3_finalize(q);
    if (st != RDX_OK) {
        rdx_lab_routing_free(rt);
        return st;
    }
    *out = rt;
    return RDX_OK;
}

static void bind_time(sqlite3_stmt *q, int i, int64_t v)
{
    if (v == INT64_MIN) {
        sqlite3_bind_null(q, i);
    } else {
        sqlite3_bind_int64(q, i, v);
    }
}

/* Insert rt's rows; the caller holds the transaction. */
rdx_status lab_store_save_rows(rdx_lab_store *s, const char *sender, const char *control_id,
                               const rdx_lab_routing *rt, int64_t now_ms, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO lab_route VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                           "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot store decisions");
    }
    for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, control_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)i);
        sqlite3_bind_text(q, 4, d->test_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, d->test_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, d->specimen_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, d->parent_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 8, d->specimen_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 9, d->lab, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 10, d->lab_city, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 11, (int)d->code);
        sqlite3_bind_text(q, 12, d->reason, -1, SQLITE_STATIC);
        bind_time(q, 13, d->collected_ms);
        bind_time(q, 14, d->pickup_ms);
        bind_time(q, 15, d->arrival_ms);
        bind_time(q, 16, d->result_ms);
        sqlite3_bind_int64(q, 17, d->day);
        sqlite3_bind_int64(q, 18, now_ms);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_CONSTRAINT) {
            st = rdx_error_set(err, RDX_EDUPLICATE, "%s: order %s from %s is already stored",
                               s->path, control_id, sender);
            break;
        }
        if (rc != SQLITE_DONE) {
            st = db_error(s, err, "cannot store decisions");
            break;
        }
    }
    sqlite3_finalize(q);
    return st;
}

rdx_status lab_store_begin(rdx_lab_store *s, rdx_error *err)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot start a transaction");
    }
    return RDX_OK;
}

rdx_status lab_store_end(rdx_lab_store *s, rdx_status st, rdx_error *err)
{
    if (st == RDX_OK) {
        if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
            return RDX_OK;
        }
        st = db_error(s, err, "cannot commit");
    }
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

rdx_status rdx_lab_store_save(rdx_lab_store *s, const char *sender, const char *control_id,
                              const rdx_lab_routing *rt, int64_t now_ms, rdx_error *err)
{
    RDX_TRY(lab_store_begin(s, err));
    return lab_store_end(s, lab_store_save_rows(s, sender, control_id, rt, now_ms, err), err);
}

rdx_status rdx_lab_store_set_down(rdx_lab_store *s, const char *lab_id, int down, const char *actor,
                                  const char *reason, int64_t now_ms, int *changed, rdx_error *err)
{
    if (s == NULL || lab_id == NULL || lab_id[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "lab availability: a lab id is required");
    }
    sqlite3_stmt *q = NULL;
    const char *sql = down ? "INSERT OR IGNORE INTO lab_lab_down VALUES (?1, ?2, ?3, ?4)"
                           : "DELETE FROM lab_lab_down WHERE lab = ?1";
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot record lab availability");
    }
    sqlite3_bind_text(q, 1, lab_id, -1, SQLITE_STATIC);
    if (down) {
        sqlite3_bind_int64(q, 2, now_ms);
        sqlite3_bind_text(q, 3, actor != NULL ? actor : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, reason != NULL ? reason : "", -1, SQLITE_STATIC);
    }
    rdx_status st = RDX_OK;
    if (sqlite3_step(q) != SQLITE_DONE) {
        st = db_error(s, err, "cannot record lab availability");
    } else if (changed != NULL) {
        *changed = sqlite3_changes(s->db) > 0;
    }
    sqlite3_finalize(q);
    return st;
}

rdx_status rdx_lab_store_labs_down(rdx_lab_store *s, rdx_lab_down_fn fn, void *user, size_t *count,
                                   rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    size_t n = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT lab, since_ms, actor, reason FROM lab_lab_down ORDER BY lab", -1,
                           &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot read lab availability");
    }
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        n++;
        if (fn != NULL) {
            fn(user, col_text(q, 0), sqlite3_column_int64(q, 1), col_text(q, 2), col_text(q, 3));
        }
    }
    rdx_status st = rc == SQLITE_DONE ? RDX_OK : db_error(s, err, "cannot read lab availability");
    sqlite3_finalize(q);
    if (count != NULL) {
        *count = n;
    }
    return st;
}

rdx_status lab_store_keep_order_msg(rdx_lab_store *s, const char *sender, const char *control_id,
                                    const void *data, size_t len, int64_t now_ms, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    if (len > INT32_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: order %s too large to keep", s->path,
                             control_id);
    }
    if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO lab_order_msg VALUES (?1, ?2, ?3, ?4)", -1,
                           &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot keep the order");
    }
    sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, control_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now_ms);
    sqlite3_bind_blob(q, 4, len ? data : "", (int)len, SQLITE_STATIC);
    rdx_status st =
        sqlite3_step(q) == SQLITE_DONE ? RDX_OK : db_error(s, err, "cannot keep the order");
    sqlite3_finalize(q);
    return st;
}

rdx_status lab_store_order_msg(rdx_lab_store *s, const char *sender, const char *control_id,
                               rdx_buf *out, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(
            s->db, "SELECT message FROM lab_order_msg WHERE sender = ?1 AND control_id = ?2", -1,
            &q, NULL) != SQLITE_OK) {
        return db_error(s, err, "cannot read the order");
    }
    sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, control_id, -1, SQLITE_STATIC);
    rdx_status st;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(q, 0);
        size_t n = (size_t)sqlite3_column_bytes(q, 0);
        st = rdx_buf_append(out, p != NULL ? p : "", n);
        if (st != RDX_OK) {
            st = rdx_error_set(err, st, "order %s from %s: %s", control_id, sender,
                               rdx_strerror(st));
        }
    } else if (rc == SQLITE_DONE) {
        st = RDX_ENOTFOUND;
    } else {
        st = db_error(s, err, "cannot read the order");
    }
    sqlite3_finalize(q);
    return st;
}
