"""Behind a TLS-terminating gateway: the client certificate it verified, forwarded in a header.

With ``--client-cert-header NAME`` the gateway (nginx, HAProxy, a cloud load balancer) ends the
mutual TLS and forwards the verified client certificate, URL-encoded PEM, in that header. The DIP
believes it only from ``--trusted-proxies``: from any other address a request carrying the
header is refused (403), so nobody reaching the DIP past the gateway can name a certificate. The
certificate then counts exactly as one from the DIP's own TLS (``dip.ingress.auth``): registered
to the API key's participant or its connection provider.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from starlette.types import ASGIApp, Receive, Scope, Send

from dip.codes import Code
from dip.config import Settings
from dip.exceptions import SignatureError
from dip.ingress.errors import Refusal, standard_error
from dip.ingress.server import CLIENT_CERT
from dip.signing import fingerprint, load_certificate_pem


class ForwardedClientCert:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.dip_id = settings.dip_id
        self.header = settings.client_cert_header.lower().encode("latin-1") if settings.client_cert_header else None
        self.proxies = [ipaddress.ip_network(n) for n in settings.trusted_proxies]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.header is None:
            await self.app(scope, receive, send)
            return
        forwarded = next((v for k, v in scope["headers"] if k == self.header), None)
        if forwarded is not None:
            client = scope.get("client")
            trusted = client is not None and any(ipaddress.ip_address(client[0]) in n for n in self.proxies)
            problem = None if trusted else "a forwarded client certificate is believed only from the gateway"
            found = None
            if trusted:
                try:
                    found = fingerprint(load_certificate_pem(urllib.parse.unquote(forwarded.decode("latin-1"))))
                except (SignatureError, ValueError):
                    problem = "the forwarded client certificate is not a PEM certificate"
            if problem is not None:
                await standard_error(self.dip_id, Refusal(403, Code.PROCESSING_FAILED, f"403 Forbidden: {problem}"))(
                    scope, receive, send)
                return
            scope = dict(scope, **{CLIENT_CERT: found})
        await self.app(scope, receive, send)
