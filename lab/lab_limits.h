/*
 * lab/lab_limits.h - caps on what hostile or broken input can ask the lab
 * engine for. Each is far above what real traffic needs (the network carries
 * about 27,000 reports a day, a few kilobytes each) and low enough that a
 * hostile peer cannot make rdx allocate without bound.
 */
#ifndef RDX_LAB_LIMITS_H
#define RDX_LAB_LIMITS_H

/*
 * Largest HL7 message, and largest MLLP frame, in bytes. An ORU may carry a
 * PDF report base64-encoded in OBX-5 (type ED): a few MB; 16 MiB leaves room
 * for ten times that and still bounds a reader's memory.
 */
#define RDX_LAB_HL7_MAX_MESSAGE (16u * 1024u * 1024u)

/* Largest batch file (FHS/BHS): a day's reports from one lab fit well below. */
#define RDX_LAB_HL7_MAX_BATCH (256u * 1024u * 1024u)

/* Messages in one batch; a month of one lab's results is about 150,000. */
#define RDX_LAB_HL7_MAX_BATCH_MESSAGES 1000000u

/*
 * Segments in one message. The largest real message in the test set has 180;
 * a cumulative report of a long stay can reach a few thousand OBX.
 */
#define RDX_LAB_HL7_MAX_SEGMENTS 20000u

/*
 * Largest segment in bytes: only OBX-5 with embedded data is ever large, and
 * it cannot pass the message cap anyway; this bounds a single index entry.
 */
#define RDX_LAB_HL7_MAX_SEGMENT RDX_LAB_HL7_MAX_MESSAGE

/*
 * Fields in one segment. The longest segment definitions in v2.5.1 (PV1, PID
 * in later versions) have about 50 fields; Z-segments may add a few more.
 */
#define RDX_LAB_HL7_MAX_FIELDS 256u

/*
 * Repetitions in one field. Real messages repeat identifiers (PID-3) or
 * profile ids (MSH-21) a handful of times; a million '~' must not become a
 * million table entries anywhere downstream.
 */
#define RDX_LAB_HL7_MAX_REPETITIONS 1000u

/* Components and subcomponents a path may name (CWE/XON have at most ~22). */
#define RDX_LAB_HL7_MAX_COMPONENT 100u

/* Longest path string ("OBX[12]-5[2].3.1"). */
#define RDX_LAB_HL7_MAX_PATH 64u

/* Longest decoded value an order or result field is copied into (bytes). */
#define RDX_LAB_HL7_MAX_VALUE (64u * 1024u)

/* Largest MLLP payload, the same as the largest message. */
/*
 * One message the hub builds from an order or a result (the order for one
 * lab, the clinic's response, a forwarded ORU): never more than the input
 * it comes from plus the segments rdx adds (an ORC/OBR/SPM triple per test,
 * at most RDX_LAB_ORDER_MAX_TESTS); 1 MiB of headroom covers that.
 */
#define RDX_LAB_HUB_MAX_OUT (RDX_LAB_HL7_MAX_MESSAGE + (1u << 20))

#define RDX_LAB_MLLP_MAX_FRAME RDX_LAB_HL7_MAX_MESSAGE

/* Tests in one order and specimens in one order. */
#define RDX_LAB_ORDER_MAX_TESTS     500u
#define RDX_LAB_ORDER_MAX_SPECIMENS 500u

/* Largest catalogue file (a network of 200 institutions is about 100 KB). */
#define RDX_LAB_CATALOGUE_MAX_BYTES (8u * 1024u * 1024u)

/* Entries of each kind in a catalogue and items in one list value. */
#define RDX_LAB_CATALOGUE_MAX_ENTRIES 10000u
#define RDX_LAB_CATALOGUE_MAX_LIST    1000u

#endif /* RDX_LAB_LIMITS_H */
