"""Run the conformance cases against a host command and collect the outcomes.

The host is a command template (`template.HostTemplate`). A case needing
something the template cannot express (manifest `needs`) is not applicable,
with the reason, and never counts as passed.

A case of a `serve` component runs the serve template instead: the runner
starts the server and waits until it says it is serving (a line matching
`READY`: this host prints `serving on URL`, `wasmtime serve` `Serving HTTP
on URL`, both once the component is compiled); then the peer's clients make
their requests, the verdict is theirs, and the server is stopped.

Each case gets fresh peers on loopback; the PKI is made once per run. Cases
run `jobs` at a time, longest bound first; the outcomes come back in
manifest order whatever the order they finished in.
"""

from __future__ import annotations

import fnmatch
import json
import re
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import components, peers
from .pki import Pki
from .template import HostTemplate

MANIFEST = Path(__file__).resolve().parent / "manifest.toml"
RESULT_MARK = "conformance-result "
STEP_MARK = "conformance-step "
DEFAULT_BOUND_S = 30.0
PASSED, FAILED, NOT_APPLICABLE = "passed", "failed", "not applicable"
#: What each `needs` word asks of the template, and how to tell.
TEMPLATE_NEEDS = {"ca-file": "{ca_file}", "identities": "{identity_args}",
                  "http-identity": "{http_identity_args}"}
#: How long a stopped server may take to exit before it is killed.
STOP_S = 15.0
#: What a server prints once it accepts requests.
READY = re.compile(rb"\bserving\b", re.I)
TOOL_NEEDS = {"openssl": peers.openssl_installed}


class ManifestError(Exception):
    """The manifest names something that does not exist."""


@dataclass(frozen=True)
class Case:
    name: str
    component: str
    args: tuple[str, ...]
    peer: str
    peer_options: dict = field(hash=False)
    version: str | None
    needs: tuple[str, ...]
    expected: str
    trap: bool
    bound: float

    @property
    def group(self) -> str:
        return self.name.partition("/")[0]


@dataclass(frozen=True)
class Component:
    name: str
    world: str
    about: str
    #: An interface beyond the upstream ones; a host that cannot run the
    #: component makes its cases not applicable rather than failed.
    requires: str | None
    #: An incoming handler, run by the serve template rather than the run one.
    serve: bool = False


@dataclass
class Outcome:
    case: Case
    verdict: str
    got: str
    seconds: float = 0.0
    reason: str = ""
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""

    def as_json(self) -> dict:
        return {"name": self.case.name, "component": self.case.component,
                "version": self.case.version, "needs": list(self.case.needs),
                "expected": self.case.expected, "got": self.got, "verdict": self.verdict,
                "reason": self.reason, "seconds": round(self.seconds, 2),
                "exit_status": self.exit_status}


def load_manifest(path: Path = MANIFEST) -> tuple[dict[str, Component], list[Case]]:
    data = tomllib.loads(path.read_text())
    known = {name: Component(name, spec["world"], spec["about"], spec.get("requires"),
                             spec.get("serve", False))
             for name, spec in data["components"].items()}
    cases = []
    for spec in data["case"]:
        if spec["component"] not in known:
            raise ManifestError(f"{spec['name']}: unknown component {spec['component']!r}")
        if spec["peer"] not in peers.PEERS:
            raise ManifestError(f"{spec['name']}: unknown peer {spec['peer']!r}")
        unknown = set(spec.get("needs", ())) - set(TEMPLATE_NEEDS) - set(TOOL_NEEDS)
        if unknown:
            raise ManifestError(f"{spec['name']}: unknown needs {sorted(unknown)}")
        for each in spec.get("each", [None]):
            for version in spec.get("versions", [None]):
                def expand(text: str, each: str | None = each) -> str:
                    return text.replace("{each}", each) if each is not None else text
                name = expand(spec["name"]) + (f"@tls{version}" if version else "")
                cases.append(Case(
                    name=name, component=spec["component"],
                    args=tuple(expand(arg) for arg in spec["args"]), peer=spec["peer"],
                    peer_options=dict(spec.get("peer_options", {})), version=version,
                    needs=tuple(spec.get("needs", ())), expected=spec["expected"],
                    trap=spec.get("trap", False),
                    bound=float(spec.get("bound", DEFAULT_BOUND_S))))
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ManifestError(f"case names used twice: {', '.join(duplicates)}")
    return known, cases


def select(cases: list[Case], patterns: Iterable[str]) -> list[Case]:
    """The cases whose names match any of the glob patterns (all without patterns)."""
    patterns = list(patterns)
    if not patterns:
        return list(cases)
    return [case for case in cases
            if any(fnmatch.fnmatchcase(case.name, pattern) for pattern in patterns)]


#: The identities the draft cases ask the host for, by name.
HOST_IDENTITIES = ("localhost", "alt", "client")


def identity_args(pki: Pki) -> list[str]:
    """`{identity_args}`: the identities the guests use, and the client CA, in
    the syntax of `wasi-tls-host run`."""
    args = []
    for label in HOST_IDENTITIES:
        args += ["--identity", f"{label}={pki[label].cert_file},{pki[label].key_file}"]
    return args + ["--client-ca", str(pki.ca_file)]


def http_identity_args(pki: Pki) -> list[str]:
    """`{http_identity_args}`: the client certificate wasi:http requests to the
    peers' address present, in the syntax of `wasi-tls-host run`."""
    client = pki["client"]
    return ["--http-client-identity", f"127.0.0.1={client.cert_file},{client.key_file}"]


@dataclass
class GuestRun:
    status: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    result: dict | None
    steps: list[str]


def parse_output(stdout: str) -> tuple[dict | None, list[str]]:
    result, steps = None, []
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            try:
                result = json.loads(line[len(RESULT_MARK):])
            except ValueError:
                result = {"ok": False, "got": f"unreadable result line: {line!r}", "facts": {}}
        elif line.startswith(STEP_MARK):
            steps.append(line[len(STEP_MARK):])
    return result, steps


class Runner:
    def __init__(self, template: HostTemplate, workdir: Path,
                 components: dict[str, Component], *, jobs: int = 2,
                 serve_template: HostTemplate | None = None):
        self.template = template
        #: The host's server command; without it the serve cases are not applicable.
        self.serve_template = serve_template
        #: The manifest's components (`load_manifest`), for what each requires.
        self.components = components
        self.jobs = max(1, jobs)
        self.workdir = workdir
        self.pki = Pki(workdir)
        self._unpacked: dict[str, Path] = {}
        self._unavailable: dict[str, str] = {}

    def run(self, cases: list[Case]) -> list[Outcome]:
        for name in sorted({case.component for case in cases}):
            self._prepare(name)
        longest_first = sorted(cases, key=lambda case: -case.bound)
        with ThreadPoolExecutor(self.jobs) as pool:
            outcomes = {outcome.case.name: outcome
                        for outcome in pool.map(self.run_case, longest_first)}
        return [outcomes[case.name] for case in cases]

    def _prepare(self, name: str) -> None:
        """Unpack the component and run its `probe` case once, alone: the host
        compiles it then rather than in every worker at once. A host that cannot
        run a component that needs an extension makes its cases not applicable."""
        self._unpacked[name] = components.unpack(name, self.workdir)
        if self.components[name].serve:
            return  # a handler has no `probe` to run; its first case compiles it
        probe = self._run_guest(name, ["probe"], bound=120)
        requires = self.components[name].requires
        if requires is None:
            return
        if probe.result is None or not probe.result.get("ok"):
            said = " ".join(line.strip() for line in probe.stderr.splitlines()
                            if "import" in line)[:300] or first_line(probe.stderr) \
                or f"exit status {probe.status}"
            self._unavailable[name] = (f"the host cannot run the {name} component, which needs "
                                       f"{requires}: {said}")

    def _missing(self, case: Case) -> str | None:
        """Why the case cannot run here, the most fundamental reason first."""
        if case.component in self._unavailable:
            return self._unavailable[case.component]
        template = self.template
        if self.components[case.component].serve:
            if self.serve_template is None:
                return "needs a server command (--serve-cmd)"
            template = self.serve_template
        for need in case.needs:
            if need in TEMPLATE_NEEDS and not template.has(TEMPLATE_NEEDS[need]):
                return f"needs {need}: the host command has no {TEMPLATE_NEEDS[need]}"
            if need in TOOL_NEEDS and not TOOL_NEEDS[need]():
                return f"needs {need}, which is not installed here"
        return None

    def run_case(self, case: Case) -> Outcome:
        missing = self._missing(case)
        if missing is not None:
            return Outcome(case, NOT_APPLICABLE, "-", reason=missing)
        try:
            peer = peers.PEERS[case.peer](self.pki, case.version, **case.peer_options)
        except (OSError, RuntimeError) as error:
            return Outcome(case, FAILED, "-", reason=f"the runner could not start its peer "
                                                     f"{case.peer}: {error}")
        if self.components[case.component].serve:
            return self._serve_case(case, peer)
        try:
            args = [fill(arg, peer.values, self.pki) for arg in case.args]
            run = self._run_guest(case.component, args, case.bound)
        finally:
            peer.close()
        problems = peer.problems((run.result or {}).get("facts", {}))
        return judge(case, run, problems)

    def _serve_case(self, case: Case, clients) -> Outcome:
        """Serve the handler, let the clients ask once it listens, stop it."""
        assert self.serve_template is not None  # _missing said so otherwise
        tls = case.peer_options.get("tls", True)
        command = self.serve_template.command(
            component=self._unpacked[case.component], args=[], ca_file=self.pki.ca_file,
            identity_args=identity_args(self.pki) if tls else [],
            addr=clients.values["listen"])
        output = self.workdir / f"serve-{abs(hash(case.name))}.out"
        started = time.monotonic()
        with output.open("w+b") as log:
            try:
                server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
            except OSError as error:
                clients.close()
                return Outcome(case, FAILED, "-", reason=f"cannot run the server: {error}")
            try:
                if wait_until_ready(server, output, case.bound):
                    clients.start(max(0.0, case.bound - (time.monotonic() - started)))
            finally:
                clients.close()
                status = stop(server)
            log.seek(0)
            said = log.read().decode(errors="replace")
        seconds = time.monotonic() - started
        problems = clients.problems({})
        if not problems:
            return Outcome(case, PASSED, clients.got, seconds, exit_status=status, stdout=said)
        reason = "; ".join(problems)
        if not clients.listened:
            reason += f" (the server said: {first_line(said) or 'nothing'})"
        return Outcome(case, FAILED, clients.got, seconds, reason, status, said)

    def _run_guest(self, component: str, args: list[str], bound: float) -> GuestRun:
        command = self.template.command(
            component=self._unpacked[component], args=args, ca_file=self.pki.ca_file,
            identity_args=identity_args(self.pki),
            http_identity_args=http_identity_args(self.pki))
        started = time.monotonic()
        try:
            process = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                     timeout=bound)
            status, out, err, timed_out = (process.returncode, process.stdout, process.stderr,
                                           False)
        except subprocess.TimeoutExpired as expired:
            status, out, err, timed_out = None, expired.stdout or b"", expired.stderr or b"", True
        except OSError as error:
            status, out, err, timed_out = None, b"", f"cannot run the host: {error}".encode(), \
                False
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        result, steps = parse_output(stdout)
        return GuestRun(status, stdout, stderr, time.monotonic() - started, timed_out, result,
                        steps)


def wait_until_ready(server: subprocess.Popen, output: Path, seconds: float) -> bool:
    """Whether the server said it is serving (`READY`) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        if READY.search(output.read_bytes()):
            return True
        time.sleep(0.1)
    return False


def stop(server: subprocess.Popen) -> int | None:
    """Stop a server as an operator would (SIGTERM), killing it if it lingers."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        return server.wait(STOP_S)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def fill(text: str, values: dict[str, str], pki: Pki) -> str:
    """Fill in the peer's `{name}` placeholders and the PKI's `{pki:...}` ones."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        return pki.value(name[4:]) if name.startswith("pki:") else values[name]
    return re.sub(r"\{([a-z_]+|pki:[a-z0-9:.-]+)\}", value, text)


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def judge(case: Case, run: GuestRun, problems: list[str]) -> Outcome:
    """The verdict on one run of a case (see the manifest's header).

    A guest always prints its result line before it exits, so a run that
    ends without one and with a failure status was aborted by the host: a
    trap. Hosts report traps differently (`wasi-tls-host run` and a wasm trap
    under `wasmtime run` exit 134; a host function that traps under `wasmtime
    run` exits 1), so the status alone cannot tell.
    """
    def outcome(verdict: str, got: str, reason: str = "") -> Outcome:
        return Outcome(case, verdict, got, run.seconds, reason, run.status, run.stdout,
                       run.stderr)
    result = run.result
    said = (result or {}).get("got", "")
    if run.timed_out:
        return outcome(FAILED, f"no result within {case.bound:g} s",
                       f"killed after {case.bound:g} s" + (f"; the guest said: {said}"
                                                           if said else ""))
    aborted = result is None and run.status not in (0, None)
    if case.trap:
        if aborted and run.steps:
            return outcome(PASSED, "trap",
                           f"trapped at: {run.steps[-1]} (exit status {run.status})")
        if aborted:
            return outcome(FAILED, "trap elsewhere",
                           f"trapped before the forbidden call: {first_line(run.stderr)}")
        return outcome(FAILED, said or f"exit status {run.status}",
                       f"no trap (exit status {run.status})" + (f": {said}" if said else ""))
    if result is None:
        detail = first_line(run.stderr) or "no output"
        got = "trap" if aborted else f"exit status {run.status}"
        return outcome(FAILED, got, f"no result line (exit status {run.status}): {detail}")
    if run.status != (0 if result.get("ok") else 1):
        return outcome(FAILED, said, f"exit status {run.status} disagrees with the result line")
    if not result.get("ok"):
        return outcome(FAILED, said, said)
    if problems:
        return outcome(FAILED, said, "; ".join(problems))
    return outcome(PASSED, said)


def workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="wasi-tls-conformance-")
