/* rdx node: run an institution's transport node. */
#define _GNU_SOURCE
#include "cli.h"
#include "rdx/hub.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void log_stderr(void *user, rdx_log_level level, const char *msg)
{
    char ts[32];
    (void)user;
    rdx_tp_cli_time(ts, sizeof ts, (long long)time(NULL));
    fprintf(stderr, "%s rdx node: %s: %s\n", ts, rdx_log_level_name(level), msg);
    fflush(stderr);
}

static const char SERVE_USAGE[] =
    "Usage: rdx node serve --config FILE [--await-peers READY] [--await-timeout SEC]\n"
    "                      [--pid-file FILE] [--owner PID] [--jobs N] [--verbose]\n\n"
    "Run this institution's node as FILE describes (its keys: README.md, section\n"
    "Transport, and include/rdx/transport.h): accept cases from member\n"
    "institutions over TLS 1.3 with client certificates checked against the\n"
    "network CA and CRL, store them durably in the data directory, and deliver\n"
    "the outbox to peers ('rdx case send'). Logs go to stderr, one line per\n"
    "event; the bound port is written to DATA/node.port. SIGINT or SIGTERM\n"
    "stops it cleanly.\n\n"
    "The CRL's nextUpdate is checked at start, hourly and when it passes: a\n"
    "warning in its last 48 hours; once it has passed, an error and a\n"
    "crl-expired audit record, and every new connection, in and out, is\n"
    "refused until 'rdx pki crl' publishes a new one (picked up without a\n"
    "restart; see docs/transport.md).\n\n"
    "When FILE has a [dispatch] section (the hub; see docs/ARCHITECTURE.md and\n"
    "include/rdx/hub.h), the node also processes its inbox: ECGs are detected and\n"
    "answered with a report, studies indexed, study requests answered as\n"
    "[allow.fetch] allows, lab orders routed and forwarded to the labs, lab\n"
    "results matched and forwarded to the clinics. A case's answers and its\n"
    "completion are committed together; a failing case is retried, then parked.\n\n"
    "  --await-peers READY  bind (listen port 0: the kernel's choice), write\n"
    "                       DATA/node.port, then wait for the file READY before\n"
    "                       reading FILE's [peers] again and serving; how\n"
    "                       'rdx network up' learns every port without a race.\n"
    "                       When READY has not appeared in time the node exits 1\n"
    "                       without serving\n"
    "  --await-timeout SEC  how long --await-peers waits (1-3600, default 60)\n"
    "  --pid-file FILE      write this process's PID to FILE at start, and stop\n"
    "                       cleanly (as SIGTERM would) once FILE is removed, its\n"
    "                       directory with it, or names another process: removing\n"
    "                       a network's run/ directory stops its nodes\n"
    "  --owner PID          stop cleanly once process PID has exited: the\n"
    "                       'rdx network up --foreground' that started it, or a\n"
    "                       test, so nothing outlives it (a PID reused by another\n"
    "                       process is told apart by its start time)\n"
    "  --jobs N             cases the dispatcher processes at once (1-64; default\n"
    "                       [dispatch] jobs, else 2), never two from one sender\n"
    "  --verbose            log debug lines too (the dispatcher's case starts)\n";

/* The most a node waits for --await-peers' READY file unless --await-timeout says otherwise. */
#define AWAIT_DEFAULT_S 60
/* How often the watchdog looks at the PID file and the parent. */
#define WATCH_TICK_MS 100

/* What the watchdog watches; see --pid-file and --parent. */
struct watch {
    const char *pid_file;           /* NULL: none */
    pid_t owner;                    /* 0: none */
    unsigned long long owner_start; /* its start time (clock ticks after boot) */
    rdx_transport_node *node;
    const rdx_logger *log;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;    /* under mu: the node stopped for another reason */
    int tripped; /* set by the watchdog thread before it stops the node */
    char why[600];
};

/*
 * The start time of process pid (field 22 of /proc/PID/stat, clock ticks
 * after boot): 1 with *start while it lives, 0 once it is gone or a zombie.
 */
static int proc_start(pid_t pid, unsigned long long *start)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    text[n] = '\0';
    /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so count from the last ')'. */
    const char *p = strrchr(text, ')');
    if (p == NULL || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X') {
        return 0;
    }
    p += 2; /* field 3, the state */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL) {
            return 0;
        }
        p++;
    }
    size_t len = strcspn(p, " \n");
    int64_t v = 0;
    if (rdx_parse_i64(p, len, 0, INT64_MAX, &v) != RDX_OK) {
        return 0;
    }
    *start = (unsigned long long)v;
    return 1;
}

/*
 * Whether the node should stop: its PID file is gone (or its directory is)
 * or names another process, or its owner has exited. why says which.
 */
static int watch_tripped(const struct watch *w, char *why, size_t whysz)
{
    unsigned long long start = 0;
    if (w->owner > 0 && (!proc_start(w->owner, &start) || start != w->owner_start)) {
        snprintf(why, whysz, "its owner (PID %ld) has exited", (long)w->owner);
        return 1;
    }
    if (w->pid_file == NULL) {
        return 0;
    }
    int fd = open(w->pid_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            snprintf(why, whysz, "%s was removed", w->pid_file);
            return 1;
        }
        return 0; /* another error (EMFILE, EINTR) is no reason to stop; look again */
    }
    char text[32];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0) {
        return 0;
    }
    size_t len = (size_t)n;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
        len--;
    }
    int64_t pid = 0;
    if (rdx_parse_i64(text, len, 1, INT32_MAX, &pid) != RDX_OK || pid != (int64_t)getpid()) {
        snprintf(why, whysz, "%s no longer names this process (PID %ld)", w->pid_file,
                 (long)getpid());
        return 1;
    }
    return 0;
}

/* The watchdog thread: stop the node cleanly (rdx_transport_node_stop) once watch_tripped. */
static void *watch_main(void *arg)
{
    struct watch *w = arg;
    char why[sizeof w->why];
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_nsec += WATCH_TICK_MS * 1000L * 1000L;
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&w->cv, &w->mu, &at);
        if (w->quit) {
            break;
        }
        pthread_mutex_unlock(&w->mu);
        int hit = watch_tripped(w, why, sizeof why);
        pthread_mutex_lock(&w->mu);
        if (hit) {
            snprintf(w->why, sizeof w->why, "%s", why);
            w->tripped = 1;
            rdx_log(w->log, RDX_LOG_WARN, "stopping: %s", why);
            rdx_transport_node_stop(w->node);
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int watch_init(struct watch *w)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return 0;
    }
    int ok =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&w->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) {
        return 0;
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        pthread_cond_destroy(&w->cv);
        return 0;
    }
    return 1;
}

static void watch_quit(struct watch *w, pthread_t th)
{
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(th, NULL);
}

/* Write this process's PID to path (atomically). */
static int write_pid_file(const char *cmd, const char *path)
{
    char text[32];
    rdx_error err;
    rdx_error_clear(&err);
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (rdx_file_write_atomic(path, text, (size_t)n, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    return 0;
}

/*
 * Wait (at most timeout_s, by the monotonic clock) for the file ready to
 * exist: 1 when it does, 0 when the time is up, -1 when the watch trips
 * meanwhile (why says why).
 */
static int await_file(const char *ready, long timeout_s, const struct watch *w, char *why,
                      size_t whysz)
{
    const struct timespec tick = {0, 20 * 1000 * 1000};
    uint64_t deadline = rdx_clock_mono_ns() + (uint64_t)timeout_s * 1000000000u;
    struct stat sb;
    for (;;) {
        if (stat(ready, &sb) == 0) {
            return 1;
        }
        if (watch_tripped(w, why, whysz)) {
            return -1;
        }
        if (rdx_clock_mono_ns() >= deadline) {
            return 0;
        }
        nanosleep(&tick, NULL);
    }
}

static int node_serve(int argc, char **argv)
{
    const char *cmd = "node serve";
    const char *config = NULL, *ready = NULL, *await_s = NULL, *pid_file = NULL;
    const char *owner_s = NULL, *jobs_s = NULL;
    long await_timeout = AWAIT_DEFAULT_S, owner = 0, jobs = 0;
    int verbose = 0, nops = 0;
    const rdx_cli_opt opts[] = {
        RDX_CLI_VALUE("--config", &config),         RDX_CLI_VALUE("--await-peers", &ready),
        RDX_CLI_VALUE("--await-timeout", &await_s), RDX_CLI_VALUE("--pid-file", &pid_file),
        RDX_CLI_VALUE("--owner", &owner_s),         RDX_CLI_VALUE("--jobs", &jobs_s),
        RDX_CLI_FLAG("--verbose", &verbose),        RDX_CLI_END};
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS,
                                    SERVE_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (config == NULL) {
        return rdx_cli_usage(cmd, "--config is required");
    }
    if ((await_s != NULL &&
         rdx_tp_cli_int(await_s, 1, 3600, &await_timeout, "--await-timeout", cmd) < 0) ||
        (owner_s != NULL && rdx_tp_cli_int(owner_s, 1, INT32_MAX, &owner, "--owner", cmd) < 0) ||
        (jobs_s != NULL && rdx_tp_cli_int(jobs_s, 1, RDX_HUB_JOBS_MAX, &jobs, "--jobs", cmd) < 0)) {
        return RDX_EXIT_USAGE;
    }
    if (await_s != NULL && ready == NULL) {
        return rdx_cli_usage(cmd, "--await-timeout needs --await-peers");
    }
    rdx_logger log = {log_stderr, NULL, verbose ? RDX_LOG_DEBUG : RDX_LOG_INFO};
    struct watch w;
    memset(&w, 0, sizeof w);
    w.pid_file = pid_file;
    w.owner = (pid_t)owner;
    w.log = &log;
    char why[sizeof w.why];
    if (owner > 0 && !proc_start(w.owner, &w.owner_start)) {
        /* Its owner died before this node ran: nobody would stop it. */
        return rdx_cli_fail(cmd, "its owner (PID %ld) has exited; not serving", owner);
    }
    if (pid_file != NULL && write_pid_file(cmd, pid_file) != 0) {
        return RDX_EXIT_FAIL;
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_transport_config *cfg = NULL;
    if (rdx_transport_config_load(config, &cfg, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_transport_node *node = NULL;
    rdx_hub_dispatcher *disp = NULL;
    pthread_t disp_thread, watch_thread;
    int disp_running = 0, watching = 0, watch_ready = 0;
    int rc = RDX_EXIT_OK;
    if (rdx_transport_node_new(cfg, &log, &node, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (ready != NULL) {
        /* Bound: publish the port, then take the peers' ports once all are known. */
        char portp[4200], txt[32];
        int len = snprintf(txt, sizeof txt, "%u\n", rdx_transport_node_port(node));
        if (snprintf(portp, sizeof portp, "%s/node.port", rdx_transport_config_data_dir(cfg)) >=
                (int)sizeof portp ||
            rdx_file_write_atomic(portp, txt, (size_t)len, &err) != RDX_OK) {
            rc = err.msg[0] ? rdx_cli_fail_err(cmd, &err)
                            : rdx_cli_fail(cmd, "%s: data path too long", config);
            goto out;
        }
        int got = await_file(ready, await_timeout, &w, why, sizeof why);
        if (got == 0) {
            rc = rdx_cli_fail(cmd,
                              "%s: not there after %ld s; the peers' ports are unknown, "
                              "so this node exits without serving",
                              ready, await_timeout);
            goto out;
        }
        if (got < 0) {
            rc = rdx_cli_fail(cmd, "%s; exiting before serving", why);
            goto out;
        }
        if (rdx_transport_config_reload_peers(cfg, &err) != RDX_OK) {
            rc = rdx_cli_fail_err(cmd, &err);
            goto out;
        }
    }
    if (rdx_hub_dispatcher_new(cfg, &log, &disp, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (disp != NULL) {
        /* [dispatch]: this node also processes its inbox (the hub). */
        if (jobs > 0 && rdx_hub_dispatcher_set_jobs(disp, (unsigned)jobs, &err) != RDX_OK) {
            rc = rdx_cli_fail_err(cmd, &err);
            goto out;
        }
        if (pthread_create(&disp_thread, NULL, rdx_hub_dispatcher_thread, disp) != 0) {
            rc = rdx_cli_fail(cmd, "cannot start the dispatcher thread");
            goto out;
        }
        disp_running = 1;
    } else if (jobs > 0) {
        rdx_log(&log, RDX_LOG_WARN, "--jobs ignored: %s has no [dispatch] section", config);
    }
    if (pid_file != NULL || owner > 0) {
        w.node = node;
        if (!watch_init(&w)) {
            rc = rdx_cli_fail(cmd, "cannot set up the watchdog");
            goto out;
        }
        watch_ready = 1;
        if (pthread_create(&watch_thread, NULL, watch_main, &w) != 0) {
            rc = rdx_cli_fail(cmd, "cannot start the watchdog thread");
            goto out;
        }
        watching = 1;
    }
    if (rdx_transport_node_run(node, 1, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
    }
out:
    if (watching) {
        watch_quit(&w, watch_thread);
        if (w.tripped) {
            rdx_log(&log, RDX_LOG_INFO, "node stopped cleanly: %s", w.why);
        }
    }
    if (watch_ready) {
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
    }
    if (disp_running) {
        rdx_hub_dispatcher_stop(disp);
        pthread_join(disp_thread, NULL);
    }
    rdx_hub_dispatcher_free(disp);
    rdx_transport_node_free(node);
    rdx_transport_config_free(cfg);
    return rc;
}

static int print_record(void *u, const rdx_transport_audit_record *r)
{
    int json = *(int *)u;
    char ts[32];
    rdx_tp_cli_time(ts, sizeof ts, (long long)(r->time_ms / 1000));
    if (json) {
        printf("%s{\"seq\":%lld,\"time\":\"%s\",\"time_ms\":%lld,\"event\":\"%s\","
               "\"outcome\":%d,\"node\":\"%s\",\"institution\":\"%s\",\"object\":",
               r->seq == 1 ? "" : ",", r->seq, ts, (long long)r->time_ms, r->event, r->outcome,
               r->node, r->institution);
        rdx_tp_cli_json_str(stdout, r->object);
        printf(",\"detail\":");
        rdx_tp_cli_json_str(stdout, r->detail);
        printf(",\"hash\":\"%s\"}", r->hash);
    } else {
        const char *oc = r->outcome == 0 ? "ok" : r->outcome == 4 ? "minor" : "FAIL";
        printf("%6lld %s %-5s %-20s %-12s %-34s %s\n", r->seq, ts, oc, r->event,
               r->institution[0] ? r->institution : "-", r->object[0] ? r->object : "-", r->detail);
    }
    return 0;
}

static const char AUDIT_USAGE[] =
    "Usage: rdx node audit --config FILE [--verify] [--json]\n\n"
    "Print the node's audit log (every connection accepted or refused, every\n"
    "case queued, received, acknowledged, refused, fetched or dead-lettered, and\n"
    "the node's own events: started, stopped, CRL expired or renewed),\n"
    "one record a line: sequence, time, outcome, event, institution, object,\n"
    "detail. With --verify, check the SHA-256 hash chain instead and name the\n"
    "first broken record (exit 1).\n";

int rdx_tp_cli_audit_print(const char *cmd, const char *config, int verify, int json)
{
    if (config == NULL) {
        return rdx_cli_usage(cmd, "--config is required");
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_transport_config *cfg = NULL;
    if (rdx_transport_config_load(config, &cfg, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_status st;
    if (verify) {
        long long n = 0, bad = 0;
        st = rdx_transport_audit_verify(cfg, &n, &bad, &err);
        if (st == RDX_OK) {
            if (json) {
                printf("{\"ok\":true,\"records\":%lld}\n", n);
            } else {
                printf("audit chain intact: %lld records\n", n);
            }
        } else if (json && st == RDX_ECHECKSUM) {
            printf("{\"ok\":false,\"first_bad\":%lld,\"error\":", bad);
            rdx_tp_cli_json_str(stdout, err.msg);
            printf("}\n");
        }
    } else {
        if (json) {
            printf("[");
        }
        st = rdx_transport_audit_list(cfg, print_record, &json, &err);
        if (json) {
            printf("]\n");
        }
    }
    rdx_transport_config_free(cfg);
    return st == RDX_OK ? RDX_EXIT_OK : rdx_cli_fail_err(cmd, &err);
}

static int node_audit(int argc, char **argv)
{
    const char *cmd = "node audit";
    const char *config = NULL;
    int json = 0, verify = 0, nops = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config),
                                RDX_CLI_FLAG("--verify", &verify), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS,
                                   AUDIT_USAGE, &nops);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    return rdx_tp_cli_audit_print(cmd, config, verify, json);
}

static const struct rdx_cli_verb verbs[] = {
    {"serve", "run the node: mutual-TLS server, durable inbox, outbox delivery", node_serve},
    {"audit", "print the node's audit log, or --verify its hash chain", node_audit},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_node = {
    .name = "node",
    .summary = "Run an institution's transport node",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
