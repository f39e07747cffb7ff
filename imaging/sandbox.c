/*
 * sandbox.c - pixel decoders run in a short-lived child process.
 *
 * The decoders are third-party C++ fed hostile bytes: Debian builds GDCM
 * 3.0 with assert() live (its fragment reader and JPEG header parser abort
 * on bad input), and CharLS, OpenJPEG and libjpeg have had crashes and
 * endless loops on crafted streams. A C++ try/catch stops exceptions, not
 * aborts. So the decode of one frame runs in a fork()ed child: whatever the
 * codec does costs only the child, and the caller gets an error naming the
 * assertion or signal. The child sends its result through a pipe as a
 * fixed header and the frame's bytes; the parent reads both under caps and
 * checks the header against the bytes as it would any input. The child's
 * stderr is a second pipe whose text becomes part of the reason.
 *
 * The child leaves with _exit: no atexit handlers, no flush of the parent's
 * stdio buffers, and the decoders' own leaks end with it.
 */
#define _POSIX_C_SOURCE 200809L

#include "dicom.h"
#include "imaging_limits.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define RDX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define RDX_SANITIZED 1
#endif
#endif
#ifndef RDX_SANITIZED
#define RDX_SANITIZED 0
#endif

/* What the child writes first; then len bytes of pixels when status is RDX_OK. */
struct wire {
    int32_t status;
    uint32_t rows, columns, samples, frames, frame, bits_allocated, bits_stored;
    int32_t is_signed;
    char photometric[32];
    char msg[RDX_ERROR_MSG_MAX];
    uint64_t len;
};

/* Bytes of child stderr kept for the reason. */
#define STDERR_KEEP 8192

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Bound the child's address space to what it has plus what one decode may
 * need (the stream, a frame, the codec's copies), so that an allocation a
 * hostile length asks for fails inside the child (std::bad_alloc, caught)
 * instead of taking the machine's memory. Not under the sanitizers, which
 * reserve terabytes of shadow address space.
 */
static void limit_memory(size_t stream_bytes)
{
#if !RDX_SANITIZED
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f == NULL) {
        return;
    }
    char line[128];
    if (fgets(line, sizeof line, f) != NULL) {
        for (const char *c = line; *c >= '0' && *c <= '9'; c++) {
            pages = pages * 10 + (unsigned long)(*c - '0');
        }
    }
    fclose(f);
    long psz = sysconf(_SC_PAGESIZE);
    if (pages == 0 || psz <= 0) {
        return;
    }
    rlim_t have = (rlim_t)pages * (rlim_t)psz;
    rlim_t budget = (rlim_t)4 * stream_bytes + (rlim_t)3 * RDX_IMG_MAX_PIXEL_BYTES;
    struct rlimit rl = {.rlim_cur = have + budget, .rlim_max = have + budget};
    (void)setrlimit(RLIMIT_AS, &rl);
#else
    (void)stream_bytes;
#endif
}

static void child(enum img_decoder which, const uint8_t *p, size_t n, uint32_t frame,
                  const uint8_t *cs, size_t cs_len, int out_fd, int err_fd)
{
    /* Default dispositions: a crash must end the child, not run the parent's handlers. */
    static const int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        signal(sigs[i], SIG_DFL);
    }
    if (dup2(err_fd, STDERR_FILENO) < 0) {
        _exit(3);
    }
    limit_memory(n + cs_len);
    struct img_pixels px;
    rdx_error err;
    rdx_error_clear(&err);
    rdx_status st = which == IMG_DEC_GDCM ? img_gdcm_decode(p, n, frame, cs, cs_len, &px, &err)
                                          : img_dcmtk_decode(p, n, frame, &px, &err);
    struct wire w;
    memset(&w, 0, sizeof w);
    w.status = st;
    memcpy(w.msg, err.msg, sizeof w.msg);
    if (st == RDX_OK) {
        w.rows = px.rows;
        w.columns = px.columns;
        w.samples = px.samples;
        w.frames = px.frames;
        w.frame = px.frame;
        w.bits_allocated = px.bits_allocated;
        w.bits_stored = px.bits_stored;
        w.is_signed = px.is_signed;
        memcpy(w.photometric, px.photometric, sizeof w.photometric);
        w.len = px.len;
    }
    int bad = write_all(out_fd, &w, sizeof w) != 0 ||
              (st == RDX_OK && write_all(out_fd, px.data, px.len) != 0);
    _exit(bad ? 4 : 0);
}

/* The line of a report that says most: an assertion, a sanitizer's report, else the first non-empty
 * line. */
static void summarize(const char *text, char *out, size_t outsz)
{
    const char *line = strstr(text, "Assertion");
    const char *asan = strstr(text, "ERROR: AddressSanitizer: ");
    if (line == NULL && asan != NULL) {
        line = asan + strlen("ERROR: "); /* "AddressSanitizer: attempting free on ..." */
    } else if (line != NULL) {
        while (line > text && line[-1] != '\n') {
            line--;
        }
    } else {
        line = text;
        while (*line == '\n') {
            line++;
        }
    }
    size_t k = 0;
    while (line[k] != '\0' && line[k] != '\n' && k + 1 < outsz) {
        out[k] = line[k];
        k++;
    }
    out[k] = '\0';
}

/*
 * True when the child's stderr holds a sanitizer's or libFuzzer's report:
 * "==PID==ERROR: AddressSanitizer: ..." and the like, or UBSan's
 * "file:line:col: runtime error: ...".
 */
static int sanitizer_report(const char *text)
{
    static const char *const marks[] = {"==ERROR: AddressSanitizer", "==ERROR: LeakSanitizer",
                                        "==ERROR: libFuzzer: out-of-memory"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *m = strstr(text, marks[i]);
        if (m != NULL && m > text && m[-1] >= '0' && m[-1] <= '9') {
            return 1;
        }
    }
    const char *u = strstr(text, ": runtime error: ");
    return u != NULL && u > text && u[-1] >= '0' && u[-1] <= '9';
}

/*
 * True when a sanitizer report's fault lies in a system library rather than
 * in instrumented code: its first stack frame that is not the sanitizer's
 * own interceptor (malloc, free, memcpy and the like, printed without a
 * source line) is in an object under /lib/ or /usr/lib/. Debian's decoders
 * (GDCM's JPEG 2000 codec calling libopenjp2, say) are not instrumented, so
 * ASan sees only the memory calls they make; such a fault is the decoder's,
 * contained by this child like any other crash of it, and not a defect of
 * rdx's to stop the tests on.
 */
static int fault_in_system_library(const char *text)
{
    const char *rep = strstr(text, "==ERROR: AddressSanitizer");
    if (rep == NULL) {
        return 0;
    }
    for (const char *l = strstr(rep, "\n    #"); l != NULL; l = strstr(l + 1, "\n    #")) {
        const char *end = strchr(l + 1, '\n');
        size_t len = end != NULL ? (size_t)(end - l) : strlen(l);
        char frame[600];
        snprintf(frame, sizeof frame, "%.*s", (int)(len < sizeof frame ? len : sizeof frame - 1),
                 l + 1);
        if (strstr(frame, " in __interceptor_") != NULL || strstr(frame, " in __asan_") != NULL ||
            strstr(frame, "libsanitizer/") != NULL || strstr(frame, "libasan.so") != NULL) {
            continue; /* the sanitizer's own runtime (GCC's libasan) */
        }
        const char *obj = strstr(frame, " (/");
        if (obj == NULL) {
            return 0; /* a frame with a source line: instrumented code, rdx's or the shim's */
        }
        if (strncmp(obj + 2, "/lib/", 5) == 0 || strncmp(obj + 2, "/usr/lib/", 9) == 0) {
            return 1;
        }
        /* In the executable without a source line: clang's built-in interceptor; look further. */
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Expected bytes of one frame as the child describes it; 0 when the description is impossible. */
static uint64_t frame_bytes(const struct wire *w)
{
    if (w->rows == 0 || w->columns == 0 || (w->samples != 1 && w->samples != 3)) {
        return 0;
    }
    uint64_t v = (uint64_t)w->rows * w->columns * w->samples;
    switch (w->bits_allocated) {
    case 1:
        return (v + 7) / 8;
    case 8:
    case 16:
    case 32:
        return v * (w->bits_allocated / 8);
    default:
        return 0;
    }
}

rdx_status img_decode_isolated(enum img_decoder which, const uint8_t *p, size_t n, uint32_t frame,
                               const uint8_t *cs, size_t cs_len, struct img_pixels *out,
                               rdx_error *err)
{
    const char *who = which == IMG_DEC_GDCM ? "GDCM" : "DCMTK";
    memset(out, 0, sizeof *out);
    if (which == IMG_DEC_GDCM) {
        img_gdcm_init();
    } else {
        img_dcmtk_init();
    }
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe(po) != 0 || pipe(pe) != 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0) {
                close(po[i]);
            }
        }
        return rdx_error_set(err, RDX_EIO, "%s: cannot make a pipe: %s", who, strerror(e));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        return rdx_error_set(err, e == ENOMEM || e == EAGAIN ? RDX_ENOMEM : RDX_EIO,
                             "%s: cannot start the decoder process: %s", who, strerror(e));
    }
    if (pid == 0) {
        close(po[0]);
        close(pe[0]);
        child(which, p, n, frame, cs, cs_len, po[1], pe[1]);
    }
    close(po[1]);
    close(pe[1]);

    struct wire w;
    size_t got_w = 0;
    uint8_t *data = NULL;
    uint64_t got_d = 0, want_d = 0;
    char errtext[STDERR_KEEP + 1];
    size_t errlen = 0;
    int out_open = 1, err_open = 1, timed_out = 0, bad_reply = 0;
    double deadline = now_s() + RDX_IMG_DECODE_SECONDS;
    rdx_status st = RDX_OK;
    while (out_open || err_open) {
        double left = deadline - now_s();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd fds[2] = {{.fd = out_open ? po[0] : -1, .events = POLLIN},
                                {.fd = err_open ? pe[0] : -1, .events = POLLIN}};
        int r = poll(fds, 2, left > 1.0 ? 1000 : (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            break;
        }
        if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            char tmp[4096];
            ssize_t k = read(pe[0], tmp, sizeof tmp);
            if (k <= 0) {
                err_open = 0;
            } else {
                size_t keep = (size_t)k < STDERR_KEEP - errlen ? (size_t)k : STDERR_KEEP - errlen;
                memcpy(errtext + errlen, tmp, keep);
                errlen += keep;
            }
        }
        if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k;
            if (got_w < sizeof w) {
                k = read(po[0], (uint8_t *)&w + got_w, sizeof w - got_w);
                if (k > 0) {
                    got_w += (size_t)k;
                    if (got_w == sizeof w && w.status == RDX_OK) {
                        want_d = frame_bytes(&w);
                        if (want_d == 0 || want_d != w.len || want_d > RDX_IMG_MAX_PIXEL_BYTES) {
                            bad_reply = 1;
                            out_open = 0;
                        } else if ((data = malloc((size_t)want_d)) == NULL) {
                            st = RDX_ENOMEM;
                            out_open = 0;
                        }
                    }
                }
            } else if (got_d < want_d) {
                size_t chunk = want_d - got_d > (1u << 20) ? (1u << 20) : (size_t)(want_d - got_d);
                k = read(po[0], data + got_d, chunk);
                if (k > 0) {
                    got_d += (size_t)k;
                }
            } else {
                uint8_t extra;
                k = read(po[0], &extra, 1);
                if (k > 0) {
                    bad_reply = 1; /* more than announced */
                    out_open = 0;
                }
            }
            if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) {
                out_open = 0;
            }
        }
    }
    close(po[0]);
    close(pe[0]);
    if (timed_out || bad_reply || st != RDX_OK) {
        kill(pid, SIGKILL);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    errtext[errlen] = '\0';
    if (RDX_SANITIZED && sanitizer_report(errtext) && !fault_in_system_library(errtext)) {
        /* A memory error in instrumented code (rdx's or the shim's): never hide it in tests. */
        fprintf(stderr, "%s decoder child reported:\n%s\n", who, errtext);
        abort();
    }
    if (st == RDX_ENOMEM) {
        free(data);
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory for %llu bytes of pixels", who,
                             (unsigned long long)want_d);
    }
    char why[300];
    summarize(errtext, why, sizeof why);
    if (timed_out) {
        free(data);
        return rdx_error_set(err, RDX_ETIMEOUT, "%s: no answer after %d s, decoder stopped", who,
                             RDX_IMG_DECODE_SECONDS);
    }
    if (WIFSIGNALED(ws) && !bad_reply) {
        free(data);
        int sig = WTERMSIG(ws);
        return rdx_error_set(err, RDX_EPARSE,
                             "%s: the decoder died on this data (signal %d, %s)%s%s", who, sig,
                             sig == SIGABRT   ? "abort"
                             : sig == SIGSEGV ? "segmentation fault"
                             : sig == SIGKILL ? "killed"
                                              : "crash",
                             why[0] != '\0' ? ": " : "", why);
    }
    if (bad_reply || got_w != sizeof w || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0 ||
        (w.status == RDX_OK && got_d != want_d)) {
        free(data);
        return rdx_error_set(err, RDX_EPARSE, "%s: the decoder process gave no usable answer%s%s",
                             who, why[0] != '\0' ? ": " : "", why);
    }
    if (w.status != RDX_OK) {
        free(data);
        w.msg[sizeof w.msg - 1] = '\0';
        /* Only statuses a decoder returns; anything else is a broken answer. */
        rdx_status cst = (rdx_status)w.status;
        if (cst != RDX_EPARSE && cst != RDX_EFORMAT && cst != RDX_ESHORT && cst != RDX_ERANGE &&
            cst != RDX_ELIMIT && cst != RDX_ENOMEM && cst != RDX_ENOTFOUND && cst != RDX_EINVAL) {
            cst = RDX_EPARSE;
        }
        return rdx_error_set(err, cst, "%s", w.msg);
    }
    out->data = data;
    out->len = (size_t)want_d;
    out->rows = w.rows;
    out->columns = w.columns;
    out->samples = w.samples;
    out->frames = w.frames;
    out->frame = w.frame;
    out->bits_allocated = w.bits_allocated;
    out->bits_stored =
        w.bits_stored >= 1 && w.bits_stored <= w.bits_allocated ? w.bits_stored : w.bits_allocated;
    out->is_signed = w.is_signed != 0;
    memcpy(out->photometric, w.photometric, sizeof out->photometric);
    out->photometric[sizeof out->photometric - 1] = '\0';
    return RDX_OK;
}
