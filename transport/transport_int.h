/*
 * transport_int.h - helpers shared by the transport's sources and its own
 * unit tests; never included from outside transport/.
 */
#ifndef RDX_TRANSPORT_INT_H
#define RDX_TRANSPORT_INT_H

#include "rdx/common.h"
#include "rdx/transport.h"

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/*
 * Like rdx_file_write_atomic, but the file is created with exactly mode (the
 * temporary file too, so a private key is never readable by others even for
 * a moment), and an existing file is replaced only when replace is nonzero.
 */
rdx_status rdx_tp_write_file(const char *path, const void *data, size_t len, mode_t mode,
                             int replace, rdx_error *err);

/*
 * Append OpenSSL's error queue (most recent reason) to a message and clear
 * it: sets err to code with "what: reason". Returns code.
 */
rdx_status rdx_tp_ossl_error(rdx_error *err, rdx_status code, const char *what);

/* snprintf into out; RDX_EINVAL naming the path when it does not fit. */
rdx_status rdx_tp_path(char *out, size_t outsz, rdx_error *err, const char *fmt, ...)
    RDX_PRINTF(4, 5);

/*
 * One version of a file, told apart cheaply (one stat): a CRL rewritten in
 * place changes its size or mtime, one renamed over it (rdx pki crl) its inode.
 */
struct rdx_tp_file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};
/* stat path into *id (zeroed on failure). 0, or -1 with errno. */
int rdx_tp_file_id_get(const char *path, struct rdx_tp_file_id *id);
/* Whether a and b are the same version of a file. */
int rdx_tp_file_id_same(const struct rdx_tp_file_id *a, const struct rdx_tp_file_id *b);
/* unix_s as "2026-12-01T09:30:00Z" in out; "?" when it is 0 or cannot be converted. */
void rdx_tp_time_text(int64_t unix_s, char *out, size_t outsz);

#endif /* RDX_TRANSPORT_INT_H */

/* ---- PKI store (transport/pki_store.c) ----------------------------------- */

typedef struct sqlite3 sqlite3;

/* A certificate as the CA database records it. */
struct rdx_tp_cert_row {
    char serial[64];
    char institution[65];
    int64_t not_before;
    int64_t not_after;
    int64_t revoked_at; /* 0 when not revoked */
    int reason;
};

/* Open (create when create != 0) DIR/ca.db in WAL mode with synchronous=FULL. */
rdx_status rdx_tp_store_open(const char *path, int create, sqlite3 **out, rdx_error *err);
void rdx_tp_store_close(sqlite3 *db);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
rdx_status rdx_tp_store_exec(sqlite3 *db, const char *sql, const char *path, rdx_error *err);
/* meta key/value table. get returns RDX_ENOTFOUND when absent. */
rdx_status rdx_tp_store_meta_get(sqlite3 *db, const char *k, char *out, size_t outsz,
                                 const char *path, rdx_error *err);
rdx_status rdx_tp_store_meta_set(sqlite3 *db, const char *k, const char *v, const char *path,
                                 rdx_error *err);
/* Serial of an unrevoked certificate of inst valid at now; RDX_ENOTFOUND when none. */
rdx_status rdx_tp_store_find_active(sqlite3 *db, const char *inst, int64_t now, char *serial,
                                    size_t serialsz, const char *path, rdx_error *err);
rdx_status rdx_tp_store_insert(sqlite3 *db, const struct rdx_tp_cert_row *row, const char *name,
                               const char *city, const char *path, rdx_error *err);
/* Look a serial up; RDX_ENOTFOUND when unknown. */
rdx_status rdx_tp_store_get(sqlite3 *db, const char *serial, struct rdx_tp_cert_row *row,
                            const char *path, rdx_error *err);
/* Mark revoked: one serial, or (serial NULL) every unrevoked certificate of inst. */
rdx_status rdx_tp_store_revoke(sqlite3 *db, const char *serial, const char *inst, int64_t when,
                               int reason, size_t *count, const char *path, rdx_error *err);
/* Call fn for every revoked certificate, in serial order; fn returns RDX_OK to go on. */
rdx_status rdx_tp_store_each_revoked(sqlite3 *db,
                                     rdx_status (*fn)(void *u, const struct rdx_tp_cert_row *r),
                                     void *u, const char *path, rdx_error *err);

/* ---- Certificates -------------------------------------------------------- */

typedef struct x509_st X509;

/*
 * The institution ID a certificate names: its one SAN URI that starts with
 * urn:rdx:inst:, checked with rdx_transport_inst_id_check. RDX_EAUTH when
 * there is none, more than one, or it is malformed.
 */
rdx_status rdx_tp_cert_institution(X509 *cert, char *out, size_t outsz, rdx_error *err);

typedef struct x509_store_st X509_STORE;
typedef struct evp_pkey_st EVP_PKEY;

/* ---- Private keys (transport/pki_key.c) ---------------------------------- */

/* A new ECDSA P-256 key. */
rdx_status rdx_tp_key_generate(EVP_PKEY **out, rdx_error *err);
/*
 * Write key as PKCS#8 PEM with mode 0600 (see rdx_tp_write_file for replace).
 * Every buffer that held the key is wiped; OpenSSL's encoders are not used.
 */
rdx_status rdx_tp_key_write(const char *path, EVP_PKEY *key, int replace, rdx_error *err);
/*
 * Load a P-256 PKCS#8 PEM key, refusing a file group or others may read
 * (RDX_EAUTH), and one whose private and public halves do not match.
 */
rdx_status rdx_tp_key_load(const char *path, EVP_PKEY **out, rdx_error *err);
typedef struct asn1_string_st ASN1_TIME;

/*
 * A trust store holding the CA certificate and the CRL, with CRL checking on
 * for every leaf (X509_V_FLAG_CRL_CHECK) and strict X.509 checks.
 */
rdx_status rdx_tp_trust_store(const char *ca_path, const char *crl_path, X509_STORE **out,
                              rdx_error *err);
/* Upper-case hex serial of x. */
rdx_status rdx_tp_cert_serial(X509 *x, char *out, size_t outsz);
/* An ASN1_TIME as Unix seconds (0 when it cannot be read). */
int64_t rdx_tp_asn1_time_unix(const ASN1_TIME *t);

/* ---- Node configuration (transport/node_config.c) ------------------------ */

struct rdx_tp_peer {
    char id[65];
    char host[256];
    char port[12];
};

struct rdx_tp_rule {
    char inst[65]; /* "*" for every member */
    unsigned kinds;
};

struct rdx_transport_config {
    char path[4096];
    char id[65];
    char listen_host[64];
    unsigned listen_port;
    char cert[4096], key[4096], ca[4096], crl[4096], data[4096];
    unsigned handshake_ms, read_ms, idle_ms, max_conns, chunk_size, max_attempts;
    unsigned retry_base_ms, retry_max_ms;
    unsigned spill_delay_ms, spill_checkpoint_ms; /* the small-item spill (transport/node.c) */
    unsigned senders;                             /* delivery threads */
    unsigned hash_nice; /* [node] hash_nice: the hash threads' nice value, 0..19 */
    struct rdx_tp_peer *peers;
    size_t npeers;
    struct rdx_tp_rule *send_rules, *fetch_rules;
    size_t nsend, nfetch;
};

/* The peer entry for id, or NULL. */
const struct rdx_tp_peer *rdx_tp_config_peer(const rdx_transport_config *cfg, const char *id);

/* ---- Messages (transport/msg.c) ------------------------------------------ */

#include "transport_limits.h"

struct rdx_tp_item {
    char name[RDX_TRANSPORT_ITEM_NAME_MAX + 1];
    uint64_t size;
    uint8_t sha256[32];
    /*
     * Sender side only, never encoded: the check value of each chunk
     * (rdx_tp_chunk_count entries of 32 bytes, see rdx_tp_chunk_check),
     * computed once when the case is queued; NULL when not known.
     */
    uint8_t *checks;
};

struct rdx_tp_manifest {
    char case_id[RDX_TRANSPORT_CASE_ID_MAX + 1];
    rdx_transport_kind kind;
    char sender[RDX_TRANSPORT_INST_ID_MAX + 1];
    char recipient[RDX_TRANSPORT_INST_ID_MAX + 1];
    int64_t created_ms;
    uint32_t chunk_size;
    size_t nitems;
    struct rdx_tp_item *items; /* owned; free with rdx_tp_manifest_clear */
};

/* Check an item name: one path component, no "..", NUL, '/', '\\', control bytes, leading '.'. */
rdx_status rdx_tp_item_name_check(const char *name, size_t n, rdx_error *err);
/* Check a case ID: 1..64 of [A-Za-z0-9_-]. */
rdx_status rdx_tp_case_id_check(const char *id, size_t n, rdx_error *err);

rdx_status rdx_tp_manifest_encode(const struct rdx_tp_manifest *m, rdx_buf *out, rdx_error *err);
/* Decode and check a manifest (untrusted bytes). On failure m is left empty. */
rdx_status rdx_tp_manifest_decode(const uint8_t *p, size_t n, struct rdx_tp_manifest *m,
                                  rdx_error *err);
void rdx_tp_manifest_clear(struct rdx_tp_manifest *m);

struct rdx_tp_chunk {
    char case_id[RDX_TRANSPORT_CASE_ID_MAX + 1];
    uint16_t item;
    uint64_t offset;
    uint8_t sha256[32];
    /* sha256: the chunk's check value (rdx_tp_chunk_check), not a digest of the chunk alone */
    /*
     * The chaining values at the ends of the chunk's link strides but the
     * last (rdx_tp_sha_links): nlinks is 0 (none sent) or the chunk's stride
     * count minus one.
     */
    unsigned nlinks;
    uint8_t links[(RDX_TRANSPORT_LINKS - 1) * 32];
    const uint8_t *data; /* points into the frame */
    size_t len;
};
/*
 * The chunk header (everything before the data) into out[RDX_TRANSPORT_CHUNK_HDR_MAX].
 * c->len, the data's length, decides the padding (see RDX_TRANSPORT_DATA_ALIGN).
 */
rdx_status rdx_tp_chunk_header(const struct rdx_tp_chunk *c, uint8_t *out, size_t *len,
                               rdx_error *err);
rdx_status rdx_tp_chunk_decode(const uint8_t *p, size_t n, struct rdx_tp_chunk *c, rdx_error *err);

/* PROGRESS: durable bytes of each item. */
rdx_status rdx_tp_progress_encode(const char *case_id, const uint64_t *done, size_t n, rdx_buf *out,
                                  rdx_error *err);
/* done gets at most max entries; *n the count. */
rdx_status rdx_tp_progress_decode(const uint8_t *p, size_t len, char *case_id, uint64_t *done,
                                  size_t max, size_t *n, rdx_error *err);

/* COMMIT and ACK carry the case ID (ACK also a duplicate flag). */
rdx_status rdx_tp_caseref_encode(const char *case_id, int flag, rdx_buf *out, rdx_error *err);
rdx_status rdx_tp_caseref_decode(const uint8_t *p, size_t len, char *case_id, int *flag,
                                 rdx_error *err);

/* Refusal codes: whether the sender may retry the same case later. */
enum rdx_tp_refuse_code {
    RDX_TP_REFUSE_POLICY = 1,   /* permanent: not allowed */
    RDX_TP_REFUSE_MANIFEST = 2, /* permanent: malformed or inconsistent manifest */
    RDX_TP_REFUSE_CONFLICT = 3, /* permanent: case ID reused with another manifest */
    RDX_TP_REFUSE_CHUNK = 4,    /* retry: a chunk failed its digest or was out of order */
    RDX_TP_REFUSE_ITEM = 5,     /* retry: an item failed its digest; it restarts */
    RDX_TP_REFUSE_STORAGE = 6,  /* retry: the receiver could not store (disk full) */
    RDX_TP_REFUSE_PROTOCOL = 7, /* retry: the message made no sense here */
    RDX_TP_REFUSE_INTERNAL = 8  /* retry */
};
int rdx_tp_refuse_permanent(unsigned code);
rdx_status rdx_tp_refuse_encode(const char *case_id, unsigned code, const char *reason,
                                rdx_buf *out, rdx_error *err);
rdx_status rdx_tp_refuse_decode(const uint8_t *p, size_t len, char *case_id, unsigned *code,
                                char *reason, size_t reasonsz, rdx_error *err);

/* ---- Chunk check values (transport/digest.c) ----------------------------- */

/*
 * Every chunk of an item carries a check value, and the receiver verifies it
 * before it writes the chunk: for the item's last chunk it is the item's
 * SHA-256 (the one in the manifest); for any other chunk it is the SHA-256
 * chaining value (the eight state words, big-endian) after the item's bytes
 * up to the end of that chunk. So one SHA-256 pass over an item checks each
 * chunk as it arrives and the whole item at its end, and a changed byte is
 * caught in the chunk that carries it. Chunk boundaries fall on multiples of
 * the chunk size, which is a multiple of 64 bytes (one SHA-256 block).
 */
struct rdx_tp_sha {
    _Alignas(16) unsigned char opaque[128]; /* an OpenSSL SHA256_CTX */
    uint64_t bytes;                         /* hashed so far */
};
void rdx_tp_sha_init(struct rdx_tp_sha *s);
void rdx_tp_sha_update(struct rdx_tp_sha *s, const void *p, size_t n);
/* The chaining value so far: -1 unless a whole number of 64-byte blocks was hashed. */
int rdx_tp_sha_chain(const struct rdx_tp_sha *s, uint8_t out[32]);
/*
 * Set s to stand after `bytes` bytes whose chaining value is chain (the
 * inverse of rdx_tp_sha_chain), so that a chunk can be hashed from the check
 * value its predecessor claims, before that one is checked. -1 (s untouched)
 * unless bytes is a multiple of 64.
 */
int rdx_tp_sha_resume(struct rdx_tp_sha *s, const uint8_t chain[32], uint64_t bytes);
/* The SHA-256 of everything hashed; s must be initialised again before reuse. */
void rdx_tp_sha_final(struct rdx_tp_sha *s, uint8_t out[32]);
/*
 * The check value of the chunk that ends where s stands, in an item of
 * item_size bytes: the final digest when s has hashed the whole item
 * (finalising s), else the chaining value. -1 when the chunk does not end on
 * a 64-byte block inside the item.
 */
int rdx_tp_chunk_check(struct rdx_tp_sha *s, uint64_t item_size, uint8_t out[32]);
/*
 * Hash a chunk of len bytes from s, which stands at the chunk's start on a
 * block boundary, checking its link values on the way: links holds nlinks
 * chaining values of 32 bytes, the values after each link stride of the
 * chunk but the last (stride = chunk size / RDX_TRANSPORT_LINKS). 0 when
 * every link value matched, and s then stands after the chunk, for
 * rdx_tp_chunk_check; -1 when one did not, or nlinks is neither 0 nor the
 * chunk's stride count minus one (s is then undefined).
 *
 * Each stride is hashed from the value claimed for its start, so the strides
 * can be hashed as independent streams: four at a time with the SHA
 * extensions (rdx_tp_sha256_ni), or sixteen in AVX-512 registers
 * (rdx_tp_sha256_x16). That is sound because every claimed value is itself
 * checked as the end of the stride before it: if all match, s ends exactly
 * where one serial pass over the chunk would. path picks the kernel:
 * RDX_TP_SHA_FASTEST the best this CPU has, the others force one (tests and
 * sha_bench compare them); a forced kernel this CPU lacks returns -1 with s
 * untouched. nlinks 0 is a plain rdx_tp_sha_update.
 */
enum rdx_tp_sha_path { RDX_TP_SHA_FASTEST, RDX_TP_SHA_SERIAL, RDX_TP_SHA_NI, RDX_TP_SHA_X16 };
int rdx_tp_sha_links(struct rdx_tp_sha *s, const uint8_t *data, size_t len, uint32_t stride,
                     const uint8_t *links, unsigned nlinks, enum rdx_tp_sha_path path);
/* The link stride of a chunk size: chunk_size / RDX_TRANSPORT_LINKS. */
uint32_t rdx_tp_link_stride(uint32_t chunk_size);
/*
 * Sixteen independent SHA-256 compression runs (transport/sha_x16.c): lane i
 * starts from state[i] (the eight words a..h) and compresses nblocks 64-byte
 * blocks from data[i]; state[i] gets the result. 0 when done; -1, state
 * untouched, when this CPU cannot (no AVX-512F and AVX-512BW, or not x86-64).
 * Thread-safe; no allocation.
 */
int rdx_tp_sha256_x16(uint32_t state[16][8], const uint8_t *const data[16], size_t nblocks);
/* Whether rdx_tp_sha256_x16 runs on this CPU. */
int rdx_tp_sha256_x16_available(void);
/*
 * The same with the SHA extensions (transport/sha_ni.c), for nlanes <= 16
 * lanes, four interleaved at a time: lane i starts from state[i] and
 * compresses nblocks blocks from data[i]. 0 when done; -1, state untouched,
 * when this CPU has no SHA extensions (or nlanes > 16). Thread-safe; no
 * allocation.
 */
int rdx_tp_sha256_ni(uint32_t state[][8], const uint8_t *const data[], size_t nlanes,
                     size_t nblocks);
/* Whether rdx_tp_sha256_ni runs on this CPU. */
int rdx_tp_sha256_ni_available(void);
/*
 * Chunk buffers a node keeps between cases (transport/tp_util.c). A fresh chunk
 * buffer costs its first touch: a page fault per 2 MiB page and the kernel
 * zeroing it (and, on a virtual machine, often the host backing it), about 30
 * ms for three 8 MiB buffers on the bench machine (perf: clear_page_erms on
 * the event loop, 5 % of a 512 MiB case). Medical cases are often tens of
 * megabytes, where that is as long as the transfer. So the buffers of a
 * finished case wait for the next one: at most RDX_TP_SPARES_MAX, as many as
 * one connection can use (its decoder's and its chunks at the store threads,
 * transport/node.c), until the node has gone a minute or two without a large
 * case (rdx_tp_spares_tick). Not thread-safe: the node's event loop alone
 * uses its spares.
 */
#define RDX_TP_SPARES_MAX 9
struct rdx_tp_spares {
    rdx_buf b[RDX_TP_SPARES_MAX];
    int n;
    int touched;          /* a buffer went in or out since the last rdx_tp_spares_tick */
    unsigned long reused; /* buffers handed out again by rdx_tp_spare_get */
};
/*
 * Keep b's memory if it is chunk-sized (at least RDX_TRANSPORT_ALIGN_MIN,
 * RDX_TRANSPORT_DATA_ALIGN-aligned, as the frame decoder makes them) and
 * fewer than RDX_TP_SPARES_MAX are kept, or in place of the smallest kept
 * when it is larger; free it otherwise. b is left empty (rdx_buf_init,
 * RDX_TRANSPORT_FRAME_MAX) either way.
 */
void rdx_tp_spare_put(struct rdx_tp_spares *sp, rdx_buf *b);
/*
 * An empty b (no memory) gets the largest kept buffer (of equals, the one put
 * last), emptied, if there is one; otherwise b is unchanged.
 */
void rdx_tp_spare_get(struct rdx_tp_spares *sp, rdx_buf *b);
/* Free every kept buffer. */
void rdx_tp_spares_free(struct rdx_tp_spares *sp);
/*
 * Called every RDX_TP_SPARES_IDLE_MS by the node: frees the kept buffers if
 * none went in or out since the previous call, so an idle node gives their
 * memory back one to two periods after its last large case. Returns how
 * many it freed.
 */
#define RDX_TP_SPARES_IDLE_MS 60000
int rdx_tp_spares_tick(struct rdx_tp_spares *sp);
/*
 * How many chunk buffers node n keeps now, how many it has handed out again
 * since it was made, and how many its connections' frame decoders allocated
 * (for tests). Only while the node does not run: its event loop alone
 * touches them.
 */
void rdx_tp_node_spares(const rdx_transport_node *n, int *kept, unsigned long *reused,
                        unsigned long *made);
/* How many aligned chunk buffers decoder d has allocated (frame.c). */
unsigned long rdx_tp_decoder_made(const rdx_transport_decoder *d);
/* SHA-256's 64 round constants (FIPS 180-4 section 4.2.2). */
extern const uint32_t rdx_tp_sha256_k[64];
/* Chunks of an item of size bytes: ceil(size / chunk_size). */
size_t rdx_tp_chunk_count(uint64_t size, uint32_t chunk_size);
/*
 * Every chunk's check value of an item held in memory (*n values of 32 bytes
 * in *out, the caller frees it). RDX_EINVAL when chunk_size is not a multiple
 * of 64, RDX_ENOMEM.
 */
rdx_status rdx_tp_chunk_checks(const uint8_t *data, uint64_t size, uint32_t chunk_size,
                               uint8_t **out, size_t *n, rdx_error *err);

/* ---- Staging cases (transport/case.c) ------------------------------------ */

/*
 * Copy files into DATA/outbox/ID/ and build the manifest (m, and its encoding
 * in blob) of a case for to; case_id NULL draws a random ID. Nothing is
 * recorded in node.db: rdx_tp_case_insert does that inside the caller's
 * transaction. On failure the spool is removed and m left empty.
 */
rdx_status rdx_tp_case_stage(const rdx_transport_config *cfg, const char *to,
                             rdx_transport_kind kind, const char *const *files, size_t nfiles,
                             const char *case_id, struct rdx_tp_manifest *m, rdx_buf *blob,
                             rdx_error *err);
/*
 * rdx_tp_case_stage for a node's own files, never rewritten in place (the
 * dispatcher's outputs, the hub's study archive): each is hard-linked into the
 * spool when it is on the same filesystem, copied otherwise.
 */
rdx_status rdx_tp_case_stage_linked(const rdx_transport_config *cfg, const char *to,
                                    rdx_transport_kind kind, const char *const *files,
                                    size_t nfiles, const char *case_id, struct rdx_tp_manifest *m,
                                    rdx_buf *blob, rdx_error *err);
/* Remove a staged spool DATA/outbox/ID (its nitems files and the directory). */
void rdx_tp_case_unstage(const rdx_transport_config *cfg, const char *case_id, size_t nitems);
/* Insert a staged case as 'queued' with its audit record; 1 on success. No BEGIN/COMMIT. */
int rdx_tp_case_insert(sqlite3 *db, const rdx_transport_config *cfg,
                       const struct rdx_tp_manifest *m, const rdx_buf *blob, rdx_error *err);

/* ---- Node store and audit (transport/node_store.c, transport/audit.c) --- */

/* Open (creating) DIR/node.db: WAL, synchronous=FULL, schema, append-only audit. */
rdx_status rdx_tp_node_db_open(const char *data_dir, sqlite3 **out, rdx_error *err);

/* DICOM PS3.15 A.5 / IHE ATNA EventOutcomeIndicator values. */
#define RDX_TP_OUTCOME_SUCCESS 0
#define RDX_TP_OUTCOME_MINOR   4
#define RDX_TP_OUTCOME_SERIOUS 8

/*
 * Append one audit record (event, outcome, this node, the institution acted
 * for or against, the object such as a case ID, and a detail sentence),
 * chained to the previous record by SHA-256. Joins the caller's transaction
 * when one is open, else runs in its own (BEGIN IMMEDIATE) so that concurrent
 * writers never fork the chain.
 */
rdx_status rdx_tp_audit(sqlite3 *db, const char *node, const char *event, int outcome,
                        const char *inst, const char *object, const char *detail, rdx_error *err);
/*
 * Check the chain. RDX_OK with *records set, or RDX_ECHECKSUM naming the first
 * record whose hash or link is wrong (*bad_seq gets its sequence number).
 */
rdx_status rdx_tp_audit_verify(sqlite3 *db, long long *records, long long *bad_seq, rdx_error *err);

/* ---- Small items held in node.db (transport/inbox_blob.c) --------------- */

/*
 * The bytes of item idx of a received case while node.db holds them
 * (inbox_blobs): RDX_OK with out filled (replacing what it held). While such
 * a row exists it is the item, and the file may be missing or not durable
 * yet. RDX_ENOTFOUND when there is none (the file is the item); RDX_EDB.
 */
rdx_status rdx_tp_blob_get(sqlite3 *db, const char *sender, const char *case_id, size_t idx,
                           rdx_buf *out, rdx_error *err);
/*
 * Write DATA/inbox/SENDER/CASE/IDX from len bytes at p, making the
 * directories as needed, through a temporary file renamed into place (never
 * half a file under the item's name). With sync, the file and its
 * directories are synced before this returns; without, the caller syncs (the
 * spill thread does one syncfs per batch). Names must have been checked.
 */
/* fsync a directory (its new entries survive a crash). 0, or -1 with errno. */
int rdx_tp_fsync_dir(const char *path);
rdx_status rdx_tp_blob_write_file(const char *data, const char *sender, const char *case_id,
                                  size_t idx, const uint8_t *p, size_t len, int sync,
                                  rdx_error *err);

/* ---- TLS (transport/tls.c) ------------------------------------------------ */

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* What certificate verification said about a peer, filled by the verify callback. */
struct rdx_tp_verdict {
    int verify_error; /* X509_V_OK or the first X509_V_ERR_* */
    char claimed[65]; /* the institution the failing certificate named, if any */
    char serial[64];  /* its serial */
};

/*
 * A TLS 1.3-only context with this node's certificate and key, trusting only
 * the network CA, checking every peer against the CRL, requiring a peer
 * certificate (server: SSL_VERIFY_FAIL_IF_NO_PEER_CERT), no 0-RTT, no session
 * resumption (so every connection re-verifies the peer against the current
 * CRL). server selects the role. SSL_set_app_data(ssl, &verdict) before the
 * handshake lets the verify callback record why a peer failed.
 */
rdx_status rdx_tp_tls_ctx(const rdx_transport_config *cfg, int server, SSL_CTX **out,
                          rdx_error *err);
/*
 * The same with a trust store already made by rdx_tp_trust_store, which the
 * context takes over (freed here on failure too), so that a caller can look
 * at the CRL before it builds a context on it.
 */
rdx_status rdx_tp_tls_ctx_store(const rdx_transport_config *cfg, int server, X509_STORE *store,
                                SSL_CTX **out, rdx_error *err);
/*
 * Put a buffering BIO of size bytes between ssl and its socket, for reading
 * (several TLS records per read(2)) or for writing (several records per
 * write(2); the caller flushes it before it waits for an answer). Without
 * memory for it, ssl goes on unbuffered, which still works.
 */
void rdx_tp_ssl_buffer(SSL *ssl, int writing, int size);
/* The verified peer's institution (from its certificate SAN URI only). */
rdx_status rdx_tp_tls_peer(SSL *ssl, char *inst, size_t instsz, char *serial, size_t serialsz,
                           rdx_error *err);

typedef struct X509_crl_st X509_CRL;

/*
 * The CRL a context made by rdx_tp_tls_ctx checks peers against: owned by
 * ctx (valid while ctx is), NULL when it holds none. Not to be modified.
 */
X509_CRL *rdx_tp_tls_ctx_crl(SSL_CTX *ctx);
/* The same for a store made by rdx_tp_trust_store (owned by store). */
X509_CRL *rdx_tp_trust_store_crl(X509_STORE *store);
/*
 * Whether crl revokes certificate x (issued by the CRL's issuer): 1, with the
 * revocation time in when ("2026-12-01T09:30:00Z", or "?"), else 0. x NULL: 0.
 */
int rdx_tp_crl_revokes(X509_CRL *crl, X509 *x, char *when, size_t whensz);
/*
 * Whether crl is older than cur, the CRL in force, and so may not replace it
 * (it could un-revoke a certificate): 1 with the reason in why ("its CRL
 * number 3 is lower than 5, ..."), else 0. Ordered by CRL number (RFC 5280
 * section 5.2.3) when both carry one, else by lastUpdate; an equal one is
 * not older. crl or cur NULL: 0. Reads both, changes neither.
 */
int rdx_tp_crl_older(X509_CRL *crl, X509_CRL *cur, char *why, size_t whysz);

/* ---- The newest CRL put in force, across restarts (transport/crl_mark.c) -- */

/*
 * What orders one CRL of a CA against another (RFC 5280 section 5.2.3): its
 * CRL number, else its lastUpdate. node.db keeps the mark of the newest CRL
 * the node has put in force (table crl_mark, one row per CA), so that an
 * older CRL file put back while the node was stopped is refused at start.
 */
struct rdx_tp_crl_mark {
    char ca[65];         /* hex SHA-256 of the issuing CA's public key ("" unknown) */
    char number[64];     /* the CRL number in decimal; "" when the CRL has none */
    int64_t last_update; /* lastUpdate (thisUpdate), Unix seconds; 0 unreadable */
    int64_t set_ms;      /* when node.db recorded it (wall clock ms); 0 not recorded */
};

/* crl's number and lastUpdate (ca left ""); crl NULL: all zero. */
void rdx_tp_crl_mark_of(X509_CRL *crl, struct rdx_tp_crl_mark *m);
/* The mark of the CRL in store with its CA's key digest; RDX_ENOENT when store lacks either. */
rdx_status rdx_tp_trust_store_mark(X509_STORE *store, struct rdx_tp_crl_mark *m);
/*
 * Whether a is older than b (a lower CRL number when both carry one, else an
 * earlier lastUpdate): 1 with the reason in why, naming b as what_b ("its
 * CRL number 1 is lower than 2, that of WHAT_B"), else 0 (equal: 0).
 */
int rdx_tp_crl_mark_older(const struct rdx_tp_crl_mark *a, const struct rdx_tp_crl_mark *b,
                          const char *what_b, char *why, size_t whysz);
/* The mark node.db holds for CA key digest ca: *found 0 when none. RDX_EDB on failure. */
rdx_status rdx_tp_crl_mark_load(sqlite3 *db, const char *ca, struct rdx_tp_crl_mark *m, int *found,
                                rdx_error *err);
/* Record m (read from file) as the mark of its CA. RDX_EDB on failure. */
rdx_status rdx_tp_crl_mark_save(sqlite3 *db, const struct rdx_tp_crl_mark *m, const char *file,
                                rdx_error *err);
/*
 * May the CRL in store (read from crl_path) be put in force? RDX_EAUTH, with
 * "CRL_PATH: an older CRL is refused: its CRL number 1 is lower than 2, that
 * of the newest CRL this node has put in force (...)" in err, when it is
 * older than node.db's mark for its CA. Otherwise RDX_OK, and a newer CRL
 * (or the first for its CA) becomes the mark. RDX_EDB when node.db fails.
 * Runs no transaction of its own: the caller holds one (BEGIN IMMEDIATE, or
 * the node's open group), so that reading and raising the mark is atomic.
 */
rdx_status rdx_tp_crl_mark_admit(sqlite3 *db, X509_STORE *store, const char *crl_path,
                                 rdx_error *err);
/*
 * rdx_tp_crl_mark_admit in a transaction of its own (BEGIN IMMEDIATE, then
 * COMMIT, or ROLLBACK on any failure), for a caller that holds none. The
 * same results; RDX_EDB names where ("what: ...") when node.db fails.
 */
rdx_status rdx_tp_crl_mark_admit_tx(sqlite3 *db, X509_STORE *store, const char *crl_path,
                                    const char *what, rdx_error *err);
/*
 * Why a handshake failed, in words for the log and audit ("no client
 * certificate", "certificate revoked", ...), from the verdict and the
 * OpenSSL error code e.
 */
void rdx_tp_tls_reason(const struct rdx_tp_verdict *v, unsigned long e, char *out, size_t outsz);

/* ---- Delivery (transport/node_send.c) ------------------------------------- */

#include <stdatomic.h>

struct rdx_tp_delivery; /* the threads, their claims and the wake-up: private to node_send.c */

/*
 * Delivery: cfg->senders threads that share nothing with the event loop but
 * cfg. Set cfg and log, zero the rest, before rdx_tp_sender_start.
 */
struct rdx_tp_sender {
    const rdx_transport_config *cfg;
    rdx_logger log;
    atomic_int stop;
    /*
     * The CRL in force when delivery starts (NULL: none): rdx_tp_sender_start
     * copies it, and delivery then refuses a CRL file older than it.
     */
    X509_CRL *crl;
    struct rdx_tp_delivery *d; /* made by rdx_tp_sender_start, freed by rdx_tp_sender_stop */
};

/*
 * Start delivering the outbox: cfg->senders threads ("rdx-deliver"), each on
 * its own SQLite connection, each taking the due cases of one recipient that
 * no other thread has (so a slow or silent peer holds up only its own
 * cases, and no case is ever in two attempts at once). A thread delivers
 * them over one TLS 1.3 connection (pipelined, resuming from the receiver's
 * PROGRESS) and records the outcomes before it lets the recipient go;
 * failures are retried with capped exponential backoff and dead-lettered
 * after max_attempts, or at once on a permanent refusal. An idle thread
 * sleeps until a case is queued (rdx_tp_outbox_kick, from any process), a
 * retry falls due, or at the latest RDX_TP_WAKE_FALLBACK_MS. RDX_EINTERNAL
 * when a thread cannot be started (then nothing is left running).
 * Not thread-safe against rdx_tp_sender_stop on the same s.
 */
rdx_status rdx_tp_sender_start(struct rdx_tp_sender *s, rdx_error *err);
/*
 * Stop delivery: connections in progress are cut (shutdown(2)), so a silent
 * peer does not delay the stop; an attempt cut this way is not counted and
 * its cases stay queued. Joins every thread and frees what start made. A
 * no-op when s was never started or is stopped already.
 */
void rdx_tp_sender_stop(struct rdx_tp_sender *s);
/*
 * The node has loaded crl (a new CRL in force): delivery keeps a copy if it
 * is newer than the newest it knows, so that no delivery thread goes back to
 * an older CRL file that the node refused, even one that has not connected
 * since. crl stays the caller's. A no-op when delivery is not running or crl
 * is NULL. Takes the delivery's lock; call it from the thread that starts
 * and stops delivery.
 */
void rdx_tp_sender_crl_loaded(struct rdx_tp_sender *s, X509_CRL *crl);

/*
 * The longest an idle delivery thread sleeps with no wake-up: a wake-up that
 * is lost (the kick could not be written) delays a case by at most this.
 */
#define RDX_TP_WAKE_FALLBACK_MS 1000
/*
 * Wake the delivery threads of the node serving data_dir, in this process
 * or another, after the commit that queued or requeued a case: one byte
 * into DATA/outbox.kick, the FIFO the node holds open. Best effort and never
 * blocking: no node running (no reader), a full FIFO (a wake-up is pending
 * anyway) and every error are ignored. SIGPIPE is never raised. Thread-safe.
 */
void rdx_tp_outbox_kick(const char *data_dir);

/* Outbox spool file of item idx of a case: DATA/outbox/CASE/IDX. */
rdx_status rdx_tp_spool_path(const rdx_transport_config *cfg, const char *case_id, size_t idx,
                             char *out, size_t outsz, rdx_error *err);
