"""Clocks, random, environment, arguments, stdio, exit and a preopened
directory through the probe guest, compared with `wasmtime run`."""

import hashlib

import pytest

from conftest import run_host, run_wasmtime


def probe_run(runner, component, tmp_path, *extra, stdin=None):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for leftover in data.iterdir():
        leftover.unlink()
    return runner(component, "--dir", "/data", *extra,
                  flags=("--dir", f"{data}::/data", "--env", "PROBE_NAME=differential"),
                  stdin=stdin)


@pytest.mark.parametrize("extra", [(), ("--exit", "1")], ids=["exit-0", "exit-1"])
def test_same_output_and_status_as_wasmtime(guests, tmp_path, extra):
    ours = probe_run(run_host, guests["wasi-probe"], tmp_path, *extra)
    theirs = probe_run(run_wasmtime, guests["wasi-probe"], tmp_path, *extra)
    assert ours.stdout.decode() == theirs.stdout.decode()
    assert ours.returncode == theirs.returncode
    assert "failures=0" in ours.stdout.decode()


def test_guest_exit_status_becomes_the_process_status(guests, tmp_path):
    assert probe_run(run_host, guests["wasi-probe"], tmp_path, "--exit", "1").returncode == 1
    assert probe_run(run_host, guests["wasi-probe"], tmp_path).returncode == 0


def test_stdin_reaches_the_guest(guests, tmp_path):
    payload = bytes(range(256)) * 1000
    result = probe_run(run_host, guests["wasi-probe"], tmp_path, "--stdin", stdin=payload)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert f"stdin: {len(payload)} bytes sha256={hashlib.sha256(payload).hexdigest()}" in out


def test_nothing_is_visible_without_grants(guests):
    result = run_host(guests["wasi-probe"], env={"PROBE_SECRET": "host-only"})
    out = result.stdout.decode()
    assert "env-probe-count: 0" in out
    assert "host-only" not in out


def test_inherit_env_passes_the_host_environment(guests):
    result = run_host(guests["wasi-probe"], flags=("--inherit-env",),
                      env={"PROBE_SECRET": "shared"})
    assert "env: PROBE_SECRET=shared" in result.stdout.decode()


def test_read_only_preopen_refuses_writes(guests, tmp_path):
    data = tmp_path / "ro"
    data.mkdir()
    result = run_host(guests["wasi-probe"], "--dir", "/data",
                      flags=("--dir", f"{data}::/data:ro"))
    out = result.stdout.decode()
    assert "fs-write probe.txt: error" in out
    assert not (data / "probe.txt").exists()
