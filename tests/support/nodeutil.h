/*
 * Test support for tests that run real `rdx node serve` processes on
 * loopback: starting and stopping them, learning their ports, certificates
 * from the network CA, queueing cases with the rdx binary, and reading or
 * polling the nodes' node.db. Waits are bounded polls of the nodes' own
 * state, never timings. For the calling test's thread only; the helpers that
 * say "fails the test" do so with cmocka's assertions.
 */
#ifndef RDX_NODEUTIL_H
#define RDX_NODEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Start `rdx node serve --config ini` (rdx_test_rdx_bin) as a child, stdin
 * from /dev/null, stderr appended to log (its log lines), stdout inherited.
 * Returns its PID; fails the test when it cannot be spawned.
 */
pid_t rdx_test_spawn_node(const char *ini, const char *log);

/*
 * Stop the node child pid (pid <= 0: nothing) with SIGTERM, reap it, and fail
 * the test unless it exited with status 0 (a clean stop).
 */
void rdx_test_stop_node(pid_t pid);

/*
 * Wait up to wait_ms (polled every 25 ms) for data_dir/node.port, which a
 * node writes once bound, and return the port; fails the test when it never
 * holds one.
 */
unsigned rdx_test_wait_port(const char *data_dir, long wait_ms);

/*
 * Issue institution inst a key and certificate from the CA in ca_dir (the rdx
 * pki layout), named inst, in city; not_before (Unix seconds) and days as in
 * rdx_transport_issue_cfg (0: now, the default validity). Fails the test,
 * naming inst, when the CA refuses.
 */
void rdx_test_issue(const char *ca_dir, const char *inst, const char *city, int64_t not_before,
                    int days);

/*
 * `rdx case send --config ini --to to --kind kind FILE...` (files NULL-
 * terminated); the case ID it prints goes into id (33 bytes at least). Fails
 * the test, showing rdx's stderr, when it does not exit 0 or prints no ID.
 */
void rdx_test_send_case(const char *ini, const char *to, const char *kind, const char *const *files,
                        char *id);

/*
 * Run sql (one statement; ?1 bound to arg unless arg is NULL) on the SQLite
 * database at db_path, opened read-write without creating it, with a 5 s busy
 * timeout. Returns the first column of the first row, 0 when the statement
 * gives no row (an UPDATE), -1 when the database does not open or the
 * statement fails.
 */
long long rdx_test_sql(const char *db_path, const char *sql, const char *arg);

/*
 * Poll rdx_test_sql(db_path, sql, arg) every 25 ms until it gives want;
 * after wait_ms fail the test, naming the database, the statement and the
 * last value.
 */
void rdx_test_wait_sql(const char *db_path, const char *sql, const char *arg, long long want,
                       long wait_ms);

#endif
