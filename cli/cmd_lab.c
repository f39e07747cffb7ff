/* rdx lab: verbs are registered here as they become real. */
#include "cli.h"
#include "rdx/lab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_CMD "lab route"

static void route_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab route --catalogue FILE [--db URI] [--out DIR] [--hub ID] [--json]\n"
               "                     ORDERS.hl7...\n"
               "\n"
               "Route every test of each order (OML^O21, OML^O33 or ORM^O01; a file may hold\n"
               "several messages or an FHS/BHS batch) to the member lab that performs it, and\n"
               "print one line per test: the order, the test, the tube, the lab and why.\n"
               "\n"
               "  --catalogue FILE  the network catalogue (docs/lab-catalogue.md)\n"
               "  --db URI          decision store, sqlite:PATH (default sqlite:rdx-lab.db);\n"
               "                    loads carry over between runs and an order already routed\n"
               "                    gets the decisions it was given the first time\n"
               "  --out DIR         also write the order each performing lab receives,\n"
               "                    DIR/CONTROL.LAB.oml.hl7 (.orm.hl7 for ORM^O01): only its\n"
               "                    tests, child tubes of a split in SPM-2, the parent in\n"
               "                    SPM-3; and what the clinic gets back: DIR/CONTROL.ack.hl7\n"
               "                    (ACK) and DIR/CONTROL.orl.hl7 (ORL^O22; .orr.hl7 with\n"
               "                    ORR^O02 for ORM^O01), saying where each test went\n"
               "  --hub ID          the hub's HL7 facility in those files (default NJ-HUB)\n"
               "  --json            machine-readable output on stdout\n"
               "\n"
               "Codes: ROUTED, FULL_QUEUED (all capable labs full: queued for a later day),\n"
               "NO_LAB, WRONG_SPECIMEN, NO_COURIER, STABILITY, UNKNOWN_CLINIC.\n"
               "Exit status: 0 every order was routed or refused with a reason, 1 a file or\n"
               "order could not be read (the others are still routed), 2 usage error.\n");
}

/* ISO 8601 in network local time ("2026-12-01T09:35:00+08:00"), or null. */
static void json_time(FILE *f, int64_t ms, int off_min)
{
    if (ms == INT64_MIN) {
        fputs("null", f);
        return;
    }
    int64_t lm = ms / 60000 - (ms % 60000 < 0) + off_min;
    int64_t z = lm / 1440 - (lm % 1440 < 0);
    unsigned mod = (unsigned)(lm - z * 1440);
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    int a = off_min < 0 ? -off_min : off_min;
    fprintf(f, "\"%04lld-%02u-%02uT%02u:%02u:00%c%02d:%02d\"", (long long)y, m, d, mod / 60,
            mod % 60, off_min < 0 ? '-' : '+', a / 60, a % 60);
}

typedef struct route_run {
    const rdx_lab_catalogue *cat;
    const char *out_dir; /* --out: one order file per performing lab */
    const char *hub;
    rdx_lab_store *store;
    int json;
    int off;
    int failed;
    size_t orders; /* printed so far (for JSON commas) */
} route_run;

static void print_routing(route_run *x, const char *file, const char *sender, const char *ctl,
                          const rdx_lab_routing *rt, int again)
{
    if (x->json) {
        printf("%s\n  {\"file\": ", x->orders ? "," : "");
        rdx_cli_json_str(stdout, file);
        printf(", \"sender\": ");
        rdx_cli_json_str(stdout, sender);
        printf(", \"control_id\": ");
        rdx_cli_json_str(stdout, ctl);
        printf(", \"already_routed\": %s, \"labs\": %zu,\n   \"decisions\": [",
               again ? "true" : "false", rdx_lab_routing_labs(rt));
        for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            printf("%s\n    {\"test\": ", i ? "," : "");
            rdx_cli_json_str(stdout, d->test_code);
            printf(", \"test_text\": ");
            rdx_cli_json_str(stdout, d->test_text);
            printf(", \"specimen\": ");
            rdx_cli_json_str(stdout, d->specimen_id);
            printf(", \"parent\": ");
            rdx_cli_json_str(stdout, d->parent_id);
            printf(", \"specimen_type\": ");
            rdx_cli_json_str(stdout, d->specimen_type);
            printf(", \"code\": ");
            rdx_cli_json_str(stdout, rdx_lab_route_code_name(d->code));
            printf(", \"lab\": ");
            rdx_cli_json_str(stdout, d->lab);
            printf(", \"lab_city\": ");
            rdx_cli_json_str(stdout, d->lab_city);
            printf(", \"collected\": ");
            json_time(stdout, d->collected_ms, x->off);
            printf(", \"pickup\": ");
            json_time(stdout, d->pickup_ms, x->off);
            printf(", \"arrival\": ");
            json_time(stdout, d->arrival_ms, x->off);
            printf(", \"result\": ");
            json_time(stdout, d->result_ms, x->off);
            printf(", \"reason\": ");
            rdx_cli_json_str(stdout, d->reason);
            printf("}");
        }
        printf("]}");
    } else {
        for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            printf("%s %s %s tube %s%s%s%s -> %s %s: %s%s\n", file, ctl, d->test_code,
                   d->specimen_id, d->parent_id[0] ? " (from " : "", d->parent_id,
                   d->parent_id[0] ? ")" : "", d->lab[0] ? d->lab : "-",
                   rdx_lab_route_code_name(d->code), d->reason, again ? " [already routed]" : "");
        }
    }
    x->orders++;
}

static void dtm_now(char *out, size_t cap);
static void safe_name(const char *in, char *out, size_t cap);

static rdx_status write_msg(const char *path, const rdx_lab_hub_msg *hm, rdx_error *err)
{
    return rdx_file_write_atomic(path, hm->data, hm->len, err);
}

/*
 * --out: the order each performing lab receives (DIR/CONTROL.LAB.oml.hl7,
 * or .orm.hl7 for ORM^O01), the ACK (DIR/CONTROL.ack.hl7) and the order
 * response to the clinic (DIR/CONTROL.orl.hl7, or .orr.hl7 for ORR^O02).
 */
static rdx_status write_outputs(route_run *x, const char *ctl, const rdx_lab_hub_order_out *h,
                                int orm, rdx_error *err)
{
    char name[128], path[1400];
    rdx_lab_hub_msg hm;
    safe_name(ctl, name, sizeof name);
    rdx_lab_hub_order_ack(h, &hm);
    snprintf(path, sizeof path, "%s/%s.ack.hl7", x->out_dir, name);
    RDX_TRY(write_msg(path, &hm, err));
    if (rdx_lab_hub_order_response(h, &hm)) {
        snprintf(path, sizeof path, "%s/%s.%s.hl7", x->out_dir, name, orm ? "orr" : "orl");
        RDX_TRY(write_msg(path, &hm, err));
    }
    for (size_t i = 0; rdx_lab_hub_order_lab_at(h, i, &hm); i++) {
        char lname[80];
        safe_name(hm.facility, lname, sizeof lname);
        snprintf(path, sizeof path, "%s/%s.%s.%s.hl7", x->out_dir, name, lname,
                 orm ? "orm" : "oml");
        RDX_TRY(write_msg(path, &hm, err));
    }
    return RDX_OK;
}

static void route_message(route_run *x, const char *file, const rdx_lab_hl7_msg *m, size_t idx)
{
    rdx_error err;
    rdx_buf raw, f;
    rdx_lab_hub_order_out *h = NULL;
    rdx_error_clear(&err);
    rdx_buf_init(&raw, 256u << 20);
    rdx_buf_init(&f, 1024);
    char ts[32];
    dtm_now(ts, sizeof ts);
    rdx_lab_hub_opts op = {.hub_facility = x->hub, .timestamp = ts, .now_ms = rdx_clock_wall_ms()};
    rdx_status st = rdx_lab_hl7_write(m, &raw);
    if (st != RDX_OK) {
        rdx_cli_fail(ROUTE_CMD, "%s: message %zu: %s", file, idx + 1, rdx_strerror(st));
        x->failed = 1;
        goto out;
    }
    if (rdx_lab_hub_order(x->store, x->cat, raw.data, raw.len, &op, &h, &err) != RDX_OK) {
        rdx_cli_fail(ROUTE_CMD, "%s: message %zu: %s", file, idx + 1, err.msg);
        x->failed = 1;
        goto out;
    }
    (void)rdx_lab_hl7_get(m, "MSH-10", &f, NULL);
    char ctl[200];
    snprintf(ctl, sizeof ctl, "%.199s", f.data ? (const char *)f.data : "");
    rdx_buf_reset(&f);
    (void)rdx_lab_hl7_get(m, "MSH-9.2", &f, NULL);
    int orm = f.data != NULL && strcmp((const char *)f.data, "O01") == 0;
    rdx_buf_reset(&f);
    (void)rdx_lab_hl7_get(m, "MSH-4.1", &f, NULL);
    if (rdx_lab_hub_order_code(h) != RDX_LAB_ACK_AA) {
        static const char *const codes[] = {"AA", "AE", "AR"};
        rdx_cli_fail(ROUTE_CMD, "%s: message %zu: %s (answered %s)", file, idx + 1,
                     rdx_lab_hub_order_text(h), codes[rdx_lab_hub_order_code(h)]);
        x->failed = 1;
    } else {
        print_routing(x, file, f.data ? (const char *)f.data : "", ctl,
                      rdx_lab_hub_order_routing(h), rdx_lab_hub_order_already_routed(h));
    }
    if (x->out_dir != NULL && write_outputs(x, ctl, h, orm, &err) != RDX_OK) {
        rdx_cli_fail_err(ROUTE_CMD, &err);
        x->failed = 1;
    }
out:
    rdx_lab_hub_order_free(h);
    rdx_buf_free(&raw);
    rdx_buf_free(&f);
}

static int cmd_route(int argc, char **argv)
{
    const char *cat_path = NULL, *db = "sqlite:rdx-lab.db", *out_dir = NULL, *hub = "NJ-HUB";
    int json = 0, nfiles = 0, rc = RDX_EXIT_OK;
    /* Files are collected in place at the front of argv (argv[1..nfiles]). */
    const rdx_cli_opt opts[] = {
        RDX_CLI_VALUE("--catalogue", &cat_path), RDX_CLI_VALUE("--db", &db),
        RDX_CLI_VALUE("--out", &out_dir),        RDX_CLI_VALUE("--hub", &hub),
        RDX_CLI_FLAG("--json", &json),           RDX_CLI_END};
    if ((rc = rdx_cli_parse_opts(ROUTE_CMD, argc, argv, opts, route_usage, &nfiles)) !=
        RDX_CLI_GO) {
        return rc;
    }
    rc = RDX_EXIT_OK;
    if (cat_path == NULL) {
        return rdx_cli_usage(ROUTE_CMD, "--catalogue FILE is required");
    }
    if (nfiles == 0) {
        return rdx_cli_usage(ROUTE_CMD, "no order files given");
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_catalogue *cat = NULL;
    route_run x = {0};
    x.json = json;
    x.out_dir = out_dir;
    x.hub = hub;
    if (rdx_lab_catalogue_load(cat_path, &cat, &err) != RDX_OK) {
        return rdx_cli_fail_err(ROUTE_CMD, &err);
    }
    x.off = rdx_lab_catalogue_utc_offset_min(cat);
    x.cat = cat;
    if (rdx_lab_store_open(db, &x.store, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(ROUTE_CMD, &err);
        goto out;
    }
    if (json) {
        printf("{\"orders\": [");
    }
    for (int i = 1; i <= nfiles; i++) {
        const char *file = argv[i];
        rdx_buf b;
        rdx_lab_hl7_batch *batch = NULL;
        rdx_buf_init(&b, 256u << 20);
        rdx_error_clear(&err);
        if (rdx_file_read(file, &b, &err) != RDX_OK) {
            rdx_cli_fail_err(ROUTE_CMD, &err);
            x.failed = 1;
        } else if (rdx_lab_hl7_batch_parse(b.data, b.len, &batch, &err) != RDX_OK) {
            rdx_cli_fail(ROUTE_CMD, "%s: %s", file, err.msg);
            x.failed = 1;
        } else {
            for (size_t k = 0; k < rdx_lab_hl7_batch_count(batch); k++) {
                route_message(&x, file, rdx_lab_hl7_batch_msg(batch, k), k);
            }
        }
        rdx_lab_hl7_batch_free(batch);
        rdx_buf_free(&b);
    }
    if (json) {
        printf("\n]}\n");
    }
    rc = x.failed ? RDX_EXIT_FAIL : RDX_EXIT_OK;
out:
    rdx_lab_store_free(x.store);
    rdx_lab_catalogue_free(cat);
    return rc;
}

/* ---- rdx lab event / rdx lab status ----------------------------------- */

#define EVENT_CMD  "lab event"
#define STATUS_CMD "lab status"

static void event_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab event [--db URI] [--authority A] --actor INSTITUTION [--at DTM]\n"
               "                     [--condition C] [--reason CODE] [--new-barcode B]\n"
               "                     [--tests LIST] [--catalogue FILE] [--json]\n"
               "                     BARCODE EVENT\n"
               "\n"
               "Record one chain-of-custody event for the specimen BARCODE (registered when its\n"
               "order was routed). EVENT is one of: collect, dispatch, receive, start, result,\n"
               "deliver, reject, cancel, lose. Illegal transitions are refused. A re-scan of an\n"
               "event already recorded (same barcode, event, time and actor) changes nothing.\n"
               "\n"
               "  --db URI          decision and custody store (default sqlite:rdx-lab.db)\n"
               "  --authority A     the barcode's assigning authority (needed only when the\n"
               "                    barcode is used by several)\n"
               "  --actor INST      the institution reporting the event (required)\n"
               "  --at DTM          when it happened, HL7 DTM (YYYYMMDDHHMM[SS][+ZZZZ], local\n"
               "                    +08:00 when no offset); default now\n"
               "  --condition C     receive: ok, hemolysed, leaking, insufficient,\n"
               "                    wrong-container (default ok)\n"
               "  --reason CODE     reject or cancel: a coded reason (e.g. HEMOLYSED)\n"
               "  --new-barcode B   reject: the recollection's barcode (default BARCODE-R1)\n"
               "  --tests LIST      reject: only these tests (comma-separated); the tube goes\n"
               "                    on for the others and the recollection carries these\n"
               "  --catalogue FILE  route the recollection a rejection (or an expired or\n"
               "                    wrong-container receipt) opens, by itself, planned as\n"
               "                    collected at --at; without it, it keeps the old tube's lab\n"
               "  --out DIR         with --catalogue: write the order the recollection's lab\n"
               "                    receives, DIR/BARCODE.LAB.oml.hl7 (SPM-2 the new tube,\n"
               "                    SPM-3 the rejected one)\n"
               "  --json            machine-readable output\n");
}

static void status_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab status [--db URI] [--authority A] [--json] BARCODE\n"
               "       rdx lab status [--db URI] [--json] --order SENDER CONTROL\n"
               "\n"
               "Show where the specimen BARCODE is and its whole chain of custody: each event\n"
               "with the time the institution reported and the time rdx received it.\n"
               "With --order, show every tube of the order SENDER (MSH-4.1) CONTROL (MSH-10),\n"
               "children of a split and recollections included, and the order's state over\n"
               "them.\n");
}

static void iso_time(char *out, size_t cap, int64_t ms)
{
    /* Network local time, +08:00. */
    int64_t lm = ms / 60000 - (ms % 60000 < 0) + 480;
    int64_t z = lm / 1440 - (lm % 1440 < 0);
    unsigned mod = (unsigned)(lm - z * 1440);
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    unsigned sec = (unsigned)((ms % 60000 + 60000) % 60000 / 1000);
    snprintf(out, cap, "%04lld-%02u-%02uT%02u:%02u:%02u+08:00", (long long)y, m % 13, d % 32,
             (mod / 60) % 24, mod % 60, sec % 60);
}

typedef struct common_opts {
    const char *db, *authority;
    int json;
} common_opts;

typedef struct new_tube_ctx {
    char lab[64];   /* the last new tube's lab ("" when refused) */
    char line[800]; /* what became of the new tubes, for people */
    /* The routed tubes (--out writes each one's order): authority, barcode. */
    char (*tubes)[2][128];
    size_t ntubes, cap;
    int oom; /* a tube could not be remembered */
} new_tube_ctx;

static void note_tube(new_tube_ctx *x, const char *auth, const char *barcode);

static int write_new_tube_orders(const char *cmd, const char *dir, const rdx_lab_catalogue *cat,
                                 rdx_lab_store *s, const new_tube_ctx *x, int json);

static rdx_status route_new_tubes(const rdx_lab_catalogue *cat, rdx_lab_store *s, int64_t now,
                                  new_tube_ctx *x, rdx_error *err);

static int cmd_event(int argc, char **argv)
{
    common_opts c = {"sqlite:rdx-lab.db", NULL, 0};
    const char *actor = NULL, *at = NULL, *cond = NULL, *reason = NULL, *newbc = NULL;
    const char *tests = NULL, *cat_path = NULL, *out_dir = NULL;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--db", &c.db),
                                RDX_CLI_VALUE("--authority", &c.authority),
                                RDX_CLI_VALUE("--actor", &actor),
                                RDX_CLI_VALUE("--at", &at),
                                RDX_CLI_VALUE("--condition", &cond),
                                RDX_CLI_VALUE("--reason", &reason),
                                RDX_CLI_VALUE("--new-barcode", &newbc),
                                RDX_CLI_VALUE("--tests", &tests),
                                RDX_CLI_VALUE("--catalogue", &cat_path),
                                RDX_CLI_VALUE("--out", &out_dir),
                                RDX_CLI_FLAG("--json", &c.json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts(EVENT_CMD, argc, argv, opts, event_usage, &npos);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (npos > 2) {
        return rdx_cli_usage(EVENT_CMD, "too many arguments ('%s')", argv[3]);
    }
    if (npos != 2) {
        return rdx_cli_usage(EVENT_CMD, "want BARCODE EVENT");
    }
    pos[0] = argv[1];
    pos[1] = argv[2];
    if (actor == NULL) {
        return rdx_cli_usage(EVENT_CMD, "--actor INSTITUTION is required");
    }
    if (out_dir != NULL && cat_path == NULL) {
        return rdx_cli_usage(EVENT_CMD, "--out needs --catalogue (the recollection is routed)");
    }
    rdx_lab_event_in in = {.authority = c.authority,
                           .barcode = pos[0],
                           .actor = actor,
                           .reason = reason,
                           .new_barcode = newbc,
                           .tests = tests};
    if (rdx_lab_event_parse(pos[1], &in.kind) != RDX_OK) {
        return rdx_cli_usage(EVENT_CMD,
                             "unknown event '%s' (collect, dispatch, receive, start, result, "
                             "deliver, reject, cancel, lose)",
                             pos[1]);
    }
    if (cond != NULL && rdx_lab_condition_parse(cond, &in.condition) != RDX_OK) {
        return rdx_cli_usage(EVENT_CMD,
                             "unknown condition '%s' (ok, hemolysed, leaking, insufficient, "
                             "wrong-container)",
                             cond);
    }
    int64_t now = rdx_clock_wall_ms();
    in.reported_ms = now;
    if (at != NULL && rdx_lab_hl7_dtm_parse(at, strlen(at), 480, &in.reported_ms) != RDX_OK) {
        return rdx_cli_usage(EVENT_CMD, "--at '%s' is not an HL7 date/time", at);
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    rdx_lab_catalogue *cat = NULL;
    rdx_lab_event_out o;
    new_tube_ctx nt;
    memset(&nt, 0, sizeof nt);
    int rc = RDX_EXIT_OK;
    if ((cat_path != NULL && rdx_lab_catalogue_load(cat_path, &cat, &err) != RDX_OK) ||
        rdx_lab_store_open(c.db, &s, &err) != RDX_OK ||
        rdx_lab_custody_event(s, &in, now, &o, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(EVENT_CMD, &err);
        goto out;
    }
    if (cat != NULL && o.recollect[0] != '\0' && !o.duplicate &&
        route_new_tubes(cat, s, in.reported_ms, &nt, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(EVENT_CMD, &err);
        goto out;
    }
    if (out_dir != NULL && write_new_tube_orders(EVENT_CMD, out_dir, cat, s, &nt, c.json) != 0) {
        rc = RDX_EXIT_FAIL;
    }
    if (c.json) {
        printf("{\"barcode\": ");
        rdx_cli_json_str(stdout, pos[0]);
        printf(", \"authority\": ");
        rdx_cli_json_str(stdout, o.authority);
        printf(", \"event\": \"%s\", \"from\": \"%s\", \"to\": \"%s\", \"condition\": "
               "\"%s\", \"duplicate\": %s, \"unable_to_cancel\": %s, \"recollection\": ",
               rdx_lab_event_name(in.kind), rdx_lab_state_name(o.from), rdx_lab_state_name(o.to),
               rdx_lab_condition_name(o.condition), o.duplicate ? "true" : "false",
               o.unable_to_cancel ? "true" : "false");
        rdx_cli_json_str(stdout, o.recollect);
        printf(", \"recollection_lab\": ");
        rdx_cli_json_str(stdout, nt.lab);
        printf(", \"recollection_route\": ");
        rdx_cli_json_str(stdout, nt.line);
        printf("}\n");
    } else {
        printf("%s (%s): %s: %s -> %s%s%s%s%s\n", pos[0], o.authority, rdx_lab_event_name(in.kind),
               rdx_lab_state_name(o.from), rdx_lab_state_name(o.to),
               o.condition != RDX_LAB_COND_OK ? ", condition " : "",
               o.condition != RDX_LAB_COND_OK ? rdx_lab_condition_name(o.condition) : "",
               o.duplicate ? " (re-scan: already recorded, nothing changed)" : "",
               o.recollect[0] && !o.duplicate ? "; recollection requested" : "");
        if (o.recollect[0] != '\0' && !o.duplicate) {
            printf("%s (%s): new barcode for the recollection\n", o.recollect, o.authority);
            if (nt.line[0] != '\0') {
                printf("%s\n", nt.line);
            }
        }
        if (o.unable_to_cancel && !o.duplicate) {
            printf("%s (%s): too late to cancel: the lab answers UC (unable to cancel) and the "
                   "test completes\n",
                   pos[0], o.authority);
        }
    }
out:
    free(nt.tubes);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(cat);
    return rc;
}

typedef struct status_ctx {
    int json;
    size_t n;
} status_ctx;

static void on_history(void *user, const rdx_lab_specimen_rec *sp, const rdx_lab_event_rec *e)
{
    status_ctx *x = user;
    char rep[40], rec[40];
    iso_time(rep, sizeof rep, e->reported_ms);
    iso_time(rec, sizeof rec, e->received_ms);
    if (x->n == 0) {
        if (x->json) {
            printf("{\"barcode\": ");
            rdx_cli_json_str(stdout, sp->barcode);
            printf(", \"authority\": ");
            rdx_cli_json_str(stdout, sp->authority);
            printf(", \"state\": \"%s\", \"condition\": \"%s\", \"patient\": ",
                   rdx_lab_state_name(sp->state), rdx_lab_condition_name(sp->condition));
            rdx_cli_json_str(stdout, sp->patient_id);
            printf(", \"order\": ");
            rdx_cli_json_str(stdout, sp->order_control);
            printf(", \"sender\": ");
            rdx_cli_json_str(stdout, sp->order_sender);
            printf(", \"lab\": ");
            rdx_cli_json_str(stdout, sp->lab);
            printf(", \"tests\": ");
            rdx_cli_json_str(stdout, sp->tests);
            printf(", \"parent\": ");
            rdx_cli_json_str(stdout, sp->parent_barcode);
            printf(", \"void_tests\": ");
            rdx_cli_json_str(stdout, sp->void_tests);
            printf(", \"resulted_tests\": ");
            rdx_cli_json_str(stdout, sp->resulted_tests);
            printf(", \"recollect_of\": ");
            rdx_cli_json_str(stdout, sp->recollect_of);
            printf(", \"recollected_as\": ");
            rdx_cli_json_str(stdout, sp->recollected_as);
            printf(", \"events\": [");
        } else {
            printf("%s (%s): %s%s%s; patient %s, order %s from %s, lab %s, tests %s%s%s\n",
                   sp->barcode, sp->authority, rdx_lab_state_name(sp->state),
                   sp->condition != RDX_LAB_COND_OK ? ", condition " : "",
                   sp->condition != RDX_LAB_COND_OK ? rdx_lab_condition_name(sp->condition) : "",
                   sp->patient_id, sp->order_control, sp->order_sender, sp->lab[0] ? sp->lab : "-",
                   sp->tests[0] ? sp->tests : "-", sp->resulted_tests[0] ? "; resulted " : "",
                   sp->resulted_tests);
            if (sp->parent_barcode[0]) {
                printf("  child of %s\n", sp->parent_barcode);
            }
            if (sp->void_tests[0]) {
                printf("  void on this tube: %s\n", sp->void_tests);
            }
            if (sp->recollect_of[0]) {
                printf("  recollection of %s\n", sp->recollect_of);
            }
            if (sp->recollected_as[0]) {
                printf("  recollected as %s\n", sp->recollected_as);
            }
        }
    }
    if (x->json) {
        printf("%s\n  {\"event\": \"%s\", \"from\": \"%s\", \"to\": \"%s\", \"condition\": "
               "\"%s\", \"reason\": ",
               x->n ? "," : "", rdx_lab_event_name(e->kind), rdx_lab_state_name(e->from),
               rdx_lab_state_name(e->to), rdx_lab_condition_name(e->condition));
        rdx_cli_json_str(stdout, e->reason);
        printf(", \"actor\": ");
        rdx_cli_json_str(stdout, e->actor);
        printf(", \"reported\": \"%s\", \"received\": \"%s\"}", rep, rec);
    } else {
        printf("  %s  %-8s %s -> %s%s%s%s%s by %s (received %s)\n", rep,
               rdx_lab_event_name(e->kind), rdx_lab_state_name(e->from), rdx_lab_state_name(e->to),
               e->condition ? ", " : "", e->condition ? rdx_lab_condition_name(e->condition) : "",
               e->reason[0] ? ", " : "", e->reason, e->actor, rec);
    }
    x->n++;
}

static void on_tube(void *user, const rdx_lab_specimen_rec *sp)
{
    status_ctx *x = user;
    if (x->json) {
        printf("%s\n  {\"barcode\": ", x->n ? "," : "");
        rdx_cli_json_str(stdout, sp->barcode);
        printf(", \"authority\": ");
        rdx_cli_json_str(stdout, sp->authority);
        printf(", \"state\": \"%s\", \"lab\": ", rdx_lab_state_name(sp->state));
        rdx_cli_json_str(stdout, sp->lab);
        printf(", \"tests\": ");
        rdx_cli_json_str(stdout, sp->tests);
        printf(", \"resulted_tests\": ");
        rdx_cli_json_str(stdout, sp->resulted_tests);
        printf(", \"parent\": ");
        rdx_cli_json_str(stdout, sp->parent_barcode);
        printf(", \"recollect_of\": ");
        rdx_cli_json_str(stdout, sp->recollect_of);
        printf("}");
    } else {
        printf("  %s (%s): %s at %s, tests %s%s%s%s%s%s%s\n", sp->barcode, sp->authority,
               rdx_lab_state_name(sp->state), sp->lab[0] ? sp->lab : "-",
               sp->tests[0] ? sp->tests : "-", sp->resulted_tests[0] ? ", resulted " : "",
               sp->resulted_tests, sp->parent_barcode[0] ? ", child of " : "", sp->parent_barcode,
               sp->recollect_of[0] ? ", recollection of " : "", sp->recollect_of);
    }
    x->n++;
}

static int order_status(const common_opts *c, const char *sender, const char *control)
{
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    status_ctx x = {c->json, 0};
    rdx_lab_order_state os;
    int rc = RDX_EXIT_OK;
    if (c->json) {
        printf("{\"sender\": ");
        rdx_cli_json_str(stdout, sender);
        printf(", \"control_id\": ");
        rdx_cli_json_str(stdout, control);
        printf(", \"tubes\": [");
    } else {
        printf("order %s from %s:\n", control, sender);
    }
    if (rdx_lab_store_open(c->db, &s, &err) != RDX_OK ||
        rdx_lab_custody_order(s, sender, control, on_tube, &x, &os, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(STATUS_CMD, &err);
        if (c->json) {
            printf("]}\n");
        }
    } else if (c->json) {
        printf("\n], \"tests\": %zu, \"tests_resulted\": %zu, \"state\": ", os.tests,
               os.tests_resulted);
        rdx_cli_json_str(stdout, os.summary);
        printf("}\n");
    } else {
        printf("state: %s\n", os.summary);
    }
    rdx_lab_store_free(s);
    return rc;
}

static int cmd_status(int argc, char **argv)
{
    common_opts c = {"sqlite:rdx-lab.db", NULL, 0};
    const char *barcode = NULL, *order_sender = NULL, *order_control = NULL;
    int nops = 0;
    const rdx_cli_opt opts[] = {
        RDX_CLI_VALUE("--db", &c.db), RDX_CLI_VALUE("--authority", &c.authority),
        RDX_CLI_FLAG("--json", &c.json),
        RDX_CLI_VALUE2("--order", &order_sender, &order_control, "SENDER CONTROL"), RDX_CLI_END};
    int prc = rdx_cli_parse_opts(STATUS_CMD, argc, argv, opts, status_usage, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (nops > 1) {
        return rdx_cli_usage(STATUS_CMD, "one BARCODE at a time");
    }
    barcode = nops == 1 ? argv[1] : NULL;
    if (order_sender != NULL) {
        if (barcode != NULL) {
            return rdx_cli_usage(STATUS_CMD, "give a BARCODE or --order, not both");
        }
        return order_status(&c, order_sender, order_control);
    }
    if (barcode == NULL) {
        return rdx_cli_usage(STATUS_CMD, "want BARCODE");
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    status_ctx x = {c.json, 0};
    int rc = RDX_EXIT_OK;
    if (rdx_lab_store_open(c.db, &s, &err) != RDX_OK ||
        rdx_lab_custody_history(s, c.authority, barcode, on_history, &x, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(STATUS_CMD, &err);
    } else if (c.json) {
        printf("\n]}\n");
    }
    rdx_lab_store_free(s);
    return rc;
}

/* ---- rdx lab result ---------------------------------------------------- */

#define RESULT_CMD "lab result"

static void result_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab result [--db URI] [--out DIR] [--hub ID] [--json] ORU.hl7...\n"
               "\n"
               "Match each ORU^R01 from a lab to its order and specimens and apply it: each\n"
               "OBR's test gets its result (final for OBX-11 F, C, U or X), a tube moves to\n"
               "resulted once all its tests are final (until then: partial results, it stays\n"
               "in testing), the observations are stored (OBX-11 = C corrects an earlier\n"
               "value and keeps it), and two files are written in DIR:\n"
               "  CONTROL.ack.hl7  the ACK for the lab: AA, or AE/AR with an ERR segment for\n"
               "                   an unknown, cancelled or already-final order\n"
               "  CONTROL.oru.hl7  the ORU readdressed to the ordering clinic (AA only)\n"
               "CONTROL is the message's MSH-10. The same message again (same sender and\n"
               "MSH-10) is acknowledged but applied once.\n"
               "\n"
               "  --db URI   decision and custody store (default sqlite:rdx-lab.db)\n"
               "  --out DIR  where the ACK and ORU files go (default .)\n"
               "  --hub ID   the hub's HL7 facility, MSH-4 of what it sends (default NJ-HUB)\n"
               "  --json     machine-readable output\n"
               "Exit status: 0 every message was accepted (AA), 1 a file could not be read or\n"
               "a message was refused (AE/AR; its ACK is still written), 2 usage error.\n");
}

/* MSH-10 as a file name: anything but [A-Za-z0-9._-] becomes '_'. */
static void safe_name(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; in[n] != '\0' && n + 1 < cap; n++) {
        char c = in[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        out[n] = ok && !(n == 0 && c == '.') ? c : '_';
    }
    if (n == 0) {
        out[n++] = '_';
    }
    out[n] = '\0';
}

static void dtm_now(char *out, size_t cap)
{
    char iso[40];
    iso_time(iso, sizeof iso, rdx_clock_wall_ms());
    /* 2026-12-01T09:35:07+08:00 -> 20261201093507+0800 */
    snprintf(out, cap, "%.4s%.2s%.2s%.2s%.2s%.2s+0800", iso, iso + 5, iso + 8, iso + 11, iso + 14,
             iso + 17);
}

static int cmd_result(int argc, char **argv)
{
    const char *db = "sqlite:rdx-lab.db", *dir = ".", *hub = "NJ-HUB";
    int json = 0, nfiles = 0, failed = 0;
    size_t shown = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--db", &db), RDX_CLI_VALUE("--out", &dir),
                                RDX_CLI_VALUE("--hub", &hub), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts(RESULT_CMD, argc, argv, opts, result_usage, &nfiles);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (nfiles == 0) {
        return rdx_cli_usage(RESULT_CMD, "no ORU files given");
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    if (rdx_lab_store_open(db, &s, &err) != RDX_OK) {
        return rdx_cli_fail_err(RESULT_CMD, &err);
    }
    if (json) {
        printf("{\"messages\": [");
    }
    for (int i = 1; i <= nfiles; i++) {
        const char *file = argv[i];
        rdx_buf b;
        rdx_lab_hl7_batch *batch = NULL;
        rdx_buf_init(&b, 256u << 20);
        rdx_error_clear(&err);
        if (rdx_file_read(file, &b, &err) != RDX_OK) {
            rdx_cli_fail_err(RESULT_CMD, &err);
            failed = 1;
            rdx_buf_free(&b);
            continue;
        }
        if (rdx_lab_hl7_batch_parse(b.data, b.len, &batch, &err) != RDX_OK) {
            /* Not even an MSH to answer: an AR cannot be addressed; report it. */
            rdx_cli_fail(RESULT_CMD, "%s: %s", file, err.msg);
            failed = 1;
            rdx_buf_free(&b);
            continue;
        }
        for (size_t k = 0; k < rdx_lab_hl7_batch_count(batch); k++) {
            const rdx_lab_hl7_msg *m = rdx_lab_hl7_batch_msg(batch, k);
            rdx_buf raw, ctlb;
            rdx_buf_init(&raw, 256u << 20);
            rdx_buf_init(&ctlb, 1024);
            char ts[32];
            dtm_now(ts, sizeof ts);
            rdx_lab_hub_opts op = {
                .hub_facility = hub, .timestamp = ts, .now_ms = rdx_clock_wall_ms()};
            rdx_lab_hub_result_out *h = NULL;
            rdx_error_clear(&err);
            rdx_status st = rdx_lab_hl7_write(m, &raw);
            if (st == RDX_OK) {
                st = rdx_lab_hub_result(s, raw.data, raw.len, &op, &h, &err);
            } else {
                rdx_error_set(&err, st, "%s", rdx_strerror(st));
            }
            if (st != RDX_OK) {
                rdx_cli_fail(RESULT_CMD, "%s: message %zu: %s", file, k + 1, err.msg);
                failed = 1;
                rdx_buf_free(&raw);
                rdx_buf_free(&ctlb);
                continue;
            }
            const rdx_lab_result_outcome o = *rdx_lab_hub_result_outcome(h);
            (void)rdx_lab_hl7_get(m, "MSH-10", &ctlb, NULL);
            const char *ctl = ctlb.data ? (const char *)ctlb.data : "";
            char name[128], path[1024], fpath[1024] = "";
            safe_name(ctl, name, sizeof name);
            snprintf(path, sizeof path, "%s/%s.ack.hl7", dir, name);
            rdx_lab_hub_msg hm;
            rdx_lab_hub_result_ack(h, &hm);
            st = rdx_file_write_atomic(path, hm.data, hm.len, &err);
            if (st == RDX_OK && rdx_lab_hub_result_forward(h, &hm)) {
                snprintf(fpath, sizeof fpath, "%s/%s.oru.hl7", dir, name);
                st = rdx_file_write_atomic(fpath, hm.data, hm.len, &err);
            }
            rdx_lab_hub_result_free(h);
            rdx_buf_free(&raw);
            if (st != RDX_OK) {
                rdx_cli_fail_err(RESULT_CMD, &err);
                failed = 1;
            } else if (json) {
                static const char *const codes[] = {"AA", "AE", "AR"};
                printf("%s\n  {\"file\": ", shown++ ? "," : "");
                rdx_cli_json_str(stdout, file);
                printf(", \"control_id\": ");
                rdx_cli_json_str(stdout, ctl);
                printf(", \"ack\": \"%s\", \"hl7_error\": %u, \"duplicate\": %s, "
                       "\"specimens\": %zu, \"partial\": %zu, \"observations\": %zu, "
                       "\"corrections\": %zu, \"clinic\": ",
                       codes[o.code], o.hl7_error, o.duplicate ? "true" : "false", o.specimens,
                       o.partial, o.applied, o.corrections);
                rdx_cli_json_str(stdout, o.clinic);
                printf(", \"text\": ");
                rdx_cli_json_str(stdout, o.text);
                printf(", \"ack_file\": ");
                rdx_cli_json_str(stdout, path);
                printf(", \"oru_file\": ");
                rdx_cli_json_str(stdout, fpath);
                printf("}");
            } else {
                static const char *const codes[] = {"AA", "AE", "AR"};
                printf("%s %s: %s%s: %s; ACK in %s", file, ctl, codes[o.code],
                       o.duplicate ? " (duplicate, not applied again)" : "", o.text, path);
                if (fpath[0] != '\0') {
                    printf("; ORU for %s in %s", o.clinic, fpath);
                }
                printf("\n");
            }
            if (o.code != RDX_LAB_ACK_AA) {
                failed = 1;
            }
            rdx_buf_free(&ctlb);
        }
        rdx_lab_hl7_batch_free(batch);
        rdx_buf_free(&b);
    }
    if (json) {
        printf("\n]}\n");
    }
    rdx_lab_store_free(s);
    return failed ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}

/* ---- rdx lab overdue ---------------------------------------------------- */

#define OVERDUE_CMD "lab overdue"

static void overdue_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab overdue [--db URI] [--grace MIN] [--at DTM] [--json]\n"
               "\n"
               "List the specimens on a courier run that should have been scanned at the lab\n"
               "by now (their expected arrival plus MIN minutes, default 60, has passed with\n"
               "no receipt scan): the ones that may be lost in transit. Exit status 0 when\n"
               "there are none, 1 when some are overdue (or on an error), 2 usage error.\n");
}

typedef struct overdue_ctx {
    int json;
    size_t n;
} overdue_ctx;

static void on_overdue(void *user, const rdx_lab_specimen_rec *sp, const rdx_lab_event_rec *e)
{
    overdue_ctx *x = user;
    char when[40];
    iso_time(when, sizeof when, e->reported_ms);
    if (x->json) {
        printf("%s\n  {\"barcode\": ", x->n ? "," : "");
        rdx_cli_json_str(stdout, sp->barcode);
        printf(", \"authority\": ");
        rdx_cli_json_str(stdout, sp->authority);
        printf(", \"lab\": ");
        rdx_cli_json_str(stdout, sp->lab);
        printf(", \"dispatched\": \"%s\", \"by\": ", when);
        rdx_cli_json_str(stdout, e->actor);
        printf("}");
    } else {
        printf("%s (%s): dispatched %s by %s to %s, no receipt scan: lost in transit?\n",
               sp->barcode, sp->authority, when, e->actor, sp->lab[0] ? sp->lab : "-");
    }
    x->n++;
}

static int cmd_overdue(int argc, char **argv)
{
    const char *db = "sqlite:rdx-lab.db", *at = NULL, *grace_s = NULL;
    int json = 0, nops = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--db", &db), RDX_CLI_VALUE("--at", &at),
                                RDX_CLI_VALUE("--grace", &grace_s), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts(OVERDUE_CMD, argc, argv, opts, overdue_usage, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (nops > 0) {
        return rdx_cli_usage(OVERDUE_CMD, "unknown argument '%s'", argv[1]);
    }
    int64_t now = rdx_clock_wall_ms(), grace = 60;
    if (at != NULL && rdx_lab_hl7_dtm_parse(at, strlen(at), 480, &now) != RDX_OK) {
        return rdx_cli_usage(OVERDUE_CMD, "--at '%s' is not an HL7 date/time", at);
    }
    if (grace_s != NULL && rdx_parse_i64(grace_s, strlen(grace_s), 0, 100000, &grace) != RDX_OK) {
        return rdx_cli_usage(OVERDUE_CMD, "--grace '%s' is not a number of minutes", grace_s);
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    overdue_ctx x = {json, 0};
    size_t n = 0;
    int rc = RDX_EXIT_OK;
    if (json) {
        printf("{\"overdue\": [");
    }
    if (rdx_lab_store_open(db, &s, &err) != RDX_OK ||
        rdx_lab_custody_overdue(s, now, (unsigned)grace, on_overdue, &x, &n, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(OVERDUE_CMD, &err);
    } else if (n > 0) {
        rc = RDX_EXIT_FAIL;
    }
    if (json) {
        printf("\n]}\n");
    } else if (rc == RDX_EXIT_OK) {
        printf("no specimen overdue\n");
    }
    rdx_lab_store_free(s);
    return rc;
}

/* ---- rdx lab reroute ---------------------------------------------------- */

#define REROUTE_CMD "lab reroute"

static void reroute_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab reroute --catalogue FILE [--db URI] [--at DTM] [--out DIR]\n"
               "                       [--json] LAB\n"
               "\n"
               "LAB is down or full: route again the tests of every tube sent to it that is\n"
               "still at the clinic (ordered or collected), as if LAB were not in the\n"
               "network, with the next courier pickup after --at (default now) and the\n"
               "stability counted from the original collection. Tubes already picked up are\n"
               "left alone. A tube whose tests now need two labs is split into child tubes\n"
               "BARCODE.1, BARCODE.2. Every move is logged in the tube's chain of custody.\n"
               "LAB is left out for this run only (a lab full today); for a lab that is\n"
               "down until further notice use 'rdx lab lab-down', which is remembered.\n"
               "With --out DIR, the order each moved tube's new lab receives (the lab never\n"
               "had one) is written to DIR/BARCODE.LAB.oml.hl7; an aliquot's names the tube\n"
               "it was poured from in SPM-3.\n");
}

typedef struct reroute_ctx {
    int json;
    size_t n;
    new_tube_ctx moved; /* each moved tube (or aliquot) with a lab, for --out */
} reroute_ctx;

static void on_reroute(void *user, const rdx_lab_reroute_rec *rec)
{
    reroute_ctx *x = user;
    for (size_t i = 0; i < rdx_lab_routing_count(rec->routing); i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rec->routing, i);
        if (d->lab[0] != '\0') {
            note_tube(&x->moved, rec->authority, d->specimen_id);
        }
        if (x->json) {
            printf("%s\n  {\"barcode\": ", x->n ? "," : "");
            rdx_cli_json_str(stdout, rec->barcode);
            printf(", \"authority\": ");
            rdx_cli_json_str(stdout, rec->authority);
            printf(", \"old_lab\": ");
            rdx_cli_json_str(stdout, rec->old_lab);
            printf(", \"test\": ");
            rdx_cli_json_str(stdout, d->test_code);
            printf(", \"specimen\": ");
            rdx_cli_json_str(stdout, d->specimen_id);
            printf(", \"code\": \"%s\", \"lab\": ", rdx_lab_route_code_name(d->code));
            rdx_cli_json_str(stdout, d->lab);
            printf(", \"reason\": ");
            rdx_cli_json_str(stdout, d->reason);
            printf("}");
        } else {
            printf("%s (%s) %s: %s -> %s %s on %s: %s\n", rec->barcode, rec->authority,
                   d->test_code, rec->old_lab, d->lab[0] ? d->lab : "-",
                   rdx_lab_route_code_name(d->code), d->specimen_id, d->reason);
        }
        x->n++;
    }
}

#define LABDOWN_CMD "lab lab-down"
#define LABUP_CMD   "lab lab-up"
#define LABS_CMD    "lab labs"

static void labdown_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab lab-down --catalogue FILE [--db URI] [--at DTM] [--actor ID]\n"
               "                        [--reason TEXT] [--out DIR] [--json] LAB\n"
               "\n"
               "Mark LAB down in the store until 'rdx lab lab-up LAB': every later 'rdx lab\n"
               "route' and 'rdx lab reroute' leave it out. Then, as 'rdx lab reroute' does,\n"
               "route again the tubes sent to it that are still at the clinic; tubes already\n"
               "picked up are left alone. Running it again is harmless: the lab stays down\n"
               "(first record kept) and any tube still waiting is moved.\n"
               "\n"
               "  --actor ID     who says so (default NJ-HUB); --reason TEXT why\n"
               "  --at DTM       HL7 date/time of the next pickup to plan from (default now)\n"
               "  --out DIR      write the order each moved tube's new lab receives, as\n"
               "                 'rdx lab reroute --out' does\n");
}

static void labup_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab lab-up [--db URI] [--json] LAB\n"
               "\n"
               "LAB works again: new orders may be routed to it. Tubes moved away while it\n"
               "was down stay where they were sent.\n");
}

static void labs_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab labs [--db URI] [--json]\n"
               "\n"
               "List the labs marked down (rdx lab lab-down), with since when, by whom and\n"
               "why; nothing listed means every lab of the catalogue takes orders.\n");
}

/* reroute (persist 0) and lab-down (persist 1). */
static int reroute_run(const char *cmd, int persist, int argc, char **argv)
{
    const char *cat_path = NULL, *db = "sqlite:rdx-lab.db", *at = NULL, *lab = NULL;
    const char *actor = "NJ-HUB", *why = NULL, *out_dir = NULL;
    int json = 0, nops = 0;
    /* lab-down also takes --actor and --reason; reroute ends before them. */
    rdx_cli_opt opts[] = {RDX_CLI_VALUE("--catalogue", &cat_path),
                          RDX_CLI_VALUE("--db", &db),
                          RDX_CLI_VALUE("--at", &at),
                          RDX_CLI_VALUE("--out", &out_dir),
                          RDX_CLI_FLAG("--json", &json),
                          RDX_CLI_VALUE("--actor", &actor),
                          RDX_CLI_VALUE("--reason", &why),
                          RDX_CLI_END};
    if (!persist) {
        opts[5].name = NULL;
    }
    int prc =
        rdx_cli_parse_opts(cmd, argc, argv, opts, persist ? labdown_usage : reroute_usage, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (nops > 1) {
        return rdx_cli_usage(cmd, "one LAB at a time");
    }
    lab = nops == 1 ? argv[1] : NULL;
    if (cat_path == NULL || lab == NULL) {
        return rdx_cli_usage(cmd, "want --catalogue FILE and LAB");
    }
    int64_t now = rdx_clock_wall_ms(), recorded = now;
    if (at != NULL && rdx_lab_hl7_dtm_parse(at, strlen(at), 480, &now) != RDX_OK) {
        return rdx_cli_usage(cmd, "--at '%s' is not an HL7 date/time", at);
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_catalogue *cat = NULL;
    rdx_lab_router *r = NULL;
    rdx_lab_store *s = NULL;
    reroute_ctx x;
    memset(&x, 0, sizeof x);
    x.json = json;
    size_t n = 0;
    int rc = RDX_EXIT_OK, changed = 0;
    if (rdx_lab_catalogue_load(cat_path, &cat, &err) != RDX_OK ||
        rdx_lab_router_new(cat, &r, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (rdx_lab_router_set_down(r, lab, 1, &err) != RDX_OK) {
        rc = rdx_cli_fail(cmd, "%s: %s", cat_path, err.msg);
        goto out;
    }
    if (rdx_lab_store_open(db, &s, &err) != RDX_OK ||
        (persist &&
         rdx_lab_store_set_down(s, lab, 1, actor, why, recorded, &changed, &err) != RDX_OK) ||
        rdx_lab_store_load(s, r, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (json) {
        printf("{\"lab\": ");
        rdx_cli_json_str(stdout, lab);
        if (persist) {
            printf(", \"marked_down\": %s", changed ? "true" : "false");
        }
        printf(", \"moves\": [");
    } else if (persist) {
        printf("%s %s\n", lab, changed ? "marked down" : "was already down");
    }
    if (rdx_lab_custody_reroute(s, r, lab, now, on_reroute, &x, &n, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
    }
    if (json) {
        printf("\n], \"tubes\": %zu}\n", n);
    } else if (rc == RDX_EXIT_OK) {
        printf("%zu tube(s) not yet picked up were rerouted from %s\n", n, lab);
    }
    if (rc == RDX_EXIT_OK && out_dir != NULL &&
        write_new_tube_orders(cmd, out_dir, cat, s, &x.moved, json) != 0) {
        rc = RDX_EXIT_FAIL;
    }
out:
    free(x.moved.tubes);
    rdx_lab_store_free(s);
    rdx_lab_router_free(r);
    rdx_lab_catalogue_free(cat);
    return rc;
}

static int cmd_reroute(int argc, char **argv)
{
    return reroute_run(REROUTE_CMD, 0, argc, argv);
}

static int cmd_labdown(int argc, char **argv)
{
    return reroute_run(LABDOWN_CMD, 1, argc, argv);
}

static int db_and_lab(const char *cmd, void (*usage)(FILE *), int want_lab, int argc, char **argv,
                      const char **db, const char **lab, int *json)
{
    int nops = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--db", db), RDX_CLI_FLAG("--json", json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts(cmd, argc, argv, opts, usage, &nops);
    if (prc != RDX_CLI_GO) {
        return prc == RDX_EXIT_OK ? -1 : prc; /* -1: --help was answered */
    }
    if (nops > (want_lab ? 1 : 0)) {
        return rdx_cli_usage(cmd, want_lab ? "one LAB at a time" : "no argument expected");
    }
    *lab = nops == 1 ? argv[1] : NULL;
    if (want_lab && *lab == NULL) {
        return rdx_cli_usage(cmd, "want LAB");
    }
    return RDX_EXIT_OK;
}

static int cmd_labup(int argc, char **argv)
{
    const char *db = "sqlite:rdx-lab.db", *lab = NULL;
    int json = 0, changed = 0;
    int rc = db_and_lab(LABUP_CMD, labup_usage, 1, argc, argv, &db, &lab, &json);
    if (rc != RDX_EXIT_OK) {
        return rc < 0 ? RDX_EXIT_OK : rc;
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    if (rdx_lab_store_open(db, &s, &err) != RDX_OK ||
        rdx_lab_store_set_down(s, lab, 0, NULL, NULL, rdx_clock_wall_ms(), &changed, &err) !=
            RDX_OK) {
        rc = rdx_cli_fail_err(LABUP_CMD, &err);
    } else if (json) {
        printf("{\"lab\": ");
        rdx_cli_json_str(stdout, lab);
        printf(", \"was_down\": %s}\n", changed ? "true" : "false");
    } else {
        printf("%s %s\n", lab, changed ? "is up again" : "was not marked down");
    }
    rdx_lab_store_free(s);
    return rc;
}

typedef struct labs_ctx {
    int json;
    size_t n;
} labs_ctx;

static void on_lab_down(void *user, const char *lab, int64_t since, const char *actor,
                        const char *reason)
{
    labs_ctx *x = user;
    char iso[40];
    iso_time(iso, sizeof iso, since);
    if (x->json) {
        printf("%s\n  {\"lab\": ", x->n ? "," : "");
        rdx_cli_json_str(stdout, lab);
        printf(", \"since\": \"%s\", \"actor\": ", iso);
        rdx_cli_json_str(stdout, actor);
        printf(", \"reason\": ");
        rdx_cli_json_str(stdout, reason);
        printf("}");
    } else {
        printf("%s down since %s by %s%s%s\n", lab, iso, actor, reason[0] ? ": " : "", reason);
    }
    x->n++;
}

static int cmd_labs(int argc, char **argv)
{
    const char *db = "sqlite:rdx-lab.db", *lab = NULL;
    int json = 0;
    int rc = db_and_lab(LABS_CMD, labs_usage, 0, argc, argv, &db, &lab, &json);
    if (rc != RDX_EXIT_OK) {
        return rc < 0 ? RDX_EXIT_OK : rc;
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_store *s = NULL;
    labs_ctx x = {json, 0};
    if (json) {
        printf("{\"down\": [");
    }
    if (rdx_lab_store_open(db, &s, &err) != RDX_OK ||
        rdx_lab_store_labs_down(s, on_lab_down, &x, NULL, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(LABS_CMD, &err);
    }
    if (json) {
        printf("\n]}\n");
    } else if (rc == RDX_EXIT_OK && x.n == 0) {
        printf("no lab is marked down\n");
    }
    rdx_lab_store_free(s);
    return rc;
}

/* ---- routing the tubes rdx opens (recollections, add-on collections) ------ */

/* Remember tube (authority, barcode) once, for --out. */
static void note_tube(new_tube_ctx *x, const char *auth, const char *barcode)
{
    for (size_t i = 0; i < x->ntubes; i++) {
        if (strcmp(x->tubes[i][1], barcode) == 0 && strcmp(x->tubes[i][0], auth) == 0) {
            return;
        }
    }
    if (x->ntubes == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 8;
        char(*t)[2][128] = rdx_reallocarray(x->tubes, nc, sizeof *t);
        if (t == NULL) {
            x->oom = 1;
            return;
        }
        x->tubes = t;
        x->cap = nc;
    }
    snprintf(x->tubes[x->ntubes][0], sizeof x->tubes[0][0], "%s", auth);
    snprintf(x->tubes[x->ntubes][1], sizeof x->tubes[0][1], "%s", barcode);
    x->ntubes++;
}

static void on_new_tube(void *user, const rdx_lab_reroute_rec *rec)
{
    new_tube_ctx *x = user;
    size_t n = strlen(x->line);
    for (size_t i = 0; i < rdx_lab_routing_count(rec->routing); i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rec->routing, i);
        if (d->lab[0] != '\0') {
            /* The tube itself, or the aliquot it was split into. */
            note_tube(x, rec->authority, d->specimen_id);
        }
    }
    for (size_t i = 0; i < rdx_lab_routing_count(rec->routing) && n + 1 < sizeof x->line; i++) {
        const rdx_lab_decision *d = rdx_lab_routing_at(rec->routing, i);
        snprintf(x->lab, sizeof x->lab, "%s", d->lab);
        int w = snprintf(x->line + n, sizeof x->line - n, "%s%s %s -> %s %s: %s", n ? "\n" : "",
                         d->specimen_id, d->test_code, d->lab[0] ? d->lab : "-",
                         rdx_lab_route_code_name(d->code), d->reason);
        n = w < 0 ? n : n + (size_t)w < sizeof x->line ? n + (size_t)w : sizeof x->line - 1;
    }
}

/* Route the tubes rdx opened and nobody routed yet, with the store's loads and down labs. */
static rdx_status route_new_tubes(const rdx_lab_catalogue *cat, rdx_lab_store *s, int64_t now,
                                  new_tube_ctx *x, rdx_error *err)
{
    rdx_lab_router *r = NULL;
    rdx_status st = rdx_lab_router_new(cat, &r, err);
    if (st == RDX_OK) {
        st = rdx_lab_store_load(s, r, err);
    }
    if (st == RDX_OK) {
        st = rdx_lab_custody_route_new(s, r, now, on_new_tube, x, NULL, err);
    }
    rdx_lab_router_free(r);
    return st;
}

/*
 * --out DIR: the order each routed new tube's lab receives,
 * DIR/BARCODE.LAB.oml.hl7 (.orm.hl7 when the clinic's order was ORM^O01).
 * Returns 0, or 1 after reporting a failure.
 */
static int write_new_tube_orders(const char *cmd, const char *dir, const rdx_lab_catalogue *cat,
                                 rdx_lab_store *s, const new_tube_ctx *x, int json)
{
    char ts[32];
    dtm_now(ts, sizeof ts);
    rdx_lab_hl7_address a = {
        .sending_app = "RDX", .sending_facility = "NJ-HUB", .receiving_app = "", .timestamp = ts};
    int failed = 0;
    if (x->oom) {
        failed = rdx_cli_fail(cmd, "out of memory: not every tube's order is written");
    }
    for (size_t i = 0; i < x->ntubes; i++) {
        rdx_error err;
        rdx_error_clear(&err);
        rdx_buf b, f;
        rdx_buf_init(&b, 64u << 20);
        rdx_buf_init(&f, 256);
        rdx_lab_hl7_msg *m = NULL;
        if (rdx_lab_order_for_new_tube(s, cat, x->tubes[i][0], x->tubes[i][1], &a, &b, &err) !=
                RDX_OK ||
            rdx_lab_hl7_parse(b.data, b.len, &m, &err) != RDX_OK) {
            rdx_cli_fail_err(cmd, &err);
            failed = 1;
        } else {
            char name[140], lab[80], path[1400];
            (void)rdx_lab_hl7_get(m, "MSH-6", &f, NULL);
            safe_name(f.data ? (const char *)f.data : "", lab, sizeof lab);
            rdx_buf_reset(&f);
            (void)rdx_lab_hl7_get(m, "MSH-9.1", &f, NULL);
            int orm = f.data != NULL && strcmp((const char *)f.data, "ORM") == 0;
            safe_name(x->tubes[i][1], name, sizeof name);
            snprintf(path, sizeof path, "%s/%s.%s.%s.hl7", dir, name, lab, orm ? "orm" : "oml");
            if (rdx_file_write_atomic(path, b.data, b.len, &err) != RDX_OK) {
                rdx_cli_fail_err(cmd, &err);
                failed = 1;
            } else if (!json) {
                printf("%s: order for its lab written to %s\n", x->tubes[i][1], path);
            }
        }
        rdx_lab_hl7_free(m);
        rdx_buf_free(&b);
        rdx_buf_free(&f);
    }
    return failed;
}

/* ---- rdx lab addon ------------------------------------------------------ */

#define ADDON_CMD "lab addon"

static void addon_usage(FILE *f)
{
    fprintf(f, "Usage: rdx lab addon --catalogue FILE [--db URI] [--authority A] --actor INST\n"
               "                     [--at DTM] [--out DIR] [--json] BARCODE TEST\n"
               "\n"
               "Add TEST to the tube BARCODE after collection. It is accepted only when the\n"
               "tube is not yet resulted, its lab performs TEST on the tube's specimen type,\n"
               "the specimen is still within TEST's stability at --at (default now), and the\n"
               "tube has the volume left (when its SPM-12 volume is known). Otherwise a new\n"
               "collection is opened as a new tube BARCODE-A1 (on a specimen type the test\n"
               "can be done on) and routed at once by itself, planned as collected at --at.\n"
               "With --out DIR, the order its lab receives is written to\n"
               "DIR/BARCODE-A1.LAB.oml.hl7.\n"
               "Exit status 0 accepted, 1 refused (new collection) or error, 2 usage error.\n");
}

static int cmd_addon(int argc, char **argv)
{
    const char *cat_path = NULL, *db = "sqlite:rdx-lab.db", *auth = NULL, *actor = NULL;
    const char *at = NULL, *out_dir = NULL, *pos[2] = {NULL, NULL};
    int json = 0, npos = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--catalogue", &cat_path),
                                RDX_CLI_VALUE("--db", &db),
                                RDX_CLI_VALUE("--authority", &auth),
                                RDX_CLI_VALUE("--actor", &actor),
                                RDX_CLI_VALUE("--at", &at),
                                RDX_CLI_VALUE("--out", &out_dir),
                                RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts(ADDON_CMD, argc, argv, opts, addon_usage, &npos);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (npos > 2) {
        return rdx_cli_usage(ADDON_CMD, "too many arguments ('%s')", argv[3]);
    }
    pos[0] = npos > 0 ? argv[1] : NULL;
    pos[1] = npos > 1 ? argv[2] : NULL;
    if (cat_path == NULL || actor == NULL || npos != 2) {
        return rdx_cli_usage(ADDON_CMD, "want --catalogue FILE, --actor INST, BARCODE and TEST");
    }
    int64_t now = rdx_clock_wall_ms();
    if (at != NULL && rdx_lab_hl7_dtm_parse(at, strlen(at), 480, &now) != RDX_OK) {
        return rdx_cli_usage(ADDON_CMD, "--at '%s' is not an HL7 date/time", at);
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_lab_catalogue *cat = NULL;
    rdx_lab_store *s = NULL;
    rdx_lab_addon_outcome o;
    new_tube_ctx nt;
    memset(&nt, 0, sizeof nt);
    int rc = RDX_EXIT_OK;
    if (rdx_lab_catalogue_load(cat_path, &cat, &err) != RDX_OK ||
        rdx_lab_store_open(db, &s, &err) != RDX_OK ||
        rdx_lab_custody_addon(s, cat, auth, pos[0], pos[1], actor, now, &o, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(ADDON_CMD, &err);
        goto out;
    }
    if (!o.accepted && route_new_tubes(cat, s, now, &nt, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(ADDON_CMD, &err);
        goto out;
    }
    int out_failed =
        out_dir != NULL && write_new_tube_orders(ADDON_CMD, out_dir, cat, s, &nt, json);
    if (json) {
        printf("{\"barcode\": ");
        rdx_cli_json_str(stdout, pos[0]);
        printf(", \"test\": ");
        rdx_cli_json_str(stdout, pos[1]);
        printf(", \"accepted\": %s, \"reason\": ", o.accepted ? "true" : "false");
        rdx_cli_json_str(stdout, o.reason);
        printf(", \"new_collection\": ");
        rdx_cli_json_str(stdout, o.new_barcode);
        printf(", \"new_collection_lab\": ");
        rdx_cli_json_str(stdout, nt.lab);
        printf(", \"new_collection_route\": ");
        rdx_cli_json_str(stdout, nt.line);
        printf("}\n");
    } else if (o.accepted) {
        printf("%s: add-on %s accepted: %s\n", pos[0], pos[1], o.reason);
    } else {
        printf("%s: add-on %s refused: %s; new collection %s\n", pos[0], pos[1], o.reason,
               o.new_barcode);
        if (nt.line[0] != '\0') {
            printf("%s\n", nt.line);
        }
    }
    rc = o.accepted && !out_failed ? RDX_EXIT_OK : RDX_EXIT_FAIL;
out:
    free(nt.tubes);
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(cat);
    return rc;
}

static const struct rdx_cli_verb verbs[] = {
    {"route", "route each ordered test to a member lab and say why", cmd_route},
    {"event", "record a chain-of-custody event for a specimen", cmd_event},
    {"status", "show a specimen's state and chain of custody", cmd_status},
    {"result", "apply a lab's ORU to its order, write the ACK and the clinic's ORU", cmd_result},
    {"overdue", "list dispatched specimens with no receipt scan in time (lost?)", cmd_overdue},
    {"reroute", "a lab is full (this run): route again the tubes not yet picked up", cmd_reroute},
    {"lab-down", "mark a lab down until lab-up (kept in the store) and reroute", cmd_labdown},
    {"lab-up", "a lab marked down takes orders again", cmd_labup},
    {"labs", "list the labs marked down", cmd_labs},
    {"addon", "add a test to a collected tube, or open a new collection", cmd_addon},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_lab = {
    .name = "lab",
    .summary = "Lab orders: HL7 v2, routing to member labs, specimen custody",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
