"""The installed `wasi-tls-host` command: its help, and the error paths of
`run`: clear one-paragraph messages, no tracebacks."""

import os
import signal
import subprocess
from importlib import metadata

import pytest
import wasmtime

from conftest import HOST, run_host
from wasi_tls_host import Host, all_interfaces
from wasi_tls_host.guest_tools import WIT_DIR
from wasi_tls_host.host import missing_imports


def test_no_arguments_lists_the_commands():
    result = subprocess.run([HOST], capture_output=True, timeout=60)
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert stderr.startswith("usage: wasi-tls-host")
    for command in ("run COMPONENT", "serve [--addr H:P] COMPONENT", "wit DIR", "build APP_DIR",
                    "conformance"):
        assert command in stderr
    assert "wasi-tls-host COMMAND --help" in stderr


def test_version_is_the_installed_distributions():
    result = subprocess.run([HOST, "--version"], capture_output=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.decode() == f"wasi-tls-host {metadata.version('wasi-tls-host')}\n"


def help_text(command: str) -> str:
    """`wasi-tls-host COMMAND --help`, its lines joined (argparse wraps them)."""
    result = subprocess.run([HOST, command, "--help"], capture_output=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, b"")
    return " ".join(result.stdout.decode().split())


def test_run_help_explains_the_options():
    text = help_text("run")
    for option in ("--allow-net", "--dir", "--ca-file", "--tls-handshake-timeout", "--tls-resume",
                   "--cache-dir DIR", "--no-cache", "--max-connections N"):
        assert option in text
    for explained in (
            "--timeout SECONDS end the guest after SECONDS, waiting in poll included (exit 124)",
            "--max-memory SIZE cap each linear memory (and table) of the guest at SIZE bytes",
            "fails in the guest (if that ends it: exit 134)",
            "--fuel N end the guest once it has run N units of fuel",
            "--debug print the wasm backtrace of a trap and the full traceback of a host "
            "defect"):
        assert explained in text


def test_help_is_wrapped_at_the_terminals_width():
    """Building the parser reads no terminal width (command_line._Parser);
    the help it prints still does."""
    def lines(columns: int) -> list[str]:
        result = subprocess.run([HOST, "run", "--help"], capture_output=True, timeout=60,
                                env={**os.environ, "COLUMNS": str(columns)})
        assert result.returncode == 0
        return result.stdout.decode().splitlines()
    narrow, wide = lines(60), lines(150)
    assert len(narrow) > len(wide)
    assert max(map(len, wide)) > 60 and max(map(len, wide)) <= 148


def test_a_run_imports_nothing_it_does_not_use(guests):
    """What start-up does not pay for (bench/README.md, issue 16): the probe
    makes no TLS connection, so the host's TLS policy does not import ssl;
    argparse does not import shutil for a terminal width it does not use;
    and the host logs nothing, so it imports neither logging nor traceback."""
    result = run_host(guests["wasi-probe"], env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0 and b"probe: start" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip()
                for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "wasi_tls_host.tls.policy" in imported
    assert not {"ssl", "_ssl", "shutil", "logging", "traceback"} & imported


def test_serve_help_says_what_the_options_shared_with_run_mean_for_a_request():
    """serve takes run's guest options and limits; each says what it does
    there (a limit costs a request its response, not the process an exit)."""
    text = help_text("serve")
    for option in ("--allow-net", "--dir", "--ca-file", "--env K[=V]", "--cache-dir DIR",
                   "--no-cache", "--grace SECONDS", "--workers N"):
        assert option in text
    for explained in (
            "--timeout SECONDS end each request's guest after SECONDS, waiting in poll "
            "included (its client gets a 500, or a cut response)",
            "--max-memory SIZE cap each linear memory (and table) of each request's guest",
            "--fuel N end each request's guest once it has run N units of fuel",
            "--debug log the wasm backtrace of a request's trap above its line, and print the "
            "full traceback of a host defect"):
        assert explained in text
    assert "exit 124" not in text and "exit 134" not in text


def assert_clean_error(result, *fragments):
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr


def assert_usage_error(result, message):
    """argparse's report: the usage, then one `error:` line naming the problem; exit 2."""
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert lines[0].startswith("usage: wasi-tls-host run")
    assert lines[-1] == f"wasi-tls-host run: error: {message}"
    assert sum("error" in line for line in lines) == 1


def test_a_directory_as_the_component_is_a_usage_error(tmp_path):
    """Regression: `run /tmp` printed an IsADirectoryError traceback."""
    assert_usage_error(run_host(tmp_path),
                       f"argument component: component is a directory, not a file: {tmp_path}")


@pytest.mark.parametrize("value, problem", [
    ("-1", "must be a finite number of seconds above 0, got '-1'"),
    ("0", "must be a finite number of seconds above 0, got '0'"),
    ("nan", "must be a finite number of seconds above 0, got 'nan'"),
    ("inf", "must be a finite number of seconds above 0, got 'inf'"),
    ("soon", "not a number of seconds: 'soon'"),
])
def test_bad_handshake_timeouts_are_usage_errors(guests, value, problem):
    """Regression: -1 was accepted (and failed at the first handshake), nan
    and inf printed ValueError and OverflowError tracebacks."""
    result = run_host(guests["wasi-probe"], flags=("--tls-handshake-timeout", value))
    assert_usage_error(result, f"argument --tls-handshake-timeout: {problem}")


def test_identity_and_client_ca_mistakes_are_one_line(guests, pki, tmp_path):
    leaf, other = pki.leaf("a.example"), pki.leaf("b.example")
    cases = {
        ("--identity", "server"): "expected NAME=CERTFILE,KEYFILE or NAME=P12FILE, got 'server'",
        ("--identity", f"server={leaf.cert_file}"):
            f"identity 'server': {leaf.cert_file} is PEM, not PKCS#12: give NAME=CERTFILE,KEYFILE",
        ("--identity", f"server={tmp_path}/none.pem,{leaf.key_file}"):
            f"identity 'server': {tmp_path}/none.pem: No such file or directory",
        ("--identity", f"server={leaf.cert_file},{other.key_file}"):
            "identity 'server': the private key does not match the leaf certificate",
    }
    for flags, problem in cases.items():
        assert_usage_error(run_host(guests["wasi-probe"], flags=flags),
                           f"argument --identity: {problem}")
    unreadable = run_host(guests["wasi-probe"],
                          flags=("--identity", f"server={leaf.key_file},{leaf.key_file}"))
    assert "argument --identity: identity 'server': certificate 0 of the chain cannot be " \
        "read" in unreadable.stderr.decode() and unreadable.returncode == 2
    assert_usage_error(run_host(guests["wasi-probe"], flags=("--client-ca", str(tmp_path))),
                       f"argument --client-ca: client CA file is a directory, not a file: "
                       f"{tmp_path}")
    same_name = run_host(guests["wasi-probe"], flags=(
        "--identity", f"x={leaf.cert_file},{leaf.key_file}",
        "--identity", f"x={other.cert_file},{other.key_file}"))
    assert_clean_error(same_name, "each --identity needs a name of its own")


def test_missing_file(tmp_path):
    result = run_host(tmp_path / "nope.wasm")
    assert_clean_error(result, "component not found", "nope.wasm")


def test_not_webassembly(tmp_path):
    path = tmp_path / "text.wasm"
    path.write_text("hello")
    assert_clean_error(run_host(path), "not a WebAssembly file")


def importing(name: str, function: str) -> str:
    """A component that imports `function` of the instance `name`, and nothing else."""
    return f'(component (import "{name}" (instance (export "{function}" (func)))))'


@pytest.mark.parametrize("wat, fragments", [
    ("(module)", ["core WebAssembly module, not a component"]),
    (importing("example:missing/thing@1.0.0", "hello"),
     ["`example:missing/thing@1.0.0`", "which this host does not provide"]),
    (importing("wasi:cli/environment@0.2.3", "get-everything"),
     ["wasi:cli/environment@0.2.3", "get-everything"]),
    ("(component)", ["does not export wasi:cli/run"]),
], ids=["core-module", "unknown-interface", "missing-function", "no-run-export"])
def test_a_module_the_host_cannot_run(tmp_path, wat, fragments):
    path = tmp_path / "guest.wasm"
    path.write_bytes(wasmtime.wat2wasm(wat))
    assert_clean_error(run_host(path), *fragments)


def test_bad_permission_flags_are_usage_errors(tmp_path, guests):
    result = run_host(guests["wasi-probe"], flags=("--allow-net", "127.0.0.1:notaport"))
    assert result.returncode == 2
    assert "bad port" in result.stderr.decode()
    result = run_host(guests["wasi-probe"], flags=("--dir", str(tmp_path / "absent")))
    assert result.returncode == 2
    assert "not a directory" in result.stderr.decode()


def test_missing_ca_file_is_named(guests, tmp_path):
    result = run_host(guests["wasi-probe"], flags=("--ca-file", str(tmp_path / "ca.pem")))
    assert_clean_error(result, "CA file not found", "ca.pem")


def test_ctrl_c_while_blocked_in_poll_exits_130(guests):
    server = subprocess.Popen(
        [HOST, "run", "--allow-net", "127.0.0.1",
         str(guests["tcp-echo-server"]), "127.0.0.1:0", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout.readline().startswith(b"listening on")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 130
        assert "interrupted" in server.stderr.read().decode()
    finally:
        server.kill()


def test_closed_stdin_and_stdout_are_empty_and_discarding(guests):
    result = subprocess.run(
        f"{HOST} run {guests['wasi-probe']} --stdin <&- >&-",
        shell=True, capture_output=False, stderr=subprocess.PIPE, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def run_component(body: str) -> str:
    """A command component whose `run` is the core function `body`."""
    return f"""
        (component
          (core module $m (func (export "run") (result i32) {body}))
          (core instance $i (instantiate $m))
          (func $run (result (result)) (canon lift (core func $i "run")))
          (instance $r (export "run" (func $run)))
          (export "wasi:cli/run@0.2.8" (instance $r))
        )"""


def test_a_trap_exits_134_with_wasmtimes_message(tmp_path):
    path = tmp_path / "trap.wasm"
    path.write_bytes(wasmtime.wat2wasm(run_component("unreachable")))
    result = run_host(path)
    assert result.returncode == 134
    assert "the guest trapped" in result.stderr.decode()
    assert "unreachable" in result.stderr.decode()


def test_run_returning_err_exits_1(tmp_path):
    path = tmp_path / "err.wasm"
    path.write_bytes(wasmtime.wat2wasm(run_component("i32.const 1")))
    assert run_host(path).returncode == 1
    path.write_bytes(wasmtime.wat2wasm(run_component("i32.const 0")))
    assert run_host(path).returncode == 0


@pytest.mark.parametrize("arguments, problem", [
    (["build", "{tmp}/absent", "-w", "plain", "-o", "{tmp}/x.wasm"],
     "wasi-tls-host build: error: argument APP_DIR: not a directory: {tmp}/absent"),
    (["build", "{tmp}", "-w", "nope", "-o", "{tmp}/x.wasm"],
     "wasi-tls-host build: error: argument -w/--world: invalid choice: 'nope' "
     "(choose from 'plain', 'tls-client', 'tls-server', 'tls-full-client', 'http-client', "
     "'http-proxy')"),
    (["build", "{tmp}", "-w", "plain", "-o", "{tmp}/x.wasm"],
     "wasi-tls-host: no module 'app' (app.py or app/__init__.py) in {tmp}"),
    (["wit", "{tmp}/file"], "wasi-tls-host wit: error: argument DIR: "
                            "exists and is not a directory: {tmp}/file"),
])
def test_build_and_wit_mistakes_are_one_line(tmp_path, arguments, problem):
    (tmp_path / "file").write_text("")
    result = subprocess.run([HOST, *(a.format(tmp=tmp_path) for a in arguments)],
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1] == problem.format(tmp=tmp_path)
    assert not (tmp_path / "x.wasm").exists()


def test_wit_writes_the_tree_the_host_implements(tmp_path):
    result = subprocess.run([HOST, "wit", str(tmp_path / "wit")], capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    written = {str(path.relative_to(tmp_path / "wit"))
               for path in (tmp_path / "wit").rglob("*.wit")}
    assert written == {str(path.relative_to(WIT_DIR)) for path in WIT_DIR.rglob("*.wit")}
    assert (tmp_path / "wit" / "tls.wit").read_text() == (WIT_DIR / "tls.wit").read_text()


def test_the_http_guests_imports_are_all_provided(guests):
    """What the host says is missing when instantiation fails: nothing, for
    guests it runs. Regression: wasi:http's `type headers = fields` (and
    trailers) were named as missing resources."""
    host = Host()
    for name in ("http-proxy", "http-fetch", "https-get"):
        component = host.load(guests[name])
        assert missing_imports(host.engine, component, all_interfaces()) == [], name
