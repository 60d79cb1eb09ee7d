"""`--shard K/N`: run plan, apply or drift for one N-th of an estate (an accountant's thousands of clients)
as one job of a CI matrix or a Kubernetes indexed job. An organisation belongs to shard K when a stable hash
of its KvK number, modulo N, is K-1: the same split on every machine and every run, every organisation in
exactly one shard, and adding organisations moves no others.

Organisations that share a person (one means linked to several, R15) stay together: they are placed by the
smallest KvK among them. Split apart, one shard would not see the means the other holds and would plan to
buy it again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from reconciler.config.loader import LoadedOrg


@dataclass(frozen=True)
class Shard:
    index: int          # 1..count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, kvk: str) -> bool:
        digest = hashlib.sha256(kvk.strip().encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1


def parse_shard(text: str) -> Shard:
    """`K/N` with 1 <= K <= N; ValueError with what is allowed otherwise."""
    parts = text.strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a shard; write K/N, e.g. 2/8 (the second of eight)")
    index, count = int(parts[0]), int(parts[1])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"{text!r}: K must be between 1 and N (and N at least 1)")
    return Shard(index, count)


def pick_orgs(orgs: Sequence[LoadedOrg], shard: Shard | None) -> list[LoadedOrg]:
    """The organisation files of this shard, keeping organisations that share a person together."""
    if shard is None:
        return list(orgs)
    kvks = [org.config.organisation.kvk for org in orgs]
    parent = {k: k for k in kvks}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first_seen: dict[str, str] = {}
    for org in orgs:
        kvk = org.config.organisation.kvk
        for user in org.config.users:
            other = first_seen.setdefault(user.email.lower(), kvk)
            a, b = find(other), find(kvk)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [org for org in orgs if shard.holds(find(org.config.organisation.kvk))]
