/* Entry points of the rdx ecg verbs, registered in cmd_ecg.c. */
#ifndef RDX_CLI_ECG_VERBS_H
#define RDX_CLI_ECG_VERBS_H

/* cli/ecg_io.c */
/* rdx ecg eval: beat-by-beat scoring of QRS annotations (EC57, bxb rules). */
int rdx_cli_ecg_eval(int argc, char **argv);

/* cli/ecg_detect.c */
/* rdx ecg detect: streaming QRS detection, MIT annotations, rhythm summary. */
int rdx_cli_ecg_detect(int argc, char **argv);
/* rdx ecg filter: linear-phase FIR conditioning into a format-16 record. */
int rdx_cli_ecg_filter(int argc, char **argv);
/* rdx ecg plot: SVG strip on ECG paper with QRS marks and RR labels. */
int rdx_cli_ecg_plot(int argc, char **argv);

#endif
