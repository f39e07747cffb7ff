/*
 * lab/order_new.c - the order a performing lab receives for a tube rdx
 * opened itself: a recollection of a rejected tube, the new collection an
 * add-on test needed, or an aliquot poured when a lab went down. The clinic
 * never sent an order for that barcode, so rdx writes it, from the clinic's
 * order as the hub received it (kept in the store, lab_order_msg) and the
 * tube's custody record: the same message type, delimiters and character
 * set as the order the lab got for the first tube (lab/order_out.c), the
 * patient's segments as the clinic sent them, and per test of the new tube
 * its order group, its OBR and an SPM naming the new tube in SPM-2 and the
 * tube it stands for in SPM-3 (HL7 v2.5.1 section 7.4.3.3, Specimen Parent
 * IDs: for an aliquot the tube it was poured from, for a recollection the
 * rejected tube it replaces).
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rdx_status read_tube(rdx_lab_store *s, const char *auth, const char *barcode, lab_tube *t,
                            rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    memset(t, 0, sizeof *t);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " LAB_TUBE_COLUMNS
                           " FROM lab_specimen WHERE authority = ?1 AND barcode = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        return rdx_error_set(err, RDX_EDB, "%s: cannot read tube %s: %s", s->path, barcode,
                             sqlite3_errmsg(s->db));
    }
    sqlite3_bind_text(q, 1, auth, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, barcode, -1, SQLITE_STATIC);
    rdx_status st;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        st = lab_tube_read(q, t, err);
    } else if (rc == SQLITE_DONE) {
        st = rdx_error_set(err, RDX_ENOTFOUND, "no tube %s (authority %s)", barcode, auth);
    } else {
        st = rdx_error_set(err, RDX_EDB, "%s: cannot read tube %s: %s", s->path, barcode,
                           sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(q);
    return st;
}

typedef struct nt_ctx {
    const rdx_lab_hl7_msg *m;
    const rdx_lab_catalogue *c;
    const lab_tube *t;
    const char *auth, *barcode;
    char dtm[32]; /* the tube's collection time, "" while not collected */
    rdx_buf *b;
    rdx_error *err;
    unsigned seq;       /* OBR / SPM set ids written so far */
    int sac;            /* the clinic's order identified its containers (SAC) */
    int sac_written;    /* ... and this tube's SAC is written */
    size_t first_group; /* the first ORC of the clinic's order, SIZE_MAX when none */
} nt_ctx;

static rdx_status put_seg(nt_ctx *x, size_t si)
{
    RDX_TRY(rdx_buf_append(x->b, x->m->raw + x->m->segs[si].off, x->m->segs[si].len));
    return rdx_buf_append_u8(x->b, '\r');
}

static rdx_status put_sep(nt_ctx *x, char sep)
{
    return rdx_buf_append_u8(x->b, (uint8_t)sep);
}

static rdx_status put_text(nt_ctx *x, const char *s)
{
    return rdx_lab_hl7_escape(&x->m->d, x->m->charset, s, strlen(s), x->b, x->err);
}

/* "id&authority": an EI in a subcomponent position. */
static rdx_status put_ei(nt_ctx *x, const char *id)
{
    RDX_TRY(put_text(x, id));
    if (x->auth[0] != '\0') {
        RDX_TRY(put_sep(x, x->m->d.subcomponent));
        RDX_TRY(put_text(x, x->auth));
    }
    return RDX_OK;
}

/* End a segment written from start: no trailing empty fields, then CR. */
static rdx_status end_seg(nt_ctx *x, size_t start)
{
    while (x->b->len > start + 3 && x->b->data[x->b->len - 1] == (uint8_t)x->m->d.field) {
        x->b->len--;
    }
    return rdx_buf_append_u8(x->b, '\r');
}

static rdx_status put_uint(nt_ctx *x, unsigned v)
{
    return rdx_buf_printf(x->b, "%u", v);
}

/*
 * The OBR of a test of the new tube: the clinic's OBR si (or, for a test the
 * clinic did not order, OBR-2 the placer number and OBR-4 CODE^NAME), with
 * OBR-1 the set id in this message and OBR-7 the tube's collection time.
 */
static rdx_status put_obr(nt_ctx *x, size_t si, const char *code)
{
    const rdx_lab_hl7_msg *m = x->m;
    unsigned last = si != SIZE_MAX && m->segs[si].nelem > 1 ? m->segs[si].nelem - 1 : 4;
    if (x->dtm[0] != '\0' && last < 7) {
        last = 7;
    }
    size_t start = x->b->len;
    RDX_TRY(rdx_buf_append(x->b, "OBR", 3));
    for (unsigned f = 1; f <= last; f++) {
        RDX_TRY(put_sep(x, m->d.field));
        if (f == 1) {
            RDX_TRY(put_uint(x, x->seq));
        } else if (f == 7) {
            RDX_TRY(rdx_buf_append_str(x->b, x->dtm));
        } else if (si != SIZE_MAX) {
            lab_span s = lab_hl7_field(m, si, f);
            RDX_TRY(rdx_buf_append(x->b, s.p, s.n));
        } else if (f == 2) {
            /* The placer order number as the clinic wrote it (with its namespace). */
            size_t first = lab_hl7_find_seg(m, "OBR", 1);
            if (first != SIZE_MAX) {
                lab_span p = lab_hl7_field(m, first, 2);
                RDX_TRY(rdx_buf_append(x->b, p.p, p.n));
            } else {
                RDX_TRY(put_text(x, x->t->placer));
            }
        } else if (f == 4) {
            RDX_TRY(put_text(x, code));
            RDX_TRY(put_sep(x, m->d.component));
            RDX_TRY(put_text(x, lab_cat_test_name(x->c, code)));
        }
    }
    return end_seg(x, start);
}

/* The clinic's SPM (segment index) of a tube of type t->type, for SPM-4 and its details. */
static size_t spm_of_type(const nt_ctx *x)
{
    for (size_t occ = 1;; occ++) {
        size_t si = lab_hl7_find_seg(x->m, "SPM", occ);
        if (si == SIZE_MAX) {
            return SIZE_MAX;
        }
        lab_span s = lab_hl7_narrow(x->m, lab_hl7_field(x->m, si, 4), 1, 1, 1);
        if (s.n == strlen(x->t->type) && memcmp(s.p, x->t->type, s.n) == 0) {
            return si;
        }
    }
}

/*
 * The SPM of the new tube after an OBR: SPM-2 the tube, SPM-3 the tube it
 * stands for, SPM-4 .. SPM-16 as the clinic's SPM of that test (model, else
 * one of the same type; SPM-12, the amount drawn, only when the model is
 * this very tube, moved whole to another lab), SPM-17 its collection time. Then its SAC, once, when
 * the clinic's order identified containers.
 */
static rdx_status put_spm(nt_ctx *x, size_t model)
{
    const rdx_lab_hl7_msg *m = x->m;
    if (model == SIZE_MAX) {
        model = spm_of_type(x);
    }
    /* SPM-12, the amount drawn, belongs to the model's tube: kept only when it is this one. */
    int same_tube = 0;
    if (model != SIZE_MAX) {
        lab_span id = lab_hl7_narrow(m, lab_hl7_field(m, model, 2), 1, 1, 1);
        same_tube = id.n == strlen(x->barcode) && memcmp(id.p, x->barcode, id.n) == 0;
    }
    unsigned last = x->dtm[0] != '\0' ? 17 : 4;
    if (model != SIZE_MAX && m->segs[model].nelem > 1) {
        unsigned have = m->segs[model].nelem - 1 < 16 ? m->segs[model].nelem - 1 : 16;
        last = have > last ? have : last;
    }
    size_t start = x->b->len;
    RDX_TRY(rdx_buf_append(x->b, "SPM", 3));
    for (unsigned f = 1; f <= last; f++) {
        RDX_TRY(put_sep(x, m->d.field));
        if (f == 1) {
            RDX_TRY(put_uint(x, x->seq));
        } else if (f == 2) {
            RDX_TRY(put_ei(x, x->barcode));
        } else if (f == 3) {
            if (x->t->parent[0] != '\0') {
                RDX_TRY(put_ei(x, x->t->parent));
            }
        } else if (f == 17) {
            RDX_TRY(rdx_buf_append_str(x->b, x->dtm));
        } else if (f == 12 && !same_tube) {
            continue;
        } else if (model != SIZE_MAX) {
            lab_span s = lab_hl7_field(m, model, f);
            RDX_TRY(rdx_buf_append(x->b, s.p, s.n));
        } else if (f == 4) {
            RDX_TRY(put_text(x, x->t->type));
            RDX_TRY(put_sep(x, m->d.component));
            RDX_TRY(put_text(x, lab_cat_type_name(x->c, x->t->type)));
        }
    }
    RDX_TRY(end_seg(x, start));
    if (x->sac && !x->sac_written) {
        /* SAC-3, the container identifier: the new tube's barcode. */
        RDX_TRY(rdx_buf_append(x->b, "SAC", 3));
        RDX_TRY(put_sep(x, m->d.field));
        RDX_TRY(put_sep(x, m->d.field));
        RDX_TRY(put_sep(x, m->d.field));
        RDX_TRY(put_text(x, x->barcode));
        RDX_TRY(rdx_buf_append_u8(x->b, '\r'));
        x->sac_written = 1;
    }
    return RDX_OK;
}

/* The ORC group (ORC and what stands between it and its first OBR) starting at si. */
static rdx_status put_group(nt_ctx *x, size_t si)
{
    RDX_TRY(put_seg(x, si));
    for (size_t k = si + 1; k < x->m->nsegs; k++) {
        const char *id = x->m->segs[k].id;
        if (strcmp(id, "OBR") == 0 || strcmp(id, "ORC") == 0) {
            break;
        }
        RDX_TRY(put_seg(x, k));
    }
    return RDX_OK;
}

static rdx_status build(nt_ctx *x, const rdx_lab_hl7_address *a)
{
    const rdx_lab_hl7_msg *m = x->m;
    RDX_TRY(lab_hl7_write_msh(m, a, x->b, x->err));
    x->first_group = lab_hl7_find_seg(m, "ORC", 1);
    x->sac = lab_hl7_find_seg(m, "SAC", 1) != SIZE_MAX;
    /* PID, PV1 and the rest before the first order group, as the clinic sent them. */
    for (size_t si = 1; si < m->nsegs; si++) {
        if (strcmp(m->segs[si].id, "ORC") == 0 || strcmp(m->segs[si].id, "OBR") == 0) {
            break;
        }
        RDX_TRY(put_seg(x, si));
    }
    /* The tube's tests the clinic ordered: their group, OBR and a new SPM, in order. */
    char *done = calloc(strlen(x->t->tests) + 1, 1); /* one mark per list byte */
    if (done == NULL) {
        return RDX_ENOMEM;
    }
    rdx_status st = RDX_OK;
    size_t group = SIZE_MAX, group_written = SIZE_MAX;
    int any_group = 0;
    for (size_t si = 1; si < m->nsegs && st == RDX_OK; si++) {
        const char *id = m->segs[si].id;
        if (strcmp(id, "ORC") == 0) {
            group = si;
            continue;
        }
        if (strcmp(id, "OBR") != 0) {
            continue;
        }
        lab_span code = lab_hl7_narrow(m, lab_hl7_field(m, si, 4), 1, 1, 1);
        const char *hit = NULL;
        for (const char *p = x->t->tests; *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len == code.n && memcmp(p, code.p, len) == 0 && !done[p - x->t->tests]) {
                hit = p;
                break;
            }
            p = e ? e + 1 : p + len;
        }
        if (hit == NULL) {
            continue;
        }
        done[hit - x->t->tests] = 1;
        if (group != SIZE_MAX && group != group_written) {
            st = put_group(x, group);
            group_written = group;
            any_group = 1;
        }
        /* The SPM that follows this OBR in the clinic's order, as the model. */
        size_t model = SIZE_MAX;
        for (size_t k = si + 1; k < m->nsegs; k++) {
            if (strcmp(m->segs[k].id, "OBR") == 0 || strcmp(m->segs[k].id, "ORC") == 0) {
                break;
            }
            if (strcmp(m->segs[k].id, "SPM") == 0) {
                model = k;
                break;
            }
        }
        x->seq++;
        if (st == RDX_OK) {
            st = put_obr(x, si, NULL);
        }
        if (st == RDX_OK) {
            st = put_spm(x, model);
        }
    }
    /* Tests the clinic's order did not carry (an add-on): under its first order group. */
    for (const char *p = x->t->tests; *p != '\0' && st == RDX_OK;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && !done[p - x->t->tests]) {
            char code[80];
            snprintf(code, sizeof code, "%.*s", (int)(len < 79 ? len : 79), p);
            if (!any_group && x->first_group != SIZE_MAX) {
                st = put_group(x, x->first_group);
                any_group = 1;
            }
            x->seq++;
            if (st == RDX_OK) {
                st = put_obr(x, SIZE_MAX, code);
            }
            if (st == RDX_OK) {
                st = put_spm(x, SIZE_MAX);
            }
        }
        p = e ? e + 1 : p + len;
    }
    free(done);
    return st;
}

rdx_status rdx_lab_order_for_new_tube(rdx_lab_store *s, const rdx_lab_catalogue *c,
                                      const char *authority, const char *barcode,
                                      const rdx_lab_hl7_address *a, rdx_buf *out, rdx_error *err)
{
    if (s == NULL || c == NULL || authority == NULL || barcode == NULL || a == NULL ||
        a->timestamp == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL,
                             "order for a new tube: bad arguments (a timestamp is required)");
    }
    lab_tube t;
    rdx_lab_hl7_msg *m = NULL;
    rdx_buf raw, b;
    rdx_buf_init(&raw, RDX_LAB_HL7_MAX_MESSAGE);
    rdx_buf_init(&b, out->max > out->len ? out->max - out->len : 0);
    rdx_status st = read_tube(s, authority, barcode, &t, err);
    if (st != RDX_OK) {
        goto out;
    }
    if (t.lab[0] == '\0' || t.tests[0] == '\0') {
        st = rdx_error_set(err, RDX_ENOTFOUND, "tube %s has no performing lab (route it first)",
                           barcode);
        goto out;
    }
    st = lab_store_order_msg(s, t.sender, t.control, &raw, err);
    if (st == RDX_ENOTFOUND) {
        st = rdx_error_set(err, st,
                           "tube %s: the clinic's order %s from %s was not kept (orders are kept "
                           "from store version 5 on, by rdx lab route and the hub)",
                           barcode, t.control, t.sender);
    }
    if (st != RDX_OK) {
        goto out;
    }
    if ((st = rdx_lab_hl7_parse(raw.data, raw.len, &m, err)) != RDX_OK) {
        goto out;
    }
    size_t li = lab_cat_find_lab(c, t.lab);
    rdx_lab_hl7_address addr = *a;
    if (addr.receiving_facility == NULL) {
        addr.receiving_facility = li != SIZE_MAX ? c->labs[li].facility : t.lab;
    }
    char ctl[200];
    if (addr.control_id == NULL) {
        /* A message of its own, never the clinic's MSH-10 again. */
        snprintf(ctl, sizeof ctl, "%.80s-%.100s", t.control, barcode);
        addr.control_id = ctl;
    }
    nt_ctx x = {
        .m = m, .c = c, .t = &t, .auth = authority, .barcode = barcode, .b = &b, .err = err};
    if (t.collected_ms != INT64_MIN) {
        lab_fmt_dtm(t.collected_ms, c->utc_offset_min, x.dtm);
    }
    if ((st = build(&x, &addr)) == RDX_OK) {
        st = rdx_buf_append(out, b.data, b.len);
    }
    if (st != RDX_OK && err != NULL && err->msg[0] == '\0') {
        rdx_error_set(err, st, "order for tube %s: %s", barcode, rdx_strerror(st));
    }
out:
    rdx_lab_hl7_free(m);
    rdx_buf_free(&raw);
    rdx_buf_free(&b);
    lab_tube_free(&t);
    return st;
}
