/*
 * The network certificate authority: creation, institution certificates,
 * revocation and CRLs, with OpenSSL 3's EVP and X509 APIs (nothing
 * deprecated). Profiles follow RFC 5280: section 4.2.1.9 (basicConstraints,
 * critical, CA:TRUE with pathLenConstraint 0 on the CA and CA:FALSE on
 * institutions), 4.2.1.3 (keyUsage, critical), 4.2.1.12 (extendedKeyUsage
 * serverAuth and clientAuth, since every node both serves and connects),
 * 4.2.1.1/4.2.1.2 (authority and subject key identifiers, so that chains build
 * after the CA is re-keyed), 4.2.1.6 (the institution ID as a SAN URI), 4.1.2.2
 * (serials positive, at most 20 octets: ours are 128 random bits) and 5
 * (v2 CRLs with a CRL number and authority key identifier).
 */
#define _POSIX_C_SOURCE 200809L
#include "rdx/transport.h"
#include "transport_int.h"
#include "transport_limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct rdx_transport_ca {
    char dir[4096];
    char db_path[4200];
    char network[256];
    EVP_PKEY *key;
    X509 *cert;
    sqlite3 *db;
};

/* ---- Field checks -------------------------------------------------------- */

rdx_status rdx_transport_inst_id_check(const char *s, const char *what, rdx_error *err)
{
    if (s == NULL || s[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "%s: empty", what);
    }
    size_t n = strlen(s);
    if (n > RDX_TRANSPORT_INST_ID_MAX) {
        return rdx_error_set(err, RDX_EINVAL, "%s: longer than %d characters", what,
                             RDX_TRANSPORT_INST_ID_MAX);
    }
    if (s[0] == '.' || s[0] == '-') {
        return rdx_error_set(err, RDX_EINVAL, "%s '%s': must not start with '%c'", what, s, s[0]);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) {
            return rdx_error_set(err, RDX_EINVAL,
                                 "%s: byte %zu (0x%02x) is not one of A-Z a-z 0-9 . _ -", what,
                                 i + 1, c);
        }
    }
    return RDX_OK;
}

/*
 * Check that s is valid UTF-8 (RFC 3629: no overlong forms, no surrogates, at
 * most U+10FFFF) without control characters, of 1..max characters.
 */
static rdx_status utf8_check(const char *s, size_t max, const char *what, rdx_error *err)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;
    if (s == NULL || s[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "%s: empty", what);
    }
    for (size_t i = 0; p[i] != '\0'; chars++) {
        unsigned c = p[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return rdx_error_set(err, RDX_EINVAL, "%s: control character at byte %zu", what,
                                     i + 1);
            }
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return rdx_error_set(err, RDX_EINVAL, "%s: invalid UTF-8 at byte %zu", what, i + 1);
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return rdx_error_set(err, RDX_EINVAL, "%s: invalid UTF-8 at byte %zu", what,
                                     i + k + 1);
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0)) {
            return rdx_error_set(err, RDX_EINVAL, "%s: invalid character at byte %zu", what, i + 1);
        }
        i += len;
    }
    if (chars > max) {
        return rdx_error_set(err, RDX_EINVAL, "%s: %zu characters, more than the %zu allowed", what,
                             chars, max);
    }
    return RDX_OK;
}

static rdx_status days_check(int days, int dflt, int max, const char *what, int *out,
                             rdx_error *err)
{
    if (days == 0) {
        *out = dflt;
        return RDX_OK;
    }
    if (days < 1 || days > max) {
        return rdx_error_set(err, RDX_EINVAL, "%s: %d days is outside 1..%d", what, days, max);
    }
    *out = days;
    return RDX_OK;
}

/* ---- OpenSSL building blocks --------------------------------------------- */

static rdx_status write_pem_x509(const char *path, X509 *x, X509_CRL *crl, int replace,
                                 rdx_error *err)
{
    rdx_status st;
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    int ok = b != NULL && (x != NULL ? PEM_write_bio_X509(b, x) : PEM_write_bio_X509_CRL(b, crl));
    long n = ok ? BIO_get_mem_data(b, &data) : 0;
    if (!ok || n <= 0) {
        st = rdx_tp_ossl_error(err, RDX_ENOMEM, path);
    } else {
        st = rdx_tp_write_file(path, data, (size_t)n, 0644, replace, err);
    }
    BIO_free(b);
    return st;
}

static rdx_status add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, rdx_error *err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL) {
        return rdx_tp_ossl_error(err, RDX_EINTERNAL, OBJ_nid2sn(nid));
    }
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok) {
        return rdx_tp_ossl_error(err, RDX_ENOMEM, OBJ_nid2sn(nid));
    }
    return RDX_OK;
}

static rdx_status name_add(X509_NAME *nm, const char *field, const char *value, int type,
                           rdx_error *err)
{
    if (X509_NAME_add_entry_by_txt(nm, field, type, (const unsigned char *)value, -1, -1, 0) != 1) {
        return rdx_tp_ossl_error(err, RDX_EINVAL, field);
    }
    return RDX_OK;
}

/* A random positive 128-bit serial; *hex gets its upper-case hex form. */
static rdx_status random_serial(X509 *x, char *hex, size_t hexsz, rdx_error *err)
{
    unsigned char raw[16];
    rdx_status st = RDX_OK;
    BIGNUM *bn = NULL;
    char *h = NULL;
    do {
        if (RAND_bytes(raw, sizeof raw) != 1) {
            return rdx_tp_ossl_error(err, RDX_EINTERNAL, "random serial");
        }
        /* Keep the top byte nonzero so every serial is exactly 16 octets of entropy. */
    } while (raw[0] == 0);
    bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        (h = BN_bn2hex(bn)) == NULL) {
        st = rdx_tp_ossl_error(err, RDX_ENOMEM, "random serial");
        goto out;
    }
    snprintf(hex, hexsz, "%s", h);
out:
    OPENSSL_free(h);
    BN_free(bn);
    return st;
}

/* ---- Creating and opening a CA ------------------------------------------- */

struct ca_paths {
    char key[4200], cert[4200], db[4200], crl[4200], certs[4200], priv[4200];
};

static rdx_status ca_paths(const char *dir, struct ca_paths *p, rdx_error *err)
{
    RDX_TRY(rdx_tp_path(p->key, sizeof p->key, err, "%s/ca.key", dir));
    RDX_TRY(rdx_tp_path(p->cert, sizeof p->cert, err, "%s/ca.crt", dir));
    RDX_TRY(rdx_tp_path(p->db, sizeof p->db, err, "%s/ca.db", dir));
    RDX_TRY(rdx_tp_path(p->crl, sizeof p->crl, err, "%s/crl.pem", dir));
    RDX_TRY(rdx_tp_path(p->certs, sizeof p->certs, err, "%s/certs", dir));
    RDX_TRY(rdx_tp_path(p->priv, sizeof p->priv, err, "%s/private", dir));
    return RDX_OK;
}

static rdx_status mkdir_mode(const char *path, mode_t mode, rdx_error *err)
{
    struct stat sb;
    if (mkdir(path, mode) == 0) {
        return chmod(path, mode) == 0
                   ? RDX_OK
                   : rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(errno));
    }
    if (errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        return RDX_OK;
    }
    return rdx_error_set(err, errno == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", path,
                         errno == EEXIST ? "exists and is not a directory" : strerror(errno));
}

static rdx_status build_ca_cert(EVP_PKEY *key, const char *network, int days, X509 **out,
                                rdx_error *err)
{
    rdx_status st = RDX_OK;
    X509 *x = X509_new();
    char serial[64];
    char cn[256];
    X509V3_CTX ctx;
    time_t now = time(NULL);
    if (x == NULL) {
        return rdx_tp_ossl_error(err, RDX_ENOMEM, "CA certificate");
    }
    snprintf(cn, sizeof cn, "%s Root CA", network);
    X509_NAME *nm = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        (st = random_serial(x, serial, sizeof serial, err)) != RDX_OK ||
        ASN1_TIME_set(X509_getm_notBefore(x), now) == NULL ||
        ASN1_TIME_adj(X509_getm_notAfter(x), now, days, 0) == NULL ||
        X509_set_pubkey(x, key) != 1) {
        st = st != RDX_OK ? st : rdx_tp_ossl_error(err, RDX_ENOMEM, "CA certificate");
        goto out;
    }
    if ((st = name_add(nm, "C", "CN", MBSTRING_ASC, err)) != RDX_OK ||
        (st = name_add(nm, "O", network, MBSTRING_UTF8, err)) != RDX_OK ||
        (st = name_add(nm, "CN", cn, MBSTRING_UTF8, err)) != RDX_OK) {
        goto out;
    }
    if (X509_set_issuer_name(x, nm) != 1) {
        st = rdx_tp_ossl_error(err, RDX_ENOMEM, "CA certificate");
        goto out;
    }
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if ((st = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err)) !=
            RDX_OK ||
        (st = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err)) != RDX_OK) {
        goto out;
    }
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        st = rdx_tp_ossl_error(err, RDX_EINTERNAL, "signing the CA certificate");
        goto out;
    }
    *out = x;
    x = NULL;
out:
    X509_free(x);
    return st;
}

rdx_status rdx_transport_ca_create(const rdx_transport_ca_cfg *cfg, rdx_error *err)
{
    rdx_status st;
    struct ca_paths p;
    struct stat sb;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    rdx_transport_ca *ca = NULL;
    int days = 0;

    if (cfg == NULL || cfg->dir == NULL || cfg->dir[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "no CA directory given");
    }
    RDX_TRY(utf8_check(cfg->network, RDX_TRANSPORT_NETWORK_MAX, "network name", err));
    RDX_TRY(days_check(cfg->days, RDX_TRANSPORT_CA_DAYS_DEFAULT, RDX_TRANSPORT_CA_DAYS_MAX,
                       "--days", &days, err));
    RDX_TRY(ca_paths(cfg->dir, &p, err));
    RDX_TRY(mkdir_mode(cfg->dir, 0700, err));
    if (lstat(p.key, &sb) == 0 || lstat(p.db, &sb) == 0) {
        return rdx_error_set(err, RDX_EEXIST, "%s: already holds a CA (%s exists)", cfg->dir,
                             lstat(p.key, &sb) == 0 ? p.key : p.db);
    }
    RDX_TRY(mkdir_mode(p.certs, 0755, err));
    RDX_TRY(mkdir_mode(p.priv, 0700, err));

    if ((st = rdx_tp_key_generate(&key, err)) != RDX_OK ||
        (st = build_ca_cert(key, cfg->network, days, &cert, err)) != RDX_OK) {
        goto out;
    }
    /* The key goes first and without replacing: two racing inits cannot both win. */
    if ((st = rdx_tp_key_write(p.key, key, 0, err)) != RDX_OK) {
        goto out;
    }
    if ((st = write_pem_x509(p.cert, cert, NULL, 1, err)) != RDX_OK) {
        goto out;
    }
    ca = calloc(1, sizeof *ca);
    if (ca == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cfg->dir);
        goto out;
    }
    snprintf(ca->dir, sizeof ca->dir, "%s", cfg->dir);
    snprintf(ca->db_path, sizeof ca->db_path, "%s", p.db);
    snprintf(ca->network, sizeof ca->network, "%s", cfg->network);
    ca->key = key;
    ca->cert = cert;
    key = NULL;
    cert = NULL;
    if ((st = rdx_tp_store_open(p.db, 1, &ca->db, err)) != RDX_OK ||
        (st = rdx_tp_store_meta_set(ca->db, "network", cfg->network, p.db, err)) != RDX_OK ||
        (st = rdx_tp_store_meta_set(ca->db, "crl_number", "0", p.db, err)) != RDX_OK) {
        goto out;
    }
    st = rdx_transport_ca_crl_publish(ca, 0, NULL, NULL, err);
out:
    if (st != RDX_OK && ca == NULL && key != NULL) {
        /* Nothing was recorded: leave no key behind that no database knows about. */
        unlink(p.key);
        unlink(p.cert);
    }
    rdx_transport_ca_free(ca);
    EVP_PKEY_free(key);
    X509_free(cert);
    return st;
}

static rdx_status read_pem(const char *path, rdx_buf *b, rdx_error *err)
{
    rdx_buf_init(b, RDX_TRANSPORT_PEM_MAX);
    rdx_status st = rdx_file_read(path, b, err);
    if (st == RDX_OK && b->len == 0) {
        st = rdx_error_set(err, RDX_EPARSE, "%s: empty file", path);
    }
    return st;
}

static rdx_status load_cert(const char *path, X509 **out, rdx_error *err)
{
    rdx_buf b;
    RDX_TRY(read_pem(path, &b, err));
    BIO *bio = BIO_new_mem_buf(b.data, (int)b.len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    rdx_buf_free(&b);
    if (x == NULL) {
        return rdx_tp_ossl_error(err, RDX_EPARSE, path);
    }
    *out = x;
    return RDX_OK;
}

rdx_status rdx_transport_ca_open(const char *dir, rdx_transport_ca **out, rdx_error *err)
{
    rdx_status st;
    struct ca_paths p;
    struct stat sb;
    if (dir == NULL || dir[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "no CA directory given");
    }
    RDX_TRY(ca_paths(dir, &p, err));
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return rdx_error_set(err, RDX_ENOENT, "%s: %s", dir,
                             stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
    }
    if (stat(p.key, &sb) != 0 && errno == ENOENT) {
        return rdx_error_set(err, RDX_ENOENT, "%s: no CA here (run 'rdx pki init' first)", dir);
    }
    rdx_transport_ca *ca = calloc(1, sizeof *ca);
    if (ca == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", dir);
    }
    snprintf(ca->dir, sizeof ca->dir, "%s", dir);
    snprintf(ca->db_path, sizeof ca->db_path, "%s", p.db);
    if ((st = rdx_tp_key_load(p.key, &ca->key, err)) != RDX_OK ||
        (st = load_cert(p.cert, &ca->cert, err)) != RDX_OK) {
        goto out;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        st = rdx_error_set(err, RDX_EAUTH, "%s: does not match the key in %s", p.cert, p.key);
        goto out;
    }
    if ((st = rdx_tp_store_open(p.db, 0, &ca->db, err)) != RDX_OK ||
        (st = rdx_tp_store_meta_get(ca->db, "network", ca->network, sizeof ca->network, p.db,
                                    err)) != RDX_OK) {
        goto out;
    }
    *out = ca;
    ca = NULL;
out:
    rdx_transport_ca_free(ca);
    return st;
}

void rdx_transport_ca_free(rdx_transport_ca *ca)
{
    if (ca == NULL) {
        return;
    }
    /* EVP_PKEY_free clears the private scalar (BN_clear_free) before releasing it. */
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    rdx_tp_store_close(ca->db);
    OPENSSL_cleanse(ca, sizeof *ca);
    free(ca);
}

const char *rdx_transport_ca_network(const rdx_transport_ca *ca)
{
    return ca->network;
}

/* ---- Issuing ------------------------------------------------------------- */

static rdx_status build_leaf(rdx_transport_ca *ca, EVP_PKEY *key,
                             const rdx_transport_issue_cfg *cfg, int64_t nb, int days, X509 **out,
                             char *serial, size_t serialsz, rdx_error *err)
{
    rdx_status st = RDX_OK;
    X509 *x = X509_new();
    X509V3_CTX ctx;
    char san[128];
    if (x == NULL) {
        return rdx_tp_ossl_error(err, RDX_ENOMEM, "certificate");
    }
    X509_NAME *nm = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        (st = random_serial(x, serial, serialsz, err)) != RDX_OK ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
        ASN1_TIME_adj(X509_getm_notAfter(x), (time_t)nb, days, 0) == NULL ||
        X509_set_pubkey(x, key) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1) {
        st = st != RDX_OK ? st : rdx_tp_ossl_error(err, RDX_ENOMEM, "certificate");
        goto out;
    }
    if ((st = name_add(nm, "C", "CN", MBSTRING_ASC, err)) != RDX_OK ||
        (st = name_add(nm, "L", cfg->city, MBSTRING_UTF8, err)) != RDX_OK ||
        (st = name_add(nm, "O", cfg->name, MBSTRING_UTF8, err)) != RDX_OK ||
        (st = name_add(nm, "CN", cfg->institution, MBSTRING_ASC, err)) != RDX_OK) {
        goto out;
    }
    /* The ID was checked to be [A-Za-z0-9._-]: it cannot inject into the value syntax. */
    snprintf(san, sizeof san, "URI:%s%s", RDX_TRANSPORT_INST_URI_PREFIX, cfg->institution);
    X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
    if ((st = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err)) != RDX_OK ||
        (st = add_ext(x, &ctx, NID_subject_alt_name, san, err)) != RDX_OK) {
        goto out;
    }
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0) {
        st = rdx_tp_ossl_error(err, RDX_EINTERNAL, "signing the certificate");
        goto out;
    }
    *out = x;
    x = NULL;
out:
    X509_free(x);
    return st;
}

rdx_status rdx_transport_ca_issue(rdx_transport_ca *ca, const rdx_transport_issue_cfg *cfg,
                                  rdx_transport_issued *out, rdx_error *err)
{
    rdx_status st;
    int days = 0;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    struct rdx_tp_cert_row row;
    char active[64];
    char cert_path[4096], key_path[4096];
    int in_tx = 0, recorded = 0;

    if (ca == NULL || cfg == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no CA or request given");
    }
    RDX_TRY(rdx_transport_inst_id_check(cfg->institution, "institution", err));
    RDX_TRY(utf8_check(cfg->name, RDX_TRANSPORT_NAME_MAX, "name", err));
    RDX_TRY(utf8_check(cfg->city, RDX_TRANSPORT_CITY_MAX, "city", err));
    RDX_TRY(days_check(cfg->days, RDX_TRANSPORT_CERT_DAYS_DEFAULT, RDX_TRANSPORT_CERT_DAYS_MAX,
                       "--days", &days, err));
    RDX_TRY(rdx_tp_path(cert_path, sizeof cert_path, err, "%s/certs/%s.crt", ca->dir,
                        cfg->institution));
    RDX_TRY(rdx_tp_path(key_path, sizeof key_path, err, "%s/private/%s.key", ca->dir,
                        cfg->institution));
    int64_t now = (int64_t)time(NULL);
    int64_t nb = cfg->not_before_unix != 0 ? cfg->not_before_unix : now;

    memset(&row, 0, sizeof row);
    RDX_TRY(rdx_tp_store_exec(ca->db, "BEGIN IMMEDIATE", ca->db_path, err));
    in_tx = 1;
    st = rdx_tp_store_find_active(ca->db, cfg->institution, now, active, sizeof active, ca->db_path,
                                  err);
    if (st == RDX_OK) {
        st = rdx_error_set(err, RDX_EEXIST,
                           "%s: institution '%s' already holds a valid certificate (serial %s); "
                           "revoke it first",
                           ca->db_path, cfg->institution, active);
        goto out;
    } else if (st != RDX_ENOTFOUND) {
        goto out;
    }
    if ((st = rdx_tp_key_generate(&key, err)) != RDX_OK ||
        (st = build_leaf(ca, key, cfg, nb, days, &x, row.serial, sizeof row.serial, err)) !=
            RDX_OK) {
        goto out;
    }
    snprintf(row.institution, sizeof row.institution, "%s", cfg->institution);
    row.not_before = nb;
    row.not_after = nb + (int64_t)days * 86400;
    /*
     * Record before writing: a certificate the database does not know could
     * never be revoked, whereas a recorded one whose files failed to appear is
     * merely unused (and is revoked below).
     */
    if ((st = rdx_tp_store_insert(ca->db, &row, cfg->name, cfg->city, ca->db_path, err)) !=
            RDX_OK ||
        (st = rdx_tp_store_exec(ca->db, "COMMIT", ca->db_path, err)) != RDX_OK) {
        goto out;
    }
    in_tx = 0;
    recorded = 1;
    if ((st = rdx_tp_key_write(key_path, key, 1, err)) != RDX_OK ||
        (st = write_pem_x509(cert_path, x, NULL, 1, err)) != RDX_OK) {
        goto out;
    }
    if (out != NULL) {
        memset(out, 0, sizeof *out);
        snprintf(out->serial, sizeof out->serial, "%s", row.serial);
        snprintf(out->cert_path, sizeof out->cert_path, "%s", cert_path);
        snprintf(out->key_path, sizeof out->key_path, "%s", key_path);
        out->not_before_unix = row.not_before;
        out->not_after_unix = row.not_after;
    }
out:
    if (in_tx) {
        (void)rdx_tp_store_exec(ca->db, "ROLLBACK", ca->db_path, NULL);
    }
    if (st != RDX_OK && recorded) {
        (void)rdx_tp_store_revoke(ca->db, row.serial, NULL, now, RDX_TRANSPORT_REVOKE_CESSATION,
                                  NULL, ca->db_path, NULL);
    }
    EVP_PKEY_free(key);
    X509_free(x);
    return st;
}

/* ---- Revocation and CRLs ------------------------------------------------- */

static const struct {
    const char *name;
    rdx_transport_revoke_reason code;
} reasons[] = {
    {"unspecified", RDX_TRANSPORT_REVOKE_UNSPECIFIED},
    {"keyCompromise", RDX_TRANSPORT_REVOKE_KEY_COMPROMISE},
    {"affiliationChanged", RDX_TRANSPORT_REVOKE_AFFILIATION_CHANGED},
    {"superseded", RDX_TRANSPORT_REVOKE_SUPERSEDED},
    {"cessationOfOperation", RDX_TRANSPORT_REVOKE_CESSATION},
};

rdx_status rdx_transport_revoke_reason_parse(const char *s, rdx_transport_revoke_reason *out)
{
    for (size_t i = 0; s != NULL && i < sizeof reasons / sizeof reasons[0]; i++) {
        if (strcmp(s, reasons[i].name) == 0) {
            *out = reasons[i].code;
            return RDX_OK;
        }
    }
    return RDX_EINVAL;
}

/* Canonical upper-case hex of a serial typed by a person ("0a:1b:..." or "A1B..."). */
static rdx_status serial_canon(const char *in, char *out, size_t outsz, rdx_error *err)
{
    char digits[128];
    size_t n = 0;
    BIGNUM *bn = NULL;
    char *h = NULL;
    rdx_status st = RDX_OK;
    for (const char *p = in; *p != '\0'; p++) {
        if (*p == ':') {
            continue;
        }
        int hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F');
        if (!hex || n + 1 >= sizeof digits || n >= 40) {
            return rdx_error_set(err, RDX_EINVAL,
                                 "serial '%.80s': not a hex serial of at most "
                                 "20 octets",
                                 in);
        }
        digits[n++] = *p;
    }
    digits[n] = '\0';
    if (n == 0) {
        return rdx_error_set(err, RDX_EINVAL, "serial: empty");
    }
    if (BN_hex2bn(&bn, digits) != (int)n || (h = BN_bn2hex(bn)) == NULL) {
        st = rdx_tp_ossl_error(err, RDX_EINVAL, "serial");
        goto out;
    }
    snprintf(out, outsz, "%s", h);
out:
    OPENSSL_free(h);
    BN_free(bn);
    return st;
}

rdx_status rdx_transport_ca_revoke(rdx_transport_ca *ca, const char *institution,
                                   const char *serial, rdx_transport_revoke_reason reason,
                                   int crl_days, size_t *count, rdx_error *err)
{
    char canon[64];
    size_t n = 0;
    struct rdx_tp_cert_row row;
    rdx_status st;
    int days = 0;
    if (ca == NULL || (institution == NULL) == (serial == NULL)) {
        return rdx_error_set(err, RDX_EINVAL, "give exactly one of an institution or a serial");
    }
    RDX_TRY(days_check(crl_days, RDX_TRANSPORT_CRL_DAYS_DEFAULT, RDX_TRANSPORT_CRL_DAYS_MAX,
                       "--days", &days, err));
    if (serial != NULL) {
        RDX_TRY(serial_canon(serial, canon, sizeof canon, err));
    } else {
        RDX_TRY(rdx_transport_inst_id_check(institution, "institution", err));
    }
    RDX_TRY(rdx_tp_store_exec(ca->db, "BEGIN IMMEDIATE", ca->db_path, err));
    if (serial != NULL) {
        st = rdx_tp_store_get(ca->db, canon, &row, ca->db_path, err);
        if (st == RDX_OK && row.revoked_at != 0) {
            st = rdx_error_set(err, RDX_ESTATE, "%s: serial %s is already revoked", ca->db_path,
                               canon);
        }
        if (st != RDX_OK) {
            goto fail;
        }
    }
    st = rdx_tp_store_revoke(ca->db, serial != NULL ? canon : NULL, institution,
                             (int64_t)time(NULL), (int)reason, &n, ca->db_path, err);
    if (st == RDX_OK && n == 0) {
        st = rdx_error_set(err, RDX_ENOTFOUND,
                           "%s: institution '%s' holds no unrevoked "
                           "certificate",
                           ca->db_path, institution);
    }
    if (st != RDX_OK || (st = rdx_tp_store_exec(ca->db, "COMMIT", ca->db_path, err)) != RDX_OK) {
        goto fail;
    }
    if (count != NULL) {
        *count = n;
    }
    st = rdx_transport_ca_crl_publish(ca, days, NULL, NULL, err);
    if (st != RDX_OK) {
        rdx_error_prefix(err, "revoked in the CA database, but the CRL was not published "
                              "(run 'rdx pki crl'): ");
    }
    return st;
fail:
    (void)rdx_tp_store_exec(ca->db, "ROLLBACK", ca->db_path, NULL);
    return st;
}

struct crl_ctx {
    X509_CRL *crl;
    size_t n;
    rdx_error *err;
};

static rdx_status crl_add(void *u, const struct rdx_tp_cert_row *r)
{
    struct crl_ctx *c = u;
    rdx_status st = RDX_OK;
    BIGNUM *bn = NULL;
    ASN1_INTEGER *sn = NULL;
    ASN1_TIME *when = NULL;
    ASN1_ENUMERATED *why = NULL;
    X509_REVOKED *rev = X509_REVOKED_new();
    if (rev == NULL || BN_hex2bn(&bn, r->serial) == 0 ||
        (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
        (when = ASN1_TIME_set(NULL, (time_t)r->revoked_at)) == NULL ||
        X509_REVOKED_set_serialNumber(rev, sn) != 1 ||
        X509_REVOKED_set_revocationDate(rev, when) != 1) {
        st = rdx_tp_ossl_error(c->err, RDX_ENOMEM, "CRL entry");
        goto out;
    }
    /* RFC 5280 section 5.3.1: reasonCode unspecified SHOULD be absent rather than present. */
    if (r->reason != RDX_TRANSPORT_REVOKE_UNSPECIFIED) {
        why = ASN1_ENUMERATED_new();
        if (why == NULL || ASN1_ENUMERATED_set(why, r->reason) != 1 ||
            X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, why, 0, 0) != 1) {
            st = rdx_tp_ossl_error(c->err, RDX_ENOMEM, "CRL entry reason");
            goto out;
        }
    }
    if (X509_CRL_add0_revoked(c->crl, rev) != 1) {
        st = rdx_tp_ossl_error(c->err, RDX_ENOMEM, "CRL entry");
        goto out;
    }
    rev = NULL;
    c->n++;
out:
    X509_REVOKED_free(rev);
    ASN1_ENUMERATED_free(why);
    ASN1_TIME_free(when);
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    return st;
}

rdx_status rdx_transport_ca_crl_publish(rdx_transport_ca *ca, int days, int64_t *number,
                                        size_t *revoked, rdx_error *err)
{
    int d = 0;
    RDX_TRY(days_check(days, RDX_TRANSPORT_CRL_DAYS_DEFAULT, RDX_TRANSPORT_CRL_DAYS_MAX, "--days",
                       &d, err));
    return rdx_transport_ca_crl_publish_v2(ca, (int64_t)d * 86400, number, revoked, err);
}

rdx_status rdx_transport_ca_crl_publish_v2(rdx_transport_ca *ca, int64_t valid_s, int64_t *number,
                                           size_t *revoked, rdx_error *err)
{
    rdx_status st;
    char numtxt[32], crl_path[4200];
    int64_t num = 0;
    X509_CRL *crl = NULL;
    ASN1_TIME *t0 = NULL, *t1 = NULL;
    ASN1_INTEGER *crlnum = NULL;
    X509_EXTENSION *aki = NULL;
    X509V3_CTX ctx;
    struct crl_ctx c = {NULL, 0, err};

    if (ca == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no CA given");
    }
    if (valid_s == 0) {
        valid_s = (int64_t)RDX_TRANSPORT_CRL_DAYS_DEFAULT * 86400;
    }
    if (valid_s < 1 || valid_s > (int64_t)RDX_TRANSPORT_CRL_DAYS_MAX * 86400) {
        return rdx_error_set(err, RDX_EINVAL, "CRL validity: %lld s is outside 1..%lld s (%d days)",
                             (long long)valid_s, (long long)RDX_TRANSPORT_CRL_DAYS_MAX * 86400,
                             RDX_TRANSPORT_CRL_DAYS_MAX);
    }
    RDX_TRY(rdx_tp_path(crl_path, sizeof crl_path, err, "%s/crl.pem", ca->dir));
    RDX_TRY(rdx_tp_store_exec(ca->db, "BEGIN IMMEDIATE", ca->db_path, err));
    if ((st = rdx_tp_store_meta_get(ca->db, "crl_number", numtxt, sizeof numtxt, ca->db_path,
                                    err)) != RDX_OK) {
        goto out;
    }
    if (rdx_parse_i64(numtxt, strlen(numtxt), 0, INT64_MAX - 1, &num) != RDX_OK) {
        st =
            rdx_error_set(err, RDX_EDB, "%s: crl_number '%s' is not a number", ca->db_path, numtxt);
        goto out;
    }
    num++;
    snprintf(numtxt, sizeof numtxt, "%lld", (long long)num);

    time_t now = time(NULL);
    crl = X509_CRL_new();
    c.crl = crl;
    if (crl == NULL || X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) != 1 ||
        (t0 = ASN1_TIME_set(NULL, now - RDX_TRANSPORT_CRL_BACKDATE_S)) == NULL ||
        (t1 = ASN1_TIME_adj(NULL, now, 0, (long)valid_s)) == NULL ||
        X509_CRL_set1_lastUpdate(crl, t0) != 1 || X509_CRL_set1_nextUpdate(crl, t1) != 1) {
        st = rdx_tp_ossl_error(err, RDX_ENOMEM, crl_path);
        goto out;
    }
    if ((st = rdx_tp_store_each_revoked(ca->db, crl_add, &c, ca->db_path, err)) != RDX_OK) {
        goto out;
    }
    crlnum = ASN1_INTEGER_new();
    X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, crl, 0);
    if (crlnum == NULL || ASN1_INTEGER_set_int64(crlnum, num) != 1 ||
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, crlnum, 0, 0) != 1 ||
        (aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always")) ==
            NULL ||
        X509_CRL_add_ext(crl, aki, -1) != 1 || X509_CRL_sort(crl) != 1 ||
        X509_CRL_sign(crl, ca->key, EVP_sha256()) <= 0) {
        st = rdx_tp_ossl_error(err, RDX_EINTERNAL, crl_path);
        goto out;
    }
    if ((st = rdx_tp_store_meta_set(ca->db, "crl_number", numtxt, ca->db_path, err)) != RDX_OK ||
        (st = write_pem_x509(crl_path, NULL, crl, 1, err)) != RDX_OK) {
        goto out;
    }
    st = rdx_tp_store_exec(ca->db, "COMMIT", ca->db_path, err);
out:
    if (st != RDX_OK) {
        (void)rdx_tp_store_exec(ca->db, "ROLLBACK", ca->db_path, NULL);
    } else {
        if (number != NULL) {
            *number = num;
        }
        if (revoked != NULL) {
            *revoked = c.n;
        }
    }
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(crlnum);
    ASN1_TIME_free(t0);
    ASN1_TIME_free(t1);
    X509_CRL_free(crl);
    return st;
}

/* ---- Reading identities back --------------------------------------------- */

rdx_status rdx_tp_cert_institution(X509 *cert, char *out, size_t outsz, rdx_error *err)
{
    rdx_status st = RDX_OK;
    int found = 0;
    const size_t plen = strlen(RDX_TRANSPORT_INST_URI_PREFIX);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) {
        return rdx_error_set(err, RDX_EAUTH, "certificate has no subjectAltName");
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI) {
            continue;
        }
        const ASN1_IA5STRING *u = gn->d.uniformResourceIdentifier;
        const unsigned char *d = ASN1_STRING_get0_data(u);
        int n = ASN1_STRING_length(u);
        if (n < 0 || (size_t)n <= plen || memcmp(d, RDX_TRANSPORT_INST_URI_PREFIX, plen) != 0) {
            continue;
        }
        if (found) {
            st = rdx_error_set(err, RDX_EAUTH, "certificate names more than one institution");
            goto out;
        }
        size_t idlen = (size_t)n - plen;
        /* An embedded NUL or an over-long ID is malformed, never truncated. */
        if (idlen >= outsz || memchr(d + plen, '\0', idlen) != NULL) {
            st = rdx_error_set(err, RDX_EAUTH, "certificate's institution URI is malformed");
            goto out;
        }
        memcpy(out, d + plen, idlen);
        out[idlen] = '\0';
        found = 1;
    }
    if (!found) {
        st = rdx_error_set(err, RDX_EAUTH, "certificate has no %s URI",
                           RDX_TRANSPORT_INST_URI_PREFIX);
        goto out;
    }
    st = rdx_transport_inst_id_check(out, "certificate's institution", err);
    if (st != RDX_OK) {
        st = RDX_EAUTH;
        if (err != NULL) {
            err->code = RDX_EAUTH;
        }
    }
out:
    GENERAL_NAMES_free(names);
    return st;
}

static rdx_status load_crl(const char *path, X509_CRL **out, rdx_error *err)
{
    rdx_buf b;
    RDX_TRY(read_pem(path, &b, err));
    BIO *bio = BIO_new_mem_buf(b.data, (int)b.len);
    X509_CRL *c = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    rdx_buf_free(&b);
    if (c == NULL) {
        char what[4200];
        snprintf(what, sizeof what, "%.4000s: not a CRL in PEM form, or cut short", path);
        return rdx_tp_ossl_error(err, RDX_EPARSE, what);
    }
    *out = c;
    return RDX_OK;
}

rdx_status rdx_tp_trust_store(const char *ca_path, const char *crl_path, X509_STORE **out,
                              rdx_error *err)
{
    X509 *ca = NULL;
    X509_CRL *crl = NULL;
    rdx_status st;
    X509_STORE *store = NULL;
    if ((st = load_cert(ca_path, &ca, err)) != RDX_OK ||
        (st = load_crl(crl_path, &crl, err)) != RDX_OK) {
        goto out;
    }
    /*
     * A CRL that is not the network CA's (another CA's, or altered since it
     * was signed) is refused here, at load, so that a node keeps the CRL it
     * has (RFC 5280 section 6.3.3 (f), (g): the CRL issuer's name and
     * signature). OpenSSL would only fail each handshake with it later.
     */
    EVP_PKEY *capub = X509_get0_pubkey(ca);
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0) {
        st = rdx_error_set(err, RDX_EAUTH, "%s: not issued by the network CA in %s", crl_path,
                           ca_path);
        goto out;
    }
    if (capub == NULL || X509_CRL_verify(crl, capub) != 1) {
        ERR_clear_error();
        st = rdx_error_set(err, RDX_EAUTH, "%s: its signature does not verify with the CA in %s",
                           crl_path, ca_path);
        goto out;
    }
    store = X509_STORE_new();
    if (store == NULL || X509_STORE_add_cert(store, ca) != 1 ||
        X509_STORE_add_crl(store, crl) != 1 ||
        /* Every leaf must be checked against the CRL; a missing CRL fails closed. */
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_X509_STRICT) != 1) {
        st = rdx_tp_ossl_error(err, RDX_ENOMEM, ca_path);
        goto out;
    }
    *out = store;
    store = NULL;
out:
    X509_STORE_free(store);
    X509_free(ca);
    X509_CRL_free(crl);
    return st;
}

rdx_status rdx_tp_cert_serial(X509 *x, char *out, size_t outsz)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    if (h == NULL) {
        return RDX_ENOMEM;
    }
    snprintf(out, outsz, "%s", h);
    OPENSSL_free(h);
    return RDX_OK;
}

int64_t rdx_tp_asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    /* ASN1_TIME_to_tm gives UTC; days-from-civil avoids timegm's non-standard status. */
    int64_t y = (int64_t)tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

rdx_status rdx_transport_cert_verify(const char *ca_path, const char *crl_path,
                                     const char *cert_path, rdx_transport_cert_info *info,
                                     rdx_error *err)
{
    X509 *x = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    rdx_status st;
    char inst[RDX_TRANSPORT_INST_ID_MAX + 1];
    if (ca_path == NULL || crl_path == NULL || cert_path == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "CA, CRL and certificate paths are required");
    }
    if ((st = load_cert(cert_path, &x, err)) != RDX_OK ||
        (st = rdx_tp_trust_store(ca_path, crl_path, &store, err)) != RDX_OK) {
        goto out;
    }
    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, store, x, NULL) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        st = rdx_tp_ossl_error(err, RDX_ENOMEM, cert_path);
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        ERR_clear_error();
        st = rdx_error_set(err, RDX_EAUTH, "%s: %s", cert_path, X509_verify_cert_error_string(e));
        goto out;
    }
    /* Nodes serve as well as connect: the server purpose must hold too. */
    X509_STORE_CTX_cleanup(ctx);
    if (X509_STORE_CTX_init(ctx, store, x, NULL) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1 ||
        X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        ERR_clear_error();
        st = rdx_error_set(err, RDX_EAUTH, "%s: %s", cert_path, X509_verify_cert_error_string(e));
        goto out;
    }
    if ((st = rdx_tp_cert_institution(x, inst, sizeof inst, err)) != RDX_OK) {
        rdx_error_prefix(err, "%s: ", cert_path);
        goto out;
    }
    if (info != NULL) {
        memset(info, 0, sizeof *info);
        snprintf(info->institution, sizeof info->institution, "%s", inst);
        if (rdx_tp_cert_serial(x, info->serial, sizeof info->serial) != RDX_OK) {
            st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", cert_path);
            goto out;
        }
        info->not_after_unix = rdx_tp_asn1_time_unix(X509_get0_notAfter(x));
    }
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(x);
    return st;
}
