"""The long-lived things one process uses to run jobs, built once from the settings.

A catalog, a DashScope client (which spends one rate budget on every call), a stager,
an output store and one TaskWatcher: every job of the process shares them, so a batch
of hundreds shares one connection pool, one query budget and one watcher (a call a
tick, whatever the number of tasks). The Prefect layer swaps the budget for one backed
by Prefect's global rate limits when a server is configured.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from vaceflow.catalog import Catalog
from vaceflow.client import Client
from vaceflow.ratebudget import LocalRateBudget, RateBudget
from vaceflow.settings import Settings
from vaceflow.storage.choose import open_output_store, open_stager
from vaceflow.storage.s3 import S3Store
from vaceflow.storage.staged import Stager
from vaceflow.waiting import PollSchedule, TaskWatcher

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    budget: RateBudget
    _client: Client | None = None
    _stager: Stager | None = None
    _store: S3Store | None = None
    _store_checked: bool = False
    _watcher: TaskWatcher | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, budget: RateBudget | None = None
    ) -> Self:
        settings = settings or Settings.load()
        return cls(
            settings=settings,
            catalog=Catalog.from_settings(settings),
            budget=budget or LocalRateBudget(),
        )

    @property
    def client(self) -> Client:
        """The DashScope client, made on first use (a dry run never needs a key)."""
        with self._lock:
            if self._client is None:
                self._client = Client.from_settings(self.settings, budget=self.budget)
            return self._client

    @property
    def stager(self) -> Stager:
        with self._lock:
            if self._stager is None:
                self._stager = open_stager(self.settings)
            return self._stager

    @property
    def store(self) -> S3Store | None:
        """Where outputs are published; None keeps them in the data folder only."""
        with self._lock:
            if not self._store_checked:
                self._store = open_output_store(self.settings)
                self._store_checked = True
            return self._store

    @property
    def watcher(self) -> TaskWatcher:
        """The one watcher of every task this process waits on."""
        with self._lock:
            if self._watcher is None:
                self._watcher = TaskWatcher(
                    self._client_unlocked(),
                    schedule=PollSchedule(dense=self.settings.status_interval),
                )
            return self._watcher

    def _client_unlocked(self) -> Client:
        if self._client is None:
            self._client = Client.from_settings(self.settings, budget=self.budget)
        return self._client

    @property
    def outputs_dir(self) -> Path:
        return self.settings.data_dir / "outputs"

    def close(self) -> None:
        with self._lock:
            if self._watcher is not None:
                self._watcher.close()
            for closeable in (self._stager, self._store, self._client):
                if closeable is not None:
                    closeable.close()
            self._watcher = self._stager = self._store = self._client = None
            self._store_checked = False
            self.catalog.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
