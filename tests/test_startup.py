"""Start-up cost (#15): what a command loads before it does anything. Heavy stacks that a plan never uses must not
be imported by `reconciler`'s command line; each entry here was a measured share of the start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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

    example = Path(__file__).resolve().parents[1] / "examples" / "org.yaml"
    shutil.copy(example, tmp_path / "org.yaml")
    probe = ("import sys, datetime as dt\nfrom reconciler.config.loader import load_paths\n"
             f"result = load_paths([{str(tmp_path / 'org.yaml')!r}], dt.date(2026, 12, 1))\n"
             "print(result.ok, 'jsonschema' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]


def test_a_command_loads_only_its_own_modules() -> None:
    """Each command is imported when it is run: `plan` loads neither `apply`'s report nor `import`'s reader."""
    probe = ("import sys\nfrom reconciler.cli.main import cli\ncli.get_command(None, 'plan')\n"
             "print(' '.join(m for m in ('reconciler.cli.plan', 'reconciler.cli.apply', 'reconciler.apply.report', "
             "'reconciler.cli.importer', 'reconciler.importer.run', 'reconciler.cli.sandbox') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["reconciler.cli.plan"]


def test_help_lists_every_command_and_a_typo_is_matched_against_all_of_them() -> None:
    from click.testing import CliRunner

    from reconciler.cli.main import COMMANDS, cli

    section = CliRunner().invoke(cli, ["--help"]).output.split("Commands:\n")[1]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2] != " "]
    assert listed == sorted(COMMANDS)
    import click

    typo = CliRunner().invoke(cli, ["conformanse"])
    assert typo.exit_code == 1 and "No such command 'conformanse'." in typo.output, typo.output
    if hasattr(click.exceptions, "NoSuchCommand"):        # a click that suggests at all suggests every command
        assert "Did you mean 'conformance'?" in typo.output


def _plan_in_the_command_process(tmp_path, before: str = "") -> str:
    example = Path(__file__).resolve().parents[1] / "examples" / "org.yaml"
    probe = (f"import sys\n{before}\nfrom reconciler.cli.main import main\n"
             f"sys.argv = ['reconciler', 'plan', {str(example)!r}, '--today', '2026-12-01', '--backend', "
             f"{'sandbox:' + str(tmp_path / 'sandbox.db')!r}]\n"
             "try:\n    main()\nexcept SystemExit as exc:\n"
             "    print('exit', exc.code, 'pydantic.v1', sys.modules.get('pydantic.v1') is not None, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stderr.splitlines()[-1]


def test_the_command_plans_on_the_embedded_sandbox_without_pydantic_1(tmp_path) -> None:
    """FastAPI imports `pydantic.v1` only to refuse its models; the command's process has none to refuse."""
    assert _plan_in_the_command_process(tmp_path) == "exit 2 pydantic.v1 False"


def test_a_process_that_loaded_pydantic_1_first_keeps_it(tmp_path) -> None:
    assert _plan_in_the_command_process(tmp_path, "import pydantic.v1") == "exit 2 pydantic.v1 True"
