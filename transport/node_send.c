/*
 * The delivery thread: takes due cases from the outbox and sends each over a
 * fresh TLS 1.3 connection (blocking I/O with socket timeouts; one case at a
 * time). The sender keeps a case until the receiver's ACK names it; it then
 * marks it acknowledged in the same transaction as the audit record. Any
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
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

enum outcome { DELIVERED, RETRY, PERMANENT };

/*
 * One TLS connection to one peer. It is kept open from one case to the next
 * while cases for that peer are due (no handshake per case), and closed after
 * any failure, since the receiver closes after every refusal.
 */
struct link {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    rdx_transport_decoder *dec;
    char peer[RDX_TRANSPORT_INST_ID_MAX + 1];
    struct rdx_tp_verdict verdict;
    uint8_t in[16384];
    size_t in_len, in_off;
};

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

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
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

/* Put the buffering BIO in front of the socket once the handshake is done. */
static void link_batch_writes(SSL *ssl)
{
    BIO *sock = SSL_get_wbio(ssl);
    BIO *buf = BIO_new(BIO_f_buffer());
    if (sock == NULL || buf == NULL || BIO_set_write_buffer_size(buf, SEND_BATCH) != 1 ||
        BIO_up_ref(sock) != 1) {
        BIO_free(buf); /* unbuffered still works, one write per record */
        return;
    }
    /* The chain holds the socket BIO's new reference; set0 drops the old wbio one. */
    BIO_push(buf, sock);
    SSL_set0_wbio(ssl, buf);
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
 * The check values of item idx when the queue did not record them (a case
 * queued by an older rdx): one pass over the spool copy. 0 on success.
 */
static int compute_checks(const char *path, const struct rdx_tp_manifest *m, size_t idx,
                          uint8_t *buf, size_t bufsz, uint8_t **out)
{
    const struct rdx_tp_item *it = &m->items[idx];
    size_t k = rdx_tp_chunk_count(it->size, m->chunk_size);
    uint8_t *v = rdx_callocarray(k > 0 ? k : 1, 32);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct rdx_tp_sha h;
    int ok = v != NULL && fd >= 0;
    rdx_tp_sha_init(&h);
    for (size_t c = 0; ok && c < k; c++) {
        uint64_t end = (uint64_t)(c + 1) * m->chunk_size;
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
        if (checks == NULL && rdx_tp_chunk_count(m->items[i].size, m->chunk_size) == 1) {
            checks = m->items[i].sha256; /* one chunk: its check value is the item's digest */
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
            memset(&ch, 0, sizeof ch);
            snprintf(ch.case_id, sizeof ch.case_id, "%s", m->case_id);
            ch.item = (uint16_t)i;
            ch.offset = off;
            ch.len = n;
            /* Computed when the case was queued: sending costs no hashing. */
            memcpy(ch.sha256, checks + 32 * (size_t)(off / m->chunk_size), 32);
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
    /* A fresh context per connection picks up a newly published CRL. */
    if (rdx_tp_tls_ctx(cfg, 0, &l->ctx, &err) != RDX_OK) {
        setwhy(why, whysz, "%s", err.msg);
        return RETRY;
    }
    if (rdx_transport_decoder_new(RDX_TRANSPORT_CONTROL_MAX, &l->dec, &err) != RDX_OK) {
        setwhy(why, whysz, "out of memory");
        return RETRY;
    }
    if ((l->fd = tcp_connect(peer, cfg->handshake_ms, cfg->read_ms, why, whysz)) < 0) {
        return RETRY;
    }
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
        return RETRY;
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
    link_batch_writes(l->ssl);
    return DELIVERED;
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
    int attempts = j->attempts + 1;
    if (j->oc == DELIVERED) {
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
    ok = ok && rdx_tp_audit(db, cfg->id, event, outcome, m->recipient, m->case_id, detail, &err) ==
                   RDX_OK;
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
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].st != JOB_DONE) {
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
 * The chunk check values recorded when j was queued. A missing or malformed
 * row is no error: stream_items computes the values from the spool copy.
 */
static void load_checks(sqlite3 *db, struct job *j)
{
    sqlite3_stmt *st = NULL;
    int chunked = 0;
    for (size_t i = 0; i < j->m.nitems; i++) {
        chunked |= rdx_tp_chunk_count(j->m.items[i].size, j->m.chunk_size) > 1;
    }
    if (!chunked) {
        return; /* one chunk per item: its check value is the item digest */
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
        size_t want = rdx_tp_chunk_count(it->size, j->m.chunk_size) * 32;
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

/* Due cases for one recipient (the connected one first), at most PIPE_MAX. */
static size_t due_jobs(const struct rdx_tp_sender *s, sqlite3 *db, const char *peer,
                       struct job *jobs)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    char first[RDX_TRANSPORT_INST_ID_MAX + 1] = "";
    if (sqlite3_prepare_v2(db,
                           "SELECT manifest, attempts, recipient FROM outbox WHERE state='queued' "
                           "AND next_attempt_ms <= ? ORDER BY (recipient = ?) DESC, "
                           "next_attempt_ms, created_ms LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, rdx_clock_wall_ms()) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, peer, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(st, 3, PIPE_MAX) != SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    while (n < PIPE_MAX && sqlite3_step(st) == SQLITE_ROW) {
        const char *rcp = (const char *)sqlite3_column_text(st, 2);
        if (rcp == NULL) {
            continue;
        }
        if (first[0] == '\0') {
            snprintf(first, sizeof first, "%s", rcp);
        } else if (strcmp(first, rcp) != 0) {
            break;
        }
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
        if (rdx_tp_manifest_decode(j->blob, j->bloblen, &j->m, &err) != RDX_OK) {
            rdx_log(&s->log, RDX_LOG_ERROR, "outbox holds an unreadable manifest: %s", err.msg);
            free(j->blob);
            continue;
        }
        load_checks(db, j);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

void rdx_tp_sender_run(struct rdx_tp_sender *s)
{
    sqlite3 *db = NULL;
    rdx_error err;
    while (!atomic_load(&s->stop) && rdx_tp_node_db_open(s->cfg->data, &db, &err) != RDX_OK) {
        rdx_log(&s->log, RDX_LOG_ERROR, "delivery: %s", err.msg);
        sleep_ms(1000);
    }
    struct link l;
    memset(&l, 0, sizeof l);
    l.fd = -1;
    struct job *jobs = rdx_callocarray(PIPE_MAX, sizeof *jobs);
    struct janitor jan;
    memset(&jan, 0, sizeof jan);
    jan.cfg = s->cfg;
    if (db != NULL) {
        sweep_spool(s->cfg, db);
    }
    if (pthread_mutex_init(&jan.mu, NULL) == 0) {
        if (pthread_cond_init(&jan.cv, NULL) == 0) {
            jan.started = pthread_create(&jan.th, NULL, janitor_main, &jan) == 0;
            if (!jan.started) {
                pthread_cond_destroy(&jan.cv);
            }
        }
        if (!jan.started) {
            pthread_mutex_destroy(&jan.mu);
        }
    }
    while (jobs != NULL && !atomic_load(&s->stop)) {
        size_t n = due_jobs(s, db, l.peer, jobs);
        if (n == 0) {
            link_close(&l, 1); /* nothing due: do not hold an idle connection */
            sleep_ms(100);
            continue;
        }
        deliver_batch(s, &l, jobs, n);
        record_batch(s, db, &jan, jobs, n);
        for (size_t i = 0; i < n; i++) {
            rdx_tp_manifest_clear(&jobs[i].m);
            free(jobs[i].blob);
        }
    }
    free(jobs);
    if (jan.started) {
        pthread_mutex_lock(&jan.mu);
        jan.stop = 1;
        pthread_cond_signal(&jan.cv);
        pthread_mutex_unlock(&jan.mu);
        pthread_join(jan.th, NULL); /* it finishes the removals it was given */
        pthread_cond_destroy(&jan.cv);
        pthread_mutex_destroy(&jan.mu);
    }
    free(jan.ids);
    link_close(&l, 1);
    sqlite3_close(db);
}
