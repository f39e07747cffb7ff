/* Option parsing and JSON helpers shared by the transport verbs (pki, node, case). */
#ifndef RDX_TP_CLI_H
#define RDX_TP_CLI_H

#include <stdio.h>

/*
 * If argv[*i] is `name VALUE` or `name=VALUE`, set *val, advance *i past it
 * and return 1. Return -1 (after printing a usage error for cmd) when the
 * value is missing, 0 when argv[*i] is another option.
 */
int rdx_tp_cli_opt(int argc, char **argv, int *i, const char *name, const char **val,
                   const char *cmd);

/* Parse an integer option value in [min, max]; -1 after a usage message when it is not. */
int rdx_tp_cli_int(const char *s, long min, long max, long *out, const char *opt, const char *cmd);

/* Write s as a JSON string literal (quotes, escapes) to f. */
void rdx_tp_cli_json_str(FILE *f, const char *s);

/* Format Unix seconds as an RFC 3339 UTC time ("2026-12-01T08:00:00Z"). */
void rdx_tp_cli_time(char *out, size_t outsz, long long unix_s);

/*
 * `rdx node audit` and `rdx audit show`: print the audit log of the node
 * --config names, or --verify its chain. cmd names the verb in messages.
 */
int rdx_tp_cli_audit(const char *cmd, int argc, char **argv);

#endif
