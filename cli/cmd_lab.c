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
    fprintf(f, "Usage: rdx lab route --catalogue FILE [--db URI] [--json] ORDERS.hl7...\n"
               "\n"
               "Route every test of each order (OML^O21, OML^O33 or ORM^O01; a file may hold\n"
               "several messages or an FHS/BHS batch) to the member lab that performs it, and\n"
               "print one line per test: the order, the test, the tube, the lab and why.\n"
               "\n"
               "  --catalogue FILE  the network catalogue (docs/lab-catalogue.md)\n"
               "  --db URI          decision store, sqlite:PATH (default sqlite:rdx-lab.db);\n"
               "                    loads carry over between runs and an order already routed\n"
               "                    gets the decisions it was given the first time\n"
               "  --json            machine-readable output on stdout\n"
               "\n"
               "Codes: ROUTED, FULL_QUEUED (all capable labs full: queued for a later day),\n"
               "NO_LAB, WRONG_SPECIMEN, NO_COURIER, STABILITY, UNKNOWN_CLINIC.\n"
               "Exit status: 0 every order was routed or refused with a reason, 1 a file or\n"
               "order could not be read (the others are still routed), 2 usage error.\n");
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else {
                fputc(*p, f);
            }
            break;
        }
    }
    fputc('"', f);
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
    rdx_lab_router *router;
    rdx_lab_store *store;
    int json;
    int off;
    int failed;
    size_t orders; /* printed so far (for JSON commas) */
} route_run;

static void print_routing(route_run *x, const char *file, const rdx_lab_order *o,
                          const rdx_lab_routing *rt, int again)
{
    const char *ctl = rdx_lab_order_control_id(o);
    if (x->json) {
        printf("%s\n  {\"file\": ", x->orders ? "," : "");
        json_str(stdout, file);
        printf(", \"sender\": ");
        json_str(stdout, rdx_lab_order_sender(o));
        printf(", \"control_id\": ");
        json_str(stdout, ctl);
        printf(", \"already_routed\": %s, \"labs\": %zu,\n   \"decisions\": [",
               again ? "true" : "false", rdx_lab_routing_labs(rt));
        for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            printf("%s\n    {\"test\": ", i ? "," : "");
            json_str(stdout, d->test_code);
            printf(", \"test_text\": ");
            json_str(stdout, d->test_text);
            printf(", \"specimen\": ");
            json_str(stdout, d->specimen_id);
            printf(", \"parent\": ");
            json_str(stdout, d->parent_id);
            printf(", \"specimen_type\": ");
            json_str(stdout, d->specimen_type);
            printf(", \"code\": ");
            json_str(stdout, rdx_lab_route_code_name(d->code));
            printf(", \"lab\": ");
            json_str(stdout, d->lab);
            printf(", \"lab_city\": ");
            json_str(stdout, d->lab_city);
            printf(", \"collected\": ");
            json_time(stdout, d->collected_ms, x->off);
            printf(", \"pickup\": ");
            json_time(stdout, d->pickup_ms, x->off);
            printf(", \"arrival\": ");
            json_time(stdout, d->arrival_ms, x->off);
            printf(", \"result\": ");
            json_time(stdout, d->result_ms, x->off);
            printf(", \"reason\": ");
            json_str(stdout, d->reason);
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

static void route_message(route_run *x, const char *file, const rdx_lab_hl7_msg *m, size_t idx)
{
    rdx_error err;
    rdx_lab_order *o = NULL;
    rdx_lab_routing *rt = NULL;
    rdx_error_clear(&err);
    if (rdx_lab_order_from_hl7(m, x->off, &o, &err) != RDX_OK) {
        rdx_cli_fail(ROUTE_CMD, "%s: message %zu: %s", file, idx + 1, err.msg);
        x->failed = 1;
        return;
    }
    rdx_status st = rdx_lab_store_lookup(x->store, rdx_lab_order_sender(o),
                                         rdx_lab_order_control_id(o), &rt, &err);
    if (st == RDX_OK) {
        print_routing(x, file, o, rt, 1);
        goto out;
    }
    if (st != RDX_ENOTFOUND) {
        rdx_cli_fail_err(ROUTE_CMD, &err);
        x->failed = 1;
        goto out;
    }
    rdx_error_clear(&err);
    if (rdx_lab_route(x->router, o, &rt, &err) != RDX_OK) {
        rdx_cli_fail(ROUTE_CMD, "%s: message %zu: %s", file, idx + 1, err.msg);
        x->failed = 1;
        goto out;
    }
    if (rdx_lab_store_save(x->store, rdx_lab_order_sender(o), rdx_lab_order_control_id(o), rt,
                           rdx_clock_wall_ms(), &err) != RDX_OK) {
        rdx_cli_fail_err(ROUTE_CMD, &err);
        x->failed = 1;
        goto out;
    }
    print_routing(x, file, o, rt, 0);
out:
    rdx_lab_routing_free(rt);
    rdx_lab_order_free(o);
}

static int cmd_route(int argc, char **argv)
{
    const char *cat_path = NULL, *db = "sqlite:rdx-lab.db";
    int json = 0, nfiles = 0, rc = RDX_EXIT_OK, dashdash = 0;
    for (int i = 1; i < argc; i++) {
        if (rdx_cli_is_help(argv[i])) {
            route_usage(stdout);
            return RDX_EXIT_OK;
        }
    }
    /* Files are collected in place at the front of argv (argv[1..nfiles]). */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dashdash || a[0] != '-' || a[1] == '\0') {
            argv[1 + nfiles++] = argv[i];
        } else if (strcmp(a, "--catalogue") == 0 || strcmp(a, "--db") == 0) {
            if (i + 1 >= argc) {
                return rdx_cli_usage(ROUTE_CMD, "%s needs a value", a);
            }
            if (a[2] == 'c') {
                cat_path = argv[++i];
            } else {
                db = argv[++i];
            }
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--") == 0) {
            dashdash = 1;
        } else {
            return rdx_cli_usage(ROUTE_CMD, "unknown option '%s'", a);
        }
    }
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
    if (rdx_lab_catalogue_load(cat_path, &cat, &err) != RDX_OK) {
        return rdx_cli_fail_err(ROUTE_CMD, &err);
    }
    x.off = rdx_lab_catalogue_utc_offset_min(cat);
    if (rdx_lab_router_new(cat, &x.router, &err) != RDX_OK ||
        rdx_lab_store_open(db, &x.store, &err) != RDX_OK ||
        rdx_lab_store_load(x.store, x.router, &err) != RDX_OK) {
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
    rdx_lab_router_free(x.router);
    rdx_lab_catalogue_free(cat);
    return rc;
}

static const struct rdx_cli_verb verbs[] = {
    {"route", "route each ordered test to a member lab and say why", cmd_route},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_lab = {
    .name = "lab",
    .summary = "Lab orders: HL7 v2, routing to member labs, specimen custody",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
