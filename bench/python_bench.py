#!/usr/bin/python3
"""The hps_bench cases lat, sparse1k and dense4M from Python (the hps
package), run as worker 0 of a 1-server job (`make bench-python` starts it
under hps launch beside bench/hps_bench). Same phases, repetitions and line
format as bench/cases.c, config py1S1W:

    case config phase MB/s keys/s ops/s p50_us p99_us

Sparse cases pass ordinary numpy arrays, dense ones arrays from
Worker.alloc (the shared heap), as hps_bench does with malloc/hps_alloc.
"""
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import hps  # noqa: E402

REPS = 5
REP_S = 0.15
if os.environ.get("PYBENCH_QUICK"):  # the tests check the format only (not HPS_*: hps warns of unknown HPS_ settings)
    REPS, REP_S = 1, 0.005
CASES = {"lat": (1, 1, False, 0), "sparse1k": (1000, 1, False, 1), "dense4M": (1, 1 << 20, True, 3)}
PHASES = ["push", "pull", "push+pull", "pushpull", "pipe_push", "pipe_pull"]


def keys_for(n, ci):
    step = (2 ** 64 - 1) // n
    return np.array([i * step + 12345 + ci * 1000 for i in range(n)], dtype=np.uint64)


def rep(w, ph, keys, push, pulls, width, dense, samples):
    now = time.perf_counter
    end = now() + REP_S
    ops = 0
    t0 = now()
    if ph >= 4:
        depth = 4 if dense else 16
        q = []
        while now() < end:
            if len(q) == depth:
                q.pop(0).wait()
            q.append(w.push(keys, push, width=width) if ph == 4 else w.pull(keys, pulls[ops % depth], width=width))
            ops += 1
        for r in q:
            r.wait()
        return ops / (now() - t0)
    out = pulls[0]
    while now() < end:
        s = now()
        if ph == 0:
            w.push(keys, push, width=width).wait()
        elif ph == 1:
            w.pull(keys, out, width=width).wait()
        elif ph == 2:
            w.push(keys, push, width=width).wait()
            w.pull(keys, out, width=width).wait()
        else:
            w.pushpull(keys, push, out, width=width).wait()
        samples.append((now() - s) * 1e6)
        ops += 1
    return ops / (now() - t0)


def fig(v):
    if v is None or math.isnan(v):
        return "-"
    return "%.0f" % v if v >= 100 else "%.3g" % v


def main():
    names = sys.argv[1:] or list(CASES)
    with hps.init() as ctx, ctx.worker() as w:
        print("# case config phase MB/s keys/s ops/s p50_us p99_us", flush=True)
        for name in names:
            nkeys, width, dense, ci = CASES[name]
            keys = keys_for(nkeys, ci)
            n = nkeys * width
            if dense:
                push = w.alloc(n)
                pulls = [w.alloc(n) for _ in range(4)]
            else:
                push = np.empty(n, np.float32)
                pulls = [np.empty(n, np.float32) for _ in range(16)]
            push[:] = 1e-3
            for ph, phase in enumerate(PHASES):
                samples, ops = [], []
                for _ in range(REPS):
                    ops.append(rep(w, ph, keys, push, pulls, width, dense, samples))
                ops_s = float(np.median(ops))
                p50 = p99 = float("nan")
                if samples:
                    samples.sort()
                    p50, p99 = samples[len(samples) // 2], samples[len(samples) * 99 // 100]
                moves = 2 if phase in ("push+pull", "pushpull") else 1
                print(name, "py1S1W", phase, fig(ops_s * n * 4 * moves / 1e6), fig(ops_s * nkeys), fig(ops_s),
                      fig(p50), fig(p99), flush=True)
            del push, pulls


if __name__ == "__main__":
    main()
