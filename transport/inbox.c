/*
 * The inbox as a work queue for a node that processes what it receives (the
 * hub's dispatcher): which completely received cases still wait, completing
 * one (every case it produces queued in the outbox and the inbox case marked
 * processed, in ONE SQLite transaction), failures with retry and parking, and
 * each case's journey for `rdx case status`.
 *
 * The dispatch table lives in node.db beside the inbox. Output case IDs are
 * derived from the input (SHA-256 of node, sender, case ID and output index),
 * so a crash after the engine work but before the commit redoes the work and
 * stages the same IDs again: the commit happens once, and a receiver that
 * somehow saw an earlier attempt would suppress it as a duplicate anyway.
 */
#define _GNU_SOURCE
#include "transport_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

static const char DISPATCH_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS dispatch("
    "  sender TEXT NOT NULL,"
    "  case_id TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('retry', 'processed', 'parked')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  detail TEXT,"
    "  done_ms INTEGER,"
    "  PRIMARY KEY (sender, case_id));"
    "CREATE TABLE IF NOT EXISTS dispatch_out("
    "  sender TEXT NOT NULL,"
    "  case_id TEXT NOT NULL,"
    "  out_id TEXT NOT NULL PRIMARY KEY);";

static rdx_status open_db(const rdx_transport_config *cfg, sqlite3 **db, rdx_error *err)
{
    RDX_TRY(rdx_tp_node_db_open(cfg->data, db, err));
    if (sqlite3_exec(*db, DISPATCH_SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        rdx_status st =
            rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(*db));
        sqlite3_close(*db);
        *db = NULL;
        return st;
    }
    return RDX_OK;
}

static rdx_status db_fail(sqlite3 *db, const rdx_transport_config *cfg, rdx_error *err)
{
    return rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
}

static const char *coltext(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

const char *rdx_transport_config_path(const rdx_transport_config *cfg)
{
    return cfg != NULL ? cfg->path : NULL;
}

rdx_status rdx_transport_inbox_pending(const rdx_transport_config *cfg, int64_t now_ms,
                                       rdx_transport_inbox_case *out, size_t max, size_t *n,
                                       rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (cfg == NULL || out == NULL || n == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration or output");
    }
    *n = 0;
    RDX_TRY(open_db(cfg, &db, err));
    if (sqlite3_prepare_v2(db,
                           "SELECT i.sender, i.case_id, i.kind, coalesce(d.attempts, 0) FROM "
                           "inbox i LEFT JOIN dispatch d ON d.sender = i.sender AND d.case_id = "
                           "i.case_id WHERE i.state = 'complete' AND (d.state IS NULL OR "
                           "(d.state = 'retry' AND d.next_ms <= ?1)) ORDER BY i.done_ms LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(s, 1, now_ms) != SQLITE_OK ||
        sqlite3_bind_int64(s, 2, (sqlite3_int64)max) != SQLITE_OK) {
        st = db_fail(db, cfg, err);
        goto out;
    }
    int rc;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        rdx_transport_inbox_case *c = &out[*n];
        memset(c, 0, sizeof *c);
        snprintf(c->sender, sizeof c->sender, "%s", coltext(s, 0));
        snprintf(c->case_id, sizeof c->case_id, "%s", coltext(s, 1));
        snprintf(c->kind, sizeof c->kind, "%s", coltext(s, 2));
        c->attempts = sqlite3_column_int(s, 3);
        (*n)++;
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return st;
}

/* The ID of output idx of an inbox case: 32 hex digits of SHA-256 over its origin. */
static rdx_status output_id(const rdx_transport_config *cfg, const char *sender,
                            const char *case_id, size_t idx, char id[RDX_TRANSPORT_CASE_ID_LEN],
                            rdx_error *err)
{
    char text[512];
    unsigned char md[32];
    unsigned int mdlen = 0;
    int len =
        snprintf(text, sizeof text, "rdx-dispatch|%s|%s|%s|%zu", cfg->id, sender, case_id, idx);
    if (len < 0 || (size_t)len >= sizeof text ||
        EVP_Digest(text, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return rdx_error_set(err, RDX_EINTERNAL, "case %s: cannot derive an output ID", case_id);
    }
    for (size_t i = 0; i < 16; i++) {
        snprintf(id + 2 * i, 3, "%02x", md[i]);
    }
    return RDX_OK;
}

/* Remove whatever an interrupted earlier attempt left in DATA/outbox/ID. */
static void clear_stale_spool(const rdx_transport_config *cfg, const char *id)
{
    char dir[4200];
    struct stat sb;
    if (snprintf(dir, sizeof dir, "%s/outbox/%s", cfg->data, id) >= (int)sizeof dir ||
        stat(dir, &sb) != 0) {
        return;
    }
    rdx_tp_case_unstage(cfg, id, RDX_TRANSPORT_ITEMS_MAX);
}

/* The dispatch state of an inbox case ("" when it has none). */
static rdx_status dispatch_state(sqlite3 *db, const rdx_transport_config *cfg, const char *sender,
                                 const char *case_id, char *state, size_t statesz, int *attempts,
                                 rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    state[0] = '\0';
    *attempts = 0;
    if (sqlite3_prepare_v2(db, "SELECT state, attempts FROM dispatch WHERE sender=? AND case_id=?",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_finalize(s);
        return db_fail(db, cfg, err);
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        snprintf(state, statesz, "%s", coltext(s, 0));
        *attempts = sqlite3_column_int(s, 1);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return db_fail(db, cfg, err);
    }
    return RDX_OK;
}

static rdx_status check_complete_inbox(sqlite3 *db, const rdx_transport_config *cfg,
                                       const char *sender, const char *case_id, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT state FROM inbox WHERE sender=? AND case_id=?", -1, &s,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_finalize(s);
        return db_fail(db, cfg, err);
    }
    int rc = sqlite3_step(s);
    int complete = rc == SQLITE_ROW && strcmp(coltext(s, 0), "complete") == 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) {
        return rdx_error_set(err, RDX_ENOTFOUND, "case %s from %s: not in the inbox of %s", case_id,
                             sender, cfg->id);
    }
    if (!complete) {
        return rdx_error_set(err, RDX_ESTATE, "case %s from %s: still being received", case_id,
                             sender);
    }
    return RDX_OK;
}

rdx_status rdx_transport_inbox_complete(const rdx_transport_config *cfg, const char *sender,
                                        const char *case_id, const rdx_transport_output *outs,
                                        size_t nouts, const char *detail, int *already,
                                        rdx_error *err)
{
    sqlite3 *db = NULL;
    struct rdx_tp_manifest *ms = NULL;
    rdx_buf *blobs = NULL;
    size_t staged = 0;
    char state[16];
    int attempts = 0;
    rdx_status st = RDX_OK;
    if (already != NULL) {
        *already = 0;
    }
    if (cfg == NULL || sender == NULL || case_id == NULL || (nouts > 0 && outs == NULL)) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration, sender, case ID or outputs");
    }
    if (nouts > RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "case %s: more than %d output cases", case_id,
                             RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX);
    }
    RDX_TRY(open_db(cfg, &db, err));
    if ((st = check_complete_inbox(db, cfg, sender, case_id, err)) != RDX_OK ||
        (st = dispatch_state(db, cfg, sender, case_id, state, sizeof state, &attempts, err)) !=
            RDX_OK) {
        goto out;
    }
    if (strcmp(state, "processed") == 0) {
        /* Done before (the outputs are in the outbox): touch nothing. */
        if (already != NULL) {
            *already = 1;
        }
        goto out;
    }
    if (nouts > 0) {
        ms = rdx_callocarray(nouts, sizeof *ms);
        blobs = rdx_callocarray(nouts, sizeof *blobs);
        if (ms == NULL || blobs == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < nouts; i++) {
        char id[RDX_TRANSPORT_CASE_ID_LEN];
        if ((st = output_id(cfg, sender, case_id, i, id, err)) != RDX_OK) {
            goto out;
        }
        clear_stale_spool(cfg, id);
        rdx_buf_init(&blobs[i], RDX_TRANSPORT_OFFER_MAX);
        if ((st = rdx_tp_case_stage_linked(cfg, outs[i].to, outs[i].kind, outs[i].files,
                                           outs[i].nfiles, id, &ms[i], &blobs[i], err)) != RDX_OK) {
            rdx_error_prefix(err, "case %s, output %zu: ", case_id, i + 1);
            goto out;
        }
        staged = i + 1;
    }
    int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < nouts; i++) {
        sqlite3_stmt *s = NULL;
        ok = rdx_tp_case_insert(db, cfg, &ms[i], &blobs[i], err) &&
             sqlite3_prepare_v2(db,
                                "INSERT INTO dispatch_out(sender, case_id, out_id) VALUES (?,?,?)",
                                -1, &s, NULL) == SQLITE_OK &&
             sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(s, 3, ms[i].case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_step(s) == SQLITE_DONE;
        sqlite3_finalize(s);
    }
    if (ok) {
        sqlite3_stmt *s = NULL;
        ok =
            sqlite3_prepare_v2(db,
                               "INSERT INTO dispatch(sender, case_id, state, attempts, detail, "
                               "done_ms) VALUES (?1, ?2, 'processed', ?3, ?4, ?5) ON "
                               "CONFLICT(sender, case_id) DO UPDATE SET state='processed', "
                               "attempts=?3, detail=?4, done_ms=?5, last_error=NULL",
                               -1, &s, NULL) == SQLITE_OK &&
            sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_bind_int(s, 3, attempts + 1) == SQLITE_OK &&
            sqlite3_bind_text(s, 4, detail != NULL ? detail : "", -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_bind_int64(s, 5, rdx_clock_wall_ms()) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_DONE;
        sqlite3_finalize(s);
    }
    if (ok) {
        char text[1400];
        snprintf(text, sizeof text, "processed, %zu output case(s)%s%s", nouts,
                 detail != NULL && detail[0] ? ": " : "", detail != NULL ? detail : "");
        ok = rdx_tp_audit(db, cfg->id, "case-processed", RDX_TP_OUTCOME_SUCCESS, sender, case_id,
                          text, err) == RDX_OK;
    }
    ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        st = db_fail(db, cfg, err);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    staged = 0; /* committed: the spools now belong to the outbox */
    if (nouts > 0) {
        rdx_tp_outbox_kick(cfg->data);
    }
out:
    for (size_t i = 0; i < staged; i++) {
        rdx_tp_case_unstage(cfg, ms[i].case_id, ms[i].nitems);
    }
    for (size_t i = 0; ms != NULL && i < nouts; i++) {
        rdx_tp_manifest_clear(&ms[i]);
        rdx_buf_free(&blobs[i]);
    }
    free(ms);
    free(blobs);
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_inbox_fail(const rdx_transport_config *cfg, const char *sender,
                                    const char *case_id, const char *why, int max_attempts,
                                    int64_t retry_ms, int *parked, rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char state[16];
    int attempts = 0;
    rdx_status st = RDX_OK;
    if (parked != NULL) {
        *parked = 0;
    }
    if (cfg == NULL || sender == NULL || case_id == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration, sender or case ID");
    }
    RDX_TRY(open_db(cfg, &db, err));
    if ((st = check_complete_inbox(db, cfg, sender, case_id, err)) != RDX_OK ||
        (st = dispatch_state(db, cfg, sender, case_id, state, sizeof state, &attempts, err)) !=
            RDX_OK) {
        goto out;
    }
    if (strcmp(state, "processed") == 0 || strcmp(state, "parked") == 0) {
        st = rdx_error_set(err, RDX_ESTATE, "case %s from %s: already %s", case_id, sender, state);
        goto out;
    }
    attempts++;
    int park = max_attempts <= 0 || attempts >= max_attempts;
    int shift = attempts - 1 < 16 ? attempts - 1 : 16;
    int64_t next = rdx_clock_wall_ms() + (retry_ms > 0 ? retry_ms : 1000) * ((int64_t)1 << shift);
    char text[1200];
    snprintf(text, sizeof text, "%s after attempt %d: %s", park ? "parked" : "will retry", attempts,
             why != NULL ? why : "failed");
    int ok =
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db,
                           "INSERT INTO dispatch(sender, case_id, state, attempts, next_ms, "
                           "last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(sender, "
                           "case_id) DO UPDATE SET state=?3, attempts=?4, next_ms=?5, "
                           "last_error=?6",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(s, 3, park ? "parked" : "retry", -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int(s, 4, attempts) == SQLITE_OK &&
        sqlite3_bind_int64(s, 5, next) == SQLITE_OK &&
        sqlite3_bind_text(s, 6, why != NULL ? why : "failed", -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    ok = ok && rdx_tp_audit(db, cfg->id, park ? "case-parked" : "case-retry",
                            park ? RDX_TP_OUTCOME_SERIOUS : RDX_TP_OUTCOME_MINOR, sender, case_id,
                            text, err) == RDX_OK;
    ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        st = db_fail(db, cfg, err);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    if (parked != NULL) {
        *parked = park;
    }
out:
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_dispatch_list(const rdx_transport_config *cfg,
                                       int (*fn)(void *u, const rdx_transport_dispatch_info *d),
                                       void *u, rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (cfg == NULL || fn == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration or callback");
    }
    RDX_TRY(open_db(cfg, &db, err));
    if (sqlite3_prepare_v2(
            db,
            "SELECT i.sender, i.case_id, i.kind, i.state, coalesce(d.state, ''), "
            "coalesce(d.attempts, 0), coalesce(d.last_error, ''), coalesce(d.detail, ''), "
            "coalesce(d.done_ms, 0), (SELECT count(*) FROM dispatch_out o WHERE o.sender = "
            "i.sender AND o.case_id = i.case_id), (SELECT count(*) FROM dispatch_out o JOIN "
            "outbox b ON b.case_id = o.out_id WHERE o.sender = i.sender AND o.case_id = "
            "i.case_id AND b.state = 'acked') FROM inbox i LEFT JOIN dispatch d ON d.sender = "
            "i.sender AND d.case_id = i.case_id ORDER BY i.first_ms",
            -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(db, cfg, err);
        goto out;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        rdx_transport_dispatch_info d;
        memset(&d, 0, sizeof d);
        snprintf(d.sender, sizeof d.sender, "%s", coltext(s, 0));
        snprintf(d.case_id, sizeof d.case_id, "%s", coltext(s, 1));
        snprintf(d.kind, sizeof d.kind, "%s", coltext(s, 2));
        const char *in_state = coltext(s, 3), *ds = coltext(s, 4);
        d.outputs = sqlite3_column_int(s, 9);
        d.outputs_acked = sqlite3_column_int(s, 10);
        if (strcmp(in_state, "complete") != 0) {
            snprintf(d.state, sizeof d.state, "receiving");
        } else if (strcmp(ds, "processed") == 0) {
            snprintf(d.state, sizeof d.state, "%s",
                     d.outputs > 0 && d.outputs_acked == d.outputs ? "replied" : "processed");
        } else if (strcmp(ds, "parked") == 0) {
            snprintf(d.state, sizeof d.state, "parked");
        } else {
            snprintf(d.state, sizeof d.state, "%s", ds[0] ? "retry" : "received");
        }
        d.attempts = sqlite3_column_int(s, 5);
        snprintf(d.last_error, sizeof d.last_error, "%s", coltext(s, 6));
        snprintf(d.detail, sizeof d.detail, "%s", coltext(s, 7));
        d.done_ms = sqlite3_column_int64(s, 8);
        if (fn(u, &d)) {
            break;
        }
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_inbox_item_path(const rdx_transport_config *cfg, const char *sender,
                                         const char *case_id, size_t idx, char *out, size_t outsz,
                                         rdx_error *err)
{
    RDX_TRY(rdx_transport_inst_id_check(sender, "sender", err));
    RDX_TRY(rdx_tp_case_id_check(case_id, strlen(case_id), err));
    RDX_TRY(rdx_tp_path(out, outsz, err, "%s/inbox/%s/%s/%zu", cfg->data, sender, case_id, idx));
    /* A small item still held in node.db gets its file now (durably), so the path is good. */
    sqlite3 *db = NULL;
    rdx_buf blob;
    RDX_TRY(open_db(cfg, &db, err));
    rdx_buf_init(&blob, RDX_TRANSPORT_INLINE_MAX);
    rdx_status st = rdx_tp_blob_get(db, sender, case_id, idx, &blob, err);
    if (st == RDX_OK) {
        st = rdx_tp_blob_write_file(cfg->data, sender, case_id, idx, blob.data, blob.len, 1, err);
    } else if (st == RDX_ENOTFOUND) {
        st = RDX_OK;
    }
    rdx_buf_free(&blob);
    sqlite3_close(db);
    return st;
}

/* ---- Audit by data directory ---------------------------------------------- */

rdx_status rdx_transport_audit_verify_dir(const char *data_dir, long long *records,
                                          long long *bad_seq, rdx_error *err)
{
    sqlite3 *db = NULL;
    char path[4200];
    struct stat sb;
    if (data_dir == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no data directory");
    }
    RDX_TRY(rdx_tp_path(path, sizeof path, err, "%s/node.db", data_dir));
    if (stat(path, &sb) != 0) {
        return rdx_error_set(err, RDX_ENOENT, "%s: %s", path, strerror(errno));
    }
    RDX_TRY(rdx_tp_node_db_open(data_dir, &db, err));
    rdx_status st = rdx_tp_audit_verify(db, records, bad_seq, err);
    if (st != RDX_OK) {
        rdx_error_prefix(err, "%s: ", path);
    }
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_audit_list_dir(const char *data_dir,
                                        int (*fn)(void *u, const rdx_transport_audit_record *r),
                                        void *u, rdx_error *err)
{
    char path[4200];
    struct stat sb;
    if (data_dir == NULL || fn == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no data directory or callback");
    }
    RDX_TRY(rdx_tp_path(path, sizeof path, err, "%s/node.db", data_dir));
    if (stat(path, &sb) != 0) {
        return rdx_error_set(err, RDX_ENOENT, "%s: %s", path, strerror(errno));
    }
    /* The listing needs only the data directory of a configuration. */
    struct rdx_transport_config *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    rdx_status st = RDX_OK;
    if (snprintf(c->data, sizeof c->data, "%s", data_dir) >= (int)sizeof c->data) {
        st = rdx_error_set(err, RDX_EINVAL, "%s: path too long", data_dir);
    } else {
        st = rdx_transport_audit_list(c, fn, u, err);
    }
    free(c);
    return st;
}

rdx_status rdx_transport_audit_append(const rdx_transport_config *cfg, const char *event,
                                      int outcome, const char *inst, const char *object,
                                      const char *detail, rdx_error *err)
{
    sqlite3 *db = NULL;
    if (cfg == NULL || event == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration or event");
    }
    if (outcome != RDX_TP_OUTCOME_SUCCESS && outcome != RDX_TP_OUTCOME_MINOR &&
        outcome != RDX_TP_OUTCOME_SERIOUS) {
        return rdx_error_set(err, RDX_EINVAL, "audit outcome %d: not 0, 4 or 8", outcome);
    }
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    rdx_status st = rdx_tp_audit(db, cfg->id, event, outcome, inst != NULL ? inst : "",
                                 object != NULL ? object : "", detail != NULL ? detail : "", err);
    sqlite3_close(db);
    return st;
}

/* ---- Replies ---------------------------------------------------------------- */

/* Whether item idx of a received case holds exactly "ID\n" (an in-reply-to marker). */
static int marker_names(sqlite3 *db, const rdx_transport_config *cfg, const char *sender,
                        const char *case_id, size_t idx, const char *want)
{
    char path[4400];
    char buf[80];
    size_t wl = strlen(want);
    rdx_buf blob;
    rdx_buf_init(&blob, RDX_TRANSPORT_INLINE_MAX);
    rdx_status st = rdx_tp_blob_get(db, sender, case_id, idx, &blob, NULL);
    if (st != RDX_ENOTFOUND) {
        /* Still held in node.db (its file may not be written yet). */
        int same = st == RDX_OK && blob.len == wl + 1 && memcmp(blob.data, want, wl) == 0 &&
                   blob.data[wl] == '\n';
        rdx_buf_free(&blob);
        return same;
    }
    rdx_buf_free(&blob);
    if (snprintf(path, sizeof path, "%s/inbox/%s/%s/%zu", cfg->data, sender, case_id, idx) >=
        (int)sizeof path) {
        return 0;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n == wl + 1 && memcmp(buf, want, wl) == 0 && buf[wl] == '\n';
}

rdx_status rdx_transport_inbox_find_reply(const rdx_transport_config *cfg, const char *from,
                                          const char *case_id, char reply_id[65], rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_ENOTFOUND;
    if (cfg == NULL || case_id == NULL || reply_id == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration or case ID");
    }
    reply_id[0] = '\0';
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    if (sqlite3_prepare_v2(db,
                           "SELECT sender, case_id, manifest FROM inbox WHERE state='complete' "
                           "AND (?1 IS NULL OR sender=?1) ORDER BY first_ms",
                           -1, &s, NULL) != SQLITE_OK ||
        (from != NULL ? sqlite3_bind_text(s, 1, from, -1, SQLITE_STATIC)
                      : sqlite3_bind_null(s, 1)) != SQLITE_OK) {
        st = db_fail(db, cfg, err);
        goto out;
    }
    while (st == RDX_ENOTFOUND && sqlite3_step(s) == SQLITE_ROW) {
        struct rdx_tp_manifest m;
        if (rdx_tp_manifest_decode(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                                   &m, NULL) != RDX_OK) {
            continue;
        }
        for (size_t i = 0; i < m.nitems; i++) {
            if (strcmp(m.items[i].name, RDX_TRANSPORT_REPLY_ITEM) == 0 &&
                m.items[i].size == strlen(case_id) + 1 &&
                marker_names(db, cfg, coltext(s, 0), coltext(s, 1), i, case_id)) {
                snprintf(reply_id, 65, "%s", coltext(s, 1));
                st = RDX_OK;
                break;
            }
        }
        rdx_tp_manifest_clear(&m);
    }
    if (st == RDX_ENOTFOUND) {
        rdx_error_set(err, RDX_ENOTFOUND, "case %s: no reply received yet", case_id);
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return st;
}

int rdx_transport_config_has_peer(const rdx_transport_config *cfg, const char *id)
{
    return cfg != NULL && id != NULL && rdx_tp_config_peer(cfg, id) != NULL;
}
