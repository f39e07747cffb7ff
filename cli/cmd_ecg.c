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
    {"filter", "condition a record (baseline, mains, low-pass) into a WFDB format-16 copy",
     rdx_cli_ecg_filter},
    {"plot", "draw an ECG strip (SVG: paper grid, every lead, QRS marks and RR)", rdx_cli_ecg_plot},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_ecg = {
    .name = "ecg",
    .summary = "ECG traces: QRS detection, filtering, scoring, strip plots",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
