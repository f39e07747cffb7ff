/*
 * The transport verbs' options as a user meets them (rdx pki, node, case,
 * network, audit), run through the rdx binary: --help on stdout
 * with exit 0 wherever it stands, an unknown option or a stray operand and a
 * missing value as usage errors (exit 2) naming what is wrong, "--name=VALUE"
 * read as "--name VALUE", "--" ending the options, and the last of --inbox /
 * --outbox winning. The lab verbs, which read their options with the same
 * reader but without "=VALUE", still refuse "--db=URI".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/testutil.h"

/* Where the option tests point: never there, so every verb fails on it once the options are read.
 */
#define NOCFG "/nonexistent/rdx-cli-test/node.ini"
#define NODIR "/nonexistent/rdx-cli-test/dir"

/*
 * One transport verb: a value option it takes (for "needs a value"), the
 * argv of a run that reads every option and then fails on NOCFG or NODIR
 * (exit 1) with its path option given as "OPT PATH" (the two elements
 * path_at and path_at + 1), and whether it takes operands and --json.
 */
struct verb {
    const char *argv[16];
    int path_at;
    int operands;
    int json;
};

static const struct verb VERBS[] = {
    {{"case", "send", "--config", NOCFG, "--to", "hub", "--kind", "ecg", "a.txt", NULL}, 2, 1, 1},
    {{"case", "status", "--config", NOCFG, NULL}, 2, 0, 1},
    {{"case", "list", "--config", NOCFG, "--inbox", NULL}, 2, 0, 1},
    {{"case", "fetch", "--config", NOCFG, "-o", "/tmp", "ID", NULL}, 2, 1, 0},
    {{"case", "retry", "--config", NOCFG, "ID", NULL}, 2, 1, 0},
    {{"case", "request", "--config", NOCFG, "--to", "hub", "--study", "1.2.3", NULL}, 2, 0, 1},
    {{"node", "serve", "--config", NOCFG, "--jobs", "2", NULL}, 2, 0, 0},
    {{"node", "audit", "--config", NOCFG, "--verify", NULL}, 2, 0, 1},
    {{"audit", "show", "--config", NOCFG, NULL}, 2, 0, 1},
    {{"pki", "init", "--dir", NODIR, "--network", "n", NULL}, 2, 0, 1},
    {{"pki", "issue", "--dir", NODIR, "--institution", "ab", "--name", "n", "--city", "c", NULL},
     2,
     0,
     1},
    {{"pki", "revoke", "--dir", NODIR, "--serial", "01", NULL}, 2, 0, 1},
    {{"pki", "crl", "--dir", NODIR, NULL}, 2, 0, 1},
    {{"pki", "verify", "--dir", NODIR, NODIR "/a.crt", NULL}, 2, 1, 1},
    {{"network", "up", "--dir", NODIR, NULL}, 2, 0, 1},
    {{"network", "down", "--dir", NODIR, NULL}, 2, 0, 0},
};

#define NVERBS (sizeof VERBS / sizeof VERBS[0])

static void run(struct rdx_run *r, const char *const *argv)
{
    assert_int_equal(rdx_run_rdx(r, argv), 0);
}

/* argv of v with extra (NULL-terminated) appended, into out (32 entries). */
static void with(const struct verb *v, const char *const *extra, const char **out)
{
    size_t n = 0;
    for (; v->argv[n] != NULL; n++) {
        out[n] = v->argv[n];
    }
    for (size_t k = 0; extra != NULL && extra[k] != NULL; k++) {
        out[n++] = extra[k];
    }
    out[n] = NULL;
}

/* Run argv and check: exit want, stderr exactly "rdx GROUP VERB: msg\nTry ...\n" (exit 2). */
static void expect_usage(const char *const *argv, const char *msg)
{
    struct rdx_run r;
    char want[512];
    snprintf(want, sizeof want, "rdx %s %s: %s\nTry 'rdx %s %s --help'.\n", argv[0], argv[1], msg,
             argv[0], argv[1]);
    run(&r, argv);
    if (r.exit_code != 2 || strcmp(r.err, want) != 0 || r.out[0] != '\0') {
        fail_msg("rdx %s %s ...: exit %d, stderr '%s', want exit 2 and '%s'", argv[0], argv[1],
                 r.exit_code, r.err, want);
    }
    rdx_run_free(&r);
}

static void test_cli_help_on_stdout_wherever_it_stands(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERBS; i++) {
        const struct verb *v = &VERBS[i];
        char head[64];
        snprintf(head, sizeof head, "Usage: rdx %s %s ", v->argv[0], v->argv[1]);
        /* --help and -h alone, after the options, and after an unknown option (help wins). */
        const char *alone[] = {v->argv[0], v->argv[1], "--help", NULL};
        const char *shortf[] = {v->argv[0], v->argv[1], "-h", NULL};
        const char *after_bad[] = {v->argv[0], v->argv[1], "--no-such-option", "--help", NULL};
        const char *tail[] = {"--help", NULL};
        const char *after_all[32];
        with(v, tail, after_all);
        const char *const *runs[] = {alone, shortf, after_bad, after_all};
        for (size_t k = 0; k < 4; k++) {
            struct rdx_run r;
            run(&r, runs[k]);
            if (r.exit_code != 0 || strncmp(r.out, head, strlen(head)) != 0 || r.err[0] != '\0') {
                fail_msg("rdx %s %s (run %zu) --help: exit %d, stdout '%.80s', stderr '%s'",
                         v->argv[0], v->argv[1], k, r.exit_code, r.out, r.err);
            }
            rdx_run_free(&r);
        }
    }
}

static void test_cli_unknown_option_is_a_usage_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERBS; i++) {
        const struct verb *v = &VERBS[i];
        const char *bad[] = {"--no-such-option", NULL};
        const char *argv[32];
        with(v, bad, argv);
        expect_usage(argv, "unknown option '--no-such-option'");
        /* A flag takes no "=VALUE": "--json=1" is no option of any verb. */
        if (v->json) {
            const char *eq[] = {"--json=1", NULL};
            with(v, eq, argv);
            expect_usage(argv, "unknown option '--json=1'");
        }
        /* A single dash and a letter no verb knows. */
        const char *shortf[] = {"-Z", NULL};
        with(v, shortf, argv);
        expect_usage(argv, "unknown option '-Z'");
    }
}

static void test_cli_missing_value_is_a_usage_error(void **state)
{
    (void)state;
    char msg[128];
    for (size_t i = 0; i < NVERBS; i++) {
        const struct verb *v = &VERBS[i];
        /* The path option last, without its value. */
        const char *argv[32];
        int n = 0;
        for (int k = 0; v->argv[k] != NULL; k++) {
            if (k != v->path_at && k != v->path_at + 1) {
                argv[n++] = v->argv[k];
            }
        }
        argv[n++] = v->argv[v->path_at];
        argv[n] = NULL;
        snprintf(msg, sizeof msg, "%s needs a value", v->argv[v->path_at]);
        expect_usage(argv, msg);
    }
    /* A few more value options of each group. */
    const char *send[] = {"case", "send", "--config", NOCFG, "--kind", NULL};
    expect_usage(send, "--kind needs a value");
    const char *fetch[] = {"case", "fetch", "--config", NOCFG, "ID", "-o", NULL};
    expect_usage(fetch, "-o needs a value");
    const char *req[] = {"case", "request", "--config", NOCFG, "--wait", NULL};
    expect_usage(req, "--wait needs a value");
    const char *serve[] = {"node", "serve", "--config", NOCFG, "--await-timeout", NULL};
    expect_usage(serve, "--await-timeout needs a value");
    const char *issue[] = {"pki", "issue", "--dir", NODIR, "--days", NULL};
    expect_usage(issue, "--days needs a value");
    const char *up[] = {"network", "up", "--dir", NODIR, "--owner", NULL};
    expect_usage(up, "--owner needs a value");
}

static void test_cli_stray_operand_is_a_usage_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERBS; i++) {
        const struct verb *v = &VERBS[i];
        if (v->operands) {
            continue;
        }
        const char *extra[] = {"stray", NULL};
        const char *argv[32];
        with(v, extra, argv);
        expect_usage(argv, "unknown argument 'stray'");
    }
    const char *fetch[] = {"case", "fetch", "--config", NOCFG, "-o", "/tmp", "ID", "ID2", NULL};
    expect_usage(fetch, "unexpected argument 'ID2'");
    const char *retry[] = {"case", "retry", "--config", NOCFG, "ID", "ID2", NULL};
    expect_usage(retry, "one CASE_ID, not 2");
    const char *send[] = {"case", "send", "--config", NOCFG, "--to", "hub", "--kind", "ecg", NULL};
    expect_usage(send, "--config, --to, --kind and at least one FILE are required");
    const char *verify[] = {"pki", "verify", "--dir", NODIR, NULL};
    expect_usage(verify, "--dir and at least one CERT are required");
}

/*
 * "--config=PATH" reads as "--config PATH": the same failure, on PATH, as
 * with the value apart (never an unknown option).
 */
static void test_cli_equals_form_reads_as_the_value_apart(void **state)
{
    (void)state;
    char joined[256];
    for (size_t i = 0; i < NVERBS; i++) {
        const struct verb *v = &VERBS[i];
        struct rdx_run apart, eq;
        run(&apart, v->argv);
        const char *argv[32];
        int n = 0;
        for (int k = 0; v->argv[k] != NULL; k++) {
            if (k == v->path_at) {
                snprintf(joined, sizeof joined, "%s=%s", v->argv[k], v->argv[k + 1]);
                argv[n++] = joined;
                k++;
            } else {
                argv[n++] = v->argv[k];
            }
        }
        argv[n] = NULL;
        run(&eq, argv);
        const char *path = v->argv[v->path_at + 1];
        if (apart.exit_code != 1 || strstr(apart.err, path) == NULL) {
            fail_msg("rdx %s %s: exit %d, stderr '%s', want exit 1 naming %s", v->argv[0],
                     v->argv[1], apart.exit_code, apart.err, path);
        }
        if (eq.exit_code != apart.exit_code || strcmp(eq.err, apart.err) != 0 ||
            strcmp(eq.out, apart.out) != 0) {
            fail_msg("rdx %s %s %s: exit %d, stderr '%s'; apart: exit %d, stderr '%s'", v->argv[0],
                     v->argv[1], joined, eq.exit_code, eq.err, apart.exit_code, apart.err);
        }
        rdx_run_free(&apart);
        rdx_run_free(&eq);
    }
}

/*
 * With a node's configuration and one case queued (no node runs: the case
 * stays in the outbox): --inbox and --outbox choose the box, the last given
 * winning; "--" ends the options of case send; the values come "=VALUE" too.
 */
static void test_cli_case_options_on_a_real_outbox(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    assert_non_null(dir);
    char ini[4200], item[4200], cfgopt[4300];
    snprintf(ini, sizeof ini, "%s/clinic.ini", dir);
    snprintf(item, sizeof item, "%s/-ecg.hea", dir);
    snprintf(cfgopt, sizeof cfgopt, "--config=%s", ini);
    rdx_test_write_text(ini, "[node]\nid = clinic\nlisten = 127.0.0.1:0\ncert = c.crt\n"
                             "key = c.key\nca = ca.crt\ncrl = crl.pem\ndata = data\n\n"
                             "[peers]\nhub = 127.0.0.1:9\n");
    rdx_test_write_text(item, "100 2 360 650000\n");

    /* A name that starts with a dash is an option, unless it follows "--": then a file. */
    const char *dash[] = {"case", "send", cfgopt, "--to=hub", "--kind=ecg", "-ecg.hea", NULL};
    expect_usage(dash, "unknown option '-ecg.hea'");
    const char *dashed[] = {"case",       "send", cfgopt,     "--to=hub",
                            "--kind=ecg", "--",   "-ecg.hea", NULL};
    struct rdx_run r;
    run(&r, dashed);
    if (r.exit_code != 1 || strstr(r.err, "rdx case send: ") == NULL ||
        strstr(r.err, "-ecg.hea") == NULL) {
        fail_msg("case send -- -ecg.hea (no such file here): exit %d, stderr '%s'", r.exit_code,
                 r.err);
    }
    rdx_run_free(&r);
    const char *send[] = {"case",   "send", cfgopt, "--to=hub", "--kind=ecg",
                          "--json", "--",   item,   NULL};
    char *out = rdx_test_rdx_ok(0, send);
    char id[64];
    rdx_test_json_str(out, "case_id", id, sizeof id);
    assert_non_null(strstr(out, "\"items\":1"));
    free(out);

    const char *both_out_last[] = {"case", "status", "--config", ini, "--inbox", "--outbox", NULL};
    out = rdx_test_rdx_ok(0, both_out_last);
    assert_non_null(strstr(out, id));
    assert_non_null(strstr(out, "outbox  "));
    free(out);
    const char *both_in_last[] = {"case", "status", cfgopt, "--outbox", "--inbox", NULL};
    out = rdx_test_rdx_ok(0, both_in_last);
    assert_string_equal(out, "no cases\n");
    free(out);
    const char *neither[] = {"case", "status", cfgopt, "--json", NULL};
    out = rdx_test_rdx_ok(0, neither);
    assert_non_null(strstr(out, "\"box\":\"outbox\""));
    assert_non_null(strstr(out, id));
    free(out);
    /* case list has no --outbox, and wants --inbox. */
    const char *list_out[] = {"case", "list", cfgopt, "--outbox", NULL};
    expect_usage(list_out, "unknown option '--outbox'");
    const char *list_none[] = {"case", "list", cfgopt, NULL};
    expect_usage(list_none, "--inbox is required");
    const char *list_in[] = {"case", "list", cfgopt, "--inbox", NULL};
    out = rdx_test_rdx_ok(0, list_in);
    assert_string_equal(out, "no cases\n");
    free(out);
    /* A queued case is no dead letter: retry refuses it, naming it, with --config= too. */
    const char *retry[] = {"case", "retry", cfgopt, id, NULL};
    run(&r, retry);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "rdx case retry: "));
    assert_non_null(strstr(r.err, id));
    rdx_run_free(&r);

    rdx_test_rmrf(dir);
    free(dir);
}

/* rdx audit verify and show take directories as operands, show also the --config form. */
static void test_cli_audit_directories_and_config_form(void **state)
{
    (void)state;
    const char *verbs[] = {"verify", "show"};
    for (size_t i = 0; i < 2; i++) {
        const char *help[] = {"audit", verbs[i], "--json", NODIR, "--help", NULL};
        char *out = rdx_test_rdx_ok(0, help);
        char head[64];
        snprintf(head, sizeof head, "Usage: rdx audit %s [--json] DIR...", verbs[i]);
        assert_int_equal(strncmp(out, head, strlen(head)), 0);
        free(out);
        const char *bad[] = {"audit", verbs[i], NODIR, "--no-such-option", NULL};
        expect_usage(bad, "unknown option '--no-such-option'");
        const char *eq[] = {"audit", verbs[i], "--json=1", NODIR, NULL};
        expect_usage(eq, "unknown option '--json=1'");
        const char *none[] = {"audit", verbs[i], "--json", NULL};
        expect_usage(none, i == 0 ? "at least one DIR is required"
                                  : "a DIR (or --config FILE) is required");
        /* A directory named with a leading dash, after "--": a directory, not an option. */
        const char *dashed[] = {"audit", verbs[i], "--", "-no-such-dir", NULL};
        struct rdx_run r;
        run(&r, dashed);
        if (r.exit_code != 1 || strstr(r.err, "-no-such-dir") == NULL) {
            fail_msg("audit %s -- -no-such-dir: exit %d, stderr '%s'", verbs[i], r.exit_code,
                     r.err);
        }
        rdx_run_free(&r);
    }
    /* The --config form takes no directories; --verify alone still wants --config. */
    const char *mixed[] = {"audit", "show", "--verify", NODIR, NULL};
    expect_usage(mixed, "unknown argument '" NODIR "'");
    const char *mixed2[] = {"audit", "show", NODIR, "--config=" NOCFG, NULL};
    expect_usage(mixed2, "unknown argument '" NODIR "'");
    const char *verify_only[] = {"audit", "show", "--verify", NULL};
    expect_usage(verify_only, "--config is required");
}

/* The verbs that read their options without "=VALUE" still refuse it, as before. */
static void test_cli_lab_still_refuses_equals_form(void **state)
{
    (void)state;
    const char *argv[] = {"lab", "status", "--db=sqlite::memory:", "ABC", NULL};
    expect_usage(argv, "unknown option '--db=sqlite::memory:'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_help_on_stdout_wherever_it_stands),
        cmocka_unit_test(test_cli_unknown_option_is_a_usage_error),
        cmocka_unit_test(test_cli_missing_value_is_a_usage_error),
        cmocka_unit_test(test_cli_stray_operand_is_a_usage_error),
        cmocka_unit_test(test_cli_equals_form_reads_as_the_value_apart),
        cmocka_unit_test(test_cli_case_options_on_a_real_outbox),
        cmocka_unit_test(test_cli_audit_directories_and_config_form),
        cmocka_unit_test(test_cli_lab_still_refuses_equals_form),
    };
    return cmocka_run_group_tests_name("transport_cli", tests, NULL, NULL);
}
