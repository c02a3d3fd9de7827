"""The live unlearning figure: what each panel holds."""

from advunlearn.viz import LivePlot, unlearning_figure


def _records(n=3):
    return [dict(iteration=10 * i, attacker_loss=-0.6 + 0.01 * i, ce=0.01, vss=250.0 - i, forget_acc=90.0 - i,
                 retain_acc=100.0, attacker_acc=55.0, corr=[[1.0, 0.1], [0.1, 1.0]]) for i in range(n)]


def test_unlearning_figure_panels():
    fig = unlearning_figure(_records(), "t")
    names = [t.name for t in fig.data]
    assert names[:6] == ["attacker loss L_A", "defender CE on D_r", "V_ss (right axis)", "forget acc", "retain acc",
                         "attacker acc (D_f vs D_v)"]
    # V_ss on its own axis, the other losses on the left one
    assert fig.data[2].yaxis == "y2" and fig.data[0].yaxis == fig.data[1].yaxis == "y"
    assert list(fig.data[2].y) == [250.0, 249.0, 248.0] and list(fig.data[0].x) == [0, 10, 20]
    heat = fig.data[6]
    assert heat.type == "heatmap" and [list(r) for r in heat.z] == [[1.0, 0.1], [0.1, 1.0]]
    assert fig.layout.title.text == "t"


def test_live_plot_collects_without_a_display():
    live = LivePlot("x", display=False)
    for r in _records(4):
        live(r)
    assert len(live.records) == 4 and live.draws == 0
    assert [t.name for t in live.figure.data][0] == "attacker loss L_A"
