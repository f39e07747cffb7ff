/* The rdx command: dispatch `rdx GROUP VERB ...` to the registered verbs. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct rdx_cli_group *const groups[] = {
    &rdx_cli_group_ecg,  &rdx_cli_group_img,  &rdx_cli_group_lab,     &rdx_cli_group_pki,
    &rdx_cli_group_node, &rdx_cli_group_case, &rdx_cli_group_network, &rdx_cli_group_audit,
};
#define NGROUPS (sizeof groups / sizeof groups[0])

static void print_help(FILE *f)
{
    fprintf(f, "Usage: rdx GROUP VERB [OPTIONS] [ARGS]\n"
               "       rdx --help | --version\n\n"
               "rdx, the remote diagnosis exchange: ECG analysis, DICOM indexing, lab\n"
               "routing and secure case transport for a regional diagnosis network.\n\n"
               "Groups:\n");
    for (size_t i = 0; i < NGROUPS; i++) {
        if (groups[i]->nverbs == 0) {
            continue;
        }
        fprintf(f, "  %-10s %s\n", groups[i]->name, groups[i]->summary);
        for (size_t j = 0; j < groups[i]->nverbs; j++) {
            fprintf(f, "    %-10s %s\n", groups[i]->verbs[j].name, groups[i]->verbs[j].summary);
        }
    }
    fprintf(f, "\n'rdx GROUP VERB --help' describes a verb. Exit status: 0 success,\n"
               "1 bad input or failure (the message names the file and the problem),\n"
               "2 usage error.\n");
}

static void print_group_help(FILE *f, const struct rdx_cli_group *g)
{
    fprintf(f, "Usage: rdx %s VERB [OPTIONS] [ARGS]\n\n%s.\n\nVerbs:\n", g->name, g->summary);
    for (size_t j = 0; j < g->nverbs; j++) {
        fprintf(f, "  %-10s %s\n", g->verbs[j].name, g->verbs[j].summary);
    }
    fprintf(f, "\n'rdx %s VERB --help' describes a verb.\n", g->name);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return RDX_EXIT_USAGE;
    }
    if (rdx_cli_is_help(argv[1])) {
        print_help(stdout);
        return RDX_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("rdx %s\n", rdx_version());
        return RDX_EXIT_OK;
    }
    const struct rdx_cli_group *g = NULL;
    for (size_t i = 0; i < NGROUPS; i++) {
        if (groups[i]->nverbs > 0 && strcmp(groups[i]->name, argv[1]) == 0) {
            g = groups[i];
            break;
        }
    }
    if (g == NULL) {
        fprintf(stderr, "rdx: unknown command '%s'\nTry 'rdx --help'.\n", argv[1]);
        return RDX_EXIT_USAGE;
    }
    if (argc < 3) {
        print_group_help(stderr, g);
        return RDX_EXIT_USAGE;
    }
    if (rdx_cli_is_help(argv[2])) {
        print_group_help(stdout, g);
        return RDX_EXIT_OK;
    }
    for (size_t j = 0; j < g->nverbs; j++) {
        if (strcmp(g->verbs[j].name, argv[2]) == 0) {
            return g->verbs[j].run(argc - 2, argv + 2);
        }
    }
    fprintf(stderr, "rdx %s: unknown verb '%s'\nTry 'rdx %s --help'.\n", g->name, argv[2], g->name);
    return RDX_EXIT_USAGE;
}
