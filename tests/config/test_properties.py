"""Properties of the configuration layer: valid configurations pass and survive a YAML round trip; no
mutation of a real file makes the loader raise, and every finding it reports is positioned."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config.loader import LoadResult, load_paths
from reconciler.config.models import OrgConfig
from reconciler.config.schema import ORG_SCHEMA, schema_problems
from reconciler.diagnostics import Severity



from . import strategies  # noqa: E402

TODAY = dt.date(2025, 6, 1)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")

SETTINGS = settings(max_examples=75, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _load(content: str | bytes, name: str = "org.yaml") -> tuple[Path, LoadResult]:
    """Write `content` to a fresh directory and load it (a fresh directory per example: no state leaks)."""
    with tempfile.TemporaryDirectory(prefix="reconciler-prop-") as folder:
        path = Path(folder) / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path, load_paths([str(path)], TODAY)


def _with_dates(node: Any) -> Any:
    """`until` strings as date objects, so the dumper writes them unquoted (2027-02-14, a YAML timestamp)."""
    if isinstance(node, dict):
        return {k: (dt.date.fromisoformat(v) if k == "until" and v != "rolling" else _with_dates(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_with_dates(v) for v in node]
    return node


# --- valid configurations -------------------------------------------------------------------------------

@SETTINGS
@given(strategies.valid_configs(TODAY), st.booleans(), st.sampled_from([None, False, True]), st.booleans(),
       st.booleans())
def test_generated_valid_config_passes_and_round_trips(doc: dict[str, Any], sort_keys: bool,
                                                      flow: bool | None, unquoted_dates: bool,
                                                      unicode: bool) -> None:
    assert schema_problems(ORG_SCHEMA, doc) == []
    expected = OrgConfig.model_validate(doc)

    data = _with_dates(doc) if unquoted_dates else doc
    text = yaml.safe_dump(data, sort_keys=sort_keys, default_flow_style=flow, allow_unicode=unicode)
    path, result = _load(text)

    assert result.errors == [], [d.render() for d in result.diagnostics]
    findings = [d for d in result.diagnostics if d.severity is not Severity.NOTE]   # notes explain, never object
    assert findings == [], [d.render() for d in result.diagnostics]
    assert all(d.code in ("override", "cap") for d in result.diagnostics if d.severity is Severity.NOTE)
    assert result.files == 1
    [org] = result.orgs
    assert org.config == expected
    assert org.doc.data == doc  # dates stayed strings, nothing was converted on the way


@SETTINGS
@given(strategies.valid_configs(TODAY))
def test_generated_valid_config_positions_point_into_the_file(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    _, result = _load(text)
    [org] = result.orgs
    lines = text.splitlines()
    for i, user in enumerate(doc["users"]):
        mark = org.doc.mark(("users", i, "email"))
        assert user["email"] in lines[mark.line - 1][mark.column - 1:]
        key = org.doc.mark(("users", i, "email"), key=True)
        assert lines[key.line - 1][key.column - 1:].startswith("email")


# --- mutations of a real file ---------------------------------------------------------------------------

def _lines(text: str) -> int:
    """Lines as YAML may count them: besides \\n, also \\r, U+0085, U+2028 and U+2029 break lines
    (str.splitlines() splits on all of those, and a few more)."""
    return len(text.splitlines()) + 1


def _assert_positioned(path: Path, result: LoadResult, line_count: int) -> None:
    assert result.files == 1
    if not result.ok:
        assert result.errors
    for d in result.diagnostics:
        assert d.line >= 1 and d.column >= 1, d
        assert d.code and d.message, d
        assert d.path == str(path)
        assert d.line <= line_count + 1, d
        assert d.json_path.startswith("$")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.mutated_text(EXAMPLE_TEXT))
def test_mutated_example_never_raises(text: str) -> None:
    path, result = _load(text)
    _assert_positioned(path, result, _lines(text))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.mutated_bytes(EXAMPLE_TEXT.encode("utf-8")))
def test_byte_mutated_example_never_raises(raw: bytes) -> None:
    path, result = _load(raw)
    _assert_positioned(path, result, _lines(raw.decode("utf-8", "replace")))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_generated_config_never_raises(data: st.DataObject) -> None:
    doc = data.draw(strategies.valid_configs(TODAY))
    text = yaml.safe_dump(doc, sort_keys=False)
    mutated = data.draw(strategies.mutated_text(text))
    path, result = _load(mutated)
    _assert_positioned(path, result, _lines(mutated))
