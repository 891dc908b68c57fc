#!/usr/bin/env bash
# Runs every test binary given; each runs even when another fails. Prints a
# closing "N passed, N failed" line and exits non-zero if any suite failed.
# Test jobs put their segments in a private directory, checked empty after.
set -u
shmdir=$(mktemp -d /dev/shm/hps-tests.XXXXXX)
export HPS_SHM_DIR=$shmdir
pass=0; fail=0; failed=()
for t in "$@"; do
	name=$(basename "$t")
	start=$(date +%s%N)
	timeout 600 "$t" > "$shmdir.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1)); verdict=ok
	elif [ $rc -eq 77 ]; then
		verdict="skipped: $(tail -1 "$shmdir.log")"
	else
		fail=$((fail + 1)); failed+=("$name"); verdict=FAILED
		cat "$shmdir.log"
	fi
	printf '%-24s %s (%d ms)\n' "$name" "$verdict" $((($(date +%s%N) - start) / 1000000))
	left=$(ls -A "$shmdir")
	if [ -n "$left" ]; then
		echo "$name left segments behind: $left"; fail=$((fail + 1)); failed+=("$name(leak)")
		rm -f "$shmdir"/*
	fi
done
rm -rf "$shmdir" "$shmdir.log"
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
