/* Configuration of the daemon: one table of options, read from a
 * `key = value` file (--config) and from flags of the same names; flags win.
 * Every option is checked here, so the rest of the node can trust it. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node.h"

enum opt_type { OPT_STR, OPT_U32, OPT_U64, OPT_LEVEL };

struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    size_t size;    /* OPT_STR: buffer size */
    uint64_t min, max;
    const char *help;
};

#define FIELD_SIZE(f) sizeof(((struct node_config *)0)->f)
#define STR(n, f, h) {n, OPT_STR, offsetof(struct node_config, f), FIELD_SIZE(f), 0, 0, h}
#define NUM(n, t, f, lo, hi, h) {n, t, offsetof(struct node_config, f), 0, lo, hi, h}

static const struct opt opts[] = {
    STR("data", data, "DIR   data folder (required)"),
    STR("listen", listen, "URL    client address [tcp://127.0.0.1:7400]"),
    STR("raft-addr", raft_addr,
        "IP:PORT raft address of the meta group; the shards of loop k use "
        "PORT+1+k [127.0.0.1:7500]"),
    STR("raft-bind", raft_bind,
        "IP:PORT where the raft listeners bind, when peers dial another "
        "address (NAT, a proxy): loop k on PORT+1+k [the --raft-addr]"),
    NUM("node-id", OPT_U64, node_id, 1, UINT32_MAX, "N     node id [1]"),
    NUM("shards", OPT_U32, shards, 1, MC_SHARDS_MAX, "N      shard groups of a new cluster [8]"),
    NUM("loops", OPT_U32, loops, 1, MC_LOOPS_MAX,
        "N       loop threads of a new data folder, the same on every "
        "node [2]"),
    NUM("contexts", OPT_U32, contexts, 1, MC_FRONTEND_CTX_MAX,
        "N    requests in flight [256]"),
    NUM("election-ms", OPT_U32, election_ms, 50, 60000,
        "N raft election timeout [500]"),
    NUM("heartbeat-ms", OPT_U32, heartbeat_ms, 10, 10000,
        "N raft heartbeat [50]"),
    NUM("snapshot-threshold", OPT_U32, snapshot_threshold, 16, 1u << 24,
        "N entries between snapshots [16384]"),
    NUM("snapshot-trailing", OPT_U32, snapshot_trailing, 0, 1u << 24,
        "N entries kept after a snapshot [2048]"),
    NUM("value-max", OPT_U64, value_max, 1, MC_VALUE_BYTES_MAX,
        "BYTES largest value [1048576]"),
    NUM("log-level", OPT_LEVEL, log_level, 0, 0,
        "L   error|warn|info|debug [info]"),
    NUM("replicas", OPT_U32, replicas, 1, MC_REPLICAS_MAX,
        "N replicas of each shard of a new cluster, capped at the "
        "members [3]"),
    NUM("list-scan-max", OPT_U32, list_scan_max, 1, MC_LIST_SCAN_MAX,
        "N records a list with a pattern examines per shard and page "
        "[50000]"),
    NUM("watch-ring", OPT_U32, watch_ring, 1, MC_WATCH_RING_EVENTS_MAX,
        "N  events each shard keeps for watches, the same on every node "
        "[100000]"),
    STR("initial-cluster", initial_cluster,
        "LIST ID=URL@IP:PORT,... every member (this node included); "
        "IP:PORT is its --raft-addr [this node only]"),
};

static void config_defaults(struct node_config *cfg)
{
    *cfg = (struct node_config){
        .node_id = 1,
        .shards = MC_SHARDS_DEFAULT,
        .loops = 2,
        .contexts = MC_FRONTEND_CTX_DEFAULT,
        /* Half of raft's defaults: memcoord clusters live on one LAN, and
         * with 1000/100 a dead leader cost a median 1.9 s and up to 3.2 s of
         * writes to its shards (bench/failover.sh), 500/50 a median 0.9 s
         * and at most 1.9 s. Raise both on slower networks. */
        .election_ms = 500,
        .heartbeat_ms = 50,
        .snapshot_threshold = MC_SNAPSHOT_THRESHOLD_DEFAULT,
        .snapshot_trailing = MC_SNAPSHOT_TRAILING_DEFAULT,
        .value_max = MC_VALUE_BYTES_MAX,
        .log_level = LOG_LEVEL_INFO,
        .replicas = MC_REPLICAS_DEFAULT,
        .list_scan_max = MC_LIST_SCAN_DEFAULT,
        .watch_ring = MC_WATCH_RING_EVENTS_DEFAULT,
    };
    strcpy(cfg->listen, "tcp://127.0.0.1:7400");
    strcpy(cfg->raft_addr, "127.0.0.1:7500");
}

void node_config_usage(FILE *out)
{
    fprintf(out, "usage: memcoord --data DIR [options]\n"
                 "Starts a memcoord node; alone it is a single-node cluster.\n"
                 "Every option may also be given as `name = value` in the\n"
                 "file of --config FILE; flags win over the file.\n\n");
    /* Each help text is "ARG description": align the descriptions. */
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *h = opts[i].help;
        int arg_len = (int)strcspn(h, " ");
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %.*s", opts[i].name, arg_len, h);
        fprintf(out, "  %-28s %s\n", flag, h + arg_len + strspn(h + arg_len, " "));
    }
    fprintf(out, "  %-28s %s\n  %-28s %s\n", "--config FILE",
            "read options from FILE", "--help", "this text");
}

static const struct opt *opt_find(const char *name)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (strcmp(opts[i].name, name) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static mc_err opt_set(struct node_config *cfg, const struct opt *o,
                      const char *val, char *err, size_t err_len)
{
    char *field = (char *)cfg + o->offset;
    if (o->type == OPT_STR) {
        if (strlen(val) >= o->size || val[0] == '\0') {
            base_errf(err, err_len, "--%s: value is empty or too long", o->name);
            return MC_INVALID_ARGUMENT;
        }
        strcpy(field, val);
        return MC_OK;
    }
    if (o->type == OPT_LEVEL) {
        if (!base_log_level_parse(val, (int *)(void *)field)) {
            base_errf(err, err_len, "--%s: '%s' is not error, warn, info or debug",
                      o->name, val);
            return MC_INVALID_ARGUMENT;
        }
        return MC_OK;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || val[0] == '-' ||
        v < o->min || v > o->max) {
        base_errf(err, err_len, "--%s: '%s' is not a number from %llu to %llu",
                  o->name, val, (unsigned long long)o->min,
                  (unsigned long long)o->max);
        return MC_INVALID_ARGUMENT;
    }
    if (o->type == OPT_U32) {
        *(uint32_t *)(void *)field = (uint32_t)v;
    } else {
        *(uint64_t *)(void *)field = v;
    }
    return MC_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                     e[-1] == '\r')) {
        *--e = '\0';
    }
    return s;
}

static mc_err config_file_read(struct node_config *cfg, const char *path,
                               char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        base_errf(err, err_len, "--config %s: %s", path, strerror(errno));
        return MC_INVALID_ARGUMENT;
    }
    char line[1024];
    mc_err rv = MC_OK;
    for (unsigned no = 1; rv == MC_OK && fgets(line, sizeof line, f); no++) {
        char *s = trim(line);
        if (*s == '\0' || *s == '#') {
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            base_errf(err, err_len, "%s:%u: expected `name = value`", path, no);
            rv = MC_INVALID_ARGUMENT;
            break;
        }
        *eq = '\0';
        const char *name = trim(s);
        const struct opt *o = opt_find(name);
        if (o == NULL) {
            base_errf(err, err_len, "%s:%u: unknown option '%s'", path, no, name);
            rv = MC_INVALID_ARGUMENT;
            break;
        }
        rv = opt_set(cfg, o, trim(eq + 1), err, err_len);
    }
    fclose(f);
    return rv;
}

static const struct meta_member *config_member(const struct node_config *cfg,
                                               uint64_t id)
{
    for (uint32_t i = 0; i < cfg->n_members; i++) {
        if (cfg->members[i].id == id) {
            return &cfg->members[i];
        }
    }
    return NULL;
}

/* "a.b.c.d:port" with room for the shards' ports above port (the meta
 * group's). */
static bool raft_addr_parse(const char *s, uint32_t shards, char ip[16],
                            uint32_t *port)
{
    struct in_addr a;
    unsigned p;
    char tail;
    return sscanf(s, "%15[0-9.]:%u%c", ip, &p, &tail) == 2 &&
           inet_pton(AF_INET, ip, &a) == 1 && p > 0 && p + 1 + shards <= 65536 &&
           (*port = p, true);
}

static int member_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct meta_member *)a)->id;
    uint64_t y = ((const struct meta_member *)b)->id;
    return (x > y) - (x < y);
}

/* One entry ID=URL@IP:PORT into m. */
static mc_err member_parse(char *entry, const struct node_config *cfg,
                           struct meta_member *m, char *err, size_t err_len)
{
    char *eq = strchr(entry, '=');
    char *at = eq ? strrchr(eq, '@') : NULL;
    char *end;
    if (eq == NULL || at == NULL) {
        base_errf(err, err_len, "--initial-cluster: '%s' is not ID=URL@IP:PORT",
                  entry);
        return MC_INVALID_ARGUMENT;
    }
    *eq = *at = '\0';
    errno = 0;
    unsigned long long id = strtoull(entry, &end, 10);
    if (errno != 0 || *end != '\0' || id == 0 || id > UINT32_MAX) {
        base_errf(err, err_len, "--initial-cluster: bad node id '%s'", entry);
        return MC_INVALID_ARGUMENT;
    }
    m->id = id;
    if (strlen(eq + 1) == 0 || strlen(eq + 1) >= sizeof m->url) {
        base_errf(err, err_len, "--initial-cluster: node %llu has no URL", id);
        return MC_INVALID_ARGUMENT;
    }
    strcpy(m->url, eq + 1);
    if (!raft_addr_parse(at + 1, cfg->shards, m->raft_ip, &m->raft_port)) {
        base_errf(err, err_len,
                  "--initial-cluster: node %llu raft address '%s' must be a "
                  "numeric IPv4 a.b.c.d:port with room for %u ports",
                  id, at + 1, cfg->shards + 1);
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
}

/* Fill members from --initial-cluster, or this node alone. The list is
 * authoritative for this node's own addresses. */
static mc_err members_parse(struct node_config *cfg, char *err, size_t err_len)
{
    cfg->n_members = 0;
    if (cfg->initial_cluster[0] == '\0') {
        struct meta_member *m = &cfg->members[0];
        m->id = cfg->node_id;
        strcpy(m->url, cfg->listen);
        raft_addr_parse(cfg->raft_addr, cfg->shards, m->raft_ip, &m->raft_port);
        cfg->n_members = 1;
    } else {
        char list[sizeof cfg->initial_cluster];
        strcpy(list, cfg->initial_cluster);
        char *save = NULL;
        for (char *e = strtok_r(list, ",", &save); e != NULL;
             e = strtok_r(NULL, ",", &save)) {
            if (cfg->n_members == MC_NODES_MAX) {
                base_errf(err, err_len, "--initial-cluster: more than %u nodes",
                          MC_NODES_MAX);
                return MC_INVALID_ARGUMENT;
            }
            mc_err rv = member_parse(e, cfg, &cfg->members[cfg->n_members],
                                     err, err_len);
            if (rv != MC_OK) {
                return rv;
            }
            cfg->n_members++;
        }
    }
    qsort(cfg->members, cfg->n_members, sizeof cfg->members[0], member_cmp);
    for (uint32_t i = 0; i < cfg->n_members; i++) {
        if (i > 0 && cfg->members[i].id == cfg->members[i - 1].id) {
            base_errf(err, err_len, "--initial-cluster: node %llu twice",
                      (unsigned long long)cfg->members[i].id);
            return MC_INVALID_ARGUMENT;
        }
    }
    const struct meta_member *self = config_member(cfg, cfg->node_id);
    if (self == NULL) {
        base_errf(err, err_len, "--initial-cluster does not name --node-id %llu",
                  (unsigned long long)cfg->node_id);
        return MC_INVALID_ARGUMENT;
    }
    strcpy(cfg->listen, self->url);
    snprintf(cfg->raft_addr, sizeof cfg->raft_addr, "%s:%u", self->raft_ip,
             self->raft_port);
    return MC_OK;
}

static mc_err config_check(struct node_config *cfg, char *err,
                           size_t err_len)
{
    if (cfg->data[0] == '\0') {
        base_errf(err, err_len, "--data DIR is required");
        return MC_INVALID_ARGUMENT;
    }
    char ip[16];
    uint32_t port;
    if (!raft_addr_parse(cfg->raft_addr, cfg->shards, ip, &port)) {
        /* raft 0.15 takes numeric IPv4 only (DEPS-NOTES.md, raft 6). */
        base_errf(err, err_len,
                  "--raft-addr '%s' must be a numeric IPv4 a.b.c.d:port with "
                  "room for %u ports", cfg->raft_addr, cfg->shards + 1);
        return MC_INVALID_ARGUMENT;
    }
    if (cfg->raft_bind[0] != '\0' &&
        !raft_addr_parse(cfg->raft_bind, cfg->shards, cfg->raft_bind_at.raft_ip,
                         &cfg->raft_bind_at.raft_port)) {
        base_errf(err, err_len,
                  "--raft-bind '%s' must be a numeric IPv4 a.b.c.d:port with "
                  "room for %u ports", cfg->raft_bind, cfg->shards + 1);
        return MC_INVALID_ARGUMENT;
    }
    if (cfg->heartbeat_ms >= cfg->election_ms) {
        base_errf(err, err_len, "--heartbeat-ms must be below --election-ms");
        return MC_INVALID_ARGUMENT;
    }
    return members_parse(cfg, err, err_len);
}

mc_err node_config_parse(int argc, char **argv, struct node_config *cfg,
                         bool *help, char *err, size_t err_len)
{
    config_defaults(cfg);
    *help = false;
    /* The file first, so that flags override it. */
    for (int i = 1; i < argc - 1; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            mc_err rv = config_file_read(cfg, argv[i + 1], err, err_len);
            if (rv != MC_OK) {
                return rv;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return MC_OK;
        }
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            base_errf(err, err_len, "unexpected argument '%s'", a);
            return MC_INVALID_ARGUMENT;
        }
        const char *val = argv[++i];
        if (strcmp(a, "--config") == 0) {
            continue;
        }
        const struct opt *o = opt_find(a + 2);
        if (o == NULL) {
            base_errf(err, err_len, "unknown option '%s'", a);
            return MC_INVALID_ARGUMENT;
        }
        mc_err rv = opt_set(cfg, o, val, err, err_len);
        if (rv != MC_OK) {
            return rv;
        }
    }
    return config_check(cfg, err, err_len);
}
