"""Read the official GB DIP API v2.1.0 OpenAPI source folder into self-contained JSON Schemas.

Why this module exists: Level 1 validation must apply exactly the checks the real DIP applies, and
those checks are published only as OpenAPI 3.0 YAML spread over a dozen files that point at each
other through ``https://raw.githubusercontent.com/elexon-data/dip-api-documentation/main/<file>#...``
URLs. A validator cannot use them as they are: the URLs would be fetched from the internet, and
OpenAPI 3.0 has keywords (``nullable``, ``example``) and ``$ref`` semantics (siblings ignored) that a
JSON Schema 2020-12 validator reads differently. ``dip catalogue import-openapi DIR`` therefore reads
the folder once, here, and stores one schema per (interface, event code) that needs nothing else:

* every ``$ref`` (cross-file URL or local ``#/components/schemas/...``) is resolved against the files
  of the folder (subfolders included, matched by file name) and rewritten to ``#/$defs/<name>``;
  only the definitions a payload actually reaches are copied into its ``$defs``;
* OpenAPI 3.0 is turned into 2020-12 without weakening anything: ``nullable: true`` adds ``"null"``
  to ``type`` (and to ``enum``) or wraps the schema in ``anyOf [..., {"type": "null"}]``; the
  annotation-only ``example``/``xml``/``discriminator``/``x-*`` keywords are dropped; siblings of a
  ``$ref`` are dropped as OpenAPI 3.0 ignores them; every constraint is kept as written;
* a ``oneOf`` payload (``IF-005-Payload = oneOf [IF-005-MeterInstall, ...]``) is split by the event
  codes each variant lists in ``S0.eventCode``. Where several variants list the same code (v2.1.0:
  IF-020-RelatedCreate also lists [RelatedAdd] and [RelatedRemove], with the same structure as the
  IF-020-RelatedAdd/-RelatedRemove variants) the schema for that code is ``anyOf`` those variants: a
  literal ``oneOf`` would reject every such message because it matches two identical variants.

jsonschema_rs ``bundle`` is not used: it keeps the original URL ``$ref`` values and embeds whole
documents, so the result is neither free of external references nor limited to what is reachable.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml  # type: ignore[import-untyped]

__all__ = [
    "API_FILE",
    "INTERFACES_FILE",
    "JSON_SCHEMA_DIALECT",
    "WILDCARD_EVENT_CODE",
    "ImportedInterface",
    "ReferenceImportError",
    "load_reference",
    "openapi_to_json_schema",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
API_FILE = "SubmitEvents-unresolved.yaml"
INTERFACES_FILE = "Interfaces-EventCodes-unresolved.yaml"
WILDCARD_EVENT_CODE = "*"

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PAYLOAD_NAME = re.compile(r"^((?:IF|REP)-\d{3}[A-Z]?)-Payload$")
# A channel line of the API description, e.g. " -  Channel-001    Notification of Change of Supplier **"
_TITLE_LINE = re.compile(r"^\s*-?\s*(Channel|IF|REP)-(\d{3}[A-Z]?)\s+(.+?)\s*(?:\*\*)?\s*$")
_DEF_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

# OpenAPI 3.0 keywords whose value is a schema, a list of schemas, or a name -> schema map.
_SUBSCHEMA = ("items", "additionalProperties", "not")
_SUBSCHEMA_LIST = ("oneOf", "anyOf", "allOf")
_SUBSCHEMA_MAP = ("properties",)
# OpenAPI-only annotations a 2020-12 validator must not see (``examples`` is an array there).
_OPENAPI_ONLY = frozenset({"example", "examples", "xml", "discriminator", "externalDocs"})
# Parent siblings of a payload's oneOf that carry no constraint of their own.
_ANNOTATIONS = frozenset({"description", "title"})

RefRewriter = Callable[[str, str], str]
"""Called with (original $ref, JSON pointer of the $ref inside the converted node); returns the new $ref."""


class ReferenceImportError(ValueError):
    """The reference folder cannot be imported: a file is missing, unreadable, not valid YAML, or a
    ``$ref`` does not resolve. The message names the file and the JSON pointer concerned."""


@dataclass(frozen=True)
class ImportedInterface:
    """One DIP interface as the reference defines it, with the payload schema per event code."""

    interface_id: str
    title: str | None
    event_codes: tuple[str, ...]
    schema_versions: tuple[str, ...]
    payload_schemas: dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# OpenAPI 3.0 -> JSON Schema 2020-12 (pure)
# ---------------------------------------------------------------------------------------------


def _keep_ref(ref: str, _pointer: str) -> str:
    return ref


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def openapi_to_json_schema(node: Any, rewrite_ref: RefRewriter = _keep_ref, pointer: str = "") -> Any:
    """Convert one OpenAPI 3.0 schema object (recursively) to JSON Schema 2020-12.

    ``rewrite_ref`` maps each ``$ref``; by default refs are kept. The input is not modified.
    """
    if not isinstance(node, dict):
        return copy.deepcopy(node)  # booleans (e.g. additionalProperties: false) and malformed values
    if "$ref" in node:
        # OpenAPI 3.0 ignores every sibling of $ref; only nullable is honoured here, as its intent is clear.
        converted: dict[str, Any] = {"$ref": rewrite_ref(str(node["$ref"]), f"{pointer}/$ref")}
        return _nullable(converted, node.get("nullable") is True)
    converted = {}
    for key, value in node.items():
        name = str(key)
        if name == "nullable" or name in _OPENAPI_ONLY or name.startswith("x-"):
            continue
        if name == "items" and isinstance(value, list):
            name = "prefixItems"  # a tuple form (not OpenAPI 3.0, but unambiguous): its 2020-12 spelling
        converted[name] = _convert_keyword(name, value, rewrite_ref, f"{pointer}/{_escape(str(key))}")
    _exclusive_bounds(converted)
    return _nullable(converted, node.get("nullable") is True)


def _convert_keyword(key: str, value: Any, rewrite_ref: RefRewriter, pointer: str) -> Any:
    if key in _SUBSCHEMA and isinstance(value, dict):
        return openapi_to_json_schema(value, rewrite_ref, pointer)
    if isinstance(value, list) and (key in _SUBSCHEMA_LIST or key == "prefixItems"):
        return [openapi_to_json_schema(v, rewrite_ref, f"{pointer}/{i}") for i, v in enumerate(value)]
    if key in _SUBSCHEMA_MAP and isinstance(value, dict):
        return {
            name: openapi_to_json_schema(sub, rewrite_ref, f"{pointer}/{_escape(str(name))}")
            for name, sub in value.items()
        }
    return copy.deepcopy(value)


def _exclusive_bounds(schema: dict[str, Any]) -> None:
    """OpenAPI 3.0 writes ``exclusiveMinimum: true`` beside ``minimum``; 2020-12 wants the number itself."""
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = schema.get(exclusive)
        if isinstance(flag, bool):
            del schema[exclusive]
            if flag and inclusive in schema:
                schema[exclusive] = schema.pop(inclusive)


def _nullable(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    """Apply OpenAPI ``nullable: true`` (null is also allowed) to an already converted schema."""
    if not nullable:
        return schema
    has_combinator = any(k in schema for k in ("$ref", "oneOf", "anyOf", "allOf", "not"))
    if "type" not in schema or has_combinator:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    schema["type"] = types if "null" in types else [*types, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


# ---------------------------------------------------------------------------------------------
# The reference folder: files by name, parsed lazily, refs resolved
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A resolved ``$ref``: the file it lives in, the JSON pointer within it, and the node."""

    file: str
    pointer: str
    node: Any


class _SourceFolder:
    """The YAML files of one reference folder, found by file name anywhere below it."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise ReferenceImportError(f"{directory}: reference folder not found")
        self.directory = directory
        self._paths: dict[str, Path] = {}
        # Shallowest first, so a file in the folder itself wins over a same-named one in a subfolder.
        candidates = [*directory.rglob("*.yaml"), *directory.rglob("*.yml")]
        for path in sorted(candidates, key=lambda p: (len(p.parts), str(p))):
            self._paths.setdefault(path.name, path)
        self._documents: dict[str, dict[str, Any]] = {}

    def document(self, name: str, wanted_by: str | None = None) -> dict[str, Any]:
        if name not in self._documents:
            self._documents[name] = self._parse(name, wanted_by)
        return self._documents[name]

    def _parse(self, name: str, wanted_by: str | None) -> dict[str, Any]:
        path = self._paths.get(name)
        if path is None:
            why = f"; referenced by {wanted_by}" if wanted_by else ""
            raise ReferenceImportError(f"{name}: file not found in {self.directory}{why}")
        try:
            with path.open("rb") as stream:
                loaded = yaml.load(stream, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            raise ReferenceImportError(f"{path}: invalid YAML: {exc}") from exc
        except OSError as exc:
            raise ReferenceImportError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ReferenceImportError(f"{path}#: expected a YAML mapping at the top level")
        return loaded

    def resolve(self, ref: str, base_file: str, origin: str) -> _Target:
        """Resolve ``ref`` written in ``base_file`` (``origin`` is where, for error messages)."""
        address, _, fragment = ref.partition("#")
        file = unquote(address.rstrip("/").rsplit("/", 1)[-1]) if address else base_file
        document = self.document(file, wanted_by=f"$ref '{ref}' at {origin}")
        pointer = unquote(fragment)
        return _Target(file, pointer, _walk_pointer(document, pointer, f"{file}#{pointer}", ref, origin))


def _walk_pointer(document: Any, pointer: str, where: str, ref: str, origin: str) -> Any:
    if pointer and not pointer.startswith("/"):
        raise ReferenceImportError(f"{origin}: $ref '{ref}' is not a JSON pointer")
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ReferenceImportError(f"{origin}: $ref '{ref}' cannot be resolved: {where} does not exist")
    return node


# ---------------------------------------------------------------------------------------------
# Bundling one payload schema: reachable definitions only, all refs local
# ---------------------------------------------------------------------------------------------


class _DefinitionNames:
    """Stable, readable ``$defs`` names for (file, pointer), shared by every schema of one import."""

    def __init__(self) -> None:
        self._by_target: dict[tuple[str, str], str] = {}
        self._taken: set[str] = set()

    def name(self, file: str, pointer: str) -> str:
        key = (file, pointer)
        if key not in self._by_target:
            self._by_target[key] = self._allocate(file, pointer)
        return self._by_target[key]

    def _allocate(self, file: str, pointer: str) -> str:
        stem = file.removesuffix(".yaml").removesuffix(".yml").removesuffix("-unresolved")
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        if tokens[:2] == ["components", "schemas"]:
            tokens = tokens[2:]
        base = _DEF_NAME_UNSAFE.sub("_", ".".join([stem, *tokens]))
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}-{n}"
        self._taken.add(name)
        return name


class _Bundle:
    """Builds one self-contained schema; each reached definition is converted once into ``defs``."""

    def __init__(self, folder: _SourceFolder, names: _DefinitionNames) -> None:
        self._folder = folder
        self._names = names
        self.defs: dict[str, Any] = {}

    def convert(self, node: Any, file: str, pointer: str) -> Any:
        def rewrite(ref: str, ref_pointer: str) -> str:
            return self._local_ref(ref, file, f"{file}#{pointer}{ref_pointer}")

        return openapi_to_json_schema(node, rewrite)

    def local_ref(self, target: _Target) -> str:
        name = self._names.name(target.file, target.pointer)
        if name not in self.defs:
            self.defs[name] = True  # placeholder: a cycle back to this definition is already resolved
            self.defs[name] = self.convert(target.node, target.file, target.pointer)
        return f"#/$defs/{_escape(name)}"

    def _local_ref(self, ref: str, file: str, origin: str) -> str:
        return self.local_ref(self._folder.resolve(ref, file, origin))

    def document(self, root: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, **root}
        if self.defs:
            schema["$defs"] = dict(sorted(self.defs.items()))
        return schema


# ---------------------------------------------------------------------------------------------
# Interfaces: event codes, schema versions, titles
# ---------------------------------------------------------------------------------------------


def _follow(folder: _SourceFolder, target: _Target) -> _Target:
    """Follow a chain of ``$ref``-only nodes to the schema they name."""
    seen: set[tuple[str, str]] = set()
    while isinstance(target.node, dict) and "$ref" in target.node:
        if (target.file, target.pointer) in seen:
            raise ReferenceImportError(f"{target.file}#{target.pointer}: $ref cycle")
        seen.add((target.file, target.pointer))
        target = folder.resolve(str(target.node["$ref"]), target.file, f"{target.file}#{target.pointer}")
    return target


def _s0_enum(folder: _SourceFolder, payload: _Target, field: str) -> tuple[str, ...] | None:
    """The enum of ``CommonBlock.S0.<field>`` of a payload schema, or None when it has none."""
    target = _follow(folder, payload)
    for step in ("CommonBlock", "S0", field):
        properties = target.node.get("properties") if isinstance(target.node, dict) else None
        if not isinstance(properties, dict) or step not in properties:
            return None
        pointer = f"{target.pointer}/properties/{_escape(step)}"
        target = _follow(folder, _Target(target.file, pointer, properties[step]))
    enum = target.node.get("enum") if isinstance(target.node, dict) else None
    if not isinstance(enum, list):
        return None
    return tuple(str(v) for v in enum if v is not None)


def _variants(payload: _Target) -> list[_Target]:
    """The oneOf variants of a payload schema, or the payload itself when it has no oneOf."""
    one_of = payload.node.get("oneOf")
    if not isinstance(one_of, list):
        return [payload]
    return [
        _Target(payload.file, f"{payload.pointer}/oneOf/{i}", variant) for i, variant in enumerate(one_of)
    ]


def _codes_to_variants(folder: _SourceFolder, variants: list[_Target]) -> dict[str, list[_Target]]:
    by_code: dict[str, list[_Target]] = {}
    for variant in variants:
        for code in _s0_enum(folder, variant, "eventCode") or (WILDCARD_EVENT_CODE,):
            by_code.setdefault(code, []).append(variant)
    return by_code


def _payload_schema(
    folder: _SourceFolder, names: _DefinitionNames, payload: _Target, chosen: list[_Target]
) -> dict[str, Any]:
    """The self-contained schema of ``payload`` restricted to the ``chosen`` oneOf variants."""
    bundle = _Bundle(folder, names)
    if "oneOf" not in payload.node:
        return bundle.document(bundle.convert(payload.node, payload.file, payload.pointer))
    siblings = {k: v for k, v in payload.node.items() if k != "oneOf"}
    only = _follow(folder, chosen[0]) if len(chosen) == 1 else None
    if only is not None and _implied_by(siblings, only.node):
        # The variant alone says everything the parent says: make it the root, for readable errors.
        return bundle.document(bundle.convert(only.node, only.file, only.pointer))
    root = bundle.convert(siblings, payload.file, payload.pointer)
    # anyOf, not oneOf: the variants chosen here all declare this event code (see the module docstring).
    converted = [bundle.convert(v.node, v.file, v.pointer) for v in chosen]
    root["allOf" if len(converted) == 1 else "anyOf"] = converted
    return bundle.document(root)


def _implied_by(siblings: dict[str, Any], variant: Any) -> bool:
    if not isinstance(variant, dict):
        return False
    return all(k in _ANNOTATIONS or variant.get(k) == v for k, v in siblings.items())


def _parse_titles(description: str) -> dict[str, str]:
    """Interface titles from the API description's channel list (``Channel-005`` means ``IF-005``)."""
    titles: dict[str, str] = {}
    for line in re.split(r"<br\s*/?>|\n", description):
        match = _TITLE_LINE.match(line)
        if match:
            kind, number, title = match.groups()
            titles.setdefault(f"{'IF' if kind == 'Channel' else kind}-{number}", title.strip())
    return titles


def _titles(folder: _SourceFolder) -> dict[str, str]:
    info = folder.document(API_FILE).get("info")
    description = info.get("description") if isinstance(info, dict) else None
    return _parse_titles(description) if isinstance(description, str) else {}


def _payload_targets(folder: _SourceFolder) -> Iterator[tuple[str, _Target]]:
    components = folder.document(INTERFACES_FILE).get("components")
    schemas = components.get("schemas") if isinstance(components, dict) else None
    if not isinstance(schemas, dict):
        raise ReferenceImportError(f"{INTERFACES_FILE}#/components/schemas: missing")
    for name, node in schemas.items():
        match = _PAYLOAD_NAME.match(str(name))
        if match:
            pointer = f"/components/schemas/{_escape(str(name))}"
            yield match.group(1), _follow(folder, _Target(INTERFACES_FILE, pointer, node))


def _import_interface(
    folder: _SourceFolder, names: _DefinitionNames, interface_id: str, payload: _Target, title: str | None
) -> ImportedInterface:
    if not isinstance(payload.node, dict):
        raise ReferenceImportError(f"{payload.file}#{payload.pointer}: payload schema is not an object")
    by_code = _codes_to_variants(folder, _variants(payload))
    versions: dict[str, None] = {}
    for variant in _variants(payload):
        versions.update(dict.fromkeys(_s0_enum(folder, variant, "schemaVersion") or ()))
    # Codes served by the same variants share one schema object (e.g. IF-041's ten reading codes).
    built: dict[tuple[str, ...], dict[str, Any]] = {}
    schemas: dict[str, dict[str, Any]] = {}
    for code, chosen in by_code.items():
        key = tuple(v.pointer for v in chosen)
        if key not in built:
            built[key] = _payload_schema(folder, names, payload, chosen)
        schemas[code] = built[key]
    return ImportedInterface(
        interface_id=interface_id,
        title=title,
        event_codes=tuple(code for code in by_code if code != WILDCARD_EVENT_CODE),
        schema_versions=tuple(versions),
        payload_schemas=schemas,
    )


def load_reference(directory: Path) -> dict[str, ImportedInterface]:
    """Read the OpenAPI source folder and return one entry per interface.

    Every ``IF-xxx-Payload`` / ``REP-xxx-Payload`` of the interfaces file becomes one entry, keyed by
    interface ID, in the order of that file. Raises ReferenceImportError when a file is missing or not
    valid YAML, or a ``$ref`` cannot be resolved.
    """
    folder = _SourceFolder(Path(directory))
    titles = _titles(folder)
    names = _DefinitionNames()
    imported: dict[str, ImportedInterface] = {}
    for interface_id, payload in _payload_targets(folder):
        imported[interface_id] = _import_interface(
            folder, names, interface_id, payload, titles.get(interface_id)
        )
    return imported


def component_schema(directory: Path, file: str, name: str) -> dict[str, Any]:
    """Any ``components/schemas`` entry of the reference as a self-contained JSON Schema.

    Used by the conformance tests to check the DIP's own bodies (e.g. ``StandardResponse`` of
    ``SubmitEvents-unresolved.yaml``) against the official definitions.
    """
    folder = _SourceFolder(Path(directory))
    target = folder.resolve(f"#/components/schemas/{_escape(name)}", file, f"{file}#/components/schemas/{name}")
    bundle = _Bundle(folder, _DefinitionNames())
    return bundle.document(bundle.convert(target.node, target.file, target.pointer))
