/*
 * ecg_io.c - record and scoring verbs of `rdx ecg`:
 *   rdx ecg eval   beat-by-beat comparison of QRS annotations (EC57, bxb rules)
 */
#include "cli.h"
#include "ecg_verbs.h"
#include "rdx/ecg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char eval_usage[] =
    "Usage: rdx ecg eval [-r REF] [-t TEST] [--test-dir DIR] [--start TIME] [--end TIME]\n"
    "                    [--window SEC] [--json] RECORD...\n"
    "\n"
    "Compare the TEST annotations of each RECORD (a detector's output) with its\n"
    "REF annotations beat by beat, as ANSI/AAMI EC57 and PhysioNet's bxb do, and\n"
    "print per record TP, FN, FP, sensitivity (Se) and positive predictivity (+P),\n"
    "then the gross totals over all records.\n"
    "\n"
    "RECORD is a WFDB header (x/100.hea) or record path (x/100); the annotations\n"
    "are x/100.REF and x/100.TEST (or DIR/100.TEST with --test-dir).\n"
    "\n"
    "  -r REF          reference annotator (default atr)\n"
    "  -t TEST         test annotator (default qrs)\n"
    "  --test-dir DIR  directory of the test annotation files\n"
    "  --start TIME    begin scoring at TIME (seconds, m:ss or h:mm:ss; default 0;\n"
    "                  EC57 and bxb's default is --start 300)\n"
    "  --end TIME      stop at TIME (default: the record's length; 0: when either\n"
    "                  annotation file ends)\n"
    "  --window SEC    match window (default 0.15)\n"
    "  --json          machine-readable output on stdout\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 all records scored, 1 a record could not be scored, 2 usage.\n";

static const char *const EVAL = "ecg eval";

/* "300", "300.5", "5:00", "1:02:03.5" -> seconds. */
static int parse_seconds(const char *s, double *out)
{
    double total = 0.0;
    const char *p = s;
    int parts = 0;
    if (*s == '\0') {
        return -1;
    }
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        double v;
        if (++parts > 3 || rdx_parse_double(p, n, &v) != RDX_OK || v < 0.0) {
            return -1;
        }
        total = total * 60.0 + v;
        if (colon == NULL) {
            break;
        }
        p = colon + 1;
    }
    *out = total;
    return 0;
}

static void json_pct(FILE *f, double v)
{
    if (isnan(v)) {
        fputs("null", f);
    } else {
        fprintf(f, "%.4f", v);
    }
}

static void print_pct(FILE *f, double v, int width, int prec)
{
    if (isnan(v)) {
        fprintf(f, " %*s", width, "-");
    } else {
        fprintf(f, " %*.*f", width, prec, v);
    }
}

typedef struct eval_row {
    const char *record; /* the argument as given */
    char name[512];     /* the record name */
    rdx_ecg_eval_counts c;
    double fs;
} eval_row;

static char *join3(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 3;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s%s", dir, name, ext);
    }
    return p;
}

/* Score one record; 0 on success. */
static int eval_one(const char *arg, const char *ref_ann, const char *test_ann,
                    const char *test_dir, double start_s, int have_end, double end_s,
                    double window_s, eval_row *row)
{
    char dir[4096], name[512];
    rdx_error err;
    rdx_ecg_record *rec = NULL;
    rdx_ecg_annset *ref = NULL, *test = NULL;
    char *hea = NULL, *rpath = NULL, *tpath = NULL;
    int rc = 1;
    char ext_r[300], ext_t[300];

    rdx_error_clear(&err);
    if (rdx_ecg_record_split_path(arg, dir, sizeof dir, name, sizeof name) != RDX_OK) {
        rdx_cli_fail(EVAL, "%s: not a record path", arg);
        return 1;
    }
    snprintf(ext_r, sizeof ext_r, ".%s", ref_ann);
    snprintf(ext_t, sizeof ext_t, ".%s", test_ann);
    hea = join3(dir, name, ".hea");
    rpath = join3(dir, name, ext_r);
    tpath = join3(test_dir ? test_dir : dir, name, ext_t);
    if (hea == NULL || rpath == NULL || tpath == NULL) {
        rdx_cli_fail(EVAL, "%s: out of memory", arg);
        goto out;
    }
    rdx_ecg_record_opts o;
    memset(&o, 0, sizeof o);
    o.header_only = 1;
    if (rdx_ecg_record_open(hea, &o, &rec, &err) != RDX_OK ||
        rdx_ecg_ann_read(rpath, &ref, &err) != RDX_OK ||
        rdx_ecg_ann_read(tpath, &test, &err) != RDX_OK) {
        rdx_cli_fail_err(EVAL, &err);
        goto out;
    }
    const rdx_ecg_record_info *info = rdx_ecg_record_info_get(rec);
    rdx_ecg_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.fs_hz = info->fs_hz;
    eo.window_s = window_s;
    /* As WFDB's strtim(): seconds to the nearest sample. */
    eo.start_sample = (int64_t)(start_s * info->fs_hz + 0.5);
    if (have_end) {
        eo.end_sample = (int64_t)(end_s * info->fs_hz + 0.5);
    } else {
        eo.end_sample = info->nsamp_header > 0 ? (int64_t)info->nsamp_header : -1;
    }
    if (eo.end_sample > 0 && eo.end_sample < eo.start_sample) {
        rdx_cli_fail(EVAL, "%s: the end is before the start", arg);
        goto out;
    }
    if (rdx_ecg_eval_compare(ref, test, &eo, &row->c, &err) != RDX_OK) {
        rdx_cli_fail_err(EVAL, &err);
        goto out;
    }
    row->record = arg;
    snprintf(row->name, sizeof row->name, "%s", name);
    row->fs = info->fs_hz;
    rc = 0;
out:
    rdx_ecg_record_free(rec);
    rdx_ecg_annset_free(ref);
    rdx_ecg_annset_free(test);
    free(hea);
    free(rpath);
    free(tpath);
    return rc;
}

static double mean_offset_ms(const eval_row *r)
{
    if (r->c.nmatched == 0 || !(r->fs > 0.0)) {
        return NAN;
    }
    return 1000.0 * (double)r->c.offset_sum / (double)r->c.nmatched / r->fs;
}

int rdx_cli_ecg_eval(int argc, char **argv)
{
    const char *ref_ann = "atr", *test_ann = "qrs", *test_dir = NULL;
    double start_s = 0.0, end_s = 0.0, window_s = 0.15;
    int have_end = 0, json = 0;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (rdx_cli_is_help(a)) {
            fputs(eval_usage, stdout);
            return RDX_EXIT_OK;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            break;
        }
        int takes = strcmp(a, "-r") == 0 || strcmp(a, "-t") == 0 || strcmp(a, "--test-dir") == 0 ||
                    strcmp(a, "--start") == 0 || strcmp(a, "--end") == 0 ||
                    strcmp(a, "--window") == 0;
        if (takes && i + 1 >= argc) {
            return rdx_cli_usage(EVAL, "%s needs a value", a);
        }
        if (strcmp(a, "-r") == 0 || strcmp(a, "-t") == 0) {
            const char *v = argv[++i];
            if (v[0] == '\0' || strchr(v, '/') || strlen(v) > 64) {
                return rdx_cli_usage(EVAL, "bad annotator name '%s'", v);
            }
            if (a[1] == 'r') {
                ref_ann = v;
            } else {
                test_ann = v;
            }
        } else if (strcmp(a, "--test-dir") == 0) {
            test_dir = argv[++i];
        } else if (strcmp(a, "--start") == 0) {
            if (parse_seconds(argv[++i], &start_s) != 0) {
                return rdx_cli_usage(EVAL, "bad --start time '%s'", argv[i]);
            }
        } else if (strcmp(a, "--end") == 0) {
            if (parse_seconds(argv[++i], &end_s) != 0) {
                return rdx_cli_usage(EVAL, "bad --end time '%s'", argv[i]);
            }
            have_end = 1;
        } else if (strcmp(a, "--window") == 0) {
            if (parse_seconds(argv[++i], &window_s) != 0 || !(window_s > 0.0) || window_s > 10.0) {
                return rdx_cli_usage(EVAL, "bad --window '%s' (seconds, up to 10)", argv[i]);
            }
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else {
            return rdx_cli_usage(EVAL, "unknown option '%s'", a);
        }
    }
    if (i >= argc) {
        return rdx_cli_usage(EVAL, "no RECORD given");
    }
    size_t n = (size_t)(argc - i);
    eval_row *rows = calloc(n, sizeof *rows);
    if (rows == NULL) {
        return rdx_cli_fail(EVAL, "out of memory");
    }
    size_t nok = 0;
    int failed = 0;
    rdx_ecg_eval_counts total;
    memset(&total, 0, sizeof total);
    for (; i < argc; i++) {
        if (eval_one(argv[i], ref_ann, test_ann, test_dir, start_s, have_end, end_s, window_s,
                     &rows[nok]) == 0) {
            rdx_ecg_eval_add(&total, &rows[nok].c);
            nok++;
        } else {
            failed = 1;
        }
    }
    if (json) {
        printf("{\"reference\":");
        rdx_cli_json_str(stdout, ref_ann);
        printf(",\"test\":");
        rdx_cli_json_str(stdout, test_ann);
        printf(",\"start_s\":%.6g,\"window_s\":%.6g,\"records\":[", start_s, window_s);
        for (size_t k = 0; k < nok; k++) {
            const eval_row *r = &rows[k];
            printf("%s{\"record\":", k ? "," : "");
            rdx_cli_json_str(stdout, r->name);
            printf(",\"path\":");
            rdx_cli_json_str(stdout, r->record);
            printf(",\"nref\":%llu,\"tp\":%llu,\"fn\":%llu,\"fp\":%llu,\"se\":",
                   (unsigned long long)(r->c.tp + r->c.fn), (unsigned long long)r->c.tp,
                   (unsigned long long)r->c.fn, (unsigned long long)r->c.fp);
            json_pct(stdout, rdx_ecg_eval_se(&r->c));
            printf(",\"ppv\":");
            json_pct(stdout, rdx_ecg_eval_ppv(&r->c));
            printf(",\"mean_offset_ms\":");
            json_pct(stdout, mean_offset_ms(r));
            printf("}");
        }
        printf("],\"gross\":{\"nref\":%llu,\"tp\":%llu,\"fn\":%llu,\"fp\":%llu,\"se\":",
               (unsigned long long)(total.tp + total.fn), (unsigned long long)total.tp,
               (unsigned long long)total.fn, (unsigned long long)total.fp);
        json_pct(stdout, rdx_ecg_eval_se(&total));
        printf(",\"ppv\":");
        json_pct(stdout, rdx_ecg_eval_ppv(&total));
        printf("},\"failed\":%s}\n", failed ? "true" : "false");
    } else {
        printf("%-12s %7s %7s %6s %6s %8s %8s %8s\n", "Record", "Nref", "TP", "FN", "FP", "Se%",
               "+P%", "dt_ms");
        for (size_t k = 0; k < nok; k++) {
            const eval_row *r = &rows[k];
            printf("%-12s %7llu %7llu %6llu %6llu", r->name,
                   (unsigned long long)(r->c.tp + r->c.fn), (unsigned long long)r->c.tp,
                   (unsigned long long)r->c.fn, (unsigned long long)r->c.fp);
            print_pct(stdout, rdx_ecg_eval_se(&r->c), 8, 2);
            print_pct(stdout, rdx_ecg_eval_ppv(&r->c), 8, 2);
            print_pct(stdout, mean_offset_ms(r), 8, 1);
            putchar('\n');
        }
        printf("%-12s %7llu %7llu %6llu %6llu", "Gross", (unsigned long long)(total.tp + total.fn),
               (unsigned long long)total.tp, (unsigned long long)total.fn,
               (unsigned long long)total.fp);
        print_pct(stdout, rdx_ecg_eval_se(&total), 8, 3);
        print_pct(stdout, rdx_ecg_eval_ppv(&total), 8, 3);
        putchar('\n');
    }
    free(rows);
    return failed ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}
