"""Everything a report shows, read from the store once into plain data: the only part of the report that reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lineup.store import FINISHED, Failure, Predictions, RunRecord, Store


@dataclass
class RunData:
    """One run with its stored results (empty for runs that never finished)."""

    record: RunRecord
    epochs: list[dict[str, float]] = field(default_factory=list)  # phase "train"
    refit_epochs: list[dict[str, float]] = field(default_factory=list)  # phase "refit", when refitted
    step_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    predictions: Predictions | None = None  # test split
    embedding: tuple[np.ndarray, np.ndarray] | None = None  # test subset: (index (N,), features (N, D))

    @property
    def label(self) -> str:
        return self.record.label

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def complete(self) -> bool:
        return self.record.status == "complete"


@dataclass
class StudyData:
    """A study's spec and runs, grouped by model label in the order of the study file."""

    name: str
    spec: dict[str, Any]
    runs: list[RunData]
    failures: dict[str, tuple[int, list[Failure]]]  # label -> (seed, most confident mistakes of one run)

    @property
    def info(self) -> dict[str, Any]:
        return self.spec.get("data_info", {})  # type: ignore[no-any-return]

    @property
    def classes(self) -> list[str]:
        return list(self.info.get("classes", []))

    @property
    def test_size(self) -> int | None:
        return self.info.get("sizes", {}).get("test")  # type: ignore[no-any-return]

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.runs))

    @property
    def baseline(self) -> str:
        return self.spec["study"].get("baseline") or self.spec["models"][0]["name"]  # type: ignore[no-any-return]

    @property
    def refit(self) -> bool:
        return bool(self.spec.get("protocol", {}).get("refit"))

    @property
    def descriptions(self) -> dict[str, str]:
        return {m["name"]: m.get("description", "") for m in self.spec["models"]}

    def of(self, label: str) -> list[RunData]:
        """The runs of one model, in the order of the study file."""
        return [r for r in self.runs if r.label == label]


def collect(store: Store, study: str) -> StudyData:
    """Read the study's spec, runs, histories, test predictions, embeddings and failure cases."""
    spec = store.study_spec(study)
    runs = []
    failures: dict[str, tuple[int, list[Failure]]] = {}
    for rec in store.runs(study):
        run = RunData(record=rec)
        if rec.status in FINISHED:
            run.epochs = store.epochs(rec.hash)
            run.refit_epochs = store.epochs(rec.hash, "refit")
            run.step_losses = store.step_losses(rec.hash)
            run.predictions = store.predictions(rec.hash, "test")
            run.embedding = store.embeddings(rec.hash, "test")
        if rec.status == "complete" and rec.label not in failures:
            failures[rec.label] = (rec.seed, store.failures(rec.hash))
        runs.append(run)
    return StudyData(name=study, spec=spec, runs=runs, failures=failures)
