/* Overflow-checked allocation: every count * size in rdx goes through here. */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include "rdx/common.h"

#include <stdlib.h>
#include <string.h>

int rdx_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

int rdx_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

void *rdx_mallocarray(size_t n, size_t size)
{
    size_t total;
    if (!rdx_mul_ok(n, size, &total)) {
        return NULL;
    }
    /* malloc(0) may return NULL, which callers would read as failure. */
    return malloc(total ? total : 1);
}

void *rdx_callocarray(size_t n, size_t size)
{
    size_t total;
    if (!rdx_mul_ok(n, size, &total)) {
        return NULL;
    }
    return calloc(total ? n : 1, total ? size : 1);
}

void *rdx_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (!rdx_mul_ok(n, size, &total)) {
        return NULL;
    }
    return realloc(p, total ? total : 1);
}

char *rdx_strndup(const char *s, size_t n)
{
    size_t len = 0;
    while (len < n && s[len] != '\0') {
        len++;
    }
    char *d = malloc(len + 1);
    if (d == NULL) {
        return NULL;
    }
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void rdx_secure_zero(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        explicit_bzero(p, n);
    }
}
