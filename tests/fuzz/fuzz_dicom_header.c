/*
 * libFuzzer target: open a DICOM stream from memory through the DCMTK shim
 * (header only, stopping before Pixel Data), then walk every element, into
 * sequences, reading each as text and as numbers. Nothing may crash, hang,
 * leak or read out of bounds, whatever the bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "rdx/common.h"
#include "rdx/imaging.h"

#define MAX_DEPTH 8

static void walk(const rdx_img_dataset *ds, const rdx_img_item *it, rdx_buf *b, int depth)
{
    size_t n = rdx_img_item_elem_count(ds, it);
    for (size_t i = 0; i < n; i++) {
        rdx_img_elem e;
        if (rdx_img_item_elem(ds, it, i, &e) != RDX_OK) {
            continue;
        }
        if (e.is_sequence) {
            size_t items = 0;
            if (depth < MAX_DEPTH &&
                rdx_img_item_seq_count(ds, it, e.tag, &items, NULL) == RDX_OK) {
                for (size_t k = 0; k < items && k < 64; k++) {
                    const rdx_img_item *sub = NULL;
                    if (rdx_img_item_seq_item(ds, it, e.tag, k, &sub, NULL) == RDX_OK) {
                        walk(ds, sub, b, depth + 1);
                    }
                }
            }
            continue;
        }
        (void)rdx_img_item_get_text(ds, it, e.tag, b, NULL);
        int64_t v;
        double d;
        (void)rdx_img_item_get_i64(ds, it, e.tag, 0, &v, NULL);
        (void)rdx_img_item_get_double(ds, it, e.tag, e.vm > 0 ? e.vm - 1 : 0, &d, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdx_img_dataset *ds = NULL;
    rdx_error err;
    if (rdx_img_dataset_open_mem(data, size, "fuzz", &ds, &err) != RDX_OK) {
        return 0;
    }
    rdx_buf b;
    rdx_buf_init(&b, 1 << 16);
    (void)rdx_img_dataset_transfer_syntax(ds);
    (void)rdx_img_dataset_sop_class(ds);
    (void)rdx_img_dataset_sop_instance(ds);
    const rdx_img_item *meta = rdx_img_dataset_meta(ds);
    if (meta != NULL) {
        walk(ds, meta, &b, 0);
    }
    walk(ds, rdx_img_dataset_root(ds), &b, 0);
    rdx_buf_free(&b);
    rdx_img_dataset_free(ds);
    return 0;
}
