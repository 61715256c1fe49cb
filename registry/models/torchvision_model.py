"""Fixed learners from torchvision's classification catalogue, fitted to the task's input and classes.

What ``build_torchvision`` changes in a torchvision model, and why:

- **Classes.** Without pretrained weights the model is built with ``num_classes`` directly. With
  ``pretrained`` it is built with ``weights="DEFAULT"`` (torchvision refuses a ``num_classes`` that
  differs from the weights'), then the classifier head — the last ``Linear`` (or SqueezeNet's final
  1x1 ``Conv2d``) producing the weights' class count, plus any auxiliary head producing it — is
  replaced by a freshly initialised layer for the task's classes. The backbone keeps its weights.
- **Channels.** When ``in_channels != 3`` the first convolution that reads the image is rebuilt
  for that many channels; pretrained RGB filters become their channel mean, repeated and scaled by
  ``3 / in_channels``, so a grey image repeated c times meets the same response as in RGB.
- **Small input** (``small_input``; default: images under 64 pixels). The stem is rebuilt as a
  3x3 stride-1 convolution (freshly initialised, pretrained or not) and the stem max-pool dropped,
  as CIFAR ResNets do. Adapted this way: the ResNet family (resnet*, resnext*, wide_resnet*:
  ``conv1`` and ``maxpool``); every other model gets the generic treatment — its first image
  convolution becomes 3x3 stride 1, and a stem max-pool named ``maxpool`` (ShuffleNetV2),
  ``maxpool1`` (GoogLeNet, Inception v3) or ``features.pool0`` (DenseNet) is dropped. Vision
  transformers and MaxViT are left alone: their positional layout is tied to the input size, so
  they need ``options: {image_size: ...}`` instead; asking ``small_input: true`` of them is an error.
  Models whose later layers pool without padding (VGG, AlexNet, Inception v3) still need about
  32 pixels or more.
- GoogLeNet and Inception v3 default to ``aux_logits: false`` so that ``forward`` returns logits
  (not a named tuple) in training mode too; set it in ``options`` to override.

torchvision is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ..task import Task
    from . import TorchvisionConfig

_STEM_POOLS = ("maxpool", "maxpool1", "features.pool0")
_FIXED_INPUT_SIZE = ("vit_", "maxvit_")  # VisionTransformer, MaxVit
_AUX_MODELS = ("googlenet", "inception_v3")


def classification_models() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def build_torchvision(cfg: TorchvisionConfig, task: Task) -> nn.Module:
    import torchvision

    name = cfg.model.lower()
    available = classification_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(available)}"
        raise ValueError(f"unknown torchvision classification model {cfg.model!r}; {hint}")
    clash = sorted({"num_classes", "weights"} & set(cfg.options))
    if clash:
        raise ValueError(
            f"torchvision options may not set {', '.join(clash)}: the task sets num_classes, `pretrained` sets weights"
        )

    small = cfg.small_input if cfg.small_input is not None else task.image_size < 64
    fixed_size = name.startswith(_FIXED_INPUT_SIZE)
    if small and fixed_size and cfg.small_input:
        raise ValueError(
            f"{name}: small_input cannot adapt a model whose layout is fixed by its input size; "
            "set options.image_size (ViT) instead"
        )

    options = dict(cfg.options)
    if name in _AUX_MODELS:
        options.setdefault("aux_logits", False)
        if task.in_channels != 3:
            options.setdefault("transform_input", False)  # it mixes exactly three RGB channels
        if not cfg.pretrained:
            options.setdefault("init_weights", True)  # today's default, minus torchvision's FutureWarning

    if cfg.pretrained:
        model = torchvision.models.get_model(name, weights="DEFAULT", **options)
        categories = len(torchvision.models.get_model_weights(name).DEFAULT.meta["categories"])
        if categories != task.num_classes:
            replace_head(model, old_classes=categories, num_classes=task.num_classes)
    else:
        model = torchvision.models.get_model(name, weights=None, num_classes=task.num_classes, **options)

    if small and not fixed_size:
        adapt_small_input(model, task.in_channels)
    elif task.in_channels != 3:
        adapt_in_channels(model, task.in_channels)
    return model


def _first_image_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for qualname, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return qualname, module
    raise ValueError(f"{type(model).__name__}: found no Conv2d reading 3 channels to adapt")


def _set(model: nn.Module, qualname: str, module: nn.Module) -> None:
    parent_name, _, attr = qualname.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def _fresh_conv(like: nn.Conv2d, in_channels: int, **geometry: Any) -> nn.Conv2d:
    conv = nn.Conv2d(
        in_channels,
        like.out_channels,
        kernel_size=geometry.get("kernel_size", like.kernel_size),
        stride=geometry.get("stride", like.stride),
        padding=geometry.get("padding", like.padding),
        dilation=geometry.get("dilation", like.dilation),
        bias=like.bias is not None,
    )
    # torchvision's own initialisation of convolutions (ResNet, MobileNet, EfficientNet, RegNet)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv.to(like.weight.device, like.weight.dtype)


def adapt_in_channels(model: nn.Module, in_channels: int) -> None:
    """Rebuild the first image convolution for ``in_channels``, carrying its filters over."""
    qualname, old = _first_image_conv(model)
    if old.groups != 1:
        raise ValueError(f"{qualname}: a grouped first convolution cannot be adapted to {in_channels} channels")
    new = _fresh_conv(old, in_channels)
    with torch.no_grad():
        new.weight.copy_(old.weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) * (3 / in_channels))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    _set(model, qualname, new)


def adapt_small_input(model: nn.Module, in_channels: int) -> None:
    """A 3x3 stride-1 stem and no stem max-pool (see the module notes for the families)."""
    import torchvision

    if isinstance(model, torchvision.models.ResNet):
        model.conv1 = _fresh_conv(model.conv1, in_channels, kernel_size=3, stride=1, padding=1, dilation=1)
        model.maxpool = nn.Identity()
        return
    qualname, old = _first_image_conv(model)
    _set(model, qualname, _fresh_conv(old, in_channels, kernel_size=3, stride=1, padding=1, dilation=1))
    for pool_name in _STEM_POOLS:
        try:
            pool = model.get_submodule(pool_name)
        except AttributeError:
            continue
        if isinstance(pool, nn.MaxPool2d):
            _set(model, pool_name, nn.Identity())


def replace_head(model: nn.Module, *, old_classes: int, num_classes: int) -> None:
    """Swap the classifier head(s) producing ``old_classes`` outputs for ``num_classes`` ones.

    The head is the last such layer in registration order (torchvision registers the classifier
    last); auxiliary heads (a qualified name containing "aux") are swapped too.
    """
    heads = [
        (qualname, module)
        for qualname, module in model.named_modules()
        if (isinstance(module, nn.Linear) and module.out_features == old_classes)
        or (isinstance(module, nn.Conv2d) and module.out_channels == old_classes and module.kernel_size == (1, 1))
    ]
    if not heads:
        raise ValueError(f"{type(model).__name__}: found no classifier layer with {old_classes} outputs to replace")
    chosen = {heads[-1][0]: heads[-1][1]}
    chosen.update((q, m) for q, m in heads if "aux" in q.lower())
    for qualname, old in chosen.items():
        if isinstance(old, nn.Linear):
            new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        else:
            new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1, bias=old.bias is not None)
        _set(model, qualname, new.to(old.weight.device, old.weight.dtype))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
