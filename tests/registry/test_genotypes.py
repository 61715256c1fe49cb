"""Genotypes: the published ones, JSON files, the DARTS derivation rule, and cell diagrams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sgl.registry.spaces import DARTS_PRIMITIVES
from sgl.registry.spaces import diagram
from sgl.registry.spaces.diagram import cell_dot, write_cell_diagrams
from sgl.registry import resolve_architecture as resolve_genotype
from sgl.registry.spaces.genotype import DEFAULT_PRIMITIVES, Genotype, derive_genotype, num_edges
from sgl.registry.spaces.published import GENOTYPES
from sgl.registry.spaces.ops import OPS

# --- Genotype, JSON, named genotypes ------------------------------------------------------


def test_default_primitives_match_the_config_list() -> None:
    assert DEFAULT_PRIMITIVES == DARTS_PRIMITIVES


@pytest.mark.parametrize("name", sorted(GENOTYPES))
def test_json_round_trip(name: str, tmp_path: Path) -> None:
    g = GENOTYPES[name]
    text = json.dumps(g.to_json())
    assert Genotype.from_json(json.loads(text)) == g
    assert set(json.loads(text)) == {"normal", "normal_concat", "reduce", "reduce_concat", "primitives", "space"}
    assert Genotype.load(g.save(tmp_path / "sub" / "g.json")) == g


@pytest.mark.parametrize("name", sorted(GENOTYPES))
def test_named_genotypes_are_valid(name: str) -> None:
    g = GENOTYPES[name]
    for gene, concat in (g.cell("normal"), g.cell("reduce")):
        assert len(gene) == 8 and concat == (2, 3, 4, 5)
        for position, (op, index) in enumerate(gene):
            assert op in g.primitives and op in OPS and op != "none"
            assert 0 <= index < position // 2 + 2


def test_published_cells_spot_checks() -> None:
    # One distinctive pair per genotype, against the authors' genotypes.py files.
    assert GENOTYPES["DARTS_V2"].normal[-1] == ("dil_conv_3x3", 2)
    assert GENOTYPES["DARTS_V1"].reduce[-1] == ("avg_pool_3x3", 0)
    assert GENOTYPES["PC_DARTS"].normal[6] == ("avg_pool_3x3", 0)
    assert GENOTYPES["PDARTS"].normal[-1] == ("dil_conv_5x5", 4)
    assert {GENOTYPES[n].space for n in GENOTYPES} == {"darts", "pc_darts", "p_darts"}



# PC_DARTS_image as printed in yuhuixu1993/PC-DARTS genotypes.py:79 (commit 283b086): published data.
_PC_DARTS_IMAGE_SOURCE = (
    "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 1), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), "
    "reduce=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 2), ('max_pool_3x3', 1), "
    "('sep_conv_3x3', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 3)], reduce_concat=range(2, 6))"
)


def test_pc_darts_imagenet_is_the_published_cell() -> None:
    import ast

    call = ast.parse(_PC_DARTS_IMAGE_SOURCE, mode="eval").body
    fields = {kw.arg: kw.value for kw in call.keywords}
    g = GENOTYPES["PC_DARTS_IMAGENET"]
    assert g.normal == tuple(ast.literal_eval(fields["normal"]))
    assert g.reduce == tuple(ast.literal_eval(fields["reduce"]))
    for key in ("normal_concat", "reduce_concat"):  # range(2, 6)
        start, stop = (ast.literal_eval(arg) for arg in fields[key].args)
        assert getattr(g, key) == tuple(range(start, stop))
    assert g.space == "pc_darts" and g.primitives == DEFAULT_PRIMITIVES
    assert resolve_genotype("PC_DARTS_IMAGENET") is g
    assert g != GENOTYPES["PC_DARTS"]

def test_from_json_defaults_and_errors() -> None:
    data = GENOTYPES["DARTS_V2"].to_json()
    del data["primitives"], data["space"]
    assert Genotype.from_json(data).primitives == DEFAULT_PRIMITIVES
    with pytest.raises(ValueError, match="lacks"):
        Genotype.from_json({"normal": []})
    with pytest.raises(ValueError, match="unknown keys"):
        Genotype.from_json({**data, "extra": 1})


def test_invalid_genotypes_are_rejected() -> None:
    ok = [("skip_connect", 0), ("skip_connect", 1)]
    with pytest.raises(ValueError, match="cannot read state 2"):
        Genotype([("skip_connect", 0), ("skip_connect", 2)], [2], ok, [2])
    with pytest.raises(ValueError, match="not among the primitives"):
        Genotype([("conv_9x9", 0), ("skip_connect", 1)], [2], ok, [2])
    with pytest.raises(ValueError, match="two inputs"):
        Genotype([("skip_connect", 0)], [2], ok, [2])
    with pytest.raises(ValueError, match="do not exist"):
        Genotype(ok, [3], ok, [2])


def test_resolve_genotype(tmp_path: Path) -> None:
    assert resolve_genotype("PDARTS") is GENOTYPES["PDARTS"]
    g = GENOTYPES["PC_DARTS"]
    g.save(tmp_path / "mine.json")
    assert resolve_genotype(str(tmp_path / "mine.json")) == g
    assert resolve_genotype("mine.json", base_dir=tmp_path) == g
    with pytest.raises(ValueError, match="DARTS_V1, DARTS_V2, PC_DARTS, PDARTS"):
        resolve_genotype("DARTS_V3")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a valid genotype"):
        resolve_genotype(tmp_path / "bad.json")


# --- derivation ---------------------------------------------------------------------------

PRIMS = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")

# Two nodes: edges 0, 1 feed node 0 (from states 0, 1); edges 2, 3, 4 feed node 1 (states 0, 1, 2).
NORMAL = [
    [0.10, 0.20, 0.30, 0.40],  # e0  0→n0: best sep_conv_3x3 0.40
    [0.70, 0.10, 0.10, 0.10],  # e1  1→n0: `none` ignored; max_pool 0.10 (first of equal weights)
    [0.05, 0.60, 0.30, 0.05],  # e2  0→n1: max_pool 0.60
    [0.90, 0.02, 0.05, 0.03],  # e3  1→n1: `none` 0.90 is the largest weight of the cell, ignored;
    #                                     best skip 0.05, so this edge is dropped
    [0.10, 0.10, 0.10, 0.70],  # e4  2→n1: sep_conv_3x3 0.70
]
# node 0 keeps both inputs, stronger first: (sep_conv_3x3, 0) 0.40, (max_pool_3x3, 1) 0.10;
# node 1 ranks 0.60 (state 0), 0.05 (state 1), 0.70 (state 2): (sep_conv_3x3, 2), (max_pool_3x3, 0).
NORMAL_EXPECTED = (("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 2), ("max_pool_3x3", 0))

REDUCE = [
    [0.1, 0.5, 0.2, 0.2],  # e0 0→n0: max_pool 0.5
    [0.1, 0.2, 0.6, 0.1],  # e1 1→n0: skip 0.6
    [0.0, 0.1, 0.1, 0.8],  # e2 0→n1: sep 0.8
    [0.0, 0.6, 0.2, 0.2],  # e3 1→n1: max_pool 0.6
    [0.0, 0.2, 0.5, 0.3],  # e4 2→n1: skip 0.5
]
# Without β: node 0 (skip, 1) 0.6 > (max_pool, 0) 0.5; node 1 keeps (sep, 0) 0.8, (max_pool, 1) 0.6.
REDUCE_EXPECTED = (("skip_connect", 1), ("max_pool_3x3", 0), ("sep_conv_3x3", 0), ("max_pool_3x3", 1))
# With β = [0.5, 0.5 | 0.2, 0.3, 0.5] (softmax per node): node 0 0.25 vs 0.30, same order;
# node 1: 0.8·0.2 = 0.16, 0.6·0.3 = 0.18, 0.5·0.5 = 0.25, so (skip, 2), (max_pool, 1): the ranking flips.
BETA = [0.5, 0.5, 0.2, 0.3, 0.5]
REDUCE_BETA_EXPECTED = (("skip_connect", 1), ("max_pool_3x3", 0), ("skip_connect", 2), ("max_pool_3x3", 1))


def test_num_edges() -> None:
    assert [num_edges(n) for n in (1, 2, 4)] == [2, 5, 14]


@pytest.mark.parametrize("convert", [torch.tensor, np.array, lambda rows: rows])
def test_derive_by_hand(convert) -> None:
    g = derive_genotype(convert(NORMAL), convert(REDUCE), PRIMS, nodes=2, space="darts")
    assert g.normal == NORMAL_EXPECTED
    assert g.reduce == REDUCE_EXPECTED
    assert g.normal_concat == g.reduce_concat == (2, 3)
    assert g.primitives == PRIMS and g.space == "darts"


def test_derive_with_edge_weights_changes_ranking() -> None:
    g = derive_genotype(
        torch.tensor(NORMAL), torch.tensor(REDUCE), PRIMS, nodes=2, space="pc_darts",
        edge_weights_reduce=torch.tensor(BETA),
    )
    assert g.normal == NORMAL_EXPECTED  # no β for the normal cell: unchanged
    assert g.reduce == REDUCE_BETA_EXPECTED


def test_derive_from_a_real_softmax() -> None:
    torch.manual_seed(0)
    alpha = torch.randn(num_edges(4), len(DARTS_PRIMITIVES)).softmax(-1)
    g = derive_genotype(alpha, alpha, DARTS_PRIMITIVES, nodes=4, space="darts")
    assert g.normal == g.reduce and len(g.normal) == 8 and g.normal_concat == (2, 3, 4, 5)
    assert all(op != "none" for op, _ in g.normal)


def test_derive_with_per_edge_primitives() -> None:
    # P-DARTS keeps different operations on different edges.
    per_edge = [("none", "skip_connect"), ("sep_conv_3x3",), ("max_pool_3x3",), ("none", "skip_connect"), ("sep_conv_3x3",)]
    weights = [[0.1, 0.9], [1.0], [1.0], [0.9, 0.1], [1.0]]
    g = derive_genotype(weights, weights, per_edge, nodes=2, space="p_darts")
    assert g.normal == (("sep_conv_3x3", 1), ("skip_connect", 0), ("max_pool_3x3", 0), ("sep_conv_3x3", 2))
    assert g.primitives == ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")


def test_derive_shape_errors() -> None:
    with pytest.raises(ValueError, match="5 edges"):
        derive_genotype(NORMAL[:4], REDUCE, PRIMS, nodes=2, space="darts")
    with pytest.raises(ValueError, match="4 operations but 3 weights"):
        derive_genotype([r[:3] for r in NORMAL], REDUCE, PRIMS, nodes=2, space="darts")
    with pytest.raises(ValueError, match="edge weights"):
        derive_genotype(NORMAL, REDUCE, PRIMS, nodes=2, space="darts", edge_weights_normal=[1.0])


# --- diagrams -----------------------------------------------------------------------------


def test_cell_dot_lists_every_op_and_node() -> None:
    g = GENOTYPES["PDARTS"]
    for cell in ("normal", "reduce"):
        text = cell_dot(g, cell)
        assert text.startswith("digraph") and "rankdir=LR" in text
        for op, _ in g.cell(cell)[0]:
            assert f'label="{op}"' in text
        for name in ('"c_{k-2}"', '"c_{k-1}"', '"c_{k}"', '"0"', '"3"'):
            assert name in text
        assert text.count("->") == 8 + 4  # two inputs per node, plus the concatenated outputs


def test_write_cell_diagrams_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.image as mpimg

    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)  # the matplotlib path, always
    paths = write_cell_diagrams(GENOTYPES["DARTS_V2"], tmp_path / "fig", "alice")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"alice_{c}.{e}" for c in ("normal", "reduce") for e in ("dot", "png", "svg"))
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    image = mpimg.imread(tmp_path / "fig" / "alice_normal.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0.01  # something is drawn, not a blank canvas
    svg = (tmp_path / "fig" / "alice_reduce.svg").read_text()
    assert "<svg" in svg


def test_duplicate_inputs_are_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two ops from the same input into the same node must not crash the router.
    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)
    gene = [("sep_conv_3x3", 0), ("skip_connect", 0), ("max_pool_3x3", 2), ("max_pool_3x3", 2)]
    g = Genotype(gene, [2, 3], gene, [3])
    assert len(write_cell_diagrams(g, tmp_path, "dup")) == 6
