/* rdx case: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_case = {
    .name = "case",
    .summary = "Send, track and fetch cases between institutions",
    .verbs = NULL,
    .nverbs = 0,
};
