# memcoord: one Makefile, no recursion (STYLE.md §2.10).
#
#   make            binaries and libmemcoord.{a,so} into build/
#   make test       install missing packages, build, run every test
#   make run        start a local 3-node cluster and run the demo
#   make bench      the benchmark suite on a local cluster (bench/suite.sh)
#   make stop       stop it
#   make asan       the whole suite under ASan + UBSan (build-asan/)
#   make install    PREFIX=/usr/local: binaries, header, libs, memcoord.pc
#   make check-deps fail when a module includes against DESIGN.md §8 order
#   make clean

PREFIX ?= /usr/local
# V=1 shows every command.
Q := $(if $(V),,@)
BUILD ?= build
CC ?= cc
VERSION := 0.1.0

# Debian packages the build and the tests need (DEPS-NOTES.md).
DEB_PACKAGES := build-essential pkg-config libraft-dev libuv1-dev libnng-dev \
                liblmdb-dev libprotobuf-c-dev protobuf-c-compiler \
                libcriterion-dev python3 iproute2 iptables lmdb-utils

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
        -Wstrict-prototypes -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -fPIC -MMD -MP \
              -I. -Iinclude -I$(BUILD)/proto -DMC_VERSION='"$(VERSION)"'
LDLIBS_SERVER := -lraft -luv -lnng -llmdb -lprotobuf-c -lpthread
LDLIBS_CLIENT := -lnng -lprotobuf-c -lpthread

# ---- sources by module (DESIGN.md §8) ----
BASE_SRC := $(wildcard base/*.c)
PROTO_SRC := $(wildcard proto/*.c)
SHARD_SRC := $(wildcard shard/*.c)
CONS_SRC := $(wildcard consensus/*.c)
REPL_SRC := $(wildcard replication/*.c)
NODE_SRC := $(filter-out node/main.c,$(wildcard node/*.c))
CLIENT_SRC := $(wildcard client/*.c)
PB_C := $(BUILD)/proto/memcoord.pb-c.c
PB_H := $(BUILD)/proto/memcoord.pb-c.h

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
PB_OBJ := $(BUILD)/obj/pb/memcoord.pb-c.o
CORE_OBJ := $(call obj,$(BASE_SRC) $(PROTO_SRC)) $(PB_OBJ)
SERVER_OBJ := $(CORE_OBJ) $(call obj,$(SHARD_SRC) $(CONS_SRC) $(REPL_SRC) $(NODE_SRC))
CLIENT_OBJ := $(CORE_OBJ) $(call obj,$(CLIENT_SRC))

BIN_NODE := $(BUILD)/memcoord
BIN_CTL := $(BUILD)/memcoordctl
BIN_BENCH := $(BUILD)/memcoord-bench
LIB_A := $(BUILD)/libmemcoord.a
LIB_SO := $(BUILD)/libmemcoord.so
LIB_SONAME := libmemcoord.so.0

UNIT_SRC := $(wildcard tests/unit/*/*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
INTEG_SRC := $(wildcard tests/integration/*.c)
INTEG_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRC))
TESTLIB_OBJ := $(call obj,$(wildcard tests/lib/*.c))
# The fault suite (tests/fault/): the deterministic simulation links the
# server's modules; the other programs run real nodes.
FAULT_SIM_BIN := $(BUILD)/tests/fault/test_sim
# The recorder, workloads and nemeses of the runs on real nodes.
FAULT_LIB_OBJ := $(call obj,$(filter-out tests/fault/test_%.c,$(wildcard tests/fault/*.c)))
FAULT_HISTORY_BIN := $(BUILD)/tests/fault/test_history
FAULT_RUN_BIN := $(BUILD)/tests/fault/test_fault
FAULT_BINS := $(FAULT_SIM_BIN) $(FAULT_HISTORY_BIN) $(FAULT_RUN_BIN)

.PHONY: all deps test test-unit test-integration test-python run stop asan \
        install clean check-deps fmt test-fault test-fault-checker \
        test-fault-sim test-fault-history test-fault-run soak bench \
        etcd-driver
.DEFAULT_GOAL := all

all: $(BIN_NODE) $(BIN_CTL) $(BIN_BENCH) $(LIB_A) $(LIB_SO)

# ---- packages: a no-op when everything is there ----
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing </dev/null; \
	fi

# ---- generated protobuf code ----
$(PB_C) $(PB_H): proto/memcoord.proto
	@mkdir -p $(BUILD)/proto
	@echo "  PROTOC $<"
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(PB_OBJ): $(PB_C)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(filter-out -Werror -Wmissing-prototypes,$(ALL_CFLAGS)) -c $< -o $@

# Every object waits for the generated header.
$(BUILD)/obj/%.o: %.c | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# ---- binaries and libraries ----
$(BIN_NODE): $(call obj,node/main.c) $(SERVER_OBJ)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS_SERVER)

$(LIB_A): $(CLIENT_OBJ)
	@rm -f $@
	@echo "  AR $@"
	$(Q)ar rcs $@ $^

$(LIB_SO): $(CLIENT_OBJ)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(LIB_SONAME) $^ -o $@ $(LDLIBS_CLIENT)

$(BIN_CTL): $(call obj,$(wildcard ctl/*.c)) $(LIB_A)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS_CLIENT)

$(BIN_BENCH): $(call obj,$(wildcard bench/*.c)) $(LIB_A)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS_CLIENT)

# ---- tests ----
$(BUILD)/tests/unit/%: tests/unit/%.c $(SERVER_OBJ) $(TESTLIB_OBJ) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $< $(SERVER_OBJ) $(TESTLIB_OBJ) -o $@ $(LDLIBS_SERVER) -lcriterion

$(BUILD)/tests/integration/%: tests/integration/%.c $(TESTLIB_OBJ) $(LIB_A) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $< $(TESTLIB_OBJ) $(LIB_A) -o $@ $(LDLIBS_CLIENT) -lcriterion

$(FAULT_SIM_BIN): tests/fault/test_sim.c $(SERVER_OBJ) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $< $(SERVER_OBJ) -o $@ $(LDLIBS_SERVER) -lcriterion

$(BUILD)/tests/fault/test_%: tests/fault/test_%.c $(FAULT_LIB_OBJ) $(TESTLIB_OBJ) $(LIB_A) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $< $(FAULT_LIB_OBJ) $(TESTLIB_OBJ) $(LIB_A) -o $@ $(LDLIBS_CLIENT) -lcriterion

# Objects only the test binaries' pattern rules name: keep them.
.SECONDARY: $(TESTLIB_OBJ) $(FAULT_LIB_OBJ)

# Criterion runs tests of a binary in parallel, one process each; keep it to
# the machine's cores. Each binary prints its own Synthesis line.
CRITERION_FLAGS ?= --jobs 2
TEST_ENV := MEMCOORD_BIN=$(abspath $(BIN_NODE)) MEMCOORDCTL_BIN=$(abspath $(BIN_CTL)) \
            MEMCOORD_BENCH_BIN=$(abspath $(BIN_BENCH)) \
            MEMCOORD_TEST_DIR=$(abspath $(BUILD))/testdata

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(INTEG_BIN) $(FAULT_BINS)
	@$(MAKE) --no-print-directory check-deps
	@$(MAKE) --no-print-directory test-unit test-integration test-python \
	  test-fault

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
	  $(TEST_ENV) $$t $(CRITERION_FLAGS); done

test-integration: $(INTEG_BIN) $(BIN_NODE) $(BIN_CTL) $(BIN_BENCH)
	@mkdir -p $(BUILD)/testdata
	@set -e; for t in $(INTEG_BIN); do echo "== $$t"; \
	  $(TEST_ENV) $$t $(CRITERION_FLAGS); done

# The fault suite (tests/fault/): the history checker's self-test first.
test-fault-checker:
	@echo "== tests/fault/test_checker.py"
	@python3 -m unittest discover -s tests/fault -p 'test_*.py'

test-python: $(LIB_SO) $(BIN_NODE)
	@if [ -d client/python/tests ]; then \
	  $(TEST_ENV) MEMCOORD_LIB=$(abspath $(LIB_SO)) PYTHONPATH=client/python \
	  python3 -m unittest discover -s client/python/tests -v; fi

test-fault-sim: $(FAULT_SIM_BIN)
	@echo "== $(FAULT_SIM_BIN)"
	@$(FAULT_SIM_BIN) $(CRITERION_FLAGS)

test-fault-history: $(FAULT_HISTORY_BIN)
	@mkdir -p $(BUILD)/testdata
	@echo "== $(FAULT_HISTORY_BIN)"
	@$(TEST_ENV) MEMCOORD_CHECKER=$(abspath tests/fault/checker.py) \
	  $(FAULT_HISTORY_BIN) $(CRITERION_FLAGS)

# Real nodes under kills, pauses and partitions (tests/fault/test_fault.c):
# the CI run here, the long one in make soak.
FAULT_ENV = $(TEST_ENV) MEMCOORD_CHECKER=$(abspath tests/fault/checker.py)
test-fault-run: $(FAULT_RUN_BIN) $(BIN_NODE)
	@mkdir -p $(BUILD)/testdata
	@echo "== $(FAULT_RUN_BIN) (fault/ci)"
	@$(FAULT_ENV) $(FAULT_RUN_BIN) --filter 'fault/ci' $(CRITERION_FLAGS)

test-fault: test-fault-checker test-fault-sim test-fault-history test-fault-run

# SOAK_MINUTES of random nemeses (at least 10 for the README's figures).
SOAK_MINUTES ?= 10
soak: deps
	@$(MAKE) --no-print-directory all $(FAULT_RUN_BIN)
	@mkdir -p $(BUILD)/testdata
	@echo "== $(FAULT_RUN_BIN) (fault/soak, $(SOAK_MINUTES) min)"
	@$(FAULT_ENV) MEMCOORD_SOAK_MINUTES=$(SOAK_MINUTES) \
	  $(FAULT_RUN_BIN) --filter 'fault/soak' $(CRITERION_FLAGS)

# ---- the whole suite under ASan + UBSan, in its own build folder ----
asan: deps
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
	  $(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  all test-unit test-integration test-fault

# ---- run: a local 3-node cluster and a short demo ----
run: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(abspath $(BUILD)) deploy/run-demo.sh

stop:
	@BUILD=$(abspath $(BUILD)) deploy/run-demo.sh stop

# ---- benchmarks (bench/): not part of make test ----
bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(abspath $(BUILD)) bench/suite.sh

# The etcd side of bench/compare-etcd.sh, built offline from Debian's Go
# packages (golang-go, golang-etcd-server-dev), which the script installs.
ETCD_DRIVER := $(BUILD)/etcd-driver
etcd-driver: $(ETCD_DRIVER)
$(ETCD_DRIVER): bench/etcd-driver/main.go
	@mkdir -p $(BUILD)
	@echo "  GO $@"
	$(Q)cd bench/etcd-driver && GO111MODULE=off GOPATH=/usr/share/gocode \
	  GOCACHE=$(abspath $(BUILD))/go-cache go build -o $(abspath $@) .

# ---- install ----
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BIN_NODE) $(BIN_CTL) $(BIN_BENCH) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/memcoord.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(PREFIX)/lib/libmemcoord.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	  deploy/memcoord.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/memcoord.pc

# ---- dependency order of DESIGN.md §8 ----
check-deps:
	@deploy/check-deps.sh

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
