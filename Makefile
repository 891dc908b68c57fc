# hps build. `make` builds the libraries, bin/hps, tests and benchmarks;
# `make test` runs every suite; `make run` starts the main local job.
CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -pthread -I. -Iinclude
LDLIBS = -lm -ljemalloc -lnuma -lzmq -lpthread
BUILD ?= build
# Where libraries and programs go: the tree itself, or the sanitizer build dir.
OUT ?= .
DEPS_PKGS = libnuma-dev libjemalloc-dev libzmq3-dev libcunit1-dev pkg-config iproute2 procps

LIB_SRC = $(wildcard shm/*.c net/*.c) $(filter-out runtime/hps_main.c,$(wildcard runtime/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/test_*.c)
TESTS = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS = $(BUILD)/tests/harness.o
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
EXAMPLE_LIB = $(patsubst %.c,$(BUILD)/%.o,$(wildcard examples/lib/*.c))

.SECONDARY:
.PHONY: all deps test run bench bench-ssp asan tsan clean
all: $(OUT)/lib/libhps.a $(OUT)/lib/libhps.so $(OUT)/bin/hps $(TESTS) $(OUT)/bench/hps_bench $(OUT)/bench/ssp_bench $(EXAMPLES)

# Installs the Debian packages hps needs, only when one is missing.
deps:
	@missing=""; for p in $(DEPS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BUILD)/%.o: %.c $(wildcard include/hps/*.h shm/*.h net/*.h runtime/*.h tests/*.h examples/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/lib/libhps.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(OUT)/lib/libhps.so: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $^ $(LDLIBS)

$(OUT)/bin/hps: $(BUILD)/runtime/hps_main.o $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPERS) $(OUT)/lib/libhps.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcunit $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(EXAMPLE_LIB) $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/bench/%: $(BUILD)/bench/%.o $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Every suite runs even when one fails; the exit status says if any did.
test: deps
	@$(MAKE) --no-print-directory all
	@HPS_BIN=$(OUT)/bin/hps HPS_EXAMPLES=$(BUILD)/examples tests/run_all.sh $(TESTS)

bench: deps
	@$(MAKE) --no-print-directory bench/hps_bench bin/hps
	bench/hps_bench

# Straggler under BSP, SSP and ASP, then moving stragglers (about 20 s).
bench-ssp: deps
	@$(MAKE) --no-print-directory bench/ssp_bench
	bench/ssp_bench
	bench/ssp_bench --transient

# The main job: until the learning examples exist, the benchmark on a
# local job of 1 server + 1 worker and 2 servers + 2 workers.
run: bench

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan OUT=build-asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		LDFLAGS=-fsanitize=address,undefined

tsan:
	@$(MAKE) --no-print-directory test BUILD=build-tsan OUT=build-tsan CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer"

clean:
	rm -rf build build-asan build-tsan lib bin bench/hps_bench bench/ssp_bench
