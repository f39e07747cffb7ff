/* Private helpers of the transport: atomic writes, OpenSSL errors, paths, kept chunk buffers. */
#define _POSIX_C_SOURCE 200809L
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

static rdx_status write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return RDX_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return RDX_OK;
}

static void sync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

rdx_status rdx_tp_write_file(const char *path, const void *data, size_t len, mode_t mode,
                             int replace, rdx_error *err)
{
    char tmp[4200];
    struct stat sb;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return rdx_error_set(err, RDX_EINVAL, "%s: path too long", path);
    }
    if (!replace && lstat(path, &sb) == 0) {
        return rdx_error_set(err, RDX_EEXIST, "%s: already exists", path);
    }
    (void)unlink(tmp); /* a leftover of a crashed run with the same pid */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(errno));
    }
    /* open() honours the umask; the mode asked for is the mode we want, exactly. */
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != RDX_OK || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(e));
    }
    if (!replace) {
        /* link() fails if path appeared meanwhile, where rename() would clobber it. */
        if (link(tmp, path) != 0) {
            int e = errno;
            unlink(tmp);
            return rdx_error_set(err, e == EEXIST ? RDX_EEXIST : RDX_EIO, "%s: %s", path,
                                 e == EEXIST ? "already exists" : strerror(e));
        }
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(e));
    }
    sync_parent(path);
    return RDX_OK;
}

rdx_status rdx_tp_ossl_error(rdx_error *err, rdx_status code, const char *what)
{
    char reason[256] = "unknown OpenSSL error";
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        ERR_error_string_n(e, reason, sizeof reason);
    }
    ERR_clear_error();
    return rdx_error_set(err, code, "%s: %s", what, reason);
}

rdx_status rdx_tp_path(char *out, size_t outsz, rdx_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outsz) {
        return rdx_error_set(err, RDX_EINVAL, "%.200s...: path too long", out);
    }
    return RDX_OK;
}

int rdx_tp_file_id_get(const char *path, struct rdx_tp_file_id *id)
{
    struct stat sb;
    memset(id, 0, sizeof *id);
    if (stat(path, &sb) != 0) {
        return -1;
    }
    id->dev = sb.st_dev;
    id->ino = sb.st_ino;
    id->size = sb.st_size;
    id->mtime = sb.st_mtim;
    return 0;
}

void rdx_tp_time_text(int64_t unix_s, char *out, size_t outsz)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    snprintf(out, outsz, "?");
    if (unix_s != 0 && gmtime_r(&t, &tm) != NULL) {
        strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
}

int rdx_tp_file_id_same(const struct rdx_tp_file_id *a, const struct rdx_tp_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

void rdx_tp_spare_put(struct rdx_tp_spares *sp, rdx_buf *b)
{
    int slot = -1;
    if (b->cap >= RDX_TRANSPORT_ALIGN_MIN && ((uintptr_t)b->data % RDX_TRANSPORT_DATA_ALIGN) == 0) {
        if (sp->n < RDX_TP_SPARES_MAX) {
            slot = sp->n++;
        } else {
            /* Full: a larger buffer replaces the smallest kept (after small chunks, larger ones).
             */
            int s = 0;
            for (int i = 1; i < sp->n; i++) {
                s = sp->b[i].cap < sp->b[s].cap ? i : s;
            }
            if (sp->b[s].cap < b->cap) {
                rdx_buf_free(&sp->b[s]);
                slot = s;
            }
        }
    }
    sp->touched = 1;
    if (slot >= 0) {
        sp->b[slot] = *b;
        sp->b[slot].len = 0;
    } else {
        rdx_buf_free(b);
    }
    rdx_buf_init(b, RDX_TRANSPORT_FRAME_MAX);
}

void rdx_tp_spare_get(struct rdx_tp_spares *sp, rdx_buf *b)
{
    if (b->cap == 0 && sp->n > 0) {
        /*
         * The largest, the latest put of those (still in the cache): a smaller
         * one than the chunk would be freed and replaced by the decoder.
         */
        int k = sp->n - 1;
        for (int i = sp->n - 2; i >= 0; i--) {
            k = sp->b[i].cap > sp->b[k].cap ? i : k;
        }
        *b = sp->b[k];
        for (int i = k + 1; i < sp->n; i++) {
            sp->b[i - 1] = sp->b[i]; /* in the order they were put */
        }
        sp->n--;
        b->len = 0;
        b->data[0] = 0; /* rdx_buf's trailing NUL */
        b->max = RDX_TRANSPORT_FRAME_MAX;
        sp->reused++;
        sp->touched = 1;
    }
}

void rdx_tp_spares_free(struct rdx_tp_spares *sp)
{
    while (sp->n > 0) {
        rdx_buf_free(&sp->b[--sp->n]);
    }
}

int rdx_tp_spares_tick(struct rdx_tp_spares *sp)
{
    int freed = 0;
    if (!sp->touched) {
        freed = sp->n;
        rdx_tp_spares_free(sp);
    }
    sp->touched = 0;
    return freed;
}
