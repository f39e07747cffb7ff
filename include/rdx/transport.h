/*
 * rdx/transport.h - the transport engine: the network's PKI (certificate
 * authority, institution certificates, revocation), the wire framing between
 * nodes, and (as it lands) the mutually authenticated node itself.
 *
 * All handles are opaque; each _new/_open has a matching _free, and _free(NULL)
 * is a no-op. Functions return rdx_status and fill a caller's rdx_error with a
 * message naming the file, field or byte offset that is wrong; err may be NULL.
 * One handle must not be used by two threads at once; distinct handles are
 * independent. Nothing here prints: diagnostics go to the caller's rdx_logger.
 */
#ifndef RDX_TRANSPORT_H
#define RDX_TRANSPORT_H

#include "rdx/common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== PKI: the network certificate authority (transport/pki*.c) ========== */

/*
 * A certificate authority directory DIR holds:
 *   DIR/ca.key            the CA's ECDSA P-256 private key (PKCS#8 PEM, mode 0600)
 *   DIR/ca.crt            the self-signed CA certificate (PEM)
 *   DIR/ca.db             the CA database (SQLite): every certificate issued and its state
 *   DIR/crl.pem           the current certificate revocation list (PEM, X.509 v2 CRL)
 *   DIR/certs/ID.crt      the newest certificate of institution ID (PEM)
 *   DIR/private/ID.key    its private key (PKCS#8 PEM, mode 0600, directory mode 0700)
 * Every file is written atomically (temporary file, fsync, rename, fsync of
 * the directory), so a crash leaves the old file or the new one, never half.
 */
typedef struct rdx_transport_ca rdx_transport_ca;

/* The SAN URI prefix that names an institution in its certificate. */
#define RDX_TRANSPORT_INST_URI_PREFIX "urn:rdx:inst:"

typedef struct rdx_transport_ca_cfg {
    const char *dir;     /* CA directory; created (mode 0700) if absent, parent must exist */
    const char *network; /* network name, UTF-8, 1..52 characters: the CA's O and CN */
    int days;            /* CA validity in days; 0 means RDX_TRANSPORT_CA_DAYS_DEFAULT */
} rdx_transport_ca_cfg;

/*
 * Create a new network CA in cfg->dir: key, self-signed certificate (CA:TRUE,
 * pathlen 0, keyCertSign+cRLSign), database and an empty CRL.
 * Errors: RDX_EINVAL for a bad name or days; RDX_EEXIST when the directory
 * already holds a CA; RDX_EIO when a file cannot be written (err names it).
 * Thread safety: do not run two creates on the same directory at once.
 */
rdx_status rdx_transport_ca_create(const rdx_transport_ca_cfg *cfg, rdx_error *err);

/*
 * Open an existing CA directory: load and check its key (refused when group
 * or others may read it), certificate and database. *out is set only on
 * success; free it with rdx_transport_ca_free.
 * Errors: RDX_ENOENT when dir holds no CA, RDX_EAUTH when the key file is too
 * open or does not match the certificate, RDX_EPARSE for unreadable files,
 * RDX_EDB for a damaged database.
 */
rdx_status rdx_transport_ca_open(const char *dir, rdx_transport_ca **out, rdx_error *err);

/* Close the CA, wiping its private key from memory. NULL is a no-op. */
void rdx_transport_ca_free(rdx_transport_ca *ca);

/* The network name recorded when the CA was created; owned by ca. */
const char *rdx_transport_ca_network(const rdx_transport_ca *ca);

typedef struct rdx_transport_issue_cfg {
    const char *institution; /* ID: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-' */
    const char *name;        /* institution name, UTF-8, 1..64 characters: the subject O */
    const char *city;        /* city, UTF-8, 1..128 characters: the subject L */
    int days;                /* validity in days; 0 means RDX_TRANSPORT_CERT_DAYS_DEFAULT */
    /*
     * Start of validity as Unix seconds; 0 means now. Only tests and
     * migrations need anything else (an already-expired certificate).
     */
    int64_t not_before_unix;
} rdx_transport_issue_cfg;

/* What an issue produced (plain values, nothing to free). */
typedef struct rdx_transport_issued {
    char serial[64];      /* upper-case hex, no separators */
    char cert_path[4096]; /* DIR/certs/ID.crt */
    char key_path[4096];  /* DIR/private/ID.key */
    int64_t not_before_unix;
    int64_t not_after_unix;
} rdx_transport_issued;

/*
 * Issue a new key and certificate for an institution: ECDSA P-256, a random
 * 128-bit serial, subject C=CN/L=city/O=name/CN=ID, SAN URI urn:rdx:inst:ID,
 * basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
 * serverAuth+clientAuth, subject and authority key identifiers. The key is
 * written with mode 0600 and wiped from memory. out may be NULL.
 * Errors: RDX_EINVAL for a bad field (err names it); RDX_EEXIST when the
 * institution already holds a valid, unrevoked certificate (revoke it first);
 * RDX_EIO / RDX_EDB when storing fails, in which case nothing is recorded.
 */
rdx_status rdx_transport_ca_issue(rdx_transport_ca *ca, const rdx_transport_issue_cfg *cfg,
                                  rdx_transport_issued *out, rdx_error *err);

/* RFC 5280 section 5.3.1 CRLReason codes that rdx accepts. */
typedef enum rdx_transport_revoke_reason {
    RDX_TRANSPORT_REVOKE_UNSPECIFIED = 0,
    RDX_TRANSPORT_REVOKE_KEY_COMPROMISE = 1,
    RDX_TRANSPORT_REVOKE_AFFILIATION_CHANGED = 3,
    RDX_TRANSPORT_REVOKE_SUPERSEDED = 4,
    RDX_TRANSPORT_REVOKE_CESSATION = 5
} rdx_transport_revoke_reason;

/*
 * Parse a reason name ("unspecified", "keyCompromise", "affiliationChanged",
 * "superseded", "cessationOfOperation"). RDX_EINVAL for anything else.
 */
rdx_status rdx_transport_revoke_reason_parse(const char *s, rdx_transport_revoke_reason *out);

/*
 * Revoke certificates: the one with serial (hex, any case, ':' allowed) when
 * serial is not NULL, else every unrevoked certificate of institution. Then
 * publish a new CRL valid for crl_days (0: the default). *count (may be NULL)
 * gets how many certificates were revoked by this call.
 * Errors: RDX_EINVAL for a bad serial or ID, RDX_ENOTFOUND when nothing
 * matches, RDX_ESTATE when the serial is already revoked.
 */
rdx_status rdx_transport_ca_revoke(rdx_transport_ca *ca, const char *institution,
                                   const char *serial, rdx_transport_revoke_reason reason,
                                   int crl_days, size_t *count, rdx_error *err);

/*
 * Publish DIR/crl.pem afresh: every revoked certificate, a new CRL number,
 * thisUpdate now, nextUpdate in days (0: the default), signed by the CA.
 * *number (may be NULL) gets the CRL number; *revoked (may be NULL) the entry count.
 */
rdx_status rdx_transport_ca_crl_publish(rdx_transport_ca *ca, int days, int64_t *number,
                                        size_t *revoked, rdx_error *err);

/*
 * As rdx_transport_ca_crl_publish, with the validity in seconds: nextUpdate is
 * valid_s seconds after thisUpdate (now). valid_s is 1 .. 366 days' worth of
 * seconds (31,622,400); 0 means the default, 7 days. A short-lived CRL (hours, `rdx pki crl
 * --hours N`) narrows the window in which a stolen copy of an old CRL can hide
 * a revocation, at the price of publishing it more often: a node refuses every
 * peer once its CRL is past nextUpdate (see docs/transport.md).
 * Errors: RDX_EINVAL for a NULL ca or valid_s out of range; RDX_EDB, RDX_EIO as
 * rdx_transport_ca_crl_publish. Not thread-safe on one ca handle.
 */
rdx_status rdx_transport_ca_crl_publish_v2(rdx_transport_ca *ca, int64_t valid_s, int64_t *number,
                                           size_t *revoked, rdx_error *err);

/* What rdx_transport_cert_verify learnt about a certificate. */
typedef struct rdx_transport_cert_info {
    char institution[65]; /* from the SAN URI urn:rdx:inst:ID */
    char serial[64];      /* upper-case hex */
    int64_t not_after_unix;
} rdx_transport_cert_info;

/*
 * Verify the PEM certificate at cert_path as a node would verify a peer:
 * chain to the CA certificate at ca_path (X509_verify_cert), checked against
 * the CRL at crl_path (which must be present and current), for TLS client
 * and server use, naming exactly one institution. info may be NULL.
 * Errors: RDX_EAUTH with err giving OpenSSL's verdict ("certificate revoked",
 * "certificate has expired", "unable to get local issuer certificate");
 * RDX_ENOENT / RDX_EPARSE for missing or unreadable files.
 */
rdx_status rdx_transport_cert_verify(const char *ca_path, const char *crl_path,
                                     const char *cert_path, rdx_transport_cert_info *info,
                                     rdx_error *err);

/*
 * Check that s is a valid institution ID (see rdx_transport_issue_cfg).
 * Returns RDX_OK or RDX_EINVAL with err naming the problem; what names the
 * field in the message ("institution").
 */
rdx_status rdx_transport_inst_id_check(const char *s, const char *what, rdx_error *err);

/* ==== Framing (transport/frame.c) ======================================== */

/*
 * Every message between nodes is one frame: an 8-byte header, big-endian,
 *   offset 0  magic   2 bytes 'R' 'X'
 *          2  version 1 byte  (RDX_TRANSPORT_FRAME_VERSION)
 *          3  type    1 byte  (rdx_transport_frame_type)
 *          4  length  4 bytes payload length
 * followed by length payload bytes. Each type has its own ceiling on length
 * (see transport/transport_limits.h), checked from the header alone, before a
 * byte of the payload is buffered; nothing is larger than one chunk.
 */
#define RDX_TRANSPORT_FRAME_VERSION 4
#define RDX_TRANSPORT_FRAME_HDR     8

typedef enum rdx_transport_frame_type {
    RDX_FRAME_HELLO = 1,    /* either side: protocol features (identity comes from TLS) */
    RDX_FRAME_OFFER = 2,    /* sender: a case manifest */
    RDX_FRAME_PROGRESS = 3, /* receiver: how much of each item is already durable */
    RDX_FRAME_CHUNK = 4,    /* sender: one chunk of one item, with its SHA-256 */
    RDX_FRAME_COMMIT = 5,   /* sender: every item sent; make the case durable */
    RDX_FRAME_ACK = 6,      /* receiver: the named case is durable */
    RDX_FRAME_REFUSE = 7,   /* either side: a refusal with a reason; the case is not taken */
    RDX_FRAME_PING = 8,     /* either side: keepalive, answered by PONG */
    RDX_FRAME_PONG = 9
} rdx_transport_frame_type;

/* Static name of a frame type ("CHUNK"), or NULL when it is not one. */
const char *rdx_transport_frame_type_name(unsigned type);

/* Largest payload a frame of this type may carry; 0 for an unknown type. */
size_t rdx_transport_frame_type_max(unsigned type);

/*
 * Append one frame (header and payload) to out. RDX_EINVAL for an unknown
 * type, RDX_ELIMIT when len passes the type's ceiling or out's cap; out is
 * unchanged on failure. payload may be NULL when len is 0.
 */
rdx_status rdx_transport_frame_encode(rdx_buf *out, unsigned type, const void *payload, size_t len,
                                      rdx_error *err);

/* Write the 8-byte header of a frame; same checks as rdx_transport_frame_encode. */
rdx_status rdx_transport_frame_header(uint8_t hdr[RDX_TRANSPORT_FRAME_HDR], unsigned type,
                                      size_t len, rdx_error *err);

/* A decoded frame. payload points into the decoder and stays valid until its next call. */
typedef struct rdx_transport_frame {
    unsigned type;
    size_t len;
    const uint8_t *payload;
} rdx_transport_frame;

/*
 * An incremental decoder: bytes in, in any chunking, frames out. It holds at
 * most one header and one payload of at most max_payload bytes (and never
 * more than a type's own ceiling), whatever the peer sends.
 */
typedef struct rdx_transport_decoder rdx_transport_decoder;

/*
 * Make a decoder whose payloads may be at most max_payload bytes (0 means
 * RDX_TRANSPORT_FRAME_MAX; larger values are clamped to it). No payload
 * memory is allocated until a frame needs it. Free with _decoder_free.
 */
rdx_status rdx_transport_decoder_new(size_t max_payload, rdx_transport_decoder **out,
                                     rdx_error *err);
/* Free a decoder and its buffer. NULL is a no-op. */
void rdx_transport_decoder_free(rdx_transport_decoder *d);

/*
 * Feed n bytes. Consumes bytes up to the end of the first frame completed (or
 * all n): *used says how many. When a frame is complete, *got is 1 and *frame
 * describes it; call again with the rest. Errors (RDX_EPROTO bad magic,
 * version or type; RDX_ELIMIT oversize length; RDX_ENOMEM) are sticky: the
 * decoder refuses all further input, since the stream has lost its framing.
 * err names the stream offset of the offending frame.
 */
rdx_status rdx_transport_decoder_feed(rdx_transport_decoder *d, const void *p, size_t n,
                                      size_t *used, rdx_transport_frame *frame, int *got,
                                      rdx_error *err);

/*
 * Zero-copy input, the alternative to _feed for a reader that can put bytes
 * where it is told (such as SSL_read): _space says where the next bytes go
 * (*p) and at most how many (*n, never past the end of the current header or
 * payload, always > 0); write up to *n bytes there, then _commit how many
 * were written. _commit checks a completed header as _feed does and, when a
 * frame is complete, sets *got and *frame. The payload of a chunk of 1 MiB or
 * more starts on a 4 KiB boundary. Errors are those of _feed, plus RDX_EINVAL
 * for a commit larger than the space given; the pointer from _space is valid
 * until the next call on the decoder.
 */
rdx_status rdx_transport_decoder_space(rdx_transport_decoder *d, uint8_t **p, size_t *n,
                                       rdx_error *err);
rdx_status rdx_transport_decoder_commit(rdx_transport_decoder *d, size_t n,
                                        rdx_transport_frame *frame, int *got, rdx_error *err);

/*
 * The stream has ended: RDX_OK when it ended between frames, RDX_ESHORT when
 * it stopped inside a header or payload (err says where).
 */
rdx_status rdx_transport_decoder_finish(const rdx_transport_decoder *d, rdx_error *err);

/* Bytes of the current, unfinished frame held so far (0 between frames). */
size_t rdx_transport_decoder_pending(const rdx_transport_decoder *d);

/* Bytes of payload memory the decoder holds now (for the per-connection budget). */
size_t rdx_transport_decoder_footprint(const rdx_transport_decoder *d);

/*
 * Take the payload of the frame the last _feed delivered, without copying:
 * its bytes move into *out, and the decoder goes on in the memory *out held
 * before (emptied), so a stream of chunks alternates between two buffers
 * instead of allocating one per frame. *out must be initialised (rdx_buf_init)
 * and owned by the caller, who frees it with rdx_buf_free. The memory given
 * is kept for the next payloads whatever the frame taken was, so a caller can
 * also hand the decoder a large buffer ahead of the chunks it expects (or
 * take one back, giving an empty rdx_buf). The frame's payload pointer is then
 * valid in out->data, not in the decoder. RDX_EINVAL when no frame was just
 * delivered.
 */
rdx_status rdx_transport_decoder_take(rdx_transport_decoder *d, rdx_buf *out, rdx_error *err);

/*
 * Keep the payload memory across the frame the last _feed or _commit
 * delivered even though it was not a chunk (the decoder otherwise gives a
 * chunk-sized buffer back after such a frame), for a caller that knows more
 * chunks follow. RDX_EINVAL when no frame was just delivered.
 */
rdx_status rdx_transport_decoder_keep(rdx_transport_decoder *d, rdx_error *err);

/* ==== Node configuration (transport/node_config.c) ======================= */

/*
 * A node's INI file (libinih syntax; relative paths are relative to the
 * file's directory):
 *
 *   [node]
 *   id = ndth                         ; this institution's ID (as in its certificate)
 *   listen = 127.0.0.1:7001           ; IPv4 address:port; port 0 picks a free one
 *   cert = pki/certs/ndth.crt
 *   key = pki/private/ndth.key        ; mode 0600
 *   ca = pki/ca.crt
 *   crl = pki/crl.pem                 ; reloaded after it changes; expired: every
 *                                     ; new connection is refused (docs/transport.md)
 *   data = data/ndth                  ; node.db (SQLite, WAL), inbox/, outbox/
 *   handshake_timeout_ms = 10000      ; optional tuning, with these defaults
 *   read_timeout_ms = 30000           ; a frame must keep arriving at least this often
 *   idle_timeout_ms = 120000          ; a connection with nothing in flight is closed
 *   max_connections = 1024
 *   chunk_size = 4194304              ; 1 MiB .. 8 MiB
 *   max_attempts = 10                 ; deliveries before a case is dead-lettered
 *   retry_base_ms = 500               ; backoff: base * 2^attempt, capped at retry_max_ms
 *   retry_max_ms = 60000
 *   spill_delay_ms = 500              ; 0..60000: small items received are acknowledged
 *                                     ; from node.db; their files are written this long
 *                                     ; after the commit, so that a burst shares a batch
 *   spill_checkpoint_ms = 2000        ; 100..600000: written files are synced (one syncfs)
 *                                     ; and their node.db copies dropped once the spill
 *                                     ; has been quiet this long (at the latest 15 s, or
 *                                     ; this, after the first)
 *   senders = 4                       ; delivery threads (1..64), each serving one peer at a time
 *   hash_nice = 0                     ; 0..19: the nice value of the two threads that check
 *                                     ; large chunks; above 0 the event loop comes first,
 *                                     ; and other programs too (docs/transport.md)
 *
 *   [peers]                           ; where to deliver: ID = host:port
 *   jsph = 127.0.0.1:7002
 *
 *   [allow.send]                      ; who may send which case kinds to this node
 *   jsph = ecg, lab-result            ; kinds: ecg dicom lab-order lab-result report other, or *
 *
 *   [allow.fetch]                     ; who may fetch which kinds from this node
 *   jsph = report
 *
 * Anything not allowed is denied. Unknown sections or keys are errors, so a
 * typo cannot silently open or close the node.
 */
typedef struct rdx_transport_config rdx_transport_config;

/* Case kinds, as a bit set for policies. */
typedef enum rdx_transport_kind {
    RDX_KIND_ECG = 1 << 0,
    RDX_KIND_DICOM = 1 << 1,
    RDX_KIND_LAB_ORDER = 1 << 2,
    RDX_KIND_LAB_RESULT = 1 << 3,
    RDX_KIND_REPORT = 1 << 4,
    RDX_KIND_OTHER = 1 << 5
} rdx_transport_kind;

/* Parse a kind name ("lab-order"); RDX_EINVAL when it is not one. */
rdx_status rdx_transport_kind_parse(const char *s, size_t n, rdx_transport_kind *out);
/* Static name of a kind, or NULL. */
const char *rdx_transport_kind_name(rdx_transport_kind k);

/*
 * Load and check a node configuration. err names the file and line of the
 * first problem ("node.ini:7: [allow.send] jsph: unknown kind 'ekg'").
 * *out is set only on success; free with rdx_transport_config_free.
 */
rdx_status rdx_transport_config_load(const char *path, rdx_transport_config **out, rdx_error *err);
/* Free a configuration. NULL is a no-op. */
void rdx_transport_config_free(rdx_transport_config *cfg);

/*
 * Replace cfg's [peers] table with the one its file holds now (the file is
 * read and checked whole, as by rdx_transport_config_load; nothing else of
 * cfg changes). For a node started on port 0 whose peers' ports are written
 * into its configuration only once every node has bound (`rdx network up`).
 * Call it before rdx_transport_node_run: it is not safe while the node's
 * delivery thread runs. On error cfg is unchanged. Errors: as
 * rdx_transport_config_load.
 */
rdx_status rdx_transport_config_reload_peers(rdx_transport_config *cfg, rdx_error *err);
/* This node's ID and data directory (owned by cfg). */
const char *rdx_transport_config_id(const rdx_transport_config *cfg);
const char *rdx_transport_config_data_dir(const rdx_transport_config *cfg);

/*
 * Whether institution inst may send (fetch == 0) or fetch (fetch != 0) cases
 * of kind to/from this node. Default deny.
 */
int rdx_transport_policy_allows(const rdx_transport_config *cfg, int fetch, const char *inst,
                                rdx_transport_kind kind);

/* ==== The node (transport/node*.c) ======================================= */

/*
 * One institution's node: a TLS 1.3 server on a libevent loop (a
 * non-blocking SSL per connection) that accepts cases from member institutions, and a
 * delivery thread that sends this node's outbox to its peers. All state is in
 * DATA/node.db and DATA/inbox, DATA/outbox.
 */
typedef struct rdx_transport_node rdx_transport_node;

/*
 * Make a node from cfg (which must outlive it): open the store, load the
 * certificate, key, CA and CRL, and bind the listening socket (so the port is
 * known, see _port, before _run). Logs go to log (may be NULL: silent).
 * Errors name the file or address at fault.
 */
rdx_status rdx_transport_node_new(const rdx_transport_config *cfg, const rdx_logger *log,
                                  rdx_transport_node **out, rdx_error *err);

/* The TCP port the node listens on (useful with listen = host:0). */
unsigned rdx_transport_node_port(const rdx_transport_node *n);

/*
 * Serve and deliver until rdx_transport_node_stop is called or SIGINT/SIGTERM
 * arrives (when handle_signals is nonzero). Returns RDX_OK on a clean stop.
 */
rdx_status rdx_transport_node_run(rdx_transport_node *n, int handle_signals, rdx_error *err);

/* Ask a running node to stop; safe to call from another thread. */
void rdx_transport_node_stop(rdx_transport_node *n);

/* Free a stopped node. NULL is a no-op. */
void rdx_transport_node_free(rdx_transport_node *n);

/* ==== Cases (transport/case.c) =========================================== */

/* 32 hex digits and a NUL. */
#define RDX_TRANSPORT_CASE_ID_LEN 33

/*
 * Queue a case for institution to: copy each file into the outbox (hashing
 * it), record the manifest and return its new ID. The running node delivers
 * it. Item names are the files' base names and must be unique.
 * Errors: RDX_EINVAL (unknown peer, bad kind, bad or repeated name),
 * RDX_ENOENT / RDX_EIO for the files, RDX_EDB for the store.
 */
rdx_status rdx_transport_case_queue(const rdx_transport_config *cfg, const char *to,
                                    rdx_transport_kind kind, const char *const *files,
                                    size_t nfiles, char case_id[RDX_TRANSPORT_CASE_ID_LEN],
                                    rdx_error *err);

/* One outbox or inbox entry, as rdx_transport_case_list reports it. */
typedef struct rdx_transport_case_info {
    int inbox; /* 1: received here; 0: sent from here */
    char case_id[65];
    char peer[65]; /* recipient (outbox) or sender (inbox) */
    char kind[16];
    char state[16];       /* outbox: queued acked dead; inbox: receiving complete */
    int attempts;         /* outbox: deliveries tried */
    char last_error[256]; /* outbox: why the last attempt failed */
    size_t items;
    uint64_t bytes;   /* total item bytes */
    uint64_t durable; /* inbox: bytes durable so far */
    int64_t created_ms;
    int64_t done_ms; /* acknowledged / completed; 0 if not */
} rdx_transport_case_info;

/*
 * Call fn for each outbox (which & 1) and inbox (which & 2) entry, oldest
 * first. fn returns nonzero to stop.
 */
rdx_status rdx_transport_case_list(const rdx_transport_config *cfg, int which,
                                   int (*fn)(void *u, const rdx_transport_case_info *c), void *u,
                                   rdx_error *err);

/*
 * Send a dead-lettered case again: it goes back to the outbox as queued,
 * with its attempts counted from zero, once whatever refused it is fixed
 * (a policy entry, a peer's address). Its spool copy must still be there.
 * Writes a case-requeued audit record. Errors: RDX_ENOTFOUND (no such
 * outbox case), RDX_ESTATE (not dead: queued or already acknowledged),
 * RDX_ENOENT (its spool copy is gone), RDX_EDB.
 */
rdx_status rdx_transport_case_requeue(const rdx_transport_config *cfg, const char *case_id,
                                      rdx_error *err);

/*
 * Copy a completely received case's items into outdir (which must exist) as
 * outdir/NAME, verifying each item's SHA-256 again on the way. from (may be
 * NULL) names the sender when the ID alone is ambiguous. Existing files are
 * never replaced (RDX_EEXIST). Writes an audit record.
 */
rdx_status rdx_transport_case_fetch(const rdx_transport_config *cfg, const char *case_id,
                                    const char *from, const char *outdir, size_t *nitems,
                                    rdx_error *err);

/* ==== Audit (transport/audit.c) ========================================== */

/* One audit record (IHE ATNA / DICOM PS3.15 A.5 fields). */
typedef struct rdx_transport_audit_record {
    long long seq;
    int64_t time_ms;
    char event[48];       /* "connection-refused", "case-received", ... */
    int outcome;          /* EventOutcomeIndicator: 0 success, 4 minor, 8 serious failure */
    char node[65];        /* the node that wrote it */
    char institution[65]; /* the participant: peer institution */
    char object[128];     /* a case ID or "tcp:ADDR" */
    char detail[1024];
    char hash[65]; /* SHA-256 over the previous hash and this record */
} rdx_transport_audit_record;

/*
 * Call fn for every audit record of the node, in order; fn returns nonzero
 * to stop. Errors: RDX_EDB.
 */
rdx_status rdx_transport_audit_list(const rdx_transport_config *cfg,
                                    int (*fn)(void *u, const rdx_transport_audit_record *r),
                                    void *u, rdx_error *err);

/*
 * Check the node's audit chain: RDX_OK with *records, or RDX_ECHECKSUM with
 * err naming the first broken record (its sequence number in *bad_seq).
 */
rdx_status rdx_transport_audit_verify(const rdx_transport_config *cfg, long long *records,
                                      long long *bad_seq, rdx_error *err);

/* ==== The inbox as a work queue (transport/inbox.c) ====================== */

/*
 * A node that processes what it receives (the hub's dispatcher) takes
 * completely received inbox cases one at a time and completes each with the
 * cases it produces: rdx_transport_inbox_complete stages every output in the
 * outbox and marks the inbox case processed in one SQLite transaction, so
 * either all of it is durable or none is, and a crash in between is repaired
 * by doing the work again. Output case IDs derive from the inbox case, so
 * staging again after a crash yields the same IDs; nothing is sent twice.
 * A failure is retried with backoff, then parked with its error; the other
 * cases go on. The state is in node.db (tables dispatch, dispatch_out).
 */

/* At most this many output cases from one inbox case (a lab order to every lab, and a notice). */
#define RDX_TRANSPORT_DISPATCH_OUTPUTS_MAX 32

/* An inbox case waiting to be processed. */
typedef struct rdx_transport_inbox_case {
    char sender[65];
    char case_id[65];
    char kind[16];
    int attempts; /* failed attempts so far */
} rdx_transport_inbox_case;

/*
 * Fill out with at most max completely received cases that are neither
 * processed nor parked and whose retry time (if any) is at or before now_ms,
 * oldest first; *n gets the count. Errors: RDX_EDB.
 */
rdx_status rdx_transport_inbox_pending(const rdx_transport_config *cfg, int64_t now_ms,
                                       rdx_transport_inbox_case *out, size_t max, size_t *n,
                                       rdx_error *err);

/*
 * Path of item idx of a received case in this node's inbox spool (read-only
 * for the caller; the manifest's hash was checked on receipt). Checks sender
 * and case ID. A small item that the node still holds in node.db only (its
 * file is written shortly after the case arrives) is written out, durably,
 * before this returns. Errors: RDX_EINVAL, RDX_EDB, RDX_EIO.
 */
rdx_status rdx_transport_inbox_item_path(const rdx_transport_config *cfg, const char *sender,
                                         const char *case_id, size_t idx, char *out, size_t outsz,
                                         rdx_error *err);

/* One case this node produces from an inbox case. */
typedef struct rdx_transport_output {
    const char *to; /* a [peers] entry */
    rdx_transport_kind kind;
    const char *const *files; /* item names are the base names, unique */
    size_t nfiles;
} rdx_transport_output;

/*
 * Complete an inbox case: queue every output (nouts may be 0) and mark the
 * case processed, atomically, with a case-queued audit record per output and
 * one case-processed record (detail is added to it; may be NULL). A case
 * already processed is left alone with *already = 1 (already may be NULL).
 * Errors: RDX_ENOTFOUND / RDX_ESTATE (no such complete case), RDX_EINVAL (a
 * bad output: unknown peer, bad name), RDX_EIO, RDX_EDB; on any error
 * nothing is queued and the case stays pending.
 */
rdx_status rdx_transport_inbox_complete(const rdx_transport_config *cfg, const char *sender,
                                        const char *case_id, const rdx_transport_output *outs,
                                        size_t nouts, const char *detail, int *already,
                                        rdx_error *err);

/*
 * Record a failed attempt at an inbox case with its reason: it is retried
 * after retry_ms * 2^(attempts-1) (retry_ms <= 0: 1 s), or parked for good
 * once max_attempts attempts have failed (*parked = 1; parked may be NULL).
 * Writes a case-retry or case-parked audit record. Errors: RDX_ESTATE when
 * the case is already processed or parked; RDX_EDB.
 */
rdx_status rdx_transport_inbox_fail(const rdx_transport_config *cfg, const char *sender,
                                    const char *case_id, const char *why, int max_attempts,
                                    int64_t retry_ms, int *parked, rdx_error *err);

/* Where an inbox case is on its journey. */
typedef struct rdx_transport_dispatch_info {
    char sender[65];
    char case_id[65];
    char kind[16];
    /* receiving, received, retry, parked, processed, replied (every output acknowledged) */
    char state[16];
    int attempts;
    char last_error[256];
    char detail[1024];
    int outputs;       /* cases it produced */
    int outputs_acked; /* of which acknowledged by their recipients */
    int64_t done_ms;   /* when it was processed; 0 if not */
} rdx_transport_dispatch_info;

/* Call fn for every inbox case with its journey, oldest first; fn returns nonzero to stop. */
rdx_status rdx_transport_dispatch_list(const rdx_transport_config *cfg,
                                       int (*fn)(void *u, const rdx_transport_dispatch_info *d),
                                       void *u, rdx_error *err);

/* Nonzero when cfg has a [peers] entry for id (a case can be queued for it). */
int rdx_transport_config_has_peer(const rdx_transport_config *cfg, const char *id);

/* The file a configuration was loaded from (owned by cfg), for sections other readers parse. */
const char *rdx_transport_config_path(const rdx_transport_config *cfg);

/*
 * Check the audit chain of the node whose data directory is data_dir (no
 * configuration needed; for `rdx audit verify DIR`). As rdx_transport_audit_verify;
 * RDX_ENOENT when data_dir holds no node.db.
 */
rdx_status rdx_transport_audit_verify_dir(const char *data_dir, long long *records,
                                          long long *bad_seq, rdx_error *err);

/*
 * rdx_transport_audit_list for the node whose data directory is data_dir (no
 * configuration needed; for `rdx audit show DIR`). RDX_ENOENT when data_dir
 * holds no node.db; otherwise as rdx_transport_audit_list.
 */
rdx_status rdx_transport_audit_list_dir(const char *data_dir,
                                        int (*fn)(void *u, const rdx_transport_audit_record *r),
                                        void *u, rdx_error *err);

/*
 * Append one audit record to the node's chain (for components beside the
 * transport, such as the dispatcher: "fetch-refused", ...). outcome is 0, 4 or 8.
 */
rdx_status rdx_transport_audit_append(const rdx_transport_config *cfg, const char *event,
                                      int outcome, const char *inst, const char *object,
                                      const char *detail, rdx_error *err);

/*
 * Every case the dispatcher produces carries an item of this name holding
 * the ID of the case it answers and a newline, so the original sender can
 * tell which received case is the reply to which sent one.
 */
#define RDX_TRANSPORT_REPLY_ITEM "in-reply-to.txt"

/*
 * Find the completely received case (from from, or anyone when from is NULL)
 * that answers case_id: its RDX_TRANSPORT_REPLY_ITEM names case_id. reply_id
 * gets its ID. RDX_ENOTFOUND when none has arrived yet.
 */
rdx_status rdx_transport_inbox_find_reply(const rdx_transport_config *cfg, const char *from,
                                          const char *case_id, char reply_id[65], rdx_error *err);

#ifdef __cplusplus
}
#endif

#endif /* RDX_TRANSPORT_H */
