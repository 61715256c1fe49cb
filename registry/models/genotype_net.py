"""Networks stacked from the cells of a genotype (after DARTS' ``cnn/model.py``).

``NetworkCIFAR``: 3x3 stem to 3·C channels, cells at full resolution, reductions at layers//3 and
2·layers//3. ``NetworkImageNet``: two stride-2 stems (÷8 overall) before the same stack. Both put
an optional auxiliary head after cell 2·layers//3 and drop whole paths of non-identity ops while
training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces.architectures import resolve_architecture
from ..spaces.genotype import Genotype
from ..spaces.ops import OPS, FactorizedReduce, Identity, ReLUConvBN, imagenet_stems

if TYPE_CHECKING:
    from ..task import Task
    from . import GenotypeNetConfig


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a path with probability ``drop_prob``, rescaling the survivors.

    The mask comes from torch's RNG on ``x``'s device, so a seeded run drops the same paths.
    """
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """One cell of a genotype network: two preprocessed inputs, pairs of ops summed per node."""

    def __init__(
        self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        # After a reduction, c_{k-2} is twice the size of c_{k-1}: bring it down to match.
        self.preprocess0 = FactorizedReduce(C_prev_prev, C) if reduction_prev else ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        gene, concat = genotype.cell("reduce" if reduction else "normal")
        self.reduction = reduction
        self.concat = tuple(concat)
        self.indices = tuple(index for _, index in gene)
        self.multiplier = len(concat)
        self.steps = len(gene) // 2
        # Only the ops reading the cell inputs stride; later nodes already are at the lower size.
        self.ops = nn.ModuleList(
            OPS[name](C, 2 if reduction and index < 2 else 1, True) for name, index in gene
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            total = None
            for j in (2 * i, 2 * i + 1):
                op = self.ops[j]
                h = op(states[self.indices[j]])
                # Dropping an identity would only rescale the input it passes on; DARTS spares it.
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class _AuxPool(nn.Module):
    """The auxiliary head's average pooling, with a fallback for feature maps it was not made for.

    The head's 2x2 conv and 768-wide classifier need a 2x2 map here. The published pooling gives
    exactly that on the sizes it was designed for (8x8 CIFAR, 7x7 ImageNet); on any other size we
    pool adaptively to 2x2 instead, which has no parameters, so the counts stay the published ones.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _fixed_size(self, n: int) -> int:
        return (n - self.kernel_size) // self.stride + 1 if n >= self.kernel_size else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self._fixed_size(h) == 2 and self._fixed_size(w) == 2:
            return F.avg_pool2d(x, self.kernel_size, self.stride, padding=0, count_include_pad=False)
        return F.adaptive_avg_pool2d(x, 2)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, fallback=adaptive(2)"


class AuxiliaryHeadCIFAR(nn.Module):
    """Auxiliary classifier on the 8x8 maps after the second reduction (any size works)."""

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # its input is also the next cell's input: do not overwrite it
            _AuxPool(5, 3),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AuxiliaryHeadImageNet(nn.Module):
    """Auxiliary classifier on the 7x7 maps after the second reduction (any size works).

    Like the reference, no BN after the 768-channel conv: DARTS' ImageNet results were obtained
    without it.
    """

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            _AuxPool(5, 2),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class _GenotypeNetwork(nn.Module):
    """The cell stack shared by both variants; subclasses provide the stem."""

    def __init__(
        self,
        genotype: Genotype,
        C: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        drop_path_prob: float,
        C_stem_prev: int,
        C_stem: int,
        reduction_prev: bool,
        aux_head: type[nn.Module],
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        self.aux_index = 2 * layers // 3
        C_prev_prev, C_prev, C_curr = C_stem_prev, C_stem, C
        self.cells = nn.ModuleList()
        C_aux = C_prev
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self.aux_index:
                C_aux = C_prev
        self.auxiliary_head = aux_head(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _run(self, x: torch.Tensor, want_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux_logits = None
        want_aux = want_aux and self.auxiliary_head is not None and self.training
        s0, s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if want_aux and i == self.aux_index:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux_logits

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, aux_logits)``; ``aux_logits`` is None unless training with the auxiliary head."""
        return self._run(x, want_aux=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Logits only: the auxiliary head is not run, so callers that ignore it do not pay for it.
        return self._run(x, want_aux=False)[0]


class NetworkCIFAR(_GenotypeNetwork):
    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        genotype: Genotype,
        in_channels: int = 3,
        drop_path_prob: float = 0.0,
        stem_multiplier: int = 3,
    ) -> None:
        C_stem = stem_multiplier * C
        super().__init__(
            genotype, C, num_classes, layers, auxiliary, drop_path_prob,
            C_stem_prev=C_stem, C_stem=C_stem, reduction_prev=False, aux_head=AuxiliaryHeadCIFAR,
        )
        self.stem_conv = nn.Sequential(
            nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_stem),
        )

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem_conv(x)
        return s, s


class NetworkImageNet(_GenotypeNetwork):
    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        genotype: Genotype,
        in_channels: int = 3,
        drop_path_prob: float = 0.0,
    ) -> None:
        # stem0 output is twice the size of stem1 output, so cell 0 treats it as after a reduction.
        super().__init__(
            genotype, C, num_classes, layers, auxiliary, drop_path_prob,
            C_stem_prev=C, C_stem=C, reduction_prev=True, aux_head=AuxiliaryHeadImageNet,
        )
        self.stem0, self.stem1 = imagenet_stems(in_channels, C)

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def pick_variant(variant: str, image_size: int) -> str:
    """``auto``: the ImageNet stems (÷8) only pay off on large images."""
    if variant == "auto":
        return "imagenet" if image_size >= 128 else "cifar"
    if variant not in ("cifar", "imagenet"):
        raise ValueError(f"variant must be 'auto', 'cifar' or 'imagenet', got {variant!r}")
    return variant


def build_genotype_network(
    cfg: GenotypeNetConfig, task: Task, base_dir: str | Path | None = None
) -> NetworkCIFAR | NetworkImageNet:
    """The network of ``cfg`` for ``task``; ``base_dir`` resolves a relative genotype file."""
    return genotype_network(
        resolve_architecture(cfg.genotype, base_dir),
        task,
        channels=cfg.channels,
        layers=cfg.layers,
        auxiliary=cfg.auxiliary,
        drop_path=cfg.drop_path,
        variant=cfg.variant,
    )


def genotype_network(
    genotype: Genotype,
    task: Task,
    *,
    channels: int,
    layers: int,
    auxiliary: bool = False,
    drop_path: float = 0.0,
    variant: str = "auto",
) -> NetworkCIFAR | NetworkImageNet:
    """The network of a ``Genotype`` object (e.g. one a search just derived) for ``task``."""
    kind = pick_variant(variant, task.image_size)
    cls = NetworkImageNet if kind == "imagenet" else NetworkCIFAR
    return cls(
        channels,
        task.num_classes,
        layers,
        auxiliary,
        genotype,
        in_channels=task.in_channels,
        drop_path_prob=drop_path,
    )


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Parameters as DARTS reports them: the auxiliary head excluded by default."""
    return sum(
        p.numel() for name, p in model.named_parameters() if not (exclude_auxiliary and "auxiliary" in name)
    )
