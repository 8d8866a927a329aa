"""The container's health check: ``GET /healthz`` on the bot's metrics port; exit 0 on a 200, else 1.

``python -m bot.ops.probe`` is the image's ``HEALTHCHECK``. It runs beside the bot every 30 seconds,
so it uses the standard library only and imports nothing else of the bot (``bot`` and ``bot.ops`` are
empty packages): no settings, no pydantic, no aiohttp. It reads ``METRICS_PORT`` and ``METRICS_HOST``
from the environment (the image and ``compose.yaml`` set both); a bot listening on every address
(``0.0.0.0``) is asked on the loopback address. ``python -m bot healthcheck`` does the same for
people, with the bot's own settings (``.env`` included) and their error messages.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

TIMEOUT_SECONDS = 5.0
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # noqa: S104 (mapped, never bound here)
_MAX_RESPONSE = 64 * 1024


def loopback(host: str) -> str:
    """The address to ask a server listening on ``host`` (every address: the loopback one)."""
    return _ANY_ADDRESS.get(host, host).strip("[]")


def health_url(host: str, port: int) -> str:
    """The ``/healthz`` URL of a bot whose metrics server listens on ``host:port``."""
    host = loopback(host)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def ask(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> tuple[int, str]:
    """Exit status and one line: 0 and the body on a 200 from ``/healthz``, else 1 and why.

    One HTTP/1.0 request on a plain socket (``urllib`` would import ``http.client``, ``email`` and
    ``ssl``: measured, 44 ms of CPU per check against 16 ms).
    """
    url = health_url(host, port)
    address = loopback(host)
    request = f"GET /healthz HTTP/1.0\r\nHost: {address}:{port}\r\nConnection: close\r\n\r\n".encode("ascii")
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.sendall(request)
            response = b""
            while len(response) < _MAX_RESPONSE and (chunk := conn.recv(4096)):
                response += chunk
    except OSError as exc:
        return 1, f"no answer from {url}: {exc.strerror or exc}"
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    text = body[:500].decode("utf-8", "replace").strip()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return 1, f"no HTTP answer from {url}: {status_line[:100]!r}"
    if parts[1] != "200":
        return 1, f"unhealthy ({parts[1]}): {text}"
    return 0, text


def main(environ: Mapping[str, str] | None = None) -> int:
    """Ask the bot the environment describes; print one line; return the exit status."""
    environ = os.environ if environ is None else environ
    port = environ.get("METRICS_PORT", "").strip()
    if not port.isdigit() or not 0 < int(port) < 65536:
        status, line = 1, f"METRICS_PORT is {port!r}: the health endpoint is off or unknown (e.g. METRICS_PORT=9108)"
    else:
        status, line = ask(environ.get("METRICS_HOST", "").strip() or "127.0.0.1", int(port))
    print(line, file=sys.stdout if status == 0 else sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
