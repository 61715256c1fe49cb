"""The data path's cost: per search iteration, three batch streams (D_train, D_u, D_val) per image on
the CPU vs whole batches on the device; per accuracy measurement, the evaluation images collated
one at a time (as before issue #19) vs whole batches gathered and normalised at once.

    python bench/data.py [--images 10000] [--batch 64] [--iterations 50] [--device cpu|cuda]

Writes CIFAR-10-shaped batch files (random bytes, the real pickle layout) to a temporary folder,
loads them with the training augmentation of the search (crop, flip, normalise; cutout when
given), and times drawing one batch from each of the three streams, both ways interleaved in one
process; then one pass over the evaluation view of the images (D_val's, batches of 256) both ways.
Prints one JSON object: median milliseconds of each, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_cifar(root: Path, images: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per = images // 5
    for i in range(1, 6):
        data = {"data": rng.integers(0, 256, (per, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, per).tolist()}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(data))
    test = {"data": rng.integers(0, 256, (100, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, 100).tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(c) for c in range(10)]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--cutout", type=int, default=0, help="cutout length (the search uses none; evaluation 16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sgl.engine.run.data import BatchStream
    from sgl.registry.datasets import Cifar10Config

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar(Path(tmp), args.images)
        bundle = Cifar10Config(root=Path(tmp)).build(Path(tmp), seed=0, cutout=args.cutout)
    data = bundle.train.in_memory()
    resident = type(data)(data.images.to(device), data.labels.to(device), data.augment)
    half = torch.arange(args.images // 2)
    streams = {}
    for way, extra in (("per_image", {}), ("device", {"resident": resident})):
        streams[way] = [BatchStream(bundle.train, idx, args.batch, seed=s, device=device, **extra)
                        for s, idx in enumerate((half, half + args.images // 2, half))]
    times = {way: [] for way in streams}
    for _ in range(args.iterations + 2):
        for way, three in streams.items():
            start = time.perf_counter()
            for stream in three:
                x, _ = stream.next()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[way].append(time.perf_counter() - start)
    medians = {way: statistics.median(t[2:]) * 1000 for way, t in times.items()}
    evaluation = measure_evaluation(bundle.train_eval, device, repeats=3)
    print(json.dumps({
        "device": str(device), "images": args.images, "batch": args.batch, "streams": 3, "cutout": args.cutout,
        "threads": args.threads, "load_1min": round(os.getloadavg()[0], 2),
        "ms_per_iteration": {way: round(ms, 3) for way, ms in medians.items()},
        "per_image_over_device": round(medians["per_image"] / medians["device"], 2),
        "ms_per_evaluation_pass": {way: round(ms, 1) for way, ms in evaluation.items()},
        "evaluation_per_image_over_batched": round(evaluation["per_image"] / evaluation["batched"], 2),
    }))


def measure_evaluation(dataset, device: torch.device, repeats: int, batch: int = 256) -> dict[str, float]:
    """Milliseconds for one pass over ``dataset``'s images as accuracy batches: collated image by image
    (the path before #19) and as the engine makes them now (``eval_batches``), interleaved."""
    from torch.utils.data import default_collate

    from sgl.engine.run.data import eval_batches

    def per_image() -> None:
        for start in range(0, len(dataset), batch):
            x, y = default_collate([dataset[i] for i in range(start, min(start + batch, len(dataset)))])
            x.to(device), y.to(device)

    def batched() -> None:
        for x, y in eval_batches(dataset, None, batch, device):
            pass

    times: dict[str, list[float]] = {"per_image": [], "batched": []}
    for _ in range(repeats):
        for way, one_pass in (("per_image", per_image), ("batched", batched)):
            start = time.perf_counter()
            one_pass()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[way].append(time.perf_counter() - start)
    return {way: statistics.median(t) * 1000 for way, t in times.items()}


if __name__ == "__main__":
    main()
