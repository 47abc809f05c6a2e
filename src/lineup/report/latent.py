"""The report's "Latent spaces" section, for studies with autoencoders or VAEs (``lineup.study.latent``).

Everything comes from the store through ``collect``: each run's summary holds the read-outs of its latent codes
and of the two baselines on the same data (raw pixels, a PCA as wide as the code), measured where the run executed;
a VAE's summary also holds its KL per latent dimension; the run's folder holds its image mosaics. This module
only puts intervals over seeds on those numbers and formats them.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure as MplFigure

from lineup.analysis.stats import mean_ci
from lineup.report import _format as fmt
from lineup.report import figures_latent as figs
from lineup.report.collect import RunData, StudyData
from lineup.report.density import density_blocks
from lineup.report.document import Block, Bullets, Figure, Section, Table, code, para, strong
from lineup.report.figures import Panel, band_panels
from lineup.report.sections import pool_test_splits

Save = Callable[[MplFigure, str], str]

#: The read-outs of one representation: summary key suffix, column title, and whether it is a share (shown in %).
METRICS = (("svm_acc", "linear SVM acc %", True),
           ("kmeans_acc", "k-means acc %", True), ("kmeans_nmi", "k-means NMI", False),
           ("kmeans_ari", "k-means ARI", False),
           ("gmm_acc", "GMM acc %", True), ("gmm_nmi", "GMM NMI", False), ("gmm_ari", "GMM ARI", False))

#: Read-outs compared between the code and the PCA of equal width, in the sentence under each table.
COMPARED = (("svm_acc", "linear SVM"), ("kmeans_acc", "k-means"), ("gmm_acc", "GMM"))


def latent_runs(data: StudyData) -> dict[str, list[RunData]]:
    """The complete runs whose summaries hold latent read-outs, by model label in file order, by seed."""
    return data.with_summary("latent_svm_acc")


def _values(runs: list[RunData], key: str) -> list[float]:
    return [float(r.record.summary[key]) for r in runs if r.record.summary.get(key) is not None]


def _cell(values: list[float], share: bool) -> str:
    if not values:
        return ""
    return fmt.ci(mean_ci(values), scale=100.0 if share else 1.0, digits=2 if share else 3)


def latent_table(runs: list[RunData], index: int) -> Table:
    """One model: its code's read-outs beside those of the PCA of equal width and of the pixels."""
    s = runs[0].record.summary
    names = {"latent": f"latent code ({s['latent_dim']}-d)", "pca": f"PCA-{s['pca_dim']} of the pixels",
             "pixels": "raw pixels"}
    header = ["representation", "seeds", *(f"{title} [95% CI]" for _, title, _ in METRICS)]
    rows = [[name, str(len(runs)), *(_cell(_values(runs, f"{rep}_{key}"), share) for key, _, share in METRICS)]
            for rep, name in names.items()]
    return Table(f"latent_{index:02d}", header, rows, ["baseline" if rep != "latent" else "" for rep in names])


def _versus_pca(runs: list[RunData], test_size: int | None) -> Block:
    """Code minus PCA of equal width, paired by seed, for each accuracy."""
    parts: list[str] = []
    for key, name in COMPARED:
        diffs = [r.record.summary[f"latent_{key}"] - r.record.summary[f"pca_{key}"] for r in runs]
        parts.append(f"{name} {fmt.ci(mean_ci(diffs), signed=True)}")
    one = f" One test error is {100 / test_size:.2f} points." if test_size else ""
    return para("Code minus PCA of equal width, percentage points, paired by seed [95% interval]: "
                + "; ".join(parts) + "." + one, muted=True)


def _on_validation(runs: list[RunData]) -> Block | None:
    """The code's and the PCA's read-outs scored on the validation split: what to choose between models by."""
    with_val = [r for r in runs if "val_latent_svm_acc" in r.record.summary]
    if not with_val:
        return None
    s = with_val[0].record.summary
    parts = []
    for rep, name in (("latent", "code"), ("pca", f"PCA-{s['pca_dim']}")):
        cells = [f"{title} {_cell(_values(with_val, f'val_{rep}_{key}'), True)}"
                 for key, title in COMPARED]
        parts.append(f"{name}: " + ", ".join(cells))
    n = sorted({int(r.record.summary["latent_val_examples"]) for r in with_val})
    size = f"{n[0]:,}" if len(n) == 1 else f"{n[0]:,} to {n[-1]:,}"
    return para(f"On the validation split ({size} examples a run; the same estimators, fitted on the same training "
                "codes), accuracy % [95% interval]: " + "; ".join(parts) + ". These, not the test figures above, "
                "are what to choose between models or their settings by.", muted=True)


#: The read-outs of the table over data settings: representation, summary key suffix, column title.
BY_SETTING = (("latent", "kmeans_acc", "code k-means %"), ("pca", "kmeans_acc", "PCA k-means %"),
              ("latent", "svm_acc", "code SVM %"), ("pca", "svm_acc", "PCA SVM %"),
              ("val_latent", "kmeans_acc", "validation: code k-means %"),
              ("val_latent", "svm_acc", "validation: code SVM %"))


def settings_blocks(data: StudyData, per_setting: dict[str, dict[str, list[RunData]]]) -> list[Block]:
    """With several data settings: every model's read-outs in each (``per_setting``: setting -> ``latent_runs``; the
    tables above show the first only), pooled over the settings where they are draws of one test split."""
    if not data.others:
        return []
    labels = list(dict.fromkeys(label for runs in per_setting.values() for label in runs))
    header = ["model", "setting", *(title for _, _, title in BY_SETTING)]
    rows, classes = [], []
    pooled = data.test_split_draws
    # The read-outs are fitted on at most LATENT_TRAIN_EXAMPLES training codes: the n_train of the correction.
    fitted_on = {label: next(int(r.record.summary["latent_train_examples"]) for runs in per_setting.values()
                             for r in runs.get(label, [])) for label in labels}
    for label in labels:
        means: dict[str, list[float]] = {f"{rep}_{key}": [] for rep, key, _ in BY_SETTING}
        for name, by_label in per_setting.items():
            runs = by_label.get(label, [])
            if not runs:
                continue
            cells = []
            for rep, key, _ in BY_SETTING:
                values = _values(runs, f"{rep}_{key}")
                cells.append(_cell(values, True))
                if values:
                    means[f"{rep}_{key}"].append(float(np.mean(values)))
            rows.append([label, name, *cells])
            classes.append("")
        if pooled:
            cells = []
            for rep, key, _ in BY_SETTING:
                m = means[f"{rep}_{key}"]
                held_out = "val" if rep.startswith("val_") else "test"
                ci = pool_test_splits(data, m, held_out=held_out, n_train=fitted_on[label]) \
                    if len(m) == len(per_setting) else None
                cells.append(fmt.ci(ci) if ci is not None else "")
            rows.append([label, f"mean over the {len(per_setting)} splits", *cells])
            classes.append("pooled")
    blocks: list[Block] = [
        para(strong("Every data setting.")),
        Table("latent_settings", header, rows, classes),
        para("Per model and data setting, mean over seeds [95% bootstrap interval] of the code's read-outs beside "
             "those of the PCA as wide as it, on the test split, and of the code's on the validation split."
             + (" The settings differ only in which examples they hold out, so each model's last row pools them: "
                "the mean over splits of the seed means, with Nadeau and Bengio's corrected t-interval over splits "
                "(of zero width where every split gave the same figure)." if pooled else ""), muted=True)]
    below = []
    for label in labels:
        pairs = [(r.record.summary["latent_kmeans_acc"], r.record.summary["pca_kmeans_acc"])
                 for by_label in per_setting.values() for r in by_label.get(label, [])]
        below.append(f"{label} {sum(a < b for a, b in pairs)} of {len(pairs)}")
    blocks.append(para("Runs whose code clusters (k-means) less accurately than the PCA of equal width: "
                       + "; ".join(below) + "."))
    return blocks


def _chosen_on_validation(data: StudyData, per_setting: dict[str, dict[str, list[RunData]]]) -> Block | None:
    """Which model each read-out prefers on the validation split, by its errors over the runs of every data
    setting; models with as many errors in as many predictions tie."""
    runs_of: dict[str, list[RunData]] = {}
    for by_label in per_setting.values():
        for label, runs in by_label.items():
            runs_of.setdefault(label, []).extend(r for r in runs if "latent_val_examples" in r.record.summary)
    runs_of = {label: runs for label, runs in runs_of.items() if runs}
    if len(runs_of) < 2:
        return None
    parts = []
    for key, name in (("kmeans_acc", "k-means"), ("svm_acc", "the linear SVM")):
        errors, total = {}, {}
        for label, runs in runs_of.items():
            n = [int(r.record.summary["latent_val_examples"]) for r in runs]
            right = [round(r.record.summary[f"val_latent_{key}"] * k) for r, k in zip(runs, n, strict=True)]
            errors[label], total[label] = sum(n) - sum(right), sum(n)
        order = sorted(runs_of, key=lambda label: errors[label] / total[label])
        best = order[0]
        tied = [label for label in order if errors[label] * total[best] == errors[best] * total[label]]
        counts = ", ".join(f"{label} {errors[label]:,}" for label in order)
        sizes = sorted(set(total.values()))
        of = f"{sizes[0]:,}" if len(sizes) == 1 else "their " + " to ".join(f"{v:,}" for v in (sizes[0], sizes[-1]))
        parts.append(f"with {name}, {' and '.join(tied)} (errors in {of} validation predictions: {counts})")
    return para("Chosen on the validation split, over every run"
                + (" of every data setting" if data.others else "") + ": " + "; ".join(parts)
                + ". The test figures of a model chosen so were not selected on the test split; a gap of a few "
                  "validation errors is weak evidence of which model is better.")


def _collapse_notes(by_label: dict[str, list[RunData]]) -> list[Block]:
    items = []
    for label, runs in by_label.items():
        vae = [r for r in runs if "latent_kl_per_dim" in r.record.summary]
        if not vae:
            continue
        per_seed = []
        for r in vae:
            s = r.record.summary
            kl = ", ".join(f"{v:.2f}" for v in s["latent_kl_per_dim"])
            state = "collapsed: every dimension is at the prior" if s.get("posterior_collapsed") else \
                f"{s['latent_active_dims']} of {len(s['latent_kl_per_dim'])} dimensions active"
            per_seed.append(f"seed {r.seed}: {state} (KL per dimension, nats: {kl})")
        collapsed = sum(bool(r.record.summary.get("posterior_collapsed")) for r in vae)
        head = f" posterior collapse in {collapsed} of {len(vae)} seeds." if collapsed else ""
        items.append(para(strong(f"{label}:"), head, " ", "; ".join(per_seed) + "."))
    if not items:
        return []
    threshold = next(r.record.summary.get("latent_kl_threshold", 0.01) for runs in by_label.values() for r in runs
                     if "latent_kl_per_dim" in r.record.summary)
    return [para(strong("Posterior collapse.")), Bullets(items),  # type: ignore[list-item]
            para(f"A latent dimension is active when its KL divergence from the prior, averaged over the test "
                 f"examples, is at least {threshold:g} nats (Burda et al., 2015); one below that carries next to "
                 "no information about the input, and a VAE whose every dimension is inactive has collapsed "
                 "(Bowman et al., 2016).", muted=True)]


def _scatter(data: StudyData, by_label: dict[str, list[RunData]], save: Save) -> Block | None:
    panels = []
    for label, runs in by_label.items():
        run = runs[0]
        if run.record.summary.get("latent_dim") != 2 or run.embedding is None or run.predictions is None:
            continue
        index, z = run.embedding
        classes_of = dict(zip(run.predictions.index.tolist(), run.predictions.y.tolist(), strict=True))
        keep = np.array([int(i) in classes_of for i in index], dtype=bool)
        y = np.array([classes_of[int(i)] for i in index[keep]], dtype=np.int64)
        panels.append((f"{label}, seed {run.seed}", z[keep], y))
    if not panels:
        return None
    return Figure("latent_scatter", "2-D latent codes coloured by class",
                  save(figs.latent_scatter(panels, data.classes), "latent_scatter"),
                  caption="The 2-D codes (a VAE's posterior means) of the fixed test subset every run embeds, "
                          "first seed of each model, coloured by the true class.")


#: The objective terms drawn per epoch, with their panel titles (the loss curves above mix nats and cross-entropies).
TERMS = (("reconstruction", "reconstruction"), ("kl", "KL(q(z|x) ‖ p(z)), nats"),
         ("cross_entropy", "head's cross-entropy"))


def _terms(by_label: dict[str, list[RunData]], save: Save) -> Block | None:
    panels = []
    for term, title in TERMS:
        for split in ("train", "val"):
            key = f"{split}_{term}"
            series = {label: [[e[key] for e in r.epochs if key in e] for r in runs] for label, runs in by_label.items()}
            if any(c for curves in series.values() for c in curves):
                panels.append(Panel(f"{'training' if split == 'train' else 'validation'} {title}", series,
                                    log=term == "reconstruction" and all(
                                        v > 0 for curves in series.values() for c in curves for v in c)))
    if not panels:
        return None
    fig = band_panels(panels, labels=list(by_label))
    return Figure("latent_terms", "the objective's terms per epoch", save(fig, "latent_terms"),
                  caption="The terms of each model's own objective per epoch (training: mean over the epoch's "
                          "batches), mean over seeds with the range as a band. Reconstruction: mean squared error or "
                          "binary cross-entropy per value for an autoencoder, -log p(x|z) in nats per example for a "
                          "VAE.")


def _decode_png(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def _traversal_caption(run: RunData) -> str:
    t = run.record.summary.get("latent_traversal") or {}
    vae = "latent_kl_per_dim" in run.record.summary
    span = "the prior's 5% to 95% quantiles" if vae else "the training codes' 5th to 95th percentiles"
    if t.get("kind") == "plane":
        return (f"the decoder over the latent plane, {span}: columns z1 from left to right, rows z2 from top "
                "(high) to bottom (low)")
    rest = "the prior mean" if vae else "the median code"
    order = "largest KL first" if vae else "widest spread first"
    dims = ", ".join(f"z{d + 1}" for d in t.get("dims", []))
    return f"one latent dimension per row ({dims}; {order}) walked over {span}, the others at {rest}"


def _images(by_label: dict[str, list[RunData]], save: Save) -> list[Block]:
    blocks: list[Block] = []
    for i, (label, runs) in enumerate(by_label.items()):
        run = next((r for r in runs if r.images), None)
        if run is None:
            continue
        vae = "latent_kl_per_dim" in run.record.summary
        captions = {
            "reconstructions": "top: test images; bottom: their reconstructions"
                               + (" from the posterior mean" if vae else ""),
            "samples": "samples E[x|z] of the model, z drawn from the prior N(0, I)",
            "traversal": _traversal_caption(run),
        }
        panels = [(captions[k], _decode_png(run.images[k])) for k in captions if k in run.images]
        fig = figs.image_panels(f"{label}, seed {run.seed}", panels)
        blocks.append(Figure(f"latent_images_{i:02d}", f"reconstructions and latent traversal of {label}",
                             save(fig, f"latent_images_{i:02d}")))
    return blocks


def latent_section(data: StudyData, save: Save) -> Section | None:
    """"Latent spaces": per model, its code read by a linear SVM and by k-means and a Gaussian mixture, beside the
    same on the pixels and on a PCA of equal width; the 2-D codes; posterior collapse; on data whose distribution is
    known, the distance of each VAE's density to the true one; the image mosaics."""
    per_setting = {d.setting: latent_runs(d) for d in data.settings}
    by_label = per_setting[data.setting]
    if not by_label:
        return None
    s = Section("latent", "Latent spaces")
    first = next(iter(by_label.values()))[0].record.summary
    s.blocks.append(para(
        "Each model's latent code (an autoencoder's code, a VAE's posterior mean) is read without its own head: a "
        "linear SVM trained on the training split's codes and scored on the test split's, and k-means and a "
        "Gaussian mixture with one cluster per class, fitted on the training codes without labels and scored on "
        "the test codes by accuracy under the best one-to-one matching of clusters to classes (Hungarian method), "
        "NMI and ARI. The same read-outs of the raw pixels and of a PCA of the pixels as wide as the code (fitted "
        "on the training split) say whether the code adds anything a linear projection does not. Mean over seeds "
        f"with a 95% bootstrap interval; at most {first.get('latent_train_examples', 0):,} training examples."
        + (f" The tables per model are of the first data setting, {data.setting}; the table after them has every "
           "setting." if data.others else "")))
    for i, (label, runs) in enumerate(by_label.items()):
        s.blocks.append(para(strong(label), f" ({runs[0].record.model})"))
        s.blocks.append(latent_table(runs, i))
        s.blocks.append(_versus_pca(runs, data.test_size))
        validation = _on_validation(runs)
        if validation is not None:
            s.blocks.append(validation)
    terms = _terms(by_label, save)
    if terms is not None:
        s.blocks.append(terms)
    scatter = _scatter(data, by_label, save)
    if scatter is not None:
        s.blocks.append(scatter)
    s.blocks += settings_blocks(data, per_setting)
    chosen = _chosen_on_validation(data, per_setting)
    if chosen is not None:
        s.blocks.append(chosen)
    s.blocks += _collapse_notes(by_label)
    s.blocks += density_blocks(data, save)
    s.blocks += _images(by_label, save)
    if any("latent_error" in r.record.summary for r in data.runs):
        s.blocks.append(para("Some runs' codes were not finite; see ", code("lineup show RUN"), "."))
    return s
