"""The long-lived things jobs run with, built once from the settings.

A catalog, a DashScope client (which spends one rate budget on every call), a stager,
an output store, one TaskWatcher and the account's in-flight slots: every job run with
them shares them, so a batch of hundreds shares one connection pool, one query budget
and one watcher (a call a tick, whatever the number of tasks). The Prefect layer swaps
the budget and the slots for ones backed by Prefect's global limits when a server is
configured (`tasks.runtime`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Self

from vaceflow.catalog import Catalog
from vaceflow.client import Client
from vaceflow.inflight import LocalSlots, Slots
from vaceflow.ratebudget import LocalRateBudget, RateBudget
from vaceflow.settings import Settings
from vaceflow.storage.choose import open_output_store, open_stager
from vaceflow.storage.s3 import S3Store
from vaceflow.storage.staged import Stager
from vaceflow.waiting import PollSchedule, TaskWatcher

__all__ = ["Services"]


class Services:
    """The settings' catalog, rate budget and in-flight slots, and the client, stager,
    output store and watcher made from them on first use (a dry run needs no key)."""

    def __init__(
        self, settings: Settings, catalog: Catalog, budget: RateBudget, in_flight: Slots
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.budget = budget
        self.in_flight = in_flight
        """The account's bound on jobs submitted and not yet ended (`vaceflow.inflight`)."""
        self._client: Client | None = None
        self._stager: Stager | None = None
        self._store: S3Store | None = None
        self._store_checked = False
        self._watcher: TaskWatcher | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        budget: RateBudget | None = None,
        in_flight: Slots | None = None,
    ) -> Self:
        """By default the account's budget and bound for this process alone."""
        settings = settings or Settings.load()
        return cls(
            settings,
            Catalog.from_settings(settings),
            budget or LocalRateBudget(settings.account),
            in_flight or LocalSlots(settings.account.in_flight),
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
