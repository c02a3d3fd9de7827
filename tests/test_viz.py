"""The live unlearning figure: what each panel holds."""

import math

from advunlearn.viz import CHANCE_LA, LivePlot, confidence_panels, unlearning_figure


def _records(n=3):
    return [dict(iteration=10 * i, attacker_loss=-1.2 + 0.01 * i, attacker_loss_eval=-1.25, ce=0.01, vss=250.0 - i,
                 vss_eval=249.0, forget_acc=90.0 - i, retain_acc=100.0, val_acc=85.0, attacker_acc=55.0,
                 attacker_auc=0.6, corr_diag_mean=0.01, corr=[[1.0, 0.1], [0.1, 1.0]]) for i in range(n)]


def test_unlearning_figure_panels():
    fig = unlearning_figure(_records(), "t")
    by = {t.name: t for t in fig.data}
    assert list(by["L_A, held-out pairs"].y) == [-1.25] * 3
    assert list(by["attacker AUC ×100, held-out pairs"].y) == [60.0] * 3
    assert list(by["mean C_ii, held-out pairs"].y) == [0.01] * 3
    # V_ss has a panel of its own (no second y axis beside another panel)
    assert by["V_ss, loop batches"].yaxis != by["CE on D_r"].yaxis and "yaxis9" not in fig.layout
    # forget and retain accuracy stay distinguishable where they coincide
    f, r = by["forget acc (D_f)"].line, by["retain acc (D_r)"].line
    assert (f.dash, f.width) != (r.dash, r.width)
    heat = by["C"]
    assert heat.type == "heatmap" and [list(r) for r in heat.z] == [[1.0, 0.1], [0.1, 1.0]]
    # the chance line of L_A, and no fixed width
    assert any(math.isclose(s.y0, CHANCE_LA) for s in fig.layout.shapes)
    assert fig.layout.width is None and fig.layout.title.text == "t"
    for i in range(1, 8):
        assert fig.layout[f"xaxis{'' if i == 1 else i}"].title.text
        assert fig.layout[f"yaxis{'' if i == 1 else i}"].title.text


def test_live_plot_collects_without_a_display():
    live = LivePlot("x", display=False)
    for r in _records(4):
        live(r)
    assert len(live.records) == 4 and live.draws == 0
    assert [t.name for t in live.figure.data][0] == "L_A, loop batches (attacker's steps)"


def test_confidence_panels():
    recs = [{"method": m, "confidence": {"forget": [0.5, 0.5], "test": [0.2, 0.8]}} for m in ("retrain", "ours")]
    fig = confidence_panels(recs + [{"method": "old"}], before={"forget": [0.0, 1.0], "test": [0.0, 1.0]})
    assert [a.text for a in fig.layout.annotations][:2] == ["retrain", "ours"]
    names = {t.name for t in fig.data}
    assert {"D_f (forget set)", "D_t (test set)", "D_f under Retrain (target)", "D_f under θ₀ (before)"} <= names
