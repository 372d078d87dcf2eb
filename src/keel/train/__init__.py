"""Train: fit candidates from specs, evaluate them (holdout, overfit, segments, fairness,
explanations, runtime, reference profile), gate them, write cards, register the passing ones."""

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
