"""Simulated traffic through a real keel server on an accelerated clock, with delayed labels.

Each simulated day's transactions go to the server in batches through `keel.Client`, stamped
with their simulated time (`X-Keel-Time`; the server must run with `replay_time`). Every
answered prediction's true label is held back until the simulator says it becomes known
(chargebacks within weeks, confirmations after 45 days; `label_delay_scale` shortens that for
tests), then sent as feedback at that simulated time.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from keel.demo.simulate import TransactionSimulator
from keel.serve import Client, ClientError

# what a caller knows at request time: no label, no label date
_HIDDEN = ("is_fraud", "label_available_at")


@dataclass
class ReplayStats:
    requests: int = 0
    rows: int = 0
    labels_sent: int = 0
    unknown_ids: int = 0
    refused: int = 0
    versions: dict[int, int] = field(default_factory=dict)


class Replay:
    """Drive one model's traffic day by day."""

    def __init__(
        self,
        client: Client,
        model: str,
        simulator: TransactionSimulator,
        *,
        per_day: int,
        batch: int = 200,
        label_delay_scale: float = 1.0,
    ) -> None:
        self.client = client
        self.model = model
        self.sim = simulator
        self.per_day = per_day
        self.batch = batch
        self.scale = label_delay_scale
        self.stats = ReplayStats()
        self._pending: list[tuple[dt.datetime, str, int]] = []

    def day(self, day: float) -> pl.DataFrame:
        """Send one simulated day; returns the answers (prediction id, score, version, time)."""
        frame = self.sim.generate(days=1, per_day=self.per_day, start_day=day)
        answers = []
        for start in range(0, frame.height, self.batch):
            chunk = frame.slice(start, self.batch)
            at = chunk.get_column("ts")[0].replace(tzinfo=dt.UTC)
            out, chunk = self._predict(chunk, at)
            if chunk.height == 0:
                continue
            self.stats.requests += 1
            self.stats.rows += chunk.height
            ts = chunk.get_column("ts").to_list()
            known = chunk.get_column("label_available_at").to_list()
            labels = chunk.get_column("is_fraud").to_list()
            for pid, t, k, y in zip(out["prediction_id"].to_list(), ts, known, labels, strict=True):
                when = t + (k - t) * self.scale
                heapq.heappush(self._pending, (when.replace(tzinfo=dt.UTC), pid, int(y)))
            version = int(out["version"][0])
            self.stats.versions[version] = self.stats.versions.get(version, 0) + chunk.height
            answers.append(out.with_columns(pl.lit(at).alias("time")))
        return pl.concat(answers) if answers else pl.DataFrame()

    def _predict(self, chunk: pl.DataFrame, at: dt.datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Predict; rows the contract refuses (422, each named in the details) are counted
        and left out, the rest sent again, as a careful caller would."""
        for _ in range(10):
            try:
                return self.client.predict(self.model, chunk.drop(_HIDDEN), at=at), chunk
            except ClientError as exc:
                if exc.status != 422 or not isinstance(exc.details, list):
                    raise
                bad = {int(d["row"]) for d in exc.details if isinstance(d, dict) and "row" in d}
                self.stats.requests += 1
                self.stats.refused += len(bad)
                chunk = (
                    chunk.with_row_index("__i").filter(~pl.col("__i").is_in(list(bad))).drop("__i")
                )
                if chunk.height == 0:
                    return pl.DataFrame(), chunk
        msg = "the server kept refusing rows of one batch"
        raise RuntimeError(msg)

    def labels_until(self, now: dt.datetime) -> int:
        """Send every label known by `now`; returns how many."""
        ready: list[tuple[str, Any]] = []
        while self._pending and self._pending[0][0] <= now:
            _, pid, y = heapq.heappop(self._pending)
            ready.append((pid, y))
        for start in range(0, len(ready), 2000):
            result = self.client.feedback(self.model, ready[start : start + 2000], at=now)
            self.stats.labels_sent += int(result["accepted"])
            self.stats.unknown_ids += len(result["unknown_ids"])
        return len(ready)

    def time_of(self, day: float) -> dt.datetime:
        return (self.sim.start + dt.timedelta(days=day)).replace(tzinfo=dt.UTC)
