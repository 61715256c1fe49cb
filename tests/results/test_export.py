"""Exporting networks: TorchScript gives the eager logits; pt files rebuild; a run directory's learners export."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch

from conftest import DARTS, build_spec
from sgl.engine.run.evaluation import model_package
from sgl.engine.results.export import ExportError, export_model, to_onnx, to_torchscript
from sgl.engine.results.models import ArchBaked, exportable, load_model
from sgl.registry.models import GenotypeNetConfig
from sgl.registry.spaces import DartsConfig, PCDartsConfig
from sgl.registry.spaces.published import PDARTS
from sgl.registry.task import Task

DIGITS = Task(num_classes=10, in_channels=1, image_size=8)


def _same_logits(path: Path, eager: torch.nn.Module, task: Task = DIGITS) -> None:
    x = torch.randn(3, task.in_channels, task.image_size, task.image_size, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still what users load
        scripted = torch.jit.load(str(path))
    with torch.no_grad():
        expected, got = eager.eval()(x), scripted(x)
    assert got.shape == (3, task.num_classes)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_torchscript_of_a_genotype_network_gives_the_eager_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = GenotypeNetConfig(genotype="DARTS_V2", channels=8, layers=3, auxiliary=True, drop_path=0.2).build(DIGITS)
    net.train()(torch.randn(4, 1, 8, 8))  # move the BN statistics away from their initial values
    path = to_torchscript(net, torch.randn(1, 1, 8, 8), tmp_path / "net.torchscript.pt")
    _same_logits(path, net)


@pytest.mark.parametrize("config", [DartsConfig(channels=4, layers=3, nodes=2),
                                    PCDartsConfig(channels=4, layers=3, nodes=2, partial_channels=2)], ids=["darts", "pc_darts"])
def test_torchscript_of_a_supernet_with_its_architecture_baked_in(tmp_path: Path, config) -> None:
    torch.manual_seed(0)
    space = config.build(DIGITS)
    with torch.no_grad():
        for p in space.arch_parameters():
            p.normal_()  # an architecture far from uniform
    net = space.new_network()
    baked = ArchBaked(net, space())
    path = to_torchscript(baked, torch.randn(1, 1, 8, 8), tmp_path / "supernet.torchscript.pt")
    _same_logits(path, baked)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(baked.eval()(x), net.eval()(x, space()))


def _mini_run(tmp_path: Path) -> tuple[Path, dict[str, torch.nn.Module]]:
    """A run directory as the executor leaves it, with one DARTS learner whose weights were changed."""
    from accelerate import Accelerator

    from sgl.engine.plan.compile import compile_spec
    from sgl.engine.run.learners import Learner

    run = tmp_path / "run"
    run.mkdir()
    stages = [{"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]}, {"name": "derive"},
              {"name": "evaluate", "learner": "bob", "epochs": 1, "channels": 4, "layers": 3}]
    build_spec(run / "spec.resolved.yaml", {"name": "mini", "seed": 1, "data": {"dataset": "digits", "batch_size": 32},
                                            "learners": {"alice": DARTS, "bob": DARTS}, "stages": stages})
    (run / "run.json").write_text(json.dumps({"name": "mini", "spec": "spec.yaml", "base_dir": str(tmp_path), "overrides": [], "seed": 1,
                                              "task": {"num_classes": 10, "in_channels": 1, "image_size": 8}}))
    plan = compile_spec(run / "spec.resolved.yaml").plan
    accelerator = Accelerator(cpu=True)
    learners = {k: Learner(plan.learners[k], DIGITS, accelerator) for k in ("alice", "bob")}
    with torch.no_grad():
        for learner in learners.values():
            for p in learner.space.arch_parameters():
                p.normal_()
            for net in learner.nets.values():
                for p in net.module.parameters():
                    p.add_(0.05)
    (run / "checkpoints").mkdir()
    from sgl.engine.run.checkpoint import CHECKPOINT_FORMAT

    torch.save({"format": CHECKPOINT_FORMAT, "learners": {k: l.state_dict() for k, l in learners.items()}},
               run / "checkpoints" / "last.pt")
    learners["alice"].architecture().save(run / "genotypes" / "alice.json")

    # bob was evaluated: its genotype network is in models/, and the summary says so.
    info = {"type": "genotype_network", "genotype": PDARTS.to_json(), "channels": 4, "layers": 3, "auxiliary": True,
            "drop_path": 0.3, "variant": "auto", "task": {"num_classes": 10, "in_channels": 1, "image_size": 8}}
    evaluated = GenotypeNetConfig(genotype="PDARTS", channels=4, layers=3, auxiliary=True).build(DIGITS)
    (run / "models").mkdir()
    torch.save(model_package(evaluated, info, stage="evaluate", learner="bob"), run / "models" / "evaluate.pt")
    (run / "summary.json").write_text(json.dumps({"name": "mini", "evaluations": [
        {"stage": "evaluate", "learner": "bob", "model": "models/evaluate.pt"}]}))
    return run, {"alice": ArchBaked(learners["alice"].nets["V"].module, learners["alice"].arch()), "bob_eval": evaluated,
                 "bob_W": ArchBaked(learners["bob"].nets["W"].module, learners["bob"].arch()),
                 "alice_genotype": learners["alice"].architecture()}


def test_export_from_a_run_directory(tmp_path: Path) -> None:
    run, models = _mini_run(tmp_path)

    # alice: searched only → the V supernet with its architecture baked in, when asked for (#22: by
    # default an export is the derived network: tests/results/test_export_derived.py)
    path = export_model(run, "alice", "torchscript", network="supernet")
    assert path == run / "export" / "alice.supernet.torchscript.pt"
    _same_logits(path, models["alice"])
    pt = export_model(run, "alice", "pt", tmp_path / "alice.pt", network="supernet")
    _same_logits(path, load_model(pt))
    genotype = export_model(run, "alice", "genotype", tmp_path / "alice.json")
    assert json.loads(genotype.read_text()) == models["alice_genotype"].to_json()

    # bob: evaluated → the evaluation's genotype network, unless the search network is asked for.
    _same_logits(export_model(run, "bob", "torchscript", tmp_path / "bob.ts"), models["bob_eval"])
    assert json.loads(export_model(run, "bob", "genotype", tmp_path / "bob.json").read_text()) == PDARTS.to_json()
    assert "evaluation network evaluate.pt" == exportable(run, "evaluate").source  # or named by its stage
    bob_w = load_model(export_model(run, "bob", "pt", tmp_path / "bob_w.pt", network="W"))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(bob_w(x), models["bob_W"].eval()(x))

    with pytest.raises(ExportError, match="no learner .* named 'carol'.*alice, bob"):
        export_model(run, "carol", "pt")
    with pytest.raises(ExportError, match="unknown format"):
        export_model(run, "alice", "keras")


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_package_says_what_to_install(tmp_path: Path) -> None:
    net = GenotypeNetConfig(genotype="DARTS_V2", channels=4, layers=3).build(DIGITS)
    with pytest.raises(ExportError, match="pip install"):
        to_onnx(net, torch.randn(1, 1, 8, 8), tmp_path / "net.onnx")


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx is not installed")
def test_onnx_export_writes_a_checked_model(tmp_path: Path) -> None:  # pragma: no cover - needs onnx
    import onnx

    net = GenotypeNetConfig(genotype="DARTS_V2", channels=4, layers=3).build(DIGITS)
    path = to_onnx(net, torch.randn(1, 1, 8, 8), tmp_path / "net.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
