/* Entry points of the rdx ecg verbs, registered in cmd_ecg.c. */
#ifndef RDX_CLI_ECG_VERBS_H
#define RDX_CLI_ECG_VERBS_H

/* cli/ecg_io.c */
/* rdx ecg eval: beat-by-beat scoring of QRS annotations (EC57, bxb rules). */
int rdx_cli_ecg_eval(int argc, char **argv);

/* cli/ecg_detect.c */
/* rdx ecg detect: streaming QRS detection, MIT annotations, rhythm summary. */
int rdx_cli_ecg_detect(int argc, char **argv);

#endif
