/*
 * Wire framing: exact header bytes, round trips in every chunking, and the
 * adversarial cases a hostile peer can send (oversize length, bad magic or
 * version, unknown type, a stream cut short), with bounded decoder memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/transport.h"
#include "../transport/transport_int.h"
#include "support/testutil.h"

static void test_frame_header_bytes_exact(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 1024);
    assert_int_equal(rdx_transport_frame_encode(&b, RDX_FRAME_PING, "abc", 3, &err), RDX_OK);
    const uint8_t want[] = {'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 8, 0, 0, 0, 3, 'a', 'b', 'c'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    uint8_t hdr[8];
    assert_int_equal(rdx_transport_frame_header(hdr, RDX_FRAME_CHUNK, 0x123456, &err), RDX_OK);
    const uint8_t want2[] = {'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 4, 0x00, 0x12, 0x34, 0x56};
    assert_memory_equal(hdr, want2, 8);
    rdx_buf_free(&b);
    assert_string_equal(rdx_transport_frame_type_name(RDX_FRAME_ACK), "ACK");
    assert_null(rdx_transport_frame_type_name(0));
    assert_null(rdx_transport_frame_type_name(200));
}

static void test_frame_encoder_refuses_bad_frames(void **state)
{
    (void)state;
    rdx_buf b;
    rdx_error err;
    rdx_buf_init(&b, 100);
    assert_int_equal(rdx_transport_frame_encode(&b, 0, NULL, 0, &err), RDX_EINVAL);
    assert_int_equal(rdx_transport_frame_encode(&b, 77, NULL, 0, &err), RDX_EINVAL);
    assert_int_equal(rdx_transport_frame_encode(&b, RDX_FRAME_ACK, NULL, 5, &err), RDX_EINVAL);
    /* Past the type's ceiling: checked before anything is written. */
    uint8_t hdr[8];
    assert_int_equal(
        rdx_transport_frame_header(hdr, RDX_FRAME_ACK, RDX_TRANSPORT_CONTROL_MAX + 1, &err),
        RDX_ELIMIT);
    assert_non_null(strstr(err.msg, "ACK frame"));
    assert_int_equal(
        rdx_transport_frame_header(hdr, RDX_FRAME_CHUNK, RDX_TRANSPORT_FRAME_MAX + 1, &err),
        RDX_ELIMIT);
    assert_int_equal(
        rdx_transport_frame_header(hdr, RDX_FRAME_CHUNK, RDX_TRANSPORT_FRAME_MAX, &err), RDX_OK);
    /* A frame that does not fit the caller's buffer leaves it unchanged. */
    uint8_t big[200] = {0};
    assert_int_equal(rdx_transport_frame_encode(&b, RDX_FRAME_PING, "x", 1, &err), RDX_OK);
    assert_int_equal(rdx_transport_frame_encode(&b, RDX_FRAME_PING, big, 95, &err), RDX_ELIMIT);
    assert_int_equal(b.len, 9);
    rdx_buf_free(&b);
}

/* A stream of frames of every type, then decoded with the given split pattern. */
struct sample {
    unsigned type;
    size_t len;
};

static const struct sample samples[] = {
    {RDX_FRAME_HELLO, 17},    {RDX_FRAME_OFFER, 3000}, {RDX_FRAME_PROGRESS, 0},
    {RDX_FRAME_CHUNK, 70000}, {RDX_FRAME_COMMIT, 1},   {RDX_FRAME_ACK, 36},
    {RDX_FRAME_REFUSE, 80},   {RDX_FRAME_PING, 0},     {RDX_FRAME_PONG, 8},
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

static void build_stream(rdx_buf *b)
{
    rdx_error err;
    rdx_buf_init(b, 1u << 20);
    for (size_t i = 0; i < NSAMPLES; i++) {
        uint8_t *p = malloc(samples[i].len + 1);
        for (size_t k = 0; k < samples[i].len; k++) {
            p[k] = (uint8_t)(k * 31 + i);
        }
        assert_int_equal(rdx_transport_frame_encode(b, samples[i].type, p, samples[i].len, &err),
                         RDX_OK);
        free(p);
    }
}

/* Frame i of the stream build_stream makes: type, length and every payload byte. */
static void check_sample(const rdx_transport_frame *f, size_t i)
{
    assert_true(i < NSAMPLES);
    assert_int_equal(f->type, samples[i].type);
    assert_int_equal(f->len, samples[i].len);
    for (size_t k = 0; k < f->len; k++) {
        if (f->payload[k] != (uint8_t)(k * 31 + i)) {
            fail_msg("frame %zu byte %zu differs", i, k);
        }
    }
}

/* Decode stream with pieces of sizes from next_piece(); check every frame. */
static void decode_split(const rdx_buf *s, size_t (*next_piece)(size_t i, void *u), void *u)
{
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    assert_int_equal(rdx_transport_decoder_new(0, &d, &err), RDX_OK);
    size_t off = 0, nframes = 0, piece_no = 0;
    while (off < s->len) {
        size_t piece = next_piece(piece_no++, u);
        if (piece > s->len - off) {
            piece = s->len - off;
        }
        size_t pos = 0;
        while (pos < piece) {
            size_t used = 0;
            int got = 0;
            rdx_transport_frame f;
            assert_int_equal(rdx_transport_decoder_feed(d, s->data + off + pos, piece - pos, &used,
                                                        &f, &got, &err),
                             RDX_OK);
            assert_true(used > 0 || got);
            pos += used;
            if (got) {
                check_sample(&f, nframes++);
            }
            assert_true(rdx_transport_decoder_footprint(d) <= RDX_TRANSPORT_FRAME_MAX);
        }
        off += piece;
    }
    assert_int_equal(nframes, NSAMPLES);
    assert_int_equal(rdx_transport_decoder_finish(d, &err), RDX_OK);
    /* The chunk-sized buffer was given back after the big frame. */
    assert_true(rdx_transport_decoder_footprint(d) <= RDX_TRANSPORT_CONTROL_MAX);
    rdx_transport_decoder_free(d);
}

static size_t piece_one(size_t i, void *u)
{
    (void)i;
    (void)u;
    return 1;
}

static size_t piece_all(size_t i, void *u)
{
    (void)i;
    (void)u;
    return SIZE_MAX;
}

static size_t piece_random(size_t i, void *u)
{
    (void)i;
    uint32_t *x = u;
    *x = *x * 1664525u + 1013904223u; /* LCG: reproducible splits */
    return 1 + (*x >> 8) % 9000;
}

static size_t piece_header_edges(size_t i, void *u)
{
    (void)u;
    static const size_t p[] = {7, 1, 16, 9, 3000, 8, 69999};
    return p[i % 7];
}

static void test_frame_round_trip_any_chunking(void **state)
{
    (void)state;
    rdx_buf s;
    build_stream(&s);
    decode_split(&s, piece_all, NULL);
    decode_split(&s, piece_one, NULL);
    decode_split(&s, piece_header_edges, NULL);
    for (uint32_t seed = 1; seed < 20; seed++) {
        uint32_t x = seed;
        decode_split(&s, piece_random, &x);
    }
    rdx_buf_free(&s);
}

/*
 * The zero-copy path, as the node uses it with SSL_read: ask for space, copy
 * at most a random number of bytes there (a TLS record's worth, or less),
 * commit. The same frames must come out as with _feed.
 */
static void decode_space_commit(const rdx_buf *s, uint32_t seed)
{
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    uint32_t x = seed;
    assert_int_equal(rdx_transport_decoder_new(0, &d, &err), RDX_OK);
    size_t off = 0, nframes = 0;
    while (off < s->len) {
        uint8_t *p = NULL;
        size_t room = 0;
        assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
        assert_non_null(p);
        assert_true(room > 0);
        x = x * 1664525u + 1013904223u;
        size_t n = 1 + (x >> 8) % 17000;
        n = n < room ? n : room;
        n = n < s->len - off ? n : s->len - off;
        memcpy(p, s->data + off, n);
        off += n;
        int got = 0;
        rdx_transport_frame f;
        assert_int_equal(rdx_transport_decoder_commit(d, n, &f, &got, &err), RDX_OK);
        if (got) {
            check_sample(&f, nframes++);
        }
    }
    assert_int_equal(nframes, NSAMPLES);
    assert_int_equal(rdx_transport_decoder_finish(d, &err), RDX_OK);
    rdx_transport_decoder_free(d);
}

static void test_frame_space_commit_any_chunking(void **state)
{
    (void)state;
    rdx_buf s;
    build_stream(&s);
    for (uint32_t seed = 1; seed < 20; seed++) {
        decode_space_commit(&s, seed);
    }
    rdx_buf_free(&s);
}

/* A large chunk's payload is page-aligned (O_DIRECT without a copy); misuse is refused. */
static void test_frame_space_commit_alignment_and_misuse(void **state)
{
    (void)state;
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    uint8_t *p = NULL;
    size_t room = 0;
    int got = 0;
    rdx_transport_frame f;
    assert_int_equal(rdx_transport_decoder_new(0, &d, &err), RDX_OK);
    /* Nothing asked for yet: a commit is refused, and so is one past the header. */
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_int_equal(room, RDX_TRANSPORT_FRAME_HDR);
    assert_int_equal(rdx_transport_decoder_commit(d, RDX_TRANSPORT_FRAME_HDR + 1, &f, &got, &err),
                     RDX_EINVAL);
    const size_t len = (2u << 20) + 100;
    assert_int_equal(rdx_transport_frame_header(p, RDX_FRAME_CHUNK, len, &err), RDX_OK);
    assert_int_equal(rdx_transport_decoder_commit(d, RDX_TRANSPORT_FRAME_HDR, &f, &got, &err),
                     RDX_OK);
    assert_int_equal(got, 0);
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_int_equal(room, len);
    assert_int_equal((uintptr_t)p % RDX_TRANSPORT_DATA_ALIGN, 0);
    assert_int_equal(rdx_transport_decoder_commit(d, len + 1, &f, &got, &err), RDX_EINVAL);
    memset(p, 0xab, len);
    assert_int_equal(rdx_transport_decoder_commit(d, len, &f, &got, &err), RDX_OK);
    assert_int_equal(got, 1);
    assert_int_equal(f.type, RDX_FRAME_CHUNK);
    assert_int_equal(f.len, len);
    assert_int_equal((uintptr_t)f.payload % RDX_TRANSPORT_DATA_ALIGN, 0);
    assert_int_equal(f.payload[len - 1], 0xab);
    /* A frame of no payload is delivered with its header. */
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_int_equal(room, RDX_TRANSPORT_FRAME_HDR);
    assert_int_equal(rdx_transport_frame_header(p, RDX_FRAME_PING, 0, &err), RDX_OK);
    assert_int_equal(rdx_transport_decoder_commit(d, RDX_TRANSPORT_FRAME_HDR, &f, &got, &err),
                     RDX_OK);
    assert_int_equal(got, 1);
    assert_int_equal(f.type, RDX_FRAME_PING);
    /* A bad header is sticky, for _space as for _feed. */
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    memcpy(p, "GET / HT", RDX_TRANSPORT_FRAME_HDR);
    assert_int_equal(rdx_transport_decoder_commit(d, RDX_TRANSPORT_FRAME_HDR, &f, &got, &err),
                     RDX_EPROTO);
    assert_non_null(strstr(err.msg, "bad magic"));
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_EPROTO);
    assert_int_equal(rdx_transport_decoder_finish(d, &err), RDX_EPROTO);
    rdx_transport_decoder_free(d);
}

/* Feed bytes at once; return the status of the first failing feed (or RDX_OK). */
static rdx_status feed_all(rdx_transport_decoder *d, const uint8_t *p, size_t n, rdx_error *err,
                           size_t *frames)
{
    size_t pos = 0;
    *frames = 0;
    while (pos < n) {
        size_t used = 0;
        int got = 0;
        rdx_transport_frame f;
        rdx_status st = rdx_transport_decoder_feed(d, p + pos, n - pos, &used, &f, &got, err);
        if (st != RDX_OK) {
            return st;
        }
        pos += used;
        *frames += (size_t)got;
    }
    return RDX_OK;
}

static void test_frame_decoder_adversarial(void **state)
{
    (void)state;
    const struct {
        uint8_t bytes[8];
        size_t max;
        rdx_status want;
        const char *msg;
    } cases[] = {
        {{'R', 'Y', 1, 1, 0, 0, 0, 0}, 0, RDX_EPROTO, "bad magic"},
        {{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'}, 0, RDX_EPROTO, "bad magic"},
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION + 1, 1, 0, 0, 0, 0},
         0,
         RDX_EPROTO,
         "this node speaks"},
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION - 1, 1, 0, 0, 0, 0},
         0,
         RDX_EPROTO,
         "this node speaks"},
        {{'R', 'X', 0, 1, 0, 0, 0, 0}, 0, RDX_EPROTO, "version 0"},
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 0, 0, 0, 0, 0}, 0, RDX_EPROTO, "unknown type 0"},
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 10, 0, 0, 0, 0}, 0, RDX_EPROTO, "unknown type 10"},
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 255, 0, 0, 0, 0},
         0,
         RDX_EPROTO,
         "unknown type 255"},
        /* 4 GiB - 1 announced: refused from the header, nothing allocated. */
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 4, 0xff, 0xff, 0xff, 0xff},
         0,
         RDX_ELIMIT,
         "CHUNK of 4294967295"},
        /* one byte past the chunk ceiling */
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 4, (RDX_TRANSPORT_FRAME_MAX + 1) >> 24,
          ((RDX_TRANSPORT_FRAME_MAX + 1) >> 16) & 0xff, ((RDX_TRANSPORT_FRAME_MAX + 1) >> 8) & 0xff,
          (RDX_TRANSPORT_FRAME_MAX + 1) & 0xff},
         0,
         RDX_ELIMIT,
         "exceeds"},
        /* a control frame may not be chunk-sized */
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 6, 0x00, 0x01, 0x00, 0x01},
         0,
         RDX_ELIMIT,
         "ACK of 65537"},
        /* the decoder's own, smaller ceiling */
        {{'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 4, 0x00, 0x00, 0x10, 0x01},
         4096,
         RDX_ELIMIT,
         "exceeds the 4096"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rdx_transport_decoder *d = NULL;
        rdx_error err;
        size_t frames;
        assert_int_equal(rdx_transport_decoder_new(cases[i].max, &d, &err), RDX_OK);
        /* A good frame first, so the offset in the message is not trivially 0. */
        const uint8_t ping[] = {'R', 'X', RDX_TRANSPORT_FRAME_VERSION, 8, 0, 0, 0, 0};
        assert_int_equal(feed_all(d, ping, sizeof ping, &err, &frames), RDX_OK);
        assert_int_equal(frames, 1);
        rdx_status st = feed_all(d, cases[i].bytes, 8, &err, &frames);
        if (st != cases[i].want || strstr(err.msg, cases[i].msg) == NULL) {
            fail_msg("case %zu: status %d, '%s'", i, st, err.msg);
        }
        assert_non_null(strstr(err.msg, "offset 8"));
        assert_int_equal(rdx_transport_decoder_footprint(d), 0);
        /* Sticky: a good frame afterwards is refused too, and so is the end. */
        assert_int_equal(feed_all(d, ping, sizeof ping, &err, &frames), cases[i].want);
        assert_int_equal(rdx_transport_decoder_finish(d, &err), cases[i].want);
        rdx_transport_decoder_free(d);
    }
    rdx_transport_decoder_free(NULL);
}

static void test_frame_truncated_stream(void **state)
{
    (void)state;
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    size_t frames;
    rdx_buf b;
    rdx_buf_init(&b, 4096);
    assert_int_equal(rdx_transport_frame_encode(&b, RDX_FRAME_OFFER, "0123456789", 10, &err),
                     RDX_OK);
    for (size_t cut = 0; cut <= b.len; cut++) {
        assert_int_equal(rdx_transport_decoder_new(0, &d, &err), RDX_OK);
        assert_int_equal(feed_all(d, b.data, cut, &err, &frames), RDX_OK);
        rdx_status st = rdx_transport_decoder_finish(d, &err);
        if (cut == 0 || cut == b.len) {
            assert_int_equal(st, RDX_OK);
            assert_int_equal(frames, cut == b.len ? 1 : 0);
        } else {
            assert_int_equal(st, RDX_ESHORT);
            assert_non_null(strstr(err.msg, cut < 8 ? "into a frame header" : "OFFER frame"));
        }
        rdx_transport_decoder_free(d);
    }
    rdx_buf_free(&b);
}

struct oom_ctx {
    rdx_buf stream;
};

static int oom_decode(void *u)
{
    struct oom_ctx *c = u;
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    size_t frames = 0;
    if (rdx_transport_decoder_new(0, &d, &err) != RDX_OK) {
        return 1;
    }
    rdx_status st = feed_all(d, c->stream.data, c->stream.len, &err, &frames);
    rdx_transport_decoder_free(d);
    return st == RDX_OK && frames == NSAMPLES ? 0 : 1;
}

static void test_frame_decoder_oom_sweep(void **state)
{
    (void)state;
    struct oom_ctx c;
    build_stream(&c.stream);
    assert_true(rdx_oom_sweep(oom_decode, &c) >= 2);
    rdx_buf_free(&c.stream);
}

/* One whole frame of type and len into d through _space/_commit; its payload pointer. */
static const uint8_t *deliver_one(rdx_transport_decoder *d, unsigned type, size_t len)
{
    uint8_t *p = NULL;
    size_t room = 0;
    int got = 0;
    rdx_transport_frame f;
    rdx_error err;
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_int_equal(room, RDX_TRANSPORT_FRAME_HDR);
    assert_int_equal(rdx_transport_frame_header(p, type, len, &err), RDX_OK);
    assert_int_equal(rdx_transport_decoder_commit(d, RDX_TRANSPORT_FRAME_HDR, &f, &got, &err),
                     RDX_OK);
    while (!got) {
        assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
        memset(p, 0x5a, room);
        assert_int_equal(rdx_transport_decoder_commit(d, room, &f, &got, &err), RDX_OK);
    }
    assert_int_equal(f.type, type);
    assert_int_equal(f.len, len);
    return f.payload;
}

/* A chunk-sized buffer of the decoder's making (aligned as it makes them), taken out of it. */
static rdx_buf chunk_buffer(size_t len)
{
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    rdx_buf b;
    rdx_buf_init(&b, RDX_TRANSPORT_FRAME_MAX);
    assert_int_equal(rdx_transport_decoder_new(0, &d, &err), RDX_OK);
    const uint8_t *at = deliver_one(d, RDX_FRAME_CHUNK, len);
    assert_int_equal(rdx_transport_decoder_take(d, &b, &err), RDX_OK);
    assert_ptr_equal(b.data, at);
    rdx_transport_decoder_free(d);
    return b;
}

/*
 * Memory handed to the decoder with _take after a frame other than a chunk is
 * kept for the chunks to come (the node gives a spare buffer when a case is
 * offered), and an empty buffer taken in after such a frame gets the chunk
 * buffer back. Without a take, a chunk buffer is still given back after a
 * frame other than a chunk.
 */
static void test_frame_take_hands_memory_both_ways(void **state)
{
    (void)state;
    const size_t len = (2u << 20) + 100;
    rdx_transport_decoder *d = NULL;
    rdx_error err;
    uint8_t *p = NULL;
    size_t room = 0;
    rdx_buf big = chunk_buffer(len), out;
    uint8_t *mem = big.data;
    assert_int_equal(rdx_transport_decoder_new(0, &d, &err), RDX_OK);
    (void)deliver_one(d, RDX_FRAME_PING, 0);
    assert_int_equal(rdx_transport_decoder_take(d, &big, &err), RDX_OK);
    out = big; /* what the decoder held before: nothing yet */
    assert_null(out.data);
    /* The next call would have given a chunk buffer back after a ping: this one stays. */
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_true(rdx_transport_decoder_footprint(d) >= len);
    assert_ptr_equal(deliver_one(d, RDX_FRAME_CHUNK, len), mem);
    /* Back: after a frame other than a chunk, an empty buffer in, the chunk buffer out. */
    (void)deliver_one(d, RDX_FRAME_PING, 0);
    rdx_buf_init(&out, RDX_TRANSPORT_FRAME_MAX);
    assert_int_equal(rdx_transport_decoder_take(d, &out, &err), RDX_OK);
    assert_ptr_equal(out.data, mem);
    assert_int_equal(rdx_transport_decoder_footprint(d), 0);
    rdx_buf_free(&out);
    /* Kept across a ping: it stays for the chunk after (what the node does between chunks). */
    (void)deliver_one(d, RDX_FRAME_CHUNK, len);
    (void)deliver_one(d, RDX_FRAME_PING, 0);
    assert_int_equal(rdx_transport_decoder_keep(d, &err), RDX_OK);
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_true(rdx_transport_decoder_footprint(d) >= len);
    assert_int_equal(rdx_transport_decoder_keep(d, &err), RDX_EINVAL); /* no frame just delivered */
    /* No take: the chunk buffer goes after the next frame that is not a chunk. */
    (void)deliver_one(d, RDX_FRAME_CHUNK, len);
    assert_true(rdx_transport_decoder_footprint(d) >= len);
    (void)deliver_one(d, RDX_FRAME_PING, 0);
    assert_int_equal(rdx_transport_decoder_space(d, &p, &room, &err), RDX_OK);
    assert_true(rdx_transport_decoder_footprint(d) <= RDX_TRANSPORT_CONTROL_MAX);
    rdx_transport_decoder_free(d);
}

/*
 * The node's spare chunk buffers: only chunk-sized, aligned ones are kept, at
 * most RDX_TP_SPARES_MAX, a larger one in place of the smallest when full;
 * each put leaves its rdx_buf empty, and a get fills only an empty one, with
 * the largest kept memory (of equals, the last put), emptied, its cap on
 * frames restored.
 */
static void test_frame_spares_keep_chunk_buffers(void **state)
{
    (void)state;
    const size_t len = (1u << 20) + 10;
    struct rdx_tp_spares sp = {.n = 0};
    rdx_buf small, b[RDX_TP_SPARES_MAX + 1];
    uint8_t *mem[RDX_TP_SPARES_MAX + 1];
    rdx_buf_init(&small, 1024);
    assert_int_equal(rdx_buf_append(&small, "ack", 3), RDX_OK);
    rdx_tp_spare_put(&sp, &small);
    assert_int_equal(sp.n, 0);
    assert_null(small.data);
    for (int i = 0; i <= RDX_TP_SPARES_MAX; i++) {
        b[i] = chunk_buffer(len);
        mem[i] = b[i].data;
        rdx_tp_spare_put(&sp, &b[i]);
        assert_null(b[i].data);
        assert_int_equal(b[i].cap, 0);
        assert_int_equal(sp.n, i < RDX_TP_SPARES_MAX ? i + 1 : RDX_TP_SPARES_MAX);
    }
    /* Full: one no larger is freed; a larger one takes the place of a smaller. */
    rdx_buf more = chunk_buffer(len), large = chunk_buffer(2 * len);
    uint8_t *large_mem = large.data;
    rdx_tp_spare_put(&sp, &more);
    assert_null(more.data);
    rdx_tp_spare_put(&sp, &large);
    assert_int_equal(sp.n, RDX_TP_SPARES_MAX);
    int found = 0;
    for (int i = 0; i < sp.n; i++) {
        found += sp.b[i].data == large_mem;
    }
    assert_int_equal(found, 1);
    /* A large buffer that is not 4 KiB-aligned (rdx_buf's own growth) would need the bounce copy.
     */
    rdx_buf grown;
    rdx_buf_init(&grown, RDX_TRANSPORT_FRAME_MAX);
    assert_int_equal(rdx_buf_reserve(&grown, 4 * len), RDX_OK);
    if (((uintptr_t)grown.data % RDX_TRANSPORT_DATA_ALIGN) != 0) {
        uint8_t *g = grown.data;
        rdx_tp_spare_put(&sp, &grown);
        for (int i = 0; i < sp.n; i++) {
            assert_true(sp.b[i].data != g);
        }
    } else {
        rdx_buf_free(&grown); /* this allocator aligned it: nothing to show */
    }
    /* A buffer that has memory is left alone. */
    assert_int_equal(rdx_buf_append(&small, "ack", 3), RDX_OK);
    uint8_t *own = small.data;
    rdx_tp_spare_get(&sp, &small);
    assert_ptr_equal(small.data, own);
    assert_int_equal(sp.n, RDX_TP_SPARES_MAX);
    rdx_buf_free(&small);
    /* An empty one gets the largest kept, empty and NUL-terminated, ready for a chunk. */
    rdx_buf_init(&small, 64);
    rdx_tp_spare_get(&sp, &small);
    assert_ptr_equal(small.data, large_mem);
    assert_int_equal(small.len, 0);
    assert_true(small.cap >= 2 * len);
    assert_int_equal(small.data[0], 0);
    assert_int_equal(small.max, RDX_TRANSPORT_FRAME_MAX);
    assert_int_equal(sp.n, RDX_TP_SPARES_MAX - 1);
    rdx_buf_free(&small);
    /* Of equals, the one put last (its memory is the likeliest in the cache). */
    rdx_buf again = chunk_buffer(len);
    uint8_t *again_mem = again.data;
    rdx_tp_spare_put(&sp, &again);
    rdx_buf_init(&small, 64);
    rdx_tp_spare_get(&sp, &small);
    assert_ptr_equal(small.data, again_mem);
    rdx_buf_free(&small);
    /* Then the one put before it: taking the large one left the order alone. */
    rdx_buf_init(&small, 64);
    rdx_tp_spare_get(&sp, &small);
    assert_ptr_equal(small.data, mem[RDX_TP_SPARES_MAX - 1]);
    rdx_buf_free(&small);
    rdx_tp_spares_free(&sp);
    assert_int_equal(sp.n, 0);
    rdx_tp_spare_get(&sp, &small);
    assert_null(small.data);
}

/*
 * The idle tick: kept buffers survive a tick after a put or a get, and go at
 * the first tick with neither since the one before.
 */
static void test_frame_spares_freed_when_idle(void **state)
{
    (void)state;
    const size_t len = (1u << 20) + 10;
    struct rdx_tp_spares sp = {.n = 0};
    rdx_buf a = chunk_buffer(len), b = chunk_buffer(len), got;
    rdx_tp_spare_put(&sp, &a);
    rdx_tp_spare_put(&sp, &b);
    assert_int_equal(rdx_tp_spares_tick(&sp), 0); /* used in this period */
    assert_int_equal(sp.n, 2);
    rdx_buf_init(&got, 64);
    rdx_tp_spare_get(&sp, &got);
    assert_int_equal(sp.n, 1);
    assert_int_equal(rdx_tp_spares_tick(&sp), 0); /* a get counts too */
    assert_int_equal(sp.n, 1);
    assert_int_equal(rdx_tp_spares_tick(&sp), 1); /* a whole period untouched */
    assert_int_equal(sp.n, 0);
    assert_int_equal(rdx_tp_spares_tick(&sp), 0);
    rdx_tp_spare_put(&sp, &got); /* and kept again after */
    assert_int_equal(sp.n, 1);
    assert_int_equal(rdx_tp_spares_tick(&sp), 0);
    assert_int_equal(rdx_tp_spares_tick(&sp), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_header_bytes_exact),
        cmocka_unit_test(test_frame_encoder_refuses_bad_frames),
        cmocka_unit_test(test_frame_round_trip_any_chunking),
        cmocka_unit_test(test_frame_space_commit_any_chunking),
        cmocka_unit_test(test_frame_space_commit_alignment_and_misuse),
        cmocka_unit_test(test_frame_decoder_adversarial),
        cmocka_unit_test(test_frame_truncated_stream),
        cmocka_unit_test(test_frame_decoder_oom_sweep),
        cmocka_unit_test(test_frame_take_hands_memory_both_ways),
        cmocka_unit_test(test_frame_spares_keep_chunk_buffers),
        cmocka_unit_test(test_frame_spares_freed_when_idle),
    };
    return cmocka_run_group_tests_name("transport_frame", tests, NULL, NULL);
}
