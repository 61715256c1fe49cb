"""`sgl export`: a run's final model, ready for use, as a genotype, a weights file, TorchScript or ONNX.

What is exported for ``NAME``:

- an evaluation stage's network when an evaluation trained one for learner ``NAME`` (or the stage
  is called ``NAME``): the genotype network of ``models/<stage>.pt``;
- otherwise learner ``NAME`` of the search, rebuilt from ``checkpoints/last.pt``: for a searchable
  learner the supernet with its architecture (softmax(α), β) baked in as constants, so the
  exported model takes images and returns logits; for a fixed learner its network. Its V network
  by default (the one the architecture was learned through), W on request.

Formats: ``genotype`` (the genotype JSON), ``pt`` (a dict saved with ``torch.save`` holding the
state dict and the plain-data description that rebuilds the network, loadable with
``weights_only=True``; ``load_model`` rebuilds it), ``torchscript`` (``torch.jit.trace``; checked
to give the eager model's logits) and ``onnx`` (needs the ``onnx`` package).
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from sgl.registry.evaluation import build_network
from sgl.registry.spaces.genotype import Genotype
from sgl.registry.task import Task

from ..errors import ExportError, RunDirError, SpecError
from ..run.evaluation import MODEL_FORMAT, MODEL_FORMAT_VERSION
from ..rundir.layout import RunDir, atomic_write_bytes, atomic_write_text, read_json

FORMATS = ("genotype", "pt", "torchscript", "onnx")
SUFFIX = {"genotype": ".json", "pt": ".pt", "torchscript": ".torchscript.pt", "onnx": ".onnx"}


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
    """A model ready to export: the eager module (eval mode), its package for ``pt``, its genotype."""

    def __init__(self, module: nn.Module, package: dict[str, Any], genotype: Genotype | None, task: Task, source: str) -> None:
        self.module = module.eval()
        self.package = package
        self.genotype = genotype
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


def _evaluated(run: RunDir, name: str) -> Path | None:
    """``models/<stage>.pt`` of the evaluation that trained ``name`` (a learner or a stage name)."""
    for ev in run.read_summary().get("evaluations") or []:
        if name in (ev.get("learner"), ev.get("stage")):
            path = run.path / ev["model"] if ev.get("model") else run.model(str(ev.get("stage")))
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
    return Exportable(module, package, Genotype.from_json(info["genotype"]), Task(**info["task"]),
                      source=f"evaluation network {path.name}")


def run_task(run: RunDir, plan: Any, base_dir: Path) -> Task:
    """The run's Task: recorded in run.json / summary.json when the executor wrote it, else from the data."""
    for source in (read_json(run.run_info), run.read_summary()):
        task = source.get("task")
        if isinstance(task, dict):
            return Task(**{k: int(task[k]) for k in ("num_classes", "in_channels", "image_size")})
    return plan.data.dataset.build(base_dir, seed=plan.seed).task


def load_learner(run_dir: Path, name: str, accelerator: Any = None):
    """Learner ``name`` of a run, with the weights of its last checkpoint: ``(learner, task)``."""
    from ..run.checkpoint import Checkpointer
    from ..plan.compile import compile_spec
    from ..run.learners import Learner

    run = RunDir(Path(run_dir))
    try:
        info = run.read_run_info()
    except RunDirError as exc:
        raise ExportError(str(exc)) from None
    base_dir = Path(info.get("base_dir") or run.path)
    if not run.resolved_spec.is_file():
        raise ExportError(f"{str(run.path)!r} has no {run.resolved_spec.name}")
    try:
        plan = compile_spec(run.resolved_spec, base_dir=base_dir).plan  # paths stay relative to the original spec
    except SpecError as exc:
        raise ExportError("\n".join(map(str, exc.problems))) from None
    if name not in plan.learners:
        known = ", ".join(plan.learners) or "none"
        raise ExportError(f"no learner (or evaluation stage with a trained network) named {name!r} in {run.path}; learners: {known}")
    try:
        checkpoint = Checkpointer(run).load()
    except RunDirError as exc:
        raise ExportError(str(exc)) from None
    state = (checkpoint.get("learners") or {}).get(name)
    if state is None:
        raise ExportError(f"{run.checkpoint} holds no weights for learner {name!r}")
    if accelerator is None:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    task = run_task(run, plan, base_dir)
    learner = Learner(plan.learners[name], task, accelerator)
    try:
        learner.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ExportError(f"{run.checkpoint}: its weights of {name!r} do not fit the run's network "
                          f"({str(exc).splitlines()[0]})") from None
    return learner, task


def _from_search(run_dir: Path, name: str, network: str | None) -> Exportable:
    learner, task = load_learner(run_dir, name)
    net_name = network or ("V" if "V" in learner.nets else "W")
    if net_name not in learner.nets:
        raise ExportError(f"learner {name!r} has no {net_name} network (it has {', '.join(learner.nets)})")
    module = learner.nets[net_name].module.cpu().eval()
    config = learner.plan.config.model_dump(mode="json")
    base = {"task": _task_dict(task), "learner": name, "net": net_name, "config": config}
    if learner.space is not None:
        learner.space.cpu()
        arch = {k: v.detach().cpu() for k, v in learner.arch().items()}
        wrapped = ArchBaked(module, arch)
        package = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION,
                   "network": {"type": "supernet", "arch": arch, **base},
                   "space": {k: v.detach().cpu() for k, v in learner.space.state_dict().items()},
                   "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "learner": name}
        genotype_file = RunDir(run_dir).genotype(name)
        genotype = Genotype.load(genotype_file) if genotype_file.is_file() else learner.genotype()
        return Exportable(wrapped, package, genotype, task, source=f"search network {name}/{net_name} (architecture baked in)")
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
        path = _evaluated(RunDir(run_dir), name)
        if path is not None:
            return _from_evaluation(path)
        if network == "eval":
            raise ExportError(f"no evaluation stage of {run_dir} trained a network for {name!r}")
    return _from_search(run_dir, name, network)


# --------------------------------------------------------------------------- writing


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, and the legacy ONNX exporter with it;
        # both still work and are what users load with torch.jit.load / onnxruntime today.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def to_torchscript(module: nn.Module, example: torch.Tensor, out: Path, *, check: torch.Tensor | None = None) -> Path:
    """Trace ``module`` (eval mode) on ``example``, save it, and check it gives the eager logits."""
    module = module.eval()
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(out))
        loaded = torch.jit.load(str(out), map_location="cpu")
        probe = example if check is None else check
        eager, scripted = module(probe), loaded(probe)
    if not torch.allclose(eager, scripted, rtol=1e-4, atol=1e-5):
        out.unlink(missing_ok=True)
        diff = float((eager - scripted).abs().max())
        raise ExportError(f"the traced model's logits differ from the eager model's (max |diff| {diff:.3g}); not exported")
    return out


def to_onnx(module: nn.Module, example: torch.Tensor, out: Path) -> Path:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise ExportError("ONNX export needs the 'onnx' package: pip install 'sgl[onnx]' (or pip install onnx)")
    out.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    with _quiet(), torch.no_grad():
        try:
            torch.onnx.export(module, (example,), str(out), dynamo=False, input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        except TypeError:  # pragma: no cover - a torch whose exporter has no legacy path
            torch.onnx.export(module, (example,), str(out), input_names=["images"], output_names=["logits"])
    return out


def export_model(run_dir: str | Path, learner: str, fmt: str, out: str | Path | None = None, *, network: str | None = None) -> Path:
    """Export the final model of ``learner`` (or of an evaluation stage) of a run; returns the file.

    ``out`` defaults to ``<run_dir>/export/<learner><suffix>``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else RunDir(run_dir).export(learner, SUFFIX[fmt])
    item = exportable(run_dir, learner, network)
    return write_export(item, fmt, out)


def write_export(item: Exportable, fmt: str, out: Path) -> Path:
    if fmt == "genotype":
        if item.genotype is None:
            raise ExportError(f"the {item.source} has no genotype (a fixed learner); export it as pt, torchscript or onnx")
        atomic_write_text(out, json.dumps(item.genotype.to_json(), indent=2) + "\n")
        return out
    if fmt == "pt":
        import io

        buffer = io.BytesIO()
        torch.save(item.package, buffer)
        atomic_write_bytes(out, buffer.getvalue())
        return out
    if fmt == "torchscript":
        return to_torchscript(item.module, item.example(1), out, check=item.example(2))
    if fmt == "onnx":
        return to_onnx(item.module, item.example(1), out)
    raise ExportError(f"unknown format {fmt!r}")


__all__ = ["ArchBaked", "ExportError", "Exportable", "FORMATS", "export_model", "exportable", "load_learner",
           "load_model", "to_onnx", "to_torchscript", "write_export"]
