"""Start-up cost (#15): what a command loads before it does anything. Heavy stacks that a plan never uses must not
be imported by `reconciler`'s command line; each entry here was a measured share of the start-up."""

from __future__ import annotations

import subprocess
import sys

#: Modules the command line must not load on start: httpx's own CLI (and through it rich and pygments), the
#: reference schema validator (only an invalid file needs it).
NOT_AT_START = ("httpx._main", "rich", "pygments", "jsonschema")


def _loaded_after(statement: str) -> set[str]:
    probe = (f"{statement}\nimport sys\n"
             f"print(' '.join(m for m in {NOT_AT_START!r} if sys.modules.get(m) is not None))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_command_line_loads_no_terminal_stack_it_does_not_use() -> None:
    assert _loaded_after("import reconciler.cli.main") == set()


def test_httpx_still_works_without_its_command_line() -> None:
    probe = ("import reconciler, httpx\n"
             "r = httpx.Response(200, json={'a': 1}); assert r.json() == {'a': 1}\n"
             "print(httpx.Client is not None)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_a_process_that_imported_httpx_first_keeps_its_command_line() -> None:
    assert "httpx._main" in _loaded_after("import httpx, reconciler")


def test_a_valid_config_is_checked_without_the_reference_schema_validator(tmp_path) -> None:
    """The compiled validator confirms a valid file; the `jsonschema` package (attrs, referencing) is imported only
    to explain an invalid one."""
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "org.yaml"
    shutil.copy(example, tmp_path / "org.yaml")
    probe = ("import sys, datetime as dt\nfrom reconciler.config.loader import load_paths\n"
             f"result = load_paths([{str(tmp_path / 'org.yaml')!r}], dt.date(2026, 12, 1))\n"
             "print(result.ok, 'jsonschema' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
