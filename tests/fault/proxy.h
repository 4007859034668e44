/* proxy: a user-space TCP proxy between the raft ports of a cluster on
 * loopback, for partitions where network namespaces cannot be made.
 *
 * Node i is started with its raft listeners apart (harness_place
 * raft_bind_apart): peers dial its raft address, ports from[i] +
 * 0..ports-1, where the proxy listens, and the proxy forwards each
 * connection to the node's own listener at to[i] + the same offset. The
 * first bytes of a raft 0.15 connection are its handshake, the sender's
 * raft server id as a little-endian u64 after the protocol version
 * (raft src/uv_tcp_connect.c, uvTcpEncodeHandshake); memcoord's raft ids
 * are node ids, so the proxy knows which link a connection is.
 *
 * proxy_cut(a, b) closes the connections between a and b and closes every
 * new one right after its handshake until proxy_heal. Only raft links go
 * through it: client traffic and the nodes' forwarding of requests do
 * not, so its partitions are narrower than those of net.h. One thread,
 * poll(2), bounded buffers. */
#ifndef MC_TESTS_FAULT_PROXY_H
#define MC_TESTS_FAULT_PROXY_H

#define PROXY_NODES_MAX 8u
#define PROXY_PORTS_MAX 64u
#define PROXY_CONNS_MAX 1024u
#define PROXY_BUF_BYTES (256u << 10)

struct proxy;

/* Listen on 127.0.0.1:from[i] + k and forward to 127.0.0.1:to[i] + k, for
 * nodes i < n and k < ports. Returns NULL with the reason on stderr. */
struct proxy *proxy_start(unsigned n, unsigned ports, const int *from,
                          const int *to);

/* Cut the raft links between nodes a and b (indexes, node id - 1). */
int proxy_cut(struct proxy *p, unsigned a, unsigned b);

/* Let every link through again. */
int proxy_heal(struct proxy *p);

/* Stop the thread, close everything, free p. NULL is a no-op. */
void proxy_stop(struct proxy *p);

#endif
