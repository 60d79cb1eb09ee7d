"""`reconciler apply` at scale over loopback HTTP; prints clearly labelled numbers (not a test).

Set up (per run, on a fresh sandbox database): `--orgs` organisations sharing one acting admin (one API
token acts for all of them, as `BEHEER_API_TOKEN` does against a remote backend), written straight into the
store with `SandboxStore.apply` (one transaction), and one config file per organisation such that every
declared or undeclared user is exactly one change, and no two changes can be merged into one bulk step (R10):

   50%  grant        an active user gets one service with an end date no other user in its organisation has
   30%  set_end_date an active user's authorisation moves to a date no other user in its organisation has
    5%  change_role  gebruiker -> beheerder
    5%  change_phone a new mobile number (sms second factor)
    5%  terminate    an active user the config no longer declares (prune)
    5%  request      a new person (request_means; bought once, whatever the network does)

The sandbox app is served by uvicorn on 127.0.0.1 in a thread of this process, with the HTTP parser uvicorn
picks (httptools, a dependency, as `reconciler sandbox serve` asks for; h11 where it is not installed, e.g. an
older checkout run with its import blocked; the `served:` line names it); `reconciler plan DIR --out
plan.json` and `reconciler apply --plan plan.json --auto-approve -q` run as subprocesses against it, with the
token in BEHEER_API_TOKEN. Their peak RSS is taken from wait4(2) for each child separately.

Run 1, clean network: applied steps, wall time, changes per second, the /v1 requests the sandbox counted
(writes against the plan's own `api_calls`, and reads), the applying process's peak RSS; then a fresh plan
must be empty (converged) and every person must hold exactly one means.

"bound by:" says what limits the rate, measured over the steps alone: how the applying process and the
sandbox server's threads spent that time (on a CPU, waiting in the run queue for one, or asleep: /proc
schedstat), the CPU each spends per change, the share of the server's CPU inside the changes' transactions
(the rest is HTTP and checking the request), and what the audit log's two lines and the JSON of a request and
its answer cost per change (measured in this process before the run).
Run 2, the same on a fresh database with injected faults on /v1 (POST /sandbox/faults; default p_503 0.04,
p_429 0.03, p_drop 0.03, fixed seed; a drop commits, then cuts the connection): the same figures plus
retries (write requests counted minus steps done), answers replayed from the idempotency record, whether the
apply completed, and if it did not, `reconciler apply DIR --auto-approve` re-runs (faults still on) until a
fresh plan is empty; then no means may have been bought twice.

Run: python benchmarks/apply_scale.py [--changes 10000] [--orgs 8] [--concurrency 4] [--skip-faults]
     [--clean-runs N]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from reconciler.config.models import Role, SecondFactorType
from reconciler.domain import rules
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.state import Means, Membership, PutAuthorisation, PutMeans, PutMembership, Status

CAT = bundled_catalogue()
#: Services an active EH3 regular user may hold: not Belastingdienst (R13), at most EH3 (R8).
SERVICES = sorted(s.key for s in CAT if not s.belastingdienst and s.level <= Level.EH3)
ADMIN_EMAIL = "admin@bench.example"
ADMIN_NAME = "Bench Admin"
#: The mix: slot (i % 20) of a user decides its one change.
SLOTS = ["grant"] * 10 + ["set_end_date"] * 6 + ["change_role", "change_phone", "terminate", "request"]
FIRST_DATE_OFFSET = 30          # the earliest end date a change asks for: today + 30 days


# ============================================================================================ the model
@dataclass
class Org:
    index: int
    users: int                   # users other than the shared admin; each one change

    @property
    def kvk(self) -> str:
        return f"{40000000 + self.index:08d}"

    @property
    def name(self) -> str:
        return f"Bench Org {self.index:02d}"

    def email(self, i: int) -> str:
        return f"o{self.index:02d}u{i:05d}@bench.example"

    def means_id(self, i: int) -> str:
        return f"{self.kvk}-{i:05d}"

    @staticmethod
    def kind(i: int) -> str:
        return SLOTS[i % len(SLOTS)]


def dates_for(today: dt.date) -> tuple[dt.date, dt.date]:
    """(the end date every set_end_date user holds now, the latest date a change may ask for)."""
    held = rules.max_end_date(today)
    return held, held - dt.timedelta(days=1)


def wanted_end(today: dt.date, k: int) -> tuple[str, dt.date]:
    """The k-th authorisation change of an organisation: a (service, date) pair no other one has."""
    return SERVICES[k % len(SERVICES)], today + dt.timedelta(days=FIRST_DATE_OFFSET + k // len(SERVICES))


def capacity(today: dt.date) -> int:
    """The most users per organisation before the distinct (service, date) pairs run out."""
    _, last = dates_for(today)
    days = (last - today).days - FIRST_DATE_OFFSET
    return int(days * len(SERVICES) / 0.8)


def phone(org: Org, i: int, new: bool) -> str:
    return f"+316{'9' if new else '1'}{org.index:02d}{i:05d}"


def seed(db: Path, orgs: list[Org], today: dt.date) -> tuple[str, dict[str, int], float]:
    """The organisations in a fresh sandbox store; returns (the admin's token, counts, seconds)."""
    from reconciler.backend.sandbox.store import SandboxStore

    held_end, _ = dates_for(today)
    start = time.perf_counter()
    store = SandboxStore(db)
    counts: collections.Counter[str] = collections.Counter()
    token = ""
    try:
        for org in orgs:
            _, t = store.create_organisation(org.kvk, org.name, ADMIN_EMAIL, ADMIN_NAME, Level.EH3,
                                             second_factor=SecondFactorType.OTP)
            token = token or t
        effects: list[Any] = []
        for org in orgs:
            k = 0
            for i in range(org.users):
                kind = org.kind(i)
                if kind in ("grant", "set_end_date"):
                    service, _ = wanted_end(today, k)
                    k += 1
                if kind == "request":
                    continue                                   # a person the backend does not know yet
                mid = org.means_id(i)
                sms = kind == "change_phone"
                effects.append(PutMeans(Means(
                    id=mid, email=org.email(i), name=f"User {org.index}-{i}", level=Level.EH3,
                    second_factor=SecondFactorType.SMS if sms else SecondFactorType.OTP,
                    phone=phone(org, i, new=False) if sms else None, status=Status.ACTIEF,
                    contract_start=today - dt.timedelta(days=100))))
                effects.append(PutMembership(org.kvk, mid, Membership(Role.GEBRUIKER)))
                counts["means"] += 1
                if kind == "set_end_date":
                    effects.append(PutAuthorisation(org.kvk, mid, CAT[service].uuid, held_end))
                    counts["authorisations"] += 1
        with store.transaction(write=True):
            store.apply(effects)
        store.reset_counters()
    finally:
        store.close()
    return token, dict(counts), time.perf_counter() - start


def org_yaml(org: Org, today: dt.date) -> str:
    lines = ["version: 1", "organisation:", f'  kvk: "{org.kvk}"', f"  name: {org.name}", "policy:",
             "  prune: true", '  max_removals: "25%"', "users:",
             f"  - {{email: {ADMIN_EMAIL}, name: {ADMIN_NAME}, role: beheerder, level: EH3, "
             "second_factor: {type: otp}}"]
    k = 0
    for i in range(org.users):
        kind = org.kind(i)
        head = f"  - {{email: {org.email(i)}, name: User {org.index}-{i}, level: EH3, "
        if kind in ("grant", "set_end_date"):
            service, end = wanted_end(today, k)
            k += 1
            lines.append(head + "role: gebruiker, second_factor: {type: otp}, "
                                f"authorisations: [{{service: {service}, until: {end.isoformat()}}}]}}")
        elif kind == "change_role":
            lines.append(head + "role: beheerder, second_factor: {type: otp}}")
        elif kind == "change_phone":
            lines.append(head + f'role: gebruiker, second_factor: {{type: sms, phone: "{phone(org, i, new=True)}"}}}}')
        elif kind == "request":
            lines.append(head + "role: gebruiker, second_factor: {type: otp}}")
        # terminate: not declared
    return "\n".join(lines) + "\n"


# ========================================================================================== the server
class Served:
    """The sandbox app under uvicorn on 127.0.0.1 (a free port), in a daemon thread of this process."""

    def __init__(self, db: Path) -> None:
        from reconciler.backend.sandbox.app import create_app

        TxMeter.install()
        self.app = create_app(db)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then (otherwise every
        # keep-alive response can wait ~40 ms for a delayed ACK), as tests/backend/test_fault_survival.py does
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        try:                                   # as `reconciler sandbox serve` runs it (older checkouts: defaults)
            from reconciler.backend.sandbox.serve import uvicorn_options
            options = uvicorn_options()
        except ImportError:
            options = {"access_log": False}
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="critical", lifespan="on",
                                                    timeout_graceful_shutdown=2, **options))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="sandbox-uvicorn", daemon=True)
        # the /sandbox controls need the app's control token (random per app; it never leaves this process)
        self.control = httpx.Client(base_url=self.url, timeout=30.0,
                                    headers={"Sandbox-Control-Token": self.app.state.control_token})

    #: the HTTP parser uvicorn chose ("httptools" or "h11"), once a server has started
    parser = "?"

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise SystemExit("the sandbox server did not start")
            time.sleep(0.01)
        protocol = self.server.config.http_protocol_class.__name__
        Served.parser = "httptools" if "HttpTools" in protocol else "h11" if "H11" in protocol else protocol
        Served.parser += ", answers in one write" if "Coalesced" in protocol else ""
        print(f"  served: uvicorn with {Served.parser} on {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.control.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    # the /sandbox controls (the control token, never faulted)
    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 300:
            raise SystemExit(f"sandbox control {response.request.method} {response.request.url} failed: "
                             f"{response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def faults(self, **config: Any) -> dict[str, Any]:
        return self._ok(self.control.post("/sandbox/faults", json=config))  # type: ignore[no-any-return]

    def reset_counts(self) -> None:
        self._ok(self.control.delete("/sandbox/requests"))

    def counts(self) -> dict[str, Any]:
        return self._ok(self.control.get("/sandbox/requests"))  # type: ignore[no-any-return]

    def means(self, kvk: str) -> list[dict[str, Any]]:
        return self._ok(self.control.get("/sandbox/means", params={"kvk": kvk}))["items"]  # type: ignore[no-any-return]

    def today(self) -> dt.date:
        return dt.date.fromisoformat(self._ok(self.control.get("/sandbox/clock"))["today"])


# ===================================================================================== the subprocesses
@dataclass
class Child:
    cmd: list[str]
    returncode: int
    wall: float
    rss_mb: float
    stdout: str
    stderr: str
    timed_out: bool = False
    started_at: float = 0.0          # epoch seconds when it was spawned
    cpu: float = 0.0                 # its CPU seconds (user + system), from wait4(2)
    #: (epoch s, the child's on-CPU s, its waiting-for-a-CPU s, the same two summed over this process's threads) while it ran
    samples: list[tuple[float, float, float, float, float]] = field(default_factory=list)

    def sched_between(self, start: float, end: float) -> tuple[float, float, float, float] | None:
        """Seconds (child on a CPU, child waiting for one, server on a CPU, server waiting) between two epoch
        times, from the samples; None without samples."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        return tuple(b - a for a, b in zip(first[1:], last[1:]))  # type: ignore[return-value]


class SchedWatch:
    """Samples, every EVERY seconds, how long the child and this process's threads (the sandbox server's: the
    benchmark's own threads sleep meanwhile) have been on a CPU and waiting in the run queue for one
    (/proc/.../schedstat, nanoseconds), so both can be taken over the steps alone: on a CPU, waiting for a CPU
    (the machine is busy), or asleep (waiting for the other side, the network, a lock or the disk). Linux only:
    elsewhere it records nothing."""

    EVERY = 0.05

    def __init__(self, pid: int, samples: list[tuple[float, float, float, float, float]]) -> None:
        self.child = Path(f"/proc/{pid}/schedstat")
        self.tasks = Path("/proc/self/task")
        self.samples = samples
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sched-watch", daemon=True)

    @staticmethod
    def _read(path: Path) -> tuple[float, float] | None:
        try:
            on_cpu, waiting, _ = path.read_text().split()
        except (OSError, ValueError):
            return None
        return int(on_cpu) / 1e9, int(waiting) / 1e9

    def _server(self) -> tuple[float, float] | None:
        """The sums over this process's threads (the event loop's and any worker's), but this watcher's own and
        the main thread's (its waits for a CPU at each wake-up are not the server's)."""
        mine = {str(threading.get_native_id()), str(threading.main_thread().native_id)}
        try:
            tasks = [self._read(task / "schedstat") for task in self.tasks.iterdir() if task.name not in mine]
        except OSError:
            return None
        found = [t for t in tasks if t is not None]
        return (sum(t[0] for t in found), sum(t[1] for t in found)) if found else None

    def _run(self) -> None:
        while not self.stop.wait(self.EVERY):
            child, server = self._read(self.child), self._server()
            if child is None or server is None:
                return
            self.samples.append((time.time(), *child, *server))


def run_child(cmd: list[str], env: dict[str, str], workdir: Path, timeout: float) -> Child:
    """Run `cmd`, wait for it with wait4(2) to get its own peak RSS and CPU; killed (by its pid) after `timeout`.
    Its scheduling and the sandbox server's are sampled while it runs (SchedWatch)."""
    out, err = workdir / "child.out", workdir / "child.err"
    samples: list[tuple[float, float, float, float, float]] = []
    with out.open("wb") as fo, err.open("wb") as fe:
        start, epoch = time.perf_counter(), time.time()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=workdir)
        watch = SchedWatch(proc.pid, samples)
        watch.thread.start()
        killed, done = threading.Event(), threading.Event()

        def watchdog() -> None:
            if not done.wait(timeout):
                killed.set()
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        threading.Thread(target=watchdog, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        watch.stop.set()
        watch.thread.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Child(cmd, proc.returncode, wall, usage.ru_maxrss / 1024, out.read_text(encoding="utf-8", errors="replace"),
                 err.read_text(encoding="utf-8", errors="replace"), killed.is_set(), epoch,
                 usage.ru_utime + usage.ru_stime, samples)


def reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def tail(text: str, lines: int = 8) -> str:
    return "\n".join("      | " + line for line in text.strip().splitlines()[-lines:])


# ===================================================================================== what bounds it
class TxMeter:
    """CPU (thread time) inside the sandbox's change transactions: `mutations._run`, which every /v1 change runs in
    (idempotency record, If-Match, the rules, the writes, the audit row); the rest of the server's CPU is HTTP
    (uvicorn and its parser), checking the request's parts (`sandbox/fastlane.py`), the token's lookup and the request's
    count."""

    cpu = 0.0
    count = 0

    @classmethod
    def install(cls) -> None:
        from reconciler.backend.sandbox import mutations

        run = mutations._run
        if getattr(run, "metered", False):
            return

        def metered(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return run(*args, **kwargs)
            finally:
                cls.cpu += time.thread_time() - started
                cls.count += 1

        metered.metered = True  # type: ignore[attr-defined]
        mutations._run = metered  # type: ignore[assignment]

    @classmethod
    def reset(cls) -> None:
        cls.cpu, cls.count = 0.0, 0


def audit_cost(tmp: Path, n: int = 2000) -> float:
    """CPU seconds per change for the audit log's two lines (step-intent and step-result, as the executor writes
    them: each built whole and appended with one write(2), no fsync per line), on a file next to the real one."""
    from reconciler.apply.audit import AuditLog

    key = "rcl-" + "0" * 32
    with AuditLog(tmp / "audit-cost.jsonl") as log:
        started = time.process_time()
        for i in range(n):
            log.write("step-intent", plan_id="p" * 16, step_id=f"s{i:05d}", kvk="40000000", action="grant",
                      target="o00u00001@bench.example", key=key)
            log.write("step-result", plan_id="p" * 16, step_id=f"s{i:05d}", kvk="40000000", action="grant",
                      target="o00u00001@bench.example", outcome="done", code=None, message=None, attempts=1,
                      ms=3.1, because=None, replayed=False, revision=1234, key=key)
        return (time.process_time() - started) / n


def json_cost(n: int = 5000) -> float:
    """CPU seconds per change to encode and decode a grant's request body and its answer, at both ends."""
    body = {"means_ids": ["40000000-00001"], "services": [CAT[SERVICES[0]].uuid], "end_date": "2027-01-01"}
    answer = {"revision": 1234, "result": {"authorisations": 1, "created": 1, "updated": 0, "end_date": "2027-01-01"}}
    started = time.process_time()
    for _ in range(n):
        json.loads(json.dumps(body, separators=(",", ":")).encode())
        json.loads(json.dumps(answer, separators=(",", ":")).encode())
    return (time.process_time() - started) / n


def bound_by(child: Child, window: tuple[float, float], done: int, tx_cpu: float, audit_s: float,
             json_s: float) -> tuple[list[str], dict[str, float]]:
    """What limits the rate, from how the applying process and the sandbox server's threads spent the steps'
    `window` (epoch seconds): on a CPU, waiting for one, or asleep."""
    sched = child.sched_between(*window)
    wall = window[1] - window[0]
    if sched is None or done == 0 or wall <= 0:
        return ["bound by: not measured (no scheduler samples: not Linux?)"], {}
    apply_cpu, apply_wait, server_cpu, server_wait = sched
    apply_ms, server_ms = 1000 * apply_cpu / done, 1000 * server_cpu / done
    on = {"the applying process": apply_cpu / wall, "the sandbox server": server_cpu / wall}
    queued = {"the applying process": apply_wait / wall, "the sandbox server": server_wait / wall}
    n = os.cpu_count() or 1
    each, shared = 1000 / max(apply_ms, server_ms), 1000 / (apply_ms + server_ms)
    busiest = max(on, key=lambda k: on[k])
    asleep = {k: 1 - on[k] - queued[k] for k in on}
    bound = max(on, key=lambda k: on[k] + queued[k])            # on a CPU or waiting for one
    other = next(k for k in on if k != bound)
    if on[busiest] >= 0.85:
        verdict = f"CPU: {busiest} is on a CPU {on[busiest]:.0%} of the time (one Python thread does its work)"
    elif min(on[k] + queued[k] for k in on) >= 0.6:
        verdict = (f"CPU, shared with the machine's other work: each process is on a CPU or waiting for one most of "
                   f"the time (waiting {queued['the applying process']:.0%} and {queued['the sandbox server']:.0%}; "
                   f"{n} CPUs, load average {os.getloadavg()[0]:.1f})")
    elif on[bound] + queued[bound] >= 0.85:
        verdict = (f"CPU: {bound} is on a CPU {on[bound]:.0%} of the time and waits for one "
                   f"{queued[bound]:.0%} (the machine's other work: {n} CPUs, load average "
                   f"{os.getloadavg()[0]:.1f}); {other} sleeps {asleep[other]:.0%}, waiting for it")
    else:
        verdict = (f"waiting, not CPU: the applying process sleeps {asleep['the applying process']:.0%} of the time "
                   f"and the server {asleep['the sandbox server']:.0%} (for each other's answers, retry backoff, the "
                   f"network, a lock or the disk)")
    lines = [
        f"bound by: {verdict}",
        f"  a change costs {apply_ms + server_ms:.2f} ms of CPU (applying process {apply_ms:.2f} + sandbox server "
        f"{server_ms:.2f}): with a CPU each at most ~{each:.0f} changes/s, on one ~{shared:.0f}",
        f"  (measured over the {wall:.1f} s of steps with /proc schedstat: the applying process on a CPU "
        f"{on['the applying process']:.0%} of the time, waiting for one {queued['the applying process']:.0%}; the "
        f"server's threads {on['the sandbox server']:.0%} and {queued['the sandbox server']:.0%}; of the server's CPU "
        f"{tx_cpu / server_cpu:.0%} inside the changes' transactions (SQL, rules, idempotency record, audit row), the "
        f"rest HTTP (uvicorn, {Served.parser}), checking the request's parts (the fast lane; FastAPI for what it leaves), "
        f"the token's lookup and the request's count; the audit log's two lines "
        f"per change {audit_s * 1e6:.0f} us "
        f"({audit_s / apply_cpu * done:.1%} of the applying process's CPU); JSON of a request and its answer, both "
        f"ends, {json_s * 1e6:.0f} us ({json_s * done / (apply_cpu + server_cpu):.1%} of both))",
    ]
    return lines, {"apply_ms": apply_ms, "server_ms": server_ms, "apply_on_cpu": on["the applying process"],
                   "server_on_cpu": on["the sandbox server"], "tx_share": tx_cpu / server_cpu}


# ======================================================================================= one whole run
@dataclass
class RunResult:
    label: str
    ok: bool = True
    figures: dict[str, Any] = field(default_factory=dict)


def plan_changes(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [c for o in data["organisations"] for c in o["changes"]], data["summary"]


@dataclass
class Audit:
    """What the first apply wrote to its audit log: step records, and when it started and finished its steps."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None          # epoch seconds of "apply-started"
    finished: float | None = None         # epoch seconds of "apply-finished"


def read_audit(path: Path) -> Audit:
    out = Audit()
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            event = record.get("event")
            if event == "step-result":
                out.steps.append(record)
            elif event in ("apply-started", "apply-finished"):
                at = dt.datetime.fromisoformat(record["at"]).timestamp()
                if event == "apply-started" and out.started is None:
                    out.started = at
                elif event == "apply-finished" and out.finished is None:
                    out.finished = at
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def split_counts(counts: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    reads = sum(r["count"] for r in counts["requests"] if r["method"] == "GET")
    writes = {f"{r['method']} {r['route']}": r["count"] for r in counts["requests"] if r["method"] != "GET"}
    return sum(writes.values()), reads, writes


def one_run(label: str, args: argparse.Namespace, faults: dict[str, Any] | None) -> RunResult:
    result = RunResult(label)
    fig = result.figures
    print(f"[{label}]")
    orgs = [Org(k, args.changes // args.orgs + (1 if k < args.changes % args.orgs else 0)) for k in range(args.orgs)]
    with tempfile.TemporaryDirectory(prefix="apply-scale-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "sandbox.db"
        today = dt.date.today()
        token, counts, t_seed = seed(db, orgs, today)
        cfg = tmp / "config"
        cfg.mkdir()
        for org in orgs:
            (cfg / f"org-{org.kvk}.yaml").write_text(org_yaml(org, today), encoding="utf-8")
        size = sum(p.stat().st_size for p in cfg.iterdir())
        print(f"  set up: {len(orgs)} organisations, {counts.get('means', 0)} active users, "
              f"{counts.get('authorisations', 0)} authorisations written to a fresh sandbox DB in {t_seed:.2f} s; "
              f"config {len(orgs)} files, {size / 1e6:.1f} MB")
        env = {k: v for k, v in os.environ.items() if k not in ("RECONCILER_BACKEND",)}
        env.update(BEHEER_API_TOKEN=token, NO_COLOR="1", PYTHONUNBUFFERED="1")
        audit = tmp / "audit.jsonl"
        audit_arg = "-" if args.no_audit else str(audit)
        audit_s, json_s = audit_cost(tmp), json_cost()          # before the server runs: this process's CPU

        with Served(db) as served:
            backend = served.url
            if served.today() != today:
                print(f"  note: the sandbox's today {served.today()} is not {today}")
            # ---- plan (no faults)
            plan_file = tmp / "plan.json"
            plan = run_child(reconciler("plan", str(cfg), "--backend", backend, "--out", str(plan_file)), env, tmp,
                             args.timeout)
            if plan.returncode != 2 or not plan_file.exists():
                print(f"  reconciler plan failed (exit {plan.returncode}, expected 2):\n{tail(plan.stderr or plan.stdout)}")
                result.ok = False
                return result
            changes, summary = plan_changes(plan_file)
            by_action = collections.Counter(c["action"] for c in changes)
            requests_planned = by_action.get("request_means", 0)
            print(f"  reconciler plan DIR --out plan.json: {plan.wall:.2f} s wall, exit {plan.returncode}, "
                  f"peak RSS {plan.rss_mb:.0f} MB; plan file {plan_file.stat().st_size / 1e6:.1f} MB")
            print(f"  plan: {len(changes)} changes ({', '.join(f'{a} {n}' for a, n in sorted(by_action.items()))}); "
                  f"summary api_calls {summary['api_calls']}, deferred {summary['deferred']}, "
                  f"manual {summary['manual']}")
            fig.update(changes=len(changes), api_calls=summary["api_calls"])

            # ---- apply the saved plan
            served.reset_counts()
            if faults:
                served.faults(**faults)
                print(f"  faults on /v1: {json.dumps(faults)}")
            TxMeter.reset()
            cmd = reconciler("apply", "--plan", str(plan_file), str(cfg), "--auto-approve", "-q", "--format", "json",
                             "--backend", backend, "--audit-log", audit_arg, "--concurrency", str(args.concurrency))
            apply = run_child(cmd, env, tmp, args.timeout)
            served_counts = served.counts()
            writes, reads, write_routes = split_counts(served_counts)
            report: dict[str, Any] = {}
            try:
                report = json.loads(apply.stdout)
            except ValueError:
                pass
            s = report.get("summary", {})
            done, failed, skipped = s.get("done", 0), s.get("failed", 0), s.get("skipped", 0)
            stopped = [o for o in report.get("organisations", []) if o.get("stopped")]
            log = read_audit(audit)
            steps = log.steps
            attempts = sum(st.get("attempts") or 0 for st in steps)
            sent = sum(1 for st in steps if st.get("attempts"))
            replayed = sum(1 for st in steps if st.get("replayed"))
            latency = [float(st["ms"]) for st in steps if st.get("attempts") and st.get("ms") is not None]
            completed = apply.returncode == 0 and done == len(changes)
            rate = done / apply.wall if apply.wall else 0.0
            print(f"  reconciler apply --plan plan.json --auto-approve -q --concurrency {args.concurrency}:")
            if apply.timed_out:
                print(f"      KILLED after the {args.timeout:.0f} s timeout")
            print(f"      exit code:                         {apply.returncode}"
                  f"{'' if apply.returncode == 0 else '   (1: something failed or was refused)'}")
            print(f"      changes applied (done):            {done} of {len(changes)}"
                  f"   (failed {failed}, skipped/not attempted {skipped})")
            print(f"      wall time (process start to exit): {apply.wall:.2f} s")
            print(f"      changes per second:                {rate:.0f}")
            print(f"      /v1 write requests the sandbox counted: {writes}   (the plan states api_calls "
                  f"{summary['api_calls']}; difference {writes - summary['api_calls']:+d})")
            for route, n in sorted(write_routes.items()):
                print(f"          {route}: {n}")
            print(f"      /v1 read requests the sandbox counted:  {reads}   (me, services, pages of state)")
            if args.no_audit:
                print("      audit log: off (--no-audit), so no per-step figures")
            else:
                print(f"      write attempts in the audit log:   {attempts} over {len(steps)} step records ({sent} sent); "
                      f"{replayed} answers replayed from the idempotency record")
                print(f"      one step's request, retries included (audit ms): median {percentile(latency, 0.5):.1f}, "
                      f"p99 {percentile(latency, 0.99):.1f}, max {max(latency, default=0):.0f}")
                if log.started and log.finished:
                    before = log.started - apply.started_at
                    print(f"      where the wall time goes: {before:.2f} s before the first step (start-up, load and "
                          f"validate plan.json, read the backend), {log.finished - log.started:.2f} s carrying out the "
                          f"steps ({done / max(1e-9, log.finished - log.started):.0f} changes/s), "
                          f"{apply.started_at + apply.wall - log.finished:.2f} s after (report, exit)")
            window = (log.started, log.finished) if log.started and log.finished else \
                (apply.started_at, apply.started_at + apply.wall)
            lines, bound = bound_by(apply, window, done, TxMeter.cpu, audit_s, json_s)
            for line in lines:
                print("      " + line)
            fig.update(bound)
            print(f"      peak RSS of the applying process:  {apply.rss_mb:.0f} MB")
            if faults:
                print(f"      retries (write requests counted - changes done): {writes - done}"
                      + ("" if args.no_audit else f";  from the audit log (attempts - steps sent): {attempts - sent}"))
                if not args.no_audit:
                    retried = [float(st["ms"]) for st in steps if (st.get("attempts") or 0) > 1 and st.get("ms")]
                    print(f"      time inside the {len(retried)} retried steps (mostly backoff and Retry-After sleeps): "
                          f"{sum(retried) / 1000:.1f} s in total, spread over {args.concurrency} lanes")
                print(f"      completed by this one apply:       {'yes' if completed else 'NO'}")
                for o in stopped[:5]:
                    print(f"          organisation {o['kvk']} stopped: {o['stopped']}")
                if len(stopped) > 5:
                    print(f"          ... {len(stopped) - 5} more organisations stopped")
            if not report:
                print(f"      (no JSON report on stdout)\n{tail(apply.stderr or apply.stdout)}")
            fig.update(done=done, wall=apply.wall, rate=rate, writes=writes, reads=reads, rss=apply.rss_mb,
                       completed=completed, retries=writes - done, replayed=replayed)
            if not faults and not completed:
                result.ok = False
                print(f"      stderr:\n{tail(apply.stderr)}")

            # ---- re-runs until converged (faults stay on)
            reruns = 0
            while faults and not completed and reruns < args.reruns:
                reruns += 1
                again = run_child(reconciler("apply", str(cfg), "--auto-approve", "-q", "--format", "json",
                                             "--backend", backend, "--audit-log", audit_arg,
                                             "--concurrency", str(args.concurrency)), env, tmp, args.timeout)
                try:
                    rep = json.loads(again.stdout)
                except ValueError:
                    rep = {}
                rs = rep.get("summary", {})
                completed = again.returncode == 0
                print(f"  re-run {reruns}: reconciler apply DIR --auto-approve (faults still on): exit "
                      f"{again.returncode}, {again.wall:.2f} s, done {rs.get('done', 0)}, failed {rs.get('failed', 0)}, "
                      f"skipped {rs.get('skipped', 0)}, peak RSS {again.rss_mb:.0f} MB")
                if again.returncode not in (0, 1) or not rep:
                    print(tail(again.stderr or again.stdout))
            fig["reruns"] = reruns

            # ---- converged? (no faults)
            served.faults()
            final_file = tmp / "final.json"
            final = run_child(reconciler("plan", str(cfg), "--backend", backend, "--out", str(final_file)), env, tmp,
                              args.timeout)
            left = len(plan_changes(final_file)[0]) if final_file.exists() else -1
            total_counts = served.counts()
            created = total_counts.get("means_created", 0)
            # every person holds one means: per organisation, each e-mail once; across them, one id per e-mail
            ids_by_email: dict[str, set[str]] = collections.defaultdict(set)
            dup_in_org = 0
            for org in orgs:
                items = served.means(org.kvk)
                emails = collections.Counter(m["email"].lower() for m in items)
                dup_in_org += sum(n - 1 for n in emails.values() if n > 1)
                for m in items:
                    ids_by_email[m["email"].lower()].add(m["id"])
            dup_ids = sum(len(v) - 1 for v in ids_by_email.values() if len(v) > 1)
            converged = final.returncode in (0, 2) and left == 0
            no_dupes = dup_in_org == 0 and dup_ids == 0 and created == requests_planned
            print(f"  converged: a fresh plan has {left} changes (exit {final.returncode}, {final.wall:.2f} s)"
                  f"{'' if converged else '   NOT CONVERGED'}"
                  + (f" after {reruns} re-run{'s' if reruns != 1 else ''}" if faults else ""))
            print(f"  no duplicate means: means bought {created} (the plan requested {requests_planned}); "
                  f"e-mails held twice in an organisation: {dup_in_org}; e-mails with more than one means id: "
                  f"{dup_ids}   {'OK' if no_dupes else 'DUPLICATES'}")
            fig.update(converged=converged, no_dupes=no_dupes)
            result.ok &= converged and no_dupes
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=10_000, help="planned changes (one per user) in total")
    parser.add_argument("--orgs", type=int, default=8, help="organisations the changes are spread over")
    parser.add_argument("--concurrency", type=int, default=4, help="reconciler apply --concurrency (its default: 4)")
    parser.add_argument("--skip-faults", action="store_true", help="only the clean-network run")
    parser.add_argument("--skip-clean", action="store_true", help="only the run with faults")
    parser.add_argument("--p-503", type=float, default=0.04)
    parser.add_argument("--p-429", type=float, default=0.03)
    parser.add_argument("--p-drop", type=float, default=0.03, help="commit, then drop the connection")
    parser.add_argument("--seed", type=int, default=20261121, help="fault seed (the same faults for the same "
                                                                     "request sequence)")
    parser.add_argument("--reruns", type=int, default=3, help="re-runs allowed when the faulty apply stops")
    parser.add_argument("--no-audit", action="store_true", help="apply with --audit-log - (no audit log)")
    parser.add_argument("--clean-runs", type=int, default=1, metavar="N",
                        help="the clean run N times, each on a fresh database, then the median rate: on a noisy "
                             "machine one run can land a few percent either way")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a subprocess is killed")
    args = parser.parse_args(argv)
    if args.changes < args.orgs or args.orgs < 1:
        parser.error("--changes must be at least --orgs, and --orgs at least 1")
    if -(-args.changes // args.orgs) > capacity(dt.date.today()):
        parser.error(f"at most {capacity(dt.date.today())} changes per organisation keep every end date distinct; "
                     "use more --orgs")
    print(f"apply at scale: {args.changes} changes in {args.orgs} organisations, the sandbox served by uvicorn on "
          f"loopback (thread), reconciler in subprocesses; {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}")
    from plan_scale import compile_package           # beside this script

    print(f"  {compile_package()}")
    started = time.perf_counter()
    results = []
    if not args.skip_clean:
        clean = [one_run("1. clean network" + (f", run {k + 1} of {args.clean_runs}" if args.clean_runs > 1 else ""),
                         args, None) for k in range(max(1, args.clean_runs))]
        results += clean
        print()
        if len(clean) > 1:
            rates = sorted(r.figures.get("rate", 0.0) for r in clean)
            print(f"clean runs: changes per second (whole process) {', '.join(f'{x:.0f}' for x in rates)}; "
                  f"median {statistics.median(rates):.0f}\n")
    if not args.skip_faults:
        faults = {"p_503": args.p_503, "p_429": args.p_429, "p_drop": args.p_drop, "seed": args.seed}
        results.append(one_run(f"2. faults: {args.p_503 + args.p_429 + args.p_drop:.0%} of /v1 requests", args,
                               faults))
        print()
    ok = all(r.ok for r in results)
    print(f"total {time.perf_counter() - started:.0f} s; " + ("all runs converged with no duplicate means" if ok
                                                             else "SOMETHING WENT WRONG (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
