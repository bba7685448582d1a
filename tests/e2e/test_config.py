"""Command-line validation (no namespaces needed)."""

import subprocess

import pytest

import cgn_topology as ct
from conftest import require_cgnd


def run_cgnd(argv, timeout=20):
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"cgnd did not exit within {timeout}s: {argv}\n{e.stdout}\n{e.stderr}")


def without(argv, opt):
    i = argv.index(opt)
    return argv[:i] + argv[i + 2:]


@pytest.mark.parametrize("case", ["no-pool", "pool-host-bits", "bad-filtering", "unknown-option"])
def test_bad_options_exit_2(case):
    binary = require_cgnd()
    argv = ct.cgnd_argv(binary)
    if case == "no-pool":
        argv, option = without(argv, "--pool"), "--pool"
    elif case == "pool-host-bits":
        argv[argv.index("--pool") + 1] = "198.51.100.1/24"
        option = "--pool"
    elif case == "bad-filtering":
        argv += ["--filtering", "sideways"]
        option = "--filtering"
    else:
        argv += ["--frobnicate", "1"]
        option = "--frobnicate"
    r = run_cgnd(argv)
    assert r.returncode == 2, (f"{case}: exit code {r.returncode}, expected 2\n"
                               f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    assert option in r.stderr, f"{case}: stderr does not name {option}:\n{r.stderr}"
    assert "cgnd: ready" not in r.stdout


def test_help():
    binary = require_cgnd()
    r = run_cgnd([str(binary), "--help"])
    assert r.returncode == 0, f"--help exit code {r.returncode}\n{r.stdout}\n{r.stderr}"
    text = r.stdout + r.stderr
    for opt in ("--filtering", "--pool", "--inside-port", "--outside-port"):
        assert opt in text, f"--help does not mention {opt}:\n{text}"
