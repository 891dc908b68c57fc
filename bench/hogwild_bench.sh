#!/bin/bash
# HOGWILD direct mode against the same per-example SGD in one process
# without a parameter server (`--local`), on the real data sets (`make
# data` first). Each configuration runs REPEATS times; prints the median
# updates/s, the slowest and fastest run, and the median's ratio to the
# single process:
#   hogwild DATASET CONFIG updates_per_s min max ratio_to_local
# CONFIG: local, direct1 (1 worker), direct2 (2 workers).
set -euo pipefail
REPEATS=${REPEATS:-5}
HPS=${HPS_BIN:-bin/hps}
EX=${HPS_EXAMPLES:-build/examples}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# median, min, max of one number per line
stats() { sort -n | awk '{ v[NR] = $1 } END { print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'; }
ups() { grep '^result' | sed 's/.*updates_per_s=\([0-9]*\).*/\1/'; }

# one data set: name, program, direct range, width, program options
measure() {
	local name=$1 prog=$2 range=$3 width=$4 args=$5 local_ups
	for cfg in local direct1 direct2; do
		for _ in $(seq "$REPEATS"); do
			# shellcheck disable=SC2086
			case $cfg in
			local) "$EX/$prog" --local $args ;;
			direct1) "$HPS" launch --no-prefix -s 1 -w 1 --key-ranges "$range" --direct "$width" \
				--updater sgd:lr=0.1 --init "${INIT:-zeros}" "$EX/$prog" --hogwild $args ;;
			direct2) "$HPS" launch --no-prefix -s 1 -w 2 --key-ranges "$range" --direct "$width" \
				--updater sgd:lr=0.1 --init "${INIT:-zeros}" "$EX/$prog" --hogwild $args ;;
			esac | ups
		done | stats > "$tmp"
		local u lo hi
		read -r u lo hi < "$tmp"
		[ "$cfg" = local ] && local_ups=$u
		echo "hogwild $name $cfg $u $lo $hi $(awk "BEGIN { printf \"%.2f\", $u / $local_ups }")"
	done
}

measure spamassassin sparse_lr 0-262144 1 \
	"--train data/spamassassin/train.svm --test data/spamassassin/test.svm --log1p --normalize --epochs 10 --lr 1"
REPEATS=${FASHION_REPEATS:-3} measure fashion-mnist sparse_lr 0-784 10 \
	"--train data/fashion/train.svm --test data/fashion/test.svm --epochs 5 --lr 0.01 --decay 0.5"
NKEYS=$(awk -F, 'FNR > 1 { k = 2 * $1; if (2 * $2 + 1 > k) k = 2 * $2 + 1; if (k > m) m = k } END { print m }' \
	data/movielens/train.csv data/movielens/test.csv)
INIT=normal:std=0.1,seed=1 measure movielens mf "0-$NKEYS" 51 \
	"--train data/movielens/train.csv --test data/movielens/test.csv --factors 50 --reg 0.08 --bias-reg 0.02 --epochs 20 --lr 0.01 --decay 0.05"
