/*
 * The delivery threads: [node] senders of them (four by default), each
 * taking the due cases of one recipient that no other thread has and
 * sending them over a TLS 1.3 connection (blocking I/O with socket
 * timeouts), so a slow or silent peer holds up only its own cases. An idle
 * thread sleeps until a case is queued (a byte in the FIFO DATA/outbox.kick,
 * written by whichever process queued it), a retry falls due, or a bounded
 * fallback timer fires. The sender keeps a case until the receiver's ACK
 * names it; it then marks it acknowledged in the same transaction as the
 * audit record. Any
 * failure before that is retried with capped exponential backoff, resuming
 * from the receiver's persisted progress, and after max_attempts the case is
 * dead-lettered (a permanent refusal, such as a policy denial, dead-letters
 * it at once). The server's identity is checked like the client's: its
 * certificate must chain to the CA, pass the CRL and name the recipient.
 */
#define _GNU_SOURCE
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/*
 * HELD: not an attempt at all. This node's own CRL has expired, is not
 * valid yet (its thisUpdate still to come), does not load (garbage,
 * truncated, not the network CA's) or is older than the one already in
 * force (or than the newest one node.db records this node has put in force,
 * before a restart too), so it can verify no peer until a good one is published;
 * or its own certificate or key does not load. The case waits without
 * counting towards max_attempts (a fault of this node's own files must not
 * dead-letter the outbox).
 */
enum outcome { DELIVERED, RETRY, PERMANENT, HELD };

/*
 * How long a HELD case waits before it is tried again (retry_max_ms if that is
 * shorter): a new CRL is picked up by the next connection, so this bounds how
 * long delivery lags behind the operator's `rdx pki crl`. A HELD case gets no
 * audit record (nothing was sent) and its batch one log line, not one per case.
 */
#define HELD_RETRY_MS 5000

struct worker;

/*
 * One TLS connection to one peer. It is kept open from one case to the next
 * while cases for that peer are due (no handshake per case), and closed after
 * any failure, since the receiver closes after every refusal. Its peer was
 * verified against one version of the CRL file: when the file changes, the
 * peer is checked against the new CRL before the link carries another chunk
 * or case (link_crl_check).
 */
struct link {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    rdx_transport_decoder *dec;
    char peer[RDX_TRANSPORT_INST_ID_MAX + 1];
    struct rdx_tp_verdict verdict;
    struct rdx_tp_file_id crl_file; /* the CRL file's version the peer was last checked against */
    int64_t crl_next_s;             /* that CRL's nextUpdate (Unix seconds; 0: none) */
    uint8_t in[16384];
    size_t in_len, in_off;
    struct worker *w; /* the delivery thread that owns it (kept across link_close) */
};

/* Let the stop see (or no longer see) l's socket, to cut a blocked connection. */
static void link_watch(struct link *l);
static void link_unwatch(struct link *l);
static enum outcome link_crl_check(const struct rdx_tp_sender *s, struct link *l, char *why,
                                   size_t whysz);
/*
 * Whether the CRL just loaded (into store) may be used: not older than the
 * newest one delivery has used, nor than node.db's mark (read through db).
 */
static enum outcome crl_admit(const struct rdx_tp_sender *s, sqlite3 *db, X509_STORE *store,
                              char *why, size_t whysz);
/* The delivery thread's own node.db connection (NULL: none). */
static sqlite3 *worker_db(const struct worker *w);
/* HELD, with why, when the CRL in store is not valid yet (its lastUpdate is still to come). */
static enum outcome crl_not_yet(const struct rdx_tp_sender *s, X509_STORE *store, const char *peer,
                                char *why, size_t whysz);

/* Failure text: truncated to fit, which is what a log line wants. */
static void setwhy(char *why, size_t whysz, const char *fmt, ...) RDX_PRINTF(3, 4);

static void setwhy(char *why, size_t whysz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

rdx_status rdx_tp_spool_path(const rdx_transport_config *cfg, const char *case_id, size_t idx,
                             char *out, size_t outsz, rdx_error *err)
{
    return rdx_tp_path(out, outsz, err, "%s/outbox/%s/%zu", cfg->data, case_id, idx);
}

static int tcp_connect(const struct rdx_tp_peer *p, unsigned timeout_ms, unsigned io_ms, char *why,
                       size_t whysz)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(p->host, p->port, &hints, &res);
    if (rc != 0) {
        setwhy(why, whysz, "%s:%s: %s", p->host, p->port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        setwhy(why, whysz, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS) {
        setwhy(why, whysz, "connect to %s:%s: %s", p->host, p->port, strerror(errno));
        close(fd);
        return -1;
    }
    if (rc != 0) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&pfd, 1, (int)timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            setwhy(why, whysz, "connect to %s:%s: %s", p->host, p->port,
                   err != 0 ? strerror(err) : "timed out");
            close(fd);
            return -1;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    struct timeval tv = {(time_t)(io_ms / 1000), (suseconds_t)(io_ms % 1000) * 1000};
    int one = 1;
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        setwhy(why, whysz, "socket options: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Frames go through a buffering BIO of this size between OpenSSL and the
 * socket: a chunk's TLS records (16 KiB each) leave in 256 KiB write(2)s,
 * not one system call per record. Whatever is buffered is flushed before
 * the sender waits for an answer (read_frame) and when the link closes.
 */
#define SEND_BATCH (256u << 10)

/* Send what the buffering BIO holds. 0 on success. */
static int link_flush(SSL *ssl)
{
    BIO *b = SSL_get_wbio(ssl);
    return b == NULL || BIO_flush(b) == 1 ? 0 : -1;
}

static int ssl_write_all(SSL *ssl, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t w = 0;
        if (SSL_write_ex(ssl, p, n, &w) != 1) {
            return -1;
        }
        p += w;
        n -= w;
    }
    return 0;
}

static int send_frame(struct link *l, unsigned type, const void *payload, size_t len)
{
    uint8_t hdr[RDX_TRANSPORT_FRAME_HDR];
    if (rdx_transport_frame_header(hdr, type, len, NULL) != RDX_OK ||
        ssl_write_all(l->ssl, hdr, sizeof hdr) != 0 ||
        (len > 0 && ssl_write_all(l->ssl, payload, len) != 0)) {
        return -1;
    }
    return 0;
}

/* Read one frame (blocking, within the socket's read timeout). */
static int read_frame(struct link *l, rdx_transport_frame *f, char *why, size_t whysz)
{
    for (;;) {
        while (l->in_off < l->in_len) {
            size_t used = 0;
            int got = 0;
            rdx_error err;
            if (rdx_transport_decoder_feed(l->dec, l->in + l->in_off, l->in_len - l->in_off, &used,
                                           f, &got, &err) != RDX_OK) {
                setwhy(why, whysz, "receiver broke the framing: %s", err.msg);
                return -1;
            }
            l->in_off += used;
            if (got) {
                return 0;
            }
        }
        size_t r = 0;
        if (link_flush(l->ssl) != 0) {
            setwhy(why, whysz, "connection to the receiver failed");
            ERR_clear_error();
            return -1;
        }
        if (SSL_read_ex(l->ssl, l->in, sizeof l->in, &r) != 1) {
            int e = SSL_get_error(l->ssl, 0);
            setwhy(why, whysz, "%s",
                   e == SSL_ERROR_ZERO_RETURN                ? "receiver closed the connection"
                   : errno == EAGAIN || errno == EWOULDBLOCK ? "receiver did not answer in time"
                                                             : "connection to the receiver failed");
            ERR_clear_error();
            return -1;
        }
        l->in_len = r;
        l->in_off = 0;
    }
}

/* A REFUSE frame: set why, and whether it is permanent. */
static enum outcome refused(const rdx_transport_frame *f, char *why, size_t whysz)
{
    char cid[RDX_TRANSPORT_CASE_ID_MAX + 1], reason[RDX_TRANSPORT_REASON_MAX + 1];
    unsigned code = 0;
    if (rdx_tp_refuse_decode(f->payload, f->len, cid, &code, reason, sizeof reason, NULL) !=
        RDX_OK) {
        setwhy(why, whysz, "receiver refused (unreadable reason)");
        return RETRY;
    }
    setwhy(why, whysz, "receiver refused: %s", reason);
    return rdx_tp_refuse_permanent(code) ? PERMANENT : RETRY;
}

/*
 * The link values of item idx (the chaining value at the end of every link
 * stride, the last one the item digest) when the queue did not record them
 * (a case queued by an older rdx): one pass over the spool copy. 0 on success.
 */
static int compute_checks(const char *path, const struct rdx_tp_manifest *m, size_t idx,
                          uint8_t *buf, size_t bufsz, uint8_t **out)
{
    const struct rdx_tp_item *it = &m->items[idx];
    uint32_t stride = rdx_tp_link_stride(m->chunk_size);
    size_t k = rdx_tp_chunk_count(it->size, stride);
    uint8_t *v = rdx_callocarray(k > 0 ? k : 1, 32);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct rdx_tp_sha h;
    int ok = v != NULL && fd >= 0;
    rdx_tp_sha_init(&h);
    for (size_t c = 0; ok && c < k; c++) {
        uint64_t end = (uint64_t)(c + 1) * stride;
        end = end < it->size ? end : it->size;
        while (ok && h.bytes < end) {
            size_t want = end - h.bytes < bufsz ? (size_t)(end - h.bytes) : bufsz;
            ssize_t r = pread(fd, buf, want, (off_t)h.bytes);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            ok = r > 0;
            if (ok) {
                rdx_tp_sha_update(&h, buf, (size_t)r);
            }
        }
        ok = ok && rdx_tp_chunk_check(&h, it->size, v + 32 * c) == 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

/*
 * A chunk goes out in pieces of this size, each read from the spool just
 * before it is written: the bytes are still in the CPU cache when TLS copies
 * and encrypts them (a whole 8 MiB chunk read at once is not), and the
 * sender's buffer stays small.
 */
#define SEND_PIECE (256u << 10)

static enum outcome stream_items(const struct rdx_tp_sender *s, struct link *l,
                                 const struct rdx_tp_manifest *m, const uint64_t *done, char *why,
                                 size_t whysz)
{
    size_t cap = RDX_TRANSPORT_FRAME_HDR + RDX_TRANSPORT_CHUNK_HDR_MAX + SEND_PIECE;
    uint8_t *buf = malloc(cap);
    enum outcome oc = RETRY;
    if (buf == NULL) {
        setwhy(why, whysz, "out of memory");
        return RETRY;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        char path[4200];
        rdx_error err;
        if (rdx_tp_spool_path(s->cfg, m->case_id, i, path, sizeof path, &err) != RDX_OK) {
            setwhy(why, whysz, "%s", err.msg);
            oc = PERMANENT;
            goto out;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            setwhy(why, whysz, "%s: %s (the outbox copy is gone)", path, strerror(errno));
            oc = PERMANENT;
            goto out;
        }
        const uint8_t *checks = m->items[i].checks;
        uint8_t *made = NULL;
        uint32_t stride = rdx_tp_link_stride(m->chunk_size);
        size_t nvalues = rdx_tp_chunk_count(m->items[i].size, stride);
        if (checks == NULL && nvalues == 1) {
            checks = m->items[i].sha256; /* one stride: its check value is the item's digest */
        } else if (checks == NULL && done[i] < m->items[i].size) {
            if (compute_checks(path, m, i, buf, cap, &made) != 0) {
                setwhy(why, whysz, "%s: cannot read the outbox copy: %s", path, strerror(errno));
                close(fd);
                goto out;
            }
            checks = made;
        }
        for (uint64_t off = done[i]; off < m->items[i].size;) {
            uint64_t left = m->items[i].size - off;
            size_t n = left < m->chunk_size ? (size_t)left : m->chunk_size;
            struct rdx_tp_chunk ch;
            size_t hl = 0;
            /* A revocation published in the middle of a large item stops it at a chunk. */
            enum outcome cc = link_crl_check(s, l, why, whysz);
            if (cc != DELIVERED) {
                close(fd);
                free(made);
                oc = cc;
                goto out;
            }
            memset(&ch, 0, sizeof ch);
            snprintf(ch.case_id, sizeof ch.case_id, "%s", m->case_id);
            ch.item = (uint16_t)i;
            ch.offset = off;
            ch.len = n;
            /*
             * Computed when the case was queued: sending costs no hashing.
             * The chunk's strides' values: all but the last are its links,
             * the last its check value. Chunks start on a chunk boundary.
             */
            size_t first = (size_t)(off / stride), last = (size_t)((off + n - 1) / stride);
            ch.nlinks = (unsigned)(last - first);
            memcpy(ch.links, checks + 32 * first, 32 * (size_t)ch.nlinks);
            memcpy(ch.sha256, checks + 32 * last, 32);
            if (rdx_tp_chunk_header(&ch, buf, &hl, NULL) != RDX_OK) {
                setwhy(why, whysz, "cannot encode a chunk header");
                close(fd);
                free(made);
                goto out;
            }
            /* [frame header][chunk header][first piece] contiguous, then the other pieces. */
            uint8_t *data = buf + RDX_TRANSPORT_FRAME_HDR + RDX_TRANSPORT_CHUNK_HDR_MAX;
            uint8_t *start = data - hl - RDX_TRANSPORT_FRAME_HDR;
            memmove(start + RDX_TRANSPORT_FRAME_HDR, buf, hl);
            int failed = rdx_transport_frame_header(start, RDX_FRAME_CHUNK, hl + n, NULL) != RDX_OK;
            size_t lead = RDX_TRANSPORT_FRAME_HDR + hl;
            for (size_t sent = 0; !failed && sent < n;) {
                size_t piece = n - sent < SEND_PIECE ? n - sent : SEND_PIECE;
                ssize_t r = pread(fd, data, piece, (off_t)(off + sent));
                if (r != (ssize_t)piece) {
                    setwhy(why, whysz, "%s: short read at %llu", path,
                           (unsigned long long)(off + sent));
                    close(fd);
                    free(made);
                    goto out; /* half a frame went out: the link is closed */
                }
                failed = ssl_write_all(l->ssl, data - lead, lead + piece) != 0;
                sent += piece;
                lead = 0;
            }
            if (failed) {
                close(fd);
                /* The receiver may have said why before it closed. */
                rdx_transport_frame f;
                char rwhy[256];
                free(made);
                if (read_frame(l, &f, rwhy, sizeof rwhy) == 0 && f.type == RDX_FRAME_REFUSE) {
                    oc = refused(&f, why, whysz);
                } else {
                    setwhy(why, whysz, "connection lost while sending item %zu at %llu", i + 1,
                           (unsigned long long)off);
                }
                ERR_clear_error();
                goto out;
            }
            off += n;
        }
        free(made);
        close(fd);
    }
    oc = DELIVERED; /* every byte sent; the caller commits */
out:
    free(buf);
    return oc;
}

static void link_close(struct link *l, int clean)
{
    struct worker *w = l->w;
    link_unwatch(l); /* before close: the stop must never cut an fd number reused meanwhile */
    if (l->ssl != NULL) {
        if (clean) {
            (void)SSL_shutdown(l->ssl);
            (void)link_flush(l->ssl);
        }
        SSL_free(l->ssl);
    }
    if (l->fd >= 0) {
        close(l->fd);
    }
    rdx_transport_decoder_free(l->dec);
    SSL_CTX_free(l->ctx);
    ERR_clear_error();
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->w = w;
}

/* Connect to recipient and check that the server is that institution. */
static enum outcome link_open(const struct rdx_tp_sender *s, struct link *l, const char *recipient,
                              char *why, size_t whysz)
{
    const rdx_transport_config *cfg = s->cfg;
    const struct rdx_tp_peer *peer = rdx_tp_config_peer(cfg, recipient);
    rdx_error err;
    link_close(l, 0);
    if (peer == NULL) {
        setwhy(why, whysz, "%s has no [peers] entry for '%s'", cfg->path, recipient);
        return PERMANENT;
    }
    /*
     * A fresh context per connection picks up a newly published CRL. The
     * file's version is taken first: a change in between is seen later. A
     * CRL file that does not load, or holds an older CRL than one already
     * used, is this node's fault, not the peer's: the cases are held, as
     * while the CRL is expired, and sent once a good one is published.
     */
    (void)rdx_tp_file_id_get(cfg->crl, &l->crl_file);
    X509_STORE *store = NULL;
    if (rdx_tp_trust_store(cfg->ca, cfg->crl, &store, &err) != RDX_OK) {
        setwhy(why, whysz, "this node's CRL cannot be used, so %s cannot be checked: %s", recipient,
               err.msg);
        return HELD;
    }
    if (crl_admit(s, worker_db(l->w), store, why, whysz) != DELIVERED ||
        crl_not_yet(s, store, recipient, why, whysz) != DELIVERED) {
        X509_STORE_free(store);
        return HELD;
    }
    rdx_status cst = rdx_tp_tls_ctx_store(cfg, 0, store, &l->ctx, &err);
    if (cst != RDX_OK) {
        /* This node's own certificate or key (missing, garbage, not a pair): held, as above. */
        setwhy(why, whysz, "this node's certificate cannot be used: %s", err.msg);
        return cst == RDX_ENOMEM || cst == RDX_EINTERNAL ? RETRY : HELD;
    }
    X509_CRL *crl = rdx_tp_tls_ctx_crl(l->ctx);
    l->crl_next_s = crl != NULL ? rdx_tp_asn1_time_unix(X509_CRL_get0_nextUpdate(crl)) : 0;
    if (rdx_transport_decoder_new(RDX_TRANSPORT_CONTROL_MAX, &l->dec, &err) != RDX_OK) {
        setwhy(why, whysz, "out of memory");
        return RETRY;
    }
    if ((l->fd = tcp_connect(peer, cfg->handshake_ms, cfg->read_ms, why, whysz)) < 0) {
        return RETRY;
    }
    link_watch(l); /* a stop cuts even the handshake with a peer that never answers */
    if ((l->ssl = SSL_new(l->ctx)) == NULL) {
        setwhy(why, whysz, "out of memory");
        return RETRY;
    }
    SSL_set_app_data(l->ssl, &l->verdict);
    if (SSL_set_fd(l->ssl, l->fd) != 1 || SSL_connect(l->ssl) != 1) {
        char reason[400];
        rdx_tp_tls_reason(&l->verdict, ERR_peek_error(), reason, sizeof reason);
        ERR_clear_error();
        setwhy(why, whysz, "TLS with %s (%s:%s) failed: %s", recipient, peer->host, peer->port,
               reason);
        /* This node's own CRL (not the peer's certificate) failed the check: held. */
        return l->verdict.verify_error == X509_V_ERR_CRL_HAS_EXPIRED ||
                       l->verdict.verify_error == X509_V_ERR_CRL_NOT_YET_VALID
                   ? HELD
                   : RETRY;
    }
    char inst[65], serial[64];
    if (rdx_tp_tls_peer(l->ssl, inst, sizeof inst, serial, sizeof serial, &err) != RDX_OK) {
        setwhy(why, whysz, "receiver at %s:%s: %s", peer->host, peer->port, err.msg);
        return RETRY;
    }
    if (strcmp(inst, recipient) != 0) {
        /* Whoever answers at that address is not the institution the case is for. */
        setwhy(why, whysz, "the node at %s:%s is '%s', not '%s'", peer->host, peer->port, inst,
               recipient);
        return RETRY;
    }
    snprintf(l->peer, sizeof l->peer, "%s", recipient);
    rdx_tp_ssl_buffer(l->ssl, 1, SEND_BATCH); /* once the handshake is done */
    return DELIVERED;
}

/*
 * Whether the open link l may carry on: DELIVERED when its peer still
 * stands. The CRL file is looked at (one stat); when it has changed since the
 * peer was checked, the new CRL is loaded as a new connection would load it
 * (issuer and signature checked) and the peer's certificate is checked
 * against it. RETRY when the peer is revoked (the next connection would
 * fail the same way); HELD when the new CRL does not load, is older than
 * one already used or is not valid yet, or when the CRL the link relies on
 * has passed its nextUpdate (this node fails closed, as link_open). Either way why says so,
 * and the caller closes the link. Everything here is the delivery thread's
 * own, but for the newest CRL used (crl_admit, under the delivery's mu).
 */
static enum outcome link_crl_check(const struct rdx_tp_sender *s, struct link *l, char *why,
                                   size_t whysz)
{
    const rdx_transport_config *cfg = s->cfg;
    struct rdx_tp_file_id id;
    if (rdx_tp_file_id_get(cfg->crl, &id) == 0 && rdx_tp_file_id_same(&id, &l->crl_file)) {
        if (l->crl_next_s > 0 && rdx_clock_wall_ms() / 1000 >= l->crl_next_s) {
            setwhy(why, whysz,
                   "CRL has expired (%s): the connection to %s verified before it is not kept",
                   cfg->crl, l->peer);
            return HELD;
        }
        return DELIVERED;
    }
    X509_STORE *store = NULL;
    rdx_error err;
    if (rdx_tp_trust_store(cfg->ca, cfg->crl, &store, &err) != RDX_OK) {
        setwhy(why, whysz, "the CRL changed and does not load, so %s cannot be checked: %s",
               l->peer, err.msg);
        return HELD;
    }
    X509_CRL *crl = rdx_tp_trust_store_crl(store);
    if (crl_admit(s, worker_db(l->w), store, why, whysz) != DELIVERED ||
        crl_not_yet(s, store, l->peer, why, whysz) != DELIVERED) {
        X509_STORE_free(store);
        return HELD;
    }
    X509 *x = SSL_get0_peer_certificate(l->ssl);
    char when[32], serial[64] = "?";
    enum outcome oc = DELIVERED;
    if (rdx_tp_crl_revokes(crl, x, when, sizeof when)) {
        (void)rdx_tp_cert_serial(x, serial, sizeof serial);
        setwhy(why, whysz,
               "certificate revoked: %s (serial %s, revoked at %s) by the new CRL; the connection "
               "was closed",
               l->peer, serial, when);
        oc = RETRY;
    } else {
        int64_t next = crl != NULL ? rdx_tp_asn1_time_unix(X509_CRL_get0_nextUpdate(crl)) : 0;
        l->crl_file = id;
        l->crl_next_s = next;
        if (next > 0 && rdx_clock_wall_ms() / 1000 >= next) {
            setwhy(why, whysz, "CRL has expired (%s): the connection to %s is not kept", cfg->crl,
                   l->peer);
            oc = HELD;
        }
    }
    X509_STORE_free(store);
    ERR_clear_error();
    return oc;
}

/*
 * Pipelining: up to PIPE_MAX cases for one peer go over one connection
 * without waiting for each ACK. The sender offers a case, streams what the
 * PROGRESS answer says is missing, sends COMMIT and goes on to the next
 * offer; ACKs (each naming its case) are taken as they arrive, so the
 * receiver can make a whole group of them durable with one sync.
 */
#define PIPE_MAX 256
/*
 * A case never tried before and at most this large is sent whole right
 * behind its OFFER, without waiting for PROGRESS: the receiver has nothing
 * of it (or, after a sender crash, refuses the chunks and the next attempt
 * resumes properly; a duplicate is acknowledged and its chunks dropped).
 */
#define AHEAD_MAX (256u << 10)

enum job_state { JOB_WAITING, JOB_SENT, JOB_DONE, JOB_SKIPPED };

struct job {
    struct rdx_tp_manifest m;
    uint8_t *blob;
    size_t bloblen;
    int attempts;
    enum job_state st;
    enum outcome oc;
    int dup;
    char why[600];
};

static struct job *job_find(struct job *jobs, size_t n, const char *cid)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(jobs[i].m.case_id, cid) == 0) {
            return &jobs[i];
        }
    }
    return NULL;
}

static void job_done(struct job *j, enum outcome oc, int dup, const char *why)
{
    j->st = JOB_DONE;
    j->oc = oc;
    j->dup = dup;
    if (why != NULL && why != j->why) {
        setwhy(j->why, sizeof j->why, "%s", why);
    }
}

/*
 * Take one frame that is not the answer to cur: an ACK or REFUSE naming a
 * case already sent. Returns 1 when f answers cur (left for the caller), 0
 * when it was consumed, -1 when the connection is finished (a refusal).
 */
static int take_answer(struct job *jobs, size_t n, struct job *cur, const rdx_transport_frame *f)
{
    char cid[RDX_TRANSPORT_CASE_ID_MAX + 1] = "";
    int flag = 0;
    if (f->type == RDX_FRAME_ACK) {
        if (rdx_tp_caseref_decode(f->payload, f->len, cid, &flag, NULL) != RDX_OK) {
            return -1;
        }
        struct job *j = job_find(jobs, n, cid);
        if (j == cur) {
            return 1;
        }
        if (j != NULL && j->st == JOB_SENT) {
            job_done(j, DELIVERED, flag, NULL);
        }
        return 0;
    }
    if (f->type == RDX_FRAME_PROGRESS) {
        uint64_t d[1];
        size_t k = 0;
        struct job *j = NULL;
        if (rdx_tp_progress_decode(f->payload, f->len, cid, d, 0, &k, NULL) == RDX_OK ||
            cid[0] != '\0') {
            j = job_find(jobs, n, cid);
        }
        if (j == cur || j == NULL) {
            return cur != NULL ? 1 : -1;
        }
        return 0; /* the answer to an offer sent ahead of its chunks */
    }
    if (f->type == RDX_FRAME_REFUSE) {
        unsigned code = 0;
        char reason[RDX_TRANSPORT_REASON_MAX + 1];
        struct job *j = NULL;
        if (rdx_tp_refuse_decode(f->payload, f->len, cid, &code, reason, sizeof reason, NULL) ==
            RDX_OK) {
            j = job_find(jobs, n, cid);
        }
        if (j == NULL || j == cur) {
            return 1;
        }
        if (j->st == JOB_SENT) {
            setwhy(j->why, sizeof j->why, "receiver refused: %s", reason);
            job_done(j, rdx_tp_refuse_permanent(code) ? PERMANENT : RETRY, 0, NULL);
        }
        return -1;
    }
    return cur != NULL ? 1 : -1;
}

/* Offer job j and, if the receiver wants it, stream and commit it. 0 while the link is usable. */
static int offer_one(const struct rdx_tp_sender *s, struct link *l, struct job *jobs, size_t n,
                     struct job *j)
{
    rdx_transport_frame f;
    char cid[RDX_TRANSPORT_CASE_ID_MAX + 1];
    int flag = 0;
    if (send_frame(l, RDX_FRAME_OFFER, j->blob, j->bloblen) != 0) {
        setwhy(j->why, sizeof j->why, "connection lost sending the offer");
        return -1;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < j->m.nitems; i++) {
        total += j->m.items[i].size;
    }
    if (j->attempts == 0 && total <= AHEAD_MAX) {
        uint64_t *zero = rdx_callocarray(j->m.nitems + 1, sizeof *zero);
        enum outcome oc =
            zero != NULL ? stream_items(s, l, &j->m, zero, j->why, sizeof j->why) : RETRY;
        free(zero);
        if (oc != DELIVERED) {
            job_done(j, oc, 0, NULL);
            return -1;
        }
        goto commit;
    }
    for (;;) {
        if (read_frame(l, &f, j->why, sizeof j->why) != 0) {
            return -1;
        }
        int a = take_answer(jobs, n, j, &f);
        if (a < 0) {
            return -1;
        }
        if (a == 1) {
            break;
        }
    }
    if (f.type == RDX_FRAME_REFUSE) {
        job_done(j, refused(&f, j->why, sizeof j->why), 0, NULL);
        return -1; /* the receiver closes after a refusal */
    }
    if (f.type == RDX_FRAME_ACK) {
        (void)rdx_tp_caseref_decode(f.payload, f.len, cid, &flag, NULL);
        job_done(j, DELIVERED, flag, NULL); /* it had the case already */
        return 0;
    }
    const struct rdx_tp_manifest *m = &j->m;
    size_t got = 0;
    uint64_t *done = rdx_callocarray(m->nitems, sizeof *done);
    if (f.type != RDX_FRAME_PROGRESS || done == NULL ||
        rdx_tp_progress_decode(f.payload, f.len, cid, done, m->nitems, &got, NULL) != RDX_OK ||
        strcmp(cid, m->case_id) != 0 || got != m->nitems) {
        setwhy(j->why, sizeof j->why, "receiver answered the offer with a bad %s",
               rdx_transport_frame_type_name(f.type) ? rdx_transport_frame_type_name(f.type)
                                                     : "frame");
        free(done);
        job_done(j, RETRY, 0, NULL);
        return -1;
    }
    for (size_t i = 0; i < got; i++) {
        if (done[i] > m->items[i].size ||
            (done[i] != m->items[i].size && done[i] % m->chunk_size != 0)) {
            setwhy(j->why, sizeof j->why,
                   "receiver reports item %zu at %llu bytes, which is no chunk boundary", i + 1,
                   (unsigned long long)done[i]);
            free(done);
            job_done(j, RETRY, 0, NULL);
            return -1;
        }
    }
    enum outcome oc = stream_items(s, l, m, done, j->why, sizeof j->why);
    free(done);
    if (oc != DELIVERED) {
        job_done(j, oc, 0, NULL);
        return -1;
    }
commit:;
    rdx_buf b;
    rdx_buf_init(&b, 256);
    if (rdx_tp_caseref_encode(j->m.case_id, 0, &b, NULL) != RDX_OK ||
        send_frame(l, RDX_FRAME_COMMIT, b.data, b.len) != 0) {
        rdx_buf_free(&b);
        /* A case sent ahead of its answer: the receiver may have refused it and closed. */
        rdx_transport_frame rf;
        char rwhy[256];
        if (read_frame(l, &rf, rwhy, sizeof rwhy) == 0 && rf.type == RDX_FRAME_REFUSE) {
            job_done(j, refused(&rf, j->why, sizeof j->why), 0, NULL);
        } else {
            setwhy(j->why, sizeof j->why, "connection lost sending the commit");
            job_done(j, RETRY, 0, NULL);
        }
        ERR_clear_error();
        return -1;
    }
    rdx_buf_free(&b);
    j->st = JOB_SENT; /* its ACK comes when the receiver's group is durable */
    setwhy(j->why, sizeof j->why, "no ACK before the connection ended");
    return 0;
}

/*
 * Deliver jobs (all for one recipient) over l, opened or reused. Every job
 * ends JOB_DONE with an outcome, or JOB_SKIPPED when another case's failure
 * ended the connection before this one was tried (no attempt is counted).
 */
static void deliver_batch(const struct rdx_tp_sender *s, struct link *l, struct job *jobs, size_t n)
{
    const char *recipient = jobs[0].m.recipient;
    int reused = l->ssl != NULL && strcmp(l->peer, recipient) == 0;
    char why[600] = "";
    if (reused && link_crl_check(s, l, why, sizeof why) != DELIVERED) {
        /* Not reused: a new connection verifies the peer afresh, and says why it cannot. */
        rdx_log(&s->log, RDX_LOG_WARN, "delivery to %s: %s", recipient, why);
        link_close(l, 0);
        reused = 0;
    }
    if (!reused) {
        enum outcome oc = link_open(s, l, recipient, why, sizeof why);
        if (oc != DELIVERED) {
            link_close(l, 0);
            for (size_t i = 0; i < n; i++) {
                job_done(&jobs[i], oc, 0, why);
            }
            return;
        }
    }
    size_t i = 0;
    int ok = 1;
    for (; ok && i < n; i++) {
        if (offer_one(s, l, jobs, n, &jobs[i]) != 0) {
            if (reused && i == 0 && jobs[0].st == JOB_WAITING) {
                /* The receiver closed the kept connection meanwhile: that is no failed attempt. */
                link_close(l, 0);
                deliver_batch(s, l, jobs, n);
                return;
            }
            if (jobs[i].st == JOB_WAITING) {
                job_done(&jobs[i], RETRY, 0, NULL); /* lost waiting for its answer */
            }
            ok = 0;
        }
    }
    /* The ACKs still to come. */
    for (;;) {
        struct job *open = NULL;
        for (size_t k = 0; k < n && open == NULL; k++) {
            open = jobs[k].st == JOB_SENT ? &jobs[k] : NULL;
        }
        if (open == NULL || !ok) {
            break;
        }
        rdx_transport_frame f;
        if (read_frame(l, &f, why, sizeof why) != 0) {
            ok = 0;
            break;
        }
        int a = take_answer(jobs, n, NULL, &f);
        if (a < 0) {
            ok = 0;
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (jobs[k].st == JOB_SENT) {
            job_done(&jobs[k], RETRY, 0, NULL); /* why says no ACK came */
        } else if (jobs[k].st == JOB_WAITING) {
            jobs[k].st = JOB_SKIPPED;
        }
    }
    if (!ok) {
        link_close(l, 0);
    }
    ERR_clear_error();
}

/* Remove the spool copy of an acknowledged case (every file in DATA/outbox/CASE, then it). */
static void remove_spool_dir(const rdx_transport_config *cfg, const char *case_id)
{
    char p[4200], f[4500];
    if (rdx_tp_path(p, sizeof p, NULL, "%s/outbox/%s", cfg->data, case_id) != RDX_OK) {
        return;
    }
    DIR *d = opendir(p);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.') {
                snprintf(f, sizeof f, "%s/%s", p, e->d_name);
                (void)unlink(f);
            }
        }
        closedir(d);
    }
    (void)rmdir(p);
}

/*
 * The janitor thread removes the spool copies of acknowledged cases. An
 * unlink and an rmdir cost milliseconds each on a busy ext4 journal, which
 * the delivery thread must not wait for; a spool copy left by a crash is
 * removed by the sweep when delivery starts again.
 */
struct janitor {
    const rdx_transport_config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char (*ids)[RDX_TRANSPORT_CASE_ID_MAX + 1];
    size_t n, cap;
    int stop;
    int started;
    pthread_t th;
};

static void *janitor_main(void *arg)
{
    struct janitor *j = arg;
    char id[RDX_TRANSPORT_CASE_ID_MAX + 1];
    (void)pthread_setname_np(pthread_self(), "rdx-janitor");
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (j->n == 0 && !j->stop) {
            pthread_cond_wait(&j->cv, &j->mu);
        }
        if (j->n == 0) {
            break;
        }
        memcpy(id, j->ids[--j->n], sizeof id);
        pthread_mutex_unlock(&j->mu);
        remove_spool_dir(j->cfg, id);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static void janitor_add(struct janitor *j, const char *case_id)
{
    if (!j->started) {
        remove_spool_dir(j->cfg, case_id);
        return;
    }
    pthread_mutex_lock(&j->mu);
    if (j->n == j->cap) {
        size_t nc = j->cap ? j->cap * 2 : 256;
        void *q = rdx_reallocarray(j->ids, nc, sizeof *j->ids);
        if (q == NULL) {
            pthread_mutex_unlock(&j->mu);
            remove_spool_dir(j->cfg, case_id);
            return;
        }
        j->ids = q;
        j->cap = nc;
    }
    snprintf(j->ids[j->n++], sizeof j->ids[0], "%s", case_id);
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Spool copies of cases already acknowledged (a crash before the janitor got to them). */
static void sweep_spool(const rdx_transport_config *cfg, sqlite3 *db)
{
    char p[4200];
    sqlite3_stmt *st = NULL;
    if (rdx_tp_path(p, sizeof p, NULL, "%s/outbox", cfg->data) != RDX_OK ||
        sqlite3_prepare_v2(db, "SELECT state FROM outbox WHERE case_id=?", -1, &st, NULL) !=
            SQLITE_OK) {
        sqlite3_finalize(st);
        return;
    }
    DIR *d = opendir(p);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        sqlite3_reset(st);
        if (sqlite3_bind_text(st, 1, e->d_name, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(st, 0);
            if (state != NULL && strcmp(state, "acked") == 0) {
                remove_spool_dir(cfg, e->d_name);
            }
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    sqlite3_finalize(st);
}

/* What happened to one attempt, with its audit record, inside the caller's transaction. */
static int record_one(const struct rdx_tp_sender *s, sqlite3 *db, struct job *j, char *detail,
                      size_t detailsz)
{
    const rdx_transport_config *cfg = s->cfg;
    const struct rdx_tp_manifest *m = &j->m;
    int64_t now = rdx_clock_wall_ms();
    const char *state = "queued";
    int64_t next = 0;
    const char *event;
    int outcome;
    int attempts = j->oc == HELD ? j->attempts : j->attempts + 1;
    if (j->oc == HELD) {
        next = now + (cfg->retry_max_ms < HELD_RETRY_MS ? cfg->retry_max_ms : HELD_RETRY_MS);
        event = NULL;
        outcome = RDX_TP_OUTCOME_MINOR;
        setwhy(detail, detailsz, "held, not counted as an attempt (%d so far): %s", attempts,
               j->why);
    } else if (j->oc == DELIVERED) {
        state = "acked";
        event = "case-acknowledged";
        outcome = RDX_TP_OUTCOME_SUCCESS;
        setwhy(detail, detailsz, "acknowledged by %s%s after %d attempt%s", m->recipient,
               j->dup ? " (it already had it)" : "", attempts, attempts == 1 ? "" : "s");
    } else if (j->oc == PERMANENT || (unsigned)attempts >= cfg->max_attempts) {
        state = "dead";
        event = "case-dead-lettered";
        outcome = RDX_TP_OUTCOME_SERIOUS;
        setwhy(detail, detailsz, "after %d attempt%s: %s", attempts, attempts == 1 ? "" : "s",
               j->why);
    } else {
        /* Capped exponential backoff with jitter, so that peers do not retry in lockstep. */
        uint64_t delay = cfg->retry_base_ms;
        for (int i = 1; i < attempts && delay < cfg->retry_max_ms; i++) {
            delay *= 2;
        }
        if (delay > cfg->retry_max_ms) {
            delay = cfg->retry_max_ms;
        }
        unsigned char r[2] = {0, 0};
        (void)RAND_bytes(r, 2);
        delay += (delay / 4) * (((unsigned)r[0] << 8 | r[1]) % 1000) / 1000;
        next = now + (int64_t)delay;
        event = "case-send-failed";
        outcome = RDX_TP_OUTCOME_MINOR;
        setwhy(detail, detailsz, "attempt %d: %s; retry in %llu ms", attempts, j->why,
               (unsigned long long)delay);
    }
    sqlite3_stmt *st = NULL;
    rdx_error err;
    int ok =
        sqlite3_prepare_v2(db,
                           "UPDATE outbox SET state=?, attempts=?, next_attempt_ms=?, "
                           "last_error=?, done_ms=? WHERE case_id=?",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int(st, 2, attempts) == SQLITE_OK &&
        sqlite3_bind_int64(st, 3, next) == SQLITE_OK &&
        (j->oc == DELIVERED ? sqlite3_bind_null(st, 4)
                            : sqlite3_bind_text(st, 4, j->why, -1, SQLITE_STATIC)) == SQLITE_OK &&
        (strcmp(state, "queued") == 0 ? sqlite3_bind_null(st, 5)
                                      : sqlite3_bind_int64(st, 5, now)) == SQLITE_OK &&
        sqlite3_bind_text(st, 6, m->case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    st = NULL;
    int chunked = 0;
    for (size_t i = 0; i < m->nitems; i++) {
        chunked |= rdx_tp_chunk_count(m->items[i].size, m->chunk_size) > 1;
    }
    if (ok && chunked && strcmp(state, "queued") != 0) {
        /* Nothing will be sent of it again (a requeued dead letter computes them anew). */
        ok = sqlite3_prepare_v2(db, "DELETE FROM outbox_checks WHERE case_id=?", -1, &st, NULL) ==
                 SQLITE_OK &&
             sqlite3_bind_text(st, 1, m->case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    ok = ok && (event == NULL || rdx_tp_audit(db, cfg->id, event, outcome, m->recipient, m->case_id,
                                              detail, &err) == RDX_OK);
    return ok;
}

/*
 * Record a batch in one transaction (one sync at the sender for all of it).
 * If it fails, the cases stay queued: acknowledged ones are sent again and
 * the receiver answers them as duplicates, so nothing is lost or doubled.
 */
static void record_batch(const struct rdx_tp_sender *s, sqlite3 *db, struct janitor *jan,
                         struct job *jobs, size_t n)
{
    if (atomic_load(&s->stop)) {
        /*
         * The stop cut the connection (shutdown): a failure now is that cut,
         * not the peer's. Such a case stays as it was, neither counted nor
         * delayed; what the receiver acknowledged or refused is recorded.
         */
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].st == JOB_DONE && jobs[i].oc == RETRY) {
                jobs[i].st = JOB_SKIPPED;
            }
        }
    }
    char(*detail)[600] = rdx_callocarray(n, sizeof *detail);
    int ok = detail != NULL && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < n; i++) {
        if (jobs[i].st == JOB_DONE) {
            ok = record_one(s, db, &jobs[i], detail[i], sizeof detail[i]);
        }
    }
    ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        rdx_log(&s->log, RDX_LOG_ERROR, "outbox update for %zu cases failed: %s", n,
                sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        free(detail);
        return;
    }
    size_t held = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].st != JOB_DONE) {
            continue;
        }
        if (jobs[i].oc == HELD) {
            if (held++ == 0) {
                rdx_log(&s->log, RDX_LOG_ERROR,
                        "cases to %s held (not counted as attempts) until this node's own CRL, "
                        "certificate and key can be used again: %s",
                        jobs[i].m.recipient, jobs[i].why);
            }
            continue;
        }
        rdx_log(&s->log, jobs[i].oc == DELIVERED ? RDX_LOG_INFO : RDX_LOG_WARN, "case %s to %s: %s",
                jobs[i].m.case_id, jobs[i].m.recipient, detail[i]);
        if (jobs[i].oc == DELIVERED) {
            janitor_add(jan, jobs[i].m.case_id);
        }
    }
    free(detail);
}

/*
 * The link values recorded when j was queued. A missing or malformed row
 * (or one of per-chunk values from an older rdx: another length) is no
 * error: stream_items computes the values from the spool copy.
 */
static void load_checks(sqlite3 *db, struct job *j)
{
    sqlite3_stmt *st = NULL;
    int chunked = 0;
    uint32_t stride = rdx_tp_link_stride(j->m.chunk_size);
    for (size_t i = 0; i < j->m.nitems; i++) {
        chunked |= rdx_tp_chunk_count(j->m.items[i].size, stride) > 1;
    }
    if (!chunked) {
        return; /* one stride per item: its check value is the item digest */
    }
    if (sqlite3_prepare_v2(db, "SELECT idx, checks FROM outbox_checks WHERE case_id=?", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, j->m.case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_finalize(st);
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        sqlite3_int64 idx = sqlite3_column_int64(st, 0);
        if (idx < 0 || (size_t)idx >= j->m.nitems || j->m.items[idx].checks != NULL) {
            continue;
        }
        struct rdx_tp_item *it = &j->m.items[idx];
        size_t want = rdx_tp_chunk_count(it->size, stride) * 32;
        const void *b = sqlite3_column_blob(st, 1);
        if (b == NULL || (size_t)sqlite3_column_bytes(st, 1) != want ||
            memcmp((const uint8_t *)b + want - 32, it->sha256, 32) != 0) {
            continue; /* not this manifest's values: computed again when sent */
        }
        it->checks = malloc(want);
        if (it->checks != NULL) {
            memcpy(it->checks, b, want);
        }
    }
    sqlite3_finalize(st);
}

/* ---- the delivery threads ------------------------------------------------- */

/* Without the kick FIFO (it could not be made), idle threads look this often, as they used to. */
#define WAKE_POLL_MS 100
/* The FIFO in the data directory that rdx_tp_outbox_kick writes to. */
#define KICK_NAME "outbox.kick"
/* Unreadable manifests one look dead-letters at most (the rest go at the next look). */
#define UNREADABLE_MAX 16

/* One delivery thread. */
struct worker {
    struct rdx_tp_sender *s;
    unsigned index;
    pthread_t th;
    sqlite3 *db; /* its own connection to node.db (worker_main's), for the CRL mark */
    /* Guarded by the delivery's mu: */
    char peer[RDX_TRANSPORT_INST_ID_MAX + 1]; /* the recipient it has claimed; "" none */
    int fd;                                   /* its connection's socket; -1 none */
};

static sqlite3 *worker_db(const struct worker *w)
{
    return w != NULL ? w->db : NULL;
}

struct rdx_tp_delivery {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* on CLOCK_MONOTONIC; signalled by every wake-up and the stop */
    unsigned long long gen;   /* under mu: counts wake-ups, so none falls between look and sleep */
    unsigned idle;            /* under mu: threads asleep in idle_wait */
    unsigned idle_ms;         /* under mu: RDX_TP_WAKE_FALLBACK_MS, or WAKE_POLL_MS without FIFO */
    unsigned long long kicks; /* under mu: wake-ups from the FIFO (logged at the stop) */
    struct worker *w;
    unsigned nw, started;
    struct janitor jan;
    int kick_fd; /* DATA/outbox.kick, open for reading and writing; -1 when there is none */
    pthread_t wake_th;
    int wake_started;
    /*
     * Under mu: the newest CRL any delivery thread has used (its own copy,
     * first of the one in force when delivery started; NULL: none yet). A
     * CRL file older than this one is refused (crl_admit).
     */
    X509_CRL *crl_newest;
};

/*
 * Whether the CRL in store, just loaded from this node's CRL file, may be
 * used: DELIVERED unless it is older than the newest CRL a delivery thread
 * has used (its CRL number is lower, or lastUpdate earlier), which could
 * un-revoke a peer, or than node.db's mark of the newest CRL this node has
 * put in force (looked at, through the thread's db, only for a CRL newer
 * than delivery's newest); then HELD, with why naming the file. A newer one
 * becomes the newest, and node.db's mark.
 */
/* Make crl the newest (a copy: crl belongs to its caller) if it is newer (d->mu held). */
static void crl_newer(struct rdx_tp_delivery *d, X509_CRL *crl)
{
    char older[300];
    if (d->crl_newest == NULL || rdx_tp_crl_older(d->crl_newest, crl, older, sizeof older)) {
        X509_CRL *copy = X509_CRL_dup(crl);
        if (copy != NULL) {
            X509_CRL_free(d->crl_newest);
            d->crl_newest = copy;
        }
    }
}

static enum outcome crl_admit(const struct rdx_tp_sender *s, sqlite3 *db, X509_STORE *store,
                              char *why, size_t whysz)
{
    struct rdx_tp_delivery *d = s->d;
    X509_CRL *crl = rdx_tp_trust_store_crl(store);
    char older[300];
    if (d == NULL || crl == NULL) {
        return DELIVERED;
    }
    pthread_mutex_lock(&d->mu);
    int old = rdx_tp_crl_older(crl, d->crl_newest, older, sizeof older);
    int newer = !old && (d->crl_newest == NULL ||
                         rdx_tp_crl_older(d->crl_newest, crl, older, sizeof older));
    pthread_mutex_unlock(&d->mu);
    if (old) {
        setwhy(why, whysz, "this node's CRL cannot be used: %s: an older CRL is refused: %s",
               s->cfg->crl, older);
        return HELD;
    }
    if (newer && db != NULL) {
        /*
         * New to delivery: node.db's mark (the newest CRL this node has put
         * in force, also before a restart) has its say, and is raised. Rare
         * (once per new CRL), so node.db is not asked for every connection.
         */
        rdx_error err;
        rdx_status st = rdx_tp_crl_mark_admit_tx(db, store, s->cfg->crl, "node.db", &err);
        if (st == RDX_EAUTH) {
            setwhy(why, whysz, "this node's CRL cannot be used: %s", err.msg);
            return HELD;
        }
        if (st != RDX_OK) {
            rdx_log(&s->log, RDX_LOG_ERROR, "delivery: %s: not recorded as the newest CRL: %s",
                    s->cfg->crl, err.msg);
        }
    }
    if (newer) {
        pthread_mutex_lock(&d->mu);
        crl_newer(d, crl);
        pthread_mutex_unlock(&d->mu);
    }
    return DELIVERED;
}

/*
 * RFC 5280 section 6.3.3 (a)(2): a CRL whose thisUpdate (lastUpdate) is
 * still to come cannot be used, and OpenSSL fails every handshake with it
 * (X509_V_ERR_CRL_NOT_YET_VALID). That is this node's CRL, not the peer:
 * the cases are held, as while it is expired, with no connection made, and
 * go once the time comes or a current CRL is published. Either clock may be
 * wrong (this node's behind, or the CA's ahead): why says when it starts.
 */
static enum outcome crl_not_yet(const struct rdx_tp_sender *s, X509_STORE *store, const char *peer,
                                char *why, size_t whysz)
{
    X509_CRL *crl = rdx_tp_trust_store_crl(store);
    int64_t from = crl != NULL ? rdx_tp_asn1_time_unix(X509_CRL_get0_lastUpdate(crl)) : 0;
    int64_t now = rdx_clock_wall_ms() / 1000;
    if (from <= now) {
        return DELIVERED;
    }
    char when[32];
    rdx_tp_time_text(from, when, sizeof when);
    setwhy(why, whysz,
           "this node's CRL %s is not yet valid (from %s, in %lld s: is this node's clock or the "
           "CA's wrong?), so %s cannot be checked",
           s->cfg->crl, when, (long long)(from - now), peer);
    return HELD;
}

void rdx_tp_sender_crl_loaded(struct rdx_tp_sender *s, X509_CRL *crl)
{
    struct rdx_tp_delivery *d = s != NULL ? s->d : NULL;
    if (d == NULL || crl == NULL) {
        return;
    }
    pthread_mutex_lock(&d->mu);
    crl_newer(d, crl);
    pthread_mutex_unlock(&d->mu);
}

static void link_watch(struct link *l)
{
    struct worker *w = l->w;
    if (w == NULL || l->fd < 0) {
        return;
    }
    struct rdx_tp_delivery *d = w->s->d;
    pthread_mutex_lock(&d->mu);
    w->fd = l->fd;
    if (atomic_load(&w->s->stop)) {
        (void)shutdown(l->fd, SHUT_RDWR); /* the stop went by before this socket was seen */
    }
    pthread_mutex_unlock(&d->mu);
}

static void link_unwatch(struct link *l)
{
    struct worker *w = l->w;
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->s->d->mu);
    w->fd = -1;
    pthread_mutex_unlock(&w->s->d->mu);
}

/*
 * Wake one idle thread (d->mu held). One, not all: the woken thread wakes
 * the next when it finds work (a cascade), so a wake-up costs one look, not
 * a look by every idle thread. The generation moves for all: a thread just
 * about to sleep sees it and looks again instead.
 */
static void wake_one(struct rdx_tp_delivery *d)
{
    d->gen++;
    if (d->idle > 0) {
        pthread_cond_signal(&d->cv);
    }
}

/* Whether a thread other than w has recipient (d->mu held). */
static int held_by_other(const struct rdx_tp_delivery *d, const struct worker *w,
                         const char *recipient)
{
    for (unsigned k = 0; k < d->nw; k++) {
        if (&d->w[k] != w && strcmp(d->w[k].peer, recipient) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * Claim recipient for w: 1 when no other thread has it (it is then w's), 0
 * when one has. w keeps its recipient from one batch to the next, and lets
 * it go only at a look (this claim, or release_peer), that is after it has
 * committed the outcomes of its last batch: whoever takes the recipient next
 * reads its cases after that commit, so never one w has finished.
 */
static int claim_peer(struct worker *w, const char *recipient)
{
    struct rdx_tp_delivery *d = w->s->d;
    pthread_mutex_lock(&d->mu);
    int mine = !held_by_other(d, w, recipient);
    if (mine && strcmp(w->peer, recipient) != 0) {
        if (w->peer[0] != '\0' && d->idle > 0) {
            wake_one(d); /* the one w lets go may have cases an idle thread left to w */
        }
        snprintf(w->peer, sizeof w->peer, "%s", recipient);
    }
    pthread_mutex_unlock(&d->mu);
    return mine;
}

/* w has nothing due: it lets its recipient go (see claim_peer). */
static void release_peer(struct worker *w)
{
    struct rdx_tp_delivery *d = w->s->d;
    pthread_mutex_lock(&d->mu);
    if (w->peer[0] != '\0') {
        w->peer[0] = '\0';
        if (d->idle > 0) {
            wake_one(d);
        }
    }
    pthread_mutex_unlock(&d->mu);
}

/* Whether recipient is free for w to take (not held by another thread). */
static int peer_free(struct worker *w, const char *recipient)
{
    struct rdx_tp_delivery *d = w->s->d;
    pthread_mutex_lock(&d->mu);
    int free_ = !held_by_other(d, w, recipient);
    pthread_mutex_unlock(&d->mu);
    return free_;
}

/* w found work: if a thread is asleep, it looks for another recipient's. */
static void pass_on(struct worker *w)
{
    struct rdx_tp_delivery *d = w->s->d;
    pthread_mutex_lock(&d->mu);
    if (d->idle > 0) {
        wake_one(d);
    }
    pthread_mutex_unlock(&d->mu);
}

static unsigned long long wake_gen(struct rdx_tp_delivery *d)
{
    pthread_mutex_lock(&d->mu);
    unsigned long long g = d->gen;
    pthread_mutex_unlock(&d->mu);
    return g;
}

/*
 * Sleep until a wake-up newer than gen, the stop, wall-clock time next_ms
 * (0: none) or the fallback, whichever comes first.
 */
static void idle_wait(struct rdx_tp_sender *s, unsigned long long gen, int64_t next_ms)
{
    struct rdx_tp_delivery *d = s->d;
    pthread_mutex_lock(&d->mu);
    int64_t wait = d->idle_ms;
    if (next_ms > 0 && next_ms - rdx_clock_wall_ms() < wait) {
        wait = next_ms - rdx_clock_wall_ms();
    }
    if (wait > 0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += (time_t)(wait / 1000);
        t.tv_nsec += (long)(wait % 1000) * 1000000L;
        t.tv_sec += t.tv_nsec / 1000000000L;
        t.tv_nsec %= 1000000000L;
        d->idle++;
        int rc = 0;
        while (rc != ETIMEDOUT && d->gen == gen && !atomic_load(&s->stop)) {
            rc = pthread_cond_timedwait(&d->cv, &d->mu, &t);
        }
        d->idle--;
    }
    pthread_mutex_unlock(&d->mu);
}

/*
 * A queued case whose manifest cannot be read can never be sent: it is
 * dead-lettered at once (audited, shown by `rdx case status`), so that it
 * neither holds up its recipient's other cases nor keeps waking the threads.
 */
static void dead_letter_unreadable(const struct rdx_tp_sender *s, sqlite3 *db, const char *case_id,
                                   const char *recipient, const char *why)
{
    sqlite3_stmt *st = NULL;
    char detail[600];
    rdx_error err;
    setwhy(detail, sizeof detail, "the outbox holds an unreadable manifest: %s", why);
    int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
             sqlite3_prepare_v2(db,
                                "UPDATE outbox SET state='dead', last_error=?, done_ms=? WHERE "
                                "case_id=? AND state='queued'",
                                -1, &st, NULL) == SQLITE_OK &&
             sqlite3_bind_text(st, 1, detail, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 2, rdx_clock_wall_ms()) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    ok = ok && rdx_tp_audit(db, s->cfg->id, "case-dead-lettered", RDX_TP_OUTCOME_SERIOUS, recipient,
                            case_id, detail, &err) == RDX_OK;
    ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        rdx_log(&s->log, RDX_LOG_ERROR, "case %s: %s; not dead-lettered: %s", case_id, detail,
                sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return;
    }
    rdx_log(&s->log, RDX_LOG_ERROR, "case %s to %s: dead-lettered: %s", case_id, recipient, detail);
}

/*
 * Due cases (at most PIPE_MAX) for one recipient that no other thread has;
 * that recipient is then w's (see claim_peer). *looked gets the time the due
 * cases were chosen by; *more is set when another free recipient has due
 * cases too.
 */
static size_t due_jobs(const struct rdx_tp_sender *s, struct worker *w, sqlite3 *db,
                       const char *peer, struct job *jobs, int64_t *looked, int *more)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0, nbad = 0;
    char rcp[RDX_TRANSPORT_INST_ID_MAX + 1] = "";
    struct {
        char id[RDX_TRANSPORT_CASE_ID_MAX + 1];
        char why[256];
    } bad[UNREADABLE_MAX];
    int64_t now = rdx_clock_wall_ms();
    *looked = now;
    *more = 0;
    /*
     * 1. The recipients with due cases, the one waiting longest first (the
     * connected one among equals, to keep its connection): claim the first
     * that nobody has. Longest first, so a peer that keeps getting cases
     * cannot keep a thread from the others.
     */
    if (sqlite3_prepare_v2(db,
                           "SELECT recipient, min(next_attempt_ms) AS due, min(created_ms) AS "
                           "oldest FROM outbox WHERE state='queued' AND next_attempt_ms <= ? "
                           "GROUP BY recipient ORDER BY due, oldest, (recipient = ?) DESC",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, peer, -1, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    while (!*more && sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r == NULL || strlen(r) >= sizeof rcp) {
            continue;
        }
        if (rcp[0] == '\0') {
            if (claim_peer(w, r)) {
                snprintf(rcp, sizeof rcp, "%s", r);
            }
        } else {
            *more = peer_free(w, r);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rcp[0] == '\0') {
        release_peer(w);
        return 0;
    }
    /*
     * 2. Its cases, read only now, in a read transaction that begins after
     * the claim: the thread that had this recipient before committed its
     * outcomes before it let go, so a case it finished is not taken again.
     */
    if (sqlite3_prepare_v2(db,
                           "SELECT manifest, attempts, case_id FROM outbox WHERE state='queued' "
                           "AND next_attempt_ms <= ? AND recipient = ? ORDER BY next_attempt_ms, "
                           "created_ms LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, rcp, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(st, 3, PIPE_MAX) != SQLITE_OK) {
        sqlite3_finalize(st);
        release_peer(w);
        return 0;
    }
    while (n < PIPE_MAX && sqlite3_step(st) == SQLITE_ROW) {
        struct job *j = &jobs[n];
        rdx_error err;
        memset(j, 0, sizeof *j);
        j->bloblen = (size_t)sqlite3_column_bytes(st, 0);
        j->blob = malloc(j->bloblen + 1);
        if (j->blob == NULL) {
            break;
        }
        memcpy(j->blob, sqlite3_column_blob(st, 0), j->bloblen);
        j->attempts = sqlite3_column_int(st, 1);
        rdx_status ds = rdx_tp_manifest_decode(j->blob, j->bloblen, &j->m, &err);
        if (ds != RDX_OK) {
            const char *cid = (const char *)sqlite3_column_text(st, 2);
            if (ds != RDX_ENOMEM && cid != NULL && strlen(cid) < sizeof bad[0].id &&
                nbad < UNREADABLE_MAX) {
                snprintf(bad[nbad].id, sizeof bad[nbad].id, "%s", cid);
                setwhy(bad[nbad].why, sizeof bad[nbad].why, "%s", err.msg);
                nbad++;
            }
            free(j->blob);
            continue;
        }
        load_checks(db, j);
        n++;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < nbad; i++) {
        dead_letter_unreadable(s, db, bad[i].id, rcp, bad[i].why);
    }
    if (n == 0) {
        release_peer(w);
    }
    return n;
}

/* The earliest retry after looked (wall-clock ms), or 0 when none is scheduled. */
static int64_t next_due(sqlite3 *db, int64_t looked)
{
    sqlite3_stmt *st = NULL;
    int64_t next = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT min(next_attempt_ms) FROM outbox WHERE state='queued' AND "
                           "next_attempt_ms > ?",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int64(st, 1, looked) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL) {
        next = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return next;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rdx_tp_sender *s = w->s;
    struct rdx_tp_delivery *d = s->d;
    sqlite3 *db = NULL;
    rdx_error err;
    (void)pthread_setname_np(pthread_self(), "rdx-deliver");
    while (!atomic_load(&s->stop) && rdx_tp_node_db_open(s->cfg->data, &db, &err) != RDX_OK) {
        rdx_log(&s->log, RDX_LOG_ERROR, "delivery: %s", err.msg);
        sqlite3_close(db);
        db = NULL;
        idle_wait(s, wake_gen(d), rdx_clock_wall_ms() + 1000);
    }
    w->db = db;
    struct link l;
    memset(&l, 0, sizeof l);
    l.fd = -1;
    l.w = w;
    struct job *jobs = rdx_callocarray(PIPE_MAX, sizeof *jobs);
    if (jobs == NULL) {
        rdx_log(&s->log, RDX_LOG_ERROR, "delivery thread %u: out of memory", w->index + 1);
    }
    if (db != NULL && w->index == 0) {
        sweep_spool(s->cfg, db);
    }
    while (db != NULL && jobs != NULL && !atomic_load(&s->stop)) {
        /* The generation first: a wake-up after it, even during the look, ends the sleep. */
        unsigned long long gen = wake_gen(d);
        int64_t looked = 0;
        int more = 0;
        size_t n = due_jobs(s, w, db, l.peer, jobs, &looked, &more);
        if (n == 0) {
            link_close(&l, 1); /* nothing due: do not hold an idle connection */
            idle_wait(s, gen, next_due(db, looked));
            continue;
        }
        if (more) {
            pass_on(w); /* another recipient waits too: a thread asleep takes it */
        }
        deliver_batch(s, &l, jobs, n);
        record_batch(s, db, &d->jan, jobs, n);
        for (size_t i = 0; i < n; i++) {
            rdx_tp_manifest_clear(&jobs[i].m);
            free(jobs[i].blob);
        }
    }
    release_peer(w);
    free(jobs);
    link_close(&l, 1);
    w->db = NULL;
    sqlite3_close(db);
    return NULL;
}

/*
 * The wake-up thread: reads the kick FIFO and wakes an idle delivery
 * thread. All the bytes there are read before the wake-up, so a kick that
 * comes later is seen by the next poll, never lost between the two.
 */
static void *wake_main(void *arg)
{
    struct rdx_tp_sender *s = arg;
    struct rdx_tp_delivery *d = s->d;
    uint8_t buf[512];
    (void)pthread_setname_np(pthread_self(), "rdx-wake");
    /* The stop sets s->stop before its byte: seen here whether or not the drain took the byte. */
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {d->kick_fd, POLLIN, 0};
        int r = poll(&p, 1, -1);
        if (atomic_load(&s->stop)) {
            break;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 || (p.revents & (POLLERR | POLLNVAL)) != 0) {
            rdx_log(&s->log, RDX_LOG_ERROR,
                    "delivery: %s/" KICK_NAME " failed (%s); looking every %d ms instead",
                    s->cfg->data, r < 0 ? strerror(errno) : "poll error", WAKE_POLL_MS);
            pthread_mutex_lock(&d->mu);
            d->idle_ms = WAKE_POLL_MS;
            pthread_mutex_unlock(&d->mu);
            break;
        }
        ssize_t got;
        while ((got = read(d->kick_fd, buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR)) {
        }
        pthread_mutex_lock(&d->mu);
        d->kicks++;
        wake_one(d);
        pthread_mutex_unlock(&d->mu);
    }
    return NULL;
}

/*
 * Make (or take over) DATA/outbox.kick and open it for reading and writing:
 * while this node holds it open, a writer's non-blocking open succeeds and
 * its byte wakes the node; with the node gone the open fails (ENXIO) and
 * the writer goes on. Linux allows O_RDWR on a FIFO, and it keeps the FIFO
 * from ever reporting hang-up. -1 with why set on failure.
 */
static int kick_open(const rdx_transport_config *cfg, char *why, size_t whysz)
{
    char p[4200];
    struct stat sb;
    if (rdx_tp_path(p, sizeof p, NULL, "%s/" KICK_NAME, cfg->data) != RDX_OK) {
        setwhy(why, whysz, "%s/" KICK_NAME ": path too long", cfg->data);
        return -1;
    }
    if (lstat(p, &sb) == 0 && !S_ISFIFO(sb.st_mode) && unlink(p) != 0) {
        setwhy(why, whysz, "%s: not a FIFO, and cannot be removed: %s", p, strerror(errno));
        return -1;
    }
    if (mkfifo(p, 0600) != 0 && errno != EEXIST) {
        setwhy(why, whysz, "cannot make the FIFO %s: %s", p, strerror(errno));
        return -1;
    }
    int fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISFIFO(sb.st_mode)) {
        setwhy(why, whysz, "cannot open the FIFO %s: %s", p, fd < 0 ? strerror(errno) : "not one");
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

void rdx_tp_outbox_kick(const char *data_dir)
{
    char p[4200];
    struct stat sb;
    if (data_dir == NULL || rdx_tp_path(p, sizeof p, NULL, "%s/" KICK_NAME, data_dir) != RDX_OK) {
        return;
    }
    /* No O_CREAT: without a node there is nobody to wake, and nothing to leave behind. */
    int fd = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return; /* ENXIO: no node has it open; ENOENT: no node ever ran here */
    }
    if (fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode)) {
        /*
         * The node may close its end between our open and write: the write
         * then fails with EPIPE and raises SIGPIPE, which must not kill the
         * process that queued the case. Block it around the write and take
         * it back if this write raised it (one already pending is left).
         */
        sigset_t pipe, pending, old;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        sigemptyset(&pending);
        int blocked = pthread_sigmask(SIG_BLOCK, &pipe, &old) == 0;
        int was_pending = blocked && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
        ssize_t r;
        do {
            r = write(fd, "k", 1);
        } while (r < 0 && errno == EINTR);
        if (blocked) {
            if (r < 0 && errno == EPIPE && !was_pending) {
                const struct timespec zero = {0, 0};
                (void)sigtimedwait(&pipe, NULL, &zero);
            }
            (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
    }
    close(fd);
}

static void janitor_start(struct janitor *j, const rdx_transport_config *cfg)
{
    memset(j, 0, sizeof *j);
    j->cfg = cfg;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        return; /* no janitor: the delivery threads remove the spool copies themselves */
    }
    if (pthread_cond_init(&j->cv, NULL) == 0) {
        j->started = pthread_create(&j->th, NULL, janitor_main, j) == 0;
        if (!j->started) {
            pthread_cond_destroy(&j->cv);
        }
    }
    if (!j->started) {
        pthread_mutex_destroy(&j->mu);
    }
}

static void janitor_stop(struct janitor *j)
{
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stop = 1;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->th, NULL); /* it finishes the removals it was given */
        pthread_cond_destroy(&j->cv);
        pthread_mutex_destroy(&j->mu);
        j->started = 0;
    }
    free(j->ids);
    j->ids = NULL;
}

rdx_status rdx_tp_sender_start(struct rdx_tp_sender *s, rdx_error *err)
{
    const rdx_transport_config *cfg = s->cfg;
    unsigned nw = cfg->senders > 0 ? cfg->senders : 1;
    char why[4400];
    if (s->d != NULL) {
        return rdx_error_set(err, RDX_EINTERNAL, "delivery is running already");
    }
    atomic_store(&s->stop, 0);
    struct rdx_tp_delivery *d = calloc(1, sizeof *d);
    struct worker *w = rdx_callocarray(nw, sizeof *w);
    /* A copy of its own: the loop's stays the loop's. */
    X509_CRL *crl = s->crl != NULL ? X509_CRL_dup(s->crl) : NULL;
    pthread_condattr_t ca;
    if (d == NULL || w == NULL || (s->crl != NULL && crl == NULL)) {
        free(d);
        free(w);
        X509_CRL_free(crl);
        return rdx_error_set(err, RDX_ENOMEM, "delivery: out of memory");
    }
    d->crl_newest = crl;
    int attr = pthread_condattr_init(&ca) == 0;
    int mu = attr && pthread_mutex_init(&d->mu, NULL) == 0;
    int cv = mu && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&d->cv, &ca) == 0;
    if (attr) {
        pthread_condattr_destroy(&ca);
    }
    if (!cv) {
        if (mu) {
            pthread_mutex_destroy(&d->mu);
        }
        X509_CRL_free(d->crl_newest);
        free(d);
        free(w);
        return rdx_error_set(err, RDX_EINTERNAL, "delivery: cannot make a mutex or condition");
    }
    d->w = w;
    d->nw = nw;
    d->idle_ms = RDX_TP_WAKE_FALLBACK_MS;
    s->d = d;
    for (unsigned k = 0; k < nw; k++) {
        w[k].s = s;
        w[k].index = k;
        w[k].fd = -1;
    }
    janitor_start(&d->jan, cfg);
    d->kick_fd = kick_open(cfg, why, sizeof why);
    if (d->kick_fd >= 0) {
        d->wake_started = pthread_create(&d->wake_th, NULL, wake_main, s) == 0;
        if (!d->wake_started) {
            setwhy(why, sizeof why, "cannot start its thread");
            close(d->kick_fd); /* writers then find no reader, not a FIFO filling up */
            d->kick_fd = -1;
        }
    }
    if (!d->wake_started) {
        rdx_log(&s->log, RDX_LOG_WARN, "delivery: no wake-up (%s); looking every %d ms instead",
                why, WAKE_POLL_MS);
        d->idle_ms = WAKE_POLL_MS;
    }
    for (unsigned k = 0; k < nw; k++) {
        if (pthread_create(&w[k].th, NULL, worker_main, &w[k]) != 0) {
            rdx_tp_sender_stop(s);
            return rdx_error_set(err, RDX_EINTERNAL, "cannot start delivery thread %u of %u", k + 1,
                                 nw);
        }
        d->started = k + 1;
    }
    rdx_log(&s->log, RDX_LOG_INFO, "delivery: %u thread%s, one peer each at a time", nw,
            nw == 1 ? "" : "s");
    return RDX_OK;
}

void rdx_tp_sender_stop(struct rdx_tp_sender *s)
{
    struct rdx_tp_delivery *d = s != NULL ? s->d : NULL;
    if (d == NULL) {
        return;
    }
    atomic_store(&s->stop, 1);
    pthread_mutex_lock(&d->mu);
    for (unsigned k = 0; k < d->started; k++) {
        if (d->w[k].fd >= 0) {
            (void)shutdown(d->w[k].fd, SHUT_RDWR); /* a blocked read or write returns now */
        }
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->wake_started) {
        ssize_t r;
        do {
            r = write(d->kick_fd, "s", 1); /* full: it is readable anyway */
        } while (r < 0 && errno == EINTR);
    }
    for (unsigned k = 0; k < d->started; k++) {
        pthread_join(d->w[k].th, NULL);
    }
    if (d->wake_started) {
        pthread_join(d->wake_th, NULL);
    }
    if (d->kick_fd >= 0) {
        close(d->kick_fd);
    }
    janitor_stop(&d->jan);
    rdx_log(&s->log, RDX_LOG_INFO,
            "delivery stopped: %u thread%s, woken %llu time%s by queued cases", d->started,
            d->started == 1 ? "" : "s", d->kicks, d->kicks == 1 ? "" : "s");
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    X509_CRL_free(d->crl_newest);
    free(d->w);
    free(d);
    s->d = NULL;
}
