/* Whole-file reads with a cap, and atomic (crash-safe) whole-file writes. */
#define _POSIX_C_SOURCE 200809L
#include "rdx/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rdx_status rdx_file_read(const char *path, rdx_buf *out, rdx_error *err)
{
    rdx_status st = RDX_OK;
    const size_t len0 = out->len;
    const int had_storage = out->data != NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return rdx_error_set(err, errno == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", path,
                             strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = rdx_error_set(err, RDX_EINVAL, "%s: is a directory", path);
        goto out;
    }
    if (sb.st_size > 0 && (uint64_t)sb.st_size > out->max - out->len) {
        st = rdx_error_set(err, RDX_ELIMIT, "%s: file is %lld bytes, more than the %zu allowed",
                           path, (long long)sb.st_size, out->max - out->len);
        goto out;
    }
    /* Read straight into the caller's buffer: no copy on the stack is left
     * behind (the file may hold key material). Room for the whole file plus
     * one byte is reserved up front, so a file that does not change while it
     * is read takes one allocation and the extra byte detects growth. */
    size_t first = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096;
    if (first > out->max - out->len) {
        first = out->max - out->len;
    }
    if (first > 0) {
        st = rdx_buf_reserve(out, first);
        if (st != RDX_OK) {
            rdx_error_set(err, st, "%s: %s", path, rdx_strerror(st));
            goto out;
        }
    }
    for (;;) {
        if (out->len == out->cap || out->data == NULL) {
            if (out->len >= out->max) {
                /* At the cap: one more byte would mean the file is too big. */
                uint8_t probe;
                ssize_t n = read(fd, &probe, 1);
                rdx_secure_zero(&probe, sizeof probe);
                if (n > 0) {
                    st = rdx_error_set(err, RDX_ELIMIT, "%s: file larger than allowed", path);
                } else if (n < 0) {
                    st = rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(errno));
                }
                goto out;
            }
            size_t more = out->max - out->len < 65536 ? out->max - out->len : 65536;
            st = rdx_buf_reserve(out, more);
            if (st != RDX_OK) {
                rdx_error_set(err, st, "%s: %s", path, rdx_strerror(st));
                goto out;
            }
        }
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            st = rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        out->len += (size_t)n;
        out->data[out->len] = '\0';
    }
out:
    close(fd);
    if (st != RDX_OK) {
        /* Leave the buffer as the caller gave it: a caller that owned no
         * storage before owns none after a failure. */
        if (out->data != NULL) {
            rdx_secure_zero(out->data + len0, out->len - len0);
        }
        out->len = len0;
        if (!had_storage) {
            rdx_buf_free(out);
        } else if (out->data != NULL) {
            out->data[len0] = '\0';
        }
    }
    return st;
}

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

rdx_status rdx_file_write_atomic(const char *path, const void *data, size_t len, rdx_error *err)
{
    return rdx_file_write_atomic_mode(path, data, len, 0644, err);
}

rdx_status rdx_file_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode,
                                      rdx_error *err)
{
    char tmp[4096];
    char dir[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return rdx_error_set(err, RDX_EINVAL, "%s: path too long", path);
    }
    /* O_EXCL: never write through a file (or link) someone left at tmp.
     * fchmod: the mode is exact, whatever the umask, before any byte lands. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)(mode & 0777));
    if (fd >= 0 && fchmod(fd, (mode_t)(mode & 0777)) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(e));
    }
    if (fd < 0) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(errno));
    }
    if (write_all(fd, data, len) != RDX_OK || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(e));
    }
    /* The rename is durable only once the directory entry is on disk. */
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
        fsync(dfd);
        close(dfd);
    }
    return RDX_OK;
}
