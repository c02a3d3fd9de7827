"""The paper's evaluation (section 4.1): UA, RA, TA, MIA-efficacy, run time, Avg. Disparity.

- UA = 100 - accuracy on D_f; RA = accuracy on D_r; TA = accuracy on D_t (class-wise: D_t without the
  forgotten class, which ``exp.splits.test`` already is).  Eval mode, no augmentation.
- MIA_efficacy: the confidence-feature SVC attack of :mod:`advunlearn.mia` (percent).
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
    # A diverged model (NaN/inf outputs, e.g. gradient ascent run too far) gets its accuracies with
    # those samples counted wrong, NaN attack scores and diverged=True instead of an SVC crash.
    diverged = not all(bool(torch.isfinite(p).all()) for p, _ in outputs.values())
    res = {
        "UA": 100.0 - _acc(*outputs["forget"]),
        "RA": _acc(*outputs["retain"]),
        "TA": _acc(*outputs["test"]),
        "VA": _acc(*outputs["val"]),
        "MIA_efficacy": float("nan") if diverged else _mia.efficacy_from_outputs(
            outputs, "confidence", seed=exp.seed, max_per_side=max_per_side),
        "run_time_s": None if time_s is None else float(time_s),
        # the defender's confidence p_y on D_f and D_t: the shapes 04's histograms compare with Retrain's
        "confidence": {k: confidence_histogram(*outputs[k]) for k in ("forget", "test")},
    }
    if diverged:
        res["diverged"] = True
    if attacks:
        res["mia"] = ({a: float("nan") for a in _mia.ATTACKS} if diverged else
                      _mia.all_attacks(outputs, seed=exp.seed, max_per_side=max_per_side))
    return res


def avg_disparity(result: Mapping, retrain_result: Mapping) -> float:
    """Mean of |m - m_retrain| over UA, MIA_efficacy, RA, TA, in percentage points."""
    missing = [k for k in DISPARITY_KEYS if k not in result or k not in retrain_result]
    if missing:
        raise KeyError(f"avg_disparity needs keys {DISPARITY_KEYS}; missing {missing}")
    return sum(abs(float(result[k]) - float(retrain_result[k])) for k in DISPARITY_KEYS) / len(DISPARITY_KEYS)


__all__ = ["evaluate", "avg_disparity", "confidence_histogram", "DISPARITY_KEYS", "CONFIDENCE_BINS"]
