"""The report folder: tables, Figure 2, the strong attacks and U-LiRA as files and one self-contained HTML page
(:func:`build_report`, ``advunlearn report DIR``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

from ..evaluation.metrics import failure
from .figures import figure2, figure2_settings
from .records import (DATASET_LABELS, REQUIRED, SCHEME_LABELS, _dedupe, _label, load_records, method_key,
                      method_label, method_order)
from .tables import _failed_line, sparsity_label, strong_table, summary_csv, table1, table2


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table.results{border-collapse:collapse;margin:1em 0 .3em 0;font-size:13px}
table.results caption{font-weight:bold;text-align:left;padding:.3em 0}
table.results th,table.results td{border:1px solid #bbb;padding:3px 7px;text-align:right;white-space:nowrap}
table.results thead th{background:#f0f0f0;text-align:center}
table.results tbody th{text-align:left}
p.note{font-size:12px;color:#555;margin:0 0 1.5em 0}"""


def _html_page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")


def _write(path: Path, text: str) -> None:
    from ..core.store import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def _figures_html(records: Sequence[dict], inline: bool = True) -> tuple[str, str | None]:
    """(html fragment with every Figure 2 panel, error note or None)."""
    settings = figure2_settings(records)
    if not settings:
        return "", "No record carries 'mia' values: Figure 2 is empty."
    try:
        import plotly.io as pio
    except ImportError:
        return "", "plotly is not installed: Figure 2 was not drawn (pip install plotly)."
    parts = []
    for i, (ds, sc, sp) in enumerate(settings):
        fig = figure2(records, ds, sc, sp)
        js = ("inline" if inline else "cdn") if i == 0 else False
        parts.append(pio.to_html(fig, include_plotlyjs=js, full_html=False))
    return "\n".join(parts), None


def _markdown_table_html(md: str) -> str:
    """The first markdown table in ``md`` as an HTML table (the lines after it as a note)."""
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    notes = [ln for ln in md.splitlines() if ln and not ln.startswith("|")]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows if not set(r) <= set("|-: ")]
    if not cells:
        return f'<p class="note">{html.escape(md)}</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
    note = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _strong_parts(records: Sequence[dict]):
    """(strong-attack markdown table, its HTML, one log-log ROC figure per setting), or None."""
    recs = [r for r in _dedupe(records) if isinstance(r.get("strong"), Mapping)]
    if not recs:
        return None
    md = strong_table(recs)
    try:
        from ..evaluation.strong import roc_figure

        import plotly.io  # noqa: F401 - the figures are rendered with it
    except ImportError:
        return md, _markdown_table_html(md) + '<p class="note">plotly is not installed: the ROC figure was not drawn.</p>', []
    settings = sorted({(r["dataset"], r["scheme"], r["sparsity"]) for r in recs})
    order = list(method_order())
    figs = []
    for ds, sc, sp in settings:
        here = [r for r in recs if (r["dataset"], r["scheme"], r["sparsity"]) == (ds, sc, sp)]
        seed = min(r["seed"] for r in here)
        reps = {method_label(method_key(r)): r["strong"]["lira_fixed"]
                for r in sorted(here, key=lambda r: order.index(method_key(r)) if method_key(r) in order else 99)
                if r["seed"] == seed and isinstance(r["strong"].get("lira_fixed"), Mapping)
                and "roc" in r["strong"]["lira_fixed"]}
        if reps:
            title = (f"LiRA (fixed var.) on D_f: {_label(DATASET_LABELS, ds)} {sc} {sparsity_label(sp)}, "
                     f"seed {seed} (log-log ROC)")
            figs.append(roc_figure(reps, title))
    return md, _markdown_table_html(md), figs


def _strong_html(table_html: str, figs: list, plotly_js) -> str:
    """The strong-attack table and ROC figures as HTML; ``plotly_js`` as plotly's ``include_plotlyjs``
    for the first figure ("inline", "cdn" or False when the page already has it)."""
    parts = [table_html]
    if figs:
        import plotly.io as pio

        parts += [pio.to_html(f, include_plotlyjs=plotly_js if i == 0 else False, full_html=False)
                  for i, f in enumerate(figs)]
    return "\n".join(parts)


def build_report(results_dir: str | Path, out_dir: str | Path | None = None, *, inline_plotly: bool = True) -> dict[str, Path]:
    """Read every result record under ``results_dir`` and write the tables, Figure 2 and ``report.html``.

    Writes ``table1.md/.csv/.html``, ``table2.md/.csv/.html`` (when the ablation is present),
    ``summary.csv``, ``figure2.html`` (when records carry ``mia``), ``strong.md/.html`` (the strong
    attacks and their ROC, when records carry ``strong``), ``ulira.md`` (U-LiRA and the NeurIPS 2023
    score with intervals, from ``advunlearn ulira`` records), ``failed.md`` (the failed runs, when there
    are any; the tables mark them too) and ``report.html`` (self-contained:
    plotly's JavaScript inlined so it opens offline) into ``out_dir`` (default ``results_dir/report``).
    Returns ``{name: path}``.  Raises ConfigError (a ValueError) when the folder is missing or holds no result records.
    """
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    records = load_records(results_dir, exclude=out.resolve())
    from .ulira import load_ulira_records, ulira_markdown

    ulira_recs = load_ulira_records(results_dir, exclude=out.resolve())  # shadow evaluations (advunlearn ulira)
    if not records and not ulira_recs:
        from ..core.config import ConfigError

        raise ConfigError(f"no result records found under {results_dir}: expected *.json files holding objects "
                          f"(or lists of objects) with keys {list(REQUIRED)}")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    t1, t2 = table1(records), table2(records)
    failed = [r for r in _dedupe(records) if failure(r)]
    records = [r for r in records if not failure(r)]  # the figures and the strong attacks: finished runs only
    for name, tables in (("table1", t1), ("table2", t2)):
        if not tables:
            continue
        for ext, fn in (("md", lambda t: t.to_markdown()), ("csv", lambda t: t.to_csv())):
            p = out / f"{name}.{ext}"
            _write(p, "\n".join(fn(t) for t in tables))
            written[f"{name}.{ext}"] = p
        p = out / f"{name}.html"
        _write(p, _html_page(name, "".join(t.to_html() for t in tables)))
        written[f"{name}.html"] = p
    p = out / "summary.csv"
    _write(p, summary_csv(records))
    written["summary.csv"] = p
    failed_md = [f"- {_label(DATASET_LABELS, r['dataset'])} {_label(SCHEME_LABELS, r['scheme'])}, {_failed_line(r)}"
                 for r in failed]
    (out / "failed.md").unlink(missing_ok=True)
    if failed:
        p = out / "failed.md"
        _write(p, "# Failed runs (left out of every table and figure)\n\n" + "\n".join(failed_md) + "\n")
        written["failed.md"] = p
    fig_html, fig_note = _figures_html(records, inline_plotly)
    if fig_html:
        p = out / "figure2.html"
        _write(p, _html_page("Figure 2", fig_html))
        written["figure2.html"] = p
    js = "inline" if inline_plotly else "cdn"
    strong = _strong_parts(records)
    if strong:
        strong_md, strong_table_html, strong_figs = strong
        for name, text in (("strong.md", strong_md),
                           ("strong.html", _html_page("Strong attacks", _strong_html(strong_table_html, strong_figs, js)))):
            _write(out / name, text)
            written[name] = out / name
    if ulira_recs:
        ulira_md = ulira_markdown(ulira_recs)
        _write(out / "ulira.md", ulira_md)
        written["ulira.md"] = out / "ulira.md"
    seeds = sorted({r["seed"] for r in records})
    body = ["<h1>Discriminative Adversarial Unlearning: results</h1>",
            f"<p>{len(records)} records from <code>{html.escape(str(results_dir))}</code>; seeds {seeds}"
            f"{f'; {len(failed)} failed run(s), listed below' if failed else ''}.</p>",
            "<h2>Table 1</h2>", *(t.to_html() for t in t1)]
    if t2:
        body += ["<h2>Table 2: role of V_ss</h2>", *(t.to_html() for t in t2)]
    body.append("<h2>Figure 2: MIA robustness (metric attacks)</h2>")
    body.append(fig_html if fig_html else f'<p class="note">{html.escape(fig_note or "")}</p>')
    if strong:  # plotly's JavaScript is already on the page when Figure 2 is
        body += ["<h2>Strong attacks (LiRA, RMIA, a fresh attacker)</h2>",
                 _strong_html(strong_table_html, strong_figs, False if fig_html else js)]
    if ulira_recs:
        body += ["<h2>U-LiRA and the NeurIPS 2023 unlearning score (shadow models)</h2>", _markdown_table_html(ulira_md)]
    if failed:
        body += ["<h2>Failed runs</h2>", "<ul>" + "".join(f"<li>{html.escape(l[2:])}</li>" for l in failed_md) + "</ul>"]
    p = out / "report.html"
    _write(p, _html_page("advunlearn report", "\n".join(body)))
    written["report.html"] = p
    return written
