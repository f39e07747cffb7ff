/*
 * Strict number parsing for untrusted text (replaces atoi/sscanf, which
 * silently accept garbage and overflow): the whole span must be a number.
 */
#include "rdx/common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

rdx_status rdx_parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;

    if (s == NULL || n == 0) {
        return RDX_EPARSE;
    }
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n) {
        return RDX_EPARSE;
    }
    int overflow = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) {
            return RDX_EPARSE;
        }
        if (v > (UINT64_MAX - d) / 10) {
            overflow = 1; /* keep scanning so "12x" still reports EPARSE */
        } else {
            v = v * 10 + d;
        }
    }
    if (overflow) {
        return RDX_ERANGE;
    }
    int64_t r;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return RDX_ERANGE;
        }
        r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return RDX_ERANGE;
        }
        r = (int64_t)v;
    }
    if (r < min || r > max) {
        return RDX_ERANGE;
    }
    *out = r;
    return RDX_OK;
}

rdx_status rdx_parse_double(const char *s, size_t n, double *out)
{
    char tmp[64];
    char *end = NULL;

    if (s == NULL || n == 0 || n >= sizeof tmp) {
        return RDX_EPARSE;
    }
    /* strtod needs a terminated string and accepts leading spaces, hex,
     * "inf" and "nan"; reject all of those for input data. */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')) {
            return RDX_EPARSE;
        }
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + n) {
        return RDX_EPARSE;
    }
    if (errno == ERANGE || !isfinite(v)) {
        return RDX_ERANGE;
    }
    *out = v;
    return RDX_OK;
}
