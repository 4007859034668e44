/* harness: real memcoord processes for the integration tests.
 *
 * A test starts its own node (fork + exec of $MEMCOORD_BIN) on free
 * loopback ports in a fresh folder under $MEMCOORD_TEST_DIR, waits until
 * every shard has a leader, talks to it through libmemcoord, memcoordctl
 * ($MEMCOORDCTL_BIN) or a raw nng req socket, and stops it. Waits poll a
 * condition against a deadline; there are no bare sleeps.
 *
 * Processes never outlive a test: harness_fini (use it as the Criterion
 * .fini of every test that starts a node) kills what is still running,
 * and each child has PR_SET_PDEATHSIG = SIGKILL, so a test process that
 * crashes takes its nodes with it. harness_fini also deletes a node's data
 * but keeps DIR/node.log (set MEMCOORD_TEST_KEEP=1 to keep everything).
 *
 * The harness uses nng and proto/ directly, not libmemcoord: it is linked
 * into unit tests too (which have no libmemcoord), and a broken library
 * must not make the node look unready. */
#ifndef MC_TESTS_HARNESS_H
#define MC_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto/proto.h"

#define HARNESS_PATH_BYTES_MAX 512u
#define HARNESS_URL_BYTES_MAX 64u
#define HARNESS_EXTRA_ARGS_MAX 16u
/* Nodes one test may run at once. */
#define HARNESS_NODES_MAX 8u
/* Defaults for waits: a node of 8 shards is ready in well under a second
 * on these machines (DEPS-NOTES.md raft 4). */
#define HARNESS_READY_MS 15000
#define HARNESS_STOP_MS 10000
#define HARNESS_CTL_MS 30000
#define HARNESS_START_TRIES 3

struct mc_node_proc {
    pid_t pid; /* 0 when not running */
    int port;
    int raft_port; /* the meta group's; loop k's raft lane raft_port + 1 + k */
    unsigned n_shards;
    unsigned n_loops; /* --loops (default 2): lanes of the raft transport */
    char dir[HARNESS_PATH_BYTES_MAX];
    char url[HARNESS_URL_BYTES_MAX];
    char log[HARNESS_PATH_BYTES_MAX + 16]; /* dir + "/node.log" */
    char *extra[HARNESS_EXTRA_ARGS_MAX + 1]; /* copies, NULL-terminated */
    bool fresh; /* started, never ready: may move to other ports */
    char netns[32]; /* "": the test's namespace; else it runs in this one */
    char host[16];  /* IPv4 of its client URL and raft address */
    bool raft_bind_apart; /* raft listens on other ports than peers dial */
    int raft_bind_port;   /* then: --raft-bind host:this; else 0 */
};

/* Ports of a node in a namespace of its own (harness_cluster_start_at):
 * fixed, as nothing else binds there. */
#define HARNESS_NET_PORT 7400
#define HARNESS_NET_RAFT_PORT 7500
#define HARNESS_NET_RAFT_BIND_PORT 7600

/* Where harness_cluster_start_at runs a node. */
struct harness_place {
    /* NULL or "": the test's namespace, on 127.0.0.1 (or ip) with ports
     * picked free; else the name of a network namespace (/run/netns/NAME,
     * as `ip netns add` makes), which the node enters before exec, with
     * ip required and the HARNESS_NET_* ports. */
    const char *netns;
    const char *ip; /* NULL: 127.0.0.1 */
    /* The node's raft listeners bind other ports (--raft-bind) than the
     * raft address peers dial (--raft-addr, --initial-cluster): room for
     * a proxy in between, which forwards raft_port + i to
     * raft_bind_port + i. */
    bool raft_bind_apart;
};

/* Start memcoord --data DIR --listen tcp://127.0.0.1:PORT --raft-addr
 * 127.0.0.1:RAFTPORT --election-ms 300 --heartbeat-ms 30 --log-level info
 * followed by the extra arguments (a NULL-terminated list; "--shards N"
 * among them sets how many raft ports are reserved: one more than shards). stderr and stdout go
 * to DIR/node.log. n is zeroed first. Returns 0, or -1 with the reason on
 * stderr. */
int harness_node_start(struct mc_node_proc *n, ...);

/* Poll OP_STATUS until every shard reports a leader. Returns 0, or -1 when
 * the deadline passes or the node exits (the log's tail goes to stderr).
 * A node that exits before its first ready (most likely a port that another
 * process took between our check and its bind) is started again on other
 * ports with an empty folder, up to HARNESS_START_TRIES times: n->url may
 * change until this returns 0. */
int harness_node_wait_ready(struct mc_node_proc *n, int timeout_ms);

/* Send sig and reap the node. SIGTERM waits HARNESS_STOP_MS for a clean
 * exit, then kills. Returns the exit status (128 + signal when a signal
 * ended it), or -1 when it was not running. */
int harness_node_stop(struct mc_node_proc *n, int sig);

/* Wait up to timeout_ms for the node to exit by itself and reap it.
 * Returns its exit status (as harness_node_stop), or -1 if it still runs. */
int harness_node_wait_exit(struct mc_node_proc *n, int timeout_ms);

/* Start count nodes as one cluster: each with its own folder and ports,
 * node ids 1..count, and the same --initial-cluster list; the extra
 * arguments (NULL-terminated) go to every node. nodes[] is zeroed first.
 * Returns 0, or -1 with the reason on stderr. */
int harness_cluster_start(struct mc_node_proc *nodes, unsigned count, ...);

/* harness_cluster_start with each node placed by places[i] (count of
 * them): in a network namespace of its own, on another address, or with
 * its raft listeners apart from its raft address. The client URLs in
 * nodes[i].url are then tcp://IP:PORT of those addresses. */
int harness_cluster_start_at(struct mc_node_proc *nodes, unsigned count,
                             const struct harness_place *places, ...);

/* Start the node again with the same folder, ports and arguments. */
int harness_node_restart(struct mc_node_proc *n);

/* Print the last lines of the node's log to stderr. */
void harness_node_log_tail(const struct mc_node_proc *n, unsigned lines);

/* Criterion .fini: kill every node this process started, reap it, and
 * delete its data (keeping node.log). */
void harness_fini(void);

/* Monotonic ms, and a pause between polls of a condition (waits poll
 * against a deadline; never a bare sleep). */
int64_t harness_now_ms(void);
void harness_pause_ms(int ms);

/* Write into key (len bytes) the first "PREFIX/N" that lands in shard of
 * namespace ns on a cluster of n_shards: how tests aim at one shard. */
void harness_key_in_shard(const char *ns, uint32_t n_shards,
                          const char *prefix, uint32_t shard, char *key,
                          size_t len);

/* ---- raw nng ---- */

/* Send len bytes as one req0 message to url (tcp://127.0.0.1:PORT) on a
 * fresh connection and wait up to timeout_ms per step for one reply. On 0
 * *reply is a malloc'd buffer of *reply_len bytes the caller frees.
 * Returns 0 or an nng error code: NNG_ETIMEDOUT, NNG_ECONNREFUSED,
 * NNG_ECONNRESET or NNG_ECONNSHUT (the node dropped the connection),
 * NNG_EPROTO (not an SP peer), NNG_EADDRINVAL (another URL form). */
int harness_raw_call(const char *url, const void *msg, size_t len,
                     int timeout_ms, void **reply, size_t *reply_len);

/* Frame req, send it raw and decode the answer. On 0 the caller frees *out
 * with mcpb__response__free_unpacked(*out, NULL). Returns 0, the nng error,
 * or -1 when the answer does not decode. */
int harness_raw_request(const char *url, const Mcpb__Request *req,
                        int timeout_ms, Mcpb__Response **out);

/* ---- memcoordctl ---- */

struct harness_ctl_out {
    int status; /* exit status, 128 + signal, or -1 */
    char *out;  /* NUL-terminated; out_len bytes without the NUL */
    size_t out_len;
    char *err;
    size_t err_len;
};

/* Run $MEMCOORDCTL_BIN with args (NULL-terminated), stdin from in[0..
 * in_len), and the environment plus env (NULL-terminated "NAME=VALUE";
 * MEMCOORD_ENDPOINTS is removed unless env sets it). Kills it after
 * HARNESS_CTL_MS. Returns r->status; free r with harness_ctl_out_fini. */
int harness_ctl_exec(const char *const *args, const char *const *env,
                     const void *in, size_t in_len, struct harness_ctl_out *r);
void harness_ctl_out_fini(struct harness_ctl_out *r);

/* memcoordctl --endpoints n->url ARGS... (NULL-terminated), stdin from the
 * string stdin_data (NULL = empty). *out and *err (each may be NULL) are
 * malloc'd NUL-terminated captures the caller frees. Returns the exit
 * status. */
int harness_run_ctl(const struct mc_node_proc *n, const char *stdin_data,
                    char **out, char **err, ...);

#endif
