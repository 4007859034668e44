/* net: bridge, namespaces and partitions for a fault run. See net.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/fault/net.h"

#define NET_PREFIX "mcf"
#define NET_ARGS_MAX 16u
#define NET_SUBNET_FIRST 20
#define NET_SUBNET_COUNT 230

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Run `ip ARGS...` (NULL-terminated) with a deadline. quiet: its stderr
 * goes nowhere (for removals of what may not exist). Returns its exit
 * status, or -1. */
static int ip_run(bool quiet, ...)
{
    const char *argv[NET_ARGS_MAX + 2];
    size_t k = 0;
    argv[k++] = "ip";
    va_list ap;
    va_start(ap, quiet);
    for (const char *a = va_arg(ap, const char *); a != NULL && k <= NET_ARGS_MAX;
         a = va_arg(ap, const char *)) {
        argv[k++] = a;
    }
    va_end(ap);
    argv[k] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (quiet) {
            freopen("/dev/null", "w", stderr);
        }
        freopen("/dev/null", "w", stdout);
        /* iproute2 lives in /usr/sbin, which a test's PATH may lack. */
        execvp("ip", (char *const *)argv);
        execv("/usr/sbin/ip", (char *const *)argv);
        execv("/sbin/ip", (char *const *)argv);
        _exit(127);
    }
    long deadline = now_ms() + NET_CMD_MS;
    for (;;) {
        int wstatus;
        pid_t got = waitpid(pid, &wstatus, WNOHANG);
        if (got == pid) {
            int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
            if (code != 0 && !quiet) {
                fprintf(stderr, "net: ip");
                for (size_t i = 1; argv[i] != NULL; i++) {
                    fprintf(stderr, " %s", argv[i]);
                }
                fprintf(stderr, ": exit %d\n", code);
            }
            return code;
        }
        if (got < 0 && errno != EINTR) {
            return -1;
        }
        if (now_ms() > deadline) {
            fprintf(stderr, "net: ip %s %s hung; killing it\n", argv[1],
                    argv[2] != NULL ? argv[2] : "");
            kill(pid, SIGKILL);
            waitpid(pid, &wstatus, 0);
            return -1;
        }
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A /24 of 10.231.0.0/16 that no interface here has an address in. */
static int subnet_pick(void)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0) {
        return -1;
    }
    int pick = -1;
    int start = (int)(getpid() % NET_SUBNET_COUNT);
    for (int t = 0; t < NET_SUBNET_COUNT && pick < 0; t++) {
        int s = NET_SUBNET_FIRST + (start + t) % NET_SUBNET_COUNT;
        bool used = false;
        for (struct ifaddrs *i = ifs; i != NULL && !used; i = i->ifa_next) {
            if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET) {
                continue;
            }
            uint32_t a = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr
                                   .s_addr);
            used = (a >> 8) == ((10u << 16) | (231u << 8) | (unsigned)s);
        }
        pick = used ? -1 : s;
    }
    freeifaddrs(ifs);
    return pick;
}

static int why_set(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* One node's namespace, veth pair and address. */
static int node_setup(struct net *net, unsigned i)
{
    char peer[NET_NAME_BYTES], cidr[NET_IP_BYTES + 4];
    snprintf(peer, sizeof peer, NET_PREFIX "%dp%u", (int)getpid(), i);
    snprintf(cidr, sizeof cidr, "%s/24", net->ip[i]);
    const char *ns = net->ns[i];
    if (ip_run(false, "netns", "add", ns, NULL) != 0) {
        return -1;
    }
    if (ip_run(false, "link", "add", net->veth[i], "type", "veth", "peer",
               "name", peer, NULL) != 0 ||
        ip_run(false, "link", "set", peer, "netns", ns, NULL) != 0 ||
        ip_run(false, "link", "set", net->veth[i], "master", net->bridge,
               NULL) != 0 ||
        ip_run(false, "link", "set", net->veth[i], "up", NULL) != 0 ||
        ip_run(false, "-n", ns, "addr", "add", cidr, "dev", peer, NULL) != 0 ||
        ip_run(false, "-n", ns, "link", "set", peer, "up", NULL) != 0 ||
        ip_run(false, "-n", ns, "link", "set", "lo", "up", NULL) != 0) {
        return -1;
    }
    return 0;
}

int net_setup(struct net *net, unsigned n, char *why, size_t why_len)
{
    memset(net, 0, sizeof *net);
    if (n == 0 || n > NET_NODES_MAX) {
        return why_set(why, why_len, "%u nodes", n);
    }
    if (geteuid() != 0) {
        return why_set(why, why_len, "not root (network namespaces need "
                                     "CAP_SYS_ADMIN and CAP_NET_ADMIN)");
    }
    if (ip_run(true, "-V", NULL) != 0) {
        return why_set(why, why_len, "no `ip` command (iproute2)");
    }
    if (access("/usr/sbin/iptables", X_OK) != 0) {
        return why_set(why, why_len, "no iptables (/usr/sbin/iptables)");
    }
    net->subnet = subnet_pick();
    if (net->subnet < 0) {
        return why_set(why, why_len, "no free subnet in 10.231.0.0/16");
    }
    net->n = n;
    int pid = (int)getpid();
    snprintf(net->bridge, sizeof net->bridge, NET_PREFIX "%db", pid);
    snprintf(net->host_ip, sizeof net->host_ip, "10.231.%d.254", net->subnet);
    for (unsigned i = 0; i < n; i++) {
        snprintf(net->ns[i], sizeof net->ns[i], NET_PREFIX "%dn%u", pid, i);
        snprintf(net->veth[i], sizeof net->veth[i], NET_PREFIX "%dv%u", pid, i);
        snprintf(net->ip[i], sizeof net->ip[i], "10.231.%d.%u", net->subnet,
                 i + 1);
    }
    net->made = true;
    char cidr[NET_IP_BYTES + 4];
    snprintf(cidr, sizeof cidr, "%s/24", net->host_ip);
    if (ip_run(false, "link", "add", net->bridge, "type", "bridge", NULL) != 0 ||
        ip_run(false, "addr", "add", cidr, "dev", net->bridge, NULL) != 0 ||
        ip_run(false, "link", "set", net->bridge, "up", NULL) != 0) {
        net_teardown(net);
        return why_set(why, why_len, "cannot make bridge %s", net->bridge);
    }
    for (unsigned i = 0; i < n; i++) {
        if (node_setup(net, i) != 0) {
            net_teardown(net);
            return why_set(why, why_len, "cannot make namespace %s",
                           net->ns[i]);
        }
    }
    return 0;
}

void net_teardown(struct net *net)
{
    if (!net->made) {
        return;
    }
    for (unsigned i = 0; i < net->n; i++) {
        /* Deleting a namespace deletes the veth pair with it. */
        ip_run(true, "netns", "del", net->ns[i], NULL);
        ip_run(true, "link", "del", net->veth[i], NULL);
    }
    ip_run(true, "link", "del", net->bridge, NULL);
    net->made = false;
}

/* iptables of Debian's package, in /usr/sbin, which a test's PATH may
 * lack; `ip netns exec` runs it in a node's namespace. */
static const char *iptables_bin(void)
{
    return access("/usr/sbin/iptables", X_OK) == 0 ? "/usr/sbin/iptables"
                                                   : "iptables";
}

/* In node a's namespace: drop what comes from and goes to b's address. */
static int drop_peer(struct net *net, unsigned a, unsigned b, bool add)
{
    const char *ipt = iptables_bin(), *op = add ? "-I" : "-D";
    const char *ns = net->ns[a], *peer = net->ip[b];
    int rv = ip_run(false, "netns", "exec", ns, ipt, "-w", op, "INPUT", "-s",
                    peer, "-j", "DROP", NULL);
    rv |= ip_run(false, "netns", "exec", ns, ipt, "-w", op, "OUTPUT", "-d",
                 peer, "-j", "DROP", NULL);
    return rv;
}

/* In node a's namespace: drop everything but its loopback. */
static int drop_all(struct net *net, unsigned a, bool add)
{
    const char *ipt = iptables_bin(), *op = add ? "-I" : "-D";
    const char *ns = net->ns[a];
    int rv = ip_run(false, "netns", "exec", ns, ipt, "-w", op, "INPUT", "!",
                    "-i", "lo", "-j", "DROP", NULL);
    rv |= ip_run(false, "netns", "exec", ns, ipt, "-w", op, "OUTPUT", "!",
                 "-o", "lo", "-j", "DROP", NULL);
    return rv;
}

int net_cut(struct net *net, unsigned a, unsigned b)
{
    if (a >= net->n || b >= net->n || a == b || net->cut[a][b]) {
        return a != b && a < net->n && b < net->n ? 0 : -1;
    }
    int rv = drop_peer(net, a, b, true);
    net->cut[a][b] = true; /* heal removes what part of it made */
    if (rv == 0) {
        rv = drop_peer(net, b, a, true);
        net->cut[b][a] = true;
    }
    return rv == 0 ? 0 : -1;
}

int net_isolate(struct net *net, unsigned a)
{
    if (a >= net->n) {
        return -1;
    }
    if (net->down[a]) {
        return 0;
    }
    int rv = drop_all(net, a, true);
    net->down[a] = true;
    return rv == 0 ? 0 : -1;
}

int net_heal(struct net *net)
{
    int rv = 0;
    for (unsigned a = 0; a < net->n; a++) {
        for (unsigned b = 0; b < net->n; b++) {
            if (net->cut[a][b]) {
                rv |= drop_peer(net, a, b, false);
                net->cut[a][b] = false;
            }
        }
        if (net->down[a]) {
            rv |= drop_all(net, a, false);
            net->down[a] = false;
        }
    }
    return rv == 0 ? 0 : -1;
}

/* The pid in "mcf<pid><tag>..." when name is one of ours, else 0. */
static pid_t owner_of(const char *name)
{
    if (strncmp(name, NET_PREFIX, strlen(NET_PREFIX)) != 0) {
        return 0;
    }
    char *end;
    long pid = strtol(name + strlen(NET_PREFIX), &end, 10);
    if (pid <= 0 || end == name + strlen(NET_PREFIX) ||
        strchr("bvpn", *end) == NULL || *end == '\0') {
        return 0;
    }
    return (pid_t)pid;
}

static bool runs(pid_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}

static void sweep_dir(const char *dir, bool netns)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        pid_t pid = owner_of(e->d_name);
        if (pid == 0 || runs(pid)) {
            continue;
        }
        fprintf(stderr, "net: removing %s %s left by process %d\n",
                netns ? "namespace" : "link", e->d_name, (int)pid);
        if (netns) {
            ip_run(true, "netns", "del", e->d_name, NULL);
        } else {
            ip_run(true, "link", "del", e->d_name, NULL);
        }
    }
    closedir(d);
}

void net_sweep(void)
{
    if (geteuid() != 0) {
        return;
    }
    sweep_dir("/run/netns", true);
    sweep_dir("/sys/class/net", false);
}
