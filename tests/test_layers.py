"""Intermediate layers: what each model family declares, what the hooks record, how the store keeps it, and the
report's layer-by-layer CKA on a study trained on real digits."""

from __future__ import annotations

import doctest
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lineup import Store, load_study, run_study
from lineup.analysis.representations import linear_cka
from lineup.models import LineupModel, capture, create_model
from lineup.models.capture import record_representations
from lineup.report import build_report
from lineup.report.collect import collect
from lineup.report.evidence import gather
from lineup.store import FEATURES, SCHEMA_VERSION

# (model, input shape, options, declared layers, whether the last layer's channel means are forward_features)
FAMILIES = [
    ("lenet5", (1, 28, 28), {}, ["conv1", "conv2", "fc1", "fc2"], True),
    ("lenet5", (1, 28, 28), {"fc": ()}, ["conv1", "conv2"], False),
    ("mlp", (1, 8, 8), {"hidden": (16, 12, 8)}, ["fc1", "fc2", "fc3"], True),
    ("mlp", (1, 8, 8), {"hidden": (16,), "batch_norm": True, "dropout": 0.5}, ["fc1"], True),
    ("vgg11", (3, 16, 16), {"width": 0.125}, ["stage1", "stage2", "stage3", "stage4", "stage5"], True),
    ("resnet18", (3, 16, 16), {"width": 0.125}, ["stem", "layer1", "layer2", "layer3", "layer4"], True),
    ("resnet9", (3, 16, 16), {"width": 0.125}, ["prep", "layer1", "layer2", "layer3"], False),
    ("unet", (1, 12, 12), {"depth": 2, "width": 0.125}, ["enc0", "enc1", "enc2", "dec1", "dec0"], True),
    ("softmax_regression", (1, 8, 8), {}, [], False),
]


@pytest.mark.parametrize(("name", "shape", "options", "expected", "last_is_features"), FAMILIES,
                         ids=[f"{f[0]}-{i}" for i, f in enumerate(FAMILIES)])
def test_every_family_declares_its_layers_and_each_is_recorded_once(
        name: str, shape: tuple[int, int, int], options: dict[str, object], expected: list[str],
        last_is_features: bool) -> None:
    torch.manual_seed(0)
    model = create_model(name, shape, 10, **options)
    x = torch.randn(7, *shape)
    features, layers = record_representations(model, [x[:4], x[4:]])  # two batches, concatenated in order
    assert model.training  # the training mode is restored
    assert not any(m._forward_hooks for m in model.modules())  # and the hooks removed
    assert list(layers) == expected
    with torch.no_grad():
        model.eval()
        np.testing.assert_allclose(features, model.forward_features(x).numpy(), rtol=1e-5, atol=1e-6)
    for layer, values in layers.items():
        assert values.shape[0] == 7 and values.dtype == np.float32, layer
    if last_is_features:
        np.testing.assert_allclose(layers[expected[-1]], features, rtol=1e-5, atol=1e-5)
    if name == "resnet9":  # features are layer3's maximum over positions, which is at least its mean
        assert np.all(features >= layers["layer3"] - 1e-5)


def test_recorded_values_are_channel_means_of_the_named_modules() -> None:
    """Recomputed by hand: LeNet's conv2 block and U-Net's encoder levels, averaged over height and width."""
    torch.manual_seed(1)
    x = torch.randn(5, 1, 28, 28)
    lenet = create_model("lenet5", (1, 28, 28), 10).eval()
    _, layers = record_representations(lenet, [x])
    names = [n for n, _ in lenet.features.named_children()]
    with torch.no_grad():
        conv2 = lenet.features[: names.index("pool2") + 1](x)  # (5, 16, 5, 5)
        fc1 = lenet.features[: names.index("fc1_act") + 1](x)  # (5, 120)
    assert conv2.shape == (5, 16, 5, 5)
    np.testing.assert_allclose(layers["conv2"], conv2.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers["fc1"], fc1.numpy(), rtol=1e-5, atol=1e-6)

    unet = create_model("unet", (1, 12, 12), 3, depth=2, width=0.125).eval()
    _, layers = record_representations(unet, [x[:, :, :12, :12]])
    with torch.no_grad():
        enc0 = unet.encoder[0](x[:, :, :12, :12])
        enc1 = unet.encoder[1](unet.pool(enc0))
    np.testing.assert_allclose(layers["enc0"], enc0.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers["enc1"], enc1.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    assert layers["enc2"].shape == (5, unet.encoder[2].conv2.out_channels)


class _Custom(LineupModel):
    """A user model that opts in: its hidden layer is declared by overriding ``representation_layers``."""

    def __init__(self, declare: str = "hidden") -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
        self.stranger = nn.ReLU()  # a submodule forward_features never calls
        self.head = nn.Linear(3, 2)
        self.feature_dim = 3
        self.declare = declare

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return self.body[2](out) if self.declare == "twice" else out  # "twice" runs the Tanh a second time

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        if self.declare == "outside":
            return {"outside": nn.ReLU()}
        if self.declare == "stranger":
            return {"stranger": self.stranger}
        return {"hidden": self.body[2]}


def test_a_user_model_opts_in_and_bad_declarations_fail_clearly() -> None:
    x = torch.randn(3, 1, 2, 2)
    model = _Custom()
    _, layers = record_representations(model, [x])
    with torch.no_grad():
        np.testing.assert_allclose(layers["hidden"], model.body[:3](x).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="'outside' is not a submodule"):
        record_representations(_Custom("outside"), [x])
    with pytest.raises(ValueError, match="'stranger' of _Custom ran 0 times"):
        record_representations(_Custom("stranger"), [x])
    twice = _Custom("twice")
    with pytest.raises(ValueError, match="'hidden' of _Custom ran 2 times"):
        record_representations(twice, [x])
    assert twice.training and not twice.body[2]._forward_hooks  # cleaned up after the failure too


def test_docstring_examples() -> None:
    assert doctest.testmod(capture).failed == 0


# -- the store ---------------------------------------------------------------------------------------------------

def test_a_schema_3_store_opens_with_its_embeddings_and_takes_layers(tmp_path: Path) -> None:
    """A store written before layers were kept: its forward_features stay readable, new runs add layers."""
    from lineup.study import RunResult

    old, new = "a1" * 32, "b2" * 32
    idx, feats = np.arange(10, 15), np.arange(15, dtype=np.float32).reshape(5, 3)
    with Store(tmp_path) as store:
        store.register_study("s", {"study": {"name": "s"}}, None,
                             [(old, "m", 0, "mlp", {}, ""), (new, "m", 1, "mlp", {}, "")])
        store.save_result(old, RunResult(status="complete", embeddings={"test": (idx, feats)}))
    db = sqlite3.connect(tmp_path / "lineup.sqlite")  # back to the embeddings table of schema 3
    db.executescript("""
        ALTER TABLE embeddings RENAME TO embeddings_now;
        CREATE TABLE embeddings (run TEXT NOT NULL, split TEXT NOT NULL, n INTEGER NOT NULL, d INTEGER NOT NULL,
            idx BLOB NOT NULL, features BLOB NOT NULL, PRIMARY KEY (run, split));
        INSERT INTO embeddings SELECT run, split, n, d, idx, features FROM embeddings_now;
        DROP TABLE embeddings_now;
        UPDATE meta SET value='3' WHERE key='schema';""")
    db.close()
    with Store(tmp_path) as store:
        got = store.embeddings(old)
        assert got is not None
        np.testing.assert_array_equal(got[0], idx)
        np.testing.assert_array_equal(got[1], feats)
        assert store.layer_embeddings(old) == {}
        assert store._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
        layers = {"b": np.ones((5, 2)), "a": np.zeros((5, 4))}  # declared order, not alphabetical
        store.save_result(new, RunResult(status="complete", embeddings={"test": (idx, 2 * feats)},
                                         layers={"test": layers}))
        kept = store.layer_embeddings(new)
        assert list(kept) == ["b", "a"] and kept["a"][1].shape == (5, 4)
        np.testing.assert_array_equal(kept["b"][0], idx)
        np.testing.assert_array_equal(store.embeddings(new, layer="b")[1], np.ones((5, 2)))  # type: ignore[index]
        np.testing.assert_array_equal(store.embeddings(new)[1], 2 * feats)  # type: ignore[index]
        assert store.embeddings(new, layer="missing") is None


# -- trained end to end --------------------------------------------------------------------------------------------

STUDY = """
[study]
name = "layers"
seeds = [0, 1]

[data]
dataset = "digits"
train_size = 600

[train]
epochs = 2
batch_size = 32

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "lenet"
model = "lenet5"
options = { kernel_size = 3, channels = [4, 8], fc = [16, 12] }

[[models]]
name = "mlp"
model = "mlp"
options = { hidden = [24, 12] }
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("layers")
    (root / "layers.toml").write_text(STUDY)
    with Store(root / "results") as store:
        run_study(load_study(root / "layers.toml"), store, progress=False)
        yield store


def test_runs_store_their_layers_on_the_embedded_examples(trained: Store) -> None:
    by_label = {(r.label, r.seed): r for r in trained.runs("layers")}
    assert all(r.status == "complete" for r in by_label.values())
    assert trained.layer_embeddings(by_label["softmax", 0].hash) == {}
    for label, widths in (("lenet", {"conv1": 4, "conv2": 8, "fc1": 16, "fc2": 12}),
                          ("mlp", {"fc1": 24, "fc2": 12})):
        for seed in (0, 1):
            h = by_label[label, seed].hash
            layers = trained.layer_embeddings(h)
            assert {name: v.shape[1] for name, (_, v) in layers.items()} == widths  # in depth order
            index, features = trained.embeddings(h)  # type: ignore[misc]
            for name, (idx, values) in layers.items():
                np.testing.assert_array_equal(idx, index)
                assert np.isfinite(values).all() and values.std() > 0, name
            np.testing.assert_array_equal(layers["fc2"][1], features)  # the last hidden layer is the features


def test_report_compares_layers_across_seeds_and_models(trained: Store, tmp_path: Path) -> None:
    ev = gather(collect(trained, "layers"))
    assert set(ev.layer_stability) == {"lenet", "mlp"}  # softmax regression declares no layer
    runs = {(r.label, r.seed): r.hash for r in trained.runs("layers")}

    def layer(label: str, seed: int, name: str) -> np.ndarray:
        idx, values = trained.layer_embeddings(runs[label, seed])[name]
        return values[np.argsort(idx)]

    lenet = {e.layer: e for e in ev.layer_stability["lenet"]}
    assert [(e.layer, e.depth) for e in ev.layer_stability["lenet"]] == [
        ("conv1", 0.25), ("conv2", 0.5), ("fc1", 0.75), ("fc2", 1.0)]
    for name, e in lenet.items():
        assert e.pairs == 1 and e.mean == pytest.approx(linear_cka(layer("lenet", 0, name), layer("lenet", 1, name)))
        assert 0 < e.mean < 1 and e.low == e.high == e.mean
    # at depth 0.5: lenet's conv2 (2nd of 4) and mlp's fc1 (1st of 2), seeds paired with themselves
    chosen, models, cka, pairs = ev.layer_cka[0.5]
    assert chosen == {"lenet": "conv2", "mlp": "fc1"} and models == ["lenet", "mlp"]
    expected = np.mean([linear_cka(layer("lenet", s, "conv2"), layer("mlp", s, "fc1")) for s in (0, 1)])
    assert cka[0, 1] == pytest.approx(expected) and pairs[0, 1] == 2
    assert cka[1, 1] == pytest.approx(ev.layer_stability["mlp"][0].mean)  # the diagonal: that layer across seeds
    assert ev.layer_cka[0.25][0] == {"lenet": "conv1", "mlp": "fc1"}
    assert ev.layer_cka[0.75][0] == {"lenet": "fc1", "mlp": "fc1"}  # mlp: fc1 (0.5) and fc2 (1.0) tie

    html = build_report(trained, "layers", tmp_path / "report").read_text(encoding="utf-8")
    for anchor in ('id="representations"', 'id="layers"', 'id="layers-across-models"', 'id="figure-cka"',
                   'id="figure-layer_stability"', 'id="figure-cka_depth_25"', 'id="figure-cka_depth_50"',
                   'id="figure-cka_depth_75"', "averaged over height and width"):
        assert anchor in html, anchor
    tables = tmp_path / "report" / "tables"
    rows = (tables / "layer_stability.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "model,layer,relative depth,width,CKA across seeds,min,max,seed pairs"
    assert rows[1].startswith("lenet,conv1,0.25,4,") and len(rows) == 1 + 4 + 2
    assert (tables / "layers_at_depth.csv").read_text(encoding="utf-8").splitlines()[1:] == [
        "lenet,conv1,conv2,fc1", "mlp,fc1,fc1,fc1"]


def test_features_name_is_reserved() -> None:
    """A model that declares a layer under forward_features' stored name fails its run with a clear message."""
    from lineup.data._types import DataBundle, Normalization, Split
    from lineup.study.worker import _features

    class Clash(_Custom):
        def representation_layers(self) -> dict[str, nn.Module]:
            return {FEATURES: self.body[2]}

    split = Split(x=torch.zeros(3, 1, 2, 2, dtype=torch.uint8), y=torch.zeros(3, dtype=torch.int64),
                  index=torch.arange(3))
    data = DataBundle(name="tiny", train=split, val=split, test=split, classes=["a", "b"], input_shape=(1, 2, 2),
                      normalization=Normalization(mean=(0.0,), std=(1.0,)), version="v")
    with pytest.raises(ValueError, match="rename that layer"):
        _features(Clash(), data, torch.arange(3), torch.device("cpu"), 2)
