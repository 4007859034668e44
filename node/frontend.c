/* The front end: an nng rep0 socket with one context per request in
 * flight. Its callbacks run on nng's threads and never block: they decode
 * and check a request, answer STATUS and bad input at once, and hand the
 * rest to the loop thread of the replica that owns the key's shard. The
 * loop answers with frontend_reply (nng_ctx_send is thread-safe). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "node/node.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

enum { WORK_RECV, WORK_SEND };

/* Replies larger than this are cut short by list (more = true); a client
 * sets its receive limit above it. */
#define REPLY_BYTES_MAX (16u << 20)

/* The request of w is answered (its reply sent, or dropped): drain may now
 * stop waiting for it. */
static void uncount(struct node_work *w)
{
    if (w->counted) {
        w->counted = false;
        atomic_fetch_sub(&w->fe->inflight, 1);
    }
}

/* Send m (a framed Response) for w and release w's request. */
static void reply_msg(struct node_work *w, nng_msg *m)
{
    if (w->req != NULL) {
        mcpb__request__free_unpacked(w->req, NULL);
        w->req = NULL;
    }
    w->state = WORK_SEND;
    nng_aio_set_msg(w->aio, m);
    nng_ctx_send(w->ctx, w->aio);
}

void frontend_reply(struct node_work *w, const Mcpb__Response *resp)
{
    size_t len = proto_frame_size(
        protobuf_c_message_get_packed_size(&resp->base));
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0) {
        /* Out of memory: drop the reply; the client times out and
         * retries with the same id. */
        LOG_ERROR("reply dropped: out of memory bytes=%zu", len);
        if (w->req != NULL) {
            mcpb__request__free_unpacked(w->req, NULL);
            w->req = NULL;
        }
        uncount(w);
        w->state = WORK_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    proto_frame_pack(&resp->base, PROTO_RESPONSE, nng_msg_body(m), len);
    reply_msg(w, m);
}

void frontend_reply_err(struct node_work *w, mc_err code, const char *fmt,
                        ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = code;
    resp.message = msg;
    frontend_reply(w, &resp);
}

/* ---- forwarding to the leader on another node ---- */

enum { FWD_SEND, FWD_RECV };


static struct node_peer *peer_of(struct node_frontend *fe, uint64_t id)
{
    for (uint32_t i = 0; i < fe->n_peers; i++) {
        if (fe->peers[i].id == id && atomic_load(&fe->peers[i].open)) {
            return &fe->peers[i];
        }
    }
    return NULL;
}

static void fwd_cb(void *arg)
{
    struct node_work *w = arg;
    int rv = nng_aio_result(w->fwd_aio);
    if (w->fwd_state == FWD_SEND && rv == 0) {
        w->fwd_state = FWD_RECV;
        /* A watch or wait waits on the leader before it answers. */
        nng_aio_set_timeout(w->fwd_aio, FORWARD_TIMEOUT_MS + w->fwd_wait_ms);
        nng_ctx_recv(w->fwd_ctx, w->fwd_aio);
        return;
    }
    atomic_store(&w->fwd_longpoll, false);
    nng_ctx_close(w->fwd_ctx);
    if (rv == NNG_ECANCELED && atomic_load(&w->fe->draining)) {
        /* frontend_drain cut a watch or wait short: it changed nothing. */
        if (w->fwd_state == FWD_SEND) {
            nng_msg_free(nng_aio_get_msg(w->fwd_aio));
        }
        frontend_reply_err(w, MC_UNAVAILABLE, "node is shutting down");
        return;
    }
    if (rv != 0) {
        if (w->fwd_state == FWD_SEND) {
            nng_msg_free(nng_aio_get_msg(w->fwd_aio));
        }
        /* Not sent: it did not apply. Sent without an answer: unknown. */
        frontend_reply_err(w, w->fwd_state == FWD_SEND ? MC_UNAVAILABLE
                                                       : MC_TIMEOUT,
                           "forward of shard %u to node %llu: %s", w->shard,
                           (unsigned long long)w->fwd_to, nng_strerror(rv));
        return;
    }
    reply_msg(w, nng_aio_get_msg(w->fwd_aio)); /* the leader's answer */
}

static void reply_not_leader(struct node_work *w, const struct meta_member *m)
{
    char msg[128];
    snprintf(msg, sizeof msg, "shard %u is led by node %llu", w->shard,
             (unsigned long long)m->id);
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_NOT_LEADER;
    resp.message = msg;
    resp.has_leader_id = true;
    resp.leader_id = m->id;
    resp.leader_url = (char *)m->url;
    frontend_reply(w, &resp);
}

void frontend_forward(struct node_work *w, uint64_t to)
{
    struct node_frontend *fe = w->fe;
    Mcpb__Request *req = w->req;
    const struct meta_member *m = node_member(fe->node, to);
    if (req->no_forward && m != NULL) {
        reply_not_leader(w, m);
        return;
    }
    struct node_peer *peer = peer_of(fe, to);
    if (m == NULL || peer == NULL) {
        frontend_reply_err(w, MC_UNAVAILABLE, "shard %u has no leader that "
                           "this node can reach", w->shard);
        return;
    }
    if (req->hops >= MC_FORWARD_HOPS_MAX) {
        frontend_reply_err(w, MC_UNAVAILABLE, "shard %u: forwarded %u times; "
                           "its leadership is moving", w->shard, req->hops);
        return;
    }
    req->has_hops = true;
    req->hops++;
    size_t len = proto_frame_size(
        protobuf_c_message_get_packed_size(&req->base));
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, len);
    if (rv == 0) {
        proto_frame_pack(&req->base, PROTO_REQUEST, nng_msg_body(msg), len);
        rv = nng_ctx_open(&w->fwd_ctx, peer->sock);
        if (rv != 0) {
            nng_msg_free(msg);
        }
    }
    if (rv != 0) {
        frontend_reply_err(w, MC_UNAVAILABLE, "forward to node %llu: %s",
                           (unsigned long long)to, nng_strerror(rv));
        return;
    }
    w->fwd_to = to;
    w->fwd_state = FWD_SEND;
    bool longpoll = req->op == MCPB__OP__OP_WATCH ||
                    req->op == MCPB__OP__OP_WAIT;
    w->fwd_wait_ms = longpoll ? (int)req->wait_ms : 0;
    atomic_store(&w->fwd_longpoll, longpoll);
    nng_aio_set_msg(w->fwd_aio, msg);
    nng_aio_set_timeout(w->fwd_aio, FORWARD_SEND_MS);
    nng_ctx_send(w->fwd_ctx, w->fwd_aio);
}

static void peers_close(struct node_frontend *fe)
{
    for (uint32_t i = 0; i < fe->n_peers; i++) {
        if (atomic_exchange(&fe->peers[i].open, false)) {
            nng_close(fe->peers[i].sock);
        }
    }
}

static mc_err peers_open(struct node_frontend *fe, char *err, size_t err_len)
{
    const struct node *n = fe->node;
    for (uint32_t i = 0; i < n->map.n_members; i++) {
        const struct meta_member *m = &n->map.members[i];
        if (m->id == n->cfg.node_id) {
            continue;
        }
        struct node_peer *p = &fe->peers[fe->n_peers];
        p->id = m->id;
        int rv = nng_req0_open(&p->sock);
        if (rv != 0) {
            base_errf(err, err_len, "nng_req0_open: %s", nng_strerror(rv));
            return MC_INTERNAL;
        }
        atomic_store(&p->open, true);
        fe->n_peers++;
        /* Answers relay list pages; requests carry at most one value. */
        nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, 64u << 20);
        /* No resends: a forward that fails is answered, the client retries
         * with the same request id. */
        nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        rv = nng_dial(p->sock, m->url, NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            base_errf(err, err_len, "dial node %llu at %s: %s",
                      (unsigned long long)m->id, m->url, nng_strerror(rv));
            return MC_INTERNAL;
        }
    }
    return MC_OK;
}

static void reply_status(struct node_work *w)
{
    struct status_scratch *s = mc_malloc(sizeof *s);
    if (s == NULL) {
        frontend_reply_err(w, MC_INTERNAL, "out of memory");
        return;
    }
    node_status(w->fe->node, s);
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_OK;
    resp.status = &s->status;
    frontend_reply(w, &resp);
    mc_free(s);
}

/* Route a checked request to the replica of its shard. */
static void route(struct node_work *w)
{
    struct node *n = w->fe->node;
    const Mcpb__Request *req = w->req;
    if (req->op == MCPB__OP__OP_LIST || req->op == MCPB__OP__OP_TRANSFER ||
        req->op == MCPB__OP__OP_HASH ||
        (req->op == MCPB__OP__OP_WATCH && req->has_prefix)) {
        if (req->shard >= n->cfg.shards) {
            frontend_reply_err(w, MC_INVALID_ARGUMENT,
                               "shard %u does not exist (the cluster has %u)",
                               req->shard, n->cfg.shards);
            return;
        }
        w->shard = req->shard;
    } else if (req->op == MCPB__OP__OP_TXN) {
        char err[256];
        if (proto_txn_shard(req, n->cfg.shards, &w->shard, err, sizeof err) !=
            MC_OK) {
            frontend_reply_err(w, MC_INVALID_ARGUMENT, "%s", err);
            return;
        }
    } else {
        uint32_t slot = proto_slot(req->ns.data, req->ns.len, req->key.data,
                                   req->key.len);
        w->shard = proto_shard_of_slot(slot, n->cfg.shards);
    }
    struct node_replica *r = n->replicas[w->shard];
    if (r == NULL && req->op == MCPB__OP__OP_HASH) {
        frontend_reply_err(w, MC_NOT_FOUND, "node %llu hosts no replica of "
                           "shard %u", (unsigned long long)n->cfg.node_id,
                           w->shard);
        return;
    }
    if (r == NULL && req->no_forward) {
        /* No hint to give: this node does not know who leads. */
        frontend_reply_err(w, MC_NOT_LEADER, "node %llu hosts no replica of "
                           "shard %u", (unsigned long long)n->cfg.node_id,
                           w->shard);
        return;
    }
    if (r == NULL) {
        /* Not hosted here: go to the shard's preferred leader, which
         * forwards once more if leadership has moved. */
        frontend_forward(w, n->map.replica_ids[w->shard][0]);
        return;
    }
    if (!loop_submit(r->loop, w)) {
        frontend_reply_err(w, MC_UNAVAILABLE,
                           "node is shutting down or overloaded");
    }
}

static void on_request(struct node_work *w, nng_msg *m)
{
    char err[256];
    Mcpb__Request *req;
    mc_err rv = proto_request_decode(nng_msg_body(m), nng_msg_len(m), &req,
                                     err, sizeof err);
    nng_msg_free(m);
    if (rv != MC_OK) {
        frontend_reply_err(w, rv, "%s", err);
        return;
    }
    w->req = req;
    w->counted = true;
    atomic_fetch_add(&w->fe->inflight, 1);
    rv = proto_request_check(req, w->fe->node->cfg.value_max, err, sizeof err);
    if (rv != MC_OK) {
        frontend_reply_err(w, rv, "%s", err);
    } else if (atomic_load(&w->fe->draining)) {
        frontend_reply_err(w, MC_UNAVAILABLE, "node is shutting down");
    } else if (req->op == MCPB__OP__OP_STATUS) {
        reply_status(w);
    } else {
        route(w);
    }
}

static void work_cb(void *arg)
{
    struct node_work *w = arg;
    int rv = nng_aio_result(w->aio);
    if (w->state == WORK_SEND) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
        }
        uncount(w);
        w->state = WORK_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
        return; /* the socket is closing */
    }
    if (rv != 0) {
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    on_request(w, nng_aio_get_msg(w->aio));
}

mc_err frontend_start(struct node_frontend *fe, struct node *n, char *err,
                      size_t err_len)
{
    fe->node = n;
    fe->n_works = n->cfg.contexts;
    atomic_init(&fe->draining, false);
    atomic_init(&fe->inflight, 0);
    int rv = nng_rep0_open(&fe->sock);
    if (rv != 0) {
        base_errf(err, err_len, "nng_rep0_open: %s", nng_strerror(rv));
        return MC_INTERNAL;
    }
    /* Larger messages reset the connection (DEPS-NOTES.md, nng). Leave
     * room for a value of the configured size plus the header. */
    nng_socket_set_size(fe->sock, NNG_OPT_RECVMAXSZ,
                        n->cfg.value_max + MC_HEADER_BYTES_MAX);
    fe->works = mc_calloc(fe->n_works, sizeof *fe->works);
    if (fe->works == NULL) {
        base_errf(err, err_len, "out of memory");
        goto err_after_open;
    }
    for (uint32_t i = 0; i < fe->n_works; i++) {
        struct node_work *w = &fe->works[i];
        w->fe = fe;
        atomic_init(&w->fwd_longpoll, false);
        if ((rv = nng_aio_alloc(&w->aio, work_cb, w)) != 0 ||
            (rv = nng_aio_alloc(&w->fwd_aio, fwd_cb, w)) != 0 ||
            (rv = nng_ctx_open(&w->ctx, fe->sock)) != 0) {
            base_errf(err, err_len, "nng context: %s", nng_strerror(rv));
            goto err_after_works;
        }
    }
    if (peers_open(fe, err, err_len) != MC_OK) {
        goto err_after_works;
    }
    rv = nng_listen(fe->sock, n->cfg.listen, NULL, 0);
    if (rv != 0) {
        base_errf(err, err_len, "listen %s: %s", n->cfg.listen,
                  nng_strerror(rv));
        goto err_after_works;
    }
    for (uint32_t i = 0; i < fe->n_works; i++) {
        fe->works[i].state = WORK_RECV;
        nng_ctx_recv(fe->works[i].ctx, fe->works[i].aio);
    }
    return MC_OK;

err_after_works:
    nng_close(fe->sock);
    peers_close(fe);
    for (uint32_t i = 0; i < fe->n_works; i++) {
        nng_aio_free(fe->works[i].aio); /* NULL-safe */
        nng_aio_free(fe->works[i].fwd_aio);
    }
    mc_free(fe->works);
    fe->works = NULL;
    return MC_INTERNAL;
err_after_open:
    nng_close(fe->sock);
    return MC_INTERNAL;
}

void frontend_drain(struct node_frontend *fe, int timeout_ms)
{
    atomic_store(&fe->draining, true);
    /* Watches and waits would hold the drain for their whole wait: parked
     * ones are answered UNAVAILABLE by their loops, forwarded ones are
     * cut short here (a client retries them on another node). */
    struct node *n = fe->node;
    for (unsigned i = 0; i < n->n_loops; i++) {
        watch_loop_flush(&n->loops[i]);
    }
    for (uint32_t i = 0; i < fe->n_works; i++) {
        if (atomic_load(&fe->works[i].fwd_longpoll)) {
            nng_aio_cancel(fe->works[i].fwd_aio);
        }
    }
    int64_t deadline = base_mono_ms() + timeout_ms;
    while (atomic_load(&fe->inflight) > 0 && base_mono_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&fe->inflight) > 0) {
        LOG_WARN("shutdown with requests in flight count=%u",
                 atomic_load(&fe->inflight));
    }
}

void frontend_close(struct node_frontend *fe)
{
    if (fe->works == NULL) {
        return;
    }
    /* nng's order: close the sockets, stop every aio, then free them. */
    nng_close(fe->sock);
    peers_close(fe);
    for (uint32_t i = 0; i < fe->n_works; i++) {
        nng_aio_stop(fe->works[i].fwd_aio);
        nng_aio_stop(fe->works[i].aio);
    }
    for (uint32_t i = 0; i < fe->n_works; i++) {
        struct node_work *w = &fe->works[i];
        if (w->req != NULL) {
            mcpb__request__free_unpacked(w->req, NULL);
        }
        nng_aio_free(w->aio);
        nng_aio_free(w->fwd_aio);
    }
    mc_free(fe->works);
    fe->works = NULL;
}
