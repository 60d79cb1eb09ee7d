"""Validate a generated organisation of 5,000 users x 10 authorisations; print time and peak memory.

Target on the 2-core CI machine: load + check under 1 s in process (issue #15; 2 s before) and under 300 MB. Run: python benchmarks/validate_large.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import subprocess
import tempfile
import time
from pathlib import Path

from reconciler.domain.catalogue import bundled_catalogue

TODAY = dt.date(2026, 11, 21)


def generate(users: int, auths: int) -> str:
    """A valid organisation file: every user EH3 with `auths` distinct services."""
    services = [s.key for s in bundled_catalogue() if not s.belastingdienst and s.level.value != "EH4"]
    lines = ["version: 1", "organisation:", '  kvk: "12345678"', "  name: Benchmark B.V.", "users:"]
    for i in range(users):
        role = "beheerder" if i < 2 else "gebruiker"
        lines += [f"  - email: user{i}@example.nl", f"    name: User {i}", f"    role: {role}", "    level: EH3",
                  "    second_factor: {type: otp}", "    authorisations:"]
        for k in range(auths):
            until = "rolling" if k % 2 else f"2028-{(k % 12) + 1:02d}-15"
            lines.append(f"      - {{service: {services[(i + k) % len(services)]}, until: {until}}}")
    return "\n".join(lines) + "\n"


_CHILD = """
import datetime as dt, sys, time
from reconciler.config.loader import load_paths
start, cpu = time.perf_counter(), time.process_time()
result = load_paths([sys.argv[1]], dt.date.fromisoformat(sys.argv[2]))
print(f"{time.perf_counter() - start:.3f} {int(result.ok)} {time.process_time() - cpu:.3f}")
"""


def _child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--auths", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.yaml"
        path.write_text(generate(args.users, args.auths))
        size = path.stat().st_size
        # Each measurement in a fresh process, as a user runs it; peak RSS is the child's.
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), TODAY.isoformat()],
                             capture_output=True, text=True, check=True).stdout.split()
        load_time, ok, load_cpu = float(out[0]), out[1] == "1", float(out[2])
        rss_load = _child_rss_mb()
        start = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(path), "--today", TODAY.isoformat()],
                             capture_output=True, text=True)
        cli_time = time.perf_counter() - start
        rss_cli = _child_rss_mb()
    print(f"validate {args.users} users x {args.auths} authorisations ({size / 1e6:.1f} MB of YAML)")
    print(f"  load + check (in process): {load_time:.2f} s   valid={ok}   (target < 1 s)")
    print(f"      of which CPU time: {load_cpu:.2f} s   (steadier than the wall time on a busy machine)")
    print(f"  reconciler validate (CLI, end to end): {cli_time:.2f} s   exit {cli.returncode}")
    print(f"  peak RSS: {max(rss_load, rss_cli):.0f} MB   (target < 300 MB)")
    return 0 if ok and cli.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
