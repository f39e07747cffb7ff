/*
 * lab/hub.c - the two steps the hub takes for lab traffic, as library calls
 * without CLI concerns:
 *  - a clinic's order: route each test, register every tube and store the
 *    decisions in one transaction, and build the order each performing lab
 *    receives, the ACK and the order response (ORL^O22 / ORR^O02 / ORL^O34)
 *    that tells the clinic where each test went;
 *  - a lab's ORU^R01: match and apply it (custody, observations), build the
 *    ACK for the lab and the ORU forwarded to the ordering clinic.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hub_out_msg {
    char facility[96];
    rdx_buf b;
} hub_out_msg;

struct rdx_lab_hub_order_out {
    rdx_lab_ack_code code;
    char text[320];
    int already;
    rdx_lab_routing *rt;
    char sender[96], control[200];
    hub_out_msg ack, response;
    int has_response;
    hub_out_msg *labs;
    size_t nlabs;
};

struct rdx_lab_hub_result_out {
    rdx_lab_result_outcome o;
    hub_out_msg ack, forward;
    int has_forward;
};

/* Copy src into dst[cap], cut at a UTF-8 character boundary when too long. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

static void msg_init(hub_out_msg *m)
{
    memset(m, 0, sizeof *m);
    rdx_buf_init(&m->b, RDX_LAB_HUB_MAX_OUT);
}

static void set_facility(hub_out_msg *m, const char *f)
{
    copy_str(m->facility, sizeof m->facility, f != NULL ? f : "");
}

static void msg_view(const hub_out_msg *m, rdx_lab_hub_msg *out)
{
    out->facility = m->facility;
    out->data = m->b.data;
    out->len = m->b.len;
}

void rdx_lab_hub_order_free(rdx_lab_hub_order_out *h)
{
    if (h == NULL) {
        return;
    }
    rdx_lab_routing_free(h->rt);
    rdx_buf_free(&h->ack.b);
    rdx_buf_free(&h->response.b);
    for (size_t i = 0; i < h->nlabs; i++) {
        rdx_buf_free(&h->labs[i].b);
    }
    free(h->labs);
    free(h);
}

static const char *or_default(const char *s, const char *d)
{
    return s != NULL && s[0] != '\0' ? s : d;
}

/* ---- the tubes and decisions of one order, in one transaction ------------- */

/* One custody record per distinct tube the routing sends somewhere. */
static rdx_status register_tubes(rdx_lab_store *s, const rdx_lab_order *o,
                                 const rdx_lab_routing *rt, int64_t now_ms, rdx_error *err)
{
    size_t n = rdx_lab_routing_count(rt);
    for (size_t i = 0; i < n; i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
        int first = d->lab[0] != '\0';
        for (size_t j = 0; j < i && first; j++) {
            const rdx_lab_decision *e = rdx_lab_routing_at(rt, j);
            first = !(e->lab[0] != '\0' && strcmp(e->specimen_id, d->specimen_id) == 0);
        }
        if (!first) {
            continue;
        }
        rdx_buf tests;
        rdx_buf_init(&tests, 1u << 16);
        rdx_status st = RDX_OK;
        int64_t stable_until = d->stable_until_ms;
        const char *placer = "";
        double volume = -1; /* known for a whole tube, not for an aliquot */
        for (size_t k = 0; k < rdx_lab_order_specimen_count(o); k++) {
            const rdx_lab_order_specimen *os = rdx_lab_order_specimen_at(o, k);
            if (strcmp(os->id, d->specimen_id) == 0) {
                volume = os->volume_ml;
            }
        }
        for (size_t t = 0; t < rdx_lab_order_test_count(o); t++) {
            const rdx_lab_order_test *ot = rdx_lab_order_test_at(o, t);
            if (strcmp(ot->code, d->test_code) == 0) {
                placer = ot->placer;
                break;
            }
        }
        for (size_t j = i; j < n && st == RDX_OK; j++) {
            const rdx_lab_decision *e = rdx_lab_routing_at(rt, j);
            if (strcmp(e->specimen_id, d->specimen_id) == 0 && e->lab[0] != '\0') {
                st = rdx_buf_printf(&tests, "%s%s", tests.len ? "," : "", e->test_code);
                /* The tube is usable as long as its least stable test allows. */
                if (e->stable_until_ms < stable_until) {
                    stable_until = e->stable_until_ms;
                }
            }
        }
        rdx_lab_specimen_reg r = {.authority = d->specimen_authority,
                                  .barcode = d->specimen_id,
                                  .patient_id = rdx_lab_order_patient_id(o),
                                  .patient_authority = rdx_lab_order_patient_authority(o),
                                  .order_sender = rdx_lab_order_sender(o),
                                  .order_control = rdx_lab_order_control_id(o),
                                  .parent_barcode = d->parent_id,
                                  .lab = d->lab,
                                  .tests = tests.data ? (const char *)tests.data : "",
                                  .placer = placer,
                                  .specimen_type = d->specimen_type,
                                  .collected_ms = d->collected_ms,
                                  .volume_ml = volume,
                                  .stable_until_ms = stable_until,
                                  .arrival_due_ms = d->arrival_ms,
                                  .ordered_ms = rdx_lab_order_sent_ms(o)};
        if (st != RDX_OK) {
            st = rdx_error_set(err, st, "tube %s: too many tests", d->specimen_id);
        } else {
            st = rdx_lab_custody_register(s, &r, now_ms, NULL, err);
        }
        rdx_buf_free(&tests);
        if (st != RDX_OK) {
            return st;
        }
    }
    return RDX_OK;
}

rdx_status rdx_lab_order_record(rdx_lab_store *s, const rdx_lab_order *o, const rdx_lab_routing *rt,
                                int64_t now_ms, rdx_error *err)
{
    if (s == NULL || o == NULL || rt == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "record: bad arguments");
    }
    RDX_TRY(lab_store_begin(s, err));
    rdx_status st = register_tubes(s, o, rt, now_ms, err);
    if (st == RDX_OK) {
        st = lab_store_save_rows(s, rdx_lab_order_sender(o), rdx_lab_order_control_id(o), rt,
                                 now_ms, err);
    }
    return lab_store_end(s, st, err);
}

/* ---- the order response to the clinic ------------------------------------- */

typedef struct orl_ctx {
    const rdx_lab_hl7_msg *m;
    const rdx_lab_catalogue *c;
    rdx_buf *b;
    rdx_error *err;
} orl_ctx;

static rdx_status put_esc(orl_ctx *x, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return RDX_OK;
    }
    return rdx_lab_hl7_escape(&x->m->d, x->m->charset, s, strlen(s), x->b, x->err);
}

static rdx_status put_ch(orl_ctx *x, char ch)
{
    return rdx_buf_append_u8(x->b, (uint8_t)ch);
}

static rdx_status put_raw_field(orl_ctx *x, const char *path)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    if (rdx_lab_hl7_get_raw(x->m, path, &p, &n, NULL) != RDX_OK) {
        return RDX_OK;
    }
    return rdx_buf_append(x->b, p, n);
}

static void lab_facility(const rdx_lab_catalogue *c, const char *lab, const char **facility,
                         const char **name)
{
    *facility = lab;
    *name = "";
    for (size_t k = 0; k < rdx_lab_catalogue_lab_count(c); k++) {
        rdx_lab_lab_info li;
        if (rdx_lab_catalogue_lab_at(c, k, &li) == RDX_OK && strcmp(li.id, lab) == 0) {
            *facility = li.facility;
            *name = li.name;
        }
    }
}

/* ORC for decision d of test t: OK (routed or queued) or UA, and where it went in ORC-16. */
static rdx_status put_orc(orl_ctx *x, const rdx_lab_order_test *t, const rdx_lab_decision *d)
{
    const char f = x->m->d.field, c = x->m->d.component;
    int ok = d->code == RDX_LAB_ROUTED || d->code == RDX_LAB_FULL_QUEUED;
    RDX_TRY(rdx_buf_printf(x->b, "ORC%c%s%c", f, ok ? "OK" : "UA", f));
    RDX_TRY(put_esc(x, t->placer));
    /* ORC-3 filler (assigned by the lab later), ORC-4 empty; ORC-5 SC scheduled. */
    RDX_TRY(rdx_buf_printf(x->b, "%c%c%c%s", f, f, f, ok ? "SC" : ""));
    /* ORC-6 .. ORC-15 empty, then ORC-16 CE: code^reason^99RDX^lab^lab name^99RDXLAB. */
    for (int i = 6; i <= 16; i++) {
        RDX_TRY(put_ch(x, f));
    }
    RDX_TRY(put_esc(x, rdx_lab_route_code_name(d->code)));
    RDX_TRY(put_ch(x, c));
    RDX_TRY(put_esc(x, d->reason));
    RDX_TRY(rdx_buf_printf(x->b, "%c99RDX", c));
    if (d->lab[0] != '\0') {
        const char *fac, *name;
        lab_facility(x->c, d->lab, &fac, &name);
        RDX_TRY(put_ch(x, c));
        RDX_TRY(put_esc(x, d->lab));
        RDX_TRY(put_ch(x, c));
        RDX_TRY(put_esc(x, name));
        RDX_TRY(rdx_buf_printf(x->b, "%c99RDXLAB", c));
    }
    return put_ch(x, '\r');
}

static rdx_status put_obr(orl_ctx *x, unsigned seq, const rdx_lab_order_test *t)
{
    const char f = x->m->d.field, c = x->m->d.component;
    RDX_TRY(rdx_buf_printf(x->b, "OBR%c%u%c", f, seq, f));
    RDX_TRY(put_esc(x, t->placer));
    RDX_TRY(rdx_buf_printf(x->b, "%c%c", f, f));
    RDX_TRY(put_esc(x, t->code));
    RDX_TRY(put_ch(x, c));
    RDX_TRY(put_esc(x, t->text));
    RDX_TRY(put_ch(x, c));
    RDX_TRY(put_esc(x, t->system));
    return put_ch(x, '\r');
}

static rdx_status put_spm(orl_ctx *x, unsigned seq, const rdx_lab_decision *d)
{
    const char f = x->m->d.field, s = x->m->d.subcomponent;
    RDX_TRY(rdx_buf_printf(x->b, "SPM%c%u%c", f, seq, f));
    RDX_TRY(put_esc(x, d->specimen_id));
    if (d->specimen_authority[0] != '\0') {
        RDX_TRY(put_ch(x, s));
        RDX_TRY(put_esc(x, d->specimen_authority));
    }
    RDX_TRY(put_ch(x, f));
    if (d->parent_id[0] != '\0') {
        RDX_TRY(put_esc(x, d->parent_id));
        if (d->specimen_authority[0] != '\0') {
            RDX_TRY(put_ch(x, s));
            RDX_TRY(put_esc(x, d->specimen_authority));
        }
    }
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_esc(x, d->specimen_type));
    return put_ch(x, '\r');
}

/* The test of order o that decision i is about (decisions are in test order). */
static const rdx_lab_order_test *test_of(const rdx_lab_order *o, size_t i)
{
    return rdx_lab_order_test_at(o, i);
}

/*
 * The order response: ORL^O22 to OML^O21 (HL7 v2.5.1 4.4.7: MSH MSA [PID
 * {ORC [OBR [{SPM}]]}]), ORR^O02 to ORM^O01 (4.4.2: MSH MSA [PID {ORC
 * [OBR]}]), ORL^O34 to OML^O33 (4.4.9: MSH MSA [PID {SPM {ORC [OBR]}}]).
 */
static rdx_status build_response(orl_ctx *x, const rdx_lab_order *o, const rdx_lab_routing *rt,
                                 const rdx_lab_hub_opts *op, const char *ctl, const char *text)
{
    const rdx_lab_hl7_msg *m = x->m;
    const char f = m->d.field, c = m->d.component;
    char trig[8] = "";
    rdx_buf tb;
    rdx_buf_init(&tb, 16);
    (void)rdx_lab_hl7_get(m, "MSH-9.2", &tb, NULL);
    copy_str(trig, sizeof trig, tb.data ? (const char *)tb.data : "");
    rdx_buf_free(&tb);
    const char *type = strcmp(trig, "O01") == 0   ? "ORR^O02^ORR_O02"
                       : strcmp(trig, "O33") == 0 ? "ORL^O34^ORL_O34"
                                                  : "ORL^O22^ORL_O22";
    int per_spm = strcmp(trig, "O33") == 0, with_spm = strcmp(trig, "O01") != 0;

    RDX_TRY(rdx_buf_printf(x->b, "MSH%c%c%c%c%c", f, c, m->d.repetition, m->d.escape,
                           m->d.subcomponent));
    if (m->d.truncation) {
        RDX_TRY(put_ch(x, m->d.truncation));
    }
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_esc(x, or_default(op->hub_app, "RDX")));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_esc(x, or_default(op->hub_facility, "NJ-HUB")));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_raw_field(x, "MSH-3"));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_raw_field(x, "MSH-4"));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_esc(x, op->timestamp));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_ch(x, f));
    for (const char *p = type; *p; p++) {
        RDX_TRY(put_ch(x, *p == '^' ? c : *p));
    }
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_esc(x, ctl));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_raw_field(x, "MSH-11"));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_raw_field(x, "MSH-12"));
    if (m->charset[0] != '\0') {
        RDX_TRY(rdx_buf_printf(x->b, "%c%c%c%c%c%c", f, f, f, f, f, f));
        RDX_TRY(put_raw_field(x, "MSH-18"));
    }
    RDX_TRY(put_ch(x, '\r'));
    RDX_TRY(rdx_buf_printf(x->b, "MSA%cAA%c", f, f));
    RDX_TRY(put_raw_field(x, "MSH-10"));
    RDX_TRY(put_ch(x, f));
    RDX_TRY(put_esc(x, text));
    RDX_TRY(put_ch(x, '\r'));
    size_t pid = lab_hl7_find_seg(m, "PID", 1);
    if (pid != SIZE_MAX) {
        RDX_TRY(rdx_buf_append(x->b, m->raw + m->segs[pid].off, m->segs[pid].len));
        RDX_TRY(put_ch(x, '\r'));
    }
    size_t n = rdx_lab_routing_count(rt);
    unsigned obr = 0, spm = 0;
    for (size_t i = 0; i < n; i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
        const rdx_lab_order_test *t = test_of(o, i);
        if (t == NULL) {
            return rdx_error_set(x->err, RDX_EINVAL, "order response: %zu decisions for %zu tests",
                                 n, rdx_lab_order_test_count(o));
        }
        if (per_spm) {
            /* ORL^O34: one SPM per tube, then the order groups of its tests. */
            int first = 1;
            for (size_t j = 0; j < i && first; j++) {
                first = strcmp(rdx_lab_routing_at(rt, j)->specimen_id, d->specimen_id) != 0;
            }
            if (!first) {
                continue;
            }
            RDX_TRY(put_spm(x, ++spm, d));
            for (size_t j = i; j < n; j++) {
                const rdx_lab_decision *e = rdx_lab_routing_at(rt, j);
                if (strcmp(e->specimen_id, d->specimen_id) == 0) {
                    RDX_TRY(put_orc(x, test_of(o, j), e));
                    RDX_TRY(put_obr(x, ++obr, test_of(o, j)));
                }
            }
            continue;
        }
        RDX_TRY(put_orc(x, t, d));
        RDX_TRY(put_obr(x, ++obr, t));
        if (with_spm) {
            RDX_TRY(put_spm(x, ++spm, d));
        }
    }
    return RDX_OK;
}

/* ---- rdx_lab_hub_order ---------------------------------------------------- */

static rdx_status hub_ack(hub_out_msg *dst, const rdx_lab_hl7_msg *m, rdx_lab_ack_code code,
                          unsigned hl7_error, const char *seg, const char *text,
                          const char *orig_ctl, const rdx_lab_hub_opts *op, rdx_error *err)
{
    char ctl[220];
    snprintf(ctl, sizeof ctl, "ACK-%s", orig_ctl[0] ? orig_ctl : "UNKNOWN");
    rdx_lab_ack_spec sp = {.code = code,
                           .control_id = ctl,
                           .timestamp = op->timestamp,
                           .text = code == RDX_LAB_ACK_AA ? NULL : text,
                           .hl7_error = hl7_error,
                           .err_segment = seg,
                           .err_sequence = seg != NULL ? 1 : 0,
                           .orig_control_id = orig_ctl};
    return rdx_lab_hl7_ack(m, &sp, &dst->b, err);
}

static rdx_status hub_order(rdx_lab_store *s, const rdx_lab_catalogue *c, const void *data,
                            size_t len, const rdx_lab_hub_opts *op, rdx_lab_hub_order_out *h,
                            rdx_error *err)
{
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    rdx_lab_router *r = NULL;
    rdx_status st;
    rdx_error perr;
    rdx_error_clear(&perr);
    if (rdx_lab_hl7_parse(data, len, &m, &perr) != RDX_OK) {
        h->code = RDX_LAB_ACK_AE;
        copy_str(h->text, sizeof h->text, perr.msg);
        return hub_ack(&h->ack, NULL, h->code, 102, NULL, h->text, "", op, err);
    }
    {
        rdx_buf cb;
        rdx_buf_init(&cb, 1024);
        (void)rdx_lab_hl7_get(m, "MSH-10", &cb, NULL);
        copy_str(h->control, sizeof h->control, cb.data ? (const char *)cb.data : "");
        rdx_buf_reset(&cb);
        (void)rdx_lab_hl7_get(m, "MSH-4.1", &cb, NULL);
        copy_str(h->sender, sizeof h->sender, cb.data ? (const char *)cb.data : "");
        rdx_buf_free(&cb);
    }
    set_facility(&h->ack, h->sender);
    set_facility(&h->response, h->sender);
    if (rdx_lab_order_from_hl7(m, rdx_lab_catalogue_utc_offset_min(c), &o, &perr) != RDX_OK) {
        /* Not an order, or one without what routing needs. */
        h->code = RDX_LAB_ACK_AE;
        copy_str(h->text, sizeof h->text, perr.msg);
        st = hub_ack(&h->ack, m, h->code, 101, NULL, h->text, h->control, op, err);
        goto out;
    }
    /* Route and record under one write lock: loads are read from the store inside it. */
    if ((st = lab_store_begin(s, err)) != RDX_OK) {
        goto out;
    }
    st = rdx_lab_store_lookup(s, rdx_lab_order_sender(o), rdx_lab_order_control_id(o), &h->rt, err);
    if (st == RDX_OK) {
        h->already = 1;
        /* Add-ons and new collections append decisions: answer for the order as sent. */
        size_t nt = rdx_lab_order_test_count(o);
        if (rdx_lab_routing_count(h->rt) > nt) {
            rdx_lab_routing *cut = NULL;
            st = lab_routing_new(&cut);
            for (size_t i = 0; i < nt && st == RDX_OK; i++) {
                st = lab_routing_push(cut, rdx_lab_routing_at(h->rt, i));
            }
            rdx_lab_routing_free(h->rt);
            h->rt = cut;
            if (st != RDX_OK) {
                st = rdx_error_set(err, st, "out of memory");
            }
        }
    } else if (st == RDX_ENOTFOUND) {
        rdx_error_clear(err);
        st = rdx_lab_router_new(c, &r, err);
        if (st == RDX_OK) {
            /* Only the days this order can touch: the cost must not grow with the store. */
            int64_t from, to;
            st = lab_route_load_window(c, o, &from, &to) == 0
                     ? lab_store_load_days(s, r, from, to, err)
                     : rdx_lab_store_load(s, r, err);
        }
        if (st == RDX_OK) {
            st = rdx_lab_route(r, o, &h->rt, err);
        }
        if (st == RDX_OK) {
            st = register_tubes(s, o, h->rt, op->now_ms, err);
        }
        if (st == RDX_OK) {
            st = lab_store_save_rows(s, rdx_lab_order_sender(o), rdx_lab_order_control_id(o), h->rt,
                                     op->now_ms, err);
        }
        if (st == RDX_OK) {
            /* For the orders of tubes rdx may open later (lab/order_new.c). */
            st = lab_store_keep_order_msg(s, rdx_lab_order_sender(o), rdx_lab_order_control_id(o),
                                          data, len, op->now_ms, err);
        }
    }
    if (st == RDX_EDENIED || st == RDX_EDUPLICATE || st == RDX_EPARSE) {
        /* A barcode of another patient or order, or no collection time: nothing is kept. */
        lab_store_end(s, RDX_EINVAL, NULL);
        h->code = RDX_LAB_ACK_AR;
        copy_str(h->text, sizeof h->text, err != NULL ? err->msg : "order refused");
        rdx_lab_routing_free(h->rt);
        h->rt = NULL;
        rdx_error_clear(err);
        st = hub_ack(&h->ack, m, h->code, st == RDX_EPARSE ? 101 : 205,
                     st == RDX_EPARSE ? NULL : "SPM", h->text, h->control, op, err);
        goto out;
    }
    if ((st = lab_store_end(s, st, err)) != RDX_OK) {
        goto out;
    }
    h->code = RDX_LAB_ACK_AA;
    size_t n = rdx_lab_routing_count(h->rt), routed = 0;
    for (size_t i = 0; i < n; i++) {
        routed += rdx_lab_routing_at(h->rt, i)->lab[0] != '\0';
    }
    snprintf(h->text, sizeof h->text, "%s%zu of %zu test(s) routed to %zu lab(s)",
             h->already ? "already routed: " : "", routed, n, rdx_lab_routing_labs(h->rt));
    if ((st = hub_ack(&h->ack, m, RDX_LAB_ACK_AA, 0, NULL, NULL, h->control, op, err)) != RDX_OK) {
        goto out;
    }
    char ctl[220];
    snprintf(ctl, sizeof ctl, "RSP-%s", h->control);
    orl_ctx x = {.m = m, .c = c, .b = &h->response.b, .err = err};
    if ((st = build_response(&x, o, h->rt, op, ctl, h->text)) != RDX_OK) {
        goto out;
    }
    h->has_response = 1;
    /* One order message per performing lab, in order of first appearance. */
    h->labs = calloc(n ? n : 1, sizeof *h->labs);
    if (h->labs == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(h->rt, i);
        int first = d->lab[0] != '\0';
        for (size_t j = 0; j < i && first; j++) {
            first = strcmp(rdx_lab_routing_at(h->rt, j)->lab, d->lab) != 0;
        }
        if (!first) {
            continue;
        }
        const char *fac, *name;
        lab_facility(c, d->lab, &fac, &name);
        hub_out_msg *lm = &h->labs[h->nlabs++];
        msg_init(lm);
        set_facility(lm, d->lab);
        char lctl[320];
        snprintf(lctl, sizeof lctl, "%s-%s", h->control, d->lab);
        rdx_lab_hl7_address a = {.sending_app = or_default(op->hub_app, "RDX"),
                                 .sending_facility = or_default(op->hub_facility, "NJ-HUB"),
                                 .receiving_app = "",
                                 .receiving_facility = fac,
                                 .timestamp = op->timestamp,
                                 .control_id = lctl};
        if ((st = rdx_lab_order_for_lab(m, h->rt, d->lab, &a, &lm->b, err)) != RDX_OK) {
            goto out;
        }
    }
out:
    rdx_lab_router_free(r);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    return st;
}

rdx_status rdx_lab_hub_order(rdx_lab_store *s, const rdx_lab_catalogue *c, const void *data,
                             size_t len, const rdx_lab_hub_opts *opts, rdx_lab_hub_order_out **out,
                             rdx_error *err)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || c == NULL || (data == NULL && len > 0) || opts == NULL || out == NULL ||
        opts->timestamp == NULL || opts->timestamp[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "hub order: bad arguments (a timestamp is required)");
    }
    rdx_lab_hub_order_out *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    msg_init(&h->ack);
    msg_init(&h->response);
    rdx_status st = hub_order(s, c, data, len, opts, h, err);
    if (st != RDX_OK) {
        rdx_lab_hub_order_free(h);
        return st;
    }
    *out = h;
    return RDX_OK;
}

rdx_lab_ack_code rdx_lab_hub_order_code(const rdx_lab_hub_order_out *h)
{
    return h->code;
}

const char *rdx_lab_hub_order_text(const rdx_lab_hub_order_out *h)
{
    return h->text;
}

int rdx_lab_hub_order_already_routed(const rdx_lab_hub_order_out *h)
{
    return h->already;
}

const rdx_lab_routing *rdx_lab_hub_order_routing(const rdx_lab_hub_order_out *h)
{
    return h->rt;
}

void rdx_lab_hub_order_ack(const rdx_lab_hub_order_out *h, rdx_lab_hub_msg *out)
{
    msg_view(&h->ack, out);
}

int rdx_lab_hub_order_response(const rdx_lab_hub_order_out *h, rdx_lab_hub_msg *out)
{
    if (!h->has_response) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    msg_view(&h->response, out);
    return 1;
}

size_t rdx_lab_hub_order_lab_count(const rdx_lab_hub_order_out *h)
{
    return h->nlabs;
}

int rdx_lab_hub_order_lab_at(const rdx_lab_hub_order_out *h, size_t i, rdx_lab_hub_msg *out)
{
    if (i >= h->nlabs) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    msg_view(&h->labs[i], out);
    return 1;
}

/* ---- rdx_lab_hub_result --------------------------------------------------- */

void rdx_lab_hub_result_free(rdx_lab_hub_result_out *h)
{
    if (h == NULL) {
        return;
    }
    rdx_buf_free(&h->ack.b);
    rdx_buf_free(&h->forward.b);
    free(h);
}

static rdx_status hub_result(rdx_lab_store *s, const void *data, size_t len,
                             const rdx_lab_hub_opts *op, rdx_lab_hub_result_out *h, rdx_error *err)
{
    rdx_lab_hl7_msg *m = NULL;
    rdx_error perr;
    rdx_error_clear(&perr);
    if (rdx_lab_hl7_parse(data, len, &m, &perr) != RDX_OK) {
        h->o.code = RDX_LAB_ACK_AE;
        h->o.hl7_error = 102;
        copy_str(h->o.text, sizeof h->o.text, perr.msg);
        return hub_ack(&h->ack, NULL, h->o.code, 102, NULL, h->o.text, "", op, err);
    }
    char ctl[200], sender[96];
    {
        rdx_buf cb;
        rdx_buf_init(&cb, 1024);
        (void)rdx_lab_hl7_get(m, "MSH-10", &cb, NULL);
        copy_str(ctl, sizeof ctl, cb.data ? (const char *)cb.data : "");
        rdx_buf_reset(&cb);
        (void)rdx_lab_hl7_get(m, "MSH-4.1", &cb, NULL);
        copy_str(sender, sizeof sender, cb.data ? (const char *)cb.data : "");
        rdx_buf_free(&cb);
    }
    set_facility(&h->ack, sender);
    rdx_status st = rdx_lab_result_apply(s, m, op->now_ms, &h->o, err);
    if (st == RDX_OK) {
        char ackid[220];
        snprintf(ackid, sizeof ackid, "ACK-%s", ctl);
        rdx_lab_ack_spec sp = {.code = h->o.code,
                               .control_id = ackid,
                               .timestamp = op->timestamp,
                               .text = h->o.code == RDX_LAB_ACK_AA ? NULL : h->o.text,
                               .hl7_error = h->o.hl7_error,
                               .err_segment = h->o.err_segment,
                               .err_sequence = h->o.err_sequence,
                               .err_field = h->o.err_field};
        st = rdx_lab_hl7_ack(m, &sp, &h->ack.b, err);
    }
    if (st == RDX_OK && h->o.code == RDX_LAB_ACK_AA && !h->o.duplicate) {
        char fid[220];
        snprintf(fid, sizeof fid, "RDX-%s", ctl);
        set_facility(&h->forward, h->o.clinic);
        rdx_lab_hl7_address a = {.sending_app = or_default(op->hub_app, "RDX"),
                                 .sending_facility = or_default(op->hub_facility, "NJ-HUB"),
                                 .receiving_app = "",
                                 .receiving_facility = h->o.clinic,
                                 .timestamp = op->timestamp,
                                 .control_id = fid};
        st = rdx_lab_hl7_readdress(m, &a, &h->forward.b, err);
        h->has_forward = st == RDX_OK;
    }
    rdx_lab_hl7_free(m);
    return st;
}

rdx_status rdx_lab_hub_result(rdx_lab_store *s, const void *data, size_t len,
                              const rdx_lab_hub_opts *opts, rdx_lab_hub_result_out **out,
                              rdx_error *err)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || (data == NULL && len > 0) || opts == NULL || out == NULL ||
        opts->timestamp == NULL || opts->timestamp[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL,
                             "hub result: bad arguments (a timestamp is required)");
    }
    rdx_lab_hub_result_out *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    msg_init(&h->ack);
    msg_init(&h->forward);
    rdx_status st = hub_result(s, data, len, opts, h, err);
    if (st != RDX_OK) {
        rdx_lab_hub_result_free(h);
        return st;
    }
    *out = h;
    return RDX_OK;
}

const rdx_lab_result_outcome *rdx_lab_hub_result_outcome(const rdx_lab_hub_result_out *h)
{
    return &h->o;
}

void rdx_lab_hub_result_ack(const rdx_lab_hub_result_out *h, rdx_lab_hub_msg *out)
{
    msg_view(&h->ack, out);
}

int rdx_lab_hub_result_forward(const rdx_lab_hub_result_out *h, rdx_lab_hub_msg *out)
{
    if (!h->has_forward) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    msg_view(&h->forward, out);
    return 1;
}
