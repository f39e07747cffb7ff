/*
 * lab/route.c - the router: for every test of an order, which member lab
 * performs it, and why.
 *
 * Rules, in the order they are checked for each (test, lab) pair:
 *   1. the lab performs the test                         (else NO_LAB)
 *   2. it accepts the specimen type, and the catalogue
 *      knows the test's stability on that type           (else WRONG_SPECIMEN)
 *   3. a courier run goes from the clinic to the lab     (else NO_COURIER)
 *   4. collection + wait for the next pickup + transit
 *      stays within the stability at the run's
 *      temperature                                       (else STABILITY)
 *   5. the lab has capacity left on the day testing
 *      would start (arrival, or the next opening)         (else FULL)
 * A specimen's tests go together to the qualifying lab with the earliest
 * expected result (ties: same city as the clinic, then lower load, then
 * lower id). When no single lab takes them all, the specimen is split into
 * child specimens, one per lab, each linked to the parent (SPM-3).
 *
 * All clock arithmetic is in local minutes since 1970-01-01 (network time,
 * [network] utc_offset): the catalogue's hours and pickups are local.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_TIME      INT64_MIN
#define MAX_DAY_SPAN 36600 /* a load table spans at most a century of days */
#define QUEUE_DAYS   7     /* how far ahead a full lab's queue is searched */

typedef struct lab_load {
    int64_t base;
    unsigned *counts;
    size_t n;
} lab_load;

struct rdx_lab_router {
    const rdx_lab_catalogue *c;
    lab_load *loads;     /* one per lab */
    unsigned char *down; /* one per lab: marked down, qualifies for nothing */
};

struct rdx_lab_routing {
    rdx_lab_decision *d;
    size_t n;
    char **strings;
    size_t nstrings, capstrings;
    size_t nlabs_used;
};

const char *rdx_lab_route_code_name(rdx_lab_route_code code)
{
    switch (code) {
    case RDX_LAB_ROUTED:
        return "ROUTED";
    case RDX_LAB_FULL_QUEUED:
        return "FULL_QUEUED";
    case RDX_LAB_NO_LAB:
        return "NO_LAB";
    case RDX_LAB_WRONG_SPECIMEN:
        return "WRONG_SPECIMEN";
    case RDX_LAB_NO_COURIER:
        return "NO_COURIER";
    case RDX_LAB_STABILITY:
        return "STABILITY";
    case RDX_LAB_UNKNOWN_CLINIC:
        return "UNKNOWN_CLINIC";
    default:
        return "?";
    }
}

rdx_status rdx_lab_router_new(const rdx_lab_catalogue *c, rdx_lab_router **out, rdx_error *err)
{
    if (c == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "router: bad arguments");
    }
    *out = NULL;
    rdx_lab_router *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    r->loads = rdx_callocarray(c->nlabs, sizeof *r->loads);
    r->down = rdx_callocarray(c->nlabs ? c->nlabs : 1, 1);
    if (r->loads == NULL || r->down == NULL) {
        free(r->loads);
        free(r->down);
        free(r);
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    r->c = c;
    *out = r;
    return RDX_OK;
}

void rdx_lab_router_free(rdx_lab_router *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->c->nlabs; i++) {
        free(r->loads[i].counts);
    }
    free(r->loads);
    free(r->down);
    free(r);
}

rdx_status rdx_lab_router_set_down(rdx_lab_router *r, const char *lab_id, int down, rdx_error *err)
{
    size_t li = lab_cat_find_lab(r->c, lab_id);
    if (li == SIZE_MAX) {
        return rdx_error_set(err, RDX_ENOTFOUND, "no lab '%s' in the catalogue", lab_id);
    }
    r->down[li] = down != 0;
    return RDX_OK;
}

static unsigned load_get(const lab_load *l, int64_t day)
{
    if (l->n == 0 || day < l->base || day >= l->base + (int64_t)l->n) {
        return 0;
    }
    return l->counts[day - l->base];
}

static rdx_status load_add(lab_load *l, int64_t day, unsigned k)
{
    if (l->n == 0) {
        l->counts = rdx_callocarray(64, sizeof *l->counts);
        if (l->counts == NULL) {
            return RDX_ENOMEM;
        }
        l->n = 64;
        l->base = day - 8;
    }
    if (day < l->base) {
        size_t shift = (size_t)(l->base - day) + 32;
        if (l->n + shift > MAX_DAY_SPAN) {
            return RDX_ELIMIT;
        }
        unsigned *t = rdx_reallocarray(l->counts, l->n + shift, sizeof *t);
        if (t == NULL) {
            return RDX_ENOMEM;
        }
        memmove(t + shift, t, l->n * sizeof *t);
        memset(t, 0, shift * sizeof *t);
        l->counts = t;
        l->n += shift;
        l->base -= (int64_t)shift;
    }
    if (day >= l->base + (int64_t)l->n) {
        size_t need = (size_t)(day - l->base) + 1, nn = l->n;
        while (nn < need) {
            nn *= 2;
        }
        if (nn > MAX_DAY_SPAN) {
            nn = need;
        }
        if (nn > MAX_DAY_SPAN) {
            return RDX_ELIMIT;
        }
        unsigned *t = rdx_reallocarray(l->counts, nn, sizeof *t);
        if (t == NULL) {
            return RDX_ENOMEM;
        }
        memset(t + l->n, 0, (nn - l->n) * sizeof *t);
        l->counts = t;
        l->n = nn;
    }
    l->counts[day - l->base] += k;
    return RDX_OK;
}

rdx_status rdx_lab_router_add_load(rdx_lab_router *r, const char *lab_id, int64_t day, unsigned n,
                                   rdx_error *err)
{
    size_t li = lab_cat_find_lab(r->c, lab_id);
    if (li == SIZE_MAX) {
        return rdx_error_set(err, RDX_ENOTFOUND, "no lab '%s' in the catalogue", lab_id);
    }
    rdx_status st = load_add(&r->loads[li], day, n);
    if (st != RDX_OK) {
        return rdx_error_set(err, st, "lab %s: cannot count load for day %lld", lab_id,
                             (long long)day);
    }
    return RDX_OK;
}

unsigned rdx_lab_router_load(const rdx_lab_router *r, const char *lab_id, int64_t day)
{
    size_t li = lab_cat_find_lab(r->c, lab_id);
    return li == SIZE_MAX ? 0 : load_get(&r->loads[li], day);
}

/* ---- Time helpers -------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t local_min(int64_t ms_utc, int off)
{
    return floor_div(ms_utc, 60000) + off;
}

static int64_t utc_ms(int64_t lmin, int off)
{
    return (lmin - off) * 60000;
}

/* Date and time of local minutes (Howard Hinnant's civil_from_days). */
static void civil(int64_t lmin, int64_t *y, unsigned *m, unsigned *d, unsigned *mod)
{
    int64_t z = floor_div(lmin, 1440);
    *mod = (unsigned)(lmin - z * 1440);
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t y0 = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = y0 + (*m <= 2);
}

/* "2026-12-01 09:35" for local minutes. */
static void fmt_local(int64_t lmin, char out[40])
{
    int64_t y;
    unsigned m, d, mod;
    civil(lmin, &y, &m, &d, &mod);
    snprintf(out, 40, "%04lld-%02u-%02u %02u:%02u", (long long)y, m % 13, d % 32, (mod / 60) % 24,
             mod % 60);
}

void lab_fmt_dtm(int64_t ms_utc, int off_min, char out[32])
{
    int64_t y;
    unsigned m, d, mod;
    unsigned sec = (unsigned)(ms_utc - floor_div(ms_utc, 60000) * 60000) / 1000;
    civil(local_min(ms_utc, off_min), &y, &m, &d, &mod);
    int a = off_min < 0 ? -off_min : off_min;
    snprintf(out, 32, "%04lld%02u%02u%02u%02u%02u%c%02d%02d", (long long)y % 10000, m % 13, d % 32,
             (mod / 60) % 24, mod % 60, sec % 60, off_min < 0 ? '-' : '+', (a / 60) % 100, a % 60);
}

static void fmt_hhmm(int64_t lmin, char out[16])
{
    int64_t z = floor_div(lmin, 1440);
    unsigned mod = (unsigned)(lmin - z * 1440);
    snprintf(out, 16, "%02u:%02u", (mod / 60) % 24, mod % 60);
}

typedef struct eval {
    rdx_lab_route_code stage; /* RDX_LAB_ROUTED when every rule but capacity holds */
    int64_t pickup, arrival, start, result, day;
    int stab_min;
    int fridge;
    /* The courier's week, for the reason: */
    unsigned no_run;   /* weekdays (bit 0 Monday) waited through on which the run does not go */
    int own_timetable; /* the pickup is on a day with its own timetable (pickups DAYS) */
} eval;

static const char *const wd_name[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

/* "Sat 2026-12-05 10:00" for local minutes. */
static void fmt_wd_local(int64_t lmin, char out[48])
{
    char t[40];
    fmt_local(lmin, t);
    snprintf(out, 48, "%s %s", wd_name[lab_cat_weekday(floor_div(lmin, 1440))], t);
}

/* The weekdays of mask, "Sat, Sun", in the week's order from first_wd on. */
static void fmt_days(unsigned mask, int first_wd, char out[40])
{
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k < 7; k++) {
        int d = (first_wd + k) % 7;
        if ((mask >> d) & 1u) {
            n += (size_t)snprintf(out + n, 40 - n, "%s%s", n ? ", " : "", wd_name[d]);
        }
    }
}

/*
 * The courier part of a reason: when the pickup is ("09:00" on the day of
 * collection, else with its weekday and date) and, for a run that is not the
 * same every day, the days it did not go and whose timetable was used.
 */
static void fmt_pickup(const eval *e, int64_t from, char out[160])
{
    char when[48], days[40];
    int64_t day0 = floor_div(from, 1440), pday = floor_div(e->pickup, 1440);
    if (pday == day0) {
        fmt_hhmm(e->pickup, when);
    } else {
        fmt_wd_local(e->pickup, when);
    }
    size_t n = (size_t)snprintf(out, 160, "%s", when);
    if (e->no_run == 0 && !e->own_timetable) {
        return;
    }
    n += (size_t)snprintf(out + n, 160 - n, " (");
    if (e->no_run != 0) {
        fmt_days(e->no_run, lab_cat_weekday(day0), days);
        n += (size_t)snprintf(out + n, 160 - n, "no courier run on %s%s", days,
                              e->own_timetable ? "; " : "");
    }
    if (e->own_timetable) {
        n += (size_t)snprintf(out + n, 160 - n, "the %s timetable", wd_name[lab_cat_weekday(pday)]);
    }
    snprintf(out + n, 160 - n, ")");
}

/* When testing can start for a specimen arriving at `arrival`. */
static int64_t next_open(const cat_lab *l, int64_t arrival)
{
    int64_t day = floor_div(arrival, 1440);
    int64_t mod = arrival - day * 1440;
    if (lab_cat_open_on(l, day)) {
        if (mod < l->open_min) {
            return day * 1440 + l->open_min;
        }
        if (mod < l->close_min) {
            return arrival;
        }
    }
    /* The next day it tests (days is never empty: at most a week ahead). */
    for (int64_t d = day + 1; d <= day + 7; d++) {
        if (lab_cat_open_on(l, d)) {
            return d * 1440 + l->open_min;
        }
    }
    return (day + 1) * 1440 + l->open_min;
}

/* ---- Evaluation of one (test, lab) pair ---------------------------------- */

static void evaluate(const rdx_lab_catalogue *c, size_t clinic, size_t li, const char *test,
                     const char *type, int64_t collected, int64_t not_before, eval *e)
{
    const cat_lab *l = &c->labs[li];
    memset(e, 0, sizeof *e);
    e->pickup = e->arrival = e->start = e->result = NO_TIME;
    e->day = -1;
    if (!lab_cat_lab_performs(l, test)) {
        e->stage = RDX_LAB_NO_LAB;
        return;
    }
    const cat_stab *s = lab_cat_find_stab(c, test, type);
    if (s == NULL || !lab_cat_lab_accepts(l, type)) {
        e->stage = RDX_LAB_WRONG_SPECIMEN;
        return;
    }
    const cat_run *run = lab_cat_find_run(c, clinic, li);
    if (run == NULL) {
        e->stage = RDX_LAB_NO_COURIER;
        return;
    }
    e->fridge = run->refrigerated;
    e->stab_min = run->refrigerated ? s->fridge_min : s->room_min;
    if (e->stab_min < 0) {
        e->stab_min = 0;
    }
    /* The next pickup after collection (or, when rerouting, after now). */
    int64_t from = collected > not_before ? collected : not_before;
    int64_t day0 = floor_div(from, 1440);
    for (int64_t d = 0; d <= QUEUE_DAYS && e->pickup == NO_TIME; d++) {
        /* The run's timetable on that weekday (none on a day it does not go). */
        int wd = lab_cat_weekday(day0 + d);
        size_t np;
        const unsigned *pk = lab_cat_run_pickups(run, wd, &np);
        if (np == 0) {
            e->no_run |= 1u << wd;
        }
        for (size_t k = 0; k < np; k++) {
            int64_t t = (day0 + d) * 1440 + pk[k];
            if (t >= from) {
                e->pickup = t;
                e->own_timetable = (run->own >> wd) & 1u;
                break;
            }
        }
    }
    if (e->pickup == NO_TIME) {
        /* Cannot happen (the catalogue has pickups on every day a run goes, one day at least). */
        e->stage = RDX_LAB_NO_COURIER;
        return;
    }
    e->arrival = e->pickup + run->transit_min;
    if (e->arrival - collected > e->stab_min) {
        e->stage = RDX_LAB_STABILITY;
        return;
    }
    e->start = next_open(l, e->arrival);
    e->result = e->start + lab_cat_lab_tat(l, test);
    e->day = floor_div(e->start, 1440);
    e->stage = RDX_LAB_ROUTED;
}

/* ---- Results ------------------------------------------------------------- */

static rdx_status keep(rdx_lab_routing *rt, char *s, const char **out)
{
    if (s == NULL) {
        return RDX_ENOMEM;
    }
    if (rt->nstrings == rt->capstrings) {
        size_t nc = rt->capstrings ? rt->capstrings * 2 : 16;
        char **t = rdx_reallocarray(rt->strings, nc, sizeof *t);
        if (t == NULL) {
            free(s);
            return RDX_ENOMEM;
        }
        rt->strings = t;
        rt->capstrings = nc;
    }
    rt->strings[rt->nstrings++] = s;
    *out = s;
    return RDX_OK;
}

static rdx_status keep_buf(rdx_lab_routing *rt, rdx_buf *b, const char **out)
{
    char *s = rdx_strndup(b->data ? (const char *)b->data : "", b->len);
    return keep(rt, s, out);
}

void rdx_lab_routing_free(rdx_lab_routing *rt)
{
    if (rt == NULL) {
        return;
    }
    for (size_t i = 0; i < rt->nstrings; i++) {
        free(rt->strings[i]);
    }
    free(rt->strings);
    free(rt->d);
    free(rt);
}

size_t rdx_lab_routing_count(const rdx_lab_routing *rt)
{
    return rt->n;
}

const rdx_lab_decision *rdx_lab_routing_at(const rdx_lab_routing *rt, size_t i)
{
    return i < rt->n ? &rt->d[i] : NULL;
}

size_t rdx_lab_routing_labs(const rdx_lab_routing *rt)
{
    return rt->nlabs_used;
}

/* ---- The routing itself -------------------------------------------------- */

typedef struct route_ctx {
    rdx_lab_router *r;
    const rdx_lab_catalogue *c;
    const rdx_lab_order *o;
    rdx_lab_routing *rt;
    size_t clinic;
    int off;
    eval *ev;      /* [test][lab] for the current specimen */
    size_t *tests; /* order test indices on the current specimen */
    size_t ntests;
    size_t *dec_of;     /* decision index per order test */
    int64_t not_before; /* local minutes: no pickup before (rerouting), else INT64_MIN */
    rdx_buf text;
} route_ctx;

#define EV(ctx, t, l) ((ctx)->ev[(t) * (ctx)->c->nlabs + (l)])

/* Is lab a better pick than lab b, given their results? Returns the deciding reason. */
static int better(const route_ctx *x, size_t a, int64_t ra, size_t b, int64_t rb, const char **why)
{
    const cat_lab *la = &x->c->labs[a], *lb = &x->c->labs[b];
    const char *city = x->c->clinics[x->clinic].city;
    if (ra != rb) {
        *why = "earliest expected result";
        return ra < rb;
    }
    int sa = strcmp(la->city, city) == 0, sb = strcmp(lb->city, city) == 0;
    if (sa != sb) {
        *why = "same city as the clinic";
        return sa > sb;
    }
    double fa = (double)load_get(&x->r->loads[a], EV(x, 0, a).day) / la->capacity;
    double fb = (double)load_get(&x->r->loads[b], EV(x, 0, b).day) / lb->capacity;
    if (fa != fb) {
        *why = "lower load";
        return fa < fb;
    }
    *why = "lower lab id";
    return strcmp(la->id, lb->id) < 0;
}

static const char *temp_name(int fridge)
{
    return fridge ? "refrigerated" : "at room temperature";
}

/* Append the decision for order test ti to the routing. */
static rdx_status add_decision(route_ctx *x, size_t ti, const rdx_lab_decision *d)
{
    rdx_lab_routing *rt = x->rt;
    rdx_lab_decision *t = rdx_reallocarray(rt->d, rt->n + 1, sizeof *t);
    if (t == NULL) {
        return RDX_ENOMEM;
    }
    rt->d = t;
    rt->d[rt->n] = *d;
    x->dec_of[ti] = rt->n++;
    return RDX_OK;
}

static rdx_status base_decision(route_ctx *x, size_t ti, rdx_lab_decision *d)
{
    const rdx_lab_order_test *t = rdx_lab_order_test_at(x->o, ti);
    const rdx_lab_order_specimen *s = rdx_lab_order_specimen_at(x->o, t->specimen);
    memset(d, 0, sizeof *d);
    /* The routing owns copies: it may outlive the order. */
    RDX_TRY(keep(x->rt, rdx_strndup(t->code, strlen(t->code)), &d->test_code));
    RDX_TRY(keep(x->rt, rdx_strndup(t->text, strlen(t->text)), &d->test_text));
    RDX_TRY(keep(x->rt, rdx_strndup(s->id, strlen(s->id)), &d->specimen_id));
    RDX_TRY(keep(x->rt, rdx_strndup(s->type, strlen(s->type)), &d->specimen_type));
    const char *auth = s->authority[0] ? s->authority : rdx_lab_order_sender(x->o);
    RDX_TRY(keep(x->rt, rdx_strndup(auth, strlen(auth)), &d->specimen_authority));
    d->stable_until_ms = NO_TIME;
    d->parent_id = "";
    d->lab = "";
    d->lab_city = "";
    d->pickup_ms = d->arrival_ms = d->result_ms = NO_TIME;
    d->day = -1;
    return RDX_OK;
}

/* Routed (or queued) decision for order test ti at lab li with evaluation e. */
static rdx_status routed(route_ctx *x, size_t ti, size_t li, const eval *e, int64_t collected,
                         rdx_lab_route_code code, const char *note)
{
    rdx_lab_decision d;
    char col[40], pick[160], arr[48], res[40];
    const cat_lab *l = &x->c->labs[li];
    RDX_TRY(base_decision(x, ti, &d));
    d.code = code;
    d.lab = l->id;
    d.lab_city = l->city;
    d.collected_ms = utc_ms(collected, x->off);
    d.pickup_ms = utc_ms(e->pickup, x->off);
    d.arrival_ms = utc_ms(e->arrival, x->off);
    d.result_ms = utc_ms(e->result, x->off);
    d.day = e->day;
    d.stable_until_ms = utc_ms(collected + e->stab_min, x->off);
    fmt_local(collected, col);
    fmt_pickup(e, x->not_before > collected ? x->not_before : collected, pick);
    if (floor_div(e->arrival, 1440) == floor_div(e->pickup, 1440)) {
        fmt_hhmm(e->arrival, arr);
    } else {
        fmt_wd_local(e->arrival, arr);
    }
    fmt_local(e->result, res);
    rdx_buf_reset(&x->text);
    RDX_TRY(rdx_buf_printf(&x->text,
                           "%s; collected %s, pickup %s, arrives %s (%lld of %d min stability "
                           "%s), result by %s",
                           note, col, pick, arr, (long long)(e->arrival - collected), e->stab_min,
                           temp_name(e->fridge), res));
    RDX_TRY(keep_buf(x->rt, &x->text, &d.reason));
    return add_decision(x, ti, &d);
}

/* The refusal (or queue) for order test ti that no lab could take today. */
static rdx_status refuse(route_ctx *x, size_t k, int64_t collected)
{
    size_t ti = x->tests[k];
    const rdx_lab_catalogue *c = x->c;
    const rdx_lab_order_test *t = rdx_lab_order_test_at(x->o, ti);
    rdx_lab_route_code best = RDX_LAB_NO_LAB;
    static const int rank[] = {
        [RDX_LAB_ROUTED] = 5,         [RDX_LAB_STABILITY] = 4, [RDX_LAB_NO_COURIER] = 3,
        [RDX_LAB_WRONG_SPECIMEN] = 2, [RDX_LAB_NO_LAB] = 1,    [RDX_LAB_FULL_QUEUED] = 0,
        [RDX_LAB_UNKNOWN_CLINIC] = 0};
    for (size_t li = 0; li < c->nlabs; li++) {
        if (rank[EV(x, k, li).stage] > rank[best]) {
            best = EV(x, k, li).stage;
        }
    }
    rdx_lab_decision d;
    RDX_TRY(base_decision(x, ti, &d));
    d.collected_ms = utc_ms(collected, x->off);
    rdx_buf_reset(&x->text);
    if (best == RDX_LAB_ROUTED) {
        /* Capable labs exist but are full: queue at the earliest later day with room. */
        size_t pick = SIZE_MAX;
        eval pe = {0};
        RDX_TRY(rdx_buf_append_str(&x->text, "all capable labs are full on the day testing "
                                             "would start ("));
        int first = 1;
        for (size_t li = 0; li < c->nlabs; li++) {
            eval e = EV(x, k, li);
            if (e.stage != RDX_LAB_ROUTED) {
                continue;
            }
            RDX_TRY(rdx_buf_printf(&x->text, "%s%s %u/%u", first ? "" : ", ", c->labs[li].id,
                                   load_get(&x->r->loads[li], e.day), c->labs[li].capacity));
            first = 0;
            for (int64_t dd = 1; dd <= QUEUE_DAYS; dd++) {
                int64_t day = e.day + dd;
                if (!lab_cat_open_on(&c->labs[li], day) ||
                    load_get(&x->r->loads[li], day) + 1 > c->labs[li].capacity) {
                    continue;
                }
                eval q = e;
                q.day = day;
                q.start = day * 1440 + c->labs[li].open_min;
                q.result = q.start + lab_cat_lab_tat(&c->labs[li], t->code);
                /* The specimen waits at the lab: it must still be stable when testing starts. */
                if (q.start - collected > q.stab_min) {
                    break;
                }
                if (pick == SIZE_MAX || q.result < pe.result) {
                    pick = li;
                    pe = q;
                }
                break;
            }
        }
        RDX_TRY(rdx_buf_append_str(&x->text, ")"));
        if (pick != SIZE_MAX) {
            char day[40];
            fmt_local(pe.start, day);
            RDX_TRY(rdx_buf_printf(&x->text, "; queued at %s for %.10s, flagged", c->labs[pick].id,
                                   day));
            char note[RDX_ERROR_MSG_MAX];
            snprintf(note, sizeof note, "%s", (const char *)x->text.data);
            rdx_status st = load_add(&x->r->loads[pick], pe.day, 1);
            if (st != RDX_OK) {
                return st;
            }
            return routed(x, ti, pick, &pe, collected, RDX_LAB_FULL_QUEUED, note);
        }
        RDX_TRY(rdx_buf_printf(&x->text, " and the specimen would not stay stable until a "
                                         "later day with room"));
        best = RDX_LAB_STABILITY;
    } else if (best == RDX_LAB_STABILITY) {
        size_t li_best = SIZE_MAX;
        for (size_t li = 0; li < c->nlabs; li++) {
            eval e = EV(x, k, li);
            if (e.stage == RDX_LAB_STABILITY &&
                (li_best == SIZE_MAX || e.arrival < EV(x, k, li_best).arrival)) {
                li_best = li;
            }
        }
        eval e = EV(x, k, li_best);
        if (e.stab_min == 0) {
            RDX_TRY(rdx_buf_printf(&x->text,
                                   "%s on %s must not travel %s, and the courier runs to the "
                                   "capable labs (e.g. %s) are %s",
                                   lab_cat_test_name(c, t->code),
                                   lab_cat_type_name(c, d.specimen_type), temp_name(e.fridge),
                                   c->labs[li_best].id, e.fridge ? "refrigerated" : "not"));
        } else {
            RDX_TRY(rdx_buf_printf(
                &x->text,
                "%s on %s keeps %d min %s; the earliest arrival at a capable "
                "lab (%s) is %lld min after collection",
                lab_cat_test_name(c, t->code), lab_cat_type_name(c, d.specimen_type), e.stab_min,
                temp_name(e.fridge), c->labs[li_best].id, (long long)(e.arrival - collected)));
            if (e.no_run != 0) {
                char days[40];
                int64_t from = x->not_before > collected ? x->not_before : collected;
                fmt_days(e.no_run, lab_cat_weekday(floor_div(from, 1440)), days);
                RDX_TRY(rdx_buf_printf(&x->text, " (no courier run on %s)", days));
            }
        }
    } else if (best == RDX_LAB_NO_COURIER) {
        RDX_TRY(rdx_buf_append_str(&x->text, "performed on this specimen by "));
        int first = 1;
        for (size_t li = 0; li < c->nlabs; li++) {
            if (EV(x, k, li).stage == RDX_LAB_NO_COURIER) {
                RDX_TRY(rdx_buf_printf(&x->text, "%s%s", first ? "" : ", ", c->labs[li].id));
                first = 0;
            }
        }
        RDX_TRY(rdx_buf_printf(&x->text, ", but no courier run goes there from %s",
                               c->clinics[x->clinic].id));
    } else if (best == RDX_LAB_WRONG_SPECIMEN) {
        RDX_TRY(rdx_buf_printf(&x->text, "%s is performed (", lab_cat_test_name(c, t->code)));
        int first = 1;
        for (size_t li = 0; li < c->nlabs; li++) {
            if (EV(x, k, li).stage == RDX_LAB_WRONG_SPECIMEN) {
                RDX_TRY(rdx_buf_printf(&x->text, "%s%s", first ? "" : ", ", c->labs[li].id));
                first = 0;
            }
        }
        RDX_TRY(rdx_buf_printf(&x->text, ") but not on %s (%s)",
                               lab_cat_type_name(c, d.specimen_type), d.specimen_type));
    } else {
        int downs = 0;
        for (size_t li = 0; li < c->nlabs; li++) {
            if (x->r->down[li] && lab_cat_lab_performs(&c->labs[li], t->code)) {
                RDX_TRY(rdx_buf_printf(&x->text, "%s%s",
                                       downs ? ", "
                                             : "the labs that perform "
                                               "it (",
                                       c->labs[li].id));
                downs++;
            }
        }
        if (downs > 0) {
            RDX_TRY(rdx_buf_printf(&x->text, ") are down"));
        } else {
            RDX_TRY(rdx_buf_printf(&x->text, "no lab of the network performs %s (%s)", t->code,
                                   t->system[0] ? t->system : "local code"));
        }
    }
    d.code = best;
    RDX_TRY(keep_buf(x->rt, &x->text, &d.reason));
    return add_decision(x, ti, &d);
}

/* Route the tests on one specimen (x->tests[0..ntests)). */
static rdx_status route_specimen(route_ctx *x, size_t si, int64_t collected, const char *fallback)
{
    const rdx_lab_catalogue *c = x->c;
    const rdx_lab_order_specimen *sp = rdx_lab_order_specimen_at(x->o, si);
    size_t nl = c->nlabs, nt = x->ntests;
    for (size_t k = 0; k < nt; k++) {
        const rdx_lab_order_test *t = rdx_lab_order_test_at(x->o, x->tests[k]);
        for (size_t li = 0; li < nl; li++) {
            evaluate(c, x->clinic, li, t->code, sp->type, collected, x->not_before, &EV(x, k, li));
            if (x->r->down[li]) {
                /* A lab that is down is as good as absent. */
                EV(x, k, li).stage = RDX_LAB_NO_LAB;
            }
        }
    }
    /* One lab for the whole tube? res[li] is its group result, or NO_TIME. */
    int64_t *res = rdx_mallocarray(nl ? nl : 1, sizeof *res);
    if (res == NULL) {
        return RDX_ENOMEM;
    }
    size_t best = SIZE_MAX, second = SIZE_MAX;
    const char *why = "the only lab that qualifies", *w;
    for (size_t li = 0; li < nl; li++) {
        int ok = 1;
        res[li] = 0;
        for (size_t k = 0; k < nt && ok; k++) {
            const eval *e = &EV(x, k, li);
            ok = e->stage == RDX_LAB_ROUTED;
            if (ok && e->result > res[li]) {
                res[li] = e->result;
            }
        }
        if (!ok || load_get(&x->r->loads[li], EV(x, 0, li).day) + nt > c->labs[li].capacity) {
            res[li] = NO_TIME;
            continue;
        }
        if (best == SIZE_MAX || better(x, li, res[li], best, res[best], &w)) {
            best = li;
        }
    }
    for (size_t li = 0; li < nl && best != SIZE_MAX; li++) {
        if (li != best && res[li] != NO_TIME &&
            (second == SIZE_MAX || better(x, li, res[li], second, res[second], &w))) {
            second = li;
        }
    }
    int64_t best_res = best != SIZE_MAX ? res[best] : 0;
    int64_t second_res = second != SIZE_MAX ? res[second] : 0;
    if (second != SIZE_MAX) {
        better(x, best, best_res, second, second_res, &why);
    }
    free(res);
    if (best != SIZE_MAX) {
        char note[RDX_ERROR_MSG_MAX];
        if (second != SIZE_MAX) {
            char when[40];
            fmt_local(second_res, when);
            snprintf(note, sizeof note,
                     "%s (%s): %s among the labs that take all %zu test(s) on this tube (next "
                     "best %s, result by %s)%s%s",
                     c->labs[best].id, c->labs[best].city, why, nt, c->labs[second].id, when,
                     fallback[0] ? "; " : "", fallback);
        } else {
            snprintf(note, sizeof note,
                     "%s (%s): the only lab that takes all %zu test(s) on "
                     "this tube%s%s",
                     c->labs[best].id, c->labs[best].city, nt, fallback[0] ? "; " : "", fallback);
        }
        RDX_TRY(load_add(&x->r->loads[best], EV(x, 0, best).day, (unsigned)nt));
        for (size_t k = 0; k < nt; k++) {
            RDX_TRY(routed(x, x->tests[k], best, &EV(x, k, best), collected, RDX_LAB_ROUTED, note));
        }
        x->rt->nlabs_used++;
        return RDX_OK;
    }
    /* Split: greedily give the lab that takes most of what is left its share. */
    unsigned char *done = calloc(nt ? nt : 1, 1);
    if (done == NULL) {
        return RDX_ENOMEM;
    }
    rdx_status st = RDX_OK;
    size_t child = 0, first_dec = x->rt->n;
    for (;;) {
        size_t pick = SIZE_MAX, pick_n = 0;
        int64_t pick_res = 0;
        for (size_t li = 0; li < nl; li++) {
            size_t cnt = 0;
            int64_t res = 0;
            unsigned room = 0, used = 0;
            for (size_t k = 0; k < nt; k++) {
                const eval *e = &EV(x, k, li);
                if (done[k] || e->stage != RDX_LAB_ROUTED) {
                    continue;
                }
                used = load_get(&x->r->loads[li], e->day);
                room = used >= c->labs[li].capacity ? 0 : c->labs[li].capacity - used;
                if (cnt < room) {
                    cnt++;
                    res = e->result > res ? e->result : res;
                }
            }
            const char *w;
            if (cnt > 0 &&
                (cnt > pick_n || (cnt == pick_n && better(x, li, res, pick, pick_res, &w)))) {
                pick = li;
                pick_n = cnt;
                pick_res = res;
            }
        }
        if (pick == SIZE_MAX) {
            break;
        }
        child++;
        char note[RDX_ERROR_MSG_MAX];
        snprintf(note, sizeof note,
                 "%s (%s): no single lab takes all %zu tests on %s, so it is split; this lab "
                 "takes %zu%s%s",
                 c->labs[pick].id, c->labs[pick].city, nt, sp->id, pick_n, fallback[0] ? "; " : "",
                 fallback);
        size_t taken = 0;
        for (size_t k = 0; k < nt && taken < pick_n && st == RDX_OK; k++) {
            const eval *e = &EV(x, k, pick);
            if (done[k] || e->stage != RDX_LAB_ROUTED) {
                continue;
            }
            done[k] = (unsigned char)child;
            taken++;
            if ((st = load_add(&x->r->loads[pick], e->day, 1)) == RDX_OK) {
                st = routed(x, x->tests[k], pick, e, collected, RDX_LAB_ROUTED, note);
            }
        }
        if (st != RDX_OK) {
            goto out;
        }
        x->rt->nlabs_used++;
    }
    for (size_t k = 0; k < nt && st == RDX_OK; k++) {
        if (!done[k]) {
            st = refuse(x, k, collected);
            if (st == RDX_OK && x->rt->d[x->rt->n - 1].code == RDX_LAB_FULL_QUEUED) {
                done[k] = (unsigned char)++child;
                x->rt->nlabs_used++;
            }
        }
    }
    if (st != RDX_OK) {
        goto out;
    }
    /* More than one lab (or a queue) for this tube: child specimens, SPM-3 = parent. */
    if (child > 1) {
        for (size_t di = first_dec; di < x->rt->n && st == RDX_OK; di++) {
            rdx_lab_decision *d = &x->rt->d[di];
            if (d->lab[0] == '\0') {
                continue;
            }
            size_t k = 0;
            while (k < nt && x->dec_of[x->tests[k]] != di) {
                k++;
            }
            const char *parent = d->specimen_id; /* the routing's copy of sp->id */
            rdx_buf_reset(&x->text);
            if ((st = rdx_buf_printf(&x->text, "%s.%u", sp->id, (unsigned)done[k])) == RDX_OK &&
                (st = keep_buf(x->rt, &x->text, &d->specimen_id)) == RDX_OK) {
                d->parent_id = parent;
            }
        }
    }
out:
    free(done);
    return st;
}

rdx_status rdx_lab_route(rdx_lab_router *r, const rdx_lab_order *o, rdx_lab_routing **out,
                         rdx_error *err)
{
    rdx_status st = RDX_OK;
    if (r == NULL || o == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "route: bad arguments");
    }
    *out = NULL;
    route_ctx x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.c = r->c;
    x.o = o;
    x.off = r->c->utc_offset_min;
    x.not_before = lab_order_not_before(o) == INT64_MIN
                       ? INT64_MIN
                       : local_min(lab_order_not_before(o), r->c->utc_offset_min);
    rdx_buf_init(&x.text, RDX_ERROR_MSG_MAX * 2);
    x.rt = calloc(1, sizeof *x.rt);
    size_t nt = rdx_lab_order_test_count(o);
    x.dec_of = rdx_callocarray(nt ? nt : 1, sizeof *x.dec_of);
    x.tests = rdx_callocarray(nt ? nt : 1, sizeof *x.tests);
    x.ev = rdx_callocarray((nt ? nt : 1) * (r->c->nlabs ? r->c->nlabs : 1), sizeof *x.ev);
    if (x.rt == NULL || x.dec_of == NULL || x.tests == NULL || x.ev == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
        goto out;
    }
    x.clinic = lab_cat_find_clinic_by_facility(r->c, rdx_lab_order_sender(o));
    if (x.clinic == SIZE_MAX) {
        for (size_t ti = 0; ti < nt; ti++) {
            rdx_lab_decision d;
            rdx_buf_reset(&x.text);
            if ((st = base_decision(&x, ti, &d)) != RDX_OK ||
                (d.code = RDX_LAB_UNKNOWN_CLINIC,
                 st = rdx_buf_printf(&x.text,
                                     "MSH-4.1 '%s' is not the hl7_facility of any clinic in "
                                     "the catalogue",
                                     rdx_lab_order_sender(o))) != RDX_OK ||
                (st = keep_buf(x.rt, &x.text, &d.reason)) != RDX_OK ||
                (st = add_decision(&x, ti, &d)) != RDX_OK) {
                rdx_error_set(err, st, "out of memory");
                goto out;
            }
        }
        goto out;
    }
    for (size_t si = 0; si < rdx_lab_order_specimen_count(o); si++) {
        const rdx_lab_order_specimen *sp = rdx_lab_order_specimen_at(o, si);
        x.ntests = 0;
        for (size_t ti = 0; ti < nt; ti++) {
            if (rdx_lab_order_test_at(o, ti)->specimen == si) {
                x.tests[x.ntests++] = ti;
            }
        }
        if (x.ntests == 0) {
            continue;
        }
        int64_t col_ms = sp->collected_ms;
        const char *fallback = "";
        if (col_ms == INT64_MIN) {
            col_ms = rdx_lab_order_sent_ms(o);
            fallback = "collection time not given, MSH-7 used";
        }
        if (col_ms == INT64_MIN) {
            st = rdx_error_set(err, RDX_EPARSE,
                               "specimen %s: no collection time (SPM-17 or OBR-7) and no MSH-7",
                               sp->id);
            goto out;
        }
        st = route_specimen(&x, si, local_min(col_ms, x.off), fallback);
        if (st != RDX_OK) {
            rdx_error_set(err, st, "routing specimen %s: %s", sp->id, rdx_strerror(st));
            goto out;
        }
    }
    /* Decisions in the order's test order. */
    if (x.rt->n == nt) {
        rdx_lab_decision *sorted = rdx_mallocarray(nt ? nt : 1, sizeof *sorted);
        if (sorted == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t ti = 0; ti < nt; ti++) {
            sorted[ti] = x.rt->d[x.dec_of[ti]];
        }
        free(x.rt->d);
        x.rt->d = sorted;
    }
out:
    free(x.dec_of);
    free(x.tests);
    free(x.ev);
    rdx_buf_free(&x.text);
    if (st != RDX_OK) {
        rdx_lab_routing_free(x.rt);
        return st;
    }
    *out = x.rt;
    return RDX_OK;
}

int lab_route_load_window(const rdx_lab_catalogue *c, const rdx_lab_order *o, int64_t *from_day,
                          int64_t *to_day)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    int64_t not_before = lab_order_not_before(o);
    for (size_t si = 0; si < rdx_lab_order_specimen_count(o); si++) {
        int64_t t = rdx_lab_order_specimen_at(o, si)->collected_ms;
        if (t == INT64_MIN) {
            t = rdx_lab_order_sent_ms(o); /* as rdx_lab_route falls back */
        }
        if (t == INT64_MIN) {
            continue;
        }
        if (not_before != INT64_MIN && not_before > t) {
            t = not_before;
        }
        int64_t day = floor_div(local_min(t, c->utc_offset_min), 1440);
        lo = day < lo ? day : lo;
        hi = day > hi ? day : hi;
    }
    if (lo == INT64_MAX) {
        return -1;
    }
    unsigned transit = 0;
    for (size_t i = 0; i < c->nruns; i++) {
        transit = c->runs[i].transit_min > transit ? c->runs[i].transit_min : transit;
    }
    /*
     * A decision's day is the day testing starts: not before the collection
     * (or the earliest pickup allowed), and at most the courier search
     * (QUEUE_DAYS + 1 days), the transit, the wait for an open day (8 days,
     * next_open) and a full lab's queue (QUEUE_DAYS) later. One day of margin
     * on each side.
     */
    *from_day = lo - 1;
    *to_day = hi + (QUEUE_DAYS + 1) + (int64_t)transit / 1440 + 1 + 8 + QUEUE_DAYS + 1;
    return 0;
}

rdx_status lab_routing_new(rdx_lab_routing **out)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? RDX_OK : RDX_ENOMEM;
}

rdx_status lab_routing_push(rdx_lab_routing *rt, const rdx_lab_decision *src)
{
    rdx_lab_decision d = *src;
    const char **fields[] = {&d.test_code, &d.test_text,     &d.specimen_id,
                             &d.parent_id, &d.specimen_type, &d.lab,
                             &d.lab_city,  &d.reason,        &d.specimen_authority};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = *fields[i] != NULL ? *fields[i] : "";
        RDX_TRY(keep(rt, rdx_strndup(v, strlen(v)), fields[i]));
    }
    rdx_lab_decision *t = rdx_reallocarray(rt->d, rt->n + 1, sizeof *t);
    if (t == NULL) {
        return RDX_ENOMEM;
    }
    rt->d = t;
    rt->d[rt->n++] = d;
    /* Count the distinct labs, as the router does. */
    int seen = d.lab[0] == '\0';
    for (size_t i = 0; i + 1 < rt->n && !seen; i++) {
        seen = strcmp(rt->d[i].lab, d.lab) == 0 && strcmp(rt->d[i].specimen_id, d.specimen_id) == 0;
    }
    if (!seen) {
        rt->nlabs_used++;
    }
    return RDX_OK;
}
