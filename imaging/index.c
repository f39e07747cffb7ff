/*
 * index.c - the indexer: walk files and folders, read each DICOM header
 * through the shim, turn it into an img_record (patient, study, series,
 * instance and, for SR documents, the report text and its links), and write
 * it through the store in batched transactions.
 *
 * SR content trees are walked per PS3.3 C.17.3 (SR Document Content Module):
 * each content item has a Value Type (0040,A040) and a Concept Name
 * (0040,A043); CONTAINERs become headings, TEXT, CODE, NUM (with units),
 * PNAME, DATE, TIME, DATETIME and UIDREF become "concept: value" lines.
 */
#define _XOPEN_SOURCE 700
#include "rdx/imaging.h"

#include "imaging_int.h"
#include "imaging_limits.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define T(g, e) RDX_IMG_TAG(0x##g, 0x##e)

/* Tags the index reads (PS3.6 data dictionary). */
static const uint32_t field_tags[F_NFIELDS] = {
    [F_PATIENT_ID] = T(0010, 0020),   [F_ISSUER] = T(0010, 0021),
    [F_PATIENT_NAME] = T(0010, 0010), [F_BIRTH_DATE] = T(0010, 0030),
    [F_SEX] = T(0010, 0040),          [F_STUDY_UID] = T(0020, 000D),
    [F_STUDY_DATE] = T(0008, 0020),   [F_STUDY_TIME] = T(0008, 0030),
    [F_ACCESSION] = T(0008, 0050),    [F_STUDY_DESC] = T(0008, 1030),
    [F_REFERRING] = T(0008, 0090),    [F_INSTITUTION] = T(0008, 0080),
    [F_STUDY_ID] = T(0020, 0010),     [F_SERIES_UID] = T(0020, 000E),
    [F_MODALITY] = T(0008, 0060),     [F_SERIES_DESC] = T(0008, 103E),
    [F_BODY_PART] = T(0018, 0015),    [F_COMPLETION] = T(0040, A491),
    [F_VERIFICATION] = T(0040, A493), [F_CONTENT_DATE] = T(0008, 0023),
    [F_CONTENT_TIME] = T(0008, 0033),
};

#define TAG_VALUE_TYPE    T(0040, A040)
#define TAG_CONCEPT_NAME  T(0040, A043)
#define TAG_CONTENT_SEQ   T(0040, A730)
#define TAG_CODE_MEANING  T(0008, 0104)
#define TAG_CODE_VALUE    T(0008, 0100)
#define TAG_TEXT_VALUE    T(0040, A160)
#define TAG_CONCEPT_CODE  T(0040, A168)
#define TAG_MEASURED_SEQ  T(0040, A300)
#define TAG_NUMERIC_VALUE T(0040, A30A)
#define TAG_UNITS_SEQ     T(0040, 08EA)
#define TAG_PNAME         T(0040, A123)
#define TAG_DATE          T(0040, A121)
#define TAG_TIME          T(0040, A122)
#define TAG_DATETIME      T(0040, A120)
#define TAG_UIDREF        T(0040, A124)
#define TAG_REF_REQUEST   T(0040, A370)
#define TAG_EVIDENCE      T(0040, A375)
#define TAG_PERTINENT     T(0040, A385)
#define TAG_STUDY_UID     T(0020, 000D)
#define TAG_ROWS          T(0028, 0010)
#define TAG_COLUMNS       T(0028, 0011)
#define TAG_FRAMES        T(0028, 0008)
#define TAG_SERIES_NUMBER T(0020, 0011)
#define TAG_INSTANCE_NUM  T(0020, 0013)
#define TAG_DIR_RECORDS   T(0004, 1220)
#define TAG_REF_CONTENT   T(0040, DB73)
#define TAG_REF_FILE_ID   T(0004, 1500)
#define TAG_DOC_TITLE     T(0042, 0010)
#define TAG_DOC           T(0042, 0011)
#define TAG_MIME          T(0042, 0012)

#define SOP_DICOMDIR "1.2.840.10008.1.3.10"
/* Encapsulated PDF Storage (PS3.4 B.5, PS3.3 A.45.1). */
#define SOP_PDF "1.2.840.10008.5.1.4.1.1.104.1"
/* Every SR Storage SOP Class is under this root (PS3.4 B.5). */
#define SOP_SR_PREFIX "1.2.840.10008.5.1.4.1.1.88."

/* One instance written in the open transaction (see walker.saved). */
struct saved_put {
    struct img_record rec; /* points into arena */
    rdx_buf arena;
    rdx_status st; /* what img_store_put answered */
    char msg[RDX_ERROR_MSG_MAX];
};

/* Per-run working storage, allocated once and reused for every file. */
/* A file waiting for a parallel parse (-j N), and what the parse made of it. */
struct pending {
    char *path;
    struct stat sb;
    rdx_status st; /* RDX_OK: rec is ready to write */
    int failed;    /* for st != RDX_OK: refused (1) or skipped (0) */
    char msg[RDX_ERROR_MSG_MAX];
    struct img_record rec;
    rdx_buf arena, report; /* own rec's strings */
};

struct walker {
    rdx_img_index *ix;
    const rdx_img_index_opts *opts;
    rdx_img_index_stats *stats;
    rdx_buf val;    /* one attribute value */
    rdx_buf arena;  /* the record's strings, NUL-separated */
    rdx_buf report; /* the report's readable text */
    rdx_buf path;
    int in_txn;
    /*
     * The instances of the batch, copied, with what the store answered for
     * each: written together in lock order, written again when PostgreSQL
     * asks for the transaction to be run again (RDX_EBUSY), and counted and
     * reported only once it commits (see write_batch).
     */
    struct saved_put *saved;
    size_t nsaved, cap_saved;
    size_t saved_bytes; /* of the saved records' strings */
    size_t sr_items;
    unsigned jobs; /* > 1: files found in folders are parsed by this many threads */
    struct pending *pend;
    size_t npend;
};

static void report_file(struct walker *w, const char *path, int failed, rdx_status st,
                        const char *reason)
{
    if (failed) {
        w->stats->failed++;
    } else {
        w->stats->skipped++;
    }
    if (w->opts != NULL && w->opts->report != NULL) {
        w->opts->report(w->opts->user, path, failed, st, reason);
    }
}

/* ---- Record extraction ---------------------------------------------------- */

/* Append s + NUL to the arena and return its offset (or SIZE_MAX on failure). */
static size_t arena_add(struct walker *w, const char *s, size_t n)
{
    size_t off = w->arena.len;
    if (rdx_buf_append(&w->arena, s, n) != RDX_OK || rdx_buf_append_u8(&w->arena, 0) != RDX_OK) {
        return SIZE_MAX;
    }
    return off;
}

/* Fetch tag as text into w->val; "" when absent or empty. Only ENOMEM/ELIMIT fail. */
static rdx_status fetch(struct walker *w, const rdx_img_dataset *ds, const rdx_img_item *it,
                        uint32_t tag)
{
    rdx_error e;
    rdx_status st = rdx_img_item_get_text(ds, it, tag, &w->val, &e);
    if (st == RDX_ENOMEM) {
        return st;
    }
    if (st != RDX_OK) {
        rdx_buf_reset(&w->val);
    }
    return RDX_OK;
}

static int64_t get_int(const rdx_img_dataset *ds, const rdx_img_item *it, uint32_t tag)
{
    int64_t v = INT64_MIN;
    if (rdx_img_item_get_i64(ds, it, tag, 0, &v, NULL) != RDX_OK) {
        return INT64_MIN;
    }
    return v;
}

/*
 * Old ACR-NEMA style dates ("1993.04.30", PS3.5 6.2 DA note) are rewritten as
 * YYYYMMDD so that range matching works on every row.
 */
static void normalise_date(char *s)
{
    size_t n = strlen(s);
    if (n == 10 && s[4] == '.' && s[7] == '.') {
        memmove(s + 4, s + 5, 2);
        memmove(s + 6, s + 8, 2);
        s[8] = '\0';
    }
}

static const char *value_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* The text of the first item's Code Meaning in sequence tag of it, into w->val. */
static rdx_status code_meaning(struct walker *w, const rdx_img_dataset *ds, const rdx_img_item *it,
                               uint32_t seq_tag)
{
    const rdx_img_item *code = NULL;
    rdx_buf_reset(&w->val);
    if (rdx_img_item_seq_item(ds, it, seq_tag, 0, &code, NULL) != RDX_OK) {
        return RDX_OK;
    }
    return fetch(w, ds, code, TAG_CODE_MEANING);
}

static rdx_status rep_append(struct walker *w, const char *s)
{
    return rdx_buf_append_str(&w->report, s);
}

static rdx_status rep_indent(struct walker *w, int depth)
{
    for (int i = 0; i < depth; i++) {
        RDX_TRY(rep_append(w, "  "));
    }
    return RDX_OK;
}

/* Walk one level of an SR content tree into w->report. */
static rdx_status sr_walk(struct walker *w, const rdx_img_dataset *ds, const rdx_img_item *it,
                          int depth)
{
    size_t n = 0;
    if (depth > RDX_IMG_MAX_SEQ_DEPTH) {
        return RDX_ELIMIT;
    }
    if (rdx_img_item_seq_count(ds, it, TAG_CONTENT_SEQ, &n, NULL) != RDX_OK) {
        return RDX_OK;
    }
    char vt[32], concept[512];
    for (size_t i = 0; i < n; i++) {
        const rdx_img_item *ci = NULL;
        if (rdx_img_item_seq_item(ds, it, TAG_CONTENT_SEQ, i, &ci, NULL) != RDX_OK) {
            continue;
        }
        if (++w->sr_items > RDX_IMG_MAX_SR_ITEMS) {
            return RDX_ELIMIT;
        }
        RDX_TRY(fetch(w, ds, ci, TAG_VALUE_TYPE));
        snprintf(vt, sizeof vt, "%s", (const char *)w->val.data ? (const char *)w->val.data : "");
        RDX_TRY(code_meaning(w, ds, ci, TAG_CONCEPT_NAME));
        snprintf(concept, sizeof concept, "%s", w->val.len ? (const char *)w->val.data : "");
        RDX_TRY(rep_indent(w, depth));
        if (vt[0] == '\0') {
            /* A by-reference relationship (PS3.3 C.17.3.2.5): name the item it points at. */
            RDX_TRY(fetch(w, ds, ci, TAG_REF_CONTENT));
            for (size_t k = 0; k < w->val.len; k++) {
                if (w->val.data[k] == '\\') {
                    w->val.data[k] = '.';
                }
            }
            RDX_TRY(rdx_buf_printf(&w->report, "(see content item %s)\n",
                                   w->val.len ? (const char *)w->val.data : "?"));
            continue;
        }
        if (strcmp(vt, "CONTAINER") == 0) {
            RDX_TRY(rdx_buf_printf(&w->report, "%s\n", concept[0] ? concept : "(section)"));
            RDX_TRY(sr_walk(w, ds, ci, depth + 1));
            continue;
        }
        if (concept[0] != '\0') {
            RDX_TRY(rdx_buf_printf(&w->report, "%s: ", concept));
        }
        if (strcmp(vt, "TEXT") == 0) {
            RDX_TRY(fetch(w, ds, ci, TAG_TEXT_VALUE));
        } else if (strcmp(vt, "CODE") == 0) {
            RDX_TRY(code_meaning(w, ds, ci, TAG_CONCEPT_CODE));
        } else if (strcmp(vt, "NUM") == 0) {
            const rdx_img_item *mv = NULL;
            rdx_buf_reset(&w->val);
            if (rdx_img_item_seq_item(ds, ci, TAG_MEASURED_SEQ, 0, &mv, NULL) == RDX_OK) {
                RDX_TRY(fetch(w, ds, mv, TAG_NUMERIC_VALUE));
                RDX_TRY(rdx_buf_append(&w->report, w->val.data ? w->val.data : (uint8_t *)"",
                                       w->val.len));
                const rdx_img_item *u = NULL;
                rdx_buf_reset(&w->val);
                if (rdx_img_item_seq_item(ds, mv, TAG_UNITS_SEQ, 0, &u, NULL) == RDX_OK) {
                    /* UCUM code value ("mm") reads better than its meaning ("millimeter"). */
                    RDX_TRY(fetch(w, ds, u, TAG_CODE_VALUE));
                    if (w->val.len > 0) {
                        RDX_TRY(rep_append(w, " "));
                    }
                }
            }
        } else if (strcmp(vt, "PNAME") == 0) {
            RDX_TRY(fetch(w, ds, ci, TAG_PNAME));
        } else if (strcmp(vt, "DATE") == 0) {
            RDX_TRY(fetch(w, ds, ci, TAG_DATE));
        } else if (strcmp(vt, "TIME") == 0) {
            RDX_TRY(fetch(w, ds, ci, TAG_TIME));
        } else if (strcmp(vt, "DATETIME") == 0) {
            RDX_TRY(fetch(w, ds, ci, TAG_DATETIME));
        } else if (strcmp(vt, "UIDREF") == 0) {
            RDX_TRY(fetch(w, ds, ci, TAG_UIDREF));
        } else {
            /* IMAGE, COMPOSITE, WAVEFORM, SCOORD, TCOORD: references, named only. */
            rdx_buf_reset(&w->val);
            RDX_TRY(rdx_buf_printf(&w->report, "[%s]", vt));
        }
        if (w->val.len > 0) {
            RDX_TRY(rdx_buf_append(&w->report, w->val.data, w->val.len));
        }
        RDX_TRY(rep_append(w, "\n"));
        /* Content items may have children (HAS PROPERTIES, INFERRED FROM ...). */
        RDX_TRY(sr_walk(w, ds, ci, depth + 1));
    }
    return RDX_OK;
}

/* Study Instance UIDs in the items of sequence seq_tag become links (how). */
static rdx_status sr_links(struct walker *w, const rdx_img_dataset *ds, uint32_t seq_tag,
                           const char *how, size_t *offs, const char **hows, size_t *nlinks)
{
    size_t n = 0;
    if (rdx_img_item_seq_count(ds, NULL, seq_tag, &n, NULL) != RDX_OK) {
        return RDX_OK;
    }
    for (size_t i = 0; i < n && *nlinks < IMG_MAX_LINKS; i++) {
        const rdx_img_item *it = NULL;
        if (rdx_img_item_seq_item(ds, NULL, seq_tag, i, &it, NULL) != RDX_OK) {
            continue;
        }
        RDX_TRY(fetch(w, ds, it, TAG_STUDY_UID));
        if (w->val.len == 0) {
            continue;
        }
        size_t off = arena_add(w, (const char *)w->val.data, w->val.len);
        if (off == SIZE_MAX) {
            return RDX_ENOMEM;
        }
        offs[*nlinks] = off;
        hows[*nlinks] = how;
        (*nlinks)++;
    }
    return RDX_OK;
}

/* Split a PN value into its three component groups (PS3.5 6.2.1). */
static void split_pn(const char *pn, size_t n, size_t *start, size_t *len)
{
    size_t g = 0, s = 0;
    for (size_t i = 0; i <= n && g < 3; i++) {
        if (i == n || pn[i] == '=') {
            start[g] = s;
            len[g] = i - s;
            g++;
            s = i + 1;
        }
    }
    for (; g < 3; g++) {
        start[g] = n;
        len[g] = 0;
    }
}

static rdx_status build_record(struct walker *w, const rdx_img_dataset *ds, const char *path,
                               const struct stat *sb, struct img_record *rec, rdx_error *err)
{
    size_t offs[F_NFIELDS];
    size_t link_offs[IMG_MAX_LINKS];
    memset(rec, 0, sizeof *rec);
    rdx_buf_reset(&w->arena);
    rdx_buf_reset(&w->report);
    for (int f = 0; f < F_NFIELDS; f++) {
        offs[f] = SIZE_MAX;
    }
    for (int f = 0; f < F_NFIELDS; f++) {
        if (field_tags[f] == 0) {
            continue;
        }
        rdx_status st = fetch(w, ds, NULL, field_tags[f]);
        if (st != RDX_OK) {
            return rdx_error_set(err, st, "%s: %s", path, rdx_strerror(st));
        }
        offs[f] = arena_add(w, w->val.data ? (const char *)w->val.data : "", w->val.len);
        if (f == F_PATIENT_NAME && offs[f] != SIZE_MAX) {
            size_t gs[3], gl[3];
            /* The arena may move while we add to it, so copy the groups out first. */
            char pn[3 * 1024];
            size_t pl = w->val.len < sizeof pn ? w->val.len : sizeof pn - 1;
            memcpy(pn, w->val.data ? (const char *)w->val.data : "", pl);
            split_pn(pn, pl, gs, gl);
            offs[F_NAME_ALPHA] = arena_add(w, pn + gs[0], gl[0]);
            offs[F_NAME_IDEO] = arena_add(w, pn + gs[1], gl[1]);
            offs[F_NAME_PHON] = arena_add(w, pn + gs[2], gl[2]);
        }
    }
    const char *sop_uid = rdx_img_dataset_sop_instance(ds);
    offs[F_SOP_UID] = arena_add(w, sop_uid, strlen(sop_uid));
    const char *sop_class = rdx_img_dataset_sop_class(ds);
    offs[F_SOP_CLASS] = arena_add(w, sop_class, strlen(sop_class));
    const char *xfer = rdx_img_dataset_transfer_syntax(ds);
    offs[F_XFER] = arena_add(w, xfer, strlen(xfer));
    offs[F_PATH] = arena_add(w, path, strlen(path));

    int is_sr = strncmp(sop_class, SOP_SR_PREFIX, strlen(SOP_SR_PREFIX)) == 0;
    int is_pdf = strcmp(sop_class, SOP_PDF) == 0;
    rec->is_report = is_sr || is_pdf;
    const char *hows[IMG_MAX_LINKS];
    size_t nlinks = 0;
    if (is_pdf) {
        /* The PDF stays in the file; the index keeps its title and where it is. */
        rdx_status st = fetch(w, ds, NULL, TAG_DOC_TITLE);
        if (st == RDX_OK) {
            offs[F_REPORT_TITLE] =
                arena_add(w, w->val.data ? (const char *)w->val.data : "", w->val.len);
            uint32_t bytes = 0;
            size_t ne = rdx_img_item_elem_count(ds, NULL);
            for (size_t i = 0; i < ne; i++) {
                rdx_img_elem e;
                if (rdx_img_item_elem(ds, NULL, i, &e) == RDX_OK && e.tag == TAG_DOC) {
                    bytes = e.length;
                }
            }
            st = rdx_buf_printf(&w->report, "Encapsulated PDF document: %s (%lu bytes) in %s\n",
                                w->val.len ? (const char *)w->val.data : "untitled",
                                (unsigned long)bytes, path);
        }
        if (st == RDX_OK) {
            st = sr_links(w, ds, TAG_REF_REQUEST, "request", link_offs, hows, &nlinks);
        }
        if (st != RDX_OK) {
            return rdx_error_set(err, st, "%s: %s", path, rdx_strerror(st));
        }
    }
    if (is_sr) {
        w->sr_items = 0;
        rdx_status st = code_meaning(w, ds, NULL, TAG_CONCEPT_NAME);
        if (st == RDX_OK) {
            offs[F_REPORT_TITLE] =
                arena_add(w, w->val.data ? (const char *)w->val.data : "", w->val.len);
            if (w->val.len > 0) {
                st = rdx_buf_printf(&w->report, "%s\n", (const char *)w->val.data);
            }
        }
        if (st == RDX_OK) {
            st = sr_walk(w, ds, NULL, 1);
        }
        if (st == RDX_OK) {
            st = sr_links(w, ds, TAG_REF_REQUEST, "request", link_offs, hows, &nlinks);
        }
        if (st == RDX_OK) {
            st = sr_links(w, ds, TAG_EVIDENCE, "evidence", link_offs, hows, &nlinks);
        }
        if (st == RDX_OK) {
            st = sr_links(w, ds, TAG_PERTINENT, "evidence", link_offs, hows, &nlinks);
        }
        if (st != RDX_OK) {
            return rdx_error_set(err, st, "%s: SR content tree: %s", path,
                                 st == RDX_ELIMIT ? "deeper or larger than the caps"
                                                  : rdx_strerror(st));
        }
    }
    for (int f = 0; f < F_NFIELDS; f++) {
        if (offs[f] == SIZE_MAX && f != F_REPORT_TITLE) {
            if (field_tags[f] != 0 || f == F_SOP_UID || f == F_PATH) {
                return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
            }
        }
    }
    /* Resolve the offsets only now: the arena has stopped moving. */
    const char *base = (const char *)w->arena.data;
    for (int f = 0; f < F_NFIELDS; f++) {
        rec->f[f] = offs[f] == SIZE_MAX ? "" : base + offs[f];
    }
    normalise_date((char *)rec->f[F_STUDY_DATE]);
    normalise_date((char *)rec->f[F_BIRTH_DATE]);
    for (size_t i = 0; i < nlinks; i++) {
        rec->link_uid[i] = base + link_offs[i];
        rec->link_how[i] = hows[i];
    }
    rec->nlinks = nlinks;
    rec->report_text = rec->is_report ? (w->report.data ? (const char *)w->report.data : "") : NULL;
    rec->series_number = get_int(ds, NULL, TAG_SERIES_NUMBER);
    rec->instance_number = get_int(ds, NULL, TAG_INSTANCE_NUM);
    rec->rows = get_int(ds, NULL, TAG_ROWS);
    rec->columns = get_int(ds, NULL, TAG_COLUMNS);
    rec->frames = get_int(ds, NULL, TAG_FRAMES);
    if (rec->frames == INT64_MIN && rdx_img_dataset_has_pixel_data(ds)) {
        rec->frames = 1;
    }
    rec->size = (int64_t)sb->st_size;
    rec->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;

    /* PS3.3 C.7.2.1, C.7.3.1, C.12.1: these UIDs are Type 1; without them there is no place. */
    static const struct {
        int f;
        const char *what;
    } required[] = {{F_STUDY_UID, "Study Instance UID (0020,000D)"},
                    {F_SERIES_UID, "Series Instance UID (0020,000E)"},
                    {F_SOP_UID, "SOP Instance UID (0008,0018)"}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (value_or_empty(rec->f[required[i].f])[0] == '\0') {
            return rdx_error_set(err, RDX_EFORMAT, "%s: not indexable: no %s", path,
                                 required[i].what);
        }
    }
    return RDX_OK;
}

/* ---- The walk ------------------------------------------------------------- */

/* ---- Transactions: batches, their replay, and what they count --------------- */

/* Copy rec into slot s, its strings into s's own arena (reused from batch to batch). */
static rdx_status save_record(struct saved_put *s, const struct img_record *rec)
{
    rdx_buf_reset(&s->arena);
    size_t off[F_NFIELDS], text_off = SIZE_MAX, uid_off[IMG_MAX_LINKS], how_off[IMG_MAX_LINKS];
    const char *src;
#define SAVE(str, dst)                                                                             \
    do {                                                                                           \
        src = (str);                                                                               \
        (dst) = SIZE_MAX;                                                                          \
        if (src != NULL) {                                                                         \
            (dst) = s->arena.len;                                                                  \
            RDX_TRY(rdx_buf_append(&s->arena, src, strlen(src) + 1));                              \
        }                                                                                          \
    } while (0)
    for (int i = 0; i < F_NFIELDS; i++) {
        SAVE(rec->f[i], off[i]);
    }
    SAVE(rec->report_text, text_off);
    for (size_t i = 0; i < rec->nlinks && i < IMG_MAX_LINKS; i++) {
        SAVE(rec->link_uid[i], uid_off[i]);
        SAVE(rec->link_how[i], how_off[i]);
    }
#undef SAVE
    s->rec = *rec;
    const char *base = (const char *)s->arena.data;
    for (int i = 0; i < F_NFIELDS; i++) {
        s->rec.f[i] = off[i] == SIZE_MAX ? NULL : base + off[i];
    }
    s->rec.report_text = text_off == SIZE_MAX ? NULL : base + text_off;
    for (size_t i = 0; i < rec->nlinks && i < IMG_MAX_LINKS; i++) {
        s->rec.link_uid[i] = uid_off[i] == SIZE_MAX ? NULL : base + uid_off[i];
        s->rec.link_how[i] = how_off[i] == SIZE_MAX ? NULL : base + how_off[i];
    }
    s->st = RDX_OK;
    s->msg[0] = '\0';
    return RDX_OK;
}

static void saved_free(struct walker *w)
{
    for (size_t i = 0; i < w->cap_saved; i++) {
        rdx_buf_free(&w->saved[i].arena);
    }
    free(w->saved);
    w->saved = NULL;
    w->nsaved = w->cap_saved = 0;
}

/* The store's patient key (index_store.c): Patient ID with issuer, else the name. */
static void patient_key(const struct img_record *r, char *out, size_t n)
{
    const char *id = value_or_empty(r->f[F_PATIENT_ID]);
    if (id[0] != '\0') {
        snprintf(out, n, "I\x1f%s\x1f%s", id, value_or_empty(r->f[F_ISSUER]));
    } else {
        snprintf(out, n, "N\x1f%s", value_or_empty(r->f[F_PATIENT_NAME]));
    }
}

/* FNV-1a, 64-bit, of a kind byte and a string: the advisory lock key of one row. */
static int64_t row_key(uint8_t kind, const char *s)
{
    uint64_t h = 14695981039346656037ull;
    h = (h ^ kind) * 1099511628211ull;
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        h = (h ^ *c) * 1099511628211ull;
    }
    return (int64_t)h;
}

static int cmp_key(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The keys of the patient, study and series rows the batch writes, sorted
 * and without repeats, into keys (3 per instance at most); returns how many.
 */
static size_t batch_keys(const struct walker *w, int64_t *keys)
{
    size_t n = 0;
    char pk[600];
    for (size_t i = 0; i < w->nsaved; i++) {
        const struct img_record *r = &w->saved[i].rec;
        patient_key(r, pk, sizeof pk);
        keys[n++] = row_key('P', pk);
        keys[n++] = row_key('S', value_or_empty(r->f[F_STUDY_UID]));
        keys[n++] = row_key('R', value_or_empty(r->f[F_SERIES_UID]));
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || keys[u - 1] != keys[i]) {
            keys[u++] = keys[i];
        }
    }
    return u;
}

/*
 * Write the saved batch in one transaction, in walk order (the duplicate
 * policy depends on it), after locking the keys of every patient, study and
 * series row it writes in one global order (img_store_lock_keys: advisory
 * locks on PostgreSQL): two indexers whose batches share a study take turns
 * instead of deadlocking on its rows and the counts their triggers keep.
 * When PostgreSQL still rolls it back (a deadlock with another indexer, a serialization failure,
 * a row another indexer wrote or removed under us: RDX_EBUSY), roll back,
 * wait a little (longer each time, with jitter so that two indexers do not
 * meet again in step) and write the whole batch again, up to
 * RDX_IMG_TXN_RETRIES times. Only then is the batch counted and reported,
 * in walk order, so a replay neither loses nor repeats anything.
 */
static rdx_status write_batch(struct walker *w, rdx_error *err)
{
    if (w->nsaved == 0) {
        return RDX_OK;
    }
    int64_t *keys = rdx_mallocarray(w->nsaved, 3 * sizeof *keys);
    const struct img_record **recs = rdx_mallocarray(w->nsaved, sizeof *recs);
    rdx_status *sts = rdx_mallocarray(w->nsaved, sizeof *sts);
    char **msgs = rdx_mallocarray(w->nsaved, sizeof *msgs);
    if (keys == NULL || recs == NULL || sts == NULL || msgs == NULL) {
        free(keys);
        free(recs);
        free(sts);
        free(msgs);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < w->nsaved; i++) {
        recs[i] = &w->saved[i].rec;
        msgs[i] = w->saved[i].msg;
    }
    size_t nkeys = batch_keys(w, keys);
    rdx_status st;
    rdx_error last;
    rdx_error_clear(&last);
    for (unsigned attempt = 0;; attempt++) {
        if (attempt > 0) {
            img_store_rollback(w->ix);
            w->stats->retried++;
            if (attempt > RDX_IMG_TXN_RETRIES) {
                st = rdx_error_set(err, RDX_EDB, "%s (the transaction was retried %u times)",
                                   last.msg, RDX_IMG_TXN_RETRIES);
                break;
            }
            uint64_t jitter = rdx_clock_mono_ns() % 10000000u;
            uint64_t ns = (uint64_t)attempt * attempt * 10000000u + jitter;
            struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
            nanosleep(&ts, NULL);
        }
        if ((st = img_store_begin(w->ix, &last)) != RDX_OK) {
            st = rdx_error_set(err, st, "%s", last.msg);
            break;
        }
        w->in_txn = 1;
        st = img_store_lock_keys(w->ix, keys, nkeys, &last);
        if (st == RDX_OK) {
            st = img_store_put_batch(w->ix, recs, w->nsaved, sts, msgs, &last);
        }
        if (st == RDX_OK) {
            st = img_store_commit(w->ix, &last);
        }
        if (st == RDX_OK) {
            w->in_txn = 0;
            break;
        }
        if (st != RDX_EBUSY) {
            st = rdx_error_set(err, st, "%s", last.msg);
            break;
        }
    }
    for (size_t i = 0; st == RDX_OK && i < w->nsaved; i++) {
        w->saved[i].st = sts[i];
    }
    free(keys);
    free(recs);
    free(sts);
    free(msgs);
    if (st != RDX_OK) {
        if (w->in_txn) {
            img_store_rollback(w->ix);
        }
        w->in_txn = 0;
        w->nsaved = 0;
        w->saved_bytes = 0;
        return st;
    }
    for (size_t i = 0; i < w->nsaved; i++) {
        const struct saved_put *s = &w->saved[i];
        if (s->st == RDX_OK) {
            w->stats->indexed++;
            if (s->rec.is_report) {
                w->stats->reports++;
            }
        } else {
            /* Duplicates and files without the UIDs an index needs are skipped, not malformed. */
            report_file(w, s->rec.f[F_PATH], s->st != RDX_EFORMAT && s->st != RDX_EDUPLICATE, s->st,
                        s->msg);
        }
    }
    w->nsaved = 0;
    w->saved_bytes = 0;
    return RDX_OK;
}

/*
 * Queue one instance for the batch, written every RDX_IMG_BATCH instances
 * (or RDX_IMG_BATCH_BYTES of records) and at the end of the run. Only
 * store failures are returned; a refused instance is reported when its
 * batch commits.
 */
static rdx_status put_record(struct walker *w, const struct img_record *rec, rdx_error *err)
{
    if (w->nsaved == w->cap_saved) {
        size_t ncap = w->cap_saved == 0 ? 64 : w->cap_saved * 2;
        struct saved_put *ns = rdx_reallocarray(w->saved, ncap, sizeof *ns);
        if (ns == NULL) {
            return rdx_error_set(err, RDX_ENOMEM, "out of memory");
        }
        for (size_t i = w->cap_saved; i < ncap; i++) {
            memset(&ns[i], 0, sizeof ns[i]);
            rdx_buf_init(&ns[i].arena, 4 * RDX_IMG_MAX_TEXT_BYTES + 2 * RDX_IMG_MAX_REPORT_BYTES);
        }
        w->saved = ns;
        w->cap_saved = ncap;
    }
    struct saved_put *s = &w->saved[w->nsaved];
    if (save_record(s, rec) != RDX_OK) {
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", rec->f[F_PATH]);
    }
    w->nsaved++;
    w->saved_bytes += s->arena.len;
    if (w->nsaved >= RDX_IMG_BATCH || w->saved_bytes >= RDX_IMG_BATCH_BYTES) {
        return write_batch(w, err);
    }
    return RDX_OK;
}

/* Index one regular file; only store failures are returned (bad files are reported). */
static rdx_status index_file(struct walker *w, const char *path, const struct stat *sb, int depth,
                             rdx_error *err);

/*
 * Index the files a DICOMDIR lists (PS3.10 8.6, PS3.3 F.3): each directory
 * record's Referenced File ID (0004,1500) is a path relative to the
 * DICOMDIR's folder, its components separated by '\'. Components are
 * checked so that a hostile DICOMDIR cannot point outside its folder.
 */
static rdx_status index_dicomdir(struct walker *w, const rdx_img_dataset *ds, const char *path,
                                 rdx_error *err)
{
    size_t nrec = 0, listed = 0, missing = 0;
    (void)rdx_img_item_seq_count(ds, NULL, TAG_DIR_RECORDS, &nrec, NULL);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash != NULL ? (size_t)(slash - path) : 0;
    rdx_buf ref, file;
    rdx_buf_init(&ref, RDX_IMG_MAX_PATH);
    rdx_buf_init(&file, RDX_IMG_MAX_PATH);
    rdx_status st = RDX_OK;
    for (size_t i = 0; i < nrec && st == RDX_OK; i++) {
        const rdx_img_item *rec = NULL;
        if (rdx_img_item_seq_item(ds, NULL, TAG_DIR_RECORDS, i, &rec, NULL) != RDX_OK ||
            rdx_img_item_get_text(ds, rec, TAG_REF_FILE_ID, &ref, NULL) != RDX_OK || ref.len == 0) {
            continue;
        }
        listed++;
        rdx_buf_reset(&file);
        int bad = rdx_buf_append(&file, path, dirlen) != RDX_OK;
        const char *p = (const char *)ref.data;
        while (!bad && *p != '\0') {
            const char *bs = strchr(p, '\\');
            size_t l = bs != NULL ? (size_t)(bs - p) : strlen(p);
            /* PS3.10 8.5: components are 1-8 of A-Z, 0-9 and '_'; refuse anything else. */
            bad = l == 0 || l > 8;
            for (size_t k = 0; k < l && !bad; k++) {
                char c = p[k];
                bad = !((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
            }
            bad = bad || rdx_buf_append_u8(&file, '/') != RDX_OK ||
                  rdx_buf_append(&file, p, l) != RDX_OK;
            p = bs != NULL ? bs + 1 : p + l;
        }
        struct stat sb;
        if (bad) {
            char msg[RDX_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "%s: record %zu: Referenced File ID '%s' is not a valid file ID", path, i,
                     (const char *)ref.data);
            report_file(w, path, 1, RDX_EPARSE, msg);
            continue;
        }
        if (stat((const char *)file.data, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            missing++;
            continue;
        }
        st = index_file(w, (const char *)file.data, &sb, 1, err);
    }
    if (st == RDX_OK && missing > 0) {
        char msg[RDX_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s: DICOMDIR lists %zu files, %zu of them are missing", path,
                 listed, missing);
        report_file(w, path, 0, RDX_ENOENT, msg);
    }
    rdx_buf_free(&ref);
    rdx_buf_free(&file);
    return st;
}

static rdx_status index_file(struct walker *w, const char *path, const struct stat *sb, int depth,
                             rdx_error *err)
{
    w->stats->files_seen++;
    if (w->opts != NULL && w->opts->progress != NULL && w->stats->files_seen % 256 == 0) {
        w->opts->progress(w->opts->user, w->stats);
    }
    int64_t mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
    int same = 0;
    RDX_TRY(img_store_unchanged(w->ix, path, (int64_t)sb->st_size, mtime_ns, &same, err));
    if (same) {
        w->stats->unchanged++;
        return RDX_OK;
    }
    rdx_img_dataset *ds = NULL;
    rdx_error fe;
    rdx_error_clear(&fe);
    rdx_status st = rdx_img_dataset_open_file(path, &ds, &fe);
    if (st == RDX_ENOMEM) {
        return rdx_error_set(err, st, "%s", fe.msg);
    }
    if (st == RDX_EFORMAT) {
        report_file(w, path, 0, st, fe.msg);
        return RDX_OK;
    }
    if (st != RDX_OK) {
        report_file(w, path, 1, st, fe.msg);
        return RDX_OK;
    }
    if (strcmp(rdx_img_dataset_sop_class(ds), SOP_DICOMDIR) == 0) {
        /*
         * Given by itself, a DICOMDIR is read for the files it lists; met in
         * a folder walk it is skipped, since the walk reaches those files.
         */
        rdx_status st = depth == 0 ? index_dicomdir(w, ds, path, err) : RDX_OK;
        size_t nrec = 0;
        (void)rdx_img_item_seq_count(ds, NULL, TAG_DIR_RECORDS, &nrec, NULL);
        rdx_img_dataset_free(ds);
        if (depth != 0) {
            char msg[RDX_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "%s: DICOMDIR media directory (%zu records): not an instance; the files it "
                     "lists are indexed when the walk reaches them",
                     path, nrec);
            report_file(w, path, 0, RDX_EFORMAT, msg);
        }
        return st;
    }
    struct img_record rec;
    st = build_record(w, ds, path, sb, &rec, &fe);
    if (st == RDX_OK) {
        st = put_record(w, &rec, err);
        rdx_img_dataset_free(ds);
        return st;
    }
    rdx_img_dataset_free(ds);
    if (st == RDX_ENOMEM) {
        return rdx_error_set(err, st, "%s", fe.msg);
    }
    /* Files without the UIDs an index needs are skipped, not malformed. */
    report_file(w, path, st != RDX_EFORMAT && st != RDX_EDUPLICATE, st, fe.msg);
    return RDX_OK;
}

/* ---- Parallel parsing (-j N) ------------------------------------------------ */

#define PEND_CHUNK 256

struct par_ctx {
    struct pending *pend;
    size_t n;
    size_t next;
    pthread_mutex_t lock;
};

static void walker_bufs_init(struct walker *w)
{
    rdx_buf_init(&w->val, RDX_IMG_MAX_TEXT_BYTES);
    rdx_buf_init(&w->arena, 4 * RDX_IMG_MAX_TEXT_BYTES + RDX_IMG_MAX_REPORT_BYTES);
    rdx_buf_init(&w->report, RDX_IMG_MAX_REPORT_BYTES);
}

static void walker_bufs_free(struct walker *w)
{
    rdx_buf_free(&w->val);
    rdx_buf_free(&w->arena);
    rdx_buf_free(&w->report);
}

/* Parse one pending file into its own record; nothing touches the store. */
static void parse_pending(struct walker *w, struct pending *pd)
{
    rdx_img_dataset *ds = NULL;
    rdx_error fe;
    rdx_error_clear(&fe);
    pd->st = rdx_img_dataset_open_file(pd->path, &ds, &fe);
    if (pd->st == RDX_OK && strcmp(rdx_img_dataset_sop_class(ds), SOP_DICOMDIR) == 0) {
        size_t nrec = 0;
        (void)rdx_img_item_seq_count(ds, NULL, TAG_DIR_RECORDS, &nrec, NULL);
        pd->st = rdx_error_set(&fe, RDX_EFORMAT,
                               "%s: DICOMDIR media directory (%zu records): not an instance; the "
                               "files it lists are indexed when the walk reaches them",
                               pd->path, nrec);
    } else if (pd->st == RDX_OK) {
        pd->st = build_record(w, ds, pd->path, &pd->sb, &pd->rec, &fe);
        if (pd->st == RDX_OK) {
            /* Hand the buffers the record points into over to the pending entry. */
            pd->arena = w->arena;
            pd->report = w->report;
            rdx_buf_init(&w->arena, w->arena.max);
            rdx_buf_init(&w->report, w->report.max);
        }
    }
    rdx_img_dataset_free(ds);
    pd->failed = pd->st != RDX_OK && pd->st != RDX_EFORMAT && pd->st != RDX_EDUPLICATE;
    snprintf(pd->msg, sizeof pd->msg, "%s", fe.msg);
}

static void *par_worker(void *arg)
{
    struct par_ctx *c = arg;
    struct walker w;
    memset(&w, 0, sizeof w);
    walker_bufs_init(&w);
    for (;;) {
        pthread_mutex_lock(&c->lock);
        size_t i = c->next++;
        pthread_mutex_unlock(&c->lock);
        if (i >= c->n) {
            break;
        }
        parse_pending(&w, &c->pend[i]);
    }
    walker_bufs_free(&w);
    return NULL;
}

/* Write one parsed file through the store (main thread, in walk order). */
static rdx_status commit_pending(struct walker *w, struct pending *pd, rdx_error *err)
{
    rdx_error fe;
    rdx_error_clear(&fe);
    rdx_status st = pd->st;
    if (st == RDX_ENOMEM) {
        return rdx_error_set(err, st, "%s", pd->msg);
    }
    if (st == RDX_OK) {
        return put_record(w, &pd->rec, err);
    }
    report_file(w, pd->path, pd->failed, st, pd->msg);
    return RDX_OK;
}

/* Parse the queued files with w->jobs threads, then write them in order. */
static rdx_status flush_pending(struct walker *w, rdx_error *err)
{
    rdx_status st = RDX_OK;
    size_t n = 0, i;
    /* The unchanged check reads the store: main thread, before the parse. */
    for (i = 0; i < w->npend && st == RDX_OK; i++) {
        struct pending *pd = &w->pend[i];
        w->stats->files_seen++;
        if (w->opts != NULL && w->opts->progress != NULL && w->stats->files_seen % 256 == 0) {
            w->opts->progress(w->opts->user, w->stats);
        }
        int same = 0;
        int64_t mt = (int64_t)pd->sb.st_mtim.tv_sec * 1000000000 + pd->sb.st_mtim.tv_nsec;
        st = img_store_unchanged(w->ix, pd->path, (int64_t)pd->sb.st_size, mt, &same, err);
        if (same) {
            w->stats->unchanged++;
            free(pd->path);
            pd->path = NULL;
            continue;
        }
        w->pend[n++] = *pd;
    }
    for (; i < w->npend; i++) {
        free(w->pend[i].path); /* not reached after a store error */
    }
    if (st == RDX_OK && n > 0) {
        struct par_ctx c = {.pend = w->pend, .n = n, .next = 0};
        pthread_mutex_init(&c.lock, NULL);
        pthread_t th[RDX_IMG_MAX_JOBS];
        unsigned nt = w->jobs < n ? w->jobs : (unsigned)n, started = 0;
        for (unsigned t = 0; t < nt; t++) {
            if (pthread_create(&th[t], NULL, par_worker, &c) == 0) {
                started++;
            }
        }
        if (started == 0) {
            par_worker(&c); /* no threads to be had: parse here */
        }
        for (unsigned t = 0; t < started; t++) {
            pthread_join(th[t], NULL);
        }
        pthread_mutex_destroy(&c.lock);
    }
    for (size_t i = 0; i < n; i++) {
        struct pending *pd = &w->pend[i];
        if (st == RDX_OK) {
            st = commit_pending(w, pd, err);
        }
        rdx_buf_free(&pd->arena);
        rdx_buf_free(&pd->report);
        free(pd->path);
    }
    w->npend = 0;
    return st;
}

static rdx_status queue_file(struct walker *w, const char *path, const struct stat *sb,
                             rdx_error *err)
{
    struct pending *pd = &w->pend[w->npend];
    memset(pd, 0, sizeof *pd);
    pd->path = rdx_strndup(path, strlen(path));
    if (pd->path == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    pd->sb = *sb;
    if (++w->npend == PEND_CHUNK) {
        return flush_pending(w, err);
    }
    return RDX_OK;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static rdx_status walk(struct walker *w, int depth, rdx_error *err);

/* Walk the folder whose path is in w->path (sorted, so runs are reproducible). */
static rdx_status walk_dir(struct walker *w, int depth, rdx_error *err)
{
    char *dpath = rdx_strndup((const char *)w->path.data, w->path.len);
    if (dpath == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    DIR *d = opendir(dpath);
    if (d == NULL) {
        int e = errno;
        char msg[RDX_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s: cannot open folder: %s", dpath, strerror(e));
        report_file(w, dpath, 1, RDX_EIO, msg);
        free(dpath);
        return RDX_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    rdx_status st = RDX_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = rdx_reallocarray(names, nc, sizeof *names);
            if (nn == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                break;
            }
            names = nn;
            cap = nc;
        }
        names[n] = rdx_strndup(de->d_name, strlen(de->d_name));
        if (names[n] == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (st == RDX_OK && n > 0) {
        qsort(names, n, sizeof *names, name_cmp);
    }
    size_t base = w->path.len;
    for (size_t i = 0; i < n && st == RDX_OK; i++) {
        w->path.len = base;
        st = rdx_buf_printf(&w->path, "%s%s",
                            (base > 0 && w->path.data[base - 1] == '/') ? "" : "/", names[i]);
        if (st != RDX_OK) {
            char msg[RDX_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s/%s: path longer than %d bytes", dpath, names[i],
                     RDX_IMG_MAX_PATH);
            report_file(w, dpath, 1, st, msg);
            st = RDX_OK;
            continue;
        }
        st = walk(w, depth + 1, err);
    }
    w->path.len = base;
    if (w->path.data != NULL) {
        w->path.data[base] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    free(dpath);
    return st;
}

static rdx_status walk(struct walker *w, int depth, rdx_error *err)
{
    const char *path = (const char *)w->path.data;
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        int e = errno;
        if (depth == 0) {
            return rdx_error_set(err, e == ENOENT ? RDX_ENOENT : RDX_EIO, "%s: %s", path,
                                 strerror(e));
        }
        char msg[RDX_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s: %s", path, strerror(e));
        report_file(w, path, 1, RDX_EIO, msg);
        return RDX_OK;
    }
    if (S_ISLNK(sb.st_mode)) {
        /* Follow a link to a file, never into a folder (no loops, no escapes). */
        if (stat(path, &sb) != 0 || S_ISDIR(sb.st_mode)) {
            return RDX_OK;
        }
    }
    if (S_ISDIR(sb.st_mode)) {
        if (depth >= RDX_IMG_MAX_WALK_DEPTH) {
            char msg[RDX_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s: folders nested deeper than %d", path,
                     RDX_IMG_MAX_WALK_DEPTH);
            report_file(w, path, 1, RDX_ELIMIT, msg);
            return RDX_OK;
        }
        return walk_dir(w, depth, err);
    }
    if (!S_ISREG(sb.st_mode)) {
        return RDX_OK;
    }
    if (w->jobs > 1 && depth > 0) {
        return queue_file(w, path, &sb, err);
    }
    return index_file(w, path, &sb, depth, err);
}

rdx_status rdx_img_index_add_path(rdx_img_index *ix, const char *path,
                                  const rdx_img_index_opts *opts, rdx_img_index_stats *stats,
                                  rdx_error *err)
{
    if (ix == NULL || path == NULL || stats == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_img_index_add_path: NULL argument");
    }
    struct walker w;
    memset(&w, 0, sizeof w);
    w.ix = ix;
    w.opts = opts;
    w.stats = stats;
    rdx_buf_init(&w.val, RDX_IMG_MAX_TEXT_BYTES);
    rdx_buf_init(&w.arena, 4 * RDX_IMG_MAX_TEXT_BYTES + RDX_IMG_MAX_REPORT_BYTES);
    rdx_buf_init(&w.report, RDX_IMG_MAX_REPORT_BYTES);
    rdx_buf_init(&w.path, RDX_IMG_MAX_PATH);
    w.jobs = opts != NULL && opts->jobs > 1 ? opts->jobs : 1;
    if (w.jobs > RDX_IMG_MAX_JOBS) {
        w.jobs = RDX_IMG_MAX_JOBS;
    }
    if (w.jobs > 1) {
        w.pend = rdx_callocarray(PEND_CHUNK, sizeof *w.pend);
        if (w.pend == NULL) {
            rdx_buf_free(&w.path);
            return rdx_error_set(err, RDX_ENOMEM, "out of memory");
        }
    }
    /* Paths are recorded absolute, so one index serves any working directory. */
    char *abs = realpath(path, NULL);
    rdx_status st;
    if (abs == NULL) {
        int e = errno;
        st = rdx_error_set(err,
                           e == ENOENT   ? RDX_ENOENT
                           : e == ENOMEM ? RDX_ENOMEM
                                         : RDX_EIO,
                           "%s: %s", path, strerror(e));
    } else {
        st = rdx_buf_append_str(&w.path, abs);
        free(abs);
        if (st != RDX_OK) {
            st = rdx_error_set(err, st == RDX_ELIMIT ? RDX_EINVAL : st, "%s: path too long", path);
        } else {
            st = walk(&w, 0, err);
            if (st == RDX_OK && w.npend > 0) {
                st = flush_pending(&w, err);
            }
        }
    }
    for (size_t i = 0; i < w.npend; i++) {
        free(w.pend[i].path);
    }
    free(w.pend);
    if (st == RDX_OK) {
        st = write_batch(&w, err);
    }
    if (w.in_txn) {
        img_store_rollback(ix);
    }
    saved_free(&w);
    rdx_buf_free(&w.val);
    rdx_buf_free(&w.arena);
    rdx_buf_free(&w.report);
    rdx_buf_free(&w.path);
    return st;
}

int rdx_img_level_parse(const char *s)
{
    static const char *const names[] = {"patient", "study", "series", "instance"};
    for (int i = 0; s != NULL && i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *rdx_img_level_name(rdx_img_level level)
{
    switch (level) {
    case RDX_IMG_LEVEL_PATIENT:
        return "patient";
    case RDX_IMG_LEVEL_STUDY:
        return "study";
    case RDX_IMG_LEVEL_SERIES:
        return "series";
    case RDX_IMG_LEVEL_INSTANCE:
        return "instance";
    default:
        return "unknown";
    }
}
