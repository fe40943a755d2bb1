"""The participant authorisation matrix (issue 17, "Done when"): every role x every channel of
the shipped catalogue x every action a participant takes on a channel (send, configure its
webhook, replay, requeue, search), generated from the catalogue and checked exhaustively over
real HTTP on both stores. The operator side (every role x every operator route) is
tests/integration/test_operators.py.

What the catalogue says, and so what is expected:
- send: a role in the channel's ``senderRoles`` may (then an empty batch is a 400 schema
  failure); any other gets 403 MSG1010;
- configure a webhook, replay, requeue: a role that receives the channel (primary, secondary or
  always) may; any other gets 403;
- search: every participant may search, and finds only its own messages (200).
Status messages are authorised per message (only a recipient of the message may report on it),
not per channel: tests/integration/test_status_messages.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from dip.catalogue import Channel, default_catalogue, parse_definition
from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip

HOOK = "http://127.0.0.1:9/hook"


def _channels() -> list[Channel]:
    return [parse_definition(i, d) for i, d in default_catalogue(with_demo_schemas=False)]


def _roles(channels: list[Channel]) -> list[str]:
    roles: set[str] = set()
    for c in channels:
        roles |= c.sender_roles | c.receiving_roles()
    return sorted(roles)


def expected(role: str, channel: Channel, action: str) -> bool:
    """Whether a participant holding only ``role`` may take ``action`` on ``channel``."""
    if action == "send":
        return role in channel.sender_roles
    if action in ("pubconfig", "replay", "requeue"):
        return role in channel.receiving_roles()
    return action == "search"


def _request(client: DipClient, me: str, channel: str, action: str) -> tuple[int, Any]:
    path, body = {
        "send": (f"/dip-channel/{channel}", b"[]"),
        "pubconfig": (f"/dip-channel/{channel}/pubconfig/{me}", orjson.dumps({"callbackURL": HOOK})),
        "replay": (f"/dip-channel/{channel}/replay/{me}", b"{}"),
        "requeue": (f"/dip-channel/{channel}/requeue/{me}", b"{}"),
        "search": (f"/messages?channel={channel}", b""),
    }[action]
    answer = client.request("GET" if action == "search" else "POST", path, body)
    return answer.status_code, answer.content


def test_every_role_x_channel_x_action_is_authorised_as_the_catalogue_says(
        dip_factory: Callable[..., RunningDip]) -> None:
    channels = _channels()
    roles = _roles(channels)
    assert len(channels) >= 50 and len(roles) >= 15  # the whole shipped catalogue
    dip = dip_factory(archive_rate_limit=0)
    wrong: list[str] = []
    checked = 0
    with AdminClient(dip.url, dip.admin_key) as admin:
        for n, role in enumerate(roles):
            me = f"19{n:08d}"
            identity = admin.onboard(me, [role])
            with DipClient(dip.url, identity) as client:
                for channel in channels:
                    for action in ("send", "pubconfig", "replay", "requeue", "search"):
                        status, body = _request(client, me, channel.interface_id, action)
                        allowed = expected(role, channel, action)
                        checked += 1
                        if (status == 403) == allowed:
                            wrong.append(f"{role} {action} {channel.interface_id}: {status} {body[:160]!r}, "
                                         f"expected {'allowed' if allowed else '403'}")
                        if allowed and action == "send" and status != 400:
                            wrong.append(f"{role} send {channel.interface_id}: {status}, expected 400 (empty batch)")
    assert checked == len(roles) * len(channels) * 5
    assert not wrong, f"{len(wrong)} of {checked} wrong:\n" + "\n".join(wrong[:40])
