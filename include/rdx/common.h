/*
 * rdx/common.h - status codes, error buffers, bounded byte readers, capped
 * growable buffers, overflow-checked allocation, logging and clocks.
 *
 * Every rdx engine uses this header; it depends on nothing of theirs.
 * Nothing here keeps global mutable state: every function is thread-safe as
 * long as two threads do not share one rdx_rd, rdx_buf or rdx_error at once.
 */
#ifndef RDX_COMMON_H
#define RDX_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDX_VERSION "0.1.0"

#if defined(__GNUC__)
#define RDX_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define RDX_NODISCARD         __attribute__((warn_unused_result))
#else
#define RDX_PRINTF(fmt, args)
#define RDX_NODISCARD
#endif

/* Return the library version string ("MAJOR.MINOR.PATCH"); static storage. */
const char *rdx_version(void);

/*
 * Status codes. 0 is success; failures are negative and grouped by cause so
 * callers can branch on the group (see rdx_status_is_input()).
 */
typedef enum rdx_status {
    RDX_OK = 0,

    /* -1 .. -19: the input is bad (the caller's data, not the machine). */
    RDX_EINVAL = -1,    /* invalid argument or option */
    RDX_EPARSE = -2,    /* malformed input that does not follow its grammar */
    RDX_EFORMAT = -3,   /* well formed but an unsupported format or variant */
    RDX_ECHECKSUM = -4, /* a checksum or digest does not match */
    RDX_ESHORT = -5,    /* input ends before the data it announces */
    RDX_ERANGE = -6,    /* a value is outside what the standard allows */

    /* -20 .. -39: a limit was hit (see the <engine>_limits.h files). */
    RDX_ELIMIT = -20, /* hostile or absurd size, count, depth or length */

    /* -40 .. -59: resources. */
    RDX_ENOMEM = -40,    /* allocation failed or size arithmetic overflowed */
    RDX_EBUSY = -41,     /* resource temporarily in use; retry later */
    RDX_ETIMEOUT = -42,  /* an operation did not finish in time */
    RDX_ECAPACITY = -43, /* no capacity left (queue full, lab full) */

    /* -60 .. -79: input/output and storage. */
    RDX_EIO = -60,      /* read, write or sync failed */
    RDX_ENOENT = -61,   /* file or object does not exist */
    RDX_EEXIST = -62,   /* already exists and must not be replaced */
    RDX_EDB = -63,      /* database error */
    RDX_ENETWORK = -64, /* connection refused, reset or closed */

    /* -80 .. -99: authentication and authorization. */
    RDX_EAUTH = -80,   /* peer identity could not be established */
    RDX_EDENIED = -81, /* identity known but the policy refuses the action */

    /* -100 .. -119: state and protocol. */
    RDX_ESTATE = -100,     /* operation not allowed in the current state */
    RDX_EDUPLICATE = -101, /* the same thing was submitted twice */
    RDX_ENOTFOUND = -102,  /* a referenced record does not exist */
    RDX_EPROTO = -103,     /* the peer broke the protocol */

    RDX_EINTERNAL = -120 /* a bug in rdx: please report it */
} rdx_status;

/* Static, human-readable name of a status ("malformed input"); never NULL. */
const char *rdx_strerror(rdx_status st);

/* Nonzero when st says the caller's input was bad (groups -1..-39). */
int rdx_status_is_input(rdx_status st);

/*
 * An error buffer: the code plus a message that names the file, line or field
 * that is wrong ("x/100.hea:3: signal 1: unknown format 999"). Callers own it,
 * usually on the stack; libraries fill it.
 */
#define RDX_ERROR_MSG_MAX 512
typedef struct rdx_error {
    rdx_status code;
    char msg[RDX_ERROR_MSG_MAX];
} rdx_error;

/* Reset err to RDX_OK with an empty message. err may be NULL. */
void rdx_error_clear(rdx_error *err);

/*
 * Set err's code and message (printf-style, truncated to fit) and return code,
 * so that `return rdx_error_set(err, RDX_EPARSE, "%s:%zu: ...", f, l);` reads
 * naturally. err may be NULL, in which case only code is returned.
 */
rdx_status rdx_error_set(rdx_error *err, rdx_status code, const char *fmt, ...) RDX_PRINTF(3, 4);
rdx_status rdx_error_setv(rdx_error *err, rdx_status code, const char *fmt, va_list ap);

/*
 * Put a context prefix in front of an existing message ("x/100.dat: " + msg),
 * keeping the code. Used when a lower layer knew the field but not the file.
 */
void rdx_error_prefix(rdx_error *err, const char *fmt, ...) RDX_PRINTF(2, 3);

/* Evaluate expr; if it is not RDX_OK, return it from the calling function. */
#define RDX_TRY(expr)                                                                              \
    do {                                                                                           \
        rdx_status rdx_try_st_ = (expr);                                                           \
        if (rdx_try_st_ != RDX_OK) {                                                               \
            return rdx_try_st_;                                                                    \
        }                                                                                          \
    } while (0)

/* ---- Overflow-checked size arithmetic and allocation --------------------- */

/* *out = a * b; returns 0 (and leaves *out unspecified) on overflow. */
int rdx_mul_ok(size_t a, size_t b, size_t *out);
/* *out = a + b; returns 0 on overflow. */
int rdx_add_ok(size_t a, size_t b, size_t *out);

/*
 * malloc/calloc/realloc for n elements of size bytes. NULL when the product
 * overflows or memory is exhausted (then, for realloc, p is untouched).
 * n == 0 returns a unique pointer that must still be freed with free().
 */
void *rdx_mallocarray(size_t n, size_t size);
void *rdx_callocarray(size_t n, size_t size);
void *rdx_reallocarray(void *p, size_t n, size_t size);

/* Copy at most n bytes of s into a new NUL-terminated string; free() it. */
char *rdx_strndup(const char *s, size_t n);

/* Zero n bytes in a way the compiler may not elide (for key material). */
void rdx_secure_zero(void *p, size_t n);

/* ---- Bounds-checked byte reader ------------------------------------------ */

/*
 * A cursor over bytes the reader does not own. Every read checks the bounds;
 * a short read returns RDX_ESHORT and leaves off unchanged, so a parser can
 * report exactly where the input ran out.
 */
typedef struct rdx_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
} rdx_rd;

/* Start a reader over p[0..len). p may be NULL only when len is 0. */
void rdx_rd_init(rdx_rd *r, const void *p, size_t len);
/* Bytes left to read. */
size_t rdx_rd_remaining(const rdx_rd *r);

rdx_status rdx_rd_u8(rdx_rd *r, uint8_t *out) RDX_NODISCARD;
rdx_status rdx_rd_u16le(rdx_rd *r, uint16_t *out) RDX_NODISCARD;
rdx_status rdx_rd_u16be(rdx_rd *r, uint16_t *out) RDX_NODISCARD;
rdx_status rdx_rd_u32le(rdx_rd *r, uint32_t *out) RDX_NODISCARD;
rdx_status rdx_rd_u32be(rdx_rd *r, uint32_t *out) RDX_NODISCARD;
/* Copy n bytes into out (which has room for n). */
rdx_status rdx_rd_bytes(rdx_rd *r, void *out, size_t n) RDX_NODISCARD;
/* Point *out at the next n bytes in place (no copy) and advance. */
rdx_status rdx_rd_view(rdx_rd *r, const uint8_t **out, size_t n) RDX_NODISCARD;
/* Advance n bytes. */
rdx_status rdx_rd_skip(rdx_rd *r, size_t n) RDX_NODISCARD;

/* ---- Growable buffer with a hard cap ------------------------------------- */

/*
 * A byte buffer that grows on demand up to max bytes, set at init. An append
 * that would pass the cap returns RDX_ELIMIT and leaves the buffer unchanged;
 * an allocation failure returns RDX_ENOMEM, also leaving it unchanged. The
 * contents are always followed by a NUL byte (not counted in len) so text can
 * be handed to C string functions.
 */
typedef struct rdx_buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated (excluding the trailing NUL) */
    size_t max;    /* hard cap on len */
} rdx_buf;

/* Initialise an empty buffer that may hold at most max bytes. No allocation. */
void rdx_buf_init(rdx_buf *b, size_t max);
/* Free the storage; the buffer is empty again and may be reused. NULL-safe. */
void rdx_buf_free(rdx_buf *b);
/* Empty the buffer but keep its storage for reuse. */
void rdx_buf_reset(rdx_buf *b);
/* Make sure n more bytes fit without another allocation. */
rdx_status rdx_buf_reserve(rdx_buf *b, size_t n) RDX_NODISCARD;
rdx_status rdx_buf_append(rdx_buf *b, const void *p, size_t n) RDX_NODISCARD;
rdx_status rdx_buf_append_str(rdx_buf *b, const char *s) RDX_NODISCARD;
rdx_status rdx_buf_append_u8(rdx_buf *b, uint8_t v) RDX_NODISCARD;
/* Append formatted text; on failure nothing is appended. */
rdx_status rdx_buf_printf(rdx_buf *b, const char *fmt, ...) RDX_PRINTF(2, 3) RDX_NODISCARD;
/*
 * Hand the storage to the caller (who free()s it) and leave b empty.
 * *len_out (if not NULL) gets the length. Returns NULL for an empty buffer
 * that never allocated.
 */
uint8_t *rdx_buf_take(rdx_buf *b, size_t *len_out);

/* ---- Strict number parsing for untrusted text ---------------------------- */

/*
 * Parse the whole of s[0..n) as a decimal integer in [min, max]. Leading '+'
 * or '-' allowed; no spaces, no trailing bytes. RDX_EPARSE when it is not a
 * number, RDX_ERANGE when it is out of range. *out is set only on success.
 */
rdx_status rdx_parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out);
/* Parse the whole of s[0..n) as a finite decimal floating point number. */
rdx_status rdx_parse_double(const char *s, size_t n, double *out);

/* ---- Files --------------------------------------------------------------- */

/*
 * Read the whole of path into out (which the caller has initialised; its cap
 * bounds the file size), appending to what out holds. The bytes go straight
 * into out, with no copy left elsewhere, so key files may be read this way.
 * On failure out is left as it was given (what was read is wiped, and a
 * buffer that had no storage has none). RDX_ENOENT when it does
 * not exist, RDX_ELIMIT when it is larger than the buffer's cap, RDX_EIO otherwise; err names the
 * file.
 */
rdx_status rdx_file_read(const char *path, rdx_buf *out, rdx_error *err);

/*
 * Write data to path so that readers see either the old file or the whole
 * new one, never half of it: write a temporary file beside it, fsync, rename
 * over path, fsync the directory. err names the file on failure.
 */
rdx_status rdx_file_write_atomic(const char *path, const void *data, size_t len, rdx_error *err);

/*
 * As rdx_file_write_atomic, with the file's permission bits exactly mode
 * (e.g. 0600 for private keys), whatever the umask; the temporary file has
 * that mode from the moment it exists.
 */
rdx_status rdx_file_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode,
                                      rdx_error *err);

/* ---- Logging ------------------------------------------------------------- */

typedef enum rdx_log_level {
    RDX_LOG_DEBUG = 0,
    RDX_LOG_INFO = 1,
    RDX_LOG_WARN = 2,
    RDX_LOG_ERROR = 3
} rdx_log_level;

/* A log sink: called with one complete, NUL-terminated message per call. */
typedef void (*rdx_log_fn)(void *user, rdx_log_level level, const char *msg);

/* Libraries log only through a logger the caller hands them; NULL is silent. */
typedef struct rdx_logger {
    rdx_log_fn fn;
    void *user;
    rdx_log_level min_level;
} rdx_logger;

/* Format and deliver a message if lg has a sink and level >= min_level. */
void rdx_log(const rdx_logger *lg, rdx_log_level level, const char *fmt, ...) RDX_PRINTF(3, 4);
/* Static name of a level ("warn"). */
const char *rdx_log_level_name(rdx_log_level level);

/* ---- Clocks -------------------------------------------------------------- */

/* Monotonic nanoseconds since an arbitrary origin; never goes back. */
uint64_t rdx_clock_mono_ns(void);
/* Wall-clock milliseconds since the Unix epoch (UTC). */
int64_t rdx_clock_wall_ms(void);

#ifdef __cplusplus
}
#endif

#endif /* RDX_COMMON_H */
