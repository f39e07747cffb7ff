/*
 * The hub's dispatcher (see rdx/hub.h): takes each completely received inbox
 * case, runs the engine its kind calls for, and completes it with the cases it
 * produces through rdx_transport_inbox_complete, which queues them and marks
 * the inbox case processed in one transaction.
 *
 * Every engine step is idempotent, so doing a case again after a crash is
 * harmless: the imaging index replaces unchanged rows, the lab store gives an
 * order already routed its first decisions and applies a result message once,
 * a custody re-scan changes nothing, and ECG detection is a pure function of
 * the trace. What must happen once (the cases sent on) happens in the commit.
 *
 * The engines run as child `rdx` processes (fork and exec of /proc/self/exe),
 * each with its own stdout and stderr files in the case's work directory.
 */
#define _GNU_SOURCE
#include "hub_limits.h"
#include "rdx/hub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <ini.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PATH_CAP  4096
#define WHY_CAP   512
#define MAX_FILES 4096 /* items of one output case (RDX_TRANSPORT_ITEMS_MAX caps it further) */
/* An engine run that takes longer is killed: one hung child must not stop the hub. */
#define ENGINE_TIMEOUT_MS (10 * 60 * 1000)
/* Pending cases looked at per pass: enough to find one from every sender behind a busy one. */
#define PENDING_MAX 256
/* The fallback poll, and the idle poll's range when inotify wakes the dispatcher. */
#define POLL_MS     100
#define IDLE_MAX_MS 1000
/* After the store changes, wait this long for the rest of the commit before looking. */
#define NOTIFY_SETTLE_MS 5

struct rdx_hub_dispatcher {
    const rdx_transport_config *cfg;
    rdx_logger log;
    char exe[PATH_CAP];
    unsigned kinds; /* rdx_transport_kind bits processed here */
    char index[PATH_CAP], archive[PATH_CAP], catalogue[PATH_CAP], lab_db[PATH_CAP];
    char facility[64];
    long max_attempts, retry_ms;
    long max_pull_bytes;  /* [dispatch] max_pull_bytes: the largest study a pull sends */
    size_t jobs;          /* [dispatch] jobs or rdx_hub_dispatcher_set_jobs: cases at once */
    size_t max_in_flight; /* the most cases in hand at once so far (the coordinator's) */
    int wake_fd;          /* eventfd: a worker finished, or stop */
    int notify_fd;        /* inotify on the data directory, or -1 (then a poll only) */
    atomic_int stop;
};

/* ---- configuration ---------------------------------------------------------- */

struct parse {
    struct rdx_hub_dispatcher *d;
    char dir[PATH_CAP];
    int seen;
    int bad_line;
    char why[256];
};

static int set_path(struct parse *p, char *dst, const char *v)
{
    int n = v[0] == '/' ? snprintf(dst, PATH_CAP, "%s", v)
                        : snprintf(dst, PATH_CAP, "%s/%s", p->dir, v);
    if (n < 0 || n >= PATH_CAP) {
        snprintf(p->why, sizeof p->why, "path too long");
        return 0;
    }
    return 1;
}

static int set_long(struct parse *p, long *dst, const char *v, long min, long max)
{
    int64_t x;
    if (rdx_parse_i64(v, strlen(v), min, max, &x) != RDX_OK) {
        snprintf(p->why, sizeof p->why, "'%s': not a whole number in %ld..%ld", v, min, max);
        return 0;
    }
    *dst = (long)x;
    return 1;
}

static int set_engines(struct parse *p, const char *v)
{
    const char *s = v;
    p->d->kinds = 0;
    while (*s != '\0') {
        while (*s == ' ' || *s == ',' || *s == '\t') {
            s++;
        }
        const char *t = s;
        while (*t != '\0' && *t != ',' && *t != ' ' && *t != '\t') {
            t++;
        }
        size_t n = (size_t)(t - s);
        if (n == 0) {
            break;
        }
        if (n == 3 && memcmp(s, "ecg", 3) == 0) {
            p->d->kinds |= RDX_KIND_ECG;
        } else if (n == 5 && memcmp(s, "dicom", 5) == 0) {
            /* a study kept and indexed, and the requests ("other") to pull one */
            p->d->kinds |= RDX_KIND_DICOM | RDX_KIND_OTHER;
        } else if (n == 3 && memcmp(s, "lab", 3) == 0) {
            p->d->kinds |= RDX_KIND_LAB_ORDER | RDX_KIND_LAB_RESULT;
        } else {
            snprintf(p->why, sizeof p->why, "unknown engine '%.*s' (ecg, dicom, lab)", (int)n, s);
            return 0;
        }
        s = t;
    }
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    struct rdx_hub_dispatcher *d = p->d;
    if (strcmp(section, "dispatch") != 0) {
        return 1; /* the transport's sections, checked by rdx_transport_config_load */
    }
    p->seen = 1;
    int ok;
    if (strcmp(name, "engines") == 0) {
        ok = set_engines(p, value);
    } else if (strcmp(name, "index") == 0) {
        ok = set_path(p, d->index, value);
    } else if (strcmp(name, "archive") == 0) {
        ok = set_path(p, d->archive, value);
    } else if (strcmp(name, "catalogue") == 0) {
        ok = set_path(p, d->catalogue, value);
    } else if (strcmp(name, "lab_db") == 0) {
        ok = set_path(p, d->lab_db, value);
    } else if (strcmp(name, "hub_facility") == 0) {
        ok = strlen(value) > 0 && strlen(value) < sizeof d->facility;
        if (ok) {
            snprintf(d->facility, sizeof d->facility, "%s", value);
        } else {
            snprintf(p->why, sizeof p->why, "1 to %zu characters", sizeof d->facility - 1);
        }
    } else if (strcmp(name, "max_attempts") == 0) {
        ok = set_long(p, &d->max_attempts, value, 1, 100);
    } else if (strcmp(name, "max_pull_bytes") == 0) {
        ok = set_long(p, &d->max_pull_bytes, value, 1, RDX_HUB_PULL_BYTES_CEILING);
    } else if (strcmp(name, "jobs") == 0) {
        long v = 0;
        ok = set_long(p, &v, value, 1, RDX_HUB_JOBS_MAX);
        d->jobs = (size_t)v;
    } else if (strcmp(name, "retry_ms") == 0) {
        ok = set_long(p, &d->retry_ms, value, 1, 3600000);
    } else {
        snprintf(p->why, sizeof p->why, "unknown key");
        ok = 0;
    }
    if (!ok) {
        char msg[256];
        snprintf(msg, sizeof msg, "%.40s: %.200s", name, p->why);
        snprintf(p->why, sizeof p->why, "%s", msg);
    }
    return ok;
}

rdx_status rdx_hub_dispatcher_new(const rdx_transport_config *cfg, const rdx_logger *log,
                                  rdx_hub_dispatcher **out, rdx_error *err)
{
    struct parse p;
    const char *path = rdx_transport_config_path(cfg);
    *out = NULL;
    struct rdx_hub_dispatcher *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    memset(&p, 0, sizeof p);
    p.d = d;
    d->cfg = cfg;
    if (log != NULL) {
        d->log = *log;
    }
    d->max_attempts = 3;
    d->retry_ms = 1000;
    d->max_pull_bytes = RDX_HUB_PULL_BYTES_DEFAULT;
    d->jobs = RDX_HUB_JOBS_DEFAULT;
    d->wake_fd = -1;
    d->notify_fd = -1;
    snprintf(d->facility, sizeof d->facility, "NJ-HUB");
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(p.dir, sizeof p.dir, ".");
    } else {
        snprintf(p.dir, sizeof p.dir, "%.*s", (int)(slash - path), path);
    }
    int line = ini_parse(path, handler, &p);
    if (line != 0) {
        rdx_status st =
            line < 0 ? rdx_error_set(err, RDX_EIO, "%s: cannot read it", path)
                     : rdx_error_set(err, RDX_EINVAL, "%s:%d: [dispatch] %s", path, line, p.why);
        free(d);
        return st;
    }
    if (!p.seen) {
        free(d);
        return RDX_OK;
    }
    if ((d->kinds & RDX_KIND_DICOM) != 0 && d->index[0] == '\0') {
        free(d);
        return rdx_error_set(err, RDX_EINVAL, "%s: [dispatch] dicom needs 'index'", path);
    }
    if ((d->kinds & RDX_KIND_LAB_ORDER) != 0 && (d->catalogue[0] == '\0' || d->lab_db[0] == 0)) {
        free(d);
        return rdx_error_set(err, RDX_EINVAL, "%s: [dispatch] lab needs 'catalogue' and 'lab_db'",
                             path);
    }
    if (d->archive[0] == '\0' &&
        snprintf(d->archive, sizeof d->archive, "%s/studies", rdx_transport_config_data_dir(cfg)) >=
            (int)sizeof d->archive) {
        free(d);
        return rdx_error_set(err, RDX_EINVAL, "%s: data path too long", path);
    }
    ssize_t n = readlink("/proc/self/exe", d->exe, sizeof d->exe - 1);
    if (n <= 0) {
        free(d);
        return rdx_error_set(err, RDX_EIO, "/proc/self/exe: %s", strerror(errno));
    }
    d->exe[n] = '\0';
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wake_fd < 0) {
        free(d);
        return rdx_error_set(err, RDX_EIO, "eventfd: %s", strerror(errno));
    }
    /*
     * A case that arrives is a commit to DATA/node.db (its WAL): watching the
     * directory wakes the dispatcher at once instead of at the next poll.
     * Writes only: IN_CLOSE_WRITE would fire each time a reader (this
     * dispatcher's own look at the inbox) closes the database, and wake it
     * again. Without inotify (no more instances, say) the poll alone does it.
     */
    d->notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->notify_fd >= 0 && inotify_add_watch(d->notify_fd, rdx_transport_config_data_dir(cfg),
                                               IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
        close(d->notify_fd);
        d->notify_fd = -1;
    }
    atomic_init(&d->stop, 0);
    *out = d;
    return RDX_OK;
}

rdx_status rdx_hub_dispatcher_set_jobs(rdx_hub_dispatcher *d, unsigned jobs, rdx_error *err)
{
    if (d == NULL || jobs < 1 || jobs > RDX_HUB_JOBS_MAX) {
        return rdx_error_set(err, RDX_EINVAL, "jobs: %u is not in 1..%d", jobs, RDX_HUB_JOBS_MAX);
    }
    d->jobs = jobs;
    return RDX_OK;
}

void rdx_hub_dispatcher_free(rdx_hub_dispatcher *d)
{
    if (d == NULL) {
        return;
    }
    if (d->wake_fd >= 0) {
        close(d->wake_fd);
    }
    if (d->notify_fd >= 0) {
        close(d->notify_fd);
    }
    free(d);
}

static void wake(struct rdx_hub_dispatcher *d);

void rdx_hub_dispatcher_stop(rdx_hub_dispatcher *d)
{
    if (d != NULL) {
        atomic_store(&d->stop, 1);
        wake(d);
    }
}

/* ---- helpers ------------------------------------------------------------------ */

static void logf_(struct rdx_hub_dispatcher *d, rdx_log_level lvl, const char *fmt, ...)
    RDX_PRINTF(3, 4);
static void logf_(struct rdx_hub_dispatcher *d, rdx_log_level lvl, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (d->log.fn == NULL || lvl < d->log.min_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->log.fn(d->log.user, lvl, msg);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static rdx_status mkdirs(const char *path, rdx_error *err)
{
    char tmp[PATH_CAP];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        return rdx_error_set(err, RDX_EINVAL, "%s: path too long", path);
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(errno));
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(errno));
    }
    return RDX_OK;
}

static rdx_status write_text(const char *path, const char *text, rdx_error *err)
{
    return rdx_file_write_atomic(path, text, strlen(text), err);
}

/* The last non-empty line of a file (a child's stderr), for an error message. */
static void last_line(const char *path, char *out, size_t outsz)
{
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    out[0] = '\0';
    if (rdx_file_read(path, &b, NULL) != RDX_OK || b.len == 0) {
        rdx_buf_free(&b);
        return;
    }
    size_t end = b.len;
    while (end > 0 && (b.data[end - 1] == '\n' || b.data[end - 1] == '\r')) {
        end--;
    }
    size_t start = end;
    while (start > 0 && b.data[start - 1] != '\n') {
        start--;
    }
    snprintf(out, outsz, "%.*s", (int)(end - start), (const char *)b.data + start);
    rdx_buf_free(&b);
}

/*
 * Run `rdx ARGS...` with stdout to out_path (NULL: /dev/null) and stderr to
 * err_path. Returns the exit status (or -1 when it could not run or died by
 * a signal; why says so).
 */
static int run_rdx(struct rdx_hub_dispatcher *d, const char *out_path, const char *err_path,
                   const char *const *args, char *why, size_t whysz)
{
    char *argv[32];
    size_t n = 0;
    pid_t pid;
    int status = 0;
    argv[n++] = "rdx";
    for (; args[n - 1] != NULL && n < 31; n++) {
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;
    const char *outp = out_path != NULL ? out_path : "/dev/null";
    pid_t self = getpid();
    pid = fork();
    if (pid < 0) {
        snprintf(why, whysz, "cannot run %.300s: fork: %.100s", d->exe, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /*
         * The child of a threaded process: async-signal-safe calls only. It
         * dies with the worker thread that waits for it (PR_SET_PDEATHSIG), so
         * an engine never outlives a hub killed with -9 and never writes into
         * the files a restarted hub has meanwhile done again and queued.
         */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != self) {
            _exit(126);
        }
        /* Close-on-exec: dup2 gives 0, 1 and 2 without it, the originals go at exec. */
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(126);
        }
        execve(d->exe, argv, environ);
        _exit(127);
    }
    const struct timespec tick = {0, 5 * 1000 * 1000};
    uint64_t deadline = rdx_clock_mono_ns() + (uint64_t)ENGINE_TIMEOUT_MS * 1000000u;
    int timed_out = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            break;
        }
        if (w < 0 && errno != EINTR) {
            snprintf(why, whysz, "waitpid: %s", strerror(errno));
            return -1;
        }
        if (!timed_out && rdx_clock_mono_ns() > deadline) {
            kill(pid, SIGKILL); /* reaped on the next turn */
            timed_out = 1;
        }
        nanosleep(&tick, NULL);
    }
    if (timed_out) {
        snprintf(why, whysz, "rdx %s %s: killed after %d s", args[0], args[1],
                 ENGINE_TIMEOUT_MS / 1000);
        return -1;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, whysz, "rdx %s %s died of signal %d", args[0], args[1], WTERMSIG(status));
        return -1;
    }
    int code = WEXITSTATUS(status);
    if (code != 0) {
        char line[400];
        last_line(err_path, line, sizeof line);
        snprintf(why, whysz, "%s", line[0] ? line : "failed without a message");
    }
    return code;
}

/*
 * The value of "key" in our own engines' JSON output (string or bare
 * literal), searching from *pos; advances *pos past it. 1 when found.
 */
static int json_next(const char *text, const char **pos, const char *key, char *out, size_t outsz)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(*pos, pat);
    (void)text;
    if (p == NULL) {
        return 0;
    }
    p += strlen(pat);
    while (*p == ' ') {
        p++;
    }
    if (*p != ':') {
        *pos = p;
        return json_next(text, pos, key, out, outsz);
    }
    p++;
    while (*p == ' ') {
        p++;
    }
    size_t k = 0;
    if (*p == '"') {
        p++;
        while (*p != '\0' && *p != '"') {
            char c = *p++;
            if (c == '\\' && *p != '\0') {
                c = *p++;
                if (c == 'n') {
                    c = '\n';
                } else if (c == 't') {
                    c = '\t';
                } else if (c == 'u') {
                    c = '?'; /* not needed for the fields read here */
                    for (int i = 0; i < 4 && *p != '\0'; i++) {
                        p++;
                    }
                }
            }
            if (k + 1 < outsz) {
                out[k++] = c;
            }
        }
        if (*p == '"') {
            p++;
        }
    } else {
        while (*p != '\0' && *p != ',' && *p != '}' && *p != ']' && *p != '\n') {
            if (k + 1 < outsz) {
                out[k++] = *p;
            }
            p++;
        }
    }
    out[k] = '\0';
    *pos = p;
    return 1;
}

static int json_get(const char *text, const char *key, char *out, size_t outsz)
{
    const char *pos = text;
    return json_next(text, &pos, key, out, outsz);
}

static int read_text(const char *path, rdx_buf *b)
{
    rdx_buf_init(b, 64u << 20);
    if (rdx_file_read(path, b, NULL) != RDX_OK || rdx_buf_append(b, "", 1) != RDX_OK) {
        rdx_buf_free(b);
        return 0;
    }
    return 1;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted base names of the regular files in dir ending in suffix (""), malloc'd. */
static size_t list_dir(const char *dir, const char *suffix, char ***names)
{
    DIR *dh = opendir(dir);
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    *names = NULL;
    if (dh == NULL) {
        return 0;
    }
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, suffix)) {
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = rdx_reallocarray(v, nc, sizeof *v);
            if (nv == NULL) {
                break;
            }
            v = nv;
            cap = nc;
        }
        if ((v[n] = strdup(e->d_name)) == NULL) {
            break;
        }
        n++;
    }
    closedir(dh);
    if (n > 1) {
        qsort(v, n, sizeof *v, cmp_str);
    }
    *names = v;
    return n;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* ---- output cases --------------------------------------------------------- */

struct outcase {
    char to[65];
    rdx_transport_kind kind;
    char **files;
    size_t n, cap;
};

struct job {
    struct rdx_hub_dispatcher *d;
    const rdx_transport_inbox_case *c;
    char work[PATH_CAP]; /* DATA/work/SENDER.CASE */
    char in[PATH_CAP];   /* its received items */
    char out[PATH_CAP];  /* what the engines write */
    char reply[PATH_CAP];
    struct outcase outs[RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX];
    size_t nouts;
    char detail[1024];
    char why[WHY_CAP];
};

static struct outcase *out_new(struct job *j, const char *to, rdx_transport_kind kind)
{
    if (j->nouts == RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX) {
        snprintf(j->why, sizeof j->why, "more than %d output cases",
                 RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX);
        return NULL;
    }
    struct outcase *o = &j->outs[j->nouts++];
    memset(o, 0, sizeof *o);
    snprintf(o->to, sizeof o->to, "%s", to);
    o->kind = kind;
    return o;
}

static int out_add(struct job *j, struct outcase *o, const char *path)
{
    if (o->n == MAX_FILES) {
        snprintf(j->why, sizeof j->why, "more than %d files in one case", MAX_FILES);
        return 0;
    }
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 8;
        char **nv = rdx_reallocarray(o->files, nc, sizeof *nv);
        if (nv == NULL) {
            snprintf(j->why, sizeof j->why, "out of memory");
            return 0;
        }
        o->files = nv;
        o->cap = nc;
    }
    if ((o->files[o->n] = strdup(path)) == NULL) {
        snprintf(j->why, sizeof j->why, "out of memory");
        return 0;
    }
    o->n++;
    return 1;
}

/* A reply to the inbox case's sender (or to someone else): its first item names the case. */
static struct outcase *reply_new(struct job *j, const char *to, rdx_transport_kind kind)
{
    if (!rdx_transport_config_has_peer(j->d->cfg, to)) {
        snprintf(j->why, sizeof j->why, "no [peers] entry for '%s' to send the %s to", to,
                 rdx_transport_kind_name(kind));
        return NULL;
    }
    struct outcase *o = out_new(j, to, kind);
    if (o == NULL || !out_add(j, o, j->reply)) {
        return NULL;
    }
    return o;
}

static void job_clear(struct job *j)
{
    for (size_t i = 0; i < j->nouts; i++) {
        free_names(j->outs[i].files, j->outs[i].n);
    }
    j->nouts = 0;
}

static int path_in(char *dst, const char *dir, const char *name)
{
    return snprintf(dst, PATH_CAP, "%s/%s", dir, name) < PATH_CAP;
}

/* ---- ecg: detect, reply with annotations, summary and strip ---------------- */

/*
 * A CSV upload cannot be detected without its sampling rate: answer the
 * sender with refused.txt saying what to send, and leave an ecg-refused
 * audit record. Retrying would not help, so this completes the case.
 */
static int refuse_ecg(struct job *j, const char *why)
{
    char refusal[PATH_CAP], text[800];
    rdx_error err;
    rdx_error_clear(&err);
    snprintf(text, sizeof text,
             "refused: %.500s\nA CSV ECG (a header row of lead names, one column per lead, "
             "values in mV) needs an ecg.ini item beside it with its sampling rate: fs = HZ\n",
             why);
    if (!path_in(refusal, j->out, "refused.txt") || write_text(refusal, text, &err) != RDX_OK) {
        snprintf(j->why, sizeof j->why, "%s", err.msg[0] ? err.msg : "path too long");
        return 0;
    }
    (void)rdx_transport_audit_append(j->d->cfg, "ecg-refused", 4, j->c->sender, j->c->case_id, why,
                                     NULL);
    struct outcase *o = reply_new(j, j->c->sender, RDX_KIND_REPORT);
    if (o == NULL || !out_add(j, o, refusal)) {
        return 0;
    }
    snprintf(j->detail, sizeof j->detail, "ecg refused: %.900s; refused.txt to %s", why,
             j->c->sender);
    return 1;
}

/* The sampling rate of a CSV upload from its ecg.ini, as an argument; 0 with why when unusable. */
static int csv_rate(struct job *j, char *fs, size_t fssz, char *why, size_t whysz)
{
    char path[PATH_CAP];
    struct stat sb;
    rdx_buf b;
    rdx_error err;
    double hz = 0.0;
    rdx_error_clear(&err);
    if (!path_in(path, j->in, "ecg.ini") || stat(path, &sb) != 0) {
        snprintf(why, whysz, "a CSV ECG without ecg.ini: its sampling rate is unknown");
        return 0;
    }
    if (sb.st_size > RDX_HUB_ECG_META_MAX || !read_text(path, &b)) {
        snprintf(why, whysz, "ecg.ini: unreadable or over %d bytes", RDX_HUB_ECG_META_MAX);
        return 0;
    }
    rdx_status st = rdx_hub_ecg_meta_parse(b.data, b.len - 1, &hz, &err);
    rdx_buf_free(&b);
    if (st != RDX_OK) {
        snprintf(why, whysz, "%s", err.msg);
        return 0;
    }
    snprintf(fs, fssz, "%.17g", hz);
    return 1;
}

static int do_ecg(struct job *j)
{
    char **hea = NULL;
    char fs[40] = "";
    size_t nh = list_dir(j->in, ".hea", &hea);
    int ok = 0;
    size_t ext = 4; /* ".hea" */
    if (nh == 0) {
        /* A CSV upload instead, with its rate in ecg.ini. */
        nh = list_dir(j->in, ".csv", &hea);
        if (nh == 0) {
            snprintf(j->why, sizeof j->why, "no WFDB header (.hea) or CSV (.csv) in the case");
            goto out;
        }
        char why[WHY_CAP];
        if (!csv_rate(j, fs, sizeof fs, why, sizeof why)) {
            ok = refuse_ecg(j, why);
            goto out;
        }
    }
    struct outcase *o = reply_new(j, j->c->sender, RDX_KIND_REPORT);
    if (o == NULL) {
        goto out;
    }
    size_t beats_total = 0;
    char beats_list[256] = "";
    for (size_t i = 0; i < nh; i++) {
        char rec[PATH_CAP], sum[PATH_CAP], svg[PATH_CAP], qrs[PATH_CAP], errp[PATH_CAP];
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(hea[i]) - ext), hea[i]);
        if (!path_in(rec, j->in, hea[i]) ||
            snprintf(sum, sizeof sum, "%s/%s.summary.json", j->out, base) >= PATH_CAP ||
            snprintf(svg, sizeof svg, "%s/%s.strip.svg", j->out, base) >= PATH_CAP ||
            snprintf(qrs, sizeof qrs, "%s/%s.qrs", j->out, base) >= PATH_CAP ||
            snprintf(errp, sizeof errp, "%s/ecg.err", j->work) >= PATH_CAP) {
            snprintf(j->why, sizeof j->why, "path too long");
            goto out;
        }
        const char *detect[] = {"ecg", "detect", "--json", "-o", j->out, rec, NULL, NULL, NULL};
        const char *plot[] = {"ecg", "plot", "--from", "0",  "--to", "10",
                              "-o",  svg,    rec,      NULL, NULL,   NULL};
        if (fs[0] != '\0') {
            /* A CSV record: the rate from ecg.ini (a number formatted here, never an option). */
            detect[5] = "--fs";
            detect[6] = fs;
            detect[7] = rec;
            plot[8] = "--fs";
            plot[9] = fs;
            plot[10] = rec;
        }
        if (run_rdx(j->d, sum, errp, detect, j->why, sizeof j->why) != 0) {
            goto out;
        }
        if (run_rdx(j->d, NULL, errp, plot, j->why, sizeof j->why) != 0) {
            goto out;
        }
        rdx_buf b;
        char beats[32] = "?";
        if (read_text(sum, &b)) {
            if (json_get((const char *)b.data, "beats", beats, sizeof beats)) {
                int64_t v = 0;
                if (rdx_parse_i64(beats, strlen(beats), 0, INT64_MAX, &v) == RDX_OK) {
                    beats_total += (size_t)v;
                }
            }
            rdx_buf_free(&b);
        }
        size_t bl = strlen(beats_list);
        snprintf(beats_list + bl, sizeof beats_list - bl, "%s%.60s %s beats", i ? ", " : "", base,
                 beats);
        if (!out_add(j, o, qrs) || !out_add(j, o, sum) || !out_add(j, o, svg)) {
            goto out;
        }
    }
    snprintf(j->detail, sizeof j->detail, "ecg: %s (%zu in all); report to %s", beats_list,
             beats_total, j->c->sender);
    ok = 1;
out:
    free_names(hea, nh);
    return ok;
}

/* ---- dicom: keep the study and index it ------------------------------------ */

static int do_dicom(struct job *j)
{
    char dir[PATH_CAP], outp[PATH_CAP], errp[PATH_CAP], db[PATH_CAP + 8];
    rdx_error err;
    size_t n = 0;
    rdx_error_clear(&err);
    if (snprintf(dir, sizeof dir, "%s/%s.%s", j->d->archive, j->c->sender, j->c->case_id) >=
            PATH_CAP ||
        snprintf(outp, sizeof outp, "%s/index.json", j->work) >= PATH_CAP ||
        snprintf(errp, sizeof errp, "%s/index.err", j->work) >= PATH_CAP) {
        snprintf(j->why, sizeof j->why, "path too long");
        return 0;
    }
    /* A study kept by an interrupted attempt is copied afresh (the same bytes). */
    rm_rf(dir);
    if (mkdirs(dir, &err) != RDX_OK ||
        rdx_transport_case_fetch(j->d->cfg, j->c->case_id, j->c->sender, dir, &n, &err) != RDX_OK) {
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        return 0;
    }
    snprintf(db, sizeof db, "sqlite:%s", j->d->index);
    const char *args[] = {"img", "index", "--db", db, "--json", dir, NULL};
    if (run_rdx(j->d, outp, errp, args, j->why, sizeof j->why) != 0) {
        return 0;
    }
    rdx_buf b;
    char indexed[32] = "?", reports[32] = "?", unchanged[32] = "0";
    if (read_text(outp, &b)) {
        json_get((const char *)b.data, "indexed", indexed, sizeof indexed);
        json_get((const char *)b.data, "reports", reports, sizeof reports);
        json_get((const char *)b.data, "unchanged", unchanged, sizeof unchanged);
        rdx_buf_free(&b);
    }
    snprintf(j->detail, sizeof j->detail,
             "dicom: %zu file(s) kept in %.700s; %s indexed (%s unchanged), %s report(s) linked", n,
             dir, indexed, unchanged, reports);
    return 1;
}

/* ---- other: a request to pull a study ------------------------------------- */

/* Answer a pull with refused.txt (why, then the study UID) and a fetch-refused audit record. */
static int refuse_pull(struct job *j, const char *uid, const char *why)
{
    char refusal[PATH_CAP], text[1024];
    rdx_error err;
    rdx_error_clear(&err);
    snprintf(text, sizeof text, "refused: %.700s\nstudy-uid=%s\n", why, uid);
    if (!path_in(refusal, j->out, "refused.txt") || write_text(refusal, text, &err) != RDX_OK) {
        snprintf(j->why, sizeof j->why, "%s", err.msg[0] ? err.msg : "path too long");
        return 0;
    }
    (void)rdx_transport_audit_append(j->d->cfg, "fetch-refused", 8, j->c->sender, j->c->case_id,
                                     text, NULL);
    struct outcase *o = reply_new(j, j->c->sender, RDX_KIND_REPORT);
    if (o == NULL || !out_add(j, o, refusal)) {
        return 0;
    }
    return 1;
}

static int do_request(struct job *j)
{
    char reqp[PATH_CAP], uid[RDX_HUB_UID_MAX + 1] = "";
    rdx_buf b;
    rdx_error err;
    rdx_error_clear(&err);
    if (!path_in(reqp, j->in, "request.txt") || !read_text(reqp, &b)) {
        snprintf(j->detail, sizeof j->detail, "other: no request.txt; kept in the inbox");
        return 1;
    }
    rdx_status pst = rdx_hub_request_parse(b.data, b.len - 1, uid, &err);
    rdx_buf_free(&b);
    if (pst != RDX_OK) {
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        return 0;
    }
    if (!rdx_transport_policy_allows(j->d->cfg, 1, j->c->sender, RDX_KIND_DICOM)) {
        char why[300];
        snprintf(why, sizeof why,
                 "%s may not fetch studies from %s ([allow.fetch] has no dicom for it)",
                 j->c->sender, rdx_transport_config_id(j->d->cfg));
        if (!refuse_pull(j, uid, why)) {
            return 0;
        }
        snprintf(j->detail, sizeof j->detail, "request for study %s refused by [allow.fetch]", uid);
        return 1;
    }
    char db[PATH_CAP + 8], qout[PATH_CAP], rout[PATH_CAP], errp[PATH_CAP];
    snprintf(db, sizeof db, "sqlite:%s", j->d->index);
    if (!path_in(qout, j->work, "query.json") || !path_in(errp, j->work, "query.err") ||
        !path_in(rout, j->out, "report.txt")) {
        snprintf(j->why, sizeof j->why, "path too long");
        return 0;
    }
    const char *q[] = {"img",      "query",       "--db", db,       "--level",
                       "instance", "--study-uid", uid,    "--json", NULL};
    if (run_rdx(j->d, qout, errp, q, j->why, sizeof j->why) != 0) {
        return 0;
    }
    /* The study's size first: one over [dispatch] max_pull_bytes is refused, not sent. */
    uint64_t bytes = 0;
    if (read_text(qout, &b)) {
        const char *pos = (const char *)b.data;
        char path[PATH_CAP];
        struct stat sb;
        while (json_next((const char *)b.data, &pos, "path", path, sizeof path)) {
            if (stat(path, &sb) == 0) {
                bytes += (uint64_t)sb.st_size;
            }
        }
        rdx_buf_free(&b);
    }
    if (bytes > (uint64_t)j->d->max_pull_bytes) {
        char why[300];
        snprintf(why, sizeof why,
                 "study of %llu bytes is over the %ld bytes %s sends in one pull "
                 "([dispatch] max_pull_bytes)",
                 (unsigned long long)bytes, j->d->max_pull_bytes,
                 rdx_transport_config_id(j->d->cfg));
        if (!refuse_pull(j, uid, why)) {
            return 0;
        }
        snprintf(j->detail, sizeof j->detail,
                 "request for study %s refused: %llu bytes over max_pull_bytes %ld", uid,
                 (unsigned long long)bytes, j->d->max_pull_bytes);
        return 1;
    }
    struct outcase *o = reply_new(j, j->c->sender, RDX_KIND_DICOM);
    if (o == NULL) {
        return 0;
    }
    size_t files = 0;
    if (read_text(qout, &b)) {
        const char *pos = (const char *)b.data;
        char path[PATH_CAP];
        while (json_next((const char *)b.data, &pos, "path", path, sizeof path)) {
            if (!out_add(j, o, path)) {
                rdx_buf_free(&b);
                return 0;
            }
            files++;
        }
        rdx_buf_free(&b);
    }
    if (files == 0) {
        char none[PATH_CAP], text[300];
        snprintf(text, sizeof text, "study-uid=%s\nnot in the index of %s\n", uid,
                 rdx_transport_config_id(j->d->cfg));
        if (!path_in(none, j->out, "not-found.txt") || write_text(none, text, &err) != RDX_OK ||
            !out_add(j, o, none)) {
            return 0;
        }
        o->kind = RDX_KIND_REPORT;
        snprintf(j->detail, sizeof j->detail, "request for study %s: not in the index", uid);
        return 1;
    }
    const char *r[] = {"img", "report", "show", "--db", db, uid, NULL};
    int have_report = run_rdx(j->d, rout, errp, r, j->why, sizeof j->why) == 0;
    j->why[0] = '\0';
    if (have_report && !out_add(j, o, rout)) {
        return 0;
    }
    (void)rdx_transport_audit_append(j->d->cfg, "study-sent", 0, j->c->sender, j->c->case_id, uid,
                                     NULL);
    snprintf(j->detail, sizeof j->detail, "request for study %s: %zu instance(s)%s sent to %s", uid,
             files, have_report ? " and its report" : "", j->c->sender);
    return 1;
}

/* ---- lab ------------------------------------------------------------------ */

struct custody_ctx {
    struct job *j;
    const char *db;
    const char *errp;
};

/* Record one scan with `rdx lab event`, the sender as the actor. */
static rdx_status custody_scan(void *u, const rdx_hub_custody_scan *sc)
{
    struct custody_ctx *x = u;
    struct job *j = x->j;
    const char *args[] = {"lab",         "event",       "--db", x->db,       "--actor",
                          j->c->sender,  "--at",        sc->at, sc->barcode, sc->event,
                          "--condition", sc->condition, NULL};
    if (sc->condition[0] == '\0') {
        args[10] = NULL;
    }
    if (run_rdx(j->d, NULL, x->errp, args, j->why, sizeof j->why) != 0) {
        char m[WHY_CAP];
        snprintf(m, sizeof m, "custody.tsv:%u: %.480s", sc->line, j->why);
        snprintf(j->why, sizeof j->why, "%s", m);
        return RDX_EINVAL;
    }
    return RDX_OK;
}

/*
 * Apply custody.tsv (BARCODE EVENT DTM [CONDITION] a line) as events the
 * sending institution reports: the actor is the TLS-verified sender, never a
 * name inside the file.
 */
static int apply_custody(struct job *j, size_t *count)
{
    char path[PATH_CAP], errp[PATH_CAP], db[PATH_CAP + 8];
    rdx_buf b;
    rdx_error err;
    struct stat sb;
    rdx_error_clear(&err);
    *count = 0;
    if (!path_in(path, j->in, "custody.tsv") || !path_in(errp, j->work, "custody.err")) {
        snprintf(j->why, sizeof j->why, "path too long");
        return 0;
    }
    if (stat(path, &sb) != 0) {
        return 1;
    }
    if (sb.st_size > RDX_HUB_CUSTODY_MAX || !read_text(path, &b)) {
        snprintf(j->why, sizeof j->why, "custody.tsv: unreadable or over %d bytes",
                 RDX_HUB_CUSTODY_MAX);
        return 0;
    }
    snprintf(db, sizeof db, "sqlite:%s", j->d->lab_db);
    struct custody_ctx x = {j, db, errp};
    j->why[0] = '\0';
    rdx_status st = rdx_hub_custody_parse(b.data, b.len - 1, custody_scan, &x, count, &err);
    rdx_buf_free(&b);
    if (st != RDX_OK) {
        if (j->why[0] == '\0') {
            snprintf(j->why, sizeof j->why, "%s", err.msg);
        }
        return 0;
    }
    return 1;
}

static int first_hl7(struct job *j, char *path)
{
    char **v = NULL;
    size_t n = list_dir(j->in, ".hl7", &v);
    int ok = n > 0 && path_in(path, j->in, v[0]);
    free_names(v, n);
    if (!ok) {
        snprintf(j->why, sizeof j->why, "no HL7 message (.hl7) in the case");
    }
    return ok;
}

static int do_lab_order(struct job *j)
{
    char order[PATH_CAP], labs[PATH_CAP], rjson[PATH_CAP], rtext[PATH_CAP], errp[PATH_CAP];
    char db[PATH_CAP + 8];
    rdx_error err;
    rdx_error_clear(&err);
    if (!first_hl7(j, order)) {
        return 0;
    }
    if (!path_in(labs, j->work, "labs") || !path_in(rjson, j->out, "routing.json") ||
        !path_in(rtext, j->out, "routing.txt") || !path_in(errp, j->work, "route.err")) {
        snprintf(j->why, sizeof j->why, "path too long");
        return 0;
    }
    if (mkdirs(labs, &err) != RDX_OK) {
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        return 0;
    }
    snprintf(db, sizeof db, "sqlite:%s", j->d->lab_db);
    /* The readable lines the clinic's staff read, and the files each lab receives. */
    const char *text[] = {"lab",   "route", "--catalogue", j->d->catalogue, "--db", db,
                          "--out", labs,    "--hub",       j->d->facility,  order,  NULL};
    if (run_rdx(j->d, rtext, errp, text, j->why, sizeof j->why) != 0) {
        return 0;
    }
    /* The same (stored) decisions again, for machines. */
    const char *route[] = {"lab",   "route",        "--catalogue", j->d->catalogue, "--db", db,
                           "--hub", j->d->facility, "--json",      order,           NULL};
    if (run_rdx(j->d, rjson, errp, route, j->why, sizeof j->why) != 0) {
        return 0;
    }
    size_t events = 0;
    if (!apply_custody(j, &events)) {
        return 0;
    }
    char **v = NULL;
    size_t n = list_dir(labs, ".oml.hl7", &v);
    char sent[400] = "", held[400] = "";
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        char name[256], path[PATH_CAP];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(v[i]) - strlen(".oml.hl7")), v[i]);
        const char *dot = strrchr(name, '.');
        const char *lab = dot != NULL ? dot + 1 : name;
        char *list = rdx_transport_config_has_peer(j->d->cfg, lab) ? sent : held;
        size_t l = strlen(list);
        snprintf(list + l, 400 - l, "%s%s", l ? ", " : "", lab);
        if (list == held) {
            /* No node for that lab: keep its order where staff find it (DATA/held/). */
            char keep[PATH_CAP], src[PATH_CAP];
            rdx_buf b;
            rdx_error e;
            rdx_error_clear(&e);
            rdx_buf_init(&b, 64u << 20);
            ok = snprintf(keep, sizeof keep, "%s/held", rdx_transport_config_data_dir(j->d->cfg)) <
                     (int)sizeof keep &&
                 mkdirs(keep, &e) == RDX_OK && path_in(src, labs, v[i]) &&
                 snprintf(keep, sizeof keep, "%s/held/%s", rdx_transport_config_data_dir(j->d->cfg),
                          v[i]) < (int)sizeof keep &&
                 rdx_file_read(src, &b, &e) == RDX_OK &&
                 rdx_file_write_atomic(keep, b.data, b.len, &e) == RDX_OK;
            rdx_buf_free(&b);
            if (!ok) {
                snprintf(j->why, sizeof j->why, "keeping the order for %s: %.200s", lab,
                         e.msg[0] ? e.msg : "path too long");
                break;
            }
            logf_(j->d, RDX_LOG_WARN, "lab order %s: %s has no node here; its order is kept in %s",
                  j->c->case_id, lab, keep);
            continue;
        }
        struct outcase *o = NULL;
        ok = path_in(path, labs, v[i]) && (o = reply_new(j, lab, RDX_KIND_LAB_ORDER)) != NULL &&
             out_add(j, o, path);
    }
    free_names(v, n);
    if (!ok) {
        return 0;
    }
    struct outcase *notice = reply_new(j, j->c->sender, RDX_KIND_REPORT);
    if (notice == NULL || !out_add(j, notice, rtext) || !out_add(j, notice, rjson)) {
        return 0;
    }
    rdx_buf b;
    char control[80] = "?";
    if (read_text(rjson, &b)) {
        json_get((const char *)b.data, "control_id", control, sizeof control);
        rdx_buf_free(&b);
    }
    snprintf(j->detail, sizeof j->detail,
             "lab-order %s: forwarded to %s%s%s; %zu custody event(s); routing sent to %s", control,
             sent[0] ? sent : "no lab node", held[0] ? "; no node for " : "", held, events,
             j->c->sender);
    return 1;
}

static int do_lab_result(struct job *j)
{
    char oru[PATH_CAP], rjson[PATH_CAP], errp[PATH_CAP], db[PATH_CAP + 8];
    if (!first_hl7(j, oru)) {
        return 0;
    }
    if (!path_in(rjson, j->work, "result.json") || !path_in(errp, j->work, "result.err")) {
        snprintf(j->why, sizeof j->why, "path too long");
        return 0;
    }
    size_t events = 0;
    if (!apply_custody(j, &events)) {
        return 0;
    }
    snprintf(db, sizeof db, "sqlite:%s", j->d->lab_db);
    const char *args[] = {"lab",   "result",       "--db",   db,  "--out", j->out,
                          "--hub", j->d->facility, "--json", oru, NULL};
    int rc = run_rdx(j->d, rjson, errp, args, j->why, sizeof j->why);
    if (rc < 0) {
        return 0;
    }
    rdx_buf b;
    char ack[8] = "", clinic[80] = "", ackf[PATH_CAP] = "", oruf[PATH_CAP] = "", text[300] = "";
    if (!read_text(rjson, &b)) {
        return 0;
    }
    json_get((const char *)b.data, "ack", ack, sizeof ack);
    json_get((const char *)b.data, "clinic", clinic, sizeof clinic);
    json_get((const char *)b.data, "ack_file", ackf, sizeof ackf);
    json_get((const char *)b.data, "oru_file", oruf, sizeof oruf);
    json_get((const char *)b.data, "text", text, sizeof text);
    rdx_buf_free(&b);
    if (ackf[0] == '\0') {
        /* Nothing was decided (the file could not be read): a failure to retry. */
        if (j->why[0] == '\0') {
            snprintf(j->why, sizeof j->why, "rdx lab result gave no ACK");
        }
        return 0;
    }
    j->why[0] = '\0';
    struct outcase *o = reply_new(j, j->c->sender, RDX_KIND_REPORT);
    if (o == NULL || !out_add(j, o, ackf)) {
        return 0;
    }
    if (strcmp(ack, "AA") == 0 && oruf[0] != '\0') {
        struct outcase *c = reply_new(j, clinic, RDX_KIND_LAB_RESULT);
        if (c == NULL || !out_add(j, c, oruf)) {
            return 0;
        }
        snprintf(j->detail, sizeof j->detail,
                 "lab-result: %s (%s); %zu custody event(s); ORU forwarded to %s, ACK to %s", ack,
                 text, events, clinic, j->c->sender);
    } else {
        snprintf(j->detail, sizeof j->detail, "lab-result refused %s: %s; ACK to %s", ack, text,
                 j->c->sender);
    }
    return 1;
}

/* ---- one case ------------------------------------------------------------- */

/* Process c; 1 when it was completed (or was done before), 0 on a failure (j->why). */
static int process(struct rdx_hub_dispatcher *d, const rdx_transport_inbox_case *c, struct job *j)
{
    rdx_transport_kind kind;
    rdx_error err;
    const char *data = rdx_transport_config_data_dir(d->cfg);
    rdx_error_clear(&err);
    memset(j, 0, sizeof *j);
    j->d = d;
    j->c = c;
    if (snprintf(j->work, PATH_CAP, "%s/work/%s.%s", data, c->sender, c->case_id) >= PATH_CAP ||
        !path_in(j->in, j->work, "in") || !path_in(j->out, j->work, "out") ||
        !path_in(j->reply, j->work, RDX_TRANSPORT_REPLY_ITEM)) {
        snprintf(j->why, sizeof j->why, "path too long");
        return 0;
    }
    if (rdx_transport_kind_parse(c->kind, strlen(c->kind), &kind) != RDX_OK) {
        snprintf(j->why, sizeof j->why, "unknown kind '%s'", c->kind);
        return 0;
    }
    int ok = 1;
    if ((d->kinds & (unsigned)kind) == 0) {
        snprintf(j->detail, sizeof j->detail, "%s: not processed here; kept in the inbox", c->kind);
    } else {
        char text[80];
        rm_rf(j->work); /* what an interrupted attempt left */
        snprintf(text, sizeof text, "%s\n", c->case_id);
        if (mkdirs(j->in, &err) != RDX_OK || mkdirs(j->out, &err) != RDX_OK ||
            write_text(j->reply, text, &err) != RDX_OK ||
            (kind != RDX_KIND_DICOM && rdx_transport_case_fetch(d->cfg, c->case_id, c->sender,
                                                                j->in, NULL, &err) != RDX_OK)) {
            snprintf(j->why, sizeof j->why, "%s", err.msg);
            return 0;
        }
        switch (kind) {
        case RDX_KIND_ECG:
            ok = do_ecg(j);
            break;
        case RDX_KIND_DICOM:
            ok = do_dicom(j);
            break;
        case RDX_KIND_OTHER:
            ok = do_request(j);
            break;
        case RDX_KIND_LAB_ORDER:
            ok = do_lab_order(j);
            break;
        case RDX_KIND_LAB_RESULT:
            ok = do_lab_result(j);
            break;
        case RDX_KIND_REPORT:
        default:
            snprintf(j->detail, sizeof j->detail, "%s: nothing to do", c->kind);
            break;
        }
    }
    if (!ok) {
        return 0;
    }
    rdx_transport_output outs[RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX];
    for (size_t i = 0; i < j->nouts; i++) {
        outs[i].to = j->outs[i].to;
        outs[i].kind = j->outs[i].kind;
        outs[i].files = (const char *const *)j->outs[i].files;
        outs[i].nfiles = j->outs[i].n;
    }
    /*
     * Fault injection for the integration test (tests/test_e2e_network.c): die
     * as kill -9 would at the worst moment, the engine work done and nothing
     * committed, to prove the restart repairs it without duplicate output.
     */
    const char *fault = getenv("RDX_FAULT_DISPATCH_KILL");
    if (fault != NULL && strcmp(fault, c->kind) == 0) {
        raise(SIGKILL);
    }
    int already = 0;
    if (rdx_transport_inbox_complete(d->cfg, c->sender, c->case_id, outs, j->nouts, j->detail,
                                     &already, &err) != RDX_OK) {
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        return 0;
    }
    logf_(d, RDX_LOG_INFO, "case %s from %s processed: %s", c->case_id, c->sender, j->detail);
    rm_rf(j->work);
    return 1;
}

/* ---- the pool: several cases at once -------------------------------------- */

/*
 * Which shared store a case's engine writes: two cases that write the same
 * SQLite file are never run at once (each would wait on the other's lock and
 * might run into its busy timeout, costing an attempt). ECG detection shares
 * nothing.
 */
enum store { STORE_NONE, STORE_INDEX, STORE_LAB };

static enum store store_of(const char *kind)
{
    rdx_transport_kind k;
    if (rdx_transport_kind_parse(kind, strlen(kind), &k) != RDX_OK) {
        return STORE_NONE;
    }
    switch (k) {
    case RDX_KIND_DICOM:
    case RDX_KIND_OTHER: /* a pull reads the index */
        return STORE_INDEX;
    case RDX_KIND_LAB_ORDER:
    case RDX_KIND_LAB_RESULT:
        return STORE_LAB;
    case RDX_KIND_ECG:
    case RDX_KIND_REPORT:
    default:
        return STORE_NONE;
    }
}

/* One worker: the case in hand, run on its own thread. */
struct slot {
    struct rdx_hub_dispatcher *d;
    rdx_transport_inbox_case c;
    struct job *j;
    pthread_t th;
    int busy;            /* the coordinator's: a thread is running (or not yet joined) */
    int counted;         /* the worker's result: completed or parked */
    atomic_int finished; /* the worker's: set last, then the coordinator is woken */
};

struct pool {
    struct rdx_hub_dispatcher *d;
    struct slot *slots;
    size_t nslots, in_flight;
    rdx_transport_inbox_case *pending;
};

static void wake(struct rdx_hub_dispatcher *d)
{
    uint64_t one = 1;
    if (d->wake_fd >= 0) {
        ssize_t n = write(d->wake_fd, &one, sizeof one);
        (void)n; /* EAGAIN: the counter is already non-zero, the wake-up is pending */
    }
}

/* Process one case and record the outcome: completed, or failed (retried or parked). */
static void *slot_main(void *arg)
{
    struct slot *s = arg;
    struct rdx_hub_dispatcher *d = s->d;
    const rdx_transport_inbox_case *c = &s->c;
    s->counted = 0;
    if (process(d, c, s->j)) {
        s->counted = 1;
    } else {
        int parked = 0;
        rdx_error e2;
        rdx_error_clear(&e2);
        if (rdx_transport_inbox_fail(d->cfg, c->sender, c->case_id, s->j->why, (int)d->max_attempts,
                                     d->retry_ms, &parked, &e2) != RDX_OK) {
            logf_(d, RDX_LOG_ERROR, "case %s from %s: %s", c->case_id, c->sender, e2.msg);
        } else {
            logf_(d, parked ? RDX_LOG_ERROR : RDX_LOG_WARN, "case %s from %s %s: %s", c->case_id,
                  c->sender, parked ? "parked" : "failed, will retry", s->j->why);
            s->counted = parked;
        }
    }
    job_clear(s->j);
    atomic_store(&s->finished, 1);
    wake(d);
    return NULL;
}

static void pool_free(struct pool *p)
{
    if (p->slots != NULL) {
        for (size_t i = 0; i < p->nslots; i++) {
            free(p->slots[i].j);
        }
    }
    free(p->slots);
    free(p->pending);
}

static rdx_status pool_init(struct pool *p, struct rdx_hub_dispatcher *d, rdx_error *err)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->nslots = d->jobs;
    p->slots = rdx_callocarray(p->nslots, sizeof *p->slots);
    p->pending = rdx_mallocarray(PENDING_MAX, sizeof *p->pending);
    int ok = p->slots != NULL && p->pending != NULL;
    for (size_t i = 0; ok && i < p->nslots; i++) {
        p->slots[i].d = d;
        atomic_init(&p->slots[i].finished, 0);
        ok = (p->slots[i].j = calloc(1, sizeof *p->slots[i].j)) != NULL;
    }
    if (!ok) {
        pool_free(p);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    return RDX_OK;
}

/* Join the workers that are done; *done counts their completed or parked cases. */
static void pool_reap(struct pool *p, size_t *done)
{
    for (size_t i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (s->busy && atomic_load(&s->finished)) {
            pthread_join(s->th, NULL);
            s->busy = 0;
            p->in_flight--;
            *done += (size_t)s->counted;
        }
    }
}

/*
 * Whether c must wait for a case in hand: one from the same sender (its
 * cases are processed in the order they arrived, one at a time, and the same
 * case is never taken twice) or one that writes the same store.
 */
static int pool_conflicts(const struct pool *p, const rdx_transport_inbox_case *c)
{
    enum store st = store_of(c->kind);
    for (size_t i = 0; i < p->nslots; i++) {
        const struct slot *s = &p->slots[i];
        if (s->busy && (strcmp(s->c.sender, c->sender) == 0 ||
                        (st != STORE_NONE && store_of(s->c.kind) == st))) {
            return 1;
        }
    }
    return 0;
}

/* Start c on a free worker; 0 when none is free or no thread could be started. */
static int pool_start(struct pool *p, const rdx_transport_inbox_case *c)
{
    for (size_t i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (s->busy) {
            continue;
        }
        s->c = *c;
        atomic_store(&s->finished, 0);
        if (pthread_create(&s->th, NULL, slot_main, s) != 0) {
            logf_(p->d, RDX_LOG_WARN, "case %s from %s: cannot start a worker thread; later",
                  c->case_id, c->sender);
            return 0;
        }
        s->busy = 1;
        p->in_flight++;
        logf_(p->d, RDX_LOG_DEBUG, "case %s from %s (%s) started: %zu of %zu worker(s) busy",
              c->case_id, c->sender, c->kind, p->in_flight, p->nslots);
        if (p->in_flight > p->d->max_in_flight) {
            p->d->max_in_flight = p->in_flight;
            if (p->in_flight > 1) {
                logf_(p->d, RDX_LOG_INFO, "dispatcher: %zu case(s) in hand at once", p->in_flight);
            }
        }
        return 1;
    }
    return 0;
}

/*
 * Start as many of the cases listed (oldest first) as free workers and the
 * rules of pool_conflicts allow; skip[] (may be NULL) marks cases already
 * handled, and started ones are marked in it.
 */
static void pool_fill(struct pool *p, const rdx_transport_inbox_case *cases, size_t n,
                      unsigned char *skip)
{
    for (size_t i = 0; i < n && p->in_flight < p->nslots && !atomic_load(&p->d->stop); i++) {
        if ((skip != NULL && skip[i]) || pool_conflicts(p, &cases[i])) {
            continue;
        }
        if (!pool_start(p, &cases[i])) {
            break;
        }
        if (skip != NULL) {
            skip[i] = 1;
        }
    }
}

/* Drain the inotify queue; 1 when it told of a write to node.db or its WAL. */
static int notify_drain(struct rdx_hub_dispatcher *d)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int changed = 0;
    for (;;) {
        ssize_t n = read(d->notify_fd, buf, sizeof buf);
        if (n <= 0) {
            return changed;
        }
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)q;
            if (ev->len > 0 &&
                (strcmp(ev->name, "node.db") == 0 || strcmp(ev->name, "node.db-wal") == 0)) {
                changed = 1;
            }
            q += sizeof *ev + ev->len;
        }
    }
}

/*
 * Sleep until a worker finishes, stop is asked for, the node's store is
 * written (inotify), or timeout_ms passes. Other files' events (node.port,
 * the -shm index) are drained and slept through.
 */
static void pool_wait(struct rdx_hub_dispatcher *d, int timeout_ms)
{
    uint64_t deadline = rdx_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        struct pollfd fds[2];
        nfds_t nfds = 0;
        fds[nfds].fd = d->wake_fd;
        fds[nfds++].events = POLLIN;
        if (d->notify_fd >= 0) {
            fds[nfds].fd = d->notify_fd;
            fds[nfds++].events = POLLIN;
        }
        uint64_t now = rdx_clock_mono_ns();
        if (now >= deadline) {
            return;
        }
        int left = (int)((deadline - now + 999999u) / 1000000u);
        if (poll(fds, nfds, left) <= 0) {
            return; /* the time is up (or EINTR: look again anyway) */
        }
        if ((fds[0].revents & POLLIN) != 0) {
            uint64_t v;
            ssize_t n = read(d->wake_fd, &v, sizeof v);
            (void)n;
            return;
        }
        if (nfds > 1 && (fds[1].revents & POLLIN) != 0) {
            /* Let the rest of a commit (several writes) land, then look once for all of it. */
            const struct timespec settle = {0, NOTIFY_SETTLE_MS * 1000 * 1000};
            nanosleep(&settle, NULL);
            if (notify_drain(d)) {
                return;
            }
        }
    }
}

rdx_status rdx_hub_dispatcher_pass(rdx_hub_dispatcher *d, size_t *done, rdx_error *err)
{
    struct pool p;
    size_t n = 0;
    *done = 0;
    RDX_TRY(pool_init(&p, d, err));
    rdx_status st =
        rdx_transport_inbox_pending(d->cfg, rdx_clock_wall_ms(), p.pending, PENDING_MAX, &n, err);
    unsigned char *skip = st == RDX_OK && n > 0 ? calloc(n, 1) : NULL;
    if (st == RDX_OK && n > 0 && skip == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    if (st == RDX_OK && n > 0) {
        /* Each case listed once, as many at a time as the rules allow, until all are done. */
        for (;;) {
            pool_reap(&p, done);
            pool_fill(&p, p.pending, n, skip);
            if (p.in_flight == 0) {
                break; /* all done (or stop, or no thread could start: the next pass) */
            }
            pool_wait(d, POLL_MS);
        }
    }
    free(skip);
    pool_free(&p);
    return st;
}

void *rdx_hub_dispatcher_thread(void *arg)
{
    struct rdx_hub_dispatcher *d = arg;
    struct pool p;
    rdx_error err;
    rdx_error_clear(&err);
    if (pool_init(&p, d, &err) != RDX_OK) {
        logf_(d, RDX_LOG_ERROR, "dispatcher: %s", err.msg);
        return NULL;
    }
    /*
     * With inotify the store wakes the dispatcher when a case arrives; the
     * poll stays as the fallback, and for retries, which fall due with time.
     */
    int idle_ms = POLL_MS;
    if (d->notify_fd >= 0) {
        idle_ms = (int)(d->retry_ms / 2);
        idle_ms = idle_ms < POLL_MS ? POLL_MS : idle_ms > IDLE_MAX_MS ? IDLE_MAX_MS : idle_ms;
    }
    logf_(d, RDX_LOG_INFO, "dispatcher: %zu worker(s), woken by %s", p.nslots,
          d->notify_fd >= 0 ? "inotify on the node's store" : "a 100 ms poll");
    while (!atomic_load(&d->stop)) {
        size_t done = 0;
        pool_reap(&p, &done);
        if (p.in_flight < p.nslots) {
            size_t n = 0;
            rdx_error_clear(&err);
            if (rdx_transport_inbox_pending(d->cfg, rdx_clock_wall_ms(), p.pending, PENDING_MAX, &n,
                                            &err) != RDX_OK) {
                logf_(d, RDX_LOG_ERROR, "dispatcher: %s", err.msg);
            } else {
                pool_fill(&p, p.pending, n, NULL);
            }
        }
        /*
         * Look again at once after a worker finished (the cases it held back
         * may go now) or the store changed, else after the idle time.
         */
        pool_wait(d, idle_ms);
    }
    /* Stop after the cases in hand. */
    while (p.in_flight > 0) {
        size_t done = 0;
        pool_reap(&p, &done);
        if (p.in_flight > 0) {
            pool_wait(d, POLL_MS);
        }
    }
    pool_free(&p);
    return NULL;
}
