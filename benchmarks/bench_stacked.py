"""Stacked training against separate runs: per-run epoch time of K LeNet-5s on Fashion-MNIST, side by side.

For each K, K runs (seeds 0..K-1, learning rates spread around 1e-3) train one epoch (a) one after another with
the engine's ``fit`` and (b) together as one stack with ``fit_stacked``, both in this process, on the same device,
with the training split already on that device, after an untimed warm-up of both on a few batches. It also
records what ``measure_stacking`` (the automatic choice, from a few timed steps) picks for each K, to show that the
quick measurement agrees with the full epochs.

Separate runs each take the same time, so for large K they are timed on ``--separate-max`` of the K runs and
reported per run. Only the ratios mean something across machines. On a GPU the default K are 1, 4, 8, 32, 64 and
128; on a CPU 1, 4 and 8.
Usage: python benchmarks/bench_stacked.py [--ks 1 4 8] [--train-size N] [--precision bf16]
       [--out benchmarks/results/NAME.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from lineup.data import load
from lineup.data._types import Split
from lineup.models import create_model
from lineup.train import OptimConfig, build_optimizer, create_objective, fit
from lineup.train.stacked import fit_stacked, measure_stacking

HERE = Path(__file__).resolve().parent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _models(k: int, data_shape: tuple[int, int, int], classes: int, device: torch.device) -> list[torch.nn.Module]:
    out: list[torch.nn.Module] = []
    for seed in range(k):
        torch.manual_seed(seed)  # as a worker seeds a run before building its model
        out.append(create_model("lenet5", data_shape, classes).to(device))
    return out


def measure(k: int, train: Split, data: object, batch: int, device: torch.device, *, separate_max: int,
            precision: str) -> dict[str, object]:
    """Seconds per run per epoch, separate and stacked, for ``k`` runs."""
    objective = create_objective("cross_entropy")
    norm, shape, classes = data.normalization, data.input_shape, data.num_classes  # type: ignore[attr-defined]
    cfgs = [OptimConfig(lr=1e-3 * (1 + i / max(k, 1))) for i in range(k)]
    seeds = list(range(k))
    warm = train.take(torch.arange(min(len(train), 8 * batch)))

    n_sep = min(k, separate_max)

    def separate(split: Split) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for model, cfg, seed in zip(_models(n_sep, shape, classes, device), cfgs[:n_sep], seeds[:n_sep], strict=True):
            fit(model, objective, build_optimizer(model.parameters(), cfg), split, norm, epochs=1, batch_size=batch,
                seed=seed, device=device, precision=precision)
        _sync(device)
        return time.perf_counter() - t0

    def stacked(split: Split) -> float:
        _sync(device)
        t0 = time.perf_counter()
        fit_stacked(_models(k, shape, classes, device), objective, cfgs, split, norm, epochs=1, batch_size=batch,
                    seeds=seeds, device=device, precision=precision)
        _sync(device)
        return time.perf_counter() - t0

    separate(warm), stacked(warm)
    sep, stk = separate(train) / n_sep, stacked(train) / k
    choice = measure_stacking(_models(k, shape, classes, device), objective, cfgs, train, norm, batch_size=batch,
                              device=device, precision=precision)
    return {"k": k, "separate_timed_runs": n_sep, "separate_s_per_run_epoch": sep, "stacked_s_per_run_epoch": stk,
            "speedup": sep / stk, "auto_choice": choice.provenance()["stacking"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", type=int, nargs="+", default=None,
                    help="stack sizes (default: 1 4 8, and 32 64 128 on a GPU)")
    ap.add_argument("--separate-max", type=int, default=4, help="separate runs timed per K (each takes as long)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="training precision of both")
    ap.add_argument("--train-size", type=int, default=None, help="training images (default: all 54,000)")
    ap.add_argument("--batch-size", type=int, default=64, help="examples per step (the study default)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: results/stacked-<device>.json)")
    args = ap.parse_args()
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    ks = args.ks or ([1, 4, 8, 32, 64, 128] if device.type == "cuda" else [1, 4, 8])
    data = load("fashion-mnist", train_size=args.train_size, val_fraction=0.1)
    train = Split(data.train.x.to(device), data.train.y.to(device), data.train.index)  # on the device, for both
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{os.cpu_count()}core"
    print(f"{len(train)} training images, batch {args.batch_size}, {args.precision}, on {name} "
          f"({torch.get_num_threads()} threads)")
    print(f"{'K':>3} {'separate s/run-epoch':>21} {'stacked s/run-epoch':>20} {'speed-up':>9} {'auto':>9}")
    rows = []
    for k in ks:
        r = measure(k, train, data, args.batch_size, device, separate_max=args.separate_max,
                    precision=args.precision)
        rows.append(r)
        auto = r["auto_choice"]["choice"]  # type: ignore[index]
        print(f"{k:>3} {r['separate_s_per_run_epoch']:>21.3f} {r['stacked_s_per_run_epoch']:>20.3f} "
              f"{r['speedup']:>8.2f}x {auto:>9}", flush=True)
    result = {"machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "device": name, "torch": torch.__version__, "threads": torch.get_num_threads()},
              "train_size": len(train), "batch_size": args.batch_size, "precision": args.precision,
              "model": "lenet5", "optimizer": "adam",
              "load_average": os.getloadavg(), "rows": rows}
    suffix = "" if args.precision == "fp32" else f"-{args.precision}"
    out = args.out or HERE / "results" / f"stacked-{name.replace(' ', '-').lower()}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
