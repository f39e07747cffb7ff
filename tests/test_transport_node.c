/*
 * Two real `rdx node serve` processes on loopback (127.0.0.1, ports chosen by
 * the kernel), with certificates made by the PKI code: a clinic that sends and
 * a hub that receives. Refusals (no certificate, another CA, expired, revoked,
 * policy), a case byte-identical at the far end, a resumed transfer, a
 * corrupted chunk, a duplicate applied once, timeouts, 200 concurrent peers,
 * and revocation reaching live connections: a new CRL closing a revoked
 * peer's connection (idle or in the middle of a case), a bad CRL file kept
 * out, and the sender's kept connection dropped for a revoked receiver or an
 * expired CRL (the test playing the receiver); an older CRL put back while a
 * node is stopped refused at its next start (node.db's CRL mark), and a CRL
 * not valid yet holding deliveries and closing the receiver. Waits are
 * bounded polls of the nodes' own state, never timings.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/nodeutil.h"
#include "support/testutil.h"

struct world {
    char *dir;
    char pki[4200], other[4200];
    char hub_ini[4200], clinic_ini[4200];
    char hub_db[4200], clinic_db[4200];
    char hub_log[4200], clinic_log[4200];
    pid_t hub, clinic;
    unsigned hub_port;
    const char *hub_extra; /* more [node] keys for the hub (NULL: none) */
};

/* ---- helpers ------------------------------------------------------------- */

/* The whole of file path (at most 1 MiB) into out, which the caller frees. */
static void file_take(const char *path, rdx_buf *out)
{
    rdx_error err;
    rdx_buf_init(out, 1u << 20);
    assert_int_equal(rdx_file_read(path, out, &err), RDX_OK);
}

/* Count audit records of event whose detail contains substr (NULL: any). */
static int audit_count(const char *db_path, const char *event, const char *substr)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int n = 0;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return 0;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM audit WHERE event=?1 AND (?2 IS NULL OR "
                           "instr(detail, ?2) > 0)",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_bind_text(s, 1, event, -1, SQLITE_STATIC) == SQLITE_OK &&
        (substr ? sqlite3_bind_text(s, 2, substr, -1, SQLITE_STATIC) : sqlite3_bind_null(s, 2)) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        n = sqlite3_column_int(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void wait_audit(const char *db_path, const char *event, const char *substr, int atleast)
{
    for (int i = 0; i < 400; i++) {
        if (audit_count(db_path, event, substr) >= atleast) {
            return;
        }
        rdx_test_sleep_ms(25);
    }
    fail_msg("no audit record '%s' with '%s' in %s", event, substr ? substr : "", db_path);
}

/* Wait until the clinic's outbox has case id in state. */
static void wait_outbox(struct world *w, const char *id, const char *state)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='%s'", state);
    rdx_test_wait_sql(w->clinic_db, sql, id, 1, 15000);
}

static void run_ok(struct rdx_run *r, const char *const *argv)
{
    assert_int_equal(rdx_run_rdx(r, argv), 0);
}

/* Entries in dir, besides . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

/* ---- an in-process TLS client, as a hostile or honest peer ---------------- */

struct peer {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    rdx_transport_decoder *dec;
    uint8_t in[16384];
    size_t in_len, in_off;
};

static int tcp_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Connect as cert/key (both NULL: no client certificate). Returns SSL_connect's verdict. */
static int peer_open(struct peer *p, unsigned port, const char *cert, const char *key)
{
    memset(p, 0, sizeof *p);
    p->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->ctx);
    SSL_CTX_set_min_proto_version(p->ctx, TLS1_3_VERSION);
    if (cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate_file(p->ctx, cert, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(p->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    p->fd = tcp_to(port);
    p->ssl = SSL_new(p->ctx);
    SSL_set_fd(p->ssl, p->fd);
    assert_int_equal(rdx_transport_decoder_new(0, &p->dec, NULL), RDX_OK);
    int rc = SSL_connect(p->ssl);
    ERR_clear_error();
    return rc;
}

static void peer_close(struct peer *p)
{
    if (p->ssl != NULL) {
        SSL_free(p->ssl);
    }
    if (p->fd >= 0) {
        close(p->fd);
    }
    SSL_CTX_free(p->ctx);
    rdx_transport_decoder_free(p->dec);
    memset(p, 0, sizeof *p);
    p->fd = -1;
}

static int peer_send(struct peer *p, unsigned type, const void *payload, size_t len)
{
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_FRAME_MAX + 64);
    assert_int_equal(rdx_transport_frame_encode(&b, type, payload, len, NULL), RDX_OK);
    size_t w = 0;
    int ok = SSL_write_ex(p->ssl, b.data, b.len, &w) == 1 && w == b.len;
    rdx_buf_free(&b);
    ERR_clear_error();
    return ok ? 0 : -1;
}

/* Read one frame; -1 when the server closed or refused at the TLS level. */
static int peer_read(struct peer *p, rdx_transport_frame *f)
{
    for (;;) {
        while (p->in_off < p->in_len) {
            size_t used = 0;
            int got = 0;
            if (rdx_transport_decoder_feed(p->dec, p->in + p->in_off, p->in_len - p->in_off, &used,
                                           f, &got, NULL) != RDX_OK) {
                return -1;
            }
            p->in_off += used;
            if (got) {
                return 0;
            }
        }
        size_t r = 0;
        if (SSL_read_ex(p->ssl, p->in, sizeof p->in, &r) != 1) {
            ERR_clear_error();
            return -1;
        }
        p->in_len = r;
        p->in_off = 0;
    }
}

/* ---- world setup ----------------------------------------------------------- */

static void write_configs(struct world *w, unsigned hub_port, unsigned hub_listen)
{
    char text[8192];
    snprintf(text, sizeof text,
             "; the hub: receives ECG and lab orders from the clinic\n"
             "[node]\nid = hub\nlisten = 127.0.0.1:%u\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = hub\n"
             "handshake_timeout_ms = 2000\nread_timeout_ms = 2000\nidle_timeout_ms = 20000\n"
             "chunk_size = 1048576\n%s\n[peers]\nclinic = 127.0.0.1:9\n\n"
             "[allow.send]\nclinic = ecg, lab-order\nex-member = *\nlapsed = *\nmover = ecg\n",
             hub_listen, w->hub_extra != NULL ? w->hub_extra : "");
    rdx_test_write_text(w->hub_ini, text);
    snprintf(text, sizeof text,
             "[node]\nid = clinic\nlisten = 127.0.0.1:0\ncert = pki/certs/clinic.crt\n"
             "key = pki/private/clinic.key\nca = pki/ca.crt\ncrl = pki/crl.pem\n"
             "data = clinic\nchunk_size = 1048576\nretry_base_ms = 100\nretry_max_ms = 400\n"
             "max_attempts = 60\n\n[peers]\nhub = 127.0.0.1:%u\n",
             hub_port);
    rdx_test_write_text(w->clinic_ini, text);
}

static int world_setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    rdx_error err;
    w->dir = rdx_test_tmpdir();
    snprintf(w->pki, sizeof w->pki, "%s/pki", w->dir);
    snprintf(w->other, sizeof w->other, "%s/rogue-pki", w->dir);
    snprintf(w->hub_ini, sizeof w->hub_ini, "%s/hub.ini", w->dir);
    snprintf(w->clinic_ini, sizeof w->clinic_ini, "%s/clinic.ini", w->dir);
    snprintf(w->hub_db, sizeof w->hub_db, "%s/hub/node.db", w->dir);
    snprintf(w->clinic_db, sizeof w->clinic_db, "%s/clinic/node.db", w->dir);
    snprintf(w->hub_log, sizeof w->hub_log, "%s/hub.log", w->dir);
    snprintf(w->clinic_log, sizeof w->clinic_log, "%s/clinic.log", w->dir);
    rdx_transport_ca_cfg ca = {.dir = w->pki, .network = "Nanjing Test Network"};
    rdx_transport_ca_cfg rogue = {.dir = w->other, .network = "Rogue Network"};
    if (rdx_transport_ca_create(&ca, &err) != RDX_OK ||
        rdx_transport_ca_create(&rogue, &err) != RDX_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    rdx_test_issue(w->pki, "hub", "Nanjing", 0, 0);
    rdx_test_issue(w->pki, "clinic", "Nanjing", 0, 0);
    rdx_test_issue(w->pki, "ex-member", "Nanjing", 0, 0);
    rdx_test_issue(w->pki, "lapsed", "Nanjing", (int64_t)time(NULL) - 30 * 86400, 2);
    rdx_test_issue(w->other, "clinic", "Nanjing", 0, 0); /* same ID, wrong CA */
    rdx_transport_ca *h = NULL;
    if (rdx_transport_ca_open(w->pki, &h, &err) != RDX_OK ||
        rdx_transport_ca_revoke(h, "ex-member", NULL, RDX_TRANSPORT_REVOKE_KEY_COMPROMISE, 0, NULL,
                                &err) != RDX_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    rdx_transport_ca_free(h);
    write_configs(w, 9, 0);
    w->hub = rdx_test_spawn_node(w->hub_ini, w->hub_log);
    char data[4300];
    snprintf(data, sizeof data, "%s/hub", w->dir);
    w->hub_port = rdx_test_wait_port(data, 10000);
    write_configs(w, w->hub_port, 0);
    w->clinic = rdx_test_spawn_node(w->clinic_ini, w->clinic_log);
    snprintf(data, sizeof data, "%s/clinic", w->dir);
    (void)rdx_test_wait_port(data, 10000);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;
    rdx_test_stop_node(w->clinic);
    rdx_test_stop_node(w->hub);
    /* Both audit chains must verify after everything the tests did. */
    const char *dbs[] = {w->hub_db, w->clinic_db};
    for (int i = 0; i < 2; i++) {
        sqlite3 *db = NULL;
        long long n = 0, bad = 0;
        rdx_error err;
        assert_int_equal(sqlite3_open(dbs[i], &db), SQLITE_OK);
        if (rdx_tp_audit_verify(db, &n, &bad, &err) != RDX_OK) {
            fail_msg("%s: %s", dbs[i], err.msg);
        }
        assert_true(n > 0);
        sqlite3_close(db);
    }
    rdx_test_rmrf_unless_kept(w->dir);
    free(w->dir);
    free(w);
    return 0;
}

/* ---- refusals ---------------------------------------------------------------- */

static void expect_refused(struct world *w, const char *cert, const char *key, const char *why)
{
    struct peer p;
    rdx_transport_frame f;
    int before = audit_count(w->hub_db, "connection-refused", why);
    (void)peer_open(&p, w->hub_port, cert, key);
    /* In TLS 1.3 the client may finish first; the server's refusal shows on the first read. */
    if (p.ssl != NULL) {
        (void)peer_send(&p, RDX_FRAME_PING, NULL, 0);
        assert_int_equal(peer_read(&p, &f), -1);
    }
    peer_close(&p);
    wait_audit(w->hub_db, "connection-refused", why, before + 1);
    assert_true(rdx_test_file_contains(w->hub_log, why));
}

static void test_node_refuses_no_certificate(void **state)
{
    struct world *w = *state;
    expect_refused(w, NULL, NULL, "no client certificate");
}

static void test_node_refuses_other_ca(void **state)
{
    struct world *w = *state;
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->other);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->other);
    expect_refused(w, c, k, "not issued by this network's CA");
}

static void test_node_refuses_expired(void **state)
{
    struct world *w = *state;
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/lapsed.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/lapsed.key", w->pki);
    expect_refused(w, c, k, "certificate has expired, claims institution lapsed");
}

static void test_node_refuses_revoked(void **state)
{
    struct world *w = *state;
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/ex-member.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/ex-member.key", w->pki);
    expect_refused(w, c, k, "certificate revoked, claims institution ex-member");
}

static void test_node_refuses_policy_and_dead_letters(void **state)
{
    struct world *w = *state;
    char f[4300], id[40];
    snprintf(f, sizeof f, "%s/study.dcm", w->dir);
    rdx_test_make_file(f, 1000, 7);
    const char *files[] = {f, NULL};
    rdx_test_send_case(w->clinic_ini, "hub", "dicom", files, id);
    /* A policy refusal is permanent: dead-lettered at once, with the reason. */
    wait_outbox(w, id, "dead");
    wait_audit(w->hub_db, "policy-refused", "not allow institution 'clinic' to send 'dicom'", 1);
    wait_audit(w->clinic_db, "case-dead-lettered", "policy does not allow", 1);
    assert_true(rdx_test_file_contains(w->hub_log, "refused case"));
    assert_int_equal(rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1", id), 0);
    struct rdx_run r;
    const char *st[] = {"case", "status", "--config", w->clinic_ini, "--json", NULL};
    run_ok(&r, st);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"state\":\"dead\""));
    assert_non_null(strstr(r.out, "policy does not allow"));
    rdx_run_free(&r);
    /* An operator sends the dead letter again: queued afresh, tried, and (still refused) dead. */
    const char *retry[] = {"case", "retry", "--config", w->clinic_ini, id, NULL};
    run_ok(&r, retry);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "queued again"));
    rdx_run_free(&r);
    wait_audit(w->clinic_db, "case-requeued", "operator", 1);
    wait_audit(w->clinic_db, "case-dead-lettered", "policy does not allow", 2);
    wait_audit(w->hub_db, "policy-refused", "not allow institution 'clinic' to send 'dicom'", 2);
    /* Counted afresh: one attempt since the retry (a lost link could add one, not more). */
    int attempts = rdx_test_sql(w->clinic_db, "SELECT attempts FROM outbox WHERE case_id=?1", id);
    assert_true(attempts >= 1 && attempts <= 2);
    const char *bad[] = {"case", "retry", "--config", w->clinic_ini, "no-such-case", NULL};
    run_ok(&r, bad);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "not in the outbox"));
    rdx_run_free(&r);
}

/* ---- delivery ----------------------------------------------------------------- */

static void test_node_delivers_byte_identical(void **state)
{
    struct world *w = *state;
    char a[4300], b[4300], c[4300], id[40], out[4300];
    snprintf(a, sizeof a, "%s/100.hea", w->dir);
    snprintf(b, sizeof b, "%s/100.dat", w->dir);
    snprintf(c, sizeof c, "%s/empty.atr", w->dir);
    rdx_test_write_text(a, "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n");
    rdx_test_make_file(b, 3 * 1048576 + 12345, 1); /* four 1 MiB chunks, the last short */
    rdx_test_make_file(c, 0, 0);
    const char *files[] = {a, b, c, NULL};
    rdx_test_send_case(w->clinic_ini, "hub", "ecg", files, id);
    wait_outbox(w, id, "acked");
    assert_int_equal(
        rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1 AND state='complete'",
                     id),
        1);
    snprintf(out, sizeof out, "%s/fetched", w->dir);
    assert_int_equal(mkdir(out, 0700), 0);
    struct rdx_run r;
    const char *fetch[] = {"case", "fetch", "--config", w->hub_ini, "-o", out, id, NULL};
    run_ok(&r, fetch);
    if (r.exit_code != 0) {
        fail_msg("fetch: %s", r.err);
    }
    rdx_run_free(&r);
    char fa[4400], fb[4400], fc[4400];
    snprintf(fa, sizeof fa, "%s/100.hea", out);
    snprintf(fb, sizeof fb, "%s/100.dat", out);
    snprintf(fc, sizeof fc, "%s/empty.atr", out);
    assert_true(rdx_test_files_equal(a, fa));
    assert_true(rdx_test_files_equal(b, fb));
    assert_true(rdx_test_files_equal(c, fc));
    /* A second fetch never overwrites. */
    run_ok(&r, fetch);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "already exists"));
    rdx_run_free(&r);
    const char *list[] = {"case", "list", "--config", w->hub_ini, "--inbox", NULL};
    run_ok(&r, list);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, id));
    rdx_run_free(&r);
    wait_audit(w->hub_db, "case-received", NULL, 1);
    wait_audit(w->clinic_db, "case-acknowledged", NULL, 1);
}

static void restart(struct world *w, int hub);

/* Count rows of inbox_blobs for case id: spilled = 0 (not written yet) or > 0 (written). */
static int blob_rows(struct world *w, const char *id, int spilled)
{
    return rdx_test_sql(w->hub_db,
                        spilled ? "SELECT count(*) FROM inbox_blobs WHERE case_id=?1 AND spilled>0"
                                : "SELECT count(*) FROM inbox_blobs WHERE case_id=?1 AND spilled=0",
                        id);
}

static void item_file(struct world *w, const char *id, int idx, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/hub/inbox/clinic/%s/%d", w->dir, id, idx);
}

/* Restart the hub (already stopped or killed) with extra [node] keys (NULL: the defaults). */
static void hub_restart_with(struct world *w, const char *extra)
{
    w->hub_extra = extra;
    restart(w, 1);
}

/*
 * After restart: case id from the clinic is in the inbox exactly once, was
 * received (audited) once and offered once, its item files are the originals
 * byte for byte, and `rdx case fetch` gives exactly those two items.
 */
static void assert_small_case_whole(struct world *w, const char *id, const char *a, const char *b,
                                    const char *tag)
{
    char item[4400], out[4400], fa[4500], fb[4500];
    assert_int_equal(blob_rows(w, id, 0) + blob_rows(w, id, 1), 0);
    assert_int_equal(
        rdx_test_sql(
            w->hub_db,
            "SELECT count(*) FROM inbox WHERE case_id=?1 AND state='complete' AND offers=1", id),
        1);
    assert_int_equal(rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1", id), 1);
    assert_int_equal(
        rdx_test_sql(w->hub_db,
                     "SELECT count(*) FROM audit WHERE event='case-received' AND object=?1", id),
        1);
    item_file(w, id, 0, item, sizeof item);
    assert_true(rdx_test_files_equal(a, item));
    item_file(w, id, 1, item, sizeof item);
    assert_true(rdx_test_files_equal(b, item));
    snprintf(out, sizeof out, "%s/fetched-%s", w->dir, tag);
    assert_int_equal(mkdir(out, 0700), 0);
    struct rdx_run r;
    const char *fetch[] = {"case", "fetch", "--config", w->hub_ini, "-o", out, id, NULL};
    run_ok(&r, fetch);
    if (r.exit_code != 0) {
        fail_msg("fetch %s: %s", id, r.err);
    }
    rdx_run_free(&r);
    snprintf(fa, sizeof fa, "%s/result.hl7", out);
    snprintf(fb, sizeof fb, "%s/note.txt", out);
    assert_true(rdx_test_files_equal(a, fa));
    assert_true(rdx_test_files_equal(b, fb));
    assert_int_equal(dir_entries(out), 2);
}

/*
 * A case of small items is committed to node.db and acknowledged before its
 * files exist; the files follow from the spill thread ([node]
 * spill_delay_ms after the commit), and become the items at the spill's
 * checkpoint (one syncfs, then the node.db rows go; [node]
 * spill_checkpoint_ms). Whatever moment one looks, the case reads back whole,
 * and a kill -9 in either window loses nothing. Each window is made wide by
 * the hub's configuration and then proved from node.db after the kill, so
 * the test knows which one it covered:
 *   1. after the ACK, before the spill: rows with spilled = 0, no item files;
 *   2. after the spill, before its checkpoint: rows with spilled > 0, the
 *      files written but never synced. kill -9 keeps the page cache, so what
 *      a power cut could do to unsynced files (lose one, cut one short) is
 *      done by hand before the restart.
 */
static void test_node_small_items_spill_and_survive_a_crash(void **state)
{
    struct world *w = *state;
    char a[4300], b[4300], id[40], out[4300], item[4400];
    snprintf(a, sizeof a, "%s/result.hl7", w->dir);
    snprintf(b, sizeof b, "%s/note.txt", w->dir);
    rdx_test_make_file(a, 3000, 7);
    rdx_test_make_file(b, 65536, 8); /* exactly the inline ceiling */
    const char *files[] = {a, b, NULL};
    rdx_test_send_case(w->clinic_ini, "hub", "lab-order", files, id);
    wait_outbox(w, id, "acked");
    /* Right after the ACK: the item path gives a complete file, durably written. */
    rdx_transport_config *cfg = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_config_load(w->hub_ini, &cfg, &err), RDX_OK);
    assert_int_equal(rdx_transport_inbox_item_path(cfg, "clinic", id, 1, item, sizeof item, &err),
                     RDX_OK);
    assert_true(rdx_test_files_equal(b, item));
    snprintf(out, sizeof out, "%s/fetched-small", w->dir);
    assert_int_equal(mkdir(out, 0700), 0);
    size_t n = 0;
    assert_int_equal(rdx_transport_case_fetch(cfg, id, "clinic", out, &n, &err), RDX_OK);
    assert_int_equal(n, 2);
    char fa[4400];
    snprintf(fa, sizeof fa, "%s/result.hl7", out);
    assert_true(rdx_test_files_equal(a, fa));
    rdx_transport_config_free(cfg);

    /* Window 1: the spill held back a minute; the hub killed right after the ACK. */
    rdx_test_stop_node(w->hub);
    hub_restart_with(w, "spill_delay_ms = 60000\n");
    char id2[40];
    rdx_test_send_case(w->clinic_ini, "hub", "lab-order", files, id2);
    wait_outbox(w, id2, "acked");
    kill(w->hub, SIGKILL);
    (void)waitpid(w->hub, NULL, 0);
    assert_int_equal(blob_rows(w, id2, 0), 2); /* the kill landed before the spill */
    assert_int_equal(blob_rows(w, id2, 1), 0);
    for (int k = 0; k < 2; k++) {
        item_file(w, id2, k, item, sizeof item);
        assert_int_equal(access(item, F_OK), -1);
    }

    /* Window 2: spilled at once, the checkpoint held back ten minutes; killed after the spill. */
    hub_restart_with(w, "spill_delay_ms = 0\nspill_checkpoint_ms = 600000\n");
    assert_small_case_whole(w, id2, a, b, "window1"); /* restored at start from node.db */
    char id3[40];
    rdx_test_send_case(w->clinic_ini, "hub", "lab-order", files, id3);
    wait_outbox(w, id3, "acked");
    for (int tries = 0; tries < 400 && blob_rows(w, id3, 1) < 2; tries++) {
        rdx_test_sleep_ms(25);
    }
    kill(w->hub, SIGKILL);
    (void)waitpid(w->hub, NULL, 0);
    assert_int_equal(blob_rows(w, id3, 1),
                     2); /* written, and the kill came before the checkpoint */
    assert_int_equal(blob_rows(w, id3, 0), 0);
    item_file(w, id3, 0, item, sizeof item);
    assert_true(rdx_test_files_equal(a, item));
    assert_int_equal(unlink(item), 0); /* as if never synced: lost ... */
    item_file(w, id3, 1, item, sizeof item);
    assert_true(rdx_test_files_equal(b, item));
    assert_int_equal(truncate(item, 1000), 0); /* ... and cut short */

    const char *restored = "restored 2 small item files lost by a crash";
    char *log = rdx_test_slurp(w->hub_log);
    size_t before = rdx_test_count(log, restored);
    free(log);
    hub_restart_with(w, NULL);
    assert_small_case_whole(w, id3, a, b, "window2");
    log = rdx_test_slurp(w->hub_log);
    assert_int_equal(rdx_test_count(log, restored), before + 1);
    free(log);
    /* And nothing else moved: the first two cases are as they were. */
    assert_small_case_whole(w, id, a, b, "after");
    assert_small_case_whole(w, id2, a, b, "after2");
}

/*
 * The hub's threads named rdx-hash: how many, and how many run at nice value
 * nice (field 19 of /proc/PID/task/TID/stat).
 */
static int hash_threads(pid_t pid, int nice, int *with_nice)
{
    char dir[64], path[400], buf[1024];
    int n = 0;
    *with_nice = 0;
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
        FILE *f = fopen(path, "r");
        size_t got = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f != NULL) {
            fclose(f);
        }
        buf[got] = 0;
        char *close_paren = strrchr(buf, ')');
        if (strstr(buf, "(rdx-hash)") == NULL || close_paren == NULL) {
            continue;
        }
        n++;
        /* After ") ": field 3 (state) onwards; the nice value is field 19. */
        char *p = close_paren + 2;
        for (int field = 3; field < 19 && p != NULL; field++) {
            p = strchr(p, ' ');
            p = p != NULL ? p + 1 : NULL;
        }
        if (p != NULL && strtol(p, NULL, 10) == nice) {
            (*with_nice)++;
        }
    }
    closedir(d);
    return n;
}

/* hash_nice sets the two hash threads' nice value (not the loop's), and large cases still arrive.
 */
static void test_node_hash_nice(void **state)
{
    struct world *w = *state;
    int niced = 0, normal = 0;
    rdx_test_stop_node(w->hub);
    hub_restart_with(w, "hash_nice = 10\n");
    assert_int_equal(hash_threads(w->hub, 10, &niced), 2);
    assert_int_equal(niced, 2);
    assert_int_equal(getpriority(PRIO_PROCESS, (id_t)w->hub), 0); /* the main thread is not */
    char a[4300], id[40];
    snprintf(a, sizeof a, "%s/niced.dat", w->dir);
    rdx_test_make_file(a, 5 * 1048576 + 77, 3); /* six chunks, two at a time at the threads */
    const char *files[] = {a, NULL};
    rdx_test_send_case(w->clinic_ini, "hub", "ecg", files, id);
    wait_outbox(w, id, "acked");
    char got[4400];
    item_file(w, id, 0, got, sizeof got);
    assert_true(rdx_test_files_equal(a, got));
    /* The default is nice 0. */
    rdx_test_stop_node(w->hub);
    hub_restart_with(w, NULL);
    assert_int_equal(hash_threads(w->hub, 0, &normal), 2);
    assert_int_equal(normal, 2);
}

static void test_node_duplicate_applied_once(void **state)
{
    struct world *w = *state;
    char a[4300], id[40];
    snprintf(a, sizeof a, "%s/order.hl7", w->dir);
    rdx_test_write_text(a, "MSH|^~\\&|LIS|GULOU|LAB|HUB|20261201||ORM^O01|1|P|2.5.1\r");
    const char *files[] = {a, NULL};
    rdx_test_send_case(w->clinic_ini, "hub", "lab-order", files, id);
    wait_outbox(w, id, "acked");
    int dups = audit_count(w->hub_db, "case-duplicate", NULL);
    /*
     * The sender "crashed" after sending but before recording the ACK: its
     * outbox still says queued. It sends again; the hub acknowledges and does
     * not deliver a second time.
     */
    assert_int_equal(
        rdx_test_sql(w->clinic_db,
                     "UPDATE outbox SET state='queued', next_attempt_ms=0 WHERE case_id=?1", id),
        0);
    wait_outbox(w, id, "acked");
    wait_audit(w->hub_db, "case-duplicate", NULL, dups + 1);
    wait_audit(w->clinic_db, "case-acknowledged", "already had it", 1);
    assert_int_equal(rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1", id), 1);
    assert_int_equal(
        audit_count(w->hub_db, "case-received", NULL),
        rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL));
}

/* A manifest of nitems random items (clinic -> hub), and their bytes. */
static void make_manifest(struct rdx_tp_manifest *m, uint8_t **data, const size_t *sizes, size_t n,
                          const char *case_id)
{
    memset(m, 0, sizeof *m);
    snprintf(m->case_id, sizeof m->case_id, "%s", case_id);
    m->kind = RDX_KIND_ECG;
    snprintf(m->sender, sizeof m->sender, "clinic");
    snprintf(m->recipient, sizeof m->recipient, "hub");
    m->created_ms = rdx_clock_wall_ms();
    m->chunk_size = 1048576;
    m->nitems = n;
    m->items = calloc(n, sizeof *m->items);
    for (size_t i = 0; i < n; i++) {
        snprintf(m->items[i].name, sizeof m->items[i].name, "part%zu.dat", i);
        m->items[i].size = sizes[i];
        data[i] = malloc(sizes[i] + 1);
        uint32_t x = (uint32_t)(i + 11);
        for (size_t k = 0; k < sizes[i]; k++) {
            x = x * 1664525u + 1013904223u;
            data[i][k] = (uint8_t)(x >> 24);
        }
        EVP_Digest(data[i], sizes[i], m->items[i].sha256, NULL, EVP_sha256(), NULL);
    }
}

/* f must be a REFUSE with code, whose reason contains needle (NULL: any reason). */
static void expect_refuse_frame(const rdx_transport_frame *f, unsigned want, const char *needle)
{
    char cid[80], reason[1100];
    unsigned code = 0;
    assert_int_equal(f->type, RDX_FRAME_REFUSE);
    assert_int_equal(
        rdx_tp_refuse_decode(f->payload, f->len, cid, &code, reason, sizeof reason, NULL), RDX_OK);
    assert_int_equal(code, want);
    if (needle != NULL && strstr(reason, needle) == NULL) {
        fail_msg("refusal '%s' does not say '%s'", reason, needle);
    }
}

/* As send_chunk, with the item's check values computed once (rdx_tp_chunk_checks). */
static void send_chunk_checked(struct peer *p, const struct rdx_tp_manifest *m, const uint8_t *data,
                               size_t item, uint64_t off, size_t len, const uint8_t *checks)
{
    struct rdx_tp_chunk ch;
    uint8_t hdr[RDX_TRANSPORT_CHUNK_HDR_MAX];
    size_t hl = 0;
    memset(&ch, 0, sizeof ch);
    snprintf(ch.case_id, sizeof ch.case_id, "%s", m->case_id);
    ch.item = (uint16_t)item;
    ch.offset = off;
    ch.len = len;
    memcpy(ch.sha256, checks + 32 * (off / m->chunk_size), 32);
    assert_int_equal(rdx_tp_chunk_header(&ch, hdr, &hl, NULL), RDX_OK);
    uint8_t *payload = malloc(hl + len);
    memcpy(payload, hdr, hl);
    memcpy(payload + hl, data + off, len);
    (void)peer_send(p, RDX_FRAME_CHUNK, payload, hl + len);
    free(payload);
}

/*
 * corrupt: 0 as it is, 1 a wrong check value, 2 a changed data byte under the
 * right one (in the chunk's ninth stride), 3 a lying link value (data and
 * check value right), 4 one link value too few, 5 no link values at all (the
 * receiver then hashes the chunk as one stream: still valid).
 */
static void send_chunk(struct peer *p, const struct rdx_tp_manifest *m, const uint8_t *data,
                       size_t item, uint64_t off, size_t len, int corrupt)
{
    struct rdx_tp_chunk ch;
    uint8_t hdr[RDX_TRANSPORT_CHUNK_HDR_MAX];
    size_t hl = 0;
    memset(&ch, 0, sizeof ch);
    snprintf(ch.case_id, sizeof ch.case_id, "%s", m->case_id);
    ch.item = (uint16_t)item;
    ch.offset = off;
    ch.len = len; /* decides the header's padding */
    /*
     * The item's SHA-256 state at every link stride's end (its digest at the
     * last): the chunk's last one is its check value, the others its links.
     */
    uint8_t *v = NULL;
    size_t nv = 0;
    uint32_t stride = rdx_tp_link_stride(m->chunk_size);
    assert_int_equal(rdx_tp_chunk_checks(data, m->items[item].size, stride, &v, &nv, NULL), RDX_OK);
    size_t first = (size_t)(off / stride), last = (size_t)((off + len - 1) / stride);
    assert_true(last < nv);
    memcpy(ch.sha256, v + 32 * last, 32);
    ch.nlinks = corrupt == 5 ? 0 : (unsigned)(last - first) - (corrupt == 4 && last > first);
    memcpy(ch.links, v + 32 * first, 32 * (size_t)ch.nlinks);
    free(v);
    if (corrupt == 1) {
        ch.sha256[0] ^= 1;
    }
    if (corrupt == 3) {
        assert_true(ch.nlinks > 3);
        ch.links[3 * 32 + 7] ^= 0x10;
    }
    assert_int_equal(rdx_tp_chunk_header(&ch, hdr, &hl, NULL), RDX_OK);
    uint8_t *payload = malloc(hl + len);
    memcpy(payload, hdr, hl);
    memcpy(payload + hl, data + off, len);
    if (corrupt == 2) {
        payload[hl + len / 2] ^= 0x40;
    }
    (void)peer_send(p, RDX_FRAME_CHUNK, payload, hl + len);
    free(payload);
}

static void offer(struct peer *p, struct world *w, const struct rdx_tp_manifest *m,
                  rdx_transport_frame *f)
{
    char c[4300], k[4300];
    rdx_buf b;
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    assert_int_equal(peer_open(p, w->hub_port, c, k), 1);
    rdx_buf_init(&b, RDX_TRANSPORT_OFFER_MAX);
    assert_int_equal(rdx_tp_manifest_encode(m, &b, NULL), RDX_OK);
    assert_int_equal(peer_send(p, RDX_FRAME_OFFER, b.data, b.len), 0);
    rdx_buf_free(&b);
    assert_int_equal(peer_read(p, f), 0);
}

/* OFFER the case; the answer must be its PROGRESS, with `have` bytes of item 0 already held. */
static void offer_expect_held(struct peer *p, struct world *w, const struct rdx_tp_manifest *m,
                              uint64_t have)
{
    rdx_transport_frame f;
    char cid[80];
    uint64_t done[2];
    size_t n = 0;
    offer(p, w, m, &f);
    assert_int_equal(f.type, RDX_FRAME_PROGRESS);
    assert_int_equal(rdx_tp_progress_decode(f.payload, f.len, cid, done, 2, &n, NULL), RDX_OK);
    assert_int_equal(done[0], have);
}

/* COMMIT the case; the answer must be its ACK (not a duplicate). */
static void commit_expect_ack(struct peer *p, const struct rdx_tp_manifest *m)
{
    rdx_buf b;
    rdx_transport_frame f;
    char cid[80];
    int dup = 1;
    rdx_buf_init(&b, 256);
    assert_int_equal(rdx_tp_caseref_encode(m->case_id, 0, &b, NULL), RDX_OK);
    assert_int_equal(peer_send(p, RDX_FRAME_COMMIT, b.data, b.len), 0);
    rdx_buf_free(&b);
    assert_int_equal(peer_read(p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_ACK);
    assert_int_equal(rdx_tp_caseref_decode(f.payload, f.len, cid, &dup, NULL), RDX_OK);
    assert_string_equal(cid, m->case_id);
    assert_int_equal(dup, 0);
}

/* Item idx of case m as the hub stored it from clinic: byte-identical to data. */
static void expect_hub_item(const struct world *w, const struct rdx_tp_manifest *m, size_t idx,
                            const uint8_t *data)
{
    char path[4400];
    rdx_buf got;
    snprintf(path, sizeof path, "%s/hub/inbox/clinic/%s/%zu", w->dir, m->case_id, idx);
    rdx_buf_init(&got, 8u << 20);
    assert_int_equal(rdx_file_read(path, &got, NULL), RDX_OK);
    assert_int_equal(got.len, m->items[idx].size);
    assert_memory_equal(got.data, data, m->items[idx].size);
    rdx_buf_free(&got);
}

static void test_node_resumes_and_rejects_corrupt_chunk(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[2];
    const size_t sizes[2] = {2 * 1048576 + 500, 700000};
    struct peer p;
    rdx_transport_frame f;
    char cid[80];
    uint64_t done[4];
    size_t n = 0;
    make_manifest(&m, data, sizes, 2, "resume-test-0001");

    /* First connection: two chunks of item 0, then the line drops. */
    offer(&p, w, &m, &f);
    assert_int_equal(f.type, RDX_FRAME_PROGRESS);
    assert_int_equal(rdx_tp_progress_decode(f.payload, f.len, cid, done, 4, &n, NULL), RDX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(done[0], 0);
    send_chunk(&p, &m, data[0], 0, 0, 1048576, 0);
    send_chunk(&p, &m, data[0], 0, 1048576, 1048576, 0);
    /* A PING answered proves both chunks were processed (frames are handled in order). */
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_PONG);
    peer_close(&p);

    /* Second connection: the hub resumes from what is durable, not from zero. */
    offer(&p, w, &m, &f);
    assert_int_equal(f.type, RDX_FRAME_PROGRESS);
    assert_int_equal(rdx_tp_progress_decode(f.payload, f.len, cid, done, 4, &n, NULL), RDX_OK);
    assert_int_equal(done[0], 2 * 1048576);
    assert_int_equal(done[1], 0);
    wait_audit(w->hub_db, "case-resumed", "resuming at 2097152", 1);
    /* A corrupted chunk is detected and refused; nothing of it is kept. */
    send_chunk(&p, &m, data[0], 0, 2 * 1048576, 500, 1);
    assert_int_equal(peer_read(&p, &f), 0);
    expect_refuse_frame(&f, RDX_TP_REFUSE_CHUNK, "SHA-256");
    peer_close(&p);
    wait_audit(w->hub_db, "chunk-rejected", NULL, 1);

    /* Third connection: resend it properly, finish, commit, ACK. */
    offer(&p, w, &m, &f);
    assert_int_equal(rdx_tp_progress_decode(f.payload, f.len, cid, done, 4, &n, NULL), RDX_OK);
    assert_int_equal(done[0], 2 * 1048576);
    send_chunk(&p, &m, data[0], 0, 2 * 1048576, 500, 0);
    send_chunk(&p, &m, data[1], 1, 0, 700000, 0);
    commit_expect_ack(&p, &m);
    peer_close(&p);

    /* What the hub stored is byte-identical. */
    for (size_t i = 0; i < 2; i++) {
        expect_hub_item(w, &m, i, data[i]);
        free(data[i]);
    }

    /* The same case ID with a different manifest is a conflict, refused for good. */
    m.items[1].size = 1;
    offer(&p, w, &m, &f);
    expect_refuse_frame(&f, RDX_TP_REFUSE_CONFLICT, NULL);
    peer_close(&p);
    rdx_tp_manifest_clear(&m);
}

/*
 * The link values a chunk carries are checked like its data: one that lies
 * fails the chunk although its data and check value are right, a wrong count
 * is refused, and a chunk without any is checked as one stream.
 */
static void test_node_checks_link_values(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[1];
    const size_t sizes[1] = {2 * 1048576 + 12 * 65536 + 77};
    struct peer p;
    rdx_transport_frame f;
    make_manifest(&m, data, sizes, 1, "link-values-0001");
    offer_expect_held(&p, w, &m, 0);
    send_chunk(&p, &m, data[0], 0, 0, 1048576, 3);
    assert_int_equal(peer_read(&p, &f), 0);
    expect_refuse_frame(&f, RDX_TP_REFUSE_CHUNK, "offset 0 failed its SHA-256");
    peer_close(&p);
    offer(&p, w, &m, &f);
    send_chunk(&p, &m, data[0], 0, 0, 1048576, 4);
    assert_int_equal(peer_read(&p, &f), 0);
    expect_refuse_frame(&f, RDX_TP_REFUSE_CHUNK, "carries 14 link values, expected 0 or 15");
    peer_close(&p);
    wait_audit(w->hub_db, "chunk-rejected", "offset 0 failed", 1);
    /* Right: one chunk without links, one with, a last one of 12 strides and a bit with. */
    offer_expect_held(&p, w, &m, 0);
    send_chunk(&p, &m, data[0], 0, 0, 1048576, 5);
    send_chunk(&p, &m, data[0], 0, 1048576, 1048576, 0);
    send_chunk(&p, &m, data[0], 0, 2 * 1048576, sizes[0] - 2 * 1048576, 0);
    commit_expect_ack(&p, &m);
    peer_close(&p);
    expect_hub_item(w, &m, 0, data[0]);
    free(data[0]);
    rdx_tp_manifest_clear(&m);
}

/*
 * Chunks of an item are checked two at a time, the second from the check
 * value the first claims. A first chunk whose data is changed under its
 * right check value fails, and the good chunk behind it, although its own
 * check holds, must not count either: nothing of the item is kept.
 */
static void test_node_chunk_after_a_bad_one_never_counts(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[1];
    const size_t sizes[1] = {3 * 1048576 + 100};
    struct peer p;
    rdx_transport_frame f;
    make_manifest(&m, data, sizes, 1, "bad-then-good-0001");
    for (int round = 0; round < 3; round++) {
        offer_expect_held(&p, w, &m, 0); /* nothing of the earlier rounds was kept */
        send_chunk(&p, &m, data[0], 0, 0, 1048576, 2);
        send_chunk(&p, &m, data[0], 0, 1048576, 1048576, 0);
        assert_int_equal(peer_read(&p, &f), 0);
        expect_refuse_frame(&f, RDX_TP_REFUSE_CHUNK, "offset 0 failed its SHA-256");
        peer_close(&p);
    }
    wait_audit(w->hub_db, "chunk-rejected", "offset 0 failed", 3);
    /* Sent properly, it completes and is byte-identical. */
    offer_expect_held(&p, w, &m, 0);
    for (uint64_t off = 0; off < sizes[0]; off += 1048576) {
        size_t len = sizes[0] - off < 1048576 ? (size_t)(sizes[0] - off) : 1048576;
        send_chunk(&p, &m, data[0], 0, off, len, 0);
    }
    commit_expect_ack(&p, &m);
    peer_close(&p);
    expect_hub_item(w, &m, 0, data[0]);
    free(data[0]);
    rdx_tp_manifest_clear(&m);
}

/* Chunk boundaries are fixed: a short chunk that is not an item's last is refused. */
static void test_node_refuses_short_middle_chunk(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[1];
    const size_t sizes[1] = {2 * 1048576};
    struct peer p;
    rdx_transport_frame f;
    make_manifest(&m, data, sizes, 1, "short-chunk-0001");
    offer(&p, w, &m, &f);
    assert_int_equal(f.type, RDX_FRAME_PROGRESS);
    send_chunk(&p, &m, data[0], 0, 0, 4096, 0);
    assert_int_equal(peer_read(&p, &f), 0);
    expect_refuse_frame(&f, RDX_TP_REFUSE_CHUNK, "expected offset 0 and 1048576 bytes");
    peer_close(&p);
    free(data[0]);
    rdx_tp_manifest_clear(&m);
}

static void test_node_new_connection_takes_over_a_case(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[1];
    const size_t sizes[1] = {1048576 + 10};
    struct peer a, b;
    rdx_transport_frame f;
    make_manifest(&m, data, sizes, 1, "takeover-0001");
    offer(&a, w, &m, &f);
    assert_int_equal(f.type, RDX_FRAME_PROGRESS);
    send_chunk(&a, &m, data[0], 0, 0, 1048576, 0);
    assert_int_equal(peer_send(&a, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&a, &f), 0);
    /* The sender reconnects while the old link still stands: one writer per case. */
    offer_expect_held(&b, w, &m, 1048576);
    assert_int_equal(peer_read(&a, &f), -1); /* the old connection was closed */
    send_chunk(&b, &m, data[0], 0, 1048576, 10, 0);
    rdx_buf cb;
    rdx_buf_init(&cb, 256);
    assert_int_equal(rdx_tp_caseref_encode(m.case_id, 0, &cb, NULL), RDX_OK);
    assert_int_equal(peer_send(&b, RDX_FRAME_COMMIT, cb.data, cb.len), 0);
    rdx_buf_free(&cb);
    assert_int_equal(peer_read(&b, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_ACK);
    peer_close(&a);
    peer_close(&b);
    assert_true(rdx_test_file_contains(w->hub_log, "takes over"));
    free(data[0]);
    rdx_tp_manifest_clear(&m);
}

static void test_node_refuses_forged_sender_and_bad_frames(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[1];
    const size_t sizes[1] = {10};
    struct peer p;
    rdx_transport_frame f;
    make_manifest(&m, data, sizes, 1, "forged-0001");
    /* The certificate says clinic; the manifest may not say otherwise. */
    snprintf(m.sender, sizeof m.sender, "ex-member");
    offer(&p, w, &m, &f);
    expect_refuse_frame(&f, RDX_TP_REFUSE_POLICY, "certificate is institution 'clinic'");
    peer_close(&p);

    /* Garbage after the handshake: the framing error is logged and audited, the link closed. */
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    assert_int_equal(peer_open(&p, w->hub_port, c, k), 1);
    size_t wr = 0;
    assert_int_equal(SSL_write_ex(p.ssl, "GET / HTTP/1.1\r\n\r\n", 18, &wr), 1);
    assert_int_equal(peer_read(&p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_REFUSE);
    assert_int_equal(peer_read(&p, &f), -1);
    peer_close(&p);
    wait_audit(w->hub_db, "protocol-error", "bad magic", 1);

    /* An oversize length is refused from the header alone. */
    assert_int_equal(peer_open(&p, w->hub_port, c, k), 1);
    const uint8_t huge[] = {'R',  'X', RDX_TRANSPORT_FRAME_VERSION, RDX_FRAME_CHUNK, 0x7f, 0xff,
                            0xff, 0xff};
    assert_int_equal(SSL_write_ex(p.ssl, huge, sizeof huge, &wr), 1);
    assert_int_equal(peer_read(&p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_REFUSE);
    peer_close(&p);
    wait_audit(w->hub_db, "protocol-error", "exceeds", 1);
    free(data[0]);
    rdx_tp_manifest_clear(&m);
}

static void test_node_timeouts_close_silent_peers(void **state)
{
    struct world *w = *state;
    /* A TCP connection that never starts TLS is cut at the handshake timeout. */
    int before = audit_count(w->hub_db, "connection-refused", "not finished within");
    int fd = tcp_to(w->hub_port);
    char buf[16];
    assert_true(read(fd, buf, sizeof buf) <= 0); /* closed by the hub, not by us */
    close(fd);
    wait_audit(w->hub_db, "connection-refused", "not finished within", before + 1);

    /* An authenticated peer that goes quiet mid-frame is cut at the read timeout. */
    struct peer p;
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    assert_int_equal(peer_open(&p, w->hub_port, c, k), 1);
    const uint8_t half[] = {'R', 'X', RDX_TRANSPORT_FRAME_VERSION, RDX_FRAME_PING};
    size_t wr = 0;
    assert_int_equal(SSL_write_ex(p.ssl, half, sizeof half, &wr), 1);
    rdx_transport_frame f;
    assert_int_equal(peer_read(&p, &f), -1);
    peer_close(&p);
    assert_true(rdx_test_file_contains(w->hub_log, "read timeout"));
}

static void test_node_reloads_crl_after_revocation(void **state)
{
    struct world *w = *state;
    char c[4300], k[4300];
    struct peer p;
    rdx_transport_frame f;
    rdx_error err;
    rdx_test_issue(w->pki, "latecomer", "Nanjing", 0, 0);
    snprintf(c, sizeof c, "%s/certs/latecomer.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/latecomer.key", w->pki);
    assert_int_equal(peer_open(&p, w->hub_port, c, k), 1);
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0); /* a member: served */
    peer_close(&p);
    /* Revoked, and the CRL republished: the running hub picks it up on the next connection. */
    rdx_transport_ca *ca = NULL;
    assert_int_equal(rdx_transport_ca_open(w->pki, &ca, &err), RDX_OK);
    assert_int_equal(rdx_transport_ca_revoke(ca, "latecomer", NULL,
                                             RDX_TRANSPORT_REVOKE_AFFILIATION_CHANGED, 0, NULL,
                                             &err),
                     RDX_OK);
    rdx_transport_ca_free(ca);
    expect_refused(w, c, k, "certificate revoked, claims institution latecomer");
    assert_true(rdx_test_file_contains(w->hub_log, "loaded CRL"));
    assert_false(rdx_test_file_contains(w->hub_log, "expires in"));
    /* A CRL about to expire is announced in the log, well before every peer is refused. */
    struct rdx_run r;
    const char *crl[] = {"pki", "crl", "--dir", w->pki, "--days", "1", NULL};
    run_ok(&r, crl);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    assert_int_equal(peer_open(&p, w->hub_port, c, k), 1);
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0); /* still valid: served */
    peer_close(&p);
    assert_true(rdx_test_file_contains(w->hub_log, "expires in 23 h") ||
                rdx_test_file_contains(w->hub_log, "expires in 24 h"));
}

/* Poll db until sql (with ?1 = arg) counts 1. */
static void wait_one(const char *db, const char *sql, const char *arg, const char *what)
{
    for (int i = 0; i < 600; i++) {
        if (rdx_test_sql(db, sql, arg) == 1) {
            return;
        }
        rdx_test_sleep_ms(25);
    }
    fail_msg("%s: never", what);
}

static void verify_chain(const char *db_path)
{
    sqlite3 *db = NULL;
    long long n = 0, bad = 0;
    rdx_error err;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    if (rdx_tp_audit_verify(db, &n, &bad, &err) != RDX_OK) {
        fail_msg("%s: %s", db_path, err.msg);
    }
    assert_true(n > 0);
    sqlite3_close(db);
}

/*
 * A node whose CRL is past its nextUpdate fails closed (docs/transport.md):
 * it says so at start-up (an error in the log, a crl-expired audit record),
 * refuses every new connection in (a member as well as a revoked
 * certificate) and cannot deliver out (the case stays queued with the
 * reason), until a new CRL is published; then members are served again,
 * the revoked certificate is still refused, the queued case is delivered,
 * and a crl-renewed record says when it ended. Then a CRL that expires while
 * the node runs. Its own PKI and two nodes: the hub's CRL expires, the
 * clinic's stays current.
 */
struct solo {
    char *dir;
    pid_t hub, clinic;
};

static int solo_setup(void **state)
{
    struct solo *s = calloc(1, sizeof *s);
    if (s == NULL || (s->dir = rdx_test_tmpdir()) == NULL) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

/* Whatever a failed test left running is stopped, so that it holds no pipe or port. */
static int solo_teardown(void **state)
{
    struct solo *s = *state;
    pid_t pids[] = {s->hub, s->clinic};
    for (int i = 0; i < 2; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            (void)waitpid(pids[i], NULL, 0);
        }
    }
    if (getenv("RDX_KEEP") == NULL) {
        rdx_test_rmrf(s->dir);
    } else {
        fprintf(stderr, "kept %s\n", s->dir);
    }
    free(s->dir);
    free(s);
    return 0;
}

static void test_node_expired_crl_fails_closed_until_renewed(void **state)
{
    struct solo *solo = *state;
    char *dir = solo->dir;
    char pki[4200], crl[4300], clinic_crl[4300], text[4096], data[4300], c[4300], k[4300];
    char hub_ini[4200], clinic_ini[4200], hub_db[4200], clinic_db[4200], report[4300], id[40];
    rdx_error err;
    snprintf(pki, sizeof pki, "%s/pki", dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", pki);
    snprintf(clinic_crl, sizeof clinic_crl, "%s/clinic-crl.pem", pki);
    snprintf(hub_ini, sizeof hub_ini, "%s/hub.ini", dir);
    snprintf(clinic_ini, sizeof clinic_ini, "%s/clinic.ini", dir);
    snprintf(hub_db, sizeof hub_db, "%s/hub/node.db", dir);
    snprintf(clinic_db, sizeof clinic_db, "%s/clinic/node.db", dir);
    struct world hub = {.dir = dir};
    snprintf(hub.hub_db, sizeof hub.hub_db, "%s", hub_db);
    snprintf(hub.hub_log, sizeof hub.hub_log, "%s/hub.log", dir);
    snprintf(hub.clinic_log, sizeof hub.clinic_log, "%s/clinic.log", dir);

    rdx_transport_ca_cfg cacfg = {.dir = pki, .network = "Nanjing Test Network"};
    assert_int_equal(rdx_transport_ca_create(&cacfg, &err), RDX_OK);
    rdx_test_issue(pki, "hub", "Nanjing", 0, 0);
    rdx_test_issue(pki, "clinic", "Nanjing", 0, 0);
    rdx_test_issue(pki, "ex-member", "Nanjing", 0, 0);
    rdx_transport_ca *ca = NULL;
    assert_int_equal(rdx_transport_ca_open(pki, &ca, &err), RDX_OK);
    assert_int_equal(rdx_transport_ca_revoke(ca, "ex-member", NULL,
                                             RDX_TRANSPORT_REVOKE_KEY_COMPROMISE, 0, NULL, &err),
                     RDX_OK);
    /* The clinic keeps this CRL (current for a week); the hub gets one valid for a second. */
    rdx_buf b;
    file_take(crl, &b);
    assert_int_equal(rdx_file_write_atomic(clinic_crl, b.data, b.len, &err), RDX_OK);
    rdx_buf_free(&b);
    size_t nrev = 0;
    assert_int_equal(rdx_transport_ca_crl_publish_v2(ca, 1, NULL, &nrev, &err), RDX_OK);
    assert_int_equal(nrev, 1);
    rdx_transport_ca_free(ca);
    FILE *fp = fopen(crl, "r");
    assert_non_null(fp);
    X509_CRL *x = PEM_read_X509_CRL(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    int64_t until = rdx_tp_asn1_time_unix(X509_CRL_get0_nextUpdate(x));
    X509_CRL_free(x);
    assert_true(until > 0);
    for (int i = 0; i < 100 && rdx_clock_wall_ms() / 1000 <= until; i++) {
        rdx_test_sleep_ms(50);
    }
    assert_true(rdx_clock_wall_ms() / 1000 > until); /* expired before the hub starts */

    snprintf(text, sizeof text,
             "[node]\nid = clinic\nlisten = 127.0.0.1:0\ncert = pki/certs/clinic.crt\n"
             "key = pki/private/clinic.key\nca = pki/ca.crt\ncrl = pki/clinic-crl.pem\n"
             "data = clinic\n\n[peers]\nhub = 127.0.0.1:9\n\n[allow.send]\nhub = report\n");
    rdx_test_write_text(clinic_ini, text);
    solo->clinic = rdx_test_spawn_node(clinic_ini, hub.clinic_log);
    snprintf(data, sizeof data, "%s/clinic", dir);
    unsigned clinic_port = rdx_test_wait_port(data, 10000);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = hub\n"
             "handshake_timeout_ms = 2000\nread_timeout_ms = 2000\nretry_base_ms = 100\n"
             "retry_max_ms = 400\nmax_attempts = 1000\n\n[peers]\nclinic = 127.0.0.1:%u\n\n"
             "[allow.send]\nclinic = ecg\nex-member = *\n",
             clinic_port);
    rdx_test_write_text(hub_ini, text);
    solo->hub = rdx_test_spawn_node(hub_ini, hub.hub_log);
    snprintf(data, sizeof data, "%s/hub", dir);
    hub.hub_port = rdx_test_wait_port(data, 10000);

    /* Told at once: an error in the log and an audit record, shown by `rdx audit show`. */
    wait_audit(hub_db, "crl-expired", "expired at", 1);
    assert_true(
        rdx_test_file_contains(hub.hub_log, "every new connection, in and out, is refused"));
    struct rdx_run r;
    const char *show[] = {"audit", "show", data, NULL};
    run_ok(&r, show);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "crl-expired"));
    rdx_run_free(&r);

    /* Every new connection in is refused: a member, and a revoked certificate. */
    snprintf(c, sizeof c, "%s/certs/clinic.crt", pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", pki);
    expect_refused(&hub, c, k, "CRL has expired, claims institution clinic");
    char rc[4300], rk[4300];
    snprintf(rc, sizeof rc, "%s/certs/ex-member.crt", pki);
    snprintf(rk, sizeof rk, "%s/private/ex-member.key", pki);
    expect_refused(&hub, rc, rk, "CRL has expired, claims institution ex-member");

    /* And out: the hub cannot check the clinic's certificate; the case waits, queued. */
    snprintf(report, sizeof report, "%s/report.txt", dir);
    rdx_test_write_text(report, "Sinus rhythm, 72/min. No acute ST changes.\n");
    const char *send[] = {"case",   "send",   "--config", hub_ini, "--to",
                          "clinic", "--kind", "report",   report,  NULL};
    run_ok(&r, send);
    if (r.exit_code != 0) {
        fail_msg("case send: %s", r.err);
    }
    assert_int_equal(strlen(r.out), 33);
    memcpy(id, r.out, 32);
    id[32] = '\0';
    rdx_run_free(&r);
    wait_one(hub_db,
             "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
             "instr(last_error, 'CRL has expired') > 0",
             id, "outbound refused for the expired CRL");
    /*
     * Held, not failed: this node's own CRL is the cause, so the case counts no
     * attempt (an expired CRL must not dead-letter the outbox) and gets no
     * case-send-failed record, only one log line per batch.
     */
    assert_int_equal(rdx_test_sql(hub_db, "SELECT attempts FROM outbox WHERE case_id=?1", id), 0);
    assert_int_equal(audit_count(hub_db, "case-send-failed", NULL), 0);
    for (int tries = 0; tries < 400 && !rdx_test_file_contains(hub.hub_log, "held (not counted");
         tries++) {
        rdx_test_sleep_ms(25);
    }
    assert_true(rdx_test_file_contains(hub.hub_log, "held (not counted as attempts) until this "
                                                    "node's own CRL, certificate and key"));
    assert_true(rdx_test_file_contains(hub.hub_log, "CRL has expired"));
    assert_int_equal(rdx_test_sql(clinic_db, "SELECT count(*) FROM inbox WHERE case_id=?1", id), 0);

    /* A new CRL ends it, without a restart. */
    const char *publish[] = {"pki", "crl", "--dir", pki, NULL};
    run_ok(&r, publish);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    struct peer p;
    rdx_transport_frame f;
    assert_int_equal(peer_open(&p, hub.hub_port, c, k), 1);
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0); /* a member: served again */
    peer_close(&p);
    wait_audit(hub_db, "crl-renewed", "current again", 1);
    expect_refused(&hub, rc, rk, "certificate revoked, claims institution ex-member");
    wait_one(hub_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id,
             "the queued case delivered");
    assert_int_equal(
        rdx_test_sql(clinic_db, "SELECT count(*) FROM inbox WHERE case_id=?1 AND state='complete'",
                     id),
        1);
    assert_int_equal(audit_count(hub_db, "crl-expired", NULL), 1);

    /*
     * A CRL that runs out while the node runs: published for five seconds and
     * loaded by the next connection (served: still current), which stays
     * open. The node notices the expiry by itself, a second after nextUpdate
     * rather than at the next hourly check, closes that connection (verified
     * before the expiry, it is no better known now than a new one) and
     * refuses again.
     */
    assert_int_equal(rdx_transport_ca_open(pki, &ca, &err), RDX_OK);
    assert_int_equal(rdx_transport_ca_crl_publish_v2(ca, 5, NULL, NULL, &err), RDX_OK);
    rdx_transport_ca_free(ca);
    assert_int_equal(peer_open(&p, hub.hub_port, c, k), 1);
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0);
    for (int i = 0; i < 800 && audit_count(hub_db, "crl-expired", NULL) < 2; i++) {
        rdx_test_sleep_ms(25);
    }
    assert_int_equal(audit_count(hub_db, "crl-expired", NULL), 2);
    wait_audit(hub_db, "connection-closed", "this node's CRL expired at", 1);
    assert_int_equal(peer_read(&p, &f), -1); /* closed by the hub */
    peer_close(&p);
    assert_true(rdx_test_file_contains(hub.hub_log, "closing clinic (127.0.0.1:"));
    expect_refused(&hub, c, k, "CRL has expired, claims institution clinic");

    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    rdx_test_stop_node(solo->clinic);
    solo->clinic = 0;
    verify_chain(hub_db);
    verify_chain(clinic_db);
}

/* ---- revocation of live connections ------------------------------------------- */

/* Replace the CRL file (a new inode) with len bytes at p. */
static void put_crl(const char *path, const void *p, size_t len)
{
    rdx_error err;
    assert_int_equal(rdx_file_write_atomic(path, p, len, &err), RDX_OK);
}

/* Wait until the hub's log holds needle more than before times. */
static void wait_log_count(const char *log, const char *needle, size_t before)
{
    for (int i = 0; i < 800; i++) {
        char *t = rdx_test_slurp(log);
        size_t n = t != NULL ? rdx_test_count(t, needle) : 0;
        free(t);
        if (n > before) {
            return;
        }
        rdx_test_sleep_ms(25);
    }
    fail_msg("%s: no new '%s'", log, needle);
}

static size_t log_count(const char *log, const char *needle)
{
    char *t = rdx_test_slurp(log);
    size_t n = t != NULL ? rdx_test_count(t, needle) : 0;
    free(t);
    return n;
}

/* Revoke every certificate of inst; the CA publishes the new CRL at once (pki/crl.pem). */
static void revoke_inst(const char *pki, const char *inst)
{
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(pki, &ca, &err), RDX_OK);
    if (rdx_transport_ca_revoke(ca, inst, NULL, RDX_TRANSPORT_REVOKE_AFFILIATION_CHANGED, 0, NULL,
                                &err) != RDX_OK) {
        fail_msg("revoke %s: %s", inst, err.msg);
    }
    rdx_transport_ca_free(ca);
}

/* The hex serial of the certificate at path. */
static void cert_serial(const char *path, char *out, size_t outsz)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    assert_int_equal(rdx_tp_cert_serial(x, out, outsz), RDX_OK);
    X509_free(x);
}

/* Connect as institution inst of the world's PKI and prove the hub serves it (PING, PONG). */
static void peer_served(struct peer *p, struct world *w, const char *inst)
{
    char c[4300], k[4300];
    rdx_transport_frame f;
    snprintf(c, sizeof c, "%s/certs/%s.crt", w->pki, inst);
    snprintf(k, sizeof k, "%s/private/%s.key", w->pki, inst);
    assert_int_equal(peer_open(p, w->hub_port, c, k), 1);
    assert_int_equal(peer_send(p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_PONG);
}

/* "tcp:127.0.0.1:PORT" of the local end of p: how the hub names the connection. */
static void peer_object(const struct peer *p, char *out, size_t outsz)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(p->fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(out, outsz, "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
}

struct find_audit {
    const char *event, *object;
    rdx_transport_audit_record got;
    int n;
};

static int find_audit_cb(void *u, const rdx_transport_audit_record *r)
{
    struct find_audit *fa = u;
    if (strcmp(r->event, fa->event) == 0 && strcmp(r->object, fa->object) == 0) {
        fa->got = *r;
        fa->n++;
    }
    return 0;
}

/* The one audit record of event about object in the node at data_dir, through the audit API. */
static rdx_transport_audit_record audit_one(const char *data_dir, const char *event,
                                            const char *object)
{
    struct find_audit fa = {.event = event, .object = object};
    rdx_error err;
    assert_int_equal(rdx_transport_audit_list_dir(data_dir, find_audit_cb, &fa, &err), RDX_OK);
    if (fa.n != 1) {
        fail_msg("%s: %d '%s' records for %s, not 1", data_dir, fa.n, event, object);
    }
    return fa.got;
}

static void audit_verify_cli(const char *data_dir)
{
    struct rdx_run r;
    const char *argv[] = {"audit", "verify", data_dir, NULL};
    run_ok(&r, argv);
    if (r.exit_code != 0) {
        fail_msg("rdx audit verify %s: %s", data_dir, r.err);
    }
    rdx_run_free(&r);
}

/*
 * An institution revoked while its connection is open and idle: the hub
 * notices the new CRL by itself (no new connection to trigger it) and closes
 * that connection, with a connection-revoked record and a warning naming the
 * peer, its address and the serial. A member connected beside it is still
 * served on the same connection, and the revoked one cannot come back.
 */
static void test_node_revocation_closes_live_connection(void **state)
{
    struct world *w = *state;
    struct peer gone, stays;
    rdx_transport_frame f;
    char crt[4300], serial[64], object[64], data[4300], line[400];
    snprintf(data, sizeof data, "%s/hub", w->dir);
    rdx_test_issue(w->pki, "leaver", "Zhenjiang", 0, 0);
    snprintf(crt, sizeof crt, "%s/certs/leaver.crt", w->pki);
    cert_serial(crt, serial, sizeof serial);
    peer_served(&gone, w, "leaver");
    peer_served(&stays, w, "clinic");
    peer_object(&gone, object, sizeof object);
    size_t loaded = log_count(w->hub_log, "loaded CRL");

    revoke_inst(w->pki, "leaver");
    wait_audit(w->hub_db, "connection-revoked", serial, 1);
    assert_int_equal(peer_read(&gone, &f), -1); /* closed by the hub */
    rdx_transport_audit_record r = audit_one(data, "connection-revoked", object);
    assert_string_equal(r.institution, "leaver");
    assert_string_equal(r.node, "hub");
    assert_int_equal(r.outcome, RDX_TP_OUTCOME_SERIOUS);
    assert_non_null(strstr(r.detail, serial));
    snprintf(line, sizeof line, "closing leaver (%s): certificate serial %s revoked", object + 4,
             serial);
    assert_true(rdx_test_file_contains(w->hub_log, line));
    assert_true(log_count(w->hub_log, "loaded CRL") > loaded);

    /* The member beside it went through the reload untouched. */
    assert_int_equal(peer_send(&stays, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&stays, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_PONG);
    peer_close(&stays);
    peer_close(&gone);
    char k[4300];
    snprintf(k, sizeof k, "%s/private/leaver.key", w->pki);
    expect_refused(w, crt, k, "certificate revoked, claims institution leaver");
    verify_chain(w->hub_db);
    audit_verify_cli(data);
}

/*
 * Revoked in the middle of a large case: the connection is closed while
 * chunks are still coming, the case is not acknowledged (nor completed), and
 * what was durable stays recorded as a resume point, as on any broken link.
 */
static void test_node_revocation_mid_transfer_no_ack(void **state)
{
    struct world *w = *state;
    struct rdx_tp_manifest m;
    uint8_t *data[1];
    const size_t sizes[1] = {40u * 1048576 + 1};
    struct peer p;
    rdx_transport_frame f;
    char crt[4300], serial[64], detail[200];
    rdx_test_issue(w->pki, "mover", "Yangzhou", 0, 0);
    snprintf(crt, sizeof crt, "%s/certs/mover.crt", w->pki);
    cert_serial(crt, serial, sizeof serial);
    make_manifest(&m, data, sizes, 1, "revoked-mid-0001");
    snprintf(m.sender, sizeof m.sender, "mover");
    uint8_t *checks = NULL;
    size_t nchecks = 0;
    assert_int_equal(rdx_tp_chunk_checks(data[0], sizes[0], m.chunk_size, &checks, &nchecks, NULL),
                     RDX_OK);
    assert_int_equal(nchecks, 41);

    peer_served(&p, w, "mover");
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_OFFER_MAX);
    assert_int_equal(rdx_tp_manifest_encode(&m, &b, NULL), RDX_OK);
    assert_int_equal(peer_send(&p, RDX_FRAME_OFFER, b.data, b.len), 0);
    rdx_buf_free(&b);
    assert_int_equal(peer_read(&p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_PROGRESS);
    size_t sent = 0;
    for (; sent < 3; sent++) {
        send_chunk_checked(&p, &m, data[0], 0, sent * m.chunk_size, m.chunk_size, checks);
    }
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_PONG);

    revoke_inst(w->pki, "mover");
    /*
     * Go on sending, slowly (never the last chunks, so the case cannot end),
     * until the hub cuts the connection. Every answer until then is a PONG:
     * no ACK, no refusal.
     */
    int closed = 0;
    for (int i = 0; i < 600 && !closed; i++) {
        if (sent < nchecks - 2) {
            send_chunk_checked(&p, &m, data[0], 0, sent * m.chunk_size, m.chunk_size, checks);
            sent++;
        }
        if (peer_send(&p, RDX_FRAME_PING, NULL, 0) != 0 || peer_read(&p, &f) != 0) {
            closed = 1;
            break;
        }
        assert_int_equal(f.type, RDX_FRAME_PONG);
        rdx_test_sleep_ms(150);
    }
    assert_true(closed);
    peer_close(&p);
    snprintf(detail, sizeof detail, "certificate serial %s revoked", serial);
    wait_audit(w->hub_db, "connection-revoked", detail, 1);
    wait_audit(w->hub_db, "connection-revoked", "case revoked-mid-0001 cut at", 1);
    assert_true(rdx_test_file_contains(w->hub_log, "closing mover ("));
    /* Never completed, never acknowledged; its durable bytes are a resume point. */
    assert_int_equal(rdx_test_sql(w->hub_db,
                                  "SELECT count(*) FROM inbox WHERE case_id=?1 AND "
                                  "state='receiving'",
                                  m.case_id),
                     1);
    assert_int_equal(rdx_test_sql(w->hub_db,
                                  "SELECT count(*) FROM audit WHERE event='case-received' AND "
                                  "object=?1",
                                  m.case_id),
                     0);
    rdx_test_wait_sql(w->hub_db,
                      "SELECT durable >= 3145728 AND durable % 1048576 = 0 FROM inbox_items WHERE "
                      "case_id=?1 AND idx=0",
                      m.case_id, 1, 10000);
    assert_true(rdx_test_sql(w->hub_db, "SELECT durable FROM inbox_items WHERE case_id=?1",
                             m.case_id) <= (long long)(sent * m.chunk_size));
    char k[4300];
    snprintf(k, sizeof k, "%s/private/mover.key", w->pki);
    expect_refused(w, crt, k, "certificate revoked, claims institution mover");
    free(checks);
    free(data[0]);
    rdx_tp_manifest_clear(&m);
    verify_chain(w->hub_db);
}

/*
 * A new CRL file that does not load leaves the CRL in force as it was, with
 * an error in the log and a crl-rejected record: garbage, another CA's CRL,
 * and the network CA's CRL altered after it was signed. Throughout, members
 * are served (old and new connections) and the revoked are still refused;
 * the good CRL put back is loaded again.
 */
static void test_node_bad_new_crl_keeps_the_old(void **state)
{
    struct world *world = *state;
    char crl[4300], rogue[4300], rc[4300], rk[4300], ini[4300], data[4300], text[2048];
    struct peer live, p;
    rdx_transport_frame f;
    /* A hub of its own, with a CRL file of its own, so that no other test sees the bad ones. */
    struct world hw = *world, *w = &hw;
    snprintf(crl, sizeof crl, "%s/crl.pem", world->pki);
    snprintf(rogue, sizeof rogue, "%s/crl.pem", world->other);
    rdx_buf good, other;
    file_take(crl, &good);
    file_take(rogue, &other);
    snprintf(crl, sizeof crl, "%s/crl-own.pem", world->pki);
    put_crl(crl, good.data, good.len);
    snprintf(ini, sizeof ini, "%s/crlhub.ini", world->dir);
    snprintf(w->hub_log, sizeof w->hub_log, "%s/crlhub.log", w->dir);
    snprintf(w->hub_db, sizeof w->hub_db, "%s/crlhub/node.db", w->dir);
    snprintf(data, sizeof data, "%s/crlhub", world->dir);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl-own.pem\ndata = crlhub\n");
    rdx_test_write_text(ini, text);
    pid_t pid = rdx_test_spawn_node(ini, w->hub_log);
    w->hub_port = rdx_test_wait_port(data, 10000);
    snprintf(rc, sizeof rc, "%s/certs/ex-member.crt", world->pki);
    snprintf(rk, sizeof rk, "%s/private/ex-member.key", world->pki);
    /* The good CRL with one byte of its signature changed: still a CRL, no longer the CA's. */
    BIO *bio = BIO_new_mem_buf(good.data, (int)good.len);
    X509_CRL *x = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(x);
    unsigned char *der = NULL;
    int dl = i2d_X509_CRL(x, &der);
    X509_CRL_free(x);
    assert_true(dl > 10);
    der[dl - 1] ^= 0x01;
    BIO *mem = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio(mem, "X509 CRL", "", der, dl) > 0);
    OPENSSL_free(der);
    char *tampered = NULL;
    long tl = BIO_get_mem_data(mem, &tampered);
    const char garbage[] = "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n";
    struct {
        const void *p;
        size_t len;
        const char *why;
    } bad[] = {
        {garbage, sizeof garbage - 1, "crl-own.pem: not a CRL in PEM form"},
        {other.data, other.len, "not issued by the network CA"},
        {tampered, (size_t)tl, "its signature does not verify"},
    };
    peer_served(&live, w, "clinic");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t before = log_count(w->hub_log, bad[i].why);
        put_crl(crl, bad[i].p, bad[i].len);
        /*
         * The next connection looks at the file at once (the watch would, within
         * CRL_WATCH_MS): it is served, so the old CRL is still the one in force.
         */
        peer_served(&p, w, "clinic");
        peer_close(&p);
        wait_log_count(w->hub_log, bad[i].why, before);
        wait_audit(w->hub_db, "crl-rejected", bad[i].why, 1);
        assert_true(rdx_test_file_contains(w->hub_log, "keeping the old CRL"));
        expect_refused(w, rc, rk, "certificate revoked, claims institution ex-member");
        assert_int_equal(peer_send(&live, RDX_FRAME_PING, NULL, 0), 0);
        assert_int_equal(peer_read(&live, &f), 0);
        assert_int_equal(f.type, RDX_FRAME_PONG);
    }
    /* Rejected once per version of the file, not at every look. */
    assert_int_equal(audit_count(w->hub_db, "crl-rejected", NULL), 3);
    size_t loaded = log_count(w->hub_log, "loaded CRL");
    put_crl(crl, good.data, good.len);
    peer_served(&p, w, "clinic");
    peer_close(&p);
    wait_log_count(w->hub_log, "loaded CRL", loaded);
    assert_int_equal(peer_send(&live, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&live, &f), 0);
    peer_close(&live);
    BIO_free(mem);
    rdx_buf_free(&good);
    rdx_buf_free(&other);
    rdx_test_stop_node(pid);
    verify_chain(w->hub_db);
}

/*
 * An older CRL must not replace a newer one: CRL A, then an institution
 * revoked in CRL B, then A put back, which does not list it. The hub keeps
 * B (an error naming the file and both CRL numbers, a crl-rejected record)
 * and the revoked institution stays refused, while members are served.
 */
static void test_node_older_crl_keeps_the_newer(void **state)
{
    struct world *world = *state;
    char crl[4300], own[4300], ini[4300], data[4300], text[2048], c[4300], k[4300];
    struct peer p;
    rdx_error err;
    struct world hw = *world, *w = &hw;
    rdx_test_issue(world->pki, "turncoat", "Nanjing", 0, 0);
    snprintf(c, sizeof c, "%s/certs/turncoat.crt", world->pki);
    snprintf(k, sizeof k, "%s/private/turncoat.key", world->pki);
    snprintf(crl, sizeof crl, "%s/crl.pem", world->pki);
    snprintf(own, sizeof own, "%s/crl-rollback.pem", world->pki);
    rdx_buf a, b;
    rdx_buf_init(&a, 1u << 20);
    rdx_buf_init(&b, 1u << 20);
    assert_int_equal(rdx_file_read(crl, &a, &err), RDX_OK);
    put_crl(own, a.data, a.len);
    snprintf(ini, sizeof ini, "%s/rollhub.ini", world->dir);
    snprintf(w->hub_log, sizeof w->hub_log, "%s/rollhub.log", w->dir);
    snprintf(w->hub_db, sizeof w->hub_db, "%s/rollhub/node.db", w->dir);
    snprintf(data, sizeof data, "%s/rollhub", world->dir);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl-rollback.pem\n"
             "data = rollhub\n");
    rdx_test_write_text(ini, text);
    pid_t pid = rdx_test_spawn_node(ini, w->hub_log);
    w->hub_port = rdx_test_wait_port(data, 10000);
    peer_served(&p, w, "turncoat"); /* under A: a member */
    peer_close(&p);
    revoke_inst(world->pki, "turncoat");
    assert_int_equal(rdx_file_read(crl, &b, &err), RDX_OK);
    size_t loaded = log_count(w->hub_log, "loaded CRL");
    put_crl(own, b.data, b.len);
    expect_refused(w, c, k, "certificate revoked, claims institution turncoat");
    wait_log_count(w->hub_log, "loaded CRL", loaded);
    /* A again: refused, B stays in force. */
    put_crl(own, a.data, a.len);
    peer_served(&p, w, "clinic"); /* the accept looks at the file at once */
    peer_close(&p);
    wait_log_count(w->hub_log, "an older CRL is refused", 0);
    assert_true(rdx_test_file_contains(w->hub_log, "keeping the old CRL"));
    assert_true(rdx_test_file_contains(w->hub_log, "crl-rollback.pem: an older CRL is refused: its "
                                                   "CRL number"));
    wait_audit(w->hub_db, "crl-rejected", "an older CRL is refused", 1);
    expect_refused(w, c, k, "certificate revoked, claims institution turncoat");
    assert_int_equal(log_count(w->hub_log, "loaded CRL"), loaded + 1);
    /* The same CRL again (equal number) is no rollback: it loads. */
    put_crl(own, b.data, b.len);
    peer_served(&p, w, "clinic");
    peer_close(&p);
    wait_log_count(w->hub_log, "loaded CRL", loaded + 1);
    expect_refused(w, c, k, "certificate revoked, claims institution turncoat");
    assert_int_equal(audit_count(w->hub_db, "crl-rejected", NULL), 1);
    rdx_buf_free(&a);
    rdx_buf_free(&b);
    rdx_test_stop_node(pid);
    verify_chain(w->hub_db);
}

/* ---- a receiver played by the test, to watch the sender's kept link -------- */

static int listen_loopback(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Accept one connection within 20 s and run the server side of TLS on it: SSL_accept's verdict. */
static int serve_accept(struct peer *p, int lfd, SSL_CTX *ctx)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    struct pollfd pfd = {lfd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 20000), 1);
    p->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(p->fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(SSL_CTX_up_ref(ctx), 1);
    p->ctx = ctx;
    p->ssl = SSL_new(ctx);
    SSL_set_fd(p->ssl, p->fd);
    assert_int_equal(rdx_transport_decoder_new(0, &p->dec, NULL), RDX_OK);
    int rc = SSL_accept(p->ssl);
    ERR_clear_error();
    return rc;
}

/* Read frames until one of type; fails the test on anything else but CHUNK. */
static void read_until(struct peer *p, unsigned type, rdx_transport_frame *f)
{
    for (;;) {
        assert_int_equal(peer_read(p, f), 0);
        if (f->type == type) {
            return;
        }
        assert_int_equal(f->type, RDX_FRAME_CHUNK);
    }
}

/*
 * A clinic node (a real `rdx node serve`, one delivery thread) whose only
 * peer, hub, is played by the test: a listening socket and a TLS server
 * context with the hub's certificate, from a PKI of its own in solo->dir.
 */
struct fake_rx {
    char pki[4200], ini[4300], db[4300], log[4300], serial[64];
    SSL_CTX *ctx;
    int lfd;
    unsigned max_attempts; /* the clinic's [node] max_attempts; 0: 1000 */
};

static void fake_rx_start(struct solo *solo, struct fake_rx *x)
{
    char crt[4300], key[4300], text[2048], data[4300];
    rdx_error err;
    snprintf(x->pki, sizeof x->pki, "%s/pki", solo->dir);
    snprintf(x->ini, sizeof x->ini, "%s/clinic.ini", solo->dir);
    snprintf(x->db, sizeof x->db, "%s/clinic/node.db", solo->dir);
    snprintf(x->log, sizeof x->log, "%s/clinic.log", solo->dir);
    rdx_transport_ca_cfg cacfg = {.dir = x->pki, .network = "Nanjing Test Network"};
    assert_int_equal(rdx_transport_ca_create(&cacfg, &err), RDX_OK);
    rdx_test_issue(x->pki, "hub", "Nanjing", 0, 0);
    rdx_test_issue(x->pki, "clinic", "Nanjing", 0, 0);
    snprintf(crt, sizeof crt, "%s/certs/hub.crt", x->pki);
    snprintf(key, sizeof key, "%s/private/hub.key", x->pki);
    cert_serial(crt, x->serial, sizeof x->serial);
    x->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(x->ctx);
    SSL_CTX_set_min_proto_version(x->ctx, TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_use_certificate_file(x->ctx, crt, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(x->ctx, key, SSL_FILETYPE_PEM), 1);
    unsigned port = 0;
    x->lfd = listen_loopback(&port);
    snprintf(text, sizeof text,
             "[node]\nid = clinic\nlisten = 127.0.0.1:0\ncert = pki/certs/clinic.crt\n"
             "key = pki/private/clinic.key\nca = pki/ca.crt\ncrl = pki/crl.pem\n"
             "data = clinic\nsenders = 1\nchunk_size = 1048576\nretry_base_ms = 100\n"
             "retry_max_ms = 400\nmax_attempts = %u\n\n[peers]\nhub = 127.0.0.1:%u\n",
             x->max_attempts > 0 ? x->max_attempts : 1000, port);
    rdx_test_write_text(x->ini, text);
    solo->clinic = rdx_test_spawn_node(x->ini, x->log);
    snprintf(data, sizeof data, "%s/clinic", solo->dir);
    (void)rdx_test_wait_port(data, 10000);
}

static void fake_rx_stop(struct solo *solo, struct fake_rx *x)
{
    rdx_test_stop_node(solo->clinic);
    solo->clinic = 0;
    close(x->lfd);
    SSL_CTX_free(x->ctx);
    verify_chain(x->db);
}

/* The clinic connects afresh and refuses the revoked receiver in the handshake. */
static void fake_rx_refused(struct fake_rx *x)
{
    struct peer again;
    rdx_transport_frame f;
    assert_true(serve_accept(&again, x->lfd, x->ctx) != 1 || peer_read(&again, &f) == -1);
    peer_close(&again);
}

/*
 * The sender keeps its connection to a peer from one batch to the next. The
 * receiver is revoked while a case is on that connection (the test, playing
 * the receiver, holds the ACK back until the next case is queued and the new
 * CRL is out): the next case must not go over the kept connection. The
 * sender drops it, connects afresh, refuses the receiver's certificate, and
 * keeps the case queued with the reason.
 */
static void test_node_sender_drops_kept_link_to_revoked_peer(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 0}; /* 0: the default */
    char a[4300], b[4300], id1[40], id2[40], cid[80], line[300];
    fake_rx_start(solo, &x);
    snprintf(a, sizeof a, "%s/first.hea", solo->dir);
    snprintf(b, sizeof b, "%s/second.hea", solo->dir);
    rdx_test_make_file(a, 1000, 3);
    rdx_test_make_file(b, 1000, 4);
    const char *first[] = {a, NULL}, *second[] = {b, NULL};
    rdx_test_send_case(x.ini, "hub", "ecg", first, id1);
    struct peer kept;
    rdx_transport_frame f;
    assert_int_equal(serve_accept(&kept, x.lfd, x.ctx), 1);
    /* A small new case comes whole behind its OFFER: OFFER, its chunk, COMMIT. */
    read_until(&kept, RDX_FRAME_OFFER, &f);
    read_until(&kept, RDX_FRAME_COMMIT, &f);
    int flag = 0;
    assert_int_equal(rdx_tp_caseref_decode(f.payload, f.len, cid, &flag, NULL), RDX_OK);
    assert_string_equal(cid, id1);
    /* Before the ACK: the next case is due, and the receiver is revoked. */
    rdx_test_send_case(x.ini, "hub", "ecg", second, id2);
    revoke_inst(x.pki, "hub");
    rdx_buf ack;
    rdx_buf_init(&ack, 256);
    assert_int_equal(rdx_tp_caseref_encode(id1, 0, &ack, NULL), RDX_OK);
    assert_int_equal(peer_send(&kept, RDX_FRAME_ACK, ack.data, ack.len), 0);
    rdx_buf_free(&ack);
    rdx_test_wait_sql(x.db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id1,
                      1, 15000);
    /* The kept connection ends without another frame: case 2 is not offered on it. */
    assert_int_equal(peer_read(&kept, &f), -1);
    peer_close(&kept);
    fake_rx_refused(&x);
    rdx_test_wait_sql(x.db,
                      "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
                      "instr(last_error, 'certificate revoked') > 0",
                      id2, 1, 15000);
    snprintf(line, sizeof line, "delivery to hub: certificate revoked: hub (serial %s", x.serial);
    assert_true(rdx_test_file_contains(x.log, line));
    wait_audit(x.db, "case-send-failed", "certificate revoked", 1);
    fake_rx_stop(solo, &x);
}

/*
 * Revoked while the sender streams a large item to it: the sender stops at
 * a chunk boundary (it looks at the CRL before each chunk), never sends the
 * COMMIT, and keeps the case queued with the reason.
 */
static void test_node_sender_stops_mid_item_for_revoked_peer(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 0}; /* 0: the default */
    char big[4300], id[40];
    const size_t size = 64u << 20;
    fake_rx_start(solo, &x);
    snprintf(big, sizeof big, "%s/study.dcm", solo->dir);
    rdx_test_make_file(big, size, 5);
    const char *files[] = {big, NULL};
    rdx_test_send_case(x.ini, "hub", "ecg", files, id);
    struct peer p;
    rdx_transport_frame f;
    assert_int_equal(serve_accept(&p, x.lfd, x.ctx), 1);
    read_until(&p, RDX_FRAME_OFFER, &f);
    uint64_t zero = 0;
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_CONTROL_MAX);
    assert_int_equal(rdx_tp_progress_encode(id, &zero, 1, &b, NULL), RDX_OK);
    assert_int_equal(peer_send(&p, RDX_FRAME_PROGRESS, b.data, b.len), 0);
    rdx_buf_free(&b);
    assert_int_equal(peer_read(&p, &f), 0);
    assert_int_equal(f.type, RDX_FRAME_CHUNK);
    /* The rest waits in the sockets (a few MiB at most) while the receiver is revoked. */
    revoke_inst(x.pki, "hub");
    size_t chunks = 1;
    while (peer_read(&p, &f) == 0) {
        assert_int_equal(f.type, RDX_FRAME_CHUNK); /* never a COMMIT */
        chunks++;
    }
    assert_true(chunks < size / 1048576);
    peer_close(&p);
    fake_rx_refused(&x);
    rdx_test_wait_sql(x.db,
                      "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
                      "instr(last_error, 'certificate revoked') > 0",
                      id, 1, 15000);
    assert_true(rdx_test_file_contains(x.log, "by the new CRL; the connection was closed"));
    unlink(big);
    fake_rx_stop(solo, &x);
}

/*
 * This node's CRL runs out while the sender keeps a connection: the kept
 * connection is not reused past nextUpdate (fail closed, as for a new one),
 * and the next case is held, not counted as an attempt.
 */
static void test_node_sender_drops_kept_link_when_crl_expires(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 0}; /* 0: the default */
    char a[4300], b[4300], crl[4300], id1[40], id2[40];
    rdx_error err;
    fake_rx_start(solo, &x);
    /* Valid for ten seconds: long enough for the first case, over before the second. */
    rdx_transport_ca *ca = NULL;
    assert_int_equal(rdx_transport_ca_open(x.pki, &ca, &err), RDX_OK);
    assert_int_equal(rdx_transport_ca_crl_publish_v2(ca, 10, NULL, NULL, &err), RDX_OK);
    rdx_transport_ca_free(ca);
    snprintf(crl, sizeof crl, "%s/crl.pem", x.pki);
    FILE *fp = fopen(crl, "r");
    assert_non_null(fp);
    X509_CRL *xc = PEM_read_X509_CRL(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(xc);
    int64_t until = rdx_tp_asn1_time_unix(X509_CRL_get0_nextUpdate(xc));
    X509_CRL_free(xc);
    snprintf(a, sizeof a, "%s/first.hea", solo->dir);
    snprintf(b, sizeof b, "%s/second.hea", solo->dir);
    rdx_test_make_file(a, 1000, 6);
    rdx_test_make_file(b, 1000, 7);
    const char *first[] = {a, NULL}, *second[] = {b, NULL};
    rdx_test_send_case(x.ini, "hub", "ecg", first, id1);
    struct peer kept;
    rdx_transport_frame f;
    assert_int_equal(serve_accept(&kept, x.lfd, x.ctx), 1);
    read_until(&kept, RDX_FRAME_OFFER, &f);
    read_until(&kept, RDX_FRAME_COMMIT, &f);
    assert_true(rdx_clock_wall_ms() / 1000 < until); /* the case went under a current CRL */
    rdx_test_send_case(x.ini, "hub", "ecg", second, id2);
    for (int i = 0; i < 400 && rdx_clock_wall_ms() / 1000 <= until; i++) {
        rdx_test_sleep_ms(50);
    }
    assert_true(rdx_clock_wall_ms() / 1000 > until);
    rdx_buf ack;
    rdx_buf_init(&ack, 256);
    assert_int_equal(rdx_tp_caseref_encode(id1, 0, &ack, NULL), RDX_OK);
    assert_int_equal(peer_send(&kept, RDX_FRAME_ACK, ack.data, ack.len), 0);
    rdx_buf_free(&ack);
    rdx_test_wait_sql(x.db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id1,
                      1, 15000);
    assert_int_equal(peer_read(&kept, &f), -1); /* not reused: case 2 is not offered on it */
    peer_close(&kept);
    fake_rx_refused(&x); /* a new connection fails on the expired CRL */
    rdx_test_wait_sql(x.db,
                      "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
                      "attempts=0 AND instr(last_error, 'CRL has expired') > 0",
                      id2, 1, 15000);
    assert_true(rdx_test_file_contains(x.log, "delivery to hub: CRL has expired"));
    assert_int_equal(audit_count(x.db, "case-send-failed", NULL), 0);
    fake_rx_stop(solo, &x);
}

/* Play the receiver for one small new case on a fresh connection: OFFER, COMMIT, ACK. */
static void fake_rx_take(struct fake_rx *x, const char *id)
{
    struct peer p;
    rdx_transport_frame f;
    char cid[80];
    int flag = 0;
    assert_int_equal(serve_accept(&p, x->lfd, x->ctx), 1);
    read_until(&p, RDX_FRAME_OFFER, &f);
    read_until(&p, RDX_FRAME_COMMIT, &f);
    assert_int_equal(rdx_tp_caseref_decode(f.payload, f.len, cid, &flag, NULL), RDX_OK);
    assert_string_equal(cid, id);
    rdx_buf ack;
    rdx_buf_init(&ack, 256);
    assert_int_equal(rdx_tp_caseref_encode(id, 0, &ack, NULL), RDX_OK);
    assert_int_equal(peer_send(&p, RDX_FRAME_ACK, ack.data, ack.len), 0);
    rdx_buf_free(&ack);
    rdx_test_wait_sql(x->db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id,
                      1, 15000);
    peer_close(&p);
}

/* Whether a connection is waiting at the fake receiver's socket within ms. */
static int fake_rx_knocked(struct fake_rx *x, int ms)
{
    struct pollfd pfd = {x->lfd, POLLIN, 0};
    return poll(&pfd, 1, ms) == 1;
}

/* Queue a case of one 1000-byte file (solo's dir/name, filled from seed) from x's node to hub. */
static void fake_rx_send(struct solo *solo, struct fake_rx *x, const char *name, int seed,
                         char id[40])
{
    char a[4300];
    snprintf(a, sizeof a, "%s/%s", solo->dir, name);
    rdx_test_make_file(a, 1000, seed);
    const char *files[] = {a, NULL};
    rdx_test_send_case(x->ini, "hub", "ecg", files, id);
}

/*
 * Case id is held at x's node, its own fault: it stays queued with no
 * attempt counted and a last_error holding every one of why (NULL-ended);
 * several held tries go by (every 400 ms) and none connects or counts; the
 * log says so, and nothing is recorded as failed or dead-lettered.
 */
static void expect_held(struct fake_rx *x, const char *id, const char *const *why)
{
    char sql[1200];
    size_t k = (size_t)snprintf(sql, sizeof sql,
                                "SELECT count(*) FROM outbox WHERE case_id=?1 AND "
                                "state='queued' AND attempts=0");
    for (size_t i = 0; why[i] != NULL; i++) {
        k += (size_t)snprintf(sql + k, sizeof sql - k, " AND instr(last_error, '");
        for (const char *c = why[i]; *c != '\0' && k + 3 < sizeof sql; c++) {
            if (*c == '\'') {
                sql[k++] = '\'';
            }
            sql[k++] = *c;
        }
        k += (size_t)snprintf(sql + k, sizeof sql - k, "') > 0");
        assert_true(k < sizeof sql);
    }
    rdx_test_wait_sql(x->db, sql, id, 1, 15000);
    assert_false(fake_rx_knocked(x, 1500));
    assert_int_equal(rdx_test_sql(x->db, sql, id), 1);
    assert_true(rdx_test_file_contains(x->log, "cases to hub held (not counted as attempts)"));
    assert_int_equal(audit_count(x->db, "case-send-failed", NULL), 0);
    assert_int_equal(audit_count(x->db, "case-dead-lettered", NULL), 0);
}

/*
 * The clinic's own CRL file breaks (garbage, cut short, another CA's): its
 * fault, not the receiver's. The case is held, as while the CRL is expired:
 * it stays queued with no attempt counted, though max_attempts is 2 and
 * held tries come every 400 ms, no case-send-failed record, and no
 * connection is made. The loop keeps its CRL (crl-rejected) and the log
 * names the file and what is wrong. A good CRL published again
 * (`rdx pki crl`) lets the case through.
 */
static void test_node_sender_holds_cases_while_its_crl_is_corrupt(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 2};
    char crl[4300], rogue[4300], id[40];
    rdx_error err;
    fake_rx_start(solo, &x);
    snprintf(crl, sizeof crl, "%s/crl.pem", x.pki);
    snprintf(rogue, sizeof rogue, "%s/rogue-pki", solo->dir);
    rdx_transport_ca_cfg rc = {.dir = rogue, .network = "Rogue Network"};
    assert_int_equal(rdx_transport_ca_create(&rc, &err), RDX_OK);
    snprintf(rogue, sizeof rogue, "%s/rogue-pki/crl.pem", solo->dir);
    rdx_buf good, other;
    file_take(crl, &good);
    file_take(rogue, &other);
    const char garbage[] = "not a CRL at all\n";
    struct {
        const void *p;
        size_t len;
        const char *why;
    } bad[] = {
        {garbage, sizeof garbage - 1, "crl.pem: not a CRL in PEM form"},
        {good.data, good.len / 2, "crl.pem: not a CRL in PEM form"},
        {other.data, other.len, "crl.pem: not issued by the network CA"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t before = log_count(x.log, "keeping the old CRL");
        put_crl(crl, bad[i].p, bad[i].len);
        if (i == 0) {
            fake_rx_send(solo, &x, "held.hea", 9, id);
        }
        const char *why[] = {"this node's CRL cannot be used", bad[i].why, NULL};
        expect_held(&x, id, why);
        wait_log_count(x.log, "keeping the old CRL", before);
        wait_audit(x.db, "crl-rejected", bad[i].why, 1);
    }
    assert_true(rdx_test_file_contains(x.log, "this node's CRL cannot be used, so hub cannot be "
                                              "checked"));
    /* A good CRL again: the case goes at the next held try. */
    struct rdx_run r;
    const char *pub[] = {"pki", "crl", "--dir", x.pki, NULL};
    run_ok(&r, pub);
    rdx_run_free(&r);
    fake_rx_take(&x, id);
    assert_int_equal(rdx_test_sql(x.db, "SELECT attempts FROM outbox WHERE case_id=?1", id), 1);
    rdx_buf_free(&good);
    rdx_buf_free(&other);
    fake_rx_stop(solo, &x);
}

/*
 * This node's own key file is garbage (an operator's bad copy): as for a bad
 * CRL, the case is held with the file named, not counted, never
 * dead-lettered, and no connection is made; the key put back lets it through.
 */
static void test_node_sender_holds_cases_while_its_key_is_bad(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 2};
    char key[4300], id[40];
    rdx_error err;
    fake_rx_start(solo, &x);
    snprintf(key, sizeof key, "%s/private/clinic.key", x.pki);
    rdx_buf good;
    file_take(key, &good);
    rdx_test_write_text(key, "not a key\n");
    fake_rx_send(solo, &x, "held-key.hea", 15, id);
    const char *why[] = {"this node's certificate cannot be used", "clinic.key", NULL};
    expect_held(&x, id, why);
    assert_int_equal(rdx_file_write_atomic_mode(key, good.data, good.len, 0600, &err), RDX_OK);
    fake_rx_take(&x, id);
    assert_int_equal(rdx_test_sql(x.db, "SELECT attempts FROM outbox WHERE case_id=?1", id), 1);
    rdx_buf_free(&good);
    fake_rx_stop(solo, &x);
}

/*
 * An older CRL put back over a newer one, at the sender: CRL A, then the
 * receiver revoked in CRL B, then A again, which does not list it. Delivery
 * has used B, so it refuses A: the case is held (no attempt, no
 * connection), not sent to the revoked receiver, and the loop keeps B with a
 * crl-rejected record.
 */
static void test_node_sender_refuses_an_older_crl(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 0}; /* 0: the default */
    char a[4300], b[4300], crl[4300], id1[40], id2[40];
    fake_rx_start(solo, &x);
    snprintf(crl, sizeof crl, "%s/crl.pem", x.pki);
    rdx_buf old;
    file_take(crl, &old); /* A */
    snprintf(a, sizeof a, "%s/first.hea", solo->dir);
    snprintf(b, sizeof b, "%s/second.hea", solo->dir);
    rdx_test_make_file(a, 1000, 11);
    rdx_test_make_file(b, 1000, 12);
    const char *first[] = {a, NULL}, *second[] = {b, NULL};
    rdx_test_send_case(x.ini, "hub", "ecg", first, id1);
    fake_rx_take(&x, id1); /* under A */
    size_t loaded = log_count(x.log, "loaded CRL");
    revoke_inst(x.pki, "hub");                   /* B */
    wait_log_count(x.log, "loaded CRL", loaded); /* the loop's watch has B too */
    rdx_test_send_case(x.ini, "hub", "ecg", second, id2);
    fake_rx_refused(&x);
    rdx_test_wait_sql(x.db,
                      "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
                      "attempts>0 AND instr(last_error, 'certificate revoked') > 0",
                      id2, 1, 15000);
    /* No receiver any more: a try that did connect would fail at once, counted. */
    close(x.lfd);
    size_t before = log_count(x.log, "an older CRL is refused");
    put_crl(crl, old.data, old.len); /* A again */
    rdx_test_wait_sql(x.db,
                      "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
                      "instr(last_error, 'an older CRL is refused: its CRL number 1 is lower "
                      "than 2') > 0",
                      id2, 1, 15000);
    long long n = rdx_test_sql(x.db, "SELECT attempts FROM outbox WHERE case_id=?1", id2);
    rdx_test_sleep_ms(1500);
    assert_int_equal(rdx_test_sql(x.db, "SELECT attempts FROM outbox WHERE case_id=?1", id2), n);
    assert_int_equal(rdx_test_sql(x.db,
                                  "SELECT count(*) FROM outbox WHERE case_id=?1 AND "
                                  "state='queued' AND instr(last_error, 'older CRL') > 0",
                                  id2),
                     1);
    wait_log_count(x.log, "keeping the old CRL: ", 0);
    assert_true(log_count(x.log, "an older CRL is refused") > before);
    wait_audit(x.db, "crl-rejected", "an older CRL is refused", 1);
    assert_int_equal(audit_count(x.db, "case-dead-lettered", NULL), 0);
    x.lfd = -1;
    rdx_buf_free(&old);
    fake_rx_stop(solo, &x);
}

/*
 * The same rollback before any delivery has used CRL B: the node's loop
 * loaded B (and refuses A again), and tells delivery, so the first case
 * after it is held too, and no connection is made to the receiver B revoked.
 */
static void test_node_sender_refuses_a_crl_older_than_the_loops(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 0};
    char crl[4300], id[40];
    fake_rx_start(solo, &x);
    snprintf(crl, sizeof crl, "%s/crl.pem", x.pki);
    rdx_buf old;
    file_take(crl, &old); /* A */
    size_t loaded = log_count(x.log, "loaded CRL");
    revoke_inst(x.pki, "hub"); /* B */
    wait_log_count(x.log, "loaded CRL", loaded);
    put_crl(crl, old.data, old.len); /* A again */
    wait_log_count(x.log, "keeping the old CRL: ", 0);
    fake_rx_send(solo, &x, "first.hea", 13, id);
    rdx_test_wait_sql(x.db,
                      "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued' AND "
                      "attempts=0 AND instr(last_error, 'an older CRL is refused') > 0",
                      id, 1, 15000);
    assert_false(fake_rx_knocked(&x, 1000));
    assert_int_equal(audit_count(x.db, "case-send-failed", NULL), 0);
    rdx_buf_free(&old);
    fake_rx_stop(solo, &x);
}

static void test_node_idle_timeout(void **state)
{
    struct world *w = *state;
    char ini[4300], log[4300], data[4300], text[2048];
    snprintf(ini, sizeof ini, "%s/idle.ini", w->dir);
    snprintf(log, sizeof log, "%s/idle.log", w->dir);
    snprintf(data, sizeof data, "%s/idle", w->dir);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = idle\n"
             "idle_timeout_ms = 300\n");
    rdx_test_write_text(ini, text);
    pid_t pid = rdx_test_spawn_node(ini, log);
    unsigned port = rdx_test_wait_port(data, 10000);
    struct peer p;
    rdx_transport_frame f;
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    assert_int_equal(peer_open(&p, port, c, k), 1);
    assert_int_equal(peer_send(&p, RDX_FRAME_PING, NULL, 0), 0);
    assert_int_equal(peer_read(&p, &f), 0);
    /* Then silence: the node hangs up, not the test. */
    assert_int_equal(peer_read(&p, &f), -1);
    peer_close(&p);
    rdx_test_stop_node(pid);
    assert_true(rdx_test_file_contains(log, "idle timeout"));
}

/* The node's resident memory in KiB (VmRSS), or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib;
}

/*
 * A peer that floods PINGs and never reads the PONGs: the node stops reading
 * from it once a bounded amount of answers is queued (its memory does not
 * grow with the flood), and its write timeout then closes the connection.
 */
static void test_node_bounded_output_to_a_peer_that_does_not_read(void **state)
{
    struct world *w = *state;
    struct peer p;
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    assert_int_equal(peer_open(&p, w->hub_port, c, k), 1);
    long before = rss_kib(w->hub);
    assert_true(before > 0);
    /* 64 KiB of PING frames per write; a write the node does not take within 1 s ends it. */
    enum { BATCH = 65536, LIMIT_MB = 512 };
    uint8_t *pings = malloc(BATCH);
    assert_non_null(pings);
    for (size_t i = 0; i < BATCH; i += RDX_TRANSPORT_FRAME_HDR) {
        assert_int_equal(rdx_transport_frame_header(pings + i, RDX_FRAME_PING, 0, NULL), RDX_OK);
    }
    struct timeval tv = {1, 0};
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    size_t sent = 0;
    long after = before; /* the most the node held while the flood went on */
    for (unsigned n = 0; sent < (size_t)LIMIT_MB << 20; n++) {
        size_t wr = 0;
        if (SSL_write_ex(p.ssl, pings, BATCH, &wr) != 1) {
            break;
        }
        sent += wr;
        long now = n % 32 == 0 ? rss_kib(w->hub) : 0;
        after = now > after ? now : after;
    }
    ERR_clear_error();
    long last = rss_kib(w->hub);
    after = last > after ? last : after;
    free(pings);
    /* The node stopped taking the flood long before LIMIT_MB ... */
    assert_true(sent < (size_t)LIMIT_MB << 20);
    /* ... and holds a bounded backlog (1 MiB of answers, and OpenSSL's buffers), not the flood. */
    if (after - before > 32 * 1024) {
        fail_msg("node grew from %ld to %ld KiB while %zu bytes of PINGs went unanswered", before,
                 after, sent);
    }
    /* Its write timeout (2 s in this world) closes the connection. */
    for (int tries = 0; tries < 400 && !rdx_test_file_contains(w->hub_log, "write timeout");
         tries++) {
        rdx_test_sleep_ms(25);
    }
    assert_true(rdx_test_file_contains(w->hub_log, "write timeout"));
    peer_close(&p);
}

static void test_node_200_concurrent_peers(void **state)
{
    struct world *w = *state;
    enum { N = 200 };
    struct peer *ps = calloc(N, sizeof *ps);
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/clinic.crt", w->pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", w->pki);
    /* All connected and authenticated at once ... */
    for (int i = 0; i < N; i++) {
        assert_int_equal(peer_open(&ps[i], w->hub_port, c, k), 1);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(peer_send(&ps[i], RDX_FRAME_PING, NULL, 0), 0);
    }
    /* ... and every one of them served. */
    for (int i = 0; i < N; i++) {
        rdx_transport_frame f;
        assert_int_equal(peer_read(&ps[i], &f), 0);
        assert_int_equal(f.type, RDX_FRAME_PONG);
    }
    for (int i = 0; i < N; i++) {
        peer_close(&ps[i]);
    }
    free(ps);
}

/* Sum of durable bytes the hub holds for a case (-1 when it does not know it). */
static long long hub_durable(struct world *w, const char *id)
{
    return rdx_test_sql(w->hub_db,
                        "SELECT coalesce((SELECT sum(durable) / 1024 FROM inbox_items WHERE "
                        "case_id=?1), -1)",
                        id);
}

/*
 * hub_durable once it has stopped moving (unchanged over 300 ms, at most 15 s):
 * after a sender is killed, the bytes it had already written to its socket
 * still reach the hub, which may then hold the whole case.
 */
static long long hub_durable_settled(struct world *w, const char *id)
{
    long long kb = hub_durable(w, id), last = -2;
    for (int i = 0; i < 50 && kb != last; i++) {
        last = kb;
        rdx_test_sleep_ms(300);
        kb = hub_durable(w, id);
    }
    return kb;
}

/* Start a node with RLIMIT_FSIZE set: writes past limit fail (EFBIG), like a full disk. */
static pid_t spawn_node_limited(const char *ini, const char *log, rlim_t limit)
{
    const char *bin = rdx_test_rdx_bin();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {limit, limit};
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0 || dup2(fd, 2) < 0 || dup2(nul, 0) < 0 ||
            setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            _exit(127);
        }
        const char *argv[] = {bin, "node", "serve", "--config", ini, NULL};
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void restart(struct world *w, int hub)
{
    char data[4300], port[4400];
    snprintf(data, sizeof data, "%s/%s", w->dir, hub ? "hub" : "clinic");
    snprintf(port, sizeof port, "%s/node.port", data);
    unlink(port);
    if (hub) {
        /* Same port as before, so the clinic's [peers] entry still points at it. */
        write_configs(w, w->hub_port, w->hub_port);
        w->hub = rdx_test_spawn_node(w->hub_ini, w->hub_log);
    } else {
        w->clinic = rdx_test_spawn_node(w->clinic_ini, w->clinic_log);
    }
    (void)rdx_test_wait_port(data, 10000);
}

/* kill -9 one node while a large case is half stored at the hub; the case must resume. */
static void crash_mid_transfer(struct world *w, int kill_hub)
{
    char big[4300], id[40], out[4300];
    /*
     * A killed sender's bytes in flight (its socket, the hub's, the chunks at
     * the hub's store threads) still land, and by the time the first durable
     * progress is seen the hub may hold tens of megabytes: the sender's case
     * is large enough that a part of it is still left to resume.
     */
    const size_t size = kill_hub ? 48u << 20 : 160u << 20;
    snprintf(big, sizeof big, "%s/study-%d.dcm", w->dir, kill_hub);
    rdx_test_make_file(big, size, 99u + (unsigned)kill_hub);
    for (int tries = 0;; tries++) {
        const char *files[] = {big, NULL};
        rdx_test_send_case(w->clinic_ini, "hub", "ecg", files, id);
        long long kb = -1;
        for (int i = 0; i < 4000; i++) {
            kb = hub_durable(w, id);
            if (kb > 0) {
                break;
            }
            rdx_test_sleep_ms(2);
        }
        assert_true(kb > 0);
        pid_t victim = kill_hub ? w->hub : w->clinic;
        int status = 0;
        kill(victim, SIGKILL);
        waitpid(victim, &status, 0);
        kb = hub_durable_settled(w, id);
        if (kb * 1024 < (long long)size) {
            break; /* caught it half way */
        }
        /* The whole case landed, before the kill or from bytes in flight: again, with a new case.
         */
        restart(w, kill_hub);
        assert_true(tries < 3);
    }
    int resumed = audit_count(w->hub_db, "case-resumed", NULL);
    restart(w, kill_hub);
    wait_outbox(w, id, "acked");
    /* It resumed from the hub's persisted progress rather than from zero. */
    assert_true(audit_count(w->hub_db, "case-resumed", NULL) > resumed);
    assert_int_equal(rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1", id), 1);
    snprintf(out, sizeof out, "%s/after-crash-%d", w->dir, kill_hub);
    assert_int_equal(mkdir(out, 0700), 0);
    struct rdx_run r;
    const char *fetch[] = {"case", "fetch", "--config", w->hub_ini, "-o", out, id, NULL};
    run_ok(&r, fetch);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    char got[4400];
    snprintf(got, sizeof got, "%s/study-%d.dcm", out, kill_hub);
    assert_true(rdx_test_files_equal(big, got));
    unlink(got);
    unlink(big);
}

static void test_node_receiver_killed_mid_transfer_resumes(void **state)
{
    crash_mid_transfer(*state, 1);
}

static void test_node_sender_killed_mid_transfer_resumes(void **state)
{
    crash_mid_transfer(*state, 0);
}

static void test_node_storage_failure_refused_cleanly(void **state)
{
    struct world *w = *state;
    char big[4300], id[40], data[4300], port[4400];
    const size_t size = 12u << 20;
    snprintf(big, sizeof big, "%s/ct-series.dcm", w->dir);
    rdx_test_make_file(big, size, 5);
    /* The hub can store at most 6 MiB in any one file. */
    rdx_test_stop_node(w->hub);
    snprintf(data, sizeof data, "%s/hub", w->dir);
    snprintf(port, sizeof port, "%s/node.port", data);
    unlink(port);
    write_configs(w, w->hub_port, w->hub_port);
    w->hub = spawn_node_limited(w->hub_ini, w->hub_log, 6u << 20);
    (void)rdx_test_wait_port(data, 10000);
    const char *files[] = {big, NULL};
    rdx_test_send_case(w->clinic_ini, "hub", "ecg", files, id);
    wait_audit(w->hub_db, "case-refused", "cannot store", 1);
    wait_audit(w->clinic_db, "case-send-failed", "cannot store", 1);
    /* Refused, not half-written: the file holds exactly the durable bytes. */
    char item[4400];
    struct stat sb;
    snprintf(item, sizeof item, "%s/inbox/clinic/%s/0", data, id);
    assert_int_equal(stat(item, &sb), 0);
    assert_int_equal((long long)sb.st_size, hub_durable(w, id) * 1024);
    assert_true(sb.st_size <= (6 << 20));
    assert_int_equal(
        rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1 AND state='complete'",
                     id),
        0);
    /* The sender keeps the case and retries; once the hub has room, it arrives. */
    assert_int_equal(rdx_test_sql(w->clinic_db,
                                  "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='queued'",
                                  id),
                     1);
    rdx_test_stop_node(w->hub);
    restart(w, 1);
    wait_outbox(w, id, "acked");
    assert_int_equal(
        rdx_test_sql(w->hub_db, "SELECT count(*) FROM inbox WHERE case_id=?1 AND state='complete'",
                     id),
        1);
    unlink(big);
}

static void test_node_cli_errors(void **state)
{
    struct world *w = *state;
    struct rdx_run r;
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/bad.ini", w->dir);
    rdx_test_write_text(bad, "[node]\nid = x\nlisten = 127.0.0.1:1\n[allow.send]\nclinic = ekg\n");
    const char *serve[] = {"node", "serve", "--config", bad, NULL};
    run_ok(&r, serve);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "bad.ini:5"));
    assert_non_null(strstr(r.err, "unknown kind 'ekg'"));
    rdx_run_free(&r);
    const char *nocfg[] = {"node", "serve", NULL};
    run_ok(&r, nocfg);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *help[] = {"node", "serve", "--help", NULL};
    run_ok(&r, help);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx node serve"));
    rdx_run_free(&r);
    const char *kind[] = {"case", "send",   "--config", w->clinic_ini, "--to",
                          "hub",  "--kind", "xray",     bad,           NULL};
    run_ok(&r, kind);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *nopeer[] = {"case",     "send",   "--config", w->clinic_ini, "--to",
                            "yangzhou", "--kind", "ecg",      bad,           NULL};
    run_ok(&r, nopeer);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "no [peers] entry for 'yangzhou'"));
    rdx_run_free(&r);
    const char *nofile[] = {"case", "send",   "--config", w->clinic_ini,          "--to",
                            "hub",  "--kind", "ecg",      "/nonexistent/100.dat", NULL};
    run_ok(&r, nofile);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "/nonexistent/100.dat"));
    rdx_run_free(&r);
    const char *nocase[] = {
        "case", "fetch", "--config", w->hub_ini, "-o", w->dir, "0123456789abcdef0123456789abcdef",
        NULL};
    run_ok(&r, nocase);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "not in the inbox"));
    rdx_run_free(&r);
    const char *verbs[][3] = {{"case", "send", "--help"},
                              {"case", "status", "--help"},
                              {"case", "list", "--help"},
                              {"case", "fetch", "--help"}};
    for (size_t i = 0; i < 4; i++) {
        const char *argv[] = {verbs[i][0], verbs[i][1], verbs[i][2], NULL};
        run_ok(&r, argv);
        assert_int_equal(r.exit_code, 0);
        assert_non_null(strstr(r.out, "Usage: rdx case"));
        rdx_run_free(&r);
    }
}

/*
 * The outbox kick (rdx_tp_outbox_kick): a byte into the node's FIFO when a
 * node holds it open, and otherwise nothing at all. It never blocks, never
 * creates or writes a file that is not that FIFO, and never follows a link.
 */
static void test_node_outbox_kick_reaches_only_a_running_node(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char fifo[4200], other[4200];
    struct stat sb;
    uint8_t b[8];
    snprintf(fifo, sizeof fifo, "%s/outbox.kick", dir);
    snprintf(other, sizeof other, "%s/other.fifo", dir);
    /* No node ever ran here: nothing is created. */
    rdx_tp_outbox_kick(dir);
    assert_int_equal(lstat(fifo, &sb), -1);
    rdx_tp_outbox_kick(NULL);
    /* A FIFO with no node holding it (stopped): the kick neither blocks nor fails the caller. */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    rdx_tp_outbox_kick(dir);
    /* A running node holds it open for reading and writing: the kick is a byte to read. */
    int fd = open(fifo, O_RDWR | O_NONBLOCK);
    assert_true(fd >= 0);
    assert_true(read(fd, b, sizeof b) < 0 && errno == EAGAIN);
    rdx_tp_outbox_kick(dir);
    rdx_tp_outbox_kick(dir);
    assert_int_equal(read(fd, b, sizeof b), 2);
    assert_true(read(fd, b, sizeof b) < 0 && errno == EAGAIN);
    close(fd);
    /* Not a FIFO: a regular file there is left as it is. */
    assert_int_equal(unlink(fifo), 0);
    rdx_test_write_text(fifo, "");
    rdx_tp_outbox_kick(dir);
    assert_int_equal(stat(fifo, &sb), 0);
    assert_int_equal((long long)sb.st_size, 0);
    /* A symbolic link, even to a FIFO someone reads, is not followed. */
    assert_int_equal(unlink(fifo), 0);
    assert_int_equal(mkfifo(other, 0600), 0);
    assert_int_equal(symlink(other, fifo), 0);
    fd = open(other, O_RDWR | O_NONBLOCK);
    assert_true(fd >= 0);
    rdx_tp_outbox_kick(dir);
    assert_true(read(fd, b, sizeof b) < 0 && errno == EAGAIN);
    close(fd);
    rdx_test_rmrf(dir);
    free(dir);
}

/* ---- the newest CRL across restarts, and a CRL not valid yet ------------------ */

/* rdx with argv; fails the test unless it exits 0. */
static void rdx_ok(const char *const *argv)
{
    struct rdx_run r;
    run_ok(&r, argv);
    if (r.exit_code != 0) {
        fail_msg("rdx %s %s: %s", argv[0], argv[1], r.err);
    }
    rdx_run_free(&r);
}

/* Copy the CA's current CRL (pki/crl.pem) into len bytes at *out (rdx_buf_free it). */
static void crl_take(const char *pki, rdx_buf *out)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/crl.pem", pki);
    file_take(p, out);
}

/*
 * Start `rdx node serve` on ini (its old node.port removed first), and either
 * wait for it to listen (want_exit 0: its port) or for it to exit 1 without
 * listening (want_exit 1: 0). *pid is the running node, or 0.
 */
static unsigned node_start(const char *ini, const char *log, const char *data, int want_exit,
                           pid_t *pid)
{
    char portfile[4400];
    snprintf(portfile, sizeof portfile, "%s/node.port", data);
    (void)unlink(portfile);
    *pid = rdx_test_spawn_node(ini, log);
    if (!want_exit) {
        return rdx_test_wait_port(data, 10000);
    }
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 600 && (got = waitpid(*pid, &status, WNOHANG)) == 0; i++) {
        rdx_test_sleep_ms(25);
    }
    if (got != *pid) {
        fail_msg("%s: the node is still running; it should have refused to start", ini);
    }
    *pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_int_equal(access(portfile, F_OK), -1); /* it never listened */
    return 0;
}

/* The CRL number node.db holds as the newest CRL put in force (-1: none). */
static long long mark_number(const char *db)
{
    if (rdx_test_sql(db, "SELECT count(*) FROM crl_mark", NULL) != 1) {
        return -1;
    }
    return rdx_test_sql(db, "SELECT CAST(number AS INTEGER) FROM crl_mark", NULL);
}

/*
 * A hub of its own in solo's directory, for the CRL mark tests: its paths
 * (pki, its CRL file, its config, its data directory) and a world naming its
 * node.db and log; a fresh network with hub and clinic issued.
 */
static void solo_hub_world(const struct solo *solo, struct world *w, char pki[4000], char crl[4300],
                           char ini[4300], char data[4000])
{
    snprintf(pki, 4000, "%s/pki", solo->dir);
    snprintf(crl, 4300, "%s/hub-crl.pem", pki);
    snprintf(ini, 4300, "%s/hub.ini", solo->dir);
    snprintf(data, 4000, "%s/hub", solo->dir);
    memset(w, 0, sizeof *w);
    w->dir = solo->dir;
    snprintf(w->pki, sizeof w->pki, "%s", pki);
    snprintf(w->hub_db, sizeof w->hub_db, "%s/node.db", data);
    snprintf(w->hub_log, sizeof w->hub_log, "%s/hub.log", solo->dir);
    const char *init[] = {"pki", "init", "--dir", pki, "--network", "Nanjing Test Network", NULL};
    rdx_ok(init);
    rdx_test_issue(pki, "hub", "Nanjing", 0, 0);
    rdx_test_issue(pki, "clinic", "Nanjing", 0, 0);
}

/*
 * A CRL put back while the node is stopped is checked at start against the
 * newest CRL the node has ever put in force (node.db): CRL 1, then a
 * revocation (`rdx pki revoke`: CRL 2), the hub started on 2, then CRL 3
 * published and loaded while it runs. Stopped, with 2 and then 1 put back, it
 * does not start: exit 1, a message naming the file and both CRL numbers, a
 * crl-rejected record. With 3 back it runs (and the revoked institution is
 * still refused), and a newer CRL 4 raises the mark.
 */
static void test_node_crl_rollback_refused_across_restart(void **state)
{
    struct solo *solo = *state;
    char pki[4000], crl[4300], ini[4300], data[4000], text[2048];
    struct world hw, *w = &hw;
    solo_hub_world(solo, w, pki, crl, ini, data);
    rdx_test_issue(pki, "turncoat", "Nanjing", 0, 0);
    rdx_buf c1, c2, c3;
    crl_take(pki, &c1);
    const char *revoke[] = {"pki",      "revoke",   "--dir",         pki, "--institution",
                            "turncoat", "--reason", "keyCompromise", NULL};
    rdx_ok(revoke);
    crl_take(pki, &c2);
    put_crl(crl, c2.data, c2.len);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/hub-crl.pem\ndata = hub\n\n"
             "[allow.send]\nclinic = ecg\nturncoat = ecg\n");
    rdx_test_write_text(ini, text);
    w->hub_port = node_start(ini, w->hub_log, data, 0, &solo->hub);
    assert_int_equal(mark_number(w->hub_db), 2);
    /* A newer CRL while it runs raises the mark too. */
    const char *publish[] = {"pki", "crl", "--dir", pki, NULL};
    rdx_ok(publish);
    crl_take(pki, &c3);
    put_crl(crl, c3.data, c3.len);
    rdx_test_wait_sql(w->hub_db, "SELECT count(*) FROM crl_mark WHERE number='3'", NULL, 1, 15000);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;

    /* 2, then 1, put back while it was stopped: it does not start on either. */
    struct {
        const rdx_buf *b;
        const char *why;
    } old[] = {
        {&c2, "hub-crl.pem: an older CRL is refused: its CRL number 2 is lower than 3, that of "
              "the newest CRL this node has put in force"},
        {&c1, "hub-crl.pem: an older CRL is refused: its CRL number 1 is lower than 3, that of "
              "the newest CRL this node has put in force"},
    };
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
        size_t before = log_count(w->hub_log, old[i].why);
        put_crl(crl, old[i].b->data, old[i].b->len);
        (void)node_start(ini, w->hub_log, data, 1, &solo->hub);
        assert_int_equal(log_count(w->hub_log, old[i].why), before + 1);
        assert_true(rdx_test_file_contains(w->hub_log, "not serving on it: put the current CRL "
                                                       "in place"));
        assert_int_equal(audit_count(w->hub_db, "crl-rejected", old[i].why), 1);
        assert_int_equal(mark_number(w->hub_db), 3);
    }
    assert_int_equal(audit_count(w->hub_db, "crl-rejected", NULL), 2);

    /* 3 back: it runs, and turncoat (revoked in 2) is still refused. */
    put_crl(crl, c3.data, c3.len);
    w->hub_port = node_start(ini, w->hub_log, data, 0, &solo->hub);
    struct peer p;
    peer_served(&p, w, "clinic");
    peer_close(&p);
    char c[4300], k[4300];
    snprintf(c, sizeof c, "%s/certs/turncoat.crt", pki);
    snprintf(k, sizeof k, "%s/private/turncoat.key", pki);
    expect_refused(w, c, k, "certificate revoked, claims institution turncoat");
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    /* A newer one (4) at start: it runs, and 4 is the mark now. */
    rdx_ok(publish);
    rdx_buf c4;
    crl_take(pki, &c4);
    put_crl(crl, c4.data, c4.len);
    (void)node_start(ini, w->hub_log, data, 0, &solo->hub);
    assert_int_equal(mark_number(w->hub_db), 4);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    rdx_buf_free(&c1);
    rdx_buf_free(&c2);
    rdx_buf_free(&c3);
    rdx_buf_free(&c4);
    verify_chain(w->hub_db);
}

/*
 * A fresh node.db has no mark: the node starts on any valid CRL of the
 * network CA, however old (CRL 1 after 2 was published), and records it. A
 * node.db from before the mark (its table dropped) gets the table at the next
 * start and starts as a fresh one does. The mark is per CA: a network whose
 * CA was replaced (a new key, numbers from 1 again) is not held to the old
 * CA's numbers.
 */
static void test_node_crl_mark_fresh_and_old_node_db(void **state)
{
    struct solo *solo = *state;
    char pki[4000], pki2[4000], crl[4300], ini[4300], data[4000], db[4300], log[4300];
    char text[2048];
    snprintf(pki, sizeof pki, "%s/pki", solo->dir);
    snprintf(pki2, sizeof pki2, "%s/pki2", solo->dir);
    snprintf(crl, sizeof crl, "%s/hub-crl.pem", pki);
    snprintf(ini, sizeof ini, "%s/hub.ini", solo->dir);
    snprintf(data, sizeof data, "%s/hub", solo->dir);
    snprintf(db, sizeof db, "%s/node.db", data);
    snprintf(log, sizeof log, "%s/hub.log", solo->dir);
    const char *init[] = {"pki", "init", "--dir", pki, "--network", "Nanjing Test Network", NULL};
    rdx_ok(init);
    rdx_test_issue(pki, "hub", "Nanjing", 0, 0);
    rdx_buf c1, c2;
    crl_take(pki, &c1);
    const char *publish[] = {"pki", "crl", "--dir", pki, NULL};
    rdx_ok(publish);
    crl_take(pki, &c2);
    put_crl(crl, c1.data, c1.len); /* the older one */
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/hub-crl.pem\ndata = hub\n");
    rdx_test_write_text(ini, text);
    (void)node_start(ini, log, data, 0, &solo->hub);
    assert_int_equal(mark_number(db), 1);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    /* A node.db from before the mark: no crl_mark table. */
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "DROP TABLE crl_mark", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    (void)node_start(ini, log, data, 0, &solo->hub);
    assert_int_equal(mark_number(db), 1);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    put_crl(crl, c2.data, c2.len);
    (void)node_start(ini, log, data, 0, &solo->hub);
    assert_int_equal(mark_number(db), 2);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    /* A new CA for the network: its CRL 1 is not "older" than the old CA's 2. */
    const char *init2[] = {"pki", "init", "--dir", pki2, "--network", "Nanjing Test Network", NULL};
    rdx_ok(init2);
    rdx_test_issue(pki2, "hub", "Nanjing", 0, 0);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki2/certs/hub.crt\n"
             "key = pki2/private/hub.key\nca = pki2/ca.crt\ncrl = pki2/crl.pem\ndata = hub\n");
    rdx_test_write_text(ini, text);
    (void)node_start(ini, log, data, 0, &solo->hub);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    assert_int_equal(rdx_test_sql(db, "SELECT count(*) FROM crl_mark", NULL), 2);
    assert_int_equal(audit_count(db, "crl-rejected", NULL), 0);
    rdx_buf_free(&c1);
    rdx_buf_free(&c2);
    verify_chain(db);
}

/*
 * Write to path a CRL of the CA in pki with CRL number number whose
 * lastUpdate (thisUpdate) is ahead_s seconds from now and nextUpdate a day
 * after that, signed with the CA's key as `rdx pki crl` signs (no revocations).
 */
static void write_future_crl(const char *pki, const char *path, long number, long ahead_s)
{
    char p[4300];
    rdx_error err;
    EVP_PKEY *key = NULL;
    snprintf(p, sizeof p, "%s/ca.key", pki);
    assert_int_equal(rdx_tp_key_load(p, &key, &err), RDX_OK);
    snprintf(p, sizeof p, "%s/ca.crt", pki);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    X509 *ca = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(ca);
    time_t now = time(NULL);
    X509_CRL *c = X509_CRL_new();
    ASN1_TIME *t0 = ASN1_TIME_adj(NULL, now, 0, ahead_s);
    ASN1_TIME *t1 = ASN1_TIME_adj(NULL, now, 1, ahead_s);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    assert_non_null(c);
    assert_non_null(t0);
    assert_non_null(t1);
    assert_non_null(num);
    assert_int_equal(X509_CRL_set_version(c, X509_CRL_VERSION_2), 1);
    assert_int_equal(X509_CRL_set_issuer_name(c, X509_get_subject_name(ca)), 1);
    assert_int_equal(X509_CRL_set1_lastUpdate(c, t0), 1);
    assert_int_equal(X509_CRL_set1_nextUpdate(c, t1), 1);
    assert_int_equal(ASN1_INTEGER_set_int64(num, number), 1);
    assert_int_equal(X509_CRL_add1_ext_i2d(c, NID_crl_number, num, 0, 0), 1);
    assert_int_equal(X509_CRL_sort(c), 1);
    assert_true(X509_CRL_sign(c, key, EVP_sha256()) > 0);
    BIO *mem = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509_CRL(mem, c), 1);
    char *pem = NULL;
    long len = BIO_get_mem_data(mem, &pem);
    put_crl(path, pem, (size_t)len);
    BIO_free(mem);
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(t0);
    ASN1_TIME_free(t1);
    X509_CRL_free(c);
    X509_free(ca);
    EVP_PKEY_free(key);
}

/*
 * The sender's own CRL is not valid yet (its thisUpdate a day ahead: the
 * CA's clock, or this node's, is wrong): every handshake would fail on it,
 * and it is this node's fault, not the receiver's. The case is held, as for
 * an expired CRL: queued, no attempt counted though max_attempts is 2, no
 * case-send-failed record, no dead letter, no connection made, and the log
 * says why. The loop says so too (crl-not-yet-valid). A current CRL
 * published (`rdx pki crl`, the same CRL number) lets the case through.
 */
static void test_node_sender_holds_cases_while_its_crl_is_not_yet_valid(void **state)
{
    struct solo *solo = *state;
    struct fake_rx x = {.max_attempts = 2};
    char crl[4300], id[40];
    fake_rx_start(solo, &x);
    snprintf(crl, sizeof crl, "%s/crl.pem", x.pki);
    write_future_crl(x.pki, crl, 2, 86400);
    fake_rx_send(solo, &x, "future.hea", 21, id);
    const char *why[] = {"this node's CRL ", "crl.pem is not yet valid (from ",
                         "so hub cannot be checked", NULL};
    expect_held(&x, id, why);
    assert_true(rdx_test_file_contains(x.log, "is this node's clock or the CA's wrong?"));
    /* The loop's watch has seen it too. */
    wait_audit(x.db, "crl-not-yet-valid", "is not yet valid (from", 1);
    assert_true(rdx_test_file_contains(x.log, "every new connection, in and out, is refused until "
                                              "then"));
    /* A current CRL (number 2 again: not older) lets the case go at the next held try. */
    const char *pub[] = {"pki", "crl", "--dir", x.pki, NULL};
    rdx_ok(pub);
    fake_rx_take(&x, id);
    assert_int_equal(rdx_test_sql(x.db, "SELECT attempts FROM outbox WHERE case_id=?1", id), 1);
    fake_rx_stop(solo, &x);
}

/*
 * The receiver's CRL is not valid yet: as with an expired CRL, it fails
 * closed. The connection open is closed (connection-closed, "this node's CRL
 * is not valid until ..."), a new one is refused ("CRL is not yet valid"),
 * with an error and a crl-not-yet-valid record; a current CRL serves members
 * again (crl-renewed).
 */
static void test_node_receiver_fails_closed_while_its_crl_is_not_yet_valid(void **state)
{
    struct solo *solo = *state;
    char pki[4000], crl[4300], ini[4300], data[4000], text[2048], c[4300], k[4300];
    struct world hw, *w = &hw;
    solo_hub_world(solo, w, pki, crl, ini, data);
    rdx_buf c1;
    crl_take(pki, &c1);
    put_crl(crl, c1.data, c1.len);
    rdx_buf_free(&c1);
    snprintf(text, sizeof text,
             "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = pki/certs/hub.crt\n"
             "key = pki/private/hub.key\nca = pki/ca.crt\ncrl = pki/hub-crl.pem\ndata = hub\n\n"
             "[allow.send]\nclinic = ecg\n");
    rdx_test_write_text(ini, text);
    w->hub_port = node_start(ini, w->hub_log, data, 0, &solo->hub);
    struct peer live, p;
    rdx_transport_frame f;
    peer_served(&live, w, "clinic");
    write_future_crl(pki, crl, 2, 86400);
    /* The next connection makes the hub look at the file at once (the watch would, within 5 s). */
    snprintf(c, sizeof c, "%s/certs/clinic.crt", pki);
    snprintf(k, sizeof k, "%s/private/clinic.key", pki);
    expect_refused(w, c, k, "CRL is not yet valid, claims institution clinic");
    wait_audit(w->hub_db, "crl-not-yet-valid", "is not yet valid (from", 1);
    wait_audit(w->hub_db, "connection-closed", "this node's CRL is not valid until", 1);
    assert_int_equal(peer_read(&live, &f), -1); /* closed by the hub */
    peer_close(&live);
    assert_true(rdx_test_file_contains(w->hub_log, "hub-crl.pem is not yet valid (from "));
    /* The CA publishes a current one (number 2, as the CA's database counts). */
    const char *pub[] = {"pki", "crl", "--dir", pki, NULL};
    rdx_ok(pub);
    crl_take(pki, &c1);
    put_crl(crl, c1.data, c1.len);
    rdx_buf_free(&c1);
    peer_served(&p, w, "clinic"); /* looked at by the accept: served again */
    peer_close(&p);
    wait_audit(w->hub_db, "crl-renewed", "is valid now", 1);
    assert_int_equal(audit_count(w->hub_db, "crl-not-yet-valid", NULL), 1);
    rdx_test_stop_node(solo->hub);
    solo->hub = 0;
    verify_chain(w->hub_db);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_refuses_no_certificate),
        cmocka_unit_test(test_node_refuses_other_ca),
        cmocka_unit_test(test_node_refuses_expired),
        cmocka_unit_test(test_node_refuses_revoked),
        cmocka_unit_test(test_node_refuses_policy_and_dead_letters),
        cmocka_unit_test(test_node_delivers_byte_identical),
        cmocka_unit_test(test_node_duplicate_applied_once),
        cmocka_unit_test(test_node_small_items_spill_and_survive_a_crash),
        cmocka_unit_test(test_node_resumes_and_rejects_corrupt_chunk),
        cmocka_unit_test(test_node_checks_link_values),
        cmocka_unit_test(test_node_chunk_after_a_bad_one_never_counts),
        cmocka_unit_test(test_node_hash_nice),
        cmocka_unit_test(test_node_new_connection_takes_over_a_case),
        cmocka_unit_test(test_node_refuses_short_middle_chunk),
        cmocka_unit_test(test_node_refuses_forged_sender_and_bad_frames),
        cmocka_unit_test(test_node_timeouts_close_silent_peers),
        cmocka_unit_test(test_node_reloads_crl_after_revocation),
        cmocka_unit_test_setup_teardown(test_node_expired_crl_fails_closed_until_renewed,
                                        solo_setup, solo_teardown),
        cmocka_unit_test(test_node_revocation_closes_live_connection),
        cmocka_unit_test(test_node_revocation_mid_transfer_no_ack),
        cmocka_unit_test(test_node_bad_new_crl_keeps_the_old),
        cmocka_unit_test(test_node_older_crl_keeps_the_newer),
        cmocka_unit_test_setup_teardown(test_node_sender_drops_kept_link_to_revoked_peer,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_stops_mid_item_for_revoked_peer,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_holds_cases_while_its_crl_is_corrupt,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_holds_cases_while_its_key_is_bad,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_refuses_an_older_crl, solo_setup,
                                        solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_refuses_a_crl_older_than_the_loops,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_drops_kept_link_when_crl_expires,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_crl_rollback_refused_across_restart, solo_setup,
                                        solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_crl_mark_fresh_and_old_node_db, solo_setup,
                                        solo_teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_holds_cases_while_its_crl_is_not_yet_valid,
                                        solo_setup, solo_teardown),
        cmocka_unit_test_setup_teardown(
            test_node_receiver_fails_closed_while_its_crl_is_not_yet_valid, solo_setup,
            solo_teardown),
        cmocka_unit_test(test_node_idle_timeout),
        cmocka_unit_test(test_node_bounded_output_to_a_peer_that_does_not_read),
        cmocka_unit_test(test_node_200_concurrent_peers),
        cmocka_unit_test(test_node_receiver_killed_mid_transfer_resumes),
        cmocka_unit_test(test_node_sender_killed_mid_transfer_resumes),
        cmocka_unit_test(test_node_storage_failure_refused_cleanly),
        cmocka_unit_test(test_node_cli_errors),
        cmocka_unit_test(test_node_outbox_kick_reaches_only_a_running_node),
    };
    return cmocka_run_group_tests_name("transport_node", tests, world_setup, world_teardown);
}
