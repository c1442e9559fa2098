import socket
from collections.abc import Iterator

import pytest

from host.client import HostLink, HostRefused, HostUnavailable, host_link
from tests.host.fake_control import FakeControl, fake_control


@pytest.fixture
def control() -> Iterator[FakeControl]:
    with fake_control() as control:
        control.answers = {
            "/echo": (200, {"echo": "taken"}),
            "/refused": (403, {"error": "the secret is wrong", "reason": "bad_secret"}),
            "/broken": (500, None),
        }
        yield control


def test_a_call_carries_the_secret_and_returns_the_json(control: FakeControl) -> None:
    link = HostLink(control_url=control.url, secret="s" * 32, market_id=1)
    assert link.call("POST", "/echo", {"a": 1}) == {"echo": "taken"}
    assert control.calls == [("POST", "/echo", {"a": 1}, "s" * 32)]


def test_a_refusal_comes_back_with_its_reason(control: FakeControl) -> None:
    link = HostLink(control_url=control.url, secret="wrong" * 8, market_id=1)
    with pytest.raises(HostRefused) as refused:
        link.call("POST", "/refused", {})
    assert (refused.value.status, refused.value.reason) == (403, "bad_secret")
    assert refused.value.message == "the secret is wrong"


def test_an_answer_without_json_reason_still_names_the_status(control: FakeControl) -> None:
    link = HostLink(control_url=control.url, secret="s" * 32, market_id=1)
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
