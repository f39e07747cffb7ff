/* rdx case: queue, track and fetch cases between institutions. */
#define _GNU_SOURCE
#include "cli.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int load(const char *cmd, const char *config, rdx_transport_config **cfg)
{
    rdx_error err;
    rdx_error_clear(&err);
    if (config == NULL) {
        return rdx_cli_usage(cmd, "--config is required");
    }
    if (rdx_transport_config_load(config, cfg, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    return -1;
}

static const char SEND_USAGE[] =
    "Usage: rdx case send --config FILE --to ID --kind KIND [--json] FILE...\n\n"
    "Queue a case for institution ID: the files are copied into this node's\n"
    "outbox and hashed (SHA-256), and the running node ('rdx node serve')\n"
    "delivers it, resuming after broken connections, until ID acknowledges it\n"
    "as durable. KIND is ecg, dicom, lab-order, lab-result, report or other.\n"
    "Each file becomes an item named by its base name. Prints the case ID.\n";

static int case_send(int argc, char **argv)
{
    const char *cmd = "case send";
    const char *config = NULL, *to = NULL, *kind_s = NULL;
    int json = 0, nfiles = 0;
    rdx_transport_config *cfg = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config), RDX_CLI_VALUE("--to", &to),
                                RDX_CLI_VALUE("--kind", &kind_s), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS, SEND_USAGE, &nfiles);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    /* The operands, moved to argv[1..nfiles] by the option reader, are the files. */
    const char *const *files = (const char *const *)(argv + 1);
    if (to == NULL || kind_s == NULL || nfiles == 0) {
        return rdx_cli_usage(cmd, "--config, --to, --kind and at least one FILE are required");
    }
    rdx_transport_kind kind;
    if (rdx_transport_kind_parse(kind_s, strlen(kind_s), &kind) != RDX_OK) {
        return rdx_cli_usage(cmd,
                             "--kind '%s': not one of ecg dicom lab-order lab-result report "
                             "other",
                             kind_s);
    }
    if ((rc = load(cmd, config, &cfg)) >= 0) {
        return rc;
    }
    rc = RDX_EXIT_OK;
    char id[RDX_TRANSPORT_CASE_ID_LEN];
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_transport_case_queue(cfg, to, kind, files, (size_t)nfiles, id, &err) != RDX_OK) {
        rc = err.code == RDX_EINVAL ? rdx_cli_usage(cmd, "%s", err.msg)
                                    : rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (json) {
        printf("{\"case_id\":\"%s\",\"to\":\"%s\",\"kind\":\"%s\",\"items\":%d}\n", id, to, kind_s,
               nfiles);
    } else {
        printf("%s\n", id);
    }
out:
    rdx_transport_config_free(cfg);
    return rc;
}

struct list_ctx {
    int json;
    int first;
    int inbox_only_complete;
    size_t n;
    const rdx_transport_config *cfg;
    rdx_transport_dispatch_info *disp; /* the inbox journeys (a processing node) */
    size_t ndisp, capdisp;
};

static int keep_dispatch(void *u, const rdx_transport_dispatch_info *d)
{
    struct list_ctx *x = u;
    if (x->ndisp == x->capdisp) {
        size_t nc = x->capdisp ? x->capdisp * 2 : 64;
        rdx_transport_dispatch_info *nv = rdx_reallocarray(x->disp, nc, sizeof *nv);
        if (nv == NULL) {
            return 1;
        }
        x->disp = nv;
        x->capdisp = nc;
    }
    x->disp[x->ndisp++] = *d;
    return 0;
}

/*
 * Where a case is on its journey: an outbox case is queued, sent (tried),
 * acknowledged, then replied once the answer naming it has arrived; an inbox
 * case is receiving, received, then processed and replied at a node that
 * processes its inbox (or retry / parked when that fails).
 */
static const char *journey(const struct list_ctx *x, const rdx_transport_case_info *c, char *reply,
                           size_t replysz, const rdx_transport_dispatch_info **dp)
{
    reply[0] = '\0';
    *dp = NULL;
    if (c->inbox) {
        for (size_t i = 0; i < x->ndisp; i++) {
            if (strcmp(x->disp[i].case_id, c->case_id) == 0 &&
                strcmp(x->disp[i].sender, c->peer) == 0) {
                *dp = &x->disp[i];
                return x->disp[i].state;
            }
        }
        return strcmp(c->state, "complete") == 0 ? "received" : "receiving";
    }
    if (strcmp(c->state, "dead") == 0) {
        return "dead-lettered";
    }
    if (strcmp(c->state, "acked") == 0) {
        char id[65];
        if (x->cfg != NULL &&
            rdx_transport_inbox_find_reply(x->cfg, c->peer, c->case_id, id, NULL) == RDX_OK) {
            snprintf(reply, replysz, "%s", id);
            return "replied";
        }
        return "acknowledged";
    }
    return c->attempts > 0 ? "sent" : "queued";
}

static int print_case(void *u, const rdx_transport_case_info *c)
{
    struct list_ctx *x = u;
    char when[32] = "";
    if (x->inbox_only_complete && (!c->inbox || strcmp(c->state, "complete") != 0)) {
        return 0;
    }
    x->n++;
    if (c->done_ms > 0) {
        rdx_tp_cli_time(when, sizeof when, c->done_ms / 1000);
    }
    char reply[65];
    const rdx_transport_dispatch_info *d = NULL;
    const char *j = journey(x, c, reply, sizeof reply, &d);
    if (x->json) {
        printf("%s{\"box\":\"%s\",\"case_id\":\"%s\",\"%s\":\"%s\",\"kind\":\"%s\","
               "\"state\":\"%s\",\"items\":%zu,\"bytes\":%llu",
               x->first ? "" : ",", c->inbox ? "inbox" : "outbox", c->case_id,
               c->inbox ? "from" : "to", c->peer, c->kind, c->state, c->items,
               (unsigned long long)c->bytes);
        if (c->inbox) {
            printf(",\"durable\":%llu", (unsigned long long)c->durable);
        } else {
            printf(",\"attempts\":%d,\"last_error\":", c->attempts);
            rdx_tp_cli_json_str(stdout, c->last_error);
        }
        printf(",\"done\":\"%s\",\"journey\":\"%s\"", when, j);
        if (reply[0]) {
            printf(",\"reply\":\"%s\"", reply);
        }
        if (d != NULL) {
            printf(",\"outputs\":%d,\"outputs_acked\":%d,\"dispatch_attempts\":%d,"
                   "\"dispatch_error\":",
                   d->outputs, d->outputs_acked, d->attempts);
            rdx_tp_cli_json_str(stdout, d->last_error);
            printf(",\"dispatch_detail\":");
            rdx_tp_cli_json_str(stdout, d->detail);
        }
        printf("}");
    } else if (c->inbox) {
        printf("inbox   %s  from %-16s %-10s %-9s %zu items, %llu/%llu bytes%s%s; %s", c->case_id,
               c->peer, c->kind, c->state, c->items, (unsigned long long)c->durable,
               (unsigned long long)c->bytes, when[0] ? ", completed " : "", when, j);
        if (d != NULL && d->outputs > 0) {
            printf(" (%d of %d answers acknowledged)", d->outputs_acked, d->outputs);
        }
        if (d != NULL && d->last_error[0]) {
            printf("; error: %s", d->last_error);
        }
        printf("\n");
    } else {
        printf("outbox  %s  to   %-16s %-10s %-9s %zu items, %llu bytes, %d attempt%s%s%s%s%s\n",
               c->case_id, c->peer, c->kind, strcmp(c->state, "dead") == 0 ? "DEAD" : c->state,
               c->items, (unsigned long long)c->bytes, c->attempts, c->attempts == 1 ? "" : "s",
               !when[0]                        ? ""
               : strcmp(c->state, "dead") == 0 ? ", given up "
                                               : ", acknowledged ",
               when, c->last_error[0] ? "; last error: " : "", c->last_error);
        printf("        journey: %s%s%s\n", j, reply[0] ? ", answer " : "", reply);
    }
    x->first = 0;
    return 0;
}

static const char STATUS_USAGE[] =
    "Usage: rdx case status --config FILE [--outbox|--inbox] [--json]\n\n"
    "Show this node's outbox (cases sent: queued, acked, or DEAD when delivery\n"
    "was given up, with the last error) and inbox (cases received: receiving or\n"
    "complete, with the bytes durable so far), each with its journey: queued,\n"
    "sent, acknowledged, replied (the answer naming it has arrived) for a case\n"
    "sent; receiving, received, processed, replied (every answer acknowledged),\n"
    "retry or parked (with the error) for a case received by a node that\n"
    "processes its inbox ([dispatch]).\n";

static const char LIST_USAGE[] = "Usage: rdx case list --config FILE --inbox [--json]\n\n"
                                 "List the completely received cases in this node's inbox.\n";

static int status_or_list(int argc, char **argv, int list)
{
    const char *cmd = list ? "case list" : "case status";
    const char *config = NULL;
    int which = 3, nops = 0; /* 1 the outbox, 2 the inbox, 3 both; the last flag given wins */
    struct list_ctx x = {0, 1, list, 0, NULL, NULL, 0, 0};
    rdx_transport_config *cfg = NULL;
    rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config), RDX_CLI_FLAG("--json", &x.json),
                          RDX_CLI_SET("--inbox", &which, 2), RDX_CLI_SET("--outbox", &which, 1),
                          RDX_CLI_END};
    if (list) {
        opts[3].name = NULL; /* `case list` has no --outbox: the table ends before it */
    }
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS,
                                    list ? LIST_USAGE : STATUS_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (list && which != 2) {
        return rdx_cli_usage(cmd, "--inbox is required");
    }
    int rc = load(cmd, config, &cfg);
    if (rc >= 0) {
        return rc;
    }
    rdx_error err;
    rdx_error_clear(&err);
    x.cfg = cfg;
    rdx_status st = rdx_transport_dispatch_list(cfg, keep_dispatch, &x, &err);
    if (st != RDX_OK) {
        free(x.disp);
        rdx_transport_config_free(cfg);
        return rdx_cli_fail_err(cmd, &err);
    }
    if (x.json) {
        printf("[");
    }
    st = rdx_transport_case_list(cfg, which, print_case, &x, &err);
    free(x.disp);
    if (x.json) {
        printf("]\n");
    } else if (st == RDX_OK && x.n == 0) {
        printf("no cases\n");
    }
    rdx_transport_config_free(cfg);
    return st == RDX_OK ? RDX_EXIT_OK : rdx_cli_fail_err(cmd, &err);
}

static int case_status(int argc, char **argv)
{
    return status_or_list(argc, argv, 0);
}

static int case_list(int argc, char **argv)
{
    return status_or_list(argc, argv, 1);
}

static const char FETCH_USAGE[] =
    "Usage: rdx case fetch --config FILE [--from ID] -o DIR CASE_ID\n\n"
    "Copy the items of a completely received case into DIR (which must exist),\n"
    "each as DIR/NAME, verifying its SHA-256 against the manifest again. An\n"
    "existing file is never replaced. --from names the sender when two sent the\n"
    "same case ID. Recorded in the audit log.\n";

static int case_fetch(int argc, char **argv)
{
    const char *cmd = "case fetch";
    const char *config = NULL, *from = NULL, *out = NULL;
    int nops = 0;
    rdx_transport_config *cfg = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config), RDX_CLI_VALUE("--from", &from),
                                RDX_CLI_VALUE("-o", &out), RDX_CLI_END};
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS, FETCH_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (nops > 1) {
        return rdx_cli_usage(cmd, "unexpected argument '%s'", argv[2]);
    }
    const char *id = nops == 1 ? argv[1] : NULL;
    if (out == NULL || id == NULL) {
        return rdx_cli_usage(cmd, "--config, -o DIR and CASE_ID are required");
    }
    int rc = load(cmd, config, &cfg);
    if (rc >= 0) {
        return rc;
    }
    rdx_error err;
    rdx_error_clear(&err);
    size_t n = 0;
    rdx_status st = rdx_transport_case_fetch(cfg, id, from, out, &n, &err);
    rdx_transport_config_free(cfg);
    if (st != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    printf("fetched case %s: %zu item%s into %s\n", id, n, n == 1 ? "" : "s", out);
    return RDX_EXIT_OK;
}

static const char RETRY_USAGE[] =
    "Usage: rdx case retry --config FILE CASE_ID\n\n"
    "Send a dead-lettered case again (see rdx case status): it goes back to the\n"
    "outbox as queued, its attempts counted from zero, and the running node\n"
    "delivers it. Fix what refused it first (a policy entry, a peer address).\n"
    "Recorded in the audit log.\n";

static int case_retry(int argc, char **argv)
{
    const char *cmd = "case retry";
    const char *config = NULL;
    int nops = 0;
    rdx_transport_config *cfg = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config), RDX_CLI_END};
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS, RETRY_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (nops == 0) {
        return rdx_cli_usage(cmd, "--config and CASE_ID are required");
    }
    if (nops > 1) {
        return rdx_cli_usage(cmd, "one CASE_ID, not %d", nops);
    }
    const char *id = argv[1];
    int rc = load(cmd, config, &cfg);
    if (rc >= 0) {
        return rc;
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_status st = rdx_transport_case_requeue(cfg, id, &err);
    rdx_transport_config_free(cfg);
    if (st != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    printf("case %s queued again\n", id);
    return RDX_EXIT_OK;
}

static const char REQUEST_USAGE[] =
    "Usage: rdx case request --config FILE --to HUB --study UID [--wait SECONDS]\n"
    "                        [-o DIR] [--json]\n\n"
    "Ask HUB for a study: queue a request case (kind other, one item request.txt\n"
    "holding study-uid=UID) and print its ID. The hub answers, if its\n"
    "[allow.fetch] policy lets this institution fetch dicom, with a dicom case\n"
    "holding every instance of the study it has indexed and its report\n"
    "(report.txt); otherwise with a report case holding refused.txt. The answer\n"
    "carries in-reply-to.txt naming the request.\n\n"
    "  --wait SECONDS  wait (the node must be running) until the answer has\n"
    "                  arrived and print its ID too; exit 1 when it does not come\n"
    "  -o DIR          with --wait: copy the answer's items into DIR\n"
    "  --json          print {\"request\":ID,\"answer\":ID,\"kind\":K,\"items\":N}\n";

struct find_kind {
    const char *id;
    char kind[16];
    size_t items;
};

static int note_kind(void *u, const rdx_transport_case_info *c)
{
    struct find_kind *f = u;
    if (c->inbox && strcmp(c->case_id, f->id) == 0) {
        snprintf(f->kind, sizeof f->kind, "%s", c->kind);
        f->items = c->items;
        return 1;
    }
    return 0;
}

static int case_request(int argc, char **argv)
{
    const char *cmd = "case request";
    const char *config = NULL, *to = NULL, *uid = NULL, *wait_s = NULL, *out = NULL;
    int json = 0, nops = 0;
    rdx_transport_config *cfg = NULL;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config),
                                RDX_CLI_VALUE("--to", &to),
                                RDX_CLI_VALUE("--study", &uid),
                                RDX_CLI_VALUE("--wait", &wait_s),
                                RDX_CLI_VALUE("-o", &out),
                                RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int prc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS,
                                    REQUEST_USAGE, &nops);
    if (prc != RDX_CLI_GO) {
        return prc;
    }
    if (to == NULL || uid == NULL) {
        return rdx_cli_usage(cmd, "--config, --to and --study are required");
    }
    /* A DICOM UID (PS3.5 9.1): digits and dots, at most 64 characters. */
    size_t ul = strlen(uid);
    if (ul == 0 || ul > 64 || strspn(uid, "0123456789.") != ul) {
        return rdx_cli_usage(cmd, "--study '%s': not a DICOM UID (digits and dots, 1-64)", uid);
    }
    long wait = -1;
    if (wait_s != NULL && rdx_tp_cli_int(wait_s, 1, 3600, &wait, "--wait", cmd) < 0) {
        return RDX_EXIT_USAGE;
    }
    if (out != NULL && wait < 0) {
        return rdx_cli_usage(cmd, "-o needs --wait");
    }
    int rc = load(cmd, config, &cfg);
    if (rc >= 0) {
        return rc;
    }
    rdx_error err;
    rdx_error_clear(&err);
    char tmpl[] = "/tmp/rdx-request.XXXXXX";
    char path[64], text[128], id[RDX_TRANSPORT_CASE_ID_LEN], answer[65] = "";
    rc = RDX_EXIT_OK;
    if (mkdtemp(tmpl) == NULL) {
        rc = rdx_cli_fail(cmd, "/tmp: cannot make a temporary directory");
        goto out;
    }
    snprintf(path, sizeof path, "%s/request.txt", tmpl);
    snprintf(text, sizeof text, "study-uid=%s\n", uid);
    rdx_transport_kind kind = RDX_KIND_OTHER;
    const char *files[] = {path};
    if (rdx_file_write_atomic(path, text, strlen(text), &err) != RDX_OK ||
        rdx_transport_case_queue(cfg, to, kind, files, 1, id, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        (void)remove(path);
        (void)rmdir(tmpl);
        goto out;
    }
    (void)remove(path);
    (void)rmdir(tmpl);
    if (!json) {
        printf("%s\n", id);
        fflush(stdout);
    }
    if (wait < 0) {
        if (json) {
            printf("{\"request\":\"%s\"}\n", id);
        }
        goto out;
    }
    uint64_t until = rdx_clock_mono_ns() + (uint64_t)wait * 1000000000u;
    const struct timespec tick = {0, 50 * 1000 * 1000};
    while (rdx_transport_inbox_find_reply(cfg, to, id, answer, &err) == RDX_ENOTFOUND) {
        if (rdx_clock_mono_ns() >= until) {
            rc = rdx_cli_fail(cmd, "case %s: no answer from %s within %ld s", id, to, wait);
            goto out;
        }
        nanosleep(&tick, NULL);
    }
    if (answer[0] == '\0') {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    struct find_kind fk = {answer, "", 0};
    (void)rdx_transport_case_list(cfg, 2, note_kind, &fk, NULL);
    if (out != NULL && rdx_transport_case_fetch(cfg, answer, to, out, NULL, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (json) {
        printf("{\"request\":\"%s\",\"answer\":\"%s\",\"kind\":\"%s\",\"items\":%zu}\n", id, answer,
               fk.kind, fk.items);
    } else {
        printf("answer %s: %s case, %zu items%s%s\n", answer, fk.kind, fk.items,
               out != NULL ? ", copied into " : "", out != NULL ? out : "");
    }
    if (strcmp(fk.kind, "dicom") != 0) {
        rc = rdx_cli_fail(cmd, "case %s: %s answered with a %s case (refused or not found)", id, to,
                          fk.kind);
    }
out:
    rdx_transport_config_free(cfg);
    return rc;
}

static const struct rdx_cli_verb verbs[] = {
    {"send", "queue a case for another institution and print its ID", case_send},
    {"status", "show the outbox and inbox, with dead-lettered cases", case_status},
    {"list", "list completely received cases (--inbox)", case_list},
    {"fetch", "copy a received case's items out, verifying them", case_fetch},
    {"retry", "send a dead-lettered case again", case_retry},
    {"request", "ask the hub for a study; it answers with the files and report", case_request},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_case = {
    .name = "case",
    .summary = "Send, track and fetch cases between institutions",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
