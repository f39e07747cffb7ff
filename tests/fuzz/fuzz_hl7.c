/*
 * libFuzzer target for the HL7 v2 parser: batch and single-message parsing,
 * paths, decoding, writing (which must reproduce the parsed segments), ACK
 * building, and order/result extraction.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/lab.h"

static void poke(const rdx_lab_hl7_msg *m)
{
    static const char *const paths[] = {"MSH-9",   "MSH-10",     "MSH-18",    "PID-3[2].4.2",
                                        "PID-5.1", "OBX[3]-5",   "SPM-2.1.1", "OBR[2]-4.1",
                                        "NTE-3",   "ZZZ[9]-9[9]"};
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const uint8_t *p;
        size_t n, reps;
        if (rdx_lab_hl7_get(m, paths[i], &b, NULL) == RDX_OK) {
            rdx_buf_reset(&b);
        }
        if (rdx_lab_hl7_get_raw(m, paths[i], &p, &n, NULL) == RDX_OK && n > 0 && p == NULL) {
            abort();
        }
        (void)rdx_lab_hl7_repetitions(m, "PID-3", &reps, NULL);
    }
    rdx_buf_reset(&b);
    if (rdx_lab_hl7_write(m, &b) == RDX_OK) {
        /* What was written parses again and writes the same bytes. */
        rdx_lab_hl7_msg *again = NULL;
        if (rdx_lab_hl7_parse(b.data, b.len, &again, NULL) != RDX_OK) {
            abort();
        }
        rdx_buf c;
        rdx_buf_init(&c, 1 << 20);
        if (rdx_lab_hl7_write(again, &c) != RDX_OK || c.len != b.len ||
            memcmp(c.data, b.data, b.len) != 0) {
            abort();
        }
        rdx_buf_free(&c);
        rdx_lab_hl7_free(again);
    }
    rdx_buf_reset(&b);
    rdx_lab_ack_spec sp = {.code = RDX_LAB_ACK_AE,
                           .control_id = "F1",
                           .timestamp = "20261201",
                           .hl7_error = 101,
                           .err_segment = "PID",
                           .err_field = 3,
                           .text = "fuzz"};
    if (rdx_lab_hl7_ack(m, &sp, &b, NULL) == RDX_OK) {
        rdx_lab_hl7_msg *a = NULL;
        if (rdx_lab_hl7_parse(b.data, b.len, &a, NULL) != RDX_OK) {
            abort();
        }
        rdx_lab_hl7_free(a);
    }
    rdx_buf_reset(&b);
    rdx_lab_hl7_address ad = {
        .sending_app = "RDX", .receiving_facility = "K|^~", .control_id = "F"};
    if (rdx_lab_hl7_readdress(m, &ad, &b, NULL) == RDX_OK) {
        rdx_lab_hl7_msg *f = NULL;
        if (rdx_lab_hl7_parse(b.data, b.len, &f, NULL) != RDX_OK) {
            abort();
        }
        rdx_lab_hl7_free(f);
    }
    rdx_lab_order *o = NULL;
    if (rdx_lab_order_from_hl7(m, 480, &o, NULL) == RDX_OK) {
        rdx_lab_order_free(o);
    }
    rdx_lab_result *r = NULL;
    if (rdx_lab_result_from_hl7(m, &r, NULL) == RDX_OK) {
        rdx_lab_result_free(r);
    }
    rdx_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_lab_hl7_batch *b = NULL;
    if (rdx_lab_hl7_batch_parse(data, size, &b, NULL) == RDX_OK) {
        for (size_t i = 0; i < rdx_lab_hl7_batch_count(b) && i < 4; i++) {
            poke(rdx_lab_hl7_batch_msg(b, i));
        }
        rdx_buf out;
        rdx_buf_init(&out, 1 << 24);
        (void)rdx_lab_hl7_batch_write(b, &out);
        rdx_buf_free(&out);
        rdx_lab_hl7_batch_free(b);
    }
    rdx_lab_hl7_msg *m = NULL;
    if (rdx_lab_hl7_parse(data, size, &m, NULL) == RDX_OK) {
        poke(m);
        rdx_lab_hl7_free(m);
    }
    return 0;
}
