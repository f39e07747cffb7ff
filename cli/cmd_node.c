/* rdx node: run an institution's transport node. */
#define _GNU_SOURCE
#include "cli.h"
#include "rdx/hub.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void log_stderr(void *user, rdx_log_level level, const char *msg)
{
    char ts[32];
    (void)user;
    rdx_tp_cli_time(ts, sizeof ts, (long long)time(NULL));
    fprintf(stderr, "%s rdx node: %s: %s\n", ts, rdx_log_level_name(level), msg);
    fflush(stderr);
}

static const char SERVE_USAGE[] =
    "Usage: rdx node serve --config FILE [--await-peers READY] [--verbose]\n\n"
    "Run this institution's node as FILE describes (see 'rdx case --help' and\n"
    "README.md, section Transport): accept cases from member institutions over\n"
    "TLS 1.3 with client certificates checked against the network CA and CRL,\n"
    "store them durably in the data directory, and deliver the outbox to peers.\n"
    "Logs go to stderr, one line per event; the bound port is written to\n"
    "DATA/node.port. SIGINT or SIGTERM stops it cleanly.\n\n"
    "When FILE has a [dispatch] section (the hub; see docs/ARCHITECTURE.md and\n"
    "include/rdx/hub.h), the node also processes its inbox: ECGs are detected and\n"
    "answered with a report, studies indexed, study requests answered as\n"
    "[allow.fetch] allows, lab orders routed and forwarded to the labs, lab\n"
    "results matched and forwarded to the clinics. A case's answers and its\n"
    "completion are committed together; a failing case is retried, then parked.\n\n"
    "  --await-peers READY  bind (listen port 0: the kernel's choice), write\n"
    "                       DATA/node.port, then wait (at most 60 s) for the file\n"
    "                       READY before reading FILE's [peers] again and serving;\n"
    "                       how 'rdx network up' learns every port without a race\n";

/* Wait (at most 60 s) for the file ready to exist; 1 when it does. */
static int await_file(const char *ready)
{
    const struct timespec tick = {0, 20 * 1000 * 1000};
    struct stat sb;
    for (int i = 0; i < 3000; i++) {
        if (stat(ready, &sb) == 0) {
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    return 0;
}

static int node_serve(int argc, char **argv)
{
    const char *cmd = "node serve";
    const char *config = NULL, *ready = NULL;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (rdx_cli_is_help(argv[i])) {
            fputs(SERVE_USAGE, stdout);
            return RDX_EXIT_OK;
        }
        if (strcmp(argv[i], "--verbose") == 0) {
            verbose = 1;
            continue;
        }
        int hit = rdx_tp_cli_opt(argc, argv, &i, "--config", &config, cmd);
        if (hit == 0) {
            hit = rdx_tp_cli_opt(argc, argv, &i, "--await-peers", &ready, cmd);
        }
        if (hit < 0) {
            return RDX_EXIT_USAGE;
        }
        if (hit == 0) {
            return rdx_cli_usage(cmd, "unknown argument '%s'", argv[i]);
        }
    }
    if (config == NULL) {
        return rdx_cli_usage(cmd, "--config is required");
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_transport_config *cfg = NULL;
    if (rdx_transport_config_load(config, &cfg, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_logger log = {log_stderr, NULL, verbose ? RDX_LOG_DEBUG : RDX_LOG_INFO};
    rdx_transport_node *node = NULL;
    rdx_hub_dispatcher *disp = NULL;
    pthread_t disp_thread;
    int disp_running = 0;
    int rc = RDX_EXIT_OK;
    if (rdx_transport_node_new(cfg, &log, &node, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (ready != NULL) {
        /* Bound: publish the port, then take the peers' ports once all are known. */
        char portp[4200], txt[32];
        int len = snprintf(txt, sizeof txt, "%u\n", rdx_transport_node_port(node));
        if (snprintf(portp, sizeof portp, "%s/node.port", rdx_transport_config_data_dir(cfg)) >=
                (int)sizeof portp ||
            rdx_file_write_atomic(portp, txt, (size_t)len, &err) != RDX_OK) {
            rc = err.msg[0] ? rdx_cli_fail_err(cmd, &err)
                            : rdx_cli_fail(cmd, "%s: data path too long", config);
            goto out;
        }
        if (!await_file(ready)) {
            rc = rdx_cli_fail(cmd, "%s: not there after 60 s; the peers' ports are unknown", ready);
            goto out;
        }
        if (rdx_transport_config_reload_peers(cfg, &err) != RDX_OK) {
            rc = rdx_cli_fail_err(cmd, &err);
            goto out;
        }
    }
    if (rdx_hub_dispatcher_new(cfg, &log, &disp, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
        goto out;
    }
    if (disp != NULL) {
        /* [dispatch]: this node also processes its inbox (the hub). */
        if (pthread_create(&disp_thread, NULL, rdx_hub_dispatcher_thread, disp) != 0) {
            rc = rdx_cli_fail(cmd, "cannot start the dispatcher thread");
            goto out;
        }
        disp_running = 1;
    }
    if (rdx_transport_node_run(node, 1, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
    }
out:
    if (disp_running) {
        rdx_hub_dispatcher_stop(disp);
        pthread_join(disp_thread, NULL);
    }
    rdx_hub_dispatcher_free(disp);
    rdx_transport_node_free(node);
    rdx_transport_config_free(cfg);
    return rc;
}

static int print_record(void *u, const rdx_transport_audit_record *r)
{
    int json = *(int *)u;
    char ts[32];
    rdx_tp_cli_time(ts, sizeof ts, (long long)(r->time_ms / 1000));
    if (json) {
        printf("%s{\"seq\":%lld,\"time\":\"%s\",\"time_ms\":%lld,\"event\":\"%s\","
               "\"outcome\":%d,\"node\":\"%s\",\"institution\":\"%s\",\"object\":",
               r->seq == 1 ? "" : ",", r->seq, ts, (long long)r->time_ms, r->event, r->outcome,
               r->node, r->institution);
        rdx_tp_cli_json_str(stdout, r->object);
        printf(",\"detail\":");
        rdx_tp_cli_json_str(stdout, r->detail);
        printf(",\"hash\":\"%s\"}", r->hash);
    } else {
        const char *oc = r->outcome == 0 ? "ok" : r->outcome == 4 ? "minor" : "FAIL";
        printf("%6lld %s %-5s %-20s %-12s %-34s %s\n", r->seq, ts, oc, r->event,
               r->institution[0] ? r->institution : "-", r->object[0] ? r->object : "-", r->detail);
    }
    return 0;
}

static const char AUDIT_USAGE[] =
    "Print the node's audit log (every connection accepted or refused, every\n"
    "case queued, received, acknowledged, refused, fetched or dead-lettered),\n"
    "one record a line: sequence, time, outcome, event, institution, object,\n"
    "detail. With --verify, check the SHA-256 hash chain instead and name the\n"
    "first broken record (exit 1).\n";

int rdx_tp_cli_audit(const char *cmd, int argc, char **argv)
{
    const char *config = NULL;
    int json = 0, verify = 0;
    for (int i = 1; i < argc; i++) {
        if (rdx_cli_is_help(argv[i])) {
            printf("Usage: rdx %s --config FILE [--verify] [--json]\n\n", cmd);
            fputs(AUDIT_USAGE, stdout);
            return RDX_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(argv[i], "--verify") == 0) {
            verify = 1;
            continue;
        }
        int hit = rdx_tp_cli_opt(argc, argv, &i, "--config", &config, cmd);
        if (hit < 0) {
            return RDX_EXIT_USAGE;
        }
        if (hit == 0) {
            return rdx_cli_usage(cmd, "unknown argument '%s'", argv[i]);
        }
    }
    if (config == NULL) {
        return rdx_cli_usage(cmd, "--config is required");
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_transport_config *cfg = NULL;
    if (rdx_transport_config_load(config, &cfg, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_status st;
    if (verify) {
        long long n = 0, bad = 0;
        st = rdx_transport_audit_verify(cfg, &n, &bad, &err);
        if (st == RDX_OK) {
            if (json) {
                printf("{\"ok\":true,\"records\":%lld}\n", n);
            } else {
                printf("audit chain intact: %lld records\n", n);
            }
        } else if (json && st == RDX_ECHECKSUM) {
            printf("{\"ok\":false,\"first_bad\":%lld,\"error\":", bad);
            rdx_tp_cli_json_str(stdout, err.msg);
            printf("}\n");
        }
    } else {
        if (json) {
            printf("[");
        }
        st = rdx_transport_audit_list(cfg, print_record, &json, &err);
        if (json) {
            printf("]\n");
        }
    }
    rdx_transport_config_free(cfg);
    return st == RDX_OK ? RDX_EXIT_OK : rdx_cli_fail_err(cmd, &err);
}

static int node_audit(int argc, char **argv)
{
    return rdx_tp_cli_audit("node audit", argc, argv);
}

static const struct rdx_cli_verb verbs[] = {
    {"serve", "run the node: mutual-TLS server, durable inbox, outbox delivery", node_serve},
    {"audit", "print the node's audit log, or --verify its hash chain", node_audit},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_node = {
    .name = "node",
    .summary = "Run an institution's transport node",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
