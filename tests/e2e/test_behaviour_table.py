"""docs/behaviour.md cites tests by name; every one it cites must exist (no root, no cgnd).

A reference is `tests/<dir>/<file>::Suite.Name` (GoogleTest: TEST, TEST_F or TEST_P in that
file; `Prefix/Suite.Name/{A,B}` for a parameterised test, whose INSTANTIATE_TEST_SUITE_P with
that prefix must be in the file too; `Suite.*` for every test of a suite) or
`tests/e2e/<file>::test_name` (a pytest function). `…::Name` repeats the file of the previous
reference in the same table row. Whether a test shows what its row claims is a matter for the
reader; this only keeps the table from naming tests that are gone or renamed.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "docs" / "behaviour.md"

SPAN = re.compile(r"`([^`]+)`")
GTEST = re.compile(r"\bTEST(?:_F|_P)?\(\s*(\w+)\s*,\s*(\w+)\s*\)")
INSTANTIATE = re.compile(r"INSTANTIATE_TEST_SUITE_P\(\s*(\w+)\s*,\s*(\w+)\s*,")
PYTEST = re.compile(r"^def (test_\w+)\(", re.M)


def references() -> list[tuple[int, str, str]]:
    """(line number, file, name) of every test reference in the table rows."""
    out = []
    for number, line in enumerate(TABLE.read_text().splitlines(), 1):
        if not line.startswith("|"):
            continue
        current = None
        for span in SPAN.findall(line):
            if "::" not in span:
                continue
            file, name = span.split("::", 1)
            if file == "…":
                assert current, f"line {number}: `{span}` follows no file"
                file = current
            elif file.startswith("tests/"):
                current = file
            else:
                continue  # a C++ name such as `NatEngine::refuse`
            out.append((number, file, name))
    return out


def gtest_names(text: str) -> set[tuple[str, str]]:
    return set(GTEST.findall(text))


def missing(file: str, name: str) -> str | None:
    """Why the reference does not resolve, or None."""
    path = REPO / file
    if not path.is_file():
        return f"{file} does not exist"
    text = path.read_text()
    if file.endswith(".py"):
        if name not in PYTEST.findall(text):
            return f"{file} has no function {name}"
        return None
    prefix = None
    parts = name.split("/")
    if len(parts) >= 2 and "." not in parts[0]:
        prefix, parts = parts[0], parts[1:]
    suite, _, test = parts[0].partition(".")
    names = gtest_names(text)
    if test == "*":
        if not any(s == suite for s, _ in names):
            return f"{file} has no test of suite {suite}"
    elif (suite, test) not in names:
        return f"{file} has no TEST*({suite}, {test})"
    if prefix and (prefix, suite) not in set(INSTANTIATE.findall(text)):
        return f"{file} does not instantiate {suite} as {prefix}"
    return None


def test_the_table_cites_tests():
    refs = references()
    # The table cites well over a hundred tests; a parser that finds few is broken.
    assert len(refs) > 150, refs


def test_every_cited_test_exists():
    problems = [
        f"docs/behaviour.md:{n}: {why}"
        for n, file, name in references()
        if (why := missing(file, name))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "file,name,found",
    [
        ("tests/unit/tcp_state_test.cpp", "TcpState.EveryTransition", True),
        ("tests/unit/tcp_state_test.cpp", "TcpState.NoSuchTest", False),
        ("tests/unit/events_test.cpp", "NatEventText.*", True),
        ("tests/e2e/test_basic.py", "test_ttl_exceeded", True),
        ("tests/e2e/test_basic.py", "test_no_such_test", False),
        (
            "tests/dataplane/behaviour_test.cpp",
            "Rfc7857Section7_1/TcpOutboundReset.AnsweringAnInboundSynDoesNotRefresh/{EIF}",
            True,
        ),
        (
            "tests/dataplane/behaviour_test.cpp",
            "NoSuchPrefix/TcpOutboundReset.AnsweringAnInboundSynDoesNotRefresh/{EIF}",
            False,
        ),
    ],
)
def test_the_checker_tells_present_from_absent(file, name, found):
    assert (missing(file, name) is None) == found
