/* Frames of the raft transport: see mux_wire.h for the layout. */
#include <string.h>

#include "base/base.h"
#include "consensus/mux_wire.h"

#define ENTRY_HEAD_BYTES 16u
#define SERVER_HEAD_BYTES 16u

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

void mux_buf_free(struct mux_buf *b)
{
    mc_free(b->data);
    *b = (struct mux_buf){0};
}

bool mux_buf_reserve(struct mux_buf *b, size_t n)
{
    if (b->cap - b->len >= n) {
        return true;
    }
    size_t cap = b->cap > 0 ? b->cap : 4096;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            return false;
        }
        cap *= 2;
    }
    uint8_t *data = mc_realloc(b->data, cap);
    if (data == NULL) {
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void mux_hello_encode(const struct mux_hello *h, uint8_t out[MUX_HELLO_BYTES])
{
    bytes_put_u64le(out, MUX_MAGIC);
    bytes_put_u64le(out + 8, h->node_id);
    bytes_put_u32le(out + 16, h->lane);
    bytes_put_u32le(out + 20, h->lanes);
    bytes_put_u64le(out + 24, 0);
}

bool mux_hello_decode(const uint8_t in[MUX_HELLO_BYTES], struct mux_hello *h)
{
    if (bytes_get_u64le(in) != MUX_MAGIC) {
        return false;
    }
    h->node_id = bytes_get_u64le(in + 8);
    h->lane = bytes_get_u32le(in + 16);
    h->lanes = bytes_get_u32le(in + 20);
    return h->node_id != 0 && h->lane < h->lanes;
}

/* ---- encoding ---- */

/* A writer over bytes reserved beforehand. */
struct put {
    uint8_t *p;
};

static void put64(struct put *w, uint64_t v)
{
    bytes_put_u64le(w->p, v);
    w->p += 8;
}

static void put32(struct put *w, uint32_t v)
{
    bytes_put_u32le(w->p, v);
    w->p += 4;
}

static void put16(struct put *w, uint16_t v)
{
    bytes_put_u16le(w->p, v);
    w->p += 2;
}

static void put8(struct put *w, uint8_t v)
{
    *w->p++ = v;
}

static void put_bytes(struct put *w, const void *src, size_t n)
{
    if (n > 0) {
        memcpy(w->p, src, n);
    }
    memset(w->p + n, 0, pad8(n) - n);
    w->p += pad8(n);
}

/* Bytes of m's fields and variable part, or 0 when it cannot be framed. */
static size_t body_size(const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *a = &m->append_entries;
        size_t n = 40 + (size_t)a->n_entries * ENTRY_HEAD_BYTES;
        for (unsigned i = 0; i < a->n_entries; i++) {
            n += pad8(a->entries[i].buf.len);
        }
        return n;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT:
    case RAFT_IO_TIMEOUT_NOW:
        return 24;
    case RAFT_IO_REQUEST_VOTE:
        return 40;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        return 16;
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *s = &m->install_snapshot;
        size_t n = 40 + 8 + pad8(s->data.len);
        for (unsigned i = 0; i < s->conf.n; i++) {
            size_t alen = strlen(s->conf.servers[i].address);
            if (alen > MUX_ADDRESS_MAX) {
                return 0;
            }
            n += SERVER_HEAD_BYTES + pad8(alen);
        }
        return n;
    }
    default:
        return 0;
    }
}

static void encode_body(const struct raft_message *m, struct put *w)
{
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *a = &m->append_entries;
        put64(w, a->term);
        put64(w, a->prev_log_index);
        put64(w, a->prev_log_term);
        put64(w, a->leader_commit);
        put32(w, a->n_entries);
        put32(w, 0);
        for (unsigned i = 0; i < a->n_entries; i++) {
            put64(w, a->entries[i].term);
            put16(w, a->entries[i].type);
            put16(w, 0);
            put32(w, (uint32_t)a->entries[i].buf.len);
        }
        for (unsigned i = 0; i < a->n_entries; i++) {
            put_bytes(w, a->entries[i].buf.base, a->entries[i].buf.len);
        }
        return;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        put64(w, m->append_entries_result.term);
        put64(w, m->append_entries_result.rejected);
        put64(w, m->append_entries_result.last_log_index);
        return;
    case RAFT_IO_REQUEST_VOTE:
        put64(w, m->request_vote.term);
        put64(w, m->request_vote.candidate_id);
        put64(w, m->request_vote.last_log_index);
        put64(w, m->request_vote.last_log_term);
        put8(w, m->request_vote.disrupt_leader);
        put8(w, m->request_vote.pre_vote);
        put16(w, 0);
        put32(w, 0);
        return;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        put64(w, m->request_vote_result.term);
        put8(w, m->request_vote_result.vote_granted);
        put8(w, (uint8_t)m->request_vote_result.pre_vote);
        put16(w, 0);
        put32(w, 0);
        return;
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *s = &m->install_snapshot;
        put64(w, s->term);
        put64(w, s->last_index);
        put64(w, s->last_term);
        put64(w, s->conf_index);
        put32(w, s->conf.n);
        put32(w, 0);
        for (unsigned i = 0; i < s->conf.n; i++) {
            const struct raft_server *srv = &s->conf.servers[i];
            size_t alen = strlen(srv->address);
            put64(w, srv->id);
            put32(w, (uint32_t)srv->role);
            put32(w, (uint32_t)alen);
            put_bytes(w, srv->address, alen);
        }
        put64(w, s->data.len);
        put_bytes(w, s->data.base, s->data.len);
        return;
    }
    case RAFT_IO_TIMEOUT_NOW:
        put64(w, m->timeout_now.term);
        put64(w, m->timeout_now.last_log_index);
        put64(w, m->timeout_now.last_log_term);
        return;
    default:
        ASSERT(false); /* body_size refused it */
    }
}

int mux_frame_encode(uint32_t shard, const struct raft_message *m,
                     struct mux_buf *out)
{
    size_t body = body_size(m);
    if (body == 0) {
        return RAFT_MALFORMED;
    }
    size_t len = MUX_FRAME_HEAD_BYTES + body;
    if (!mux_buf_reserve(out, MUX_LEN_BYTES + len)) {
        return RAFT_NOMEM;
    }
    struct put w = {out->data + out->len};
    put64(&w, len);
    put32(&w, shard);
    put16(&w, m->type);
    put16(&w, 0);
    encode_body(m, &w);
    ASSERT((size_t)(w.p - (out->data + out->len)) == MUX_LEN_BYTES + len);
    out->len += MUX_LEN_BYTES + len;
    return 0;
}

/* ---- decoding ---- */

/* A reader that fails once it would pass the end. */
struct get {
    const uint8_t *p, *end;
    bool bad;
};

static bool need(struct get *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint64_t get64(struct get *r)
{
    if (!need(r, 8)) {
        return 0;
    }
    uint64_t v = bytes_get_u64le(r->p);
    r->p += 8;
    return v;
}

static uint32_t get32(struct get *r)
{
    if (!need(r, 4)) {
        return 0;
    }
    uint32_t v = bytes_get_u32le(r->p);
    r->p += 4;
    return v;
}

static uint16_t get16(struct get *r)
{
    if (!need(r, 2)) {
        return 0;
    }
    uint16_t v = bytes_get_u16le(r->p);
    r->p += 2;
    return v;
}

static uint8_t get8(struct get *r)
{
    if (!need(r, 1)) {
        return 0;
    }
    return *r->p++;
}

/* n bytes padded to 8: a pointer to them, or NULL (r->bad) */
static const uint8_t *get_bytes(struct get *r, size_t n)
{
    if (n > SIZE_MAX - 8 || !need(r, pad8(n))) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += pad8(n);
    return p;
}

static int decode_append(struct get *r, struct raft_append_entries *a)
{
    a->term = get64(r);
    a->prev_log_index = get64(r);
    a->prev_log_term = get64(r);
    a->leader_commit = get64(r);
    uint32_t n = get32(r);
    (void)get32(r);
    a->entries = NULL;
    a->n_entries = 0;
    if (r->bad || n > (size_t)(r->end - r->p) / ENTRY_HEAD_BYTES) {
        return RAFT_MALFORMED;
    }
    if (n == 0) {
        return r->p == r->end ? 0 : RAFT_MALFORMED;
    }
    struct raft_entry *entries = raft_calloc(n, sizeof *entries);
    if (entries == NULL) {
        return RAFT_NOMEM;
    }
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        entries[i].term = get64(r);
        entries[i].type = get16(r);
        (void)get16(r);
        entries[i].buf.len = get32(r);
        total += pad8(entries[i].buf.len);
    }
    if (r->bad || total != (size_t)(r->end - r->p)) {
        raft_free(entries);
        return RAFT_MALFORMED;
    }
    /* One batch for every entry's data, as raft_uv does: raft frees it
     * through any entry's batch (and io_guard.c relies on it). */
    uint8_t *batch = raft_malloc(total > 0 ? total : 8);
    if (batch == NULL) {
        raft_free(entries);
        return RAFT_NOMEM;
    }
    memcpy(batch, r->p, total);
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        entries[i].batch = batch;
        entries[i].buf.base = entries[i].buf.len > 0 ? batch + off : NULL;
        off += pad8(entries[i].buf.len);
    }
    r->p = r->end;
    a->entries = entries;
    a->n_entries = n;
    return 0;
}

static int decode_snapshot(struct get *r, struct raft_install_snapshot *s)
{
    s->term = get64(r);
    s->last_index = get64(r);
    s->last_term = get64(r);
    s->conf_index = get64(r);
    uint32_t n = get32(r);
    (void)get32(r);
    raft_configuration_init(&s->conf);
    s->data = (struct raft_buffer){0};
    if (r->bad || n > (size_t)(r->end - r->p) / SERVER_HEAD_BYTES) {
        return RAFT_MALFORMED;
    }
    int rv = 0;
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        uint64_t id = get64(r);
        uint32_t role = get32(r);
        uint32_t alen = get32(r);
        const uint8_t *addr = alen <= MUX_ADDRESS_MAX ? get_bytes(r, alen)
                                                      : NULL;
        if (addr == NULL || id == 0 || memchr(addr, '\0', alen) != NULL ||
            (role != RAFT_VOTER && role != RAFT_STANDBY &&
             role != RAFT_SPARE)) {
            rv = RAFT_MALFORMED;
            break;
        }
        char text[MUX_ADDRESS_MAX + 1];
        memcpy(text, addr, alen);
        text[alen] = '\0';
        rv = raft_configuration_add(&s->conf, id, text, (int)role);
        if (rv != 0 && rv != RAFT_NOMEM) {
            rv = RAFT_MALFORMED; /* a duplicate id or address */
        }
    }
    uint64_t dlen = rv == 0 ? get64(r) : 0;
    const uint8_t *data = NULL;
    if (rv == 0 && (r->bad || dlen > MUX_FRAME_MAX ||
                    (data = get_bytes(r, (size_t)dlen)) == NULL ||
                    r->p != r->end)) {
        rv = RAFT_MALFORMED;
    }
    if (rv == 0) {
        s->data.base = raft_malloc(dlen > 0 ? (size_t)dlen : 8);
        if (s->data.base == NULL) {
            rv = RAFT_NOMEM;
        } else {
            memcpy(s->data.base, data, (size_t)dlen);
            s->data.len = (size_t)dlen;
        }
    }
    if (rv != 0) {
        raft_configuration_close(&s->conf);
        raft_configuration_init(&s->conf);
    }
    return rv;
}

int mux_frame_decode(const uint8_t *p, size_t len, uint32_t *shard,
                     struct raft_message *m)
{
    struct get r = {p, p + len, false};
    *shard = get32(&r);
    uint16_t type = get16(&r);
    (void)get16(&r);
    memset(m, 0, sizeof *m);
    m->type = type;
    if (r.bad) {
        return RAFT_MALFORMED;
    }
    switch (type) {
    case RAFT_IO_APPEND_ENTRIES:
        return decode_append(&r, &m->append_entries);
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        m->append_entries_result.term = get64(&r);
        m->append_entries_result.rejected = get64(&r);
        m->append_entries_result.last_log_index = get64(&r);
        break;
    case RAFT_IO_REQUEST_VOTE:
        m->request_vote.term = get64(&r);
        m->request_vote.candidate_id = get64(&r);
        m->request_vote.last_log_index = get64(&r);
        m->request_vote.last_log_term = get64(&r);
        m->request_vote.disrupt_leader = get8(&r) != 0;
        m->request_vote.pre_vote = get8(&r) != 0;
        (void)get16(&r);
        (void)get32(&r);
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        m->request_vote_result.term = get64(&r);
        m->request_vote_result.vote_granted = get8(&r) != 0;
        uint8_t pre = get8(&r);
        (void)get16(&r);
        (void)get32(&r);
        if (pre > raft_tribool_false) {
            return RAFT_MALFORMED;
        }
        m->request_vote_result.pre_vote = (raft_tribool)pre;
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT:
        return decode_snapshot(&r, &m->install_snapshot);
    case RAFT_IO_TIMEOUT_NOW:
        m->timeout_now.term = get64(&r);
        m->timeout_now.last_log_index = get64(&r);
        m->timeout_now.last_log_term = get64(&r);
        break;
    default:
        return RAFT_MALFORMED;
    }
    return r.bad || r.p != r.end ? RAFT_MALFORMED : 0;
}

void mux_message_discard(struct raft_message *m)
{
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES:
        if (m->append_entries.n_entries > 0) {
            raft_free(m->append_entries.entries[0].batch);
            raft_free(m->append_entries.entries);
        }
        break;
    case RAFT_IO_INSTALL_SNAPSHOT:
        raft_free(m->install_snapshot.data.base);
        raft_configuration_close(&m->install_snapshot.conf);
        break;
    default:
        break;
    }
    memset(m, 0, sizeof *m);
}
