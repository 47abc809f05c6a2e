"""The report's "Linear probes and views" section: every model's features read by the same linear probe, how an
encoder trained without classification loss compares with fine-tuning it and training it from scratch, and PCA
and t-SNE views of the features.

The probe accuracies come from the runs' summaries (``lineup.study.probe``, measured where each run executed); the
views are computed here from the ``forward_features`` every run stores for the same fixed test subset
(``lineup.analysis.probe``), for the first seed of each model and at most ``VIEW_EXAMPLES`` of those examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure as MplFigure

from lineup.analysis.probe import pca_view, tsne_view
from lineup.analysis.stats import mean_ci
from lineup.report import _format as fmt
from lineup.report.collect import RunData, StudyData
from lineup.report.document import Block, Figure, Section, Table, para, strong
from lineup.report.figures_latent import latent_scatter

Save = Callable[[MplFigure, str], str]

#: Objectives that train the features without the labels' cross-entropy reaching them: the models whose features
#: are judged by their probe, fine-tuning and training from scratch ("encoder evaluation").
ENCODER_OBJECTIVES = ("triplet",)

#: Models that read the raw pixels through one linear layer: the linear reference of an encoder evaluation.
PIXEL_MODELS = ("softmax_regression", "logistic_regression")

#: Seed of the views (PCA's solver, t-SNE's random state): the same for every model, so only the features differ.
VIEW_SEED = 0

#: Examples drawn in each view, at most: every k-th of the stored test subset. t-SNE's cost grows with them (about
#: 2.5 s for 500 on one core), and the report computes one per model each time it is built.
VIEW_EXAMPLES = 500


def _runs(data: StudyData, label: str) -> list[RunData]:
    return sorted((r for r in data.of(label) if r.complete), key=lambda r: r.seed)


def _by_seed(runs: list[RunData], key: str) -> dict[int, float]:
    return {r.seed: float(r.record.summary[key]) for r in runs if r.record.summary.get(key) is not None}


def _cell(values: dict[int, float]) -> str:
    return fmt.ci(mean_ci(list(values.values()))) if values else ""


def _paired(a: dict[int, float], b: dict[int, float]) -> str:
    """``a - b`` over the seeds both have, in points, with its interval over seeds."""
    seeds = sorted(set(a) & set(b))
    return fmt.ci(mean_ci([a[s] - b[s] for s in seeds]), signed=True) if seeds else ""


def _sources(data: StudyData) -> dict[str, str]:
    """Label of each model that starts from another model's weights -> the label of that model."""
    label_of = {r.record.hash: r.label for r in data.runs}
    out: dict[str, str] = {}
    for r in data.runs:
        init = r.record.spec.get("init")
        if init and init.get("run") in label_of:
            out.setdefault(r.label, label_of[init["run"]])
    return out


def probe_table(data: StudyData) -> Table | None:
    """Every model: how it was trained, its own head's test accuracy, the linear probe's, and their difference."""
    sources = _sources(data)
    rows = []
    for label in data.labels:
        runs = _runs(data, label)
        probe = _by_seed(runs, "probe_acc")
        if not probe:
            continue
        s = runs[0].record.summary
        how = s.get("objective", "")
        if label in sources:
            how += f", from {sources[label]}"
        head = _by_seed(runs, "test_acc")
        rows.append([label, how, str(s.get("probe_dim", "")), str(len(probe)), _cell(head), _cell(probe),
                     _paired(probe, head)])
    if not rows:
        return None
    return Table("probes", ["model", "objective", "feature width", "seeds", "own head test acc % [95% CI]",
                            "linear probe test acc % [95% CI]", "probe − head, points [95% CI]"], rows)


@dataclass
class _Row:
    name: str
    what: str
    acc: dict[int, float]


def _encoder_rows(data: StudyData, encoder: str, sources: dict[str, str]) -> list[_Row]:
    """The probe of ``encoder``, then the models fine-tuned from it, the same networks trained from scratch and the
    linear models on the pixels; none without a probe."""
    probe = _by_seed(_runs(data, encoder), "probe_acc")
    if not probe:
        return []
    tuned, scratch, pixels = [], [], []
    networks = []
    for label in (label for label, source in sources.items() if source == encoder):
        runs = _runs(data, label)
        tuned.append(_Row(label, f"fine-tuned from {encoder}, every weight trained", _by_seed(runs, "test_acc")))
        networks += [r.record.spec["model"] for r in runs[:1]]
    for label in data.labels:
        runs = _runs(data, label)
        if not runs or label in sources or label == encoder:
            continue
        rec = runs[0].record
        if rec.spec["model"] in networks and rec.summary.get("objective") not in ENCODER_OBJECTIVES:
            scratch.append(_Row(label, f"the same network from scratch, {rec.summary.get('objective', '')}",
                                _by_seed(runs, "test_acc")))
        elif rec.model in PIXEL_MODELS:
            pixels.append(_Row(label, "linear model on the raw pixels", _by_seed(runs, "test_acc")))
    return [_Row(encoder, "linear probe on the frozen embedding", probe), *tuned, *scratch, *pixels]


def encoder_table(data: StudyData, encoder: str, index: int) -> tuple[Table, Block] | None:
    """One encoder trained without classification loss: its probe, fine-tuning and training from scratch."""
    rows = _encoder_rows(data, encoder, _sources(data))
    if len(rows) < 2:
        return None
    table = Table(f"encoder_{index:02d}", ["model", "evaluated as", "seeds", "test acc % [95% CI]"],
                  [[r.name, r.what, str(len(r.acc)), _cell(r.acc)] for r in rows])
    first = rows[0]
    diffs = [f"{r.name} − {first.name} probe {_paired(r.acc, first.acc)}" for r in rows[1:]]
    one = f" One test error is {100 / data.test_size:.2f} points." if data.test_size else ""
    note = para("Differences to the probe, percentage points, paired by seed [95% interval]: " + "; ".join(diffs)
                + "." + one, muted=True)
    return table, note


def _classes(run: RunData) -> np.ndarray | None:
    """The true class of each example of the run's stored test subset, from its test predictions."""
    if run.embedding is None or run.predictions is None:
        return None
    index = run.embedding[0]
    order = np.argsort(run.predictions.index, kind="stable")
    at = np.searchsorted(run.predictions.index, index, sorter=order)
    at = np.minimum(at, len(order) - 1)
    if not np.array_equal(run.predictions.index[order[at]], index):
        return None
    return np.asarray(run.predictions.y[order[at]], dtype=np.int64)


def view_figures(data: StudyData, save: Save) -> list[Block]:
    """PCA and t-SNE of the first seed of each model, one panel per model, coloured by the true class."""
    shown = []
    for label in data.labels:
        run = next((r for r in _runs(data, label) if r.embedding is not None), None)
        if run is None or run.embedding is None:
            continue
        y, features = _classes(run), run.embedding[1]
        if y is not None and len(y) >= 4 and np.isfinite(features).all():
            step = -(-len(y) // VIEW_EXAMPLES)  # ceil: evenly spread over the subset, the same examples for all
            shown.append((f"{label}, seed {run.seed}", features[::step], y[::step]))
    if not shown:
        return []
    n = len(shown[0][2])
    blocks: list[Block] = []
    for name, title, view, axes, what in (
            ("pca", "PCA", pca_view, ("PC 1", "PC 2"), "projected on their first two principal components"),
            ("tsne", "t-SNE", tsne_view, ("t-SNE 1", "t-SNE 2"), f"embedded by t-SNE (random state {VIEW_SEED})")):
        fig = latent_scatter([(title, view(f, seed=VIEW_SEED), y) for title, f, y in shown], data.classes)
        for ax in fig.axes:
            if ax.collections:  # the panels that hold points; the others are blank
                ax.set_xlabel(axes[0])
                ax.set_ylabel(axes[1])
        blocks.append(Figure(f"features_{name}", f"{title} of each model's features",
                             save(fig, f"features_{name}"),
                             caption=f"forward_features of the same {n:,} fixed test examples {what}, first seed "
                                     "of each model, coloured by the true class."))
    return blocks


def probes_section(data: StudyData, save: Save) -> Section | None:
    """"Linear probes and views": the probe table, one encoder table per encoder, the PCA and t-SNE views."""
    table = probe_table(data)
    views = view_figures(data, save)
    if table is None and not views:
        return None
    s = Section("probes", "Linear probes and views")
    if table is not None:
        first = next(r.record.summary for r in data.runs if "probe_acc" in r.record.summary)
        s.blocks.append(para(
            "Each trained model's forward_features are read by the same linear probe: after training, the features "
            f"of {first['probe_train_examples']:,} training examples (a fixed subset, the same for every run) and "
            "of the whole test split are computed once by the frozen model, softmax regression is fitted on the "
            "standardised training features (L2, C = "
            f"{first.get('probe_c', 1.0):g}) and scored on the test features. The own head is what the model "
            "itself predicts; under an objective whose head reads a detached embedding (triplet) it is a linear "
            "classifier that followed the embedding while it moved, not a probe. Mean over seeds with a 95% "
            "bootstrap interval."))
        s.blocks.append(table)
    sources = _sources(data)
    encoders = [label for label in data.labels
                if any(r.record.summary.get("objective") in ENCODER_OBJECTIVES for r in _runs(data, label))
                or label in sources.values()]
    for i, encoder in enumerate(encoders):
        built = encoder_table(data, encoder, i)
        if built is not None:
            s.blocks.append(para(strong(encoder), ": linear probe, fine-tuning and training from scratch"))
            s.blocks += list(built)
    s.blocks += views
    return s
