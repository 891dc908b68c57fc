"""Threads, shared-heap arrays, barriers, clocks, checkpoints, direct
ranges, Python server handlers and failing servers."""


def test_threads_push_and_pull_concurrently(job):
    job.run("""
        import threading
        with hps.init() as ctx, ctx.worker(width=4) as w:
            errors = []
            def run(t):
                try:
                    k = np.arange(t * 100000, t * 100000 + 500, dtype=np.uint64)
                    # large enough to be submitted without the GIL
                    big = np.arange(t * 100000 + 1000, t * 100000 + 21000, dtype=np.uint64)
                    for i in range(100):
                        w.push(k, np.ones(2000, np.float32)).wait()
                        if i % 10 == 0:
                            w.push(big, np.ones(80000, np.float32)).wait()
                        got = w.pull(k).wait()
                        assert (got == i + 1).all(), (t, i, got[:3])
                except Exception as e:
                    errors.append(repr(e))
            ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
            for t in ts: t.start()
            for t in ts: t.join()
            assert not errors, errors
            print("threads ok")
    """, servers=2)


def test_alloc_arrays_live_in_the_shared_heap(job):
    job.run("""
        import pytest
        ctx = hps.init()
        w = ctx.worker(width=1)
        k = np.arange(1000, dtype=np.uint64)
        a = w.alloc(1000)
        b = w.alloc(1000, np.float32)
        assert a.dtype == np.float32 and a.shape == (1000,) and a.flags.writeable
        a[:] = 3
        w.pushpull(k, a, out=b).wait()   # read and written in place
        assert (b == 3).all()
        with pytest.raises(hps.InvalidArgument) as e:
            w.close()
        assert "2 array(s)" in str(e.value) and not w.closed
        with pytest.raises(hps.OutOfMemory):
            w.alloc(1 << 40)
        view = b[10:20]
        del a, b
        with pytest.raises(hps.InvalidArgument):
            ctx.close()  # the view still holds the heap block
        del view
        ctx.close()
        assert w.closed
    """)


def test_barrier_clock_save_load(job):
    job.run("""
        ckpt = os.path.join(OUT, "ckpt")
        with hps.init() as ctx, ctx.worker() as w:
            k = np.arange(10, dtype=np.uint64)
            w.push(k, np.ones(10, np.float32)).wait()
            w.clock()
            ctx.barrier()
            if ctx.rank == 0:
                ctx.save(ckpt)
            ctx.barrier()
            w.push(k, np.ones(10, np.float32)).wait()
            w.clock()
            ctx.barrier()
            assert (w.pull(k).wait() == 2 * ctx.num_workers).all()
            ctx.barrier()
            if ctx.rank == 0:
                assert ctx.load(ckpt) == 1   # the smallest clock saved
                import pytest
                with pytest.raises(hps.ProtocolError):
                    ctx.load(OUT)            # not a checkpoint
            ctx.barrier()
            assert (w.pull(k).wait() == ctx.num_workers).all()
    """, servers=2, workers=2)


def test_direct_range_is_a_writable_view(job):
    job.run("""
        import pytest
        with hps.init() as ctx, ctx.worker(width=2) as w:
            first, d = ctx.direct_range(5)
            assert first == 0 and d.shape == (100, 2) and d.dtype == np.float32
            d[5] = [7, 8]
            assert w.pull(np.array([5], np.uint64)).wait().tolist() == [[7, 8]]
            w.push(np.array([5], np.uint64), np.ones(2, np.float32)).wait()
            assert d[5].tolist() == [8, 9]
            with pytest.raises(hps.NoKey):
                ctx.direct(1000)
            with pytest.raises(hps.InvalidArgument):
                ctx.close()  # d is alive
            del d
    """, args=["--key-ranges", "0-99", "--direct", "2"])


def test_python_server_handler(job):
    out = job.run("""
        def handler(r):
            assert r.keys.dtype == np.uint64 and r.width == 1 and r.dtype == np.float32
            if r.keys[0] == 666:
                raise hps.NoKey("no such key")
            if r.keys[0] == 667:
                raise RuntimeError("a bug in the handler")
            if r.keys[0] == 668:
                return np.zeros(r.out_cap + 5)   # too many values
            if r.type != hps.PULL:
                for k, v in zip(r.keys, r.vals):
                    table[int(k)] = table.get(int(k), 0) + 10 * v
            if r.type != hps.PUSH:
                return [table.get(int(k), 0) for k in r.keys]
        table = {}
        ctx = hps.init()
        if ctx.role == hps.ROLE_SERVER:
            ctx.serve(handler)
            ctx.close()
            sys.exit(0)
        import pytest
        with ctx, ctx.worker() as w:
            k = np.array([1, 2], np.uint64)
            w.push(k, np.array([1, 2], np.float32)).wait()
            assert w.pull(k).wait().tolist() == [10, 20]
            assert w.pushpull(k, np.ones(2, np.float32)).wait().tolist() == [20, 30]
            with pytest.raises(hps.NoKey):
                w.pull(np.array([666], np.uint64)).wait()
            with pytest.raises(hps.HandlerError):
                w.pull(np.array([667], np.uint64)).wait()
            with pytest.raises(hps.HandlerError):
                w.pull(np.array([668], np.uint64)).wait()
            assert w.pull(k).wait().tolist() == [20, 30]
            print("handler ok")
    """, args=["--self-serve"])
    assert "handler ok" in out and "a bug in the handler" in out


def test_dead_server_and_timeout(job):
    out = job.run("""
        import signal
        def handler(r):
            if r.keys[0] == 1:
                import time; time.sleep(1.5)    # past HPS_TIMEOUT_MS
            if r.keys[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return np.zeros(len(r.keys), np.float32) if r.type != hps.PUSH else None
        ctx = hps.init()
        if ctx.role == hps.ROLE_SERVER:
            ctx.serve(handler)
            sys.exit(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # outlive the launcher's stop to report
        w = ctx.worker()
        res = []
        try:
            w.pull(np.array([1], np.uint64)).wait()
        except hps.Timeout as e:
            res.append("timeout")
        try:
            w.push(np.array([2], np.uint64), np.ones(1, np.float32)).wait()
        except hps.PeerDead as e:
            res.append("peerdead")
        try:
            w.push(np.array([3], np.uint64), np.ones(1, np.float32)).wait()
        except (hps.PeerDead, hps.Closed) as e:
            res.append("after")
        open(os.path.join(OUT, "res"), "w").write(" ".join(res))
        w.close()
        ctx.close()
    """, args=["--self-serve", "--timeout-ms", "1000"], expect_rc=None, timeout=60)
    import pathlib
    res = pathlib.Path(job.tmp, "res")
    assert res.exists(), out
    assert res.read_text() == "timeout peerdead after", out


def test_init_consumes_hps_arguments(job):
    job.run("""
        argv = ["prog", "--hps-timeout-ms=5000", "--other", "x"]
        with hps.init(argv) as ctx:
            assert argv == ["prog", "--other", "x"], argv
    """)


def test_close_while_other_threads_submit(job):
    job.run("""
        import threading
        ctx = hps.init()
        w = ctx.worker()
        seen, stop = [], threading.Event()
        def run(t):
            k = np.arange(t * 1000, t * 1000 + 3000, dtype=np.uint64)
            while not stop.is_set():
                try:
                    w.push(k, np.ones(3000, np.float32)).wait()
                except hps.Closed:
                    seen.append(t)
                    return
        ts = [threading.Thread(target=run, args=(t,)) for t in range(3)]
        for t in ts: t.start()
        import time; time.sleep(0.3)
        w.close()          # waits for the requests in flight, then refuses new ones
        for t in ts: t.join(10)
        stop.set()
        assert sorted(seen) == [0, 1, 2], seen
        ctx.close()
        print("close ok")
    """)
