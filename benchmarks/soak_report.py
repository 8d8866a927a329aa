"""What a soak run found, and its summary table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.soak_checks import Invariant


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


@dataclass
class SoakReport:
    """One run: the jobs by outcome, the faults injected, the invariants."""

    seed: int
    backend: str
    elapsed: float
    fault_seconds: float
    jobs: Counter[str]
    singles: int
    actions: Counter[str]
    bfl_faults: Counter[str]
    discord_faults: Counter[str]
    process_faults: Counter[str]
    db_faults: int
    pg_terminated: int
    stuck: list[str]  # open jobs that stopped moving (empty: quiescence reached)
    invariants: list[Invariant]
    folder: Path

    @property
    def ok(self) -> bool:
        """Quiescence reached and every invariant held."""
        return not self.stuck and all(invariant.ok for invariant in self.invariants)

    @property
    def failed(self) -> list[Invariant]:
        return [invariant for invariant in self.invariants if not invariant.ok]

    def table(self) -> str:
        """The summary: jobs by outcome, faults injected, elapsed time, each invariant ✓ or ✗ with its failures."""
        total = sum(self.jobs.values())
        database = f"{self.db_faults} injected errors"
        if self.backend == "postgresql":
            database += f", {self.pg_terminated} server backends terminated"
        rows = [
            ("seed / backend", f"{self.seed} / {self.backend}"),
            ("elapsed", f"{self.elapsed:.1f} s ({self.fault_seconds:.1f} s under faults)"),
            ("jobs", f"{total} ({self.singles} singles, {total - self.singles} in groups)"),
            ("jobs by outcome", _counts(self.jobs)),
            ("member actions", _counts(self.actions)),
            ("BFL faults", _counts(self.bfl_faults)),
            ("Discord faults", _counts(self.discord_faults)),
            ("database faults", database),
            ("process faults", _counts(self.process_faults)),
            ("quiescence", "reached" if not self.stuck else f"NOT reached: {len(self.stuck)} open jobs stopped moving"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"soak seed {self.seed} on {self.backend}: {'PASS' if self.ok else 'FAIL'}"]
        lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
        lines += [f"      stuck: {job}" for job in self.stuck[:10]]
        lines.append("  invariants:")
        for invariant in self.invariants:
            mark = "✓" if invariant.ok else "✗"
            count = "" if invariant.ok else f" ({len(invariant.failures)} listed)"
            lines.append(f"    {mark} {invariant.name}{count}")
            lines += [f"        - {failure}" for failure in invariant.failures]
            lines += [f"        · {note}: {n}" for note, n in sorted(invariant.notes.items()) if n]
        lines.append(f"  logs: {self.folder}")
        return "\n".join(lines)
