/* libFuzzer target: the sample decoders of every format, and the streaming
 * record reader over a signal file of fuzzed bytes. The first input bytes
 * choose the format, the number of signals, samples per frame, skew, byte
 * offset and read block size; the rest is the .dat. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../ecg/ecg_int.h"

static const int formats[] = {8, 16, 24, 32, 61, 80, 160, 212, 310, 311};

static char dir[64];

/* Remove the scratch directory when the fuzzer exits. */
static void cleanup(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/f.hea", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/f.dat", dir);
    unlink(path);
    rmdir(dir);
}

static void write_file(const char *name, const void *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        abort();
    }
    if (n > 0 && fwrite(p, 1, n, f) != n) {
        abort();
    }
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return 0;
    }
    const ecg_format *f = ecg_format_find(formats[data[0] % 10]);
    const uint8_t *d = data + 4;
    size_t n = size - 4;

    /* The decoders alone: whole units, then the tail. */
    size_t units = n / f->unit_bytes;
    int32_t *out = malloc((units + 1) * f->unit_samples * sizeof *out);
    if (out == NULL) {
        return 0;
    }
    ecg_format_decode(f, d, units, out);
    size_t tail = ecg_format_decode_tail(f, d + units * f->unit_bytes, n % f->unit_bytes,
                                         out + units * f->unit_samples);
    if (units * f->unit_samples + tail != ecg_format_samples_in(f, n)) {
        __builtin_trap();
    }
    free(out);

    /* The whole reader. */
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/rdx-fuzz-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            abort();
        }
        atexit(cleanup);
    }
    unsigned nsig = 1 + data[1] % 4;
    unsigned spf = 1 + (data[2] & 3);
    unsigned skew = (data[2] >> 2) & 3;
    unsigned off = (data[2] >> 4) & 7;
    size_t block = 1 + data[3] % 64;
    char hea[512];
    size_t o = (size_t)snprintf(hea, sizeof hea, "f %u 250\n", nsig);
    for (unsigned s = 0; s < nsig && o < sizeof hea; s++) {
        o += (size_t)snprintf(hea + o, sizeof hea - o, "f.dat %d%s%u:%u+%u 200 0 0 %d\n", f->format,
                              s == 0 ? "x" : "x", s == 0 ? spf : 1, s == nsig - 1 ? skew : 0, off,
                              (int)(data[3] & 0x7f));
    }
    write_file("f.hea", hea, o);
    write_file("f.dat", d, n);
    char path[128];
    snprintf(path, sizeof path, "%s/f", dir);
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    if (rdx_ecg_record_open(path, NULL, &rec, &err) == RDX_OK) {
        const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
        int32_t *buf = malloc(block * in->nsig * sizeof *buf);
        uint64_t total = 0;
        size_t got = 0;
        rdx_status st;
        if (buf == NULL) {
            abort();
        }
        do {
            st = rdx_ecg_record_read(rec, buf, block, &got, &err);
            total += got;
        } while (st == RDX_OK && got > 0);
        if (st != RDX_OK || total != in->nsamp) {
            __builtin_trap(); /* a file measured at open must read in full */
        }
        if (in->nsamp > 0 && rdx_ecg_record_seek(rec, in->nsamp / 2, &err) == RDX_OK) {
            (void)rdx_ecg_record_read(rec, buf, block, &got, &err);
        }
        free(buf);
        rdx_ecg_record_free(rec);
    }
    return 0;
}
