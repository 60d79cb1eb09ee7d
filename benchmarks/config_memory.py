"""Peak memory and time of `reconciler validate` on generated configs of 1, 10 and 30 MB.

The byte cap (32 MB) admits a 30 MB file, so loading one must stay within a small multiple of its size
(issue 10: a 30 MB config once took 2.6 GB and 47 s). Each size runs in a fresh process, as a user runs it;
peak RSS is that process's (the interpreter and libraries alone take ~50 MB).
Run: python benchmarks/config_memory.py [--sizes 1 10 30]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.domain.catalogue import bundled_catalogue

TODAY = "2026-11-21"
_CHILD = """
import resource, sys, time
from reconciler.cli.main import main
sys.argv = ["reconciler", "validate", sys.argv[1], "--today", sys.argv[2]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code, file=sys.stderr)
"""


def generate(target_bytes: int) -> str:
    """A valid organisation file of about `target_bytes`: users of 10 authorisations each, 2 admins."""
    services = [s.key for s in bundled_catalogue() if not s.belastingdienst and s.level.value != "EH4"]
    lines = ["version: 1", "organisation:", '  kvk: "12345678"', "  name: Benchmark B.V.", "users:"]
    size, i = 0, 0
    while size < target_bytes:
        role = "beheerder" if i < 2 else "gebruiker"
        user = [f"  - email: user{i}@example.nl", f"    name: User {i}", f"    role: {role}", "    level: EH3",
                "    second_factor: {type: otp}", "    authorisations:"]
        for k in range(10):
            until = "rolling" if k % 2 else f"2028-{(k % 12) + 1:02d}-15"
            user.append(f"      - {{service: {services[(i + k) % len(services)]}, until: {until}}}")
        lines += user
        size += sum(len(line) + 1 for line in user)
        i += 1
    return "\n".join(lines) + "\n"


def measure(path: Path) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB, and the exit code of one `reconciler validate` in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), TODAY], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rss_kb, code = proc.stderr.split()[-2:]
    return seconds, int(rss_kb) / 1024, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 30], help="file sizes in MB")
    args = parser.parse_args()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'size':>8}  {'time':>8}  {'peak RSS':>9}  {'RSS/size':>8}  exit  file")
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes:
            text = generate(int(mb * 1_000_000))
            # valid, and with one schema error (the reference validator then explains it: another path)
            for kind, content in (("valid", text), ("one error", text.replace("level: EH3", "level: EH9", 1))):
                path = Path(tmp) / f"org-{mb:g}mb.yaml"
                path.write_text(content)
                size_mb = path.stat().st_size / 1e6
                seconds, rss, code = measure(path)
                print(f"{size_mb:7.1f}M  {seconds:7.2f}s  {rss:8.0f}M  {rss / size_mb:7.1f}x  {code:>4}  {kind}")
    print(f"(this process, for scale: {baseline:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
