/*
 * Growable byte buffer with a hard cap fixed at init, after curl's dynbuf:
 * hostile input can make it grow only up to the cap its owner chose.
 */
#include "rdx/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rdx_buf_init(rdx_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void rdx_buf_free(rdx_buf *b)
{
    if (b == NULL) {
        return;
    }
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void rdx_buf_reset(rdx_buf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

rdx_status rdx_buf_reserve(rdx_buf *b, size_t n)
{
    size_t need;
    if (!rdx_add_ok(b->len, n, &need) || need > b->max) {
        return RDX_ELIMIT;
    }
    if (need <= b->cap && b->data != NULL) {
        return RDX_OK;
    }
    /* Double to keep appends amortised O(1), but never past the cap. */
    size_t newcap = b->cap ? b->cap : 64;
    while (newcap < need) {
        if (newcap > b->max / 2) {
            newcap = b->max;
            break;
        }
        newcap *= 2;
    }
    if (newcap > b->max) {
        newcap = b->max;
    }
    size_t alloc;
    if (!rdx_add_ok(newcap, 1, &alloc)) {
        return RDX_ENOMEM;
    }
    uint8_t *p = realloc(b->data, alloc);
    if (p == NULL) {
        return RDX_ENOMEM;
    }
    b->data = p;
    b->cap = newcap;
    b->data[b->len] = '\0';
    return RDX_OK;
}

rdx_status rdx_buf_append(rdx_buf *b, const void *p, size_t n)
{
    RDX_TRY(rdx_buf_reserve(b, n));
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return RDX_OK;
}

rdx_status rdx_buf_append_str(rdx_buf *b, const char *s)
{
    return rdx_buf_append(b, s, strlen(s));
}

rdx_status rdx_buf_append_u8(rdx_buf *b, uint8_t v)
{
    return rdx_buf_append(b, &v, 1);
}

rdx_status rdx_buf_printf(rdx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return RDX_EINVAL;
    }
    RDX_TRY(rdx_buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return RDX_OK;
}

uint8_t *rdx_buf_take(rdx_buf *b, size_t *len_out)
{
    uint8_t *p = b->data;
    if (len_out != NULL) {
        *len_out = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
