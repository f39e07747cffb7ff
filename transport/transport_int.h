/*
 * transport_int.h - helpers shared by the transport's sources and its own
 * unit tests; never included from outside transport/.
 */
#ifndef RDX_TRANSPORT_INT_H
#define RDX_TRANSPORT_INT_H

#include "rdx/common.h"

#include <stddef.h>
#include <sys/types.h>

/*
 * Like rdx_file_write_atomic, but the file is created with exactly mode (the
 * temporary file too, so a private key is never readable by others even for
 * a moment), and an existing file is replaced only when replace is nonzero.
 */
rdx_status rdx_tp_write_file(const char *path, const void *data, size_t len, mode_t mode,
                             int replace, rdx_error *err);

/*
 * Append OpenSSL's error queue (most recent reason) to a message and clear
 * it: sets err to code with "what: reason". Returns code.
 */
rdx_status rdx_tp_ossl_error(rdx_error *err, rdx_status code, const char *what);

/* snprintf into out; RDX_EINVAL naming the path when it does not fit. */
rdx_status rdx_tp_path(char *out, size_t outsz, rdx_error *err, const char *fmt, ...)
    RDX_PRINTF(4, 5);

#endif /* RDX_TRANSPORT_INT_H */

/* ---- PKI store (transport/pki_store.c) ----------------------------------- */

typedef struct sqlite3 sqlite3;

/* A certificate as the CA database records it. */
struct rdx_tp_cert_row {
    char serial[64];
    char institution[65];
    int64_t not_before;
    int64_t not_after;
    int64_t revoked_at; /* 0 when not revoked */
    int reason;
};

/* Open (create when create != 0) DIR/ca.db in WAL mode with synchronous=FULL. */
rdx_status rdx_tp_store_open(const char *path, int create, sqlite3 **out, rdx_error *err);
void rdx_tp_store_close(sqlite3 *db);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
rdx_status rdx_tp_store_exec(sqlite3 *db, const char *sql, const char *path, rdx_error *err);
/* meta key/value table. get returns RDX_ENOTFOUND when absent. */
rdx_status rdx_tp_store_meta_get(sqlite3 *db, const char *k, char *out, size_t outsz,
                                 const char *path, rdx_error *err);
rdx_status rdx_tp_store_meta_set(sqlite3 *db, const char *k, const char *v, const char *path,
                                 rdx_error *err);
/* Serial of an unrevoked certificate of inst valid at now; RDX_ENOTFOUND when none. */
rdx_status rdx_tp_store_find_active(sqlite3 *db, const char *inst, int64_t now, char *serial,
                                    size_t serialsz, const char *path, rdx_error *err);
rdx_status rdx_tp_store_insert(sqlite3 *db, const struct rdx_tp_cert_row *row, const char *name,
                               const char *city, const char *path, rdx_error *err);
/* Look a serial up; RDX_ENOTFOUND when unknown. */
rdx_status rdx_tp_store_get(sqlite3 *db, const char *serial, struct rdx_tp_cert_row *row,
                            const char *path, rdx_error *err);
/* Mark revoked: one serial, or (serial NULL) every unrevoked certificate of inst. */
rdx_status rdx_tp_store_revoke(sqlite3 *db, const char *serial, const char *inst, int64_t when,
                               int reason, size_t *count, const char *path, rdx_error *err);
/* Call fn for every revoked certificate, in serial order; fn returns RDX_OK to go on. */
rdx_status rdx_tp_store_each_revoked(sqlite3 *db,
                                     rdx_status (*fn)(void *u, const struct rdx_tp_cert_row *r),
                                     void *u, const char *path, rdx_error *err);

/* ---- Certificates -------------------------------------------------------- */

typedef struct x509_st X509;

/*
 * The institution ID a certificate names: its one SAN URI that starts with
 * urn:rdx:inst:, checked with rdx_transport_inst_id_check. RDX_EAUTH when
 * there is none, more than one, or it is malformed.
 */
rdx_status rdx_tp_cert_institution(X509 *cert, char *out, size_t outsz, rdx_error *err);

typedef struct x509_store_st X509_STORE;
typedef struct evp_pkey_st EVP_PKEY;

/* ---- Private keys (transport/pki_key.c) ---------------------------------- */

/* A new ECDSA P-256 key. */
rdx_status rdx_tp_key_generate(EVP_PKEY **out, rdx_error *err);
/*
 * Write key as PKCS#8 PEM with mode 0600 (see rdx_tp_write_file for replace).
 * Every buffer that held the key is wiped; OpenSSL's encoders are not used.
 */
rdx_status rdx_tp_key_write(const char *path, EVP_PKEY *key, int replace, rdx_error *err);
/*
 * Load a P-256 PKCS#8 PEM key, refusing a file group or others may read
 * (RDX_EAUTH), and one whose private and public halves do not match.
 */
rdx_status rdx_tp_key_load(const char *path, EVP_PKEY **out, rdx_error *err);
typedef struct asn1_string_st ASN1_TIME;

/*
 * A trust store holding the CA certificate and the CRL, with CRL checking on
 * for every leaf (X509_V_FLAG_CRL_CHECK) and strict X.509 checks.
 */
rdx_status rdx_tp_trust_store(const char *ca_path, const char *crl_path, X509_STORE **out,
                              rdx_error *err);
/* Upper-case hex serial of x. */
rdx_status rdx_tp_cert_serial(X509 *x, char *out, size_t outsz);
/* An ASN1_TIME as Unix seconds (0 when it cannot be read). */
int64_t rdx_tp_asn1_time_unix(const ASN1_TIME *t);
