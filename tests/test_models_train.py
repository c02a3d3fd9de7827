import copy

import pytest
import torch

from advunlearn.core.config import ConfigError, TrainConfig
from advunlearn.experiments.profiles import get_profile
from advunlearn.core.data import make_splits
from advunlearn.core.models import build_model, check_defender
from advunlearn.core.prune import apply_masks, omp, prunable, sparsity_of
from advunlearn.core.train import accuracy, fit, lr_factor


@pytest.mark.parametrize("name, c, size, feat", [
    ("mlp", 1, 8, 256), ("cnn", 1, 28, 128), ("cnn", 3, 32, 128), ("resnet18", 3, 32, 512), ("resnet18", 1, 8, 512),
])
def test_shapes_and_encoder_fc_identity(name, c, size, feat):
    torch.manual_seed(0)
    m = build_model(name, 7, c, size).eval()
    x = torch.randn(4, c, size, size)
    z = m.encoder(x)
    assert z.shape == (4, feat) and m.feature_dim == feat
    out = m(x)
    assert out.shape == (4, 7)
    assert torch.allclose(out, m.fc(z), atol=1e-6)


def test_resnet18_is_the_cifar_variant():
    m = build_model("resnet18", 10, 3, 32)
    stem = m.encoder[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(l, torch.nn.MaxPool2d) for l in m.encoder.modules())
    assert 11_000_000 < sum(p.numel() for p in m.parameters()) < 11_300_000


def test_bad_model_arguments():
    with pytest.raises(ConfigError, match="model='vgg'.*mlp"):
        build_model("vgg", 10, 1, 8)
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("mlp", 1, 1, 8)
    with pytest.raises(ConfigError, match="encoder"):
        check_defender(torch.nn.Linear(3, 3))


def test_lr_schedules():
    c = TrainConfig(epochs=4, lr=0.1, schedule="multistep", milestones=(0.5, 0.75))
    assert lr_factor(c, 0, 100, 25) == 1 and lr_factor(c, 50, 100, 25) == pytest.approx(0.1)
    assert lr_factor(c, 80, 100, 25) == pytest.approx(0.01)
    cos = TrainConfig(epochs=4, schedule="cosine")
    assert lr_factor(cos, 0, 100, 25) == 1 and lr_factor(cos, 50, 100, 25) == pytest.approx(0.5)
    w = TrainConfig(epochs=4, warmup_epochs=1)
    assert lr_factor(w, 0, 100, 25) == pytest.approx(1 / 25)


@pytest.mark.parametrize("bad", [dict(lr=-0.1), dict(epochs=0), dict(schedule="linear"), dict(momentum=1.0)])
def test_bad_train_config(bad):
    with pytest.raises(ConfigError, match=list(bad)[0]):
        TrainConfig(**bad)


def test_profile_typo_names_allowed_keys():
    with pytest.raises(ConfigError, match="unknown key.*'epochz'.*allowed keys"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match="profile='fast'"):
        get_profile("fast", "digits")


def test_cpu_profile_fits_digits(digits):
    # the profile's promise: 100% train and >= 95% test accuracy on digits
    prof = get_profile("cpu", "digits")
    s = make_splits(digits, seed=0)
    torch.manual_seed(0)
    m = build_model(prof.model, 10, 1, 8)
    seen = []
    fit(m, digits, s.train, prof.pretrain, seed=0, callbacks=[seen.append], every=20, progress=False)
    assert accuracy(m, digits, s.train) == 100.0
    assert accuracy(m, digits, s.test) >= 95.0
    assert seen and seen[0]["loss"] > seen[-1]["loss"]  # callbacks see the loss go down


def test_training_is_deterministic_on_cpu(digits):
    s = make_splits(digits, seed=0)
    cfg = TrainConfig(epochs=2, lr=0.05, batch_size=64)
    ws = []
    for _ in range(2):
        torch.manual_seed(1)
        m = build_model("mlp", 10, 1, 8)
        fit(m, digits, s.train, cfg, seed=4, progress=False)
        ws.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(ws[0], ws[1])


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_omp_sparsity_exact_and_kept_by_training(digits, arch):
    torch.manual_seed(0)
    m = build_model(arch, 10, 1, 8)
    before = copy.deepcopy(m)
    masks = omp(m, 0.95)
    total = sum(p.numel() for p in prunable(m).values())
    zeros = sum(int((p == 0).sum()) for p in prunable(m).values())
    assert zeros == round(0.95 * total)
    assert sparsity_of(m) == pytest.approx(0.95, abs=1 / total)
    # the smallest magnitudes went: every kept weight is >= every pruned weight in |w|
    kept = torch.cat([p.abs().flatten()[masks[n].flatten()] for n, p in prunable(before).items()])
    gone = torch.cat([p.abs().flatten()[~masks[n].flatten()] for n, p in prunable(before).items()])
    assert kept.min() >= gone.max()
    # classifier and norms untouched
    assert torch.equal(m.fc.weight, before.fc.weight)
    s = make_splits(digits, seed=0)
    fit(m, digits, s.train, TrainConfig(epochs=2, lr=0.05, batch_size=64), seed=0, masks=masks, progress=False)
    assert sum(int((p == 0).sum()) for p in prunable(m).values()) >= round(0.95 * total)
    for n, p in prunable(m).items():
        assert (p[~masks[n]] == 0).all()


def test_omp_bad_sparsity():
    with pytest.raises(ConfigError, match="sparsity"):
        omp(build_model("mlp", 10, 1, 8), 1.0)
