"""Request bodies within limits, and their media type."""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from dip.ingress.errors import JSON


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (BodyTooLarge) past ``limit`` bytes without reading it all.

    The SHA-256 the signature check needs is computed chunk by chunk while the body arrives and
    kept on ``request.state.body_sha256``, so a 200 MB batch is not hashed again afterwards.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    digest = hashlib.sha256()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        digest.update(chunk)
        chunks.append(chunk)
    request.state.body_sha256 = digest.digest()
    return b"".join(chunks)


def is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == JSON or (content_type.startswith("application/") and content_type.endswith("+json"))
