"""Train: fit candidates from specs, evaluate them (holdout, overfit, segments, fairness,
explanations, runtime, reference profile), gate them, write cards, register the passing ones.

Names load on first use (PEP 562): a server reading a version's `EvaluationReport` needs
neither scikit-learn's training stack nor the card templates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "Candidate": "keel.train.trainer",
    "check_gates": "keel.train.gates",
    "EvaluationReport": "keel.train.report",
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
    from keel.train.card import render_card_html, render_card_markdown
    from keel.train.gates import check_gates, parse_gate
    from keel.train.promotion import PromotionRefusedError, promote, rollback
    from keel.train.report import EvaluationReport, GateResult, report_of
    from keel.train.spec import Split, TrainSpec, load_spec, spec_from_dict
    from keel.train.trainer import (
        Candidate,
        FailedCandidate,
        TrainResult,
        pareto_front,
        recommend,
        train,
    )


__getattr__ = lazy_getattr("keel.train", _NAMES)

__all__ = [
    "Candidate",
    "EvaluationReport",
    "FailedCandidate",
    "GateResult",
    "PromotionRefusedError",
    "Split",
    "TrainResult",
    "TrainSpec",
    "check_gates",
    "load_spec",
    "pareto_front",
    "parse_gate",
    "promote",
    "recommend",
    "render_card_html",
    "render_card_markdown",
    "report_of",
    "rollback",
    "spec_from_dict",
    "train",
]
