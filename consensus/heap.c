/* raft's heap: glibc's malloc, but for blocks larger than HEAP_BIG_BYTES,
 * which get a mapping of their own in transparent huge pages. Those are
 * the snapshots of large shards: the one a group takes (the whole shard,
 * built by the FSM in a raft_malloc'd buffer), and the one raft_uv loads
 * at every start and decompresses into a buffer as large. Touching a
 * fresh 4 KiB page costs a page fault, and on these VMs faults were half
 * of a restart of a node of 1M records (73k of them for 300 MB of
 * snapshots); a 2 MiB page takes one fault where 512 small ones did (a
 * restart of that node took 1.5-1.8 s before, 0.9-1.1 s after). A freed
 * block goes straight back to the OS (munmap).
 *
 * Big blocks start at a huge-page boundary and are found again in a small
 * table, under a lock; only a pointer at such a boundary is looked up, so
 * the lock stays off the path of the many small blocks. aligned_alloc
 * (raft_uv's O_DIRECT buffers) stays glibc's. */
#define _GNU_SOURCE /* MADV_HUGEPAGE */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "consensus/consensus.h"

/* A transparent huge page of x86-64 and arm64 (4 KiB base pages). */
#define HEAP_HUGE_BYTES (2u << 20)

/* Blocks above this get a mapping of their own: above raft_uv's segment
 * size (8 MiB), whose closed segments raft holds in memory for as long as
 * their entries are in its log; rounded up to huge pages, they would take
 * more memory for good. Snapshots are transient. */
#define HEAP_BIG_BYTES (8u << 20)

/* Big blocks alive at once: a snapshot or two per group, and segment
 * files larger than a huge page; beyond it blocks come from glibc. */
#define HEAP_BIG_MAX 256u

struct big {
    void *ptr;
    size_t len; /* of the mapping */
};

static pthread_mutex_t big_mu = PTHREAD_MUTEX_INITIALIZER;
static struct big bigs[HEAP_BIG_MAX];

static bool is_boundary(const void *p)
{
    return ((uintptr_t)p & (HEAP_HUGE_BYTES - 1)) == 0;
}

/* A mapping of at least size bytes at a huge-page boundary, advised to
 * use huge pages, and registered; NULL when none can be had. */
static void *big_alloc(size_t size)
{
    size_t len = (size + HEAP_HUGE_BYTES - 1) & ~(size_t)(HEAP_HUGE_BYTES - 1);
    /* Map a huge page more, and trim to the boundary. */
    uint8_t *raw = mmap(NULL, len + HEAP_HUGE_BYTES, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        return NULL;
    }
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + HEAP_HUGE_BYTES - 1) &
                             ~(uintptr_t)(HEAP_HUGE_BYTES - 1));
    if (p > raw) {
        munmap(raw, (size_t)(p - raw));
    }
    size_t tail = (size_t)(raw + len + HEAP_HUGE_BYTES - (p + len));
    if (tail > 0) {
        munmap(p + len, tail);
    }
    /* Only advice: without it (THP off) the block is an ordinary one. */
    (void)madvise(p, len, MADV_HUGEPAGE);
    pthread_mutex_lock(&big_mu);
    for (unsigned i = 0; i < HEAP_BIG_MAX; i++) {
        if (bigs[i].ptr == NULL) {
            bigs[i] = (struct big){p, len};
            pthread_mutex_unlock(&big_mu);
            return p;
        }
    }
    pthread_mutex_unlock(&big_mu);
    munmap(p, len);
    return NULL;
}

/* The mapping's length when p is a big block, else 0. With forget, the
 * block leaves the table. */
static size_t big_find(void *p, bool forget)
{
    if (p == NULL || !is_boundary(p)) {
        return 0;
    }
    size_t len = 0;
    pthread_mutex_lock(&big_mu);
    for (unsigned i = 0; i < HEAP_BIG_MAX && len == 0; i++) {
        if (bigs[i].ptr == p) {
            len = bigs[i].len;
            if (forget) {
                bigs[i] = (struct big){NULL, 0};
            }
        }
    }
    pthread_mutex_unlock(&big_mu);
    return len;
}

static void *heap_malloc(void *data, size_t size)
{
    (void)data;
    void *p = size > HEAP_BIG_BYTES ? big_alloc(size) : NULL;
    return p != NULL ? p : malloc(size);
}

static void heap_free(void *data, void *ptr)
{
    (void)data;
    size_t len = big_find(ptr, true);
    if (len > 0) {
        munmap(ptr, len);
        return;
    }
    free(ptr);
}

static void *heap_calloc(void *data, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        return NULL;
    }
    size_t n = nmemb * size;
    void *p = n > HEAP_BIG_BYTES ? big_alloc(n) : NULL;
    return p != NULL ? p : calloc(nmemb, size); /* mappings are zeroed */
}

static void *heap_realloc(void *data, void *ptr, size_t size)
{
    size_t old = big_find(ptr, false);
    if (old == 0 && size <= HEAP_BIG_BYTES) {
        return realloc(ptr, size);
    }
    if (old >= size) {
        return ptr; /* a big block that still fits */
    }
    void *p = heap_malloc(data, size);
    if (p == NULL) {
        return NULL; /* ptr stays valid, as realloc's */
    }
    if (ptr != NULL) {
        size_t have = old > 0 ? old : malloc_usable_size(ptr);
        memcpy(p, ptr, have < size ? have : size);
        heap_free(data, ptr);
    }
    return p;
}

static void *heap_aligned_alloc(void *data, size_t alignment, size_t size)
{
    (void)data;
    return aligned_alloc(alignment, size);
}

static void heap_aligned_free(void *data, size_t alignment, void *ptr)
{
    (void)data;
    (void)alignment;
    free(ptr);
}

static struct raft_heap heap = {
    .malloc = heap_malloc,
    .free = heap_free,
    .calloc = heap_calloc,
    .realloc = heap_realloc,
    .aligned_alloc = heap_aligned_alloc,
    .aligned_free = heap_aligned_free,
};

void cons_heap_init(void)
{
    raft_heap_set(&heap);
}
