"""The sandbox backend's persistence: SQLite tables, the rules' `View` implemented by SQL, and the writes
(`Effect`s, time, tokens, idempotency, audit) that the HTTP layer performs in one transaction per request.

The rules (`reconciler.domain.rules`) decide; this module only reads and writes. Every read the rules make is
a point query on an index, so one request never loads an organisation wholesale; list endpoints use keyset
pagination with a fixed number of queries per page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain import rules
from reconciler.domain.catalogue import Catalogue, Service, bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.rules import LATEST_TODAY, Invalid, Missing, Refusal
from reconciler.domain.state import (
    Chain, DeleteAuthorisation, DeleteChain, DeleteMeans, DeleteMembership, DeleteOrganisation, Effect, Means,
    Membership, OrgInfo, Pending, PendingKind, PutAuthorisation, PutChain, PutMeans, PutMembership, Status,
)

from reconciler.backend.sandbox.pagination import decode_cursor, page_of

SCHEMA_VERSION = 3
#: Statements that bring a database of the previous version up to date.
_MIGRATIONS = {1: ("ALTER TABLE means ADD COLUMN pending_second_factor TEXT",
                   "ALTER TABLE means ADD COLUMN pending_phone TEXT"),
               # R18: each chain authorisation its own end date; the one date each had becomes every service's
               2: ("UPDATE chains SET services = (SELECT json_group_object(value, chains.end_date) "
                   "FROM json_each(chains.services))",)}

#: Ids per IN (...) list: far below SQLite's bound-parameter limit.
_CHUNK = 900

# No semicolons inside comments: the script is split on them.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS organisations (
    kvk           TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    branch_number TEXT,
    revision      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS means (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL,
    email_key            TEXT NOT NULL UNIQUE,      -- lower(email): one person, one means (R15)
    name                 TEXT NOT NULL,
    level                TEXT NOT NULL,
    type                 TEXT NOT NULL,
    second_factor        TEXT,
    phone                TEXT,
    subscription         TEXT NOT NULL,
    status               TEXT NOT NULL,
    activation_deadline  TEXT,
    contract_start       TEXT,
    pending_kind         TEXT,
    pending_level        TEXT,
    pending_kvk          TEXT,
    pending_role         TEXT,
    pending_subscription TEXT,
    pending_second_factor TEXT,
    pending_phone        TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS means_tax ON means(id) WHERE type = 'belastingdienst';
CREATE INDEX IF NOT EXISTS means_activation ON means(activation_deadline) WHERE status = 'wachten_op_activatie';

CREATE TABLE IF NOT EXISTS memberships (
    kvk           TEXT NOT NULL REFERENCES organisations(kvk) ON DELETE CASCADE,
    means_id      TEXT NOT NULL REFERENCES means(id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    terminates_on TEXT,
    PRIMARY KEY (kvk, means_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_means ON memberships(means_id, kvk);
CREATE INDEX IF NOT EXISTS memberships_role ON memberships(kvk, role, means_id);
CREATE INDEX IF NOT EXISTS memberships_termination ON memberships(terminates_on) WHERE terminates_on IS NOT NULL;

CREATE TABLE IF NOT EXISTS services (
    uuid            TEXT PRIMARY KEY,
    key             TEXT NOT NULL,
    provider        TEXT NOT NULL,
    name            TEXT NOT NULL,
    level           TEXT NOT NULL,
    belastingdienst INTEGER NOT NULL DEFAULT 0,
    general         INTEGER NOT NULL DEFAULT 0,
    example         INTEGER NOT NULL DEFAULT 0,
    bundled         INTEGER NOT NULL DEFAULT 0,
    added_seq       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The primary key (kvk, means_id, service) is also the index for listing an organisation's authorisations.
CREATE TABLE IF NOT EXISTS authorisations (
    kvk      TEXT NOT NULL,
    means_id TEXT NOT NULL,
    service  TEXT NOT NULL REFERENCES services(uuid),
    end_date TEXT NOT NULL,
    PRIMARY KEY (kvk, means_id, service),
    FOREIGN KEY (kvk, means_id) REFERENCES memberships(kvk, means_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS authorisations_end ON authorisations(end_date);

CREATE TABLE IF NOT EXISTS chains (
    kvk              TEXT NOT NULL REFERENCES organisations(kvk) ON DELETE CASCADE,
    intermediary_kvk TEXT NOT NULL,
    name             TEXT,
    services         TEXT NOT NULL,                 -- JSON object: service UUID -> its end date (R18)
    end_date         TEXT NOT NULL,                 -- the earliest of them (what the clock looks for)
    PRIMARY KEY (kvk, intermediary_kvk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chains_end ON chains(end_date);

CREATE TABLE IF NOT EXISTS tokens (
    hash       TEXT PRIMARY KEY,                    -- sha256 of the token, never the token itself
    means_id   TEXT NOT NULL REFERENCES means(id) ON DELETE CASCADE,
    read_only  INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_means ON tokens(means_id);

CREATE TABLE IF NOT EXISTS idempotency (
    token_hash TEXT NOT NULL,
    key        TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    status     INTEGER NOT NULL,
    headers    TEXT NOT NULL,                       -- JSON list of [name, value]
    body       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (token_hash, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kvk             TEXT,
    at              TEXT NOT NULL,
    today           TEXT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT,
    outcome         TEXT NOT NULL,
    code            TEXT,
    idempotency_key TEXT,
    detail          TEXT
);
CREATE INDEX IF NOT EXISTS events_kvk ON events(kvk, id);

CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                             -- JSON
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS request_counts (
    method TEXT NOT NULL,
    route  TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (method, route)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    count INTEGER NOT NULL
) WITHOUT ROWID;
"""

_MEANS_COLUMNS = ("id, email, name, level, type, second_factor, phone, subscription, status, activation_deadline, "
                  "contract_start, pending_kind, pending_level, pending_kvk, pending_role, pending_subscription, "
                  "pending_second_factor, pending_phone")
_M_COLUMNS = ", ".join("m." + c.strip() for c in _MEANS_COLUMNS.split(","))
_N_MEANS = 18
_UPSERT_MEANS = (
    "INSERT INTO means (id, email, email_key, name, level, type, second_factor, phone, subscription, status, "
    "activation_deadline, contract_start, pending_kind, pending_level, pending_kvk, pending_role, "
    "pending_subscription, pending_second_factor, pending_phone) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET email = excluded.email, email_key = excluded.email_key, name = excluded.name, "
    "level = excluded.level, type = excluded.type, second_factor = excluded.second_factor, phone = excluded.phone, "
    "subscription = excluded.subscription, status = excluded.status, "
    "activation_deadline = excluded.activation_deadline, contract_start = excluded.contract_start, "
    "pending_kind = excluded.pending_kind, pending_level = excluded.pending_level, pending_kvk = excluded.pending_kvk, "
    "pending_role = excluded.pending_role, pending_subscription = excluded.pending_subscription, "
    "pending_second_factor = excluded.pending_second_factor, pending_phone = excluded.pending_phone")


# ------------------------------------------------------------------------------------------ conversions
def _d(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value is not None else None


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


#: Stored values -> enum members: a dict lookup where `Level(value)` is an Enum call (~0.5 us), five per means
#: read; a page of the means list reads 500.
_LEVEL, _TYPE, _FACTOR, _SUBSCRIPTION, _STATUS, _ROLE = (
    {member.value: member for member in enum} for enum in (Level, MeansType, SecondFactorType, Subscription, Status,
                                                            Role))


def _means_from_row(row: Sequence[Any]) -> Means:
    pending = None
    if row[11] is not None:
        pending = Pending(PendingKind(row[11]), level=Level(row[12]) if row[12] else None, kvk=row[13],
                          role=Role(row[14]) if row[14] else None,
                          subscription=Subscription(row[15]) if row[15] else None,
                          second_factor=SecondFactorType(row[16]) if row[16] else None, phone=row[17])
    return Means(id=row[0], email=row[1], name=row[2], level=_LEVEL[row[3]], type=_TYPE[row[4]],
                 second_factor=_FACTOR[row[5]] if row[5] else None, phone=row[6],
                 subscription=_SUBSCRIPTION[row[7]], status=_STATUS[row[8]], activation_deadline=_d(row[9]),
                 contract_start=_d(row[10]), pending=pending)


def _means_to_row(m: Means) -> tuple[Any, ...]:
    p = m.pending
    return (m.id, m.email, m.email.lower(), m.name, m.level.value, m.type.value,
            m.second_factor.value if m.second_factor else None, m.phone, m.subscription.value, m.status.value,
            _iso(m.activation_deadline), _iso(m.contract_start),
            p.kind.value if p else None, p.level.value if p and p.level else None, p.kvk if p else None,
            p.role.value if p and p.role else None, p.subscription.value if p and p.subscription else None,
            p.second_factor.value if p and p.second_factor else None, p.phone if p else None)


def _membership_from(role: str, terminates_on: str | None) -> Membership:
    return Membership(_ROLE[role], _d(terminates_on))


def _chain_from_row(row: Sequence[Any]) -> Chain:
    return Chain(intermediary_kvk=row[0], name=row[1],
                 ends={uuid: dt.date.fromisoformat(end) for uuid, end in json.loads(row[2]).items()})


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: Seconds to wait for another process's lock on the database before giving up (the env var lets tests wait less).
LOCK_TIMEOUT_ENV = "RECONCILER_SANDBOX_LOCK_TIMEOUT"
_DEFAULT_LOCK_TIMEOUT = 30.0


_MAX_LOCK_TIMEOUT = 86400.0


class SandboxSetupError(Exception):
    """The sandbox cannot start for a reason the user fixes (the database path, a setting): one line, exit 1."""


class LockTimeoutInvalid(SandboxSetupError):
    """RECONCILER_SANDBOX_LOCK_TIMEOUT is not a number of seconds in range: refused, not silently replaced."""

    def __init__(self, raw: str) -> None:
        super().__init__(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds from 0 to {_MAX_LOCK_TIMEOUT:g}; "
                         f"set it to e.g. {_DEFAULT_LOCK_TIMEOUT:g}, or unset it for the default")


def lock_timeout() -> float:
    """Seconds to wait for another process's lock: the env var, else 30; `inf`, `1e400`, `abc` are refused."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return _DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise LockTimeoutInvalid(raw) from None
    if not 0.0 <= value <= _MAX_LOCK_TIMEOUT:        # also inf and nan
        raise LockTimeoutInvalid(raw)
    return value


class SandboxLocked(sqlite3.OperationalError):
    """Another process held the database's lock longer than the timeout: a user's situation, said in one line."""

    def __init__(self, path: str, waited: float) -> None:
        super().__init__(f"the sandbox database {path} is locked by another process (waited {waited:g} s); "
                         "try again when it is done")


class SandboxUnusable(SandboxSetupError):
    """The path does not hold a sandbox database this version can use (not SQLite, a directory or device, another
    program's database, a newer schema): a user's situation, said in one line with what to do."""

    def __init__(self, path: str, why: str, todo: str = "give the path of a sandbox database reconciler made, or "
                                                        "of a new file (it is created)") -> None:
        super().__init__(f"the sandbox database {path} cannot be used: {why}; {todo}")


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def hash_token(token: str) -> str:
    """Tokens are stored only as SHA-256: a copied database file grants nothing."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------------- result types
@dataclass(frozen=True, slots=True)
class TokenInfo:
    means_id: str
    read_only: bool
    token_hash: str


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    method: str
    path: str
    body_hash: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class MeansEntry:
    """A means as listed in one organisation: its role there and all organisations it is linked to."""

    means: Means
    membership: Membership | None
    organisations: list[str]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass
class SweepReport:
    """What moving the clock did (R5 activations, R9 authorisations, R18 chains, R14 terminations)."""

    activations_expired: int = 0
    authorisations_expired: int = 0
    chains_expired: int = 0
    memberships_terminated: int = 0
    means_deleted: int = 0
    organisations_deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _TxCache:
    """Rows prefetched in bulk for the current transaction (bulk requests), so the rules' per-means View
    calls do not each cost a query. Cleared by every write and at the end of the transaction."""

    means: dict[str, Means | None] = field(default_factory=dict)
    memberships: dict[tuple[str, str], Membership | None] = field(default_factory=dict)
    authorisations: dict[tuple[str, str], dict[str, dt.date]] = field(default_factory=dict)
    #: organisations found (never their absence: an organisation is created outside `apply`); a change asks for
    #: its organisation three times (the acting admin's check, the rules' own, the answer)
    orgs: dict[str, OrgInfo] = field(default_factory=dict)

    def clear(self) -> None:
        self.means.clear()
        self.memberships.clear()
        self.authorisations.clear()
        self.orgs.clear()


# ================================================================================================= store
class SandboxStore:
    """The sandbox's SQLite database. Implements `reconciler.domain.rules.View` by point queries.

    One connection per store, guarded by a re-entrant lock: a request runs one transaction without awaiting
    inside it, so a single connection serves an asyncio server without interleaving; other processes on the
    same file are serialised by SQLite (WAL, `BEGIN IMMEDIATE`, busy timeout).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._depth = 0
        self._write = False
        self._today: dt.date | None = None
        self._cache = _TxCache()
        #: Organisations' revisions read in the current transaction, kept through its writes (`_bump` raises them,
        #: deleting an organisation forgets it): a change reads its organisation's revision before (If-Match) and
        #: after (its answer), and its organisation's row; one query instead of three.
        self._revisions: dict[str, int] = {}
        self._catalogue: Catalogue | None = None
        self._services_by_uuid: dict[str, Service] = {}
        self._catalogue_version: int = -1

    # ------------------------------------------------------------------------------- connection, schema
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                self._check_path()
            timeout = lock_timeout()
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
            except sqlite3.Error as exc:
                raise SandboxUnusable(self.path, str(exc)) from None
            try:
                conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                self._create_schema(conn)
            except sqlite3.OperationalError as exc:
                conn.close()
                if _is_locked(exc):
                    raise SandboxLocked(self.path, timeout) from None
                raise SandboxUnusable(self.path, str(exc)) from None
            except sqlite3.DatabaseError as exc:       # not SQLite at all: "file is not a database"
                conn.close()
                raise SandboxUnusable(self.path, f"it is not a SQLite database ({exc})") from None
            except SandboxUnusable:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _check_path(self) -> None:
        """A directory or a device (/dev/null, /dev/zero) is no database file; the parent directory is made."""
        path = Path(self.path)
        if path.is_dir():
            raise SandboxUnusable(self.path, "it is a directory", "give the path of a file in it, e.g. "
                                  f"{path / 'sandbox.db'}")
        if path.exists() and not path.is_file():
            raise SandboxUnusable(self.path, "it is not a regular file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxUnusable(self.path, f"cannot create its directory {path.parent} "
                                  f"({exc.strerror or exc})", "give a path in a directory you can write") from None

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Created on first use; the bundled catalogue is (re)seeded so a newer package adds its services."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                     "AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 4")]
                if tables:          # another program's database: never add the sandbox's tables to it
                    raise SandboxUnusable(self.path, "it is another program's SQLite database (tables "
                                          f"{', '.join(tables)}), not a sandbox database",
                                          "give the path of a sandbox database, or of a new file (it is created)")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
            while version in _MIGRATIONS:
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            if version != SCHEMA_VERSION:
                raise SandboxUnusable(self.path, f"its schema {version} is not {SCHEMA_VERSION}, the one this "
                                      "reconciler knows (made by a newer version?)",
                                      "use the reconciler version that made it, or a new file")
            rows = [(s.uuid, s.key, s.provider, s.name, s.level.value, int(s.belastingdienst), int(s.general),
                     int(s.example)) for s in bundled_catalogue()]
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO services (uuid, key, provider, name, level, belastingdienst, "
                             "general, example, bundled) VALUES (?,?,?,?,?,?,?,?,1)", rows)
            if conn.total_changes != before:
                self._bump_catalogue_version(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:     # BEGIN itself can fail (not a database): nothing to roll back then
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        return self._connection()

    # ------------------------------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self, write: bool = False) -> Iterator["SandboxStore"]:
        """One transaction (BEGIN IMMEDIATE when it writes); nested calls join the outer one.

        Before it starts, the time effects of the sandbox's today are applied if the clock moved since they
        last were (also when the clock follows the real date and a day has passed).
        """
        with self._lock:
            conn = self._connection()
            if self._depth:
                if write and not self._write:
                    raise RuntimeError("a write inside a read transaction")
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            today, swept = self._begin(conn, write=write)
            if swept != today:
                if not write:                   # a read cannot sweep: a write transaction does, then the read
                    self._end(conn, commit=True)
                    today, swept = self._begin(conn, write=True)
                try:
                    if swept != today:
                        self._today = today
                        self._sweep(today)
                except BaseException:
                    self._end(conn, commit=False)
                    raise
                if not write:
                    self._end(conn, commit=True)
                    today, swept = self._begin(conn, write=False)
            self._today = today
            try:
                yield self
            except BaseException:
                self._end(conn, commit=False)
                raise
            self._end(conn, commit=True)

    def _begin(self, conn: sqlite3.Connection, write: bool) -> tuple[dt.date, dt.date | None]:
        """Starts a transaction; returns the sandbox's today and the day whose time effects were last applied,
        read with the catalogue's version in one query (a change's transaction is a dozen short statements)."""
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise SandboxLocked(self.path, lock_timeout()) from None
            raise
        self._depth = 1
        self._write = write
        self._cache.clear()
        self._revisions.clear()
        values = dict(conn.execute("SELECT key, value FROM settings WHERE key IN ('clock', 'swept', "
                                   "'catalogue_version')").fetchall())
        self._refresh_catalogue(conn, json.loads(values["catalogue_version"]) if "catalogue_version" in values else 0)
        return self._clock_from(values)

    def _end(self, conn: sqlite3.Connection, commit: bool) -> None:
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            self._depth = 0
            self._write = False
            self._today = None
            self._cache.clear()
            self._revisions.clear()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a write transaction: what the block writes is undone if it raises (the transaction goes on, to
        record the refusal), and so is what this store remembers of the transaction."""
        conn = self._require_tx(write=True)
        conn.execute("SAVEPOINT work")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO work")
            conn.execute("RELEASE work")
            self._cache.clear()
            self._revisions.clear()
            raise
        conn.execute("RELEASE work")

    def _require_tx(self, write: bool = False) -> sqlite3.Connection:
        if not self._depth or (write and not self._write):
            raise RuntimeError("store access outside a (write) transaction")
        assert self._conn is not None
        return self._conn

    # ------------------------------------------------------------------------------------------- settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction(write=True):
            self._put_setting(key, value)

    def _put_setting(self, key: str, value: Any) -> None:
        self._require_tx(write=True).execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)))

    # -------------------------------------------------------------------------------------------- clock
    @classmethod
    def _clock_state(cls, conn: sqlite3.Connection) -> tuple[dt.date, dt.date | None]:
        """(today, the day whose time effects were last applied)."""
        return cls._clock_from(dict(conn.execute("SELECT key, value FROM settings WHERE key IN ('clock', 'swept')")
                                    .fetchall()))

    @staticmethod
    def _clock_from(values: dict[str, str]) -> tuple[dt.date, dt.date | None]:
        clock = json.loads(values["clock"]) if "clock" in values else None
        swept = json.loads(values["swept"]) if "swept" in values else None
        today = dt.date.fromisoformat(clock) if clock else dt.date.today()
        return today, dt.date.fromisoformat(swept) if swept else None

    @property
    def today(self) -> dt.date:
        """The sandbox's today: a date fixed with the clock controls, or else the real date."""
        if self._today is not None:
            return self._today
        with self._lock:
            return self._clock_state(self._connection())[0]

    def clock(self) -> tuple[dt.date, bool]:
        """(today, whether it is fixed by the controls rather than following the real date)."""
        with self.transaction():
            return self.today, self.get_setting("clock") is not None

    def set_clock(self, today: dt.date) -> SweepReport:
        """Fix the sandbox's today and apply what that day brings (an earlier date undoes nothing); refused
        (422) beyond LATEST_TODAY, where five years ahead (R9) would leave the calendar."""
        if today > LATEST_TODAY:
            raise Invalid("invalid", f"the sandbox clock goes up to {LATEST_TODAY.isoformat()}, not "
                                     f"{today.isoformat()}: end dates lie up to five years after today (R9)")
        with self.transaction(write=True):
            self._put_setting("clock", today.isoformat())
            self._today = today
            return self._sweep(today)

    def advance_clock(self, days: int) -> SweepReport:
        with self.transaction(write=True):
            if days > (LATEST_TODAY - self.today).days:
                raise Invalid("invalid", f"advancing {days} days from {self.today.isoformat()} passes "
                                         f"{LATEST_TODAY.isoformat()}, the latest day the sandbox clock goes to")
            return self.set_clock(self.today + dt.timedelta(days=days))

    def _sweep(self, today: dt.date) -> SweepReport:
        """Time effects up to `today`, as the rules have them (`rules.pass_time`): R5 activation deadlines, R9/R18
        end dates, R14 scheduled terminations. The queries here only find what may be due (with the dates that
        decide); the revision of each touched organisation goes up once."""
        conn = self._require_tx(write=True)
        day = today.isoformat()
        due = rules.Due(
            activations=[r[0] for r in conn.execute(
                "SELECT id FROM means WHERE status = 'wachten_op_activatie' AND activation_deadline < ? ORDER BY id",
                (day,))],
            authorisations=[(k, m, u, dt.date.fromisoformat(e)) for k, m, u, e in conn.execute(
                "SELECT kvk, means_id, service, end_date FROM authorisations WHERE end_date <= ? "
                "ORDER BY kvk, means_id, service", (day,))],
            chains=[(k, i, uuid, dt.date.fromisoformat(end)) for k, i, ends in conn.execute(
                "SELECT kvk, intermediary_kvk, services FROM chains WHERE end_date <= ? ORDER BY kvk, "
                "intermediary_kvk", (day,)) for uuid, end in sorted(json.loads(ends).items())],
            terminations=[(k, m, dt.date.fromisoformat(e)) for k, m, e in conn.execute(
                "SELECT kvk, means_id, terminates_on FROM memberships WHERE terminates_on IS NOT NULL "
                "AND terminates_on <= ? ORDER BY kvk, means_id", (day,))])
        report = SweepReport()
        touched: set[str] = set()
        events: list[tuple[str | None, str, str]] = []

        def chain_ended(kvk: str, ikvk: str, left: frozenset[str]) -> None:
            before = self.chain(kvk, ikvk)
            for uuid_ in sorted(before.services - left) if before else []:
                report.chains_expired += 1
                events.append((kvk, "chain_expired", f"{ikvk}/{uuid_}"))

        def write(event: str, effects: list[Effect]) -> None:
            for kind, run in _runs(effects):
                if kind is DeleteAuthorisation:     # the bulk of a sweep (R9): one pass over the run, no match each
                    report.authorisations_expired += len(run)
                    events.extend([(e.kvk, event, f"{e.means_id}/{e.service}") for e in run])
                    continue
                for effect in run:
                    self._sweep_event(effect, event, report, events, chain_ended)
            touched.update(self.apply(effects, bump=False))

        rules.pass_time(self, today, due, write)
        organisations = {k for k, e, _ in events if e == "organisation_deleted"}
        self._bump(touched - organisations)
        self._put_setting("swept", day)
        at = _now()
        conn.executemany("INSERT INTO events (kvk, at, today, actor, action, target, outcome) "
                         "VALUES (?, ?, ?, 'clock', ?, ?, 'ok')", ((k, at, day, a, t) for k, a, t in events))
        self._cache.clear()
        return report

    def _sweep_event(self, effect: Effect, event: str, report: SweepReport,
                     events: list[tuple[str | None, str, str]], chain_ended: Callable[[str, str, frozenset[str]], None]
                     ) -> None:
        """What one of the calendar's effects (other than an authorisation's end) counts and records."""
        match effect:
            case PutMeans(means=means):                 # an activation lapsed (R5)
                report.activations_expired += 1
                events.extend((kvk, event, means.id) for kvk in sorted(self.memberships_of(means.id)))
            case PutChain(kvk=kvk, chain=chain):            # some of its services ended (R18)
                chain_ended(kvk, chain.intermediary_kvk, chain.services)
            case DeleteChain(kvk=kvk, intermediary_kvk=ikvk):   # its last ended
                chain_ended(kvk, ikvk, frozenset())
            case DeleteMembership(kvk=kvk, means_id=mid):
                report.memberships_terminated += 1
                events.append((kvk, event, mid))
            case DeleteMeans(means_id=mid):
                report.means_deleted += 1
                events.append((None, "means_deleted", mid))
            case DeleteOrganisation(kvk=kvk):
                report.organisations_deleted += 1
                events.append((kvk, "organisation_deleted", kvk))

    # ------------------------------------------------------------------------------------- the catalogue
    def _refresh_catalogue(self, conn: sqlite3.Connection, version: int | None = None) -> None:
        """The catalogue again when its stored version (`version`, or read now) is not the one held."""
        if version is None:
            row = conn.execute("SELECT value FROM settings WHERE key = 'catalogue_version'").fetchone()
            version = json.loads(row[0]) if row else 0
        if version == self._catalogue_version and self._catalogue is not None:
            return
        services = []
        for r in conn.execute("SELECT uuid, key, provider, name, level, belastingdienst, general, example "
                              "FROM services ORDER BY bundled DESC, added_seq, uuid"):
            services.append(Service(key=r[1], uuid=r[0], provider=r[2], name=r[3], level=Level(r[4]),
                                    belastingdienst=bool(r[5]), general=bool(r[6]), example=bool(r[7])))
        self._catalogue = Catalogue(services)       # a later entry with a bundled key replaces the bundled one
        self._services_by_uuid = {s.uuid: s for s in services}
        self._catalogue_version = version

    @staticmethod
    def _bump_catalogue_version(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO settings (key, value) VALUES ('catalogue_version', '1') ON CONFLICT(key) DO "
                     "UPDATE SET value = CAST(value AS INTEGER) + 1")

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue the rules check services against (reloaded when another writer changed it)."""
        if self._catalogue is None or not self._depth:
            with self.transaction():
                pass
        assert self._catalogue is not None
        return self._catalogue

    def service(self, uuid_: str) -> Service | None:
        """Any service ever registered under the UUID, also one whose key a later catalogue took over."""
        self.catalogue  # noqa: B018 - refreshes the cache outside a transaction
        return self._services_by_uuid.get(uuid_.lower())

    def add_services(self, services: Iterable[Service]) -> int:
        """Add (or update by UUID) services; an entry with an existing key takes that key over."""
        rows = list(services)
        with self.transaction(write=True):
            conn = self.conn
            seq = conn.execute("SELECT coalesce(max(added_seq), 0) FROM services").fetchone()[0]
            conn.executemany(
                "INSERT INTO services (uuid, key, provider, name, level, belastingdienst, general, example, bundled, "
                "added_seq) VALUES (?,?,?,?,?,?,?,?,0,?) ON CONFLICT(uuid) DO UPDATE SET key = excluded.key, "
                "provider = excluded.provider, name = excluded.name, level = excluded.level, "
                "belastingdienst = excluded.belastingdienst, general = excluded.general, "
                "example = excluded.example, bundled = 0, added_seq = excluded.added_seq",
                [(s.uuid.lower(), s.key, s.provider, s.name, s.level.value, int(s.belastingdienst), int(s.general),
                  int(s.example), seq + i + 1) for i, s in enumerate(rows)])
            self._bump_catalogue_version(conn)
            self._refresh_catalogue(conn)
        return len(rows)

    def list_services(self, limit: int, cursor: str | None) -> Page:
        after = decode_cursor(cursor, "services", (str,))
        items = [s for s in self.catalogue if after is None or s.key > after[0]]
        page, next_cursor = page_of(items, limit, "services", lambda s: [s.key])
        return Page(page, next_cursor)

    # ------------------------------------------------------------------------------------ the View protocol
    def org(self, kvk: str) -> OrgInfo | None:
        found = self._cache.orgs.get(kvk)
        if found is not None and self._depth:
            return found
        row = self.conn.execute("SELECT kvk, name, branch_number, revision FROM organisations WHERE kvk = ?",
                                (kvk,)).fetchone()
        if row is None:
            return None
        found = OrgInfo(row[0], row[1], row[2])
        if self._depth:
            self._cache.orgs[kvk] = found
            self._revisions[kvk] = int(row[3])
        return found

    def get_means(self, means_id: str) -> Means | None:
        if means_id in self._cache.means:
            return self._cache.means[means_id]
        row = self.conn.execute(f"SELECT {_MEANS_COLUMNS} FROM means WHERE id = ?", (means_id,)).fetchone()
        return _means_from_row(row) if row else None

    def means_by_email(self, email: str) -> Means | None:
        row = self.conn.execute(f"SELECT {_MEANS_COLUMNS} FROM means WHERE email_key = ?", (email.lower(),)).fetchone()
        return _means_from_row(row) if row else None

    def membership(self, kvk: str, means_id: str) -> Membership | None:
        if (kvk, means_id) in self._cache.memberships:
            return self._cache.memberships[(kvk, means_id)]
        row = self.conn.execute("SELECT role, terminates_on FROM memberships WHERE kvk = ? AND means_id = ?",
                                (kvk, means_id)).fetchone()
        return _membership_from(*row) if row else None

    def memberships_of(self, means_id: str) -> dict[str, Membership]:
        rows = self.conn.execute("SELECT kvk, role, terminates_on FROM memberships WHERE means_id = ? ORDER BY kvk",
                                 (means_id,))
        return {kvk: _membership_from(role, term) for kvk, role, term in rows}

    def members(self, kvk: str) -> dict[str, Membership]:
        rows = self.conn.execute("SELECT means_id, role, terminates_on FROM memberships WHERE kvk = ?", (kvk,))
        return {mid: _membership_from(role, term) for mid, role, term in rows}

    def member_count(self, kvk: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM memberships WHERE kvk = ?", (kvk,)).fetchone()[0]

    def active_admins(self, kvk: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT ms.means_id FROM memberships ms JOIN means m ON m.id = ms.means_id "
            "WHERE ms.kvk = ? AND ms.role = 'beheerder' AND m.status = 'actief' ORDER BY ms.means_id", (kvk,))
        return [r[0] for r in rows]

    def tax_means(self, kvk: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT m.id FROM means m INDEXED BY means_tax WHERE m.type = 'belastingdienst' AND (EXISTS "
            "(SELECT 1 FROM memberships ms WHERE ms.kvk = ? AND ms.means_id = m.id) OR "
            "(m.pending_kind = 'link' AND m.pending_kvk = ?)) ORDER BY m.id", (kvk, kvk))
        return [r[0] for r in rows]

    def authorisations_of(self, kvk: str, means_id: str) -> dict[str, dt.date]:
        cached = self._cache.authorisations.get((kvk, means_id))
        if cached is not None:
            return dict(cached)
        rows = self.conn.execute("SELECT service, end_date FROM authorisations WHERE kvk = ? AND means_id = ?",
                                 (kvk, means_id))
        return {svc: dt.date.fromisoformat(end) for svc, end in rows}

    def authorisation(self, kvk: str, means_id: str, service: str) -> dt.date | None:
        cached = self._cache.authorisations.get((kvk, means_id))
        if cached is not None:
            return cached.get(service)
        row = self.conn.execute("SELECT end_date FROM authorisations WHERE kvk = ? AND means_id = ? AND service = ?",
                                (kvk, means_id, service)).fetchone()
        return dt.date.fromisoformat(row[0]) if row else None

    def chain(self, kvk: str, intermediary_kvk: str) -> Chain | None:
        row = self.conn.execute("SELECT intermediary_kvk, name, services, end_date FROM chains WHERE kvk = ? AND "
                                "intermediary_kvk = ?", (kvk, intermediary_kvk)).fetchone()
        return _chain_from_row(row) if row else None

    # -------------------------------------------------------------------------------- bulk prefetching
    def prefetch_members(self, kvk: str, means_ids: Sequence[str], *, authorisations: bool = False) -> None:
        """Load the named means (and their membership and, optionally, authorisations in `kvk`) with one
        query per 900 ids, so the rules' per-means View calls in a bulk request read memory."""
        self._require_tx()
        ids = sorted(set(means_ids))
        for part in _chunks(ids):
            found: set[str] = set()
            rows = self.conn.execute(
                f"SELECT {_M_COLUMNS}, ms.role, ms.terminates_on FROM means m LEFT JOIN memberships ms "
                f"ON ms.means_id = m.id AND ms.kvk = ? WHERE m.id IN ({_marks(len(part))})", (kvk, *part))
            for row in rows:
                found.add(row[0])
                self._cache.means[row[0]] = _means_from_row(row)
                role, term = row[_N_MEANS], row[_N_MEANS + 1]
                self._cache.memberships[(kvk, row[0])] = _membership_from(role, term) if role else None
            for mid in part:
                if mid not in found:
                    self._cache.means[mid] = None
                    self._cache.memberships[(kvk, mid)] = None
            if authorisations:
                held: dict[str, dict[str, dt.date]] = {mid: {} for mid in part}
                for mid, svc, end in self.conn.execute(
                        f"SELECT means_id, service, end_date FROM authorisations WHERE kvk = ? AND means_id IN "
                        f"({_marks(len(part))})", (kvk, *part)):
                    held[mid][svc] = dt.date.fromisoformat(end)
                for mid, services in held.items():
                    self._cache.authorisations[(kvk, mid)] = services

    def count_existing_authorisations(self, kvk: str, means_ids: Sequence[str], services: Sequence[str]) -> int:
        """How many of the pairs means x services exist (a grant's `updated` count)."""
        ids, svcs = sorted(set(means_ids)), sorted(set(services))
        total = 0
        for part in _chunks(ids, 500):
            total += self.conn.execute(
                f"SELECT count(*) FROM authorisations WHERE kvk = ? AND means_id IN ({_marks(len(part))}) "
                f"AND service IN ({_marks(len(svcs))})", (kvk, *part, *svcs)).fetchone()[0]
        return int(total)

    # ------------------------------------------------------------------------------------------- writes
    def apply(self, effects: Sequence[Effect], context_kvk: str | None = None, *, bump: bool = True) -> set[str]:
        """Write effects in order (runs of one type with executemany) and raise the revision of every touched
        organisation by one (unless `bump` is false: the caller raises them once for several calls). A means
        change touches `context_kvk` (the organisation the request was made in) or, without one (supplier,
        holder), every organisation the means is linked to. Returns the touched organisations that still exist."""
        conn = self._require_tx(write=True)
        self._cache.clear()
        touched: set[str] = set()
        deleted_orgs: set[str] = set()
        for kind, run in _runs(effects):
            if kind is PutMeans:
                conn.executemany(_UPSERT_MEANS, [_means_to_row(e.means) for e in run])
                touched |= self._means_touch([e.means.id for e in run], context_kvk)
            elif kind is DeleteMeans:
                ids = [e.means_id for e in run]
                touched |= self._means_touch(ids, context_kvk)
                conn.executemany("DELETE FROM means WHERE id = ?", [(i,) for i in ids])
            elif kind is PutMembership:
                conn.executemany(
                    "INSERT INTO memberships (kvk, means_id, role, terminates_on) VALUES (?,?,?,?) "
                    "ON CONFLICT(kvk, means_id) DO UPDATE SET role = excluded.role, "
                    "terminates_on = excluded.terminates_on",
                    [(e.kvk, e.means_id, e.membership.role.value, _iso(e.membership.terminates_on)) for e in run])
                touched |= {e.kvk for e in run}
            elif kind is DeleteMembership:
                pairs = [(e.kvk, e.means_id) for e in run]
                conn.executemany("DELETE FROM authorisations WHERE kvk = ? AND means_id = ?", pairs)
                conn.executemany("DELETE FROM memberships WHERE kvk = ? AND means_id = ?", pairs)
                touched |= {e.kvk for e in run}
            elif kind is PutAuthorisation:
                conn.executemany(
                    "INSERT INTO authorisations (kvk, means_id, service, end_date) VALUES (?,?,?,?) "
                    "ON CONFLICT(kvk, means_id, service) DO UPDATE SET end_date = excluded.end_date",
                    [(e.kvk, e.means_id, e.service, e.end_date.isoformat()) for e in run])
                touched |= {e.kvk for e in run}
            elif kind is DeleteAuthorisation:
                conn.executemany("DELETE FROM authorisations WHERE kvk = ? AND means_id = ? AND service = ?",
                                 ((e.kvk, e.means_id, e.service) for e in run))
                touched |= {e.kvk for e in run}
            elif kind is PutChain:
                conn.executemany(
                    "INSERT INTO chains (kvk, intermediary_kvk, name, services, end_date) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(kvk, intermediary_kvk) DO UPDATE SET name = excluded.name, "
                    "services = excluded.services, end_date = excluded.end_date",
                    [(e.kvk, e.chain.intermediary_kvk, e.chain.name,
                      json.dumps({u: end.isoformat() for u, end in sorted(e.chain.ends.items())}),
                      min(e.chain.ends.values()).isoformat()) for e in run])
                touched |= {e.kvk for e in run}
            elif kind is DeleteChain:
                conn.executemany("DELETE FROM chains WHERE kvk = ? AND intermediary_kvk = ?",
                                 [(e.kvk, e.intermediary_kvk) for e in run])
                touched |= {e.kvk for e in run}
            elif kind is DeleteOrganisation:
                kvks = [e.kvk for e in run]
                conn.executemany("DELETE FROM organisations WHERE kvk = ?", [(k,) for k in kvks])
                for kvk in kvks:
                    self._revisions.pop(kvk, None)
                deleted_orgs |= set(kvks)
            else:  # pragma: no cover - Effect is a closed union
                raise TypeError(f"unknown effect {kind!r}")
        touched -= deleted_orgs
        if bump:
            self._bump(touched)
        return touched

    def _means_touch(self, means_ids: Sequence[str], context_kvk: str | None) -> set[str]:
        if context_kvk is not None:
            return {context_kvk}
        return {kvk for _, kvk in self._memberships_of_many(means_ids)}

    def _memberships_of_many(self, means_ids: Sequence[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for part in _chunks(list(means_ids)):
            out.extend(self.conn.execute(f"SELECT means_id, kvk FROM memberships WHERE means_id IN "
                                         f"({_marks(len(part))}) ORDER BY means_id, kvk", part).fetchall())
        return out

    def _bump(self, kvks: Iterable[str]) -> None:
        kvks = sorted(kvks)
        self.conn.executemany("UPDATE organisations SET revision = revision + 1 WHERE kvk = ?", [(k,) for k in kvks])
        for kvk in kvks:
            if kvk in self._revisions:
                self._revisions[kvk] += 1

    def revision(self, kvk: str) -> int | None:
        if self._depth and kvk in self._revisions:
            return self._revisions[kvk]
        row = self.conn.execute("SELECT revision FROM organisations WHERE kvk = ?", (kvk,)).fetchone()
        if row is None:
            return None
        if self._depth:
            self._revisions[kvk] = int(row[0])
        return int(row[0])

    # ------------------------------------------------------------------------------------- organisations
    def create_organisation(self, kvk: str, name: str, admin_email: str, admin_name: str, level: Level, *,
                            branch_number: str | None = None, second_factor: SecondFactorType | None = None,
                            phone: str | None = None,
                            subscription: Subscription = Subscription.ONE_YEAR) -> tuple[str, str]:
        """The supplier registers an organisation after the paper contract (R16) with one active admin: the
        existing means of that e-mail address if there is one (R15). Returns (means id, token).

        The first admin is checked by the rules (`rules.check_first_admin`: R1, R2, R13, R19); a new admin at
        EH2+/EH3 without a second factor gets one (`rules.first_admin_second_factor`). A new admin's means has
        `subscription` (what the config declares for that person, so a first plan does not find it different);
        an existing means keeps its own."""
        with self.transaction(write=True):
            if self.org(kvk) is not None:
                raise Refusal("already-exists", f"organisation {kvk} already exists")
            existing = self.means_by_email(admin_email)
            second_factor = rules.first_admin_second_factor(level, second_factor, phone)
            rules.check_first_admin(admin_email, existing, level, second_factor, phone)
            if existing is not None:
                admin_id = existing.id
            else:
                admin_id = str(uuid.uuid4())
                self.conn.execute(_UPSERT_MEANS, _means_to_row(Means(
                    id=admin_id, email=admin_email, name=admin_name, level=level, second_factor=second_factor,
                    phone=phone, subscription=subscription, status=Status.ACTIEF, contract_start=self.today)))
            self.conn.execute("INSERT INTO organisations (kvk, name, branch_number, revision, created_at) "
                              "VALUES (?, ?, ?, 1, ?)", (kvk, name, branch_number, _now()))
            self._revisions.pop(kvk, None)
            self.conn.execute("INSERT INTO memberships (kvk, means_id, role) VALUES (?, ?, 'beheerder')",
                              (kvk, admin_id))
            token = self.create_token(admin_id)
            self.audit(kvk, "supplier", "create_organisation", admin_id, "ok")
            return admin_id, token

    def organisation_row(self, kvk: str) -> tuple[str, str, str | None, int] | None:
        row = self.conn.execute("SELECT kvk, name, branch_number, revision FROM organisations WHERE kvk = ?",
                                (kvk,)).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def organisations_of(self, means_id: str, limit: int, cursor: str | None) -> Page:
        """Rows (kvk, name, branch_number, revision) of the organisations the means is linked to, by kvk."""
        after = decode_cursor(cursor, "organisations", (str,))
        rows = self.conn.execute(
            "SELECT o.kvk, o.name, o.branch_number, o.revision FROM memberships ms JOIN organisations o "
            "ON o.kvk = ms.kvk WHERE ms.means_id = ? AND ms.kvk > ? ORDER BY ms.kvk LIMIT ?",
            (means_id, after[0] if after else "", limit + 1)).fetchall()
        return Page(*page_of(rows, limit, "organisations", lambda r: [r[0]]))

    # --------------------------------------------------------------------------------------------- lists
    def list_means(self, kvk: str, limit: int, cursor: str | None) -> Page:
        """Means of `kvk` by id, as `MeansEntry`s (see `list_means_rows`)."""
        page = self.list_means_rows(kvk, limit, cursor)
        return Page([MeansEntry(_means_from_row(row), _membership_from(row[_N_MEANS], row[_N_MEANS + 1]), orgs)
                     for row, orgs in page.items], page.next_cursor)

    def list_means_rows(self, kvk: str, limit: int, cursor: str | None) -> Page:
        """Means of `kvk` by id as stored: items (row, organisations), the row's columns `_MEANS_COLUMNS` then the
        role and termination date in `kvk` (`serialise.means_row_dict` writes it). Two queries per page (the
        page, and the organisations of its means); no domain objects, which were half of serving the list."""
        after = decode_cursor(cursor, "means", (str,))
        rows = self.conn.execute(
            f"SELECT {_M_COLUMNS}, ms.role, ms.terminates_on FROM memberships ms JOIN means m ON m.id = ms.means_id "
            "WHERE ms.kvk = ? AND ms.means_id > ? ORDER BY ms.means_id LIMIT ?",
            (kvk, after[0] if after else "", limit + 1)).fetchall()
        rows, next_cursor = page_of(rows, limit, "means", lambda r: [r[0]])
        orgs: dict[str, list[str]] = {}
        for mid, org in self._memberships_of_many([r[0] for r in rows]):
            orgs.setdefault(mid, []).append(org)
        return Page([(row, orgs.get(row[0], [])) for row in rows], next_cursor)

    def means_entry(self, kvk: str, means_id: str) -> MeansEntry | None:
        means, membership = self.get_means(means_id), self.membership(kvk, means_id)
        if means is None or membership is None:
            return None
        return MeansEntry(means, membership, list(self.memberships_of(means_id)))

    def all_means(self, *, status: str | None = None, kvk: str | None = None, email: str | None = None
                  ) -> list[tuple[Means, dict[str, Membership]]]:
        """Every means (filtered) with all its memberships, for the sandbox controls; two queries."""
        where, args = [], []
        if status:
            where.append("m.status = ?")
            args.append(status)
        if email:
            where.append("m.email_key = ?")
            args.append(email.lower())
        if kvk:
            where.append("EXISTS (SELECT 1 FROM memberships x WHERE x.means_id = m.id AND x.kvk = ?)")
            args.append(kvk)
        sql = f"SELECT {_M_COLUMNS} FROM means m" + (" WHERE " + " AND ".join(where) if where else "")
        means = [_means_from_row(r) for r in self.conn.execute(sql + " ORDER BY m.email_key", args)]
        members: dict[str, dict[str, Membership]] = {m.id: {} for m in means}
        if len(means) <= _CHUNK:        # a few (one e-mail): their memberships only, not the whole table
            rows = self.conn.execute("SELECT kvk, means_id, role, terminates_on FROM memberships WHERE means_id IN "
                                     f"({_marks(len(means))}) ORDER BY kvk", list(members))
        else:
            rows = self.conn.execute("SELECT kvk, means_id, role, terminates_on FROM memberships ORDER BY kvk")
        for org, mid, role, term in rows:
            if mid in members:
                members[mid][org] = _membership_from(role, term)
        return [(m, members[m.id]) for m in means]

    def list_authorisations(self, kvk: str, limit: int, cursor: str | None, means_id: str | None = None) -> Page:
        """Rows (means_id, email, service, end_date) by (means_id, service). The e-mails are read once per means
        of the page (about 50 for 500 rows), not joined to every row: a third of the page's SQL."""
        after = decode_cursor(cursor, "authorisations", (str, str)) or ["", ""]
        sql = "SELECT means_id, service, end_date FROM authorisations WHERE kvk = ? AND (means_id, service) > (?, ?)"
        args: list[Any] = [kvk, after[0], after[1]]
        if means_id is not None:
            sql += " AND means_id = ?"
            args.append(means_id)
        rows = self.conn.execute(sql + " ORDER BY means_id, service LIMIT ?", (*args, limit + 1)).fetchall()
        rows, next_cursor = page_of(rows, limit, "authorisations", lambda r: [r[0], r[1]])
        ids = list(dict.fromkeys(r[0] for r in rows))
        emails: dict[str, str] = {}
        for part in _chunks(ids):
            emails.update(self.conn.execute(f"SELECT id, email FROM means WHERE id IN ({_marks(len(part))})", part))
        # an authorisation always has its means (foreign keys); one without would be left out, as a join would
        return Page([(mid, emails[mid], service, end) for mid, service, end in rows if mid in emails], next_cursor)

    def list_chains(self, kvk: str, limit: int, cursor: str | None) -> Page:
        after = decode_cursor(cursor, "chains", (str,))
        rows = self.conn.execute(
            "SELECT intermediary_kvk, name, services, end_date FROM chains WHERE kvk = ? AND intermediary_kvk > ? "
            "ORDER BY intermediary_kvk LIMIT ?", (kvk, after[0] if after else "", limit + 1)).fetchall()
        rows, next_cursor = page_of(rows, limit, "chains", lambda r: [r[0]])
        return Page([_chain_from_row(r) for r in rows], next_cursor)

    def list_events(self, kvk: str, limit: int, cursor: str | None) -> Page:
        after = decode_cursor(cursor, "events", (int,))
        rows = self.conn.execute(
            "SELECT id, at, today, actor, action, target, outcome, code, idempotency_key, detail FROM events "
            "WHERE kvk = ? AND id > ? ORDER BY id LIMIT ?", (kvk, after[0] if after else 0, limit + 1)).fetchall()
        return Page(*page_of(rows, limit, "events", lambda r: [r[0]]))

    # -------------------------------------------------------------------------------------------- tokens
    def create_token(self, means_id: str, read_only: bool = False) -> str:
        """A fresh token for the means; only its hash is kept."""
        with self.transaction(write=True):
            if self.get_means(means_id) is None:
                raise Missing("not-found", f"means {means_id} does not exist")
            token = secrets.token_urlsafe(32)
            self.conn.execute("INSERT INTO tokens (hash, means_id, read_only, created_at) VALUES (?, ?, ?, ?)",
                              (hash_token(token), means_id, int(read_only), _now()))
            return token

    def token(self, token: str) -> TokenInfo | None:
        digest = hash_token(token)
        with self._lock:
            row = self.conn.execute("SELECT means_id, read_only FROM tokens WHERE hash = ?", (digest,)).fetchone()
        return TokenInfo(row[0], bool(row[1]), digest) if row else None

    # ----------------------------------------------------------------------------------------- idempotency
    def idempotency_get(self, token_hash: str, key: str) -> IdempotencyRecord | None:
        row = self.conn.execute("SELECT method, path, body_hash, status, headers, body FROM idempotency WHERE "
                                "token_hash = ? AND key = ?", (token_hash, key)).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(row[0], row[1], row[2], int(row[3]), [(h[0], h[1]) for h in json.loads(row[4])],
                                 bytes(row[5]))

    def idempotency_put(self, token_hash: str, key: str, record: IdempotencyRecord) -> None:
        self._require_tx(write=True).execute(
            "INSERT INTO idempotency (token_hash, key, method, path, body_hash, status, headers, body, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)", (token_hash, key, record.method, record.path, record.body_hash,
                                           record.status, json.dumps(record.headers), record.body, _now()))

    # ----------------------------------------------------------------------------------------------- audit
    def audit(self, kvk: str | None, actor: str, action: str, target: str | None, outcome: str, *,
              code: str | None = None, idempotency_key: str | None = None, detail: str | None = None) -> None:
        self._require_tx(write=True).execute(
            "INSERT INTO events (kvk, at, today, actor, action, target, outcome, code, idempotency_key, detail) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)", (kvk, _now(), self.today.isoformat(), actor, action, target, outcome,
                                             code, idempotency_key, detail))

    # ------------------------------------------------------------------------------------------- counters
    def count_request(self, method: str, route: str) -> None:
        """Count one request: a single statement, committed by itself (autocommit), as every /v1 request is
        counted before it runs. A transaction of its own (BEGIN IMMEDIATE, the clock's and the catalogue's
        checks, COMMIT: five statements) was a fifth of the sandbox's SQL per change; inside a caller's write
        transaction it joins that one, as before."""
        sql = ("INSERT INTO request_counts (method, route, count) VALUES (?, ?, 1) "
               "ON CONFLICT(method, route) DO UPDATE SET count = count + 1")
        with self._lock:
            if self._depth:
                self._require_tx(write=True).execute(sql, (method, route))
                return
            try:
                self._connection().execute(sql, (method, route))
            except sqlite3.OperationalError as exc:
                if _is_locked(exc):
                    raise SandboxLocked(self.path, lock_timeout()) from None
                raise

    def increment(self, name: str, by: int = 1) -> None:
        self._require_tx(write=True).execute(
            "INSERT INTO counters (name, count) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET count = count + ?",
            (name, by, by))

    def counters(self) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
        with self.transaction():
            requests = [(r[0], r[1], int(r[2])) for r in self.conn.execute(
                "SELECT method, route, count FROM request_counts ORDER BY route, method")]
            named = {r[0]: int(r[1]) for r in self.conn.execute("SELECT name, count FROM counters ORDER BY name")}
            return requests, named

    def reset_counters(self) -> None:
        with self.transaction(write=True):
            self.conn.execute("DELETE FROM request_counts")
            self.conn.execute("DELETE FROM counters")


def _runs(effects: Sequence[Effect]) -> Iterator[tuple[type, list[Any]]]:
    """Consecutive effects of one type, in order: batching them keeps the order of the effects meaningful."""
    run: list[Any] = []
    kind: type | None = None
    for effect in effects:
        if type(effect) is not kind and run:
            yield kind, run  # type: ignore[misc]
            run = []
        kind = type(effect)
        run.append(effect)
    if run:
        yield kind, run  # type: ignore[misc]
