/* The meta group's state machine: see replication/replication.h.
 *
 * The state file (DIR/state) is a PROTO_META_STATE frame of MetaState
 * followed by a u64 LE FNV-1a checksum of the frame. It is rewritten
 * through a temporary file, fsync and rename whenever the state changes,
 * which is rare (the first map; later, membership changes). Entries that
 * change nothing are not persisted: replaying them after a restart changes
 * nothing either, because every op is applied only to the state it was
 * proposed for (INIT only when there is no map). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"
#include "replication/replication.h"

#define META_CHECKSUM_BYTES 8u

struct meta {
    char path[MC_PATH_BYTES_MAX];
    char tmp_path[MC_PATH_BYTES_MAX];
    char dir[MC_PATH_BYTES_MAX];
    pthread_mutex_t mu; /* guards map for meta_map_get; cv signals a map */
    pthread_cond_t cv;
    struct meta_map map;
    uint64_t applied_index; /* of the last entry applied or restored */
    struct raft *raft;
    struct raft_fsm fsm;
};

/* ---- MetaState <-> struct meta_map ---- */

/* The protobuf view of a map; every pointer points into the scratch. */
struct state_pb {
    Mcpb__MetaState state;
    Mcpb__Member members[MC_NODES_MAX];
    Mcpb__Member *member_ptrs[MC_NODES_MAX];
    char raft_addrs[MC_NODES_MAX][24];
    Mcpb__MetaShard shards[MC_SHARDS_MAX];
    Mcpb__MetaShard *shard_ptrs[MC_SHARDS_MAX];
};

static void state_pb_fill(struct state_pb *p, const struct meta_map *m,
                          uint64_t applied_index)
{
    mcpb__meta_state__init(&p->state);
    p->state.has_shard_count = p->state.has_replicas = true;
    p->state.shard_count = m->shard_count;
    p->state.replicas = m->replicas;
    p->state.has_applied_index = true;
    p->state.applied_index = applied_index;
    for (uint32_t i = 0; i < m->n_members; i++) {
        meta_member_to_pb(&m->members[i], &p->members[i], p->raft_addrs[i],
                          sizeof p->raft_addrs[i]);
        p->member_ptrs[i] = &p->members[i];
    }
    p->state.members = p->member_ptrs;
    p->state.n_members = m->n_members;
    for (uint32_t s = 0; s < m->shard_count; s++) {
        Mcpb__MetaShard *ps = &p->shards[s];
        mcpb__meta_shard__init(ps);
        ps->id = s;
        ps->replicas = (uint64_t *)m->replica_ids[s];
        ps->n_replicas = m->replicas;
        p->shard_ptrs[s] = ps;
    }
    p->state.shards = p->shard_ptrs;
    p->state.n_shards = m->shard_count;
}

static bool raft_addr_split(const char *s, char ip[16], uint32_t *port)
{
    struct in_addr a;
    unsigned p;
    char tail;
    if (s == NULL || sscanf(s, "%15[0-9.]:%u%c", ip, &p, &tail) != 2 ||
        inet_pton(AF_INET, ip, &a) != 1 || p == 0 || p > 65535) {
        return false;
    }
    *port = p;
    return true;
}

/* Check a MetaState that came from a log entry, a snapshot or the file,
 * and convert it; an empty state gives a map of 0 shards. Errors: INVALID_ARGUMENT with a sentence in err. */
static mc_err state_from_pb(const Mcpb__MetaState *p, struct meta_map *m,
                            char *err, size_t err_len)
{
    memset(m, 0, sizeof *m);
    if (p->shard_count == 0 && p->n_shards == 0 && p->n_members == 0) {
        return MC_OK; /* no map yet: a snapshot taken before the first */
    }
    if (p->shard_count == 0 || p->shard_count > MC_SHARDS_MAX ||
        p->n_shards != p->shard_count) {
        base_errf(err, err_len, "meta state: %u shards, %zu in the map",
                  p->shard_count, p->n_shards);
        return MC_INVALID_ARGUMENT;
    }
    if (p->n_members == 0 || p->n_members > MC_NODES_MAX) {
        base_errf(err, err_len, "meta state: %zu members", p->n_members);
        return MC_INVALID_ARGUMENT;
    }
    uint32_t want = p->replicas < p->n_members ? p->replicas
                                               : (uint32_t)p->n_members;
    if (p->replicas == 0 || p->replicas > MC_REPLICAS_MAX) {
        base_errf(err, err_len, "meta state: %u replicas", p->replicas);
        return MC_INVALID_ARGUMENT;
    }
    m->shard_count = p->shard_count;
    m->replicas = want;
    m->n_members = (uint32_t)p->n_members;
    for (uint32_t i = 0; i < m->n_members; i++) {
        const Mcpb__Member *pm = p->members[i];
        struct meta_member *mm = &m->members[i];
        if (pm->id == 0 || (i > 0 && pm->id <= m->members[i - 1].id) ||
            pm->url == NULL || pm->url[0] == '\0' ||
            strlen(pm->url) >= sizeof mm->url ||
            !raft_addr_split(pm->raft_addr, mm->raft_ip, &mm->raft_port) ||
            mm->raft_port + 1 + m->shard_count > 65536) {
            base_errf(err, err_len, "meta state: member %u is not valid", i);
            return MC_INVALID_ARGUMENT;
        }
        mm->id = pm->id;
        strcpy(mm->url, pm->url);
    }
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const Mcpb__MetaShard *ps = p->shards[s];
        if (ps->id != s || ps->n_replicas != want) {
            base_errf(err, err_len, "meta state: shard %u is not valid", s);
            return MC_INVALID_ARGUMENT;
        }
        for (uint32_t k = 0; k < want; k++) {
            uint64_t id = ps->replicas[k];
            bool dup = false;
            for (uint32_t j = 0; j < k; j++) {
                dup = dup || m->replica_ids[s][j] == id;
            }
            if (dup || meta_map_member(m, id) == NULL) {
                base_errf(err, err_len,
                          "meta state: shard %u names node %" PRIu64
                          " twice or a node that is not a member", s, id);
                return MC_INVALID_ARGUMENT;
            }
            m->replica_ids[s][k] = id;
        }
    }
    return MC_OK;
}

/* Frame the state as of applied_index into a buffer from alloc, with
 * extra bytes of room after the frame. */
static mc_err state_encode(const struct meta_map *m, uint64_t applied_index,
                           void *(*alloc)(size_t), size_t extra, void **out,
                           size_t *out_len)
{
    struct state_pb *p = mc_malloc(sizeof *p);
    if (p == NULL) {
        return MC_INTERNAL;
    }
    state_pb_fill(p, m, applied_index);
    size_t len = proto_frame_size(
        protobuf_c_message_get_packed_size(&p->state.base));
    uint8_t *buf = alloc(len + extra);
    if (buf != NULL) {
        proto_frame_pack(&p->state.base, PROTO_META_STATE, buf, len);
        *out = buf;
        *out_len = len;
    }
    mc_free(p);
    return buf != NULL ? MC_OK : MC_INTERNAL;
}

/* Decode a state frame of exactly len bytes. */
static mc_err state_decode(const void *buf, size_t len, struct meta_map *m,
                           uint64_t *applied_index, char *err, size_t err_len)
{
    const uint8_t *body;
    size_t body_len;
    mc_err rv = proto_frame_open(buf, len, PROTO_META_STATE, &body, &body_len,
                                 err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    Mcpb__MetaState *p = mcpb__meta_state__unpack(NULL, body_len, body);
    if (p == NULL) {
        base_errf(err, err_len, "meta state is not a valid message");
        return MC_INVALID_ARGUMENT;
    }
    rv = state_from_pb(p, m, err, err_len);
    *applied_index = p->applied_index;
    mcpb__meta_state__free_unpacked(p, NULL);
    return rv;
}

/* ---- the state file ---- */

static mc_err file_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return MC_INTERNAL;
        }
        p += n;
        len -= (size_t)n;
    }
    return MC_OK;
}

/* Replace the state file with the state as of applied_index, durably. */
static mc_err state_persist(struct meta *m, const struct meta_map *map,
                            uint64_t applied_index)
{
    void *buf;
    size_t len;
    if (state_encode(map, applied_index, mc_malloc, META_CHECKSUM_BYTES, &buf,
                     &len) != MC_OK) {
        return MC_INTERNAL;
    }
    bytes_put_u64le((uint8_t *)buf + len, base_fnv64(BASE_FNV64_INIT, buf, len));
    mc_err rv = MC_INTERNAL;
    int fd = open(m->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (file_write_all(fd, buf, len + META_CHECKSUM_BYTES) == MC_OK &&
            fsync(fd) == 0) {
            rv = MC_OK;
        }
        close(fd);
    }
    if (rv == MC_OK && rename(m->tmp_path, m->path) != 0) {
        rv = MC_INTERNAL;
    }
    if (rv == MC_OK) { /* the rename itself must reach the disk */
        int dfd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0) {
            rv = MC_INTERNAL;
        }
        if (dfd >= 0) {
            close(dfd);
        }
    }
    if (rv != MC_OK) {
        LOG_ERROR("meta: cannot write %s: %s", m->path, strerror(errno));
    }
    mc_free(buf);
    return rv;
}

static mc_err state_load(struct meta *m, char *err, size_t err_len)
{
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        return MC_OK; /* first start */
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        base_errf(err, err_len, "%s: %s", m->path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return MC_INTERNAL;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = len >= META_CHECKSUM_BYTES ? mc_malloc(len) : NULL;
    ssize_t got = buf != NULL ? read(fd, buf, len) : -1;
    close(fd);
    mc_err rv = MC_OK;
    if (buf == NULL || got != (ssize_t)len) {
        base_errf(err, err_len, "%s: cannot read %zu bytes", m->path, len);
        rv = len < META_CHECKSUM_BYTES ? MC_INVALID_ARGUMENT : MC_INTERNAL;
    } else if (bytes_get_u64le(buf + len - META_CHECKSUM_BYTES) !=
               base_fnv64(BASE_FNV64_INIT, buf, len - META_CHECKSUM_BYTES)) {
        base_errf(err, err_len, "%s: checksum mismatch (damaged file)",
                  m->path);
        rv = MC_INVALID_ARGUMENT;
    } else {
        rv = state_decode(buf, len - META_CHECKSUM_BYTES, &m->map,
                          &m->applied_index, err, err_len);
    }
    mc_free(buf);
    return rv;
}

/* ---- open, close, read ---- */

mc_err meta_open(const char *dir, struct meta **out, char *err,
                 size_t err_len)
{
    struct meta *m = mc_calloc(1, sizeof *m);
    if (m == NULL) {
        base_errf(err, err_len, "out of memory");
        return MC_INTERNAL;
    }
    if ((size_t)snprintf(m->dir, sizeof m->dir, "%s", dir) >= sizeof m->dir ||
        (size_t)snprintf(m->path, sizeof m->path, "%s/state", dir) >=
            sizeof m->path ||
        (size_t)snprintf(m->tmp_path, sizeof m->tmp_path, "%s/state.tmp",
                         dir) >= sizeof m->tmp_path) {
        base_errf(err, err_len, "data folder path is too long");
        mc_free(m);
        return MC_INVALID_ARGUMENT;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        base_errf(err, err_len, "mkdir %s: %s", dir, strerror(errno));
        mc_free(m);
        return MC_INTERNAL;
    }
    mc_err rv = state_load(m, err, err_len);
    if (rv != MC_OK) {
        mc_free(m);
        return rv;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    *out = m;
    return MC_OK;
}

void meta_close(struct meta *m)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    mc_free(m);
}

bool meta_map_get(struct meta *m, struct meta_map *out)
{
    pthread_mutex_lock(&m->mu);
    bool has = m->map.shard_count > 0;
    if (has && out != NULL) {
        *out = m->map;
    }
    pthread_mutex_unlock(&m->mu);
    return has;
}

bool meta_map_wait(struct meta *m, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m->mu);
    while (m->map.shard_count == 0 &&
           pthread_cond_timedwait(&m->cv, &m->mu, &until) == 0) {
    }
    bool has = m->map.shard_count > 0;
    pthread_mutex_unlock(&m->mu);
    return has;
}

/* Make map the state as of index: persist it first, then publish it. */
static mc_err state_set(struct meta *m, const struct meta_map *map,
                        uint64_t index)
{
    mc_err rv = state_persist(m, map, index);
    if (rv != MC_OK) {
        return rv;
    }
    pthread_mutex_lock(&m->mu);
    m->map = *map;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return MC_OK;
}

/* ---- the raft_fsm ---- */

/* Apply one entry. A malformed or invalid command changes nothing on any
 * replica: every replica decides alike from the same bytes. Only running
 * out of memory or failing to write the state file stops apply (raft then
 * retries the entry). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct meta *m = fsm->data;
    uint64_t index = raft_last_applied(m->raft) + 1;
    *result = NULL;
    if (index <= m->applied_index) {
        return 0; /* in the state file already */
    }
    const uint8_t *body;
    size_t body_len;
    char why[200];
    Mcpb__MetaCommand *cmd = NULL;
    if (proto_frame_open(buf->base, buf->len, PROTO_META_COMMAND, &body,
                         &body_len, why, sizeof why) == MC_OK) {
        cmd = mcpb__meta_command__unpack(NULL, body_len, body);
        if (cmd == NULL) {
            snprintf(why, sizeof why, "not a valid MetaCommand");
        }
    }
    int rv = 0;
    if (cmd != NULL && cmd->op == META_OP_INIT && cmd->state != NULL &&
        m->map.shard_count == 0) {
        struct meta_map *map = mc_malloc(sizeof *map);
        if (map == NULL) {
            rv = RAFT_NOMEM;
        } else if (state_from_pb(cmd->state, map, why, sizeof why) != MC_OK ||
                   map->shard_count == 0) {
            LOG_WARN("meta: entry %" PRIu64 " ignored: %s", index,
                     map->shard_count == 0 ? "an empty map" : why);
        } else if (state_set(m, map, index) != MC_OK) {
            rv = RAFT_IOERR;
        } else {
            LOG_INFO("meta: cluster map of %u shards on %u nodes at entry "
                     "%" PRIu64, map->shard_count, map->n_members, index);
        }
        mc_free(map);
    } else if (cmd == NULL) {
        LOG_WARN("meta: entry %" PRIu64 " ignored: %s", index, why);
    }
    if (cmd != NULL) {
        mcpb__meta_command__free_unpacked(cmd, NULL);
    }
    if (rv == 0) {
        m->applied_index = index;
    }
    return rv;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct meta *m = fsm->data;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (b == NULL) {
        return RAFT_NOMEM;
    }
    void *data;
    size_t len;
    if (state_encode(&m->map, m->applied_index, raft_malloc, 0, &data, &len) !=
        MC_OK) {
        raft_free(b);
        return RAFT_NOMEM;
    }
    b->base = data;
    b->len = len;
    *bufs = b; /* with snapshot_finalize NULL, raft frees b and b->base */
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct meta *m = fsm->data;
    struct meta_map *map = mc_malloc(sizeof *map);
    if (map == NULL) {
        return RAFT_NOMEM;
    }
    uint64_t index;
    char why[200];
    int rv = 0;
    if (state_decode(buf->base, buf->len, map, &index, why, sizeof why) !=
        MC_OK) {
        LOG_ERROR("meta: snapshot rejected: %s", why);
        rv = RAFT_CORRUPT;
    } else if (index > m->applied_index) {
        if (state_set(m, map, index) != MC_OK) {
            rv = RAFT_IOERR;
        } else {
            m->applied_index = index;
        }
    }
    mc_free(map);
    if (rv == 0) {
        raft_free(buf->base); /* restore owns the buffer on success */
    }
    return rv;
}

struct raft_fsm *meta_fsm(struct meta *m, struct raft *raft)
{
    m->raft = raft;
    m->fsm = (struct raft_fsm){.version = 2,
                               .data = m,
                               .apply = fsm_apply,
                               .snapshot = fsm_snapshot,
                               .restore = fsm_restore};
    return &m->fsm;
}

mc_err meta_init_frame(const struct meta_map *map, int64_t stamp_ms,
                       void *(*alloc)(size_t), void **frame, size_t *len)
{
    struct state_pb *p = mc_malloc(sizeof *p);
    if (p == NULL) {
        return MC_INTERNAL;
    }
    state_pb_fill(p, map, 0);
    p->state.has_applied_index = false;
    Mcpb__MetaCommand cmd = MCPB__META_COMMAND__INIT;
    cmd.op = META_OP_INIT;
    cmd.stamp_ms = stamp_ms;
    cmd.state = &p->state;
    mc_err rv = proto_frame_encode(&cmd.base, PROTO_META_COMMAND, alloc, frame,
                                   len);
    mc_free(p);
    return rv;
}
