/*
 * rdx/hub.h - the hub: its dispatcher: a node whose configuration has a
 * [dispatch] section runs the engines on what it receives and sends the
 * results on (hub/dispatch.c). The engines never call one another; this is
 * the one place that composes them, each run as a child `rdx` process so a
 * crash or a hang-up in one engine on hostile input cannot take the node down.
 *
 *   [dispatch]
 *   engines = ecg, dicom, lab        ; which case kinds this node processes
 *   index = hub/index.db             ; imaging index (SQLite) for dicom cases
 *   archive = data/hub/studies       ; where received studies are kept (default DATA/studies)
 *   catalogue = network.ini          ; lab catalogue for routing lab orders
 *   lab_db = hub/lab.db              ; lab decision and custody store (SQLite)
 *   hub_facility = NJ-HUB            ; the hub's HL7 facility (MSH-4 of what it sends)
 *   max_attempts = 3                 ; failures before a case is parked
 *   retry_ms = 1000                  ; first retry delay, doubled each time
 *   max_pull_bytes = 8589934592      ; largest study one pull sends (1 .. 1 TiB);
 *                                    ; a bigger one is refused with refused.txt
 *   jobs = 2                         ; cases processed at once (1 .. 64, default 2)
 *
 * Concurrency: up to `jobs` cases are in hand at once, each on its own
 * thread running its engines as child processes. Two cases from one sender
 * are never in hand together (a sender's cases are processed in the order
 * they arrived), nor two that write the same store (dicom cases and study
 * requests share the imaging index; lab orders and results the lab store);
 * ECG cases share nothing. Every case is still completed exactly once: its
 * outputs and its completion are one transaction, whichever thread runs it.
 *
 * Wake-up: inotify on the node's data directory wakes the dispatcher when
 * node.db changes (a case arrived); a poll (100 ms without inotify, up to
 * 1 s with it, for retries as they fall due) stays as the fallback.
 */
#ifndef RDX_HUB_H
#define RDX_HUB_H

#include "rdx/common.h"
#include "rdx/transport.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rdx_hub_dispatcher rdx_hub_dispatcher;

/* The cases a dispatcher processes at once unless [dispatch] jobs says otherwise (2 cores). */
#define RDX_HUB_JOBS_DEFAULT 2
/* The most [dispatch] jobs (and rdx_hub_dispatcher_set_jobs) may ask for. */
#define RDX_HUB_JOBS_MAX 64

/*
 * Read cfg's [dispatch] section. *out is NULL (and RDX_OK returned) when the
 * file has none: the node only stores what it receives. err names the line of
 * a bad key. cfg must outlive the dispatcher. The dispatcher holds two file
 * descriptors (an eventfd and an inotify instance, both close-on-exec) until
 * rdx_hub_dispatcher_free.
 */
rdx_status rdx_hub_dispatcher_new(const rdx_transport_config *cfg, const rdx_logger *log,
                                  rdx_hub_dispatcher **out, rdx_error *err);

/*
 * Set how many cases d processes at once (1 .. RDX_HUB_JOBS_MAX), overriding
 * [dispatch] jobs; `rdx node serve --jobs`. Call it before the dispatcher
 * runs (not thread-safe against a running one). Errors: RDX_EINVAL.
 */
rdx_status rdx_hub_dispatcher_set_jobs(rdx_hub_dispatcher *d, unsigned jobs, rdx_error *err);

/*
 * Process every inbox case due now once, up to `jobs` at a time under the
 * rules above, and return when all are completed, failed or parked; *done
 * gets how many were completed or parked. Errors: those of
 * rdx_transport_inbox_pending, RDX_ENOMEM. Not to be run beside the thread.
 */
rdx_status rdx_hub_dispatcher_pass(rdx_hub_dispatcher *d, size_t *done, rdx_error *err);

/*
 * Process cases as they arrive until rdx_hub_dispatcher_stop, then finish the
 * cases in hand and return. For a thread: arg is the dispatcher.
 */
void *rdx_hub_dispatcher_thread(void *arg);

/* Ask a running dispatcher to stop after the cases in hand; thread-safe. */
void rdx_hub_dispatcher_stop(rdx_hub_dispatcher *d);

/* Free a stopped dispatcher. NULL is a no-op. */
void rdx_hub_dispatcher_free(rdx_hub_dispatcher *d);

/* ==== What members send the dispatcher (hub/input.c) ===================== */

/*
 * Parse a request.txt: one line "study-uid=UID" (blank lines and '#'
 * comments aside), UID a DICOM UID (digits and dots, 1-64, no empty
 * component). uid gets it. Errors: RDX_ELIMIT over 4 KiB, RDX_EPARSE naming
 * the line. p may be NULL when n is 0. Thread-safe.
 */
rdx_status rdx_hub_request_parse(const uint8_t *p, size_t n, char uid[65], rdx_error *err);

/*
 * Parse the ecg.ini that comes with a CSV ECG upload: "fs = HZ" (the
 * sampling rate of the CSV's rows, required, > 0 and at most 100 kHz), an
 * optional "[ecg]" section line, blank lines and '#' or ';' comments. The
 * lead names are the CSV's header row. *fs_hz gets the rate. Errors:
 * RDX_ELIMIT over 4 KiB, RDX_EPARSE naming the line (an unknown key, a bad
 * or second fs, no fs at all). p may be NULL when n is 0. Thread-safe.
 */
rdx_status rdx_hub_ecg_meta_parse(const uint8_t *p, size_t n, double *fs_hz, rdx_error *err);

/* One chain-of-custody scan from a custody.tsv line. */
typedef struct rdx_hub_custody_scan {
    char barcode[65];
    char event[65];     /* as `rdx lab event` names it: collect, dispatch, receive, ... */
    char at[65];        /* HL7 DTM */
    char condition[65]; /* receive: ok, hemolysed, ...; "" when not given */
    unsigned line;
} rdx_hub_custody_scan;

/*
 * Parse a custody.tsv: one scan a line, "BARCODE EVENT DTM [CONDITION]"
 * separated by spaces or tabs ('#' comments and blank lines aside). Every
 * field is 1-64 of [A-Za-z0-9.+_-] and never starts with '-', so it can be
 * passed to a command as an argument and never read as an option. Calls fn
 * for each scan in order (a non-OK return stops and is returned); *count (may
 * be NULL) gets the number of scans. The whole file is checked before fn is
 * first called, so a bad line means no scan is acted on. Errors: RDX_ELIMIT (over 64 KiB or 1,024
 * scans), RDX_EPARSE naming the line.
 */
rdx_status rdx_hub_custody_parse(const uint8_t *p, size_t n,
                                 rdx_status (*fn)(void *u, const rdx_hub_custody_scan *scan),
                                 void *u, size_t *count, rdx_error *err);

#endif
