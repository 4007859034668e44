/* Refreshing the shard map of libmemcoord from nodes' STATUS answers.
 *
 * A node's STATUS lists the cluster's members and shard count, and for
 * each shard it hosts the replicas and the leader it knows. One node may
 * not host every shard, so a refresh asks one node after another (the
 * caller's endpoints first, then the other members) until every shard has
 * a leader it can reach, or nobody is left to ask.
 *
 * A refresh runs on the thread of a call that needs it and takes part of
 * that call's time, so it is frugal: one attempt per node with short
 * waits, no retries, nodes that just failed asked only when nobody else
 * answered, and at most one refresh per MC_CLIENT_REFRESH_MS_MIN across
 * all the client's threads (route.c). It never fails a call: what it could
 * not learn, forwarding by the nodes covers. */
#include "client/internal.h"

static int wait_cap(int64_t until_ms, int cap_ms)
{
    int64_t left = until_ms - base_mono_ms();
    if (left < 1) {
        return 1;
    }
    return left < cap_ms ? (int)left : cap_ms;
}

/* Ask the node behind socket ep and learn its answer. True when it
 * answered with a status. */
static bool ask(mc_client *c, size_t ep, const void *frame, size_t frame_len,
                int64_t until_ms)
{
    Mcpb__Response *r = NULL;
    mc_result ignored;
    enum attempt_outcome o = client_attempt(
        &c->eps[ep], frame, frame_len,
        wait_cap(until_ms, MC_CLIENT_STATUS_CONNECT_MS),
        wait_cap(until_ms, MC_CLIENT_STATUS_REPLY_MS), &r, &ignored);
    if (o == ATTEMPT_NOT_SENT || o == ATTEMPT_UNKNOWN) {
        client_route_failed(c, ep);
        return false;
    }
    if (o != ATTEMPT_ANSWERED) {
        return false;
    }
    client_route_answered(c, ep);
    bool learned = r->code == MC_OK && r->status != NULL;
    if (learned) {
        client_route_learn_status(c, ep, r->status);
    }
    mcpb__response__free_unpacked(r, NULL);
    return learned;
}

/* The next socket to ask: a node that did not just fail, or, while nobody
 * answered yet, any node left. */
static bool next_ask(mc_client *c, const bool *asked, bool learned,
                     size_t *ep)
{
    return client_route_next_ask(c, asked, false, ep) ||
           (!learned && client_route_next_ask(c, asked, true, ep));
}

void client_route_refresh(mc_client *c, int64_t deadline_ms)
{
    int64_t now = base_mono_ms();
    int64_t budget = (deadline_ms - now) / 2;
    unsigned gen;
    /* A call with no time to spare leaves the refresh to the next one. */
    if (budget < 1 || !client_route_refresh_begin(c, &gen)) {
        return;
    }
    int64_t until_ms =
        now + (budget < MC_CLIENT_REFRESH_MS_MAX ? budget
                                                 : MC_CLIENT_REFRESH_MS_MAX);
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_STATUS;
    void *frame = NULL;
    size_t frame_len = 0;
    bool complete = false;
    if (proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &frame,
                           &frame_len) != MC_OK) {
        goto out; /* out of memory: the next call tries again */
    }
    /* Indexed by socket: a refresh asks each at most once. */
    bool asked[MC_CLIENT_SOCKETS_MAX] = {false};
    bool learned = false;
    size_t ep;
    while (!complete && base_mono_ms() < until_ms &&
           next_ask(c, asked, learned, &ep)) {
        asked[ep] = true;
        learned = ask(c, ep, frame, frame_len, until_ms) || learned;
        complete = learned && client_route_is_complete(c);
    }
    mc_free(frame);
out:
    client_route_refresh_end(c, gen, complete);
}
