"""Train: fit candidates from specs, evaluate them (holdout, overfit, segments, fairness,
explanations, runtime, reference profile), gate them, write cards, register the passing ones.

Names load on first use (PEP 562): a server reading a version's `EvaluationReport` needs
neither scikit-learn's training stack nor the card templates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "weighted_regression": "keel.train.metrics",
    "weighted_binary": "keel.train.metrics",
    "to_pandas": "keel.train.features",
    "shap_values": "keel.train.explain",
    "score_file": "keel.train.scoring",
    "ScoreResult": "keel.train.scoring",
    "score_file_ray": "keel.train.ray_scoring",
    "score_to_sql": "keel.train.sql_sink",
    "SqlSink": "keel.train.sql_sink",
    "TableResult": "keel.train.sql_sink",
    "score": "keel.train.metrics",
    "import_onnx": "keel.train.onnx_import",
    "export_onnx": "keel.train.onnx_export",
    "LOWER_IS_BETTER": "keel.train.metrics",
    "Candidate": "keel.train.trainer",
    "check_gates": "keel.train.gates",
    "EvaluationReport": "keel.train.report",
    "CategoricalReference": "keel.train.reference",
    "EMPTY_REFERENCE": "keel.train.reference",
    "NumericReference": "keel.train.reference",
    "ReferenceProfile": "keel.train.reference",
    "FailedCandidate": "keel.train.trainer",
    "GateResult": "keel.train.report",
    "load_spec": "keel.train.spec",
    "pareto_front": "keel.train.trainer",
    "parse_gate": "keel.train.gates",
    "promote": "keel.train.promotion",
    "PromotionRefusedError": "keel.train.promotion",
    "recommend": "keel.train.trainer",
    "render_card_html": "keel.train.card",
    "render_card_markdown": "keel.train.card",
    "report_of": "keel.train.report",
    "rollback": "keel.train.promotion",
    "spec_from_dict": "keel.train.spec",
    "Split": "keel.train.spec",
    "train": "keel.train.trainer",
    "TrainResult": "keel.train.trainer",
    "TrainSpec": "keel.train.spec",
}

if TYPE_CHECKING:
    from keel.train.card import (
        render_card_html as render_card_html,
        render_card_markdown as render_card_markdown,
    )
    from keel.train.explain import shap_values as shap_values
    from keel.train.features import to_pandas as to_pandas
    from keel.train.gates import check_gates as check_gates, parse_gate as parse_gate
    from keel.train.metrics import (
        LOWER_IS_BETTER as LOWER_IS_BETTER,
        score as score,
        weighted_binary as weighted_binary,
        weighted_regression as weighted_regression,
    )
    from keel.train.onnx_export import export_onnx as export_onnx
    from keel.train.onnx_import import import_onnx as import_onnx
    from keel.train.promotion import (
        PromotionRefusedError as PromotionRefusedError,
        promote as promote,
        rollback as rollback,
    )
    from keel.train.ray_scoring import score_file_ray as score_file_ray
    from keel.train.reference import (
        EMPTY_REFERENCE as EMPTY_REFERENCE,
        CategoricalReference as CategoricalReference,
        NumericReference as NumericReference,
        ReferenceProfile as ReferenceProfile,
    )
    from keel.train.report import (
        EvaluationReport as EvaluationReport,
        GateResult as GateResult,
        report_of as report_of,
    )
    from keel.train.scoring import ScoreResult as ScoreResult, score_file as score_file
    from keel.train.spec import (
        Split as Split,
        TrainSpec as TrainSpec,
        load_spec as load_spec,
        spec_from_dict as spec_from_dict,
    )
    from keel.train.sql_sink import (
        SqlSink as SqlSink,
        TableResult as TableResult,
        score_to_sql as score_to_sql,
    )
    from keel.train.trainer import (
        Candidate as Candidate,
        FailedCandidate as FailedCandidate,
        TrainResult as TrainResult,
        pareto_front as pareto_front,
        recommend as recommend,
        train as train,
    )


__getattr__ = lazy_getattr("keel.train", _NAMES)

__all__ = sorted(_NAMES)
