/* proxy: raft links through a user-space TCP proxy. See proxy.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fault/proxy.h"

#define POLL_MS 100
#define HANDSHAKE_ID_END 16u /* u64 protocol, u64 server id */

struct pconn {
    bool used;
    bool connected; /* out's connect completed */
    int in, out;    /* from the dialing node; to the listening node */
    int dst, src;   /* node indexes; src -1 until the handshake shows it */
    uint8_t head[HANDSHAKE_ID_END];
    size_t head_len;
    uint8_t *buf[2]; /* [0] in -> out, [1] out -> in */
    size_t len[2];
};

struct proxy {
    pthread_t thread;
    pthread_mutex_t mu;
    bool cut[PROXY_NODES_MAX][PROXY_NODES_MAX]; /* under mu */
    bool stop;                                  /* under mu */
    int wake[2];
    unsigned n, ports;
    int to[PROXY_NODES_MAX];
    int lfd[PROXY_NODES_MAX * PROXY_PORTS_MAX];
    struct pconn conns[PROXY_CONNS_MAX];
};

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        fprintf(stderr, "proxy: listen on %d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void conn_close(struct pconn *c)
{
    if (!c->used) {
        return;
    }
    close(c->in);
    close(c->out);
    free(c->buf[0]);
    free(c->buf[1]);
    memset(c, 0, sizeof *c);
}

static void conn_accept(struct proxy *p, unsigned l)
{
    int in = accept4(p->lfd[l], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (in < 0) {
        return;
    }
    struct pconn *c = NULL;
    for (unsigned i = 0; i < PROXY_CONNS_MAX && c == NULL; i++) {
        c = p->conns[i].used ? NULL : &p->conns[i];
    }
    int out = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c == NULL || out < 0) {
        close(in);
        if (out >= 0) {
            close(out);
        }
        return;
    }
    unsigned dst = l / p->ports, k = l % p->ports;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)(p->to[dst] + (int)k)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(out, (struct sockaddr *)&a, sizeof a) != 0 &&
        errno != EINPROGRESS) {
        close(in);
        close(out);
        return;
    }
    *c = (struct pconn){.used = true,
                        .in = in,
                        .out = out,
                        .dst = (int)dst,
                        .src = -1,
                        .buf = {malloc(PROXY_BUF_BYTES),
                                malloc(PROXY_BUF_BYTES)}};
    if (c->buf[0] == NULL || c->buf[1] == NULL) {
        conn_close(c);
    }
}

/* Learn the sender from the first bytes it sent. */
static void conn_learn(struct proxy *p, struct pconn *c, const uint8_t *data,
                       size_t len)
{
    while (c->head_len < HANDSHAKE_ID_END && len > 0) {
        c->head[c->head_len++] = *data++;
        len--;
    }
    if (c->src < 0 && c->head_len == HANDSHAKE_ID_END) {
        uint64_t id = 0;
        for (int i = 7; i >= 0; i--) {
            id = id << 8 | c->head[8 + i];
        }
        /* An id that names no node (not a raft peer of ours): never
         * cut. */
        c->src = id >= 1 && id <= p->n ? (int)id - 1 : -2;
    }
}

/* Move what fd has into buf of direction d; false on EOF or error. */
static bool conn_read(struct proxy *p, struct pconn *c, int d)
{
    int fd = d == 0 ? c->in : c->out;
    ssize_t got = read(fd, c->buf[d] + c->len[d], PROXY_BUF_BYTES - c->len[d]);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        return true;
    }
    if (got <= 0) {
        return false;
    }
    if (d == 0) {
        conn_learn(p, c, c->buf[d] + c->len[d], (size_t)got);
    }
    c->len[d] += (size_t)got;
    return true;
}

static bool conn_write(struct pconn *c, int d)
{
    int fd = d == 0 ? c->out : c->in;
    ssize_t put = send(fd, c->buf[d], c->len[d], MSG_NOSIGNAL);
    if (put < 0 && (errno == EAGAIN || errno == EINTR)) {
        return true;
    }
    if (put <= 0) {
        return false;
    }
    memmove(c->buf[d], c->buf[d] + put, c->len[d] - (size_t)put);
    c->len[d] -= (size_t)put;
    return true;
}

/* One poll round's events of c: fds[0] is in, fds[1] is out. */
static bool conn_step(struct proxy *p, struct pconn *c,
                      const struct pollfd *fds)
{
    if (!c->connected && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->out, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            return false; /* the node does not listen: the dialer retries */
        }
        c->connected = true;
    }
    bool ok = true;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        ok = ok && conn_read(p, c, 0);
    }
    if (c->connected && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        ok = ok && conn_read(p, c, 1);
    }
    if (c->connected && c->len[0] > 0) {
        ok = ok && conn_write(c, 0);
    }
    if (c->len[1] > 0) {
        ok = ok && conn_write(c, 1);
    }
    return ok;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    unsigned n_l = p->n * p->ports;
    static _Thread_local struct pollfd fds[1 + PROXY_NODES_MAX *
                                               PROXY_PORTS_MAX +
                                           2 * PROXY_CONNS_MAX];
    for (;;) {
        bool cut[PROXY_NODES_MAX][PROXY_NODES_MAX];
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        memcpy(cut, p->cut, sizeof cut);
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            break;
        }
        /* Cut links close, whatever they carry. */
        for (unsigned i = 0; i < PROXY_CONNS_MAX; i++) {
            struct pconn *c = &p->conns[i];
            if (c->used && c->src >= 0 && cut[c->src][c->dst]) {
                conn_close(c);
            }
        }
        size_t k = 0;
        fds[k++] = (struct pollfd){p->wake[0], POLLIN, 0};
        for (unsigned l = 0; l < n_l; l++) {
            fds[k++] = (struct pollfd){p->lfd[l], POLLIN, 0};
        }
        for (unsigned i = 0; i < PROXY_CONNS_MAX; i++) {
            struct pconn *c = &p->conns[i];
            short ein = 0, eout = 0;
            if (c->used) {
                ein = (short)((c->len[0] < PROXY_BUF_BYTES ? POLLIN : 0) |
                              (c->len[1] > 0 ? POLLOUT : 0));
                eout = (short)(!c->connected ? POLLOUT
                               : (c->len[1] < PROXY_BUF_BYTES ? POLLIN : 0) |
                                     (c->len[0] > 0 ? POLLOUT : 0));
            }
            fds[k++] = (struct pollfd){c->used ? c->in : -1, ein, 0};
            fds[k++] = (struct pollfd){c->used ? c->out : -1, eout, 0};
        }
        if (poll(fds, k, POLL_MS) < 0 && errno != EINTR) {
            break;
        }
        if (fds[0].revents & POLLIN) {
            char drain[64];
            while (read(p->wake[0], drain, sizeof drain) > 0) {
            }
        }
        for (unsigned l = 0; l < n_l; l++) {
            if (fds[1 + l].revents & POLLIN) {
                conn_accept(p, l);
            }
        }
        for (unsigned i = 0; i < PROXY_CONNS_MAX; i++) {
            struct pconn *c = &p->conns[i];
            const struct pollfd *cf = &fds[1 + n_l + 2 * i];
            if (c->used && cf[0].fd == c->in && !conn_step(p, c, cf)) {
                conn_close(c);
            }
        }
    }
    return NULL;
}

struct proxy *proxy_start(unsigned n, unsigned ports, const int *from,
                          const int *to)
{
    if (n == 0 || n > PROXY_NODES_MAX || ports == 0 ||
        ports > PROXY_PORTS_MAX) {
        fprintf(stderr, "proxy: %u nodes of %u ports\n", n, ports);
        return NULL;
    }
    struct proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->n = n;
    p->ports = ports;
    pthread_mutex_init(&p->mu, NULL);
    for (unsigned l = 0; l < n * ports; l++) {
        p->lfd[l] = -1;
    }
    bool ok = pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == 0;
    for (unsigned i = 0; ok && i < n; i++) {
        p->to[i] = to[i];
        for (unsigned k = 0; ok && k < ports; k++) {
            p->lfd[i * ports + k] = listen_on(from[i] + (int)k);
            ok = p->lfd[i * ports + k] >= 0;
        }
    }
    if (ok && pthread_create(&p->thread, NULL, proxy_main, p) == 0) {
        return p;
    }
    for (unsigned l = 0; l < n * ports; l++) {
        if (p->lfd[l] >= 0) {
            close(p->lfd[l]);
        }
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

static void wake(struct proxy *p)
{
    (void)!write(p->wake[1], "w", 1); /* a full pipe is awake already */
}

int proxy_cut(struct proxy *p, unsigned a, unsigned b)
{
    if (p == NULL || a >= p->n || b >= p->n || a == b) {
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->cut[a][b] = p->cut[b][a] = true;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return 0;
}

int proxy_heal(struct proxy *p)
{
    if (p == NULL) {
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    memset(p->cut, 0, sizeof p->cut);
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return 0;
}

void proxy_stop(struct proxy *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < PROXY_CONNS_MAX; i++) {
        conn_close(&p->conns[i]);
    }
    for (unsigned l = 0; l < p->n * p->ports; l++) {
        close(p->lfd[l]);
    }
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
