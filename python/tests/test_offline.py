"""What works without a job: the module, its errors, refusals."""
import os
import subprocess

import pytest

from conftest import PYDIR, job_env
import hps


def test_version_and_strerror():
    assert hps.version.count(".") == 2
    assert hps.PeerDead().code == -9 and hps.NoKey("why").what == "why"
    assert hps.strerror(-9) == hps.PeerDead(-9).strerror
    assert isinstance(hps.strerror(12345), str)
    assert isinstance(hps.strerror(2 ** 200), str)
    with pytest.raises(TypeError):
        hps.strerror("x")


def test_error_classes_carry_code_and_text():
    for cls, code in [(hps.KeyOrder, -2), (hps.PeerDead, -9), (hps.Timeout, -10), (hps.Closed, -11)]:
        e = cls(code, "push")
        assert isinstance(e, hps.Error) and e.code == code and e.what == "push"
        assert str(e) == "push: " + hps.strerror(code)


def test_init_outside_a_job_raises():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPS_", "DMLC_"))}
    code = "import hps\ntry:\n    hps.init()\nexcept hps.ConfigError as e:\n    print('refused', e.code)\n"
    e = job_env()
    env.update(PYTHONPATH=e["PYTHONPATH"], GLIBC_TUNABLES=e["GLIBC_TUNABLES"])
    out = subprocess.run(["/usr/bin/python3", "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30).stdout
    assert out.strip() == "refused -12"


def test_import_without_tunable_reexecutes():
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = PYDIR
    out = subprocess.run(["/usr/bin/python3", "-c", "import os, hps; print(os.getpid(), hps.version)"],
                         env=env, stdout=subprocess.PIPE, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.split()[1] == hps.version


def test_objects_cannot_be_made_directly():
    for t in (hps._hps.Context, hps.Request, hps._hps.Block):
        with pytest.raises(TypeError):
            t()
    with pytest.raises(TypeError):
        hps._hps.Worker(object())
    with pytest.raises(TypeError):
        hps.init(argv="--hps-x=1")
    with pytest.raises(TypeError):
        hps.init(argv=[1])
