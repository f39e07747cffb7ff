/*
 * rdx/lab.h - the lab engine: HL7 v2 (ER7) messages and MLLP framing, the
 * network catalogue of labs, clinics and courier runs, and the router that
 * picks the performing lab for each ordered test.
 *
 * All handles are opaque; each _new/_parse/_load has a matching _free, and
 * _free(NULL) is a no-op. Functions return rdx_status and fill a caller's
 * rdx_error (which may be NULL) with a message naming the segment, field,
 * byte offset, or file:line that is wrong. Nothing here prints or keeps global
 * state. A handle must not be used by two threads at once unless its comment
 * says it is read-only after construction; distinct handles are independent.
 *
 * Text handed out by accessors is UTF-8, whatever MSH-18 declared; the
 * original bytes are kept so that writing a parsed message reproduces it.
 */
#ifndef RDX_LAB_H
#define RDX_LAB_H

#include "rdx/common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== HL7 v2 messages (lab/hl7*.c) ===================================== */

/* One parsed HL7 v2 message (MSH up to, not including, the next MSH). */
typedef struct rdx_lab_hl7_msg rdx_lab_hl7_msg;

/* The delimiters a message declared in MSH-1 and MSH-2 (HL7 v2.5.1 2.5.4). */
typedef struct rdx_lab_hl7_delims {
    char field;        /* MSH-1, usually '|' */
    char component;    /* usually '^' */
    char repetition;   /* usually '~' */
    char escape;       /* usually '\\' */
    char subcomponent; /* usually '&' */
    char truncation;   /* '#' when MSH-2 has five characters (v2.7), else 0 */
} rdx_lab_hl7_delims;

/*
 * Parse one ER7 message from data[0..len). Segments may be separated by CR,
 * LF or CRLF; empty lines are skipped. The first segment must be MSH. The
 * delimiters come from MSH-1 and MSH-2. MSH-18 selects the character set:
 * empty or "ASCII", "UNICODE UTF-8", "GB 18030-2000", "8859/1" .. "8859/9",
 * "8859/15"; GB 18030 text is scanned so that delimiter bytes inside a
 * multi-byte character are not taken for delimiters. Bytes above 0x7F in a
 * message that declares no character set are read as UTF-8 when they are
 * valid UTF-8 and as ISO 8859-1 otherwise (what senders mean in practice).
 *
 * The input is copied; the caller may free it on return. *out receives a new
 * handle to free with rdx_lab_hl7_free(). Errors: RDX_EPARSE (no MSH, bad
 * delimiters, bad segment id; err names the segment number and byte offset),
 * RDX_EFORMAT (unsupported MSH-18), RDX_ELIMIT (a cap of lab/lab_limits.h),
 * RDX_ENOMEM. On failure *out is NULL.
 */
rdx_status rdx_lab_hl7_parse(const void *data, size_t len, rdx_lab_hl7_msg **out, rdx_error *err);

/* Free a message; NULL is a no-op. */
void rdx_lab_hl7_free(rdx_lab_hl7_msg *m);

/* The delimiters of m (never NULL for a parsed message). */
const rdx_lab_hl7_delims *rdx_lab_hl7_delimiters(const rdx_lab_hl7_msg *m);

/* The MSH-18 value as written ("" when absent); owned by m. */
const char *rdx_lab_hl7_charset(const rdx_lab_hl7_msg *m);

/* Number of segments in m. */
size_t rdx_lab_hl7_segment_count(const rdx_lab_hl7_msg *m);

/* The three-character id of segment i (0-based) into id[4]; "" when out of range. */
void rdx_lab_hl7_segment_id(const rdx_lab_hl7_msg *m, size_t i, char id[4]);

/* How many segments with this id m has ("OBX"). */
size_t rdx_lab_hl7_segment_occurrences(const rdx_lab_hl7_msg *m, const char *seg_id);

/*
 * Paths name a place in a message: "SEG[occ]-field[rep].component.subcomponent",
 * every number 1-based and every bracket or dotted part optional: "PID-5.1",
 * "OBX[3]-5", "PID-3[2].4.1", "MSH-9.2". occ and rep default to 1. For MSH,
 * FHS and BHS, field 1 is the field separator and field 2 the encoding
 * characters, as in the standard.
 */

/*
 * Append the decoded text at path to out: escape sequences resolved
 * (\F\ \S\ \T\ \R\ \E\ \P\ \Xhh..\, \.br\ and \.sp\ as a line feed, \H\ \N\
 * and other formatting commands dropped) and converted to UTF-8 from the
 * MSH-18 character set. Character-set switches (\Cxxyy\ single-byte,
 * \Mxxyyzz\ multi-byte, HL7 v2.5.1 2.7.4) and local escapes (\Z..\) are
 * kept in the text as written, escape characters included, and the bytes
 * after a switch are not reinterpreted in the switched set: they are
 * converted from MSH-18 like the rest (a message that really switches to
 * ISO-IR 87 after \M2442\ comes out as the raw bytes read as MSH-18). The
 * message itself is unchanged: rdx_lab_hl7_write and forwarding keep the
 * sequences byte for byte. A path without a component gives component 1
 * (subcomponent 1), as HAPI's Terser does. A place that is absent or empty
 * appends nothing and returns RDX_OK. Errors: RDX_EINVAL (bad path),
 * RDX_ENOTFOUND (the segment occurrence does not exist), RDX_EPARSE (an
 * unterminated or malformed escape sequence, or bytes invalid in the declared
 * character set; err names the path), RDX_ELIMIT/RDX_ENOMEM from out. On
 * failure out is left as it was.
 */
rdx_status rdx_lab_hl7_get(const rdx_lab_hl7_msg *m, const char *path, rdx_buf *out,
                           rdx_error *err);

/*
 * Point *p and *n at the raw, still-encoded bytes at path inside m (valid while m
 * lives). A path without a repetition, component or subcomponent gives the
 * whole field, repetition or component. Absent places give *n == 0.
 * Errors as rdx_lab_hl7_get, without the decoding ones.
 */
rdx_status rdx_lab_hl7_get_raw(const rdx_lab_hl7_msg *m, const char *path, const uint8_t **p,
                               size_t *n, rdx_error *err);

/* Number of repetitions of the field at path ("PID-3"): 0 when it is empty. */
rdx_status rdx_lab_hl7_repetitions(const rdx_lab_hl7_msg *m, const char *path, size_t *count,
                                   rdx_error *err);

/*
 * Append m to out in ER7, each segment followed by CR (HL7 v2.5.1 2.5.3).
 * The bytes of every segment are the ones parsed, so writing a parsed message
 * reproduces its input up to the segment separators.
 */
rdx_status rdx_lab_hl7_write(const rdx_lab_hl7_msg *m, rdx_buf *out);

/*
 * Escape UTF-8 text s[0..n) for a field of a message with delimiters d and
 * character set charset (an MSH-18 value, "" for ASCII/UTF-8 passthrough) and
 * append it to out: delimiter characters become \F\ \S\ \T\ \R\ \E\ \P\ and
 * control characters \Xhh\. Errors: RDX_EFORMAT (charset unsupported),
 * RDX_EPARSE (text not representable), RDX_ELIMIT/RDX_ENOMEM.
 */
rdx_status rdx_lab_hl7_escape(const rdx_lab_hl7_delims *d, const char *charset, const char *s,
                              size_t n, rdx_buf *out, rdx_error *err);

/* ---- Batches (FHS/BHS ... BTS/FTS) --------------------------------------- */

typedef struct rdx_lab_hl7_batch rdx_lab_hl7_batch;

/*
 * Parse a file of messages: an HL7 batch (FHS, BHS, messages, BTS, FTS; the
 * headers optional, as HL7 v2.5.1 2.10.3 allows) or messages one after the
 * other. BTS-1 and FTS-1, when present, must match the counts. Errors are
 * those of rdx_lab_hl7_parse, with the message number in err. The input is
 * copied.
 */
rdx_status rdx_lab_hl7_batch_parse(const void *data, size_t len, rdx_lab_hl7_batch **out,
                                   rdx_error *err);
/* Free a batch and every message in it; NULL is a no-op. */
void rdx_lab_hl7_batch_free(rdx_lab_hl7_batch *b);
/* Number of messages in the batch. */
size_t rdx_lab_hl7_batch_count(const rdx_lab_hl7_batch *b);
/* Message i (0-based), owned by b; NULL when out of range. */
const rdx_lab_hl7_msg *rdx_lab_hl7_batch_msg(const rdx_lab_hl7_batch *b, size_t i);
/*
 * The envelope segments (FHS, BHS, BTS, FTS) as a message-like handle owned
 * by b, for rdx_lab_hl7_get ("FHS-9", "BTS-1"); NULL when there were none.
 */
const rdx_lab_hl7_msg *rdx_lab_hl7_batch_envelope(const rdx_lab_hl7_batch *b);
/* Append the whole batch in ER7 (input order, CR after every segment). */
rdx_status rdx_lab_hl7_batch_write(const rdx_lab_hl7_batch *b, rdx_buf *out);

/* ---- Acknowledgements --------------------------------------------------- */

typedef enum rdx_lab_ack_code {
    RDX_LAB_ACK_AA = 0, /* application accept */
    RDX_LAB_ACK_AE = 1, /* application error: the message was bad */
    RDX_LAB_ACK_AR = 2  /* application reject: not processed (type, version, state) */
} rdx_lab_ack_code;

/* What an ACK says. Strings are UTF-8, escaped by the builder; NULL means empty. */
typedef struct rdx_lab_ack_spec {
    rdx_lab_ack_code code;
    const char *control_id; /* MSH-10 of the ACK itself (required) */
    const char *timestamp;  /* MSH-7, HL7 DTM (required, e.g. "20261201083000+0800") */
    const char *text;       /* MSA-3 and ERR-8: a message for people */
    /* ERR segment, written when hl7_error != 0 (HL7 table 0357, e.g. 101). */
    unsigned hl7_error;
    const char *err_segment; /* ERR-2.1 segment id, e.g. "PID" */
    unsigned err_sequence;   /* ERR-2.2 occurrence (1-based, 0 = omit) */
    unsigned err_field;      /* ERR-2.3 field position (0 = omit) */
    unsigned err_component;  /* ERR-2.5 (0 = omit) */
    /* Used only when orig is NULL (the message could not be parsed). */
    const char *orig_control_id;
} rdx_lab_ack_spec;

/*
 * Build the ACK to orig (which may be NULL when it could not be parsed) and
 * append it to out in ER7: MSH with sender and receiver swapped, the same
 * delimiters, processing id, version and MSH-18; MSH-9 "ACK^<trigger>^ACK";
 * MSA-1 the code, MSA-2 echoing orig's MSH-10 (HL7 v2.5.1 2.9.2); an ERR
 * segment with ERR-2 location, ERR-3 code from table 0357 and ERR-4 severity
 * "E" when spec->hl7_error is set. Errors: RDX_EINVAL (missing control id or
 * timestamp), RDX_ELIMIT/RDX_ENOMEM from out (then out is unchanged).
 */
rdx_status rdx_lab_hl7_ack(const rdx_lab_hl7_msg *orig, const rdx_lab_ack_spec *spec, rdx_buf *out,
                           rdx_error *err);

/* The text of an HL7 table 0357 code ("Required field missing"); "" when unknown. */
const char *rdx_lab_hl7_error_text(unsigned hl7_error);

/* ---- MLLP framing (lab/mllp.c) ------------------------------------------ */

/* MLLP block characters (HL7 v2.5.1 Appendix C, MLLP release 2). */
#define RDX_LAB_MLLP_SB 0x0B
#define RDX_LAB_MLLP_EB 0x1C
#define RDX_LAB_MLLP_CR 0x0D

typedef struct rdx_lab_mllp_reader rdx_lab_mllp_reader;

/* Counters of what a reader has seen. */
typedef struct rdx_lab_mllp_stats {
    uint64_t frames;          /* complete frames delivered */
    uint64_t bytes_skipped;   /* bytes outside any frame (garbage, resync) */
    uint64_t frames_dropped;  /* frames abandoned: too large, bad trailer, restarted */
    uint64_t bytes_delivered; /* payload bytes in delivered frames */
} rdx_lab_mllp_stats;

/*
 * A new streaming reader that delivers frames of at most max_frame payload
 * bytes (0 = RDX_LAB_MLLP_MAX_FRAME). Memory stays below max_frame whatever
 * the stream holds. Errors: RDX_EINVAL, RDX_ENOMEM.
 */
rdx_status rdx_lab_mllp_reader_new(size_t max_frame, rdx_lab_mllp_reader **out, rdx_error *err);
/* Free a reader (and a frame it was holding); NULL is a no-op. */
void rdx_lab_mllp_reader_free(rdx_lab_mllp_reader *r);

/*
 * Called once per complete frame with its payload (without SB, EB, CR),
 * valid only during the call. A non-OK return stops the feed and is returned.
 */
typedef rdx_status (*rdx_lab_mllp_frame_fn)(void *user, const uint8_t *payload, size_t len);

/*
 * Feed n bytes of the stream (any split). Garbage before a start block is
 * skipped; a start block inside a frame restarts the frame; a frame longer
 * than max_frame, or an end block not followed by CR, is dropped and the
 * reader resynchronises on the next start block. These are counted in the
 * stats, not errors. Errors: what fn returns, RDX_ENOMEM.
 */
rdx_status rdx_lab_mllp_reader_feed(rdx_lab_mllp_reader *r, const void *data, size_t n,
                                    rdx_lab_mllp_frame_fn fn, void *user, rdx_error *err);

/* End of stream: RDX_ESHORT when a frame was left open (it is dropped). */
rdx_status rdx_lab_mllp_reader_finish(rdx_lab_mllp_reader *r, rdx_error *err);

/* Copy the counters. */
void rdx_lab_mllp_reader_stats(const rdx_lab_mllp_reader *r, rdx_lab_mllp_stats *out);

/*
 * Append payload framed as SB payload EB CR to out. RDX_EINVAL when the
 * payload contains SB or EB bytes (they would break the framing).
 */
rdx_status rdx_lab_mllp_wrap(const void *payload, size_t n, rdx_buf *out, rdx_error *err);

/* ==== Orders and results read from HL7 (lab/order*.c) =================== */

/* One ordered test (one OBR of an OML^O21 or ORM^O01). Strings owned by the order. */
typedef struct rdx_lab_order_test {
    const char *code;   /* OBR-4.1, e.g. LOINC "2823-3" */
    const char *system; /* OBR-4.3, e.g. "LN" or a local system */
    const char *text;   /* OBR-4.2 */
    const char *placer; /* OBR-2.1 (or ORC-2.1) placer order number */
    size_t specimen;    /* index into the order's specimens */
    unsigned obr_seq;   /* which OBR (1-based) */
} rdx_lab_order_test;

/* One specimen (SPM, or OBR-15/OBR-7 in orders without SPM). */
typedef struct rdx_lab_order_specimen {
    const char *id;        /* SPM-2.1.1 (placer assigned id), the tube's barcode */
    const char *authority; /* SPM-2.1.2, the barcode's assigning authority */
    const char *parent_id; /* SPM-3.1.1, "" when not an aliquot */
    const char *type;      /* SPM-4.1 (e.g. SNOMED "119297000") or OBR-15.1 */
    int64_t collected_ms;  /* SPM-17.1 or OBR-7, Unix ms UTC; INT64_MIN when absent */
    unsigned spm_seq;      /* which SPM (1-based), 0 when from OBR */
    double volume_ml;      /* SPM-12 collection amount in mL; negative when not given */
} rdx_lab_order_specimen;

typedef struct rdx_lab_order rdx_lab_order;

/*
 * Read the order in an OML^O21 or ORM^O01 message: the sender (MSH-4.1),
 * MSH-10, the patient (PID-3 first repetition: id and authority; PID-5), the
 * tests (OBR) and the specimens (SPM after the OBR it belongs to, HL7 v2.5.1
 * OML_O21 structure). Times with a UTC offset are converted; times without
 * one are taken in local_offset_min (minutes east of UTC). Errors: RDX_EFORMAT
 * (not an order message), RDX_EPARSE (a required field is missing or a
 * timestamp is malformed; err names the field, e.g. "OBR[2]-4"), RDX_ENOMEM.
 */
rdx_status rdx_lab_order_from_hl7(const rdx_lab_hl7_msg *m, int local_offset_min,
                                  rdx_lab_order **out, rdx_error *err);
/* Free an order and the strings it owns; NULL is a no-op. */
void rdx_lab_order_free(rdx_lab_order *o);
/* Accessors: strings and structs owned by o, valid until rdx_lab_order_free(o). */
const char *rdx_lab_order_sender(const rdx_lab_order *o);     /* MSH-4.1 */
const char *rdx_lab_order_control_id(const rdx_lab_order *o); /* MSH-10 */
const char *rdx_lab_order_patient_id(const rdx_lab_order *o); /* PID-3.1 */
/* MSH-7 as Unix ms UTC; INT64_MIN when absent. */
int64_t rdx_lab_order_sent_ms(const rdx_lab_order *o);
const char *rdx_lab_order_patient_authority(const rdx_lab_order *o); /* PID-3.4.1 */
size_t rdx_lab_order_test_count(const rdx_lab_order *o);
const rdx_lab_order_test *rdx_lab_order_test_at(const rdx_lab_order *o, size_t i);
size_t rdx_lab_order_specimen_count(const rdx_lab_order *o);
const rdx_lab_order_specimen *rdx_lab_order_specimen_at(const rdx_lab_order *o, size_t i);

/*
 * Parse an HL7 DTM ("YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]") into Unix ms
 * UTC. Without an offset, local_offset_min applies. RDX_EPARSE when malformed.
 */
rdx_status rdx_lab_hl7_dtm_parse(const char *s, size_t n, int local_offset_min, int64_t *ms_out);

/* One observation of an ORU^R01 (OBX). Strings owned by the result handle. */
typedef struct rdx_lab_result_obs {
    unsigned obr_seq;   /* the OBR it belongs to (1-based) */
    unsigned obx_seq;   /* which OBX (1-based, in the message) */
    const char *code;   /* OBX-3.1 */
    const char *text;   /* OBX-3.2 */
    const char *value;  /* OBX-5 (first repetition, components joined by '^') */
    const char *units;  /* OBX-6.1 */
    const char *status; /* OBX-11: F final, C corrected, P preliminary, X cannot, D deleted */
} rdx_lab_result_obs;

typedef struct rdx_lab_result rdx_lab_result;

/*
 * Read the observations of an ORU^R01: MSH-4, MSH-10, the placer and filler
 * order numbers of each OBR, and each OBX with its OBX-11 status. OBX-11 is
 * required (HL7 v2.5.1 7.4.2.11); a missing or unknown status is RDX_EPARSE
 * naming the OBX. Errors otherwise as rdx_lab_order_from_hl7.
 */
rdx_status rdx_lab_result_from_hl7(const rdx_lab_hl7_msg *m, rdx_lab_result **out, rdx_error *err);
/* Free a result and the strings it owns; NULL is a no-op. */
void rdx_lab_result_free(rdx_lab_result *r);
/* Accessors: owned by r, valid until rdx_lab_result_free(r); NULL when out of range. */
size_t rdx_lab_result_obs_count(const rdx_lab_result *r);
const rdx_lab_result_obs *rdx_lab_result_obs_at(const rdx_lab_result *r, size_t i);
/* Number of OBX with OBX-11 = "C" (corrected results). */
size_t rdx_lab_result_corrections(const rdx_lab_result *r);
/* Placer order number (OBR-2.1) of OBR obr_seq (1-based); "" when absent. */
const char *rdx_lab_result_placer(const rdx_lab_result *r, unsigned obr_seq);

/* ==== Network catalogue (lab/catalogue*.c; format in docs/lab-catalogue.md) === */

typedef struct rdx_lab_catalogue rdx_lab_catalogue;

/* A member lab as the catalogue describes it. Strings owned by the catalogue. */
typedef struct rdx_lab_lab_info {
    const char *id; /* section id: [lab ID] */
    const char *name;
    const char *city;
    const char *facility; /* HL7 facility (MSH-4/MSH-6), defaults to id */
    unsigned capacity;    /* tests per day */
    unsigned open_min;    /* opening time, minutes after local midnight */
    unsigned close_min;   /* closing time (1440 = midnight, for 24-hour labs) */
    unsigned tat_min;     /* default turnaround, minutes from the start of testing */
    size_t ntests;        /* tests performed */
    size_t ntypes;        /* specimen types accepted */
    unsigned days;        /* days it tests: bit 0 Monday .. bit 6 Sunday (0x7F: every day) */
} rdx_lab_lab_info;

/* A clinic that sends specimens. */
typedef struct rdx_lab_clinic_info {
    const char *id;
    const char *name;
    const char *city;
    const char *district; /* "" when not given */
    const char *facility; /* MSH-4.1 its orders carry, defaults to id */
} rdx_lab_clinic_info;

/*
 * Load the catalogue at path (INI, parsed with libinih). Errors name
 * "path:line" and the section and key: RDX_ENOENT, RDX_EIO, RDX_ELIMIT (file
 * or entries above lab_limits.h), RDX_EPARSE (syntax, unknown section or
 * key, bad value, duplicate, a reference to an undefined lab or clinic, a
 * required key missing), RDX_ENOMEM. The catalogue is read-only after
 * loading and may be shared between threads.
 */
rdx_status rdx_lab_catalogue_load(const char *path, rdx_lab_catalogue **out, rdx_error *err);

/* The same from text in memory; name is used in error messages. */
rdx_status rdx_lab_catalogue_parse(const char *text, size_t len, const char *name,
                                   rdx_lab_catalogue **out, rdx_error *err);
/* Free a catalogue; NULL is a no-op. Routers over it must be freed first. */
void rdx_lab_catalogue_free(rdx_lab_catalogue *c);

/* The network's local time, minutes east of UTC ([network] utc_offset, default +08:00). */
int rdx_lab_catalogue_utc_offset_min(const rdx_lab_catalogue *c);
/* Number of labs, clinics and courier runs. */
size_t rdx_lab_catalogue_lab_count(const rdx_lab_catalogue *c);
size_t rdx_lab_catalogue_clinic_count(const rdx_lab_catalogue *c);
size_t rdx_lab_catalogue_courier_count(const rdx_lab_catalogue *c);
/* Entry i (0-based) filled into *out; RDX_ENOTFOUND when out of range. */
rdx_status rdx_lab_catalogue_lab_at(const rdx_lab_catalogue *c, size_t i, rdx_lab_lab_info *out);
rdx_status rdx_lab_catalogue_clinic_at(const rdx_lab_catalogue *c, size_t i,
                                       rdx_lab_clinic_info *out);

/* ==== Routing (lab/route*.c) ============================================= */

/* What became of one ordered test. */
typedef enum rdx_lab_route_code {
    RDX_LAB_ROUTED = 0,      /* sent to a lab that can take it today */
    RDX_LAB_FULL_QUEUED = 1, /* every capable lab is full today: queued for a later day, flagged */
    RDX_LAB_NO_LAB = 2,      /* no lab of the network performs the test */
    RDX_LAB_WRONG_SPECIMEN = 3, /* labs perform it, none on this specimen type */
    RDX_LAB_NO_COURIER = 4,     /* capable labs exist but no courier run reaches them */
    RDX_LAB_STABILITY = 5,      /* the specimen would exceed its stability before testing */
    RDX_LAB_UNKNOWN_CLINIC = 6  /* the ordering clinic (MSH-4.1) is not in the catalogue */
} rdx_lab_route_code;

/* Static name of a code ("STABILITY"); "?" for an unknown value. */
const char *rdx_lab_route_code_name(rdx_lab_route_code code);

/* One decision: for one test of one order. Strings owned by the result. */
typedef struct rdx_lab_decision {
    const char *test_code;     /* OBR-4.1 */
    const char *test_text;     /* OBR-4.2 */
    const char *specimen_id;   /* the tube sent: the order's SPM-2, or a child's id when split */
    const char *parent_id;     /* SPM-3 of a child specimen; "" when not split */
    const char *specimen_type; /* SPM-4.1 */
    const char *lab;           /* lab id; "" when refused */
    const char *lab_city;      /* "" when refused */
    rdx_lab_route_code code;
    const char *reason;   /* one sentence that says why */
    int64_t collected_ms; /* Unix ms UTC */
    int64_t pickup_ms;    /* courier pickup; INT64_MIN when refused */
    int64_t arrival_ms;   /* arrival at the lab; INT64_MIN when refused */
    int64_t result_ms;    /* expected result; INT64_MIN when refused */
    int64_t day;          /* local day (days since 1970-01-01) testing starts; -1 when refused */
    const char *specimen_authority; /* the barcode's assigning authority (SPM-2.1.2 or MSH-4.1) */
    int64_t stable_until_ms;        /* collection + stability on the way; INT64_MIN when refused */
} rdx_lab_decision;

typedef struct rdx_lab_router rdx_lab_router;
typedef struct rdx_lab_routing rdx_lab_routing;

/*
 * A router over catalogue c (which must outlive it). It keeps each lab's
 * load per day, so successive orders see the capacity earlier ones used.
 * Errors: RDX_EINVAL, RDX_ENOMEM.
 */
rdx_status rdx_lab_router_new(const rdx_lab_catalogue *c, rdx_lab_router **out, rdx_error *err);
/* Free a router (not its catalogue); NULL is a no-op. */
void rdx_lab_router_free(rdx_lab_router *r);

/* Add n tests to lab_id's load on local day `day` (from a store). RDX_ENOTFOUND for an unknown lab.
 */
rdx_status rdx_lab_router_add_load(rdx_lab_router *r, const char *lab_id, int64_t day, unsigned n,
                                   rdx_error *err);
/*
 * Mark a lab down (down != 0) or up again: a down lab qualifies for nothing.
 * RDX_ENOTFOUND for an unknown lab.
 */
rdx_status rdx_lab_router_set_down(rdx_lab_router *r, const char *lab_id, int down, rdx_error *err);

/* Tests counted against lab_id on `day`; 0 for an unknown lab. */
unsigned rdx_lab_router_load(const rdx_lab_router *r, const char *lab_id, int64_t day);

/*
 * Route every test of order o:
 *  - a lab qualifies for a test when it performs the test, accepts the
 *    specimen type and the catalogue gives a stability for that test and
 *    type, a courier run goes from the ordering clinic to it, the specimen
 *    arrives within its stability at the run's temperature (collection,
 *    plus the wait for the next pickup, plus transit), and it has capacity
 *    left on the day testing would start;
 *  - tests on one specimen go to one lab when one lab qualifies for all of
 *    them; among those, the earliest expected result wins, ties go to the
 *    lab in the clinic's city, then to the lower load, then to the lower id;
 *  - otherwise the specimen is split: the lab that takes most of the
 *    remaining tests (ties broken the same way) gets them, on a child
 *    specimen "<id>.<n>" whose parent (SPM-3) is the original, and so on;
 *  - a test no lab qualifies for is refused with the most specific code: a
 *    full lab is queued for its next open day (RDX_LAB_FULL_QUEUED) when the
 *    specimen stays stable until then, else RDX_LAB_STABILITY, else
 *    RDX_LAB_NO_COURIER, RDX_LAB_WRONG_SPECIMEN, RDX_LAB_NO_LAB.
 * Times missing from the specimen fall back to MSH-7 (said in the reason).
 * Loads are updated. *out gets a result to free with rdx_lab_routing_free.
 * Errors: RDX_EPARSE (no collection time at all), RDX_ENOMEM.
 */
rdx_status rdx_lab_route(rdx_lab_router *r, const rdx_lab_order *o, rdx_lab_routing **out,
                         rdx_error *err);
/* Free a routing; NULL is a no-op. */
void rdx_lab_routing_free(rdx_lab_routing *rt);
/* The decisions, one per test in the order's test order; owned by rt; NULL out of range. */
size_t rdx_lab_routing_count(const rdx_lab_routing *rt);
const rdx_lab_decision *rdx_lab_routing_at(const rdx_lab_routing *rt, size_t i);
/* Number of labs the order was split across (0 when nothing was routed). */
size_t rdx_lab_routing_labs(const rdx_lab_routing *rt);

/* ==== Decision store (lab/store.c, SQLite) =============================== */

typedef struct rdx_lab_store rdx_lab_store;

/*
 * Open (creating when needed) the store at uri: "sqlite:PATH", or
 * "sqlite::memory:" for a store that lives only as long as the handle.
 * The store carries its schema version (table lab_schema, currently 3); an
 * older store (1: written before versioning, 2) is migrated in one
 * transaction, and one of a newer version than this build knows is refused
 * untouched.
 * Errors: RDX_EINVAL (another scheme), RDX_EDB (SQLite could not open or
 * create the tables, or the schema is newer; err has the path and why),
 * RDX_ENOMEM. A handle is used by one thread at a time.
 */
rdx_status rdx_lab_store_open(const char *uri, rdx_lab_store **out, rdx_error *err);
/* Close the store; NULL is a no-op. */
void rdx_lab_store_free(rdx_lab_store *s);

/*
 * Add every stored decision's test to its lab's load for its day, and mark
 * down on r the labs stored as down (labs unknown to r are skipped).
 */
rdx_status rdx_lab_store_load(rdx_lab_store *s, rdx_lab_router *r, rdx_error *err);

/*
 * The decisions stored for the order sender/control_id (MSH-4.1, MSH-10), in
 * test order, as a new routing; RDX_ENOTFOUND when it was never routed.
 */
rdx_status rdx_lab_store_lookup(rdx_lab_store *s, const char *sender, const char *control_id,
                                rdx_lab_routing **out, rdx_error *err);

/*
 * Store rt as the decisions for sender/control_id, in one transaction.
 * RDX_EDUPLICATE when that order is already stored (nothing is changed).
 */
rdx_status rdx_lab_store_save(rdx_lab_store *s, const char *sender, const char *control_id,
                              const rdx_lab_routing *rt, int64_t now_ms, rdx_error *err);

/*
 * Mark lab_id down (down != 0: it takes no new test until marked up again)
 * or up, durably: rdx_lab_store_load marks every down lab on the router, so
 * every later run of any verb sees it. actor and reason (may be NULL) are
 * kept with the time. Marking a down lab down again keeps the first record.
 * *changed (may be NULL) = 1 when the availability changed. The lab id is
 * not checked against a catalogue (the caller does). Errors: RDX_EINVAL,
 * RDX_EDB. Not thread-safe on one store handle.
 */
rdx_status rdx_lab_store_set_down(rdx_lab_store *s, const char *lab_id, int down, const char *actor,
                                  const char *reason, int64_t now_ms, int *changed, rdx_error *err);

/* One lab marked down; strings valid during the callback. */
typedef void (*rdx_lab_down_fn)(void *user, const char *lab_id, int64_t since_ms, const char *actor,
                                const char *reason);

/* Call fn (may be NULL) for every lab marked down, by id; *count (may be NULL) gets how many. */
rdx_status rdx_lab_store_labs_down(rdx_lab_store *s, rdx_lab_down_fn fn, void *user, size_t *count,
                                   rdx_error *err);

/* ==== Chain of custody (lab/custody.c, in the same SQLite store) ========= */

/* Where a specimen is. The last three are final. */
typedef enum rdx_lab_spec_state {
    RDX_LAB_ST_ORDERED = 0,
    RDX_LAB_ST_COLLECTED = 1,
    RDX_LAB_ST_DISPATCHED = 2, /* on a courier run */
    RDX_LAB_ST_RECEIVED = 3,
    RDX_LAB_ST_IN_TESTING = 4,
    RDX_LAB_ST_RESULTED = 5,
    RDX_LAB_ST_DELIVERED = 6, /* the result reached the ordering clinic */
    RDX_LAB_ST_REJECTED = 7,  /* a recollection request (new barcode) was opened */
    RDX_LAB_ST_CANCELLED = 8,
    RDX_LAB_ST_LOST = 9
} rdx_lab_spec_state;

/* What happened to it. */
typedef enum rdx_lab_event_kind {
    RDX_LAB_EV_ORDER = 0, /* registration (rdx_lab_custody_register) */
    RDX_LAB_EV_COLLECT = 1,
    RDX_LAB_EV_DISPATCH = 2,
    RDX_LAB_EV_RECEIVE = 3, /* with a condition */
    RDX_LAB_EV_START = 4,
    RDX_LAB_EV_RESULT = 5, /* again after RESULTED or DELIVERED: a correction */
    RDX_LAB_EV_DELIVER = 6,
    RDX_LAB_EV_REJECT = 7, /* with a coded reason */
    RDX_LAB_EV_CANCEL = 8,
    RDX_LAB_EV_LOSE = 9,
    RDX_LAB_EV_REROUTE = 10, /* the destination changed before pickup (rdx_lab_custody_reroute) */
    RDX_LAB_EV_ADDON = 11,   /* a test added to a tube already collected (rdx_lab_custody_addon) */
    RDX_LAB_EV_PARTIAL = 12  /* results for some of the tube's tests; it stays in testing */
} rdx_lab_event_kind;

/* The condition recorded at receipt. */
typedef enum rdx_lab_condition {
    RDX_LAB_COND_OK = 0,
    RDX_LAB_COND_HEMOLYSED = 1,
    RDX_LAB_COND_LEAKING = 2,
    RDX_LAB_COND_INSUFFICIENT = 3,
    RDX_LAB_COND_WRONG_CONTAINER = 4,
    RDX_LAB_COND_EXPIRED = 5 /* received after its stability ran out (set by rdx) */
} rdx_lab_condition;

/* Static lower-case names ("in-testing", "dispatch", "hemolysed"), and parsing them back. */
const char *rdx_lab_state_name(rdx_lab_spec_state s);
const char *rdx_lab_event_name(rdx_lab_event_kind k);
const char *rdx_lab_condition_name(rdx_lab_condition c);
/* RDX_EINVAL for a name that is not one of the above. */
rdx_status rdx_lab_event_parse(const char *name, rdx_lab_event_kind *out);
rdx_status rdx_lab_condition_parse(const char *name, rdx_lab_condition *out);

/* A specimen to register. Strings are copied; NULL counts as "". */
typedef struct rdx_lab_specimen_reg {
    const char *authority; /* the barcode's assigning authority (SPM-2 namespace) */
    const char *barcode;
    const char *patient_id;
    const char *patient_authority;
    const char *order_sender;   /* MSH-4.1 of the order */
    const char *order_control;  /* MSH-10 of the order */
    const char *parent_barcode; /* SPM-3 of a child specimen */
    const char *lab;            /* performing lab, "" when not routed */
    const char *tests;          /* the tests on it, comma-separated */
    const char *placer;         /* placer order number (OBR-2.1 / ORC-2.1), for results */
    const char *specimen_type;  /* SPM-4.1, for rerouting */
    int64_t collected_ms;       /* collection time, for rerouting; INT64_MIN when unknown */
    double volume_ml;           /* the tube's volume (SPM-12), for add-ons; negative: unknown */
    int64_t stable_until_ms;    /* INT64_MIN when unknown */
    int64_t arrival_due_ms;     /* expected arrival at the lab; INT64_MIN when unknown */
    int64_t ordered_ms;         /* when the order was placed (MSH-7): the ORDER event's reported
                                 * time; 0 or INT64_MIN when unknown (the registration time is used) */
} rdx_lab_specimen_reg;

/*
 * Register a specimen in state ORDERED (the event log gets its ORDER event).
 * Registering the same barcode again for the same patient and order is a
 * no-op (*created = 0). Errors: RDX_EINVAL (empty authority or barcode),
 * RDX_EDENIED (the barcode belongs to another patient), RDX_EDUPLICATE (the
 * barcode is already used by another order of the same patient), RDX_EDB.
 */
rdx_status rdx_lab_custody_register(rdx_lab_store *s, const rdx_lab_specimen_reg *reg,
                                    int64_t now_ms, int *created, rdx_error *err);

/* One scan or event reported by an institution. */
typedef struct rdx_lab_event_in {
    const char *authority; /* NULL: the barcode must be unique across authorities */
    const char *barcode;
    rdx_lab_event_kind kind;
    rdx_lab_condition condition; /* RECEIVE */
    const char *reason;          /* REJECT (a code, e.g. "HEMOLYSED"), CANCEL; may be NULL */
    const char *actor;           /* the reporting institution (required) */
    int64_t reported_ms;         /* the time the actor says it happened */
    const char *new_barcode;     /* REJECT: the recollection's barcode; NULL = "<barcode>-R<n>" */
    /*
     * REJECT: only these tests (comma-separated), e.g. potassium on a
     * hemolysed tube whose HbA1c stands. They become void on this tube and
     * the recollection carries just them; the tube keeps its state for the
     * others. NULL, "" or every active test: the whole tube is rejected.
     */
    const char *tests;
} rdx_lab_event_in;

/* What an event did. */
typedef struct rdx_lab_event_out {
    rdx_lab_spec_state from, to;
    int duplicate;        /* 1: the same event was already recorded (a re-scan); nothing changed */
    int unable_to_cancel; /* CANCEL after pickup: logged, state unchanged, the lab answers UC */
    char authority[64];   /* the specimen's authority (resolved when ev->authority was NULL) */
    char recollect[128];  /* REJECT (or an expired receipt): the new barcode, else "" */
    rdx_lab_condition condition;
} rdx_lab_event_out;

/*
 * Apply one event, enforcing the state machine (docs/lab-custody.md):
 * ordered -> collected -> dispatched -> received -> in-testing -> resulted ->
 * delivered, with reject (from ordered .. in-testing; opens a recollection
 * with a new barcode linked to the old), cancel (before pickup it cancels;
 * once dispatched, received or in testing the request is logged but the
 * state does not change, out->unable_to_cancel = 1: the lab answers UC and
 * the test completes; a result cannot be cancelled, only corrected), lose
 * (dispatched or received),
 * and result again after resulted/delivered as a correction. A receipt later
 * than the specimen's stability is recorded with condition EXPIRED, and one
 * in the wrong container with WRONG_CONTAINER; both reject the specimen at
 * once and open its recollection. HEMOLYSED, LEAKING and INSUFFICIENT are
 * recorded; the lab rejects what it cannot do (REJECT with tests). The event is appended to the log
 * with both the reported time and received_ms, the time rdx received it. Errors: RDX_ENOTFOUND
 * (unknown barcode), RDX_EINVAL (ambiguous barcode without authority,
 * missing actor), RDX_ESTATE (illegal transition; err says what is allowed),
 * RDX_EDB.
 */
rdx_status rdx_lab_custody_event(rdx_lab_store *s, const rdx_lab_event_in *ev, int64_t received_ms,
                                 rdx_lab_event_out *out, rdx_error *err);

/* One logged event, for rdx_lab_custody_history. Strings valid during the callback. */
typedef struct rdx_lab_event_rec {
    rdx_lab_event_kind kind;
    rdx_lab_spec_state from, to;
    rdx_lab_condition condition;
    const char *reason, *actor;
    int64_t reported_ms, received_ms;
} rdx_lab_event_rec;

/* The specimen itself, for rdx_lab_custody_history. */
typedef struct rdx_lab_specimen_rec {
    const char *authority, *barcode, *patient_id, *order_sender, *order_control;
    const char *parent_barcode, *lab, *tests, *recollect_of, *recollected_as;
    const char *void_tests; /* tests rejected on this tube while the others stand */
    /*
     * Tests of this tube with a final result (OBX-11 F, C, U or X), comma-
     * separated in code order; a tube is resulted only when all its tests are.
     * "" when none.
     */
    const char *resulted_tests;
    rdx_lab_spec_state state;
    rdx_lab_condition condition;
} rdx_lab_specimen_rec;

typedef void (*rdx_lab_history_fn)(void *user, const rdx_lab_specimen_rec *spec,
                                   const rdx_lab_event_rec *ev);

/*
 * Call fn once per logged event of the specimen, oldest first (ev never
 * NULL: every specimen has its ORDER event). Errors: RDX_ENOTFOUND,
 * RDX_EINVAL (ambiguous without authority), RDX_EDB.
 */
rdx_status rdx_lab_custody_history(rdx_lab_store *s, const char *authority, const char *barcode,
                                   rdx_lab_history_fn fn, void *user, rdx_error *err);

/*
 * Specimens dispatched whose expected arrival plus grace_min has passed at
 * now_ms with no receipt scan: fn is called for each (lost in transit?).
 * Returns the count in *count.
 */
rdx_status rdx_lab_custody_overdue(rdx_lab_store *s, int64_t now_ms, unsigned grace_min,
                                   rdx_lab_history_fn fn, void *user, size_t *count,
                                   rdx_error *err);

/* The state of a whole order over its tubes (a split order has several). */
typedef struct rdx_lab_order_state {
    size_t tubes;             /* tubes that count: not the ones replaced by a recollection */
    size_t resulted;          /* of which resulted or delivered */
    size_t delivered;         /* of which delivered */
    size_t failed;            /* of which cancelled, lost, or rejected with no recollection */
    size_t tests;             /* tests on the tubes that count and are not failed */
    size_t tests_resulted;    /* of which with a final result (partial results when < tests) */
    rdx_lab_spec_state least; /* the least advanced state among the tubes still open */
    char summary[160];        /* "resulted", "partial results: 0 of 2 tube(s) resulted, 2 of 3
                                 test(s); least advanced in-testing" */
} rdx_lab_order_state;

typedef void (*rdx_lab_tube_fn)(void *user, const rdx_lab_specimen_rec *spec);

/*
 * Every tube of the order sender/control (MSH-4.1, MSH-10 of the order),
 * children and recollections included, in registration order, and the
 * order's state aggregated over them. fn may be NULL. RDX_ENOTFOUND when the
 * order has no tube; RDX_EDB.
 */
rdx_status rdx_lab_custody_order(rdx_lab_store *s, const char *sender, const char *control,
                                 rdx_lab_tube_fn fn, void *user, rdx_lab_order_state *out,
                                 rdx_error *err);

/* One tube moved by rdx_lab_custody_reroute. Strings valid during the callback. */
typedef struct rdx_lab_reroute_rec {
    const char *authority, *barcode;
    const char *old_lab;
    const rdx_lab_routing *routing; /* the new decisions for the tube's tests */
} rdx_lab_reroute_rec;

typedef void (*rdx_lab_reroute_fn)(void *user, const rdx_lab_reroute_rec *rec);

/*
 * Lab lab_id is down or full: route again, with router r (on which the
 * caller has marked the lab down), the tests of every tube sent to it that
 * has not been picked up yet (ordered or collected); tubes already
 * dispatched or further are left alone. A tube whose tests all go to one
 * new lab keeps its barcode; one that must be split is aliquoted into child
 * tubes "<barcode>.<n>" (SPM-3 = the tube). Each move is a REROUTE event in
 * the tube's log and updates the stored decisions. Stability is judged from
 * the original collection time. fn (may be NULL) is called per tube.
 * Errors: RDX_EDB, RDX_ENOMEM.
 */
rdx_status rdx_lab_custody_reroute(rdx_lab_store *s, rdx_lab_router *r, const char *lab_id,
                                   int64_t now_ms, rdx_lab_reroute_fn fn, void *user, size_t *count,
                                   rdx_error *err);

/*
 * Route the tubes rdx opened itself and nobody routed yet: recollections
 * (rdx_lab_custody_event REJECT, or an expired or wrong-container receipt;
 * they start with the old tube's lab) and the new collection of a refused
 * add-on (no lab), while still ordered. Each is routed by itself with
 * router r (load it with rdx_lab_store_load: loads and down labs), planned
 * as collected at now_ms, and handled as rdx_lab_custody_reroute handles a
 * tube: a REROUTE event in its log, the lab and stability set, the order's
 * decisions for its tests pointed at it (or added, for an add-on), split
 * into aliquots if it must. A tube is routed once (its REROUTE event marks
 * it). Its collect scan (rdx_lab_custody_event COLLECT) later records the
 * real collection time and moves its stability and expected arrival by the
 * delay. fn (may be NULL) is called per tube; *count (may be NULL) gets how
 * many. One transaction. Errors: RDX_EINVAL, RDX_EDB, RDX_ENOMEM.
 */
rdx_status rdx_lab_custody_route_new(rdx_lab_store *s, rdx_lab_router *r, int64_t now_ms,
                                     rdx_lab_reroute_fn fn, void *user, size_t *count,
                                     rdx_error *err);

/* What became of an add-on request. */
typedef struct rdx_lab_addon_outcome {
    int accepted;          /* 1: the test was added to the tube */
    char reason[320];      /* why, for people */
    char new_barcode[128]; /* refused: the new collection opened for the test */
} rdx_lab_addon_outcome;

/*
 * A test ordered after the tube was collected (an add-on). It is added to the
 * tube when the tube is not yet resulted, its lab performs the test on the
 * tube's specimen type, the specimen is still within the test's stability
 * (at the courier run's temperature, from collection to now_ms) and, when the
 * tube's volume and the tests' volumes are known, there is volume left.
 * Otherwise a new collection is opened (a new tube "<barcode>-A<n>" in state
 * ordered, same patient and order) and out->new_barcode names it. Both are
 * logged in the tube's chain of custody. The catalogue gives stability,
 * volumes and courier runs. Errors: RDX_ENOTFOUND (unknown barcode),
 * RDX_EINVAL (the test is already on the tube), RDX_EDB.
 */
rdx_status rdx_lab_custody_addon(rdx_lab_store *s, const rdx_lab_catalogue *c,
                                 const char *authority, const char *barcode, const char *test,
                                 const char *actor, int64_t now_ms, rdx_lab_addon_outcome *out,
                                 rdx_error *err);

/* ==== Results (lab/result.c) ============================================== */

/* New addressing for a message being forwarded; NULL keeps the field as it was. */
typedef struct rdx_lab_hl7_address {
    const char *sending_app;        /* MSH-3 */
    const char *sending_facility;   /* MSH-4 */
    const char *receiving_app;      /* MSH-5 */
    const char *receiving_facility; /* MSH-6 */
    const char *timestamp;          /* MSH-7 */
    const char *control_id;         /* MSH-10 */
} rdx_lab_hl7_address;

/*
 * Append m to out with MSH-3..7 and MSH-10 replaced (values UTF-8, escaped
 * for m's delimiters and MSH-18) and every other byte as parsed: how the hub
 * forwards a lab's ORU to the ordering clinic. Errors as rdx_lab_hl7_escape;
 * out is unchanged on failure.
 */
rdx_status rdx_lab_hl7_readdress(const rdx_lab_hl7_msg *m, const rdx_lab_hl7_address *a,
                                 rdx_buf *out, rdx_error *err);

/*
 * The order message for one performing lab: order m (the OML^O21 / ORM^O01
 * the routing rt was made from), readdressed with a, keeping every segment
 * before the first order group (PID, PV1, ...) and only the order groups
 * (ORC, TQ1, OBR and what follows each OBR) of the tests rt sends to lab_id.
 * In a split, each SPM of such a test carries the child tube in SPM-2 and
 * the parent in SPM-3 (HL7 v2.5.1 7.4.3.3, Specimen Parent IDs); other bytes
 * are as parsed. Appended to out. Errors: RDX_ENOTFOUND (no test goes to
 * lab_id), RDX_EINVAL (rt does not match m), RDX_ELIMIT/RDX_ENOMEM.
 */
rdx_status rdx_lab_order_for_lab(const rdx_lab_hl7_msg *m, const rdx_lab_routing *rt,
                                 const char *lab_id, const rdx_lab_hl7_address *a, rdx_buf *out,
                                 rdx_error *err);

/*
 * The order message for a tube rdx opened itself, once routed: a
 * recollection (rdx_lab_custody_event REJECT), an add-on's new collection
 * (rdx_lab_custody_addon), both routed by rdx_lab_custody_route_new, or an
 * aliquot poured by rdx_lab_custody_reroute. The clinic never ordered that
 * barcode, so it is written from the clinic's order as the hub received it
 * (kept by rdx_lab_hub_order, store version 5) and the tube's custody
 * record, as rdx_lab_order_for_lab writes the first: the same message type
 * (OML^O21 stays OML^O21), delimiters and MSH-18 character set; MSH
 * readdressed with a (a->timestamp required; a->receiving_facility NULL:
 * the lab's hl7_facility in c; a->control_id NULL: "CONTROL-BARCODE", never
 * the clinic's MSH-10 again; other NULL fields keep the clinic's); the
 * segments before the first order group (PID, PV1, ...) as sent; then per
 * test on the tube, in the clinic's order, its ORC group (ORC, TQ1), its
 * OBR with OBR-1 renumbered from 1 and OBR-7 the tube's collection time
 * (empty until its collect scan), and one SPM: SPM-1 the same number,
 * SPM-2 the new tube (barcode&authority), SPM-3 the tube it stands for
 * (HL7 v2.5.1 7.4.3.3 Specimen Parent IDs: the rejected tube a
 * recollection replaces, the tube an aliquot was poured from; empty for an
 * add-on's new collection), SPM-4..SPM-16 as the clinic's SPM of that test
 * (SPM-12, the amount drawn, only for the same tube moved whole to another
 * lab by a reroute), SPM-17 the collection time; and,
 * when the clinic's order had SAC segments, one SAC with SAC-3 the new
 * barcode after the first SPM. A test the clinic's order did not carry (an
 * add-on) goes under its first ORC group with OBR-2 the placer number and
 * OBR-4 CODE^NAME from c, its SPM modelled on a clinic SPM of the same
 * specimen type (else SPM-4 TYPE^NAME from c). Appended to out; out is
 * unchanged on failure.
 * Errors: RDX_EINVAL (NULL arguments or timestamp), RDX_ENOTFOUND (no such
 * tube; a tube with no performing lab yet; the clinic's order was not kept:
 * stored before version 5, or through rdx_lab_order_record), RDX_EDB,
 * RDX_EPARSE (the kept order no longer parses), RDX_ELIMIT, RDX_ENOMEM.
 * Thread safety: as the store (one thread at a time per store handle).
 */
rdx_status rdx_lab_order_for_new_tube(rdx_lab_store *s, const rdx_lab_catalogue *c,
                                      const char *authority, const char *barcode,
                                      const rdx_lab_hl7_address *a, rdx_buf *out, rdx_error *err);

/* What became of one ORU^R01. */
typedef struct rdx_lab_result_outcome {
    rdx_lab_ack_code code;
    unsigned hl7_error;  /* HL7 table 0357 for the ERR segment; 0 when accepted */
    char err_segment[4]; /* ERR-2 location */
    unsigned err_sequence, err_field;
    char text[256];     /* why, for MSA-3 / ERR-8 and for people */
    int duplicate;      /* this sender's MSH-10 was already applied: nothing done again */
    size_t specimens;   /* specimens with results in the message */
    size_t partial;     /* of which some tests are still to come (they stay in testing) */
    size_t applied;     /* observations stored */
    size_t corrections; /* of which corrections (OBX-11 = C), superseding earlier values */
    char clinic[64];    /* MSH-4.1 of the order: where the result goes */
} rdx_lab_result_outcome;

/*
 * Match a lab's ORU^R01 to its specimens and apply it. Each OBR is matched
 * by the barcode of the SPM after it (SPM-2), else by its placer order
 * number (OBR-2.1) and test. Outcomes (in *out; the function returns RDX_OK):
 *  - AA: every OBR matched a specimen in testing (a received one is taken as
 *    started), or one already resulted whose OBX carry corrections (OBX-11 C,
 *    which supersede the earlier values, history kept); the observations are
 *    stored, and each OBR's test (OBR-4.1) gets its result state: final when
 *    every OBX of the OBR has OBX-11 F, C, U or X (with no OBX: OBR-25),
 *    else preliminary. A tube moves to RESULTED once every one of its tests
 *    (those not voided) is final; until then it stays in testing and the
 *    log gets a PARTIAL event "still to come: ..." (partial results:
 *    out->partial);
 *  - AE: the message is bad (not ORU^R01, OBX-11 missing: ERR 101) or names
 *    an unknown specimen or order (ERR 204, location OBR-2);
 *  - AR: the specimen is cancelled, rejected, lost or not yet at the lab, or
 *    it or the OBR's test is already final and the result is not a
 *    correction (ERR 206).
 * A message whose sender and MSH-10 were already applied is not applied
 * again (duplicate = 1, AA). Nothing is stored unless the outcome is AA.
 * Errors: RDX_EDB, RDX_ENOMEM.
 */
rdx_status rdx_lab_result_apply(rdx_lab_store *s, const rdx_lab_hl7_msg *oru, int64_t now_ms,
                                rdx_lab_result_outcome *out, rdx_error *err);

/* ==== Hub steps (lab/hub.c) ================================================ */

/*
 * Register every tube routing rt sends somewhere (rdx_lab_custody_register)
 * and store rt as the decisions of order o (rdx_lab_store_save), in one
 * transaction: either the tubes and the decisions are all stored, or nothing
 * is (a barcode refused for another patient leaves no trace of the order).
 * Errors: those of rdx_lab_custody_register and rdx_lab_store_save.
 */
rdx_status rdx_lab_order_record(rdx_lab_store *s, const rdx_lab_order *o, const rdx_lab_routing *rt,
                                int64_t now_ms, rdx_error *err);

/* How the hub addresses what it writes. */
typedef struct rdx_lab_hub_opts {
    const char *hub_app;      /* MSH-3 of messages written; NULL or "": "RDX" */
    const char *hub_facility; /* MSH-4; NULL or "": "NJ-HUB" */
    const char *timestamp;    /* MSH-7, HL7 DTM, e.g. "20261201093000+0800" (required) */
    int64_t now_ms;           /* processing time: custody log, decisions, results */
} rdx_lab_hub_opts;

/* One message to send: ER7 with CR after each segment, and where it goes. */
typedef struct rdx_lab_hub_msg {
    const char *facility; /* a lab id (orders), the sender (ACK, response), the clinic (ORU) */
    const uint8_t *data;
    size_t len;
} rdx_lab_hub_msg;

typedef struct rdx_lab_hub_order_out rdx_lab_hub_order_out;

/*
 * A clinic's order (one ER7 message, MLLP frame removed) as the hub takes it:
 *  1. parse it and read the order (OML^O21, OML^O33, ORM^O01);
 *  2. in one store transaction: an order already routed (same MSH-4.1 and
 *     MSH-10) gets its stored decisions; otherwise each lab's load is read
 *     from the store (and labs marked down are skipped), every test routed
 *     (rdx_lab_route), its tubes registered and the decisions stored;
 *  3. build, as buffers owned by *out: the order each performing lab
 *     receives (rdx_lab_order_for_lab, addressed to its facility), the ACK
 *     to the clinic (MSA-1 AA; the accept acknowledgement), and the order
 *     response telling the clinic where each test went: ORL^O22 for
 *     OML^O21, ORR^O02 for ORM^O01, ORL^O34 for OML^O33 (HL7 v2.5.1 4.4).
 *     Each test has ORC-1 OK (routed or queued, ORC-5 SC) or UA (refused),
 *     ORC-2 its placer number, ORC-16 = route code ^ reason ^ 99RDX and,
 *     when routed, ^ lab id ^ lab name ^ 99RDXLAB; then its OBR and (not in
 *     ORR^O02) the SPM of the tube sent, child in SPM-2, parent in SPM-3.
 * A message that cannot be parsed or is not a routable order gets an AE ACK
 * (ERR 102 or 101) and nothing else; one whose tube barcode belongs to
 * another patient or order, or without any collection time, gets an AR ACK
 * (ERR 205 or 101) and nothing is stored. These return RDX_OK: look at
 * rdx_lab_hub_order_code. Returns an error (and no *out) only when the
 * store or memory fails (RDX_EDB, RDX_ENOMEM, RDX_ELIMIT): the order was not
 * taken, and the caller should retry rather than ACK. Errors also RDX_EINVAL
 * (NULL argument, no timestamp). The catalogue c must be the one the store
 * was routed with. Thread safety: one store handle per thread.
 */
rdx_status rdx_lab_hub_order(rdx_lab_store *s, const rdx_lab_catalogue *c, const void *data,
                             size_t len, const rdx_lab_hub_opts *opts, rdx_lab_hub_order_out **out,
                             rdx_error *err);
/* Free the outcome and its buffers; NULL is a no-op. */
void rdx_lab_hub_order_free(rdx_lab_hub_order_out *h);
/* MSA-1 of the ACK: AA taken (each test routed or refused with a reason), AE bad, AR refused. */
rdx_lab_ack_code rdx_lab_hub_order_code(const rdx_lab_hub_order_out *h);
/* One line for people: "2 of 3 test(s) routed to 2 lab(s)" or what was wrong. Owned by h. */
const char *rdx_lab_hub_order_text(const rdx_lab_hub_order_out *h);
/* 1 when the order had been routed before (its stored decisions were reused). */
int rdx_lab_hub_order_already_routed(const rdx_lab_hub_order_out *h);
/* The decisions, one per test in order (owned by h); NULL unless the code is AA. */
const rdx_lab_routing *rdx_lab_hub_order_routing(const rdx_lab_hub_order_out *h);
/* The ACK to the clinic (always present). Views are valid until h is freed. */
void rdx_lab_hub_order_ack(const rdx_lab_hub_order_out *h, rdx_lab_hub_msg *out);
/* The order response to the clinic; 0 (and an empty view) when there is none (AE, AR). */
int rdx_lab_hub_order_response(const rdx_lab_hub_order_out *h, rdx_lab_hub_msg *out);
/* The per-lab orders, in order of each lab's first test; _at returns 0 when i is out of range. */
size_t rdx_lab_hub_order_lab_count(const rdx_lab_hub_order_out *h);
int rdx_lab_hub_order_lab_at(const rdx_lab_hub_order_out *h, size_t i, rdx_lab_hub_msg *out);

typedef struct rdx_lab_hub_result_out rdx_lab_hub_result_out;

/*
 * A lab's ORU^R01 (one ER7 message) as the hub takes it: matched and applied
 * with rdx_lab_result_apply (custody, observations, corrections, duplicates
 * once), then, as buffers owned by *out, the ACK for the lab (AA, AE or AR
 * with an ERR segment) and, when accepted and not a duplicate, the ORU
 * forwarded to the ordering clinic (rdx_lab_hl7_readdress: MSH-3..7 and
 * MSH-10 rewritten, every other byte as the lab sent it). A message that
 * cannot be parsed gets an AE ACK (ERR 102). Returns an error (no *out) only
 * for RDX_EINVAL (NULL argument, no timestamp), RDX_EDB, RDX_ENOMEM,
 * RDX_ELIMIT. Thread safety: one store handle per thread.
 */
rdx_status rdx_lab_hub_result(rdx_lab_store *s, const void *data, size_t len,
                              const rdx_lab_hub_opts *opts, rdx_lab_hub_result_out **out,
                              rdx_error *err);
/* Free the outcome and its buffers; NULL is a no-op. */
void rdx_lab_hub_result_free(rdx_lab_hub_result_out *h);
/* What the result did (code, error location, counts, the clinic). Owned by h. */
const rdx_lab_result_outcome *rdx_lab_hub_result_outcome(const rdx_lab_hub_result_out *h);
/* The ACK for the lab (always present). Valid until h is freed. */
void rdx_lab_hub_result_ack(const rdx_lab_hub_result_out *h, rdx_lab_hub_msg *out);
/* The ORU for the clinic; 0 (empty view) when there is none (not AA, or a duplicate). */
int rdx_lab_hub_result_forward(const rdx_lab_hub_result_out *h, rdx_lab_hub_msg *out);

#ifdef __cplusplus
}
#endif

#endif /* RDX_LAB_H */
