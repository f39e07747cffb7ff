/* Catalogue loading and the router: every routing rule, every refusal code, ties, splits. */
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

/*
 * A small network. Lab B's city, K turnaround and capacity are parameters so
 * each rule can be isolated: %s = B's city, %s = B's turnaround for K,
 * %u = B's capacity, %s = extra text appended (more sections).
 */
static const char base_fmt[] = "[network]\n"
                               "name = test network\n"
                               "utc_offset = +08:00\n"
                               "\n"
                               "[lab A]\n"
                               "name = Lab A\n"
                               "city = Nanjing\n"
                               "capacity = 100\n"
                               "hours = 00:00-24:00\n"
                               "turnaround = 2h\n"
                               "tests = K, NA, HBA1C\n"
                               "specimens = SER, WB\n"
                               "\n"
                               "[lab B]\n"
                               "name = Lab B\n"
                               "city = %s\n"
                               "capacity = %u\n"
                               "hours = 08:00-17:00\n"
                               "turnaround = 2h\n"
                               "turnaround K = %s\n"
                               "tests = K, NA, TSH\n"
                               "specimens = SER\n"
                               "\n"
                               "[lab FAR]\n"
                               "name = Lab far away\n"
                               "city = Yangzhou\n"
                               "capacity = 100\n"
                               "hours = 00:00-24:00\n"
                               "turnaround = 1h\n"
                               "tests = PSA\n"
                               "specimens = SER\n"
                               "\n"
                               "[clinic K1]\n"
                               "name = Clinic one\n"
                               "city = Nanjing\n"
                               "hl7_facility = CLINIC-1\n"
                               "\n"
                               "[courier K1 A]\n"
                               "pickups = 09:00, 13:00\n"
                               "transit = 30\n"
                               "temperature = refrigerated\n"
                               "\n"
                               "[courier K1 B]\n"
                               "pickups = 09:00, 13:00\n"
                               "transit = 30\n"
                               "temperature = room\n"
                               "\n"
                               "[stability K]\n"
                               "name = Potassium\n"
                               "room SER = 6h\n"
                               "refrigerated SER = 6h\n"
                               "\n"
                               "[stability NA]\n"
                               "room SER = 1d\n"
                               "refrigerated SER = 2d\n"
                               "\n"
                               "[stability HBA1C]\n"
                               "room WB = 3d\n"
                               "refrigerated WB = 7d\n"
                               "\n"
                               "[stability TSH]\n"
                               "room SER = 1d\n"
                               "refrigerated SER = 7d\n"
                               "\n"
                               "[stability PSA]\n"
                               "room SER = 1d\n"
                               "refrigerated SER = 7d\n"
                               "%s";

static rdx_lab_catalogue *catalogue(const char *b_city, unsigned b_cap, const char *b_tat_k,
                                    const char *extra)
{
    char text[8192];
    snprintf(text, sizeof text, base_fmt, b_city, b_cap, b_tat_k, extra);
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_catalogue_parse(text, strlen(text), "test.ini", &c, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return c;
}

/* An OML^O21 from CLINIC-1: specs is "TEST:SPMID:TYPE:COLLECTED;..." */
static rdx_lab_order *order(const char *sender, const char *specs)
{
    char msg[8192];
    size_t n = (size_t)snprintf(msg, sizeof msg,
                                "MSH|^~\\&|HIS|%s|RDX|HUB|202612010700+0800||OML^O21^OML_O21|"
                                "CTL-1|P|2.5.1\rPID|1||P1^^^%s^MR||Wang^Li\rORC|NW|ORD-1\r",
                                sender, sender);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", specs);
    unsigned seq = 1;
    for (char *item = buf; item != NULL && *item != '\0'; seq++) {
        char *next = strchr(item, ';');
        if (next != NULL) {
            *next++ = '\0';
        }
        char *f[4] = {item, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            f[k] = strchr(f[k - 1], ':');
            assert_non_null(f[k]);
            *f[k]++ = '\0';
        }
        n += (size_t)snprintf(msg + n, sizeof msg - n,
                              "OBR|%u|ORD-1||%s^%s test^L\rSPM|%u|%s&%s||%s|||||||||||||%s\r", seq,
                              f[0], f[0], seq, f[1], sender, f[2], f[3]);
        item = next;
    }
    rdx_lab_hl7_msg *m = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_hl7_parse(msg, n, &m, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    rdx_lab_order *o = NULL;
    if (rdx_lab_order_from_hl7(m, 480, &o, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    rdx_lab_hl7_free(m);
    return o;
}

static rdx_lab_routing *route(rdx_lab_router *r, const rdx_lab_order *o)
{
    rdx_lab_routing *rt = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_route(r, o, &rt, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    return rt;
}

static void expect(const rdx_lab_routing *rt, size_t i, rdx_lab_route_code code, const char *lab,
                   const char *reason_part)
{
    const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
    assert_non_null(d);
    if (d->code != code || strcmp(d->lab, lab) != 0 ||
        (reason_part != NULL && strstr(d->reason, reason_part) == NULL)) {
        fail_msg("decision %zu: %s %s '%s'; want %s %s '%s'", i, rdx_lab_route_code_name(d->code),
                 d->lab, d->reason, rdx_lab_route_code_name(code), lab,
                 reason_part ? reason_part : "");
    }
}

/* One order through a fresh router on catalogue c; returns the routing. */
static rdx_lab_routing *route_once(rdx_lab_catalogue *c, const char *specs, rdx_lab_router **rp)
{
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    rdx_lab_order *o = order("CLINIC-1", specs);
    rdx_lab_routing *rt = route(r, o);
    rdx_lab_order_free(o);
    if (rp != NULL) {
        *rp = r;
    } else {
        rdx_lab_router_free(r);
    }
    return rt;
}

static void test_route_earliest_result_wins(void **state)
{
    (void)state;
    /* B does K in 30 min, A in 2 h: B's result is earlier although A is in the clinic's city. */
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "30m", "");
    rdx_lab_routing *rt = route_once(c, "K:S1:SER:202612010800+0800", NULL);
    assert_int_equal(rdx_lab_routing_count(rt), 1);
    expect(rt, 0, RDX_LAB_ROUTED, "B", "earliest expected result");
    const rdx_lab_decision *d = rdx_lab_routing_at(rt, 0);
    assert_string_equal(d->lab_city, "Zhenjiang");
    assert_string_equal(d->specimen_id, "S1");
    assert_string_equal(d->parent_id, "");
    /* Pickup 09:00, arrival 09:30, result 10:00 local = 02:00 UTC. */
    int64_t want;
    assert_int_equal(rdx_lab_hl7_dtm_parse("202612011000+0800", 17, 0, &want), RDX_OK);
    assert_int_equal(d->result_ms, want);
    assert_int_equal(rdx_lab_hl7_dtm_parse("202612010900+0800", 17, 0, &want), RDX_OK);
    assert_int_equal(d->pickup_ms, want);
    assert_non_null(strstr(d->reason, "next best A"));
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

static void test_route_tie_goes_to_same_city_then_lower_load(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "2h", "");
    rdx_lab_routing *rt = route_once(c, "K:S1:SER:202612010800+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "same city as the clinic");
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);

    /* Both in Nanjing, same result time: the lower load wins. */
    c = catalogue("Nanjing", 100, "2h", "");
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_add_load(r, "A", 20788, 50, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_load(r, "A", 20788), 50);
    assert_int_equal(rdx_lab_router_add_load(r, "NOPE", 20788, 1, NULL), RDX_ENOTFOUND);
    rdx_lab_order *o = order("CLINIC-1", "K:S1:SER:202612010800+0800");
    rt = route(r, o);
    expect(rt, 0, RDX_LAB_ROUTED, "B", "lower load");
    assert_int_equal(rdx_lab_routing_at(rt, 0)->day, 20788);
    assert_int_equal(rdx_lab_router_load(r, "B", 20788), 1);
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
}

static void test_route_tests_on_one_tube_travel_together(void **state)
{
    (void)state;
    /* K and NA on one serum tube: B does K sooner, but only A or B can take both... both can;
     * the group result is the later of the two, so they stay together at one lab. */
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "30m", "");
    rdx_lab_routing *rt =
        route_once(c, "K:S1:SER:202612010800+0800;NA:S1:SER:202612010800+0800", NULL);
    assert_int_equal(rdx_lab_routing_count(rt), 2);
    const rdx_lab_decision *d0 = rdx_lab_routing_at(rt, 0), *d1 = rdx_lab_routing_at(rt, 1);
    assert_string_equal(d0->lab, d1->lab);
    assert_string_equal(d0->specimen_id, "S1");
    assert_string_equal(d1->specimen_id, "S1");
    assert_non_null(strstr(d0->reason, "take all 2 test(s) on this tube"));
    assert_int_equal(rdx_lab_routing_labs(rt), 1);
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

static void test_route_split_makes_child_specimens(void **state)
{
    (void)state;
    /* HBA1C is only at A (on WB); TSH only at B. One WB tube cannot go to B (SER only), so
     * use SER: TSH needs B, K can go to either, NA either: A cannot take TSH -> split. */
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "2h",
                                     "[lab C]\nname = Lab C\ncity = Nanjing\ncapacity = 100\n"
                                     "hours = 00:00-24:00\nturnaround = 1h\ntests = PSA2\n"
                                     "specimens = SER\n[stability PSA2]\nroom SER = 1d\n"
                                     "refrigerated SER = 1d\n[courier K1 C]\npickups = 09:00\n"
                                     "transit = 10\ntemperature = refrigerated\n");
    rdx_lab_routing *rt = route_once(
        c, "K:S1:SER:202612010800+0800;PSA2:S1:SER:202612010800+0800;TSH:S1:SER:202612010800+0800",
        NULL);
    assert_int_equal(rdx_lab_routing_count(rt), 3);
    const rdx_lab_decision *k = rdx_lab_routing_at(rt, 0), *psa = rdx_lab_routing_at(rt, 1),
                           *tsh = rdx_lab_routing_at(rt, 2);
    assert_int_equal(k->code, RDX_LAB_ROUTED);
    assert_string_equal(psa->lab, "C");
    assert_string_equal(tsh->lab, "B");
    /* K goes with TSH (B takes two of the three), PSA2 alone to C. */
    assert_string_equal(k->lab, "B");
    assert_string_equal(k->parent_id, "S1");
    assert_string_equal(psa->parent_id, "S1");
    assert_string_equal(k->specimen_id, tsh->specimen_id);
    assert_string_not_equal(k->specimen_id, psa->specimen_id);
    assert_string_equal(k->specimen_id, "S1.1");
    assert_string_equal(psa->specimen_id, "S1.2");
    assert_non_null(strstr(k->reason, "split"));
    assert_int_equal(rdx_lab_routing_labs(rt), 2);
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

static void test_route_refusal_codes(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "2h", "");
    /* No lab performs GLU. */
    rdx_lab_routing *rt = route_once(c, "GLU:S1:SER:202612010800+0800", NULL);
    expect(rt, 0, RDX_LAB_NO_LAB, "", "no lab of the network performs GLU");
    assert_int_equal(rdx_lab_routing_labs(rt), 0);
    assert_int_equal(rdx_lab_routing_at(rt, 0)->result_ms, INT64_MIN);
    rdx_lab_routing_free(rt);
    /* K on urine: performed, but not on that type. */
    rt = route_once(c, "K:S1:UR:202612010800+0800", NULL);
    expect(rt, 0, RDX_LAB_WRONG_SPECIMEN, "", "not on UR");
    rdx_lab_routing_free(rt);
    /* HBA1C is on WB at A only; A accepts WB; B does not perform it: fine. TSH on WB: no. */
    rt = route_once(c, "TSH:S1:WB:202612010800+0800", NULL);
    expect(rt, 0, RDX_LAB_WRONG_SPECIMEN, "", "(B)");
    rdx_lab_routing_free(rt);
    /* PSA is only at FAR, which no courier run from K1 reaches. */
    rt = route_once(c, "PSA:S1:SER:202612010800+0800", NULL);
    expect(rt, 0, RDX_LAB_NO_COURIER, "", "FAR");
    rdx_lab_routing_free(rt);
    /* K keeps 6 h; collected 02:00, first pickup 09:00: 7.5 h on arrival. */
    rt = route_once(c, "K:S1:SER:202612010200+0800", NULL);
    expect(rt, 0, RDX_LAB_STABILITY, "", "keeps 360 min");
    rdx_lab_routing_free(rt);
    /* The same at 04:00 is 5.5 h: routed. */
    rt = route_once(c, "K:S1:SER:202612010400+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "330 of 360 min");
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

static void test_route_down_lab_is_skipped(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "30m", "");
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_set_down(r, "B", 1, NULL), RDX_OK);
    assert_int_equal(rdx_lab_router_set_down(r, "ZZ", 1, NULL), RDX_ENOTFOUND);
    rdx_lab_order *o = order("CLINIC-1", "K:S1:SER:202612010800+0800;TSH:S2:SER:202612010800+0800");
    rdx_lab_routing *rt = route(r, o);
    /* B would be faster for K, but it is down; TSH is done only at B. */
    expect(rt, 0, RDX_LAB_ROUTED, "A", NULL);
    expect(rt, 1, RDX_LAB_NO_LAB, "", "the labs that perform it (B) are down");
    rdx_lab_routing_free(rt);
    assert_int_equal(rdx_lab_router_set_down(r, "B", 0, NULL), RDX_OK);
    rt = route(r, o);
    expect(rt, 0, RDX_LAB_ROUTED, "B", NULL);
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
}

static void test_route_unknown_clinic(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "2h", "");
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    rdx_lab_order *o = order("NOWHERE", "K:S1:SER:202612010800+0800");
    rdx_lab_routing *rt = route(r, o);
    expect(rt, 0, RDX_LAB_UNKNOWN_CLINIC, "", "NOWHERE");
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
}

static void test_route_capacity_then_full_queued(void **state)
{
    (void)state;
    /* B does K faster but has capacity 1: the first order takes it, the second goes to A. */
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 1, "30m", "");
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    rdx_lab_order *o = order("CLINIC-1", "TSH:S1:SER:202612010800+0800");
    rdx_lab_routing *rt = route(r, o);
    expect(rt, 0, RDX_LAB_ROUTED, "B", NULL);
    rdx_lab_routing_free(rt);
    /* TSH only at B, which is now full today: queued for the next day and flagged. */
    rt = route(r, o);
    expect(rt, 0, RDX_LAB_FULL_QUEUED, "B", "queued at B for 2026-12-02");
    assert_int_equal(rdx_lab_routing_at(rt, 0)->day, 20789);
    assert_non_null(strstr(rdx_lab_routing_at(rt, 0)->reason, "B 1/1"));
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    /* K would prefer B (30 min) but B is full: A takes it. */
    o = order("CLINIC-1", "K:S2:SER:202612010800+0800");
    rt = route(r, o);
    expect(rt, 0, RDX_LAB_ROUTED, "A", NULL);
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    /* Fill B's next days; K on serum keeps 6 h, so a queue to tomorrow is a stability refusal. */
    assert_int_equal(rdx_lab_router_add_load(r, "A", 20788, 1000, NULL), RDX_OK);
    o = order("CLINIC-1", "K:S3:SER:202612010800+0800");
    rt = route(r, o);
    expect(rt, 0, RDX_LAB_STABILITY, "", "would not stay stable");
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
}

static void test_route_lab_closed_waits_for_opening(void **state)
{
    (void)state;
    /* B opens 08:00-17:00; pickup 13:00 + 30 = 13:30 (fine); collected 16:00 -> next pickup
     * tomorrow 09:00 is 17 h later: NA keeps 1 d, so it goes, tested tomorrow. */
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "2h", "");
    rdx_lab_routing *rt = route_once(c, "TSH:S1:SER:202612011600+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "B", "pickup Wed 2026-12-02 09:00, arrives 09:30");
    assert_int_equal(rdx_lab_routing_at(rt, 0)->day, 20789);
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

/* Lab B tests Monday to Friday: a tube arriving on Saturday waits for Monday's opening. */
static void test_route_lab_closed_days_wait_for_next_open_day(void **state)
{
    (void)state;
    char text[8192], days[8400];
    snprintf(text, sizeof text, base_fmt, "Zhenjiang", 100u, "2h", "");
    const char *at = strstr(text, "hours = 08:00-17:00\n");
    assert_non_null(at);
    size_t head = (size_t)(at - text);
    snprintf(days, sizeof days, "%.*sdays = Mon-Fri\n%s", (int)head, text, at);
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_catalogue_parse(days, strlen(days), "days.ini", &c, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    rdx_lab_lab_info li;
    assert_int_equal(rdx_lab_catalogue_lab_at(c, 1, &li), RDX_OK);
    assert_string_equal(li.id, "B");
    assert_int_equal(li.days, 0x1Fu);
    assert_int_equal(rdx_lab_catalogue_lab_at(c, 0, &li), RDX_OK);
    assert_int_equal(li.days, 0x7Fu); /* not given: every day */
    /* Friday 2026-12-04 16:00: pickup Saturday 09:00, arrives 09:30, tested Monday 08:00. */
    rdx_lab_routing *rt = route_once(c, "TSH:S1:SER:202612041600+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "B", "result by 2026-12-07 10:00");
    assert_int_equal(rdx_lab_routing_at(rt, 0)->day, 20794);
    rdx_lab_routing_free(rt);
    /* Tuesday 16:00: tested Wednesday, as before. */
    rt = route_once(c, "TSH:S1:SER:202612011600+0800", NULL);
    assert_int_equal(rdx_lab_routing_at(rt, 0)->day, 20789);
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);

    /* Malformed day lists name the file, line and key. */
    const char *bad[] = {"Mon-Funday", "Mon,,Tue", "Montag", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char b[8400];
        snprintf(b, sizeof b, "%.*sdays = %s\n%s", (int)head, text, bad[i], at);
        rdx_error_clear(&err);
        c = NULL;
        assert_int_equal(rdx_lab_catalogue_parse(b, strlen(b), "days.ini", &c, &err), RDX_EPARSE);
        assert_null(c);
        assert_non_null(strstr(err.msg, "days.ini:"));
        assert_non_null(strstr(err.msg, "days"));
    }
    /* Ranges wrap over the weekend, names in any case. */
    char w[8400];
    snprintf(w, sizeof w, "%.*sdays = fri-MON, Wed\n%s", (int)head, text, at);
    assert_int_equal(rdx_lab_catalogue_parse(w, strlen(w), "days.ini", &c, NULL), RDX_OK);
    assert_int_equal(rdx_lab_catalogue_lab_at(c, 1, &li), RDX_OK);
    assert_int_equal(li.days, 0x75u); /* Mon, Wed, Fri, Sat, Sun */
    rdx_lab_catalogue_free(c);
}

/*
 * The base network with run_keys added to the courier run K1 -> A, and lab A
 * also doing AMM (ammonia, 12 h on serum; only A does it, so only that run
 * can carry it). On error, *err gets the message and NULL is returned.
 */
static rdx_lab_catalogue *catalogue_run_a(const char *run_keys, rdx_error *err)
{
    char text[8192], edited[9000];
    snprintf(text, sizeof text, base_fmt, "Zhenjiang", 100u, "2h",
             "\n[stability AMM]\nname = Ammonia\nroom SER = 12h\nrefrigerated SER = 12h\n");
    const char *run = strstr(text, "[courier K1 A]\n");
    const char *tests = strstr(text, "tests = K, NA, HBA1C\n");
    assert_non_null(run);
    assert_non_null(tests);
    size_t t_end = (size_t)(tests - text) + strlen("tests = K, NA, HBA1C");
    size_t r_end = (size_t)(run - text) + strlen("[courier K1 A]\n");
    snprintf(edited, sizeof edited, "%.*s, AMM%.*s%s%s", (int)t_end, text, (int)(r_end - t_end),
             text + t_end, run_keys, text + r_end);
    rdx_lab_catalogue *c = NULL;
    rdx_error_clear(err);
    if (rdx_lab_catalogue_parse(edited, strlen(edited), "week.ini", &c, err) != RDX_OK) {
        return NULL;
    }
    return c;
}

static int64_t at(const char *dtm)
{
    int64_t ms;
    assert_int_equal(rdx_lab_hl7_dtm_parse(dtm, strlen(dtm), 0, &ms), RDX_OK);
    return ms;
}

/*
 * A run that goes Monday to Friday (2026-12-04 is a Friday): a tube collected
 * after Friday's last pickup waits for Monday's first, the reason says so, and
 * a test that does not keep over the weekend is refused for stability.
 */
static void test_route_courier_weekdays_only_across_weekend(void **state)
{
    (void)state;
    rdx_error err;
    rdx_lab_catalogue *c = catalogue_run_a("days = Mon-Fri\n", &err);
    if (c == NULL) {
        fail_msg("%s", err.msg);
    }
    /* Friday 12:00: Friday's 13:00 run, as on any weekday; nothing about the week. */
    rdx_lab_routing *rt = route_once(c, "HBA1C:S1:WB:202612041200+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "collected 2026-12-04 12:00, pickup 13:00, arrives 13:30 (");
    assert_int_equal(rdx_lab_routing_at(rt, 0)->pickup_ms, at("202612041300+0800"));
    rdx_lab_routing_free(rt);
    /* Friday 14:00: no run on Saturday or Sunday, so Monday 09:00; tested Monday. */
    rt = route_once(c, "HBA1C:S1:WB:202612041400+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A",
           "pickup Mon 2026-12-07 09:00 (no courier run on Sat, Sun), arrives 09:30 (4050 of "
           "10080 min stability refrigerated), result by 2026-12-07 11:30");
    const rdx_lab_decision *d = rdx_lab_routing_at(rt, 0);
    assert_int_equal(d->pickup_ms, at("202612070900+0800"));
    assert_int_equal(d->arrival_ms, at("202612070930+0800"));
    assert_int_equal(d->result_ms, at("202612071130+0800"));
    assert_int_equal(d->day, 20794); /* Monday */
    rdx_lab_routing_free(rt);
    /* Sunday 23:00 (Asia/Shanghai; Sunday 15:00 UTC): only Sunday is skipped. */
    rt = route_once(c, "HBA1C:S1:WB:202612061500+0000", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A",
           "collected 2026-12-06 23:00, pickup Mon 2026-12-07 09:00 (no courier run on Sun)");
    rdx_lab_routing_free(rt);
    /* Monday 08:00: the weekday timetable again. */
    rt = route_once(c, "HBA1C:S1:WB:202612070800+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "pickup 09:00, arrives 09:30 (90 of");
    rdx_lab_routing_free(rt);
    /* Ammonia keeps 12 h: Friday 12:00 makes the 13:00 run, Friday 14:00 cannot wait for Monday. */
    rt = route_once(c, "AMM:S1:SER:202612041200+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "90 of 720 min");
    rdx_lab_routing_free(rt);
    rt = route_once(c, "AMM:S1:SER:202612041400+0800", NULL);
    expect(
        rt, 0, RDX_LAB_STABILITY, "",
        "Ammonia on SER keeps 720 min refrigerated; the earliest arrival at a capable lab (A) is "
        "4050 min after collection (no courier run on Sat, Sun)");
    rdx_lab_routing_free(rt);
    /* The same tube on a daily run (no days key) goes on Saturday's 09:00 run. */
    rdx_lab_catalogue_free(c);
    c = catalogue_run_a("", &err);
    assert_non_null(c);
    rt = route_once(c, "HBA1C:S1:WB:202612041400+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "pickup Sat 2026-12-05 09:00, arrives 09:30 (");
    assert_null(strstr(rdx_lab_routing_at(rt, 0)->reason, "no courier run"));
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

/* Weekend runs at other times: their own timetable on Saturday and Sunday. */
static void test_route_courier_weekend_timetable(void **state)
{
    (void)state;
    rdx_error err;
    rdx_lab_catalogue *c = catalogue_run_a("pickups Sat-Sun = 10:30\n", &err);
    if (c == NULL) {
        fail_msg("%s", err.msg);
    }
    /* Friday 14:00: Saturday's only run, 10:30. */
    rdx_lab_routing *rt = route_once(c, "HBA1C:S1:WB:202612041400+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A",
           "pickup Sat 2026-12-05 10:30 (the Sat timetable), arrives 11:00 (");
    assert_int_equal(rdx_lab_routing_at(rt, 0)->pickup_ms, at("202612051030+0800"));
    rdx_lab_routing_free(rt);
    /* Saturday 09:30: the 09:00 weekday run does not exist on Saturday; 10:30 the same day. */
    rt = route_once(c, "HBA1C:S1:WB:202612050930+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "pickup 10:30 (the Sat timetable), arrives 11:00 (90 of");
    rdx_lab_routing_free(rt);
    /* Saturday 11:00: Sunday 10:30. */
    rt = route_once(c, "HBA1C:S1:WB:202612051100+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "pickup Sun 2026-12-06 10:30 (the Sun timetable)");
    rdx_lab_routing_free(rt);
    /* Sunday 11:00: Monday 09:00 on the weekday timetable; nothing skipped. */
    rt = route_once(c, "HBA1C:S1:WB:202612061100+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "pickup Mon 2026-12-07 09:00, arrives 09:30 (");
    assert_null(strstr(rdx_lab_routing_at(rt, 0)->reason, "timetable"));
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);

    /* Monday to Saturday, Saturday at its own time: Saturday 11:00 waits for Monday. */
    c = catalogue_run_a("days = Mon-Sat\npickups Sat = 10:30\n", &err);
    if (c == NULL) {
        fail_msg("%s", err.msg);
    }
    rt = route_once(c, "HBA1C:S1:WB:202612051100+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "pickup Mon 2026-12-07 09:00 (no courier run on Sun)");
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);

    /* Only weekend timetables and days to match: no plain pickups needed. */
    c = catalogue_run_a("days = Sat-Sun\npickups Sat, Sun = 08:00\n", &err);
    assert_non_null(c);
    rt = route_once(c, "HBA1C:S1:WB:202612041400+0800", NULL);
    expect(rt, 0, RDX_LAB_ROUTED, "A",
           "pickup Sat 2026-12-05 08:00 (no courier run on Fri; the Sat timetable)");
    rdx_lab_routing_free(rt);
    rdx_lab_catalogue_free(c);
}

/* Malformed courier weeks name the file, the line and what is wrong. */
static void test_catalogue_courier_days_errors(void **state)
{
    (void)state;
    static const struct {
        const char *keys, *needle;
    } cases[] = {
        {"days = Someday\n", "week.ini:39: [courier K1 A] days: 'Someday' is not a list of days"},
        {"days = Mon-Fri\ndays = Sat\n", "week.ini:40: [courier K1 A] days: given twice"},
        {"pickups Funday = 10:00\n", "week.ini:39: [courier K1 A] pickups Funday: 'Funday'"},
        {"pickups daily = 10:00\n", "and not every day"},
        {"pickups Sat = 10:00, 9:30\n", "week.ini:39: [courier K1 A] pickups Sat: '9:30' is not a "
                                        "time HH:MM"},
        {"pickups Sat = 10:00\npickups Sat-Sun = 09:00\n",
         "week.ini:40: [courier K1 A] pickups Sat-Sun: '09:00' is not later than the pickup "
         "before it"},
        {"days = Mon-Fri\npickups Sat = 10:00\n",
         "week.ini:38: [courier K1 A]: pickups on Sat, but Sat is not one of the run's days"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rdx_error err;
        rdx_lab_catalogue *c = catalogue_run_a(cases[i].keys, &err);
        if (c != NULL || strstr(err.msg, cases[i].needle) == NULL) {
            fail_msg("case %zu: '%s' lacks '%s'", i, c ? "(loaded)" : err.msg, cases[i].needle);
        }
    }
    /* A run with only weekend timetables on a run that goes every day: which day lacks them. */
    char text[8192];
    snprintf(text, sizeof text, base_fmt, "Zhenjiang", 100u, "2h", "");
    char *p = strstr(text, "[courier K1 A]\npickups = 09:00, 13:00\n");
    assert_non_null(p);
    static const char weekend_only[] = "[courier K1 A]\npickups Sat-Sun= 10:00\n";
    assert_int_equal(strlen(weekend_only), strlen("[courier K1 A]\npickups = 09:00, 13:00\n"));
    memcpy(p, weekend_only, strlen(weekend_only));
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_catalogue_parse(text, strlen(text), "w.ini", &c, &err), RDX_EPARSE);
    if (strstr(err.msg, "w.ini:38") == NULL) {
        fail_msg("%s", err.msg);
    }
    assert_non_null(strstr(err.msg, "w.ini:38: [courier K1 A]: no pickups on Mon (give 'pickups' "
                                    "or 'pickups Mon')"));
}

static void test_route_collection_time_falls_back_to_msh7(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = catalogue("Zhenjiang", 100, "2h", "");
    rdx_lab_router *r = NULL;
    assert_int_equal(rdx_lab_router_new(c, &r, NULL), RDX_OK);
    const char msg[] = "MSH|^~\\&|HIS|CLINIC-1|RDX|HUB|202612010700+0800||OML^O21|C2|P|2.5.1\r"
                       "PID|1||P1\rOBR|1|O2||NA^Sodium^L\rSPM|1|T9||SER\r";
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    assert_int_equal(rdx_lab_hl7_parse(msg, sizeof msg - 1, &m, NULL), RDX_OK);
    assert_int_equal(rdx_lab_order_from_hl7(m, 480, &o, NULL), RDX_OK);
    rdx_lab_routing *rt = route(r, o);
    expect(rt, 0, RDX_LAB_ROUTED, "A", "MSH-7 used");
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
}

static void test_catalogue_sample_network_loads(void **state)
{
    (void)state;
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_catalogue_load("docs/examples/network.ini", &c, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_true(rdx_lab_catalogue_lab_count(c) >= 6);
    assert_true(rdx_lab_catalogue_clinic_count(c) >= 20);
    assert_true(rdx_lab_catalogue_courier_count(c) >= 40);
    assert_int_equal(rdx_lab_catalogue_utc_offset_min(c), 480);
    const char *cities[] = {"Nanjing", "Ma'anshan", "Zhenjiang", "Yangzhou"};
    for (size_t k = 0; k < 4; k++) {
        int labs = 0, clinics = 0;
        for (size_t i = 0; i < rdx_lab_catalogue_lab_count(c); i++) {
            rdx_lab_lab_info li;
            assert_int_equal(rdx_lab_catalogue_lab_at(c, i, &li), RDX_OK);
            labs += strcmp(li.city, cities[k]) == 0;
            assert_true(li.capacity > 0 && li.ntests > 0 && li.close_min > li.open_min);
        }
        for (size_t i = 0; i < rdx_lab_catalogue_clinic_count(c); i++) {
            rdx_lab_clinic_info ci;
            assert_int_equal(rdx_lab_catalogue_clinic_at(c, i, &ci), RDX_OK);
            clinics += strcmp(ci.city, cities[k]) == 0;
        }
        assert_true(labs >= 1);
        assert_true(clinics >= 3);
    }
    rdx_lab_lab_info li;
    assert_int_equal(rdx_lab_catalogue_lab_at(c, 999, &li), RDX_ENOTFOUND);
    rdx_lab_catalogue_free(c);
}

static void test_catalogue_errors_name_file_line_and_key(void **state)
{
    (void)state;
    struct {
        const char *text, *needle;
    } cases[] = {
        {"[lab A]\nname = x\nbogus = 1\n", "t.ini:3: [lab A]: unknown key 'bogus'"},
        {"[lab A]\ncapacity = lots\n", "t.ini:2: [lab A] capacity: 'lots'"},
        {"[lab A]\nhours = 18:00-08:00\n", "t.ini:2: [lab A] hours"},
        {"[lab A]\nhours = 8-17\n", "t.ini:2: [lab A] hours"},
        {"[lab A]\nturnaround = soon\n", "t.ini:2: [lab A] turnaround"},
        {"[lab A]\nname = a\nname = b\n", "t.ini:3: [lab A] name: given twice"},
        {"[lab A]\ntests = K, K\n", "t.ini:2: [lab A] tests: 'K' listed twice"},
        {"[lab A]\ntests = K!\n", "not a code"},
        {"[courier K1 A]\npickups = 9am\n", "t.ini:2: [courier K1 A] pickups: '9am'"},
        {"[courier K1 A]\npickups = 10:00, 09:00\n", "not later than"},
        {"[courier K1 A]\ntemperature = warm\n", "t.ini:2: [courier K1 A] temperature"},
        {"[stability K]\nroom SER = forever\n", "t.ini:2: [stability K] room SER"},
        {"[stability K]\nfrozen SER = 1d\n", "unknown key 'frozen SER'"},
        {"[stability K]\nroom SER = 1d\nroom SER = 2d\n", "t.ini:3: [stability K] room SER: given "
                                                          "twice"},
        {"[network]\nutc_offset = 8\n", "t.ini:2: [network] utc_offset"},
        {"[labs A]\nname = x\n", "t.ini:2: [labs A]: unknown section"},
        {"[lab]\nname = x\n", "unknown section"},
        {"[lab A B]\nname = x\n", "unknown section"},
        {"name = x\n", "before any [section]"},
        {"[lab A]\nname\n", "t.ini:2: syntax error"},
        {"[network]\nname = x\n", "at least one [lab] and one [clinic]"},
        {"[clinic K]\nname = k\ncity = c\n[lab A]\nname = a\ncity = c\ncapacity = 1\n"
         "hours = 00:00-24:00\nturnaround = 1h\ntests = K\n",
         "t.ini:4: [lab A]: required key 'specimens' missing"},
        {"[clinic K]\nname = k\ncity = c\n[lab A]\nname = a\ncity = c\ncapacity = 1\n"
         "hours = 00:00-24:00\nturnaround = 1h\ntests = K\nspecimens = S\n",
         "t.ini:4: [lab A] tests: 'K' has no [stability K] section"},
        {"[clinic K]\nname = k\ncity = c\n[lab A]\nname = a\ncity = c\ncapacity = 1\n"
         "hours = 00:00-24:00\nturnaround = 1h\ntests = K\nspecimens = S\n[stability K]\n"
         "room S = 1h\n[courier K B]\npickups = 09:00\ntransit = 1\ntemperature = room\n",
         "t.ini:14: [courier K B]: no [lab B]"},
        {"[clinic K]\nname = k\ncity = c\n[lab A]\nname = a\ncity = c\ncapacity = 1\n"
         "hours = 00:00-24:00\nturnaround = 1h\ntests = K\nspecimens = S\n[stability K]\n"
         "room S = 1h\n[courier K A]\npickups = 09:00\ntemperature = room\n",
         "t.ini:14: [courier K A]: required key 'transit' missing"},
        {"[clinic K]\nname = k\n", "t.ini:1: [clinic K]: required key 'city' missing"},
        {"[lab A]\nname = a\n[clinic A]\nname = b\ncity = c\n[lab A]\ncity = x\n",
         "t.ini:7: [lab A]: lab defined twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rdx_lab_catalogue *c = (rdx_lab_catalogue *)1;
        rdx_error err;
        rdx_error_clear(&err);
        rdx_status st =
            rdx_lab_catalogue_parse(cases[i].text, strlen(cases[i].text), "t.ini", &c, &err);
        if (st == RDX_OK || c != NULL || strstr(err.msg, cases[i].needle) == NULL) {
            fail_msg("case %zu: status %d, '%s' lacks '%s'", i, st, err.msg, cases[i].needle);
        }
    }
    /* A line longer than libinih's buffer is refused, not cut in two. */
    char longline[1024];
    memset(longline, 'x', sizeof longline);
    memcpy(longline, "[lab A]\nname = ", 15);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = '\0';
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    assert_int_equal(rdx_lab_catalogue_parse(longline, strlen(longline), "t.ini", &c, &err),
                     RDX_EPARSE);
    assert_non_null(strstr(err.msg, "t.ini:2: line longer than"));
    assert_int_equal(rdx_lab_catalogue_load("/nonexistent/net.ini", &c, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/net.ini"));
}

static void test_catalogue_continuation_lines_extend_lists(void **state)
{
    (void)state;
    const char text[] = "[clinic K]\nname = k\ncity = c\n[lab A]\nname = a\ncity = c\n"
                        "capacity = 1\nhours = 07:30-24:00\nturnaround = 90m\ntests = K,\n"
                        "    NA\nspecimens = S\n[stability K]\nroom S = 1h\n[stability NA]\n"
                        "room S = 1h\n";
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_catalogue_parse(text, sizeof text - 1, "t.ini", &c, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    rdx_lab_lab_info li;
    assert_int_equal(rdx_lab_catalogue_lab_at(c, 0, &li), RDX_OK);
    assert_int_equal(li.ntests, 2);
    assert_int_equal(li.open_min, 450);
    assert_int_equal(li.close_min, 1440);
    assert_int_equal(li.tat_min, 90);
    assert_string_equal(li.facility, "A");
    rdx_lab_catalogue_free(c);
}

static void test_catalogue_documented_example_loads(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    assert_int_equal(rdx_file_read("docs/lab-catalogue.md", &b, NULL), RDX_OK);
    /* The last ```ini block of the format document is a complete catalogue. */
    const char *start = NULL, *p = (const char *)b.data;
    while ((p = strstr(p, "```ini\n")) != NULL) {
        start = p + 7;
        p = start;
    }
    assert_non_null(start);
    const char *end = strstr(start, "```");
    assert_non_null(end);
    rdx_lab_catalogue *c = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_lab_catalogue_parse(start, (size_t)(end - start), "lab-catalogue.md", &c, &err) !=
        RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(rdx_lab_catalogue_lab_count(c), 1);
    assert_int_equal(rdx_lab_catalogue_courier_count(c), 1);
    rdx_lab_catalogue_free(c);
    rdx_buf_free(&b);
}

static int oom_catalogue_route(void *ctx)
{
    (void)ctx;
    rdx_lab_catalogue *c = NULL;
    rdx_lab_router *r = NULL;
    rdx_lab_routing *rt = NULL;
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    int rc = 1;
    char text[8192];
    snprintf(text, sizeof text, base_fmt, "Zhenjiang", 100u, "30m", "");
    const char msg[] = "MSH|^~\\&|HIS|CLINIC-1|RDX|HUB|202612010700+0800||OML^O21|C2|P|2.5.1\r"
                       "PID|1||P1\rOBR|1|O2||K\rSPM|1|T9||SER|||||||||||||202612010800+0800\r"
                       "OBR|2|O2||TSH\rSPM|2|T9||SER|||||||||||||202612010800+0800\r"
                       "OBR|3|O2||HBA1C\rSPM|3|T8||WB|||||||||||||202612010800+0800\r";
    if (rdx_lab_catalogue_parse(text, strlen(text), "t.ini", &c, NULL) != RDX_OK ||
        rdx_lab_router_new(c, &r, NULL) != RDX_OK ||
        rdx_lab_hl7_parse(msg, sizeof msg - 1, &m, NULL) != RDX_OK ||
        rdx_lab_order_from_hl7(m, 480, &o, NULL) != RDX_OK ||
        rdx_lab_route(r, o, &rt, NULL) != RDX_OK) {
        goto out;
    }
    rc = rdx_lab_routing_count(rt) == 3 ? 0 : 1;
out:
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(c);
    return rc;
}

static void test_route_oom_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(oom_catalogue_route, NULL) > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_earliest_result_wins),
        cmocka_unit_test(test_route_tie_goes_to_same_city_then_lower_load),
        cmocka_unit_test(test_route_tests_on_one_tube_travel_together),
        cmocka_unit_test(test_route_split_makes_child_specimens),
        cmocka_unit_test(test_route_refusal_codes),
        cmocka_unit_test(test_route_down_lab_is_skipped),
        cmocka_unit_test(test_route_unknown_clinic),
        cmocka_unit_test(test_route_capacity_then_full_queued),
        cmocka_unit_test(test_route_lab_closed_waits_for_opening),
        cmocka_unit_test(test_route_lab_closed_days_wait_for_next_open_day),
        cmocka_unit_test(test_route_courier_weekdays_only_across_weekend),
        cmocka_unit_test(test_route_courier_weekend_timetable),
        cmocka_unit_test(test_catalogue_courier_days_errors),
        cmocka_unit_test(test_route_collection_time_falls_back_to_msh7),
        cmocka_unit_test(test_catalogue_sample_network_loads),
        cmocka_unit_test(test_catalogue_errors_name_file_line_and_key),
        cmocka_unit_test(test_catalogue_continuation_lines_extend_lists),
        cmocka_unit_test(test_catalogue_documented_example_loads),
        cmocka_unit_test(test_route_oom_sweep),
    };
    return cmocka_run_group_tests_name("lab_route", tests, NULL, NULL);
}
