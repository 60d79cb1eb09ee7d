"""Domain objects and store rows as the API's JSON shapes (documented by `models.py`), built as plain dicts
because list endpoints return thousands of them and pydantic validation per item would dominate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reconciler.domain.catalogue import Service
from reconciler.domain.state import Chain, Means, Membership

from reconciler.backend.sandbox.store import MeansEntry, SandboxStore


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON: what every response body is, and what idempotent replays repeat byte for byte."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _means_fields(m: Means) -> dict[str, Any]:
    pending = None
    if m.pending is not None:
        pending = {"kind": m.pending.kind.value}
        if m.pending.level is not None:
            pending["level"] = m.pending.level.value
        if m.pending.kvk is not None:
            pending["kvk"] = m.pending.kvk
        if m.pending.role is not None:
            pending["role"] = m.pending.role.value
    return {
        "id": m.id, "email": m.email, "name": m.name, "level": m.level.value, "type": m.type.value,
        "status": m.status.value,
        "second_factor": {"type": m.second_factor.value, "phone": m.phone} if m.second_factor else None,
        "subscription": m.subscription.value,
        "activation_deadline": m.activation_deadline.isoformat() if m.activation_deadline else None,
        "contract_start": m.contract_start.isoformat() if m.contract_start else None,
        "pending": pending,
    }


def means_dict(entry: MeansEntry) -> dict[str, Any]:
    """A means as seen from one organisation (`role`, `terminates_on` are those there)."""
    m, ms = entry.means, entry.membership
    data = _means_fields(m)
    data["role"] = ms.role.value if ms else None
    data["terminates_on"] = ms.terminates_on.isoformat() if ms and ms.terminates_on else None
    data["organisations"] = entry.organisations
    return data


def means_row_dict(row: Sequence[Any], organisations: list[str]) -> dict[str, Any]:
    """`means_dict` of a stored row (`SandboxStore.list_means_rows`), without making the domain objects: the
    stored values are the wire's (enum values, ISO dates), so the same dict in the same key order (tested)."""
    pending = None
    if row[11] is not None:
        pending = {"kind": row[11]}
        if row[12]:
            pending["level"] = row[12]
        if row[13] is not None:
            pending["kvk"] = row[13]
        if row[14]:
            pending["role"] = row[14]
    return {
        "id": row[0], "email": row[1], "name": row[2], "level": row[3], "type": row[4], "status": row[8],
        "second_factor": {"type": row[5], "phone": row[6]} if row[5] else None, "subscription": row[7],
        "activation_deadline": row[9], "contract_start": row[10], "pending": pending,
        "role": row[18], "terminates_on": row[19], "organisations": organisations,
    }


def sandbox_means_dict(m: Means, memberships: dict[str, Membership]) -> dict[str, Any]:
    """A means with all its memberships, for the sandbox controls."""
    data = _means_fields(m)
    data["memberships"] = [{"kvk": kvk, "role": ms.role.value,
                            "terminates_on": ms.terminates_on.isoformat() if ms.terminates_on else None}
                           for kvk, ms in sorted(memberships.items())]
    data["organisations"] = sorted(memberships)
    return data


def authorisation_dicts(rows: Sequence[Sequence[Any]], store: SandboxStore) -> list[dict[str, Any]]:
    """Rows (means_id, email, service, end_date); each service's key looked up once per page, not per row."""
    keys = {service: known.key if (known := store.service(service)) else None for service in {r[2] for r in rows}}
    return [{"means_id": means_id, "email": email, "service": service, "service_key": keys[service],
             "end_date": end_date} for means_id, email, service, end_date in rows]


def chain_dict(chain: Chain) -> dict[str, Any]:
    return {"intermediary_kvk": chain.intermediary_kvk, "name": chain.name,
            "services": [{"service": uuid, "end_date": end.isoformat()} for uuid, end in sorted(chain.ends.items())]}


def service_dict(s: Service) -> dict[str, Any]:
    return {"uuid": s.uuid, "key": s.key, "provider": s.provider, "name": s.name, "level": s.level.value,
            "belastingdienst": s.belastingdienst, "general": s.general}


def event_dict(row: Sequence[Any]) -> dict[str, Any]:
    keys = ("id", "at", "today", "actor", "action", "target", "outcome", "code", "idempotency_key", "detail")
    return dict(zip(keys, row))


def organisation_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {"kvk": row[0], "name": row[1], "branch_number": row[2], "revision": row[3]}
