#!/usr/bin/python3
"""Sparse logistic regression (binary, or multinomial with --classes > 2)
trained through hps from Python: the counterpart of examples/sparse_lr.c
(server mode), with numpy doing the arithmetic.

    hps launch -s 1 -w 2 --staleness bsp --updater adagrad:lr=0.5 -- \\
        /usr/bin/python3 examples/python/sparse_lr.py --train data/spamassassin/train.svm \\
        --test data/spamassassin/test.svm --log1p --normalize --name spamassassin --reference 0.985

Each worker trains on its shard (rows r with r % workers == rank) in
mini-batches: it pulls the weights of the batch's distinct features (key
0 is the bias, feature f is key f), computes the mean gradient, pushes it to
the servers' optimizer (HPS_UPDATER) and advances its clock. Worker 0
evaluates the test set after every epoch while the others wait, and prints
the same `result ...` line as the C examples.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import hps  # noqa: E402


def read_svm(path, shard=0, nshards=1):
    """A libsvm file as CSR arrays (start, idx, val) and labels; keeps rows
    r with r % nshards == shard. Returns also the file's row count."""
    start, idx, val, lab = [0], [], [], []
    rows = 0
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            r, rows = rows, rows + 1
            if nshards > 1 and r % nshards != shard:
                continue
            lab.append(int(line[0]))
            for tok in line[1:]:
                k, v = tok.split(":")
                idx.append(int(k))
                val.append(float(v))
            start.append(len(idx))
    return (np.array(start, np.int64), np.array(idx, np.int64), np.array(val, np.float32),
            np.array(lab, np.int64), rows)


M64 = (1 << 64) - 1


def shuffle(n, seed):
    """examples/lib/dataset.c's ex_shuffle (splitmix64, Fisher-Yates), so
    that each worker visits its rows in the C example's order."""
    order = list(range(n))
    for i in range(n, 1, -1):
        seed = (seed + 0x9E3779B97F4A7C15) & M64
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        j = (z ^ (z >> 31)) % i
        order[i - 1], order[j] = order[j], order[i - 1]
    return np.array(order, np.int64)


def transform(start, val, log1p, normalize):
    if log1p:
        val = np.log1p(np.maximum(val, 0)).astype(np.float32)
    if normalize and len(val):
        rows = np.repeat(np.arange(len(start) - 1), np.diff(start))
        sq = np.bincount(rows, weights=val.astype(np.float64) ** 2, minlength=len(start) - 1)
        norm = np.sqrt(sq)
        norm[norm == 0] = 1
        val = (val / norm[rows]).astype(np.float32)
    return val


def scores(w_bias, w_rows, x, rowid, nrows):
    """z[rows, width]: bias + sum over each row's features of x * weights."""
    width = w_rows.shape[1]
    z = np.tile(w_bias.astype(np.float64), (nrows, 1))
    if width == 1:
        z[:, 0] += np.bincount(rowid, weights=x * w_rows[:, 0], minlength=nrows)
    else:
        for c in range(width):
            z[:, c] += np.bincount(rowid, weights=x * w_rows[:, c], minlength=nrows)
    return z


def loss_delta(z, y):
    """Losses and d = p - onehot(y), per row."""
    if z.shape[1] == 1:
        zz = z[:, 0]
        m = np.where(y == 1, zz, -zz)
        loss = np.logaddexp(0, -m)
        d = (1 / (1 + np.exp(-zz)) - (y == 1))[:, None]
        return loss, d
    mx = z.max(axis=1, keepdims=True)
    e = np.exp(z - mx)
    s = e.sum(axis=1, keepdims=True)
    loss = -(z[np.arange(len(y)), y] - mx[:, 0] - np.log(s[:, 0]))
    d = e / s
    d[np.arange(len(y)), y] -= 1
    return loss, d


def predict(z):
    return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(axis=1)


def main():
    ctx = hps.init(sys.argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--classes", type=int, default=0)
    ap.add_argument("--log1p", action="store_true")
    ap.add_argument("--normalize", action="store_true")
    ap.add_argument("--name", default="data")
    ap.add_argument("--reference", type=float, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(sys.argv[1:])
    u = os.environ.get("HPS_UPDATER", "")
    if not u.startswith(("sgd", "adagrad", "ftrl")):
        sys.exit("sparse_lr.py: the servers must run an optimizer: hps launch --updater sgd:lr=..|adagrad:lr=..|ftrl:alpha=..")
    rank, nw = ctx.rank, ctx.num_workers
    st, idx, val, lab, file_rows = read_svm(a.train, rank, nw)
    tst, tidx, tval, tlab, _ = read_svm(a.test)
    val = transform(st, val, a.log1p, a.normalize)
    tval = transform(tst, tval, a.log1p, a.normalize)
    classes = a.classes or max(2, int(max(lab.max(initial=0), tlab.max(initial=0))) + 1)
    width = 1 if classes == 2 else classes
    nkeys = int(max(idx.max(initial=0), tidx.max(initial=0))) + 1
    s = os.environ.get("HPS_STALENESS", "")
    mode = "asp" if s in ("", "asp", "inf") else "bsp" if s in ("bsp", "0") else "ssp" + s
    w = ctx.worker(width=width)
    rows = len(st) - 1
    shard_max = (file_rows + nw - 1) // nw
    batches = (shard_max + a.batch - 1) // a.batch
    train_s, acc = 0.0, 0.0
    ctx.barrier()
    for e in range(1, a.epochs + 1):
        order = shuffle(rows, (a.seed * 1000003 + rank * 7919 + e) & M64)
        t0 = time.time()
        loss_sum = 0.0
        last_push = None
        for t in range(batches):
            # every worker runs the same number of batches (and clocks), so
            # under BSP nobody waits for a clock that never comes
            sel = order[t * a.batch:(t + 1) * a.batch]
            if len(sel):
                lens = st[sel + 1] - st[sel]
                pos_in = np.concatenate([np.arange(st[r], st[r + 1]) for r in sel])
                f, x = idx[pos_in], val[pos_in].astype(np.float64)
                rowid = np.repeat(np.arange(len(sel)), lens)
                keys = np.unique(np.concatenate(([0], f))).astype(np.uint64)
                pos = np.searchsorted(keys, f)
                wts = w.pull(keys).wait().reshape(len(keys), width)
                if last_push is not None:
                    last_push.wait()  # applied before the pull: same ring, in order
                z = scores(wts[0], wts[pos], x, rowid, len(sel))
                loss, d = loss_delta(z, lab[sel])
                loss_sum += float(loss.sum())
                g = np.zeros((len(keys), width), np.float64)
                g[0] = d.sum(axis=0)
                for c in range(width):
                    g[:, c] += np.bincount(pos, weights=x * d[rowid, c], minlength=len(keys))
                g = (g / len(sel)).astype(np.float32)
                # not waited for: the next pull follows it on the same ring
                last_push = w.push(keys, g)
            w.clock()
        if last_push is not None:
            last_push.wait()
        ctx.barrier()  # every update of the epoch is in
        dt = time.time() - t0
        train_s += dt
        if rank == 0:
            model = np.empty((nkeys, width), np.float32)
            for first in range(0, nkeys, 16384):
                k = np.arange(first, min(nkeys, first + 16384), dtype=np.uint64)
                w.pull(k, out=model[first:first + len(k)]).wait()
            trow = np.repeat(np.arange(len(tst) - 1), np.diff(tst))
            z = scores(model[0], model[tidx], tval.astype(np.float64), trow, len(tst) - 1)
            tloss, _ = loss_delta(z, tlab)
            acc = float((predict(z) == tlab).mean())
            print("epoch %d/%d train_loss=%.4f test_loss=%.4f test_accuracy=%.4f seconds=%.3f updates_per_s=%.0f"
                  % (e, a.epochs, loss_sum / max(rows, 1), float(tloss.mean()), acc, train_s, file_rows / dt),
                  flush=True)
        ctx.barrier()  # nobody trains while worker 0 evaluates
    if rank == 0:
        print("result dataset=%s mode=%s workers=%d test_accuracy=%.4f reference=%g seconds=%.3f updates_per_s=%.0f"
              % (a.name, mode, nw, acc, a.reference, train_s, file_rows * a.epochs / train_s), flush=True)
    w.close()
    ctx.close()


if __name__ == "__main__":
    main()
