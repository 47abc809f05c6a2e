"""How far each VAE's density is from the true one, for studies on data whose distribution is known.

Each run of a VAE with a Gaussian decoder on such data stores, in its summary, an estimate of
``KL(p_true || p_model)`` on test points for several numbers ``k`` of importance samples
(``lineup.study.known.density_results``): upper bounds on the KL that tighten as ``k`` grows. Its history holds the
validation negative ELBO per epoch (``val_reconstruction + val_kl``), which with the stored mean ``log p_true`` of the
validation inputs is the ``k = 1`` bound per epoch: how the model's density approached the true one while it trained.
This module puts intervals over seeds on those numbers and draws the curve; it computes nothing from data.
"""

from __future__ import annotations

from collections.abc import Callable

from matplotlib.figure import Figure as MplFigure

from lineup.analysis.stats import mean_ci
from lineup.report import _format as fmt
from lineup.report.collect import RunData, StudyData
from lineup.report.document import Block, Figure, Table, code, para, strong
from lineup.report.figures import Panel, band_panels

Save = Callable[[MplFigure, str], str]


#: The baseline row: an exact density, so its KL is the same in every k column.
BASELINE = "baseline: isotropic Gaussian fitted to the training inputs (exact, any k)"


def density_runs(data: StudyData) -> dict[str, list[RunData]]:
    """The complete runs whose summaries hold a KL to the true density, by model label in file order, by seed."""
    return data.with_summary("density_kl")


def epoch_bounds(run: RunData) -> list[float]:
    """The ``k = 1`` bound on ``KL(p_true || p_model)`` after each epoch, in nats: the validation negative ELBO plus
    the mean ``log p_true`` of the validation inputs (both in the model's input coordinates, so the normalisation's
    Jacobian cancels). Empty when the run has no validation ELBO."""
    log_p = run.record.summary.get("density_val_log_p")
    if log_p is None:
        return []
    return [float(log_p) + e["val_reconstruction"] + e["val_kl"] for e in run.epochs
            if "val_reconstruction" in e and "val_kl" in e]


def density_table(settings: dict[str, dict[str, list[RunData]]]) -> Table:
    """Per data setting and model, the KL bound at every stored ``k``, mean over seeds with a 95% bootstrap
    interval; the setting column only when there are several."""
    every = [r for by_label in settings.values() for runs in by_label.values() for r in runs]
    ks = sorted({int(k) for r in every for k in r.record.summary["density_kl_by_k"]})
    several = len(settings) > 1
    header = [*(["setting"] if several else []), "model", "seeds", *(f"KL bound, k = {k:,} [95% CI]" for k in ks),
              "standard error within a run"]
    rows, classes = [], []
    for setting, by_label in settings.items():
        for label, runs in by_label.items():
            cells = []
            for k in ks:
                values = [r.record.summary["density_kl_by_k"][str(k)][0] for r in runs
                          if str(k) in r.record.summary["density_kl_by_k"]]
                cells.append(fmt.ci(mean_ci(values), scale=1.0, digits=4) if values else "")
            se = max(float(r.record.summary["density_kl_standard_error"]) for r in runs)
            rows.append([*([setting] if several else []), label, str(len(runs)), *cells, f"at most {se:.4f}"])
            classes.append("")
        fitted = [r for model_runs in by_label.values() for r in model_runs
                  if "density_kl_gaussian" in r.record.summary]
        if fitted:  # one per run, on the run's test points; the same training sample whatever the seed
            value = fmt.ci(mean_ci([r.record.summary["density_kl_gaussian"] for r in fitted]), scale=1.0, digits=4)
            se = max(float(r.record.summary["density_kl_gaussian_standard_error"]) for r in fitted)
            rows.append([*([setting] if several else []), BASELINE, str(len({r.seed for r in fitted})),
                         *([value] * len(ks)), f"at most {se:.4f}"])
            classes.append("baseline")
    return Table("density_kl", header, rows, classes)


def density_blocks(data: StudyData, save: Save) -> list[Block]:
    """The table of KL bounds and, where the histories allow, the per-epoch bound, over every data setting; nothing
    without such runs."""
    settings = {d.setting: runs for d in data.settings if (runs := density_runs(d))}
    if not settings:
        return []
    first = next(iter(next(iter(settings.values())).values()))[0].record.summary
    blocks: list[Block] = [
        para(strong("The model's density against the true one.")),
        para("For a VAE with a Gaussian decoder on data whose distribution is known, KL(p_true ‖ p_model) = "
             "E_p_true[log p_true(x) − log p_model(x)] is estimated on "
             f"{int(first['density_kl_points']):,} test points, with log p_model(x) replaced by the importance-"
             "weighted lower bound of Burda et al. (2015, arXiv:1509.00519) with k samples per point. Each figure "
             "is therefore an upper bound on the KL, tighter as k grows (k = 1 is the ELBO); a value near 0 means "
             "the model's density is close to the true one. Every k uses the same points; in nats, mean over seeds "
             "with a 95% bootstrap interval; the last column is the largest standard error of one run's estimate "
             f"at k = {int(first['density_kl_k']):,} (over the test points). The baseline is the isotropic Gaussian "
             "N(m, s² I) of maximum likelihood on the training inputs: the best a VAE with a one-scale Gaussian "
             "decoder can do once its posterior has collapsed, since its decoder then ignores z."
             + (" Every data setting is listed." if len(settings) > 1 else "")),
        density_table(settings),
    ]
    labels = list(dict.fromkeys(label for by_label in settings.values() for label in by_label))
    panels = []
    for setting, by_label in settings.items():
        series = {label: [c for c in (epoch_bounds(r) for r in runs) if c] for label, runs in by_label.items()}
        if any(series.values()):
            title = "KL(p_true ‖ p_model) bound, k = 1 (validation ELBO)"
            panels.append(Panel(f"{setting}: {title}" if len(settings) > 1 else title, series, ylabel="nats",
                                zero_line=True))
    failed = sum(1 for d in data.settings for r in d.runs if "density_error" in r.record.summary)
    if failed:
        blocks.append(para(f"{failed} run(s) have no KL estimate, their density bound not being finite; see ",
                           code("lineup show RUN"), ".", muted=True))
    if panels:
        fig = band_panels(panels, labels=labels, ncols=min(2, len(panels)))
        blocks.append(Figure("density_epochs", "the k = 1 bound on the KL to the true density per epoch",
                             save(fig, "density_epochs"),
                             caption="Mean log p_true of the validation inputs minus the validation ELBO after each "
                                     "epoch (one draw of z per input), mean over seeds with the range as a band: an "
                                     "upper bound on the KL that falls as the model's density approaches the true "
                                     "one."))
    return blocks
