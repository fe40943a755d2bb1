"""Level 1 schema stage: JSON array in, one :class:`Checked` per message out.

This is the CPU-heavy part of accepting a batch (decoding and schema-checking ~2.6 KB messages
costs tens of microseconds each), so it is written as a pure function over raw message bytes
that can run in this process or, for large batches, in a pool of worker processes (one per
core), each caching its compiled validators by channel digest.

Field names are accepted case-insensitively on ingress (API contract): a message that fails its
schema is re-tried once with every object key mapped to the schema's spelling, and stored in
that canonical spelling. Values stay case-sensitive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import jsonschema_rs
import msgspec
import orjson

from dip import allocator, ids
from dip.accept import registry_updates
from dip.accept.registry_updates import Change
from dip.catalogue import Channel, parse_definition
from dip.codes import Code
from dip.schemas import payload_schema

MAX_HELP = 480


class Header(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The common-block fields the DIP acts on, read from a schema-valid message."""

    event_code: str
    schema_version: str
    environment: str
    sur: str
    sender_timestamp: str
    sender_id: str
    sender_role: str
    sender_correlation_id: str | None
    dcp_id: str | None
    primary_recipients: tuple[str | None, ...]
    mpan: str | None
    routing_date: str | None = None  # the value at the channel's routing.secondaryDate pointer
    changes: tuple[Change, ...] = ()  # MPAN appointments the message makes (registryUpdates)


class Checked(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The outcome of the schema stage for one message (index = position in the batch)."""

    index: int
    code: str | None  # None = passed; else MSG1001 / MSG1002
    help: str | None
    sur: str | None  # best effort, for the error response
    header: Header | None
    payload: bytes | None  # the payload's JSON when it had to be re-encoded; None: slice it from the raw item
    common_span: tuple[int, int] | None = None  # where the CommonBlock object lies in the stored payload


@dataclass(frozen=True)
class CheckSpec:
    """What a (possibly remote) worker needs to check messages for one channel."""

    interface_id: str
    digest: str
    definition: bytes
    environment: str


class _Validators:
    """Compiled validators for one channel definition, by event code."""

    def __init__(self, channel: Channel) -> None:
        d = channel.definition
        self.by_event: dict[str, tuple[Any, dict[str, Any]]] = {}
        if d.payloadSchemas:
            for code, schema in d.payloadSchemas.items():
                self.by_event[code] = (jsonschema_rs.validator_for(schema), schema)
        else:
            schema = payload_schema(channel)
            compiled = jsonschema_rs.validator_for(schema)
            for code in d.eventCodes:
                self.by_event[code] = (compiled, schema)
        self.event_codes = sorted(d.eventCodes)
        self.date_pointer = d.routing.secondaryDate
        self.registry_updates = d.registryUpdates

    def get(self, event_code: object) -> tuple[Any, dict[str, Any]] | None:
        if isinstance(event_code, str):
            found = self.by_event.get(event_code)
            if found is not None:
                return found
        return self.by_event.get("*")


_cache: dict[str, _Validators] = {}


def _validators(spec: CheckSpec) -> _Validators:
    found = _cache.get(spec.digest)
    if found is None:
        if len(_cache) > 256:
            _cache.clear()
        found = _Validators(parse_definition(spec.interface_id, spec.definition))
        _cache[spec.digest] = found
    return found


def spec_for(channel: Channel, environment: str) -> CheckSpec:
    return CheckSpec(channel.interface_id, channel.digest, channel.to_json(), environment)


def _get_ci(obj: object, name: str) -> Any:
    """obj[name], matching the key case-insensitively when the exact one is absent."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _resolve(schema: Any, root: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Follow local $refs ("#/..."); returns (schema, resource root).

    A schema with its own ``$id`` (an embedded custom-block schema) is a resource of its own:
    its "#/..." references point into it, not into the whole-payload schema.
    """
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
        if "$id" in schema:
            root = schema
        ref = schema["$ref"]
        if not ref.startswith("#"):
            break
        target: Any = root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            break
        schema, seen = target, seen + 1
    return schema, root


def _property_schemas(schema: Any, root: dict[str, Any]) -> dict[str, tuple[Any, dict[str, Any]]]:
    schema, root = _resolve(schema, root)
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    if not isinstance(schema, dict):
        return found
    if "$id" in schema:
        root = schema
    for name, sub in (schema.get("properties") or {}).items():
        found[name] = (sub, root)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword) or ():
            for name, sub in _property_schemas(branch, root).items():
                found.setdefault(name, sub)
    return found


def canonicalize(instance: Any, schema: Any, root: dict[str, Any]) -> Any:
    """A copy of ``instance`` whose object keys use the schema's spelling where they differ only in case."""
    schema, root = _resolve(schema, root)
    if isinstance(instance, dict):
        props = _property_schemas(schema, root)
        by_lower = {name.lower(): name for name in props}
        out: dict[str, Any] = {}
        for key, value in instance.items():
            name = key if key in props else by_lower.get(str(key).lower()) or key
            if name in out:
                return instance  # two keys differing only in case: ambiguous, leave it to fail
            sub = props.get(name)
            out[name] = canonicalize(value, sub[0], sub[1]) if sub else value
        return out
    if isinstance(instance, list) and isinstance(schema, dict):
        items = schema.get("items")
        if isinstance(items, dict):
            return [canonicalize(v, items, root) for v in instance]
    return instance


def _first_error(validator: Any, payload: Any) -> str:
    for error in validator.iter_errors(payload):
        path = "/" + "/".join(str(p) for p in error.instance_path)
        return f"{path}: {error.message}"[:MAX_HELP]
    return "message does not match the schema"


def _block(parent: Any, name: str, optional: bool = False) -> dict[str, Any]:
    value = parent.get(name) if optional else parent[name]
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be an object")
    return value


def _text(block: dict[str, Any], name: str, optional: bool = False) -> Any:
    """A string field (a channel's own payload schema may not pin the common block's types)."""
    value = block.get(name) if optional else block[name]
    if not (isinstance(value, str) or (optional and value is None)):
        raise TypeError(f"{name} must be a string")
    return value


def _header(payload: dict[str, Any], validators: _Validators | None = None) -> Header:
    common = _block(payload, "CommonBlock")
    s0, s1 = _block(common, "S0"), _block(common, "S1")
    a0 = _block(common, "A0", optional=True)
    m0 = _block(common, "M0", optional=True)
    primary = a0.get("primaryRecipients") or []
    if not isinstance(primary, list) or not all(p is None or isinstance(p, str) for p in primary):
        raise TypeError("primaryRecipients must be an array of DIP IDs")
    event_code = _text(s0, "eventCode")
    return Header(
        event_code=event_code,
        schema_version=_text(s0, "schemaVersion"),
        environment=_text(s1, "environmentTag"),
        sur=_text(s1, "senderUniqueReference"),
        sender_timestamp=_text(s1, "senderTimestamp"),
        sender_id=_text(s1, "senderDIPID"),
        sender_role=_text(s1, "senderRoleID"),
        sender_correlation_id=_text(s1, "senderCorrelationID", optional=True),
        dcp_id=_text(s1, "DIPConnectionProviderID", optional=True),
        primary_recipients=tuple(primary),
        mpan=_text(m0, "MPANCore", optional=True),
        routing_date=_routing_date(payload, validators.date_pointer) if validators else None,
        changes=(registry_updates.extract(validators.registry_updates, event_code, payload)
                 if validators and validators.registry_updates else ()),
    )


def _routing_date(payload: dict[str, Any], pointer: str | None) -> str | None:
    if pointer is None:
        return None
    value = registry_updates.field_at(payload, pointer)
    return value if isinstance(value, str) else None


def _fail(index: int, code: Code, help_text: str, sur: Any = None) -> Checked:
    # the answer repeats the sender's reference only when it is one (the response schema's pattern)
    reference = sur if isinstance(sur, str) and ids.parse_sender_reference(sur) is not None else None
    return Checked(index, code.value, help_text[:MAX_HELP], reference, None, None)


def check_one(index: int, raw: bytes | msgspec.Raw | memoryview, spec: CheckSpec,
              validators: _Validators) -> Checked:
    try:
        item = orjson.loads(raw if isinstance(raw, bytes | memoryview) else memoryview(raw))
    except orjson.JSONDecodeError:
        return _fail(index, Code.SCHEMA_FAILURE, "not valid JSON")
    payload = _get_ci(item, "payload")
    if not isinstance(payload, dict):
        return _fail(index, Code.SCHEMA_FAILURE, 'each array item must be an object {"payload": {...}}')
    common = _get_ci(payload, "CommonBlock")
    s0 = _get_ci(common, "S0")
    s1 = _get_ci(common, "S1")
    sur = _get_ci(s1, "senderUniqueReference")
    interface_id = _get_ci(s0, "interfaceID")
    if isinstance(interface_id, str) and interface_id != spec.interface_id:
        return _fail(
            index, Code.INTERFACE_INVALID,
            f"/CommonBlock/S0/interfaceID '{interface_id[:20]}' does not match the channel {spec.interface_id}",
            sur,
        )
    event_code = _get_ci(s0, "eventCode")
    found = validators.get(event_code)
    if found is None:
        return _fail(
            index, Code.SCHEMA_FAILURE,
            f"/CommonBlock/S0/eventCode {str(event_code)[:60]!r} is not valid for {spec.interface_id}; "
            f"expected one of {', '.join(validators.event_codes)}",
            sur,
        )
    validator, schema = found
    if not validator.is_valid(payload):
        try:
            canonical = canonicalize(payload, schema, schema)
        except RecursionError:
            canonical = payload
        if canonical != payload and validator.is_valid(canonical):
            payload = canonical
        else:
            return _fail(index, Code.SCHEMA_FAILURE, _first_error(validator, payload), sur)
    try:
        header = _header(payload, validators)
    except KeyError as exc:
        return _fail(index, Code.SCHEMA_FAILURE, f"common block field missing: {exc}", sur)
    except (TypeError, ValueError, AttributeError) as exc:
        return _fail(index, Code.SCHEMA_FAILURE, f"common block field invalid: {exc}", sur)
    if header.environment != spec.environment:
        return _fail(
            index, Code.SCHEMA_FAILURE,
            f"/CommonBlock/S1/environmentTag '{header.environment}' is not this DIP's environment "
            f"'{spec.environment}'",
            sur,
        )
    # What is stored must be exactly what was validated. When the item is the compact form of the
    # validated payload (what orjson, and most compact serialisers, write), the parent takes the
    # bytes from its own copy of the body and nothing travels back from a worker; otherwise
    # (whitespace, duplicate keys, other key spellings, other number forms) the re-encoded
    # payload is stored.
    encoded = orjson.dumps(payload)
    view = memoryview(raw)  # type: ignore[arg-type]
    sliceable = (
        len(view) == len(encoded) + _WRAPPER and view[:_PREFIX].tobytes() == b'{"payload":'
        and view[-1] == _BRACE and view[_PREFIX:-1].tobytes() == encoded
    )  # (bytes == bytes is one memcmp; memoryview == bytes compares byte by byte: 14 µs for 4.5 KB)
    return Checked(index, None, None, header.sur, header, None if sliceable else encoded,
                   common_span(payload, encoded))


def common_span(payload: dict[str, Any], encoded: bytes) -> tuple[int, int] | None:
    """Where the value of CommonBlock lies in ``encoded`` (``orjson.dumps(payload)``), so delivery
    can add A0 and D0 without reading the rest of the message; None when it cannot be told."""
    offset = 1  # the opening brace
    for key, value in payload.items():
        name = orjson.dumps(key)
        if key == "CommonBlock":
            start = offset + len(name) + 1
            end = start + len(orjson.dumps(value))
            found = encoded[start - len(name) - 1:start] == name + b":" and encoded[start:start + 1] == b"{"
            return (start, end) if found and encoded[end - 1:end] == b"}" else None
        offset += len(name) + 1 + len(orjson.dumps(value)) + 1  # "key":value,
    return None


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around a tight loop that builds no reference cycles.

    Decoding a batch allocates hundreds of objects per message; without this the collector runs
    thousands of times per batch to find nothing (about 15% of the schema stage's time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_chunk(spec: CheckSpec, start: int, raws: Sequence[bytes | msgspec.Raw | memoryview]) -> list[Checked]:
    validators = _validators(spec)
    with paused_gc():
        return [check_one(start + i, raw, spec, validators) for i, raw in enumerate(raws)]


def check_shared(spec: CheckSpec, memory_name: str, start: int, spans: list[tuple[int, int]]) -> bytes:
    """check_chunk in a worker process, reading its items from shared memory.

    The body is handed over once through shared memory rather than pickled to each worker, with
    the (offset, length) of each of this worker's items, so the worker neither copies nor
    re-splits the batch. Results go back msgpack-encoded, without payload bytes unless a payload
    had to be re-encoded (the parent slices the others from its own copy of the body).
    """
    memory = shared_memory.SharedMemory(name=memory_name)
    try:
        assert memory.buf is not None
        view = memory.buf
        try:
            return _results_encoder.encode(check_chunk(spec, start, [view[o:o + n] for o, n in spans]))
        finally:
            del view  # slices of the shared memory must be gone before it can close
    finally:
        memory.close()


def item_spans(body: bytes, raws: Sequence[bytes | msgspec.Raw]) -> list[tuple[int, int]]:
    """(offset, length) of each item in ``body``: items follow each other, separated by blanks and commas."""
    spans = []
    position = body.index(b"[") + 1
    for raw in raws:
        while body[position] in _SEPARATORS:
            position += 1
        spans.append((position, len(raw)))
        position += len(raw)
    return spans


_SEPARATORS = frozenset(b" \t\r\n,")
_results_encoder = msgspec.msgpack.Encoder()
_results_decoder = msgspec.msgpack.Decoder(list[Checked])


class SchemaChecker:
    """Runs the schema stage, spreading large batches over worker processes."""

    def __init__(self, workers: int | None = None, parallel_threshold: int = 2000, chunks_per_worker: int = 4) -> None:
        self.workers = max(0, os.cpu_count() or 1) if workers is None else workers
        self.parallel_threshold = parallel_threshold
        self.chunks_per_worker = chunks_per_worker
        self._pool: Executor | None = None

    def start(self) -> None:
        if self.workers > 1 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=allocator.tune)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def warm_up(self) -> None:
        """Start the worker processes now rather than on the first large batch."""
        if self._pool is not None:
            for future in [self._pool.submit(os.getpid) for _ in range(self.workers)]:
                future.result()

    async def check(self, spec: CheckSpec, raws: Sequence[bytes | msgspec.Raw],
                    body: bytes | None = None) -> list[Checked]:
        """Check every item; ``body`` (the JSON array ``raws`` came from) enables the worker pool."""
        results: list[Checked] = []
        async for chunk in self.chunks(spec, raws, body):
            results.extend(chunk)
        return results

    async def chunks(self, spec: CheckSpec, raws: Sequence[bytes | msgspec.Raw],
                     body: bytes | None = None) -> AsyncGenerator[list[Checked], None]:
        """The results in order, a chunk at a time, so the caller can store early chunks while
        the workers still check later ones."""
        if self._pool is None or body is None or len(raws) < self.parallel_threshold:
            yield check_chunk(spec, 0, raws)
            return
        loop = asyncio.get_running_loop()
        spans = item_spans(body, raws)
        memory = shared_memory.SharedMemory(create=True, size=max(len(body), 1))
        futures: list[asyncio.Future[bytes]] = []
        try:
            assert memory.buf is not None
            memory.buf[:len(body)] = body
            size = -(-len(raws) // (self.workers * self.chunks_per_worker))
            futures = [
                loop.run_in_executor(self._pool, check_shared, spec, memory.name, start, spans[start:start + size])
                for start in range(0, len(raws), size)
            ]
            for future in futures:
                yield _results_decoder.decode(await future)
        finally:
            # a worker may still be reading the shared memory if the caller stopped early
            await asyncio.gather(*futures, return_exceptions=True)
            memory.close()
            memory.unlink()


_PREFIX = len(b'{"payload":')
_WRAPPER = _PREFIX + 1
_BRACE = ord("}")


def payload_bytes(checked: Checked, raw: bytes | msgspec.Raw) -> bytes:
    """The validated payload's JSON: re-encoded by the schema stage, or taken from the item.

    ``checked.payload`` is None only when the item is exactly ``{"payload":`` + the compact
    payload + ``}`` (see check_one), so the payload is the item without that wrapper.
    """
    if checked.payload is not None:
        return checked.payload
    return bytes(memoryview(raw)[_PREFIX:-1])  # type: ignore[arg-type]


def split_batch(body: bytes) -> list[msgspec.Raw] | str:
    """The raw JSON of each array item (views into ``body``, nothing copied), or why the body is not a JSON array."""
    try:
        items: list[msgspec.Raw] = msgspec.json.decode(body, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            return f"the body is not valid JSON: {exc}"
        return 'the body must be a JSON array of messages: [{"payload": {...}}, ...]'
    except msgspec.DecodeError as exc:
        return f"the body is not valid JSON: {exc}"
    except RecursionError:
        return "the body is nested too deeply to be a batch of DIP messages"
    return items
