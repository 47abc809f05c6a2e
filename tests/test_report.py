"""The report from a store written with known results: its statements, both formats, CSV exports, escaping.

The store is the real one, filled through ``Store.save_result`` with results whose differences are known in
advance (a clearly better model, a copy of the baseline, a one-seed model, a failed run), so every claim of the
report can be checked without training anything.
"""

from __future__ import annotations

import csv
import doctest
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lineup.cli import main
from lineup.report import _format, build_report, document
from lineup.report.collect import collect
from lineup.report.evidence import gather
from lineup.store import Failure, Store
from lineup.study import RunResult
from lineup.train import Evaluation, History

XSS = "<script>alert(1)</script>"
N_TEST, K, EPOCHS = 400, 3, 4


def _hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _result(acc: float, seed: int, base: np.ndarray, *, lr_speed: float) -> RunResult:
    """A complete run whose test predictions are right on a random ``acc`` share of fixed examples."""
    rng = np.random.default_rng(seed)
    index = np.arange(1000, 1000 + N_TEST)[::-1].copy()  # not sorted: the report must pair by index
    y = index % K
    right = rng.random(N_TEST) < acc
    pred = np.where(right, y, (y + 1) % K)
    probs = np.full((N_TEST, K), 0.1, dtype=np.float32)
    probs[np.arange(N_TEST), pred] = 0.8
    epochs = []
    for e in range(1, EPOCHS + 1):
        level = acc * (1 - np.exp(-lr_speed * e))
        epochs.append({"epoch": e, "step": 10 * e, "train_loss": 1.0 / (e * lr_speed), "train_acc": level + 0.02,
                       "val_loss": 1.1 / (e * lr_speed), "val_acc": level, "grad_norm": 2.0 / e, "lr": 1e-3,
                       "time_s": 0.5})
    feats = base @ rng.normal(size=(base.shape[1], 4)) + 0.1 * rng.normal(size=(base.shape[0], 4))
    fail = Failure(index=1000, y=0, pred=1, confidence=0.8, image=np.zeros((1, 8, 8), dtype=np.uint8))
    return RunResult(
        status="complete",
        summary={"train_acc": acc + 0.03, "val_acc": acc, "test_acc": float(right.mean()), "test_loss": 1 - acc,
                 "epochs_trained": EPOCHS, "best_epoch": EPOCHS, "stop_reason": "max epochs", "params": 1234,
                 "flops": 56_000},
        histories={"train": History(epochs=epochs, step_loss=list(np.linspace(1, 0.1, 10 * EPOCHS)))},
        evaluations={"test": Evaluation(loss=1 - acc, acc=float(right.mean()), probs=probs, y=y,
                                        index=index)},
        failures=[fail], embeddings={"test": (np.arange(1000, 1100), feats)}, wall_time=2.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Study "known": base (0.70), strong (0.95), XSS (= base), single (one seed), broken (failed)."""
    root = tmp_path_factory.mktemp("results")
    base = np.random.default_rng(99).normal(size=(100, 6))
    plan = [("base", 0.70, [0, 1, 2]), ("strong", 0.95, [0, 1, 2]), (XSS, 0.70, [0, 1, 2]),
            ("single", 0.72, [0]), ("broken", 0.5, [0])]
    spec = {"study": {"name": "known", "title": "Known <i>results</i>", "baseline": "base"},
            "data": {"dataset": "synthetic"},
            "models": [{"name": label, "description": f"about {label}"} for label, _, _ in plan],
            "data_info": {"name": "synthetic", "classes": ["a", "b", "c"], "input_shape": [1, 8, 8],
                          "notes": ["note <b>one</b>"], "sizes": {"train": 800, "val": 200, "test": N_TEST}}}
    runs = [(_hash(label, s), label, s, "mlp", {"seed": s}, "") for label, _, seeds in plan for s in seeds]
    s = Store(root)
    s.register_study("known", spec, None, runs)
    for label, acc, seeds in plan:
        for seed in seeds:
            h = _hash(label, seed)
            if label == "broken":
                s.mark_failed(h, "RuntimeError: out of memory\ntraceback ...")
            else:
                # XSS repeats base's draws exactly: identical predictions, the McNemar p-value must be 1
                draw = seed if label in ("base", XSS) else 100 + seed + (50 if label == "strong" else 0)
                s.save_result(h, _result(acc, draw, base, lr_speed=2.0 if label == "strong" else 0.7))
    yield s
    s.close()


class _Page(HTMLParser):
    """Ids, headings, table cells and image sources of a page, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.headings: list[str] = []
        self.imgs: list[str] = []
        self.scripts = 0
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._heading = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag in ("h2", "h3"):
            self._heading = True
            self.headings.append("")
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
        if tag == "tr" and self._table:
            self.tables[self._table].append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3"):
            self._heading = False
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._heading:
            self.headings[-1] += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def page(store: Store, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, _Page]:
    path = build_report(store, "known", tmp_path_factory.mktemp("report"))
    parsed = _Page()
    parsed.feed(path.read_text(encoding="utf-8"))
    return path, parsed


@pytest.fixture(scope="module")
def markdown(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(store, "known", tmp_path_factory.mktemp("report-md"), format="md")


def _rows(p: _Page, table: str) -> dict[str, list[str]]:
    header, *rows = p.tables[f"table-{table}"]
    return {r[header.index("model")] if "model" in header else r[0]: r for r in rows}


def test_sections_figures_and_self_containment(page: tuple[Path, _Page]) -> None:
    path, p = page
    for section in ("summary", "data", "accuracy", "dynamics", "curves", "gap", "gradients", "per-class",
                    "confusion", "failures", "representations", "models"):
        assert section in p.ids, section
    for fig in ("learning_curves", "step_losses", "generalization_gap", "gradients_and_time", "per_class", "cka"):
        assert f"figure-{fig}" in p.ids and (path.parent / "figures" / f"{fig}.png").stat().st_size > 1000
    assert all(src.startswith("data:image/png;base64,") for src in p.imgs) and len(p.imgs) >= 12
    html = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html) and "<link" not in html
    assert p.scripts == 1  # the sortable-table script, and nothing a model name could add


def test_names_are_text_in_html_and_markdown(page: tuple[Path, _Page], markdown: Path) -> None:
    path, p = page
    html = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "Known &lt;i&gt;results&lt;/i&gt;" in html and "note &lt;b&gt;one&lt;/b&gt;" in html
    assert XSS in _rows(p, "accuracy")  # the parsed page shows the name itself as text
    md = markdown.read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_ranking_and_significance(page: tuple[Path, _Page]) -> None:
    _, p = page
    ranking = p.tables["table-ranking"]
    header, rows = ranking[0], ranking[1:]
    assert [r[1] for r in rows][:1] == ["strong"]
    by_model = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    assert by_model["strong"]["verdict"] == "most accurate"
    assert by_model["base"]["verdict"] == "less accurate than the first"
    assert by_model["base"]["Δ to first, points [95% CI]"].endswith("*")
    # base and its exact copy: no discordant example, so McNemar p is exactly 1 and nothing is significant
    pairwise = {frozenset((r[0], r[1])): r for r in p.tables["table-pairwise"][1:]}
    twin = pairwise[frozenset(("base", XSS))]
    assert twin[4:9] == ["0", "0", "1", "1", "no"]
    assert twin[3] == "+0.00 [+0.00, +0.00]"
    assert len(pairwise) == 6  # 4 models with complete runs; the failed one is left out


def test_accuracy_table_intervals(page: tuple[Path, _Page]) -> None:
    _, p = page
    rows = _rows(p, "accuracy")
    header = p.tables["table-accuracy"][0]
    col = header.index("test acc % [95% CI]")
    assert rows["single"][col].endswith("(1 seed: no CI)")
    found = re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", rows["strong"][col])
    assert found is not None
    mean, low, high = map(float, found.groups())
    assert low <= mean <= high and 90 < mean < 99
    assert rows["broken"][header.index("failed")] == "1" and rows["broken"][header.index("seeds")] == "0"
    assert rows[XSS][header.index("Δ vs base, points")] == "+0.00 [+0.00, +0.00]"
    assert rows["base"][0] == "base"


def test_summary_names_the_winners(page: tuple[Path, _Page], store: Store) -> None:
    ev = gather(collect(store, "known"))
    assert ev.winners["most accurate"].label == "strong"
    assert ev.winners["fastest to converge"].label == "strong"  # reaches 95% of its final accuracy at epoch 2
    assert ev.winners["lowest training risk"].label == "strong"
    assert ev.winners["most accurate"].clear  # three seeds at 0.95 against three at 0.70
    html = page[0].read_text(encoding="utf-8")
    assert "Most accurate:</b> <b>strong</b>" in html and "Fastest to converge:</b> <b>strong</b>" in html
    # strong's dynamics by hand: val_acc = 0.95 (1 - e^(-2e)); final (e=4) 0.95 * 0.99966; 95% of it is first
    # reached at e = 2 (1 - e^-4 = 0.982), 99% at e = 3 (1 - e^-6 = 0.9975)
    dyn = _rows(page[1], "dynamics")["strong"]
    assert dyn[2:5] == ["2.0", "2.0 [2.0, 2.0]", "3.0"]


def test_markdown_has_the_same_sections_and_existing_figures(page: tuple[Path, _Page], markdown: Path) -> None:
    md = markdown.read_text(encoding="utf-8")
    titles = re.findall(r"^#{2,3} (.+)$", md, flags=re.M)
    assert titles[0] == "About this report" and titles[1:] == page[1].headings
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert len(links) >= 12 and all((markdown.parent / link).is_file() for link in links)
    assert "| rank | model |" in md
    assert not (markdown.parent / "report.html").exists()


def test_csv_exports(store: Store, page: tuple[Path, _Page]) -> None:
    tables = page[0].parent / "tables"
    with (tables / "epochs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 * EPOCHS  # 10 runs with histories (the failed one has none)
    strong0 = [r for r in rows if r["label"] == "strong" and r["seed"] == "0"]
    stored = store.epochs(_hash("strong", 0))
    assert [float(r["val_acc"]) for r in strong0] == pytest.approx([e["val_acc"] for e in stored])
    assert [r["epoch"] for r in strong0] == ["1", "2", "3", "4"] and strong0[0]["run"] == _hash("strong", 0)
    assert {"run", "label", "seed", "phase", "epoch", "train_loss", "grad_norm", "time_s"} <= set(rows[0])
    for name in ("accuracy", "ranking", "pairwise", "dynamics", "per_class", "cka", "runs"):
        assert (tables / f"{name}.csv").exists() and (tables / f"{name}.md").exists()


def _empty_study(root: Path) -> Store:
    s = Store(root)
    spec = {"study": {"name": "empty"}, "data": {"dataset": "synthetic"}, "models": [{"name": "m"}]}
    s.register_study("empty", spec, None, [(_hash("m", 0), "m", 0, "mlp", {}, "")])
    return s


def test_cli_writes_markdown(tmp_path: Path) -> None:
    _empty_study(tmp_path / "results").close()
    args = ["report", "empty", "--store", str(tmp_path / "results"), "--out", str(tmp_path / "out")]
    out = CliRunner().invoke(main, [*args, "--format", "md"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"report: {tmp_path / 'out' / 'report.md'}"
    assert (tmp_path / "out" / "report.md").exists() and not (tmp_path / "out" / "report.html").exists()
    bad = CliRunner().invoke(main, [*args, "--format", "pdf"])
    assert bad.exit_code != 0 and "pdf" in bad.output


def test_a_study_without_complete_runs_still_builds(tmp_path: Path) -> None:
    with _empty_study(tmp_path / "results") as s:
        html = build_report(s, "empty").read_text(encoding="utf-8")
        assert "No complete run yet" in html
        md = build_report(s, "empty", format="md").read_text(encoding="utf-8")
        assert "No complete run yet" in md


def test_docstring_examples() -> None:
    for module in (_format, document):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_the_shared_mistakes_are_those_several_models_miss_in_the_stored_predictions(
    store: Store, page: tuple[Path, _Page],
) -> None:
    """Counted here from each run's stored test predictions: an example is listed when two or more models miss it
    in more than half of their runs, and the table says how many runs of each model missed it."""
    labels = ["base", "strong", XSS, "single"]  # the models with complete runs, in file order
    wrong: dict[str, dict[int, int]] = {}
    runs: dict[str, int] = {}
    for rec in store.runs("known"):
        p = store.predictions(rec.hash)
        if p is None:
            continue
        runs[rec.label] = runs.get(rec.label, 0) + 1
        for i in p.index[p.pred != p.y]:
            wrong.setdefault(rec.label, {})[int(i)] = wrong.get(rec.label, {}).get(int(i), 0) + 1
    listed = {i for i in range(1000, 1000 + N_TEST)
              if sum(wrong[m].get(i, 0) > runs[m] / 2 for m in labels) >= 2}
    header, *rows = page[1].tables["table-shared_mistakes"]
    assert header[:3] == ["test index", "true class", "predicted (most often)"]
    assert header[3:] == [f"{m}: runs wrong" for m in labels] + ["runs wrong"]
    assert len(listed) > 20 and len(rows) == 20  # the most missed 20 of them
    assert {int(r[0]) for r in rows} <= listed
    for r in rows:
        i = int(r[0])
        assert r[3:-1] == [f"{wrong[m].get(i, 0)} / {runs[m]}" for m in labels]
        assert r[1] == "abc"[i % K] and r[2] == "abc"[(i + 1) % K]  # the stored runs predict y + 1 when wrong
    totals = [int(r[-1].split(" / ")[0]) for r in rows]
    assert totals == sorted(totals, reverse=True)
    assert min(totals) >= max(sum(wrong[m].get(i, 0) for m in labels) for i in listed - {int(r[0]) for r in rows})
