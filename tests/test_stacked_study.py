"""Stacked training inside a study: which runs are grouped, and that a stacked study stores what separate runs do.

The numbers of a stack agree with separate runs to float rounding only (see tests/test_stacked.py); under plain
SGD on these small models that is 1e-4 relative on a CPU, which is what the comparison here allows. On a GPU,
cuDNN convolutions run in TF32 by default (10-bit mantissas), where a stack's grouped convolution and a single
model's convolution round differently enough that three epochs drift apart by 1e-3 in the losses and by three
validation images (seen on an H200); the study here therefore trains with TF32 off, and allows 1e-3 there.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from lineup import Store, parse_study, prepare
from lineup.spec import RunSpec, expand
from lineup.study import run_study
from lineup.study.executors import LocalExecutor
from lineup.study.worker import MAX_STACK, RunContext, execute_group, resolve_device, stack_groups

RTOL = 1e-4 if resolve_device("auto").type == "cpu" else 1e-3

DOC = {
    "study": {"name": "stacked", "seeds": [0, 1, 2]},
    "data": {"dataset": "digits", "train_size": 512, "val_fraction": 0.2},
    "train": {"optimizer": "sgd", "lr": 0.05, "epochs": 3, "batch_size": 32, "threads": 1,
              "early_stopping": {"monitor": "val_loss", "patience": 1}},
    "models": [
        {"name": "lenet", "model": "lenet5", "options": {"kernel_size": 3}},  # 3, as 8x8 inputs need
        {"name": "lenet-lr", "base": "lenet", "train": {"lr": 0.02, "weight_decay": 1e-3}},
        {"name": "lenet-bn", "base": "lenet", "options": {"batch_norm": True}},
        {"name": "lenet-batch64", "base": "lenet", "train": {"batch_size": 64}},
    ],
}


@pytest.fixture(autouse=True)
def _one_thread(seeded_one_thread: None) -> None:
    """Tiny models: one thread each, see conftest."""


def _labels(groups: list[list[RunSpec]]) -> list[list[tuple[str, int]]]:
    return [[(r.label, r.seed) for r in g] for g in groups]


def _runs(doc: dict) -> list[RunSpec]:
    """The study's runs, expanded without loading data or building models (grouping reads specs only)."""
    return expand(parse_study(doc), data_version="v")


def test_runs_that_differ_only_in_seed_lr_or_weight_decay_share_a_group() -> None:
    runs = _runs(DOC)
    groups = _labels(stack_groups(runs, "always"))
    # lenet and lenet-lr differ in lr and weight decay only: one group of six. Batch norm changes the model and
    # a batch size changes the steps: each of those is a group of its own seeds.
    assert groups == [[("lenet", s) for s in (0, 1, 2)] + [("lenet-lr", s) for s in (0, 1, 2)],
                      [("lenet-bn", s) for s in (0, 1, 2)], [("lenet-batch64", s) for s in (0, 1, 2)]]
    assert _labels(stack_groups(runs, "off")) == [[(r.label, r.seed)] for r in runs]
    # auto stacks on a GPU only: these runs ask for the CPU
    cpu = _runs({**DOC, "train": {**DOC["train"], "device": "cpu"}})
    assert _labels(stack_groups(cpu, "auto")) == [[(r.label, r.seed)] for r in cpu]
    with pytest.raises(ValueError, match="unknown stacking mode 'sometimes'"):
        stack_groups(runs, "sometimes")


def test_runs_that_must_train_alone_are_never_grouped() -> None:
    refit = {**DOC, "protocol": {"refit": True}}
    assert all(len(g) == 1 for g in stack_groups(_runs(refit), "always"))
    init = {**DOC, "models": [DOC["models"][0], {"name": "warm", "base": "lenet", "init_from": "lenet"}]}
    groups = _labels(stack_groups(_runs(init), "always"))
    assert groups == [[("lenet", 0), ("lenet", 1), ("lenet", 2)], [("warm", 0)], [("warm", 1)], [("warm", 2)]]


def test_a_group_larger_than_the_largest_stack_is_split() -> None:
    many = {**DOC, "study": {"name": "many", "seeds": list(range(MAX_STACK + 3))}, "models": DOC["models"][:1]}
    sizes = [len(g) for g in stack_groups(_runs(many), "always")]
    assert sizes == [MAX_STACK, 3]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stacked")
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # full fp32 on a GPU too
    try:
        for mode in ("always", "off"):
            with Store(root / mode) as store:
                out = run_study(parse_study(DOC), store, executor=LocalExecutor(stack=mode))
                assert all(r.status == "complete" for _, r in out.trained), [r.error for _, r in out.trained]
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return root / "always", root / "off"


def test_a_stacked_study_stores_what_separate_runs_store(stores: tuple[Path, Path]) -> None:
    stacked, separate = stores
    with Store(stacked) as a, Store(separate) as b:
        ra, rb = a.runs("stacked"), b.runs("stacked")
        assert [r.hash for r in ra] == [r.hash for r in rb]  # how a run trained is not part of what it is
        for x, y in zip(ra, rb, strict=True):
            how = x.provenance["stacking"]
            if x.label in ("lenet", "lenet-lr"):
                assert how["choice"] == "stacked" and how["runs"] == 6
            elif x.label == "lenet-batch64":  # its own three seeds make a stack
                assert how["choice"] == "stacked" and how["runs"] == 3
            else:  # batch norm's running statistics cannot be updated per member: refused, trained one by one
                assert how["choice"] == "separate" and "buffers" in how["refused"]
            assert "stacking" not in y.provenance
            # the same epochs (early stopping per member), losses and accuracies to float rounding
            ea, eb = a.epochs(x.hash), b.epochs(y.hash)
            assert [e["epoch"] for e in ea] == [e["epoch"] for e in eb]
            for key in ("train_loss", "val_loss", "val_acc"):
                np.testing.assert_allclose([e[key] for e in ea], [e[key] for e in eb], rtol=RTOL, atol=1e-6)
            np.testing.assert_allclose(a.step_losses(x.hash), b.step_losses(y.hash), rtol=RTOL, atol=1e-6)
            assert x.summary["stop_reason"] == y.summary["stop_reason"]
            pa, pb = a.predictions(x.hash), b.predictions(y.hash)
            assert pa is not None and pb is not None
            assert abs(x.summary["test_acc"] - y.summary["test_acc"]) <= 1 / len(pa.y) + 1e-12  # one image at most
            np.testing.assert_allclose(pa.probs, pb.probs, atol=1e-3)
            fa, fb = a.embeddings(x.hash), b.embeddings(y.hash)
            np.testing.assert_array_equal(fa[0], fb[0])
            np.testing.assert_allclose(fa[1], fb[1], rtol=1e-3, atol=1e-4)
            assert abs(x.summary["probe_acc"] - y.summary["probe_acc"]) <= 0.02
            assert (a.artifact_dir(x.hash) / "final.pt").exists()


def test_an_interrupted_stack_hands_back_interrupted_runs_and_trains_them_again(tmp_path: Path) -> None:
    plan = prepare(parse_study(DOC))
    group = stack_groups(plan.runs, "always")[0]
    stop = threading.Event()
    stop.set()  # already asked to stop: the stack takes one step and gives every member back
    results = execute_group(group, plan.data, [RunContext(interrupt=stop) for _ in group], mode="always")
    assert [r.status for r in results] == ["interrupted"] * len(group)
    again = execute_group(group, plan.data, [RunContext() for _ in group], mode="always")
    assert [r.status for r in again] == ["complete"] * len(group)
    assert all(r.provenance["stacking"]["choice"] == "stacked" for r in again)


def test_a_pool_worker_trains_a_stacked_group_as_one_task(tmp_path: Path) -> None:
    from lineup.study.executors import PoolExecutor

    doc = {**DOC, "models": DOC["models"][:2]}  # one group of six stackable runs
    with Store(tmp_path) as store:
        out = run_study(parse_study(doc), store, executor=PoolExecutor(workers=2, threads=1, stack="always"))
        assert [r.status for _, r in out.trained] == ["complete"] * 6
        assert {r.provenance["stacking"]["choice"] for r in store.runs("stacked")} == {"stacked"}
