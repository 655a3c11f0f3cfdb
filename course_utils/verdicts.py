"""Verdicts computed from measurements by one stated rule, recorded for the claims ledger.

The course's statistical protocol, used by every notebook:

1. An effect is measured as **differences paired by seed** (same seed = same initial weights,
   same shuffling, same data), signed so that a positive difference is what the claim predicts.
   Timings are paired by interleaved repeat and compared as log-ratios (a speed-up factor).
2. Its **95% confidence interval** is ``mean ± t(0.975, n-1) · sd / sqrt(n)`` (Student's t).
3. Each part of a claim gets one of three verdicts, with ``min_effect`` the smallest effect that
   matters (stated next to each measurement; 0 means "any real effect"):

   - **holds**: the whole interval lies above 0 and the mean is at least ``min_effect``;
   - **does not hold here**: the whole interval lies below ``min_effect`` (too small to
     matter, or the opposite of the claim);
   - **inconclusive at this budget**: anything else; the effect is inside the noise, and more
     seeds or a larger budget are needed to decide.

   A deterministic check (an exact comparison with PyTorch, a monotone curve) holds or does not.
   A claim that something is *unnecessary* ("B makes A unnecessary") is a non-inferiority
   part (:func:`noninferior`): it holds when the whole interval lies above ``-margin``.
4. A claim with several parts **holds** when every part holds, is **partly** true when some
   parts hold and others do not, is **inconclusive at this budget** when no part holds and at
   least one is inconclusive, and **does not hold here** when no part holds and none is
   inconclusive. So "the gap shrinks but the accuracy is unchanged" is always "partly".
   A part this machine cannot measure (a multi-GPU speed-up on one CPU) is recorded as **not
   measured here** (:func:`not_measured`): it never counts as holding, so a claim whose measured
   parts all hold is only "partly" confirmed until a machine that can measure the rest does.

Verdicts are recorded with their numbers, the hardware, the date and the data source under
``results/verdicts/`` next to the notebooks; the capstone (notebook 13) and the book's ledger
page collect them. Taught in notebook 01, used by every notebook with a claim.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from course_utils.results import atomic_write_text, read_json

HOLDS, PARTLY, NOT_HERE, INCONCLUSIVE = "holds", "partly", "does not hold here", "inconclusive at this budget"
NOT_MEASURED = "not measured here"
VERDICTS = (HOLDS, PARTLY, NOT_HERE, INCONCLUSIVE, NOT_MEASURED)
PROTOCOL = ("paired by seed, 95% t-interval; holds: interval above 0 and mean >= min_effect; "
            "does not hold here: interval below min_effect; otherwise inconclusive at this budget; "
            "a claim holds if all parts hold, partly if some do")

# The claims of the curriculum (shared/CURRICULUM.md), in short: the ledger lists all of them.
CLAIMS: dict[str, tuple[str, str]] = {
    "C1": ("Normalizing inputs to mean 0 / std 1 speeds up convergence; saturated sigmoid/tanh "
           "inputs learn slowly", "01_data_normalization"),
    "C2": ("Dataset mean/std can be computed with one DataLoader batch of the whole set "
           "(MNIST: 0.1307 / 0.3081)", "01_data_normalization"),
    "C3": ("Augmentation increases diversity and reduces overfitting", "02_data_augmentation"),
    "C4": ("Test-time augmentation (several crops averaged) improves test accuracy",
           "02_data_augmentation"),
    "C5": ("num_workers > 0 plus pin_memory=True gives about 2x faster epochs; workers = 4 x GPUs",
           "03_input_pipeline"),
    "C6": ("Use the largest batch that fits; double the batch, double the LR; batch 64 -> 512 "
           "gave about 4x speed-up", "03_input_pipeline"),
    "C7": ("Gradient accumulation emulates a large batch, but BatchNorm statistics become inaccurate",
           "03_input_pipeline"),
    "C8": ("Adagrad's effective LR shrinks and can stall; RMSProp's decay fixes that; Adam = "
           "RMSProp + momentum with bias correction", "04_optimizers"),
    "C9": ("Adam converges faster; well-tuned SGD (momentum) often generalizes better",
           "04_optimizers"),
    "C10": ("LR too large diverges or skips the minimum; too small converges slowly",
            "05_learning_rate_schedules"),
    "C11": ("Step / cosine / warm-up schedules beat a constant LR", "05_learning_rate_schedules"),
    "C12": ("1cycle reaches the same accuracy in far fewer iterations (super-convergence)",
            "05_learning_rate_schedules"),
    "C13": ("An LR range test finds a good LR", "05_learning_rate_schedules"),
    "C14": ("MSE is a poor loss for classification compared with cross-entropy; BCE for "
            "binary/multi-label", "06_loss_functions"),
    "C15": ("Class imbalance needs re-weighting (or resampling) of the loss", "06_loss_functions"),
    "C16": ("L2 and L1 reduce overfitting; L1 gives sparse weights; in Adam, L2 in the loss is "
            "not decoupled weight decay (AdamW)", "07_regularization"),
    "C17": ("Stop early when the validation loss rises while the training loss falls",
            "07_regularization"),
    "C18": ("Dropout reduces overfitting; scaling at test time and inverted dropout are equivalent",
            "08_batchnorm_and_dropout"),
    "C19": ("BatchNorm allows a larger LR, regularizes, may make dropout unnecessary; eval mode "
            "uses running averages", "08_batchnorm_and_dropout"),
    "C20": ("A pretrained model reaches good accuracy much faster than training from scratch",
            "09_transfer_learning"),
    "C21": ("The tuning procedure: initial loss, overfit a tiny subset, find an LR, coarse grid, "
            "refine, read the curves", "10_tuning_procedure"),
    "C22": ("Inf/NaN loss means LR too large or bad init; a flat loss means LR too small, bad "
            "init or model too small", "10_tuning_procedure"),
    "C23": ("Mixed precision saves memory and speeds training several times on tensor-core GPUs "
            "with little accuracy loss", "11_mixed_precision_and_compilation"),
    "C24": ("DataParallel speeds up training on several GPUs but replicates the model; DDP is the "
            "recommended replacement", "12_multi_gpu"),
    "C25": ("Stop training when accuracy stops improving (epochs as a hyperparameter)",
            "07_regularization"),
}

# Two-sided 95% quantiles of Student's t for 1-30 degrees of freedom (any statistics table).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (a 95% interval)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be a positive int, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # Cornish-Fisher expansion beyond the table; within 0.001 of the exact value
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _numbers(values: Iterable[float], what: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be numbers, got {values!r}") from err
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what} contains non-finite values {bad}: a run diverged or was not "
                         "measured; report it as its own finding instead of averaging it")
    return out


@dataclass(frozen=True)
class Evidence:
    """One measured part of a claim and its verdict under the protocol."""

    name: str
    verdict: str
    summary: str  # the key number, e.g. "+2.1 pp (95% CI +1.5 to +2.7; 5 seeds)"
    rule: str
    kind: str  # "paired", "noninferior", "speedup", "check" or "not measured"
    numbers: dict[str, Any] = field(default_factory=dict)


def _interval(diffs: Sequence[float]) -> tuple[float, float, float]:
    mean = statistics.mean(diffs)
    half = t_quantile(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def _decide(mean: float, low: float, high: float, min_effect: float) -> str:
    if low > 0 and mean >= min_effect:
        return HOLDS
    if high < min_effect:
        return NOT_HERE
    return INCONCLUSIVE


def effect(name: str, differences: Sequence[float], *, min_effect: float = 0.0, unit: str = "",
           digits: int = 2, what: str = "seeds") -> Evidence:
    """Judge an effect from per-seed differences (positive = as the claim predicts).

    Args:
        name: what was measured, e.g. ``"standardized - raw, val acc after 5 epochs"``.
        differences: one value per seed, in the units shown (e.g. accuracy points).
        min_effect: the smallest effect that matters, in the same units (>= 0).
        unit: appended to the numbers (e.g. ``" pp"``).
        what: what the differences are paired by, for the summary.

    Raises:
        ValueError: fewer than 2 differences, a non-finite one, or a negative ``min_effect``.
    """
    diffs = _numbers(differences, "differences")
    if len(diffs) < 2:
        raise ValueError(f"an effect needs at least 2 paired {what}, got {len(diffs)}: one run "
                         "cannot separate an effect from noise")
    if not math.isfinite(min_effect) or min_effect < 0:
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect!r}")
    mean, low, high = _interval(diffs)
    verdict = _decide(mean, low, high, min_effect)
    agree = sum(d > 0 for d in diffs)
    summary = (f"{mean:+.{digits}f}{unit} (95% CI {low:+.{digits}f} to {high:+.{digits}f}; "
               f"{len(diffs)} {what}, {agree} positive)")
    rule = f"holds if the 95% CI is above 0 and the mean is at least {min_effect:g}{unit}"
    return Evidence(name, verdict, summary, rule, "paired",
                    {"differences": diffs, "mean": mean, "ci": [low, high], "n": len(diffs),
                     "min_effect": min_effect, "unit": unit.strip()})


def paired(name: str, baseline: Sequence[float], treatment: Sequence[float], *,
           higher_is_better: bool = True, scale: float = 1.0, min_effect: float = 0.0,
           unit: str = "", digits: int = 2) -> Evidence:
    """Judge "``treatment`` beats ``baseline``" from per-seed values paired by position.

    ``scale`` converts to the displayed units (100 for accuracy in points); ``min_effect`` is in
    displayed units. With ``higher_is_better=False`` (losses, seconds) lower values win.

    Raises:
        ValueError: the two lists differ in length, or anything :func:`effect` refuses.
    """
    base, treat = _numbers(baseline, "baseline"), _numbers(treatment, "treatment")
    if len(base) != len(treat):
        raise ValueError(f"baseline and treatment must be paired by seed: got {len(base)} and "
                         f"{len(treat)} values")
    sign = scale if higher_is_better else -scale
    evidence = effect(name, [sign * (t - b) for b, t in zip(base, treat, strict=True)],
                      min_effect=min_effect, unit=unit, digits=digits)
    numbers = {**evidence.numbers, "baseline": base, "treatment": treat, "scale": scale,
               "higher_is_better": higher_is_better}
    return Evidence(evidence.name, evidence.verdict, evidence.summary, evidence.rule, "paired", numbers)


def speedup(name: str, baseline_s: Sequence[float], treatment_s: Sequence[float], *,
            min_effect: float = 0.05, what: str = "timed pairs") -> Evidence:
    """Judge "``treatment`` is faster" from timings paired by repeat (e.g. ``bench.compare``).

    The effect is the log of the per-pair ratio baseline/treatment; ``min_effect`` is the
    smallest speed-up that matters as a fraction (0.05 = 5% faster). Costs other than seconds
    work the same way (optimizer steps to a target, paired by seed: ``what="seeds"``).
    """
    base, treat = _numbers(baseline_s, "baseline_s"), _numbers(treatment_s, "treatment_s")
    if len(base) != len(treat) or len(base) < 2 or min(base + treat) <= 0:
        raise ValueError("speedup needs at least 2 pairs of positive timings of equal count, got "
                         f"{len(base)} and {len(treat)}")
    logs = [math.log(b / t) for b, t in zip(base, treat, strict=True)]
    mean, low, high = _interval(logs)
    verdict = _decide(mean, low, high, math.log1p(min_effect))
    summary = (f"{math.exp(mean):.2f}x (95% CI {math.exp(low):.2f}x to {math.exp(high):.2f}x; "
               f"{len(logs)} {what})")
    rule = f"holds if the 95% CI of the speed-up is above 1x and its mean is at least {1 + min_effect:g}x"
    return Evidence(name, verdict, summary, rule, "speedup",
                    {"baseline_s": base, "treatment_s": treat, "ratio": math.exp(mean),
                     "ci": [math.exp(low), math.exp(high)], "n": len(logs), "min_effect": min_effect})


def noninferior(name: str, baseline: Sequence[float], treatment: Sequence[float], *,
                margin: float, scale: float = 1.0, unit: str = "", digits: int = 2) -> Evidence:
    """Judge "``treatment`` is no worse than ``baseline``" (a claim that something is unnecessary).

    The paired differences treatment - baseline (per seed, in displayed units) must lie above
    ``-margin``: **holds** if the whole 95% interval is above ``-margin``, **does not hold
    here** if it lies below ``-margin`` (clearly worse), otherwise inconclusive. ``margin`` is
    the largest loss that does not matter, chosen before looking (e.g. half a point).
    Taught in notebook 08 ("BatchNorm may make dropout unnecessary").

    Raises:
        ValueError: a negative or non-finite ``margin``, or anything :func:`paired` refuses.
    """
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    evidence = paired(name, baseline, treatment, scale=scale, unit=unit, digits=digits)
    mean, (low, high) = evidence.numbers["mean"], evidence.numbers["ci"]
    verdict = _decide(mean + margin, low + margin, high + margin, 0.0)
    summary = f"{evidence.summary[:-1]}; margin -{margin:g}{unit})"
    rule = f"holds if the 95% CI lies above -{margin:g}{unit} (no worse by more than the margin)"
    return Evidence(name, verdict, summary, rule, "noninferior",
                    {**evidence.numbers, "margin": margin})


def check(name: str, passed: bool, detail: str) -> Evidence:
    """A deterministic part of a claim (an exact comparison, a monotone curve): holds or not."""
    if not isinstance(passed, bool):
        raise TypeError(f"passed must be a bool, got {type(passed).__name__}")
    return Evidence(name, HOLDS if passed else NOT_HERE, detail, "deterministic check", "check",
                    {"passed": passed})


def not_measured(name: str, reason: str) -> Evidence:
    """A part of a claim that this machine cannot measure (e.g. "needs 2+ GPUs"), recorded so
    that the ledger shows what is still open."""
    if not reason:
        raise ValueError("not_measured needs the reason (what hardware or data it needs)")
    return Evidence(name, NOT_MEASURED, reason, "not measured: " + reason, "not measured", {})


def combine(verdicts: Sequence[str]) -> str:
    """The verdict of a claim from the verdicts of its parts (rule 4 of the protocol)."""
    parts = (HOLDS, NOT_HERE, INCONCLUSIVE, NOT_MEASURED)
    if not verdicts or any(v not in parts for v in verdicts):
        raise ValueError(f"part verdicts must be among {parts}, got {verdicts}")
    held = sum(v == HOLDS for v in verdicts)
    if held == len(verdicts):
        return HOLDS
    if held:
        return PARTLY
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return NOT_HERE if NOT_HERE in verdicts else NOT_MEASURED


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim of the curriculum, its measured parts and the verdict they give."""

    id: str
    statement: str
    verdict: str
    parts: tuple[Evidence, ...]
    note: str = ""

    def key_number(self) -> str:
        """The first part's summary: the number the ledger shows."""
        return self.parts[0].summary


def judge(claim_id: str, *parts: Evidence, note: str = "", statement: str | None = None) -> ClaimVerdict:
    """Combine measured parts into the verdict on ``claim_id`` (e.g. ``"C1"``).

    A notebook's own question that is not one of the curriculum's claims (the capstone's "the
    tips compound") gets an id of its own and its ``statement``; the ledger lists only C1-C25.

    Raises:
        ValueError: an unknown claim id without a statement, or no parts.
    """
    if claim_id not in CLAIMS and not statement:
        raise ValueError(f"unknown claim {claim_id!r}; the curriculum's claims are C1-C25 (a "
                         "notebook's own question needs statement=...)")
    if not parts or not all(isinstance(p, Evidence) for p in parts):
        raise ValueError("judge needs at least one Evidence (from effect, paired, speedup or check)")
    text = statement or CLAIMS[claim_id][0]
    return ClaimVerdict(claim_id, text, combine([p.verdict for p in parts]), tuple(parts), note)


class VerdictTable(list):
    """The verdicts of a notebook; shows as a Markdown table in Jupyter and the book."""

    def _rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for claim in self:
            for k, part in enumerate(claim.parts):
                rows.append((claim.id if k == 0 else "", part.name, part.summary, part.verdict))
            if len(claim.parts) > 1:
                rows.append(("", f"**{claim.id} overall**", "", f"**{claim.verdict}**"))
        return rows

    def _repr_markdown_(self) -> str:
        lines = ["| claim | measured | result | verdict |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in self._rows()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "\n".join(f"{c or '':4} {m}: {r} -> {v}".replace("**", "") for c, m, r, v in self._rows())


def show_verdicts(*claims: ClaimVerdict) -> VerdictTable:
    """The verdict table of a notebook (the last expression of a cell displays it)."""
    return VerdictTable(claims)


def verdicts_dir(folder: str | Path = "results") -> Path:
    """Where the verdict records live (``results/verdicts`` next to the notebooks)."""
    return Path(folder) / "verdicts"


def record_verdicts(notebook: str, claims: Sequence[ClaimVerdict], *, device: Any, data: str,
                    scale: float, hardware: str | None = None,
                    folder: str | Path = "results") -> Path:
    """Write the claims' verdicts with their numbers, hardware, date and data source.

    One file per notebook, device type and kind of data: ``<notebook>--cpu.json``,
    ``<notebook>--cuda.json``; a run on the fallback data writes ``...--cpu-fallback.json`` so it
    never replaces a real-data record. The write is atomic.
    """
    from course_utils.data import is_fallback
    from course_utils.hardware import cpu_name, describe_accelerator

    if not claims or not all(isinstance(c, ClaimVerdict) for c in claims):
        raise ValueError("record_verdicts needs at least one ClaimVerdict (from judge)")
    kind = str(getattr(device, "type", device)).split(":")[0]
    fallback = is_fallback(data)
    record = {
        "notebook": notebook, "device": kind, "fallback_data": fallback, "data": data,
        "scale": scale, "protocol": PROTOCOL,
        "hardware": hardware or f"{cpu_name()} ({os.cpu_count()} logical cores)",
        "accelerator": describe_accelerator(device),
        "platform": f"{platform.system()} {platform.machine()}",
        "torch": _torch_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "claims": [asdict(c) for c in claims],
    }
    path = verdicts_dir(folder) / f"{notebook}--{kind}{'-fallback' if fallback else ''}.json"
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def _torch_version() -> str:
    import torch

    return torch.__version__


def load_ledger(folder: str | Path = "results", *,
                include_fallback: bool = False) -> dict[str, dict[str, dict]]:
    """Every recorded verdict: ``{claim id: {device: {"verdict", "key_number", "notebook", ...}}}``.

    Claims with no record are absent; :func:`ledger_rows` shows them as missing. Records made on
    the fallback data are left out unless ``include_fallback``.
    """
    ledger: dict[str, dict[str, dict]] = {}
    for path in sorted(verdicts_dir(folder).glob("*--*.json")):
        record = read_json(path, regenerate="re-run the notebook named in the file name")
        if record.get("fallback_data") and not include_fallback:
            continue
        device = record["device"] + ("-fallback" if record.get("fallback_data") else "")
        for claim in record["claims"]:
            home = CLAIMS.get(claim["id"], ("", ""))[1]
            earlier = ledger.get(claim["id"], {}).get(device)
            if earlier is not None and earlier["notebook"] == home:
                continue  # a claim tested in two notebooks (C25): its home notebook's record wins
            ledger.setdefault(claim["id"], {})[device] = {
                "verdict": claim["verdict"], "key_number": claim["parts"][0]["summary"],
                "parts": [(p["name"], p["summary"], p["verdict"]) for p in claim["parts"]],
                "notebook": record["notebook"], "date": record["date"],
                "hardware": record["hardware"], "accelerator": record["accelerator"],
                "data": record["data"], "scale": record["scale"],
            }
    return ledger


def ledger_rows(ledger: dict[str, dict[str, dict]]) -> list[dict[str, str]]:
    """One row per curriculum claim, C1-C25, with "missing" where nothing was recorded."""
    rows = []
    for claim_id, (statement, notebook) in CLAIMS.items():
        entry = ledger.get(claim_id, {})
        cpu, gpu = entry.get("cpu"), entry.get("cuda")
        first = cpu or gpu
        rows.append({
            "claim": claim_id, "statement": statement,
            "notebook": first["notebook"] if first else notebook,
            "cpu": cpu["verdict"] if cpu else "missing",
            "gpu": gpu["verdict"] if gpu else "no GPU run recorded",
            "key_number": first["key_number"] if first else "",
            "measured": (f"{first['hardware']}, {first['date']}" if first else ""),
        })
    return rows
