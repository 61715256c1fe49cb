"""Setting up a run's device and data (issue #19): bf16 only where the GPU computes in it (fault 9),
fp16 on the CPU said to be float32, and data loaded by each machine's main process first (fault 5)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from conftest import write_spec
from sgl.engine.errors import SpecError
from sgl.engine.plan.compile import compile_spec

SPEC = """
name: setup
seed: 1
data: {dataset: digits, batch_size: 16}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: search, epochs: 1, steps: [A, W]}
run: {mixed_precision: bf16}
"""


def test_bf16_on_a_gpu_that_only_emulates_it_is_refused_with_fp16_suggested(tmp_path, monkeypatch):
    from sgl.engine.run.accelerator import make_accelerator

    plan = compile_spec(write_spec(tmp_path, SPEC)).plan
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-16GB")
    # a V100: bf16 "supported" through emulation only
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    with pytest.raises(SpecError) as info:
        make_accelerator(plan)
    message = str(info.value)
    assert message.startswith("run.mixed_precision: bf16 needs a GPU with bfloat16 arithmetic")
    assert "Tesla V100" in message and "run.mixed_precision=fp16" in message


def test_fp16_on_the_cpu_is_said_to_compute_in_float32(tmp_path, capsys):
    """Accelerate makes fp16 a no-op on the CPU without a word: the run says so on stderr."""
    from sgl.engine.run.accelerator import make_accelerator

    on_cpu = SPEC.replace("{mixed_precision: bf16}", "{mixed_precision: bf16, cpu: true}")
    plan = compile_spec(write_spec(tmp_path, on_cpu.replace("bf16", "fp16"))).plan
    accelerator = make_accelerator(plan)
    assert accelerator.device.type == "cpu" and not accelerator.native_amp
    err = capsys.readouterr().err
    assert "run.mixed_precision is fp16, which Accelerate does not apply on the cpu" in err
    assert "computes in float32" in err and "run.mixed_precision=bf16" in err
    make_accelerator(compile_spec(write_spec(tmp_path, on_cpu, "bf16.yaml")).plan)  # bf16 on the CPU is applied
    assert "fp16" not in capsys.readouterr().err


def test_data_is_loaded_by_each_machines_main_process_first(tmp_path):
    from sgl.engine.run.runtime import load_bundle

    plan = compile_spec(write_spec(tmp_path, SPEC)).plan
    entered = []

    class Accelerator:
        @contextmanager
        def main_process_first(self):  # the run's main process only: one machine of several
            entered.append("main")
            yield

        @contextmanager
        def local_main_process_first(self):
            entered.append("local main")
            yield

    bundle = load_bundle(plan, Accelerator(), tmp_path)
    assert entered == ["local main"] and len(bundle.train) > 0
