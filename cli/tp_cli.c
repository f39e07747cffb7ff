/* Option value, time and JSON helpers shared by the transport verbs. */
#define _POSIX_C_SOURCE 200809L
#include "tp_cli.h"
#include "cli.h"

#include <string.h>
#include <time.h>

int rdx_tp_cli_int(const char *s, long min, long max, long *out, const char *opt, const char *cmd)
{
    int64_t v;
    if (rdx_parse_i64(s, strlen(s), min, max, &v) != RDX_OK) {
        rdx_cli_usage(cmd, "%s '%s': want a whole number from %ld to %ld", opt, s, min, max);
        return -1;
    }
    *out = (long)v;
    return 0;
}

void rdx_tp_cli_json_str(FILE *f, const char *s)
{
    rdx_cli_json_str(f, s);
}

void rdx_tp_cli_time(char *out, size_t outsz, long long unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outsz, "%lld", unix_s);
    }
}
