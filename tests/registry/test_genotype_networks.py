"""Networks built from genotypes (DARTS' NetworkCIFAR / NetworkImageNet), and their cost as the DARTS
evaluation protocol builds them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sgl.registry.models import GenotypeNetConfig
from sgl.registry.models.genotype_net import (
    Cell,
    NetworkCIFAR,
    NetworkImageNet,
    _AuxPool,
    build_genotype_network,
    count_parameters,
    drop_path,
)
from sgl.registry.spaces.genotype import Genotype
from sgl.registry.spaces.published import GENOTYPES
from sgl.registry.task import Task

CIFAR = Task(num_classes=10, in_channels=3, image_size=32)
DIGITS = Task(num_classes=10, in_channels=1, image_size=8)


def test_darts_v2_parameter_count_matches_the_paper() -> None:
    model = build_genotype_network(GenotypeNetConfig(genotype="DARTS_V2", channels=36, layers=20, auxiliary=True), CIFAR)
    n = count_parameters(model)
    assert abs(n - 3.3e6) <= 0.05e6, n  # DARTS reports 3.349342 MB
    assert count_parameters(model, exclude_auxiliary=False) > n  # the head exists and is excluded


def test_darts_v2_at_the_paper_size_has_3_3m_parameters() -> None:
    from sgl.registry.evaluation import DartsProtocol, build_network
    from sgl.registry.evaluation.genotype_training import network_cost
    from sgl.registry.spaces.published import DARTS_V2

    task = Task(num_classes=10, in_channels=3, image_size=32)
    net = build_network(DartsProtocol(channels=36, layers=20, auxiliary_weight=0.4).network_info(DARTS_V2, task))
    cost = network_cost(net, task)
    assert round(cost["params_M"], 1) == 3.3, cost
    assert 450 < cost["madds_M"] < 600, cost  # about 528M multiply-adds on a 32x32 image


def test_cifar_forward_with_aux_in_training() -> None:
    torch.manual_seed(0)
    model = build_genotype_network(GenotypeNetConfig(channels=8, layers=6, auxiliary=True), CIFAR)
    assert isinstance(model, NetworkCIFAR)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert model.forward(x).shape == (2, 10)
    model.eval()
    logits, aux = model.forward_with_aux(x)
    assert aux is None and logits.shape == (2, 10)


def test_digits_forward_small_input() -> None:
    torch.manual_seed(0)
    model = build_genotype_network(GenotypeNetConfig(channels=8, layers=3, auxiliary=True), DIGITS)
    model.train()
    logits, aux = model.forward_with_aux(torch.randn(3, 1, 8, 8))  # 2x2 maps at the aux head
    assert logits.shape == (3, 10) and aux.shape == (3, 10)


def test_aux_pool_keeps_published_pooling_where_it_fits() -> None:
    x = torch.randn(1, 4, 8, 8)
    assert torch.equal(_AuxPool(5, 3)(x), F.avg_pool2d(x, 5, 3, count_include_pad=False))
    for size in (1, 2, 3, 5, 16):
        assert _AuxPool(5, 3)(torch.randn(1, 4, size, size)).shape == (1, 4, 2, 2)
    y = torch.randn(1, 4, 7, 7)  # ImageNet: 7x7 after the second reduction at 224 pixels
    assert torch.equal(_AuxPool(5, 2)(y), F.avg_pool2d(y, 5, 2, count_include_pad=False))


def test_imagenet_variant_tiny_forward() -> None:
    torch.manual_seed(0)
    cfg = GenotypeNetConfig(genotype="PC_DARTS", channels=8, layers=3, auxiliary=True, variant="imagenet")
    model = build_genotype_network(cfg, Task(num_classes=5, in_channels=3, image_size=64))
    assert isinstance(model, NetworkImageNet)
    model.train()
    logits, aux = model.forward_with_aux(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5) and aux.shape == (2, 5)


def test_variant_auto() -> None:
    cfg = GenotypeNetConfig(channels=4, layers=3)
    assert isinstance(build_genotype_network(cfg, Task(10, 3, 128)), NetworkImageNet)
    assert isinstance(build_genotype_network(cfg, Task(10, 3, 64)), NetworkCIFAR)


def test_genotype_from_file(tmp_path: Path) -> None:
    GENOTYPES["PDARTS"].save(tmp_path / "g.json")
    model = build_genotype_network(GenotypeNetConfig(genotype="g.json", channels=4, layers=3), DIGITS, base_dir=tmp_path)
    assert model.genotype == GENOTYPES["PDARTS"]
    with pytest.raises(ValueError, match="DARTS_V2"):
        build_genotype_network(GenotypeNetConfig(genotype="nope", channels=4, layers=3), DIGITS)


def test_drop_path_is_seeded_and_settable() -> None:
    torch.manual_seed(0)
    model = build_genotype_network(GenotypeNetConfig(channels=4, layers=3, drop_path=0.3), DIGITS)
    assert model.drop_path_prob == 0.3
    model.drop_path_prob = 0.5
    model.train()
    x = torch.randn(4, 1, 8, 8)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return model(x)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    model.eval()  # no dropping at evaluation time
    assert torch.equal(model(x), model(x))


def test_drop_path_function() -> None:
    torch.manual_seed(0)
    x = torch.ones(1000, 1, 1, 1)
    y = drop_path(x, 0.25)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert 0.7 < kept.float().mean() < 0.8
    assert drop_path(x, 0.0) is x


def test_identity_paths_are_never_dropped() -> None:
    gene = [("skip_connect", 0), ("skip_connect", 1)] * 2
    cell = Cell(Genotype(gene, [2, 3], gene, [2, 3]), 4, 4, 4, reduction=False, reduction_prev=False).train()
    s0, s1 = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    torch.manual_seed(0)
    a = cell(s0, s1, drop_prob=0.9)
    b = cell(s0, s1, drop_prob=0.0)
    assert torch.allclose(a, b)
