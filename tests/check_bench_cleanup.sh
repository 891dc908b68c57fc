#!/usr/bin/env bash
# A benchmark stopped by a signal leaves nothing behind: bench/net_bench
# --namespaces-only builds its two network namespaces and waits; it runs
# under `timeout`, which forwards SIGTERM, SIGINT and SIGHUP to it (as it
# does when `make bench-net` runs out of time), and afterwards no namespace
# with its prefix may remain. No benchmark runs. Needs root and ip (exit 77
# skips otherwise).
set -u
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	echo "needs root and ip for network namespaces"
	exit 77
fi
bench=$(dirname "${HPS_BIN:-bin/hps}")/../bench/net_bench
log=$(mktemp)
pids=() made=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	# whatever a failed run left: the namespaces named in the logs
	made+=($(grep -o 'nb[0-9]*[ab]' "$log" 2>/dev/null))
	for n in "${made[@]}"; do ip netns del "$n" 2>/dev/null; done
	rm -f "$log"
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP
bad=0
for sig in TERM INT HUP; do
	: > "$log"
	timeout -s "$sig" 60 "$bench" --namespaces-only > "$log" 2>&1 &
	tpid=$!
	pids=("$tpid")
	for _ in $(seq 200); do grep -q ' up$' "$log" && break; sleep 0.05; done
	pfx=$(sed -n 's/^namespaces \(nb[0-9]*\)a .* up$/\1/p' "$log")
	if [ -z "$pfx" ] || ! ip netns list | grep -q "^${pfx}a\b"; then
		echo "SIG$sig: net_bench built no namespaces:"; cat "$log"; bad=1; continue
	fi
	made+=("${pfx}a" "${pfx}b")
	kill -"$sig" "$tpid" # timeout passes the signal on to net_bench
	wait "$tpid"
	rc=$?
	left=$(ip netns list | grep -E "^${pfx}[ab]\b")
	if [ -n "$left" ]; then
		echo "SIG$sig: net_bench left namespaces behind: $left"; bad=1
	fi
	if [ $rc -eq 0 ]; then
		echo "SIG$sig: net_bench exited 0 instead of dying of the signal"; bad=1
	fi
done
exit $bad
