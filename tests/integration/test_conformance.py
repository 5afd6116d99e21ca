"""The conformance suite as a CI pipeline meets it: `wasi-tls-host conformance`.

Against this host every case is applicable and passes, and the JUnit XML
parses with one testcase per case. The suite can fail: against deliberately
broken builds of this host (broken_hosts.py) exactly the cases that cover
each flaw fail. Under `wasmtime run` it gives the verdicts that
docs/conformance.md reports.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import HOST, ROOT, wasmtime_cli

DOCS = ROOT / "docs" / "conformance.md"
BROKEN_HOSTS = Path(__file__).with_name("broken_hosts.py")
#: `wasi-tls-host run` with every placeholder, as the default template has it.
RUN = ("run --ca-file {ca_file} --allow-net {allow_net} --tls-handshake-timeout 10 "
       "{identity_args} {component} {args}")
WASMTIME_RUN = "run -S tls,http,cli,inherit-network,allow-ip-name-lookup {component} {args}"
WASMTIME_SERVE = "serve -S cli --addr {addr} {component}"


def conformance(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HOST, "conformance", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def only(names) -> list[str]:
    return [arg for name in names for arg in ("--only", name)]


def case_names() -> list[str]:
    listed = conformance("--list")
    assert listed.returncode == 0, listed.stderr
    return [line.split()[0] for line in listed.stdout.splitlines()]


def verdicts(report: Path) -> dict[str, str]:
    return {case["name"]: case["verdict"] for case in json.loads(report.read_text())["cases"]}


@pytest.fixture(scope="module")
def suite(guests, tmp_path_factory):
    """The whole suite against this host: (process, JSON report, JUnit file)."""
    out = tmp_path_factory.mktemp("conformance")
    result = conformance("--json", out / "report.json", "--junit", out / "report.xml")
    return result, json.loads((out / "report.json").read_text()), out / "report.xml"


#: Cases known to fail now and then against this host, each with what is seen.
#: Open defects, not expectations: they are allowed to fail, never required to.
KNOWN_DEFECTS: dict[str, str] = {}


def test_every_case_is_applicable_and_passes_against_this_host(suite):
    result, report, _ = suite
    failed = {case["name"]: case["reason"] for case in report["cases"]
              if case["verdict"] != "passed"}
    assert set(failed) <= set(KNOWN_DEFECTS), failed
    assert result.returncode == (1 if failed else 0), result.stderr
    assert [case["name"] for case in report["cases"]] == case_names()
    total = len(report["cases"])
    passed = total - len(failed)
    assert report["summary"] == {"cases": total, "passed": passed, "failed": len(failed),
                                 "not_applicable": 0}
    assert f"{total} cases: {passed} passed, {len(failed)} failed, 0 not applicable" in (
        result.stdout)


def test_junit_has_one_testcase_per_case(suite):
    _, report, junit = suite
    root = ET.parse(junit).getroot()
    [testsuite] = root.findall("testsuite")
    testcases = testsuite.findall("testcase")
    names = [f"{case.get('classname').removeprefix('conformance.')}/{case.get('name')}"
             for case in testcases]
    assert root.tag == "testsuites"
    assert names == [case["name"] for case in report["cases"]]
    failures = [f"{case.get('classname').removeprefix('conformance.')}/{case.get('name')}"
                for case in testcases if case.find("failure") is not None]
    assert (testsuite.get("tests"), testsuite.get("failures"), testsuite.get("skipped")) == (
        str(len(testcases)), str(len(failures)), "0")
    assert failures == [case["name"] for case in report["cases"] if case["verdict"] != "passed"]
    assert set(failures) <= set(KNOWN_DEFECTS)
    assert not testsuite.findall("testcase/skipped")
    assert all(float(case.get("time")) > 0 for case in testcases)


#: Each flaw, the cases run against it, and those of them that must fail.
FLAWS = {
    "no-verification": (
        ["tls/unknown-ca@tls1.3", "tls/wrong-name@tls1.3", "tls/expired@tls1.3",
         "tls/not-yet-valid@tls1.3", "tls/self-signed@tls1.3",
         "draft-client/verify-untrusted@tls1.3", "tls/handshake-python-ssl@tls1.3"],
        {"tls/unknown-ca@tls1.3", "tls/wrong-name@tls1.3", "tls/expired@tls1.3",
         "tls/not-yet-valid@tls1.3", "tls/self-signed@tls1.3",
         "draft-client/verify-untrusted@tls1.3"}),
    "no-hostname-check": (
        ["tls/wrong-name@tls1.2", "tls/unknown-ca@tls1.2", "tls/expired@tls1.2"],
        {"tls/wrong-name@tls1.2"}),
    "no-close-notify": (
        ["tls/close-output@tls1.3", "tls/echo-1-bytes@tls1.2", "tls/truncated@tls1.3",
         "tls/peer-close-notify@tls1.3"],
        {"tls/close-output@tls1.3", "tls/echo-1-bytes@tls1.2"}),
    "result-twice": (
        ["tls/get-twice@tls1.3", "tls/get-twice-after-error@tls1.2", "tls/get-before-poll@tls1.3"],
        {"tls/get-twice@tls1.3", "tls/get-twice-after-error@tls1.2"}),
}


@pytest.fixture(scope="module")
def broken_runs(guests, tmp_path_factory):
    """The suite against each broken host, all at once (their peers mostly wait):
    flaw -> (process, report file)."""
    out = tmp_path_factory.mktemp("broken")
    running = {}
    for flaw, (cases, _) in FLAWS.items():
        template = f"{shlex.quote(sys.executable)} {shlex.quote(str(BROKEN_HOSTS))} {flaw} {RUN}"
        command = [HOST, "conformance", "--host-cmd", template, "--json",
                   str(out / f"{flaw}.json"), *only(cases)]
        running[flaw] = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    finished = {}
    for flaw, process in running.items():
        stdout, stderr = process.communicate(timeout=600)
        finished[flaw] = (subprocess.CompletedProcess(process.args, process.returncode, stdout,
                                                      stderr), out / f"{flaw}.json")
    return finished


@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_a_broken_host_fails_exactly_the_cases_that_cover_its_flaw(broken_runs, flaw):
    cases, must_fail = FLAWS[flaw]
    result, report = broken_runs[flaw]
    assert result.returncode == 1, result.stderr
    assert verdicts(report) == {name: "failed" if name in must_fail else "passed"
                                for name in cases}, result.stdout


def documented_wasmtime_verdicts() -> dict[str, str]:
    """The wasmtime column of the report's table of every case."""
    rows = re.findall(r"^\| `([^`]+)` \| ([a-z ]+) \| ([a-z ]+) \|", DOCS.read_text(), re.M)
    return {name: theirs.strip() for name, _, theirs in rows}


def test_wasmtime_gives_the_verdicts_the_report_documents(guests, tmp_path):
    documented = documented_wasmtime_verdicts()
    assert sorted(documented) == sorted(case_names())
    # The stall cases wait out their full 40 s under wasmtime; the report's
    # run shows them, this test spares the time.
    names = [name for name in case_names() if "/stall-" not in name]
    template = f"{shlex.quote(wasmtime_cli())} {WASMTIME_RUN}"
    serve = f"{shlex.quote(wasmtime_cli())} {WASMTIME_SERVE}"
    result = conformance("--host-cmd", template, "--serve-cmd", serve, "--json",
                         tmp_path / "report.json", *only(names))
    expected = {name: documented[name] for name in names}
    assert verdicts(tmp_path / "report.json") == expected, result.stdout
    assert result.returncode == (1 if "failed" in expected.values() else 0), result.stderr


@pytest.mark.parametrize("template, message", [
    ("wasmtime run {args}", "--host-cmd: the host command needs {component}"),
    ("host {component}", "--host-cmd: the host command needs {args}"),
    ("host {component} {args} {ca}", "--host-cmd: unknown placeholder {ca}"),
    ("host {component} --x={args}", "--host-cmd: {args} must be an argument of its own"),
    ("host '{component} {args}", "--host-cmd: cannot split the host command"),
])
def test_a_template_it_cannot_use_is_a_usage_error(template, message):
    result = conformance("--host-cmd", template, "--only", "wasi/poll-empty")
    assert result.returncode == 2
    assert result.stderr.startswith(f"wasi-tls-host: {message}"), result.stderr


def test_a_pattern_that_matches_nothing_is_a_usage_error():
    result = conformance("--only", "no/such-case", "--list")
    assert (result.returncode, result.stderr) == (
        2, "wasi-tls-host: no case matches no/such-case\n")


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_a_report_it_cannot_write_is_one_line_and_exit_status_2(guests, tmp_path, option):
    result = conformance("--only", "wasi/poll-empty", option, tmp_path)
    assert (result.returncode, result.stderr) == (
        2, f"wasi-tls-host: cannot write {tmp_path}: Is a directory\n")


def test_a_component_missing_from_the_package_is_one_line_and_exit_status_2(tmp_path):
    """As in a source checkout that never built the guests: the console script's
    entry point, its components directory pointed at an empty one (the real
    one is shared with every other test, so it is not emptied)."""
    hide_components = ("import sys; from pathlib import Path; "
                       "from wasi_tls_host.conformance import components; "
                       f"components.COMPONENTS_DIR = Path({str(tmp_path)!r}); "
                       "from wasi_tls_host.command_line import main; sys.exit(main())")
    result = subprocess.run([sys.executable, "-c", hide_components, "conformance", "--only",
                             "wasi/poll-empty"], capture_output=True, text=True, timeout=120)
    missing = tmp_path / "client.wasm.xz"
    assert (result.returncode, result.stderr) == (
        2, f"wasi-tls-host: the conformance component 'client' is not in this package "
           f"({missing} is missing); in a source checkout, build it with "
           "`python guests/build.py`\n")
