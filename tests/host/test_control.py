"""The control API answers loopback callers holding the secret, and refuses the rest in JSON."""

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from host.control import (
    BODY_LIMIT_BYTES,
    ControlApp,
    ControlRefusal,
    address_is_loopback,
    control_server,
    route_pattern,
)
from tests.live import free_port

SECRET = "s" * 40


def control_app() -> ControlApp:
    app = ControlApp(secret=SECRET)

    async def echo(request):
        return {"path": request.path, "params": request.params, "body": request.body}

    async def refuse(request):
        raise ControlRefusal(409, "market 7 is quarantined", "quarantined", retry_after_ms=1500)

    app.route_add("GET", "/health", echo)
    app.route_add("POST", "/markets/{market_id}/start", echo)
    app.route_add("POST", "/markets/{market_id}/stop", refuse)
    return app


async def call(
    app,
    method="GET",
    path="/health",
    *,
    client=("127.0.0.1", 50000),
    secret: str | None = SECRET,
    body=b"",
    chunks=None,
):
    """Status and JSON answer of `app` to one request, by calling the ASGI app."""
    headers = [] if secret is None else [(b"x-fabric-host-secret", secret.encode())]
    parts = chunks if chunks is not None else [body]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers, "client": client}
    await app(scope, receive, send)
    start, answer = sent
    assert (b"content-type", b"application/json") in start["headers"]
    return start["status"], json.loads(answer["body"])


@pytest.mark.parametrize("client", [("10.0.0.5", 4000), ("192.168.1.2", 1), None])
async def test_a_caller_off_loopback_is_refused_even_with_the_secret(client):
    status, answer = await call(control_app(), client=client)
    assert status == 403 and answer["reason"] == "not_loopback" and answer["error"]


@pytest.mark.parametrize("client", [("127.0.0.1", 1), ("127.8.9.10", 2), ("::1", 3)])
async def test_loopback_callers_with_the_secret_are_answered(client):
    status, answer = await call(control_app(), client=client)
    assert (status, answer["path"]) == (200, "/health")


@pytest.mark.parametrize("secret", [None, "", "s" * 39, "t" * 40, SECRET + "s"])
async def test_a_missing_or_wrong_secret_is_refused(secret):
    status, answer = await call(control_app(), secret=secret)
    assert status == 403 and answer["reason"] == "bad_secret"
    assert "X-Fabric-Host-Secret" in answer["error"]


async def test_path_parts_and_the_json_body_reach_the_handler():
    status, answer = await call(control_app(), "POST", "/markets/7/start", body=b'{"pid": 12}')
    assert status == 200
    assert answer == {"path": "/markets/7/start", "params": {"market_id": "7"}, "body": {"pid": 12}}


async def test_a_handlers_refusal_is_its_status_reason_and_details():
    status, answer = await call(control_app(), "POST", "/markets/7/stop")
    assert status == 409
    assert answer == {
        "error": "market 7 is quarantined",
        "reason": "quarantined",
        "retry_after_ms": 1500,
    }


async def test_an_unknown_path_is_404_and_a_wrong_method_405():
    status, answer = await call(control_app(), "GET", "/nowhere")
    assert (status, answer["reason"]) == (404, "not_found")
    status, answer = await call(control_app(), "DELETE", "/markets/7/start")
    assert (status, answer["reason"]) == (405, "method_not_allowed")
    assert "POST" in answer["error"]


async def test_a_path_is_refused_before_it_is_looked_up_without_the_secret():
    # No caller learns which paths exist without the secret.
    status, answer = await call(control_app(), "GET", "/nowhere", secret=None)
    assert (status, answer["reason"]) == (403, "bad_secret")


async def test_a_body_over_the_limit_is_413_even_when_it_arrives_in_pieces():
    piece = b" " * (BODY_LIMIT_BYTES // 4)
    status, answer = await call(control_app(), "POST", "/markets/1/start", chunks=[piece] * 5)
    assert (status, answer["reason"]) == (413, "body_too_large")
    # the control: exactly the limit passes (blank is no body at all)
    status, answer = await call(control_app(), "POST", "/markets/1/start", chunks=[piece] * 4)
    assert (status, answer["body"]) == (200, None)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b'{"a": 1'])
async def test_a_body_that_is_not_json_is_400_bad_json(body):
    status, answer = await call(control_app(), "POST", "/markets/1/start", body=body)
    assert (status, answer["reason"]) == (400, "bad_json")


def test_a_route_added_twice_is_refused():
    app = control_app()
    with pytest.raises(ValueError, match="GET /health has a handler already"):
        app.route_add("get", "/health", lambda request: None)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="at least 32"):
        ControlApp(secret="x" * 31)


def test_path_templates_match_one_segment_per_part():
    pattern = route_pattern("/markets/{market_id}/start")
    assert pattern.match("/markets/12/start").groupdict() == {"market_id": "12"}
    assert pattern.match("/markets/1/2/start") is None
    assert pattern.match("/markets/12/start/") is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("localhost", False),  # a name is not an address
    ],
)
def test_loopback_means_127_slash_8_and_colon_colon_1(host, loopback):
    assert address_is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::"])
def test_the_server_refuses_to_listen_off_loopback(host):
    with pytest.raises(ValueError, match=f"loopback only .* not {host}"):
        control_server(control_app(), host=host, port=9100)


def http(url, *, secret=SECRET, method="GET"):
    request = urllib.request.Request(url, method=method)
    if secret is not None:
        request.add_header("X-Fabric-Host-Secret", secret)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_a_live_server_answers_urllib_and_curl():
    port = free_port()
    server = control_server(control_app(), host="127.0.0.1", port=port)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        url = f"http://127.0.0.1:{port}"
        status, answer = await asyncio.to_thread(http, url + "/health")
        assert (status, answer["path"]) == (200, "/health")
        status, answer = await asyncio.to_thread(http, url + "/health", secret="wrong")
        assert (status, answer["reason"]) == (403, "bad_secret")
        status, answer = await asyncio.to_thread(http, url + "/markets/3/stop", method="POST")
        assert (status, answer["retry_after_ms"]) == (409, 1500)
        if shutil.which("curl"):
            curled = await asyncio.to_thread(
                subprocess.run,
                ["curl", "-sS", "-H", f"X-Fabric-Host-Secret: {SECRET}", url + "/health"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert curled.returncode == 0, curled.stderr
            assert json.loads(curled.stdout)["path"] == "/health"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
