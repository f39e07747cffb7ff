/*
 * lab/lab_int.h - private to the lab engine: the message index shared by the
 * HL7 files, and small text helpers. Never included from outside lab/ (only
 * the lab engine's own unit tests may include it).
 */
#ifndef RDX_LAB_INT_H
#define RDX_LAB_INT_H

#include "rdx/lab.h"

#include <stddef.h>
#include <stdint.h>

/* Character sets MSH-18 can select (HL7 v2.5.1 table 0211, the ones rdx supports). */
typedef enum lab_cs {
    LAB_CS_DEFAULT = 0, /* absent or "ASCII": UTF-8 if valid, else ISO 8859-1 */
    LAB_CS_UTF8,        /* "UNICODE UTF-8" */
    LAB_CS_GB18030,     /* "GB 18030-2000" */
    LAB_CS_8859_1,      /* "8859/1" */
    LAB_CS_ICONV        /* another 8859 part, converted with iconv */
} lab_cs;

/* One segment: where its bytes are, and where its fields start. */
typedef struct lab_seg {
    uint32_t off;    /* into msg->raw */
    uint32_t len;    /* without the separator */
    uint32_t field0; /* index of its first element in msg->fstart */
    uint32_t nelem;  /* elements: the id, then each field (for MSH: MSH-2 on) */
    char id[4];
} lab_seg;

struct rdx_lab_hl7_msg {
    uint8_t *raw; /* copy of the input */
    size_t rawlen;
    lab_seg *segs;
    size_t nsegs;
    uint32_t *fstart; /* element start offsets into raw, per segment */
    size_t nfstart;
    rdx_lab_hl7_delims d;
    lab_cs cs;
    char charset[48];    /* MSH-18 first repetition as written */
    char iconv_name[24]; /* for LAB_CS_ICONV / GB18030 */
    int envelope;        /* batch envelope (FHS/BHS/BTS/FTS), not a message */
};

/*
 * Length of the character at p[i] (bytes left: n - i). GB 18030 lead bytes
 * are 0x81..0xFE; a second byte 0x30..0x39 makes a four-byte sequence,
 * anything else a two-byte one. Trail bytes may equal '|', '^', '~' or '\\',
 * so a GB 18030 message is scanned character by character, never byte by
 * byte. Every other supported character set is safe to scan bytewise.
 */
static inline size_t lab_mb_step(lab_cs cs, const uint8_t *p, size_t i, size_t n)
{
    if (cs != LAB_CS_GB18030 || p[i] < 0x81 || p[i] > 0xFE) {
        return 1;
    }
    size_t step = (i + 1 < n && p[i + 1] >= 0x30 && p[i + 1] <= 0x39) ? 4 : 2;
    return step > n - i ? n - i : step;
}

/* Parse modes for lab_hl7_parse_mode(). */
enum { LAB_PARSE_MESSAGE = 0, LAB_PARSE_ENVELOPE = 1 };

rdx_status lab_hl7_parse_mode(const void *data, size_t len, int mode, rdx_lab_hl7_msg **out,
                              rdx_error *err);

/* A resolved place in a message: raw bytes plus whether it was one subcomponent. */
typedef struct lab_span {
    const uint8_t *p;
    size_t n;
    int literal; /* MSH-1 / MSH-2: not to be split or unescaped */
} lab_span;

/*
 * Locate seg occurrence occ (1-based) of id; returns its index or SIZE_MAX.
 */
size_t lab_hl7_find_seg(const rdx_lab_hl7_msg *m, const char *id, size_t occ);

/*
 * Element slice of field `field` (HL7 numbering) of segment index si; empty
 * slice when absent. Sets literal for MSH-1/MSH-2.
 */
lab_span lab_hl7_field(const rdx_lab_hl7_msg *m, size_t si, unsigned field);

/*
 * Narrow a slice to repetition rep / component comp / subcomponent sub
 * (1-based; 0 = do not narrow at that level).
 */
lab_span lab_hl7_narrow(const rdx_lab_hl7_msg *m, lab_span s, unsigned rep, unsigned comp,
                        unsigned sub);

/* Decode (unescape, convert to UTF-8) span s and append to out; what names it for errors. */
rdx_status lab_hl7_decode(const rdx_lab_hl7_msg *m, lab_span s, const char *what, rdx_buf *out,
                          rdx_error *err);

/* Decode segment si field/rep/comp/sub into a new NUL-terminated string (malloc'd). */
rdx_status lab_hl7_dup(const rdx_lab_hl7_msg *m, size_t si, unsigned field, unsigned rep,
                       unsigned comp, unsigned sub, char **out, rdx_error *err);

/* Nonzero when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int lab_utf8_valid(const uint8_t *s, size_t n);

/* Map an MSH-18 value to a character set; -1 when unsupported. */
int lab_cs_from_name(const char *name, lab_cs *cs, char *iconv_name, size_t iconv_cap);

/* Append m's MSH with the replacements of a (NULL fields kept), then CR. */
rdx_status lab_hl7_write_msh(const rdx_lab_hl7_msg *m, const rdx_lab_hl7_address *a, rdx_buf *b,
                             rdx_error *err);

/* ---- Catalogue (lab/catalogue.c), shared with the router --------------- */

typedef struct cat_tat {
    char *test;
    unsigned minutes;
} cat_tat;

typedef struct cat_lab {
    char *id, *name, *city, *district, *facility;
    char **tests;
    size_t ntests;
    char **types;
    size_t ntypes;
    cat_tat *tats;
    size_t ntats;
    unsigned capacity, open_min, close_min, tat_min;
    unsigned days; /* days it tests: bit 0 Monday .. bit 6 Sunday (all when not given) */
    unsigned line;
    unsigned have; /* bit set of keys given */
} cat_lab;

/* Weekday (0 = Monday .. 6 = Sunday) of local day `day` (days since 1970-01-01, a Thursday). */
static inline int lab_cat_weekday(int64_t day)
{
    return (int)((day % 7 + 7 + 3) % 7);
}

/* Is lab l open on local day `day` (days since 1970-01-01, a Thursday)? */
static inline int lab_cat_open_on(const cat_lab *l, int64_t day)
{
    return (l->days >> lab_cat_weekday(day)) & 1u;
}

typedef struct cat_clinic {
    char *id, *name, *city, *district, *facility;
    unsigned line;
    unsigned have;
} cat_clinic;

typedef struct cat_run {
    char *clinic_id, *lab_id;
    size_t clinic, lab; /* resolved indices */
    unsigned *pickups;  /* `pickups`: minutes after midnight, ascending */
    size_t npickups;
    unsigned days;   /* days the run goes: bit 0 Monday .. bit 6 Sunday (all when not given) */
    unsigned own;    /* days with their own timetable (`pickups DAYS`) */
    unsigned *wk[7]; /* those timetables, per weekday (0 = Monday), ascending */
    size_t nwk[7];
    unsigned transit_min;
    int refrigerated;
    unsigned line;
    unsigned have;
} cat_run;

/*
 * The pickups of run r on weekday wd (0 = Monday): its own timetable for that
 * day, else the run's `pickups`; none (*n = 0) on a day the run does not go.
 */
static inline const unsigned *lab_cat_run_pickups(const cat_run *r, int wd, size_t *n)
{
    if (!((r->days >> wd) & 1u)) {
        *n = 0;
        return NULL;
    }
    if ((r->own >> wd) & 1u) {
        *n = r->nwk[wd];
        return r->wk[wd];
    }
    *n = r->npickups;
    return r->pickups;
}

/* Stability of one test on one specimen type; -1 = not given. */
typedef struct cat_stab {
    char *test, *type;
    int room_min, fridge_min;
    double volume_ml; /* minimum volume for the test on this type; negative: not given */
} cat_stab;

typedef struct cat_named {
    char *code, *name;
} cat_named;

struct rdx_lab_catalogue {
    char *network_name;
    int utc_offset_min;
    cat_lab *labs;
    size_t nlabs;
    cat_clinic *clinics;
    size_t nclinics;
    cat_run *runs;
    size_t nruns;
    cat_stab *stabs;
    size_t nstabs;
    cat_named *tests; /* display names from [stability CODE] name = */
    size_t ntests;
    cat_named *types; /* [specimen-type CODE] name = */
    size_t ntypes;
};

/* Lookups (linear: a network has tens of labs and tests). */
size_t lab_cat_find_lab(const rdx_lab_catalogue *c, const char *id);
size_t lab_cat_find_clinic_by_facility(const rdx_lab_catalogue *c, const char *facility);
const cat_run *lab_cat_find_run(const rdx_lab_catalogue *c, size_t clinic, size_t lab);
const cat_stab *lab_cat_find_stab(const rdx_lab_catalogue *c, const char *test, const char *type);
int lab_cat_lab_performs(const cat_lab *l, const char *test);
int lab_cat_lab_accepts(const cat_lab *l, const char *type);
unsigned lab_cat_lab_tat(const cat_lab *l, const char *test);
const char *lab_cat_type_name(const rdx_lab_catalogue *c, const char *type);
const char *lab_cat_test_name(const rdx_lab_catalogue *c, const char *test);

/* ---- The SQLite store (lab/store.c), shared with lab/custody.c ---------- */

struct sqlite3;
struct rdx_lab_store {
    struct sqlite3 *db;
    char *path;
};

/* ---- Routings built outside the router (the store) ---------------------- */

/* An empty routing, and appending a copy of d (all strings copied). */
rdx_status lab_routing_new(rdx_lab_routing **out);
rdx_status lab_routing_push(rdx_lab_routing *rt, const rdx_lab_decision *d);

/* ---- Custody log (lab/custody.c) ----------------------------------------- */

/*
 * Append one event to the log as it is (no state change): RDX_OK, or *dup = 1
 * (may be NULL) when the same event was logged before; RDX_EDB otherwise
 * (sqlite3_errmsg has why).
 */
rdx_status lab_custody_log(rdx_lab_store *s, const char *auth, const char *barcode,
                           rdx_lab_event_kind k, int from, int to, int cond, const char *reason,
                           const char *actor, int64_t reported, int64_t received, int *dup);

/*
 * A tube's custody record (lab_specimen) as the re-routing (lab/reroute.c)
 * and the orders of new tubes (lab/order_new.c) read it. Strings are owned
 * (malloc'd, "" for an empty or NULL column); parent is the tube this one
 * stands for: the rejected tube it recollects, else the tube it was poured
 * from ("" for a tube of the clinic's own).
 */
typedef struct lab_tube {
    char *authority, *barcode, *sender, *control, *patient, *type, *tests, *lab, *placer, *parent;
    int64_t collected_ms; /* INT64_MIN while not collected */
    int state;            /* rdx_lab_specimen_state */
} lab_tube;

/* The columns lab_tube_read expects first, in this order: SELECT LAB_TUBE_COLUMNS FROM
 * lab_specimen. */
#define LAB_TUBE_COLUMNS                                                                           \
    "authority, barcode, order_sender, order_control, patient_id, specimen_type, tests, lab, "     \
    "placer, CASE WHEN recollect_of <> '' THEN recollect_of ELSE parent_barcode END, "             \
    "collected_ms, state"
/* How many columns LAB_TUBE_COLUMNS names (a query's own columns come after them). */
#define LAB_TUBE_NCOLS 12

struct sqlite3_stmt;
/*
 * Copy the current row of q (stepped to SQLITE_ROW, its first columns
 * LAB_TUBE_COLUMNS) into *t, which is cleared first. RDX_ENOMEM (err set)
 * when a copy fails: t then holds what was copied, so lab_tube_free(t) in
 * every case. Not thread-safe beyond the store's own rules (one thread per
 * store).
 */
rdx_status lab_tube_read(struct sqlite3_stmt *q, lab_tube *t, rdx_error *err);
/* Free t's strings (t itself is the caller's); NULL strings are fine. */
void lab_tube_free(lab_tube *t);
/* A copy (malloc'd) of the text of column i of q's current row, "" for NULL; NULL when out of
 * memory. */
char *lab_col_dup(struct sqlite3_stmt *q, int i);

/* ---- Store transactions (lab/store.c) ------------------------------------ */

/* BEGIN IMMEDIATE; custody and result steps inside use savepoints, which nest. */
rdx_status lab_store_begin(rdx_lab_store *s, rdx_error *err);
/* COMMIT when st is RDX_OK (a failed commit is rolled back), else ROLLBACK; returns the outcome. */
rdx_status lab_store_end(rdx_lab_store *s, rdx_status st, rdx_error *err);
/*
 * rdx_lab_store_load for the local days [from_day, to_day] only (and the labs
 * marked down): what routing one order needs, at a cost that does not grow
 * with the decisions stored (lab_load, schema version 4).
 */
rdx_status lab_store_load_days(rdx_lab_store *s, rdx_lab_router *r, int64_t from_day,
                               int64_t to_day, rdx_error *err);
/*
 * The local days whose loads routing order o can read or change on catalogue
 * c (see lab/route.c): from the day before its first collection (or MSH-7)
 * to its last plus every wait the router allows. 0, or -1 when o has no time.
 */
int lab_route_load_window(const rdx_lab_catalogue *c, const rdx_lab_order *o, int64_t *from_day,
                          int64_t *to_day);
/* Keep the clinic's order (ER7 as received) for later orders of new tubes; a second copy is
 * ignored. */
rdx_status lab_store_keep_order_msg(rdx_lab_store *s, const char *sender, const char *control_id,
                                    const void *data, size_t len, int64_t now_ms, rdx_error *err);
/* Append the kept order to out: RDX_OK, RDX_ENOTFOUND (not kept; err untouched), RDX_EDB. */
rdx_status lab_store_order_msg(rdx_lab_store *s, const char *sender, const char *control_id,
                               rdx_buf *out, rdx_error *err);
/* HL7 DTM "YYYYMMDDHHMMSS+HHMM" of ms_utc at the local offset (minutes). */
void lab_fmt_dtm(int64_t ms_utc, int off_min, char out[32]);
/* rdx_lab_store_save without its own transaction. */
rdx_status lab_store_save_rows(rdx_lab_store *s, const char *sender, const char *control_id,
                               const rdx_lab_routing *rt, int64_t now_ms, rdx_error *err);

/* ---- Synthetic orders (lab/order.c) ------------------------------------- */

/*
 * An order of one tube with the tests of tests_csv, as rerouting needs it:
 * collected at collected_ms, but no courier pickup before not_before_ms.
 */
rdx_status lab_order_synthetic(const char *sender, const char *control, const char *patient,
                               const char *barcode, const char *authority, const char *type,
                               int64_t collected_ms, int64_t not_before_ms, const char *tests_csv,
                               rdx_lab_order **out);
/* The earliest pickup an order allows (INT64_MIN for orders read from HL7). */
int64_t lab_order_not_before(const rdx_lab_order *o);

#endif /* RDX_LAB_INT_H */
