#!/bin/bash
# The parameter server's overhead on the learning examples: the server
# modes (1 server; 1 and 2 workers; SSP with staleness 2 and ASP) against
# the same algorithm in one process without a parameter server
# (`--local-batch`: the same mini-batches, order, gradient and server
# optimizer), on the real data sets (`make data` first). Each
# configuration runs REPEATS times; prints the median updates/s, its ratio
# to the baseline's median, the slowest and fastest run, and for 2 workers
# the speedup over 1 worker of the same mode ("-" otherwise):
#   overhead DATASET CONFIG updates_per_s ratio_to_baseline min max speedup_1w
# CONFIG: local-batch (the baseline), ssp-1w, asp-1w, ssp-2w, asp-2w.
# A server mode needs two CPUs at once, so a busy machine slows it far
# more than the one-process baseline: each run waits (up to QUIET_WAIT_S
# seconds, default 60; 0 skips) until the CPUs were 85% idle for half a
# second, and the min and max show what is left of the noise.
#   bench/overhead_bench.sh [spamassassin] [fashion-mnist] [movielens]
set -euo pipefail
REPEATS=${REPEATS:-5}
HPS=${HPS_BIN:-bin/hps}
EX=${HPS_EXAMPLES:-build/examples}
SETS=${*:-spamassassin fashion-mnist movielens}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# quiet: waits for idle CPUs (QUIET_WAIT_S)
# shellcheck source=bench/quiet.sh
. "$(dirname "$0")/quiet.sh"

# median, min, max of one number per line
stats() { sort -n | awk '{ v[NR] = $1 } END { print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'; }
ups() { grep '^result' | sed 's/.*updates_per_s=\([0-9]*\).*/\1/'; }

# one data set: name, program, server updater, initial values, options
measure() {
	local name=$1 prog=$2 updater=$3 init=$4 args=$5 base u lo hi
	declare -A one
	for cfg in local-batch ssp-1w asp-1w ssp-2w asp-2w; do
		local mode workers
		case $cfg in
		local-batch) mode=local workers=1 ;;
		*) mode=${cfg%-*} workers=${cfg##*-} workers=${workers%w} ;;
		esac
		for _ in $(seq "$REPEATS"); do
			quiet
			# shellcheck disable=SC2086
			case $mode in
			local) "$EX/$prog" --local-batch --updater "$updater" --init "$init" $args ;;
			ssp) "$HPS" launch --no-prefix -s 1 -w "$workers" --staleness 2 --updater "$updater" --init "$init" \
				"$EX/$prog" $args ;;
			asp) "$HPS" launch --no-prefix -s 1 -w "$workers" --staleness asp --updater "$updater" --init "$init" \
				"$EX/$prog" $args ;;
			esac | ups
		done | stats > "$tmp"
		read -r u lo hi < "$tmp"
		local speedup=-
		if [ "$mode" = local ]; then
			base=$u
		elif [ "$workers" = 1 ]; then
			one[$mode]=$u
		else
			speedup=$(awk "BEGIN { printf \"%.2f\", $u / ${one[$mode]} }")
		fi
		echo "overhead $name $cfg $u $(awk "BEGIN { printf \"%.2f\", $u / $base }") $lo $hi $speedup"
	done
}

for set in $SETS; do
	case $set in
	spamassassin) measure spamassassin sparse_lr adagrad:lr=0.5 zeros \
		"--train data/spamassassin/train.svm --test data/spamassassin/test.svm --log1p --normalize --epochs 10" ;;
	fashion-mnist) REPEATS=${FASHION_REPEATS:-3} measure fashion-mnist sparse_lr adagrad:lr=0.05 zeros \
		"--train data/fashion/train.svm --test data/fashion/test.svm --epochs 3" ;;
	movielens) REPEATS=${MOVIELENS_REPEATS:-3} measure movielens mf sgd:lr=0.01 normal:std=0.1,seed=1 \
		"--train data/movielens/train.csv --test data/movielens/test.csv --factors 50 --reg 0.08 --bias-reg 0.02 --batch 16 --epochs 5" ;;
	*) echo "overhead_bench.sh: unknown data set '$set' (spamassassin, fashion-mnist, movielens)" >&2; exit 2 ;;
	esac
done
