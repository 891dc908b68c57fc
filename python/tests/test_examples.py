"""examples/python/sparse_lr.py against the C example on the test fixtures."""
import os
import re
import subprocess

import pytest

from conftest import HPS, ROOT, job_env

FIX = os.path.join(ROOT, "tests", "fixtures")
ARGS = ["--train", os.path.join(FIX, "spam_train.svm"), "--test", os.path.join(FIX, "spam_test.svm"),
        "--log1p", "--normalize", "--epochs", "10", "--name", "spam"]


def result(launch, prog):
    cmd = [HPS, "launch", "--no-prefix", "-s", "1", "-w", "2", "--updater", "adagrad:lr=0.5", *launch, "--",
           *prog, *ARGS]
    p = subprocess.run(cmd, cwd=ROOT, env=job_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stdout
    last = p.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"result dataset=spam mode=(\w+) workers=2 test_accuracy=([0-9.]+) reference=0 "
                     r"seconds=[0-9.]+ updates_per_s=\d+", last)
    assert m, last
    return m.group(1), float(m.group(2))


@pytest.mark.parametrize("mode,launch", [("bsp", ["--deterministic", "--staleness", "bsp"]),
                                         ("asp", ["--staleness", "asp"])])
def test_sparse_lr_matches_the_c_example(mode, launch):
    c_prog = os.path.join(os.environ.get("HPS_EXAMPLES", os.path.join(ROOT, "build", "examples")), "sparse_lr")
    if not os.path.isabs(c_prog):
        c_prog = os.path.join(ROOT, c_prog)
    py_mode, py_acc = result(launch, ["/usr/bin/python3", os.path.join(ROOT, "examples", "python", "sparse_lr.py")])
    c_mode, c_acc = result(launch, [c_prog])
    assert py_mode == c_mode == mode
    assert py_acc >= 0.88
    # the same rows in the same order: BSP (deterministic) agrees up to
    # float rounding; ASP's interleaving varies from run to run
    assert abs(py_acc - c_acc) <= (0.01 if mode == "bsp" else 0.05), (py_acc, c_acc)


def test_torch_ctr_matches_the_c_example():
    pytest.importorskip("torch")
    launch = ["--deterministic", "--staleness", "bsp"]
    c_prog = os.path.join(os.environ.get("HPS_EXAMPLES", os.path.join(ROOT, "build", "examples")), "sparse_lr")
    if not os.path.isabs(c_prog):
        c_prog = os.path.join(ROOT, c_prog)
    _, py_acc = result(launch, ["/usr/bin/python3", os.path.join(ROOT, "examples", "python", "torch_ctr.py")])
    _, c_acc = result(launch, [c_prog])
    assert py_acc >= 0.88 and abs(py_acc - c_acc) <= 0.01, (py_acc, c_acc)


def test_python_bench_prints_hps_bench_lines():
    cmd = [HPS, "launch", "--no-prefix", "-s", "1", "-w", "1", "--", "/usr/bin/python3",
           os.path.join(ROOT, "bench", "python_bench.py")]
    p = subprocess.run(cmd, cwd=ROOT, env=job_env(PYBENCH_QUICK=1), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [l.split() for l in p.stdout.splitlines() if not l.startswith("#")]
    assert [(l[0], l[2]) for l in lines] == [(c, ph) for c in ("lat", "sparse1k", "dense4M") for ph in
                                              ("push", "pull", "push+pull", "pushpull", "pipe_push", "pipe_pull")]
    for l in lines:
        assert l[1] == "py1S1W" and len(l) == 8, l
        float(l[5])  # ops/s
