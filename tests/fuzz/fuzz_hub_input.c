/*
 * libFuzzer target for what members send the hub's dispatcher: request.txt
 * custody.tsv and a CSV ECG's ecg.ini (hub/input.c). Whatever the bytes, a UID accepted is digits
 * and dots only, and every custody field accepted is a safe argument: never
 * empty, never starting with '-', only [A-Za-z0-9.+_-].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int safe(const char *s)
{
    if (s[0] == '\0' || s[0] == '-' || strlen(s) > 64) {
        return 0;
    }
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.+_-") ==
           strlen(s);
}

static rdx_status check(void *u, const rdx_hub_custody_scan *sc)
{
    (void)u;
    if (!safe(sc->barcode) || !safe(sc->event) || !safe(sc->at) ||
        (sc->condition[0] != '\0' && !safe(sc->condition))) {
        abort();
    }
    return RDX_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char uid[65];
    rdx_error err;
    size_t n = 0;
    if (rdx_hub_request_parse(data, size, uid, &err) == RDX_OK) {
        size_t l = strlen(uid);
        if (l == 0 || l > 64 || strspn(uid, "0123456789.") != l || uid[0] == '.' ||
            uid[l - 1] == '.' || strstr(uid, "..") != NULL) {
            abort();
        }
    }
    (void)rdx_hub_custody_parse(data, size, check, NULL, &n, &err);
    double fs = 0.0;
    if (rdx_hub_ecg_meta_parse(data, size, &fs, &err) == RDX_OK && !(fs > 0.0 && fs <= 100000.0)) {
        abort(); /* a rate accepted is always a usable --fs */
    }
    return 0;
}
