"""Built-in mappings from the older standard layouts to the 2026 area-data models, named
``builtin:<layout>`` or ``builtin:<layout>@<edition>``.

Each YAML file in an edition's sub-folder (``suishou2019/``, ``jichitai/``, named like the layout's
file in ``mesh/standards``) maps that edition's layout to the 2026 model of the same title. Without
an edition, the edition is the only one with a built-in for that layout, or else the one
:func:`mesh.standards.detect_layout` finds from the input's header. See docs/mappings.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mesh.errors import NotFound
from mesh.standards import DEFAULT_EDITION, detect_layout, editions, get_standard, normalize_header

__all__ = ["PREFIX", "BuiltinMapping", "MappingSource", "builtin_mappings", "find_builtin",
           "is_builtin", "needs_header", "resolve_mapping"]

PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinMapping:
    """One shipped mapping: the old layout (title, edition id) it reads and the 2026 model it writes."""

    layout: str
    edition: str
    target: str
    file: str  # path inside this package, e.g. suishou2019/public_toilets.yaml

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.layout}@{self.edition}"

    def read_bytes(self) -> bytes:
        return resources.files(__name__).joinpath(self.file).read_bytes()


def builtin_mappings() -> list[BuiltinMapping]:
    """Every shipped built-in mapping, oldest edition first."""
    out: list[BuiltinMapping] = []
    root = resources.files(__name__)
    for edition in editions():
        if edition.id == DEFAULT_EDITION or not edition.folder:
            continue
        folder = root.joinpath(edition.folder)
        if not folder.is_dir():
            continue
        for entry in sorted((e for e in folder.iterdir() if e.name.endswith(".yaml")), key=lambda e: e.name):
            stem = entry.name.removesuffix(".yaml")
            old = get_standard(f"{edition.folder}_{stem}", edition.id)
            target = get_standard(old.title)
            out.append(BuiltinMapping(old.title, edition.id, target.title, f"{edition.folder}/{entry.name}"))
    return out


def is_builtin(spec: str | Path | None) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def _candidates(layout: str) -> list[BuiltinMapping]:
    key = normalize_header(layout)
    return [b for b in builtin_mappings() if normalize_header(b.layout) == key]


def needs_header(spec: str) -> bool:
    """True when ``builtin:<layout>`` names a layout with built-ins in several editions."""
    name = spec.removeprefix(PREFIX)
    return "@" not in name and len(_candidates(name)) > 1


def find_builtin(spec: str, header: Sequence[str] | None = None) -> BuiltinMapping:
    """The built-in named by ``spec`` (``builtin:公衆トイレ一覧`` or ``builtin:公衆トイレ一覧@2019``);
    ``header`` decides the edition when the layout has built-ins in several. Raises NotFound."""
    name = spec.removeprefix(PREFIX).strip()
    layout, _, edition = (part.strip() for part in name.partition("@"))
    found = _candidates(layout)
    known = [b.name for b in builtin_mappings()]
    listed, listed_ja = ", ".join(known), "、".join(known)
    if not found:
        raise NotFound(f"there is no built-in mapping for {layout!r}; built-ins: {listed}",
                       message_ja=f"「{layout}」の組み込みマッピングはありません。組み込み: {listed_ja}",
                       details={"known": known})
    if edition:
        wanted = get_standard(layout, edition).edition
        found = [b for b in found if b.edition == wanted]
        if not found:
            raise NotFound(f"there is no built-in mapping for {layout}@{wanted}; built-ins: {listed}",
                           message_ja=f"「{layout}@{wanted}」の組み込みマッピングはありません。"
                                      f"組み込み: {listed_ja}", details={"known": known})
    if len(found) == 1:
        return found[0]
    match = detect_layout(header) if header else None
    if match is not None:
        for b in found:
            if (b.layout, b.edition) == (match.layout, match.edition):
                return b
    names = [b.name for b in found]
    raise NotFound(
        f"the input's header does not tell which edition of {layout} it is in; name it: {', '.join(names)}",
        message_ja=f"入力のヘッダーから「{layout}」の版を判定できません。"
                   f"版を指定してください: {'、'.join(names)}",
        code="mapping_edition_unknown", details={"candidates": names})


@dataclass(frozen=True)
class MappingSource:
    """A mapping's text and what it is called: a file, or a built-in."""

    label: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def resolve_mapping(spec: str | Path, header: Sequence[str] | None = None) -> MappingSource:
    """The mapping ``spec`` names: a built-in (``builtin:…``) or a file path (read here)."""
    from connector.translate.mapping import MappingError

    if is_builtin(spec):
        found = find_builtin(str(spec), header)
        return MappingSource(found.name, found.read_bytes())
    try:
        return MappingSource(str(spec), Path(spec).read_bytes())
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {spec}: {exc.strerror}",
                           message_ja=f"マッピング定義ファイル {spec} を読めません") from None
