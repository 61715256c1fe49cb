"""`sgl export`: a run's networks as files that say what they are.

For each searchable learner ``export_run`` writes its genotype (``<learner>.genotype.json``), its
**derived** network (``<learner>.derived.<ext>``: the discrete network of the architecture found,
sized as its evaluate stage — or the ``darts`` protocol — says, untrained) and, where an evaluate
stage trained it, the **trained** one (``<learner>.trained.<ext>``); for a fixed learner its
network (``<learner>.network.<ext>``). ``--network supernet`` gives the search's supernet with the
architecture baked in (``<learner>.supernet.<ext>``).

Formats: ``pt2`` (``torch.export``; load with ``torch.export.load(path).module()``, plain PyTorch),
``pt`` (a dict saved with ``torch.save``: the state dict, the plain-data description that rebuilds
the network and the metadata, loadable with ``weights_only=True``; ``models.load_model`` rebuilds
it), ``torchscript`` (``torch.jit.trace``, deprecated by PyTorch, kept while it exists), ``onnx``
(needs this project's ``onnx`` extra) and ``genotype`` (JSON). Every network file is checked to give
the eager model's logits, and carries its metadata (what it is, whether trained, where its sizes
came from): ``sgl.json`` among a pt2 or TorchScript file's extra files, ``export`` in a pt file,
the ONNX model's metadata properties.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import ExportError
from ..extras import install_hint
from ..rundir.files import atomic_write_bytes, atomic_write_text
from ..rundir.layout import RunDir
from .models import Exportable, exportable

FORMATS = ("pt2", "pt", "torchscript", "onnx", "genotype")
SUFFIX = {"pt2": ".pt2", "pt": ".pt", "torchscript": ".torchscript.pt", "onnx": ".onnx", "genotype": ".json"}
META = "sgl.json"  # the metadata's name among a pt2 / TorchScript file's extra files


# --------------------------------------------------------------------------- writing


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, and the legacy ONNX exporter with it;
        # both still work and are what some users load today (torch.jit.load, onnxruntime).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _check(out: Path, eager: torch.Tensor, exported: torch.Tensor, how: str) -> None:
    if not torch.allclose(eager, exported, rtol=1e-4, atol=1e-5):
        out.unlink(missing_ok=True)
        diff = float((eager - exported).abs().max())
        raise ExportError(f"the {how} model's logits differ from the eager model's (max |diff| {diff:.3g}); not exported")


def to_exported(module: nn.Module, example: torch.Tensor, out: Path, *, check: torch.Tensor | None = None,
                meta: dict[str, Any] | None = None) -> Path:
    """``torch.export`` of ``module`` (eval mode) with a free batch size, saved and checked."""
    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with _quiet(), torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, str(out), extra_files={META: json.dumps(meta or {})})
        probe = example if check is None else check
        _check(out, module(probe), torch.export.load(str(out)).module()(probe), "exported")
    return out


def to_torchscript(module: nn.Module, example: torch.Tensor, out: Path, *, check: torch.Tensor | None = None,
                   meta: dict[str, Any] | None = None) -> Path:
    """Trace ``module`` (eval mode) on ``example``, save it, and check it gives the eager logits."""
    module = module.eval()
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(out), _extra_files={META: json.dumps(meta or {})})
        loaded = torch.jit.load(str(out), map_location="cpu")
        probe = example if check is None else check
        _check(out, module(probe), loaded(probe), "traced")
    return out


def to_onnx(module: nn.Module, example: torch.Tensor, out: Path, *, meta: dict[str, Any] | None = None) -> Path:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise ExportError(f"ONNX export needs the onnx package: {install_hint('onnx')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    with _quiet(), torch.no_grad():
        try:
            torch.onnx.export(module, (example,), str(out), dynamo=False, input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        except TypeError:  # pragma: no cover - a torch whose exporter has no legacy path
            torch.onnx.export(module, (example,), str(out), input_names=["images"], output_names=["logits"])
    if meta:
        import onnx

        model = onnx.load(str(out))
        onnx.helper.set_model_props(model, {META: json.dumps(meta)})
        onnx.save(model, str(out))
    return out


def file_name(item: Exportable, learner: str, fmt: str) -> str:
    """``<learner>.<what><suffix>``: alice.derived.pt2, alice.trained.onnx, alice.genotype.json."""
    what = "genotype" if fmt == "genotype" else item.what
    net = item.meta.get("net")
    if item.what in ("supernet", "network") and net and net != item.meta.get("result_net", net):
        what += f".{net}"  # not the learner's result network: say which
    return f"{learner}.{what}{SUFFIX[fmt]}"


def export_model(run_dir: str | Path, learner: str, fmt: str = "pt2", out: str | Path | None = None, *,
                 network: str | None = None, sizes: dict[str, int] | None = None) -> Path:
    """Export one network of ``learner`` (or of an evaluation stage) of a run; returns the file.

    ``network`` (``models.exportable``): by default the trained network of an evaluate stage, else
    the derived network of a searchable learner, else a fixed learner's network. ``out`` defaults
    to ``<run_dir>/export/<learner>.<what><suffix>``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    item = exportable(run_dir, learner, network, sizes=sizes)
    if network is None and item.what == "supernet":  # a searchable learner never evaluated: the architecture found
        item = exportable(run_dir, learner, "derived", sizes=sizes)
    out = Path(out) if out is not None else RunDir(run_dir).export(file_name(item, learner, fmt), "")
    return write_export(item, fmt, out)


def export_run(run_dir: str | Path, learners: list[str] | None = None, fmt: str = "pt2", out_dir: str | Path | None = None,
               *, network: str | None = None, sizes: dict[str, int] | None = None, say: Any = None) -> list[Path]:
    """Every learner's exports (or those of ``learners``) into ``out_dir`` (``<run_dir>/export``):
    for a searchable one its genotype, derived network and, when evaluated, trained network; for a
    fixed one its network. With ``network``, that network alone for each."""
    from ..rundir.reader import RunFiles

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else RunDir(run_dir).path / "export"
    names = learners or _learners(RunFiles(run_dir))
    written: list[Path] = []
    for name in names:
        for what, form in _plan_of(run_dir, name, network, fmt):
            item = exportable(run_dir, name, what, sizes=sizes)
            path = out_dir / file_name(item, name, form)
            if say is not None:
                say(f"writing {path} ({item.source})")
            written.append(write_export(item, form, path))
    return written


def _learners(files: Any) -> list[str]:
    try:
        return list(files.plan.learners)
    except Exception as exc:  # noqa: BLE001 - a run directory that is not one says so below
        raise ExportError(str(exc).splitlines()[0]) from None


def _plan_of(run_dir: Path, name: str, network: str | None, fmt: str) -> list[tuple[str | None, str]]:
    """What to write for ``name``: (network, format) pairs."""
    from ..rundir.reader import RunFiles

    if network is not None or fmt == "genotype":
        return [(network, fmt)]
    files = RunFiles(run_dir)
    if name not in files.architectures:  # a fixed learner (or an evaluation stage's own name)
        return [(None, fmt)]
    pairs: list[tuple[str | None, str]] = [("derived", "genotype"), ("derived", fmt)]
    from .models import _evaluated

    if _evaluated(files, name) is not None:
        pairs.append(("trained", fmt))
    return pairs


def write_export(item: Exportable, fmt: str, out: Path) -> Path:
    if fmt == "genotype":
        if item.architecture is None:
            raise ExportError(f"the {item.source} has no genotype (a fixed learner); export its network instead")
        atomic_write_text(out, json.dumps(item.architecture.to_json(), indent=2) + "\n")
        return out
    if fmt == "pt":
        import io

        buffer = io.BytesIO()
        torch.save(item.package, buffer)
        atomic_write_bytes(out, buffer.getvalue())
        return out
    if fmt == "pt2":
        return to_exported(item.module, item.example(2), out, check=item.example(3), meta=item.meta)
    if fmt == "torchscript":
        return to_torchscript(item.module, item.example(1), out, check=item.example(2), meta=item.meta)
    if fmt == "onnx":
        return to_onnx(item.module, item.example(1), out, meta=item.meta)
    raise ExportError(f"unknown format {fmt!r}")


__all__ = ["ExportError", "FORMATS", "export_model", "export_run", "to_exported", "to_onnx", "to_torchscript", "write_export"]
