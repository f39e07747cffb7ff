/* rdx node: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_node = {
    .name = "node",
    .summary = "Run an institution's transport node",
    .verbs = NULL,
    .nverbs = 0,
};
