"""lineup: train a line-up of classic deep-learning models under one protocol and compare them.

The Python API mirrors the command line (see ``lineup.api``)::

    import lineup
    study = lineup.load_study("examples/quickstart.toml")      # or lineup.make_study(...) in code
    results = lineup.run(study, store="lineup-results")        # lineup run: trains what is missing, writes the report
    df = results.runs()                                         # one row per run (pandas)

Your own parts register with ``lineup.register_model``, ``register_dataset``, ``register_objective`` and
``register_metric``, in your code or in an installed plugin (see ``lineup.plugins``).
"""

__version__ = "0.1.0"

from lineup.analysis.scores import register_metric  # noqa: E402
from lineup.api import Results, make_study, model, open_results, run, variant  # noqa: E402
from lineup.data import DatasetTensors, register_dataset  # noqa: E402
from lineup.models import LineupModel, register_model  # noqa: E402
from lineup.report import build_report  # noqa: E402
from lineup.results import runs_frame, summary_table  # noqa: E402
from lineup.spec import load_study, parse_study  # noqa: E402
from lineup.store import Store  # noqa: E402
from lineup.study import prepare, run_study  # noqa: E402
from lineup.train.objectives import register_objective  # noqa: E402

__all__ = ["DatasetTensors", "LineupModel", "Results", "Store", "build_report", "load_study", "make_study", "model",
           "open_results", "parse_study", "prepare", "register_dataset", "register_metric", "register_model",
           "register_objective", "run", "run_study", "runs_frame", "summary_table", "variant", "__version__"]
