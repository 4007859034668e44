/* The raft transport of a loop thread: the messages of every group of the
 * loop to a peer node go over one TCP connection (mux_wire.h has the
 * frames), and what the groups send during a loop turn leaves in one
 * write per peer, just before the loop polls again (a uv_prepare handle).
 * raft_uv instead gives every group replica its own port and connections
 * and reads a message in three syscalls: with 8 groups per node that cost
 * more CPU than anything else the loops did (README, Benchmarks).
 *
 * Outbound (to each peer):
 *
 *   DOWN --send, retry time passed--> CONNECTING --connected--> UP
 *    ^                                   | refused, timed out      |
 *    +-----------------------------------+-------------------------+
 *                                         write error, EOF
 *
 * A message for a peer that is DOWN within its retry delay is dropped (raft
 * sends again: heartbeats, probes); one for a CONNECTING or UP peer is
 * encoded into the peer's buffer at once (raft's buffers are free when send
 * returns) and raft's send callback fires at the next flush. A peer whose
 * buffered and unwritten bytes pass MUX_PEER_QUEUE_MAX drops further
 * messages until it drains: a partitioned peer cannot eat the memory.
 *
 * Inbound: a connection starts with the dialer's hello (node id and lane);
 * every frame then goes to the group of its shard registered on this mux,
 * or is dropped when there is none. A frame that does not decode drops the
 * connection.
 *
 * Thread: everything runs on the mux's loop thread. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "consensus/consensus.h"
#include "consensus/mux_wire.h"
#include "consensus/wal.h"

/* Buffered plus unwritten bytes to a peer beyond which its messages are
 * dropped. A snapshot is one message and always gets through once the
 * peer has drained. */
#define MUX_PEER_QUEUE_MAX (64u << 20)
/* A connection attempt gives up after this long (a partitioned peer never
 * answers), and the next one waits this long after a failure. */
#define MUX_CONNECT_TIMEOUT_MS 1000u
#define MUX_RETRY_MS 100u
/* Unacknowledged data fails a connection after this long, and idle ones
 * are probed: a peer behind a partition is noticed and dialled again. */
#define MUX_USER_TIMEOUT_MS 3000u
#define MUX_KEEPALIVE_S 2u
/* Reads ask for at least this much room; a read buffer grown for a large
 * frame shrinks back to it once drained. */
#define MUX_READ_CHUNK (64u << 10)

enum peer_state { PEER_DOWN, PEER_CONNECTING, PEER_UP };

struct mux_out; /* one outbound connection (attempt) */

struct mux_peer {
    struct cons_mux *m;
    uint64_t id;
    struct sockaddr_in addr;
    enum peer_state state;
    struct mux_out *conn; /* NULL when DOWN */
    int64_t retry_at_ms;
    struct mux_buf out;   /* frames of this turn, or waiting for the
                             connection; starts with the hello */
    uint64_t dropped;
};

struct mux_out {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t timer; /* the connect timeout */
    struct mux_peer *peer; /* NULL once the peer let go of it */
    unsigned open_handles;
    char sink[16]; /* reads: a peer never sends on our connection */
};

struct mux_write {
    uv_write_t req;
    struct mux_buf buf;
    struct mux_out *conn;
};

struct mux_in {
    uv_tcp_t tcp;
    struct cons_mux *m;
    struct mux_in *prev, *next;
    bool hello;
    uint64_t from;
    struct mux_buf rbuf;
    size_t want; /* bytes the frame being read needs in rbuf */
};

/* A send whose callback fires at the next flush. */
struct mux_done {
    struct raft_io_send *req;
    raft_io_send_cb cb;
    int status;
    struct cons_lane_io *io;
};

struct cons_mux {
    uv_loop_t *loop;
    uint64_t node_id;
    uint32_t lane, lanes;
    uv_tcp_t listener;
    uv_prepare_t flush;
    struct mux_peer peers[MC_NODES_MAX];
    unsigned n_peers;
    struct mux_in *ins;
    struct cons_lane_io *ios[MC_SHARDS_MAX];
    struct mux_done *done;
    size_t n_done, cap_done;
    bool closing;
    unsigned open_handles; /* listener, flush */
    struct cons_wal *wal;
    struct cons_mux_stats stats;
};

/* ---- outbound ---- */

static void out_handle_closed(uv_handle_t *h)
{
    struct mux_out *c = h->data;
    if (--c->open_handles == 0) {
        mc_free(c);
    }
}

/* Let go of p's connection; the peer is DOWN until its retry time. */
static void peer_down(struct mux_peer *p, const char *why)
{
    struct mux_out *c = p->conn;
    if (c != NULL) {
        c->peer = NULL;
        p->conn = NULL;
        uv_close((uv_handle_t *)&c->timer, out_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, out_handle_closed);
    }
    if (p->state == PEER_UP) {
        LOG_INFO("raft lane %u: connection to node %llu lost: %s", p->m->lane,
                 (unsigned long long)p->id, why);
    }
    p->state = PEER_DOWN;
    p->retry_at_ms = base_mono_ms() + MUX_RETRY_MS;
    p->out.len = 0; /* partial frames must not reach the next connection */
}

static void socket_tune(uv_tcp_t *tcp)
{
    uv_tcp_nodelay(tcp, 1);
    uv_tcp_keepalive(tcp, 1, MUX_KEEPALIVE_S);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0) {
        unsigned ms = MUX_USER_TIMEOUT_MS;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct mux_write *w = req->data;
    struct mux_out *c = w->conn;
    mux_buf_free(&w->buf);
    mc_free(w);
    if (status < 0 && c->peer != NULL) {
        peer_down(c->peer, uv_strerror(status));
    }
}

/* Write what p has buffered. */
static void peer_write(struct mux_peer *p)
{
    struct mux_write *w = mc_malloc(sizeof *w);
    if (w == NULL) {
        p->dropped++;
        peer_down(p, "out of memory");
        return;
    }
    w->req.data = w;
    w->buf = p->out;
    w->conn = p->conn;
    p->out = (struct mux_buf){0};
    uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    p->m->stats.writes++;
    p->m->stats.bytes_out += w->buf.len;
    int rv = uv_write(&w->req, (uv_stream_t *)&w->conn->tcp, &b, 1, write_cb);
    if (rv != 0) {
        mux_buf_free(&w->buf);
        mc_free(w);
        peer_down(p, uv_strerror(rv));
    }
}

static void out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct mux_out *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->sink, sizeof c->sink);
}

/* The connection is read only to notice at once that the peer closed it
 * (it died or restarted): else the first messages written after that
 * would be lost, as the first write to a dead connection succeeds. */
static void out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mux_out *c = s->data;
    (void)buf;
    if (nread == 0 || c->peer == NULL) {
        return;
    }
    peer_down(c->peer, nread == UV_EOF ? "closed by the peer"
                       : nread < 0     ? uv_strerror((int)nread)
                                       : "the peer sent on our connection");
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct mux_out *c = req->data;
    struct mux_peer *p = c->peer;
    if (p == NULL) {
        return; /* let go of already (timeout, close) */
    }
    uv_timer_stop(&c->timer);
    if (status != 0) {
        peer_down(p, uv_strerror(status));
        return;
    }
    socket_tune(&c->tcp);
    int rv = uv_read_start((uv_stream_t *)&c->tcp, out_alloc, out_read);
    if (rv != 0) {
        peer_down(p, uv_strerror(rv));
        return;
    }
    p->state = PEER_UP;
    LOG_DEBUG("raft lane %u: connected to node %llu", p->m->lane,
              (unsigned long long)p->id);
    peer_write(p); /* the hello and what waited */
}

static void connect_timeout_cb(uv_timer_t *t)
{
    struct mux_out *c = t->data;
    if (c->peer != NULL) {
        peer_down(c->peer, "connect timed out");
    }
}

/* Start dialling p: its buffer begins with the hello. */
static void peer_connect(struct mux_peer *p)
{
    struct cons_mux *m = p->m;
    struct mux_out *c = mc_calloc(1, sizeof *c);
    uint8_t hello[MUX_HELLO_BYTES];
    mux_hello_encode(&(struct mux_hello){m->node_id, m->lane, m->lanes},
                     hello);
    if (c == NULL || !mux_buf_reserve(&p->out, sizeof hello)) {
        mc_free(c);
        p->retry_at_ms = base_mono_ms() + MUX_RETRY_MS;
        return;
    }
    /* The hello goes first, ahead of anything buffered. */
    memmove(p->out.data + sizeof hello, p->out.data, p->out.len);
    memcpy(p->out.data, hello, sizeof hello);
    p->out.len += sizeof hello;
    uv_tcp_init(m->loop, &c->tcp);
    uv_timer_init(m->loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect.data = c;
    c->open_handles = 2;
    c->peer = p;
    p->conn = c;
    p->state = PEER_CONNECTING;
    m->stats.connects++;
    int rv = uv_tcp_connect(&c->connect, &c->tcp,
                            (const struct sockaddr *)&p->addr, connect_cb);
    if (rv != 0) {
        peer_down(p, uv_strerror(rv));
        return;
    }
    uv_timer_start(&c->timer, connect_timeout_cb, MUX_CONNECT_TIMEOUT_MS, 0);
}

static struct mux_peer *peer_find(struct cons_mux *m, uint64_t id)
{
    for (unsigned i = 0; i < m->n_peers; i++) {
        if (m->peers[i].id == id) {
            return &m->peers[i];
        }
    }
    return NULL;
}

static size_t peer_queued(const struct mux_peer *p)
{
    size_t n = p->out.len;
    if (p->state == PEER_UP) {
        n += p->conn->tcp.write_queue_size;
    }
    return n;
}

/* ---- sends and the flush ---- */

static void done_push(struct cons_mux *m, struct cons_lane_io *io,
                      struct raft_io_send *req, raft_io_send_cb cb,
                      int status)
{
    if (cb == NULL) {
        return; /* raft asks for no callback for some answers */
    }
    if (m->n_done == m->cap_done) {
        size_t cap = m->cap_done > 0 ? m->cap_done * 2 : 64;
        struct mux_done *d = mc_realloc(m->done, cap * sizeof *d);
        if (d == NULL) {
            /* Never lose a callback: raft waits for it to free the
             * message. Firing it now is the lesser evil. */
            cb(req, status != 0 ? status : RAFT_NOMEM);
            return;
        }
        m->done = d;
        m->cap_done = cap;
    }
    m->done[m->n_done++] = (struct mux_done){req, cb, status, io};
}

int cons_mux_send(struct cons_mux *m, struct cons_lane_io *io,
                  struct raft_io_send *req, const struct raft_message *msg,
                  raft_io_send_cb cb)
{
    struct mux_peer *p = peer_find(m, msg->server_id);
    int status = RAFT_NOCONNECTION;
    if (p != NULL && p->state == PEER_DOWN &&
        base_mono_ms() >= p->retry_at_ms) {
        peer_connect(p);
    }
    if (p != NULL && p->state != PEER_DOWN &&
        peer_queued(p) < MUX_PEER_QUEUE_MAX) {
        status = mux_frame_encode(io->shard_id, msg, &p->out);
    }
    if (status == 0) {
        m->stats.frames_out++;
    } else if (p != NULL) {
        p->dropped++;
        m->stats.dropped_out++;
    }
    done_push(m, io, req, cb, status);
    return 0;
}

/* Fire the waiting send callbacks. They may send again: the list is
 * taken first. */
static void done_fire(struct cons_mux *m)
{
    while (m->n_done > 0) {
        size_t n = m->n_done;
        struct mux_done *d = m->done;
        m->done = NULL;
        m->n_done = m->cap_done = 0;
        for (size_t i = 0; i < n; i++) {
            d[i].cb(d[i].req, d[i].status);
        }
        mc_free(d);
    }
}

static void peers_write(struct cons_mux *m)
{
    for (unsigned i = 0; i < m->n_peers; i++) {
        struct mux_peer *p = &m->peers[i];
        if (p->state == PEER_UP && p->out.len > 0) {
            peer_write(p);
        }
    }
}

void cons_mux_flush(struct cons_mux *m)
{
    /* The entries go to the followers first, so that their disks work
     * while this one syncs; the answers the sync lets out follow. */
    peers_write(m);
    if (m->wal != NULL && cons_wal_pending(m->wal)) {
        cons_wal_sync(m->wal);
        peers_write(m);
    }
    done_fire(m);
}

static void flush_cb(uv_prepare_t *h)
{
    cons_mux_flush(h->data);
}

/* ---- inbound ---- */

static void in_closed(uv_handle_t *h)
{
    struct mux_in *in = h->data;
    mux_buf_free(&in->rbuf);
    mc_free(in);
}

static void in_drop(struct mux_in *in, const char *why)
{
    struct cons_mux *m = in->m;
    if (why != NULL) {
        LOG_WARN("raft lane %u: dropping the connection from node %llu: %s",
                 m->lane, (unsigned long long)in->from, why);
    }
    if (in->prev != NULL) {
        in->prev->next = in->next;
    } else {
        m->ins = in->next;
    }
    if (in->next != NULL) {
        in->next->prev = in->prev;
    }
    uv_close((uv_handle_t *)&in->tcp, in_closed);
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct mux_in *in = h->data;
    size_t room = in->want > in->rbuf.len ? in->want - in->rbuf.len : 0;
    if (room < MUX_READ_CHUNK) {
        room = MUX_READ_CHUNK;
    }
    if (!mux_buf_reserve(&in->rbuf, room)) {
        *buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS in read_cb */
        return;
    }
    *buf = uv_buf_init((char *)in->rbuf.data + in->rbuf.len,
                       (unsigned)(in->rbuf.cap - in->rbuf.len));
}

/* Hand one frame to its group. False when it does not decode. */
static bool in_dispatch(struct mux_in *in, const uint8_t *p, size_t len)
{
    struct cons_mux *m = in->m;
    uint32_t shard;
    struct raft_message msg;
    int rv = mux_frame_decode(p, len, &shard, &msg);
    if (rv == RAFT_NOMEM) {
        m->stats.dropped_in++; /* as if lost on the wire */
        return true;
    }
    if (rv != 0) {
        return false;
    }
    m->stats.frames_in++;
    struct cons_lane_io *io = shard < MC_SHARDS_MAX ? m->ios[shard] : NULL;
    if (io == NULL) {
        m->stats.dropped_in++;
        mux_message_discard(&msg);
        return true;
    }
    msg.server_id = in->from;
    msg.server_address = cons_lane_io_address(io, in->from);
    io->recv_cb(&io->io, &msg); /* raft owns what msg points to now */
    return true;
}

static void in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mux_in *in = s->data;
    struct cons_mux *m = in->m;
    if (nread < 0) {
        in_drop(in, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        return;
    }
    in->rbuf.len += (size_t)nread;
    m->stats.bytes_in += (size_t)nread;
    size_t off = 0;
    if (!in->hello) {
        if (in->rbuf.len < MUX_HELLO_BYTES) {
            return;
        }
        struct mux_hello h;
        if (!mux_hello_decode(in->rbuf.data, &h)) {
            in_drop(in, "not a memcoord raft connection");
            return;
        }
        if (h.lanes != m->lanes || h.lane != m->lane) {
            LOG_ERROR("raft lane %u: node %llu dials lane %u of %u, this node "
                      "has %u: --loops must be the same on every node",
                      m->lane, (unsigned long long)h.node_id, h.lane, h.lanes,
                      m->lanes);
            in_drop(in, NULL);
            return;
        }
        in->hello = true;
        in->from = h.node_id;
        off = MUX_HELLO_BYTES;
    }
    while (in->rbuf.len - off >= MUX_LEN_BYTES) {
        uint64_t len = bytes_get_u64le(in->rbuf.data + off);
        if (len < MUX_FRAME_HEAD_BYTES || len > MUX_FRAME_MAX) {
            in_drop(in, "bad frame length");
            return;
        }
        if (in->rbuf.len - off - MUX_LEN_BYTES < len) {
            in->want = MUX_LEN_BYTES + (size_t)len;
            break;
        }
        if (!in_dispatch(in, in->rbuf.data + off + MUX_LEN_BYTES,
                         (size_t)len)) {
            in_drop(in, "a frame does not decode");
            return;
        }
        off += MUX_LEN_BYTES + (size_t)len;
        in->want = 0;
    }
    memmove(in->rbuf.data, in->rbuf.data + off, in->rbuf.len - off);
    in->rbuf.len -= off;
    if (in->rbuf.len == 0 && in->rbuf.cap > 4 * MUX_READ_CHUNK) {
        mux_buf_free(&in->rbuf); /* after a snapshot: give it back */
    }
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct cons_mux *m = server->data;
    if (status != 0) {
        LOG_WARN("raft lane %u: accept: %s", m->lane, uv_strerror(status));
        return;
    }
    struct mux_in *in = mc_calloc(1, sizeof *in);
    if (in == NULL) {
        return;
    }
    in->m = m;
    uv_tcp_init(m->loop, &in->tcp);
    in->tcp.data = in;
    in->next = m->ins;
    if (m->ins != NULL) {
        m->ins->prev = in;
    }
    m->ins = in;
    if (uv_accept(server, (uv_stream_t *)&in->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&in->tcp, in_alloc, in_read) != 0) {
        in_drop(in, "accept failed");
        return;
    }
    socket_tune(&in->tcp);
}

/* ---- the mux ---- */

mc_err cons_mux_open(uv_loop_t *loop, const struct cons_mux_config *cfg,
                     struct cons_mux **out, char *err, size_t err_len)
{
    ASSERT(cfg->lane < cfg->lanes);
    ASSERT(cfg->n_peers <= MC_NODES_MAX);
    struct cons_mux *m = mc_calloc(1, sizeof *m);
    if (m == NULL) {
        base_errf(err, err_len, "out of memory");
        return MC_INTERNAL;
    }
    m->loop = loop;
    m->wal = cfg->wal;
    m->node_id = cfg->node_id;
    m->lane = cfg->lane;
    m->lanes = cfg->lanes;
    for (unsigned i = 0; i < cfg->n_peers; i++) {
        struct mux_peer *p = &m->peers[m->n_peers];
        if (cfg->peers[i].id == cfg->node_id) {
            continue;
        }
        *p = (struct mux_peer){.m = m, .id = cfg->peers[i].id};
        if (uv_ip4_addr(cfg->peers[i].ip, cfg->peers[i].port, &p->addr) !=
            0) {
            base_errf(err, err_len, "raft address of node %llu: %s:%u is not "
                      "numeric IPv4", (unsigned long long)p->id,
                      cfg->peers[i].ip, cfg->peers[i].port);
            mc_free(m);
            return MC_INVALID_ARGUMENT;
        }
        m->n_peers++;
    }
    struct sockaddr_in bind;
    int rv = uv_ip4_addr(cfg->bind_ip, cfg->bind_port, &bind);
    if (rv != 0) {
        base_errf(err, err_len, "raft lane %u address %s:%u: %s", cfg->lane,
                  cfg->bind_ip, cfg->bind_port, uv_strerror(rv));
        mc_free(m);
        return MC_INVALID_ARGUMENT;
    }
    uv_tcp_init(loop, &m->listener);
    uv_prepare_init(loop, &m->flush);
    m->listener.data = m->flush.data = m;
    m->open_handles = 2;
    rv = uv_tcp_bind(&m->listener, (const struct sockaddr *)&bind, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&m->listener, 128, accept_cb);
    }
    if (rv != 0) {
        base_errf(err, err_len, "raft lane %u: listen on %s:%u: %s",
                  cfg->lane, cfg->bind_ip, cfg->bind_port, uv_strerror(rv));
        cons_mux_close(m);
        return MC_INTERNAL;
    }
    uv_prepare_start(&m->flush, flush_cb);
    *out = m;
    return MC_OK;
}

static void mux_handle_closed(uv_handle_t *h)
{
    struct cons_mux *m = h->data;
    if (--m->open_handles == 0) {
        mc_free(m->done);
        mc_free(m);
    }
}

void cons_mux_close(struct cons_mux *m)
{
    if (m == NULL) {
        return;
    }
    ASSERT(!m->closing);
    m->closing = true;
    for (unsigned s = 0; s < MC_SHARDS_MAX; s++) {
        ASSERT(m->ios[s] == NULL); /* groups close first */
    }
    done_fire(m);
    for (unsigned i = 0; i < m->n_peers; i++) {
        struct mux_peer *p = &m->peers[i];
        peer_down(p, "closing");
        mux_buf_free(&p->out);
    }
    while (m->ins != NULL) {
        in_drop(m->ins, NULL);
    }
    uv_close((uv_handle_t *)&m->listener, mux_handle_closed);
    uv_close((uv_handle_t *)&m->flush, mux_handle_closed);
}

void cons_mux_register(struct cons_mux *m, struct cons_lane_io *io)
{
    ASSERT(io->shard_id < MC_SHARDS_MAX);
    ASSERT(m->ios[io->shard_id] == NULL);
    m->ios[io->shard_id] = io;
}

void cons_mux_forget(struct cons_mux *m, struct cons_lane_io *io)
{
    if (io->shard_id < MC_SHARDS_MAX && m->ios[io->shard_id] == io) {
        m->ios[io->shard_id] = NULL;
    }
    /* Its sends' callbacks fire now, before raft learns the io closed;
     * they are taken out of the list first, as a callback may send. */
    struct mux_done mine[64];
    size_t n_mine;
    do {
        size_t kept = 0;
        n_mine = 0;
        for (size_t i = 0; i < m->n_done; i++) {
            if (m->done[i].io == io && n_mine < 64) {
                mine[n_mine++] = m->done[i];
            } else {
                m->done[kept++] = m->done[i];
            }
        }
        m->n_done = kept;
        for (size_t i = 0; i < n_mine; i++) {
            mine[i].cb(mine[i].req, mine[i].status);
        }
    } while (n_mine > 0);
}

void cons_mux_stats_get(const struct cons_mux *m, struct cons_mux_stats *out)
{
    *out = m->stats;
    out->peers_up = 0;
    for (unsigned i = 0; i < m->n_peers; i++) {
        out->peers_up += m->peers[i].state == PEER_UP;
    }
}
