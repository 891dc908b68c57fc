#!/usr/bin/env bash
# `make install` into a temporary prefix, as a user would use it: a program
# built outside the tree with only what `pkg-config --cflags --libs hps`
# prints (shared, run with LD_LIBRARY_PATH) and `pkg-config --static`
# (static) runs under the installed `hps launch` and pulls back exactly what
# it pushed; an installed example runs too. A DESTDIR install stages under
# DESTDIR with the final PREFIX in hps.pc. `make uninstall` then leaves the
# prefix as it was before (a file of the user's stays).
# Environment (set by `make test`): HPS_OUT and HPS_BUILD, the build being
# tested; HPS_SANITIZE, its sanitizer flags (a sanitized libhps links only
# into sanitized programs, and those cannot be linked -static).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
outdir=${HPS_OUT:-.}
builddir=${HPS_BUILD:-build}
san=${HPS_SANITIZE:-}
cc=${CC:-cc}
command -v pkg-config >/dev/null || { echo "no pkg-config: apt-get install pkg-config"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_install: $*"; exit 1; }
# The install runs as its own make, with the tested build's directories.
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$root" --no-print-directory \
		OUT="$outdir" BUILD="$builddir" "$@" > "$tmp/make.log" 2>&1 ||
		fail "make $*: $(cat "$tmp/make.log")"
}
version=$(sed -n 's/^#define HPS_VERSION_STRING "\(.*\)"$/\1/p' "$root/include/hps/version.h")

prefix=$tmp/prefix
mkdir -p "$prefix/bin"
echo mine > "$prefix/bin/mytool" # the user's: uninstall must leave it
mk install PREFIX="$prefix"
mk install PREFIX="$prefix" # again, over the first: uninstall must still undo both
for f in bin/hps lib/hps/hps-server include/hps/hps.h include/hps/error.h include/hps/server.h include/hps/version.h \
	lib/libhps.a "lib/libhps.so.$version" lib/pkgconfig/hps.pc lib/hps/examples/quickstart; do
	[ -f "$prefix/$f" ] || fail "make install put no $f under the prefix"
done
[ "$(readlink "$prefix/lib/libhps.so")" = libhps.so.0 ] && [ -e "$prefix/lib/libhps.so.0" ] ||
	fail "libhps.so -> libhps.so.0 links not installed"
got=$("$prefix/bin/hps" --version) && [ "$got" = "hps $version" ] || fail "installed hps --version: '$got'"
"$prefix/bin/hps" launch --help | grep -qx "hps $version" || fail "hps launch --help does not show hps $version"

# The Python package (built by the plain build only) imports from the prefix.
if [ "$outdir" = . ]; then
	got=$(cd "$tmp" && PYTHONPATH=$prefix/lib/python3/dist-packages /usr/bin/python3 -c \
		'import hps; print(hps.version, hps.__file__)' 2>&1) &&
		[ "$got" = "$version $prefix/lib/python3/dist-packages/hps/__init__.py" ] ||
		fail "the installed Python package does not import: $got"
fi

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion hps)" = "$version" ] || fail "pkg-config --modversion hps: $(pkg-config --modversion hps 2>&1)"
# Outside the tree: only the program's source and what pkg-config says.
mkdir "$tmp/user"
cp "$root/tests/install_prog.c" "$tmp/user/prog.c"
cd "$tmp/user" || exit 1
# shellcheck disable=SC2046 # pkg-config's output is meant to be split
"$cc" $san -o prog_shared prog.c $(pkg-config --cflags --libs hps) || fail "shared build with pkg-config failed"
LD_LIBRARY_PATH=$prefix/lib ldd ./prog_shared | grep -q "libhps.so.0 => $prefix/lib/libhps.so.0" ||
	fail "prog_shared does not load the installed libhps.so.0"
progs=prog_shared
if [ -z "$san" ]; then
	# shellcheck disable=SC2046
	"$cc" -static -o prog_static prog.c $(pkg-config --static --cflags --libs hps) 2> static.log ||
		fail "static build with pkg-config --static failed: $(cat static.log)"
	readelf -d prog_static | grep -q NEEDED && fail "prog_static is not static: $(readelf -d prog_static | grep NEEDED)"
	progs="$progs prog_static"
else
	echo "static link skipped: the sanitizer runtimes ($san) do not support -static"
fi

# 2 x the pushed values, exactly (the built-in store sums two pushes).
want='[worker 0] round trip: 0x1.8p+1 -0x1.2p+2 0x1p-2 0x1.e848p+20 0x1.8p+2 -0x1p+0'
for p in $progs; do
	got=$(LD_LIBRARY_PATH=$prefix/lib timeout 60 "$prefix/bin/hps" launch -s 1 -w 1 -- "./$p" 2>&1) ||
		fail "$p under the installed hps launch failed: $got"
	echo "$got" | grep -qxF "$want" || fail "$p printed no exact round trip: $got"
	echo "$p: $want"
done
got=$(timeout 60 "$prefix/bin/hps" launch -s 2 -w 2 -- "$prefix/lib/hps/examples/quickstart" 2>&1) ||
	fail "the installed quickstart example failed: $got"
cd "$root" || exit 1

# A staged install: files under DESTDIR, hps.pc naming the final prefix.
stage=$tmp/stage
mk install PREFIX=/opt/hps-test DESTDIR="$stage"
[ -x "$stage/opt/hps-test/bin/hps" ] || fail "DESTDIR install put no bin/hps under DESTDIR"
grep -qx 'prefix=/opt/hps-test' "$stage/opt/hps-test/lib/pkgconfig/hps.pc" ||
	fail "hps.pc of a DESTDIR install does not name PREFIX /opt/hps-test"
mk uninstall PREFIX=/opt/hps-test DESTDIR="$stage"
left=$(cd "$stage/opt/hps-test" && find . -mindepth 1)
[ -z "$left" ] || fail "DESTDIR uninstall left:" $left

mk uninstall PREFIX="$prefix"
left=$(cd "$prefix" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$left" = "./bin ./bin/mytool " ] || fail "make uninstall left (besides bin/mytool): $left"
echo "check_install: hps $version installed; $progs built with pkg-config and run by the installed hps launch; uninstalled"
