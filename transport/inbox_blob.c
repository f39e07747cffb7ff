/*
 * Small received items held in node.db (inbox_blobs) until their files are
 * written. A node commits a group of small cases with one WAL sync and
 * acknowledges them at once; the files follow from its spill thread, which
 * writes them, syncs the file system once for the batch, and only then
 * deletes the rows. While a row exists it is the item (the file may be
 * missing or not yet durable); once it is gone the file is.
 */
#define _GNU_SOURCE
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rdx_status rdx_tp_blob_get(sqlite3 *db, const char *sender, const char *case_id, size_t idx,
                           rdx_buf *out, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_ENOTFOUND;
    if (sqlite3_prepare_v2(db,
                           "SELECT data FROM inbox_blobs WHERE sender=? AND case_id=? AND idx=?",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s, 2, case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s, 3, (sqlite3_int64)idx) != SQLITE_OK) {
        st = rdx_error_set(err, RDX_EDB, "node.db: %s", sqlite3_errmsg(db));
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        rdx_buf_reset(out);
        st = n > 0 ? rdx_buf_append(out, p, n) : RDX_OK;
        if (st != RDX_OK) {
            st = rdx_error_set(err, st, "item %zu of case %s: %s", idx + 1, case_id,
                               rdx_strerror(st));
        }
    } else if (rc != SQLITE_DONE) {
        st = rdx_error_set(err, RDX_EDB, "node.db: %s", sqlite3_errmsg(db));
    }
out:
    sqlite3_finalize(s);
    return st;
}

static int mkdir_ok(const char *p)
{
    return mkdir(p, 0700) == 0 || errno == EEXIST;
}

int rdx_tp_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

rdx_status rdx_tp_blob_write_file(const char *data, const char *sender, const char *case_id,
                                  size_t idx, const uint8_t *p, size_t len, int sync,
                                  rdx_error *err)
{
    char a[4200], b[4300], c[4400], path[4500], tmp[4600];
    RDX_TRY(rdx_tp_path(a, sizeof a, err, "%s/inbox", data));
    RDX_TRY(rdx_tp_path(b, sizeof b, err, "%s/%s", a, sender));
    RDX_TRY(rdx_tp_path(c, sizeof c, err, "%s/%s", b, case_id));
    RDX_TRY(rdx_tp_path(path, sizeof path, err, "%s/%zu", c, idx));
    /* Unique per process: a node's spill and a reader may write the same item at once. */
    RDX_TRY(rdx_tp_path(tmp, sizeof tmp, err, "%s/.%zu.%ld.tmp", c, idx, (long)getpid()));
    if (!mkdir_ok(a) || !mkdir_ok(b) || !mkdir_ok(c)) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", c, strerror(errno));
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(errno));
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if ((sync && fdatasync(fd) != 0) || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rdx_error_set(err, RDX_EIO, "%s: %s", path, strerror(e));
    }
    if (sync &&
        (rdx_tp_fsync_dir(c) != 0 || rdx_tp_fsync_dir(b) != 0 || rdx_tp_fsync_dir(a) != 0)) {
        return rdx_error_set(err, RDX_EIO, "%s: cannot sync: %s", c, strerror(errno));
    }
    return RDX_OK;
}
