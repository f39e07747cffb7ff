/*
 * libFuzzer target for the hub's two lab steps on untrusted message bytes:
 * rdx_lab_hub_order (route, record, per-lab orders, ACK, order response) and
 * rdx_lab_hub_result (ACK, forwarded ORU), on a fresh in-memory store and
 * the sample catalogue (docs/examples/network.ini; run from the repository
 * root, as make fuzz does). Every message they return must parse again, and
 * so must the order rdx_lab_order_for_new_tube writes, from the kept message,
 * for each tube the order routed (as it does for the tubes rdx opens).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rdx/lab.h"

static void must_parse(const rdx_lab_hub_msg *hm)
{
    rdx_lab_hl7_msg *m = NULL;
    if (hm->len == 0 || rdx_lab_hl7_parse(hm->data, hm->len, &m, NULL) != RDX_OK) {
        abort();
    }
    rdx_lab_hl7_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_lab_catalogue *c = NULL;
    rdx_lab_store *s = NULL;
    if (rdx_lab_catalogue_load("docs/examples/network.ini", &c, NULL) != RDX_OK) {
        return 0;
    }
    if (rdx_lab_store_open("sqlite::memory:", &s, NULL) != RDX_OK) {
        rdx_lab_catalogue_free(c);
        return 0;
    }
    const rdx_lab_hub_opts opts = {.timestamp = "20261201083000+0800",
                                   .now_ms = INT64_C(1796083200000)};
    rdx_lab_hub_msg hm;
    for (int pass = 0; pass < 2; pass++) { /* the second pass: already routed */
        rdx_lab_hub_order_out *h = NULL;
        if (rdx_lab_hub_order(s, c, data, size, &opts, &h, NULL) != RDX_OK) {
            break;
        }
        rdx_lab_hub_order_ack(h, &hm);
        must_parse(&hm);
        if (rdx_lab_hub_order_response(h, &hm)) {
            must_parse(&hm);
        }
        for (size_t i = 0; rdx_lab_hub_order_lab_at(h, i, &hm); i++) {
            must_parse(&hm);
        }
        if (rdx_lab_hub_order_code(h) == RDX_LAB_ACK_AA && rdx_lab_hub_order_routing(h) == NULL) {
            abort();
        }
        const rdx_lab_routing *rt = rdx_lab_hub_order_routing(h);
        for (size_t i = 0; pass == 0 && rt != NULL && i < rdx_lab_routing_count(rt); i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            rdx_lab_hl7_address a = {.timestamp = opts.timestamp};
            rdx_buf b;
            rdx_buf_init(&b, 1u << 24);
            if (d->lab[0] != '\0' &&
                rdx_lab_order_for_new_tube(s, c, d->specimen_authority, d->specimen_id, &a, &b,
                                           NULL) == RDX_OK) {
                rdx_lab_hub_msg nm = {.facility = d->lab, .data = b.data, .len = b.len};
                must_parse(&nm);
            }
            rdx_buf_free(&b);
        }
        rdx_lab_hub_order_free(h);
    }
    rdx_lab_hub_result_out *r = NULL;
    if (rdx_lab_hub_result(s, data, size, &opts, &r, NULL) == RDX_OK) {
        rdx_lab_hub_result_ack(r, &hm);
        must_parse(&hm);
        if (rdx_lab_hub_result_forward(r, &hm)) {
            must_parse(&hm);
        }
        rdx_lab_hub_result_free(r);
    }
    rdx_lab_store_free(s);
    rdx_lab_catalogue_free(c);
    return 0;
}
