#!/bin/bash
# Regenerates the small fixed subsets of the real data sets that
# `make test` trains on (tests/fixtures/), from the files `make data`
# prepared: the first rows of each (already shuffled by seed 42) split.
set -euo pipefail
DATA=${1:-data}
OUT=tests/fixtures
mkdir -p "$OUT"
head -n 250 "$DATA/spamassassin/train.svm" > "$OUT/spam_train.svm"
head -n 100 "$DATA/spamassassin/test.svm" > "$OUT/spam_test.svm"
# Fashion-MNIST: first 150 training images of the file (ordered as Zalando
# ships them), pixel values cut to two digits to keep the fixture small.
round='{ printf "%s", $1; for (i = 2; i <= NF; i++) { split($i, kv, ":"); printf " %s:%.2g", kv[1], kv[2] } print "" }'
head -n 150 "$DATA/fashion/train.svm" | awk "$round" > "$OUT/fashion_train.svm"
head -n 60 "$DATA/fashion/test.svm" | awk "$round" > "$OUT/fashion_test.svm"
head -n 4001 "$DATA/movielens/train.csv" > "$OUT/movielens_train.csv"
head -n 1001 "$DATA/movielens/test.csv" > "$OUT/movielens_test.csv"
ls -l "$OUT"
