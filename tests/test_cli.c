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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_help_and_version),
        cmocka_unit_test(test_cli_usage_errors_exit_2),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
