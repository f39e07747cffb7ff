/*
 * lab/reroute.c - when a lab goes down or fills up, the tubes sent to it
 * that are still at the clinic (ordered or collected) are routed again;
 * tubes already on a courier run or further are left alone (they will be
 * received, or reported lost, where they went).
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rdx_status db_fail(rdx_lab_store *s, rdx_error *err, const char *what)
{
    return rdx_error_set(err, RDX_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* Point the stored decision for (order, test, old tube) at the new one. */
static rdx_status update_decision(rdx_lab_store *s, const lab_tube *t, const rdx_lab_decision *d,
                                  rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE lab_route SET specimen_id = ?1, parent_id = ?2, lab = ?3, "
                           "lab_city = ?4, code = ?5, reason = ?6, pickup_ms = ?7, arrival_ms = "
                           "?8, result_ms = ?9, day = ?10 WHERE sender = ?11 AND control_id = "
                           "?12 AND test_code = ?13 AND specimen_id = ?14",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot update a decision");
    }
    sqlite3_bind_text(q, 1, d->specimen_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, d->parent_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, d->lab, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, d->lab_city, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, (int)d->code);
    sqlite3_bind_text(q, 6, d->reason, -1, SQLITE_STATIC);
    const int64_t times[3] = {d->pickup_ms, d->arrival_ms, d->result_ms};
    for (int k = 0; k < 3; k++) {
        if (times[k] == INT64_MIN) {
            sqlite3_bind_null(q, 7 + k);
        } else {
            sqlite3_bind_int64(q, 7 + k, times[k]);
        }
    }
    sqlite3_bind_int64(q, 10, d->day);
    sqlite3_bind_text(q, 11, t->sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 12, t->control, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 13, d->test_code, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 14, t->barcode, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : db_fail(s, err, "cannot update a decision");
}

static rdx_status log_reroute(rdx_lab_store *s, const lab_tube *t, const char *reason, int64_t now)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO lab_event (authority, barcode, event, from_state, "
                           "to_state, condition, reason, actor, reported_ms, received_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?4, 0, ?5, 'rdx', ?6, ?6)",
                           -1, &q, NULL) != SQLITE_OK) {
        return RDX_EDB;
    }
    sqlite3_bind_text(q, 1, t->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, t->barcode, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)RDX_LAB_EV_REROUTE);
    sqlite3_bind_int(q, 4, t->state);
    sqlite3_bind_text(q, 5, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, now);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : RDX_EDB;
}

static rdx_status set_tube(rdx_lab_store *s, const lab_tube *t, const char *lab, const char *tests,
                           int64_t stable_until, int64_t due)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE lab_specimen SET lab = ?1, tests = ?2, stable_until_ms = ?3, "
                           "arrival_due_ms = ?4 WHERE authority = ?5 AND barcode = ?6",
                           -1, &q, NULL) != SQLITE_OK) {
        return RDX_EDB;
    }
    sqlite3_bind_text(q, 1, lab, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, tests, -1, SQLITE_STATIC);
    if (stable_until == INT64_MIN) {
        sqlite3_bind_null(q, 3);
    } else {
        sqlite3_bind_int64(q, 3, stable_until);
    }
    if (due == INT64_MIN) {
        sqlite3_bind_null(q, 4);
    } else {
        sqlite3_bind_int64(q, 4, due);
    }
    sqlite3_bind_text(q, 5, t->authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, t->barcode, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? RDX_OK : RDX_EDB;
}

/* Reroute one tube; the caller holds the transaction. */
static rdx_status reroute_tube(rdx_lab_store *s, rdx_lab_router *r, const lab_tube *t,
                               const char *why_first, int64_t now, rdx_lab_reroute_fn fn,
                               void *user, rdx_error *err)
{
    rdx_lab_order *o = NULL;
    rdx_lab_routing *rt = NULL;
    rdx_buf why;
    rdx_status st;
    rdx_buf_init(&why, 4096);
    st = lab_order_synthetic(t->sender, t->control, t->patient, t->barcode, t->authority, t->type,
                             t->collected_ms, now, t->tests, &o);
    if (st != RDX_OK) {
        st = rdx_error_set(err, st, "out of memory");
        goto out;
    }
    if ((st = rdx_lab_route(r, o, &rt, err)) != RDX_OK) {
        goto out;
    }
    size_t n = rdx_lab_routing_count(rt);
    /* Which labs now: one (the tube keeps its barcode) or several (aliquots). */
    const rdx_lab_decision *d0 = n ? rdx_lab_routing_at(rt, 0) : NULL;
    int split = d0 != NULL && d0->parent_id[0] != '\0';
    if ((st = rdx_buf_printf(&why, "%s; ", why_first)) != RDX_OK) {
        goto out;
    }
    for (size_t i = 0; i < n && st == RDX_OK; i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
        st = rdx_buf_printf(&why, "%s%s -> %s %s", i ? ", " : "", d->test_code,
                            d->lab[0] ? d->lab : "-", rdx_lab_route_code_name(d->code));
        if (st == RDX_OK && split && d->lab[0] != '\0') {
            st = rdx_buf_printf(&why, " on %s", d->specimen_id);
        }
    }
    if (st != RDX_OK || (st = log_reroute(s, t, (const char *)why.data, now)) != RDX_OK) {
        st = st == RDX_EDB ? db_fail(s, err, "cannot log the reroute")
                           : rdx_error_set(err, st, "reroute: %s", rdx_strerror(st));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((st = update_decision(s, t, rdx_lab_routing_at(rt, i), err)) != RDX_OK) {
            goto out;
        }
    }
    if (!split) {
        /* One lab (or none: every test refused). The tube keeps its barcode. */
        const char *lab = "";
        int64_t until = INT64_MAX, due = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            if (d->lab[0] != '\0') {
                lab = d->lab;
                due = d->arrival_ms;
                until = d->stable_until_ms < until ? d->stable_until_ms : until;
            }
        }
        if (set_tube(s, t, lab, t->tests, until == INT64_MAX ? INT64_MIN : until, due) != RDX_OK) {
            st = db_fail(s, err, "cannot update a tube");
            goto out;
        }
    } else {
        /* Aliquots: one child tube per lab, the parent keeps no tests of its own. */
        for (size_t i = 0; i < n; i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            if (d->lab[0] == '\0') {
                continue;
            }
            rdx_lab_specimen_reg reg = {.authority = t->authority,
                                        .barcode = d->specimen_id,
                                        .patient_id = t->patient,
                                        .order_sender = t->sender,
                                        .order_control = t->control,
                                        .parent_barcode = t->barcode,
                                        .lab = d->lab,
                                        .tests = d->test_code,
                                        .placer = t->placer,
                                        .specimen_type = t->type,
                                        .collected_ms = t->collected_ms,
                                        .volume_ml = -1,
                                        .stable_until_ms = d->stable_until_ms,
                                        .arrival_due_ms = d->arrival_ms};
            int created = 0;
            if ((st = rdx_lab_custody_register(s, &reg, now, &created, err)) != RDX_OK) {
                if (st == RDX_EDUPLICATE || st == RDX_EDENIED) {
                    goto out;
                }
                goto out;
            }
            if (created && t->state == RDX_LAB_ST_COLLECTED) {
                /* The aliquot is poured from a collected tube: it is collected too. */
                rdx_lab_event_in ev = {.authority = t->authority,
                                       .barcode = d->specimen_id,
                                       .kind = RDX_LAB_EV_COLLECT,
                                       .reason = t->barcode,
                                       .actor = "rdx",
                                       .reported_ms = now};
                if ((st = rdx_lab_custody_event(s, &ev, now, NULL, err)) != RDX_OK) {
                    goto out;
                }
            }
            if (!created) {
                /* A second test for the same child: add it to the child's list. */
                sqlite3_stmt *q = NULL;
                if (sqlite3_prepare_v2(s->db,
                                       "UPDATE lab_specimen SET tests = tests || ',' || ?1 "
                                       "WHERE authority = ?2 AND barcode = ?3",
                                       -1, &q, NULL) != SQLITE_OK) {
                    st = db_fail(s, err, "cannot update a tube");
                    goto out;
                }
                sqlite3_bind_text(q, 1, d->test_code, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, t->authority, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 3, d->specimen_id, -1, SQLITE_STATIC);
                int rc = sqlite3_step(q);
                sqlite3_finalize(q);
                if (rc != SQLITE_DONE) {
                    st = db_fail(s, err, "cannot update a tube");
                    goto out;
                }
            }
        }
        if (set_tube(s, t, "", "", INT64_MIN, INT64_MIN) != RDX_OK) {
            st = db_fail(s, err, "cannot update a tube");
            goto out;
        }
    }
    if (fn != NULL) {
        rdx_lab_reroute_rec rec = {t->authority, t->barcode, t->lab, rt};
        fn(user, &rec);
    }
out:
    rdx_buf_free(&why);
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
    return st;
}

/* The tubes the query q selects (LAB_TUBE_COLUMNS, then recollect_of when extra); q is finalized.
 */
static rdx_status load_tubes(rdx_lab_store *s, sqlite3_stmt *q, lab_tube **out, size_t *count,
                             char ***extra, rdx_error *err)
{
    lab_tube *tubes = NULL;
    char **ex = NULL;
    size_t n = 0;
    rdx_status st = RDX_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        lab_tube *t2 = rdx_reallocarray(tubes, n + 1, sizeof *t2);
        if (t2 == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
            break;
        }
        tubes = t2;
        if (extra != NULL) {
            char **e2 = rdx_reallocarray(ex, n + 1, sizeof *e2);
            if (e2 == NULL) {
                st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                break;
            }
            ex = e2;
            ex[n] = lab_col_dup(q, LAB_TUBE_NCOLS);
        }
        lab_tube *t = &tubes[n++];
        if ((st = lab_tube_read(q, t, err)) != RDX_OK) {
            break;
        }
        if (extra != NULL && ex[n - 1] == NULL) {
            st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
            break;
        }
    }
    if (st == RDX_OK && rc != SQLITE_DONE) {
        st = db_fail(s, err, "cannot find the tubes");
    }
    sqlite3_finalize(q);
    if (st != RDX_OK) {
        for (size_t i = 0; i < n; i++) {
            lab_tube_free(&tubes[i]);
            if (ex != NULL) {
                free(ex[i]);
            }
        }
        free(ex);
        free(tubes);
        return st;
    }
    *out = tubes;
    *count = n;
    if (extra != NULL) {
        *extra = ex;
    }
    return RDX_OK;
}

/*
 * Point the order's decisions for t's tests at t: those of the tube it
 * recollects (old), else new rows (an add-on's new collection has none).
 */
static rdx_status adopt_decisions(rdx_lab_store *s, const lab_tube *t, const char *old, int64_t now,
                                  rdx_error *err)
{
    for (const char *p = t->tests; *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        sqlite3_stmt *q = NULL;
        if (len > 0) {
            if (sqlite3_prepare_v2(s->db,
                                   "UPDATE lab_route SET specimen_id = ?1 WHERE sender = ?2 AND "
                                   "control_id = ?3 AND specimen_id = ?4 AND test_code = ?5",
                                   -1, &q, NULL) != SQLITE_OK) {
                return db_fail(s, err, "cannot update a decision");
            }
            sqlite3_bind_text(q, 1, t->barcode, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, t->sender, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, t->control, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, old, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 5, p, (int)len, SQLITE_STATIC);
            int rc = sqlite3_step(q);
            sqlite3_finalize(q);
            if (rc != SQLITE_DONE) {
                return db_fail(s, err, "cannot update a decision");
            }
            if (sqlite3_changes(s->db) == 0) {
                if (sqlite3_prepare_v2(
                        s->db,
                        "INSERT INTO lab_route SELECT ?1, ?2, COALESCE(MAX(seq), -1) + 1, ?3, ?3, "
                        "?4, '', ?5, '', '', 2, '', NULL, NULL, NULL, NULL, -1, ?6 FROM lab_route "
                        "WHERE sender = ?1 AND control_id = ?2",
                        -1, &q, NULL) != SQLITE_OK) {
                    return db_fail(s, err, "cannot store a decision");
                }
                sqlite3_bind_text(q, 1, t->sender, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, t->control, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 3, p, (int)len, SQLITE_STATIC);
                sqlite3_bind_text(q, 4, t->barcode, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 5, t->type, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 6, now);
                rc = sqlite3_step(q);
                sqlite3_finalize(q);
                if (rc != SQLITE_DONE) {
                    return db_fail(s, err, "cannot store a decision");
                }
            }
        }
        p = e ? e + 1 : p + len;
    }
    return RDX_OK;
}

rdx_status rdx_lab_custody_route_new(rdx_lab_store *s, rdx_lab_router *r, int64_t now_ms,
                                     rdx_lab_reroute_fn fn, void *user, size_t *count,
                                     rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    lab_tube *tubes = NULL;
    size_t n = 0;
    rdx_status st;
    if (count != NULL) {
        *count = 0;
    }
    if (s == NULL || r == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "route new tubes: bad arguments");
    }
    /*
     * Tubes opened by rdx and never routed: a recollection (it inherited its
     * lab) or an add-on's new collection (no lab), still ordered, with tests,
     * and no REROUTE event in their log yet.
     */
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT " LAB_TUBE_COLUMNS
            ", recollect_of FROM lab_specimen s WHERE state = 0 AND tests <> '' AND (lab = '' OR "
            "recollect_of <> '') AND NOT EXISTS (SELECT 1 FROM lab_event e WHERE "
            "e.authority = s.authority AND e.barcode = s.barcode AND e.event = "
            "10) ORDER BY created_ms, rowid",
            -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot find the new tubes");
    }
    char **olds = NULL;
    RDX_TRY(load_tubes(s, q, &tubes, &n, &olds, err));
    st = RDX_OK;
    if (n > 0) {
        if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot start a transaction");
        } else {
            for (size_t i = 0; i < n && st == RDX_OK; i++) {
                lab_tube *t = &tubes[i];
                /* Not collected yet: planned as collected now, stability from now. */
                if (t->collected_ms == INT64_MIN) {
                    t->collected_ms = now_ms;
                }
                st = adopt_decisions(s, t, olds[i], now_ms, err);
                if (st == RDX_OK) {
                    st = reroute_tube(s, r, t,
                                      olds[i][0] ? "recollection routed (collection assumed now)"
                                                 : "new collection routed (collection assumed now)",
                                      now_ms, fn, user, err);
                }
                if (st == RDX_OK && count != NULL) {
                    (*count)++;
                }
            }
            if (st == RDX_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                st = db_fail(s, err, "cannot commit");
            }
            if (st != RDX_OK) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        lab_tube_free(&tubes[i]);
        free(olds[i]);
    }
    free(olds);
    free(tubes);
    return st;
}

rdx_status rdx_lab_custody_reroute(rdx_lab_store *s, rdx_lab_router *r, const char *lab_id,
                                   int64_t now_ms, rdx_lab_reroute_fn fn, void *user, size_t *count,
                                   rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    lab_tube *tubes = NULL;
    size_t n = 0;
    rdx_status st = RDX_OK;
    if (count != NULL) {
        *count = 0;
    }
    /* Only tubes still at the clinic: ordered (0) or collected (1), with tests. */
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT " LAB_TUBE_COLUMNS
            " FROM lab_specimen WHERE lab = ?1 AND state <= 1 AND tests <> '' ORDER BY "
            "created_ms, rowid",
            -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot find the lab's tubes");
    }
    sqlite3_bind_text(q, 1, lab_id, -1, SQLITE_STATIC);
    RDX_TRY(load_tubes(s, q, &tubes, &n, NULL, err));
    if (st == RDX_OK && n > 0) {
        if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot start a transaction");
        } else {
            for (size_t i = 0; i < n && st == RDX_OK; i++) {
                if (tubes[i].collected_ms == INT64_MIN) {
                    continue; /* without a collection time its stability cannot be judged */
                }
                char first[160];
                snprintf(first, sizeof first, "%.100s is down or full", lab_id);
                st = reroute_tube(s, r, &tubes[i], first, now_ms, fn, user, err);
                if (st == RDX_OK && count != NULL) {
                    (*count)++;
                }
            }
            if (st == RDX_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                st = db_fail(s, err, "cannot commit");
            }
            if (st != RDX_OK) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        lab_tube_free(&tubes[i]);
    }
    free(tubes);
    return st;
}
