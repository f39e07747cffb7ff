/*
 * The node's durable state: one SQLite database per node (DATA/node.db) in
 * WAL mode with synchronous=FULL, so a committed transaction survives a
 * crash or power cut. The outbox keeps a case until it is acknowledged (or
 * dead-lettered), the inbox remembers every (sender, case ID) forever,
 * inbox_items holds how many bytes of each item are durable on disk, and
 * crl_mark the newest CRL put in force.
 */
#define _POSIX_C_SOURCE 200809L
#include "transport_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS outbox("
    "  case_id TEXT PRIMARY KEY,"
    "  recipient TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  manifest BLOB NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'acked', 'dead')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  done_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_ms);"
    /*
     * For delivery's two queries (node_send.c): the due recipients (read from
     * this index alone) and one recipient's due cases. Without it both scan
     * every due case of every recipient: with 100k due cases for 60 peers,
     * 230 ms and 24 ms per batch against 20 ms and 0.3 ms.
     */
    "CREATE INDEX IF NOT EXISTS outbox_rcpt ON outbox(state, recipient, next_attempt_ms, "
    "created_ms);"
    /*
     * Each queued item's chunk check values (32 bytes per chunk), computed
     * while the item was copied into the spool, so that delivery sends
     * without hashing. Only items of two chunks or more have a row.
     */
    "CREATE TABLE IF NOT EXISTS outbox_checks("
    "  case_id TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  checks BLOB NOT NULL,"
    "  PRIMARY KEY (case_id, idx));"
    "CREATE TABLE IF NOT EXISTS inbox("
    "  sender TEXT NOT NULL,"
    "  case_id TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  manifest BLOB NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('receiving', 'complete')),"
    "  first_ms INTEGER NOT NULL,"
    "  done_ms INTEGER,"
    "  offers INTEGER NOT NULL DEFAULT 1,"
    "  PRIMARY KEY (sender, case_id));"
    "CREATE TABLE IF NOT EXISTS inbox_items("
    "  sender TEXT NOT NULL,"
    "  case_id TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  durable INTEGER NOT NULL,"
    "  PRIMARY KEY (sender, case_id, idx));"
    /*
     * Small items of received cases, held in the WAL so that a group of small
     * cases needs one sync, not one per file. The node writes the item files
     * without syncing them and, on its next start, rewrites any that a crash
     * lost from these rows, syncs the files and empties the table.
     */
    "CREATE TABLE IF NOT EXISTS inbox_blobs("
    "  sender TEXT NOT NULL,"
    "  case_id TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  spilled INTEGER NOT NULL DEFAULT 0," /* >0: its file is written, not yet synced */
    "  PRIMARY KEY (sender, case_id, idx));"
    /*
     * The newest CRL this node has put in force, per network CA (the SHA-256
     * of its public key): an older CRL file is refused at start as it is
     * while the node runs (crl_mark.c). number is the CRL number in decimal
     * (NULL: the CRL had none), last_update its lastUpdate in Unix seconds.
     * IF NOT EXISTS makes it appear in a node.db from before it too.
     */
    "CREATE TABLE IF NOT EXISTS crl_mark("
    "  ca TEXT PRIMARY KEY,"
    "  number TEXT,"
    "  last_update INTEGER NOT NULL,"
    "  file TEXT NOT NULL,"
    "  set_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit("
    "  seq INTEGER PRIMARY KEY,"
    "  time_ms INTEGER NOT NULL,"
    "  event TEXT NOT NULL,"
    "  outcome INTEGER NOT NULL,"
    "  node TEXT NOT NULL,"
    "  institution TEXT NOT NULL,"
    "  object TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  prev TEXT NOT NULL,"
    "  hash TEXT NOT NULL);"
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

rdx_status rdx_tp_node_db_open(const char *data_dir, sqlite3 **out, rdx_error *err)
{
    char path[4200];
    struct stat sb;
    sqlite3 *db = NULL;
    RDX_TRY(rdx_tp_path(path, sizeof path, err, "%s/node.db", data_dir));
    if (stat(data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
            return rdx_error_set(err, errno == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", data_dir,
                                 strerror(errno));
        }
        if (stat(data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            return rdx_error_set(err, RDX_EIO, "%s: not a directory", data_dir);
        }
    }
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rdx_status st =
            rdx_error_set(err, RDX_EDB, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return st;
    }
    /* The node process and 'rdx case' verbs share the file: wait for each other. */
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        rdx_status st = rdx_error_set(err, RDX_EDB, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return st;
    }
    /* A node.db from before the spill thread: its inbox_blobs has no spilled column. */
    sqlite3_stmt *q = NULL;
    int has = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM pragma_table_info('inbox_blobs') WHERE name='spilled'",
                           -1, &q, NULL) == SQLITE_OK) {
        has = sqlite3_step(q) == SQLITE_ROW;
    }
    sqlite3_finalize(q);
    if (!has && sqlite3_exec(db,
                             "ALTER TABLE inbox_blobs ADD COLUMN spilled INTEGER NOT NULL "
                             "DEFAULT 0",
                             NULL, NULL, NULL) != SQLITE_OK) {
        rdx_status st = rdx_error_set(err, RDX_EDB, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return st;
    }
    *out = db;
    return RDX_OK;
}
