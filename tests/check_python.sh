#!/usr/bin/env bash
# The Python package (python/hps): its pytest suite (python/tests), whose
# jobs start through bin/hps launch. Environment (set by `make test`):
# HPS_OUT (where bin/ is), HPS_SANITIZE (the sanitizer flags of the build).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
if [ -n "${HPS_SANITIZE:-}" ]; then
	# The extension is built only by the plain build; a sanitized one would
	# need the sanitizer runtime preloaded into python3.
	echo "check_python: skipped under ${HPS_SANITIZE}: the extension is built without sanitizers"
	exit 77
fi
"$py" -c 'import numpy, pytest' 2>/dev/null ||
	{ echo "check_python: no numpy or pytest for $py: apt-get install python3-numpy python3-pytest"; exit 1; }
ls "$root"/python/hps/_hps*.so >/dev/null 2>&1 || { echo "check_python: build first (make all): no python/hps/_hps*.so"; exit 1; }
cd "$root" || exit 1
export HPS_OUT=${HPS_OUT:-.}
export GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.rtld.optional_static_tls=16384
exec timeout 500 "$py" -m pytest -q -p no:cacheprovider python/tests
