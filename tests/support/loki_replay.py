"""Replays recorded Loki answers over real HTTP and keeps the requests it received.

It stands in for a Loki server only in what the client sends and reads; which body it
answers is chosen by the LogQL (a ``trace_id`` filter gets the trace recording), and a
query containing ``syntax-error`` gets Loki's plain-text 400.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

__all__ = ["LOKI_DATA", "LokiReplay", "loki_replay"]

LOKI_DATA = Path(__file__).resolve().parents[1] / "data" / "loki"


@dataclass
class LokiReplay:
    url: str
    queries: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def loki_replay() -> Iterator[LokiReplay]:
    replay = LokiReplay("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            replay.queries.append({"path": parsed.path, **query})
            logql = query.get("query", "")
            if parsed.path != "/loki/api/v1/query_range":
                self._send(404, "text/plain", b"404 page not found\n")
            elif "syntax-error" in logql:
                self._send(400, "text/plain", (LOKI_DATA / "bad_query.txt").read_bytes())
            else:
                name = "trace_categorized.json" if "trace_id=" in logql else "search_plain.json"
                self._send(200, "application/json", (LOKI_DATA / name).read_bytes())

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
