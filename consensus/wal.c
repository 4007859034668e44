/* The raft log of a lane: see wal.h for the files, the records and the
 * rules of recovery. */
#define _GNU_SOURCE /* O_CLOEXEC, fdatasync */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/consensus.h"
#include "consensus/mux_wire.h" /* struct mux_buf */
#include "consensus/wal.h"

enum {
    REC_ENTRIES = 1,
    REC_TRUNCATE = 2,
    REC_VOTE = 3,
    REC_COMPACT = 4,
    REC_RESET = 5,
};

#define REC_HEAD_BYTES 16u /* crc, len, type, 0, 0, shard */
#define REC_LEN_MAX (1ull << 34)
#define ENTRY_HEAD_BYTES 16u
#define FILE_MODE 0644

/* A snapshot file: [u64 SNAP_MAGIC][u64 index][u64 term][u64 conf_index]
 * [u32 conf_len][u32 crc32c of the header's first 36 bytes, the
 * configuration and the data][u64 data_len], the configuration (raft's
 * encoding) padded to 8, the data. */
#define SNAP_MAGIC 0x01314150414e534dull /* "MSNAPA1" and version 1 */
#define SNAP_HEAD_BYTES 48u
/* The placeholder a restart gets instead of a snapshot the state machine
 * holds already: [u64 PLACEHOLDER_MAGIC][u64 index]. */
#define PLACEHOLDER_MAGIC 0x0148444c4f504e53ull
#define PLACEHOLDER_BYTES 16u

struct wal_seg {
    uint64_t seq;
    uint64_t size; /* bytes up to the end of its last record */
};

struct wal_pending {
    struct raft_io_append *req;
    raft_io_append_cb cb;
    uint32_t shard;
};

struct wal_closing {
    void (*cb)(void *arg);
    void *arg;
};

struct cons_wal {
    uv_loop_t *loop;
    char dir[MC_PATH_BYTES_MAX];
    uint32_t lane;
    int fd; /* the newest segment */
    struct wal_seg *segs; /* oldest first */
    size_t n_segs, cap_segs;
    struct mux_buf buf; /* records to write at the next sync */
    struct wal_pending *pend;
    size_t n_pend, cap_pend;
    struct wal_group groups[MC_SHARDS_MAX];
    uint64_t snap_index[MC_SHARDS_MAX]; /* latest snapshot file, 0: none */
    unsigned works[MC_SHARDS_MAX];      /* its thread pool work in flight */
    struct wal_closing closing[MC_SHARDS_MAX];
    uint64_t remove_seq; /* a segment to remove at the next sync; 0: none */
    uint64_t segment_bytes;
    /* The next segment, made (allocated, synced) once the newest is half
     * full, so that a disk without room for it shows while writes can
     * still be refused (space_low) rather than when a sync needs it. */
    int next_fd;
    bool space_low;
    int64_t next_tried_ms;
    struct cons_wal_stats stats;
};

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* A replica that cannot write its log must not go on: raft 0.15 cannot
 * survive an I/O error in-process (README), and the others carry on. */
__attribute__((noreturn)) static void fatal(const struct cons_wal *w,
                                            const char *what, int err)
{
    LOG_ERROR("raft log %s: %s: %s; stopping this node", w->dir, what,
              strerror(err));
    _exit(EXIT_FAILURE);
}

static void seg_path(const struct cons_wal *w, uint64_t seq, char *out,
                     size_t len)
{
    snprintf(out, len, "%s/wal-%016" PRIx64, w->dir, seq);
}

static void snap_path(const struct cons_wal *w, uint32_t shard,
                      uint64_t index, const char *suffix, char *out,
                      size_t len)
{
    snprintf(out, len, "%s/snap-%04x-%016" PRIx64 "%s", w->dir, shard, index,
             suffix);
}

static int dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rv = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rv;
}

static int write_all(int fd, const void *data, size_t len, uint64_t off)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? errno : EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static struct wal_seg *seg_of(struct cons_wal *w, uint64_t seq)
{
    for (size_t i = 0; i < w->n_segs; i++) {
        if (w->segs[i].seq == seq) {
            return &w->segs[i];
        }
    }
    return NULL;
}

static bool segs_push(struct cons_wal *w, uint64_t seq, uint64_t size)
{
    if (w->n_segs == w->cap_segs) {
        size_t cap = w->cap_segs > 0 ? w->cap_segs * 2 : 8;
        struct wal_seg *s = mc_realloc(w->segs, cap * sizeof *s);
        if (s == NULL) {
            return false;
        }
        w->segs = s;
        w->cap_segs = cap;
    }
    w->segs[w->n_segs++] = (struct wal_seg){seq, size};
    return true;
}

/* ---- the live entries of a group ---- */

static bool group_reserve(struct wal_group *g, size_t n)
{
    if (g->cap >= n) {
        return true;
    }
    size_t cap = g->cap > 0 ? g->cap : 64;
    while (cap < n) {
        cap *= 2;
    }
    struct wal_loc *locs = mc_realloc(g->locs, cap * sizeof *locs);
    if (locs == NULL) {
        return false;
    }
    g->locs = locs;
    g->cap = cap;
    return true;
}

static uint64_t group_count(const struct wal_group *g)
{
    return g->last + 1 - g->first;
}

/* Recovery: put the entry at index. Records of an index come in the order
 * they were written, but not the indexes: a copy of old entries comes
 * after newer ones, so the live range grows either way and may hold
 * missing entries (seq 0) until the replay ends (wal_check). */
static bool group_put(struct wal_group *g, uint64_t index,
                      const struct wal_loc *loc)
{
    if (index < g->floor) {
        return true; /* compacted since */
    }
    uint64_t n = group_count(g);
    if (n == 0) {
        g->first = index;
        g->last = index - 1;
    }
    uint64_t lo = index < g->first ? index : g->first;
    uint64_t hi = index > g->last ? index : g->last;
    if (hi - lo >= (1ull << 26)) {
        return false; /* no group keeps that many entries: damage */
    }
    if (!group_reserve(g, (size_t)(hi - lo + 1))) {
        return false;
    }
    if (index < g->first) {
        size_t add = (size_t)(g->first - index);
        memmove(g->locs + add, g->locs, (size_t)n * sizeof *g->locs);
        memset(g->locs, 0, add * sizeof *g->locs);
        g->first = index;
    } else if (index > g->last) {
        memset(g->locs + (g->last + 1 - g->first), 0,
               (size_t)(index - g->last) * sizeof *g->locs);
        g->last = index;
    }
    g->locs[index - g->first] = *loc;
    return true;
}

/* Entries from index on are gone. */
static void group_truncate(struct wal_group *g, uint64_t index)
{
    if (index <= g->first) {
        g->first = index;
        g->last = index - 1;
    } else if (index <= g->last) {
        g->last = index - 1;
    }
}

/* Entries before index are not needed. */
static void group_compact(struct wal_group *g, uint64_t index)
{
    if (index > g->floor) {
        g->floor = index;
    }
    if (index <= g->first) {
        return;
    }
    if (index > g->last) {
        g->first = index;
        g->last = index - 1;
        return;
    }
    uint64_t drop = index - g->first;
    memmove(g->locs, g->locs + drop,
            (size_t)(g->last - index + 1) * sizeof *g->locs);
    g->first = index;
}

/* A snapshot at index was installed: no entries; the next is index + 1. */
static void group_reset(struct wal_group *g, uint64_t index)
{
    g->floor = index + 1;
    g->first = index + 1;
    g->last = index;
}

/* ---- records ---- */

/* Reserve a record of payload bytes in the buffer: returns its payload,
 * and in *at where the record starts in the buffer; NULL when out of
 * memory. */
static uint8_t *rec_open(struct cons_wal *w, uint8_t type, uint32_t shard,
                         size_t payload, size_t *at)
{
    size_t len = REC_HEAD_BYTES + pad8(payload);
    if (!mux_buf_reserve(&w->buf, len)) {
        return NULL;
    }
    uint8_t *p = w->buf.data + w->buf.len;
    memset(p, 0, len);
    bytes_put_u32le(p + 4, (uint32_t)(len - 8));
    p[8] = type;
    bytes_put_u32le(p + 12, shard);
    *at = w->buf.len;
    w->buf.len += len;
    return p + REC_HEAD_BYTES;
}

static void rec_seal(struct cons_wal *w, size_t at)
{
    uint8_t *p = w->buf.data + at;
    uint32_t len = bytes_get_u32le(p + 4);
    bytes_put_u32le(p, base_crc32c(0, p + 8, len));
    w->stats.records++;
}

/* Where byte `at` of the buffer lands in the newest segment. */
static uint64_t file_off(const struct cons_wal *w, size_t at)
{
    return w->segs[w->n_segs - 1].size + at;
}

static int rec_u64(struct cons_wal *w, uint8_t type, uint32_t shard,
                   uint64_t a)
{
    size_t at;
    uint8_t *p = rec_open(w, type, shard, 8, &at);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    bytes_put_u64le(p, a);
    rec_seal(w, at);
    return 0;
}

static int rec_vote(struct cons_wal *w, uint32_t shard)
{
    struct wal_group *g = &w->groups[shard];
    size_t at;
    uint8_t *p = rec_open(w, REC_VOTE, shard, 16, &at);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    bytes_put_u64le(p, g->term);
    bytes_put_u64le(p + 8, g->vote);
    rec_seal(w, at);
    g->vote_seq = w->segs[w->n_segs - 1].seq;
    return 0;
}

/* An ENTRIES record of entries[0..n) at first..; each entry's location
 * goes to locs. */
static int rec_entries(struct cons_wal *w, uint32_t shard, uint64_t first,
                       const struct raft_entry *entries, unsigned n,
                       struct wal_loc *locs)
{
    size_t payload = 16 + (size_t)n * ENTRY_HEAD_BYTES;
    for (unsigned i = 0; i < n; i++) {
        payload += pad8(entries[i].buf.len);
    }
    size_t at;
    uint8_t *p = rec_open(w, REC_ENTRIES, shard, payload, &at);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    bytes_put_u64le(p, first);
    bytes_put_u32le(p + 8, n);
    uint8_t *head = p + 16;
    uint8_t *data = head + (size_t)n * ENTRY_HEAD_BYTES;
    uint64_t seq = w->segs[w->n_segs - 1].seq;
    for (unsigned i = 0; i < n; i++) {
        const struct raft_entry *e = &entries[i];
        bytes_put_u64le(head, e->term);
        bytes_put_u16le(head + 8, e->type);
        bytes_put_u32le(head + 12, (uint32_t)e->buf.len);
        head += ENTRY_HEAD_BYTES;
        if (e->buf.len > 0) {
            memcpy(data, e->buf.base, e->buf.len);
        }
        locs[i] = (struct wal_loc){
            .term = e->term,
            .seq = seq,
            .off = file_off(w, (size_t)(data - w->buf.data)),
            .len = (uint32_t)e->buf.len,
            .type = e->type,
        };
        data += pad8(e->buf.len);
    }
    rec_seal(w, at);
    return 0;
}

/* ---- recovery ---- */

/* Replay one record of segment seq (the payload at p, of len bytes,
 * starting at file offset off). False when it makes no sense. */
static bool replay(struct cons_wal *w, uint64_t seq, uint8_t type,
                   uint32_t shard, const uint8_t *p, size_t len,
                   uint64_t off)
{
    if (shard >= MC_SHARDS_MAX) {
        return false;
    }
    struct wal_group *g = &w->groups[shard];
    g->used = true;
    switch (type) {
    case REC_ENTRIES: {
        if (len < 16) {
            return false;
        }
        uint64_t first = bytes_get_u64le(p);
        uint32_t n = bytes_get_u32le(p + 8);
        if (first == 0 || n > (len - 16) / ENTRY_HEAD_BYTES) {
            return false;
        }
        const uint8_t *head = p + 16;
        size_t data_at = 16 + (size_t)n * ENTRY_HEAD_BYTES;
        for (uint32_t i = 0; i < n; i++, head += ENTRY_HEAD_BYTES) {
            struct wal_loc loc = {
                .term = bytes_get_u64le(head),
                .type = bytes_get_u16le(head + 8),
                .len = bytes_get_u32le(head + 12),
                .seq = seq,
                .off = off + data_at,
            };
            if (pad8(loc.len) > len - data_at) {
                return false;
            }
            data_at += pad8(loc.len);
            if (!group_put(g, first + i, &loc)) {
                return false;
            }
        }
        return true;
    }
    case REC_VOTE:
        if (len < 16) {
            return false;
        }
        g->term = bytes_get_u64le(p);
        g->vote = bytes_get_u64le(p + 8);
        g->vote_seq = seq;
        return true;
    case REC_TRUNCATE:
    case REC_COMPACT:
    case REC_RESET: {
        if (len < 8) {
            return false;
        }
        uint64_t index = bytes_get_u64le(p);
        if (index == 0 && type != REC_RESET) {
            return false;
        }
        if (type == REC_TRUNCATE) {
            group_truncate(g, index);
        } else if (type == REC_COMPACT) {
            group_compact(g, index);
        } else {
            group_reset(g, index);
        }
        return true;
    }
    default:
        return false;
    }
}

/* Replay segment seq from its map. *end is where its valid records end.
 * A bad record: in the newest segment the end of the log, elsewhere an
 * error. */
static mc_err replay_segment(struct cons_wal *w, uint64_t seq,
                             const uint8_t *map, size_t size, bool torn_ok,
                             uint64_t *end, char *err, size_t err_len)
{
    char path[MC_PATH_BYTES_MAX + 32];
    seg_path(w, seq, path, sizeof path);
    if (size < WAL_SEG_HEAD_BYTES || bytes_get_u64le(map) != WAL_MAGIC ||
        bytes_get_u64le(map + 8) != seq) {
        if (torn_ok && size < WAL_SEG_HEAD_BYTES) {
            *end = 0; /* created, its header never written: rewrite it */
            return MC_OK;
        }
        base_errf(err, err_len, "%s is not a memcoord raft log segment",
                  path);
        return MC_INTERNAL;
    }
    uint64_t off = WAL_SEG_HEAD_BYTES;
    while (off + REC_HEAD_BYTES <= size) {
        const uint8_t *r = map + off;
        uint32_t len = bytes_get_u32le(r + 4);
        if (len == 0 && bytes_get_u32le(r) == 0) {
            break; /* zeros: the preallocated rest of the segment */
        }
        bool fits = len >= REC_HEAD_BYTES - 8 && len % 8 == 0 &&
                    len <= size - off - 8;
        if (!fits || base_crc32c(0, r + 8, len) != bytes_get_u32le(r)) {
            if (torn_ok) {
                break; /* a torn write, never acknowledged */
            }
            base_errf(err, err_len, "%s: damaged record at offset %" PRIu64,
                      path, off);
            return MC_INTERNAL;
        }
        if (!replay(w, seq, r[8], bytes_get_u32le(r + 12),
                    r + REC_HEAD_BYTES, len + 8 - REC_HEAD_BYTES,
                    off + REC_HEAD_BYTES)) {
            base_errf(err, err_len, "%s: record at offset %" PRIu64
                      " does not fit the log before it", path, off);
            return MC_INTERNAL;
        }
        off += 8 + len;
    }
    *end = off;
    return MC_OK;
}

/* After the replay: every group's live entries are all there. */
static mc_err check_groups(const struct cons_wal *w, char *err,
                           size_t err_len)
{
    for (uint32_t s = 0; s < MC_SHARDS_MAX; s++) {
        const struct wal_group *g = &w->groups[s];
        for (uint64_t i = g->first; i <= g->last; i++) {
            if (g->locs[i - g->first].seq == 0) {
                base_errf(err, err_len, "raft log %s: shard %u misses entry "
                          "%" PRIu64 " of %" PRIu64 "..%" PRIu64, w->dir, s,
                          i, g->first, g->last);
                return MC_INTERNAL;
            }
        }
    }
    return MC_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Snapshot files that a crash left: those being written, and those a
 * newer one of their group replaced. */
static void remove_stale(const struct cons_wal *w)
{
    DIR *d = opendir(w->dir);
    if (d == NULL) {
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        uint64_t index;
        unsigned shard;
        size_t len = strlen(e->d_name);
        bool tmp = len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0;
        bool old = !tmp &&
                   sscanf(e->d_name, "snap-%4x-%16" SCNx64, &shard, &index) ==
                       2 &&
                   len == 26 && shard < MC_SHARDS_MAX &&
                   index < w->snap_index[shard];
        if (tmp || old) {
            char path[MC_PATH_BYTES_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", w->dir, e->d_name);
            (void)unlink(path);
        }
    }
    closedir(d);
}

/* The segments' seqs, sorted, and each group's latest snapshot file. */
static mc_err list_dir(struct cons_wal *w, uint64_t **seqs, size_t *n,
                       char *err, size_t err_len)
{
    DIR *d = opendir(w->dir);
    if (d == NULL) {
        base_errf(err, err_len, "open %s: %s", w->dir, strerror(errno));
        return MC_INTERNAL;
    }
    size_t cap = 0;
    *seqs = NULL;
    *n = 0;
    mc_err rv = MC_OK;
    for (struct dirent *e; rv == MC_OK && (e = readdir(d)) != NULL;) {
        uint64_t seq, index;
        unsigned shard;
        char extra;
        if (sscanf(e->d_name, "wal-%16" SCNx64 "%c", &seq, &extra) == 1 &&
            strlen(e->d_name) == 20) {
            if (*n == cap) {
                cap = cap > 0 ? cap * 2 : 16;
                uint64_t *s = mc_realloc(*seqs, cap * sizeof *s);
                if (s == NULL) {
                    rv = MC_INTERNAL;
                    break;
                }
                *seqs = s;
            }
            (*seqs)[(*n)++] = seq;
        } else if (sscanf(e->d_name, "snap-%4x-%16" SCNx64 "%c", &shard,
                          &index, &extra) == 2 &&
                   strlen(e->d_name) == 26 && shard < MC_SHARDS_MAX) {
            if (index > w->snap_index[shard]) {
                w->snap_index[shard] = index;
            }
        }
    }
    closedir(d);
    if (rv != MC_OK) {
        base_errf(err, err_len, "out of memory");
        return rv;
    }
    if (*n > 0) {
        qsort(*seqs, *n, sizeof **seqs, cmp_u64);
    }
    remove_stale(w);
    return MC_OK;
}

/* Make segment seq: header, allocated, synced, named in the folder. On
 * failure nothing of it is left. Returns 0 or an errno. */
static int seg_make(struct cons_wal *w, uint64_t seq, int *out)
{
    char path[MC_PATH_BYTES_MAX + 32];
    seg_path(w, seq, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
    if (fd < 0) {
        return errno;
    }
    uint8_t head[WAL_SEG_HEAD_BYTES] = {0};
    bytes_put_u64le(head, WAL_MAGIC);
    bytes_put_u64le(head + 8, seq);
    bytes_put_u32le(head + 16, w->lane);
    int rv = posix_fallocate(fd, 0, (off_t)w->segment_bytes);
    if (rv == 0) {
        rv = write_all(fd, head, sizeof head, 0);
    }
    if (rv == 0 && fsync(fd) != 0) {
        rv = errno;
    }
    if (rv == 0) {
        rv = dir_sync(w->dir);
    }
    if (rv != 0) {
        close(fd);
        (void)unlink(path);
        return rv;
    }
    *out = fd;
    w->stats.segments++;
    return 0;
}

/* Write from now on into segment seq (made ahead, or now). */
static int seg_switch(struct cons_wal *w, uint64_t seq)
{
    int fd = w->next_fd;
    w->next_fd = -1;
    if (fd < 0) {
        int rv = seg_make(w, seq, &fd);
        if (rv != 0) {
            return rv;
        }
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    w->fd = fd;
    return 0;
}

/* Bytes [end, size) of a segment's map after its last good record: a torn
 * write left some, or nothing but the allocated zeros. Zero what is not,
 * so that it never reads as a record, once another segment follows. */
static int wipe_tail(int fd, const uint8_t *map, uint64_t end, uint64_t size)
{
    uint64_t last = end;
    for (uint64_t i = end; i < size; i++) {
        if (map[i] != 0) {
            last = i + 1;
        }
    }
    if (last == end) {
        return 0;
    }
    static const uint8_t zeros[4096];
    for (uint64_t off = end; off < last; off += sizeof zeros) {
        size_t n = last - off < sizeof zeros ? (size_t)(last - off)
                                             : sizeof zeros;
        int rv = write_all(fd, zeros, n, off);
        if (rv != 0) {
            return rv;
        }
    }
    return fdatasync(fd) == 0 ? 0 : errno;
}

/* True when segment file path holds a record (or cannot be read: then
 * replay says what is wrong). */
static bool seg_has_records(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return true;
    }
    uint8_t head[8];
    ssize_t got = pread(fd, head, sizeof head, WAL_SEG_HEAD_BYTES);
    close(fd);
    return got == (ssize_t)sizeof head &&
           (bytes_get_u32le(head) != 0 || bytes_get_u32le(head + 4) != 0);
}

mc_err cons_wal_open(uv_loop_t *loop, const char *dir, uint32_t lane,
                     struct cons_wal **out, char *err, size_t err_len)
{
    struct cons_wal *w = mc_calloc(1, sizeof *w);
    if (w == NULL) {
        base_errf(err, err_len, "out of memory");
        return MC_INTERNAL;
    }
    w->loop = loop;
    w->lane = lane;
    w->fd = -1;
    w->next_fd = -1;
    w->segment_bytes = WAL_SEGMENT_BYTES;
    for (unsigned i = 0; i < MC_SHARDS_MAX; i++) {
        w->groups[i].first = 1; /* no entries: last = first - 1 */
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        base_errf(err, err_len, "mkdir %s: %s", dir, strerror(errno));
        mc_free(w);
        return MC_INTERNAL;
    }
    uint64_t *seqs = NULL;
    size_t n = 0;
    mc_err rv = list_dir(w, &seqs, &n, err, err_len);
    /* A torn write can end only the last segment that holds records: the
     * newest, or the one before it when the newest was made ahead and is
     * still empty. */
    size_t torn_ok = n > 0 ? n - 1 : 0;
    while (rv == MC_OK && torn_ok > 0) {
        char path[MC_PATH_BYTES_MAX + 32];
        seg_path(w, seqs[torn_ok], path, sizeof path);
        if (seg_has_records(path)) {
            break;
        }
        torn_ok--;
    }
    for (size_t i = 0; rv == MC_OK && i < n; i++) {
        char path[MC_PATH_BYTES_MAX + 32];
        seg_path(w, seqs[i], path, sizeof path);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            base_errf(err, err_len, "open %s: %s", path, strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            rv = MC_INTERNAL;
            break;
        }
        bool newest = i == n - 1;
        uint64_t end = 0;
        if (st.st_size > 0) {
            void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED,
                             fd, 0);
            if (map == MAP_FAILED) {
                base_errf(err, err_len, "mmap %s: %s", path, strerror(errno));
                close(fd);
                rv = MC_INTERNAL;
                break;
            }
            rv = replay_segment(w, seqs[i], map, (size_t)st.st_size,
                                i == torn_ok, &end, err, err_len);
            int e = rv == MC_OK && i == torn_ok && end >= WAL_SEG_HEAD_BYTES
                        ? wipe_tail(fd, map, end, (uint64_t)st.st_size)
                        : 0;
            if (e != 0) {
                base_errf(err, err_len, "wipe the torn end of %s: %s", path,
                          strerror(e));
                rv = MC_INTERNAL;
            }
            munmap(map, (size_t)st.st_size);
        }
        if (rv == MC_OK && !segs_push(w, seqs[i], end)) {
            base_errf(err, err_len, "out of memory");
            rv = MC_INTERNAL;
        }
        if (rv == MC_OK && newest && end >= WAL_SEG_HEAD_BYTES) {
            w->fd = fd; /* appends go on after its last good record */
        } else {
            close(fd);
        }
    }
    if (rv == MC_OK && w->fd < 0) {
        /* A new log, or a newest segment whose header never made it. */
        uint64_t seq = n > 0 ? seqs[n - 1] : 1;
        if (n > 0) {
            w->n_segs--;
        }
        int e = seg_switch(w, seq);
        if (e != 0) {
            base_errf(err, err_len, "create %s segment %" PRIu64 ": %s",
                      w->dir, seq, strerror(e));
            rv = MC_INTERNAL;
        } else if (!segs_push(w, seq, WAL_SEG_HEAD_BYTES)) {
            base_errf(err, err_len, "out of memory");
            rv = MC_INTERNAL;
        }
    }
    mc_free(seqs);
    if (rv == MC_OK) {
        rv = check_groups(w, err, err_len);
    }
    if (rv != MC_OK) {
        cons_wal_close(w);
        return rv;
    }
    *out = w;
    return MC_OK;
}

void cons_wal_close(struct cons_wal *w)
{
    if (w == NULL) {
        return;
    }
    if (w->fd >= 0) {
        cons_wal_sync(w);
        close(w->fd);
    }
    if (w->next_fd >= 0) {
        close(w->next_fd); /* made ahead: an empty newest segment */
    }
    for (unsigned s = 0; s < MC_SHARDS_MAX; s++) {
        ASSERT(w->works[s] == 0);
        mc_free(w->groups[s].locs);
    }
    mux_buf_free(&w->buf);
    mc_free(w->pend);
    mc_free(w->segs);
    mc_free(w);
}

/* ---- sync, and keeping few segments ---- */

/* Copy the live entries of every group that lie in segment seq into the
 * buffer, and the votes recorded there: then nothing is needed from it. */
static int copy_forward(struct cons_wal *w, uint64_t seq)
{
    char path[MC_PATH_BYTES_MAX + 32];
    seg_path(w, seq, path, sizeof path);
    const struct wal_seg *seg = seg_of(w, seq);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    void *map = mmap(NULL, (size_t)seg->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        return errno;
    }
    int rv = 0;
    for (uint32_t s = 0; rv == 0 && s < MC_SHARDS_MAX; s++) {
        struct wal_group *g = &w->groups[s];
        if (g->used && g->vote_seq == seq) {
            rv = rec_vote(w, s) == 0 ? 0 : ENOMEM;
        }
        for (uint64_t i = g->first; rv == 0 && i <= g->last && i >= g->first;
             i++) {
            struct wal_loc *loc = &g->locs[i - g->first];
            if (loc->seq != seq) {
                continue;
            }
            struct raft_entry e = {
                .term = loc->term,
                .type = loc->type,
                .buf = {(uint8_t *)map + loc->off, loc->len},
            };
            struct wal_loc moved;
            if (rec_entries(w, s, i, &e, 1, &moved) != 0) {
                rv = ENOMEM;
            } else {
                *loc = moved;
                w->stats.copied++;
            }
        }
    }
    munmap(map, (size_t)seg->size);
    return rv;
}

/* Once the newest segment is half full, make the next one ahead, at most
 * once a second while the disk has no room for it. */
static void next_prepare(struct cons_wal *w)
{
    const struct wal_seg *cur = &w->segs[w->n_segs - 1];
    if (w->next_fd >= 0 || cur->size < w->segment_bytes / 2 ||
        base_mono_ms() - w->next_tried_ms < 1000) {
        return;
    }
    w->next_tried_ms = base_mono_ms();
    int e = seg_make(w, cur->seq + 1, &w->next_fd);
    if (e != 0 && !w->space_low) {
        LOG_ERROR("raft log %s: no room for the next segment (%s): this "
                  "node's shard leaders refuse writes until there is",
                  w->dir, strerror(e));
    } else if (e == 0 && w->space_low) {
        LOG_INFO("raft log %s: room for the next segment again", w->dir);
    }
    w->space_low = e != 0;
}

/* Once the newest segment is full, start another; and let the oldest go
 * once what is live in it was copied to the newest and synced. */
static void segments_turn(struct cons_wal *w)
{
    if (w->remove_seq != 0) {
        char path[MC_PATH_BYTES_MAX + 32];
        seg_path(w, w->remove_seq, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT) {
            LOG_WARN("raft log: cannot remove %s: %s", path, strerror(errno));
        }
        ASSERT(w->n_segs > 1 && w->segs[0].seq == w->remove_seq);
        memmove(w->segs, w->segs + 1, (w->n_segs - 1) * sizeof *w->segs);
        w->n_segs--;
        w->remove_seq = 0;
        w->stats.removed++;
    }
    next_prepare(w);
    struct wal_seg *cur = &w->segs[w->n_segs - 1];
    uint64_t seq = cur->seq + 1;
    if (cur->size < w->segment_bytes) {
        return;
    }
    int e = seg_switch(w, seq);
    if (e != 0) {
        fatal(w, "cannot start a segment", e);
    }
    w->space_low = false;
    if (!segs_push(w, seq, WAL_SEG_HEAD_BYTES)) {
        fatal(w, "cannot start a segment", ENOMEM);
    }
    /* Keep two segments at most: the oldest goes at the next sync. */
    if (w->n_segs > 2) {
        uint64_t oldest = w->segs[0].seq;
        e = copy_forward(w, oldest);
        if (e != 0) {
            fatal(w, "cannot copy entries forward", e);
        }
        w->remove_seq = oldest;
    }
}

bool cons_wal_pending(const struct cons_wal *w)
{
    return w->buf.len > 0 || w->n_pend > 0 || w->remove_seq != 0;
}

/* Write and fdatasync the buffer; callbacks wait for cons_wal_sync. */
static void sync_now(struct cons_wal *w)
{
    if (w->buf.len > 0) {
        struct wal_seg *cur = &w->segs[w->n_segs - 1];
        int e = write_all(w->fd, w->buf.data, w->buf.len, cur->size);
        if (e == 0 && fdatasync(w->fd) != 0) {
            e = errno;
        }
        if (e != 0) {
            fatal(w, "write", e);
        }
        cur->size += w->buf.len;
        w->stats.bytes += w->buf.len;
        w->stats.syncs++;
        w->buf.len = 0;
        if (w->buf.cap > (8u << 20)) {
            mux_buf_free(&w->buf); /* after a catch-up: give it back */
        }
    }
}

void cons_wal_sync(struct cons_wal *w)
{
    sync_now(w);
    segments_turn(w);
    /* Callbacks may append: take the list first. */
    while (w->n_pend > 0) {
        struct wal_pending *p = w->pend;
        size_t n = w->n_pend;
        w->pend = NULL;
        w->n_pend = w->cap_pend = 0;
        for (size_t i = 0; i < n; i++) {
            p[i].cb(p[i].req, 0);
        }
        mc_free(p);
    }
}

/* ---- the calls of a group ---- */

const struct wal_group *wal_group_get(const struct cons_wal *w,
                                      uint32_t shard)
{
    return shard < MC_SHARDS_MAX ? &w->groups[shard] : NULL;
}

int wal_set_term(struct cons_wal *w, uint32_t shard, raft_term term)
{
    struct wal_group *g = &w->groups[shard];
    g->used = true;
    g->term = term;
    g->vote = 0;
    int rv = rec_vote(w, shard);
    if (rv == 0) {
        sync_now(w);
    }
    return rv;
}

int wal_set_vote(struct cons_wal *w, uint32_t shard, raft_id vote)
{
    struct wal_group *g = &w->groups[shard];
    g->used = true;
    g->vote = vote;
    int rv = rec_vote(w, shard);
    if (rv == 0) {
        sync_now(w);
    }
    return rv;
}

int wal_append(struct cons_wal *w, uint32_t shard, struct raft_io_append *req,
               const struct raft_entry *entries, unsigned n,
               raft_io_append_cb cb)
{
    struct wal_group *g = &w->groups[shard];
    if (w->n_pend == w->cap_pend) {
        size_t cap = w->cap_pend > 0 ? w->cap_pend * 2 : 64;
        struct wal_pending *p = mc_realloc(w->pend, cap * sizeof *p);
        if (p == NULL) {
            return RAFT_NOMEM;
        }
        w->pend = p;
        w->cap_pend = cap;
    }
    uint64_t first = g->last + 1;
    size_t have = (size_t)group_count(g);
    if (!group_reserve(g, have + n)) {
        return RAFT_NOMEM;
    }
    int rv = rec_entries(w, shard, first, entries, n, g->locs + have);
    if (rv != 0) {
        return rv;
    }
    g->used = true;
    g->last = first + n - 1;
    w->pend[w->n_pend++] = (struct wal_pending){req, cb, shard};
    return 0;
}

int wal_truncate(struct cons_wal *w, uint32_t shard, raft_index index)
{
    struct wal_group *g = &w->groups[shard];
    if (index == 0) {
        return RAFT_INVALID;
    }
    int rv = rec_u64(w, REC_TRUNCATE, shard, index);
    if (rv == 0) {
        group_truncate(g, index);
    }
    return rv;
}

int wal_bootstrap(struct cons_wal *w, uint32_t shard,
                  const struct raft_configuration *conf)
{
    struct wal_group *g = &w->groups[shard];
    if (g->term != 0 || group_count(g) > 0 || w->snap_index[shard] != 0) {
        return RAFT_CANTBOOTSTRAP;
    }
    struct raft_buffer buf;
    int rv = raft_configuration_encode(conf, &buf);
    if (rv != 0) {
        return rv;
    }
    struct raft_entry e = {.term = 1, .type = RAFT_CHANGE, .buf = buf};
    g->used = true;
    g->term = 1;
    g->vote = 0;
    rv = rec_vote(w, shard);
    if (rv == 0 && group_reserve(g, 1)) {
        rv = rec_entries(w, shard, 1, &e, 1, g->locs);
        if (rv == 0) {
            g->last = 1;
        }
    } else if (rv == 0) {
        rv = RAFT_NOMEM;
    }
    raft_free(buf.base);
    if (rv == 0) {
        sync_now(w);
    }
    return rv;
}

/* ---- snapshots ---- */

/* Read the header of a snapshot file; the configuration into *conf. */
/* *crc is the checksum of the header and the configuration, which the
 * data's continues; *want_crc what the whole must come to. */
static int snap_read_head(int fd, const char *path, uint64_t want_index,
                          struct raft_snapshot *out, uint64_t *data_len,
                          uint32_t *crc, uint32_t *want_crc, char *errmsg,
                          size_t errmsg_len)
{
    uint8_t head[SNAP_HEAD_BYTES];
    ssize_t got = pread(fd, head, sizeof head, 0);
    if (got != (ssize_t)sizeof head || bytes_get_u64le(head) != SNAP_MAGIC ||
        bytes_get_u64le(head + 8) != want_index) {
        base_errf(errmsg, errmsg_len, "%s is not a snapshot of index %" PRIu64,
                  path, want_index);
        return RAFT_CORRUPT;
    }
    out->index = bytes_get_u64le(head + 8);
    out->term = bytes_get_u64le(head + 16);
    out->configuration_index = bytes_get_u64le(head + 24);
    uint32_t conf_len = bytes_get_u32le(head + 32);
    *crc = base_crc32c(0, head, 36);
    *want_crc = bytes_get_u32le(head + 36);
    *data_len = bytes_get_u64le(head + 40);
    uint8_t *conf = mc_malloc(conf_len > 0 ? conf_len : 1);
    if (conf == NULL) {
        return RAFT_NOMEM;
    }
    got = pread(fd, conf, conf_len, SNAP_HEAD_BYTES);
    int rv = 0;
    if (got != (ssize_t)conf_len) {
        base_errf(errmsg, errmsg_len, "%s: cut short", path);
        rv = RAFT_CORRUPT;
    }
    /* raft's configuration encoding: [u8 version][u64 n], then per server
     * [u64 id][address NUL-terminated][u8 role]. */
    raft_configuration_init(&out->configuration);
    const uint8_t *p = conf, *end = conf + conf_len;
    uint64_t n = 0;
    if (rv == 0 && (conf_len < 9 || p[0] != 1)) {
        rv = RAFT_CORRUPT;
    } else if (rv == 0) {
        n = bytes_get_u64le(p + 1);
        p += 9;
    }
    for (uint64_t i = 0; rv == 0 && i < n; i++) {
        const uint8_t *nul;
        if (end - p < 10 ||
            (nul = memchr(p + 8, '\0', (size_t)(end - p - 8))) == NULL ||
            nul + 2 > end) {
            rv = RAFT_CORRUPT;
            break;
        }
        rv = raft_configuration_add(&out->configuration, bytes_get_u64le(p),
                                    (const char *)p + 8, nul[1]);
        p = nul + 2;
    }
    if (rv == 0) {
        *crc = base_crc32c(*crc, conf, conf_len);
    } else {
        raft_configuration_close(&out->configuration);
        if (rv != RAFT_NOMEM) {
            base_errf(errmsg, errmsg_len, "%s: bad configuration", path);
            rv = RAFT_CORRUPT;
        }
    }
    mc_free(conf);
    return rv;
}

/* The offset of a snapshot file's data. */
static uint64_t snap_data_off(int fd)
{
    uint8_t head[SNAP_HEAD_BYTES];
    if (pread(fd, head, sizeof head, 0) != (ssize_t)sizeof head) {
        return 0;
    }
    return SNAP_HEAD_BYTES + pad8(bytes_get_u32le(head + 32));
}

/* Free a snapshot read by snap_read (raft never got it). NULL is fine. */
static void snap_free(struct raft_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    raft_configuration_close(&s->configuration);
    raft_free(s->bufs[0].base);
    raft_free(s->bufs);
    raft_free(s);
}

/* Read the group's snapshot at index: whole, or with a placeholder for
 * its data. */
static int snap_read(const struct cons_wal *w, uint32_t shard, uint64_t index,
                     bool placeholder, struct raft_snapshot **out,
                     char *errmsg, size_t errmsg_len)
{
    char path[MC_PATH_BYTES_MAX + 48];
    snap_path(w, shard, index, "", path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        base_errf(errmsg, errmsg_len, "open %s: %s", path, strerror(errno));
        return RAFT_IOERR;
    }
    struct raft_snapshot *s = raft_calloc(1, sizeof *s);
    struct raft_buffer *bufs = raft_calloc(1, sizeof *bufs);
    uint64_t data_len = 0;
    uint32_t crc = 0, want_crc = 0;
    int rv = s != NULL && bufs != NULL ? 0 : RAFT_NOMEM;
    if (rv == 0) {
        rv = snap_read_head(fd, path, index, s, &data_len, &crc, &want_crc,
                            errmsg, errmsg_len);
    }
    bool conf_ok = rv == 0;
    if (rv == 0 && placeholder) {
        bufs[0].len = PLACEHOLDER_BYTES;
        bufs[0].base = raft_malloc(PLACEHOLDER_BYTES);
        if (bufs[0].base == NULL) {
            rv = RAFT_NOMEM;
        } else {
            bytes_put_u64le(bufs[0].base, PLACEHOLDER_MAGIC);
            bytes_put_u64le((uint8_t *)bufs[0].base + 8, index);
        }
    } else if (rv == 0) {
        uint64_t off = snap_data_off(fd);
        bufs[0].len = (size_t)data_len;
        bufs[0].base = raft_malloc(data_len > 0 ? (size_t)data_len : 8);
        if (bufs[0].base == NULL) {
            rv = RAFT_NOMEM;
        } else if (pread(fd, bufs[0].base, (size_t)data_len, (off_t)off) !=
                       (ssize_t)data_len ||
                   base_crc32c(crc, bufs[0].base, (size_t)data_len) !=
                       want_crc) {
            base_errf(errmsg, errmsg_len, "%s: data cut short or damaged",
                      path);
            rv = RAFT_CORRUPT;
        }
    }
    close(fd);
    if (rv != 0) {
        if (conf_ok) {
            raft_configuration_close(&s->configuration);
        }
        if (bufs != NULL) {
            raft_free(bufs[0].base);
        }
        raft_free(bufs);
        raft_free(s);
        return rv;
    }
    s->bufs = bufs;
    s->n_bufs = 1;
    *out = s;
    return 0;
}

uint64_t wal_placeholder_index(const struct raft_buffer *buf)
{
    if (buf->len != PLACEHOLDER_BYTES ||
        bytes_get_u64le(buf->base) != PLACEHOLDER_MAGIC) {
        return 0;
    }
    return bytes_get_u64le((const uint8_t *)buf->base + 8);
}

int wal_load(struct cons_wal *w, uint32_t shard, uint64_t have_index,
             raft_term *term, raft_id *vote, struct raft_snapshot **snapshot,
             raft_index *start_index, struct raft_entry **entries,
             size_t *n_entries, char *errmsg, size_t errmsg_len)
{
    struct wal_group *g = &w->groups[shard];
    *term = g->term;
    *vote = g->vote;
    *snapshot = NULL;
    *entries = NULL;
    *n_entries = 0;
    uint64_t snap = w->snap_index[shard];
    if (snap != 0) {
        int rv = snap_read(w, shard, snap, snap <= have_index, snapshot,
                           errmsg, errmsg_len);
        if (rv != 0) {
            return rv;
        }
    }
    if (snap != 0 && g->last < snap) {
        /* The snapshot covers every entry: the log starts after it, and
         * says so before the next entry is written. */
        if (group_count(g) > 0 || g->floor < snap + 1) {
            if (rec_u64(w, REC_COMPACT, shard, snap + 1) != 0) {
                goto nomem;
            }
            group_compact(g, snap + 1);
        }
    }
    uint64_t n = group_count(g);
    *start_index = n > 0 ? g->first : snap + 1;
    if (n > 0 && g->first > snap + 1) {
        base_errf(errmsg, errmsg_len, "raft log of shard %u starts at %" PRIu64
                  " after its snapshot at %" PRIu64, shard, g->first, snap);
        goto corrupt;
    }
    if (n == 0) {
        return 0;
    }
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        total += g->locs[i].len;
    }
    struct raft_entry *es = raft_calloc((size_t)n, sizeof *es);
    uint8_t *batch = raft_malloc(total > 0 ? total : 8);
    if (es == NULL || batch == NULL) {
        raft_free(es);
        raft_free(batch);
        goto nomem;
    }
    /* Read each segment's part through a map of it. */
    size_t at = 0;
    for (size_t k = 0; k < w->n_segs; k++) {
        const struct wal_seg *seg = &w->segs[k];
        void *map = NULL;
        for (uint64_t i = 0; i < n; i++) {
            const struct wal_loc *loc = &g->locs[i];
            if (loc->seq != seg->seq) {
                continue;
            }
            if (map == NULL) {
                char path[MC_PATH_BYTES_MAX + 32];
                seg_path(w, seg->seq, path, sizeof path);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                map = fd < 0 ? MAP_FAILED
                             : mmap(NULL, (size_t)seg->size, PROT_READ,
                                    MAP_SHARED, fd, 0);
                if (fd >= 0) {
                    close(fd);
                }
                if (map == MAP_FAILED) {
                    base_errf(errmsg, errmsg_len, "read %s: %s", path,
                              strerror(errno));
                    raft_free(es);
                    raft_free(batch);
                    snap_free(*snapshot);
                    *snapshot = NULL;
                    return RAFT_IOERR;
                }
            }
            ASSERT(loc->off + loc->len <= seg->size);
            es[i].term = loc->term;
            es[i].type = (unsigned short)loc->type;
            es[i].batch = batch;
            es[i].buf.len = loc->len;
            es[i].buf.base = loc->len > 0 ? batch + at : NULL;
            memcpy(batch + at, (uint8_t *)map + loc->off, loc->len);
            at += loc->len;
        }
        if (map != NULL) {
            munmap(map, (size_t)seg->size);
        }
    }
    ASSERT(at == total);
    *entries = es;
    *n_entries = (size_t)n;
    return 0;

nomem:
    base_errf(errmsg, errmsg_len, "out of memory");
    snap_free(*snapshot);
    *snapshot = NULL;
    return RAFT_NOMEM;
corrupt:
    snap_free(*snapshot);
    *snapshot = NULL;
    return RAFT_CORRUPT;
}

/* Thread pool work of a group: a snapshot to write or to read. */
struct snap_work {
    uv_work_t work;
    struct cons_wal *w;
    uint32_t shard;
    int status;
    char errmsg[256];
    /* put */
    struct raft_io_snapshot_put *put_req;
    raft_io_snapshot_put_cb put_cb;
    const struct raft_snapshot *snap;
    unsigned trailing;
    uint64_t prev_index; /* the file it replaces */
    /* get */
    struct raft_io_snapshot_get *get_req;
    raft_io_snapshot_get_cb get_cb;
    uint64_t index;
    struct raft_snapshot *got;
};

static void work_done(struct cons_wal *w, uint32_t shard)
{
    ASSERT(w->works[shard] > 0);
    if (--w->works[shard] == 0 && w->closing[shard].cb != NULL) {
        struct wal_closing c = w->closing[shard];
        w->closing[shard] = (struct wal_closing){0};
        c.cb(c.arg);
    }
}

static void put_work(uv_work_t *req)
{
    struct snap_work *k = req->data;
    const struct raft_snapshot *s = k->snap;
    char tmp[MC_PATH_BYTES_MAX + 48], path[MC_PATH_BYTES_MAX + 48];
    snap_path(k->w, k->shard, s->index, ".tmp", tmp, sizeof tmp);
    snap_path(k->w, k->shard, s->index, "", path, sizeof path);
    struct raft_buffer conf = {0};
    int e = raft_configuration_encode(&s->configuration, &conf) == 0 ? 0
                                                                     : ENOMEM;
    uint64_t data_len = 0;
    for (unsigned i = 0; i < s->n_bufs; i++) {
        data_len += s->bufs[i].len;
    }
    uint8_t head[SNAP_HEAD_BYTES] = {0};
    bytes_put_u64le(head, SNAP_MAGIC);
    bytes_put_u64le(head + 8, s->index);
    bytes_put_u64le(head + 16, s->term);
    bytes_put_u64le(head + 24, s->configuration_index);
    bytes_put_u32le(head + 32, (uint32_t)conf.len);
    bytes_put_u64le(head + 40, data_len);
    uint32_t crc = base_crc32c(0, head, 36);
    crc = base_crc32c(crc, conf.base, conf.len);
    for (unsigned i = 0; i < s->n_bufs; i++) {
        crc = base_crc32c(crc, s->bufs[i].base, s->bufs[i].len);
    }
    bytes_put_u32le(head + 36, crc);
    int fd = -1;
    if (e == 0) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
        e = fd < 0 ? errno : 0;
    }
    uint64_t off = 0;
    static const uint8_t zeros[8];
    if (e == 0) {
        e = write_all(fd, head, sizeof head, off);
        off += sizeof head;
    }
    if (e == 0) {
        e = write_all(fd, conf.base, conf.len, off);
        off += conf.len;
    }
    if (e == 0) {
        e = write_all(fd, zeros, pad8(conf.len) - conf.len, off);
        off = SNAP_HEAD_BYTES + pad8(conf.len);
    }
    for (unsigned i = 0; e == 0 && i < s->n_bufs; i++) {
        e = write_all(fd, s->bufs[i].base, s->bufs[i].len, off);
        off += s->bufs[i].len;
    }
    if (e == 0 && fsync(fd) != 0) {
        e = errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (e == 0 && rename(tmp, path) != 0) {
        e = errno;
    }
    if (e == 0) {
        e = dir_sync(k->w->dir);
    }
    raft_free(conf.base);
    if (e != 0) {
        unlink(tmp);
        base_errf(k->errmsg, sizeof k->errmsg, "snapshot %s: %s", path,
                  strerror(e));
        k->status = e == ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
        return;
    }
    if (k->prev_index != 0 && k->prev_index != s->index) {
        snap_path(k->w, k->shard, k->prev_index, "", path, sizeof path);
        (void)unlink(path); /* the log no longer needs it */
    }
}

static void put_done(uv_work_t *req, int status)
{
    struct snap_work *k = req->data;
    struct cons_wal *w = k->w;
    int rv = status != 0 ? RAFT_CANCELED : k->status;
    if (rv == 0) {
        const struct raft_snapshot *s = k->snap;
        if (s->index > w->snap_index[k->shard]) {
            w->snap_index[k->shard] = s->index;
        }
        /* Only now, with the snapshot on disk, may the log forget what it
         * covers; the record is written with the group's next entries. */
        struct wal_group *g = &w->groups[k->shard];
        if (k->trailing == 0) {
            rv = rec_u64(w, REC_RESET, k->shard, s->index);
            if (rv == 0) {
                group_reset(g, s->index);
            }
        } else if (s->index > k->trailing &&
                   s->index - k->trailing + 1 > g->first) {
            uint64_t keep = s->index - k->trailing + 1;
            rv = rec_u64(w, REC_COMPACT, k->shard, keep);
            if (rv == 0) {
                group_compact(g, keep);
            }
        }
    } else if (k->errmsg[0] != '\0') {
        LOG_ERROR("%s", k->errmsg);
    }
    struct raft_io_snapshot_put *preq = k->put_req;
    raft_io_snapshot_put_cb cb = k->put_cb;
    uint32_t shard = k->shard;
    mc_free(k);
    cb(preq, rv);
    work_done(w, shard);
}

static struct snap_work *snap_work_new(struct cons_wal *w, uint32_t shard)
{
    struct snap_work *k = mc_calloc(1, sizeof *k);
    if (k != NULL) {
        k->work.data = k;
        k->w = w;
        k->shard = shard;
    }
    return k;
}

/* Run k on the threadpool; its group counts it until done runs. */
static int snap_work_queue(struct snap_work *k, uv_work_cb work,
                           uv_after_work_cb done)
{
    if (uv_queue_work(k->w->loop, &k->work, work, done) != 0) {
        mc_free(k);
        return RAFT_IOERR;
    }
    k->w->works[k->shard]++;
    return 0;
}

int wal_snapshot_put(struct cons_wal *w, uint32_t shard, unsigned trailing,
                     struct raft_io_snapshot_put *req,
                     const struct raft_snapshot *snapshot,
                     raft_io_snapshot_put_cb cb)
{
    struct snap_work *k = snap_work_new(w, shard);
    if (k == NULL) {
        return RAFT_NOMEM;
    }
    k->put_req = req;
    k->put_cb = cb;
    k->snap = snapshot;
    k->trailing = trailing;
    k->prev_index = w->snap_index[shard];
    return snap_work_queue(k, put_work, put_done);
}

static void get_work(uv_work_t *req)
{
    struct snap_work *k = req->data;
    k->status = snap_read(k->w, k->shard, k->index, false, &k->got,
                          k->errmsg, sizeof k->errmsg);
}

static void get_done(uv_work_t *req, int status)
{
    struct snap_work *k = req->data;
    struct cons_wal *w = k->w;
    int rv = status != 0 ? RAFT_CANCELED : k->status;
    if (rv != 0 && k->errmsg[0] != '\0') {
        LOG_ERROR("%s", k->errmsg);
    }
    struct raft_snapshot *got = rv == 0 ? k->got : NULL;
    if (status != 0) {
        snap_free(k->got);
    }
    struct raft_io_snapshot_get *greq = k->get_req;
    raft_io_snapshot_get_cb cb = k->get_cb;
    uint32_t shard = k->shard;
    mc_free(k);
    cb(greq, got, rv);
    work_done(w, shard);
}

int wal_snapshot_get(struct cons_wal *w, uint32_t shard,
                     struct raft_io_snapshot_get *req,
                     raft_io_snapshot_get_cb cb)
{
    if (w->snap_index[shard] == 0) {
        return RAFT_NOTFOUND;
    }
    struct snap_work *k = snap_work_new(w, shard);
    if (k == NULL) {
        return RAFT_NOMEM;
    }
    k->get_req = req;
    k->get_cb = cb;
    k->index = w->snap_index[shard];
    return snap_work_queue(k, get_work, get_done);
}

void wal_group_close(struct cons_wal *w, uint32_t shard,
                     void (*close_cb)(void *arg), void *arg)
{
    /* Appends waiting for a sync end as failed: raft is closing. */
    size_t kept = 0;
    struct wal_pending *mine = NULL;
    size_t n_mine = 0;
    for (size_t i = 0; i < w->n_pend; i++) {
        if (w->pend[i].shard != shard) {
            w->pend[kept++] = w->pend[i];
            continue;
        }
        struct wal_pending *m = mc_realloc(mine, (n_mine + 1) * sizeof *m);
        if (m == NULL) {
            w->pend[kept++] = w->pend[i]; /* fires at the next sync */
            continue;
        }
        mine = m;
        mine[n_mine++] = w->pend[i];
    }
    w->n_pend = kept;
    for (size_t i = 0; i < n_mine; i++) {
        mine[i].cb(mine[i].req, RAFT_CANCELED);
    }
    mc_free(mine);
    if (w->works[shard] == 0) {
        close_cb(arg);
    } else {
        w->closing[shard] = (struct wal_closing){close_cb, arg};
    }
}

bool cons_wal_space_low(struct cons_wal *w)
{
    if (w->space_low) {
        next_prepare(w); /* room may have come back */
    }
    return w->space_low;
}

void wal_set_segment_bytes(struct cons_wal *w, uint64_t bytes)
{
    w->segment_bytes = bytes;
}

void cons_wal_stats_get(const struct cons_wal *w, struct cons_wal_stats *out)
{
    *out = w->stats;
    out->segments = w->n_segs;
}
