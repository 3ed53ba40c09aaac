"""Reusable contract tests for adapters (the EDC pattern): subclass, provide fixtures, run pytest.

A source test::

    class TestMySource(SourceContract):
        @pytest.fixture
        def source_config(self, tmp_path): ...      # {"adapter": "my", ...}
        @pytest.fixture
        def expected_rows(self): ...                # [{"col": value, ...}, ...] in read order
        async def mutate(self, config, base_dir): ...  # change the data behind the source

A sink test provides ``sink_config`` and ``read_back(config, base_dir)`` (the rows now visible
in the target, or ``None`` when there is no target yet). Adapters are opened through the
``areamesh.adapters`` entry points, so the tests also prove the plugin is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from connector.adapters.base import Sink, Source
from connector.adapters.registry import open_sink, open_source
from mesh.errors import AreameshError


async def read_batches(source: Source, **kwargs: Any) -> list[pa.RecordBatch]:
    return [batch async for batch in source.read(**kwargs)]


async def read_rows(source: Source, **kwargs: Any) -> list[dict[str, Any]]:
    return [row for batch in await read_batches(source, **kwargs) for row in batch.to_pylist()]


class SourceContract:
    """What every ``Source`` must do (base.Source docstring); subclasses supply the data."""

    @pytest.fixture
    def base_dir(self, tmp_path: Path) -> Path:
        return tmp_path

    @pytest.fixture
    def source_config(self, base_dir: Path) -> dict[str, Any]:
        raise NotImplementedError("provide a source_config fixture")

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError("provide an expected_rows fixture (at least 3 rows)")

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        raise NotImplementedError("change the data behind the source")

    @pytest.fixture
    async def source(self, source_config: dict[str, Any], base_dir: Path):
        source = open_source(source_config, base_dir)
        yield source
        await source.close()

    async def test_is_a_source(self, source: Source) -> None:
        assert isinstance(source, Source)

    async def test_schema_available(self, source: Source, expected_rows: list[dict[str, Any]]) -> None:
        schema = await source.schema()
        assert isinstance(schema, pa.Schema)
        assert set(expected_rows[0]) <= set(schema.names)

    async def test_read_yields_expected_rows(self, source: Source,
                                             expected_rows: list[dict[str, Any]]) -> None:
        batches = await read_batches(source)
        assert batches and all(isinstance(b, pa.RecordBatch) for b in batches)
        schema = await source.schema()
        assert all(b.schema.equals(schema) for b in batches)
        table = pa.Table.from_batches(batches, schema)
        assert table.select(list(expected_rows[0])).to_pylist() == expected_rows

    async def test_read_twice_gives_same_data(self, source: Source) -> None:
        first = await read_rows(source)
        assert await read_rows(source) == first

    @pytest.mark.parametrize("batch_rows", [1, 2])
    async def test_batch_rows_honoured(self, source: Source, expected_rows: list[dict[str, Any]],
                                       batch_rows: int) -> None:
        batches = await read_batches(source, batch_rows=batch_rows)
        assert all(0 < b.num_rows <= batch_rows for b in batches)
        assert sum(b.num_rows for b in batches) == len(expected_rows)

    async def test_close_is_idempotent(self, source: Source) -> None:
        await read_rows(source)
        await source.close()
        await source.close()

    async def test_fingerprint_stable_then_changes(self, source: Source, source_config: dict[str, Any],
                                                   base_dir: Path) -> None:
        first = await source.fingerprint()
        assert isinstance(first, str) and first
        assert await source.fingerprint() == first
        await read_rows(source)
        assert await source.fingerprint() == first
        await self.mutate(source_config, base_dir)
        assert await source.fingerprint() != first


def sample_batches() -> list[pa.RecordBatch]:
    schema = pa.schema([("code", pa.string()), ("name", pa.string()), ("count", pa.int64())])
    return [pa.RecordBatch.from_pylist([{"code": "282014", "name": "姫路市", "count": 1},
                                        {"code": "282103", "name": "加古川市", "count": 2}], schema),
            pa.RecordBatch.from_pylist([{"code": "270008", "name": "大阪府", "count": None}], schema)]


class SinkContract:
    """What every ``Sink`` must do: nothing visible before ``commit()``, nothing left after ``abort()``."""

    @pytest.fixture
    def base_dir(self, tmp_path: Path) -> Path:
        return tmp_path

    @pytest.fixture
    def sink_config(self, base_dir: Path) -> dict[str, Any]:
        raise NotImplementedError("provide a sink_config fixture")

    async def read_back(self, config: dict[str, Any], base_dir: Path) -> list[dict[str, Any]] | None:
        """Rows now visible in the target (``code``, ``name``, ``count``), or ``None`` if there is none."""
        raise NotImplementedError

    def expected(self) -> list[dict[str, Any]]:
        return [row for batch in sample_batches() for row in batch.to_pylist()]

    async def test_is_a_sink(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink = open_sink(sink_config, base_dir)
        assert isinstance(sink, Sink)
        await sink.abort()

    async def test_commit_makes_rows_visible(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink: Sink = open_sink(sink_config, base_dir)
        for batch in sample_batches():
            await sink.write(batch)
        assert await self.read_back(sink_config, base_dir) is None
        await sink.commit()
        assert await self.read_back(sink_config, base_dir) == self.expected()
        await sink.abort()  # harmless after commit
        assert await self.read_back(sink_config, base_dir) == self.expected()

    async def test_write_after_commit_fails(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink: Sink = open_sink(sink_config, base_dir)
        await sink.write(sample_batches()[0])
        await sink.commit()
        with pytest.raises(AreameshError):
            await sink.write(sample_batches()[1])

    async def test_abort_leaves_nothing(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink: Sink = open_sink(sink_config, base_dir)
        for batch in sample_batches():
            await sink.write(batch)
        await sink.abort()
        await sink.abort()
        assert await self.read_back(sink_config, base_dir) is None

    async def test_abort_before_any_write(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink: Sink = open_sink(sink_config, base_dir)
        await sink.abort()
        assert await self.read_back(sink_config, base_dir) is None
