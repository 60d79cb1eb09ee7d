"""Safe YAML loading that remembers where every node came from.

PyYAML's plain loaders forget positions and silently keep the last of two equal keys. Here the document
is composed into nodes (libyaml when available), converted to plain JSON-like data by hand, and the node
tree is kept so any JSON path can be mapped back to a line and column. Only the standard YAML tags are
accepted; timestamps stay strings (the schema checks dates), and alias expansion is bounded.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

_T = "tag:yaml.org,2002:"
_IMPLICIT = Resolver.yaml_implicit_resolvers


class _FastResolver:
    """PyYAML's safe tag resolution without its per-node path-resolver bookkeeping (none are registered)."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                for tag, regexp in _IMPLICIT.get(value[0] if value else "", ()):
                    if regexp.match(value):
                        return tag
            return _T + "str"
        return _T + "seq" if kind is SequenceNode else _T + "map"


try:  # libyaml parses an order of magnitude faster; fall back to the pure-Python parser.
    from yaml._yaml import CParser

    class _Loader(CParser, _FastResolver):  # type: ignore[misc]
        pass
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: Largest file accepted, in bytes: ample for 10,000 users, small enough to refuse accidents.
MAX_BYTES = 32 * 1024 * 1024
#: Most nodes a document may expand to (aliases included): refuses "billion laughs" documents.
MAX_NODES = 5_000_000
MAX_DEPTH = 64

_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (_T + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_SEQ, _MAP = _T + "seq", _T + "map"

JsonPath = tuple[str | int, ...]


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


@dataclass
class YamlDocument:
    """Plain data plus the node tree it came from, to answer "where is this path?"."""

    data: Any
    root: Node | None
    problems: list[YamlProblem] = field(default_factory=list)

    def source_text(self, path: JsonPath) -> str | None:
        """The text a scalar was written as (`01234567`, not the number YAML made of it), if any."""
        node = self._node(path)
        return node.value if isinstance(node, ScalarNode) else None

    def _node(self, path: JsonPath) -> Node | None:
        node = self.root
        for part in path:
            if isinstance(node, MappingNode) and isinstance(part, str):
                node = next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part), None)
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
            else:
                return None
        return node

    def mark(self, path: JsonPath, *, key: bool = False) -> Mark:
        """Position of the node at `path` (of its key with `key=True`), or of its nearest existing ancestor."""
        node = self.root
        if node is None:
            return Mark(1, 1)
        best = _mark(node)
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, MappingNode) and isinstance(part, str):
                found = None
                for knode, vnode in node.value:
                    if isinstance(knode, ScalarNode) and knode.value == part:
                        found = (knode, vnode)
                        break
                if found is None:
                    return best
                node = found[1]
                best = _mark(found[0] if (key and last) else node)
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                best = _mark(node)
            else:
                return best
        return best


class YamlLoadError(Exception):
    """The text is not a YAML document we can read at all (syntax, encoding, size)."""

    def __init__(self, mark: Mark, code: str, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.code = code
        self.message = message


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def decode(raw: bytes) -> str:
    """Bytes to text: UTF-8 (a BOM is allowed), with the position of the first bad byte on failure."""
    if len(raw) > MAX_BYTES:
        raise YamlLoadError(Mark(1, 1), "yaml", f"file is {len(raw):,} bytes; at most {MAX_BYTES:,} are accepted")
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building hundreds of thousands of nodes triggers the cyclic GC over and over (4x slower); the
    nodes form no garbage cycles, so collection waits until the document is built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()  # what was built is long-lived: keep later collections from walking it again
            gc.enable()


def _check_depth(text: str) -> None:
    """libyaml composes nested collections recursively: 30,000 nested `[` (or `- - - ...` on one line)
    overflow the C stack and kill the process. A cheap scan finds text that might nest that deep; only then
    is the depth measured exactly on libyaml's event stream, which is parsed without recursion."""
    if not _maybe_deep(text):
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise YamlLoadError(Mark(mark.line + 1, mark.column + 1), "yaml",
                                        f"nesting deeper than {MAX_DEPTH} levels")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return  # a syntax error: composing reports it, with its position


_OPENERS = re.compile(r"(?:[\[{?-]\s*){%d}" % (MAX_DEPTH // 4))


def _maybe_deep(text: str) -> bool:
    """True when brackets could nest past the limit, or a line opens many compact block collections."""
    if _OPENERS.search(text):
        return True
    depth = 0
    for char in _BRACKETS.sub("", text):
        depth += 1 if char in "[{" else -1
        if depth > MAX_DEPTH // 2:
            return True
    return False


_BRACKETS = re.compile(r"[^\[\]{}]+")


def _load(text: str) -> YamlDocument:
    _check_depth(text)
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
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
    if len(nodes) > 1:
        raise YamlLoadError(_mark(nodes[1]), "yaml", "more than one YAML document in the file; write one per file")
    root = nodes[0] if nodes else None
    converter = _Converter()
    data = converter.convert(root, 0) if root is not None else None
    return YamlDocument(data=data, root=root, problems=converter.problems)


class _Converter:
    """Node tree to JSON-like data; reports duplicate keys and unsupported tags instead of guessing."""

    def __init__(self) -> None:
        self.problems: list[YamlProblem] = []
        self.count = 0
        self._scalars = SafeConstructor()

    def convert(self, node: Node, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlLoadError(_mark(node), "yaml", f"document expands to more than {MAX_NODES:,} nodes (alias bomb?)")
        if depth > MAX_DEPTH:
            raise YamlLoadError(_mark(node), "yaml", f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.bad_tag(node)
            return [self.convert(child, depth + 1) for child in node.value]
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                self.bad_tag(node)
            return self.mapping(node, depth)
        raise YamlLoadError(_mark(node), "yaml", "unsupported YAML node")  # pragma: no cover

    def mapping(self, node: MappingNode, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first: dict[Any, Node] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode):
                self.problems.append(YamlProblem(_mark(knode), "yaml", "a mapping key must be a plain value"))
                continue
            if knode.tag == _T + "merge":
                self.problems.append(YamlProblem(_mark(knode), "yaml",
                                                 "merge keys (<<) are not supported; write the keys out"))
                continue
            key = knode.value  # as written: `on:` stays 'on' (not YAML 1.1's True), so messages and positions match
            if knode.tag not in (_STR, _INT, _BOOL, _NULL, _FLOAT, _TIMESTAMP):
                self.bad_tag(knode)
            if key in first:
                prev = _mark(first[key])
                self.problems.append(YamlProblem(
                    _mark(knode), "duplicate-key",
                    f"duplicate key {key!r} (first at line {prev.line}, column {prev.column}); "
                    "a key may appear once per mapping"))
                self.convert(vnode, depth + 1)
                continue
            first[key] = knode
            result[key] = self.convert(vnode, depth + 1)
        return result

    def scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR or tag == _TIMESTAMP:
            return node.value  # dates stay text: the schema and the models parse them
        if tag == _INT:
            return self._scalars.construct_yaml_int(node)
        if tag == _BOOL:
            return self._scalars.construct_yaml_bool(node)
        if tag == _NULL:
            return None
        if tag == _FLOAT:
            return self._scalars.construct_yaml_float(node)
        self.bad_tag(node)
        return node.value

    def bad_tag(self, node: Node) -> None:
        self.problems.append(YamlProblem(
            _mark(node), "yaml",
            f"YAML tag {_short_tag(node.tag)!r} is not allowed; only plain strings, numbers, booleans, lists and mappings"))


_SYNTAX_HINTS = {
    "mapping values are not allowed here": "; a value that contains ': ' must be written in quotes",
    "mapping values are not allowed in this context": "; a value that contains ': ' must be written in quotes",
    "found character '\\t' that cannot start any token": "; indent with spaces, not tabs",
    "found undefined alias": "; an alias (*name) needs an anchor (&name) before it",
}


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag
