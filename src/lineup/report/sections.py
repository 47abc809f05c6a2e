"""The report's sections after the summary: data, accuracy, dynamics, per class, confusion, failures,
representations and runs. Each function formats evidence already computed; figures go through ``save``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure as MplFigure

from lineup.analysis.dynamics import cumulative_seconds, generalization_gap
from lineup.analysis.stats import ASO_THRESHOLD, N_RESAMPLES, MeanCI
from lineup.report import _format as fmt
from lineup.report import figures
from lineup.report.collect import RunData, StudyData
from lineup.report.document import Figure, Section, Table, Text, code, para
from lineup.report.evidence import Evidence

#: Saves a matplotlib figure as ``figures/<name>.png`` and returns its data URI.
Save = Callable[[MplFigure, str], str]


def _figure(save: Save, fig: MplFigure, name: str, alt: str, caption: str = "", *, narrow: bool = False) -> Figure:
    return Figure(name=name, alt=alt, uri=save(fig, name), caption=caption, narrow=narrow)


def data_section(data: StudyData) -> Section:
    info, spec = data.info, data.spec
    s = Section("data", "Data and protocol")
    what = [f"Data: {info.get('name', spec['data']['dataset'])}"]
    if info.get("input_shape"):
        what.append(f", inputs {'×'.join(str(d) for d in info['input_shape'])}")
    sizes = info.get("sizes")
    if sizes:
        what.append(f"; {sizes['train']:,} training, {sizes['val']:,} validation and {sizes['test']:,} test examples")
    s.blocks.append(para("".join(what) + "."))
    for note in info.get("notes", []):
        s.blocks.append(para(note, muted=True))
    protocol = ("Protocol: every model trains with the study's settings and its own overrides; model selection "
                "uses the validation split only; the test split is evaluated once, with the final (or "
                "early-stopping best) weights.")
    search = data.spec.get("search") or {}
    if search.get("protocol") in ("tuned", "both"):
        protocol = ("Protocol: tuned. Each model trains with the best configuration of its own search on the "
                    "validation split (see the hyper-parameter search above); model selection uses the validation "
                    "split only; the test split is evaluated once, with the final (or early-stopping best) weights.")
    if data.refit:
        protocol += (" Each run is also retrained from scratch on training + validation for the epoch count "
                     "chosen on validation and evaluated on the test set (\"refit test acc\").")
    s.blocks.append(para(protocol))
    s.blocks.append(para("Baseline: every model is compared with ", code(data.baseline), "."))
    return s


def accuracy_section(data: StudyData, ev: Evidence) -> Section:
    s = Section("accuracy", "Accuracy")
    s.blocks.append(accuracy_table(data, ev))
    s.blocks.append(para(
        f"Metrics: mean over complete seeds with a 95% percentile-bootstrap interval over seeds ({N_RESAMPLES:,} "
        f"resamples; \"{fmt.NO_CI}\" where one seed gives no spread; with few seeds the interval is too narrow). "
        f"Δ vs {data.baseline}: paired on the same test examples and matching seeds, 95% paired-bootstrap "
        "interval over test examples; * marks a difference significant by the exact McNemar test after Holm's "
        "correction over all pairs (5% family-wise).", muted=True))
    if ev.comparisons:
        s.blocks.append(pairwise_table(ev))
        s.blocks.append(para(
            "Every pair of models, A being the more accurate on their matching seeds. Only A / only B: test "
            "examples (summed over matching seeds) that one model gets right and the other wrong; McNemar's exact "
            "test uses only these. ASO ε_min: Almost Stochastic Order of A over B across per-seed test accuracies "
            f"(Dror et al., 2019), Bonferroni-corrected for the number of pairs; below {ASO_THRESHOLD} A is better "
            "across seeds; n/a with fewer than 2 seeds per model.", muted=True))
    return s


def accuracy_table(data: StudyData, ev: Evidence) -> Table:
    ranks = {r.label: r for r in ev.ranking}
    pairs = {frozenset((c.a, c.b)): c for c in ev.comparisons}
    header = ["model", "params", "MFLOPs", "seeds", "train acc %", "val acc %", "test acc % [95% CI]", "test loss",
              f"Δ vs {data.baseline}, points", "vs first", "epochs", "seconds", "diverged", "failed"]
    if data.refit:
        header.insert(8, "refit test acc %")
    rows, classes = [], []
    for label, m in ev.models.items():
        st = m.stats
        delta = ""
        c = pairs.get(frozenset((label, data.baseline)))
        if c is not None:
            delta = fmt.diff(c.diff_of(label), mark=c.significant)
        r = ranks.get(label)
        vs_first = "" if r is None else "first" if r.rank == 1 else (
            "n/a" if r.vs_best is None else
            f"{'tied' if r.tied_with_best else 'worse'} (p {fmt.pvalue(r.vs_best.p_holm)})")
        row = [label, f"{m.params:,}" if m.params else "", f"{m.flops / 1e6:.3g}" if m.flops else "",
               str(m.complete), fmt.ci(st.get("train_acc")), fmt.ci(st.get("val_acc")), fmt.ci(st.get("test_acc")),
               fmt.ci(st.get("test_loss"), scale=1, digits=3), delta, vs_first,
               fmt.mean_only(st.get("epochs_trained")), fmt.mean_only(st.get("wall_time")), str(m.diverged),
               str(m.failed)]
        if data.refit:
            row.insert(8, fmt.ci(st.get("refit_test_acc")))
        rows.append(row)
        classes.append("baseline" if label == data.baseline else "")
    return Table("accuracy", header, rows, classes)


def pairwise_table(ev: Evidence) -> Table:
    header = ["A", "B", "seeds", "Δ acc (A − B), points [95% CI]", "only A right", "only B right", "McNemar p",
              "p (Holm)", "significant", "ASO ε_min (A better)"]
    rows = [[c.a, c.b, str(c.seeds), fmt.diff(c.diff), str(c.mcnemar.a_only), str(c.mcnemar.b_only),
             fmt.pvalue(c.mcnemar.pvalue), fmt.pvalue(c.p_holm), "yes" if c.significant else "no",
             fmt.aso_eps(c.aso_eps)] for c in ev.comparisons]
    return Table("pairwise", header, rows, ["" if c.significant else "muted" for c in ev.comparisons])


def dynamics_section(data: StudyData, ev: Evidence, save: Save) -> list[Section]:
    """The dynamics table, then learning curves, generalization gap, gradient norm and time (subsections)."""
    s = Section("dynamics", "Learning dynamics")
    s.blocks.append(dynamics_table(ev))
    s.blocks.append(para(
        "Epochs, steps and seconds until the validation accuracy first reaches 90%, 95% and 99% of its final "
        "value (measured once per epoch, so that is their resolution). Training-risk AUC: area under the per-epoch "
        "training loss (trapezoid), divided by the epochs it spans: lower means the empirical risk went down "
        "sooner and further. Best epoch: lowest validation loss. Gaps at the last epoch. Mean over complete "
        "seeds; [95% CI] over seeds where shown.", muted=True))
    labels = data.labels
    curves: dict[str, dict[str, list[list[float]]]] = {label: {} for label in labels}
    steps: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    for run in data.runs:
        if not run.epochs:
            continue
        c = curves[run.label]
        for metric in ("train_loss", "val_loss", "train_acc", "val_acc", "grad_norm"):
            c.setdefault(metric, []).append([e.get(metric, np.nan) for e in run.epochs])
        gaps = generalization_gap(run.epochs)
        c.setdefault("loss_gap", []).append(list(gaps["loss_gap"]))
        c.setdefault("acc_gap", []).append(list(gaps["acc_gap"]))
        c.setdefault("seconds", []).append(list(cumulative_seconds(run.epochs)))
        steps[run.label].append(run.step_losses)
    # Only models with a history take a colour, so that a study with many pending entries keeps distinct ones.
    labels = [label for label in labels if curves[label]]
    if not labels:
        return [s]
    curves = {label: curves[label] for label in labels}
    steps = {label: steps[label] for label in labels}

    def series(metric: str) -> dict[str, list[list[float]]]:
        return {label: curves[label].get(metric, []) for label in labels}

    base = data.baseline
    learning = Section("curves", "Learning curves", level=3)
    learning.blocks.append(_figure(save, figures.learning_curves(curves, baseline=base), "learning_curves",
                                   "learning curves", "Lines: mean over seeds; bands: range over seeds. Training "
                                   "metrics are averaged over each epoch's batches."))
    learning.blocks.append(_figure(save, figures.step_losses(steps), "step_losses", "training loss per step",
                                   "Training loss of every optimizer step (moving average), first seed of each "
                                   "model."))
    gap = Section("gap", "Generalization gap", level=3)
    gap_fig = figures.band_panels([
        figures.Panel("validation minus training loss", series("loss_gap"), zero_line=True),
        figures.Panel("training minus validation accuracy", series("acc_gap"), percent=True, zero_line=True),
    ], labels=labels, baseline=base)
    gap.blocks.append(_figure(save, gap_fig, "generalization_gap", "generalization gap per epoch",
                              "Above zero: better on the training data than on the validation data."))
    cost = Section("gradients", "Gradient norm and wall-clock time", level=3)
    cost_fig = figures.band_panels([
        figures.Panel("gradient norm (mean over the epoch's steps)", series("grad_norm"), log=True),
        figures.Panel("cumulative wall-clock time", series("seconds"), ylabel="seconds"),
        figures.Panel("validation accuracy against wall-clock time", series("val_acc"), xlabel="seconds",
                      percent=True, x=series("seconds")),
    ], labels=labels, baseline=base)
    cost.blocks.append(_figure(save, cost_fig, "gradients_and_time", "gradient norm and wall-clock time",
                               "Global L2 norm of the gradient before each optimizer step; seconds include the "
                               "per-epoch validation pass."))
    return [s, learning, gap, cost]


def dynamics_table(ev: Evidence) -> Table:
    header = ["model", "seeds", "epochs to 90%", "epochs to 95% [95% CI]", "epochs to 99%", "steps to 95%",
              "seconds to 95%", "training-risk AUC [95% CI]", "best epoch", "val − train loss",
              "train − val acc, points [95% CI]"]
    rows = []
    for label, m in ev.models.items():
        st = m.stats
        rows.append([label, str(m.complete), fmt.mean_only(st.get("epochs_to_90")),
                     fmt.ci(st.get("epochs_to_95"), scale=1, digits=1), fmt.mean_only(st.get("epochs_to_99")),
                     fmt.mean_only(st.get("steps_to_95"), digits=0), fmt.mean_only(st.get("seconds_to_95")),
                     fmt.ci(st.get("train_risk_auc"), scale=1, digits=3), fmt.mean_only(st.get("best_epoch")),
                     fmt.mean_only(st.get("final_loss_gap"), digits=3),
                     fmt.ci(st.get("final_acc_gap"), scale=100, digits=2)])
    return Table("dynamics", header, rows)


def per_class_section(data: StudyData, ev: Evidence, save: Save) -> Section | None:
    labels = [label for label, m in ev.models.items() if m.per_class is not None]
    if not labels or not data.classes:
        return None
    acc = np.stack([ev.models[label].per_class for label in labels])  # type: ignore[misc]
    s = Section("per-class", "Per-class accuracy")
    s.blocks.append(_figure(save, figures.per_class(acc, labels, data.classes), "per_class", "per-class accuracy"))
    rows = [[label, *(fmt.pct(v) if np.isfinite(v) else "" for v in row)] for label, row in zip(labels, acc,
                                                                                                   strict=True)]
    s.blocks.append(Table("per_class", ["model", *data.classes], rows))
    s.blocks.append(para("Test accuracy (recall) of each true class, %, mean over seeds.", muted=True))
    return s


def confusion_section(data: StudyData, ev: Evidence, save: Save) -> Section | None:
    s = Section("confusion", "Confusion matrices")
    for i, (label, m) in enumerate(ev.models.items()):
        if m.confusion is None:
            continue
        fig = figures.confusion(m.confusion, data.classes,
                                title=f"{label}: test predictions of {m.complete} seed(s), row-normalised")
        s.blocks.append(_figure(save, fig, f"confusion_{i:02d}", f"confusion matrix of {label}", narrow=True))
    if not s.blocks:
        return None
    s.blocks.append(para("Rows: true class; columns: predicted class; counts summed over seeds, each row divided "
                         "by its total.", muted=True))
    return s


#: Rows of the shared-mistakes table (the most missed first); the figure shows at most one gallery's worth.
SHARED_ROWS = 20


def failures_section(data: StudyData, ev: Evidence, save: Save) -> Section | None:
    """The test examples several models miss (table and images), then each model's most confident mistakes."""
    s = Section("failures", "Failure cases")
    classes = data.classes
    if ev.shared:
        s.blocks.extend(shared_mistakes_blocks(data, ev, save))
    for i, label in enumerate(data.labels):
        seed, fails = data.failures.get(label, (0, []))
        if not fails or not classes:
            continue
        caps = [f"{classes[f.y]} → {classes[f.pred]}\n{100 * f.confidence:.0f}% (#{f.index})" for f in fails]
        fig = figures.failure_gallery([f.image for f in fails], caps,
                                      title=f"{label}, seed {seed}: most confident test mistakes "
                                      "(true → predicted, confidence, test index)")
        s.blocks.append(_figure(save, fig, f"failures_{i:02d}", f"failure cases of {label}"))
    return s if s.blocks else None


def shared_mistakes_blocks(data: StudyData, ev: Evidence, save: Save) -> list[Text | Table | Figure]:
    """What the models get wrong together: a sentence, the table of ``ev.shared`` and the images stored of them."""
    shared, index = ev.shared, ev.shared_index
    names = data.classes or [str(c) for c in range(1 + max(max(m.y, m.pred) for m in shared))]
    everywhere = sum(m.by_every_run for m in shared)
    models = list(shared[0].wrong)
    text = para(f"{len(shared)} test example{'s are' if len(shared) != 1 else ' is'} missed by two or more models "
                f"in most of their runs, {everywhere} of them by every run of every model. An example that every "
                "model misses lowers every accuracy alike: the differences between models come from the others"
                + (f" (the most missed {SHARED_ROWS} are listed)." if len(shared) > SHARED_ROWS else "."))
    header = ["test index", "true class", "predicted (most often)", *[f"{m}: runs wrong" for m in models],
              "runs wrong"]
    rows = [[str(i), names[m.y], names[m.pred], *[f"{w} / {n}" for w, n in m.wrong.values()],
             f"{m.runs_wrong} / {m.runs}"] for i, m in zip(index[:SHARED_ROWS], shared[:SHARED_ROWS], strict=True)]
    blocks: list[Text | Table | Figure] = [text, Table("shared_mistakes", header, rows)]
    shown = [(i, m) for i, m in zip(index, shared, strict=True) if i in data.mistake_images][:16]
    if shown:
        blocks.append(para(f"The images of {len(shown)} of them, the most missed of those that some run kept among "
                           "its most confident mistakes (a run keeps only those), are below.", muted=True))
        fig = figures.failure_gallery(
            [data.mistake_images[i] for i, _ in shown],
            [f"{names[m.y]} → {names[m.pred]}\n{m.runs_wrong}/{m.runs} runs (#{i})" for i, m in shown],
            title="test examples several models miss (true → most often predicted, runs wrong, test index)",
            cols=min(8, max(4, len(shown))))
        blocks.append(_figure(save, fig, "shared_mistakes", "test examples several models miss"))
    return blocks


def representations_section(ev: Evidence, save: Save) -> list[Section] | None:
    """CKA between the models' forward_features, then layer by layer (subsections) where models declare layers."""
    if ev.cka is None:
        return None
    labels, cka, pairs = ev.cka
    s = Section("representations", "Representations")
    s.blocks.append(_figure(save, figures.cka_heatmap(cka, labels, pairs), "cka", "linear CKA between models"))
    rows = [[label, *(f"{v:.3f}" if np.isfinite(v) else "" for v in row)] for label, row in zip(labels, cka,
                                                                                                  strict=True)]
    s.blocks.append(Table("cka", ["model", *labels], rows))
    s.blocks.append(para(
        "Linear CKA (Kornblith et al., 2019) between the forward_features of the same fixed test examples: 1 for "
        "representations equal up to a rotation and a scale, near 0 for unrelated ones. Off the diagonal: mean over "
        "matching seeds (seed s of one model against seed s of the other; every seed pair when none match). "
        "Diagonal: mean over pairs of distinct seeds of the same model, the yardstick for the rest (empty with one "
        "seed).", muted=True))
    return [s, *layer_sections(ev, save)]


def _cka(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else ""


def layer_sections(ev: Evidence, save: Save) -> list[Section]:
    """Layer-by-layer CKA: each layer across seeds of its model, then models against each other at equal depth."""
    if not ev.layer_stability:
        return []
    stable = Section("layers", "Layer by layer: stability across seeds", level=3)
    if any(np.isfinite(e.mean) for layers in ev.layer_stability.values() for e in layers):
        stable.blocks.append(_figure(save, figures.layer_stability(ev.layer_stability), "layer_stability",
                                     "linear CKA between seeds, layer by layer"))
    rows = [[label, e.layer, f"{e.depth:.2f}", str(e.width), _cka(e.mean), _cka(e.low), _cka(e.high), str(e.pairs)]
            for label, layers in ev.layer_stability.items() for e in layers]
    stable.blocks.append(Table("layer_stability", ["model", "layer", "relative depth", "width", "CKA across seeds",
                                                   "min", "max", "seed pairs"], rows))
    stable.blocks.append(para(
        "Linear CKA of each layer a model declares (conv blocks, stages, encoder and decoder levels, hidden layers), "
        "between every pair of distinct seeds, on the same fixed test examples as above: near 1, the layer learns "
        "the same representation whatever the seed; lower, the seed decides more of it (empty with one seed). "
        "Feature maps are averaged over height and width first, one value per channel, so a convolutional layer is "
        "compared through its channel means, not pixel by pixel. Relative depth: the i-th of a model's L layers "
        "is at i/L. Width: values per example. Models that declare no layers (such as softmax regression) are "
        "left out.", muted=True))
    if not ev.layer_cka:
        return [stable]
    across = Section("layers-across-models", "Layer by layer: models at the same relative depth", level=3)
    for depth, (chosen, models, cka, pairs) in ev.layer_cka.items():
        fig = figures.cka_heatmap(cka, [f"{m} · {chosen[m]}" for m in models], pairs,
                                  title=f"linear CKA at relative depth {depth:.2f} (model · layer nearest to it)")
        across.blocks.append(_figure(save, fig, f"cka_depth_{round(100 * depth):02d}",
                                     f"linear CKA between models at relative depth {depth:.2f}"))
    models = list(dict.fromkeys(m for chosen, *_ in ev.layer_cka.values() for m in chosen))
    rows = [[m, *(chosen.get(m, "") for chosen, *_ in ev.layer_cka.values())] for m in models]
    across.blocks.append(Table("layers_at_depth", ["model", *(f"layer at depth {d:.2f}" for d in ev.layer_cka)],
                               rows))
    across.blocks.append(para(
        "Each model is represented by its layer nearest the given relative depth (the shallower one on a tie), so "
        "models of different depths are compared where they are equally far from input to output; depth 1 is "
        "close to the forward_features compared above. Off the diagonal: mean over matching seeds; diagonal: that "
        "layer across seeds of the model, the yardstick for the rest. Channel means, as above.", muted=True))
    return [stable, across]


def runs_section(data: StudyData) -> Section:
    s = Section("models", "Models and runs")
    for label, text in data.descriptions.items():
        if text:
            s.blocks.append(para(f"{label}: {text}"))
    rows, classes = [], []
    settings = len(data.settings) > 1
    for run in data.all_runs:
        r = run.record
        stop = r.summary.get("stop_reason", "") if r.status != "failed" else ""
        error = (r.error or "").splitlines()[0] if r.error else ""
        rows.append([*([r.setting] if settings else []), r.label, str(r.seed), r.hash[:12], r.status,
                     fmt.pct(r.summary.get("test_acc")), str(r.summary.get("epochs_trained", "")), stop or error,
                     f"{r.wall_time:.1f}" if r.wall_time else ""])
        classes.append(f"status-{r.status}")
    s.blocks.append(Table("runs", [*(["setting"] if settings else []), "model", "seed", "run", "status",
                                   "test acc %", "epochs", "stopped because", "seconds"], rows, classes))
    return s


def settings_section(data: StudyData, ev: Evidence, save: Save) -> Section | None:
    """Every model in every data setting, and how far each one moves from the first setting."""
    if not data.others:
        return None
    from lineup.analysis.stats import holm, mean_ci
    from lineup.report.evidence import gather

    evs = {data.setting: ev, **{name: gather(d) for name, d in data.others.items()}}
    names = list(evs)
    first = names[0]
    described = data.setting_descriptions
    s = Section("settings", "Data settings")
    s.blocks.append(para(
        f"Every model was trained on {len(names)} data settings. The sections above show the first, ",
        code(first), "; this one compares them. " + " ".join(
            f"{name}: {described[name]}." for name in names if described.get(name))))
    labels = list(ev.models)
    header = ["model", *(f"{name} test acc %" for name in names)]
    rows = [[label, *(fmt.ci(e.models[label].stats.get("test_acc")) if label in e.models else ""
                      for e in evs.values())] for label in labels]
    per_split = _split_means(data, evs) if data.test_split_draws else {}
    pooled = _over_test_splits(data, per_split)
    if pooled:
        header.append(f"mean over the {len(names)} test splits %")
        for row, label in zip(rows, labels, strict=True):
            row.append(fmt.ci(pooled[label]) if label in pooled else "")
    s.blocks.append(Table("settings_accuracy", header, rows,
                          ["baseline" if label == data.baseline else "" for label in labels]))
    if pooled:
        s.blocks.append(para(_test_splits_text(data, per_split, pooled)))

    # Change from the first setting, paired by seed: the same seed starts from the same initial weights.
    header = ["model", *(f"Δ {name} − {first}, points" for name in names[1:])]
    cells: dict[tuple[str, str], tuple[str, float | None, bool]] = {}  # text, McNemar p, interval excludes 0
    for label in labels:
        base = {r.seed: r for r in data.of(label) if r.complete}
        for name in names[1:]:
            other = {r.seed: r for r in data.others[name].of(label) if r.complete}
            seeds = [k for k in base if k in other]
            if not seeds:
                continue
            d = mean_ci([other[k].record.summary["test_acc"] - base[k].record.summary["test_acc"] for k in seeds])
            excludes = d.low is not None and d.high is not None and (d.low > 0 or d.high < 0)
            cells[(label, name)] = (fmt.ci(d, signed=True), _same_test_pvalue(base, other, seeds), excludes)
    tested = [key for key, (_, p, _) in cells.items() if p is not None]
    reject = dict(zip(tested, holm([cells[k][1] for k in tested])[0], strict=True)) if tested else {}
    rows = []
    for label in labels:
        row = [label]
        for name in names[1:]:
            text, p, excludes = cells.get((label, name), ("", None, False))
            # On a shared test set the examples decide; on a distorted one, only the seeds can.
            row.append(text + (" *" if (reject.get((label, name)) if p is not None else excludes) else ""))
        rows.append(row)
    s.blocks.append(Table("settings_change", header, rows,
                          ["baseline" if label == data.baseline else "" for label in labels]))
    s.blocks.append(para(
        "Δ: mean over seeds of (accuracy in the setting − accuracy in the first setting), each seed paired with "
        "itself, with a 95% bootstrap interval over seeds. * marks a change the evidence supports: where both "
        "settings test the same examples with the same labels (their images may differ, e.g. under input noise "
        "applied to all splits), the exact McNemar test on those examples, pooled over matching seeds, after "
        "Holm's correction over the table (5% family-wise), since seeds alone cannot tell a change of a few test "
        "examples from test-set noise; where the test examples differ, the interval over seeds excluding 0. A "
        "setting that distorts the test split measures accuracy on its own test split.", muted=True))

    best = []
    for name, e in evs.items():
        if not e.ranking:
            continue
        tied = [r.label for r in e.ranking if r.tied_with_best]
        resolution = f" (the test set resolves ±{100 * e.half_width:.2f} points at this accuracy)" if e.half_width \
            else ""
        if len(tied) > 1:
            best.append(f"{name}: {', '.join(tied)} are not significantly different from the most accurate, "
                        f"{e.ranking[0].label}{resolution}.")
        else:
            best.append(f"{name}: {e.ranking[0].label} is the most accurate, significantly{resolution}.")
    for line in best:
        s.blocks.append(para(line))
    means = {label: [] for label in labels}
    lows = {label: [] for label in labels}
    highs = {label: [] for label in labels}
    for e in evs.values():
        for label in labels:
            m = e.models[label].stats.get("test_acc") if label in e.models else None
            means[label].append(None if m is None else m.mean)
            lows[label].append(None if m is None else m.low)
            highs[label].append(None if m is None else m.high)
    s.blocks.append(_figure(save, figures.across_settings(means, lows, highs, names, baseline=data.baseline),
                            "settings", "test accuracy of every model in every data setting"))
    return s


def _split_means(data: StudyData, evs: dict[str, Evidence]) -> dict[str, list[float]]:
    """Per model with a complete run in every split, its mean test accuracy over seeds in each split."""
    out = {}
    for label in data.labels:
        means = [e.models[label].stats["test_acc"].mean for e in evs.values()
                 if label in e.models and "test_acc" in e.models[label].stats]
        if len(means) == len(evs):
            out[label] = means
    return out


def _over_test_splits(data: StudyData, per_split: dict[str, list[float]]) -> dict[str, MeanCI]:
    """Per model of ``_split_means``, the mean over splits, with Nadeau and Bengio's corrected interval over
    splits (``pool_test_splits``)."""
    out = {}
    for label, means in per_split.items():
        pooled = pool_test_splits(data, means)
        if pooled is not None:
            out[label] = pooled
    return out


def pool_test_splits(data: StudyData, means: list[float], *, held_out: str = "test", n_train: int | None = None
                     ) -> MeanCI | None:
    """A share (an accuracy) measured once per test split, pooled: the mean over splits with Nadeau and Bengio's
    corrected interval (``repeated_holdout_ci``; the split is the unit, and the splits overlap), clipped to
    [0, 1]. ``held_out`` names the split it was measured on (``"test"`` or ``"val"``), whose size the correction
    takes; ``n_train`` the examples the measured estimator was fitted on, where fewer than the training split.
    ``None`` where the study does not record its split sizes."""
    from lineup.analysis.stats import repeated_holdout_ci

    sizes = data.info.get("sizes", {})
    if not (sizes.get("train") and sizes.get(held_out)):
        return None
    r = repeated_holdout_ci(means, n_train=n_train or int(sizes["train"]), n_test=int(sizes[held_out]))
    return MeanCI(r.mean, _unit(r.low), _unit(r.high), r.n)


def _unit(v: float | None) -> float | None:
    """An interval's end clipped to [0, 1], where an accuracy lies."""
    return None if v is None else min(max(v, 0.0), 1.0)


def _test_splits_text(data: StudyData, per_split: dict[str, list[float]], pooled: dict[str, MeanCI]) -> str:
    """What the pooled column is, and each model against the baseline split by split (the split moves every
    model together, so the paired differences are what separates them)."""
    text = (f"These settings differ only in which examples they hold out for testing, so the last column pools "
            f"them: the mean over the {len(data.settings)} splits of each model's mean over seeds, with Nadeau and "
            "Bengio's corrected 95% t-interval over splits, which allows for the splits sharing examples.")
    missing = [label for label in data.labels if label not in pooled]
    if missing:
        text += f" Not pooled, for want of a complete run in every split: {', '.join(missing)}."
    base = data.baseline
    if base in pooled:
        parts = []
        for label in pooled:
            if label == base:
                continue
            d = np.subtract(per_split[label], per_split[base])
            parts.append(f"{label} {100 * d.mean():+.2f} points (higher on {int((d > 0).sum())}, lower on "
                         f"{int((d < 0).sum())} of {len(d)})")
        if parts:
            text += f" Split by split against {base}: " + "; ".join(parts) + "."
    return text


def _same_test_pvalue(base: dict[int, RunData], other: dict[int, RunData], seeds: list[int]) -> float | None:
    """Exact McNemar p-value of the per-example correctness of two settings' runs, pooled over ``seeds``; None
    unless every pair of runs was tested on the same examples with the same labels."""
    from lineup.analysis.stats import mcnemar_test

    a, b = [], []
    for k in seeds:
        pa, pb = base[k].predictions, other[k].predictions
        if pa is None or pb is None or not (np.array_equal(pa.index, pb.index) and np.array_equal(pa.y, pb.y)):
            return None
        a.append(pa.pred == pa.y)
        b.append(pb.pred == pb.y)
    return mcnemar_test(np.concatenate(a), np.concatenate(b)).pvalue
