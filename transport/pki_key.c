/*
 * Private keys on disk: ECDSA P-256 in PKCS#8 (RFC 5208) PEM, with the
 * ECPrivateKey of RFC 5915 inside, exactly as `openssl pkey` writes them.
 *
 * Why not PEM_write_bio_PrivateKey / PEM_read_bio_PrivateKey: OpenSSL 3.0's
 * encoders and decoders leave copies of the private scalar in heap blocks they
 * free without clearing (tests/test_transport_pki.c catches it by keeping
 * OpenSSL's freed blocks in quarantine). A P-256 PKCS#8 key is one fixed DER
 * layout, so it is encoded and decoded here, in stack buffers that are wiped,
 * and the key object is built with EVP_PKEY_fromdata, which copies the scalar
 * only into OpenSSL's own key (cleared when the key is freed).
 */
#define _POSIX_C_SOURCE 200809L
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/*
 * PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier { id-ecPublicKey,
 * prime256v1 }, OCTET STRING { ECPrivateKey ::= SEQUENCE { 1, OCTET STRING (32
 * bytes), [1] BIT STRING (65-byte uncompressed point) } } }.
 */
static const unsigned char P8_HEAD[36] = {0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06,
                                          0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                                          0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                                          0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20};
static const unsigned char P8_MID[5] = {0xa1, 0x44, 0x03, 0x42, 0x00};
#define P8_LEN  (36 + 32 + 5 + 65)
#define PEM_BEG "-----BEGIN PRIVATE KEY-----\n"
#define PEM_END "-----END PRIVATE KEY-----\n"
/* 138 DER bytes are 184 base64 characters: three lines. */
#define PEM_MAX 512

rdx_status rdx_tp_key_generate(EVP_PKEY **out, rdx_error *err)
{
    /* ECDSA over P-256: RFC 8446 section 9.1 makes secp256r1 mandatory to implement. */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (k == NULL) {
        return rdx_tp_ossl_error(err, RDX_ENOMEM, "generating an ECDSA P-256 key");
    }
    *out = k;
    return RDX_OK;
}

/* The DER of key into der[P8_LEN]. */
static rdx_status key_der(EVP_PKEY *key, unsigned char *der, rdx_error *err)
{
    BIGNUM *d = NULL;
    size_t publen = 0;
    char group[32];
    size_t glen = 0;
    if (!EVP_PKEY_is_a(key, "EC") ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        ERR_clear_error();
        return rdx_error_set(err, RDX_EINVAL, "only ECDSA P-256 keys are supported");
    }
    memcpy(der, P8_HEAD, sizeof P8_HEAD);
    memcpy(der + 68, P8_MID, sizeof P8_MID);
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
        BN_bn2binpad(d, der + 36, 32) != 32 ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, der + 73, 65,
                                        &publen) != 1 ||
        publen != 65 || der[73] != 0x04) {
        BN_clear_free(d);
        return rdx_tp_ossl_error(err, RDX_EINTERNAL, "encoding the private key");
    }
    BN_clear_free(d);
    return RDX_OK;
}

rdx_status rdx_tp_key_write(const char *path, EVP_PKEY *key, int replace, rdx_error *err)
{
    unsigned char der[P8_LEN];
    unsigned char b64[256];
    char pem[PEM_MAX];
    size_t n = 0;
    rdx_status st = key_der(key, der, err);
    if (st != RDX_OK) {
        goto out;
    }
    int blen = EVP_EncodeBlock(b64, der, (int)sizeof der);
    memcpy(pem, PEM_BEG, sizeof PEM_BEG - 1);
    n = sizeof PEM_BEG - 1;
    for (int i = 0; i < blen; i += 64) {
        int line = blen - i < 64 ? blen - i : 64;
        memcpy(pem + n, b64 + i, (size_t)line);
        n += (size_t)line;
        pem[n++] = '\n';
    }
    memcpy(pem + n, PEM_END, sizeof PEM_END - 1);
    n += sizeof PEM_END - 1;
    st = rdx_tp_write_file(path, pem, n, 0600, replace, err);
out:
    rdx_secure_zero(der, sizeof der);
    rdx_secure_zero(b64, sizeof b64);
    rdx_secure_zero(pem, sizeof pem);
    return st;
}

/* Build the key from its scalar and public point, and check that they belong together. */
static rdx_status key_from_der(const unsigned char *der, EVP_PKEY **out, const char *path,
                               rdx_error *err)
{
    unsigned char le[32];
    rdx_status st = RDX_OK;
    EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
    EVP_PKEY *k = NULL;
    /* OSSL_PARAM unsigned integers are in native byte order; the DER is big-endian. */
    for (int i = 0; i < 32; i++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        le[i] = der[36 + i];
#else
        le[i] = der[36 + 31 - i];
#endif
    }
    OSSL_PARAM p[4];
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
    p[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, le, sizeof le);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)(der + 73), 65);
    p[3] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, p) != 1) {
        st = rdx_tp_ossl_error(err, RDX_EPARSE, path);
        goto out;
    }
    chk = EVP_PKEY_CTX_new(k, NULL);
    if (chk == NULL || EVP_PKEY_pairwise_check(chk) != 1) {
        ERR_clear_error();
        st = rdx_error_set(err, RDX_EPARSE, "%s: the private and public key do not match", path);
        goto out;
    }
    *out = k;
    k = NULL;
out:
    rdx_secure_zero(le, sizeof le);
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(k);
    return st;
}

rdx_status rdx_tp_key_load(const char *path, EVP_PKEY **out, rdx_error *err)
{
    struct stat sb;
    char pem[PEM_MAX + 1];
    unsigned char b64[PEM_MAX];
    unsigned char der[PEM_MAX];
    size_t len = 0, blen = 0;
    rdx_status st = RDX_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return rdx_error_set(err, errno == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", path,
                             strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return rdx_error_set(err, RDX_EIO, "%s: not a regular file", path);
    }
    if ((sb.st_mode & 077) != 0) {
        close(fd);
        return rdx_error_set(err, RDX_EAUTH,
                             "%s: permissions %04o are too open (group or others may read the "
                             "private key); chmod 600 it",
                             path, (unsigned)(sb.st_mode & 07777));
    }
    for (;;) {
        ssize_t n = read(fd, pem + len, sizeof pem - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            st = rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len == sizeof pem - 1) {
            st = rdx_error_set(err, RDX_EPARSE, "%s: too long for a P-256 private key", path);
            goto out;
        }
    }
    pem[len] = '\0';
    const size_t hl = sizeof PEM_BEG - 1, fl = sizeof PEM_END - 1;
    if (len < hl + fl || memcmp(pem, PEM_BEG, hl) != 0) {
        st = rdx_error_set(err, RDX_EPARSE,
                           "%s: not a PKCS#8 PEM private key ('%s' expected on line 1)", path,
                           "-----BEGIN PRIVATE KEY-----");
        goto out;
    }
    char *end = strstr(pem + hl, "-----END PRIVATE KEY-----");
    if (end == NULL) {
        st = rdx_error_set(err, RDX_EPARSE, "%s: no END PRIVATE KEY line", path);
        goto out;
    }
    for (const char *p = pem + hl; p < end; p++) {
        if (*p == '\n' || *p == '\r') {
            continue;
        }
        int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 *p == '+' || *p == '/' || *p == '=';
        if (!ok) {
            st = rdx_error_set(err, RDX_EPARSE, "%s: byte %zu is not base64", path,
                               (size_t)(p - pem) + 1);
            goto out;
        }
        b64[blen++] = (unsigned char)*p;
    }
    int pad = (blen > 0 && b64[blen - 1] == '=') + (blen > 1 && b64[blen - 2] == '=');
    int dlen = blen % 4 == 0 ? EVP_DecodeBlock(der, b64, (int)blen) : -1;
    if (dlen < 0 || dlen - pad != P8_LEN || memcmp(der, P8_HEAD, sizeof P8_HEAD) != 0 ||
        memcmp(der + 68, P8_MID, sizeof P8_MID) != 0 || der[73] != 0x04) {
        ERR_clear_error();
        st = rdx_error_set(err, RDX_EPARSE,
                           "%s: not an ECDSA P-256 PKCS#8 key as 'rdx pki' writes it", path);
        goto out;
    }
    st = key_from_der(der, out, path, err);
out:
    close(fd);
    rdx_secure_zero(pem, sizeof pem);
    rdx_secure_zero(b64, sizeof b64);
    rdx_secure_zero(der, sizeof der);
    return st;
}
