/* libFuzzer target: the WFDB header (.hea) parser on arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../ecg/ecg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ecg_header h;
    rdx_error err;
    if (ecg_header_parse((const char *)data, size, "fuzz.hea", &h, &err) == RDX_OK) {
        /* Touch what a caller would use, so the sanitizers see bad pointers. */
        size_t n = 0;
        for (size_t i = 0; i < h.info.nsig; i++) {
            n += strlen(h.info.sig[i].file_name) + strlen(h.info.sig[i].units) +
                 strlen(h.info.sig[i].description);
            if (h.group_of[i] >= h.ngroups) {
                __builtin_trap();
            }
        }
        for (size_t i = 0; i < h.info.ncomments; i++) {
            n += strlen(h.info.comments[i]);
        }
        (void)n;
        ecg_header_free(&h);
    } else if (err.msg[0] == '\0') {
        __builtin_trap(); /* every failure must say what is wrong */
    }
    return 0;
}
