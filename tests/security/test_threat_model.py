"""docs/security/threat-model.md stays true to the code and the tests.

* Every test id it cites (`tests/…py::test_name`, or `::Class::test_name`) names a test function that
  exists, found by parsing the test files with `ast` (no pytest collection, no imports).
* Every threat that issue 6 names has a section with the attack, the mitigation, at least one test id
  and references; the summary table lists each section, links to it, and gives its number of tests.
* Every repository path it names in backticks exists.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security" / "threat-model.md"

# Issue 6, item 1, in the words of the section headings (backticks dropped).
REQUIRED_THREATS = (
    "Browser swapping",
    "Login CSRF through a forwarded consent link",
    "Identity confusion",
    "ALB token forgery",
    "kid abuse",
    "Direct access to targets bypassing the ALB",
    "Open redirects",
    "Session id injection",
    "Replay and double submit",
    "Token leakage via Referer, logs, caches, error pages",
    "Clickjacking",
    "Authorization code injection and mix-up on the external leg",
    "IAM privilege escalation between the two services",
    "Secrets in environment variables or templates",
)
PARTS = ("**Attack.**", "**Mitigation.**", "**Tests.**", "**References.**")

TEST_ID = re.compile(r"tests/[\w/]+\.py::[\w:\[\]\-.]+")
HEADING = re.compile(r"^### (T\d+)\. (.+)$", re.MULTILINE)
SUMMARY_ROW = re.compile(r"^\| (T\d+) \| \[(.+?)\]\(#([\w-]+)\) \| .+ \| (\d+) \|$", re.MULTILINE)
REPO_PATH = re.compile(r"`((?:services|stacks|cdk_app|local|tests|docs|bench|tools)/[\w./-]*)`")


def threat_sections(text: str) -> dict[str, tuple[str, str]]:
    """Threat number -> (heading text, section body), for every `### T<n>. <name>` heading."""
    headings = list(HEADING.finditer(text))
    sections: dict[str, tuple[str, str]] = {}
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end() : end].split("\n## ", 1)[0]  # a level-2 heading ends the last threat
        sections[heading.group(1)] = (heading.group(2), body)
    return sections


def cited_ids(text: str) -> list[str]:
    return TEST_ID.findall(text)


@cache
def defined_tests(relative: str) -> frozenset[str]:
    """`test_*` functions of a test module, and `Class::test_*` for methods of its `Test*` classes."""
    path = ROOT / relative
    if not path.is_file():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_")
            )
    return frozenset(names)


def unknown_test_ids(ids: Iterable[str]) -> list[str]:
    """The ids that name no test function (or carry a parametrization suffix, which the doc must not cite)."""
    unknown = []
    for test_id in ids:
        module, _, name = test_id.partition("::")
        if "[" in name or name not in defined_tests(module):
            unknown.append(test_id)
    return unknown


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_cited_test_exists() -> None:
    ids = cited_ids(doc())
    assert len(ids) > 100, "the parser found too few test ids: has the citation format changed?"
    assert unknown_test_ids(ids) == []


def test_the_check_sees_a_made_up_or_parametrized_id() -> None:
    real = "tests/e2e/test_attacks.py::test_consent_url_forwarded_to_bob_lands_in_bobs_browser_and_is_refused"
    made_up = [
        "tests/e2e/test_attacks.py::test_nobody_wrote_this",
        "tests/e2e/no_such_module.py::test_consent_url_forwarded_to_bob_lands_in_bobs_browser_and_is_refused",
        "tests/services/session_binding/test_session_binding.py::test_malformed_session_id_is_refused_and_escaped[crlf]",
    ]
    text = " ".join(f"`{test_id}`" for test_id in [real, *made_up])
    assert cited_ids(text) == [real, *made_up]
    assert unknown_test_ids(cited_ids(text)) == made_up


def test_every_threat_of_issue_6_has_a_section_with_a_test() -> None:
    sections = threat_sections(doc())
    by_name = {heading.replace("`", ""): body for heading, body in sections.values()}
    missing = [name for name in REQUIRED_THREATS if name not in by_name]
    assert missing == [], "issue 6 names these threats; give each a `### T<n>. <name>` section"
    untested = [name for name in REQUIRED_THREATS if not cited_ids(by_name[name])]
    assert untested == []


def test_every_section_has_attack_mitigation_tests_and_references() -> None:
    sections = threat_sections(doc())
    assert [int(number[1:]) for number in sections] == list(range(1, len(sections) + 1)), "threats are numbered T1, T2, … in order"
    incomplete = {f"{number}. {heading}": [p for p in PARTS if p not in body] for number, (heading, body) in sections.items()}
    assert {name: parts for name, parts in incomplete.items() if parts} == {}
    untested = [f"{number}. {heading}" for number, (heading, body) in sections.items() if not cited_ids(body)]
    assert untested == []


def test_the_summary_lists_every_section_with_its_number_of_tests() -> None:
    text = doc()
    sections = threat_sections(text)
    rows = {number: (name, anchor, int(count)) for number, name, anchor, count in SUMMARY_ROW.findall(text)}
    assert sorted(rows) == sorted(sections), "one summary row per threat section"
    for number, (heading, body) in sections.items():
        name, anchor, count = rows[number]
        assert name == heading, number
        assert anchor == slug(f"{number}. {heading}"), number
        assert count == len(set(cited_ids(body))), f"{number}: the summary says {count} tests"


def test_every_named_repository_path_exists() -> None:
    paths = set(REPO_PATH.findall(doc()))
    assert paths, "the parser found no paths"
    assert sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists()) == []


def test_residual_risks_have_a_section_of_their_own() -> None:
    text = doc()
    assert "\n## Residual risks and assumptions\n" in text
    assert "(#residual-risks-and-assumptions)" in text
