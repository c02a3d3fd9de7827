"""Algorithm 1 on a fixed small case, summarised: what tests/test_unlearn.py's equivalence test compares
with tests/data/alg1_reference.json (written by the code before the speed changes:
``PYTHONPATH=<that checkout> python tests/alg1_reference.py --write``)."""

import json
import sys
from pathlib import Path

import torch

REF = Path(__file__).parent / "data" / "alg1_reference.json"
KEYS = ("attacker_loss", "defender_adv", "ce", "vss", "forget_acc", "retain_acc", "attacker_auc",
        "attacker_loss_eval", "vss_eval")


def run_case(scheme: str) -> dict:
    from advunlearn.attacker import Attacker
    from advunlearn.config import AttackerConfig, UnlearnConfig
    from advunlearn.data import load_dataset, make_splits
    from advunlearn.models import build_model
    from advunlearn.unlearn import adversarial_unlearn

    torch.set_num_threads(1)
    data = load_dataset("digits")
    splits = make_splits(data, scheme, seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", 10, 1, 8)
    acfg = AttackerConfig(iterations=20, batch_size=64)
    cfg = UnlearnConfig(alpha=2.0, beta=1e-2, lr=0.02, iterations=8, batch_size=32, record_every=4, augment=False,
                        alpha_off_after=5 if scheme == "class" else None)
    _, hist = adversarial_unlearn(model, data, splits, cfg, attacker=None, attacker_cfg=acfg, seed=1, progress=False)
    return {"records": [{k: r[k] for k in KEYS if k in r} for r in hist.records],
            "pretrain_auc": hist.attacker_report["auc"],
            "weights": {k: v.double().sum().item() for k, v in model.state_dict().items()},
            "weights_abs": {k: v.double().abs().sum().item() for k, v in model.state_dict().items()},
            "attacker": {k: v.double().sum().item() for k, v in hist.attacker.state_dict().items()
                         if v.is_floating_point()}}


if __name__ == "__main__":
    out = {s: run_case(s) for s in ("random", "class")}
    if "--write" in sys.argv:
        REF.parent.mkdir(exist_ok=True)
        REF.write_text(json.dumps(out, indent=1))
    print(json.dumps(out)[:400])
