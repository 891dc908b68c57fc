"""Helpers of the hps Python tests: jobs started through `hps launch`."""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HPS = os.path.join(os.environ.get("HPS_OUT", ROOT), "bin", "hps")
if not os.path.isabs(HPS):
    HPS = os.path.join(ROOT, HPS)
PYDIR = os.path.join(ROOT, "python")
sys.path.insert(0, PYDIR)

# As a user of the package would: jemalloc's static TLS reserve, set up
# front (hps/__init__.py re-executes the interpreter otherwise).
TUNABLE = "glibc.rtld.optional_static_tls=16384"


def job_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = PYDIR
    env["GLIBC_TUNABLES"] = TUNABLE
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Job:
    def __init__(self, tmp_path):
        self.tmp = tmp_path

    def run(self, body, servers=1, workers=1, args=(), expect_rc=0, timeout=60, env=None):
        """Runs body (Python source; it gets `hps`, `np`, `OUT` = a folder)
        as every process of a job; returns the launcher's output."""
        prog = self.tmp / "prog.py"
        prog.write_text("import os, sys, numpy as np, hps\nOUT = %r\n" % str(self.tmp) + textwrap.dedent(body))
        cmd = [HPS, "launch", "--no-prefix", "-s", str(servers), "-w", str(workers), *args, "--",
               "/usr/bin/python3", str(prog)]
        p = subprocess.run(cmd, cwd=self.tmp, env=job_env(**(env or {})), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if expect_rc is not None:
            assert p.returncode == expect_rc, "exit %d:\n%s" % (p.returncode, p.stdout)
        return p.stdout


@pytest.fixture
def job(tmp_path):
    return Job(tmp_path)
