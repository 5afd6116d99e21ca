"""The suite's outcomes as a person and as a CI system read them: a table and
a summary on the terminal, a JSON document, and JUnit XML (one testcase per
case; failed cases carry a <failure>, not applicable ones a <skipped>)."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from .runner import FAILED, NOT_APPLICABLE, PASSED, Outcome

COLUMNS = (("case", 44), ("expected", 34), ("got", 54), ("time", 6), ("verdict", 14))


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def table(outcomes: list[Outcome]) -> str:
    rows = [[name for name, _ in COLUMNS]]
    for outcome in outcomes:
        rows.append([outcome.case.name, outcome.case.expected, outcome.got,
                     f"{outcome.seconds:.1f}s" if outcome.verdict != NOT_APPLICABLE else "-",
                     outcome.verdict])
    lines = []
    for row in rows:
        lines.append("  ".join(_cell(text, width).ljust(width)
                               for text, (_, width) in zip(row, COLUMNS, strict=True)).rstrip())
    return "\n".join(lines)


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    tally = Counter(outcome.verdict for outcome in outcomes)
    return {"cases": len(outcomes), "passed": tally[PASSED], "failed": tally[FAILED],
            "not_applicable": tally[NOT_APPLICABLE]}


def summary(outcomes: list[Outcome], host: str, seconds: float) -> str:
    tally = counts(outcomes)
    lines = [f"{tally['cases']} cases: {tally['passed']} passed, {tally['failed']} failed, "
             f"{tally['not_applicable']} not applicable ({seconds:.0f} s; host: {host})"]
    for verdict, title in ((FAILED, "failed"), (NOT_APPLICABLE, "not applicable")):
        chosen = [outcome for outcome in outcomes if outcome.verdict == verdict]
        if chosen:
            lines.append(f"\n{title}:")
            lines += [f"  {outcome.case.name}: {outcome.reason}" for outcome in chosen]
    return "\n".join(lines)


def write_json(path: Path, outcomes: list[Outcome], host: str, seconds: float) -> None:
    document = {"host": host, "seconds": round(seconds, 1), "summary": counts(outcomes),
                "cases": [outcome.as_json() for outcome in outcomes]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_junit(path: Path, outcomes: list[Outcome], host: str, seconds: float) -> None:
    tally = counts(outcomes)
    attributes = {"tests": str(tally["cases"]), "failures": str(tally["failed"]),
                  "errors": "0", "skipped": str(tally["not_applicable"]),
                  "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": "wasi-tls conformance", **attributes})
    suite = ET.SubElement(root, "testsuite", {"name": "wasi-tls-conformance",
                                              "hostname": socket.gethostname(), **attributes})
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="host", value=host)
    for outcome in outcomes:
        testcase = ET.SubElement(suite, "testcase", classname=f"conformance.{outcome.case.group}",
                                 name=outcome.case.name.partition("/")[2],
                                 time=f"{outcome.seconds:.3f}")
        if outcome.verdict == FAILED:
            failure = ET.SubElement(testcase, "failure", message=outcome.reason or outcome.got,
                                    type="conformance")
            failure.text = (f"expected: {outcome.case.expected}\ngot: {outcome.got}\n"
                            f"exit status: {outcome.exit_status}\n\nstdout:\n{outcome.stdout}"
                            f"\nstderr:\n{outcome.stderr}")
        elif outcome.verdict == NOT_APPLICABLE:
            ET.SubElement(testcase, "skipped", message=f"not applicable: {outcome.reason}")
        ET.SubElement(testcase, "system-out").text = (
            f"expected: {outcome.case.expected}\ngot: {outcome.got}")
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
