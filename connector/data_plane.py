"""DataPlane: the serving connector's transfer side, built when the first transfer arrives.

Transfers need pyarrow, the adapters, the consent filter (numpy) and the flow ledger. A
connector that only negotiates, or waits, should not pay for them: imported up front they
doubled its idle memory (69 → 158 MB, measured by bench/bench_foundation.py) and its start-up
time. They are imported, and the consent and ledger databases opened, on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from connector.metering.store import UsageStore
from connector.transfer.guard import AgreementGuard

if TYPE_CHECKING:
    from connector.consent.assurance import LevelsLookup
    from connector.consent.store import ConsentStore
    from connector.ledger.chain import SqliteLedger
    from connector.transfer.provider import TransferProvider


class DataPlane:
    def __init__(self, data_dir: Path, guard: AgreementGuard, usage: UsageStore, own_uri: str,
                 on_transfer_complete: Callable[[], None],
                 levels: LevelsLookup | None = None) -> None:
        self.data_dir = data_dir
        self.levels = levels      # residents' levels from the registry's identity service
        self.guard = guard
        self.usage = usage
        self.own_uri = own_uri
        self.on_transfer_complete = on_transfer_complete
        self.consents: ConsentStore | None = None
        self.ledger: SqliteLedger | None = None
        self._provider: TransferProvider | None = None
        self._lock = asyncio.Lock()

    async def personal(self) -> tuple[ConsentStore, SqliteLedger]:
        """The consent store and the flow ledger, opened on first use."""
        async with self._lock:
            await self._open_personal()
        assert self.consents is not None and self.ledger is not None
        return self.consents, self.ledger

    async def _open_personal(self) -> None:
        if self.consents is None:
            from connector.consent.store import ConsentStore

            self.consents = await ConsentStore.open(self.data_dir)
        if self.ledger is None:
            from connector.ledger.chain import SqliteLedger

            self.ledger = await SqliteLedger.open(self.data_dir)

    async def transfers(self) -> TransferProvider:
        async with self._lock:
            if self._provider is None:
                from connector.transfer.provider import TransferProvider

                await self._open_personal()
                provider = TransferProvider(self.guard, self.usage, self.own_uri,
                                            consents=self.consents, ledger=self.ledger,
                                            levels=self.levels)
                provider.on_transfer_complete.append(self.on_transfer_complete)
                self._provider = provider
            return self._provider

    async def close(self) -> None:
        for store in (self.consents, self.ledger):
            if store is not None:
                await store.close()
