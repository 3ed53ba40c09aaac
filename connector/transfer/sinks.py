"""Named sinks: where ``connector fetch --sink NAME`` and the console load an agreed dataset.

A sink is a node setting, ``DATA_DIR/sinks/<name>.yaml``: one adapter's sink config (``adapter``
plus its keys, as in ``docs/adapters.md``; relative paths are taken relative to the data
directory). It may hold a secret (a PostgreSQL DSN with its password), so it is written 0600,
atomically, and shown only masked (``SinkSetting.to_json``): a DSN without its password, a file
path, a table name.

A fetch into a sink is two steps. First the ordinary resumable fetch, in the typed ``arrow``
format, into ``DATA_DIR/sinks/staging/<agreement>.<sink>.arrow`` (its journal resumes it like any
fetch). Then ``deliver`` reads that file batch by batch into the sink and commits once: the
target shows all of it or, on any error, nothing (the sink aborts). The staging file is removed
after a commit; if loading fails it is kept, verified, and ``areamesh connector sink load NAME
--file PATH`` loads it once the sink is fixed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.ipc as ipc
import yaml

from connector.adapters.registry import open_sink
from connector.transfer.constants import sinks_dir, staging_dir
from mesh.datasets import ID_PATTERN
from mesh.errors import (
    AreameshError,
    Conflict,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from mesh.files import SECRET_MODE, atomic_write

if TYPE_CHECKING:
    from connector.transfer.fetch import Fetcher, FetchResult

MASK = "***"
SECRET_KEYS = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def check_sink_name(name: str) -> str:
    """A sink name: the id rule of datasets (``a-z 0-9 . _ -``, 3–100 characters)."""
    if not isinstance(name, str) or not ID_PATTERN.match(name):
        raise InvalidRequest(
            f"invalid sink name {name!r}: 3–100 characters of a-z, 0-9, '.', '_', '-', "
            "beginning with a letter or digit",
            message_ja=f"出力先の名前 {name!r} が正しくありません（英小文字・数字・. _ - の3〜100文字）",
            code="invalid_sink_name", details={"field": "sink"})
    return name


def staging_path(data_dir: Path, agreement_id: str, sink: str) -> Path:
    return staging_dir(data_dir) / f"{agreement_id}.{check_sink_name(sink)}.arrow"


def mask_dsn(dsn: str) -> str:
    """``dsn`` without its password: ``postgresql://user:***@host:5432/db`` (URL form, also a
    ``password=`` query parameter) or ``host=… password=***`` (key/value form)."""
    try:
        parts = urlsplit(dsn)
        if parts.scheme and parts.netloc:
            netloc = parts.netloc
            if parts.password is not None:
                userinfo, _, hostport = netloc.rpartition("@")
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{hostport}"
            query = _KV_PASSWORD.sub(lambda m: m[1] + MASK, parts.query.replace("&", " ")
                                     ).replace(" ", "&") if parts.query else ""
            return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return MASK
    return _KV_PASSWORD.sub(lambda m: m[1] + MASK, dsn)


def secrets_of(config: dict[str, Any]) -> list[str]:
    """The secret strings in a sink config (a DSN's password, keys named like a secret), to
    scrub from any message."""
    found = []
    for key, value in config.items():
        if not isinstance(value, str) or not value:
            continue
        if SECRET_KEYS.search(key):
            found.append(value)
        with contextlib.suppress(ValueError):
            password = urlsplit(value).password
            if password:
                found.append(password)
        found += [m[2].strip("'") for m in _KV_PASSWORD.finditer(value)]
    return [s for s in found if s]


@dataclass(frozen=True)
class SinkSetting:
    name: str
    config: dict[str, Any]

    @property
    def adapter(self) -> str:
        return str(self.config.get("adapter", ""))

    @property
    def target(self) -> str:
        """Where the data goes, safe to show: a masked DSN or URL, or a file path."""
        for key in ("dsn", "url", "broker", "path"):
            value = self.config.get(key)
            if isinstance(value, str) and value:
                return mask_dsn(value) if key != "path" else value
        return ""

    @property
    def table(self) -> str | None:
        value = self.config.get("table")
        return value if isinstance(value, str) else None

    def describe(self) -> str:
        """``name (adapter: target, table T)``: what the console's select and messages show."""
        where = self.target + (f", table {self.table}" if self.table else "")
        return f"{self.name} ({self.adapter}: {where})"

    def scrub(self, text: str) -> str:
        for secret in secrets_of(self.config):
            text = text.replace(secret, MASK)
        return text

    def to_json(self) -> dict[str, Any]:
        """Everything but secrets: name, adapter, masked target, table, mode."""
        return {"name": self.name, "adapter": self.adapter, "target": self.target,
                "table": self.table, "mode": self.config.get("mode")}


def read_config_file(path: Path) -> dict[str, Any]:
    """A sink config from a YAML (or JSON) file: a mapping with ``adapter``."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidRequest(f"cannot read sink config {path}: {exc}",
                             message_ja=f"出力先の設定ファイル {path} を読めません",
                             code="invalid_sink_config") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(f"sink config {path} must be a mapping with 'adapter' and the "
                             "adapter's keys", message_ja="出力先の設定は adapter を含む辞書で書きます",
                             code="invalid_sink_config")
    return doc


def _path(data_dir: Path, name: str) -> Path:
    return sinks_dir(data_dir) / f"{check_sink_name(name)}.yaml"


def add_sink(data_dir: Path, name: str, config: dict[str, Any], *, replace: bool = False
             ) -> SinkSetting:
    """Validate ``config`` (the adapter opens it: keys and values checked, nothing connected)
    and store it as sink ``name``, 0600."""
    path = _path(data_dir, name)
    if path.exists() and not replace:
        raise Conflict(f"sink {name} exists already; remove it first or pass --replace",
                       message_ja=f"出力先 {name} はすでにあります"
                                  "（削除するか --replace を指定してください）",
                       code="sink_exists", details={"field": "sink"})
    setting = SinkSetting(name, config)
    try:
        open_sink(config, Path(data_dir))
    except AreameshError as exc:
        exc.message = setting.scrub(exc.message)
        raise
    sinks_dir(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode(),
                 mode=SECRET_MODE)
    return setting


def get_sink(data_dir: Path, name: str) -> SinkSetting:
    path = _path(data_dir, name)
    if not path.is_file():
        raise NotFound(f"no sink named {name} on this connector (add one with 'areamesh connector "
                       "sink add')", message_ja=f"出力先 {name} は登録されていません",
                       code="unknown_sink", details={"field": "sink"})
    return SinkSetting(name, read_config_file(path))


def list_sinks(data_dir: Path) -> list[SinkSetting]:
    folder = sinks_dir(data_dir)
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return [get_sink(data_dir, n) for n in names if ID_PATTERN.match(n)]


def remove_sink(data_dir: Path, name: str) -> None:
    get_sink(data_dir, name)
    _path(data_dir, name).unlink()


@runtime_checkable
class LoadProgress(Protocol):
    """What loading into a sink shows. The terminal's and the console's progress objects have
    these methods beside the fetch's own ``Progress`` hooks; a progress without them (``--quiet``)
    shows nothing of the loading."""

    def load_start(self, sink: SinkSetting, rows: int) -> None: ...
    def load_advance(self, rows: int) -> None: ...
    def load_end(self, rows: int, committed: bool) -> None: ...


class _Silent:
    def load_start(self, sink: SinkSetting, rows: int) -> None: ...
    def load_advance(self, rows: int) -> None: ...
    def load_end(self, rows: int, committed: bool) -> None: ...


def _count_rows(path: Path) -> tuple[pa.Schema, int]:
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_stream(source)
        return reader.schema, sum(b.num_rows for b in reader)


def _load_error(setting: SinkSetting, path: Path, cause: str, cause_ja: str, *,
                unavailable: bool, code: str, kept: bool) -> AreameshError:
    retry = (f"; the verified data is kept in {path}: fix the sink, then run 'areamesh connector "
             f"sink load {setting.name} --file {path}'") if kept else ""
    retry_ja = (f"。受信・検証済みのデータは {path} に残しています。出力先を直してから "
                f"areamesh connector sink load {setting.name} --file {path} を実行してください"
                ) if kept else ""
    cls = Unavailable if unavailable else FailedPrecondition
    return cls(setting.scrub(f"loading into sink {setting.describe()} failed, nothing was "
                             f"changed there: {cause}{retry}"),
               message_ja=setting.scrub(f"出力先 {setting.name} への書き込みに失敗しました"
                                        f"（出力先は変更していません）: {cause_ja}{retry_ja}"),
               code="sink_load_failed",
               details={"field": "sink", "sink": setting.name, "cause": code,
                        "staging_file": str(path) if kept else None})


async def deliver(path: Path, setting: SinkSetting, *, data_dir: Path,
                  progress: LoadProgress | None = None, kept_on_error: bool = True) -> int:
    """Load the Arrow IPC stream at ``path`` into ``setting``'s sink in one commit; the rows
    loaded. Any error aborts the sink (the target stays as it was) and raises a
    ``sink_load_failed`` error naming the sink (never its password) and how to retry."""
    progress = progress or _Silent()
    try:
        schema, total = _count_rows(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidRequest(f"{path} is not a complete Arrow IPC stream: {exc}",
                             message_ja=f"{path} は完全な Arrow IPC ストリームではありません",
                             code="invalid_staging_file") from None
    sink = open_sink(setting.config, Path(data_dir))
    loaded = 0
    progress.load_start(setting, total)
    try:
        with pa.memory_map(str(path)) as source:
            for batch in ipc.open_stream(source):
                if batch.num_rows:
                    await sink.write(batch)
                    loaded += batch.num_rows
                    progress.load_advance(loaded)
        if not loaded:   # an empty dataset still creates (or, replacing, empties) the table
            await sink.write(pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema],
                                                        schema=schema))
        await sink.commit()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await sink.abort()
        progress.load_end(loaded, False)
        if isinstance(exc, AreameshError):
            raise _load_error(setting, path, exc.message, exc.message_ja or exc.message,
                              unavailable=isinstance(exc, Unavailable), code=exc.code,
                              kept=kept_on_error) from None
        if isinstance(exc, Exception):    # a driver's own error the adapter did not wrap
            text = f"{type(exc).__name__}: {exc}"
            raise _load_error(setting, path, text, text, unavailable=False, code="sink_error",
                              kept=kept_on_error) from None
        raise
    progress.load_end(loaded, True)
    return loaded


@dataclass(frozen=True)
class SinkFetchResult:
    fetch: FetchResult
    sink: SinkSetting
    loaded: int

    def to_json(self) -> dict[str, Any]:
        return {**self.fetch.to_json(), "out": None, "sink": self.sink.to_json(),
                "rows_loaded": self.loaded}


class SinkFetch:
    """``connector fetch --sink``: the fetch into the staging file, then ``deliver``. The same
    ``run()`` as ``Fetcher``'s, so the console runs it as a job the same way."""

    def __init__(self, data_dir: Path, agreement_id: str, sink: str, *, restart: bool = False,
                 progress: Any = None, fetcher: Callable[..., Fetcher] | None = None,
                 **fetch_kw: Any) -> None:
        if fetch_kw.get("fmt", "arrow") != "arrow":
            raise InvalidRequest("--format cannot be combined with --sink: a fetch into a sink is "
                                 "staged as arrow", message_ja="--sink と --format は併用できません",
                                 code="invalid_options")
        fetch_kw.pop("fmt", None)
        if fetcher is None:
            from connector.transfer.fetch import Fetcher as fetcher
        self.data_dir, self.agreement_id = Path(data_dir), agreement_id
        self.setting = get_sink(data_dir, sink)
        self.staging = staging_path(data_dir, agreement_id, sink)
        self.restart, self.progress = restart, progress
        self.fetcher = fetcher(data_dir, agreement_id, self.staging, fmt="arrow", restart=restart,
                               progress=progress, **fetch_kw)

    async def run(self) -> SinkFetchResult:
        from connector.transfer.journal import TransferJournal

        journal = TransferJournal.path_for(self.data_dir, self.agreement_id, self.staging)
        if self.staging.exists() and not journal.exists():
            if not self.restart:
                raise Conflict(
                    f"a verified fetch of agreement {self.agreement_id} waits in {self.staging}, not "
                    f"yet loaded into sink {self.setting.name}: load it with 'areamesh connector "
                    f"sink load {self.setting.name} --file {self.staging}', or fetch again with "
                    "--restart to replace it",
                    message_ja=f"出力先 {self.setting.name} に未読み込みの取得済みデータ {self.staging} "
                               "があります。sink load で読み込むか、--restart で取得し直してください",
                    code="staging_pending", details={"field": "sink", "staging_file": str(self.staging)})
            self.staging.unlink()
        sinks_dir(self.data_dir).mkdir(mode=0o700, exist_ok=True)
        self.staging.parent.mkdir(mode=0o700, exist_ok=True)
        result = await self.fetcher.run()
        load = self.progress if isinstance(self.progress, LoadProgress) else None
        loaded = await deliver(self.staging, self.setting, data_dir=self.data_dir, progress=load)
        self.staging.unlink(missing_ok=True)
        return SinkFetchResult(result, self.setting, loaded)
