/* Test support for tests that run real rdx nodes; see nodeutil.h. */
#define _GNU_SOURCE
#include "nodeutil.h"
#include "testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "rdx/common.h"
#include "rdx/transport.h"

extern char **environ;

pid_t rdx_test_spawn_node(const char *ini, const char *log)
{
    const char *bin = rdx_test_rdx_bin();
    const char *argv[] = {bin, "node", "serve", "--config", ini, NULL};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

void rdx_test_stop_node(pid_t pid)
{
    int status = 0;
    if (pid <= 0) {
        return;
    }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

unsigned rdx_test_wait_port(const char *data_dir, long wait_ms)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/node.port", data_dir);
    for (long waited = 0; waited < wait_ms; waited += 25) {
        rdx_buf b;
        rdx_buf_init(&b, 64);
        if (rdx_file_read(p, &b, NULL) == RDX_OK && b.len > 1) {
            int64_t v = 0;
            size_t n = b.len;
            while (n > 0 && b.data[n - 1] == '\n') {
                n--;
            }
            rdx_status st = rdx_parse_i64((const char *)b.data, n, 1, 65535, &v);
            rdx_buf_free(&b);
            if (st == RDX_OK) {
                return (unsigned)v;
            }
        }
        rdx_buf_free(&b);
        rdx_test_sleep_ms(25);
    }
    fail_msg("node did not start: no %s", p);
    return 0;
}

void rdx_test_issue(const char *ca_dir, const char *inst, const char *city, int64_t not_before,
                    int days)
{
    rdx_transport_ca *ca = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_ca_open(ca_dir, &ca, &err), RDX_OK);
    rdx_transport_issue_cfg cfg = {.institution = inst,
                                   .name = inst,
                                   .city = city,
                                   .days = days,
                                   .not_before_unix = not_before};
    if (rdx_transport_ca_issue(ca, &cfg, NULL, &err) != RDX_OK) {
        fail_msg("issue %s: %s", inst, err.msg);
    }
    rdx_transport_ca_free(ca);
}

void rdx_test_send_case(const char *ini, const char *to, const char *kind, const char *const *files,
                        char *id)
{
    const char *argv[32] = {"case", "send", "--config", ini, "--to", to, "--kind", kind};
    size_t n = 8;
    for (size_t i = 0; files[i] != NULL; i++) {
        assert_true(n < 31);
        argv[n++] = files[i];
    }
    argv[n] = NULL;
    char *out = rdx_test_rdx_ok(0, argv);
    assert_int_equal(strlen(out), 33);
    memcpy(id, out, 32);
    id[32] = '\0';
    free(out);
}

long long rdx_test_sql(const char *db_path, const char *sql, const char *arg)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
            (arg == NULL || sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC) == SQLITE_OK)) {
            int rc = sqlite3_step(s);
            v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : rc == SQLITE_DONE ? 0 : -1;
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

void rdx_test_wait_sql(const char *db_path, const char *sql, const char *arg, long long want,
                       long wait_ms)
{
    long long v = -1;
    for (long waited = 0; waited < wait_ms; waited += 25) {
        if ((v = rdx_test_sql(db_path, sql, arg)) == want) {
            return;
        }
        rdx_test_sleep_ms(25);
    }
    fail_msg("%s: '%s' is %lld, not %lld", db_path, sql, v, want);
}
