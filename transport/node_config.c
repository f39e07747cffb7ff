/*
 * Node configuration: an INI file read with libinih, every key checked, and
 * paths resolved against the file's directory. Unknown sections and keys are
 * errors: in a security policy a typo must not pass silently.
 */
#define _POSIX_C_SOURCE 200809L
#include "rdx/transport.h"
#include "transport_int.h"
#include "transport_limits.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

static const struct {
    const char *name;
    rdx_transport_kind kind;
} kinds[] = {
    {"ecg", RDX_KIND_ECG},
    {"dicom", RDX_KIND_DICOM},
    {"lab-order", RDX_KIND_LAB_ORDER},
    {"lab-result", RDX_KIND_LAB_RESULT},
    {"report", RDX_KIND_REPORT},
    {"other", RDX_KIND_OTHER},
};
#define NKINDS    (sizeof kinds / sizeof kinds[0])
#define ALL_KINDS 0x3fu

rdx_status rdx_transport_kind_parse(const char *s, size_t n, rdx_transport_kind *out)
{
    for (size_t i = 0; s != NULL && i < NKINDS; i++) {
        if (strlen(kinds[i].name) == n && memcmp(kinds[i].name, s, n) == 0) {
            *out = kinds[i].kind;
            return RDX_OK;
        }
    }
    return RDX_EINVAL;
}

const char *rdx_transport_kind_name(rdx_transport_kind k)
{
    for (size_t i = 0; i < NKINDS; i++) {
        if (kinds[i].kind == k) {
            return kinds[i].name;
        }
    }
    return NULL;
}

struct parse {
    rdx_transport_config *cfg;
    char dir[4096]; /* the config file's directory, for relative paths */
    rdx_error err;  /* the first problem, without the file:line prefix */
    int seen_node;
};

static int bad(struct parse *p, rdx_status code, const char *fmt, ...) RDX_PRINTF(3, 4);

static int bad(struct parse *p, rdx_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rdx_error_setv(&p->err, code, fmt, ap);
    va_end(ap);
    return 0; /* inih: stop, report this line */
}

static int set_path(struct parse *p, char *dst, size_t dstsz, const char *key, const char *v)
{
    int n;
    if (v[0] == '\0') {
        return bad(p, RDX_EINVAL, "[node] %s: empty path", key);
    }
    n = v[0] == '/' ? snprintf(dst, dstsz, "%s", v) : snprintf(dst, dstsz, "%s/%s", p->dir, v);
    if (n < 0 || (size_t)n >= dstsz) {
        return bad(p, RDX_EINVAL, "[node] %s: path too long", key);
    }
    return 1;
}

static int set_uint(struct parse *p, unsigned *dst, const char *key, const char *v, int64_t min,
                    int64_t max)
{
    int64_t x;
    if (rdx_parse_i64(v, strlen(v), min, max, &x) != RDX_OK) {
        return bad(p, RDX_EINVAL, "[node] %s: '%s' is not a whole number from %lld to %lld", key, v,
                   (long long)min, (long long)max);
    }
    *dst = (unsigned)x;
    return 1;
}

/* "host:port" (IPv4 literal, or a name for peers). */
static int split_hostport(struct parse *p, const char *what, const char *v, char *host,
                          size_t hostsz, unsigned *port)
{
    const char *colon = strrchr(v, ':');
    int64_t x;
    if (colon == NULL || colon == v || (size_t)(colon - v) >= hostsz) {
        return bad(p, RDX_EINVAL, "%s: '%s' is not host:port", what, v);
    }
    if (rdx_parse_i64(colon + 1, strlen(colon + 1), 0, 65535, &x) != RDX_OK) {
        return bad(p, RDX_EINVAL, "%s: port '%s' is not 0..65535", what, colon + 1);
    }
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = '\0';
    *port = (unsigned)x;
    return 1;
}

static int node_key(struct parse *p, const char *k, const char *v)
{
    rdx_transport_config *c = p->cfg;
    rdx_error e;
    const int64_t tmin = RDX_TRANSPORT_TIMEOUT_MIN_MS, tmax = RDX_TRANSPORT_TIMEOUT_MAX_MS;
    if (strcmp(k, "id") == 0) {
        if (rdx_transport_inst_id_check(v, "[node] id", &e) != RDX_OK) {
            return bad(p, RDX_EINVAL, "%s", e.msg);
        }
        snprintf(c->id, sizeof c->id, "%s", v);
        return 1;
    }
    if (strcmp(k, "listen") == 0) {
        struct in_addr a;
        if (!split_hostport(p, "[node] listen", v, c->listen_host, sizeof c->listen_host,
                            &c->listen_port)) {
            return 0;
        }
        if (inet_pton(AF_INET, c->listen_host, &a) != 1) {
            return bad(p, RDX_EINVAL, "[node] listen: '%s' is not an IPv4 address", c->listen_host);
        }
        return 1;
    }
    if (strcmp(k, "cert") == 0) {
        return set_path(p, c->cert, sizeof c->cert, k, v);
    }
    if (strcmp(k, "key") == 0) {
        return set_path(p, c->key, sizeof c->key, k, v);
    }
    if (strcmp(k, "ca") == 0) {
        return set_path(p, c->ca, sizeof c->ca, k, v);
    }
    if (strcmp(k, "crl") == 0) {
        return set_path(p, c->crl, sizeof c->crl, k, v);
    }
    if (strcmp(k, "data") == 0) {
        return set_path(p, c->data, sizeof c->data, k, v);
    }
    if (strcmp(k, "handshake_timeout_ms") == 0) {
        return set_uint(p, &c->handshake_ms, k, v, tmin, tmax);
    }
    if (strcmp(k, "read_timeout_ms") == 0) {
        return set_uint(p, &c->read_ms, k, v, tmin, tmax);
    }
    if (strcmp(k, "idle_timeout_ms") == 0) {
        return set_uint(p, &c->idle_ms, k, v, tmin, tmax);
    }
    if (strcmp(k, "max_connections") == 0) {
        return set_uint(p, &c->max_conns, k, v, 1, RDX_TRANSPORT_CONNS_MAX);
    }
    if (strcmp(k, "chunk_size") == 0) {
        if (set_uint(p, &c->chunk_size, k, v, RDX_TRANSPORT_CHUNK_MIN, RDX_TRANSPORT_CHUNK_MAX) !=
            1) {
            return 0;
        }
        if (c->chunk_size % RDX_TRANSPORT_CHUNK_ALIGN != 0) {
            return bad(p, RDX_EINVAL, "[node] %s: %u is not a multiple of %u bytes", k,
                       c->chunk_size, RDX_TRANSPORT_CHUNK_ALIGN);
        }
        return 1;
    }
    if (strcmp(k, "max_attempts") == 0) {
        return set_uint(p, &c->max_attempts, k, v, 1, RDX_TRANSPORT_ATTEMPTS_MAX);
    }
    if (strcmp(k, "retry_base_ms") == 0) {
        return set_uint(p, &c->retry_base_ms, k, v, 1, tmax);
    }
    if (strcmp(k, "retry_max_ms") == 0) {
        return set_uint(p, &c->retry_max_ms, k, v, 1, 24 * tmax);
    }
    if (strcmp(k, "spill_delay_ms") == 0) {
        return set_uint(p, &c->spill_delay_ms, k, v, 0, RDX_TRANSPORT_SPILL_DELAY_MAX_MS);
    }
    if (strcmp(k, "spill_checkpoint_ms") == 0) {
        return set_uint(p, &c->spill_checkpoint_ms, k, v, RDX_TRANSPORT_SPILL_CHECKPOINT_MIN_MS,
                        RDX_TRANSPORT_SPILL_CHECKPOINT_MAX_MS);
    }
    if (strcmp(k, "senders") == 0) {
        return set_uint(p, &c->senders, k, v, 1, RDX_TRANSPORT_SENDERS_MAX);
    }
    if (strcmp(k, "hash_nice") == 0) {
        return set_uint(p, &c->hash_nice, k, v, 0, 19);
    }
    return bad(p, RDX_EINVAL, "[node]: unknown key '%s'", k);
}

static int add_peer(struct parse *p, const char *k, const char *v)
{
    rdx_transport_config *c = p->cfg;
    rdx_error e;
    unsigned port;
    char host[256];
    if (rdx_transport_inst_id_check(k, "[peers] ID", &e) != RDX_OK) {
        return bad(p, RDX_EINVAL, "%s", e.msg);
    }
    if (rdx_tp_config_peer(c, k) != NULL) {
        return bad(p, RDX_EINVAL, "[peers] %s: listed twice", k);
    }
    if (c->npeers >= RDX_TRANSPORT_PEERS_MAX) {
        return bad(p, RDX_ELIMIT, "[peers]: more than %d peers", RDX_TRANSPORT_PEERS_MAX);
    }
    if (!split_hostport(p, "[peers]", v, host, sizeof host, &port)) {
        return 0;
    }
    if (port == 0) {
        return bad(p, RDX_EINVAL, "[peers] %s: port 0", k);
    }
    struct rdx_tp_peer *np = rdx_reallocarray(c->peers, c->npeers + 1, sizeof *np);
    if (np == NULL) {
        return bad(p, RDX_ENOMEM, "out of memory");
    }
    c->peers = np;
    struct rdx_tp_peer *pe = &c->peers[c->npeers++];
    snprintf(pe->id, sizeof pe->id, "%s", k);
    snprintf(pe->host, sizeof pe->host, "%s", host);
    snprintf(pe->port, sizeof pe->port, "%u", port);
    return 1;
}

static int add_rule(struct parse *p, const char *section, int fetch, const char *k, const char *v)
{
    rdx_transport_config *c = p->cfg;
    rdx_error e;
    unsigned set = 0;
    if (strcmp(k, "*") != 0 && rdx_transport_inst_id_check(k, "institution", &e) != RDX_OK) {
        return bad(p, RDX_EINVAL, "[%s] %s", section, e.msg);
    }
    /* A comma-separated list of kinds, or "*". */
    const char *s = v;
    while (*s != '\0') {
        while (*s == ' ' || *s == '\t' || *s == ',') {
            s++;
        }
        const char *t = s;
        while (*t != '\0' && *t != ',' && *t != ' ' && *t != '\t') {
            t++;
        }
        if (t == s) {
            break;
        }
        rdx_transport_kind kd;
        if (t - s == 1 && *s == '*') {
            set |= ALL_KINDS;
        } else if (rdx_transport_kind_parse(s, (size_t)(t - s), &kd) == RDX_OK) {
            set |= (unsigned)kd;
        } else {
            return bad(p, RDX_EINVAL,
                       "[%s] %s: unknown kind '%.*s' (kinds: ecg dicom lab-order lab-result "
                       "report other, or *)",
                       section, k, (int)(t - s), s);
        }
        s = t;
    }
    if (set == 0) {
        return bad(p, RDX_EINVAL, "[%s] %s: no kinds listed", section, k);
    }
    struct rdx_tp_rule **rules = fetch ? &c->fetch_rules : &c->send_rules;
    size_t *n = fetch ? &c->nfetch : &c->nsend;
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*rules)[i].inst, k) == 0) {
            return bad(p, RDX_EINVAL, "[%s] %s: listed twice", section, k);
        }
    }
    if (*n >= RDX_TRANSPORT_RULES_MAX) {
        return bad(p, RDX_ELIMIT, "[%s]: more than %d rules", section, RDX_TRANSPORT_RULES_MAX);
    }
    struct rdx_tp_rule *nr = rdx_reallocarray(*rules, *n + 1, sizeof *nr);
    if (nr == NULL) {
        return bad(p, RDX_ENOMEM, "out of memory");
    }
    *rules = nr;
    snprintf(nr[*n].inst, sizeof nr[*n].inst, "%s", k);
    nr[*n].kinds = set;
    (*n)++;
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    if (strcmp(section, "node") == 0) {
        p->seen_node = 1;
        return node_key(p, name, value);
    }
    if (strcmp(section, "peers") == 0) {
        return add_peer(p, name, value);
    }
    if (strcmp(section, "allow.send") == 0) {
        return add_rule(p, section, 0, name, value);
    }
    if (strcmp(section, "allow.fetch") == 0) {
        return add_rule(p, section, 1, name, value);
    }
    if (strcmp(section, "dispatch") == 0) {
        return 1; /* the hub's dispatcher reads this section itself (hub/dispatch.c) */
    }
    return bad(p, RDX_EINVAL, "unknown section [%s]", section);
}

rdx_status rdx_transport_config_load(const char *path, rdx_transport_config **out, rdx_error *err)
{
    struct parse p;
    rdx_buf text;
    rdx_status st;
    if (path == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration file given");
    }
    memset(&p, 0, sizeof p);
    rdx_error_clear(&p.err);
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(p.dir, sizeof p.dir, ".");
    } else {
        snprintf(p.dir, sizeof p.dir, "%.*s", (int)(slash - path), path);
        if (p.dir[0] == '\0') {
            snprintf(p.dir, sizeof p.dir, "/");
        }
    }
    rdx_buf_init(&text, RDX_TRANSPORT_CONFIG_MAX);
    RDX_TRY(rdx_file_read(path, &text, err));
    if (text.len > 0 && memchr(text.data, '\0', text.len) != NULL) {
        rdx_buf_free(&text);
        return rdx_error_set(err, RDX_EPARSE, "%s: contains a NUL byte", path);
    }
    p.cfg = calloc(1, sizeof *p.cfg);
    if (p.cfg == NULL) {
        rdx_buf_free(&text);
        return rdx_error_set(err, RDX_ENOMEM, "%s: out of memory", path);
    }
    rdx_transport_config *c = p.cfg;
    snprintf(c->path, sizeof c->path, "%s", path);
    c->handshake_ms = 10000;
    c->read_ms = 30000;
    c->idle_ms = 120000;
    c->max_conns = 1024;
    c->chunk_size = 4u << 20;
    c->max_attempts = 10;
    c->retry_base_ms = 500;
    c->retry_max_ms = 60000;
    c->spill_delay_ms = 500;
    c->spill_checkpoint_ms = 2000;
    c->senders = RDX_TRANSPORT_SENDERS_DEFAULT;
    c->listen_port = 65536; /* unset */
    int line = ini_parse_string(text.data != NULL ? (const char *)text.data : "", handler, &p);
    rdx_buf_free(&text);
    if (line != 0) {
        if (line < 0) {
            st = rdx_error_set(err, RDX_ENOMEM, "%s: cannot parse (out of memory)", path);
        } else if (p.err.code != RDX_OK) {
            st = rdx_error_set(err, p.err.code, "%s:%d: %s", path, line, p.err.msg);
        } else {
            st = rdx_error_set(err, RDX_EPARSE, "%s:%d: not 'key = value' or '[section]'", path,
                               line);
        }
        goto fail;
    }
    const struct {
        const char *key;
        int missing;
    } required[] = {
        {"id", c->id[0] == '\0'},     {"listen", c->listen_port == 65536},
        {"cert", c->cert[0] == '\0'}, {"key", c->key[0] == '\0'},
        {"ca", c->ca[0] == '\0'},     {"crl", c->crl[0] == '\0'},
        {"data", c->data[0] == '\0'},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (required[i].missing) {
            st = rdx_error_set(err, RDX_EINVAL, "%s: [node] %s is required", path, required[i].key);
            goto fail;
        }
    }
    if (c->retry_max_ms < c->retry_base_ms) {
        st = rdx_error_set(err, RDX_EINVAL, "%s: [node] retry_max_ms is below retry_base_ms", path);
        goto fail;
    }
    *out = c;
    return RDX_OK;
fail:
    rdx_transport_config_free(c);
    return st;
}

void rdx_transport_config_free(rdx_transport_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    free(cfg->peers);
    free(cfg->send_rules);
    free(cfg->fetch_rules);
    free(cfg);
}

rdx_status rdx_transport_config_reload_peers(rdx_transport_config *cfg, rdx_error *err)
{
    rdx_transport_config *fresh = NULL;
    if (cfg == NULL) {
        return rdx_error_set(err, RDX_EINVAL, "no configuration");
    }
    RDX_TRY(rdx_transport_config_load(cfg->path, &fresh, err));
    struct rdx_tp_peer *peers = cfg->peers;
    size_t npeers = cfg->npeers;
    cfg->peers = fresh->peers;
    cfg->npeers = fresh->npeers;
    fresh->peers = peers;
    fresh->npeers = npeers;
    rdx_transport_config_free(fresh);
    return RDX_OK;
}

const char *rdx_transport_config_id(const rdx_transport_config *cfg)
{
    return cfg->id;
}

const char *rdx_transport_config_data_dir(const rdx_transport_config *cfg)
{
    return cfg->data;
}

const struct rdx_tp_peer *rdx_tp_config_peer(const rdx_transport_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->npeers; i++) {
        if (strcmp(cfg->peers[i].id, id) == 0) {
            return &cfg->peers[i];
        }
    }
    return NULL;
}

int rdx_transport_policy_allows(const rdx_transport_config *cfg, int fetch, const char *inst,
                                rdx_transport_kind kind)
{
    const struct rdx_tp_rule *r = fetch ? cfg->fetch_rules : cfg->send_rules;
    size_t n = fetch ? cfg->nfetch : cfg->nsend;
    unsigned wildcard = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].inst, inst) == 0) {
            /* An institution's own rule wins over the wildcard, so "*" cannot widen it. */
            return (r[i].kinds & (unsigned)kind) != 0;
        }
        if (strcmp(r[i].inst, "*") == 0) {
            wildcard = r[i].kinds;
        }
    }
    return (wildcard & (unsigned)kind) != 0;
}
