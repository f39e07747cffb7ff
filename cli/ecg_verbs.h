/* Entry points of the rdx ecg verbs, registered in cmd_ecg.c. */
#ifndef RDX_CLI_ECG_VERBS_H
#define RDX_CLI_ECG_VERBS_H

/* cli/ecg_io.c */

/* cli/ecg_detect.c */

#endif
