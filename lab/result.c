/*
 * lab/result.c - a lab's ORU^R01 matched to its specimens and applied: the
 * custody moves to RESULTED, the observations are stored (a correction,
 * OBX-11 = C, supersedes the earlier value and keeps it), and the caller
 * gets what to acknowledge (HL7 v2.5.1 2.9: AA, AE or AR with an ERR).
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct match {
    char authority[64];
    char barcode[128];
    rdx_lab_spec_state state;
    unsigned obr_seq;
    int correction; /* this OBR's OBX include OBX-11 = C */
    char test[64];  /* OBR-4.1 */
    int final;      /* every OBX of this OBR is final (OBX-11 F, C, U or X) */
    char status[4]; /* the OBX-11 recorded for the test: the last non-final one, else the last */
} match;

/* OBX-11 values that end a test (HL7 table 0085): final, corrected, made final, cannot be done. */
static int final_status(const char *st)
{
    return strcmp(st, "F") == 0 || strcmp(st, "C") == 0 || strcmp(st, "U") == 0 ||
           strcmp(st, "X") == 0;
}

static void set_out(rdx_lab_result_outcome *o, rdx_lab_ack_code code, unsigned e, const char *seg,
                    unsigned seq, unsigned field, const char *fmt, ...) RDX_PRINTF(7, 8);
static void set_out(rdx_lab_result_outcome *o, rdx_lab_ack_code code, unsigned e, const char *seg,
                    unsigned seq, unsigned field, const char *fmt, ...)
{
    va_list ap;
    o->code = code;
    o->hl7_error = e;
    snprintf(o->err_segment, sizeof o->err_segment, "%s", seg);
    o->err_sequence = seq;
    o->err_field = field;
    va_start(ap, fmt);
    vsnprintf(o->text, sizeof o->text, fmt, ap);
    va_end(ap);
}

static rdx_status db_fail(rdx_lab_store *s, rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* Does the comma-separated list hold code? */
static int in_list(const char *list, const char *code)
{
    size_t n = strlen(code);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, code, n) == 0) {
            return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* Find the specimen of OBR obr (segment index si): SPM-2 after it, else placer + test. */
static rdx_status find_specimen(rdx_lab_store *s, const rdx_lab_hl7_msg *m, size_t si,
                                const char *sender, match *mt, int *found, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    char *barcode = NULL, *auth = NULL, *placer = NULL, *placer_ns = NULL, *code = NULL;
    rdx_status st = RDX_OK;
    *found = 0;
    size_t spm = SIZE_MAX;
    for (size_t k = si + 1; k < m->nsegs && strcmp(m->segs[k].id, "OBR") != 0; k++) {
        if (strcmp(m->segs[k].id, "SPM") == 0) {
            spm = k;
            break;
        }
    }
    if (spm != SIZE_MAX) {
        if ((st = lab_hl7_dup(m, spm, 2, 1, 1, 1, &barcode, err)) != RDX_OK ||
            (st = lab_hl7_dup(m, spm, 2, 1, 1, 2, &auth, err)) != RDX_OK) {
            goto out;
        }
    }
    if ((st = lab_hl7_dup(m, si, 2, 1, 1, 1, &placer, err)) != RDX_OK ||
        (st = lab_hl7_dup(m, si, 2, 1, 2, 1, &placer_ns, err)) != RDX_OK ||
        (st = lab_hl7_dup(m, si, 4, 1, 1, 1, &code, err)) != RDX_OK) {
        goto out;
    }
    if (barcode != NULL && barcode[0] != '\0') {
        int rc = sqlite3_prepare_v2(s->db,
                                    auth[0] ? "SELECT authority, barcode, state, tests FROM "
                                              "lab_specimen WHERE barcode = ?1 AND authority = ?2"
                                            : "SELECT authority, barcode, state, tests FROM "
                                              "lab_specimen WHERE barcode = ?1",
                                    -1, &q, NULL);
        if (rc != SQLITE_OK) {
            st = db_fail(s, err, "cannot look up a specimen");
            goto out;
        }
        sqlite3_bind_text(q, 1, barcode, -1, SQLITE_STATIC);
        if (auth[0]) {
            sqlite3_bind_text(q, 2, auth, -1, SQLITE_STATIC);
        }
    } else {
        /*
         * The placer order number is the ordering clinic's and only unique there:
         * OBR-2.2 (the placer's namespace, echoed by the lab) names the clinic.
         */
        if (sqlite3_prepare_v2(s->db,
                               "SELECT authority, barcode, state, tests FROM lab_specimen WHERE "
                               "placer = ?1 AND placer <> '' AND tests <> '' AND (?2 = '' OR "
                               "order_sender = ?2) ORDER BY state >= 7, created_ms",
                               -1, &q, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot look up a specimen");
            goto out;
        }
        sqlite3_bind_text(q, 1, placer, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, placer_ns, -1, SQLITE_STATIC);
    }
    (void)sender;
    int rc, by_barcode = barcode != NULL && barcode[0] != '\0';
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *tests = (const char *)sqlite3_column_text(q, 3);
        int carries = in_list(tests, code);
        /* A split order has several tubes under one placer: prefer the one with the test. */
        if (*found && !carries) {
            continue;
        }
        snprintf(mt->authority, sizeof mt->authority, "%s",
                 (const char *)sqlite3_column_text(q, 0));
        snprintf(mt->barcode, sizeof mt->barcode, "%s", (const char *)sqlite3_column_text(q, 1));
        mt->state = (rdx_lab_spec_state)sqlite3_column_int(q, 2);
        *found = 1;
        if (by_barcode || carries) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st = db_fail(s, err, "cannot look up a specimen");
    }
out:
    sqlite3_finalize(q);
    free(barcode);
    free(auth);
    free(placer);
    free(placer_ns);
    free(code);
    return st;
}

static rdx_status store_obs(rdx_lab_store *s, const match *mt, const char *sender, const char *ctl,
                            const rdx_lab_result_obs *ob, int64_t now, size_t *corrections,
                            rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    if (strcmp(ob->status, "C") == 0) {
        /* A correction supersedes what was stored for this observation; history stays. */
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE lab_result_obs SET superseded = 1 WHERE authority = ?1 "
                               "AND barcode = ?2 AND code = ?3 AND superseded = 0",
                               -1, &q, NULL) != SQLITE_OK) {
            return db_fail(s, err, "cannot store a result");
        }
        sqlite3_bind_text(q, 1, mt->authority, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, mt->barcode, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, ob->code, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE) {
            return db_fail(s, err, "cannot store a result");
        }
        (*corrections)++;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO lab_result_obs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                           "?9, 0, ?10)",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot store a result");
    }
    sqlite3_bind_text(q, 1, mt->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mt->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, ctl, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, (int)ob->obx_seq);
    sqlite3_bind_text(q, 6, ob->code, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, ob->value, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, ob->units, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 9, ob->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 10, now);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : db_fail(s, err, "cannot store a result");
}

/* Has mt's test a final result on its tube already? */
static rdx_status test_is_final(rdx_lab_store *s, const match *mt, int *done, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    *done = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT final FROM lab_test_result WHERE authority = ?1 AND "
                           "barcode = ?2 AND test = ?3",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot look up a test result");
    }
    sqlite3_bind_text(q, 1, mt->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mt->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, mt->test, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *done = sqlite3_column_int(q, 0) != 0;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? RDX_OK
                                                 : db_fail(s, err, "cannot look up a test result");
}

/* Record the test's result state (a later message for the test replaces it). */
static rdx_status store_test(rdx_lab_store *s, const match *mt, const char *sender, const char *ctl,
                             int64_t now, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO lab_test_result VALUES (?1, ?2, ?3, ?4, ?5, "
                           "?6, ?7, ?8)",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot store a test result");
    }
    sqlite3_bind_text(q, 1, mt->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mt->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, mt->test, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, mt->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, mt->final);
    sqlite3_bind_text(q, 6, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, ctl, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, now);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : db_fail(s, err, "cannot store a test result");
}

/* The active tests of mt's tube without a final result, comma-separated ("" when none). */
static rdx_status tube_pending(rdx_lab_store *s, const match *mt, char *out, size_t cap,
                               rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(s->db,
                           "SELECT tests, (SELECT group_concat(test, ',') FROM lab_test_result t "
                           "WHERE t.authority = s.authority AND t.barcode = s.barcode AND "
                           "t.final = 1) FROM lab_specimen s WHERE authority = ?1 AND "
                           "barcode = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot read a tube's tests");
    }
    sqlite3_bind_text(q, 1, mt->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mt->barcode, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *tests = (const char *)sqlite3_column_text(q, 0);
        const char *done = (const char *)sqlite3_column_text(q, 1);
        size_t n = 0;
        for (const char *p = tests; p != NULL && *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            char one[128];
            snprintf(one, sizeof one, "%.*s", (int)(len < 127 ? len : 127), p);
            if (len > 0 && !in_list(done, one)) {
                int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", one);
                if (w < 0 || (size_t)w >= cap - n) {
                    break; /* the list is for people; what fits is enough */
                }
                n += (size_t)w;
            }
            p = e ? e + 1 : NULL;
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? RDX_OK
                                                 : db_fail(s, err, "cannot read a tube's tests");
}

rdx_status rdx_lab_result_apply(rdx_lab_store *s, const rdx_lab_hl7_msg *m, int64_t now_ms,
                                rdx_lab_result_outcome *out, rdx_error *err)
{
    rdx_status st = RDX_OK;
    rdx_lab_result *res = NULL;
    char *sender = NULL, *ctl = NULL;
    match *mts = NULL;
    size_t nm = 0;
    sqlite3_stmt *q = NULL;
    int in_tx = 0;
    if (s == NULL || m == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "result: bad arguments");
    }
    memset(out, 0, sizeof *out);
    out->code = RDX_LAB_ACK_AA;

    /* The message itself: ORU^R01 with OBX-11 on every OBX. */
    for (size_t k = 0, n = 0; k < m->nsegs; k++) {
        if (strcmp(m->segs[k].id, "OBX") == 0) {
            n++;
            if (lab_hl7_field(m, k, 11).n == 0) {
                set_out(out, RDX_LAB_ACK_AE, 101, "OBX", (unsigned)n, 11,
                        "OBX[%zu]-11: observation result status is required", n);
                return RDX_OK;
            }
        }
    }
    rdx_error perr;
    rdx_error_clear(&perr);
    st = rdx_lab_result_from_hl7(m, &res, &perr);
    if (st == RDX_ENOMEM) {
        return rdx_error_set(err, st, "out of memory");
    }
    if (st != RDX_OK) {
        if (st == RDX_EFORMAT) {
            set_out(out, RDX_LAB_ACK_AR, 200, "MSH", 1, 9, "%s", perr.msg);
        } else {
            set_out(out, RDX_LAB_ACK_AE, 102, "", 0, 0, "%s", perr.msg);
        }
        return RDX_OK;
    }
    st = RDX_OK;
    if ((st = lab_hl7_dup(m, 0, 4, 1, 1, 1, &sender, err)) != RDX_OK ||
        (st = lab_hl7_dup(m, 0, 10, 1, 1, 1, &ctl, err)) != RDX_OK) {
        goto out;
    }
    if (ctl[0] == '\0') {
        set_out(out, RDX_LAB_ACK_AE, 101, "MSH", 1, 10, "MSH-10: message control id is required");
        goto out;
    }
    /* The same message again (sender + MSH-10): applied once. */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT summary FROM lab_result_msg WHERE sender = ?1 AND "
                           "control_id = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot look up a message");
        goto out;
    }
    sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, ctl, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        out->duplicate = 1;
        snprintf(out->text, sizeof out->text, "duplicate of message %s from %s, applied before: %s",
                 ctl, sender, (const char *)sqlite3_column_text(q, 0));
        goto out;
    }
    sqlite3_finalize(q);
    q = NULL;

    /* Match every OBR first; nothing is applied unless all match. */
    size_t nobr = rdx_lab_hl7_segment_occurrences(m, "OBR");
    if (nobr == 0) {
        set_out(out, RDX_LAB_ACK_AE, 101, "OBR", 1, 0, "an ORU^R01 needs an OBR");
        goto out;
    }
    mts = rdx_callocarray(nobr, sizeof *mts);
    if (mts == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < m->nsegs; k++) {
        if (strcmp(m->segs[k].id, "OBR") != 0) {
            continue;
        }
        match *mt = &mts[nm];
        mt->obr_seq = (unsigned)(nm + 1);
        int found = 0;
        if ((st = find_specimen(s, m, k, sender, mt, &found, err)) != RDX_OK) {
            goto out;
        }
        if (!found) {
            set_out(out, RDX_LAB_ACK_AE, 204, "OBR", mt->obr_seq, 2,
                    "OBR[%u]: no specimen or order known for placer '%s'", mt->obr_seq,
                    rdx_lab_result_placer(res, mt->obr_seq));
            goto out;
        }
        size_t nobx = 0;
        mt->final = 1;
        for (size_t i = 0; i < rdx_lab_result_obs_count(res); i++) {
            const rdx_lab_result_obs *ob = rdx_lab_result_obs_at(res, i);
            if (ob->obr_seq != mt->obr_seq) {
                continue;
            }
            nobx++;
            mt->correction |= strcmp(ob->status, "C") == 0;
            if (!final_status(ob->status)) {
                mt->final = 0;
                snprintf(mt->status, sizeof mt->status, "%.3s", ob->status);
            } else if (mt->final) {
                snprintf(mt->status, sizeof mt->status, "%.3s", ob->status);
            }
        }
        {
            char *code = NULL, *obr25 = NULL;
            if ((st = lab_hl7_dup(m, k, 4, 1, 1, 1, &code, err)) != RDX_OK ||
                (st = lab_hl7_dup(m, k, 25, 1, 1, 1, &obr25, err)) != RDX_OK) {
                free(code);
                goto out;
            }
            snprintf(mt->test, sizeof mt->test, "%.63s", code);
            if (nobx == 0) {
                /* No observation: the OBR's own result status (OBR-25) says. */
                mt->final = final_status(obr25);
                snprintf(mt->status, sizeof mt->status, "%.3s", obr25);
            }
            free(code);
            free(obr25);
        }
        nm++;
        const char *b = mt->barcode;
        switch (mt->state) {
        case RDX_LAB_ST_RECEIVED:
        case RDX_LAB_ST_IN_TESTING: {
            /* Other tests of the tube may still be open; this one may already be final. */
            int done = 0;
            if ((st = test_is_final(s, mt, &done, err)) != RDX_OK) {
                goto out;
            }
            if (done && !mt->correction) {
                set_out(out, RDX_LAB_ACK_AR, 206, "OBR", mt->obr_seq, 0,
                        "test %s on specimen %s already has a final result; send a correction "
                        "(OBX-11 = C)",
                        mt->test, b);
                goto out;
            }
            break;
        }
        case RDX_LAB_ST_RESULTED:
        case RDX_LAB_ST_DELIVERED:
            if (!mt->correction) {
                set_out(out, RDX_LAB_ACK_AR, 206, "OBR", mt->obr_seq, 0,
                        "specimen %s already has a final result; send a correction "
                        "(OBX-11 = C)",
                        b);
                goto out;
            }
            break;
        case RDX_LAB_ST_CANCELLED:
        case RDX_LAB_ST_REJECTED:
        case RDX_LAB_ST_LOST:
            set_out(out, RDX_LAB_ACK_AR, 206, "OBR", mt->obr_seq, 0,
                    "specimen %s is %s: no result can be accepted for it", b,
                    rdx_lab_state_name(mt->state));
            goto out;
        default:
            set_out(out, RDX_LAB_ACK_AR, 206, "OBR", mt->obr_seq, 0,
                    "specimen %s is %s: it has not reached the lab", b,
                    rdx_lab_state_name(mt->state));
            goto out;
        }
    }

    /* Apply: custody events, observations and the message, in one transaction. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot start a transaction");
        goto out;
    }
    in_tx = 1;
    int64_t when = now_ms;
    const uint8_t *tp;
    size_t tn;
    if (rdx_lab_hl7_get_raw(m, "MSH-7", &tp, &tn, NULL) == RDX_OK && tn > 0) {
        int64_t v;
        if (rdx_lab_hl7_dtm_parse((const char *)tp, tn, 480, &v) == RDX_OK) {
            when = v;
        }
    }
    /* Each test's result state, and its observations. */
    for (size_t i = 0; i < nm; i++) {
        match *mt = &mts[i];
        if ((st = store_test(s, mt, sender, ctl, now_ms, err)) != RDX_OK) {
            goto out;
        }
        for (size_t k = 0; k < rdx_lab_result_obs_count(res); k++) {
            const rdx_lab_result_obs *ob = rdx_lab_result_obs_at(res, k);
            if (ob->obr_seq != mt->obr_seq) {
                continue;
            }
            if ((st = store_obs(s, mt, sender, ctl, ob, now_ms, &out->corrections, err)) !=
                RDX_OK) {
                goto out;
            }
            out->applied++;
        }
    }
    /* Then each tube once: resulted when all its tests are, else partly resulted. */
    for (size_t i = 0; i < nm; i++) {
        match *mt = &mts[i];
        int again = 0, correction = 0;
        for (size_t j = 0; j < nm; j++) {
            int same = strcmp(mts[j].barcode, mt->barcode) == 0 &&
                       strcmp(mts[j].authority, mt->authority) == 0;
            again |= j < i && same;
            correction |= same && mts[j].correction;
        }
        if (again) {
            continue;
        }
        char pending[512];
        if ((st = tube_pending(s, mt, pending, sizeof pending, err)) != RDX_OK) {
            goto out;
        }
        rdx_lab_event_in ev = {.authority = mt->authority,
                               .barcode = mt->barcode,
                               .actor = sender,
                               .reported_ms = when};
        rdx_lab_event_out eo;
        if (mt->state == RDX_LAB_ST_RECEIVED) {
            /* A result proves testing started, even if nobody scanned it. */
            ev.kind = RDX_LAB_EV_START;
            ev.reason = "implied by the result";
            if ((st = rdx_lab_custody_event(s, &ev, now_ms, &eo, err)) != RDX_OK) {
                goto out;
            }
        }
        out->specimens++;
        if (pending[0] != '\0' && mt->state != RDX_LAB_ST_RESULTED &&
            mt->state != RDX_LAB_ST_DELIVERED) {
            /* Partial results: logged, the tube stays in testing for the others. */
            char why[600];
            snprintf(why, sizeof why, "%sstill to come: %s", correction ? "correction, " : "",
                     pending);
            if (lab_custody_log(s, mt->authority, mt->barcode, RDX_LAB_EV_PARTIAL,
                                RDX_LAB_ST_IN_TESTING, RDX_LAB_ST_IN_TESTING, 0, why, sender, when,
                                now_ms, NULL) != RDX_OK) {
                st = db_fail(s, err, "cannot log a partial result");
                goto out;
            }
            out->partial++;
            continue;
        }
        ev.kind = RDX_LAB_EV_RESULT;
        ev.reason = correction ? "correction" : NULL;
        if ((st = rdx_lab_custody_event(s, &ev, now_ms, &eo, err)) != RDX_OK) {
            goto out;
        }
    }
    /* Where the result goes: the clinic that ordered the first specimen. */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT order_sender FROM lab_specimen WHERE authority = ?1 AND "
                           "barcode = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot look up a specimen");
        goto out;
    }
    sqlite3_bind_text(q, 1, mts[0].authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mts[0].barcode, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(out->clinic, sizeof out->clinic, "%s", (const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    q = NULL;
    snprintf(out->text, sizeof out->text, "%zu observation(s) on %zu specimen(s)%s%s", out->applied,
             out->specimens, out->corrections ? ", with corrections" : "",
             out->partial ? "; partial results, other tests still to come" : "");
    if (sqlite3_prepare_v2(s->db, "INSERT INTO lab_result_msg VALUES (?1, ?2, 0, ?3, ?4)", -1, &q,
                           NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot record the message");
        goto out;
    }
    sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, ctl, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, out->text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, now_ms);
    if (sqlite3_step(q) != SQLITE_DONE) {
        st = db_fail(s, err, "cannot record the message");
        goto out;
    }
out:
    sqlite3_finalize(q);
    if (in_tx) {
        if (st == RDX_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot commit");
        }
        if (st != RDX_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    free(mts);
    free(sender);
    free(ctl);
    rdx_lab_result_free(res);
    return st;
}
