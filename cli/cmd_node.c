/* rdx node: run an institution's transport node. */
#include "cli.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <stdio.h>
#include <string.h>
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
    "Usage: rdx node serve --config FILE [--verbose]\n\n"
    "Run this institution's node as FILE describes (see 'rdx case --help' and\n"
    "README.md, section Transport): accept cases from member institutions over\n"
    "TLS 1.3 with client certificates checked against the network CA and CRL,\n"
    "store them durably in the data directory, and deliver the outbox to peers.\n"
    "Logs go to stderr, one line per event; the bound port is written to\n"
    "DATA/node.port. SIGINT or SIGTERM stops it cleanly.\n";

static int node_serve(int argc, char **argv)
{
    const char *cmd = "node serve";
    const char *config = NULL;
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
    int rc = RDX_EXIT_OK;
    if (rdx_transport_node_new(cfg, &log, &node, &err) != RDX_OK ||
        rdx_transport_node_run(node, 1, &err) != RDX_OK) {
        rc = rdx_cli_fail_err(cmd, &err);
    }
    rdx_transport_node_free(node);
    rdx_transport_config_free(cfg);
    return rc;
}

static const struct rdx_cli_verb verbs[] = {
    {"serve", "run the node: mutual-TLS server, durable inbox, outbox delivery", node_serve},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_node = {
    .name = "node",
    .summary = "Run an institution's transport node",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
