"""How a message's payload is kept in the archive: zstd with a dictionary of MHHS messages.

An archived payload is a few KB of JSON whose keys, codes and layout repeat from message to
message (an IF-021 reading of 24 periods is 2.7 KB). Compressed alone, each message has only
itself to learn from: PostgreSQL's lz4 TOAST compression kept such a message in 1,021 bytes and
plain zstd in 727. A zstd dictionary made from sample messages (``dip.tools.payload_dictionary``)
holds what they share, so each message keeps only what is its own: 204 bytes for the same
message, in about 3 µs to compress and 2 µs to expand on this kind of machine. That is the
archive's size (docs/scale.md: 30 TB a year before compression) and the cost of a purge, which
is the file system's to free the bytes a day held (docs/archive.md).

A stored payload is either a zstd frame (it starts with zstd's magic number) or, for messages
stored before this codec, the JSON itself, which cannot start with that number: ``decode`` tells
them apart, so old archives read as they are. Each frame names the dictionary it was made with;
dictionaries are never changed or removed once shipped (a new one gets the next ID, in
``dip/data/payloads-<id>.zdict``), so every stored message can be read for as long as it is kept.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LEVEL = 3  # zstd's default; higher levels gained 1-2% on these messages for twice the CPU
_local = threading.local()  # zstandard's (de)compressors are not to be shared between threads


@cache
def dictionaries() -> dict[int, zstandard.ZstdCompressionDict]:
    """The shipped dictionaries by their ID."""
    out = {}
    for entry in resources.files("dip").joinpath("data").iterdir():
        if entry.name.startswith("payloads-") and entry.name.endswith(".zdict"):
            made = zstandard.ZstdCompressionDict(entry.read_bytes())
            out[made.dict_id()] = made
    if not out:
        raise RuntimeError("no payload dictionary in dip/data: the package is incomplete")
    return out


def _compressor(dictionary: bool = True) -> zstandard.ZstdCompressor:
    name = "compressor" if dictionary else "plain_compressor"
    compressor: zstandard.ZstdCompressor | None = getattr(_local, name, None)
    if compressor is None:
        newest = dictionaries()[max(dictionaries())] if dictionary else None
        compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=newest)
        setattr(_local, name, compressor)
    return compressor


def _decompressor(dict_id: int) -> zstandard.ZstdDecompressor:
    if not hasattr(_local, "decompressors"):
        _local.decompressors = {}
    found: zstandard.ZstdDecompressor | None = _local.decompressors.get(dict_id)
    if found is None:
        if dict_id and dict_id not in dictionaries():
            raise ValueError(f"a stored payload names zstd dictionary {dict_id}, which this DIP does not have")
        found = zstandard.ZstdDecompressor(dict_data=dictionaries()[dict_id]) if dict_id else (
            zstandard.ZstdDecompressor())
        _local.decompressors[dict_id] = found
    return found


def encode(payload: bytes, dictionary: bool = True) -> bytes:
    """The payload as the archive keeps it; without the dictionary for JSON that is not an MHHS
    message (the API activity log's entries), which ``decode`` reads all the same."""
    return _compressor(dictionary).compress(payload)


def decode(stored: bytes) -> bytes:
    """The payload as it was accepted, from what ``encode`` made (or the JSON stored before it)."""
    if not stored.startswith(ZSTD_MAGIC):
        return stored
    dict_id = zstandard.get_frame_parameters(stored).dict_id
    return _decompressor(dict_id).decompress(stored)
