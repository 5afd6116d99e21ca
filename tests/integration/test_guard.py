"""The guard around every host function and resource destructor.

A host function, or the `close` behind a destructor, is made to raise inside
the test: the guest must trap with a one-line message naming the function
and the error, and the host process must live on to report it (exit 134),
with the traceback only under --debug or WASI_TLS_HOST_DEBUG=1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: A command component whose `run` is either `call-random` (calls
#: wasi:random/random.get-random-u64) or `drop-stdout` (gets stdout and drops it).
COMPONENT = """
(component
  (import "wasi:random/random@0.2.9" (instance $random
    (export "get-random-u64" (func (result u64)))))
  (import "wasi:io/streams@0.2.9" (instance $streams
    (export "output-stream" (type (sub resource)))))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.9" (instance $stdout
    (alias outer 1 $output-stream (type $t))
    (export "output-stream" (type $os (eq $t)))
    (export "get-stdout" (func (result (own $os))))))
  (core func $random (canon lower (func $random "get-random-u64")))
  (core func $get-stdout (canon lower (func $stdout "get-stdout")))
  (core func $drop (canon resource.drop $output-stream))
  (core module $m
    (import "host" "random" (func $random (result i64)))
    (import "host" "get-stdout" (func $get-stdout (result i32)))
    (import "host" "drop" (func $drop (param i32)))
    (func (export "call-random") (result i32) (drop (call $random)) (i32.const 0))
    (func (export "drop-stdout") (result i32) (call $drop (call $get-stdout)) (i32.const 0)))
  (core instance $host (export "random" (func $random)) (export "get-stdout" (func $get-stdout))
                       (export "drop" (func $drop)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func $run (result (result)) (canon lift (core func $i "ENTRY")))
  (instance $r (export "run" (func $run)))
  (export "wasi:cli/run@0.2.8" (instance $r)))
"""

#: Runs `wasi-tls-host run` in this process after breaking one host function:
#: the random number source, or the flush that dropping a stdout handle does.
DRIVER = """
import sys

import wasmtime

from wasi_tls_host import command_line
from wasi_tls_host.random import random as wasi_random
from wasi_tls_host.runtime.streams import FileOutput

component, entry, *options = sys.argv[1:]


def broken(*args):
    raise RuntimeError("broken by the test")


with open(component, "wb") as file:
    file.write(wasmtime.wat2wasm(COMPONENT.replace("ENTRY", entry)))
if entry == "call-random":
    wasi_random.interface.functions["get-random-u64"] = broken
else:
    FileOutput.flush = broken
sys.exit(command_line.main(["run", *options, component]))
"""

CASES = {
    "call-random": "wasi:random/random@0.2.9#get-random-u64",
    "drop-stdout": "wasi:io/streams@0.2.9#[resource-drop]output-stream",
}


def run_broken(tmp_path, entry: str, *options: str, env: dict[str, str] | None = None):
    driver = tmp_path / "driver.py"
    driver.write_text(f"COMPONENT = {COMPONENT!r}\n{DRIVER}")
    environment = {key: value for key, value in os.environ.items()
                   if key != "WASI_TLS_HOST_DEBUG"}
    return subprocess.run([sys.executable, str(driver), str(tmp_path / "guard.wasm"), entry,
                           *options], capture_output=True, timeout=60,
                          env={**environment, **(env or {})})


@pytest.mark.parametrize("entry", CASES)
def test_a_failing_host_function_traps_with_its_name(tmp_path, entry):
    result = run_broken(tmp_path, entry)
    assert result.returncode == 134
    assert result.stderr.decode() == (
        f"wasi-tls-host: the guest trapped: {CASES[entry]}: "
        "internal host error: RuntimeError('broken by the test')\n")


@pytest.mark.parametrize("switch", [("--debug",), ()], ids=["flag", "environment"])
def test_debug_adds_the_traceback(tmp_path, switch):
    env = None if switch else {"WASI_TLS_HOST_DEBUG": "1"}
    result = run_broken(tmp_path, "drop-stdout", *switch, env=env)
    stderr = result.stderr.decode()
    assert result.returncode == 134
    assert "Traceback (most recent call last)" in stderr
    assert "RuntimeError: broken by the test" in stderr
    assert stderr.endswith(f"wasi-tls-host: the guest trapped: {CASES['drop-stdout']}: "
                           "internal host error: RuntimeError('broken by the test')\n")
