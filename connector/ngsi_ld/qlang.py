"""The NGSI-LD Query Language (ETSI GS CIM 009 clause 4.9), the subset docs/ngsi-ld.md lists.

``parse_q(text)`` gives a tree of ``Or``/``And``/``Term`` or raises ``bad_request`` naming the
position and what was expected there; ``Node.matches(entity)`` evaluates it against one
normalized entity. The grammar handled::

    Query     = Or
    Or        = And *( "|" And )
    And       = Unit *( ";" Unit )              ; ";" binds tighter than "|"
    Unit      = "(" Query ")" / Term
    Term      = Path [ Op Value ]               ; a Path alone: the attribute exists
    Path      = AttrName *( "." AttrName ) *( "[" Member "]" )
    Op        = "==" / "!=" / ">=" / "<=" / ">" / "<" / "~=" / "!~="
    Value     = Scalar [ ".." Scalar ]          ; a range (== and != only)
              / Scalar 1*( "," Scalar )         ; a value list (== and != only)
    Scalar    = quoted string / number / true / false / dateTime / date / time / URI

Semantics: a Property is compared by its ``value``, a Relationship by its ``object``, a
GeoProperty by its GeoJSON; ``attr[member]`` goes into a structured value. An array value
matches when one of its elements does. Values of different kinds never match (a number is not
equal to a string). ``attr.sub`` (a sub-attribute) is accepted and matches nothing here: the
facade's entities carry no sub-attributes. Limits: 4,096 characters, 32 levels of parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connector.ngsi_ld.problems import bad_request

MAX_Q = 4096
MAX_DEPTH = 32
OPERATORS = ("!~=", "==", "!=", ">=", "<=", "~=", ">", "<")
_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_@:/#.-]*")
_MEMBER = re.compile(r"[^\[\]]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\Z"
                       r"|\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\"<>\\^`{|}]+\Z")
_STOP = set(";|),")


@dataclass(frozen=True)
class Range:
    low: Any
    high: Any


@dataclass(frozen=True)
class Term:
    attr: str
    sub: tuple[str, ...]         # attr.sub.sub: sub-attributes (none here: never matches)
    members: tuple[str, ...]     # attr[a][b]: members of a structured value
    op: str | None = None
    value: Any = None            # a scalar, a tuple (value list) or a Range

    def matches(self, entity: dict[str, Any]) -> bool:
        found, target = _resolve(entity, self)
        if not found:
            return False
        if self.op is None:
            return True
        candidates = target if isinstance(target, list) else [target]
        if self.op == "!=":
            return not any(_equal_match(c, self.value) for c in candidates)
        return any(_match(c, self.op, self.value) for c in candidates)


@dataclass(frozen=True)
class And:
    parts: tuple[Any, ...]

    def matches(self, entity: dict[str, Any]) -> bool:
        return all(p.matches(entity) for p in self.parts)


@dataclass(frozen=True)
class Or:
    parts: tuple[Any, ...]

    def matches(self, entity: dict[str, Any]) -> bool:
        return any(p.matches(entity) for p in self.parts)


def attribute_value(attr: Any) -> Any:
    """What the query language compares of one attribute (the default instance of a list)."""
    if isinstance(attr, list):
        attr = next((a for a in attr if isinstance(a, dict) and "datasetId" not in a),
                    attr[0] if attr else None)
    if not isinstance(attr, dict):
        return attr
    kind = attr.get("type")
    if kind == "Relationship":
        return attr.get("object")
    if kind == "LanguageProperty":
        return attr.get("languageMap")
    value = attr.get("value")
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _resolve(entity: dict[str, Any], term: Term) -> tuple[bool, Any]:
    if term.attr == "id":
        return True, entity.get("id")
    if term.attr == "type":
        return True, entity.get("type")
    if term.attr not in entity or term.sub:
        return False, None
    value = attribute_value(entity[term.attr])
    for member in term.members:
        if not isinstance(value, dict) or member not in value:
            return False, None
        value = value[member]
    return True, value


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _equal_match(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Range):
        return _comparable(actual, expected.low) and _comparable(actual, expected.high) \
            and expected.low <= actual <= expected.high
    if isinstance(expected, tuple):
        return any(_equal_match(actual, e) for e in expected)
    return _comparable(actual, expected) and actual == expected


def _match(actual: Any, op: str, expected: Any) -> bool:
    if op == "==":
        return _equal_match(actual, expected)
    if op in ("~=", "!~="):
        if not isinstance(actual, str):
            return False
        found = expected.search(actual) is not None
        return found if op == "~=" else not found
    if not _comparable(actual, expected):
        return False
    return {">": actual > expected, "<": actual < expected, ">=": actual >= expected,
            "<=": actual <= expected}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos, self.depth = text, 0, 0

    def fail(self, what: str) -> Exception:
        shown = self.text[self.pos:self.pos + 20] or "the end"
        return bad_request(f"invalid q at character {self.pos + 1} ({shown!r}): {what}",
                           parameter="q", position=self.pos + 1)

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.pos)

    def parse(self) -> Any:
        if not self.text.strip():
            raise self.fail("the query is empty")
        node = self.or_()
        if self.pos != len(self.text):
            raise self.fail("expected ';', '|' or the end")
        return node

    def or_(self) -> Any:
        parts = [self.and_()]
        while self.peek("|"):
            self.pos += 1
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Any:
        parts = [self.unit()]
        while self.peek(";"):
            self.pos += 1
            parts.append(self.unit())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unit(self) -> Any:
        if self.peek("("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"more than {MAX_DEPTH} levels of parentheses")
            self.pos += 1
            node = self.or_()
            if not self.peek(")"):
                raise self.fail("a ')' to close the '(' is missing")
            self.pos += 1
            self.depth -= 1
            return node
        return self.term()

    def name(self, what: str) -> str:
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail(f"expected {what}")
        self.pos = m.end()
        return m.group()

    def term(self) -> Term:
        attr = self.name("an attribute name")
        parts = [attr] if "://" in attr else attr.split(".")   # an IRI keeps its dots
        if any(not p for p in parts):
            raise self.fail("an empty attribute name around '.'")
        members: list[str] = []
        while self.peek("["):
            self.pos += 1
            m = _MEMBER.match(self.text, self.pos)
            if not m:
                raise self.fail("expected a member name inside '[ ]'")
            self.pos = m.end()
            if not self.peek("]"):
                raise self.fail("a ']' is missing")
            self.pos += 1
            members.append(m.group())
        op = next((o for o in OPERATORS if self.peek(o)), None)
        if op is None:
            if self.pos < len(self.text) and self.text[self.pos] not in ";|)":
                raise self.fail("expected an operator (==, !=, <, >, <=, >=, ~=, !~=)")
            return Term(parts[0], tuple(parts[1:]), tuple(members))
        self.pos += len(op)
        value = self.value(op)
        return Term(parts[0], tuple(parts[1:]), tuple(members), op, value)

    def value(self, op: str) -> Any:
        first = self.scalar()
        if op in ("~=", "!~="):
            if not isinstance(first, str):
                raise self.fail("a pattern must be a quoted string")
            try:
                return re.compile(first)
            except re.error as exc:
                raise self.fail(f"invalid regular expression: {exc}") from None
        if self.peek(".."):
            self.pos += 2
            second = self.scalar()
            if op not in ("==", "!="):
                raise self.fail(f"a range works only with == and !=, not {op}")
            if isinstance(first, bool) or not _comparable(first, second):
                raise self.fail("both ends of a range must be numbers, or both strings/dates")
            return Range(first, second)
        if self.peek(","):
            values = [first]
            while self.peek(","):
                self.pos += 1
                values.append(self.scalar())
            if op not in ("==", "!="):
                raise self.fail(f"a value list works only with == and !=, not {op}")
            return tuple(values)
        if op in (">", "<", ">=", "<=") and isinstance(first, bool):
            raise self.fail(f"{op} needs a number, a string or a date, not {str(first).lower()}")
        return first

    def scalar(self) -> Any:
        if self.peek('"'):
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _STOP \
                and not self.peek(".."):
            if self.text[self.pos] in '"(':
                raise self.fail("unexpected character in a value (quote strings with \")")
            self.pos += 1
        raw = self.text[start:self.pos]
        if not raw:
            raise self.fail("expected a value")
        if raw in ("true", "false"):
            return raw == "true"
        if _NUMBER.match(raw):
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        if _DATETIME.match(raw) or _URI.match(raw):
            return raw
        self.pos = start
        raise self.fail(f"{raw!r} is not a number, true/false, a date or a URI; quote strings "
                        "with \"")

    def quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if c == '"':
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise self.fail("a quoted string is not closed")


def parse_q(text: str) -> Any:
    """The query tree of ``text`` (see the module docstring), or a BadRequestData problem."""
    if len(text) > MAX_Q:
        raise bad_request(f"q is longer than {MAX_Q} characters", parameter="q")
    return _Parser(text).parse()
