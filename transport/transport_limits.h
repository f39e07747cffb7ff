/*
 * transport_limits.h - caps on everything a peer, a manifest or an operator
 * can ask the transport to hold. Each cap says why it has the value it has.
 */
#ifndef RDX_TRANSPORT_LIMITS_H
#define RDX_TRANSPORT_LIMITS_H

/* ---- PKI ---------------------------------------------------------------- */

/* Institution IDs become file names and SAN URIs: short, and one path component. */
#define RDX_TRANSPORT_INST_ID_MAX 64
/* The CA's CN is "NETWORK Root CA", and ub-common-name is 64 characters. */
#define RDX_TRANSPORT_NETWORK_MAX 52
/* RFC 5280 appendix A: ub-organization-name is 64 characters. */
#define RDX_TRANSPORT_NAME_MAX 64
/* RFC 5280 appendix A: ub-locality-name is 128 characters. */
#define RDX_TRANSPORT_CITY_MAX 128
/* A CA of 20 years outlives the hardware it runs on; longer is a typo. */
#define RDX_TRANSPORT_CA_DAYS_MAX     7300
#define RDX_TRANSPORT_CA_DAYS_DEFAULT 3650
/* Institution certificates: at most 825 days (the CA/B Forum's old ceiling). */
#define RDX_TRANSPORT_CERT_DAYS_MAX     825
#define RDX_TRANSPORT_CERT_DAYS_DEFAULT 397
/* CRLs are republished at least weekly by default; a year is the ceiling. */
#define RDX_TRANSPORT_CRL_DAYS_MAX     366
#define RDX_TRANSPORT_CRL_DAYS_DEFAULT 7
/*
 * A published CRL's lastUpdate lies this many seconds before the moment it
 * is made (its nextUpdate is counted from that moment): a node whose clock
 * runs a little behind the CA host's would otherwise find a fresh CRL not yet
 * valid and fail closed until its clock caught up.
 */
#define RDX_TRANSPORT_CRL_BACKDATE_S 60
/* PEM files (keys, certificates, CRLs) we read back: a CRL of ~100k entries fits. */
#define RDX_TRANSPORT_PEM_MAX (8u * 1024u * 1024u)

/* ---- Framing (transport/frame.c) ------------------------------------------ */

/*
 * Items travel in chunks of 1 to 8 MiB: large enough that per-chunk hashing
 * and acknowledgement cost nothing next to the data, small enough that a
 * connection's buffer stays bounded and a broken transfer loses little.
 */
#define RDX_TRANSPORT_CHUNK_MIN (1u << 20)
#define RDX_TRANSPORT_CHUNK_MAX (8u << 20)
/*
 * The chunk size is a multiple of this: chunk boundaries then fall on whole
 * SHA-256 blocks (64 bytes; see rdx_tp_chunk_check) and on whole file-system
 * blocks, so a receiver can write every chunk but an item's last with O_DIRECT.
 */
#define RDX_TRANSPORT_CHUNK_ALIGN 4096u
/*
 * A chunk is checked in this many equal parts (its link strides, chunk size /
 * RDX_TRANSPORT_LINKS bytes each, a whole number of SHA-256 blocks): its
 * header carries the SHA-256 chaining value at the end of each part but the
 * last, so that a receiver can hash the parts as independent streams at once
 * (transport/sha_x16.c) and still check every byte against one SHA-256 pass.
 * Sixteen is the lane count of a 512-bit register of 32-bit words.
 */
#define RDX_TRANSPORT_LINKS 16u
/*
 * Received items of at most this size are kept in node.db (inbox_blobs)
 * with the group commit, so a group of small cases costs one WAL sync; their
 * files are written afterwards (transport/inbox_blob.c).
 */
#define RDX_TRANSPORT_INLINE_MAX (64u << 10)
/*
 * A chunk frame carries a header (case, item, offset, check value, padding)
 * before its data. The sender pads the header of a chunk of at least
 * RDX_TRANSPORT_ALIGN_MIN bytes so that its data starts RDX_TRANSPORT_DATA_ALIGN
 * bytes into the payload; the receiver's decoder puts such payloads on that
 * boundary, so the data can go to disk with O_DIRECT as it is, without a copy.
 */
#define RDX_TRANSPORT_DATA_ALIGN    4096u
#define RDX_TRANSPORT_ALIGN_MIN     (1u << 20)
#define RDX_TRANSPORT_CHUNK_PAD_MAX (RDX_TRANSPORT_DATA_ALIGN - 1)
/*
 * Payloads of at least this many bytes are also put on this boundary and
 * offered to the kernel as transparent huge pages: an O_DIRECT write from 4
 * KiB pages is cut into requests of at most max_segments pages (254 pages,
 * about 1 MiB, on virtio-blk), from 2 MiB pages into requests of up to
 * max_sectors_kb. On the machine measured that wrote 1.3-1.6 times faster,
 * with fewer completions to handle.
 */
#define RDX_TRANSPORT_HUGE_ALIGN (2u << 20)
/* Case ID, item, offset, check value, up to 15 link values, padding length. */
#define RDX_TRANSPORT_CHUNK_HDR_MAX (1024u + RDX_TRANSPORT_CHUNK_PAD_MAX)
/* The hard ceiling on any frame's payload: one full chunk and its header. */
#define RDX_TRANSPORT_FRAME_MAX (RDX_TRANSPORT_CHUNK_MAX + RDX_TRANSPORT_CHUNK_HDR_MAX)
/*
 * A manifest lists at most RDX_TRANSPORT_ITEMS_MAX items of at most
 * ~400 bytes each (name, size, digest): 4096 * 256 fits in 1 MiB with room.
 */
#define RDX_TRANSPORT_OFFER_MAX (1u << 20)
/* Hello, progress, commit, ack, refuse, ping: a few hundred bytes; 64 KiB is generous. */
#define RDX_TRANSPORT_CONTROL_MAX (64u << 10)

/* ---- Cases and messages (transport/msg.c) ------------------------------------ */

/* Case IDs are 32 hex digits when rdx makes them; 64 leaves room for other senders'. */
#define RDX_TRANSPORT_CASE_ID_MAX 64
/* A CT study is a few thousand instances; more than 4096 items belongs in an archive. */
#define RDX_TRANSPORT_ITEMS_MAX 4096
/* Item names become file names on fetch: one path component of at most 255 bytes (NAME_MAX). */
#define RDX_TRANSPORT_ITEM_NAME_MAX 255
/* One item is at most 1 TiB: larger is certainly a corrupt or hostile manifest. */
#define RDX_TRANSPORT_ITEM_SIZE_MAX (1ull << 40)
/* A refusal's reason text: a sentence, not a document. */
#define RDX_TRANSPORT_REASON_MAX 1024

/* ---- Node configuration ----------------------------------------------------- */

/* A node's INI file: a few kilobytes; 1 MiB means something is wrong. */
#define RDX_TRANSPORT_CONFIG_MAX (1u << 20)
/* The network has about 180 institutions; 4096 peers or policy rules is ample. */
#define RDX_TRANSPORT_PEERS_MAX 4096
#define RDX_TRANSPORT_RULES_MAX 4096
/* Timeouts: at least 100 ms (a node must be usable), at most one hour. */
#define RDX_TRANSPORT_TIMEOUT_MIN_MS 100
#define RDX_TRANSPORT_TIMEOUT_MAX_MS 3600000
/*
 * The spill of small received items (transport/node.c): how long it lets a
 * burst gather before writing the files (0: at once), and how long written
 * files wait, once the spill is quiet, for the one syncfs that makes them the
 * items. Until then node.db holds each item as well, so longer only means a
 * larger node.db; a minute and ten minutes keep it from growing without end.
 */
#define RDX_TRANSPORT_SPILL_DELAY_MAX_MS      60000
#define RDX_TRANSPORT_SPILL_CHECKPOINT_MIN_MS 100
#define RDX_TRANSPORT_SPILL_CHECKPOINT_MAX_MS 600000
/* Concurrent connections one node accepts: 200 peers are required; 65536 fds is the ceiling. */
#define RDX_TRANSPORT_CONNS_MAX 65536
/* Delivery attempts before dead-lettering: 1000 at the capped backoff is weeks. */
#define RDX_TRANSPORT_ATTEMPTS_MAX 1000
/*
 * Delivery threads per node ([node] senders). Each serves one peer at a time
 * with one TLS connection and one SQLite connection: four keep a slow or
 * silent peer from holding up the rest on a node that sends to a handful of
 * peers at once; 64 is more than any member sends to at once, and stops a
 * typo from starting thousands of threads.
 */
#define RDX_TRANSPORT_SENDERS_DEFAULT 4
#define RDX_TRANSPORT_SENDERS_MAX     64

#endif /* RDX_TRANSPORT_LIMITS_H */
