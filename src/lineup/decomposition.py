"""The error-decomposition protocol of a study (its ``[decomposition]`` section): which runs estimate what.

On data whose distribution is known, a model ``h``'s excess risk splits into estimation and approximation error
(``lineup.analysis.risk``). ``R(h)`` is the test risk of each model entry in a *served* data setting; ``R(h_class)``,
the risk of the best classifier the same architecture can represent, is approximated by the same entry trained on
the *reference* setting of that served setting, with the same seeds:

- ``reference = "<setting>"`` (or a list, one per distribution): a setting with a much larger ``n_train`` and
  another ``options.train_seed``, so that its training sample is independent of the served settings' while its test
  sample is theirs (the estimation error is then paired on the same test examples);
- ``reference = "test"``: the entry trained on the test sample itself, as some published studies do; an extra data
  setting (``options.train_on_test``) is added for it, one per distinct test sample. Its test risk is a training
  risk, so ``R(h_class)`` is optimistic and the approximation error can come out below zero.

Served settings with the same reference differ only in their training sample, so where their training sizes differ
they form a learning curve. The section changes no run: the runs it needs are runs of data settings, identified by
their resolved specs as every run is; the section itself is kept only in the study's stored spec, for the report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineup._registry import did_you_mean
from lineup._schema import as_dict, parse_section
from lineup.errors import SpecError
from lineup.spec import DataSection, DecompositionSection, Setting

if TYPE_CHECKING:
    from lineup.data._types import DataBundle

#: ``reference`` value that trains every model on the test sample itself.
ON_TEST = "test"
#: Name of the setting that stands for ``[data]`` when the study has no ``[[settings]]`` but needs one beside it.
BASE = "data"
#: Name of the setting that ``reference = "test"`` adds (numbered when the served settings have several test samples).
ADDED = "train-on-test"

# What may differ between a served setting and its reference: the training sample, nothing of the distribution or
# of the test sample.
_TRAINING_KEYS = ("train_size", "val_fraction", "root", "download")
_TRAINING_OPTIONS = ("n_train", "n_val", "train_seed", "train_on_test")
_KEY = "decomposition"


@dataclass(frozen=True)
class DecompositionPlan:
    """A validated ``[decomposition]`` resolved against the study's data settings.

    Attributes:
        section: the section as written.
        references: served setting -> the setting whose runs give its ``R(h_class)``, in the order of the file.
        added: the settings that ``reference = "test"`` adds to the study (none otherwise).
    """

    section: DecompositionSection
    references: dict[str, str]
    added: list[Setting] = dataclasses.field(default_factory=list)

    @property
    def on_test(self) -> bool:
        return self.section.reference == ON_TEST

    def to_dict(self) -> dict[str, Any]:
        """What the report reads from the stored study spec."""
        return {**as_dict(self.section), "on_test": self.on_test, "references": dict(self.references)}


def sample_key(data: DataSection) -> str:
    """A key equal for two data settings exactly when they draw the same distribution and the same test sample."""
    table = {k: v for k, v in as_dict(data).items() if k not in _TRAINING_KEYS}
    table["options"] = {k: v for k, v in data.options.items() if k not in _TRAINING_OPTIONS}
    return json.dumps(table, sort_keys=True)


def training_seed(data: DataSection) -> int:
    """The seed of the setting's training sample (``options.train_seed``, else ``split_seed``)."""
    seed = data.options.get("train_seed")
    return data.split_seed if seed is None else int(seed)


def parse_decomposition(table: Any, settings: list[Setting], data: DataSection, *,
                        file: str | None = None) -> DecompositionPlan:
    """Validate ``[decomposition]`` against the study's data settings and resolve each served setting's reference.

    Args:
        table: the parsed ``[decomposition]`` table.
        settings: the study's ``[[settings]]`` (empty: ``[data]`` alone, named ``"data"`` if a setting is added).
        data: the study's ``[data]``.
        file: the study file, for messages.

    Raises:
        SpecError: an unknown setting, data without a known distribution, a reference that does not share the
            served settings' distribution and test sample, or one whose training sample is not independent of theirs.
    """
    section = parse_section(DecompositionSection, table, key=_KEY, file=file)
    named = settings or [Setting(name=BASE, data=data)]
    by_name = {st.name: st for st in named}
    refs = [section.reference] if isinstance(section.reference, str) else list(section.reference)
    if not refs:
        raise SpecError('give a reference: the name of a data setting with a much larger n_train, or "test"',
                        file=file, key=f"{_KEY}.reference")
    on_test = ON_TEST in refs
    if on_test and len(refs) > 1:
        raise SpecError('reference = "test" trains on the test sample of every served setting: give it alone, '
                        "not in a list with setting names", file=file, key=f"{_KEY}.reference")
    names = list(by_name) if settings else []
    for ref in refs if not on_test else []:
        if ref not in by_name or not settings:
            hint = did_you_mean(ref, names) if names else ""
            raise SpecError(f"reference {ref!r} is not a data setting.{hint} Add a [[settings]] entry of that name "
                            "that draws a much larger training sample from the same distribution (a larger "
                            'options.n_train and another options.train_seed), or use reference = "test"'
                            + (f". Settings: {', '.join(names)}." if names else "."),
                            file=file, key=f"{_KEY}.reference")
    served_names = section.settings if section.settings is not None else [n for n in by_name if n not in refs]
    for i, name in enumerate(served_names):
        if name not in by_name:
            hint = did_you_mean(name, names) if names else ""
            raise SpecError(f"{name!r} is not a data setting.{hint} Settings: {', '.join(names) or 'none'}.",
                            file=file, key=f"{_KEY}.settings[{i}]")
        if name in refs:
            raise SpecError(f"{name!r} is a reference: a setting cannot be its own reference", file=file,
                            key=f"{_KEY}.settings[{i}]")
    if not served_names:
        raise SpecError("no setting to decompose: every data setting is a reference; add one with a smaller "
                        "training sample", file=file, key=_KEY)
    involved = [*served_names, *(refs if not on_test else [])]
    from lineup.data.synthetic import has_known_distribution, list_datasets

    for name in involved:
        dataset = by_name[name].data.dataset
        if not has_known_distribution(dataset):
            where = f" (setting {name!r})" if settings else ""
            known = ", ".join(n for n in list_datasets() if has_known_distribution(n))
            raise SpecError(f"[decomposition] needs data whose distribution is known (to know its Bayes risk R*), "
                            f"but dataset {dataset!r} has none{where}. Use a synthetic dataset with a known "
                            f"distribution ({known}) or remove [decomposition].", file=file, key=_KEY)

    references: dict[str, str] = {}
    added: list[Setting] = []
    for name in served_names:
        served = by_name[name]
        key = sample_key(served.data)
        if on_test:
            same = [st for st in added if sample_key(st.data) == key]
            if not same:
                added.append(_on_test_setting(served, len(added), file))
                same = added[-1:]
            references[name] = same[0].name
            continue
        matches = [r for r in refs if sample_key(by_name[r].data) == key]
        if len(matches) != 1:
            why = ("none of " + ", ".join(repr(r) for r in refs) + " does") if not matches else \
                f"{', '.join(repr(r) for r in matches)} all do; keep one"
            raise SpecError(f"setting {name!r} needs one reference drawn from the same distribution and tested on the "
                            "same test sample, differing only in n_train, n_val, train_seed, train_size or "
                            f"val_fraction: {why}", file=file, key=f"{_KEY}.reference")
        reference = by_name[matches[0]]
        if reference.data.options.get("train_on_test"):
            raise SpecError(f"reference {reference.name!r} trains on the test sample: write reference = \"test\", "
                            "which adds that setting and says so in the report", file=file, key=f"{_KEY}.reference")
        if training_seed(reference.data) == training_seed(served.data):
            seed = training_seed(served.data)
            raise SpecError(f"reference {reference.name!r} draws its training sample with the same seed as setting "
                            f"{name!r} ({seed}), so that sample is part of the reference's and the two are not "
                            f"independent: give {reference.name!r} another options.train_seed, e.g. "
                            f"options = {{ train_seed = {seed + 1} }}", file=file,
                            key=f"{_KEY}.reference")
        references[name] = reference.name
    taken = [n for n in (st.name for st in named) if n in {st.name for st in added}]
    if taken:
        raise SpecError(f"a setting is named {taken[0]!r}, the name of the setting that reference = \"test\" adds: "
                        "rename it", file=file, key=_KEY)
    for st in added:
        same = [other.name for other in named if other.data == st.data]
        if same:  # the same data twice would be the same runs twice
            raise SpecError(f"setting {same[0]!r} already trains on the test sample, which reference = \"test\" "
                            "adds a setting for: remove it", file=file, key=f"{_KEY}.reference")
    return DecompositionPlan(section=section, references=references, added=added)


def _on_test_setting(served: Setting, number: int, file: str | None) -> Setting:
    """``served`` trained on its own test sample: the reference that ``reference = "test"`` adds."""
    options = {**served.overrides.get("options", {}), "train_on_test": True}
    overrides: dict[str, Any] = {**served.overrides, "options": options}
    table = {**as_dict(served.data), "options": {**served.data.options, "train_on_test": True}}
    if served.data.train_size is not None:  # the whole test sample is trained on
        table["train_size"] = overrides["train_size"] = None
    name = ADDED if number == 0 else f"{ADDED}-{number + 1}"
    return Setting(name=name, data=parse_section(DataSection, table, key=_KEY, file=file), overrides=overrides,
                   description=f"added by [decomposition] reference = \"test\": every model trained on the test sample "
                               f"of {served.name!r} itself, for R(h_class)")


def check_data(plan: DecompositionPlan, datas: Mapping[str, DataBundle], *, file: str | None = None) -> None:
    """Check on the loaded data what the study file can only promise: every served setting and its reference carry
    their distribution and share one test sample.

    Raises:
        SpecError: naming the setting, before anything is stored.
    """
    import torch

    for name, ref in plan.references.items():
        for setting in (name, ref):
            if datas[setting].distribution is None:
                raise SpecError(f"setting {setting!r}: its data carries no known distribution, which "
                                "[decomposition] needs; use a synthetic dataset with a known Bayes risk", file=file,
                                key=_KEY)
        a, b = datas[name].test, datas[ref].test
        if not (a.x.shape == b.x.shape and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)):
            raise SpecError(f"setting {name!r} and its reference {ref!r} draw different test samples; keep "
                            "split_seed, n_test and test_size the same in both", file=file, key=f"{_KEY}.reference")
