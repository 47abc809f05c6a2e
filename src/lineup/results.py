"""Results as tables for notebooks and the command line: one row per run, or one row per model."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lineup.analysis.tables import aggregate
from lineup.store import Store

_SUMMARY_METRICS = ("train_acc", "val_acc", "test_acc", "test_loss", "refit_test_acc", "epochs_trained")


def runs_frame(store: Store, study: str) -> pd.DataFrame:
    """One row per run: label, seed, status, hash, wall time and every final metric of its summary; ``role`` says
    whether it is one of the study's runs as written (``run``), a search trial (``trial``, scored on validation only)
    or a tuned model's final run (``tuned``)."""
    rows: list[dict[str, Any]] = []
    for r in store.runs(study):
        flat = {k: v for k, v in r.summary.items() if isinstance(v, (int, float, str, bool)) or v is None}
        rows.append({"setting": r.setting, "label": r.label, "seed": r.seed, "model": r.model, "status": r.status,
                     "hash": r.hash, "wall_time": r.wall_time, "role": r.role, **flat})
    return pd.DataFrame(rows)


def summary_table(store: Store, study: str) -> pd.DataFrame:
    """One row per model entry: seeds, parameters and mean/std of the final metrics over complete seeds; a study
    that trains its models both as written and tuned has one row per model and protocol (search trials are left
    out: they are scored on validation only)."""
    records = [r for r in store.runs(study) if r.role != "trial"]
    spec = store.study_spec(study)
    settings = list(dict.fromkeys(r.setting for r in records))
    roles = list(dict.fromkeys(r.role for r in records))
    out = []
    for setting in settings:
        info = spec.get("settings_info", {}).get(setting) if setting else spec.get("data_info")
        test_size = (info or {}).get("sizes", {}).get("test")
        for role in roles:
            runs = [{"label": r.label, "model": r.model, "status": r.status, "summary": r.summary}
                    for r in records if r.setting == setting and r.role == role]
            rows = _summary_rows(runs, test_size, setting if len(settings) > 1 else None)
            if len(roles) > 1:
                rows = [{"protocol": "tuned" if role == "tuned" else "fixed", **row} for row in rows]
            out += rows
    return pd.DataFrame(out)


def _summary_rows(runs: list[dict[str, Any]], test_size: int | None, setting: str | None) -> list[dict[str, Any]]:
    out = []
    for row in aggregate(runs, metrics=_SUMMARY_METRICS, test_size=test_size):
        d: dict[str, Any] = {"setting": setting} if setting is not None else {}
        d |= {"model": row.label, "params": row.params, "seeds": row.seeds}
        for m in ("train_acc", "val_acc", "test_acc"):
            if m in row.metrics:
                d[f"{m} %"] = round(100 * row.metrics[m][0], 2)
        if "test_acc" in row.metrics:
            d["test std"] = round(100 * row.metrics["test_acc"][1], 2)
        if row.diverged or row.failed:
            d["diverged/failed"] = f"{row.diverged}/{row.failed}"
        out.append(d)
    return out
