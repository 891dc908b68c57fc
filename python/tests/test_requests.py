"""Push, pull, pushpull and their argument checks, in jobs started by hps launch."""


def test_round_trip_widths_and_default_out(job):
    out = job.run("""
        with hps.init() as ctx, ctx.worker(width=2) as w:
            assert ctx.rank == 0 and ctx.num_workers == 1 and ctx.num_servers == 2
            assert ctx.resume_clock == 0 and ctx.membership_epoch >= 0
            assert ctx.role == hps.ROLE_WORKER and w.width == 2 and w.ctx is ctx
            k = np.array([1, 3, 5, 2**63 + 7], dtype=np.uint64)
            v = np.arange(8, dtype=np.float32)
            t = w.push(k, v)
            assert t.wait() is None and t.done and t.op == "push" and t.ts >= 0
            got = w.pull(k).wait()
            assert got.shape == (4, 2) and got.dtype == np.float32 and (got.ravel() == v).all()
            out = np.zeros(8, np.float32)
            assert w.pull(k, out=out).wait() is out and (out == v).all()
            assert (w.pushpull(k, v, out=out).wait() == 2 * v).all()
            assert (w.pushpull(k, v).wait() == 3 * v).all()
            # a request's own width; array.array and memoryview work too
            import array
            k1 = array.array("Q", [100, 101])
            w.push(k1, memoryview(array.array("f", [1, 2, 3, 4, 5, 6])), width=3).wait()
            assert w.pull(k1, width=3).wait().tolist() == [[1, 2, 3], [4, 5, 6]]
            print("ok", repr(t), repr(w), repr(ctx))
    """, servers=2)
    assert "ok <hps.Request push" in out


def test_float64_range(job):
    job.run("""
        with hps.init() as ctx, ctx.worker() as w:
            k = np.array([1, 2], dtype=np.uint64)
            v = np.array([1e-300, 3.141592653589793])
            w.push(k, v).wait()
            assert (w.pull(k, dtype=np.float64).wait() == v).all()
    """, args=["--dtype", "f64"])


def test_bad_arguments_raise_and_lose_nothing(job):
    out = job.run("""
        import pytest
        with hps.init() as ctx, ctx.worker() as w:
            k = np.array([1, 2, 3], dtype=np.uint64)
            v = np.ones(3, np.float32)
            def refused(exc, word, f):
                with pytest.raises(exc) as e:
                    f()
                assert word in str(e.value), str(e.value)
            refused(TypeError, "keys", lambda: w.push(k.astype(np.int64), v))
            refused(TypeError, "keys", lambda: w.push([1, 2, 3], v))
            refused(TypeError, "vals", lambda: w.push(k, v.astype(np.float16)))
            refused(TypeError, "vals", lambda: w.push(k, v.astype(np.int32)))
            refused(TypeError, "vals", lambda: w.push(k, v.byteswap().view(v.dtype.newbyteorder())))
            refused(ValueError, "C-contiguous", lambda: w.push(k, np.ones(6, np.float32)[::2]))
            refused(ValueError, "keys", lambda: w.push(np.arange(6, dtype=np.uint64)[::2], v))
            ro = np.zeros(3, np.float32); ro.flags.writeable = False
            refused(ValueError, "out", lambda: w.pull(k, out=ro))
            refused(ValueError, "out", lambda: w.pull(k, out=memoryview(bytes(12)).cast("f")))
            refused(TypeError, "out", lambda: w.pull(k, out=bytearray(12)))
            refused(ValueError, "vals", lambda: w.push(k, np.ones(4, np.float32)))
            refused(ValueError, "out", lambda: w.pull(k, out=np.ones(2, np.float32)))
            refused(ValueError, "empty", lambda: w.push(np.array([], np.uint64), np.array([], np.float32)))
            refused(TypeError, "dtype of vals", lambda: w.pushpull(k, v, out=np.ones(3)))
            refused(ValueError, "width", lambda: w.push(k, v, width=2**40))
            refused(hps.KeyOrder, "push", lambda: w.push(np.array([3, 1, 2], np.uint64), v))
            refused(hps.KeyOrder, "pull", lambda: w.pull(np.array([1, 1, 2], np.uint64)))
            refused(ValueError, "width", lambda: ctx.worker(width=0))
            refused(hps.Exists, "worker", lambda: ctx.worker())
            refused(ValueError, "n > 0", lambda: w.alloc(0))
            refused(TypeError, "integer", lambda: ctx.direct("x"))
            refused(ValueError, "key", lambda: ctx.direct(-1))
            refused(hps.InvalidArgument, "worker", lambda: ctx.serve(None))
            # everything still works, nothing was applied
            w.push(k, v).wait()
            assert (w.pull(k).wait() == 1).all()
            print("ok")
    """)
    assert "ok" in out


def test_variable_length_values(job):
    job.run("""
        with hps.init() as ctx, ctx.worker() as w:
            k = np.array([4, 7, 9], dtype=np.uint64)
            lens = np.array([1, 3, 2], dtype=np.uint32)
            v = np.arange(6, dtype=np.float32)
            w.push(k, v, lens=lens).wait()
            out, ol = np.zeros(6, np.float32), np.zeros(3, np.uint32)
            w.pull(k, out, out_lens=ol).wait()
            assert (out == v).all() and (ol == lens).all()
            import pytest
            with pytest.raises(ValueError):
                w.push(k, v, lens=np.array([1, 1], np.uint32))
            with pytest.raises(ValueError):
                w.push(k, v[:5], lens=lens)
            with pytest.raises(TypeError):
                w.push(k, v, lens=lens.astype(np.int64))
            with pytest.raises(ValueError):
                w.pull(k, out_lens=ol)
    """)


def test_buffers_dropped_while_requests_run(job):
    job.run("""
        import gc
        with hps.init() as ctx, ctx.worker(width=256) as w:
            n = 2000
            k = np.arange(n, dtype=np.uint64)
            reqs = []
            for i in range(20):  # the caller keeps no reference to keys or values
                reqs.append(w.push(np.arange(n, dtype=np.uint64), np.full(n * 256, 1.0, np.float32)))
                gc.collect()
            for r in reqs:
                r.wait()
            t = w.pull(k, out=np.zeros(n * 256, np.float32))  # out lives in the request only
            gc.collect()
            assert (t.wait() == 20).all()
            # a request dropped unwaited completes before its buffers go
            w.push(np.arange(n, dtype=np.uint64), np.full(n * 256, 1.0, np.float32))
            gc.collect()
            assert (w.pull(k).wait() == 21).all()
    """)


def test_closed_worker_and_context(job):
    job.run("""
        import pytest
        ctx = hps.init()
        w = ctx.worker()
        k = np.array([1], dtype=np.uint64)
        t = w.push(k, np.ones(1, np.float32))
        w.close()  # waits for t
        assert t.done and t.wait() is None and w.closed
        for f in (lambda: w.push(k, np.ones(1, np.float32)), lambda: w.pull(k), w.clock, lambda: w.alloc(4)):
            with pytest.raises(hps.Closed):
                f()
        w.close()  # twice is fine
        # the servers count this process as done: no second worker (libhps)
        with pytest.raises(hps.Closed):
            ctx.worker()
        ctx.close()
        assert ctx.closed
        for f in (ctx.barrier, lambda: ctx.rank, lambda: ctx.save("x"), lambda: ctx.worker()):
            with pytest.raises(hps.Closed):
                f()
        ctx.close()
        assert "closed" in repr(ctx)
    """)
