/* harness: memcoord nodes and memcoordctl runs for the integration tests.
 * See harness.h for the contract. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>

#include "tests/lib/harness.h"

/* Raft ports are drawn from below Linux's ephemeral range (32768-60999),
 * so that outgoing connections of other tests cannot take them between
 * our check and the node's bind. */
#define RAFT_PORT_LO 20000
#define RAFT_PORT_HI 32000
#define RAFT_PORT_TRIES 200
#define POLL_MS 20
#define RAW_RECV_BYTES_MAX (64u << 20)

static struct mc_node_proc *started[HARNESS_NODES_MAX];

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : fallback;
}

/* ---- ports ---- */

/* Bind 127.0.0.1:port (0 = any); returns the port bound, or -1. */
static int port_probe(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int got = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0) {
        got = ntohs(a.sin_port);
    }
    close(fd);
    return got;
}

/* Ranges handed out, by every test process, in a registry file of
 * "PID LO HI" lines read and written under the ports lock. Probing alone
 * cannot keep nodes apart: the nodes of one cluster are all picked before
 * any of them binds, and a node killed for a restart leaves its ports
 * free until it comes back. A range is held while its process lives. */
#define PORTS_REGISTRY_PATH "/tmp/memcoord-harness-ports.reg"
#define PORTS_REGISTRY_MAX 4096

struct port_range {
    long pid;
    int lo, hi;
};

/* The live ranges of the registry into r[0..max); returns how many. */
static unsigned registry_read(struct port_range *r, unsigned max)
{
    FILE *f = fopen(PORTS_REGISTRY_PATH, "r");
    unsigned n = 0;
    if (f == NULL) {
        return 0;
    }
    struct port_range e;
    while (n < max && fscanf(f, "%ld %d %d", &e.pid, &e.lo, &e.hi) == 3) {
        if (kill((pid_t)e.pid, 0) == 0 || errno == EPERM) {
            r[n++] = e;
        }
    }
    fclose(f);
    return n;
}

static struct port_range reg[PORTS_REGISTRY_MAX];

static bool picked_overlaps(int lo, int hi)
{
    unsigned n = registry_read(reg, PORTS_REGISTRY_MAX);
    for (unsigned i = 0; i < n; i++) {
        if (lo < reg[i].hi && reg[i].lo < hi) {
            return true;
        }
    }
    return false;
}

/* Add [lo, hi) for this process, dropping the ranges of dead ones. */
static void picked_add(int lo, int hi)
{
    unsigned n = registry_read(reg, PORTS_REGISTRY_MAX - 1);
    reg[n++] = (struct port_range){(long)getpid(), lo, hi};
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.%ld", PORTS_REGISTRY_PATH, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        fprintf(f, "%ld %d %d\n", reg[i].pid, reg[i].lo, reg[i].hi);
    }
    if (fclose(f) != 0 || rename(tmp, PORTS_REGISTRY_PATH) != 0) {
        unlink(tmp);
    }
}

static int raft_ports_pick(unsigned count)
{
    static unsigned seed;
    if (seed == 0) {
        seed = (unsigned)getpid() ^ (unsigned)harness_now_ms();
    }
    for (int t = 0; t < RAFT_PORT_TRIES; t++) {
        int base = RAFT_PORT_LO +
                   (int)(rand_r(&seed) % (unsigned)(RAFT_PORT_HI -
                                                    RAFT_PORT_LO - count));
        if (picked_overlaps(base, base + (int)count)) {
            continue;
        }
        unsigned ok = 0;
        while (ok < count && port_probe(base + (int)ok) > 0) {
            ok++;
        }
        if (ok == count) {
            picked_add(base, base + (int)count);
            return base;
        }
    }
    return -1;
}

void harness_key_in_shard(const char *ns, uint32_t n_shards,
                          const char *prefix, uint32_t shard, char *key,
                          size_t len)
{
    for (unsigned i = 0;; i++) {
        snprintf(key, len, "%s/%u", prefix, i);
        uint32_t slot = proto_slot((const uint8_t *)ns, strlen(ns),
                                   (const uint8_t *)key, strlen(key));
        if (proto_shard_of_slot(slot, n_shards) == shard) {
            return;
        }
    }
}

/* Ports are picked by probing and bound only when the node runs raft_start;
 * test processes that run at once (Criterion's jobs, several suites) could
 * pick the same ports in between. A node whose raft port another test's
 * node holds may even talk raft to that foreign node. So picking and
 * binding happen under one lock shared by every test process. */
#define PORTS_LOCK_PATH "/tmp/memcoord-harness-ports.lock"
#define PORTS_BOUND_MS 10000

static int ports_lock(void)
{
    int fd = open(PORTS_LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
        close(fd);
        fd = -1;
    }
    return fd; /* -1: no lock, go on unprotected */
}

static void ports_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

/* Raft ports a node listens on: the meta group's, then one per loop (the
 * shards' raft transport, a lane per loop thread). Picked for one per
 * shard, which the ports of the lanes never outnumber. */
static unsigned raft_ports_of(const struct mc_node_proc *n)
{
    return 1 + n->n_shards;
}

static unsigned raft_ports_bound(const struct mc_node_proc *n)
{
    return 1 + (n->n_loops < n->n_shards ? n->n_loops : n->n_shards);
}

/* Whether some socket listens on TCP port (IPv4), from /proc/net/tcp. A
 * probe by bind() would race with the node's own bind of the port: while
 * the probe holds it, the node's listen fails with EADDRINUSE. */
static bool port_listening(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL) {
        return false;
    }
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        unsigned local_port, state;
        /* "  sl  local_address rem_address   st ...": 0A is LISTEN. */
        if (sscanf(line, " %*u: %*x:%x %*x:%*x %x", &local_port, &state) == 2 &&
            (int)local_port == port && state == 0x0A) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Wait until node n holds every raft port it was given, or has exited. */
static void ports_wait_bound(const struct mc_node_proc *n)
{
    if (n->netns[0] != '\0') {
        return; /* its own namespace: no other test can take its ports */
    }
    int base = n->raft_bind_port > 0 ? n->raft_bind_port : n->raft_port;
    int64_t deadline = harness_now_ms() + PORTS_BOUND_MS;
    for (unsigned i = 0;
         i < raft_ports_bound(n) && harness_now_ms() < deadline;) {
        if (n->pid == 0 || kill(n->pid, 0) != 0) {
            return;
        }
        if (port_listening(base + (int)i)) {
            i++; /* by the node, since nobody else picks under lock */
        } else {
            harness_pause_ms(POLL_MS);
        }
    }
}

/* ---- processes ---- */

static void track(struct mc_node_proc *n)
{
    for (unsigned i = 0; i < HARNESS_NODES_MAX; i++) {
        if (started[i] == n) {
            return;
        }
    }
    for (unsigned i = 0; i < HARNESS_NODES_MAX; i++) {
        if (started[i] == NULL) {
            started[i] = n;
            return;
        }
    }
    fprintf(stderr, "harness: more than %u nodes in one test\n",
            HARNESS_NODES_MAX);
    abort();
}

/* In the child: die with the test process, then exec argv with its
 * output going to log. Never returns. */
static void child_exec(pid_t parent, const char *log, const char *netns,
                       char *const *argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(127); /* the parent died before prctl took effect */
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 && netns[0] != '\0') {
        /* What `ip netns exec NAME` does, minus its /sys remount, which
         * the node does not need; the pid stays the node's. */
        char path[HARNESS_PATH_BYTES_MAX];
        snprintf(path, sizeof path, "/run/netns/%s", netns);
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
            dprintf(fd, "harness: enter namespace %s: %s\n", netns,
                    strerror(errno));
            _exit(127);
        }
        close(ns);
    }
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || null < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
        dup2(fd, STDERR_FILENO) < 0 || dup2(null, STDIN_FILENO) < 0) {
        _exit(127);
    }
    execv(argv[0], argv);
    dprintf(STDERR_FILENO, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int node_spawn(struct mc_node_proc *n)
{
    char listen[HARNESS_URL_BYTES_MAX];
    char raft[32], bind[32];
    snprintf(listen, sizeof listen, "tcp://%s:%d", n->host, n->port);
    snprintf(raft, sizeof raft, "%s:%d", n->host, n->raft_port);
    snprintf(bind, sizeof bind, "%s:%d", n->host, n->raft_bind_port);
    const char *bin = env_or("MEMCOORD_BIN", "build/memcoord");
    const char *fixed[] = {bin,           "--data",         n->dir,
                           "--listen",    listen,           "--raft-addr",
                           raft,          "--election-ms",  "300",
                           "--heartbeat-ms", "30",          "--log-level",
                           "info"};
    char *argv[sizeof fixed / sizeof fixed[0] + HARNESS_EXTRA_ARGS_MAX + 3];
    size_t k = 0;
    for (; k < sizeof fixed / sizeof fixed[0]; k++) {
        argv[k] = (char *)fixed[k];
    }
    for (size_t i = 0; n->extra[i] != NULL; i++) {
        argv[k++] = n->extra[i];
    }
    if (n->raft_bind_port > 0) {
        argv[k++] = "--raft-bind";
        argv[k++] = bind;
    }
    argv[k] = NULL;
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "harness: %s is not an executable: %s\n", bin,
                strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        child_exec(parent, n->log, n->netns, argv);
    }
    n->pid = pid;
    track(n);
    return 0;
}

/* The NULL-terminated variadic arguments into args (room for
 * HARNESS_EXTRA_ARGS_MAX + 1); -1 when there are too many. */
static int args_collect(va_list ap, const char **args)
{
    size_t k = 0;
    for (const char *a = va_arg(ap, const char *); a != NULL;
         a = va_arg(ap, const char *)) {
        if (k == HARNESS_EXTRA_ARGS_MAX) {
            fprintf(stderr, "harness: more than %u extra arguments\n",
                    HARNESS_EXTRA_ARGS_MAX);
            return -1;
        }
        args[k++] = a;
    }
    args[k] = NULL;
    return 0;
}

static int extra_copy(struct mc_node_proc *n, const char *const *args)
{
    n->n_shards = 8;
    n->n_loops = 2;
    size_t k = 0;
    for (const char *a; (a = args[k]) != NULL;) {
        if (k == HARNESS_EXTRA_ARGS_MAX) {
            fprintf(stderr, "harness: more than %u extra arguments\n",
                    HARNESS_EXTRA_ARGS_MAX);
            return -1;
        }
        n->extra[k] = strdup(a);
        if (k > 0 && strcmp(n->extra[k - 1], "--shards") == 0) {
            n->n_shards = (unsigned)atoi(a);
        }
        if (k > 0 && strcmp(n->extra[k - 1], "--loops") == 0) {
            n->n_loops = (unsigned)atoi(a);
        }
        k++;
    }
    n->extra[k] = NULL;
    return n->n_shards > 0 ? 0 : -1;
}

static int dir_make(struct mc_node_proc *n)
{
    const char *root = env_or("MEMCOORD_TEST_DIR", "/tmp/memcoord-test");
    if (strlen(root) > HARNESS_PATH_BYTES_MAX - 32) {
        fprintf(stderr, "harness: MEMCOORD_TEST_DIR is too long\n");
        return -1;
    }
    char path[HARNESS_PATH_BYTES_MAX];
    snprintf(path, sizeof path, "%s", root);
    /* mkdir -p of the root: each component in turn. */
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            (void)mkdir(path, 0755); /* exists already, most of the time */
            *p = '/';
        }
    }
    (void)mkdir(path, 0755);
    snprintf(n->dir, sizeof n->dir, "%s/node-%d-XXXXXX", root, (int)getpid());
    if (mkdtemp(n->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", n->dir, strerror(errno));
        return -1;
    }
    snprintf(n->log, sizeof n->log, "%s/node.log", n->dir);
    return 0;
}

static int ports_pick(struct mc_node_proc *n)
{
    if (n->netns[0] != '\0') {
        /* A namespace of its own: nobody else binds there. */
        n->port = HARNESS_NET_PORT;
        n->raft_port = HARNESS_NET_RAFT_PORT;
        n->raft_bind_port = n->raft_bind_apart ? HARNESS_NET_RAFT_BIND_PORT
                                               : 0;
        snprintf(n->url, sizeof n->url, "tcp://%s:%d", n->host, n->port);
        return 0;
    }
    if (n->raft_bind_apart) {
        n->raft_bind_port = raft_ports_pick(raft_ports_of(n));
        if (n->raft_bind_port <= 0) {
            fprintf(stderr, "harness: no free ports\n");
            return -1;
        }
    }
    /* The kernel may hand the same free port to two probes in a row. */
    do {
        n->port = port_probe(0);
    } while (n->port > 0 && picked_overlaps(n->port, n->port + 1));
    if (n->port > 0) {
        picked_add(n->port, n->port + 1);
    }
    n->raft_port = raft_ports_pick(raft_ports_of(n));
    if (n->port <= 0 || n->raft_port <= 0) {
        fprintf(stderr, "harness: no free ports\n");
        return -1;
    }
    snprintf(n->url, sizeof n->url, "tcp://%s:%d", n->host, n->port);
    return 0;
}

int harness_node_start(struct mc_node_proc *n, ...)
{
    memset(n, 0, sizeof *n);
    snprintf(n->host, sizeof n->host, "127.0.0.1");
    const char *args[HARNESS_EXTRA_ARGS_MAX + 1];
    va_list ap;
    va_start(ap, n);
    int rv = args_collect(ap, args);
    va_end(ap);
    if (rv == 0) {
        rv = extra_copy(n, args);
    }
    if (rv != 0 || dir_make(n) != 0) {
        return -1;
    }
    int lock = ports_lock();
    rv = ports_pick(n) == 0 ? node_spawn(n) : -1;
    if (rv == 0) {
        ports_wait_bound(n);
    }
    ports_unlock(lock);
    n->fresh = true;
    return rv;
}

/* Pick every member's ports, then start each with the whole member list.
 * The extra arguments are already in nodes[i].extra. */
static int cluster_spawn(struct mc_node_proc *nodes, unsigned count)
{
    static char list[HARNESS_NODES_MAX * (HARNESS_URL_BYTES_MAX + 40)];
    size_t used = 0;
    for (unsigned i = 0; i < count; i++) {
        struct mc_node_proc *n = &nodes[i];
        if (ports_pick(n) != 0) {
            return -1;
        }
        used += (size_t)snprintf(list + used, sizeof list - used,
                                 "%s%u=%s@%s:%d", i ? "," : "", i + 1,
                                 n->url, n->host, n->raft_port);
    }
    for (unsigned i = 0; i < count; i++) {
        struct mc_node_proc *n = &nodes[i];
        size_t k = 0;
        while (n->extra[k] != NULL) {
            k++;
        }
        if (k + 4 > HARNESS_EXTRA_ARGS_MAX) {
            fprintf(stderr, "harness: too many extra arguments\n");
            return -1;
        }
        char id[16];
        snprintf(id, sizeof id, "%u", i + 1);
        n->extra[k++] = strdup("--node-id");
        n->extra[k++] = strdup(id);
        n->extra[k++] = strdup("--initial-cluster");
        n->extra[k++] = strdup(list);
        n->extra[k] = NULL;
        /* Not fresh: a member cannot move to other ports on a retry. */
        if (node_spawn(n) != 0) {
            return -1;
        }
    }
    return 0;
}

static int cluster_start(struct mc_node_proc *nodes, unsigned count,
                         const struct harness_place *places,
                         const char *const *args)
{
    if (count == 0 || count > HARNESS_NODES_MAX) {
        fprintf(stderr, "harness: a cluster of %u nodes\n", count);
        return -1;
    }
    for (unsigned i = 0; i < count; i++) {
        struct mc_node_proc *n = &nodes[i];
        memset(n, 0, sizeof *n);
        const struct harness_place *p = places != NULL ? &places[i] : NULL;
        if (p != NULL && p->netns != NULL && p->netns[0] != '\0' &&
            (p->ip == NULL || p->ip[0] == '\0')) {
            fprintf(stderr, "harness: a node in a namespace needs an ip\n");
            return -1;
        }
        if (p != NULL && p->netns != NULL) {
            snprintf(n->netns, sizeof n->netns, "%s", p->netns);
        }
        snprintf(n->host, sizeof n->host, "%s",
                 p != NULL && p->ip != NULL ? p->ip : "127.0.0.1");
        n->raft_bind_apart = p != NULL && p->raft_bind_apart;
        if (extra_copy(n, args) != 0 || dir_make(n) != 0) {
            return -1;
        }
    }
    int lock = ports_lock();
    int rv = cluster_spawn(nodes, count);
    for (unsigned i = 0; rv == 0 && i < count; i++) {
        ports_wait_bound(&nodes[i]);
    }
    ports_unlock(lock);
    return rv;
}

int harness_cluster_start(struct mc_node_proc *nodes, unsigned count, ...)
{
    const char *args[HARNESS_EXTRA_ARGS_MAX + 1];
    va_list ap;
    va_start(ap, count);
    int rv = args_collect(ap, args);
    va_end(ap);
    return rv == 0 ? cluster_start(nodes, count, NULL, args) : -1;
}

int harness_cluster_start_at(struct mc_node_proc *nodes, unsigned count,
                             const struct harness_place *places, ...)
{
    const char *args[HARNESS_EXTRA_ARGS_MAX + 1];
    va_list ap;
    va_start(ap, places);
    int rv = args_collect(ap, args);
    va_end(ap);
    return rv == 0 ? cluster_start(nodes, count, places, args) : -1;
}

int harness_node_restart(struct mc_node_proc *n)
{
    if (n->pid != 0) {
        fprintf(stderr, "harness: restart of a node that runs\n");
        return -1;
    }
    return node_spawn(n);
}

static int exit_code(int wstatus)
{
    if (WIFEXITED(wstatus)) {
        return WEXITSTATUS(wstatus);
    }
    return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : -1;
}

/* Reap pid within timeout_ms; returns its exit code, or -1 if it runs. */
static int reap(pid_t pid, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int wstatus;
        pid_t got = waitpid(pid, &wstatus, WNOHANG);
        if (got == pid) {
            return exit_code(wstatus);
        }
        if (got < 0 && errno != EINTR) {
            return -1;
        }
        if (harness_now_ms() >= deadline) {
            return -1;
        }
        harness_pause_ms(5);
    }
}

int harness_node_stop(struct mc_node_proc *n, int sig)
{
    if (n->pid == 0) {
        return -1;
    }
    kill(n->pid, sig);
    int code = reap(n->pid, HARNESS_STOP_MS);
    if (code < 0) {
        fprintf(stderr, "harness: node %d ignored signal %d; killing it\n",
                (int)n->pid, sig);
        kill(n->pid, SIGKILL);
        reap(n->pid, HARNESS_STOP_MS);
        code = -1;
    }
    n->pid = 0;
    return code;
}

int harness_node_wait_exit(struct mc_node_proc *n, int timeout_ms)
{
    if (n->pid == 0) {
        return -1;
    }
    int code = reap(n->pid, timeout_ms);
    if (code >= 0) {
        n->pid = 0;
    }
    return code;
}

void harness_node_log_tail(const struct mc_node_proc *n, unsigned lines)
{
    FILE *f = fopen(n->log, "r");
    if (f == NULL) {
        fprintf(stderr, "harness: no log at %s\n", n->log);
        return;
    }
    static char buf[64 * 1024];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *p = buf + got;
    for (unsigned k = 0; p > buf && k <= lines;) {
        p--;
        if (*p == '\n') {
            k++;
        }
    }
    fprintf(stderr, "---- tail of %s ----\n%s\n----\n", n->log, p);
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    size_t len = strlen(path);
    bool is_log = len >= 9 && strcmp(path + len - 9, "/node.log") == 0;
    if (ftw->level > 0 && !is_log) {
        (void)remove(path); /* best effort: a leftover costs only disk */
    }
    return 0;
}

void harness_fini(void)
{
    bool keep = getenv("MEMCOORD_TEST_KEEP") != NULL;
    for (unsigned i = 0; i < HARNESS_NODES_MAX; i++) {
        struct mc_node_proc *n = started[i];
        if (n == NULL) {
            continue;
        }
        if (n->pid != 0) {
            harness_node_stop(n, SIGKILL);
        }
        if (!keep && n->dir[0] != '\0') {
            nftw(n->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
        for (size_t k = 0; n->extra[k] != NULL; k++) {
            free(n->extra[k]);
            n->extra[k] = NULL;
        }
        started[i] = NULL;
    }
}

/* ---- raw nng ---- */

/* The raw path speaks SP over TCP by hand instead of through an nng req
 * socket: nng 1.5.2's nng_close can hang for good when the peer resets a
 * connection while it closes (nng PR #1636, fixed after 1.5.2), which is
 * just what a test of oversized or garbage messages provokes. Plain
 * sockets with SO_RCVTIMEO keep every wait bounded.
 *
 * The wire (nng src/sp/transport/tcp): each side first sends 0 'S' 'P' 0,
 * its protocol number (u16 BE: req 0x30, rep 0x31) and two zero bytes;
 * then each message is a u64 BE length, the request id (u32 BE, high bit
 * set) and the body. */
#define SP_REQ0 0x30
#define SP_REP0 0x31

static int errno_to_nng(int e)
{
    switch (e) {
    case EAGAIN:
        return NNG_ETIMEDOUT;
    case ECONNREFUSED:
        return NNG_ECONNREFUSED;
    case ECONNRESET:
    case EPIPE:
        return NNG_ECONNRESET;
    default:
        return NNG_ESYSERR + e;
    }
}

/* All of buf, or an nng error (NNG_ECONNSHUT at end of stream). */
static int io_full(int fd, void *buf, size_t len, bool writing)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL)
                            : recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno_to_nng(errno);
        }
        if (n == 0) {
            return NNG_ECONNSHUT;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8) {
        p[i] = (uint8_t)v;
    }
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static int sp_connect(const char *url, int timeout_ms, int *out)
{
    int port;
    char ip[16];
    struct in_addr addr;
    if (sscanf(url, "tcp://%15[0-9.]:%d", ip, &port) != 2 ||
        inet_pton(AF_INET, ip, &addr) != 1) {
        return NNG_EADDRINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errno_to_nng(errno);
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr = addr};
    uint8_t hello[8] = {0, 'S', 'P', 0, 0, SP_REQ0, 0, 0};
    uint8_t peer[8];
    int rv = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        rv = errno_to_nng(errno);
    }
    if (rv == 0) {
        rv = io_full(fd, hello, sizeof hello, true);
    }
    if (rv == 0) {
        rv = io_full(fd, peer, sizeof peer, false);
    }
    if (rv == 0 && (memcmp(peer, "\0SP\0", 4) != 0 ||
                    get_be(peer + 4, 2) != SP_REP0)) {
        rv = NNG_EPROTO;
    }
    if (rv != 0) {
        close(fd);
        return rv;
    }
    *out = fd;
    return 0;
}

int harness_raw_call(const char *url, const void *msg, size_t len,
                     int timeout_ms, void **reply, size_t *reply_len)
{
    int fd = -1;
    int rv = sp_connect(url, timeout_ms, &fd);
    if (rv != 0) {
        return rv;
    }
    uint8_t head[12];
    put_be(head, len + 4, 8);
    put_be(head + 8, 0x80000001u, 4);
    rv = io_full(fd, head, sizeof head, true);
    if (rv == 0) {
        rv = io_full(fd, (void *)msg, len, true);
    }
    if (rv == 0) {
        rv = io_full(fd, head, sizeof head, false);
    }
    uint64_t n = get_be(head, 8);
    if (rv == 0 && (n < 4 || n - 4 > RAW_RECV_BYTES_MAX ||
                    get_be(head + 8, 4) != 0x80000001u)) {
        rv = NNG_EPROTO;
    }
    if (rv == 0) {
        *reply_len = (size_t)(n - 4);
        *reply = malloc(*reply_len > 0 ? *reply_len : 1);
        rv = io_full(fd, *reply, *reply_len, false);
        if (rv != 0) {
            free(*reply);
        }
    }
    close(fd);
    return rv;
}

int harness_raw_request(const char *url, const Mcpb__Request *req,
                        int timeout_ms, Mcpb__Response **out)
{
    void *frame;
    size_t frame_len;
    if (proto_frame_encode(&req->base, PROTO_REQUEST, NULL, &frame,
                           &frame_len) != MC_OK) {
        return -1;
    }
    void *reply;
    size_t reply_len;
    int rv = harness_raw_call(url, frame, frame_len, timeout_ms, &reply,
                              &reply_len);
    mc_free(frame);
    if (rv != 0) {
        return rv;
    }
    char err[160];
    mc_err code = proto_response_decode(reply, reply_len, out, err, sizeof err);
    free(reply);
    if (code != MC_OK) {
        fprintf(stderr, "harness: bad answer from %s: %s\n", url, err);
        return -1;
    }
    return 0;
}

static bool status_ready(const struct mc_node_proc *n, int timeout_ms)
{
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_STATUS;
    Mcpb__Response *r;
    if (harness_raw_request(n->url, &req, timeout_ms, &r) != 0) {
        return false;
    }
    /* A node serves only once every shard placed on it is open, so the
     * shards it reports are all it will host (fewer than n_shards on a
     * cluster with more nodes than replicas). */
    bool ready = r->code == MC_OK && r->status != NULL &&
                 r->status->n_shards > 0 &&
                 r->status->n_shards <= n->n_shards;
    for (size_t i = 0; ready && i < r->status->n_shards; i++) {
        ready = r->status->shards[i]->leader_id != 0;
    }
    mcpb__response__free_unpacked(r, NULL);
    return ready;
}

/* A fresh node died before it was ever ready: start it over on other
 * ports in an emptied folder (its raft files name the old address). */
static int node_respawn(struct mc_node_proc *n, int code)
{
    FILE *log = fopen(n->log, "a");
    if (log != NULL) {
        fprintf(log, "harness: node exited with %d before ready; starting "
                     "again on other ports\n", code);
        fclose(log);
    }
    nftw(n->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (ports_pick(n) != 0) {
        return -1;
    }
    return node_spawn(n);
}

int harness_node_wait_ready(struct mc_node_proc *n, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    int tries = 1;
    while (harness_now_ms() < deadline) {
        int wstatus;
        if (n->pid != 0 && waitpid(n->pid, &wstatus, WNOHANG) == n->pid) {
            int code = exit_code(wstatus);
            n->pid = 0;
            if (n->fresh && tries < HARNESS_START_TRIES &&
                node_respawn(n, code) == 0) {
                tries++;
                continue;
            }
            fprintf(stderr, "harness: node exited with %d before ready\n",
                    code);
            harness_node_log_tail(n, 30);
            return -1;
        }
        int64_t left = deadline - harness_now_ms();
        if (status_ready(n, left < 500 ? (int)left + 1 : 500)) {
            n->fresh = false;
            return 0;
        }
        harness_pause_ms(POLL_MS);
    }
    fprintf(stderr, "harness: node at %s not ready within %d ms\n", n->url,
            timeout_ms);
    harness_node_log_tail(n, 30);
    return -1;
}

/* ---- memcoordctl ---- */

struct capture {
    char *buf;
    size_t len, cap;
};

static void capture_add(struct capture *c, const char *data, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = '\0';
}

static void ctl_child(int in, int out, int err, const char *const *args,
                      const char *const *env)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
        dup2(err, STDERR_FILENO) < 0) {
        _exit(127);
    }
    unsetenv("MEMCOORD_ENDPOINTS");
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        putenv((char *)env[i]);
    }
    const char *bin = env_or("MEMCOORDCTL_BIN", "build/memcoordctl");
    const char *argv[64];
    size_t k = 0;
    argv[k++] = bin;
    for (size_t i = 0; args[i] != NULL && k < 63; i++) {
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    execv(bin, (char *const *)argv);
    dprintf(STDERR_FILENO, "harness: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

/* Feed in to fds[0], drain fds[1] and fds[2] until both close. */
static void ctl_pump(int fds[3], const void *in, size_t in_len,
                     struct capture cap[2], int64_t deadline)
{
    size_t sent = 0;
    if (in_len == 0) {
        close(fds[0]);
        fds[0] = -1;
    }
    while ((fds[1] >= 0 || fds[2] >= 0) && harness_now_ms() < deadline) {
        struct pollfd p[3] = {{fds[0], POLLOUT, 0},
                              {fds[1], POLLIN, 0},
                              {fds[2], POLLIN, 0}};
        if (poll(p, 3, POLL_MS) < 0 && errno != EINTR) {
            break;
        }
        if (fds[0] >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(fds[0], (const char *)in + sent, in_len - sent);
            if (w > 0) {
                sent += (size_t)w;
            }
            if (w < 0 || sent == in_len) {
                close(fds[0]);
                fds[0] = -1;
            }
        }
        for (int i = 1; i < 3; i++) {
            if (fds[i] >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buf[65536];
                ssize_t r = read(fds[i], buf, sizeof buf);
                if (r > 0) {
                    capture_add(&cap[i - 1], buf, (size_t)r);
                } else if (r == 0 || errno != EINTR) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            }
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

int harness_ctl_exec(const char *const *args, const char *const *env,
                     const void *in, size_t in_len, struct harness_ctl_out *r)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    signal(SIGPIPE, SIG_IGN); /* a ctl that exits early must not kill us */
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) != 0 || pipe2(pout, O_CLOEXEC) != 0 ||
        pipe2(perr, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        ctl_child(pin[0], pout[1], perr[1], args, env);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    int fds[3] = {pin[1], pout[0], perr[0]};
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    struct capture cap[2] = {{0}};
    capture_add(&cap[0], "", 0);
    capture_add(&cap[1], "", 0);
    ctl_pump(fds, in, in_len, cap, harness_now_ms() + HARNESS_CTL_MS);
    int code = reap(pid, 1000);
    if (code < 0) {
        fprintf(stderr, "harness: memcoordctl hung; killing it\n");
        kill(pid, SIGKILL);
        reap(pid, HARNESS_STOP_MS);
    }
    r->status = code;
    r->out = cap[0].buf;
    r->out_len = cap[0].len;
    r->err = cap[1].buf;
    r->err_len = cap[1].len;
    return code;
}

void harness_ctl_out_fini(struct harness_ctl_out *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

int harness_run_ctl(const struct mc_node_proc *n, const char *stdin_data,
                    char **out, char **err, ...)
{
    const char *args[48];
    size_t k = 0;
    args[k++] = "--endpoints";
    args[k++] = n->url;
    va_list ap;
    va_start(ap, err);
    for (const char *a = va_arg(ap, const char *); a != NULL && k < 47;
         a = va_arg(ap, const char *)) {
        args[k++] = a;
    }
    va_end(ap);
    args[k] = NULL;
    struct harness_ctl_out r;
    int code = harness_ctl_exec(args, NULL, stdin_data,
                                stdin_data != NULL ? strlen(stdin_data) : 0,
                                &r);
    if (out != NULL) {
        *out = r.out;
        r.out = NULL;
    }
    if (err != NULL) {
        *err = r.err;
        r.err = NULL;
    }
    harness_ctl_out_fini(&r);
    return code;
}
