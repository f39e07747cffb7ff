/*
 * The whole product end to end: `rdx network up` starts six real `rdx node
 * serve` processes on 127.0.0.1 (hub NJ-HUB with its dispatcher, clinics
 * MAS-EAST-CHC, ZJ-EAST-CHC, YZ-EAST-CHC, lab ZJ-CCL, reading room NJ-RAD) and
 * the three flows run over mutual TLS:
 *   - an ECG upload answered by a report (golden annotation file);
 *   - a study with its SR report indexed at the hub, then pulled by the
 *     reading room (byte-identical), and refused once [allow.fetch] denies it;
 *   - a lab order routed to ZJ-CCL, its result forwarded to the clinic.
 * Then the audit chains of every node. A second network has its hub killed
 * with SIGKILL during the flows (once exactly between the engine work and
 * the commit, by the dispatcher's fault-injection hook) and restarted; every
 * flow still completes exactly once. Waits are bounded polls of the nodes'
 * own state, never timings.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rdx/transport.h"
#include "support/nodeutil.h"
#include "support/testutil.h"

#define STUDY_UID "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1"
#define WAIT_MS   60000

struct net {
    char *dir;
    char ini[8][4300]; /* by node index below */
};

enum { HUB, MAS, ZJ, YZ, LAB, RAD, NNODES };
static const char *const IDS[NNODES] = {"NJ-HUB",      "MAS-EAST-CHC", "ZJ-EAST-CHC",
                                        "YZ-EAST-CHC", "ZJ-CCL",       "NJ-RAD"};

/* ---- helpers ------------------------------------------------------------- */

static void net_up(struct net *n)
{
    char cat[4200];
    assert_non_null(realpath("docs/examples/network.ini", cat));
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)getpid());
    /* Owned by this test: should it abort, its nodes stop when it exits. */
    const char *argv[] = {"network", "up",     "--dir",   n->dir, "--catalogue",
                          cat,       "--json", "--owner", me,     NULL};
    char *out = rdx_test_rdx_ok(0, argv);
    /* Each node bound its own port: the one published is the one every table names. */
    char *hub = rdx_test_slurp(n->ini[HUB]);
    assert_non_null(hub);
    for (int i = 0; i < NNODES; i++) {
        char key[100], want[200];
        snprintf(key, sizeof key, "{\"id\":\"%s\"", IDS[i]);
        const char *o = strstr(out, key);
        assert_non_null(o);
        const char *pp = strstr(o, "\"port\":");
        assert_non_null(pp);
        long port = strtol(pp + 7, NULL, 10);
        assert_true(port > 0 && port < 65536);
        assert_non_null(strstr(o, "\"pid\":"));
        char *ini = rdx_test_slurp(n->ini[i]);
        assert_non_null(ini);
        snprintf(want, sizeof want, "listen = 127.0.0.1:%ld\n", port);
        assert_non_null(strstr(ini, want));
        free(ini);
        if (i != HUB) {
            snprintf(want, sizeof want, "%s = 127.0.0.1:%ld\n", IDS[i], port);
            assert_non_null(strstr(hub, want));
        }
    }
    free(hub);
    free(out);
}

static void net_down(struct net *n)
{
    const char *argv[] = {"network", "down", "--dir", n->dir, NULL};
    free(rdx_test_rdx_ok(0, argv));
}

static void net_new(struct net *n)
{
    memset(n, 0, sizeof *n);
    n->dir = rdx_test_tmpdir();
    assert_non_null(n->dir);
    for (int i = 0; i < NNODES; i++) {
        snprintf(n->ini[i], sizeof n->ini[i], "%s/%s.ini", n->dir, IDS[i]);
    }
    net_up(n);
}

static void net_free(struct net *n)
{
    if (n->dir != NULL) {
        const char *argv[] = {"network", "down", "--dir", n->dir, NULL};
        struct rdx_run r;
        if (rdx_run_rdx(&r, argv) == 0) {
            rdx_run_free(&r);
        }
        rdx_test_rmrf(n->dir);
        free(n->dir);
        n->dir = NULL;
    }
}

static pid_t hub_pid(const struct net *n)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/run/NJ-HUB.pid", n->dir);
    pid_t pid = rdx_test_pid_file(path);
    assert_true(pid > 1);
    return pid;
}

static void hub_kill9(const struct net *n)
{
    pid_t pid = hub_pid(n);
    assert_int_equal(kill(pid, SIGKILL), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld", (long)pid);
    for (int i = 0; i < 1000 && access(path, F_OK) == 0; i++) {
        rdx_test_sleep_ms(10);
    }
}

/* `rdx case status --json` of a node. */
static char *status_json(const struct net *n, int node)
{
    const char *argv[] = {"case", "status", "--config", n->ini[node], "--json", NULL};
    return rdx_test_rdx_ok(0, argv);
}

/* The JSON object of case id in a status listing (inbox or outbox), copied; NULL if absent. */
static char *case_obj(const char *status, const char *box, const char *id)
{
    char key[160];
    snprintf(key, sizeof key, "{\"box\":\"%s\",\"case_id\":\"%s\"", box, id);
    const char *p = strstr(status, key);
    if (p == NULL) {
        return NULL;
    }
    const char *e = strchr(p, '}');
    return e != NULL ? strndup(p, (size_t)(e - p + 1)) : NULL;
}

/* Wait until node's case id (in box) has this journey; return its JSON object. */
static char *wait_journey(const struct net *n, int node, const char *box, const char *id,
                          const char *journey)
{
    char want[64], also[64];
    /* "done": processed, or processed with every answer acknowledged already. */
    int done = strcmp(journey, "done") == 0;
    snprintf(want, sizeof want, "\"journey\":\"%s\"", done ? "processed" : journey);
    snprintf(also, sizeof also, "\"journey\":\"%s\"", done ? "replied" : journey);
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        char *st = status_json(n, node);
        char *obj = case_obj(st, box, id);
        free(st);
        if (obj != NULL && (strstr(obj, want) != NULL || strstr(obj, also) != NULL)) {
            return obj;
        }
        free(obj);
        rdx_test_sleep_ms(50);
    }
    fail_msg("case %s at %s never became %s", id, IDS[node], journey);
    return NULL;
}

/* Newest complete inbox case of kind from the hub at node; "" when none (yet). */
static size_t inbox_cases(const struct net *n, int node, const char *kind, char last[64])
{
    char *st = status_json(n, node);
    char key[64];
    size_t count = 0;
    snprintf(key, sizeof key, "\"from\":\"NJ-HUB\",\"kind\":\"%s\",\"state\":\"complete\"", kind);
    last[0] = '\0';
    for (const char *p = st; (p = strstr(p, "{\"box\":\"inbox\",\"case_id\":\"")) != NULL; p++) {
        const char *e = strchr(p, '}');
        if (e == NULL) {
            break;
        }
        char *obj = strndup(p, (size_t)(e - p + 1));
        if (strstr(obj, key) != NULL) {
            rdx_test_json_str(obj, "case_id", last, 64);
            count++;
        }
        free(obj);
    }
    free(st);
    return count;
}

static void wait_inbox(const struct net *n, int node, const char *kind, size_t want, char id[64])
{
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        if (inbox_cases(n, node, kind, id) >= want) {
            return;
        }
        rdx_test_sleep_ms(50);
    }
    fail_msg("%s never received %zu %s case(s) from the hub", IDS[node], want, kind);
}

static void fetch(const struct net *n, int node, const char *id, const char *dir)
{
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *argv[] = {"case",   "fetch", "--config", n->ini[node], "--from",
                          "NJ-HUB", "-o",    dir,        id,           NULL};
    free(rdx_test_rdx_ok(0, argv));
}

static char *audit_json(const struct net *n, int node)
{
    /* The hub's by its configuration, the others' by their data directories. */
    char data[4300];
    snprintf(data, sizeof data, "%s/data/%s", n->dir, IDS[node]);
    const char *by_cfg[] = {"audit", "show", "--config", n->ini[node], "--json", NULL};
    const char *by_dir[] = {"audit", "show", "--json", data, NULL};
    return rdx_test_rdx_ok(0, node == HUB ? by_cfg : by_dir);
}

/* ---- the flows (shared by both tests) ------------------------------------- */

static void ecg_send(const struct net *n, char id[64])
{
    char hea[4200], dat[4200];
    const char *files[] = {rdx_test_fixture(hea, sizeof hea, "ecg/100s.hea"),
                           rdx_test_fixture(dat, sizeof dat, "ecg/100s.dat"), NULL};
    rdx_test_send_case(n->ini[MAS], "NJ-HUB", "ecg", files, id);
}

static void ecg_check(const struct net *n, const char *id, const char *work)
{
    char *obj = wait_journey(n, MAS, "outbox", id, "replied");
    char reply[64], dir[4300], path[4400], golden[4200];
    rdx_test_json_str(obj, "reply", reply, sizeof reply);
    free(obj);
    snprintf(dir, sizeof dir, "%s/ecg", work);
    fetch(n, MAS, reply, dir);
    /* The annotation file is the detector's golden output for this trace. */
    snprintf(path, sizeof path, "%s/100s.qrs", dir);
    assert_true(rdx_test_files_equal(
        path, rdx_test_fixture(golden, sizeof golden, "ecg/100s.qrs.expected")));
    snprintf(path, sizeof path, "%s/100s.summary.json", dir);
    char *sum = rdx_test_slurp(path);
    assert_non_null(sum);
    assert_non_null(strstr(sum, "\"beats\":74,"));
    free(sum);
    snprintf(path, sizeof path, "%s/100s.strip.svg", dir);
    char *svg = rdx_test_slurp(path);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
    snprintf(path, sizeof path, "%s/" RDX_TRANSPORT_REPLY_ITEM, dir);
    char *marker = rdx_test_slurp(path);
    assert_non_null(marker);
    assert_int_equal(strncmp(marker, id, 32), 0);
    free(marker);
}

static void study_send(const struct net *n, char id[64])
{
    char a[4200], b[4200], c[4200];
    const char *files[] = {rdx_test_fixture(a, sizeof a, "imaging/study/77654033_CR1_6154"),
                           rdx_test_fixture(b, sizeof b, "imaging/study/77654033_CR2_6247"),
                           rdx_test_fixture(c, sizeof c, "imaging/study/77654033_SR_report.dcm"),
                           NULL};
    rdx_test_send_case(n->ini[ZJ], "NJ-HUB", "dicom", files, id);
}

static void study_check(const struct net *n, const char *id, const char *work)
{
    char db[4400], dir[4300];
    free(wait_journey(n, HUB, "inbox", id, "processed"));
    snprintf(db, sizeof db, "sqlite:%s/hub/index.db", n->dir);
    const char *q[] = {"img", "query", "--db", db, "--json", NULL};
    char *rows = rdx_test_rdx_ok(0, q);
    assert_int_equal(rdx_test_count(rows, "\"study_uid\""), 1);
    assert_non_null(strstr(rows, "\"study_uid\":\"" STUDY_UID "\""));
    assert_non_null(strstr(rows, "\"has_report\":true"));
    assert_non_null(strstr(rows, "\"instances\":3"));
    free(rows);
    snprintf(dir, sizeof dir, "%s/study", work);
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *rq[] = {"case",    "request", "--config", n->ini[RAD], "--to", "NJ-HUB", "--study",
                        STUDY_UID, "--wait",  "60",       "-o",        dir,    "--json", NULL};
    char *out = rdx_test_rdx_ok(0, rq);
    assert_non_null(strstr(out, "\"kind\":\"dicom\",\"items\":5}"));
    free(out);
    static const char *const names[] = {"77654033_CR1_6154", "77654033_CR2_6247",
                                        "77654033_SR_report.dcm"};
    for (size_t i = 0; i < 3; i++) {
        char got[4400], want[4200], rel[200];
        snprintf(got, sizeof got, "%s/%s", dir, names[i]);
        snprintf(rel, sizeof rel, "imaging/study/%s", names[i]);
        assert_true(rdx_test_files_equal(got, rdx_test_fixture(want, sizeof want, rel)));
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/report.txt", dir);
    char *rep = rdx_test_slurp(path);
    assert_non_null(rep);
    assert_non_null(strstr(rep, "Diagnosis"));
    free(rep);
}

static void order_send(const struct net *n, const char *work, char id[64])
{
    char oml[4200], custody[4300];
    snprintf(custody, sizeof custody, "%s/order-custody", work);
    assert_int_equal(mkdir(custody, 0700), 0);
    snprintf(custody, sizeof custody, "%s/order-custody/custody.tsv", work);
    const char *text = "ZJE0107 collect 202612010705\nZJE0107 dispatch 202612010900\n";
    assert_int_equal(rdx_file_write_atomic(custody, text, strlen(text), NULL), RDX_OK);
    const char *files[] = {rdx_test_fixture(oml, sizeof oml, "e2e/zj_east_oml.hl7"), custody, NULL};
    rdx_test_send_case(n->ini[ZJ], "NJ-HUB", "lab-order", files, id);
}

/* The order's routing notice and the lab's copy; then the lab sends its result. */
static void order_check_and_result(const struct net *n, const char *id, const char *work,
                                   char res[64])
{
    char *obj = wait_journey(n, ZJ, "outbox", id, "replied");
    char reply[64], dir[4300], path[4400];
    rdx_test_json_str(obj, "reply", reply, sizeof reply);
    free(obj);
    snprintf(dir, sizeof dir, "%s/notice", work);
    fetch(n, ZJ, reply, dir);
    snprintf(path, sizeof path, "%s/routing.json", dir);
    char *route = rdx_test_slurp(path);
    assert_non_null(route);
    assert_int_equal(rdx_test_count(route, "\"code\": \"ROUTED\", \"lab\": \"ZJ-CCL\""), 2);
    assert_non_null(strstr(route, "the only lab that takes all 2 test(s) on this tube"));
    free(route);
    snprintf(path, sizeof path, "%s/routing.txt", dir);
    char *text = rdx_test_slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "2823-3 tube ZJE0107 -> ZJ-CCL ROUTED"));
    free(text);

    char lord[64];
    wait_inbox(n, LAB, "lab-order", 1, lord);
    snprintf(dir, sizeof dir, "%s/at-lab", work);
    fetch(n, LAB, lord, dir);
    snprintf(path, sizeof path, "%s/ZJ-E-0107.ZJ-CCL.oml.hl7", dir);
    char *oml = rdx_test_slurp(path);
    assert_non_null(oml);
    assert_non_null(strstr(oml, "|ZE-107"));
    assert_non_null(strstr(oml, "2160-0^Creatinine"));
    free(oml);

    char oru[4200], custody[4300];
    snprintf(custody, sizeof custody, "%s/result-custody", work);
    assert_int_equal(mkdir(custody, 0700), 0);
    snprintf(custody, sizeof custody, "%s/result-custody/custody.tsv", work);
    const char *scan = "ZJE0107 receive 202612010925\n";
    assert_int_equal(rdx_file_write_atomic(custody, scan, strlen(scan), NULL), RDX_OK);
    const char *files[] = {rdx_test_fixture(oru, sizeof oru, "e2e/zj_ccl_oru.hl7"), custody, NULL};
    rdx_test_send_case(n->ini[LAB], "NJ-HUB", "lab-result", files, res);
}

static void result_check(const struct net *n, const char *res, const char *work)
{
    char *obj = wait_journey(n, LAB, "outbox", res, "replied");
    char ack[64], dir[4300], path[4400], got[64];
    rdx_test_json_str(obj, "reply", ack, sizeof ack);
    free(obj);
    snprintf(dir, sizeof dir, "%s/ack", work);
    fetch(n, LAB, ack, dir);
    snprintf(path, sizeof path, "%s/ZJCCL-R-0107.ack.hl7", dir);
    char *a = rdx_test_slurp(path);
    assert_non_null(a);
    assert_non_null(strstr(a, "MSA|AA|ZJCCL-R-0107"));
    free(a);
    wait_inbox(n, ZJ, "lab-result", 1, got);
    snprintf(dir, sizeof dir, "%s/oru", work);
    fetch(n, ZJ, got, dir);
    snprintf(path, sizeof path, "%s/ZJCCL-R-0107.oru.hl7", dir);
    char *o = rdx_test_slurp(path);
    assert_non_null(o);
    assert_non_null(strstr(o, "|ZJ-EAST-CHC|"));
    assert_non_null(strstr(o, "|4.4|mmol/L"));
    assert_non_null(strstr(o, "|0.81|mg/dL"));
    free(o);
    /* Custody: collected and dispatched by the clinic, received and resulted by the lab. */
    char db[4400];
    snprintf(db, sizeof db, "sqlite:%s/hub/lab.db", n->dir);
    const char *st[] = {"lab", "status", "--db", db, "ZJE0107", NULL};
    char *s = rdx_test_rdx_ok(0, st);
    assert_non_null(strstr(s, "resulted"));
    assert_non_null(strstr(s, "collected by ZJ-EAST-CHC"));
    assert_non_null(strstr(s, "received by ZJ-CCL"));
    free(s);
}

/* Every node's chain is intact and names what it did. */
static void audit_check(const struct net *n)
{
    const char *v[] = {"audit", "verify", n->dir, NULL};
    char *out = rdx_test_rdx_ok(0, v);
    assert_int_equal(rdx_test_count(out, "audit chain intact"), NNODES);
    free(out);
    /* The whole network's logs at once: every node's heading, every node's records. */
    const char *show[] = {"audit", "show", n->dir, NULL};
    out = rdx_test_rdx_ok(0, show);
    assert_int_equal(rdx_test_count(out, "\n== "), NNODES - 1);
    assert_true(rdx_test_count(out, "node-started") >= NNODES); /* each node at least once */
    free(out);
    const char *showj[] = {"audit", "show", "--json", n->dir, NULL};
    out = rdx_test_rdx_ok(0, showj);
    for (int i = 0; i < NNODES; i++) {
        char want[100];
        snprintf(want, sizeof want, "\"node\":\"%s\"", IDS[i]);
        assert_non_null(strstr(out, want));
    }
    assert_non_null(strstr(out, "\"event\":\"case-processed\""));
    free(out);
    static const char *const want[NNODES][3] = {
        {"\"event\":\"case-processed\"", "\"event\":\"case-received\"",
         "\"event\":\"case-queued\""},
        {"\"event\":\"case-queued\"", "\"event\":\"case-acknowledged\"",
         "\"event\":\"case-received\""},
        {"\"event\":\"case-queued\"", "\"event\":\"case-acknowledged\"",
         "\"event\":\"case-received\""},
        {"\"event\":\"node-started\"", "\"event\":\"node-started\"", "\"event\":\"node-started\""},
        {"\"event\":\"case-queued\"", "\"event\":\"case-acknowledged\"",
         "\"event\":\"case-received\""},
        {"\"event\":\"case-queued\"", "\"event\":\"case-acknowledged\"",
         "\"event\":\"case-received\""},
    };
    for (int i = 0; i < NNODES; i++) {
        char *a = audit_json(n, i);
        for (int k = 0; k < 3; k++) {
            if (strstr(a, want[i][k]) == NULL) {
                fail_msg("%s: no %s in its audit log", IDS[i], want[i][k]);
            }
        }
        free(a);
    }
}

/* Each flow's effect happened once: one answer per case sent, one case-processed each. */
static void exactly_once_check(const struct net *n)
{
    char last[64];
    assert_int_equal(inbox_cases(n, MAS, "report", last), 1);
    assert_int_equal(inbox_cases(n, ZJ, "report", last), 1);
    assert_int_equal(inbox_cases(n, ZJ, "lab-result", last), 1);
    assert_int_equal(inbox_cases(n, LAB, "lab-order", last), 1);
    assert_int_equal(inbox_cases(n, LAB, "report", last), 1);
    assert_int_equal(inbox_cases(n, RAD, "dicom", last), 1);
    char *hub = status_json(n, HUB);
    /* ecg report, dicom pull, lab order + routing notice, ORU + ACK: six cases out. */
    assert_int_equal(rdx_test_count(hub, "{\"box\":\"outbox\""), 6);
    assert_int_equal(rdx_test_count(hub, "\"journey\":\"replied\""), 4);
    assert_int_equal(rdx_test_count(hub, "\"journey\":\"processed\""),
                     1); /* the study: no answer */
    free(hub);
    char *a = audit_json(n, HUB);
    assert_int_equal(rdx_test_count(a, "\"event\":\"case-processed\""), 5);
    assert_int_equal(rdx_test_count(a, "\"event\":\"case-queued\""), 6);
    free(a);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_e2e_three_flows(void **state)
{
    (void)state;
    struct net n;
    net_new(&n);
    char work[4300], ecg[64], dcm[64], ord[64], res[64];
    snprintf(work, sizeof work, "%s/work", n.dir);
    assert_int_equal(mkdir(work, 0700), 0);
    /* A trace without its header: the ECG engine fails on it, it is retried, then parked. */
    char dat[4200], bad[64];
    const char *badfiles[] = {rdx_test_fixture(dat, sizeof dat, "ecg/100s.dat"), NULL};
    rdx_test_send_case(n.ini[MAS], "NJ-HUB", "ecg", badfiles, bad);
    ecg_send(&n, ecg);
    study_send(&n, dcm);
    order_send(&n, work, ord);
    ecg_check(&n, ecg, work);
    study_check(&n, dcm, work);
    order_check_and_result(&n, ord, work, res);
    result_check(&n, res, work);
    char *parked = wait_journey(&n, HUB, "inbox", bad, "parked");
    assert_non_null(strstr(parked, "\"dispatch_attempts\":3"));
    assert_non_null(strstr(parked, "no WFDB header (.hea) or CSV (.csv) in the case"));
    free(parked);
    exactly_once_check(&n);
    audit_check(&n);
    char *pa = audit_json(&n, HUB);
    assert_int_equal(rdx_test_count(pa, "\"event\":\"case-retry\""), 2);
    assert_int_equal(rdx_test_count(pa, "\"event\":\"case-parked\""), 1);
    free(pa);

    /* A custody field dressed as an option (to forge the actor) is refused: parked, not run. */
    char forged[4400], oru[4200], fid[64];
    snprintf(forged, sizeof forged, "%s/result-custody/custody.tsv", work);
    const char *scan = "--actor=ZJ-EAST-CHC collect 202612010705\n";
    assert_int_equal(rdx_file_write_atomic(forged, scan, strlen(scan), NULL), RDX_OK);
    const char *ffiles[] = {rdx_test_fixture(oru, sizeof oru, "e2e/zj_ccl_oru.hl7"), forged, NULL};
    rdx_test_send_case(n.ini[LAB], "NJ-HUB", "lab-result", ffiles, fid);
    char *fobj = wait_journey(&n, HUB, "inbox", fid, "parked");
    assert_non_null(strstr(fobj, "custody.tsv:1: expected BARCODE EVENT DTM"));
    free(fobj);

    /* The hub's journey view names what each case led to. */
    char *hub = status_json(&n, HUB);
    char *obj = case_obj(hub, "inbox", ecg);
    assert_non_null(obj);
    assert_non_null(strstr(obj, "\"outputs\":1,\"outputs_acked\":1"));
    assert_non_null(strstr(obj, "74 beats"));
    free(obj);
    free(hub);

    /* [allow.fetch] withdrawn: the same request is refused, with an audit record. */
    net_down(&n);
    char *ini = rdx_test_slurp(n.ini[HUB]);
    assert_non_null(ini);
    char *line = strstr(ini, "NJ-RAD = dicom, report\n");
    assert_non_null(line);
    memcpy(line, ";", 1); /* comment the rule out */
    assert_int_equal(rdx_file_write_atomic(n.ini[HUB], ini, strlen(ini), NULL), RDX_OK);
    free(ini);
    net_up(&n);
    const char *rq[] = {"case",    "request", "--config", n.ini[RAD], "--to",   "NJ-HUB",
                        "--study", STUDY_UID, "--wait",   "60",       "--json", NULL};
    char *out = rdx_test_rdx_ok(1, rq);
    assert_non_null(strstr(out, "\"kind\":\"report\",\"items\":2}"));
    free(out);
    char *a = audit_json(&n, HUB);
    assert_int_equal(rdx_test_count(a, "\"event\":\"fetch-refused\""), 1);
    free(a);

    /* Allowed again, but the study is over [dispatch] max_pull_bytes: refused, saying why. */
    net_down(&n);
    ini = rdx_test_slurp(n.ini[HUB]);
    assert_non_null(ini);
    line = strstr(ini, ";J-RAD = dicom, report\n");
    assert_non_null(line);
    memcpy(line, "N", 1);
    char *cap = strstr(ini, "max_pull_bytes = 8589934592\n");
    assert_non_null(cap);
    memcpy(cap, "max_pull_bytes = 1000      \n", strlen("max_pull_bytes = 8589934592\n"));
    assert_int_equal(rdx_file_write_atomic(n.ini[HUB], ini, strlen(ini), NULL), RDX_OK);
    free(ini);
    net_up(&n);
    out = rdx_test_rdx_ok(1, rq);
    assert_non_null(strstr(out, "\"kind\":\"report\",\"items\":2}"));
    free(out);
    a = audit_json(&n, HUB);
    assert_int_equal(rdx_test_count(a, "\"event\":\"fetch-refused\""), 2);
    assert_non_null(strstr(a, "over the 1000 bytes NJ-HUB sends in one pull"));
    free(a);
    net_free(&n);
}

/* A CSV upload is detected at the rate its ecg.ini gives; without one it is refused, saying why. */
static void test_e2e_csv_ecg_needs_its_rate(void **state)
{
    (void)state;
    struct net n;
    net_new(&n);
    char work[4300], csv[4200], ini[4400], ok_id[64], bad_id[64], path[4500];
    snprintf(work, sizeof work, "%s/work", n.dir);
    assert_int_equal(mkdir(work, 0700), 0);
    snprintf(ini, sizeof ini, "%s/ecg.ini", work);
    const char *meta = "# Ma'anshan East, Holter export\n[ecg]\nfs = 360\n";
    assert_int_equal(rdx_file_write_atomic(ini, meta, strlen(meta), NULL), RDX_OK);
    const char *with[] = {rdx_test_fixture(csv, sizeof csv, "e2e/100s-10s.csv"), ini, NULL};
    rdx_test_send_case(n.ini[MAS], "NJ-HUB", "ecg", with, ok_id);
    const char *without[] = {csv, NULL};
    rdx_test_send_case(n.ini[YZ], "NJ-HUB", "ecg", without, bad_id);

    char *obj = wait_journey(&n, MAS, "outbox", ok_id, "replied");
    char reply[64], dir[4400];
    rdx_test_json_str(obj, "reply", reply, sizeof reply);
    free(obj);
    snprintf(dir, sizeof dir, "%s/csv-ok", work);
    fetch(&n, MAS, reply, dir);
    snprintf(path, sizeof path, "%s/100s-10s.summary.json", dir);
    char *sum = rdx_test_slurp(path);
    assert_non_null(sum);
    assert_non_null(strstr(sum, "\"fs_hz\":360,\"samples\":3600,\"leads\":2,"));
    assert_non_null(strstr(sum, "\"beats\":13,"));
    free(sum);
    snprintf(path, sizeof path, "%s/100s-10s.qrs", dir);
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/100s-10s.strip.svg", dir);
    assert_int_equal(access(path, R_OK), 0);

    obj = wait_journey(&n, YZ, "outbox", bad_id, "replied");
    rdx_test_json_str(obj, "reply", reply, sizeof reply);
    free(obj);
    snprintf(dir, sizeof dir, "%s/csv-bad", work);
    fetch(&n, YZ, reply, dir);
    snprintf(path, sizeof path, "%s/refused.txt", dir);
    char *why = rdx_test_slurp(path);
    assert_non_null(why);
    assert_non_null(
        strstr(why, "refused: a CSV ECG without ecg.ini: its sampling rate is unknown"));
    assert_non_null(strstr(why, "fs = HZ"));
    free(why);
    char *a = audit_json(&n, HUB);
    assert_int_equal(rdx_test_count(a, "\"event\":\"ecg-refused\""), 1);
    free(a);
    net_free(&n);
}

static void test_e2e_hub_killed_mid_flow_completes_once(void **state)
{
    (void)state;
    struct net n;
    /* The hub dies (SIGKILL) right after detecting the ECG, before committing. */
    assert_int_equal(setenv("RDX_FAULT_DISPATCH_KILL", "ecg", 1), 0);
    net_new(&n);
    assert_int_equal(unsetenv("RDX_FAULT_DISPATCH_KILL"), 0);
    char work[4300], ecg[64], dcm[64], ord[64], res[64], path[4400];
    snprintf(work, sizeof work, "%s/work", n.dir);
    assert_int_equal(mkdir(work, 0700), 0);
    ecg_send(&n, ecg);
    snprintf(path, sizeof path, "/proc/%ld", (long)hub_pid(&n));
    for (int i = 0; i < WAIT_MS / 20 && access(path, F_OK) == 0; i++) {
        rdx_test_sleep_ms(20);
    }
    assert_int_not_equal(access(path, F_OK), 0); /* the hook fired */
    study_send(&n, dcm);
    order_send(&n, work, ord);
    net_up(&n); /* restarts only the hub, without the hook */
    ecg_check(&n, ecg, work);

    /* Killed again while the order is being routed and forwarded, whatever it is doing. */
    free(wait_journey(&n, HUB, "inbox", ord, "done"));
    hub_kill9(&n);
    net_up(&n);
    study_check(&n, dcm, work);
    order_check_and_result(&n, ord, work, res);
    hub_kill9(&n); /* and once more with the result in flight */
    net_up(&n);
    result_check(&n, res, work);
    exactly_once_check(&n);
    audit_check(&n);
    net_free(&n);
}

static int exit_of(const char *const *argv, const char *want_err)
{
    struct rdx_run r;
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    int code = r.exit_code;
    if (want_err != NULL && strstr(r.err, want_err) == NULL) {
        fail_msg("rdx %s %s: stderr lacks '%s': %s", argv[0], argv[1], want_err, r.err);
    }
    rdx_run_free(&r);
    return code;
}

static void test_e2e_verbs_refuse_bad_input(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char nodes[4300], empty[4300];
    assert_non_null(dir);
    snprintf(nodes, sizeof nodes, "%s/nodes.ini", dir);
    snprintf(empty, sizeof empty, "%s/empty", dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    const char *up[] = {"network", "up", NULL};
    assert_int_equal(exit_of(up, "--dir is required"), 2);
    const char *two_hubs = "[node A]\nname = a\ncity = Nanjing\nrole = hub\n"
                           "[node B]\nname = b\ncity = Nanjing\nrole = hub\n";
    assert_int_equal(rdx_file_write_atomic(nodes, two_hubs, strlen(two_hubs), NULL), RDX_OK);
    char net[4300];
    snprintf(net, sizeof net, "%s/net", dir);
    const char *up2[] = {"network", "up", "--dir", net, "--nodes", nodes, NULL};
    assert_int_equal(exit_of(up2, "exactly one node with role = hub (has 2)"), 1);
    assert_int_not_equal(access(net, F_OK), 0); /* nothing left behind */
    const char *bad_id = "[node ../x]\nname = a\ncity = b\n";
    assert_int_equal(rdx_file_write_atomic(nodes, bad_id, strlen(bad_id), NULL), RDX_OK);
    assert_int_equal(exit_of(up2, "nodes.ini:2: node ID '../x'"), 1);
    const char *down[] = {"network", "down", "--dir", empty, NULL};
    assert_int_equal(exit_of(down, "nodes.ini: cannot read it"), 1);
    const char *req[] = {"case",   "request", "--config", nodes, "--to",
                         "NJ-HUB", "--study", "1.2.3;rm", NULL};
    assert_int_equal(exit_of(req, "not a DICOM UID"), 2);
    const char *ver[] = {"audit", "verify", empty, NULL};
    assert_int_equal(exit_of(ver, "node.db"), 1);
    const char *show[] = {"audit", "show", empty, NULL};
    assert_int_equal(exit_of(show, "not a node's data directory (no node.db)"), 1);
    const char *show0[] = {"audit", "show", NULL};
    assert_int_equal(exit_of(show0, "a DIR (or --config FILE) is required"), 2);
    const char *help[] = {"network", "up", "--help", NULL};
    assert_int_equal(exit_of(help, NULL), 0);
    rdx_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_three_flows),
        cmocka_unit_test(test_e2e_csv_ecg_needs_its_rate),
        cmocka_unit_test(test_e2e_hub_killed_mid_flow_completes_once),
        cmocka_unit_test(test_e2e_verbs_refuse_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
