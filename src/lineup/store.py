"""The results store: one SQLite database (WAL) plus an artifact folder, written by one process.

Tables:
    studies     name, the validated study as JSON, its source file, timestamps.
    runs        one row per run hash: resolved spec, status, seed, provenance, final metrics.
    study_runs  which runs belong to which study, under which model label and role (a run may serve several studies,
                and several roles: see ROLES).
    epochs      per-epoch metrics (long format: run, epoch, name, value).
    steps       the training loss of every step.
    predictions per run and split: example indices, true labels and class probabilities (arrays as blobs).
    embeddings  per run, split and layer: ``forward_features`` (layer ``forward_features``) and the channel means of
                each layer the model declares (``representation_layers``) on a fixed subset of examples, for
                representation analyses; ``position`` orders a run's layers from the input side.
    failures    per run: the most confident test mistakes, with their images (uint8 blobs).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lineup.errors import LineupError

SCHEMA_VERSION = 5

#: Run states. ``pending`` runs are known but not started; ``running`` ones are held by a live process (its lease);
#: ``interrupted`` ones were stopped by a signal and resume from their checkpoint.
#: ``pruned`` runs are search trials that the pruner stopped early, on their validation metric (lineup.search).
STATUSES = ("pending", "running", "complete", "diverged", "failed", "interrupted", "pruned")
FINISHED = ("complete", "diverged", "pruned")
#: What a run is to a study (``study_runs.role``): one of its runs as written (``run``), a trial of a model's
#: hyper-parameter search (``trial``), or a final run of a tuned model, its best configuration over the study's seeds
#: (``tuned``). One run may have several roles, even in one study.
ROLES = ("run", "trial", "tuned")

#: Seconds a process's claim on a run lasts unless renewed; a dead process's runs are free again after this
#: (at once on the same machine, where the owner's process id can be checked).
LEASE_SECONDS = 120.0

#: The ``embeddings`` layer that holds a run's ``forward_features``; its position is after every declared layer.
FEATURES = "forward_features"

_EMBEDDINGS = """CREATE TABLE IF NOT EXISTS embeddings (
    run TEXT NOT NULL, split TEXT NOT NULL, layer TEXT NOT NULL, position INTEGER NOT NULL, n INTEGER NOT NULL,
    d INTEGER NOT NULL, idx BLOB NOT NULL, features BLOB NOT NULL, PRIMARY KEY (run, split, layer))"""

_STUDY_RUNS = """CREATE TABLE IF NOT EXISTS study_runs (
    study TEXT NOT NULL REFERENCES studies(name), run TEXT NOT NULL REFERENCES runs(hash),
    label TEXT NOT NULL, position INTEGER NOT NULL, setting TEXT NOT NULL DEFAULT '', role TEXT NOT NULL DEFAULT 'run',
    PRIMARY KEY (study, run, role, label))"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, source TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY, spec TEXT NOT NULL, status TEXT NOT NULL, seed INTEGER NOT NULL,
    model TEXT NOT NULL, device TEXT, provenance TEXT, summary TEXT, error TEXT,
    started REAL, finished REAL, wall_time REAL, owner TEXT, lease_until REAL);
{_STUDY_RUNS};
CREATE TABLE IF NOT EXISTS epochs (
    run TEXT NOT NULL, phase TEXT NOT NULL, epoch INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run, phase, epoch, name));
CREATE TABLE IF NOT EXISTS steps (
    run TEXT NOT NULL, phase TEXT NOT NULL, step INTEGER NOT NULL, loss REAL,
    PRIMARY KEY (run, phase, step));
CREATE TABLE IF NOT EXISTS predictions (
    run TEXT NOT NULL, split TEXT NOT NULL, n INTEGER NOT NULL, k INTEGER NOT NULL,
    idx BLOB NOT NULL, y BLOB NOT NULL, probs BLOB NOT NULL, PRIMARY KEY (run, split));
{_EMBEDDINGS};
CREATE TABLE IF NOT EXISTS failures (
    run TEXT NOT NULL, rank INTEGER NOT NULL, idx INTEGER NOT NULL, y INTEGER NOT NULL, pred INTEGER NOT NULL,
    confidence REAL NOT NULL, shape TEXT NOT NULL, image BLOB NOT NULL, PRIMARY KEY (run, rank));
"""

#: Statements that upgrade a store from schema version N to N + 1.
_MIGRATIONS = {
    1: ("ALTER TABLE runs ADD COLUMN owner TEXT", "ALTER TABLE runs ADD COLUMN lease_until REAL"),  # run leases
    2: ("ALTER TABLE study_runs ADD COLUMN setting TEXT NOT NULL DEFAULT ''",),  # data settings of a study
    # Embeddings of declared layers beside forward_features: a new primary key, so the table is rebuilt.
    3: ("ALTER TABLE embeddings RENAME TO embeddings_v3", _EMBEDDINGS,
        "INSERT INTO embeddings (run, split, layer, position, n, d, idx, features) "
        f"SELECT run, split, '{FEATURES}', 0, n, d, idx, features FROM embeddings_v3",
        "DROP TABLE embeddings_v3"),
    # Search trials and tuned runs beside a study's runs: a role, and a primary key that lets one run have several.
    4: ("ALTER TABLE study_runs RENAME TO study_runs_v4", _STUDY_RUNS,
        "INSERT INTO study_runs (study, run, label, position, setting, role) "
        "SELECT study, run, label, position, setting, 'run' FROM study_runs_v4",
        "DROP TABLE study_runs_v4"),
}


@dataclass(frozen=True)
class RunRecord:
    """A stored run as plain data."""

    hash: str
    label: str
    seed: int
    model: str
    status: str
    spec: dict[str, Any]
    summary: dict[str, Any]
    provenance: dict[str, Any]
    device: str | None
    error: str | None
    wall_time: float | None
    setting: str = ""  # the study's data setting this run belongs to ("" when the study has one)
    role: str = "run"  # what the run is to the study: see ROLES


@dataclass(frozen=True)
class Predictions:
    index: np.ndarray  # (N,) int64
    y: np.ndarray  # (N,) int64
    probs: np.ndarray  # (N, K) float32

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@dataclass(frozen=True)
class Failure:
    index: int
    y: int
    pred: int
    confidence: float
    image: np.ndarray  # (C, H, W) uint8


def owner_id() -> str:
    """This process's identity in run leases: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None) -> bool:
    """Whether ``owner`` may still be running: always true for another machine's process (its lease decides)."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class Store:
    """Open (creating if needed) the store in directory ``root``.

    Args:
        root: directory of ``lineup.sqlite`` and the ``artifacts/`` folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "lineup.sqlite"
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        found = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        while found is not None and int(found[0]) in _MIGRATIONS:  # older stores are upgraded in place
            version = int(found[0])
            with self._tx() as db:
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(version + 1),))
            found = (str(version + 1),)
        if found is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(found[0]) != SCHEMA_VERSION:
            raise LineupError(f"{self.path} has store schema {found[0]}; this lineup reads {SCHEMA_VERSION}. "
                              "Use a lineup version that matches, or a new --store directory.")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def artifact_dir(self, run_hash: str) -> Path:
        """The run's artifact folder, derived from its hash alone so no name can escape the store."""
        if not all(c in "0123456789abcdef" for c in run_hash):
            raise ValueError(f"not a run hash: {run_hash!r}")
        return self.root / "artifacts" / run_hash[:2] / run_hash

    # -- writes ------------------------------------------------------------------------------------

    def register_study(self, name: str, spec: dict[str, Any], source: str | None,
                       runs: list[tuple[str, str, int, str, dict[str, Any], str]]) -> None:
        """Record a study and its runs (``hash, label, seed, model, spec, setting``); known runs are kept as they
        are."""
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO studies VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "spec=excluded.spec, source=excluded.source, updated=excluded.updated",
                       (name, json.dumps(spec), source, now, now))
            db.execute("DELETE FROM study_runs WHERE study = ?", (name,))
            for pos, (h, label, seed, model, run_spec, setting) in enumerate(runs):
                db.execute("INSERT OR IGNORE INTO runs (hash, spec, status, seed, model) "
                           "VALUES (?, ?, 'pending', ?, ?)",
                           (h, json.dumps(run_spec, sort_keys=True), seed, model))
                db.execute("INSERT INTO study_runs (study, run, label, position, setting) VALUES (?, ?, ?, ?, ?)",
                           (name, h, label, pos, setting))

    def add_study_runs(self, name: str, runs: list[tuple[str, str, int, str, dict[str, Any], str]], *,
                       role: str) -> None:
        """Add runs (``hash, label, seed, model, spec, setting``) to a registered study under ``role`` (see ``ROLES``),
        after its other runs; runs and roles it already has are kept as they are."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        with self._tx() as db:
            (top,) = db.execute("SELECT COALESCE(MAX(position), -1) FROM study_runs WHERE study=?", (name,)).fetchone()
            for pos, (h, label, seed, model, run_spec, setting) in enumerate(runs, start=top + 1):
                db.execute("INSERT OR IGNORE INTO runs (hash, spec, status, seed, model) "
                           "VALUES (?, ?, 'pending', ?, ?)",
                           (h, json.dumps(run_spec, sort_keys=True), seed, model))
                db.execute("INSERT OR IGNORE INTO study_runs (study, run, label, position, setting, role) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (name, h, label, pos, setting, role))

    def claim(self, run_hash: str, owner: str, *, retry: tuple[str, ...] = ("pending", "failed", "interrupted"),
              lease_s: float = LEASE_SECONDS) -> bool:
        """Atomically take run ``run_hash`` for ``owner`` (``host:pid``); ``False`` if another live process has it.

        A run can be taken when its status is in ``retry``, or when it is ``running`` under a lease that has
        expired or whose owner is a process of this machine that no longer exists.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT status, owner, lease_until FROM runs WHERE hash=?", (run_hash,)).fetchone()
            if row is None:
                return False
            status, holder, until = row
            free = status in retry or (status == "running" and (until is None or until < now or not _alive(holder)))
            if not free:
                return False
            db.execute("UPDATE runs SET status='running', owner=?, lease_until=?, started=?, error=NULL WHERE hash=?",
                       (owner, now + lease_s, now, run_hash))
            return True

    def renew(self, owner: str, run_hashes: list[str], *, lease_s: float = LEASE_SECONDS) -> None:
        """Extend ``owner``'s leases on ``run_hashes`` (the heartbeat of a live process)."""
        with self._tx() as db:
            db.executemany("UPDATE runs SET lease_until=? WHERE hash=? AND owner=? AND status='running'",
                           [(time.time() + lease_s, h, owner) for h in run_hashes])

    def mark_failed(self, run_hash: str, error: str) -> None:
        self._set_status(run_hash, "failed", error)

    def mark_interrupted(self, run_hash: str) -> None:
        self._set_status(run_hash, "interrupted", "interrupted; run the study again to resume from the checkpoint")

    def _set_status(self, run_hash: str, status: str, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status=?, error=?, finished=?, lease_until=NULL WHERE hash=?",
                       (status, error, time.time(), run_hash))

    def save_result(self, run_hash: str, result: Any) -> None:
        """Store a finished run (a ``lineup.study.RunResult``) in one transaction."""
        with self._tx() as db:
            for table in ("epochs", "steps", "predictions", "embeddings", "failures"):
                db.execute(f"DELETE FROM {table} WHERE run=?", (run_hash,))
            for phase, history in result.histories.items():
                db.executemany(
                    "INSERT INTO epochs VALUES (?, ?, ?, ?, ?)",
                    [(run_hash, phase, int(m["epoch"]), k, float(v))
                     for m in history.epochs for k, v in m.items() if k != "epoch"])
                db.executemany("INSERT INTO steps VALUES (?, ?, ?, ?)",
                               [(run_hash, phase, i + 1, v) for i, v in enumerate(history.step_loss)])
            for split, ev in result.evaluations.items():
                probs = np.ascontiguousarray(ev.probs, dtype=np.float32)
                db.execute("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (run_hash, split, probs.shape[0], probs.shape[1],
                            np.ascontiguousarray(ev.index, dtype=np.int64).tobytes(),
                            np.ascontiguousarray(ev.y, dtype=np.int64).tobytes(), probs.tobytes()))
            for split, (idx, feats) in result.embeddings.items():
                idx_blob = np.ascontiguousarray(idx, dtype=np.int64).tobytes()
                # the declared layers on the same examples, input side first, then forward_features
                layers = {**result.layers.get(split, {}), FEATURES: feats}
                for position, (layer, values) in enumerate(layers.items()):
                    values = np.ascontiguousarray(values, dtype=np.float32)
                    db.execute("INSERT INTO embeddings (run, split, layer, position, n, d, idx, features) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (run_hash, split, layer, position, values.shape[0],
                                                                   values.shape[1], idx_blob, values.tobytes()))
            db.executemany("INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(run_hash, r, f.index, f.y, f.pred, f.confidence, json.dumps(list(f.image.shape)),
                             np.ascontiguousarray(f.image, dtype=np.uint8).tobytes())
                            for r, f in enumerate(result.failures)])
            db.execute("UPDATE runs SET status=?, summary=?, provenance=?, device=?, error=?, finished=?, "
                       "wall_time=?, lease_until=NULL WHERE hash=?",
                       (result.status, json.dumps(result.summary), json.dumps(result.provenance), result.device,
                        result.error, time.time(), result.wall_time, run_hash))

    # -- reads -------------------------------------------------------------------------------------

    def studies(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT s.name, s.source, s.updated, COUNT(r.hash) - COALESCE(SUM(sr.role='trial'), 0), "
            "SUM(r.status='complete' AND sr.role != 'trial'), SUM(r.status='diverged' AND sr.role != 'trial'), "
            "SUM(r.status='failed' AND sr.role != 'trial'), SUM(sr.role='trial') FROM studies s "
            "LEFT JOIN study_runs sr ON sr.study = s.name LEFT JOIN runs r ON r.hash = sr.run "
            "GROUP BY s.name ORDER BY s.updated DESC").fetchall()
        # Search trials are counted apart: they are how a tuned study chose its runs, not runs it compares.
        return [{"name": n, "source": src, "updated": up, "runs": total, "complete": c or 0,
                 "diverged": d or 0, "failed": f or 0, "trials": t or 0} for n, src, up, total, c, d, f, t in rows]

    def study_spec(self, name: str) -> dict[str, Any]:
        row = self._db.execute("SELECT spec FROM studies WHERE name=?", (name,)).fetchone()
        if row is None:
            known = [s["name"] for s in self.studies()]
            from lineup._registry import did_you_mean

            raise LineupError(f"no study {name!r} in {self.path}.{did_you_mean(name, known)} "
                              f"Stored studies: {', '.join(known) or 'none'}. Run `lineup run STUDY.toml` first.")
        return json.loads(row[0])  # type: ignore[no-any-return]

    _RUN_COLS = ("r.hash, sr.label, r.seed, r.model, r.status, r.spec, r.summary, r.provenance, r.device, "
                 "r.error, r.wall_time, sr.setting, sr.role")

    @staticmethod
    def _record(row: tuple[Any, ...]) -> RunRecord:
        h, label, seed, model, status, spec, summary, prov, device, error, wall, setting, role = row
        return RunRecord(hash=h, label=label, seed=seed, model=model, status=status, spec=json.loads(spec),
                         summary=json.loads(summary) if summary else {},
                         provenance=json.loads(prov) if prov else {}, device=device, error=error, wall_time=wall,
                         setting=setting or "", role=role or "run")

    def runs(self, study: str) -> list[RunRecord]:
        """The study's runs in the order of its file (model entries, then seeds)."""
        self.study_spec(study)
        rows = self._db.execute(f"SELECT {self._RUN_COLS} FROM study_runs sr JOIN runs r ON r.hash = sr.run "
                                "WHERE sr.study=? ORDER BY sr.position", (study,)).fetchall()
        return [self._record(r) for r in rows]

    def run(self, prefix: str) -> RunRecord:
        """The run whose hash starts with ``prefix`` (at least 4 characters)."""
        if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
            raise LineupError(f"{prefix!r} is not a run id: give at least 4 hex digits of a hash (`lineup ls STUDY`).")
        rows = self._db.execute(f"SELECT {self._RUN_COLS} FROM runs r LEFT JOIN study_runs sr ON sr.run = r.hash "
                                "WHERE r.hash LIKE ? GROUP BY r.hash", (prefix + "%",)).fetchall()
        if not rows:
            raise LineupError(f"no run {prefix!r} in {self.path}; `lineup ls STUDY` lists run ids.")
        if len(rows) > 1:
            raise LineupError(f"{prefix!r} matches {len(rows)} runs; give more digits.")
        return self._record(rows[0])

    def search_runs(self, search: str) -> list[RunRecord]:
        """Every stored trial run of search ``search`` (the ``trial.search`` key of their specs), whatever study
        registered it: the store, not any study, is the record of a search. Label and setting are left empty."""
        rows = self._db.execute(
            "SELECT hash, '', seed, model, status, spec, summary, provenance, device, error, wall_time, '', 'trial' "
            "FROM runs WHERE json_extract(spec, '$.trial.search') = ? ORDER BY json_extract(spec, '$.trial.number'), "
            "seed", (search,)).fetchall()
        return [self._record(r) for r in rows]

    def status(self, run_hash: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE hash=?", (run_hash,)).fetchone()
        return row[0] if row else None

    def epochs(self, run_hash: str, phase: str = "train") -> list[dict[str, float]]:
        """Per-epoch metrics as a list of dicts, in epoch order."""
        out: dict[int, dict[str, float]] = {}
        for epoch, name, value in self._db.execute(
                "SELECT epoch, name, value FROM epochs WHERE run=? AND phase=? ORDER BY epoch", (run_hash, phase)):
            out.setdefault(epoch, {"epoch": epoch})[name] = value
        return list(out.values())

    def step_losses(self, run_hash: str, phase: str = "train") -> np.ndarray:
        rows = self._db.execute("SELECT loss FROM steps WHERE run=? AND phase=? ORDER BY step",
                                (run_hash, phase)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.float64)

    def predictions(self, run_hash: str, split: str = "test") -> Predictions | None:
        row = self._db.execute("SELECT n, k, idx, y, probs FROM predictions WHERE run=? AND split=?",
                               (run_hash, split)).fetchone()
        if row is None:
            return None
        n, k, idx, y, probs = row
        return Predictions(index=np.frombuffer(idx, dtype=np.int64), y=np.frombuffer(y, dtype=np.int64),
                           probs=np.frombuffer(probs, dtype=np.float32).reshape(n, k))

    def embeddings(self, run_hash: str, split: str = "test", layer: str = FEATURES
                   ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(index (N,), features (N, D))`` of one stored representation of a fixed example subset: the run's
        ``forward_features`` by default, or the channel means of one of its declared layers."""
        row = self._db.execute("SELECT n, d, idx, features FROM embeddings WHERE run=? AND split=? AND layer=?",
                               (run_hash, split, layer)).fetchone()
        if row is None:
            return None
        n, d, idx, feats = row
        return np.frombuffer(idx, dtype=np.int64), np.frombuffer(feats, dtype=np.float32).reshape(n, d)

    def layer_embeddings(self, run_hash: str, split: str = "test") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{layer: (index (N,), channel means (N, C))}`` of the run's declared layers, input side first
        (``forward_features`` left out; empty for models that declare none and runs stored before schema 4)."""
        rows = self._db.execute("SELECT layer, n, d, idx, features FROM embeddings WHERE run=? AND split=? "
                                "AND layer != ? ORDER BY position", (run_hash, split, FEATURES)).fetchall()
        return {layer: (np.frombuffer(idx, dtype=np.int64), np.frombuffer(feats, dtype=np.float32).reshape(n, d))
                for layer, n, d, idx, feats in rows}

    def failures(self, run_hash: str) -> list[Failure]:
        rows = self._db.execute("SELECT idx, y, pred, confidence, shape, image FROM failures WHERE run=? "
                                "ORDER BY rank", (run_hash,)).fetchall()
        return [Failure(index=i, y=y, pred=p, confidence=c,
                        image=np.frombuffer(img, dtype=np.uint8).reshape(json.loads(shape)))
                for i, y, p, c, shape, img in rows]
