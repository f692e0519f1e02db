"""Seed statistics and the markdown report of the distillation benchmark.

A method's result (``benchmarks.distillation.run_methods``) holds ``teacher`` ({crop: summary},
when a depth teacher is scored), ``runs`` ({seed: {"nokd": {crop: summary}, "kd": ...}}: the
per-seed values) and, once every seed is in, ``nokd`` and ``kd`` ({crop: {metric: stats}})
from :func:`aggregate`, with stats = mean, std (sample, n - 1; 0 for one seed), min, max, n.
"""

from __future__ import annotations

import math

from depth_kd_core.metrics import HIGHER_IS_BETTER

REPORTED = ("abs_rel", "sq_rel", "rmse", "a1")
HEADERS = ("AbsRel", "SqRel", "RMSE", "δ1")
# the bar: KD must win on all three, in both protocols, by more than the seed spread
JUDGED = ("abs_rel", "rmse", "a1")
RHO = "spearman_sigma_abs_err"
CROPS = ("none", "garg")  # whole frame (primary), KITTI Garg crop
CROP_TITLES = {"none": "whole frame", "garg": "Garg crop"}


def stats(values: list[float]) -> dict:
    """mean, std (sample, n - 1; 0 for one value), min, max and n of ``values``."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"mean": mean, "std": math.sqrt(var), "min": min(values), "max": max(values), "n": n}


def aggregate(runs: dict, part: str) -> dict:
    """{crop: {metric: stats}} of ``part`` ("nokd"/"kd") over the seeds in ``runs``."""
    out = {}
    for crop in CROPS:
        summaries = [r[part][crop] for r in runs.values()]
        keys = [k for k in (*REPORTED, RHO) if all(s.get(k) is not None for s in summaries)]
        out[crop] = {k: stats([s[k] for s in summaries]) for k in keys}
        out[crop]["median_scaling"] = bool(summaries[0].get("median_scaling", False))
    return out


def mean_of(scores: dict, key: str) -> float:
    """Return the value of ``key`` in a summary or the mean of a stats entry."""
    v = scores[key]
    return v["mean"] if isinstance(v, dict) else v


def gap_closed(r: dict, crop: str) -> float | None:
    """(no-KD - KD) / (no-KD - teacher) in mean AbsRel; None without a better depth teacher."""
    if "teacher" not in r:
        return None
    nokd, kd = mean_of(r["nokd"][crop], "abs_rel"), mean_of(r["kd"][crop], "abs_rel")
    gap = nokd - r["teacher"][crop]["abs_rel"]
    return (nokd - kd) / gap if gap > 0 else None


def verdict(kd: dict, ref: dict, key: str) -> str:
    """How ``kd`` compares with ``ref`` on ``key``: "win" or "loss" (+ " within spread").

    A margin is beyond the spread when it exceeds the sum of both seed stds (with one seed
    there is no spread to compare against: "win (1 seed)", "loss (1 seed)").
    """
    a, b = mean_of(kd, key), mean_of(ref, key)
    outcome = "win" if (a > b if key in HIGHER_IS_BETTER else a < b) else "loss"
    spread = sum(s[key]["std"] for s in (kd, ref) if isinstance(s[key], dict))
    if all(isinstance(s[key], dict) and s[key]["n"] < 2 for s in (kd, ref)):
        return f"{outcome} (1 seed)"
    return outcome if abs(a - b) > spread else f"{outcome} within spread"


def _cell(scores: dict | None, key: str) -> str:
    if not scores or key not in scores:
        return "-"
    v = scores[key]
    if not isinstance(v, dict):
        return f"{v:.3f}"
    return f"{v['mean']:.3f} ± {v['std']:.3f}" if v["n"] > 1 else f"{v['mean']:.3f}"


def _row(method: str, model: str, scores: dict | None) -> str:
    cells = " | ".join(_cell(scores, k) for k in (*REPORTED, RHO))
    return f"| {method} | {model} | {cells} |"


def metric_table(results: list[dict], crop: str, trivial: dict) -> list[str]:
    """Rows per method (teacher, no-KD, KD) and the predictors that ignore the image."""
    lines = ["| method | model | " + " | ".join(HEADERS) + " | ρ(σ, abs err) |",
             "|---" * (len(HEADERS) + 3) + "|"]
    for r in results:
        if "teacher" in r:
            lines.append(_row(r["method"], "teacher", r["teacher"][crop]))
        lines.append(_row(r["method"], "no-KD", r["nokd"][crop]))
        lines.append(_row(r["method"], "KD", r["kd"][crop]))
    for name, scores in trivial.items():
        lines.append(_row("-", f"{name} (ignores the image)", scores[crop]))
    return lines


PRIOR, PRIOR_MEDIAN = "no-image prior", "no-image prior, median-scaled"


def prior_for(r: dict, crop: str, trivial: dict) -> dict | None:
    """Return the prior a student is judged against: median-scaled when the student is."""
    name = PRIOR_MEDIAN if r["kd"][crop].get("median_scaling") else PRIOR
    return trivial.get(name)


def verdict_table(results: list[dict], crop: str, trivial: dict) -> list[str]:
    """Return the verdict table: per method, gap closed, KD against no-KD and against the prior.

    KD is compared on the judged metrics, against the median-scaled prior for median-scaled
    students.
    """
    lines = ["| method | gap closed (AbsRel) | KD vs no-KD: AbsRel / RMSE / δ1 | "
             "KD vs no-image prior: AbsRel / RMSE / δ1 |", "|---|---|---|---|"]
    for r in results:
        gap = gap_closed(r, crop)
        gap_s = "n/a (no depth teacher)" if "teacher" not in r else \
            "n/a (teacher not better)" if gap is None else f"{100 * gap:.0f} %"
        vs_twin = " / ".join(verdict(r["kd"][crop], r["nokd"][crop], k) for k in JUDGED)
        prior = prior_for(r, crop, trivial)
        vs_prior = " / ".join(verdict(r["kd"][crop], prior[crop], k) for k in JUDGED) \
            if prior else "-"
        lines.append(f"| {r['method']} | {gap_s} | {vs_twin} | {vs_prior} |")
    return lines


def summary_line(results: list[dict], crop: str) -> str:
    gaps = [g for g in (gap_closed(r, crop) for r in results) if g is not None]
    wins = sum(all(verdict(r["kd"][crop], r["nokd"][crop], k) == "win" for k in JUDGED)
               for r in results)
    mean_gap = f"{100 * sum(gaps) / len(gaps):.0f} %" if gaps else "n/a"
    return (f"{CROP_TITLES[crop]}: KD beats no-KD on AbsRel, RMSE and δ1 beyond the seed spread "
            f"for {wins}/{len(results)} methods; mean gap closed {mean_gap} over the methods "
            "whose teacher predicts depth better than the no-KD student.")


def report(results: list[dict], header: str, trivial: dict | None = None) -> str:
    """Return the markdown report: per protocol a metric table and a verdict table."""
    trivial = trivial or {}
    lines = [header]
    for crop in CROPS:
        lines += ["", f"AbsRel / SqRel / RMSE / δ1 on the held-out scenes, dense ground truth, "
                  f"0-80 m, **{CROP_TITLES[crop]}**; mean ± std over the seeds (per-seed "
                  "values in results.json).", "", *metric_table(results, crop, trivial), "",
                  *verdict_table(results, crop, trivial), "", summary_line(results, crop)]
    return "\n".join(lines)
