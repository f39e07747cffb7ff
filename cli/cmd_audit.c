/*
 * rdx audit: the nodes' hash-chained audit logs. `verify` checks the chain of
 * one node's data directory, or of every node of a network directory made by
 * `rdx network up`; `show` prints one node's log (as `rdx node audit`).
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

static int audit_verify(int argc, char **argv)
{
    const char *cmd = "audit verify";
    struct verify_ctx x = {0, 1, 0};
    int ndirs = 0;
    for (int i = 1; i < argc; i++) {
        if (rdx_cli_is_help(argv[i])) {
            fputs(VERIFY_USAGE, stdout);
            return RDX_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            x.json = 1;
        } else if (argv[i][0] == '-') {
            return rdx_cli_usage(cmd, "unknown option '%s'", argv[i]);
        } else {
            ndirs++;
        }
    }
    if (ndirs == 0) {
        return rdx_cli_usage(cmd, "at least one DIR is required");
    }
    if (x.json) {
        printf("[");
    }
    for (int i = 1; i < argc; i++) {
        const char *dir = argv[i];
        char path[4200];
        struct stat sb;
        if (dir[0] == '-') {
            continue;
        }
        snprintf(path, sizeof path, "%s/nodes.ini", dir);
        if (stat(path, &sb) != 0) {
            verify_one(cmd, &x, dir, dir);
            continue;
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
            if (!x.json) {
                rdx_cli_fail(cmd, "%s: no node data directories", path);
            }
            x.bad = 1;
        }
        for (size_t k = 0; k < n; k++) {
            char nd[4500];
            snprintf(nd, sizeof nd, "%s/%s", path, names[k]);
            verify_one(cmd, &x, names[k], nd);
            free(names[k]);
        }
    }
    if (x.json) {
        printf("]\n");
    }
    return x.bad ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}

static int audit_show(int argc, char **argv)
{
    return rdx_tp_cli_audit("audit show", argc, argv);
}

static const struct rdx_cli_verb verbs[] = {
    {"verify", "check the audit hash chain of node or network directories", audit_verify},
    {"show", "print a node's audit log (--config FILE)", audit_show},
};

const struct rdx_cli_group rdx_cli_group_audit = {
    .name = "audit",
    .summary = "The nodes' hash-chained audit logs (IHE ATNA fields)",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0],
};
