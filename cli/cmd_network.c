/* rdx network: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_network = {
    .name = "network",
    .summary = "The four-city network on one machine (demo and tests)",
    .verbs = NULL,
    .nverbs = 0,
};
