"""A stand-in for the orchestrator's control API: answers set per path, every call recorded."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any]  # status, and a JSON body (None: a body that is not JSON)


class FakeControl:
    """What the stand-in answers and what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}  # by path prefix, the longest matching wins
        self.default: Answer = (200, {})
        self.calls: list[tuple[str, str, Any, str | None]] = []  # method, path, body, secret
        self.url = ""

    def answer_for(self, path: str) -> Answer:
        matching = [prefix for prefix in self.answers if path.startswith(prefix)]
        return self.answers[max(matching, key=len)] if matching else self.default


def _handler(control: FakeControl) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(json.loads(self.rfile.read(length)) if length else None)

        def _serve(self, body: Any) -> None:
            control.calls.append(
                (self.command, self.path, body, self.headers.get("X-Fabric-Host-Secret"))
            )
            status, answer = control.answer_for(self.path)
            raw = b"not json" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def fake_control() -> Iterator[FakeControl]:
    """A stand-in control API on a free loopback port, for the length of the block."""
    control = FakeControl()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(control))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    control.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield control
    finally:
        server.shutdown()
        server.server_close()
