/* memcoordctl: the command line. Options and commands are tables: an
 * option may stand anywhere on the line, and each command names the options
 * it takes, so a misplaced one is a usage error rather than ignored. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char usage_text[] =
    "usage: memcoordctl [--endpoints URL,...] [-n NAMESPACE] [-o text|json]\n"
    "                   [--timeout DURATION] COMMAND [ARGS] [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  put KEY VALUE|-   store VALUE; '-' reads it from stdin (binary-safe)\n"
    "                    [--expect-version N] [--tier short|mid|long]\n"
    "                    [--ttl DURATION]\n"
    "  get KEY           print the value [--meta] [--serializable]\n"
    "  del KEY           delete the key [--expect-version N]\n"
    "  ls [PREFIX|PATTERN]\n"
    "                    list keys in byte order, across all shards; an\n"
    "                    argument with an unescaped % or _ is a SQL LIKE\n"
    "                    pattern: % any run, _ one character, \\ escapes\n"
    "                    ('swarm/%/status'); else a prefix\n"
    "                    [--limit N] [--keys-only] [--serializable]\n"
    "                    [--prefix | --like]\n"
    "  txn               a transaction from stdin: compares, a blank line,\n"
    "                    the operations when they all hold, a blank line,\n"
    "                    the operations otherwise (or JSON, see below)\n"
    "                    [--json]\n"
    "  status            the cluster: every node, every shard\n"
    "  shard transfer-leader SHARD [--to NODE]\n"
    "                    move a shard's leadership (default: to the most\n"
    "                    up-to-date other replica)\n"
    "  watch KEY|PREFIX  print each change of KEY (with --prefix, of every\n"
    "                    key under PREFIX) as it applies, until Ctrl-C\n"
    "                    [--prefix] [--rev N]\n"
    "  wait KEY          wait until KEY exists, then print its value\n"
    "                    [--equals VALUE] [--version N] [--meta]\n"
    "\n"
    "options:\n"
    "  --endpoints URL,...  nodes to ask, tried in turn (default: $"
    CTL_ENDPOINTS_ENV ",\n"
    "                       else " CTL_ENDPOINTS_DEFAULT ")\n"
    "  -n, --namespace NS   namespace (default: " CTL_NS_DEFAULT ")\n"
    "  -o, --output FORMAT  text (default) or json\n"
    "  --timeout DURATION   per command, retries included (default: 5s);\n"
    "                       wait: how long to wait (default: 30s)\n"
    "  --expect-version N   write only if the key is at version N; 0: only\n"
    "                       if it does not exist\n"
    "  --tier T             short (working memory, default TTL 1h), mid\n"
    "                       (episodic, 7d) or long (permanent, no TTL)\n"
    "  --ttl DURATION       time to live, e.g. 30s, 5m, 2h, 7d, 1h30m, 500ms\n"
    "  --limit N            ls: print at most N keys (default: all)\n"
    "  --keys-only          ls: keys without values\n"
    "  --meta               get, wait: print the metadata after the value\n"
    "  --serializable       get, ls: read a node's copy without a raft\n"
    "                       barrier (faster, may be slightly stale)\n"
    "  --prefix             ls: the argument is a prefix, % and _ included;\n"
    "                       watch: KEY is a prefix (\"\" = the namespace)\n"
    "  --like               ls: the argument is a LIKE pattern\n"
    "  --json               txn: stdin is JSON (also when it starts with {)\n"
    "  --rev N              watch: start after revision N (a put's\n"
    "                       mod_rev; per shard) instead of now\n"
    "  --equals VALUE       wait: until KEY holds exactly VALUE\n"
    "  --version N          wait: until KEY is at version N or later\n"
    "                       (wait waits for --timeout, default 30s, and\n"
    "                       fails with TIMEOUT when it runs out)\n"
    "  -h, --help           this text\n"
    "  --                   end of options (for a KEY or VALUE that starts\n"
    "                       with '-')\n"
    "\n"
    "text output:\n"
    "  put, del    OK version=N create_rev=N mod_rev=N\n"
    "  get         the value's bytes as stored, then a newline; with --meta\n"
    "              then one line each: key=, version=, create_rev=,\n"
    "              mod_rev=, tier=, expires_at=, updated_at= (UTC or never)\n"
    "  ls          KEY<TAB>VERSION<TAB>TIER<TAB>VALUE per key, the value on\n"
    "              one line: \\\\, \\n, \\t, \\r as such, other control bytes\n"
    "              and bytes that are not UTF-8 as \\xNN; --keys-only: KEY\n"
    "  status      a line per node (up or DOWN), then per shard: slots,\n"
    "              leader, term, each replica's applied index, lag, records\n"
    "  watch       TYPE<TAB>KEY<TAB>VERSION<TAB>REVISION<TAB>TIER<TAB>VALUE\n"
    "              per event (put, delete, expire, promote), the value as\n"
    "              in ls; wait prints as get does\n"
    "\n"
    "txn input, in three blocks separated by blank lines:\n"
    "  version(\"k\") = 3      version: = != < > (0 when missing)\n"
    "  value(\"k\") = \"v\"      value: = !=\n"
    "  exists(\"k\")  missing(\"k\")\n"
    "  (blank line)\n"
    "  put k \"v\" [--tier T] [--ttl D]   del k   get k\n"
    "  (blank line)\n"
    "  put k v ...  (the else operations)\n"
    "  keys and values: bare words or \"quoted\" (\\\" \\\\ \\n \\t \\xNN);\n"
    "  # starts a comment line. All keys in one shard: share a {tag}.\n"
    "  JSON: {\"compare\": [{\"key\", \"target\": exists|missing|version|value,\n"
    "  \"op\", \"version\", \"value\"}], \"then\": [{\"op\": put|del|get, \"key\",\n"
    "  \"value\", \"tier\", \"ttl\"}], \"else\": [...]}\n"
    "  prints THEN or ELSE revision=N, then a line per operation:\n"
    "  put|del KEY OK version=N create_rev=N mod_rev=N, get KEY OK version=N\n"
    "  tier=T value=V, or OP KEY NOT_FOUND; exit 0 whichever branch ran.\n"
    "\n"
    "json output (-o json): one object per line: per record for get and ls\n"
    "  {key, value | value_b64 (bytes that are not UTF-8), version,\n"
    "  create_rev, mod_rev, tier, expires_at, updated_at (ms since the\n"
    "  epoch, 0 = never)}; for put and del {key, version, create_rev,\n"
    "  mod_rev}; watch per event {type, key, value | value_b64, version,\n"
    "  revision, shard, seq, create_rev, tier, expires_at, updated_at};\n"
    "  status as one object {nodes, shards}; txn as one object\n"
    "  {succeeded, branch, revision, results: [{op, key, code, version,\n"
    "  create_rev, mod_rev | record}]}.\n"
    "\n"
    "errors go to stderr: \"error: CODE: message\", with -o json\n"
    "  {\"error\": CODE, \"message\": ..., \"version\": N}.\n"
    "exit status: 0 success, 1 error, 2 usage error.\n";

static int usage_error(const char *fmt, const char *what)
{
    fputs("memcoordctl: ", stderr);
    fprintf(stderr, fmt, what);
    fputs("\n\n", stderr);
    fputs(usage_text, stderr);
    return CTL_EXIT_USAGE;
}

/* ---- options ---- */

typedef bool (*opt_parse_fn)(struct ctl *x, const char *arg);

static bool opt_endpoints(struct ctl *x, const char *arg)
{
    x->endpoints = arg;
    return arg[0] != '\0';
}

static bool opt_namespace(struct ctl *x, const char *arg)
{
    x->ns = arg; /* the library checks it and says what is wrong */
    return true;
}

static bool opt_output(struct ctl *x, const char *arg)
{
    if (strcmp(arg, "text") == 0) {
        x->output = CTL_OUTPUT_TEXT;
    } else if (strcmp(arg, "json") == 0) {
        x->output = CTL_OUTPUT_JSON;
    } else {
        return false;
    }
    return true;
}

static bool opt_timeout(struct ctl *x, const char *arg)
{
    uint64_t ms;
    if (!ctl_parse_duration_ms(arg, &ms) || ms == 0 || ms > INT32_MAX) {
        return false;
    }
    x->timeout_ms = (int)ms;
    return true;
}

static bool opt_expect_version(struct ctl *x, const char *arg)
{
    uint64_t v;
    if (!ctl_parse_u64(arg, INT64_MAX, &v)) {
        return false;
    }
    x->expect_version = (int64_t)v;
    return true;
}

static bool opt_tier(struct ctl *x, const char *arg)
{
    return mc_tier_parse(arg, &x->tier);
}

static bool opt_ttl(struct ctl *x, const char *arg)
{
    return ctl_parse_duration_ms(arg, &x->ttl_ms) && x->ttl_ms > 0;
}

static bool opt_limit(struct ctl *x, const char *arg)
{
    return ctl_parse_u64(arg, UINT64_MAX, &x->limit) && x->limit > 0;
}

static bool opt_keys_only(struct ctl *x, const char *arg)
{
    x->keys_only = true;
    return true;
}

static bool opt_serializable(struct ctl *x, const char *arg)
{
    x->serializable = true;
    return true;
}

static bool opt_meta(struct ctl *x, const char *arg)
{
    x->meta = true;
    return true;
}

static bool opt_prefix(struct ctl *x, const char *arg)
{
    x->force_prefix = true;
    return true;
}

static bool opt_like(struct ctl *x, const char *arg)
{
    x->force_like = true;
    return true;
}

static bool opt_json(struct ctl *x, const char *arg)
{
    x->json_input = true;
    return true;
}

static bool opt_help(struct ctl *x, const char *arg)
{
    return true;
}

struct option_def {
    const char *name; /* after "--" */
    char short_name;  /* after "-"; 0 = none */
    bool takes_arg;
    enum ctl_opt_bit bit;
    opt_parse_fn parse;
};

static bool opt_to(struct ctl *x, const char *arg)
{
    return ctl_parse_u64(arg, UINT32_MAX, &x->to_node) && x->to_node > 0;
}

static bool opt_rev(struct ctl *x, const char *arg)
{
    return ctl_parse_u64(arg, INT64_MAX, &x->rev);
}

static bool opt_equals(struct ctl *x, const char *arg)
{
    x->equals = arg;
    return true;
}

static bool opt_version(struct ctl *x, const char *arg)
{
    return ctl_parse_u64(arg, UINT64_MAX, &x->version) && x->version > 0;
}

static const struct option_def options[] = {
    {"endpoints", 0, true, CTL_OPT_ENDPOINTS, opt_endpoints},
    {"namespace", 'n', true, CTL_OPT_NAMESPACE, opt_namespace},
    {"output", 'o', true, CTL_OPT_OUTPUT, opt_output},
    {"timeout", 0, true, CTL_OPT_TIMEOUT, opt_timeout},
    {"expect-version", 0, true, CTL_OPT_EXPECT_VERSION, opt_expect_version},
    {"tier", 0, true, CTL_OPT_TIER, opt_tier},
    {"ttl", 0, true, CTL_OPT_TTL, opt_ttl},
    {"limit", 0, true, CTL_OPT_LIMIT, opt_limit},
    {"keys-only", 0, false, CTL_OPT_KEYS_ONLY, opt_keys_only},
    {"serializable", 0, false, CTL_OPT_SERIALIZABLE, opt_serializable},
    {"meta", 0, false, CTL_OPT_META, opt_meta},
    {"to", 0, true, CTL_OPT_TO, opt_to},
    {"prefix", 0, false, CTL_OPT_PREFIX, opt_prefix},
    {"like", 0, false, CTL_OPT_LIKE, opt_like},
    {"json", 0, false, CTL_OPT_JSON, opt_json},
    {"rev", 0, true, CTL_OPT_REV, opt_rev},
    {"equals", 0, true, CTL_OPT_EQUALS, opt_equals},
    {"version", 0, true, CTL_OPT_VERSION, opt_version},
    {"help", 'h', false, CTL_OPT_HELP, opt_help},
};

/* The option named by arg ("--name", "--name=value" or "-n"); *inline_arg
 * is the part after '=', if any. */
static const struct option_def *option_find(const char *arg,
                                            const char **inline_arg)
{
    *inline_arg = NULL;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const struct option_def *o = &options[i];
        if (arg[1] != '-') {
            if (o->short_name != 0 && arg[1] == o->short_name &&
                arg[2] == '\0') {
                return o;
            }
            continue;
        }
        size_t n = strlen(o->name);
        if (strncmp(arg + 2, o->name, n) == 0) {
            if (arg[2 + n] == '\0') {
                return o;
            }
            if (arg[2 + n] == '=' && o->takes_arg) {
                *inline_arg = arg + 3 + n;
                return o;
            }
        }
    }
    return NULL;
}

/* Fill x from argv; returns CTL_EXIT_OK or CTL_EXIT_USAGE. */
static int parse_line(struct ctl *x, int argc, char **argv)
{
    bool options_end = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_end && strcmp(arg, "--") == 0) {
            options_end = true;
            continue;
        }
        if (options_end || arg[0] != '-' || arg[1] == '\0') {
            if (x->command == NULL) {
                x->command = arg;
            } else if (x->n_args == CTL_ARGS_MAX) {
                return usage_error("unexpected argument '%s'", arg);
            } else {
                x->args[x->n_args++] = arg;
            }
            continue;
        }
        const char *value;
        const struct option_def *o = option_find(arg, &value);
        if (o == NULL) {
            return usage_error("unknown option '%s'", arg);
        }
        if (o->takes_arg && value == NULL) {
            if (i + 1 == argc) {
                return usage_error("option '%s' needs a value", arg);
            }
            value = argv[++i];
        }
        if (!o->parse(x, value)) {
            return usage_error("bad value for option '%s'", arg);
        }
        x->given |= o->bit;
    }
    return CTL_EXIT_OK;
}

/* ---- commands ---- */

struct command_def {
    const char *name;
    unsigned args_min, args_max;
    unsigned opts; /* enum ctl_opt_bit it takes beyond the global ones */
    int (*run)(struct ctl *x);
};

static const struct command_def commands[] = {
    {"put", 2, 2, CTL_OPT_EXPECT_VERSION | CTL_OPT_TIER | CTL_OPT_TTL,
     ctl_cmd_put},
    {"get", 1, 1, CTL_OPT_META | CTL_OPT_SERIALIZABLE, ctl_cmd_get},
    {"del", 1, 1, CTL_OPT_EXPECT_VERSION, ctl_cmd_del},
    {"ls", 0, 1,
     CTL_OPT_LIMIT | CTL_OPT_KEYS_ONLY | CTL_OPT_SERIALIZABLE |
         CTL_OPT_PREFIX | CTL_OPT_LIKE,
     ctl_cmd_ls},
    {"txn", 0, 0, CTL_OPT_JSON, ctl_cmd_txn},
    {"status", 0, 0, 0, ctl_cmd_status},
    {"shard", 2, 2, CTL_OPT_TO, ctl_cmd_shard},
    {"watch", 1, 1, CTL_OPT_PREFIX | CTL_OPT_REV, ctl_cmd_watch},
    {"wait", 1, 1, CTL_OPT_EQUALS | CTL_OPT_VERSION | CTL_OPT_META,
     ctl_cmd_wait},
};

static const struct command_def *command_find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* The first option given that cmd does not take, or NULL. */
static const char *option_misplaced(const struct ctl *x,
                                    const struct command_def *cmd)
{
    unsigned extra = x->given & ~(CTL_OPTS_GLOBAL | cmd->opts);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (extra & options[i].bit) {
            return options[i].name;
        }
    }
    return NULL;
}

static int run(struct ctl *x, const struct command_def *cmd)
{
    mc_options opts = {.timeout_ms = x->timeout_ms};
    mc_result res;
    mc_err rv = mc_client_open(x->endpoints, &opts, &x->client, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    int status = cmd->run(x);
    mc_client_close(x->client);
    x->client = NULL;
    return ctl_finish(x, status);
}

int main(int argc, char **argv)
{
    struct ctl x = {
        .ns = CTL_NS_DEFAULT,
        .output = CTL_OUTPUT_TEXT,
        .expect_version = MC_VERSION_ANY,
        .tier = MC_TIER_DEFAULT,
    };
    const char *env = getenv(CTL_ENDPOINTS_ENV);
    x.endpoints = env != NULL && env[0] != '\0' ? env : CTL_ENDPOINTS_DEFAULT;

    int status = parse_line(&x, argc, argv);
    if (status != CTL_EXIT_OK) {
        return status;
    }
    if (x.given & CTL_OPT_HELP) {
        fputs(usage_text, stdout);
        return ctl_finish(&x, CTL_EXIT_OK);
    }
    if (x.command == NULL) {
        return usage_error("%s", "no command given");
    }
    const struct command_def *cmd = command_find(x.command);
    if (cmd == NULL) {
        return usage_error("unknown command '%s'", x.command);
    }
    if (x.n_args < cmd->args_min || x.n_args > cmd->args_max) {
        return usage_error("wrong number of arguments for '%s'", cmd->name);
    }
    const char *misplaced = option_misplaced(&x, cmd);
    if (misplaced != NULL) {
        return usage_error("option '--%s' does not apply to this command",
                           misplaced);
    }
    if (x.force_prefix && x.force_like) {
        return usage_error("%s", "give --prefix or --like, not both");
    }
    return run(&x, cmd);
}
