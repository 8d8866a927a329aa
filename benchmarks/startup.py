"""Start-up time and health-check CPU of the bot installed as the container installs it, with and without bytecode.

Run: python -m benchmarks.startup [--runs 7] [--keep FOLDER]

No Docker engine is needed: the image's layout is reproduced in a scratch folder.

1. A copy of this interpreter's installation without any bytecode and without its site-packages, as
   ``python:3.11-slim`` ships it (the official image deletes every ``.pyc``, standard library included).
2. This repository installed into it the way the Dockerfile's build stage does it:
   ``pip install --no-compile --only-binary=:all: --prefix …`` (``--ignore-installed``: every
   dependency goes into the copy, none is borrowed from this environment).
3. Measured with ``PYTHONDONTWRITEBYTECODE=1`` (the image's setting): the wall time of
   ``python -c "import bot.app"`` (what ``python -m bot`` imports before it connects), and the CPU
   time (user + system) of one health check — ``python -m bot healthcheck`` (before) and
   ``python -m bot.ops.probe`` (the image's ``HEALTHCHECK`` now) — against a local ``/healthz``.
4. ``python -m compileall --invalidation-mode unchecked-hash`` over the copy's ``lib/python3.11``, as the
   Dockerfile's final stage runs it; the same measurements again, and the bytes the bytecode adds.
"""

from __future__ import annotations

import argparse
import http.server
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "site-packages", "test", "tests", "idle_test")


def copy_interpreter(target: Path) -> Path:
    """A bytecode-free copy of this interpreter's installation (no site-packages); its ``python``."""
    base = Path(sys.base_prefix)
    (target / "bin").mkdir(parents=True)
    python = target / "bin" / "python"
    shutil.copy2(Path(sys.executable).resolve() if sys.prefix == sys.base_prefix else base / "bin" / VERSION, python)
    shutil.copytree(base / "lib" / VERSION, target / "lib" / VERSION, ignore=_SKIPPED, symlinks=True)
    (target / "lib" / VERSION / "site-packages").mkdir()
    return python


def install(target: Path) -> None:
    """This repository and its dependencies into ``target``, as the Dockerfile's build stage does."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--no-compile", "--only-binary=:all:",
         "--ignore-installed", "--no-warn-script-location", "--prefix", str(target), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pip install failed: {done.stderr[-2000:]}")


def bytecode_bytes(folder: Path) -> int:
    """Bytes of every ``.pyc`` under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*.pyc"))


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok", "gateway": "connected", "database": "ok"}'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``; it must exit 0."""
    cpu, wall = _child_cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, _child_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
    return wall, cpu


def measure(python: Path, port: int, runs: int, cwd: Path) -> dict[str, float]:
    """Median figures over ``runs`` runs of each command."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DISCORD_TOKEN": "benchmark-token-not-used",
        "BFL_API_KEY": "benchmark-key-not-used",
        "METRICS_PORT": str(port),
        "METRICS_HOST": "0.0.0.0",
    }
    commands = {
        "import": [str(python), "-c", "import bot.app"],
        "healthcheck": [str(python), "-m", "bot", "healthcheck"],
        "probe": [str(python), "-m", "bot.ops.probe"],
    }
    figures: dict[str, float] = {}
    for name, argv in commands.items():
        samples = [timed(argv, env, cwd) for _ in range(runs)]
        figures[f"{name}_wall"] = statistics.median(s[0] for s in samples)
        figures[f"{name}_cpu"] = statistics.median(s[1] for s in samples)
    return figures


def run(runs: int, keep: Path | None = None) -> list[str]:
    """Build the copy, measure, compile, measure again; the table."""
    folder = Path(tempfile.mkdtemp(prefix="fluxcord-startup-")) if keep is None else keep
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = folder / "python"
        python = copy_interpreter(target)
        install(target)
        work = folder / "work"  # an empty working folder: nothing to import from it
        work.mkdir()
        port = server.server_address[1]
        before = measure(python, port, runs, work)
        compiled = subprocess.run(
            [str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
             str(target / "lib" / VERSION)],
            capture_output=True, text=True,
        )  # fmt: skip
        if compiled.returncode != 0:
            raise RuntimeError(f"compileall failed: {compiled.stdout[-500:]}{compiled.stderr[-500:]}")
        added = bytecode_bytes(target / "lib" / VERSION)
        after = measure(python, port, runs, work)
    finally:
        server.shutdown()
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return [
        f"start-up and health check, installed as the image installs it ({VERSION}, median of {runs} runs)",
        "| measure | no bytecode (before) | compiled at build time |",
        "|---|---:|---:|",
        f"| `import bot.app` (wall) | {before['import_wall']:.2f} s | {after['import_wall']:.2f} s |",
        f"| `python -m bot healthcheck` (CPU) | {before['healthcheck_cpu'] * 1000:.0f} ms "
        f"| {after['healthcheck_cpu'] * 1000:.0f} ms |",
        f"| `python -m bot.ops.probe` (CPU) | {before['probe_cpu'] * 1000:.0f} ms "
        f"| {after['probe_cpu'] * 1000:.0f} ms |",
        f"| bytecode in the image | 0 MB | {added / 1e6:.0f} MB |",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="build in this (new) folder and keep it")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print("\n".join(run(args.runs, args.keep)))


if __name__ == "__main__":
    main()
