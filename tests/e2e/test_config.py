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


def test_deterministic_lookup_offline():
    """RFC 7422: who used an external port is answered from the configuration alone."""
    binary = require_cgnd()
    argv = ct.cgnd_argv(binary) + ["--deterministic", "100.64.0.0/24"]
    # The topology's pool is 198.51.100.0/29: 256 subscribers over 8 addresses, 32 each,
    # 2016 ports each; 100.64.0.11 is the 12th subscriber of the first address.
    r = run_cgnd(argv + ["--lookup", "100.64.0.11"])
    assert r.returncode == 0, r.stderr
    first = 1024 + 11 * 2016
    assert f"198.51.100.0 ports {first}-{first + 2015}" in r.stdout, r.stdout
    # One line, ended: the operator's shell prompt does not follow on the same line.
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, repr(r.stdout)
    r = run_cgnd(argv + ["--lookup", f"198.51.100.0:{first + 7}"])
    assert r.returncode == 0, r.stderr
    assert "100.64.0.11" in r.stdout, r.stdout
    r = run_cgnd(argv + ["--lookup", "198.51.100.1:1024"])
    assert r.returncode == 0 and "100.64.0.32" in r.stdout, r.stdout + r.stderr
    r = run_cgnd(argv + ["--deterministic-table"])
    assert r.returncode == 0 and len(r.stdout.splitlines()) >= 256, r.stdout[:500]
    # A malformed query is an error naming --lookup, before anything starts.
    r = run_cgnd(argv + ["--lookup", "198.51.100.0:99999"])
    assert r.returncode == 2 and "--lookup" in r.stderr, r.stderr
