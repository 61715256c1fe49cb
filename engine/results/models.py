"""A run's trained networks as modules: an evaluate stage's network, or a learner of the search
rebuilt from the run's last checkpoint — and the model files (``pt``) that rebuild them.

For ``NAME``: an evaluation stage's network when an evaluation trained one for learner ``NAME``
(or the stage is called ``NAME``), the genotype network of ``models/<stage>.pt``; otherwise learner
``NAME`` of the search: for a searchable learner the supernet with its architecture (softmax(α), β)
baked in as constants, so the module takes images and returns logits; for a fixed learner its
network. The learner's result network by default (the one its architecture was learned through).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sgl.registry import Architecture, Task, load_architecture
from sgl.registry.evaluation import build_network

from ..errors import ExportError, RunDirError, SpecError
from ..run.evaluation import MODEL_FORMAT, MODEL_FORMAT_VERSION
from ..rundir.reader import RunFiles, open_run_dir


class ArchBaked(nn.Module):
    """A supernet with a fixed architecture: ``forward(x) -> logits``. The architecture tensors are
    buffers, so they travel with the weights (and become constants in TorchScript and ONNX)."""

    def __init__(self, net: nn.Module, arch: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.arch_keys = tuple(sorted(arch))
        for key in self.arch_keys:
            self.register_buffer(f"arch_{key}", arch[key].detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, {key: getattr(self, f"arch_{key}") for key in self.arch_keys})


# --------------------------------------------------------------------------- what to export


class Exportable:
    """A model ready to export: the eager module (eval mode), its package for ``pt``, its architecture."""

    def __init__(self, module: nn.Module, package: dict[str, Any], architecture: Architecture | None, task: Task,
                 source: str) -> None:
        self.module = module.eval()
        self.package = package
        self.architecture = architecture
        self.task = task
        self.source = source

    def example(self, batch: int = 1) -> torch.Tensor:
        t = self.task
        return torch.randn(batch, t.in_channels, t.image_size, t.image_size, generator=torch.Generator().manual_seed(0))


def _task_dict(task: Task) -> dict[str, int]:
    return {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size}


def load_model(path: str | Path) -> nn.Module:
    """Rebuild the network of a ``pt`` export (or of ``models/<stage>.pt``), in eval mode."""
    package = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(package, dict) or package.get("format") != MODEL_FORMAT:
        raise ExportError(f"{path}: not an sgl model file")
    if package.get("version", 0) > MODEL_FORMAT_VERSION:
        raise ExportError(f"{path}: model format version {package['version']} is newer than this sgl reads ({MODEL_FORMAT_VERSION})")
    return _rebuild(package).eval()


def _rebuild(package: dict[str, Any]) -> nn.Module:
    info = package["network"]
    kind = info["type"]
    if kind == "genotype_network":
        module = build_network(info)
        module.load_state_dict(package["state_dict"])
        return module
    from sgl import registry

    task = Task(**info["task"])
    if kind == "supernet":
        config = registry.get("search_space", info["config"]["kind"]).config.model_validate(info["config"])
        space = config.build(task)
        space.load_state_dict(package["space"])
        module = ArchBaked(space.new_network(), dict(info["arch"]))
        module.net.load_state_dict(package["state_dict"])
        return module
    if kind == "model":
        config = registry.get("model", info["config"]["kind"]).config.model_validate(info["config"])
        if getattr(config, "pretrained", False):
            config = config.model_copy(update={"pretrained": False})  # the weights come from the package
        module = config.build(task)
        module.load_state_dict(package["state_dict"])
        return module
    raise ExportError(f"unknown network type {kind!r} in the model file")


def _evaluated(files: RunFiles, name: str) -> Path | None:
    """``models/<stage>.pt`` of the evaluation that trained ``name`` (a learner or a stage name)."""
    run = files.dir
    try:
        evaluations = files.summary.evaluations if files.summary is not None else []
    except ValueError:  # a damaged summary: look at the model files themselves
        evaluations = []
    for ev in evaluations:
        if name in (ev.learner, ev.stage):
            path = run.path / ev.model
            if path.is_file():
                return path
    if run.model(name).is_file():
        return run.model(name)
    for path in sorted(run.models.glob("*.pt")) if run.models.is_dir() else []:
        try:
            package = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a torn or foreign file is simply not a match
            continue
        if isinstance(package, dict) and package.get("learner") == name:
            return path
    return None


def _from_evaluation(path: Path) -> Exportable:
    package = torch.load(path, map_location="cpu", weights_only=True)
    module = _rebuild(package)
    info = package["network"]
    return Exportable(module, package, load_architecture(info["genotype"]), Task(**info["task"]),
                      source=f"evaluation network {path.name}")


def load_learner(run_dir: Path, name: str, accelerator: Any = None):
    """Learner ``name`` of a run, with the weights of its last checkpoint: ``(learner, task)``."""
    from ..run.learners import Learner

    try:
        files = open_run_dir(run_dir)
        files.info  # noqa: B018 - a run directory that was set up completely
        plan = files.plan  # paths stay relative to the original spec
    except RunDirError as exc:
        raise ExportError(str(exc)) from None
    except SpecError as exc:
        raise ExportError("\n".join(map(str, exc.problems))) from None
    if name not in plan.learners:
        known = ", ".join(plan.learners) or "none"
        raise ExportError(f"no learner (or evaluation stage with a trained network) named {name!r} in {files.path}; learners: {known}")
    try:
        checkpoint = files.checkpoint()
    except RunDirError as exc:
        raise ExportError(str(exc)) from None
    state = (checkpoint.get("learners") or {}).get(name)
    if state is None:
        raise ExportError(f"{files.dir.checkpoint} holds no weights for learner {name!r}")
    if accelerator is None:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    task = files.task()
    learner = Learner(plan.learners[name], task, accelerator)
    try:
        learner.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ExportError(f"{files.dir.checkpoint}: its weights of {name!r} do not fit the run's network "
                          f"({str(exc).splitlines()[0]})") from None
    return learner, task


def _from_search(run_dir: Path, name: str, network: str | None) -> Exportable:
    learner, task = load_learner(run_dir, name)
    net_name = network or learner.plan.final_net
    if net_name not in learner.nets:
        raise ExportError(f"learner {name!r} has no {net_name} network (it has {', '.join(learner.nets)})")
    module = learner.nets[net_name].module.cpu().eval()
    config = learner.plan.config.model_dump(mode="json", serialize_as_any=True)
    base = {"task": _task_dict(task), "learner": name, "net": net_name, "config": config}
    if learner.space is not None:
        learner.space.cpu()
        arch = {k: v.detach().cpu() for k, v in learner.arch().items()}
        wrapped = ArchBaked(module, arch)
        package = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION,
                   "network": {"type": "supernet", "arch": arch, **base},
                   "space": {k: v.detach().cpu() for k, v in learner.space.state_dict().items()},
                   "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "learner": name}
        architecture = RunFiles(run_dir).architectures.get(name) or learner.architecture()
        return Exportable(wrapped, package, architecture, task, source=f"search network {name}/{net_name} (architecture baked in)")
    package = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "network": {"type": "model", **base},
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "learner": name}
    return Exportable(module, package, None, task, source=f"fixed network {name}/{net_name}")


def exportable(run_dir: str | Path, name: str, network: str | None = None) -> Exportable:
    """What ``export_model`` writes for ``name``. ``network``: None (the evaluated network when
    there is one, else the search network V, or W without stage 2), ``"eval"``, ``"W"`` or ``"V"``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"no such run directory: {str(run_dir)!r}")
    if network not in (None, "eval", "W", "V"):
        raise ExportError(f"network must be 'eval', 'W' or 'V', got {network!r}")
    if network in (None, "eval"):
        path = _evaluated(RunFiles(run_dir), name)
        if path is not None:
            return _from_evaluation(path)
        if network == "eval":
            raise ExportError(f"no evaluation stage of {run_dir} trained a network for {name!r}")
    return _from_search(run_dir, name, network)
