/*
 * libFuzzer target: the Specific Character Set decoder (imaging/charset.c).
 * The first line of the input is the (0008,0005) value, the rest the text
 * value; the output must be valid UTF-8 whatever the bytes. The display
 * width (rdx_img_text_width) of the raw bytes and of the decoded text is
 * never more than their length in bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../imaging/dicom.h"
#include "rdx/imaging.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 80 ? size : 80);
    size_t cl = nl != NULL ? (size_t)(nl - data) : 0;
    char cs[81];
    memcpy(cs, data, cl);
    cs[cl] = '\0';
    const uint8_t *v = nl != NULL ? nl + 1 : data;
    size_t vn = size - (size_t)(v - data);
    uint8_t *copy = malloc(vn + 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, v, vn);
    copy[vn] = '\0';
    if (rdx_img_text_width((const char *)copy) > strlen((const char *)copy)) {
        abort();
    }
    rdx_buf out;
    rdx_buf_init(&out, 1 << 20);
    if (rdx_img_charset_decode(cs, copy, vn, "\\^=", &out) == RDX_OK &&
        !rdx_img_utf8_valid(out.data, out.len)) {
        abort(); /* the decoder promised UTF-8 */
    }
    if (rdx_buf_append_u8(&out, 0) == RDX_OK &&
        rdx_img_text_width((const char *)out.data) > strlen((const char *)out.data)) {
        abort();
    }
    rdx_buf_free(&out);
    free(copy);
    return 0;
}
