"""A stand-in market process for the orchestrator's tests: says ready, then heartbeats.

    python fake_market.py serve              ready, then a heartbeat every FABRIC_HOST_HEARTBEAT_MS
    python fake_market.py crash-while FILE   exits 3 at once while FILE exists, else serves
    python fake_market.py mute-once FILE     if FILE exists: deletes it, says ready, never beats

It reaches the orchestrator as a real market process does, through the variables the
orchestrator sets, and stops when the process that started it is gone.
"""

import json
import os
import sys
import time
import urllib.request

PARENT = os.getppid()


def post(what: str, body: dict) -> None:
    url = os.environ["FABRIC_HOST_CONTROL_URL"]
    market = os.environ["FABRIC_HOST_MARKET_ID"]
    request = urllib.request.Request(
        f"{url}/markets/{market}/{what}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"X-Fabric-Host-Secret": os.environ["FABRIC_HOST_SECRET"]},
    )
    try:
        urllib.request.urlopen(request, timeout=10).read()
    except OSError as error:  # the orchestrator may be stopping; the next beat tries again
        print(f"fake market: {what} failed: {error}", file=sys.stderr)


def wait_while_parent_lives(seconds: float) -> None:
    if os.getppid() != PARENT:
        sys.exit(0)
    time.sleep(seconds)


def main(mode: str, flag: str = "") -> None:
    if mode == "crash-while" and os.path.exists(flag):
        sys.exit(3)
    mute = mode == "mute-once" and os.path.exists(flag)
    if mute:
        os.unlink(flag)
    interval = int(os.environ.get("FABRIC_HOST_HEARTBEAT_MS", "5000")) / 1000
    post("ready", {"pid": os.getpid()})
    while True:
        wait_while_parent_lives(interval)
        if not mute:
            post("heartbeat", {"pid": os.getpid(), "stats": {"visitors": 0, "fake": True}})


if __name__ == "__main__":
    main(*sys.argv[1:])
