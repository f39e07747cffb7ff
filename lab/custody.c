/*
 * lab/custody.c - the chain of custody of each specimen: an enforced state
 * machine over an append-only event log in SQLite.
 *
 *   ordered --collect--> collected --dispatch--> dispatched --receive--> received
 *   received --start--> in-testing --result--> resulted --deliver--> delivered
 *   resulted/delivered --result--> resulted (a correction, history kept)
 *   ordered .. in-testing --reject--> rejected (+ a recollection, new barcode)
 *   ordered, collected --cancel--> cancelled
 *   dispatched, received --lose--> lost
 *
 * Barcodes are unique per assigning authority; one barcode never moves to
 * another patient. A re-scan (same barcode, event, reported time and actor)
 * is recognised by a UNIQUE constraint and changes nothing. Every change is
 * one transaction: the event row and the specimen's new state together.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {"ordered",    "collected", "dispatched", "received",
                                          "in-testing", "resulted",  "delivered",  "rejected",
                                          "cancelled",  "lost"};
static const char *const event_names[] = {"order",   "collect", "dispatch",      "receive", "start",
                                          "result",  "deliver", "reject",        "cancel",  "lose",
                                          "reroute", "add-on",  "partial-result"};
static const char *const cond_names[] = {"ok",           "hemolysed",       "leaking",
                                         "insufficient", "wrong-container", "expired"};

#define NSTATES      10
#define NEVENTS      13
#define NUSER_EVENTS 10 /* reroute is rdx's own */
#define NCONDS       6

const char *rdx_lab_state_name(rdx_lab_spec_state s)
{
    return (unsigned)s < NSTATES ? state_names[s] : "?";
}

const char *rdx_lab_event_name(rdx_lab_event_kind k)
{
    return (unsigned)k < NEVENTS ? event_names[k] : "?";
}

const char *rdx_lab_condition_name(rdx_lab_condition c)
{
    return (unsigned)c < NCONDS ? cond_names[c] : "?";
}

rdx_status rdx_lab_event_parse(const char *name, rdx_lab_event_kind *out)
{
    for (unsigned i = 1; i < NUSER_EVENTS; i++) {
        if (strcmp(name, event_names[i]) == 0) {
            *out = (rdx_lab_event_kind)i;
            return RDX_OK;
        }
    }
    return RDX_EINVAL;
}

rdx_status rdx_lab_condition_parse(const char *name, rdx_lab_condition *out)
{
    for (unsigned i = 0; i + 1 < NCONDS; i++) { /* "expired" is rdx's to set */
        if (strcmp(name, cond_names[i]) == 0) {
            *out = (rdx_lab_condition)i;
            return RDX_OK;
        }
    }
    return RDX_EINVAL;
}

/* The state an event leads to from `from`, or -1 when the transition is illegal. */
static int next_state(rdx_lab_spec_state from, rdx_lab_event_kind ev)
{
    switch (ev) {
    case RDX_LAB_EV_COLLECT:
        return from == RDX_LAB_ST_ORDERED ? RDX_LAB_ST_COLLECTED : -1;
    case RDX_LAB_EV_DISPATCH:
        return from == RDX_LAB_ST_COLLECTED ? RDX_LAB_ST_DISPATCHED : -1;
    case RDX_LAB_EV_RECEIVE:
        return from == RDX_LAB_ST_DISPATCHED ? RDX_LAB_ST_RECEIVED : -1;
    case RDX_LAB_EV_START:
        return from == RDX_LAB_ST_RECEIVED ? RDX_LAB_ST_IN_TESTING : -1;
    case RDX_LAB_EV_RESULT:
        return from == RDX_LAB_ST_IN_TESTING || from == RDX_LAB_ST_RESULTED ||
                       from == RDX_LAB_ST_DELIVERED
                   ? RDX_LAB_ST_RESULTED
                   : -1;
    case RDX_LAB_EV_DELIVER:
        return from == RDX_LAB_ST_RESULTED ? RDX_LAB_ST_DELIVERED : -1;
    case RDX_LAB_EV_REJECT:
        return from <= RDX_LAB_ST_IN_TESTING ? RDX_LAB_ST_REJECTED : -1;
    case RDX_LAB_EV_CANCEL:
        return from == RDX_LAB_ST_ORDERED || from == RDX_LAB_ST_COLLECTED ? RDX_LAB_ST_CANCELLED
                                                                          : -1;
    case RDX_LAB_EV_LOSE:
        return from == RDX_LAB_ST_DISPATCHED || from == RDX_LAB_ST_RECEIVED ? RDX_LAB_ST_LOST : -1;
    case RDX_LAB_EV_ORDER:
    default:
        return -1;
    }
}

/* "collect, cancel" for the events allowed from a state. */
static void allowed(rdx_lab_spec_state from, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (unsigned e = 1; e < NUSER_EVENTS; e++) {
        if (next_state(from, (rdx_lab_event_kind)e) >= 0) {
            int w = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", event_names[e]);
            if (w < 0 || (size_t)w >= cap - n) {
                break;
            }
            n += (size_t)w;
        }
    }
    if (n == 0) {
        snprintf(out, cap, "nothing: the state is final");
    }
}

static rdx_status db_fail(rdx_lab_store *s, rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

static void bind_opt(sqlite3_stmt *q, int i, int64_t v)
{
    if (v == INT64_MIN) {
        sqlite3_bind_null(q, i);
    } else {
        sqlite3_bind_int64(q, i, v);
    }
}

char *lab_col_dup(sqlite3_stmt *q, int i)
{
    const char *v = (const char *)sqlite3_column_text(q, i);
    return rdx_strndup(v ? v : "", v ? strlen(v) : 0);
}

rdx_status lab_tube_read(sqlite3_stmt *q, lab_tube *t, rdx_error *err)
{
    memset(t, 0, sizeof *t);
    t->authority = lab_col_dup(q, 0);
    t->barcode = lab_col_dup(q, 1);
    t->sender = lab_col_dup(q, 2);
    t->control = lab_col_dup(q, 3);
    t->patient = lab_col_dup(q, 4);
    t->type = lab_col_dup(q, 5);
    t->tests = lab_col_dup(q, 6);
    t->lab = lab_col_dup(q, 7);
    t->placer = lab_col_dup(q, 8);
    t->parent = lab_col_dup(q, 9);
    t->collected_ms =
        sqlite3_column_type(q, 10) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, 10);
    t->state = sqlite3_column_int(q, 11);
    if (!t->authority || !t->barcode || !t->sender || !t->control || !t->patient || !t->type ||
        !t->tests || !t->lab || !t->placer || !t->parent) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    return RDX_OK;
}

void lab_tube_free(lab_tube *t)
{
    free(t->authority);
    free(t->barcode);
    free(t->sender);
    free(t->control);
    free(t->patient);
    free(t->type);
    free(t->tests);
    free(t->lab);
    free(t->placer);
    free(t->parent);
}

rdx_status lab_custody_log(rdx_lab_store *s, const char *auth, const char *barcode,
                           rdx_lab_event_kind k, int from, int to, int cond, const char *reason,
                           const char *actor, int64_t reported, int64_t received, int *dup)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO lab_event (authority, barcode, event, from_state, "
                           "to_state, condition, reason, actor, reported_ms, received_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, &q, NULL) != SQLITE_OK) {
        return RDX_EDB;
    }
    sqlite3_bind_text(q, 1, auth, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, barcode, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)k);
    sqlite3_bind_int(q, 4, from);
    sqlite3_bind_int(q, 5, to);
    sqlite3_bind_int(q, 6, cond);
    sqlite3_bind_text(q, 7, nz(reason), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, nz(actor), -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 9, reported);
    sqlite3_bind_int64(q, 10, received);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_CONSTRAINT && dup != NULL) {
        *dup = 1;
        return RDX_OK;
    }
    return rc == SQLITE_DONE ? RDX_OK : RDX_EDB;
}

static rdx_status insert_specimen(rdx_lab_store *s, const rdx_lab_specimen_reg *r,
                                  const char *recollect_of, int64_t now)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO lab_specimen VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                           "0, 0, ?10, ?11, ?12, '', ?13, ?14, '', ?15, ?16, ?17)",
                           -1, &q, NULL) != SQLITE_OK) {
        return RDX_EDB;
    }
    sqlite3_bind_text(q, 1, r->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, nz(r->patient_id), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, nz(r->patient_authority), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, nz(r->order_sender), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, nz(r->order_control), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, nz(r->parent_barcode), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, nz(r->lab), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 9, nz(r->tests), -1, SQLITE_STATIC);
    bind_opt(q, 10, r->stable_until_ms);
    bind_opt(q, 11, r->arrival_due_ms);
    sqlite3_bind_text(q, 12, nz(recollect_of), -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 13, now);
    sqlite3_bind_text(q, 14, nz(r->placer), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 15, nz(r->specimen_type), -1, SQLITE_STATIC);
    bind_opt(q, 16, r->collected_ms);
    if (r->volume_ml >= 0) {
        sqlite3_bind_double(q, 17, r->volume_ml);
    } else {
        sqlite3_bind_null(q, 17);
    }
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : RDX_EDB;
}

/*
 * Savepoints rather than BEGIN: they nest, so lab/result.c can apply several
 * events and its own rows in one outer transaction.
 */
static rdx_status begin(rdx_lab_store *s, rdx_error *err)
{
    if (sqlite3_exec(s->db, "SAVEPOINT custody", NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot start a transaction");
    }
    return RDX_OK;
}

static rdx_status finish(rdx_lab_store *s, rdx_status st, rdx_error *err)
{
    if (st == RDX_OK) {
        if (sqlite3_exec(s->db, "RELEASE custody", NULL, NULL, NULL) == SQLITE_OK) {
            return RDX_OK;
        }
        st = db_fail(s, err, "cannot commit");
    }
    sqlite3_exec(s->db, "ROLLBACK TO custody", NULL, NULL, NULL);
    sqlite3_exec(s->db, "RELEASE custody", NULL, NULL, NULL);
    return st;
}

rdx_status rdx_lab_custody_register(rdx_lab_store *s, const rdx_lab_specimen_reg *r, int64_t now_ms,
                                    int *created, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_status st = RDX_OK;
    if (created != NULL) {
        *created = 0;
    }
    if (s == NULL || r == NULL || r->authority == NULL || r->authority[0] == '\0' ||
        r->barcode == NULL || r->barcode[0] == '\0' || strlen(r->authority) >= 64 ||
        strlen(r->barcode) >= 100) {
        return rdx_error_set(err, RDX_EINVAL,
                             "specimen: a barcode and its assigning authority are required");
    }
    RDX_TRY(begin(s, err));
    if (sqlite3_prepare_v2(s->db,
                           "SELECT patient_id, patient_authority, order_sender, order_control "
                           "FROM lab_specimen WHERE authority = ?1 AND barcode = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot look up a barcode");
        goto out;
    }
    sqlite3_bind_text(q, 1, r->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->barcode, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *pid = (const char *)sqlite3_column_text(q, 0);
        const char *pau = (const char *)sqlite3_column_text(q, 1);
        const char *snd = (const char *)sqlite3_column_text(q, 2);
        const char *ctl = (const char *)sqlite3_column_text(q, 3);
        if (strcmp(nz(pid), nz(r->patient_id)) != 0 ||
            strcmp(nz(pau), nz(r->patient_authority)) != 0) {
            st = rdx_error_set(err, RDX_EDENIED,
                               "barcode %s (authority %s) belongs to another patient; refused "
                               "for patient %s",
                               r->barcode, r->authority, nz(r->patient_id));
        } else if (strcmp(nz(snd), nz(r->order_sender)) != 0 ||
                   strcmp(nz(ctl), nz(r->order_control)) != 0) {
            st = rdx_error_set(err, RDX_EDUPLICATE,
                               "barcode %s (authority %s) is already used by order %s from %s",
                               r->barcode, r->authority, nz(ctl), nz(snd));
        }
        goto out; /* the same registration again: nothing to do */
    }
    if (rc != SQLITE_DONE) {
        st = db_fail(s, err, "cannot look up a barcode");
        goto out;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (insert_specimen(s, r, "", now_ms) != RDX_OK ||
        lab_custody_log(s, r->authority, r->barcode, RDX_LAB_EV_ORDER, RDX_LAB_ST_ORDERED,
                        RDX_LAB_ST_ORDERED, 0, "", nz(r->order_sender),
                        r->ordered_ms != 0 && r->ordered_ms != INT64_MIN ? r->ordered_ms : now_ms,
                        now_ms, NULL) != RDX_OK) {
        st = db_fail(s, err, "cannot register a specimen");
        goto out;
    }
    if (created != NULL) {
        *created = 1;
    }
out:
    sqlite3_finalize(q);
    return finish(s, st, err);
}

/* Find the specimen's authority when the caller gave only a barcode. */
static rdx_status resolve(rdx_lab_store *s, const char *authority, const char *barcode,
                          char auth[64], rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_status st = RDX_OK;
    int n = 0;
    if (barcode == NULL || barcode[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "no barcode given");
    }
    if (sqlite3_prepare_v2(s->db,
                           authority != NULL
                               ? "SELECT authority FROM lab_specimen WHERE barcode = ?1 AND "
                                 "authority = ?2"
                               : "SELECT authority FROM lab_specimen WHERE barcode = ?1 LIMIT 2",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot look up a barcode");
    }
    sqlite3_bind_text(q, 1, barcode, -1, SQLITE_STATIC);
    if (authority != NULL) {
        sqlite3_bind_text(q, 2, authority, -1, SQLITE_STATIC);
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n++ == 0) {
            snprintf(auth, 64, "%s", (const char *)sqlite3_column_text(q, 0));
        }
    }
    sqlite3_finalize(q);
    if (n == 0) {
        st = rdx_error_set(err, RDX_ENOTFOUND, "barcode %s%s%s: no such specimen", barcode,
                           authority ? " of authority " : "", authority ? authority : "");
    } else if (n > 1) {
        st = rdx_error_set(err, RDX_EINVAL,
                           "barcode %s is used by several assigning authorities: give the "
                           "authority",
                           barcode);
    }
    return st;
}

/* Does the comma-separated list hold item[0..n)? */
static int list_has(const char *list, const char *item, size_t n)
{
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, item, n) == 0) {
            return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/*
 * Split the tube's active tests by the ones rejected: keep gets the others,
 * voided the rejected ones (each must be on the tube). keep is "" when every
 * active test is rejected (then the whole tube is).
 */
/* Number of items in a comma-separated list ("" has none). */
static size_t count_list(const char *list)
{
    size_t n = 0;
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        n += (e ? (size_t)(e - p) : strlen(p)) > 0;
        p = e ? e + 1 : NULL;
    }
    return n;
}

static rdx_status split_tests(const char *active, const char *rejected, char *keep, size_t kcap,
                              char *voided, size_t vcap, const char *barcode, rdx_error *err)
{
    size_t kn = 0, vn = 0;
    keep[0] = voided[0] = '\0';
    for (const char *p = rejected; *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && !list_has(active, p, len)) {
            return rdx_error_set(err, RDX_EINVAL, "barcode %s: test '%.*s' is not on this tube",
                                 barcode, (int)len, p);
        }
        p = e ? e + 1 : p + len;
    }
    for (const char *p = active; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int rej = list_has(rejected, p, len);
        char *dst = rej ? voided : keep;
        size_t *dn = rej ? &vn : &kn;
        size_t cap = rej ? vcap : kcap;
        int w = snprintf(dst + *dn, cap - *dn, "%s%.*s", *dn ? "," : "", (int)len, p);
        if (w < 0 || (size_t)w >= cap - *dn) {
            return rdx_error_set(err, RDX_ELIMIT, "barcode %s: test list too long", barcode);
        }
        *dn += (size_t)w;
        p = e ? e + 1 : NULL;
    }
    return RDX_OK;
}

rdx_status rdx_lab_custody_event(rdx_lab_store *s, const rdx_lab_event_in *ev, int64_t received_ms,
                                 rdx_lab_event_out *out, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_status st = RDX_OK;
    rdx_lab_event_out o;
    memset(&o, 0, sizeof o);
    if (s == NULL || ev == NULL || ev->actor == NULL || ev->actor[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "event: the reporting institution is required");
    }
    if ((unsigned)ev->kind >= NUSER_EVENTS || ev->kind == RDX_LAB_EV_ORDER ||
        (unsigned)ev->condition >= NCONDS) {
        return rdx_error_set(err, RDX_EINVAL, "event: bad event kind or condition");
    }
    RDX_TRY(resolve(s, ev->authority, ev->barcode, o.authority, err));
    RDX_TRY(begin(s, err));
    if (sqlite3_prepare_v2(s->db,
                           "SELECT state, stable_until_ms, patient_id, patient_authority, "
                           "order_sender, order_control, parent_barcode, lab, tests, "
                           "recollected_as, placer, specimen_type FROM lab_specimen WHERE "
                           "authority = ?1 AND "
                           "barcode = ?2",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, o.authority, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, ev->barcode, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        st = db_fail(s, err, "cannot read a specimen");
        goto out;
    }
    rdx_lab_spec_state from = (rdx_lab_spec_state)sqlite3_column_int(q, 0);
    int64_t stable_until =
        sqlite3_column_type(q, 1) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, 1);
    o.from = from;

    /* A re-scan of an event already logged changes nothing. */
    sqlite3_stmt *d = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT to_state, condition FROM lab_event WHERE authority = ?1 AND "
                           "barcode = ?2 AND event = ?3 AND reported_ms = ?4 AND actor = ?5",
                           -1, &d, NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot read the event log");
        goto out;
    }
    sqlite3_bind_text(d, 1, o.authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 2, ev->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_int(d, 3, (int)ev->kind);
    sqlite3_bind_int64(d, 4, ev->reported_ms);
    sqlite3_bind_text(d, 5, ev->actor, -1, SQLITE_STATIC);
    if (sqlite3_step(d) == SQLITE_ROW) {
        o.duplicate = 1;
        o.to = (rdx_lab_spec_state)sqlite3_column_int(d, 0);
        o.condition = (rdx_lab_condition)sqlite3_column_int(d, 1);
        snprintf(o.recollect, sizeof o.recollect, "%s", (const char *)sqlite3_column_text(q, 9));
        sqlite3_finalize(d);
        goto out;
    }
    sqlite3_finalize(d);

    int to = next_state(from, ev->kind);
    int uc = 0;
    if (to < 0 && ev->kind == RDX_LAB_EV_CANCEL && from >= RDX_LAB_ST_DISPATCHED &&
        from <= RDX_LAB_ST_IN_TESTING) {
        /* Too late to stop the tube: the request is logged, the lab answers UC
         * (unable to cancel, HL7 table 0038) and the test completes. */
        to = (int)from;
        uc = 1;
    }
    if (to < 0) {
        char ok[160];
        allowed(from, ok, sizeof ok);
        const char *why = "";
        if (ev->kind == RDX_LAB_EV_CANCEL &&
            (from == RDX_LAB_ST_RESULTED || from == RDX_LAB_ST_DELIVERED)) {
            why = " (a result cannot be cancelled, only corrected)";
        }
        st = rdx_error_set(err, RDX_ESTATE,
                           "barcode %s: cannot '%s' a specimen that is '%s'%s; allowed: %s",
                           ev->barcode, event_names[ev->kind], state_names[from], why, ok);
        goto out;
    }
    rdx_lab_condition cond = ev->condition;
    const char *reason = ev->reason;
    int reject = to == RDX_LAB_ST_REJECTED;
    char ucwhy[320];
    o.unable_to_cancel = uc;
    if (uc) {
        snprintf(ucwhy, sizeof ucwhy, "UC: unable to cancel, the tube is %s%s%s", state_names[from],
                 reason ? "; " : "", reason ? reason : "");
        reason = ucwhy;
    }
    char keep[512] = "", voided[512] = "", why[640];
    if (reject && ev->tests != NULL && ev->tests[0] != '\0') {
        /* Some tests only: split the tube's active tests into kept and void. */
        const char *active = (const char *)sqlite3_column_text(q, 8);
        if ((st = split_tests(active, ev->tests, keep, sizeof keep, voided, sizeof voided,
                              ev->barcode, err)) != RDX_OK) {
            goto out;
        }
        if (keep[0] != '\0') {
            to = (int)from;
            snprintf(why, sizeof why, "%s (tests %s)", reason ? reason : "rejected", voided);
            reason = why;
        }
    }
    int partial = keep[0] != '\0';
    if (ev->kind == RDX_LAB_EV_RECEIVE && stable_until != INT64_MIN &&
        ev->reported_ms > stable_until) {
        /* Stability ran out in transit: found at the receipt scan. */
        cond = RDX_LAB_COND_EXPIRED;
    }
    o.to = (rdx_lab_spec_state)to;
    o.condition = cond;
    if (lab_custody_log(s, o.authority, ev->barcode, ev->kind, (int)from, to, (int)cond, reason,
                        ev->actor, ev->reported_ms, received_ms, NULL) != RDX_OK) {
        st = db_fail(s, err, "cannot log the event");
        goto out;
    }
    if (ev->kind == RDX_LAB_EV_RECEIVE &&
        (cond == RDX_LAB_COND_EXPIRED || cond == RDX_LAB_COND_WRONG_CONTAINER)) {
        /* No test can be done on it (expired, or in the wrong tube, whose additive
         * spoils every test ordered on it): reject it at once and ask for a new one. */
        const char *code = cond == RDX_LAB_COND_EXPIRED ? "STABILITY_EXPIRED" : "WRONG_CONTAINER";
        if (lab_custody_log(s, o.authority, ev->barcode, RDX_LAB_EV_REJECT, to, RDX_LAB_ST_REJECTED,
                            (int)cond, code, ev->actor, ev->reported_ms, received_ms,
                            NULL) != RDX_OK) {
            st = db_fail(s, err, "cannot log the event");
            goto out;
        }
        o.to = RDX_LAB_ST_REJECTED;
        reject = 1;
    }
    if (reject) {
        /* Recollection: a new barcode, same patient and order, linked to the old one. */
        char nb[128];
        if (ev->new_barcode != NULL && ev->new_barcode[0] != '\0') {
            snprintf(nb, sizeof nb, "%s", ev->new_barcode);
        } else {
            snprintf(nb, sizeof nb, "%s-R1", ev->barcode);
        }
        rdx_lab_specimen_reg r = {
            .authority = o.authority,
            .barcode = nb,
            .tests = partial ? voided : (const char *)sqlite3_column_text(q, 8),
            .patient_id = (const char *)sqlite3_column_text(q, 2),
            .patient_authority = (const char *)sqlite3_column_text(q, 3),
            .order_sender = (const char *)sqlite3_column_text(q, 4),
            .order_control = (const char *)sqlite3_column_text(q, 5),
            .parent_barcode = (const char *)sqlite3_column_text(q, 6),
            .lab = (const char *)sqlite3_column_text(q, 7),
            .placer = (const char *)sqlite3_column_text(q, 10),
            .specimen_type = (const char *)sqlite3_column_text(q, 11),
            .collected_ms = INT64_MIN,
            .volume_ml = -1,
            .stable_until_ms = INT64_MIN,
            .arrival_due_ms = INT64_MIN,
        };
        if (insert_specimen(s, &r, ev->barcode, received_ms) != RDX_OK) {
            st = sqlite3_errcode(s->db) == SQLITE_CONSTRAINT
                     ? rdx_error_set(err, RDX_EDUPLICATE,
                                     "recollection barcode %s (authority %s) is already in use", nb,
                                     o.authority)
                     : db_fail(s, err, "cannot open the recollection");
            goto out;
        }
        if (lab_custody_log(s, o.authority, nb, RDX_LAB_EV_ORDER, RDX_LAB_ST_ORDERED,
                            RDX_LAB_ST_ORDERED, 0, "recollection", ev->actor, ev->reported_ms,
                            received_ms, NULL) != RDX_OK) {
            st = db_fail(s, err, "cannot log the event");
            goto out;
        }
        snprintf(o.recollect, sizeof o.recollect, "%s", nb);
    }
    sqlite3_stmt *u = NULL;
    if (sqlite3_prepare_v2(
            s->db,
            "UPDATE lab_specimen SET state = ?1, condition = CASE WHEN ?2 >= 0 "
            "THEN ?2 ELSE condition END, recollected_as = CASE WHEN ?3 = '' "
            "THEN recollected_as ELSE ?3 END, tests = CASE WHEN ?6 THEN ?7 ELSE tests "
            "END, void_tests = CASE WHEN ?6 THEN (CASE WHEN void_tests = '' THEN "
            "?8 ELSE void_tests || ',' || ?8 END) ELSE void_tests END WHERE "
            "authority = ?4 AND barcode = ?5",
            -1, &u, NULL) != SQLITE_OK) {
        st = db_fail(s, err, "cannot update a specimen");
        goto out;
    }
    sqlite3_bind_int(u, 1, (int)o.to);
    sqlite3_bind_int(u, 2, ev->kind == RDX_LAB_EV_RECEIVE ? (int)cond : -1);
    sqlite3_bind_text(u, 3, o.recollect, -1, SQLITE_STATIC);
    sqlite3_bind_text(u, 4, o.authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(u, 5, ev->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_int(u, 6, partial);
    sqlite3_bind_text(u, 7, keep, -1, SQLITE_STATIC);
    sqlite3_bind_text(u, 8, voided, -1, SQLITE_STATIC);
    int rc = sqlite3_step(u);
    sqlite3_finalize(u);
    if (rc != SQLITE_DONE) {
        st = db_fail(s, err, "cannot update a specimen");
    }
    if (st == RDX_OK && ev->kind == RDX_LAB_EV_COLLECT) {
        /*
         * A tube rdx opened (recollection, add-on collection) has no collection
         * time until this scan; it was routed as if collected when it was
         * planned (its REROUTE event). Its stability and expected arrival move
         * by the delay, so a late collection is not judged expired at receipt.
         */
        if (sqlite3_prepare_v2(
                s->db,
                "UPDATE lab_specimen SET stable_until_ms = stable_until_ms + (?1 - p.t), "
                "arrival_due_ms = arrival_due_ms + (?1 - p.t), collected_ms = ?1 FROM (SELECT "
                "COALESCE((SELECT MAX(reported_ms) FROM lab_event WHERE authority = ?2 AND "
                "barcode = ?3 AND event = 10), ?1) AS t) AS p WHERE authority = ?2 AND "
                "barcode = ?3 AND collected_ms IS NULL",
                -1, &u, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot record the collection time");
            goto out;
        }
        sqlite3_bind_int64(u, 1, ev->reported_ms);
        sqlite3_bind_text(u, 2, o.authority, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 3, ev->barcode, -1, SQLITE_STATIC);
        rc = sqlite3_step(u);
        sqlite3_finalize(u);
        if (rc != SQLITE_DONE) {
            st = db_fail(s, err, "cannot record the collection time");
        }
    }
out:
    sqlite3_finalize(q);
    st = finish(s, st, err);
    if (st == RDX_OK && out != NULL) {
        *out = o;
    }
    return st;
}

static void fill_spec(sqlite3_stmt *q, rdx_lab_specimen_rec *sp)
{
    sp->authority = (const char *)sqlite3_column_text(q, 0);
    sp->barcode = (const char *)sqlite3_column_text(q, 1);
    sp->patient_id = (const char *)sqlite3_column_text(q, 2);
    sp->order_sender = (const char *)sqlite3_column_text(q, 3);
    sp->order_control = (const char *)sqlite3_column_text(q, 4);
    sp->parent_barcode = (const char *)sqlite3_column_text(q, 5);
    sp->lab = (const char *)sqlite3_column_text(q, 6);
    sp->tests = (const char *)sqlite3_column_text(q, 7);
    sp->recollect_of = (const char *)sqlite3_column_text(q, 8);
    sp->recollected_as = (const char *)sqlite3_column_text(q, 9);
    sp->state = (rdx_lab_spec_state)sqlite3_column_int(q, 10);
    sp->condition = (rdx_lab_condition)sqlite3_column_int(q, 11);
    sp->void_tests = (const char *)sqlite3_column_text(q, 12);
    sp->resulted_tests = (const char *)sqlite3_column_text(q, 13);
    if (sp->resulted_tests == NULL) {
        sp->resulted_tests = "";
    }
    /* Resulted before per-test results were kept (store version < 3): every test counts. */
    if ((sp->state == RDX_LAB_ST_RESULTED || sp->state == RDX_LAB_ST_DELIVERED) &&
        sp->resulted_tests[0] == '\0') {
        sp->resulted_tests = sp->tests;
    }
}

static void fill_event(sqlite3_stmt *q, int base, rdx_lab_event_rec *e)
{
    e->kind = (rdx_lab_event_kind)sqlite3_column_int(q, base);
    e->from = (rdx_lab_spec_state)sqlite3_column_int(q, base + 1);
    e->to = (rdx_lab_spec_state)sqlite3_column_int(q, base + 2);
    e->condition = (rdx_lab_condition)sqlite3_column_int(q, base + 3);
    e->reason = (const char *)sqlite3_column_text(q, base + 4);
    e->actor = (const char *)sqlite3_column_text(q, base + 5);
    e->reported_ms = sqlite3_column_int64(q, base + 6);
    e->received_ms = sqlite3_column_int64(q, base + 7);
}

#define SPEC_COLS                                                                                  \
    "s.authority, s.barcode, s.patient_id, s.order_sender, s.order_control, s.parent_barcode, "    \
    "s.lab, s.tests, s.recollect_of, s.recollected_as, s.state, s.condition, s.void_tests, "       \
    "(SELECT group_concat(t.test, ',') FROM lab_test_result t WHERE t.authority = s.authority "    \
    "AND t.barcode = s.barcode AND t.final = 1)"
#define EVENT_COLS                                                                                 \
    "e.event, e.from_state, e.to_state, e.condition, e.reason, e.actor, e.reported_ms, "           \
    "e.received_ms"

rdx_status rdx_lab_custody_history(rdx_lab_store *s, const char *authority, const char *barcode,
                                   rdx_lab_history_fn fn, void *user, rdx_error *err)
{
    char auth[64];
    sqlite3_stmt *q = NULL;
    RDX_TRY(resolve(s, authority, barcode, auth, err));
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " SPEC_COLS ", " EVENT_COLS " FROM lab_specimen s JOIN "
                           "lab_event e ON e.authority = s.authority AND e.barcode = s.barcode "
                           "WHERE s.authority = ?1 AND s.barcode = ?2 ORDER BY e.id",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot read the event log");
    }
    sqlite3_bind_text(q, 1, auth, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, barcode, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        rdx_lab_specimen_rec sp;
        rdx_lab_event_rec e;
        fill_spec(q, &sp);
        fill_event(q, 14, &e);
        fn(user, &sp, &e);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : db_fail(s, err, "cannot read the event log");
}

rdx_status rdx_lab_custody_overdue(rdx_lab_store *s, int64_t now_ms, unsigned grace_min,
                                   rdx_lab_history_fn fn, void *user, size_t *count, rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    size_t n = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " SPEC_COLS ", " EVENT_COLS " FROM lab_specimen s JOIN "
                           "lab_event e ON e.authority = s.authority AND e.barcode = s.barcode "
                           "AND e.event = 2 WHERE s.state = 2 AND s.arrival_due_ms IS NOT NULL "
                           "AND s.arrival_due_ms + ?1 < ?2 ORDER BY s.arrival_due_ms",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot look for overdue specimens");
    }
    sqlite3_bind_int64(q, 1, (int64_t)grace_min * 60000);
    sqlite3_bind_int64(q, 2, now_ms);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        rdx_lab_specimen_rec sp;
        rdx_lab_event_rec e;
        fill_spec(q, &sp);
        fill_event(q, 14, &e);
        if (fn != NULL) {
            fn(user, &sp, &e);
        }
        n++;
    }
    sqlite3_finalize(q);
    if (count != NULL) {
        *count = n;
    }
    return rc == SQLITE_DONE ? RDX_OK : db_fail(s, err, "cannot look for overdue specimens");
}

rdx_status rdx_lab_custody_order(rdx_lab_store *s, const char *sender, const char *control,
                                 rdx_lab_tube_fn fn, void *user, rdx_lab_order_state *out,
                                 rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_lab_order_state o;
    memset(&o, 0, sizeof o);
    o.least = RDX_LAB_ST_DELIVERED;
    size_t all = 0, open = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " SPEC_COLS " FROM lab_specimen s WHERE s.order_sender = ?1 "
                           "AND s.order_control = ?2 ORDER BY s.created_ms, s.rowid",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot read an order's tubes");
    }
    sqlite3_bind_text(q, 1, nz(sender), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, nz(control), -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        rdx_lab_specimen_rec sp;
        fill_spec(q, &sp);
        if (fn != NULL) {
            fn(user, &sp);
        }
        all++;
        /* A tube rejected whole and recollected is replaced by its recollection; one
         * split into aliquots when rerouted carries no tests of its own. */
        if ((sp.state == RDX_LAB_ST_REJECTED && sp.recollected_as[0] != '\0') ||
            sp.tests[0] == '\0') {
            continue;
        }
        o.tubes++;
        size_t nt = count_list(sp.tests), nr = 0;
        for (const char *p = sp.tests; *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            nr += len > 0 && list_has(sp.resulted_tests, p, len);
            p = e ? e + 1 : p + len;
        }
        if (sp.state < RDX_LAB_ST_REJECTED) {
            o.tests += nt;
            o.tests_resulted += nr;
        }
        if (sp.state == RDX_LAB_ST_RESULTED || sp.state == RDX_LAB_ST_DELIVERED) {
            o.resulted++;
            o.delivered += sp.state == RDX_LAB_ST_DELIVERED;
        } else if (sp.state >= RDX_LAB_ST_REJECTED) {
            o.failed++;
        } else {
            open++;
            if (sp.state < o.least) {
                o.least = sp.state;
            }
        }
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        return db_fail(s, err, "cannot read an order's tubes");
    }
    if (all == 0) {
        return rdx_error_set(err, RDX_ENOTFOUND, "order %s from %s: no tube registered",
                             nz(control), nz(sender));
    }
    if (open > 0) {
        snprintf(o.summary, sizeof o.summary,
                 "%s: %zu of %zu tube(s) resulted, %zu of %zu test(s); least advanced %s",
                 o.tests_resulted > 0 ? "partial results" : "in progress", o.resulted, o.tubes,
                 o.tests_resulted, o.tests, state_names[o.least]);
    } else if (o.resulted == 0) {
        snprintf(o.summary, sizeof o.summary, "failed: no tube can be resulted");
        o.least = RDX_LAB_ST_CANCELLED;
    } else {
        o.least = o.delivered == o.resulted ? RDX_LAB_ST_DELIVERED : RDX_LAB_ST_RESULTED;
        snprintf(o.summary, sizeof o.summary, "%s%s", state_names[o.least],
                 o.failed ? " (some tubes cancelled, rejected or lost)" : "");
    }
    if (out != NULL) {
        *out = o;
    }
    return RDX_OK;
}
