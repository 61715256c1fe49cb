"""A run's experiment trackers — TensorBoard, MLflow, W&B, Aim, Comet, ClearML, DVCLive — through
Accelerate's tracker classes: each gets the resolved spec as its config, every metric line, each
epoch's genotypes and, at the end, the run's figures and files.

Stores stay inside the run directory unless the spec's ``uri`` (or ``MLFLOW_TRACKING_URI``) says
otherwise: TensorBoard's events in ``tensorboard/``, MLflow's SQLite store and artifacts in
``trackers/mlflow/``, W&B's files in ``trackers/wandb/`` (offline unless an API key is set up or
``mode`` says), Aim's repository in ``trackers/aim/``. The trackers' run ids are kept in
``trackers/ids.json``, so ``sgl resume`` continues the same tracker runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from ..extras import install_hint
from ..plan.settings import TrackerPlan
from .files import read_json, write_json
from .layout import RunDir

#: The package each tracker imports, and the extra of this project that installs it (``comet`` for comet_ml).
PACKAGE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "aim": "aim", "comet_ml": "comet_ml",
           "clearml": "clearml", "dvclive": "dvclive"}
EXTRA = {**{name: name for name in PACKAGE}, "comet_ml": "comet"}

Scalar = str | int | float | bool


def installed(name: str) -> bool:
    return importlib.util.find_spec(PACKAGE[name]) is not None


def not_installed(trackers: tuple[TrackerPlan, ...]) -> str | None:
    """The one-line error for the first required tracker whose package is missing (None: all there)."""
    for tracker in trackers:
        if tracker.required and not installed(tracker.name):
            return f"run.trackers: {tracker.name} is not installed; {install_hint(EXTRA[tracker.name])}"
    return None


def flat(data: Any, prefix: str = "") -> dict[str, Scalar]:
    """Nested spec data as dotted keys and scalar values (lists as JSON): what every tracker's config takes."""
    if isinstance(data, dict):
        out: dict[str, Scalar] = {}
        for key, value in data.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out
    key = prefix.rstrip(".")
    if data is None or isinstance(data, (list, tuple)):
        return {key: json.dumps(data)}
    return {key: data}


class Tracker:
    """One tracker of a run; the base class drives any of Accelerate's trackers by its generic methods."""

    def __init__(self, plan: TrackerPlan, rundir: RunDir, run_id: str | None) -> None:
        self.plan = plan
        self.rundir = rundir
        self.run_id = run_id  # the tracker's own run, when resuming one
        self.inner: Any = None

    @property
    def store(self) -> Path:
        return self.rundir.trackers / self.plan.name

    def make(self) -> Any:
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        options: dict[str, Any] = dict(self.plan.options)
        if self.plan.name == "aim":
            options.setdefault("logging_dir", self.plan.uri or str(self.store))
        if self.plan.name == "dvclive":
            options.setdefault("dir", str(self.store))
        return LOGGER_TYPE_TO_CLASS[self.plan.name](self.plan.experiment, **options)

    def start(self, spec: dict[str, Any]) -> str | None:
        """Start (or continue) the tracker's run; returns its id to continue it after a resume."""
        self.inner = self.make()
        self.inner.start()
        if self.run_id is None:
            self.inner.store_init_configuration(flat(spec))
        return self.run_id

    def log(self, kind: str, scalars: dict[str, float], step: int) -> None:
        self.inner.log(scalars, step=step)

    def genotype(self, learner: str, epoch: int, data: dict[str, Any], text: str) -> None:
        """A learner's genotype after ``epoch`` (1-based)."""

    def files(self, paths: list[Path]) -> None:
        """Files of the run directory (figures, the resolved spec, the summary) as artifacts."""

    def finish(self) -> None:
        if self.inner is not None:
            self.inner.finish()
            self.inner = None


class TensorBoard(Tracker):
    def make(self) -> Any:
        from accelerate.tracking import TensorBoardTracker

        return TensorBoardTracker(self.rundir.tensorboard.name, str(self.rundir.path), **self.plan.options)

    def start(self, spec: dict[str, Any]) -> str | None:
        self.inner = self.make()
        self.inner.start()
        if self.rundir.resolved_spec.is_file():  # hparams would scatter timestamped folders: the spec as text
            text = self.rundir.resolved_spec.read_text(encoding="utf-8")
            self.inner.writer.add_text("spec", "```yaml\n" + text + "\n```", 0)
        return "tensorboard"

    def genotype(self, learner: str, epoch: int, data: dict[str, Any], text: str) -> None:
        self.inner.writer.add_text(f"genotype/{learner}", text, epoch)

    def files(self, paths: list[Path]) -> None:
        from matplotlib.image import imread

        for path in paths:
            if path.suffix == ".png":
                image = imread(path)[..., :3]
                self.inner.writer.add_image(f"figures/{path.stem}", image, dataformats="HWC")
        self.inner.writer.flush()


class MLflow(Tracker):
    def start(self, spec: dict[str, Any]) -> str | None:
        import logging

        import mlflow
        from accelerate.tracking import MLflowTracker

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its database migrations on every start
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # MLflow keeps its tracking URI in this variable too: what it holds now is the user's (or
        # nothing), and what finish() puts back
        self._previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
        uri = self.plan.uri or self._previous_uri
        artifacts = None
        if uri is None:
            self.store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(self.store / 'mlflow.db').resolve()}"
            artifacts = (self.store / "artifacts").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        self.inner = MLflowTracker(self.plan.experiment, artifacts, run_id=self.run_id, run_name=self.rundir.path.name,
                                   **self.plan.options)
        self.inner.start()
        if self.run_id is None:
            self.inner.store_init_configuration(flat(spec))
        return self.inner.active_run.info.run_id

    def genotype(self, learner: str, epoch: int, data: dict[str, Any], text: str) -> None:
        import mlflow

        mlflow.log_dict(data, f"genotypes/{learner}/epoch_{epoch:03d}.json")

    def files(self, paths: list[Path]) -> None:
        for path in paths:
            folder = path.parent.relative_to(self.rundir.path).as_posix()
            self.inner.log_artifact(str(path), None if folder == "." else folder)

    def finish(self) -> None:
        if self.inner is not None:
            import mlflow

            super().finish()
            mlflow.set_tracking_uri(self._previous_uri)


def _wandb_mode(options: dict[str, Any]) -> str:
    """Online only when asked (``mode``, ``WANDB_MODE``) or when an API key is set up; else offline,
    so a run never waits on a login prompt (``wandb sync`` uploads an offline run later)."""
    if "mode" in options:
        return str(options["mode"])
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        import netrc

        return "online" if netrc.netrc().authenticators("api.wandb.ai") else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


class WandB(Tracker):
    KINDS = ("iter", "epoch", "eval_epoch", "genotype")

    def start(self, spec: dict[str, Any]) -> str | None:
        import secrets

        import wandb
        from accelerate.tracking import WandBTracker

        options = dict(self.plan.options)
        mode = _wandb_mode(options)
        options.pop("mode", None)
        run_id = self.run_id or secrets.token_hex(4)  # not wandb's generator: no RNG of the run is touched
        self.store.mkdir(parents=True, exist_ok=True)
        self.inner = WandBTracker(self.plan.experiment, dir=str(self.store.parent), mode=mode, id=run_id, resume="allow",
                                  name=self.rundir.path.name, config=spec,
                                  settings=wandb.Settings(console="off", quiet=True), **options)
        self.inner.start()
        run = self.inner.run
        for kind in self.KINDS:  # each kind of line on its own x axis (W&B's step must only grow)
            run.define_metric(f"{kind}/x")
            run.define_metric(f"{kind}/*", step_metric=f"{kind}/x")
        return run_id

    def log(self, kind: str, scalars: dict[str, float], step: int) -> None:
        self.inner.run.log({**scalars, f"{kind}/x": step})

    def genotype(self, learner: str, epoch: int, data: dict[str, Any], text: str) -> None:
        self.inner.run.log({f"genotype/{learner}": text, "genotype/x": epoch})

    def files(self, paths: list[Path]) -> None:
        for path in paths:
            self.inner.run.save(str(path), base_path=str(self.rundir.path), policy="now")


KINDS: dict[str, type[Tracker]] = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}


class Trackers:
    """The run's trackers together (the main process's; the others have none)."""

    def __init__(self, rundir: RunDir, plans: tuple[TrackerPlan, ...]) -> None:
        self.rundir = rundir
        self.plans = tuple(p for p in plans if rundir.writer and (p.required or installed(p.name)))
        self.active: list[Tracker] = []

    @property
    def ids_file(self) -> Path:
        return self.rundir.trackers / "ids.json"

    def start(self, spec: dict[str, Any]) -> None:
        import torch

        if not self.plans:
            return
        ids = read_json(self.ids_file) if self.ids_file.is_file() else {}
        state = torch.get_rng_state()  # a tracker that draws from torch's RNG would change the run
        try:
            for plan in self.plans:
                tracker = KINDS.get(plan.name, Tracker)(plan, self.rundir, ids.get(plan.name))
                ids[plan.name] = tracker.start(spec)
                self.active.append(tracker)
        finally:
            torch.set_rng_state(state)
        if any(name != "tensorboard" for name in ids):
            write_json(self.ids_file, ids)

    def log(self, record: dict[str, Any], kind: str, who: str, step: int) -> None:
        if not self.active:
            return
        scalars = {f"{kind}/{who}/{k}": v for k, v in record.items() if isinstance(v, float)}
        for tracker in self.active:
            tracker.log(kind, scalars, step)

    def genotype(self, learner: str, epoch: int, data: dict[str, Any], text: str) -> None:
        for tracker in self.active:
            tracker.genotype(learner, epoch, data, text)

    @property
    def want_figures(self) -> bool:
        """Whether a tracker keeps files (TensorBoard alone takes no more than the diagrams)."""
        return any(t.plan.name != "tensorboard" for t in self.active)

    def files(self, paths: list[Path]) -> None:
        for tracker in self.active:
            tracker.files(paths)

    def finish(self) -> None:
        while self.active:
            self.active.pop().finish()
