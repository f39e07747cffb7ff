/* Test support implementation. Test-only state lives here, never in rdx. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rdx/common.h"

extern char **environ;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);

static _Thread_local unsigned long oom_fail_at; /* 0 = disarmed */
static _Thread_local unsigned long oom_calls;

static int oom_should_fail(void)
{
    if (oom_fail_at == 0) {
        return 0;
    }
    oom_calls++;
    return oom_calls >= oom_fail_at;
}

void *__wrap_malloc(size_t n)
{
    return oom_should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t s)
{
    return oom_should_fail() ? NULL : __real_calloc(n, s);
}

void *__wrap_realloc(void *p, size_t n)
{
    return oom_should_fail() ? NULL : __real_realloc(p, n);
}

void rdx_oom_arm(unsigned long n)
{
    oom_fail_at = n;
    oom_calls = 0;
}

unsigned long rdx_oom_calls(void)
{
    return oom_calls;
}

unsigned long rdx_oom_sweep(int (*fn)(void *ctx), void *ctx)
{
    for (unsigned long k = 1; k < 100000; k++) {
        rdx_oom_arm(k);
        int rc = fn(ctx);
        unsigned long calls = rdx_oom_calls();
        rdx_oom_arm(0);
        if (calls < k) {
            /* Allocation k was never reached: this run had no failure. */
            assert_int_equal(rc, 0);
            return k - 1;
        }
        if (rc == 0) {
            fail_msg("allocation %lu failed but the operation reported success", k);
        }
    }
    fail_msg("out-of-memory sweep did not terminate");
    return 0;
}

const char *rdx_test_data_dir(void)
{
    const char *d = getenv("RDX_DATA");
    struct stat sb;
    if (d == NULL || d[0] == '\0') {
        d = "../shared/data";
    }
    if (stat(d, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return NULL;
    }
    return d;
}

const char *rdx_test_fixture(char *out, size_t outsz, const char *rel)
{
    snprintf(out, outsz, "tests/fixtures/%s", rel);
    return out;
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *s = __real_malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            char *t = __real_realloc(s, cap);
            if (t == NULL) {
                break;
            }
            s = t;
        }
        ssize_t n = read(fd, s + len, cap - len - 1);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    s[len] = '\0';
    return s;
}

int rdx_run_rdx(struct rdx_run *r, const char *const *argv)
{
    const char *bin = rdx_test_rdx_bin();
    char outp[] = "/tmp/rdx-test-out-XXXXXX";
    char errp[] = "/tmp/rdx-test-err-XXXXXX";
    const char *args[64];
    size_t n = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0;

    args[n++] = bin;
    while (argv[n - 1] != NULL && n < 63) {
        args[n] = argv[n - 1];
        n++;
    }
    args[n] = NULL;

    int ofd = mkstemp(outp);
    int efd = mkstemp(errp);
    if (ofd < 0 || efd < 0) {
        return -1;
    }
    unlink(outp);
    unlink(errp);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, ofd, 1);
    posix_spawn_file_actions_adddup2(&fa, efd, 2);
    int rc = posix_spawn(&pid, bin, &fa, NULL, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        close(ofd);
        close(efd);
        return -1;
    }
    waitpid(pid, &status, 0);
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->out = slurp_fd(ofd);
    r->err = slurp_fd(efd);
    close(ofd);
    close(efd);
    return 0;
}

void rdx_run_free(struct rdx_run *r)
{
    free(r->out);
    free(r->err);
    r->out = NULL;
    r->err = NULL;
}

char *rdx_test_tmpdir(void)
{
    char tmpl[] = "/tmp/rdx-test-XXXXXX";
    if (mkdtemp(tmpl) == NULL) {
        return NULL;
    }
    return strdup(tmpl);
}

void rdx_test_rmrf(const char *path)
{
    const char *args[] = {"rm", "-rf", path, NULL};
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, "rm", NULL, NULL, (char *const *)args, environ) == 0) {
        waitpid(pid, &status, 0);
    }
}

void rdx_test_rmrf_unless_kept(const char *path)
{
    if (getenv("RDX_KEEP") == NULL) {
        rdx_test_rmrf(path);
    } else {
        fprintf(stderr, "kept %s\n", path);
    }
}

void rdx_test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *rdx_test_rdx_bin(void)
{
    const char *bin = getenv("RDX_BIN");
    return bin != NULL && bin[0] != '\0' ? bin : "build/rdx";
}

void rdx_test_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fail_msg("%s: cannot create it", path);
    }
    int ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        fail_msg("%s: cannot write it", path);
    }
}

void rdx_test_make_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint32_t x = seed;
    uint8_t buf[65536];
    for (size_t done = 0; done < size;) {
        size_t n = size - done < sizeof buf ? size - done : sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (uint8_t)(x >> 24);
        }
        assert_int_equal(fwrite(buf, 1, n, f), n);
        done += n;
    }
    assert_int_equal(fclose(f), 0);
}

int rdx_test_files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    char *x = malloc(1u << 20), *y = malloc(1u << 20);
    int eq = fa != NULL && fb != NULL && x != NULL && y != NULL;
    while (eq) {
        size_t na = fread(x, 1, 1u << 20, fa), nb = fread(y, 1, 1u << 20, fb);
        eq = na == nb && memcmp(x, y, na) == 0 && !ferror(fa) && !ferror(fb);
        if (na == 0) {
            break; /* both at their ends (or eq is false) */
        }
    }
    if (fa != NULL) {
        fclose(fa);
    }
    if (fb != NULL) {
        fclose(fb);
    }
    free(x);
    free(y);
    return eq;
}

int rdx_test_file_contains(const char *path, const char *needle)
{
    char *t = rdx_test_slurp(path);
    int has = t != NULL && strstr(t, needle) != NULL;
    free(t);
    return has;
}

char *rdx_test_slurp(const char *path)
{
    rdx_buf b;
    rdx_buf_init(&b, 64u << 20);
    if (rdx_file_read(path, &b, NULL) != RDX_OK || rdx_buf_append(&b, "", 1) != RDX_OK) {
        rdx_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

size_t rdx_test_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    return n;
}

char *rdx_test_rdx_ok(int want, const char *const *argv)
{
    struct rdx_run r;
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    if (r.exit_code != want) {
        print_error("rdx %s %s: exit %d, stderr: %s\n", argv[0], argv[1], r.exit_code, r.err);
    }
    assert_int_equal(r.exit_code, want);
    char *out = r.out;
    r.out = NULL;
    rdx_run_free(&r);
    return out;
}

void rdx_test_json_str(const char *p, const char *key, char *out, size_t outsz)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *v = strstr(p, k);
    assert_non_null(v);
    v += strlen(k);
    size_t len = strcspn(v, "\"");
    assert_true(len < outsz);
    memcpy(out, v, len);
    out[len] = '\0';
}

pid_t rdx_test_pid_file(const char *path)
{
    char *t = rdx_test_slurp(path);
    long pid = t != NULL ? strtol(t, NULL, 10) : 0;
    free(t);
    return (pid_t)pid;
}

int rdx_test_pid_exited(pid_t pid)
{
    char path[64], *st;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if ((st = rdx_test_slurp(path)) == NULL) {
        return 1;
    }
    const char *paren = strrchr(st, ')');
    int z = paren != NULL && (paren[2] == 'Z' || paren[2] == 'X');
    free(st);
    return z;
}

void rdx_test_wait_exited(pid_t pid, const char *what, long wait_ms)
{
    for (long waited = 0; waited < wait_ms; waited += 20) {
        if (rdx_test_pid_exited(pid)) {
            return;
        }
        rdx_test_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    fail_msg("%s (PID %ld) did not exit", what, (long)pid);
}
