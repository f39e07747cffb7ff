/* rdx lab: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_lab = {
    .name = "lab",
    .summary = "Lab orders: HL7 v2, routing to member labs, specimen custody",
    .verbs = NULL,
    .nverbs = 0,
};
