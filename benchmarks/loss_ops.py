"""Forward + backward time of the training-loss building blocks rewritten for CPU speed.

    python -m benchmarks.loss_ops [--repeat 7] [--threads 1]

Rows, at the distillation benchmark's ``small`` size (batch 4, 64x192):
- TIE-KD's DPM head (257 bins) with its KD loss: the autograd graph of the formulas
  (softmax over bins, expectation, two-pass spread, as before) against ``DPMHead`` (one
  autograd node with a fused backward).
- the 3x3 window mean of the photometric SSIM (five per SSIM; a 3-frame video loss takes
  several SSIMs per step): ``F.avg_pool2d`` against ``box_mean3`` (shifted slices).
Each cell is the minimum wall time over ``--repeat`` runs after a warm-up, on ``--threads``
intra-op threads (1: as each of the benchmark's two CPU jobs runs). Both sides of a row
compute the same values; ``test/test_layers.py`` checks it.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks.timing import wall_times
from depth_kd_core.layers.dpm import DPMHead
from depth_kd_core.layers.ssim import box_mean3
from depth_kd_core.losses.tiekd import tiekd_loss

BATCH, HEIGHT, WIDTH, FEATURES = 4, 64, 192, 16


def _graph_moments(logits: torch.Tensor, centres: torch.Tensor):
    """Compute the DPM formulas as separate autograd operations (the head before fusing)."""
    dpm = torch.softmax(logits, dim=-1)
    depth = torch.matmul(dpm, centres.unsqueeze(-1))
    var = (dpm * (centres - depth).square()).sum(-1, keepdim=True)
    return dpm, depth, var.clamp_min(0).sqrt()


def dpm_step(head: DPMHead, x: torch.Tensor, teacher: torch.Tensor, fused: bool):
    """Return a closure: one forward + backward of the head and TIE-KD's loss."""
    def run() -> None:
        if fused:
            out = head(x)
        else:
            logits = F.linear(x.permute(0, 2, 3, 1), head.conv.weight.flatten(1), head.conv.bias)
            dpm, depth, sigma = (t.permute(0, 3, 1, 2)
                                 for t in _graph_moments(logits, head.centres))
            out = {"dpm": dpm, "depth": depth, "sigma": sigma}
        tiekd_loss(out["dpm"], out["depth"], teacher, head.centres)["loss"].backward()
    return run


def pool_step(images: torch.Tensor, fn):
    """Return a closure: the five window means of one SSIM, forward + backward."""
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect").detach().requires_grad_()

    def run() -> None:
        total = sum(fn(t).sum() for t in (padded, padded * padded, padded * 0.5,
                                          padded.square(), padded * 2))
        total.backward()
    return run


def best_time(fn, repeat: int) -> float:
    """Fewest seconds of ``repeat`` calls of fn() after one warm-up."""
    return min(wall_times(fn, repeat))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    head = DPMHead(FEATURES)
    x = torch.randn(BATCH, FEATURES, HEIGHT, WIDTH, requires_grad=True)
    teacher = torch.rand(BATCH, 1, HEIGHT, WIDTH) * 70 + 1
    images = torch.rand(3 * BATCH, 3, HEIGHT, WIDTH)  # both source frames and the identity
    rows = [("DPM head + TIE-KD loss, 257 bins", "autograd graph", "fused node",
             dpm_step(head, x, teacher, False), dpm_step(head, x, teacher, True)),
            ("SSIM 3x3 window means (x5)", "avg_pool2d", "box_mean3",
             pool_step(images, lambda t: F.avg_pool2d(t, 3, 1)), pool_step(images, box_mean3))]
    print(f"batch {BATCH}, {HEIGHT}x{WIDTH}, {args.threads} thread(s), forward + backward, "
          f"best of {args.repeat}")
    print("| op | before | ms | after | ms | speed-up |\n|---|---|---|---|---|---|")
    for name, before_name, after_name, before, after in rows:
        t0, t1 = best_time(before, args.repeat), best_time(after, args.repeat)
        print(f"| {name} | {before_name} | {t0 * 1e3:.0f} | {after_name} | {t1 * 1e3:.0f} | "
              f"{t0 / t1:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
