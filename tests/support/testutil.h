/*
 * Test support: allocation-failure injection (the out-of-memory sweep), the
 * location of test data, and running the rdx binary as a user would.
 */
#ifndef RDX_TESTUTIL_H
#define RDX_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Make the n-th allocation from now (1-based) fail, and every one after it
 * until disarmed; n == 0 disarms. Only malloc/calloc/realloc calls made from
 * rdx's own code are counted (test binaries link with --wrap).
 */
void rdx_oom_arm(unsigned long n);
/* Allocations attempted since the last arm. */
unsigned long rdx_oom_calls(void);

/*
 * Out-of-memory sweep: for k = 1, 2, 3 ... run fn with allocation k failing.
 * fn returns 0 when it succeeded and nonzero when it failed cleanly. The sweep
 * ends when a run makes fewer than k allocations (nothing left to fail) and
 * asserts that every earlier run failed cleanly (ASan's leak checker catches
 * what they leaked). Returns the number of allocation points exercised.
 */
unsigned long rdx_oom_sweep(int (*fn)(void *ctx), void *ctx);

/* $RDX_DATA (default ../shared/data); NULL when the directory is absent. */
const char *rdx_test_data_dir(void);

/* Path of a file under tests/fixtures/ (static buffer per call site use). */
const char *rdx_test_fixture(char *out, size_t outsz, const char *rel);

/* Result of running a command: exit code and captured output (NUL-terminated). */
struct rdx_run {
    int exit_code; /* -1 when it died of a signal */
    char *out;
    char *err;
};

/*
 * Run the rdx binary ($RDX_BIN, default build/rdx) with argv (NULL-terminated,
 * without the program name), stdin from /dev/null. Free with rdx_run_free.
 */
int rdx_run_rdx(struct rdx_run *r, const char *const *argv);
void rdx_run_free(struct rdx_run *r);

/* Make a fresh temporary directory and return its path (free() it). */
char *rdx_test_tmpdir(void);
/* rm -rf path (for test cleanup). */
void rdx_test_rmrf(const char *path);
/*
 * rdx_test_rmrf(path), unless $RDX_KEEP is set: then path stays, for a look
 * after a failure, and "kept PATH" goes to stderr.
 */
void rdx_test_rmrf_unless_kept(const char *path);

/*
 * Helpers for tests that run real rdx processes (networks of nodes). Waits
 * built on them are bounded polls of the processes' own state, never timings.
 * All are for the calling test's thread only; those that say "fails the test"
 * do so with cmocka's assertions.
 */

/* Sleep ms milliseconds (the pause between two polls). */
void rdx_test_sleep_ms(long ms);

/* The rdx binary the tests run: $RDX_BIN, or build/rdx when it is unset or empty. */
const char *rdx_test_rdx_bin(void);

/* Write text (NUL-terminated) to path, replacing it; fails the test when it cannot. */
void rdx_test_write_text(const char *path, const char *text);

/*
 * Write size pseudo-random bytes to path, the same bytes for the same seed (a
 * linear congruential generator, the top byte of each step); fails the test
 * when it cannot. Streams: any size.
 */
void rdx_test_make_file(const char *path, size_t size, unsigned seed);

/* Whether files a and b both read and hold the same bytes. Streams: any size. */
int rdx_test_files_equal(const char *a, const char *b);

/* Whether the file at path reads (rdx_test_slurp) and contains needle. */
int rdx_test_file_contains(const char *path, const char *needle);

/*
 * The whole of the file at path, NUL-terminated (malloc'd; free() it), read
 * through rdx_file_read (cap 64 MiB); NULL when it cannot be read (absent,
 * too large, out of memory). path must not be NULL.
 */
char *rdx_test_slurp(const char *path);

/* How many times needle occurs in hay, without overlap (both non-NULL, needle non-empty). */
size_t rdx_test_count(const char *hay, const char *needle);

/*
 * Run the rdx binary with argv as rdx_run_rdx does and return its stdout
 * (malloc'd; free() it) when it exits with want; otherwise print its stderr
 * and fail the test. argv[0] and argv[1] (the group and verb) must be set.
 */
char *rdx_test_rdx_ok(int want, const char *const *argv);

/*
 * The value of the first "key":"..." at or after p in a JSON text, copied into
 * out (outsz bytes, NUL-terminated). Fails the test when the key is absent or
 * the value does not fit. A test helper: it does not unescape.
 */
void rdx_test_json_str(const char *p, const char *key, char *out, size_t outsz);

/* The PID written in the PID file at path; 0 when the file is absent or holds no number. */
pid_t rdx_test_pid_file(const char *path);

/* Whether pid has exited: gone from /proc, or a zombie (or dead) nobody has reaped yet. */
int rdx_test_pid_exited(pid_t pid);

/*
 * Wait up to wait_ms for pid to exit (rdx_test_pid_exited, polled every
 * 20 ms). When it never does: SIGKILL it and fail the test, naming what
 * (a short description of the process, non-NULL).
 */
void rdx_test_wait_exited(pid_t pid, const char *what, long wait_ms);

#endif
