/*
 * What member institutions send the dispatcher beside the engines' own
 * files: request.txt (a study request) and custody.tsv (chain-of-custody
 * scans). Both are untrusted bytes, read through a bounded cursor; every
 * field is checked before it becomes an argument of an engine verb.
 */
#include "hub_limits.h"
#include "rdx/hub.h"

#include <string.h>

/* One line of p[0..n) from *off (without its CR LF); 0 at the end. */
static int next_line(const uint8_t *p, size_t n, size_t *off, const uint8_t **line, size_t *len)
{
    if (*off >= n) {
        return 0;
    }
    size_t s = *off, e = s;
    while (e < n && p[e] != '\n') {
        e++;
    }
    *off = e < n ? e + 1 : e;
    while (e > s && p[e - 1] == '\r') {
        e--;
    }
    *line = p + s;
    *len = e - s;
    return 1;
}

rdx_status rdx_hub_request_parse(const uint8_t *p, size_t n, char uid[RDX_HUB_UID_MAX + 1],
                                 rdx_error *err)
{
    static const char KEY[] = "study-uid=";
    const size_t kl = sizeof KEY - 1;
    const uint8_t *line;
    size_t len, off = 0;
    unsigned lineno = 0;
    if (p == NULL && n > 0) {
        return rdx_error_set(err, RDX_EINVAL, "request.txt: no data");
    }
    if (n > RDX_HUB_REQUEST_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "request.txt: %zu bytes, more than %d", n,
                             RDX_HUB_REQUEST_MAX);
    }
    uid[0] = '\0';
    while (next_line(p, n, &off, &line, &len)) {
        lineno++;
        if (len == 0 || line[0] == '#') {
            continue;
        }
        if (len < kl || memcmp(line, KEY, kl) != 0) {
            return rdx_error_set(err, RDX_EPARSE, "request.txt:%u: expected 'study-uid=UID'",
                                 lineno);
        }
        if (uid[0] != '\0') {
            return rdx_error_set(err, RDX_EPARSE, "request.txt:%u: a second study-uid", lineno);
        }
        size_t ul = len - kl;
        if (ul == 0 || ul > RDX_HUB_UID_MAX) {
            return rdx_error_set(err, RDX_EPARSE, "request.txt:%u: a UID has 1 to %d characters",
                                 lineno, RDX_HUB_UID_MAX);
        }
        /* PS3.5 9.1: components of digits separated by '.', none empty. */
        for (size_t i = 0; i < ul; i++) {
            uint8_t c = line[kl + i];
            int dot = c == '.';
            if (!(c >= '0' && c <= '9') && !dot) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "request.txt:%u: byte %zu of the UID is not a digit or '.'",
                                     lineno, i + 1);
            }
            if (dot && (i == 0 || i + 1 == ul || line[kl + i - 1] == '.')) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "request.txt:%u: the UID has an empty component", lineno);
            }
        }
        memcpy(uid, line + kl, ul);
        uid[ul] = '\0';
    }
    if (uid[0] == '\0') {
        return rdx_error_set(err, RDX_EPARSE, "request.txt: no 'study-uid=UID' line");
    }
    return RDX_OK;
}

/* p[0..n) without leading and trailing blanks. */
static void trim(const uint8_t **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) {
        (*n)--;
    }
}

rdx_status rdx_hub_ecg_meta_parse(const uint8_t *p, size_t n, double *fs_hz, rdx_error *err)
{
    const uint8_t *line;
    size_t len, off = 0;
    unsigned lineno = 0;
    int have = 0;
    if (p == NULL && n > 0) {
        return rdx_error_set(err, RDX_EINVAL, "ecg.ini: no data");
    }
    if (n > RDX_HUB_ECG_META_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "ecg.ini: %zu bytes, more than %d", n,
                             RDX_HUB_ECG_META_MAX);
    }
    *fs_hz = 0.0;
    while (next_line(p, n, &off, &line, &len)) {
        lineno++;
        trim(&line, &len);
        if (len == 0 || line[0] == '#' || line[0] == ';' ||
            (len == 5 && memcmp(line, "[ecg]", 5) == 0)) {
            continue;
        }
        const uint8_t *eq = memchr(line, '=', len);
        if (eq == NULL) {
            return rdx_error_set(err, RDX_EPARSE, "ecg.ini:%u: expected 'fs = HZ'", lineno);
        }
        const uint8_t *k = line, *v = eq + 1;
        size_t kl = (size_t)(eq - line), vl = len - kl - 1;
        trim(&k, &kl);
        trim(&v, &vl);
        if (kl != 2 || memcmp(k, "fs", 2) != 0) {
            return rdx_error_set(err, RDX_EPARSE, "ecg.ini:%u: unknown key (only 'fs')", lineno);
        }
        if (have) {
            return rdx_error_set(err, RDX_EPARSE, "ecg.ini:%u: a second fs", lineno);
        }
        double fs = 0.0;
        if (vl == 0 || vl > 32 || rdx_parse_double((const char *)v, vl, &fs) != RDX_OK ||
            !(fs > 0.0) || fs > RDX_HUB_ECG_FS_MAX) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "ecg.ini:%u: fs is the sampling rate in Hz, above 0 and at most "
                                 "%.0f",
                                 lineno, RDX_HUB_ECG_FS_MAX);
        }
        *fs_hz = fs;
        have = 1;
    }
    if (!have) {
        return rdx_error_set(err, RDX_EPARSE,
                             "ecg.ini: no 'fs = HZ' line (the CSV's sampling rate)");
    }
    return RDX_OK;
}

/*
 * A custody field: 1..RDX_HUB_FIELD_MAX of [A-Za-z0-9.+_-], never starting
 * with '-', so no field can pass for an option of `rdx lab event` (an --actor
 * of its own, another --db).
 */
static int field_ok(const uint8_t *s, size_t n)
{
    if (n == 0 || n > RDX_HUB_FIELD_MAX || s[0] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '+' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static rdx_status custody_pass(const uint8_t *p, size_t n,
                               rdx_status (*fn)(void *u, const rdx_hub_custody_scan *scan), void *u,
                               size_t *count, rdx_error *err)
{
    const uint8_t *line;
    size_t len, off = 0, scans = 0;
    unsigned lineno = 0;
    if (count != NULL) {
        *count = 0;
    }
    if (p == NULL && n > 0) {
        return rdx_error_set(err, RDX_EINVAL, "custody.tsv: no data");
    }
    if (n > RDX_HUB_CUSTODY_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "custody.tsv: %zu bytes, more than %d", n,
                             RDX_HUB_CUSTODY_MAX);
    }
    while (next_line(p, n, &off, &line, &len)) {
        rdx_hub_custody_scan sc;
        char *field[4];
        size_t nf = 0, i = 0;
        lineno++;
        memset(&sc, 0, sizeof sc);
        field[0] = sc.barcode;
        field[1] = sc.event;
        field[2] = sc.at;
        field[3] = sc.condition;
        while (i < len) {
            while (i < len && (line[i] == ' ' || line[i] == '\t')) {
                i++;
            }
            if (i == len) {
                break;
            }
            size_t s = i;
            while (i < len && line[i] != ' ' && line[i] != '\t') {
                i++;
            }
            if (nf == 0 && line[s] == '#') {
                break; /* a comment line */
            }
            if (nf == 4 || !field_ok(line + s, i - s)) {
                return rdx_error_set(err, RDX_EPARSE,
                                     "custody.tsv:%u: expected BARCODE EVENT DTM [CONDITION], "
                                     "each 1-%d of A-Z a-z 0-9 . + _ - not starting with '-'",
                                     lineno, RDX_HUB_FIELD_MAX);
            }
            memcpy(field[nf], line + s, i - s);
            field[nf][i - s] = '\0';
            nf++;
        }
        if (nf == 0) {
            continue;
        }
        if (nf < 3) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "custody.tsv:%u: expected BARCODE EVENT DTM [CONDITION]", lineno);
        }
        if (++scans > RDX_HUB_CUSTODY_LINES_MAX) {
            return rdx_error_set(err, RDX_ELIMIT, "custody.tsv:%u: more than %d scans", lineno,
                                 RDX_HUB_CUSTODY_LINES_MAX);
        }
        sc.line = lineno;
        RDX_TRY(fn(u, &sc));
    }
    if (count != NULL) {
        *count = scans;
    }
    return RDX_OK;
}

static rdx_status check_only(void *u, const rdx_hub_custody_scan *scan)
{
    (void)u;
    (void)scan;
    return RDX_OK;
}

rdx_status rdx_hub_custody_parse(const uint8_t *p, size_t n,
                                 rdx_status (*fn)(void *u, const rdx_hub_custody_scan *scan),
                                 void *u, size_t *count, rdx_error *err)
{
    if (fn == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "custody.tsv: no callback");
    }
    /* The whole file is checked before the first scan is acted on: all or nothing. */
    RDX_TRY(custody_pass(p, n, check_only, NULL, count, err));
    return custody_pass(p, n, fn, u, count, err);
}
