"""An example MCP server for contributors: one tool, `decide`, over stdio.

    python -m zones.client.mcp_example

Speaks the Model Context Protocol's stdio transport (JSON-RPC 2.0, one message a line):
`initialize`, `tools/list` and `tools/call`. Its `decide` tool takes an NPC's
observation (docs/npcs.md, "Observations") and answers a decision with the SDK's
utility policy; replace `decide` with a call to your own model to contribute its
decisions (`python -m zones.client.contributor --policy mcp --mcp-command "…"`).
`--delay S` makes every decision take S seconds (to see the contributor's timeout).
"""

import argparse
import json
import sys
import time
from typing import Any

from zones.client.contributor import utility_policy

TOOL = {
    "name": "decide",
    "description": "What an NPC at the market does next, from its observation.",
    "inputSchema": {
        "type": "object",
        "properties": {"observation": {"type": "object"}},
        "required": ["observation"],
    },
}


def decide(observation: dict[str, Any]) -> dict[str, Any]:
    decision = utility_policy(observation)
    return {k: v for k, v in decision.items() if k not in ("npc", "lease")}


def answer(message: dict[str, Any], delay: float) -> dict[str, Any] | None:
    method, ident = message.get("method"), message.get("id")
    if ident is None:
        return None  # a notification
    if method == "initialize":
        version = message.get("params", {}).get("protocolVersion", "2025-06-18")
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "fabric-market-example", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        params = message.get("params", {})
        if params.get("name") != "decide":
            return {
                "jsonrpc": "2.0",
                "id": ident,
                "error": {"code": -32602, "message": "no such tool"},
            }
        time.sleep(delay)
        decision = decide(params.get("arguments", {}).get("observation", {}))
        result = {
            "content": [{"type": "text", "text": json.dumps(decision)}],
            "structuredContent": decision,
            "isError": False,
        }
    else:
        return {
            "jsonrpc": "2.0",
            "id": ident,
            "error": {"code": -32601, "message": "no such method"},
        }
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An example MCP server deciding for NPCs.")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        reply = answer(message, args.delay)
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
