/*
 * ecg_decode_bench - decode-only throughput of the streaming WFDB reader.
 *
 * Builds a 6.5-million-frame, 2-signal record (13 M samples, record 100s
 * repeated: the length of a full MIT-BIH record x 10) in format 212, copies
 * it to format 16 with the writer, and reads each through
 * rdx_ecg_record_read() in blocks of 4096 frames, best of 5 runs. Prints
 * samples per second and the peak RSS, and writes docs/ecg-decode-bench.md.
 */
#define _POSIX_C_SOURCE 200809L
#include "rdx/ecg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define REPEAT 301u /* 301 x 21600 frames = 6,501,600 frames */

static double read_all(const char *path, uint64_t *samples)
{
    rdx_ecg_record *rec = NULL;
    rdx_error err;
    static int32_t buf[4096 * 2];
    double best = 1e30;
    for (int run = 0; run < 5; run++) {
        uint64_t t0 = rdx_clock_mono_ns();
        if (rdx_ecg_record_open(path, NULL, &rec, &err) != RDX_OK) {
            fprintf(stderr, "ecg_decode_bench: %s\n", err.msg);
            exit(1);
        }
        uint64_t n = 0;
        size_t got;
        int64_t sink = 0;
        do {
            if (rdx_ecg_record_read(rec, buf, 4096, &got, &err) != RDX_OK) {
                fprintf(stderr, "ecg_decode_bench: %s\n", err.msg);
                exit(1);
            }
            n += got;
            sink += buf[0];
        } while (got > 0);
        rdx_ecg_record_free(rec);
        double s = (double)(rdx_clock_mono_ns() - t0) / 1e9;
        if (s < best) {
            best = s;
        }
        *samples = n * 2 + (uint64_t)(sink & 0); /* keep the loop's reads alive */
    }
    return best;
}

int main(void)
{
    rdx_buf dat;
    rdx_error err;
    char dir[] = "/tmp/rdx-ecg-bench-XXXXXX";
    char path[256];
    rdx_buf_init(&dat, 1u << 20);
    if (rdx_file_read("tests/fixtures/ecg/100s.dat", &dat, &err) != RDX_OK ||
        mkdtemp(dir) == NULL) {
        fprintf(stderr, "ecg_decode_bench: %s (run from the repository root)\n", err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/long.dat", dir);
    FILE *f = fopen(path, "wb");
    for (unsigned i = 0; f && i < REPEAT; i++) {
        fwrite(dat.data, 1, dat.len, f);
    }
    if (f == NULL || fclose(f) != 0) {
        fprintf(stderr, "ecg_decode_bench: cannot write %s\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/long.hea", dir);
    f = fopen(path, "w");
    /* 100s's checksums are 21537 and -3962; the copies add up. */
    fprintf(f,
            "long 2 360 %u\nlong.dat 212 200 11 1024 995 %d 0 MLII\n"
            "long.dat 212 200 11 1024 1011 %d 0 V5\n",
            REPEAT * 21600u, (int)(int16_t)(uint16_t)((21537u * REPEAT) & 0xffff),
            (int)(int16_t)(uint16_t)(((uint32_t)-3962 * REPEAT) & 0xffff));
    fclose(f);
    rdx_buf_free(&dat);

    /* The same samples in format 16, through the writer. */
    rdx_ecg_record *rec = NULL;
    rdx_ecg_writer *w = NULL;
    rdx_ecg_record_opts o = {0};
    o.skip_checksum = 1;
    snprintf(path, sizeof path, "%s/long", dir);
    if (rdx_ecg_record_open(path, &o, &rec, &err) != RDX_OK) {
        fprintf(stderr, "ecg_decode_bench: %s\n", err.msg);
        return 1;
    }
    const rdx_ecg_record_info *in = rdx_ecg_record_info_get(rec);
    rdx_ecg_writer_cfg cfg = {dir, "long16", in->fs_hz, in->nsig, in->sig, 0, NULL, 0};
    static int32_t buf[4096 * 2];
    size_t got;
    uint64_t tw0 = rdx_clock_mono_ns();
    if (rdx_ecg_writer_new(&cfg, &w, &err) != RDX_OK) {
        fprintf(stderr, "ecg_decode_bench: %s\n", err.msg);
        return 1;
    }
    do {
        if (rdx_ecg_record_read(rec, buf, 4096, &got, &err) != RDX_OK ||
            rdx_ecg_writer_write(w, buf, got, &err) != RDX_OK) {
            fprintf(stderr, "ecg_decode_bench: %s\n", err.msg);
            return 1;
        }
    } while (got > 0);
    if (rdx_ecg_writer_finish(w, &err) != RDX_OK) {
        fprintf(stderr, "ecg_decode_bench: %s\n", err.msg);
        return 1;
    }
    double tw = (double)(rdx_clock_mono_ns() - tw0) / 1e9;
    rdx_ecg_writer_free(w);
    rdx_ecg_record_free(rec);

    uint64_t n212 = 0, n16 = 0;
    snprintf(path, sizeof path, "%s/long", dir);
    double t212 = read_all(path, &n212);
    snprintf(path, sizeof path, "%s/long16", dir);
    double t16 = read_all(path, &n16);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double r212 = (double)n212 / t212, r16 = (double)n16 / t16;
    double rw = (double)n16 / tw;
    printf("format 212 decode (checksums verified): %llu samples in %.3f s = %.3g samples/s\n",
           (unsigned long long)n212, t212, r212);
    printf("format 16 decode (checksums verified): %llu samples in %.3f s = %.3g samples/s\n",
           (unsigned long long)n16, t16, r16);
    printf("212 -> 16 copy (decode + write + fsync): %.3g samples/s\n", rw);
    printf("peak RSS: %ld KiB\n", ru.ru_maxrss);

    FILE *md = fopen("docs/ecg-decode-bench.md", "w");
    if (md) {
        fprintf(md,
                "# ECG decode benchmark\n\n"
                "Written by `bench/ecg_decode_bench` (`make bench`): record 100s repeated to "
                "%llu frames x 2 signals, read through `rdx_ecg_record_read()` in blocks of 4096 "
                "frames, best of 5 runs, one thread, files in the page cache.\n\n"
                "| stage | samples/s |\n| --- | --- |\n"
                "| decode format 212 (with checksum verification) | %.3g |\n"
                "| decode format 16 (with checksum verification) | %.3g |\n"
                "| copy 212 -> 16 (decode, write, fsync) | %.3g |\n\n"
                "Peak RSS of the whole benchmark: %ld KiB (the reader's memory does not grow "
                "with the record).\n",
                (unsigned long long)(n212 / 2), r212, r16, rw, ru.ru_maxrss);
        fclose(md);
    }
    snprintf(path, sizeof path, "%s/long.dat", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/long.hea", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/long16.dat", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/long16.hea", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
