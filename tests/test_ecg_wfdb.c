/* WFDB records: the header parser, every sample format against bytes built by
 * hand, the real record 100s against an independent decode, multi-file and
 * skewed records, checksums, and every kind of bad input with its message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/ecg.h"
#include "../ecg/ecg_int.h"
#include "support/testutil.h"

/* ---- helpers ---- */

static void put_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put_text(const char *dir, const char *name, const char *text)
{
    put_file(dir, name, text, strlen(text));
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

/* Open dir/name and read every frame with the given block size. */
static rdx_status read_all(const char *dir, const char *name, const rdx_ecg_record_opts *o,
                           size_t block, int32_t **out, size_t *nframes, size_t *nsig,
                           rdx_error *err)
{
    char path[512];
    rdx_ecg_record *rec = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rdx_status st = rdx_ecg_record_open(path, o, &rec, err);
    if (st != RDX_OK) {
        return st;
    }
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    size_t cap = in->nsamp + 1;
    int32_t *all = calloc(cap * (in->nsig ? in->nsig : 1), sizeof *all);
    size_t n = 0;
    assert_non_null(all);
    for (;;) {
        size_t want = block;
        size_t got = 0;
        if (want > cap - n) {
            want = cap - n;
        }
        st = rdx_ecg_record_read(rec, all + n * in->nsig, want, &got, err);
        n += got;
        if (st != RDX_OK || got == 0) {
            break;
        }
    }
    *nsig = in->nsig;
    rdx_ecg_record_free(rec);
    *out = all;
    *nframes = n;
    return st;
}

static const char *fixture_dir(void)
{
    return "tests/fixtures/ecg";
}

/* ---- record 100s ---- */

static void test_wfdb_header_of_100s(void **state)
{
    (void)state;
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    assert_int_equal(rdx_ecg_record_open("tests/fixtures/ecg/100s.hea", NULL, &rec, &err), RDX_OK);
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    assert_string_equal(in->name, "100s");
    assert_int_equal(in->nsig, 2);
    assert_true(in->fs_hz == 360.0);
    assert_int_equal(in->nsamp, 21600);
    assert_int_equal(in->nsamp_header, 21600);
    assert_false(in->has_base_time);
    const int32_t initval[2] = {995, 1011};
    const int32_t cksum[2] = {21537, -3962};
    const char *desc[2] = {"MLII", "V5"};
    for (int s = 0; s < 2; s++) {
        const rdx_ecg_signal_info *si = &in->sig[s];
        assert_string_equal(si->file_name, "100s.dat");
        assert_int_equal(si->format, 212);
        assert_true(si->gain_adu_per_unit == 200.0);
        assert_true(si->calibrated);
        assert_int_equal(si->baseline_adu, 1024); /* defaults to the ADC zero */
        assert_string_equal(si->units, "mV");
        assert_int_equal(si->adc_resolution, 11);
        assert_int_equal(si->adc_zero, 1024);
        assert_int_equal(si->initial_value, initval[s]);
        assert_true(si->has_checksum);
        assert_int_equal(si->checksum, cksum[s]);
        assert_int_equal(si->block_size, 0);
        assert_string_equal(si->description, desc[s]);
    }
    assert_int_equal(in->ncomments, 3);
    assert_string_equal(in->comments[0], " 69 M 1085 1629 x1");
    assert_string_equal(in->comments[2], "Produced by xform from record 100, beginning at 0:0");
    assert_int_equal(rdx_ecg_record_tell(rec), 0);
    rdx_ecg_record_free(rec);
}

/* Format 212 decoded the obvious way, one sample at a time, as in r212(). */
static int32_t *independent_212(const uint8_t *p, size_t len, size_t nsamples)
{
    int32_t *v = malloc(nsamples * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < nsamples; i++) {
        size_t pair = i / 2;
        assert_true(pair * 3 + 2 < len);
        const uint8_t *b = p + pair * 3;
        int x = (i % 2 == 0) ? (b[0] | ((b[1] & 0x0f) << 8)) : (b[2] | ((b[1] & 0xf0) << 4));
        if (x & 0x800) {
            x -= 0x1000;
        }
        v[i] = x;
    }
    return v;
}

static void test_wfdb_100s_samples_match_independent_decode(void **state)
{
    (void)state;
    size_t len;
    uint8_t *raw = slurp("tests/fixtures/ecg/100s.dat", &len);
    assert_int_equal(len, 64800);
    int32_t *ref = independent_212(raw, len, 43200);
    /* The first samples of record 100 (as rdsamp prints them). */
    assert_int_equal(ref[0], 995);
    assert_int_equal(ref[1], 1011);
    uint32_t s0 = 0, s1 = 0;
    for (size_t i = 0; i < 43200; i += 2) {
        s0 += (uint32_t)ref[i];
        s1 += (uint32_t)ref[i + 1];
    }
    assert_int_equal((int16_t)(s0 & 0xffff), 21537); /* the header's checksums */
    assert_int_equal((int16_t)(s1 & 0xffff), -3962);

    const size_t blocks[] = {1, 2, 3, 7, 4095, 4096, 4097, 100000};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        int32_t *v = NULL;
        size_t n = 0, nsig = 0;
        rdx_error err;
        assert_int_equal(read_all(fixture_dir(), "100s", NULL, blocks[b], &v, &n, &nsig, &err),
                         RDX_OK);
        assert_int_equal(n, 21600);
        assert_int_equal(nsig, 2);
        assert_memory_equal(v, ref, 43200 * sizeof *v);
        free(v);
    }
    free(ref);
    free(raw);
}

static void test_wfdb_read_phys_and_seek(void **state)
{
    (void)state;
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    float f[8];
    int32_t a[8];
    size_t got;
    assert_int_equal(rdx_ecg_record_open("tests/fixtures/ecg/100s", NULL, &rec, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_read_phys(rec, f, 2, &got, &err), RDX_OK);
    assert_int_equal(got, 2);
    assert_float_equal(f[0], (995 - 1024) / 200.0, 1e-6);
    assert_float_equal(f[1], (1011 - 1024) / 200.0, 1e-6);
    /* Seek into the middle and compare with a sequential read. */
    size_t len;
    uint8_t *raw = slurp("tests/fixtures/ecg/100s.dat", &len);
    int32_t *ref = independent_212(raw, len, 43200);
    const uint64_t at[] = {12345, 1, 0, 21599, 777};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        assert_int_equal(rdx_ecg_record_seek(rec, at[i], &err), RDX_OK);
        assert_int_equal(rdx_ecg_record_tell(rec), at[i]);
        assert_int_equal(rdx_ecg_record_read(rec, a, 1, &got, &err), RDX_OK);
        assert_int_equal(got, 1);
        assert_int_equal(a[0], ref[2 * at[i]]);
        assert_int_equal(a[1], ref[2 * at[i] + 1]);
    }
    assert_int_equal(rdx_ecg_record_seek(rec, 21600, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_read(rec, a, 4, &got, &err), RDX_OK);
    assert_int_equal(got, 0);
    assert_int_equal(rdx_ecg_record_seek(rec, 21601, &err), RDX_ERANGE);
    assert_non_null(strstr(err.msg, "past the end"));
    assert_int_equal(rdx_ecg_record_read(rec, a, 0, &got, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_read(rec, NULL, 4, &got, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_read_phys(rec, f, 0, &got, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_read(NULL, a, 4, &got, &err), RDX_EINVAL);
    assert_null(rdx_ecg_record_info_get(NULL));

    /* Opened for the header only: no signal file needed, no reads. */
    rdx_ecg_record_free(rec);
    rdx_ecg_record_opts ho = {0};
    ho.header_only = 1;
    char *dir = rdx_test_tmpdir();
    char hp[512];
    snprintf(hp, sizeof hp, "%s/h.hea", dir);
    FILE *hf = fopen(hp, "w");
    assert_non_null(hf);
    fputs("h 1 500 5000\nh.dat 16\n", hf);
    fclose(hf);
    assert_int_equal(rdx_ecg_record_open(hp, &ho, &rec, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_info_get(rec)->nsamp, 5000);
    assert_int_equal(rdx_ecg_record_read(rec, a, 4, &got, &err), RDX_ESTATE);
    assert_int_equal(rdx_ecg_record_seek(rec, 0, &err), RDX_ESTATE);
    rdx_test_rmrf(dir);
    free(dir);
    free(ref);
    free(raw);
    rdx_ecg_record_free(rec);
}

/* ---- every format from bytes built by hand ---- */

typedef struct fmt_case {
    const char *fmt;
    const uint8_t *bytes;
    size_t nbytes;
    const int32_t *want; /* frames of one signal */
    size_t nwant;
    const char *extra; /* gain and later fields */
} fmt_case;

static void check_one_signal(const fmt_case *c)
{
    char *dir = rdx_test_tmpdir();
    char hea[256];
    snprintf(hea, sizeof hea, "r 1 250 %zu\nr.dat %s %s\n", c->nwant, c->fmt,
             c->extra ? c->extra : "");
    put_text(dir, "r.hea", hea);
    put_file(dir, "r.dat", c->bytes, c->nbytes);
    int32_t *v = NULL;
    size_t n = 0, nsig = 0;
    rdx_error err;
    rdx_status st = read_all(dir, "r", NULL, 3, &v, &n, &nsig, &err);
    if (st != RDX_OK) {
        fail_msg("format %s: %s", c->fmt, err.msg);
    }
    assert_int_equal(n, c->nwant);
    for (size_t i = 0; i < n; i++) {
        if (v[i] != c->want[i]) {
            fail_msg("format %s sample %zu: got %d want %d", c->fmt, i, v[i], c->want[i]);
        }
    }
    free(v);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_wfdb_every_format_from_hand_built_bytes(void **state)
{
    (void)state;
    const int32_t INV = RDX_ECG_SAMPLE_INVALID;
    /* 16: little-endian two's complement; -32768 is the invalid code. */
    static const uint8_t b16[] = {0x01, 0x00, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f, 0x34, 0x12};
    const int32_t w16[] = {1, -1, INV, 32767, 0x1234};
    /* 61: big-endian. */
    static const uint8_t b61[] = {0x00, 0x01, 0xff, 0xfe, 0x12, 0x34};
    const int32_t w61[] = {1, -2, 0x1234};
    /* 80: offset binary. */
    static const uint8_t b80[] = {0x80, 0x81, 0x7f, 0x00, 0xff};
    const int32_t w80[] = {0, 1, -1, INV, 127};
    /* 160: 16-bit offset binary. */
    static const uint8_t b160[] = {0x00, 0x80, 0x01, 0x80, 0xff, 0x7f, 0x00, 0x00, 0xff, 0xff};
    const int32_t w160[] = {0, 1, -1, INV, 32767};
    /* 212: 0x01 0x23 0x45 -> s0 = 0x301, s1 = 0x245; 0xff 0xff 0xff -> -1, -1;
     * 0x00 0x08 0x00 -> s0 = 0x800 = -2048 (invalid), s1 = 0. */
    static const uint8_t b212[] = {0x01, 0x23, 0x45, 0xff, 0xff, 0xff, 0x00, 0x08, 0x00};
    const int32_t w212[] = {0x301, 0x245, -1, -1, INV, 0};
    /* 24 and 32: little-endian. */
    static const uint8_t b24[] = {0x01, 0x00, 0x00, 0xff, 0xff, 0xff,
                                  0x56, 0x34, 0x12, 0x00, 0x00, 0x80};
    const int32_t w24[] = {1, -1, 0x123456, INV};
    static const uint8_t b32[] = {0x01, 0x00, 0x00, 0x00, 0xfe, 0xff,
                                  0xff, 0xff, 0x78, 0x56, 0x34, 0x12};
    const int32_t w32[] = {1, -2, 0x12345678};
    /* 311: samples 5, -3, 511 in bits 0-9, 10-19, 20-29 of a LE word:
     * 5 | (0x3fd << 10) | (0x1ff << 20) = 0x1ffff405. */
    static const uint8_t b311[] = {0x05, 0xf4, 0xff, 0x1f};
    const int32_t w311[] = {5, -3, 511};
    /* 310: w0 = (s0 << 1) | (s2 low 5 bits << 11), w1 = (s1 << 1) | (s2 high 5 << 11).
     * s0 = 7, s1 = -2 (0x3fe), s2 = 100 (0x064: low5 = 4, high5 = 3):
     * w0 = 0x000e | 0x2000 = 0x200e, w1 = 0x07fc | 0x1800 = 0x1ffc. */
    static const uint8_t b310[] = {0x0e, 0x20, 0xfc, 0x1f};
    const int32_t w310[] = {7, -2, 100};
    /* 8: first differences on the initial value 100: +1, -2, +127, -128. */
    static const uint8_t b8[] = {0x01, 0xfe, 0x7f, 0x80};
    const int32_t w8[] = {101, 99, 226, 98};

    const fmt_case cases[] = {
        {"16", b16, sizeof b16, w16, 5, NULL},     {"61", b61, sizeof b61, w61, 3, NULL},
        {"80", b80, sizeof b80, w80, 5, NULL},     {"160", b160, sizeof b160, w160, 5, NULL},
        {"212", b212, sizeof b212, w212, 6, NULL}, {"24", b24, sizeof b24, w24, 4, NULL},
        {"32", b32, sizeof b32, w32, 3, NULL},     {"311", b311, sizeof b311, w311, 3, NULL},
        {"310", b310, sizeof b310, w310, 3, NULL}, {"8", b8, sizeof b8, w8, 4, "200 8 0 100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_one_signal(&cases[i]);
    }
}

/* An encoder written from the format descriptions, independent of the
 * decoder, for round trips over longer runs of values. */
static size_t encode(int fmt, const int32_t *v, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)v[i];
        switch (fmt) {
        case 212:
            if (i % 2 == 0) {
                out[o] = (uint8_t)u;
                out[o + 1] = (uint8_t)((u >> 8) & 0x0f);
                if (i + 1 == n) {
                    o += 2; /* an odd count ends in a short unit */
                }
            } else {
                out[o + 1] |= (uint8_t)((u >> 4) & 0xf0);
                out[o + 2] = (uint8_t)u;
                o += 3;
            }
            break;
        case 311: {
            size_t k = i % 3;
            uint32_t w = (u & 0x3ff) << (10 * k);
            if (k == 0) {
                memset(out + o, 0, 4);
            }
            uint32_t cur = out[o] | out[o + 1] << 8 | out[o + 2] << 16 | (uint32_t)out[o + 3] << 24;
            cur |= w;
            out[o] = (uint8_t)cur;
            out[o + 1] = (uint8_t)(cur >> 8);
            out[o + 2] = (uint8_t)(cur >> 16);
            out[o + 3] = (uint8_t)(cur >> 24);
            if (k == 2) {
                o += 4;
            }
            break;
        }
        case 310: {
            size_t k = i % 3;
            if (k == 0) {
                memset(out + o, 0, 4);
            }
            uint32_t w0 = out[o] | out[o + 1] << 8, w1 = out[o + 2] | out[o + 3] << 8;
            if (k == 0) {
                w0 |= (u & 0x3ff) << 1;
            } else if (k == 1) {
                w1 |= (u & 0x3ff) << 1;
            } else {
                w0 |= (u & 0x1f) << 11;
                w1 |= ((u >> 5) & 0x1f) << 11;
            }
            out[o] = (uint8_t)w0;
            out[o + 1] = (uint8_t)(w0 >> 8);
            out[o + 2] = (uint8_t)w1;
            out[o + 3] = (uint8_t)(w1 >> 8);
            if (k == 2) {
                o += 4;
            }
            break;
        }
        case 16:
            out[o++] = (uint8_t)u;
            out[o++] = (uint8_t)(u >> 8);
            break;
        case 24:
            out[o++] = (uint8_t)u;
            out[o++] = (uint8_t)(u >> 8);
            out[o++] = (uint8_t)(u >> 16);
            break;
        default:
            fail();
        }
    }
    if ((fmt == 310 || fmt == 311) && n % 3 != 0) {
        o += 4; /* a partial last unit is written whole, zero-padded */
    }
    return o;
}

/* Three signals interleaved in one file, odd frame counts, every block size. */
static void test_wfdb_interleaved_signals_round_trip(void **state)
{
    (void)state;
    const int fmts[] = {212, 311, 310, 16, 24};
    const int bits[] = {12, 10, 10, 16, 24};
    const size_t nf = 1001, nsig = 3;
    int32_t *v = malloc(nf * nsig * sizeof *v);
    uint8_t *bytes = malloc(nf * nsig * 4 + 8);
    assert_non_null(v);
    assert_non_null(bytes);
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        int32_t lo = -(1 << (bits[fi] - 1)) + 1, hi = (1 << (bits[fi] - 1)) - 1;
        uint32_t x = 12345;
        uint32_t sum[3] = {0, 0, 0};
        for (size_t i = 0; i < nf * nsig; i++) {
            x = x * 1103515245u + 12345u;
            v[i] = lo + (int32_t)((x >> 8) % (uint32_t)(hi - lo + 1));
            sum[i % nsig] += (uint32_t)v[i];
        }
        size_t nb = encode(fmts[fi], v, nf * nsig, bytes);
        char *dir = rdx_test_tmpdir();
        char hea[512];
        snprintf(hea, sizeof hea,
                 "mix 3 500 %zu\r\nmix.dat %d 100 %d 0 0 %d 0 I\r\n"
                 "mix.dat %d 100 %d 0 0 %d 0 II\r\nmix.dat %d 100 %d 0 0 %d 0 III\r\n",
                 nf, fmts[fi], bits[fi], (int16_t)sum[0], fmts[fi], bits[fi], (int16_t)sum[1],
                 fmts[fi], bits[fi], (int16_t)sum[2]);
        put_text(dir, "mix.hea", hea);
        put_file(dir, "mix.dat", bytes, nb);
        const size_t blocks[] = {1, 2, 5, 333, 5000};
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            int32_t *got = NULL;
            size_t n = 0, ns = 0;
            rdx_error err;
            rdx_status st = read_all(dir, "mix.hea", NULL, blocks[b], &got, &n, &ns, &err);
            if (st != RDX_OK) {
                fail_msg("format %d block %zu: %s", fmts[fi], blocks[b], err.msg);
            }
            assert_int_equal(n, nf);
            assert_memory_equal(got, v, nf * nsig * sizeof *v);
            free(got);
        }
        rdx_test_rmrf(dir);
        free(dir);
    }
    free(v);
    free(bytes);
}

static void test_wfdb_byte_offset_is_honoured(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    /* A 5-byte prolog, then two 16-bit signals. */
    static const uint8_t b[] = {'J', 'U', 'N', 'K', '!', 10, 0, 20, 0, 11, 0, 21, 0};
    put_file(dir, "o.dat", b, sizeof b);
    put_text(dir, "o.hea", "o 2 100 2\no.dat 16+5 200 16 0 10\no.dat 16+5 200 16 0 20\n");
    int32_t *v = NULL;
    size_t n = 0, nsig = 0;
    rdx_error err;
    assert_int_equal(read_all(dir, "o", NULL, 10, &v, &n, &nsig, &err), RDX_OK);
    assert_int_equal(n, 2);
    const int32_t want[] = {10, 20, 11, 21};
    assert_memory_equal(v, want, sizeof want);
    free(v);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_wfdb_signals_spread_over_files(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    static const uint8_t a[] = {1, 0, 2, 0, 3, 0};
    static const uint8_t b[] = {0x81, 0x82, 0x83};
    put_file(dir, "a.dat", a, sizeof a);
    put_file(dir, "b.dat", b, sizeof b);
    put_text(dir, "two.hea", "two 2 100\na.dat 16 200 16 0 1 6 0 A\nb.dat 80 200 8 0 1 6 0 B\n");
    int32_t *v = NULL;
    size_t n = 0, nsig = 0;
    rdx_error err;
    /* No length in the header: the record is as long as the files. */
    assert_int_equal(read_all(dir, "two", NULL, 2, &v, &n, &nsig, &err), RDX_OK);
    assert_int_equal(n, 3);
    const int32_t want[] = {1, 1, 2, 2, 3, 3};
    assert_memory_equal(v, want, sizeof want);
    free(v);
    rdx_test_rmrf(dir);
    free(dir);

    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        return;
    }
    /* The PTB record keeps 12 leads in .dat and the Frank leads in .xyz. */
    char p[512];
    snprintf(p, sizeof p, "%s/ecg/other/ptbdb", data);
    v = NULL;
    rdx_status st = read_all(p, "s0010_re", NULL, 1000, &v, &n, &nsig, &err);
    if (st == RDX_ENOENT) {
        free(v);
        return;
    }
    assert_int_equal(st, RDX_OK); /* includes all 15 checksums */
    assert_int_equal(nsig, 15);
    assert_int_equal(n, 38400);
    assert_int_equal(v[0], -489);
    assert_int_equal(v[12], -3);
    assert_int_equal(v[14], -18);
    free(v);
}

static void test_wfdb_multifrequency_and_skew(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    /* Signal 0 at 2 samples per frame, signal 1 at 1: frame = s0a s0b s1. */
    static const uint8_t b[] = {10, 0, 20, 0, 1, 0, 30, 0, 50, 0, 2, 0, 0, 0x80, 7, 0, 3, 0};
    put_file(dir, "m.dat", b, sizeof b);
    put_text(dir, "m.hea", "m 2 100 3\nm.dat 16x2 200 16 0 10\nm.dat 16 200 16 0 1\n");
    int32_t *v = NULL;
    size_t n = 0, nsig = 0;
    rdx_error err;
    assert_int_equal(read_all(dir, "m", NULL, 1, &v, &n, &nsig, &err), RDX_OK);
    assert_int_equal(n, 3);
    /* Frame means, and invalid when any sample of the frame is. */
    const int32_t want[] = {15, 1, 40, 2, RDX_ECG_SAMPLE_INVALID, 3};
    assert_memory_equal(v, want, sizeof want);
    free(v);

    /* Signal 1 is recorded 2 frames late: reading corrects it. */
    static const uint8_t s[] = {1, 0, 99, 0, 2, 0, 98, 0, 3, 0, 10, 0, 4, 0, 20, 0, 5, 0, 30, 0};
    put_file(dir, "k.dat", s, sizeof s);
    put_text(dir, "k.hea", "k 2 100 5\nk.dat 16 200 16 0 1\nk.dat 16:2 200 16 0 99\n");
    const size_t blocks[] = {1, 2, 4, 100};
    for (size_t i = 0; i < 4; i++) {
        v = NULL;
        assert_int_equal(read_all(dir, "k", NULL, blocks[i], &v, &n, &nsig, &err), RDX_OK);
        assert_int_equal(n, 5);
        const int32_t I = RDX_ECG_SAMPLE_INVALID;
        const int32_t wk[] = {1, 10, 2, 20, 3, 30, 4, I, 5, I};
        assert_memory_equal(v, wk, sizeof wk);
        free(v);
    }
    rdx_test_rmrf(dir);
    free(dir);
}

/* ---- checksums ---- */

static void test_wfdb_checksum_mismatch_names_the_signal(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    size_t len;
    uint8_t *dat = slurp("tests/fixtures/ecg/100s.dat", &len);
    put_file(dir, "100s.dat", dat, len);
    put_text(dir, "100s.hea",
             "100s 2 360 21600\n100s.dat 212 200 11 1024 995 21537 0 MLII\n"
             "100s.dat 212 200 11 1024 1011 -3961 0 V5\n");
    int32_t *v = NULL;
    size_t n = 0, nsig = 0;
    rdx_error err;
    assert_int_equal(read_all(dir, "100s", NULL, 5000, &v, &n, &nsig, &err), RDX_ECHECKSUM);
    assert_int_equal(n, 21600); /* the data still arrived */
    assert_non_null(strstr(err.msg, "100s.dat: signal 1 (V5): checksum mismatch"));
    assert_non_null(strstr(err.msg, "-3961"));
    assert_non_null(strstr(err.msg, "-3962"));
    free(v);
    /* The caller may decline the check. */
    rdx_ecg_record_opts o = {0};
    o.skip_checksum = 1;
    assert_int_equal(read_all(dir, "100s", &o, 5000, &v, &n, &nsig, &err), RDX_OK);
    free(v);
    /* A damaged sample is caught. */
    dat[1000] ^= 0x01;
    put_file(dir, "100s.dat", dat, len);
    put_text(dir, "100s.hea",
             "100s 2 360 21600\n100s.dat 212 200 11 1024 995 21537 0 MLII\n"
             "100s.dat 212 200 11 1024 1011 -3962 0 V5\n");
    assert_int_equal(read_all(dir, "100s", NULL, 64, &v, &n, &nsig, &err), RDX_ECHECKSUM);
    assert_non_null(strstr(err.msg, "signal 0 (MLII)"));
    free(v);
    free(dat);
    rdx_test_rmrf(dir);
    free(dir);
}

/* ---- bad input ---- */

typedef struct bad_case {
    const char *hea;
    rdx_status code;
    const char *msg; /* must appear in the message */
} bad_case;

static void test_wfdb_bad_headers_are_named(void **state)
{
    (void)state;
    static const uint8_t dat[64] = {0};
    const bad_case cases[] = {
        {"", RDX_EPARSE, "r.hea: no record line"},
        {"r\n", RDX_EPARSE, "r.hea:1: record line has no number of signals"},
        {"r two 360\n", RDX_EPARSE, "r.hea:1: number of signals 'two' is not a number"},
        {"r 1000000 360 10\n", RDX_ELIMIT, "r.hea:1: 1000000 signals is more than the 1024"},
        {"r -2 360 10\n", RDX_ERANGE, "negative number of signals"},
        {"r 1 0 10\nr.dat 16\n", RDX_ERANGE, "r.hea:1: sampling frequency 0 Hz is outside"},
        {"r 1 200000 10\nr.dat 16\n", RDX_ERANGE, "sampling frequency 200000 Hz is outside"},
        {"r 1 -5 10\nr.dat 16\n", RDX_ERANGE, "sampling frequency -5 Hz"},
        {"r 1 36o 10\nr.dat 16\n", RDX_EPARSE, "sampling frequency '36o' is not a number"},
        {"r 1 360 -10\nr.dat 16\n", RDX_ERANGE, "r.hea:1: negative number of samples -10"},
        {"r 1 360 99999999999999999\nr.dat 16\n", RDX_ELIMIT, "more than the"},
        {"r 1 360 10 25:00:00\nr.dat 16\n", RDX_EPARSE, "bad base time '25:00:00'"},
        {"r 1 360 10 10:00:00 32/01/2020\nr.dat 16\n", RDX_EPARSE, "bad base date"},
        /* Found by fuzz_wfdb_header: an exponent in the fraction overflowed. */
        {"r 1 360 10 1:2:3.5e28\nr.dat 16\n", RDX_EPARSE, "bad base time '1:2:3.5e28'"},
        {"r 1 360 10 1:2:3.\nr.dat 16\n", RDX_EPARSE, "bad base time"},
        {"r 1 360 10 1:2:3:4\nr.dat 16\n", RDX_EPARSE, "bad base time"},
        {"r/3 1 360 10\n", RDX_EFORMAT, "multi-segment record"},
        {"r 1 360 10\n# comment\n\nr.dat 999 200\n", RDX_EFORMAT,
         "r.hea:4: signal 0: unknown or unsupported format 999"},
        {"r 1 360 10\nr.dat\n", RDX_EPARSE, "r.hea:2: signal 0: no format field"},
        {"r 1 360 10\nr.dat 16x0\n", RDX_ERANGE, "samples per frame must be at least 1"},
        {"r 1 360 10\nr.dat 16q\n", RDX_EPARSE, "bad modifier in format field '16q'"},
        {"r 1 360 10\nr.dat 16 2x0\n", RDX_EPARSE, "bad gain field '2x0'"},
        {"r 1 360 10\nr.dat 16 200(12\n", RDX_EPARSE, "bad baseline"},
        {"r 1 360 10\nr.dat 16 200 16 zero\n", RDX_EPARSE, "ADC zero 'zero' is not a number"},
        {"r 1 360 10\nr.dat 16 200 99\n", RDX_ERANGE, "ADC resolution '99' is out of range"},
        {"r 1 360 10\nr.dat 16 200 16 0 0 70000\n", RDX_ERANGE, "checksum '70000'"},
        {"r 2 360 10\nr.dat 16\n", RDX_ESHORT, "header ends after 1 of 2 signal lines"},
        {"r 1 360 10\nr.dat 16\nextra line\n", RDX_EPARSE, "r.hea:3: unexpected line"},
        {"r 1 360 10\n../etc/passwd 16\n", RDX_EPARSE, "must be a plain file name"},
        {"r 2 360 10\nr.dat 16\nr.dat 212\n", RDX_EPARSE, "format or block size differs"},
        {"r 3 360 10\nr.dat 16\nq.dat 16\nr.dat 16\n", RDX_EPARSE, "listed together"},
        {"r 1 360 10\nr.dat 16:99999999\n", RDX_ELIMIT, "value over the limit"},
        {"r 1 360 10 1:00:00 01/01/2000 x\nr.dat 16\n", RDX_EPARSE, "unexpected field 'x'"},
        {"r 1 360 10\nr.dat 16 200 16 0 0 0 0 bad\001desc\n", RDX_EPARSE, "description"},
    };
    char *dir = rdx_test_tmpdir();
    put_file(dir, "r.dat", dat, sizeof dat);
    put_file(dir, "q.dat", dat, sizeof dat);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_text(dir, "r.hea", cases[i].hea);
        char path[512];
        snprintf(path, sizeof path, "%s/r", dir);
        rdx_ecg_record *rec = (rdx_ecg_record *)&path; /* must be reset to NULL */
        rdx_error err;
        rdx_error_clear(&err);
        rdx_status st = rdx_ecg_record_open(path, NULL, &rec, &err);
        if (st != cases[i].code || strstr(err.msg, cases[i].msg) == NULL) {
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, st, err.msg, cases[i].code,
                     cases[i].msg);
        }
        assert_null(rec);
    }
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_wfdb_missing_and_short_signal_files(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char path[512];
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    snprintf(path, sizeof path, "%s/nohdr", dir);
    assert_int_equal(rdx_ecg_record_open(path, NULL, &rec, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "nohdr.hea"));

    put_text(dir, "r.hea", "r 2 360 100\nr.dat 16\nr.dat 16\n");
    snprintf(path, sizeof path, "%s/r.hea", dir);
    assert_int_equal(rdx_ecg_record_open(path, NULL, &rec, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "signal 0: cannot open signal file"));
    assert_non_null(strstr(err.msg, "/r.dat"));

    /* 100 frames of 2 x 16 bits = 400 bytes; give 250 (62 whole frames). */
    static const uint8_t b[250] = {0};
    put_file(dir, "r.dat", b, sizeof b);
    assert_int_equal(rdx_ecg_record_open(path, NULL, &rec, &err), RDX_ESHORT);
    assert_non_null(strstr(err.msg, "holds 62 samples per signal"));
    assert_non_null(strstr(err.msg, "expected 100 samples, found 62"));
    assert_null(rec);

    rdx_ecg_record_opts o = {0};
    o.allow_short = 1;
    int32_t *v = NULL;
    size_t n = 0, nsig = 0;
    assert_int_equal(read_all(dir, "r", &o, 7, &v, &n, &nsig, &err), RDX_OK);
    assert_int_equal(n, 62);
    free(v);
    assert_int_equal(rdx_ecg_record_open(path, &o, &rec, &err), RDX_OK);
    assert_int_equal(rdx_ecg_record_info_get(rec)->nsamp, 62);
    assert_int_equal(rdx_ecg_record_info_get(rec)->nsamp_header, 100);
    rdx_ecg_record_free(rec);

    /* A header path that is a directory, and NULL arguments. */
    assert_int_equal(rdx_ecg_record_open(NULL, NULL, &rec, &err), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_open(path, NULL, NULL, &err), RDX_EINVAL);
    rdx_ecg_record_free(NULL);
    rdx_test_rmrf(dir);
    free(dir);
}

static void test_wfdb_header_fields_and_crlf(void **state)
{
    (void)state;
    const char *text = "# leading comment\r\n"
                       "rec 3 500/1000(-3.5) 7 13:45:06.250 21/03/2024\r\n"
                       "rec.dat 16x4:8+12 1000.5(-7)/uV 14 3 9 -1234 512 lead I\t(left arm)  \r\n"
                       "rec.dat 16 0 16 0 0 0 512\r\n"
                       "rec2.dat 16 0 \r\n"
                       "#trailing\r\n";
    ecg_header h;
    rdx_error err;
    assert_int_equal(ecg_header_parse(text, strlen(text), "rec.hea", &h, &err), RDX_OK);
    assert_string_equal(h.info.name, "rec");
    assert_true(h.info.fs_hz == 500.0);
    assert_true(h.info.counter_hz == 1000.0);
    assert_true(h.info.base_counter == -3.5);
    assert_int_equal(h.info.nsamp_header, 7);
    assert_true(h.info.has_base_time);
    assert_int_equal(h.info.base_time_ms, (13 * 3600 + 45 * 60 + 6) * 1000 + 250);
    assert_true(h.info.has_base_date);
    assert_int_equal(h.info.base_day, 21);
    assert_int_equal(h.info.base_month, 3);
    assert_int_equal(h.info.base_year, 2024);
    const rdx_ecg_signal_info *s = &h.sig[0];
    assert_int_equal(s->format, 16);
    assert_int_equal(s->samples_per_frame, 4);
    assert_int_equal(s->skew_frames, 2); /* 8 samples at 4 per frame */
    assert_int_equal(s->byte_offset, 12);
    assert_true(s->gain_adu_per_unit == 1000.5);
    assert_int_equal(s->baseline_adu, -7);
    assert_string_equal(s->units, "uV");
    assert_int_equal(s->adc_resolution, 14);
    assert_int_equal(s->adc_zero, 3);
    assert_int_equal(s->initial_value, 9);
    assert_int_equal(s->checksum, -1234);
    assert_int_equal(s->block_size, 512);
    assert_string_equal(s->description, "lead I\t(left arm)");
    s = &h.sig[1];
    assert_int_equal(s->byte_offset, 12); /* shared by the file's signals */
    assert_int_equal(s->block_size, 512);
    /* The third signal: uncalibrated, defaults everywhere. */
    s = &h.sig[2];
    assert_false(s->calibrated);
    assert_true(s->gain_adu_per_unit == 200.0);
    assert_string_equal(s->units, "mV");
    assert_int_equal(s->adc_resolution, 16);
    assert_false(s->has_checksum);
    assert_int_equal(s->byte_offset, 0);
    assert_string_equal(s->description, "");
    assert_int_equal(h.info.ncomments, 2);
    assert_string_equal(h.info.comments[0], " leading comment");
    assert_string_equal(h.info.comments[1], "trailing");
    assert_int_equal(h.ngroups, 2);
    ecg_header_free(&h);

    /* Defaults of a minimal header: 250 Hz, length unknown. */
    const char *min = "m 1\nm.dat 212\n";
    assert_int_equal(ecg_header_parse(min, strlen(min), "m.hea", &h, &err), RDX_OK);
    assert_true(h.info.fs_hz == 250.0);
    assert_int_equal(h.info.nsamp_header, 0);
    assert_int_equal(h.sig[0].adc_resolution, 12);
    ecg_header_free(&h);
}

static void test_wfdb_split_path(void **state)
{
    (void)state;
    char d[64], n[64];
    assert_int_equal(rdx_ecg_record_split_path("x/y/100.hea", d, sizeof d, n, sizeof n), RDX_OK);
    assert_string_equal(d, "x/y");
    assert_string_equal(n, "100");
    assert_int_equal(rdx_ecg_record_split_path("100", d, sizeof d, n, sizeof n), RDX_OK);
    assert_string_equal(d, ".");
    assert_string_equal(n, "100");
    assert_int_equal(rdx_ecg_record_split_path("/100.csv", d, sizeof d, n, sizeof n), RDX_OK);
    assert_string_equal(d, "/");
    assert_string_equal(n, "100");
    assert_int_equal(rdx_ecg_record_split_path("x/.hea", d, sizeof d, n, sizeof n), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_split_path("x/", d, sizeof d, n, sizeof n), RDX_EINVAL);
    assert_int_equal(rdx_ecg_record_split_path("abcdef", d, sizeof d, n, 3), RDX_EINVAL);
}

/* Every record of the development set decodes with all its header checksums
 * verified: 212 (mitdb, nstdb) and 16 (118e00). */
static void test_wfdb_real_records_verify_their_checksums(void **state)
{
    (void)state;
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        skip();
    }
    static const char *const recs[] = {
        "mitdb/100",          "mitdb/101",         "mitdb/102", "mitdb/103", "mitdb/105",
        "mitdb/106",          "mitdb/109",         "mitdb/111", "mitdb/113", "mitdb/115",
        "mitdb/118",          "mitdb/119",         "mitdb/121", "mitdb/123", "mitdb/200",
        "mitdb/202",          "mitdb/203",         "mitdb/208", "mitdb/212", "mitdb/214",
        "mitdb/217",          "mitdb/219",         "mitdb/221", "mitdb/228", "other/nstdb/118e00",
        "other/nstdb/118e12", "other/nstdb/118e24"};
    int32_t *buf = malloc(8192 * 2 * sizeof *buf);
    assert_non_null(buf);
    int seen = 0;
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
        char p[512];
        rdx_ecg_record *rec = NULL;
        rdx_error err;
        snprintf(p, sizeof p, "%s/ecg/%s", data, recs[i]);
        rdx_status st = rdx_ecg_record_open(p, NULL, &rec, &err);
        if (st == RDX_ENOENT) {
            continue;
        }
        if (st != RDX_OK) {
            fail_msg("%s", err.msg);
        }
        const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
        assert_int_equal(in->nsamp, 650000);
        uint64_t n = 0;
        size_t got;
        do {
            st = rdx_ecg_record_read(rec, buf, 8192, &got, &err);
            if (st != RDX_OK) {
                fail_msg("%s", err.msg);
            }
            if (n == 0) {
                assert_int_equal(buf[0], in->sig[0].initial_value);
                assert_int_equal(buf[1], in->sig[1].initial_value);
            }
            n += got;
        } while (got > 0);
        assert_int_equal(n, 650000);
        rdx_ecg_record_free(rec);
        seen++;
    }
    free(buf);
    if (seen == 0) {
        skip();
    }
}

/* ---- out of memory ---- */

static int open_and_read_100s(void *ctx)
{
    (void)ctx;
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    int32_t buf[2 * 512];
    size_t got = 0;
    if (rdx_ecg_record_open("tests/fixtures/ecg/100s", NULL, &rec, &err) != RDX_OK) {
        assert_null(rec);
        return 1;
    }
    rdx_status st;
    do {
        st = rdx_ecg_record_read(rec, buf, 512, &got, &err);
    } while (st == RDX_OK && got > 0);
    rdx_ecg_record_free(rec);
    return st == RDX_OK ? 0 : 1;
}

static int open_skewed(void *ctx)
{
    const char *dir = ctx;
    char path[512];
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    int32_t buf[20];
    size_t got = 0;
    snprintf(path, sizeof path, "%s/k", dir);
    if (rdx_ecg_record_open(path, NULL, &rec, &err) != RDX_OK) {
        return 1;
    }
    rdx_status st = rdx_ecg_record_read(rec, buf, 10, &got, &err);
    rdx_ecg_record_free(rec);
    return st == RDX_OK ? 0 : 1;
}

static void test_wfdb_out_of_memory_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(open_and_read_100s, NULL) > 5);
    char *dir = rdx_test_tmpdir();
    static const uint8_t s[] = {1, 0, 99, 0, 2, 0, 98, 0, 3, 0, 10, 0};
    put_file(dir, "k.dat", s, sizeof s);
    put_text(dir, "k.hea",
             "k 2 100 3\n# c1\n# c2\nk.dat 16 200 16 0 1\nk.dat 16:2 200 16 0 99 "
             "207 0 x\n");
    assert_true(rdx_oom_sweep(open_skewed, dir) > 5);
    rdx_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wfdb_header_of_100s),
        cmocka_unit_test(test_wfdb_100s_samples_match_independent_decode),
        cmocka_unit_test(test_wfdb_read_phys_and_seek),
        cmocka_unit_test(test_wfdb_every_format_from_hand_built_bytes),
        cmocka_unit_test(test_wfdb_interleaved_signals_round_trip),
        cmocka_unit_test(test_wfdb_byte_offset_is_honoured),
        cmocka_unit_test(test_wfdb_signals_spread_over_files),
        cmocka_unit_test(test_wfdb_multifrequency_and_skew),
        cmocka_unit_test(test_wfdb_checksum_mismatch_names_the_signal),
        cmocka_unit_test(test_wfdb_bad_headers_are_named),
        cmocka_unit_test(test_wfdb_missing_and_short_signal_files),
        cmocka_unit_test(test_wfdb_header_fields_and_crlf),
        cmocka_unit_test(test_wfdb_split_path),
        cmocka_unit_test(test_wfdb_real_records_verify_their_checksums),
        cmocka_unit_test(test_wfdb_out_of_memory_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
