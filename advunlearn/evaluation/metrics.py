"""The paper's evaluation (section 4.1): UA, RA, TA, MIA-efficacy, run time, Avg. Disparity.

- UA = 100 - accuracy on D_f; RA = accuracy on D_r; TA = accuracy on D_t (class-wise: D_t without the
  forgotten class, which ``exp.splits.test`` already is).  Eval mode, no augmentation.
- MIA_efficacy: the confidence-feature SVC attack of :mod:`advunlearn.evaluation.mia` (percent).
- ``mia``: Figure 2's metric attacks, each an efficacy in percent computed the same SVC way.
- Avg. Disparity: mean of |m - m_retrain| over UA, MIA_efficacy, RA, TA (percentage points).

All values are percent; a higher number is not better: the target of every metric is Retrain's value.
"""

from __future__ import annotations

from typing import Mapping

import torch

from . import mia as _mia

DISPARITY_KEYS = ("UA", "MIA_efficacy", "RA", "TA")
CONFIDENCE_BINS = 20  # equal bins of the confidence p_y on [0, 1] (``confidence`` in a result record)


def confidence_histogram(probs: torch.Tensor, labels: torch.Tensor, bins: int = CONFIDENCE_BINS) -> list[float]:
    """Share of samples per equal bin of the confidence p_y in [0, 1] (non-finite outputs left out)."""
    ok = torch.isfinite(probs).all(1)
    p_y = probs[ok].gather(1, labels[ok].long().view(-1, 1)).squeeze(1).float().clamp(0, 1)
    if len(p_y) == 0:
        return [0.0] * bins
    counts = torch.histc(p_y.cpu(), bins=bins, min=0.0, max=1.0)
    return (counts / counts.sum()).tolist()


def _acc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy in percent; a sample whose output is not finite (a diverged model) counts as wrong."""
    if len(labels) == 0:
        return float("nan")
    ok = torch.isfinite(probs).all(1)
    return 100.0 * float(((probs.argmax(1) == labels) & ok).float().mean())


def evaluate(model, exp, time_s: float | None = None, *, attacks: bool = True,
             max_per_side: int | None = 5000) -> dict:
    """UA, RA, TA, VA (validation accuracy), MIA_efficacy, run_time_s and (if ``attacks``) Figure 2's ``mia``.

    Predictions are computed once per split and shared by all accuracies and attacks; the SVC's
    retain/test subsets are drawn with ``exp.seed``.
    """
    outputs = {k: _mia.softmax_outputs(model, exp, k) for k in ("forget", "retain", "test", "val")}
    # A diverged model (non-finite weights or outputs, e.g. gradient ascent run too far, or a loss
    # that overflowed) gets its accuracies with those samples counted wrong, NaN attack scores,
    # diverged=True and the reason in ``failed`` instead of an SVC crash: a failed result, never a
    # number to report (run_experiment raises DivergedError for it, the report shows it as failed).
    bad_weights = [n for n, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    bad_outputs = [k for k, (p, _) in outputs.items() if not bool(torch.isfinite(p).all())]
    diverged = bool(bad_weights or bad_outputs)
    # Figure 2's attacks include "confidence", MIA-efficacy's own attack with the same seed and subsets:
    # its SVC is fitted once and read twice (each fit is ~1.5 s on the testbed's 9,000 samples).
    mia = None
    if attacks:
        mia = ({a: float("nan") for a in _mia.ATTACKS} if diverged else
               _mia.all_attacks(outputs, seed=exp.seed, max_per_side=max_per_side))
    res = {
        "UA": 100.0 - _acc(*outputs["forget"]),
        "RA": _acc(*outputs["retain"]),
        "TA": _acc(*outputs["test"]),
        "VA": _acc(*outputs["val"]),
        "MIA_efficacy": float("nan") if diverged else mia["confidence"] if mia else _mia.efficacy_from_outputs(
            outputs, "confidence", seed=exp.seed, max_per_side=max_per_side),
        "run_time_s": None if time_s is None else float(time_s),
        # the defender's confidence p_y on D_f and D_t: the shapes 04's histograms compare with Retrain's
        "confidence": {k: confidence_histogram(*outputs[k]) for k in ("forget", "test")},
    }
    if diverged:
        res["diverged"] = True
        res["failed"] = ("diverged: non-finite weights in " + ", ".join(bad_weights[:3]) +
                         (f" and {len(bad_weights) - 3} more tensor(s)" if len(bad_weights) > 3 else "")
                         if bad_weights else "diverged: non-finite outputs on " + ", ".join(bad_outputs))
    if attacks:
        res["mia"] = mia
    return res


def failure(result: Mapping) -> str | None:
    """Why a result record is a failed run (``failed``; ``diverged`` in records of older code), or None."""
    if result.get("failed"):
        return str(result["failed"])
    return "diverged: non-finite outputs" if result.get("diverged") else None


class DivergedError(RuntimeError):
    """Some methods of a run diverged; ``records`` holds every record of the run, those marked failed."""

    def __init__(self, records: list[dict], where: str | None = None):
        self.records = records
        bad = "; ".join(f"{r.get('method')}: {failure(r)}" for r in records if failure(r))
        super().__init__(f"the run failed: a method diverged ({bad}); its record is marked failed"
                         + (f" in {where}" if where else "") + "; lower that method's learning rate or loss "
                         "weights (lr, alpha) and run again")


def avg_disparity(result: Mapping, retrain_result: Mapping) -> float:
    """Mean of |m - m_retrain| over UA, MIA_efficacy, RA, TA, in percentage points."""
    missing = [k for k in DISPARITY_KEYS if k not in result or k not in retrain_result]
    if missing:
        raise KeyError(f"avg_disparity needs keys {DISPARITY_KEYS}; missing {missing}")
    return sum(abs(float(result[k]) - float(retrain_result[k])) for k in DISPARITY_KEYS) / len(DISPARITY_KEYS)


__all__ = ["evaluate", "avg_disparity", "confidence_histogram", "failure", "DivergedError", "DISPARITY_KEYS",
           "CONFIDENCE_BINS"]
