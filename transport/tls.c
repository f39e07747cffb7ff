/*
 * TLS contexts for nodes. RFC 8446 only (TLS 1.3): section 4.3.2 (the server
 * requests a certificate; a node without one is refused), section 4.2.10 (no
 * early data: 0-RTT is replayable, and a case offer must never be), and no
 * resumption tickets, so that each connection is verified afresh against the
 * CRL in force. The peer's identity is its certificate's SAN URI and nothing
 * the peer says later.
 */
#define _POSIX_C_SOURCE 200809L
#include "transport_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct rdx_tp_verdict *v = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    if (!ok && v != NULL && v->verify_error == X509_V_OK) {
        X509 *leaf = X509_STORE_CTX_get0_cert(x);
        v->verify_error = X509_STORE_CTX_get_error(x);
        if (leaf != NULL) {
            if (rdx_tp_cert_institution(leaf, v->claimed, sizeof v->claimed, NULL) != RDX_OK) {
                v->claimed[0] = '\0';
            }
            if (rdx_tp_cert_serial(leaf, v->serial, sizeof v->serial) != RDX_OK) {
                v->serial[0] = '\0';
            }
        }
    }
    return ok;
}

static rdx_status load_chain(SSL_CTX *ctx, const rdx_transport_config *cfg, rdx_error *err)
{
    EVP_PKEY *key = NULL;
    FILE *fp = fopen(cfg->cert, "r");
    if (fp == NULL) {
        return rdx_error_set(err, RDX_ENOENT, "%s: cannot open the node certificate", cfg->cert);
    }
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    if (x == NULL) {
        return rdx_tp_ossl_error(err, RDX_EPARSE, cfg->cert);
    }
    char inst[65];
    rdx_status st = rdx_tp_cert_institution(x, inst, sizeof inst, err);
    if (st == RDX_OK && strcmp(inst, cfg->id) != 0) {
        st = rdx_error_set(err, RDX_EAUTH, "%s: names institution '%s', but [node] id is '%s'",
                           cfg->cert, inst, cfg->id);
    }
    if (st != RDX_OK) {
        X509_free(x);
        return st;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        X509_free(x);
        return rdx_tp_ossl_error(err, RDX_EPARSE, cfg->cert);
    }
    X509_free(x);
    RDX_TRY(rdx_tp_key_load(cfg->key, &key, err));
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        ERR_clear_error();
        return rdx_error_set(err, RDX_EAUTH, "%s: does not match %s", cfg->key, cfg->cert);
    }
    return RDX_OK;
}

rdx_status rdx_tp_tls_ctx(const rdx_transport_config *cfg, int server, SSL_CTX **out,
                          rdx_error *err)
{
    X509_STORE *store = NULL;
    RDX_TRY(rdx_tp_trust_store(cfg->ca, cfg->crl, &store, err));
    return rdx_tp_tls_ctx_store(cfg, server, store, out, err);
}

rdx_status rdx_tp_tls_ctx_store(const rdx_transport_config *cfg, int server, X509_STORE *store,
                                SSL_CTX **out, rdx_error *err)
{
    rdx_status st;
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        X509_STORE_free(store);
        return rdx_tp_ossl_error(err, RDX_ENOMEM, "TLS context");
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        st = rdx_tp_ossl_error(err, RDX_EINTERNAL, "TLS 1.3");
        goto fail;
    }
    if ((st = load_chain(ctx, cfg, err)) != RDX_OK) {
        goto fail;
    }
    SSL_CTX_set_cert_store(ctx, store); /* the context owns it now */
    store = NULL;
    /* Leaf plus the network CA: nothing longer is legitimate (pathlen 0). */
    SSL_CTX_set_verify_depth(ctx, 2);
    SSL_CTX_set_verify(ctx,
                       SSL_VERIFY_PEER |
                           (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE : 0),
                       verify_cb);
    if (SSL_CTX_set_purpose(ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER) != 1) {
        st = rdx_tp_ossl_error(err, RDX_EINTERNAL, "TLS purpose");
        goto fail;
    }
    /* RFC 8446 section 8: early data is replayable; accept none, offer none. */
    SSL_CTX_set_max_early_data(ctx, 0);
    SSL_CTX_set_recv_max_early_data(ctx, 0);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    *out = ctx;
    return RDX_OK;
fail:
    X509_STORE_free(store);
    SSL_CTX_free(ctx);
    return st;
}

rdx_status rdx_tp_tls_peer(SSL *ssl, char *inst, size_t instsz, char *serial, size_t serialsz,
                           rdx_error *err)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (x == NULL) {
        return rdx_error_set(err, RDX_EAUTH, "no peer certificate");
    }
    if (SSL_get_verify_result(ssl) != X509_V_OK) {
        return rdx_error_set(err, RDX_EAUTH, "peer certificate did not verify");
    }
    RDX_TRY(rdx_tp_cert_institution(x, inst, instsz, err));
    if (serial != NULL && rdx_tp_cert_serial(x, serial, serialsz) != RDX_OK) {
        serial[0] = '\0';
    }
    return RDX_OK;
}

void rdx_tp_tls_reason(const struct rdx_tp_verdict *v, unsigned long e, char *out, size_t outsz)
{
    if (v != NULL && v->verify_error != X509_V_OK) {
        const char *what = X509_verify_cert_error_string(v->verify_error);
        const char *hint = "";
        if (v->verify_error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
            v->verify_error == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
            v->verify_error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
            v->verify_error == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN) {
            hint = " (not issued by this network's CA)";
        }
        snprintf(out, outsz, "%s%s%s%s%s%s", what, hint,
                 v->claimed[0] ? ", claims institution " : "", v->claimed,
                 v->serial[0] ? ", serial " : "", v->serial);
        return;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        snprintf(out, outsz, "no client certificate");
        return;
    }
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(out, outsz, "TLS handshake failed: %s", buf);
        return;
    }
    snprintf(out, outsz, "connection closed during the TLS handshake");
}

X509_CRL *rdx_tp_trust_store_crl(X509_STORE *store)
{
    /* The store is filled once, by rdx_tp_trust_store, and never changed: reading it is safe. */
    STACK_OF(X509_OBJECT) *objs = store != NULL ? X509_STORE_get0_objects(store) : NULL;
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
        if (X509_OBJECT_get_type(o) == X509_LU_CRL) {
            return X509_OBJECT_get0_X509_CRL(o);
        }
    }
    return NULL;
}

X509_CRL *rdx_tp_tls_ctx_crl(SSL_CTX *ctx)
{
    return rdx_tp_trust_store_crl(ctx != NULL ? SSL_CTX_get_cert_store(ctx) : NULL);
}

int rdx_tp_crl_revokes(X509_CRL *crl, X509 *x, char *when, size_t whensz)
{
    X509_REVOKED *rev = NULL;
    snprintf(when, whensz, "?");
    /* 1: listed; 2 would be removeFromCRL (delta CRLs only), which is not a revocation. */
    if (crl == NULL || x == NULL || X509_CRL_get0_by_cert(crl, &rev, x) != 1 || rev == NULL) {
        ERR_clear_error();
        return 0;
    }
    rdx_tp_time_text(rdx_tp_asn1_time_unix(X509_REVOKED_get0_revocationDate(rev)), when, whensz);
    return 1;
}

int rdx_tp_crl_older(X509_CRL *crl, X509_CRL *cur, char *why, size_t whysz)
{
    if (crl == NULL || cur == NULL) {
        return 0;
    }
    /*
     * RFC 5280 section 5.2.3: the CRL number increases with every CRL the CA
     * issues, so a lower one is an earlier CRL, which may lack revocations
     * made since. Without a number on both, lastUpdate orders them. The same
     * order as node.db's mark of the newest CRL (crl_mark.c).
     */
    struct rdx_tp_crl_mark a, b;
    rdx_tp_crl_mark_of(crl, &a);
    rdx_tp_crl_mark_of(cur, &b);
    return rdx_tp_crl_mark_older(&a, &b, "the CRL in force", why, whysz);
}

void rdx_tp_ssl_buffer(SSL *ssl, int writing, int size)
{
    BIO *sock = writing ? SSL_get_wbio(ssl) : SSL_get_rbio(ssl);
    BIO *buf = BIO_new(BIO_f_buffer());
    if (sock == NULL || buf == NULL ||
        (writing ? BIO_set_write_buffer_size(buf, size) : BIO_set_read_buffer_size(buf, size)) !=
            1 ||
        BIO_up_ref(sock) != 1) {
        BIO_free(buf);
        return;
    }
    /* The chain holds the new reference; set0 drops the old one (the other direction keeps its
     * own). */
    BIO_push(buf, sock);
    if (writing) {
        SSL_set0_wbio(ssl, buf);
    } else {
        SSL_set0_rbio(ssl, buf);
    }
}
