"""A run's networks as modules, each saying what it is (``Exportable.what``):

- ``derived``: the discrete network of a searchable learner's architecture, built as an evaluate
  stage builds it (``protocol.network_info``) with the sizes of the evaluate stage that trains the
  learner, or the ``darts`` protocol's defaults when none does — freshly initialised, to be trained;
- ``trained``: an evaluate stage's trained network (``models/<stage>.pt``), for learner ``NAME`` or
  the stage called ``NAME``;
- ``supernet``: a searchable learner's search network rebuilt from the run's last checkpoint, with
  its architecture (softmax(α), β) baked in as constants, so it takes images and returns logits;
- ``network``: a fixed learner's network from the last checkpoint.

``exportable`` picks one; the model files (``pt``) that ``load_model`` rebuilds hold the weights,
the plain-data description of the network and this metadata (``export``).
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
                 source: str, what: str = "trained", meta: dict[str, Any] | None = None) -> None:
        self.module = module.eval()
        self.package = package
        self.architecture = architecture
        self.task = task
        self.source = source
        self.what = what  # derived, trained, supernet or network: in export file names
        self.meta = {"what": what, "source": source, **(meta or {})}
        package.setdefault("export", self.meta)

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
                      source=f"evaluation network {path.name}", what="trained",
                      meta={"learner": package.get("learner"), "stage": package.get("stage"), "trained": True})


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
        return Exportable(wrapped, package, architecture, task, what="supernet",
                          source=f"search network {name}/{net_name} (architecture baked in)",
                          meta={"learner": name, "net": net_name, "result_net": learner.plan.final_net, "trained": True})
    package = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "network": {"type": "model", **base},
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "learner": name}
    return Exportable(module, package, None, task, source=f"fixed network {name}/{net_name}", what="network",
                      meta={"learner": name, "net": net_name, "result_net": learner.plan.final_net, "trained": True})


def derived(run_dir: Path, name: str, sizes: dict[str, int] | None = None) -> Exportable:
    """The discrete network of learner ``name``'s architecture, sized as the evaluate stage that
    trains it says (or the ``darts`` protocol's defaults), ``sizes`` (channels, layers) over them."""
    from sgl import registry
    from sgl.registry.evaluation import DEFAULT_PROTOCOL

    from ..plan.types import EvaluateStagePlan

    try:
        files = open_run_dir(run_dir)
        plan = files.plan
        task = files.task()
    except RunDirError as exc:
        raise ExportError(str(exc)) from None
    except SpecError as exc:
        raise ExportError("\n".join(map(str, exc.problems))) from None
    architecture = files.architectures.get(name)
    if architecture is None:
        known = ", ".join(files.architectures) or "none yet"
        raise ExportError(f"{name!r} has no genotype in {files.path} (a fixed learner, or none derived yet); "
                          f"learners with one: {known}")
    stage = next((s for s in plan.stages if isinstance(s, EvaluateStagePlan) and s.learner == name), None)
    protocol = stage.protocol if stage is not None else registry.get("protocol", DEFAULT_PROTOCOL).config()
    info = protocol.network_info(architecture, task)
    info.update({k: int(v) for k, v in (sizes or {}).items() if v is not None})
    with torch.random.fork_rng():  # the same initial weights from the same run, without touching the caller's RNG
        torch.manual_seed(plan.seed)
        module = build_network(info).eval()
    origin = (f"evaluate stage {stage.name!r} ({protocol.protocol} protocol)" if stage is not None
              else f"the {protocol.protocol} protocol's defaults (no evaluate stage trains {name})")
    meta = {"learner": name, "trained": False, "protocol": protocol.protocol, "sizes_from": origin,
            "channels": info.get("channels"), "layers": info.get("layers"), "overridden": sorted(k for k, v in (sizes or {}).items() if v is not None)}
    package = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "network": info, "learner": name,
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}
    return Exportable(module, package, architecture, task, what="derived", meta=meta,
                      source=f"derived network of {name} (untrained; sizes from {origin})")


def exportable(run_dir: str | Path, name: str, network: str | None = None, *,
               sizes: dict[str, int] | None = None) -> Exportable:
    """One network of the run for ``name``. ``network``: None (the evaluated network when there is
    one, else the search's result network: a trained network), ``"derived"``, ``"trained"`` (or
    ``"eval"``), ``"supernet"`` (the search's result network of a searchable learner), ``"W"`` or ``"V"``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"no such run directory: {str(run_dir)!r}")
    if network not in NETWORK_CHOICES:
        raise ExportError(f"network must be one of {', '.join(n for n in NETWORK_CHOICES if n)}, got {network!r}")
    if network == "derived":
        return derived(run_dir, name, sizes)
    if network in (None, "eval", "trained"):
        path = _evaluated(RunFiles(run_dir), name)
        if path is not None:
            return _from_evaluation(path)
        if network is not None:
            raise ExportError(f"no evaluation stage of {run_dir} trained a network for {name!r}")
    item = _from_search(run_dir, name, None if network == "supernet" else network)
    if network == "supernet" and item.what != "supernet":
        raise ExportError(f"{name!r} is a fixed learner: it has no supernet (export its network with --network W or V)")
    return item


NETWORK_CHOICES = (None, "derived", "trained", "eval", "supernet", "W", "V")
