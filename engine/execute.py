"""The executor: walks a StageGraph with Accelerate and writes the run directory.

It knows the graph's vocabulary (phases, epochs, iterations, W/PL/V/A nodes, derive and evaluate
stages), not SGL: a plain DARTS run is a graph with one learner and no V or PL nodes.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.markup import escape

from .compile import Compiled
from .data import BatchStream, eval_batches, split_indices, stream_seed
from .learners import Learner
from .metrics import Accumulator
from .plan import PhasePlan, StageGraph
from .progress import Progress, summary_table
from .rundir import RunDir
from .steps import StepContext, a_step, pl_step, v_step, w_step

CHECKPOINT_FORMAT = 1


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite: the run stops, keeping the last good checkpoint."""


class Interrupted(RuntimeError):
    """The run was stopped (Ctrl-C, SIGTERM or --stop-after); a checkpoint was written first."""


@dataclass
class RunOptions:
    run_dir: Path | None = None
    overwrite: bool = False
    stop_after_epochs: int | None = None  # stop cleanly after this many epochs in total (resume later)
    progress: bool = True


@dataclass
class Cursor:
    """Where the run is: the next phase, global epoch and iteration within that epoch."""

    phase: int = 0
    epoch: int = 0
    iteration: int = 0
    elapsed: float = 0.0  # seconds run before this process started (resumed runs)
    search_elapsed: float = 0.0  # of which in training (search) phases: the search cost
    completed: list[dict[str, Any]] = field(default_factory=list)  # results of finished evaluate stages


# ----------------------------------------------------------------------------- the executor


class Executor:
    def __init__(self, compiled: Compiled, accelerator: Any, options: RunOptions) -> None:
        self.compiled = compiled
        self.spec = compiled.spec
        self.graph = compiled.graph
        self.rundir: RunDir | None = None  # given by execute() / restore()
        self.accelerator = accelerator
        self.options = options
        self._stop_requested = False
        spec = self.spec
        if spec.run.threads:
            torch.set_num_threads(spec.run.threads)
        if spec.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(spec.seed)

        # Data: one bundle; D_train / D_val / D_u as three independent, resumable streams.
        self.bundle = spec.data.dataset.build(compiled.base_dir, seed=spec.seed)
        splits = split_indices(len(self.bundle.train), spec.data.split.train, spec.data.split.val,
                               shuffle=spec.data.split.shuffle, seed=stream_seed(spec.seed, "split"))
        self.val_indices = splits.val
        rank, world = accelerator.process_index, accelerator.num_processes
        common = dict(batch_size=spec.data.batch_size, rank=rank, world=world,
                      num_workers=spec.data.num_workers, device=accelerator.device)
        unlabeled = splits.train if spec.data.unlabeled == "train" else splits.val
        searching = any(p.type == "train" for p in self.graph.phases)
        # An evaluation-only spec has no search streams (its data may be too small for them).
        self.streams = {
            "train": BatchStream(self.bundle.train, splits.train, seed=stream_seed(spec.seed, "train"), **common),
            "val": BatchStream(self.bundle.train, splits.val, seed=stream_seed(spec.seed, "val"), **common),
            "unlabeled": BatchStream(self.bundle.train, unlabeled, seed=stream_seed(spec.seed, "unlabeled"), **common),
        } if searching else {}
        self.iterations = self.streams["train"].batches_per_cycle if searching else 0

        self.learners = {
            name: Learner(lp, spec.learners[name], spec, self.bundle.task, accelerator)
            for name, lp in self.graph.learners.items()
        }
        torch.manual_seed(spec.seed)  # the training stream of randomness starts from the run seed
        self.step_ctx = StepContext(
            autocast=accelerator.autocast,
            backward=accelerator.backward,
            reduce_grads=self._reduce_grads,
            clip=accelerator.clip_grad_norm_,
            grad_clip=spec.optim.grad_clip,
        )
        self.acc = Accumulator()
        self.epoch_acc = Accumulator()
        self.progress = Progress(
            total_iterations=sum(p.epochs for p in self.graph.phases if p.type == "train") * self.iterations,
            enabled=options.progress and accelerator.is_main_process,
        )
        self._started = time.perf_counter()
        self._phase_started: float | None = None
        self._tracker: Any = None  # TensorBoard, through Accelerate's tracker, when installed

    def _search_time(self) -> float:
        """Seconds spent in the current training phase so far (0 outside training phases)."""
        return 0.0 if self._phase_started is None else time.perf_counter() - self._phase_started

    # -- distributed helpers
    def _reduce_grads(self, grads: list[torch.Tensor]) -> None:
        if self.accelerator.num_processes == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat = self.accelerator.reduce(flat, reduction="mean")
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _sum(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.accelerator.num_processes == 1 else self.accelerator.reduce(values, reduction="sum")

    # -- checkpoints
    def state(self, cursor: Cursor) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and self.accelerator.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.accelerator.device)
        return {
            "format": CHECKPOINT_FORMAT,
            "cursor": {"phase": cursor.phase, "epoch": cursor.epoch, "iteration": cursor.iteration,
                       "elapsed": cursor.elapsed + time.perf_counter() - self._started,
                       "search_elapsed": cursor.search_elapsed + self._search_time()},
            "completed": cursor.completed,
            "learners": {name: learner.state_dict() for name, learner in self.learners.items()},
            "streams": {name: stream.state_dict() for name, stream in self.streams.items()},
            "accumulators": {"interval": self.acc.state_dict(), "epoch": self.epoch_acc.state_dict()},
            "rng": rng,
            "offsets": self.rundir.offsets(),
        }

    def restore(self, state: dict[str, Any], rundir: RunDir) -> Cursor:
        self.rundir = rundir
        cursor = Cursor(**{k: state["cursor"][k] for k in ("phase", "epoch", "iteration", "elapsed", "search_elapsed")})
        cursor.completed = list(state.get("completed", []))
        phase = self.graph.phases[min(cursor.phase, len(self.graph.phases) - 1)]
        for name, learner in self.learners.items():
            learner.load_state_dict(state["learners"][name], self._horizons(learner, phase))
        for name, stream in self.streams.items():
            stream.load_state_dict(state["streams"][name])
        self.acc.load_state_dict(state["accumulators"]["interval"])
        self.epoch_acc.load_state_dict(state["accumulators"]["epoch"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.accelerator.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.accelerator.device)
        self.rundir.truncate(state["offsets"])
        self.progress.resume_at(self._iterations_before(cursor))
        self.progress.message(f"resuming {self.rundir.path} at stage {phase.name}, epoch {cursor.epoch + 1}, iteration {cursor.iteration + 1}")
        return cursor

    def _iterations_before(self, cursor: Cursor) -> int:
        return cursor.epoch * self.iterations + cursor.iteration

    def _checkpoint(self, cursor: Cursor) -> None:
        self.rundir.save_checkpoint(self.state(cursor))

    # -- the walk
    def execute(self, cursor: Cursor, rundir: RunDir) -> None:
        self.rundir = rundir
        if rundir.writer and self.spec.run.tensorboard != "off" and has_tensorboard():
            from accelerate.tracking import TensorBoardTracker

            self._tracker = TensorBoardTracker("tensorboard", str(rundir.path))  # events in <run>/tensorboard
            self._tracker.start()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def request_stop(signum, frame):  # finish the iteration, checkpoint, then stop
            if self._stop_requested:
                signal.signal(signum, previous[signum])
                raise KeyboardInterrupt
            self._stop_requested = True

        for sig in previous:
            signal.signal(sig, request_stop)
        status = "failed"
        try:
            with self.progress:
                while cursor.phase < len(self.graph.phases):
                    phase = self.graph.phases[cursor.phase]
                    if phase.type == "train":
                        self._phase_started = time.perf_counter()
                        try:
                            self._train_phase(phase, cursor)
                        finally:
                            cursor.search_elapsed += self._search_time()
                            self._phase_started = None
                    elif phase.type == "derive":
                        self._derive(phase)
                    else:
                        cursor.completed.append(self._evaluate(phase))
                    cursor.phase += 1
                    cursor.iteration = 0
                    self._checkpoint(cursor)
            status = "completed"
        except Interrupted as exc:
            status = "interrupted"
            self.progress.message(f"stopped: {exc}; resume with: sgl resume {self.rundir.path}")
        except NonFiniteLoss as exc:
            status = "failed"
            self.progress.message(f"[red]stopped:[/red] {exc}. The last good checkpoint is kept: {self.rundir.checkpoint}")
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._write_summary(cursor, status)
            self.rundir.close()
            if self._tracker is not None:
                self._tracker.finish()
        if status == "interrupted":
            raise Interrupted(f"run stopped; resume with: sgl resume {self.rundir.path}")

    def _horizons(self, learner: Learner, phase: PhasePlan) -> dict[str, int]:
        # A growing space restarts its networks in every phase, and their schedules with them.
        if learner.plan.space_phases > 1 and phase.type == "train":
            return {net: phase.epochs for net in learner.plan.networks}
        return dict(learner.plan.schedule_epochs)

    def _enter_space_phases(self, phase: PhasePlan) -> None:
        for name, target in phase.space_phase.items():
            learner = self.learners[name]
            if learner.space is not None and learner.space.phase != target:
                learner.space.enter_phase(target)
                learner.build_networks(self._horizons(learner, phase))
                self.progress.message(f"{name}: entered growing phase {target + 1} ({phase.name})")

    def _train_phase(self, phase: PhasePlan, cursor: Cursor) -> None:
        self._enter_space_phases(phase)
        actions = _actions(phase, self.graph)
        needs = {step for step, _ in actions}
        stepped_nets = sorted({(k, step) for step, ks in actions for k in ks if step in ("W", "V")})
        last_epoch = phase.first_epoch + phase.epochs
        if cursor.epoch < phase.first_epoch:
            cursor.epoch = phase.first_epoch
        arch_start = (phase.arch_from_epoch - phase.first_epoch) if phase.arch_from_epoch is not None else phase.epochs
        while cursor.epoch < last_epoch:
            arch_on = phase.arch_from_epoch is not None and cursor.epoch >= phase.arch_from_epoch
            for learner in self.learners.values():
                if learner.space is not None:
                    for net in learner.nets.values():
                        learner.space.configure_epoch(net.module, cursor.epoch - phase.first_epoch, phase.epochs, arch_start)
            for it in range(cursor.iteration, self.iterations):
                self._iteration(actions, needs, arch_on)
                cursor.iteration = it + 1
                self.progress.advance(phase.name, cursor.epoch, self.graph.total_epochs, it, self.iterations)
                if (it + 1) % self.spec.run.log_every == 0 or it + 1 == self.iterations:
                    self._log_interval(phase, cursor)
                if self._stop_requested and it + 1 < self.iterations:
                    self._log_interval(phase, cursor)
                    self._checkpoint(cursor)
                    raise Interrupted(f"stopped at epoch {cursor.epoch + 1}, iteration {it + 1}")
            for learner_name, net in stepped_nets:
                self.learners[learner_name].nets[net].scheduler.step()
            self._end_epoch(phase, cursor)
            cursor.epoch += 1
            cursor.iteration = 0
            self._checkpoint(cursor)
            stop_at = self.options.stop_after_epochs
            if self._stop_requested or (stop_at is not None and cursor.epoch >= stop_at and cursor.epoch < self.graph.total_epochs):
                if cursor.epoch == last_epoch:  # the phase is done: resume starts at the next one
                    cursor.phase += 1
                    self._checkpoint(cursor)
                raise Interrupted(f"stopped after epoch {cursor.epoch}")

    def _iteration(self, actions: list[tuple[str, list[str]]], needs: set[str], arch_on: bool) -> None:
        x_tr, y_tr = self.streams["train"].next()
        x_u = self.streams["unlabeled"].next()[0] if "PL" in needs else None
        x_v, y_v = self.streams["val"].next() if "A" in needs else (None, None)
        pseudo: dict[str, Any] = {}
        lw = self.spec.loss_weights
        has_v = any(step == "V" for step, _ in actions)
        for step, names in actions:
            if step == "A":
                if arch_on:
                    a_step(self.learners, names, self.spec.hypergradient, self._arch_context(names, x_tr, y_tr, x_u, x_v, y_v, has_v), self.step_ctx)
            elif step == "W":
                for k in names:
                    self.acc.add(k, "W", w_step(self.learners[k], x_tr, y_tr, self.step_ctx))
            elif step == "PL":
                for j in names:
                    pseudo[j] = pl_step(self.learners[j], x_u, self.spec.pseudo_labels, self.step_ctx)
            else:
                for k in names:
                    peers = [pseudo[j] for j in self.graph.learners[k].peers]
                    self.acc.add(k, "V", v_step(self.learners[k], x_tr, y_tr, x_u, peers, lw.labeled, lw.pseudo, self.step_ctx))

    def _arch_context(self, targets, x_tr, y_tr, x_u, x_v, y_v, has_v):
        from sgl.registry.hypergrad.base import ArchContext

        lw = self.spec.loss_weights
        return ArchContext(
            learners={k: learner.view() for k, learner in self.learners.items()},
            targets=list(targets),
            peers={k: list(lp.peers) for k, lp in self.graph.learners.items()},
            x_train=x_tr, y_train=y_tr, x_unlabeled=x_u, x_val=x_v, y_val=y_v,
            # Without stage 2 the architecture gradient flows through W and its plain CE loss.
            w_labeled=lw.labeled if has_v else 1.0,
            w_pseudo=lw.pseudo if has_v else 0.0,
            pseudo_labeler=self.spec.pseudo_labels,
            autocast=self.accelerator.autocast,
        )

    # -- metrics
    def _log_interval(self, phase: PhasePlan, cursor: Cursor) -> None:
        values = self.acc.read_and_reset()  # the only host synchronisation of the hot loop
        if not values:
            return
        self.epoch_acc.merge(values)
        self._check_finite(values, phase, cursor)
        now = round(time.perf_counter() - self._started, 3)
        shown = {}
        for name, nets in _by_learner(values).items():
            record = {"kind": "iter", "phase": phase.name, "epoch": cursor.epoch,
                      "step": cursor.epoch * self.iterations + cursor.iteration, "learner": name}
            for net, stats in nets.items():
                record[f"{net}/loss"] = stats["loss"]
                record[f"{net}/acc"] = stats["acc"]
            for net_name, net in self.learners[name].nets.items():
                record[f"lr/{net_name}"] = net.lr
            record["time"] = now
            self.rundir.log(record)
            shown[name] = {f"{net} loss": stats["loss"] for net, stats in nets.items()}
            self._track(record)
        self.progress.report(shown)

    def _check_finite(self, values: dict, phase: PhasePlan, cursor: Cursor) -> None:
        for (name, net), stats in values.items():
            if not stats["finite"]:
                raise NonFiniteLoss(
                    f"non-finite {net} loss of learner {name!r} in {phase.name}, epoch {cursor.epoch + 1} "
                    f"(before iteration {cursor.iteration}); try a lower learning rate or grad_clip"
                )

    def _track(self, record: dict[str, Any]) -> None:
        if self._tracker is not None:
            prefix = f"{record['kind']}/{record['learner']}"
            scalars = {f"{prefix}/{k}": v for k, v in record.items() if isinstance(v, float) and k != "time"}
            self._tracker.log(scalars, step=record.get("step", record.get("epoch")))

    def _accuracy(self, learner: Learner, net: str, dataset, indices) -> float:
        module = learner.nets[net].module
        undo = _batch_statistics(module) if self.spec.run.eval_bn == "batch" else _running_statistics(module)
        correct = torch.zeros((), device=self.accelerator.device)
        total = torch.zeros((), device=self.accelerator.device)
        arch = learner.arch()
        with torch.inference_mode(), self.accelerator.autocast():
            for x, y in eval_batches(dataset, indices, self.spec.data.eval_batch_size, self.accelerator.device,
                                     rank=self.accelerator.process_index, world=self.accelerator.num_processes):
                logits = learner.logits(net, x, arch)
                correct += (logits.argmax(dim=1) == y).sum()
                total += y.shape[0]
        undo()
        counts = self._sum(torch.stack([correct, total]))
        return float(counts[0] / counts[1].clamp(min=1))

    def _end_epoch(self, phase: PhasePlan, cursor: Cursor) -> None:
        totals = _by_learner(self.epoch_acc.read_and_reset())
        now = round(time.perf_counter() - self._started, 3)
        for name, learner in self.learners.items():
            record: dict[str, Any] = {"kind": "epoch", "phase": phase.name, "epoch": cursor.epoch, "learner": name}
            for net, stats in totals.get(name, {}).items():
                record[f"train/{net}/loss"] = stats["loss"]
                record[f"train/{net}/acc"] = stats["acc"]
            for net_name, net in learner.nets.items():
                record[f"val/{net_name}/acc"] = self._accuracy(learner, net_name, self.bundle.train, self.val_indices)
                record[f"lr/{net_name}"] = net.lr
            if learner.space is not None:
                entropy = learner.space.entropy()
                record.update({f"entropy/{cell}": value for cell, value in entropy.items()})
                self._write_genotype(name, learner, cursor.epoch, entropy)
            record["time"] = now
            self.rundir.log(record)
            self._track(record)
        lines = [f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in rec.items() if isinstance(v, float) and k.startswith("val/"))
                 for name, rec in ((n, self._last_epoch_record(n)) for n in self.learners)]
        self.progress.message(escape(f"[{phase.name}] epoch {cursor.epoch + 1}/{self.graph.total_epochs} done · " + " · ".join(lines)))

    def _last_epoch_record(self, name: str) -> dict[str, Any]:
        return self.rundir.last_record(kind="epoch", learner=name) if self.rundir.writer else {}

    def _write_genotype(self, name: str, learner: Learner, epoch: int, entropy: dict[str, float]) -> None:
        genotype = learner.genotype()
        self.rundir.write_json(f"genotypes/{name}.json", genotype.to_json())
        self.rundir.append_jsonl(self.rundir.genotype_history(name), {
            "epoch": epoch, "genotype": genotype.to_json(), "alpha": learner.space.snapshot(),
            "primitives": list(genotype.primitives), "entropy": entropy,
        })

    # -- derive, evaluate, summary
    def _derive(self, phase: PhasePlan) -> None:
        from sgl.registry.spaces.diagram import write_cell_diagrams

        for name, learner in self.learners.items():
            if learner.space is None:
                continue
            genotype = learner.genotype()
            self.rundir.write_json(f"genotypes/{name}.json", genotype.to_json())
            if self.rundir.writer:
                write_cell_diagrams(genotype, self.rundir.figures, f"cell_{name}")
            self.progress.message(f"{name}: genotype written to {self.rundir.genotype_file(name)}")

    def _evaluate(self, phase: PhasePlan) -> dict[str, Any]:
        from .evaluate import evaluate_genotype

        stage = self.spec.stages[phase.index]
        if stage.learner is not None:
            genotype = self.learners[stage.learner].genotype()
        else:
            from sgl.registry.spaces.genotype import resolve_genotype

            genotype = resolve_genotype(stage.genotype, base_dir=self.compiled.base_dir)
        def after_epoch(done: int) -> None:
            if self._stop_requested:
                raise Interrupted(f"stopped in evaluation stage {stage.name!r} after its epoch {done}")

        return evaluate_genotype(
            stage, self.spec, genotype, base_dir=self.compiled.base_dir, accelerator=self.accelerator,
            rundir=self.rundir, progress=self.progress, seed=self.spec.seed, after_epoch=after_epoch,
        )

    def _final_accuracies(self) -> dict[str, dict[str, float]]:
        return {
            name: {net: self._accuracy(learner, net, self.bundle.test, None) for net in learner.nets}
            for name, learner in self.learners.items()
        }

    def _write_summary(self, cursor: Cursor, status: str) -> None:
        elapsed = cursor.elapsed + time.perf_counter() - self._started
        hours = (cursor.search_elapsed + self._search_time()) / 3600
        test = self._final_accuracies() if status == "completed" else {}
        learners = {}
        rows = []
        for name, learner in self.learners.items():
            last = self._last_epoch_record(name)
            val = {net: last.get(f"val/{net}/acc") for net in learner.nets}
            params = sum(p.numel() for p in learner.nets["W"].module.parameters()) / 1e6
            genotype = f"genotypes/{name}.json" if learner.space is not None else None
            learners[name] = {"kind": learner.plan.kind, "searchable": learner.plan.searchable,
                              "val_acc": val, "test_acc": test.get(name, {}), "genotype": genotype, "params_M": params}
            final_net = learner.plan.arch_net or ("V" if "V" in learner.nets else "W")
            rows.append({"learner": name, "kind": learner.plan.kind, "val_acc_W": val.get("W"), "val_acc_V": val.get("V"),
                         "test_acc": test.get(name, {}).get(final_net), "genotype": genotype})
        device = self.accelerator.device.type
        distributed = {"processes": self.accelerator.num_processes}
        if self.accelerator.num_processes > 1:
            # Every rank must hold the same architecture; record each rank's fingerprint to prove it.
            from accelerate.utils import gather_object

            fingerprints = gather_object([self._arch_fingerprint()])
            distributed["architecture_fingerprints"] = fingerprints
            distributed["ranks_agree"] = len(set(fingerprints)) == 1
        summary = {
            "name": self.spec.name, "status": status, "dataset": self.spec.data.dataset.name,
            "hypergradient": self.spec.hypergradient.method, "seed": self.spec.seed,
            "epochs_done": cursor.epoch, "learners": learners,
            "search_cost": {"device": device, "hours": hours, "device_hours": hours * self.accelerator.num_processes,
                            "wall_seconds": elapsed},
            "evaluations": cursor.completed,
            "distributed": distributed,
        }
        self.rundir.write_json("summary.json", summary)
        if status == "completed" and self.accelerator.is_main_process and self.options.progress:
            self.progress.console.print(summary_table(rows))
            self.progress.console.print(f"run directory: {self.rundir.path}  (figures and a page: sgl report {self.rundir.path})")


    def _arch_fingerprint(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        for name in sorted(self.learners):
            space = self.learners[name].space
            if space is not None:
                for param in space.arch_parameters():
                    digest.update(param.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _batch_statistics(module: torch.nn.Module):
    """Normalise with each batch's statistics without touching the running ones; returns an undo."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    dropouts = [m for m in module.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    module.train()
    for m in norms:
        m.track_running_stats = False
    for m in dropouts:
        m.eval()

    def undo() -> None:
        for m in norms:
            m.track_running_stats = True
        module.train()

    return undo


def _running_statistics(module: torch.nn.Module):
    """Evaluation mode (running statistics, no dropout); returns an undo."""
    module.eval()
    return module.train


def _actions(phase: PhasePlan, graph: StageGraph) -> list[tuple[str, list[str]]]:
    """The phase's node order as runs of one step kind: [("A", [k...]), ("W", [k...]), ...]."""
    actions: list[tuple[str, list[str]]] = []
    for nid in phase.order:
        node = graph.node(nid)
        if actions and actions[-1][0] == node.step:
            actions[-1][1].append(node.learner)
        else:
            actions.append((node.step, [node.learner]))
    return actions


def _by_learner(values: dict[tuple[str, str], dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (name, net), stats in values.items():
        out.setdefault(name, {})[net] = stats
    return out


