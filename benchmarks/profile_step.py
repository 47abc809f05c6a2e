"""Where a training step's time goes: lineup's engine and the notebook loop, LeNet-5 on Fashion-MNIST, by kind of op.

One epoch of each loop on a subset is profiled with ``torch.profiler`` (self CPU time per op, after one epoch of
warm-up), and the ops are grouped: convolutions (forward and backward), pooling, activations, fully connected
layers, the optimiser step, and the rest (data handling, copies, metrics, Python-side dispatch that the profiler
attributes to no op). The groups that both loops share bound what any change to the loop around them can gain.
Usage: python benchmarks/profile_step.py [--train-size N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
from bench_training import notebook_epoch, notebook_loader
from torch.profiler import ProfilerActivity, profile

from lineup.data import DataBundle, load
from lineup.data.batching import epoch_order
from lineup.models import create_model
from lineup.train import create_objective, fit

HERE = Path(__file__).resolve().parent
CPU = torch.device("cpu")

#: Op name fragments of each group, first match wins; what matches none is "other".
GROUPS = (("convolution", ("convolution", "conv2d")), ("pooling", ("pool",)),
          ("activation", ("relu", "threshold", "clamp")), ("fully connected", ("addmm", "aten::mm", "linear")),
          ("optimiser", ("optimizer", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt")))


def _group(name: str) -> str:
    low = name.lower()
    return next((g for g, keys in GROUPS if any(k in low for k in keys)), "other")


def _engine(data: DataBundle, batch: int) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", data.input_shape, data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, create_objective("cross_entropy"), opt, data.train, data.normalization, epochs=1, batch_size=batch,
        seed=0, device=CPU)


def _notebook(data: DataBundle, batch: int) -> None:
    images = data.train.x.numpy().astype("float32") / 255.0
    loader = notebook_loader(images, data.train.y.numpy(), data.normalization.mean[0], data.normalization.std[0],
                             batch, epoch_order(len(images), seed=0, epoch=0).tolist())
    torch.manual_seed(0)
    model = create_model("lenet5", data.input_shape, data.num_classes)
    notebook_epoch(model, torch.optim.Adam(model.parameters(), lr=1e-3), loader, "cpu")


def breakdown(loop: str, data: DataBundle, batch: int) -> dict[str, float]:
    """Seconds of one epoch of ``loop`` (wall clock, unprofiled, best of three) and the share of each group of ops
    in a profiled epoch."""
    run = _engine if loop == "engine" else _notebook
    run(data, batch)  # warm-up: first-use costs (kernel selection, allocator) out of the figures
    seconds = math.inf
    for _ in range(3):  # the fastest of three unprofiled epochs: a slow moment of the machine is not the loop's
        t0 = time.perf_counter()
        run(data, batch)
        seconds = min(seconds, time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(data, batch)
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        shares[_group(event.key)] = shares.get(_group(event.key), 0.0) + event.self_cpu_time_total
    total = sum(shares.values())
    return {"seconds": seconds, **{g: v / total for g, v in sorted(shares.items())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-size", type=int, default=10000, help="training images (a subset keeps it short)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / f"profile-cpu-{os.cpu_count()}core.json")
    args = ap.parse_args()
    data = load("fashion-mnist", train_size=args.train_size, val_fraction=0.1)
    rows = [{"loop": loop, "batch": batch, **breakdown(loop, data, batch)}
            for batch in (64, 256) for loop in ("engine", "notebook")]
    groups = [g for g, _ in GROUPS] + ["other"]
    print(f"LeNet-5, {len(data.train)} images, {torch.get_num_threads()} threads: share of profiled op time")
    print(f"{'loop':<9} {'batch':>5} {'epoch s':>8} " + " ".join(f"{g:>15}" for g in groups))
    for r in rows:
        print(f"{r['loop']:<9} {r['batch']:>5} {r['seconds']:>8.2f} "
              + " ".join(f"{100 * r.get(g, 0.0):>14.1f}%" for g in groups))
    result = {"machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "torch": torch.__version__, "threads": torch.get_num_threads()},
              "train_size": len(data.train), "load_average": os.getloadavg(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
