#!/bin/bash
# Plots the runs of examples/experiments.sh with gnuplot (Debian's
# gnuplot-nox, installed when missing): one PNG per data set with the test
# loss and the test metric against training time for every mode (2
# workers, and the single-process baseline), and the speedup in updates/s
# from 1 to 2 workers per mode.
#   examples/plot.sh [RUNS] [OUT]     (default data/runs docs/plots)
set -euo pipefail
RUNS=${1:-data/runs}
OUT=${2:-docs/plots}
if ! command -v gnuplot >/dev/null; then
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for ds in spamassassin fashion-mnist movielens; do
	[ -s "$RUNS/$ds-local-w1.csv" ] || { echo "plot.sh: no runs of $ds in $RUNS" >&2; continue; }
	metric=$(head -1 "$RUNS/$ds-local-w1.csv" | cut -d, -f8)
	# speedup: updates/s of the 2-worker run over the 1-worker run, per mode
	: > "$tmp/speedup"
	for m in bsp ssp2 asp hogwild; do
		u1=$(grep "dataset=$ds mode=$m workers=1 " "$RUNS/results.txt" | sed 's/.*updates_per_s=\([0-9]*\).*/\1/')
		u2=$(grep "dataset=$ds mode=$m workers=2 " "$RUNS/results.txt" | sed 's/.*updates_per_s=\([0-9]*\).*/\1/')
		[ -n "$u1" ] && [ -n "$u2" ] && echo "$m 1 1" >> "$tmp/speedup" && echo "$m 2 $(awk "BEGIN { print $u2 / $u1 }")" >> "$tmp/speedup"
	done
	lines() { # one line per mode: column $1 against training seconds
		local first=1
		for f in "$RUNS/$ds-local-w1.csv" "$RUNS/$ds-bsp-w2.csv" "$RUNS/$ds-ssp2-w2.csv" "$RUNS/$ds-asp-w2.csv" \
			"$RUNS/$ds-hogwild-w2.csv"; do
			[ -s "$f" ] || continue
			local title
			title=$(basename "$f" .csv | sed "s/^$ds-//; s/-w1/ (1 process)/; s/-w2/ (2 workers)/")
			[ $first = 1 ] || printf ', '
			printf "'%s' using 5:%s with linespoints title '%s'" "$f" "$1" "$title"
			first=0
		done
	}
	gnuplot <<EOF
set terminal pngcairo size 1500,420 font ",10" noenhanced
set output '$OUT/$ds.png'
set datafile separator ','
set key autotitle columnhead
set multiplot layout 1,3 title '$ds: hps modes against a single process without a parameter server'
set xlabel 'training time (s)'
set ylabel 'test loss'
set key top right
plot $(lines 7)
set ylabel '$metric'
set key bottom right
plot $(lines 8)
set datafile separator whitespace
set key noautotitle
set xlabel 'workers'
set ylabel 'speedup in updates/s'
set xrange [0.8:2.2]
set xtics 1
set key top left
plot for [m in "bsp ssp2 asp hogwild"] '< grep "^'.m.' " $tmp/speedup' using 2:3 with linespoints title m, x with lines dashtype 2 title 'linear'
unset multiplot
EOF
	echo "plot.sh: $OUT/$ds.png"
done
