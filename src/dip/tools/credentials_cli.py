"""``dip certificate ...``, ``dip api-key ...`` and ``dip signing-key ...``: participants' credentials
and the DIP's own key, through a running DIP's operator API (docs/security.md "Certificate
service", "The DIP's signing key", "Lost or compromised credentials"). Each prints the API's
answer as JSON; exit 0 on success, 1 with the API's reason otherwise."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson


def add_parsers(sub: Any) -> None:
    cert = sub.add_parser("certificate", help="a participant's certificates: issue, list, revoke, rotate")
    csub = cert.add_subparsers(dest="credential_command", required=True)
    keys = sub.add_parser("api-key", help="a participant's API keys: new, list, revoke")
    ksub = keys.add_subparsers(dest="credential_command", required=True)
    commands = [
        (csub, "issue", "the DIP (as CA, outside production) issues a certificate from the participant's CSR"),
        (csub, "list", "every certificate the participant was given"),
        (csub, "revoke", "revoke one certificate for good"),
        (csub, "rotate", "replace a certificate; the old one works --overlap-days more"),
        (ksub, "new", "a new API key (shown once)"),
        (ksub, "list", "every key the participant was given (never the key itself)"),
        (ksub, "revoke", "revoke one key for good"),
    ]
    signing = sub.add_parser("signing-key", help="the DIP's own signing key: show it, rotate it (kept in the database)")
    ssub = signing.add_subparsers(dest="credential_command", required=True)
    for name, text in (("show", "where the key comes from and the certificates GET /dip/certificate serves"),
                       ("rotate", "a new key signs from now on; the old certificate stays published --overlap-days")):
        p = ssub.add_parser(name, help=text)
        p.add_argument("--url", default="http://127.0.0.1:8080")
        p.add_argument("--admin-key")
        p.add_argument("--data-dir", type=Path, default=Path(".dip"))
        if name == "rotate":
            p.add_argument("--overlap-days", type=float, default=7)
    for parent, name, text in commands:
        p = parent.add_parser(name, help=text)
        p.add_argument("participant", help="the participant's DIP ID")
        p.add_argument("--url", default="http://127.0.0.1:8080")
        p.add_argument("--admin-key")
        p.add_argument("--data-dir", type=Path, default=Path(".dip"))
        if name in ("revoke", "rotate"):
            p.add_argument("which", help="the certificate's SHA-256 fingerprint, or the key's keyId")
        if name in ("issue", "rotate"):
            p.add_argument("--csr", type=Path, help="the participant's CSR (PEM)")
            p.add_argument("--days", type=int, default=365)
        if name == "rotate":
            p.add_argument("--certificate", type=Path, help="instead of --csr: a certificate from the industry CA")
            p.add_argument("--overlap-days", type=float, default=7)


def command(args: argparse.Namespace, admin_key: str) -> int:
    if args.command == "signing-key":
        rotate = args.credential_command == "rotate"
        return _call(args, admin_key, "POST" if rotate else "GET",
                     "/admin/signing-key/rotate" if rotate else "/admin/signing-key",
                     {"overlapDays": args.overlap_days} if rotate else None)
    kind = "certificates" if args.command == "certificate" else "api-keys"
    base = f"/admin/participants/{args.participant}/{kind}"
    body: dict[str, Any] | None = None
    method, path = {"issue": ("POST", f"{base}/issue"), "list": ("GET", base), "new": ("POST", base),
                    "revoke": ("DELETE", f"{base}/{getattr(args, 'which', '')}"),
                    "rotate": ("POST", f"{base}/{getattr(args, 'which', '')}/rotate")}[args.credential_command]
    if args.credential_command in ("issue", "rotate"):
        body = {"days": args.days}
        if args.credential_command == "rotate":
            body["overlapDays"] = args.overlap_days
            if args.certificate is not None:
                body["certificatePem"] = args.certificate.read_text()
        if args.csr is not None:
            body["csrPem"] = args.csr.read_text()
    return _call(args, admin_key, method, path, body)


def _call(args: argparse.Namespace, admin_key: str, method: str, path: str, body: dict[str, Any] | None) -> int:
    try:
        bundle = os.environ.get("SSL_CERT_FILE")  # a private CA's bundle, for a DIP on one
        answer = httpx.request(method, args.url.rstrip("/") + path, json=body, headers={"X-API-Key": admin_key},
                               timeout=60, verify=ssl.create_default_context(cafile=bundle) if bundle else True)
    except httpx.HTTPError as exc:
        print(f"dip: {exc}", file=sys.stderr)
        return 1
    if answer.status_code >= 300:
        print(f"dip: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    print(orjson.dumps(answer.json(), option=orjson.OPT_INDENT_2).decode() if answer.content else "done")
    return 0
