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

void rdx_cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
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
            /* RFC 8259 section 7: control characters must be escaped; the
             * rest of UTF-8 passes through unchanged. */
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
