"""Build a study's report from the store alone: one self-contained HTML file (or Markdown beside PNG figures),
with every table as CSV and Markdown and every run's per-epoch metrics as CSV.

Pipeline: ``collect`` (read the store) → ``evidence.gather`` (analysis) → sections (format) → render.
"""

from __future__ import annotations

import base64
import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
from matplotlib.figure import Figure

from lineup.report import sections as sec
from lineup.report.collect import StudyData, collect
from lineup.report.decomposition import decomposition_section
from lineup.report.document import Block, Section, Table, markdown_table, para, to_markdown
from lineup.report.evidence import gather
from lineup.report.generative import generative_section
from lineup.report.latent import latent_section
from lineup.report.probes import probes_section
from lineup.report.search import search_sections
from lineup.report.summary import summary_section
from lineup.store import STATUSES, Store

#: Output formats: a self-contained HTML page, or Markdown that links the PNG files of ``figures/``.
FORMATS = ("html", "md")


@dataclass
class FigureWriter:
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


def build_report(store: Store, study: str, out_dir: str | Path | None = None, *, format: str = "html") -> Path:
    """Write the report of ``study`` with its figures and tables and return the report's path.

    Args:
        store: the results store (read only).
        study: the study's name.
        out_dir: folder of the report (default: ``<store>/reports/<study>``).
        format: ``"html"`` writes ``report.html`` (figures embedded, opens offline); ``"md"`` writes
            ``report.md`` with the same content, linking ``figures/*.png``. Both write ``figures/`` and ``tables/``.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r}; expected one of {', '.join(FORMATS)}")
    data = collect(store, study)
    out = Path(out_dir) if out_dir else store.root / "reports" / study
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    save = FigureWriter(out / "figures").save

    ev = gather(data)
    parts: list[Section | list[Section] | None] = [
        summary_section(data, ev), search_sections(data, ev, save), sec.data_section(data),
        sec.accuracy_section(data, ev),
        decomposition_section(data, save), sec.dynamics_section(data, ev, save), sec.per_class_section(data, ev, save),
        sec.confusion_section(data, ev, save), sec.failures_section(data, ev, save),
        sec.representations_section(ev, save), probes_section(data, save), latent_section(data, save),
        generative_section(data, save),
        sec.settings_section(data, ev, save),
        sec.runs_section(data)]
    sections = [s for p in parts if p is not None for s in (p if isinstance(p, list) else [p])]

    for table in (b for s in sections for b in s.blocks if isinstance(b, Table)):
        write_csv(out / "tables" / f"{table.name}.csv", table.header, table.rows)
        (out / "tables" / f"{table.name}.md").write_text(markdown_table(table.header, table.rows), encoding="utf-8")
    write_csv(out / "tables" / "epochs.csv", *epochs_table(data))

    title = data.spec["study"].get("title") or data.name
    intro = _intro(data)
    if format == "md":
        path = out / "report.md"
        path.write_text(to_markdown(title, [Section("about", "About this report", intro), *sections]),
                        encoding="utf-8")
        return path
    env = jinja2.Environment(loader=jinja2.PackageLoader("lineup", "report/templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined)
    page = env.get_template("report.html.j2").render(title=title, intro=intro, sections=sections)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _intro(data: StudyData) -> list[Block]:
    runs = data.all_runs
    counts = {s: sum(r.record.status == s for r in runs) for s in STATUSES}
    done = f"{counts['complete']} complete, {counts['diverged']} diverged, {counts['failed']} failed"
    rest = len(runs) - counts["complete"] - counts["diverged"] - counts["failed"]
    blocks: list[Block] = [para(f"study {data.name} · generated {time.strftime('%Y-%m-%d %H:%M:%S')} · {done}"
                                + (f", {rest} not finished" if rest else ""), muted=True)]
    if data.spec["study"].get("description"):
        blocks.append(para(data.spec["study"]["description"]))
    return blocks


def epochs_table(data: StudyData) -> tuple[list[str], list[list[str]]]:
    """Every finished run's per-epoch metrics, one row per (run, phase, epoch); columns are the union of metrics."""
    first = ["epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "grad_norm", "lr", "time_s"]
    rows_in = [(r, phase, e) for r in data.all_runs
               for phase, eps in (("train", r.epochs), ("refit", r.refit_epochs)) for e in eps]
    seen = dict.fromkeys(k for _, _, e in rows_in for k in e)
    metrics = [k for k in first if k in seen] + sorted(k for k in seen if k not in first)
    settings = bool(data.others) or bool(data.setting)
    header = ["run", *(["setting"] if settings else []), "label", "seed", "phase", *metrics]
    rows = [[r.record.hash, *([r.record.setting] if settings else []), r.label, str(r.seed), phase,
             *(_csv_value(e.get(k)) for k in metrics)] for r, phase, e in rows_in]
    return header, rows


def _csv_value(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
