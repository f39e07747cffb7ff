/*
 * The audit log: appends chain by SHA-256, the table refuses UPDATE and
 * DELETE, and verification names the first record that was altered, removed
 * or re-linked, through the library and through `rdx node audit --verify`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/testutil.h"

struct fx {
    char *dir;
    char data[4200], ini[4200];
    sqlite3 *db;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    rdx_error err;
    f->dir = rdx_test_tmpdir();
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    snprintf(f->ini, sizeof f->ini, "%s/node.ini", f->dir);
    const char ini[] = "[node]\nid = hub\nlisten = 127.0.0.1:0\ncert = c\nkey = k\nca = a\n"
                       "crl = r\ndata = data\n";
    if (rdx_tp_write_file(f->ini, ini, sizeof ini - 1, 0644, 1, &err) != RDX_OK ||
        rdx_tp_node_db_open(f->data, &f->db, &err) != RDX_OK) {
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        char obj[32];
        snprintf(obj, sizeof obj, "case-%d", i);
        if (rdx_tp_audit(f->db, "hub", i % 2 ? "case-received" : "connection-accepted",
                         RDX_TP_OUTCOME_SUCCESS, "gulou-chc", obj, "detail", &err) != RDX_OK) {
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sqlite3_close(f->db);
    rdx_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void test_audit_chain_verifies(void **state)
{
    struct fx *f = *state;
    long long n = 0, bad = 0;
    rdx_error err;
    assert_int_equal(rdx_tp_audit_verify(f->db, &n, &bad, &err), RDX_OK);
    assert_int_equal(n, 5);
    /* Appends inside a caller's transaction join it, and roll back with it. */
    assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(rdx_tp_audit(f->db, "hub", "case-received", 0, "x", "y", "z", &err), RDX_OK);
    assert_int_equal(sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(rdx_tp_audit_verify(f->db, &n, &bad, &err), RDX_OK);
    assert_int_equal(n, 5);
}

static void test_audit_is_append_only(void **state)
{
    struct fx *f = *state;
    char *msg = NULL;
    assert_int_not_equal(
        sqlite3_exec(f->db, "UPDATE audit SET detail='edited' WHERE seq=2", NULL, NULL, &msg),
        SQLITE_OK);
    assert_non_null(strstr(msg, "append-only"));
    sqlite3_free(msg);
    assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM audit WHERE seq=2", NULL, NULL, NULL),
                         SQLITE_OK);
}

static void tamper(struct fx *f, const char *sql)
{
    assert_int_equal(sqlite3_exec(f->db,
                                  "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);
}

static void test_audit_detects_edit(void **state)
{
    struct fx *f = *state;
    long long n = 0, bad = 0;
    rdx_error err;
    tamper(f, "UPDATE audit SET institution='someone-else' WHERE seq=3");
    assert_int_equal(rdx_tp_audit_verify(f->db, &n, &bad, &err), RDX_ECHECKSUM);
    assert_int_equal(bad, 3);
    assert_non_null(strstr(err.msg, "record 3: its contents do not match its hash"));
    /* The same through the command line, which exits 1. */
    struct rdx_run r;
    const char *argv[] = {"node", "audit", "--config", f->ini, "--verify", NULL};
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "audit record 3"));
    assert_non_null(strstr(r.err, "node.db"));
    rdx_run_free(&r);
}

static void test_audit_detects_removal_and_relink(void **state)
{
    struct fx *f = *state;
    long long n = 0, bad = 0;
    rdx_error err;
    tamper(f, "DELETE FROM audit WHERE seq=2");
    assert_int_equal(rdx_tp_audit_verify(f->db, &n, &bad, &err), RDX_ECHECKSUM);
    assert_int_equal(bad, 3);
    assert_non_null(strstr(err.msg, "missing"));
    /* Renumbering to hide the gap breaks the links instead. */
    assert_int_equal(
        sqlite3_exec(f->db, "UPDATE audit SET seq = seq - 1 WHERE seq > 2", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(rdx_tp_audit_verify(f->db, &n, &bad, &err), RDX_ECHECKSUM);
    assert_int_equal(bad, 2);
}

static void test_audit_cli_lists(void **state)
{
    struct fx *f = *state;
    struct rdx_run r;
    const char *argv[] = {"node", "audit", "--config", f->ini, "--json", NULL};
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"seq\":5"));
    assert_non_null(strstr(r.out, "\"event\":\"case-received\""));
    assert_non_null(strstr(r.out, "\"institution\":\"gulou-chc\""));
    rdx_run_free(&r);
    const char *ver[] = {"node", "audit", "--config", f->ini, "--verify", NULL};
    assert_int_equal(rdx_run_rdx(&r, ver), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "intact: 5 records"));
    rdx_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_is_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_detects_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_detects_removal_and_relink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cli_lists, setup, teardown),
    };
    return cmocka_run_group_tests_name("transport_audit", tests, NULL, NULL);
}
