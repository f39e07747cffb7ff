/*
 * rdx network: the four-city network on one machine. `up` makes the network
 * CA, one certificate and one node configuration per institution, and starts
 * each node as its own `rdx node serve` process on a 127.0.0.1 port; `down`
 * stops them by the PIDs it recorded (never by name).
 *
 *   DIR/pki/                 the network CA and institution keys (rdx pki layout)
 *   DIR/ID.ini               each node's configuration
 *   DIR/data/ID/             each node's data directory (node.db, inbox, outbox)
 *   DIR/hub/                 the hub's imaging index and lab store
 *   DIR/catalogue.ini        the lab catalogue the hub routes with
 *   DIR/log/ID.log           each node's log
 *   DIR/run/ID.pid           each running node's PID
 */
#define _GNU_SOURCE
#include "cli.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NODES_MAX 64
#define PATH_CAP  4096
/* The lab catalogue a new network routes with unless --catalogue names another. */
#define CATALOGUE_DEFAULT "docs/examples/network.ini"

enum role { ROLE_HUB, ROLE_CLINIC, ROLE_LAB, ROLE_RADIOLOGY };
static const char *const ROLE_NAMES[] = {"hub", "clinic", "lab", "radiology"};

struct netnode {
    char id[65];
    char name[65];
    char city[65];
    enum role role;
    unsigned port;
};

struct net {
    struct netnode n[NODES_MAX];
    size_t count;
    char why[256];
};

/* The default network: the hub in Nanjing, three community clinics, a lab, a reading room. */
static const struct netnode DEFAULT_NODES[] = {
    {"NJ-HUB", "Jiangsu Province Hospital", "Nanjing", ROLE_HUB, 0},
    {"MAS-EAST-CHC", "Ma'anshan East community health service centre", "Ma'anshan", ROLE_CLINIC, 0},
    {"ZJ-EAST-CHC", "Zhenjiang East community health service centre", "Zhenjiang", ROLE_CLINIC, 0},
    {"YZ-EAST-CHC", "Yangzhou East community health service centre", "Yangzhou", ROLE_CLINIC, 0},
    {"ZJ-CCL", "Zhenjiang central clinical laboratory", "Zhenjiang", ROLE_LAB, 0},
    {"NJ-RAD", "Nanjing Drum Tower Hospital radiology reading room", "Nanjing", ROLE_RADIOLOGY, 0},
};

static int nodes_handler(void *user, const char *section, const char *name, const char *value)
{
    struct net *net = user;
    if (strncmp(section, "node ", 5) != 0) {
        snprintf(net->why, sizeof net->why, "unknown section [%.100s] (expected [node ID])",
                 section);
        return 0;
    }
    const char *id = section + 5;
    struct netnode *nd = NULL;
    for (size_t i = 0; i < net->count; i++) {
        if (strcmp(net->n[i].id, id) == 0) {
            nd = &net->n[i];
        }
    }
    if (nd == NULL) {
        rdx_error e;
        if (rdx_transport_inst_id_check(id, "node ID", &e) != RDX_OK) {
            snprintf(net->why, sizeof net->why, "%.200s", e.msg);
            return 0;
        }
        if (net->count == NODES_MAX) {
            snprintf(net->why, sizeof net->why, "more than %d nodes", NODES_MAX);
            return 0;
        }
        nd = &net->n[net->count++];
        memset(nd, 0, sizeof *nd);
        nd->role = ROLE_CLINIC;
        snprintf(nd->id, sizeof nd->id, "%s", id);
    }
    if (strcmp(name, "name") == 0 && strlen(value) > 0 && strlen(value) < sizeof nd->name) {
        snprintf(nd->name, sizeof nd->name, "%s", value);
    } else if (strcmp(name, "city") == 0 && strlen(value) > 0 && strlen(value) < sizeof nd->city) {
        snprintf(nd->city, sizeof nd->city, "%s", value);
    } else if (strcmp(name, "role") == 0) {
        size_t r = 0;
        while (r < 4 && strcmp(ROLE_NAMES[r], value) != 0) {
            r++;
        }
        if (r == 4) {
            snprintf(net->why, sizeof net->why, "role '%.60s': not hub, clinic, lab or radiology",
                     value);
            return 0;
        }
        nd->role = (enum role)r;
    } else {
        snprintf(net->why, sizeof net->why, "%.60s: unknown key or bad value", name);
        return 0;
    }
    return 1;
}

static int load_nodes(const char *cmd, const char *file, struct net *net)
{
    memset(net, 0, sizeof *net);
    if (file == NULL) {
        memcpy(net->n, DEFAULT_NODES, sizeof DEFAULT_NODES);
        net->count = sizeof DEFAULT_NODES / sizeof DEFAULT_NODES[0];
        return 0;
    }
    int line = ini_parse(file, nodes_handler, net);
    if (line < 0) {
        return rdx_cli_fail(cmd, "%s: cannot read it", file);
    }
    if (line > 0) {
        return rdx_cli_fail(cmd, "%s:%d: %s", file, line, net->why);
    }
    size_t hubs = 0;
    for (size_t i = 0; i < net->count; i++) {
        if (net->n[i].name[0] == '\0' || net->n[i].city[0] == '\0') {
            return rdx_cli_fail(cmd, "%s: [node %s] needs name and city", file, net->n[i].id);
        }
        hubs += net->n[i].role == ROLE_HUB;
    }
    if (hubs != 1) {
        return rdx_cli_fail(cmd, "%s: the network needs exactly one node with role = hub (has %zu)",
                            file, hubs);
    }
    return 0;
}

/* Format a path into a PATH_CAP buffer; a path too long comes out cut, and then names no file. */
static void pathf(char out[PATH_CAP], const char *fmt, ...) RDX_PRINTF(2, 3);
static void pathf(char out[PATH_CAP], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_CAP, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_CAP) {
        out[0] = '\0';
    }
}

static int mkdir_p(const char *cmd, const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return rdx_cli_fail(cmd, "%s: %s", path, strerror(errno));
    }
    return 0;
}

static int write_file(const char *cmd, const char *path, const char *text)
{
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_file_write_atomic(path, text, strlen(text), &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    return 0;
}

static const struct netnode *hub_of(const struct net *net)
{
    for (size_t i = 0; i < net->count; i++) {
        if (net->n[i].role == ROLE_HUB) {
            return &net->n[i];
        }
    }
    return NULL;
}

/* Append "ID = kinds" for every node of role r to b. */
static void rules_for(rdx_buf *b, const struct net *net, enum role r, const char *kinds, int *ok)
{
    char line[200];
    for (size_t i = 0; i < net->count; i++) {
        if (net->n[i].role == r) {
            int n = snprintf(line, sizeof line, "%s = %s\n", net->n[i].id, kinds);
            *ok = *ok && rdx_buf_append(b, line, (size_t)n) == RDX_OK;
        }
    }
}

/*
 * The configuration of node i. Delivery retries back off only to 2 s and
 * give up only after 1000 attempts, so a node restarted within the demo's
 * lifetime is caught up with promptly and nothing is dead-lettered.
 */
static int write_config(const char *cmd, const char *dir, const struct net *net, size_t i)
{
    const struct netnode *nd = &net->n[i];
    const struct netnode *hub = hub_of(net);
    char path[PATH_CAP], line[600];
    rdx_buf b;
    int ok = 1, n;
    rdx_buf_init(&b, 1 << 20);
    n = snprintf(line, sizeof line,
                 "; %s (%s), %s: generated by rdx network up\n"
                 "[node]\nid = %s\nlisten = 127.0.0.1:%u\ncert = pki/certs/%s.crt\n"
                 "key = pki/private/%s.key\nca = pki/ca.crt\ncrl = pki/crl.pem\n"
                 "data = data/%s\nretry_base_ms = 100\nretry_max_ms = 2000\n"
                 "max_attempts = 1000\nchunk_size = 1048576\n\n[peers]\n",
                 nd->name, nd->city, ROLE_NAMES[nd->role], nd->id, nd->port, nd->id, nd->id,
                 nd->id);
    ok = ok && rdx_buf_append(&b, line, (size_t)n) == RDX_OK;
    for (size_t k = 0; k < net->count; k++) {
        /* Port 0: not bound yet (the first writing, before the nodes start). */
        if (k != i && net->n[k].port != 0 && (nd->role == ROLE_HUB || net->n[k].role == ROLE_HUB)) {
            n = snprintf(line, sizeof line, "%s = 127.0.0.1:%u\n", net->n[k].id, net->n[k].port);
            ok = ok && rdx_buf_append(&b, line, (size_t)n) == RDX_OK;
        }
    }
    ok = ok && rdx_buf_append(&b, "\n[allow.send]\n", strlen("\n[allow.send]\n")) == RDX_OK;
    if (nd->role == ROLE_HUB) {
        rules_for(&b, net, ROLE_CLINIC, "ecg, dicom, lab-order", &ok);
        rules_for(&b, net, ROLE_LAB, "lab-result", &ok);
        rules_for(&b, net, ROLE_RADIOLOGY, "other", &ok);
        ok = ok && rdx_buf_append(&b, "\n[allow.fetch]\n", strlen("\n[allow.fetch]\n")) == RDX_OK;
        rules_for(&b, net, ROLE_RADIOLOGY, "dicom, report", &ok);
        n = snprintf(line, sizeof line,
                     "\n[dispatch]\nengines = ecg, dicom, lab\nindex = hub/index.db\n"
                     "catalogue = catalogue.ini\nlab_db = hub/lab.db\nhub_facility = %s\n"
                     "max_attempts = 3\nretry_ms = 500\n"
                     "; cases processed at once (never two from one sender)\njobs = 2\n"
                     "; the largest study one pull (rdx case request) sends: 8 GiB\n"
                     "max_pull_bytes = 8589934592\n",
                     nd->id);
        ok = ok && rdx_buf_append(&b, line, (size_t)n) == RDX_OK;
    } else {
        const char *kinds = nd->role == ROLE_CLINIC ? "report, lab-result"
                            : nd->role == ROLE_LAB  ? "lab-order, report"
                                                    : "dicom, report";
        n = snprintf(line, sizeof line, "%s = %s\n", hub->id, kinds);
        ok = ok && rdx_buf_append(&b, line, (size_t)n) == RDX_OK;
    }
    int rc = 0;
    if (!ok) {
        rc = rdx_cli_fail(cmd, "%s: configuration too large", nd->id);
    } else if (pathf(path, "%s/%s.ini", dir, nd->id), path[0] == '\0') {
        rc = rdx_cli_fail(cmd, "%s: path too long", dir);
    } else {
        rdx_error err;
        rdx_error_clear(&err);
        if (rdx_file_write_atomic(path, b.data, b.len, &err) != RDX_OK) {
            rc = rdx_cli_fail_err(cmd, &err);
        }
    }
    rdx_buf_free(&b);
    return rc;
}

static int write_nodes_file(const char *cmd, const char *dir, const struct net *net)
{
    char path[PATH_CAP], line[400];
    rdx_buf b;
    int ok = 1;
    rdx_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < net->count; i++) {
        const struct netnode *nd = &net->n[i];
        int n = snprintf(line, sizeof line, "[node %s]\nname = %s\ncity = %s\nrole = %s\n\n",
                         nd->id, nd->name, nd->city, ROLE_NAMES[nd->role]);
        ok = ok && rdx_buf_append(&b, line, (size_t)n) == RDX_OK;
    }
    pathf(path, "%s/nodes.ini", dir);
    ok = ok && rdx_buf_append(&b, "", 1) == RDX_OK;
    int rc = ok ? write_file(cmd, path, (const char *)b.data) : rdx_cli_fail(cmd, "out of memory");
    rdx_buf_free(&b);
    return rc;
}

static int copy_file(const char *cmd, const char *from, const char *to)
{
    rdx_buf b;
    rdx_error err;
    rdx_error_clear(&err);
    rdx_buf_init(&b, 64u << 20);
    int rc = 0;
    if (rdx_file_read(from, &b, &err) != RDX_OK ||
        rdx_file_write_atomic(to, b.data, b.len, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
    }
    rdx_buf_free(&b);
    return rc;
}

/* The number in [1, max] that the small file at path holds (newlines, spaces after it); 0: none. */
static int64_t read_number(const char *path, int64_t max)
{
    rdx_buf b;
    int64_t v = 0;
    rdx_buf_init(&b, 64);
    if (rdx_file_read(path, &b, NULL) != RDX_OK) {
        rdx_buf_free(&b);
        return 0;
    }
    size_t n = b.len;
    while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == ' ')) {
        n--;
    }
    if (rdx_parse_i64((const char *)b.data, n, 1, max, &v) != RDX_OK) {
        v = 0;
    }
    rdx_buf_free(&b);
    return v;
}

/* The PID recorded for node id, or 0. */
static pid_t read_pid(const char *dir, const char *id)
{
    char path[PATH_CAP];
    pathf(path, "%s/run/%s.pid", dir, id);
    return (pid_t)read_number(path, 4194304);
}

/* The port a node wrote to DATA/node.port once bound (0: none). */
static unsigned read_port(const char *dir, const char *id)
{
    char path[PATH_CAP];
    pathf(path, "%s/data/%s/node.port", dir, id);
    return (unsigned)read_number(path, 65535);
}

/*
 * Whether pid is still our node: alive and running `rdx node serve --config
 * DIR/ID.ini` (so a PID reused by an unrelated process is never signalled).
 */
static int is_our_node(pid_t pid, const char *ini)
{
    char path[64];
    rdx_buf b;
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    rdx_buf_init(&b, 1 << 16);
    int ours = 0;
    if (rdx_file_read(path, &b, NULL) == RDX_OK && b.len > 0) {
        /* NUL-separated arguments: look for "serve" followed by the config path. */
        int serve = 0;
        for (size_t off = 0; off < b.len;) {
            const char *a = (const char *)b.data + off;
            size_t l = strnlen(a, b.len - off);
            if (l == 5 && memcmp(a, "serve", 5) == 0) {
                serve = 1;
            } else if (serve && strlen(ini) == l && memcmp(a, ini, l) == 0) {
                ours = 1;
            }
            off += l + 1;
        }
    }
    rdx_buf_free(&b);
    return ours;
}

/*
 * Start node nd as `rdx node serve` in its own session. The node writes its
 * own PID file (--pid-file) before anything else and stops cleanly once that
 * file is removed, so removing DIR/run/ stops the network even when nobody
 * runs `network down`. owner (0: none) ties the node to that process: it
 * stops once owner has exited (`network up --foreground`, --owner).
 */
static int start_node(const char *cmd, const char *dir, const char *exe, const struct netnode *nd,
                      const char *ready, pid_t owner, pid_t *out)
{
    char ini[PATH_CAP], logp[PATH_CAP], pidp[PATH_CAP], portp[PATH_CAP], ptext[32];
    pathf(ini, "%s/%s.ini", dir, nd->id);
    pathf(logp, "%s/log/%s.log", dir, nd->id);
    pathf(pidp, "%s/run/%s.pid", dir, nd->id);
    pathf(portp, "%s/data/%s/node.port", dir, nd->id);
    snprintf(ptext, sizeof ptext, "%ld", (long)owner);
    (void)unlink(portp);
    (void)unlink(pidp);
    pid_t pid = fork();
    if (pid < 0) {
        return rdx_cli_fail(cmd, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* The node outlives this command: its own session, no terminal, its log file. */
        int lf = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int nf = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (lf < 0 || nf < 0 || setsid() < 0 || dup2(nf, 0) < 0 || dup2(nf, 1) < 0 ||
            dup2(lf, 2) < 0) {
            _exit(127);
        }
        /* Not the signal mask of a foreground `up`, which holds its signals for sigtimedwait. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[12] = {"rdx", "node", "serve", "--config", ini, "--pid-file", pidp};
        size_t k = 7;
        if (ready != NULL) {
            argv[k++] = "--await-peers";
            argv[k++] = (char *)ready;
        }
        if (owner > 0) {
            argv[k++] = "--owner";
            argv[k++] = ptext;
        }
        argv[k] = NULL;
        execv(exe, argv);
        _exit(127);
    }
    *out = pid;
    return 0;
}

/*
 * Stop the nodes this command started (pids[i] > 0, its children): SIGTERM,
 * up to 10 s to finish cleanly, then SIGKILL; each is reaped and its PID file
 * removed. pids[] is cleared.
 */
static void stop_started(const char *dir, const struct net *net, pid_t *pids)
{
    const struct timespec tick = {0, 20 * 1000 * 1000};
    for (size_t i = 0; i < net->count; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
        }
    }
    for (int t = 0; t < 500; t++) {
        size_t left = 0;
        for (size_t i = 0; i < net->count; i++) {
            if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == 0) {
                left++;
            } else if (pids[i] > 0) {
                char path[PATH_CAP];
                pathf(path, "%s/run/%s.pid", dir, net->n[i].id);
                (void)unlink(path);
                pids[i] = 0;
            }
        }
        if (left == 0) {
            return;
        }
        nanosleep(&tick, NULL);
    }
    for (size_t i = 0; i < net->count; i++) {
        if (pids[i] > 0) {
            char path[PATH_CAP];
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pathf(path, "%s/run/%s.pid", dir, net->n[i].id);
            (void)unlink(path);
            pids[i] = 0;
        }
    }
}

/*
 * Stop every node of net that its PID file names and that still runs its
 * configuration (not necessarily our child): SIGTERM, up to 10 s, then
 * SIGKILL. *stopped and *killed (may be NULL) get the counts.
 */
static void stop_recorded(const char *dir, const struct net *net, size_t *stopped, size_t *killed)
{
    pid_t pids[NODES_MAX] = {0};
    size_t stopping = 0, nstopped = 0, nkilled = 0;
    for (size_t i = 0; i < net->count; i++) {
        char ini[PATH_CAP];
        pid_t pid = read_pid(dir, net->n[i].id);
        pathf(ini, "%s/%s.ini", dir, net->n[i].id);
        if (pid > 0 && is_our_node(pid, ini) && kill(pid, SIGTERM) == 0) {
            pids[i] = pid;
            stopping++;
        }
    }
    const struct timespec tick = {0, 20 * 1000 * 1000};
    for (int t = 0; t < 500 && stopping > 0; t++) {
        stopping = 0;
        for (size_t i = 0; i < net->count; i++) {
            char ini[PATH_CAP];
            pathf(ini, "%s/%s.ini", dir, net->n[i].id);
            if (pids[i] > 0 && is_our_node(pids[i], ini)) {
                stopping++;
            }
        }
        if (stopping > 0) {
            nanosleep(&tick, NULL);
        }
    }
    for (size_t i = 0; i < net->count; i++) {
        char ini[PATH_CAP], path[PATH_CAP];
        pathf(ini, "%s/%s.ini", dir, net->n[i].id);
        if (pids[i] > 0 && is_our_node(pids[i], ini)) {
            kill(pids[i], SIGKILL);
            nkilled++;
        }
        nstopped += pids[i] > 0;
        pathf(path, "%s/run/%s.pid", dir, net->n[i].id);
        (void)unlink(path);
    }
    if (stopped != NULL) {
        *stopped = nstopped;
    }
    if (killed != NULL) {
        *killed = nkilled;
    }
}

/* The listen port in a node configuration ([node] listen = HOST:PORT); 0 when none or unreadable.
 */
static int listen_handler(void *user, const char *section, const char *name, const char *value)
{
    unsigned *port = user;
    if (strcmp(section, "node") == 0 && strcmp(name, "listen") == 0) {
        const char *colon = strrchr(value, ':');
        int64_t v = 0;
        if (colon != NULL && rdx_parse_i64(colon + 1, strlen(colon + 1), 0, 65535, &v) == RDX_OK) {
            *port = (unsigned)v;
        }
    }
    return 1;
}

static unsigned config_port(const char *dir, const char *id)
{
    char path[PATH_CAP];
    unsigned port = 0;
    pathf(path, "%s/%s.ini", dir, id);
    if (ini_parse(path, listen_handler, &port) != 0) {
        return 0;
    }
    return port;
}

/*
 * Whether the network in dir came up completely once: every node's
 * configuration names the port it bound. A first `up` that failed (or was
 * killed) half-way leaves port 0 in some; the next `up` starts over.
 */
static int network_complete(const char *dir, const struct net *net)
{
    for (size_t i = 0; i < net->count; i++) {
        if (config_port(dir, net->n[i].id) == 0) {
            return 0;
        }
    }
    return 1;
}

/*
 * The network's PKI: a new CA, or the one a failed first `up` left; a key and
 * certificate for every node that has none yet.
 */
static int make_pki(const char *cmd, const char *dir, struct net *net)
{
    char path[PATH_CAP], crt[PATH_CAP], key[PATH_CAP];
    rdx_error err;
    rdx_error_clear(&err);
    pathf(path, "%s/pki", dir);
    rdx_transport_ca_cfg cc = {path, "Nanjing Remote Diagnosis Network", 0};
    rdx_status st = rdx_transport_ca_create(&cc, &err);
    if (st != RDX_OK && st != RDX_EEXIST) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_transport_ca *ca = NULL;
    rdx_error_clear(&err);
    if (rdx_transport_ca_open(path, &ca, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < net->count; i++) {
        struct stat sb;
        pathf(crt, "%s/pki/certs/%s.crt", dir, net->n[i].id);
        pathf(key, "%s/pki/private/%s.key", dir, net->n[i].id);
        if (stat(crt, &sb) == 0 && stat(key, &sb) == 0) {
            continue; /* issued by an earlier, interrupted `up` */
        }
        rdx_transport_issue_cfg ic = {net->n[i].id, net->n[i].name, net->n[i].city, 0, 0};
        if (rdx_transport_ca_issue(ca, &ic, NULL, &err) != RDX_OK) {
            rc = rdx_cli_fail_err(cmd, &err);
        }
    }
    rdx_transport_ca_free(ca);
    return rc;
}

/* Wait (at most 15 s) until the node has written its port file. */
static int wait_started(const char *cmd, const char *dir, const struct netnode *nd, pid_t pid)
{
    char portp[PATH_CAP], logp[PATH_CAP];
    pathf(portp, "%s/data/%s/node.port", dir, nd->id);
    pathf(logp, "%s/log/%s.log", dir, nd->id);
    const struct timespec tick = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 750; i++) {
        struct stat sb;
        if (stat(portp, &sb) == 0 && sb.st_size > 0) {
            return 0;
        }
        if (kill(pid, 0) != 0 || waitpid(pid, NULL, WNOHANG) == pid) {
            return rdx_cli_fail(cmd, "%s: the node exited at start; see %s", nd->id, logp);
        }
        nanosleep(&tick, NULL);
    }
    return rdx_cli_fail(cmd, "%s: the node did not start within 15 s; see %s", nd->id, logp);
}

static const char UP_USAGE[] =
    "Usage: rdx network up --dir DIR [--nodes FILE] [--catalogue FILE]\n"
    "                      [--foreground | --owner PID] [--json]\n\n"
    "Create a whole network in DIR and start it: the network CA, one key and\n"
    "certificate per institution, one node configuration each, and one\n"
    "`rdx node serve` process per node, listening on 127.0.0.1 only. Each node\n"
    "binds port 0 itself and publishes the port the kernel gave it; the\n"
    "configurations are then written with every peer's real port (no port is\n"
    "picked and released first, so none can be taken meanwhile). The default\n"
    "network is the hub in Nanjing (NJ-HUB, Jiangsu Province Hospital),\n"
    "community clinics in Ma'anshan, Zhenjiang and Yangzhou (MAS-EAST-CHC,\n"
    "ZJ-EAST-CHC, YZ-EAST-CHC), the Zhenjiang central clinical laboratory\n"
    "(ZJ-CCL) and a radiology reading room in Nanjing (NJ-RAD). The hub's\n"
    "configuration enables the dispatcher ([dispatch]): ECGs, studies, lab\n"
    "orders and results are processed there, two cases at a time.\n\n"
    "When DIR already holds a network, its stopped nodes are started again.\n"
    "It is all or nothing: when a node cannot start, the nodes this command\n"
    "started are stopped again and it exits 1; a network that never came up\n"
    "completely (ports not yet written) is set up afresh by the next `up`,\n"
    "reusing its keys. Each node watches its PID file: removing DIR/run/ (or\n"
    "one DIR/run/ID.pid) stops the nodes cleanly.\n\n"
    "  --nodes FILE      the institutions instead: [node ID] sections with\n"
    "                    name, city and role (hub, clinic, lab, radiology);\n"
    "                    exactly one hub; lab IDs as in the catalogue\n"
    "  --catalogue FILE  the lab catalogue for routing (default\n"
    "                    docs/examples/network.ini)\n"
    "  --foreground      stay in the foreground with the nodes it started as\n"
    "                    its children: SIGINT, SIGTERM or SIGHUP stops them\n"
    "                    cleanly, and they stop by themselves should this\n"
    "                    command die (kill -9); for tests and a terminal\n"
    "                    session. Without it the nodes run on after `up` exits\n"
    "  --owner PID       the nodes started stop cleanly once process PID has\n"
    "                    exited (a test passes its own PID, so an aborted test\n"
    "                    leaves no node behind); `up` itself returns at once\n"
    "  --json            print the nodes as JSON: id, role, city, name, host,\n"
    "                    port, pid, data directory, config\n\n"
    "Layout: DIR/ID.ini, DIR/pki/, DIR/data/ID/, DIR/log/ID.log, DIR/run/ID.pid.\n"
    "Stop it with 'rdx network down --dir DIR'.\n";

/* Set up a network's files from scratch (or over what a failed first `up` left). */
static int create_network(const char *cmd, const char *dir, const char *catalogue, struct net *net)
{
    char path[PATH_CAP];
    struct stat sb;
    int rc;
    if ((rc = make_pki(cmd, dir, net)) != 0) {
        return rc;
    }
    pathf(path, "%s/catalogue.ini", dir);
    /* catalogue NULL: the default, unless a failed first `up` already copied one. */
    if ((catalogue != NULL || stat(path, &sb) != 0) &&
        (rc = copy_file(cmd, catalogue != NULL ? catalogue : CATALOGUE_DEFAULT, path)) != 0) {
        return rc;
    }
    static const char *const sub[] = {"data", "hub", "log", "run"};
    for (size_t k = 0; k < 4; k++) {
        pathf(path, "%s/%s", dir, sub[k]);
        if ((rc = mkdir_p(cmd, path)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < net->count; i++) {
        net->n[i].port = 0; /* each node binds port 0 and publishes what it got */
        if ((rc = write_config(cmd, dir, net, i)) != 0) {
            return rc;
        }
    }
    /* Written before any node starts, so `network down` finds them whatever happens next. */
    return write_nodes_file(cmd, dir, net);
}

/*
 * --foreground: wait while the nodes started here (pids[]) run; a signal
 * stops them cleanly. 0 after a signal or when every node exited cleanly
 * (`network down` from elsewhere), 1 when one died otherwise.
 */
static void supervised_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGCHLD);
}

static int supervise(const char *cmd, const char *dir, const struct net *net, pid_t *pids)
{
    sigset_t set;
    supervised_signals(&set); /* blocked since the start: one that came meanwhile is pending */
    int bad = 0;
    for (;;) {
        size_t live = 0;
        for (size_t i = 0; i < net->count; i++) {
            int status = 0;
            if (pids[i] <= 0) {
                continue;
            }
            if (waitpid(pids[i], &status, WNOHANG) != pids[i]) {
                live++;
                continue;
            }
            pids[i] = 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                bad = 1;
                fprintf(stderr, "rdx %s: %s exited (%s %d); see %s/log/%s.log\n", cmd, net->n[i].id,
                        WIFEXITED(status) ? "status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), dir,
                        net->n[i].id);
            }
        }
        if (live == 0) {
            return bad ? RDX_EXIT_FAIL : RDX_EXIT_OK;
        }
        const struct timespec second = {1, 0};
        int sig = sigtimedwait(&set, NULL, &second);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            stop_started(dir, net, pids);
            fprintf(stderr, "rdx %s: %s: the network's nodes stopped\n", cmd, strsignal(sig));
            return RDX_EXIT_OK;
        }
    }
}

static int network_up(int argc, char **argv)
{
    const char *cmd = "network up";
    const char *dir_arg = NULL, *nodes = NULL, *catalogue = NULL, *owner_s = NULL;
    int json = 0, foreground = 0, nops = 0;
    long owner = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir_arg),
                                RDX_CLI_VALUE("--nodes", &nodes),
                                RDX_CLI_VALUE("--catalogue", &catalogue),
                                RDX_CLI_VALUE("--owner", &owner_s),
                                RDX_CLI_FLAG("--foreground", &foreground),
                                RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS,
                                    UP_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (dir_arg == NULL) {
        return rdx_cli_usage(cmd, "--dir is required");
    }
    if (owner_s != NULL) {
        if (rdx_tp_cli_int(owner_s, 1, INT32_MAX, &owner, "--owner", cmd) < 0) {
            return RDX_EXIT_USAGE;
        }
        if (foreground) {
            return rdx_cli_usage(cmd, "--owner and --foreground exclude each other (a foreground "
                                      "`up` owns its nodes)");
        }
        if (kill((pid_t)owner, 0) != 0 && errno == ESRCH) {
            return rdx_cli_usage(cmd, "--owner %ld: no such process", owner);
        }
    }
    if (foreground) {
        owner = (long)getpid();
        /*
         * Hold SIGINT, SIGTERM and SIGHUP from the start: one that comes while
         * the nodes start is taken by supervise() once they have, and stops
         * them all, instead of killing this command between its forks.
         */
        sigset_t set;
        supervised_signals(&set);
        if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
            return rdx_cli_fail(cmd, "sigprocmask: %s", strerror(errno));
        }
    }
    char dir[PATH_CAP], path[PATH_CAP], exe[PATH_CAP];
    struct net net;
    int rc;
    if (nodes != NULL && (rc = load_nodes(cmd, nodes, &net)) != 0) {
        return rc; /* a bad --nodes file leaves nothing behind */
    }
    if (mkdir(dir_arg, 0700) != 0 && errno != EEXIST) {
        return rdx_cli_fail(cmd, "%s: %s", dir_arg, strerror(errno));
    }
    if (realpath(dir_arg, dir) == NULL) {
        return rdx_cli_fail(cmd, "%s: %s", dir_arg, strerror(errno));
    }
    if (strlen(dir) > 3000) {
        return rdx_cli_fail(cmd, "%s: path too long for the node files", dir);
    }
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) {
        return rdx_cli_fail(cmd, "/proc/self/exe: %s", strerror(errno));
    }
    exe[el] = '\0';
    pathf(path, "%s/nodes.ini", dir);
    struct stat sb;
    int first = stat(path, &sb) != 0; /* the first start: ports not known yet */
    if (!first) {
        struct net old;
        if ((rc = load_nodes(cmd, path, &old)) != 0) {
            return rc;
        }
        if (network_complete(dir, &old)) {
            /* An existing network: the same nodes, ports and keys; start what is stopped. */
            if (nodes != NULL) {
                return rdx_cli_usage(
                    cmd, "%s already holds a network; --nodes applies to a new one", dir);
            }
            net = old;
            for (size_t i = 0; i < net.count; i++) {
                rdx_transport_config *cfg = NULL;
                rdx_error err;
                rdx_error_clear(&err);
                pathf(path, "%s/%s.ini", dir, net.n[i].id);
                if (rdx_transport_config_load(path, &cfg, &err) != RDX_OK) {
                    return rdx_cli_fail_err(cmd, &err);
                }
                rdx_transport_config_free(cfg);
            }
        } else {
            /*
             * A first `up` that failed or was killed half-way: stop whatever
             * of it still runs, then set the network up again from the start
             * (its keys kept), with the --nodes given now if any.
             */
            stop_recorded(dir, &old, NULL, NULL);
            if (nodes == NULL) {
                net = old;
            }
            first = 1;
        }
    } else if (nodes == NULL && (rc = load_nodes(cmd, NULL, &net)) != 0) {
        return rc;
    }
    char ready[PATH_CAP];
    pathf(ready, "%s/run/peers.ready", dir);
    if (first) {
        if ((rc = create_network(cmd, dir, catalogue, &net)) != 0) {
            return rc;
        }
        (void)unlink(ready);
    } else {
        /* The logs and PID files may have been removed (removing run/ stops a network). */
        static const char *const sub[] = {"log", "run"};
        for (size_t k = 0; k < 2; k++) {
            pathf(path, "%s/%s", dir, sub[k]);
            if ((rc = mkdir_p(cmd, path)) != 0) {
                return rc;
            }
        }
    }
    pid_t pids[NODES_MAX] = {0};
    size_t started = 0;
    for (size_t i = 0; i < net.count; i++) {
        char ini[PATH_CAP];
        pid_t old = read_pid(dir, net.n[i].id);
        pathf(ini, "%s/%s.ini", dir, net.n[i].id);
        if (old > 0 && is_our_node(old, ini)) {
            continue; /* already running */
        }
        if ((rc = start_node(cmd, dir, exe, &net.n[i], first ? ready : NULL, (pid_t)owner,
                             &pids[i])) != 0) {
            break;
        }
        started++;
    }
    for (size_t i = 0; rc == 0 && i < net.count; i++) {
        if (pids[i] > 0) {
            rc = wait_started(cmd, dir, &net.n[i], pids[i]);
        }
    }
    if (rc == 0 && first) {
        /*
         * Every node is bound: write each configuration again with the real
         * ports (its own listen port, so a restart keeps it, and its peers'),
         * then let the nodes read their peers and serve.
         */
        for (size_t i = 0; rc == 0 && i < net.count; i++) {
            net.n[i].port = read_port(dir, net.n[i].id);
            if (net.n[i].port == 0) {
                rc = rdx_cli_fail(cmd, "%s: no port in %s/data/%s/node.port", net.n[i].id, dir,
                                  net.n[i].id);
            }
        }
        for (size_t i = 0; rc == 0 && i < net.count; i++) {
            rc = write_config(cmd, dir, &net, i);
        }
        if (rc == 0) {
            rc = write_file(cmd, ready, "ready\n");
        }
    }
    if (rc != 0) {
        /*
         * Half a network helps nobody: stop what this call started. A network
         * already up keeps its files as they were; a first start leaves port
         * 0 in the configurations, which the next `up` sees and starts over.
         */
        stop_started(dir, &net, pids);
        if (first) {
            (void)unlink(ready);
        }
        fprintf(stderr, "rdx %s: %s: stopped what it had started (%zu node(s))\n", cmd, dir,
                started);
        return rc;
    }
    if (json) {
        printf("{\"dir\":");
        rdx_tp_cli_json_str(stdout, dir);
        printf(",\"nodes\":[");
        for (size_t i = 0; i < net.count; i++) {
            pathf(path, "%s/data/%s", dir, net.n[i].id);
            printf("%s{\"id\":\"%s\",\"role\":\"%s\",\"city\":", i ? "," : "", net.n[i].id,
                   ROLE_NAMES[net.n[i].role]);
            rdx_tp_cli_json_str(stdout, net.n[i].city);
            printf(",\"name\":");
            rdx_tp_cli_json_str(stdout, net.n[i].name);
            printf(",\"host\":\"127.0.0.1\",\"port\":%u,\"pid\":%ld,\"data\":",
                   read_port(dir, net.n[i].id), (long)read_pid(dir, net.n[i].id));
            rdx_tp_cli_json_str(stdout, path);
            pathf(path, "%s/%s.ini", dir, net.n[i].id);
            printf(",\"config\":");
            rdx_tp_cli_json_str(stdout, path);
            printf("}");
        }
        printf("]}\n");
    } else {
        printf("network up in %s: %zu nodes on 127.0.0.1\n", dir, net.count);
        for (size_t i = 0; i < net.count; i++) {
            printf("  %-13s %-10s %-10s 127.0.0.1:%-5u pid %-7ld %s\n", net.n[i].id,
                   ROLE_NAMES[net.n[i].role], net.n[i].city, read_port(dir, net.n[i].id),
                   (long)read_pid(dir, net.n[i].id), net.n[i].name);
        }
    }
    if (!foreground) {
        return RDX_EXIT_OK;
    }
    fflush(stdout);
    if (started == 0) {
        fprintf(stderr, "rdx %s: every node already ran; nothing to watch here\n", cmd);
        return RDX_EXIT_OK;
    }
    fprintf(stderr, "rdx %s: serving in the foreground; Ctrl-C stops the network\n", cmd);
    return supervise(cmd, dir, &net, pids);
}

static const char DOWN_USAGE[] =
    "Usage: rdx network down --dir DIR\n\n"
    "Stop the nodes 'rdx network up' started in DIR: SIGTERM to each PID in\n"
    "DIR/run/ (only when that PID still runs that node's configuration), then\n"
    "SIGKILL to any still running after 10 s. DIR itself is kept.\n";

static int network_down(int argc, char **argv)
{
    const char *cmd = "network down";
    const char *dir_arg = NULL;
    int nops = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir_arg), RDX_CLI_END};
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS,
                                    DOWN_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (dir_arg == NULL) {
        return rdx_cli_usage(cmd, "--dir is required");
    }
    char dir[PATH_CAP], path[PATH_CAP];
    struct net net;
    int rc;
    if (realpath(dir_arg, dir) == NULL) {
        return rdx_cli_fail(cmd, "%s: %s", dir_arg, strerror(errno));
    }
    pathf(path, "%s/nodes.ini", dir);
    if ((rc = load_nodes(cmd, path, &net)) != 0) {
        return rc;
    }
    size_t stopped = 0, killed = 0;
    stop_recorded(dir, &net, &stopped, &killed);
    printf("network down in %s: %zu node(s) stopped%s\n", dir, stopped,
           killed ? " (some killed after 10 s)" : "");
    return RDX_EXIT_OK;
}

static const struct rdx_cli_verb verbs[] = {
    {"up", "create the PKI and node configs in DIR and start every node on 127.0.0.1", network_up},
    {"down", "stop the nodes a 'network up' started (by their PID files)", network_down},
};

const struct rdx_cli_group rdx_cli_group_network = {
    .name = "network",
    .summary = "The four-city network on one machine (demo and tests)",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0],
};
