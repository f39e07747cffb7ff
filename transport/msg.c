/*
 * Frame payloads: the case manifest, chunks, progress, commit/ack and
 * refusals. Big-endian binary with length-prefixed strings, read through
 * rdx_rd so a short or lying payload fails cleanly; every string is checked
 * for what it will be used as (a case ID, an institution ID, a file name).
 *
 * Manifest (OFFER payload), version 1:
 *   u8 version, str8 case_id, str8 kind, str8 sender, str8 recipient,
 *   u64 created_ms, u32 chunk_size, u16 nitems,
 *   nitems x { str16 name, u64 size, 32 bytes SHA-256 }
 * CHUNK: str8 case_id, u16 item, u64 offset, 32 bytes check value (the item's
 *        SHA-256 chaining value at the chunk's end), u8 nlinks (0..15),
 *        nlinks x 32 bytes link values (the chaining values at the ends of the
 *        chunk's sixteenths but the last, see rdx_tp_sha_links), u16 pad, pad zero bytes,
 *        data... (pad puts the data of a chunk of 1 MiB or more at a multiple
 *        of 4 KiB into the payload; 0 for smaller chunks; at most 4095)
 * PROGRESS: str8 case_id, u16 n, n x u64 durable bytes
 * COMMIT / ACK: str8 case_id, u8 flag (ACK: 1 = duplicate, already delivered)
 * REFUSE: str8 case_id (may be empty), u16 code, str16 reason
 */
#include "transport_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_VERSION 1

static rdx_status put_u8(rdx_buf *b, uint8_t v)
{
    return rdx_buf_append(b, &v, 1);
}

static rdx_status put_u16(rdx_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return rdx_buf_append(b, x, 2);
}

static rdx_status put_u32(rdx_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return rdx_buf_append(b, x, 4);
}

static rdx_status put_u64(rdx_buf *b, uint64_t v)
{
    RDX_TRY(put_u32(b, (uint32_t)(v >> 32)));
    return put_u32(b, (uint32_t)v);
}

static rdx_status put_str8(rdx_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > 255) {
        return RDX_ELIMIT;
    }
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)n));
    return rdx_buf_append(b, s, n);
}

static rdx_status put_str16(rdx_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > 65535) {
        return RDX_ELIMIT;
    }
    RDX_TRY(put_u16(b, (uint16_t)n));
    return rdx_buf_append(b, s, n);
}

static rdx_status get_u64(rdx_rd *r, uint64_t *out)
{
    uint32_t hi, lo;
    size_t save = r->off;
    if (rdx_rd_u32be(r, &hi) != RDX_OK || rdx_rd_u32be(r, &lo) != RDX_OK) {
        r->off = save;
        return RDX_ESHORT;
    }
    *out = ((uint64_t)hi << 32) | lo;
    return RDX_OK;
}

/* A length-prefixed string of at most max bytes into out[max + 1]. */
static rdx_status get_str(rdx_rd *r, int wide, char *out, size_t max, const char *what,
                          rdx_error *err)
{
    size_t start = r->off;
    size_t n;
    const uint8_t *p;
    if (wide) {
        uint16_t v;
        if (rdx_rd_u16be(r, &v) != RDX_OK) {
            return rdx_error_set(err, RDX_ESHORT, "%s: ends at byte %zu", what, start);
        }
        n = v;
    } else {
        uint8_t v;
        if (rdx_rd_u8(r, &v) != RDX_OK) {
            return rdx_error_set(err, RDX_ESHORT, "%s: ends at byte %zu", what, start);
        }
        n = v;
    }
    if (n > max) {
        r->off = start;
        return rdx_error_set(err, RDX_ELIMIT, "%s at byte %zu: %zu bytes, more than %zu", what,
                             start, n, max);
    }
    if (rdx_rd_view(r, &p, n) != RDX_OK) {
        r->off = start;
        return rdx_error_set(err, RDX_ESHORT, "%s at byte %zu: %zu bytes announced, %zu left", what,
                             start, n, rdx_rd_remaining(r));
    }
    if (memchr(p, '\0', n) != NULL) {
        r->off = start;
        return rdx_error_set(err, RDX_EPARSE, "%s at byte %zu: contains NUL", what, start);
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return RDX_OK;
}

rdx_status rdx_tp_item_name_check(const char *name, size_t n, rdx_error *err)
{
    if (n == 0) {
        return rdx_error_set(err, RDX_EPARSE, "item name is empty");
    }
    if (n > RDX_TRANSPORT_ITEM_NAME_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "item name is longer than %d bytes",
                             RDX_TRANSPORT_ITEM_NAME_MAX);
    }
    if (name[0] == '.') {
        /* Also refuses "." and "..". */
        return rdx_error_set(err, RDX_EPARSE, "item name '%.*s' starts with '.'", (int)n, name);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c == '\0' || c < 0x20 || c == 0x7f) {
            return rdx_error_set(err, RDX_EPARSE,
                                 "item name '%.*s': byte %zu (0x%02x) is not allowed in a file "
                                 "name",
                                 (int)n, name, i + 1, c);
        }
    }
    return RDX_OK;
}

rdx_status rdx_tp_case_id_check(const char *id, size_t n, rdx_error *err)
{
    if (n == 0 || n > RDX_TRANSPORT_CASE_ID_MAX) {
        return rdx_error_set(err, RDX_EPARSE, "case ID must be 1 to %d characters",
                             RDX_TRANSPORT_CASE_ID_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_';
        if (!ok) {
            return rdx_error_set(err, RDX_EPARSE, "case ID '%.*s': byte %zu is not A-Z a-z 0-9 - _",
                                 (int)n, id, i + 1);
        }
    }
    return RDX_OK;
}

rdx_status rdx_tp_manifest_encode(const struct rdx_tp_manifest *m, rdx_buf *out, rdx_error *err)
{
    const char *kind = rdx_transport_kind_name(m->kind);
    size_t start = out->len;
    rdx_status st;
    if (kind == NULL || m->nitems > RDX_TRANSPORT_ITEMS_MAX) {
        return rdx_error_set(err, RDX_EINVAL, "manifest: bad kind or too many items");
    }
    if ((st = rdx_buf_append_u8(out, MANIFEST_VERSION)) != RDX_OK ||
        (st = put_str8(out, m->case_id)) != RDX_OK || (st = put_str8(out, kind)) != RDX_OK ||
        (st = put_str8(out, m->sender)) != RDX_OK || (st = put_str8(out, m->recipient)) != RDX_OK ||
        (st = put_u64(out, (uint64_t)m->created_ms)) != RDX_OK ||
        (st = put_u32(out, m->chunk_size)) != RDX_OK ||
        (st = put_u16(out, (uint16_t)m->nitems)) != RDX_OK) {
        goto fail;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        if ((st = put_str16(out, m->items[i].name)) != RDX_OK ||
            (st = put_u64(out, m->items[i].size)) != RDX_OK ||
            (st = rdx_buf_append(out, m->items[i].sha256, 32)) != RDX_OK) {
            goto fail;
        }
    }
    if (out->len - start > RDX_TRANSPORT_OFFER_MAX) {
        st = RDX_ELIMIT;
        goto fail;
    }
    return RDX_OK;
fail:
    out->len = start;
    return rdx_error_set(err, st, "manifest: %s", rdx_strerror(st));
}

void rdx_tp_manifest_clear(struct rdx_tp_manifest *m)
{
    for (size_t i = 0; m->items != NULL && i < m->nitems; i++) {
        free(m->items[i].checks);
    }
    free(m->items);
    memset(m, 0, sizeof *m);
}

rdx_status rdx_tp_manifest_decode(const uint8_t *p, size_t n, struct rdx_tp_manifest *m,
                                  rdx_error *err)
{
    rdx_rd r;
    uint8_t ver;
    uint16_t nitems;
    uint64_t created;
    char kind[32];
    rdx_status st;
    rdx_transport_kind k;
    memset(m, 0, sizeof *m);
    rdx_rd_init(&r, p, n);
    if (rdx_rd_u8(&r, &ver) != RDX_OK) {
        return rdx_error_set(err, RDX_ESHORT, "manifest: empty");
    }
    if (ver != MANIFEST_VERSION) {
        return rdx_error_set(err, RDX_EFORMAT, "manifest: version %u (this node reads %d)", ver,
                             MANIFEST_VERSION);
    }
    if ((st = get_str(&r, 0, m->case_id, RDX_TRANSPORT_CASE_ID_MAX, "manifest case ID", err)) !=
            RDX_OK ||
        (st = rdx_tp_case_id_check(m->case_id, strlen(m->case_id), err)) != RDX_OK ||
        (st = get_str(&r, 0, kind, sizeof kind - 1, "manifest kind", err)) != RDX_OK) {
        goto fail;
    }
    if (rdx_transport_kind_parse(kind, strlen(kind), &k) != RDX_OK) {
        st = rdx_error_set(err, RDX_EPARSE, "manifest: unknown kind '%s'", kind);
        goto fail;
    }
    m->kind = k;
    if ((st = get_str(&r, 0, m->sender, RDX_TRANSPORT_INST_ID_MAX, "manifest sender", err)) !=
            RDX_OK ||
        (st = rdx_transport_inst_id_check(m->sender, "manifest sender", err)) != RDX_OK ||
        (st = get_str(&r, 0, m->recipient, RDX_TRANSPORT_INST_ID_MAX, "manifest recipient", err)) !=
            RDX_OK ||
        (st = rdx_transport_inst_id_check(m->recipient, "manifest recipient", err)) != RDX_OK) {
        st = st == RDX_EINVAL ? RDX_EPARSE : st;
        if (err != NULL) {
            err->code = st;
        }
        goto fail;
    }
    if (get_u64(&r, &created) != RDX_OK || rdx_rd_u32be(&r, &m->chunk_size) != RDX_OK ||
        rdx_rd_u16be(&r, &nitems) != RDX_OK) {
        st = rdx_error_set(err, RDX_ESHORT, "manifest: ends at byte %zu in the header", r.off);
        goto fail;
    }
    m->created_ms = (int64_t)created;
    if (m->chunk_size < RDX_TRANSPORT_CHUNK_MIN || m->chunk_size > RDX_TRANSPORT_CHUNK_MAX ||
        m->chunk_size % RDX_TRANSPORT_CHUNK_ALIGN != 0) {
        st = rdx_error_set(err, RDX_ERANGE,
                           "manifest: chunk size %lu is not a multiple of 4 KiB from 1 to 8 MiB",
                           (unsigned long)m->chunk_size);
        goto fail;
    }
    if (nitems == 0 || nitems > RDX_TRANSPORT_ITEMS_MAX) {
        st = rdx_error_set(err, RDX_ELIMIT, "manifest: %u items (1 to %d allowed)", nitems,
                           RDX_TRANSPORT_ITEMS_MAX);
        goto fail;
    }
    /* Each item needs at least 42 bytes: refuse a count the payload cannot hold before allocating.
     */
    if ((size_t)nitems * 42 > rdx_rd_remaining(&r)) {
        st = rdx_error_set(err, RDX_ESHORT, "manifest: %u items announced, %zu bytes left", nitems,
                           rdx_rd_remaining(&r));
        goto fail;
    }
    m->items = rdx_callocarray(nitems, sizeof *m->items);
    if (m->items == NULL) {
        st = rdx_error_set(err, RDX_ENOMEM, "manifest: out of memory");
        goto fail;
    }
    m->nitems = nitems;
    for (size_t i = 0; i < nitems; i++) {
        struct rdx_tp_item *it = &m->items[i];
        if ((st = get_str(&r, 1, it->name, RDX_TRANSPORT_ITEM_NAME_MAX, "item name", err)) !=
                RDX_OK ||
            (st = rdx_tp_item_name_check(it->name, strlen(it->name), err)) != RDX_OK) {
            rdx_error_prefix(err, "manifest item %zu: ", i + 1);
            goto fail;
        }
        if (get_u64(&r, &it->size) != RDX_OK || rdx_rd_bytes(&r, it->sha256, 32) != RDX_OK) {
            st =
                rdx_error_set(err, RDX_ESHORT, "manifest item %zu: ends at byte %zu", i + 1, r.off);
            goto fail;
        }
        if (it->size > RDX_TRANSPORT_ITEM_SIZE_MAX) {
            st = rdx_error_set(err, RDX_ELIMIT, "manifest item %zu: %llu bytes is over 1 TiB",
                               i + 1, (unsigned long long)it->size);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->items[j].name, it->name) == 0) {
                st = rdx_error_set(err, RDX_EPARSE, "manifest item %zu: name '%s' repeats item %zu",
                                   i + 1, it->name, j + 1);
                goto fail;
            }
        }
    }
    if (rdx_rd_remaining(&r) != 0) {
        st = rdx_error_set(err, RDX_EPARSE, "manifest: %zu stray bytes at the end",
                           rdx_rd_remaining(&r));
        goto fail;
    }
    return RDX_OK;
fail:
    rdx_tp_manifest_clear(m);
    return st;
}

rdx_status rdx_tp_chunk_header(const struct rdx_tp_chunk *c, uint8_t *out, size_t *len,
                               rdx_error *err)
{
    rdx_buf b;
    rdx_status st;
    rdx_buf_init(&b, RDX_TRANSPORT_CHUNK_HDR_MAX);
    if ((st = put_str8(&b, c->case_id)) != RDX_OK || (st = put_u16(&b, c->item)) != RDX_OK ||
        (st = put_u64(&b, c->offset)) != RDX_OK ||
        (st = rdx_buf_append(&b, c->sha256, 32)) != RDX_OK ||
        (st = c->nlinks >= RDX_TRANSPORT_LINKS ? RDX_ERANGE : RDX_OK) != RDX_OK ||
        (st = put_u8(&b, (uint8_t)c->nlinks)) != RDX_OK ||
        (st = rdx_buf_append(&b, c->links, 32 * (size_t)c->nlinks)) != RDX_OK) {
        rdx_buf_free(&b);
        return rdx_error_set(err, st, "chunk header: %s", rdx_strerror(st));
    }
    /* A large chunk's data starts on a RDX_TRANSPORT_DATA_ALIGN boundary of the payload. */
    size_t pad = 0;
    if (c->len >= RDX_TRANSPORT_ALIGN_MIN) {
        pad = (RDX_TRANSPORT_DATA_ALIGN - (b.len + 2) % RDX_TRANSPORT_DATA_ALIGN) %
              RDX_TRANSPORT_DATA_ALIGN;
    }
    if ((st = put_u16(&b, (uint16_t)pad)) != RDX_OK || (st = rdx_buf_reserve(&b, pad)) != RDX_OK) {
        rdx_buf_free(&b);
        return rdx_error_set(err, st, "chunk header: %s", rdx_strerror(st));
    }
    memset(b.data + b.len, 0, pad);
    b.len += pad;
    memcpy(out, b.data, b.len);
    *len = b.len;
    rdx_buf_free(&b);
    return RDX_OK;
}

rdx_status rdx_tp_chunk_decode(const uint8_t *p, size_t n, struct rdx_tp_chunk *c, rdx_error *err)
{
    rdx_rd r;
    rdx_rd_init(&r, p, n);
    RDX_TRY(get_str(&r, 0, c->case_id, RDX_TRANSPORT_CASE_ID_MAX, "chunk case ID", err));
    uint16_t pad = 0;
    uint8_t nl = 0;
    if (rdx_rd_u16be(&r, &c->item) != RDX_OK || get_u64(&r, &c->offset) != RDX_OK ||
        rdx_rd_bytes(&r, c->sha256, 32) != RDX_OK || rdx_rd_u8(&r, &nl) != RDX_OK) {
        return rdx_error_set(err, RDX_ESHORT, "chunk: header ends at byte %zu", r.off);
    }
    if (nl >= RDX_TRANSPORT_LINKS) {
        return rdx_error_set(err, RDX_ERANGE, "chunk: %u link values (at most %u)", nl,
                             RDX_TRANSPORT_LINKS - 1);
    }
    c->nlinks = nl;
    if (rdx_rd_bytes(&r, c->links, 32 * (size_t)nl) != RDX_OK || rdx_rd_u16be(&r, &pad) != RDX_OK) {
        return rdx_error_set(err, RDX_ESHORT, "chunk: header ends at byte %zu", r.off);
    }
    if (pad > RDX_TRANSPORT_CHUNK_PAD_MAX) {
        return rdx_error_set(err, RDX_ERANGE, "chunk: %u bytes of padding (at most %u)", pad,
                             RDX_TRANSPORT_CHUNK_PAD_MAX);
    }
    for (unsigned k = 0; k < pad; k++) {
        uint8_t z;
        if (rdx_rd_u8(&r, &z) != RDX_OK) {
            return rdx_error_set(err, RDX_ESHORT, "chunk: padding ends at byte %zu", r.off);
        }
        if (z != 0) {
            return rdx_error_set(err, RDX_EPROTO, "chunk: padding byte %zu is not zero", r.off - 1);
        }
    }
    c->len = rdx_rd_remaining(&r);
    if (c->len == 0 || c->len > RDX_TRANSPORT_CHUNK_MAX) {
        return rdx_error_set(err, RDX_ERANGE, "chunk: %zu data bytes (1 to 8 MiB allowed)", c->len);
    }
    c->data = p + r.off;
    return RDX_OK;
}

rdx_status rdx_tp_progress_encode(const char *case_id, const uint64_t *done, size_t n, rdx_buf *out,
                                  rdx_error *err)
{
    rdx_status st;
    if (n > RDX_TRANSPORT_ITEMS_MAX) {
        return rdx_error_set(err, RDX_ELIMIT, "progress: too many items");
    }
    if ((st = put_str8(out, case_id)) != RDX_OK || (st = put_u16(out, (uint16_t)n)) != RDX_OK) {
        return rdx_error_set(err, st, "progress: %s", rdx_strerror(st));
    }
    for (size_t i = 0; i < n; i++) {
        if ((st = put_u64(out, done[i])) != RDX_OK) {
            return rdx_error_set(err, st, "progress: %s", rdx_strerror(st));
        }
    }
    return RDX_OK;
}

rdx_status rdx_tp_progress_decode(const uint8_t *p, size_t len, char *case_id, uint64_t *done,
                                  size_t max, size_t *n, rdx_error *err)
{
    rdx_rd r;
    uint16_t cnt;
    rdx_rd_init(&r, p, len);
    RDX_TRY(get_str(&r, 0, case_id, RDX_TRANSPORT_CASE_ID_MAX, "progress case ID", err));
    if (rdx_rd_u16be(&r, &cnt) != RDX_OK) {
        return rdx_error_set(err, RDX_ESHORT, "progress: no item count");
    }
    if (cnt > max) {
        return rdx_error_set(err, RDX_ELIMIT, "progress: %u items, the case has %zu", cnt, max);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (get_u64(&r, &done[i]) != RDX_OK) {
            return rdx_error_set(err, RDX_ESHORT, "progress: ends at item %zu", i + 1);
        }
    }
    if (rdx_rd_remaining(&r) != 0) {
        return rdx_error_set(err, RDX_EPARSE, "progress: stray bytes at the end");
    }
    *n = cnt;
    return RDX_OK;
}

rdx_status rdx_tp_caseref_encode(const char *case_id, int flag, rdx_buf *out, rdx_error *err)
{
    rdx_status st;
    if ((st = put_str8(out, case_id)) != RDX_OK ||
        (st = rdx_buf_append_u8(out, flag ? 1 : 0)) != RDX_OK) {
        return rdx_error_set(err, st, "case reference: %s", rdx_strerror(st));
    }
    return RDX_OK;
}

rdx_status rdx_tp_caseref_decode(const uint8_t *p, size_t len, char *case_id, int *flag,
                                 rdx_error *err)
{
    rdx_rd r;
    uint8_t f;
    rdx_rd_init(&r, p, len);
    RDX_TRY(get_str(&r, 0, case_id, RDX_TRANSPORT_CASE_ID_MAX, "case ID", err));
    if (rdx_rd_u8(&r, &f) != RDX_OK || f > 1 || rdx_rd_remaining(&r) != 0) {
        return rdx_error_set(err, RDX_EPARSE, "case reference: bad flag or stray bytes");
    }
    *flag = f;
    return RDX_OK;
}

int rdx_tp_refuse_permanent(unsigned code)
{
    return code == RDX_TP_REFUSE_POLICY || code == RDX_TP_REFUSE_MANIFEST ||
           code == RDX_TP_REFUSE_CONFLICT;
}

rdx_status rdx_tp_refuse_encode(const char *case_id, unsigned code, const char *reason,
                                rdx_buf *out, rdx_error *err)
{
    char r[RDX_TRANSPORT_REASON_MAX + 1];
    rdx_status st;
    snprintf(r, sizeof r, "%s", reason);
    if ((st = put_str8(out, case_id)) != RDX_OK || (st = put_u16(out, (uint16_t)code)) != RDX_OK ||
        (st = put_str16(out, r)) != RDX_OK) {
        return rdx_error_set(err, st, "refusal: %s", rdx_strerror(st));
    }
    return RDX_OK;
}

rdx_status rdx_tp_refuse_decode(const uint8_t *p, size_t len, char *case_id, unsigned *code,
                                char *reason, size_t reasonsz, rdx_error *err)
{
    rdx_rd r;
    uint16_t c;
    char text[RDX_TRANSPORT_REASON_MAX + 1];
    rdx_rd_init(&r, p, len);
    if (len > 0 && p[0] == 0) {
        case_id[0] = '\0';
        r.off = 1;
    } else {
        RDX_TRY(get_str(&r, 0, case_id, RDX_TRANSPORT_CASE_ID_MAX, "refusal case ID", err));
    }
    if (rdx_rd_u16be(&r, &c) != RDX_OK) {
        return rdx_error_set(err, RDX_ESHORT, "refusal: no code");
    }
    RDX_TRY(get_str(&r, 1, text, RDX_TRANSPORT_REASON_MAX, "refusal reason", err));
    if (rdx_rd_remaining(&r) != 0) {
        return rdx_error_set(err, RDX_EPARSE, "refusal: stray bytes at the end");
    }
    /* The reason is the peer's text: keep printable ASCII only before it reaches a log. */
    for (char *t = text; *t != '\0'; t++) {
        if ((unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e) {
            *t = '?';
        }
    }
    *code = c;
    snprintf(reason, reasonsz, "%s", text);
    return RDX_OK;
}
