#!/usr/bin/env bash
# The public headers from C++ (and C): each header alone compiles as C11
# and as C++ with warnings as errors, and tests/check_cxx.cpp, which calls
# the API, links against libhps.so and libhps.a and runs: offline (version,
# every error name) and as a job whose server runs a C++ handler.
# Environment (set by `make test`): HPS_OUT (where lib/ and bin/ are),
# HPS_SANITIZE (the sanitizer flags the library was built with).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "$root/${HPS_OUT:-.}" && pwd)
san=${HPS_SANITIZE:-}
cxx=${CXX:-g++}
command -v "$cxx" >/dev/null || { echo "no C++ compiler ($cxx): apt-get install g++"; exit 77; }
[ -e "$out/lib/libhps.so" ] && [ -e "$out/lib/libhps.a" ] && [ -x "$out/bin/hps" ] ||
	{ echo "check_cxx: build first (make all): no $out/lib/libhps.so, libhps.a or bin/hps"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_cxx: $*"; exit 1; }

for h in "$root"/include/hps/*.h; do
	name=hps/$(basename "$h")
	# (a declaration of its own: ISO C forbids an empty translation unit)
	printf '#include <%s>\ntypedef int check_one;\n' "$name" > "$tmp/one.c"
	cp "$tmp/one.c" "$tmp/one.cpp"
	${CC:-cc} -std=c11 -Wall -Wextra -Werror -pedantic -I"$root/include" -c "$tmp/one.c" -o "$tmp/one.o" ||
		fail "$name does not compile alone as C11"
	"$cxx" -std=c++11 -Wall -Wextra -Werror -pedantic -I"$root/include" -c "$tmp/one.cpp" -o "$tmp/one.o" ||
		fail "$name does not compile alone as C++"
done

"$cxx" -std=c++11 -Wall -Wextra -Werror $san -I"$root/include" -c "$root/tests/check_cxx.cpp" -o "$tmp/api.o" ||
	fail "tests/check_cxx.cpp does not compile"
"$cxx" $san -o "$tmp/api_shared" "$tmp/api.o" -L"$out/lib" -Wl,-rpath,"$out/lib" -lhps ||
	fail "C++ does not link against libhps.so"
"$cxx" $san -o "$tmp/api_static" "$tmp/api.o" "$out/lib/libhps.a" -ljemalloc -lnuma -lpthread -lm ||
	fail "C++ does not link against libhps.a"
ldd "$tmp/api_shared" | grep -q "libhps.so.0 => $out/lib/libhps.so.0" ||
	fail "api_shared does not load $out/lib/libhps.so.0: $(ldd "$tmp/api_shared")"

for kind in shared static; do
	prog=$tmp/api_$kind
	got=$("$prog" --offline 2>&1) || fail "$kind --offline: $got"
	echo "$got"
	got=$(cd "$tmp" && timeout 60 "$out/bin/hps" launch --self-serve -s 1 -w 1 -- "$prog" 2>&1) ||
		fail "$kind job failed: $got"
	echo "$got" | grep -q "^\[worker 0\] c++ round trip ok: 1 worker(s), 1 server(s)$" ||
		fail "$kind job printed no round trip: $got"
	echo "$kind: $(echo "$got" | grep 'round trip')"
done
echo "check_cxx: every public header compiles alone as C and C++; C++ calls the API through libhps.so and libhps.a"
