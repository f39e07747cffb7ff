/*
 * The network PKI: CA creation, institution certificates checked with
 * OpenSSL's own verifier, revocation and CRLs, file modes, bad arguments and
 * bad directories through the rdx binary, and key material wiped from memory.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rdx/transport.h"
#include "../transport/transport_limits.h"
#include "../transport/transport_int.h"
#include "support/testutil.h"

/* ---- helpers ------------------------------------------------------------- */

struct fx {
    char *dir;
    char ca[4096];
};

static int setup_ca(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    rdx_error err;
    f->dir = rdx_test_tmpdir();
    if (f->dir == NULL) {
        return -1;
    }
    snprintf(f->ca, sizeof f->ca, "%s/ca", f->dir);
    rdx_transport_ca_cfg cfg = {.dir = f->ca, .network = "Nanjing Remote Diagnosis Network"};
    if (rdx_transport_ca_create(&cfg, &err) != RDX_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_ca(void **state)
{
    struct fx *f = *state;
    rdx_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static X509_CRL *read_crl(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509_CRL *c = PEM_read_X509_CRL(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(c);
    return c;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(k);
    return k;
}

static int file_mode(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (int)(sb.st_mode & 07777);
}

/* OpenSSL's verdict on cert against the CA in dir (with its CRL when crl != 0). */
static int ossl_verify(const char *dir, X509 *cert, int crl)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/ca.crt", dir);
    X509 *ca = read_cert(p);
    X509_STORE *store = X509_STORE_new();
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    if (crl) {
        snprintf(p, sizeof p, "%s/crl.pem", dir);
        X509_CRL *c = read_crl(p);
        assert_int_equal(X509_STORE_add_crl(store, c), 1);
        X509_CRL_free(c);
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    int rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(ca);
    ERR_clear_error();
    return rc;
}

static void issue_ok(const char *dir, const char *inst, rdx_transport_issued *out)
{
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(dir, &ca, &err), RDX_OK);
    rdx_transport_issue_cfg cfg = {
        .institution = inst, .name = "Jiangsu Province Hospital", .city = "Nanjing"};
    rdx_status st = rdx_transport_ca_issue(ca, &cfg, out, &err);
    if (st != RDX_OK) {
        fail_msg("issue %s: %s", inst, err.msg);
    }
    rdx_transport_ca_free(ca);
}

/* ---- CA creation --------------------------------------------------------- */

static void test_pki_init_creates_ca(void **state)
{
    struct fx *f = *state;
    char p[4200];
    snprintf(p, sizeof p, "%s/ca.key", f->ca);
    assert_int_equal(file_mode(p), 0600);
    assert_int_equal(file_mode(f->ca), 0700);
    snprintf(p, sizeof p, "%s/private", f->ca);
    assert_int_equal(file_mode(p), 0700);

    snprintf(p, sizeof p, "%s/ca.crt", f->ca);
    X509 *ca = read_cert(p);
    assert_true(X509_check_ca(ca) >= 1);
    assert_true((X509_get_extension_flags(ca) & EXFLAG_SS) != 0);
    assert_int_equal(X509_get_key_usage(ca) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN),
                     KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    /* pathlen 0: the CA may sign only end-entity certificates. */
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_non_null(bc->pathlen);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);
    EVP_PKEY *pub = X509_get0_pubkey(ca);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    char group[64];
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_verify(ca, pub), 1);

    /* The empty CRL is there from the start and signed by the CA. */
    snprintf(p, sizeof p, "%s/crl.pem", f->ca);
    X509_CRL *crl = read_crl(p);
    assert_int_equal(X509_CRL_verify(crl, pub), 1);
    assert_true(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0); /* none, or no list */
    X509_CRL_free(crl);
    X509_free(ca);

    /* A second init on the same directory is refused and changes nothing. */
    rdx_error err;
    rdx_transport_ca_cfg cfg = {.dir = f->ca, .network = "Other"};
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EEXIST);
    assert_non_null(strstr(err.msg, "already holds a CA"));
    rdx_transport_ca *h = NULL;
    assert_int_equal(rdx_transport_ca_open(f->ca, &h, &err), RDX_OK);
    assert_string_equal(rdx_transport_ca_network(h), "Nanjing Remote Diagnosis Network");
    rdx_transport_ca_free(h);
    rdx_transport_ca_free(NULL);
}

static void test_pki_init_rejects_bad_config(void **state)
{
    struct fx *f = *state;
    rdx_error err;
    char p[4200];
    snprintf(p, sizeof p, "%s/new", f->dir);
    rdx_transport_ca_cfg cfg = {.dir = p, .network = ""};
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EINVAL);
    cfg.network = "bad\nname";
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "control character"));
    cfg.network = "\xc3\x28"; /* invalid UTF-8 */
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EINVAL);
    cfg.network = "\xe0\x80\xaf"; /* overlong '/' */
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EINVAL);
    cfg.network = "ok";
    cfg.days = 99999;
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EINVAL);
    cfg.days = -3;
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_EINVAL);
    /* Nothing was written by the refused attempts. */
    struct stat sb;
    char k[4300];
    snprintf(k, sizeof k, "%s/ca.key", p);
    assert_int_not_equal(stat(k, &sb), 0);
    /* A parent that does not exist is named. */
    snprintf(p, sizeof p, "%s/no/such", f->dir);
    cfg.dir = p;
    cfg.days = 0;
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, p));
}

/* ---- Issuing ------------------------------------------------------------- */

static void test_pki_issue_verifies_with_openssl(void **state)
{
    struct fx *f = *state;
    rdx_transport_issued a, b;
    issue_ok(f->ca, "jsph", &a);
    issue_ok(f->ca, "ndth", &b);
    assert_int_equal(file_mode(a.key_path), 0600);
    assert_int_equal(file_mode(a.cert_path), 0644);
    assert_string_not_equal(a.serial, b.serial);

    X509 *x = read_cert(a.cert_path);
    assert_int_equal(ossl_verify(f->ca, x, 1), X509_V_OK);

    /* The key on disk belongs to the certificate and is P-256. */
    EVP_PKEY *k = read_key(a.key_path);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(EVP_PKEY_get_bits(k), 256);
    EVP_PKEY_free(k);

    /* SAN URI parsed back, by OpenSSL and by rdx. */
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    assert_int_equal(sk_GENERAL_NAME_num(names), 1);
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
    assert_int_equal(gn->type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                        "urn:rdx:inst:jsph");
    GENERAL_NAMES_free(names);
    char inst[65];
    rdx_error err;
    assert_int_equal(rdx_tp_cert_institution(x, inst, sizeof inst, &err), RDX_OK);
    assert_string_equal(inst, "jsph");

    /* End entity, for TLS client and server, with key identifiers tying it to the CA. */
    assert_int_equal(X509_check_ca(x), 0);
    uint32_t ku = X509_get_key_usage(x);
    assert_true((ku & KU_DIGITAL_SIGNATURE) != 0);
    assert_true((ku & KU_KEY_CERT_SIGN) == 0);
    uint32_t xku = X509_get_extended_key_usage(x);
    assert_int_equal(xku & (XKU_SSL_SERVER | XKU_SSL_CLIENT), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    char p[4200];
    snprintf(p, sizeof p, "%s/ca.crt", f->ca);
    X509 *ca = read_cert(p);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
    assert_non_null(aki);
    assert_non_null(ski);
    assert_non_null(X509_get0_subject_key_id(x));
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ski), 0);

    /* 128 random bits: 16 octets, positive. */
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
    assert_int_equal(BN_num_bytes(bn), 16);
    assert_false(BN_is_negative(bn));
    BN_free(bn);

    /* Subject carries the name and city, UTF-8 intact. */
    X509_NAME *nm = X509_get_subject_name(x);
    char buf[256];
    assert_true(X509_NAME_get_text_by_NID(nm, NID_localityName, buf, sizeof buf) > 0);
    assert_string_equal(buf, "Nanjing");

    /* A certificate from another CA does not verify against this one. */
    char other[4200];
    snprintf(other, sizeof other, "%s/other", f->dir);
    rdx_transport_ca_cfg cfg = {.dir = other, .network = "Another Network"};
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_OK);
    rdx_transport_issued o;
    issue_ok(other, "jsph", &o);
    X509 *ox = read_cert(o.cert_path);
    int v = ossl_verify(f->ca, ox, 0);
    assert_true(v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE);
    char cafile[4300], crlfile[4300];
    snprintf(cafile, sizeof cafile, "%s/ca.crt", f->ca);
    snprintf(crlfile, sizeof crlfile, "%s/crl.pem", f->ca);
    assert_int_equal(rdx_transport_cert_verify(cafile, crlfile, o.cert_path, NULL, &err),
                     RDX_EAUTH);
    assert_non_null(strstr(err.msg, "issuer"));
    rdx_transport_cert_info info;
    assert_int_equal(rdx_transport_cert_verify(cafile, crlfile, a.cert_path, &info, &err), RDX_OK);
    assert_string_equal(info.institution, "jsph");
    assert_string_equal(info.serial, a.serial);
    assert_int_equal(info.not_after_unix, a.not_after_unix);
    X509_free(ox);
    X509_free(ca);
    X509_free(x);
}

static void test_pki_issue_refuses_second_active(void **state)
{
    struct fx *f = *state;
    rdx_transport_issued a;
    issue_ok(f->ca, "gulou-chc", &a);
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_OK);
    rdx_transport_issue_cfg cfg = {.institution = "gulou-chc", .name = "n", .city = "c"};
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, NULL, &err), RDX_EEXIST);
    assert_non_null(strstr(err.msg, a.serial));
    /* Revoked, the institution may be issued a new one: a new serial, same files. */
    assert_int_equal(rdx_transport_ca_revoke(ca, "gulou-chc", NULL, RDX_TRANSPORT_REVOKE_SUPERSEDED,
                                             0, NULL, &err),
                     RDX_OK);
    rdx_transport_issued b;
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, &b, &err), RDX_OK);
    assert_string_not_equal(a.serial, b.serial);
    assert_string_equal(a.cert_path, b.cert_path);
    rdx_transport_ca_free(ca);
}

static void test_pki_issue_rejects_bad_fields(void **state)
{
    struct fx *f = *state;
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_OK);
    const char *bad_ids[] = {"",
                             "../x",
                             "a/b",
                             ".hidden",
                             "-rf",
                             "a b",
                             "a,URI:x",
                             "é",
                             "a\tb",
                             "x:y",
                             "a%2f",
                             "0123456789012345678901234567890123456789"
                             "01234567890123456789012345"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        rdx_transport_issue_cfg cfg = {.institution = bad_ids[i], .name = "n", .city = "c"};
        rdx_error_clear(&err);
        assert_int_equal(rdx_transport_ca_issue(ca, &cfg, NULL, &err), RDX_EINVAL);
        assert_non_null(strstr(err.msg, "institution"));
    }
    char longname[200];
    memset(longname, 'n', 65);
    longname[65] = '\0';
    rdx_transport_issue_cfg cfg = {.institution = "ok", .name = longname, .city = "c"};
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, NULL, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "name"));
    /* 64 characters of three bytes each is within the limit: it counts characters. */
    char cjk[200];
    for (int i = 0; i < 64; i++) {
        memcpy(cjk + 3 * i, "\xe5\x8d\x97", 3); /* U+5357 */
    }
    cjk[192] = '\0';
    cfg.name = cjk;
    cfg.city = "\xe5\x8d\x97\xe4\xba\xac";
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, NULL, &err), RDX_OK);
    cfg.institution = "ok2";
    cfg.name = "n";
    cfg.city = "\xed\xa0\x80"; /* a UTF-16 surrogate encoded in UTF-8 */
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, NULL, &err), RDX_EINVAL);
    cfg.city = "c";
    cfg.days = 826;
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, NULL, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "days"));
    rdx_transport_ca_free(ca);
}

static void test_pki_expired_certificate_fails_verify(void **state)
{
    struct fx *f = *state;
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_OK);
    rdx_transport_issue_cfg cfg = {.institution = "old",
                                   .name = "Old Clinic",
                                   .city = "Zhenjiang",
                                   .days = 1,
                                   .not_before_unix = (int64_t)time(NULL) - 10 * 86400};
    rdx_transport_issued out;
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, &out, &err), RDX_OK);
    rdx_transport_ca_free(ca);
    X509 *x = read_cert(out.cert_path);
    assert_int_equal(ossl_verify(f->ca, x, 1), X509_V_ERR_CERT_HAS_EXPIRED);
    X509_free(x);
    char cafile[4300], crlfile[4300];
    snprintf(cafile, sizeof cafile, "%s/ca.crt", f->ca);
    snprintf(crlfile, sizeof crlfile, "%s/crl.pem", f->ca);
    assert_int_equal(rdx_transport_cert_verify(cafile, crlfile, out.cert_path, NULL, &err),
                     RDX_EAUTH);
    assert_non_null(strstr(err.msg, "expired"));
    /* An expired certificate no longer blocks issuing a new one. */
    issue_ok(f->ca, "old", &out);
}

/* ---- Revocation ---------------------------------------------------------- */

static void test_pki_revoke_lists_serial_in_crl(void **state)
{
    struct fx *f = *state;
    rdx_transport_issued a, b;
    issue_ok(f->ca, "yz-lab", &a);
    issue_ok(f->ca, "mas-hosp", &b);
    char p[4200];
    snprintf(p, sizeof p, "%s/crl.pem", f->ca);
    X509_CRL *c0 = read_crl(p);
    ASN1_INTEGER *n0 = X509_CRL_get_ext_d2i(c0, NID_crl_number, NULL, NULL);
    assert_non_null(n0);

    rdx_transport_ca *ca = NULL;
    rdx_error err;
    size_t count = 0;
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_OK);
    assert_int_equal(rdx_transport_ca_revoke(ca, "yz-lab", NULL,
                                             RDX_TRANSPORT_REVOKE_KEY_COMPROMISE, 0, &count, &err),
                     RDX_OK);
    assert_int_equal(count, 1);

    X509_CRL *crl = read_crl(p);
    snprintf(p, sizeof p, "%s/ca.crt", f->ca);
    X509 *cax = read_cert(p);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(cax)), 1);
    ASN1_INTEGER *n1 = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_true(ASN1_INTEGER_get(n1) > ASN1_INTEGER_get(n0));
    X509 *xa = read_cert(a.cert_path);
    X509 *xb = read_cert(b.cert_path);
    X509_REVOKED *rev = NULL;
    assert_int_equal(X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(xa)), 1);
    ASN1_ENUMERATED *why = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
    assert_non_null(why);
    assert_int_equal(ASN1_ENUMERATED_get(why), 1);
    ASN1_ENUMERATED_free(why);
    assert_int_equal(X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(xb)), 0);
    assert_int_equal(ossl_verify(f->ca, xa, 1), X509_V_ERR_CERT_REVOKED);
    assert_int_equal(ossl_verify(f->ca, xb, 1), X509_V_OK);

    /* By serial, typed as openssl prints it (lower case with colons). */
    char typed[128];
    size_t tn = 0;
    for (size_t i = 0; b.serial[i] != '\0'; i += 2) {
        typed[tn++] = (char)(b.serial[i] | 0x20);
        typed[tn++] = (char)(b.serial[i + 1] | 0x20);
        typed[tn++] = ':';
    }
    typed[tn - 1] = '\0';
    assert_int_equal(
        rdx_transport_ca_revoke(ca, NULL, typed, RDX_TRANSPORT_REVOKE_UNSPECIFIED, 0, &count, &err),
        RDX_OK);
    assert_int_equal(count, 1);
    assert_int_equal(rdx_transport_ca_revoke(ca, NULL, b.serial, RDX_TRANSPORT_REVOKE_UNSPECIFIED,
                                             0, NULL, &err),
                     RDX_ESTATE);
    assert_int_equal(rdx_transport_ca_revoke(ca, "yz-lab", NULL, RDX_TRANSPORT_REVOKE_UNSPECIFIED,
                                             0, NULL, &err),
                     RDX_ENOTFOUND);
    assert_int_equal(rdx_transport_ca_revoke(ca, NULL, "ABCDEF", RDX_TRANSPORT_REVOKE_UNSPECIFIED,
                                             0, NULL, &err),
                     RDX_ENOTFOUND);
    assert_int_equal(
        rdx_transport_ca_revoke(ca, NULL, "xyz", RDX_TRANSPORT_REVOKE_UNSPECIFIED, 0, NULL, &err),
        RDX_EINVAL);
    assert_int_equal(
        rdx_transport_ca_revoke(ca, "a", "01", RDX_TRANSPORT_REVOKE_UNSPECIFIED, 0, NULL, &err),
        RDX_EINVAL);
    int64_t num = 0;
    size_t nrev = 0;
    assert_int_equal(rdx_transport_ca_crl_publish(ca, 30, &num, &nrev, &err), RDX_OK);
    assert_int_equal(nrev, 2);
    assert_true(num > ASN1_INTEGER_get(n1));
    assert_int_equal(rdx_transport_ca_crl_publish(ca, 367, NULL, NULL, &err), RDX_EINVAL);
    rdx_transport_ca_free(ca);

    snprintf(p, sizeof p, "%s/crl.pem", f->ca);
    X509_CRL *c2 = read_crl(p);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(c2)), 2);
    /* nextUpdate is 30 days after it was made; thisUpdate a minute before that. */
    int days = 0, secs = 0;
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_CRL_get0_lastUpdate(c2), X509_CRL_get0_nextUpdate(c2)),
        1);
    assert_int_equal(days, 30);
    assert_int_equal(secs, RDX_TRANSPORT_CRL_BACKDATE_S);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(c2), time(NULL)), -1);
    X509_CRL_free(c2);

    /* In seconds: a CRL for one hour, and the bounds (1 s .. 366 days). */
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_OK);
    int64_t num2 = 0;
    assert_int_equal(rdx_transport_ca_crl_publish_v2(ca, 3600, &num2, &nrev, &err), RDX_OK);
    assert_int_equal(num2, num + 1);
    assert_int_equal(nrev, 2);
    const int64_t bad_s[] = {-1, INT64_MIN, 366LL * 86400 + 1, INT64_MAX};
    for (size_t i = 0; i < sizeof bad_s / sizeof bad_s[0]; i++) {
        assert_int_equal(rdx_transport_ca_crl_publish_v2(ca, bad_s[i], NULL, NULL, &err),
                         RDX_EINVAL);
        assert_non_null(strstr(err.msg, "outside 1.."));
    }
    assert_int_equal(rdx_transport_ca_crl_publish_v2(NULL, 60, NULL, NULL, &err), RDX_EINVAL);
    rdx_transport_ca_free(ca);
    c2 = read_crl(p);
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_CRL_get0_lastUpdate(c2), X509_CRL_get0_nextUpdate(c2)),
        1);
    assert_int_equal(days, 0);
    assert_int_equal(secs, 3600 + RDX_TRANSPORT_CRL_BACKDATE_S);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(c2)), 2);
    X509_CRL_free(c2);

    rdx_transport_revoke_reason r;
    assert_int_equal(rdx_transport_revoke_reason_parse("cessationOfOperation", &r), RDX_OK);
    assert_int_equal(r, RDX_TRANSPORT_REVOKE_CESSATION);
    assert_int_equal(rdx_transport_revoke_reason_parse("removeFromCRL", &r), RDX_EINVAL);
    assert_int_equal(rdx_transport_revoke_reason_parse(NULL, &r), RDX_EINVAL);

    ASN1_INTEGER_free(n0);
    ASN1_INTEGER_free(n1);
    X509_free(xa);
    X509_free(xb);
    X509_free(cax);
    X509_CRL_free(crl);
    X509_CRL_free(c0);
}

/* ---- Opening a damaged or unsafe CA -------------------------------------- */

static void test_pki_open_refuses_unsafe_or_broken(void **state)
{
    struct fx *f = *state;
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    char p[4400], q[4200];

    snprintf(p, sizeof p, "%s/ca.key", f->ca);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_EAUTH);
    assert_non_null(strstr(err.msg, "too open"));
    assert_non_null(strstr(err.msg, p));
    assert_null(ca);
    assert_int_equal(chmod(p, 0600), 0);

    /* A certificate that does not match the key. */
    snprintf(q, sizeof q, "%s/other", f->dir);
    rdx_transport_ca_cfg cfg = {.dir = q, .network = "Other"};
    assert_int_equal(rdx_transport_ca_create(&cfg, &err), RDX_OK);
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp %s/ca.crt %s/ca.crt", q, f->ca);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_EAUTH);
    assert_non_null(strstr(err.msg, "does not match"));

    /* A key file that is not PEM. */
    snprintf(p, sizeof p, "%s/ca.key", q);
    assert_int_equal(rdx_tp_write_file(p, "garbage\n", 8, 0600, 1, &err), RDX_OK);
    assert_int_equal(rdx_transport_ca_open(q, &ca, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, p));

    /* No CA, not a directory, no directory. */
    assert_int_equal(rdx_transport_ca_open(f->dir, &ca, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "rdx pki init"));
    snprintf(p, sizeof p, "%s/ca.crt", q);
    assert_int_equal(rdx_transport_ca_open(p, &ca, &err), RDX_ENOENT);
    assert_int_equal(rdx_transport_ca_open("/nonexistent/rdx", &ca, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/rdx"));
    assert_int_equal(rdx_transport_ca_open(NULL, &ca, &err), RDX_EINVAL);
}

/* ---- Key material wiped -------------------------------------------------- */

/*
 * OpenSSL's allocations go through these hooks (installed in main before any
 * other OpenSSL call). Freed blocks are kept in quarantine rather than
 * released, so a test can look at what a freed buffer still held.
 */
struct block {
    _Alignas(16) size_t n;
    struct block *next; /* quarantine list */
};

struct quarantine {
    struct block *head;
    int on;
};
/* Test-only process state: the hooks have no user pointer. */
static struct quarantine quar;

/* The real allocator: OpenSSL's allocations stay out of rdx's out-of-memory sweep. */
void *__real_malloc(size_t n);

static void *q_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    struct block *b = __real_malloc(sizeof *b + n);
    if (b == NULL) {
        return NULL;
    }
    b->n = n;
    b->next = NULL;
    return b + 1;
}

static void q_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p == NULL) {
        return;
    }
    struct block *b = (struct block *)p - 1;
    if (quar.on) {
        b->next = quar.head;
        quar.head = b;
        return;
    }
    free(b);
}

static void *q_realloc(void *p, size_t n, const char *file, int line)
{
    if (p == NULL) {
        return q_malloc(n, file, line);
    }
    struct block *old = (struct block *)p - 1;
    void *np = q_malloc(n, file, line);
    if (np == NULL) {
        return NULL;
    }
    memcpy(np, p, old->n < n ? old->n : n);
    q_free(p, file, line);
    return np;
}

static int quarantine_holds(const void *needle, size_t len)
{
    for (struct block *b = quar.head; b != NULL; b = b->next) {
        if (b->n >= len && memmem(b + 1, b->n, needle, len) != NULL) {
            return 1;
        }
    }
    return 0;
}

static void quarantine_release(void)
{
    quar.on = 0;
    while (quar.head != NULL) {
        struct block *b = quar.head;
        quar.head = b->next;
        free(b);
    }
}

/* The private scalar of an EC key as 32 big-endian bytes, and a line of its PEM. */
static void key_secrets(const char *path, unsigned char scalar[32], char pemline[65])
{
    EVP_PKEY *k = read_key(path);
    BIGNUM *d = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
    assert_int_equal(BN_bn2binpad(d, scalar, 32), 32);
    BN_clear_free(d);
    EVP_PKEY_free(k);
    FILE *fp = fopen(path, "r");
    char line[128];
    assert_non_null(fgets(line, sizeof line, fp)); /* -----BEGIN PRIVATE KEY----- */
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    memcpy(pemline, line, 64);
    pemline[64] = '\0';
}

static void test_pki_key_material_wiped(void **state)
{
    struct fx *f = *state;
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    rdx_transport_issued out;
    unsigned char scalar[32], ca_scalar[32];
    char pem[65], ca_pem[65];
    char p[4200];

    /* Everything OpenSSL frees while opening the CA, issuing and closing is kept. */
    quar.on = 1;
    assert_int_equal(rdx_transport_ca_open(f->ca, &ca, &err), RDX_OK);
    rdx_transport_issue_cfg cfg = {.institution = "wipe", .name = "Wipe Test", .city = "Nanjing"};
    assert_int_equal(rdx_transport_ca_issue(ca, &cfg, &out, &err), RDX_OK);
    rdx_transport_ca_free(ca);
    quar.on = 0;

    key_secrets(out.key_path, scalar, pem);
    snprintf(p, sizeof p, "%s/ca.key", f->ca);
    key_secrets(p, ca_scalar, ca_pem);
    int leaked_scalar = quarantine_holds(scalar, sizeof scalar);
    int leaked_pem = quarantine_holds(pem, strlen(pem));
    int leaked_ca_scalar = quarantine_holds(ca_scalar, sizeof ca_scalar);
    int leaked_ca_pem = quarantine_holds(ca_pem, strlen(ca_pem));
    quarantine_release();
    assert_false(leaked_scalar);
    assert_false(leaked_pem);
    assert_false(leaked_ca_scalar);
    assert_false(leaked_ca_pem);
}

/* ---- The rdx binary ------------------------------------------------------ */

static void run(struct rdx_run *r, const char *const *argv)
{
    assert_int_equal(rdx_run_rdx(r, argv), 0);
}

static long crl_number(X509_CRL *c)
{
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(c, NID_crl_number, NULL, NULL);
    assert_non_null(n);
    long v = ASN1_INTEGER_get(n);
    ASN1_INTEGER_free(n);
    return v;
}

/* A CRL with only a lastUpdate (no CRL number, unsigned): for ordering alone. */
static X509_CRL *bare_crl(time_t last)
{
    X509_CRL *c = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, last);
    assert_non_null(c);
    assert_non_null(t);
    assert_int_equal(X509_CRL_set1_lastUpdate(c, t), 1);
    ASN1_TIME_free(t);
    return c;
}

/*
 * Every publication (`rdx pki crl`, `rdx pki revoke`) carries a CRL number
 * one above the last, kept in the CA database, so across separate runs too;
 * rdx_tp_crl_older orders CRLs by it, and by lastUpdate when one has none.
 */
static void test_pki_crl_number_increases_and_orders(void **state)
{
    struct fx *f = *state;
    struct rdx_run r;
    char p[4200], why[300] = "";
    snprintf(p, sizeof p, "%s/crl.pem", f->ca);
    X509_CRL *c[4];
    c[0] = read_crl(p);
    const char *pub[] = {"pki", "crl", "--dir", f->ca, NULL};
    for (int i = 1; i < 3; i++) {
        run(&r, pub);
        assert_int_equal(r.exit_code, 0);
        rdx_run_free(&r);
        c[i] = read_crl(p);
        assert_int_equal(crl_number(c[i]), crl_number(c[i - 1]) + 1);
    }
    rdx_transport_issued a;
    issue_ok(f->ca, "zj-first", &a);
    const char *rev[] = {"pki", "revoke", "--dir", f->ca, "--institution", "zj-first", NULL};
    run(&r, rev);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    c[3] = read_crl(p);
    assert_int_equal(crl_number(c[3]), crl_number(c[2]) + 1);

    assert_int_equal(rdx_tp_crl_older(c[0], c[3], why, sizeof why), 1);
    char want[200];
    snprintf(want, sizeof want, "its CRL number %ld is lower than %ld", crl_number(c[0]),
             crl_number(c[3]));
    assert_non_null(strstr(why, want));
    assert_int_equal(rdx_tp_crl_older(c[3], c[0], why, sizeof why), 0);
    assert_int_equal(rdx_tp_crl_older(c[2], c[2], why, sizeof why), 0); /* equal: not older */
    assert_int_equal(rdx_tp_crl_older(NULL, c[2], why, sizeof why), 0);
    assert_int_equal(rdx_tp_crl_older(c[2], NULL, why, sizeof why), 0);

    /* Without a CRL number on one side, lastUpdate decides. */
    X509_CRL *early = bare_crl(time(NULL) - 86400), *late = bare_crl(time(NULL) + 60);
    assert_int_equal(rdx_tp_crl_older(early, c[3], why, sizeof why), 1);
    assert_non_null(strstr(why, "before the CRL in force"));
    assert_int_equal(rdx_tp_crl_older(late, c[3], why, sizeof why), 0);
    assert_int_equal(rdx_tp_crl_older(c[3], late, why, sizeof why), 1);
    assert_int_equal(rdx_tp_crl_older(early, early, why, sizeof why), 0);
    X509_CRL_free(early);
    X509_CRL_free(late);
    for (int i = 0; i < 4; i++) {
        X509_CRL_free(c[i]);
    }
}

static void test_pki_cli_round_trip(void **state)
{
    struct fx *f = *state;
    struct rdx_run r;
    char dir[4200], cert[4300];
    snprintf(dir, sizeof dir, "%s/cli", f->dir);
    const char *init[] = {"pki", "init", "--dir", dir, "--network", "Test Net", "--json", NULL};
    run(&r, init);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"network\":\"Test Net\""));
    rdx_run_free(&r);

    const char *issue[] = {"pki",
                           "issue",
                           "--dir",
                           dir,
                           "--institution=zj-first",
                           "--name",
                           "Zhenjiang First People's Hospital",
                           "--city",
                           "Zhenjiang",
                           "--days",
                           "30",
                           NULL};
    run(&r, issue);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "urn:rdx:inst:zj-first"));
    rdx_run_free(&r);

    snprintf(cert, sizeof cert, "%s/certs/zj-first.crt", dir);
    const char *verify[] = {"pki", "verify", "--dir", dir, "--json", cert, NULL};
    run(&r, verify);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"institution\":\"zj-first\""));
    rdx_run_free(&r);

    const char *revoke[] = {"pki",
                            "revoke",
                            "--dir",
                            dir,
                            "--institution",
                            "zj-first",
                            "--reason",
                            "cessationOfOperation",
                            NULL};
    run(&r, revoke);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "revoked 1 certificate"));
    rdx_run_free(&r);

    run(&r, verify);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "certificate revoked"));
    rdx_run_free(&r);

    const char *crl[] = {"pki", "crl", "--dir", dir, "--days", "14", "--json", NULL};
    run(&r, crl);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"revoked\":1"));
    rdx_run_free(&r);

    /* A short-lived CRL: --hours sets nextUpdate that many hours after thisUpdate. */
    const char *hours[] = {"pki", "crl", "--dir", dir, "--hours", "6", NULL};
    run(&r, hours);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "1 revoked certificate"));
    rdx_run_free(&r);
    char crlfile[4300];
    snprintf(crlfile, sizeof crlfile, "%s/crl.pem", dir);
    X509_CRL *c = read_crl(crlfile);
    int days = -1, secs = -1;
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_CRL_get0_lastUpdate(c), X509_CRL_get0_nextUpdate(c)), 1);
    assert_int_equal(days, 0);
    assert_int_equal(secs, 6 * 3600 + RDX_TRANSPORT_CRL_BACKDATE_S);
    X509_CRL_free(c);
    const char *hours_max[] = {"pki", "crl", "--dir", dir, "--hours=8784", "--json", NULL};
    run(&r, hours_max);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    c = read_crl(crlfile);
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_CRL_get0_lastUpdate(c), X509_CRL_get0_nextUpdate(c)), 1);
    assert_int_equal(days, 366);
    assert_int_equal(secs, RDX_TRANSPORT_CRL_BACKDATE_S);
    X509_CRL_free(c);
}

static void test_pki_cli_usage_and_bad_dirs(void **state)
{
    struct fx *f = *state;
    struct rdx_run r;
    const char *verbs[] = {"init", "issue", "revoke", "crl", "verify"};
    for (size_t i = 0; i < 5; i++) {
        const char *help[] = {"pki", verbs[i], "--help", NULL};
        run(&r, help);
        assert_int_equal(r.exit_code, 0);
        assert_non_null(strstr(r.out, "Usage: rdx pki"));
        rdx_run_free(&r);
        const char *none[] = {"pki", verbs[i], NULL};
        run(&r, none);
        assert_int_equal(r.exit_code, 2);
        assert_non_null(strstr(r.err, "required"));
        rdx_run_free(&r);
        const char *unknown[] = {"pki", verbs[i], "--frob", NULL};
        run(&r, unknown);
        assert_int_equal(r.exit_code, 2);
        rdx_run_free(&r);
    }
    const struct {
        const char *argv[14];
        int code;
        const char *msg;
    } cases[] = {
        {{"pki", "init", "--dir", NULL}, 2, "needs a value"},
        {{"pki", "init", "--dir", "x", "--network", "n", "--days", "ten", NULL}, 2, "--days"},
        {{"pki", "issue", "--dir", f->ca, "--institution", "a/b", "--name", "n", "--city", "c",
          NULL},
         2,
         "--institution"},
        {{"pki", "issue", "--dir", f->ca, "--institution", "ab", "--name", "n", "--city", "c",
          "--days", "0", NULL},
         2,
         "--days"},
        {{"pki", "revoke", "--dir", f->ca, "--institution", "a", "--serial", "01", NULL},
         2,
         "exactly one"},
        {{"pki", "revoke", "--dir", f->ca, "--serial", "01", "--reason", "bored", NULL},
         2,
         "--reason"},
        {{"pki", "issue", "--dir", "/nonexistent/ca", "--institution", "ab", "--name", "n",
          "--city", "c", NULL},
         1,
         "/nonexistent/ca"},
        {{"pki", "init", "--dir", "/nonexistent/parent/ca", "--network", "n", NULL},
         1,
         "/nonexistent/parent/ca"},
        {{"pki", "crl", "--dir", f->dir, NULL}, 1, f->dir},
        {{"pki", "crl", "--dir", f->ca, "--hours", "0", NULL}, 2, "--hours"},
        {{"pki", "crl", "--dir", f->ca, "--hours", "8785", NULL}, 2, "--hours"},
        {{"pki", "crl", "--dir", f->ca, "--hours", "-3", NULL}, 2, "--hours"},
        {{"pki", "crl", "--dir", f->ca, "--hours", "1h", NULL}, 2, "--hours"},
        {{"pki", "crl", "--dir", f->ca, "--days", "1", "--hours", "1", NULL}, 2, "not both"},
        {{"pki", "crl", "--dir", f->ca, "--days", "367", NULL}, 2, "--days"},
        {{"pki", "revoke", "--dir", f->ca, "--serial", "0123", NULL}, 1, "no certificate"},
        {{"pki", "verify", "--dir", f->ca, "/nonexistent/x.crt", NULL}, 1, "/nonexistent/x.crt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(&r, cases[i].argv);
        if (r.exit_code != cases[i].code || strstr(r.err, cases[i].msg) == NULL) {
            fail_msg("case %zu: exit %d, stderr '%s'", i, r.exit_code, r.err);
        }
        rdx_run_free(&r);
    }
    /* A directory that is a file. */
    char file[4200];
    snprintf(file, sizeof file, "%s/ca.crt", f->ca);
    const char *asfile[] = {"pki", "init", "--dir", file, "--network", "n", NULL};
    run(&r, asfile);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, file));
    assert_non_null(strstr(r.err, "not a directory"));
    rdx_run_free(&r);
}

/* ---- Out of memory ------------------------------------------------------- */

static int oom_open_issue(void *ctx)
{
    struct fx *f = ctx;
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    if (rdx_transport_ca_open(f->ca, &ca, &err) != RDX_OK) {
        return 1;
    }
    rdx_transport_ca_free(ca);
    return 0;
}

static void test_pki_open_oom_sweep(void **state)
{
    /* rdx's own allocations fail in turn (OpenSSL's and SQLite's are not counted). */
    unsigned long n = rdx_oom_sweep(oom_open_issue, *state);
    assert_true(n >= 1);
}

int main(void)
{
    /* Must precede every other OpenSSL call: see the quarantine above. */
    if (CRYPTO_set_mem_functions(q_malloc, q_realloc, q_free) != 1) {
        fprintf(stderr, "cannot install OpenSSL memory hooks\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pki_init_creates_ca, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_init_rejects_bad_config, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_issue_verifies_with_openssl, setup_ca,
                                        teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_issue_refuses_second_active, setup_ca,
                                        teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_issue_rejects_bad_fields, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_expired_certificate_fails_verify, setup_ca,
                                        teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_revoke_lists_serial_in_crl, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_crl_number_increases_and_orders, setup_ca,
                                        teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_open_refuses_unsafe_or_broken, setup_ca,
                                        teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_key_material_wiped, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_cli_round_trip, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_cli_usage_and_bad_dirs, setup_ca, teardown_ca),
        cmocka_unit_test_setup_teardown(test_pki_open_oom_sweep, setup_ca, teardown_ca),
    };
    return cmocka_run_group_tests_name("transport_pki", tests, NULL, NULL);
}
