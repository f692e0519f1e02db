"""Time and peak memory of every custom-op implementation at DACNN sizes (issue 4).

    python -m benchmarks.kernels [--quick] [--device cpu|cuda]
                                 [--impls reference chunked taps triton]

Sizes: batch 4, C = C' in {64, 256}, feature maps at 1/8 and 1/4 of 352x1216 (44x152, 88x304),
guidance G = 4, dilation 6; correlation with D = 24 at 1/8 scale. ``--quick`` uses smaller
sizes so the table finishes in a few minutes on a 2-core CPU.

Measurement:
    cuda: CUDA events around each call (median of ``--repeat`` after a warm-up); peak memory is
        ``torch.cuda.max_memory_allocated()`` during one call minus the memory allocated before
        it (inputs and parameters excluded, outputs and gradients included).
    cpu: wall time (minimum of ``--repeat`` after a warm-up: the machine may be shared); peak
        memory is the maximum of the running total of PyTorch's CPU allocator during one call,
        read from the memory events of ``torch.profiler`` (profile_memory=True): exact for
        tensors, blind to allocator caching and to non-PyTorch memory. tracemalloc cannot see
        PyTorch's allocations, and the process RSS high-water mark (tried first) was inflated
        by glibc heap retention.
Triton rows on the CPU are not run: the interpreter checks correctness, its speed means nothing.
Target on a GPU (issue 4): Triton >= 5x faster than the reference with <= 1/4 of its peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass

import torch

from benchmarks.timing import wall_times
from depth_kd_core.kernels import correlation1d, depth_aware_conv2d
from depth_kd_core.kernels import depth_aware_conv as dac

FULL_RES = (352, 1216)  # KITTI training crop used by DACNN-sized models
GUIDANCE_CHANNELS = 4
DILATION = 6
MAX_DISP = 24  # DACNN §3.2, 1/8 scale


@dataclass
class Case:
    """One benchmark row's workload."""

    op: str  # "dac" (depth-aware conv) or "corr"
    batch: int
    channels: int
    height: int
    width: int
    backward: bool
    impl: str

    @property
    def label(self) -> str:
        size = f"B{self.batch} C{self.channels} {self.height}x{self.width}"
        return f"{self.op:4s} {size:22s} {'fwd+bwd' if self.backward else 'fwd':7s}"


def cases(quick: bool, impls: list[str]) -> list[Case]:
    """Return the rows of the table, in print order."""
    h8, w8 = FULL_RES[0] // 8, FULL_RES[1] // 8
    h4, w4 = FULL_RES[0] // 4, FULL_RES[1] // 4
    if quick:
        dac_sizes = [(4, 32, h8, w8), (4, 64, h8, w8), (2, 64, h4, w4)]
        corr_sizes = [(4, 64, h8, w8)]
    else:
        dac_sizes = [(4, c, h, w) for (h, w) in ((h8, w8), (h4, w4)) for c in (64, 256)]
        corr_sizes = [(4, c, h8, w8) for c in (64, 256)]
    rows = []
    for op, sizes in (("dac", dac_sizes), ("corr", corr_sizes)):
        for size in sizes:
            for backward in (False, True):
                for impl in impls:
                    if op == "corr" and impl in ("chunked", "taps"):
                        continue  # correlation has no chunked or taps path
                    rows.append(Case(op, *size, backward, impl))
    return rows


def make_inputs(case: Case, device: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Leaf tensors for the op and a gradient for its output; no large temporaries."""
    b, c, h, w = case.batch, case.channels, case.height, case.width

    def rand(*shape):
        return torch.empty(*shape, device=device).normal_().requires_grad_(case.backward)

    if case.op == "dac":
        tensors = [rand(b, c, h, w), rand(b, GUIDANCE_CHANNELS, h, w), rand(c, c, 3, 3),
                   rand(c), torch.tensor(1.0, device=device, requires_grad=case.backward)]
        out_channels = c
    else:
        tensors = [rand(b, c, h, w), rand(b, c, h, w)]
        out_channels = MAX_DISP + 1
    grad_out = torch.empty(b, out_channels, h, w, device=device).normal_()
    return tensors, grad_out


def run_once(case: Case, tensors: list[torch.Tensor], grad_out: torch.Tensor) -> None:
    """One forward (and backward) call; gradients are dropped afterwards."""
    with torch.set_grad_enabled(case.backward):
        if case.op == "dac":
            x, g, w, b, a = tensors
            out = depth_aware_conv2d(x, g, w, b, alpha=a, dilation=DILATION, impl=case.impl)
        else:
            out = correlation1d(tensors[0], tensors[1], MAX_DISP, impl=case.impl)
        if case.backward:
            torch.autograd.grad(out, tensors, grad_out)


def _profiled_peak_bytes(fn) -> int:
    """Peak of PyTorch's CPU allocations made while ``fn`` runs, above the level at its start.

    The profiler's memory events carry the running total of the c10 CPU allocator
    ("Total Allocated", counted from 0 when profiling starts), so its maximum is the peak.
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max([0, *totals])


def measure_cpu(case: Case, repeat: int) -> dict:
    """Peak allocation of one profiled call, then the fastest of ``repeat`` timed calls.

    The minimum, not the median: this CPU is shared, and contention only ever adds time.
    """
    tensors, grad_out = make_inputs(case, "cpu")
    run_once(case, tensors, grad_out)  # warm-up
    peak = _profiled_peak_bytes(lambda: run_once(case, tensors, grad_out))
    times = wall_times(lambda: run_once(case, tensors, grad_out), repeat, warmup=0)
    return {"ms": 1e3 * min(times), "peak_mib": peak / 2**20}


def measure_cuda(case: Case, repeat: int) -> dict:
    """Median CUDA-event time after one warm-up call; peak allocated memory of one call."""
    tensors, grad_out = make_inputs(case, "cuda")
    run_once(case, tensors, grad_out)  # warm-up: Triton compilation, cuBLAS handles
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run_once(case, tensors, grad_out)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run_once(case, tensors, grad_out)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return {"ms": statistics.median(times), "peak_mib": peak / 2**20}


def print_table(results: list[tuple[Case, dict]]) -> None:
    """One row per case, with time and memory relative to the reference of the same workload."""
    refs = {(c.op, c.batch, c.channels, c.height, c.width, c.backward): r
            for c, r in results if c.impl == "reference" and "ms" in r}
    print(f"| {'workload':40s} | {'impl':9s} | {'time ms':>9s} | {'peak MiB':>9s} "
          f"| {'speed-up':>8s} | {'mem ratio':>9s} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 11}:|{'-' * 11}:|{'-' * 10}:|{'-' * 11}:|")
    for case, res in results:
        if "error" in res:
            print(f"| {case.label:40s} | {case.impl:9s} | error: {res['error']} |")
            continue
        ref = refs.get((case.op, case.batch, case.channels, case.height, case.width,
                        case.backward))
        speed = f"{ref['ms'] / res['ms']:.2f}x" if ref else "-"
        ratio = f"{res['peak_mib'] / ref['peak_mib']:.3f}" if ref and ref["peak_mib"] else "-"
        print(f"| {case.label:40s} | {case.impl:9s} | {res['ms']:9.1f} | {res['peak_mib']:9.1f} "
              f"| {speed:>8s} | {ratio:>9s} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (CPU-friendly)")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where to run (default: cuda when available)")
    parser.add_argument("--ops", nargs="+", default=["dac", "corr"], choices=["dac", "corr"],
                        help="which ops to time")
    parser.add_argument("--impls", nargs="+", default=None,
                        help="implementations to time (default: all that run on the device)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed calls per row (CPU: minimum, CUDA: median)")
    parser.add_argument("--chunk-mib", type=float, default=None,
                        help="band budget of the chunked path, MiB (default: its own default)")
    args = parser.parse_args(argv)
    if args.chunk_mib is not None:
        dac.DEFAULT_CHUNK_BYTES = int(args.chunk_mib * 2**20)
    default = ["reference", "chunked", "taps"] + (["triton"] if args.device == "cuda" else [])
    impls = args.impls or default
    print(f"device: {torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"G={GUIDANCE_CHANNELS}, dilation={DILATION}, D={MAX_DISP}, "
          f"chunk budget {dac.DEFAULT_CHUNK_BYTES / 2**20:g} MiB", flush=True)
    results = []
    for case in [c for c in cases(args.quick, impls) if c.op in args.ops]:
        measure = measure_cuda if args.device == "cuda" else measure_cpu
        try:
            res = measure(case, args.repeat)
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: report, keep going
            res = {"error": str(exc).splitlines()[0][:80]}
        results.append((case, res))
        print(f"  measured {case.label} {case.impl}: {res}", file=sys.stderr, flush=True)
    print_table(results)


if __name__ == "__main__":
    main()
