"""A market process asking its host's orchestrator something, and the one error it gets.

Under a host (`manage.py runhost`) every market process has a link to its orchestrator
(host/client.py); a market started on its own has none, and anything that needs the host
(a portal, a giveaway) answers that plainly instead.
"""

from typing import Any

from host.client import CALL_TIMEOUT_S, HostRefused, HostUnavailable, host_link


class HostCallRefused(Exception):
    """What the host could not do: `status` and `code` for the answer, `detail` for people."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def host_call(
    market_id: int, path: str, body: dict[str, Any], timeout: float = CALL_TIMEOUT_S
) -> Any:
    """The orchestrator's JSON answer to POST `path`; HostCallRefused when it cannot be had.

    `timeout` must outlast any waiting the call asks of the orchestrator.
    """
    link = host_link()
    if link is None or link.market_id != market_id:
        raise HostCallRefused(
            409,
            "no_host",
            f"Market {market_id} runs on its own here, not under a host's orchestrator:"
            " its portals lead nowhere and it holds no giveaways.",
        )
    try:
        return link.call("POST", path, body, timeout=timeout)
    except HostRefused as refused:
        raise HostCallRefused(refused.status, refused.reason, refused.message) from None
    except HostUnavailable as error:
        raise HostCallRefused(503, "host_unavailable", str(error)) from None
