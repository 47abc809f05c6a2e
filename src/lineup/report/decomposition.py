"""The report's "Error decomposition" section, for studies with a ``[decomposition]`` (``lineup.decomposition``).

Everything comes from the store, through ``collect``: the study's resolved decomposition (which setting is each
served setting's reference), each run's summary (its test risk, the Bayes risk of its data with the error bound, the
KL divergence of its posterior and its ECE, measured where the run executed) and, on two-value inputs, its
predictions on a grid labelled with the Bayes decisions. The numbers are computed here with
``lineup.analysis.risk``; the section only formats them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure

from lineup.analysis.risk import ErrorDecomposition, Interval, error_decomposition, mean_interval
from lineup.analysis.stats import MeanCI
from lineup.data.synthetic import BayesRisk
from lineup.report import _format as fmt
from lineup.report import figures_decomposition as figs
from lineup.report.collect import RunData, StudyData
from lineup.report.document import Figure, Section, Table, code, para

Save = Callable[[MplFigure, str], str]


@dataclass
class DecompositionRow:
    """One model in one served data setting, over the seeds it shares with its reference runs.

    Attributes:
        risk: seed -> ``R(h)``, the test risk of the run in the served setting.
        risk_class: seed -> ``R(h_class)``, the test risk of the same entry and seed in the reference setting.
        decomposition: ``R(h) - R* = estimation + approximation`` on the seeds with both; ``None`` without any.
    """

    setting: str
    label: str
    reference: str
    train_size: int | None
    bayes: BayesRisk | None
    risk: dict[int, float] = field(default_factory=dict)
    risk_class: dict[int, float] = field(default_factory=dict)
    kl: list[float] = field(default_factory=list)
    ece: list[float] = field(default_factory=list)
    decomposition: ErrorDecomposition | None = None
    class_interval: Interval | None = None

    @property
    def seeds(self) -> list[int]:
        return sorted(set(self.risk) & set(self.risk_class))


def _risk(run: RunData) -> float | None:
    s = run.record.summary
    if not run.complete:
        return None
    if "test_risk" in s:
        return float(s["test_risk"])
    return 1.0 - float(s["test_acc"]) if "test_acc" in s else None


def _bayes(runs: list[RunData]) -> BayesRisk | None:
    for r in runs:
        s = r.record.summary
        if r.complete and "bayes_risk" in s:
            return BayesRisk(float(s["bayes_risk"]), s.get("bayes_risk_error_bound"),
                             s.get("bayes_risk_standard_error"), str(s.get("bayes_risk_method", "")))
    return None


def _train_size(data: StudyData, setting: str) -> int | None:
    info = data.spec.get("settings_info", {}).get(setting) or (data.info if setting == data.setting else {})
    return info.get("sizes", {}).get("train")  # type: ignore[no-any-return]


def _test_size(data: StudyData, setting: str) -> int | None:
    info = data.spec.get("settings_info", {}).get(setting) or (data.info if setting == data.setting else {})
    return info.get("sizes", {}).get("test")  # type: ignore[no-any-return]


def decomposition_rows(data: StudyData) -> list[DecompositionRow]:
    """Every (served setting, model) of the study's decomposition, in the order of the file."""
    plan = data.spec.get("decomposition")
    if not plan:
        return []
    by_setting = {d.setting: d for d in data.settings}
    rows = []
    for setting, reference in plan["references"].items():
        served, ref = by_setting.get(setting), by_setting.get(reference)
        if served is None or ref is None:
            continue
        bayes = _bayes(served.runs)
        for label in data.labels:
            row = DecompositionRow(setting=setting, label=label, reference=reference,
                                   train_size=_train_size(data, setting), bayes=bayes)
            for run in served.of(label):
                r = _risk(run)
                if r is not None:
                    row.risk[run.seed] = r
                    s = run.record.summary
                    if "posterior_kl" in s and np.isfinite(s["posterior_kl"]):
                        row.kl.append(float(s["posterior_kl"]))
                    if "ece" in s:
                        row.ece.append(float(s["ece"]))
            for run in ref.of(label):
                r = _risk(run)
                if r is not None:
                    row.risk_class[run.seed] = r
            seeds = row.seeds
            if seeds and bayes is not None:
                h = [row.risk[s] for s in seeds]
                c = [row.risk_class[s] for s in seeds]
                # Same seeds, same test sample: paired; the common test sample's error is added to the approximation.
                row.decomposition = error_decomposition(h, c, bayes, paired=True, test_size=_test_size(data, setting))
                row.class_interval = mean_interval(c)
            rows.append(row)
    return rows


def _ci(iv: Interval | None, *, scale: float = 100.0, digits: int = 2, signed: bool = False) -> str:
    return "" if iv is None else fmt.ci(MeanCI(iv.mean, iv.low, iv.high, iv.n), scale=scale, digits=digits,
                                        signed=signed)


def _values_ci(values: list[float], **kwargs: Any) -> str:
    return _ci(mean_interval(values), **kwargs) if values else ""


def _bound(b: BayesRisk | None) -> str:
    if b is None:
        return ""
    if b.error_bound is not None:
        return f"{b.error_bound:.1e} ({b.method})"
    return f"s.e. {b.standard_error or 0.0:.1e} ({b.method})"


def decomposition_table(data: StudyData, rows: list[DecompositionRow]) -> Table:
    several = len({r.setting for r in rows}) > 1
    on_test = bool(data.spec["decomposition"].get("on_test"))
    header = [*(["setting"] if several else []), "model", "n train", "seeds", "R(h) % [95% CI]",
              "R(h_class) % [95% CI]", "R* %", "R* error bound", "estimation error, points [95% CI]",
              "approximation error, points [95% CI]", "KL(p ‖ p̂), nats [95% CI]", "ECE % [95% CI]", "reference"]
    out, classes = [], []
    for r in rows:
        d = r.decomposition
        ref_size = _train_size(data, r.reference)
        ref = f"{r.reference}: trained on the test sample" if on_test else \
            f"{r.reference} (n = {ref_size:,})" if ref_size else r.reference
        out.append([*([r.setting] if several else []), r.label, f"{r.train_size:,}" if r.train_size else "",
                    str(len(r.seeds)), _ci(d.risk if d else None), _ci(r.class_interval),
                    fmt.pct(r.bayes.value) if r.bayes else "", _bound(r.bayes),
                    _ci(d.estimation if d else None, signed=True), _ci(d.approximation if d else None, signed=True),
                    _values_ci(r.kl, scale=1.0, digits=4), _values_ci(r.ece), ref])
        classes.append("baseline" if r.label == data.baseline else "")
    return Table("decomposition", header, out, classes)


def _reference_text(data: StudyData, rows: list[DecompositionRow]) -> list[Any]:
    plan = data.spec["decomposition"]
    refs = list(dict.fromkeys(r.reference for r in rows))
    if plan.get("on_test"):
        return [para(
            "R(h_class) was approximated by training every model on the test sample itself (reference = \"test\": "
            "the added setting ", code(", ".join(refs)), "), as some published studies do. Its test risk is then a "
            "training risk, so R(h_class) is optimistic: the approximation error is understated and can fall below "
            "zero, and the estimation error is overstated. A setting with a larger, independent training sample "
            "(reference = \"<setting>\") avoids that bias.")]
    parts: list[Any] = ["R(h_class) was approximated by training every model, with the same seeds and training "
                        "settings, on a much larger training sample drawn independently from the same distribution "
                        "and tested on the same test sample: "]
    for i, ref in enumerate(refs):
        size = _train_size(data, ref)
        parts += [code(ref), f" ({size:,} training examples)" if size else "", ", " if i < len(refs) - 1 else ". "]
    parts.append("Estimation errors are paired seed by seed on the same test examples.")
    return [para(*parts)]


def _label_noise(data: StudyData, settings: list[str]) -> list[float]:
    rates = []
    tables = {st["name"]: st for st in data.spec.get("settings", [])}
    for name in settings:
        options = {**data.spec["data"].get("options", {}), **tables.get(name, {}).get("options", {})}
        rate = options.get("label_noise", 0.0)
        if rate:
            rates.append(float(rate))
    return rates


def decomposition_section(data: StudyData, save: Save) -> list[Section] | None:
    """The decomposition table and bars, risk against training-set size, and decision regions (subsections)."""
    rows = decomposition_rows(data)
    if not rows:
        return None
    s = Section("decomposition", "Error decomposition")
    s.blocks.append(para(
        "On data whose distribution is known, each model's test risk splits into R(h) = R* + [R(h_class) − R*] + "
        "[R(h) − R(h_class)]: the Bayes risk R* (the least error any classifier can have), the approximation error "
        "(what the architecture cannot represent, however much data it gets) and the estimation error (what it "
        "loses by learning from n examples) (Vapnik, 1998; Bottou and Bousquet, 2007). R(h_class) is what the same "
        "training (objective, optimiser, epochs) reaches on much more data, so it also holds what that training "
        "cannot reach: a surrogate loss and a finite optimisation count as approximation error here."))
    s.blocks += _reference_text(data, rows)
    s.blocks.append(decomposition_table(data, rows))
    s.blocks.append(para(
        "R(h), R(h_class), KL and ECE: mean over seeds with a 95% Student-t interval over seeds. Estimation error: "
        "the t-interval of the per-seed differences. Approximation error: the t-interval of R(h_class) − R*, widened "
        "by the binomial variance of the test sample every seed shares and by R*'s error bound. R* error bound: how "
        "far the computed R* can be from the true one (a probability), and how it was computed. KL(p ‖ p̂): mean over "
        "the test sample of the divergence of the model's predicted class probabilities from the true posterior, in "
        "nats (0: the model learned the posterior). ECE: expected calibration error over 15 equal-width confidence "
        "bins. All measured on the test sample when each run finished.", muted=True))
    noisy = _label_noise(data, list(dict.fromkeys(r.setting for r in rows)))
    if noisy:
        s.blocks.append(para(
            "With label noise (options.label_noise), the labels of every split are noisy and so is the distribution "
            "the data layer reports: R*, the posterior and the test labels are those of the noisy labels, R*~ = rate "
            "+ (1 − rate·K/(K−1)) R* of the clean distribution (for two classes, rate + (1 − 2 rate) R*). That noisy "
            "R* is what the table shows and what R(h) is set against.", muted=True))
    panels = []
    for setting in dict.fromkeys(r.setting for r in rows):
        part = [r for r in rows if r.setting == setting and r.decomposition is not None]
        if not part or part[0].bayes is None:
            continue
        ds = [r.decomposition for r in part if r.decomposition is not None]
        size = part[0].train_size
        panels.append(figs.Bars(
            title=(setting or "R(h) = R* + approximation + estimation") + (f" (n = {size:,})" if size else ""),
            models=[r.label for r in part], bayes=part[0].bayes.value,
            approximation=[d.approximation.mean for d in ds], estimation=[d.estimation.mean for d in ds],
            risk=[d.risk.mean for d in ds], low=[np.nan if d.risk.low is None else d.risk.low for d in ds],
            high=[np.nan if d.risk.high is None else d.risk.high for d in ds]))
    if panels:
        s.blocks.append(Figure("decomposition", "stacked Bayes risk, approximation and estimation error per model",
                               save(figs.decomposition_bars(panels), "decomposition"),
                               "Bars: means over seeds, stacked; a component below zero is drawn as zero (see the "
                               "table). Dots: R(h) with its 95% interval over seeds."))
    return [s, *[x for x in (_curves_section(data, rows, save), _regions_section(data, rows, save)) if x is not None]]


def _curves_section(data: StudyData, rows: list[DecompositionRow], save: Save) -> Section | None:
    """Risk and estimation error against n, for the served settings that share a reference (a learning curve)."""
    on_test = bool(data.spec["decomposition"].get("on_test"))
    groups: dict[str, tuple[float, list[figs.Curve]]] = {}
    for reference in dict.fromkeys(r.reference for r in rows):
        part = [r for r in rows if r.reference == reference and r.train_size]
        sizes = sorted({r.train_size for r in part if r.train_size})
        if len(sizes) < 2 or part[0].bayes is None:
            continue
        bayes = part[0].bayes.value
        ref_size = _train_size(data, reference)
        curves = []
        for label in dict.fromkeys(r.label for r in part):
            mine = sorted((r for r in part if r.label == label), key=lambda r: r.train_size or 0)
            n = [r.train_size or 0 for r in mine]
            risk = [list(r.risk.values()) for r in mine]
            est = [[r.risk[s] - r.risk_class[s] for s in r.seeds] for r in mine]
            if not on_test and ref_size and mine[0].risk_class and ref_size > n[-1]:
                n.append(ref_size)  # the reference is a point of the same curve: same distribution and test sample
                risk.append(list(mine[0].risk_class.values()))
                est.append([])
            curves.append(figs.Curve(label, n, risk, est))
        dataset = data.spec.get("settings_info", {}).get(reference, {}).get("name", "")
        groups[f"{dataset} (reference {reference})" if dataset else reference] = (bayes, curves)
    if not groups:
        return None
    s = Section("decomposition-curves", "Risk against training-set size", level=3)
    s.blocks.append(Figure("decomposition_curves", "test risk and estimation error against training-set size",
                           save(figs.risk_curves(groups), "decomposition_curves"),
                           "Log-log. Lines: mean over seeds; bands: range over seeds; dashed: R*. "
                           + ("" if on_test else "The largest n of the risk panel is the reference setting. ")
                           + "Estimation errors at or below zero cannot be drawn on a log axis and are left out."))
    return s


def _regions_section(data: StudyData, rows: list[DecompositionRow], save: Save) -> Section | None:
    """Decision regions of every model (first complete seed) with the Bayes boundary, per served setting."""
    s = Section("decision-regions", "Decision regions", level=3)
    by_setting = {d.setting: d for d in data.settings}
    for i, setting in enumerate(dict.fromkeys(r.setting for r in rows)):
        d = by_setting[setting]
        panels, bayes, extent = [], None, None
        for label in data.labels:
            run = next((r for r in d.of(label) if r.complete and r.grid is not None), None)
            if run is None:
                continue
            grid = run.record.summary["grid"]
            n = int(grid["cells"])
            if extent is None:
                extent, bayes = grid["extent"], run.grid.y.reshape(n, n)  # type: ignore[union-attr]
            risk = _risk(run)
            panels.append(figs.Regions(f"{label}, seed {run.seed}" + (f": R(h) = {fmt.pct(risk)}%" if risk else ""),
                                       run.grid.pred.reshape(n, n)))  # type: ignore[union-attr]
        if not panels or bayes is None or extent is None:
            continue
        b = next((r.bayes for r in rows if r.setting == setting and r.bayes), None)
        title = f"{setting}: " if setting else ""
        title += "predicted class of each model" + (f"; Bayes risk R* = {fmt.pct(b.value)}%" if b else "")
        fig = figs.decision_regions(panels, bayes, extent, d.classes, title=title)
        s.blocks.append(Figure(f"decision_regions_{i:02d}", f"decision regions in {setting or 'the data'}",
                               save(fig, f"decision_regions_{i:02d}")))
    if not s.blocks:
        return None
    s.blocks.append(para(
        "Colours: the class each model predicts (its first complete seed) on a 100 × 100 grid around the test sample; "
        "black lines: the boundary of the Bayes classifier, the best possible rule. Where a colour crosses a black "
        "line the model decides differently from the Bayes rule.", muted=True))
    return s
