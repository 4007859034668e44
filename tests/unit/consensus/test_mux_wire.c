/* consensus/mux_wire.c: every raft message type survives its frame
 * exactly, and no truncated, garbled or random frame decodes into
 * anything but an error (run it under make asan too). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "consensus/mux_wire.h"

/* Frame m, check the length word, decode the body. */
static struct raft_message round_trip(uint32_t shard,
                                      const struct raft_message *m)
{
    struct mux_buf b = {0};
    cr_assert_eq(mux_frame_encode(shard, m, &b), 0);
    cr_assert_eq(bytes_get_u64le(b.data), b.len - MUX_LEN_BYTES);
    uint32_t got_shard;
    struct raft_message out;
    cr_assert_eq(mux_frame_decode(b.data + MUX_LEN_BYTES,
                                  b.len - MUX_LEN_BYTES, &got_shard, &out),
                 0);
    cr_assert_eq(got_shard, shard);
    cr_assert_eq(out.type, m->type);
    mux_buf_free(&b);
    return out;
}

Test(mux_wire, append_entries_round_trip)
{
    char a[] = "an entry of 24 bytes....", b[] = "odd"; /* 24, 3 bytes */
    struct raft_entry es[3] = {
        {.term = 7, .type = RAFT_COMMAND, .buf = {a, 24}},
        {.term = 8, .type = RAFT_BARRIER, .buf = {NULL, 0}},
        {.term = 9, .type = RAFT_CHANGE, .buf = {b, 3}},
    };
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES};
    m.append_entries = (struct raft_append_entries){
        .term = 9, .prev_log_index = 41, .prev_log_term = 6,
        .leader_commit = 40, .entries = es, .n_entries = 3};
    struct raft_message out = round_trip(5, &m);
    struct raft_append_entries *o = &out.append_entries;
    cr_assert_eq(o->term, 9);
    cr_assert_eq(o->prev_log_index, 41);
    cr_assert_eq(o->prev_log_term, 6);
    cr_assert_eq(o->leader_commit, 40);
    cr_assert_eq(o->n_entries, 3);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(o->entries[i].term, es[i].term);
        cr_assert_eq(o->entries[i].type, es[i].type);
        cr_assert_eq(o->entries[i].buf.len, es[i].buf.len);
        cr_assert_eq(o->entries[i].batch, o->entries[0].batch,
                     "one batch for all, as raft_uv");
        if (es[i].buf.len > 0) {
            cr_assert_eq(memcmp(o->entries[i].buf.base, es[i].buf.base,
                                es[i].buf.len),
                         0);
        }
    }
    mux_message_discard(&out);

    /* A heartbeat: no entries at all. */
    m.append_entries.n_entries = 0;
    m.append_entries.entries = NULL;
    out = round_trip(0, &m);
    cr_assert_eq(out.append_entries.n_entries, 0);
    cr_assert_null(out.append_entries.entries);
    mux_message_discard(&out);
}

Test(mux_wire, the_small_messages_round_trip)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES_RESULT};
    m.append_entries_result = (struct raft_append_entries_result){
        .term = 3, .rejected = 17, .last_log_index = 16};
    struct raft_message out = round_trip(1, &m);
    cr_assert_eq(out.append_entries_result.term, 3);
    cr_assert_eq(out.append_entries_result.rejected, 17);
    cr_assert_eq(out.append_entries_result.last_log_index, 16);

    m = (struct raft_message){.type = RAFT_IO_REQUEST_VOTE};
    m.request_vote = (struct raft_request_vote){
        .term = 4, .candidate_id = 2, .last_log_index = 99,
        .last_log_term = 3, .disrupt_leader = true, .pre_vote = true};
    out = round_trip(2, &m);
    cr_assert_eq(out.request_vote.term, 4);
    cr_assert_eq(out.request_vote.candidate_id, 2);
    cr_assert_eq(out.request_vote.last_log_index, 99);
    cr_assert_eq(out.request_vote.last_log_term, 3);
    cr_assert(out.request_vote.disrupt_leader);
    cr_assert(out.request_vote.pre_vote);

    m = (struct raft_message){.type = RAFT_IO_REQUEST_VOTE_RESULT};
    m.request_vote_result = (struct raft_request_vote_result){
        .term = 5, .vote_granted = true, .pre_vote = raft_tribool_false};
    out = round_trip(3, &m);
    cr_assert_eq(out.request_vote_result.term, 5);
    cr_assert(out.request_vote_result.vote_granted);
    cr_assert_eq(out.request_vote_result.pre_vote, raft_tribool_false);

    m = (struct raft_message){.type = RAFT_IO_TIMEOUT_NOW};
    m.timeout_now = (struct raft_timeout_now){
        .term = 6, .last_log_index = 12, .last_log_term = 5};
    out = round_trip(MC_SHARDS_MAX - 1, &m);
    cr_assert_eq(out.timeout_now.term, 6);
    cr_assert_eq(out.timeout_now.last_log_index, 12);
    cr_assert_eq(out.timeout_now.last_log_term, 5);
}

Test(mux_wire, install_snapshot_round_trip)
{
    char data[] = "the whole state of a shard";
    struct raft_message m = {.type = RAFT_IO_INSTALL_SNAPSHOT};
    struct raft_install_snapshot *s = &m.install_snapshot;
    s->term = 12;
    s->last_index = 3000;
    s->last_term = 11;
    s->conf_index = 1;
    s->data = (struct raft_buffer){data, sizeof data};
    raft_configuration_init(&s->conf);
    cr_assert_eq(raft_configuration_add(&s->conf, 1, "10.0.0.1:7501",
                                        RAFT_VOTER), 0);
    cr_assert_eq(raft_configuration_add(&s->conf, 3, "10.0.0.3:7501",
                                        RAFT_STANDBY), 0);
    struct raft_message out = round_trip(7, &m);
    struct raft_install_snapshot *o = &out.install_snapshot;
    cr_assert_eq(o->term, 12);
    cr_assert_eq(o->last_index, 3000);
    cr_assert_eq(o->last_term, 11);
    cr_assert_eq(o->conf_index, 1);
    cr_assert_eq(o->conf.n, 2);
    cr_assert_eq(o->conf.servers[1].id, 3);
    cr_assert_eq(o->conf.servers[1].role, RAFT_STANDBY);
    cr_assert_str_eq(o->conf.servers[0].address, "10.0.0.1:7501");
    cr_assert_eq(o->data.len, sizeof data);
    cr_assert_eq(memcmp(o->data.base, data, sizeof data), 0);
    mux_message_discard(&out);
    raft_configuration_close(&s->conf);
}

Test(mux_wire, hello_round_trip_and_refusals)
{
    uint8_t h[MUX_HELLO_BYTES];
    mux_hello_encode(&(struct mux_hello){.node_id = 3, .lane = 1, .lanes = 2},
                     h);
    cr_assert_eq(bytes_get_u64le(h + 8), 3, "the id where the proxy reads it");
    struct mux_hello got;
    cr_assert(mux_hello_decode(h, &got));
    cr_assert_eq(got.node_id, 3);
    cr_assert_eq(got.lane, 1);
    cr_assert_eq(got.lanes, 2);
    h[0] ^= 1;
    cr_assert(!mux_hello_decode(h, &got), "not our magic");
    mux_hello_encode(&(struct mux_hello){.node_id = 3, .lane = 2, .lanes = 2},
                     h);
    cr_assert(!mux_hello_decode(h, &got), "a lane past the count");
}

Test(mux_wire, unknown_types_are_not_framed)
{
    struct raft_message m = {.type = 99};
    struct mux_buf b = {0};
    cr_assert_eq(mux_frame_encode(0, &m, &b), RAFT_MALFORMED);
    cr_assert_eq(b.len, 0);
    mux_buf_free(&b);
}

/* Every frame of the other tests cut at every length, and garbled at every
 * byte: an error, or (for a garbled value field) a message, never a
 * crash or a read past the end. */
Test(mux_wire, truncated_and_garbled_frames_are_errors)
{
    char a[] = "0123456789abcdef";
    struct raft_entry es[2] = {
        {.term = 1, .type = RAFT_COMMAND, .buf = {a, 16}},
        {.term = 1, .type = RAFT_COMMAND, .buf = {a, 5}},
    };
    struct raft_message msgs[2] = {{.type = RAFT_IO_APPEND_ENTRIES},
                                   {.type = RAFT_IO_INSTALL_SNAPSHOT}};
    msgs[0].append_entries = (struct raft_append_entries){
        .term = 2, .prev_log_index = 3, .entries = es, .n_entries = 2};
    struct raft_install_snapshot *s = &msgs[1].install_snapshot;
    s->term = 2;
    s->data = (struct raft_buffer){a, 16};
    raft_configuration_init(&s->conf);
    cr_assert_eq(raft_configuration_add(&s->conf, 1, "1.2.3.4:5",
                                        RAFT_VOTER), 0);
    for (int k = 0; k < 2; k++) {
        struct mux_buf b = {0};
        cr_assert_eq(mux_frame_encode(1, &msgs[k], &b), 0);
        const uint8_t *body = b.data + MUX_LEN_BYTES;
        size_t len = b.len - MUX_LEN_BYTES;
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut > 0 ? cut : 1); /* ASan sees past */
            memcpy(copy, body, cut);
            uint32_t shard;
            struct raft_message out;
            cr_assert_eq(mux_frame_decode(copy, cut, &shard, &out),
                         RAFT_MALFORMED, "message %d cut at %zu", k, cut);
            free(copy);
        }
        uint8_t *copy = malloc(len);
        for (size_t at = 0; at < len; at++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(copy, body, len);
                copy[at] ^= (uint8_t)(1u << bit);
                uint32_t shard;
                struct raft_message out;
                if (mux_frame_decode(copy, len, &shard, &out) == 0) {
                    mux_message_discard(&out);
                }
            }
        }
        free(copy);
        mux_buf_free(&b);
    }
    raft_configuration_close(&s->conf);
    /* Random bytes. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t junk[256];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(x % sizeof junk);
        for (size_t j = 0; j < len; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[j] = (uint8_t)x;
        }
        if (len >= 6) {
            junk[4] = (uint8_t)(1 + x % 6); /* a known type, often */
            junk[5] = 0;
        }
        uint8_t *copy = malloc(len > 0 ? len : 1);
        memcpy(copy, junk, len);
        uint32_t shard;
        struct raft_message out;
        if (mux_frame_decode(copy, len, &shard, &out) == 0) {
            mux_message_discard(&out);
        }
        free(copy);
    }
}
