/* The rdx command as a user meets it: help, version, exit codes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "support/testutil.h"

static void run(struct rdx_run *r, const char *const *argv)
{
    assert_int_equal(rdx_run_rdx(r, argv), 0);
}

static void test_cli_help_and_version(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *help[] = {"--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "Usage: rdx GROUP VERB"));
    rdx_run_free(&r);

    const char *ver[] = {"--version", NULL};
    run(&r, ver);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "rdx 0."));
    rdx_run_free(&r);
}

static void test_cli_usage_errors_exit_2(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *none[] = {NULL};
    run(&r, none);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "Usage"));
    rdx_run_free(&r);

    const char *unknown[] = {"frobnicate", NULL};
    run(&r, unknown);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
    rdx_run_free(&r);
}

/*
 * Every verb that `rdx --help` lists must answer --help with its usage on
 * stdout and exit 0, and must refuse an unknown option with exit 2: a listed
 * verb that does not really work is a defect.
 */
static void test_cli_every_listed_verb_has_help(void **state)
{
    (void)state;
    struct rdx_run r;
    const char *help[] = {"--help", NULL};
    run(&r, help);
    assert_int_equal(r.exit_code, 0);
    char group[32] = "";
    int verbs = 0;
    /* Walk the lines by hand: "  group  summary" and "    verb  summary". */
    char *p = r.out;
    while (p != NULL && *p != '\0') {
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        char name[32];
        if (strncmp(p, "    ", 4) == 0 && p[4] != ' ' && group[0] != '\0') {
            size_t n = strcspn(p + 4, " ");
            assert_true(n < sizeof name);
            memcpy(name, p + 4, n);
            name[n] = '\0';
            struct rdx_run v;
            const char *vh[] = {group, name, "--help", NULL};
            run(&v, vh);
            if (v.exit_code != 0 || strstr(v.out, "Usage") == NULL) {
                fail_msg("rdx %s %s --help: exit %d, stdout '%s'", group, name, v.exit_code, v.out);
            }
            rdx_run_free(&v);
            const char *bad[] = {group, name, "--no-such-option", NULL};
            run(&v, bad);
            if (v.exit_code != 2) {
                fail_msg("rdx %s %s --no-such-option: exit %d, want 2", group, name, v.exit_code);
            }
            rdx_run_free(&v);
            verbs++;
        } else if (strncmp(p, "  ", 2) == 0 && p[2] != ' ') {
            size_t n = strcspn(p + 2, " ");
            assert_true(n < sizeof group);
            memcpy(group, p + 2, n);
            group[n] = '\0';
        } else if (p[0] != ' ') {
            group[0] = '\0';
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    rdx_run_free(&r);
    print_message("checked --help of %d verbs\n", verbs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_help_and_version),
        cmocka_unit_test(test_cli_usage_errors_exit_2),
        cmocka_unit_test(test_cli_every_listed_verb_has_help),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
