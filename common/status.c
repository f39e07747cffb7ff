/* Status names and error buffers. */
#include "rdx/common.h"

#include <stdio.h>
#include <string.h>

const char *rdx_version(void)
{
    return RDX_VERSION;
}

const char *rdx_strerror(rdx_status st)
{
    switch (st) {
    case RDX_OK:
        return "success";
    case RDX_EINVAL:
        return "invalid argument";
    case RDX_EPARSE:
        return "malformed input";
    case RDX_EFORMAT:
        return "unsupported format";
    case RDX_ECHECKSUM:
        return "checksum mismatch";
    case RDX_ESHORT:
        return "input truncated";
    case RDX_ERANGE:
        return "value out of range";
    case RDX_ELIMIT:
        return "limit exceeded";
    case RDX_ENOMEM:
        return "out of memory";
    case RDX_EBUSY:
        return "resource busy";
    case RDX_ETIMEOUT:
        return "timed out";
    case RDX_ECAPACITY:
        return "no capacity left";
    case RDX_EIO:
        return "input/output error";
    case RDX_ENOENT:
        return "no such file";
    case RDX_EEXIST:
        return "already exists";
    case RDX_EDB:
        return "database error";
    case RDX_ENETWORK:
        return "network error";
    case RDX_EAUTH:
        return "authentication failed";
    case RDX_EDENIED:
        return "permission denied";
    case RDX_ESTATE:
        return "not allowed in this state";
    case RDX_EDUPLICATE:
        return "duplicate";
    case RDX_ENOTFOUND:
        return "not found";
    case RDX_EPROTO:
        return "protocol error";
    case RDX_EINTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}

int rdx_status_is_input(rdx_status st)
{
    return st < 0 && st >= -39;
}

void rdx_error_clear(rdx_error *err)
{
    if (err == NULL) {
        return;
    }
    err->code = RDX_OK;
    err->msg[0] = '\0';
}

rdx_status rdx_error_setv(rdx_error *err, rdx_status code, const char *fmt, va_list ap)
{
    if (err == NULL) {
        return code;
    }
    err->code = code;
    if (fmt == NULL) {
        snprintf(err->msg, sizeof err->msg, "%s", rdx_strerror(code));
        return code;
    }
    /* vsnprintf truncates safely; a negative return leaves an empty message. */
    if (vsnprintf(err->msg, sizeof err->msg, fmt, ap) < 0) {
        err->msg[0] = '\0';
    }
    return code;
}

rdx_status rdx_error_set(rdx_error *err, rdx_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rdx_status st = rdx_error_setv(err, code, fmt, ap);
    va_end(ap);
    return st;
}

void rdx_error_prefix(rdx_error *err, const char *fmt, ...)
{
    char prefix[RDX_ERROR_MSG_MAX];
    char old[RDX_ERROR_MSG_MAX];
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation is intended: the message keeps its start, prefix first. */
    size_t plen = strlen(prefix);
    size_t olen = strlen(old);
    size_t room = sizeof err->msg - 1;
    if (plen > room) {
        plen = room;
    }
    if (olen > room - plen) {
        olen = room - plen;
    }
    memcpy(err->msg, prefix, plen);
    memcpy(err->msg + plen, old, olen);
    err->msg[plen + olen] = '\0';
}
