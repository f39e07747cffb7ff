/* Logging through a caller-supplied sink; libraries never print on their own. */
#include "rdx/common.h"

#include <stdio.h>

const char *rdx_log_level_name(rdx_log_level level)
{
    switch (level) {
    case RDX_LOG_DEBUG:
        return "debug";
    case RDX_LOG_INFO:
        return "info";
    case RDX_LOG_WARN:
        return "warn";
    case RDX_LOG_ERROR:
        return "error";
    default:
        return "?";
    }
}

void rdx_log(const rdx_logger *lg, rdx_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (lg == NULL || lg->fn == NULL || level < lg->min_level) {
        return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    lg->fn(lg->user, level, msg);
}
