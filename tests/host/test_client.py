import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host.client import SECRET_HEADER, HostLink, HostRefused, HostUnavailable, host_link


class Orchestrator(BaseHTTPRequestHandler):
    """Answers like the control API: the secret checked, JSON both ways."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get(SECRET_HEADER) != "s" * 32:
            self._answer(403, {"error": "the secret is wrong", "reason": "bad_secret"})
        elif self.path == "/echo":
            self._answer(200, {"echo": body})
        else:
            self._answer(500, None)

    def _answer(self, status: int, body: object) -> None:
        raw = b"not json" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def control_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Orchestrator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_call_carries_the_secret_and_returns_the_json(control_url: str) -> None:
    link = HostLink(control_url=control_url, secret="s" * 32, market_id=1)
    assert link.call("POST", "/echo", {"a": 1}) == {"echo": {"a": 1}}


def test_a_refusal_comes_back_with_its_reason(control_url: str) -> None:
    link = HostLink(control_url=control_url, secret="wrong" * 8, market_id=1)
    with pytest.raises(HostRefused) as refused:
        link.call("POST", "/echo", {})
    assert (refused.value.status, refused.value.reason) == (403, "bad_secret")
    assert refused.value.message == "the secret is wrong"


def test_an_answer_without_json_reason_still_names_the_status(control_url: str) -> None:
    link = HostLink(control_url=control_url, secret="s" * 32, market_id=1)
    with pytest.raises(HostRefused) as refused:
        link.call("POST", "/broken", {})
    assert refused.value.reason == "http_500"


def test_an_orchestrator_that_is_not_there_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    link = HostLink(control_url=f"http://127.0.0.1:{port}", secret="s" * 32, market_id=1)
    with pytest.raises(HostUnavailable, match="did not answer"):
        link.call("GET", "/health")


def test_the_link_needs_all_three_variables() -> None:
    env = {
        "FABRIC_HOST_CONTROL_URL": "http://127.0.0.1:9100",
        "FABRIC_HOST_SECRET": "x" * 32,
        "FABRIC_HOST_MARKET_ID": "2",
    }
    assert host_link(env) == HostLink("http://127.0.0.1:9100", "x" * 32, 2)
    for missing in env:
        assert host_link({k: v for k, v in env.items() if k != missing}) is None
    assert host_link({**env, "FABRIC_HOST_MARKET_ID": "two"}) is None
