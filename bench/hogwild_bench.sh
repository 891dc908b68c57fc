#!/bin/bash
# HOGWILD direct mode against the same per-example SGD in one process
# without a parameter server (`--local`), on the real data sets (`make
# data` first). Each configuration runs REPEATS times; prints the median
# updates/s, the slowest and fastest run, the median's ratio to the single
# process and to one worker, and the median test metric (accuracy; RMSE
# for MovieLens):
#   hogwild DATASET CONFIG updates_per_s min max x_local x_direct1 metric
# Two workers need both CPUs at once: each run first waits for idle CPUs
# (bench/quiet.sh), and min and max show what is left of the noise.
# CONFIG: local; direct1 and direct2 (1 and 2 workers, each with its own
# copies of its keys, each merged after MERGE uses: --merge); plain2 (2
# workers updating every key in place: --merge 0, HOGWILD as it was).
set -euo pipefail
REPEATS=${REPEATS:-5}
MERGE=${MERGE:-16} # --merge of direct1 and direct2: the examples' default
HPS=${HPS_BIN:-bin/hps}
EX=${HPS_EXAMPLES:-build/examples}
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
# quiet: waits for idle CPUs before each run (QUIET_WAIT_S, default 60 s)
# shellcheck source=bench/quiet.sh
. "$(dirname "$0")/quiet.sh"

# median, min and max of one number per line
stats() { sort -n | awk '{ v[NR] = $1 } END { print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'; }
# updates/s and the test metric of a run's result line
result() { awk '/^result/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	print f["updates_per_s"], (f["test_accuracy"] != "" ? f["test_accuracy"] : f["test_rmse"]) }'; }

# one data set: name, program, direct range, width, merge interval, program options
measure() {
	local name=$1 prog=$2 range=$3 width=$4 merge=$5 args=$6 local_ups direct1_ups
	for cfg in local direct1 direct2 plain2; do
		for _ in $(seq "$REPEATS"); do
			quiet
			# shellcheck disable=SC2086
			case $cfg in
			local) "$EX/$prog" --local $args ;;
			direct1 | direct2 | plain2)
				local w=${cfg: -1} m=$merge
				[ "$cfg" = plain2 ] && m=0
				"$HPS" launch --no-prefix -s 1 -w "$w" --key-ranges "$range" --direct "$width" \
					--updater sgd:lr=0.1 --init "${INIT:-zeros}" "$EX/$prog" --hogwild --merge "$m" $args ;;
			esac | result
		done > "$runs"
		local u lo hi metric _
		read -r u lo hi < <(cut -d' ' -f1 "$runs" | stats)
		read -r metric _ < <(cut -d' ' -f2 "$runs" | stats)
		[ "$cfg" = local ] && local_ups=$u
		[ "$cfg" = direct1 ] && direct1_ups=$u
		local x1=-
		[ "$cfg" = local ] || x1=$(awk "BEGIN { printf \"%.2f\", $u / $direct1_ups }")
		echo "hogwild $name $cfg $u $lo $hi $(awk "BEGIN { printf \"%.2f\", $u / $local_ups }") $x1 $metric"
	done
}

measure spamassassin sparse_lr 0-262144 1 "$MERGE" \
	"--train data/spamassassin/train.svm --test data/spamassassin/test.svm --log1p --normalize --epochs 10 --lr 1"
REPEATS=${FASHION_REPEATS:-3} measure fashion-mnist sparse_lr 0-784 10 "$MERGE" \
	"--train data/fashion/train.svm --test data/fashion/test.svm --epochs 5 --lr 0.01 --decay 0.5"
NKEYS=$(awk -F, 'FNR > 1 { k = 2 * $1; if (2 * $2 + 1 > k) k = 2 * $2 + 1; if (k > m) m = k } END { print m }' \
	data/movielens/train.csv data/movielens/test.csv)
INIT=normal:std=0.1,seed=1 measure movielens mf "0-$NKEYS" 51 "$MERGE" \
	"--train data/movielens/train.csv --test data/movielens/test.csv --factors 50 --reg 0.08 --bias-reg 0.02 --epochs 20 --lr 0.01 --decay 0.05"
