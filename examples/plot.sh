#!/bin/bash
# Plots the runs of examples/experiments.sh with gnuplot (Debian's
# gnuplot-nox; `make deps` installs it, and this script does when it is
# missing): one PNG per data set with a loss and the test metric against
# training time for every mode (2 workers, and the single-process
# baseline), and the speedup in updates/s from 1 to 2 workers per mode.
#   examples/plot.sh [RUNS] [OUT]     (default data/runs docs/plots)
#
# Readable at a glance: each mode has one colour and one marker in every
# panel of every plot (Okabe-Ito colours, none pale on white), axes say
# what they measure and in which unit, legends sit below the data, a panel
# never draws the same column twice, and the speedup panel starts at 0.
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

MODES="local bsp ssp2 asp hogwild"
declare -A COLOUR=([local]='#000000' [bsp]='#0072B2' [ssp2]='#009E73' [asp]='#D55E00' [hogwild]='#CC79A7')
declare -A MARK=([local]=7 [bsp]=5 [ssp2]=9 [asp]=13 [hogwild]=11) # filled circle, square, triangle, diamond, pentagon
declare -A NAME=([local]='local, 1 process (no PS)' [bsp]='BSP (deterministic)' [ssp2]='SSP s=2' [asp]='ASP'
	[hogwild]='HOGWILD direct')
declare -A SHORT=([bsp]='BSP' [ssp2]='SSP s=2' [asp]='ASP' [hogwild]='HOGWILD')

for ds in spamassassin fashion-mnist movielens; do
	[ -s "$RUNS/$ds-local-w1.csv" ] || { echo "plot.sh: no runs of $ds in $RUNS" >&2; continue; }
	# what each panel draws: CSV columns are dataset,mode,workers,epoch,
	# seconds,train_loss,test_loss,METRIC,updates_per_s
	case $ds in
	spamassassin)
		title='SpamAssassin (binary logistic regression)'
		y1='(column(7))'; y1label='test log loss (nats per message)'
		y2='(100*column(8))'; y2label='test accuracy (%)'; ref='98.5'; reflabel='published reference 98.5%'
		xlog=1 ;; # the fast modes finish within 0.05 s
	fashion-mnist)
		title='Fashion-MNIST (multinomial logistic regression)'
		y1='(column(7))'; y1label='test log loss (nats per image)'
		y2='(100*column(8))'; y2label='test accuracy (%)'; ref='84.2'; reflabel='published reference 84.2%'
		xlog=0 ;;
	movielens)
		# mf reports the test RMSE as both its test loss and its metric:
		# the first panel shows the training RMSE instead
		title='MovieLens (matrix factorisation)'
		y1='(column(6))'; y1label='training RMSE (stars; worker 0, before each update)'
		y2='(column(8))'; y2label='test RMSE (stars; lower is better)'; ref='0.88'; reflabel='published reference 0.88'
		xlog=0 ;;
	esac
	# speedup: updates/s of the 2-worker run over the 1-worker run, per mode
	: > "$tmp/speedup"
	for m in bsp ssp2 asp hogwild; do
		u1=$(grep "dataset=$ds mode=$m workers=1 " "$RUNS/results.txt" | sed 's/.*updates_per_s=\([0-9]*\).*/\1/')
		u2=$(grep "dataset=$ds mode=$m workers=2 " "$RUNS/results.txt" | sed 's/.*updates_per_s=\([0-9]*\).*/\1/')
		[ -n "$u1" ] && [ -n "$u2" ] &&
			echo "\"${SHORT[$m]}\" $(awk "BEGIN { print $u2 / $u1 }") $((16#${COLOUR[$m]#\#}))" >> "$tmp/speedup"
	done
	top=$(awk 'BEGIN { t = 2.3 } { if ($NF && $(NF-1) * 1.15 > t) t = $(NF-1) * 1.15 } END { print t }' "$tmp/speedup")
	curves() { # one curve per mode: the expression $1 against training seconds
		local first=1 m f
		for m in $MODES; do
			f="$RUNS/$ds-$m-w2.csv"
			[ "$m" = local ] && f="$RUNS/$ds-local-w1.csv"
			[ -s "$f" ] || continue
			[ $first = 1 ] || printf ', '
			# about 12 markers a curve, so that 60 epochs stay a line
			printf "'%s' using 5:%s with linespoints lw 2 lc rgb '%s' pt %s ps 1.1 pi %d title '%s'" \
				"$f" "$1" "${COLOUR[$m]}" "${MARK[$m]}" $((($(wc -l < "$f") + 10) / 12)) "${NAME[$m]}"
			first=0
		done
	}
	xaxis='unset logscale x'
	[ "$xlog" = 1 ] && xaxis='set logscale x; set format x "%g"; set mxtics 10'
	gnuplot <<EOF
set terminal pngcairo size 1560,600 font ",11" noenhanced
set output '$OUT/$ds.png'
set datafile separator ','
set key noautotitle
set grid lc rgb '#dddddd'
set border lc rgb '#444444'
set multiplot title '$title: 2 workers and 1 server per mode, against one process without a parameter server'
# panels by hand, above a strip that holds one legend for the whole figure:
# no legend covers data, every mode is named once
set bmargin at screen 0.25
set tmargin at screen 0.9
set lmargin at screen 0.06
set rmargin at screen 0.32
set xlabel 'training time (s$( [ "$xlog" = 1 ] && echo ', log scale'))'
$xaxis
set ylabel '$y1label'
set offsets 0, 0, graph 0.05, graph 0.05 # no marker on the frame
plot $(curves "$y1" | sed "s/ title '[^']*'/ notitle/g")
set lmargin at screen 0.39
set rmargin at screen 0.65
set ylabel '$y2label'
plot $(curves "$y2" | sed "s/ title '[^']*'/ notitle/g"), $ref with lines lw 2 dt 2 lc rgb '#555555' notitle
unset logscale x
unset offsets
set format x '%g'
set datafile separator whitespace
set lmargin at screen 0.72
set rmargin at screen 0.985
set xlabel 'mode (2 workers against 1 worker)'
set ylabel 'speedup in updates/s (2 workers / 1 worker)'
set yrange [0:$top]
set xrange [-0.6:3.6]
set xtics scale 0
set style fill solid 0.85 border lc rgb '#222222'
set boxwidth 0.6
plot '$tmp/speedup' using 0:2:3:xtic(1) with boxes lc rgb variable notitle, \
	'' using 0:2:(sprintf('%.2fx', \$2)) with labels offset 0,0.8 notitle, \
	1 with lines lw 2 lc rgb '#555555' notitle, 2 with lines lw 2 dt 2 lc rgb '#000000' notitle
# the legend: the same curves, empty, in a plot without axes
set lmargin at screen 0.03
set rmargin at screen 0.97
set bmargin at screen 0.01
set tmargin at screen 0.12
unset border; unset tics; unset xlabel; unset ylabel; unset grid; unset logscale x
set xrange [0:1]; set yrange [0:1]
set key inside center center horizontal maxrows 2 width 2 samplen 3
set datafile separator ','
plot $(curves "(NaN)"), \
	NaN with lines lw 2 dt 2 lc rgb '#555555' title '$reflabel', \
	NaN with lines lw 2 lc rgb '#555555' title 'speedup: no gain (1x)', \
	NaN with lines lw 2 dt 2 lc rgb '#000000' title 'speedup: linear (2x)'
unset multiplot
EOF
	echo "plot.sh: $OUT/$ds.png"
done
