/*
 * lab/hl7_batch.c - HL7 v2 batches: FHS/BHS ... BTS/FTS envelopes around
 * messages (HL7 v2.5.1 section 2.10.3), and files of bare messages.
 *
 * The input is split into segments once; envelope segments go to one
 * message-like handle, and each message (MSH up to the next MSH or envelope
 * segment) is parsed on its own, with its own delimiters and MSH-18. The
 * order of envelope segments and messages is kept so that writing the batch
 * back reproduces the file.
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch_item {
    int envelope; /* 1: envelope segment index, 0: message index */
    size_t index;
} batch_item;

struct rdx_lab_hl7_batch {
    rdx_lab_hl7_msg **msgs;
    size_t nmsgs;
    rdx_lab_hl7_msg *env; /* NULL when there is no envelope */
    batch_item *items;
    size_t nitems;
};

void rdx_lab_hl7_batch_free(rdx_lab_hl7_batch *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->nmsgs; i++) {
        rdx_lab_hl7_free(b->msgs[i]);
    }
    free(b->msgs);
    rdx_lab_hl7_free(b->env);
    free(b->items);
    free(b);
}

static int env_id(const uint8_t *p, size_t n)
{
    return n >= 3 && (memcmp(p, "FHS", 3) == 0 || memcmp(p, "BHS", 3) == 0 ||
                      memcmp(p, "BTS", 3) == 0 || memcmp(p, "FTS", 3) == 0);
}

static rdx_status add_item(rdx_lab_hl7_batch *b, size_t *cap, int envelope, size_t index)
{
    if (b->nitems == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        batch_item *t = rdx_reallocarray(b->items, nc, sizeof *t);
        if (t == NULL) {
            return RDX_ENOMEM;
        }
        b->items = t;
        *cap = nc;
    }
    b->items[b->nitems++] = (batch_item){envelope, index};
    return RDX_OK;
}

/* Check a BTS-1 / FTS-1 count against what was seen. */
static rdx_status check_count(const rdx_lab_hl7_msg *env, const char *path, size_t seen,
                              rdx_error *err)
{
    const uint8_t *p;
    size_t n;
    int64_t v;
    RDX_TRY(rdx_lab_hl7_get_raw(env, path, &p, &n, err));
    if (n == 0) {
        return RDX_OK;
    }
    if (rdx_parse_i64((const char *)p, n, 0, INT64_MAX, &v) != RDX_OK) {
        return rdx_error_set(err, RDX_EPARSE, "%s: '%.*s' is not a count", path, (int)n,
                             (const char *)p);
    }
    if ((uint64_t)v != seen) {
        return rdx_error_set(err, RDX_EPARSE, "%s says %lld, the batch has %zu", path, (long long)v,
                             seen);
    }
    return RDX_OK;
}

rdx_status rdx_lab_hl7_batch_parse(const void *data, size_t len, rdx_lab_hl7_batch **out,
                                   rdx_error *err)
{
    const uint8_t *p = data;
    rdx_status st = RDX_OK;
    rdx_buf env;
    size_t itemcap = 0, msgcap = 0, nenv = 0;
    rdx_lab_hl7_batch *b = NULL;

    rdx_buf_init(&env, RDX_LAB_HL7_MAX_MESSAGE);
    if (out == NULL || (data == NULL && len != 0)) {
        return rdx_error_set(err, RDX_EINVAL, "rdx_lab_hl7_batch_parse: bad arguments");
    }
    *out = NULL;
    if (len > RDX_LAB_HL7_MAX_BATCH) {
        return rdx_error_set(err, RDX_ELIMIT, "batch of %zu bytes is larger than %u bytes", len,
                             RDX_LAB_HL7_MAX_BATCH);
    }
    b = calloc(1, sizeof *b);
    if (b == NULL) {
        return rdx_error_set(err, RDX_ENOMEM, "out of memory");
    }
    size_t msg_start = SIZE_MAX, msg_end = 0;
    for (size_t i = 0;;) {
        size_t start = i;
        while (i < len && p[i] != '\r' && p[i] != '\n') {
            i++;
        }
        size_t n = i - start;
        while (i < len && (p[i] == '\r' || p[i] == '\n')) {
            i++;
        }
        int at_end = n == 0 && i >= len;
        if (n == 0 && !at_end) {
            continue;
        }
        int is_env = !at_end && env_id(p + start, n);
        int is_msh = !at_end && n >= 3 && memcmp(p + start, "MSH", 3) == 0;
        /* A message ends at the next MSH, envelope segment, or end of input. */
        if (msg_start != SIZE_MAX && (is_env || is_msh || at_end)) {
            if (b->nmsgs >= RDX_LAB_HL7_MAX_BATCH_MESSAGES) {
                st = rdx_error_set(err, RDX_ELIMIT, "more than %u messages in a batch",
                                   RDX_LAB_HL7_MAX_BATCH_MESSAGES);
                goto out;
            }
            if (b->nmsgs == msgcap) {
                size_t nc = msgcap ? msgcap * 2 : 16;
                rdx_lab_hl7_msg **t = rdx_reallocarray(b->msgs, nc, sizeof *t);
                if (t == NULL) {
                    st = rdx_error_set(err, RDX_ENOMEM, "out of memory");
                    goto out;
                }
                b->msgs = t;
                msgcap = nc;
            }
            rdx_lab_hl7_msg *m = NULL;
            st = lab_hl7_parse_mode(p + msg_start, msg_end - msg_start, LAB_PARSE_MESSAGE, &m, err);
            if (st != RDX_OK) {
                rdx_error_prefix(err, "message %zu (byte %zu): ", b->nmsgs + 1, msg_start);
                goto out;
            }
            b->msgs[b->nmsgs++] = m;
            if ((st = add_item(b, &itemcap, 0, b->nmsgs - 1)) != RDX_OK) {
                rdx_error_set(err, st, "out of memory");
                goto out;
            }
            msg_start = SIZE_MAX;
        }
        if (at_end) {
            break;
        }
        if (is_env) {
            if ((st = rdx_buf_append(&env, p + start, n)) != RDX_OK ||
                (st = rdx_buf_append_u8(&env, '\r')) != RDX_OK ||
                (st = add_item(b, &itemcap, 1, nenv++)) != RDX_OK) {
                rdx_error_set(err, st, "batch envelope at byte %zu: %s", start, rdx_strerror(st));
                goto out;
            }
        } else if (is_msh) {
            msg_start = start;
            msg_end = start + n;
        } else if (msg_start != SIZE_MAX) {
            msg_end = start + n;
        } else {
            st = rdx_error_set(err, RDX_EPARSE,
                               "byte %zu: segment '%.3s' outside any message (want MSH, FHS "
                               "or BHS)",
                               start, (const char *)(p + start));
            goto out;
        }
    }
    if (b->nmsgs == 0 && nenv == 0) {
        st = rdx_error_set(err, RDX_EPARSE, "no MSH segment: not an HL7 message or batch");
        goto out;
    }
    if (nenv > 0) {
        st = lab_hl7_parse_mode(env.data, env.len, LAB_PARSE_ENVELOPE, &b->env, err);
        if (st != RDX_OK) {
            rdx_error_prefix(err, "batch envelope: ");
            goto out;
        }
        /* BTS-1 counts the messages of its batch, FTS-1 the batches of the file. */
        size_t since_bhs = 0, nbhs = 0, nbts = 0, nfts = 0;
        for (size_t k = 0; k < b->nitems; k++) {
            if (!b->items[k].envelope) {
                since_bhs++;
                continue;
            }
            char id[4];
            char path[24];
            rdx_lab_hl7_segment_id(b->env, b->items[k].index, id);
            if (strcmp(id, "BHS") == 0) {
                nbhs++;
                since_bhs = 0;
            } else if (strcmp(id, "BTS") == 0) {
                snprintf(path, sizeof path, "BTS[%zu]-1", ++nbts);
                if ((st = check_count(b->env, path, since_bhs, err)) != RDX_OK) {
                    goto out;
                }
            } else if (strcmp(id, "FTS") == 0) {
                snprintf(path, sizeof path, "FTS[%zu]-1", ++nfts);
                if ((st = check_count(b->env, path, nbhs, err)) != RDX_OK) {
                    goto out;
                }
            }
        }
    }
out:
    rdx_buf_free(&env);
    if (st != RDX_OK) {
        rdx_lab_hl7_batch_free(b);
        return st;
    }
    *out = b;
    return RDX_OK;
}

size_t rdx_lab_hl7_batch_count(const rdx_lab_hl7_batch *b)
{
    return b->nmsgs;
}

const rdx_lab_hl7_msg *rdx_lab_hl7_batch_msg(const rdx_lab_hl7_batch *b, size_t i)
{
    return i < b->nmsgs ? b->msgs[i] : NULL;
}

const rdx_lab_hl7_msg *rdx_lab_hl7_batch_envelope(const rdx_lab_hl7_batch *b)
{
    return b->env;
}

rdx_status rdx_lab_hl7_batch_write(const rdx_lab_hl7_batch *b, rdx_buf *out)
{
    size_t before = out->len;
    rdx_status st = RDX_OK;
    for (size_t k = 0; k < b->nitems && st == RDX_OK; k++) {
        if (b->items[k].envelope) {
            const lab_seg *s = &b->env->segs[b->items[k].index];
            st = rdx_buf_append(out, b->env->raw + s->off, s->len);
            if (st == RDX_OK) {
                st = rdx_buf_append_u8(out, '\r');
            }
        } else {
            st = rdx_lab_hl7_write(b->msgs[b->items[k].index], out);
        }
    }
    if (st != RDX_OK && out->data != NULL) {
        out->len = before;
        out->data[before] = '\0';
    }
    return st;
}
