/*
 * Cases on the local node: queueing one for delivery (its files copied into
 * the outbox spool and hashed, the manifest recorded), listing the outbox and
 * inbox, and fetching a received case's items out of the inbox. These run in
 * the `rdx case` processes beside a running node; SQLite's WAL lets both use
 * node.db at once.
 */
#define _GNU_SOURCE
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define COPY_BUF (1u << 20)

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/*
 * The item's SHA-256 and its link values (the chaining value at every link
 * stride, see rdx_tp_sha_links; chunk boundaries are among them) in one pass,
 * as the bytes go by in pieces of any size: the sender then never hashes
 * while it sends. chunk is the stride here.
 */
struct acc {
    struct rdx_tp_sha h;
    uint32_t chunk;
    uint8_t *v; /* 32 bytes per stride boundary passed */
    size_t n, cap;
    int oom;
};

static void acc_init(struct acc *a, uint32_t chunk)
{
    memset(a, 0, sizeof *a);
    rdx_tp_sha_init(&a->h);
    a->chunk = chunk;
}

static void acc_mark(struct acc *a)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        uint8_t *q = rdx_reallocarray(a->v, nc, 32);
        if (q == NULL) {
            a->oom = 1;
            return;
        }
        a->v = q;
        a->cap = nc;
    }
    (void)rdx_tp_sha_chain(&a->h, a->v + 32 * a->n++);
}

static void acc_update(struct acc *a, const uint8_t *p, size_t len)
{
    while (len > 0 && !a->oom) {
        size_t room = a->chunk - (size_t)(a->h.bytes % a->chunk);
        size_t take = len < room ? len : room;
        rdx_tp_sha_update(&a->h, p, take);
        p += take;
        len -= take;
        if (a->h.bytes % a->chunk == 0) {
            acc_mark(a);
        }
    }
}

/*
 * The item ends: md gets its SHA-256, and the last chunk's check value is
 * that digest. 0 on success; the check values then move to *checks.
 */
static int acc_final(struct acc *a, uint8_t md[32], uint8_t **checks)
{
    rdx_tp_sha_final(&a->h, md);
    if (a->h.bytes > 0 && a->h.bytes % a->chunk != 0) {
        acc_mark(a);
    }
    if (a->oom || a->n != rdx_tp_chunk_count(a->h.bytes, a->chunk)) {
        free(a->v);
        a->v = NULL;
        return -1;
    }
    if (a->n > 0) {
        memcpy(a->v + 32 * (a->n - 1), md, 32);
    }
    *checks = a->v;
    a->v = NULL;
    return 0;
}

/*
 * Copy src to dst (created exclusively, mode 0600), hashing what is copied;
 * when want is not NULL the copy must hash to it. fsyncs dst. On failure dst
 * is removed.
 */
static rdx_status copy_hash(const char *src, const char *dst, const uint8_t *want, uint64_t *size,
                            uint8_t md[32], uint32_t chunk, uint8_t **checks, rdx_error *err)
{
    rdx_status st = RDX_OK;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    uint8_t *buf = NULL;
    struct acc h;
    uint64_t total = 0;
    acc_init(&h, chunk);
    struct stat sb;
    if (in < 0) {
        return rdx_error_set(err, errno == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", src,
                             strerror(errno));
    }
    if (fstat(in, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(in);
        return rdx_error_set(err, RDX_EINVAL, "%s: not a regular file", src);
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        st = rdx_error_set(err, errno == EEXIST ? RDX_EEXIST : RDX_EIO, "%s: %s", dst,
                           errno == EEXIST ? "already exists; not replaced" : strerror(errno));
        close(in);
        return st;
    }
    buf = malloc(COPY_BUF);
    if (buf == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", src);
        goto out;
    }
    for (;;) {
        ssize_t r = read(in, buf, COPY_BUF);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            st = rdx_error_set(err, RDX_EIO, "%s: %s", src, strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        acc_update(&h, buf, (size_t)r);
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0) {
                st = rdx_error_set(err, RDX_EIO, "%s: %s", dst, strerror(errno));
                goto out;
            }
            off += w;
        }
        total += (uint64_t)r;
        if (total > RDX_TRANSPORT_ITEM_SIZE_MAX) {
            st = rdx_error_set(err, RDX_ELIMIT, "%s: larger than 1 TiB", src);
            goto out;
        }
    }
    if (acc_final(&h, md, checks) != 0) {
        st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", src);
        goto out;
    }
    if (want != NULL && memcmp(md, want, 32) != 0) {
        st = rdx_error_set(err, RDX_ECHECKSUM, "%s: SHA-256 does not match the manifest", src);
        goto out;
    }
    if (fsync(out) != 0) {
        st = rdx_error_set(err, RDX_EIO, "%s: %s", dst, strerror(errno));
        goto out;
    }
    *size = total;
out:
    free(buf);
    free(h.v);
    if (st != RDX_OK) {
        free(*checks);
        *checks = NULL;
    }
    close(in);
    if (close(out) != 0 && st == RDX_OK) {
        st = rdx_error_set(err, RDX_EIO, "%s: %s", dst, strerror(errno));
    }
    if (st != RDX_OK) {
        unlink(dst);
    }
    return st;
}

/*
 * Write len bytes from memory to dst (created exclusively, mode 0600) after
 * checking that they hash to want; fsyncs dst. On failure dst is removed.
 */
static rdx_status write_hash_mem(const uint8_t *p, size_t len, const char *dst, const uint8_t *want,
                                 rdx_error *err)
{
    uint8_t md[32];
    if (EVP_Digest(len > 0 ? (const void *)p : "", len, md, NULL, EVP_sha256(), NULL) != 1) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: hashing failed", dst);
    }
    if (memcmp(md, want, 32) != 0) {
        return rdx_error_set(err, RDX_ECHECKSUM, "%s: SHA-256 does not match the manifest", dst);
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        return rdx_error_set(err, errno == EEXIST ? RDX_EEXIST : RDX_EIO, "%s: %s", dst,
                             errno == EEXIST ? "already exists; not replaced" : strerror(errno));
    }
    size_t off = 0;
    int ok = 1;
    while (ok && off < len) {
        ssize_t w = write(out, p + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    ok = ok && fsync(out) == 0;
    int e = errno;
    if (close(out) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(dst);
        return rdx_error_set(err, RDX_EIO, "%s: %s", dst, strerror(e));
    }
    return RDX_OK;
}

/*
 * Hard-link src as dst and hash it, for a node's own files (the hub's study
 * archive, an engine's output) that are never rewritten in place, only
 * removed: the spool then costs no second copy of a big study. 1 when linked
 * and hashed; 0 when a link is not possible here (another filesystem, no
 * permission, not a regular file), so the caller copies instead.
 */
static int link_hash(const char *src, const char *dst, uint64_t *size, uint8_t md[32],
                     uint32_t chunk, uint8_t **checks)
{
    struct stat sb;
    if (lstat(src, &sb) != 0 || !S_ISREG(sb.st_mode) || link(src, dst) != 0) {
        return 0;
    }
    int fd = open(dst, O_RDONLY | O_CLOEXEC);
    uint8_t *buf = malloc(COPY_BUF);
    struct acc h;
    uint64_t total = 0;
    int ok = fd >= 0 && buf != NULL;
    acc_init(&h, chunk);
    while (ok) {
        ssize_t r = read(fd, buf, COPY_BUF);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            ok = r == 0;
            break;
        }
        acc_update(&h, buf, (size_t)r);
        total += (uint64_t)r;
        ok = total <= RDX_TRANSPORT_ITEM_SIZE_MAX;
    }
    ok = ok && acc_final(&h, md, checks) == 0;
    free(buf);
    free(h.v);
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        (void)unlink(dst);
        return 0;
    }
    *size = total;
    return 1;
}

static void remove_dir_files(const char *dir, size_t n)
{
    char p[4300];
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%zu", dir, i);
        (void)unlink(p);
    }
    (void)rmdir(dir);
}

static rdx_status stage(const rdx_transport_config *cfg, const char *to, rdx_transport_kind kind,
                        const char *const *files, size_t nfiles, const char *case_id,
                        struct rdx_tp_manifest *m, rdx_buf *blob, int may_link, rdx_error *err)
{
    unsigned char rnd[16];
    char dir[4200], p[4300];
    rdx_status st;
    size_t copied = 0;
    int made_dir = 0;
    memset(m, 0, sizeof *m);
    if (cfg == NULL || to == NULL || files == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration, recipient or files");
    }
    RDX_TRY(rdx_transport_inst_id_check(to, "--to", err));
    if (rdx_tp_config_peer(cfg, to) == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "%s: no [peers] entry for '%s'", cfg->path, to);
    }
    if (rdx_transport_kind_name(kind) == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "unknown case kind");
    }
    if (nfiles == 0 || nfiles > RDX_TRANSPORT_ITEMS_MAX) {
        return rdx_error_set(err, RDX_EINVAL, "a case has 1 to %d files", RDX_TRANSPORT_ITEMS_MAX);
    }
    if (case_id != NULL) {
        RDX_TRY(rdx_tp_case_id_check(case_id, strlen(case_id), err));
    }
    m->items = rdx_callocarray(nfiles, sizeof *m->items);
    if (m->items == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    m->nitems = nfiles;
    for (size_t i = 0; i < nfiles; i++) {
        const char *base = strrchr(files[i], '/');
        base = base != NULL ? base + 1 : files[i];
        if ((st = rdx_tp_item_name_check(base, strlen(base), err)) != RDX_OK) {
            rdx_error_prefix(err, "%s: ", files[i]);
            err->code = st = RDX_EINVAL;
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->items[j].name, base) == 0) {
                st = rdx_error_set(err, RDX_EINVAL, "%s: a second file named '%s' in one case",
                                   files[i], base);
                goto out;
            }
        }
        snprintf(m->items[i].name, sizeof m->items[i].name, "%s", base);
    }
    if (case_id != NULL) {
        snprintf(m->case_id, sizeof m->case_id, "%s", case_id);
    } else {
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            st = rdx_error_set(err, RDX_EINTERNAL, "no randomness for a case ID");
            goto out;
        }
        for (size_t i = 0; i < sizeof rnd; i++) {
            snprintf(m->case_id + 2 * i, 3, "%02x", rnd[i]);
        }
    }
    m->kind = kind;
    snprintf(m->sender, sizeof m->sender, "%s", cfg->id);
    snprintf(m->recipient, sizeof m->recipient, "%s", to);
    m->created_ms = rdx_clock_wall_ms();
    m->chunk_size = cfg->chunk_size;

    if ((st = rdx_tp_path(dir, sizeof dir, err, "%s/outbox", cfg->data)) != RDX_OK) {
        goto out;
    }
    if (mkdir(cfg->data, 0700) != 0 && errno != EEXIST) {
        st = rdx_error_set(err, RDX_EIO, "%s: %s", cfg->data, strerror(errno));
        goto out;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        st = rdx_error_set(err, RDX_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if ((st = rdx_tp_path(dir, sizeof dir, err, "%s/outbox/%s", cfg->data, m->case_id)) != RDX_OK) {
        goto out;
    }
    if (mkdir(dir, 0700) != 0) {
        st = rdx_error_set(err, RDX_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    made_dir = 1;
    /* The outbox keeps its own copy: the case sent is the case hashed, whatever the originals do.
     */
    for (size_t i = 0; i < nfiles; i++) {
        snprintf(p, sizeof p, "%s/%zu", dir, i);
        struct rdx_tp_item *it = &m->items[i];
        /* Values at every link stride: each chunk's links and check value (rdx_tp_sha_links). */
        uint32_t stride = rdx_tp_link_stride(m->chunk_size);
        if (may_link && link_hash(files[i], p, &it->size, it->sha256, stride, &it->checks)) {
            copied = i + 1;
            continue;
        }
        if ((st = copy_hash(files[i], p, NULL, &it->size, it->sha256, stride, &it->checks, err)) !=
            RDX_OK) {
            goto out;
        }
        copied = i + 1;
    }
    fsync_path(dir);
    snprintf(p, sizeof p, "%s/outbox", cfg->data);
    fsync_path(p);
    st = rdx_tp_manifest_encode(m, blob, err);
out:
    if (st != RDX_OK) {
        if (made_dir) {
            remove_dir_files(dir, copied);
        }
        rdx_tp_manifest_clear(m);
    }
    return st;
}

rdx_status rdx_tp_case_stage(const rdx_transport_config *cfg, const char *to,
                             rdx_transport_kind kind, const char *const *files, size_t nfiles,
                             const char *case_id, struct rdx_tp_manifest *m, rdx_buf *blob,
                             rdx_error *err)
{
    return stage(cfg, to, kind, files, nfiles, case_id, m, blob, 0, err);
}

rdx_status rdx_tp_case_stage_linked(const rdx_transport_config *cfg, const char *to,
                                    rdx_transport_kind kind, const char *const *files,
                                    size_t nfiles, const char *case_id, struct rdx_tp_manifest *m,
                                    rdx_buf *blob, rdx_error *err)
{
    return stage(cfg, to, kind, files, nfiles, case_id, m, blob, 1, err);
}

void rdx_tp_case_unstage(const rdx_transport_config *cfg, const char *case_id, size_t nitems)
{
    char dir[4200];
    if (snprintf(dir, sizeof dir, "%s/outbox/%s", cfg->data, case_id) < (int)sizeof dir) {
        remove_dir_files(dir, nitems);
    }
}

int rdx_tp_case_insert(sqlite3 *db, const rdx_transport_config *cfg,
                       const struct rdx_tp_manifest *m, const rdx_buf *blob, rdx_error *err)
{
    sqlite3_stmt *s = NULL;
    char detail[200];
    uint64_t total = 0;
    for (size_t i = 0; i < m->nitems; i++) {
        total += m->items[i].size;
    }
    snprintf(detail, sizeof detail, "%s case queued for %s: %zu items, %llu bytes",
             rdx_transport_kind_name(m->kind), m->recipient, m->nitems, (unsigned long long)total);
    int ok =
        sqlite3_prepare_v2(db,
                           "INSERT INTO outbox(case_id, recipient, kind, created_ms, "
                           "manifest, state) VALUES (?,?,?,?,?,'queued')",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_bind_text(s, 1, m->case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(s, 2, m->recipient, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(s, 3, rdx_transport_kind_name(m->kind), -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int64(s, 4, m->created_ms) == SQLITE_OK &&
        sqlite3_bind_blob(s, 5, blob->data, (int)blob->len, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    s = NULL;
    /* The link values of items of more than one link stride: the sender reads them back. */
    ok = ok && sqlite3_prepare_v2(db,
                                  "INSERT OR REPLACE INTO outbox_checks(case_id, idx, checks) "
                                  "VALUES (?,?,?)",
                                  -1, &s, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < m->nitems; i++) {
        size_t k = rdx_tp_chunk_count(m->items[i].size, rdx_tp_link_stride(m->chunk_size));
        if (k < 2 || m->items[i].checks == NULL) {
            continue;
        }
        sqlite3_reset(s);
        ok = sqlite3_bind_text(s, 1, m->case_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(s, 2, (sqlite3_int64)i) == SQLITE_OK &&
             sqlite3_bind_blob64(s, 3, m->items[i].checks, (sqlite3_uint64)k * 32, SQLITE_STATIC) ==
                 SQLITE_OK &&
             sqlite3_step(s) == SQLITE_DONE;
    }
    sqlite3_finalize(s);
    ok = ok && rdx_tp_audit(db, cfg->id, "case-queued", RDX_TP_OUTCOME_SUCCESS, m->recipient,
                            m->case_id, detail, err) == RDX_OK;
    return ok;
}

rdx_status rdx_transport_case_queue(const rdx_transport_config *cfg, const char *to,
                                    rdx_transport_kind kind, const char *const *files,
                                    size_t nfiles, char case_id[RDX_TRANSPORT_CASE_ID_LEN],
                                    rdx_error *err)
{
    struct rdx_tp_manifest m;
    sqlite3 *db = NULL;
    rdx_buf blob;
    rdx_status st;
    rdx_buf_init(&blob, RDX_TRANSPORT_OFFER_MAX);
    RDX_TRY(rdx_tp_case_stage(cfg, to, kind, files, nfiles, NULL, &m, &blob, err));
    if ((st = rdx_tp_node_db_open(cfg->data, &db, err)) != RDX_OK) {
        goto out;
    }
    int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
             rdx_tp_case_insert(db, cfg, &m, &blob, err) &&
             sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    rdx_tp_outbox_kick(cfg->data); /* committed: wake the node's delivery, in whatever process */
    memcpy(case_id, m.case_id, RDX_TRANSPORT_CASE_ID_LEN - 1);
    case_id[RDX_TRANSPORT_CASE_ID_LEN - 1] = '\0';
    st = RDX_OK;
out:
    if (st != RDX_OK) {
        rdx_tp_case_unstage(cfg, m.case_id, m.nitems);
    }
    sqlite3_close(db);
    rdx_buf_free(&blob);
    rdx_tp_manifest_clear(&m);
    return st;
}

static const char *coltext(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : "";
}

static void fill_totals(const void *blob, int len, rdx_transport_case_info *ci)
{
    struct rdx_tp_manifest m;
    if (blob != NULL && rdx_tp_manifest_decode(blob, (size_t)len, &m, NULL) == RDX_OK) {
        ci->items = m.nitems;
        for (size_t i = 0; i < m.nitems; i++) {
            ci->bytes += m.items[i].size;
        }
        rdx_tp_manifest_clear(&m);
    }
}

rdx_status rdx_transport_case_list(const rdx_transport_config *cfg, int which,
                                   int (*fn)(void *u, const rdx_transport_case_info *c), void *u,
                                   rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    int stop = 0;
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    if ((which & 1) != 0) {
        if (sqlite3_prepare_v2(db,
                               "SELECT case_id, recipient, kind, state, attempts, last_error, "
                               "manifest, created_ms, done_ms FROM outbox ORDER BY created_ms",
                               -1, &s, NULL) != SQLITE_OK) {
            goto dberr;
        }
        while (!stop && sqlite3_step(s) == SQLITE_ROW) {
            rdx_transport_case_info ci;
            memset(&ci, 0, sizeof ci);
            snprintf(ci.case_id, sizeof ci.case_id, "%s", coltext(s, 0));
            snprintf(ci.peer, sizeof ci.peer, "%s", coltext(s, 1));
            snprintf(ci.kind, sizeof ci.kind, "%s", coltext(s, 2));
            snprintf(ci.state, sizeof ci.state, "%s", coltext(s, 3));
            ci.attempts = sqlite3_column_int(s, 4);
            snprintf(ci.last_error, sizeof ci.last_error, "%s", coltext(s, 5));
            fill_totals(sqlite3_column_blob(s, 6), sqlite3_column_bytes(s, 6), &ci);
            ci.created_ms = sqlite3_column_int64(s, 7);
            ci.done_ms = sqlite3_column_int64(s, 8);
            stop = fn(u, &ci);
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    if (!stop && (which & 2) != 0) {
        if (sqlite3_prepare_v2(db,
                               "SELECT i.case_id, i.sender, i.kind, i.state, i.manifest, "
                               "i.created_ms, i.done_ms, (SELECT sum(durable) FROM inbox_items "
                               "t WHERE t.sender = i.sender AND t.case_id = i.case_id) FROM "
                               "inbox i ORDER BY i.first_ms",
                               -1, &s, NULL) != SQLITE_OK) {
            goto dberr;
        }
        while (!stop && sqlite3_step(s) == SQLITE_ROW) {
            rdx_transport_case_info ci;
            memset(&ci, 0, sizeof ci);
            ci.inbox = 1;
            snprintf(ci.case_id, sizeof ci.case_id, "%s", coltext(s, 0));
            snprintf(ci.peer, sizeof ci.peer, "%s", coltext(s, 1));
            snprintf(ci.kind, sizeof ci.kind, "%s", coltext(s, 2));
            snprintf(ci.state, sizeof ci.state, "%s", coltext(s, 3));
            fill_totals(sqlite3_column_blob(s, 4), sqlite3_column_bytes(s, 4), &ci);
            ci.created_ms = sqlite3_column_int64(s, 5);
            ci.done_ms = sqlite3_column_int64(s, 6);
            ci.durable = (uint64_t)sqlite3_column_int64(s, 7);
            stop = fn(u, &ci);
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    sqlite3_close(db);
    return st;
dberr:
    st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_case_requeue(const rdx_transport_config *cfg, const char *case_id,
                                      rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    rdx_status st = RDX_OK;
    struct rdx_tp_manifest m;
    memset(&m, 0, sizeof m);
    if (cfg == NULL || case_id == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration or case ID");
    }
    RDX_TRY(rdx_tp_case_id_check(case_id, strlen(case_id), err));
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT state, manifest, recipient FROM outbox WHERE case_id=?", -1,
                           &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        goto dberr;
    }
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        st = rc == SQLITE_DONE ? rdx_error_set(err, RDX_ENOTFOUND,
                                               "case %s: not in the outbox of %s", case_id, cfg->id)
                               : RDX_EDB;
        goto out;
    }
    char state[16], recipient[RDX_TRANSPORT_INST_ID_MAX + 1];
    snprintf(state, sizeof state, "%s", coltext(s, 0));
    snprintf(recipient, sizeof recipient, "%s", coltext(s, 2));
    if (strcmp(state, "dead") != 0) {
        st =
            rdx_error_set(err, RDX_ESTATE, "case %s: %s, not dead-lettered; nothing to retry",
                          case_id, strcmp(state, "acked") == 0 ? "already acknowledged" : "queued");
        goto out;
    }
    if ((st = rdx_tp_manifest_decode(sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1),
                                     &m, err)) != RDX_OK) {
        goto out;
    }
    for (size_t i = 0; i < m.nitems; i++) {
        char p[4200];
        struct stat sb;
        if ((st = rdx_tp_spool_path(cfg, case_id, i, p, sizeof p, err)) != RDX_OK) {
            goto out;
        }
        if (stat(p, &sb) != 0 || (uint64_t)sb.st_size != m.items[i].size) {
            st = rdx_error_set(err, RDX_ENOENT,
                               "case %s: its outbox copy %s is gone or changed; send the files "
                               "again as a new case",
                               case_id, p);
            goto out;
        }
    }
    sqlite3_finalize(s);
    s = NULL;
    if (sqlite3_prepare_v2(db,
                           "UPDATE outbox SET state='queued', attempts=0, next_attempt_ms=0, "
                           "done_ms=NULL WHERE case_id=? AND state='dead'",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE) {
        goto dberr;
    }
    if ((st = rdx_tp_audit(db, cfg->id, "case-requeued", RDX_TP_OUTCOME_SUCCESS, recipient, case_id,
                           "dead letter queued again by an operator", err)) != RDX_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        goto dberr;
    }
    sqlite3_finalize(s);
    rdx_tp_manifest_clear(&m);
    sqlite3_close(db);
    rdx_tp_outbox_kick(cfg->data);
    return RDX_OK;
dberr:
    if (st == RDX_OK) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
    }
out:
    sqlite3_finalize(s);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    rdx_tp_manifest_clear(&m);
    sqlite3_close(db);
    return st;
}

rdx_status rdx_transport_case_fetch(const rdx_transport_config *cfg, const char *case_id,
                                    const char *from, const char *outdir, size_t *nitems,
                                    rdx_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    struct rdx_tp_manifest m;
    char sender[65] = "", state[16] = "";
    rdx_status st = RDX_OK;
    int rows = 0;
    struct stat sb;
    memset(&m, 0, sizeof m);
    if (cfg == NULL || case_id == NULL || outdir == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration, case ID or directory");
    }
    RDX_TRY(rdx_tp_case_id_check(case_id, strlen(case_id), err));
    if (from != NULL) {
        RDX_TRY(rdx_transport_inst_id_check(from, "--from", err));
    }
    if (stat(outdir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return rdx_error_set(err, RDX_ENOENT, "%s: not a directory", outdir);
    }
    RDX_TRY(rdx_tp_node_db_open(cfg->data, &db, err));
    if (sqlite3_prepare_v2(db,
                           "SELECT sender, state, manifest FROM inbox WHERE case_id=? AND "
                           "(?2 IS NULL OR sender=?2)",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_bind_text(s, 1, case_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        (from != NULL ? sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC)
                      : sqlite3_bind_null(s, 2)) != SQLITE_OK) {
        st = rdx_error_set(err, RDX_EDB, "%s/node.db: %s", cfg->data, sqlite3_errmsg(db));
        goto out;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        rows++;
        snprintf(sender, sizeof sender, "%s", coltext(s, 0));
        snprintf(state, sizeof state, "%s", coltext(s, 1));
        rdx_tp_manifest_clear(&m);
        if (rdx_tp_manifest_decode(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                                   &m, err) != RDX_OK) {
            st = RDX_EDB;
            goto out;
        }
    }
    if (rows == 0) {
        st = rdx_error_set(err, RDX_ENOTFOUND, "case %s: not in the inbox of %s", case_id, cfg->id);
        goto out;
    }
    if (rows > 1) {
        st = rdx_error_set(err, RDX_EINVAL,
                           "case %s: sent by %d institutions; name one with "
                           "--from",
                           case_id, rows);
        goto out;
    }
    if (strcmp(state, "complete") != 0) {
        st = rdx_error_set(err, RDX_ESTATE, "case %s from %s: still being received", case_id,
                           sender);
        goto out;
    }
    for (size_t i = 0; i < m.nitems; i++) {
        char src[4300], dst[4400];
        uint8_t md[32];
        uint64_t size = 0;
        /* The name was checked when the manifest was accepted; check again before use. */
        if ((st = rdx_tp_item_name_check(m.items[i].name, strlen(m.items[i].name), err)) !=
            RDX_OK) {
            goto out;
        }
        snprintf(src, sizeof src, "%s/inbox/%s/%s/%zu", cfg->data, sender, case_id, i);
        snprintf(dst, sizeof dst, "%s/%s", outdir, m.items[i].name);
        /* A small item may still be in node.db only (its file follows from the node's spill). */
        rdx_buf blob;
        rdx_buf_init(&blob, RDX_TRANSPORT_INLINE_MAX);
        st = rdx_tp_blob_get(db, sender, case_id, i, &blob, err);
        if (st == RDX_OK) {
            st = write_hash_mem(blob.data, blob.len, dst, m.items[i].sha256, err);
        } else if (st == RDX_ENOTFOUND) {
            uint8_t *checks = NULL;
            st = copy_hash(src, dst, m.items[i].sha256, &size, md, m.chunk_size, &checks, err);
            free(checks);
        }
        rdx_buf_free(&blob);
        if (st != RDX_OK) {
            goto out;
        }
    }
    fsync_path(outdir);
    char detail[4200];
    snprintf(detail, sizeof detail, "%zu items copied to %s", m.nitems, outdir);
    if ((st = rdx_tp_audit(db, cfg->id, "case-fetched", RDX_TP_OUTCOME_SUCCESS, sender, case_id,
                           detail, err)) != RDX_OK) {
        goto out;
    }
    if (nitems != NULL) {
        *nitems = m.nitems;
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    rdx_tp_manifest_clear(&m);
    return st;
}
