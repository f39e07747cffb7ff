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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *slurp(const char *path)
{
    rdx_buf b;
    rdx_buf_init(&b, 64u << 20);
    if (rdx_file_read(path, &b, NULL) != RDX_OK || rdx_buf_append(&b, "", 1) != RDX_OK) {
        rdx_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    return n;
}

/* Run rdx; its stdout (malloc'd) when it exits 0, else fail the test. */
static char *rdx_ok(const char *const *argv)
{
    struct rdx_run r;
    assert_int_equal(rdx_run_rdx(&r, argv), 0);
    if (r.exit_code != 0) {
        print_error("rdx %s %s: exit %d, stderr: %s\n", argv[0], argv[1], r.exit_code, r.err);
    }
    assert_int_equal(r.exit_code, 0);
    char *out = r.out;
    r.out = NULL;
    rdx_run_free(&r);
    return out;
}

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
    free(rdx_ok(access(have, F_OK) == 0 ? again : fresh));
}

static void down(const struct world *w)
{
    const char *argv[] = {"network", "down", "--dir", w->net, NULL};
    free(rdx_ok(argv));
}

static char *status_json(const struct world *w, int node)
{
    const char *argv[] = {"case", "status", "--config", w->ini[node], "--json", NULL};
    return rdx_ok(argv);
}

/* Wait until node's status shows at least want occurrences of needle (and also, may be NULL). */
static void wait_count2(const struct world *w, int node, const char *needle, const char *also,
                        size_t want)
{
    size_t got = 0;
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        char *st = status_json(w, node);
        got = count_of(st, needle) + (also != NULL ? count_of(st, also) : 0);
        free(st);
        if (got >= want) {
            return;
        }
        sleep_ms(100);
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
    char *t = slurp(path);
    assert_non_null(t);
    long pid = strtol(t, NULL, 10);
    free(t);
    assert_true(pid > 1);
    return (pid_t)pid;
}

static void wait_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        char *st = slurp(path);
        const char *paren = st != NULL ? strrchr(st, ')') : NULL;
        int gone = st == NULL || (paren != NULL && paren[2] == 'Z');
        free(st);
        if (gone) {
            return;
        }
        sleep_ms(20);
    }
    fail_msg("PID %ld did not exit", (long)pid);
}

/* The value of "key":"..." after position p in a JSON text. */
static void json_str(const char *p, const char *key, char *out, size_t outsz)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *v = strstr(p, k);
    assert_non_null(v);
    v += strlen(k);
    size_t len = strcspn(v, "\"");
    assert_true(len < outsz);
    memcpy(out, v, len);
    out[len] = '\0';
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
    char *ini = slurp(w.ini[HUB]);
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
            char *out = rdx_ok(argv);
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
    wait_gone(hub);
    assert_int_equal(rdx_file_write_atomic(w.ini[HUB], ini, strlen(ini), NULL), RDX_OK);
    free(ini);
    up(&w);

    /* Killed part-way through, and started again: the rest is done, nothing twice. */
    /* The hub's inbox cases done: processed, or replied once their report was acknowledged. */
    wait_count2(&w, HUB, "\"journey\":\"processed\"", "\"journey\":\"replied\"", 3);
    hub = hub_pid(&w);
    assert_int_equal(kill(hub, SIGKILL), 0);
    wait_gone(hub);
    up(&w);
    for (int c = 0; c < 3; c++) {
        wait_count(&w, MAS + c, "\"journey\":\"replied\"", PER_CLINIC);
    }

    /* Exactly once: one report per case, each answering its own case. */
    char *hs = status_json(&w, HUB);
    assert_int_equal(count_of(hs, "{\"box\":\"outbox\""), 3 * PER_CLINIC);
    assert_int_equal(count_of(hs, "{\"box\":\"inbox\""), 3 * PER_CLINIC);
    free(hs);
    const char *aud[] = {"audit", "show", "--config", w.ini[HUB], "--json", NULL};
    char *a = rdx_ok(aud);
    assert_int_equal(count_of(a, "\"event\":\"case-processed\""), 3 * PER_CLINIC);
    assert_int_equal(count_of(a, "\"event\":\"case-queued\""), 3 * PER_CLINIC);
    free(a);
    for (int c = 0; c < 3; c++) {
        char *st = status_json(&w, MAS + c);
        assert_int_equal(count_of(st, "\"kind\":\"report\",\"state\":\"complete\""), PER_CLINIC);
        for (int k = 0; k < PER_CLINIC; k++) {
            char key[100], reply[64], out[4400], path[4500];
            snprintf(key, sizeof key, "{\"box\":\"outbox\",\"case_id\":\"%s\"", ids[c][k]);
            const char *o = strstr(st, key);
            assert_non_null(o);
            json_str(o, "reply", reply, sizeof reply);
            snprintf(out, sizeof out, "%s/reply-%d-%d", w.dir, c, k);
            assert_int_equal(mkdir(out, 0700), 0);
            const char *fa[] = {"case",   "fetch", "--config", w.ini[MAS + c], "--from",
                                "NJ-HUB", "-o",    out,        reply,          NULL};
            free(rdx_ok(fa));
            snprintf(path, sizeof path, "%s/" RDX_TRANSPORT_REPLY_ITEM, out);
            char *marker = slurp(path);
            assert_non_null(marker);
            assert_int_equal(strncmp(marker, ids[c][k], 32), 0);
            free(marker);
            snprintf(path, sizeof path, "%s/100s.summary.json", out);
            char *sum = slurp(path);
            assert_non_null(sum);
            assert_non_null(strstr(sum, "\"beats\":74,"));
            free(sum);
        }
        free(st);
    }

    /* Two at once, as [dispatch] jobs says, and never more. */
    char logp[4400];
    snprintf(logp, sizeof logp, "%s/log/NJ-HUB.log", w.net);
    char *log = slurp(logp);
    assert_non_null(log);
    assert_non_null(strstr(log, "dispatcher: 2 worker(s)"));
    assert_non_null(strstr(log, "dispatcher: 2 case(s) in hand at once"));
    assert_null(strstr(log, "dispatcher: 3 case(s) in hand at once"));
    free(log);

    const char *v[] = {"audit", "verify", w.net, NULL};
    char *out = rdx_ok(v);
    assert_int_equal(count_of(out, "audit chain intact"), NNODES);
    free(out);
    down(&w);

    /* [dispatch] jobs out of range: the hub refuses to start, naming the line. */
    ini = slurp(w.ini[HUB]);
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
