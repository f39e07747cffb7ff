/*
 * The node's server: a libevent loop with OpenSSL bufferevents accepting TLS
 * 1.3 connections from member institutions, verifying each peer against the
 * network CA and CRL, and receiving cases into the durable inbox.
 *
 * Per connection the memory is bounded: the input buffer stops reading at a
 * high-water mark, the frame decoder holds at most one frame (one chunk), and
 * one case is in flight. Timeouts: the handshake must finish within
 * handshake_timeout_ms; once a frame has begun, bytes must keep arriving
 * within read_timeout_ms; a connection with nothing in flight is closed after
 * idle_timeout_ms.
 *
 * Receiving a case (the sender drives it):
 *   OFFER(manifest)  -> checks: sender == certificate's institution, recipient
 *                       == this node, policy allows the kind; then ACK (already
 *                       complete: a duplicate, acknowledged again), PROGRESS
 *                       (bytes already durable per item) or REFUSE
 *   CHUNK ...        -> each chunk's SHA-256 checked, written at its offset,
 *                       fdatasync'd, and only then counted durable
 *   COMMIT           -> every item's size and SHA-256 checked over the file,
 *                       the case marked complete in one transaction with its
 *                       audit record, then ACK. The ACK is never sent before
 *                       the case is durable.
 */
#define _GNU_SOURCE
#include "transport_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

/* The input buffer stops reading from the socket above this: one TLS record's worth and more. */
#define INPUT_HIGH_WATER (256u << 10)

struct rx {
    int active;
    struct rdx_tp_manifest m;
    uint64_t *durable;
    char dir[4200];
    int fd;
    long fd_item;
};

struct conn {
    struct rdx_transport_node *node;
    struct conn *prev, *next; /* the node's list of open connections */
    struct bufferevent *bev;
    struct rdx_tp_verdict verdict;
    char addr[64];
    char peer[65];
    char serial[64];
    int authed;
    int closing;
    rdx_transport_decoder *dec;
    struct rx rx;
};

struct rdx_transport_node {
    const rdx_transport_config *cfg;
    rdx_logger log;
    struct event_base *base;
    struct evconnlistener *lst;
    struct event *sig_int, *sig_term, *stop_ev;
    SSL_CTX *sctx;
    struct timespec crl_mtime;
    off_t crl_size;
    sqlite3 *db;
    size_t nconns;
    struct conn *conns;
    unsigned port;
    struct rdx_tp_sender sender;
    pthread_t sender_thread;
    int sender_started;
};

/* ---- small helpers -------------------------------------------------------- */

static void audit(struct rdx_transport_node *n, const char *event, int outcome, const char *inst,
                  const char *object, const char *detail)
{
    rdx_error e;
    if (rdx_tp_audit(n->db, n->cfg->id, event, outcome, inst, object, detail, &e) != RDX_OK) {
        rdx_log(&n->log, RDX_LOG_ERROR, "audit record not written: %s", e.msg);
    }
}

static void send_frame(struct conn *c, unsigned type, const rdx_buf *payload)
{
    uint8_t hdr[RDX_TRANSPORT_FRAME_HDR];
    if (rdx_transport_frame_header(hdr, type, payload->len, NULL) != RDX_OK) {
        return;
    }
    bufferevent_write(c->bev, hdr, sizeof hdr);
    if (payload->len > 0) {
        bufferevent_write(c->bev, payload->data, payload->len);
    }
}

static void rx_reset(struct rx *rx)
{
    if (rx->fd >= 0) {
        close(rx->fd);
    }
    free(rx->durable);
    rdx_tp_manifest_clear(&rx->m);
    memset(rx, 0, sizeof *rx);
    rx->fd = -1;
    rx->fd_item = -1;
}

static void conn_free(struct conn *c)
{
    if (c == NULL) {
        return;
    }
    rx_reset(&c->rx);
    rdx_transport_decoder_free(c->dec);
    if (c->bev != NULL) {
        bufferevent_free(c->bev); /* closes the socket and frees the SSL */
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (c->node->conns == c) {
        c->node->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->node->nconns--;
    free(c);
}

static void free_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_free(arg);
}

static void drained_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        conn_free(c);
    }
}

static void event_cb(struct bufferevent *bev, short events, void *arg);

/* Stop reading; free the connection once what was queued for the peer is sent. */
static void close_after_flush(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, drained_cb, event_cb, c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        struct timeval zero = {0, 0};
        event_base_once(c->node->base, -1, EV_TIMEOUT, free_cb, c, &zero);
    }
}

static void refuse(struct conn *c, const char *case_id, unsigned code, int close_it,
                   const char *fmt, ...) RDX_PRINTF(5, 6);

static void refuse(struct conn *c, const char *case_id, unsigned code, int close_it,
                   const char *fmt, ...)
{
    char reason[RDX_TRANSPORT_REASON_MAX];
    va_list ap;
    rdx_buf b;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    rdx_buf_init(&b, RDX_TRANSPORT_CONTROL_MAX);
    if (rdx_tp_refuse_encode(case_id != NULL ? case_id : "", code, reason, &b, NULL) == RDX_OK) {
        send_frame(c, RDX_FRAME_REFUSE, &b);
    }
    rdx_buf_free(&b);
    rdx_log(&c->node->log, RDX_LOG_WARN, "refused %s%s from %s (%s): %s",
            case_id != NULL && case_id[0] ? "case " : "request", case_id != NULL ? case_id : "",
            c->peer, c->addr, reason);
    if (close_it) {
        close_after_flush(c);
    }
}

/* ---- the inbox ------------------------------------------------------------ */

static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static rdx_status mkdir_p2(const char *a, const char *b, char *out, size_t outsz, rdx_error *err)
{
    /* DATA/inbox/SENDER/CASE: each component already checked to be a safe name. */
    char p[4200];
    RDX_TRY(rdx_tp_path(p, sizeof p, err, "%s/inbox", a));
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", p, strerror(errno));
    }
    RDX_TRY(rdx_tp_path(out, outsz, err, "%s/inbox/%s", a, b));
    if (mkdir(out, 0700) == 0) {
        fsync_dir(p); /* the new directory entry must survive a crash too */
    } else if (errno != EEXIST) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", out, strerror(errno));
    }
    return RDX_OK;
}

/* Look (sender, case) up: 0 unknown, 1 receiving, 2 complete; *same: manifest bytes equal. */
static rdx_status inbox_lookup(sqlite3 *db, const char *sender, const char *case_id,
                               const uint8_t *blob, size_t len, int *state, int *same)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    *state = 0;
    *same = 0;
    if (sqlite3_prepare_v2(db, "SELECT state, manifest FROM inbox WHERE sender=? AND case_id=?", -1,
                           &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        st = RDX_EDB;
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *stt = (const char *)sqlite3_column_text(s, 0);
        *state = stt != NULL && strcmp(stt, "complete") == 0 ? 2 : 1;
        const void *b = sqlite3_column_blob(s, 1);
        size_t bl = (size_t)sqlite3_column_bytes(s, 1);
        *same = bl == len && (len == 0 || memcmp(b, blob, len) == 0);
    } else if (rc != SQLITE_DONE) {
        st = RDX_EDB;
    }
out:
    sqlite3_finalize(s);
    return st;
}

static rdx_status inbox_durable(sqlite3 *db, const char *sender, const char *case_id,
                                uint64_t *durable, size_t n)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db, "SELECT idx, durable FROM inbox_items WHERE sender=? AND case_id=?",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        st = RDX_EDB;
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sqlite3_int64 idx = sqlite3_column_int64(s, 0);
        if (idx >= 0 && (size_t)idx < n) {
            durable[idx] = (uint64_t)sqlite3_column_int64(s, 1);
        }
    }
    if (rc != SQLITE_DONE) {
        st = RDX_EDB;
    }
out:
    sqlite3_finalize(s);
    return st;
}

static rdx_status inbox_insert(sqlite3 *db, const struct rdx_tp_manifest *m, const uint8_t *blob,
                               size_t len)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_EDB;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return RDX_EDB;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO inbox(sender, case_id, kind, created_ms, manifest, state, "
                           "first_ms) VALUES (?,?,?,?,?,'receiving',?)",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, m->sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, m->case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, rdx_transport_kind_name(m->kind), -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 4, m->created_ms) != SQLITE_OK ||
        sqlite3_bind_blob(s, 5, blob, (int)len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 6, rdx_clock_wall_ms()) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO inbox_items(sender, case_id, idx, durable) VALUES "
                           "(?,?,?,0)",
                           -1, &s, NULL) != SQLITE_OK) {
        goto out;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        sqlite3_reset(s);
        if (sqlite3_bind_text(s, 1, m->sender, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(s, 2, m->case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(s, 3, (sqlite3_int64)i) != SQLITE_OK ||
            sqlite3_step(s) != SQLITE_DONE) {
            goto out;
        }
    }
    sqlite3_finalize(s);
    s = NULL;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        return RDX_OK;
    }
out:
    sqlite3_finalize(s);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

static rdx_status inbox_set_durable(sqlite3 *db, const char *sender, const char *case_id,
                                    size_t idx, uint64_t durable)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "UPDATE inbox_items SET durable=? WHERE sender=? AND case_id=? AND "
                           "idx=?",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(s, 1, (sqlite3_int64)durable) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 3, case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 4, (sqlite3_int64)idx) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        st = RDX_EDB;
    }
    sqlite3_finalize(s);
    return st;
}

/* ---- frames from the peer ------------------------------------------------- */

static void send_progress(struct conn *c)
{
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_CONTROL_MAX);
    if (rdx_tp_progress_encode(c->rx.m.case_id, c->rx.durable, c->rx.m.nitems, &b, NULL) ==
        RDX_OK) {
        send_frame(c, RDX_FRAME_PROGRESS, &b);
    }
    rdx_buf_free(&b);
}

static void send_ack(struct conn *c, const char *case_id, int dup)
{
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_CONTROL_MAX);
    if (rdx_tp_caseref_encode(case_id, dup, &b, NULL) == RDX_OK) {
        send_frame(c, RDX_FRAME_ACK, &b);
    }
    rdx_buf_free(&b);
}

static void on_offer(struct conn *c, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    rdx_error err;
    struct rdx_tp_manifest m;
    char detail[600];
    rx_reset(&c->rx);
    if (rdx_tp_manifest_decode(f->payload, f->len, &m, &err) != RDX_OK) {
        audit(n, "case-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, "", err.msg);
        refuse(c, "", RDX_TP_REFUSE_MANIFEST, 1, "bad manifest: %s", err.msg);
        return;
    }
    /* The sender is the certificate's institution; a manifest cannot claim another. */
    if (strcmp(m.sender, c->peer) != 0) {
        snprintf(detail, sizeof detail,
                 "manifest names sender '%s' but the certificate is institution '%s'", m.sender,
                 c->peer);
        audit(n, "policy-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, m.case_id, detail);
        refuse(c, m.case_id, RDX_TP_REFUSE_POLICY, 1, "%s", detail);
        rdx_tp_manifest_clear(&m);
        return;
    }
    if (strcmp(m.recipient, n->cfg->id) != 0) {
        snprintf(detail, sizeof detail, "case is addressed to '%s', this node is '%s'", m.recipient,
                 n->cfg->id);
        audit(n, "case-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, m.case_id, detail);
        refuse(c, m.case_id, RDX_TP_REFUSE_MANIFEST, 1, "%s", detail);
        rdx_tp_manifest_clear(&m);
        return;
    }
    if (!rdx_transport_policy_allows(n->cfg, 0, c->peer, m.kind)) {
        snprintf(detail, sizeof detail,
                 "policy does not allow institution '%s' to send '%s' cases to '%s'", c->peer,
                 rdx_transport_kind_name(m.kind), n->cfg->id);
        audit(n, "policy-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, m.case_id, detail);
        refuse(c, m.case_id, RDX_TP_REFUSE_POLICY, 1, "%s", detail);
        rdx_tp_manifest_clear(&m);
        return;
    }
    int state, same;
    if (inbox_lookup(n->db, m.sender, m.case_id, f->payload, f->len, &state, &same) != RDX_OK) {
        refuse(c, m.case_id, RDX_TP_REFUSE_INTERNAL, 1, "store: %s", sqlite3_errmsg(n->db));
        rdx_tp_manifest_clear(&m);
        return;
    }
    if (state != 0 && !same) {
        audit(n, "case-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, m.case_id,
              "case ID reused with a different manifest");
        refuse(c, m.case_id, RDX_TP_REFUSE_CONFLICT, 1,
               "case ID already received with a different manifest");
        rdx_tp_manifest_clear(&m);
        return;
    }
    if (state == 2) {
        /* Delivered before: acknowledge again (the first ACK may have been lost), once only. */
        audit(n, "case-duplicate", RDX_TP_OUTCOME_SUCCESS, c->peer, m.case_id,
              "already delivered; acknowledged again, not delivered twice");
        rdx_log(&n->log, RDX_LOG_INFO, "duplicate of case %s from %s acknowledged again", m.case_id,
                c->peer);
        send_ack(c, m.case_id, 1);
        rdx_tp_manifest_clear(&m);
        return;
    }
    /*
     * The sender may reconnect while its old connection still lingers here
     * (a dead link not yet timed out). One case is written by one connection
     * at a time: the newest takes over, and the old one is closed.
     */
    for (struct conn *o = n->conns; o != NULL; o = o->next) {
        if (o != c && o->rx.active && strcmp(o->peer, c->peer) == 0 &&
            strcmp(o->rx.m.case_id, m.case_id) == 0) {
            rdx_log(&n->log, RDX_LOG_WARN, "case %s from %s: a new connection takes over from %s",
                    m.case_id, c->peer, o->addr);
            rx_reset(&o->rx);
            close_after_flush(o);
        }
    }
    rdx_error e2;
    c->rx.m = m;
    c->rx.durable = rdx_callocarray(m.nitems, sizeof *c->rx.durable);
    if (c->rx.durable == NULL ||
        mkdir_p2(n->cfg->data, m.sender, c->rx.dir, sizeof c->rx.dir, &e2) != RDX_OK ||
        rdx_tp_path(c->rx.dir + strlen(c->rx.dir), sizeof c->rx.dir - strlen(c->rx.dir), &e2, "/%s",
                    m.case_id) != RDX_OK ||
        (mkdir(c->rx.dir, 0700) != 0 && errno != EEXIST)) {
        refuse(c, m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot make the inbox directory");
        rx_reset(&c->rx);
        return;
    }
    if (state == 0) {
        char parent[4200];
        snprintf(parent, sizeof parent, "%s/inbox/%s", n->cfg->data, m.sender);
        fsync_dir(parent);
        if (inbox_insert(n->db, &c->rx.m, f->payload, f->len) != RDX_OK) {
            refuse(c, m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: %s", sqlite3_errmsg(n->db));
            rx_reset(&c->rx);
            return;
        }
    } else if (inbox_durable(n->db, m.sender, m.case_id, c->rx.durable, m.nitems) != RDX_OK) {
        refuse(c, m.case_id, RDX_TP_REFUSE_INTERNAL, 1, "store: %s", sqlite3_errmsg(n->db));
        rx_reset(&c->rx);
        return;
    }
    c->rx.active = 1;
    uint64_t have = 0, total = 0;
    for (size_t i = 0; i < m.nitems; i++) {
        have += c->rx.durable[i];
        total += m.items[i].size;
    }
    rdx_log(&n->log, RDX_LOG_INFO, "offer of %s case %s from %s: %zu items, %llu bytes%s",
            rdx_transport_kind_name(m.kind), m.case_id, c->peer, m.nitems,
            (unsigned long long)total, state == 1 ? " (resuming)" : "");
    if (state == 1) {
        snprintf(detail, sizeof detail, "resuming at %llu of %llu bytes", (unsigned long long)have,
                 (unsigned long long)total);
        audit(n, "case-resumed", RDX_TP_OUTCOME_SUCCESS, c->peer, m.case_id, detail);
    }
    send_progress(c);
}

static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static void on_chunk(struct conn *c, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    struct rdx_tp_chunk ch;
    rdx_error err;
    unsigned char md[32];
    char path[4300];
    if (!rx->active) {
        refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "CHUNK without an accepted OFFER");
        return;
    }
    if (rdx_tp_chunk_decode(f->payload, f->len, &ch, &err) != RDX_OK) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1, "bad chunk: %s", err.msg);
        return;
    }
    if (strcmp(ch.case_id, rx->m.case_id) != 0 || ch.item >= rx->m.nitems) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_PROTOCOL, 1,
               "chunk for case %s item %u is not "
               "part of the offered case",
               ch.case_id, ch.item);
        return;
    }
    const struct rdx_tp_item *it = &rx->m.items[ch.item];
    uint64_t have = rx->durable[ch.item];
    if (ch.offset != have || ch.len > rx->m.chunk_size || ch.len > it->size - have) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1,
               "item %u: chunk at offset %llu of %zu bytes, expected offset %llu within %llu "
               "bytes",
               ch.item, (unsigned long long)ch.offset, ch.len, (unsigned long long)have,
               (unsigned long long)it->size);
        return;
    }
    if (EVP_Digest(ch.data, ch.len, md, NULL, EVP_sha256(), NULL) != 1 ||
        memcmp(md, ch.sha256, 32) != 0) {
        char detail[200];
        snprintf(detail, sizeof detail, "item %u chunk at offset %llu failed its SHA-256", ch.item,
                 (unsigned long long)ch.offset);
        audit(n, "chunk-rejected", RDX_TP_OUTCOME_MINOR, c->peer, rx->m.case_id, detail);
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1, "%s; send it again", detail);
        return;
    }
    if (rx->fd_item != (long)ch.item) {
        if (rx->fd >= 0) {
            close(rx->fd);
            rx->fd = -1;
        }
        snprintf(path, sizeof path, "%s/%u", rx->dir, ch.item);
        rx->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        /* Bytes past the durable mark are from a write never confirmed: drop them. */
        if (rx->fd < 0 || ftruncate(rx->fd, (off_t)have) != 0) {
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot open item %u: %s", ch.item,
                   strerror(errno));
            return;
        }
        rx->fd_item = ch.item;
    }
    if (write_all_at(rx->fd, ch.data, ch.len, ch.offset) != 0 || fdatasync(rx->fd) != 0) {
        int e = errno;
        /* Nothing half-written stays: cut back to what was durable before. */
        if (ftruncate(rx->fd, (off_t)have) != 0) {
            e = errno;
        }
        char detail[200];
        snprintf(detail, sizeof detail, "cannot store item %u at offset %llu: %s", ch.item,
                 (unsigned long long)ch.offset, strerror(e));
        audit(n, "case-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, rx->m.case_id, detail);
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "%s", detail);
        return;
    }
    if (inbox_set_durable(n->db, c->peer, rx->m.case_id, ch.item, have + ch.len) != RDX_OK) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: %s", sqlite3_errmsg(n->db));
        return;
    }
    rx->durable[ch.item] = have + ch.len;
}

/* SHA-256 of the first size bytes of path (which must have exactly that size). */
static int file_sha256(const char *path, uint64_t size, unsigned char md[32])
{
    int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    struct stat sb;
    int ok = 0;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1u << 20);
    if (fd < 0 || h == NULL || buf == NULL || fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != size ||
        EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf, 1u << 20);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            goto out;
        }
        if (r == 0) {
            break;
        }
        if (EVP_DigestUpdate(h, buf, (size_t)r) != 1) {
            goto out;
        }
    }
    ok = EVP_DigestFinal_ex(h, md, NULL) == 1;
out:
    free(buf);
    EVP_MD_CTX_free(h);
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void on_commit(struct conn *c, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    char case_id[RDX_TRANSPORT_CASE_ID_MAX + 1];
    int flag;
    rdx_error err;
    if (!rx->active) {
        refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "COMMIT without an accepted OFFER");
        return;
    }
    if (rdx_tp_caseref_decode(f->payload, f->len, case_id, &flag, &err) != RDX_OK ||
        strcmp(case_id, rx->m.case_id) != 0) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_PROTOCOL, 1, "COMMIT names another case");
        return;
    }
    uint64_t total = 0;
    if (rx->fd >= 0) {
        close(rx->fd);
        rx->fd = -1;
        rx->fd_item = -1;
    }
    for (size_t i = 0; i < rx->m.nitems; i++) {
        const struct rdx_tp_item *it = &rx->m.items[i];
        char path[4300];
        unsigned char md[32];
        if (rx->durable[i] != it->size) {
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1,
                   "COMMIT with item %zu at %llu of %llu bytes", i + 1,
                   (unsigned long long)rx->durable[i], (unsigned long long)it->size);
            return;
        }
        snprintf(path, sizeof path, "%s/%zu", rx->dir, i);
        if (!file_sha256(path, it->size, md) || memcmp(md, it->sha256, 32) != 0) {
            /* The stored item is not what the manifest promised: it restarts from zero. */
            if (truncate(path, 0) != 0) {
                rdx_log(&n->log, RDX_LOG_ERROR, "%s: cannot truncate: %s", path, strerror(errno));
            }
            (void)inbox_set_durable(n->db, c->peer, rx->m.case_id, i, 0);
            rx->durable[i] = 0;
            char detail[400];
            snprintf(detail, sizeof detail, "item %zu ('%s') failed its SHA-256; it restarts",
                     i + 1, it->name);
            audit(n, "case-refused", RDX_TP_OUTCOME_MINOR, c->peer, rx->m.case_id, detail);
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_ITEM, 1, "%s", detail);
            return;
        }
        total += it->size;
    }
    fsync_dir(rx->dir);
    char detail[300];
    snprintf(detail, sizeof detail, "%s case, %zu items, %llu bytes",
             rdx_transport_kind_name(rx->m.kind), rx->m.nitems, (unsigned long long)total);
    /* The state change and its audit record commit together, then the ACK goes out. */
    sqlite3_stmt *s = NULL;
    int ok = sqlite3_exec(n->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    ok = ok &&
         sqlite3_prepare_v2(n->db,
                            "UPDATE inbox SET state='complete', done_ms=? WHERE sender=? AND "
                            "case_id=? AND state='receiving'",
                            -1, &s, NULL) == SQLITE_OK &&
         sqlite3_bind_int64(s, 1, rdx_clock_wall_ms()) == SQLITE_OK &&
         sqlite3_bind_text(s, 2, c->peer, -1, SQLITE_STATIC) == SQLITE_OK &&
         sqlite3_bind_text(s, 3, rx->m.case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
         sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    ok = ok && rdx_tp_audit(n->db, n->cfg->id, "case-received", RDX_TP_OUTCOME_SUCCESS, c->peer,
                            rx->m.case_id, detail, &err) == RDX_OK;
    ok = ok && sqlite3_exec(n->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        sqlite3_exec(n->db, "ROLLBACK", NULL, NULL, NULL);
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: %s", sqlite3_errmsg(n->db));
        return;
    }
    rdx_log(&n->log, RDX_LOG_INFO, "received case %s from %s: %s", rx->m.case_id, c->peer, detail);
    send_ack(c, rx->m.case_id, 0);
    rx_reset(rx);
}

static void on_frame(struct conn *c, const rdx_transport_frame *f)
{
    rdx_buf empty;
    switch (f->type) {
    case RDX_FRAME_OFFER:
        on_offer(c, f);
        break;
    case RDX_FRAME_CHUNK:
        on_chunk(c, f);
        break;
    case RDX_FRAME_COMMIT:
        on_commit(c, f);
        break;
    case RDX_FRAME_PING:
        rdx_buf_init(&empty, 0);
        send_frame(c, RDX_FRAME_PONG, &empty);
        break;
    case RDX_FRAME_HELLO:
    case RDX_FRAME_PONG:
        break;
    default:
        refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "a %s frame is not expected by a receiver",
               rdx_transport_frame_type_name(f->type));
        break;
    }
}

/* ---- connection events ------------------------------------------------------ */

static void set_timeouts(struct conn *c)
{
    const rdx_transport_config *cfg = c->node->cfg;
    unsigned ms = !c->authed                                                  ? cfg->handshake_ms
                  : rdx_transport_decoder_pending(c->dec) > 0 || c->rx.active ? cfg->read_ms
                                                                              : cfg->idle_ms;
    struct timeval rt = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    struct timeval wt = {(time_t)(cfg->read_ms / 1000), (suseconds_t)(cfg->read_ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &rt, &wt);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    rdx_error err;
    while (!c->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
            break;
        }
        size_t used = 0;
        int got = 0;
        rdx_transport_frame f;
        rdx_status st =
            rdx_transport_decoder_feed(c->dec, v.iov_base, v.iov_len, &used, &f, &got, &err);
        if (st != RDX_OK) {
            audit(c->node, "protocol-error", RDX_TP_OUTCOME_SERIOUS, c->peer, c->addr, err.msg);
            refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "%s", err.msg);
            return;
        }
        evbuffer_drain(in, used);
        if (got) {
            on_frame(c, &f);
        }
    }
    if (!c->closing) {
        set_timeouts(c);
    }
}

static void refuse_connection(struct conn *c, const char *reason)
{
    char object[96];
    snprintf(object, sizeof object, "tcp:%s", c->addr);
    audit(c->node, "connection-refused", RDX_TP_OUTCOME_SERIOUS, c->verdict.claimed, object,
          reason);
    rdx_log(&c->node->log, RDX_LOG_WARN, "refused connection from %s: %s", c->addr, reason);
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    struct conn *c = arg;
    struct rdx_transport_node *n = c->node;
    if (events & BEV_EVENT_CONNECTED) {
        rdx_error err;
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        if (rdx_tp_tls_peer(ssl, c->peer, sizeof c->peer, c->serial, sizeof c->serial, &err) !=
            RDX_OK) {
            refuse_connection(c, err.msg);
            conn_free(c);
            return;
        }
        c->authed = 1;
        char object[96], detail[160];
        snprintf(object, sizeof object, "tcp:%s", c->addr);
        snprintf(detail, sizeof detail, "TLS 1.3 mutual authentication, certificate serial %s",
                 c->serial);
        audit(n, "connection-accepted", RDX_TP_OUTCOME_SUCCESS, c->peer, object, detail);
        rdx_log(&n->log, RDX_LOG_INFO, "accepted %s from %s (serial %s)", c->peer, c->addr,
                c->serial);
        set_timeouts(c);
        return;
    }
    if (!c->authed) {
        char reason[512];
        unsigned long e = 0, x;
        while ((x = bufferevent_get_openssl_error(bev)) != 0) {
            if (e == 0) {
                e = x;
            }
        }
        if (events & BEV_EVENT_TIMEOUT) {
            snprintf(reason, sizeof reason, "TLS handshake not finished within %u ms",
                     n->cfg->handshake_ms);
        } else {
            rdx_tp_tls_reason(&c->verdict, e, reason, sizeof reason);
        }
        refuse_connection(c, reason);
        conn_free(c);
        return;
    }
    if (events & BEV_EVENT_TIMEOUT) {
        int mid = rdx_transport_decoder_pending(c->dec) > 0 || c->rx.active;
        rdx_log(&n->log, RDX_LOG_WARN, "closing %s (%s): %s timeout", c->peer, c->addr,
                mid ? "read" : "idle");
        if (mid) {
            audit(n, "connection-timeout", RDX_TP_OUTCOME_MINOR, c->peer, c->addr,
                  "peer stopped sending in the middle of a case");
        }
    } else if (events & BEV_EVENT_ERROR) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        char buf[256] = "";
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            snprintf(buf, sizeof buf, "peer closed the connection (no TLS close_notify)");
        } else if (e != 0) {
            ERR_error_string_n(e, buf, sizeof buf);
        }
        rdx_log(&n->log, RDX_LOG_INFO, "connection from %s (%s) ended: %s", c->peer, c->addr,
                buf[0] ? buf : strerror(EVUTIL_SOCKET_ERROR()));
    }
    while (bufferevent_get_openssl_error(bev) != 0) {
    }
    conn_free(c);
}

/* Rebuild the TLS context when the CRL file has changed (a revocation was published). */
static void maybe_reload(struct rdx_transport_node *n)
{
    struct stat sb;
    if (stat(n->cfg->crl, &sb) != 0) {
        return;
    }
    if (sb.st_mtim.tv_sec == n->crl_mtime.tv_sec && sb.st_mtim.tv_nsec == n->crl_mtime.tv_nsec &&
        sb.st_size == n->crl_size) {
        return;
    }
    SSL_CTX *ctx = NULL;
    rdx_error err;
    if (rdx_tp_tls_ctx(n->cfg, 1, &ctx, &err) != RDX_OK) {
        rdx_log(&n->log, RDX_LOG_ERROR, "keeping the old CRL: %s", err.msg);
        return;
    }
    SSL_CTX_free(n->sctx); /* connections holding it keep their reference */
    n->sctx = ctx;
    n->crl_mtime = sb.st_mtim;
    n->crl_size = sb.st_size;
    rdx_log(&n->log, RDX_LOG_INFO, "loaded CRL %s", n->cfg->crl);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int slen,
                      void *arg)
{
    struct rdx_transport_node *n = arg;
    char addr[64] = "?";
    (void)l;
    (void)slen;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(addr, sizeof addr, "%s:%u", ip, ntohs(in->sin_port));
    }
    if (n->nconns >= n->cfg->max_conns) {
        rdx_log(&n->log, RDX_LOG_WARN, "refused connection from %s: %zu connections open", addr,
                n->nconns);
        audit(n, "connection-refused", RDX_TP_OUTCOME_MINOR, "", addr, "too many connections");
        evutil_closesocket(fd);
        return;
    }
    /* Frames are small and answered at once: Nagle plus delayed ACKs would add 40 ms each. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    maybe_reload(n);
    struct conn *c = calloc(1, sizeof *c);
    SSL *ssl = SSL_new(n->sctx);
    if (c == NULL || ssl == NULL ||
        rdx_transport_decoder_new(RDX_TRANSPORT_FRAME_MAX, &c->dec, NULL) != RDX_OK) {
        rdx_log(&n->log, RDX_LOG_ERROR, "out of memory accepting %s", addr);
        SSL_free(ssl);
        if (c != NULL) {
            rdx_transport_decoder_free(c->dec);
        }
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->node = n;
    c->rx.fd = -1;
    c->rx.fd_item = -1;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    snprintf(c->peer, sizeof c->peer, "?");
    SSL_set_app_data(ssl, &c->verdict);
    n->nconns++;
    c->next = n->conns;
    if (n->conns != NULL) {
        n->conns->prev = c;
    }
    n->conns = c;
    c->bev = bufferevent_openssl_socket_new(n->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        c->bev = NULL;
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_HIGH_WATER);
    set_timeouts(c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rdx_transport_node *n = arg;
    (void)fd;
    (void)what;
    rdx_log(&n->log, RDX_LOG_INFO, "stopping");
    event_base_loopexit(n->base, NULL);
}

rdx_status rdx_transport_node_new(const rdx_transport_config *cfg, const rdx_logger *log,
                                  rdx_transport_node **out, rdx_error *err)
{
    rdx_status st;
    struct sockaddr_in sin;
    if (cfg == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration");
    }
    rdx_transport_node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    n->cfg = cfg;
    if (log != NULL) {
        n->log = *log;
    }
    if ((st = rdx_tp_node_db_open(cfg->data, &n->db, err)) != RDX_OK ||
        (st = rdx_tp_tls_ctx(cfg, 1, &n->sctx, err)) != RDX_OK) {
        goto fail;
    }
    struct stat sb;
    if (stat(cfg->crl, &sb) == 0) {
        n->crl_mtime = sb.st_mtim;
        n->crl_size = sb.st_size;
    }
    if (evthread_use_pthreads() != 0) {
        st = rdx_error_set(err, RDX_EINTERNAL, "libevent: no thread support");
        goto fail;
    }
    n->base = event_base_new();
    if (n->base == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "libevent: cannot make an event base");
        goto fail;
    }
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)cfg->listen_port);
    if (inet_pton(AF_INET, cfg->listen_host, &sin.sin_addr) != 1) {
        st = rdx_error_set(err, RDX_EINVAL, "%s: listen address '%s' is not IPv4", cfg->path,
                           cfg->listen_host);
        goto fail;
    }
    n->lst = evconnlistener_new_bind(
        n->base, accept_cb, n, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        512, (struct sockaddr *)&sin, sizeof sin);
    if (n->lst == NULL) {
        st = rdx_error_set(err, RDX_ENETWORK, "%s: cannot listen on %s:%u: %s", cfg->path,
                           cfg->listen_host, cfg->listen_port, strerror(errno));
        goto fail;
    }
    socklen_t sl = sizeof sin;
    if (getsockname(evconnlistener_get_fd(n->lst), (struct sockaddr *)&sin, &sl) == 0) {
        n->port = ntohs(sin.sin_port);
    }
    n->stop_ev = event_new(n->base, -1, 0, stop_cb, n);
    if (n->stop_ev == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "libevent: out of memory");
        goto fail;
    }
    n->sender.cfg = cfg;
    n->sender.log = n->log;
    atomic_init(&n->sender.stop, 0);
    *out = n;
    return RDX_OK;
fail:
    rdx_transport_node_free(n);
    return st;
}

unsigned rdx_transport_node_port(const rdx_transport_node *n)
{
    return n->port;
}

static void *sender_main(void *arg)
{
    rdx_tp_sender_run(arg);
    return NULL;
}

rdx_status rdx_transport_node_run(rdx_transport_node *n, int handle_signals, rdx_error *err)
{
    char portfile[4200], txt[32];
    if (handle_signals) {
        n->sig_int = evsignal_new(n->base, SIGINT, stop_cb, n);
        n->sig_term = evsignal_new(n->base, SIGTERM, stop_cb, n);
        if (n->sig_int == NULL || n->sig_term == NULL || evsignal_add(n->sig_int, NULL) != 0 ||
            evsignal_add(n->sig_term, NULL) != 0) {
            return rdx_error_set(err, RDX_EINTERNAL, "cannot install signal handlers");
        }
        signal(SIGPIPE, SIG_IGN);
        /* A file size limit must fail the write (EFBIG), not kill the node. */
        signal(SIGXFSZ, SIG_IGN);
    }
    if (pthread_create(&n->sender_thread, NULL, sender_main, &n->sender) != 0) {
        return rdx_error_set(err, RDX_EINTERNAL, "cannot start the delivery thread");
    }
    n->sender_started = 1;
    /* Tell scripts and tests where we listen (the port may have been chosen by the kernel). */
    snprintf(portfile, sizeof portfile, "%s/node.port", n->cfg->data);
    int len = snprintf(txt, sizeof txt, "%u\n", n->port);
    if (rdx_file_write_atomic(portfile, txt, (size_t)len, err) != RDX_OK) {
        rdx_log(&n->log, RDX_LOG_WARN, "%s", err->msg);
    }
    rdx_log(&n->log, RDX_LOG_INFO,
            "node %s listening on %s:%u (TLS 1.3, client certificates "
            "required)",
            n->cfg->id, n->cfg->listen_host, n->port);
    audit(n, "node-started", RDX_TP_OUTCOME_SUCCESS, n->cfg->id, "", "");
    int rc = event_base_dispatch(n->base);
    atomic_store(&n->sender.stop, 1);
    pthread_join(n->sender_thread, NULL);
    n->sender_started = 0;
    audit(n, "node-stopped", RDX_TP_OUTCOME_SUCCESS, n->cfg->id, "", "");
    if (rc < 0) {
        return rdx_error_set(err, RDX_EINTERNAL, "event loop failed");
    }
    return RDX_OK;
}

void rdx_transport_node_stop(rdx_transport_node *n)
{
    if (n != NULL && n->stop_ev != NULL) {
        event_active(n->stop_ev, 0, 0);
    }
}

void rdx_transport_node_free(rdx_transport_node *n)
{
    if (n == NULL) {
        return;
    }
    if (n->sender_started) {
        atomic_store(&n->sender.stop, 1);
        pthread_join(n->sender_thread, NULL);
    }
    while (n->conns != NULL) {
        conn_free(n->conns);
    }
    if (n->sig_int != NULL) {
        event_free(n->sig_int);
    }
    if (n->sig_term != NULL) {
        event_free(n->sig_term);
    }
    if (n->stop_ev != NULL) {
        event_free(n->stop_ev);
    }
    if (n->lst != NULL) {
        evconnlistener_free(n->lst);
    }
    if (n->base != NULL) {
        event_base_free(n->base);
    }
    SSL_CTX_free(n->sctx);
    sqlite3_close(n->db);
    free(n);
}
