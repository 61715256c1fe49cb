"""`sgl export`: a run's final model (``models.exportable``: an evaluated network, else the search's
learner) as a genotype, a weights file, TorchScript or ONNX.

Formats: ``genotype`` (the genotype JSON), ``pt`` (a dict saved with ``torch.save`` holding the
state dict and the plain-data description that rebuilds the network, loadable with
``weights_only=True``; ``models.load_model`` rebuilds it), ``torchscript`` (``torch.jit.trace``;
checked to give the eager model's logits) and ``onnx`` (needs the ``onnx`` package).
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..errors import ExportError
from ..rundir.files import atomic_write_bytes, atomic_write_text
from ..rundir.layout import RunDir
from .models import Exportable, exportable

FORMATS = ("genotype", "pt", "torchscript", "onnx")
SUFFIX = {"genotype": ".json", "pt": ".pt", "torchscript": ".torchscript.pt", "onnx": ".onnx"}


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
        if item.architecture is None:
            raise ExportError(f"the {item.source} has no genotype (a fixed learner); export it as pt, torchscript or onnx")
        atomic_write_text(out, json.dumps(item.architecture.to_json(), indent=2) + "\n")
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


__all__ = ["ExportError", "FORMATS", "export_model", "to_onnx", "to_torchscript", "write_export"]
