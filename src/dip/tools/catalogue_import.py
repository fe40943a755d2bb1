"""``dip catalogue import-openapi``: put the official per-interface schemas into a running DIP.

Reads the OpenAPI source folder (dip.tools.openapi_import), then for each interface fetches the
channel from the DIP's admin API, replaces its event codes, schema versions and
``payloadSchemas`` with the official ones, and PUTs it back: a live change, no restart.
Routing, correlation and obfuscation rules are kept as they are.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from dip.catalogue import default_catalogue
from dip.tools.openapi_import import load_reference


def import_into_dip(directory: Path, url: str, admin_key: str, only: list[str] | None = None) -> list[str]:
    interfaces = load_reference(directory)
    defaults = {iid: orjson.loads(body) for iid, body in default_catalogue()}
    wanted = {i.upper() for i in only} if only else None
    lines = []
    headers = {"X-API-Key": admin_key, "Content-Type": "application/json"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120) as http:
        for interface_id, imported in interfaces.items():
            if wanted is not None and interface_id not in wanted:
                continue
            current = http.get(f"/admin/channels/{interface_id}")
            if current.status_code == 200:
                definition = current.json()
            elif current.status_code == 404 and interface_id in defaults:
                definition = defaults[interface_id]
            elif current.status_code == 404:
                lines.append(f"{interface_id}: skipped (not in this DIP's catalogue; define its routing first)")
                continue
            else:
                current.raise_for_status()
                continue
            definition["eventCodes"] = list(imported.event_codes)
            definition["schemaVersions"] = list(imported.schema_versions)
            definition["payloadSchemas"] = imported.payload_schemas
            if imported.title and not definition.get("title"):
                definition["title"] = imported.title
            response = http.put(f"/admin/channels/{interface_id}", content=orjson.dumps(definition))
            if response.status_code not in (200, 201):
                lines.append(f"{interface_id}: refused ({response.status_code}) {response.text[:300]}")
                continue
            lines.append(
                f"{interface_id}: {len(imported.event_codes)} event code(s), schema version(s) "
                f"{', '.join(imported.schema_versions)}"
            )
    return lines
