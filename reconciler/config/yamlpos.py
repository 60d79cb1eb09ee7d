"""Safe YAML loading that remembers where every node came from.

PyYAML's plain loaders forget positions and silently keep the last of two equal keys. Here the parser's
events (libyaml when available) are turned into plain JSON-like data by hand, keeping two numbers per node
(not PyYAML's node tree, ~40x the file's size) so any JSON path can be mapped back to a line and column.
Only the standard YAML tags are accepted; timestamps stay strings (the schema checks dates), and nesting,
alias expansion and integer length are bounded: every limit is a positioned error, never a crash.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import Any, Iterator

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from reconciler.collector import gc_paused
from reconciler.diagnostics import JsonPath  # noqa: F401  (re-exported: configs name paths this way)

_T = "tag:yaml.org,2002:"
_IMPLICIT = Resolver.yaml_implicit_resolvers


try:  # libyaml parses an order of magnitude faster; fall back to the pure-Python parser.
    from yaml._yaml import CParser as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: Largest file accepted, in bytes: ample for 10,000 users, small enough to refuse accidents.
MAX_BYTES = 32 * 1024 * 1024
#: Most nodes a document may expand to (aliases included): refuses "billion laughs" documents.
MAX_NODES = 5_000_000
MAX_DEPTH = 64

_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (_T + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_SEQ, _MAP = _T + "seq", _T + "map"



@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column in a source file."""

    line: int
    column: int


@dataclass(slots=True)
class YamlProblem:
    """A problem found while reading YAML: where, which code, what."""

    mark: Mark
    code: str
    message: str


class YamlDocument:
    """Plain data plus compact positions of its nodes, to answer "where is this path?".

    Nodes are numbered in document order (mapping keys too); per node only its packed position and the size
    of its subtree are kept, so a path is found again by walking the data and skipping subtrees.
    """

    def __init__(self, data: Any, marks: array[int] | None = None, sizes: array[int] | None = None,
                 aliases: dict[int, int] | None = None, texts: dict[int, str] | None = None,
                 skipped: set[int] | None = None, problems: list[YamlProblem] | None = None) -> None:
        self.data = data
        self._marks = marks if marks is not None else array("Q")
        self._sizes = sizes if sizes is not None else array("I")
        self._aliases = aliases or {}
        self._texts = texts or {}
        self._skipped = skipped or set()
        self.problems: list[YamlProblem] = problems or []
        self.digest = b""               # sha256 of the bytes it was read from (set by the loader): plans record it

    @property
    def root(self) -> int | None:
        """The root node's id, None for an empty document."""
        return 0 if self._marks else None

    def source_text(self, path: JsonPath) -> str | None:
        """The text a scalar was written as (`01234567`, not the number YAML made of it), if any."""
        found = self._find(path, key=False)
        if found is None or len(found[2]) != len(path):
            return None
        node, value = found[0], found[1]
        if node in self._texts:
            return self._texts[node]
        return value if isinstance(value, str) else None

    def mark(self, path: JsonPath, *, key: bool = False) -> Mark:
        """Position of the node at `path` (of its key with `key=True`), or of its nearest existing ancestor."""
        found = self._find(path, key=key)
        if found is None:
            return Mark(1, 1)
        packed = self._marks[found[0]]
        return Mark((packed >> 32) + 1, (packed & 0xFFFFFFFF) + 1)

    def _find(self, path: JsonPath, *, key: bool) -> tuple[int, Any, JsonPath] | None:
        """(node, value, the part of `path` found): the deepest node on `path`; with `key`, a last mapping
        part gives its key node."""
        if not self._marks:
            return None
        node, value, done = 0, self.data, 0
        for i, part in enumerate(path):
            node = self._aliases.get(node, node)
            if isinstance(value, dict) and isinstance(part, str) and part in value:
                index = list(value).index(part)
                child, seen = node + 1, -1
                while True:                     # children alternate key, value; skipped entries are not data
                    value_node = child + self._sizes[child]
                    if child not in self._skipped:
                        seen += 1
                        if seen == index:
                            break
                    child = value_node + self._sizes[value_node]
                if key and i == len(path) - 1:
                    return child, value[part], path
                node, value = value_node, value[part]
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                child = node + 1
                for _ in range(part):
                    child += self._sizes[child]
                node, value = child, value[part]
            else:
                break
            done = i + 1
        return node, value, path[:done]


class YamlLoadError(Exception):
    """The text is not a YAML document we can read at all (syntax, encoding, size)."""

    def __init__(self, mark: Mark, code: str, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.code = code
        self.message = message


def decode(raw: bytes) -> str:
    """Bytes to text: UTF-8 (a BOM is allowed), with the position of the first bad byte on failure."""
    if len(raw) > MAX_BYTES:
        raise YamlLoadError(Mark(1, 1), "yaml", f"file is larger than {MAX_BYTES:,} bytes; at most {MAX_BYTES:,} "
                                                "are accepted (split the organisations over several files)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # utf-8-sig's offsets skip the BOM
        line_start = body.rfind(b"\n", 0, exc.start) + 1
        line = body.count(b"\n", 0, exc.start) + 1
        col = len(body[line_start: exc.start].decode("utf-8", errors="replace")) + 1  # characters, not bytes
        raise YamlLoadError(Mark(line, col), "yaml", "file is not UTF-8 text (is it a binary file?)") from None
    for char, name in (("\x85", "U+0085 (next line)"), ("\u2028", "U+2028 (line separator)"),
                       ("\u2029", "U+2029 (paragraph separator)")):
        if char in text:  # YAML counts these as line breaks and editors do not: positions would disagree
            before = text[: text.index(char)]
            raise YamlLoadError(Mark(before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1), "yaml",
                                f"file contains the invisible character {name}; remove it")
    if "\x00" in text:
        before = text[: text.index("\x00")]
        raise YamlLoadError(Mark(before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1),
                            "yaml", "file contains a NUL byte (is it a binary file?)")
    return text


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document into plain data, keeping nodes for positions; syntax errors raise."""
    with gc_paused():
        return _load(text)


def _load(text: str) -> YamlDocument:
    builder = _Builder()
    try:
        builder.build(yaml.parse(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own limit (1,000 levels, PyYAML >= 6.0.2) fired before ours
            raise YamlLoadError(pos, "yaml", _too_deep()) from None
        context = ""
        if exc.context:
            cm = exc.context_mark
            where = f" at line {cm.line + 1}, column {cm.column + 1}" if cm and (cm.line, cm.column) != (
                mark.line if mark else -1, mark.column if mark else -1) else ""
            context = f" ({exc.context}{where})"
        hint = _SYNTAX_HINTS.get(problem, "")
        raise YamlLoadError(pos, "yaml", f"YAML syntax: {problem}{context}{hint}") from None
    except yaml.reader.ReaderError as exc:  # control characters and the like, at a character offset
        before = text[: exc.position]
        pos = Mark(before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        raise YamlLoadError(pos, "yaml", f"YAML: {exc.reason} (character {exc.character!r}); "
                                         "remove it or write it as an escape in a double-quoted string") from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(Mark(1, 1), "yaml", f"YAML: {exc}") from None
    return builder.document()


def _too_deep() -> str:
    return f"nesting deeper than {MAX_DEPTH} levels"

_SCALAR_TAGS = (_STR, _INT, _BOOL, _NULL, _FLOAT, _TIMESTAMP)
_TAG_WORDS = {_BOOL: "true or false", _INT: "a whole number", _FLOAT: "a number"}


@dataclass(slots=True)
class _Anchor:
    node: int               # the anchored node's id
    value: Any              # its data (shared by every alias: the data is read, never changed)
    count: int              # nodes it expands to, so aliases count towards MAX_NODES as if written out
    scalar: str | None      # the text of an anchored scalar (an alias used as a mapping key)


_SKIP = object()
_ScalarEvent, _AliasEvent, _StreamEndEvent = yaml.ScalarEvent, yaml.AliasEvent, yaml.StreamEndEvent
_MappingStart, _SequenceStart = yaml.MappingStartEvent, yaml.SequenceStartEvent
_MappingEnd, _SequenceEnd = yaml.MappingEndEvent, yaml.SequenceEndEvent


class _Builder:
    """Builds plain data and compact positions from the parser's events, without a node tree.

    PyYAML's nodes cost ~400 bytes of Python objects per scalar (a 10 MB file took 400 MB); here every node
    gets an id in document order and just two numbers: its packed position and the size of its subtree (keys
    and values alike), from which `YamlDocument.mark` finds any path again. The events are consumed with an
    explicit stack, so no nesting depth can exhaust the C or Python stack.

    `build` is one loop over the events with the open collection in local variables: five method calls per
    event (the first version) cost twice what PyYAML takes to make the events, and libyaml's own parsing is
    a fifth of that; only what is rare (tags, anchors, aliases, odd keys, duplicates, non-text scalars) goes
    through a method.
    """

    def __init__(self) -> None:
        self.marks = array("Q")      # per node: line << 32 | column, 0-based
        self.sizes = array("I")      # per node: nodes in its subtree, itself included
        self.aliases: dict[int, int] = {}       # alias node -> the anchored node
        self.texts: dict[int, str] = {}         # non-string scalars: the text as written
        self.skipped: set[int] = set()          # key nodes of mapping entries left out of the data
        self.problems: list[YamlProblem] = []
        self.anchors: dict[str, _Anchor] = {}
        self.data: Any = None
        self._strings: dict[str, str] = {}      # one object per distinct text: keys and values repeat a lot
        self._tags: dict[str, str] = {}         # plain text that a resolver may claim -> its tag
        self._scalars = SafeConstructor()

    def document(self) -> YamlDocument:
        return YamlDocument(self.data, self.marks, self.sizes, self.aliases, self.texts, self.skipped,
                            self.problems)

    # ------------------------------------------------------------------------------------------- events
    def build(self, events: Iterator[yaml.Event]) -> None:
        """Consume the events of one document into `data`, `marks` and `sizes` (more documents: an error)."""
        marks, sizes, strings, tags, anchors = self.marks, self.sizes, self._strings, self._tags, self.anchors
        add_mark, add_size, intern, resolvers = marks.append, sizes.append, sys.intern, _IMPLICIT
        STR, TIMESTAMP, SKIP, Scalar = _STR, _TIMESTAMP, _SKIP, _ScalarEvent
        stack: list[tuple[Any, bool, bool, Any, int, str | None, int]] = []   # the enclosing collections
        # the open collection: its list or dict, whether a mapping, whether a key comes next, the pending key
        # (SKIP: the entry is left out), its node, anchor and the node count when it started
        container: Any = None
        is_map = expect_key = False
        key: Any = None
        open_node, open_anchor, open_count = -1, None, 0
        # n: nodes so far (the next node's id); the count towards MAX_NODES is n + extra, extra being what
        # aliases expand to beyond their own node, so one comparison with `limit` checks it
        n = extra = 0
        limit = MAX_NODES
        has_root = False
        for event in events:
            kind = type(event)
            if kind is Scalar or kind is _MappingStart or kind is _SequenceStart:   # a new node
                if not stack and has_root:
                    raise self._second_document(event)
                node = n
                n += 1
                start = event.start_mark
                add_mark((start.line << 32) | start.column)
                add_size(1)
                if kind is Scalar:
                    text = event.value
                    tag = event.tag
                    if tag is None or tag == "!":
                        if event.implicit[0] and (not text or text[0] in resolvers):
                            tag = tags.get(text)
                            if tag is None:
                                tag = tags[text] = _resolve_scalar(text, event.implicit)
                        else:
                            tag = STR
                    if is_map and expect_key:           # a key stays as written: `on:` is 'on', not YAML 1.1's True
                        if n > limit:
                            raise self._too_many(event)
                        if event.anchor is not None:
                            self._anchor(event.anchor, node, text, 1, text, event)
                        expect_key = False
                        if tag is STR and text not in container:
                            key = intern(text)
                        else:
                            key = self._key(node, tag, text, container, open_node)
                        continue
                    if tag == STR or tag == TIMESTAMP:
                        value = strings.setdefault(text, text)
                    else:
                        value = self._scalar(node, event, tag)
                    if n > limit:
                        raise self._too_many(event)
                    if event.anchor is not None:
                        self._anchor(event.anchor, node, value, 1, text, event)
                else:
                    if len(stack) >= MAX_DEPTH:
                        raise YamlLoadError(_event_mark(event), "yaml", _too_deep())
                    mapping = kind is _MappingStart
                    tag = event.tag
                    if tag is not None and tag != "!" and tag != (_MAP if mapping else _SEQ):
                        self._bad_tag(tag, event)
                    if n > limit:
                        raise self._too_many(event)
                    stack.append((container, is_map, expect_key, key, open_node, open_anchor, open_count))
                    container, is_map, expect_key, key = ({} if mapping else []), mapping, True, None
                    open_node, open_anchor, open_count = node, event.anchor, n + extra
                    continue
            elif kind is _MappingEnd or kind is _SequenceEnd:
                node, value = open_node, container
                sizes[node] = n - node
                if open_anchor is not None:
                    self._anchor(open_anchor, node, value, n + extra - open_count + 1, None, event)
                container, is_map, expect_key, key, open_node, open_anchor, open_count = stack.pop()
                if is_map and expect_key:
                    expect_key = False
                    key = self._key(node, _MAP if kind is _MappingEnd else _SEQ, None, container, open_node)
                    continue
            elif kind is _AliasEvent:
                anchor = anchors.get(event.anchor)
                if anchor is None:
                    raise yaml.composer.ComposerError(None, None, "found undefined alias", event.start_mark)
                if not stack and has_root:
                    raise self._second_document(event)
                node = n
                n += 1
                add_mark(marks[anchor.node])          # an alias is where its anchored value is written
                add_size(1)
                self.aliases[node] = anchor.node
                extra += anchor.count - 1
                limit = MAX_NODES - extra
                if n > limit:
                    raise self._too_many(event)
                if is_map and expect_key:
                    expect_key = False
                    key = self._key(node, STR if anchor.scalar is not None else None, anchor.scalar, container,
                                    open_node)
                    continue
                value = anchor.value
            elif kind is _StreamEndEvent:
                break
            else:                                   # stream and document starts and ends: nothing to place
                continue
            # a value (a scalar, a closed collection, an alias) takes its place in the open collection
            if is_map:
                expect_key = True
                if key is not SKIP:
                    container[key] = value
            elif stack:
                container.append(value)
            else:
                self.data, has_root = value, True

    # --------------------------------------------------------------------------------- the rarer cases
    @staticmethod
    def _second_document(event: yaml.Event) -> YamlLoadError:
        return YamlLoadError(_event_mark(event), "yaml", "more than one YAML document in the file; write one per file")

    @staticmethod
    def _too_many(event: yaml.Event) -> YamlLoadError:
        return YamlLoadError(_event_mark(event), "yaml",
                             f"document expands to more than {MAX_NODES:,} nodes (alias bomb?)")

    def _anchor(self, name: str, node: int, value: Any, count: int, scalar: str | None, event: yaml.Event) -> None:
        if name in self.anchors:
            first = self.marks[self.anchors[name].node]
            raise yaml.composer.ComposerError(
                "found duplicate anchor; first occurrence", yaml.Mark("", 0, first >> 32, first & 0xFFFFFFFF, None,
                                                                      None),
                "second occurrence", event.start_mark)
        self.anchors[name] = _Anchor(node, value, count, scalar)

    def _key(self, node: int, tag: str | None, text: str | None, mapping: dict[str, Any], mapping_node: int) -> Any:
        """The key of a mapping entry, or _SKIP (with a problem) when the entry cannot be kept."""
        at = self._mark_of(node)
        if text is None:
            self.problems.append(YamlProblem(at, "yaml", "a mapping key must be a plain value"))
        elif tag == _T + "merge":
            self.problems.append(YamlProblem(at, "yaml", "merge keys (<<) are not supported; write the keys out"))
        else:
            if tag not in _SCALAR_TAGS:
                self._bad_tag(tag or "", at)
            key = sys.intern(text)  # as written: `on:` stays 'on' (not YAML 1.1's True), so messages and positions match
            if key not in mapping:
                return key
            prev = self._mark_of(self._key_node(mapping_node, list(mapping).index(key)))
            self.problems.append(YamlProblem(
                at, "duplicate-key", f"duplicate key {key!r} (first at line {prev.line}, column {prev.column}); "
                                     "a key may appear once per mapping"))
        self.skipped.add(node)
        return _SKIP

    def _key_node(self, mapping_node: int, index: int) -> int:
        """The key node of the `index`-th kept entry of a mapping (the entries before it are complete)."""
        child, seen = mapping_node + 1, -1
        while True:                      # children alternate key, value; skipped entries are not data
            if child not in self.skipped:
                seen += 1
                if seen == index:
                    return child
            value_node = child + self.sizes[child]
            child = value_node + self.sizes[value_node]

    def _mark_of(self, node: int) -> Mark:
        packed = self.marks[node]
        return Mark((packed >> 32) + 1, (packed & 0xFFFFFFFF) + 1)

    # ------------------------------------------------------------------------------------------ scalars
    def _scalar(self, node: int, event: yaml.ScalarEvent, tag: str) -> Any:
        """The value of a scalar that is not plain text; the text as written is kept in `texts`."""
        text = event.value
        if tag not in (_INT, _BOOL, _NULL, _FLOAT):
            self._bad_tag(tag, event)
            return self._strings.setdefault(text, text)
        self.texts[node] = text
        if tag == _NULL:
            return None
        scalar = ScalarNode(tag, text)
        try:
            if tag == _BOOL:
                return self._scalars.construct_yaml_bool(scalar)
            if tag == _FLOAT:
                return self._scalars.construct_yaml_float(scalar)
            return self._scalars.construct_yaml_int(scalar)
        except (KeyError, IndexError, ValueError):
            digits = sum(c.isdigit() for c in text)
            if tag == _INT and digits > sys.get_int_max_str_digits():  # more than Python converts (4,300)
                raise YamlLoadError(_event_mark(event), "yaml",
                                    f"integer too long: {digits:,} digits (at most {sys.get_int_max_str_digits():,}); "
                                    "if it is text, write it in quotes") from None
        # an explicit tag on text that is not of its kind (`!!bool Acme`): PyYAML's constructors raise a KeyError
        self.problems.append(YamlProblem(_event_mark(event), "yaml", f"YAML tag {_short_tag(tag)!r} needs "
                                         f"{_TAG_WORDS[tag]}, not {text!r}; remove the tag or correct the value"))
        return self._strings.setdefault(text, text)

    def _bad_tag(self, tag: str, where: yaml.Event | Mark) -> None:
        self.problems.append(YamlProblem(
            where if isinstance(where, Mark) else _event_mark(where), "yaml",
            f"YAML tag {_short_tag(tag)!r} is not allowed; only plain strings, numbers, booleans, lists and mappings"))


def _resolve_scalar(value: str, implicit: tuple[bool, bool]) -> str:
    """PyYAML's safe tag resolution of a plain scalar (none registers path resolvers)."""
    if implicit[0]:
        for tag, regexp in _IMPLICIT.get(value[0] if value else "", ()):
            if regexp.match(value):
                return tag
    return _STR


def _event_mark(event: yaml.Event) -> Mark:
    return Mark(event.start_mark.line + 1, event.start_mark.column + 1)


_SYNTAX_HINTS = {
    "mapping values are not allowed here": "; a value that contains ': ' must be written in quotes",
    "mapping values are not allowed in this context": "; a value that contains ': ' must be written in quotes",
    "found character '\\t' that cannot start any token": "; indent with spaces, not tabs",
    "found undefined alias": "; an alias (*name) needs an anchor (&name) before it",
}


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag
