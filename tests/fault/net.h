/* net: a private network for a fault run, and the partitions made on it.
 *
 * net_setup makes a Linux bridge in the test's namespace with an address
 * of its own (the test process, the client, talks to the nodes through
 * it), and for each node a network namespace joined to the bridge by a
 * veth pair, on 10.231.S.(i+1)/24. A node runs inside its namespace
 * (harness_cluster_start_at) on that address.
 *
 * Partitions, iptables rules in the nodes' namespaces, each undone by
 * net_heal:
 *   net_cut(a, b)     DROP of b's address in a's INPUT and OUTPUT chains,
 *                     and of a's in b's: a and b cannot reach each other
 *                     (raft, forwarding); the test still reaches both;
 *   net_isolate(a)    DROP of everything but loopback in a's chains: a
 *                     reaches nobody and nobody reaches it, the test
 *                     included.
 * (Packets vanish: connections retransmit into the void, connects time
 * out, as across a real partition.)
 *
 * Every name starts with "mcf" and the pid of the process that made it:
 * mcf<pid>b (bridge), mcf<pid>v<i> / mcf<pid>p<i> (veth ends),
 * mcf<pid>n<i> (namespace). net_sweep removes those of processes that no
 * longer run: the leftovers of a crashed run. Every `ip` command runs with
 * a deadline. Needs root, iproute2 and iptables; net_setup says why it
 * cannot. */
#ifndef MC_TESTS_FAULT_NET_H
#define MC_TESTS_FAULT_NET_H

#include <stdbool.h>
#include <stddef.h>

#define NET_NODES_MAX 8u
#define NET_NAME_BYTES 16u /* IFNAMSIZ */
#define NET_IP_BYTES 16u
/* Longest an `ip` command may take. */
#define NET_CMD_MS 10000

struct net {
    unsigned n;
    bool made; /* something exists that net_teardown must remove */
    int subnet;  /* 10.231.subnet.0/24 */
    char bridge[NET_NAME_BYTES];
    char host_ip[NET_IP_BYTES]; /* the bridge's address */
    char ns[NET_NODES_MAX][NET_NAME_BYTES];
    char veth[NET_NODES_MAX][NET_NAME_BYTES]; /* the bridge's end */
    char ip[NET_NODES_MAX][NET_IP_BYTES];
    bool cut[NET_NODES_MAX][NET_NODES_MAX];
    bool down[NET_NODES_MAX]; /* isolated */
};

/* Make the network for n nodes. Returns 0; or -1 with why filled (not
 * root, no `ip`, a command that failed), having removed what it made. */
int net_setup(struct net *net, unsigned n, char *why, size_t why_len);

/* Remove everything net_setup made (the namespaces take their veth ends
 * with them). Safe on a zeroed or already torn down net. */
void net_teardown(struct net *net);

/* Cut the link between nodes a and b, both ways. 0 or -1. */
int net_cut(struct net *net, unsigned a, unsigned b);

/* Cut node a from everyone, the test included. 0 or -1. */
int net_isolate(struct net *net, unsigned a);

/* Undo every cut and isolation. 0 or -1. */
int net_heal(struct net *net);

/* Remove namespaces and links named mcf<pid>... of pids that do not run. */
void net_sweep(void);

#endif
