/*
 * The inbox as the dispatcher's work queue (transport/inbox.c), without a
 * network: cases are put in a node's inbox table as the node would leave
 * them, then taken, completed, failed and parked through the public API.
 * Completion queues every output and marks the case in one transaction, only
 * once, with output IDs derived from the input; a failure is retried, then
 * parked, and never hides the other cases.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdx/transport.h"
#include "support/testutil.h"

struct world {
    char *dir;
    char ini[4200], db[4200], data[4200], f1[4200], f2[4200];
    rdx_transport_config *cfg;
};

static void sql(const char *db_path, const char *q)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", q, msg);
    }
    sqlite3_close(db);
}

static int sql_int(const char *db_path, const char *q)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int v = -1;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW) {
        v = sqlite3_column_int(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static int count_nothing(void *u, const rdx_transport_case_info *c)
{
    (void)u;
    (void)c;
    return 0;
}

static void add_inbox(struct world *w, const char *sender, const char *id, const char *kind,
                      const char *state)
{
    char q[600];
    snprintf(q, sizeof q,
             "INSERT INTO inbox(sender, case_id, kind, created_ms, manifest, state, first_ms, "
             "done_ms) VALUES ('%s', '%s', '%s', 1, x'00', '%s', 1, 1)",
             sender, id, kind, state);
    sql(w->db, q);
}

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->dir = rdx_test_tmpdir();
    assert_non_null(w->dir);
    snprintf(w->ini, sizeof w->ini, "%s/hub.ini", w->dir);
    snprintf(w->data, sizeof w->data, "%s/data", w->dir);
    snprintf(w->db, sizeof w->db, "%s/data/node.db", w->dir);
    snprintf(w->f1, sizeof w->f1, "%s/report.txt", w->dir);
    snprintf(w->f2, sizeof w->f2, "%s/in-reply-to.txt", w->dir);
    rdx_test_write_text(w->ini,
                        "[node]\nid = NJ-HUB\nlisten = 127.0.0.1:0\ncert = c.crt\nkey = c.key\n"
                        "ca = ca.crt\ncrl = crl.pem\ndata = data\n[peers]\n"
                        "MAS-EAST-CHC = 127.0.0.1:1\nZJ-CCL = 127.0.0.1:2\n"
                        "[dispatch]\nengines = ecg\n");
    rdx_test_write_text(w->f1, "74 beats\n");
    rdx_test_write_text(w->f2, "aaaa0000000000000000000000000001\n");
    assert_int_equal(rdx_transport_config_load(w->ini, &w->cfg, NULL), RDX_OK);
    /* Any listing creates node.db with the transport's schema. */
    assert_int_equal(rdx_transport_case_list(w->cfg, 3, count_nothing, NULL, NULL), RDX_OK);
    add_inbox(w, "MAS-EAST-CHC", "aaaa0000000000000000000000000001", "ecg", "complete");
    add_inbox(w, "MAS-EAST-CHC", "aaaa0000000000000000000000000002", "ecg", "complete");
    add_inbox(w, "ZJ-CCL", "bbbb0000000000000000000000000001", "lab-result", "receiving");
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    rdx_transport_config_free(w->cfg);
    rdx_test_rmrf(w->dir);
    free(w->dir);
    free(w);
    return 0;
}

static size_t pending(struct world *w, int64_t now, rdx_transport_inbox_case *out)
{
    size_t n = 99;
    assert_int_equal(rdx_transport_inbox_pending(w->cfg, now, out, 8, &n, NULL), RDX_OK);
    return n;
}

static void test_inbox_pending_lists_complete_cases_only(void **state)
{
    struct world *w = *state;
    rdx_transport_inbox_case c[8];
    assert_int_equal(pending(w, INT64_MAX, c), 2);
    assert_string_equal(c[0].sender, "MAS-EAST-CHC");
    assert_string_equal(c[0].kind, "ecg");
    assert_int_equal(c[0].attempts, 0);
}

static void test_inbox_complete_queues_outputs_once(void **state)
{
    struct world *w = *state;
    const char *id = "aaaa0000000000000000000000000001";
    const char *files[] = {w->f2, w->f1};
    rdx_transport_output outs[] = {{"MAS-EAST-CHC", RDX_KIND_REPORT, files, 2},
                                   {"ZJ-CCL", RDX_KIND_OTHER, files + 1, 1}};
    int already = -1;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_transport_inbox_complete(w->cfg, "MAS-EAST-CHC", id, outs, 2,
                                                  "ecg: 74 beats", &already, &err),
                     RDX_OK);
    assert_int_equal(already, 0);
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM outbox WHERE state='queued'"), 2);
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM audit WHERE event='case-processed'"), 1);
    rdx_transport_inbox_case c[8];
    assert_int_equal(pending(w, INT64_MAX, c), 1);
    assert_string_equal(c[0].case_id, "aaaa0000000000000000000000000002");

    /* Again (a restart that redid the work): nothing more is queued. */
    assert_int_equal(
        rdx_transport_inbox_complete(w->cfg, "MAS-EAST-CHC", id, outs, 2, NULL, &already, &err),
        RDX_OK);
    assert_int_equal(already, 1);
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM outbox"), 2);
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM audit WHERE event='case-processed'"), 1);

    /* The answer names its case, so the sender can match it. */
    char reply[65];
    sql(w->db, "INSERT INTO inbox(sender, case_id, kind, created_ms, manifest, state, first_ms) "
               "VALUES ('ZJ-CCL', 'cccc', 'report', 1, x'00', 'complete', 2)");
    assert_int_equal(rdx_transport_inbox_find_reply(w->cfg, NULL, id, reply, NULL), RDX_ENOTFOUND);
}

static void test_inbox_output_ids_derive_from_the_case(void **state)
{
    struct world *w = *state;
    const char *files[] = {w->f1};
    rdx_transport_output out = {"MAS-EAST-CHC", RDX_KIND_REPORT, files, 1};
    assert_int_equal(rdx_transport_inbox_complete(w->cfg, "MAS-EAST-CHC",
                                                  "aaaa0000000000000000000000000002", &out, 1, NULL,
                                                  NULL, NULL),
                     RDX_OK);
    /* A second node with the same ID given the same case derives the same output ID. */
    struct world *w2 = NULL;
    assert_int_equal(setup((void **)&w2), 0);
    assert_int_equal(rdx_transport_inbox_complete(w2->cfg, "MAS-EAST-CHC",
                                                  "aaaa0000000000000000000000000002", &out, 1, NULL,
                                                  NULL, NULL),
                     RDX_OK);
    char q[200];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(w2->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT case_id FROM outbox", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE case_id='%s'",
             (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_int_equal(sql_int(w->db, q), 1);
    teardown((void **)&w2);
}

/* An output on the node's own filesystem is hard-linked into the spool, not copied. */
static void test_inbox_outputs_are_linked_not_copied(void **state)
{
    struct world *w = *state;
    const char *files[] = {w->f2, w->f1};
    rdx_transport_output out = {"MAS-EAST-CHC", RDX_KIND_REPORT, files, 2};
    assert_int_equal(rdx_transport_inbox_complete(w->cfg, "MAS-EAST-CHC",
                                                  "aaaa0000000000000000000000000001", &out, 1, NULL,
                                                  NULL, NULL),
                     RDX_OK);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char spool[4400];
    assert_int_equal(sqlite3_open(w->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT case_id FROM outbox", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    snprintf(spool, sizeof spool, "%s/outbox/%s/1", w->data,
             (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    struct stat a, b;
    assert_int_equal(stat(w->f1, &a), 0);
    assert_int_equal(stat(spool, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_int_equal((int)b.st_nlink, 2);
    /* The original removed (the dispatcher clears its work directory): the spool keeps it. */
    assert_int_equal(unlink(w->f1), 0);
    assert_int_equal(stat(spool, &b), 0);
    assert_int_equal((long long)b.st_size, 9);
}

static void test_inbox_failure_retried_then_parked(void **state)
{
    struct world *w = *state;
    const char *id = "aaaa0000000000000000000000000001";
    int parked = -1;
    rdx_transport_inbox_case c[8];
    assert_int_equal(
        rdx_transport_inbox_fail(w->cfg, "MAS-EAST-CHC", id, "no .hea", 3, 60000, &parked, NULL),
        RDX_OK);
    assert_int_equal(parked, 0);
    /* Not due yet: the other case is still offered. */
    assert_int_equal(pending(w, rdx_clock_wall_ms(), c), 1);
    assert_string_equal(c[0].case_id, "aaaa0000000000000000000000000002");
    assert_int_equal(pending(w, INT64_MAX, c), 2);
    assert_int_equal(c[0].attempts + c[1].attempts, 1);
    assert_int_equal(
        rdx_transport_inbox_fail(w->cfg, "MAS-EAST-CHC", id, "no .hea", 3, 1, &parked, NULL),
        RDX_OK);
    assert_int_equal(parked, 0);
    assert_int_equal(
        rdx_transport_inbox_fail(w->cfg, "MAS-EAST-CHC", id, "no .hea", 3, 1, &parked, NULL),
        RDX_OK);
    assert_int_equal(parked, 1);
    assert_int_equal(pending(w, INT64_MAX, c), 1);
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_transport_inbox_fail(w->cfg, "MAS-EAST-CHC", id, "x", 3, 1, NULL, &err),
                     RDX_ESTATE);
    assert_non_null(strstr(err.msg, "already parked"));
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM audit WHERE event='case-retry'"), 2);
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM audit WHERE event='case-parked'"), 1);
    assert_int_equal(
        sql_int(w->db, "SELECT count(*) FROM dispatch WHERE state='parked' AND last_error='no "
                       ".hea' AND attempts=3"),
        1);
}

static void test_inbox_bad_output_commits_nothing(void **state)
{
    struct world *w = *state;
    const char *files[] = {w->f1};
    rdx_transport_output outs[] = {{"MAS-EAST-CHC", RDX_KIND_REPORT, files, 1},
                                   {"YZ-CCL", RDX_KIND_REPORT, files, 1}};
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_transport_inbox_complete(w->cfg, "MAS-EAST-CHC",
                                                  "aaaa0000000000000000000000000001", outs, 2, NULL,
                                                  NULL, &err),
                     RDX_EINVAL);
    assert_non_null(strstr(err.msg, "no [peers] entry for 'YZ-CCL'"));
    assert_int_equal(sql_int(w->db, "SELECT count(*) FROM outbox"), 0);
    rdx_transport_inbox_case c[8];
    assert_int_equal(pending(w, INT64_MAX, c), 2);
    /* The first output's staged spool is gone too. */
    char outbox[4300];
    snprintf(outbox, sizeof outbox, "%s/outbox", w->data);
    size_t entries = 0;
    DIR *d = opendir(outbox);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        entries += e->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    assert_int_equal(entries, 0);
    /* A case that is not complete, or not there, cannot be completed. */
    assert_int_equal(rdx_transport_inbox_complete(w->cfg, "ZJ-CCL",
                                                  "bbbb0000000000000000000000000001", NULL, 0, NULL,
                                                  NULL, NULL),
                     RDX_ESTATE);
    assert_int_equal(
        rdx_transport_inbox_complete(w->cfg, "ZJ-CCL", "nope", NULL, 0, NULL, NULL, NULL),
        RDX_ENOTFOUND);
}

static int journey_of(void *u, const rdx_transport_dispatch_info *d)
{
    char *out = u;
    size_t l = strlen(out);
    snprintf(out + l, 512 - l, "%s:%s ", d->case_id + 28, d->state);
    return 0;
}

static void test_inbox_journeys(void **state)
{
    struct world *w = *state;
    char got[512] = "";
    const char *files[] = {w->f1};
    rdx_transport_output out = {"MAS-EAST-CHC", RDX_KIND_REPORT, files, 1};
    assert_int_equal(rdx_transport_inbox_complete(w->cfg, "MAS-EAST-CHC",
                                                  "aaaa0000000000000000000000000001", &out, 1, NULL,
                                                  NULL, NULL),
                     RDX_OK);
    assert_int_equal(rdx_transport_inbox_fail(w->cfg, "MAS-EAST-CHC",
                                              "aaaa0000000000000000000000000002", "boom", 1, 1,
                                              NULL, NULL),
                     RDX_OK);
    assert_int_equal(rdx_transport_dispatch_list(w->cfg, journey_of, got, NULL), RDX_OK);
    assert_string_equal(got, "0001:processed 0002:parked 0001:receiving ");
    sql(w->db, "UPDATE outbox SET state='acked'");
    got[0] = '\0';
    assert_int_equal(rdx_transport_dispatch_list(w->cfg, journey_of, got, NULL), RDX_OK);
    assert_string_equal(got, "0001:replied 0002:parked 0001:receiving ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inbox_pending_lists_complete_cases_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inbox_complete_queues_outputs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_output_ids_derive_from_the_case, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inbox_outputs_are_linked_not_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_failure_retried_then_parked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_bad_output_commits_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_journeys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
