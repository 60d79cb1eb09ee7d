"""The planner at scale; prints clearly labelled numbers (not a test).

(a) PURE planning: 50 organisations x 200 users x 10 authorisations (100,000 authorisations). The matching
    backend state is built directly as a `World`; the config is generated as 50 YAML files, about 1% of it is
    changed, and the files are loaded the way `reconciler plan` loads them (`load_paths` + `desired_org`).
    Timed: `make_plan` only (target < 0.2 s, best of --repeat). Reported: planned writes (API calls) against the bulk groups and
    the naive model (one write per changed object), and the peak memory of planning (tracemalloc) and of
    the process (RSS).
(b) END TO END: one organisation of 10,000 users x 10 authorisations written straight into an embedded
    sandbox database (the rules' effects through `SandboxStore.apply`, one transaction), about 1% of its
    config changed, then `reconciler plan FILE --backend sandbox:DB` in a subprocess. Reported: wall time
    (target < 2.5 s), the /v1 read requests the sandbox counted (pages, not one per object), the child's
    peak RSS (target < 150 MB), and where the time goes: the same steps in one process, each against its
    target (issue #15: imports, load + check, open the session, read, make_plan).
(peer) with --peer: ../shared/bench/octodns_peer.sh (octoDNS planning as many objects, 1% changed) right after
    (b), in the same process tree; prints the ratios of wall time (target <= 1/30) and peak RSS (<= 1/4), the
    figures to quote on a noisy machine.

Run: python benchmarks/plan_scale.py [--orgs 50] [--users 200] [--big-users 10000] [--skip-a] [--skip-b] [--peer]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.config.loader import load_paths
from reconciler.config.models import Role, SecondFactorType
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.state import (
    Means, Membership, OrgInfo, OrgState, PutAuthorisation, PutMeans, PutMembership, Status, World,
)
from reconciler.plan.desired import desired_org
from reconciler.plan.model import Action, Plan
from reconciler.plan.planner import PlanInput, make_plan

TODAY = dt.date(2026, 11, 21)
CAT = bundled_catalogue()
#: Services an active EH3 regular user may hold: not Belastingdienst (R13), at most EH3 (R8). 15 of them.
SERVICES = sorted(s.key for s in CAT if not s.belastingdienst and s.level <= Level.EH3)
PROFILES = 4                     # groups of 10 services; user i gets group i % PROFILES
PER_USER = 10
FIXED = dt.date(2028, 3, 15)     # the fixed end date of two services of every group
ROLLING_END = TODAY + dt.timedelta(days=3 * 365)   # a rolling authorisation far from its renewal window

#: The phase targets of issue #15 (seconds), by the breakdown's names; the whole command: WALL_TARGET, RSS_TARGET.
PHASE_TARGETS = {
    "imports": 0.3,
    "load + check the config": 0.5,
    "open the session (acting admin, token, clock)": 0.2,
    "read the backend (all pages)": 0.8,
    "make_plan": 0.3,
}
WALL_TARGET, RSS_TARGET = 2.5, 150
PURE_TARGET = 0.2                # (a): make_plan of 100,000 authorisations over 50 organisations
#: Against the peer (octoDNS planning as many objects, 1% changed, measured right after (b)): at most these.
PEER_WALL_RATIO, PEER_RSS_RATIO = 1 / 30, 1 / 4
#: The peer's script, beside the checkout (../shared/bench), as CI lays it out.
PEER_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "octodns_peer.sh"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024       # Linux: kilobytes


def _child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ================================================================================== the organisation model
def profile(p: int) -> list[tuple[str, Any]]:
    """Group `p`: 10 services (a rotation of SERVICES), the first two until FIXED, the rest rolling."""
    keys = [SERVICES[(p * 3 + k) % len(SERVICES)] for k in range(PER_USER)]
    return [(key, FIXED if k < 2 else "rolling") for k, key in enumerate(keys)]


def extra_service(p: int) -> str:
    """A service group `p` does not hold yet (the one a config change adds)."""
    held = {k for k, _ in profile(p)}
    return next(s for s in SERVICES if s not in held)


@dataclass
class OrgSpec:
    kvk: str
    users: int
    email_prefix: str

    def email(self, i: int) -> str:
        return f"{self.email_prefix}{i:05d}@acme.nl"

    def means_id(self, i: int) -> str:
        return f"{self.kvk}-{i:05d}"


def actual_authorisations(p: int) -> dict[str, dt.date]:
    return {CAT[key].uuid: (ROLLING_END if until == "rolling" else until) for key, until in profile(p)}


def build_world(specs: list[OrgSpec]) -> tuple[World, dict[str, str]]:
    """The backend state that matches the unchanged config: user 0 is the acting beheerder, all EH3, active."""
    world = World(CAT)
    actors: dict[str, str] = {}
    per_profile = [actual_authorisations(p) for p in range(PROFILES)]
    for spec in specs:
        state = OrgState(OrgInfo(spec.kvk, f"Org {spec.kvk}"), revision=1)
        for i in range(spec.users):
            mid = spec.means_id(i)
            world.means[mid] = Means(id=mid, email=spec.email(i), name=f"User {i}", level=Level.EH3,
                                     second_factor=SecondFactorType.OTP, status=Status.ACTIEF,
                                     contract_start=dt.date(2025, 1, 1))
            state.members[mid] = Membership(Role.BEHEERDER if i == 0 else Role.GEBRUIKER)
            state.authorisations[mid] = dict(per_profile[i % PROFILES])
        world.orgs[spec.kvk] = state
        actors[spec.kvk] = spec.means_id(0)
    return world, actors


@dataclass
class Edit:
    """What the config changes relative to the backend (about 1% of it)."""

    removed: tuple[int, ...] = ()          # users left out of the config (prune: terminated)
    switched: tuple[int, ...] = ()         # users moved to the next group (grants and revokes)
    promoted: tuple[int, ...] = ()         # gebruiker -> beheerder
    new_users: int = 0                     # people not in the backend (requested)
    group_gains_service: bool = False      # group 0 gets one more service (one bulk grant for its users)
    group_redated: bool = False            # group 1's fixed end date moves (one bulk re-date for its users)


def edit_for(k: int, users: int) -> Edit:
    """Organisation k's edit, about 1% of its users: one user removed (even k) or moved to another group (odd
    k), one promoted (every fourth), one new (every other); every tenth organisation also gives group 0 one
    more service, and every tenth moves group 1's fixed end date: one config line that changes a quarter of
    its users' authorisations (one bulk step, R10)."""
    mid = users // 2
    return Edit(removed=(mid,) if k % 2 == 0 else (), switched=(mid + 1,) if k % 2 else (),
                promoted=(mid + 2,) if k % 4 == 0 else (), new_users=1 if k % 2 == 0 else 0,
                group_gains_service=k % 10 == 0, group_redated=k % 10 == 5)


def org_yaml(spec: OrgSpec, edit: Edit) -> str:
    """The organisation file after `edit`; groups carry the authorisations, as a real estate would write it."""
    lines = ["version: 1", "organisation:", f'  kvk: "{spec.kvk}"', f"  name: Org {spec.kvk}",
             "policy:", "  prune: true", '  max_removals: "10%"', "groups:"]
    for p in range(PROFILES):
        auths = profile(p)
        if p == 0 and edit.group_gains_service:
            auths = auths + [(extra_service(0), "rolling")]
        lines.append(f"  g{p}:")
        lines.append("    authorisations:")
        for key, until in auths:
            if p == 1 and edit.group_redated and until != "rolling":
                until = FIXED + dt.timedelta(days=30)
            lines.append(f"      - {{service: {key}, until: {until if until == 'rolling' else until.isoformat()}}}")
    lines.append("users:")
    removed = set(edit.removed)
    for i in range(spec.users):
        if i in removed:
            continue
        role = "beheerder" if i == 0 or i in edit.promoted else "gebruiker"
        group = (i + 1) % PROFILES if i in edit.switched else i % PROFILES
        lines.append(f"  - {{email: {spec.email(i)}, name: User {i}, role: {role}, level: EH3, "
                     f"second_factor: {{type: otp}}, groups: [g{group}]}}")
    for n in range(edit.new_users):
        lines.append(f"  - {{email: new{n}-{spec.kvk}@acme.nl, name: New {n}, role: gebruiker, level: EH3, "
                     f"second_factor: {{type: otp}}, groups: [g{n % PROFILES}]}}")
    return "\n".join(lines) + "\n"


# ========================================================================================= plan numbers
def writes_report(plan: Plan) -> dict[str, int]:
    """Planned writes (one API call per change) against the naive model: one write per changed object."""
    bulk = [c for c in plan.changes if c.action in (Action.GRANT, Action.SET_END_DATE, Action.REVOKE)]
    pairs = sum(len(c.params["means_ids"]) * len(c.params["services"]) for c in bulk)
    others = len(plan.changes) - len(bulk)
    return {"planned_writes": len(plan.changes), "bulk_groups": len(bulk), "pairs_in_bulk_groups": pairs,
            "other_writes": others, "naive_writes": pairs + others}


def print_plan_numbers(plan: Plan, indent: str = "  ") -> None:
    w = writes_report(plan)
    s = plan.summary()
    print(f"{indent}planned writes (API calls):        {w['planned_writes']:>7}")
    print(f"{indent}  of which bulk authorisation steps: {w['bulk_groups']:>5} covering {w['pairs_in_bulk_groups']} "
          f"user x service pairs (R10)")
    print(f"{indent}  other writes (means, roles, ...):  {w['other_writes']:>5}")
    print(f"{indent}naive model (one write per object): {w['naive_writes']:>6}   "
          f"-> {w['naive_writes'] / max(1, w['planned_writes']):.1f}x fewer writes")
    print(f"{indent}summary: +{s['add']} ~{s['change']} -{s['remove']}, deferred {s['deferred']}, "
          f"manual {s['manual']}, unmanaged {s['unmanaged']}")


# ========================================================================================== (a) pure
def bench_pure(orgs: int, users: int, repeat: int) -> bool:
    print(f"(a) PURE planning: {orgs} organisations x {users} users x {PER_USER} authorisations")
    specs = [OrgSpec(f"{20000000 + k:08d}", users, f"o{k:02d}u") for k in range(orgs)]
    start = time.perf_counter()
    world, actors = build_world(specs)
    t_world = time.perf_counter() - start
    n_auths = sum(len(a) for s in world.orgs.values() for a in s.authorisations.values())
    print(f"  backend state (World, built directly): {len(world.means)} means, {n_auths} authorisations, "
          f"{t_world:.2f} s")
    edits = [edit_for(k, users) for k in range(orgs)]
    with tempfile.TemporaryDirectory(prefix="plan-scale-") as tmp:
        paths = []
        for spec, edit in zip(specs, edits):
            path = Path(tmp) / f"org-{spec.kvk}.yaml"
            path.write_text(org_yaml(spec, edit), encoding="utf-8")
            paths.append(str(path))
        size = sum(Path(p).stat().st_size for p in paths)
        start = time.perf_counter()
        result = load_paths(paths, TODAY)
        t_load = time.perf_counter() - start
        if not result.ok:
            print("  the generated config is invalid:", [d.render() for d in result.errors][:5])
            return False
        start = time.perf_counter()
        desired = [desired_org(org) for org in result.orgs]
        t_desired = time.perf_counter() - start
    changed_users = sum(len(e.removed) + len(e.switched) + len(e.promoted) + e.new_users for e in edits)
    print(f"  config: {len(paths)} files, {size / 1e6:.1f} MB; load_paths {t_load:.2f} s, "
          f"desired_org {t_desired:.2f} s")
    print(f"  config change: {changed_users} of {orgs * users} users ({100 * changed_users / (orgs * users):.1f}%) "
          f"removed/switched/promoted/new, {sum(e.group_gains_service for e in edits)} groups gain a service, "
          f"{sum(e.group_redated for e in edits)} groups re-dated")
    data = PlanInput(desired=desired, actual=world, today=TODAY, actors=actors,
                     revisions={kvk: s.revision for kvk, s in world.orgs.items()})
    make_plan(data)                                   # warm-up (imports, caches); not measured
    times = []
    plan = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        plan = make_plan(data)
        times.append(time.perf_counter() - start)
    assert plan is not None
    gc.collect()
    tracemalloc.start()
    make_plan(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best, median = min(times), statistics.median(times)
    ok = best < PURE_TARGET
    print(f"  make_plan: best {best:.3f} s, median {median:.3f} s of {repeat}   (target < {PURE_TARGET} s)  "
          f"{'OK' if ok else 'OVER TARGET'}")
    print_plan_numbers(plan)
    print(f"  peak memory of one make_plan (tracemalloc): {peak / 1e6:.0f} MB;  process peak RSS: {_rss_mb():.0f} MB")
    return ok


# ====================================================================================== (b) end to end
def seed_sandbox(db: Path, spec: OrgSpec) -> tuple[int, float]:
    """The organisation in the sandbox store as the backend would hold it; returns (authorisations, seconds)."""
    from reconciler.backend.sandbox.store import SandboxStore

    store = SandboxStore(db)
    try:
        store.set_clock(TODAY)
        start = time.perf_counter()
        admin_id, _token = store.create_organisation(spec.kvk, f"Org {spec.kvk}", spec.email(0), "User 0", Level.EH3,
                                                     second_factor=SecondFactorType.OTP)
        ids = {0: admin_id}
        effects: list[Any] = []
        for i in range(1, spec.users):
            mid = spec.means_id(i)
            ids[i] = mid
            effects.append(PutMeans(Means(id=mid, email=spec.email(i), name=f"User {i}", level=Level.EH3,
                                          second_factor=SecondFactorType.OTP, status=Status.ACTIEF,
                                          contract_start=dt.date(2025, 1, 1))))
        effects += [PutMembership(spec.kvk, ids[i], Membership(Role.GEBRUIKER)) for i in range(1, spec.users)]
        count = 0
        per_profile = [actual_authorisations(p) for p in range(PROFILES)]
        for i in range(spec.users):
            for uuid, end in per_profile[i % PROFILES].items():
                effects.append(PutAuthorisation(spec.kvk, ids[i], uuid, end))
                count += 1
        with store.transaction(write=True):
            store.apply(effects)
        seconds = time.perf_counter() - start
        store.reset_counters()
    finally:
        store.close()
    return count, seconds


def read_counters(db: Path) -> list[tuple[str, str, int]]:
    from reconciler.backend.sandbox.store import SandboxStore

    store = SandboxStore(db)
    try:
        requests, _ = store.counters()
    finally:
        store.close()
    return requests


_PHASES = r"""
import datetime as dt, sys, time
t0 = time.perf_counter()
import anyio
from reconciler.backend.session import open_session
from reconciler.pipeline import load_valid
from reconciler.domain.catalogue import Catalogue
from reconciler.plan.desired import desired_org
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.backend.read import read_state
from reconciler.render.text import render_text
times = {"imports": time.perf_counter() - t0}
path, backend = sys.argv[1], sys.argv[2]

async def main():
    t = time.perf_counter()
    result = load_valid((path,), dt.date.today())
    times["load + check the config"] = time.perf_counter() - t
    t = time.perf_counter()
    async with open_session(backend, result.orgs) as session:
        times["open the session (acting admin, token, clock)"] = time.perf_counter() - t
        t = time.perf_counter()
        kvks = [org.config.organisation.kvk for org in result.orgs]
        actual = await read_state(session.clients, kvks, Catalogue([s for o in result.orgs for s in o.catalogue]))
        times["read the backend (all pages)"] = time.perf_counter() - t
        t = time.perf_counter()
        desired = [desired_org(org) for org in result.orgs]
        times["desired_org"] = time.perf_counter() - t
        t = time.perf_counter()
        plan = make_plan(PlanInput(desired=desired, actual=actual.world, today=session.today, actors=session.actors,
                                   revisions=actual.revisions))
        times["make_plan"] = time.perf_counter() - t
    t = time.perf_counter()
    render_text(plan)
    times["render the text"] = time.perf_counter() - t

anyio.run(main)
for name, seconds in times.items():
    print(f"{seconds:.3f}\t{name}")
"""


def run_cli(path: Path, db: Path, out: Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [sys.executable, "-m", "reconciler", "plan", str(path), "--backend", f"sandbox:{db}"]
    if out is not None:
        cmd += ["--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc, time.perf_counter() - start


def set_clock(db: Path, day: dt.date) -> None:
    from reconciler.backend.sandbox.store import SandboxStore

    store = SandboxStore(db)
    try:
        store.set_clock(day)
        store.reset_counters()
    finally:
        store.close()


@dataclass(frozen=True)
class Measured:
    ok: bool
    wall: float = 0.0           # seconds, process start to exit
    rss: float = 0.0            # MB, the process's peak


def run_peer(objects: int, script: Path) -> tuple[float, float] | None:
    """The peer's wall seconds and peak RSS (MB), from the last line of its script (`octodns: X s wall, Y KB
    peak`); None, with the reason printed, when it did not run."""
    import re

    if not script.exists():
        print(f"  peer: {script} not found (give --peer-script)")
        return None
    proc = subprocess.run(["bash", str(script), str(objects)], capture_output=True, text=True)
    found = re.search(r"octodns: ([0-9.]+) s wall, ([0-9]+) KB peak", proc.stdout + proc.stderr)
    if found is None:
        print(f"  peer: no figures in its output (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-500:]}")
        return None
    return float(found.group(1)), int(found.group(2)) / 1024


def print_peer(ours: Measured, objects: int, script: Path) -> bool:
    """Run the peer right after (b), in the same process tree, and print the two ratios: the figures to quote,
    since both sides saw the same machine within a minute."""
    print(f"(peer) octoDNS planning {objects} records, 1% changed, right after (b): {script}")
    if ours.wall <= 0 or ours.rss <= 0:
        print("  (b) did not run to the end: no ratio")
        return False
    peer = run_peer(objects, script)
    if peer is None:
        return False
    wall, rss = peer
    wall_ratio, rss_ratio = ours.wall / wall, ours.rss / rss
    ok = wall_ratio <= PEER_WALL_RATIO and rss_ratio <= PEER_RSS_RATIO
    print(f"  peer: {wall:.2f} s wall, {rss:.0f} MB peak RSS")
    print(f"  ratio, reconciler / peer: wall 1/{1 / wall_ratio:.1f} (target <= 1/{1 / PEER_WALL_RATIO:.0f}) "
          f"{'OK' if wall_ratio <= PEER_WALL_RATIO else 'OVER TARGET'};  peak RSS 1/{1 / rss_ratio:.1f} "
          f"(target <= 1/{1 / PEER_RSS_RATIO:.0f}) {'OK' if rss_ratio <= PEER_RSS_RATIO else 'OVER TARGET'}")
    return ok


def compile_package() -> str:
    """Write reconciler's bytecode, as installing the package does (pip compiles a wheel's modules): an editable
    checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source on every run, which
    no installed user pays. Returns what was done, for the output."""
    import compileall
    import os

    import reconciler

    compileall.compile_dir(str(Path(reconciler.__file__).parent), quiet=1)
    unset = "" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ", as Python does itself here"
    return f"reconciler's bytecode written first (as an installed package has it{unset})"


def bench_end_to_end(users: int) -> Measured:
    spec = OrgSpec("30000000", users, "u")
    # about 1% of the users: 0.5% removed, 0.4% moved to another group, 0.1% new, one promoted
    edit = Edit(removed=tuple(range(100, 100 + users // 200)), switched=tuple(range(200, 200 + users // 250)),
                promoted=(300,), new_users=max(1, users // 1000))
    changed = len(edit.removed) + len(edit.switched) + len(edit.promoted) + edit.new_users
    real_today = dt.date.today()
    print(f"(b) END TO END: reconciler plan FILE --backend sandbox:DB, 1 organisation x {users} users x {PER_USER} "
          "authorisations")
    print(f"  {compile_package()}")
    with tempfile.TemporaryDirectory(prefix="plan-scale-e2e-") as tmp:
        db = Path(tmp) / "sandbox.db"
        auths, t_seed = seed_sandbox(db, spec)
        set_clock(db, real_today)              # the sandbox's today is the real one, as without `sandbox clock`
        path = Path(tmp) / "org.yaml"
        path.write_text(org_yaml(spec, edit), encoding="utf-8")
        print(f"  set up: {users} active means, {auths} authorisations in the store (one transaction) {t_seed:.2f} s; "
              f"database {db.stat().st_size / 1e6:.0f} MB; config {path.stat().st_size / 1e6:.1f} MB")
        print(f"  config change: {changed} of {users} users ({100 * changed / users:.1f}%) removed/moved to another "
              "group/promoted/new")
        out = Path(tmp) / "plan.json"
        proc, wall = run_cli(path, db, out)
        rss = _child_rss_mb()
        requests = read_counters(db)
        plan_json = out.read_text(encoding="utf-8") if out.exists() else ""
        # the same with the sandbox clock on another day than the real one: the CLI loads the config twice
        set_clock(db, real_today + dt.timedelta(days=1))
        proc2, wall2 = run_cli(path, db)
        set_clock(db, real_today)
        phases = subprocess.run([sys.executable, "-c", _PHASES, str(path), f"sandbox:{db}"], capture_output=True,
                                text=True)
    if proc.returncode not in (0, 2):
        print(f"  reconciler plan failed with exit {proc.returncode}:\n{proc.stderr[-2000:]}")
        return Measured(False)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    reads = [(m, r, n) for m, r, n in requests if m == "GET"]
    writes = [(m, r, n) for m, r, n in requests if m != "GET"]
    total_reads = sum(n for _, _, n in reads)
    objects = users + auths
    ok_time, ok_rss = wall < WALL_TARGET, rss < RSS_TARGET
    print(f"  wall time (subprocess, process start to exit): {wall:.2f} s   (target < {WALL_TARGET} s)  "
          f"{'OK' if ok_time else 'OVER TARGET'}")
    print(f"  exit code: {proc.returncode} (2: changes planned);  {summary}")
    print(f"  /v1 read requests counted by the sandbox: {total_reads} for {objects} objects "
          f"({objects / max(1, total_reads):.0f} objects per request)")
    for method, route, n in reads:
        print(f"      {method} {route}: {n}")
    if writes:
        print(f"  /v1 WRITE requests (a plan must make none): {writes}")
    print(f"  peak RSS of the reconciler process: {rss:.0f} MB   (target < {RSS_TARGET} MB)  "
          f"{'OK' if ok_rss else 'OVER TARGET'}")
    if plan_json:
        import json

        data = json.loads(plan_json)
        changes = [c for org in data.get("organisations", []) for c in org.get("changes", [])]
        bulk = [c for c in changes if c.get("action") in ("grant", "set_end_date", "revoke")]
        pairs = sum(len(c.get("params", {}).get("means_ids", [])) * len(c.get("params", {}).get("services", []))
                    for c in bulk) if bulk and "params" in bulk[0] else None
        line = f"  planned writes (plan --out JSON): {len(changes)}, of which bulk authorisation steps {len(bulk)}"
        print(line + (f" covering {pairs} pairs; naive model (one write per object) {pairs + len(changes) - len(bulk)}"
                      if pairs else ""))
    ok_phases = phases.returncode == 0
    if phases.returncode == 0:
        print("  where the time goes (the same steps in one process, timed separately):")
        for row in phases.stdout.strip().splitlines():
            seconds, name = row.split("\t")
            target = PHASE_TARGETS.get(name)
            verdict = "" if target is None else f"   (target < {target} s)  " + ("OK" if float(seconds) < target
                                                                               else "OVER TARGET")
            ok_phases = ok_phases and (target is None or float(seconds) < target)
            print(f"      {float(seconds):6.2f} s  {name}{verdict}")
    else:
        print(f"  (phase breakdown failed: {phases.stderr.strip().splitlines()[-1:]})")
    print(f"  with the sandbox clock on another day than the real date: {wall2:.2f} s, exit {proc2.returncode} "
          "(the config is loaded and checked twice: once for the real today, again for the backend's)")
    return Measured(ok_time and ok_rss and ok_phases and not writes, wall, rss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orgs", type=int, default=50)
    parser.add_argument("--users", type=int, default=200, help="users per organisation in (a)")
    parser.add_argument("--big-users", type=int, default=10_000, help="users of the one organisation in (b)")
    parser.add_argument("--repeat", type=int, default=5, help="timed make_plan runs in (a)")
    parser.add_argument("--skip-a", action="store_true")
    parser.add_argument("--skip-b", action="store_true")
    parser.add_argument("--peer", action="store_true",
                        help="after (b), run the peer (octoDNS, as many objects) and print the ratios of wall time "
                             "and peak RSS")
    parser.add_argument("--peer-script", type=Path, default=PEER_SCRIPT, help="the peer's script (default: %(default)s)")
    args = parser.parse_args(argv)
    ok = True
    if not args.skip_a:
        ok &= bench_pure(args.orgs, args.users, args.repeat)
        print()
    if not args.skip_b:
        measured = bench_end_to_end(args.big_users)
        ok &= measured.ok
        if args.peer:
            print()
            ok &= print_peer(measured, args.big_users * PER_USER, args.peer_script)
    print("within targets" if ok else "NOT within targets")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
