/*
 * imaging_limits.h - caps on what a DICOM file or a folder tree may ask of the
 * imaging engine. Each says why it is set where it is.
 */
#ifndef RDX_IMAGING_LIMITS_H
#define RDX_IMAGING_LIMITS_H

/*
 * Attribute values longer than this are left on disk while the header is
 * parsed and read only when asked for. Every attribute the index uses is far
 * shorter (UIDs are 64 bytes, LO 64 chars, an SR TEXT value rarely passes a few
 * KiB), while private blobs and overlays can be megabytes.
 */
#define RDX_IMG_MAX_READ_LENGTH (64u * 1024u)

/*
 * The longest text value handed out as UTF-8. UT may hold 2^32-2 bytes; an
 * index field or a report paragraph never needs more than 1 MiB, and the cap
 * keeps a hostile length from turning into a huge allocation.
 */
#define RDX_IMG_MAX_TEXT_BYTES (1024u * 1024u)

/*
 * Values of Specific Character Set (0008,0005). PS3.3 C.12.1.1.2 lists well
 * under 30 defined terms, and a real file uses at most 3 or 4 at once.
 */
#define RDX_IMG_MAX_CHARSET_TERMS 16

/*
 * Depth of sequence nesting the engine follows (SR content trees, references).
 * Real SR trees are rarely deeper than 10; the cap bounds recursion.
 */
#define RDX_IMG_MAX_SEQ_DEPTH 32

/* Content items visited in one SR document; a long real report has a few thousand. */
#define RDX_IMG_MAX_SR_ITEMS 100000

/* The readable text of one report; real reports are a few KiB. */
#define RDX_IMG_MAX_REPORT_BYTES (4u * 1024u * 1024u)

/*
 * A deflated data set (PS3.5 A.5) is inflated in memory up to this size. Deflate
 * compresses up to 1032:1, so a small hostile file could otherwise ask for
 * gigabytes; real deflated headers (SR, presentation states) are well under this.
 */
#define RDX_IMG_MAX_INFLATED (256u * 1024u * 1024u)

/* A deflated file is read whole; larger ones are refused (real ones are KiB to a few MiB). */
#define RDX_IMG_MAX_DEFLATED_FILE (256u * 1024u * 1024u)

/*
 * Decoded pixels of one file held in memory at once. A 2000-frame 512x512
 * 16-bit cine is 1 GiB; anything larger is refused rather than swapped.
 */
#define RDX_IMG_MAX_PIXEL_BYTES (1024u * 1024u * 1024u)

/*
 * Number of Frames (0028,0008) accepted. Cine loops and enhanced CT/MR have
 * a few thousand frames; a whole-slide image level can have a few hundred
 * thousand tiles. IS allows 2^31-1, which only a hostile header declares.
 */
#define RDX_IMG_MAX_FRAMES 1000000u

/*
 * Fragments of one encapsulated Pixel Data element regrouped into frames
 * (PS3.5 A.4, empty Basic Offset Table). Encoders split a frame into a few
 * fragments of some KiB to MiB; a million would be a hostile file asking for
 * a million small allocations.
 */
#define RDX_IMG_MAX_FRAGMENTS 1000000u

/*
 * Wall-clock seconds a decoder child may take for one frame before it is
 * killed (imaging/sandbox.c). A 1 GiB frame decodes in a few seconds here;
 * a codec looping on hostile data would otherwise hold its caller forever.
 */
#define RDX_IMG_DECODE_SECONDS 120

/* The largest preview side, in pixels: enough for a full-size 4k mammogram row. */
#define RDX_IMG_MAX_PREVIEW_SIDE 8192u

/* Folder nesting followed by the indexer; PACS archives nest 4-8 deep. */
#define RDX_IMG_MAX_WALK_DEPTH 64

/* The longest path the indexer records; PATH_MAX on Linux. */
#define RDX_IMG_MAX_PATH 4096

/* Parser threads of rdx img index -j: more than the cores only adds contention. */
#define RDX_IMG_MAX_JOBS 64

/*
 * Times one batch transaction is run again when PostgreSQL rolls it back
 * for a deadlock, a serialization failure or a row another indexer wrote
 * under it (imaging/index.c), waiting 10 ms x attempt^2 between tries: about
 * 4 s in all before the error reaches the user.
 */
#define RDX_IMG_TXN_RETRIES 10

/* Instances written per transaction: large enough to amortise the commit. */
#define RDX_IMG_BATCH 500

/*
 * Bytes of records (mostly SR report text) a batch holds before it is
 * written early: 500 long reports could otherwise keep gigabytes in memory.
 */
#define RDX_IMG_BATCH_BYTES (64u * 1024u * 1024u)

#endif /* RDX_IMAGING_LIMITS_H */
