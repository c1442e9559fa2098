"""An example MCP server for contributors: one tool, `decide`, over stdio.

    python -m zones.client.mcp_example

Built on the official `mcp` package (`MCPServer`, its stdio transport). Its `decide`
tool takes an NPC's observation (docs/npcs.md, "Observations") and answers a decision
with the SDK's utility policy; replace `decide`'s body with a call to your own model to
contribute its decisions (`python -m zones.client.contributor --policy mcp
--mcp-command "…"`). `--delay S` makes every decision take S seconds (to see the
contributor's timeout).
"""

import argparse
import time
from typing import Any

from mcp.server.mcpserver import MCPServer

from zones.client.contributor import utility_policy

DESCRIPTION = "What an NPC at the market does next, from its observation."


def decide(observation: dict[str, Any]) -> dict[str, Any]:
    """The decision for one observation, without its NPC and lease (the caller adds them)."""
    decision = utility_policy(observation)
    return {k: v for k, v in decision.items() if k not in ("npc", "lease")}


def server(delay: float = 0.0) -> MCPServer:
    """The example server: its one tool, `decide`, taking `delay` seconds a decision."""
    app: MCPServer = MCPServer("fabric-market-example", version="1")

    @app.tool(name="decide", description=DESCRIPTION, structured_output=True)
    def decide_tool(observation: dict[str, Any]) -> dict[str, Any]:
        if delay > 0:
            time.sleep(delay)
        return decide(observation)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An example MCP server deciding for NPCs.")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds a decision takes")
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay is a number of seconds, 0 or more")
    server(args.delay).run("stdio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
