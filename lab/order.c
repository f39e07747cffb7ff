/*
 * lab/order.c - orders (OML^O21, ORM^O01) and results (ORU^R01) read from
 * parsed HL7 v2 messages into the engine's own model, and HL7 DTM times.
 *
 * In OML_O21 (HL7 v2.5.1 section 4.4.6) a SPECIMEN group (SPM, SAC) follows
 * the OBR it belongs to; in OML^O33 the specimen comes first and the orders
 * after it. Both shapes are read: an SPM seen before any OBR is shared by
 * the OBRs after it. Orders without SPM (ORM^O01 as many senders still
 * write it) take the specimen from OBR-15 (specimen source) and OBR-7.
 * Two OBRs whose SPM carries the same SPM-2 id share one tube.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- DTM ---------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, size_t at, size_t k, int *out)
{
    int v = 0;
    if (at + k > n) {
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

rdx_status rdx_lab_hl7_dtm_parse(const char *s, size_t n, int local_offset_min, int64_t *ms_out)
{
    int y, mo = 1, d = 1, h = 0, mi = 0, se = 0, frac_ms = 0;
    size_t i = 0, body = n;
    int offset = local_offset_min;
    /* An offset +HHMM or -HHMM may close any precision (HL7 v2.5.1 2A.3.22). */
    for (size_t k = 0; k < n; k++) {
        if (s[k] == '+' || s[k] == '-') {
            int oh, om;
            if (n - k != 5 || digits(s, n, k + 1, 2, &oh) || digits(s, n, k + 3, 2, &om) ||
                oh > 14 || om > 59) {
                return RDX_EPARSE;
            }
            offset = (oh * 60 + om) * (s[k] == '-' ? -1 : 1);
            body = k;
            break;
        }
    }
    if (digits(s, body, 0, 4, &y)) {
        return RDX_EPARSE;
    }
    i = 4;
    int *parts[] = {&mo, &d, &h, &mi, &se};
    for (size_t p = 0; p < 5 && i < body && s[i] != '.'; p++) {
        if (digits(s, body, i, 2, parts[p])) {
            return RDX_EPARSE;
        }
        i += 2;
    }
    if (i < body && s[i] == '.') {
        if (i != 14 || body - i < 2 || body - i > 5) {
            return RDX_EPARSE;
        }
        int scale = 100;
        for (size_t k = i + 1; k < body; k++) {
            if (s[k] < '0' || s[k] > '9') {
                return RDX_EPARSE;
            }
            frac_ms += (s[k] - '0') * scale;
            scale /= 10;
        }
        i = body;
    }
    if (i != body) {
        return RDX_EPARSE;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59) {
        return RDX_EPARSE;
    }
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return RDX_EPARSE;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t sec = days * 86400 + h * 3600 + mi * 60 + se - (int64_t)offset * 60;
    *ms_out = sec * 1000 + frac_ms;
    return RDX_OK;
}

/* ---- Orders -------------------------------------------------------------- */

struct rdx_lab_order {
    char *sender, *control_id, *patient_id, *patient_authority;
    int64_t sent_ms;
    int64_t not_before_ms; /* rerouting: no pickup before this (INT64_MIN: none) */
    rdx_lab_order_test *tests;
    size_t ntests;
    rdx_lab_order_specimen *specs;
    size_t nspecs;
    char **strings; /* every string the order owns, to free */
    size_t nstrings, capstrings;
};

static rdx_status own(rdx_lab_order *o, char *s)
{
    if (o->nstrings == o->capstrings) {
        size_t nc = o->capstrings ? o->capstrings * 2 : 32;
        char **t = rdx_reallocarray(o->strings, nc, sizeof *t);
        if (t == NULL) {
            free(s);
            return RDX_ENOMEM;
        }
        o->strings = t;
        o->capstrings = nc;
    }
    o->strings[o->nstrings++] = s;
    return RDX_OK;
}

/* Decode a place into a string the order owns. */
static rdx_status take(rdx_lab_order *o, const rdx_lab_hl7_msg *m, size_t si, unsigned f,
                       unsigned r, unsigned c, unsigned sc, const char **out, rdx_error *err)
{
    char *s = NULL;
    RDX_TRY(lab_hl7_dup(m, si, f, r, c, sc, &s, err));
    rdx_status st = own(o, s);
    if (st != RDX_OK) {
        return rdx_error_set(err, st, "out of memory");
    }
    *out = s;
    return RDX_OK;
}

void rdx_lab_order_free(rdx_lab_order *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < o->nstrings; i++) {
        free(o->strings[i]);
    }
    free(o->strings);
    free(o->tests);
    free(o->specs);
    free(o);
}

static rdx_status msg_type(const rdx_lab_hl7_msg *m, char *code, char *trig)
{
    const uint8_t *p;
    size_t n;
    code[0] = trig[0] = '\0';
    RDX_TRY(rdx_lab_hl7_get_raw(m, "MSH-9.1", &p, &n, NULL));
    if (n < 8) {
        memcpy(code, p, n);
        code[n] = '\0';
    }
    RDX_TRY(rdx_lab_hl7_get_raw(m, "MSH-9.2", &p, &n, NULL));
    if (n < 8) {
        memcpy(trig, p, n);
        trig[n] = '\0';
    }
    return RDX_OK;
}

static rdx_status take_time(const rdx_lab_hl7_msg *m, size_t si, unsigned f, unsigned c,
                            unsigned sc, int off, int64_t *out, rdx_error *err)
{
    lab_span s = lab_hl7_narrow(m, lab_hl7_field(m, si, f), 1, c, sc);
    *out = INT64_MIN;
    if (s.n == 0) {
        return RDX_OK;
    }
    if (rdx_lab_hl7_dtm_parse((const char *)s.p, s.n, off, out) != RDX_OK) {
        return rdx_error_set(err, RDX_EPARSE, "%s-%u: '%.*s' is not an HL7 date/time",
                             m->segs[si].id, f, (int)(s.n > 40 ? 40 : s.n), (const char *)s.p);
    }
    return RDX_OK;
}

/* Read the SPM at segment si into a new specimen (or find the one with its id). */
static rdx_status read_spm(rdx_lab_order *o, const rdx_lab_hl7_msg *m, size_t si, unsigned seq,
                           int off, size_t *idx, rdx_error *err)
{
    rdx_lab_order_specimen sp = {0};
    sp.spm_seq = seq;
    RDX_TRY(take(o, m, si, 2, 1, 1, 1, &sp.id, err));
    if (sp.id[0] == '\0') {
        /* No placer id: the filler's (SPM-2.2.1). */
        RDX_TRY(take(o, m, si, 2, 1, 2, 1, &sp.id, err));
        RDX_TRY(take(o, m, si, 2, 1, 2, 2, &sp.authority, err));
    } else {
        RDX_TRY(take(o, m, si, 2, 1, 1, 2, &sp.authority, err));
    }
    RDX_TRY(take(o, m, si, 3, 1, 1, 1, &sp.parent_id, err));
    RDX_TRY(take(o, m, si, 4, 1, 1, 1, &sp.type, err));
    RDX_TRY(take_time(m, si, 17, 1, 1, off, &sp.collected_ms, err));
    /* SPM-12 collection amount (CQ): quantity ^ units; mL, L and uL are understood. */
    sp.volume_ml = -1;
    lab_span qty = lab_hl7_narrow(m, lab_hl7_field(m, si, 12), 1, 1, 1);
    lab_span unit = lab_hl7_narrow(m, lab_hl7_field(m, si, 12), 1, 2, 1);
    double v;
    if (qty.n > 0 && qty.n < 32 && rdx_parse_double((const char *)qty.p, qty.n, &v) == RDX_OK &&
        v >= 0) {
        if (unit.n == 2 && (memcmp(unit.p, "mL", 2) == 0 || memcmp(unit.p, "ml", 2) == 0)) {
            sp.volume_ml = v;
        } else if (unit.n == 1 && (unit.p[0] == 'L' || unit.p[0] == 'l')) {
            sp.volume_ml = v * 1000;
        } else if (unit.n == 2 && (memcmp(unit.p, "uL", 2) == 0 || memcmp(unit.p, "ul", 2) == 0)) {
            sp.volume_ml = v / 1000;
        }
    }
    if (sp.type[0] == '\0') {
        return rdx_error_set(err, RDX_EPARSE, "SPM[%u]-4: specimen type is required", seq);
    }
    for (size_t k = 0; k < o->nspecs; k++) {
        if (sp.id[0] != '\0' && strcmp(o->specs[k].id, sp.id) == 0 &&
            strcmp(o->specs[k].authority, sp.authority) == 0) {
            *idx = k;
            return RDX_OK;
        }
    }
    if (o->nspecs >= RDX_LAB_ORDER_MAX_SPECIMENS) {
        return rdx_error_set(err, RDX_ELIMIT, "SPM[%u]: more than %u specimens", seq,
                             RDX_LAB_ORDER_MAX_SPECIMENS);
    }
    rdx_lab_order_specimen *t = rdx_reallocarray(o->specs, o->nspecs + 1, sizeof *t);
    if (t == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    o->specs = t;
    o->specs[o->nspecs] = sp;
    *idx = o->nspecs++;
    return RDX_OK;
}

rdx_status rdx_lab_order_from_hl7(const rdx_lab_hl7_msg *m, int off, rdx_lab_order **out,
                                  rdx_error *err)
{
    char code[8], trig[8];
    rdx_status st = RDX_OK;
    if (m == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "order: bad arguments");
    }
    *out = NULL;
    RDX_TRY(msg_type(m, code, trig));
    if (!((strcmp(code, "OML") == 0 && (strcmp(trig, "O21") == 0 || strcmp(trig, "O33") == 0)) ||
          (strcmp(code, "ORM") == 0 && strcmp(trig, "O01") == 0))) {
        return rdx_error_set(err, RDX_EFORMAT,
                             "MSH-9: %s^%s is not an order (want OML^O21, OML^O33 or ORM^O01)",
                             code, trig);
    }
    rdx_lab_order *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    o->not_before_ms = INT64_MIN;
    const char *tmp;
    if ((st = take(o, m, 0, 4, 1, 1, 1, &tmp, err)) != RDX_OK) {
        goto out;
    }
    o->sender = (char *)tmp;
    if ((st = take(o, m, 0, 10, 1, 1, 1, &tmp, err)) != RDX_OK) {
        goto out;
    }
    o->control_id = (char *)tmp;
    if ((st = take_time(m, 0, 7, 1, 1, off, &o->sent_ms, err)) != RDX_OK) {
        goto out;
    }
    if (o->control_id[0] == '\0') {
        st = rdx_error_set(err, RDX_EPARSE, "MSH-10: message control id is required");
        goto out;
    }
    size_t pid = lab_hl7_find_seg(m, "PID", 1);
    if (pid == SIZE_MAX) {
        st = rdx_error_set(err, RDX_EPARSE, "PID: an order needs a patient");
        goto out;
    }
    if ((st = take(o, m, pid, 3, 1, 1, 1, &tmp, err)) != RDX_OK) {
        goto out;
    }
    o->patient_id = (char *)tmp;
    if ((st = take(o, m, pid, 3, 1, 4, 1, &tmp, err)) != RDX_OK) {
        goto out;
    }
    o->patient_authority = (char *)tmp;
    if (o->patient_id[0] == '\0') {
        st = rdx_error_set(err, RDX_EPARSE, "PID-3: patient identifier is required");
        goto out;
    }

    size_t cur_spec = SIZE_MAX;  /* specimen that applies to the OBRs that follow */
    size_t last_test = SIZE_MAX; /* OBR that an SPM after it belongs to */
    int obr_has_spm = 0;
    unsigned obr_seq = 0, spm_seq = 0;
    const char *orc_placer = "";
    for (size_t si = 0; si < m->nsegs; si++) {
        const char *id = m->segs[si].id;
        if (strcmp(id, "ORC") == 0) {
            if ((st = take(o, m, si, 2, 1, 1, 1, &orc_placer, err)) != RDX_OK) {
                goto out;
            }
        } else if (strcmp(id, "OBR") == 0) {
            rdx_lab_order_test t = {0};
            t.obr_seq = ++obr_seq;
            if (o->ntests >= RDX_LAB_ORDER_MAX_TESTS) {
                st = rdx_error_set(err, RDX_ELIMIT, "OBR[%u]: more than %u tests", obr_seq,
                                   RDX_LAB_ORDER_MAX_TESTS);
                goto out;
            }
            if ((st = take(o, m, si, 4, 1, 1, 1, &t.code, err)) != RDX_OK ||
                (st = take(o, m, si, 4, 1, 2, 1, &t.text, err)) != RDX_OK ||
                (st = take(o, m, si, 4, 1, 3, 1, &t.system, err)) != RDX_OK ||
                (st = take(o, m, si, 2, 1, 1, 1, &t.placer, err)) != RDX_OK) {
                goto out;
            }
            if (t.code[0] == '\0') {
                st = rdx_error_set(err, RDX_EPARSE, "OBR[%u]-4: universal service id is required",
                                   obr_seq);
                goto out;
            }
            if (t.placer[0] == '\0') {
                t.placer = orc_placer;
            }
            t.specimen = cur_spec;
            rdx_lab_order_test *nt = rdx_reallocarray(o->tests, o->ntests + 1, sizeof *nt);
            if (nt == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                goto out;
            }
            o->tests = nt;
            o->tests[o->ntests] = t;
            last_test = o->ntests++;
            obr_has_spm = 0;
        } else if (strcmp(id, "SPM") == 0) {
            size_t idx = SIZE_MAX;
            if ((st = read_spm(o, m, si, ++spm_seq, off, &idx, err)) != RDX_OK) {
                goto out;
            }
            if (last_test == SIZE_MAX) {
                cur_spec = idx; /* specimen-first (OML^O33) */
            } else if (!obr_has_spm) {
                o->tests[last_test].specimen = idx;
                obr_has_spm = 1;
            }
        }
    }
    if (o->ntests == 0) {
        st = rdx_error_set(err, RDX_EPARSE, "OBR: the order has no test");
        goto out;
    }
    /* OBRs without a specimen: OBR-15 (type) and OBR-7 (collected), one tube per type. */
    for (size_t k = 0; k < o->ntests; k++) {
        if (o->tests[k].specimen != SIZE_MAX) {
            continue;
        }
        size_t si = lab_hl7_find_seg(m, "OBR", o->tests[k].obr_seq);
        rdx_lab_order_specimen sp = {0};
        if ((st = take(o, m, si, 15, 1, 1, 1, &sp.type, err)) != RDX_OK ||
            (st = take_time(m, si, 7, 1, 1, off, &sp.collected_ms, err)) != RDX_OK) {
            goto out;
        }
        if (sp.type[0] == '\0') {
            st = rdx_error_set(err, RDX_EPARSE,
                               "OBR[%u]: no SPM segment and no specimen source in OBR-15",
                               o->tests[k].obr_seq);
            goto out;
        }
        sp.id = o->tests[k].placer;
        sp.volume_ml = -1;
        sp.authority = o->sender;
        sp.parent_id = "";
        size_t found = SIZE_MAX;
        for (size_t j = 0; j < o->nspecs; j++) {
            if (o->specs[j].spm_seq == 0 && strcmp(o->specs[j].type, sp.type) == 0) {
                found = j;
            }
        }
        if (found == SIZE_MAX) {
            rdx_lab_order_specimen *t = rdx_reallocarray(o->specs, o->nspecs + 1, sizeof *t);
            if (t == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                goto out;
            }
            o->specs = t;
            o->specs[o->nspecs] = sp;
            found = o->nspecs++;
        }
        o->tests[k].specimen = found;
    }
out:
    if (st != RDX_OK) {
        rdx_lab_order_free(o);
        return st;
    }
    *out = o;
    return RDX_OK;
}

const char *rdx_lab_order_sender(const rdx_lab_order *o)
{
    return o->sender;
}
const char *rdx_lab_order_control_id(const rdx_lab_order *o)
{
    return o->control_id;
}
int64_t rdx_lab_order_sent_ms(const rdx_lab_order *o)
{
    return o->sent_ms;
}
const char *rdx_lab_order_patient_id(const rdx_lab_order *o)
{
    return o->patient_id;
}
const char *rdx_lab_order_patient_authority(const rdx_lab_order *o)
{
    return o->patient_authority;
}
size_t rdx_lab_order_test_count(const rdx_lab_order *o)
{
    return o->ntests;
}
const rdx_lab_order_test *rdx_lab_order_test_at(const rdx_lab_order *o, size_t i)
{
    return i < o->ntests ? &o->tests[i] : NULL;
}
size_t rdx_lab_order_specimen_count(const rdx_lab_order *o)
{
    return o->nspecs;
}
const rdx_lab_order_specimen *rdx_lab_order_specimen_at(const rdx_lab_order *o, size_t i)
{
    return i < o->nspecs ? &o->specs[i] : NULL;
}

/* ---- Results ------------------------------------------------------------- */

struct rdx_lab_result {
    rdx_lab_order base; /* reuses the string ownership */
    rdx_lab_result_obs *obs;
    size_t nobs;
    const char **placers; /* per OBR */
    size_t nobr;
};

void rdx_lab_result_free(rdx_lab_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->base.nstrings; i++) {
        free(r->base.strings[i]);
    }
    free(r->base.strings);
    free(r->obs);
    free(r->placers);
    free(r);
}

rdx_status rdx_lab_result_from_hl7(const rdx_lab_hl7_msg *m, rdx_lab_result **out, rdx_error *err)
{
    char code[8], trig[8];
    rdx_status st = RDX_OK;
    if (m == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "result: bad arguments");
    }
    *out = NULL;
    RDX_TRY(msg_type(m, code, trig));
    if (strcmp(code, "ORU") != 0 || strcmp(trig, "R01") != 0) {
        return rdx_error_set(err, RDX_EFORMAT, "MSH-9: %s^%s is not a result (want ORU^R01)", code,
                             trig);
    }
    rdx_lab_result *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    unsigned obr_seq = 0, obx_seq = 0;
    rdx_buf val;
    rdx_buf_init(&val, RDX_LAB_HL7_MAX_MESSAGE); /* OBX-5 may carry an embedded report */
    for (size_t si = 0; si < m->nsegs; si++) {
        const char *id = m->segs[si].id;
        if (strcmp(id, "OBR") == 0) {
            const char **t = rdx_reallocarray(r->placers, r->nobr + 1, sizeof *t);
            if (t == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                goto out;
            }
            r->placers = t;
            if ((st = take(&r->base, m, si, 2, 1, 1, 1, &r->placers[r->nobr], err)) != RDX_OK) {
                goto out;
            }
            r->nobr++;
            obr_seq++;
        } else if (strcmp(id, "OBX") == 0) {
            rdx_lab_result_obs ob = {0};
            ob.obr_seq = obr_seq;
            ob.obx_seq = ++obx_seq;
            if ((st = take(&r->base, m, si, 3, 1, 1, 1, &ob.code, err)) != RDX_OK ||
                (st = take(&r->base, m, si, 3, 1, 2, 1, &ob.text, err)) != RDX_OK ||
                (st = take(&r->base, m, si, 6, 1, 1, 1, &ob.units, err)) != RDX_OK ||
                (st = take(&r->base, m, si, 11, 1, 1, 1, &ob.status, err)) != RDX_OK) {
                goto out;
            }
            /* OBX-5: components of the first repetition, decoded, joined by '^'. */
            rdx_buf_reset(&val);
            lab_span f = lab_hl7_narrow(m, lab_hl7_field(m, si, 5), 1, 0, 0);
            unsigned ncomp = f.n > 0 ? 1 : 0;
            for (size_t k = 0; k < f.n; k += lab_mb_step(m->cs, f.p, k, f.n)) {
                ncomp += f.p[k] == (uint8_t)m->d.component;
            }
            if (ncomp > RDX_LAB_HL7_MAX_COMPONENT) {
                ncomp = RDX_LAB_HL7_MAX_COMPONENT;
            }
            for (unsigned c = 1; c <= ncomp; c++) {
                lab_span cs = lab_hl7_narrow(m, f, 0, c, 0);
                if (c > 1 && (st = rdx_buf_append_u8(&val, '^')) != RDX_OK) {
                    goto out;
                }
                char what[32];
                snprintf(what, sizeof what, "OBX[%u]-5.%u", obx_seq, c);
                if ((st = lab_hl7_decode(m, lab_hl7_narrow(m, cs, 0, 0, 1), what, &val, err)) !=
                    RDX_OK) {
                    goto out;
                }
            }
            char *v = rdx_strndup(val.data ? (const char *)val.data : "", val.len);
            if (v == NULL || own(&r->base, v) != RDX_OK) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                goto out;
            }
            ob.value = v;
            /* OBX-11 is required; table 0085 gives its values (v2.5.1 7.4.2.11). */
            if (ob.status[0] == '\0' || strlen(ob.status) != 1 ||
                strchr("CDFIINOPRSUWX", ob.status[0]) == NULL) {
                st = rdx_error_set(err, RDX_EPARSE,
                                   "OBX[%u]-11: result status '%s' is missing or not in HL7 "
                                   "table 0085",
                                   obx_seq, ob.status);
                goto out;
            }
            rdx_lab_result_obs *t = rdx_reallocarray(r->obs, r->nobs + 1, sizeof *t);
            if (t == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                goto out;
            }
            r->obs = t;
            r->obs[r->nobs++] = ob;
        }
    }
out:
    rdx_buf_free(&val);
    if (st != RDX_OK) {
        rdx_lab_result_free(r);
        return st;
    }
    *out = r;
    return RDX_OK;
}

size_t rdx_lab_result_obs_count(const rdx_lab_result *r)
{
    return r->nobs;
}
const rdx_lab_result_obs *rdx_lab_result_obs_at(const rdx_lab_result *r, size_t i)
{
    return i < r->nobs ? &r->obs[i] : NULL;
}
size_t rdx_lab_result_corrections(const rdx_lab_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nobs; i++) {
        n += strcmp(r->obs[i].status, "C") == 0;
    }
    return n;
}
const char *rdx_lab_result_placer(const rdx_lab_result *r, unsigned obr_seq)
{
    return obr_seq >= 1 && obr_seq <= r->nobr ? r->placers[obr_seq - 1] : "";
}

/* ---- Synthetic orders (rerouting a tube) --------------------------------- */

static rdx_status own_dup(rdx_lab_order *o, const char *s, size_t n, const char **out)
{
    char *d = rdx_strndup(s != NULL ? s : "", s != NULL ? n : 0);
    if (d == NULL) {
        return RDX_ENOMEM;
    }
    RDX_TRY(own(o, d));
    *out = d;
    return RDX_OK;
}

int64_t lab_order_not_before(const rdx_lab_order *o)
{
    return o->not_before_ms;
}

rdx_status lab_order_synthetic(const char *sender, const char *control, const char *patient,
                               const char *barcode, const char *authority, const char *type,
                               int64_t collected_ms, int64_t not_before_ms, const char *tests_csv,
                               rdx_lab_order **out)
{
    rdx_status st = RDX_OK;
    const char *tmp;
    *out = NULL;
    rdx_lab_order *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return RDX_ENOMEM;
    }
    o->sent_ms = collected_ms;
    o->not_before_ms = not_before_ms;
    o->specs = calloc(1, sizeof *o->specs);
    if (o->specs == NULL) {
        st = RDX_ENOMEM;
        goto out;
    }
    o->nspecs = 1;
    rdx_lab_order_specimen *sp = &o->specs[0];
    sp->collected_ms = collected_ms;
    sp->volume_ml = -1;
    if ((st = own_dup(o, sender, strlen(sender), &tmp)) != RDX_OK) {
        goto out;
    }
    o->sender = (char *)tmp;
    if ((st = own_dup(o, control, strlen(control), &tmp)) != RDX_OK) {
        goto out;
    }
    o->control_id = (char *)tmp;
    if ((st = own_dup(o, patient, strlen(patient), &tmp)) != RDX_OK) {
        goto out;
    }
    o->patient_id = (char *)tmp;
    if ((st = own_dup(o, "", 0, &tmp)) != RDX_OK) {
        goto out;
    }
    o->patient_authority = (char *)tmp;
    sp->parent_id = tmp;
    if ((st = own_dup(o, barcode, strlen(barcode), &sp->id)) != RDX_OK ||
        (st = own_dup(o, authority, strlen(authority), &sp->authority)) != RDX_OK ||
        (st = own_dup(o, type, strlen(type), &sp->type)) != RDX_OK) {
        goto out;
    }
    for (const char *p = tests_csv; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0) {
            rdx_lab_order_test *t = rdx_reallocarray(o->tests, o->ntests + 1, sizeof *t);
            if (t == NULL) {
                st = RDX_ENOMEM;
                goto out;
            }
            o->tests = t;
            rdx_lab_order_test *nt = &o->tests[o->ntests];
            memset(nt, 0, sizeof *nt);
            nt->obr_seq = (unsigned)(o->ntests + 1);
            nt->specimen = 0;
            nt->system = "";
            nt->text = "";
            nt->placer = "";
            o->ntests++;
            if ((st = own_dup(o, p, len, &nt->code)) != RDX_OK) {
                goto out;
            }
        }
        p = e ? e + 1 : NULL;
    }
out:
    if (st != RDX_OK) {
        rdx_lab_order_free(o);
        return st;
    }
    *out = o;
    return RDX_OK;
}
