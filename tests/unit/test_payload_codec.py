"""The archive's payload codec: what it keeps reads back byte for byte, old rows included."""

from __future__ import annotations

import orjson
import pytest
import zstandard

from dip.signing import generate_identity
from dip.store import payload_codec
from dip.tools.client import DipClient, Identity
from dip.tools.samples import sample_payloads


@pytest.fixture(scope="module")
def client() -> DipClient:
    return DipClient("http://127.0.0.1:1", Identity("1300000001", "SDS", "", *generate_identity("1300000001"),
                                                    "", "DEV"))


@pytest.mark.parametrize("interface_id", ["IF-021", "IF-005", "IF-024"])
def test_payloads_read_back_as_accepted_and_smaller(client: DipClient, interface_id: str) -> None:
    for message in sample_payloads(client, interface_id, 20, seed=99):
        payload = orjson.dumps(message)
        kept = payload_codec.encode(payload)
        assert payload_codec.decode(kept) == payload
        assert len(kept) < len(payload) // 2


def test_the_dictionary_is_what_makes_small_messages_small(client: DipClient) -> None:
    payload = orjson.dumps(sample_payloads(client, "IF-021", 1, seed=5, periods=24)[0])
    alone = zstandard.ZstdCompressor(level=payload_codec.LEVEL).compress(payload)
    assert len(payload_codec.encode(payload)) < len(alone) // 2


def test_a_payload_stored_before_the_codec_reads_as_it_is() -> None:
    raw = b'{"CommonBlock": {}}'
    assert payload_codec.decode(raw) == raw
    assert payload_codec.decode(b"[]") == b"[]"


def test_a_frame_without_a_dictionary_reads_too() -> None:
    plain = zstandard.ZstdCompressor().compress(b'{"a": 1}')
    assert payload_codec.decode(plain) == b'{"a": 1}'


def test_a_payload_naming_an_unknown_dictionary_is_a_clear_error() -> None:
    other = zstandard.train_dictionary(4096, [b'{"k": %d, "text": "abc"}' % n for n in range(2000)], dict_id=999_999)
    frame = zstandard.ZstdCompressor(dict_data=other).compress(b'{"k": 1, "text": "abc"}')
    with pytest.raises(ValueError, match="dictionary 999999"):
        payload_codec.decode(frame)
