/*
 * Test support: allocation-failure injection (the out-of-memory sweep), the
 * location of test data, and running the rdx binary as a user would.
 */
#ifndef RDX_TESTUTIL_H
#define RDX_TESTUTIL_H

#include <stddef.h>

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

#endif
