"""``expect:`` — a recipe checks itself: metrics of summary.json against ranges.

Checked at the end of ``sgl run`` / ``sgl resume`` (a failed expectation exits 1) and by
``sgl report``, which checks a run's summary against the expectations of its plan.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Protocol

from .summary import ExpectationResult

_MISSING = object()


class Expected(Protocol):
    metric: str
    low: float
    high: float
    source: str


def lookup(summary: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``summary``; a list is indexed by position or by the name
    of an item's stage (``evaluations.evaluate.test_error_final``). A missing key gives ``_MISSING``."""
    node: Any = summary
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                node = next((item for item in node if isinstance(item, dict) and part in (item.get("stage"), item.get("name"))), _MISSING)
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def check(expectations: Iterable[Expected], summary: dict[str, Any]) -> list[ExpectationResult]:
    """One result per expectation: the metric, its value, the bounds, whether it passed, the source."""
    results = []
    for expected in expectations:
        found = lookup(summary, expected.metric)
        value = float(found) if isinstance(found, (int, float)) and not isinstance(found, bool) else None
        passed = value is not None and math.isfinite(value) and expected.low <= value <= expected.high
        results.append(ExpectationResult(metric=expected.metric, value=value, low=expected.low, high=expected.high,
                                         passed=passed, source=expected.source))
    return results


def describe(result: ExpectationResult) -> str:
    """One line: ``metric = value, expected low – high (source)``."""
    value = "missing" if result.value is None else f"{result.value:.6g}"
    source = f" ({result.source})" if result.source else ""
    verdict = "ok" if result.passed else "FAILED"
    return f"{verdict}: {result.metric} = {value}, expected {result.low:.6g} – {result.high:.6g}{source}"
