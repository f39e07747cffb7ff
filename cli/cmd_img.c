/* rdx img: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_img = {
    .name = "img",
    .summary = "DICOM image index: index studies and query them",
    .verbs = NULL,
    .nverbs = 0,
};
