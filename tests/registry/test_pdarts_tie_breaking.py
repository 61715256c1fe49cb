"""P-DARTS breaks exact ties of α as chenxin061/pdarts does (#23); DARTS and PC-DARTS keep DARTS' rule.

P-DARTS drops an edge's weakest ops one at a time with ``np.argmin``, the *first* of equal minima
(``get_min_k`` / ``get_min_k_no_zero``, train_search.py:363-389 at b880e87), so of equal ops the
later stays; it keeps a node's two inputs as the last two of an ascending stable sort (:228-233,
``keep_2_branches`` :441), so of equally strong inputs the later ones; ``delete_min_sk_prob``
(:423) removes the skip-connect of the lowest edge among equally weak ones; and ``parse_network``
(:335) lists a node's inputs in index order.

Every expected value below was produced by P-DARTS' own code at b880e87 (its pruning and
derivation functions and the end-of-stage block of ``main``, :168-262, run on the same α outside
this suite), with the reference configuration: 4 nodes, ops 8 → 5 → 3, one genotype per skip-connect
limit 8 … 0. α are written one string per edge, one digit per op (the kept ops, in primitive order).
"""

from __future__ import annotations

import pytest
import torch

from sgl.registry.spaces import DartsConfig, PCDartsConfig, PDartsConfig
from sgl.registry.spaces.genotype import derive_genotype
from sgl.registry.spaces.p_darts import prune_ops
from sgl.registry.task import Task

TASK = Task(num_classes=10, in_channels=1, image_size=8)
EDGES = 14

SHORT = {
    "none": "none", "max": "max_pool_3x3", "avg": "avg_pool_3x3", "skip": "skip_connect",
    "sep3": "sep_conv_3x3", "sep5": "sep_conv_5x5", "dil3": "dil_conv_3x3", "dil5": "dil_conv_5x5",
}


def ops(text: str) -> list[str]:
    """``"skip sep3"`` → ``["skip_connect", "sep_conv_3x3"]``."""
    return [SHORT[name] for name in text.split()]


def cell(text: str) -> tuple[tuple[str, int], ...]:
    """``"skip 0, dil3 1 | ..."``: per node (``|``) its (op, input) pairs in the listed order."""
    pairs = [pair.split() for node in text.split("|") for pair in node.split(",")]
    return tuple((SHORT[op], int(state)) for op, state in pairs)


def alpha(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[float(digit) for digit in row] for row in rows])


def reverse(rows: list[str]) -> list[str]:
    return [row[::-1] for row in rows]


def search(phases: list[tuple[list[str], list[str]]], max_skip: int):
    """A P-DARTS space (the reference's 4 nodes, 8 → 5 → 3 ops) run through its three phases with
    these (normal, reduce) α per phase; returns it and the ops kept entering phases 1 and 2."""
    space = PDartsConfig(channels=4, nodes=4, max_skip_connect=max_skip).build(TASK)
    kept = []
    for index, (normal, reduce) in enumerate(phases):
        if index:
            space.enter_phase(index)
            kept.append((space.kept_ops("normal"), space.kept_ops("reduce")))
        with torch.no_grad():
            space.alphas_normal.copy_(alpha(normal))
            space.alphas_reduce.copy_(alpha(reduce))
    return space, kept


def per_edge(patterns: list[str]) -> list[list[str]]:
    """Expected kept ops of 14 edges whose α cycle through ``len(patterns)`` patterns."""
    return [ops(patterns[e % len(patterns)]) for e in range(EDGES)]


LIMITS = range(9)  # P-DARTS logs a cell for every skip-connect limit 8 … 0 (train_search.py:250-262)


# --- all α equal -----------------------------------------------------------------------------

EQUAL_CELL = cell("dil5 0, dil5 1 | dil5 1, dil5 2 | dil5 2, dil5 3 | dil5 3, dil5 4")


@pytest.mark.parametrize("max_skip", LIMITS)
def test_all_equal_alpha_keeps_the_later_ops_and_inputs(max_skip: int) -> None:
    phases = [(["0" * ops_] * EDGES, ["0" * ops_] * EDGES) for ops_ in (8, 5, 3)]
    space, kept = search(phases, max_skip)
    # Not none, max_pool, avg_pool, skip, sep_conv_3x3 (the lower columns), as before #23.
    assert kept[0] == (per_edge(["skip sep3 sep5 dil3 dil5"]),) * 2
    assert kept[1] == (per_edge(["sep5 dil3 dil5"]),) * 2
    g = space.architecture()
    assert g.normal == g.reduce == EQUAL_CELL


def test_prune_ops_drops_the_first_of_equal_weights() -> None:
    # Each expected list is what get_min_k drops, complemented (train_search.py:363-371).
    names = [ops("none max avg skip sep3 sep5 dil3 dil5")] * 2
    assert prune_ops([[0.125] * 8, [0.1, 0.2, 0.2, 0.1, 0.2, 0.1, 0.05, 0.05]], names, 5) == [
        [3, 4, 5, 6, 7], [1, 2, 3, 4, 5]
    ]
    assert prune_ops([[0.1, 0.2, 0.2, 0.1, 0.2, 0.1, 0.05, 0.05]], names[:1], 2) == [[2, 4]]
    assert prune_ops([[0.3, 0.2, 0.2, 0.3]], [ops("none skip sep3 dil5")], 2) == [[0, 3]]
    # One op left: never `none` alone; of the equal real ops the later, as get_min_k_no_zero keeps.
    assert prune_ops([[0.4, 0.3, 0.3], [0.2, 0.4, 0.4]], [ops("none skip sep3")] * 2, 1) == [[2], [2]]


# --- ties within one edge, in each pruning and in the final cell --------------------------------

WITHIN_EDGE = [
    ["11111100", "02111120", "20000001", "10010110", "01111111", "00000000", "33322211"] * 2,
    ["11100", "01111", "10101", "21110", "00000", "22211", "12121"] * 2,
    ["111", "011", "101", "110", "211", "000", "121"] * 2,
]
WITHIN_EDGE_KEPT = [
    (
        per_edge(["max avg skip sep3 sep5", "max skip sep3 sep5 dil3", "none sep3 sep5 dil3 dil5",
                  "none skip sep5 dil3 dil5", "skip sep3 sep5 dil3 dil5", "skip sep3 sep5 dil3 dil5",
                  "none max avg sep3 sep5"]),
        per_edge(["skip sep3 sep5 dil3 dil5", "max skip sep3 sep5 dil3", "none sep3 sep5 dil3 dil5",
                  "max avg sep3 dil3 dil5", "avg skip sep3 sep5 dil3", "skip sep3 sep5 dil3 dil5",
                  "skip sep3 sep5 dil3 dil5"]),
    ),
    (
        per_edge(["max avg skip", "sep3 sep5 dil3", "none sep5 dil5", "none sep5 dil3", "sep5 dil3 dil5",
                  "skip sep3 sep5", "max sep3 sep5"]),
        per_edge(["sep5 dil3 dil5", "skip sep3 sep5", "none sep5 dil5", "sep3 dil3 dil5", "sep3 sep5 dil3",
                  "sep5 dil3 dil5", "sep3 dil3 dil5"]),
    ),
]


@pytest.mark.parametrize("max_skip", LIMITS)
def test_ties_within_one_edge(max_skip: int) -> None:
    space, kept = search([(normal, reverse(normal)) for normal in WITHIN_EDGE], max_skip)
    assert kept == WITHIN_EDGE_KEPT
    g = space.architecture()
    # Edge 0 keeps skip over its equal max_pool and avg_pool; at limit 0, avg_pool over max_pool.
    first = "skip 0" if max_skip else "avg 0"
    assert g.normal == cell(f"{first}, dil3 1 | sep5 1, sep5 2 | sep3 1, dil3 3 | sep5 2, sep3 4")
    assert g.reduce == cell("dil5 0, sep3 1 | dil5 1, dil3 2 | dil3 1, sep3 3 | dil3 2, dil3 4")


# --- ties between two inputs of a node ----------------------------------------------------------

# Every edge keeps none, skip_connect, sep_conv_5x5 for the last phase (its α are the third string).
KEEP_NONE_SKIP_SEP5 = [
    (["30021111"] * EDGES, reverse(["30021111"] * EDGES)),
    (["22100"] * EDGES, reverse(["22100"] * EDGES)),
]
BETWEEN_INPUTS = ["020", "002", "011", "011", "011", "020", "002", "011", "020", "000", "200", "011", "002", "101"]
BETWEEN_INPUTS_CELLS = {
    0: cell("sep5 0, sep5 1 | sep5 1, sep5 2 | sep5 1, sep5 2 | sep5 3, sep5 4"),
    1: cell("sep5 0, sep5 1 | sep5 1, sep5 2 | sep5 1, skip 3 | sep5 3, sep5 4"),
    2: cell("skip 0, sep5 1 | sep5 1, sep5 2 | sep5 1, skip 3 | sep5 3, sep5 4"),
}


@pytest.mark.parametrize("max_skip", LIMITS)
def test_ties_between_inputs(max_skip: int) -> None:
    # Node 1: three equal inputs, keeps 1 and 2; node 2: inputs 0, 1, 3 equally strong, keeps 1 and 3;
    # node 3: all five equal but for `none`, keeps 3 and 4. Each edge's op: sep_conv_5x5 over an equal skip.
    space, kept = search([*KEEP_NONE_SKIP_SEP5, (BETWEEN_INPUTS, BETWEEN_INPUTS)], max_skip)
    assert kept[1] == (per_edge(["none skip sep5"]), per_edge(["skip sep3 dil5"]))
    g = space.architecture()
    assert g.normal == BETWEEN_INPUTS_CELLS[min(max_skip, 2)]
    assert g.reduce == cell("sep3 0, dil5 1 | dil5 1, dil5 2 | dil5 1, sep3 3 | skip 1, dil5 3")


# --- the skip-connect limit, 0 … 8 --------------------------------------------------------------

KEEP_NONE_MAX_SKIP = [
    (["32021111"] * EDGES, reverse(["32021111"] * EDGES)),
    (["11100"] * EDGES, reverse(["11100"] * EDGES)),
]

# All equal: skip_connect (the later of equal max_pool and skip) on the last two inputs of every
# node; the limit removes them from the lowest edge up, and max_pool takes each place at the
# same strength, so the inputs stay.
EQUAL_SKIPS = {
    0: "max 0, max 1 | max 1, max 2 | max 2, max 3 | max 3, max 4",
    1: "max 0, max 1 | max 1, max 2 | max 2, max 3 | max 3, skip 4",
    2: "max 0, max 1 | max 1, max 2 | max 2, max 3 | skip 3, skip 4",
    3: "max 0, max 1 | max 1, max 2 | max 2, skip 3 | skip 3, skip 4",
    4: "max 0, max 1 | max 1, max 2 | skip 2, skip 3 | skip 3, skip 4",
    5: "max 0, max 1 | max 1, skip 2 | skip 2, skip 3 | skip 3, skip 4",
    6: "max 0, max 1 | skip 1, skip 2 | skip 2, skip 3 | skip 3, skip 4",
    7: "max 0, skip 1 | skip 1, skip 2 | skip 2, skip 3 | skip 3, skip 4",
    8: "skip 0, skip 1 | skip 1, skip 2 | skip 2, skip 3 | skip 3, skip 4",
}


@pytest.mark.parametrize("max_skip", LIMITS)
def test_skip_limit_with_all_skips_equal(max_skip: int) -> None:
    space, kept = search([*KEEP_NONE_MAX_SKIP, (["000"] * EDGES, ["000"] * EDGES)], max_skip)
    assert kept[1][0] == per_edge(["none max skip"])
    g = space.architecture()
    assert g.normal == cell(EQUAL_SKIPS[max_skip])
    assert g.reduce == EQUAL_CELL  # the limit is for the normal cell only


# Skip-connects of equal weight on many edges, sep_conv_5x5 the alternative; removing one lets an
# equally strong later input take the node's place.
SKIPS_VS_SEP = ["010", "020", "010", "021", "010", "010", "020", "021", "010", "010", "011", "021", "010", "020"]
SKIPS_VS_SEP_CELLS = {
    0: "sep5 0, sep5 1 | sep5 1, sep5 2 | sep5 2, sep5 3 | sep5 1, sep5 2",
    1: "sep5 0, sep5 1 | sep5 1, sep5 2 | sep5 2, sep5 3 | sep5 1, skip 4",
    2: "sep5 0, sep5 1 | sep5 1, sep5 2 | skip 1, sep5 2 | sep5 1, skip 4",
    3: "sep5 0, skip 1 | sep5 1, sep5 2 | skip 1, sep5 2 | sep5 1, skip 4",
    4: "sep5 0, skip 1 | sep5 1, sep5 2 | skip 1, sep5 2 | skip 2, skip 4",
    5: "sep5 0, skip 1 | sep5 1, sep5 2 | skip 1, skip 2 | skip 2, skip 4",
    6: "sep5 0, skip 1 | skip 1, sep5 2 | skip 1, skip 2 | skip 2, skip 4",
    7: "sep5 0, skip 1 | skip 1, skip 2 | skip 1, skip 2 | skip 2, skip 4",
    8: "skip 0, skip 1 | skip 1, skip 2 | skip 1, skip 2 | skip 2, skip 4",
}


@pytest.mark.parametrize("max_skip", LIMITS)
def test_skip_limit_with_ties_between_skips_and_inputs(max_skip: int) -> None:
    space, _ = search([*KEEP_NONE_SKIP_SEP5, (SKIPS_VS_SEP, reverse(SKIPS_VS_SEP))], max_skip)
    g = space.architecture()
    assert g.normal == cell(SKIPS_VS_SEP_CELLS[max_skip])
    assert g.reduce == cell("sep3 0, sep3 1 | sep3 1, sep3 2 | sep3 1, sep3 2 | sep3 2, sep3 4")


# Skip-connect against an equal max_pool on some edges: three skip-connects at most.
SKIPS_MIXED = ["021", "012", "022", "011", "020", "120", "021", "022", "010", "012", "121", "020", "021", "022"]
SKIPS_MIXED_CELLS = {
    0: "max 0, max 1 | max 0, max 2 | max 0, max 1 | max 2, max 3",
    1: "max 0, max 1 | max 0, max 2 | max 0, max 1 | skip 0, max 2",
    2: "max 0, skip 1 | max 0, max 2 | max 0, max 1 | skip 0, max 2",
    3: "max 0, skip 1 | skip 0, max 2 | max 0, max 1 | skip 0, max 2",
}


@pytest.mark.parametrize("max_skip", LIMITS)
def test_skip_limit_with_skips_tied_to_max_pool(max_skip: int) -> None:
    space, _ = search([*KEEP_NONE_MAX_SKIP, (SKIPS_MIXED, reverse(SKIPS_MIXED))], max_skip)
    g = space.architecture()
    assert g.normal == cell(SKIPS_MIXED_CELLS[min(max_skip, 3)])
    assert g.reduce == cell("dil3 0, sep3 1 | dil3 0, dil3 2 | dil3 0, dil3 1 | dil3 2, dil3 3")


# --- the pure rule ------------------------------------------------------------------------------


def test_derive_cell_lists_inputs_in_index_order_and_checks_shapes() -> None:
    from sgl.registry.spaces.p_darts import derive_cell

    names = [ops("skip sep3")] * 5
    # Node 0: input 1 is stronger; node 1: input 2, then input 0. DARTS lists the stronger first.
    weights = [[0.3, 0.2], [0.1, 0.6], [0.5, 0.1], [0.2, 0.1], [0.1, 0.7]]
    assert derive_cell(weights, names, 2) == cell("skip 0, sep3 1 | skip 0, sep3 2")
    assert derive_genotype(weights, weights, ops("skip sep3"), 2, "darts").normal == cell(
        "sep3 1, skip 0 | sep3 2, skip 0"
    )
    with pytest.raises(ValueError, match="5 edges"):
        derive_cell(weights[:4], names[:4], 2)
    with pytest.raises(ValueError, match="2 operations but 1 weights"):
        derive_cell([[0.5]] + weights[1:], names, 2)
    with pytest.raises(ValueError, match="no operation other than 'none'"):
        derive_cell([[1.0]] + weights[1:], [ops("none")] + names[1:], 2)


# --- DARTS and PC-DARTS keep DARTS' rule ------------------------------------------------------

DARTS_EQUAL_CELL = cell("max 0, max 1 | max 0, max 1 | max 0, max 1 | max 0, max 1")


@pytest.mark.parametrize("config", [DartsConfig, PCDartsConfig])
def test_darts_and_pc_darts_ties_keep_the_first(config) -> None:
    # DARTS' genotype(): strict '>' over the ops keeps the first of equal ones; sorted() by −strength
    # keeps the lower inputs, stronger first. PC-DARTS' is the same with β (here equal too).
    space = config(channels=4, nodes=4).build(TASK)
    with torch.no_grad():
        for param in space.parameters():
            param.zero_()
    g = space.architecture()
    assert g.normal == g.reduce == DARTS_EQUAL_CELL
