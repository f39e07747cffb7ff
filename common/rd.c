/*
 * Bounds-checked byte reader, after s2n's stuffer: every read checks the
 * remaining length first and advances only on success.
 */
#include "rdx/common.h"

#include <string.h>

void rdx_rd_init(rdx_rd *r, const void *p, size_t len)
{
    r->p = p;
    r->len = p != NULL ? len : 0;
    r->off = 0;
}

size_t rdx_rd_remaining(const rdx_rd *r)
{
    return r->len - r->off;
}

/* Written as "n > remaining" so that off + n can never overflow. */
static int has(const rdx_rd *r, size_t n)
{
    return n <= r->len - r->off;
}

rdx_status rdx_rd_u8(rdx_rd *r, uint8_t *out)
{
    if (!has(r, 1)) {
        return RDX_ESHORT;
    }
    *out = r->p[r->off];
    r->off += 1;
    return RDX_OK;
}

rdx_status rdx_rd_u16le(rdx_rd *r, uint16_t *out)
{
    if (!has(r, 2)) {
        return RDX_ESHORT;
    }
    const uint8_t *b = r->p + r->off;
    *out = (uint16_t)(b[0] | (b[1] << 8));
    r->off += 2;
    return RDX_OK;
}

rdx_status rdx_rd_u16be(rdx_rd *r, uint16_t *out)
{
    if (!has(r, 2)) {
        return RDX_ESHORT;
    }
    const uint8_t *b = r->p + r->off;
    *out = (uint16_t)((b[0] << 8) | b[1]);
    r->off += 2;
    return RDX_OK;
}

rdx_status rdx_rd_u32le(rdx_rd *r, uint32_t *out)
{
    if (!has(r, 4)) {
        return RDX_ESHORT;
    }
    const uint8_t *b = r->p + r->off;
    *out = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    r->off += 4;
    return RDX_OK;
}

rdx_status rdx_rd_u32be(rdx_rd *r, uint32_t *out)
{
    if (!has(r, 4)) {
        return RDX_ESHORT;
    }
    const uint8_t *b = r->p + r->off;
    *out = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
    r->off += 4;
    return RDX_OK;
}

rdx_status rdx_rd_bytes(rdx_rd *r, void *out, size_t n)
{
    if (!has(r, n)) {
        return RDX_ESHORT;
    }
    if (n > 0) {
        memcpy(out, r->p + r->off, n);
    }
    r->off += n;
    return RDX_OK;
}

rdx_status rdx_rd_view(rdx_rd *r, const uint8_t **out, size_t n)
{
    if (!has(r, n)) {
        return RDX_ESHORT;
    }
    *out = r->p + r->off;
    r->off += n;
    return RDX_OK;
}

rdx_status rdx_rd_skip(rdx_rd *r, size_t n)
{
    if (!has(r, n)) {
        return RDX_ESHORT;
    }
    r->off += n;
    return RDX_OK;
}
