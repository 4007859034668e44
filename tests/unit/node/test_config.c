/* node_config_parse: defaults, flags, the --config file, flags winning over
 * the file, and a clear error for every bad option. No I/O but a temporary
 * config file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node/node.h"

static mc_err parse(struct node_config *cfg, char *err, int argc, char **argv)
{
    bool help;
    return node_config_parse(argc, argv, cfg, &help, err, 256);
}

Test(node_config_parse, defaults_are_the_embedded_single_node)
{
    struct node_config cfg;
    char err[256];
    char *argv[] = {"memcoord", "--data", "/tmp/x"};
    cr_assert_eq(parse(&cfg, err, 3, argv), MC_OK, "%s", err);
    cr_assert_str_eq(cfg.listen, "tcp://127.0.0.1:7400");
    cr_assert_str_eq(cfg.raft_addr, "127.0.0.1:7500");
    cr_assert_eq(cfg.shards, MC_SHARDS_DEFAULT);
    cr_assert_eq(cfg.value_max, MC_VALUE_BYTES_MAX);
}

Test(node_config_parse, raft_bind_is_apart_from_the_raft_address)
{
    struct node_config cfg;
    char err[256];
    char *argv[] = {"memcoord", "--data", "/tmp/x", "--raft-addr",
                    "127.0.0.1:7500", "--raft-bind", "127.0.0.2:7600"};
    cr_assert_eq(parse(&cfg, err, 7, argv), MC_OK, "%s", err);
    cr_assert_str_eq(cfg.raft_addr, "127.0.0.1:7500");
    cr_assert_str_eq(cfg.raft_bind_at.raft_ip, "127.0.0.2");
    cr_assert_eq(cfg.raft_bind_at.raft_port, 7600);
}

Test(node_config_parse, data_is_required)
{
    struct node_config cfg;
    char err[256];
    char *argv[] = {"memcoord"};
    cr_assert_eq(parse(&cfg, err, 1, argv), MC_INVALID_ARGUMENT);
    cr_assert(strstr(err, "--data") != NULL, "%s", err);
}

Test(node_config_parse, bad_values_are_named)
{
    struct {
        const char *flag, *value, *needle;
    } cases[] = {
        {"--shards", "0", "--shards"},
        {"--shards", "abc", "--shards"},
        {"--election-ms", "-5", "--election-ms"},
        {"--raft-addr", "localhost:7500", "numeric IPv4"},
        {"--raft-addr", "127.0.0.1:65535", "room for"},
        {"--raft-bind", "localhost:7600", "numeric IPv4"},
        {"--raft-bind", "10.0.0.1:65530", "room for"},
        {"--log-level", "loud", "--log-level"},
        {"--no-such-option", "1", "unknown option"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct node_config cfg;
        char err[256];
        char *argv[] = {"memcoord", "--data", "/tmp/x", (char *)cases[i].flag,
                        (char *)cases[i].value};
        cr_assert_eq(parse(&cfg, err, 5, argv), MC_INVALID_ARGUMENT,
                     "%s %s was accepted", cases[i].flag, cases[i].value);
        cr_assert(strstr(err, cases[i].needle) != NULL, "%s %s: '%s'",
                  cases[i].flag, cases[i].value, err);
    }
}

Test(node_config_parse, file_is_read_and_flags_win)
{
    char path[] = "/tmp/mc-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "# a comment\n"
                       "data = /tmp/from-file\n"
                       "shards = 4\n"
                       "  election-ms = 300  \n"
                       "heartbeat-ms = 30\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct node_config cfg;
    char err[256];
    char *argv[] = {"memcoord", "--config", path, "--shards", "16"};
    mc_err rv = parse(&cfg, err, 5, argv);
    unlink(path);
    cr_assert_eq(rv, MC_OK, "%s", err);
    cr_assert_str_eq(cfg.data, "/tmp/from-file");
    cr_assert_eq(cfg.shards, 16);
    cr_assert_eq(cfg.election_ms, 300);
    cr_assert_eq(cfg.heartbeat_ms, 30);
}

Test(node_config_parse, bad_file_line_names_the_line)
{
    char path[] = "/tmp/mc-config-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "data = /tmp/x\nnot a setting\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct node_config cfg;
    char err[256];
    char *argv[] = {"memcoord", "--config", path};
    mc_err rv = parse(&cfg, err, 3, argv);
    unlink(path);
    cr_assert_eq(rv, MC_INVALID_ARGUMENT);
    cr_assert(strstr(err, ":2:") != NULL, "%s", err);
}

Test(node_config_parse, watch_ring_defaults_and_bounds)
{
    struct node_config cfg;
    char err[256];
    char *argv[] = {"memcoord", "--data", "/tmp/x", "--watch-ring", "4"};
    cr_assert_eq(parse(&cfg, err, 3, argv), MC_OK, "%s", err);
    cr_assert_eq(cfg.watch_ring, MC_WATCH_RING_EVENTS_DEFAULT);
    cr_assert_eq(parse(&cfg, err, 5, argv), MC_OK, "%s", err);
    cr_assert_eq(cfg.watch_ring, 4);
    argv[4] = "0";
    cr_assert_eq(parse(&cfg, err, 5, argv), MC_INVALID_ARGUMENT);
    cr_assert(strstr(err, "--watch-ring") != NULL, "%s", err);
    char over[32];
    snprintf(over, sizeof over, "%u", MC_WATCH_RING_EVENTS_MAX + 1);
    argv[4] = over;
    cr_assert_eq(parse(&cfg, err, 5, argv), MC_INVALID_ARGUMENT);
}
