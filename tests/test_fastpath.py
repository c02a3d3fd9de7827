"""The fast paths give the same results as the plain ones (on CPU, exactly or to float tolerance)."""

import torch

from advunlearn.dau.attacker import probs_and_sensitivity
from advunlearn.core.config import TrainConfig
from advunlearn.core.data import make_splits
from advunlearn.core.models import build_model
from advunlearn.core.train import fit


def test_device_resident_loop_equals_a_dataloader_loop(digits):
    s = make_splits(digits, seed=0)
    cfg = TrainConfig(epochs=2, lr=0.05, batch_size=64, augment=False, schedule="constant", weight_decay=5e-4)
    torch.manual_seed(0)
    fast = build_model("mlp", 10, 1, 8)
    slow = build_model("mlp", 10, 1, 8)
    slow.load_state_dict(fast.state_dict())
    fit(fast, digits, s.train, cfg, seed=3, progress=False)

    # the plain way: a Dataset + DataLoader over the same samples, fed the same batch order
    gen = torch.Generator().manual_seed(3)
    n = len(s.train)
    order = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        order += [perm[b * 64:(b + 1) * 64].tolist() for b in range(n // 64)]
    ds = torch.utils.data.TensorDataset(digits.x[s.train], digits.y[s.train])
    dl = torch.utils.data.DataLoader(ds, batch_sampler=order)
    opt = torch.optim.SGD(slow.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    slow.train()
    for xb, yb in dl:
        loss = torch.nn.functional.cross_entropy(slow(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(fast.parameters(), slow.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_batched_sensitivity_equals_one_forward_per_noisy_copy(digits):
    torch.manual_seed(0)
    model = build_model("cnn", 10, 1, 8).eval()
    x = digits.x[:32]
    g1 = torch.Generator().manual_seed(5)
    p, s = probs_and_sensitivity(model, x, noise=1e-3, n_noise=10, generator=g1)
    g2 = torch.Generator().manual_seed(5)
    u = torch.randn((10, *x.shape), generator=g2)
    with torch.no_grad():
        p0 = torch.softmax(model(x), -1)
        diffs = [(torch.softmax(model(x + 1e-3 * u[i]), -1) - p0).abs() for i in range(10)]
    assert torch.allclose(p, p0, atol=1e-6)
    assert torch.allclose(s, torch.stack(diffs).mean(0) / 1e-3, rtol=1e-3, atol=1e-3)
