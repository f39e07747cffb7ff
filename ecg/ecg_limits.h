/*
 * ecg_limits.h - caps on what a hostile or broken ECG upload can make the
 * engine do. Every parser in ecg/ checks its input against these before it
 * allocates or loops, so a header that claims a million signals or a
 * terabyte-long record fails fast with RDX_ELIMIT instead of exhausting the
 * machine. Each cap says why it has the value it has.
 */
#ifndef RDX_ECG_LIMITS_H
#define RDX_ECG_LIMITS_H

/* A .hea file is a few hundred bytes; the longest PhysioNet headers (PTB,
 * MIMIC waveform with clinical comments) stay under 64 KiB. 1 MiB leaves room
 * for generous comments while bounding what we read into memory. */
#define RDX_ECG_MAX_HEADER_BYTES (1024u * 1024u)

/* One header line. WFDB itself reads 256-byte lines; descriptions and comments
 * of real records fit easily in 4 KiB. */
#define RDX_ECG_MAX_LINE 4096u

/* Signals in one record. A 12-lead ECG plus Frank leads has 15, polysomnography
 * and high-density EEG a few hundred; 1024 covers them all while a claim of a
 * million signals is rejected before anything is allocated per signal. */
#define RDX_ECG_MAX_SIGNALS 1024u

/* Samples per frame of one signal (the "x" modifier of the format field).
 * Multi-frequency records in PhysioNet use up to a few dozen. */
#define RDX_ECG_MAX_SPF 1024u

/* Samples in one frame over all signals; bounds every per-frame buffer. */
#define RDX_ECG_MAX_FRAME_SAMPLES 16384u

/* Sampling (frame) frequency. ECG is digitised at 125 Hz to a few kHz; the
 * fastest physiological recordings (intracardiac, pacing spikes) stay under
 * 100 kHz. Anything above that in an ECG upload is a broken header. */
#define RDX_ECG_MAX_FS_HZ 100000.0

/* Frames per signal. A week-long Holter at 1 kHz is 6e8 frames; 2^40 (about
 * 35 years at 1 kHz) keeps every byte-offset computation far below 2^63 for
 * the largest frames allowed above. */
#define RDX_ECG_MAX_NSAMP ((int64_t)1 << 40)

/* Byte offset of sample 0 in a signal file (the "+" modifier): a prolog of
 * vendor data. 1 GiB is far beyond any real prolog. */
#define RDX_ECG_MAX_BYTE_OFFSET ((int64_t)1 << 30)

/* Inter-signal skew in frames (the ":" modifier). The deskewing buffer holds
 * this many frames per signal, so the cap bounds its memory; real skews are
 * a few samples. */
#define RDX_ECG_MAX_SKEW 8192u

/* ADC resolution in bits: the widest WFDB format stores 32-bit samples. */
#define RDX_ECG_MAX_ADC_BITS 32u

/* Comment lines kept from one header. */
#define RDX_ECG_MAX_COMMENTS 4096u

/* Length of record names, file names, units and descriptions. WFDB uses 50,
 * 20 and 60 characters; 255 leaves room without letting one field balloon. */
#define RDX_ECG_MAX_NAME 255u

/* Frames decoded per internal pass of the streaming reader. This bounds the
 * reader's working memory (with RDX_ECG_MAX_SIGNALS) independently of the
 * record's length: 4096 frames of 2 signals is 32 KiB. */
#define RDX_ECG_READ_CHUNK_FRAMES 4096u

/* Raw bytes buffered per signal file between read() calls. */
#define RDX_ECG_READ_BUF_BYTES (64u * 1024u)

/* ---- CSV uploads ---- */

/* One CSV row: a 1024-lead row of 20-character numbers fits in 32 KiB. */
#define RDX_ECG_MAX_CSV_LINE (64u * 1024u)

/* ---- Annotation files ---- */

/* Annotations held in memory for one file. A 7-day Holter has about a
 * million beats plus rhythm and noise labels; 16 million is a generous cap
 * that still bounds memory to a few hundred MB in the worst case. */
#define RDX_ECG_MAX_ANNOTATIONS (16u * 1024u * 1024u)

/* Bytes of an annotation file read at once (files are read whole). 16 M
 * annotations at 2-6 bytes each stay under this. */
#define RDX_ECG_MAX_ANN_FILE_BYTES (256u * 1024u * 1024u)

#endif /* RDX_ECG_LIMITS_H */
