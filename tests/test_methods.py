"""The method registry and the methods beyond the paper's baselines (RL, SalUn, NegGrad+, SCRUB,
ℓ1-sparse, SSD, Retrain (another seed)): each method's defining property, exact OMP masks, clear errors
for bad hyperparameters, hyperparameter resolution and tuned values, and a toy method added through the
registry showing up in the command line, batch validation and the report.  Digits, CPU, seconds."""

from __future__ import annotations

import copy
import json
import types

import pytest
import torch
from torch import nn

import advunlearn.methods as M
from advunlearn.core.config import ConfigError
from advunlearn.experiments.profiles import get_profile
from advunlearn.methods import _common as C
from advunlearn.core.prune import masks_from_model, sparsity_of


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("methods-store")


def _exp(store, scheme="class", sparsity=0.0, **kw):
    from advunlearn.experiments.experiment import Experiment

    return Experiment(dataset="digits", scheme=scheme, sparsity=sparsity, profile="cpu", device="cpu",
                      progress=False, results=store, **kw)


@pytest.fixture(scope="module")
def exp_class(store, one_thread):
    return _exp(store)


@pytest.fixture(scope="module")
def exp_random(store, one_thread):
    return _exp(store, "random")


@pytest.fixture(scope="module")
def exp_sparse(store, one_thread):
    return _exp(store, "random", 0.95)


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _offline(scheme="random", sparsity=0.0, **profile_overrides):
    """An experiment stand-in that holds only a profile: resolving hyperparameters needs no data."""
    return types.SimpleNamespace(prof=get_profile("cpu", "digits", **profile_overrides), scheme=scheme,
                                 sparsity=sparsity)


# ---- the registry ------------------------------------------------------------------------------------
def test_every_registered_method_declares_its_interface():
    assert M.names()[:6] == ("retrain", "retrain_seed2", "ft", "ga", "ff", "iu")
    assert {"rl", "salun", "neggrad_plus", "scrub", "l1_sparse", "ssd", "ours", "ours_no_vss"} <= set(M.names())
    assert M.names("table2") == ("retrain", "retrain_seed2", "ours", "ours_no_vss")
    assert "ours_no_vss" not in M.names("table1")
    for name, spec in M.REGISTRY.items():
        assert spec.doc and "\n" in spec.doc, name                      # paper + formula
        assert set(spec.space) <= set(spec.defaults), name
        for k, sp in spec.space.items():
            assert sp[0] in M.SPACE_KINDS and (sp[0] == "cat" or sp[1] <= sp[2]), (name, k)
            M.check_hparams(spec, {k: sp[1][0] if sp[0] == "cat" else sp[1]}, partial=True)   # lo is allowed
            M.check_hparams(spec, {k: sp[1][-1] if sp[0] == "cat" else sp[2]}, partial=True)  # hi too
        assert isinstance(spec.version, int)
        assert M.check_hparams(spec, {**spec.defaults, **spec.fixed}) is not None
    assert M.label("salun") == "SalUn" and M.label("retrain_seed2") == "Retrain (another seed)"
    assert M.label("not_registered") == "not_registered"
    with pytest.raises(ConfigError, match="method='sgd'.*'retrain'.*'salun'"):
        M.get("sgd")


def test_register_refuses_a_malformed_module():
    bad = types.ModuleType("bad")
    bad.DEFAULTS, bad.SPACE, bad.CHECKS, bad.VERSION = {"lr": 0.1}, {"lr": ("log", 0, 1)}, {}, 1
    bad.run = lambda exp, **hp: None
    with pytest.raises(TypeError, match="SPACE"):
        M.register("bad", bad)
    bad.SPACE = {"epochs": ("int", 1, 3)}
    with pytest.raises(TypeError, match="not in DEFAULTS"):
        M.register("bad", bad)
    bad.SPACE = {}
    with pytest.raises(ConfigError, match="already registered"):
        M.register("ft", bad)
    assert "bad" not in M.REGISTRY


# ---- hyperparameters: resolution, errors, tuned values ------------------------------------------------------
def test_resolution_order_defaults_profile_overrides_fixed():
    exp = _offline()
    hp = M.resolve_hparams(exp, "salun")
    assert hp == {**M.get("salun").defaults}
    exp = _offline("class", 0.95, methods={"salun": {"default": {"ratio": 0.3, "lr": 0.02},
                                                      "class": {"lr": 0.03},
                                                      "class-sparse": {"epochs": 2}}})
    hp = M.resolve_hparams(exp, "salun")
    assert (hp["ratio"], hp["lr"], hp["epochs"]) == (0.3, 0.03, 2)     # the most specific key wins
    assert M.resolve_hparams(exp, "salun", {"lr": 0.05})["lr"] == 0.05   # an explicit override wins
    dense = _offline("class", 0.0, methods=exp.prof.methods)
    assert M.resolve_hparams(dense, "salun")["epochs"] == M.get("salun").defaults["epochs"]
    # FT/GA: the profile's recipes; Ours: its unlearn settings; a registration's fixed values win
    assert M.resolve_hparams(exp, "ft")["lr"] == exp.prof.finetune.lr
    assert M.resolve_hparams(exp, "ours") == exp.prof.unlearn_for("class", 0.95).to_dict()
    assert M.resolve_hparams(exp, "ours_no_vss", {"beta": 0.5, "alpha": 3.0})["beta"] == 0.0
    assert M.resolve_hparams(exp, "retrain_seed2")["replica"] == 1


@pytest.mark.parametrize("method, hp, needle", [
    ("salun", {"ratio": 0.0}, r"salun.ratio=0.0 is out of range; allowed: \(0, 1\]"),
    ("salun", {"ratio": 1.5}, r"salun.ratio=1.5"),
    ("rl", {"lr": 0.0}, r"rl.lr=0.0 is out of range"),
    ("rl", {"loop": "zigzag"}, r"rl.loop='zigzag' is not allowed; choose one of 'sequential', 'mixed'"),
    ("neggrad_plus", {"beta": 1.2}, r"neggrad_plus.beta=1.2 is out of range; allowed: \[0, 1\]"),
    ("scrub", {"alpha": -1.0}, r"scrub.alpha=-1.0"),
    ("scrub", {"T": 0}, r"scrub.T=0"),
    ("scrub", {"epochs": 2.5}, r"scrub.epochs=2.5 must be an integer"),
    ("l1_sparse", {"alpha": -1e-4}, r"l1_sparse.alpha=-0.0001"),
    ("ssd", {"lambd": -1}, r"ssd.lambd=-1"),
    ("ssd", {"batch_size": 0}, r"ssd.batch_size=0"),
    ("ff", {"alpha": -1e-8}, r"ff.alpha=-1e-08"),
    ("iu", {"damping": 0}, r"iu.damping=0"),
    ("ft", {"lr": -1.0}, r"ft: lr=-1.0"),
    ("ours", {"beta": -1.0}, r"ours: beta=-1.0"),
    ("salun", {"ration": 0.5}, r"unknown hyperparameter\(s\) \['ration'\] for method 'salun'; allowed: \['ratio'"),
])
def test_bad_hyperparameters_fail_before_any_work(method, hp, needle):
    exp = _offline()                     # no data, no model: the error comes before any work
    with pytest.raises(ConfigError, match=needle):
        M.run_method(exp, method, **hp)


def test_bad_profile_values_name_the_allowed_ones():
    with pytest.raises(ConfigError, match="method='sgd' is not allowed"):
        get_profile("cpu", "digits", methods={"sgd": {"default": {}}})
    with pytest.raises(ConfigError, match=r"unknown key 'dense' in methods\['rl'\]; allowed keys: \['default'"):
        get_profile("cpu", "digits", methods={"rl": {"dense": {"lr": 0.1}}})
    with pytest.raises(ConfigError, match=r"scrub.gamma=-2"):
        get_profile("cpu", "digits", methods={"scrub": {"class": {"gamma": -2}}})
    with pytest.raises(ConfigError, match="keeps ours's hyperparameters in 'unlearn'"):
        get_profile("cpu", "digits", methods={"ours": {"default": {"alpha": 1.0}}})
    with pytest.raises(ConfigError, match=r"\['replica'\] fixed for 'retrain_seed2'"):
        get_profile("cpu", "digits", methods={"retrain_seed2": {"default": {"replica": 2}}})


def test_tuned_values_from_a_json_file(tmp_path, monkeypatch):
    tuned = {"random-dense": {"salun": {"ratio": 0.25}, "ours": {"alpha": 7.0, "lr": 0.02}},
             "class-sparse": {"ssd": {"alpha": 3.0}, "ft": {"epochs": 1}}}
    (tmp_path / "cpu-digits.json").write_text(json.dumps(tuned))
    assert get_profile("cpu", "digits").methods == {}                 # no file in the package
    monkeypatch.setenv("ADVUNLEARN_TUNED_DIR", str(tmp_path))
    p = get_profile("cpu", "digits")
    assert p.methods == {"salun": {"random-dense": {"ratio": 0.25}}, "ssd": {"class-sparse": {"alpha": 3.0}},
                         "ft": {"class-sparse": {"epochs": 1}}}
    base = get_profile("cpu", "digits", tuned_dir=tmp_path / "none")
    u = p.unlearn_for("random", 0.0)
    assert (u.alpha, u.lr) == (7.0, 0.02)
    assert u.updated(alpha=0, lr=1) == base.unlearn_for("random", 0.0).updated(alpha=0, lr=1)   # the rest kept
    assert p.unlearn_for("random", 0.95) == base.unlearn_for("random", 0.95)
    assert get_profile("cpu", "fashion-mnist").methods == {}           # another dataset, another file
    ex = types.SimpleNamespace(prof=p, scheme="random", sparsity=0.0)
    assert M.resolve_hparams(ex, "salun")["ratio"] == 0.25
    assert M.resolve_hparams(ex, "ours")["alpha"] == 7.0
    assert M.resolve_hparams(types.SimpleNamespace(prof=p, scheme="class", sparsity=0.95), "ft")["epochs"] == 1
    # explicit profile overrides still win over tuned values
    assert get_profile("cpu", "digits", methods={}).methods == {}
    for bad, needle in [({"dense": {}}, "unknown key 'dense'"), ({"random-dense": {"sgd": {}}}, "method='sgd'"),
                        ({"random-dense": {"salun": {"ratio": 2}}}, "salun.ratio=2"),
                        ({"random-dense": {"ours_no_vss": {"alpha": 1}}}, "variant"), ([1, 2], "must be an object")]:
        (tmp_path / "cpu-digits.json").write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=needle):
            get_profile("cpu", "digits")
    (tmp_path / "cpu-digits.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        get_profile("cpu", "digits")


def test_tuned_files_ship_as_package_data():
    import tomllib
    from pathlib import Path

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "tuned/*.json" in cfg["tool"]["setuptools"]["package-data"]["advunlearn"]


def test_store_key_holds_the_resolved_hyperparameters(exp_random, monkeypatch):
    from advunlearn.experiments import runner

    calls = []
    real = M.run_method

    def spy(exp, method, **kw):
        calls.append(method)
        return real(exp, method, **kw)

    monkeypatch.setattr(M, "run_method", spy)
    r1 = runner.evaluate_method(exp_random, "ssd")
    r2 = runner.evaluate_method(exp_random, "ssd")
    assert calls == ["ssd"] and r1 == r2                              # stored, then read back
    assert r1["hparams"]["alpha"] == M.get("ssd").defaults["alpha"]
    exp_random.prof = get_profile("cpu", "digits", methods={"ssd": {"random": {"alpha": 3.0}}})
    try:
        r3 = runner.evaluate_method(exp_random, "ssd")               # a new profile value: computed again
    finally:
        exp_random.prof = get_profile("cpu", "digits")
    assert calls == ["ssd", "ssd"] and r3["hparams"]["alpha"] == 3.0


# ---- a toy method added through the registry --------------------------------------------------------------
def _toy_module():
    toy = types.ModuleType("advunlearn_test_toy", "Toy: θ_u = θ_o (returns the original model unchanged).")
    toy.LABEL = "Toy (identity)"
    toy.DEFAULTS = {"scale": 1.0}
    toy.SPACE = {"scale": ("log", 0.1, 10.0)}
    toy.CHECKS = {"scale": C.positive}
    toy.VERSION = 1

    def run(exp, **hp):
        model, _ = C.start(exp)
        return model, {"run_time_s": 0.0, "hparams": dict(hp)}

    toy.run = run
    return toy


@pytest.fixture
def toy():
    M.register("toy", _toy_module())
    yield M.get("toy")
    M.unregister("toy")


def test_a_registered_toy_method_appears_everywhere(toy, tmp_path, one_thread):
    from advunlearn.batch import config as batch_config
    from advunlearn.cli import build_parser, main
    from advunlearn.experiments import runner
    from advunlearn.report import build_table, method_order, table1

    # the command line: in --methods' help, accepted, run end to end
    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    help_text = next(a.help for a in run_parser._actions if a.dest == "methods")
    assert "toy" in help_text
    out = tmp_path / "recs.json"
    rc = main(["run", "--dataset", "digits", "--profile", "tiny", "--device", "cpu", "--results", str(tmp_path / "s"),
               "--methods", "retrain,toy", "--no-progress", "--out", str(out)])
    assert rc == 0
    recs = json.loads(out.read_text())
    assert [r["method"] for r in recs] == ["retrain", "toy"] and recs[1]["hparams"] == {"scale": 1.0}
    # batch validation
    batch_config._check_methods(["retrain", "toy"])
    with pytest.raises(ConfigError, match="methods='toy2'"):
        batch_config._check_methods(["toy2"])
    # the runner's lists and the report's order and labels
    assert "toy" in runner.ALL_METHODS and runner.RESULT_VERSION["toy"] == 1 and "toy" in method_order()
    t = table1(recs)[0]
    assert [label for label, _ in t.rows] == ["Retrain", "Toy (identity)"]
    assert "Toy (identity)" in build_table(recs, "digits", "random").to_markdown()


def test_notebook_04_lists_the_registry():
    import nbformat
    from pathlib import Path

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "04_evaluation.ipynb", 4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "methods: list = []" in params.source                       # empty = every registered method
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "methods = list(methods) or list(names())" in code
    assert "describe_all(methods)" in code and "hparams_markdown(methods, exp)" in code
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    # the descriptions it shows: each method's paper and update rule, from its module's docstring
    for name, spec in M.REGISTRY.items():
        d = M.describe(name)
        assert d.startswith(f"**{spec.label}** (`{name}`)") and spec.doc.split("\n\n")[1].split()[0] in d, name


# ---- RL --------------------------------------------------------------------------------------------------
def test_rl_forget_labels_are_never_the_true_label(exp_class, exp_random):
    from advunlearn.methods import rl

    g = torch.Generator().manual_seed(0)
    y = torch.randint(10, (20000,), generator=g)
    w = rl.wrong_labels(y, 10, g)
    assert not bool((w == y).any())
    counts = torch.bincount((w - y) % 10, minlength=10)
    assert counts[0] == 0 and bool((counts[1:] > 1800).all())          # every other class, about uniformly
    for exp in (exp_class, exp_random):
        model, masks = C.start(exp)
        log = []
        hp = {**rl.DEFAULTS, "epochs": 2, "loop": "mixed" if exp is exp_random else "sequential"}
        rl.relabel_unlearn(exp, model, masks, hp, label_log=log)
        forget = set(exp.splits.forget.tolist())
        n_forget = 0
        for idx, lab in log:
            isf = torch.tensor([i in forget for i in idx.tolist()])
            true = exp.data.y[idx]
            assert not bool((lab[isf] == true[isf]).any())                 # wrong labels on D_f
            assert torch.equal(lab[~isf], true[~isf])                       # true labels on D_r
            n_forget += int(isf.sum())
        assert n_forget > 0


def test_rl_forgets_the_class(exp_class):
    from advunlearn.core.train import accuracy

    model, info = M.run_method(exp_class, "rl")
    assert accuracy(model, exp_class.data, exp_class.splits.forget) < 20
    assert accuracy(model, exp_class.data, exp_class.splits.retain) > 95
    assert info["run_time_s"] > 0 and info["hparams"]["loop"] == "sequential"


# ---- SalUn ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.5, 0.1])
def test_salun_mask_keeps_exactly_the_largest_gradients(exp_class, ratio):
    from advunlearn.methods.salun import saliency_mask

    theta0, _ = exp_class.original()
    mask, sal = saliency_mask(copy.deepcopy(theta0), exp_class.data, exp_class.splits.forget, ratio)
    allm = torch.cat([m.reshape(-1) for m in mask.values()])
    alls = torch.cat([s.reshape(-1) for s in sal.values()])
    assert int(allm.sum()) == int(ratio * len(allm))
    assert float(alls[allm].min()) >= float(alls[~allm].max())
    # the saliency is |∇ mean CE(D_f)| at θ0 over every parameter (biases too)
    model = copy.deepcopy(theta0)
    xb, yb = exp_class.data.batch(exp_class.splits.forget)
    loss = nn.functional.cross_entropy(model(xb), yb)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (n, _), g in zip(model.named_parameters(), grads):
        torch.testing.assert_close(sal[n], g.abs(), rtol=1e-4, atol=1e-7)
    assert any(int(mask[n].sum()) > 0 for n in mask if n.endswith("bias"))


def test_salun_leaves_the_other_weights_bit_identical(exp_class):
    from advunlearn.methods.salun import saliency_mask
    from advunlearn.core.train import accuracy

    theta0, _ = exp_class.original()
    before = _state(theta0)
    mask, _ = saliency_mask(copy.deepcopy(theta0), exp_class.data, exp_class.splits.forget, 0.5)
    model, info = M.run_method(exp_class, "salun")
    changed = 0
    for n, p in model.named_parameters():
        assert torch.equal(p[~mask[n]], before[n][~mask[n]]), n           # non-salient: exactly θ0
        changed += int((p[mask[n]] != before[n][mask[n]]).sum())
    assert changed > 0.5 * sum(int(m.sum()) for m in mask.values())
    assert info["salient"] == sum(int(m.sum()) for m in mask.values())
    assert accuracy(model, exp_class.data, exp_class.splits.forget) < 20
    assert all(torch.equal(v, before[k]) for k, v in _state(theta0).items())   # θ0 itself untouched


def test_salun_on_a_sparse_model_updates_only_salient_unpruned_weights(exp_sparse):
    from advunlearn.methods.salun import saliency_mask

    theta0, _ = exp_sparse.original()
    masks = exp_sparse.masks(theta0)
    mask, _ = saliency_mask(copy.deepcopy(theta0), exp_sparse.data, exp_sparse.splits.forget, 0.5, masks)
    for n, m in masks.items():
        assert not bool((mask[n] & ~m).any()), n                            # salient ⇒ unpruned


# ---- NegGrad+ ------------------------------------------------------------------------------------------
def test_neggrad_plus_gradient_on_the_forget_set_is_minus_fts(exp_random):
    from advunlearn.methods.neggrad_plus import neggrad_plus_loss

    theta0, _ = exp_random.original()
    model = copy.deepcopy(theta0).train()
    params = list(model.parameters())
    x_r, y_r = exp_random.data.batch(exp_random.splits.retain[:64])
    x_f, y_f = exp_random.data.batch(exp_random.splits.forget[:64])

    def grad(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    ft_f = grad(nn.functional.cross_entropy(model(x_f), y_f))                 # FT's loss on the D_f batch
    ft_r = grad(nn.functional.cross_entropy(model(x_r), y_r))
    torch.testing.assert_close(grad(neggrad_plus_loss(model, x_r, y_r, x_f, y_f, 0.0)), -ft_f)
    for beta in (0.5, 0.9, 0.99):
        g = grad(neggrad_plus_loss(model, x_r, y_r, x_f, y_f, beta))
        torch.testing.assert_close(g, beta * ft_r - (1 - beta) * ft_f, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(g - beta * ft_r, -(1 - beta) * ft_f, rtol=1e-3, atol=1e-6)


def test_neggrad_plus_raises_the_forget_loss(exp_class):
    from advunlearn.core.train import predict

    def ce(model, idx):
        return float(nn.functional.cross_entropy(predict(model, exp_class.data, idx), exp_class.data.y[idx]))

    # β = 1 is plain fine-tuning on D_r; the more weight 1 − β the ascent on D_f gets, the higher the
    # forget loss ends (same seed, same batches)
    f = [ce(M.run_method(exp_class, "neggrad_plus", beta=b)[0], exp_class.splits.forget) for b in (1.0, 0.9, 0.8)]
    assert f[1] > 1.1 * f[0] and f[2] > 1.1 * f[1], f


# ---- SCRUB ----------------------------------------------------------------------------------------------
def _mean_kl(student, teacher, data, idx, T):
    from advunlearn.methods.scrub import kl_teacher_student

    student.eval()
    with torch.no_grad():
        xb, _ = data.batch(idx)
        return float(kl_teacher_student(teacher(xb), student(xb), T).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scrub_max_step_raises_and_min_step_lowers_the_kl(exp_random, seed):
    from advunlearn.methods import scrub

    data, s = exp_random.data, exp_random.splits
    theta0, _ = exp_random.original()
    teacher = copy.deepcopy(theta0).eval()
    student = copy.deepcopy(theta0)
    hp = {**scrub.DEFAULTS, "lr": 0.05, "forget_batch_size": 16}
    assert _mean_kl(student, teacher, data, s.forget, hp["T"]) == 0.0   # the student starts at the teacher,
    g = torch.Generator().manual_seed(seed)                              # where ∇d = 0: move it off first
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.02 * p.abs().mean() * torch.randn(p.shape, generator=g))
    gen = torch.Generator().manual_seed(seed)
    kl_f0 = _mean_kl(student, teacher, data, s.forget, hp["T"])
    opt = C.sgd(student, hp["lr"], hp["momentum"], hp["weight_decay"])
    scrub.max_epoch(student, teacher, data, s.forget, opt, hp, gen, aug=False)
    kl_f1 = _mean_kl(student, teacher, data, s.forget, hp["T"])
    assert kl_f1 > 2 * kl_f0 > 0                                        # max-step: KL on D_f up
    kl_r1 = _mean_kl(student, teacher, data, s.retain, hp["T"])
    opt = C.sgd(student, 0.05, hp["momentum"], hp["weight_decay"])
    scrub.min_epoch(student, teacher, data, s.retain, opt, {**hp, "alpha": 1.0, "gamma": 0.0}, gen, aug=False)
    kl_r2 = _mean_kl(student, teacher, data, s.retain, hp["T"])
    assert kl_r2 < 0.7 * kl_r1                                            # min-step: KL on D_r down


def test_scrub_runs_max_steps_only_in_the_first_epochs(exp_random, monkeypatch):
    from advunlearn.methods import scrub

    calls = []
    real_max, real_min = scrub.max_epoch, scrub.min_epoch
    monkeypatch.setattr(scrub, "max_epoch", lambda *a, **k: (calls.append("max"), real_max(*a, **k)))
    monkeypatch.setattr(scrub, "min_epoch", lambda *a, **k: (calls.append("min"), real_min(*a, **k)))
    model, info = M.run_method(exp_random, "scrub", epochs=4, max_steps=2)
    assert calls == ["max", "min", "max", "min", "min", "min"]
    assert info["hparams"]["T"] == scrub.DEFAULTS["T"]


def test_scrub_kl_carries_t_squared_so_its_gradient_scale_does_not_shrink_with_t():
    from advunlearn.methods.scrub import kl_teacher_student

    g = torch.Generator().manual_seed(0)
    t = torch.randn(64, 10, generator=g) * 3
    s_ = (t + 0.3 * torch.randn(64, 10, generator=g)).requires_grad_(True)
    for T in (1.0, 4.0, 8.0):
        p_t, logp_s = (t / T).softmax(-1), (s_ / T).log_softmax(-1)
        plain = (p_t * (p_t.log() - logp_s)).sum(-1)
        assert torch.allclose(kl_teacher_student(t, s_, T), T * T * plain, rtol=1e-3, atol=1e-5)  # float32
    # the gradient with respect to the student's logits: about the same size at T = 4, 8 and 16 (Hinton et
    # al.'s reason for T²); without T² it would shrink about T²-fold (16x from T = 4 to T = 16)
    norms = []
    for T in (4.0, 8.0, 16.0):
        (grad,) = torch.autograd.grad(kl_teacher_student(t, s_, T).mean(), s_)
        norms.append(float(grad.norm()))
    assert max(norms) / min(norms) < 1.5, norms


def test_scrub_max_weight_scales_the_max_step(exp_random):
    from advunlearn.methods import scrub

    data, s = exp_random.data, exp_random.splits
    theta0, _ = exp_random.original()
    teacher = copy.deepcopy(theta0).eval()
    moved = {}
    for w in (0.0, 1.0, 4.0):
        student = copy.deepcopy(theta0)
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for p in student.parameters():
                p.add_(0.02 * p.abs().mean() * torch.randn(p.shape, generator=g))
        start = _state(student)
        hp = {**scrub.DEFAULTS, "lr": 0.01, "forget_batch_size": 16, "max_weight": w, "weight_decay": 0.0,
              "momentum": 0.0}
        opt = C.sgd(student, hp["lr"], 0.0, 0.0)
        scrub.max_epoch(student, teacher, data, s.forget, opt, hp, torch.Generator().manual_seed(1), aug=False)
        moved[w] = sum(float((v - start[k]).norm()) for k, v in _state(student).items())
    assert moved[0.0] == 0.0 and moved[4.0] > 2.5 * moved[1.0] > 0, moved


def test_scrub_r_is_registered_and_rewinds_to_the_checkpoint_closest_to_the_validation_error(exp_random):
    assert "scrub_r" in M.names() and M.get("scrub_r").label == "SCRUB+R"
    assert "rewind" not in M.get("scrub_r").space and M.get("scrub_r").fixed == {"rewind": True}
    model, info = M.run_method(exp_random, "scrub_r", epochs=4, max_steps=2, lr=0.05)
    rw = info["rewind"]
    errs, target = rw["forget_errors"], rw["target_error"]
    assert len(errs) == 5                                  # θ_o and the model after each of 4 epochs
    assert rw["epoch"] == min(range(5), key=lambda i: (abs(errs[i] - target), -i))
    # the returned model is that checkpoint: its forget error is the recorded one
    from advunlearn.core.train import predict

    s = exp_random.splits
    err = 100.0 * float((predict(model, exp_random.data, s.forget, exact=True).argmax(1)
                         != exp_random.data.y[s.forget]).float().mean())
    assert err == pytest.approx(errs[rw["epoch"]], abs=1e-6)
    # without rewinding, the same run returns the last epoch's model
    last, info2 = M.run_method(exp_random, "scrub", epochs=4, max_steps=2, lr=0.05)
    assert "rewind" not in info2
    if rw["epoch"] == 4:
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))


# ---- ℓ1-sparse ------------------------------------------------------------------------------------------
def test_l1_sparse_penalty_follows_its_schedule(exp_random):
    from advunlearn.methods.l1_sparse import l1_norm, penalty_weight

    assert [penalty_weight(1e-3, e, 4) for e in range(4)] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    model, info = M.run_method(exp_random, "l1_sparse", alpha=2e-3, epochs=5)
    assert info["penalty_weights"] == pytest.approx([2e-3 * (1 - e / 5) for e in range(5)])
    plain, _ = M.run_method(exp_random, "l1_sparse", alpha=0.0, epochs=5)
    strong, _ = M.run_method(exp_random, "l1_sparse", alpha=1e-2, epochs=5)
    with torch.no_grad():
        n_plain, n_model, n_strong = float(l1_norm(plain)), float(l1_norm(model)), float(l1_norm(strong))
    assert n_strong < 0.9 * n_model < 0.9 * n_plain


# ---- SSD ------------------------------------------------------------------------------------------------
def test_ssd_dampen_matches_a_direct_loop():
    from advunlearn.methods.ssd import dampen

    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    imp_d = {n: torch.rand(p.shape, generator=g) for n, p in model.named_parameters()}
    imp_f = {n: torch.rand(p.shape, generator=g) * 20 for n, p in model.named_parameters()}
    imp_f["0.bias"][0] = 0.0                                               # never selected
    before = _state(model)
    alpha, lambd = 10.0, 1.0
    sel = dampen(model, imp_d, imp_f, alpha, lambd)
    n_sel = 0
    for n, p in model.named_parameters():
        for i in range(p.numel()):
            d, f, w0 = float(imp_d[n].view(-1)[i]), float(imp_f[n].view(-1)[i]), before[n].view(-1)[i]
            if f > alpha * d:
                n_sel += 1
                expect = w0 * torch.tensor(min(lambd * d / f, 1.0), dtype=torch.float64).float()
                torch.testing.assert_close(p.view(-1)[i], expect, rtol=1e-5, atol=0)
            else:
                assert torch.equal(p.view(-1)[i], w0)
    assert sum(sel.values()) == n_sel > 0


def test_ssd_changes_only_the_selected_parameters(exp_class):
    from advunlearn.methods import ssd

    theta0, _ = exp_class.original()
    s = exp_class.splits
    model0 = copy.deepcopy(theta0)
    imp_d = C.batch_grad_importance(model0, exp_class.data, torch.cat([s.retain, s.forget]), 128)
    imp_f = C.batch_grad_importance(model0, exp_class.data, s.forget, 128)
    model, info = M.run_method(exp_class, "ssd")
    a, lam = ssd.DEFAULTS["alpha"], ssd.DEFAULTS["lambd"]
    n_sel = 0
    for n, p in model.named_parameters():
        sel = imp_f[n] > a * imp_d[n]
        n_sel += int(sel.sum())
        w0 = dict(theta0.named_parameters())[n].detach()
        assert torch.equal(p[~sel], w0[~sel]), n
        factor = (lam * imp_d[n][sel] / imp_f[n][sel]).clamp(max=1.0)
        torch.testing.assert_close(p[sel], w0[sel] * factor, rtol=1e-5, atol=1e-8)
    assert info["selected"] == n_sel > 0
    # the importance with batch_size 1 is the per-sample empirical Fisher
    F = C.fisher_diagonal(model0, exp_class.data, s.forget[:20], weights="label")
    I1 = C.batch_grad_importance(model0, exp_class.data, s.forget[:20], 1)
    for n in F:
        torch.testing.assert_close(I1[n], F[n])


# ---- Retrain (another seed) ----------------------------------------------------------------------------
def test_retrain_seed2_is_an_independent_retrain(exp_class):
    from advunlearn.core.train import accuracy

    r1, i1 = M.run_method(exp_class, "retrain")
    r2, i2 = M.run_method(exp_class, "retrain_seed2")
    assert not torch.equal(r1.fc.weight, r2.fc.weight)
    assert i2["hparams"]["replica"] == 1 and i2["method"] == "retrain_seed2"
    for m in (r1, r2):                                                    # both never saw the class
        assert accuracy(m, exp_class.data, exp_class.splits.forget) == 0.0
    r2b, _ = M.run_method(exp_class, "retrain_seed2")                     # stored once
    assert torch.equal(r2.fc.weight, r2b.fc.weight)


# ---- Fisher ---------------------------------------------------------------------------------------------
def _naive_fisher(model, x, y=None):
    """Σ_c w_c (∂ log p_c / ∂θ)² averaged over samples, one autograd call per (sample, class):
    w = p (model) or the one-hot label (empirical)."""
    model.eval()
    acc = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        logp = model(x[i:i + 1]).log_softmax(-1)[0]
        p = logp.exp().detach()
        for c in range(len(logp)):
            if y is not None and c != int(y[i]):
                continue
            gs = torch.autograd.grad(logp[c], list(model.parameters()), retain_graph=True)
            for (n, _), gr in zip(model.named_parameters(), gs):
                acc[n] += (p[c] if y is None else 1.0) * gr ** 2
    return {n: a / len(x) for n, a in acc.items()}


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("weights", ["model", "label"])
def test_fisher_diagonal_equals_a_per_sample_loop(arch, weights):
    from advunlearn.core.data import Dataset
    from advunlearn.core.models import build_model

    g = torch.Generator().manual_seed(0)
    x = torch.randn(13, 1, 8, 8, generator=g)
    y = torch.randint(4, (13,), generator=g)
    data = Dataset("digits", x, y, 13, 4)
    torch.manual_seed(0)
    model = build_model(arch, 4, 1, 8)
    model.train()
    with torch.no_grad():   # non-trivial BatchNorm running statistics, so eval mode matters
        for _ in range(3):
            model(torch.randn(16, 1, 8, 8) * 2 + 0.5)
    F = C.fisher_diagonal(model, data, torch.arange(13), weights=weights, batch_size=5, chunk_size=7)
    ref = _naive_fisher(model, x, None if weights == "model" else y)
    for n in ref:
        torch.testing.assert_close(F[n], ref[n], rtol=1e-4, atol=1e-9, msg=n)


# ---- every method: OMP masks exact on a sparse model ---------------------------------------------------
FAST = {"ff": {"max_samples": 150}, "iu": {"alpha": 0.1, "n_samples": 200}, "ga": {"lr": 0.05, "epochs": 3},
        "ssd": {"alpha": 1.0}, "rl": {"epochs": 2}, "salun": {"epochs": 2}, "scrub": {"epochs": 2},
        "neggrad_plus": {"epochs": 2}, "l1_sparse": {"epochs": 2, "alpha": 1e-2}, "ft": {"epochs": 2}}


@pytest.mark.parametrize("method", [m for m in M.names() if not m.startswith("ours")])
def test_every_method_keeps_the_omp_masks_exact(exp_sparse, method):
    theta0, _ = exp_sparse.original()
    masks0 = masks_from_model(theta0)
    before = _state(theta0)
    model, info = M.run_method(exp_sparse, method, **FAST.get(method, {}))
    assert info["run_time_s"] >= 0 and info["method"] == method
    if not method.startswith("retrain"):
        assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())     # it did something
    for n, m in masks0.items():
        w = dict(model.named_parameters())[n]
        assert bool((w[~m] == 0).all()), n                                 # pruned weights exactly 0
    assert sparsity_of(model) >= 0.95 - 1e-3
    assert all(torch.equal(v, before[k]) for k, v in _state(theta0).items())   # θ0 untouched
