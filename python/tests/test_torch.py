"""hps.torch.Embedding against torch.nn.Embedding with SGD. The job imports
hps before torch: the order that once made libstdc++ free into jemalloc."""
import pytest

pytest.importorskip("torch")


def test_embedding_matches_torch_with_sgd(job):
    out = job.run("""
        import pytest, torch, hps.torch
        torch.manual_seed(3)
        with hps.init() as ctx, ctx.worker() as w:
            N, D, lr = 50, 4, 0.1
            emb = hps.torch.Embedding(w, N, D, key_offset=1000)
            ref = torch.nn.Embedding(N, D)
            with torch.no_grad():
                ref.weight.fill_(0.5)                    # the servers' --init constant:value=0.5
            lin = torch.nn.Linear(D, 1)
            lin_ref = torch.nn.Linear(D, 1)
            lin_ref.load_state_dict(lin.state_dict())
            opt = torch.optim.SGD(lin.parameters(), lr=lr)
            opt_ref = torch.optim.SGD(list(ref.parameters()) + list(lin_ref.parameters()), lr=lr)
            for step in range(8):
                ids = torch.randint(0, N, (16, 3))       # repeated ids within a batch
                y = torch.randn(16, 1)
                for model, e, o in ((lin, emb, opt), (lin_ref, ref, opt_ref)):
                    o.zero_grad()
                    loss = ((model(e(ids).sum(1)) - y) ** 2).mean()
                    loss.backward()
                    o.step()
                emb.flush()
            got = emb.pull_rows(torch.arange(N))
            assert torch.allclose(got, ref.weight.detach(), atol=1e-5), (got - ref.weight).abs().max()
            assert (got != 0.5).any()
            with torch.no_grad():                        # no gradient, no push
                emb(torch.tensor([1, 2]))
            assert not emb._pending
            with pytest.raises(IndexError):
                emb(torch.tensor([N]))
            with pytest.raises(TypeError):
                emb(torch.tensor([0.5]))
            assert emb(torch.zeros(0, 2, dtype=torch.int64)).shape == (0, 2, D)
            print("torch ok", repr(emb))
    """, servers=2, args=["--updater", "sgd:lr=0.1", "--init", "constant:value=0.5"], timeout=120)
    assert "torch ok" in out
