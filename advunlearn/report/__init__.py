"""Tables 1 and 2 and Figure 2 of the paper from result records; one self-contained HTML report.

A *result record* is a JSON object (one per file, or a list of them per file) with the keys

=================  =========================================================================
``dataset``        "digits", "fashion-mnist", "cifar10", "cifar100" (any string is shown as is)
``scheme``         "random" or "class"
``sparsity``       0 for dense, e.g. 0.95 for the 95%-sparse (OMP) model
``seed``           int; seeds are the repetitions averaged in each cell
``method``         a registered method (:mod:`advunlearn.methods`; rows in registry order, labelled by it;
                   unregistered names are listed last, as they are)
``variant``        optional; ``method="ours", variant="no_vss"`` is the same as ``"ours_no_vss"``
``UA`` ``RA``      percent (UA = 100 − accuracy on D_f, RA on D_r, TA on D_t)
``TA``
``MIA_efficacy``   percent (the confidence SVC attack)
``run_time_s``     seconds for one seed (may be null)
``mia``            optional ``{"correctness", "confidence", "entropy", "m_entropy", "prob"}`` (Figure 2)
``failed``         optional: why the run failed (e.g. "diverged: non-finite weights in ..."); such a
                   record (or one with ``diverged: true``) is shown as failed, never averaged
=================  =========================================================================

Other keys are ignored.  JSON files under the folder that are not records (no ``method`` and ``UA``)
are skipped, so a results folder that also holds checkpoints' metadata can be read directly.

Cells are "mean ± std" over seeds (sample standard deviation, ddof = 1; a single seed shows the
mean alone).  Avg. Disparity is computed per seed against *that seed's* Retrain (same dataset,
scheme, sparsity and seed) and then averaged; seeds without a Retrain record are left out of it.
"Run Time min." is the dense model's mean run time (the sparse one's when there is no dense run),
as the paper reports one run-time column.

The core (tables as markdown, CSV and HTML) uses the standard library and the method registry (row
order and labels); plotly is imported only for Figure 2.

The modules: :mod:`~advunlearn.report.records` (reading and summarising records),
:mod:`~advunlearn.report.tables` (Tables 1 and 2, the strong attacks), :mod:`~advunlearn.report.figures`
(Figure 2), :mod:`~advunlearn.report.comparison` (Ours against the best baseline, seed by seed),
:mod:`~advunlearn.report.ulira` (U-LiRA tables and figures), :mod:`~advunlearn.report.html` (the report
folder and its page, :func:`build_report`) and :mod:`~advunlearn.report.document` (the README's blocks
checked and updated).
"""

from .document import check_document, report_parts, update_document  # noqa: F401
from .figures import figure2, figure2_data, figure2_settings  # noqa: F401
from .html import build_report  # noqa: F401
from .records import (ATTACK_LABELS, REQUIRED, Stat, load_records, make_record, method_key, method_label,  # noqa: F401
                      method_order, summarize, table1_methods, table2_methods, validate_record)
from .tables import (STRONG_ATTACKS, Table, build_table, records_markdown, sparsity_label, strong_table,  # noqa: F401
                     summary_csv, table1, table2)

__all__ = ["REQUIRED", "table1_methods", "table2_methods", "method_order", "method_label", "Table", "Stat", "method_key",
           "validate_record", "make_record", "load_records", "summarize", "build_table", "table1", "table2",
           "summary_csv", "figure2", "figure2_data", "figure2_settings", "build_report", "sparsity_label",
           "strong_table", "STRONG_ATTACKS", "report_parts", "check_document", "update_document", "ATTACK_LABELS",
           "records_markdown"]
