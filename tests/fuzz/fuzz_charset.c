/*
 * libFuzzer target: the Specific Character Set decoder (imaging/charset.c).
 * The first line of the input is the (0008,0005) value, the rest the text
 * value; the output must be valid UTF-8 whatever the bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../imaging/dicom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 80 ? size : 80);
    size_t cl = nl != NULL ? (size_t)(nl - data) : 0;
    char cs[81];
    memcpy(cs, data, cl);
    cs[cl] = '\0';
    const uint8_t *v = nl != NULL ? nl + 1 : data;
    size_t vn = size - (size_t)(v - data);
    uint8_t *copy = malloc(vn > 0 ? vn : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, v, vn);
    rdx_buf out;
    rdx_buf_init(&out, 1 << 20);
    if (rdx_img_charset_decode(cs, copy, vn, "\\^=", &out) == RDX_OK &&
        !rdx_img_utf8_valid(out.data, out.len)) {
        abort(); /* the decoder promised UTF-8 */
    }
    rdx_buf_free(&out);
    free(copy);
    return 0;
}
