"""torchvision fixed learners fitted to small, grey, 10-class inputs (no weights are downloaded)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgl.registry.models import TorchvisionConfig
from sgl.registry.task import Task

DIGITS = Task(num_classes=10, in_channels=1, image_size=8)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_digits_shaped_input_gives_logits(name: str) -> None:
    torch.manual_seed(0)
    model = TorchvisionConfig(model=name).build(DIGITS)
    model.train()
    out = model(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 10)
    out.sum().backward()


def test_resnet_small_input_stem() -> None:
    model = TorchvisionConfig(model="resnet18").build(DIGITS)
    assert model.conv1.in_channels == 1
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    large = TorchvisionConfig(model="resnet18", small_input=False).build(DIGITS)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.in_channels == 1
    assert isinstance(large.maxpool, nn.MaxPool2d)


def test_generic_small_input_stem() -> None:
    model = TorchvisionConfig(model="mobilenet_v3_small").build(DIGITS)
    stem = model.features[0][0]
    assert stem.in_channels == 1 and stem.stride == (1, 1) and stem.kernel_size == (3, 3)
    shuffle = TorchvisionConfig(model="shufflenet_v2_x0_5").build(Task(10, 3, 32))
    assert isinstance(shuffle.maxpool, nn.Identity) and shuffle.conv1[0].stride == (1, 1)


def test_in_channels_adaptation_keeps_filters() -> None:
    from sgl.registry.models.torchvision_model import adapt_in_channels

    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    rgb = model.conv1.weight.detach().clone()
    adapt_in_channels(model, 1)
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(model.conv1.weight, rgb.sum(1, keepdim=True), atol=1e-6)


def test_replace_head_for_pretrained_weights() -> None:
    from sgl.registry.models.torchvision_model import replace_head

    import torchvision

    resnet = torchvision.models.resnet18()
    replace_head(resnet, old_classes=1000, num_classes=7)
    assert resnet.fc.out_features == 7
    squeeze = torchvision.models.squeezenet1_1()
    replace_head(squeeze, old_classes=1000, num_classes=7)
    assert squeeze.classifier[1].out_channels == 7
    assert squeeze.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_pretrained_path_builds_with_default_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    calls = []
    real = torchvision.models.get_model

    def offline(name, **kwargs):  # same model, without fetching the weights
        calls.append(kwargs)
        return real(name, **{**kwargs, "weights": None})

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    model = TorchvisionConfig(model="resnet18", pretrained=True).build(DIGITS)
    assert calls == [{"weights": "DEFAULT"}]
    assert model.fc.out_features == 10
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="resnet18") as info:
        TorchvisionConfig(model="resnet19").build(DIGITS)
    assert "did you mean" in str(info.value)
    with pytest.raises(ValueError, match="unknown"):
        TorchvisionConfig(model="fasterrcnn_resnet50_fpn").build(DIGITS)  # detection, not classification


def test_options_may_not_override_task() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        TorchvisionConfig(model="resnet18", options={"num_classes": 3}).build(DIGITS)


def test_vit_rejects_explicit_small_input() -> None:
    with pytest.raises(ValueError, match="image_size"):
        TorchvisionConfig(model="vit_b_32", small_input=True).build(Task(10, 3, 32))


def test_module_import_is_torchvision_free() -> None:
    import subprocess
    import sys

    code = "import sys, sgl.registry.models.torchvision_model; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
