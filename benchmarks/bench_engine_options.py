"""What helps the engine on a CPU: LeNet-5 epochs under the options one might reach for, measured side by side.

In one process, interleaved over ``--repeats`` rounds so that a slow moment of the machine hits every option
alike, one training epoch of LeNet-5 (Adam) on a Fashion-MNIST subset for each of:

- ``base``: the engine as studies run it (uint8 data normalised per batch, torch's default threads);
- ``channels_last``: the model and its inputs in NHWC memory format (oneDNN's preferred layout for convolutions);
- ``1 thread``: one intra-op thread (what each process-pool worker uses);
- ``compiled``: ``torch.compile`` of the model, its first epoch (compilation included) and a second one;

and evaluation passes over the training subset at three batch sizes. Each figure is the minimum over the rounds.
Usage: python benchmarks/bench_engine_options.py [--train-size N] [--repeats R] [--no-compile] [--out FILE]
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
from lineup.models import create_model
from lineup.train import create_objective, evaluate, fit

HERE = Path(__file__).resolve().parent
CPU = torch.device("cpu")


def epoch(data: object, batch: int, *, channels_last: bool = False, compiled: bool = False,
          threads: int | None = None) -> tuple[float, torch.nn.Module]:
    """Seconds of one training epoch (the model is built and, if asked, compiled inside the timing)."""
    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = create_model("lenet5", data.input_shape, data.num_classes)  # type: ignore[attr-defined]
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compiled:
            model = torch.compile(model)  # type: ignore[assignment]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        fit(model, create_objective("cross_entropy"), opt, data.train, data.normalization,  # type: ignore[attr-defined]
            epochs=1, batch_size=batch, seed=0, device=CPU)
        return time.perf_counter() - t0, model
    finally:
        torch.set_num_threads(default_threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-size", type=int, default=20000, help="training images (a subset keeps it short)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the minimum is reported")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it takes about a minute)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / f"engine-options-cpu-{os.cpu_count()}core.json")
    args = ap.parse_args()
    data = load("fashion-mnist", train_size=args.train_size, val_fraction=0.1)
    options = {"base": {}, "channels_last": {"channels_last": True}, "1 thread": {"threads": 1}}
    times: dict[str, list[float]] = {}
    model = None
    for _ in range(args.repeats):
        for batch in (64, 256):
            for name, kw in options.items():
                seconds, model = epoch(data, batch, **kw)  # type: ignore[arg-type]
                times.setdefault(f"train batch {batch}, {name}", []).append(seconds)
        for bs in (256, 1024, 4096):
            t0 = time.perf_counter()
            evaluate(model, create_objective("cross_entropy"), data.train, data.normalization, device=CPU,  # type: ignore[arg-type]
                     batch_size=bs)
            times.setdefault(f"evaluate batch {bs}", []).append(time.perf_counter() - t0)
    rows = {k: min(v) for k, v in times.items()}
    if not args.no_compile:
        for batch in (64, 256):
            first, _ = epoch(data, batch, compiled=True)
            second, _ = epoch(data, batch, compiled=True)  # a new model of the same code: compiled caches reused
            rows[f"train batch {batch}, compiled, first epoch"] = first
            rows[f"train batch {batch}, compiled, second model"] = second
    print(f"LeNet-5, {len(data.train)} training images, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    for name, seconds in rows.items():
        base = rows.get(name.split(",")[0] + ", base") if name.startswith("train") else rows["evaluate batch 1024"]
        print(f"{name:<42} {seconds:>7.3f} s   {seconds / base:>5.2f}x of "
              + ("base" if name.startswith("train") else "batch 1024"))
    result = {"machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "torch": torch.__version__, "threads": torch.get_num_threads()},
              "train_size": len(data.train), "load_average": os.getloadavg(), "seconds": rows,
              "all_rounds": times}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
