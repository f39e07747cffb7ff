/* libFuzzer target: CSV uploads through the record API (open counts the
 * rows; reading must then deliver exactly that many frames or fail with a
 * message). The first byte chooses the read block size. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdx/ecg.h"

static char dir[64];

/* Remove the scratch directory when the fuzzer exits. */
static void cleanup(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/u.csv", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/rdx-fuzz-csv-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            abort();
        }
        atexit(cleanup);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/u.csv", dir);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        abort();
    }
    if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) {
        abort();
    }
    fclose(f);
    size_t block = 1 + data[0] % 32;
    rdx_ecg_record_opts o;
    memset(&o, 0, sizeof o);
    o.csv_fs_hz = 500;
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    err.msg[0] = '\0';
    if (rdx_ecg_record_open(path, &o, &rec, &err) != RDX_OK) {
        if (rec != NULL || err.msg[0] == '\0') {
            __builtin_trap();
        }
        return 0;
    }
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    float *buf = malloc(block * (in->nsig + 1) * sizeof *buf);
    if (buf == NULL) {
        abort();
    }
    uint64_t n = 0;
    size_t got = 0;
    rdx_status st;
    do {
        err.msg[0] = '\0';
        st = rdx_ecg_record_read_phys(rec, buf, block, &got, &err);
        n += got;
    } while (st == RDX_OK && got > 0);
    if ((st == RDX_OK && n != in->nsamp) || (st != RDX_OK && err.msg[0] == '\0')) {
        __builtin_trap();
    }
    free(buf);
    rdx_ecg_record_free(rec);
    return 0;
}
