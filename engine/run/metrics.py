"""Running sums of step results, kept on the device and read (one synchronisation) when logged."""

from __future__ import annotations

from typing import Any

import torch

Key = tuple[str, str]  # (learner, network)


class Accumulator:
    """Sums per (learner, network): loss over steps, correct predictions and examples seen.

    ``add`` takes device tensors and never synchronises; ``read_and_reset`` moves everything to the
    host in one transfer. ``merge`` folds such a reading into a longer window (the epoch).
    """

    def __init__(self) -> None:
        self._sums: dict[Key, list[Any]] = {}  # key -> [loss_sum, correct, finite, steps, examples]

    def add(self, learner: str, net: str, result: Any) -> None:
        entry = self._sums.get((learner, net))
        if entry is None:
            self._sums[(learner, net)] = [result.loss.float(), result.correct.float(), result.finite, 1, result.count]
        else:
            entry[0] = entry[0] + result.loss.float()
            entry[1] = entry[1] + result.correct.float()
            entry[2] = entry[2] & result.finite
            entry[3] += 1
            entry[4] += result.count

    def read_and_reset(self) -> dict[Key, dict[str, float]]:
        if not self._sums:
            return {}
        keys = list(self._sums)
        device_values = torch.stack(
            [torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in self._sums[k][:3]]).cpu() for k in keys]
        ).tolist()
        out = {}
        for key, (loss_sum, correct, finite) in zip(keys, device_values):
            steps, examples = self._sums[key][3], self._sums[key][4]
            out[key] = {"loss": loss_sum / steps, "acc": correct / max(examples, 1), "finite": bool(finite),
                        "steps": steps, "examples": examples}
        self._sums.clear()
        return out

    def merge(self, values: dict[Key, dict[str, float]]) -> None:
        for key, stats in values.items():
            loss_sum = torch.tensor(stats["loss"] * stats["steps"])
            correct = torch.tensor(stats["acc"] * stats["examples"])
            entry = self._sums.get(key)
            finite = torch.tensor(stats["finite"])
            if entry is None:
                self._sums[key] = [loss_sum, correct, finite, stats["steps"], stats["examples"]]
            else:
                entry[0] = entry[0] + loss_sum
                entry[1] = entry[1] + correct
                entry[2] = entry[2] & finite
                entry[3] += stats["steps"]
                entry[4] += stats["examples"]

    def state_dict(self) -> dict[str, Any]:
        return {"keys": [list(k) for k in self._sums], "values": [[torch.as_tensor(v).cpu() for v in e[:3]] + e[3:] for e in self._sums.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = {tuple(k): list(v) for k, v in zip(state["keys"], state["values"])}
