/*
 * Helpers shared by the transport verbs (pki, node, case, network, audit):
 * option values, times, JSON. Their options are read with rdx_cli_parse_opts_v2
 * (cli.h), which also takes "--name=VALUE".
 */
#ifndef RDX_TP_CLI_H
#define RDX_TP_CLI_H

#include <stdio.h>

/* Parse an integer option value in [min, max]; -1 after a usage message when it is not. */
int rdx_tp_cli_int(const char *s, long min, long max, long *out, const char *opt, const char *cmd);

/* Write s as a JSON string literal (quotes, escapes) to f. */
void rdx_tp_cli_json_str(FILE *f, const char *s);

/* Format Unix seconds as an RFC 3339 UTC time ("2026-12-01T08:00:00Z"). */
void rdx_tp_cli_time(char *out, size_t outsz, long long unix_s);

/*
 * `rdx node audit` and `rdx audit show --config`, once their options are
 * read: print the audit log of the node config names (NULL: a usage error,
 * "--config is required"), or with verify check its chain instead; json
 * for JSON. cmd names the verb in messages. Returns the exit code.
 */
int rdx_tp_cli_audit_print(const char *cmd, const char *config, int verify, int json);

#endif
