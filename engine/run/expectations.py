"""``expect:`` — a recipe checks itself: metrics of summary.json against ranges.

Used at the end of ``sgl run`` / ``sgl resume`` / ``sgl train`` (a failed expectation exits 1) and by
``sgl report``, which re-checks a run's summary against the expectations of its resolved spec.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

_MISSING = object()


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


def bounds(expectation: dict[str, Any]) -> tuple[float, float]:
    if expectation.get("range") is not None:
        low, high = expectation["range"]
        return float(low), float(high)
    value, tolerance = float(expectation["value"]), float(expectation.get("tolerance") or 0.0)
    return value - tolerance, value + tolerance


def check(expectations: Iterable[Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per expectation: the metric, its value, the bounds, whether it passed, the source."""
    results = []
    for expectation in expectations:
        data = expectation.model_dump() if hasattr(expectation, "model_dump") else dict(expectation)
        low, high = bounds(data)
        found = lookup(summary, data["metric"])
        value = float(found) if isinstance(found, (int, float)) and not isinstance(found, bool) else None
        passed = value is not None and math.isfinite(value) and low <= value <= high
        results.append({"metric": data["metric"], "value": value if found is not _MISSING else None,
                        "low": low, "high": high, "passed": passed, "source": data.get("source", "")})
    return results


def describe(result: dict[str, Any]) -> str:
    """One line: ``metric = value, expected low – high (source)``."""
    value = "missing" if result["value"] is None else f"{result['value']:.6g}"
    source = f" ({result['source']})" if result.get("source") else ""
    verdict = "ok" if result["passed"] else "FAILED"
    return f"{verdict}: {result['metric']} = {value}, expected {result['low']:.6g} – {result['high']:.6g}{source}"
