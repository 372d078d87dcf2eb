"""The one-file reports, the model card and /docs are autoescaped templates: hostile text shows
as text, chart data is escaped JSON, and a report runs only the scripts it ships."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import orjson
import polars as pl

from keel.monitor import Alert, ColumnDrift, ModelStatus, compare_frames
from keel.monitor.service import WindowStatus
from keel.registry import AuditEvent
from keel.render import drift_report_html, monitor_report_html
from keel.serve.routes import docs_page
from keel.train import EvaluationReport, render_card_html

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    '"><svg onload=alert(1)>',
]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _inline_scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)


def _json_block(page: str) -> object:
    block = re.search(
        r'<script type="application/json" id="keel-charts">(.*?)</script>', page, re.DOTALL
    )
    assert block is not None
    return orjson.loads(block.group(1))


def _status() -> ModelStatus:
    window = WindowStatus(
        start=T0,
        version=1,
        rows=40,
        drift=(
            ColumnDrift(
                name=HOSTILE[1],
                kind="categorical",
                method="jensen_shannon",
                statistic=0.2,
                p_value=0.01,
                threshold=0.1,
                drifted=True,
                test="chi2",
                n_reference=100,
                n_current=40,
                psi=0.2,
                jensen_shannon=0.1,
            ),
        ),
        drifted=(HOSTILE[1],),
        output_drift=None,
        estimated={},
        error_rate=0.0,
        latency_p99_ms=None,
        latency_counts=(),
        unseen_share=0.0,
        complete=True,
        judged=False,
        note=HOSTILE[2],
    )
    alert = Alert("m", "drift", "warning", HOSTILE[0], T0, time=T0)
    return ModelStatus(
        model=HOSTILE[2],
        version=1,
        task="binary",
        metric="roc_auc",
        training={},
        windows=(window,),
        alerts=(alert,),
    )


def test_the_monitoring_report_shows_hostile_text_as_text() -> None:
    """Alert messages, notes, audit reasons and feature names: escaped in the page, intact in
    the chart data, and no markup of theirs in the document."""
    audit = [
        AuditEvent(
            time=T0, action="alias.set", subject="model:m", actor=HOSTILE[0], reason=HOSTILE[1]
        )
    ]

    page = monitor_report_html(_status(), audit, window_s=3600)

    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in page
    for text in HOSTILE:
        assert text not in page
    charts = _json_block(page)
    assert [c["f"] for c in charts["heat"]["data"]["values"]] == [HOSTILE[1]]  # type: ignore[index]


def test_a_report_allows_by_hash_exactly_the_scripts_it_inlines() -> None:
    """The page's own CSP lists one sha256 per inline script (Vega's three and charts.js) and
    nothing else may run: no 'unsafe-inline', no network."""
    page = monitor_report_html(_status(), [], window_s=3600)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp is not None
    policy = csp.group(1).replace("&#39;", "'")
    scripts = _inline_scripts(page)
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    }

    assert len(scripts) == 4
    assert set(re.findall(r"'sha256-[^']+'", policy)) == hashes
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert policy.startswith("default-src 'none';")
    assert "vegaEmbed" in scripts[-1]


def test_the_drift_report_escapes_column_names() -> None:
    """A column named like markup: a table cell of text, and data in the JSON block."""
    reference = pl.DataFrame({HOSTILE[0]: [float(i) for i in range(50)]})
    current = pl.DataFrame({HOSTILE[0]: [float(i) + 30 for i in range(50)]})
    report = compare_frames(reference, current, numeric=[HOSTILE[0]], categorical=[])

    page = drift_report_html(report, title=HOSTILE[2])

    assert HOSTILE[0] not in page
    assert HOSTILE[2] not in page
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in page
    assert _json_block(page)["bars"]["data"]["values"][0]["column"] == HOSTILE[0]  # type: ignore[index]


def test_the_model_card_escapes_every_value() -> None:
    """Name, features and dataset lineage go into the card as text; the card has no script."""
    report = EvaluationReport(
        task="classification", target=HOSTILE[1], features=(HOSTILE[0],), evaluated=False
    )

    page = render_card_html(HOSTILE[2], 1, {"estimator": "onnx"}, report, {})

    for text in HOSTILE:
        assert text not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page


def test_the_docs_page_escapes_paths_and_summaries() -> None:
    """/docs lists operations from the OpenAPI document as text."""
    page = docs_page({"paths": {HOSTILE[0]: {"get": {"summary": HOSTILE[1]}}}})

    assert "<code>&lt;img src=x onerror=alert(1)&gt;</code>" in page
    assert HOSTILE[1] not in page
    assert "<script" not in page
