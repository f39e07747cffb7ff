/*
 * lab/catalogue.c - the network catalogue: labs, clinics, courier runs and
 * specimen stability, read from an INI file with libinih. The format is
 * documented in docs/lab-catalogue.md; docs/examples/network.ini is a
 * complete sample.
 *
 * libinih does not tell its handler the line number, so the text is fed to
 * ini_parse_stream() one line at a time through our own reader, which counts
 * the lines: when the handler runs, the count is the line of the key. The
 * reader also refuses lines longer than libinih's line buffer rather than
 * letting them be cut in two silently.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cat_parse {
    rdx_lab_catalogue *c;
    const char *name; /* file name for messages */
    const char *text;
    size_t len, pos;
    unsigned line;
    unsigned section_line; /* line of the last [section] header */
    int long_line;
    rdx_error *err;
    rdx_status st;
    /* current section */
    int kind;
    size_t cur;
    char sect_name[160];
    size_t caps[5];
} cat_parse;

enum { K_NONE, K_NETWORK, K_LAB, K_CLINIC, K_COURIER, K_STAB, K_TYPE };

/* Bits of cat_lab.have etc. */
enum {
    H_NAME = 1u << 0,
    H_CITY = 1u << 1,
    H_CAP = 1u << 2,
    H_HOURS = 1u << 3,
    H_TAT = 1u << 4,
    H_TESTS = 1u << 5,
    H_TYPES = 1u << 6,
    H_FAC = 1u << 7,
    H_DISTRICT = 1u << 8,
    H_PICKUPS = 1u << 9,
    H_TRANSIT = 1u << 10,
    H_TEMP = 1u << 11,
    H_DAYS = 1u << 12
};

/* "Mon" .. "Sun" (any case) -> 0 .. 6; -1 otherwise. */
static int weekday(const char *s, size_t n)
{
    static const char *const names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    if (n != 3) {
        return -1;
    }
    for (int i = 0; i < 7; i++) {
        int same = 1;
        for (size_t k = 0; k < 3; k++) {
            char ch = s[k] >= 'A' && s[k] <= 'Z' ? (char)(s[k] - 'A' + 'a') : s[k];
            same &= ch == names[i][k];
        }
        if (same) {
            return i;
        }
    }
    return -1;
}

/* "Mon-Fri", "Mon-Fri,Sat", "Sat,Sun", "daily" -> bit mask (bit 0 Monday); 0 when malformed. */
static unsigned parse_days(const char *v)
{
    if (strcmp(v, "daily") == 0) {
        return 0x7Fu;
    }
    unsigned mask = 0;
    for (const char *p = v;;) {
        while (*p == ' ') {
            p++;
        }
        const char *e = p;
        while (*e != '\0' && *e != ',') {
            e++;
        }
        const char *end = e;
        while (end > p && end[-1] == ' ') {
            end--;
        }
        size_t n = (size_t)(end - p);
        int a, b;
        if (n == 7 && p[3] == '-') {
            a = weekday(p, 3);
            b = weekday(p + 4, 3);
        } else {
            a = b = weekday(p, n);
        }
        if (a < 0 || b < 0) {
            return 0;
        }
        for (int d = a;; d = (d + 1) % 7) { /* "Sat-Mon" wraps over the weekend */
            mask |= 1u << d;
            if (d == b) {
                break;
            }
        }
        if (*e == '\0') {
            return mask;
        }
        p = e + 1;
    }
}

static char *reader(char *str, int num, void *stream)
{
    cat_parse *p = stream;
    if (p->pos >= p->len || p->long_line || p->st != RDX_OK) {
        return NULL;
    }
    size_t end = p->pos;
    while (end < p->len && p->text[end] != '\n') {
        end++;
    }
    size_t n = end - p->pos + (end < p->len ? 1 : 0);
    p->line++;
    if (num < 2 || n > (size_t)num - 1) {
        p->long_line = 1;
        return NULL;
    }
    memcpy(str, p->text + p->pos, n);
    str[n] = '\0';
    size_t lead = 0;
    while (lead < n && (str[lead] == ' ' || str[lead] == '\t')) {
        lead++;
    }
    if (lead < n && str[lead] == '[') {
        p->section_line = p->line;
    }
    if (memchr(str, '\0', n) != NULL) {
        p->long_line = 2;
        return NULL;
    }
    p->pos += n;
    return str;
}

static int fail(cat_parse *p, rdx_status st, const char *fmt, ...) RDX_PRINTF(3, 4);
static int fail(cat_parse *p, rdx_status st, const char *fmt, ...)
{
    char msg[RDX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->st == RDX_OK) {
        p->st = rdx_error_set(p->err, st, "%s:%u: %s", p->name, p->line, msg);
    }
    return 0;
}

static char *dupstr(cat_parse *p, const char *s)
{
    char *d = rdx_strndup(s, strlen(s));
    if (d == NULL) {
        fail(p, RDX_ENOMEM, "out of memory");
    }
    return d;
}

/* Grow an array of elem-size entries by one; returns the new slot or NULL. */
static void *grow(cat_parse *p, void **arr, size_t *n, size_t elem)
{
    if (*n >= RDX_LAB_CATALOGUE_MAX_ENTRIES) {
        fail(p, RDX_ELIMIT, "more than %u entries of one kind (lab_limits.h)",
             RDX_LAB_CATALOGUE_MAX_ENTRIES);
        return NULL;
    }
    void *t = rdx_reallocarray(*arr, *n + 1, elem);
    if (t == NULL) {
        fail(p, RDX_ENOMEM, "out of memory");
        return NULL;
    }
    *arr = t;
    void *slot = (char *)t + *n * elem;
    memset(slot, 0, elem);
    (*n)++;
    return slot;
}

/* "HH:MM" -> minutes; 24:00 allowed only when allow24. */
static int parse_hhmm(const char *s, size_t n, int allow24, unsigned *out)
{
    int64_t h, m;
    if (n != 5 || s[2] != ':' || rdx_parse_i64(s, 2, 0, 24, &h) != RDX_OK ||
        rdx_parse_i64(s + 3, 2, 0, 59, &m) != RDX_OK || (h == 24 && (!allow24 || m != 0))) {
        return -1;
    }
    *out = (unsigned)(h * 60 + m);
    return 0;
}

/* "90", "90m", "6h", "7d" -> minutes (at most 365 days). */
static int parse_duration(const char *s, unsigned *out)
{
    size_t n = strlen(s);
    int64_t v, mult = 1;
    if (n == 0) {
        return -1;
    }
    switch (s[n - 1]) {
    case 'm':
        n--;
        break;
    case 'h':
        mult = 60;
        n--;
        break;
    case 'd':
        mult = 1440;
        n--;
        break;
    default:
        break;
    }
    if (rdx_parse_i64(s, n, 0, 365 * 1440, &v) != RDX_OK || v * mult > 365 * 1440) {
        return -1;
    }
    *out = (unsigned)(v * mult);
    return 0;
}

/* Split a comma-separated list, calling fn for each trimmed, non-empty item. */
static int each_item(cat_parse *p, const char *value, const char *key,
                     int (*fn)(cat_parse *p, const char *item, size_t n, void *ctx), void *ctx)
{
    const char *s = value;
    size_t count = 0;
    while (*s != '\0') {
        while (*s == ' ' || *s == '\t' || *s == ',') {
            s++;
        }
        const char *e = s;
        while (*e != '\0' && *e != ',') {
            e++;
        }
        size_t n = (size_t)(e - s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
            n--;
        }
        if (n > 0) {
            if (++count > RDX_LAB_CATALOGUE_MAX_LIST) {
                return fail(p, RDX_ELIMIT, "[%s] %s: more than %u items", p->sect_name, key,
                            RDX_LAB_CATALOGUE_MAX_LIST);
            }
            if (!fn(p, s, n, ctx)) {
                return 0;
            }
        }
        s = e;
    }
    return 1;
}

static int code_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':')) {
            return 0;
        }
    }
    return 1;
}

static int add_code(cat_parse *p, const char *item, size_t n, void *ctx)
{
    struct {
        char ***arr;
        size_t *n;
        const char *key;
    } *a = ctx;
    if (!code_ok(item, n)) {
        return fail(p, RDX_EPARSE, "[%s] %s: '%.*s' is not a code (letters, digits, - _ . :)",
                    p->sect_name, a->key, (int)n, item);
    }
    for (size_t i = 0; i < *a->n; i++) {
        if (strlen((*a->arr)[i]) == n && memcmp((*a->arr)[i], item, n) == 0) {
            return fail(p, RDX_EPARSE, "[%s] %s: '%.*s' listed twice", p->sect_name, a->key, (int)n,
                        item);
        }
    }
    char **slot = grow(p, (void **)a->arr, a->n, sizeof(char *));
    if (slot == NULL) {
        return 0;
    }
    *slot = rdx_strndup(item, n);
    if (*slot == NULL) {
        (*a->n)--;
        return fail(p, RDX_ENOMEM, "out of memory");
    }
    return 1;
}

/* A pickup list being read: the run's `pickups` (mask 0) or `pickups DAYS` (mask of DAYS). */
typedef struct pickup_dst {
    cat_run *r;
    unsigned mask;
    const char *key;
} pickup_dst;

/* Append t to one ascending list of pickups. */
static int push_pickup(cat_parse *p, const pickup_dst *dst, unsigned **arr, size_t *n, unsigned t,
                       const char *item, size_t len)
{
    if (*n > 0 && t <= (*arr)[*n - 1]) {
        return fail(p, RDX_EPARSE, "[%s] %s: '%.*s' is not later than the pickup before it",
                    p->sect_name, dst->key, (int)len, item);
    }
    unsigned *slot = grow(p, (void **)arr, n, sizeof *slot);
    if (slot == NULL) {
        return 0;
    }
    *slot = t;
    return 1;
}

static int add_pickup(cat_parse *p, const char *item, size_t n, void *ctx)
{
    const pickup_dst *dst = ctx;
    cat_run *r = dst->r;
    unsigned t;
    if (parse_hhmm(item, n, 0, &t) != 0) {
        return fail(p, RDX_EPARSE, "[%s] %s: '%.*s' is not a time HH:MM", p->sect_name, dst->key,
                    (int)n, item);
    }
    if (dst->mask == 0) {
        return push_pickup(p, dst, &r->pickups, &r->npickups, t, item, n);
    }
    for (int d = 0; d < 7; d++) {
        if (((dst->mask >> d) & 1u) && !push_pickup(p, dst, &r->wk[d], &r->nwk[d], t, item, n)) {
            return 0;
        }
    }
    return 1;
}

static int set_once(cat_parse *p, unsigned *have, unsigned bit, const char *key)
{
    if (*have & bit) {
        return fail(p, RDX_EPARSE, "[%s] %s: given twice", p->sect_name, key);
    }
    *have |= bit;
    return 1;
}

static int set_str(cat_parse *p, char **dst, unsigned *have, unsigned bit, const char *key,
                   const char *value)
{
    if (!set_once(p, have, bit, key)) {
        return 0;
    }
    if (value[0] == '\0') {
        return fail(p, RDX_EPARSE, "[%s] %s: empty value", p->sect_name, key);
    }
    free(*dst);
    *dst = dupstr(p, value);
    return *dst != NULL;
}

static int unknown_key(cat_parse *p, const char *key)
{
    return fail(p, RDX_EPARSE, "[%s]: unknown key '%s'", p->sect_name, key);
}

static int lab_key(cat_parse *p, cat_lab *l, const char *key, const char *value)
{
    if (strcmp(key, "name") == 0) {
        return set_str(p, &l->name, &l->have, H_NAME, key, value);
    }
    if (strcmp(key, "city") == 0) {
        return set_str(p, &l->city, &l->have, H_CITY, key, value);
    }
    if (strcmp(key, "district") == 0) {
        return set_str(p, &l->district, &l->have, H_DISTRICT, key, value);
    }
    if (strcmp(key, "hl7_facility") == 0) {
        return set_str(p, &l->facility, &l->have, H_FAC, key, value);
    }
    if (strcmp(key, "capacity") == 0) {
        int64_t v;
        if (!set_once(p, &l->have, H_CAP, key)) {
            return 0;
        }
        if (rdx_parse_i64(value, strlen(value), 1, 10000000, &v) != RDX_OK) {
            return fail(p, RDX_EPARSE,
                        "[%s] capacity: '%s' is not a number of tests per day "
                        "(1 .. 10000000)",
                        p->sect_name, value);
        }
        l->capacity = (unsigned)v;
        return 1;
    }
    if (strcmp(key, "hours") == 0) {
        if (!set_once(p, &l->have, H_HOURS, key)) {
            return 0;
        }
        size_t n = strlen(value);
        if (n != 11 || value[5] != '-' || parse_hhmm(value, 5, 0, &l->open_min) != 0 ||
            parse_hhmm(value + 6, 5, 1, &l->close_min) != 0 || l->close_min <= l->open_min) {
            return fail(p, RDX_EPARSE,
                        "[%s] hours: '%s' is not HH:MM-HH:MM with the close after the open",
                        p->sect_name, value);
        }
        return 1;
    }
    if (strcmp(key, "days") == 0) {
        if (!set_once(p, &l->have, H_DAYS, key)) {
            return 0;
        }
        l->days = parse_days(value);
        if (l->days == 0) {
            return fail(p, RDX_EPARSE,
                        "[%s] days: '%s' is not a list of days or ranges such as Mon-Fri,Sat "
                        "(or daily)",
                        p->sect_name, value);
        }
        return 1;
    }
    if (strcmp(key, "turnaround") == 0) {
        if (!set_once(p, &l->have, H_TAT, key)) {
            return 0;
        }
        if (parse_duration(value, &l->tat_min) != 0 || l->tat_min == 0) {
            return fail(p, RDX_EPARSE, "[%s] turnaround: '%s' is not a duration (90, 90m, 6h, 2d)",
                        p->sect_name, value);
        }
        return 1;
    }
    if (strncmp(key, "turnaround ", 11) == 0) {
        const char *code = key + 11;
        unsigned t;
        if (!code_ok(code, strlen(code))) {
            return fail(p, RDX_EPARSE, "[%s] %s: bad test code", p->sect_name, key);
        }
        for (size_t i = 0; i < l->ntats; i++) {
            if (strcmp(l->tats[i].test, code) == 0) {
                return fail(p, RDX_EPARSE, "[%s] %s: given twice", p->sect_name, key);
            }
        }
        if (parse_duration(value, &t) != 0 || t == 0) {
            return fail(p, RDX_EPARSE, "[%s] %s: '%s' is not a duration", p->sect_name, key, value);
        }
        cat_tat *slot = grow(p, (void **)&l->tats, &l->ntats, sizeof *slot);
        if (slot == NULL) {
            return 0;
        }
        slot->minutes = t;
        slot->test = dupstr(p, code);
        return slot->test != NULL;
    }
    if (strcmp(key, "tests") == 0) {
        struct {
            char ***arr;
            size_t *n;
            const char *key;
        } a = {&l->tests, &l->ntests, key};
        l->have |= H_TESTS;
        return each_item(p, value, key, add_code, &a);
    }
    if (strcmp(key, "specimens") == 0) {
        struct {
            char ***arr;
            size_t *n;
            const char *key;
        } a = {&l->types, &l->ntypes, key};
        l->have |= H_TYPES;
        return each_item(p, value, key, add_code, &a);
    }
    return unknown_key(p, key);
}

static int clinic_key(cat_parse *p, cat_clinic *k, const char *key, const char *value)
{
    if (strcmp(key, "name") == 0) {
        return set_str(p, &k->name, &k->have, H_NAME, key, value);
    }
    if (strcmp(key, "city") == 0) {
        return set_str(p, &k->city, &k->have, H_CITY, key, value);
    }
    if (strcmp(key, "district") == 0) {
        return set_str(p, &k->district, &k->have, H_DISTRICT, key, value);
    }
    if (strcmp(key, "hl7_facility") == 0) {
        return set_str(p, &k->facility, &k->have, H_FAC, key, value);
    }
    return unknown_key(p, key);
}

static int run_key(cat_parse *p, cat_run *r, const char *key, const char *value)
{
    if (strcmp(key, "pickups") == 0) {
        pickup_dst dst = {r, 0, key};
        r->have |= H_PICKUPS;
        return each_item(p, value, key, add_pickup, &dst);
    }
    if (strncmp(key, "pickups ", 8) == 0) {
        /* A timetable of its own on some days: "pickups Sat-Sun = 10:00". */
        pickup_dst dst = {r, parse_days(key + 8), key};
        if (dst.mask == 0 || dst.mask == 0x7Fu) {
            return fail(p, RDX_EPARSE,
                        "[%s] %s: '%s' is not a list of days or ranges such as Sat-Sun (and not "
                        "every day: that is plain pickups)",
                        p->sect_name, key, key + 8);
        }
        r->own |= dst.mask;
        return each_item(p, value, key, add_pickup, &dst);
    }
    if (strcmp(key, "days") == 0) {
        if (!set_once(p, &r->have, H_DAYS, key)) {
            return 0;
        }
        r->days = parse_days(value);
        if (r->days == 0) {
            return fail(p, RDX_EPARSE,
                        "[%s] days: '%s' is not a list of days or ranges such as Mon-Fri,Sat "
                        "(or daily)",
                        p->sect_name, value);
        }
        return 1;
    }
    if (strcmp(key, "transit") == 0) {
        if (!set_once(p, &r->have, H_TRANSIT, key)) {
            return 0;
        }
        if (parse_duration(value, &r->transit_min) != 0) {
            return fail(p, RDX_EPARSE, "[%s] transit: '%s' is not a duration", p->sect_name, value);
        }
        return 1;
    }
    if (strcmp(key, "temperature") == 0) {
        if (!set_once(p, &r->have, H_TEMP, key)) {
            return 0;
        }
        if (strcmp(value, "room") == 0) {
            r->refrigerated = 0;
        } else if (strcmp(value, "refrigerated") == 0) {
            r->refrigerated = 1;
        } else {
            return fail(p, RDX_EPARSE, "[%s] temperature: '%s' (want room or refrigerated)",
                        p->sect_name, value);
        }
        return 1;
    }
    return unknown_key(p, key);
}

static int named(cat_parse *p, cat_named **arr, size_t *n, const char *code, const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*arr)[i].code, code) == 0) {
            return fail(p, RDX_EPARSE, "[%s] name: given twice", p->sect_name);
        }
    }
    cat_named *slot = grow(p, (void **)arr, n, sizeof *slot);
    if (slot == NULL) {
        return 0;
    }
    slot->code = dupstr(p, code);
    slot->name = slot->code ? dupstr(p, value) : NULL;
    return slot->name != NULL;
}

static cat_stab *find_or_add_stab(cat_parse *p, const char *test, const char *type)
{
    rdx_lab_catalogue *c = p->c;
    for (size_t i = 0; i < c->nstabs; i++) {
        if (strcmp(c->stabs[i].test, test) == 0 && strcmp(c->stabs[i].type, type) == 0) {
            return &c->stabs[i];
        }
    }
    cat_stab *s = grow(p, (void **)&c->stabs, &c->nstabs, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->room_min = s->fridge_min = -1;
    s->volume_ml = -1;
    s->test = dupstr(p, test);
    s->type = s->test ? dupstr(p, type) : NULL;
    return s->type != NULL ? s : NULL;
}

static int stab_key(cat_parse *p, const char *test, const char *key, const char *value)
{
    rdx_lab_catalogue *c = p->c;
    if (strcmp(key, "name") == 0) {
        return named(p, &c->tests, &c->ntests, test, value);
    }
    int fridge;
    const char *type;
    if (strncmp(key, "volume ", 7) == 0) {
        type = key + 7;
        double v;
        if (!code_ok(type, strlen(type))) {
            return fail(p, RDX_EPARSE, "[%s] %s: bad specimen type code", p->sect_name, key);
        }
        if (rdx_parse_double(value, strlen(value), &v) != RDX_OK || v <= 0 || v > 1000) {
            return fail(p, RDX_EPARSE, "[%s] %s: '%s' is not a volume in mL (0 .. 1000)",
                        p->sect_name, key, value);
        }
        cat_stab *s = find_or_add_stab(p, test, type);
        if (s == NULL) {
            return 0;
        }
        if (s->volume_ml >= 0) {
            return fail(p, RDX_EPARSE, "[%s] %s: given twice", p->sect_name, key);
        }
        s->volume_ml = v;
        return 1;
    }
    if (strncmp(key, "room ", 5) == 0) {
        fridge = 0;
        type = key + 5;
    } else if (strncmp(key, "refrigerated ", 13) == 0) {
        fridge = 1;
        type = key + 13;
    } else {
        return unknown_key(p, key);
    }
    if (!code_ok(type, strlen(type))) {
        return fail(p, RDX_EPARSE, "[%s] %s: bad specimen type code", p->sect_name, key);
    }
    unsigned minutes;
    if (parse_duration(value, &minutes) != 0) {
        return fail(p, RDX_EPARSE, "[%s] %s: '%s' is not a duration (0 = not allowed)",
                    p->sect_name, key, value);
    }
    cat_stab *s = find_or_add_stab(p, test, type);
    if (s == NULL) {
        return 0;
    }
    int *dst = fridge ? &s->fridge_min : &s->room_min;
    if (*dst >= 0) {
        return fail(p, RDX_EPARSE, "[%s] %s: given twice", p->sect_name, key);
    }
    *dst = (int)minutes;
    return 1;
}

/* Start a section: "network", "lab ID", "clinic ID", "courier CLINIC LAB", ... */
static int begin_section(cat_parse *p, const char *section)
{
    rdx_lab_catalogue *c = p->c;
    char kind[32], a[72], b[72];
    snprintf(p->sect_name, sizeof p->sect_name, "%s", section);
    a[0] = b[0] = '\0';
    size_t i = 0, k = 0;
    while (section[i] != '\0' && section[i] != ' ' && k + 1 < sizeof kind) {
        kind[k++] = section[i++];
    }
    kind[k] = '\0';
    for (int part = 0; part < 2; part++) {
        char *dst = part == 0 ? a : b;
        while (section[i] == ' ') {
            i++;
        }
        k = 0;
        while (section[i] != '\0' && section[i] != ' ') {
            if (k + 1 >= sizeof a) {
                return fail(p, RDX_EPARSE, "[%s]: id too long", section);
            }
            dst[k++] = section[i++];
        }
        dst[k] = '\0';
    }
    while (section[i] == ' ') {
        i++;
    }
    int nargs = (a[0] != '\0') + (b[0] != '\0');
    if (section[i] != '\0') {
        return fail(p, RDX_EPARSE, "[%s]: too many words in the section name", section);
    }
    if (strcmp(kind, "network") == 0 && nargs == 0) {
        p->kind = K_NETWORK;
        return 1;
    }
    int want = strcmp(kind, "courier") == 0 ? 2 : 1;
    if (nargs != want ||
        (strcmp(kind, "lab") && strcmp(kind, "clinic") && strcmp(kind, "courier") &&
         strcmp(kind, "stability") && strcmp(kind, "specimen-type"))) {
        return fail(p, RDX_EPARSE,
                    "[%s]: unknown section (want [network], [lab ID], [clinic ID], [courier "
                    "CLINIC LAB], [stability TEST], [specimen-type CODE])",
                    section);
    }
    if (!code_ok(a, strlen(a)) || (want == 2 && !code_ok(b, strlen(b)))) {
        return fail(p, RDX_EPARSE, "[%s]: ids are letters, digits, - _ . :", section);
    }
    if (strcmp(kind, "lab") == 0) {
        if (lab_cat_find_lab(c, a) != SIZE_MAX) {
            return fail(p, RDX_EPARSE, "[%s]: lab defined twice", section);
        }
        cat_lab *l = grow(p, (void **)&c->labs, &c->nlabs, sizeof *l);
        if (l == NULL || (l->id = dupstr(p, a)) == NULL) {
            return 0;
        }
        l->line = p->section_line;
        p->kind = K_LAB;
        p->cur = c->nlabs - 1;
    } else if (strcmp(kind, "clinic") == 0) {
        for (size_t j = 0; j < c->nclinics; j++) {
            if (strcmp(c->clinics[j].id, a) == 0) {
                return fail(p, RDX_EPARSE, "[%s]: clinic defined twice", section);
            }
        }
        cat_clinic *k2 = grow(p, (void **)&c->clinics, &c->nclinics, sizeof *k2);
        if (k2 == NULL || (k2->id = dupstr(p, a)) == NULL) {
            return 0;
        }
        k2->line = p->section_line;
        p->kind = K_CLINIC;
        p->cur = c->nclinics - 1;
    } else if (strcmp(kind, "courier") == 0) {
        for (size_t j = 0; j < c->nruns; j++) {
            if (strcmp(c->runs[j].clinic_id, a) == 0 && strcmp(c->runs[j].lab_id, b) == 0) {
                return fail(p, RDX_EPARSE, "[%s]: courier run defined twice", section);
            }
        }
        cat_run *r = grow(p, (void **)&c->runs, &c->nruns, sizeof *r);
        if (r == NULL || (r->clinic_id = dupstr(p, a)) == NULL ||
            (r->lab_id = dupstr(p, b)) == NULL) {
            return 0;
        }
        r->line = p->section_line;
        p->kind = K_COURIER;
        p->cur = c->nruns - 1;
    } else if (strcmp(kind, "stability") == 0) {
        p->kind = K_STAB;
        snprintf(p->sect_name, sizeof p->sect_name, "stability %s", a);
    } else {
        p->kind = K_TYPE;
    }
    return 1;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
    cat_parse *p = user;
    if (p->st != RDX_OK) {
        return 0;
    }
    /* A new section (libinih calls with an empty key only in some builds): compare names. */
    if (strcmp(section, p->sect_name) != 0 || p->kind == K_NONE) {
        if (section[0] == '\0') {
            return fail(p, RDX_EPARSE, "key '%s' before any [section]", key);
        }
        if (!begin_section(p, section)) {
            return 0;
        }
    }
    if (key == NULL) {
        return 1;
    }
    switch (p->kind) {
    case K_NETWORK:
        if (strcmp(key, "name") == 0) {
            free(p->c->network_name);
            p->c->network_name = dupstr(p, value);
            return p->c->network_name != NULL;
        }
        if (strcmp(key, "utc_offset") == 0) {
            int64_t h, m;
            size_t n = strlen(value);
            if (n != 6 || (value[0] != '+' && value[0] != '-') || value[3] != ':' ||
                rdx_parse_i64(value + 1, 2, 0, 14, &h) != RDX_OK ||
                rdx_parse_i64(value + 4, 2, 0, 59, &m) != RDX_OK) {
                return fail(p, RDX_EPARSE, "[network] utc_offset: '%s' (want +HH:MM)", value);
            }
            p->c->utc_offset_min = (int)((h * 60 + m) * (value[0] == '-' ? -1 : 1));
            return 1;
        }
        return unknown_key(p, key);
    case K_LAB:
        return lab_key(p, &p->c->labs[p->cur], key, value);
    case K_CLINIC:
        return clinic_key(p, &p->c->clinics[p->cur], key, value);
    case K_COURIER:
        return run_key(p, &p->c->runs[p->cur], key, value);
    case K_STAB:
        return stab_key(p, p->sect_name + 10, key, value);
    case K_TYPE:
        if (strcmp(key, "name") == 0) {
            return named(p, &p->c->types, &p->c->ntypes, p->sect_name + 14, value);
        }
        return unknown_key(p, key);
    default:
        return fail(p, RDX_EINTERNAL, "bad section state");
    }
}

void rdx_lab_catalogue_free(rdx_lab_catalogue *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->nlabs; i++) {
        cat_lab *l = &c->labs[i];
        free(l->id);
        free(l->name);
        free(l->city);
        free(l->district);
        free(l->facility);
        for (size_t j = 0; j < l->ntests; j++) {
            free(l->tests[j]);
        }
        free(l->tests);
        for (size_t j = 0; j < l->ntypes; j++) {
            free(l->types[j]);
        }
        free(l->types);
        for (size_t j = 0; j < l->ntats; j++) {
            free(l->tats[j].test);
        }
        free(l->tats);
    }
    free(c->labs);
    for (size_t i = 0; i < c->nclinics; i++) {
        free(c->clinics[i].id);
        free(c->clinics[i].name);
        free(c->clinics[i].city);
        free(c->clinics[i].district);
        free(c->clinics[i].facility);
    }
    free(c->clinics);
    for (size_t i = 0; i < c->nruns; i++) {
        free(c->runs[i].clinic_id);
        free(c->runs[i].lab_id);
        free(c->runs[i].pickups);
        for (int d = 0; d < 7; d++) {
            free(c->runs[i].wk[d]);
        }
    }
    free(c->runs);
    for (size_t i = 0; i < c->nstabs; i++) {
        free(c->stabs[i].test);
        free(c->stabs[i].type);
    }
    free(c->stabs);
    for (size_t i = 0; i < c->ntests; i++) {
        free(c->tests[i].code);
        free(c->tests[i].name);
    }
    free(c->tests);
    for (size_t i = 0; i < c->ntypes; i++) {
        free(c->types[i].code);
        free(c->types[i].name);
    }
    free(c->types);
    free(c->network_name);
    free(c);
}

/* Cross-checks once everything is read; messages name the section's line. */
static rdx_status validate(cat_parse *p)
{
    rdx_lab_catalogue *c = p->c;
    static const struct {
        unsigned bit;
        const char *key;
    } lab_req[] = {{H_NAME, "name"},      {H_CITY, "city"},      {H_CAP, "capacity"},
                   {H_HOURS, "hours"},    {H_TAT, "turnaround"}, {H_TESTS, "tests"},
                   {H_TYPES, "specimens"}};
    for (size_t i = 0; i < c->nlabs; i++) {
        cat_lab *l = &c->labs[i];
        if (!(l->have & H_DAYS)) {
            l->days = 0x7Fu; /* open every day */
        }
        for (size_t k = 0; k < sizeof lab_req / sizeof lab_req[0]; k++) {
            if (!(l->have & lab_req[k].bit)) {
                return rdx_error_set(p->err, RDX_EPARSE,
                                     "%s:%u: [lab %s]: required key '%s' "
                                     "missing",
                                     p->name, l->line, l->id, lab_req[k].key);
            }
        }
        if (l->facility == NULL && (l->facility = rdx_strndup(l->id, strlen(l->id))) == NULL) {
            return rdx_error_set(p->err, RDX_ENOMEM, "out of memory");
        }
        for (size_t t = 0; t < l->ntests; t++) {
            int any = 0;
            for (size_t s = 0; s < c->nstabs; s++) {
                any |= strcmp(c->stabs[s].test, l->tests[t]) == 0;
            }
            if (!any) {
                return rdx_error_set(p->err, RDX_EPARSE,
                                     "%s:%u: [lab %s] tests: '%s' has no [stability %s] section",
                                     p->name, l->line, l->id, l->tests[t], l->tests[t]);
            }
        }
        for (size_t t = 0; t < l->ntats; t++) {
            if (!lab_cat_lab_performs(l, l->tats[t].test)) {
                return rdx_error_set(p->err, RDX_EPARSE,
                                     "%s:%u: [lab %s] turnaround %s: the lab does not list that "
                                     "test",
                                     p->name, l->line, l->id, l->tats[t].test);
            }
        }
    }
    for (size_t i = 0; i < c->nclinics; i++) {
        cat_clinic *k = &c->clinics[i];
        if (!(k->have & H_NAME) || !(k->have & H_CITY)) {
            return rdx_error_set(p->err, RDX_EPARSE,
                                 "%s:%u: [clinic %s]: required key '%s' "
                                 "missing",
                                 p->name, k->line, k->id, (k->have & H_NAME) ? "city" : "name");
        }
        if ((k->district == NULL && (k->district = rdx_strndup("", 0)) == NULL) ||
            (k->facility == NULL && (k->facility = rdx_strndup(k->id, strlen(k->id))) == NULL)) {
            return rdx_error_set(p->err, RDX_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < c->nclinics; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->clinics[i].facility, c->clinics[j].facility) == 0) {
                return rdx_error_set(p->err, RDX_EPARSE,
                                     "%s:%u: [clinic %s] hl7_facility: '%s' is also clinic %s's",
                                     p->name, c->clinics[i].line, c->clinics[i].id,
                                     c->clinics[i].facility, c->clinics[j].id);
            }
        }
    }
    for (size_t i = 0; i < c->nruns; i++) {
        cat_run *r = &c->runs[i];
        r->lab = lab_cat_find_lab(c, r->lab_id);
        r->clinic = SIZE_MAX;
        for (size_t j = 0; j < c->nclinics; j++) {
            if (strcmp(c->clinics[j].id, r->clinic_id) == 0) {
                r->clinic = j;
            }
        }
        const char *missing = !(r->have & H_TRANSIT) ? "transit"
                              : !(r->have & H_TEMP)  ? "temperature"
                                                     : NULL;
        if (r->clinic == SIZE_MAX) {
            return rdx_error_set(p->err, RDX_EPARSE, "%s:%u: [courier %s %s]: no [clinic %s]",
                                 p->name, r->line, r->clinic_id, r->lab_id, r->clinic_id);
        }
        if (r->lab == SIZE_MAX) {
            return rdx_error_set(p->err, RDX_EPARSE, "%s:%u: [courier %s %s]: no [lab %s]", p->name,
                                 r->line, r->clinic_id, r->lab_id, r->lab_id);
        }
        if (!(r->have & H_DAYS)) {
            r->days = 0x7Fu; /* goes every day */
        }
        if (missing == NULL && r->own == 0 && r->npickups == 0) {
            missing = "pickups";
        }
        if (missing != NULL) {
            return rdx_error_set(p->err, RDX_EPARSE,
                                 "%s:%u: [courier %s %s]: required key '%s' "
                                 "missing",
                                 p->name, r->line, r->clinic_id, r->lab_id, missing);
        }
        static const char *const wd[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
        for (int d = 0; d < 7; d++) {
            unsigned bit = 1u << d;
            if ((r->own & bit) && !(r->days & bit)) {
                return rdx_error_set(p->err, RDX_EPARSE,
                                     "%s:%u: [courier %s %s]: pickups on %s, but %s is not one "
                                     "of the run's days",
                                     p->name, r->line, r->clinic_id, r->lab_id, wd[d], wd[d]);
            }
            if ((r->days & bit) && !(r->own & bit) && r->npickups == 0) {
                return rdx_error_set(p->err, RDX_EPARSE,
                                     "%s:%u: [courier %s %s]: no pickups on %s (give 'pickups' "
                                     "or 'pickups %s')",
                                     p->name, r->line, r->clinic_id, r->lab_id, wd[d], wd[d]);
            }
        }
    }
    if (c->nlabs == 0 || c->nclinics == 0) {
        p->line = 0;
        return rdx_error_set(p->err, RDX_EPARSE,
                             "%s: a catalogue needs at least one [lab] and "
                             "one [clinic]",
                             p->name);
    }
    return RDX_OK;
}

rdx_status rdx_lab_catalogue_parse(const char *text, size_t len, const char *name,
                                   rdx_lab_catalogue **out, rdx_error *err)
{
    if (out == NULL || (text == NULL && len > 0)) {
        return rdx_error_set(err, RDX_EINVAL, "catalogue: bad arguments");
    }
    *out = NULL;
    if (name == NULL) {
        name = "catalogue";
    }
    if (len > RDX_LAB_CATALOGUE_MAX_BYTES) {
        return rdx_error_set(err, RDX_ELIMIT, "%s: %zu bytes is larger than %u bytes", name, len,
                             RDX_LAB_CATALOGUE_MAX_BYTES);
    }
    cat_parse p;
    memset(&p, 0, sizeof p);
    p.c = calloc(1, sizeof *p.c);
    if (p.c == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    p.c->utc_offset_min = 8 * 60;
    p.name = name;
    p.text = text;
    p.len = len;
    p.err = err;
    p.st = RDX_OK;
    int rc = ini_parse_stream(reader, &p, handler, &p);
    if (p.st == RDX_OK && p.long_line == 1) {
        p.st = rdx_error_set(err, RDX_EPARSE,
                             "%s:%u: line longer than %d characters (split the list over "
                             "indented continuation lines)",
                             name, p.line, INI_MAX_LINE - 2);
    } else if (p.st == RDX_OK && p.long_line == 2) {
        p.st = rdx_error_set(err, RDX_EPARSE, "%s:%u: NUL byte in the file", name, p.line);
    } else if (p.st == RDX_OK && rc > 0) {
        p.st = rdx_error_set(err, RDX_EPARSE,
                             "%s:%d: syntax error (want [section], key = value, or ; comment)",
                             name, rc);
    } else if (p.st == RDX_OK && rc < 0) {
        p.st = rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", name);
    }
    if (p.st == RDX_OK) {
        p.st = validate(&p);
    }
    if (p.st != RDX_OK) {
        rdx_lab_catalogue_free(p.c);
        return p.st;
    }
    *out = p.c;
    return RDX_OK;
}

rdx_status rdx_lab_catalogue_load(const char *path, rdx_lab_catalogue **out, rdx_error *err)
{
    rdx_buf b;
    if (path == NULL || out == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "catalogue: bad arguments");
    }
    *out = NULL;
    rdx_buf_init(&b, RDX_LAB_CATALOGUE_MAX_BYTES);
    rdx_status st = rdx_file_read(path, &b, err);
    if (st == RDX_OK) {
        st = rdx_lab_catalogue_parse(b.data ? (const char *)b.data : "", b.len, path, out, err);
    }
    rdx_buf_free(&b);
    return st;
}

int rdx_lab_catalogue_utc_offset_min(const rdx_lab_catalogue *c)
{
    return c->utc_offset_min;
}
size_t rdx_lab_catalogue_lab_count(const rdx_lab_catalogue *c)
{
    return c->nlabs;
}
size_t rdx_lab_catalogue_clinic_count(const rdx_lab_catalogue *c)
{
    return c->nclinics;
}
size_t rdx_lab_catalogue_courier_count(const rdx_lab_catalogue *c)
{
    return c->nruns;
}

rdx_status rdx_lab_catalogue_lab_at(const rdx_lab_catalogue *c, size_t i, rdx_lab_lab_info *out)
{
    if (i >= c->nlabs) {
        return RDX_ENOTFOUND;
    }
    const cat_lab *l = &c->labs[i];
    *out = (rdx_lab_lab_info){l->id,       l->name,     l->city,      l->facility,
                              l->capacity, l->open_min, l->close_min, l->tat_min,
                              l->ntests,   l->ntypes,   l->days};
    return RDX_OK;
}

rdx_status rdx_lab_catalogue_clinic_at(const rdx_lab_catalogue *c, size_t i,
                                       rdx_lab_clinic_info *out)
{
    if (i >= c->nclinics) {
        return RDX_ENOTFOUND;
    }
    const cat_clinic *k = &c->clinics[i];
    *out = (rdx_lab_clinic_info){k->id, k->name, k->city, k->district, k->facility};
    return RDX_OK;
}

/* ---- Lookups ------------------------------------------------------------ */

size_t lab_cat_find_lab(const rdx_lab_catalogue *c, const char *id)
{
    for (size_t i = 0; i < c->nlabs; i++) {
        if (strcmp(c->labs[i].id, id) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

size_t lab_cat_find_clinic_by_facility(const rdx_lab_catalogue *c, const char *facility)
{
    for (size_t i = 0; i < c->nclinics; i++) {
        if (strcmp(c->clinics[i].facility, facility) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

const cat_run *lab_cat_find_run(const rdx_lab_catalogue *c, size_t clinic, size_t lab)
{
    for (size_t i = 0; i < c->nruns; i++) {
        if (c->runs[i].clinic == clinic && c->runs[i].lab == lab) {
            return &c->runs[i];
        }
    }
    return NULL;
}

const cat_stab *lab_cat_find_stab(const rdx_lab_catalogue *c, const char *test, const char *type)
{
    for (size_t i = 0; i < c->nstabs; i++) {
        if (strcmp(c->stabs[i].test, test) == 0 && strcmp(c->stabs[i].type, type) == 0) {
            return &c->stabs[i];
        }
    }
    return NULL;
}

int lab_cat_lab_performs(const cat_lab *l, const char *test)
{
    for (size_t i = 0; i < l->ntests; i++) {
        if (strcmp(l->tests[i], test) == 0) {
            return 1;
        }
    }
    return 0;
}

int lab_cat_lab_accepts(const cat_lab *l, const char *type)
{
    for (size_t i = 0; i < l->ntypes; i++) {
        if (strcmp(l->types[i], type) == 0) {
            return 1;
        }
    }
    return 0;
}

unsigned lab_cat_lab_tat(const cat_lab *l, const char *test)
{
    for (size_t i = 0; i < l->ntats; i++) {
        if (strcmp(l->tats[i].test, test) == 0) {
            return l->tats[i].minutes;
        }
    }
    return l->tat_min;
}

static const char *find_named(const cat_named *arr, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(arr[i].code, code) == 0) {
            return arr[i].name;
        }
    }
    return code;
}

const char *lab_cat_type_name(const rdx_lab_catalogue *c, const char *type)
{
    return find_named(c->types, c->ntypes, type);
}

const char *lab_cat_test_name(const rdx_lab_catalogue *c, const char *test)
{
    return find_named(c->tests, c->ntests, test);
}
