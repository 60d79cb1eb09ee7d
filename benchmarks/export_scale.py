"""`--backend export:DIR` at scale against the embedded sandbox; prints clearly labelled numbers (not a test).

One organisation of 10,000 active users x 10 authorisations is written straight into an embedded sandbox
database (the rules' effects through `SandboxStore.apply`, one transaction: `plan_scale.seed_sandbox`), then
exported as the Beheermodule's downloads with `reconciler/backend/sandbox/export.py` (the code of `reconciler
sandbox export`), once as CSV and once as XLSX. The config is the same organisation as YAML with about 1% of
its users changed (`plan_scale`'s edit for (b)), so the plan is small and the same through each backend.

Timed: `reconciler plan FILE --format json --backend B` in a fresh process each, for B = sandbox:DB,
export:CSV-DIR and export:XLSX-DIR, `--repeat` times each, the backends taking turns (the median counts).
Reported: wall time (process start to exit) and the child's own peak RSS (`os.wait4`, so one child's number is
not another's), the ratio of each export: run to the sandbox run (target: within 1.5x), and whether the plans
are equal. With `--baseline TREE` each backend is also run with the reconciler of another source tree (a git
worktree of an older commit), against that tree's own sandbox run: before and after in one run. With
`--profile`, the slowest export: run is profiled (cProfile) and its top functions printed.

Measured on the 2-core machine, 10,000 users (median of 3; peak RSS of the plan process), in one run with
`--baseline` a worktree of the commit before the XLSX reader's rework:
  before: sandbox 4.40 s 152 MB;  export CSV 4.00 s 179 MB (0.91x, 1.18x);  export XLSX 8.81 s 186 MB (2.00x, 1.23x)
  after:  sandbox 2.16 s 122 MB;  export CSV 1.97 s 171 MB (0.91x, 1.40x);  export XLSX 2.82 s 167 MB (1.31x, 1.37x)
(the sandbox run gained from the planner's and the config loader's work in between, CSV from that and from the
reader's changes below). Reading the XLSX downloads took ~4 s for 100,000 rows, an lxml tree and ElementPath
per cell; now under 1 s: a sheet in openpyxl's own form, as the sandbox writes it, is read a row at a time by
one regular expression (`table._plain_rows`; any other sheet still by lxml), the GC waits while the downloads
are read, and a service or an end date that 100,000 rows repeat is looked up once. The rest over CSV is the
XML's size (43 MB against 10 MB) and importing openpyxl for its number formats.

Run: python benchmarks/export_scale.py [--users 10000] [--repeat 3] [--baseline TREE] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from plan_scale import PER_USER, Edit, OrgSpec, org_yaml, seed_sandbox, set_clock   # benchmarks/ is on the path

KVK = "30000000"
TARGET = 1.5


@dataclass
class Run:
    """One `reconciler plan` process: its wall time, its own peak RSS, its exit code and output."""

    wall: float
    rss_mb: float
    code: int
    stdout: str
    stderr: str


#: Runs a command and writes its peak RSS (kB) to argv[1]. Linux keeps a process's peak RSS across exec, and a
#: child forked from this benchmark starts with the benchmark's (the seeded store, the exports): a small
#: launcher in between makes the number the plan's own.
_LAUNCHER = "import os, subprocess, sys; c = subprocess.Popen(sys.argv[2:]); _, s, u = os.wait4(c.pid, 0); " \
            "open(sys.argv[1], 'w').write(str(u.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(s))"


def plan_process(config: Path, backend: str, tmp: Path, profile: Path | None = None, tree: Path | None = None) -> Run:
    """`reconciler plan` in a fresh process, started through `_LAUNCHER` so that the peak RSS is its own; with
    `tree`, the reconciler package of that source tree (PYTHONPATH) is the one run."""
    prefix = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "reconciler"] if profile \
        else [sys.executable, "-m", "reconciler"]
    cmd = [*prefix, "plan", str(config), "--format", "json", "--backend", backend]
    out, err, rss = tmp / "stdout", tmp / "stderr", tmp / "rss"
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss), *cmd], stdout=stdout,
                              stderr=stderr, env=env, cwd=tmp).returncode    # `-m` puts the cwd first on the path
        wall = time.perf_counter() - start
    return Run(wall, int(rss.read_text()) / 1024, code, out.read_text(encoding="utf-8"),
               err.read_text(encoding="utf-8"))


def comparable(stdout: str, ordered: bool = True) -> list[Any]:
    """What the plan decides, without what only an API has (the revision, the backend's name); `ordered` False
    takes a step's services as a set (a revoke lists them in the order the backend gave its rows)."""
    def services(items: list[str]) -> list[str]:
        return items if ordered else sorted(items)

    plan = json.loads(stdout)
    return [[(c["action"], c["target"], services(c["services"]), c["params"], c["stage"]) for c in org["changes"]]
            + [(d["action"], d["target"], services(d["services"]), d["rule"]) for d in org["deferred"]]
            + [(m["action"], m["target"], m["rule"]) for m in org["manual"]]
            for org in plan["organisations"]]


def export_downloads(db: Path, out: Path, fmt: str) -> tuple[float, int]:
    """The organisation's downloads in `fmt` under out/KVK, as `reconciler sandbox export` writes them; (seconds,
    bytes written)."""
    from reconciler.backend.sandbox.export import export
    from reconciler.render.safe import csv_text

    start = time.perf_counter()
    written = anyio.run(lambda: export(f"sandbox:{db}", kvk=KVK, out=out / KVK, formats=(fmt,), text=csv_text))
    return time.perf_counter() - start, sum(p.stat().st_size for p in written)


def measure(backends: dict[str, tuple[str, Path | None]], config: Path, tmp: Path, repeat: int) -> dict[str, list[Run]]:
    """Each backend's plan processes, taken in turns (one of each, `repeat` times): a machine that gets busier
    or quieter during the run then weighs on every backend alike, not on the one measured last."""
    runs: dict[str, list[Run]] = {label: [] for label in backends}
    for _ in range(repeat):
        for label, (backend, tree) in backends.items():
            run = plan_process(config, backend, tmp, tree=tree)
            if run.code not in (0, 2):
                raise SystemExit(f"{label}: reconciler plan exited {run.code}:\n{run.stderr[-2000:]}")
            runs[label].append(run)
    return runs


def show_profile(path: Path, top: int = 25) -> None:
    import pstats

    print(f"  cProfile of one export: plan (top {top} by cumulative time, then by own time):")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000, help="active users of the one organisation")
    parser.add_argument("--repeat", type=int, default=3, help="plan processes per backend (the median counts)")
    parser.add_argument("--profile", action="store_true", help="profile one export: plan (cProfile) and print it")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also run each backend with the reconciler of another source tree (e.g. a git worktree "
                             "of an older commit), each against its own sandbox run: before and after in one run")
    args = parser.parse_args(argv)
    if args.users < 1000:
        parser.error("--users must be at least 1000 (the config's 1% edit needs that many)")

    users = args.users
    spec = OrgSpec(KVK, users, "u")
    edit = Edit(removed=tuple(range(100, 100 + users // 200)), switched=tuple(range(200, 200 + users // 250)),
                promoted=(300,), new_users=max(1, users // 1000))
    changed = len(edit.removed) + len(edit.switched) + len(edit.promoted) + edit.new_users
    print(f"export: against sandbox: one organisation x {users} users x {PER_USER} authorisations, "
          f"{args.repeat} plan process(es) per backend")
    ok = True
    with tempfile.TemporaryDirectory(prefix="export-scale-") as name:
        tmp = Path(name)
        db = tmp / "sandbox.db"
        auths, t_seed = seed_sandbox(db, spec)
        set_clock(db, dt.date.today())             # the sandbox's today is the real one, as the downloads' is
        config = tmp / "org.yaml"
        config.write_text(org_yaml(spec, edit), encoding="utf-8")
        print(f"  set up: {users} active means, {auths} authorisations in the store {t_seed:.2f} s; database "
              f"{db.stat().st_size / 1e6:.0f} MB; config {config.stat().st_size / 1e6:.1f} MB, {changed} users "
              f"({100 * changed / users:.1f}%) changed")
        plain = {"sandbox": f"sandbox:{db}"}
        for fmt in ("csv", "xlsx"):
            seconds, size = export_downloads(db, tmp / fmt, fmt)
            plain[f"export {fmt.upper()}"] = f"export:{tmp / fmt}"
            print(f"  sandbox export --format {fmt}: {seconds:.2f} s, {size / 1e6:.1f} MB in 3 files")
        trees: dict[str, Path | None] = {"": None}
        if args.baseline:
            trees = {" (base)": args.baseline.resolve(), "": None}
            print(f"  (base): the reconciler of {args.baseline.resolve()}, each ratio against its own sandbox run")
        backends = {label + suffix: (backend, tree)
                    for suffix, tree in trees.items() for label, backend in plain.items()}
        runs = measure(backends, config, tmp, args.repeat)
        plans = {label: comparable(rs[0].stdout, ordered=False) for label, rs in runs.items()}
        print(f"  {'backend':<19} {'wall (median)':>14} {'min':>7} {'max':>7} {'peak RSS':>9} {'wall ratio':>11} "
              f"{'RSS ratio':>10}  plan")
        for label, rs in runs.items():
            suffix = label[label.find(" ("):] if " (" in label else ""
            base = runs["sandbox" + suffix]
            base_wall = statistics.median(r.wall for r in base)
            base_rss = max(r.rss_mb for r in base)
            wall = statistics.median(r.wall for r in rs)
            rss = max(r.rss_mb for r in rs)
            ratio = wall / base_wall
            exact = comparable(rs[0].stdout) == comparable(runs["sandbox"][0].stdout)
            same = "DIFFERS from the sandbox's" if plans[label] != plans["sandbox"] else "the same as the sandbox's" \
                + ("" if exact else " (up to the order of a step's services)")
            within = label.startswith("sandbox") or ratio <= TARGET
            if not suffix:                                   # the baseline's numbers are shown, not judged
                ok &= within and plans[label] == plans["sandbox"]
            print(f"  {label:<19} {wall:>12.2f} s {min(r.wall for r in rs):>5.2f} s {max(r.wall for r in rs):>5.2f} s "
                  f"{rss:>6.0f} MB {ratio:>10.2f}x {rss / base_rss:>9.2f}x  "
                  f"{same if not label.startswith('sandbox') else ''}{'' if within else f'  OVER {TARGET}x'}")
        base = runs["sandbox"]
        summary = [line for line in base[0].stderr.splitlines() if line.startswith("Plan:")]
        steps = sum(len(org) for org in plans["sandbox"])
        print(f"  the plan: {steps} changes, deferred and manual steps; exit {base[0].code}"
              + (f"; {summary[0]}" if summary else ""))
        if args.profile:
            slowest = max((label for label in plain if label != "sandbox"),
                          key=lambda label: statistics.median(r.wall for r in runs[label]))
            profile = tmp / "plan.prof"
            plan_process(config, plain[slowest], tmp, profile)
            print(f"  profiled: {slowest}")
            show_profile(profile)
    print(f"within target ({TARGET}x)" if ok else f"NOT within target ({TARGET}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
