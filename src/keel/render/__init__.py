"""Render: what people look at, shared by the command line, the demo and the dashboard.

`keel.render.terminal` prints domain objects with rich; `keel.render.reports` renders the
monitoring and drift pages (Jinja2 templates with autoescape in `templates/`, the vendored
Vega-Lite and charts.js in `static/`), which the dashboard serves and `keel monitor report` and
the demo write as one file. Names load on first use (PEP 562): the command line's table
printing must not pull in Jinja2 and the reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "SCRIPTS": "keel.render.reports",
    "STATIC": "keel.render.reports",
    "alert_rows": "keel.render.reports",
    "console": "keel.render.terminal",
    "drift_heatmap_spec": "keel.render.reports",
    "drift_report_html": "keel.render.reports",
    "environment": "keel.render.reports",
    "monitor_report_html": "keel.render.reports",
    "performance_spec": "keel.render.reports",
    "print_contract": "keel.render.terminal",
    "print_report": "keel.render.terminal",
    "print_train_result": "keel.render.terminal",
    "print_version": "keel.render.terminal",
    "script": "keel.render.reports",
    "segments_section": "keel.render.reports",
    "shadow_row": "keel.render.reports",
    "unjudged": "keel.render.reports",
    "year_heatmap_spec": "keel.render.reports",
}

if TYPE_CHECKING:
    from keel.render.reports import (
        SCRIPTS as SCRIPTS,
        STATIC as STATIC,
        alert_rows as alert_rows,
        drift_heatmap_spec as drift_heatmap_spec,
        drift_report_html as drift_report_html,
        environment as environment,
        monitor_report_html as monitor_report_html,
        performance_spec as performance_spec,
        script as script,
        segments_section as segments_section,
        shadow_row as shadow_row,
        unjudged as unjudged,
        year_heatmap_spec as year_heatmap_spec,
    )
    from keel.render.terminal import (
        console as console,
        print_contract as print_contract,
        print_report as print_report,
        print_train_result as print_train_result,
        print_version as print_version,
    )

__getattr__ = lazy_getattr("keel.render", _NAMES)

__all__ = sorted(_NAMES)
