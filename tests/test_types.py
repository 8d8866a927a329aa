"""The type check: mypy, configured in pyproject.toml (``[tool.mypy]``), passes on ``bot/`` and ``cogs/``.

It runs as part of ``python -m pytest`` (and so of ``.ci/run``). mypy keeps its incremental cache in
``.mypy_cache/`` (gitignored), so a second run only rechecks what changed.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("bot", "cogs")
# `# type: ignore[code]  # why`: an error code (mypy's ignore-without-code enforces it too) and a reason,
# on the line itself or in a comment line just above it.
CODED_IGNORE = re.compile(r"# type: ignore\[[a-z-]+(, ?[a-z-]+)*\](?P<why>\s+#\s*\S)?")


def test_mypy_finds_no_errors_in_bot_and_cogs():
    run = subprocess.run(
        [sys.executable, "-m", "mypy"],  # files, strictness and cache: pyproject.toml
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"mypy found errors:\n{run.stdout}{run.stderr}"
    assert "Success: no issues found" in run.stdout, run.stdout


def test_every_type_ignore_names_its_error_code_and_says_why():
    unexplained = []
    for folder in CHECKED:
        for path in sorted((REPO / folder).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                if "type: ignore" not in line:
                    continue
                coded = CODED_IGNORE.search(line)
                above = lines[number - 2].strip() if number > 1 else ""
                if coded is None or (coded["why"] is None and not above.startswith("#")):
                    unexplained.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not unexplained, "\n".join(unexplained)
