"""Same config and seed -> same split, same pretrained weights on CPU, same table (run twice)."""

import torch

from advunlearn.experiments.experiment import Experiment
from advunlearn.experiments.runner import run_experiment


def _exp(tmp, seed=0):
    return Experiment(dataset="digits", scheme="class", forget_class=2, seed=seed, profile="tiny", device="cpu",
                      results=tmp, progress=False)


def test_same_seed_same_everything(tmp_path):
    a, b = _exp(tmp_path / "a"), _exp(tmp_path / "b")
    for k in ("train", "forget", "retain", "val", "test"):
        assert torch.equal(getattr(a.splits, k), getattr(b.splits, k))
    ma, _ = a.original()
    mb, _ = b.original()
    for (n, x), (_, y) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert torch.equal(x, y), n
    methods = ["retrain", "ft", "ga", "ours"]
    ra = run_experiment(a, methods, log=None)
    rb = run_experiment(b, methods, log=None)
    drop = ("run_time_s", "hparams", "attacker")
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k not in drop} == {k: v for k, v in y.items() if k not in drop}


def test_another_seed_differs(tmp_path):
    a, c = _exp(tmp_path / "a"), _exp(tmp_path / "c", seed=1)
    assert not torch.equal(a.splits.val, c.splits.val)
    ma, _ = a.original()
    mc, _ = c.original()
    assert not torch.equal(ma.fc.weight, mc.fc.weight)
