/*
 * The audit log: an append-only table in node.db (triggers refuse UPDATE and
 * DELETE), each record hash-chained to the one before it, so that removing,
 * reordering or editing a record (with the triggers dropped) is detected.
 * Fields follow IHE ATNA / DICOM PS3.15 A.5 audit message content: event,
 * outcome (EventOutcomeIndicator 0/4/8), the reporting node, the institution
 * (participant), the object (a case ID or connection) and the time.
 *
 * hash = SHA-256 of: prev "\n" seq "\n" time_ms "\n" event "\n" outcome "\n"
 *        node "\n" institution "\n" object "\n" detail   (hex, lower case)
 * The first record's prev is 64 zeros.
 */
#include "transport_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

static rdx_status chain_hash(const char *prev, long long seq, long long time_ms, const char *event,
                             int outcome, const char *node, const char *inst, const char *object,
                             const char *detail, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
    const char *parts[9];
    char seqs[32], times[32], outs[16];
    snprintf(seqs, sizeof seqs, "%lld", seq);
    snprintf(times, sizeof times, "%lld", time_ms);
    snprintf(outs, sizeof outs, "%d", outcome);
    parts[0] = prev;
    parts[1] = seqs;
    parts[2] = times;
    parts[3] = event;
    parts[4] = outs;
    parts[5] = node;
    parts[6] = inst;
    parts[7] = object;
    parts[8] = detail;
    for (int i = 0; ok && i < 9; i++) {
        ok = (i == 0 || EVP_DigestUpdate(c, "\n", 1) == 1) &&
             EVP_DigestUpdate(c, parts[i], strlen(parts[i])) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(c);
    if (!ok) {
        return RDX_ENOMEM;
    }
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return RDX_OK;
}

rdx_status rdx_tp_audit(sqlite3 *db, const char *node, const char *event, int outcome,
                        const char *inst, const char *object, const char *detail, rdx_error *err)
{
    int own = sqlite3_get_autocommit(db);
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    char prev[65] = ZERO_HASH, hash[65];
    long long seq = 1;
    long long now = (long long)rdx_clock_wall_ms();
    inst = inst != NULL ? inst : "";
    object = object != NULL ? object : "";
    detail = detail != NULL ? detail : "";
    if (own && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return rdx_error_set(err, RDX_EDB, "audit: %s", sqlite3_errmsg(db));
    }
    if (sqlite3_prepare_v2(db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &s,
                           NULL) != SQLITE_OK) {
        goto dberr;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(s, 0) + 1;
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(s, 1));
    } else if (rc != SQLITE_DONE) {
        goto dberr;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (chain_hash(prev, seq, now, event, outcome, node, inst, object, detail, hash) != RDX_OK) {
        st = rdx_error_set(err, RDX_ENOMEM, "audit: cannot hash");
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit(seq, time_ms, event, outcome, node, institution, "
                           "object, detail, prev, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(s, 1, seq) != SQLITE_OK || sqlite3_bind_int64(s, 2, now) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, event, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(s, 4, outcome) != SQLITE_OK ||
        sqlite3_bind_text(s, 5, node, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 6, inst, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 7, object, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 8, detail, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 9, prev, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 10, hash, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        goto dberr;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (own && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        goto dberr;
    }
    return RDX_OK;
dberr:
    st = rdx_error_set(err, RDX_EDB, "audit: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(s);
    if (own) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return st;
}

static const char *col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

rdx_status rdx_tp_audit_verify(sqlite3 *db, long long *records, long long *bad_seq, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    char prev[65] = ZERO_HASH, hash[65];
    long long n = 0, expect = 1;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, time_ms, event, outcome, node, institution, object, "
                           "detail, prev, hash FROM audit ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK) {
        return rdx_error_set(err, RDX_EDB, "audit: %s", sqlite3_errmsg(db));
    }
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            break;
        }
        if (rc != SQLITE_ROW) {
            st = rdx_error_set(err, RDX_EDB, "audit: %s", sqlite3_errmsg(db));
            goto out;
        }
        long long seq = sqlite3_column_int64(s, 0);
        const char *why = NULL;
        if (seq != expect) {
            why = "a record is missing before it";
        } else if (strcmp(col(s, 8), prev) != 0) {
            why = "its link to the previous record is wrong";
        } else if (chain_hash(prev, seq, sqlite3_column_int64(s, 1), col(s, 2),
                              sqlite3_column_int(s, 3), col(s, 4), col(s, 5), col(s, 6), col(s, 7),
                              hash) != RDX_OK) {
            st = rdx_error_set(err, RDX_ENOMEM, "audit: cannot hash");
            goto out;
        } else if (strcmp(hash, col(s, 9)) != 0) {
            why = "its contents do not match its hash";
        }
        if (why != NULL) {
            if (bad_seq != NULL) {
                *bad_seq = seq;
            }
            st = rdx_error_set(err, RDX_ECHECKSUM, "audit record %lld: %s", seq, why);
            goto out;
        }
        snprintf(prev, sizeof prev, "%s", col(s, 9));
        expect++;
        n++;
    }
    if (records != NULL) {
        *records = n;
    }
out:
    sqlite3_finalize(s);
    return st;
}

rdx_status rdx_transport_audit_list(const rdx_transport_config *cfg,
                                    int (*fn)(void *u, const rdx_transport_audit_record *r),
                                    void *u, rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, time_ms, event, outcome, node, institution, object, "
                           "detail, hash FROM audit ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        rdx_transport_audit_record r;
        memset(&r, 0, sizeof r);
        r.seq = sqlite3_column_int64(s, 0);
        r.time_ms = sqlite3_column_int64(s, 1);
        snprintf(r.event, sizeof r.event, "%s", col(s, 2));
        r.outcome = sqlite3_column_int(s, 3);
        snprintf(r.node, sizeof r.node, "%s", col(s, 4));
        snprintf(r.institution, sizeof r.institution, "%s", col(s, 5));
        snprintf(r.object, sizeof r.object, "%s", col(s, 6));
        snprintf(r.detail, sizeof r.detail, "%s", col(s, 7));
        snprintf(r.hash, sizeof r.hash, "%s", col(s, 8));
        if (fn(u, &r) != 0) {
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_audit_verify(const rdx_transport_config *cfg, long long *records,
                                      long long *bad_seq, rdx_error *err)
{
    sqlite3 *db = NULL;
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    rdx_status st = rdx_tp_audit_verify(db, records, bad_seq, err);
    if (st != RDX_OK) {
        rdx_error_prefix(err, "%s/node.db: ", cfg->data);
    }
    sqlite3_close(db);
    return st;
}
