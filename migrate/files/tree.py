"""pglast's AST of a file, read from pglast's JSON and built only where lint looks.

Lint walks each statement's tree as pglast's Python objects (`node.relation.relname`,
`type(node).__name__`, enums, tuples). pglast builds every node of every statement as a Python
object, validating each attribute as it sets it: for the realistic set that was 4.5 s of an apply
whose floor is about 12 s (issue 16), while lint reads a few attributes of most statements and
never looks inside a VALUES list, a view's query or a policy's expression.

Here each node is a `LazyNode` over its part of pglast's JSON (libpg_query's, from the same
parser): an attribute is converted the first time it is read, the way pglast converts it from the
parser's C structs (the types come from pglast's own class metadata, `ast.X.__slots__`), and kept.
The result is attribute for attribute what `pglast.parser.parse_sql` gives: a node's class name,
booleans False and numbers 0 when the JSON leaves them out, enums as pglast's enums, lists as
tuples, locations as character indexes (pglast's Displacements for a text that is not ASCII), and
A_Const's `val` as pglast's Integer/Float/Boolean/String/BitString. tests/test_speed_paths.py
compares every attribute of every node with pglast's objects over the realistic set and a corpus of
tricky statements.
"""

from __future__ import annotations

import json
from typing import Any, Callable

INTEGERS = frozenset({"AclMode", "AttrNumber", "Index", "ParseLoc", "RelFileNumber", "SubTransactionId", "bits32",
                      "int", "int16", "int32", "long", "uint32", "uint64"})
WRAPPED = frozenset({"Node*", "Expr*"})  # in the JSON as {"Type": {...}}; a typed pointer's fields come bare
VALUE_KEYS = (("boolval", "Boolean"), ("ival", "Integer"), ("fval", "Float"), ("bsval", "BitString"),
              ("sval", "String"))  # A_Const's value, in the order pglast's create_A_Const tests them

Locate = Callable[[int], "int | None"]


class LazyNode:
    """A pglast node whose attributes are converted from its JSON on first read (see the module docstring)."""

    _fields: dict[str, tuple[str, str, Any]] = {}  # attribute -> (JSON key, how to convert, its class or enum)

    def __init__(self, data: dict[str, Any], at: Locate) -> None:
        self._data = data
        self._at = at

    def __getattr__(self, name: str) -> Any:
        try:
            key, kind, target = self._fields[name]
        except KeyError:
            raise AttributeError(name) from None
        value = _convert(self._data.get(key), kind, target, self._at)
        self.__dict__[name] = value
        return value

    def __iter__(self) -> Any:
        return iter(self._fields)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (lazy)>"


class _LazyA_Const(LazyNode):  # noqa: N801 - pglast's name for the node
    """A_Const: `isnull` and `val` (pglast has no location here); its value is one of five keys in the JSON."""

    def __getattr__(self, name: str) -> Any:
        if name == "isnull":
            value: Any = bool(self._data.get("isnull"))
        elif name == "val":
            value = None
            if not self._data.get("isnull"):
                for key, kind in VALUE_KEYS:
                    if key in self._data:
                        value = _node_of(kind, self._data[key] or {}, self._at)
                        break
        else:
            raise AttributeError(name)
        self.__dict__[name] = value
        return value


class _LazyRawStmt(LazyNode):
    """RawStmt: pglast gives `stmt_len` in characters, from the two ends' byte offsets."""

    def __getattr__(self, name: str) -> Any:
        if name != "stmt_len":
            return super().__getattr__(name)
        start, length = self._data.get("stmt_location") or 0, self._data.get("stmt_len") or 0
        value = self._at(start + length) - self._at(start)  # type: ignore[operator]
        self.__dict__[name] = value
        return value


_classes: dict[str, type[LazyNode]] = {}


def _class_of(name: str) -> type[LazyNode]:
    """The LazyNode subclass named like pglast's class `name`, its fields read from pglast's metadata."""
    made = _classes.get(name)
    if made is not None:
        return made
    from pglast import ast, enums

    pglast_class = getattr(ast, name)
    fields: dict[str, tuple[str, str, Any]] = {}
    for attribute, info in pglast_class.__slots__.items():
        ctype = info.c_type
        key = attribute[:-1] if attribute.endswith("_") else attribute  # def_ is "def" in the JSON
        if ctype == "bool":
            fields[attribute] = (key, "bool", None)
        elif ctype in INTEGERS:
            fields[attribute] = (key, "location" if ctype == "ParseLoc" else "int", None)
        elif ctype in ("Cost", "Cardinality"):
            fields[attribute] = (key, "float", None)
        elif ctype == "char":
            fields[attribute] = (key, "char", None)
        elif ctype == "char*":
            fields[attribute] = (key, "str", None)
        elif ctype == "List*":
            fields[attribute] = (key, "list", None)
        elif ctype in WRAPPED:
            fields[attribute] = (key, "node", None)
        elif ctype == "Bitmapset*":
            fields[attribute] = (key, "set", None)
        elif hasattr(enums, ctype):
            fields[attribute] = (key, "enum", getattr(enums, ctype))
        elif ctype.rstrip("*") in _known_classes():
            fields[attribute] = (key, "typed", ctype.rstrip("*"))
        else:  # a kind no raw parse tree holds (ValUnion is A_Const's, handled by its class)
            fields[attribute] = (key, "unknown", ctype)
    base = {"A_Const": _LazyA_Const, "RawStmt": _LazyRawStmt}.get(name, LazyNode)
    made = type(name, (base,), {"_fields": fields, "__module__": __name__})
    _classes[name] = made
    return made


_known: set[str] = set()


def _known_classes() -> set[str]:
    if not _known:
        from pglast import ast

        _known.update(name for name in dir(ast) if isinstance(getattr(ast, name), type)
                      and issubclass(getattr(ast, name), ast.Node))
    return _known


def _node_of(name: str, data: dict[str, Any], at: Locate) -> Any:
    if name == "List":  # a list inside a list: pglast makes it a tuple
        return tuple(_wrapped(item, at) for item in data.get("items", ()))
    return _class_of(name)(data, at)


def _wrapped(value: Any, at: Locate) -> Any:
    """A node as the JSON writes a Node* (or a list item): {"Type": {fields}}."""
    if value == {}:  # a NULL list item
        return None
    if isinstance(value, dict) and len(value) == 1:
        (name, data), = value.items()
        return _node_of(name, data, at)
    raise ValueError(f"not a node in pglast's JSON: {str(value)[:80]}")


def _convert(value: Any, kind: str, target: Any, at: Locate) -> Any:
    """One attribute's JSON value as pglast's create_* functions make it (absent: the C struct's zero)."""
    if kind == "bool":
        return bool(value)
    if kind == "location":
        return at(value or 0)
    if kind == "int":
        return value or 0
    if kind == "float":
        return float(value or 0)
    if kind == "char":
        return value if value else "\x00"
    if kind == "str":
        return value
    if kind == "enum":
        return target[value] if isinstance(value, str) else target(value or 0)
    if value is None:
        return None
    if kind == "list":
        return tuple(_wrapped(item, at) for item in value)
    if kind == "node":
        return _wrapped(value, at)
    if kind == "typed":
        data = value[target] if len(value) == 1 and target in value else value
        return _class_of(target)(data, at)
    if kind == "set":
        return set(value)
    raise ValueError(f"pglast's JSON holds a {target} here, which this reader does not know")


def locator(text: str) -> Locate:
    """pglast's conversion of a UTF-8 byte offset of `text` to a character index (None outside the text)."""
    size = len(text.encode("utf-8")) if not text.isascii() else len(text)
    if text.isascii():
        return lambda offset: offset if 0 <= offset < size else None
    from pglast.parser import Displacements

    return Displacements(text)


def raw_statements(text: str, document: str | None = None) -> tuple[Any, ...]:
    """What `pglast.parser.parse_sql(text)` returns (its RawStmt nodes), built lazily from its JSON
    (`document`: pglast's JSON of this very text, when the caller has it)."""
    from pglast import parser

    document = json.loads(parser.parse_sql_json(text) if document is None else document)
    at = locator(text)
    raw = _class_of("RawStmt")
    return tuple(raw(statement, at) for statement in document.get("stmts", ()))
