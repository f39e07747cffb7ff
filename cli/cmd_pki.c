/* rdx pki: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_pki = {
    .name = "pki",
    .summary = "Network PKI: the CA and institution certificates",
    .verbs = NULL,
    .nverbs = 0,
};
