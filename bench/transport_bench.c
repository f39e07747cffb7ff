/*
 * transport_bench: the transport's figures on this machine, in one run, over
 * loopback (127.0.0.1 only) with certificates made by the PKI code:
 *   1. bulk: one case of SIZE MiB (default 1024) from a clinic node to a hub
 *      node (chunk hashing, fdatasync'd storage, whole-item re-verification),
 *      against a plain TLS 1.3 stream of the same size with the same
 *      certificates in the same run (and a second one with the node's own
 *      socket tuning, batched reads and writes, as a stricter reference);
 *   2. medium cases (16 of 32 MiB, a CT series) as MB/s, against a plain
 *      TLS stream of the same bytes; small durable cases per second (1 KiB
 *      each);
 *   3. full mutual-TLS handshakes per second against the node, against
 *      `openssl s_server` with the same certificates (the stated reference)
 *      and an in-process OpenSSL server loop.
 * Usage: transport_bench [SIZE_MIB [SMALL_CASES [HANDSHAKES]]]
 * Writes docs/bench-transport.md.
 */
#define _GNU_SOURCE
#include "rdx/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

/* Each bulk, small-case and handshake figure is the median of this many runs. */
#define REPS 5
/* The medium cases: this many of this many MiB per batch. */
#define MEDIUM_CASES 16
#define MEDIUM_MIB   32

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v)
{
    double t[REPS];
    memcpy(t, v, sizeof t);
    qsort(t, REPS, sizeof t[0], cmp_double);
    return t[REPS / 2];
}

static double lo(const double *v)
{
    double m = v[0];
    for (int i = 1; i < REPS; i++) {
        m = v[i] < m ? v[i] : m;
    }
    return m;
}

static double hi(const double *v)
{
    double m = v[0];
    for (int i = 1; i < REPS; i++) {
        m = v[i] > m ? v[i] : m;
    }
    return m;
}

static double now_s(void)
{
    return (double)rdx_clock_mono_ns() / 1e9;
}

static void die(const char *what, const rdx_error *err)
{
    fprintf(stderr, "transport_bench: %s: %s\n", what, err != NULL ? err->msg : "failed");
    exit(1);
}

static void write_text(const char *path, const char *text)
{
    rdx_error err;
    if (rdx_file_write_atomic(path, text, strlen(text), &err) != RDX_OK) {
        die(path, &err);
    }
}

struct node_thread {
    rdx_transport_config *cfg;
    rdx_transport_node *node;
    pthread_t th;
};

static void *node_main(void *arg)
{
    struct node_thread *t = arg;
    rdx_error err;
    /* Named for perf and top -H: the receiving loop's share is what bulk measures. */
    (void)pthread_setname_np(pthread_self(), "node-loop");
    if (rdx_transport_node_run(t->node, 0, &err) != RDX_OK) {
        die("node", &err);
    }
    return NULL;
}

/* RDX_BENCH_LOG=1: the nodes' log lines on stderr, with a millisecond clock, to see phases. */
static void bench_log(void *user, rdx_log_level level, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "%ld.%03ld %s: %s: %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000,
            (const char *)user, rdx_log_level_name(level), msg);
}

static void start_node(struct node_thread *t, const char *ini)
{
    rdx_error err;
    rdx_logger lg = {bench_log, (void *)ini, RDX_LOG_INFO};
    if (rdx_transport_config_load(ini, &t->cfg, &err) != RDX_OK ||
        rdx_transport_node_new(t->cfg, getenv("RDX_BENCH_LOG") != NULL ? &lg : NULL, &t->node,
                               &err) != RDX_OK) {
        die(ini, &err);
    }
    pthread_create(&t->th, NULL, node_main, t);
}

static void stop_node(struct node_thread *t)
{
    rdx_transport_node_stop(t->node);
    pthread_join(t->th, NULL);
    rdx_transport_node_free(t->node);
    rdx_transport_config_free(t->cfg);
}

struct count {
    size_t acked, total;
};

static int count_cb(void *u, const rdx_transport_case_info *c)
{
    struct count *x = u;
    x->total++;
    x->acked += strcmp(c->state, "acked") == 0;
    return 0;
}

/* Wait until every outbox case of cfg is acknowledged. */
static void wait_all_acked(const rdx_transport_config *cfg, size_t want)
{
    for (;;) {
        struct count x = {0, 0};
        rdx_error err;
        if (rdx_transport_case_list(cfg, 1, count_cb, &x, &err) != RDX_OK) {
            die("status", &err);
        }
        if (x.acked >= want) {
            return;
        }
        struct timespec ts = {0, 20000000}; /* 20 ms: polling must not slow what it measures */
        nanosleep(&ts, NULL);
    }
}

/*
 * Wait until q (whether one case of the clinic's outbox is acknowledged, its
 * ID bound) says yes: one lookup by key every 2 ms on a connection to
 * node.db held open (WAL: a reader takes no lock between statements).
 * rdx_transport_case_list opens node.db and lists every case, about 0.7 ms
 * of CPU a call here, which a bulk run would share its two cores with; this
 * costs microseconds, so it can look often and the run's end is seen within
 * 2 ms instead of 20.
 */
static void wait_acked(sqlite3_stmt *q)
{
    for (;;) {
        int acked = 0;
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            acked = sqlite3_column_int(q, 0);
        } else if (rc != SQLITE_DONE && rc != SQLITE_BUSY) {
            die("outbox lookup", NULL);
        }
        sqlite3_reset(q);
        if (acked) {
            return;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/*
 * CPU time of this process's threads, from /proc/self/task/TID/schedstat
 * (nanoseconds on a CPU), summed by thread name: where a bulk run's CPU goes.
 */
#define CPU_NAMES 24
struct cpu_snap {
    int n;
    char name[CPU_NAMES][24];
    double ns[CPU_NAMES];
};

static void cpu_snap_take(struct cpu_snap *s)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[300], comm[64] = "", line[128];
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL || fgets(comm, sizeof comm, f) == NULL) {
            if (f != NULL) {
                fclose(f);
            }
            continue;
        }
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        f = fopen(path, "r");
        double ns = 0;
        if (f == NULL || fgets(line, sizeof line, f) == NULL) {
            if (f != NULL) {
                fclose(f);
            }
            continue;
        }
        fclose(f);
        ns = strtod(line, NULL);
        int k = 0;
        while (k < s->n && strcmp(s->name[k], comm) != 0) {
            k++;
        }
        if (k == s->n) {
            if (s->n == CPU_NAMES) {
                continue;
            }
            snprintf(s->name[s->n++], sizeof s->name[0], "%s", comm);
        }
        s->ns[k] += ns;
    }
    if (d != NULL) {
        closedir(d);
    }
}

/*
 * Threads that ended between the snapshots are lost (the clinic node's
 * threads): take the second snapshot before stopping it.
 */
static void cpu_snap_print(const struct cpu_snap *a, const struct cpu_snap *b, double units,
                           const char *what, double wall_s)
{
    double ms[CPU_NAMES], total = 0;
    for (int k = 0; k < b->n; k++) {
        double before = 0;
        for (int j = 0; j < a->n; j++) {
            if (strcmp(a->name[j], b->name[k]) == 0) {
                before = a->ns[j];
            }
        }
        ms[k] = (b->ns[k] - before) / 1e6;
        total += ms[k];
    }
    fprintf(stderr, "transport_bench: %s: %.0f ms, %.2f cores busy; CPU ms per 8 MiB:", what,
            wall_s * 1e3, wall_s > 0 ? total / (wall_s * 1e3) : 0.0);
    for (int k = 0; k < b->n; k++) {
        if (ms[k] / units >= 0.05) {
            fprintf(stderr, " %s %.2f", b->name[k], ms[k] / units);
        }
    }
    fputc('\n', stderr);
}

/* ---- the plain TLS baseline ------------------------------------------------ */

struct plain {
    SSL_CTX *ctx;
    int lfd;
    unsigned port;
    int mode; /* 0: read a stream of n bytes then answer; 1: handshake, echo one byte */
    size_t n;
    int count;
    pthread_t th;
    double recv_cpu_ms; /* mode 0: the receiving thread's CPU time */
    int tuned;          /* mode 0: the same socket tuning as the node (batched reads and writes) */
};

static SSL_CTX *ctx_for(const char *cert, const char *key, const char *ca, int server)
{
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_file(c, cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(c, ca, NULL) != 1) {
        die("plain TLS context", NULL);
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    SSL_CTX_set_num_tickets(c, 0);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    return c;
}

static int listen_any(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
        die("listen", NULL);
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        die("connect", NULL);
    }
    return fd;
}

static void *plain_main(void *arg)
{
    struct plain *p = arg;
    static unsigned char buf[1 << 16]; /* bench-only scratch, one server thread */
    pthread_setname_np(pthread_self(), "plain-recv");
    for (int i = 0; i < p->count; i++) {
        int fd = accept(p->lfd, NULL, NULL);
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        SSL *ssl = SSL_new(p->ctx);
        SSL_set_fd(ssl, fd);
        if (p->tuned) {
            /* As the node's receiver does (transport/node.c, TLS_READ_BATCH). */
            BIO *sock = SSL_get_rbio(ssl), *rb = BIO_new(BIO_f_buffer());
            if (rb != NULL && BIO_set_read_buffer_size(rb, 64u << 10) == 1 &&
                BIO_up_ref(sock) == 1) {
                BIO_push(rb, sock);
                SSL_set0_rbio(ssl, rb);
            } else {
                BIO_free(rb);
            }
        }
        if (SSL_accept(ssl) == 1) {
            if (p->mode == 0) {
                size_t got = 0, r = 0;
                struct timespec c0, c1;
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
                while (got < p->n && SSL_read_ex(ssl, buf, sizeof buf, &r) == 1) {
                    got += r;
                }
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
                p->recv_cpu_ms =
                    (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
            } else {
                size_t r = 0;
                (void)SSL_read_ex(ssl, buf, 1, &r);
            }
            size_t w = 0;
            (void)SSL_write_ex(ssl, "k", 1, &w);
        }
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

/*
 * A plain TLS stream of n bytes, one 1 MiB SSL_write after another. tuned: with
 * the node's socket tuning on both ends (64 KiB reads at the receiver, a
 * 256 KiB buffering BIO at the sender, as transport/node_send.c does), so the
 * ratio can be read against either reference.
 */
static double plain_stream(SSL_CTX *sctx, SSL_CTX *cctx, size_t n, int tuned, double *recv_cpu_ms)
{
    struct plain p = {sctx, -1, 0, 0, n, 1, 0, 0, tuned};
    p.lfd = listen_any(&p.port);
    pthread_create(&p.th, NULL, plain_main, &p);
    unsigned char *chunk = calloc(1, 1 << 20);
    double t0 = now_s();
    int fd = connect_to(p.port);
    SSL *ssl = SSL_new(cctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        die("plain TLS connect", NULL);
    }
    BIO *sock = SSL_get_wbio(ssl), *buf = tuned ? BIO_new(BIO_f_buffer()) : NULL;
    if (buf != NULL && BIO_set_write_buffer_size(buf, 256u << 10) == 1 && BIO_up_ref(sock) == 1) {
        BIO_push(buf, sock);
        SSL_set0_wbio(ssl, buf);
    } else {
        BIO_free(buf);
    }
    for (size_t sent = 0; sent < n;) {
        size_t k = n - sent < (1u << 20) ? n - sent : (1u << 20), w = 0;
        if (SSL_write_ex(ssl, chunk, k, &w) != 1) {
            die("plain TLS write", NULL);
        }
        sent += w;
    }
    if (BIO_flush(SSL_get_wbio(ssl)) != 1) {
        die("plain TLS flush", NULL);
    }
    unsigned char ok;
    size_t r = 0;
    (void)SSL_read_ex(ssl, &ok, 1, &r);
    double dt = now_s() - t0;
    SSL_free(ssl);
    close(fd);
    pthread_join(p.th, NULL);
    close(p.lfd);
    free(chunk);
    *recv_cpu_ms = p.recv_cpu_ms;
    return dt;
}

/* One plain stream of mib MiB, in MB/s, with its CPU per thread on stderr. */
static double plain_measured(SSL_CTX *sctx, SSL_CTX *cctx, size_t mib, int tuned)
{
    struct cpu_snap c0, c1;
    double rcpu = 0;
    const char *what = tuned ? "tuned plain TLS" : "plain TLS";
    char label[64];
    cpu_snap_take(&c0);
    double mbs = (double)mib * 1.048576 / plain_stream(sctx, cctx, mib << 20, tuned, &rcpu);
    cpu_snap_take(&c1);
    snprintf(label, sizeof label, "%s (sender side)", what);
    cpu_snap_print(&c0, &c1, (double)mib / 8, label, (double)mib * 1.048576 / mbs);
    fprintf(stderr, "transport_bench: %s receiver: CPU ms per 8 MiB %.2f\n", what,
            rcpu / ((double)mib / 8));
    return mbs;
}

static double plain_handshakes(SSL_CTX *sctx, SSL_CTX *cctx, int n)
{
    struct plain p = {sctx, -1, 0, 1, 0, n, 0, 0, 0};
    p.lfd = listen_any(&p.port);
    pthread_create(&p.th, NULL, plain_main, &p);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        int fd = connect_to(p.port);
        SSL *ssl = SSL_new(cctx);
        SSL_set_fd(ssl, fd);
        size_t w = 0, r = 0;
        unsigned char b;
        if (SSL_connect(ssl) != 1 || SSL_write_ex(ssl, "x", 1, &w) != 1 ||
            SSL_read_ex(ssl, &b, 1, &r) != 1) {
            die("plain handshake", NULL);
        }
        SSL_free(ssl);
        close(fd);
    }
    double dt = now_s() - t0;
    pthread_join(p.th, NULL);
    close(p.lfd);
    return dt;
}

/*
 * `openssl s_server` with the same certificates (client certificate
 * required, TLS 1.3, no tickets), echoing one line per connection (-rev):
 * the reference the handshake target is stated against. One warm-up
 * connection (it also tells us the server is listening) is not counted.
 * Returns the seconds for n handshakes, or -1 when openssl cannot be run.
 */
static double sserver_handshakes(SSL_CTX *cctx, const char *cert, const char *key, const char *ca,
                                 int n)
{
    unsigned port = 0;
    int probe = listen_any(&port); /* a free port, handed to s_server */
    close(probe);
    char accept_arg[32], naccept[32];
    snprintf(accept_arg, sizeof accept_arg, "127.0.0.1:%u", port);
    snprintf(naccept, sizeof naccept, "%d", n + 1);
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0) {
            _exit(127);
        }
        execlp("openssl", "openssl", "s_server", "-accept", accept_arg, "-cert", cert, "-key", key,
               "-CAfile", ca, "-Verify", "1", "-tls1_3", "-num_tickets", "0", "-naccept", naccept,
               "-quiet", "-rev", (char *)NULL);
        _exit(127);
    }
    int ok = 0;
    for (int tries = 0; tries < 200 && !ok; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0) {
            SSL *ssl = SSL_new(cctx);
            SSL_set_fd(ssl, fd);
            size_t w = 0, r = 0;
            char b[8];
            ok = SSL_connect(ssl) == 1 && SSL_write_ex(ssl, "x\n", 2, &w) == 1 &&
                 SSL_read_ex(ssl, b, sizeof b, &r) == 1;
            SSL_free(ssl);
        }
        if (fd >= 0) {
            close(fd);
        }
        if (!ok) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
        ERR_clear_error();
    }
    double dt = -1;
    if (ok) {
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            int fd = connect_to(port);
            SSL *ssl = SSL_new(cctx);
            SSL_set_fd(ssl, fd);
            size_t w = 0, r = 0;
            char b[8];
            if (SSL_connect(ssl) != 1 || SSL_write_ex(ssl, "x\n", 2, &w) != 1 ||
                SSL_read_ex(ssl, b, sizeof b, &r) != 1) {
                die("s_server handshake", NULL);
            }
            SSL_free(ssl);
            close(fd);
        }
        dt = now_s() - t0;
    }
    int status = 0;
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    return dt;
}

/* Full mutual-TLS handshakes with the node, each confirmed by a PING/PONG round trip. */
static double node_handshakes(SSL_CTX *cctx, unsigned port, int n)
{
    uint8_t ping[RDX_TRANSPORT_FRAME_HDR];
    if (rdx_transport_frame_header(ping, RDX_FRAME_PING, 0, NULL) != RDX_OK) {
        die("frame", NULL);
    }
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        int fd = connect_to(port);
        SSL *ssl = SSL_new(cctx);
        SSL_set_fd(ssl, fd);
        size_t w = 0, r = 0;
        uint8_t pong[RDX_TRANSPORT_FRAME_HDR];
        if (SSL_connect(ssl) != 1 || SSL_write_ex(ssl, ping, sizeof ping, &w) != 1 ||
            SSL_read_ex(ssl, pong, sizeof pong, &r) != 1 || pong[3] != RDX_FRAME_PONG) {
            die("node handshake", NULL);
        }
        SSL_free(ssl);
        close(fd);
    }
    return now_s() - t0;
}

/* What the bulk runs need, and what they give. */
struct bulk_set {
    const rdx_transport_config *ccfg; /* the clinic's */
    const char *clinic_db;            /* its node.db */
    const char *clinic_ini, *file;
    SSL_CTX *sctx, *cctx;
    size_t mib;
    size_t *acked;       /* the clinic's acknowledged cases so far */
    const char *label;   /* for the CPU lines */
    double bulk[REPS];   /* MB/s */
    double plain[REPS];  /* the plain TLS stream right after each */
    double tuned[REPS];  /* and the tuned one */
    double ratio[REPS];  /* bulk / plain */
    double tratio[REPS]; /* bulk / tuned */
};

/*
 * Bulk, REPS times, each right before its plain TLS baselines, so a change in
 * the machine's load hits both. Each case is queued (copied and hashed)
 * before its clock starts.
 */
static void bulk_runs(struct bulk_set *b)
{
    const char *files[] = {b->file};
    char id[RDX_TRANSPORT_CASE_ID_LEN];
    rdx_error err;
    struct node_thread clinic;
    for (int rep = 0; rep < REPS; rep++) {
        if (rdx_transport_case_queue(b->ccfg, "hub", RDX_KIND_DICOM, files, 1, id, &err) !=
            RDX_OK) {
            die("queue", &err);
        }
        /* Before the clock starts: the lookup wait_acked repeats. */
        sqlite3 *db = NULL;
        sqlite3_stmt *q = NULL;
        if (sqlite3_open_v2(b->clinic_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "SELECT state = 'acked' FROM outbox WHERE case_id = ?1", -1, &q,
                               NULL) != SQLITE_OK ||
            sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
            die(b->clinic_db, NULL);
        }
        sqlite3_busy_timeout(db, 1000);
        struct cpu_snap c0, c1;
        cpu_snap_take(&c0);
        double t0 = now_s();
        if (getenv("RDX_BENCH_LOG") != NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            fprintf(stderr, "%ld.%03ld %s run %d starts\n", (long)ts.tv_sec, ts.tv_nsec / 1000000,
                    b->label, rep + 1);
        }
        start_node(&clinic, b->clinic_ini);
        wait_acked(q);
        ++*b->acked;
        b->bulk[rep] = (double)b->mib * 1.048576 / (now_s() - t0);
        cpu_snap_take(&c1);
        cpu_snap_print(&c0, &c1, (double)b->mib / 8, b->label,
                       (double)b->mib * 1.048576 / b->bulk[rep]);
        stop_node(&clinic);
        sqlite3_finalize(q);
        sqlite3_close(db);
        b->plain[rep] = plain_measured(b->sctx, b->cctx, b->mib, 0);
        b->ratio[rep] = b->bulk[rep] / b->plain[rep];
        b->tuned[rep] = plain_measured(b->sctx, b->cctx, b->mib, 1);
        b->tratio[rep] = b->bulk[rep] / b->tuned[rep];
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1024;
    size_t nsmall = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 2000;
    int nhs = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 300;
    char dir[] = "/tmp/rdx-bench-transport-XXXXXX";
    char p[4096], q[4096], text[4096];
    rdx_error err;
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL) {
        die("mkdtemp", NULL);
    }
    snprintf(p, sizeof p, "%s/pki", dir);
    rdx_transport_ca_cfg ca = {.dir = p, .network = "Bench Network"};
    rdx_transport_ca *h = NULL;
    if (rdx_transport_ca_create(&ca, &err) != RDX_OK ||
        rdx_transport_ca_open(p, &h, &err) != RDX_OK) {
        die("CA", &err);
    }
    const char *ids[] = {"hub", "clinic"};
    for (int i = 0; i < 2; i++) {
        rdx_transport_issue_cfg ic = {.institution = ids[i], .name = ids[i], .city = "Nanjing"};
        if (rdx_transport_ca_issue(h, &ic, NULL, &err) != RDX_OK) {
            die("issue", &err);
        }
    }
    rdx_transport_ca_free(h);

    /* The hub, listening on a port the kernel picks. */
    snprintf(p, sizeof p, "%s/hub.ini", dir);
    write_text(p, "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
                  "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = hub\n"
                  "[allow.send]\nclinic = *\n");
    struct node_thread hub;
    start_node(&hub, p);
    unsigned port = rdx_transport_node_port(hub.node);
    snprintf(q, sizeof q, "%s/clinic.ini", dir);
    snprintf(text, sizeof text,
             "[node]\nid = clinic\nlisten = 127.0.0.1:0\ncert = pki/certs/clinic.crt\n"
             "key = pki/private/clinic.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = clinic\n"
             "chunk_size = 8388608\n[peers]\nhub = 127.0.0.1:%u\n",
             port);
    write_text(q, text);
    rdx_transport_config *ccfg = NULL;
    if (rdx_transport_config_load(q, &ccfg, &err) != RDX_OK) {
        die(q, &err);
    }

    char cc[4200], ck[4200], cca[4200];
    snprintf(cc, sizeof cc, "%s/pki/certs/clinic.crt", dir);
    snprintf(ck, sizeof ck, "%s/pki/private/clinic.key", dir);
    snprintf(cca, sizeof cca, "%s/pki/ca.crt", dir);
    char hc[4200], hk[4200];
    snprintf(hc, sizeof hc, "%s/pki/certs/hub.crt", dir);
    snprintf(hk, sizeof hk, "%s/pki/private/hub.key", dir);
    SSL_CTX *sctx = ctx_for(hc, hk, cca, 1);
    SSL_CTX *cctx = ctx_for(cc, ck, cca, 0);

    /* 1. Bulk: the hub as configured by default, then with hash_nice = 10. */
    char big[4200], id[RDX_TRANSPORT_CASE_ID_LEN];
    snprintf(big, sizeof big, "%s/bulk.bin", dir);
    FILE *f = fopen(big, "wb");
    unsigned char *mb = malloc(1 << 20);
    for (size_t i = 0; i < (1u << 20); i++) {
        mb[i] = (unsigned char)(i * 2654435761u >> 24);
    }
    for (size_t i = 0; i < mib; i++) {
        mb[0] = (unsigned char)i;
        fwrite(mb, 1, 1 << 20, f);
    }
    fclose(f);
    free(mb);
    double small_r[REPS];
    size_t acked = 0;
    struct node_thread clinic;
    static struct bulk_set def, niced; /* static: large, and main runs once */
    char cdb_path[4200];
    snprintf(cdb_path, sizeof cdb_path, "%s/clinic/node.db", dir);
    def = (struct bulk_set){.ccfg = ccfg,
                            .clinic_db = cdb_path,
                            .clinic_ini = q,
                            .file = big,
                            .sctx = sctx,
                            .cctx = cctx,
                            .mib = mib,
                            .acked = &acked,
                            .label = "rdx bulk"};
    niced = def;
    niced.label = "rdx bulk, hash_nice = 10";
    bulk_runs(&def);
    /* The hub again, on the same port, with its hash threads at nice 10. */
    stop_node(&hub);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:%u\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = hub\n"
             "hash_nice = 10\n[allow.send]\nclinic = *\n",
             port);
    write_text(p, text);
    start_node(&hub, p);
    bulk_runs(&niced);
    unlink(big);

    /*
     * 1b. Medium cases, the size of a CT series: MEDIUM_CASES cases of
     * MEDIUM_MIB MiB queued, then sent by one clinic node; MB/s from its
     * start to the last ACK, REPS batches, each right before a plain TLS
     * stream of the same bytes. Per-case costs (the offer and ACK round
     * trips, the item's fdatasync, the hub's buffers) weigh more here than
     * in one 1 GiB case.
     */
    char med[MEDIUM_CASES][4200];
    unsigned char *piece = malloc(1 << 20);
    if (piece == NULL) {
        die("out of memory", NULL);
    }
    uint32_t x = 2166136261u;
    for (int k = 0; k < MEDIUM_CASES; k++) {
        snprintf(med[k], sizeof med[k], "%s/series-%02d.bin", dir, k);
        f = fopen(med[k], "wb");
        if (f == NULL) {
            die(med[k], NULL);
        }
        for (int m = 0; m < MEDIUM_MIB; m++) {
            for (size_t i = 0; i < (1u << 20); i++) {
                x = x * 1664525u + 1013904223u;
                piece[i] = (unsigned char)(x >> 24);
            }
            if (fwrite(piece, 1, 1 << 20, f) != 1 << 20) {
                die(med[k], NULL);
            }
        }
        if (fclose(f) != 0) {
            die(med[k], NULL);
        }
    }
    free(piece);
    double med_r[REPS], med_plain[REPS], med_ratio[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        for (int k = 0; k < MEDIUM_CASES; k++) {
            const char *mf[] = {med[k]};
            if (rdx_transport_case_queue(ccfg, "hub", RDX_KIND_DICOM, mf, 1, id, &err) != RDX_OK) {
                die("queue", &err);
            }
        }
        double t0 = now_s();
        start_node(&clinic, q);
        acked += MEDIUM_CASES;
        wait_all_acked(ccfg, acked);
        med_r[rep] = (double)MEDIUM_CASES * MEDIUM_MIB * 1.048576 / (now_s() - t0);
        stop_node(&clinic);
        med_plain[rep] = plain_measured(sctx, cctx, (size_t)MEDIUM_CASES * MEDIUM_MIB, 0);
        med_ratio[rep] = med_r[rep] / med_plain[rep];
    }
    for (int k = 0; k < MEDIUM_CASES; k++) {
        unlink(med[k]);
    }

    /* 2. Small durable cases, REPS batches. */
    char small[4200];
    snprintf(small, sizeof small, "%s/small.bin", dir);
    f = fopen(small, "wb");
    for (int i = 0; i < 1024; i++) {
        fputc(i & 0xff, f);
    }
    fclose(f);
    const char *sf[] = {small};
    for (int rep = 0; rep < REPS; rep++) {
        for (size_t i = 0; i < nsmall; i++) {
            if (rdx_transport_case_queue(ccfg, "hub", RDX_KIND_LAB_RESULT, sf, 1, id, &err) !=
                RDX_OK) {
                die("queue", &err);
            }
        }
        double t0 = now_s();
        start_node(&clinic, q);
        acked += nsmall;
        wait_all_acked(ccfg, acked);
        small_r[rep] = (double)nsmall / (now_s() - t0);
        stop_node(&clinic);
    }

    /*
     * 3. Handshakes, REPS rounds: each round the node, `openssl s_server` and
     * the in-process loop right after one another, so that a change in the
     * machine's load falls on all three; rates and ratios are medians.
     */
    double node_r[REPS], plain_r[REPS], ss_r[REPS], ss_ratio[REPS], plain_ratio[REPS];
    int ss_ok = 1;
    for (int rep = 0; rep < REPS; rep++) {
        double node_hs = node_handshakes(cctx, port, nhs);
        double plain_hs = plain_handshakes(sctx, cctx, nhs);
        double ss_hs = sserver_handshakes(cctx, hc, hk, cca, nhs);
        node_r[rep] = (double)nhs / node_hs;
        plain_r[rep] = (double)nhs / plain_hs;
        plain_ratio[rep] = plain_hs / node_hs;
        ss_ok = ss_ok && ss_hs > 0;
        ss_r[rep] = ss_hs > 0 ? (double)nhs / ss_hs : 0;
        ss_ratio[rep] = ss_hs > 0 ? ss_hs / node_hs : 0;
    }
    stop_node(&hub);
    rdx_transport_config_free(ccfg);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);

    char ss[200];
    if (ss_ok) {
        snprintf(ss, sizeof ss, "`openssl s_server` %.0f /s [%.0f-%.0f] | %.0f %% [%.0f-%.0f]",
                 median(ss_r), lo(ss_r), hi(ss_r), 100.0 * median(ss_ratio), 100.0 * lo(ss_ratio),
                 100.0 * hi(ss_ratio));
    } else {
        snprintf(ss, sizeof ss, "`openssl s_server` could not be run | ");
    }
    char report[8192];
    snprintf(report, sizeof report,
             "# transport bench\n\n"
             "Measured by `bench/transport_bench %zu %zu %d` on 127.0.0.1 in one run: the "
             "median of %d runs, with the range in brackets (each bulk run right before its "
             "plain TLS baseline; the ratio is the median of the per-run ratios). Where the "
             "figures come from and what limits them: docs/transport-performance.md.\n\n"
             "| figure | rdx | baseline | ratio | target |\n| --- | --- | --- | --- | --- |\n"
             "| bulk, one %zu MiB case (8 MiB chunks, each checked by one SHA-256 pass per "
             "item, O_DIRECT writes, fdatasync before the ACK) | %.0f MB/s [%.0f-%.0f] | plain "
             "TLS 1.3 stream %.0f MB/s [%.0f-%.0f] | %.0f %% [%.0f-%.0f] | >= 70 %% |\n"
             "| (the same bulk runs, against a plain TLS stream with the node's socket tuning: "
             "64 KiB reads, 256 KiB writes) | | %.0f MB/s [%.0f-%.0f] | %.0f %% [%.0f-%.0f] "
             "| |\n"
             "| bulk as above, the hub with `hash_nice = 10` (its hash threads behind its "
             "event loop, docs/transport.md) | %.0f MB/s [%.0f-%.0f] | plain %.0f MB/s "
             "[%.0f-%.0f]; tuned %.0f MB/s [%.0f-%.0f] | %.0f %% [%.0f-%.0f]; tuned %.0f %% "
             "[%.0f-%.0f] | |\n"
             "| medium cases, %d of %d MiB each (a CT series), one sender | %.0f MB/s "
             "[%.0f-%.0f] | plain TLS 1.3 stream %.0f MB/s [%.0f-%.0f] | %.0f %% [%.0f-%.0f] | |\n"
             "| small durable cases (1 KiB), one sender, group commit | %.0f cases/s "
             "[%.0f-%.0f] | | | >= 2000/s |\n"
             "| full mutual-TLS handshakes (with a PING round trip) | %.0f /s [%.0f-%.0f] | %s "
             "| >= 80 %% |\n"
             "| (the same, against an in-process OpenSSL server loop) | | %.0f /s [%.0f-%.0f] | "
             "%.0f %% [%.0f-%.0f] | |\n",
             mib, nsmall, nhs, REPS, mib, median(def.bulk), lo(def.bulk), hi(def.bulk),
             median(def.plain), lo(def.plain), hi(def.plain), 100.0 * median(def.ratio),
             100.0 * lo(def.ratio), 100.0 * hi(def.ratio), median(def.tuned), lo(def.tuned),
             hi(def.tuned), 100.0 * median(def.tratio), 100.0 * lo(def.tratio),
             100.0 * hi(def.tratio), median(niced.bulk), lo(niced.bulk), hi(niced.bulk),
             median(niced.plain), lo(niced.plain), hi(niced.plain), median(niced.tuned),
             lo(niced.tuned), hi(niced.tuned), 100.0 * median(niced.ratio), 100.0 * lo(niced.ratio),
             100.0 * hi(niced.ratio), 100.0 * median(niced.tratio), 100.0 * lo(niced.tratio),
             100.0 * hi(niced.tratio), MEDIUM_CASES, MEDIUM_MIB, median(med_r), lo(med_r),
             hi(med_r), median(med_plain), lo(med_plain), hi(med_plain), 100.0 * median(med_ratio),
             100.0 * lo(med_ratio), 100.0 * hi(med_ratio), median(small_r), lo(small_r),
             hi(small_r), median(node_r), lo(node_r), hi(node_r), ss, median(plain_r), lo(plain_r),
             hi(plain_r), 100.0 * median(plain_ratio), 100.0 * lo(plain_ratio),
             100.0 * hi(plain_ratio));
    fputs(report, stdout);
    struct stat sb;
    if (stat("docs", &sb) == 0) {
        write_text("docs/bench-transport.md", report);
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "transport_bench: could not remove %s\n", dir);
    }
    return 0;
}
