/* Shared helpers for verbs: uniform error and usage messages. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vreport(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "rdx %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int rdx_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'rdx %s --help'.\n", cmd);
    return RDX_EXIT_USAGE;
}

int rdx_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return RDX_EXIT_FAIL;
}

int rdx_cli_fail_err(const char *cmd, const rdx_error *err)
{
    if (err->msg[0] != '\0') {
        return rdx_cli_fail(cmd, "%s", err->msg);
    }
    return rdx_cli_fail(cmd, "%s", rdx_strerror(err->code));
}

int rdx_cli_is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}
