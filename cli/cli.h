/*
 * cli.h - the rdx command's verb registry and shared helpers.
 *
 * Each engine registers its verbs in its own cli/cmd_<group>.c by defining one
 * struct rdx_cli_group. A group with no verbs is not listed: a verb appears in
 * `rdx --help` only once it really works.
 *
 * Exit codes (the contract in docs/ARCHITECTURE.md): 0 success, 1 bad input or
 * a failure while running (with a message naming the file and the problem on
 * stderr), 2 usage error.
 */
#ifndef RDX_CLI_H
#define RDX_CLI_H

#include "rdx/common.h"

#include <stddef.h>
#include <stdio.h>

enum { RDX_EXIT_OK = 0, RDX_EXIT_FAIL = 1, RDX_EXIT_USAGE = 2 };

/* A verb's entry point. argv[0] is the verb's own name ("detect"). */
typedef int (*rdx_cli_fn)(int argc, char **argv);

struct rdx_cli_verb {
    const char *name;
    const char *summary; /* one line for `rdx GROUP --help` */
    rdx_cli_fn run;
};

struct rdx_cli_group {
    const char *name;    /* "ecg" */
    const char *summary; /* one line for `rdx --help` */
    const struct rdx_cli_verb *verbs;
    size_t nverbs;
};

extern const struct rdx_cli_group rdx_cli_group_ecg;
extern const struct rdx_cli_group rdx_cli_group_img;
extern const struct rdx_cli_group rdx_cli_group_lab;
extern const struct rdx_cli_group rdx_cli_group_pki;
extern const struct rdx_cli_group rdx_cli_group_node;
extern const struct rdx_cli_group rdx_cli_group_case;
extern const struct rdx_cli_group rdx_cli_group_network;
extern const struct rdx_cli_group rdx_cli_group_audit;

/*
 * Print "rdx GROUP VERB: message" to stderr, then a hint to use --help, and
 * return RDX_EXIT_USAGE. cmd is "ecg detect".
 */
int rdx_cli_usage(const char *cmd, const char *fmt, ...) RDX_PRINTF(2, 3);

/* Print "rdx GROUP VERB: message" to stderr and return RDX_EXIT_FAIL. */
int rdx_cli_fail(const char *cmd, const char *fmt, ...) RDX_PRINTF(2, 3);

/* Print err's message (or its status name) as rdx_cli_fail does. */
int rdx_cli_fail_err(const char *cmd, const rdx_error *err);

/* Write s (UTF-8; NULL is written as "") to f as a JSON string literal. */
void rdx_cli_json_str(FILE *f, const char *s);

/* Nonzero when s is "--help" or "-h". */
int rdx_cli_is_help(const char *s);

/* One option of a verb, for rdx_cli_parse_opts; a table ends with name NULL. */
typedef struct rdx_cli_opt {
    const char *name;    /* "--db", "-o" */
    const char **value;  /* an option with a value: where it goes (the last given wins) */
    int *flag;           /* a flag (value NULL): *flag = set (1 when set is 0) */
    const char **value2; /* a second value ("--order SENDER CONTROL"), else NULL */
    const char *needs;   /* the values, for "NAME needs ...": NULL means "a value" */
    int set;             /* see RDX_CLI_SET */
} rdx_cli_opt;

/*
 * Table entries: an option with a value, a flag, a flag storing v (several
 * flags into one int: the last given wins, "--outbox" 1, "--inbox" 2), an
 * option with two values, the end.
 */
#define RDX_CLI_VALUE(name, dst)                                                                   \
    {                                                                                              \
        (name), (dst), NULL, NULL, NULL, 0                                                         \
    }
#define RDX_CLI_FLAG(name, dst)                                                                    \
    {                                                                                              \
        (name), NULL, (dst), NULL, NULL, 1                                                         \
    }
#define RDX_CLI_SET(name, dst, v)                                                                  \
    {                                                                                              \
        (name), NULL, (dst), NULL, NULL, (v)                                                       \
    }
#define RDX_CLI_VALUE2(name, dst, dst2, what)                                                      \
    {                                                                                              \
        (name), (dst), NULL, (dst2), (what), 0                                                     \
    }
#define RDX_CLI_END                                                                                \
    {                                                                                              \
        NULL, NULL, NULL, NULL, NULL, 0                                                            \
    }

/* rdx_cli_parse_opts: the options are read, go on with the verb. */
#define RDX_CLI_GO (-1)

/*
 * Read a verb's argv[1..argc) against opts, as every verb does: options in
 * any order and between operands, "--" ends the options, "-" alone is an
 * operand. The operands are moved, in order, to argv[1..*nops] (argv is
 * modified; the strings are not). "--help" or "-h" where an option may stand
 * prints usage(stdout) and wins over any error.
 * Returns RDX_CLI_GO, or the exit code the verb must return: RDX_EXIT_OK
 * after --help, RDX_EXIT_USAGE after an unknown option or a missing value
 * (reported with rdx_cli_usage: "unknown option '--x'", "--db needs a value").
 * Values are not checked: that is the verb's part. Not thread-safe (argv).
 */
int rdx_cli_parse_opts(const char *cmd, int argc, char **argv, const rdx_cli_opt *opts,
                       void (*usage)(FILE *f), int *nops);

/* rdx_cli_parse_opts_v2 flags. */
enum {
    /* "NAME=VALUE" is read as "NAME VALUE" for an option with one value ("--config=node.ini"). */
    RDX_CLI_EQUALS = 1u << 0,
    /* The verb takes no operands: one is a usage error, "unknown argument 'X'". */
    RDX_CLI_NO_OPERANDS = 1u << 1,
};

/*
 * rdx_cli_parse_opts with flags (RDX_CLI_EQUALS, RDX_CLI_NO_OPERANDS; 0 reads
 * as rdx_cli_parse_opts does) and the usage as text: --help writes usage
 * (non-NULL) to stdout. The rest is as rdx_cli_parse_opts: operands moved to
 * argv[1..*nops], RDX_CLI_GO or the exit code to return. Not thread-safe (argv).
 */
int rdx_cli_parse_opts_v2(const char *cmd, int argc, char **argv, const rdx_cli_opt *opts,
                          unsigned flags, const char *usage, int *nops);

#endif /* RDX_CLI_H */
