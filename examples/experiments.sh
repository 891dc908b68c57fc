#!/bin/bash
# Runs every example in every mode with 1 and 2 workers on the real data
# sets (`make data` first) and keeps one CSV per run plus every `result`
# line in OUT/results.txt; examples/plot.sh turns them into plots.
#   examples/experiments.sh [OUT]        (default data/runs; ~5 minutes here)
# Settings per data set are the ones the README quotes.
set -euo pipefail
OUT=${1:-data/runs}
HPS=${HPS_BIN:-bin/hps}
EX=${HPS_EXAMPLES:-build/examples}
mkdir -p "$OUT"
: > "$OUT/results.txt"

# run NAME WORKERS MODE PROGRAM [launch options --] program options
# MODE: local | bsp | ssp2 | asp | hogwild
run() {
	local name=$1 workers=$2 mode=$3 prog=$4
	shift 4
	local launch=() args=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do launch+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	args=("$@")
	local csv="$OUT/$name-$mode-w$workers.csv" cmd
	case $mode in
	local) cmd=("$EX/$prog" --local "${args[@]}") ;;
	hogwild) cmd=("$HPS" launch --no-prefix -s 1 -w "$workers" "${launch[@]}" "$EX/$prog" --hogwild "${args[@]}") ;;
	bsp) cmd=("$HPS" launch --no-prefix -s 1 -w "$workers" --deterministic --staleness bsp "${launch[@]}" "$EX/$prog" "${args[@]}") ;;
	ssp2) cmd=("$HPS" launch --no-prefix -s 1 -w "$workers" --staleness 2 "${launch[@]}" "$EX/$prog" "${args[@]}") ;;
	asp) cmd=("$HPS" launch --no-prefix -s 1 -w "$workers" --staleness asp "${launch[@]}" "$EX/$prog" "${args[@]}") ;;
	esac
	echo "== $name $mode workers=$workers: ${cmd[*]} --csv $csv" >&2
	"${cmd[@]}" --csv "$csv" > "$OUT/last.log" 2>&1 || { cat "$OUT/last.log" >&2; exit 1; }
	cat "$OUT/last.log" >&2
	grep '^result' "$OUT/last.log" >> "$OUT/results.txt"
}

# every mode of one data set; $1 name, $2 program, then the server
# updater, the direct range and width, the program's options for the
# server modes and for the per-example SGD modes (local, hogwild)
modes() {
	local name=$1 prog=$2 updater=$3 range=$4 width=$5 srv_args=$6 sgd_args=$7
	# shellcheck disable=SC2086
	run "$name" 1 local "$prog" -- $sgd_args
	for w in 1 2; do
		for m in bsp ssp2 asp; do
			# shellcheck disable=SC2086
			run "$name" $w $m "$prog" --updater "$updater" $INIT -- $srv_args
		done
		# shellcheck disable=SC2086
		run "$name" $w hogwild "$prog" --key-ranges "$range" --direct "$width" --updater sgd:lr=0.1 $INIT -- $sgd_args
	done
}

SPAM="--train data/spamassassin/train.svm --test data/spamassassin/test.svm --name spamassassin --reference 0.985 --log1p --normalize --epochs 10 --target-loss 0.05"
INIT=""
modes spamassassin sparse_lr adagrad:lr=0.5 0-262144 1 "$SPAM" "$SPAM --lr 1"

FASHION="--train data/fashion/train.svm --test data/fashion/test.svm --name fashion-mnist --reference 0.842 --epochs 10 --target-loss 0.5"
modes fashion-mnist sparse_lr adagrad:lr=0.05 0-784 10 "$FASHION" "$FASHION --lr 0.01 --decay 0.5"

# MovieLens keys: user u -> 2u, movie i -> 2i + 1
NKEYS=$(awk -F, 'FNR > 1 { k = 2 * $1; if (2 * $2 + 1 > k) k = 2 * $2 + 1; if (k > m) m = k } END { print m }' \
	data/movielens/train.csv data/movielens/test.csv)
ML="--train data/movielens/train.csv --test data/movielens/test.csv --name movielens --reference 0.88 --factors 50 --reg 0.08 --bias-reg 0.02 --epochs 60 --target-loss 0.9"
INIT="--init normal:std=0.1,seed=1"
modes movielens mf sgd:lr=0.01 "0-$NKEYS" 51 "$ML --batch 16" "$ML --lr 0.01 --decay 0.05"
INIT=""

# Fashion-MNIST with hashed pairwise crosses: 2^20 buckets x 10 classes
CROSS="--train data/fashion/train.svm --test data/fashion/test.svm --name fashion-cross20 --reference 0.842 --epochs 10 --cross 20 --normalize --target-loss 0.5"
run fashion-cross20 1 local sparse_lr -- $CROSS --lr 0.2 --decay 0.5
run fashion-cross20 2 hogwild sparse_lr --key-ranges 0-$((784 + (1 << 20))) --direct 10 --updater sgd:lr=0.1 -- $CROSS --lr 0.2 --decay 0.5
run fashion-cross20 2 asp sparse_lr --updater adagrad:lr=0.2 -- $CROSS

echo "results in $OUT/results.txt" >&2
