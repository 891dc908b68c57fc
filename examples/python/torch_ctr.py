#!/usr/bin/python3
"""A CTR-style model in PyTorch with its sparse part on hps: logistic
regression plus an optional factorization machine (Rendle 2010) over the
SpamAssassin tokens, with the per-token weights and factors kept on the
servers (hps.torch.Embedding) and trained by the servers' optimizer.

    hps launch -s 1 -w 2 --staleness bsp --updater adagrad:lr=0.5 -- \\
        /usr/bin/python3 examples/python/torch_ctr.py --train data/spamassassin/train.svm \\
        --test data/spamassassin/test.svm --log1p --normalize --name spamassassin --reference 0.985 [--fm-dim 8]

logit(row) = b + sum_j x_j w[f_j] + 1/2 sum_k ((sum_j x_j v[f_j,k])^2 - sum_j x_j^2 v[f_j,k]^2)

w (key f, width 1) and v (key offset + f, width --fm-dim) live on the
servers; b, the bias, is key 0 of w like in examples/sparse_lr.c. With
--log1p --normalize rows are log1p'ed and L2-normalised; each worker takes its shard, in the C
example's order; worker 0 evaluates after each epoch and prints the same
`result ...` line as the C examples.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hps  # noqa: E402
import hps.torch  # noqa: E402
from sparse_lr import M64, read_svm, shuffle, transform  # noqa: E402


class CTR(torch.nn.Module):
    def __init__(self, worker, nkeys, fm_dim):
        super().__init__()
        self.lin = hps.torch.Embedding(worker, nkeys, 1)
        self.fm = hps.torch.Embedding(worker, nkeys, fm_dim, key_offset=1 << 40) if fm_dim else None

    def forward(self, f, x, rowid, nrows):
        # the bias is key 0, one per row
        bias = self.lin(torch.zeros(1, dtype=torch.int64))[0, 0]
        z = torch.zeros(nrows).index_add_(0, rowid, x * self.lin(f)[:, 0]) + bias
        if self.fm is not None:
            v = self.fm(f) * x[:, None]
            s = torch.zeros(nrows, v.shape[1]).index_add_(0, rowid, v)
            s2 = torch.zeros(nrows, v.shape[1]).index_add_(0, rowid, v * v)
            z = z + 0.5 * (s * s - s2).sum(1)
        return z

    def flush(self):
        self.lin.flush()
        if self.fm is not None:
            self.fm.flush()


def batch(st, idx, val, rows):
    lens = st[rows + 1] - st[rows]
    sel = np.concatenate([np.arange(st[r], st[r + 1]) for r in rows]) if len(rows) else np.zeros(0, np.int64)
    return (torch.from_numpy(idx[sel]), torch.from_numpy(val[sel].astype(np.float32)),
            torch.from_numpy(np.repeat(np.arange(len(rows)), lens)))


def main():
    ctx = hps.init(sys.argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--name", default="data")
    ap.add_argument("--reference", type=float, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--fm-dim", type=int, default=0)
    ap.add_argument("--log1p", action="store_true")
    ap.add_argument("--normalize", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(sys.argv[1:])
    torch.set_num_threads(1)
    rank, nw = ctx.rank, ctx.num_workers
    st, idx, val, lab, file_rows = read_svm(a.train, rank, nw)
    tst, tidx, tval, tlab, _ = read_svm(a.test)
    val = transform(st, val, a.log1p, a.normalize)
    tval = transform(tst, tval, a.log1p, a.normalize)
    nkeys = int(max(idx.max(initial=0), tidx.max(initial=0))) + 1
    s = os.environ.get("HPS_STALENESS", "")
    mode = "asp" if s in ("", "asp", "inf") else "bsp" if s in ("bsp", "0") else "ssp" + s
    w = ctx.worker(width=1)
    model = CTR(w, nkeys, a.fm_dim)
    rows = len(st) - 1
    batches = ((file_rows + nw - 1) // nw + a.batch - 1) // a.batch
    ylab = torch.from_numpy(lab.astype(np.float32))
    train_s, acc = 0.0, 0.0
    ctx.barrier()
    for e in range(1, a.epochs + 1):
        order = shuffle(rows, (a.seed * 1000003 + rank * 7919 + e) & M64)
        t0 = time.time()
        loss_sum = 0.0
        for t in range(batches):
            sel = order[t * a.batch:(t + 1) * a.batch]
            if len(sel):
                f, x, rowid = batch(st, idx, val, sel)
                z = model(f, x, rowid, len(sel))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(z, ylab[sel])
                loss.backward()  # pushes the rows' gradients to the servers
                loss_sum += float(loss) * len(sel)
            w.clock()
        model.flush()
        ctx.barrier()  # every update of the epoch is in
        dt = time.time() - t0
        train_s += dt
        if rank == 0:
            with torch.no_grad():
                f, x, rowid = batch(tst, tidx, tval, np.arange(len(tst) - 1))
                z = model(f, x, rowid, len(tst) - 1)
                ty = torch.from_numpy(tlab.astype(np.float32))
                tloss = float(torch.nn.functional.binary_cross_entropy_with_logits(z, ty))
                acc = float(((z > 0).float() == ty).float().mean())
            print("epoch %d/%d train_loss=%.4f test_loss=%.4f test_accuracy=%.4f seconds=%.3f updates_per_s=%.0f"
                  % (e, a.epochs, loss_sum / max(rows, 1), tloss, acc, train_s, file_rows / dt), flush=True)
        ctx.barrier()  # nobody trains while worker 0 evaluates
    if rank == 0:
        print("result dataset=%s mode=%s workers=%d test_accuracy=%.4f reference=%g seconds=%.3f updates_per_s=%.0f"
              % (a.name, mode, nw, acc, a.reference, train_s, file_rows * a.epochs / train_s), flush=True)
    w.close()
    ctx.close()


if __name__ == "__main__":
    main()
