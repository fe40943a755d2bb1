"""Command-line arguments become Settings as documented in docs/operations.md."""

from __future__ import annotations

import argparse

import pytest

from dip.exceptions import ConfigurationError
from dip.tools.cli import _serve_parser, settings_from


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_defaults_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIP_RETRY_INITIAL_SECONDS", raising=False)
    settings = settings_from(parse())
    assert settings.deliver and settings.environment == "DEV" and settings.port == 8080
    assert settings.retry_initial_seconds == 1 and settings.dead_letter_after_seconds == 1_209_600
    settings = settings_from(parse("--no-delivery", "--environment", "SIT", "--retry-initial-seconds", "0.5",
                                   "--dead-letter-after-seconds", "60", "--public-base-url", "https://dip.example"))
    assert not settings.deliver and settings.environment == "SIT"
    assert settings.retry_initial_seconds == 0.5 and settings.dead_letter_after_seconds == 60


def test_timing_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIP_RETRY_INITIAL_SECONDS", "2")
    monkeypatch.setenv("DIP_RETRY_MAX_SECONDS", "20")
    settings = settings_from(parse())
    assert (settings.retry_initial_seconds, settings.retry_max_seconds) == (2, 20)
    monkeypatch.setenv("DIP_RETRY_INITIAL_SECONDS", "nan")
    with pytest.raises(ConfigurationError):
        settings_from(parse())


def test_the_delivery_cache_size_is_set_in_mb_and_zero_turns_it_off() -> None:
    assert settings_from(parse()).delivery_cache_mb == 64
    assert settings_from(parse("--delivery-cache-mb", "0")).delivery_cache_mb == 0
    with pytest.raises(ConfigurationError, match="--delivery-cache-mb"):
        settings_from(parse("--delivery-cache-mb", "-1"))
