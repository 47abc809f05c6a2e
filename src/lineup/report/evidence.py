"""The numbers behind a report: per-model statistics over seeds, paired tests, dynamics and CKA.

Turns a study's stored runs (``collect.StudyData``) into analysis results with the pure functions of
``lineup.analysis``; the sections then only format them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lineup.analysis.dynamics import FRACTIONS, Dynamics, summarize_dynamics
from lineup.analysis.metrics import (
    SharedMistake,
    accuracy_half_width,
    confusion_matrix,
    per_class_accuracy,
    shared_mistakes,
)
from lineup.analysis.representations import LayerStability, cka_at_depth, cka_between_models, layer_stability
from lineup.analysis.stats import Comparison, MeanCI, Rank, Winner, compare_models, mean_ci, rank_models, winner
from lineup.report.collect import StudyData

#: Final metrics of a run's summary that the report gives with a confidence interval over seeds.
HEADLINE = ("train_acc", "val_acc", "test_acc", "test_loss", "refit_test_acc", "epochs_trained", "wall_time")

#: Relative depths at which models are compared layer by layer; depth 1 (each model's last layer) is left to the
#: forward_features comparison, which it is close to or equal to.
LAYER_DEPTHS = (0.25, 0.5, 0.75)

#: The criteria of the summary: (key, per-seed values from, higher is better).
CRITERIA = (("most accurate", "test_acc", True), ("fastest to converge", "epochs_to_95", False),
            ("lowest training risk", "train_risk_auc", False), ("least overfitting", "overfit", False),
            ("most overfitting", "overfit", True))


@dataclass
class ModelEvidence:
    """One model entry of the study, over its seeds."""

    label: str
    model: str
    params: int | None = None
    flops: int | None = None
    complete: int = 0
    diverged: int = 0
    failed: int = 0
    unfinished: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per complete seed
    stats: dict[str, MeanCI] = field(default_factory=dict)  # metric -> mean and interval over seeds
    dynamics: dict[int, Dynamics] = field(default_factory=dict)  # seed -> dynamics of its history
    correct: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> (N,) test correctness, aligned
    pred: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> (N,) predicted test classes, aligned
    features: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> (N_emb, D) embeddings, aligned
    layers: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # seed -> {layer: (N_emb, C)}, aligned
    per_class: np.ndarray | None = None  # (K,) mean over seeds of per-class test accuracy
    confusion: np.ndarray | None = None  # (K, K) summed over seeds


@dataclass
class Evidence:
    """Everything the report states, computed once."""

    models: dict[str, ModelEvidence]
    comparisons: list[Comparison]
    ranking: list[Rank]
    winners: dict[str, Winner]  # criterion (see CRITERIA) -> winner
    cka: tuple[list[str], np.ndarray, np.ndarray] | None  # models, mean CKA (M, M), seed pairs (M, M)
    half_width: float | None  # 95% half-width of the best test accuracy at the test set's size
    layer_stability: dict[str, list[LayerStability]] = field(default_factory=dict)  # model -> CKA across seeds
    # relative depth -> (layer chosen per model, models, mean CKA (M, M), seed pairs (M, M)); needs 2+ models
    layer_cka: dict[float, tuple[dict[str, str], list[str], np.ndarray, np.ndarray]] = field(default_factory=dict)
    # test examples two or more models miss in most of their runs (``lineup.analysis.metrics.shared_mistakes``),
    # with their test indices (``index``, parallel)
    shared: list[SharedMistake] = field(default_factory=list)
    shared_index: list[int] = field(default_factory=list)


def gather(data: StudyData, *, seed: int = 0) -> Evidence:
    """Compute the report's evidence from a study's runs (every resampling seeded with ``seed``)."""
    done = [r for r in data.runs if r.complete]
    test_index = _common([r.predictions.index for r in done if r.predictions is not None])
    emb_index = _common([r.embedding[0] for r in done if r.embedding is not None])
    models = {label: _model(data, label, test_index, emb_index, seed) for label in data.labels}
    correct = {label: m.correct for label, m in models.items() if m.correct}
    comparisons = compare_models(correct, seed=seed)
    ranking = rank_models({label: float(np.mean([c.mean() for c in m.correct.values()]))
                           for label, m in models.items() if m.correct}, comparisons)
    winners = {}
    for name, key, higher in CRITERIA:
        w = winner({label: m.values.get(key, []) for label, m in models.items()}, higher_is_better=higher,
                   seed=seed)
        if w is not None:
            winners[name] = w
    feats = {label: m.features for label, m in models.items() if m.features}
    cka = cka_between_models(feats) if feats else None
    half_width = None
    if ranking and data.test_size:
        half_width = accuracy_half_width(ranking[0].mean, data.test_size)
    layered = {label: m.layers for label, m in models.items() if m.layers}
    stability = {label: layer_stability(by_seed) for label, by_seed in layered.items()}
    layer_cka = {d: cka_at_depth(layered, d) for d in LAYER_DEPTHS} if len(layered) > 1 else {}
    shared, shared_index = _shared_mistakes(data, models, test_index)
    return Evidence(models=models, comparisons=comparisons, ranking=ranking, winners=winners, cka=cka,
                    half_width=half_width, layer_stability=stability, layer_cka=layer_cka, shared=shared,
                    shared_index=shared_index)


def _shared_mistakes(data: StudyData, models: dict[str, ModelEvidence], test_index: np.ndarray
                     ) -> tuple[list[SharedMistake], list[int]]:
    """The test examples several models miss, on the test examples every run has, with their test indices."""
    preds = {label: list(m.pred.values()) for label, m in models.items() if m.pred}
    runs = [r for r in data.runs if r.complete and r.predictions is not None]
    if len(preds) < 2 or not runs:
        return [], []
    p = runs[0].predictions
    assert p is not None
    shared = shared_mistakes(_take(p.index, p.y, test_index), preds)
    return shared, [int(test_index[m.position]) for m in shared]


def _model(data: StudyData, label: str, test_index: np.ndarray, emb_index: np.ndarray, seed: int
           ) -> ModelEvidence:
    runs = data.of(label)
    m = ModelEvidence(label=label, model=runs[0].record.model)
    k = len(data.classes)
    per_class, confusion = [], []
    for run in runs:
        status = run.record.status
        if status == "diverged":
            m.diverged += 1
        elif status == "failed":
            m.failed += 1
        elif status != "complete":
            m.unfinished += 1
        if not run.complete:
            continue
        m.complete += 1
        s = run.record.summary
        m.params, m.flops = s.get("params", m.params), s.get("flops", m.flops)
        for key in HEADLINE:
            v = run.record.wall_time if key == "wall_time" else s.get(key)
            if isinstance(v, (int, float)) and np.isfinite(v):
                m.values.setdefault(key, []).append(float(v))
        d = summarize_dynamics(run.epochs)
        m.dynamics[run.seed] = d
        for key, v in dynamics_values(d).items():
            if v is not None:
                m.values.setdefault(key, []).append(float(v))
        # Overfitting: training minus validation accuracy of the final weights, both in eval mode (the
        # per-epoch training accuracy is averaged while the weights moved, so it understates the gap).
        if "train_acc" in s and "val_acc" in s:
            m.values.setdefault("overfit", []).append(float(s["train_acc"]) - float(s["val_acc"]))
        if run.predictions is not None:
            p = run.predictions
            m.correct[run.seed] = _take(p.index, p.pred == p.y, test_index)
            m.pred[run.seed] = _take(p.index, p.pred, test_index)
            if k:
                per_class.append(per_class_accuracy(p.y, p.pred, num_classes=k))
                confusion.append(confusion_matrix(p.y, p.pred, num_classes=k))
        if run.embedding is not None:
            m.features[run.seed] = _take(*run.embedding, emb_index)
        if run.layers:
            m.layers[run.seed] = {name: _take(*emb, emb_index) for name, emb in run.layers.items()}
    m.stats = {key: mean_ci(v, seed=seed) for key, v in m.values.items() if v}
    if per_class:
        m.per_class = np.nanmean(np.stack(per_class), axis=0)
        m.confusion = np.sum(confusion, axis=0)
    return m


def dynamics_values(d: Dynamics) -> dict[str, float | None]:
    """A run's scalar dynamics under flat names (``epochs_to_95``, ``train_risk_auc``, ...)."""
    out: dict[str, float | None] = {}
    for f in FRACTIONS:
        share = round(100 * f)
        out[f"epochs_to_{share}"] = d.epochs_to.get(f)
        out[f"steps_to_{share}"] = d.steps_to.get(f)
        out[f"seconds_to_{share}"] = d.seconds_to.get(f)
    out.update(train_risk_auc=d.train_risk_auc, best_epoch=d.best_epoch, final_loss_gap=d.final_loss_gap,
               final_acc_gap=d.final_acc_gap)
    return out


def _common(indices: list[np.ndarray]) -> np.ndarray:
    """Example indices that every run has.

    Every run of a study is evaluated on the same test split and embeds the same fixed subset, so this is all
    of them unless the store mixes runs of different data versions under one study.
    """
    common = np.unique(indices[0]) if indices else np.zeros(0, dtype=np.int64)
    for idx in indices[1:]:
        common = np.intersect1d(common, idx)
    return common


def _take(index: np.ndarray, values: np.ndarray, common: np.ndarray) -> np.ndarray:
    """The rows of ``values`` whose example is in ``common``, in example order: paired across runs."""
    order = np.argsort(index, kind="stable")
    return np.asarray(values)[order][np.isin(index[order], common)]
