"""The report's "Generative models" section, for studies with GANs (``lineup.study.generative``).

Everything comes from the store through ``collect``: each run's summary holds its per-step losses, the two
distances of its samples to the test images (and the same distances between training and test images, the floor a
perfect generator would reach up to sampling noise) and the judging classifier's accuracy; the run's folder holds
its sample grids. This module only puts intervals over seeds on those numbers and formats them.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure as MplFigure

from lineup.analysis.stats import mean_ci
from lineup.report import _format as fmt
from lineup.report import figures_generative as figs
from lineup.report.collect import RunData, StudyData
from lineup.report.document import Block, Figure, Section, Table, para, strong
from lineup.report.figures import Panel, band_panels

Save = Callable[[MplFigure, str], str]

#: The per-step terms drawn, with their panel titles; the non-saturating GAN's terms are in nats, the WGANs' in
#: the critic's units.
TERMS = (("discriminator_loss", "discriminator loss (GAN), nats"),
         ("generator_loss", "generator loss: -log D(G(z)) (GAN, nats) or -E f(G(z)) (WGAN)"),
         ("critic_loss", "critic loss (WGAN, with the penalty)"),
         ("wasserstein", "critic's Wasserstein estimate E f(x) - E f(G(z))"),
         ("gradient_penalty", "gradient penalty (WGAN-GP, unweighted)"))


def generative_runs(data: StudyData) -> dict[str, list[RunData]]:
    """The complete runs whose summaries hold sample distances, by model label in file order, by seed."""
    return data.with_summary("gan_steps")


def _cell(runs: list[RunData], key: str, digits: int = 3) -> str:
    values = [float(r.record.summary[key]) for r in runs if r.record.summary.get(key) is not None]
    return fmt.ci(mean_ci(values), scale=1.0, digits=digits) if values else ""


def _last_epoch(runs: list[RunData], key: str) -> str:
    values = [r.epochs[-1][key] for r in runs if r.epochs and key in r.epochs[-1]]
    return fmt.ci(mean_ci(values), scale=1.0, digits=4) if values else ""


def distance_table(by_label: dict[str, list[RunData]]) -> Table:
    """Per model: both distances, the critic's last Wasserstein estimate and the probe's test accuracy; last, the
    training images measured the same way, the floor."""
    header = ["model", "seeds", "Fréchet distance (judge features) [95% CI]", "sliced Wasserstein (pixels) [95% CI]",
              "Wasserstein estimate, last epoch", "probe test acc %"]
    rows, classes = [], []
    for label, runs in by_label.items():
        accs = [r.record.summary["test_acc"] for r in runs if "test_acc" in r.record.summary]
        rows.append([label, str(len(runs)), _cell(runs, "frechet_distance"), _cell(runs, "sliced_wasserstein", 4),
                     _last_epoch(runs, "train_wasserstein"), fmt.ci(mean_ci(accs)) if accs else ""])
        classes.append("")
    first = next(iter(by_label.values()))[0].record.summary
    if "frechet_real" in first:
        rows.append(["training images (no generator)", "", f"{first['frechet_real']:.3f}",
                     f"{first['sliced_wasserstein_real']:.4f}", "", ""])
        classes.append("baseline")
    return Table("generative_distances", header, rows, classes)


def _curves(by_label: dict[str, list[RunData]], save: Save) -> Block | None:
    panels = []
    for term, title in TERMS:
        series = {label: [r.record.summary["gan_steps"][term] for r in runs if term in r.record.summary["gan_steps"]]
                  for label, runs in by_label.items()}
        x = {label: [r.record.summary["gan_steps"]["step"] for r in runs if term in r.record.summary["gan_steps"]]
             for label, runs in by_label.items()}
        if any(series.values()):
            panels.append(Panel(title, series, xlabel="step", x=x, zero_line=term == "wasserstein"))
    if not panels:
        return None
    bins = {r.record.summary["gan_steps"]["bin"] for runs in by_label.values() for r in runs}
    binned = "" if bins == {1} else f" Each point is the mean of {max(bins)} consecutive steps."
    return Figure("generative_steps", "generator and discriminator losses per step",
                  save(band_panels(panels, labels=list(by_label)), "generative_steps"),
                  caption="The adversarial terms of every training step (the discriminator's or critic's last update "
                          "of the step, then the generator's), mean over seeds with the range as a band." + binned)


def _decode_png(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def _grids(by_label: dict[str, list[RunData]], save: Save) -> list[Block]:
    blocks: list[Block] = []
    for i, (label, runs) in enumerate(by_label.items()):
        run = next((r for r in runs if any(k.startswith("epoch") or k == "final" for k in r.images)), None)
        if run is None:
            continue
        kinds = sorted(k for k in run.images if k.startswith("epoch")) + (["final"] if "final" in run.images else [])
        grids = [(f"epoch {int(k.removeprefix('epoch'))}" if k != "final" else "final weights",
                  _decode_png(run.images[k])) for k in kinds]
        blocks.append(Figure(f"generative_samples_{i:02d}", f"samples of {label} during training",
                             save(figs.grid_row(f"{label}, seed {run.seed}", grids), f"generative_samples_{i:02d}"),
                             caption="64 samples from the same noise (seeded 0) after each of these epochs, the "
                                     "generator in evaluation mode."))
    return blocks


def generative_section(data: StudyData, save: Save) -> Section | None:
    """"Generative models": per model the Fréchet and sliced Wasserstein distances of its samples to the test
    images, its losses per step, and its sample grids."""
    by_label = generative_runs(data)
    if not by_label:
        return None
    s = Section("generative", "Generative models")
    first = next(iter(by_label.values()))[0].record.summary
    judge = first.get("judge") or {}
    acc = first.get("judge_test_acc")
    s.blocks.append(para(
        f"Each model's samples are compared with {first.get('quality_examples', 0):,} test images by two distances, "
        "lower is better. ", strong("Fréchet distance"), ": between Gaussians fitted to the features of the test "
        "images and of as many samples, in the feature space of a judging classifier lineup trains on the training "
        f"split of the same data ({judge.get('model', '?')}, seed {judge.get('seed', '?')}, "
        f"{judge.get('epochs', '?')} epochs, its {judge.get('features', '?')} penultimate units"
        + (f"; test accuracy {100 * acc:.2f}%" if acc is not None else "") + "). It is not the FID, whose features "
        "are Inception-v3's: compare these numbers within this study only. ", strong("Sliced Wasserstein distance"),
        ": between the test images and the samples as pixel vectors in [0, 1], over 128 random directions (the same "
        "for every run). The last row measures the training images the same way: what a generator of the data "
        "distribution itself would score, up to sampling noise. Mean over seeds with a 95% bootstrap interval. The "
        "probe's accuracy is that of a linear head trained on the discriminator's detached features."))
    s.blocks.append(distance_table(by_label))
    curves = _curves(by_label, save)
    if curves is not None:
        s.blocks.append(curves)
    s.blocks += _grids(by_label, save)
    if any("quality_error" in r.record.summary for runs in by_label.values() for r in runs):
        s.blocks.append(para("Some runs drew samples that are not finite, so their distances are missing."))
    return s
