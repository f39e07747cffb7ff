/*
 * libFuzzer target for the frame payload parsers a peer can reach: the case
 * manifest (OFFER), CHUNK, PROGRESS, COMMIT/ACK and REFUSE. The first byte
 * picks the parser. A manifest that parses must hold only safe item names,
 * valid IDs and in-range sizes, and must re-encode to exactly the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"
#include "../../transport/transport_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t which = data[0] % 5;
    data++;
    size--;
    char id[RDX_TRANSPORT_CASE_ID_MAX + 1];
    switch (which) {
    case 0: {
        struct rdx_tp_manifest m;
        if (rdx_tp_manifest_decode(data, size, &m, NULL) != RDX_OK) {
            break;
        }
        for (size_t i = 0; i < m.nitems; i++) {
            const char *n = m.items[i].name;
            if (n[0] == '.' || strchr(n, '/') != NULL || strchr(n, '\\') != NULL ||
                m.items[i].size > RDX_TRANSPORT_ITEM_SIZE_MAX) {
                abort();
            }
        }
        rdx_buf b;
        rdx_buf_init(&b, RDX_TRANSPORT_OFFER_MAX);
        if (rdx_tp_manifest_encode(&m, &b, NULL) != RDX_OK || b.len != size ||
            memcmp(b.data, data, size) != 0) {
            abort();
        }
        rdx_buf_free(&b);
        rdx_tp_manifest_clear(&m);
        break;
    }
    case 1: {
        struct rdx_tp_chunk c;
        if (rdx_tp_chunk_decode(data, size, &c, NULL) == RDX_OK &&
            (c.data < data || c.data + c.len != data + size || c.nlinks >= RDX_TRANSPORT_LINKS)) {
            abort();
        }
        break;
    }
    case 2: {
        uint64_t done[64];
        size_t n = 0;
        if (rdx_tp_progress_decode(data, size, id, done, 64, &n, NULL) == RDX_OK && n > 64) {
            abort();
        }
        break;
    }
    case 3: {
        int flag = 0;
        (void)rdx_tp_caseref_decode(data, size, id, &flag, NULL);
        break;
    }
    default: {
        unsigned code = 0;
        char reason[200];
        if (rdx_tp_refuse_decode(data, size, id, &code, reason, sizeof reason, NULL) == RDX_OK) {
            for (const char *p = reason; *p != '\0'; p++) {
                if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
                    abort();
                }
            }
        }
        break;
    }
    }
    return 0;
}
