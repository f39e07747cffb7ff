/*
 * The index: walking folders, idempotent re-indexing, changed and duplicate
 * files, reports linked to studies, the query filters on real values, and
 * the rdx img verbs as a user runs them.
 */
#define _POSIX_C_SOURCE 200809L /* pthread_barrier_t */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Debian puts libpq in /usr/include/postgresql; its own includes are relative. */
#include <postgresql/libpq-fe.h>
#include <sqlite3.h>

#include "rdx/common.h"
#include "rdx/imaging.h"
#include "support/testutil.h"

#define FIXTURES "tests/fixtures/imaging"

struct problem_log {
    char text[65536];
    size_t len;
};

static void on_problem(void *user, const char *path, int failed, rdx_status st, const char *reason)
{
    struct problem_log *log = user;
    (void)st;
    int n = snprintf(log->text + log->len, sizeof log->text - log->len, "%s|%d|%s\n", path, failed,
                     reason);
    if (n > 0 && (size_t)n < sizeof log->text - log->len) {
        log->len += (size_t)n;
    }
}

struct fixture {
    char *dir;
    char uri[1024];
    rdx_img_index *ix;
    int unavailable; /* the backend cannot run here (no PostgreSQL server binaries) */
};

/* ---- A throwaway PostgreSQL cluster for the whole suite --------------------------- */

#define PG_BIN "/usr/lib/postgresql/15/bin"

struct pg_cluster {
    char *dir; /* data in dir/data, socket in dir */
    int up;
    int ndb;
    char why[256];
};

static struct pg_cluster pg; /* test-suite state: one cluster per test binary */

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/*
 * initdb and pg_ctl into a temporary directory, socket only, nothing on the
 * network. The server refuses to run as root, so as root it runs as the
 * postgres user (../shared/DESIGN.md, "Real services and tools in tests").
 */
static void pg_start(void)
{
    if (access(PG_BIN "/initdb", X_OK) != 0 || access(PG_BIN "/pg_ctl", X_OK) != 0) {
        snprintf(pg.why, sizeof pg.why, "no PostgreSQL server binaries in %s", PG_BIN);
        return;
    }
    pg.dir = rdx_test_tmpdir();
    if (pg.dir == NULL) {
        snprintf(pg.why, sizeof pg.why, "cannot make a temporary directory");
        return;
    }
    const char *as = "";
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(pg.dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(pg.why, sizeof pg.why, "running as root and there is no postgres user");
            return;
        }
        as = "runuser -u postgres -- ";
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s" PG_BIN "/initdb -D %s/data -E UTF8 --locale=C -A trust -U postgres"
             " >%s/initdb.log 2>&1",
             as, pg.dir, pg.dir);
    if (sh(cmd) != 0) {
        snprintf(pg.why, sizeof pg.why, "initdb failed (see %s/initdb.log)", pg.dir);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s" PG_BIN "/pg_ctl -D %s/data -o \"-k %s -c listen_addresses=''\" -l %s/server.log"
             " -w -t 60 start >/dev/null 2>&1",
             as, pg.dir, pg.dir, pg.dir);
    if (sh(cmd) != 0) {
        snprintf(pg.why, sizeof pg.why, "pg_ctl start failed (see %s/server.log)", pg.dir);
        return;
    }
    pg.up = 1;
}

static int pg_group_setup(void **state)
{
    (void)state;
    pg_start();
    if (!pg.up) {
        print_message("PostgreSQL tests will be skipped: %s\n", pg.why);
    }
    return 0;
}

static int pg_group_teardown(void **state)
{
    (void)state;
    if (pg.dir != NULL) {
        if (pg.up) {
            char cmd[2048];
            snprintf(cmd, sizeof cmd,
                     "%s" PG_BIN "/pg_ctl -D %s/data -m fast -w stop >/dev/null 2>&1",
                     geteuid() == 0 ? "runuser -u postgres -- " : "", pg.dir);
            (void)sh(cmd);
        }
        rdx_test_rmrf(pg.dir);
        free(pg.dir);
    }
    return 0;
}

static struct fixture *fixture_new(void)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = rdx_test_tmpdir();
    assert_non_null(f->dir);
    return f;
}

static void fixture_open(struct fixture *f)
{
    rdx_error err;
    if (rdx_img_index_open(f->uri, &f->ix, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
}

static int setup(void **state)
{
    struct fixture *f = fixture_new();
    snprintf(f->uri, sizeof f->uri, "sqlite:%s/index.db", f->dir);
    fixture_open(f);
    *state = f;
    return 0;
}

/* A fresh database in the suite's cluster for each test. */
static int setup_pg(void **state)
{
    struct fixture *f = fixture_new();
    *state = f;
    if (!pg.up) {
        f->unavailable = 1;
        return 0;
    }
    char conn[1200];
    snprintf(conn, sizeof conn, "postgresql:///postgres?host=%s&user=postgres", pg.dir);
    PGconn *c = PQconnectdb(conn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "CREATE DATABASE t%d", ++pg.ndb);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    snprintf(f->uri, sizeof f->uri, "postgresql:///t%d?host=%s&user=postgres", pg.ndb, pg.dir);
    fixture_open(f);
    return 0;
}

/* Skip a test whose backend cannot run here, saying why. */
#define NEED_BACKEND(f)                                                                            \
    do {                                                                                           \
        if ((f)->unavailable) {                                                                    \
            print_message("skipped: %s\n", pg.why);                                                \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static int teardown(void **state)
{
    struct fixture *f = *state;
    rdx_img_index_close(f->ix);
    rdx_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void add(struct fixture *f, const char *path, rdx_img_index_stats *stats,
                struct problem_log *log)
{
    rdx_img_index_opts opts = {.report = on_problem, .user = log};
    rdx_error err;
    memset(stats, 0, sizeof *stats);
    if (rdx_img_index_add_path(f->ix, path, &opts, stats, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
}

/* Collect query answers as "field1|field2" lines chosen by the caller. */
struct answers {
    char text[16384];
    size_t len;
    size_t n;
    int level;
};

static int on_row(void *user, const rdx_img_row *r)
{
    struct answers *a = user;
    int n;
    switch (r->level) {
    case RDX_IMG_LEVEL_PATIENT:
        n = snprintf(a->text + a->len, sizeof a->text - a->len, "%s|%s|%lld|%lld|%lld\n",
                     r->patient_id, r->patient_name, (long long)r->n_studies,
                     (long long)r->n_series, (long long)r->n_instances);
        break;
    case RDX_IMG_LEVEL_STUDY:
        n = snprintf(a->text + a->len, sizeof a->text - a->len, "%s|%s|%s|%s|%lld|%d\n",
                     r->patient_id, r->study_date, r->modalities, r->study_uid,
                     (long long)r->n_instances, r->has_report);
        break;
    case RDX_IMG_LEVEL_SERIES:
        n = snprintf(a->text + a->len, sizeof a->text - a->len, "%s|%s|%lld|%lld\n", r->patient_id,
                     r->modality, (long long)r->series_number, (long long)r->n_instances);
        break;
    default:
        n = snprintf(a->text + a->len, sizeof a->text - a->len, "%s|%lldx%lld|%s\n", r->modality,
                     (long long)r->rows, (long long)r->columns, r->path);
        break;
    }
    if (n > 0 && (size_t)n < sizeof a->text - a->len) {
        a->len += (size_t)n;
    }
    a->n++;
    return 0;
}

static size_t query(struct fixture *f, const rdx_img_query *q, struct answers *a)
{
    memset(a, 0, sizeof *a);
    rdx_error err;
    size_t count = 0;
    if (rdx_img_index_query(f->ix, q, on_row, a, &count, &err) != RDX_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(count, a->n);
    return a->n;
}

static void test_index_fixture_tree(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, FIXTURES, &s, &log);
    /* 28 files: 17 instances (3 SR, 1 PDF), 9 skipped (text and PNG goldens), 2 malformed. */
    assert_int_equal(s.files_seen, 28);
    assert_int_equal(s.indexed, 17);
    assert_int_equal(s.reports, 4);
    assert_int_equal(s.skipped, 9);
    assert_int_equal(s.failed, 2);
    assert_non_null(strstr(log.text, "MR_truncated.dcm|1|"));
    assert_non_null(strstr(log.text, "Pixel Data (7FE0,0010)"));
    assert_non_null(strstr(log.text, "meta_missing_tsyntax.dcm|1|"));
    assert_non_null(strstr(log.text, "not_dicom.txt|0|"));
    assert_non_null(strstr(log.text, "chrFrenMulti.dcm|0|"));
    assert_non_null(strstr(log.text, "duplicate SOP Instance UID"));
    assert_non_null(strstr(log.text, "no Study Instance UID (0020,000D)"));

    /* Re-indexing reads nothing again and changes nothing. */
    struct answers before, after;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_INSTANCE};
    assert_int_equal(query(f, &q, &before), 17);
    struct problem_log log2 = {0};
    add(f, FIXTURES, &s, &log2);
    assert_int_equal(s.unchanged, 17);
    assert_int_equal(s.indexed, 0);
    assert_int_equal(query(f, &q, &after), 17);
    assert_string_equal(before.text, after.text);
}

static void test_index_query_names_in_every_group(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, FIXTURES, &s, &log);
    struct answers a;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_STUDY};

    /* Pinyin, any case; the two Chinese files (UTF-8 and GB18030). */
    q.patient_name = "wang*";
    assert_int_equal(query(f, &q, &a), 2);
    assert_non_null(strstr(a.text, "X1EXAMPLE|"));
    assert_non_null(strstr(a.text, "X2EXAMPLE|"));
    q.patient_name = "WANG^XIAODONG";
    assert_int_equal(query(f, &q, &a), 2);
    /* Ideographic group: traditional 東 in X1, simplified 东 in X2. */
    q.patient_name = "王*";
    assert_int_equal(query(f, &q, &a), 2);
    q.patient_name = "王^小东";
    assert_int_equal(query(f, &q, &a), 1);
    assert_non_null(strstr(a.text, "X2EXAMPLE|"));
    q.patient_name = "*小東";
    assert_int_equal(query(f, &q, &a), 1);
    assert_non_null(strstr(a.text, "X1EXAMPLE|"));
    /* Phonetic group (hangul, hiragana). */
    q.patient_name = "홍^길동";
    assert_int_equal(query(f, &q, &a), 1);
    assert_non_null(strstr(a.text, "I2EXAMPLE|"));
    q.patient_name = "やまだ*";
    assert_int_equal(query(f, &q, &a), 2);
    /* '?' is one character, not one byte. */
    q.patient_name = "?^??";
    assert_int_equal(query(f, &q, &a), 3);
    assert_non_null(strstr(a.text, "X1EXAMPLE|"));
    assert_non_null(strstr(a.text, "X2EXAMPLE|"));
    assert_non_null(strstr(a.text, "I2EXAMPLE|"));
    q.patient_name = "Buc^J?r?me";
    assert_int_equal(query(f, &q, &a), 1);
    /* A pattern with '=' matches across the groups of the whole name. */
    q.patient_name = "Wang^XiaoDong=王^小东=";
    assert_int_equal(query(f, &q, &a), 1);
    assert_non_null(strstr(a.text, "X2EXAMPLE|"));
    q.patient_name = "*=王^小*";
    assert_int_equal(query(f, &q, &a), 2);
    /* GLOB metacharacters in a name are literal. */
    q.patient_name = "[A-Z]*";
    assert_int_equal(query(f, &q, &a), 0);
    q.patient_name = "nobody";
    assert_int_equal(query(f, &q, &a), 0);
}

static void test_index_query_filters(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, FIXTURES, &s, &log);
    struct answers a;

    rdx_img_query q = {.level = RDX_IMG_LEVEL_PATIENT, .patient_name = "Doe*"};
    assert_int_equal(query(f, &q, &a), 2);
    assert_string_equal(a.text, "77654033|Doe^Archibald|2|4|4\n98890234|Doe^Peter|1|2|2\n");

    rdx_img_query q2 = {.level = RDX_IMG_LEVEL_STUDY, .patient_id = "77654033"};
    assert_int_equal(query(f, &q2, &a), 2);
    /* The CR study holds the report; the CT study is the request it answers. */
    assert_string_equal(a.text, "77654033|19950903|CT|1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319."
                                "0.1|1|1\n77654033|20010101|CR\\SR|1.3.6.1.4.1.5962.1.1.0.0.0."
                                "1196527414.5534.0.1|3|1\n");
    q2.patient_id = "7765*";
    assert_int_equal(query(f, &q2, &a), 2);
    q2.patient_id = "7765";
    assert_int_equal(query(f, &q2, &a), 0);

    rdx_img_query q3 = {.level = RDX_IMG_LEVEL_STUDY, .study_date = "20010101-20010101"};
    assert_int_equal(query(f, &q3, &a), 1);
    assert_non_null(strstr(a.text, "|CR\\SR|"));
    q3.study_date = "-19960101";
    assert_int_equal(query(f, &q3, &a), 1);
    assert_non_null(strstr(a.text, "|19950903|CT|"));
    q3.study_date = "20030101-";
    assert_int_equal(query(f, &q3, &a), 2); /* the MR (20030505) and the Japanese CR (20080504) */
    q3.study_date = "20010101";
    assert_int_equal(query(f, &q3, &a), 1);

    rdx_img_query q4 = {.level = RDX_IMG_LEVEL_STUDY, .modality = "CR"};
    assert_int_equal(query(f, &q4, &a), 2);
    rdx_img_query q5 = {
        .level = RDX_IMG_LEVEL_INSTANCE, .modality = "CR", .patient_id = "77654033"};
    assert_int_equal(query(f, &q5, &a), 2);
    assert_non_null(strstr(a.text, "CR|16x16|/"));
    assert_non_null(strstr(a.text, "/tests/fixtures/imaging/study/77654033_CR1_6154\n"));
    rdx_img_query q6 = {.level = RDX_IMG_LEVEL_SERIES, .patient_id = "77654033"};
    assert_int_equal(query(f, &q6, &a), 4);
    rdx_img_query q7 = {.level = RDX_IMG_LEVEL_STUDY,
                        .study_uid = "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1"};
    assert_int_equal(query(f, &q7, &a), 1);
    rdx_img_query q8 = {.level = RDX_IMG_LEVEL_STUDY, .accession = "2", .modality = "CT"};
    assert_int_equal(query(f, &q8, &a), 1);
    assert_non_null(strstr(a.text, "77654033|19950903|CT|"));
    rdx_img_query q9 = {.level = RDX_IMG_LEVEL_STUDY, .limit = 3};
    assert_int_equal(query(f, &q9, &a), 3);

    /* Bad requests are refused, not guessed at. */
    rdx_error err;
    rdx_img_query bad = {.level = RDX_IMG_LEVEL_STUDY, .study_date = "2001"};
    assert_int_equal(rdx_img_index_query(f->ix, &bad, on_row, &a, NULL, &err), RDX_EINVAL);
    assert_non_null(strstr(err.msg, "'2001'"));
    bad.study_date = "20010101-2002";
    assert_int_equal(rdx_img_index_query(f->ix, &bad, on_row, &a, NULL, &err), RDX_EINVAL);
    bad.study_date = "-";
    assert_int_equal(rdx_img_index_query(f->ix, &bad, on_row, &a, NULL, &err), RDX_EINVAL);
    rdx_img_query badlv = {.level = (rdx_img_level)7};
    assert_int_equal(rdx_img_index_query(f->ix, &badlv, on_row, &a, NULL, &err), RDX_EINVAL);
}

static void test_index_reports_linked_to_study(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, FIXTURES, &s, &log);
    static const char sr_study[] = "1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2";
    struct answers a;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_STUDY, .study_uid = sr_study};
    assert_int_equal(query(f, &q, &a), 1);
    assert_non_null(strstr(a.text, "|SR|"));
    assert_non_null(strstr(a.text, "|1\n")); /* has_report */

    rdx_buf text;
    rdx_buf_init(&text, 1 << 20);
    rdx_error err;
    assert_int_equal(rdx_img_index_report_text(f->ix, sr_study, &text, &err), RDX_OK);
    rdx_buf golden;
    rdx_buf_init(&golden, 1 << 20);
    assert_int_equal(rdx_file_read(FIXTURES "/test-SR.report.txt", &golden, &err), RDX_OK);
    assert_int_equal(text.len, golden.len);
    assert_memory_equal(text.data, golden.data, golden.len);
    assert_non_null(strstr((const char *)text.data, "Diameter: 3 cm"));
    rdx_buf_free(&golden);

    rdx_buf_reset(&text);
    assert_int_equal(rdx_img_index_report_text(f->ix, "1.2.3.4", &text, &err), RDX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "1.2.3.4"));

    /* A report made for Doe^Archibald's CR study, answering the request of his CT study. */
    rdx_buf_reset(&text);
    assert_int_equal(rdx_img_index_report_text(
                         f->ix, "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1", &text, &err),
                     RDX_OK);
    assert_non_null(strstr((const char *)text.data, "Diameter: 3 cm"));
    rdx_buf_reset(&text);
    assert_int_equal(rdx_img_index_report_text(
                         f->ix, "1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.1", &text, &err),
                     RDX_OK);
    rdx_buf_free(&text);
    rdx_img_query q2 = {.level = RDX_IMG_LEVEL_STUDY, .modality = "CT"};
    assert_int_equal(query(f, &q2, &a), 1);
    assert_non_null(strstr(a.text, "|1\n"));
    /* Doe^Peter's MR study has an Encapsulated PDF report; the Chinese test image none. */
    rdx_img_query q3 = {.level = RDX_IMG_LEVEL_STUDY, .patient_id = "98890234"};
    assert_int_equal(query(f, &q3, &a), 1);
    assert_non_null(strstr(a.text, "|DOC\\MR|"));
    assert_non_null(strstr(a.text, "|1\n"));
    rdx_buf_init(&text, 1 << 20);
    assert_int_equal(rdx_img_index_report_text(
                         f->ix, "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.133", &text, &err),
                     RDX_OK);
    assert_non_null(strstr((const char *)text.data,
                           "Encapsulated PDF document: MR report, Doe^Peter (194 bytes) in /"));
    rdx_buf_free(&text);
    rdx_img_query q4 = {.level = RDX_IMG_LEVEL_STUDY, .patient_id = "X1EXAMPLE"};
    assert_int_equal(query(f, &q4, &a), 1);
    assert_non_null(strstr(a.text, "|0\n"));
}

static void copy_file(const char *from, const char *to)
{
    rdx_buf b;
    rdx_buf_init(&b, 1 << 24);
    rdx_error err;
    assert_int_equal(rdx_file_read(from, &b, &err), RDX_OK);
    assert_int_equal(rdx_file_write_atomic(to, b.data, b.len, &err), RDX_OK);
    rdx_buf_free(&b);
}

static void test_index_changed_and_duplicate_files(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    char work[1024], a[1100], b[1100];
    snprintf(work, sizeof work, "%s/files", f->dir);
    assert_int_equal(mkdir(work, 0700), 0);
    snprintf(a, sizeof a, "%s/a.dcm", work);
    snprintf(b, sizeof b, "%s/b.dcm", work);
    copy_file(FIXTURES "/charset/chrX1.dcm", a);
    copy_file(FIXTURES "/charset/chrX1.dcm", b);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, work, &s, &log);
    /* The policy: the first file keeps the UID while it exists. */
    assert_int_equal(s.indexed, 1);
    assert_int_equal(s.skipped, 1);
    assert_non_null(strstr(log.text, "b.dcm|0|"));
    assert_non_null(strstr(log.text, "b.dcm: duplicate SOP Instance UID"));
    assert_non_null(strstr(log.text, "already indexed from"));

    /* The first file changes: it is re-read and its rows replaced, not doubled. */
    copy_file(FIXTURES "/charset/chrX2.dcm", a);
    add(f, work, &s, &log);
    struct answers ans;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_INSTANCE};
    assert_int_equal(query(f, &q, &ans), 2);
    assert_non_null(strstr(ans.text, "/a.dcm\n"));
    assert_non_null(strstr(ans.text, "/b.dcm\n"));

    /* Both X1 and X2 are indexed now; removing nothing leaves all unchanged. */
    add(f, work, &s, &log);
    assert_int_equal(s.unchanged, 2);
    assert_int_equal(s.indexed, 0);

    /* A missing path is an error of the call, not a skipped file. */
    rdx_error err;
    rdx_img_index_stats s2 = {0};
    assert_int_equal(rdx_img_index_add_path(f->ix, "/nonexistent/rdx", NULL, &s2, &err),
                     RDX_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/rdx"));
}

/*
 * Copy a fixture (explicit VR little endian) to `to` with short-length
 * elements rewritten in place: each of the n (group, element, value) triples
 * replaces that element's value, padded to its stored length with pad.
 */
struct edit {
    uint16_t group, elem;
    const char *value;
    char pad;
};

static void copy_edited(const char *from, const char *to, const struct edit *e, size_t n)
{
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_error err;
    assert_int_equal(rdx_file_read(from, &b, &err), RDX_OK);
    for (size_t k = 0; k < n; k++) {
        uint8_t tag[4] = {(uint8_t)(e[k].group & 0xff), (uint8_t)(e[k].group >> 8),
                          (uint8_t)(e[k].elem & 0xff), (uint8_t)(e[k].elem >> 8)};
        size_t at = 0;
        for (at = 132; at + 8 <= b.len; at++) {
            if (memcmp(b.data + at, tag, 4) == 0) {
                break;
            }
        }
        assert_true(at + 8 <= b.len);
        size_t len = (size_t)b.data[at + 6] | (size_t)b.data[at + 7] << 8;
        size_t vl = strlen(e[k].value);
        assert_true(vl <= len && at + 8 + len <= b.len);
        memset(b.data + at + 8, e[k].pad, len);
        memcpy(b.data + at + 8, e[k].value, vl);
    }
    assert_int_equal(rdx_file_write_atomic(to, b.data, b.len, &err), RDX_OK);
    rdx_buf_free(&b);
}

#define CR1_STUDY    "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1"
#define MOVED_STUDY  "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.9"
#define MOVED_SERIES "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.19"

/* A file rewritten with another modality, then moved to another study: nothing stale is left. */
static void test_index_changed_modality_and_study(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    char work[1024], x[1100], y[1100];
    snprintf(work, sizeof work, "%s/files", f->dir);
    assert_int_equal(mkdir(work, 0700), 0);
    snprintf(x, sizeof x, "%s/x.dcm", work);
    snprintf(y, sizeof y, "%s/y.dcm", work);
    copy_file(FIXTURES "/study/77654033_CR1_6154", x);
    copy_file(FIXTURES "/study/77654033_CT2_17106", y);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, work, &s, &log);
    assert_int_equal(s.indexed, 2);
    struct answers ans;
    rdx_img_query cr = {.level = RDX_IMG_LEVEL_STUDY, .modality = "CR"};
    rdx_img_query mr = {.level = RDX_IMG_LEVEL_STUDY, .modality = "MR"};
    rdx_img_query dx = {.level = RDX_IMG_LEVEL_STUDY, .modality = "DX"};
    rdx_img_query all = {.level = RDX_IMG_LEVEL_STUDY};
    rdx_img_query pat = {.level = RDX_IMG_LEVEL_PATIENT};
    assert_int_equal(query(f, &cr, &ans), 1);
    size_t before = query(f, &all, &ans);
    char before_text[16384];
    snprintf(before_text, sizeof before_text, "%s", ans.text);

    /* Same SOP, series and study, Modality CR -> MR. */
    static const struct edit as_mr[] = {{0x0008, 0x0060, "MR", ' '}};
    copy_edited(FIXTURES "/study/77654033_CR1_6154", x, as_mr, 1);
    add(f, work, &s, &log);
    assert_int_equal(s.indexed, 1);
    assert_int_equal(s.unchanged, 1);
    assert_int_equal(query(f, &cr, &ans), 0);
    assert_int_equal(query(f, &mr, &ans), 1);
    assert_non_null(strstr(ans.text, "|MR|" CR1_STUDY "|1|0\n"));
    rdx_img_query se = {.level = RDX_IMG_LEVEL_SERIES, .study_uid = CR1_STUDY};
    assert_int_equal(query(f, &se, &ans), 1);
    assert_non_null(strstr(ans.text, "|MR|"));

    /* Same SOP, now in a new series of a new study: the old study is gone, counts follow. */
    static const struct edit moved[] = {{0x0008, 0x0060, "DX", ' '},
                                        {0x0020, 0x000d, MOVED_STUDY, '\0'},
                                        {0x0020, 0x000e, MOVED_SERIES, '\0'}};
    copy_edited(FIXTURES "/study/77654033_CR1_6154", x, moved, 3);
    add(f, work, &s, &log);
    assert_int_equal(s.indexed, 1);
    assert_int_equal(query(f, &mr, &ans), 0);
    assert_int_equal(query(f, &dx, &ans), 1);
    assert_non_null(strstr(ans.text, "|DX|" MOVED_STUDY "|1|0\n"));
    assert_int_equal(query(f, &se, &ans), 0);
    assert_int_equal(query(f, &all, &ans), before);
    assert_int_equal(query(f, &pat, &ans), 1);
    assert_non_null(strstr(ans.text, "|2|2|2\n"));

    /* Back to the original file: the answers are those of the first run. */
    copy_file(FIXTURES "/study/77654033_CR1_6154", x);
    add(f, work, &s, &log);
    assert_int_equal(query(f, &dx, &ans), 0);
    query(f, &all, &ans);
    assert_string_equal(ans.text, before_text);
}

/* An index written by schema version 1 (no counts, no triggers) is upgraded on open. */
static void test_index_schema_upgrade_from_v1(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, FIXTURES "/study", &s, &log);
    struct answers ans;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_STUDY};
    query(f, &q, &ans);
    char want[16384];
    snprintf(want, sizeof want, "%s", ans.text);
    rdx_img_query pq = {.level = RDX_IMG_LEVEL_PATIENT};
    query(f, &pq, &ans);
    char want_p[16384];
    snprintf(want_p, sizeof want_p, "%s", ans.text);
    rdx_img_index_close(f->ix);
    f->ix = NULL;

    /* Turn it back into what version 1 wrote. */
    static const char to_v1[] = "ALTER TABLE studies DROP COLUMN num_series;"
                                "ALTER TABLE studies DROP COLUMN num_instances;"
                                "ALTER TABLE series DROP COLUMN num_instances;"
                                "DELETE FROM study_modalities;"
                                "UPDATE meta SET value = '1' WHERE key = 'schema_version';";
    int is_pg = strncmp(f->uri, "postgresql:", 11) == 0;
    sqlite3 *db = NULL;
    if (is_pg) {
        PGconn *c = PQconnectdb(f->uri);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r =
            PQexec(c, "DROP TRIGGER instances_ins ON instances;"
                      "DROP TRIGGER instances_del ON instances;"
                      "DROP TRIGGER series_ins ON series; DROP TRIGGER series_del ON series;"
                      "DROP TRIGGER series_move ON series;"
                      "DROP TRIGGER studies_date ON studies;"
                      "DROP TRIGGER studies_patient ON studies;"
                      "DROP TRIGGER studies_del ON studies;");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        r = PQexec(c, to_v1);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fail_msg("%s", PQerrorMessage(c));
        }
        PQclear(r);
        PQfinish(c);
    } else {
        assert_int_equal(sqlite3_open(f->uri + 7, &db), SQLITE_OK);
        char *msg = NULL;
        int rc = sqlite3_exec(db,
                              "DROP TRIGGER instances_ins; DROP TRIGGER instances_del;"
                              "DROP TRIGGER series_ins; DROP TRIGGER series_del;"
                              "DROP TRIGGER series_move; DROP TRIGGER studies_date;"
                              "DROP TRIGGER studies_patient; DROP TRIGGER studies_del;",
                              NULL, NULL, &msg);
        if (rc == SQLITE_OK) {
            rc = sqlite3_exec(db, to_v1, NULL, NULL, &msg);
        }
        if (rc != SQLITE_OK) {
            fail_msg("%s", msg != NULL ? msg : "?");
        }
        sqlite3_close(db);
    }

    fixture_open(f);
    query(f, &q, &ans);
    assert_string_equal(ans.text, want);
    query(f, &pq, &ans);
    assert_string_equal(ans.text, want_p);
    rdx_img_query cr = {.level = RDX_IMG_LEVEL_STUDY, .modality = "CR"};
    assert_true(query(f, &cr, &ans) > 0);
    rdx_img_index_close(f->ix);
    f->ix = NULL;

    /* A version this rdx does not know is refused, not guessed at. */
    static const char to_v99[] = "UPDATE meta SET value = '99' WHERE key = 'schema_version'";
    if (is_pg) {
        PGconn *c = PQconnectdb(f->uri);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, to_v99);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
    } else {
        assert_int_equal(sqlite3_open(f->uri + 7, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, to_v99, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    rdx_error err;
    assert_int_equal(rdx_img_index_open(f->uri, &f->ix, &err), RDX_EDB);
    assert_non_null(strstr(err.msg, "schema version '99'"));
    assert_null(f->ix);
}

/* Killed mid-run (SIGKILL inside an open batch): the index stays consistent, the next run completes
 * it. */
struct kill_at {
    int calls, at;
};

static void kill_on_progress(void *user, const rdx_img_index_stats *stats)
{
    struct kill_at *k = user;
    (void)stats;
    if (++k->calls == k->at) {
        raise(SIGKILL);
    }
}

static void test_index_killed_run_completes(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    enum { NFILES = 1000 };
    char work[1024], path[1100], uid[64];
    snprintf(work, sizeof work, "%s/many", f->dir);
    assert_int_equal(mkdir(work, 0700), 0);
    /* 1000 instances of the CR fixture, each with its own SOP Instance UID (same length). */
    const char *sop = "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.11";
    size_t n = strlen(sop);
    for (int i = 0; i < NFILES; i++) {
        snprintf(uid, sizeof uid, "%.*s9%03d", (int)(n - 4), sop, i);
        struct edit e[1] = {{0x0008, 0x0018, uid, '\0'}};
        snprintf(path, sizeof path, "%s/i%04d.dcm", work, i);
        copy_edited(FIXTURES "/study/77654033_CR1_6154", path, e, 1);
    }
    rdx_img_index_close(f->ix);
    f->ix = NULL;
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* Progress comes every 256 files: the third call is inside the second batch. */
        struct kill_at k = {0, 3};
        rdx_img_index *ix = NULL;
        rdx_error err;
        rdx_img_index_opts o = {.progress = kill_on_progress, .user = &k};
        rdx_img_index_stats st = {0};
        if (rdx_img_index_open(f->uri, &ix, &err) == RDX_OK) {
            (void)rdx_img_index_add_path(ix, work, &o, &st, &err);
        }
        _exit(0); /* not reached when the kill came */
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* What was committed is whole: every count agrees with the rows. */
    fixture_open(f);
    struct answers ans;
    rdx_img_query inst = {.level = RDX_IMG_LEVEL_INSTANCE, .patient_id = "77654033"};
    size_t got = query(f, &inst, &ans);
    assert_true(got > 0 && got < NFILES);
    rdx_img_query st = {.level = RDX_IMG_LEVEL_STUDY, .patient_id = "77654033"};
    assert_int_equal(query(f, &st, &ans), 1);
    char want[128];
    snprintf(want, sizeof want, "|CR|" CR1_STUDY "|%zu|0\n", got);
    assert_non_null(strstr(ans.text, want));

    /* The next run indexes the rest and only the rest. */
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, work, &s, &log);
    assert_int_equal(s.indexed, NFILES - got);
    assert_int_equal(s.unchanged, got);
    assert_int_equal(query(f, &inst, &ans), NFILES);
    query(f, &st, &ans);
    snprintf(want, sizeof want, "|CR|" CR1_STUDY "|%d|0\n", NFILES);
    assert_non_null(strstr(ans.text, want));
}

static void test_index_prune_removes_deleted_files(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    char work[1024], a[1100], b[1100];
    snprintf(work, sizeof work, "%s/media", f->dir);
    assert_int_equal(mkdir(work, 0700), 0);
    snprintf(a, sizeof a, "%s/x1.dcm", work);
    snprintf(b, sizeof b, "%s/x2.dcm", work);
    copy_file(FIXTURES "/charset/chrX1.dcm", a);
    copy_file(FIXTURES "/charset/chrX2.dcm", b);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, work, &s, &log);
    assert_int_equal(s.indexed, 2);
    assert_int_equal(unlink(a), 0);
    rdx_error err;
    memset(&s, 0, sizeof s);
    assert_int_equal(rdx_img_index_prune(f->ix, work, &s, &err), RDX_OK);
    assert_int_equal(s.pruned, 1);
    /* The instance, its series, study and patient are gone; the other file stays. */
    struct answers ans;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_PATIENT};
    assert_int_equal(query(f, &q, &ans), 1);
    assert_non_null(strstr(ans.text, "X2EXAMPLE|"));
    rdx_img_query q2 = {.level = RDX_IMG_LEVEL_STUDY, .patient_id = "X1EXAMPLE"};
    assert_int_equal(query(f, &q2, &ans), 0);
    /* Pruning again finds nothing; pruning a missing path is an error. */
    memset(&s, 0, sizeof s);
    assert_int_equal(rdx_img_index_prune(f->ix, work, &s, &err), RDX_OK);
    assert_int_equal(s.pruned, 0);
    assert_int_equal(rdx_img_index_prune(f->ix, a, &s, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "x1.dcm"));

    /* The CLI flag. */
    copy_file(FIXTURES "/charset/chrX1.dcm", a);
    add(f, work, &s, &log);
    assert_int_equal(unlink(b), 0);
    struct rdx_run r;
    const char *argv[] = {"img", "index", "--db", f->uri, "--prune", work, NULL};
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "unchanged 1, skipped 0, failed 0, pruned 1"));
    rdx_run_free(&r);
}

/* A DICOMDIR given by itself is read for the files it lists (PS3.10 8.6). */
static void test_index_dicomdir(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        print_message("RDX_DATA (../shared/data) is absent: skipped\n");
        skip();
    }
    /* Rebuild part of the media the DICOMDIR describes from the copies in the data set. */
    static const char *const files[][2] = {
        {"ct/77654033_CT2_17106", "77654033/CT2/17106"},
        {"cr_dx/77654033_CR1_6154", "77654033/CR1/6154"},
        {"cr_dx/77654033_CR2_6247", "77654033/CR2/6247"},
        {"ct/98892001_CT2N_6293", "98892001/CT2N/6293"},
        {"mr/98892003_MR1_4919", "98892003/MR1/4919"},
        {"mr/98892003_MR700_4467", "98892003/MR700/4467"},
    };
    char media[1024], from[1200], to[1200];
    snprintf(media, sizeof media, "%s/cd", f->dir);
    assert_int_equal(mkdir(media, 0700), 0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/%s", media, files[i][1]);
        for (char *p = dir + strlen(media) + 1; *p != '\0'; p++) {
            if (*p == '/') {
                *p = '\0';
                (void)mkdir(dir, 0700);
                *p = '/';
            }
        }
        snprintf(from, sizeof from, "%s/dicom/%s", data, files[i][0]);
        copy_file(from, dir);
    }
    snprintf(from, sizeof from, "%s/dicom/dicomdir/DICOMDIR", data);
    snprintf(to, sizeof to, "%s/DICOMDIR", media);
    copy_file(from, to);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, to, &s, &log);
    assert_int_equal(s.indexed, 6);
    assert_int_equal(s.files_seen, 7);
    assert_non_null(strstr(log.text, "DICOMDIR lists 31 files, 25 of them are missing"));
    struct answers ans;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_PATIENT};
    assert_int_equal(query(f, &q, &ans), 2);
    assert_non_null(strstr(ans.text, "77654033|Doe^Archibald|2|3|3\n"));
}

static void write_file(const char *path, const char *data, size_t n)
{
    rdx_error err;
    assert_int_equal(rdx_file_write_atomic(path, data, n, &err), RDX_OK);
}

static void test_index_report_add(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, FIXTURES "/charset", &s, &log);
    static const char x2[] = "1.3.6.1.4.1.5962.1.2.0.1175775771.5714.0";
    char html[1024], gb[1024], bin[1024];
    snprintf(html, sizeof html, "%s/report.html", f->dir);
    snprintf(gb, sizeof gb, "%s/report-gb.txt", f->dir);
    snprintf(bin, sizeof bin, "%s/report.bin", f->dir);
    static const char page[] =
        "<html><head><title>CT report</title><style>p{color:red}</style></head><body>"
        "<h1>Findings</h1><p>No mass &amp; no effusion &#x2014; 结论：正常</p></body></html>";
    write_file(html, page, sizeof page - 1);
    /* "印象：正常" (Impression: normal) in GB18030. */
    static const char gbtext[] = "\xd3\xa1\xcf\xf3\xa3\xba\xd5\xfd\xb3\xa3\n";
    write_file(gb, gbtext, sizeof gbtext - 1);
    write_file(bin, "\x00\x01\x02", 3);

    rdx_error err;
    assert_int_equal(rdx_img_index_report_add(f->ix, x2, html, &err), RDX_OK);
    assert_int_equal(rdx_img_index_report_add(f->ix, x2, gb, &err), RDX_OK);
    /* Adding the same file again replaces it rather than doubling it. */
    assert_int_equal(rdx_img_index_report_add(f->ix, x2, html, &err), RDX_OK);
    rdx_buf text;
    rdx_buf_init(&text, 1 << 20);
    assert_int_equal(rdx_img_index_report_text(f->ix, x2, &text, &err), RDX_OK);
    const char *t = (const char *)text.data;
    assert_non_null(
        strstr(t, "CT report\nFindings\nNo mass & no effusion \xe2\x80\x94 结论：正常\n"));
    assert_non_null(strstr(t, "印象：正常\n"));
    assert_null(strstr(t, "color:red"));
    const char *first = strstr(t, "Findings"),
               *second = first ? strstr(first + 1, "Findings") : NULL;
    assert_null(second);
    rdx_buf_free(&text);

    struct answers a;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_STUDY, .study_uid = x2};
    assert_int_equal(query(f, &q, &a), 1);
    assert_non_null(strstr(a.text, "|1\n"));

    assert_int_equal(rdx_img_index_report_add(f->ix, "not-a-uid", html, &err), RDX_EINVAL);
    assert_int_equal(rdx_img_index_report_add(f->ix, x2, bin, &err), RDX_EFORMAT);
    assert_non_null(strstr(err.msg, "report.bin"));
    assert_int_equal(rdx_img_index_report_add(f->ix, x2, "/nonexistent/r.txt", &err), RDX_ENOENT);

    struct rdx_run r;
    const char *ok[] = {"img", "report", "add", "--db", f->uri, "--study", x2, gb, NULL};
    assert_int_equal(rdx_run_rdx(&r, ok), 0);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    const char *nostudy[] = {"img", "report", "add", "--db", f->uri, gb, NULL};
    assert_int_equal(rdx_run_rdx(&r, nostudy), 0);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    const char *badbin[] = {"img", "report", "add", "--db", f->uri, "--study", x2, bin, NULL};
    assert_int_equal(rdx_run_rdx(&r, badbin), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "report.bin: not a text or HTML report"));
    rdx_run_free(&r);
}

/* The human table pads by display width: wide names keep the columns after them aligned. */
static void test_index_cli_table_aligns_wide_names(void **state)
{
    struct fixture *f = *state;
    rdx_img_index_close(f->ix); /* the CLI opens it itself */
    f->ix = NULL;
    struct rdx_run r;
    const char *idx[] = {"img", "index", "--db", f->uri, FIXTURES "/charset", NULL};
    assert_int_equal(rdx_run_rdx(&r, idx), 0);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    const char *qs[] = {"img", "query", "--db", f->uri, "--level", "study", NULL};
    assert_int_equal(rdx_run_rdx(&r, qs), 0);
    assert_int_equal(r.exit_code, 0);
    /* DATE PATIENT-ID NAME MODALITY ACCESSION SERIES INSTANCES: 101 cells before REPORT. */
    static const char *const names[] = {"Wang^XiaoDong=王^小東=", "Hong^Gildong=洪^吉洞=홍^길동",
                                        "Buc^Jérôme", "Люкceмбypг"};
    size_t seen = 0;
    for (char *line = r.out; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            if (strstr(line, names[k]) != NULL) {
                char *rep = strstr(line, " no     ");
                assert_non_null(rep);
                *rep = '\0';
                assert_int_equal(rdx_img_text_width(line), 101);
                seen++;
                break;
            }
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    assert_int_equal(seen, 4);
    rdx_run_free(&r);
}

/* -j N: the same rows, counts and reports in the same order as one thread. */
static void test_index_parallel_same_answers(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        print_message("RDX_DATA (../shared/data) is absent: skipped\n");
        skip();
    }
    char dir[1024], uri[1200];
    snprintf(dir, sizeof dir, "%s/dicom", data);
    snprintf(uri, sizeof uri, "sqlite:%s/serial.db", f->dir);
    rdx_img_index *serial = NULL;
    rdx_error err;
    assert_int_equal(rdx_img_index_open(uri, &serial, &err), RDX_OK);
    struct problem_log log1 = {0}, log4 = {0};
    rdx_img_index_stats s1 = {0}, s4 = {0};
    rdx_img_index_opts o1 = {.report = on_problem, .user = &log1};
    rdx_img_index_opts o4 = {.report = on_problem, .user = &log4, .jobs = 4};
    assert_int_equal(rdx_img_index_add_path(serial, dir, &o1, &s1, &err), RDX_OK);
    assert_int_equal(rdx_img_index_add_path(f->ix, dir, &o4, &s4, &err), RDX_OK);
    assert_memory_equal(&s1, &s4, sizeof s1);
    assert_string_equal(log1.text, log4.text);
    struct answers a1, a4;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_INSTANCE};
    memset(&a1, 0, sizeof a1);
    assert_int_equal(rdx_img_index_query(serial, &q, on_row, &a1, NULL, &err), RDX_OK);
    assert_int_equal(query(f, &q, &a4), 56);
    assert_string_equal(a1.text, a4.text);
    rdx_img_index_close(serial);
    /* Re-indexing in parallel finds everything unchanged. */
    memset(&s4, 0, sizeof s4);
    assert_int_equal(rdx_img_index_add_path(f->ix, dir, &o4, &s4, &err), RDX_OK);
    assert_int_equal(s4.unchanged, 56);
    assert_int_equal(s4.indexed, 0);
}

/* ---- Several indexers on one PostgreSQL index ------------------------------------- */

#define CC_DIRS      4
#define CC_PER_DIR   120
#define CC_STUDIES   24
#define CC_PATIENTS  8
#define CC_THREADS   4
#define CC_DIRS_EACH 3

/*
 * Where a value of the template sits, as a whole explicit-VR value (like the
 * bench): the SOP Instance UID is there twice, in the meta information too.
 */
static size_t value_offsets(const rdx_buf *b, const char *v, size_t at[2])
{
    size_t n = strlen(v), padded = (n + 1) & ~(size_t)1, k = 0;
    for (size_t i = 2; i + n <= b->len && k < 2; i++) {
        if (memcmp(b->data + i, v, n) == 0 &&
            (size_t)(b->data[i - 2] | b->data[i - 1] << 8) == padded) {
            at[k++] = i;
        }
    }
    if (k == 0) {
        fail_msg("template value %s not found", v);
    }
    return k;
}

/* Digits of k, zero-padded to exactly the length of the value being replaced. */
static void put_number(uint8_t *at, size_t len, unsigned long k)
{
    for (size_t i = len; i > 0; i--) {
        at[i - 1] = (uint8_t)('0' + k % 10);
        k /= 10;
    }
}

/*
 * 480 instances from one CT header in four folders of 120: file g belongs
 * to study (7g + 5d) mod 24 (so each folder meets the studies in its own
 * order, and every study has files in every folder), to one of three series
 * per study, to patient study mod 8. series_of[k] counts each series.
 */
static void make_corpus(const char *root, unsigned series_of[CC_STUDIES * 3])
{
    char tpl[512];
    rdx_test_fixture(tpl, sizeof tpl, "imaging/study/77654033_CT2_17106");
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_error err;
    assert_int_equal(rdx_file_read(tpl, &b, &err), RDX_OK);
    rdx_img_dataset *ds = NULL;
    assert_int_equal(rdx_img_dataset_open_file(tpl, &ds, &err), RDX_OK);
    static const uint32_t tags[4] = {RDX_IMG_TAG(0x0020, 0x000D), RDX_IMG_TAG(0x0020, 0x000E),
                                     RDX_IMG_TAG(0x0008, 0x0018), RDX_IMG_TAG(0x0010, 0x0020)};
    size_t off[4][2], noff[4], len[4];
    rdx_buf v;
    rdx_buf_init(&v, 256);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(rdx_img_item_get_text(ds, NULL, tags[k], &v, &err), RDX_OK);
        assert_non_null(rdx_buf_append_u8(&v, 0) == RDX_OK ? v.data : NULL);
        noff[k] = value_offsets(&b, (const char *)v.data, off[k]);
        len[k] = strlen((const char *)v.data);
        /* The numbers are written over the value's tail: keep a UID's root. */
        assert_true(len[k] >= 6);
        rdx_buf_reset(&v);
    }
    rdx_buf_free(&v);
    rdx_img_dataset_free(ds);
    memset(series_of, 0, sizeof(unsigned) * CC_STUDIES * 3);
    for (unsigned d = 0; d < CC_DIRS; d++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/d%u", root, d);
        assert_int_equal(mkdir(dir, 0755), 0);
        for (unsigned i = 0; i < CC_PER_DIR; i++) {
            unsigned long g = d * CC_PER_DIR + i;
            unsigned study = (unsigned)((7 * g + 5 * d) % CC_STUDIES);
            unsigned series = study * 3 + (unsigned)(g / CC_STUDIES) % 3;
            series_of[series]++;
            /* Six-digit tails, 1 + kind first so that no two kinds of UID collide. */
            unsigned long val[4] = {100000 + study, 200000 + series, 300000 + g,
                                    400000 + study % CC_PATIENTS};
            for (int k = 0; k < 4; k++) {
                for (size_t j = 0; j < noff[k]; j++) {
                    put_number(b.data + off[k][j] + len[k] - 6, 6, val[k]);
                }
            }
            char path[1300];
            snprintf(path, sizeof path, "%s/f%03u.dcm", dir, i);
            assert_int_equal(rdx_file_write_atomic(path, b.data, b.len, &err), RDX_OK);
        }
    }
    rdx_buf_free(&b);
}

struct indexer {
    const char *uri;
    char dirs[CC_DIRS_EACH][1200];
    unsigned jobs;
    pthread_barrier_t *start;
    rdx_status st;
    rdx_error err;
    rdx_img_index_stats total;
    struct problem_log log;
};

static void *indexer_run(void *arg)
{
    struct indexer *x = arg;
    rdx_img_index *ix = NULL;
    x->st = rdx_img_index_open(x->uri, &ix, &x->err);
    pthread_barrier_wait(x->start);
    for (int k = 0; k < CC_DIRS_EACH && x->st == RDX_OK; k++) {
        rdx_img_index_stats s;
        memset(&s, 0, sizeof s);
        rdx_img_index_opts o = {.report = on_problem, .user = &x->log, .jobs = x->jobs};
        x->st = rdx_img_index_add_path(ix, x->dirs[k], &o, &s, &x->err);
        x->total.files_seen += s.files_seen;
        x->total.indexed += s.indexed;
        x->total.unchanged += s.unchanged;
        x->total.skipped += s.skipped;
        x->total.failed += s.failed;
    }
    rdx_img_index_close(ix);
    return NULL;
}

/* One number from SQL. */
static long long sql_count(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/*
 * Four indexers, each with its own connection, index overlapping folders
 * (each folder by three of them, in different orders, two of them with -j 2)
 * into one PostgreSQL database at the same time. Their batch transactions
 * lock the same patient, study and series rows in different orders, so
 * PostgreSQL sees deadlocks and writes racing on the same UIDs; none of it
 * may reach the caller, and the index must come out exactly as one indexer
 * would leave it: 8 patients, 24 studies, 72 series, 480 instances, no
 * duplicate row, every kept count equal to the rows it counts.
 */
static void test_index_concurrent_indexers_pg(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    unsigned series_of[CC_STUDIES * 3];
    make_corpus(f->dir, series_of);
    static const unsigned order[CC_THREADS][CC_DIRS_EACH] = {
        {0, 1, 2}, {3, 2, 1}, {1, 3, 0}, {2, 0, 3}};
    struct indexer x[CC_THREADS];
    pthread_t th[CC_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, CC_THREADS);
    for (int t = 0; t < CC_THREADS; t++) {
        memset(&x[t], 0, sizeof x[t]);
        x[t].uri = f->uri;
        x[t].jobs = t % 2 == 0 ? 1 : 2;
        x[t].start = &start;
        for (int k = 0; k < CC_DIRS_EACH; k++) {
            snprintf(x[t].dirs[k], sizeof x[t].dirs[k], "%s/d%u", f->dir, order[t][k]);
        }
        assert_int_equal(pthread_create(&th[t], NULL, indexer_run, &x[t]), 0);
    }
    for (int t = 0; t < CC_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    pthread_barrier_destroy(&start);
    for (int t = 0; t < CC_THREADS; t++) {
        if (x[t].st != RDX_OK) {
            fail_msg("indexer %d: %s", t, x[t].err.msg);
        }
        /* Every file seen was written or found written; nothing refused, nothing reported. */
        assert_int_equal(x[t].total.files_seen, CC_DIRS_EACH * CC_PER_DIR);
        assert_int_equal(x[t].total.indexed + x[t].total.unchanged, CC_DIRS_EACH * CC_PER_DIR);
        assert_int_equal(x[t].total.failed, 0);
        assert_int_equal(x[t].total.skipped, 0);
        assert_string_equal(x[t].log.text, "");
    }

    /* The query side: exact counts at every level. */
    struct answers a;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_PATIENT};
    assert_int_equal(query(f, &q, &a), CC_PATIENTS);
    q.level = RDX_IMG_LEVEL_STUDY;
    assert_int_equal(query(f, &q, &a), CC_STUDIES);
    q.level = RDX_IMG_LEVEL_SERIES;
    assert_int_equal(query(f, &q, &a), CC_STUDIES * 3);
    q.level = RDX_IMG_LEVEL_INSTANCE;
    assert_int_equal(query(f, &q, &a), CC_DIRS * CC_PER_DIR);

    /* The tables: no duplicates, and the counts the triggers keep match the rows. */
    PGconn *c = PQconnectdb(f->uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM instances"), CC_DIRS * CC_PER_DIR);
    assert_int_equal(sql_count(c, "SELECT count(DISTINCT sop_uid) FROM instances"),
                     CC_DIRS * CC_PER_DIR);
    assert_int_equal(sql_count(c, "SELECT count(DISTINCT path) FROM instances"),
                     CC_DIRS * CC_PER_DIR);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM series"), CC_STUDIES * 3);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM studies"), CC_STUDIES);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM patients"), CC_PATIENTS);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM study_modalities"), CC_STUDIES);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM series s WHERE num_instances <>"
                                  " (SELECT count(*) FROM instances i WHERE i.series_ref = s.id)"),
                     0);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM studies st WHERE num_series <>"
                                  " (SELECT count(*) FROM series s WHERE s.study_ref = st.id)"
                                  " OR num_instances <> (SELECT count(*) FROM instances i"
                                  " JOIN series s ON i.series_ref = s.id"
                                  " WHERE s.study_ref = st.id)"),
                     0);
    /* Each series holds the instances the corpus gave it (series UID tail 200000 + k). */
    PGresult *r = PQexec(c, "SELECT right(series_uid, 6), num_instances FROM series");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++) {
        long k = strtol(PQgetvalue(r, i, 0), NULL, 10) - 200000;
        assert_true(k >= 0 && k < CC_STUDIES * 3);
        assert_int_equal(strtol(PQgetvalue(r, i, 1), NULL, 10), series_of[k]);
    }
    PQclear(r);
    PQfinish(c);
}

static PGresult *sql_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    return r;
}

struct one_run {
    rdx_img_index *ix;
    const char *dir;
    rdx_status st;
    rdx_error err;
    rdx_img_index_stats s;
};

static void *one_run(void *arg)
{
    struct one_run *o = arg;
    o->st = rdx_img_index_add_path(o->ix, o->dir, NULL, &o->s, &o->err);
    return NULL;
}

/*
 * A deadlock made on purpose: another session holds study Y's row, the
 * indexer's batch has written study X and waits for Y, then the session asks
 * for X. PostgreSQL aborts the indexer's transaction (its wait began first,
 * so its deadlock check fires first); the indexer must write the whole batch
 * again and finish as if nothing had happened, with the retry counted.
 */
static void test_index_deadlock_is_retried_pg(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    unsigned series_of[CC_STUDIES * 3];
    make_corpus(f->dir, series_of);
    char d0[1200];
    snprintf(d0, sizeof d0, "%s/d0", f->dir);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, d0, &s, &log);
    assert_int_equal(s.indexed, CC_PER_DIR);
    PGconn *c = PQconnectdb(f->uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    /* f000 is study 0, f119 study (7 * 119) mod 24 = 17: X and Y. */
    char x_uid[128], y_uid[128], sql[512];
    for (int k = 0; k < 2; k++) {
        snprintf(sql, sizeof sql,
                 "SELECT st.study_uid FROM instances i JOIN series se ON i.series_ref = se.id"
                 " JOIN studies st ON se.study_ref = st.id WHERE i.path LIKE '%%/d0/%s'",
                 k == 0 ? "f000.dcm" : "f119.dcm");
        PGresult *r = sql_ok(c, sql);
        assert_int_equal(PQntuples(r), 1);
        snprintf(k == 0 ? x_uid : y_uid, 128, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    assert_string_not_equal(x_uid, y_uid);
    int retried = 0;
    for (int round = 0; round < 3 && !retried; round++) {
        /* Both files change (mtime): the next run rewrites f000 (X), then f119 (Y). */
        for (int k = 0; k < 2; k++) {
            char p[1300];
            snprintf(p, sizeof p, "%s/%s", d0, k == 0 ? "f000.dcm" : "f119.dcm");
            struct timespec ts[2] = {{.tv_sec = 1000000000 + round * 10 + k},
                                     {.tv_sec = 1000000000 + round * 10 + k}};
            assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
        }
        PQclear(sql_ok(c, "BEGIN"));
        snprintf(sql, sizeof sql, "SELECT 1 FROM studies WHERE study_uid = '%s' FOR UPDATE", y_uid);
        PQclear(sql_ok(c, sql));
        struct one_run o = {.dir = d0};
        rdx_error err;
        assert_int_equal(rdx_img_index_open(f->uri, &o.ix, &err), RDX_OK);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, one_run, &o), 0);
        /* Wait until the indexer waits for Y (it holds X by then). */
        for (int i = 0; i < 2000; i++) {
            PGresult *r = sql_ok(c, "SELECT count(*) FROM pg_locks WHERE NOT granted");
            int waiting = strtol(PQgetvalue(r, 0, 0), NULL, 10) > 0;
            PQclear(r);
            if (waiting) {
                break;
            }
            struct timespec nap = {0, 5000000};
            nanosleep(&nap, NULL);
        }
        snprintf(sql, sizeof sql,
                 "UPDATE studies SET description = description WHERE study_uid = '%s'", x_uid);
        PGresult *r = PQexec(c, sql);
        int we_were_victim = PQresultStatus(r) != PGRES_COMMAND_OK;
        PQclear(r);
        PQclear(sql_ok(c, we_were_victim ? "ROLLBACK" : "COMMIT"));
        pthread_join(th, NULL);
        rdx_img_index_close(o.ix);
        if (o.st != RDX_OK) {
            fail_msg("indexer: %s", o.err.msg);
        }
        assert_int_equal(o.s.indexed, 2);
        assert_int_equal(o.s.unchanged, CC_PER_DIR - 2);
        assert_int_equal(o.s.failed + o.s.skipped, 0);
        /* PostgreSQL may pick this session as the victim instead: then try again. */
        retried = o.s.retried > 0;
        assert_true(retried || we_were_victim);
    }
    assert_true(retried);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM instances"), CC_PER_DIR);
    assert_int_equal(sql_count(c, "SELECT count(*) FROM studies st WHERE num_instances <>"
                                  " (SELECT count(*) FROM instances i JOIN series s"
                                  " ON i.series_ref = s.id WHERE s.study_ref = st.id)"),
                     0);
    PQfinish(c);
}

static void test_index_open_refuses_bad_uris(void **state)
{
    (void)state;
    rdx_img_index *ix = (rdx_img_index *)1;
    rdx_error err;
    assert_int_equal(rdx_img_index_open("", &ix, &err), RDX_EINVAL);
    assert_null(ix);
    assert_int_equal(rdx_img_index_open("mysql://host/db", &ix, &err), RDX_EINVAL);
    /* No server there: refused with the URI, never with the password. */
    assert_int_equal(
        rdx_img_index_open("postgresql://rdx:s3cret@/rdx?host=/nonexistent/sock", &ix, &err),
        RDX_EDB);
    assert_null(ix);
    assert_non_null(strstr(err.msg, "cannot connect"));
    assert_null(strstr(err.msg, "s3cret"));
    assert_int_equal(rdx_img_index_open("sqlite:/nonexistent/dir/x.db", &ix, &err), RDX_EDB);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.db"));
    rdx_img_index_close(NULL);
    assert_int_equal(rdx_img_level_parse("series"), RDX_IMG_LEVEL_SERIES);
    assert_int_equal(rdx_img_level_parse("SERIES"), -1);
    assert_string_equal(rdx_img_level_name(RDX_IMG_LEVEL_INSTANCE), "instance");
}

/* The whole shared DICOM set: every readable file indexed, the malformed ones refused. */
static void test_index_shared_data(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        print_message("RDX_DATA (../shared/data) is absent: skipped\n");
        skip();
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/dicom", data);
    rdx_img_index_stats s;
    struct problem_log log = {0};
    add(f, dir, &s, &log);
    assert_int_equal(s.files_seen, 94);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.failed + s.skipped + s.indexed, 94);
    assert_int_equal(s.indexed, 56);
    assert_int_equal(s.reports, 2);
    assert_non_null(strstr(log.text, "malformed/MR_truncated.dcm|1|"));
    assert_non_null(strstr(log.text, "malformed/meta_missing_tsyntax.dcm|1|"));
    assert_non_null(strstr(log.text, "dicomdir/DICOMDIR: DICOMDIR media directory (52 records)"));
    assert_non_null(strstr(log.text, "no_meta/no_meta.dcm|0|"));

    struct answers a;
    rdx_img_query q = {.level = RDX_IMG_LEVEL_STUDY, .modality = "MR"};
    assert_int_equal(query(f, &q, &a), 6);
    /* Old ACR-NEMA dates (1993.04.30) are normalised and range-matched. */
    rdx_img_query q2 = {.level = RDX_IMG_LEVEL_STUDY, .study_date = "19930101-19931231"};
    assert_int_equal(query(f, &q2, &a), 1);
    assert_non_null(strstr(a.text, "|19930430|CT|"));
    rdx_img_query q3 = {.level = RDX_IMG_LEVEL_STUDY, .accession = "FUJI95706"};
    assert_int_equal(query(f, &q3, &a), 1);
    assert_non_null(strstr(a.text, "11RG3|20040826|CR|"));
    /* One study holds the NM samples in three transfer syntaxes (different SOP UIDs). */
    rdx_img_query q4 = {.level = RDX_IMG_LEVEL_SERIES, .patient_id = "8NM1"};
    assert_int_equal(query(f, &q4, &a), 1);
    assert_non_null(strstr(a.text, "8NM1|NM|"));
    rdx_img_query q5 = {.level = RDX_IMG_LEVEL_STUDY, .patient_name = "*XiaoDong*"};
    assert_int_equal(query(f, &q5, &a), 2);
    /* Multi-frame instances keep their frame count. */
    rdx_img_query q6 = {.level = RDX_IMG_LEVEL_INSTANCE, .modality = "XA"};
    assert_int_equal(query(f, &q6, &a), 1);

    /* Idempotent on the real set too. */
    add(f, dir, &s, &log);
    assert_int_equal(s.unchanged, 56);
    assert_int_equal(s.indexed, 0);
}

/* ---- The command line ----------------------------------------------------------- */

static void test_index_cli(void **state)
{
    struct fixture *f = *state;
    NEED_BACKEND(f);
    struct rdx_run r;
    const char *help[] = {"img", "index", "--help", NULL};
    assert_int_equal(rdx_run_rdx(&r, help), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx img index"));
    rdx_run_free(&r);

    const char *idx[] = {"img", "index", "--db", f->uri, "--json", FIXTURES, NULL};
    assert_int_equal(rdx_run_rdx(&r, idx), 0);
    /* Two malformed files: the run completes, and says so with exit 1. */
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "\"files_seen\":28,\"indexed\":17,\"reports\":4,"
                                  "\"unchanged\":0,\"skipped\":9,\"failed\":2"));
    assert_non_null(
        strstr(r.out, "MR_truncated.dcm\",\"status\":\"failed\",\"reason\":\"truncated"));
    rdx_run_free(&r);

    const char *idx2[] = {"img", "index", "--db", f->uri, FIXTURES "/study", NULL};
    assert_int_equal(rdx_run_rdx(&r, idx2), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "files seen 7, indexed 0 (reports 0), unchanged 7, skipped 0, "
                                  "failed 0"));
    rdx_run_free(&r);

    const char *bad[] = {"img", "index", "--db", f->uri, FIXTURES "/malformed", NULL};
    assert_int_equal(rdx_run_rdx(&r, bad), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx img index: "));
    assert_non_null(strstr(r.err, "meta_missing_tsyntax.dcm: File Meta Information has no "
                                  "Transfer Syntax UID (0002,0010)"));
    rdx_run_free(&r);

    /* A mistyped index path is an error, not a new empty index. */
    const char *missing[] = {"img", "query", "--db", "sqlite:/nonexistent/rdx-index.db", NULL};
    assert_int_equal(rdx_run_rdx(&r, missing), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "/nonexistent/rdx-index.db: no such index"));
    rdx_run_free(&r);
    const char *missing2[] = {"img",   "report", "show", "--db", "sqlite:/nonexistent/x.db",
                              "1.2.3", NULL};
    assert_int_equal(rdx_run_rdx(&r, missing2), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "no such index"));
    rdx_run_free(&r);

    const char *q[] = {"img", "query", "--db", f->uri, "--patient-name", "王^小东", "--json", NULL};
    assert_int_equal(rdx_run_rdx(&r, q), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"patient_name\":\"Wang^XiaoDong=王^小东=\""));
    assert_non_null(strstr(r.out, "\"has_report\":false"));
    rdx_run_free(&r);

    const char *qp[] = {"img",     "query",        "--db",     f->uri, "--level",
                        "patient", "--patient-id", "77654033", NULL};
    assert_int_equal(rdx_run_rdx(&r, qp), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Doe^Archibald"));
    rdx_run_free(&r);

    const char *rep[] = {"img",  "report", "show",
                         "--db", f->uri,   "1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2",
                         NULL};
    assert_int_equal(rdx_run_rdx(&r, rep), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Diagnosis\n"));
    rdx_run_free(&r);

    const char *norep[] = {"img", "report", "show", "--db", f->uri, "1.2.3", NULL};
    assert_int_equal(rdx_run_rdx(&r, norep), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx img report: study 1.2.3 has no report"));
    rdx_run_free(&r);

    /* Usage errors exit 2. */
    const char *u1[] = {"img", "query", "--db", f->uri, "--level", "galaxy", NULL};
    const char *u2[] = {"img", "query", "--db", f->uri, "--study-date", "yesterday", NULL};
    const char *u3[] = {"img", "index", NULL};
    const char *u4[] = {"img", "query", "--frobnicate", NULL};
    const char *const *usage[] = {u1, u2, u3, u4};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rdx_run_rdx(&r, usage[i]), 0);
        assert_int_equal(r.exit_code, 2);
        assert_non_null(strstr(r.err, "rdx img "));
        rdx_run_free(&r);
    }
    const char *h2[] = {"img", "query", "--help", NULL};
    const char *h3[] = {"img", "report", "--help", NULL};
    assert_int_equal(rdx_run_rdx(&r, h2), 0);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
    assert_int_equal(rdx_run_rdx(&r, h3), 0);
    assert_int_equal(r.exit_code, 0);
    rdx_run_free(&r);
}

/* ---- Out of memory -------------------------------------------------------------- */

static int oom_index(void *ctx)
{
    (void)ctx;
    rdx_img_index *ix = NULL;
    if (rdx_img_index_open("sqlite::memory:", &ix, NULL) != RDX_OK) {
        return 1;
    }
    rdx_img_index_stats s = {0};
    rdx_status st = rdx_img_index_add_path(ix, FIXTURES "/study", NULL, &s, NULL);
    rdx_img_index_close(ix);
    if (st != RDX_OK) {
        return 1;
    }
    /* A failed allocation while reading one file may skip that file, never crash. */
    return s.indexed == 7 ? 0 : 1;
}

static void test_index_oom_sweep(void **state)
{
    (void)state;
    assert_true(rdx_oom_sweep(oom_index, NULL) > 0);
}

/* Each case twice: on SQLite, then on PostgreSQL ("_pg"). */
#define BOTH(t)                                                                                    \
    {#t, t, setup, teardown, NULL},                                                                \
    {                                                                                              \
#t "_pg", t, setup_pg, teardown, NULL                                                      \
    }

int main(void)
{
    /* The same suite runs against SQLite and PostgreSQL. */
    const struct CMUnitTest tests[] = {
        BOTH(test_index_fixture_tree),
        BOTH(test_index_query_names_in_every_group),
        BOTH(test_index_query_filters),
        BOTH(test_index_reports_linked_to_study),
        BOTH(test_index_changed_and_duplicate_files),
        BOTH(test_index_changed_modality_and_study),
        BOTH(test_index_schema_upgrade_from_v1),
        BOTH(test_index_killed_run_completes),
        BOTH(test_index_prune_removes_deleted_files),
        BOTH(test_index_dicomdir),
        BOTH(test_index_report_add),
        BOTH(test_index_parallel_same_answers),
        cmocka_unit_test(test_index_open_refuses_bad_uris),
        cmocka_unit_test_setup_teardown(test_index_concurrent_indexers_pg, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_index_deadlock_is_retried_pg, setup_pg, teardown),
        BOTH(test_index_shared_data),
        BOTH(test_index_cli),
        cmocka_unit_test_setup_teardown(test_index_cli_table_aligns_wide_names, setup, teardown),
        cmocka_unit_test(test_index_oom_sweep),
    };
    return cmocka_run_group_tests_name("imaging_index", tests, pg_group_setup, pg_group_teardown);
}
