"""Number formatting shared by the report's sections: one way to write a percentage, an interval, a p-value."""

from __future__ import annotations

from lineup.analysis.stats import ASO_THRESHOLD, MeanCI, PairedDiff

NO_CI = "1 seed: no CI"


def pct(v: float | None, digits: int = 2) -> str:
    """A share as percent without the sign: 0.9123 -> '91.23'."""
    return "" if v is None else f"{100 * v:.{digits}f}"


def num(v: float | None, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def ci(m: MeanCI | None, *, scale: float = 100.0, digits: int = 2, signed: bool = False) -> str:
    """'mean [low, high]' over seeds, or the mean and why there is no interval.

    >>> ci(MeanCI(0.9123, 0.9, 0.92, 3))
    '91.23 [90.00, 92.00]'
    >>> ci(MeanCI(0.9123, None, None, 1))
    '91.23 (1 seed: no CI)'
    >>> ci(MeanCI(-0.01, -0.02, 0.005, 3), signed=True)
    '-1.00 [-2.00, +0.50]'
    """
    if m is None:
        return ""
    sign = "+" if signed else ""
    mean = f"{scale * m.mean + 0.0:{sign}.{digits}f}"
    if m.low is None or m.high is None:
        return f"{mean} ({NO_CI})"
    return f"{mean} [{scale * m.low + 0.0:{sign}.{digits}f}, {scale * m.high + 0.0:{sign}.{digits}f}]"


def mean_only(m: MeanCI | None, *, scale: float = 1.0, digits: int = 1) -> str:
    return "" if m is None else f"{scale * m.mean:.{digits}f}"


def diff(d: PairedDiff | None, *, mark: bool = False) -> str:
    """A difference in percentage points with its interval: '+1.20 [0.40, 2.00]', '*' appended when marked."""
    if d is None:
        return ""
    # + 0.0 turns the -0.0 of a negated zero difference into 0.0, which prints as "+0.00"
    diff, low, high = (100 * v + 0.0 for v in (d.diff, d.low, d.high))
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]" + (" *" if mark else "")


def pvalue(p: float | None) -> str:
    """'0.031', '<0.001', '1' (exact 1 is common: no discordant example)."""
    if p is None:
        return ""
    if p >= 0.9995:
        return "1"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """A p-value in a sentence: 'p = 0.031', 'p < 0.001'."""
    text = pvalue(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def aso_eps(eps: float | None) -> str:
    return "n/a" if eps is None else f"{eps:.2f}"


def aso_verdict(eps: float | None) -> str:
    """How clear an ASO result is, in words."""
    if eps is None:
        return "not testable across seeds with fewer than 2 seeds each"
    if eps < ASO_THRESHOLD:
        return f"clear across seeds (ASO ε_min = {eps:.2f} < {ASO_THRESHOLD})"
    return f"not clear across seeds (ASO ε_min = {eps:.2f} ≥ {ASO_THRESHOLD})"
