/* The store's write transaction is tied to the thread that began it: LMDB's
 * writer mutex belongs to that thread, so a commit from another thread
 * leaves it locked and the next write hangs forever. This happened for real
 * when raft_start applied entries on the main thread and the loop thread
 * committed them (node/replica.c now commits before handing over); the
 * store asserts the rule so the mistake aborts instead of hanging. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>

#include "tests/unit/shard/shard_test.h"

static struct tshard T;

static void *commit_main(void *arg)
{
    t_commit(arg);
    return NULL;
}

Test(shard_commit, on_the_thread_that_applied_succeeds)
{
    t_open(&T, 1, 0, 0);
    t_put(&T, "k", "v");
    t_commit(&T);
    t_put(&T, "k", "w"); /* a new txn begins: no hang */
    t_commit(&T);
    cr_assert_eq(shard_applied_index(T.s), T.index);
    t_close(&T);
}

Test(shard_commit, from_another_thread_aborts, .signal = SIGABRT)
{
    t_open(&T, 1, 0, 0);
    t_put(&T, "k", "v");
    pthread_t th;
    pthread_create(&th, NULL, commit_main, &T);
    pthread_join(th, NULL);
}
