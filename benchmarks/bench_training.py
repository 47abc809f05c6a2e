"""Training speed of lineup's engine against a plain PyTorch notebook-style loop, measured side by side.

Three comparisons, each configuration in a fresh process so that its peak memory is its own:

(a) one training epoch on Fashion-MNIST: lineup's engine (uint8 tensors in memory, normalised per batch) vs the
    usual notebook loop (a Dataset returning normalised per-sample tensors, a shuffling DataLoader), same model,
    optimiser, batches and seed; LeNet-5 and a small ResNet-9, batch 64 and 256;
(b) achieved training GFLOP/s (forward + backward FLOPs counted by torch.utils.flop_counter) against the fp32
    matmul peak measured in the same run;
(c) a study of 12 LeNet-5 runs (4 variants x 3 seeds, one epoch each): lineup's pool executor vs the same runs
    one after the other in the notebook style, each scored on the validation and test splits at its end (lineup's
    runs also evaluate the training split and store predictions, features and a linear probe).

Each single-run configuration is measured ``--repeats`` times, engine and notebook in turn, each in a fresh process;
the fastest time of each loop is reported with the highest peak memory. Only the ratios mean something across
machines; one epoch's time varies by +-25% from run to run on small cloud machines.
Usage: python benchmarks/bench_training.py [--quick] [--repeats R] [--device cuda] [--out benchmarks/results/NAME.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------- child side


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _fashion(train_size: int | None):  # type: ignore[no-untyped-def]
    from lineup.data import load

    return load("fashion-mnist", train_size=train_size, val_fraction=0.1)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def child_engine(model_name: str, options: dict, batch: int, train_size: int | None, device: str = "cpu",
                 precision: str = "fp32") -> dict:
    import torch

    from lineup.models import create_model
    from lineup.study.worker import resident
    from lineup.train import create_objective, fit

    data = _fashion(train_size)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = create_model(model_name, data.input_shape, data.num_classes, **options).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    train = resident(data.train, dev)  # as a study's worker holds it: timed, since it is part of the engine's way
    fit(model, create_objective("cross_entropy"), opt, train, data.normalization, epochs=1, batch_size=batch,
        seed=0, device=dev, precision=precision)
    _sync(device)
    return {"seconds": time.perf_counter() - t0, "examples": len(data.train), "peak_mb": _peak_mb()}


def notebook_loader(images, labels, mean: float, std: float, batch: int, order: list[int] | None = None):  # type: ignore[no-untyped-def]
    """The notebook style of feeding a model: float32 images in [0, 1] as a NumPy array, a Dataset that returns one
    normalised tensor per ``__getitem__``, and a DataLoader over ``order`` (in stored order when ``None``)."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Images(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return (torch.from_numpy(images[i]) - mean) / std, int(labels[i])

    return DataLoader(Images(), batch_size=batch, sampler=order)


def notebook_epoch(model, opt, loader, device: str) -> float:  # type: ignore[no-untyped-def]
    """One epoch of the usual notebook loop; returns the summed loss, read after every step as notebooks do."""
    import torch.nn.functional as F

    model.train()
    running = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)  # the notebook's way onto a GPU: one copy per batch
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        running += loss.item()
    return running


def child_notebook(model_name: str, options: dict, batch: int, train_size: int | None, device: str = "cpu",
                   score: bool = False) -> dict:
    """One notebook-style training epoch; with ``score``, then the accuracy on the validation and test splits, as a
    notebook's run ends (the study comparison (c) scores every run, as lineup does)."""
    import torch

    from lineup.data.batching import epoch_order
    from lineup.models import create_model

    bundle = _fashion(train_size)
    images = bundle.train.x.numpy().astype("float32") / 255.0
    labels = bundle.train.y.numpy()
    mean, std = bundle.normalization.mean[0], bundle.normalization.std[0]
    order = epoch_order(len(labels), seed=0, epoch=0).tolist()  # the same batches as the engine
    loader = notebook_loader(images, labels, mean, std, batch, order)
    torch.manual_seed(0)
    model = create_model(model_name, bundle.input_shape, bundle.num_classes, **options).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    notebook_epoch(model, opt, loader, device)
    accuracy = {}
    if score:
        model.eval()
        with torch.no_grad():
            for name, split in (("val", bundle.val), ("test", bundle.test)):
                held_out = notebook_loader(split.x.numpy().astype("float32") / 255.0, split.y.numpy(), mean, std,
                                           1000)
                right = sum(int((model(x.to(device)).argmax(1).cpu() == y).sum()) for x, y in held_out)
                accuracy[f"{name}_acc"] = right / len(split)
    _sync(device)
    return {"seconds": time.perf_counter() - t0, "examples": len(labels), "peak_mb": _peak_mb(), **accuracy}


def child_flops(model_name: str, options: dict, batch: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from lineup.models import create_model

    model = create_model(model_name, (1, 28, 28), 10, **options)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return {"train_flops_per_example": counter.get_total_flops() / batch}


def child_matmul_peak(device: str = "cpu", dtype: str = "float32") -> dict:
    import torch

    n = 2048 if device == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        a @ b
        reps += 1
        if reps % 10 == 0:
            _sync(device)
    _sync(device)
    return {"gflops": 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9, "threads": torch.get_num_threads()}


def child_study(style: str, runs: int, device: str = "cpu") -> dict:
    """12 LeNet-5 runs, one epoch each: lineup's executor (the pool on a CPU, this process on a GPU, where runs
    that can are stacked) or a notebook loop run after run."""
    import tempfile

    t0 = time.perf_counter()
    if style == "lineup":
        from lineup import Store, parse_study, run_study

        doc = {"study": {"name": "bench", "seeds": [0, 1, 2]}, "data": {"dataset": "fashion-mnist"},
               "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 2048, "device": device},
               "models": [{"name": "base", "model": "lenet5"},
                          {"name": "bn", "base": "base", "options": {"batch_norm": True}},
                          {"name": "leaky", "base": "base", "options": {"activation": "leaky_relu"}},
                          {"name": "dropout", "base": "base", "options": {"dropout": 0.5}}]}
        with tempfile.TemporaryDirectory() as tmp, Store(tmp) as store:
            out = run_study(parse_study(doc), store, executor="pool" if device == "cpu" else "local",
                            progress=False)
            assert len(out.trained) == runs and all(r.status == "complete" for _, r in out.trained)
            # Of each run's time, what its training epochs took (the rest: evaluations, features, probe, storing)
            training = sum(e["time_s"] for _, r in out.trained for e in r.histories["train"].epochs)
            return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "training_s": training,
                    "runs_wall_s": sum(r.wall_time for _, r in out.trained)}
    else:
        for i in range(runs):
            opts = [{}, {"batch_norm": True}, {"activation": "leaky_relu"}, {"dropout": 0.5}][i % 4]
            child_notebook("lenet5", opts, 64, None, device, score=True)
    return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}


CHILDREN = {"engine": child_engine, "notebook": child_notebook, "flops": child_flops, "matmul": child_matmul_peak,
            "study": child_study}


# ---------------------------------------------------------------------------------------------- driver side


def _spawn(kind: str, *args: object) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import bench_training as b; "
            f"print(json.dumps(b.CHILDREN[{kind!r}](*json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


RESNET_SMALL = {"width": 0.25}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer images per measurement (a smoke test)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]; on a GPU the engine holds the data there and "
                                                    "is also timed under bf16 autocast")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: results/<machine>.json)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per loop and configuration; the fastest "
                                                             "is reported, the highest peak memory")
    ap.add_argument("--parts", nargs="+", choices=("epochs", "study"), default=["epochs", "study"],
                    help="what to measure: the single-run epochs (a, b), the 12-run study (c), or both")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    gpu = args.device.startswith("cuda")
    lenet_n = 6000 if args.quick else None  # None: the full 54,000-image training split
    resnet_n = 1000 if args.quick else (None if gpu else 5000)  # ~60x LeNet-5's FLOPs: a subset keeps a CPU short

    import torch

    name = torch.cuda.get_device_name(torch.device(args.device)) if gpu else f"cpu-{os.cpu_count()}core"
    out = args.out or HERE / "results" / f"{name.replace(' ', '-').lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    peak = _spawn("matmul", args.device, "float32")
    bf16_peak = _spawn("matmul", args.device, "bfloat16") if gpu else None
    rows: list[dict[str, object]] = []
    study: dict[str, object] = {}
    result = {"machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "processor": platform.processor(), "torch": torch.__version__, "device": name},
              "matmul_peak_gflops": peak["gflops"], "epochs": rows, "study_12_runs": study}
    if bf16_peak is not None:
        result["bf16_matmul_peak_gflops"] = bf16_peak["gflops"]

    def save() -> None:  # after every measurement, so that a run cut short keeps what it measured
        out.write_text(json.dumps(result, indent=2))

    models = (("lenet5", {}, lenet_n), ("resnet9", RESNET_SMALL, resnet_n)) if "epochs" in args.parts else ()
    for name_, opts, n in models:
        flops = _spawn("flops", name_, opts, 64)["train_flops_per_example"]
        for batch in (64, 256):
            # Interleaved pairs, so that a slow moment of the machine hits both loops alike; the fastest of each.
            pairs = [(_spawn("engine", name_, opts, batch, n, args.device),
                      _spawn("notebook", name_, opts, batch, n, args.device)) for _ in range(args.repeats)]
            eng = min((e for e, _ in pairs), key=lambda r: r["seconds"])
            nb = min((b for _, b in pairs), key=lambda r: r["seconds"])
            gflops = flops * eng["examples"] / eng["seconds"] / 1e9
            row = {"model": name_, "options": opts, "batch": batch, "examples": eng["examples"],
                   "engine_s": eng["seconds"], "notebook_s": nb["seconds"],
                   "speedup": nb["seconds"] / eng["seconds"], "engine_gflops": gflops,
                   "fraction_of_peak": gflops / peak["gflops"],
                   "engine_peak_mb": max(e["peak_mb"] for e, _ in pairs),
                   "notebook_peak_mb": max(b["peak_mb"] for _, b in pairs),
                   "engine_s_all": [e["seconds"] for e, _ in pairs], "notebook_s_all": [b["seconds"] for _, b in pairs]}
            if gpu and batch == 256:  # bf16 pays where the products are large enough for tensor cores to matter
                bf = _spawn("engine", name_, opts, batch, n, args.device, "bf16")
                row.update(engine_bf16_s=bf["seconds"], bf16_speedup_over_fp32=eng["seconds"] / bf["seconds"])
            rows.append(row)
            save()
    if not args.quick and "study" in args.parts:
        try:
            lin = _spawn("study", "lineup", 12, args.device)
            seq = _spawn("study", "notebook", 12, args.device)
            study.update(lineup_s=lin["seconds"], sequential_notebook_s=seq["seconds"],
                         speedup=seq["seconds"] / lin["seconds"], lineup_peak_mb_driver=lin["peak_mb"],
                         lineup_training_epochs_s=lin["training_s"], lineup_runs_wall_s=lin["runs_wall_s"])
        except subprocess.CalledProcessError as e:  # keep the epoch figures; say what broke
            study["error"] = e.stderr[-2000:]
            print(f"the 12-run study failed:\n{e.stderr[-2000:]}", file=sys.stderr)
    save()

    print(f"on {name}: fp32 matmul peak {peak['gflops']:.0f} GFLOP/s ({peak['threads']} CPU threads)"
          + (f", bf16 {bf16_peak['gflops']:.0f} GFLOP/s" if bf16_peak else ""))
    print(f"{'model':<8} {'batch':>5} {'images':>7} {'engine s':>9} {'notebook s':>11} {'speed-up':>9} "
          f"{'GFLOP/s':>8} {'of peak':>8} {'MB engine':>10} {'MB notebook':>12}"
          + ("  bf16 s  bf16 gain" if gpu else ""))
    for r in rows:
        print(f"{r['model']:<8} {r['batch']:>5} {r['examples']:>7} {r['engine_s']:>9.2f} {r['notebook_s']:>11.2f} "
              f"{r['speedup']:>8.2f}x {r['engine_gflops']:>8.1f} {100 * r['fraction_of_peak']:>7.1f}% "
              f"{r['engine_peak_mb']:>10.0f} {r['notebook_peak_mb']:>12.0f}"
              + (f" {r['engine_bf16_s']:>7.2f} {r['bf16_speedup_over_fp32']:>8.2f}x" if "engine_bf16_s" in r else ""))
    if "speedup" in study:
        print(f"12 LeNet-5 runs, 1 epoch each: lineup {study['lineup_s']:.1f} s, sequential notebook "
              f"{study['sequential_notebook_s']:.1f} s, speed-up {study['speedup']:.2f}x; of lineup's runs "
              f"{study['lineup_runs_wall_s']:.1f} s (summed over workers), {study['lineup_training_epochs_s']:.1f} s "
              "were training epochs")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
