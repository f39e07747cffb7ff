/*
 * The node's server: a libevent loop accepting TLS 1.3 connections from
 * member institutions, verifying each peer against the network CA and CRL,
 * and receiving cases into the durable inbox.
 *
 * Each connection is a non-blocking socket with its own SSL object, driven by
 * two events and a timer (see "connection I/O"). It reads the socket in
 * TLS_READ_BATCH gulps, and OpenSSL decrypts straight into the frame decoder's
 * buffer, so a chunk's bytes are copied once, from the TLS record to the
 * page-aligned buffer that the store workers hash and write with O_DIRECT.
 *
 * Per connection the memory is bounded: the read buffer (TLS_READ_BATCH), the
 * frame decoder's one frame (one chunk), the frames queued for the peer, and
 * one case in flight. Timeouts: the handshake must finish within
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
#include <sys/resource.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/*
 * Bytes one read(2) takes from a connection's socket, several TLS records at
 * once, instead of OpenSSL's two reads per record (header, then body). A
 * buffering BIO holds them under the SSL; OpenSSL's own read-ahead would do
 * the same but moves the rest of its buffer to the front at every record
 * (ssl3_read_n), about 1.7 times the data for 64 KiB.
 */
#define TLS_READ_BATCH (64u << 10)

/* Bytes one connection may read per turn of the loop, so that 200 peers all get theirs. */
#define READ_BUDGET (1u << 20)

/*
 * Answers queued for a peer beyond this stop the node reading from it until
 * they drain: a peer that sends PINGs and never reads the PONGs must not grow
 * the node's memory (its write timeout then closes it).
 */
#define OUTPUT_HIGH_WATER (1u << 20)

/*
 * Group commit. Chunks are written (and their writeback started) as they
 * arrive, but nothing is synced per chunk or per case: the node keeps one
 * SQLite transaction open for a short window, and one flush then
 * fdatasyncs every item file written since the last flush, fsyncs the new
 * directory entries, records the durable byte counts, commits (one WAL sync
 * for all of it, audit records included) and only then sends the ACKs of the
 * cases completed in the window. A case is never acknowledged before the
 * sync that makes it durable.
 */
#define GROUP_ACK_WINDOW_MS   4u    /* a completed case waits at most this long for its sync */
#define GROUP_AUDIT_WINDOW_MS 50u   /* audit records alone (no ACK waiting) */
#define GROUP_ACKS_MAX        1024u /* flush at once when this many ACKs wait */
/*
 * Items up to this size are stored in node.db (inbox_blobs) with the
 * group's commit, so they need no file sync of their own. A case made only
 * of such items touches no file on the event loop at all: the spill thread
 * writes its files afterwards. A crash that loses such a file is repaired
 * from the row when the node starts.
 */
#define INLINE_MAX RDX_TRANSPORT_INLINE_MAX
/* Progress of a large item is recorded (a resume point) every this many bytes. */
#define CHECKPOINT_BYTES (16ull << 20)

struct rx {
    int active;
    struct rdx_tp_manifest m;
    uint64_t *durable;   /* bytes of each item written and checked (the next expected offset) */
    uint64_t *committed; /* bytes of each item recorded durable in node.db */
    int dirty;           /* written past committed: the next flush syncs and records it */
    int all_inline;      /* every item is at most INLINE_MAX: no file or directory syncs */
    char dir[4200];
    int fd;
    int dfd; /* the same item opened O_DIRECT for whole blocks of large chunks, or -1 */
    long fd_item;
    struct rdx_tp_sha h; /* SHA-256 of item h_item so far: chunks and items checked in one pass */
    long h_item;
    unsigned gen; /* counts resets: a store job started before one is stale */
};

struct ack_wait {
    struct conn *c; /* NULL once the connection is gone */
    char case_id[RDX_TRANSPORT_CASE_ID_MAX + 1];
};

struct group {
    int open;          /* a transaction is open on node.db */
    int armed;         /* the flush timer is pending */
    unsigned armed_ms; /* its window */
    struct event *timer;
    uint8_t *bounce; /* block-aligned copy of a chunk for O_DIRECT writes (one loop, one buffer) */
    int *fds;        /* item files to fdatasync (then close) */
    size_t nfds, capfds;
    char **dirs; /* directories whose new entries must be fsync'd */
    size_t ndirs, capdirs;
    struct ack_wait *acks;
    size_t nacks, capacks;
    size_t spill; /* cases in the group that may have rows in inbox_blobs */
};

/*
 * The store workers. A large chunk is checked and written off the event
 * loop: the loop hands the chunk's frame buffer to two threads, one hashing
 * it (one SHA-256 pass that checks the chunk and carries the item digest on)
 * while the other writes it, and goes on decrypting the next chunk
 * meanwhile. The chunk counts only when both are done and it checked: bytes
 * of a chunk that fails are cut off again and never counted durable. A
 * connection has at most one chunk at the workers; any frame that arrives
 * behind it waits (reading paused) until the chunk is done, so frames still
 * take effect in order.
 */
enum chunk_res { CHUNK_OK, CHUNK_BAD, CHUNK_BAD_ITEM, CHUNK_NOSTORE };

/* One chunk's check and write: everything the work touches, so it can run on either thread. */
struct chunk_work {
    struct rdx_tp_sha h; /* in: the item's state before the chunk; out: after it */
    int fd, dfd;         /* the item file, buffered and O_DIRECT (-1: none) */
    uint8_t *bounce;     /* block-aligned scratch for O_DIRECT writes, or NULL */
    int large;           /* the item is larger than INLINE_MAX: start writeback */
    const uint8_t *data;
    size_t len;
    uint64_t off, item_size;
    uint8_t want[32]; /* the chunk's check value, as sent */
    uint32_t stride;  /* the item's link stride (rdx_tp_link_stride) */
    unsigned nlinks;  /* link values sent with the chunk: 0, or its strides - 1 */
    uint8_t links[(RDX_TRANSPORT_LINKS - 1) * 32];
    uint8_t item_sha[32]; /* the manifest's SHA-256 of the item */
    enum chunk_res res;
    int direct_refused; /* O_DIRECT refused here (EINVAL): buffered from now on */
    int err;            /* errno of a failed write */
};

enum { LANE_HASH, LANE_WRITE, LANES };

struct store_job {
    struct chunk_work w;
    struct conn *c; /* the connection (conn_free waits while the job is busy) */
    unsigned gen;   /* c->rx.gen when submitted */
    uint16_t item;
    rdx_buf buf; /* the chunk frame's payload, owned; its storage is reused chunk after chunk */
    int busy;
    int parts;              /* lanes still working on it */
    int write_res;          /* the write lane's outcome: 0, or an errno */
    int hashed;             /* a hash thread is through with it */
    int released;           /* its hash part is counted: it and every chunk before it are hashed */
    int wait_pred;          /* the connection's chunk before it is not released yet */
    struct store_job *succ; /* the connection's next chunk, released after this one */
    struct store_job *next[LANES], *done_next;
};

/*
 * A connection may have this many chunks at the workers, so that the loop
 * reads on while the disk is slow for a moment: on the bench machine an 8
 * MiB O_DIRECT write takes 4 ms in the median and 20-100 ms a few times a
 * minute (more rarely, over a second), and with two chunks each such write
 * stopped the stream (docs/transport-performance.md). Eight is 64 MiB at the
 * default chunk size, about 70 ms of a bulk transfer there; the buffers are
 * made only as a slow write needs them. The node as a whole holds at most
 * STORE_INFLIGHT_MAX chunk buffers beyond each connection's frame decoder;
 * past that a chunk is checked and written on the loop (slower, but no more
 * memory). RDX_TP_SPARES_MAX (transport_int.h) keeps one connection's worth.
 */
#define JOBS_PER_CONN      8
#define STORE_INFLIGHT_MAX 16
_Static_assert(RDX_TP_SPARES_MAX >= JOBS_PER_CONN + 1, "the spares hold a connection's buffers");

/*
 * Threads on the hash lane. Two chunks of one item are checked at once, the
 * second from the check value the first claims (sound: the first is checked
 * against that very value, and neither counts before both are through). On
 * two cores this lets the check run on whichever core the loop or the sender
 * leaves idle, instead of queueing behind one of them.
 */
#define HASH_THREADS 2

struct store_lane {
    struct store *st;
    int lane;
    int started; /* threads running */
    int cv_made;
    pthread_t th[HASH_THREADS];
    pthread_cond_t cv;
    struct store_job *todo, *todo_last;
};

struct store {
    int started, stop;
    pthread_mutex_t mu;
    struct store_lane lane[LANES];
    struct store_job *done, *done_last;
    size_t inflight;       /* jobs at the workers, all connections (loop thread only) */
    struct event *done_ev; /* activated by a worker: finished jobs wait in done */
    uint8_t *bounce;       /* the write lane's aligned copy for O_DIRECT */
    unsigned hash_nice;    /* [node] hash_nice */
};

/*
 * The spill thread writes the files of small items that a group commit put
 * in node.db only (see transport/inbox_blob.c): a batch of files, one syncfs,
 * then the rows go. It runs on its own SQLite connection and is woken after
 * each group commit that had such items.
 */
struct spill {
    const rdx_transport_config *cfg;
    rdx_logger log;
    int started, stop, kicked;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct conn {
    struct rdx_transport_node *node;
    struct conn *prev, *next; /* the node's list of open connections */
    /* The connection's I/O (see "connection I/O"): all on the loop thread. */
    int fd;
    SSL *ssl;
    struct event *rev, *wev, *tev; /* readable, writable, timeout */
    struct event *more;            /* activated: read on in the loop's next turn */
    int rev_on, wev_on;            /* whether rev and wev are added */
    struct evbuffer *out;          /* frames queued for the peer */
    int hs_done;                   /* the TLS handshake is through */
    int hs_want;                   /* the handshake waits for: EV_READ or EV_WRITE */
    int rd_wants_write;            /* SSL_read must wait until the socket is writable */
    int wr_wants_read;             /* SSL_write must wait until the socket is readable */
    int drain_close;               /* free the connection once out is sent */
    int stopped;                   /* no more I/O: it is being freed */
    unsigned rt_ms, wt_ms;         /* read (or idle) and write timeouts now in force */
    int64_t last_rd_ms, last_wr_ms;
    int64_t tev_due_ms; /* when tev fires, if added (0: not added) */
    struct rdx_tp_verdict verdict;
    char addr[64];
    char peer[65];
    char serial[64];
    int authed;
    int closing;
    /* A case answered as a duplicate: its chunks and COMMIT, sent ahead by the sender, are dropped.
     */
    char skip[RDX_TRANSPORT_CASE_ID_MAX + 1];
    rdx_transport_decoder *dec;
    struct rx rx;
    struct store_job *jobs[JOBS_PER_CONN]; /* allocated at first use, reused after */
    unsigned jhead, jcount;                /* the oldest job at the workers, and how many */
    int held;                              /* a frame waits behind the chunks at the workers */
    rdx_transport_frame held_f;
    int free_pending; /* conn_free waits for the chunk at the worker */
};

struct rdx_transport_node {
    const rdx_transport_config *cfg;
    rdx_logger log;
    struct event_base *base;
    struct evconnlistener *lst;
    struct event *sig_int, *sig_term, *stop_ev;
    SSL_CTX *sctx;                  /* its trust store holds the CRL in force */
    struct rdx_tp_file_id crl_file; /* the version of the CRL file last looked at */
    struct event *crl_watch;        /* every CRL_WATCH_MS: has the CRL file changed? */
    struct event *crl_timer;        /* hourly: is the CRL about to expire? */
    int crl_state; /* 0 fine, 1 expiring soon (warned), 2 expired, 3 not yet valid (audited) */
    sqlite3 *db;
    size_t nconns;
    struct conn *conns;
    unsigned port;
    struct rdx_tp_sender sender; /* the delivery threads (transport/node_send.c) */
    struct group g;
    struct store st;
    struct spill sp;
    struct rdx_tp_spares spares; /* chunk buffers kept between cases (transport_int.h) */
    struct event *spares_timer;  /* every RDX_TP_SPARES_IDLE_MS: unused spares go */
    unsigned long bufs_made;     /* chunk buffers made by the decoders of closed connections */
};

static int group_begin(struct rdx_transport_node *n);
static void group_want(struct rdx_transport_node *n, unsigned ms);
static int group_add_fd(struct rdx_transport_node *n, int fd);
static int group_flush(struct rdx_transport_node *n);

/* ---- small helpers -------------------------------------------------------- */

static void audit(struct rdx_transport_node *n, const char *event, int outcome, const char *inst,
                  const char *object, const char *detail)
{
    rdx_error e;
    /* The record joins the open group transaction: it is durable with the next flush. */
    if (group_begin(n) == 0) {
        group_want(n, GROUP_AUDIT_WINDOW_MS);
    }
    if (rdx_tp_audit(n->db, n->cfg->id, event, outcome, inst, object, detail, &e) != RDX_OK) {
        rdx_log(&n->log, RDX_LOG_ERROR, "audit record not written: %s", e.msg);
    }
}

static void conn_arm(struct conn *c);

static int64_t mono_ms(void)
{
    return (int64_t)(rdx_clock_mono_ns() / 1000000u);
}

/* Queue a frame for the peer; it is written when the socket takes it (see conn_write). */
static void send_frame(struct conn *c, unsigned type, const rdx_buf *payload)
{
    uint8_t hdr[RDX_TRANSPORT_FRAME_HDR];
    if (c->stopped || rdx_transport_frame_header(hdr, type, payload->len, NULL) != RDX_OK) {
        return;
    }
    if (evbuffer_get_length(c->out) == 0) {
        c->last_wr_ms = mono_ms(); /* the write timeout runs from now */
    }
    if (evbuffer_add(c->out, hdr, sizeof hdr) != 0 ||
        (payload->len > 0 && evbuffer_add(c->out, payload->data, payload->len) != 0)) {
        rdx_log(&c->node->log, RDX_LOG_ERROR, "out of memory queueing a frame for %s", c->addr);
    }
    conn_arm(c);
}

static void rx_reset(struct rx *rx)
{
    if (rx->fd >= 0) {
        close(rx->fd);
    }
    if (rx->dfd >= 0) {
        close(rx->dfd);
    }
    free(rx->durable);
    free(rx->committed);
    rdx_tp_manifest_clear(&rx->m);
    unsigned gen = rx->gen + 1;
    memset(rx, 0, sizeof *rx);
    rx->gen = gen;
    rx->fd = -1;
    rx->dfd = -1;
    rx->fd_item = -1;
    rx->h_item = -1;
}

static rdx_status inbox_set_durable(sqlite3 *db, const char *sender, const char *case_id,
                                    size_t idx, uint64_t durable);

/*
 * A connection ends in the middle of a case: what it wrote becomes a resume
 * point. Its item file joins the group's syncs and the byte counts join the
 * group's transaction, which commits only after those syncs.
 */
static void rx_checkpoint(struct conn *c)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    if (!rx->active || !rx->dirty || group_begin(n) != 0) {
        return;
    }
    if (rx->fd >= 0 && rx->m.items[rx->fd_item].size > INLINE_MAX) {
        if (group_add_fd(n, rx->fd) != 0) {
            rx->fd = -1;
            return;
        }
        rx->fd = -1;
    }
    for (size_t i = 0; i < rx->m.nitems; i++) {
        if (rx->durable[i] != rx->committed[i]) {
            (void)inbox_set_durable(n->db, c->peer, rx->m.case_id, i, rx->durable[i]);
        }
    }
    rx->dirty = 0;
    group_want(n, GROUP_AUDIT_WINDOW_MS);
}

static void conn_free(struct conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->jcount > 0) {
        /* Its chunks are being written: the workers' done callback frees it. */
        c->free_pending = 1;
        c->closing = 1;
        c->stopped = 1;
        conn_arm(c);
        return;
    }
    rx_checkpoint(c);
    for (int k = 0; k < JOBS_PER_CONN; k++) {
        if (c->jobs[k] != NULL) {
            rdx_tp_spare_put(&c->node->spares, &c->jobs[k]->buf);
            rdx_buf_free(&c->jobs[k]->buf);
            free(c->jobs[k]);
            c->jobs[k] = NULL;
        }
    }
    rx_reset(&c->rx);
    for (size_t i = 0; i < c->node->g.nacks; i++) {
        if (c->node->g.acks[i].c == c) {
            c->node->g.acks[i].c = NULL; /* the case stays received; its ACK is not sent */
        }
    }
    c->node->bufs_made += rdx_tp_decoder_made(c->dec);
    rdx_transport_decoder_free(c->dec);
    struct event *evs[] = {c->rev, c->wev, c->tev, c->more};
    for (size_t k = 0; k < sizeof evs / sizeof evs[0]; k++) {
        if (evs[k] != NULL) {
            event_free(evs[k]);
        }
    }
    if (c->out != NULL) {
        evbuffer_free(c->out);
    }
    SSL_free(c->ssl);
    if (c->fd >= 0) {
        evutil_closesocket(c->fd);
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

/* Stop reading; free the connection once what was queued for the peer is sent. */
static void close_after_flush(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    c->drain_close = 1;
    if (evbuffer_get_length(c->out) == 0) {
        /* Not here: the caller may still be using c. */
        struct timeval zero = {0, 0};
        c->stopped = 1;
        c->drain_close = 0;
        event_base_once(c->node->base, -1, EV_TIMEOUT, free_cb, c, &zero);
    }
    conn_arm(c);
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

/* ---- group commit --------------------------------------------------------- */

static void group_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rdx_transport_node *n = arg;
    (void)fd;
    (void)what;
    n->g.armed = 0;
    (void)group_flush(n);
}

/* Open the group transaction if none is open. 0 on success. */
static int group_begin(struct rdx_transport_node *n)
{
    if (n->g.open) {
        return 0;
    }
    if (sqlite3_exec(n->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rdx_log(&n->log, RDX_LOG_ERROR, "node.db: cannot begin: %s", sqlite3_errmsg(n->db));
        return -1;
    }
    n->g.open = 1;
    return 0;
}

/* Make sure a flush happens within ms. */
static void group_want(struct rdx_transport_node *n, unsigned ms)
{
    struct group *g = &n->g;
    if (g->timer == NULL || (g->armed && g->armed_ms <= ms)) {
        return;
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (event_add(g->timer, &tv) == 0) {
        g->armed = 1;
        g->armed_ms = ms;
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    size_t nc = *cap ? *cap * 2 : 16;
    void *q = rdx_reallocarray(*p, nc, elem);
    if (q == NULL) {
        return -1;
    }
    *p = q;
    *cap = nc;
    return 0;
}

/* The flush fdatasyncs and closes fd. On out of memory it is synced now. */
static int group_add_fd(struct rdx_transport_node *n, int fd)
{
    struct group *g = &n->g;
    if (grow((void **)&g->fds, &g->capfds, g->nfds + 1, sizeof *g->fds) != 0) {
        int rc = fdatasync(fd);
        close(fd);
        return rc;
    }
    g->fds[g->nfds++] = fd;
    return 0;
}

/* The flush fsyncs the directory path (its new entries must survive a crash). */
static int group_add_dir(struct rdx_transport_node *n, const char *path)
{
    struct group *g = &n->g;
    for (size_t i = 0; i < g->ndirs; i++) {
        if (strcmp(g->dirs[i], path) == 0) {
            return 0;
        }
    }
    char *d = strdup(path);
    if (d == NULL || grow((void **)&g->dirs, &g->capdirs, g->ndirs + 1, sizeof *g->dirs) != 0) {
        free(d);
        return rdx_tp_fsync_dir(path);
    }
    g->dirs[g->ndirs++] = d;
    return 0;
}

static rdx_status inbox_set_durable(sqlite3 *db, const char *sender, const char *case_id,
                                    size_t idx, uint64_t durable);
static void send_ack(struct conn *c, const char *case_id, int dup);
static void refuse(struct conn *c, const char *case_id, unsigned code, int close_it,
                   const char *fmt, ...) RDX_PRINTF(5, 6);

/*
 * One sync for everything since the last flush: item data, directory
 * entries, durable byte counts, inbox states and audit records. Then the
 * waiting ACKs go out. On failure nothing of the group is acknowledged: the
 * transaction is rolled back and every connection with a case in it is
 * refused (the senders keep their cases and retry). 0 on success.
 */
static int group_flush(struct rdx_transport_node *n)
{
    struct group *g = &n->g;
    int ok = 1, any = g->open || g->nfds > 0 || g->ndirs > 0;
    char why[200] = "";
    if (g->armed) {
        event_del(g->timer);
        g->armed = 0;
    }
    for (struct conn *c = n->conns; c != NULL && !any; c = c->next) {
        any = c->rx.active && c->rx.dirty;
    }
    if (!any) {
        return 0;
    }
    for (size_t i = 0; i < g->nfds; i++) {
        if (fdatasync(g->fds[i]) != 0 && ok) {
            ok = 0;
            snprintf(why, sizeof why, "cannot sync an item: %s", strerror(errno));
        }
        close(g->fds[i]);
    }
    g->nfds = 0;
    for (struct conn *c = n->conns; c != NULL; c = c->next) {
        if (c->rx.active && c->rx.dirty && c->rx.fd >= 0 &&
            c->rx.m.items[c->rx.fd_item].size > INLINE_MAX && fdatasync(c->rx.fd) != 0 && ok) {
            ok = 0;
            snprintf(why, sizeof why, "cannot sync an item: %s", strerror(errno));
        }
    }
    for (size_t i = 0; i < g->ndirs; i++) {
        if (rdx_tp_fsync_dir(g->dirs[i]) != 0 && ok) {
            ok = 0;
            snprintf(why, sizeof why, "%s: cannot sync the directory: %s", g->dirs[i],
                     strerror(errno));
        }
        free(g->dirs[i]);
    }
    g->ndirs = 0;
    if (ok && group_begin(n) != 0) {
        ok = 0;
    }
    for (struct conn *c = n->conns; ok && c != NULL; c = c->next) {
        struct rx *rx = &c->rx;
        for (size_t i = 0; ok && rx->active && rx->dirty && i < rx->m.nitems; i++) {
            if (rx->durable[i] != rx->committed[i] &&
                inbox_set_durable(n->db, c->peer, rx->m.case_id, i, rx->durable[i]) != RDX_OK) {
                ok = 0;
            }
        }
    }
    if (ok && sqlite3_exec(n->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ok = 0;
    }
    if (!ok && why[0] == '\0') {
        snprintf(why, sizeof why, "store: %s", sqlite3_errmsg(n->db));
    }
    if (!ok && g->open) {
        sqlite3_exec(n->db, "ROLLBACK", NULL, NULL, NULL);
    }
    g->open = 0;
    size_t nacks = g->nacks;
    g->nacks = 0;
    if (ok && g->spill > 0 && n->sp.started) {
        pthread_mutex_lock(&n->sp.mu);
        n->sp.kicked = 1;
        pthread_cond_signal(&n->sp.cv);
        pthread_mutex_unlock(&n->sp.mu);
    }
    g->spill = 0;
    if (ok) {
        for (struct conn *c = n->conns; c != NULL; c = c->next) {
            if (c->rx.active && c->rx.dirty) {
                memcpy(c->rx.committed, c->rx.durable, c->rx.m.nitems * sizeof *c->rx.durable);
                c->rx.dirty = 0;
            }
        }
        for (size_t i = 0; i < nacks; i++) {
            if (g->acks[i].c != NULL && !g->acks[i].c->closing) {
                send_ack(g->acks[i].c, g->acks[i].case_id, 0);
            }
        }
        return 0;
    }
    rdx_log(&n->log, RDX_LOG_ERROR, "group commit failed, nothing in it acknowledged: %s", why);
    for (size_t i = 0; i < nacks; i++) {
        if (g->acks[i].c != NULL && !g->acks[i].c->closing) {
            refuse(g->acks[i].c, g->acks[i].case_id, RDX_TP_REFUSE_STORAGE, 1, "%s", why);
        }
    }
    for (struct conn *c = n->conns; c != NULL; c = c->next) {
        if (c->rx.active && !c->closing) {
            char cid[RDX_TRANSPORT_CASE_ID_MAX + 1];
            snprintf(cid, sizeof cid, "%s", c->rx.m.case_id);
            rx_reset(&c->rx); /* what it wrote was not synced: no resume point from it */
            refuse(c, cid, RDX_TP_REFUSE_STORAGE, 1, "%s", why);
        }
    }
    return -1;
}

static void group_free(struct rdx_transport_node *n)
{
    struct group *g = &n->g;
    (void)group_flush(n);
    for (size_t i = 0; i < g->nfds; i++) {
        close(g->fds[i]);
    }
    for (size_t i = 0; i < g->ndirs; i++) {
        free(g->dirs[i]);
    }
    free(g->fds);
    free(g->bounce);
    free(g->dirs);
    free(g->acks);
    if (g->timer != NULL) {
        event_free(g->timer);
    }
    memset(g, 0, sizeof *g);
}

/* ---- the inbox ------------------------------------------------------------ */

static rdx_status mkdir_p2(struct rdx_transport_node *n, const char *a, const char *b, char *out,
                           size_t outsz, rdx_error *err)
{
    /* DATA/inbox/SENDER/CASE: each component already checked to be a safe name. */
    char p[4200];
    RDX_TRY(rdx_tp_path(p, sizeof p, err, "%s/inbox", a));
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", p, strerror(errno));
    }
    RDX_TRY(rdx_tp_path(out, outsz, err, "%s/inbox/%s", a, b));
    if (mkdir(out, 0700) == 0) {
        (void)group_add_dir(n, p); /* the new directory entry must survive a crash too */
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
    /* Inside the group transaction: all of it or none. */
    if (sqlite3_exec(db, "SAVEPOINT ins", NULL, NULL, NULL) != SQLITE_OK) {
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
    if (sqlite3_exec(db, "RELEASE ins", NULL, NULL, NULL) == SQLITE_OK) {
        return RDX_OK;
    }
out:
    sqlite3_finalize(s);
    sqlite3_exec(db, "ROLLBACK TO ins; RELEASE ins", NULL, NULL, NULL);
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

/* Hash the first len bytes of path into h (initialised here). 0 when the file has them. */
static int hash_prefix(const char *path, uint64_t len, struct rdx_tp_sha *h)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char *buf = malloc(1u << 20);
    int ok = fd >= 0 && buf != NULL;
    rdx_tp_sha_init(h);
    while (ok && len > 0) {
        ssize_t r = read(fd, buf, len < (1u << 20) ? (size_t)len : (1u << 20));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        ok = r > 0;
        if (ok) {
            rdx_tp_sha_update(h, buf, (size_t)r);
            len -= (uint64_t)r;
        }
    }
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return ok ? 0 : -1;
}

/*
 * A resumed case: items already complete are checked against the manifest,
 * and the one in progress has its stored prefix hashed, so that the item
 * hash can go on as its remaining chunks arrive. Anything that does not
 * check out restarts from zero (recorded by the next flush).
 */
static void rx_resume(struct rdx_transport_node *n, struct conn *c)
{
    struct rx *rx = &c->rx;
    for (size_t i = 0; i < rx->m.nitems; i++) {
        uint64_t d = rx->durable[i];
        char path[4300];
        unsigned char md[32];
        if (d == 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%zu", rx->dir, i);
        if (rx->all_inline) {
            /* Its bytes were never a file and it was not committed: a small item is sent again. */
            rx->durable[i] = 0;
            rx->dirty = 1;
            continue;
        }
        /* A resume point is a chunk boundary, where the chunk check values are defined. */
        int boundary = d == rx->m.items[i].size || d % rx->m.chunk_size == 0;
        if (boundary && d <= rx->m.items[i].size && rx->h_item < 0 &&
            hash_prefix(path, d, &rx->h) == 0) {
            if (d < rx->m.items[i].size) {
                rx->h_item = (long)i;
                continue;
            }
            rdx_tp_sha_final(&rx->h, md);
            if (memcmp(md, rx->m.items[i].sha256, 32) == 0) {
                continue;
            }
        }
        rdx_log(&n->log, RDX_LOG_WARN,
                "case %s from %s: stored item %zu does not check; it restarts", rx->m.case_id,
                c->peer, i + 1);
        if (truncate(path, 0) != 0 && errno != ENOENT) {
            rdx_log(&n->log, RDX_LOG_ERROR, "%s: cannot truncate: %s", path, strerror(errno));
        }
        rx->durable[i] = 0;
        rx->dirty = 1;
    }
}

static void on_offer(struct conn *c, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    rdx_error err;
    struct rdx_tp_manifest m;
    char detail[600];
    rx_reset(&c->rx);
    c->skip[0] = '\0';
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
    rdx_status lst = inbox_lookup(n->db, m.sender, m.case_id, f->payload, f->len, &state, &same);
    if (lst == RDX_OK && state != 0) {
        /*
         * What the open group holds is not durable yet: a duplicate must not
         * be acknowledged, nor progress reported, from uncommitted state.
         */
        if (group_flush(n) != 0) {
            rdx_tp_manifest_clear(&m);
            if (!c->closing) {
                refuse(c, m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: the group commit failed");
            }
            return;
        }
        lst = inbox_lookup(n->db, m.sender, m.case_id, f->payload, f->len, &state, &same);
    }
    if (lst != RDX_OK) {
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
        snprintf(c->skip, sizeof c->skip, "%s", m.case_id);
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
    c->rx.committed = rdx_callocarray(m.nitems, sizeof *c->rx.committed);
    c->rx.all_inline = 1;
    for (size_t i = 0; i < m.nitems; i++) {
        c->rx.all_inline &= m.items[i].size <= INLINE_MAX;
    }
    if (c->rx.all_inline) {
        /*
         * Its items go to node.db with the group's commit and nowhere else for
         * now: the spill thread writes the files later, off the event loop.
         */
        if (c->rx.durable == NULL || c->rx.committed == NULL ||
            rdx_tp_path(c->rx.dir, sizeof c->rx.dir, &e2, "%s/inbox/%s/%s", n->cfg->data, m.sender,
                        m.case_id) != RDX_OK) {
            refuse(c, m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot make the inbox directory");
            rx_reset(&c->rx);
            return;
        }
    } else if (c->rx.durable == NULL || c->rx.committed == NULL ||
               mkdir_p2(n, n->cfg->data, m.sender, c->rx.dir, sizeof c->rx.dir, &e2) != RDX_OK ||
               rdx_tp_path(c->rx.dir + strlen(c->rx.dir), sizeof c->rx.dir - strlen(c->rx.dir), &e2,
                           "/%s", m.case_id) != RDX_OK ||
               (mkdir(c->rx.dir, 0700) != 0 && errno != EEXIST)) {
        refuse(c, m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot make the inbox directory");
        rx_reset(&c->rx);
        return;
    }
    if (state == 0) {
        char parent[4200];
        snprintf(parent, sizeof parent, "%s/inbox/%s", n->cfg->data, m.sender);
        if (!c->rx.all_inline) {
            (void)group_add_dir(n, parent);
        }
        if (group_begin(n) != 0 || inbox_insert(n->db, &c->rx.m, f->payload, f->len) != RDX_OK) {
            refuse(c, m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: %s", sqlite3_errmsg(n->db));
            rx_reset(&c->rx);
            return;
        }
    } else if (inbox_durable(n->db, m.sender, m.case_id, c->rx.durable, m.nitems) != RDX_OK) {
        refuse(c, m.case_id, RDX_TP_REFUSE_INTERNAL, 1, "store: %s", sqlite3_errmsg(n->db));
        rx_reset(&c->rx);
        return;
    } else {
        memcpy(c->rx.committed, c->rx.durable, m.nitems * sizeof *c->rx.durable);
        rx_resume(n, c);
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

/*
 * Large chunks bypass the page cache: whole 4 KiB blocks go through an
 * O_DIRECT descriptor from an aligned copy (on this class of machine a
 * buffered write of a large item is several times slower than the device),
 * the rest through the buffered one. Durability still comes from the flush's
 * fdatasync (it covers the allocation metadata and the device cache).
 */
#define DIRECT_MIN   (1u << 20)
#define DIRECT_ALIGN 4096u

/*
 * Write a checked chunk at its offset: whole blocks of a large chunk through
 * the O_DIRECT descriptor from the aligned scratch copy, the rest buffered.
 */
static int write_chunk(struct chunk_work *w)
{
    const uint8_t *p = w->data;
    size_t len = w->len;
    uint64_t off = w->off;
    size_t direct = len & ~(size_t)(DIRECT_ALIGN - 1);
    /* A large chunk from the decoder is aligned already (RDX_TRANSPORT_DATA_ALIGN): no copy. */
    int aligned = ((uintptr_t)p % DIRECT_ALIGN) == 0;
    if (w->dfd >= 0 && (aligned || w->bounce != NULL) && direct >= DIRECT_MIN &&
        direct <= RDX_TRANSPORT_CHUNK_MAX && off % DIRECT_ALIGN == 0) {
        if (!aligned) {
            memcpy(w->bounce, p, direct);
        }
        if (write_all_at(w->dfd, aligned ? p : w->bounce, direct, off) == 0) {
            p += direct;
            len -= direct;
            off += direct;
        } else if (errno != EINVAL) {
            return -1;
        } else {
            w->direct_refused = 1; /* refused here: buffered from now on */
        }
    }
    if (len == 0 || w->fd < 0) {
        return 0;
    }
    if (write_all_at(w->fd, p, len, off) != 0) {
        return -1;
    }
    if (w->large) {
        /* Start the writeback now, so that the flush's fdatasync finds little left to do. */
        (void)sync_file_range(w->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
    }
    return 0;
}

/*
 * Check a chunk against its link values and check value: one SHA-256 pass
 * (its strides hashed side by side where the CPU can) that also carries the
 * item digest on. The hash lane's part; writes only w->h and w->res.
 */
static void chunk_check_only(struct chunk_work *w)
{
    uint8_t got[32];
    if (rdx_tp_sha_links(&w->h, w->data, w->len, w->stride, w->links, w->nlinks,
                         RDX_TP_SHA_FASTEST) != 0 ||
        rdx_tp_chunk_check(&w->h, w->item_size, got) != 0 || memcmp(got, w->want, 32) != 0) {
        w->res = CHUNK_BAD;
    } else if (w->off + w->len == w->item_size && memcmp(got, w->item_sha, 32) != 0) {
        w->res = CHUNK_BAD_ITEM; /* the chunks are the sender's, but not the manifest's item */
    } else {
        w->res = CHUNK_OK;
    }
}

/*
 * Check a chunk and, only if it checks, write it: on the event loop, for
 * small chunks and when the store workers cannot take one.
 */
static void chunk_work_run(struct chunk_work *w)
{
    chunk_check_only(w);
    if (w->res == CHUNK_OK && write_chunk(w) != 0) {
        w->err = errno;
        w->res = CHUNK_NOSTORE;
    }
}

/* One lane is through with j (st->mu held): after the last, the loop takes it. */
static void job_part_done(struct store *st, struct store_job *j)
{
    if (--j->parts == 0) {
        j->done_next = NULL;
        if (st->done_last != NULL) {
            st->done_last->done_next = j;
        } else {
            st->done = j;
        }
        st->done_last = j;
        event_active(st->done_ev, EV_READ, 0);
    }
}

/*
 * A hash thread is through with j (st->mu held). Hash parts are counted in
 * the connection's order, so that its chunks still finish in the order they
 * went: j once the chunk before it is counted, then any hashed ones waiting
 * behind it.
 */
static void hash_release(struct store *st, struct store_job *j)
{
    j->hashed = 1;
    for (struct store_job *r = j; r != NULL && r->hashed && !r->wait_pred;) {
        struct store_job *after = r->succ;
        r->succ = NULL;
        r->released = 1;
        job_part_done(st, r);
        if (after != NULL) {
            after->wait_pred = 0;
        }
        r = after;
    }
}

/* The write lane's part of j, without st->mu. */
static void write_lane_run(const struct store *st, struct store_job *j)
{
    /* Its own fields only: a hash thread is writing w->h and w->res meanwhile. */
    const struct chunk_work *w = &j->w;
    struct chunk_work wr;
    memset(&wr, 0, sizeof wr);
    wr.fd = w->fd;
    wr.dfd = w->dfd;
    wr.large = w->large;
    wr.data = w->data;
    wr.len = w->len;
    wr.off = w->off;
    wr.bounce = st->bounce;
    j->write_res = write_chunk(&wr) != 0 ? (errno != 0 ? errno : EIO) : 0;
    j->w.direct_refused = wr.direct_refused;
    close(wr.fd); /* the job's own duplicates: the connection may close its own */
    if (wr.dfd >= 0) {
        close(wr.dfd);
    }
}

static void *store_main(void *arg)
{
    struct store_lane *ln = arg;
    struct store *st = ln->st;
    (void)pthread_setname_np(pthread_self(), ln->lane == LANE_HASH ? "rdx-hash" : "rdx-write");
    if (ln->lane == LANE_HASH && st->hash_nice > 0) {
        /*
         * On Linux the nice value is per thread. Raising it needs no
         * privilege, so this cannot be refused; docs/transport.md says why.
         */
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), (int)st->hash_nice);
    }
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (ln->todo == NULL && !st->stop) {
            pthread_cond_wait(&ln->cv, &st->mu);
        }
        struct store_job *j = ln->todo;
        if (j == NULL) {
            break;
        }
        ln->todo = j->next[ln->lane];
        if (ln->todo == NULL) {
            ln->todo_last = NULL;
        }
        pthread_mutex_unlock(&st->mu);
        if (ln->lane == LANE_HASH) {
            chunk_check_only(&j->w); /* writes only w->h and w->res */
            pthread_mutex_lock(&st->mu);
            hash_release(st, j);
        } else {
            write_lane_run(st, j);
            pthread_mutex_lock(&st->mu);
            job_part_done(st, j);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Done with the current item's descriptor: a large item's is synced by the next flush. */
static void rx_put_fd(struct rdx_transport_node *n, struct rx *rx)
{
    if (rx->m.items[rx->fd_item].size <= INLINE_MAX) {
        close(rx->fd); /* its bytes are in inbox_blobs */
    } else {
        (void)group_add_fd(n, rx->fd);
    }
    rx->fd = -1;
    rx->fd_item = -1;
}

static rdx_status blob_put(sqlite3 *db, const char *sender, const char *case_id, size_t idx,
                           const uint8_t *p, size_t len)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO inbox_blobs(sender, case_id, idx, data) VALUES "
                           "(?,?,?,?)",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 3, (sqlite3_int64)idx) != SQLITE_OK ||
        sqlite3_bind_blob(s, 4, len > 0 ? (const void *)p : "", (int)len, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        st = RDX_EDB;
    }
    sqlite3_finalize(s);
    return st;
}

static void chunk_done(struct conn *c, struct chunk_work *w, uint16_t item);
static int conn_read(struct conn *c);
static void on_frame(struct conn *c, const rdx_transport_frame *f);

/* Chunks at least this large go to the store workers; smaller ones are handled at once. */
#define STORE_ASYNC_MIN (256u << 10)

/*
 * Whether frame f must wait for the chunks at the workers: anything but the
 * next chunk of the same item waits until they are all done (frames take
 * effect in order), and so does a chunk when the connection has no free slot.
 */
static int must_wait(const struct conn *c, const rdx_transport_frame *f)
{
    if (c->jcount == 0) {
        return 0;
    }
    if (c->jcount >= JOBS_PER_CONN || f->type != RDX_FRAME_CHUNK ||
        c->node->st.inflight >= STORE_INFLIGHT_MAX) {
        return 1;
    }
    struct rdx_tp_chunk ch;
    const struct store_job *last = c->jobs[(c->jhead + c->jcount - 1) % JOBS_PER_CONN];
    return rdx_tp_chunk_decode(f->payload, f->len, &ch, NULL) != RDX_OK || ch.item != last->item ||
           ch.len < STORE_ASYNC_MIN;
}

/*
 * What a chunk's check and write need from the receive state: the item
 * state so far, the chunk's place and check value, the manifest's digest.
 * The caller sets the descriptors and the scratch buffer.
 */
static void chunk_work_fill(struct chunk_work *w, const struct rx *rx,
                            const struct rdx_tp_chunk *ch, const uint8_t *data)
{
    const struct rdx_tp_item *it = &rx->m.items[ch->item];
    w->h = rx->h;
    w->large = it->size > INLINE_MAX;
    w->data = data;
    w->len = ch->len;
    w->off = ch->offset;
    w->item_size = it->size;
    memcpy(w->want, ch->sha256, 32);
    memcpy(w->item_sha, it->sha256, 32);
    w->stride = rdx_tp_link_stride(rx->m.chunk_size);
    w->nlinks = ch->nlinks;
    memcpy(w->links, ch->links, 32 * (size_t)ch->nlinks);
}

/* Hand a large chunk to the store workers. 0 when it went; -1: do it here instead. */
static int store_submit(struct conn *c, const struct rdx_tp_chunk *ch, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    struct store *st = &n->st;
    if (!st->started || !st->lane[LANE_HASH].started || !st->lane[LANE_WRITE].started) {
        return -1;
    }
    if (c->jcount >= JOBS_PER_CONN || st->inflight >= STORE_INFLIGHT_MAX) {
        return -1;
    }
    unsigned slot = (c->jhead + c->jcount) % JOBS_PER_CONN;
    struct store_job *prev =
        c->jcount > 0 ? c->jobs[(c->jhead + c->jcount - 1) % JOBS_PER_CONN] : NULL;
    if (c->jobs[slot] == NULL) {
        c->jobs[slot] = calloc(1, sizeof *c->jobs[slot]);
        if (c->jobs[slot] == NULL) {
            return -1;
        }
        rdx_buf_init(&c->jobs[slot]->buf, RDX_TRANSPORT_FRAME_MAX);
    }
    struct store_job *j = c->jobs[slot];
    struct chunk_work *w = &j->w;
    size_t data_off = (size_t)(ch->data - f->payload);
    memset(w, 0, sizeof *w);
    w->fd = fcntl(rx->fd, F_DUPFD_CLOEXEC, 0);
    w->dfd = rx->dfd >= 0 ? fcntl(rx->dfd, F_DUPFD_CLOEXEC, 0) : -1;
    /* The decoder goes on in a kept buffer (finished chunks leave theirs there): no fresh one. */
    rdx_tp_spare_get(&n->spares, &j->buf);
    if (w->fd < 0 || (rx->dfd >= 0 && w->dfd < 0) ||
        rdx_transport_decoder_take(c->dec, &j->buf, NULL) != RDX_OK) {
        if (w->fd >= 0) {
            close(w->fd);
        }
        if (w->dfd >= 0) {
            close(w->dfd);
        }
        return -1;
    }
    chunk_work_fill(w, rx, ch, j->buf.data + data_off);
    w->bounce = st->bounce;
    j->c = c;
    j->gen = rx->gen;
    j->item = ch->item;
    j->busy = 1;
    j->parts = LANES;
    j->write_res = 0;
    j->hashed = 0;
    j->released = 0;
    j->wait_pred = 0;
    j->succ = NULL;
    c->jcount++;
    st->inflight++;
    if (prev != NULL) {
        /*
         * The chunk before it, of the same item (must_wait), is still at the
         * workers: hash on from the chaining value it claims, which the hash
         * lane checks. An offset off a block boundary leaves rx->h, and the
         * check then fails, as it must.
         */
        (void)rdx_tp_sha_resume(&w->h, prev->w.want, w->off);
    }
    pthread_mutex_lock(&st->mu);
    if (prev != NULL && !prev->released) {
        prev->succ = j;
        j->wait_pred = 1;
    }
    for (int k = 0; k < LANES; k++) {
        struct store_lane *ln = &st->lane[k];
        j->next[k] = NULL;
        if (ln->todo_last != NULL) {
            ln->todo_last->next[k] = j;
        } else {
            ln->todo = j;
        }
        ln->todo_last = j;
        pthread_cond_signal(&ln->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* On the loop: chunks the worker finished. */
static void store_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rdx_transport_node *n = arg;
    struct store *st = &n->st;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&st->mu);
    struct store_job *j = st->done;
    st->done = st->done_last = NULL;
    pthread_mutex_unlock(&st->mu);
    while (j != NULL) {
        struct store_job *next = j->done_next;
        struct conn *c = j->c;
        j->busy = 0;
        /* A connection's jobs finish in the order they went (both lanes are FIFO). */
        c->jhead = (c->jhead + 1) % JOBS_PER_CONN;
        c->jcount--;
        st->inflight--;
        if (j->w.res == CHUNK_OK && j->write_res != 0) {
            j->w.res = CHUNK_NOSTORE;
            j->w.err = j->write_res;
        }
        int use = !c->free_pending && j->gen == c->rx.gen && c->rx.active && !c->closing;
        if (use) {
            chunk_done(c, &j->w, j->item);
        } else if (j->gen == c->rx.gen && c->rx.fd >= 0 && c->rx.fd_item == (long)j->item &&
                   c->rx.durable != NULL &&
                   ftruncate(c->rx.fd, (off_t)c->rx.durable[j->item]) != 0) {
            /* A chunk not taken (the case failed meanwhile): its bytes must not stay either. */
            rdx_log(&n->log, RDX_LOG_ERROR, "cannot truncate an item: %s", strerror(errno));
        }
        /*
         * Its buffer is free now: to the spares, where the connection's next
         * chunk takes it. So a connection holds as many buffers as it has
         * chunks at the workers, not one per slot.
         */
        rdx_tp_spare_put(&n->spares, &j->buf);
        if (c->free_pending) {
            if (c->jcount == 0) {
                conn_free(c);
            }
        } else {
            if (!c->closing) {
                /* The frame that waited behind the chunks, then whatever else is buffered. */
                if (c->held && !must_wait(c, &c->held_f)) {
                    c->held = 0;
                    on_frame(c, &c->held_f);
                }
                if (!c->closing && !c->held) {
                    /* The read buffer may hold records already: read them now. */
                    c->last_rd_ms = mono_ms();
                    (void)conn_read(c);
                }
            }
        }
        j = next;
    }
}

static rdx_status store_start(struct rdx_transport_node *n)
{
    struct store *st = &n->st;
    if (posix_memalign((void **)&st->bounce, DIRECT_ALIGN, RDX_TRANSPORT_CHUNK_MAX) != 0) {
        st->bounce = NULL;
        return RDX_ENOMEM;
    }
    st->done_ev = event_new(n->base, -1, 0, store_done_cb, n);
    if (st->done_ev == NULL || pthread_mutex_init(&st->mu, NULL) != 0) {
        return RDX_ENOMEM;
    }
    st->started = 1; /* the mutex exists: store_stop tears down what follows */
    st->hash_nice = n->cfg->hash_nice;
    for (int k = 0; k < LANES; k++) {
        struct store_lane *ln = &st->lane[k];
        ln->st = st;
        ln->lane = k;
        if (pthread_cond_init(&ln->cv, NULL) != 0) {
            return RDX_EINTERNAL;
        }
        ln->cv_made = 1;
        for (int t = 0; t < (k == LANE_HASH ? HASH_THREADS : 1); t++) {
            if (pthread_create(&ln->th[t], NULL, store_main, ln) != 0) {
                return RDX_EINTERNAL;
            }
            ln->started++;
        }
    }
    return RDX_OK;
}

/* Let the workers finish what they have, then deliver the results (the loop is not running). */
static void store_stop(struct rdx_transport_node *n)
{
    struct store *st = &n->st;
    if (st->started) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        for (int k = 0; k < LANES; k++) {
            if (st->lane[k].cv_made) {
                pthread_cond_broadcast(&st->lane[k].cv);
            }
        }
        pthread_mutex_unlock(&st->mu);
        for (int k = 0; k < LANES; k++) {
            struct store_lane *ln = &st->lane[k];
            for (int t = 0; t < ln->started; t++) {
                pthread_join(ln->th[t], NULL);
            }
            ln->started = 0;
            if (ln->cv_made) {
                pthread_cond_destroy(&ln->cv);
                ln->cv_made = 0;
            }
        }
        if (st->done != NULL) {
            store_done_cb(-1, 0, n);
        }
        pthread_mutex_destroy(&st->mu);
        st->started = 0;
    }
    if (st->done_ev != NULL) {
        event_free(st->done_ev);
        st->done_ev = NULL;
    }
    free(st->bounce);
    st->bounce = NULL;
}

static void on_chunk(struct conn *c, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    struct rdx_tp_chunk ch;
    rdx_error err;
    char path[4300];
    if (!rx->active) {
        if (c->skip[0] && rdx_tp_chunk_decode(f->payload, f->len, &ch, NULL) == RDX_OK &&
            strcmp(ch.case_id, c->skip) == 0) {
            return; /* the case is here already */
        }
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
    /* Written and checked, plus what is at the workers (always of this item, see must_wait). */
    uint64_t have = rx->durable[ch.item];
    for (unsigned k = 0; k < c->jcount; k++) {
        have += c->jobs[(c->jhead + k) % JOBS_PER_CONN]->w.len;
    }
    /* Every chunk but an item's last is exactly the chunk size: boundaries are fixed. */
    if (ch.offset != have || ch.len > rx->m.chunk_size || ch.len > it->size - have ||
        (ch.len != rx->m.chunk_size && have + ch.len != it->size)) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1,
               "item %u: chunk at offset %llu of %zu bytes, expected offset %llu and %llu "
               "bytes within %llu",
               ch.item, (unsigned long long)ch.offset, ch.len, (unsigned long long)have,
               (unsigned long long)(it->size - have < rx->m.chunk_size ? it->size - have
                                                                       : rx->m.chunk_size),
               (unsigned long long)it->size);
        return;
    }
    uint32_t stride = rdx_tp_link_stride(rx->m.chunk_size);
    size_t strides = stride > 0 ? (ch.len + stride - 1) / stride : 0;
    if (ch.nlinks != 0 && ch.nlinks + 1 != strides) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1,
               "item %u: chunk at offset %llu carries %u link values, expected 0 or %zu", ch.item,
               (unsigned long long)ch.offset, ch.nlinks, strides - 1);
        return;
    }
    if (rx->h_item != (long)ch.item) {
        /* The item hash runs over the chunks in order: an item starts at zero, one at a time. */
        if (have != 0) {
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_PROTOCOL, 1,
                   "item %u: chunks must arrive item by item, in order", ch.item);
            return;
        }
        rdx_tp_sha_init(&rx->h);
        rx->h_item = ch.item;
    }
    if (!rx->all_inline && rx->fd_item != (long)ch.item) {
        if (rx->fd >= 0) {
            rx_put_fd(n, rx);
        }
        if (rx->dfd >= 0) {
            close(rx->dfd);
            rx->dfd = -1;
        }
        snprintf(path, sizeof path, "%s/%u", rx->dir, ch.item);
        rx->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (have == 0 ? O_TRUNC : 0), 0600);
        /* Bytes past the durable mark are from a write never confirmed: drop them. */
        if (rx->fd < 0 || (have > 0 && ftruncate(rx->fd, (off_t)have) != 0)) {
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot open item %u: %s", ch.item,
                   strerror(errno));
            return;
        }
        rx->fd_item = ch.item;
        if (it->size >= DIRECT_MIN) {
            /* Not every file system has O_DIRECT (tmpfs): then writes stay buffered. */
            rx->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
        }
    }
    if (ch.len >= STORE_ASYNC_MIN && it->size > INLINE_MAX && store_submit(c, &ch, f) == 0) {
        return; /* chunk_done follows when the workers are through */
    }
    if (c->jcount > 0) {
        /* The workers could not take it (out of memory): it waits for those they have. */
        c->held = 1;
        c->held_f = *f;
        conn_arm(c);
        return;
    }
    struct chunk_work w;
    memset(&w, 0, sizeof w);
    w.fd = rx->all_inline ? -1 : rx->fd; /* -1: the bytes go to node.db only (blob_put) */
    w.dfd = rx->all_inline ? -1 : rx->dfd;
    if (rx->dfd >= 0 && n->g.bounce == NULL &&
        posix_memalign((void **)&n->g.bounce, DIRECT_ALIGN, RDX_TRANSPORT_CHUNK_MAX) != 0) {
        n->g.bounce = NULL;
    }
    chunk_work_fill(&w, rx, &ch, ch.data);
    w.bounce = n->g.bounce;
    chunk_work_run(&w);
    chunk_done(c, &w, ch.item);
}

/* A chunk was checked (and written, if it checked): account for it, or refuse it. */
static void chunk_done(struct conn *c, struct chunk_work *w, uint16_t item)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    const struct rdx_tp_item *it = &rx->m.items[item];
    char detail[400];
    if (w->direct_refused && rx->dfd >= 0) {
        close(rx->dfd);
        rx->dfd = -1;
    }
    switch (w->res) {
    case CHUNK_OK:
        break;
    case CHUNK_BAD:
        /* The write lane may have stored it already: it never counts, and it goes. */
        if (!rx->all_inline && rx->fd >= 0 && ftruncate(rx->fd, (off_t)rx->durable[item]) != 0) {
            rdx_log(&n->log, RDX_LOG_ERROR, "%s/%u: cannot truncate: %s", rx->dir, item,
                    strerror(errno));
        }
        snprintf(detail, sizeof detail, "item %u chunk at offset %llu failed its SHA-256 check",
                 item, (unsigned long long)w->off);
        audit(n, "chunk-rejected", RDX_TP_OUTCOME_MINOR, c->peer, rx->m.case_id, detail);
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1, "%s; send it again", detail);
        return;
    case CHUNK_BAD_ITEM:
        /* The item is not what the manifest promised: it restarts from zero. */
        if (!rx->all_inline && ftruncate(rx->fd, 0) != 0) {
            rdx_log(&n->log, RDX_LOG_ERROR, "%s/%u: cannot truncate: %s", rx->dir, item,
                    strerror(errno));
        }
        rx->durable[item] = 0;
        rx->h_item = -1;
        if (group_begin(n) == 0 &&
            inbox_set_durable(n->db, c->peer, rx->m.case_id, item, 0) == RDX_OK) {
            rx->committed[item] = 0;
        }
        snprintf(detail, sizeof detail, "item %u ('%s') failed its SHA-256; it restarts", item + 1u,
                 it->name);
        audit(n, "case-refused", RDX_TP_OUTCOME_MINOR, c->peer, rx->m.case_id, detail);
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_ITEM, 1, "%s", detail);
        return;
    case CHUNK_NOSTORE: {
        int e = w->err;
        /* Nothing half-written stays: cut back to what is recorded durable. */
        if (rx->fd >= 0 && ftruncate(rx->fd, (off_t)rx->committed[item]) != 0) {
            e = errno;
        }
        rx->durable[item] = rx->committed[item];
        snprintf(detail, sizeof detail, "cannot store item %u at offset %llu: %s", item,
                 (unsigned long long)w->off, strerror(e));
        audit(n, "case-refused", RDX_TP_OUTCOME_SERIOUS, c->peer, rx->m.case_id, detail);
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "%s", detail);
        return;
    }
    }
    rx->h = w->h;
    rx->durable[item] += w->len;
    rx->dirty = 1;
    if (rx->durable[item] == it->size) {
        rx->h_item = -1; /* checked whole: the last chunk's check value is the item's SHA-256 */
        if (it->size <= INLINE_MAX &&
            (group_begin(n) != 0 ||
             blob_put(n->db, c->peer, rx->m.case_id, item, w->data, w->len) != RDX_OK)) {
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: %s", sqlite3_errmsg(n->db));
            return;
        }
    }
    if (rx->durable[item] - rx->committed[item] >= CHECKPOINT_BYTES) {
        group_want(n, GROUP_ACK_WINDOW_MS); /* a resume point for a large item */
    }
}

static void on_commit(struct conn *c, const rdx_transport_frame *f)
{
    struct rdx_transport_node *n = c->node;
    struct rx *rx = &c->rx;
    char case_id[RDX_TRANSPORT_CASE_ID_MAX + 1];
    int flag;
    rdx_error err;
    unsigned char empty[32];
    if (!rx->active) {
        if (c->skip[0] &&
            rdx_tp_caseref_decode(f->payload, f->len, case_id, &flag, NULL) == RDX_OK &&
            strcmp(case_id, c->skip) == 0) {
            c->skip[0] = '\0'; /* already acknowledged as a duplicate */
            return;
        }
        refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "COMMIT without an accepted OFFER");
        return;
    }
    if (rdx_tp_caseref_decode(f->payload, f->len, case_id, &flag, &err) != RDX_OK ||
        strcmp(case_id, rx->m.case_id) != 0) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_PROTOCOL, 1, "COMMIT names another case");
        return;
    }
    if (EVP_Digest("", 0, empty, NULL, EVP_sha256(), NULL) != 1) {
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_INTERNAL, 1, "cannot hash");
        return;
    }
    uint64_t total = 0;
    /* Every item was checked against its SHA-256 as its last chunk arrived. */
    for (size_t i = 0; i < rx->m.nitems; i++) {
        const struct rdx_tp_item *it = &rx->m.items[i];
        if (rx->durable[i] != it->size) {
            refuse(c, rx->m.case_id, RDX_TP_REFUSE_CHUNK, 1,
                   "COMMIT with item %zu at %llu of %llu bytes", i + 1,
                   (unsigned long long)rx->durable[i], (unsigned long long)it->size);
            return;
        }
        if (it->size == 0) {
            char path[4300];
            if (memcmp(it->sha256, empty, 32) != 0) {
                char detail[400];
                snprintf(detail, sizeof detail, "item %zu ('%s') failed its SHA-256; it restarts",
                         i + 1, it->name);
                audit(n, "case-refused", RDX_TP_OUTCOME_MINOR, c->peer, rx->m.case_id, detail);
                refuse(c, rx->m.case_id, RDX_TP_REFUSE_ITEM, 1, "%s", detail);
                return;
            }
            snprintf(path, sizeof path, "%s/%zu", rx->dir, i);
            /* An all-small case gets its files from the spill thread. */
            int fd = -1;
            if (!rx->all_inline && (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0) {
                refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot create item %zu: %s",
                       i + 1, strerror(errno));
                return;
            }
            if (fd >= 0) {
                close(fd);
            }
            if (group_begin(n) != 0 ||
                blob_put(n->db, c->peer, rx->m.case_id, i, NULL, 0) != RDX_OK) {
                refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "cannot record item %zu: %s",
                       i + 1, sqlite3_errmsg(n->db));
                return;
            }
        }
        total += it->size;
    }
    if (rx->fd >= 0) {
        rx_put_fd(n, rx);
    }
    if (!rx->all_inline) {
        (void)group_add_dir(n, rx->dir);
    }
    char detail[300];
    snprintf(detail, sizeof detail, "%s case, %zu items, %llu bytes",
             rdx_transport_kind_name(rx->m.kind), rx->m.nitems, (unsigned long long)total);
    /* The state change and its audit record join the group; the ACK waits for its sync. */
    sqlite3_stmt *s = NULL;
    int ok =
        group_begin(n) == 0 && sqlite3_exec(n->db, "SAVEPOINT done", NULL, NULL, NULL) == SQLITE_OK;
    int sp = ok;
    ok = ok &&
         sqlite3_prepare_v2(n->db,
                            "UPDATE inbox SET state='complete', done_ms=? WHERE sender=? AND "
                            "case_id=? AND state='receiving'",
                            -1, &s, NULL) == SQLITE_OK &&
         sqlite3_bind_int64(s, 1, rdx_clock_wall_ms()) == SQLITE_OK &&
         sqlite3_bind_text(s, 2, c->peer, -1, SQLITE_STATIC) == SQLITE_OK &&
         sqlite3_bind_text(s, 3, rx->m.case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
         sqlite3_step(s) == SQLITE_DONE && sqlite3_changes(n->db) == 1;
    sqlite3_finalize(s);
    for (size_t i = 0; ok && i < rx->m.nitems; i++) {
        if (rx->committed[i] != rx->durable[i]) {
            ok = inbox_set_durable(n->db, c->peer, rx->m.case_id, i, rx->durable[i]) == RDX_OK;
        }
    }
    ok = ok && rdx_tp_audit(n->db, n->cfg->id, "case-received", RDX_TP_OUTCOME_SUCCESS, c->peer,
                            rx->m.case_id, detail, &err) == RDX_OK;
    ok = ok && sqlite3_exec(n->db, "RELEASE done", NULL, NULL, NULL) == SQLITE_OK;
    struct group *g = &n->g;
    ok = ok && grow((void **)&g->acks, &g->capacks, g->nacks + 1, sizeof *g->acks) == 0;
    if (!ok) {
        if (sp) {
            sqlite3_exec(n->db, "ROLLBACK TO done; RELEASE done", NULL, NULL, NULL);
        }
        refuse(c, rx->m.case_id, RDX_TP_REFUSE_STORAGE, 1, "store: %s", sqlite3_errmsg(n->db));
        return;
    }
    rdx_log(&n->log, RDX_LOG_INFO, "received case %s from %s: %s", rx->m.case_id, c->peer, detail);
    for (int k = 0; c->jcount == 0 && k < JOBS_PER_CONN; k++) {
        /* Between cases a connection holds no chunk-sized buffer: the node keeps a few. */
        if (c->jobs[k] != NULL) {
            rdx_tp_spare_put(&n->spares, &c->jobs[k]->buf);
        }
    }
    g->spill += rx->m.nitems > 0; /* every case has blobs unless all its items are large */
    g->acks[g->nacks].c = c;
    snprintf(g->acks[g->nacks].case_id, sizeof g->acks[g->nacks].case_id, "%s", rx->m.case_id);
    g->nacks++;
    rx_reset(rx);
    if (g->nacks >= GROUP_ACKS_MAX) {
        (void)group_flush(n);
    } else {
        group_want(n, GROUP_ACK_WINDOW_MS);
    }
}

/* Whether the connection's case still has chunks to come (an item larger than INLINE_MAX). */
static int rx_expects_chunks(const struct rx *rx)
{
    for (size_t i = 0; rx->active && i < rx->m.nitems; i++) {
        if (rx->m.items[i].size > INLINE_MAX && rx->durable[i] < rx->m.items[i].size) {
            return 1;
        }
    }
    return 0;
}

/*
 * After a frame other than a chunk: the decoder holds a chunk buffer only
 * while the connection's case expects chunks. It gets one of the node's
 * spares when such a case is offered and gives its buffer back when the case
 * ends (rdx_transport_decoder_take swaps; the frame was handled already).
 * Only an offer or a commit changes what the case expects; after any other
 * frame (a ping between two chunks, say) a chunk buffer is kept where it is
 * (rdx_transport_decoder_keep): the decoder would otherwise drop it.
 */
static void dec_fit(struct conn *c, unsigned type)
{
    struct rdx_tp_spares *sp = &c->node->spares;
    int big = rdx_transport_decoder_footprint(c->dec) >= RDX_TRANSPORT_ALIGN_MIN;
    int want =
        type == RDX_FRAME_OFFER || type == RDX_FRAME_COMMIT ? rx_expects_chunks(&c->rx) : big;
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_FRAME_MAX);
    if (c->closing) {
        return;
    }
    if (want == big) {
        if (big) {
            (void)rdx_transport_decoder_keep(c->dec, NULL);
        }
        return;
    }
    if (want) {
        rdx_tp_spare_get(sp, &b);
        if (b.cap == 0) {
            return; /* none kept: the decoder allocates at the first chunk */
        }
    }
    (void)rdx_transport_decoder_take(c->dec, &b, NULL);
    rdx_tp_spare_put(sp, &b); /* the decoder's old buffer: kept if chunk-sized, else freed */
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
    if (f->type != RDX_FRAME_CHUNK) {
        dec_fit(c, f->type);
    }
}

/* ---- connection I/O --------------------------------------------------------- */

/*
 * Why not libevent's OpenSSL bufferevents: they decrypt into an evbuffer,
 * from which every byte is copied again into the frame, and OpenSSL reads
 * each record with two read(2) calls. Here SSL_read decrypts into the
 * decoder's own buffer (rdx_transport_decoder_space), and the socket is read
 * in TLS_READ_BATCH gulps.
 *
 * Rules: everything runs on the loop thread. conn_read, conn_write and
 * conn_handshake return -1 when they freed the connection (the caller must
 * not touch it again). conn_arm makes the registered events match the state.
 */

static void refuse_connection(struct conn *c, const char *reason)
{
    char object[96];
    snprintf(object, sizeof object, "tcp:%s", c->addr);
    audit(c->node, "connection-refused", RDX_TP_OUTCOME_SERIOUS, c->verdict.claimed, object,
          reason);
    rdx_log(&c->node->log, RDX_LOG_WARN, "refused connection from %s: %s", c->addr, reason);
}

/*
 * Whether the connection reads now: not while a frame waits for the workers,
 * nor while the peer has not taken its answers, nor when closing.
 */
static int conn_reading(const struct conn *c)
{
    return !c->stopped && (!c->hs_done || (!c->closing && !c->held &&
                                           evbuffer_get_length(c->out) < OUTPUT_HIGH_WATER));
}

static void conn_timer_arm(struct conn *c)
{
    if (c->stopped) {
        return;
    }
    int64_t due = 0;
    if (conn_reading(c)) {
        due = c->last_rd_ms + c->rt_ms;
    }
    if (evbuffer_get_length(c->out) > 0) {
        int64_t w = c->last_wr_ms + c->wt_ms;
        due = due == 0 || w < due ? w : due;
    }
    if (due == 0 || (c->tev_due_ms != 0 && c->tev_due_ms <= due)) {
        return; /* nothing to time, or the timer fires first anyway and looks again */
    }
    int64_t left = due - mono_ms();
    left = left < 0 ? 0 : left;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    if (event_add(c->tev, &tv) == 0) {
        c->tev_due_ms = due;
    }
}

static void conn_arm(struct conn *c)
{
    int want_r = 0, want_w = 0;
    if (!c->stopped) {
        if (!c->hs_done) {
            want_r = c->hs_want != EV_WRITE;
            want_w = c->hs_want == EV_WRITE;
        } else {
            int pending = evbuffer_get_length(c->out) > 0;
            want_r = (conn_reading(c) && !c->rd_wants_write) || (pending && c->wr_wants_read);
            want_w = (pending && !c->wr_wants_read) || (conn_reading(c) && c->rd_wants_write);
        }
    }
    if (want_r != c->rev_on) {
        c->rev_on = want_r ? event_add(c->rev, NULL) == 0 : (event_del(c->rev), 0);
    }
    if (want_w != c->wev_on) {
        c->wev_on = want_w ? event_add(c->wev, NULL) == 0 : (event_del(c->wev), 0);
    }
    if (c->stopped) {
        event_del(c->tev);
        c->tev_due_ms = 0;
    } else {
        conn_timer_arm(c);
    }
}

/*
 * The read timeout depends on where the stream is: the handshake, inside a
 * frame or a case, or idle between cases.
 */
static void set_timeouts(struct conn *c)
{
    const rdx_transport_config *cfg = c->node->cfg;
    c->rt_ms = !c->hs_done || !c->authed                                   ? cfg->handshake_ms
               : rdx_transport_decoder_pending(c->dec) > 0 || c->rx.active ? cfg->read_ms
                                                                           : cfg->idle_ms;
    c->wt_ms = cfg->read_ms;
    conn_arm(c);
}

/* The first error in OpenSSL's queue (the cause; later ones are consequences), and clear it. */
static unsigned long first_ssl_error(void)
{
    unsigned long e = ERR_get_error(), x;
    while ((x = ERR_get_error()) != 0) {
    }
    return e;
}

/*
 * The connection ends: say why (a handshake that failed is a refused
 * connection, with its audit record), then free it. what: 'e' error (ssl_err
 * from OpenSSL, or errno), 't' read or idle timeout, 'w' write timeout (the
 * peer does not take its answers), 'z' the peer closed with close_notify.
 */
static void conn_end(struct conn *c, char what, unsigned long ssl_err, int sys_errno)
{
    struct rdx_transport_node *n = c->node;
    if (!c->authed) {
        char reason[512];
        if (what == 't' || what == 'w') {
            snprintf(reason, sizeof reason, "TLS handshake not finished within %u ms",
                     n->cfg->handshake_ms);
        } else {
            rdx_tp_tls_reason(&c->verdict, ssl_err, reason, sizeof reason);
        }
        refuse_connection(c, reason);
    } else if (what == 't') {
        int mid = rdx_transport_decoder_pending(c->dec) > 0 || c->rx.active;
        rdx_log(&n->log, RDX_LOG_WARN, "closing %s (%s): %s timeout", c->peer, c->addr,
                mid ? "read" : "idle");
        if (mid) {
            audit(n, "connection-timeout", RDX_TP_OUTCOME_MINOR, c->peer, c->addr,
                  "peer stopped sending in the middle of a case");
        }
    } else if (what == 'w') {
        rdx_log(&n->log, RDX_LOG_WARN,
                "closing %s (%s): write timeout (%zu bytes of answers not taken in %u ms)", c->peer,
                c->addr, evbuffer_get_length(c->out), c->wt_ms);
    } else if (what == 'e') {
        char buf[256] = "";
        if (ERR_GET_LIB(ssl_err) == ERR_LIB_SSL &&
            ERR_GET_REASON(ssl_err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            snprintf(buf, sizeof buf, "peer closed the connection (no TLS close_notify)");
        } else if (ssl_err != 0) {
            ERR_error_string_n(ssl_err, buf, sizeof buf);
        } else if (sys_errno != 0) {
            snprintf(buf, sizeof buf, "%s", strerror(sys_errno));
        } else {
            snprintf(buf, sizeof buf, "peer closed the connection");
        }
        rdx_log(&n->log, RDX_LOG_INFO, "connection from %s (%s) ended: %s", c->peer, c->addr, buf);
    }
    ERR_clear_error();
    conn_free(c);
}

/* An SSL call failed with r: 0 when it only has to wait (conn_arm is done), -1 when c is gone. */
static int conn_ssl_wait(struct conn *c, int r, int reading)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        if (!reading) {
            c->wr_wants_read = 1;
        }
        conn_arm(c);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        if (reading) {
            c->rd_wants_write = 1;
        }
        conn_arm(c);
        return 0;
    }
    int sys = errno;
    unsigned long ssl_err = first_ssl_error();
    if (e == SSL_ERROR_ZERO_RETURN) {
        conn_end(c, 'z', 0, 0);
    } else {
        conn_end(c, 'e', ssl_err, e == SSL_ERROR_SYSCALL ? sys : 0);
    }
    return -1;
}

/* The handshake is through: who is it? The institution comes from the certificate only. */
static int conn_connected(struct conn *c)
{
    struct rdx_transport_node *n = c->node;
    rdx_error err;
    c->hs_done = 1;
    if (rdx_tp_tls_peer(c->ssl, c->peer, sizeof c->peer, c->serial, sizeof c->serial, &err) !=
        RDX_OK) {
        refuse_connection(c, err.msg);
        conn_free(c);
        return -1;
    }
    char when[32];
    /*
     * Its handshake began under the CRL before the one now in force (a new
     * one was loaded meanwhile), and OpenSSL verified it against that one:
     * the new CRL has its say too.
     */
    if (SSL_get_SSL_CTX(c->ssl) != n->sctx &&
        rdx_tp_crl_revokes(rdx_tp_tls_ctx_crl(n->sctx), SSL_get0_peer_certificate(c->ssl), when,
                           sizeof when)) {
        char reason[300];
        snprintf(c->verdict.claimed, sizeof c->verdict.claimed, "%s", c->peer);
        snprintf(reason, sizeof reason, "certificate revoked, claims institution %s, serial %s",
                 c->peer, c->serial);
        refuse_connection(c, reason);
        conn_free(c);
        return -1;
    }
    c->authed = 1;
    char object[96], detail[160];
    snprintf(object, sizeof object, "tcp:%s", c->addr);
    snprintf(detail, sizeof detail, "TLS 1.3 mutual authentication, certificate serial %s",
             c->serial);
    audit(n, "connection-accepted", RDX_TP_OUTCOME_SUCCESS, c->peer, object, detail);
    rdx_log(&n->log, RDX_LOG_INFO, "accepted %s from %s (serial %s)", c->peer, c->addr, c->serial);
    c->last_rd_ms = mono_ms();
    set_timeouts(c);
    return 0;
}

static int conn_handshake(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        if (conn_connected(c) != 0) {
            return -1;
        }
        /* The peer's first frames may have come with its last handshake message. */
        return conn_read(c);
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->hs_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        conn_arm(c);
        return 0;
    }
    conn_end(c, 'e', first_ssl_error(), 0);
    return -1;
}

/*
 * Read and act on frames until OpenSSL has nothing more, a frame must wait for
 * the store workers, the connection closes, or the turn's budget is spent.
 */
static int conn_read(struct conn *c)
{
    rdx_error err;
    size_t budget = READ_BUDGET;
    c->rd_wants_write = 0;
    while (conn_reading(c) && c->hs_done) {
        uint8_t *p = NULL;
        size_t room = 0, got = 0;
        int have = 0;
        rdx_transport_frame f;
        if (rdx_transport_decoder_space(c->dec, &p, &room, &err) != RDX_OK) {
            refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "%s", err.msg);
            break;
        }
        if (budget == 0) {
            /*
             * The rest in the loop's next turn, through its own event: an
             * event_active'd rev would be skipped by a following event_add.
             */
            event_active(c->more, EV_READ, 0);
            break;
        }
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, p, room < budget ? room : budget, &got);
        if (r != 1) {
            if (conn_ssl_wait(c, r, 1) != 0) {
                return -1;
            }
            break;
        }
        budget -= got;
        if (rdx_transport_decoder_commit(c->dec, got, &f, &have, &err) != RDX_OK) {
            audit(c->node, "protocol-error", RDX_TP_OUTCOME_SERIOUS, c->peer, c->addr, err.msg);
            refuse(c, "", RDX_TP_REFUSE_PROTOCOL, 1, "%s", err.msg);
            break;
        }
        if (have && must_wait(c, &f)) {
            /* It waits for the chunks at the workers; so does the rest of the input. */
            c->held = 1;
            c->held_f = f;
            break;
        }
        if (have) {
            on_frame(c, &f);
        }
    }
    if (budget < READ_BUDGET) {
        c->last_rd_ms = mono_ms(); /* bytes came: the read timeout runs from now */
    }
    if (!c->stopped) {
        set_timeouts(c);
    }
    return 0;
}

/* Write what is queued, as far as the socket takes it. */
static int conn_write(struct conn *c)
{
    c->wr_wants_read = 0;
    while (!c->stopped && evbuffer_get_length(c->out) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
            break;
        }
        size_t w = 0;
        ERR_clear_error();
        int r = SSL_write_ex(c->ssl, v.iov_base, v.iov_len, &w);
        if (r != 1) {
            return conn_ssl_wait(c, r, 0);
        }
        size_t before = evbuffer_get_length(c->out);
        evbuffer_drain(c->out, w);
        c->last_wr_ms = mono_ms();
        if (before >= OUTPUT_HIGH_WATER && before - w < OUTPUT_HIGH_WATER && conn_reading(c)) {
            /* Below the mark again: read on (the read buffer may hold records already). */
            c->last_rd_ms = c->last_wr_ms;
            if (conn_read(c) != 0) {
                return -1;
            }
        }
    }
    if (c->drain_close && evbuffer_get_length(c->out) == 0) {
        conn_free(c);
        return -1;
    }
    conn_arm(c);
    return 0;
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    if (c->stopped) {
        return;
    }
    if (!c->hs_done) {
        (void)conn_handshake(c);
        return;
    }
    /* A read that waited for writability, or a write that waited for readability, goes first. */
    if ((what & EV_READ) && c->wr_wants_read && conn_write(c) != 0) {
        return;
    }
    if ((what & EV_WRITE) && c->rd_wants_write && conn_read(c) != 0) {
        return;
    }
    if ((what & EV_READ) && conn_reading(c) && conn_read(c) != 0) {
        return;
    }
    if ((what & EV_WRITE) && !c->stopped) {
        (void)conn_write(c);
    }
}

static void conn_more_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->hs_done && conn_reading(c)) {
        (void)conn_read(c);
    }
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    c->tev_due_ms = 0;
    if (c->stopped) {
        return;
    }
    int64_t now = mono_ms();
    if (evbuffer_get_length(c->out) > 0 && now - c->last_wr_ms >= (int64_t)c->wt_ms) {
        conn_end(c, 'w', 0, 0);
        return;
    }
    if (conn_reading(c) && now - c->last_rd_ms >= (int64_t)c->rt_ms) {
        conn_end(c, 't', 0, 0);
        return;
    }
    conn_timer_arm(c);
}

/*
 * Every peer is checked against the CRL, and OpenSSL refuses all of them once
 * the CRL is past its nextUpdate (RFC 5280 section 6.3.3: a CRL past
 * nextUpdate cannot tell whether a certificate has been revoked since). The
 * node fails closed: while its CRL is expired every new connection, accepted
 * or made by the delivery thread, is refused ("CRL has expired"), revoked
 * certificates included, and the connections verified before the expiry are
 * closed as it happens, since they are no better known than a new one
 * (docs/transport.md). Say so in advance: a warning in the log every hour in
 * the last CRL_WARN_DAYS; an error every hour once it has expired, with one
 * crl-expired audit record per expiry; and a crl-renewed record when a new CRL
 * ends it. The check runs at start-up too, so an operator who starts a node
 * with an expired CRL is told at once, and a second after nextUpdate when
 * that comes within the hour, so the record marks the moment it expired.
 */
#define CRL_WARN_DAYS 2 /* CRLs are published for 7 days by default: warn in the last two */

/*
 * How often the node looks at the CRL file (one stat) for a new version. A
 * revocation takes effect on the connections already open within this much
 * of being published (and on new ones at once: every accept looks too).
 */
#define CRL_WATCH_MS 5000

/*
 * This node's CRL has expired: every authenticated connection still open
 * was verified against a CRL that can no longer be trusted, and is closed
 * like a new one would be refused. Its case in progress keeps its durable
 * bytes as a resume point (conn_free), and nothing it has not had
 * acknowledged is acknowledged now.
 */
static void crl_expired_close(struct rdx_transport_node *n, const char *state)
{
    for (struct conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->authed || c->stopped) {
            continue; /* not through its handshake (refused there), or being freed already */
        }
        char object[96], detail[300];
        snprintf(object, sizeof object, "tcp:%s", c->addr);
        snprintf(detail, sizeof detail,
                 "this node's CRL %s: the connection (certificate serial %s) was closed, as a new "
                 "one would be refused",
                 state, c->serial);
        audit(n, "connection-closed", RDX_TP_OUTCOME_MINOR, c->peer, object, detail);
        rdx_log(&n->log, RDX_LOG_WARN, "closing %s (%s): this node's CRL %s", c->peer, c->addr,
                state);
        conn_free(c);
    }
}

/*
 * The CRL in force cannot be used now (state 2 expired, 3 not yet valid):
 * the error, one audit record per state entered, and the connections open
 * closed (why says what is wrong with it, for their records).
 */
static void crl_fail_closed(struct rdx_transport_node *n, int state, const char *event,
                            const char *detail, const char *why)
{
    rdx_log(&n->log, RDX_LOG_ERROR, "%s", detail);
    if (n->crl_state != state) {
        audit(n, event, RDX_TP_OUTCOME_SERIOUS, n->cfg->id, n->cfg->crl, detail);
    }
    n->crl_state = state;
    crl_expired_close(n, why);
}

/*
 * Check the nextUpdate of the CRL in force (the one loaded, not whatever the
 * file holds now); returns the seconds left (<= 0: expired; INT64_MAX: none).
 * A CRL whose lastUpdate (thisUpdate) is still to come is no more usable
 * (RFC 5280 section 6.3.3 (a)(2); OpenSSL refuses every peer with it, "CRL
 * is not yet valid"), and is treated as an expired one is: an error, one
 * crl-not-yet-valid record, the connections open closed, crl-renewed when
 * it ends; then the seconds until its lastUpdate are returned (> 0), so that
 * the check runs again a second after it.
 */
static int64_t crl_check_expiry(struct rdx_transport_node *n)
{
    X509_CRL *crl = rdx_tp_tls_ctx_crl(n->sctx);
    const ASN1_TIME *next = crl != NULL ? X509_CRL_get0_nextUpdate(crl) : NULL;
    int64_t until = next != NULL ? rdx_tp_asn1_time_unix(next) : 0;
    int64_t from = crl != NULL ? rdx_tp_asn1_time_unix(X509_CRL_get0_lastUpdate(crl)) : 0;
    int64_t now_s = rdx_clock_wall_ms() / 1000;
    char detail[4600], when[32], state[64];
    if (from > now_s) {
        rdx_tp_time_text(from, when, sizeof when);
        snprintf(detail, sizeof detail,
                 "CRL %s is not yet valid (from %s, in %lld s): every new connection, in and out, "
                 "is refused until then or until a current one is published (rdx pki crl); is "
                 "this node's clock or the CA's wrong?",
                 n->cfg->crl, when, (long long)(from - now_s));
        snprintf(state, sizeof state, "is not valid until %s", when);
        crl_fail_closed(n, 3, "crl-not-yet-valid", detail, state);
        return from - now_s;
    }
    if (until == 0) {
        if (n->crl_state == 3) {
            snprintf(detail, sizeof detail, "CRL %s is valid now", n->cfg->crl);
            rdx_log(&n->log, RDX_LOG_INFO, "%s", detail);
            audit(n, "crl-renewed", RDX_TP_OUTCOME_SUCCESS, n->cfg->id, n->cfg->crl, detail);
        }
        n->crl_state = 0;
        return INT64_MAX; /* no nextUpdate: nothing to warn about */
    }
    int64_t left = until - now_s;
    rdx_tp_time_text(until, when, sizeof when);
    if (left <= 0) {
        snprintf(detail, sizeof detail,
                 "CRL %s expired at %s (%lld h ago): every new connection, in and out, is refused "
                 "until a new one is published (rdx pki crl)",
                 n->cfg->crl, when, (long long)(-left / 3600));
        snprintf(state, sizeof state, "expired at %s", when);
        crl_fail_closed(n, 2, "crl-expired", detail, state);
        return left;
    }
    if (n->crl_state == 2 || n->crl_state == 3) {
        snprintf(detail, sizeof detail, "CRL %s is %s: valid until %s", n->cfg->crl,
                 n->crl_state == 2 ? "current again" : "valid now", when);
        rdx_log(&n->log, RDX_LOG_INFO, "%s", detail);
        audit(n, "crl-renewed", RDX_TP_OUTCOME_SUCCESS, n->cfg->id, n->cfg->crl, detail);
    }
    if (left < CRL_WARN_DAYS * 86400) {
        rdx_log(&n->log, RDX_LOG_WARN,
                "CRL %s expires in %lld h (at %s): publish a new one (rdx pki crl) or every peer "
                "will be refused",
                n->cfg->crl, (long long)(left / 3600), when);
        n->crl_state = 1;
    } else {
        n->crl_state = 0;
    }
    return left;
}

/* Check now, then again in an hour, or a second after nextUpdate if that comes first. */
static void crl_check_and_arm(struct rdx_transport_node *n)
{
    int64_t left = crl_check_expiry(n);
    struct timeval next = {3600, 0};
    if (left > 0 && left < 3600) {
        next.tv_sec = (time_t)left + 1;
    }
    (void)event_add(n->crl_timer, &next); /* a pending timer is moved, not doubled */
}

static void crl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rdx_transport_node *n = arg;
    (void)fd;
    (void)what;
    crl_check_and_arm(n);
}

/*
 * A new CRL is in force: every authenticated connection's peer certificate
 * is checked against it (the certificate itself, not only the serial kept
 * in c->serial: the CRL's issuer must match the certificate's). A revoked
 * peer is closed at once, through conn_free, the path of any connection
 * that breaks: a case in progress keeps its durable bytes as a resume point,
 * chunks at the store workers are cut off again, and an ACK still waiting
 * for the group's sync is not sent (its case stays received, as after any
 * lost ACK). Nothing more is sent to it, not even what was queued.
 */
static void crl_check_conns(struct rdx_transport_node *n)
{
    X509_CRL *crl = rdx_tp_tls_ctx_crl(n->sctx);
    for (struct conn *c = n->conns, *next; c != NULL; c = next) {
        char when[32], object[96], detail[600], mid[300] = "";
        next = c->next;
        if (!c->authed || c->stopped ||
            !rdx_tp_crl_revokes(crl, SSL_get0_peer_certificate(c->ssl), when, sizeof when)) {
            continue;
        }
        if (c->rx.active) {
            uint64_t have = 0, total = 0;
            for (size_t i = 0; i < c->rx.m.nitems; i++) {
                have += c->rx.durable[i];
                total += c->rx.m.items[i].size;
            }
            snprintf(mid, sizeof mid,
                     "; case %s cut at %llu of %llu bytes (kept as a resume point, not "
                     "acknowledged)",
                     c->rx.m.case_id, (unsigned long long)have, (unsigned long long)total);
        }
        snprintf(object, sizeof object, "tcp:%s", c->addr);
        snprintf(detail, sizeof detail,
                 "certificate serial %s revoked (at %s) by the CRL now in force: the connection "
                 "was closed%s",
                 c->serial, when, mid);
        audit(n, "connection-revoked", RDX_TP_OUTCOME_SERIOUS, c->peer, object, detail);
        rdx_log(&n->log, RDX_LOG_WARN, "closing %s (%s): certificate serial %s revoked at %s%s",
                c->peer, c->addr, c->serial, when, mid);
        conn_free(c);
    }
}

/*
 * The CRL in ctx, about to be put in force, against node.db's mark of the
 * newest CRL this node has put in force (crl_mark.c): RDX_EAUTH, with err
 * naming the file and both CRL numbers, when it is older; otherwise a newer
 * one becomes the mark, in the group transaction (durable with the next
 * flush, within GROUP_AUDIT_WINDOW_MS). node.db failing to answer does not
 * keep a CRL that passed the check against the CRL in force out: an error
 * is logged and it is used.
 */
static rdx_status crl_mark_raise(struct rdx_transport_node *n, SSL_CTX *ctx, rdx_error *err)
{
    rdx_error e;
    if (group_begin(n) != 0) {
        rdx_log(&n->log, RDX_LOG_ERROR, "%s: not recorded as the newest CRL in node.db",
                n->cfg->crl);
        return RDX_OK;
    }
    group_want(n, GROUP_AUDIT_WINDOW_MS);
    rdx_status st = rdx_tp_crl_mark_admit(n->db, SSL_CTX_get_cert_store(ctx), n->cfg->crl, &e);
    if (st == RDX_EAUTH) {
        *err = e;
        return st;
    }
    if (st != RDX_OK) {
        rdx_log(&n->log, RDX_LOG_ERROR, "%s: not recorded as the newest CRL: %s", n->cfg->crl,
                e.msg);
    }
    return RDX_OK;
}

/*
 * Rebuild the TLS context when the CRL file has changed (a revocation was
 * published), and hold the connections already open to the new CRL. A file
 * that does not load (unreadable, not a CRL, not signed by the network CA),
 * or that holds an older CRL than the one in force (a lower CRL number:
 * putting it back would un-revoke what was revoked since) or than the newest
 * one this node has ever put in force (node.db's mark), leaves the CRL in
 * force as it is, with an error and a crl-rejected audit record, once per
 * version of the file: the next change is tried again.
 */
static void maybe_reload(struct rdx_transport_node *n)
{
    struct rdx_tp_file_id id;
    if (rdx_tp_file_id_get(n->cfg->crl, &id) != 0 || rdx_tp_file_id_same(&id, &n->crl_file)) {
        return;
    }
    n->crl_file = id;
    SSL_CTX *ctx = NULL;
    rdx_error err;
    char why[300];
    rdx_status st = rdx_tp_tls_ctx(n->cfg, 1, &ctx, &err);
    if (st == RDX_OK &&
        rdx_tp_crl_older(rdx_tp_tls_ctx_crl(ctx), rdx_tp_tls_ctx_crl(n->sctx), why, sizeof why)) {
        st = rdx_error_set(&err, RDX_EAUTH, "%s: an older CRL is refused: %s", n->cfg->crl, why);
    }
    if (st == RDX_OK) {
        st = crl_mark_raise(n, ctx, &err); /* older than one in force before a restart? */
    }
    if (st != RDX_OK) {
        SSL_CTX_free(ctx);
        rdx_log(&n->log, RDX_LOG_ERROR, "keeping the old CRL: %s", err.msg);
        audit(n, "crl-rejected", RDX_TP_OUTCOME_SERIOUS, n->cfg->id, n->cfg->crl, err.msg);
        return;
    }
    SSL_CTX_free(n->sctx); /* connections holding it keep their reference */
    n->sctx = ctx;
    rdx_log(&n->log, RDX_LOG_INFO, "loaded CRL %s", n->cfg->crl);
    rdx_tp_sender_crl_loaded(&n->sender, rdx_tp_tls_ctx_crl(n->sctx));
    crl_check_conns(n);
    crl_check_and_arm(n);
}

static void crl_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    maybe_reload(arg);
}

/* A node that has gone a whole period without a large case gives its kept buffers back. */
static void spares_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rdx_transport_node *n = arg;
    (void)fd;
    (void)what;
    (void)rdx_tp_spares_tick(&n->spares);
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
    c->rx.dfd = -1;
    c->rx.fd_item = -1;
    c->rx.h_item = -1;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    snprintf(c->peer, sizeof c->peer, "?");
    SSL_set_app_data(ssl, &c->verdict);
    n->nconns++;
    c->next = n->conns;
    if (n->conns != NULL) {
        n->conns->prev = c;
    }
    n->conns = c;
    c->fd = fd; /* the listener made it non-blocking */
    c->ssl = ssl;
    c->rev = event_new(n->base, fd, EV_READ | EV_PERSIST, conn_io_cb, c);
    c->wev = event_new(n->base, fd, EV_WRITE | EV_PERSIST, conn_io_cb, c);
    c->tev = evtimer_new(n->base, conn_timer_cb, c);
    c->more = event_new(n->base, -1, 0, conn_more_cb, c);
    c->out = evbuffer_new();
    if (c->rev == NULL || c->wev == NULL || c->tev == NULL || c->more == NULL || c->out == NULL ||
        SSL_set_fd(ssl, fd) != 1) {
        rdx_log(&n->log, RDX_LOG_ERROR, "out of memory accepting %s", addr);
        c->stopped = 1;
        conn_free(c);
        return;
    }
    SSL_set_accept_state(ssl);
    rdx_tp_ssl_buffer(ssl, 0, TLS_READ_BATCH);
    /* conn_write retries from an evbuffer whose first segment may move or grow. */
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    c->last_rd_ms = c->last_wr_ms = mono_ms();
    c->hs_want = EV_READ;
    set_timeouts(c);
}

/* ---- the spill thread --------------------------------------------------------- */

/* Small items one batch writes at most. */
#define SPILL_BATCH 2048
/*
 * How long the spill thread lets small cases gather after a commit before it
 * writes them: [node] spill_delay_ms (default 500).
 *
 * Written files become the items (their rows go) at a checkpoint: one syncfs
 * for everything spilled since the last. syncfs flushes the whole file
 * system, other programs' dirty data too, so it runs rarely: once the spill
 * has been quiet for [node] spill_checkpoint_ms (default 2000), or at the
 * latest SPILL_CHECKPOINT_MAX_MS (or spill_checkpoint_ms, if longer) after
 * the first unsynced file, or when SPILL_CHECKPOINT_ROWS wait.
 */
#define SPILL_CHECKPOINT_MAX_MS 15000
#define SPILL_CHECKPOINT_ROWS   16384
/* With nothing to do, the spill thread still looks for unwritten items this often. */
#define SPILL_SWEEP_MS 10000

/*
 * Write the files of up to SPILL_BATCH complete small items not written yet,
 * then mark their rows with generation gen. The files are written inside a
 * read transaction only (WAL: the event loop's commits go on meanwhile); the
 * marking is one short write transaction. rows is scratch for SPILL_BATCH
 * row IDs. Returns the number written, or -1.
 */
static long spill_batch(struct spill *sp, sqlite3 *db, long long gen, sqlite3_int64 *rows)
{
    const char *data = sp->cfg->data;
    sqlite3_stmt *s = NULL;
    rdx_error err;
    long n = 0;
    int ok = sqlite3_prepare_v2(db,
                                "SELECT b.rowid, b.sender, b.case_id, b.idx, b.data FROM "
                                "inbox_blobs b JOIN inbox i ON i.sender = b.sender AND "
                                "i.case_id = b.case_id WHERE i.state = 'complete' AND "
                                "b.spilled = 0 LIMIT ?",
                                -1, &s, NULL) == SQLITE_OK &&
             sqlite3_bind_int(s, 1, SPILL_BATCH) == SQLITE_OK;
    while (ok && n < SPILL_BATCH && sqlite3_step(s) == SQLITE_ROW) {
        sqlite3_int64 rowid = sqlite3_column_int64(s, 0);
        const char *sender = (const char *)sqlite3_column_text(s, 1);
        const char *cid = (const char *)sqlite3_column_text(s, 2);
        long long idx = sqlite3_column_int64(s, 3);
        const uint8_t *p = sqlite3_column_blob(s, 4);
        size_t len = (size_t)sqlite3_column_bytes(s, 4);
        if (sender == NULL || cid == NULL || idx < 0 ||
            rdx_transport_inst_id_check(sender, "sender", NULL) != RDX_OK ||
            rdx_tp_case_id_check(cid, strlen(cid), NULL) != RDX_OK) {
            continue; /* not a name this node accepted: never a path */
        }
        if (rdx_tp_blob_write_file(data, sender, cid, (size_t)idx, p, len, 0, &err) != RDX_OK) {
            rdx_log(&sp->log, RDX_LOG_ERROR, "small item not written yet (kept in node.db): %s",
                    err.msg);
            ok = 0;
            break;
        }
        rows[n++] = rowid;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (n == 0) {
        return ok ? 0 : -1;
    }
    /* A row replaced meanwhile has a new row ID: it stays unmarked and is written again. */
    int marked = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                 sqlite3_prepare_v2(db, "UPDATE inbox_blobs SET spilled=? WHERE rowid=?", -1, &s,
                                    NULL) == SQLITE_OK;
    for (long i = 0; marked && i < n; i++) {
        sqlite3_reset(s);
        marked = sqlite3_bind_int64(s, 1, gen) == SQLITE_OK &&
                 sqlite3_bind_int64(s, 2, rows[i]) == SQLITE_OK && sqlite3_step(s) == SQLITE_DONE;
    }
    sqlite3_finalize(s);
    if (!marked || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rdx_log(&sp->log, RDX_LOG_ERROR, "node.db: spilled items not recorded: %s",
                sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1; /* written again next time: the same bytes, renamed into place */
    }
    return ok ? n : -1;
}

/* Make every file spilled up to generation gen durable, then drop those rows. 0 on success. */
static int spill_checkpoint(struct spill *sp, sqlite3 *db, long long gen)
{
    const char *data = sp->cfg->data;
    int dfd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int synced = dfd >= 0 && syncfs(dfd) == 0;
    if (dfd >= 0) {
        close(dfd);
    }
    if (!synced) {
        rdx_log(&sp->log, RDX_LOG_ERROR, "%s: cannot sync the spilled items: %s", data,
                strerror(errno));
        return -1;
    }
    sqlite3_stmt *s = NULL;
    int ok = sqlite3_prepare_v2(db, "DELETE FROM inbox_blobs WHERE spilled BETWEEN 1 AND ?", -1, &s,
                                NULL) == SQLITE_OK &&
             sqlite3_bind_int64(s, 1, gen) == SQLITE_OK && sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    if (!ok) {
        rdx_log(&sp->log, RDX_LOG_ERROR, "node.db: spilled rows not removed: %s",
                sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static void deadline_in(struct timespec *t, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    t->tv_sec += (time_t)(ms / 1000) + t->tv_nsec / 1000000000L;
    t->tv_nsec %= 1000000000L;
}

/* Wait ms (sp->mu held), whatever commits wake the thread meanwhile; a stop ends it early. */
static void spill_nap(struct spill *sp, unsigned ms)
{
    struct timespec t;
    deadline_in(&t, ms);
    while (!sp->stop && pthread_cond_timedwait(&sp->cv, &sp->mu, &t) == 0) {
    }
}

static void *spill_main(void *arg)
{
    struct spill *sp = arg;
    sqlite3 *db = NULL;
    rdx_error err;
    (void)pthread_setname_np(pthread_self(), "rdx-spill");
    /* node.db can be busy for a while under load: keep trying (never give up on the items). */
    for (;;) {
        if (rdx_tp_node_db_open(sp->cfg->data, &db, &err) == RDX_OK) {
            break;
        }
        rdx_log(&sp->log, RDX_LOG_ERROR, "spill thread: %s; trying again", err.msg);
        pthread_mutex_lock(&sp->mu);
        spill_nap(sp, 1000);
        int stop = sp->stop;
        pthread_mutex_unlock(&sp->mu);
        if (stop) {
            return NULL; /* small items stay in node.db; the next start writes them */
        }
    }
    sqlite3_int64 *rows = rdx_callocarray(SPILL_BATCH, sizeof *rows);
    if (rows == NULL) {
        rdx_log(&sp->log, RDX_LOG_ERROR, "spill thread: out of memory");
        sqlite3_close(db);
        return NULL;
    }
    const int64_t idle_ms = sp->cfg->spill_checkpoint_ms;
    const int64_t max_ms = idle_ms > SPILL_CHECKPOINT_MAX_MS ? idle_ms : SPILL_CHECKPOINT_MAX_MS;
    long long gen = 1; /* the mark of files written since the last checkpoint */
    long pending = 0;  /* rows marked gen, waiting for a checkpoint */
    int64_t first_ms = 0, last_ms = 0;
    pthread_mutex_lock(&sp->mu);
    while (!sp->stop) {
        if (!sp->kicked) {
            if (pending == 0) {
                /* Woken by each commit; a sweep now and then even without one, as a safety. */
                struct timespec t;
                deadline_in(&t, SPILL_SWEEP_MS);
                if (pthread_cond_timedwait(&sp->cv, &sp->mu, &t) != 0) {
                    sp->kicked = 1;
                }
                continue;
            }
            int64_t now = mono_ms();
            int64_t due = first_ms + max_ms;
            if (last_ms + idle_ms < due) {
                due = last_ms + idle_ms;
            }
            if (now < due) {
                struct timespec t;
                deadline_in(&t, (unsigned)(due - now));
                (void)pthread_cond_timedwait(&sp->cv, &sp->mu, &t);
                continue;
            }
        } else {
            /* Let a burst gather first: fewer, larger batches. */
            spill_nap(sp, sp->cfg->spill_delay_ms);
            sp->kicked = 0;
        }
        pthread_mutex_unlock(&sp->mu);
        long got = 0, all = 0;
        while ((got = spill_batch(sp, db, gen, rows)) > 0) {
            all += got;
            if (got < SPILL_BATCH) {
                break;
            }
        }
        if (all > 0) {
            if (pending == 0) {
                first_ms = mono_ms();
            }
            pending += all;
            last_ms = mono_ms();
        }
        int64_t now = mono_ms();
        if (pending > 0 && (pending >= SPILL_CHECKPOINT_ROWS || now >= first_ms + max_ms ||
                            now >= last_ms + idle_ms)) {
            if (spill_checkpoint(sp, db, gen) == 0) {
                pending = 0;
                gen++;
            } else {
                last_ms = now; /* a full disk, say: try again later, the rows keep the items */
            }
        }
        pthread_mutex_lock(&sp->mu);
        if (got < 0) {
            /* A full disk, say: the rows keep the items; try again in a while, not in a loop. */
            spill_nap(sp, 5000);
            sp->kicked = 1;
        }
    }
    pthread_mutex_unlock(&sp->mu);
    if (pending > 0) {
        (void)spill_checkpoint(sp, db, gen); /* a clean stop leaves no row behind it can drop */
    }
    free(rows);
    sqlite3_close(db);
    return NULL;
}

static void spill_start(struct rdx_transport_node *n)
{
    struct spill *sp = &n->sp;
    sp->cfg = n->cfg;
    sp->log = n->log;
    sp->stop = 0;
    sp->kicked = 1; /* whatever an earlier run left */
    if (pthread_mutex_init(&sp->mu, NULL) != 0) {
        return;
    }
    if (pthread_cond_init(&sp->cv, NULL) != 0) {
        pthread_mutex_destroy(&sp->mu);
        return;
    }
    if (pthread_create(&sp->th, NULL, spill_main, sp) != 0) {
        pthread_cond_destroy(&sp->cv);
        pthread_mutex_destroy(&sp->mu);
        rdx_log(&n->log, RDX_LOG_WARN,
                "no spill thread: small items are written at the next start");
        return;
    }
    sp->started = 1;
}

static void spill_stop(struct rdx_transport_node *n)
{
    struct spill *sp = &n->sp;
    if (!sp->started) {
        return;
    }
    pthread_mutex_lock(&sp->mu);
    sp->stop = 1;
    pthread_cond_signal(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->th, NULL);
    pthread_cond_destroy(&sp->cv);
    pthread_mutex_destroy(&sp->mu);
    sp->started = 0;
}

/* ---- lifecycle ---------------------------------------------------------------- */

/*
 * At start: rewrite any small item file that a crash lost (its bytes are in
 * inbox_blobs, committed with the case), make every item file durable with
 * one syncfs, and only then forget the rows.
 */
static rdx_status repair_inline(struct rdx_transport_node *n, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    const char *data = n->cfg->data;
    rdx_status st = RDX_OK;
    long repaired = 0, rows = 0;
    if (sqlite3_prepare_v2(n->db,
                           "SELECT b.sender, b.case_id, b.idx, b.data, i.state FROM inbox_blobs b "
                           "LEFT JOIN inbox i ON i.sender = b.sender AND i.case_id = b.case_id",
                           -1, &s, NULL) != SQLITE_OK) {
        return rdx_error_set(err, RDX_EDB, "%s/node.db: %s", data, sqlite3_errmsg(n->db));
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *sender = (const char *)sqlite3_column_text(s, 0);
        const char *cid = (const char *)sqlite3_column_text(s, 1);
        long long idx = sqlite3_column_int64(s, 2);
        const uint8_t *blob = sqlite3_column_blob(s, 3);
        size_t len = (size_t)sqlite3_column_bytes(s, 3);
        const char *state = (const char *)sqlite3_column_text(s, 4);
        char path[4500];
        rows++;
        if (sender == NULL || cid == NULL || state == NULL || strcmp(state, "complete") != 0 ||
            rdx_tp_case_id_check(cid, strlen(cid), NULL) != RDX_OK ||
            rdx_tp_item_name_check(sender, strlen(sender), NULL) != RDX_OK) {
            continue;
        }
        snprintf(path, sizeof path, "%s/inbox/%s/%s/%lld", data, sender, cid, idx);
        rdx_buf have;
        rdx_buf_init(&have, len + 1);
        int same = rdx_file_read(path, &have, NULL) == RDX_OK && have.len == len &&
                   (len == 0 || memcmp(have.data, blob, len) == 0);
        rdx_buf_free(&have);
        if (same) {
            continue;
        }
        /* Synced below, all at once. */
        if ((st = rdx_tp_blob_write_file(data, sender, cid, (size_t)idx, blob, len, 0, err)) !=
            RDX_OK) {
            rdx_error_prefix(err, "cannot restore a small item: ");
            break;
        }
        repaired++;
    }
    if (st == RDX_OK && rc != SQLITE_DONE) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", data, sqlite3_errmsg(n->db));
    }
    sqlite3_finalize(s);
    if (st != RDX_OK || rows == 0) {
        return st;
    }
    int dfd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || syncfs(dfd) != 0) {
        st = rdx_error_set(err, RDX_EIO, "%s: cannot sync: %s", data, strerror(errno));
    }
    if (dfd >= 0) {
        close(dfd);
    }
    if (st == RDX_OK &&
        sqlite3_exec(n->db, "DELETE FROM inbox_blobs", NULL, NULL, NULL) != SQLITE_OK) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", data, sqlite3_errmsg(n->db));
    }
    if (repaired > 0) {
        rdx_log(&n->log, RDX_LOG_WARN, "restored %ld small item file%s lost by a crash", repaired,
                repaired == 1 ? "" : "s");
    }
    return st;
}

/*
 * At start: the CRL file must not be older than the newest CRL this node has
 * put in force before (node.db's mark, crl_mark.c), or a CRL put back while
 * the node was stopped (an attacker's, or a restore from a backup) would
 * un-revoke what was revoked since. The node does not start on it: a
 * crl-rejected audit record, and err names the file, both CRL numbers and
 * what to do; `rdx node serve` exits 1 with it. Nothing will make such a
 * file good with time (unlike an expired CRL, which a new one published
 * ends while the node runs), and serving on it would fail open. A newer CRL
 * (or the first of its CA) becomes the mark.
 */
static rdx_status crl_mark_start(struct rdx_transport_node *n, rdx_error *err)
{
    rdx_error e;
    char what[4200];
    snprintf(what, sizeof what, "%s/node.db", n->cfg->data);
    rdx_status st =
        rdx_tp_crl_mark_admit_tx(n->db, SSL_CTX_get_cert_store(n->sctx), n->cfg->crl, what, &e);
    if (st == RDX_EAUTH) {
        rdx_error ae;
        if (rdx_tp_audit(n->db, n->cfg->id, "crl-rejected", RDX_TP_OUTCOME_SERIOUS, n->cfg->id,
                         n->cfg->crl, e.msg, &ae) != RDX_OK) {
            rdx_log(&n->log, RDX_LOG_ERROR, "audit record not written: %s", ae.msg);
        }
        return rdx_error_set(err, RDX_EAUTH,
                             "%s; not serving on it: put the current CRL in place (copy it from "
                             "the CA, or publish a new one there with rdx pki crl)",
                             e.msg);
    }
    if (st != RDX_OK) {
        *err = e;
    }
    return st;
}

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
        (st = repair_inline(n, err)) != RDX_OK ||
        (st = rdx_tp_tls_ctx(cfg, 1, &n->sctx, err)) != RDX_OK ||
        (st = crl_mark_start(n, err)) != RDX_OK) {
        goto fail;
    }
    /* The version read just now, or a later one, which the first look then loads again. */
    (void)rdx_tp_file_id_get(cfg->crl, &n->crl_file);
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
    if (store_start(n) != RDX_OK) {
        /* Everything still works on the event loop alone, only slower for large items. */
        rdx_log(&n->log, RDX_LOG_WARN, "no store worker: large chunks are written on the loop");
    }
    n->stop_ev = event_new(n->base, -1, 0, stop_cb, n);
    n->g.timer = evtimer_new(n->base, group_timer_cb, n);
    n->crl_timer = evtimer_new(n->base, crl_timer_cb, n);
    n->crl_watch = event_new(n->base, -1, EV_PERSIST, crl_watch_cb, n);
    n->spares_timer = event_new(n->base, -1, EV_PERSIST, spares_timer_cb, n);
    if (n->stop_ev == NULL || n->g.timer == NULL || n->crl_timer == NULL || n->crl_watch == NULL ||
        n->spares_timer == NULL) {
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
    n->sender.crl = rdx_tp_tls_ctx_crl(n->sctx); /* start takes its own reference */
    RDX_TRY(rdx_tp_sender_start(&n->sender, err));
    spill_start(n);
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
    crl_timer_cb(-1, 0, n); /* now, then hourly (or at nextUpdate) */
    struct timeval watch = {CRL_WATCH_MS / 1000, (CRL_WATCH_MS % 1000) * 1000};
    if (event_add(n->crl_watch, &watch) != 0) {
        rdx_log(&n->log, RDX_LOG_WARN, "no CRL watch: a new CRL is loaded at the next connection");
    }
    struct timeval idle = {RDX_TP_SPARES_IDLE_MS / 1000, (RDX_TP_SPARES_IDLE_MS % 1000) * 1000};
    if (event_add(n->spares_timer, &idle) != 0) {
        rdx_log(&n->log, RDX_LOG_WARN,
                "no idle timer: kept chunk buffers stay until the node stops");
    }
    int rc = event_base_dispatch(n->base);
    rdx_tp_sender_stop(&n->sender);
    audit(n, "node-stopped", RDX_TP_OUTCOME_SUCCESS, n->cfg->id, "", "");
    (void)group_flush(n);
    spill_stop(n); /* what it has not written yet stays in node.db for the next start */
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

void rdx_tp_node_spares(const rdx_transport_node *n, int *kept, unsigned long *reused,
                        unsigned long *made)
{
    *kept = n->spares.n;
    *reused = n->spares.reused;
    *made = n->bufs_made;
    for (const struct conn *c = n->conns; c != NULL; c = c->next) {
        *made += rdx_tp_decoder_made(c->dec);
    }
}

void rdx_transport_node_free(rdx_transport_node *n)
{
    if (n == NULL) {
        return;
    }
    rdx_tp_sender_stop(&n->sender);
    spill_stop(n);
    store_stop(n); /* its last results are taken before the connections go */
    while (n->conns != NULL) {
        conn_free(n->conns);
    }
    rdx_tp_spares_free(&n->spares);
    group_free(n);
    if (n->sig_int != NULL) {
        event_free(n->sig_int);
    }
    if (n->sig_term != NULL) {
        event_free(n->sig_term);
    }
    if (n->stop_ev != NULL) {
        event_free(n->stop_ev);
    }
    if (n->crl_timer != NULL) {
        event_free(n->crl_timer);
    }
    if (n->crl_watch != NULL) {
        event_free(n->crl_watch);
    }
    if (n->spares_timer != NULL) {
        event_free(n->spares_timer);
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
