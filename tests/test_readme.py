"""The README's examples run as pasted: its curl and Python blocks against the live service.

A curl command's status, and its body when one is shown, is checked against the comment after
it (`# 201 {"version":1}`, `# 404: ...`).
"""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, re.M | re.S)
CURL_BLOCKS = [body for lang, body in BLOCKS if lang in ("bash", "sh") and "curl " in body]
PYTHON_BLOCKS = [body for lang, body in BLOCKS if lang == "python"]

# Every curl of a block appends "<status>\t<body on one line>" to $README_LOG.
CURL_RECORDER = r"""
curl() {
  local body code
  body=$(mktemp)
  code=$(command curl -sS -o "$body" -w '%{http_code}' "$@")
  { printf '%s\t' "$code"; tr -d '\r\n' < "$body"; printf '\n'; } >> "$README_LOG"
  rm -f "$body"
}
"""


def expectations(block: str) -> list[tuple[str, str | None] | None]:
    """Per curl command of the block: (status, exact body or None) from its comment, or None."""
    commands: list[list[str]] = []
    continued = False
    for line in block.splitlines():
        stripped = line.strip()
        if continued:
            commands[-1].append(line)
        elif stripped.startswith("#"):
            if commands:
                commands[-1].append(line)  # a comment line under a command describes it
        elif stripped:
            commands.append([line])
        continued = line.rstrip().endswith("\\")
    out: list[tuple[str, str | None] | None] = []
    for command in commands:
        if not command[0].lstrip().startswith("curl "):
            continue
        comment = " ".join(part.split("#", 1)[1] for part in command if "#" in part)
        found = re.match(r"\s*(\d{3})\b[\s:,]*(.*)", comment)
        if found is None:
            out.append(None)
            continue
        rest = found.group(2).strip()
        out.append((found.group(1), rest if rest.startswith(("{", "[")) else None))
    return out


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert CURL_BLOCKS and PYTHON_BLOCKS
    assert all(e is not None for block in CURL_BLOCKS for e in expectations(block))


@pytest.fixture
def example_env(service_url: str, tmp_path: Path) -> dict[str, str]:
    """The README's variables pointed at the test service and a namespace of this test's own."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PERSISTD_")},
        "PERSISTD_URL": service_url,
        "PERSISTD_NAMESPACE": f"readme-{uuid.uuid4().hex[:10]}",
        "README_LOG": str(tmp_path / "curl.log"),
    }


@pytest.mark.parametrize("index", range(len(CURL_BLOCKS)))
def test_readme_curl_examples_answer_as_their_comments_say(
    index: int, example_env: dict[str, str]
) -> None:
    block = CURL_BLOCKS[index]
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + CURL_RECORDER + block],
        env=example_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answers = Path(example_env["README_LOG"]).read_text().splitlines()
    expected = expectations(block)
    assert len(answers) == len(expected), answers
    for answer, expect in zip(answers, expected, strict=True):
        status, _, body = answer.partition("\t")
        assert expect is not None
        assert status == expect[0], answer
        if expect[1] is not None:
            assert body == expect[1], answer
            json.loads(body)  # and it is JSON


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_examples_run(
    index: int, example_env: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_BLOCKS[index]],
        cwd=tmp_path,
        env=example_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
