/*
 * The hub's dispatcher with two workers ([dispatch] jobs = 2, what `rdx
 * network up` writes): many ECG cases from three clinics arrive at once, and
 * each is processed exactly once, with one report back to its sender, even
 * with the hub killed (SIGKILL) part-way and restarted. The cases are held at
 * the hub (its configuration without [dispatch]) until all have arrived, so
 * the dispatcher's first look finds cases from three senders waiting: it takes
 * two at once (its log says so), never more, never two from one sender.
 * Waits are bounded polls of the nodes' own state, never timings.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rdx/common.h"
#include "rdx/transport.h"
#include "support/testutil.h"

#define WAIT_MS 90000
/* Cases each clinic sends. */
#define PER_CLINIC 6

enum { HUB, MAS, ZJ, YZ, NNODES };
static const char *const IDS[NNODES] = {"NJ-HUB", "MAS-EAST-CHC", "ZJ-EAST-CHC", "YZ-EAST-CHC"};

static const char NODES_INI[] =
    "[node NJ-HUB]\nname = Jiangsu Province Hospital\ncity = Nanjing\nrole = hub\n\n"
    "[node MAS-EAST-CHC]\nname = Ma'anshan East community health service centre\n"
    "city = Ma'anshan\nrole = clinic\n\n"
    "[node ZJ-EAST-CHC]\nname = Zhenjiang East community health service centre\n"
    "city = Zhenjiang\nrole = clinic\n\n"
    "[node YZ-EAST-CHC]\nname = Yangzhou East community health service centre\n"
    "city = Yangzhou\nrole = clinic\n";

struct world {
    char *dir;
    char net[4200], ini[NNODES][4300], me[32];
};

static void up(const struct world *w)
{
    char nodes[4300], have[4300], cat[4200];
    snprintf(nodes, sizeof nodes, "%s/nodes-in.ini", w->dir);
    snprintf(have, sizeof have, "%s/nodes.ini", w->net);
    assert_non_null(realpath("docs/examples/network.ini", cat));
    const char *fresh[] = {"network", "up",  "--dir",       w->net, "--nodes", nodes,
                           "--owner", w->me, "--catalogue", cat,    NULL};
    const char *again[] = {"network", "up", "--dir", w->net, "--owner", w->me, NULL};
    free(rdx_test_rdx_ok(0, access(have, F_OK) == 0 ? again : fresh));
}

static void down(const struct world *w)
{
    const char *argv[] = {"network", "down", "--dir", w->net, NULL};
    free(rdx_test_rdx_ok(0, argv));
}

static char *status_json(const struct world *w, int node)
{
    const char *argv[] = {"case", "status", "--config", w->ini[node], "--json", NULL};
    return rdx_test_rdx_ok(0, argv);
}

/* Wait until node's status shows at least want occurrences of needle (and also, may be NULL). */
static void wait_count2(const struct world *w, int node, const char *needle, const char *also,
                        size_t want)
{
    size_t got = 0;
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        char *st = status_json(w, node);
        got = rdx_test_count(st, needle) + (also != NULL ? rdx_test_count(st, also) : 0);
        free(st);
        if (got >= want) {
            return;
        }
        rdx_test_sleep_ms(100);
    }
    fail_msg("%s: %zu of %zu '%s'", IDS[node], got, want, needle);
}

static void wait_count(const struct world *w, int node, const char *needle, size_t want)
{
    wait_count2(w, node, needle, NULL, want);
}

static pid_t hub_pid(const struct world *w)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/run/NJ-HUB.pid", w->net);
    pid_t pid = rdx_test_pid_file(path);
    assert_true(pid > 1);
    return pid;
}

static void test_jobs_many_cases_each_processed_once(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof w);
    w.dir = rdx_test_tmpdir();
    assert_non_null(w.dir);
    snprintf(w.me, sizeof w.me, "%ld", (long)getpid());
    snprintf(w.net, sizeof w.net, "%s/net", w.dir);
    for (int i = 0; i < NNODES; i++) {
        snprintf(w.ini[i], sizeof w.ini[i], "%s/%s.ini", w.net, IDS[i]);
    }
    char nodes[4300];
    snprintf(nodes, sizeof nodes, "%s/nodes-in.ini", w.dir);
    assert_int_equal(rdx_file_write_atomic(nodes, NODES_INI, strlen(NODES_INI), NULL), RDX_OK);
    up(&w);

    /* The hub holds what arrives: its configuration without [dispatch] for now. */
    down(&w);
    char *ini = rdx_test_slurp(w.ini[HUB]);
    assert_non_null(ini);
    assert_non_null(strstr(ini, "\njobs = 2\n")); /* what network up writes */
    char *disp = strstr(ini, "\n[dispatch]\n");
    assert_non_null(disp);
    assert_int_equal(rdx_file_write_atomic(w.ini[HUB], ini, (size_t)(disp - ini) + 1, NULL),
                     RDX_OK);
    up(&w);

    char hea[4200], dat[4200];
    const char *files[] = {rdx_test_fixture(hea, sizeof hea, "ecg/100s.hea"),
                           rdx_test_fixture(dat, sizeof dat, "ecg/100s.dat")};
    char ids[3][PER_CLINIC][40];
    for (int k = 0; k < PER_CLINIC; k++) {
        for (int c = 0; c < 3; c++) {
            const char *argv[] = {"case",   "send", "--config", w.ini[MAS + c], "--to", "NJ-HUB",
                                  "--kind", "ecg",  files[0],   files[1],       NULL};
            char *out = rdx_test_rdx_ok(0, argv);
            assert_int_equal(strlen(out), 33);
            memcpy(ids[c][k], out, 32);
            ids[c][k][32] = '\0';
            free(out);
        }
    }
    wait_count(&w, HUB, "\"state\":\"complete\"", 3 * PER_CLINIC);

    /* The dispatcher back (jobs = 2): all the cases are waiting for it at once. */
    pid_t hub = hub_pid(&w);
    assert_int_equal(kill(hub, SIGTERM), 0);
    rdx_test_wait_exited(hub, "NJ-HUB", WAIT_MS);
    assert_int_equal(rdx_file_write_atomic(w.ini[HUB], ini, strlen(ini), NULL), RDX_OK);
    free(ini);
    up(&w);

    /* Killed part-way through, and started again: the rest is done, nothing twice. */
    /* The hub's inbox cases done: processed, or replied once their report was acknowledged. */
    wait_count2(&w, HUB, "\"journey\":\"processed\"", "\"journey\":\"replied\"", 3);
    hub = hub_pid(&w);
    assert_int_equal(kill(hub, SIGKILL), 0);
    rdx_test_wait_exited(hub, "NJ-HUB", WAIT_MS);
    up(&w);
    for (int c = 0; c < 3; c++) {
        wait_count(&w, MAS + c, "\"journey\":\"replied\"", PER_CLINIC);
    }

    /* Exactly once: one report per case, each answering its own case. */
    char *hs = status_json(&w, HUB);
    assert_int_equal(rdx_test_count(hs, "{\"box\":\"outbox\""), 3 * PER_CLINIC);
    assert_int_equal(rdx_test_count(hs, "{\"box\":\"inbox\""), 3 * PER_CLINIC);
    free(hs);
    const char *aud[] = {"audit", "show", "--config", w.ini[HUB], "--json", NULL};
    char *a = rdx_test_rdx_ok(0, aud);
    assert_int_equal(rdx_test_count(a, "\"event\":\"case-processed\""), 3 * PER_CLINIC);
    assert_int_equal(rdx_test_count(a, "\"event\":\"case-queued\""), 3 * PER_CLINIC);
    free(a);
    for (int c = 0; c < 3; c++) {
        char *st = status_json(&w, MAS + c);
        assert_int_equal(rdx_test_count(st, "\"kind\":\"report\",\"state\":\"complete\""),
                         PER_CLINIC);
        for (int k = 0; k < PER_CLINIC; k++) {
            char key[100], reply[64], out[4400], path[4500];
            snprintf(key, sizeof key, "{\"box\":\"outbox\",\"case_id\":\"%s\"", ids[c][k]);
            const char *o = strstr(st, key);
            assert_non_null(o);
            rdx_test_json_str(o, "reply", reply, sizeof reply);
            snprintf(out, sizeof out, "%s/reply-%d-%d", w.dir, c, k);
            assert_int_equal(mkdir(out, 0700), 0);
            const char *fa[] = {"case",   "fetch", "--config", w.ini[MAS + c], "--from",
                                "NJ-HUB", "-o",    out,        reply,          NULL};
            free(rdx_test_rdx_ok(0, fa));
            snprintf(path, sizeof path, "%s/" RDX_TRANSPORT_REPLY_ITEM, out);
            char *marker = rdx_test_slurp(path);
            assert_non_null(marker);
            assert_int_equal(strncmp(marker, ids[c][k], 32), 0);
            free(marker);
            snprintf(path, sizeof path, "%s/100s.summary.json", out);
            char *sum = rdx_test_slurp(path);
            assert_non_null(sum);
            assert_non_null(strstr(sum, "\"beats\":74,"));
            free(sum);
        }
        free(st);
    }

    /* Two at once, as [dispatch] jobs says, and never more. */
    char logp[4400];
    snprintf(logp, sizeof logp, "%s/log/NJ-HUB.log", w.net);
    char *log = rdx_test_slurp(logp);
    assert_non_null(log);
    assert_non_null(strstr(log, "dispatcher: 2 worker(s)"));
    assert_non_null(strstr(log, "dispatcher: 2 case(s) in hand at once"));
    assert_null(strstr(log, "dispatcher: 3 case(s) in hand at once"));
    free(log);

    const char *v[] = {"audit", "verify", w.net, NULL};
    char *out = rdx_test_rdx_ok(0, v);
    assert_int_equal(rdx_test_count(out, "audit chain intact"), NNODES);
    free(out);
    down(&w);

    /* [dispatch] jobs out of range: the hub refuses to start, naming the line. */
    ini = rdx_test_slurp(w.ini[HUB]);
    assert_non_null(ini);
    char *j = strstr(ini, "\njobs = 2\n");
    assert_non_null(j);
    j[8] = '0';
    assert_int_equal(rdx_file_write_atomic(w.ini[HUB], ini, strlen(ini), NULL), RDX_OK);
    free(ini);
    const char *serve[] = {"node", "serve", "--config", w.ini[HUB], NULL};
    struct rdx_run r;
    assert_int_equal(rdx_run_rdx(&r, serve), 0);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "[dispatch] jobs: '0': not a whole number in 1..64"));
    rdx_run_free(&r);
    rdx_test_rmrf(w.dir);
    free(w.dir);
}

/* --jobs and [dispatch] jobs refuse what is out of range. */
static void test_jobs_bad_values_refused(void **state)
{
    (void)state;
    char *dir = rdx_test_tmpdir();
    char ini[4300];
    assert_non_null(dir);
    snprintf(ini, sizeof ini, "%s/x.ini", dir);
    const char *argv[] = {"node", "serve", "--config", ini, "--jobs", "0", NULL};
    struct rdx_run r;
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--jobs"));
    rdx_run_free(&r);
    const char *big[] = {"node", "serve", "--config", ini, "--jobs", "65", NULL};
    assert_int_equal(rdx_run_rdx(&r, big), 0);
    assert_int_equal(r.exit_code, 2);
    rdx_run_free(&r);
    rdx_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_many_cases_each_processed_once),
        cmocka_unit_test(test_jobs_bad_values_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
