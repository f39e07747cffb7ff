/* rdx pki: the network CA, institution certificates, revocation and the CRL. */
#include "cli.h"
#include "tp_cli.h"

#include "rdx/transport.h"

#include <stdio.h>

/* A library's RDX_EINVAL is a bad option value: a usage error; anything else a failure. */
static int fail_status(const char *cmd, const rdx_error *err)
{
    if (err->code == RDX_EINVAL) {
        return rdx_cli_usage(cmd, "%s", err->msg);
    }
    return rdx_cli_fail_err(cmd, err);
}

/* The options of these verbs: "--dir=DIR" as "--dir DIR"; none takes operands but verify. */
#define PKI_PARSE (RDX_CLI_EQUALS | RDX_CLI_NO_OPERANDS)

static const char INIT_USAGE[] =
    "Usage: rdx pki init --dir DIR --network NAME [--days N] [--json]\n\n"
    "Create the network's certificate authority in DIR (created, mode 0700, if\n"
    "absent): an ECDSA P-256 key (DIR/ca.key, mode 0600), a self-signed CA\n"
    "certificate (DIR/ca.crt), the CA database (DIR/ca.db) and an empty CRL\n"
    "(DIR/crl.pem). N is the CA's validity in days (default 3650, at most 7300).\n"
    "Refuses a DIR that already holds a CA.\n";

static int pki_init(int argc, char **argv)
{
    const char *cmd = "pki init";
    const char *dir = NULL, *network = NULL, *days_s = NULL;
    int json = 0, nops = 0;
    long days = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir), RDX_CLI_VALUE("--network", &network),
                                RDX_CLI_VALUE("--days", &days_s), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, PKI_PARSE, INIT_USAGE, &nops);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (dir == NULL || network == NULL) {
        return rdx_cli_usage(cmd, "--dir and --network are required");
    }
    if (days_s != NULL && rdx_tp_cli_int(days_s, 1, 7300, &days, "--days", cmd) != 0) {
        return RDX_EXIT_USAGE;
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_transport_ca_cfg cfg = {.dir = dir, .network = network, .days = (int)days};
    if (rdx_transport_ca_create(&cfg, &err) != RDX_OK) {
        return fail_status(cmd, &err);
    }
    if (json) {
        printf("{\"dir\":");
        rdx_tp_cli_json_str(stdout, dir);
        printf(",\"network\":");
        rdx_tp_cli_json_str(stdout, network);
        printf(",\"ca_cert\":\"ca.crt\",\"ca_key\":\"ca.key\",\"crl\":\"crl.pem\"}\n");
    } else {
        printf("created the CA of network '%s' in %s\n  certificate %s/ca.crt\n  key "
               "%s/ca.key (mode 0600)\n  CRL %s/crl.pem\n",
               network, dir, dir, dir, dir);
    }
    return RDX_EXIT_OK;
}

static const char ISSUE_USAGE[] =
    "Usage: rdx pki issue --dir DIR --institution ID --name NAME --city CITY\n"
    "                     [--days N] [--json]\n\n"
    "Issue a key and certificate for institution ID, signed by the CA in DIR:\n"
    "DIR/certs/ID.crt and DIR/private/ID.key (mode 0600). The certificate names\n"
    "the institution as SAN URI urn:rdx:inst:ID (which every node trusts as the\n"
    "peer's identity), NAME as O and CITY as L; it serves both TLS client and\n"
    "server use. ID is 1-64 of A-Z a-z 0-9 . _ -. N defaults to 397 days (at most\n"
    "825). Refuses an institution that still holds a valid, unrevoked certificate.\n";

static int pki_issue(int argc, char **argv)
{
    const char *cmd = "pki issue";
    const char *dir = NULL, *inst = NULL, *name = NULL, *city = NULL, *days_s = NULL;
    int json = 0, nops = 0;
    long days = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir),
                                RDX_CLI_VALUE("--institution", &inst),
                                RDX_CLI_VALUE("--name", &name),
                                RDX_CLI_VALUE("--city", &city),
                                RDX_CLI_VALUE("--days", &days_s),
                                RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, PKI_PARSE, ISSUE_USAGE, &nops);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (dir == NULL || inst == NULL || name == NULL || city == NULL) {
        return rdx_cli_usage(cmd, "--dir, --institution, --name and --city are required");
    }
    if (days_s != NULL && rdx_tp_cli_int(days_s, 1, 825, &days, "--days", cmd) != 0) {
        return RDX_EXIT_USAGE;
    }
    rdx_error err;
    rdx_error_clear(&err);
    /* Check the ID before touching the CA, so a typo is a usage error. */
    if (rdx_transport_inst_id_check(inst, "--institution", &err) != RDX_OK) {
        return fail_status(cmd, &err);
    }
    rdx_transport_ca *ca = NULL;
    if (rdx_transport_ca_open(dir, &ca, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    rdx_transport_issue_cfg cfg = {
        .institution = inst, .name = name, .city = city, .days = (int)days};
    rdx_transport_issued out;
    rdx_status st = rdx_transport_ca_issue(ca, &cfg, &out, &err);
    rdx_transport_ca_free(ca);
    if (st != RDX_OK) {
        return fail_status(cmd, &err);
    }
    char nb[32], na[32];
    rdx_tp_cli_time(nb, sizeof nb, out.not_before_unix);
    rdx_tp_cli_time(na, sizeof na, out.not_after_unix);
    if (json) {
        printf("{\"institution\":");
        rdx_tp_cli_json_str(stdout, inst);
        printf(",\"serial\":\"%s\",\"cert\":", out.serial);
        rdx_tp_cli_json_str(stdout, out.cert_path);
        printf(",\"key\":");
        rdx_tp_cli_json_str(stdout, out.key_path);
        printf(",\"not_before\":\"%s\",\"not_after\":\"%s\"}\n", nb, na);
    } else {
        printf("issued %s (urn:rdx:inst:%s) serial %s\n  valid %s to %s\n  certificate %s\n  "
               "key %s (mode 0600)\n",
               inst, inst, out.serial, nb, na, out.cert_path, out.key_path);
    }
    return RDX_EXIT_OK;
}

static const char REVOKE_USAGE[] =
    "Usage: rdx pki revoke --dir DIR (--institution ID | --serial HEX)\n"
    "                      [--reason REASON] [--days N] [--json]\n\n"
    "Revoke one certificate (by serial) or every unrevoked certificate of an\n"
    "institution, record it in DIR/ca.db, and publish a new DIR/crl.pem valid for\n"
    "N days (default 7). REASON is unspecified (default), keyCompromise,\n"
    "affiliationChanged, superseded or cessationOfOperation. Copy the new CRL to\n"
    "every node: a node refuses revoked peers only once it has it.\n";

static int pki_revoke(int argc, char **argv)
{
    const char *cmd = "pki revoke";
    const char *dir = NULL, *inst = NULL, *serial = NULL, *reason_s = NULL, *days_s = NULL;
    int json = 0, nops = 0;
    long days = 0;
    rdx_transport_revoke_reason reason = RDX_TRANSPORT_REVOKE_UNSPECIFIED;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir),
                                RDX_CLI_VALUE("--institution", &inst),
                                RDX_CLI_VALUE("--serial", &serial),
                                RDX_CLI_VALUE("--reason", &reason_s),
                                RDX_CLI_VALUE("--days", &days_s),
                                RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, PKI_PARSE, REVOKE_USAGE, &nops);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (dir == NULL || (inst == NULL) == (serial == NULL)) {
        return rdx_cli_usage(cmd, "--dir and exactly one of --institution or --serial are "
                                  "required");
    }
    if (reason_s != NULL && rdx_transport_revoke_reason_parse(reason_s, &reason) != RDX_OK) {
        return rdx_cli_usage(cmd, "--reason '%s': not a reason rdx knows", reason_s);
    }
    if (days_s != NULL && rdx_tp_cli_int(days_s, 1, 366, &days, "--days", cmd) != 0) {
        return RDX_EXIT_USAGE;
    }
    rdx_error err;
    rdx_error_clear(&err);
    if (inst != NULL && rdx_transport_inst_id_check(inst, "--institution", &err) != RDX_OK) {
        return fail_status(cmd, &err);
    }
    rdx_transport_ca *ca = NULL;
    if (rdx_transport_ca_open(dir, &ca, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    size_t n = 0;
    rdx_status st = rdx_transport_ca_revoke(ca, inst, serial, reason, (int)days, &n, &err);
    rdx_transport_ca_free(ca);
    if (st != RDX_OK) {
        return fail_status(cmd, &err);
    }
    if (json) {
        printf("{\"revoked\":%zu,\"crl\":", n);
        char crl[4200];
        snprintf(crl, sizeof crl, "%s/crl.pem", dir);
        rdx_tp_cli_json_str(stdout, crl);
        printf("}\n");
    } else {
        printf("revoked %zu certificate%s of %s; published %s/crl.pem\n", n, n == 1 ? "" : "s",
               inst != NULL ? inst : serial, dir);
    }
    return RDX_EXIT_OK;
}

static const char CRL_USAGE[] =
    "Usage: rdx pki crl --dir DIR [--days N | --hours H] [--json]\n\n"
    "Publish DIR/crl.pem afresh (a new CRL number), listing every revoked\n"
    "certificate, valid for N days (default 7, at most 366) or H hours (1 to\n"
    "8784) for a short-lived CRL. Run it again before the CRL's nextUpdate: a\n"
    "node refuses every new connection, in and out, once its CRL has expired.\n";

static int pki_crl(int argc, char **argv)
{
    const char *cmd = "pki crl";
    const char *dir = NULL, *days_s = NULL, *hours_s = NULL;
    int json = 0, nops = 0;
    long days = 0, hours = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir), RDX_CLI_VALUE("--days", &days_s),
                                RDX_CLI_VALUE("--hours", &hours_s), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, PKI_PARSE, CRL_USAGE, &nops);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (dir == NULL) {
        return rdx_cli_usage(cmd, "--dir is required");
    }
    if (days_s != NULL && hours_s != NULL) {
        return rdx_cli_usage(cmd, "give --days or --hours, not both");
    }
    if (days_s != NULL && rdx_tp_cli_int(days_s, 1, 366, &days, "--days", cmd) != 0) {
        return RDX_EXIT_USAGE;
    }
    if (hours_s != NULL && rdx_tp_cli_int(hours_s, 1, 366 * 24, &hours, "--hours", cmd) != 0) {
        return RDX_EXIT_USAGE;
    }
    rdx_error err;
    rdx_error_clear(&err);
    rdx_transport_ca *ca = NULL;
    if (rdx_transport_ca_open(dir, &ca, &err) != RDX_OK) {
        return rdx_cli_fail_err(cmd, &err);
    }
    int64_t number = 0;
    size_t n = 0;
    int64_t valid_s = hours > 0 ? (int64_t)hours * 3600 : (int64_t)days * 86400;
    rdx_status st = rdx_transport_ca_crl_publish_v2(ca, valid_s, &number, &n, &err);
    rdx_transport_ca_free(ca);
    if (st != RDX_OK) {
        return fail_status(cmd, &err);
    }
    if (json) {
        printf("{\"crl_number\":%lld,\"revoked\":%zu}\n", (long long)number, n);
    } else {
        printf("published %s/crl.pem: CRL number %lld, %zu revoked certificate%s\n", dir,
               (long long)number, n, n == 1 ? "" : "s");
    }
    return RDX_EXIT_OK;
}

static const char VERIFY_USAGE[] =
    "Usage: rdx pki verify --dir DIR [--json] CERT...\n\n"
    "Verify each PEM certificate as a node verifies a peer: it must chain to\n"
    "DIR/ca.crt, not be revoked in DIR/crl.pem (which must be current), be valid\n"
    "now, serve TLS client and server use, and name one institution. Prints the\n"
    "institution, serial and expiry of each; exit 1 if any fails.\n";

static int pki_verify(int argc, char **argv)
{
    const char *cmd = "pki verify";
    const char *dir = NULL;
    int json = 0, bad = 0, ncerts = 0;
    const rdx_cli_opt opts[] = {RDX_CLI_VALUE("--dir", &dir), RDX_CLI_FLAG("--json", &json),
                                RDX_CLI_END};
    int rc = rdx_cli_parse_opts_v2(cmd, argc, argv, opts, RDX_CLI_EQUALS, VERIFY_USAGE, &ncerts);
    if (rc != RDX_CLI_GO) {
        return rc;
    }
    if (dir == NULL || ncerts == 0) {
        return rdx_cli_usage(cmd, "--dir and at least one CERT are required");
    }
    char ca[4200], crl[4200];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", dir);
    if (json) {
        printf("[");
    }
    int first = 1;
    /* The certificates, moved to argv[1..ncerts] by the option reader. */
    for (int i = 1; i <= ncerts; i++) {
        rdx_error err;
        rdx_transport_cert_info info;
        rdx_error_clear(&err);
        rdx_status st = rdx_transport_cert_verify(ca, crl, argv[i], &info, &err);
        char na[32] = "";
        if (st == RDX_OK) {
            rdx_tp_cli_time(na, sizeof na, info.not_after_unix);
        } else {
            bad = 1;
        }
        if (json) {
            printf("%s{\"cert\":", first ? "" : ",");
            rdx_tp_cli_json_str(stdout, argv[i]);
            if (st == RDX_OK) {
                printf(
                    ",\"ok\":true,\"institution\":\"%s\",\"serial\":\"%s\",\"not_after\":\"%s\"}",
                    info.institution, info.serial, na);
            } else {
                printf(",\"ok\":false,\"error\":");
                rdx_tp_cli_json_str(stdout, err.msg);
                printf("}");
            }
        } else if (st == RDX_OK) {
            printf("%s: ok, institution %s, serial %s, valid until %s\n", argv[i], info.institution,
                   info.serial, na);
        } else {
            rdx_cli_fail_err(cmd, &err);
        }
        first = 0;
    }
    if (json) {
        printf("]\n");
    }
    return bad ? RDX_EXIT_FAIL : RDX_EXIT_OK;
}

static const struct rdx_cli_verb verbs[] = {
    {"init", "create the network CA (ECDSA P-256) in a directory", pki_init},
    {"issue", "issue an institution's key and certificate", pki_issue},
    {"revoke", "revoke certificates and publish the CRL", pki_revoke},
    {"crl", "publish the certificate revocation list afresh", pki_crl},
    {"verify", "verify certificates against the CA and its CRL", pki_verify},
    {NULL, NULL, NULL},
};

const struct rdx_cli_group rdx_cli_group_pki = {
    .name = "pki",
    .summary = "Network PKI: the CA and institution certificates",
    .verbs = verbs,
    .nverbs = sizeof verbs / sizeof verbs[0] - 1,
};
