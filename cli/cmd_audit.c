/*
 * rdx audit: the nodes' hash-chained audit logs. `verify` checks the chain of
 * one node's data directory, or of every node of a network directory made by
 * `rdx network up`; `show` prints the logs of the same directories (or of
 * one node's configuration, as `rdx node audit`).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char VERIFY_USAGE[] =
    "Usage: rdx audit verify [--json] DIR...\n\n"
    "Check the SHA-256 hash chain of the audit log in each DIR: a node's data\n"
    "directory (it holds node.db), or a network directory made by 'rdx network\n"
    "up', whose every node (DIR/data/ID) is checked. Prints the records checked\n"
    "per node, or names the first broken record. Exit 1 when any chain is\n"
    "broken or missing.\n";

struct verify_ctx {
    int json;
    int first;
    int bad;
};

static void verify_one(const char *cmd, struct verify_ctx *x, const char *label, const char *dir)
{
    rdx_error err;
    long long n = 0, bad = 0;
    rdx_error_clear(&err);
    rdx_status st = rdx_transport_audit_verify_dir(dir, &n, &bad, &err);
    if (x->json) {
        printf("%s{\"node\":", x->first ? "" : ",");
        rdx_tp_cli_json_str(stdout, label);
        printf(",\"dir\":");
        rdx_tp_cli_json_str(stdout, dir);
        if (st == RDX_OK) {
            printf(",\"ok\":true,\"records\":%lld}", n);
        } else {
            printf(",\"ok\":false,\"first_bad\":%lld,\"error\":", bad);
            rdx_tp_cli_json_str(stdout, err.msg);
            printf("}");
        }
    } else if (st == RDX_OK) {
        printf("%-14s audit chain intact: %lld records\n", label, n);
    } else {
        rdx_cli_fail_err(cmd, &err);
    }
    x->first = 0;
    x->bad |= st != RDX_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Call fn(cmd, x, label, data_dir) for DIR: a node's data directory, or every node of a network. */
static void each_node(const char *cmd, void *x, const char *dir, int json, int *bad,
                      void (*fn)(const char *cmd, void *x, const char *label, const char *dir))
{
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/nodes.ini", dir);
    if (stat(path, &sb) != 0) {
        fn(cmd, x, dir, dir);
        return;
    }
    /* A network directory: every node's data directory, in name order. */
    snprintf(path, sizeof path, "%s/data", dir);
    DIR *dh = opendir(path);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while (dh != NULL && n < 256 && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name)) != NULL) {
            n++;
        }
    }
    if (dh != NULL) {
        closedir(dh);
    }
    qsort(names, n, sizeof names[0], cmp_names);
    if (n == 0) {
        if (!json) {
            rdx_cli_fail(cmd, "%s: no node data directories", path);
        }
        *bad = 1;
    }
    for (size_t k = 0; k < n; k++) {
        char nd[4500];
        snprintf(nd, sizeof nd, "%s/%s", path, names[k]);
        fn(cmd, x, names[k], nd);
        free(names[k]);
    }
}

static void verify_cb(const char *cmd, void *x, const char *label, const char *dir)
{
    verify_one(cmd, x, label, dir);
}

static int audit_verify(int argc, char **argv)
{
    const char *cmd = "audit verify";
    struct verify_ctx x = {0, 1, 0};
    int ndirs = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_FLAG("--json", &x.json), RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS, VERIFY_USAGE, &ndirs);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (ndirs == 0) {
        return rdx_cli_usage(cmd, "at least one DIR is required");
    }
    if (x.json) {
        printf("[");
    }
    /* The directories, moved to argv[1..ndirs] by the option reader. */
    for (int i = 1; i <= ndirs; i++) {
        each_node(cmd, &x, argv[i], x.json, &x.bad, verify_cb);
    }
    if (x.json) {
        printf("]\n");
    }
    return x.bad ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}

static const char SHOW_USAGE[] =
    "Usage: rdx audit show [--json] DIR...\n"
    "       rdx audit show --config FILE [--verify] [--json]\n\n"
    "Print the audit log of each DIR: a node's data directory (it holds\n"
    "node.db), or a network directory made by 'rdx network up', whose every\n"
    "node (DIR/data/ID) is printed in turn. One record a line: sequence, time,\n"
    "outcome, event, institution, object, detail (every connection accepted or\n"
    "refused, every case queued, received, processed, refused or fetched).\n"
    "With --json, one array of records, each naming its node. With --config,\n"
    "the log of that node's configuration (as 'rdx node audit'). Exit 1 when a\n"
    "DIR holds no node.\n";

struct show_ctx {
    int json;
    int first;
    int bad;
    int ndirs;
};

static int show_record(void *u, const rdx_transport_audit_record *r)
{
    struct show_ctx *x = u;
    char ts[32];
    rdx_tp_cli_time(ts, sizeof ts, (long long)(r->time_ms / 1000));
    if (x->json) {
        printf("%s{\"seq\":%lld,\"time\":\"%s\",\"time_ms\":%lld,\"event\":", x->first ? "" : ",",
               r->seq, ts, (long long)r->time_ms);
        rdx_tp_cli_json_str(stdout, r->event);
        printf(",\"outcome\":%d,\"node\":", r->outcome);
        rdx_tp_cli_json_str(stdout, r->node);
        printf(",\"institution\":");
        rdx_tp_cli_json_str(stdout, r->institution);
        printf(",\"object\":");
        rdx_tp_cli_json_str(stdout, r->object);
        printf(",\"detail\":");
        rdx_tp_cli_json_str(stdout, r->detail);
        printf(",\"hash\":\"%s\"}", r->hash);
        x->first = 0;
    } else {
        const char *oc = r->outcome == 0 ? "ok" : r->outcome == 4 ? "minor" : "FAIL";
        printf("%6lld %s %-5s %-20s %-12s %-34s %s\n", r->seq, ts, oc, r->event,
               r->institution[0] ? r->institution : "-", r->object[0] ? r->object : "-", r->detail);
    }
    return 0;
}

static void show_cb(const char *cmd, void *u, const char *label, const char *dir)
{
    struct show_ctx *x = u;
    rdx_error err;
    char db[4200];
    struct stat sb;
    rdx_error_clear(&err);
    if (snprintf(db, sizeof db, "%s/node.db", dir) >= (int)sizeof db || stat(db, &sb) != 0) {
        rdx_cli_fail(cmd, "%s: not a node's data directory (no node.db)", dir);
        x->bad = 1;
        return;
    }
    if (!x->json && x->ndirs++ > 0) {
        printf("\n");
    }
    if (!x->json) {
        printf("== %s (%s)\n", label, dir);
    }
    if (rdx_transport_audit_list_dir(dir, show_record, x, &err) != RDX_OK) {
        rdx_cli_fail_err(cmd, &err);
        x->bad = 1;
    }
}

static int audit_show(int argc, char **argv)
{
    const char *cmd = "audit show";
    struct show_ctx x = {0, 1, 0, 0};
    const char *config = NULL;
    int ndirs = 0, verify = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--config", &config),
                                RDX_CLI_FLAG("--verify", &verify), RDX_CLI_FLAG("--json", &x.json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS, SHOW_USAGE, &ndirs);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (config != NULL || verify) {
        /* The second form, `rdx node audit`'s: one node's log by its configuration. */
        if (ndirs > 0) {
            return rdx_cli_usage(cmd, "unknown argument '%s'", argv[1]);
        }
        return rdx_tp_cli_audit_print(cmd, config, verify, x.json);
    }
    if (ndirs == 0) {
        return rdx_cli_usage(cmd, "a DIR (or --config FILE) is required");
    }
    if (x.json) {
        printf("[");
    }
    /* The directories, moved to argv[1..ndirs] by the option reader. */
    for (int i = 1; i <= ndirs; i++) {
        each_node(cmd, &x, argv[i], x.json, &x.bad, show_cb);
    }
    if (x.json) {
        printf("]\n");
    }
    return x.bad ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}

static const struct rdx_cli_verb verbs[] = {
    {"verify", "check the audit hash chain of node or network directories", audit_verify},
    {"show", "print the audit log of node or network directories (or --config FILE)", audit_show},
};

const struct rdx_cli_group rdx_cli_group_audit = {
    .name = "audit",
    .summary = "The nodes' hash-chained audit logs (IHE ATNA fields)",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0],
};
