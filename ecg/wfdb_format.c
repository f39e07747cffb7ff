/*
 * wfdb_format.c - bulk decoders for the WFDB sample formats (signal(5) in the
 * WFDB Applications Guide; the bit layouts match r212/r310/r311 etc. in the
 * WFDB library's signal.c):
 *
 *   8    8-bit first differences (signed), summed onto the initial value
 *   16   16-bit two's complement, little-endian
 *   24   24-bit two's complement, little-endian
 *   32   32-bit two's complement, little-endian
 *   61   16-bit two's complement, big-endian
 *   80   8-bit offset binary (value = byte - 128)
 *   160  16-bit offset binary, little-endian (value = word - 32768)
 *   212  two 12-bit samples in 3 bytes: s0 = b0 | (b1 & 0x0f) << 8,
 *        s1 = b2 | (b1 & 0xf0) << 4
 *   310  three 10-bit samples in two little-endian 16-bit words w0, w1:
 *        s0 = w0 bits 1..10, s1 = w1 bits 1..10,
 *        s2 = w0 bits 11..15 | w1 bits 11..15 << 5
 *   311  three 10-bit samples in bits 0..9, 10..19, 20..29 of a
 *        little-endian 32-bit word
 *
 * Each decoder is one tight loop over whole units of a buffer the caller
 * reuses: no per-sample calls, no allocation, no branch on the format inside
 * the loop. Sign extension uses shifts on uint32_t and a conversion to
 * int32_t, which is implementation-defined in C11 but two's complement on
 * every compiler rdx supports (GCC and Clang document it).
 */
#include "ecg_int.h"

#include <string.h>

static const ecg_format formats[] = {
    {8, 1, 1, 8, 0, 1},           {16, 2, 1, 16, -32768, 0}, {24, 3, 1, 24, -8388608, 0},
    {32, 4, 1, 32, INT32_MIN, 0}, {61, 2, 1, 16, -32768, 0}, {80, 1, 1, 8, -128, 0},
    {160, 2, 1, 16, -32768, 0},   {212, 3, 2, 12, -2048, 0}, {310, 4, 3, 10, -512, 0},
    {311, 4, 3, 10, -512, 0},
};

const ecg_format *ecg_format_find(int format)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (formats[i].format == format) {
            return &formats[i];
        }
    }
    return NULL;
}

/* Sign-extend the low `bits` bits of v. */
static inline int32_t sext(uint32_t v, unsigned bits)
{
    return (int32_t)(v << (32 - bits)) >> (32 - bits);
}

static void dec8(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (int8_t)in[i];
    }
}

static void dec16(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (int16_t)(uint16_t)(in[2 * i] | (unsigned)in[2 * i + 1] << 8);
    }
}

static void dec61(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (int16_t)(uint16_t)(in[2 * i + 1] | (unsigned)in[2 * i] << 8);
    }
}

static void dec24(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = in + 3 * i;
        out[i] = sext(b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16, 24);
    }
}

static void dec32(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = in + 4 * i;
        out[i] =
            (int32_t)(b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
    }
}

static void dec80(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (int32_t)in[i] - 128;
    }
}

static void dec160(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (int32_t)(in[2 * i] | (uint32_t)in[2 * i + 1] << 8) - 32768;
    }
}

static void dec212(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = in + 3 * i;
        uint32_t b1 = b[1];
        out[2 * i] = sext(b[0] | (b1 & 0x0f) << 8, 12);
        out[2 * i + 1] = sext(b[2] | (b1 & 0xf0) << 4, 12);
    }
}

static void dec310(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = in + 4 * i;
        uint32_t w0 = b[0] | (uint32_t)b[1] << 8;
        uint32_t w1 = b[2] | (uint32_t)b[3] << 8;
        out[3 * i] = sext((w0 >> 1) & 0x3ff, 10);
        out[3 * i + 1] = sext((w1 >> 1) & 0x3ff, 10);
        out[3 * i + 2] = sext((w0 >> 11) | (w1 >> 11) << 5, 10);
    }
}

static void dec311(const uint8_t *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = in + 4 * i;
        uint32_t w = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        out[3 * i] = sext(w & 0x3ff, 10);
        out[3 * i + 1] = sext((w >> 10) & 0x3ff, 10);
        out[3 * i + 2] = sext((w >> 20) & 0x3ff, 10);
    }
}

void ecg_format_decode(const ecg_format *f, const uint8_t *in, size_t nunits, int32_t *out)
{
    switch (f->format) {
    case 8:
        dec8(in, nunits, out);
        break;
    case 16:
        dec16(in, nunits, out);
        break;
    case 24:
        dec24(in, nunits, out);
        break;
    case 32:
        dec32(in, nunits, out);
        break;
    case 61:
        dec61(in, nunits, out);
        break;
    case 80:
        dec80(in, nunits, out);
        break;
    case 160:
        dec160(in, nunits, out);
        break;
    case 212:
        dec212(in, nunits, out);
        break;
    case 310:
        dec310(in, nunits, out);
        break;
    case 311:
        dec311(in, nunits, out);
        break;
    default:
        break;
    }
}

size_t ecg_format_decode_tail(const ecg_format *f, const uint8_t *in, size_t nbytes, int32_t *out)
{
    uint8_t unit[4] = {0, 0, 0, 0};
    int32_t tmp[3];
    size_t n = (size_t)ecg_format_samples_in(f, nbytes);
    if (n == 0 || nbytes >= f->unit_bytes) {
        return 0;
    }
    /* Zero-pad the unit: the samples it holds do not depend on the padding. */
    memcpy(unit, in, nbytes);
    ecg_format_decode(f, unit, 1, tmp);
    memcpy(out, tmp, n * sizeof *out);
    return n;
}

uint64_t ecg_format_samples_in(const ecg_format *f, uint64_t nbytes)
{
    uint64_t units = nbytes / f->unit_bytes;
    uint64_t rem = nbytes % f->unit_bytes;
    uint64_t n = units * f->unit_samples;
    switch (f->format) {
    case 212:
        /* The first sample of a pair needs bytes 0 and 1. */
        n += rem >= 2 ? 1 : 0;
        break;
    case 310:
        /* s0 needs word 0; s1 and s2 need both words (a whole unit). */
        n += rem >= 2 ? 1 : 0;
        break;
    case 311:
        /* s0 lies in bits 0..9, s1 in 10..19 (byte 2), s2 in 20..29 (byte 3). */
        n += rem >= 3 ? 2 : rem >= 2 ? 1 : 0;
        break;
    default:
        break;
    }
    return n;
}

void ecg_format_put16(uint8_t *p, int32_t v)
{
    uint16_t u = (uint16_t)(int16_t)v;
    p[0] = (uint8_t)(u & 0xff);
    p[1] = (uint8_t)(u >> 8);
}
