#!/usr/bin/env bash
# What a user program links: libhps.so exports exactly the functions that
# include/hps/ declares HPS_API (no hpsi_ internals), has the soname
# libhps.so.MAJOR behind the libhps.so -> .so.MAJOR -> .so.MAJOR.MINOR.PATCH
# links, and needs no ZeroMQ; libhps.a holds no code of the `hps` program
# (bridge, transport, launcher, scheduler, clean, command line).
# Environment (set by `make test`): HPS_OUT, where lib/ is.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$(cd "$root/${HPS_OUT:-.}" && pwd)/lib
bad=0
fail() { echo "check_symbols: $*"; bad=1; }
[ -e "$lib/libhps.so" ] && [ -e "$lib/libhps.a" ] || { echo "check_symbols: build first: no $lib/libhps.so or libhps.a"; exit 1; }

hdr() { sed -n "s/^#define $1 \"*\([^\"]*\)\"*$/\1/p" "$root/include/hps/version.h"; }
major=$(hdr HPS_VERSION_MAJOR)
version=$(hdr HPS_VERSION_STRING)
[ "$version" = "$major.$(hdr HPS_VERSION_MINOR).$(hdr HPS_VERSION_PATCH)" ] ||
	fail "HPS_VERSION_STRING $version does not match HPS_VERSION_MAJOR/MINOR/PATCH"
[ "$(readlink "$lib/libhps.so")" = "libhps.so.$major" ] || fail "libhps.so does not link to libhps.so.$major"
[ "$(readlink "$lib/libhps.so.$major")" = "libhps.so.$version" ] || fail "libhps.so.$major does not link to libhps.so.$version"
[ -f "$lib/libhps.so.$version" ] && [ ! -L "$lib/libhps.so.$version" ] || fail "no file libhps.so.$version"
soname=$(readelf -d "$lib/libhps.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libhps.so.$major" ] || fail "soname is '$soname', not libhps.so.$major"

declared=$(sed -n 's/^HPS_API[^(]*\b\(hps_[a-z0-9_]*\)(.*/\1/p' "$root"/include/hps/*.h | sort -u)
[ -n "$declared" ] || fail "no HPS_API function found in include/hps/"
# (static inline fast paths live in the header itself: nothing to export)
unmarked=$(grep -HnE '^[a-z][a-z0-9_ ]*[ *]hps_[a-z0-9_]*\(' "$root"/include/hps/*.h | grep -Ev ':(typedef|static inline) ')
[ -z "$unmarked" ] || fail "public functions declared without HPS_API (hidden in libhps.so): $unmarked"
# Defined dynamic symbols, less what a sanitizer's instrumentation adds.
exported=$(nm -D --defined-only "$lib/libhps.so" | awk '{print $NF}' |
	grep -Ev '^(__asan|__odr_asan|__tsan|__ubsan|__sancov)' | sed 's/@.*//' | sort -u)
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
[ -z "$extra" ] || fail "libhps.so exports what no public header declares:" $extra
[ -z "$missing" ] || fail "declared HPS_API but not exported by libhps.so:" $missing
nm -D "$lib/libhps.so" | grep -q ' hpsi_' && fail "libhps.so shows hpsi_ symbols: $(nm -D "$lib/libhps.so" | grep -c ' hpsi_')"

readelf -d "$lib/libhps.so" | grep NEEDED | grep -q libzmq && fail "libhps.so needs libzmq"
nm -u "$lib/libhps.so" | grep -q ' zmq_' && fail "libhps.so calls ZeroMQ"
nm "$lib/libhps.a" 2>/dev/null | grep -q ' U zmq_' && fail "libhps.a calls ZeroMQ"
prog=$(ar t "$lib/libhps.a" | grep -E '^(bridge.*|transport|clean|launch.*|scheduler|outpipe|hps_main)\.o$')
[ -z "$prog" ] && ! nm "$lib/libhps.a" | grep -Eq ' T hpsi_(cmd_|bridge|sched)' ||
	fail "libhps.a holds code of the hps program:" $prog

[ $bad -eq 0 ] || exit 1
echo "check_symbols: libhps.so ($soname) exports the $(echo "$declared" | wc -l) public functions and nothing else; no ZeroMQ, no program code in libhps"
