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

from sgl.registry.spaces.genotype import Genotype
from sgl.registry.task import Task

from .evaluate import MODEL_FORMAT, MODEL_FORMAT_VERSION, build_network

FORMATS = ("genotype", "pt", "torchscript", "onnx")
SUFFIX = {"genotype": ".json", "pt": ".pt", "torchscript": ".torchscript.pt", "onnx": ".onnx"}


class ExportError(Exception):
    """A request that cannot be met: unknown learner or format, a missing file or package."""


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


def _evaluated(run_dir: Path, name: str) -> Path | None:
    """``models/<stage>.pt`` of the evaluation that trained ``name`` (a learner or a stage name)."""
    summary = _read_json(run_dir / "summary.json")
    for ev in summary.get("evaluations") or []:
        if name in (ev.get("learner"), ev.get("stage")):
            path = run_dir / (ev.get("model") or f"models/{ev.get('stage')}.pt")
            if path.is_file():
                return path
    models = run_dir / "models"
    if (models / f"{name}.pt").is_file():
        return models / f"{name}.pt"
    for path in sorted(models.glob("*.pt")) if models.is_dir() else []:
        try:
            package = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a torn or foreign file is simply not a match
            continue
        if isinstance(package, dict) and package.get("learner") == name:
            return path
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _from_evaluation(path: Path) -> Exportable:
    package = torch.load(path, map_location="cpu", weights_only=True)
    module = _rebuild(package)
    info = package["network"]
    return Exportable(module, package, Genotype.from_json(info["genotype"]), Task(**info["task"]),
                      source=f"evaluation network {path.name}")


def run_task(run_dir: Path, spec: Any, base_dir: Path) -> Task:
    """The run's Task: recorded in run.json / summary.json when the executor wrote it, else from the data."""
    for source in (_read_json(run_dir / "run.json"), _read_json(run_dir / "summary.json")):
        task = source.get("task")
        if isinstance(task, dict):
            return Task(**{k: int(task[k]) for k in ("num_classes", "in_channels", "image_size")})
    return spec.data.dataset.build(base_dir, seed=spec.seed).task


def load_learner(run_dir: Path, name: str, accelerator: Any = None):
    """Learner ``name`` of a run, with the weights of ``checkpoints/last.pt``: ``(learner, task)``."""
    from .compile import compile_spec
    from .learners import Learner
    from .load import SpecError
    from .rundir import RunDirError, read_run_info

    try:
        info = read_run_info(run_dir)
    except RunDirError as exc:
        raise ExportError(str(exc)) from None
    base_dir = Path(info.get("base_dir") or run_dir)
    resolved = run_dir / "spec.resolved.yaml"
    if not resolved.is_file():
        raise ExportError(f"{str(run_dir)!r} has no spec.resolved.yaml")
    try:
        compiled = compile_spec(resolved, base_dir=base_dir)  # paths stay relative to the original spec
    except SpecError as exc:
        raise ExportError("\n".join(map(str, exc.problems))) from None
    spec, graph = compiled.spec, compiled.graph
    if name not in graph.learners:
        known = ", ".join(graph.learners) or "none"
        raise ExportError(f"no learner (or evaluation stage with a trained network) named {name!r} in {run_dir}; learners: {known}")
    checkpoint_file = run_dir / "checkpoints" / "last.pt"
    if not checkpoint_file.is_file():
        raise ExportError(f"{str(run_dir)!r} has no checkpoint (checkpoints/last.pt)")
    checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
    state = (checkpoint.get("learners") or {}).get(name)
    if state is None:
        raise ExportError(f"{checkpoint_file} holds no weights for learner {name!r}")
    if accelerator is None:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    task = run_task(run_dir, spec, base_dir)
    lp = graph.learners[name]
    learner = Learner(lp, spec.learners[name], spec, task, accelerator)
    learner.load_state_dict(state, dict(lp.schedule_epochs))
    return learner, task


def _from_search(run_dir: Path, name: str, network: str | None) -> Exportable:
    learner, task = load_learner(run_dir, name)
    net_name = network or ("V" if "V" in learner.nets else "W")
    if net_name not in learner.nets:
        raise ExportError(f"learner {name!r} has no {net_name} network (it has {', '.join(learner.nets)})")
    module = learner.nets[net_name].module.cpu().eval()
    config = learner.config.model_dump(mode="json")
    base = {"task": _task_dict(task), "learner": name, "net": net_name, "config": config}
    if learner.space is not None:
        learner.space.cpu()
        arch = {k: v.detach().cpu() for k, v in learner.arch().items()}
        wrapped = ArchBaked(module, arch)
        package = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION,
                   "network": {"type": "supernet", "arch": arch, **base},
                   "space": {k: v.detach().cpu() for k, v in learner.space.state_dict().items()},
                   "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "learner": name}
        genotype_file = run_dir / "genotypes" / f"{name}.json"
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
        path = _evaluated(run_dir, name)
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
    out = Path(out) if out is not None else run_dir / "export" / f"{learner}{SUFFIX[fmt]}"
    item = exportable(run_dir, learner, network)
    return write_export(item, fmt, out)


def write_export(item: Exportable, fmt: str, out: Path) -> Path:
    from .rundir import atomic_write_bytes, atomic_write_text

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
