"""Case-insensitive paths on ingress (API contract): ``/DIP-Channel/if-005`` is ``/dip-channel/IF-005``.

Only the participant API's fixed path words are lower-cased and interface IDs upper-cased;
participant IDs and the operator's /admin paths are left exactly as sent.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_ROOTS = {"dip-channel", "statusmessage", "validate"}
_WORDS = {"dip-channel", "pubconfig", "replay", "requeue", "statusmessage", "config", "validate"}
_INTERFACE = re.compile(r"^(if|rep)-\d{3}[a-z]?$", re.IGNORECASE)


def normalise(path: str) -> str:
    parts = path.split("/")
    if len(parts) < 2 or parts[1].lower() not in _ROOTS:
        return path
    out = []
    for part in parts:
        lowered = part.lower()
        if lowered in _WORDS:
            out.append(lowered)
        elif _INTERFACE.fullmatch(part):
            out.append(part.upper())
        else:
            out.append(part)
    return "/".join(out)


SENT_PATH = "dip.sent_path"  # scope key: the request path exactly as sent (bytes), when rewritten


class CaseInsensitivePaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = normalise(scope["path"])
            if path != scope["path"]:
                # the path as sent stays available: a signature covers the URL the caller sent
                sent = scope.get("raw_path") or scope["path"].encode("utf-8")
                scope = dict(scope, path=path, raw_path=path.encode("utf-8"), **{SENT_PATH: sent})
        await self.app(scope, receive, send)
