"""lineup: train a line-up of classic deep-learning models under one protocol and compare them.

The Python API mirrors the command line::

    import lineup
    study = lineup.load_study("examples/quickstart.toml")
    with lineup.Store("lineup-results") as store:
        lineup.run_study(study, store)
        lineup.build_report(store, study.name)
        df = lineup.runs_frame(store, study.name)
"""

__version__ = "0.1.0"

from lineup.report import build_report  # noqa: E402
from lineup.results import runs_frame, summary_table  # noqa: E402
from lineup.spec import load_study, parse_study  # noqa: E402
from lineup.store import Store  # noqa: E402
from lineup.study import prepare, run_study  # noqa: E402

__all__ = ["Store", "build_report", "load_study", "parse_study", "prepare", "run_study", "runs_frame",
           "summary_table", "__version__"]
