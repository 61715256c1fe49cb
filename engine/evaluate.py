"""The evaluation stage: train a genotype from scratch with the DARTS protocol and test it.

DARTS' protocol (every value is a field of the stage, so each can be overridden):

- CIFAR: 20 cells, 36 channels, 600 epochs, batch 96, SGD 0.025 cosine to 0, weight decay 3e-4,
  cutout 16, auxiliary head weight 0.4, drop-path 0.3 (ramped linearly over the epochs),
  gradient clipping 5. These are the stage's defaults.
- ImageNet: 14 cells, 48 channels, 250 epochs, label smoothing 0.1, auxiliary 0.4, no cutout.

The network trains on the whole training set (DARTS' D_train and D_val together) and is tested
after every epoch on the test set; the final and the best test error are both reported and
labelled as such. Parameters are counted as DARTS does (auxiliary head excluded) and
multiply-adds with ``torch.utils.flop_counter`` (one image, eval mode, auxiliary head not run).

The stage checkpoints itself after every epoch (``checkpoints/eval-<stage>.pt``) and resumes from
that file; a finished stage keeps its result there, so running it again returns at once.
"""

from __future__ import annotations

import copy
import io
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from sgl.registry.models.genotype_net import count_parameters, genotype_network
from sgl.registry.spaces.genotype import Genotype, resolve_genotype
from sgl.registry.task import Task

from .data import BatchStream, eval_batches, stream_seed
from .rundir import RunDir, atomic_write_bytes

#: Format tag of a saved model package (``models/<stage>.pt`` and ``sgl export --format pt``).
MODEL_FORMAT = "sgl.model"
MODEL_FORMAT_VERSION = 1


def checkpoint_path(run_path: Path, stage_name: str) -> Path:
    return Path(run_path) / "checkpoints" / f"eval-{stage_name}.pt"


def model_path(run_path: Path, stage_name: str) -> Path:
    return Path(run_path) / "models" / f"{stage_name}.pt"


# --------------------------------------------------------------------------- genotype and network


def stage_genotype(stage: Any, run_path: Path | None, base_dir: Path | None) -> tuple[Genotype, str]:
    """``(genotype, label)`` an evaluation stage names: the run's derived genotype of
    ``stage.learner`` (``genotypes/<learner>.json``), or ``stage.genotype`` (a name, or a file
    relative to ``base_dir``). ``label`` is the name or path as the summary records it."""
    if stage.learner is not None:
        if run_path is None:
            raise ValueError(f"evaluation stage {stage.name!r} evaluates learner {stage.learner!r}: it needs the run directory")
        path = Path(run_path) / "genotypes" / f"{stage.learner}.json"
        if not path.is_file():
            raise ValueError(
                f"evaluation stage {stage.name!r}: no genotype for learner {stage.learner!r} at {path} "
                "(a derive stage writes it; put one before this stage)"
            )
        return Genotype.load(path), f"genotypes/{stage.learner}.json"
    return resolve_genotype(stage.genotype, base_dir), str(stage.genotype)


def network_info(stage: Any, genotype: Genotype, task: Task) -> dict[str, Any]:
    """Everything needed to rebuild the evaluated network (plain data: loads with weights_only)."""
    return {
        "type": "genotype_network",
        "genotype": genotype.to_json(),
        "channels": int(stage.channels),
        "layers": int(stage.layers),
        "auxiliary": stage.auxiliary_weight > 0,
        "drop_path": float(stage.drop_path),
        "variant": str(stage.variant),
        "task": {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size},
    }


def build_network(info: dict[str, Any]) -> nn.Module:
    """The genotype network described by ``network_info`` (freshly initialised)."""
    return genotype_network(
        Genotype.from_json(info["genotype"]),
        Task(**info["task"]),
        channels=info["channels"],
        layers=info["layers"],
        auxiliary=info["auxiliary"],
        drop_path=info["drop_path"],
        variant=info["variant"],
    )


def count_madds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass (``torch.utils.flop_counter``: FLOPs / 2), in eval mode.

    Counted on a copy on the meta device: no memory for activations and no arithmetic. The
    counter covers convolutions and matrix products, as DARTS-era counts do.
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        probe = copy.deepcopy(model).to("meta").eval()
        x = torch.zeros(input_shape, device="meta")
    except (RuntimeError, NotImplementedError):  # pragma: no cover - a module that refuses meta
        probe, x = copy.deepcopy(model).cpu().eval(), torch.zeros(input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(x)
    return int(counter.get_total_flops()) // 2


def network_cost(model: nn.Module, task: Task) -> dict[str, float]:
    """``{"params_M", "madds_M"}``: parameters without the auxiliary head, multiply-adds of one image."""
    shape = (1, task.in_channels, task.image_size, task.image_size)
    return {
        "params_M": count_parameters(model, exclude_auxiliary=True) / 1e6,
        "madds_M": count_madds(model, shape) / 1e6,
    }


def iterations_per_epoch(stage: Any, spec: Any, world: int = 1) -> int | None:
    """Training iterations of one epoch of this stage (for progress totals), when known without loading data."""
    n = spec.data.dataset.num_train()
    return None if n is None else n // (stage.batch_size * world)


# --------------------------------------------------------------------------- the stage


def _save(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _reduce_grads(accelerator: Any, params: list[nn.Parameter]) -> None:
    """Mean of the gradients over processes, in one collective (no-op on one process)."""
    if accelerator.num_processes <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _sync_buffers(accelerator: Any, net: nn.Module) -> None:
    """Average the BatchNorm statistics over processes, so every rank tests and saves the same model."""
    if accelerator.num_processes <= 1:
        return
    for buffer in net.buffers():
        if buffer.is_floating_point():
            buffer.copy_(accelerator.reduce(buffer, reduction="mean"))


def _test_accuracy(net: nn.Module, dataset: Any, batch_size: int, accelerator: Any) -> float:
    net.eval()
    correct = torch.zeros((), device=accelerator.device)
    count = torch.zeros((), device=accelerator.device)
    with torch.no_grad():
        for x, y in eval_batches(dataset, None, batch_size, accelerator.device,
                                 rank=accelerator.process_index, world=accelerator.num_processes):
            with accelerator.autocast():
                logits = net(x)
            correct += (logits.argmax(dim=1) == y).sum()
            count += y.shape[0]
    totals = accelerator.reduce(torch.stack([correct, count]), reduction="sum")
    net.train()
    return float(totals[0] / totals[1].clamp_min(1))


def _restore_metric_lines(rundir: RunDir, stage_name: str, records: list[dict[str, Any]]) -> None:
    """Re-append this stage's epoch lines that metrics.jsonl lost (e.g. cut back on a resume)."""
    if not rundir.writer or not records:
        return
    import json

    seen = set()
    if rundir.metrics_file.exists():
        for line in rundir.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "eval_epoch" and record.get("stage") == stage_name:
                seen.add(record.get("epoch"))
    for record in records:
        if record["epoch"] not in seen:
            rundir.log(record)


def evaluate_genotype(
    stage: Any,
    spec: Any,
    genotype: str | Path | Genotype | None = None,
    *,
    base_dir: Path,
    accelerator: Any,
    rundir: RunDir,
    progress: Any = None,
    seed: int,
    bundle: Any = None,
    after_epoch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train the genotype of ``stage`` from scratch on the whole training set and test it every epoch.

    ``genotype``: a ``Genotype``, a name or a file (relative to ``base_dir``); None takes it from
    the stage (``stage.learner``'s ``genotypes/<learner>.json`` in the run, or ``stage.genotype``).
    ``seed``: the run seed, the one the search's data were built with (a split such as digits'
    test set depends on it); weights and batch order derive from it and the stage name.
    ``bundle``: an already loaded ``DataBundle`` built with ``cutout=stage.cutout`` (else built here).
    ``after_epoch(epochs_done)``: called after each epoch's checkpoint; it may raise to stop the
    stage there (a signal, ``--stop-after``): a later call resumes from that checkpoint.
    Returns the summary entry of the stage (see the module docstring and ``result`` below).
    """
    run_path = Path(rundir.path)
    if genotype is None:
        geno, label = stage_genotype(stage, run_path, base_dir)
    elif isinstance(genotype, Genotype):
        geno = genotype
        label = f"genotypes/{stage.learner}.json" if stage.learner else str(stage.genotype or "<given>")
    else:
        geno, label = resolve_genotype(genotype, base_dir), str(genotype)

    ckpt_file = checkpoint_path(run_path, stage.name)
    state = torch.load(ckpt_file, map_location="cpu", weights_only=True) if ckpt_file.exists() else None
    if state is not None and state.get("result") is not None:
        _restore_metric_lines(rundir, stage.name, state.get("records", []))
        return dict(state["result"])

    if bundle is None:
        bundle = spec.data.dataset.build(Path(base_dir), seed=seed, cutout=stage.cutout)
    task: Task = bundle.task
    info = network_info(stage, geno, task)

    torch.manual_seed(stream_seed(seed, f"evaluate/{stage.name}"))  # the same weights on every process
    net = build_network(info)
    cost = network_cost(net, task)
    net.to(accelerator.device).train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = stage.optimizer.build(params)
    scheduler = stage.schedule.build(optimizer, stage.epochs)
    optimizer = accelerator.prepare_optimizer(optimizer, device_placement=False)

    stream = BatchStream(
        bundle.train, torch.arange(len(bundle.train)), stage.batch_size,
        stream_seed(seed, f"evaluate/{stage.name}/train"),
        rank=accelerator.process_index, world=accelerator.num_processes,
        num_workers=spec.data.num_workers, device=accelerator.device,
    )
    iterations = stream.batches_per_cycle

    start_epoch, elapsed, best_acc, records = 0, 0.0, -1.0, []
    if state is not None:
        if state.get("network") != info or state.get("epochs") != stage.epochs:
            raise ValueError(
                f"{ckpt_file} was written for another network or schedule than evaluation stage "
                f"{stage.name!r} now asks for; delete it to start this stage afresh"
            )
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stream.load_state_dict(state["stream"])
        _set_rng_state(state["rng"])
        start_epoch, elapsed, best_acc = int(state["epoch"]), float(state["elapsed"]), float(state["best_acc"])
        records = list(state["records"])
        _restore_metric_lines(rundir, stage.name, records)
        if progress is not None and hasattr(progress, "message"):
            progress.message(f"[{stage.name}] resuming at epoch {start_epoch + 1}/{stage.epochs}")
    test_acc = records[-1]["test/acc"] if records else float("nan")
    resumed_at = time.perf_counter()
    elapsed_before = elapsed

    for epoch in range(start_epoch, stage.epochs):
        net.drop_path_prob = stage.drop_path * epoch / stage.epochs  # DARTS: linear ramp from 0
        lr = optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=accelerator.device)
        correct = torch.zeros((), device=accelerator.device)
        count = torch.zeros((), device=accelerator.device)
        for iteration in range(iterations):
            x, y = stream.next()
            with accelerator.autocast():
                logits, aux = net.forward_with_aux(x)
                loss = F.cross_entropy(logits, y, label_smoothing=stage.label_smoothing)
                if aux is not None and stage.auxiliary_weight > 0:
                    loss = loss + stage.auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=stage.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            _reduce_grads(accelerator, params)
            if stage.grad_clip is not None:
                accelerator.unscale_gradients(optimizer=optimizer)  # a no-op unless fp16
                torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            optimizer.step()
            loss_sum += loss.detach().float() * y.shape[0]
            correct += (logits.detach().argmax(dim=1) == y).sum()
            count += y.shape[0]
            if progress is not None:
                progress.advance(stage.name, epoch, stage.epochs, iteration, iterations)
        scheduler.step()

        totals = accelerator.reduce(torch.stack([loss_sum, correct.float(), count.float()]), reduction="sum")
        train_loss = float(totals[0] / totals[2])
        if not math.isfinite(train_loss):
            from .execute import NonFiniteLoss  # here: execute imports this module

            raise NonFiniteLoss(f"evaluation stage {stage.name!r}: non-finite training loss in epoch {epoch + 1}")
        train_acc = float(totals[1] / totals[2])
        _sync_buffers(accelerator, net)
        test_acc = _test_accuracy(net, bundle.test, spec.data.eval_batch_size, accelerator)
        best_acc = max(best_acc, test_acc)
        elapsed = elapsed_before + time.perf_counter() - resumed_at
        record = {
            "kind": "eval_epoch", "stage": stage.name, "epoch": epoch,
            "train/loss": train_loss, "train/acc": train_acc, "test/acc": test_acc,
            "lr": lr, "drop_path_prob": net.drop_path_prob, "time": elapsed,
        }
        records.append(record)
        rundir.log(record)
        if progress is not None:
            progress.report({stage.name: {"loss": train_loss, "train acc": train_acc, "test acc": test_acc}})
        if rundir.writer:
            _save(ckpt_file, {
                "epoch": epoch + 1, "model": _cpu_state(net), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "stream": stream.state_dict(), "rng": _rng_state(),
                "elapsed": elapsed, "best_acc": best_acc, "records": records, "result": None,
                "network": info, "epochs": stage.epochs,
            })
        if after_epoch is not None:
            after_epoch(epoch + 1)

    wall = elapsed
    device = "cuda" if accelerator.device.type == "cuda" else "cpu"
    hours = wall / 3600
    result = {
        "stage": stage.name,
        "learner": stage.learner,
        "genotype": label,
        "genotype_json": geno.to_json(),
        "dataset": spec.data.dataset.name,
        "epochs": stage.epochs,
        "channels": stage.channels,
        "layers": stage.layers,
        "test_error_final": 100.0 * (1.0 - test_acc),
        "test_error_best": 100.0 * (1.0 - best_acc),
        "test_acc_final": test_acc,
        "test_acc_best": best_acc,
        "params_M": cost["params_M"],
        "madds_M": cost["madds_M"],
        "device": device,
        "num_processes": accelerator.num_processes,
        "hours": hours,
        "device_hours": hours * accelerator.num_processes,
        "wall_seconds": wall,
        "model": f"models/{stage.name}.pt",
    }
    if rundir.writer:
        _save(model_path(run_path, stage.name), model_package(net, info, stage=stage.name, learner=stage.learner))
        _save(ckpt_file, {"epoch": stage.epochs, "model": _cpu_state(net), "records": records, "result": result,
                          "elapsed": wall, "best_acc": best_acc})
    return result


def model_package(net: nn.Module, info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A saved model: its weights and the plain-data description that rebuilds it."""
    return {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "network": info,
            "state_dict": _cpu_state(net), **extra}
