# shellcheck shell=bash
# Sourced by the benchmarks that need two CPUs at once: quiet waits (up to
# QUIET_WAIT_S seconds, default 60; 0 skips) until the CPUs were 85% idle
# for half a second, since a busy machine slows a 2-process run far more
# than a one-process one.
QUIET_WAIT_S=${QUIET_WAIT_S:-60}

# true when the CPUs were at least 85% idle over the last half second
idle() {
	local a b
	read -ra a < /proc/stat
	sleep 0.5
	read -ra b < /proc/stat
	local busy=0 all=0 i
	for i in 1 2 3 4 5 6 7 8; do all=$((all + b[i] - a[i])); done
	busy=$((all - (b[4] - a[4]) - (b[5] - a[5])))
	[ "$all" -gt 0 ] && [ $((100 * busy)) -le $((15 * all)) ]
}
quiet() {
	local end=$((SECONDS + QUIET_WAIT_S))
	while [ "$SECONDS" -lt "$end" ]; do idle && return 0; done
	[ "$QUIET_WAIT_S" = 0 ] || echo "# $(basename "$0"): the CPUs stayed busy for ${QUIET_WAIT_S} s; measuring anyway" >&2
}
