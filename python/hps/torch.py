"""PyTorch sparse embeddings kept on the hps servers.

    import hps, hps.torch
    ctx = hps.init(); w = ctx.worker()
    emb = hps.torch.Embedding(w, num_embeddings=10**9, dim=16)
    out = emb(ids)                 # pulls the rows of the batch's ids
    loss(out).backward()           # pushes their gradients to the servers
    opt.step(); w.clock()          # the dense part steps in PyTorch

The table lives on the servers, which apply their optimizer (``hps launch
--updater sgd:lr=..|adagrad:..|ftrl:..|adam:..``) to every pushed gradient
and initialise rows on first touch (``--init``). A forward pulls only the
batch's distinct ids (unique, sorted) as a (n, dim) float32 tensor that
shares its memory with the pulled numpy array; a backward sums the
gradient of each distinct row and pushes it without waiting. The next
forward (or flush()) waits for those pushes, so their errors surface there.
Key of id i: key_offset + i, so several tables can share one job.
"""
import numpy as np
import torch

__all__ = ["Embedding"]


class Embedding(torch.nn.Module):
    """An embedding table of ``num_embeddings`` rows of ``dim`` floats held
    by the hps servers (keys key_offset .. key_offset + num_embeddings - 1),
    trained by the servers' optimizer. It has no torch parameters: give
    your torch optimizer only the dense part's."""

    def __init__(self, worker, num_embeddings, dim, key_offset=0):
        super().__init__()
        if num_embeddings <= 0 or dim <= 0:
            raise ValueError("num_embeddings and dim must be positive")
        if key_offset < 0 or key_offset + num_embeddings > 2 ** 64:
            raise ValueError("key_offset + num_embeddings must fit uint64 keys")
        self.worker = worker
        self.num_embeddings = int(num_embeddings)
        self.dim = int(dim)
        self.key_offset = int(key_offset)
        self._pending = []

    def flush(self):
        """Waits for the gradients pushed so far (raises their errors)."""
        pending, self._pending = self._pending, []
        for r in pending:
            r.wait()

    def pull_rows(self, ids):
        """The current rows of ids (any ints within the table), a float32
        tensor (len(ids), dim); for evaluation and tests."""
        ids = torch.as_tensor(ids, dtype=torch.int64).reshape(-1)
        uniq, inverse = torch.unique(ids, sorted=True, return_inverse=True)
        return torch.from_numpy(self._pull(uniq))[inverse]

    def _keys(self, uniq):
        if len(uniq) and (int(uniq[0]) < 0 or int(uniq[-1]) >= self.num_embeddings):
            raise IndexError("ids must lie in 0 .. %d" % (self.num_embeddings - 1))
        return uniq.numpy().astype(np.uint64) + np.uint64(self.key_offset)

    def _pull(self, uniq):
        self.flush()
        return self.worker.pull(self._keys(uniq), width=self.dim).wait().reshape(len(uniq), self.dim)

    def forward(self, ids):
        ids = torch.as_tensor(ids)
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError("ids must be an integer tensor, not %s" % ids.dtype)
        flat = ids.reshape(-1).to(torch.int64)
        if flat.numel() == 0:
            return torch.zeros(*ids.shape, self.dim)
        uniq, inverse = torch.unique(flat, sorted=True, return_inverse=True)
        keys = self._keys(uniq)
        rows = torch.from_numpy(self._pull(uniq))
        if torch.is_grad_enabled():
            rows.requires_grad_(True)
            rows.register_hook(lambda g: self._push(keys, g))
        return torch.nn.functional.embedding(inverse, rows).reshape(*ids.shape, self.dim)

    def _push(self, keys, grad):
        g = grad.detach().to(torch.float32).contiguous().numpy()
        self._pending.append(self.worker.push(keys, g, width=self.dim))
        return None

    def extra_repr(self):
        return "num_embeddings=%d, dim=%d, key_offset=%d (on the hps servers)" % (
            self.num_embeddings, self.dim, self.key_offset)
