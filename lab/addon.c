/*
 * lab/addon.c - a test added to a tube after collection. It rides along
 * only when the tube's lab can do it on that specimen, the specimen is
 * still stable for it, and there is volume left; otherwise the patient is
 * asked for a new collection, opened here as a new tube.
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

static int csv_has(const char *list, const char *item)
{
    size_t n = strlen(item);
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

/* Sum of the catalogue volumes of the tests in csv on type; -1 when one is unknown. */
static double tests_volume(const rdx_lab_catalogue *c, const char *csv, const char *type)
{
    double sum = 0;
    for (const char *p = csv; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char code[72];
        if (len == 0 || len >= sizeof code) {
            return -1;
        }
        memcpy(code, p, len);
        code[len] = '\0';
        const cat_stab *st = lab_cat_find_stab(c, code, type);
        if (st == NULL || st->volume_ml < 0) {
            return -1;
        }
        sum += st->volume_ml;
        p = e ? e + 1 : NULL;
    }
    return sum;
}

static rdx_status log_addon(rdx_lab_store *s, const char *auth, const char *barcode, int state,
                            const char *reason, const char *actor, int64_t now)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO lab_event (authority, barcode, event, from_state, "
                           "to_state, condition, reason, actor, reported_ms, received_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?4, 0, ?5, ?6, ?7, ?7)",
                           -1, &q, NULL) != SQLITE_OK) {
        return RDX_EDB;
    }
    sqlite3_bind_text(q, 1, auth, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, barcode, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)RDX_LAB_EV_ADDON);
    sqlite3_bind_int(q, 4, state);
    sqlite3_bind_text(q, 5, reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, actor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 7, now);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    /* The same add-on reported twice at the same time is a re-scan. */
    return rc == SQLITE_DONE || rc == SQLITE_CONSTRAINT ? RDX_OK : RDX_EDB;
}

rdx_status rdx_lab_custody_addon(rdx_lab_store *s, const rdx_lab_catalogue *c,
                                 const char *authority, const char *barcode, const char *test,
                                 const char *actor, int64_t now_ms, rdx_lab_addon_outcome *out,
                                 rdx_error *err)
{
    sqlite3_stmt *q = NULL;
    rdx_status st = RDX_OK;
    int in_tx = 0;
    memset(out, 0, sizeof *out);
    if (s == NULL || c == NULL || barcode == NULL || test == NULL || test[0] == '\0' ||
        actor == NULL || actor[0] == '\0') {
        return rdx_error_set(err, RDX_EINVAL, "add-on: a barcode, a test and an actor are needed");
    }
    if (sqlite3_prepare_v2(s->db,
                           authority != NULL
                               ? "SELECT authority, state, lab, tests, specimen_type, "
                                 "collected_ms, volume_ml, order_sender, order_control, "
                                 "patient_id, patient_authority, placer, stable_until_ms FROM "
                                 "lab_specimen WHERE barcode = ?1 AND authority = ?2"
                               : "SELECT authority, state, lab, tests, specimen_type, "
                                 "collected_ms, volume_ml, order_sender, order_control, "
                                 "patient_id, patient_authority, placer, stable_until_ms FROM "
                                 "lab_specimen WHERE barcode = ?1",
                           -1, &q, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot look up a tube");
    }
    sqlite3_bind_text(q, 1, barcode, -1, SQLITE_STATIC);
    if (authority != NULL) {
        sqlite3_bind_text(q, 2, authority, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return rdx_error_set(err, RDX_ENOTFOUND, "barcode %s: no such specimen", barcode);
    }
    char auth[64], lab[64], tests[512], type[72], sender[128], ctl[128], pid[128], pau[128],
        placer[128];
    snprintf(auth, sizeof auth, "%s", (const char *)sqlite3_column_text(q, 0));
    rdx_lab_spec_state state = (rdx_lab_spec_state)sqlite3_column_int(q, 1);
    snprintf(lab, sizeof lab, "%s", (const char *)sqlite3_column_text(q, 2));
    snprintf(tests, sizeof tests, "%s", (const char *)sqlite3_column_text(q, 3));
    snprintf(type, sizeof type, "%s", (const char *)sqlite3_column_text(q, 4));
    int64_t collected =
        sqlite3_column_type(q, 5) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, 5);
    double volume = sqlite3_column_type(q, 6) == SQLITE_NULL ? -1 : sqlite3_column_double(q, 6);
    snprintf(sender, sizeof sender, "%s", (const char *)sqlite3_column_text(q, 7));
    snprintf(ctl, sizeof ctl, "%s", (const char *)sqlite3_column_text(q, 8));
    snprintf(pid, sizeof pid, "%s", (const char *)sqlite3_column_text(q, 9));
    snprintf(pau, sizeof pau, "%s", (const char *)sqlite3_column_text(q, 10));
    snprintf(placer, sizeof placer, "%s", (const char *)sqlite3_column_text(q, 11));
    int64_t stable_until =
        sqlite3_column_type(q, 12) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, 12);
    sqlite3_finalize(q);
    q = NULL;
    if (csv_has(tests, test)) {
        return rdx_error_set(err, RDX_EINVAL, "barcode %s: %s is already on this tube", barcode,
                             test);
    }

    /* The rules, in order; the first that fails asks for a new collection. */
    size_t li = lab_cat_find_lab(c, lab);
    const cat_lab *l = li != SIZE_MAX ? &c->labs[li] : NULL;
    const cat_stab *stab = lab_cat_find_stab(c, test, type);
    size_t clinic = lab_cat_find_clinic_by_facility(c, sender);
    const cat_run *run = l != NULL && clinic != SIZE_MAX ? lab_cat_find_run(c, clinic, li) : NULL;
    int stab_min = -1;
    if (stab != NULL) {
        stab_min = run != NULL && run->refrigerated ? stab->fridge_min : stab->room_min;
    }
    double used = tests_volume(c, tests, type);
    double need = stab != NULL ? stab->volume_ml : -1;
    const char *tname = lab_cat_test_name(c, test);
    if (state >= RDX_LAB_ST_RESULTED) {
        snprintf(out->reason, sizeof out->reason, "the tube is %s", rdx_lab_state_name(state));
    } else if (l == NULL) {
        snprintf(out->reason, sizeof out->reason, "the tube has no performing lab");
    } else if (!lab_cat_lab_performs(l, test) || !lab_cat_lab_accepts(l, type) || stab == NULL) {
        snprintf(out->reason, sizeof out->reason, "%s does not perform %s on %s", l->id, tname,
                 lab_cat_type_name(c, type));
    } else if (collected == INT64_MIN) {
        snprintf(out->reason, sizeof out->reason,
                 "the collection time is unknown, so its stability cannot be checked");
    } else if (stab_min <= 0 || now_ms - collected > (int64_t)stab_min * 60000) {
        snprintf(out->reason, sizeof out->reason,
                 "%s keeps %d min %s and the tube was collected %lld min ago", tname,
                 stab_min < 0 ? 0 : stab_min,
                 run != NULL && run->refrigerated ? "refrigerated" : "at room temperature",
                 (long long)((now_ms - collected) / 60000));
    } else if (volume >= 0 && used >= 0 && need >= 0 && used + need > volume + 1e-9) {
        snprintf(out->reason, sizeof out->reason,
                 "%s needs %.2f mL; the tube holds %.2f mL and its tests use %.2f mL", tname, need,
                 volume, used);
    } else {
        out->accepted = 1;
        snprintf(out->reason, sizeof out->reason,
                 "%s added: %s performs it on %s, %lld of %d min "
                 "stability used%s",
                 tname, l->id, lab_cat_type_name(c, type),
                 (long long)((now_ms - collected) / 60000), stab_min,
                 volume >= 0 && used >= 0 && need >= 0 ? ", volume enough"
                                                       : ", volume not checked (not known)");
    }

    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(s, err, "cannot start a transaction");
    }
    in_tx = 1;
    char why[400];
    if (out->accepted) {
        int64_t until = collected + (int64_t)stab_min * 60000;
        if (stable_until != INT64_MIN && stable_until < until) {
            until = stable_until;
        }
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE lab_specimen SET tests = CASE WHEN tests = '' THEN ?1 "
                               "ELSE tests || ',' || ?1 END, stable_until_ms = ?2 WHERE "
                               "authority = ?3 AND barcode = ?4",
                               -1, &q, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot update a tube");
            goto out;
        }
        sqlite3_bind_text(q, 1, test, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, until);
        sqlite3_bind_text(q, 3, auth, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, barcode, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        sqlite3_finalize(q);
        q = NULL;
        if (rc != SQLITE_DONE) {
            st = db_fail(s, err, "cannot update a tube");
            goto out;
        }
        snprintf(why, sizeof why, "add-on %s accepted", test);
        /* The lab's load counts it: a decision row like the router's. */
        int64_t lmin = now_ms / 60000 + c->utc_offset_min;
        int64_t day = lmin / 1440 - (lmin % 1440 < 0);
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO lab_route SELECT ?1, ?2, COALESCE(MAX(seq), -1) + 1, "
                               "?3, ?4, ?5, '', ?6, ?7, ?8, 0, ?9, NULL, NULL, NULL, NULL, ?10, "
                               "?11 FROM lab_route WHERE sender = ?1 AND control_id = ?2",
                               -1, &q, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot store the add-on");
            goto out;
        }
        sqlite3_bind_text(q, 1, sender, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, ctl, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, test, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, tname, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, barcode, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, l->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 8, l->city, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 9, out->reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 10, day);
        sqlite3_bind_int64(q, 11, now_ms);
        rc = sqlite3_step(q);
        sqlite3_finalize(q);
        q = NULL;
        if (rc != SQLITE_DONE) {
            st = db_fail(s, err, "cannot store the add-on");
            goto out;
        }
    } else {
        /*
         * A new collection for the add-on: same patient and order, its own
         * tube, of a specimen type the test can be done on (the old tube's
         * when the catalogue has a stability for it, else the first listed).
         */
        const char *new_type = type;
        if (lab_cat_find_stab(c, test, type) == NULL) {
            for (size_t k = 0; k < c->nstabs; k++) {
                if (strcmp(c->stabs[k].test, test) == 0) {
                    new_type = c->stabs[k].type;
                    break;
                }
            }
        }
        for (int k = 1; k < 100 && out->new_barcode[0] == '\0'; k++) {
            char nb[128];
            snprintf(nb, sizeof nb, "%s-A%d", barcode, k);
            rdx_lab_specimen_reg r = {.authority = auth,
                                      .barcode = nb,
                                      .patient_id = pid,
                                      .patient_authority = pau,
                                      .order_sender = sender,
                                      .order_control = ctl,
                                      .lab = "",
                                      .tests = test,
                                      .placer = placer,
                                      .specimen_type = new_type,
                                      .collected_ms = INT64_MIN,
                                      .volume_ml = -1,
                                      .stable_until_ms = INT64_MIN,
                                      .arrival_due_ms = INT64_MIN};
            int created = 0;
            st = rdx_lab_custody_register(s, &r, now_ms, &created, err);
            if (st == RDX_OK && created) {
                snprintf(out->new_barcode, sizeof out->new_barcode, "%s", nb);
            } else if (st != RDX_OK && st != RDX_EDUPLICATE) {
                goto out;
            }
            st = RDX_OK;
        }
        snprintf(why, sizeof why, "add-on %s refused, new collection %s", test, out->new_barcode);
    }
    if (log_addon(s, auth, barcode, (int)state, why, actor, now_ms) != RDX_OK) {
        st = db_fail(s, err, "cannot log the add-on");
        goto out;
    }
out:
    if (in_tx) {
        if (st == RDX_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            st = db_fail(s, err, "cannot commit");
        }
        if (st != RDX_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    return st;
}
