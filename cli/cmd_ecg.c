/* rdx ecg: verbs are registered here as they become real. */
#include "cli.h"

const struct rdx_cli_group rdx_cli_group_ecg = {
    .name = "ecg",
    .summary = "ECG traces: QRS detection, filtering, scoring, strip plots",
    .verbs = NULL,
    .nverbs = 0,
};
