"""Build a study's report from the store alone: HTML (self-contained), PNG figures, CSV and Markdown tables."""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matplotlib.figure import Figure

from lineup.analysis.metrics import accuracy_half_width, confusion_matrix, per_class_accuracy
from lineup.analysis.tables import ModelRow, aggregate
from lineup.report import figures
from lineup.store import Store

_METRICS = ("train_acc", "val_acc", "test_acc", "test_loss", "refit_test_acc", "epochs_trained", "best_epoch")


@dataclass
class Figures:
    """Writes each figure as a PNG file and keeps it as a data URI for the self-contained HTML."""

    folder: Path

    def save(self, fig: Figure, name: str) -> str:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        data = buf.getvalue()
        (self.folder / f"{name}.png").write_bytes(data)
        return "data:image/png;base64," + base64.b64encode(data).decode()


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def _table(rows: list[ModelRow], baseline: str, refit: bool) -> tuple[list[str], list[list[str]]]:
    base = next((r for r in rows if r.label == baseline), None)
    base_acc = base.metrics.get("test_acc", (None, None))[0] if base else None
    header = ["model", "params", "MFLOPs", "seeds", "train acc %", "val acc %", "test acc %", "± std",
              f"Δ vs {baseline}", "resolved from best", "epochs", "diverged", "failed"]
    if refit:
        header.insert(8, "refit test acc %")
    out = []
    for r in rows:
        m = r.metrics
        test = m.get("test_acc")
        delta = "" if test is None or base_acc is None or r.label == baseline else f"{100 * (test[0] - base_acc):+.2f}"
        resolved = {None: "best" if test else "", True: "yes", False: "no"}[r.resolved_vs_best]
        row = [r.label, f"{r.params:,}" if r.params else "", f"{r.flops / 1e6:.2f}" if r.flops else "", str(r.seeds),
               _pct(m.get("train_acc", (None,))[0]), _pct(m.get("val_acc", (None,))[0]),
               _pct(test[0] if test else None), _pct(test[1] if test else None), delta, resolved,
               f"{m['epochs_trained'][0]:.1f}" if "epochs_trained" in m else "", str(r.diverged), str(r.failed)]
        if refit:
            row.insert(8, _pct(m.get("refit_test_acc", (None,))[0]))
        out.append(row)
    return header, out


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def build_report(store: Store, study: str, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` with its figures and tables for ``study`` and return its path.

    Args:
        store: the results store (read only).
        study: the study's name.
        out_dir: folder of the report (default: ``<store>/reports/<study>``).
    """
    spec = store.study_spec(study)
    records = store.runs(study)
    out = Path(out_dir) if out_dir else store.root / "reports" / study
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    figs = Figures(out / "figures")
    info: dict[str, Any] = spec.get("data_info", {})
    classes: list[str] = info.get("classes", [])
    baseline = spec["study"].get("baseline") or spec["models"][0]["name"]
    refit = bool(spec.get("protocol", {}).get("refit"))
    labels = list(dict.fromkeys(r.label for r in records))
    descriptions = {m["name"]: m.get("description", "") for m in spec["models"]}

    run_dicts = [{"label": r.label, "model": r.model, "status": r.status, "summary": r.summary} for r in records]
    test_size = info.get("sizes", {}).get("test")
    rows = aggregate(run_dicts, metrics=_METRICS, test_size=test_size)
    header, table = _table(rows, baseline, refit)
    _write_csv(out / "tables" / "accuracy.csv", header, table)
    (out / "tables" / "accuracy.md").write_text(_markdown(header, table), encoding="utf-8")

    curves: dict[str, dict[str, list[list[float]]]] = {label: {} for label in labels}
    steps: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    cms: dict[str, np.ndarray] = {}
    per_cls: dict[str, list[np.ndarray]] = {}
    for r in records:
        if r.status not in ("complete", "diverged"):
            continue
        epochs = store.epochs(r.hash)
        for metric in ("train_loss", "val_loss", "train_acc", "val_acc"):
            curves[r.label].setdefault(metric, []).append([e.get(metric, np.nan) for e in epochs])
        steps[r.label].append(store.step_losses(r.hash))
        pred = store.predictions(r.hash, "test")
        if pred is not None and classes:
            k = len(classes)
            cm = confusion_matrix(pred.y, pred.pred, num_classes=k)
            cms[r.label] = cms.get(r.label, np.zeros((k, k), dtype=np.int64)) + cm
            per_cls.setdefault(r.label, []).append(per_class_accuracy(pred.y, pred.pred, num_classes=k))

    page_figs: dict[str, str] = {}
    if any(curves[label] for label in labels):
        page_figs["curves"] = figs.save(figures.learning_curves(curves, baseline=baseline), "learning_curves")
        page_figs["steps"] = figs.save(figures.step_losses(steps), "step_losses")
    models_with_pc = [label for label in labels if label in per_cls]
    per_class_rows: list[list[str]] = []
    if models_with_pc:
        pc = np.array([np.nanmean(per_cls[label], axis=0) for label in models_with_pc])
        page_figs["per_class"] = figs.save(figures.per_class(pc, models_with_pc, classes), "per_class")
        per_class_rows = [[label, *(_pct(v) for v in row)] for label, row in zip(models_with_pc, pc, strict=True)]
        _write_csv(out / "tables" / "per_class.csv", ["model", *classes], per_class_rows)
        (out / "tables" / "per_class.md").write_text(_markdown(["model", *classes], per_class_rows), encoding="utf-8")

    sections = []
    for i, label in enumerate(labels):
        section: dict[str, Any] = {"label": label, "description": descriptions.get(label, ""), "runs": [],
                                   "confusion": None, "failures": None}
        mine = [r for r in records if r.label == label]
        for r in mine:
            section["runs"].append({"hash": r.hash[:12], "seed": r.seed, "status": r.status,
                                    "test_acc": _pct(r.summary.get("test_acc")),
                                    "epochs": r.summary.get("epochs_trained", ""),
                                    "stop": r.summary.get("stop_reason", "") if r.status != "failed" else "",
                                    "error": (r.error or "").splitlines()[0] if r.error else "",
                                    "wall": f"{r.wall_time:.1f}" if r.wall_time else ""})
        if label in cms:
            n_seeds = len(per_cls[label])
            section["confusion"] = figs.save(
                figures.confusion(cms[label], classes, title=f"{label}: test predictions of {n_seeds} seed(s), "
                                  "row-normalised"), f"confusion_{i:02d}")
        first = next((r for r in mine if r.status == "complete"), None)
        fails = store.failures(first.hash) if first else []
        if fails:
            caps = [f"{classes[f.y]} → {classes[f.pred]}\n{100 * f.confidence:.0f}% (#{f.index})" for f in fails]
            section["failures"] = figs.save(
                figures.failure_gallery([f.image for f in fails], caps,
                                        title=f"{label}, seed {first.seed}: most confident test mistakes "
                                        "(true → predicted, confidence, test index)"), f"failures_{i:02d}")
        sections.append(section)

    best = max((r for r in rows if "test_acc" in r.metrics), key=lambda r: r.metrics["test_acc"][0], default=None)
    resolution = None
    if best is not None and test_size:
        hw = accuracy_half_width(best.metrics["test_acc"][0], test_size)
        unresolved = [r.label for r in rows if r.resolved_vs_best is False]
        resolution = {"n": test_size, "half_width": f"{100 * hw:.2f}", "best": best.label,
                      "best_acc": _pct(best.metrics["test_acc"][0]), "unresolved": unresolved}
    env = jinja2.Environment(loader=jinja2.PackageLoader("lineup", "report/templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined)
    page = env.get_template("report.html.j2").render(
        spec=spec, info=info, header=header, table=table, figs=page_figs, sections=sections,
        per_class_header=["model", *classes], per_class_rows=per_class_rows, resolution=resolution,
        baseline=baseline, refit=refit, generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        statuses={s: sum(r.status == s for r in records) for s in ("complete", "diverged", "failed", "pending",
                                                                    "running")})
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    (out / "report.md").write_text(_markdown_report(spec, info, header, table, resolution), encoding="utf-8")
    return path


def _markdown_report(spec: dict[str, Any], info: dict[str, Any], header: list[str], table: list[list[str]],
                     resolution: dict[str, Any] | None) -> str:
    s = spec["study"]
    lines = [f"# {s.get('title') or s['name']}", "", s.get("description", ""), ""]
    lines += [f"- {html.unescape(n)}" for n in info.get("notes", [])]
    lines += ["", "## Accuracy", "", _markdown(header, table)]
    if resolution:
        lines.append(f"With {resolution['n']:,} test examples, a test accuracy is known to about "
                     f"±{resolution['half_width']} points (95%); differences below that are not resolved.")
    lines.append("\nFigures: figures/*.png; tables: tables/*.csv.\n")
    return "\n".join(lines)
