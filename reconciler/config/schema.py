"""The JSON schemas in `schemas/` and their errors, rewritten for people and mapped to JSON paths."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable

try:
    import jsonschema_rs
except ImportError:  # pragma: no cover
    jsonschema_rs = None

from reconciler.config.yamlpos import JsonPath

if TYPE_CHECKING:
    import jsonschema
    from jsonschema import Draft202012Validator, FormatChecker

ORG_SCHEMA = "org.schema.json"
CATALOGUE_SCHEMA = "catalogue.schema.json"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """A schema violation at `path`; `at_key` points at the key rather than its value."""

    path: JsonPath
    message: str
    at_key: bool = False


def schema_text(name: str) -> str:
    return resources.files("reconciler").joinpath("schemas", name).read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(schema_text(name))


def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(dt.date.fromisoformat(value))


def _is_until(value: object) -> bool:
    return not isinstance(value, str) or value == "rolling" or bool(dt.date.fromisoformat(value))


#: The schemas' own formats: a check is true, or raises ValueError.
_FORMATS: dict[str, Callable[[object], bool]] = {"date": _is_date, "until": _is_until}


def _conforms(value: object, fmt: str) -> bool:
    try:
        return bool(_FORMATS[fmt](value))
    except ValueError:
        return False


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    """ECMA-262 semantics for `$`: the end of the text. Python's `$` also matches before a final newline,
    which would let "12345678\n" pass as a KvK number."""
    if isinstance(instance, str) and not _ecma_search(pattern, instance):
        import jsonschema

        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _ecma_search(pattern: str, text: str) -> bool:
    return _ecma_regex(pattern).search(text) is not None


@cache
def _reference() -> tuple[type[Draft202012Validator], FormatChecker]:
    """The reference implementation (the `jsonschema` package), with ECMA patterns and the schemas' formats.
    Imported only to explain an invalid file: a valid one is confirmed by the compiled validator, and the
    package's import (attrs, referencing) was a fifth of a command's start-up."""
    import jsonschema
    from jsonschema import Draft202012Validator, FormatChecker

    formats = FormatChecker(formats=())
    for name, check in _FORMATS.items():
        formats.checks(name, raises=ValueError)(check)
    return jsonschema.validators.extend(Draft202012Validator, {"pattern": _pattern}), formats


@cache
def validator(name: str) -> Draft202012Validator:
    """The reference validator of schema `name`, which explains errors. It visits only the list items that the
    compiled validator finds invalid: walking all of a 30 MB file's 400,000 entries to explain one wrong
    level took 30 s."""
    import jsonschema

    base, formats = _reference()
    every_item = base.VALIDATORS["items"]

    def items(check: Any, items: Any, instance: Any, schema: dict[str, Any]) -> Any:
        fast = _fast_items(name, json.dumps(items, sort_keys=True)) if isinstance(items, dict) else None
        if fast is None or schema.get("prefixItems") or not check.is_type(instance, "array"):
            yield from every_item(check, items, instance, schema)
            return
        for index, item in enumerate(instance):
            if not fast(item):
                yield from check.descend(item, items, path=index)

    cls = jsonschema.validators.extend(base, {"items": items})
    return cls(load_schema(name), format_checker=formats)


def _format_ok(fmt: str) -> Callable[[str], bool]:
    """The compiled validator's format check, remembered per text: a file repeats a few dates thousands of
    times, and each check was a chain of Python calls (a third of the schema's time on 50,000 dates)."""
    @lru_cache(maxsize=4096)
    def check(value: str) -> bool:
        return _conforms(value, fmt)
    return check


@cache
def fast_validator(name: str) -> Callable[[Any], bool] | None:
    """A compiled (Rust) validator of the same schema: a large valid file is confirmed in milliseconds."""
    if jsonschema_rs is None:  # pragma: no cover - the dependency is declared; this keeps us working without it
        return None
    compiled = jsonschema_rs.Draft202012Validator(
        load_schema(name), formats={f: _format_ok(f) for f in ("date", "until")}, validate_formats=True)
    return compiled.is_valid


@cache
def _fast_items(name: str, items: str) -> Callable[[Any], bool] | None:
    """A compiled validator of one `items` subschema of schema `name` (its `$defs` included, for `$ref`)."""
    if jsonschema_rs is None:  # pragma: no cover
        return None
    root = load_schema(name)
    sub = {key: root[key] for key in ("$schema", "$defs") if key in root} | json.loads(items)
    compiled = jsonschema_rs.Draft202012Validator(
        sub, formats={f: _format_ok(f) for f in ("date", "until")}, validate_formats=True)
    return compiled.is_valid


SourceText = Callable[[JsonPath], "str | None"]


def schema_problems(name: str, data: Any, source: SourceText | None = None, *,
                    quote_values: bool = True) -> list[SchemaProblem]:
    """Every violation of schema `name` by `data`, each phrased as what is wrong and what is allowed.

    Valid data is confirmed by the compiled validator; only when it says no does the (slower) reference
    implementation walk the data to explain each error, so both always agree on the verdict's source.
    `quote_values=False` leaves the file's values and keys out of every message (a file named as a catalogue
    may be anything, a file of secrets too: its contents must not be echoed); positions still say where.
    """
    fast = fast_validator(name)
    if fast is not None and fast(data):
        return []
    problems: list[SchemaProblem] = []
    errors = list(validator(name).iter_errors(data))
    misspelt = _misspelt_required(errors) if quote_values else set()
    for error in errors:
        if quote_values:
            if error.validator == "required" and (tuple(error.absolute_path), _missing(error)) in misspelt:
                continue                  # `rol:` is reported once, as "did you mean 'role'", not also as missing
            problems.extend(_explain(error, source or (lambda path: None)))
        else:
            problems.extend(_explain_unquoted(error, schema_words(name)))
    return problems


def _missing(error: jsonschema.ValidationError) -> str:
    """The key a `required` error names (the schema's word, quoted in jsonschema's message)."""
    return str(error.message).split("'")[1] if "'" in error.message else "?"


def _close_key(key: object, allowed: list[str]) -> str | None:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return close[0] if close else None


def _misspelt_required(errors: list[jsonschema.ValidationError]) -> set[tuple[JsonPath, str]]:
    """(mapping path, required key) for each required key that an unknown key of the same mapping looks like:
    a newcomer who wrote `rol:` gets one error that suggests `role`, not a second one saying `role` is missing."""
    out: set[tuple[JsonPath, str]] = set()
    for error in errors:
        schema = error.schema if isinstance(error.schema, dict) else {}
        if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
            continue
        known = schema.get("properties", {})
        required = set(schema.get("required", ()))
        for key in error.instance:
            guess = _close_key(key, sorted(known)) if key not in known else None
            if guess in required and guess not in error.instance:
                out.add((tuple(error.absolute_path), guess))
    return out


def _explain_unquoted(error: jsonschema.ValidationError, words: frozenset[str]) -> list[SchemaProblem]:
    """What `_explain` says, with no value or key taken from the data: only the schema's own words."""
    path: JsonPath = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = [p for p in path if not isinstance(p, str) or p in words]
    name = _name(tuple(known)) if known else "the file"
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        return [SchemaProblem(path + (key,), f"unknown key (allowed here: {', '.join(allowed)})", at_key=True)
                for key in error.instance if key not in schema.get("properties", {})] or \
            [SchemaProblem(path, "unknown key")]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"   # the schema's word
        return [SchemaProblem(path, f"missing required key {missing!r}" + (f" in {name}" if known else ""))]
    if kind == "type":
        expected = error.validator_value
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        return [SchemaProblem(path, f"{name} must be {wanted}, not {_what(error.instance)}")]
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return [SchemaProblem(path, f"{name} has a value that is not allowed; allowed: "
                                    + ", ".join(json.dumps(a) if not isinstance(a, str) else a for a in allowed))]
    if kind in ("pattern", "format"):
        hint = _hint(schema)
        return [SchemaProblem(path, f"{name} is not valid" + (f": {hint}" if hint else ""))]
    return [SchemaProblem(path, f"{name} does not match the schema ({kind})")]


@cache
def schema_words(name: str) -> frozenset[str]:
    """Every property name schema `name` defines: safe to repeat, since they are not the data's."""
    words: set[str] = set()
    stack: list[Any] = [load_schema(name)]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            words.update(k for k in item.get("properties", {}) if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(words)


_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "nothing"}


#: What a YAML value is, in words; the first class that fits (a bool is an int too, so it comes first).
_VALUE_WORDS: tuple[tuple[type, str], ...] = (
    (type(None), "nothing"), (bool, "a boolean"), (int, "a whole number"), (float, "a number"), (str, "a string"),
    (list, "a list"), (dict, "a mapping"))


def _what(value: Any) -> str:
    return next((word for kind, word in _VALUE_WORDS if isinstance(value, kind)), type(value).__name__)


def _name(path: JsonPath) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "the file"


_SENTENCE_END = re.compile(r"(?<!e\.g)\.\s+(?=[A-Z`(])")


def _hint(schema: dict[str, Any]) -> str:
    """The first sentence of a schema description: it says what is allowed."""
    text = schema.get("description", "")
    return _SENTENCE_END.split(text)[0].rstrip(".") if text else ""


def _international(pattern: str | None, text: str) -> str | None:
    """A phone number as the schema wants it (E.164, `+31...`), from what a Dutch newcomer writes: `06...`,
    `0031 6...`, `+31 6-...`, or the digits YAML left of an unquoted `+31...`. None when no form fits."""
    if pattern is None or not pattern.startswith("^\\+"):
        return None
    digits = re.sub(r"[\s().-]", "", text)
    if re.fullmatch(r"\+[0-9]+", digits):
        guess = digits
    elif re.fullmatch(r"00[1-9][0-9]+", digits):
        guess = "+" + digits[2:]
    elif re.fullmatch(r"0[1-9][0-9]{8}", digits):
        guess = "+31" + digits[1:]
    elif re.fullmatch(r"31[1-9][0-9]{8}", digits):
        guess = "+" + digits
    else:
        return None
    return guess if _ecma_search(pattern, guess) else None


def _quote_tip(schema: dict[str, Any], text: str | None) -> str:
    """Suggest quoting only with the text as written, and only when the quoted text would be valid; a phone
    number (YAML reads `0622222222` and `+31622222222` as numbers) in the international form it needs."""
    if text is None:
        return ""
    pattern = schema.get("pattern")
    phone = _international(pattern, text)
    if phone is not None:
        return f' (write it in quotes in international form: "{phone}")'
    if pattern is not None and not _ecma_search(pattern, text):
        return ""
    return f' (write it in quotes: "{text}")'


_DAY_MONTH_YEAR = re.compile(r"([0-9]{1,2})[-/. ]([0-9]{1,2})[-/. ]([0-9]{4})")
_YEAR_MONTH_DAY = re.compile(r"([0-9]{4})[-/. ]([0-9]{1,2})[-/. ]([0-9]{1,2})")


def _date_guess(text: str) -> str | None:
    """The YYYY-MM-DD a date written another way means: Dutch `30-06-2027` (day first, as on Dutch forms),
    `30/6/2027`, `2027-6-30`; None when it is no real date that way (a guess must never invent one)."""
    text = text.strip()
    if (match := _DAY_MONTH_YEAR.fullmatch(text)) is not None:
        day, month, year = match.groups()
    elif (match := _YEAR_MONTH_DAY.fullmatch(text)) is not None:
        year, month, day = match.groups()
    else:
        return None
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _date_problem(path: JsonPath, schema: dict[str, Any], value: str) -> SchemaProblem | None:
    """One error for a date written the wrong way, with the date it means when that is clear."""
    rolling = schema.get("format") == "until"
    if rolling and value.strip().lower() == "rolling":
        guess = "rolling"
    else:
        guess = _date_guess(value)
    if guess is None:
        return None
    allowed = "a date as YYYY-MM-DD" + (" or `rolling`" if rolling else "")
    return SchemaProblem(path, f"{value!r} is not {allowed}; did you mean {guess}?")


def _explain(error: jsonschema.ValidationError, source: SourceText) -> list[SchemaProblem]:
    path: JsonPath = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    name = _name(path)
    if "propertyNames" in error.relative_schema_path or "propertyNames" in error.schema_path:
        return [SchemaProblem(path + (str(value),), f"{value!r} is not a valid name here: {_hint(schema)}", at_key=True)]
    if kind == "format":
        pattern = schema.get("pattern")
        if isinstance(value, str) and pattern is not None and not _ecma_search(pattern, value):
            return []                     # the pattern error at the same place says it, once
        return [SchemaProblem(path, f"{value!r} is not a real date (YYYY-MM-DD)")]
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in value if k not in schema.get("properties", {})]
        out = []
        for key in extra:
            close = _close_key(key, allowed)
            guess = f"; did you mean {close!r}?" if close else ""
            out.append(SchemaProblem(path + (key,), f"unknown key {key!r}{guess} (allowed here: {', '.join(allowed)})",
                                     at_key=True))
        if out:
            return out
    if kind == "required":
        missing = _missing(error)
        prop = schema.get("properties", {}).get(missing, {})
        hint = _hint(prop)
        where = f" in {name}" if path else ""
        return [SchemaProblem(path, f"missing required key {missing!r}{where}" + (f" ({hint})" if hint else ""))]
    if kind == "type":
        expected = error.validator_value
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        tip = ""
        if "string" in (expected if isinstance(expected, list) else [expected]) and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            tip = _quote_tip(schema, source(path))
        if path == ():
            return [SchemaProblem(path, f"the file must be {words} of keys such as version, organisation, users; "
                                        f"found {_what(value)}")]
        return [SchemaProblem(path, f"{name} must be {words}, not {_what(value)}{tip}")]
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        unquote = [a for a in allowed if not isinstance(a, str) and isinstance(value, str) and str(a) == value]
        if unquote:
            return [SchemaProblem(path, f"{name} must be the number {unquote[0]}, not the string {value!r}; "
                                        "write it without quotes")]
        return [SchemaProblem(path, f"{value!r} is not allowed for {name}; allowed: "
                                    + ", ".join(json.dumps(a) if not isinstance(a, str) else a for a in allowed))]
    if kind == "pattern":
        if value == "rolling" and schema.get("format") == "date":
            return [SchemaProblem(path, f"{name} takes a date as YYYY-MM-DD here, not `rolling`: a person's until is "
                                        "the end of a contract (only authorisations are kept rolling)")]
        if isinstance(value, str) and schema.get("format") in ("date", "until"):
            dated = _date_problem(path, schema, value)
            if dated is not None:
                return [dated]
        hint = _hint(schema)
        phone = _international(schema.get("pattern"), value) if isinstance(value, str) else None
        better = f'; did you mean "{phone}"?' if phone is not None else ""
        return [SchemaProblem(path, f"{value!r} is not a valid {name}" + (f": {hint}" if hint else "") + better)]
    if kind == "minItems":
        return [SchemaProblem(path, f"{name} needs at least {error.validator_value} item(s)")]
    if kind == "uniqueItems":
        return [SchemaProblem(path, f"{name} lists the same item more than once")]
    if kind == "minLength":
        return [SchemaProblem(path, f"{name} must not be empty")]
    if kind == "maxLength":
        return [SchemaProblem(path, f"{name} is longer than {error.validator_value} characters")]
    if kind == "minimum":
        return [SchemaProblem(path, f"{name} must be at least {error.validator_value}")]
    return [SchemaProblem(path, f"{name}: {error.message}")]
