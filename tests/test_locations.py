"""Store and log locations: one parser accepts the documented forms and names the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.errors import ConfigError
from bordergate.locations import (
    parse_log_location,
    parse_log_source,
    parse_store_location,
)

STORES = [
    ("sqlite:us/records.db", "sqlite", "/base/us/records.db"),
    ("sqlite:///abs/records.db", "sqlite", "/abs/records.db"),
    ("us/records.db", "sqlite", "/base/us/records.db"),
    ("postgresql://u@h/bordergate_us", "postgresql", "postgresql://u@h/bordergate_us"),
    ("postgres://u@h/bordergate_us", "postgresql", "postgres://u@h/bordergate_us"),
    ("memory:", "memory", ""),
]


@pytest.mark.parametrize(("text", "kind", "target"), STORES, ids=[s[0] for s in STORES])
def test_store_locations(text: str, kind: str, target: str) -> None:
    """Locations: each documented record-store form parses to its kind; relative
    paths resolve against the base directory; the canonical URL re-parses the same."""
    location = parse_store_location(text, base_dir=Path("/base"))
    assert (location.kind, location.target) == (kind, target)
    assert parse_store_location(location.url) == location


@pytest.mark.parametrize("text", ["mysql://x", "records", "sqlite:", ""])
def test_bad_store_locations(text: str) -> None:
    """Locations: any other store text is a ConfigError ``store_url``, never a guess."""
    with pytest.raises(ConfigError) as info:
        parse_store_location(text)
    assert info.value.code == "store_url"


def test_log_locations_and_sources() -> None:
    """Locations: a log's storage is a directory or a PostgreSQL URL; a reader's
    source is a directory, an http(s) URL or the PostgreSQL URL of the database that
    keeps it (issue 16 item 3); other schemes are ``log_location``."""
    assert parse_log_location("us/log", base_dir=Path("/b")).target == "/b/us/log"
    assert parse_log_location("postgresql://h/db").kind == "postgresql"
    assert parse_log_source("https://log.example/us/").target == "https://log.example/us"
    assert parse_log_source("us/log", base_dir=Path("/b")).kind == "directory"
    assert parse_log_source("postgresql://h/db").kind == "postgresql"
    for parse, text in ((parse_log_location, "https://x"), (parse_log_location, "s3://b"),
                        (parse_log_source, "s3://b"), (parse_log_source, " ")):
        with pytest.raises(ConfigError) as info:
            parse(text)
        assert info.value.code == "log_location"
