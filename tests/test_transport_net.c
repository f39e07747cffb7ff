/*
 * Networks of real nodes on loopback with certificates made by the PKI code:
 * three `rdx node serve` processes exchanging cases both ways, a 200 MB
 * case, the bounded load test (100 concurrent sending nodes, 20 cases each,
 * all 2,000 arriving exactly once) and a real full disk (a small tmpfs
 * mounted over the hub's inbox; skipped with a message where mounting is not
 * allowed). Waits are bounded polls of the nodes' own state, never timings.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/nodeutil.h"
#include "support/testutil.h"

struct net {
    char *dir;
    char pki[4200];
    char mounted[4300]; /* a tmpfs the disk-full test mounted, unmounted in teardown */
};

/*
 * Stop a node and require it gone within limit_ms: a bound far above a
 * normal stop, and below the read timeout a stop must not wait out.
 */
static void stop_node_within(pid_t pid, long limit_ms)
{
    int status = 0;
    kill(pid, SIGTERM);
    for (long t = 0; t < limit_ms; t += 25) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
            return;
        }
        rdx_test_sleep_ms(25);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("node %d did not stop within %ld ms", (int)pid, limit_ms);
}

/* a and b hold the same bytes (any size: rdx_test_files_equal streams). */
static void assert_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    assert_int_equal(stat(a, &sa), 0);
    assert_int_equal(stat(b, &sb), 0);
    assert_int_equal((long long)sa.st_size, (long long)sb.st_size);
    assert_true(rdx_test_files_equal(a, b));
}

static void fetch_case(const char *ini, const char *id, const char *out)
{
    const char *argv[] = {"case", "fetch", "--config", ini, "-o", out, id, NULL};
    struct rdx_run r;
    assert_int_equal(mkdir(out, 0700), 0);
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    if (r.exit_code != 0) {
        fail_msg("case fetch: %s", r.err);
    }
    rdx_run_free(&r);
}

/* The node's audit chain must verify after everything it did. */
static void verify_chain(const char *db_path)
{
    sqlite3 *db = NULL;
    long long n = 0, bad = 0;
    rdx_error err;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (rdx_tp_audit_verify(db, &n, &bad, &err) != RDX_OK) {
        fail_msg("%s: %s", db_path, err.msg);
    }
    assert_true(n > 0);
    sqlite3_close(db);
}

static int net_setup(void **state)
{
    struct net *w = calloc(1, sizeof *w);
    rdx_error err;
    w->dir = rdx_test_tmpdir();
    snprintf(w->pki, sizeof w->pki, "%s/pki", w->dir);
    rdx_transport_ca_cfg ca = {.dir = w->pki, .network = "Nanjing Test Network"};
    if (rdx_transport_ca_create(&ca, &err) != RDX_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    *state = w;
    return 0;
}

static int net_teardown(void **state)
{
    struct net *w = *state;
    if (w->mounted[0] != '\0') {
        (void)umount2(w->mounted, MNT_DETACH); /* the test failed before it unmounted */
    }
    rdx_test_rmrf_unless_kept(w->dir);
    free(w->dir);
    free(w);
    return 0;
}

/*
 * A node's INI: id, where it listens (port 0: any), its peers as "id =
 * host:port" lines, policy, its read timeout and delivery threads (0: the
 * default).
 */
static void node_ini_full(const struct net *w, const char *id, unsigned port, const char *peers,
                          const char *allow, unsigned read_ms, unsigned senders, char *ini,
                          size_t inisz)
{
    char text[8192], threads[32] = "";
    if (senders > 0) {
        snprintf(threads, sizeof threads, "senders = %u\n", senders);
    }
    snprintf(ini, inisz, "%s/%s.ini", w->dir, id);
    snprintf(text, sizeof text,
             "[node]\nid = %s\nlisten = 127.0.0.1:%u\ncert = pki/certs/%s.crt\n"
             "key = pki/private/%s.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = %s\n"
             "chunk_size = 4194304\nread_timeout_ms = %u\nretry_base_ms = 100\n"
             "retry_max_ms = 400\nmax_attempts = 200\n%s\n[peers]\n%s\n[allow.send]\n%s\n",
             id, port, id, id, id, read_ms, threads, peers, allow);
    rdx_test_write_text(ini, text);
}

static void node_ini_at(const struct net *w, const char *id, unsigned port, const char *peers,
                        const char *allow, unsigned read_ms, char *ini, size_t inisz)
{
    node_ini_full(w, id, port, peers, allow, read_ms, 0, ini, inisz);
}

static void node_ini(const struct net *w, const char *id, const char *peers, const char *allow,
                     char *ini, size_t inisz)
{
    node_ini_at(w, id, 0, peers, allow, 10000, ini, inisz);
}

static unsigned start(const struct net *w, const char *id, const char *ini, pid_t *pid)
{
    char data[4300], log[4300];
    snprintf(data, sizeof data, "%s/%s", w->dir, id);
    snprintf(log, sizeof log, "%s/%s.log", w->dir, id);
    *pid = rdx_test_spawn_node(ini, log);
    return rdx_test_wait_port(data, 20000);
}

/*
 * A hub that accepts `allow` from the clinic, and the clinic with the hub as
 * its one peer, both started. The inis are written as DIR/ID.ini.
 */
static void start_pair(const struct net *w, const char *hub_id, const char *cl_id,
                       const char *allow, size_t inisz, char *hub_ini, pid_t *hub, char *cl_ini,
                       pid_t *cl)
{
    char peers[128], rule[160];
    snprintf(rule, sizeof rule, "%s = %s", cl_id, allow);
    node_ini(w, hub_id, "", rule, hub_ini, inisz);
    unsigned port = start(w, hub_id, hub_ini, hub);
    snprintf(peers, sizeof peers, "%s = 127.0.0.1:%u\n", hub_id, port);
    node_ini(w, cl_id, peers, "", cl_ini, inisz);
    (void)start(w, cl_id, cl_ini, cl);
}

/* ---- three nodes ------------------------------------------------------------ */

static void test_net_three_nodes_both_ways_and_200mb(void **state)
{
    struct net *w = *state;
    char hub_ini[4300], ma_ini[4300], zj_ini[4300], peers[512];
    char hub_db[4300], ma_db[4300], zj_db[4300];
    pid_t hub, ma, zj;
    rdx_test_issue(w->pki, "nj-hub", "Zhenjiang", 0, 0);
    rdx_test_issue(w->pki, "mas-clinic", "Zhenjiang", 0, 0);
    rdx_test_issue(w->pki, "zj-lab", "Zhenjiang", 0, 0);
    /* The hub first (its port goes into the others' [peers]), then the two members. */
    node_ini(w, "nj-hub", "", "mas-clinic = ecg, dicom\nzj-lab = lab-result", hub_ini,
             sizeof hub_ini);
    unsigned hub_port = start(w, "nj-hub", hub_ini, &hub);
    snprintf(peers, sizeof peers, "nj-hub = 127.0.0.1:%u\n", hub_port);
    node_ini(w, "mas-clinic", peers, "nj-hub = report", ma_ini, sizeof ma_ini);
    node_ini(w, "zj-lab", peers, "nj-hub = lab-order", zj_ini, sizeof zj_ini);
    unsigned ma_port = start(w, "mas-clinic", ma_ini, &ma);
    unsigned zj_port = start(w, "zj-lab", zj_ini, &zj);
    /* Now the hub knows where the members listen. */
    rdx_test_stop_node(hub);
    char data[4300];
    snprintf(data, sizeof data, "%s/nj-hub/node.port", w->dir);
    unlink(data);
    snprintf(peers, sizeof peers, "mas-clinic = 127.0.0.1:%u\nzj-lab = 127.0.0.1:%u\n", ma_port,
             zj_port);
    char text[8192];
    snprintf(text, sizeof text,
             "[node]\nid = nj-hub\nlisten = 127.0.0.1:%u\ncert = pki/certs/nj-hub.crt\n"
             "key = pki/private/nj-hub.key\nca = pki/ca.crt\ncrl = pki/crl.pem\ndata = nj-hub\n"
             "chunk_size = 4194304\nread_timeout_ms = 10000\nretry_base_ms = 100\n"
             "retry_max_ms = 400\n\n[peers]\n%s\n[allow.send]\nmas-clinic = ecg, dicom\n"
             "zj-lab = lab-result\n",
             hub_port, peers);
    rdx_test_write_text(hub_ini, text);
    assert_int_equal(start(w, "nj-hub", hub_ini, &hub), hub_port);
    snprintf(hub_db, sizeof hub_db, "%s/nj-hub/node.db", w->dir);
    snprintf(ma_db, sizeof ma_db, "%s/mas-clinic/node.db", w->dir);
    snprintf(zj_db, sizeof zj_db, "%s/zj-lab/node.db", w->dir);

    /* A 200 MB study from the clinic, a lab result from the lab, an order and a report back. */
    char study[4300], result[4300], order[4300], report[4300];
    char id_study[40], id_result[40], id_order[40], id_report[40];
    const size_t big = 200u * 1000u * 1000u;
    snprintf(study, sizeof study, "%s/ct-study.dcm", w->dir);
    snprintf(result, sizeof result, "%s/oru.hl7", w->dir);
    snprintf(order, sizeof order, "%s/orm.hl7", w->dir);
    snprintf(report, sizeof report, "%s/report.txt", w->dir);
    rdx_test_make_file(study, big, 7);
    rdx_test_write_text(result, "MSH|^~\\&|LIS|ZJLAB|RDX|NJHUB|20261201||ORU^R01|9|P|2.5.1\r");
    rdx_test_write_text(order, "MSH|^~\\&|RDX|NJHUB|LIS|ZJLAB|20261201||ORM^O01|10|P|2.5.1\r");
    rdx_test_write_text(report, "CT chest: no acute findings. Reported at the Nanjing hub.\n");
    rdx_test_send_case(ma_ini, "nj-hub", "dicom", (const char *const[]){study, NULL}, id_study);
    rdx_test_send_case(zj_ini, "nj-hub", "lab-result", (const char *const[]){result, NULL},
                       id_result);
    rdx_test_send_case(hub_ini, "zj-lab", "lab-order", (const char *const[]){order, NULL},
                       id_order);
    rdx_test_send_case(hub_ini, "mas-clinic", "report", (const char *const[]){report, NULL},
                       id_report);
    const char *acked = "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'";
    rdx_test_wait_sql(ma_db, acked, id_study, 1, 120000);
    rdx_test_wait_sql(zj_db, acked, id_result, 1, 20000);
    rdx_test_wait_sql(hub_db, acked, id_order, 1, 20000);
    rdx_test_wait_sql(hub_db, acked, id_report, 1, 20000);
    /*
     * On a clean network the study goes in one attempt: a receiver that
     * stopped reading in the middle (and so timed the sender out) would
     * still deliver it, by resuming, but only on the second.
     */
    assert_int_equal(rdx_test_sql(ma_db, "SELECT attempts FROM outbox WHERE case_id=?1", id_study),
                     1);

    /* Every item byte-identical at the far end, each case delivered once. */
    char out[4300], got[4400];
    snprintf(out, sizeof out, "%s/out-study", w->dir);
    fetch_case(hub_ini, id_study, out);
    snprintf(got, sizeof got, "%s/ct-study.dcm", out);
    assert_same_file(study, got);
    unlink(got);
    unlink(study);
    snprintf(out, sizeof out, "%s/out-result", w->dir);
    fetch_case(hub_ini, id_result, out);
    snprintf(got, sizeof got, "%s/oru.hl7", out);
    assert_same_file(result, got);
    snprintf(out, sizeof out, "%s/out-order", w->dir);
    fetch_case(zj_ini, id_order, out);
    snprintf(got, sizeof got, "%s/orm.hl7", out);
    assert_same_file(order, got);
    snprintf(out, sizeof out, "%s/out-report", w->dir);
    fetch_case(ma_ini, id_report, out);
    snprintf(got, sizeof got, "%s/report.txt", out);
    assert_same_file(report, got);
    assert_int_equal(
        rdx_test_sql(hub_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL), 2);
    assert_int_equal(rdx_test_sql(zj_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL),
                     1);
    assert_int_equal(rdx_test_sql(ma_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL),
                     1);
    /* The policy holds in both directions: the lab may not send the hub an ECG. */
    char ecg[4300], id_ecg[40];
    snprintf(ecg, sizeof ecg, "%s/100.hea", w->dir);
    rdx_test_write_text(ecg, "100 2 360 650000\n");
    rdx_test_send_case(zj_ini, "nj-hub", "ecg", (const char *const[]){ecg, NULL}, id_ecg);
    rdx_test_wait_sql(zj_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='dead'",
                      id_ecg, 1, 20000);
    rdx_test_stop_node(ma);
    rdx_test_stop_node(zj);
    rdx_test_stop_node(hub);
    verify_chain(hub_db);
    verify_chain(ma_db);
    verify_chain(zj_db);
}

/* ---- the bounded load test ---------------------------------------------------- */

enum { SENDERS = 100, PER_SENDER = 20 };

/* A node run in this process on its own thread: the load test's senders, a hub to look inside. */
struct local_node {
    rdx_transport_config *cfg;
    rdx_transport_node *node;
    const char *dir;
    pthread_t th;
    int rc;
    char err[4800];
};

/* One sending institution: it queues its 20 cases, then runs its node. */
static void *sender_main(void *arg)
{
    struct local_node *s = arg;
    rdx_error err;
    char item[4300];
    s->rc = -1;
    for (int k = 0; k < PER_SENDER; k++) {
        char cid[RDX_TRANSPORT_CASE_ID_LEN], text[256];
        snprintf(item, sizeof item, "%s/%s-%02d.hl7", s->dir, s->cfg->id, k);
        snprintf(text, sizeof text,
                 "MSH|^~\\&|LIS|%s|RDX|HUB|20261201||ORU^R01|%d|P|2.5.1\rOBX|1|NM|GLU||%d\r",
                 s->cfg->id, k, 40 + k);
        FILE *f = fopen(item, "w");
        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
            snprintf(s->err, sizeof s->err, "%s: cannot write", item);
            return NULL;
        }
        const char *files[] = {item};
        if (rdx_transport_case_queue(s->cfg, "load-hub", RDX_KIND_LAB_RESULT, files, 1, cid,
                                     &err) != RDX_OK) {
            snprintf(s->err, sizeof s->err, "queue: %s", err.msg);
            return NULL;
        }
        unlink(item);
    }
    if (rdx_transport_node_run(s->node, 0, &err) != RDX_OK) {
        snprintf(s->err, sizeof s->err, "run: %s", err.msg);
        return NULL;
    }
    s->rc = 0;
    return NULL;
}

static void test_net_load_100_senders_20_cases_exactly_once(void **state)
{
    struct net *w = *state;
    char hub_ini[4300], hub_db[4300], peers[128], id[64], ini[4300], item[4300];
    pid_t hub;
    rdx_test_issue(w->pki, "load-hub", "Zhenjiang", 0, 0);
    node_ini(w, "load-hub", "", "* = lab-result", hub_ini, sizeof hub_ini);
    unsigned port = start(w, "load-hub", hub_ini, &hub);
    snprintf(hub_db, sizeof hub_db, "%s/load-hub/node.db", w->dir);
    snprintf(peers, sizeof peers, "load-hub = 127.0.0.1:%u\n", port);
    struct local_node *s = calloc(SENDERS, sizeof *s);
    assert_non_null(s);
    /* Each sender is a whole node (its own certificate, store, event loop and delivery). */
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(w->pki, &ca, &err), RDX_OK);
    for (int i = 0; i < SENDERS; i++) {
        snprintf(id, sizeof id, "lab-%03d", i);
        rdx_transport_issue_cfg ic = {.institution = id, .name = id, .city = "Yangzhou"};
        if (rdx_transport_ca_issue(ca, &ic, NULL, &err) != RDX_OK) {
            fail_msg("issue %s: %s", id, err.msg);
        }
        node_ini(w, id, peers, "", ini, sizeof ini);
        if (rdx_transport_config_load(ini, &s[i].cfg, &err) != RDX_OK ||
            rdx_transport_node_new(s[i].cfg, NULL, &s[i].node, &err) != RDX_OK) {
            fail_msg("%s: %s", ini, err.msg);
        }
        s[i].dir = w->dir;
    }
    rdx_transport_ca_free(ca);
    /* All 100 queue and send at once. */
    for (int i = 0; i < SENDERS; i++) {
        assert_int_equal(pthread_create(&s[i].th, NULL, sender_main, &s[i]), 0);
    }
    rdx_test_wait_sql(hub_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL,
                      SENDERS * PER_SENDER, 120000);
    /* Every sender saw every one of its cases acknowledged. */
    for (int i = 0; i < SENDERS; i++) {
        char db[4400];
        snprintf(db, sizeof db, "%s/%s/node.db", w->dir, s[i].cfg->id);
        rdx_test_wait_sql(db, "SELECT count(*) FROM outbox WHERE state='acked'", NULL, PER_SENDER,
                          60000);
    }
    for (int i = 0; i < SENDERS; i++) {
        rdx_transport_node_stop(s[i].node);
    }
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(s[i].th, NULL);
        if (s[i].rc != 0) {
            fail_msg("sender %d: %s", i, s[i].err);
        }
        rdx_transport_node_free(s[i].node);
        rdx_transport_config_free(s[i].cfg);
    }
    /*
     * Small items reach node.db with the group commit and their files follow
     * from the hub's spill thread: soon every file is there and no row is left.
     * The hub must still run meanwhile: a stop leaves the rows it has not
     * written yet for the next start (by design), so a stop right after the
     * last ACK left rows here, at random.
     */
    for (int tries = 0; tries < 1200; tries++) {
        if (rdx_test_sql(hub_db, "SELECT count(*) FROM inbox_blobs", NULL) == 0) {
            break;
        }
        rdx_test_sleep_ms(50);
    }
    long long left = rdx_test_sql(hub_db, "SELECT count(*) FROM inbox_blobs", NULL);
    if (left != 0) {
        print_message(
            "%lld small items not spilled: %lld of incomplete cases, %lld marked "
            "written; see %s/load-hub.log\n",
            left,
            rdx_test_sql(hub_db,
                         "SELECT count(*) FROM inbox_blobs b JOIN inbox i ON i.sender = "
                         "b.sender AND i.case_id = b.case_id WHERE i.state != 'complete'",
                         NULL),
            rdx_test_sql(hub_db, "SELECT count(*) FROM inbox_blobs WHERE spilled > 0", NULL),
            w->dir);
        char logp[4300], line[1024];
        snprintf(logp, sizeof logp, "%s/load-hub.log", w->dir);
        FILE *lf = fopen(logp, "r");
        for (int shown = 0; lf != NULL && shown < 20 && fgets(line, sizeof line, lf) != NULL;) {
            if (strstr(line, "spill") != NULL || strstr(line, "error") != NULL ||
                strstr(line, "small item") != NULL) {
                print_message("  %s", line);
                shown++;
            }
        }
        if (lf != NULL) {
            fclose(lf);
        }
    }
    rdx_test_stop_node(hub);
    free(s);
    /* Exactly once: 2,000 distinct cases, each received once, from 100 senders, 20 each. */
    assert_int_equal(rdx_test_sql(hub_db, "SELECT count(*) FROM inbox", NULL),
                     SENDERS * PER_SENDER);
    assert_int_equal(
        rdx_test_sql(hub_db, "SELECT count(*) FROM audit WHERE event='case-received'", NULL),
        SENDERS * PER_SENDER);
    assert_int_equal(rdx_test_sql(hub_db,
                                  "SELECT count(*) FROM (SELECT sender FROM inbox GROUP BY sender "
                                  "HAVING count(*) = 20)",
                                  NULL),
                     SENDERS);
    assert_int_equal(rdx_test_sql(hub_db, "SELECT max(offers) FROM inbox", NULL), 1);
    /* The item files are all there, each the size its manifest says. */
    assert_int_equal(rdx_test_sql(hub_db, "SELECT count(*) FROM inbox_items", NULL),
                     SENDERS * PER_SENDER);
    assert_int_equal(left, 0);
    snprintf(item, sizeof item, "%s/load-hub/inbox/lab-042", w->dir);
    struct stat sb;
    assert_int_equal(stat(item, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    verify_chain(hub_db);
}

/* ---- a real full disk ---------------------------------------------------------- */

static void test_net_disk_full_refused_cleanly_then_delivered(void **state)
{
    struct net *w = *state;
    char hub_ini[4300], cl_ini[4300], hub_db[4300], cl_db[4300], inbox[4300];
    char study[4300], id[40];
    pid_t hub, cl;
    rdx_test_issue(w->pki, "full-hub", "Zhenjiang", 0, 0);
    rdx_test_issue(w->pki, "yz-clinic", "Zhenjiang", 0, 0);
    snprintf(inbox, sizeof inbox, "%s/full-hub/inbox", w->dir);
    snprintf(hub_db, sizeof hub_db, "%s/full-hub", w->dir);
    assert_int_equal(mkdir(hub_db, 0700), 0);
    assert_int_equal(mkdir(inbox, 0700), 0);
    /* The hub's inbox is a 4 MiB file system of its own. */
    if (mount("tmpfs", inbox, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700") != 0) {
        print_message("skipped: cannot mount a small tmpfs (%s); the RLIMIT_FSIZE test in "
                      "test_transport_node covers a failing write\n",
                      strerror(errno));
        skip();
    }
    snprintf(w->mounted, sizeof w->mounted, "%s", inbox);
    start_pair(w, "full-hub", "yz-clinic", "dicom", sizeof hub_ini, hub_ini, &hub, cl_ini, &cl);
    snprintf(hub_db, sizeof hub_db, "%s/full-hub/node.db", w->dir);
    snprintf(cl_db, sizeof cl_db, "%s/yz-clinic/node.db", w->dir);
    snprintf(study, sizeof study, "%s/mr-series.dcm", w->dir);
    rdx_test_make_file(study, 10u << 20, 3);
    rdx_test_send_case(cl_ini, "full-hub", "dicom", (const char *const[]){study, NULL}, id);
    rdx_test_wait_sql(hub_db,
                      "SELECT count(*) > 0 FROM audit WHERE event='case-refused' AND "
                      "instr(detail, 'No space left') > 0",
                      NULL, 1, 30000);
    rdx_test_wait_sql(cl_db,
                      "SELECT count(*) > 0 FROM audit WHERE event='case-send-failed' AND "
                      "instr(detail, 'No space left') > 0",
                      NULL, 1, 30000);
    /*
     * Refused cleanly: nothing complete, and the stored bytes are exactly the
     * durable ones. That holds at rest, not while the sender's next attempt
     * is under way (its chunks are on disk before the group commit records
     * them durable), and the sender retries within ~100 ms: so the sender
     * stops first, and the hub is looked at once its last connection is done.
     */
    rdx_test_stop_node(cl);
    assert_int_equal(
        rdx_test_sql(hub_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL), 0);
    char item[4500];
    struct stat sb;
    snprintf(item, sizeof item, "%s/yz-clinic/%s/0", inbox, id);
    long long size = -1, durable = -2;
    for (int tries = 0; tries < 400 && size != durable; tries++) {
        durable = rdx_test_sql(hub_db, "SELECT coalesce(sum(durable), 0) FROM inbox_items", NULL);
        size = stat(item, &sb) == 0 ? (long long)sb.st_size : durable;
        if (size != durable) {
            rdx_test_sleep_ms(25);
        }
    }
    assert_int_equal(size, durable);
    /* The sender keeps it, across its restart too. */
    assert_int_equal(rdx_test_sql(cl_db,
                                  "SELECT count(*) FROM outbox WHERE case_id=?1 AND "
                                  "state='queued'",
                                  id),
                     1);
    (void)start(w, "yz-clinic", cl_ini, &cl);
    /* Room again (the same file system, grown): it arrives, byte-identical. */
    assert_int_equal(
        mount("tmpfs", inbox, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, "size=64m,mode=0700"), 0);
    rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id,
                      1, 60000);
    char out[4300], got[4400];
    snprintf(out, sizeof out, "%s/out-full", w->dir);
    fetch_case(hub_ini, id, out);
    snprintf(got, sizeof got, "%s/mr-series.dcm", out);
    assert_same_file(study, got);
    rdx_test_stop_node(cl);
    rdx_test_stop_node(hub);
    assert_int_equal(umount(inbox), 0);
    w->mounted[0] = '\0';
    verify_chain(hub_db);
}

/* ---- a silent peer does not hold up the others --------------------------------- */

/* A TCP listener on 127.0.0.1 that accepts and never answers: a peer that is up but silent. */
static int silent_listen(unsigned *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Whether the peer still holds connection fd open: read what it sent; 0 on its FIN or reset. */
static int still_open(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            continue; /* its ClientHello, unanswered */
        }
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

static void test_net_silent_peer_does_not_hold_up_others(void **state)
{
    struct net *w = *state;
    char hub_ini[4300], cl_ini[4300], mute_ini[4300], peers[256], file[4300];
    char cl_db[4300], hub_db[4300], mute_db[4300], mute_ids[2][40], id[40];
    pid_t hub, cl, mute;
    unsigned mute_port;
    rdx_test_issue(w->pki, "sp-hub", "Zhenjiang", 0, 0);
    rdx_test_issue(w->pki, "sp-clinic", "Zhenjiang", 0, 0);
    rdx_test_issue(w->pki, "sp-mute", "Zhenjiang", 0, 0);
    int lfd = silent_listen(&mute_port);
    node_ini(w, "sp-hub", "", "sp-clinic = ecg", hub_ini, sizeof hub_ini);
    unsigned hub_port = start(w, "sp-hub", hub_ini, &hub);
    /*
     * The clinic waits a minute for an answer: far longer than the live
     * peer's cases take, so the silent peer's connection is certainly still
     * held when they are acknowledged.
     */
    snprintf(peers, sizeof peers, "sp-hub = 127.0.0.1:%u\nsp-mute = 127.0.0.1:%u\n", hub_port,
             mute_port);
    node_ini_at(w, "sp-clinic", 0, peers, "", 60000, cl_ini, sizeof cl_ini);
    (void)start(w, "sp-clinic", cl_ini, &cl);
    snprintf(cl_db, sizeof cl_db, "%s/sp-clinic/node.db", w->dir);
    snprintf(hub_db, sizeof hub_db, "%s/sp-hub/node.db", w->dir);
    snprintf(mute_db, sizeof mute_db, "%s/sp-mute/node.db", w->dir);
    snprintf(file, sizeof file, "%s/sp-ecg.bin", w->dir);
    rdx_test_make_file(file, 3000, 11);
    /* Two cases for the silent peer first: a delivery thread connects and waits for its answer. */
    rdx_test_send_case(cl_ini, "sp-mute", "ecg", (const char *const[]){file, NULL}, mute_ids[0]);
    rdx_test_send_case(cl_ini, "sp-mute", "ecg", (const char *const[]){file, NULL}, mute_ids[1]);
    struct pollfd p = {lfd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 30000), 1);
    int held = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(held >= 0);
    /* Then three for the live hub: delivered while that connection hangs. */
    for (int i = 0; i < 3; i++) {
        rdx_test_send_case(cl_ini, "sp-hub", "ecg", (const char *const[]){file, NULL}, id);
    }
    rdx_test_wait_sql(cl_db,
                      "SELECT count(*) FROM outbox WHERE recipient='sp-hub' AND state='acked'",
                      NULL, 3, 30000);
    assert_int_equal(
        rdx_test_sql(hub_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL), 3);
    assert_true(still_open(held));
    /* The silent peer's cases wait, in their first attempt, on that one connection only. */
    assert_int_equal(rdx_test_sql(cl_db,
                                  "SELECT count(*) FROM outbox WHERE recipient='sp-mute' AND "
                                  "state='queued' AND attempts=0",
                                  NULL),
                     2);
    p.revents = 0;
    assert_int_equal(poll(&p, 1, 0), 0); /* no second connection: one thread has this peer */
    /*
     * A stop does not wait for the silent peer (a minute of read timeout):
     * it cuts the connection, and the cut attempt is not counted.
     */
    stop_node_within(cl, 20000);
    assert_false(still_open(held));
    assert_int_equal(rdx_test_sql(cl_db,
                                  "SELECT count(*) FROM outbox WHERE recipient='sp-mute' AND "
                                  "state='queued' AND attempts=0",
                                  NULL),
                     2);
    assert_int_equal(
        rdx_test_sql(cl_db, "SELECT count(*) FROM audit WHERE event='case-send-failed'", NULL), 0);
    /* The silent peer goes away: the attempts fail, are counted and retried with backoff. */
    close(held);
    close(lfd);
    (void)start(w, "sp-clinic", cl_ini, &cl);
    rdx_test_wait_sql(
        cl_db,
        "SELECT count(*) FROM outbox WHERE recipient='sp-mute' AND state='queued' AND "
        "attempts >= 1",
        NULL, 2, 30000);
    assert_true(rdx_test_sql(cl_db,
                             "SELECT count(*) FROM audit WHERE event='case-send-failed' AND "
                             "object=?1",
                             mute_ids[0]) >= 1);
    /* Now a real node answers on that port: the retries, due by the timer alone, deliver. */
    node_ini_at(w, "sp-mute", mute_port, "", "sp-clinic = ecg", 10000, mute_ini, sizeof mute_ini);
    (void)start(w, "sp-mute", mute_ini, &mute);
    for (int i = 0; i < 2; i++) {
        rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'",
                          mute_ids[i], 1, 60000);
        assert_true(
            rdx_test_sql(cl_db, "SELECT attempts FROM outbox WHERE case_id=?1", mute_ids[i]) >= 2);
    }
    assert_int_equal(
        rdx_test_sql(mute_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL), 2);
    /* No case went out twice: each was offered once at each receiver. */
    assert_int_equal(rdx_test_sql(hub_db, "SELECT max(offers) FROM inbox", NULL), 1);
    assert_int_equal(rdx_test_sql(mute_db, "SELECT max(offers) FROM inbox", NULL), 1);
    rdx_test_stop_node(cl);
    rdx_test_stop_node(mute);
    rdx_test_stop_node(hub);
    verify_chain(cl_db);
}

/* ---- more peers than delivery threads ------------------------------------------------ */

#define FAN_PEERS 5
#define FAN_CASES 12

/*
 * One node with two delivery threads and five peers, all with cases at
 * once: threads move from peer to peer (taking the one waiting longest),
 * every case arrives exactly once, and no case is ever offered twice.
 */
static void test_net_more_peers_than_threads_exactly_once(void **state)
{
    struct net *w = *state;
    char ini[FAN_PEERS][4300], cl_ini[4300], peers[1024], db[4300], file[4300], id[40], name[32];
    pid_t hub[FAN_PEERS], cl;
    size_t used = 0;
    rdx_test_issue(w->pki, "fan-clinic", "Zhenjiang", 0, 0);
    for (int i = 0; i < FAN_PEERS; i++) {
        snprintf(name, sizeof name, "fan-hub-%d", i);
        rdx_test_issue(w->pki, name, "Zhenjiang", 0, 0);
        node_ini(w, name, "", "fan-clinic = lab-result", ini[i], sizeof ini[i]);
        unsigned port = start(w, name, ini[i], &hub[i]);
        used +=
            (size_t)snprintf(peers + used, sizeof peers - used, "%s = 127.0.0.1:%u\n", name, port);
    }
    node_ini_full(w, "fan-clinic", 0, peers, "", 10000, 2, cl_ini, sizeof cl_ini);
    /* Queued while the clinic is down, so that every peer has cases due at its start. */
    char data[4300];
    snprintf(data, sizeof data, "%s/fan-clinic", w->dir);
    assert_int_equal(mkdir(data, 0700), 0);
    snprintf(file, sizeof file, "%s/fan-result.hl7", w->dir);
    rdx_test_write_text(file, "MSH|^~\\&|LIS|ZJ|HIS|NJ|20261201||ORU^R01|1|P|2.5.1\r");
    for (int c = 0; c < FAN_CASES; c++) {
        for (int i = 0; i < FAN_PEERS; i++) {
            snprintf(name, sizeof name, "fan-hub-%d", i);
            rdx_test_send_case(cl_ini, name, "lab-result", (const char *const[]){file, NULL}, id);
        }
    }
    (void)start(w, "fan-clinic", cl_ini, &cl);
    snprintf(db, sizeof db, "%s/fan-clinic/node.db", w->dir);
    rdx_test_wait_sql(db, "SELECT count(*) FROM outbox WHERE state='acked'", NULL,
                      FAN_PEERS * FAN_CASES, 60000);
    assert_int_equal(rdx_test_sql(db, "SELECT max(attempts) FROM outbox", NULL), 1);
    for (int i = 0; i < FAN_PEERS; i++) {
        char hub_db[4300];
        snprintf(hub_db, sizeof hub_db, "%s/fan-hub-%d/node.db", w->dir, i);
        rdx_test_wait_sql(hub_db, "SELECT count(*) FROM inbox WHERE state='complete'", NULL,
                          FAN_CASES, 30000);
        assert_int_equal(rdx_test_sql(hub_db, "SELECT max(offers) FROM inbox", NULL), 1);
        assert_int_equal(
            rdx_test_sql(hub_db, "SELECT count(*) FROM audit WHERE event='case-duplicate'", NULL),
            0);
        rdx_test_stop_node(hub[i]);
    }
    rdx_test_stop_node(cl);
    verify_chain(db);
}

/* ---- an idle node wakes when a case is queued -------------------------------------- */

/* The count in the node's "woken N times by queued cases" line (written when it stops). */
static long long woken_by_kicks(const char *log)
{
    rdx_buf b;
    long long n = -1;
    rdx_buf_init(&b, 1u << 24);
    assert_int_equal(rdx_file_read(log, &b, NULL), RDX_OK);
    assert_int_equal(rdx_buf_append(&b, "", 1), RDX_OK);
    const char *at = strstr((const char *)b.data, "delivery stopped: ");
    const char *w = at != NULL ? strstr(at, "woken ") : NULL;
    if (w != NULL) {
        const char *d = w + strlen("woken ");
        size_t k = 0;
        while (d[k] >= '0' && d[k] <= '9') {
            k++;
        }
        int64_t v = 0;
        if (rdx_parse_i64(d, k, 0, INT64_MAX, &v) == RDX_OK) {
            n = v;
        }
    }
    rdx_buf_free(&b);
    return n;
}

static void test_net_idle_node_wakes_for_queued_case(void **state)
{
    struct net *w = *state;
    char hub_ini[4300], cl_ini[4300], file[4300], cl_db[4300], log[4300], id[40];
    pid_t hub, cl;
    rdx_error err;
    rdx_test_issue(w->pki, "wk-hub", "Zhenjiang", 0, 0);
    rdx_test_issue(w->pki, "wk-clinic", "Zhenjiang", 0, 0);
    start_pair(w, "wk-hub", "wk-clinic", "report", sizeof hub_ini, hub_ini, &hub, cl_ini, &cl);
    snprintf(cl_db, sizeof cl_db, "%s/wk-clinic/node.db", w->dir);
    snprintf(file, sizeof file, "%s/wk-report.txt", w->dir);
    rdx_test_write_text(file, "Sinus rhythm, 72/min. No acute ST changes.\n");
    /* The node is up with nothing to do; `rdx case send`, another process, queues and kicks. */
    rdx_test_send_case(cl_ini, "wk-hub", "report", (const char *const[]){file, NULL}, id);
    rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id,
                      1, 30000);
    /*
     * A case queued with no wake-up at all (as if the kick were lost): the
     * fallback timer still finds it, so a lost wake-up delays, never loses.
     */
    rdx_transport_config *cfg = NULL;
    assert_int_equal(rdx_transport_config_load(cl_ini, &cfg, &err), RDX_OK);
    struct rdx_tp_manifest m;
    rdx_buf blob;
    sqlite3 *db = NULL;
    const char *files[] = {file};
    rdx_buf_init(&blob, RDX_TRANSPORT_OFFER_MAX);
    assert_int_equal(
        rdx_tp_case_stage(cfg, "wk-hub", RDX_KIND_REPORT, files, 1, NULL, &m, &blob, &err), RDX_OK);
    assert_int_equal(rdx_tp_node_db_open(cfg->data, &db, &err), RDX_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_true(rdx_tp_case_insert(db, cfg, &m, &blob, &err));
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'",
                      m.case_id, 1, 30000);
    rdx_tp_manifest_clear(&m);
    rdx_buf_free(&blob);
    /*
     * A queued case whose manifest cannot be read (a damaged row) can never
     * be sent: it is dead-lettered at once, and the recipient's other cases
     * still go.
     */
    assert_int_equal(rdx_tp_node_db_open(cfg->data, &db, &err), RDX_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO outbox(case_id, recipient, kind, created_ms, "
                                  "manifest, state) VALUES ('damaged0000000000000000000000000', "
                                  "'wk-hub', 'report', 0, x'00ff00ff', 'queued')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    rdx_tp_outbox_kick(cfg->data);
    rdx_test_send_case(cl_ini, "wk-hub", "report", (const char *const[]){file, NULL}, id);
    rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id,
                      1, 30000);
    rdx_test_wait_sql(
        cl_db,
        "SELECT count(*) FROM outbox WHERE case_id='damaged0000000000000000000000000' AND "
        "state='dead' AND instr(last_error, 'unreadable manifest') > 0",
        NULL, 1, 30000);
    assert_int_equal(rdx_test_sql(cl_db,
                                  "SELECT count(*) FROM audit WHERE event='case-dead-lettered' AND "
                                  "object='damaged0000000000000000000000000'",
                                  NULL),
                     1);
    rdx_transport_config_free(cfg);
    rdx_test_stop_node(cl);
    /* The first case woke the idle node through its FIFO (the count is logged at the stop). */
    snprintf(log, sizeof log, "%s/wk-clinic.log", w->dir);
    assert_true(woken_by_kicks(log) >= 1);
    /*
     * Where the FIFO cannot be made (here a directory has its name) the node
     * says so and looks every 100 ms instead: cases still go.
     */
    char kick[4300];
    snprintf(kick, sizeof kick, "%s/wk-clinic/outbox.kick", w->dir);
    assert_int_equal(unlink(kick), 0);
    assert_int_equal(mkdir(kick, 0700), 0);
    (void)start(w, "wk-clinic", cl_ini, &cl);
    rdx_test_send_case(cl_ini, "wk-hub", "report", (const char *const[]){file, NULL}, id);
    rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'", id,
                      1, 30000);
    rdx_test_stop_node(cl);
    rdx_test_stop_node(hub);
    char *text = rdx_test_slurp(log);
    assert_non_null(text);
    assert_non_null(strstr(text, "no wake-up"));
    free(text);
    verify_chain(cl_db);
}

/* Run a local node until it is stopped. */
static void *local_main(void *arg)
{
    struct local_node *h = arg;
    rdx_error err;
    h->rc = rdx_transport_node_run(h->node, 0, &err) == RDX_OK ? 0 : -1;
    if (h->rc != 0) {
        snprintf(h->err, sizeof h->err, "%s", err.msg);
    }
    return NULL;
}

/*
 * Three studies of 10 MB (chunks of 4, 4 and 1.6 MiB), one after the other,
 * to a hub: the later cases go in the chunk buffers the first left (the hub
 * keeps them, rdx_tp_spares), and a finished chunk's buffer takes the next
 * chunk, so the hub's decoders make at most five in all, where they would
 * make nine without the spares. Every study arrives byte-identical. The hub
 * runs in this process so that its buffers can be counted once it has stopped.
 */
#define REUSE_CASES 3
static void test_net_hub_reuses_chunk_buffers_between_cases(void **state)
{
    struct net *w = *state;
    char hub_ini[4300], cl_ini[4300], cl_db[4300], peers[128], study[REUSE_CASES][4300],
        id[REUSE_CASES][40];
    struct local_node hub = {.rc = 0};
    rdx_error err;
    pid_t cl;
    rdx_test_issue(w->pki, "reuse-hub", "Nanjing", 0, 0);
    rdx_test_issue(w->pki, "reuse-clinic", "Ma'anshan", 0, 0);
    node_ini(w, "reuse-hub", "", "reuse-clinic = dicom", hub_ini, sizeof hub_ini);
    if (rdx_transport_config_load(hub_ini, &hub.cfg, &err) != RDX_OK ||
        rdx_transport_node_new(hub.cfg, NULL, &hub.node, &err) != RDX_OK) {
        fail_msg("%s: %s", hub_ini, err.msg);
    }
    assert_int_equal(pthread_create(&hub.th, NULL, local_main, &hub), 0);
    snprintf(peers, sizeof peers, "reuse-hub = 127.0.0.1:%u\n", rdx_transport_node_port(hub.node));
    node_ini(w, "reuse-clinic", peers, "", cl_ini, sizeof cl_ini);
    (void)start(w, "reuse-clinic", cl_ini, &cl);
    snprintf(cl_db, sizeof cl_db, "%s/reuse-clinic/node.db", w->dir);
    for (int k = 0; k < REUSE_CASES; k++) {
        snprintf(study[k], sizeof study[k], "%s/series-%d.dcm", w->dir, k);
        rdx_test_make_file(study[k], 10u * 1000u * 1000u, 40u + (unsigned)k);
        rdx_test_send_case(cl_ini, "reuse-hub", "dicom", (const char *const[]){study[k], NULL},
                           id[k]);
        rdx_test_wait_sql(cl_db, "SELECT count(*) FROM outbox WHERE case_id=?1 AND state='acked'",
                          id[k], 1, 60000);
    }
    rdx_test_stop_node(cl);
    rdx_transport_node_stop(hub.node);
    assert_int_equal(pthread_join(hub.th, NULL), 0);
    if (hub.rc != 0) {
        fail_msg("hub: %s", hub.err);
    }
    int kept = 0;
    unsigned long reused = 0, made = 0;
    rdx_tp_node_spares(hub.node, &kept, &reused, &made);
    /*
     * At most three 4 MiB buffers are in use at once, and a smaller one for
     * a last chunk when none was free: the later cases made at most one more
     * between them (a small one handed out where a large one was needed).
     * Without the spares every case makes three, nine in all.
     */
    assert_true(made >= 2 && made <= 5);
    assert_true(kept >= 2);
    assert_true(reused >= 2 * (REUSE_CASES - 1));
    rdx_transport_node_free(hub.node);
    rdx_transport_config_free(hub.cfg);
    for (int k = 0; k < REUSE_CASES; k++) {
        char out[4300], got[4400];
        snprintf(out, sizeof out, "%s/out-series-%d", w->dir, k);
        fetch_case(hub_ini, id[k], out);
        snprintf(got, sizeof got, "%s/series-%d.dcm", out, k);
        assert_same_file(study[k], got);
        unlink(got);
        unlink(study[k]);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_three_nodes_both_ways_and_200mb),
        cmocka_unit_test(test_net_load_100_senders_20_cases_exactly_once),
        cmocka_unit_test(test_net_disk_full_refused_cleanly_then_delivered),
        cmocka_unit_test(test_net_silent_peer_does_not_hold_up_others),
        cmocka_unit_test(test_net_more_peers_than_threads_exactly_once),
        cmocka_unit_test(test_net_idle_node_wakes_for_queued_case),
        cmocka_unit_test(test_net_hub_reuses_chunk_buffers_between_cases),
    };
    /* RDX_TEST_FILTER=PATTERN runs only the matching tests (to repeat one in a loop). */
    if (getenv("RDX_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("RDX_TEST_FILTER"));
    }
    return cmocka_run_group_tests_name("transport_net", tests, net_setup, net_teardown);
}
