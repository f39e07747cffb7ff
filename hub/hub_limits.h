/*
 * hub_limits.h - caps on what member institutions send the hub's dispatcher
 * beside the engines' own inputs, each with the reason for its size.
 */
#ifndef RDX_HUB_LIMITS_H
#define RDX_HUB_LIMITS_H

/* A request.txt is one line naming a study; 4 KiB leaves room for comments. */
#define RDX_HUB_REQUEST_MAX 4096

/* A custody.tsv is a few scans per tube; 64 KiB is over a thousand lines. */
#define RDX_HUB_CUSTODY_MAX (64 * 1024)

/* Scans in one custody.tsv: a large batch of tubes, each scanned a few times. */
#define RDX_HUB_CUSTODY_LINES_MAX 1024

/* One custody field (barcode, event, HL7 DTM, condition): barcodes are at most ~20 characters. */
#define RDX_HUB_FIELD_MAX 64

/* An ecg.ini is a few key = value lines (the CSV's sampling rate); 4 KiB leaves room for comments.
 */
#define RDX_HUB_ECG_META_MAX 4096

/* The highest sampling rate an ecg.ini may give: the ECG engine's own ceiling (RDX_ECG_MAX_FS_HZ).
 */
#define RDX_HUB_ECG_FS_MAX 100000.0

/* A DICOM UID is at most 64 characters (PS3.5 9.1). */
#define RDX_HUB_UID_MAX 64

/*
 * The largest study one pull (`rdx case request`) sends unless [dispatch]
 * max_pull_bytes says otherwise: 8 GiB is a large CT or MR study with room to
 * spare, and one request over it is far more likely a mistake (a whole
 * archive under one UID) than a reading. The transfer ties up the hub's
 * uplink for the whole time, so a bigger study should be a deliberate setting.
 */
#define RDX_HUB_PULL_BYTES_DEFAULT (8L * 1024 * 1024 * 1024)

/* What max_pull_bytes may be set to: 1 TiB, the transport's largest item. */
#define RDX_HUB_PULL_BYTES_CEILING (1024L * 1024 * 1024 * 1024)

#endif
