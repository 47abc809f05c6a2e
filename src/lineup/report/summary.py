"""The report's first section: the ranking, the winner of each criterion, and how sure the evidence makes us."""

from __future__ import annotations

from lineup.analysis.stats import ASO_THRESHOLD, Winner, mean_ci
from lineup.report import _format as fmt
from lineup.report.collect import StudyData
from lineup.report.document import Bullets, Section, Span, Table, Text, para, strong
from lineup.report.evidence import Evidence


def summary_section(data: StudyData, ev: Evidence) -> Section:
    """Ranking table and per-criterion winners, each with its uncertainty in words."""
    s = Section("summary", "Summary")
    if not ev.ranking:
        s.blocks.append(para("No complete run yet: nothing to compare."))
        return s
    s.blocks.append(Bullets([b for b in (_accuracy(ev), *(_criterion(ev, name) for name in _OTHER)) if b]))
    s.blocks.append(ranking_table(ev))
    s.blocks.append(para(
        "Ranked by mean test accuracy over seeds (interval: 95% percentile bootstrap over seeds). Δ to the first: "
        "paired on the same test examples and matching seeds, with a 95% paired-bootstrap interval over test "
        "examples. p: exact McNemar test on the discordant examples, pooled over matching seeds, Holm-corrected "
        f"over all {len(ev.comparisons)} pairs of models. ASO ε_min: Almost Stochastic Order of the first over this "
        f"model across per-seed accuracies (below {ASO_THRESHOLD}: the first is better across seeds).", muted=True))
    if ev.half_width is not None and data.test_size:
        s.blocks.append(para(
            f"The test set has {data.test_size:,} examples, so one run's test accuracy is known to about "
            f"±{100 * ev.half_width:.2f} points (95%); smaller differences need the paired tests above to count.",
            muted=True))
    return s


def ranking_table(ev: Evidence) -> Table:
    rows, classes = [], []
    best = ev.ranking[0].label
    for r in ev.ranking:
        m = ev.models[r.label]
        c = r.vs_best
        if r.rank == 1:
            verdict = "most accurate"
        elif c is None:
            verdict = "not paired with the first (no common seed)"
        else:
            verdict = "tied with the first" if r.tied_with_best else "less accurate than the first"
        # ASO of "the first is better"; a pair ordered the other way (possible only when seeds are unmatched)
        # was tested in the other direction, which says nothing about this one.
        eps = c.aso_eps if c is not None and c.a == best else None
        rows.append([str(r.rank), r.label, str(m.complete), fmt.ci(m.stats.get("test_acc")),
                     fmt.diff(r.diff_to_best, mark=c is not None and c.significant),
                     fmt.pvalue(c.p_holm) if c else "", fmt.aso_eps(eps) if c else "", verdict])
        classes.append("" if r.tied_with_best else "worse")
    header = ["rank", "model", "seeds", "test acc % [95% CI]", "Δ to first, points [95% CI]", "p (Holm)",
              "ASO ε_min", "verdict"]
    return Table("ranking", header, rows, classes)


_OTHER = ("fastest to converge", "lowest training risk", "least overfitting", "most overfitting")

# criterion -> (what the number is, scale to print, decimals, unit)
_WHAT = {
    "fastest to converge": ("epochs to reach 95% of its final validation accuracy", 1.0, 1, ""),
    "lowest training risk": ("mean training loss over its epochs (trapezoid area / epochs)", 1.0, 3, ""),
    "least overfitting": ("training minus validation accuracy of the final weights", 100.0, 2, " points"),
    "most overfitting": ("training minus validation accuracy of the final weights", 100.0, 2, " points"),
}


def _accuracy(ev: Evidence) -> Text:
    first = ev.ranking[0]
    # The ranking's own numbers (accuracy of the stored predictions), so the sentence and the table agree.
    acc = mean_ci([float(c.mean()) for c in ev.models[first.label].correct.values()])
    parts: list[str | Span] = [strong("Most accurate:"), " ", strong(first.label),
                               f", test accuracy {fmt.ci(acc)}% over {acc.n} seed{'s' if acc.n != 1 else ''}. "]
    if len(ev.ranking) == 1:
        return para(*parts, "It is the only model with a complete run.")
    second = ev.ranking[1]
    c, gap = second.vs_best, second.diff_to_best  # gap: second minus first, on matching seeds
    parts += ["Next: ", strong(second.label), f", {fmt.pct(second.mean)}%. "]
    if c is not None and gap is not None:
        verdict = "significant" if c.significant else "not significant"
        lead, low, high = (-100 * v + 0.0 for v in (gap.diff, gap.high, gap.low))  # + 0.0: no "-0.00"
        parts.append(f"On the same test examples the first leads by {lead:.2f} points "
                     f"[{low:.2f}, {high:.2f}]; McNemar {fmt.p_is(c.p_holm)} after "
                     f"Holm's correction: {verdict}; {fmt.aso_verdict(c.aso_eps if c.a == first.label else None)}. ")
    tied = [r.label for r in ev.ranking[1:] if r.tied_with_best]
    if tied:
        parts += ["Not significantly less accurate than the first: ", strong(", ".join(tied)), "."]
    else:
        parts.append("Every other model is significantly less accurate.")
    return para(*parts)


def _criterion(ev: Evidence, name: str) -> Text | None:
    w: Winner | None = ev.winners.get(name)
    if w is None:
        return None
    what, scale, digits, unit = _WHAT[name]
    value = fmt.ci(w.value, scale=scale, digits=digits)
    if w.tied:
        names = ", ".join((w.label, *w.tied))
        return para(strong(f"{name.capitalize()}:"), " no single model; ", strong(names),
                    f" tie on {what}: {fmt.mean_only(w.value, scale=scale, digits=digits)}{unit}.")
    parts: list[str | Span] = [strong(f"{name.capitalize()}:"), " ", strong(w.label), f", {what}: {value}{unit}. "]
    if w.runner_up is None:
        parts.append("The only model with this measurement.")
    else:
        other = fmt.mean_only(w.runner_up_value, scale=scale, digits=digits)
        parts += ["Runner-up: ", strong(w.runner_up), f", {other}{unit}; the lead is {fmt.aso_verdict(w.aso_eps)}."]
    return para(*parts)
