"""Feedback labels cleaned by the contract's target rules and checked against the model.

A label sent as it appears in a raw file (`' <=50K'`, `'NA'`, `'1'` for a 0/1 column) is
cleaned as the data layer cleans the target column when a dataset version is made (trimmed,
its case rule applied, missing markers read as missing, converted to the column's type), so
it matches the classes the model was trained on. A label that is then missing, of the wrong
type, or not one of the model's classes (a regression label that is not a number) is refused
by name, with the reason; it would otherwise be stored and match nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel.data import Column, Contract, RecordChecker


@dataclass(frozen=True)
class RefusedLabel:
    """A label not stored, and why."""

    prediction_id: str
    label: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        label = self.label
        if not (label is None or isinstance(label, str | int | float | bool)):
            label = repr(label)
        return {"prediction_id": self.prediction_id, "label": label, "reason": self.reason}


class LabelChecker:
    """Cleans and checks the labels of one model version.

    Args:
        contract: the model's contract (its target column's rules clean the labels).
        target: the name of the target column.
        task: "classification" or "regression".
        classes: a classifier's classes, as the model names them.
    """

    def __init__(
        self, contract: Contract, target: str | None, task: str, classes: Sequence[str]
    ) -> None:
        self.contract = contract
        self.target = target
        self.task = task
        self.classes = tuple(str(c) for c in classes)
        self._classes = set(self.classes)
        column = (
            contract.column(target) if target is not None and target in contract.names else None
        )
        if column is None:
            # no rules for the target: a label is at least trimmed and missing markers read
            column = Column(target or "label", "float" if task == "regression" else "string")
        # a missing label is refused here with its own reason, and a label outside the
        # categories by the model's classes (what it can be compared with)
        column = dataclasses.replace(
            column, role="feature", nullable=True, categories=None, format=None, anonymize=None
        )
        contract = Contract(contract.name, (column,), missing_markers=contract.missing_markers)
        self._column = column
        self._checker = RecordChecker(contract, [column.name])

    def check(
        self, labels: Sequence[tuple[str, Any]]
    ) -> tuple[list[tuple[str, str]], list[RefusedLabel]]:
        """The accepted labels, cleaned, as (prediction id, label as the log stores it), and
        the refused ones with their reasons."""
        accepted: list[tuple[str, str]] = []
        refused: list[RefusedLabel] = []
        for pid, raw in labels:
            value, reason = self._clean(raw)
            if reason is not None:
                refused.append(RefusedLabel(pid, raw, reason))
            else:
                accepted.append((pid, value))
        return accepted, refused

    def _clean(self, raw: Any) -> tuple[str, str | None]:
        if isinstance(raw, dict | list):
            return "", "a label is one value, not a list or an object"
        if self.task == "regression" and isinstance(raw, bool):
            return "", "a regression label must be a number"
        clean, errors = self._checker.check([{self._column.name: raw}])
        if errors:
            error = errors[0]
            if self.task == "regression" and error.rule == "type":
                return "", "a regression label must be a number"
            return "", f"expected {error.expected} (the rules of target {self._column.name!r})"
        value = clean[0][self._column.name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "", "missing label (null or a missing marker)"
        if self.task == "regression":
            return str(float(value)), None
        text = str(value)
        if text not in self._classes:
            shown = ", ".join(repr(c) for c in self.classes[:20])
            more = " ..." if len(self.classes) > 20 else ""
            return "", f"not one of the model's classes: {shown}{more}"
        return text, None
