/*
 * index_store.c - the index API over its backends: URI dispatch, the
 * write path shared by SQLite and PostgreSQL (the same statements, the same
 * duplicate policy), and the query side, whose SQL is built here once for
 * both dialects.
 *
 * Matching follows PS3.4 C.2.2.2: single-value matching (exact), wildcard
 * matching ('*' any run, '?' one character) through GLOB on SQLite and LIKE
 * on PostgreSQL with the other metacharacters escaped, and range matching
 * for dates. A Person Name matches when any of its component groups does,
 * the alphabetic group ignoring ASCII case.
 */
#define _XOPEN_SOURCE 700
#include "rdx/imaging.h"

#include "dicom.h"
#include "imaging_int.h"
#include "imaging_limits.h"

#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rdx_img_index {
    const struct img_backend *be;
    void *impl;
    int pg;          /* dialect: PostgreSQL LIKE instead of SQLite GLOB */
    int no_pipeline; /* rdx_img_index_set_pipeline(ix, 0) */
};

/*
 * Upserts keep a known value when an instance brings an empty one:
 * col = coalesce(nullif(excluded.col, ''), table.col).
 */
const char *const img_stmt_sql[S_NSTMT] = {
    [S_UNCHANGED] = "SELECT size, mtime_ns FROM instances WHERE path = ?1",
    [S_BY_SOP] = "SELECT path FROM instances WHERE sop_uid = ?1",
    [S_DEL_PATH_OTHER] = "DELETE FROM instances WHERE path = ?1 AND sop_uid <> ?2",
    [S_DEL_SOP] = "DELETE FROM instances WHERE sop_uid = ?1",
    [S_PATIENT] =
        ("INSERT INTO patients(pkey, patient_id, issuer, name, name_alpha, name_alpha_uc,"
         " name_ideo, name_phon, birth_date, sex) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
         " ON CONFLICT(pkey) DO UPDATE SET"
         " name=coalesce(nullif(excluded.name, ''), patients.name),"
         " name_alpha=coalesce(nullif(excluded.name_alpha, ''), patients.name_alpha),"
         " name_alpha_uc=coalesce(nullif(excluded.name_alpha_uc, ''), patients.name_alpha_uc),"
         " name_ideo=coalesce(nullif(excluded.name_ideo, ''), patients.name_ideo),"
         " name_phon=coalesce(nullif(excluded.name_phon, ''), patients.name_phon),"
         " birth_date=coalesce(nullif(excluded.birth_date, ''), patients.birth_date),"
         " sex=coalesce(nullif(excluded.sex, ''), patients.sex) RETURNING id"),
    [S_STUDY] =
        ("INSERT INTO studies(study_uid, patient_ref, study_date, study_time, accession,"
         " description, referring, institution, study_id) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"
         " ON CONFLICT(study_uid) DO UPDATE SET patient_ref=excluded.patient_ref,"
         " study_date=coalesce(nullif(excluded.study_date, ''), studies.study_date),"
         " study_time=coalesce(nullif(excluded.study_time, ''), studies.study_time),"
         " accession=coalesce(nullif(excluded.accession, ''), studies.accession),"
         " description=coalesce(nullif(excluded.description, ''), studies.description),"
         " referring=coalesce(nullif(excluded.referring, ''), studies.referring),"
         " institution=coalesce(nullif(excluded.institution, ''), studies.institution),"
         " study_id=coalesce(nullif(excluded.study_id, ''), studies.study_id) RETURNING id"),
    [S_SERIES] =
        ("INSERT INTO series(series_uid, study_ref, modality, number, description, body_part)"
         " VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(series_uid) DO UPDATE SET"
         " study_ref=excluded.study_ref,"
         " modality=coalesce(nullif(excluded.modality, ''), series.modality),"
         " number=coalesce(excluded.number, series.number),"
         " description=coalesce(nullif(excluded.description, ''), series.description),"
         " body_part=coalesce(nullif(excluded.body_part, ''), series.body_part) RETURNING id"),
    [S_INSTANCE] = ("INSERT INTO instances(sop_uid, series_ref, sop_class, number, transfer_syntax,"
                    " rows, columns, frames, path, size, mtime_ns)"
                    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) RETURNING id"),
    [S_REPORT] =
        ("INSERT INTO reports(instance_ref, study_uid, title, completion, verification,"
         " content_date, content_time, text) VALUES(?1,?2,?3,?4,?5,?6,?7,?8) RETURNING id"),
    [S_LINK] = ("INSERT INTO report_links(report_ref, study_uid, how) VALUES(?1,?2,?3)"
                " ON CONFLICT DO NOTHING"),
    [S_DEL_PATH] = "DELETE FROM instances WHERE path = ?1",
    [S_GC_SERIES] = ("DELETE FROM series WHERE NOT EXISTS"
                     " (SELECT 1 FROM instances i WHERE i.series_ref = series.id)"),
    [S_GC_STUDIES] = ("DELETE FROM studies WHERE NOT EXISTS"
                      " (SELECT 1 FROM series s WHERE s.study_ref = studies.id)"),
    [S_GC_PATIENTS] = ("DELETE FROM patients WHERE NOT EXISTS"
                       " (SELECT 1 FROM studies s WHERE s.patient_ref = patients.id)"),
    [S_GC_SM] = ("DELETE FROM study_modalities WHERE NOT EXISTS (SELECT 1 FROM series s"
                 " WHERE s.study_ref = study_modalities.study_ref"
                 " AND s.modality = study_modalities.modality)"),
    [S_DEL_ADDED] = "DELETE FROM reports WHERE instance_ref IS NULL AND source = ?1",
    [S_ADD_REPORT] = ("INSERT INTO reports(instance_ref, source, study_uid, title, completion,"
                      " verification, content_date, content_time, text)"
                      " VALUES(NULL,?1,?2,?3,'','',?4,?5,?6) RETURNING id"),
};

/*
 * Schema version 1 to 2 (both dialects): the counts on studies and series,
 * filled from the rows; study_modalities rebuilt from the series. The
 * backends then create the triggers that keep them.
 */
const char img_migrate_v1_sql[] =
    "ALTER TABLE studies ADD COLUMN num_series INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE studies ADD COLUMN num_instances INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE series ADD COLUMN num_instances INTEGER NOT NULL DEFAULT 0;"
    "UPDATE series SET num_instances = (SELECT count(*) FROM instances i"
    " WHERE i.series_ref = series.id);"
    "UPDATE studies SET num_series = (SELECT count(*) FROM series s WHERE s.study_ref = "
    "studies.id),"
    " num_instances = (SELECT coalesce(sum(s.num_instances), 0) FROM series s"
    " WHERE s.study_ref = studies.id);"
    "DELETE FROM study_modalities;"
    "INSERT INTO study_modalities(modality, study_ref, study_date, study_time, study_uid)"
    " SELECT DISTINCT se.modality, st.id, st.study_date, st.study_time, st.study_uid"
    " FROM series se JOIN studies st ON se.study_ref = st.id WHERE se.modality <> '';"
    "UPDATE meta SET value = '2' WHERE key = 'schema_version';";

rdx_status rdx_img_index_open(const char *uri, rdx_img_index **out, rdx_error *err)
{
    if (out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_open: out is NULL");
    }
    *out = NULL;
    if (uri == NULL || uri[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "index URI is empty");
    }
    int pg = strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0;
    const char *path = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
    if (!pg && (path[0] == '\0' || strstr(uri, "://") != NULL)) {
        return rdx_error_set(err, RDX_EINVAL,
                             "%s: not an index URI (sqlite:PATH or postgresql://...)", uri);
    }
    rdx_img_index *ix = calloc(1, sizeof *ix);
    if (ix == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    ix->pg = pg;
    rdx_status st = pg ? img_pg_open(uri, &ix->be, &ix->impl, err)
                       : img_sqlite_open(path, &ix->be, &ix->impl, err);
    if (st != RDX_OK) {
        free(ix);
        return st;
    }
    *out = ix;
    return RDX_OK;
}

void rdx_img_index_close(rdx_img_index *ix)
{
    if (ix == NULL) {
        return;
    }
    ix->be->close(ix->impl);
    free(ix);
}

rdx_status img_store_begin(rdx_img_index *ix, rdx_error *err)
{
    return ix->be->begin(ix->impl, err);
}

rdx_status img_store_lock_keys(rdx_img_index *ix, const int64_t *keys, size_t n, rdx_error *err)
{
    if (ix->be->lock_keys == NULL || n == 0) {
        return RDX_OK;
    }
    return ix->be->lock_keys(ix->impl, keys, n, err);
}

rdx_status img_store_commit(rdx_img_index *ix, rdx_error *err)
{
    return ix->be->commit(ix->impl, err);
}

void img_store_rollback(rdx_img_index *ix)
{
    ix->be->rollback(ix->impl);
    /* The rolled-back series may come back under another id: record its modality again. */
}

/* Decimal text of v into buf, or NULL (SQL NULL) for INT64_MIN. */
static const char *num(char buf[24], int64_t v)
{
    if (v == INT64_MIN) {
        return NULL;
    }
    snprintf(buf, 24, "%lld", (long long)v);
    return buf;
}

static int64_t to_i64(const char *s)
{
    int64_t v = 0;
    if (s == NULL || rdx_parse_i64(s, strlen(s), INT64_MIN, INT64_MAX, &v) != RDX_OK) {
        return 0;
    }
    return v;
}

struct unchanged_row {
    int found;
    int64_t size, mtime;
};

static int on_unchanged(void *user, int ncol, const char *const *v)
{
    struct unchanged_row *r = user;
    if (ncol >= 2) {
        r->found = 1;
        r->size = to_i64(v[0]);
        r->mtime = to_i64(v[1]);
    }
    return 1;
}

rdx_status img_store_unchanged(rdx_img_index *ix, const char *path, int64_t size, int64_t mtime_ns,
                               int *same, rdx_error *err)
{
    *same = 0;
    struct unchanged_row r = {0, 0, 0};
    const char *params[1] = {path};
    RDX_TRY(ix->be->select(ix->impl, img_stmt_sql[S_UNCHANGED], params, 1, on_unchanged, &r, err));
    *same = r.found && r.size == size && r.mtime == mtime_ns;
    return RDX_OK;
}

/* ASCII upper case of s into buf (the alphabetic group's case-insensitive key). */
static void ascii_upper(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < n; i++) {
        char c = s[i];
        buf[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    buf[i] = '\0';
}

static rdx_status run_id(rdx_img_index *ix, enum img_stmt id, const char *const *p, int n,
                         int64_t *out, rdx_error *err)
{
    char buf[32];
    int got = 0;
    RDX_TRY(ix->be->run(ix->impl, id, p, n, buf, sizeof buf, &got, err));
    if (!got) {
        return rdx_error_set(err, RDX_EDB, "statement %d returned no id", (int)id);
    }
    *out = to_i64(buf);
    return RDX_OK;
}

/* The 33 parameters of put_chain for one record, and the text they point into. */
struct chain_args {
    char pkey[1024], upper[1024];
    char n[7][24];
    const char *cp[IMG_PUT_CHAIN_NPARAMS];
    const char *p2[2], *p1[1];
};

static void chain_args_of(const struct img_record *r, struct chain_args *a)
{
    const char *const *f = r->f;
    /*
     * Patient identity: Patient ID with its issuer. Files without a Patient ID
     * (anonymised teaching files) are kept apart by name, not merged into one.
     */
    if (f[F_PATIENT_ID][0] != '\0') {
        snprintf(a->pkey, sizeof a->pkey, "I\x1f%s\x1f%s", f[F_PATIENT_ID], f[F_ISSUER]);
    } else {
        snprintf(a->pkey, sizeof a->pkey, "N\x1f%s", f[F_PATIENT_NAME]);
    }
    ascii_upper(f[F_NAME_ALPHA], a->upper, sizeof a->upper);
    const char *cp[IMG_PUT_CHAIN_NPARAMS] = {a->pkey,
                                             f[F_PATIENT_ID],
                                             f[F_ISSUER],
                                             f[F_PATIENT_NAME],
                                             f[F_NAME_ALPHA],
                                             a->upper,
                                             f[F_NAME_IDEO],
                                             f[F_NAME_PHON],
                                             f[F_BIRTH_DATE],
                                             f[F_SEX],
                                             f[F_STUDY_UID],
                                             f[F_STUDY_DATE],
                                             f[F_STUDY_TIME],
                                             f[F_ACCESSION],
                                             f[F_STUDY_DESC],
                                             f[F_REFERRING],
                                             f[F_INSTITUTION],
                                             f[F_STUDY_ID],
                                             f[F_SERIES_UID],
                                             f[F_MODALITY],
                                             num(a->n[0], r->series_number),
                                             f[F_SERIES_DESC],
                                             f[F_BODY_PART],
                                             f[F_SOP_UID],
                                             f[F_SOP_CLASS],
                                             num(a->n[1], r->instance_number),
                                             f[F_XFER],
                                             num(a->n[2], r->rows),
                                             num(a->n[3], r->columns),
                                             num(a->n[4], r->frames),
                                             f[F_PATH],
                                             num(a->n[5], r->size),
                                             num(a->n[6], r->mtime_ns)};
    memcpy(a->cp, cp, sizeof cp);
    a->p2[0] = f[F_PATH];
    a->p2[1] = f[F_SOP_UID];
    a->p1[0] = f[F_SOP_UID];
}

rdx_status img_store_put(rdx_img_index *ix, const struct img_record *r, rdx_error *err)
{
    const char *const *f = r->f;
    const struct img_backend *be = ix->be;
    char other[RDX_IMG_MAX_PATH + 1] = "";
    int got = 0;
    const char *p1[1] = {f[F_SOP_UID]};
    RDX_TRY(be->run(ix->impl, S_BY_SOP, p1, 1, other, sizeof other, &got, err));
    struct stat sb;
    if (got && strcmp(other, f[F_PATH]) != 0 && stat(other, &sb) == 0) {
        return rdx_error_set(err, RDX_EDUPLICATE,
                             "%s: duplicate SOP Instance UID %s, already indexed from %s",
                             f[F_PATH], f[F_SOP_UID], other);
    }
    /* A changed file: drop what its path held before, then this UID's old row. */
    const char *p2[2] = {f[F_PATH], f[F_SOP_UID]};
    RDX_TRY(be->run(ix->impl, S_DEL_PATH_OTHER, p2, 2, NULL, 0, NULL, err));
    RDX_TRY(be->run(ix->impl, S_DEL_SOP, p1, 1, NULL, 0, NULL, err));

    /* The patient key, upper-cased name and the numbers as text (chain_args_of). */
    struct chain_args ca;
    chain_args_of(r, &ca);
    const char *pkey = ca.pkey, *upper = ca.upper;
    int64_t pid = 0, stid = 0, seid = 0, iid = 0, rid = 0;
    char n1[24], n2[24], n3[24], n4[24], n5[24], n6[24], n7[24];
    if (be->put_chain != NULL) {
        char buf[32] = "";
        RDX_TRY(be->put_chain(ix->impl, ca.cp, buf, sizeof buf, err));
        iid = to_i64(buf);
    } else {
        const char *pp[10] = {
            pkey,  f[F_PATIENT_ID], f[F_ISSUER],    f[F_PATIENT_NAME], f[F_NAME_ALPHA],
            upper, f[F_NAME_IDEO],  f[F_NAME_PHON], f[F_BIRTH_DATE],   f[F_SEX]};
        RDX_TRY(run_id(ix, S_PATIENT, pp, 10, &pid, err));
        const char *sp[9] = {f[F_STUDY_UID],  num(n1, pid),     f[F_STUDY_DATE],
                             f[F_STUDY_TIME], f[F_ACCESSION],   f[F_STUDY_DESC],
                             f[F_REFERRING],  f[F_INSTITUTION], f[F_STUDY_ID]};
        RDX_TRY(run_id(ix, S_STUDY, sp, 9, &stid, err));
        const char *ep[6] = {f[F_SERIES_UID],           num(n1, stid),    f[F_MODALITY],
                             num(n2, r->series_number), f[F_SERIES_DESC], f[F_BODY_PART]};
        RDX_TRY(run_id(ix, S_SERIES, ep, 6, &seid, err));
        const char *ip[11] = {
            f[F_SOP_UID], num(n1, seid),    f[F_SOP_CLASS],      num(n2, r->instance_number),
            f[F_XFER],    num(n3, r->rows), num(n4, r->columns), num(n5, r->frames),
            f[F_PATH],    num(n6, r->size), num(n7, r->mtime_ns)};
        RDX_TRY(run_id(ix, S_INSTANCE, ip, 11, &iid, err));
    }

    if (!r->is_report) {
        return RDX_OK;
    }
    const char *rp[8] = {num(n1, iid),      f[F_STUDY_UID],    f[F_REPORT_TITLE], f[F_COMPLETION],
                         f[F_VERIFICATION], f[F_CONTENT_DATE], f[F_CONTENT_TIME], r->report_text};
    RDX_TRY(run_id(ix, S_REPORT, rp, 8, &rid, err));
    for (size_t i = 0; i <= r->nlinks; i++) {
        const char *lp[3] = {num(n1, rid), i == 0 ? f[F_STUDY_UID] : r->link_uid[i - 1],
                             i == 0 ? "own" : r->link_how[i - 1]};
        RDX_TRY(be->run(ix->impl, S_LINK, lp, 3, NULL, 0, NULL, err));
    }
    return RDX_OK;
}

void rdx_img_index_set_pipeline(rdx_img_index *ix, int on)
{
    if (ix != NULL) {
        ix->no_pipeline = !on;
    }
}

/* Commands per pipeline: their results (~100 bytes each) stay well inside a socket buffer. */
#define PIPE_CHUNK 240

static rdx_status run_pipeline(rdx_img_index *ix, struct img_cmd *cmds, size_t n, rdx_error *err)
{
    for (size_t i = 0; i < n; i += PIPE_CHUNK) {
        RDX_TRY(ix->be->pipeline(ix->impl, cmds + i, n - i < PIPE_CHUNK ? n - i : PIPE_CHUNK, err));
    }
    return RDX_OK;
}

rdx_status img_store_put_batch(rdx_img_index *ix, const struct img_record *const *recs, size_t n,
                               rdx_status *sts, char *const *msgs, rdx_error *err)
{
    int reports = 0;
    for (size_t i = 0; i < n; i++) {
        reports |= recs[i]->is_report;
    }
    if (ix->be->pipeline == NULL || ix->be->put_chain == NULL || ix->no_pipeline || reports) {
        for (size_t i = 0; i < n; i++) {
            rdx_error fe;
            rdx_error_clear(&fe);
            rdx_status st = img_store_put(ix, recs[i], &fe);
            if (st == RDX_EBUSY || st == RDX_EDB || st == RDX_ENOMEM) {
                return rdx_error_set(err, st, "%s", fe.msg);
            }
            sts[i] = st;
            snprintf(msgs[i], RDX_ERROR_MSG_MAX, "%s", fe.msg);
        }
        return RDX_OK;
    }
    rdx_status st = RDX_OK;
    struct chain_args *args = rdx_callocarray(n, sizeof *args);
    struct img_cmd *cmds = rdx_callocarray(3 * n, sizeof *cmds);
    char(*other)[RDX_IMG_MAX_PATH + 1] = rdx_callocarray(n, sizeof *other);
    const char **cur = rdx_callocarray(n, sizeof *cur);
    if (args == NULL || cmds == NULL || other == NULL || cur == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
        goto out;
    }
    /* Where each UID's row is now: every duplicate check of the batch at once. */
    for (size_t i = 0; i < n; i++) {
        chain_args_of(recs[i], &args[i]);
        cmds[i] = (struct img_cmd){.stmt = S_BY_SOP,
                                   .nparams = 1,
                                   .params = args[i].p1,
                                   .out = other[i],
                                   .outsz = sizeof other[i]};
    }
    if ((st = run_pipeline(ix, cmds, n, err)) != RDX_OK) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        cur[i] = cmds[i].got ? other[i] : NULL;
    }
    /*
     * Decide in walk order what n calls of img_store_put would, following
     * what each write does to the (UID, path) rows the later checks read:
     * cur[j] is where record j's UID is indexed at that point.
     */
    size_t nc = 0;
    for (size_t k = 0; k < n; k++) {
        const char *const *f = recs[k]->f;
        struct stat sb;
        msgs[k][0] = '\0';
        if (cur[k] != NULL && strcmp(cur[k], f[F_PATH]) != 0 && stat(cur[k], &sb) == 0) {
            sts[k] = RDX_EDUPLICATE;
            snprintf(msgs[k], RDX_ERROR_MSG_MAX,
                     "%s: duplicate SOP Instance UID %s, already indexed from %s", f[F_PATH],
                     f[F_SOP_UID], cur[k]);
            continue;
        }
        sts[k] = RDX_OK;
        for (size_t j = 0; j < n; j++) {
            const char *sop_j = recs[j]->f[F_SOP_UID];
            if (strcmp(sop_j, f[F_SOP_UID]) == 0) {
                cur[j] = f[F_PATH]; /* S_DEL_SOP, then the insert at this path */
            } else if (cur[j] != NULL && strcmp(cur[j], f[F_PATH]) == 0) {
                cur[j] = NULL; /* S_DEL_PATH_OTHER removed it */
            }
        }
        cmds[nc++] = (struct img_cmd){.stmt = S_DEL_PATH_OTHER, .nparams = 2, .params = args[k].p2};
        cmds[nc++] = (struct img_cmd){.stmt = S_DEL_SOP, .nparams = 1, .params = args[k].p1};
        cmds[nc++] = (struct img_cmd){
            .stmt = IMG_CMD_CHAIN, .nparams = IMG_PUT_CHAIN_NPARAMS, .params = args[k].cp};
    }
    st = run_pipeline(ix, cmds, nc, err);
out:
    free(args);
    free(cmds);
    free(other);
    free(cur);
    return st;
}

/* ---- Query ---------------------------------------------------------------- */

/*
 * Turn a DICOM wildcard pattern into the dialect's: for GLOB, '*' and '?'
 * keep their meaning and '[' becomes "[[]"; for LIKE, '*' is '%', '?' is '_'
 * and '%', '_' and '\' are escaped with '\'. upper folds ASCII.
 */
static rdx_status pattern_of(const char *pat, int like, int upper, rdx_buf *out)
{
    rdx_buf_reset(out);
    for (const char *p = pat; *p != '\0'; p++) {
        char c = *p;
        if (upper && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        if (!like) {
            RDX_TRY(c == '[' ? rdx_buf_append_str(out, "[[]") : rdx_buf_append_u8(out, (uint8_t)c));
        } else if (c == '*') {
            RDX_TRY(rdx_buf_append_u8(out, '%'));
        } else if (c == '?') {
            RDX_TRY(rdx_buf_append_u8(out, '_'));
        } else if (c == '%' || c == '_' || c == '\\') {
            RDX_TRY(rdx_buf_append_u8(out, '\\'));
            RDX_TRY(rdx_buf_append_u8(out, (uint8_t)c));
        } else {
            RDX_TRY(rdx_buf_append_u8(out, (uint8_t)c));
        }
    }
    return RDX_OK;
}

static int is_date8(const char *s, size_t n)
{
    if (n != 8) {
        return 0;
    }
    for (size_t i = 0; i < 8; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* Parse "D", "D1-D2", "D1-" or "-D2" (PS3.4 C.2.2.2.5 range matching). */
static rdx_status parse_range(const char *s, char from[9], char to[9], rdx_error *err)
{
    const char *dash = strchr(s, '-');
    size_t n = strlen(s);
    from[0] = to[0] = '\0';
    if (dash == NULL) {
        if (!is_date8(s, n)) {
            goto bad;
        }
        memcpy(from, s, 9);
        memcpy(to, s, 9);
        return RDX_OK;
    }
    size_t a = (size_t)(dash - s), b = n - a - 1;
    if ((a != 0 && !is_date8(s, a)) || (b != 0 && !is_date8(dash + 1, b)) || (a == 0 && b == 0)) {
        goto bad;
    }
    if (a) {
        memcpy(from, s, 8);
        from[8] = '\0';
    }
    if (b) {
        memcpy(to, dash + 1, 8);
        to[8] = '\0';
    }
    return RDX_OK;
bad:
    return rdx_error_set(err, RDX_EINVAL,
                         "study date '%s': expected YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or "
                         "-YYYYMMDD",
                         s);
}

static int has_wild(const char *s)
{
    return strchr(s, '*') != NULL || strchr(s, '?') != NULL;
}

static int set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

#define MAX_PARAMS 12

/* The SQL under construction and its parameters, numbered as they are added. */
struct qb {
    rdx_buf sql;
    const char *params[MAX_PARAMS];
    int n;
    rdx_status st;
};

static void qb_sql(struct qb *b, const char *s)
{
    if (b->st == RDX_OK) {
        b->st = rdx_buf_append_str(&b->sql, s);
    }
}

/* Append a placeholder for value v and return its number (to reuse it). */
static int qb_param(struct qb *b, const char *v)
{
    if (b->n == MAX_PARAMS) {
        b->st = RDX_EINTERNAL;
        return 0;
    }
    b->params[b->n++] = v;
    if (b->st == RDX_OK) {
        b->st = rdx_buf_printf(&b->sql, "?%d", b->n);
    }
    return b->n;
}

static void qb_ref(struct qb *b, int k)
{
    if (b->st == RDX_OK) {
        b->st = rdx_buf_printf(&b->sql, "?%d", k);
    }
}

struct query_run {
    const rdx_img_query *q;
    rdx_img_row_fn fn;
    void *user;
    size_t count;
};

static const char *txt(const char *const *v, int ncol, int i)
{
    return i < ncol && v[i] != NULL ? v[i] : "";
}

static int on_query_row(void *user, int ncol, const char *const *v)
{
    struct query_run *qr = user;
    rdx_img_row row;
    memset(&row, 0, sizeof row);
    row.level = qr->q->level;
    row.patient_id = txt(v, ncol, 0);
    row.issuer = txt(v, ncol, 1);
    row.patient_name = txt(v, ncol, 2);
    row.birth_date = txt(v, ncol, 3);
    row.sex = txt(v, ncol, 4);
    row.study_uid = txt(v, ncol, 5);
    row.study_date = txt(v, ncol, 6);
    row.study_time = txt(v, ncol, 7);
    row.accession = txt(v, ncol, 8);
    row.study_description = txt(v, ncol, 9);
    row.modalities = txt(v, ncol, 10);
    row.series_uid = txt(v, ncol, 11);
    row.modality = txt(v, ncol, 12);
    row.series_description = txt(v, ncol, 13);
    row.series_number = to_i64(txt(v, ncol, 14));
    row.sop_instance_uid = txt(v, ncol, 15);
    row.sop_class_uid = txt(v, ncol, 16);
    row.transfer_syntax = txt(v, ncol, 17);
    row.path = txt(v, ncol, 18);
    row.instance_number = to_i64(txt(v, ncol, 19));
    row.rows = to_i64(txt(v, ncol, 20));
    row.columns = to_i64(txt(v, ncol, 21));
    row.frames = to_i64(txt(v, ncol, 22));
    row.n_studies = to_i64(txt(v, ncol, 23));
    row.n_series = to_i64(txt(v, ncol, 24));
    row.n_instances = to_i64(txt(v, ncol, 25));
    row.has_report = (int)to_i64(txt(v, ncol, 26));
    qr->count++;
    return qr->fn(qr->user, &row);
}

rdx_status rdx_img_index_query(rdx_img_index *ix, const rdx_img_query *q, rdx_img_row_fn fn,
                               void *user, size_t *count, rdx_error *err)
{
    if (count != NULL) {
        *count = 0;
    }
    if (ix == NULL || q == NULL || fn == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_query: NULL argument");
    }
    if (q->level < RDX_IMG_LEVEL_PATIENT || q->level > RDX_IMG_LEVEL_INSTANCE) {
        return rdx_error_set(err, RDX_EINVAL,
                             "query level %d is not one of patient, study, series, instance",
                             (int)q->level);
    }
    char dfrom[9] = "", dto[9] = "";
    if (set(q->study_date)) {
        RDX_TRY(parse_range(q->study_date, dfrom, dto, err));
    }
    const int lv = (int)q->level, like = ix->pg;
    const char *op = like ? " LIKE " : " GLOB ";
    struct qb b;
    memset(&b, 0, sizeof b);
    rdx_buf_init(&b.sql, 16384);
    rdx_buf pid, pu, pr;
    rdx_buf_init(&pid, 4096);
    rdx_buf_init(&pu, 4096);
    rdx_buf_init(&pr, 4096);

    qb_sql(&b, "SELECT p.patient_id, p.issuer, p.name, p.birth_date, p.sex,");
    if (lv >= RDX_IMG_LEVEL_STUDY) {
        qb_sql(&b, " st.study_uid, st.study_date, st.study_time, st.accession, st.description,");
        /* Modalities in Study from study_modalities (one indexed probe per answer). */
        qb_sql(&b, like ? " (SELECT string_agg(modality, '\\' ORDER BY modality) FROM"
                          " study_modalities WHERE study_ref = st.id),"
                        : " (SELECT group_concat(modality, '\\') FROM (SELECT modality FROM"
                          " study_modalities WHERE study_ref = st.id ORDER BY modality)),");
    } else {
        qb_sql(&b, " '', '', '', '', '', '',");
    }
    qb_sql(&b, lv >= RDX_IMG_LEVEL_SERIES
                   ? " se.series_uid, se.modality, se.description, se.number,"
                   : " '', '', '', NULL,");
    qb_sql(&b, lv == RDX_IMG_LEVEL_INSTANCE
                   ? " i.sop_uid, i.sop_class, i.transfer_syntax, i.path, i.number, i.rows,"
                     " i.columns, i.frames,"
                   : " '', '', '', '', NULL, NULL, NULL, NULL,");
    static const char has_report[] =
        " CAST(EXISTS(SELECT 1 FROM report_links rl WHERE rl.study_uid = st.study_uid) AS INTEGER)";
    switch (lv) {
    case RDX_IMG_LEVEL_PATIENT:
        qb_sql(&b, " (SELECT count(*) FROM studies s2 WHERE s2.patient_ref = p.id),"
                   " (SELECT coalesce(sum(s2.num_series), 0) FROM studies s2"
                   "   WHERE s2.patient_ref = p.id),"
                   " (SELECT coalesce(sum(s2.num_instances), 0) FROM studies s2"
                   "   WHERE s2.patient_ref = p.id),"
                   " 0 FROM patients p");
        break;
    case RDX_IMG_LEVEL_STUDY:
        /* The counts kept on the study row (triggers), not counted per answer. */
        qb_sql(&b, " 1, st.num_series, st.num_instances,");
        qb_sql(&b, has_report);
        /*
         * With a modality, drive from study_modalities: its (modality, date, time,
         * UID) index gives the studies in answer order, so LIMIT stops early.
         */
        qb_sql(&b, set(q->modality) ? " FROM study_modalities sm JOIN studies st ON st.id ="
                                      " sm.study_ref JOIN patients p ON st.patient_ref = p.id"
                                    : " FROM studies st JOIN patients p ON st.patient_ref = p.id");
        break;
    case RDX_IMG_LEVEL_SERIES:
        qb_sql(&b, " 1, 1, se.num_instances,");
        qb_sql(&b, has_report);
        qb_sql(&b, " FROM series se JOIN studies st ON se.study_ref = st.id"
                   " JOIN patients p ON st.patient_ref = p.id");
        break;
    default:
        qb_sql(&b, " 1, 1, 1,");
        qb_sql(&b, has_report);
        qb_sql(&b, " FROM instances i JOIN series se ON i.series_ref = se.id"
                   " JOIN studies st ON se.study_ref = st.id"
                   " JOIN patients p ON st.patient_ref = p.id");
        break;
    }
    qb_sql(&b, " WHERE 1=1");
    rdx_status st = RDX_OK;
    /*
     * Patient filters select patients first (through their own indexes) and
     * the studies by patient_ref, whatever the planner thinks of ORDER BY.
     */
    if (set(q->patient_id) || set(q->patient_name)) {
        qb_sql(&b, " AND p.id IN (SELECT id FROM patients WHERE 1=1");
    }
    if (set(q->patient_id)) {
        if (has_wild(q->patient_id)) {
            st = pattern_of(q->patient_id, like, 0, &pid);
            qb_sql(&b, " AND patient_id");
            qb_sql(&b, op);
            qb_param(&b, (const char *)pid.data);
        } else {
            qb_sql(&b, " AND patient_id = ");
            qb_param(&b, q->patient_id);
        }
    }
    if (st == RDX_OK && set(q->patient_name)) {
        st = pattern_of(q->patient_name, like, 1, &pu);
        if (st == RDX_OK) {
            st = pattern_of(q->patient_name, like, 0, &pr);
        }
        /* Any component group may match; the alphabetic one ignores ASCII case. */
        qb_sql(&b, " AND (name_alpha_uc");
        qb_sql(&b, op);
        qb_param(&b, (const char *)pu.data);
        qb_sql(&b, " OR name_ideo");
        qb_sql(&b, op);
        int k = qb_param(&b, (const char *)pr.data);
        qb_sql(&b, " OR name_phon");
        qb_sql(&b, op);
        qb_ref(&b, k);
        if (strchr(q->patient_name, '=') != NULL) {
            /* A pattern spanning groups ("Wang^*=王*") matches the whole name (no index). */
            qb_sql(&b, " OR name");
            qb_sql(&b, op);
            qb_ref(&b, k);
        }
        qb_sql(&b, ")");
    }
    if (set(q->patient_id) || set(q->patient_name)) {
        qb_sql(&b, ")");
    }
    if (st != RDX_OK) {
        st = rdx_error_set(err, st, "patient name or ID pattern too long");
        goto out;
    }
    int study_filters = dfrom[0] || dto[0] || set(q->modality) || set(q->accession) ||
                        set(q->study_uid) || set(q->series_uid);
    if (lv == RDX_IMG_LEVEL_PATIENT && study_filters) {
        /* A patient answers when one of the patient's studies does. */
        qb_sql(&b, " AND EXISTS(SELECT 1 FROM studies st WHERE st.patient_ref = p.id");
    }
    if (dfrom[0] != '\0') {
        qb_sql(&b, " AND st.study_date >= ");
        qb_param(&b, dfrom);
    }
    if (dto[0] != '\0') {
        qb_sql(&b, " AND st.study_date <> '' AND st.study_date <= ");
        qb_param(&b, dto);
    }
    if (set(q->modality)) {
        /* Modalities in Study: any series of the study (dcmqrscp ignores this key). */
        qb_sql(&b, lv >= RDX_IMG_LEVEL_SERIES  ? " AND se.modality = "
                   : lv == RDX_IMG_LEVEL_STUDY ? " AND sm.modality = "
                                               : " AND EXISTS(SELECT 1 FROM study_modalities sm"
                                                 " WHERE sm.study_ref = st.id AND sm.modality = ");
        qb_param(&b, q->modality);
        qb_sql(&b, lv == RDX_IMG_LEVEL_PATIENT ? ")" : "");
    }
    if (set(q->accession)) {
        qb_sql(&b, " AND st.accession = ");
        qb_param(&b, q->accession);
    }
    if (set(q->study_uid)) {
        qb_sql(&b, " AND st.study_uid = ");
        qb_param(&b, q->study_uid);
    }
    if (set(q->series_uid)) {
        qb_sql(&b, lv >= RDX_IMG_LEVEL_SERIES ? " AND se.series_uid = "
                                              : " AND EXISTS(SELECT 1 FROM series e4 WHERE"
                                                " e4.study_ref = st.id AND e4.series_uid = ");
        qb_param(&b, q->series_uid);
        qb_sql(&b, lv >= RDX_IMG_LEVEL_SERIES ? "" : ")");
    }
    if (lv == RDX_IMG_LEVEL_PATIENT && study_filters) {
        qb_sql(&b, ")");
    }
    switch (lv) {
    case RDX_IMG_LEVEL_PATIENT:
        qb_sql(&b, " ORDER BY p.patient_id, p.name, p.id");
        break;
    case RDX_IMG_LEVEL_STUDY:
        qb_sql(&b, set(q->modality) ? " ORDER BY sm.study_date, sm.study_time, sm.study_uid"
                                    : " ORDER BY st.study_date, st.study_time, st.study_uid");
        break;
    case RDX_IMG_LEVEL_SERIES:
        qb_sql(&b, " ORDER BY st.study_date, st.study_uid, se.number NULLS FIRST, se.series_uid");
        break;
    default:
        qb_sql(&b, " ORDER BY st.study_date, st.study_uid, se.number NULLS FIRST, se.series_uid,"
                   " i.number NULLS FIRST, i.sop_uid");
        break;
    }
    if (q->limit > 0 && b.st == RDX_OK) {
        b.st = rdx_buf_printf(&b.sql, " LIMIT %zu", q->limit);
    }
    if (b.st != RDX_OK) {
        st = rdx_error_set(err, b.st, "query too long");
        goto out;
    }
    struct query_run qr = {q, fn, user, 0};
    st = ix->be->select(ix->impl, (const char *)b.sql.data, b.params, b.n, on_query_row, &qr, err);
    if (count != NULL) {
        *count = qr.count;
    }
out:
    rdx_buf_free(&b.sql);
    rdx_buf_free(&pid);
    rdx_buf_free(&pu);
    rdx_buf_free(&pr);
    return st;
}

struct report_run {
    rdx_buf *out;
    size_t n;
    rdx_status st;
};

static int on_report(void *user, int ncol, const char *const *v)
{
    struct report_run *rr = user;
    if (rr->n > 0) {
        rr->st = rdx_buf_append_str(rr->out, "\n");
    }
    if (rr->st == RDX_OK) {
        rr->st = rdx_buf_append_str(rr->out, txt(v, ncol, 0));
    }
    rr->n++;
    return rr->st != RDX_OK;
}

rdx_status rdx_img_index_report_text(rdx_img_index *ix, const char *study_uid, rdx_buf *out,
                                     rdx_error *err)
{
    if (ix == NULL || study_uid == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_report_text: NULL argument");
    }
    const char *params[1] = {study_uid};
    struct report_run rr = {out, 0, RDX_OK};
    RDX_TRY(
        ix->be->select(ix->impl,
                       "SELECT r.text FROM report_links rl JOIN reports r ON rl.report_ref = r.id"
                       " LEFT JOIN instances i ON r.instance_ref = i.id WHERE rl.study_uid = ?1"
                       " ORDER BY r.content_date, r.content_time, coalesce(i.sop_uid, r.source)",
                       params, 1, on_report, &rr, err));
    if (rr.st != RDX_OK) {
        return rdx_error_set(err, rr.st, "report for study %s: %s", study_uid, rdx_strerror(rr.st));
    }
    if (rr.n == 0) {
        return rdx_error_set(err, RDX_ENOTFOUND, "study %s has no report in the index", study_uid);
    }
    return RDX_OK;
}

/* ---- Prune --------------------------------------------------------------------- */

struct prune_list {
    char **paths;
    size_t n, cap;
    int oom;
};

static int on_prune_row(void *user, int ncol, const char *const *v)
{
    struct prune_list *l = user;
    struct stat sb;
    if (ncol < 1 || v[0] == NULL || stat(v[0], &sb) == 0) {
        return 0;
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        char **np = rdx_reallocarray(l->paths, nc, sizeof *np);
        if (np == NULL) {
            l->oom = 1;
            return 1;
        }
        l->paths = np;
        l->cap = nc;
    }
    l->paths[l->n] = rdx_strndup(v[0], strlen(v[0]));
    if (l->paths[l->n] == NULL) {
        l->oom = 1;
        return 1;
    }
    l->n++;
    return 0;
}

rdx_status rdx_img_index_prune(rdx_img_index *ix, const char *path, rdx_img_index_stats *stats,
                               rdx_error *err)
{
    if (ix == NULL || path == NULL || stats == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_prune: NULL argument");
    }
    char *abs = realpath(path, NULL);
    if (abs == NULL) {
        return rdx_error_set(err, RDX_ENOENT, "%s: cannot prune: no such file or folder", path);
    }
    /* The file itself and everything below it: [abs, abs] and [abs/, abs0) in byte order. */
    size_t n = strlen(abs);
    char *lo = malloc(n + 2), *hi = malloc(n + 2);
    struct prune_list l = {0};
    rdx_status st = RDX_OK;
    if (lo == NULL || hi == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(lo, abs, n);
    memcpy(hi, abs, n);
    lo[n] = '/';
    hi[n] = '0'; /* the byte after '/' */
    lo[n + 1] = hi[n + 1] = '\0';
    const char *params[3] = {abs, lo, hi};
    st = ix->be->select(ix->impl,
                        "SELECT path FROM instances WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                        params, 3, on_prune_row, &l, err);
    if (st == RDX_OK && l.oom) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    if (st != RDX_OK) {
        goto out;
    }
    if ((st = ix->be->begin(ix->impl, err)) != RDX_OK) {
        goto out;
    }
    for (size_t i = 0; i < l.n && st == RDX_OK; i++) {
        const char *p1[1] = {l.paths[i]};
        st = ix->be->run(ix->impl, S_DEL_PATH, p1, 1, NULL, 0, NULL, err);
    }
    if (st == RDX_OK) {
        st = ix->be->run(ix->impl, S_GC_SERIES, NULL, 0, NULL, 0, NULL, err);
    }
    if (st == RDX_OK) {
        st = ix->be->run(ix->impl, S_GC_SM, NULL, 0, NULL, 0, NULL, err);
    }
    if (st == RDX_OK) {
        st = ix->be->run(ix->impl, S_GC_STUDIES, NULL, 0, NULL, 0, NULL, err);
    }
    if (st == RDX_OK) {
        st = ix->be->run(ix->impl, S_GC_PATIENTS, NULL, 0, NULL, 0, NULL, err);
    }
    if (st == RDX_OK) {
        st = ix->be->commit(ix->impl, err);
    } else {
        ix->be->rollback(ix->impl);
    }
    if (st == RDX_OK) {
        stats->pruned += l.n;
    }
out:
    for (size_t i = 0; i < l.n; i++) {
        free(l.paths[i]);
    }
    free(l.paths);
    free(lo);
    free(hi);
    free(abs);
    return st;
}

/* ---- Reports from files ------------------------------------------------------- */

/* Decode the HTML character references a report is likely to hold (&amp; &#NN; ...). */
static rdx_status html_entity(const char *p, size_t n, size_t *used, rdx_buf *out)
{
    static const struct {
        const char *name;
        const char *text;
    } named[] = {{"amp;", "&"},   {"lt;", "<"},   {"gt;", ">"},
                 {"quot;", "\""}, {"apos;", "'"}, {"nbsp;", " "}};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        size_t l = strlen(named[k].name);
        if (n >= l && memcmp(p, named[k].name, l) == 0) {
            *used = l;
            return rdx_buf_append_str(out, named[k].text);
        }
    }
    if (n >= 3 && p[0] == '#') {
        size_t i = 1;
        uint32_t cp = 0;
        int hex = p[1] == 'x' || p[1] == 'X';
        i += (size_t)hex;
        size_t start = i;
        while (i < n && i < start + 7) {
            char c = p[i];
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0) {
                break;
            }
            cp = cp * (hex ? 16u : 10u) + (uint32_t)d;
            i++;
        }
        if (i > start && i < n && p[i] == ';' && cp > 0 && cp <= 0x10FFFF &&
            !(cp >= 0xD800 && cp <= 0xDFFF)) {
            uint8_t b[4];
            size_t bl;
            if (cp < 0x80) {
                b[0] = (uint8_t)cp;
                bl = 1;
            } else if (cp < 0x800) {
                b[0] = (uint8_t)(0xC0 | (cp >> 6));
                b[1] = (uint8_t)(0x80 | (cp & 0x3F));
                bl = 2;
            } else if (cp < 0x10000) {
                b[0] = (uint8_t)(0xE0 | (cp >> 12));
                b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                b[2] = (uint8_t)(0x80 | (cp & 0x3F));
                bl = 3;
            } else {
                b[0] = (uint8_t)(0xF0 | (cp >> 18));
                b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
                b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                b[3] = (uint8_t)(0x80 | (cp & 0x3F));
                bl = 4;
            }
            *used = i + 1;
            return rdx_buf_append(out, b, bl);
        }
    }
    *used = 0;
    return rdx_buf_append_u8(out, '&');
}

/*
 * Readable text of an HTML report: tags dropped (block tags become line
 * breaks), script and style bodies dropped, character references decoded,
 * runs of blank lines squeezed.
 */
rdx_status img_html_to_text(const char *p, size_t n, rdx_buf *out)
{
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '<') {
            const char *end = memchr(p + i, '>', n - i);
            size_t tl = end != NULL ? (size_t)(end - (p + i)) + 1 : n - i;
            int closing = tl > 1 && p[i + 1] == '/';
            const char *name = p + i + 1 + closing;
            static const char *const blocks[] = {"p",  "br", "div", "tr",    "li",   "h1",
                                                 "h2", "h3", "h4",  "table", "title"};
            for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
                size_t bl = strlen(blocks[k]);
                if ((size_t)(p + n - name) > bl && strncasecmp(name, blocks[k], bl) == 0 &&
                    (name[bl] == '>' || name[bl] == ' ' || name[bl] == '/')) {
                    if (out->len > 0 && out->data[out->len - 1] != '\n') {
                        RDX_TRY(rdx_buf_append_u8(out, '\n'));
                    }
                    break;
                }
            }
            if (!closing && ((size_t)(p + n - name) > 6 && (strncasecmp(name, "script", 6) == 0 ||
                                                            strncasecmp(name, "style", 5) == 0))) {
                const char *tag = strncasecmp(name, "script", 6) == 0 ? "</script" : "</style";
                size_t tagl = strlen(tag);
                const char *q = p + i + tl;
                while (q + tagl <= p + n && strncasecmp(q, tag, tagl) != 0) {
                    q++;
                }
                if (q + tagl > p + n) {
                    q = p + n; /* unterminated: drop the rest */
                }
                tl = (size_t)(q - (p + i));
            }
            i += tl;
            continue;
        }
        if (c == '&') {
            size_t used = 0;
            RDX_TRY(html_entity(p + i + 1, n - i - 1, &used, out));
            i += 1 + used;
            continue;
        }
        if (c == '\r') {
            i++;
            continue;
        }
        if (c == '\n' && out->len >= 2 && out->data[out->len - 1] == '\n' &&
            out->data[out->len - 2] == '\n') {
            i++;
            continue;
        }
        RDX_TRY(rdx_buf_append_u8(out, (uint8_t)c));
        i++;
    }
    return RDX_OK;
}

/*
 * A report file's bytes as UTF-8: kept as they are when they are UTF-8,
 * else read as GB18030 (which includes GBK and GB2312), the encoding the
 * network's hospital systems write when they do not write UTF-8.
 */
static rdx_status img_text_utf8(const uint8_t *p, size_t n, rdx_buf *out)
{
    if (rdx_img_utf8_valid(p, n)) {
        return rdx_buf_append(out, p, n);
    }
    return rdx_img_charset_decode("GB18030", p, n, "", out);
}

rdx_status rdx_img_index_report_add(rdx_img_index *ix, const char *study_uid, const char *path,
                                    rdx_error *err)
{
    if (ix == NULL || study_uid == NULL || path == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_report_add: NULL argument");
    }
    if (study_uid[0] == '\0' || strlen(study_uid) > 64 ||
        strspn(study_uid, "0123456789.") != strlen(study_uid)) {
        /* PS3.5 9.1: a UID is at most 64 characters of digits and dots. */
        return rdx_error_set(err, RDX_EINVAL, "study UID '%s' is not a DICOM UID", study_uid);
    }
    char *abs = realpath(path, NULL);
    if (abs == NULL) {
        return rdx_error_set(err, RDX_ENOENT, "%s: no such file", path);
    }
    rdx_buf raw, text;
    rdx_buf_init(&raw, RDX_IMG_MAX_REPORT_BYTES);
    rdx_buf_init(&text, RDX_IMG_MAX_REPORT_BYTES);
    rdx_status st = rdx_file_read(abs, &raw, err);
    if (st != RDX_OK) {
        goto out;
    }
    const char *data = raw.data != NULL ? (const char *)raw.data : "";
    if (memchr(data, '\0', raw.len) != NULL) {
        st = rdx_error_set(err, RDX_EFORMAT, "%s: not a text or HTML report (binary data)", path);
        goto out;
    }
    size_t skip = raw.len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* UTF-8 BOM */
    size_t lead = skip;
    while (lead < raw.len && (data[lead] == ' ' || data[lead] == '\n' || data[lead] == '\r')) {
        lead++;
    }
    const char *dot = strrchr(abs, '.');
    int html = (dot != NULL && (strcasecmp(dot, ".html") == 0 || strcasecmp(dot, ".htm") == 0)) ||
               (lead < raw.len && data[lead] == '<');
    rdx_buf clean;
    rdx_buf_init(&clean, RDX_IMG_MAX_REPORT_BYTES);
    st = img_text_utf8((const uint8_t *)data + skip, raw.len - skip, &clean);
    if (st == RDX_OK) {
        st = html ? img_html_to_text(clean.data != NULL ? (const char *)clean.data : "", clean.len,
                                     &text)
                  : rdx_buf_append(&text, clean.data != NULL ? clean.data : (const uint8_t *)"",
                                   clean.len);
    }
    rdx_buf_free(&clean);
    if (st != RDX_OK) {
        st = rdx_error_set(err, st, "%s: %s", path, rdx_strerror(st));
        goto out;
    }
    if (text.len == 0 || text.data[text.len - 1] != '\n') {
        if ((st = rdx_buf_append_u8(&text, '\n')) != RDX_OK) {
            st = rdx_error_set(err, st, "%s: %s", path, rdx_strerror(st));
            goto out;
        }
    }
    const char *title = strrchr(abs, '/') != NULL ? strrchr(abs, '/') + 1 : abs;
    if ((st = ix->be->begin(ix->impl, err)) != RDX_OK) {
        goto out;
    }
    /* Adding the same file again replaces its text: idempotent like indexing. */
    const char *p1[1] = {abs};
    char id[32];
    int got = 0;
    const char *rp[6] = {abs, study_uid, title, "", "", (const char *)text.data};
    st = ix->be->run(ix->impl, S_DEL_ADDED, p1, 1, NULL, 0, NULL, err);
    if (st == RDX_OK) {
        st = ix->be->run(ix->impl, S_ADD_REPORT, rp, 6, id, sizeof id, &got, err);
    }
    if (st == RDX_OK) {
        const char *lp[3] = {id, study_uid, "added"};
        st = ix->be->run(ix->impl, S_LINK, lp, 3, NULL, 0, NULL, err);
    }
    if (st == RDX_OK) {
        st = ix->be->commit(ix->impl, err);
    } else {
        ix->be->rollback(ix->impl);
    }
out:
    rdx_buf_free(&raw);
    rdx_buf_free(&text);
    free(abs);
    return st;
}
