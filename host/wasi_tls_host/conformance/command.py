"""`wasi-tls-host conformance`: run the wasi:tls conformance suite against a host.

Without --host-cmd the host is this one (its installed `wasi-tls-host`), and
so is its server (`serve`, for the cases of incoming handlers); with
--host-cmd, those cases need --serve-cmd.
Exit status: 0 when no case failed, 1 when any did, 2 for a usage mistake or
a suite that cannot start (a component missing from the package).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .template import (
    PLACEHOLDERS,
    SERVE_REQUIRES,
    HostTemplate,
    TemplateError,
    default_serve_template,
    default_template,
)

USAGE_STATUS = 2

EXAMPLE = ('--host-cmd "wasmtime run -S tls,http,inherit-network,allow-ip-name-lookup '
           '{component} {args}" \\\n    --serve-cmd "wasmtime serve -S cli --addr {addr} '
           '{component}"')


def add_parser(commands, host_command: str, summary: str) -> None:
    parser = commands.add_parser(
        "conformance", help=summary,
        description="Run the wasi:tls conformance suite: guest components, each case "
                    "checking one behaviour, against peers the suite starts on loopback with "
                    "certificates it makes. Exit status 1 if any case failed.",
        epilog=f"example:\n  wasi-tls-host conformance {EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host-cmd", metavar="TEMPLATE",
                        help="the host to test, as a command with placeholders: "
                             f"{', '.join(PLACEHOLDERS)} ({{component}} and {{args}} are "
                             "required; a case that needs one the template lacks is not "
                             "applicable). Default: this host")
    parser.add_argument("--serve-cmd", metavar="TEMPLATE",
                        help="the host's server for incoming-handler components, as a "
                             "command with {component} and {addr} (HOST:PORT), and "
                             "{identity_args} if it serves HTTPS. Default: this host's "
                             "serve, unless --host-cmd is given (then the serve cases are "
                             "not applicable)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only the cases whose names match the glob PATTERN "
                             "(repeatable), e.g. 'tls/*' or '*@tls1.3'")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the outcomes as JSON")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="cases run at a time (default: 2)")
    parser.set_defaults(host_command=host_command)


def run(options: argparse.Namespace) -> int:
    # Imported only now: `wasi-tls-host run` builds this parser too, and the
    # suite's peers and PKI (ssl, cryptography.x509) would slow every start.
    from . import components, report
    from .runner import FAILED, ManifestError, Runner, load_manifest, select, workdir

    try:
        known, cases = load_manifest()
    except ManifestError as error:
        print(f"wasi-tls-host: broken conformance manifest: {error}", file=sys.stderr)
        return USAGE_STATUS
    chosen = select(cases, options.only)
    if not chosen:
        print(f"wasi-tls-host: no case matches {', '.join(options.only)}", file=sys.stderr)
        return USAGE_STATUS
    if options.list:
        for component in known.values():
            print(f"# component {component.name} (world {component.world}): {component.about}",
                  file=sys.stderr)
        for case in chosen:
            needs = f"  [needs {', '.join(case.needs)}]" if case.needs else ""
            print(f"{case.name}  ({case.expected}){needs}")
        return 0
    try:
        template = HostTemplate(options.host_cmd or default_template(options.host_command))
    except TemplateError as error:
        print(f"wasi-tls-host: --host-cmd: {error}", file=sys.stderr)
        return USAGE_STATUS
    serve_text = options.serve_cmd or (None if options.host_cmd
                                       else default_serve_template(options.host_command))
    try:
        serve_template = HostTemplate(serve_text, SERVE_REQUIRES) if serve_text else None
    except TemplateError as error:
        print(f"wasi-tls-host: --serve-cmd: {error}", file=sys.stderr)
        return USAGE_STATUS
    started = time.monotonic()
    with workdir() as directory:
        try:
            outcomes = Runner(template, Path(directory), known, jobs=options.jobs,
                              serve_template=serve_template).run(chosen)
        except components.MissingComponent as missing:
            print(f"wasi-tls-host: {missing}", file=sys.stderr)
            return USAGE_STATUS
    seconds = time.monotonic() - started
    print(report.table(outcomes))
    print()
    print(report.summary(outcomes, template.text, seconds))
    for path, write in ((options.json, report.write_json), (options.junit, report.write_junit)):
        if path is None:
            continue
        try:
            write(path, outcomes, template.text, seconds)
        except OSError as error:
            print(f"wasi-tls-host: cannot write {path}: {error.strerror or error}",
                  file=sys.stderr)
            return USAGE_STATUS
    return 1 if any(outcome.verdict == FAILED for outcome in outcomes) else 0
