/*
 * Node configuration: every key read, relative paths resolved against the
 * file, the default-deny policy, and each mistake named by file and line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/testutil.h"

static const char GOOD[] = "; Jiangsu Province Hospital, the hub\n"
                           "[node]\n"
                           "id = jsph\n"
                           "listen = 127.0.0.1:7001\n"
                           "cert = pki/certs/jsph.crt\n"
                           "key = pki/private/jsph.key\n"
                           "ca = /etc/rdx/ca.crt\n"
                           "crl = pki/crl.pem\n"
                           "data = data\n"
                           "idle_timeout_ms = 5000\n"
                           "chunk_size = 8388608\n"
                           "senders = 8\n"
                           "hash_nice = 10\n"
                           "\n"
                           "[peers]\n"
                           "gulou-chc = 127.0.0.1:7002\n"
                           "yz-lab = lab.example:7003\n"
                           "\n"
                           "[allow.send]\n"
                           "gulou-chc = ecg, lab-order\n"
                           "yz-lab = lab-result,report\n"
                           "* = other\n"
                           "\n"
                           "[allow.fetch]\n"
                           "gulou-chc = *\n";

struct fx {
    char *dir;
    char ini[4200];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->dir = rdx_test_tmpdir();
    snprintf(f->ini, sizeof f->ini, "%s/node.ini", f->dir);
    *state = f;
    return f->dir == NULL;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rdx_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void put(const struct fx *f, const char *text)
{
    rdx_error err;
    assert_int_equal(rdx_tp_write_file(f->ini, text, strlen(text), 0644, 1, &err), RDX_OK);
}

static void test_config_good_file(void **state)
{
    struct fx *f = *state;
    rdx_transport_config *c = NULL;
    rdx_error err;
    char want[4300];
    put(f, GOOD);
    assert_int_equal(rdx_transport_config_load(f->ini, &c, &err), RDX_OK);
    assert_string_equal(rdx_transport_config_id(c), "jsph");
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 7001);
    snprintf(want, sizeof want, "%s/pki/certs/jsph.crt", f->dir);
    assert_string_equal(c->cert, want);
    assert_string_equal(c->ca, "/etc/rdx/ca.crt");
    snprintf(want, sizeof want, "%s/data", f->dir);
    assert_string_equal(rdx_transport_config_data_dir(c), want);
    assert_int_equal(c->idle_ms, 5000);
    assert_int_equal(c->read_ms, 30000); /* default */
    assert_int_equal(c->chunk_size, 8388608);
    assert_int_equal(c->spill_delay_ms, 500);       /* default */
    assert_int_equal(c->spill_checkpoint_ms, 2000); /* default */
    assert_int_equal(c->senders, 8);
    assert_int_equal(c->hash_nice, 10);
    assert_int_equal(c->npeers, 2);
    const struct rdx_tp_peer *p = rdx_tp_config_peer(c, "yz-lab");
    assert_non_null(p);
    assert_string_equal(p->host, "lab.example");
    assert_string_equal(p->port, "7003");
    assert_null(rdx_tp_config_peer(c, "nobody"));
    /* Default deny, per-institution rules, and a wildcard that cannot widen a named rule. */
    assert_true(rdx_transport_policy_allows(c, 0, "gulou-chc", RDX_KIND_ECG));
    assert_true(rdx_transport_policy_allows(c, 0, "gulou-chc", RDX_KIND_LAB_ORDER));
    assert_false(rdx_transport_policy_allows(c, 0, "gulou-chc", RDX_KIND_DICOM));
    assert_false(rdx_transport_policy_allows(c, 0, "gulou-chc", RDX_KIND_OTHER));
    assert_true(rdx_transport_policy_allows(c, 0, "yz-lab", RDX_KIND_REPORT));
    assert_true(rdx_transport_policy_allows(c, 0, "stranger", RDX_KIND_OTHER));
    assert_false(rdx_transport_policy_allows(c, 0, "stranger", RDX_KIND_ECG));
    assert_true(rdx_transport_policy_allows(c, 1, "gulou-chc", RDX_KIND_DICOM));
    assert_false(rdx_transport_policy_allows(c, 1, "yz-lab", RDX_KIND_REPORT));
    rdx_transport_config_free(c);
    rdx_transport_config_free(NULL);

    /* The spill tuning keys, at their bounds. */
    static const char SPILL[] =
        "[node]\nid = a\nlisten = 127.0.0.1:1\ncert = c\nkey = k\nca = a\ncrl = r\ndata = d\n"
        "spill_delay_ms = 0\nspill_checkpoint_ms = 600000\n";
    put(f, SPILL);
    assert_int_equal(rdx_transport_config_load(f->ini, &c, &err), RDX_OK);
    assert_int_equal(c->spill_delay_ms, 0);
    assert_int_equal(c->spill_checkpoint_ms, 600000);
    rdx_transport_config_free(c);
}

static void test_config_errors_name_line(void **state)
{
    struct fx *f = *state;
    const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"[node]\nid = a\n[nodes]\nx = 1\n", ":4: unknown section [nodes]"},
        {"[node]\nid = a\nlisten_on = 1.2.3.4:5\n", ":3: [node]: unknown key 'listen_on'"},
        {"[node]\nid = ../x\n", ":2: [node] id"},
        {"[node]\nlisten = 127.0.0.1:70000\n", ":2: [node] listen: port '70000'"},
        {"[node]\nlisten = localhost:7000\n", "is not an IPv4 address"},
        {"[node]\nlisten = 7000\n", "is not host:port"},
        {"[node]\nread_timeout_ms = 5\n", ":2: [node] read_timeout_ms: '5' is not"},
        {"[node]\nspill_delay_ms = 60001\n", ":2: [node] spill_delay_ms: '60001' is not"},
        {"[node]\nspill_delay_ms = -1\n", "spill_delay_ms"},
        {"[node]\nspill_checkpoint_ms = 99\n", ":2: [node] spill_checkpoint_ms: '99' is not"},
        {"[node]\nspill_checkpoint_ms = 600001\n", "from 100 to 600000"},
        {"[node]\nchunk_size = 16777216\n", "chunk_size"},
        {"[node]\nsenders = 0\n", ":2: [node] senders: '0' is not a whole number from 1 to 64"},
        {"[node]\nsenders = 65\n", ":2: [node] senders: '65' is not a whole number from 1 to 64"},
        {"[node]\nsenders = four\n", ":2: [node] senders: 'four' is not a whole number"},
        {"[node]\nsenders = -1\n", ":2: [node] senders: '-1'"},
        {"[node]\nhash_nice = 20\n",
         ":2: [node] hash_nice: '20' is not a whole number from 0 to 19"},
        {"[node]\nhash_nice = -5\n", ":2: [node] hash_nice: '-5'"},
        {"[node]\nchunk_size = 1048577\n",
         ":2: [node] chunk_size: 1048577 is not a multiple of 4096"},
        {"[peers]\na = 127.0.0.1:1\na = 127.0.0.1:2\n", ":3: [peers] a: listed twice"},
        {"[peers]\na = 127.0.0.1:0\n", "port 0"},
        {"[allow.send]\na = ecg, ekg\n", ":2: [allow.send] a: unknown kind 'ekg'"},
        {"[allow.fetch]\na = \n", "no kinds listed"},
        {"[allow.send]\na/b = ecg\n", "[allow.send] institution"},
        {"this is not ini\n", ":1: not 'key = value'"},
        {"[node]\nid = a\n", "[node] listen is required"},
        {"[node]\nid = a\nlisten = 127.0.0.1:1\ncert = c\nkey = k\nca = a\ncrl = r\ndata = d\n"
         "retry_base_ms = 5000\nretry_max_ms = 10\n",
         "retry_max_ms is below retry_base_ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rdx_transport_config *c = NULL;
        rdx_error err;
        put(f, cases[i].text);
        rdx_status st = rdx_transport_config_load(f->ini, &c, &err);
        if (st == RDX_OK || strstr(err.msg, cases[i].msg) == NULL ||
            strstr(err.msg, "node.ini") == NULL) {
            fail_msg("case %zu: status %d, '%s'", i, st, err.msg);
        }
        assert_null(c);
    }
    rdx_transport_config *c = NULL;
    rdx_error err;
    /* Without the key: four delivery threads. */
    put(f, "[node]\nid = a\nlisten = 127.0.0.1:1\ncert = c\nkey = k\nca = a\ncrl = r\ndata = d\n");
    assert_int_equal(rdx_transport_config_load(f->ini, &c, &err), RDX_OK);
    assert_int_equal(c->senders, 4);
    assert_int_equal(c->hash_nice, 0);
    rdx_transport_config_free(c);
    c = NULL;
    assert_int_equal(rdx_transport_config_load("/nonexistent/node.ini", &c, &err), RDX_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/node.ini"));
    char nul[] = "[node]\nid = a\0b\n";
    assert_int_equal(rdx_tp_write_file(f->ini, nul, sizeof nul - 1, 0644, 1, &err), RDX_OK);
    assert_int_equal(rdx_transport_config_load(f->ini, &c, &err), RDX_EPARSE);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void test_config_kinds(void **state)
{
    (void)state;
    rdx_transport_kind k;
    assert_int_equal(rdx_transport_kind_parse("lab-order", 9, &k), RDX_OK);
    assert_int_equal(k, RDX_KIND_LAB_ORDER);
    assert_string_equal(rdx_transport_kind_name(RDX_KIND_DICOM), "dicom");
    assert_int_equal(rdx_transport_kind_parse("lab-orders", 10, &k), RDX_EINVAL);
    assert_int_equal(rdx_transport_kind_parse("lab", 3, &k), RDX_EINVAL);
    assert_null(rdx_transport_kind_name((rdx_transport_kind)0));
}

static int oom_load(void *u)
{
    struct fx *f = u;
    rdx_transport_config *c = NULL;
    if (rdx_transport_config_load(f->ini, &c, NULL) != RDX_OK) {
        return 1;
    }
    rdx_transport_config_free(c);
    return 0;
}

static void test_config_oom_sweep(void **state)
{
    struct fx *f = *state;
    put(f, GOOD);
    assert_true(rdx_oom_sweep(oom_load, f) >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors_name_line, setup, teardown),
        cmocka_unit_test(test_config_kinds),
        cmocka_unit_test_setup_teardown(test_config_oom_sweep, setup, teardown),
    };
    return cmocka_run_group_tests_name("transport_config", tests, NULL, NULL);
}
