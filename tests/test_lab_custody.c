/* Chain of custody: the state machine, re-scans, barcodes, rejection, cancel, expiry, loss. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/lab.h"
#include "support/testutil.h"

#define T0  INT64_C(1796083200000) /* 2026-12-01 08:00 +08:00 */
#define MIN INT64_C(60000)

static rdx_lab_store *store(void)
{
    rdx_lab_store *s = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_store_open("sqlite::memory:", &s, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return s;
}

static void reg(rdx_lab_store *s, const char *barcode, const char *patient, int64_t stable_until,
                int64_t due)
{
    rdx_lab_specimen_reg r = {.authority = "NJ-GULOU-CHC",
                              .barcode = barcode,
                              .patient_id = patient,
                              .patient_authority = "NJ-GULOU-CHC",
                              .order_sender = "NJ-GULOU-CHC",
                              .order_control = "CTL-1",
                              .lab = "NJ-JSPH",
                              .tests = "2823-3,4548-4",
                              .stable_until_ms = stable_until,
                              .arrival_due_ms = due};
    int created = 0;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_custody_register(s, &r, T0, &created, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(created, 1);
}

static rdx_status ev(rdx_lab_store *s, const char *barcode, rdx_lab_event_kind k, int64_t at,
                     const char *actor, rdx_lab_event_out *out, rdx_error *err)
{
    rdx_lab_event_in in = {.barcode = barcode, .kind = k, .actor = actor, .reported_ms = at};
    rdx_error_clear(err);
    return rdx_lab_custody_event(s, &in, at + 5000, out, err);
}

static void step(rdx_lab_store *s, const char *barcode, rdx_lab_event_kind k, int64_t at,
                 rdx_lab_spec_state want)
{
    rdx_lab_event_out o;
    rdx_error err;
    if (ev(s, barcode, k, at, "NJ-JSPH", &o, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(o.to, want);
    assert_int_equal(o.duplicate, 0);
}

typedef struct hist {
    size_t n;
    rdx_lab_event_kind kinds[32];
    rdx_lab_spec_state last_state;
    int64_t reported[32], received[32];
    char recollected_as[64], recollect_of[64];
} hist;

static void on_event(void *user, const rdx_lab_specimen_rec *sp, const rdx_lab_event_rec *e)
{
    hist *h = user;
    if (h->n < 32) {
        h->kinds[h->n] = e->kind;
        h->reported[h->n] = e->reported_ms;
        h->received[h->n] = e->received_ms;
    }
    h->n++;
    h->last_state = sp->state;
    snprintf(h->recollected_as, sizeof h->recollected_as, "%s", sp->recollected_as);
    snprintf(h->recollect_of, sizeof h->recollect_of, "%s", sp->recollect_of);
}

static void test_custody_happy_path_and_history(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "B1", "P1", T0 + 240 * MIN, T0 + 90 * MIN);
    step(s, "B1", RDX_LAB_EV_COLLECT, T0 + 1 * MIN, RDX_LAB_ST_COLLECTED);
    step(s, "B1", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, RDX_LAB_ST_DISPATCHED);
    step(s, "B1", RDX_LAB_EV_RECEIVE, T0 + 80 * MIN, RDX_LAB_ST_RECEIVED);
    step(s, "B1", RDX_LAB_EV_START, T0 + 90 * MIN, RDX_LAB_ST_IN_TESTING);
    step(s, "B1", RDX_LAB_EV_RESULT, T0 + 200 * MIN, RDX_LAB_ST_RESULTED);
    step(s, "B1", RDX_LAB_EV_DELIVER, T0 + 210 * MIN, RDX_LAB_ST_DELIVERED);
    /* A corrected result after the final one: back to resulted, history kept. */
    step(s, "B1", RDX_LAB_EV_RESULT, T0 + 300 * MIN, RDX_LAB_ST_RESULTED);
    step(s, "B1", RDX_LAB_EV_DELIVER, T0 + 310 * MIN, RDX_LAB_ST_DELIVERED);
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "B1", on_event, &h, NULL), RDX_OK);
    assert_int_equal(h.n, 9);
    assert_int_equal(h.kinds[0], RDX_LAB_EV_ORDER);
    assert_int_equal(h.kinds[6], RDX_LAB_EV_DELIVER);
    assert_int_equal(h.kinds[7], RDX_LAB_EV_RESULT);
    assert_int_equal(h.last_state, RDX_LAB_ST_DELIVERED);
    /* Both times are kept: reported by the actor and received by rdx. */
    assert_int_equal(h.reported[3], T0 + 80 * MIN);
    assert_int_equal(h.received[3], T0 + 80 * MIN + 5000);
    rdx_lab_store_free(s);
}

static void test_custody_illegal_transitions_are_refused(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "B1", "P1", INT64_MIN, INT64_MIN);
    rdx_lab_event_out o;
    rdx_error err;
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_RECEIVE, T0, "NJ-JSPH", &o, &err), RDX_ESTATE);
    assert_non_null(strstr(err.msg, "cannot 'receive' a specimen that is 'ordered'"));
    assert_non_null(strstr(err.msg, "allowed: collect, reject, cancel"));
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_DELIVER, T0, "NJ-JSPH", &o, &err), RDX_ESTATE);
    assert_int_equal(ev(s, "NOPE", RDX_LAB_EV_COLLECT, T0, "NJ-JSPH", &o, &err), RDX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "NOPE"));
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_COLLECT, T0, "", &o, &err), RDX_EINVAL);
    /* Nothing was logged by the refused events. */
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, "NJ-GULOU-CHC", "B1", on_event, &h, NULL), RDX_OK);
    assert_int_equal(h.n, 1);
    rdx_lab_store_free(s);
}

static void test_custody_rescan_is_idempotent(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "B1", "P1", INT64_MIN, INT64_MIN);
    step(s, "B1", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    rdx_lab_event_out o;
    rdx_error err;
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_COLLECT, T0, "NJ-JSPH", &o, &err), RDX_OK);
    assert_int_equal(o.duplicate, 1);
    assert_int_equal(o.to, RDX_LAB_ST_COLLECTED);
    /* A different time is a new (and here illegal) event, not a re-scan. */
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_COLLECT, T0 + MIN, "NJ-JSPH", &o, &err), RDX_ESTATE);
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "B1", on_event, &h, NULL), RDX_OK);
    assert_int_equal(h.n, 2);
    rdx_lab_store_free(s);
}

static void test_custody_barcodes_duplicate_and_wrong_patient(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "B1", "P1", INT64_MIN, INT64_MIN);
    rdx_lab_specimen_reg r = {.authority = "NJ-GULOU-CHC",
                              .barcode = "B1",
                              .patient_id = "P1",
                              .patient_authority = "NJ-GULOU-CHC",
                              .order_sender = "NJ-GULOU-CHC",
                              .order_control = "CTL-1"};
    int created = 7;
    rdx_error err;
    /* The same registration again: no-op. */
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, &created, NULL), RDX_OK);
    assert_int_equal(created, 0);
    /* Another order reusing the barcode: refused. */
    r.order_control = "CTL-2";
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, &created, &err), RDX_EDUPLICATE);
    assert_non_null(strstr(err.msg, "already used by order CTL-1"));
    /* The barcode on another patient: refused. */
    r.patient_id = "P2";
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, &created, &err), RDX_EDENIED);
    assert_non_null(strstr(err.msg, "belongs to another patient"));
    /* The same barcode from another authority is another specimen... */
    r.authority = "MAS-EAST-CHC";
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, &created, NULL), RDX_OK);
    assert_int_equal(created, 1);
    /* ...so a scan of the bare barcode is ambiguous. */
    rdx_lab_event_out o;
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_COLLECT, T0, "X", &o, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "several assigning authorities"));
    rdx_lab_event_in in = {.authority = "MAS-EAST-CHC",
                           .barcode = "B1",
                           .kind = RDX_LAB_EV_COLLECT,
                           .actor = "MAS-EAST-CHC",
                           .reported_ms = T0};
    assert_int_equal(rdx_lab_custody_event(s, &in, T0, &o, NULL), RDX_OK);
    assert_string_equal(o.authority, "MAS-EAST-CHC");
    rdx_lab_specimen_reg bad = {.authority = "", .barcode = "B9"};
    assert_int_equal(rdx_lab_custody_register(s, &bad, T0, NULL, NULL), RDX_EINVAL);
    rdx_lab_store_free(s);
}

static void test_custody_reject_opens_recollection(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "B1", "P1", INT64_MIN, INT64_MIN);
    step(s, "B1", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "B1", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, RDX_LAB_ST_DISPATCHED);
    rdx_lab_event_in in = {.barcode = "B1",
                           .kind = RDX_LAB_EV_RECEIVE,
                           .condition = RDX_LAB_COND_HEMOLYSED,
                           .actor = "NJ-JSPH",
                           .reported_ms = T0 + 80 * MIN};
    rdx_lab_event_out o;
    assert_int_equal(rdx_lab_custody_event(s, &in, T0 + 80 * MIN, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_RECEIVED);
    assert_int_equal(o.condition, RDX_LAB_COND_HEMOLYSED);
    in.kind = RDX_LAB_EV_REJECT;
    in.reason = "HEMOLYSED";
    in.new_barcode = "B1-NEW";
    assert_int_equal(rdx_lab_custody_event(s, &in, T0 + 81 * MIN, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_REJECTED);
    assert_string_equal(o.recollect, "B1-NEW");
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "B1", on_event, &h, NULL), RDX_OK);
    assert_string_equal(h.recollected_as, "B1-NEW");
    hist h2 = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "B1-NEW", on_event, &h2, NULL), RDX_OK);
    assert_int_equal(h2.n, 1);
    assert_int_equal(h2.last_state, RDX_LAB_ST_ORDERED);
    assert_string_equal(h2.recollect_of, "B1");
    /* Rejected is final. */
    rdx_error err;
    assert_int_equal(ev(s, "B1", RDX_LAB_EV_START, T0 + 90 * MIN, "NJ-JSPH", &o, &err), RDX_ESTATE);
    assert_non_null(strstr(err.msg, "the state is final"));
    rdx_lab_store_free(s);
}

static void test_custody_reject_some_tests_only(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "H1", "P1", INT64_MIN, INT64_MIN); /* tests 2823-3 (K) and 4548-4 (HbA1c) */
    step(s, "H1", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "H1", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, RDX_LAB_ST_DISPATCHED);
    step(s, "H1", RDX_LAB_EV_RECEIVE, T0 + 80 * MIN, RDX_LAB_ST_RECEIVED);
    /* Hemolysed: potassium is void, HbA1c stands. */
    rdx_lab_event_in in = {.barcode = "H1",
                           .kind = RDX_LAB_EV_REJECT,
                           .reason = "HEMOLYSED",
                           .tests = "2823-3",
                           .actor = "NJ-JSPH",
                           .reported_ms = T0 + 81 * MIN};
    rdx_lab_event_out o;
    assert_int_equal(rdx_lab_custody_event(s, &in, T0 + 81 * MIN, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_RECEIVED);
    assert_string_equal(o.recollect, "H1-R1");
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "H1", on_event, &h, NULL), RDX_OK);
    assert_int_equal(h.last_state, RDX_LAB_ST_RECEIVED);
    /* The tube goes on for HbA1c. */
    step(s, "H1", RDX_LAB_EV_START, T0 + 90 * MIN, RDX_LAB_ST_IN_TESTING);
    /* A test that is not (or no longer) on the tube cannot be rejected. */
    in.tests = "2823-3";
    in.reported_ms = T0 + 95 * MIN;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_custody_event(s, &in, T0 + 95 * MIN, &o, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "'2823-3' is not on this tube"));
    /* Rejecting the last active test rejects the tube. */
    in.tests = "4548-4";
    in.new_barcode = "H1-R2";
    assert_int_equal(rdx_lab_custody_event(s, &in, T0 + 96 * MIN, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_REJECTED);
    rdx_lab_store_free(s);
}

static void test_custody_cancel_rules(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    rdx_lab_event_out o;
    rdx_error err;
    /* Before pickup: cancelled. */
    reg(s, "C1", "P1", INT64_MIN, INT64_MIN);
    step(s, "C1", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "C1", RDX_LAB_EV_CANCEL, T0 + MIN, RDX_LAB_ST_CANCELLED);
    /* After dispatch: the request is logged, the lab answers UC and the test completes. */
    reg(s, "C2", "P1", INT64_MIN, INT64_MIN);
    step(s, "C2", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "C2", RDX_LAB_EV_DISPATCH, T0 + MIN, RDX_LAB_ST_DISPATCHED);
    assert_int_equal(ev(s, "C2", RDX_LAB_EV_CANCEL, T0 + 2 * MIN, "X", &o, &err), RDX_OK);
    assert_int_equal(o.unable_to_cancel, 1);
    assert_int_equal(o.to, RDX_LAB_ST_DISPATCHED);
    hist hc = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "C2", on_event, &hc, NULL), RDX_OK);
    assert_int_equal(hc.kinds[hc.n - 1], RDX_LAB_EV_CANCEL);
    assert_int_equal(hc.last_state, RDX_LAB_ST_DISPATCHED);
    /* After the result: refused, correction only. */
    step(s, "C2", RDX_LAB_EV_RECEIVE, T0 + 30 * MIN, RDX_LAB_ST_RECEIVED);
    step(s, "C2", RDX_LAB_EV_START, T0 + 31 * MIN, RDX_LAB_ST_IN_TESTING);
    step(s, "C2", RDX_LAB_EV_RESULT, T0 + 60 * MIN, RDX_LAB_ST_RESULTED);
    assert_int_equal(ev(s, "C2", RDX_LAB_EV_CANCEL, T0 + 61 * MIN, "X", &o, &err), RDX_ESTATE);
    assert_non_null(strstr(err.msg, "only corrected"));
    rdx_lab_store_free(s);
}

static void test_custody_stability_expired_at_receipt(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "E1", "P1", T0 + 240 * MIN, T0 + 90 * MIN);
    step(s, "E1", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "E1", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, RDX_LAB_ST_DISPATCHED);
    /* The courier was late: received after 5 h, past the 4 h stability. */
    rdx_lab_event_out o;
    rdx_error err;
    assert_int_equal(ev(s, "E1", RDX_LAB_EV_RECEIVE, T0 + 300 * MIN, "NJ-JSPH", &o, &err), RDX_OK);
    assert_int_equal(o.condition, RDX_LAB_COND_EXPIRED);
    assert_int_equal(o.to, RDX_LAB_ST_REJECTED);
    assert_string_equal(o.recollect, "E1-R1");
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "E1", on_event, &h, NULL), RDX_OK);
    assert_int_equal(h.kinds[h.n - 1], RDX_LAB_EV_REJECT);
    rdx_lab_store_free(s);
}

static void test_custody_wrong_container_and_insufficient(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    const char *bc[] = {"W1", "I1"};
    for (int k = 0; k < 2; k++) {
        reg(s, bc[k], "P1", INT64_MIN, INT64_MIN);
        step(s, bc[k], RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
        step(s, bc[k], RDX_LAB_EV_DISPATCH, T0 + MIN, RDX_LAB_ST_DISPATCHED);
    }
    rdx_lab_event_in in = {.barcode = "W1",
                           .kind = RDX_LAB_EV_RECEIVE,
                           .condition = RDX_LAB_COND_WRONG_CONTAINER,
                           .actor = "NJ-JSPH",
                           .reported_ms = T0 + 30 * MIN};
    rdx_lab_event_out o;
    /* A wrong container spoils every test: rejected on receipt, recollection opened. */
    assert_int_equal(rdx_lab_custody_event(s, &in, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_REJECTED);
    assert_string_equal(o.recollect, "W1-R1");
    /* Too little blood for all the tests: received; the lab voids what it cannot do. */
    in.barcode = "I1";
    in.condition = RDX_LAB_COND_INSUFFICIENT;
    assert_int_equal(rdx_lab_custody_event(s, &in, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_RECEIVED);
    assert_string_equal(o.recollect, "");
    in.kind = RDX_LAB_EV_REJECT;
    in.condition = RDX_LAB_COND_OK;
    in.reason = "INSUFFICIENT";
    in.tests = "4548-4";
    assert_int_equal(rdx_lab_custody_event(s, &in, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.to, RDX_LAB_ST_RECEIVED);
    assert_string_equal(o.recollect, "I1-R1");
    rdx_lab_store_free(s);
}

static void test_custody_lost_in_transit_is_overdue(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    reg(s, "L1", "P1", INT64_MIN, T0 + 90 * MIN);
    reg(s, "L2", "P1", INT64_MIN, T0 + 90 * MIN);
    step(s, "L1", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "L1", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, RDX_LAB_ST_DISPATCHED);
    step(s, "L2", RDX_LAB_EV_COLLECT, T0, RDX_LAB_ST_COLLECTED);
    step(s, "L2", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, RDX_LAB_ST_DISPATCHED);
    step(s, "L2", RDX_LAB_EV_RECEIVE, T0 + 85 * MIN, RDX_LAB_ST_RECEIVED);
    size_t n = 99;
    hist h = {0};
    /* Within the courier window plus grace: nothing yet. */
    assert_int_equal(rdx_lab_custody_overdue(s, T0 + 100 * MIN, 30, on_event, &h, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rdx_lab_custody_overdue(s, T0 + 130 * MIN, 30, on_event, &h, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(h.kinds[0], RDX_LAB_EV_DISPATCH);
    step(s, "L1", RDX_LAB_EV_LOSE, T0 + 140 * MIN, RDX_LAB_ST_LOST);
    assert_int_equal(rdx_lab_custody_overdue(s, T0 + 150 * MIN, 30, NULL, NULL, &n, NULL), RDX_OK);
    assert_int_equal(n, 0);
    rdx_lab_store_free(s);
}

static rdx_lab_hl7_msg *oru(const char *ctl, const char *placer, const char *status)
{
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "MSH|^~\\&|LIS|NJ-JSPH|RDX|NJ-HUB|202612011300+0800||ORU^R01|%s|P|2.5.1\r"
                     "PID|1||P1\rOBR|1|%s||2823-3^K^LN\rOBX|1|NM|2823-3^K^LN||4.1|mmol/L|||||%s\r",
                     ctl, placer, status);
    rdx_lab_hl7_msg *m = NULL;
    assert_int_equal(rdx_lab_hl7_parse(text, (size_t)n, &m, NULL), RDX_OK);
    return m;
}

static void test_result_apply_outcomes(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    rdx_lab_specimen_reg r = {.authority = "NJ-GULOU-CHC",
                              .barcode = "X1",
                              .patient_id = "P1",
                              .order_sender = "NJ-GULOU-CHC",
                              .order_control = "CTL-1",
                              .tests = "2823-3",
                              .placer = "PL-1",
                              .stable_until_ms = INT64_MIN,
                              .arrival_due_ms = INT64_MIN};
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, NULL, NULL), RDX_OK);
    step(s, "X1", RDX_LAB_EV_CANCEL, T0 + MIN, RDX_LAB_ST_CANCELLED);
    rdx_lab_result_outcome o;
    /* A result for a cancelled order: AR. */
    rdx_lab_hl7_msg *m = oru("R1", "PL-1", "F");
    assert_int_equal(rdx_lab_result_apply(s, m, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.code, RDX_LAB_ACK_AR);
    assert_int_equal(o.hl7_error, 206);
    assert_non_null(strstr(o.text, "cancelled"));
    rdx_lab_hl7_free(m);
    /* Unknown placer: AE 204 at OBR-2. */
    m = oru("R2", "PL-404", "F");
    assert_int_equal(rdx_lab_result_apply(s, m, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.code, RDX_LAB_ACK_AE);
    assert_int_equal(o.hl7_error, 204);
    assert_string_equal(o.err_segment, "OBR");
    assert_int_equal(o.err_field, 2);
    rdx_lab_hl7_free(m);
    /* OBX-11 missing: AE 101 at OBX-11. */
    m = oru("R3", "PL-1", "");
    assert_int_equal(rdx_lab_result_apply(s, m, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.code, RDX_LAB_ACK_AE);
    assert_int_equal(o.hl7_error, 101);
    assert_int_equal(o.err_field, 11);
    rdx_lab_hl7_free(m);
    /* Not a result at all: AR 200. */
    const char adt[] = "MSH|^~\\&|A|B|C|D|20261201||ADT^A01|9|P|2.5.1\r";
    assert_int_equal(rdx_lab_hl7_parse(adt, sizeof adt - 1, &m, NULL), RDX_OK);
    assert_int_equal(rdx_lab_result_apply(s, m, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.code, RDX_LAB_ACK_AR);
    assert_int_equal(o.hl7_error, 200);
    rdx_lab_hl7_free(m);
    rdx_lab_store_free(s);
}

static void on_tube(void *user, const rdx_lab_specimen_rec *sp)
{
    (void)sp;
    (*(size_t *)user)++;
}

static void test_custody_split_order_aggregates_children(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    rdx_lab_specimen_reg r = {.authority = "MAS-EAST-CHC",
                              .barcode = "M.1",
                              .patient_id = "P1",
                              .order_sender = "MAS-EAST-CHC",
                              .order_control = "O-9",
                              .parent_barcode = "M",
                              .tests = "2823-3,3016-3",
                              .stable_until_ms = INT64_MIN,
                              .arrival_due_ms = INT64_MIN};
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, NULL, NULL), RDX_OK);
    r.barcode = "M.2";
    r.tests = "2857-1";
    assert_int_equal(rdx_lab_custody_register(s, &r, T0, NULL, NULL), RDX_OK);
    rdx_lab_order_state os;
    size_t n = 0;
    assert_int_equal(rdx_lab_custody_order(s, "MAS-EAST-CHC", "O-9", on_tube, &n, &os, NULL),
                     RDX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(os.tubes, 2);
    assert_int_equal(os.least, RDX_LAB_ST_ORDERED);
    const rdx_lab_spec_state path[] = {RDX_LAB_ST_COLLECTED, RDX_LAB_ST_DISPATCHED,
                                       RDX_LAB_ST_RECEIVED, RDX_LAB_ST_IN_TESTING,
                                       RDX_LAB_ST_RESULTED};
    for (int k = 0; k < 5; k++) {
        step(s, "M.1", (rdx_lab_event_kind)(k + 1), T0 + k * MIN, path[k]);
    }
    assert_int_equal(rdx_lab_custody_order(s, "MAS-EAST-CHC", "O-9", NULL, NULL, &os, NULL),
                     RDX_OK);
    assert_int_equal(os.resulted, 1);
    assert_non_null(strstr(os.summary, "partial results: 1 of 2 tube(s) resulted, 2 of 3 test(s)"));
    assert_int_equal(os.tests, 3);
    assert_int_equal(os.tests_resulted, 2);
    /* The second tube is rejected and recollected: the recollection takes its place. */
    step(s, "M.2", RDX_LAB_EV_REJECT, T0, RDX_LAB_ST_REJECTED);
    assert_int_equal(rdx_lab_custody_order(s, "MAS-EAST-CHC", "O-9", NULL, NULL, &os, NULL),
                     RDX_OK);
    assert_int_equal(os.tubes, 2);
    assert_int_equal(os.least, RDX_LAB_ST_ORDERED);
    for (int k = 0; k < 5; k++) {
        step(s, "M.2-R1", (rdx_lab_event_kind)(k + 1), T0 + (10 + k) * MIN, path[k]);
    }
    assert_int_equal(rdx_lab_custody_order(s, "MAS-EAST-CHC", "O-9", NULL, NULL, &os, NULL),
                     RDX_OK);
    assert_string_equal(os.summary, "resulted");
    assert_int_equal(rdx_lab_custody_order(s, "X", "Y", NULL, NULL, &os, NULL), RDX_ENOTFOUND);
    rdx_lab_store_free(s);
}

static void test_result_matches_placer_within_its_clinic(void **state)
{
    (void)state;
    rdx_lab_store *s = store();
    /* Two clinics that both number their orders from 1. */
    const char *clinics[] = {"NJ-GULOU-CHC", "NJ-XUANWU-CHC"};
    for (int k = 0; k < 2; k++) {
        rdx_lab_specimen_reg r = {.authority = clinics[k],
                                  .barcode = k ? "XW1" : "GL1",
                                  .patient_id = "P1",
                                  .order_sender = clinics[k],
                                  .order_control = "CTL-1",
                                  .tests = "2823-3,4548-4",
                                  .placer = "1",
                                  .volume_ml = -1,
                                  .stable_until_ms = INT64_MIN,
                                  .arrival_due_ms = INT64_MIN};
        assert_int_equal(rdx_lab_custody_register(s, &r, T0, NULL, NULL), RDX_OK);
    }
    rdx_lab_event_in in = {.authority = "NJ-XUANWU-CHC", .actor = "X", .reported_ms = T0};
    in.barcode = "XW1";
    rdx_lab_event_kind path[] = {RDX_LAB_EV_COLLECT, RDX_LAB_EV_DISPATCH, RDX_LAB_EV_RECEIVE};
    for (int k = 0; k < 3; k++) {
        in.kind = path[k];
        in.reported_ms = T0 + k * MIN;
        assert_int_equal(rdx_lab_custody_event(s, &in, T0, NULL, NULL), RDX_OK);
    }
    /* Potassium is void on the hemolysed tube; HbA1c stands. */
    in.kind = RDX_LAB_EV_REJECT;
    in.tests = "2823-3";
    in.reason = "HEMOLYSED";
    assert_int_equal(rdx_lab_custody_event(s, &in, T0, NULL, NULL), RDX_OK);
    /* The HbA1c result names the Xuanwu placer in OBR-2.2: it finds XW1, not GL1. */
    const char msg[] = "MSH|^~\\&|LIS|NJ-JSPH|RDX|NJ-HUB|202612011300+0800||ORU^R01|R9|P|2.5.1\r"
                       "OBR|1|1^NJ-XUANWU-CHC||4548-4^HbA1c^LN\r"
                       "OBX|1|NM|4548-4^HbA1c^LN||6.1|%|||||F\r";
    rdx_lab_hl7_msg *m = NULL;
    assert_int_equal(rdx_lab_hl7_parse(msg, sizeof msg - 1, &m, NULL), RDX_OK);
    rdx_lab_result_outcome o;
    assert_int_equal(rdx_lab_result_apply(s, m, T0, &o, NULL), RDX_OK);
    assert_int_equal(o.code, RDX_LAB_ACK_AA);
    assert_string_equal(o.clinic, "NJ-XUANWU-CHC");
    hist h = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "XW1", on_event, &h, NULL), RDX_OK);
    assert_int_equal(h.last_state, RDX_LAB_ST_RESULTED);
    hist g = {0};
    assert_int_equal(rdx_lab_custody_history(s, NULL, "GL1", on_event, &g, NULL), RDX_OK);
    assert_int_equal(g.last_state, RDX_LAB_ST_ORDERED);
    rdx_lab_hl7_free(m);
    rdx_lab_store_free(s);
}

static void test_custody_names_parse(void **state)
{
    (void)state;
    rdx_lab_event_kind k;
    rdx_lab_condition c;
    assert_int_equal(rdx_lab_event_parse("dispatch", &k), RDX_OK);
    assert_int_equal(k, RDX_LAB_EV_DISPATCH);
    assert_int_equal(rdx_lab_event_parse("order", &k), RDX_EINVAL);
    assert_int_equal(rdx_lab_event_parse("fly", &k), RDX_EINVAL);
    assert_int_equal(rdx_lab_condition_parse("wrong-container", &c), RDX_OK);
    assert_int_equal(c, RDX_LAB_COND_WRONG_CONTAINER);
    assert_int_equal(rdx_lab_condition_parse("expired", &c), RDX_EINVAL);
    assert_string_equal(rdx_lab_state_name(RDX_LAB_ST_IN_TESTING), "in-testing");
    assert_string_equal(rdx_lab_state_name((rdx_lab_spec_state)42), "?");
}

static int oom_store(void *ctx)
{
    (void)ctx;
    rdx_lab_store *s = NULL;
    rdx_lab_catalogue *c = NULL;
    rdx_lab_router *r = NULL;
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    rdx_lab_routing *rt = NULL, *back = NULL;
    int rc = 1;
    const char msg[] = "MSH|^~\\&|HIS|NJ-GULOU-CHC|RDX|HUB|202612010700+0800||OML^O21|C2|P|2.5.1\r"
                       "PID|1||P1\rOBR|1|O2||2823-3\rSPM|1|T9||119364003|||||||||||||"
                       "202612010800+0800\r";
    rdx_lab_event_out eo;
    rdx_lab_event_in ev = {
        .barcode = "T9", .kind = RDX_LAB_EV_COLLECT, .actor = "X", .reported_ms = T0};
    rdx_lab_specimen_reg reg = {.authority = "NJ-GULOU-CHC",
                                .barcode = "T9",
                                .patient_id = "P1",
                                .order_sender = "NJ-GULOU-CHC",
                                .order_control = "C2",
                                .tests = "2823-3",
                                .volume_ml = -1,
                                .collected_ms = T0,
                                .stable_until_ms = INT64_MIN,
                                .arrival_due_ms = INT64_MIN};
    if (rdx_lab_store_open("sqlite::memory:", &s, NULL) != RDX_OK ||
        rdx_lab_catalogue_load("docs/examples/network.ini", &c, NULL) != RDX_OK ||
        rdx_lab_router_new(c, &r, NULL) != RDX_OK ||
        rdx_lab_hl7_parse(msg, sizeof msg - 1, &m, NULL) != RDX_OK ||
        rdx_lab_order_from_hl7(m, 480, &o, NULL) != RDX_OK ||
        rdx_lab_route(r, o, &rt, NULL) != RDX_OK ||
        rdx_lab_store_save(s, "NJ-GULOU-CHC", "C2", rt, T0, NULL) != RDX_OK ||
        rdx_lab_store_lookup(s, "NJ-GULOU-CHC", "C2", &back, NULL) != RDX_OK ||
        rdx_lab_store_load(s, r, NULL) != RDX_OK ||
        rdx_lab_custody_register(s, &reg, T0, NULL, NULL) != RDX_OK ||
        rdx_lab_custody_event(s, &ev, T0, &eo, NULL) != RDX_OK) {
        goto out;
    }
    rc = rdx_lab_routing_count(back) == 1 ? 0 : 1;
out:
    rdx_lab_routing_free(back);
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
    rdx_lab_store_free(s);
    return rc;
}

static void test_store_oom_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(oom_store, NULL) > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_custody_happy_path_and_history),
        cmocka_unit_test(test_custody_illegal_transitions_are_refused),
        cmocka_unit_test(test_custody_rescan_is_idempotent),
        cmocka_unit_test(test_custody_barcodes_duplicate_and_wrong_patient),
        cmocka_unit_test(test_custody_reject_opens_recollection),
        cmocka_unit_test(test_custody_reject_some_tests_only),
        cmocka_unit_test(test_custody_cancel_rules),
        cmocka_unit_test(test_custody_stability_expired_at_receipt),
        cmocka_unit_test(test_custody_wrong_container_and_insufficient),
        cmocka_unit_test(test_custody_lost_in_transit_is_overdue),
        cmocka_unit_test(test_result_apply_outcomes),
        cmocka_unit_test(test_custody_split_order_aggregates_children),
        cmocka_unit_test(test_result_matches_placer_within_its_clinic),
        cmocka_unit_test(test_custody_names_parse),
        cmocka_unit_test(test_store_oom_sweep),
    };
    return cmocka_run_group_tests_name("lab_custody", tests, NULL, NULL);
}
