#!/usr/bin/env bash
# The layering rule of docs/ARCHITECTURE.md: a file includes only headers
# of its own layer or of lower ones, and nothing that makes libhps (common,
# shm, net, client, server) includes a header of the `hps` program (the
# bridge, the ZeroMQ transport, the wire format between hosts, cluster
# roles, the command line).
#   include/hps < runtime/common < shm < net < runtime/client
#     < runtime/server < runtime/cluster < runtime/cli
# Run from the repository root; prints each violation and exits 1 if any.
set -u
cd "$(dirname "$0")/.."

rank_of() {
	case $1 in
	include/hps/*) echo 0 ;;
	runtime/common/*) echo 1 ;;
	shm/*) echo 2 ;;
	net/*) echo 3 ;;
	runtime/client/*) echo 4 ;;
	runtime/server/*) echo 5 ;;
	runtime/cluster/*) echo 6 ;;
	runtime/cli/*) echo 7 ;;
	*) echo x ;;
	esac
}

# Files of the hps program that libhps must not reach.
program_only() {
	case $1 in
	net/bridge*|net/transport.*|net/wire.*|runtime/cluster/*|runtime/cli/*) return 0 ;;
	*) return 1 ;;
	esac
}

bad=0
files=$(find include/hps runtime shm net -name '*.[ch]' | sort)
for f in $files; do
	r=$(rank_of "$f")
	if [ "$r" = x ]; then
		echo "$f: not in any layer (runtime/ files belong in one of its sub-folders)"
		bad=1
		continue
	fi
	# Project headers are included by path from the root ("shm/ring.h");
	# public ones as "hps/x.h".
	while IFS= read -r inc; do
		case $inc in hps/*) target=include/$inc ;; *) target=$inc ;; esac
		if [ ! -f "$target" ]; then
			echo "$f: includes \"$inc\", which does not exist"
			bad=1
			continue
		fi
		tr=$(rank_of "$target")
		if [ "$tr" = x ] || [ "$tr" -gt "$r" ]; then
			echo "$f: includes $target, a higher layer"
			bad=1
		elif program_only "$target" && ! program_only "$f"; then
			echo "$f: includes $target, which is part of the hps program, not of libhps"
			bad=1
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done

if [ $bad -ne 0 ]; then
	echo "check_layers: the layering rule is broken (docs/ARCHITECTURE.md, Layers)"
	exit 1
fi
echo "check_layers: $(echo "$files" | wc -l) files keep the layering rule"
