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
/* PEM files (keys, certificates, CRLs) we read back: a CRL of ~100k entries fits. */
#define RDX_TRANSPORT_PEM_MAX (8u * 1024u * 1024u)

#endif /* RDX_TRANSPORT_LIMITS_H */
