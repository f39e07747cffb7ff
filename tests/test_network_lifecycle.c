/*
 * The life of a network's nodes outside the happy path, with real processes:
 *   - a node waiting for its peers (--await-peers) exits 1 when the time is
 *     up, or when its PID file goes meanwhile, and never serves;
 *   - a node `rdx network up` started stops cleanly (audit chain intact,
 *     node-stopped recorded) when its PID file or the whole run/ directory is
 *     removed, and keeps running after `network up` itself has exited;
 *   - the nodes of `network up --foreground` stop cleanly when it is killed
 *     with SIGKILL, and when it gets SIGTERM;
 *   - `network up` is all or nothing: a node that cannot start, a file that
 *     cannot be written, a port taken at restart each stop what it started,
 *     and the next `up` brings the network up (the first start set up again,
 *     a restart with the same files).
 * Waits are bounded polls ("it exits"), never timings.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rdx/common.h"
#include "support/testutil.h"

/* Generous: a loaded 2-core machine under ASan. */
#define WAIT_MS 60000

enum { HUB, CLINIC, NNODES };
static const char *const IDS[NNODES] = {"NJ-HUB", "MAS-EAST-CHC"};

static const char NODES_INI[] =
    "[node NJ-HUB]\nname = Jiangsu Province Hospital\ncity = Nanjing\nrole = hub\n\n"
    "[node MAS-EAST-CHC]\nname = Ma'anshan East community health service centre\n"
    "city = Ma'anshan\nrole = clinic\n";

struct world {
    char *tmp;
    char dir[4200], nodes[4200], cat[4200], ini[NNODES][4300];
};

/* ---- helpers ---------------------------------------------------------------- */

/* Run rdx to its end; its exit code, with stderr checked for want_err (may be NULL). */
static int run(const char *const *argv, const char *want_err, char **out)
{
    struct rdx_run r;
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    if (want_err != NULL && strstr(r.err, want_err) == NULL) {
        fail_msg("rdx %s %s: stderr lacks '%s': %s", argv[0], argv[1], want_err, r.err);
    }
    int code = r.exit_code;
    if (out != NULL) {
        *out = r.out;
        r.out = NULL;
    }
    rdx_run_free(&r);
    return code;
}

static void world_new(struct world *w)
{
    memset(w, 0, sizeof *w);
    w->tmp = rdx_test_tmpdir();
    assert_non_null(w->tmp);
    snprintf(w->dir, sizeof w->dir, "%s/net", w->tmp);
    snprintf(w->nodes, sizeof w->nodes, "%s/nodes.ini", w->tmp);
    assert_int_equal(rdx_file_write_atomic(w->nodes, NODES_INI, strlen(NODES_INI), NULL), RDX_OK);
    assert_non_null(realpath("docs/examples/network.ini", w->cat));
    for (int i = 0; i < NNODES; i++) {
        snprintf(w->ini[i], sizeof w->ini[i], "%s/%s.ini", w->dir, IDS[i]);
    }
}

/* The PID node i wrote to DIR/run/ID.pid (0 when none). */
static pid_t node_pid(const struct world *w, int i)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/run/%s.pid", w->dir, IDS[i]);
    return rdx_test_pid_file(path);
}

/* Processes whose command line names the network directory (ours, by the path). */
static size_t procs_of(const char *dir)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300];
        if (e->d_name[0] < '1' || e->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        rdx_buf b;
        rdx_buf_init(&b, 1 << 16);
        if (rdx_file_read(path, &b, NULL) == RDX_OK && b.len > 0) {
            for (size_t k = 0; k + 1 < b.len; k++) {
                if (b.data[k] == '\0') {
                    b.data[k] = ' ';
                }
            }
            if (rdx_buf_append(&b, "", 1) == RDX_OK && strstr((char *)b.data, dir) != NULL &&
                !rdx_test_pid_exited((pid_t)strtol(e->d_name, NULL, 10))) {
                n++;
            }
        }
        rdx_buf_free(&b);
    }
    closedir(d);
    return n;
}

/* Start rdx with argv in the background, stdout and stderr to files; its PID. */
static pid_t spawn(const char *const *argv, const char *out, const char *err)
{
    char *args[24];
    size_t n = 0;
    args[n++] = (char *)"rdx";
    for (; argv[n - 1] != NULL && n < 23; n++) {
        args[n] = (char *)argv[n - 1];
    }
    args[n] = NULL;
    (void)unlink(out); /* so nobody reads what an earlier run left there */
    (void)unlink(err);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int z = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || z < 0 || dup2(z, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(rdx_test_rdx_bin(), args);
        _exit(127);
    }
    return pid;
}

/* Wait (bounded) for our child pid to exit; its exit code (-1: a signal). */
static int wait_child(pid_t pid, const char *what)
{
    int status = 0;
    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        assert_int_equal(r, 0);
        rdx_test_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("%s (PID %ld) did not exit", what, (long)pid);
    return -1;
}

/* `network up`: a new network from NODES_INI, or the existing one started again. */
static void up(const struct world *w)
{
    char have[4400];
    snprintf(have, sizeof have, "%s/nodes.ini", w->dir);
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)getpid());
    /* Owned by this test: should it abort, its nodes stop when it exits. */
    const char *fresh[] = {"network", "up", "--dir",       w->dir, "--nodes", w->nodes,
                           "--owner", me,   "--catalogue", w->cat, NULL};
    const char *again[] = {"network", "up", "--dir", w->dir, "--owner", me, NULL};
    assert_int_equal(run(access(have, F_OK) == 0 ? again : fresh, NULL, NULL), 0);
}

static void down_and_free(struct world *w)
{
    const char *argv[] = {"network", "down", "--dir", w->dir, NULL};
    struct rdx_run r;
    if (access(w->dir, F_OK) == 0 && rdx_run_rdx(&r, argv) == 0) {
        rdx_run_free(&r);
    }
    assert_int_equal(procs_of(w->dir), 0);
    rdx_test_rmrf(w->tmp);
    free(w->tmp);
    w->tmp = NULL;
}

/* Every node's chain is intact and records a clean stop (node-stopped) `stops` times. */
static void audit_clean(const struct world *w, size_t stops)
{
    const char *v[] = {"audit", "verify", w->dir, NULL};
    char *out = NULL;
    assert_int_equal(run(v, NULL, &out), 0);
    assert_int_equal(rdx_test_count(out, "audit chain intact"), NNODES);
    free(out);
    const char *show[] = {"audit", "show", "--json", w->dir, NULL};
    assert_int_equal(run(show, NULL, &out), 0);
    assert_int_equal(rdx_test_count(out, "\"event\":\"node-stopped\""), stops * NNODES);
    free(out);
}

static int log_has(const struct world *w, int i, const char *text)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/log/%s.log", w->dir, IDS[i]);
    return rdx_test_file_contains(path, text);
}

/* ---- --await-peers ------------------------------------------------------------ */

static void test_await_peers_times_out_without_serving(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    up(&w);
    const char *dn[] = {"network", "down", "--dir", w.dir, NULL};
    assert_int_equal(run(dn, NULL, NULL), 0);
    char never[4400], out[4400], err[4400];
    snprintf(never, sizeof never, "%s/run/never.ready", w.dir);
    snprintf(out, sizeof out, "%s/serve.out", w.tmp);
    snprintf(err, sizeof err, "%s/serve.err", w.tmp);
    const char *serve[] = {"node", "serve",           "--config", w.ini[CLINIC], "--await-peers",
                           never,  "--await-timeout", "1",        NULL};
    pid_t pid = spawn(serve, out, err);
    assert_int_equal(wait_child(pid, "node serve --await-peers"), 1);
    char *e = rdx_test_slurp(err);
    assert_non_null(e);
    assert_non_null(strstr(e, "never.ready: not there after 1 s"));
    assert_non_null(strstr(e, "exits without serving"));
    free(e);
    /* It never served: no node-started beyond the first run's. */
    const char *show[] = {"audit", "show", "--json", w.dir, NULL};
    char *a = NULL;
    assert_int_equal(run(show, NULL, &a), 0);
    assert_int_equal(rdx_test_count(a, "\"event\":\"node-started\""), NNODES);
    free(a);

    /* A bad timeout is a usage error; so is a timeout without --await-peers. */
    const char *bad[] = {"node", "serve",           "--config", w.ini[CLINIC], "--await-peers",
                         never,  "--await-timeout", "0",        NULL};
    assert_int_equal(run(bad, "--await-timeout", NULL), 2);
    const char *alone[] = {"node", "serve", "--config", w.ini[CLINIC], "--await-timeout",
                           "5",    NULL};
    assert_int_equal(run(alone, "--await-timeout needs --await-peers", NULL), 2);
    down_and_free(&w);
}

/* A node waiting for its peers whose PID file goes (an aborted test's cleanup) exits at once. */
static void test_await_peers_ends_when_pid_file_goes(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    up(&w);
    const char *dn[] = {"network", "down", "--dir", w.dir, NULL};
    assert_int_equal(run(dn, NULL, NULL), 0);
    char never[4400], pidf[4400], out[4400], err[4400];
    snprintf(never, sizeof never, "%s/run/never.ready", w.dir);
    snprintf(pidf, sizeof pidf, "%s/run/solo.pid", w.dir);
    snprintf(out, sizeof out, "%s/serve.out", w.tmp);
    snprintf(err, sizeof err, "%s/serve.err", w.tmp);
    const char *serve[] = {"node", "serve",           "--config", w.ini[CLINIC], "--await-peers",
                           never,  "--await-timeout", "3600",     "--pid-file",  pidf,
                           NULL};
    pid_t pid = spawn(serve, out, err);
    for (int waited = 0; waited < WAIT_MS && access(pidf, F_OK) != 0; waited += 20) {
        rdx_test_sleep_ms(20);
    }
    char *t = rdx_test_slurp(pidf);
    assert_non_null(t);
    assert_int_equal(strtol(t, NULL, 10), (long)pid); /* it wrote its own PID */
    free(t);
    assert_int_equal(unlink(pidf), 0);
    assert_int_equal(wait_child(pid, "node serve --await-peers"), 1);
    char *e = rdx_test_slurp(err);
    assert_non_null(e);
    assert_non_null(strstr(e, "solo.pid was removed; exiting before serving"));
    free(e);
    down_and_free(&w);
}

/* ---- the watchdog -------------------------------------------------------------- */

static void test_watchdog_pid_file_and_run_dir_stop_daemons(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    up(&w);
    /* `network up` has exited: its nodes run on (they are daemons, not its children). */
    pid_t hub = node_pid(&w, HUB), clinic = node_pid(&w, CLINIC);
    assert_true(hub > 1 && clinic > 1);
    assert_false(rdx_test_pid_exited(hub));
    assert_false(rdx_test_pid_exited(clinic));

    /* One PID file removed: that node stops cleanly; the other keeps running. */
    char path[4400];
    snprintf(path, sizeof path, "%s/run/%s.pid", w.dir, IDS[CLINIC]);
    assert_int_equal(unlink(path), 0);
    rdx_test_wait_exited(clinic, "the clinic whose PID file was removed", WAIT_MS);
    assert_false(rdx_test_pid_exited(hub));
    assert_true(log_has(&w, CLINIC, "node stopped cleanly: "));
    assert_true(log_has(&w, CLINIC, "MAS-EAST-CHC.pid was removed"));

    /* A PID file that names another process stops its node too. */
    up(&w); /* the clinic again */
    clinic = node_pid(&w, CLINIC);
    assert_true(clinic > 1);
    assert_int_equal(rdx_file_write_atomic(path, "1\n", 2, NULL), RDX_OK);
    rdx_test_wait_exited(clinic, "the clinic whose PID file names another process", WAIT_MS);
    assert_true(log_has(&w, CLINIC, "no longer names this process"));
    assert_false(rdx_test_pid_exited(hub));

    /* The whole run/ directory removed: every node stops. */
    up(&w);
    clinic = node_pid(&w, CLINIC);
    snprintf(path, sizeof path, "%s/run", w.dir);
    rdx_test_rmrf(path);
    rdx_test_wait_exited(hub, "the hub after run/ was removed", WAIT_MS);
    rdx_test_wait_exited(clinic, "the clinic after run/ was removed", WAIT_MS);
    assert_int_equal(procs_of(w.dir), 0);
    assert_true(log_has(&w, HUB, "NJ-HUB.pid was removed"));
    /* Each node was started (and stopped cleanly) once, the clinic three times. */
    const char *v[] = {"audit", "verify", w.dir, NULL};
    char *out = NULL;
    assert_int_equal(run(v, NULL, &out), 0);
    assert_int_equal(rdx_test_count(out, "audit chain intact"), NNODES);
    free(out);
    const char *show[] = {"audit", "show", "--json", w.dir, NULL};
    assert_int_equal(run(show, NULL, &out), 0);
    assert_int_equal(rdx_test_count(out, "\"event\":\"node-stopped\""), 4);
    assert_int_equal(rdx_test_count(out, "\"event\":\"node-started\""), 4);
    free(out);

    /* And the next `up` makes run/ again and starts them. */
    up(&w);
    assert_false(rdx_test_pid_exited(node_pid(&w, HUB)));
    down_and_free(&w);
}

/* Start `network up --foreground --json` and wait until it has printed the network. */
static pid_t up_foreground(const struct world *w, char *out, char *err)
{
    snprintf(out, 4400, "%s/up.out", w->tmp);
    snprintf(err, 4400, "%s/up.err", w->tmp);
    char have[4400];
    snprintf(have, sizeof have, "%s/nodes.ini", w->dir);
    const char *fresh[] = {"network",     "up",   "--dir",        w->dir,   "--nodes", w->nodes,
                           "--catalogue", w->cat, "--foreground", "--json", NULL};
    const char *again[] = {"network", "up", "--dir", w->dir, "--foreground", "--json", NULL};
    const char *const *argv = access(have, F_OK) == 0 ? again : fresh;
    pid_t pid = spawn(argv, out, err);
    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        char *t = rdx_test_slurp(out);
        int done = t != NULL && strstr(t, "]}\n") != NULL;
        free(t);
        if (done) {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            char *e = rdx_test_slurp(err);
            fail_msg("network up --foreground exited: %s", e != NULL ? e : "");
        }
        rdx_test_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    fail_msg("network up --foreground never printed the network");
    return -1;
}

static void test_watchdog_foreground_nodes_die_with_up(void **state)
{
    (void)state;
    struct world w;
    char out[4400], err[4400];
    world_new(&w);
    pid_t upid = up_foreground(&w, out, err);
    pid_t hub = node_pid(&w, HUB), clinic = node_pid(&w, CLINIC);
    assert_true(hub > 1 && clinic > 1);
    char *o = rdx_test_slurp(out);
    char want[64];
    snprintf(want, sizeof want, "\"pid\":%ld", (long)hub);
    assert_non_null(strstr(o, want));
    free(o);
    assert_int_equal(kill(upid, SIGKILL), 0);
    assert_int_equal(wait_child(upid, "network up --foreground"), -1);
    rdx_test_wait_exited(hub, "the hub after network up was killed", WAIT_MS);
    rdx_test_wait_exited(clinic, "the clinic after network up was killed", WAIT_MS);
    assert_int_equal(procs_of(w.dir), 0);
    assert_true(log_has(&w, HUB, "node stopped cleanly: its owner (PID"));
    audit_clean(&w, 1);

    /* SIGTERM to a foreground `up`: it stops its nodes cleanly and exits 0. */
    upid = up_foreground(&w, out, err);
    hub = node_pid(&w, HUB);
    assert_true(hub > 1);
    assert_int_equal(kill(upid, SIGTERM), 0);
    assert_int_equal(wait_child(upid, "network up --foreground"), 0);
    assert_true(rdx_test_pid_exited(hub));
    assert_int_equal(procs_of(w.dir), 0);
    assert_int_equal(node_pid(&w, HUB), 0); /* its PID file removed */
    audit_clean(&w, 2);
    down_and_free(&w);
}

/* A test's nodes (network up --owner PID) stop once that process is gone, however it ended. */
static void test_watchdog_owner_death_stops_nodes(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    pid_t owner = fork();
    assert_true(owner >= 0);
    if (owner == 0) {
        for (;;) {
            pause();
        }
    }
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)owner);
    const char *argv[] = {"network", "up", "--dir",       w.dir, "--nodes", w.nodes,
                          "--owner", me,   "--catalogue", w.cat, NULL};
    assert_int_equal(run(argv, NULL, NULL), 0);
    pid_t hub = node_pid(&w, HUB), clinic = node_pid(&w, CLINIC);
    assert_true(hub > 1 && clinic > 1);
    assert_false(rdx_test_pid_exited(hub));
    assert_int_equal(kill(owner, SIGKILL), 0);
    assert_int_equal(waitpid(owner, NULL, 0), owner);
    rdx_test_wait_exited(hub, "the hub after its owner was killed", WAIT_MS);
    rdx_test_wait_exited(clinic, "the clinic after its owner was killed", WAIT_MS);
    assert_int_equal(procs_of(w.dir), 0);
    char want[80];
    snprintf(want, sizeof want, "node stopped cleanly: its owner (PID %ld) has exited",
             (long)owner);
    assert_true(log_has(&w, CLINIC, want));
    audit_clean(&w, 1);

    /* An owner that is not there is refused; --owner and --foreground exclude each other. */
    const char *gone[] = {"network", "up", "--dir", w.dir, "--owner", me, NULL};
    assert_int_equal(run(gone, "no such process", NULL), 2);
    const char *both[] = {"network", "up", "--dir", w.dir, "--owner", "1", "--foreground", NULL};
    assert_int_equal(run(both, "exclude each other", NULL), 2);
    down_and_free(&w);
}

/* ---- network up: all or nothing ---------------------------------------------- */

static void assert_ports_written(const struct world *w)
{
    for (int i = 0; i < NNODES; i++) {
        char *t = rdx_test_slurp(w->ini[i]);
        assert_non_null(t);
        assert_null(strstr(t, "listen = 127.0.0.1:0\n"));
        free(t);
    }
    char *hub = rdx_test_slurp(w->ini[HUB]);
    assert_non_null(strstr(hub, "MAS-EAST-CHC = 127.0.0.1:"));
    free(hub);
}

static void test_up_node_that_cannot_start_then_repaired(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    /* A file where the clinic's data directory goes: that node cannot start. */
    char data[4400], blocker[4400];
    snprintf(data, sizeof data, "%s/data", w.dir);
    assert_int_equal(mkdir(w.dir, 0700), 0);
    assert_int_equal(mkdir(data, 0700), 0);
    snprintf(blocker, sizeof blocker, "%s/data/%s", w.dir, IDS[CLINIC]);
    assert_int_equal(rdx_file_write_atomic(blocker, "x", 1, NULL), RDX_OK);
    const char *argv[] = {"network", "up",          "--dir", w.dir, "--nodes",
                          w.nodes,   "--catalogue", w.cat,   NULL};
    assert_int_equal(run(argv, "MAS-EAST-CHC: the node exited at start", NULL), 1);
    /* Nothing runs, no PID is left, and the hub that did start was stopped. */
    assert_int_equal(procs_of(w.dir), 0);
    assert_int_equal(node_pid(&w, HUB), 0);
    assert_int_equal(node_pid(&w, CLINIC), 0);
    /* The next `up` (the cause removed) sets the first start up again and succeeds. */
    assert_int_equal(unlink(blocker), 0);
    up(&w);
    assert_ports_written(&w);
    assert_false(rdx_test_pid_exited(node_pid(&w, HUB)));
    assert_false(rdx_test_pid_exited(node_pid(&w, CLINIC)));
    down_and_free(&w);
}

static void test_up_unwritable_file_then_repaired(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    /* A directory where the clinic's configuration goes: it cannot be written. */
    assert_int_equal(mkdir(w.dir, 0700), 0);
    assert_int_equal(mkdir(w.ini[CLINIC], 0700), 0);
    const char *argv[] = {"network", "up",          "--dir", w.dir, "--nodes",
                          w.nodes,   "--catalogue", w.cat,   NULL};
    assert_int_equal(run(argv, "MAS-EAST-CHC.ini", NULL), 1);
    assert_int_equal(procs_of(w.dir), 0);
    assert_int_equal(rmdir(w.ini[CLINIC]), 0);
    up(&w);
    assert_ports_written(&w);
    down_and_free(&w);
}

/* The port in a configuration's listen line. */
static long config_port(const char *ini)
{
    char *t = rdx_test_slurp(ini);
    assert_non_null(t);
    const char *p = strstr(t, "listen = 127.0.0.1:");
    assert_non_null(p);
    long port = strtol(p + strlen("listen = 127.0.0.1:"), NULL, 10);
    free(t);
    return port;
}

static void test_up_port_taken_at_restart_keeps_network(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    up(&w);
    const char *dn[] = {"network", "down", "--dir", w.dir, NULL};
    assert_int_equal(run(dn, NULL, NULL), 0);
    char *before[NNODES];
    for (int i = 0; i < NNODES; i++) {
        before[i] = rdx_test_slurp(w.ini[i]);
        assert_non_null(before[i]);
    }
    /* Someone else listens on the clinic's port now. */
    long port = config_port(w.ini[CLINIC]);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    int one = 1;
    assert_int_equal(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 4), 0);
    const char *argv[] = {"network", "up", "--dir", w.dir, NULL};
    assert_int_equal(run(argv, "MAS-EAST-CHC: the node exited at start", NULL), 1);
    assert_int_equal(procs_of(w.dir), 0);
    /* The network's files are as they were. */
    for (int i = 0; i < NNODES; i++) {
        char *now = rdx_test_slurp(w.ini[i]);
        assert_non_null(now);
        assert_string_equal(now, before[i]);
        free(now);
    }
    close(s);
    assert_int_equal(run(argv, NULL, NULL), 0);
    assert_int_equal(config_port(w.ini[CLINIC]), port);
    for (int i = 0; i < NNODES; i++) {
        char *now = rdx_test_slurp(w.ini[i]);
        assert_string_equal(now, before[i]);
        free(now);
        free(before[i]);
    }
    down_and_free(&w);
}

/*
 * A first `up` killed after some configurations were written with their
 * ports and before the rest (one still says port 0), its nodes still running:
 * the next `up` stops them and sets the network up again.
 */
static void test_up_half_written_network_repaired(void **state)
{
    (void)state;
    struct world w;
    world_new(&w);
    up(&w);
    pid_t hub = node_pid(&w, HUB);
    char *ini = rdx_test_slurp(w.ini[CLINIC]);
    assert_non_null(ini);
    char *l = strstr(ini, "listen = 127.0.0.1:");
    assert_non_null(l);
    char *eol = strchr(l, '\n');
    assert_non_null(eol);
    char fixed[8192];
    snprintf(fixed, sizeof fixed, "%.*slisten = 127.0.0.1:0%s", (int)(l - ini), ini, eol);
    free(ini);
    assert_int_equal(rdx_file_write_atomic(w.ini[CLINIC], fixed, strlen(fixed), NULL), RDX_OK);
    up(&w);
    rdx_test_wait_exited(hub, "the hub of the half-written network", WAIT_MS);
    assert_ports_written(&w);
    assert_true(node_pid(&w, HUB) != hub);
    assert_false(rdx_test_pid_exited(node_pid(&w, HUB)));
    assert_false(rdx_test_pid_exited(node_pid(&w, CLINIC)));
    down_and_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_await_peers_times_out_without_serving),
        cmocka_unit_test(test_await_peers_ends_when_pid_file_goes),
        cmocka_unit_test(test_watchdog_pid_file_and_run_dir_stop_daemons),
        cmocka_unit_test(test_watchdog_foreground_nodes_die_with_up),
        cmocka_unit_test(test_watchdog_owner_death_stops_nodes),
        cmocka_unit_test(test_up_node_that_cannot_start_then_repaired),
        cmocka_unit_test(test_up_unwritable_file_then_repaired),
        cmocka_unit_test(test_up_port_taken_at_restart_keeps_network),
        cmocka_unit_test(test_up_half_written_network_repaired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
