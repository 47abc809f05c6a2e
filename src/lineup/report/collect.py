"""Everything a report shows, read from the store once into plain data: the only part of the report that reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
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
    # the same subset through the model's declared layers, input side first: layer -> (index (N,), (N, C))
    layers: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # data with a known distribution and two inputs: the model's predictions on the grid of its summary's "grid",
    # labelled with the Bayes classifier's decisions there (see lineup.study.known)
    grid: Predictions | None = None
    # a model with a latent space or a GAN: the PNG mosaics its run wrote (summary "latent_images", "gan_images"),
    # by kind
    images: dict[str, bytes] = field(default_factory=dict)

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
    """A study's spec and the runs of one data setting, grouped by model label in the order of the study file.

    A study with several data settings is read as its first setting (``runs``), which the detailed sections
    show, and the others (``others``), which the settings section compares with it.
    """

    name: str
    spec: dict[str, Any]
    runs: list[RunData]
    failures: dict[str, tuple[int, list[Failure]]]  # label -> (seed, most confident mistakes of one run)
    # test index -> image, of every test example that some complete run stored among its failure cases
    mistake_images: dict[int, np.ndarray] = field(default_factory=dict)
    setting: str = ""
    others: dict[str, StudyData] = field(default_factory=dict)  # setting name -> its runs, in file order
    # A study with [search]: the runs above are the tuned ones (protocol tuned or both); ``fixed`` holds the runs as
    # written when the study trains both, ``trials`` the search trials (per-epoch metrics only, no test results).
    fixed: StudyData | None = None
    trials: list[RunData] = field(default_factory=list)

    @property
    def info(self) -> dict[str, Any]:
        if self.setting:
            return self.spec.get("settings_info", {}).get(self.setting, {})  # type: ignore[no-any-return]
        return self.spec.get("data_info", {})  # type: ignore[no-any-return]

    @property
    def settings(self) -> list[StudyData]:
        """Every data setting, the first one (this) included."""
        return [self, *self.others.values()]

    @property
    def all_runs(self) -> list[RunData]:
        return [r for d in self.settings for r in d.runs]

    @property
    def test_split_draws(self) -> bool:
        """Whether the study's data settings are draws of one test split: they change nothing but ``test_split``
        and have the same split sizes (so one fraction), which lets the dataset's own split be one of them only
        where it is as large. Results over such settings pool (repeated hold-out)."""
        settings = self.spec.get("settings", [])
        if len(settings) < 2 or any(set(st) - {"name", "description", "test_split"} for st in settings):
            return False
        sizes = {json.dumps(d.info.get("sizes"), sort_keys=True) for d in self.settings}
        return any("test_split" in st for st in settings) and len(sizes) == 1

    @property
    def setting_descriptions(self) -> dict[str, str]:
        return {st["name"]: st.get("description", "") for st in self.spec.get("settings", [])}

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

    def with_summary(self, key: str) -> dict[str, list[RunData]]:
        """The complete runs whose summaries hold ``key``, by model label in file order, each model's by seed;
        models with none are left out."""
        out: dict[str, list[RunData]] = {}
        for label in self.labels:
            runs = sorted((r for r in self.of(label) if r.complete and key in r.record.summary), key=lambda r: r.seed)
            if runs:
                out[label] = runs
        return out


def collect(store: Store, study: str) -> StudyData:
    """Read the study's spec, runs, histories, test predictions, embeddings and failure cases."""
    spec = store.study_spec(study)
    names = [st["name"] for st in spec.get("settings", [])] or [""]
    groups: dict[str, StudyData] = {name: StudyData(name=study, spec=spec, runs=[], failures={}, setting=name)
                                    for name in names}
    # Under the tuned protocol (alone or beside the fixed one) the tuned runs are the ones every section compares.
    primary = "tuned" if (spec.get("search") or {}).get("protocol") in ("tuned", "both") else "run"
    for rec in store.runs(study):
        group = groups.get(rec.setting)
        if group is None:  # a setting the stored spec does not name (an older study): keep it, last
            group = groups[rec.setting] = StudyData(name=study, spec=spec, runs=[], failures={}, setting=rec.setting)
        run = RunData(record=rec)
        if rec.role == "trial":  # scored on validation only: its history is all there is
            run.epochs = store.epochs(rec.hash) if rec.status in FINISHED else []
            group.trials.append(run)
            continue
        if rec.role != primary:
            if group.fixed is None:
                group.fixed = StudyData(name=study, spec=spec, runs=[], failures={}, setting=rec.setting)
            group = group.fixed
        if rec.status in FINISHED:
            run.epochs = store.epochs(rec.hash)
            run.refit_epochs = store.epochs(rec.hash, "refit")
            run.step_losses = store.step_losses(rec.hash)
            run.predictions = store.predictions(rec.hash, "test")
            run.embedding = store.embeddings(rec.hash, "test")
            run.layers = store.layer_embeddings(rec.hash, "test")
            images = {**(rec.summary.get("latent_images") or {}), **(rec.summary.get("gan_images") or {})}
            for kind, file in images.items():
                path = store.artifact_dir(rec.hash) / Path(file).name  # a bare name: never outside the run's folder
                if path.is_file():
                    run.images[kind] = path.read_bytes()
            if "grid" in rec.summary:
                run.grid = store.predictions(rec.hash, "grid")
        if rec.status == "complete":
            fails = store.failures(rec.hash)
            group.failures.setdefault(rec.label, (rec.seed, fails))
            for f in fails:
                group.mistake_images.setdefault(f.index, f.image)
        group.runs.append(run)
    # Tuned runs are stored as each search ends (entries that share a search, together): show them in file order.
    order = {m["name"]: i for i, m in enumerate(spec["models"])}
    for group in groups.values():
        for d in (group, group.fixed):
            if d is not None:
                d.runs.sort(key=lambda r: order.get(r.label, len(order)))
    first, *rest = groups.values()
    first.others = {d.setting: d for d in rest}
    return first
