/*
 * dispatch.h - the hub's dispatcher: a node whose configuration has a
 * [dispatch] section runs the engines on what it receives and sends the
 * results on (cli/dispatch.c). The engines never call one another; this is
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
 */
#ifndef RDX_CLI_DISPATCH_H
#define RDX_CLI_DISPATCH_H

#include "rdx/common.h"
#include "rdx/transport.h"

typedef struct rdx_dispatch rdx_dispatch;

/*
 * Read cfg's [dispatch] section. *out is NULL (and RDX_OK returned) when the
 * file has none: the node only stores what it receives. err names the line of
 * a bad key. cfg must outlive the dispatcher.
 */
rdx_status rdx_dispatch_new(const rdx_transport_config *cfg, const rdx_logger *log,
                            rdx_dispatch **out, rdx_error *err);

/* Process every due inbox case once; *done gets how many were completed or parked. */
rdx_status rdx_dispatch_pass(rdx_dispatch *d, size_t *done, rdx_error *err);

/* Run passes every 100 ms until rdx_dispatch_stop. For a thread: arg is the dispatcher. */
void *rdx_dispatch_thread(void *arg);

/* Ask a running dispatcher to stop after the case in hand; thread-safe. */
void rdx_dispatch_stop(rdx_dispatch *d);

/* Free a stopped dispatcher. NULL is a no-op. */
void rdx_dispatch_free(rdx_dispatch *d);

#endif
