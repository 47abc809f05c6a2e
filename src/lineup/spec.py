"""Study files: the schema, validation with clear messages, and expansion into runs.

A study is data settings x models x seeds trained under one protocol. Without ``[[settings]]`` there is one
setting, ``[data]`` itself; with them, each setting is ``[data]`` with some keys overridden (a distortion, a
training-set size), and every model is trained on every setting. Each model entry is either a baseline
(``model = "lenet5"``) or a variant of another entry (``base = "lenet5"``) that overrides some of its
model options or training settings. Expansion resolves every entry against the study's defaults and
gives each run a content hash: the same resolved spec on the same data is the same run, whatever the
study or the entry is called.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineup._schema import as_dict, opt, parse_section
from lineup.errors import SpecError

if TYPE_CHECKING:
    from lineup.decomposition import DecompositionPlan
    from lineup.search.config import SearchPlan

#: Bumped when the meaning of a resolved run spec changes, so old results are not reused by mistake.
RUN_FORMAT = 2

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")


@dataclass(frozen=True)
class StudySection:
    name: str = opt(..., "identifier of the study in the store: letters, digits, '_', '.', '+', '-'")
    title: str = opt("", "one-line title shown at the top of the report")
    description: str = opt("", "what question the study answers, shown in the report")
    seeds: list[int] = opt([0], "seeds: every model is trained once per seed", min=0)
    baseline: str = opt("", "name of the model entry that every other is compared with (default: the first)")
    plugins: list[str] = opt([], "Python modules to import before the study is checked, for the models, datasets, "
                                 "objectives and metrics they register, e.g. [\"mylab.models\"]; searched among "
                                 "the installed packages, then beside the study file")


@dataclass(frozen=True)
class TestSplitSection:
    fraction: float = opt(0.2, "share of the pooled examples held out as the test split, in (0, 0.9]", gt=0.0, max=0.9)
    seed: int = opt(0, "seed of the draw (scikit-learn's train_test_split random_state); vary it across [[settings]] "
                    "to see how much the test split matters", min=0, max=2**32 - 1)


@dataclass(frozen=True)
class DataSection:
    dataset: str = opt(..., "catalog name of the dataset, see `lineup datasets`")
    root: str | None = opt(None, "directory holding the dataset's files (default: the search order of the catalog)")
    classes: list[int] | None = opt(None, "keep only these classes, relabelled 0..k-1 in this order", min=0)
    train_size: int | None = opt(None, "stratified subset of the training split, in examples", gt=0)
    val_fraction: float = opt(0.1, "fraction of the training data held out for validation", gt=0.0, max=0.5)
    test_size: int | None = opt(None, "stratified subset of the test split, in examples", gt=0)
    split_seed: int = opt(0, "seed of the train/validation split (fixed across runs, unlike the run seeds)", min=0)
    download: bool = opt(True, "download missing files from the dataset's mirrors, verified by checksum")
    options: dict[str, Any] = opt({}, "dataset-specific settings, e.g. the parameters of a synthetic dataset")
    distortions: dict[str, Any] = opt({}, "controlled distortions of the data (see `lineup datasets`)")
    test_split: TestSplitSection | None = opt(None, "draw the test split anew: pool the training and test examples "
                                                    "of the kept classes and hold out a stratified fraction "
                                                    "(absent: the dataset's own test split)")


@dataclass(frozen=True)
class EarlyStoppingSection:
    monitor: str = opt("val_loss", "epoch metric to watch, e.g. val_loss, val_acc, train_loss")
    mode: str = opt("auto", "min or max; auto: max for *acc*, min otherwise", choices=("auto", "min", "max"))
    patience: int = opt(3, "epochs without improvement before stopping", min=1)
    min_delta: float = opt(0.0, "smallest change that counts as an improvement", min=0.0)
    restore_best: bool = opt(True, "restore the weights of the best epoch when training ends")


@dataclass(frozen=True)
class AugmentSection:
    hflip: bool = opt(False, "mirror each training image left-right with probability 1/2, anew every step")
    shift: int = opt(0, "move each training image by up to this many pixels on each axis, anew every step "
                        "(the border filled with black)", min=0, max=16)


EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "grad_norm")


@dataclass(frozen=True)
class TrainSection:
    optimizer: str = opt("adam", "optimizer", choices=("adam", "adamw", "sgd", "rmsprop"))
    lr: float = opt(1e-3, "learning rate", gt=0.0)
    momentum: float = opt(0.9, "momentum of sgd and rmsprop", min=0.0, max=1.0)
    weight_decay: float = opt(0.0, "L2 penalty coefficient (0 = none)", min=0.0)
    weight_decay_mode: str = opt(
        "coupled",
        "coupled: lambda*w added to the gradient (classic L2, torch's weight_decay); "
        "decoupled: weights shrunk directly as in AdamW (Loshchilov & Hutter, arXiv:1711.05101)",
        choices=("coupled", "decoupled"),
    )
    batch_size: int = opt(64, "examples per training step", min=1)
    epochs: int = opt(10, "maximum number of passes over the training split", min=1)
    objective: str = opt("auto", "training objective; auto: the model's own (cross_entropy for classifiers)")
    lr_schedule: str = opt("constant", "constant, or cosine: decayed every step from lr to 0 over the epochs",
                           choices=("constant", "cosine"))
    augment: AugmentSection | None = opt(None, "random augmentation of the training batches (absent: none)")
    early_stopping: EarlyStoppingSection | None = opt(None, "stop when a metric stops improving (absent: never)")
    eval_batch_size: int = opt(1024, "examples per evaluation batch (no gradients, so larger is faster)", min=1)
    device: str = opt("auto", "auto (first CUDA device, else CPU), cpu, cuda or cuda:N")
    precision: str = opt("fp32", "fp32, or bf16: training forward passes under bfloat16 autocast (weights, optimiser "
                                 "and evaluation stay fp32); pays on GPUs, is slower on most CPUs",
                         choices=("fp32", "bf16"))
    threads: int = opt(0, "CPU threads for this run (0: torch's default, all cores)", min=0)


@dataclass(frozen=True)
class ProtocolSection:
    refit: bool = opt(
        False,
        "after training with validation, retrain from scratch on train+validation for the epoch count chosen "
        "on validation, and evaluate that model on the test set too (both results are kept)",
    )
    failure_cases: int = opt(16, "most confident test mistakes kept per run for the report", min=0, max=256)


@dataclass(frozen=True)
class DecompositionSection:
    """[decomposition]: split each model's excess risk over the Bayes risk into estimation and approximation error,
    on data whose distribution is known (see lineup.decomposition); it changes no run's hash."""

    reference: str | list[str] = opt(
        ..., "how R(h_class), the best risk of each architecture, is approximated: the name of a data setting that "
             "draws a much larger training sample from the same distribution (larger options.n_train, another "
             "options.train_seed; a list gives one per distribution), or \"test\": train on the test sample itself")
    settings: list[str] | None = opt(
        None, "data settings whose models are decomposed; those with the same reference and different training "
              "sizes form a learning curve (default: every setting but the references)")


@dataclass(frozen=True)
class ModelEntry:
    name: str = opt(..., "label of this entry in the report; unique within the study")
    model: str | None = opt(None, "registered model, see `lineup models` (required unless base is given)")
    base: str | None = opt(None, "name of another entry that this one is a variant of")
    options: dict[str, Any] = opt({}, "model options, overriding the base entry's")
    train: dict[str, Any] = opt({}, "training settings overriding [train] (and the base entry's)")
    init_from: str | None = opt(
        None,
        "name of another entry whose trained weights start this model (its run with the same seed and data "
        "setting), e.g. a U-Net's encoder from a ResNet; the model's load_pretrained decides what is copied")
    description: str = opt("", "what this variant changes, shown in the report")


@dataclass(frozen=True)
class Setting:
    """One data setting of a study: ``[data]`` with the keys of a ``[[settings]]`` entry overridden."""

    name: str
    data: DataSection
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, **self.overrides}


#: Keys of a ``[[settings]]`` entry besides the ``[data]`` keys it overrides.
SETTING_KEYS = {"name": "label of this data setting in the report; unique within the study",
                "description": "what this setting changes, shown in the report"}
#: ``[data]`` keys whose tables a setting merges into (one level deep) instead of replacing.
_MERGED = ("options", "distortions", "test_split")


@dataclass(frozen=True)
class Study:
    """A validated study file."""

    study: StudySection
    data: DataSection
    train: TrainSection
    protocol: ProtocolSection
    models: list[ModelEntry]
    source: str | None = None
    settings: list[Setting] = dataclasses.field(default_factory=list)  # empty: one setting, [data] as written
    decomposition: DecompositionPlan | None = None  # [decomposition], resolved; never part of a run's spec
    search: SearchPlan | None = None  # [search], resolved; never part of a run's spec (lineup.search)

    @property
    def data_settings(self) -> list[Setting]:
        """Every data setting, in the order of the file; ``[data]`` alone (named "") when there are none. Settings
        that ``[decomposition]`` adds come last (``[data]`` is then named "data")."""
        added = self.decomposition.added if self.decomposition is not None else []
        if not added:
            return self.settings or [Setting(name="", data=self.data)]
        from lineup.decomposition import BASE

        return [*(self.settings or [Setting(name=BASE, data=self.data)]), *added]

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def baseline(self) -> str:
        return self.study.baseline or self.models[0].name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: as_dict(getattr(self, k)) for k in ("study", "data", "train", "protocol")}
        d["models"] = [as_dict(m) for m in self.models]
        if self.settings or len(self.data_settings) > 1:
            d["settings"] = [st.to_dict() for st in self.data_settings]
        if self.decomposition is not None:
            d["decomposition"] = self.decomposition.to_dict()
        if self.search is not None:
            d["search"] = self.search.to_dict()
        return d


@dataclass(frozen=True)
class RunSpec:
    """One run: a resolved model and training configuration on one dataset with one seed.

    ``spec`` is plain JSON data; ``hash`` identifies the run in the store (with the data version).
    """

    study: str
    label: str
    seed: int
    spec: dict[str, Any]
    hash: str
    setting: str = ""  # the data setting's name; not part of the hash (the resolved data section is)

    @property
    def short(self) -> str:
        return self.hash[:12]


_SECTIONS = {"study": StudySection, "data": DataSection, "train": TrainSection, "protocol": ProtocolSection}


def load_study(path: str | Path) -> Study:
    """Read and validate a study file.

    Raises:
        SpecError: on a syntax error, unknown key, wrong type or inconsistent entries; names file and key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read the study file: {e.strerror}", file=str(path)) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"TOML syntax error: {e}. Fix the file's syntax (see https://toml.io).",
                        file=str(path)) from None
    return parse_study(doc, file=str(path))


def parse_study(doc: dict[str, Any], *, file: str | None = None) -> Study:
    """Validate a parsed study document (see ``load_study``)."""
    allowed = [*_SECTIONS, "models", "settings", "decomposition", "search"]
    for k in doc:
        if k not in allowed:
            from lineup._registry import did_you_mean

            raise SpecError(
                f"unknown section {k!r}.{did_you_mean(k, allowed)} Allowed sections: {', '.join(allowed)}.",
                file=file,
                key=k,
            )
    for required in ("study", "data", "models"):
        if required not in doc:
            raise SpecError(f"missing section [{required}]" if required != "models" else
                            "no models: add at least one [[models]] entry with a name and a model",
                            file=file, key=required)
    sections = {k: parse_section(cls, doc.get(k, {}), key=k, file=file) for k, cls in _SECTIONS.items()}
    if sections["study"].plugins:  # imported now, so that the names the rest of the file uses exist
        from lineup.plugins import import_plugins

        import_plugins(sections["study"].plugins, folder=Path(file).parent if file else None, file=file)
    if not isinstance(doc["models"], list):
        raise SpecError("expected an array of tables: write each entry as [[models]]", file=file, key="models")
    if not doc["models"]:
        raise SpecError("no models: add at least one [[models]] entry with a name and a model", file=file,
                        key="models")
    models = [parse_section(ModelEntry, m, key=f"models[{i}]", file=file) for i, m in enumerate(doc["models"])]
    settings = _parse_settings(doc.get("settings"), doc.get("data", {}), file)
    decomposition = None
    if "decomposition" in doc:
        from lineup.decomposition import parse_decomposition

        decomposition = parse_decomposition(doc["decomposition"], settings, sections["data"], file=file)
    study = Study(models=models, source=file, settings=settings, decomposition=decomposition,
                  **sections)  # type: ignore[arg-type]
    _check_entries(study, file)
    if "search" in doc:
        from lineup.search.config import parse_search

        study = dataclasses.replace(study, search=parse_search(doc["search"], study, file=file))
    return study


def _parse_settings(entries: Any, data: dict[str, Any], file: str | None) -> list[Setting]:
    if entries is None:
        return []
    if not isinstance(entries, list) or not entries:
        raise SpecError("expected an array of tables: write each data setting as [[settings]] with a name and "
                        "the [data] keys it changes", file=file, key="settings")
    settings: list[Setting] = []
    for i, entry in enumerate(entries):
        key = f"settings[{i}]"
        if not isinstance(entry, dict):
            raise SpecError("expected a table with a name and the [data] keys it changes", file=file, key=key)
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError("each setting needs a name of letters, digits, '_', '.', '+', '-', e.g. "
                            'name = "label-noise-0.2"', file=file, key=f"{key}.name")
        if name in [st.name for st in settings]:
            raise SpecError(f"duplicate setting name {name!r}: each setting needs its own name", file=file,
                            key=f"{key}.name")
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise SpecError("expected a string", file=file, key=f"{key}.description")
        overrides = {k: v for k, v in entry.items() if k not in SETTING_KEYS}
        merged = dict(data)
        for k, v in overrides.items():
            if k in _MERGED and isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k] = {**merged[k], **v}
            else:
                merged[k] = v
        section = parse_section(DataSection, merged, key=key, file=file)  # [data] itself was checked before
        same = [st.name for st in settings if st.data == section]
        if same:
            raise SpecError(f"setting {name!r} gives the same data as setting {same[0]!r}: change a [data] key "
                            "in one of them or remove it", file=file, key=key)
        settings.append(Setting(name=name, data=section, overrides=overrides, description=description))
    return settings


def _check_entries(study: Study, file: str | None) -> None:
    if not _NAME.match(study.study.name):
        raise SpecError(
            f"{study.study.name!r} is not a valid study name: use letters, digits, '_', '.', '+', '-' "
            "(at most 80, starting with a letter or digit)", file=file, key="study.name")
    if len(set(study.study.seeds)) != len(study.study.seeds):
        raise SpecError(f"duplicate seeds in {study.study.seeds}", file=file, key="study.seeds")
    if not study.study.seeds:
        raise SpecError("no seeds: give at least one, e.g. seeds = [0]", file=file, key="study.seeds")
    names = [m.name for m in study.models]
    for i, m in enumerate(study.models):
        key = f"models[{i}]"
        if m.name in names[:i]:
            raise SpecError(f"duplicate model name {m.name!r}: each entry needs its own name", file=file,
                            key=f"{key}.name")
        if not m.name.strip():
            raise SpecError("empty model name", file=file, key=f"{key}.name")
        if m.model is None and m.base is None:
            raise SpecError("give either model = \"<registered model>\" or base = \"<another entry>\"",
                            file=file, key=key)
        if m.base is not None and m.base not in names:
            from lineup._registry import did_you_mean

            raise SpecError(f"base {m.base!r} is not the name of any entry.{did_you_mean(m.base, names)} "
                            f"Entries: {', '.join(names)}.", file=file, key=f"{key}.base")
        if m.base == m.name:
            raise SpecError("an entry cannot be a variant of itself", file=file, key=f"{key}.base")
        for k in m.train:
            if k not in {f.name for f in dataclasses.fields(TrainSection)}:
                parse_section(TrainSection, {k: m.train[k]}, key=f"{key}.train", file=file)
    for i, _ in enumerate(study.models):
        source = resolve_init(study, i)
        if source is None:
            continue
        key = f"models[{i}].init_from"
        if source not in names:
            from lineup._registry import did_you_mean

            raise SpecError(f"init_from {source!r} is not the name of any entry.{did_you_mean(source, names)} "
                            f"Entries: {', '.join(names)}.", file=file, key=key)
        if source == study.models[i].name:
            raise SpecError("an entry cannot start from its own weights", file=file, key=key)
        if resolve_init(study, names.index(source)) is not None:
            raise SpecError(f"init_from {source!r}: that entry starts from another entry's weights itself; start "
                            "from an entry trained from scratch", file=file, key=key)
    if study.study.baseline and study.study.baseline not in names:
        raise SpecError(f"baseline {study.study.baseline!r} is not the name of any entry. Entries: "
                        f"{', '.join(names)}.", file=file, key="study.baseline")
    for i, _ in enumerate(study.models):
        resolve_entry(study, i)


def resolve_entry(study: Study, index: int) -> tuple[str, dict[str, Any], TrainSection]:
    """The registered model name, options and training settings of entry ``index``, bases applied."""
    file = study.source
    chain: list[ModelEntry] = []
    by_name = {m.name: m for m in study.models}
    entry: ModelEntry | None = study.models[index]
    while entry is not None:
        if entry in chain:
            cycle = " -> ".join(e.name for e in [*chain, entry])
            raise SpecError(f"variants form a cycle: {cycle}", file=file, key=f"models[{index}].base")
        chain.append(entry)
        entry = by_name[entry.base] if entry.base else None
    arch = None
    options: dict[str, Any] = {}
    train = as_dict(study.train)
    for e in reversed(chain):  # the root first, then each variant's overrides
        arch = e.model or arch
        options.update(e.options)
        for k, v in e.train.items():
            if k == "early_stopping" and isinstance(v, dict) and isinstance(train.get(k), dict):
                train[k] = {**train[k], **v}
            else:
                train[k] = v
    train_section = parse_section(TrainSection, train, key=f"models[{index}].train", file=file)
    assert arch is not None  # guaranteed by _check_entries: the root of a chain names a model
    return arch, options, train_section


def resolve_init(study: Study, index: int) -> str | None:
    """The ``init_from`` of entry ``index``, inherited from its base entries when it gives none."""
    by_name = {m.name: m for m in study.models}
    entry: ModelEntry | None = study.models[index]
    seen = 0
    while entry is not None and seen <= len(study.models):
        if entry.init_from is not None:
            return entry.init_from
        entry, seen = by_name.get(entry.base) if entry.base else None, seen + 1
    return None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _explicit(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the settings that equal their field's default, so that a setting added to a section
    later, with a default that keeps the old behaviour, does not change the hash of runs stored before it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for k, v in values.items():
        f = fields.get(k)
        if f is None:  # not a field of this section: keep it, whatever it is
            out[k] = v
            continue
        if k == "early_stopping" and isinstance(v, dict):
            v = _explicit(EarlyStoppingSection, v)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if v != default:
            out[k] = v
    return out


def run_hash(spec: dict[str, Any]) -> str:
    """The identity of a run: its resolved spec, less what cannot change its result (where the data files were
    found, whether they may be downloaded; the data version covers their content) and less default settings."""
    data = {k: v for k, v in spec["data"].items() if k not in ("root", "download")}
    hashed = {**spec, "data": _explicit(DataSection, data), "train": _explicit(TrainSection, spec["train"]),
              "protocol": _explicit(ProtocolSection, spec["protocol"])}
    return _digest(hashed)


def expand(study: Study, *, data_version: str | dict[str, str]) -> list[RunSpec]:
    """Every run of the study: one per data setting, model entry and seed, in the order of the file.

    Args:
        data_version: identifies the loaded data (files and derivation); part of every hash. One per setting
            name when the study has several settings.
    """
    runs = []
    for setting in study.data_settings:
        version = data_version if isinstance(data_version, str) else data_version[setting.name]
        runs += _expand_setting(study, setting, version)
    return runs


def _expand_setting(study: Study, setting: Setting, data_version: str) -> list[RunSpec]:
    by_key: dict[tuple[str, int], RunSpec] = {}
    # Entries trained from scratch first: a run that starts from another's weights names that run's hash.
    order = sorted(range(len(study.models)), key=lambda i: resolve_init(study, i) is not None)
    for i in order:
        entry = study.models[i]
        arch, options, train = resolve_entry(study, i)
        source = resolve_init(study, i)
        for seed in study.study.seeds:
            spec = {
                "format": RUN_FORMAT,
                "data": as_dict(setting.data),
                "data_version": data_version,
                "model": {"name": arch, "options": options},
                "train": as_dict(train),
                "protocol": as_dict(study.protocol),
                "seed": seed,
            }
            if source is not None:
                spec["init"] = {"run": by_key[(source, seed)].hash}
            by_key[(entry.name, seed)] = RunSpec(study=study.name, label=entry.name, seed=seed, spec=spec,
                                                 hash=run_hash(spec), setting=setting.name)
    return [by_key[(entry.name, seed)] for entry in study.models for seed in study.study.seeds]
