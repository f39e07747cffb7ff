/*
 * The CRL "high-water mark": the newest CRL a node has put in force, kept in
 * its node.db (table crl_mark, one row per network CA), so that an older CRL
 * file put back while the node is stopped (an attacker's, or a mistaken
 * restore from a backup) is refused at the next start as it is while the
 * node runs. An older CRL may lack revocations made since, so loading it
 * would let revoked institutions back in. CRLs are ordered as RFC 5280
 * section 5.2.3 orders them: by CRL number (monotonically increasing for a
 * given CA), else by lastUpdate. The row is keyed by the SHA-256 of the
 * CA's public key, so a network whose CA is replaced (a new key, its CRL
 * numbers starting afresh at 1) is not held to the old CA's numbers.
 */
#define _POSIX_C_SOURCE 200809L
#include "transport_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

void rdx_tp_crl_mark_of(X509_CRL *crl, struct rdx_tp_crl_mark *m)
{
    memset(m, 0, sizeof *m);
    if (crl == NULL) {
        return;
    }
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    char *t = num != NULL ? i2s_ASN1_INTEGER(NULL, num) : NULL;
    /* RFC 5280 caps a CRL number at 20 octets (49 digits): a longer one orders by time. */
    if (t != NULL && strlen(t) < sizeof m->number) {
        snprintf(m->number, sizeof m->number, "%s", t);
    }
    OPENSSL_free(t);
    ASN1_INTEGER_free(num);
    m->last_update = rdx_tp_asn1_time_unix(X509_CRL_get0_lastUpdate(crl));
    ERR_clear_error();
}

rdx_status rdx_tp_trust_store_mark(X509_STORE *store, struct rdx_tp_crl_mark *m)
{
    X509_CRL *crl = rdx_tp_trust_store_crl(store);
    X509 *ca = NULL;
    STACK_OF(X509_OBJECT) *objs = store != NULL ? X509_STORE_get0_objects(store) : NULL;
    for (int i = 0; i < sk_X509_OBJECT_num(objs) && ca == NULL; i++) {
        X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
        if (X509_OBJECT_get_type(o) == X509_LU_X509) {
            ca = X509_OBJECT_get0_X509(o);
        }
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    rdx_tp_crl_mark_of(crl, m);
    if (crl == NULL || ca == NULL || X509_pubkey_digest(ca, EVP_sha256(), md, &mdlen) != 1 ||
        mdlen != 32) {
        ERR_clear_error();
        return RDX_ENOENT;
    }
    for (unsigned i = 0; i < mdlen; i++) {
        snprintf(m->ca + 2 * i, sizeof m->ca - 2 * i, "%02x", md[i]);
    }
    return RDX_OK;
}

int rdx_tp_crl_mark_older(const struct rdx_tp_crl_mark *a, const struct rdx_tp_crl_mark *b,
                          const char *what_b, char *why, size_t whysz)
{
    BIGNUM *na = NULL, *nb = NULL;
    int older = 0, by_number = 0;
    if (a->number[0] != '\0' && b->number[0] != '\0' && BN_dec2bn(&na, a->number) > 0 &&
        BN_dec2bn(&nb, b->number) > 0) {
        by_number = 1;
        if (BN_cmp(na, nb) < 0) {
            snprintf(why, whysz, "its CRL number %s is lower than %s, that of %s", a->number,
                     b->number, what_b);
            older = 1;
        }
    }
    BN_free(na);
    BN_free(nb);
    ERR_clear_error();
    if (!by_number && a->last_update != 0 && b->last_update != 0 &&
        a->last_update < b->last_update) {
        char wa[32], wb[32];
        rdx_tp_time_text(a->last_update, wa, sizeof wa);
        rdx_tp_time_text(b->last_update, wb, sizeof wb);
        snprintf(why, whysz,
                 "it was issued at %s, before %s (%s), and the two cannot be ordered by CRL number",
                 wa, what_b, wb);
        older = 1;
    }
    return older;
}

rdx_status rdx_tp_crl_mark_load(sqlite3 *db, const char *ca, struct rdx_tp_crl_mark *m, int *found,
                                rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    *found = 0;
    memset(m, 0, sizeof *m);
    if (sqlite3_prepare_v2(db, "SELECT number, last_update, set_ms FROM crl_mark WHERE ca=?1", -1,
                           &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, ca, -1, SQLITE_STATIC) != SQLITE_OK) {
        rdx_status st = rdx_error_set(err, RDX_EDB, "node.db: crl_mark: %s", sqlite3_errmsg(db));
        sqlite3_finalize(q);
        return st;
    }
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const unsigned char *num = sqlite3_column_text(q, 0);
        snprintf(m->ca, sizeof m->ca, "%s", ca);
        snprintf(m->number, sizeof m->number, "%s", num != NULL ? (const char *)num : "");
        m->last_update = sqlite3_column_int64(q, 1);
        m->set_ms = sqlite3_column_int64(q, 2);
        *found = 1;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return rdx_error_set(err, RDX_EDB, "node.db: crl_mark: %s", sqlite3_errmsg(db));
    }
    return RDX_OK;
}

rdx_status rdx_tp_crl_mark_save(sqlite3 *db, const struct rdx_tp_crl_mark *m, const char *file,
                                rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    int ok = sqlite3_prepare_v2(db,
                                "INSERT OR REPLACE INTO crl_mark(ca, number, last_update, file, "
                                "set_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                                -1, &q, NULL) == SQLITE_OK &&
             sqlite3_bind_text(q, 1, m->ca, -1, SQLITE_STATIC) == SQLITE_OK &&
             (m->number[0] != '\0' ? sqlite3_bind_text(q, 2, m->number, -1, SQLITE_STATIC)
                                   : sqlite3_bind_null(q, 2)) == SQLITE_OK &&
             sqlite3_bind_int64(q, 3, m->last_update) == SQLITE_OK &&
             sqlite3_bind_text(q, 4, file != NULL ? file : "", -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(q, 5, rdx_clock_wall_ms()) == SQLITE_OK &&
             sqlite3_step(q) == SQLITE_DONE;
    sqlite3_finalize(q);
    if (!ok) {
        return rdx_error_set(err, RDX_EDB, "node.db: crl_mark: %s", sqlite3_errmsg(db));
    }
    return RDX_OK;
}

rdx_status rdx_tp_crl_mark_admit(sqlite3 *db, X509_STORE *store, const char *crl_path,
                                 rdx_error *err)
{
    struct rdx_tp_crl_mark now, kept;
    int found = 0;
    if (rdx_tp_trust_store_mark(store, &now) != RDX_OK) {
        return RDX_OK; /* no CRL or CA in it: nothing to order (the store refuses every peer) */
    }
    RDX_TRY(rdx_tp_crl_mark_load(db, now.ca, &kept, &found, err));
    if (found) {
        char what[200], when[32], why[600];
        rdx_tp_time_text(kept.set_ms / 1000, when, sizeof when);
        snprintf(what, sizeof what,
                 "the newest CRL this node has put in force (recorded in its node.db at %s)", when);
        if (rdx_tp_crl_mark_older(&now, &kept, what, why, sizeof why)) {
            return rdx_error_set(err, RDX_EAUTH, "%s: an older CRL is refused: %s", crl_path, why);
        }
        /* Equal: nothing to record. Newer: it becomes the mark. */
        char unused[8];
        if (!rdx_tp_crl_mark_older(&kept, &now, "", unused, sizeof unused)) {
            return RDX_OK;
        }
    }
    return rdx_tp_crl_mark_save(db, &now, crl_path, err);
}

rdx_status rdx_tp_crl_mark_admit_tx(sqlite3 *db, X509_STORE *store, const char *crl_path,
                                    const char *what, rdx_error *err)
{
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return rdx_error_set(err, RDX_EDB, "%s: %s", what, sqlite3_errmsg(db));
    }
    rdx_status st = rdx_tp_crl_mark_admit(db, store, crl_path, err);
    if (st == RDX_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        st = rdx_error_set(err, RDX_EDB, "%s: %s", what, sqlite3_errmsg(db));
    }
    if (st != RDX_OK) {
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return st;
}
