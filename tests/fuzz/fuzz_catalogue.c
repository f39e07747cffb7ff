/*
 * libFuzzer target for the catalogue parser (INI through libinih, our line
 * reader and the cross-checks), and for routing one fixed order against
 * whatever catalogue parses.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rdx/lab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_lab_catalogue *c = NULL;
    if (rdx_lab_catalogue_parse((const char *)data, size, "fuzz.ini", &c, NULL) != RDX_OK) {
        return 0;
    }
    static const char msg[] = "MSH|^~\\&|HIS|K1|RDX|HUB|202612010700+0800||OML^O21|C1|P|2.5.1\r"
                              "PID|1||P1\rOBR|1|O1||K\rSPM|1|T1||SER|||||||||||||202612010800\r"
                              "OBR|2|O1||NA\rSPM|2|T1||SER|||||||||||||202612010800\r";
    rdx_lab_hl7_msg *m = NULL;
    rdx_lab_order *o = NULL;
    rdx_lab_router *r = NULL;
    rdx_lab_routing *rt = NULL;
    if (rdx_lab_hl7_parse(msg, sizeof msg - 1, &m, NULL) == RDX_OK &&
        rdx_lab_order_from_hl7(m, rdx_lab_catalogue_utc_offset_min(c), &o, NULL) == RDX_OK &&
        rdx_lab_router_new(c, &r, NULL) == RDX_OK && rdx_lab_route(r, o, &rt, NULL) == RDX_OK) {
        if (rdx_lab_routing_count(rt) != 2) {
            abort();
        }
        /* Each performing lab's order parses again. */
        for (size_t i = 0; i < rdx_lab_routing_count(rt); i++) {
            const rdx_lab_decision *d = rdx_lab_routing_at(rt, i);
            rdx_lab_hl7_address a = {.receiving_facility = d->lab, .control_id = "F1"};
            rdx_buf b;
            rdx_buf_init(&b, 1 << 20);
            rdx_status st = rdx_lab_order_for_lab(m, rt, d->lab, &a, &b, NULL);
            if (d->lab[0] != '\0' && st != RDX_OK) {
                abort();
            }
            if (st == RDX_OK) {
                rdx_lab_hl7_msg *f = NULL;
                if (rdx_lab_hl7_parse(b.data, b.len, &f, NULL) != RDX_OK) {
                    abort();
                }
                rdx_lab_hl7_free(f);
            }
            rdx_buf_free(&b);
        }
    }
    rdx_lab_routing_free(rt);
    rdx_lab_router_free(r);
    rdx_lab_order_free(o);
    rdx_lab_hl7_free(m);
    rdx_lab_catalogue_free(c);
    return 0;
}
