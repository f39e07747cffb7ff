#define _GNU_SOURCE
/*
 * Frame payloads a peer sends: manifests with hostile names, counts and
 * sizes; chunks, progress, acknowledgements and refusals that lie about their
 * lengths. Every rejection must be clean and say what is wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/testutil.h"

static struct rdx_tp_item items[3];

static void sample(struct rdx_tp_manifest *m)
{
    memset(m, 0, sizeof *m);
    memset(items, 0, sizeof items);
    snprintf(m->case_id, sizeof m->case_id, "0123456789abcdef0123456789abcdef");
    m->kind = RDX_KIND_LAB_RESULT;
    snprintf(m->sender, sizeof m->sender, "yz-lab");
    snprintf(m->recipient, sizeof m->recipient, "gulou-chc");
    m->created_ms = 1764576000123;
    m->chunk_size = 4u << 20;
    m->nitems = 3;
    m->items = items;
    const char *names[] = {"ORU_R01.hl7", "report.pdf", "\xe6\x8a\xa5\xe5\x91\x8a.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(items[i].name, sizeof items[i].name, "%s", names[i]);
        items[i].size = 1000u * (unsigned)(i + 1);
        memset(items[i].sha256, 0x10 + i, 32);
    }
}

static void encode(const struct rdx_tp_manifest *m, rdx_buf *b)
{
    rdx_buf_init(b, RDX_TRANSPORT_OFFER_MAX);
    assert_int_equal(rdx_tp_manifest_encode(m, b, NULL), RDX_OK);
}

static void test_msg_manifest_round_trip(void **state)
{
    (void)state;
    struct rdx_tp_manifest m, d;
    rdx_buf b;
    rdx_error err;
    sample(&m);
    encode(&m, &b);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_OK);
    assert_string_equal(d.case_id, m.case_id);
    assert_int_equal(d.kind, RDX_KIND_LAB_RESULT);
    assert_string_equal(d.sender, "yz-lab");
    assert_string_equal(d.recipient, "gulou-chc");
    assert_int_equal(d.created_ms, m.created_ms);
    assert_int_equal(d.chunk_size, m.chunk_size);
    assert_int_equal(d.nitems, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(d.items[i].name, items[i].name);
        assert_int_equal(d.items[i].size, items[i].size);
        assert_memory_equal(d.items[i].sha256, items[i].sha256, 32);
    }
    rdx_tp_manifest_clear(&d);
    /* Every truncation is refused cleanly. */
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_not_equal(rdx_tp_manifest_decode(b.data, cut, &d, &err), RDX_OK);
        assert_null(d.items);
    }
    /* And so is a stray byte at the end. */
    assert_int_equal(rdx_buf_append_u8(&b, 0), RDX_OK);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "stray"));
    rdx_buf_free(&b);
}

static void test_msg_manifest_refuses_unsafe_names(void **state)
{
    (void)state;
    const char *bad[] = {"../etc/passwd", "..",      ".",         "/etc/passwd", "a/b",
                         "a\\b",          ".hidden", "tab\there", "del\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rdx_tp_manifest m, d;
        rdx_buf b;
        rdx_error err;
        sample(&m);
        snprintf(items[1].name, sizeof items[1].name, "%s", bad[i]);
        encode(&m, &b);
        rdx_status st = rdx_tp_manifest_decode(b.data, b.len, &d, &err);
        if (st == RDX_OK) {
            fail_msg("name '%s' accepted", bad[i]);
        }
        assert_non_null(strstr(err.msg, "manifest item 2"));
        rdx_buf_free(&b);
    }
    /* A NUL inside a name: the length says 5, the bytes hold "ab\0cd". */
    struct rdx_tp_manifest m, d;
    rdx_buf b;
    rdx_error err;
    sample(&m);
    snprintf(items[0].name, sizeof items[0].name, "abXcd");
    encode(&m, &b);
    uint8_t *x = memmem(b.data, b.len, "abXcd", 5);
    assert_non_null(x);
    x[2] = '\0';
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "NUL"));
    rdx_buf_free(&b);
    /* Two items with one name would overwrite each other on fetch. */
    sample(&m);
    snprintf(items[2].name, sizeof items[2].name, "%s", items[0].name);
    encode(&m, &b);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "repeats item 1"));
    rdx_buf_free(&b);
    assert_int_equal(rdx_tp_item_name_check("100.dat", 7, &err), RDX_OK);
    assert_int_not_equal(rdx_tp_item_name_check("", 0, &err), RDX_OK);
}

static void test_msg_manifest_refuses_bad_fields(void **state)
{
    (void)state;
    struct rdx_tp_manifest m, d;
    rdx_buf b;
    rdx_error err;
    /* Bad IDs (case, sender, recipient), a chunk size out of range, an absurd item size. */
    sample(&m);
    snprintf(m.case_id, sizeof m.case_id, "../../x");
    encode(&m, &b);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EPARSE);
    rdx_buf_free(&b);
    sample(&m);
    snprintf(m.sender, sizeof m.sender, "a/b");
    encode(&m, &b);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "sender"));
    rdx_buf_free(&b);
    sample(&m);
    m.chunk_size = 100;
    encode(&m, &b);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_ERANGE);
    rdx_buf_free(&b);
    sample(&m);
    items[0].size = RDX_TRANSPORT_ITEM_SIZE_MAX + 1;
    encode(&m, &b);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_ELIMIT);
    rdx_buf_free(&b);
    /* An unknown kind and an unknown version. */
    sample(&m);
    encode(&m, &b);
    uint8_t *k = memmem(b.data, b.len, "lab-result", 10);
    memcpy(k, "lab-resulx", 10);
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "unknown kind"));
    b.data[0] = 2;
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_EFORMAT);
    rdx_buf_free(&b);
    /* An item count the payload cannot hold is refused before anything is allocated. */
    sample(&m);
    m.nitems = 1;
    encode(&m, &b);
    size_t count_off = b.len - (2 + strlen(items[0].name) + 8 + 32) - 2;
    b.data[count_off] = 0x10; /* 4097 items: one over the cap */
    b.data[count_off + 1] = 0x01;
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_ELIMIT);
    b.data[count_off] = 0x00;
    b.data[count_off + 1] = 0x50;
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_ESHORT);
    b.data[count_off + 1] = 0x00;
    assert_int_equal(rdx_tp_manifest_decode(b.data, b.len, &d, &err), RDX_ELIMIT);
    rdx_buf_free(&b);
}

static void test_msg_small_payloads(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_error err;
    char id[80], reason[64];
    uint64_t done[4] = {0};
    size_t n = 0;
    int flag = 0;
    unsigned code = 0;
    const uint64_t want[3] = {0, 1048576, 5};
    rdx_buf_init(&b, 4096);
    assert_int_equal(rdx_tp_progress_encode("case-1", want, 3, &b, &err), RDX_OK);
    assert_int_equal(rdx_tp_progress_decode(b.data, b.len, id, done, 4, &n, &err), RDX_OK);
    assert_int_equal(n, 3);
    assert_int_equal(done[1], 1048576);
    /* More items than the case has. */
    assert_int_equal(rdx_tp_progress_decode(b.data, b.len, id, done, 2, &n, &err), RDX_ELIMIT);
    assert_int_equal(rdx_tp_progress_decode(b.data, b.len - 1, id, done, 4, &n, &err), RDX_ESHORT);
    rdx_buf_reset(&b);
    assert_int_equal(rdx_tp_caseref_encode("case-1", 1, &b, &err), RDX_OK);
    assert_int_equal(rdx_tp_caseref_decode(b.data, b.len, id, &flag, &err), RDX_OK);
    assert_string_equal(id, "case-1");
    assert_int_equal(flag, 1);
    b.data[b.len - 1] = 7;
    assert_int_equal(rdx_tp_caseref_decode(b.data, b.len, id, &flag, &err), RDX_EPARSE);
    rdx_buf_reset(&b);
    /* A refusal's text reaches logs: control bytes are neutralised; long text is cut. */
    assert_int_equal(rdx_tp_refuse_encode("", 6, "disk\nfull\x1b[31m and a long tail", &b, &err),
                     RDX_OK);
    assert_int_equal(rdx_tp_refuse_decode(b.data, b.len, id, &code, reason, sizeof reason, &err),
                     RDX_OK);
    assert_string_equal(id, "");
    assert_int_equal(code, 6);
    assert_null(strchr(reason, '\n'));
    assert_null(strchr(reason, '\x1b'));
    assert_false(rdx_tp_refuse_permanent(RDX_TP_REFUSE_STORAGE));
    assert_true(rdx_tp_refuse_permanent(RDX_TP_REFUSE_POLICY));
    rdx_buf_reset(&b);
    /* A chunk must carry data, and its header must be whole. */
    struct rdx_tp_chunk c, d;
    uint8_t hdr[RDX_TRANSPORT_CHUNK_HDR_MAX];
    size_t hl = 0;
    memset(&c, 0, sizeof c);
    snprintf(c.case_id, sizeof c.case_id, "case-1");
    c.item = 2;
    c.offset = 3ull << 32;
    assert_int_equal(rdx_tp_chunk_header(&c, hdr, &hl, &err), RDX_OK);
    assert_int_equal(rdx_tp_chunk_decode(hdr, hl, &d, &err), RDX_ERANGE);
    assert_int_equal(rdx_tp_chunk_decode(hdr, hl - 1, &d, &err), RDX_ESHORT);
    uint8_t full[RDX_TRANSPORT_CHUNK_HDR_MAX + 3];
    memcpy(full, hdr, hl);
    memcpy(full + hl, "abc", 3);
    assert_int_equal(rdx_tp_chunk_decode(full, hl + 3, &d, &err), RDX_OK);
    assert_int_equal(d.item, 2);
    assert_int_equal(d.offset, 3ull << 32);
    assert_int_equal(d.len, 3);
    assert_memory_equal(d.data, "abc", 3);
    assert_int_equal(d.nlinks, 0);
    assert_int_equal(hl, 1 + 6 + 2 + 8 + 32 + 1 + 2); /* a small chunk: no links, no padding */
    /* A large chunk's header is padded so that its data starts on a 4 KiB boundary. */
    c.len = RDX_TRANSPORT_ALIGN_MIN;
    assert_int_equal(rdx_tp_chunk_header(&c, hdr, &hl, &err), RDX_OK);
    assert_int_equal(hl, RDX_TRANSPORT_DATA_ALIGN);
    const size_t big = RDX_TRANSPORT_ALIGN_MIN;
    uint8_t *frame = calloc(1, hl + big);
    memcpy(frame, hdr, hl);
    frame[hl] = 0x5a;
    assert_int_equal(rdx_tp_chunk_decode(frame, hl + big, &d, &err), RDX_OK);
    assert_int_equal(d.len, big);
    assert_ptr_equal(d.data, frame + RDX_TRANSPORT_DATA_ALIGN);
    assert_int_equal(d.data[0], 0x5a);
    /* The padding must be zeros, and no longer than the alignment needs. */
    frame[hl - 7] = 1;
    assert_int_equal(rdx_tp_chunk_decode(frame, hl + big, &d, &err), RDX_EPROTO);
    assert_non_null(strstr(err.msg, "padding"));
    frame[hl - 7] = 0;
    size_t padpos = 1 + 6 + 2 + 8 + 32 + 1; /* the u16 padding length */
    frame[padpos] = 0x10;
    frame[padpos + 1] = 0x00;
    assert_int_equal(rdx_tp_chunk_decode(frame, hl + big, &d, &err), RDX_ERANGE);
    /* Padding announced but cut off. */
    frame[padpos] = 0x0f;
    frame[padpos + 1] = 0xaf;
    assert_int_equal(rdx_tp_chunk_decode(frame, padpos + 2 + 100, &d, &err), RDX_ESHORT);
    free(frame);
    rdx_buf_free(&b);
}

static void test_msg_chunk_link_values(void **state)
{
    (void)state;
    rdx_error err;
    struct rdx_tp_chunk c, d;
    uint8_t hdr[RDX_TRANSPORT_CHUNK_HDR_MAX + 4];
    size_t hl = 0;
    memset(&c, 0, sizeof c);
    snprintf(c.case_id, sizeof c.case_id, "%s", "0123456789abcdef0123456789abcdef");
    c.item = 1;
    c.offset = 8u << 20;
    c.len = 4;
    /* The most a chunk carries: fifteen values, one per stride but the last. */
    c.nlinks = RDX_TRANSPORT_LINKS - 1;
    for (size_t i = 0; i < sizeof c.links; i++) {
        c.links[i] = (uint8_t)(i * 13 + 1);
    }
    assert_int_equal(rdx_tp_chunk_header(&c, hdr, &hl, &err), RDX_OK);
    assert_int_equal(hl, 1 + 32 + 2 + 8 + 32 + 1 + 15 * 32 + 2);
    memcpy(hdr + hl, "data", 4);
    assert_int_equal(rdx_tp_chunk_decode(hdr, hl + 4, &d, &err), RDX_OK);
    assert_int_equal(d.nlinks, RDX_TRANSPORT_LINKS - 1);
    assert_memory_equal(d.links, c.links, sizeof c.links);
    assert_memory_equal(d.data, "data", 4);
    /* Sixteen would be one per stride including the last, whose value is the check value. */
    size_t nlpos = 1 + 32 + 2 + 8 + 32;
    hdr[nlpos] = RDX_TRANSPORT_LINKS;
    assert_int_equal(rdx_tp_chunk_decode(hdr, hl + 4, &d, &err), RDX_ERANGE);
    assert_non_null(strstr(err.msg, "link values"));
    c.nlinks = RDX_TRANSPORT_LINKS;
    assert_int_not_equal(rdx_tp_chunk_header(&c, hdr, &hl, &err), RDX_OK);
    /* Values announced but cut off. */
    c.nlinks = 3;
    assert_int_equal(rdx_tp_chunk_header(&c, hdr, &hl, &err), RDX_OK);
    assert_int_equal(rdx_tp_chunk_decode(hdr, nlpos + 1 + 3 * 32 - 1, &d, &err), RDX_ESHORT);
}

struct oom_ctx {
    rdx_buf blob;
};

static int oom_decode(void *u)
{
    struct oom_ctx *c = u;
    struct rdx_tp_manifest d;
    if (rdx_tp_manifest_decode(c->blob.data, c->blob.len, &d, NULL) != RDX_OK) {
        return 1;
    }
    rdx_tp_manifest_clear(&d);
    return 0;
}

static void test_msg_manifest_oom_sweep(void **state)
{
    (void)state;
    struct rdx_tp_manifest m;
    struct oom_ctx c;
    sample(&m);
    encode(&m, &c.blob);
    assert_true(rdx_oom_sweep(oom_decode, &c) >= 1);
    rdx_buf_free(&c.blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_manifest_round_trip),
        cmocka_unit_test(test_msg_manifest_refuses_unsafe_names),
        cmocka_unit_test(test_msg_manifest_refuses_bad_fields),
        cmocka_unit_test(test_msg_small_payloads),
        cmocka_unit_test(test_msg_chunk_link_values),
        cmocka_unit_test(test_msg_manifest_oom_sweep),
    };
    return cmocka_run_group_tests_name("transport_msg", tests, NULL, NULL);
}
