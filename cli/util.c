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

static const rdx_cli_opt *find_opt(const rdx_cli_opt *opts, const char *name, size_t len)
{
    for (; opts->name != NULL; opts++) {
        if (strlen(opts->name) == len && memcmp(opts->name, name, len) == 0) {
            return opts;
        }
    }
    return NULL;
}

/* How many arguments follow option o. */
static int opt_values(const rdx_cli_opt *o)
{
    return o == NULL || o->value == NULL ? 0 : o->value2 != NULL ? 2 : 1;
}

static int is_operand(const char *a)
{
    return a[0] != '-' || a[1] == '\0';
}

/*
 * The option argument a names, or NULL. With RDX_CLI_EQUALS, "NAME=VALUE"
 * names an option with one value, and *inline_val points at VALUE.
 */
static const rdx_cli_opt *lookup(const rdx_cli_opt *opts, unsigned flags, const char *a,
                                 const char **inline_val)
{
    *inline_val = NULL;
    const rdx_cli_opt *o = find_opt(opts, a, strlen(a));
    const char *eq = strchr(a, '=');
    if (o != NULL || (flags & RDX_CLI_EQUALS) == 0 || eq == NULL) {
        return o;
    }
    o = find_opt(opts, a, (size_t)(eq - a));
    if (o == NULL || opt_values(o) != 1) {
        return NULL;
    }
    *inline_val = eq + 1;
    return o;
}

static int parse(const char *cmd, int argc, char **argv, const rdx_cli_opt *opts, unsigned flags,
                 void (*usage_fn)(FILE *f), const char *usage, int *nops)
{
    const char *inl;
    /* --help first: it wins over any error elsewhere on the line. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (rdx_cli_is_help(argv[i])) {
            if (usage_fn != NULL) {
                usage_fn(stdout);
            } else {
                fputs(usage, stdout);
            }
            return RDX_EXIT_OK;
        }
        if (!is_operand(argv[i])) {
            const rdx_cli_opt *o = lookup(opts, flags, argv[i], &inl);
            i += inl != NULL ? 0 : opt_values(o);
        }
    }
    int np = 0, dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dashdash || is_operand(a)) {
            if (flags & RDX_CLI_NO_OPERANDS) {
                return rdx_cli_usage(cmd, "unknown argument '%s'", a);
            }
            argv[1 + np++] = argv[i]; /* never ahead of i: the move is safe */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dashdash = 1;
            continue;
        }
        const rdx_cli_opt *o = lookup(opts, flags, a, &inl);
        if (o == NULL) {
            return rdx_cli_usage(cmd, "unknown option '%s'", a);
        }
        int nv = opt_values(o);
        if (nv == 0) {
            *o->flag = o->set != 0 ? o->set : 1;
            continue;
        }
        if (inl != NULL) {
            *o->value = inl;
            continue;
        }
        if (i + nv >= argc) {
            return rdx_cli_usage(cmd, "%s needs %s", a, o->needs != NULL ? o->needs : "a value");
        }
        *o->value = argv[++i];
        if (nv == 2) {
            *o->value2 = argv[++i];
        }
    }
    *nops = np;
    return RDX_CLI_GO;
}

int rdx_cli_parse_opts(const char *cmd, int argc, char **argv, const rdx_cli_opt *opts,
                       void (*usage)(FILE *f), int *nops)
{
    return parse(cmd, argc, argv, opts, 0, usage, NULL, nops);
}

int rdx_cli_parse_opts_v2(const char *cmd, int argc, char **argv, const rdx_cli_opt *opts,
                          unsigned flags, const char *usage, int *nops)
{
    return parse(cmd, argc, argv, opts, flags, NULL, usage, nops);
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
