/* rdx img: index DICOM files and folders, query the index, show reports. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "rdx/imaging.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Small helpers ----------------------------------------------------------- */

/* The reason without a leading "PATH: " (messages from the engine name the file). */
static const char *strip_path(const char *path, const char *reason)
{
    size_t n = strlen(path);
    if (strncmp(reason, path, n) == 0 && reason[n] == ':' && reason[n + 1] == ' ') {
        return reason + n + 2;
    }
    return reason;
}

/* Take the value of option name from argv[*i] ("--db URI" or "--db=URI"); NULL if not it. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) {
        return NULL;
    }
    if (a[n] == '=') {
        return a + n + 1;
    }
    if (a[n] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

/* ---- rdx img index ------------------------------------------------------------ */

struct bad_file {
    char *path;
    char *reason;
    int failed;
};

struct index_run {
    int json;
    int tty; /* stderr is a terminal: show progress */
    struct bad_file *bad;
    size_t nbad, cap;
    int oom;
};

static void on_progress(void *user, const rdx_img_index_stats *s)
{
    struct index_run *run = user;
    if (run->tty) {
        fprintf(stderr, "\r%" PRIu64 " files, %" PRIu64 " indexed, %" PRIu64 " unchanged...",
                s->files_seen, s->indexed, s->unchanged);
        fflush(stderr);
    }
}

static void on_bad(void *user, const char *path, int failed, rdx_status st, const char *reason)
{
    struct index_run *run = user;
    (void)st;
    const char *why = strip_path(path, reason);
    if (run->tty) {
        fputs("\r\033[K", stderr); /* clear the progress line first */
    }
    if (!run->json) {
        fprintf(stderr, "rdx img index: %s: %s%s\n", path, failed ? "" : "skipped: ", why);
        return;
    }
    if (run->nbad == run->cap) {
        size_t nc = run->cap ? run->cap * 2 : 16;
        struct bad_file *nb = rdx_reallocarray(run->bad, nc, sizeof *nb);
        if (nb == NULL) {
            run->oom = 1;
            return;
        }
        run->bad = nb;
        run->cap = nc;
    }
    struct bad_file *b = &run->bad[run->nbad];
    b->path = rdx_strndup(path, strlen(path));
    b->reason = rdx_strndup(why, strlen(why));
    b->failed = failed;
    if (b->path == NULL || b->reason == NULL) {
        free(b->path);
        free(b->reason);
        run->oom = 1;
        return;
    }
    run->nbad++;
}

static void index_usage(FILE *f)
{
    fprintf(f,
            "Usage: rdx img index [--db URI] [-j N] [--prune] [--json] PATH...\n\n"
            "Index every DICOM instance in the files and folders given (folders are walked\n"
            "recursively; a DICOMDIR given by itself is read for the files it lists).\n"
            "Re-indexing is idempotent: unchanged files (same size and mtime) are not read\n"
            "again, changed files replace their rows. Non-DICOM files are skipped and\n"
            "counted, malformed DICOM files are reported and skipped; neither stops the\n"
            "walk. A SOP Instance UID already indexed from another file that still exists\n"
            "is refused (the first file keeps it). SR documents and Encapsulated PDFs\n"
            "become reports linked to their studies. Writes are batched in transactions: a\n"
            "run that is killed leaves a consistent index, and the next run completes it.\n\n"
            "  --db URI   index to write (default %s): sqlite:PATH, or\n"
            "             postgresql://[user@]host/db (libpq URI) for a shared index\n"
            "  -j N       parse headers on N threads (1 to 64; writes stay in walk order)\n"
            "  --prune    remove the rows of indexed files under PATH that no longer exist\n"
            "  --json     print the summary and the skipped/failed files as JSON\n\n"
            "Exit status: 0 when every file was indexed, unchanged or skipped; 1 when a\n"
            "file was refused as malformed or the index failed; 2 on usage errors.\n",
            RDX_IMG_INDEX_DEFAULT_URI);
}

static int cmd_index(int argc, char **argv)
{
    const char *cmd = "img index";
    const char *db = RDX_IMG_INDEX_DEFAULT_URI;
    struct index_run run = {0};
    int first = 0, npaths = 0, prune = 0;
    unsigned jobs = 1;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (rdx_cli_is_help(argv[i])) {
            index_usage(stdout);
            return RDX_EXIT_OK;
        } else if ((v = opt_value(argc, argv, &i, "--db", &missing)) != NULL) {
            db = v;
        } else if (missing) {
            return rdx_cli_usage(cmd, "%s needs a value", argv[i]);
        } else if (strcmp(argv[i], "--json") == 0) {
            run.json = 1;
        } else if (strcmp(argv[i], "--prune") == 0) {
            prune = 1;
        } else if ((v = opt_value(argc, argv, &i, "-j", &missing)) != NULL) {
            int64_t n;
            if (rdx_parse_i64(v, strlen(v), 1, 64, &n) != RDX_OK) {
                return rdx_cli_usage(cmd, "-j '%s': expected 1 to 64 threads", v);
            }
            jobs = (unsigned)n;
        } else if (missing) {
            return rdx_cli_usage(cmd, "%s needs a value", argv[i]);
        } else if (strcmp(argv[i], "--") == 0) {
            first = first ? first : i + 1;
            npaths += argc - i - 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return rdx_cli_usage(cmd, "unknown option '%s'", argv[i]);
        } else {
            npaths++;
        }
    }
    if (npaths == 0) {
        return rdx_cli_usage(cmd, "no PATH given");
    }
    (void)first;
    rdx_img_index *ix = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_img_index_open(db, &ix, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_img_index_stats stats = {0};
    run.tty = isatty(STDERR_FILENO);
    rdx_img_index_opts opts = {
        .report = on_bad, .progress = on_progress, .user = &run, .jobs = jobs};
    int rc = RDX_EXIT_OK;
    int after_dashdash = 0;
    for (int i = 1; i < argc && rc == RDX_EXIT_OK; i++) {
        if (!after_dashdash) {
            if (strcmp(argv[i], "--db") == 0 || strcmp(argv[i], "-j") == 0) {
                i++;
                continue;
            }
            if (strcmp(argv[i], "--") == 0) {
                after_dashdash = 1;
                continue;
            }
            if (argv[i][0] == '-' && argv[i][1] != '\0') {
                continue;
            }
        }
        rdx_error_clear(&err);
        if (rdx_img_index_add_path(ix, argv[i], &opts, &stats, &err) != RDX_OK ||
            (prune && rdx_img_index_prune(ix, argv[i], &stats, &err) != RDX_OK)) {
            rc = rdx_cli_fail_err(cmd, &err);
        }
    }
    if (run.tty) {
        fputs("\r\033[K", stderr);
    }
    rdx_img_index_close(ix);
    if (run.json) {
        printf("{\"files_seen\":%" PRIu64 ",\"indexed\":%" PRIu64 ",\"reports\":%" PRIu64
               ",\"unchanged\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"pruned\":%" PRIu64 ",\"problems\":[",
               stats.files_seen, stats.indexed, stats.reports, stats.unchanged, stats.skipped,
               stats.failed, stats.pruned);
        for (size_t i = 0; i < run.nbad; i++) {
            printf("%s{\"path\":", i ? "," : "");
            rdx_cli_json_str(stdout, run.bad[i].path);
            printf(",\"status\":\"%s\",\"reason\":", run.bad[i].failed ? "failed" : "skipped");
            rdx_cli_json_str(stdout, run.bad[i].reason);
            printf("}");
        }
        printf("]}\n");
    } else {
        printf("files seen %" PRIu64 ", indexed %" PRIu64 " (reports %" PRIu64
               "), unchanged %" PRIu64 ", skipped %" PRIu64 ", failed %" PRIu64 "%s",
               stats.files_seen, stats.indexed, stats.reports, stats.unchanged, stats.skipped,
               stats.failed, prune ? "" : "\n");
        if (prune) {
            printf(", pruned %" PRIu64 "\n", stats.pruned);
        }
    }
    for (size_t i = 0; i < run.nbad; i++) {
        free(run.bad[i].path);
        free(run.bad[i].reason);
    }
    free(run.bad);
    if (run.oom) {
        return rdx_cli_fail(cmd, "out of memory while listing problem files");
    }
    if (rc == RDX_EXIT_OK && stats.failed > 0) {
        rc = RDX_EXIT_FAIL;
    }
    return rc;
}

/* ---- rdx img query ------------------------------------------------------------ */

struct query_out {
    int json;
    rdx_img_level level;
    size_t n;
};

static void json_field(const char *name, const char *v, int *first)
{
    printf("%s\"%s\":", *first ? "" : ",", name);
    rdx_cli_json_str(stdout, v);
    *first = 0;
}

static void json_int(const char *name, int64_t v, int *first)
{
    printf("%s\"%s\":%" PRId64, *first ? "" : ",", name, v);
    *first = 0;
}

/*
 * s left-aligned in a column cols terminal cells wide, then one space: padded
 * by display width, so Chinese, Japanese and Korean names (two cells a
 * character) keep the columns after them aligned. Longer text is not cut.
 */
static void cell(const char *s, size_t cols)
{
    const char *v = s != NULL ? s : "";
    fputs(v, stdout);
    for (size_t w = rdx_img_text_width(v); w < cols; w++) {
        putchar(' ');
    }
    putchar(' ');
}

static int on_row(void *user, const rdx_img_row *r)
{
    struct query_out *q = user;
    if (q->json) {
        int first = 1;
        printf("%s\n  {", q->n ? "," : "");
        json_field("patient_id", r->patient_id, &first);
        json_field("issuer", r->issuer, &first);
        json_field("patient_name", r->patient_name, &first);
        json_field("birth_date", r->birth_date, &first);
        json_field("sex", r->sex, &first);
        if (q->level == RDX_IMG_LEVEL_PATIENT) {
            json_int("studies", r->n_studies, &first);
        }
        if (q->level >= RDX_IMG_LEVEL_STUDY) {
            json_field("study_uid", r->study_uid, &first);
            json_field("study_date", r->study_date, &first);
            json_field("study_time", r->study_time, &first);
            json_field("accession", r->accession, &first);
            json_field("study_description", r->study_description, &first);
            json_field("modalities", r->modalities, &first);
            printf(",\"has_report\":%s", r->has_report ? "true" : "false");
        }
        if (q->level <= RDX_IMG_LEVEL_STUDY) {
            json_int("series", r->n_series, &first);
        }
        if (q->level >= RDX_IMG_LEVEL_SERIES) {
            json_field("series_uid", r->series_uid, &first);
            json_field("modality", r->modality, &first);
            json_field("series_description", r->series_description, &first);
            json_int("series_number", r->series_number, &first);
        }
        if (q->level <= RDX_IMG_LEVEL_SERIES) {
            json_int("instances", r->n_instances, &first);
        }
        if (q->level == RDX_IMG_LEVEL_INSTANCE) {
            json_field("sop_instance_uid", r->sop_instance_uid, &first);
            json_field("sop_class_uid", r->sop_class_uid, &first);
            json_field("transfer_syntax", r->transfer_syntax, &first);
            json_int("instance_number", r->instance_number, &first);
            json_int("rows", r->rows, &first);
            json_int("columns", r->columns, &first);
            json_int("frames", r->frames, &first);
            json_field("path", r->path, &first);
        }
        printf("}");
    } else {
        switch (q->level) {
        case RDX_IMG_LEVEL_PATIENT:
            cell(r->patient_id, 16);
            cell(r->patient_name, 40);
            cell(r->birth_date, 8);
            cell(r->sex, 3);
            printf("%7" PRId64 " %7" PRId64 " %9" PRId64 "\n", r->n_studies, r->n_series,
                   r->n_instances);
            break;
        case RDX_IMG_LEVEL_STUDY:
            cell(r->study_date, 8);
            cell(r->patient_id, 16);
            cell(r->patient_name, 30);
            cell(r->modalities, 10);
            cell(r->accession, 16);
            printf("%6" PRId64 " %9" PRId64 " %-6s %s\n", r->n_series, r->n_instances,
                   r->has_report ? "yes" : "no", r->study_uid);
            break;
        case RDX_IMG_LEVEL_SERIES:
            cell(r->study_date, 8);
            cell(r->patient_id, 16);
            cell(r->modality, 8);
            printf("%6" PRId64 " %9" PRId64 " ", r->series_number, r->n_instances);
            cell(r->series_description, 30);
            printf("%s\n", r->series_uid);
            break;
        default:
            cell(r->patient_id, 16);
            cell(r->modality, 8);
            printf("%6" PRId64 " %5" PRId64 "x%-5" PRId64 " %4" PRId64 " %s\n", r->instance_number,
                   r->rows, r->columns, r->frames, r->path);
            break;
        }
    }
    q->n++;
    return 0;
}

static void print_header(rdx_img_level level)
{
    switch (level) {
    case RDX_IMG_LEVEL_PATIENT:
        printf("%-16s %-40s %-8s %-3s %7s %7s %9s\n", "PATIENT-ID", "NAME", "BIRTH", "SEX",
               "STUDIES", "SERIES", "INSTANCES");
        break;
    case RDX_IMG_LEVEL_STUDY:
        printf("%-8s %-16s %-30s %-10s %-16s %6s %9s %-6s %s\n", "DATE", "PATIENT-ID", "NAME",
               "MODALITY", "ACCESSION", "SERIES", "INSTANCES", "REPORT", "STUDY-UID");
        break;
    case RDX_IMG_LEVEL_SERIES:
        printf("%-8s %-16s %-8s %6s %9s %-30s %s\n", "DATE", "PATIENT-ID", "MODALITY", "NUMBER",
               "INSTANCES", "DESCRIPTION", "SERIES-UID");
        break;
    default:
        printf("%-16s %-8s %6s %11s %4s %s\n", "PATIENT-ID", "MODALITY", "NUMBER", "SIZE", "FRAMES",
               "PATH");
        break;
    }
}

static void query_usage(FILE *f)
{
    fprintf(f,
            "Usage: rdx img query [--db URI] [--level patient|study|series|instance]\n"
            "                     [--patient-id ID] [--patient-name NAME] [--study-date RANGE]\n"
            "                     [--modality MOD] [--accession ACC] [--study-uid UID]\n"
            "                     [--series-uid UID] [--limit N] [--json]\n\n"
            "Query the index (default level: study). --patient-id and --patient-name take\n"
            "the DICOM wildcards * and ?; a name matches any of its three component groups\n"
            "(alphabetic, ideographic, phonetic), the alphabetic one case-insensitively:\n"
            "'wang*' and '王*' both find Wang^XiaoDong=王^小东. --study-date is YYYYMMDD,\n"
            "FROM-TO, FROM- or -TO. --modality matches any series of a study. Answers come\n"
            "in study date order; the study level says whether a report exists.\n\n"
            "  --db URI   index to read (default %s; sqlite:PATH or postgresql://...)\n"
            "  --limit N  at most N answers\n"
            "  --json     print a JSON array of the answers\n",
            RDX_IMG_INDEX_DEFAULT_URI);
}

/*
 * Reading verbs must not create an empty index where the user mistyped a
 * path: an SQLite index that does not exist yet is an error for them (only
 * `rdx img index` creates one). Other URIs are left to the backend.
 */
static int require_existing_index(const char *cmd, const char *uri)
{
    const char *path = NULL;
    if (strncmp(uri, "sqlite:", 7) == 0) {
        path = uri + 7;
    } else if (strstr(uri, "://") == NULL) {
        path = uri;
    }
    if (path == NULL || strcmp(path, ":memory:") == 0 || path[0] == '\0') {
        return RDX_EXIT_OK;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return rdx_cli_fail(
            cmd, "%s: no such index (create it with 'rdx img index --db %s PATH...')", path, uri);
    }
    return RDX_EXIT_OK;
}

static int cmd_query(int argc, char **argv)
{
    const char *cmd = "img query";
    const char *db = RDX_IMG_INDEX_DEFAULT_URI;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_STUDY};
    struct query_out out = {0};
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (rdx_cli_is_help(argv[i])) {
            query_usage(stdout);
            return RDX_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            out.json = 1;
            continue;
        }
        if ((v = opt_value(argc, argv, &i, "--db", &missing)) != NULL) {
            db = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--level", &missing)) != NULL) {
            int lv = rdx_img_level_parse(v);
            if (lv < 0) {
                return rdx_cli_usage(cmd,
                                     "--level '%s': expected patient, study, series or "
                                     "instance",
                                     v);
            }
            q.level = (rdx_img_level)lv;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--patient-id", &missing)) != NULL) {
            q.patient_id = v;
        } else if (!missing &&
                   (v = opt_value(argc, argv, &i, "--patient-name", &missing)) != NULL) {
            q.patient_name = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--study-date", &missing)) != NULL) {
            q.study_date = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--modality", &missing)) != NULL) {
            q.modality = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--accession", &missing)) != NULL) {
            q.accession = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--study-uid", &missing)) != NULL) {
            q.study_uid = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--series-uid", &missing)) != NULL) {
            q.series_uid = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--limit", &missing)) != NULL) {
            int64_t n = 0;
            if (rdx_parse_i64(v, strlen(v), 1, INT32_MAX, &n) != RDX_OK) {
                return rdx_cli_usage(cmd, "--limit '%s': expected a positive integer", v);
            }
            q.limit = (size_t)n;
        } else if (missing) {
            return rdx_cli_usage(cmd, "%s needs a value", argv[i]);
        } else {
            return rdx_cli_usage(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (require_existing_index(cmd, db) != RDX_EXIT_OK) {
        return RDX_EXIT_FAIL;
    }
    rdx_img_index *ix = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_img_index_open(db, &ix, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    out.level = q.level;
    if (out.json) {
        printf("[");
    } else {
        print_header(q.level);
    }
    rdx_status st = rdx_img_index_query(ix, &q, on_row, &out, NULL, &err);
    rdx_img_index_close(ix);
    if (out.json) {
        printf("%s]\n", out.n ? "\n" : "");
    }
    if (st != RDX_OK) {
        return st == RDX_EINVAL ? rdx_cli_usage(cmd, "%s", err.msg) : rdx_cli_fail_err(cmd, &err);
    }
    return RDX_EXIT_OK;
}

/* ---- rdx img report show -------------------------------------------------------- */

static void report_usage(FILE *f)
{
    fprintf(f,
            "Usage: rdx img report show [--db URI] STUDY_UID\n"
            "       rdx img report add [--db URI] --study STUDY_UID FILE\n\n"
            "show: print the readable text of the reports linked to a study (SR documents:\n"
            "headings, findings, measurements with units; added text and HTML reports).\n"
            "add: link a plain-text or HTML report file to a study (HTML becomes text;\n"
            "text that is not UTF-8 is read as GB18030). Adding a file again replaces it.\n\n"
            "  --db URI   index to use (default %s)\n",
            RDX_IMG_INDEX_DEFAULT_URI);
}

static int cmd_report(int argc, char **argv)
{
    const char *cmd = "img report";
    const char *db = RDX_IMG_INDEX_DEFAULT_URI;
    const char *uid = NULL, *study = NULL;
    if (argc > 1 && rdx_cli_is_help(argv[1])) {
        report_usage(stdout);
        return RDX_EXIT_OK;
    }
    int add = argc >= 2 && strcmp(argv[1], "add") == 0;
    if (argc < 2 || (!add && strcmp(argv[1], "show") != 0)) {
        return rdx_cli_usage(cmd, "expected 'show' or 'add'");
    }
    for (int i = 2; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (rdx_cli_is_help(argv[i])) {
            report_usage(stdout);
            return RDX_EXIT_OK;
        }
        if ((v = opt_value(argc, argv, &i, "--db", &missing)) != NULL) {
            db = v;
        } else if (add && !missing &&
                   (v = opt_value(argc, argv, &i, "--study", &missing)) != NULL) {
            study = v;
        } else if (missing) {
            return rdx_cli_usage(cmd, "%s needs a value", argv[i]);
        } else if (argv[i][0] == '-') {
            return rdx_cli_usage(cmd, "unknown option '%s'", argv[i]);
        } else if (uid == NULL) {
            uid = argv[i];
        } else {
            return rdx_cli_usage(cmd, "more than one %s", add ? "FILE" : "STUDY_UID");
        }
    }
    if (uid == NULL) {
        return rdx_cli_usage(cmd, "no %s given", add ? "FILE" : "STUDY_UID");
    }
    if (add && study == NULL) {
        return rdx_cli_usage(cmd, "no --study STUDY_UID given");
    }
    if (!add && require_existing_index(cmd, db) != RDX_EXIT_OK) {
        return RDX_EXIT_FAIL;
    }
    rdx_img_index *ix = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_img_index_open(db, &ix, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    if (add) {
        rdx_status st = rdx_img_index_report_add(ix, study, uid, &err);
        rdx_img_index_close(ix);
        if (st == RDX_EINVAL) {
            return rdx_cli_usage(cmd, "%s", err.msg);
        }
        return st == RDX_OK ? RDX_EXIT_OK : rdx_cli_fail_err(cmd, &err);
    }
    rdx_buf text;
    rdx_buf_init(&text, 64u * 1024u * 1024u);
    rdx_status st = rdx_img_index_report_text(ix, uid, &text, &err);
    rdx_img_index_close(ix);
    if (st == RDX_OK) {
        fwrite(text.data, 1, text.len, stdout);
    }
    rdx_buf_free(&text);
    return st == RDX_OK ? RDX_EXIT_OK : rdx_cli_fail_err(cmd, &err);
}

/* ---- rdx img preview ------------------------------------------------------------- */

static void preview_usage(FILE *f)
{
    fprintf(f, "Usage: rdx img preview FILE [--frame N] [--size PIXELS] [--window CENTER,WIDTH]\n"
               "                       -o OUT.png\n\n"
               "Decode one frame of a DICOM image (native, deflated, RLE, JPEG baseline,\n"
               "extended and lossless, JPEG-LS, JPEG 2000) and write a windowed 8-bit PNG.\n"
               "Grey images use the stored Window Center/Width (after Rescale Slope and\n"
               "Intercept) unless --window is given, else the frame's range; MONOCHROME1 is\n"
               "inverted; colour (RGB, YBR, palette) is written as RGB.\n\n"
               "  --frame N        0-based frame of a multi-frame image (default 0)\n"
               "  --size PIXELS    shrink so that the longest side is at most PIXELS (default:\n"
               "                   full size), averaging each block\n"
               "  --window C,W     window centre and width in output units (W >= 1)\n"
               "  -o OUT.png       where to write the PNG (replaced atomically)\n");
}

static int cmd_preview(int argc, char **argv)
{
    const char *cmd = "img preview";
    const char *in = NULL, *outp = NULL;
    rdx_img_preview_opts o = {0};
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (rdx_cli_is_help(argv[i])) {
            preview_usage(stdout);
            return RDX_EXIT_OK;
        }
        if ((v = opt_value(argc, argv, &i, "-o", &missing)) != NULL) {
            outp = v;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--frame", &missing)) != NULL) {
            int64_t n;
            if (rdx_parse_i64(v, strlen(v), 0, UINT32_MAX, &n) != RDX_OK) {
                return rdx_cli_usage(cmd, "--frame '%s': expected a frame number from 0", v);
            }
            o.frame = (uint32_t)n;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--size", &missing)) != NULL) {
            int64_t n;
            if (rdx_parse_i64(v, strlen(v), 1, 8192, &n) != RDX_OK) {
                return rdx_cli_usage(cmd, "--size '%s': expected 1 to 8192 pixels", v);
            }
            o.max_side = (uint32_t)n;
        } else if (!missing && (v = opt_value(argc, argv, &i, "--window", &missing)) != NULL) {
            const char *comma = strchr(v, ',');
            if (comma == NULL || rdx_parse_double(v, (size_t)(comma - v), &o.center) != RDX_OK ||
                rdx_parse_double(comma + 1, strlen(comma + 1), &o.width) != RDX_OK ||
                !(o.width >= 1.0)) {
                return rdx_cli_usage(cmd, "--window '%s': expected CENTER,WIDTH with WIDTH >= 1",
                                     v);
            }
            o.use_window = 1;
        } else if (missing) {
            return rdx_cli_usage(cmd, "%s needs a value", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return rdx_cli_usage(cmd, "unknown option '%s'", argv[i]);
        } else if (in == NULL) {
            in = argv[i];
        } else {
            return rdx_cli_usage(cmd, "more than one FILE");
        }
    }
    if (in == NULL) {
        return rdx_cli_usage(cmd, "no FILE given");
    }
    if (outp == NULL) {
        return rdx_cli_usage(cmd, "no output given (-o OUT.png)");
    }
    rdx_error err;
    rdx_error_clear(&err);
    if (rdx_img_preview_png(in, &o, outp, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    return RDX_EXIT_OK;
}

static const struct rdx_cli_verb verbs[] = {
    {"index", "index DICOM files and folders (SQLite)", cmd_index},
    {"query", "find patients, studies, series or instances in the index", cmd_query},
    {"report", "show a study's reports, or add a text/HTML report ('report show|add')", cmd_report},
    {"preview", "write a windowed PNG thumbnail of one frame of an image", cmd_preview},
};

const struct rdx_cli_group rdx_cli_group_img = {
    .name = "img",
    .summary = "DICOM image index: index studies and query them",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0],
};
