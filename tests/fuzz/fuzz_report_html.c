/*
 * libFuzzer target: the HTML-to-text conversion of report files added with
 * rdx img report add (tags, script/style bodies, character references).
 * The output must stay within its cap and be produced without reading past
 * the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../imaging/imaging_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the end. */
    char *p = malloc(size > 0 ? size : 1);
    if (p == NULL) {
        return 0;
    }
    memcpy(p, data, size);
    rdx_buf out;
    rdx_buf_init(&out, 1 << 20);
    (void)img_html_to_text(p, size, &out);
    rdx_buf_free(&out);
    free(p);
    return 0;
}
