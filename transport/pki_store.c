/*
 * The CA database: one SQLite file (DIR/ca.db) recording every certificate
 * the CA has issued, its validity and its revocation, plus a few key/value
 * facts (network name, last CRL number). WAL with synchronous=FULL, so a
 * recorded issue or revocation survives a crash or power cut.
 */
#include "transport_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static const char SCHEMA[] = "CREATE TABLE IF NOT EXISTS meta("
                             "  k TEXT PRIMARY KEY, v TEXT NOT NULL);"
                             "CREATE TABLE IF NOT EXISTS certs("
                             "  serial TEXT PRIMARY KEY,"
                             "  institution TEXT NOT NULL,"
                             "  name TEXT NOT NULL,"
                             "  city TEXT NOT NULL,"
                             "  not_before INTEGER NOT NULL,"
                             "  not_after INTEGER NOT NULL,"
                             "  revoked_at INTEGER,"
                             "  reason INTEGER);"
                             "CREATE INDEX IF NOT EXISTS certs_inst ON certs(institution);";

static rdx_status db_fail(sqlite3 *db, const char *path, rdx_error *err)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
}

rdx_status rdx_tp_store_open(const char *path, int create, sqlite3 **out, rdx_error *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        rdx_status st =
            (rc == SQLITE_CANTOPEN && !create)
                ? rdx_error_set(err, RDX_ENOENT, "%s: cannot open the CA database", path)
                : db_fail(db, path, err);
        sqlite3_close(db);
        return st;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) !=
            SQLITE_OK ||
        (create && sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)) {
        rdx_status st = db_fail(db, path, err);
        sqlite3_close(db);
        return st;
    }
    /* An existing file must be a CA database, not any SQLite file. */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM certs, meta LIMIT 0", -1, &s, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(s);
        sqlite3_close(db);
        return rdx_error_set(err, RDX_EDB, "%s: not an rdx CA database", path);
    }
    sqlite3_finalize(s);
    *out = db;
    return RDX_OK;
}

void rdx_tp_store_close(sqlite3 *db)
{
    sqlite3_close(db);
}

rdx_status rdx_tp_store_exec(sqlite3 *db, const char *sql, const char *path, rdx_error *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(db, path, err);
    }
    return RDX_OK;
}

rdx_status rdx_tp_store_meta_get(sqlite3 *db, const char *k, char *out, size_t outsz,
                                 const char *path, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?1", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC) != SQLITE_OK) {
        st = db_fail(db, path, err);
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        st = rdx_error_set(err, RDX_ENOTFOUND, "%s: no '%s' recorded", path, k);
    } else if (rc != SQLITE_ROW) {
        st = db_fail(db, path, err);
    } else {
        const unsigned char *v = sqlite3_column_text(s, 0);
        int n = snprintf(out, outsz, "%s", v ? (const char *)v : "");
        if (n < 0 || (size_t)n >= outsz) {
            st = rdx_error_set(err, RDX_EDB, "%s: '%s' is too long", path, k);
        }
    }
out:
    sqlite3_finalize(s);
    return st;
}

rdx_status rdx_tp_store_meta_set(sqlite3 *db, const char *k, const char *v, const char *path,
                                 rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)", -1, &s, NULL) !=
            SQLITE_OK ||
        sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        st = db_fail(db, path, err);
    }
    sqlite3_finalize(s);
    return st;
}

rdx_status rdx_tp_store_find_active(sqlite3 *db, const char *inst, int64_t now, char *serial,
                                    size_t serialsz, const char *path, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT serial FROM certs WHERE institution = ?1 AND revoked_at IS "
                           "NULL AND not_after > ?2 ORDER BY not_before DESC LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 2, now) != SQLITE_OK) {
        st = db_fail(db, path, err);
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        st = RDX_ENOTFOUND;
    } else if (rc != SQLITE_ROW) {
        st = db_fail(db, path, err);
    } else {
        const unsigned char *v = sqlite3_column_text(s, 0);
        snprintf(serial, serialsz, "%s", v ? (const char *)v : "");
    }
out:
    sqlite3_finalize(s);
    return st;
}

rdx_status rdx_tp_store_insert(sqlite3 *db, const struct rdx_tp_cert_row *row, const char *name,
                               const char *city, const char *path, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO certs(serial, institution, name, city, not_before, "
                           "not_after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, row->serial, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, row->institution, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 4, city, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 5, row->not_before) != SQLITE_OK ||
        sqlite3_bind_int64(s, 6, row->not_after) != SQLITE_OK || sqlite3_step(s) != SQLITE_DONE) {
        st = db_fail(db, path, err);
    }
    sqlite3_finalize(s);
    return st;
}

static void row_from(sqlite3_stmt *s, struct rdx_tp_cert_row *r)
{
    const unsigned char *serial = sqlite3_column_text(s, 0);
    const unsigned char *inst = sqlite3_column_text(s, 1);
    memset(r, 0, sizeof *r);
    snprintf(r->serial, sizeof r->serial, "%s", serial ? (const char *)serial : "");
    snprintf(r->institution, sizeof r->institution, "%s", inst ? (const char *)inst : "");
    r->not_before = sqlite3_column_int64(s, 2);
    r->not_after = sqlite3_column_int64(s, 3);
    r->revoked_at = sqlite3_column_type(s, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 4);
    r->reason = sqlite3_column_int(s, 5);
}

rdx_status rdx_tp_store_get(sqlite3 *db, const char *serial, struct rdx_tp_cert_row *row,
                            const char *path, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT serial, institution, not_before, not_after, revoked_at, "
                           "reason FROM certs WHERE serial = ?1",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, serial, -1, SQLITE_STATIC) != SQLITE_OK) {
        st = db_fail(db, path, err);
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        st = rdx_error_set(err, RDX_ENOTFOUND, "%s: no certificate with serial %s", path, serial);
    } else if (rc != SQLITE_ROW) {
        st = db_fail(db, path, err);
    } else {
        row_from(s, row);
    }
out:
    sqlite3_finalize(s);
    return st;
}

rdx_status rdx_tp_store_revoke(sqlite3 *db, const char *serial, const char *inst, int64_t when,
                               int reason, size_t *count, const char *path, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    const char *sql = serial != NULL ? "UPDATE certs SET revoked_at = ?1, reason = ?2 WHERE "
                                       "serial = ?3 AND revoked_at IS NULL"
                                     : "UPDATE certs SET revoked_at = ?1, reason = ?2 WHERE "
                                       "institution = ?3 AND revoked_at IS NULL";
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(s, 1, when) != SQLITE_OK ||
        sqlite3_bind_int(s, 2, reason) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, serial != NULL ? serial : inst, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        st = db_fail(db, path, err);
    } else if (count != NULL) {
        *count = (size_t)sqlite3_changes(db);
    }
    sqlite3_finalize(s);
    return st;
}

rdx_status rdx_tp_store_each_revoked(sqlite3 *db,
                                     rdx_status (*fn)(void *u, const struct rdx_tp_cert_row *r),
                                     void *u, const char *path, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT serial, institution, not_before, not_after, revoked_at, "
                           "reason FROM certs WHERE revoked_at IS NOT NULL ORDER BY serial",
                           -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(db, path, err);
        goto out;
    }
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            break;
        }
        if (rc != SQLITE_ROW) {
            st = db_fail(db, path, err);
            goto out;
        }
        struct rdx_tp_cert_row r;
        row_from(s, &r);
        st = fn(u, &r);
        if (st != RDX_OK) {
            goto out;
        }
    }
out:
    sqlite3_finalize(s);
    return st;
}
