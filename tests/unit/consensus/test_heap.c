/* consensus/heap.c: raft's heap. Blocks over 8 MiB (snapshots) come from
 * mappings of their own at a 2 MiB boundary, advised to use huge pages;
 * smaller ones from glibc; each kind is freed and grown by raft's calls
 * as raft expects, with its bytes kept; and more big blocks than the heap
 * keeps track of still work. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "consensus/consensus.h"

#define MIB (1u << 20)

static void setup(void)
{
    cons_heap_init();
}

static void teardown(void)
{
    raft_heap_set_default();
}

TestSuite(cons_heap, .init = setup, .fini = teardown);

static bool at_huge_boundary(const void *p)
{
    return ((uintptr_t)p & (2 * MIB - 1)) == 0;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i += 4093) {
        p[i] = (uint8_t)(seed + i);
    }
    p[n - 1] = seed;
}

static void check(const uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i += 4093) {
        cr_assert_eq(p[i], (uint8_t)(seed + i), "byte %zu", i);
    }
}

Test(cons_heap, a_snapshot_sized_block_is_a_huge_page_mapping)
{
    size_t n = 37 * MIB + 5;
    uint8_t *p = raft_malloc(n);
    cr_assert_not_null(p);
    cr_assert(at_huge_boundary(p));
    fill(p, n, 3);
    check(p, n, 3);
    raft_free(p);
    uint8_t *z = raft_calloc(9, MIB);
    cr_assert_not_null(z);
    cr_assert(at_huge_boundary(z));
    for (size_t i = 0; i < 9 * MIB; i += 4096) {
        cr_assert_eq(z[i], 0);
    }
    raft_free(z);
}

Test(cons_heap, small_blocks_stay_glibcs)
{
    void *p[64];
    for (size_t i = 0; i < 64; i++) {
        p[i] = raft_malloc(16 + i * 4096);
        cr_assert_not_null(p[i]);
        memset(p[i], (int)i, 16 + i * 4096);
    }
    for (size_t i = 0; i < 64; i++) {
        raft_free(p[i]);
    }
    void *segment = raft_malloc(8 * MIB); /* a full segment: not big */
    cr_assert_not_null(segment);
    raft_free(segment);
    raft_free(NULL);
}

Test(cons_heap, realloc_keeps_the_bytes_across_kinds)
{
    uint8_t *p = raft_realloc(NULL, 64 * 1024);
    fill(p, 64 * 1024, 7);
    p = raft_realloc(p, 12 * MIB); /* small to big */
    cr_assert(at_huge_boundary(p));
    check(p, 64 * 1024, 7);
    fill(p, 12 * MIB, 9);
    p = raft_realloc(p, 12 * MIB - 4096); /* still fits */
    check(p, 12 * MIB - 4096, 9);
    p = raft_realloc(p, 30 * MIB); /* big to bigger */
    check(p, 12 * MIB - 4096, 9);
    p = raft_realloc(p, 1024); /* back to small */
    cr_assert_not_null(p);
    cr_assert_eq(p[0], 9);
    raft_free(p);
}

Test(cons_heap, more_big_blocks_than_it_tracks_still_work)
{
    /* Address space only: the blocks are not touched, or each would take
     * huge pages of memory. */
    enum { N = 260 };
    static uint8_t *p[N];
    size_t huge = 0;
    for (size_t i = 0; i < N; i++) {
        p[i] = raft_malloc(9 * MIB);
        cr_assert_not_null(p[i], "block %zu", i);
        huge += at_huge_boundary(p[i]);
    }
    cr_assert_geq(huge, 256u);
    for (size_t i = 0; i < N; i++) {
        raft_free(p[i]);
    }
    /* The table has room again. */
    uint8_t *q = raft_malloc(9 * MIB);
    cr_assert(at_huge_boundary(q));
    raft_free(q);
}

Test(cons_heap, aligned_blocks_stay_glibcs)
{
    void *p = raft_aligned_alloc(4096, 16 * MIB);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 4096, 0);
    memset(p, 1, 16 * MIB);
    raft_aligned_free(4096, p);
}
