"""The study report's curves (gen_lightning/studies/report/plots.py): honest axes and units."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg

from gen_lightning.studies.report.plots import curves_figure, metric_curves


def history(metric: str, values: list[float]) -> list[dict]:
    return [{"step": 100 * i, "time_s": 2.0 * i, metric: v} for i, v in enumerate(values)]


def test_a_constant_metric_is_drawn_flat_without_an_offset(tmp_path):
    # val/clf_acc of a fixed classifier on a fixed set: equal up to float noise at every validation
    values = [0.99259, 0.99259 + 1e-8, 0.99259 - 1e-8, 0.99259]
    fig = curves_figure("val/clf_acc", {"vae": [(0, history("val/clf_acc", values))]})
    FigureCanvasAgg(fig).draw()  # tick labels and the offset are made when drawn
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert high - low >= 0.019 and low < 0.99259 < high  # at least 2% of the value: the line is flat
        assert ax.yaxis.get_major_formatter().get_offset() == ""  # no "1e-8 + 0.99259" above the axis
    assert metric_curves("val/clf_acc", {"vae": [(0, history("val/clf_acc", values))]}, tmp_path / "a.png").is_file()


def test_sample_time_is_plotted_in_the_tables_unit():
    fig = curves_figure("val/sample_time", {"ddpm": [(0, history("val/sample_time", [0.48, 0.36, 0.23]))]})
    ax = fig.axes[0]
    assert ax.get_ylabel() == "val/sample_time (ms/sample)"
    assert list(ax.get_lines()[0].get_ydata()) == [480.0, 360.0, 230.0]  # seconds per image logged, ms shown


def test_a_changing_metric_keeps_its_own_range():
    fig = curves_figure("val/elbo", {"vae": [(0, history("val/elbo", [-90.0, -70.0, -62.0]))]})
    low, high = fig.axes[0].get_ylim()
    assert -92 < low < -90 and -62 < high < -60
