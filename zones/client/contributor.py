"""Contribute NPC decisions to a market: `python -m zones.client.contributor`.

    python -m zones.client.contributor --url http://127.0.0.1:8000 --market 1 \\
        --key my-contributor-key-0001 [--capacity 32] [--policy utility] [--seconds 60]

Connects to `/ws/markets/<market>/contribute/?key=…`, says hello with its capacity,
answers every decision request with its policy, sends a heartbeat every 10 s (queue
length and mean decision time), and prints its progress every 5 s: requests, answers,
refusals by reason, what the zones made of its answers, decision time.

Policies: `utility` (built in): the item whose advertisement best meets the NPC's
needs (deficit squared × what one use restores, nearer is better), else a walk to a
point a few metres away, drawn from the NPC's id and lease (docs/npcs.md).
`openai`: any OpenAI-compatible chat completions endpoint (a llama.cpp server, Ollama,
a hosted one), given the observation and asked for a decision as JSON matching a
schema (`--endpoint`, `--model`; a key from OPENAI_API_KEY if set); an answer that
does not come within `--timeout` or does not parse is replaced by the utility policy's
and counted as a fallback. Decisions run in a worker thread, so a slow model never
holds up the heartbeat.
`mcp`: starts a local MCP server over stdio with the official `mcp` package's client
(`--mcp-command`, by default the example server `python -m zones.client.mcp_example`)
and calls its `decide` tool with the observation, within `--timeout`; a late or
unusable answer is replaced by the utility policy's, as above.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import shlex
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from zones.core.dispatch import DESPERATE

HEARTBEAT_S = 10.0
MAX_MESSAGE_BYTES = 4096
"""The market closes a socket (1009) on a longer message: decisions go in several."""
PROGRESS_S = 5.0
THRESHOLD = 2.0
MAX_TRAVEL_M = 21.0
MCP_START_S = 20.0
"""How long an MCP server may take to start and answer `initialize`."""
MCP_GRACE_S = 0.5
"""Beyond its timeout, how long a call waits for the session's own timeout to end it."""

Policy = Callable[[dict[str, Any]], dict[str, Any]]


def utility_policy(obs: dict[str, Any]) -> dict[str, Any]:
    """A decision for one observation: the best item in sight, else a short walk."""
    needs = obs["needs"]
    best, best_score = None, -math.inf
    for item in obs.get("items", ()):
        if item.get("free", 0) <= 0:
            continue
        score = 0.0
        for need, value in needs.items():
            deficit = 100.0 - value
            gain = min(float(item["restores"].get(need, 0.0)), deficit)
            score += gain * (deficit / 100.0) ** 2
        score = score / 10.0 / (1.0 + item["distance"] / 10.0)
        if score > best_score:
            best, best_score = item, score
    decision: dict[str, Any] = {"npc": obs["npc"], "lease": obs["lease"]}
    if best is not None and best_score >= THRESHOLD:
        return {**decision, "action": "use_item", "item": best["id"]}
    relief = _relief(obs)
    if relief is not None:  # little to gain, but the market expects a desperate NPC to take it
        return {**decision, "action": "use_item", "item": relief["id"]}
    seed = (obs["npc"] * 2654435761 + obs["lease"] * 40503) % (1 << 32)
    angle = (seed & 0xFFFF) / 65536 * 2 * math.pi
    reach = 4.0 + 8.0 * ((seed >> 16) & 0xFFFF) / 65536
    x, _, z = obs["pos"]
    to = [min(max(x + math.cos(angle) * reach, 1.0), 127.0)]
    to.append(min(max(z + math.sin(angle) * reach, 1.0), 127.0))
    return {**decision, "action": "move_to", "to": to}


def _relief(obs: dict[str, Any]) -> dict[str, Any] | None:
    """The nearest free item in sight restoring a need at or below DESPERATE, if any: the
    market's spot checks call ignoring one unreasonable (zones/core/dispatch.py)."""
    desperate = [need for need, value in obs["needs"].items() if float(value) <= DESPERATE]
    helping = [
        item
        for item in obs.get("items", ())
        if item.get("free", 0) > 0
        and any(float(item["restores"].get(need, 0.0)) > 0 for need in desperate)
    ]
    return min(helping, key=lambda item: float(item["distance"]), default=None)


DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["move_to", "use_item", "talk_to", "wait"]},
        "to": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "item": {"type": "integer"},
        "target": {"type": "integer"},
        "seconds": {"type": "number"},
    },
    "required": ["action"],
}
"""What the model is asked to return (the npc and lease are added here, never trusted)."""

SYSTEM_PROMPT = (
    "You decide what one character at a market does next. Its needs (hunger, hygiene, fun,"
    " energy) run from 0 (desperate) to 100 (satisfied). Items restore needs; 'free' is how"
    ' many may still use one. Answer with one JSON object: {"action": "use_item",'
    ' "item": id} or {"action": "move_to", "to": [x, z]} (within 21 m) or'
    ' {"action": "talk_to", "target": id} (someone within 10 m) or'
    ' {"action": "wait", "seconds": s} (at most 10).'
)
ACTION_NAMES = ("move_to", "use_item", "talk_to", "wait")


class OpenAIPolicy:
    """Decisions from an OpenAI-compatible chat endpoint, the utility policy as fallback."""

    def __init__(self, endpoint: str, model: str, timeout: float = 4.0) -> None:
        self.url = endpoint.rstrip("/") + "/v1/chat/completions"
        self.model, self.timeout = model, timeout
        self.key = os.environ.get("OPENAI_API_KEY", "")
        self.fallbacks = 0
        self.asked = 0

    def __call__(self, obs: dict[str, Any]) -> dict[str, Any]:
        self.asked += 1
        shown = ("needs", "pos", "state", "items", "npcs", "visitors")
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps({k: obs[k] for k in shown if k in obs})},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "decision", "schema": DECISION_SCHEMA},
            },
            "temperature": 0.2,
        }
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(
            self.url, json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
            decision = json.loads(reply["choices"][0]["message"]["content"])
            if not isinstance(decision, dict) or decision.get("action") not in ACTION_NAMES:
                raise ValueError("not a decision")
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            self.fallbacks += 1
            return utility_policy(obs)
        fields = ("action", "to", "item", "target", "seconds")
        return {"npc": obs["npc"], "lease": obs["lease"]} | {
            k: decision[k] for k in fields if k in decision
        }


class MCPPolicy:
    """Decisions from a local MCP server's `decide` tool, through the official `mcp`
    package's stdio client; the utility policy when it is late or unusable.

    The client session lives on an event loop of its own in a background thread, so the
    policy is called like the others, from the contributor's worker thread. A call that
    has no answer within `timeout` is given up: the session drops its answer if it comes
    later, so it is never taken for the next call."""

    def __init__(self, command: list[str], timeout: float = 4.0, tool: str = "decide") -> None:
        if not command:
            raise ValueError("the mcp policy needs a command that starts an MCP server")
        self.command, self.timeout, self.tool = command, timeout, tool
        self.fallbacks = 0
        self.asked = 0
        self.failure: BaseException | None = None  # why the session ended, if it did
        self._session: Any = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._serving: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(max(timeout, MCP_START_S)):
            self.close()
            raise TimeoutError(
                f"the MCP server {command[0]!r} did not start within {MCP_START_S:g} s"
            )
        if self._session is None:
            self.close()
            raise OSError(f"the MCP server {command[0]!r} could not be used: {self.failure!r}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._serving = self._loop.create_task(self._serve())
            self._loop.run_until_complete(self._serving)
        except BaseException as exc:  # noqa: BLE001  (said by `failure`, and by fallbacks)
            self.failure = exc
        finally:
            self._session = None
            self._ready.set()
            self._loop.close()

    async def _serve(self) -> None:
        from mcp import ClientSession, StdioServerParameters, stdio_client
        from mcp.types import Implementation

        params = StdioServerParameters(command=self.command[0], args=self.command[1:])
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                info = Implementation(name="fabric-market-contributor", version="1")
                async with ClientSession(read, write, client_info=info) as session:
                    await session.initialize()
                    self._session = session
                    self._ready.set()
                    await asyncio.Event().wait()  # until `close` cancels this task

    async def _call(self, obs: dict[str, Any]) -> Any:
        session = self._session
        if session is None:
            raise OSError("the MCP session has ended")
        return await session.call_tool(
            self.tool, {"observation": obs}, read_timeout_seconds=self.timeout
        )

    def __call__(self, obs: dict[str, Any]) -> dict[str, Any]:
        self.asked += 1
        try:
            if self._session is None or self._loop.is_closed():
                raise OSError("the MCP session has ended")
            future = asyncio.run_coroutine_threadsafe(self._call(obs), self._loop)
            try:
                result = future.result(self.timeout + MCP_GRACE_S)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise TimeoutError(f"no answer within {self.timeout:g} s") from None
            if result.is_error:
                raise ValueError("the tool answered an error")
            decision = result.structured_content
            if isinstance(decision, dict) and set(decision) == {"result"}:
                decision = decision["result"]  # a structured result wrapped by the server
            if not isinstance(decision, dict):
                decision = json.loads(result.content[0].text)
            if not isinstance(decision, dict) or decision.get("action") not in ACTION_NAMES:
                raise ValueError("not a decision")
        except Exception:  # a late, failed or unusable answer: the utility decision instead
            self.fallbacks += 1
            return utility_policy(obs)
        fields = ("action", "to", "item", "target", "seconds")
        return {"npc": obs["npc"], "lease": obs["lease"]} | {
            k: decision[k] for k in fields if k in decision
        }

    def close(self) -> None:
        """End the session and the server (stdio_client stops the process it started)."""
        serving = self._serving
        if serving is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(serving.cancel)
        self._thread.join(timeout=MCP_START_S)


POLICIES: dict[str, Policy] = {"utility": utility_policy}


def decision_messages(decisions: list[dict[str, Any]]) -> list[str]:
    """`decisions` as "decisions" messages of at most MAX_MESSAGE_BYTES each."""
    messages: list[str] = []
    batch: list[str] = []
    size = 0
    head, tail = '{"type":"decisions","decisions":[', "]}"
    for decision in decisions:
        text = json.dumps(decision, separators=(",", ":"))
        if batch and len(head) + size + len(text) + len(batch) + len(tail) > MAX_MESSAGE_BYTES:
            messages.append(head + ",".join(batch) + tail)
            batch, size = [], 0
        batch.append(text)
        size += len(text)
    if batch:
        messages.append(head + ",".join(batch) + tail)
    return messages


def socket_url(url: str, market: int, key: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = f"/ws/markets/{market}/contribute/"
    return urlunsplit((scheme, parts.netloc, path, f"key={quote(key)}", ""))


@dataclass
class ContributorStats:
    requests: int = 0
    answered: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    decision_s: float = 0.0

    def line(self) -> str:
        mean_ms = 1000 * self.decision_s / self.answered if self.answered else 0.0
        return (
            f"requests {self.requests}  answered {self.answered}  "
            f"results {dict(self.results)}  refused {dict(self.refused)}  "
            f"decision {mean_ms:.2f} ms"
        )


class Contributor:
    """One contributor connection running one policy."""

    def __init__(self, url: str, market: int, key: str, capacity: int, policy: Policy) -> None:
        self.url, self.market, self.key = url, market, key
        self.capacity, self.policy = capacity, policy
        self.stats = ContributorStats()
        self.name = ""
        self.closed = ""  # the close code, when the market closed the socket
        self.ws: ClientConnection | None = None  # the open socket, while `run` runs
        self.server_stats: dict[str, Any] = {}  # the market's answer to the last `ask_stats`

    async def run(self, seconds: float | None = None, progress: bool = False) -> ContributorStats:
        async with connect(socket_url(self.url, self.market, self.key)) as ws:
            await ws.send(json.dumps({"type": "hello", "capacity": self.capacity, "results": True}))
            welcome = json.loads(await ws.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"refused: {welcome}")
            self.name = welcome["contributor"]
            self.ws = ws
            beat = asyncio.create_task(self._heartbeat(ws))
            shown = time.monotonic()
            end = None if seconds is None else time.monotonic() + seconds
            try:
                while end is None or time.monotonic() < end:
                    timeout = 1.0 if end is None else max(0.01, min(1.0, end - time.monotonic()))
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout)
                    except TimeoutError:
                        raw = None
                    if raw is not None:
                        await self._handle(ws, json.loads(raw))
                    if progress and time.monotonic() - shown >= PROGRESS_S:
                        shown = time.monotonic()
                        print(f"[{self.name}] {self.stats.line()}", flush=True)
            except ConnectionClosed as closed:
                self.closed = f"{closed.rcvd.code if closed.rcvd else 1006}"
                if progress:
                    print(f"[{self.name}] the market closed the socket: {self.closed}", flush=True)
            finally:
                self.ws = None
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
        return self.stats

    async def ask_stats(self) -> None:
        """Ask the market for its dispatcher's figures; `server_stats` holds the answer
        when it comes (docs/protocol.md §6, `stats`)."""
        if self.ws is not None:
            await self.ws.send('{"type":"stats"}')

    async def _handle(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "requests":
            requests = message["requests"]
            self.stats.requests += len(requests)
            started = time.perf_counter()
            decisions = await asyncio.to_thread(lambda: [self.policy(obs) for obs in requests])
            self.stats.decision_s += time.perf_counter() - started
            self.stats.answered += len(decisions)
            for text in decision_messages(decisions):
                await ws.send(text)
        elif kind == "refused":
            self.stats.refused[message.get("reason", "?")] += 1
        elif kind == "result":
            self.stats.results[message.get("result", "?")] += 1
        elif kind == "stats":
            self.server_stats = message

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            mean_ms = (
                1000 * self.stats.decision_s / self.stats.answered if self.stats.answered else 0.0
            )
            await ws.send(json.dumps({"type": "heartbeat", "queue": 0, "decision_ms": mean_ms}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Contribute NPC decisions to a market.")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--market", type=int, required=True)
    parser.add_argument("--key", required=True, help="at least 16 characters")
    parser.add_argument("--capacity", type=int, default=32)
    parser.add_argument("--policy", choices=["mcp", "openai", "utility"], default="utility")
    parser.add_argument(
        "--mcp-command",
        default=f"{sys.executable} -m zones.client.mcp_example",
        help="mcp policy: the MCP server to start",
    )
    parser.add_argument("--endpoint", default="http://127.0.0.1:8080", help="openai policy")
    parser.add_argument("--model", default="local", help="openai policy: the model name")
    parser.add_argument("--timeout", type=float, default=4.0, help="mcp, openai: seconds")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    policy: Policy
    if args.policy == "openai":
        policy = OpenAIPolicy(args.endpoint, args.model, args.timeout)
    elif args.policy == "mcp":
        policy = MCPPolicy(shlex.split(args.mcp_command), args.timeout)
    else:
        policy = POLICIES[args.policy]
    contributor = Contributor(args.url, args.market, args.key, args.capacity, policy)
    try:
        stats = asyncio.run(contributor.run(args.seconds, progress=True))
    except KeyboardInterrupt:
        return 0
    except (OSError, RuntimeError) as exc:
        print(f"contributor: {exc}", file=sys.stderr)
        return 1
    finally:
        if isinstance(policy, MCPPolicy):
            policy.close()
    print(f"[{contributor.name}] done: {stats.line()}")
    fallbacks, asked = getattr(policy, "fallbacks", None), getattr(policy, "asked", 0)
    if fallbacks is not None:
        print(f"[{contributor.name}] {args.policy}: {asked} asked, {fallbacks} fallbacks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
