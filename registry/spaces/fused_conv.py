"""Depthwise convolutions of the DARTS ops routed to oneDNN's fast CPU kernels, same math.

On CPU (float32), oneDNN computes depthwise convs with its fast ``jit_dw`` kernels only when the
conv is undilated, 3x3 and at least 3x3 pixels; otherwise one or both backward passes fall back
to a GEMM per channel (``x64:gemm:jit``), 5-20x slower than a 3x3 conv and linear in the
channels, so batching cannot help them. ``ONEDNN_VERBOSE=1`` shows which kernel runs. Two exact
rewrites avoid the fallback:

- dilation 2 → dilation 1 (polyphase): a conv dilated by 2 only mixes pixels of equal row and
  column parity, so it is the undilated conv of each of the four parity sub-images (stacked along
  the batch) interleaved back; at stride 2 only the even sub-image is read.
- kernel taps that can only read padding (further from the centre than the image is wide) are
  dropped: on a 1x1 image any conv is its centre tap, an elementwise product;
- an undilated conv that is 5x5 or smaller than 3 pixels runs on channels-last tensors, where
  oneDNN's weight gradient has a direct kernel.

Each output is the same sum of the same products as the direct conv (the polyphase adds products
with exact zeros at odd sizes, the
cropping drops products with the zero padding); only the summation order may differ.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int, rewrite: Optional[bool] = None
) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, dilation, groups=C)`` for a square odd kernel
    with "same" padding (``padding == dilation·(k − 1)/2``), as every depthwise conv of the OPS.

    ``rewrite``: None rewrites where it pays (float32 on CPU, oneDNN's kernels), True always
    (tests check the rewrites in float64), False never.
    """
    k = weight.shape[-1]
    same = weight.shape[-2] == k and k % 2 == 1 and padding == dilation * (k - 1) // 2
    if rewrite is None:
        rewrite = x.dtype == torch.float32 and x.device.type == "cpu"
    if not rewrite or not same or dilation not in (1, 2):
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])
    if dilation == 1:
        return _undilated(x, weight, stride)
    if stride == 2:
        # Output y reads input rows 2y + 2(i − m), m = (k − 1)/2: even rows and columns only.
        return _undilated(x[..., ::2, ::2], weight, 1)
    B, C, H, W = x.shape
    He, We = H + H % 2, W + W % 2
    if (He, We) != (H, W):
        # A zero row/column stands where the direct conv reads its zero padding.
        x = F.pad(x, (0, We - W, 0, He - H))
    h, w = He // 2, We // 2
    phases = x.reshape(B, C, h, 2, w, 2).permute(3, 5, 0, 1, 2, 4).reshape(4 * B, C, h, w)
    out = _undilated(phases, weight, 1)
    out = out.reshape(2, 2, B, C, h, w).permute(2, 3, 4, 0, 5, 1).reshape(B, C, He, We)
    return out if (He, We) == (H, W) else out[..., :H, :W]


def _undilated(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    k = weight.shape[-1]
    H, W = x.shape[-2:]
    # Taps further than H − 1 rows (W − 1 columns) from the centre read only padding: drop them.
    kh, kw = min(k, 2 * H - 1), min(k, 2 * W - 1)
    if (kh, kw) != (k, k):
        top, left = (k - kh) // 2, (k - kw) // 2
        weight = weight[..., top : top + kh, left : left + kw]
    if kh == kw == 1:
        return x[..., ::stride, ::stride] * weight.view(1, -1, 1, 1)
    padding = ((kh - 1) // 2, (kw - 1) // 2)
    if kh == kw == 3 and min(H, W) >= 3:
        return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])
    cl = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(cl, weight, None, stride, padding, 1, x.shape[1]).contiguous()
