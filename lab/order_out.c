/*
 * lab/order_out.c - the order message each performing lab receives: the
 * clinic's OML^O21 / ORM^O01 cut down to the tests routed to that lab, with
 * child tubes named in SPM-2 and their parent in SPM-3 when the tube was
 * split (HL7 v2.5.1 section 7.4.3.3: SPM-3 Specimen Parent IDs).
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static rdx_status put_seg(rdx_buf *b, const rdx_lab_hl7_msg *m, size_t si)
{
    RDX_TRY(rdx_buf_append(b, m->raw + m->segs[si].off, m->segs[si].len));
    return rdx_buf_append_u8(b, '\r');
}

/* "id&authority" escaped for m, as an EI in a subcomponent position. */
static rdx_status put_ei(rdx_buf *b, const rdx_lab_hl7_msg *m, const char *id, const char *auth,
                         rdx_error *err)
{
    RDX_TRY(rdx_lab_hl7_escape(&m->d, m->charset, id, strlen(id), b, err));
    if (auth != NULL && auth[0] != '\0') {
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)m->d.subcomponent));
        RDX_TRY(rdx_lab_hl7_escape(&m->d, m->charset, auth, strlen(auth), b, err));
    }
    return RDX_OK;
}

/* SPM si with SPM-2 = the child tube and SPM-3 = its parent. */
static rdx_status put_child_spm(rdx_buf *b, const rdx_lab_hl7_msg *m, size_t si,
                                const rdx_lab_decision *d, rdx_error *err)
{
    const lab_seg *g = &m->segs[si];
    unsigned last = g->nelem > 4 ? g->nelem - 1 : 3;
    RDX_TRY(rdx_buf_append(b, "SPM", 3));
    for (unsigned f = 1; f <= last; f++) {
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)m->d.field));
        if (f == 2) {
            RDX_TRY(put_ei(b, m, d->specimen_id, d->specimen_authority, err));
        } else if (f == 3) {
            RDX_TRY(put_ei(b, m, d->parent_id, d->specimen_authority, err));
        } else {
            lab_span s = lab_hl7_field(m, si, f);
            RDX_TRY(rdx_buf_append(b, s.p, s.n));
        }
    }
    return rdx_buf_append_u8(b, '\r');
}

static rdx_status build(const rdx_lab_hl7_msg *m, const rdx_lab_routing *rt, const char *lab,
                        const rdx_lab_hl7_address *a, rdx_buf *b, rdx_error *err)
{
    size_t nobr = rdx_lab_hl7_segment_occurrences(m, "OBR");
    if (nobr != rdx_lab_routing_count(rt)) {
        return rdx_error_set(err, RDX_EINVAL,
                             "order for %s: the routing has %zu decisions, the message %zu OBR",
                             lab, rdx_lab_routing_count(rt), nobr);
    }
    size_t any = 0;
    for (size_t i = 0; i < nobr; i++) {
        any += strcmp(rdx_lab_routing_at(rt, i)->lab, lab) == 0;
    }
    if (any == 0) {
        return rdx_error_set(err, RDX_ENOTFOUND, "no test of the order goes to %s", lab);
    }
    RDX_TRY(lab_hl7_write_msh(m, a, b, err));
    int before = 1, included = 0, obr_open = 0;
    size_t obr = 0, grp_start = SIZE_MAX, grp_end = 0; /* ORC (and TQ1 ...) before an OBR */
    int grp_emitted = 0;
    const rdx_lab_decision *d = NULL;
    for (size_t si = 1; si < m->nsegs; si++) {
        const char *id = m->segs[si].id;
        int is_orc = strcmp(id, "ORC") == 0, is_obr = strcmp(id, "OBR") == 0;
        if (before && !is_orc && !is_obr) {
            RDX_TRY(put_seg(b, m, si)); /* PID, PV1, NK1, ... */
            continue;
        }
        before = 0;
        if (is_orc) {
            grp_start = grp_end = si;
            grp_emitted = 0;
            obr_open = 0;
            included = 0;
            continue;
        }
        if (is_obr) {
            d = rdx_lab_routing_at(rt, obr++);
            included = strcmp(d->lab, lab) == 0;
            obr_open = 1;
            if (included && grp_start != SIZE_MAX && !grp_emitted) {
                /* The common order (ORC, TQ1) goes before the first OBR of this lab. */
                for (size_t k = grp_start; k <= grp_end; k++) {
                    RDX_TRY(put_seg(b, m, k));
                }
                grp_emitted = 1;
            }
            if (included) {
                RDX_TRY(put_seg(b, m, si));
            }
            continue;
        }
        if (!obr_open) {
            grp_end = si; /* TQ1 and the like, between ORC and OBR */
            continue;
        }
        if (!included) {
            continue;
        }
        if (strcmp(id, "SPM") == 0 && d->parent_id[0] != '\0') {
            RDX_TRY(put_child_spm(b, m, si, d, err));
        } else {
            RDX_TRY(put_seg(b, m, si));
        }
    }
    return RDX_OK;
}

rdx_status rdx_lab_order_for_lab(const rdx_lab_hl7_msg *m, const rdx_lab_routing *rt,
                                 const char *lab_id, const rdx_lab_hl7_address *a, rdx_buf *out,
                                 rdx_error *err)
{
    if (m == NULL || rt == NULL || lab_id == NULL || a == NULL || out == NULL || m->envelope) {
        return rdx_error_set(err, RDX_EINVAL, "order for lab: bad arguments");
    }
    rdx_buf b;
    rdx_buf_init(&b, out->max > out->len ? out->max - out->len : 0);
    rdx_status st = build(m, rt, lab_id, a, &b, err);
    if (st == RDX_OK) {
        st = rdx_buf_append(out, b.data, b.len);
    }
    if (st != RDX_OK && err != NULL && err->msg[0] == '\0') {
        rdx_error_set(err, st, "order for %s: %s", lab_id, rdx_strerror(st));
    }
    rdx_buf_free(&b);
    return st;
}
