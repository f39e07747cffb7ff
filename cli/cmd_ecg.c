/* rdx ecg: verbs are registered here as they become real. */
#include "cli.h"
#include "ecg_verbs.h"

static const struct rdx_cli_verb verbs[] = {
    /* record and scoring verbs (cli/ecg_io.c) */
    {"eval", "score QRS annotations beat by beat against a reference (EC57, bxb)",
     rdx_cli_ecg_eval},
    /* detection, filter and plot verbs (cli/ecg_detect.c) */
    {"detect", "find the QRS complexes of records and write MIT annotation files",
     rdx_cli_ecg_detect},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_ecg = {
    .name = "ecg",
    .summary = "ECG traces: QRS detection, filtering, scoring, strip plots",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
