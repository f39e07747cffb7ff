/* rdx lab route as a user runs it: golden output, JSON, the store, exit codes, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/common.h"
#include "rdx/lab.h"
#include "support/testutil.h"

#define CAT   "docs/examples/network.ini"
#define GULOU "tests/fixtures/lab/nj_gulou_oml.hl7"
#define SPLIT "tests/fixtures/lab/mas_split_oml.hl7"
#define REFUS "tests/fixtures/lab/yz_refusals_oml.hl7"

static void run(struct rdx_run *r, const char *const *argv)
{
    assert_int_equal(rdx_run_rdx(r, argv), 0);
}

static char *slurp(const char *path)
{
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    assert_int_equal(rdx_file_read(path, &b, NULL), RDX_OK);
    char *s = rdx_strndup((const char *)b.data, b.len);
    rdx_buf_free(&b);
    return s;
}

static void test_cli_route_golden_text_and_json(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *argv[] = {
        "lab", "route", "--catalogue", CAT, "--db", "sqlite::memory:", GULOU, SPLIT, REFUS, NULL};
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    char *want = slurp("tests/fixtures/lab/route_expected.txt");
    assert_string_equal(r.out, want);
    free(want);
    rdx_run_free(&r);

    const char *jargv[] = {"lab", "route", "--json", "--catalogue", CAT, "--db", "sqlite::memory:",
                           GULOU, SPLIT,   REFUS,    NULL};
    run(&r, jargv);
    assert_int_equal(r.exit_code, 0);
    want = slurp("tests/fixtures/lab/route_expected.json");
    assert_string_equal(r.out, want);
    free(want);
    rdx_run_free(&r);
}

static void test_cli_route_store_is_idempotent_and_keeps_load(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[512];
    snprintf(uri, sizeof uri, "sqlite:%s/lab.db", dir);
    struct rdx_run r;
    const char *argv[] = {"lab", "route", "--catalogue", CAT, "--db", uri, GULOU, NULL};
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    assert_null(strstr(r.out, "already routed"));
    char *first = rdx_strndup(r.out, strlen(r.out));
    rdx_run_free(&r);
    /* The same order again: the stored decisions, flagged, nothing counted twice. */
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "[already routed]"));
    assert_int_equal(strlen(r.out), strlen(first) + 5 * strlen(" [already routed]"));
    rdx_run_free(&r);
    free(first);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_route_errors_and_usage(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *help[] = {"lab", "route", "--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx lab route --catalogue FILE"));
    rdx_run_free(&r);

    const char *nocat[] = {"lab", "route", GULOU, NULL};
    run(&r, nocat);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--catalogue FILE is required"));
    rdx_run_free(&r);

    const char *nofile[] = {"lab", "route", "--catalogue", CAT, NULL};
    run(&r, nofile);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);

    const char *badopt[] = {"lab", "route", "--frobnicate", NULL};
    run(&r, badopt);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "unknown option '--frobnicate'"));
    rdx_run_free(&r);

    /* A bad catalogue names file:line and the key. */
    char *dir = rdx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    const char bad[] = "[lab A]\nname = a\ncapacity = many\n";
    assert_int_equal(rdx_file_write_atomic(path, bad, sizeof bad - 1, NULL), RDX_OK);
    const char *badcat[] = {"lab",  "route",           "--catalogue", path,
                            "--db", "sqlite::memory:", GULOU,         NULL};
    run(&r, badcat);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx lab route: "));
    assert_non_null(strstr(r.err, "bad.ini:3: [lab A] capacity: 'many'"));
    rdx_run_free(&r);

    /* A missing order file and a non-order: named, exit 1, the good file still routed. */
    snprintf(path, sizeof path, "%s/oru.hl7", dir);
    const char oru[] = "MSH|^~\\&|A|B|C|D|20261201||ORU^R01|1|P|2.5.1\r";
    assert_int_equal(rdx_file_write_atomic(path, oru, sizeof oru - 1, NULL), RDX_OK);
    const char *mixed[] = {
        "lab", "route", "--catalogue", CAT, "--db", "sqlite::memory:", "/nonexistent/o.hl7",
        path,  GULOU,   NULL};
    run(&r, mixed);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "/nonexistent/o.hl7"));
    assert_non_null(strstr(r.err, "oru.hl7: message 1: MSH-9: ORU^R01 is not an order"));
    assert_non_null(strstr(r.out, "GULOU-20261201-0001 2823-3"));
    rdx_run_free(&r);

    /* Garbage instead of HL7. */
    snprintf(path, sizeof path, "%s/junk.hl7", dir);
    assert_int_equal(rdx_file_write_atomic(path, "hello\n", 6, NULL), RDX_OK);
    const char *junk[] = {"lab",  "route",           "--catalogue", CAT,
                          "--db", "sqlite::memory:", path,          NULL};
    run(&r, junk);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "junk.hl7: byte 0: segment 'hel' outside any message"));
    assert_string_equal(r.out, "");
    rdx_run_free(&r);

    const char *baddb[] = {"lab", "route", "--catalogue", CAT, "--db", "postgres://x", GULOU, NULL};
    run(&r, baddb);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "unsupported database URI"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_event_and_status_follow_a_tube(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[512];
    snprintf(uri, sizeof uri, "sqlite:%s/lab.db", dir);
    struct rdx_run r;
    const char *route[] = {"lab", "route", "--catalogue", CAT, "--db", uri, SPLIT, NULL};
    run(&r, route);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    struct {
        const char *event, *at, *extra1, *extra2, *want;
        int exit_code;
    } steps[] = {
        {"collect", "202612010705", NULL, NULL, "ordered -> collected", 0},
        {"collect", "202612010705", NULL, NULL, "re-scan: already recorded", 0},
        {"receive", "202612010925", NULL, NULL, "cannot 'receive' a specimen that is 'collected'",
         1},
        {"dispatch", "202612010900", NULL, NULL, "collected -> dispatched", 0},
        {"receive", "202612010925", "--condition", "hemolysed", "condition hemolysed", 0},
        {"reject", "202612010930", "--reason", "HEMOLYSED", "MAE0042.1-R1", 0},
        {"start", "202612010931", NULL, NULL, "the state is final", 1},
        {"fly", "202612010931", NULL, NULL, "unknown event 'fly'", 2},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const char *argv[16] = {"lab",     "event",   "--db", uri,
                                "--actor", "MAS-CCL", "--at", steps[i].at};
        size_t n = 8;
        if (steps[i].extra1 != NULL) {
            argv[n++] = steps[i].extra1;
            argv[n++] = steps[i].extra2;
        }
        argv[n++] = "MAE0042.1";
        argv[n++] = steps[i].event;
        argv[n] = NULL;
        run(&r, argv);
        if (r.exit_code != steps[i].exit_code ||
            (strstr(r.out, steps[i].want) == NULL && strstr(r.err, steps[i].want) == NULL)) {
            fail_msg("step %zu (%s): exit %d, out '%s', err '%s'", i, steps[i].event, r.exit_code,
                     r.out, r.err);
        }
        rdx_run_free(&r);
    }
    /* MAE0042.2 went on the 10:00 run to Nanjing (due 11:40) and was never scanned there. */
    const char *c2[] = {"lab",  "event",        "--db",      uri,       "--actor", "MAS-EAST-CHC",
                        "--at", "202612010700", "MAE0042.2", "collect", NULL};
    run(&r, c2);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    const char *d2[] = {"lab",  "event",        "--db",      uri,        "--actor", "MAS-EAST-CHC",
                        "--at", "202612011000", "MAE0042.2", "dispatch", NULL};
    run(&r, d2);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    const char *cancel[] = {"lab",       "event",        "--db", uri,
                            "--actor",   "MAS-EAST-CHC", "--at", "202612011010",
                            "MAE0042.2", "cancel",       NULL};
    run(&r, cancel);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "too late to cancel: the lab answers UC"));
    rdx_run_free(&r);
    const char *early[] = {"lab", "overdue", "--db", uri, "--at", "202612011200", NULL};
    run(&r, early);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "no specimen overdue"));
    rdx_run_free(&r);
    const char *late[] = {"lab", "overdue", "--db", uri, "--at", "202612011300", NULL};
    run(&r, late);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "MAE0042.2 (MAS-EAST-CHC): dispatched 2026-12-01T10:00:00+08:00"
                                  " by MAS-EAST-CHC to NJ-JSPH, no receipt scan"));
    rdx_run_free(&r);
    const char *status[] = {"lab", "status", "--db", uri, "MAE0042.1", NULL};
    run(&r, status);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "MAE0042.1 (MAS-EAST-CHC): rejected, condition hemolysed"));
    assert_non_null(strstr(r.out, "child of MAE0042"));
    assert_non_null(strstr(r.out, "recollected as MAE0042.1-R1"));
    assert_non_null(strstr(r.out, "2026-12-01T09:00:00+08:00  dispatch collected -> dispatched"));
    /* The ORDER event is reported at the order's own time (MSH-7), not at
     * the moment rdx registered the tube. */
    assert_non_null(strstr(r.out, "2026-12-01T07:15:00+08:00  order    ordered -> ordered"));
    rdx_run_free(&r);
    const char *ostatus[] = {"lab",     "status",       "--db",       uri,
                             "--order", "MAS-EAST-CHC", "MAS-E-0042", NULL};
    run(&r, ostatus);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "MAE0042.2 (MAS-EAST-CHC): dispatched at NJ-JSPH, tests 2857-1, "
                                  "child of MAE0042"));
    assert_non_null(strstr(r.out, "MAE0042.1-R1 (MAS-EAST-CHC): ordered at MAS-CCL"));
    assert_non_null(strstr(r.out, "state: in progress: 0 of 2 tube(s) resulted, 0 of 3 test(s); "
                                  "least advanced ordered"));
    rdx_run_free(&r);
    const char *jstatus[] = {"lab", "status", "--db", uri, "--json", "MAE0042.1-R1", NULL};
    run(&r, jstatus);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"state\": \"ordered\""));
    assert_non_null(strstr(r.out, "\"recollect_of\": \"MAE0042.1\""));
    rdx_run_free(&r);
    const char *missing[] = {"lab", "status", "--db", uri, "NOPE", NULL};
    run(&r, missing);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx lab status: barcode NOPE: no such specimen"));
    rdx_run_free(&r);
    const char *noactor[] = {"lab", "event", "--db", uri, "MAE0042.1", "collect", NULL};
    run(&r, noactor);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--actor"));
    rdx_run_free(&r);
    const char *help[] = {"lab", "event", "--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx lab event"));
    rdx_run_free(&r);
    const char *shelp[] = {"lab", "status", "-h", NULL};
    run(&r, shelp);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_result_acks_forwards_and_corrects(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[512], path[600];
    snprintf(uri, sizeof uri, "sqlite:%s/lab.db", dir);
    struct rdx_run r;
    const char *route[] = {"lab", "route", "--catalogue", CAT, "--db", uri, GULOU, NULL};
    run(&r, route);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    /* A result before the tube reached the lab is refused (AR). */
    const char *early[] = {
        "lab", "result", "--db", uri, "--out", dir, "tests/fixtures/lab/jsph_oru.hl7", NULL};
    run(&r, early);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "JSPH-R-0001: AR: specimen NJGL26120101 is ordered"));
    rdx_run_free(&r);
    snprintf(path, sizeof path, "%s/JSPH-R-0001.ack.hl7", dir);
    char *ack = slurp(path);
    assert_non_null(strstr(ack, "MSA|AR|JSPH-R-0001|"));
    assert_non_null(strstr(ack, "ERR||OBR^1|206^Application record locked^HL70357|E"));
    free(ack);
    const char *scans[][2] = {
        {"collect", "202612010806"}, {"dispatch", "202612010900"}, {"receive", "202612010915"}};
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = {"lab",          "event",     "--db", uri,
                              "--actor",      "NJ-JSPH",   "--at", scans[i][1],
                              "NJGL26120101", scans[i][0], NULL};
        run(&r, argv);
        assert_int_equal(r.exit_code, 0);
        rdx_run_free(&r);
    }
    /* Now it is accepted (AA) and forwarded to the ordering clinic. */
    const char *ok[] = {"lab",   "result", "--db",   uri,
                        "--out", dir,      "--json", "tests/fixtures/lab/jsph_oru.hl7",
                        NULL};
    run(&r, ok);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"ack\": \"AA\""));
    assert_non_null(strstr(r.out, "\"observations\": 2"));
    assert_non_null(strstr(r.out, "\"clinic\": \"NJ-GULOU-CHC\""));
    rdx_run_free(&r);
    ack = slurp(path);
    assert_non_null(strstr(ack, "MSH|^~\\&|RDX|NJ-HUB|LIS^JSPH|NJ-JSPH|"));
    assert_non_null(strstr(ack, "\rMSA|AA|JSPH-R-0001\r"));
    assert_null(strstr(ack, "ERR|"));
    free(ack);
    snprintf(path, sizeof path, "%s/JSPH-R-0001.oru.hl7", dir);
    char *fwd = slurp(path);
    assert_non_null(strstr(fwd, "MSH|^~\\&|RDX|NJ-HUB||NJ-GULOU-CHC|"));
    assert_non_null(strstr(fwd, "|ORU^R01^ORU_R01|RDX-JSPH-R-0001|P|2.5.1|||NE|NE|CHN|UNICODE"));
    /* Everything after MSH is the lab's bytes. */
    char *orig = slurp("tests/fixtures/lab/jsph_oru.hl7");
    assert_string_equal(strchr(fwd, '\r'), strchr(orig, '\r'));
    free(orig);
    free(fwd);
    /* The same message again: acknowledged, applied once. */
    run(&r, ok);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"duplicate\": true"));
    assert_non_null(strstr(r.out, "\"oru_file\": \"\""));
    rdx_run_free(&r);
    /* Potassium and creatinine are in, the PSA of the same tube is not: partial results. */
    const char *tube[] = {"lab", "status", "--db", uri, "NJGL26120101", NULL};
    run(&r, tube);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJGL26120101 (NJ-GULOU-CHC): in-testing;"));
    assert_non_null(strstr(r.out, "resulted 2160-0,2823-3"));
    assert_non_null(
        strstr(r.out, "partial-result in-testing -> in-testing, still to come: 2857-1"));
    rdx_run_free(&r);
    const char *psa[] = {
        "lab", "result", "--db", uri, "--out", dir, "tests/fixtures/lab/jsph_oru_psa.hl7", NULL};
    run(&r, psa);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "JSPH-R-0005: AA: 1 observation(s) on 1 specimen(s); ACK"));
    rdx_run_free(&r);
    run(&r, tube);
    assert_non_null(strstr(r.out, "NJGL26120101 (NJ-GULOU-CHC): resulted;"));
    rdx_run_free(&r);
    /* A new final result for a final specimen: refused; a correction: accepted. */
    const char *again[] = {"lab",
                           "result",
                           "--db",
                           uri,
                           "--out",
                           dir,
                           "tests/fixtures/lab/jsph_oru_final_again.hl7",
                           "tests/fixtures/lab/jsph_oru_corrected.hl7",
                           "tests/fixtures/lab/jsph_oru_unknown.hl7",
                           NULL};
    run(&r, again);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "JSPH-R-0004: AR: specimen NJGL26120101 already has a final "
                                  "result; send a correction"));
    assert_non_null(strstr(r.out, "JSPH-R-0002: AA: 1 observation(s) on 1 specimen(s), with "
                                  "corrections"));
    assert_non_null(strstr(r.out, "JSPH-R-0003: AE: OBR[1]: no specimen or order known"));
    rdx_run_free(&r);
    snprintf(path, sizeof path, "%s/JSPH-R-0003.ack.hl7", dir);
    ack = slurp(path);
    assert_non_null(strstr(ack, "ERR||OBR^1^2|204^Unknown key identifier^HL70357|E"));
    free(ack);
    const char *status[] = {"lab", "status", "--db", uri, "NJGL26120101", NULL};
    run(&r, status);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "result   resulted -> resulted, correction by NJ-JSPH"));
    assert_non_null(strstr(r.out, "start    received -> in-testing, implied by the result"));
    rdx_run_free(&r);
    const char *help[] = {"lab", "result", "--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_reroute_moves_only_tubes_not_picked_up(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[512];
    snprintf(uri, sizeof uri, "sqlite:%s/lab.db", dir);
    struct rdx_run r;
    const char *route[] = {"lab", "route", "--catalogue", CAT, "--db", uri, GULOU, NULL};
    run(&r, route);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    /* The serum tube is still at the clinic; the EDTA tube is on the courier run. */
    const char *scans[][3] = {{"NJGL26120101", "collect", "202612010806"},
                              {"NJGL26120102", "collect", "202612010806"},
                              {"NJGL26120102", "dispatch", "202612010900"}};
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = {"lab",       "event",        "--db", uri,
                              "--actor",   "NJ-GULOU-CHC", "--at", scans[i][2],
                              scans[i][0], scans[i][1],    NULL};
        run(&r, argv);
        assert_int_equal(r.exit_code, 0);
        rdx_run_free(&r);
    }
    const char *reroute[] = {"lab",  "reroute",      "--catalogue", CAT, "--db",    uri,
                             "--at", "202612010830", "--out",       dir, "NJ-JSPH", NULL};
    run(&r, reroute);
    assert_int_equal(r.exit_code, 0);
    /* Potassium and creatinine to Drum Tower, PSA to the Cancer Hospital: split. */
    assert_non_null(strstr(r.out, "NJGL26120101 (NJ-GULOU-CHC) 2823-3: NJ-JSPH -> NJ-DRUM ROUTED "
                                  "on NJGL26120101.1"));
    assert_non_null(strstr(r.out, "2857-1: NJ-JSPH -> NJ-CANCER ROUTED on NJGL26120101.2"));
    assert_null(strstr(r.out, "NJGL26120102"));
    assert_non_null(strstr(r.out, "1 tube(s) not yet picked up were rerouted from NJ-JSPH"));
    rdx_run_free(&r);
    /* --out: each aliquot's new lab gets an order naming it and its parent. */
    const char *aliquots[][3] = {{"NJGL26120101.1", "NJ-DRUM", "2823-3"},
                                 {"NJGL26120101.2", "NJ-CANCER", "2857-1"}};
    for (size_t i = 0; i < 2; i++) {
        char opath[700];
        snprintf(opath, sizeof opath, "%s/%s.%s.oml.hl7", dir, aliquots[i][0], aliquots[i][1]);
        rdx_buf ob;
        rdx_buf_init(&ob, 1 << 20);
        assert_int_equal(rdx_file_read(opath, &ob, NULL), RDX_OK);
        rdx_lab_hl7_msg *om = NULL;
        rdx_lab_order *oo = NULL;
        assert_int_equal(rdx_lab_hl7_parse(ob.data, ob.len, &om, NULL), RDX_OK);
        assert_int_equal(rdx_lab_order_from_hl7(om, 480, &oo, NULL), RDX_OK);
        assert_string_equal(rdx_lab_order_test_at(oo, 0)->code, aliquots[i][2]);
        assert_int_equal(rdx_lab_order_specimen_count(oo), 1);
        assert_string_equal(rdx_lab_order_specimen_at(oo, 0)->id, aliquots[i][0]);
        assert_string_equal(rdx_lab_order_specimen_at(oo, 0)->parent_id, "NJGL26120101");
        rdx_lab_order_free(oo);
        rdx_lab_hl7_free(om);
        rdx_buf_free(&ob);
    }
    const char *order[] = {
        "lab", "status", "--db", uri, "--order", "NJ-GULOU-CHC", "GULOU-20261201-0001", NULL};
    run(&r, order);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJGL26120101.1 (NJ-GULOU-CHC): collected at NJ-DRUM, tests "
                                  "2823-3,2160-0, child of NJGL26120101"));
    assert_non_null(strstr(r.out, "NJGL26120102 (NJ-GULOU-CHC): dispatched at NJ-JSPH"));
    assert_non_null(strstr(r.out, "0 of 3 tube(s) resulted"));
    rdx_run_free(&r);
    /* The stored decisions follow the tubes: routing the order again shows them. */
    run(&r, route);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "2823-3 tube NJGL26120101.1 (from NJGL26120101) -> NJ-DRUM"));
    assert_non_null(strstr(r.out, "4548-4 tube NJGL26120102 -> NJ-JSPH"));
    rdx_run_free(&r);
    /* Nothing left to move. */
    run(&r, reroute);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "0 tube(s)"));
    rdx_run_free(&r);
    const char *bad[] = {"lab", "reroute", "--catalogue", CAT, "--db", uri, "NJ-NOPE", NULL};
    run(&r, bad);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "no lab 'NJ-NOPE'"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_addon_within_stability_and_volume(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[512];
    snprintf(uri, sizeof uri, "sqlite:%s/lab.db", dir);
    struct rdx_run r;
    const char *route[] = {"lab",  "route", "--catalogue", CAT,
                           "--db", uri,     GULOU,         "tests/fixtures/lab/nj_xuanwu_oml.hl7",
                           NULL};
    run(&r, route);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    struct {
        const char *barcode, *test, *at, *want;
        int exit_code;
    } cases[] = {
        /* ALT on the Gulou serum tube 25 min after collection: it rides along. */
        {"NJGL26120101", "1742-6", "202612010830", "add-on 1742-6 accepted", 0},
        {"NJGL26120101", "1742-6", "202612010831", "already on this tube", 1},
        /* Sodium keeps 2 d refrigerated: still fine at 13:00. */
        {"NJGL26120101", "2951-2", "202612011300", "accepted", 0},
        /* Glucose keeps 3 d refrigerated: four days later it cannot ride along. */
        {"NJGL26120101", "2345-7", "202612050900", "keeps 4320 min refrigerated", 1},
        /* The Xuanwu tube holds 1 mL and its two tests use it all. */
        {"NJXW0101", "1742-6", "202612010830", "needs 0.50 mL; the tube holds 1.00 mL", 1},
        /* The lab does not do newborn screening on EDTA blood. */
        {"NJGL26120102", "54089-8", "202612010830", "does not perform Newborn screening", 1},
        {"NOPE", "1742-6", "202612010830", "no such specimen", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {"lab",  "addon",     "--catalogue",    CAT,
                              "--db", uri,         "--actor",        "NJ-GULOU-CHC",
                              "--at", cases[i].at, cases[i].barcode, cases[i].test,
                              NULL};
        run(&r, argv);
        if (r.exit_code != cases[i].exit_code ||
            (strstr(r.out, cases[i].want) == NULL && strstr(r.err, cases[i].want) == NULL)) {
            fail_msg("case %zu: exit %d, out '%s', err '%s'", i, r.exit_code, r.out, r.err);
        }
        if (cases[i].exit_code == 1 && r.out[0] != '\0') {
            assert_non_null(strstr(r.out, "new collection"));
        }
        rdx_run_free(&r);
    }
    const char *status[] = {"lab", "status", "--db", uri, "NJXW0101-A1", NULL};
    run(&r, status);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJXW0101-A1 (NJ-XUANWU-CHC): ordered"));
    assert_non_null(strstr(r.out, "tests 1742-6"));
    /* The new collection was routed by itself (a reroute event names its lab). */
    assert_non_null(strstr(r.out, "reroute  ordered -> ordered, new collection routed"));
    assert_null(strstr(r.out, "lab -,"));
    rdx_run_free(&r);
    /* A recollection opened by a rejection is routed too when the catalogue is given. */
    const char *scans[][2] = {
        {"collect", "202612010806"}, {"dispatch", "202612010900"}, {"receive", "202612010925"}};
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = {"lab",          "event",     "--db", uri,
                              "--actor",      "NJ-JSPH",   "--at", scans[i][1],
                              "NJGL26120102", scans[i][0], NULL};
        run(&r, argv);
        assert_int_equal(r.exit_code, 0);
        rdx_run_free(&r);
    }
    /* --out writes an order only for a routed recollection: it needs --catalogue. */
    const char *nocat[] = {
        "lab",  "event",        "--db",    uri,      "--actor",      "NJ-JSPH", "--out", dir,
        "--at", "202612010930", "--tests", "4548-4", "NJGL26120102", "reject",  NULL};
    run(&r, nocat);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--out needs --catalogue"));
    rdx_run_free(&r);
    const char *rej[] = {"lab",     "event",        "--db",     uri,    "--catalogue",
                         CAT,       "--actor",      "NJ-JSPH",  "--at", "202612010930",
                         "--tests", "4548-4",       "--reason", "CLOT", "--out",
                         dir,       "NJGL26120102", "reject",   NULL};
    run(&r, rej);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(
        strstr(r.out, "NJGL26120102-R1 (NJ-GULOU-CHC): new barcode for the recollection"));
    assert_non_null(strstr(r.out, "NJGL26120102-R1 4548-4 -> "));
    assert_non_null(strstr(r.out, "collected 2026-12-01 09:30"));
    /* The order the recollection's lab receives, read back by the engine. */
    const char *w = strstr(r.out, "NJGL26120102-R1: order for its lab written to ");
    assert_non_null(w);
    char opath[700];
    w += strlen("NJGL26120102-R1: order for its lab written to ");
    snprintf(opath, sizeof opath, "%.*s", (int)strcspn(w, "\n"), w);
    assert_non_null(strstr(opath, "/NJGL26120102-R1."));
    assert_non_null(strstr(opath, ".oml.hl7"));
    rdx_run_free(&r);
    rdx_buf ob;
    rdx_buf_init(&ob, 1 << 20);
    assert_int_equal(rdx_file_read(opath, &ob, NULL), RDX_OK);
    rdx_lab_hl7_msg *om = NULL;
    rdx_lab_order *oo = NULL;
    assert_int_equal(rdx_lab_hl7_parse(ob.data, ob.len, &om, NULL), RDX_OK);
    assert_int_equal(rdx_lab_order_from_hl7(om, 480, &oo, NULL), RDX_OK);
    assert_int_equal(rdx_lab_order_test_count(oo), 1);
    assert_string_equal(rdx_lab_order_test_at(oo, 0)->code, "4548-4");
    assert_string_equal(rdx_lab_order_specimen_at(oo, 0)->id, "NJGL26120102-R1");
    assert_string_equal(rdx_lab_order_specimen_at(oo, 0)->parent_id, "NJGL26120102");
    rdx_lab_order_free(oo);
    rdx_lab_hl7_free(om);
    rdx_buf_free(&ob);
    const char *gl[] = {"lab", "status", "--db", uri, "NJGL26120101", NULL};
    run(&r, gl);
    assert_non_null(strstr(r.out, "tests 2823-3,2160-0,2857-1,1742-6,2951-2"));
    assert_non_null(strstr(r.out, "add-on   ordered -> ordered, add-on 1742-6 accepted"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_route_out_writes_one_order_per_lab(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char path[600];
    struct rdx_run r;
    const char *argv[] = {
        "lab", "route", "--catalogue", CAT, "--db", "sqlite::memory:", "--out", dir, SPLIT, NULL};
    run(&r, argv);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    snprintf(path, sizeof path, "%s/MAS-E-0042.MAS-CCL.oml.hl7", dir);
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    assert_int_equal(rdx_file_read(path, &b, NULL), RDX_OK);
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    assert_int_equal(rdx_lab_hl7_parse(b.data, b.len, &m, NULL), RDX_OK);
    assert_int_equal(rdx_lab_order_from_hl7(m, 480, &o, NULL), RDX_OK);
    /* Potassium and TSH only, on the child tube whose parent is the clinic's tube. */
    assert_int_equal(rdx_lab_order_test_count(o), 2);
    assert_string_equal(rdx_lab_order_test_at(o, 0)->code, "2823-3");
    assert_string_equal(rdx_lab_order_test_at(o, 1)->code, "3016-3");
    assert_int_equal(rdx_lab_order_specimen_count(o), 1);
    assert_string_equal(rdx_lab_order_specimen_at(o, 0)->id, "MAE0042.1");
    assert_string_equal(rdx_lab_order_specimen_at(o, 0)->parent_id, "MAE0042");
    assert_string_equal(rdx_lab_order_patient_id(o), "MA77001");
    rdx_buf v;
    rdx_buf_init(&v, 256);
    assert_int_equal(rdx_lab_hl7_get(m, "MSH-6", &v, NULL), RDX_OK);
    assert_string_equal((char *)v.data, "MAS-CCL");
    rdx_buf_free(&v);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_buf_reset(&b);
    snprintf(path, sizeof path, "%s/MAS-E-0042.NJ-JSPH.oml.hl7", dir);
    assert_int_equal(rdx_file_read(path, &b, NULL), RDX_OK);
    assert_non_null(strstr((char *)b.data, "OBR|3|ME-42||2857-1^PSA^LN"));
    assert_non_null(strstr((char *)b.data, "SPM|3|MAE0042.2&MAS-EAST-CHC|MAE0042&MAS-EAST-CHC|"));
    assert_null(strstr((char *)b.data, "2823-3"));
    /* What the clinic gets back: the ACK and the ORL^O22 saying where each test went. */
    rdx_buf_reset(&b);
    snprintf(path, sizeof path, "%s/MAS-E-0042.ack.hl7", dir);
    assert_int_equal(rdx_file_read(path, &b, NULL), RDX_OK);
    assert_non_null(
        strstr((char *)b.data, "|ACK^O21^ACK|ACK-MAS-E-0042|P|2.5.1\rMSA|AA|MAS-E-0042\r"));
    rdx_buf_reset(&b);
    snprintf(path, sizeof path, "%s/MAS-E-0042.orl.hl7", dir);
    assert_int_equal(rdx_file_read(path, &b, NULL), RDX_OK);
    assert_non_null(
        strstr((char *)b.data, "|ORL^O22^ORL_O22|RSP-MAS-E-0042|P|2.5.1\rMSA|AA|MAS-E-0042|"));
    assert_non_null(strstr((char *)b.data, "^99RDX^NJ-JSPH^"));
    rdx_buf_free(&b);
    rdx_test_rmrf(dir);
    free(dir);
}

/* lab-down is remembered by later runs until lab-up; labs lists it. */
static void test_cli_lab_down_is_remembered(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[600];
    snprintf(uri, sizeof uri, "sqlite:%s/lab.db", dir);
    struct rdx_run r;
    const char *down[] = {"lab", "lab-down", "--catalogue",      CAT,       "--db",
                          uri,   "--reason", "analyser failure", "NJ-JSPH", NULL};
    run(&r, down);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJ-JSPH marked down"));
    assert_non_null(strstr(r.out, "0 tube(s) not yet picked up were rerouted from NJ-JSPH"));
    rdx_run_free(&r);
    run(&r, down);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJ-JSPH was already down"));
    rdx_run_free(&r);
    const char *labs[] = {"lab", "labs", "--db", uri, NULL};
    run(&r, labs);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJ-JSPH down since "));
    assert_non_null(strstr(r.out, "by NJ-HUB: analyser failure"));
    rdx_run_free(&r);
    /* A later run routes around it. */
    const char *route[] = {"lab", "route", "--catalogue", CAT, "--db", uri, GULOU, NULL};
    run(&r, route);
    assert_int_equal(r.exit_code, 0);
    assert_null(strstr(r.out, "-> NJ-JSPH"));
    rdx_run_free(&r);
    const char *up[] = {"lab", "lab-up", "--db", uri, "NJ-JSPH", NULL};
    run(&r, up);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "NJ-JSPH is up again"));
    rdx_run_free(&r);
    run(&r, labs);
    assert_non_null(strstr(r.out, "no lab is marked down"));
    rdx_run_free(&r);
    const char *unknown[] = {"lab", "lab-down", "--catalogue", CAT, "--db", uri, "NJ-NOPE", NULL};
    run(&r, unknown);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx lab lab-down: " CAT ": no lab 'NJ-NOPE' in the catalogue"));
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_cli_every_lab_verb_has_help(void **state)
{
    (void)state;
    const char *verbs[] = {"route",   "event", "status",   "result", "overdue",
                           "reroute", "addon", "lab-down", "lab-up", "labs"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        struct rdx_run r;
        char want[64];
        const char *argv[] = {"lab", verbs[i], "--help", NULL};
        run(&r, argv);
        snprintf(want, sizeof want, "Usage: rdx lab %s", verbs[i]);
        assert_int_equal(r.exit_code, 0);
        assert_non_null(strstr(r.out, want));
        rdx_run_free(&r);
        /* And no arguments at all is a usage error (overdue needs none: it is not run here,
         * as it would open the default store in the working directory). */
        if (strcmp(verbs[i], "overdue") != 0 && strcmp(verbs[i], "labs") != 0) {
            const char *bare[] = {"lab", verbs[i], NULL};
            run(&r, bare);
            assert_int_equal(r.exit_code, 2);
            assert_non_null(strstr(r.err, "Try 'rdx lab"));
            rdx_run_free(&r);
        }
    }
}

/*
 * The shared option reader (cli/util.c rdx_cli_parse_opts) as the lab and
 * ECG verbs use it: usage errors exit 2 naming the option, --help wins
 * wherever it stands among the options (exit 0), a value may look like an
 * option, "--" ends the options, and operands move around options.
 */
static void test_cli_options_are_read_alike(void **state)
{
    (void)state;
    struct {
        const char *argv[10];
        int exit_code;
        const char *out, *err;
    } cases[] = {
        {{"lab", "status", "--order", "NJ-GULOU-CHC", NULL},
         2,
         NULL,
         "--order needs SENDER CONTROL"},
        {{"lab", "event", "--actor", NULL}, 2, NULL, "rdx lab event: --actor needs a value"},
        {{"lab", "event", "--frob", "--help", NULL}, 0, "Usage: rdx lab event", NULL},
        {{"lab", "event", "--actor", "X", "A", "collect", "extra", NULL},
         2,
         NULL,
         "too many arguments ('extra')"},
        {{"lab", "overdue", "--db", "sqlite::memory:", "stray", NULL},
         2,
         NULL,
         "unknown argument 'stray'"},
        {{"lab", "labs", "--db", "sqlite::memory:", "x", NULL}, 2, NULL, "no argument expected"},
        {{"lab", "reroute", "--actor", "X", NULL}, 2, NULL, "unknown option '--actor'"},
        {{"lab", "lab-up", "--db", "sqlite::memory:", "A", "B", NULL},
         2,
         NULL,
         "one LAB at a time"},
        /* "--help" as the value of --db is a value, not a request for help. */
        {{"lab", "labs", "--db", "--help", "--json", "x", NULL}, 2, NULL, "no argument expected"},
        /* After "--" an operand may start with '-': a file that does not exist. */
        {{"lab", "result", "--db", "sqlite::memory:", "--", "-missing.hl7", NULL},
         1,
         NULL,
         "-missing.hl7"},
        {{"ecg", "detect", "-j", NULL}, 2, NULL, "rdx ecg detect: -j needs a value"},
        {{"ecg", "detect", "-j", "0", "x/100", NULL}, 2, NULL, "bad -j '0'"},
        {{"ecg", "filter", "--bogus", "--help", NULL}, 0, "Usage: rdx ecg filter", NULL},
        {{"ecg", "plot", "--frob", "1", NULL}, 2, NULL, "unknown option '--frob'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rdx_run r;
        run(&r, cases[i].argv);
        if (r.exit_code != cases[i].exit_code ||
            (cases[i].out != NULL && strstr(r.out, cases[i].out) == NULL) ||
            (cases[i].err != NULL && strstr(r.err, cases[i].err) == NULL)) {
            fail_msg("case %zu: exit %d, out '%.200s', err '%s'", i, r.exit_code, r.out, r.err);
        }
        rdx_run_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_route_golden_text_and_json),
        cmocka_unit_test(test_cli_route_store_is_idempotent_and_keeps_load),
        cmocka_unit_test(test_cli_route_errors_and_usage),
        cmocka_unit_test(test_cli_event_and_status_follow_a_tube),
        cmocka_unit_test(test_cli_result_acks_forwards_and_corrects),
        cmocka_unit_test(test_cli_reroute_moves_only_tubes_not_picked_up),
        cmocka_unit_test(test_cli_addon_within_stability_and_volume),
        cmocka_unit_test(test_cli_route_out_writes_one_order_per_lab),
        cmocka_unit_test(test_cli_lab_down_is_remembered),
        cmocka_unit_test(test_cli_every_lab_verb_has_help),
        cmocka_unit_test(test_cli_options_are_read_alike),
    };
    return cmocka_run_group_tests_name("lab_cli", tests, NULL, NULL);
}
