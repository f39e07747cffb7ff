/*
 * The hub's two lab steps (an order in: per-lab orders, ACK, order response;
 * a result in: ACK, forwarded ORU), one-transaction recording, the store's
 * schema version and lab availability kept across runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/lab.h"
#include "support/testutil.h"

#define T0  INT64_C(1796083200000) /* 2026-12-01 08:00 +08:00 */
#define MIN INT64_C(60000)
#define TS  "20261201083000+0800"

static const rdx_lab_hub_opts opts = {.timestamp = TS, .now_ms = T0};

static rdx_lab_catalogue *catalogue(void)
{
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_catalogue_load("docs/examples/network.ini", &c, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return c;
}

static rdx_lab_store *store(const char *uri)
{
    rdx_lab_store *s = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_store_open(uri, &s, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return s;
}

static char *slurp(const char *path, size_t *len)
{
    rdx_buf b;
    rdx_buf_init(&b, 1u << 24);
    if (rdx_file_read(path, &b, NULL) != RDX_OK) {
        fail_msg("cannot read %s", path);
    }
    *len = b.len;
    return (char *)b.data; /* NUL-terminated, owned by the caller */
}

/* Replace every occurrence of from by to in s (same length or not); returns a new string. */
static char *replace(const char *s, const char *from, const char *to)
{
    size_t n = 0, lf = strlen(from), lt = strlen(to);
    for (const char *p = strstr(s, from); p; p = strstr(p + lf, from)) {
        n++;
    }
    char *out = malloc(strlen(s) + n * lt + 1), *w = out;
    assert_non_null(out);
    for (const char *p = s;;) {
        const char *q = strstr(p, from);
        if (q == NULL) {
            memcpy(w, p, strlen(p) + 1);
            break;
        }
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, to, lt);
        w += lt;
        p = q + lf;
    }
    return out;
}

static rdx_lab_hub_order_out *hub_order(rdx_lab_store *s, const rdx_lab_catalogue *c,
                                        const char *data, size_t len)
{
    rdx_lab_hub_order_out *h = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_hub_order(s, c, data, len, &opts, &h, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return h;
}

static rdx_lab_hl7_msg *parse(const rdx_lab_hub_msg *hm)
{
    rdx_lab_hl7_msg *m = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_hl7_parse(hm->data, hm->len, &m, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return m;
}

/* The decoded value at path (static buffer: one value at a time). */
static const char *get(const rdx_lab_hl7_msg *m, const char *path)
{
    static char v[1024];
    rdx_buf b;
    rdx_buf_init(&b, sizeof v - 1);
    v[0] = '\0';
    if (rdx_lab_hl7_get(m, path, &b, NULL) == RDX_OK && b.data != NULL) {
        memcpy(v, b.data, b.len + 1);
    }
    rdx_buf_free(&b);
    return v;
}

static void segments(const rdx_lab_hl7_msg *m, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < rdx_lab_hl7_segment_count(m); i++) {
        char id[4];
        rdx_lab_hl7_segment_id(m, i, id);
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", i ? " " : "", id);
    }
}

static void assert_same_bytes(const rdx_lab_hub_msg *hm, const char *golden)
{
    size_t n = 0;
    char *want = slurp(golden, &n);
    if (hm->len != n || memcmp(hm->data, want, n) != 0) {
        fail_msg("%s differs (got %zu bytes, want %zu):\n%.*s", golden, hm->len, n, (int)hm->len,
                 (const char *)hm->data);
    }
    free(want);
}

static void test_hub_order_split_gives_lab_orders_ack_and_orl(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/mas_split_oml.hl7", &len);
    rdx_lab_hub_order_out *h = hub_order(s, c, oml, len);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    assert_int_equal(rdx_lab_hub_order_already_routed(h), 0);
    assert_string_equal(rdx_lab_hub_order_text(h), "3 of 3 test(s) routed to 2 lab(s)");

    /* The order for each performing lab, addressed to it. */
    assert_int_equal(rdx_lab_hub_order_lab_count(h), 2);
    rdx_lab_hub_msg hm;
    assert_int_equal(rdx_lab_hub_order_lab_at(h, 0, &hm), 1);
    assert_string_equal(hm.facility, "MAS-CCL");
    rdx_lab_hl7_msg *m = parse(&hm);
    assert_string_equal(get(m, "MSH-4"), "NJ-HUB");
    assert_string_equal(get(m, "MSH-10"), "MAS-E-0042-MAS-CCL");
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "OBR"), 2);
    assert_string_equal(get(m, "SPM-2"), "MAE0042.1");
    assert_string_equal(get(m, "SPM-3"), "MAE0042");
    rdx_lab_hl7_free(m);
    assert_int_equal(rdx_lab_hub_order_lab_at(h, 1, &hm), 1);
    assert_string_equal(hm.facility, "NJ-JSPH");
    m = parse(&hm);
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "OBR"), 1);
    assert_string_equal(get(m, "OBR-4.1"), "2857-1");
    assert_string_equal(get(m, "SPM-2"), "MAE0042.2");
    rdx_lab_hl7_free(m);
    assert_int_equal(rdx_lab_hub_order_lab_at(h, 2, &hm), 0);

    /* The ACK and the ORL^O22 to the clinic: exact bytes, then structure. */
    rdx_lab_hub_order_ack(h, &hm);
    assert_string_equal(hm.facility, "MAS-EAST-CHC");
    assert_same_bytes(&hm, "tests/fixtures/lab/mas_split_ack.hl7");
    assert_int_equal(rdx_lab_hub_order_response(h, &hm), 1);
    assert_string_equal(hm.facility, "MAS-EAST-CHC");
    assert_same_bytes(&hm, "tests/fixtures/lab/mas_split_orl.hl7");
    m = parse(&hm);
    char seq[256];
    segments(m, seq, sizeof seq);
    /* HL7 v2.5.1 ORL_O22: MSH MSA [PID {ORC [OBR {SPM}]}] */
    assert_string_equal(seq, "MSH MSA PID ORC OBR SPM ORC OBR SPM ORC OBR SPM");
    assert_string_equal(get(m, "MSH-9.1"), "ORL");
    assert_string_equal(get(m, "MSH-9.2"), "O22");
    assert_string_equal(get(m, "MSH-9.3"), "ORL_O22");
    assert_string_equal(get(m, "MSH-6"), "MAS-EAST-CHC");
    assert_string_equal(get(m, "MSA-1"), "AA");
    assert_string_equal(get(m, "MSA-2"), "MAS-E-0042");
    assert_string_equal(get(m, "PID-3.1"), "MA77001");
    assert_string_equal(get(m, "ORC[1]-1"), "OK");
    assert_string_equal(get(m, "ORC[1]-5"), "SC");
    assert_string_equal(get(m, "ORC[1]-16.1"), "ROUTED");
    assert_string_equal(get(m, "ORC[1]-16.4"), "MAS-CCL");
    assert_string_equal(get(m, "ORC[3]-16.4"), "NJ-JSPH");
    assert_string_equal(get(m, "OBR[3]-4.1"), "2857-1");
    assert_string_equal(get(m, "SPM[3]-2.1.1"), "MAE0042.2");
    assert_string_equal(get(m, "SPM[3]-3.1.1"), "MAE0042");
    rdx_lab_hl7_free(m);

    /* Routed again: the stored decisions, no second registration, the same response. */
    rdx_lab_hub_order_free(h);
    h = hub_order(s, c, oml, len);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    assert_int_equal(rdx_lab_hub_order_already_routed(h), 1);
    assert_int_equal(rdx_lab_routing_count(rdx_lab_hub_order_routing(h)), 3);
    assert_int_equal(rdx_lab_hub_order_lab_count(h), 2);
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_load(s, r, NULL), RDX_OK);
    int64_t day = rdx_lab_routing_at(rdx_lab_hub_order_routing(h), 0)->day;
    assert_int_equal(rdx_lab_router_load(r, "MAS-CCL", day), 2);
    rdx_lab_router_free(r);
    rdx_lab_hub_order_free(h);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

static void test_hub_order_refused_tests_are_UA(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/yz_refusals_oml.hl7", &len);
    rdx_lab_hub_order_out *h = hub_order(s, c, oml, len);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    rdx_lab_hub_msg hm;
    assert_int_equal(rdx_lab_hub_order_response(h, &hm), 1);
    rdx_lab_hl7_msg *m = parse(&hm);
    assert_string_equal(get(m, "ORC[1]-1"), "UA");
    assert_string_equal(get(m, "ORC[1]-5"), "");
    assert_string_equal(get(m, "ORC[1]-16.1"), "NO_LAB");
    assert_string_equal(get(m, "ORC[1]-16.4"), "");
    assert_string_equal(get(m, "ORC[2]-16.1"), "WRONG_SPECIMEN");
    assert_string_equal(get(m, "ORC[3]-16.1"), "STABILITY");
    assert_string_equal(get(m, "ORC[4]-1"), "OK");
    assert_string_equal(get(m, "ORC[4]-16.4"), "NJ-MCH");
    rdx_lab_hl7_free(m);
    assert_int_equal(rdx_lab_hub_order_lab_count(h), 1);
    rdx_lab_hub_order_free(h);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

static void test_hub_order_orm_gets_orr_o02(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    char *orm = replace(oml, "OML^O21^OML_O21", "ORM^O01^ORM_O01");
    rdx_lab_hub_order_out *h = hub_order(s, c, orm, strlen(orm));
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    rdx_lab_hub_msg hm;
    assert_int_equal(rdx_lab_hub_order_response(h, &hm), 1);
    rdx_lab_hl7_msg *m = parse(&hm);
    assert_string_equal(get(m, "MSH-9.1"), "ORR");
    assert_string_equal(get(m, "MSH-9.2"), "O02");
    /* ORR_O02: MSH MSA [PID {ORC [OBR]}], no SPM. */
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "SPM"), 0);
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "ORC"), 5);
    assert_int_equal(rdx_lab_hl7_segment_occurrences(m, "OBR"), 5);
    rdx_lab_hl7_free(m);
    rdx_lab_hub_order_ack(h, &hm);
    m = parse(&hm);
    assert_string_equal(get(m, "MSH-9.1"), "ACK");
    assert_string_equal(get(m, "MSH-9.2"), "O01");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_order_free(h);
    free(orm);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

static void test_hub_order_bad_message_gets_AE(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    static const char junk[] = "this is not HL7";
    rdx_lab_hub_order_out *h = hub_order(s, c, junk, sizeof junk - 1);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AE);
    rdx_lab_hub_msg hm;
    assert_int_equal(rdx_lab_hub_order_response(h, &hm), 0);
    assert_int_equal(rdx_lab_hub_order_lab_count(h), 0);
    assert_null(rdx_lab_hub_order_routing(h));
    rdx_lab_hub_order_ack(h, &hm);
    rdx_lab_hl7_msg *m = parse(&hm);
    assert_string_equal(get(m, "MSA-1"), "AE");
    assert_string_equal(get(m, "ERR-3.1"), "102");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_order_free(h);

    /* A result sent to the order step: AE with ERR 101, nothing stored. */
    size_t len = 0;
    char *oru = slurp("tests/fixtures/lab/jsph_oru.hl7", &len);
    h = hub_order(s, c, oru, len);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AE);
    rdx_lab_hub_order_ack(h, &hm);
    m = parse(&hm);
    assert_string_equal(get(m, "MSA-2"), "JSPH-R-0001");
    assert_string_equal(get(m, "ERR-3.1"), "101");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_order_free(h);
    free(oru);

    rdx_lab_hub_order_out *none = (rdx_lab_hub_order_out *)1;
    rdx_lab_hub_opts no_ts = {.now_ms = T0};
    assert_int_equal(rdx_lab_hub_order(s, c, junk, 3, &no_ts, &none, NULL), RDX_EINVAL);
    assert_null(none);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

typedef struct seen {
    size_t n;
} seen;

static void count_event(void *user, const rdx_lab_specimen_rec *sp, const rdx_lab_event_rec *e)
{
    (void)sp;
    (void)e;
    ((seen *)user)->n++;
}

/*
 * Tube 1 is new, tube 2's barcode belongs to another patient: the order is
 * refused (AR) and nothing of it is kept, not even tube 1's registration.
 */
static void test_hub_order_refused_barcode_leaves_no_trace(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_out *h = hub_order(s, c, oml, len);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    rdx_lab_hub_order_free(h);

    char *a = replace(oml, "GULOU-20261201-0001", "GULOU-20261201-0002");
    char *b = replace(a, "NJ0012345", "NJ0099999");
    char *other = replace(b, "NJGL26120101", "NJGL26120199");
    h = hub_order(s, c, other, strlen(other));
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AR);
    assert_non_null(strstr(rdx_lab_hub_order_text(h), "another patient"));
    rdx_lab_hub_msg hm;
    assert_int_equal(rdx_lab_hub_order_response(h, &hm), 0);
    rdx_lab_hub_order_ack(h, &hm);
    rdx_lab_hl7_msg *m = parse(&hm);
    assert_string_equal(get(m, "MSA-1"), "AR");
    assert_string_equal(get(m, "ERR-3.1"), "205");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_order_free(h);

    seen n = {0};
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120199", count_event, &n, NULL),
        RDX_ENOTFOUND);
    rdx_lab_routing *rt = NULL;
    assert_int_equal(rdx_lab_store_lookup(s, "NJ-GULOU-CHC", "GULOU-20261201-0002", &rt, NULL),
                     RDX_ENOTFOUND);
    /* The first order's tube still has only its own history. */
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120102", count_event, &n, NULL), RDX_OK);
    assert_int_equal(n.n, 1);
    free(other);
    free(b);
    free(a);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

/* rdx_lab_order_record: a failing tube rolls back the ones before it and the decisions. */
static void test_order_record_is_one_transaction(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    rdx_lab_router *r = NULL;
    rdx_lab_routing *rt = NULL;
    assert_int_equal(rdx_lab_hl7_parse(oml, len, &m, NULL), RDX_OK);
    assert_int_equal(rdx_lab_order_from_hl7(m, rdx_lab_catalogue_utc_offset_min(c), &o, NULL),
                     RDX_OK);
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_route(r, o, &rt, NULL), RDX_OK);
    /* The second tube's barcode is taken by another patient beforehand. */
    rdx_lab_specimen_reg taken = {.authority = "NJ-GULOU-CHC",
                                  .barcode = "NJGL26120102",
                                  .patient_id = "SOMEONE-ELSE",
                                  .patient_authority = "NJ-GULOU-CHC",
                                  .order_sender = "NJ-GULOU-CHC",
                                  .order_control = "OTHER",
                                  .tests = "4548-4",
                                  .stable_until_ms = INT64_MIN,
                                  .arrival_due_ms = INT64_MIN,
                                  .collected_ms = INT64_MIN,
                                  .volume_ml = -1};
    assert_int_equal(rdx_lab_custody_register(s, &taken, T0, NULL, NULL), RDX_OK);
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_order_record(s, o, rt, T0, &err), RDX_EDENIED);
    seen n = {0};
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101", count_event, &n, NULL),
        RDX_ENOTFOUND);
    rdx_lab_routing *back = NULL;
    assert_int_equal(rdx_lab_store_lookup(s, "NJ-GULOU-CHC", "GULOU-20261201-0001", &back, NULL),
                     RDX_ENOTFOUND);
    /* Without the conflict it is all stored. */
    rdx_lab_store_free(s);
    s = store("sqlite::memory:");
    assert_int_equal(rdx_lab_order_record(s, o, rt, T0, NULL), RDX_OK);
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101", count_event, &n, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_lookup(s, "NJ-GULOU-CHC", "GULOU-20261201-0001", &back, NULL),
                     RDX_OK);
    assert_int_equal(rdx_lab_routing_count(back), 5);
    rdx_lab_routing_free(back);
    rdx_lab_routing_free(rt);
    rdx_lab_router_free(r);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

static void event(rdx_lab_store *s, const char *barcode, rdx_lab_event_kind k, int64_t at,
                  const char *actor)
{
    rdx_lab_event_in in = {.barcode = barcode, .kind = k, .actor = actor, .reported_ms = at};
    rdx_lab_event_out o;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_custody_event(s, &in, at, &o, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
}

/*
 * The Gulou serum tube collected, dispatched and received at NJ-JSPH, then
 * rejected as hemolysed for its potassium: recollection NJGL26120101-R1.
 */
static void reject_gulou_potassium(rdx_lab_store *s)
{
    event(s, "NJGL26120101", RDX_LAB_EV_COLLECT, T0, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_RECEIVE, T0 + 80 * MIN, "NJ-JSPH");
    rdx_lab_event_in rej = {.barcode = "NJGL26120101",
                            .kind = RDX_LAB_EV_REJECT,
                            .actor = "NJ-JSPH",
                            .reason = "HEMOLYSED",
                            .tests = "2823-3",
                            .reported_ms = T0 + 85 * MIN};
    rdx_lab_event_out eo;
    assert_int_equal(rdx_lab_custody_event(s, &rej, T0 + 85 * MIN, &eo, NULL), RDX_OK);
    assert_string_equal(eo.recollect, "NJGL26120101-R1");
}

static void test_hub_result_acks_and_forwards(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    event(s, "NJGL26120101", RDX_LAB_EV_COLLECT, T0, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_RECEIVE, T0 + 90 * MIN, "NJ-JSPH");

    char *oru = slurp("tests/fixtures/lab/jsph_oru.hl7", &len);
    rdx_lab_hub_result_out *h = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_hub_result(s, oru, len, &opts, &h, &err), RDX_OK);
    const rdx_lab_result_outcome *o = rdx_lab_hub_result_outcome(h);
    assert_int_equal(o->code, RDX_LAB_ACK_AA);
    assert_string_equal(o->clinic, "NJ-GULOU-CHC");
    rdx_lab_hub_msg hm;
    rdx_lab_hub_result_ack(h, &hm);
    assert_string_equal(hm.facility, "NJ-JSPH");
    rdx_lab_hl7_msg *m = parse(&hm);
    assert_string_equal(get(m, "MSA-1"), "AA");
    assert_string_equal(get(m, "MSA-2"), "JSPH-R-0001");
    assert_string_equal(get(m, "MSH-10"), "ACK-JSPH-R-0001");
    rdx_lab_hl7_free(m);
    assert_int_equal(rdx_lab_hub_result_forward(h, &hm), 1);
    assert_string_equal(hm.facility, "NJ-GULOU-CHC");
    m = parse(&hm);
    assert_string_equal(get(m, "MSH-4"), "NJ-HUB");
    assert_string_equal(get(m, "MSH-6"), "NJ-GULOU-CHC");
    assert_string_equal(get(m, "MSH-10"), "RDX-JSPH-R-0001");
    assert_string_equal(get(m, "OBX[1]-5"), "4.1");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_result_free(h);

    /* The same message again: AA, applied once, nothing forwarded twice. */
    assert_int_equal(rdx_lab_hub_result(s, oru, len, &opts, &h, NULL), RDX_OK);
    assert_int_equal(rdx_lab_hub_result_outcome(h)->duplicate, 1);
    assert_int_equal(rdx_lab_hub_result_forward(h, &hm), 0);
    rdx_lab_hub_result_free(h);

    /* Unknown order: AE with ERR 204, nothing forwarded. */
    free(oru);
    oru = slurp("tests/fixtures/lab/jsph_oru_unknown.hl7", &len);
    assert_int_equal(rdx_lab_hub_result(s, oru, len, &opts, &h, NULL), RDX_OK);
    assert_int_equal(rdx_lab_hub_result_outcome(h)->code, RDX_LAB_ACK_AE);
    assert_int_equal(rdx_lab_hub_result_forward(h, &hm), 0);
    rdx_lab_hub_result_ack(h, &hm);
    m = parse(&hm);
    assert_string_equal(get(m, "ERR-3.1"), "204");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_result_free(h);

    /* Garbage: AE with ERR 102. */
    assert_int_equal(rdx_lab_hub_result(s, "MSH|", 4, &opts, &h, NULL), RDX_OK);
    assert_int_equal(rdx_lab_hub_result_outcome(h)->code, RDX_LAB_ACK_AE);
    rdx_lab_hub_result_ack(h, &hm);
    m = parse(&hm);
    assert_string_equal(get(m, "ERR-3.1"), "102");
    rdx_lab_hl7_free(m);
    rdx_lab_hub_result_free(h);
    free(oru);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

typedef struct tube_seen {
    char state[16];
    char resulted[64];
} tube_seen;

static void on_tube_state(void *user, const rdx_lab_specimen_rec *sp, const rdx_lab_event_rec *e)
{
    tube_seen *t = user;
    (void)e;
    snprintf(t->state, sizeof t->state, "%s", rdx_lab_state_name(sp->state));
    snprintf(t->resulted, sizeof t->resulted, "%s", sp->resulted_tests);
}

static const rdx_lab_result_outcome *result_of(rdx_lab_store *s, const char *text,
                                               rdx_lab_hub_result_out **h)
{
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_hub_result(s, text, strlen(text), &opts, h, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return rdx_lab_hub_result_outcome(*h);
}

/* Results per test: the tube (and the order) is resulted when all its tests are. */
static void test_hub_result_partial_results_per_test(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    event(s, "NJGL26120101", RDX_LAB_EV_COLLECT, T0, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_RECEIVE, T0 + 90 * MIN, "NJ-JSPH");

    /* Potassium and creatinine; the PSA on the same tube is still to come. */
    char *oru = slurp("tests/fixtures/lab/jsph_oru.hl7", &len);
    rdx_lab_hub_result_out *h = NULL;
    const rdx_lab_result_outcome *o = result_of(s, oru, &h);
    assert_int_equal(o->code, RDX_LAB_ACK_AA);
    assert_int_equal(o->specimens, 1);
    assert_int_equal(o->partial, 1);
    rdx_lab_hub_result_free(h);
    tube_seen t = {{0}, {0}};
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101", on_tube_state, &t, NULL),
        RDX_OK);
    assert_string_equal(t.state, "in-testing");
    assert_string_equal(t.resulted, "2160-0,2823-3");
    rdx_lab_order_state os;
    assert_int_equal(
        rdx_lab_custody_order(s, "NJ-GULOU-CHC", "GULOU-20261201-0001", NULL, NULL, &os, NULL),
        RDX_OK);
    assert_int_equal(os.tests, 5);
    assert_int_equal(os.tests_resulted, 2);
    assert_int_equal(os.resulted, 0);
    assert_non_null(strstr(os.summary, "partial results: 0 of 2 tube(s) resulted, 2 of 5 test(s)"));

    /* The potassium again as final, not as a correction: refused for that test. */
    char *again = replace(oru, "JSPH-R-0001", "JSPH-R-0011");
    o = result_of(s, again, &h);
    assert_int_equal(o->code, RDX_LAB_ACK_AR);
    assert_int_equal(o->hl7_error, 206);
    assert_non_null(strstr(o->text, "test 2823-3 on specimen NJGL26120101 already has a final"));
    rdx_lab_hub_result_free(h);

    /* A preliminary PSA (OBX-11 P) does not finish the tube; the final one does. */
    char *psa = slurp("tests/fixtures/lab/jsph_oru_psa.hl7", &len);
    char *a = replace(psa, "JSPH-R-0005", "JSPH-R-0006");
    char *prelim = replace(a, "|N|||F|", "|N|||P|");
    o = result_of(s, prelim, &h);
    assert_int_equal(o->code, RDX_LAB_ACK_AA);
    assert_int_equal(o->partial, 1);
    rdx_lab_hub_result_free(h);
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101", on_tube_state, &t, NULL),
        RDX_OK);
    assert_string_equal(t.state, "in-testing");
    o = result_of(s, psa, &h);
    assert_int_equal(o->code, RDX_LAB_ACK_AA);
    assert_int_equal(o->partial, 0);
    rdx_lab_hub_result_free(h);
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101", on_tube_state, &t, NULL),
        RDX_OK);
    assert_string_equal(t.state, "resulted");
    assert_string_equal(t.resulted, "2160-0,2823-3,2857-1");
    assert_int_equal(
        rdx_lab_custody_order(s, "NJ-GULOU-CHC", "GULOU-20261201-0001", NULL, NULL, &os, NULL),
        RDX_OK);
    assert_int_equal(os.resulted, 1);
    assert_int_equal(os.tests_resulted, 3);
    free(prelim);
    free(a);
    free(psa);
    free(again);
    free(oru);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

typedef struct lab_seen {
    char lab[32];
    char type[32];
} lab_seen;

static void on_tube_lab(void *user, const rdx_lab_specimen_rec *sp, const rdx_lab_event_rec *e)
{
    lab_seen *t = user;
    (void)e;
    snprintf(t->lab, sizeof t->lab, "%s", sp->lab);
}

/*
 * The sample network's Yangzhou -> Nanjing Maternity and Child Health run
 * goes Monday to Friday. A dried blood spot collected on Friday 2026-12-04
 * after the 10:00 pickup waits for Monday's: the decision, its recorded
 * reason and the tube's arrival due (what overdue detection uses) all say
 * Monday, so a tube dispatched on Monday is not overdue on Monday morning.
 */
static void test_hub_courier_weekdays_drive_eta_and_overdue(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    static const char oml[] =
        "MSH|^~\\&|HIS|YZ-EAST-CHC|RDX|NJ-HUB|20261204113000+0800||OML^O21^OML_O21|YZ-E-0100|P|"
        "2.5.1\rPID|1||YZ0100^^^YZ-EAST-CHC^MR||Zhao^Min||20261201|F\rORC|NW|YE-100\r"
        "OBR|1|YE-100||54089-8^Newborn screening panel^LN|||20261204110000+0800\r"
        "SPM|1|YZE0100&YZ-EAST-CHC||440500007^Dried blood spot^SCT|||||||||||||"
        "20261204110000+0800\r";
    rdx_lab_hub_order_out *h = hub_order(s, c, oml, sizeof oml - 1);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    const rdx_lab_decision *d = rdx_lab_routing_at(rdx_lab_hub_order_routing(h), 0);
    assert_string_equal(d->lab, "NJ-MCH");
    int64_t fri = INT64_C(1796353200000); /* 2026-12-04 11:00 +08:00 */
    assert_int_equal(d->collected_ms, fri);
    int64_t mon_pickup = fri + (3 * 24 - 1) * 60 * MIN; /* Monday 10:00 */
    assert_int_equal(d->pickup_ms, mon_pickup);
    assert_int_equal(d->arrival_ms, mon_pickup + 130 * MIN);
    assert_non_null(strstr(d->reason, "collected 2026-12-04 11:00, pickup Mon 2026-12-07 10:00 (no "
                                      "courier run on Sat, Sun), arrives 12:10"));
    rdx_lab_hub_order_free(h);
    /* The stored decision keeps the reason. */
    rdx_lab_routing *rt = NULL;
    assert_int_equal(rdx_lab_store_lookup(s, "YZ-EAST-CHC", "YZ-E-0100", &rt, NULL), RDX_OK);
    assert_non_null(strstr(rdx_lab_routing_at(rt, 0)->reason, "(no courier run on Sat, Sun)"));
    rdx_lab_routing_free(rt);

    event(s, "YZE0100", RDX_LAB_EV_COLLECT, fri, "YZ-EAST-CHC");
    event(s, "YZE0100", RDX_LAB_EV_DISPATCH, mon_pickup, "YZ-EAST-CHC");
    size_t n = 99;
    /* Monday 10:05 and 12:30: within the arrival due (12:10) plus 30 min of grace. */
    assert_int_equal(rdx_lab_custody_overdue(s, mon_pickup + 5 * MIN, 30, NULL, NULL, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rdx_lab_custody_overdue(s, mon_pickup + 150 * MIN, 30, NULL, NULL, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 0);
    /* Monday 12:45: no receipt scan at NJ-MCH: overdue. */
    assert_int_equal(rdx_lab_custody_overdue(s, mon_pickup + 165 * MIN, 30, NULL, NULL, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 1);

    /* TSH from Yangzhou on a Saturday: the Monday-to-Friday run to NJ-MCH does not go, the
     * run to Jiangsu Province Hospital keeps one weekend pickup, at 10:00. */
    static const char sat[] =
        "MSH|^~\\&|HIS|YZ-EAST-CHC|RDX|NJ-HUB|20261205083000+0800||OML^O21^OML_O21|YZ-E-0101|P|"
        "2.5.1\rPID|1||YZ0101^^^YZ-EAST-CHC^MR||Zhao^Min||20261201|F\rORC|NW|YE-101\r"
        "OBR|1|YE-101||3016-3^TSH^LN|||20261205080000+0800\r"
        "SPM|1|YZE0101&YZ-EAST-CHC||119364003^Serum^SCT|||||||||||||20261205080000+0800\r";
    h = hub_order(s, c, sat, sizeof sat - 1);
    assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AA);
    d = rdx_lab_routing_at(rdx_lab_hub_order_routing(h), 0);
    if (strcmp(d->lab, "NJ-JSPH") != 0 ||
        strstr(d->reason, "collected 2026-12-05 08:00, pickup 10:00 (the Sat timetable), "
                          "arrives 12:00") == NULL) {
        fail_msg("%s: %s", d->lab, d->reason);
    }
    assert_int_equal(d->pickup_ms, fri + (24 - 1) * 60 * MIN); /* Saturday 10:00 */
    rdx_lab_hub_order_free(h);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

static void count_moves(void *user, const rdx_lab_reroute_rec *rec)
{
    (void)rec;
    (*(size_t *)user)++;
}

/* A recollection and an add-on's new collection are routed by themselves, once. */
static void test_custody_route_new_tubes(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    reject_gulou_potassium(s);
    /* An add-on the whole-blood tube cannot take: a new collection, on serum. */
    rdx_lab_addon_outcome ao;
    assert_int_equal(rdx_lab_custody_addon(s, c, NULL, "NJGL26120102", "1742-6", "NJ-GULOU-CHC",
                                           T0 + 90 * MIN, &ao, NULL),
                     RDX_OK);
    assert_int_equal(ao.accepted, 0);
    assert_string_equal(ao.new_barcode, "NJGL26120102-A1");

    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_load(s, r, NULL), RDX_OK);
    size_t moved = 0, n = 0;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_custody_route_new(s, r, T0 + 90 * MIN, count_moves, &moved, &n, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(n, 2);
    assert_int_equal(moved, 2);
    lab_seen t = {{0}, {0}};
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101-R1", on_tube_lab, &t, NULL),
        RDX_OK);
    assert_string_not_equal(t.lab, "");
    char r1_lab[32];
    snprintf(r1_lab, sizeof r1_lab, "%s", t.lab);
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120102-A1", on_tube_lab, &t, NULL),
        RDX_OK);
    assert_string_not_equal(t.lab, "");
    /* The order's decision for the potassium now names the recollection and its lab. */
    rdx_lab_routing *rt = NULL;
    assert_int_equal(rdx_lab_store_lookup(s, "NJ-GULOU-CHC", "GULOU-20261201-0001", &rt, NULL),
                     RDX_OK);
    assert_int_equal(rdx_lab_routing_count(rt), 6); /* five ordered, one add-on */
    assert_string_equal(rdx_lab_routing_at(rt, 0)->specimen_id, "NJGL26120101-R1");
    assert_string_equal(rdx_lab_routing_at(rt, 0)->lab, r1_lab);
    assert_string_equal(rdx_lab_routing_at(rt, 5)->specimen_id, "NJGL26120102-A1");
    assert_string_equal(rdx_lab_routing_at(rt, 5)->test_code, "1742-6");
    assert_int_equal(rdx_lab_routing_at(rt, 5)->code, RDX_LAB_ROUTED);
    assert_string_equal(rdx_lab_routing_at(rt, 5)->specimen_type, "119364003");
    rdx_lab_routing_free(rt);
    /* Once: a second pass routes nothing. */
    moved = 0;
    assert_int_equal(rdx_lab_custody_route_new(s, r, T0 + 95 * MIN, count_moves, &moved, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(moved, 0);
    /* Collected three days after it was planned: its stability counts from the scan. */
    const int64_t late = T0 + 3 * 1440 * MIN;
    event(s, "NJGL26120101-R1", RDX_LAB_EV_COLLECT, late, "NJ-GULOU-CHC");
    event(s, "NJGL26120101-R1", RDX_LAB_EV_DISPATCH, late + 60 * MIN, "NJ-GULOU-CHC");
    rdx_lab_event_in rcv = {.barcode = "NJGL26120101-R1",
                            .kind = RDX_LAB_EV_RECEIVE,
                            .actor = r1_lab,
                            .reported_ms = late + 90 * MIN};
    rdx_lab_event_out eo;
    assert_int_equal(rdx_lab_custody_event(s, &rcv, late + 90 * MIN, &eo, NULL), RDX_OK);
    assert_int_equal(eo.condition, RDX_LAB_COND_OK);
    assert_int_equal(eo.to, RDX_LAB_ST_RECEIVED);
    /* The order routed again answers for its five tests, the recollection in place. */
    rdx_lab_hub_order_out *h = hub_order(s, c, oml, len);
    assert_int_equal(rdx_lab_hub_order_already_routed(h), 1);
    assert_int_equal(rdx_lab_routing_count(rdx_lab_hub_order_routing(h)), 5);
    rdx_lab_hub_order_free(h);
    rdx_lab_router_free(r);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

/* The order for new tube barcode, compared byte for byte with the golden file. */
static rdx_lab_hl7_msg *new_tube_order(rdx_lab_store *s, const rdx_lab_catalogue *c,
                                       const char *barcode, const char *golden)
{
    rdx_lab_hl7_address a = {.sending_app = "RDX",
                             .sending_facility = "NJ-HUB",
                             .receiving_app = "",
                             .timestamp = "20261201093000+0800"};
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_order_for_new_tube(s, c, "NJ-GULOU-CHC", barcode, &a, &b, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    if (golden != NULL) {
        size_t len = 0;
        char *want = slurp(golden, &len);
        if (len != b.len || memcmp(want, b.data, len) != 0) {
            char path[256];
            snprintf(path, sizeof path, "/tmp/rdx-test-%s.hl7", barcode);
            (void)rdx_file_write_atomic(path, b.data, b.len, NULL);
            fail_msg("%s differs from %s (written to %s)", barcode, golden, path);
        }
        free(want);
    }
    rdx_lab_hl7_msg *m = NULL;
    if (rdx_lab_hl7_parse(b.data, b.len, &m, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    rdx_buf_free(&b);
    return m;
}

/* The engine's own reading of an order: its one tube and its tests. */
static rdx_lab_order *read_order(const rdx_lab_hl7_msg *m)
{
    rdx_lab_order *o = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_order_from_hl7(m, 480, &o, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return o;
}

/*
 * The tubes rdx opens get an order of their own for the performing lab: a
 * recollection of the hemolysed serum tube (SPM-3 the rejected tube) and the
 * new serum collection an add-on needed, as golden files, read back by the
 * engine's own parser; the collect scan's time then appears in OBR-7/SPM-17.
 */
static void test_order_for_new_tubes(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    free(oml);
    reject_gulou_potassium(s);
    rdx_lab_addon_outcome ao;
    assert_int_equal(rdx_lab_custody_addon(s, c, NULL, "NJGL26120102", "1742-6", "NJ-GULOU-CHC",
                                           T0 + 90 * MIN, &ao, NULL),
                     RDX_OK);
    assert_string_equal(ao.new_barcode, "NJGL26120102-A1");

    /* The add-on's collection has no lab until it is routed. */
    rdx_lab_hl7_address a = {.timestamp = "20261201093000+0800"};
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(
        rdx_lab_order_for_new_tube(s, c, "NJ-GULOU-CHC", "NJGL26120102-A1", &a, &b, &err),
        RDX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "has no performing lab"));
    assert_int_equal(b.len, 0);
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_load(s, r, NULL), RDX_OK);
    size_t n = 0;
    assert_int_equal(rdx_lab_custody_route_new(s, r, T0 + 90 * MIN, NULL, NULL, &n, NULL), RDX_OK);
    assert_int_equal(n, 2);
    rdx_lab_router_free(r);

    /* The recollection: the potassium only, on a new serum tube whose parent is the rejected one.
     */
    rdx_lab_hl7_msg *m =
        new_tube_order(s, c, "NJGL26120101-R1", "tests/fixtures/lab/new_tube_recollection_oml.hl7");
    assert_string_equal(get(m, "MSH-9.1"), "OML");
    assert_string_equal(get(m, "MSH-9.2"), "O21");
    /* Routed as if collected at 09:30: NJ-FIRST (the lab is the custody record's). */
    assert_string_equal(get(m, "MSH-6"), "NJ-FIRST");
    assert_string_equal(get(m, "MSH-10"), "GULOU-20261201-0001-NJGL26120101-R1");
    assert_string_equal(get(m, "MSH-18"), "UNICODE UTF-8");
    assert_string_equal(get(m, "PID-5.1"), "Wang");
    assert_string_equal(get(m, "PID-5.2"), "Xiaodong");
    assert_string_equal(get(m, "SPM-3.1.1"), "NJGL26120101");
    assert_string_equal(get(m, "SPM-3.1.2"), "NJ-GULOU-CHC");
    assert_string_equal(get(m, "SAC-3"), "NJGL26120101-R1");
    rdx_lab_order *o = read_order(m);
    assert_string_equal(rdx_lab_order_patient_id(o), "NJ0012345");
    assert_int_equal(rdx_lab_order_test_count(o), 1);
    assert_string_equal(rdx_lab_order_test_at(o, 0)->code, "2823-3");
    assert_string_equal(rdx_lab_order_test_at(o, 0)->system, "LN");
    assert_int_equal(rdx_lab_order_specimen_count(o), 1);
    const rdx_lab_order_specimen *sp = rdx_lab_order_specimen_at(o, 0);
    assert_string_equal(sp->id, "NJGL26120101-R1");
    assert_string_equal(sp->authority, "NJ-GULOU-CHC");
    assert_string_equal(sp->parent_id, "NJGL26120101");
    assert_string_equal(sp->type, "119364003");
    assert_true(sp->collected_ms == INT64_MIN); /* not collected yet */
    assert_true(sp->volume_ml < 0);             /* the old tube's amount is not carried over */
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);

    /* The add-on's new collection: a test the clinic never ordered, no parent. */
    m = new_tube_order(s, c, "NJGL26120102-A1", "tests/fixtures/lab/new_tube_addon_oml.hl7");
    o = read_order(m);
    assert_int_equal(rdx_lab_order_test_count(o), 1);
    assert_string_equal(rdx_lab_order_test_at(o, 0)->code, "1742-6");
    assert_string_equal(rdx_lab_order_test_at(o, 0)->placer, "GL-7781");
    sp = rdx_lab_order_specimen_at(o, 0);
    assert_string_equal(sp->id, "NJGL26120102-A1");
    assert_string_equal(sp->parent_id, "");
    assert_string_equal(sp->type, "119364003");
    assert_string_equal(get(m, "SPM-4.2"), "Serum specimen");
    assert_string_equal(get(m, "SPM-4.3"), "SCT");
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);

    /* Collected at 10:00: the time is in OBR-7 and SPM-17, and read back. */
    event(s, "NJGL26120101-R1", RDX_LAB_EV_COLLECT, T0 + 120 * MIN, "NJ-GULOU-CHC");
    m = new_tube_order(s, c, "NJGL26120101-R1", NULL);
    assert_string_equal(get(m, "OBR-7"), "20261201100000+0800");
    assert_string_equal(get(m, "SPM-17"), "20261201100000+0800");
    o = read_order(m);
    assert_true(rdx_lab_order_specimen_at(o, 0)->collected_ms == T0 + 120 * MIN);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);

    /* Refusals: no such tube, no timestamp; nothing appended. */
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_order_for_new_tube(s, c, "NJ-GULOU-CHC", "NOPE", &a, &b, &err),
                     RDX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no tube NOPE"));
    rdx_lab_hl7_address none = {0};
    assert_int_equal(
        rdx_lab_order_for_new_tube(s, c, "NJ-GULOU-CHC", "NJGL26120101-R1", &none, &b, NULL),
        RDX_EINVAL);
    assert_int_equal(b.len, 0);
    rdx_buf_free(&b);
    rdx_lab_store_free(s);

    /* An order recorded without its message (rdx_lab_order_record): said so, not guessed. */
    s = store("sqlite::memory:");
    oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hl7_msg *om = NULL;
    assert_int_equal(rdx_lab_hl7_parse(oml, len, &om, NULL), RDX_OK);
    o = read_order(om);
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    rdx_lab_routing *rt = NULL;
    assert_int_equal(rdx_lab_route(r, o, &rt, NULL), RDX_OK);
    assert_int_equal(rdx_lab_order_record(s, o, rt, T0, NULL), RDX_OK);
    rdx_buf_init(&b, 1 << 20);
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_order_for_new_tube(s, c, "NJ-GULOU-CHC", "NJGL26120101", &a, &b, &err),
                     RDX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "was not kept"));
    rdx_buf_free(&b);
    rdx_lab_routing_free(rt);
    rdx_lab_router_free(r);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(om);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

/* One build of the recollection's order; out must be untouched when it fails. */
typedef struct oom_new_tube_ctx {
    rdx_lab_store *s;
    const rdx_lab_catalogue *c;
} oom_new_tube_ctx;

static int oom_new_tube(void *p)
{
    oom_new_tube_ctx *x = p;
    rdx_lab_hl7_address a = {.timestamp = "20261201093000+0800"};
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_status st =
        rdx_lab_order_for_new_tube(x->s, x->c, "NJ-GULOU-CHC", "NJGL26120101-R1", &a, &b, NULL);
    int failed = st != RDX_OK;
    if (failed && b.len != 0) {
        fail_msg("a failed build left %zu bytes in out", b.len);
    }
    rdx_buf_free(&b);
    return failed;
}

/*
 * NJ-JSPH goes down before the Gulou serum tube is picked up: no other lab
 * does both its potassium and its PSA, so it is poured into aliquots. The
 * aliquot that goes to NJ-CANCER gets an order naming it in SPM-2 and the
 * poured-from tube in SPM-3, at the original collection time. Then the
 * builder's allocation failures are swept on the recollection's order.
 */
static void test_order_for_rerouted_aliquots(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    free(oml);
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_load(s, r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_set_down(r, "NJ-JSPH", 1, NULL), RDX_OK);
    size_t moved = 0, n = 0;
    assert_int_equal(
        rdx_lab_custody_reroute(s, r, "NJ-JSPH", T0 + 10 * MIN, count_moves, &moved, &n, NULL),
        RDX_OK);
    assert_int_equal(n, 2);
    rdx_lab_router_free(r);
    lab_seen t = {{0}, {0}};
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101.2", on_tube_lab, &t, NULL),
        RDX_OK);
    rdx_lab_hl7_msg *m = new_tube_order(s, c, "NJGL26120101.2", NULL);
    assert_string_equal(get(m, "MSH-6"), t.lab);
    assert_string_equal(get(m, "MSH-10"), "GULOU-20261201-0001-NJGL26120101.2");
    assert_string_equal(get(m, "OBR-7"), "20261201080500+0800");
    rdx_lab_order *o = read_order(m);
    assert_int_equal(rdx_lab_order_specimen_count(o), 1);
    const rdx_lab_order_specimen *sp = rdx_lab_order_specimen_at(o, 0);
    assert_string_equal(sp->id, "NJGL26120101.2");
    assert_string_equal(sp->parent_id, "NJGL26120101");
    assert_true(sp->collected_ms == T0 + 5 * MIN);
    int psa = 0;
    for (size_t i = 0; i < rdx_lab_order_test_count(o); i++) {
        psa |= strcmp(rdx_lab_order_test_at(o, i)->code, "2857-1") == 0;
        assert_string_not_equal(rdx_lab_order_test_at(o, i)->code, "2823-3");
    }
    assert_true(psa);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    /* The parent keeps no tests of its own: no order for it. */
    rdx_lab_hl7_address a = {.timestamp = "20261201093000+0800"};
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    assert_int_equal(rdx_lab_order_for_new_tube(s, c, "NJ-GULOU-CHC", "NJGL26120101", &a, &b, NULL),
                     RDX_ENOTFOUND);
    rdx_buf_free(&b);
    rdx_lab_store_free(s);

    /* A tube moved whole (Xuanwu's 1 mL serum tube, NJ-JSPH down): SPM-12 is still its own. */
    s = store("sqlite::memory:");
    oml = slurp("tests/fixtures/lab/nj_xuanwu_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    free(oml);
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_set_down(r, "NJ-JSPH", 1, NULL), RDX_OK);
    assert_int_equal(
        rdx_lab_custody_reroute(s, r, "NJ-JSPH", T0 + 10 * MIN, count_moves, &moved, &n, NULL),
        RDX_OK);
    assert_int_equal(n, 1);
    rdx_lab_router_free(r);
    rdx_lab_hl7_address xa = {.timestamp = "20261201093000+0800"};
    rdx_buf xb;
    rdx_buf_init(&xb, 1 << 20);
    assert_int_equal(rdx_lab_order_for_new_tube(s, c, "NJ-XUANWU-CHC", "NJXW0101", &xa, &xb, NULL),
                     RDX_OK);
    assert_int_equal(rdx_lab_hl7_parse(xb.data, xb.len, &m, NULL), RDX_OK);
    assert_string_not_equal(get(m, "MSH-6"), "NJ-JSPH");
    o = read_order(m);
    assert_int_equal(rdx_lab_order_test_count(o), 2);
    assert_string_equal(rdx_lab_order_specimen_at(o, 0)->parent_id, "");
    assert_true(rdx_lab_order_specimen_at(o, 0)->volume_ml == 1.0);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_buf_free(&xb);
    rdx_lab_store_free(s);

    /* Allocation failures fail cleanly and leave out as it was. */
    s = store("sqlite::memory:");
    oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    free(oml);
    reject_gulou_potassium(s);
    oom_new_tube_ctx x = {s, c};
    assert_true(rdx_oom_sweep(oom_new_tube, &x) > 10);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

static int64_t schema_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT version FROM lab_schema", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        v = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s", msg);
    }
    sqlite3_close(db);
}

static void test_store_schema_version_migration_and_refusal(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char path[512], uri[600];
    /* A new store is version 5. */
    snprintf(path, sizeof path, "%s/new.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    rdx_lab_store_free(store(uri));
    assert_int_equal(schema_version(path), 5);

    /* A version 1 store (before versioning): migrated, its decisions kept. */
    snprintf(path, sizeof path, "%s/v1.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    exec_sql(path,
             "CREATE TABLE lab_route (sender TEXT NOT NULL, control_id TEXT NOT NULL, seq INTEGER "
             "NOT NULL, test_code TEXT NOT NULL, test_text TEXT NOT NULL, specimen_id TEXT NOT "
             "NULL, parent_id TEXT NOT NULL, specimen_type TEXT NOT NULL, lab TEXT NOT NULL, "
             "lab_city TEXT NOT NULL, code INTEGER NOT NULL, reason TEXT NOT NULL, collected_ms "
             "INTEGER, pickup_ms INTEGER, arrival_ms INTEGER, result_ms INTEGER, day INTEGER NOT "
             "NULL, routed_at_ms INTEGER NOT NULL, PRIMARY KEY (sender, control_id, seq));"
             "INSERT INTO lab_route VALUES ('NJ-GULOU-CHC', 'OLD-1', 0, '2823-3', 'Potassium', "
             "'T1', '', '119364003', 'NJ-JSPH', 'Nanjing', 0, 'kept', 0, 0, 0, 0, 20788, 0);");
    rdx_lab_store *s = store(uri);
    rdx_lab_routing *rt = NULL;
    assert_int_equal(rdx_lab_store_lookup(s, "NJ-GULOU-CHC", "OLD-1", &rt, NULL), RDX_OK);
    assert_string_equal(rdx_lab_routing_at(rt, 0)->reason, "kept");
    rdx_lab_routing_free(rt);
    /* Its decisions count in the loads (lab_load filled from lab_route, version 4). */
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_load(s, r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_load(r, "NJ-JSPH", 20788), 1);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
    assert_int_equal(rdx_lab_store_set_down(s, "NJ-JSPH", 1, "NJ-HUB", NULL, T0, NULL, NULL),
                     RDX_OK);
    rdx_lab_store_free(s);
    assert_int_equal(schema_version(path), 5);

    /* A newer store is refused with the versions named, and left as it is. */
    exec_sql(path, "UPDATE lab_schema SET version = 7");
    rdx_lab_store *none = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_store_open(uri, &none, &err), RDX_EDB);
    assert_null(none);
    assert_non_null(strstr(err.msg, "schema version 7 is newer than this rdx knows (5)"));
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(schema_version(path), 7);

    /* An emptied version table is not guessed at. */
    exec_sql(path, "DELETE FROM lab_schema");
    assert_int_equal(rdx_lab_store_open(uri, &none, &err), RDX_EDB);
    rdx_test_rmrf(dir);
    free(dir);
}

/* Rows of a query as text, "a|b|c\n" each, for comparing two queries' results. */
static void query_rows(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    size_t n = 0;
    out[0] = '\0';
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            const unsigned char *t = sqlite3_column_text(q, i);
            n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "|" : "", t ? (const char *)t : "");
        }
        n += (size_t)snprintf(out + n, cap - n, "\n");
        assert_true(n < cap);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
}

#define LOAD_ROWS  "SELECT day, lab, n FROM lab_load WHERE n > 0 ORDER BY day, lab"
#define ROUTE_ROWS "SELECT day, lab, COUNT(*) FROM lab_route WHERE lab <> '' GROUP BY day, lab"

/*
 * lab_load (version 4) is what the router reads before each order: it must
 * equal the count of routed decisions per day and lab after orders, a refused
 * order (rolled back), a recollection and an add-on routed by themselves,
 * a reroute away from a lab that is down, and a version 3 store's upgrade.
 */
static void test_store_load_table_follows_decisions(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char path[512], uri[600], want[4096], got[4096];
    snprintf(path, sizeof path, "%s/load.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store(uri);
    const char *files[] = {
        "tests/fixtures/lab/nj_gulou_oml.hl7", "tests/fixtures/lab/mas_split_oml.hl7",
        "tests/fixtures/lab/yz_refusals_oml.hl7", "tests/fixtures/lab/nj_xuanwu_oml.hl7"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len = 0;
        char *oml = slurp(files[i], &len);
        rdx_lab_hub_order_free(hub_order(s, c, oml, len));
        if (i == 0) {
            /* The same barcode for another patient: refused, nothing kept. */
            char *a = replace(oml, "GULOU-20261201-0001", "GULOU-20261201-0002");
            char *b = replace(a, "NJ0012345", "NJ0099999");
            rdx_lab_hub_order_out *h = hub_order(s, c, b, strlen(b));
            assert_int_equal(rdx_lab_hub_order_code(h), RDX_LAB_ACK_AR);
            rdx_lab_hub_order_free(h);
            free(b);
            free(a);
        }
        free(oml);
    }
    query_rows(path, ROUTE_ROWS, want, sizeof want);
    query_rows(path, LOAD_ROWS, got, sizeof got);
    assert_true(strlen(want) > 20);
    assert_string_equal(got, want);

    /* A recollection, and NJ-JSPH down: its tubes not yet picked up move elsewhere. */
    reject_gulou_potassium(s);
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_store_load(s, r, NULL), RDX_OK);
    size_t moved = 0, n = 0;
    assert_int_equal(rdx_lab_custody_route_new(s, r, T0 + 90 * MIN, count_moves, &moved, &n, NULL),
                     RDX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rdx_lab_router_set_down(r, "NJ-JSPH", 1, NULL), RDX_OK);
    moved = n = 0;
    assert_int_equal(
        rdx_lab_custody_reroute(s, r, "NJ-JSPH", T0 + 30 * MIN, count_moves, &moved, &n, NULL),
        RDX_OK);
    assert_true(n > 0);
    rdx_lab_router_free(r);
    query_rows(path, ROUTE_ROWS, want, sizeof want);
    query_rows(path, LOAD_ROWS, got, sizeof got);
    assert_string_equal(got, want);
    rdx_lab_store_free(s);

    /* A version 3 store (no lab_load): brought up to date with its loads counted. */
    exec_sql(path, "DROP TRIGGER lab_load_insert; DROP TRIGGER lab_load_delete;"
                   "DROP TRIGGER lab_load_update; DROP TABLE lab_load;"
                   "UPDATE lab_schema SET version = 3;");
    s = store(uri);
    assert_int_equal(schema_version(path), 5);
    query_rows(path, LOAD_ROWS, got, sizeof got);
    assert_string_equal(got, want);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
    rdx_test_rmrf(dir);
    free(dir);
}

typedef struct downs {
    size_t n;
    char first[32];
} downs;

static void on_down(void *user, const char *lab, int64_t since, const char *actor,
                    const char *reason)
{
    downs *d = user;
    (void)since;
    (void)actor;
    (void)reason;
    if (d->n++ == 0) {
        snprintf(d->first, sizeof d->first, "%s", lab);
    }
}

static void test_store_lab_down_survives_reopening(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char uri[600];
    snprintf(uri, sizeof uri, "sqlite:%s/down.db", dir);
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store(uri);
    int changed = 0;
    assert_int_equal(
        rdx_lab_store_set_down(s, "NJ-JSPH", 1, "NJ-HUB", "analyser failure", T0, &changed, NULL),
        RDX_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(rdx_lab_store_set_down(s, "NJ-JSPH", 1, "NJ-HUB", "again", T0, &changed, NULL),
                     RDX_OK);
    assert_int_equal(changed, 0);
    rdx_lab_store_free(s);

    /* Another run: the order is routed without NJ-JSPH. */
    s = store(uri);
    downs d = {0};
    assert_int_equal(rdx_lab_store_labs_down(s, on_down, &d, NULL, NULL), RDX_OK);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.first, "NJ-JSPH");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_out *h = hub_order(s, c, oml, len);
    const rdx_lab_routing *rt = rdx_lab_hub_order_routing(h);
    for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
        assert_string_not_equal(rdx_lab_routing_at(rt, i)->lab, "NJ-JSPH");
    }
    rdx_lab_hub_order_free(h);

    /* Up again: the next order may go there. */
    assert_int_equal(rdx_lab_store_set_down(s, "NJ-JSPH", 0, NULL, NULL, T0, &changed, NULL),
                     RDX_OK);
    assert_int_equal(changed, 1);
    size_t n = 9;
    assert_int_equal(rdx_lab_store_labs_down(s, NULL, NULL, &n, NULL), RDX_OK);
    assert_int_equal(n, 0);
    char *again = replace(oml, "GULOU-20261201-0001", "GULOU-20261201-0003");
    char *a2 = replace(again, "NJGL261201", "NJGL261203");
    h = hub_order(s, c, a2, strlen(a2));
    rt = rdx_lab_hub_order_routing(h);
    int jsph = 0;
    for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
        jsph += strcmp(rdx_lab_routing_at(rt, i)->lab, "NJ-JSPH") == 0;
    }
    assert_true(jsph > 0);
    rdx_lab_hub_order_free(h);
    assert_int_equal(rdx_lab_store_set_down(s, "", 1, NULL, NULL, T0, NULL, NULL), RDX_EINVAL);
    free(a2);
    free(again);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
    rdx_test_rmrf(dir);
    free(dir);
}

typedef struct oom_ctx {
    const rdx_lab_catalogue *c;
    const char *data;
    size_t len;
} oom_ctx;

static int oom_hub_order(void *p)
{
    oom_ctx *x = p;
    rdx_lab_store *s = NULL;
    rdx_lab_hub_order_out *h = NULL;
    if (rdx_lab_store_open("sqlite::memory:", &s, NULL) != RDX_OK) {
        return 1;
    }
    rdx_status st = rdx_lab_hub_order(s, x->c, x->data, x->len, &opts, &h, NULL);
    int failed = st != RDX_OK || rdx_lab_hub_order_code(h) != RDX_LAB_ACK_AA;
    rdx_lab_hub_order_free(h);
    rdx_lab_store_free(s);
    return failed;
}

static void test_hub_order_oom_sweep(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/mas_split_oml.hl7", &len);
    oom_ctx x = {c, oml, len};
    assert_true(rdx_oom_sweep(oom_hub_order, &x) > 10);
    free(oml);
    rdx_lab_catalogue_free(c);
}

typedef struct oom_result_ctx {
    rdx_lab_store *s;
    const char *data;
    size_t len;
} oom_result_ctx;

static int oom_hub_result(void *p)
{
    oom_result_ctx *x = p;
    rdx_lab_hub_result_out *h = NULL;
    rdx_status st = rdx_lab_hub_result(x->s, x->data, x->len, &opts, &h, NULL);
    int failed = st != RDX_OK;
    rdx_lab_hub_result_free(h);
    return failed;
}

/* Allocation failures in the result step fail cleanly and leave the store as it was. */
static void test_hub_result_oom_sweep(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue();
    rdx_lab_store *s = store("sqlite::memory:");
    size_t len = 0;
    char *oml = slurp("tests/fixtures/lab/nj_gulou_oml.hl7", &len);
    rdx_lab_hub_order_free(hub_order(s, c, oml, len));
    event(s, "NJGL26120101", RDX_LAB_EV_COLLECT, T0, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_DISPATCH, T0 + 60 * MIN, "NJ-GULOU-CHC");
    event(s, "NJGL26120101", RDX_LAB_EV_RECEIVE, T0 + 90 * MIN, "NJ-JSPH");
    char *oru = slurp("tests/fixtures/lab/jsph_oru.hl7", &len);
    oom_result_ctx x = {s, oru, len};
    assert_true(rdx_oom_sweep(oom_hub_result, &x) > 10);
    /* The run that succeeded applied it once: the tube has its two results. */
    tube_seen t = {{0}, {0}};
    assert_int_equal(
        rdx_lab_custody_history(s, "NJ-GULOU-CHC", "NJGL26120101", on_tube_state, &t, NULL),
        RDX_OK);
    assert_string_equal(t.resulted, "2160-0,2823-3");
    free(oru);
    free(oml);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hub_order_split_gives_lab_orders_ack_and_orl),
        cmocka_unit_test(test_hub_order_refused_tests_are_UA),
        cmocka_unit_test(test_hub_order_orm_gets_orr_o02),
        cmocka_unit_test(test_hub_order_bad_message_gets_AE),
        cmocka_unit_test(test_hub_order_refused_barcode_leaves_no_trace),
        cmocka_unit_test(test_order_record_is_one_transaction),
        cmocka_unit_test(test_hub_result_acks_and_forwards),
        cmocka_unit_test(test_hub_result_partial_results_per_test),
        cmocka_unit_test(test_custody_route_new_tubes),
        cmocka_unit_test(test_order_for_new_tubes),
        cmocka_unit_test(test_order_for_rerouted_aliquots),
        cmocka_unit_test(test_hub_courier_weekdays_drive_eta_and_overdue),
        cmocka_unit_test(test_store_schema_version_migration_and_refusal),
        cmocka_unit_test(test_store_load_table_follows_decisions),
        cmocka_unit_test(test_store_lab_down_survives_reopening),
        cmocka_unit_test(test_hub_order_oom_sweep),
        cmocka_unit_test(test_hub_result_oom_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
