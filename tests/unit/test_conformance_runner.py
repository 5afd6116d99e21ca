"""The conformance runner's pure parts, no wasm and no host: reading a guest's
output, the verdict on a run (every branch of `judge`), filling in the
placeholders, the host command template, and a manifest that names
something that does not exist."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from pathlib import Path

import pytest

from wasi_tls_host.conformance.pki import Pki
from wasi_tls_host.conformance.runner import (
    FAILED,
    PASSED,
    RESULT_MARK,
    STEP_MARK,
    Case,
    GuestRun,
    ManifestError,
    fill,
    judge,
    load_manifest,
    parse_output,
)
from wasi_tls_host.conformance.template import HostTemplate, TemplateError


def a_case(*, trap: bool = False, bound: float = 30.0) -> Case:
    return Case(name="tls/example@tls1.3", component="client", args=("example",), peer="none",
                peer_options={}, version="1.3", needs=(), expected="what the spec asks",
                trap=trap, bound=bound)


def result_line(ok: bool, got: str) -> str:
    return RESULT_MARK + json.dumps({"case": "example", "ok": ok, "got": got, "facts": {}})


def guest_run(status: int | None, stdout: str = "", stderr: str = "", *,
              timed_out: bool = False) -> GuestRun:
    """A run as `Runner._run_guest` records it, its output read by `parse_output`."""
    result, steps = parse_output(stdout)
    return GuestRun(status, stdout, stderr, 1.5, timed_out, result, steps)


# -- parse_output ----------------------------------------------------------------------

def test_parse_output_finds_the_result_and_the_steps_among_other_lines():
    stdout = "\n".join(["hello from the guest", f"{STEP_MARK}forbidden: drop the stream",
                        "more noise", f"{STEP_MARK}second", result_line(True, "fine")])
    assert parse_output(stdout) == (
        {"case": "example", "ok": True, "got": "fine", "facts": {}},
        ["forbidden: drop the stream", "second"])


def test_parse_output_without_marks_has_no_result_and_no_steps():
    assert parse_output("just talk\n\n") == (None, [])


def test_an_unreadable_result_line_is_a_failed_result():
    line = f"{RESULT_MARK}{{not json"
    assert parse_output(line) == (
        {"ok": False, "got": f"unreadable result line: {line!r}", "facts": {}}, [])


# -- judge -----------------------------------------------------------------------------

UNREADABLE = f"{RESULT_MARK}{{not json"


@pytest.mark.parametrize("case, run, problems, expected", [
    pytest.param(a_case(), guest_run(0, result_line(True, "echoed")), [],
                 (PASSED, "echoed", ""), id="passed"),
    pytest.param(a_case(), guest_run(0, result_line(True, "echoed")), ["peer: a", "peer: b"],
                 (FAILED, "echoed", "peer: a; peer: b"), id="the peer saw otherwise"),
    pytest.param(a_case(), guest_run(1, result_line(False, "the echo differs")), [],
                 (FAILED, "the echo differs", "the echo differs"), id="the guest failed"),
    pytest.param(a_case(), guest_run(1, result_line(True, "echoed")), [],
                 (FAILED, "echoed", "exit status 1 disagrees with the result line"),
                 id="ok but exit status 1"),
    pytest.param(a_case(), guest_run(0, result_line(False, "refused")), [],
                 (FAILED, "refused", "exit status 0 disagrees with the result line"),
                 id="failed but exit status 0"),
    pytest.param(a_case(), guest_run(1, UNREADABLE), [],
                 (FAILED, f"unreadable result line: {UNREADABLE!r}",
                  f"unreadable result line: {UNREADABLE!r}"), id="unreadable result line"),
    pytest.param(a_case(), guest_run(134, stderr="\n  wasm trap: unreachable\nbacktrace"), [],
                 (FAILED, "trap", "no result line (exit status 134): wasm trap: unreachable"),
                 id="no result line, aborted"),
    pytest.param(a_case(), guest_run(0), [],
                 (FAILED, "exit status 0", "no result line (exit status 0): no output"),
                 id="no result line, exit status 0"),
    pytest.param(a_case(bound=2.5),
                 guest_run(None, result_line(False, "still waiting"), timed_out=True), [],
                 (FAILED, "no result within 2.5 s",
                  "killed after 2.5 s; the guest said: still waiting"),
                 id="timed out after a result line"),
    pytest.param(a_case(trap=True), guest_run(None, timed_out=True), [],
                 (FAILED, "no result within 30 s", "killed after 30 s"),
                 id="trap case timed out"),
    pytest.param(a_case(trap=True), guest_run(134, f"{STEP_MARK}forbidden: drop it\n"), [],
                 (PASSED, "trap", "trapped at: forbidden: drop it (exit status 134)"),
                 id="trapped at the forbidden call"),
    pytest.param(a_case(trap=True), guest_run(1, stderr="error: unknown import\nmore"), [],
                 (FAILED, "trap elsewhere", "trapped before the forbidden call: error: "
                  "unknown import"), id="trap elsewhere"),
    pytest.param(a_case(trap=True),
                 guest_run(1, f"{STEP_MARK}forbidden: drop it\n"
                              f"{result_line(False, 'no trap: the host let it go')}"), [],
                 (FAILED, "no trap: the host let it go",
                  "no trap (exit status 1): no trap: the host let it go"),
                 id="no trap, the guest said so"),
    pytest.param(a_case(trap=True), guest_run(0), [],
                 (FAILED, "exit status 0", "no trap (exit status 0)"),
                 id="no trap, no result line"),
])
def test_judge(case, run, problems, expected):
    outcome = judge(case, run, problems)
    assert (outcome.verdict, outcome.got, outcome.reason) == expected
    assert (outcome.case, outcome.seconds, outcome.exit_status, outcome.stdout,
            outcome.stderr) == (case, run.seconds, run.status, run.stdout, run.stderr)


# -- fill ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("conformance-pki"))


def test_fill_takes_the_peers_values_and_the_pkis(pki):
    chain = ",".join(hashlib.sha256(der).hexdigest() for der in pki["localhost"].chain_der())
    assert fill("{address}/{listen}", {"address": "127.0.0.1:1", "listen": "127.0.0.1:2"},
                pki) == "127.0.0.1:1/127.0.0.1:2"
    assert fill("chain={pki:sha256:localhost}", {}, pki) == f"chain={chain}"
    assert fill("no placeholder, {Upper} {}", {}, pki) == "no placeholder, {Upper} {}"


@pytest.mark.parametrize("label", ["inner", "rsa"])
def test_a_suite_leaf_asked_for_on_several_threads_at_once_is_issued_once(tmp_path, label):
    """The runner starts the peers of the cases that run together on threads
    of their own, and a leaf is issued on first use: tls/tls-in-tls under
    TLS 1.2 and 1.3 ask for `inner` together. One leaf, whose two files match."""
    pki = Pki(tmp_path)
    askers = 8
    together = threading.Barrier(askers)
    leaves = []

    def ask() -> None:
        together.wait()
        leaves.append(pki[label])
    threads = [threading.Thread(target=ask) for _ in range(askers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(leaves) == askers and all(leaf is leaves[0] for leaf in leaves)
    assert leaves[0].cert_file.read_bytes() == leaves[0].cert_chain_pems[0].bytes()
    leaves[0].configure_cert(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))  # the key matches


@pytest.mark.parametrize("text, missing", [
    ("{address}", "'address'"),
    ("{pki:sha256:nobody}", "'nobody'"),
    ("{pki:nonsense:localhost}", "'nonsense:localhost'"),
])
def test_fill_with_a_value_nobody_gives_is_a_key_error(pki, text, missing):
    with pytest.raises(KeyError) as raised:
        fill(text, {"listen": "127.0.0.1:2"}, pki)
    assert str(raised.value) == missing


# -- HostTemplate ----------------------------------------------------------------------

def test_a_template_fills_in_each_placeholder():
    template = HostTemplate("host 'run it' --ca-file={ca_file} --net {allow_net} "
                            "{identity_args} {component} {args}")
    assert template.has("{ca_file}") and template.has("{identity_args}")
    assert template.command(component=Path("/c/client.wasm"), args=["echo", "a b"],
                            ca_file=Path("/p/ca.pem"), identity_args=["--identity", "x=c,k"]) == [
        "host", "run it", "--ca-file=/p/ca.pem", "--net", "127.0.0.1", "--identity", "x=c,k",
        "/c/client.wasm", "echo", "a b"]


def test_a_template_without_the_optional_placeholders_has_none_of_them():
    template = HostTemplate("wasmtime run {component} {args}")
    assert not template.has("{ca_file}") and not template.has("{identity_args}")
    assert template.command(component=Path("c.wasm"), args=[], ca_file=Path("ca.pem"),
                            identity_args=["--identity", "x"]) == ["wasmtime", "run", "c.wasm"]


@pytest.mark.parametrize("text, message", [
    ("host '{component} {args}", "cannot split the host command: No closing quotation"),
    ("host {args}", "the host command needs {component}"),
    ("host {component}", "the host command needs {args}"),
    ("host {component} {args} {ca}", "unknown placeholder {ca} (known: {component}, {args}, "
                                     "{ca_file}, {allow_net}, {identity_args}, "
                                     "{http_identity_args}, {addr})"),
    ("host {component} --x={args}", "{args} must be an argument of its own"),
    ("host {component} {args} -i{identity_args}",
     "{identity_args} must be an argument of its own"),
])
def test_a_template_the_runner_cannot_use(text, message):
    with pytest.raises(TemplateError) as raised:
        HostTemplate(text)
    assert str(raised.value) == message


# -- load_manifest ---------------------------------------------------------------------

COMPONENT = '[components.client]\nworld = "tls-client"\nabout = "the client"\n'


def manifest(tmp_path: Path, *cases: str) -> Path:
    path = tmp_path / "manifest.toml"
    path.write_text(COMPONENT + "".join(f"\n[[case]]\n{case}" for case in cases))
    return path


def a_case_spec(name: str = "tls/x", **fields: str) -> str:
    spec = {"name": f'"{name}"', "component": '"client"', "args": '["x"]', "peer": '"none"',
            "expected": '"works"', **fields}
    return "".join(f"{key} = {value}\n" for key, value in spec.items())


def test_a_manifest_expands_each_value_and_version(tmp_path):
    _, cases = load_manifest(manifest(tmp_path, a_case_spec(
        "tls/echo-{each}", args='["echo", "{each}"]', each='["1", "2"]',
        versions='["1.2", "1.3"]')))
    assert [(case.name, case.args, case.version) for case in cases] == [
        ("tls/echo-1@tls1.2", ("echo", "1"), "1.2"), ("tls/echo-1@tls1.3", ("echo", "1"), "1.3"),
        ("tls/echo-2@tls1.2", ("echo", "2"), "1.2"), ("tls/echo-2@tls1.3", ("echo", "2"), "1.3")]


@pytest.mark.parametrize("cases, message", [
    ([a_case_spec(component='"server"')], "tls/x: unknown component 'server'"),
    ([a_case_spec(peer='"nobody"')], "tls/x: unknown peer 'nobody'"),
    ([a_case_spec(needs='["gpu", "ca-file", "a-day-off"]')],
     "tls/x: unknown needs ['a-day-off', 'gpu']"),
    ([a_case_spec("tls/b"), a_case_spec("tls/a", versions='["1.3"]'),
      a_case_spec("tls/a@tls1.3"), a_case_spec("tls/b")],
     "case names used twice: tls/a@tls1.3, tls/b"),
])
def test_a_broken_manifest_says_what_is_wrong(tmp_path, cases, message):
    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest(tmp_path, *cases))
    assert str(raised.value) == message
