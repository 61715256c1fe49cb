"""What a model needs to know about the data it will see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    num_classes: int
    in_channels: int
    image_size: int  # height == width; the catalogue's datasets are square
