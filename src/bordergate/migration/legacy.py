"""A "global platform" legacy database, generated with Faker and a seed, at any size.

Tables (one owning-subject column each; ``messages`` links two users and is
owned by its sender)::

    accounts(id, legacy_id, handle, email, phone, birth_date, country,
             signup_ip, device_id, created_at, ad_segment)
    profiles(id, account_id -> accounts, display_name, bio, language,
             private_account, gender)
    watch_history(id, account_id -> accounts, video_ref, watched_at,
                  watch_seconds, device_id, region)
    payments(id, account_id -> accounts, amount_minor, currency, paid_at,
             card_last4, tax_id)
    messages(id, sender_id -> accounts, recipient_id, body, sent_at, is_read)

Each user has exactly ten records (1 account, 1 profile, 5 watch-history
rows, 1 payment, 2 messages), so ``users=10_000`` is 100,000 records.  Then
come the dirty rows: accounts without a country and with an unknown one
(``ZZ``), each with its own rows, and watch-history rows without an owner.
``ad_segment`` is a column no schema field maps.

Every protected or restricted text value carries the marker ``lgcy-`` (and every
legacy id is ``lgcy-user-NNNNNNN``), so a raw scan of a file finds any value in
clear with one search; the dash keeps the marker out of base32 subject ids and
hex pseudonyms, which a scan for ``lgcy`` alone matched by chance.  Public values never carry it.

This module writes only the legacy database it is given (test and demo data).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker

from bordergate.migration.source import LegacySource

__all__ = ["HOME_COUNTRIES", "MARKER", "LegacyDataset", "generate_legacy"]

#: The text every protected or restricted value of the dataset carries.
MARKER = b"lgcy-"
#: Which home each generated country belongs to (the demo mapping's rule).
HOME_COUNTRIES = {"US": "us", "CA": "us", "DE": "eu", "FR": "eu", "IE": "eu", "ES": "eu",
                  "CN": "cn"}
_COUNTRIES = list(HOME_COUNTRIES)
RECORDS_PER_USER = 10

_DDL = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, legacy_id TEXT NOT NULL UNIQUE,
  handle TEXT NOT NULL, email TEXT NOT NULL, phone TEXT, birth_date TEXT, country TEXT,
  signup_ip TEXT, device_id TEXT, created_at TEXT NOT NULL, ad_segment TEXT);
CREATE TABLE profiles (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id),
  display_name TEXT, bio TEXT, language TEXT, private_account BOOLEAN NOT NULL, gender TEXT);
CREATE TABLE watch_history (id INTEGER PRIMARY KEY,
  account_id INTEGER REFERENCES accounts(id), video_ref TEXT NOT NULL,
  watched_at TEXT NOT NULL, watch_seconds INTEGER NOT NULL, device_id TEXT, region TEXT);
CREATE TABLE payments (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id),
  amount_minor INTEGER NOT NULL, currency TEXT NOT NULL, paid_at TEXT NOT NULL,
  card_last4 TEXT, tax_id TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY, sender_id INTEGER REFERENCES accounts(id),
  recipient_id INTEGER, body TEXT NOT NULL, sent_at TEXT NOT NULL, is_read BOOLEAN);
CREATE INDEX profiles_owner ON profiles (account_id);
CREATE INDEX watch_owner ON watch_history (account_id);
CREATE INDEX payments_owner ON payments (account_id);
CREATE INDEX messages_owner ON messages (sender_id);
"""
_INSERT = {
    "accounts": 11, "profiles": 7, "watch_history": 7, "payments": 7, "messages": 6}


@dataclass(frozen=True, slots=True)
class LegacyDataset:
    """What was generated: records per table, and the dirty rows' legacy ids and keys."""

    users: int
    records: dict[str, int]
    dirty_accounts: tuple[str, ...]
    ownerless_rows: int

    @property
    def total(self) -> int:
        return sum(self.records.values())


class _Pools:
    """Faker output drawn once per seed and combined, so millions of rows stay fast."""

    def __init__(self, seed: int) -> None:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.names = [fake.user_name() for _ in range(400)]
        self.sentences = [fake.sentence(nb_words=8) for _ in range(400)]
        self.ips = [fake.ipv4_public() for _ in range(400)]
        self.words = [fake.word() for _ in range(200)]


def _stamp(rng: random.Random, year_from: int = 2019) -> str:
    return (f"{rng.randint(year_from, 2024):04d}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}Z")


def _user_rows(n: int, country: str | None, rng: random.Random, pools: _Pools, *,
               users: int, ids: dict[str, int], bool_: type) -> dict[str, list[tuple[object, ...]]]:
    name = rng.choice(pools.names)
    rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in _INSERT}
    rows["accounts"].append((
        n, f"lgcy-user-{n:07d}", f"{name}{n}", f"{name}.{n}@lgcy-mail.example",
        f"lgcy-tel-{rng.randrange(10**9):09d}",
        f"lgcy-{rng.randint(1950, 2008)}-{rng.randint(1, 12):02d}"[:10],
        country, rng.choice(pools.ips), f"lgcy-dev-{rng.getrandbits(48):012x}",
        _stamp(rng, 2015), rng.choice(pools.words)))
    rows["profiles"].append((
        n, n, name.title(), rng.choice(pools.sentences), rng.choice(["en", "de", "fr", "zh"]),
        bool_(rng.random() < 0.3), f"lgcy-g{rng.randrange(4)}"))
    for _ in range(5):
        ids["watch_history"] += 1
        rows["watch_history"].append((
            ids["watch_history"], n, f"lgcy-vid-{rng.getrandbits(40):010x}", _stamp(rng),
            rng.randint(1, 600), f"lgcy-dev-{rng.getrandbits(48):012x}",
            rng.choice(["na", "emea", "apac"])))
    ids["payments"] += 1
    rows["payments"].append((
        ids["payments"], n, rng.randint(99, 99_999), rng.choice(["USD", "EUR", "CNY"]),
        _stamp(rng), f"{rng.randrange(10_000):04d}", f"lgcy-tax-{rng.randrange(10**8):08d}"))
    for _ in range(2):
        ids["messages"] += 1
        rows["messages"].append((
            ids["messages"], n, rng.randint(1, users), f"{rng.choice(pools.sentences)} lgcy-msg",
            _stamp(rng), bool_(rng.random() < 0.5)))
    return rows


def generate_legacy(source: LegacySource, *, users: int, seed: int = 15,
                    dirty: int | None = None) -> LegacyDataset:
    """Create the legacy tables in an empty database and fill them.

    Args:
        source: an empty legacy database.
        users: clean users (ten records each).
        seed: the seed of Faker and of every random choice: same seed, same rows.
        dirty: dirty accounts of each kind (no country; unknown country), and
            ownerless watch-history rows; default ``max(2, users // 2000)``.

    Raises:
        Unavailable: ``source_unavailable`` (e.g. the tables already exist).
    """
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible by design)
    pools = _Pools(seed)
    dirty = max(2, users // 2000) if dirty is None else dirty
    ids = {"watch_history": 0, "payments": 0, "messages": 0}
    bool_: type = bool if source.kind == "postgres" else int
    counts = dict.fromkeys(_INSERT, 0)
    dirty_ids: list[str] = []
    total_users = users + 2 * dirty
    with source.transaction() as cur:
        for statement in filter(str.strip, _DDL.split(";")):
            cur.execute(statement)
        chunk: dict[str, list[tuple[object, ...]]] = {t: [] for t in _INSERT}
        for n in range(1, total_users + 1):
            if n > users:
                country = None if (n - users) % 2 else "ZZ"
                dirty_ids.append(f"lgcy-user-{n:07d}")
            else:
                country = rng.choice(_COUNTRIES)
            for table, rows in _user_rows(n, country, rng, pools, users=total_users, ids=ids,
                                          bool_=bool_).items():
                chunk[table].extend(rows)
            if n % 2000 == 0 or n == total_users:
                _flush(source, cur, chunk, counts)
        for _ in range(dirty):
            ids["watch_history"] += 1
            chunk["watch_history"].append((
                ids["watch_history"], None, "lgcy-vid-orphan", _stamp(rng), 1, None, "na"))
        _flush(source, cur, chunk, counts)
    return LegacyDataset(users=users, records=counts, dirty_accounts=tuple(dirty_ids),
                         ownerless_rows=dirty)


def _flush(source: LegacySource, cur: object, chunk: dict[str, list[tuple[object, ...]]],
           counts: dict[str, int]) -> None:
    for table, width in _INSERT.items():
        if chunk[table]:
            sql = source.sql(f"INSERT INTO {table} VALUES ({','.join('?' * width)})")  # noqa: S608
            cur.executemany(sql, chunk[table])  # type: ignore[attr-defined]
            counts[table] += len(chunk[table])
            chunk[table].clear()
