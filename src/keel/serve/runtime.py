"""A loaded model version ready to answer: input checks, batched prediction, explanations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.data import Contract, RecordChecker
from keel.monitor import ProfileSpec
from keel.registry import ModelStore, ResolvedVersion
from keel.serve.errors import RequestError
from keel.serve.fastpath import compile_forward
from keel.serve.trees import compile_trees, tree_max_rows, tree_tolerance
from keel.train import EvaluationReport, report_of


@dataclass
class Prediction:
    """One row's answer."""

    prediction: Any
    probabilities: list[float] | None
    version: int | None = None  # set when a segment's own version answered the row


def typed_classes(classes: list[Any], contract: Contract, target: str | None) -> list[Any]:
    """The classes with the type of the label: the training report stores them as strings
    ("0", "True"), so a model of an int or bool target would answer "1" where its caller sent
    and expects 1. The target's type in the version's contract says what they were; versions
    registered before and after this reading answer alike."""
    names = {c.name: c.type for c in contract.columns}
    kind = names.get(target) if target is not None else None
    try:
        if kind == "int":
            return [int(c) for c in classes]
        if kind == "float":
            return [float(c) for c in classes]
        if kind == "bool":
            truth = {"true": True, "false": False, "1": True, "0": False}
            return [c if isinstance(c, bool) else truth[str(c).lower()] for c in classes]
    except (KeyError, TypeError, ValueError):  # not the label's text: keep what was stored
        return classes
    return classes


class ModelRuntime:
    """One version in memory: its pipeline, its input contract, its classes."""

    def __init__(
        self,
        resolved: ResolvedVersion,
        pipeline: Any,
        contract: Contract,
        evaluation: EvaluationReport,
    ) -> None:
        self.resolved = resolved
        self.pipeline = pipeline
        self.contract = contract
        self.features: list[str] = list(evaluation.features)
        self.categorical = set(evaluation.categorical)
        self.classes: list[Any] = typed_classes(
            list(evaluation.classes), contract, evaluation.target
        )
        self.task: str = evaluation.task
        self.target: str | None = evaluation.target
        self.explanations = evaluation.explanations
        self.profile_spec = ProfileSpec.from_evaluation(evaluation)
        # sensitive attributes a request carries are logged beside the inputs (fairness per
        # group, and retraining with fairness gates, need them); never those with an
        # anonymization rule, which the log could not apply
        self.logged_extra = [
            c.name
            for c in contract.with_role("sensitive")
            if c.anonymize is None and c.name not in self.features
        ]
        # every logged value is checked by the contract first (type, categories, length, no
        # nested JSON): the log feeds the dashboard. The sensitive ones may be left out.
        self.checker = RecordChecker(
            contract, [*self.features, *self.logged_extra], optional=self.logged_extra
        )
        segs = contract.with_role("segment")
        self.segment = segs[0].name if segs else None
        # (forward, estimator, batch tree evaluator or None), once proven equal at load
        self._fast: tuple[Any, Any, Any] | None = None
        # the largest batch the tree evaluator answers (None: any); larger go to the estimator
        self.tree_max_rows: int | None = None

    @classmethod
    def load(cls, models: ModelStore, resolved: ResolvedVersion) -> ModelRuntime:
        """Load (hash and contents checked) and warm up with one row of the reference data."""
        version = models.get(resolved.ref)
        runtime = cls(
            resolved,
            models.load_artifact(resolved),
            models.contract(resolved.ref),
            report_of(version),
        )
        runtime.warm_up()
        return runtime

    @property
    def ref(self) -> str:
        return self.resolved.ref

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Cleaned records as the model's input frame (the same typing as training)."""
        data: dict[str, Any] = {}
        for f in self.features:
            values = [r.get(f) for r in rows]
            if f in self.categorical:
                data[f] = np.asarray(["" if v is None else str(v) for v in values], dtype=object)
            else:
                data[f] = np.asarray(
                    [np.nan if v is None else v for v in values], dtype=np.float32
                ).astype(np.float64)
        return pd.DataFrame(data)

    def _outputs(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if self._fast is not None:
            forward, model, trees = self._fast
            x = forward(rows)
            if trees is not None and (self.tree_max_rows is None or len(x) <= self.tree_max_rows):
                return trees(x)  # type: ignore[no-any-return]
            return np.asarray(model.predict_proba(x) if self._proba else model.predict(x))
        x = self.frame(rows)
        return np.asarray(
            self.pipeline.predict_proba(x) if self._proba else self.pipeline.predict(x)
        )

    @property
    def _proba(self) -> bool:
        return self.task == "classification" and hasattr(self.pipeline, "predict_proba")

    def predict(self, rows: list[dict[str, Any]]) -> list[Prediction]:
        if self._proba:
            proba = self._outputs(rows)
            best = proba.argmax(axis=1)
            return [
                Prediction(self.classes[int(b)] if self.classes else int(b), p.tolist())
                for b, p in zip(best, proba, strict=True)
            ]
        out = self._outputs(rows).astype(float)
        return [Prediction(float(v), None) for v in out]

    def warm_up(self) -> None:
        """Answer the training background rows once; switch to the NumPy fast path if it
        gives exactly the pipeline's outputs on them."""
        bg = self.explanations.get("background") or {}
        if not (bg and all(f in bg for f in self.features)):
            return
        n = len(bg[self.features[0]])
        rows = [
            {f: (None if bg[f][i] == "" else bg[f][i]) for f in self.features} for i in range(n)
        ]
        slow = self._outputs(rows)
        compiled = compile_forward(self.pipeline, self.features, self.categorical)
        if compiled is None:
            return
        forward, model = compiled
        self._fast = (forward, model, None)
        try:
            fast = self._outputs(rows)
        except Exception:  # any mismatch in structure: keep the pipeline
            self._fast = None
            return
        if fast.shape != slow.shape or not np.allclose(fast, slow, rtol=0, atol=1e-12):
            self._fast = None
            return
        trees = compile_trees(model)
        if trees is None:
            return
        try:
            tol = tree_tolerance(model)
            out = trees(forward(rows))
            same = out.shape == fast.shape and (
                np.array_equal(out, fast) if tol == 0 else np.allclose(out, fast, rtol=0, atol=tol)
            )
        except Exception:  # a structure the evaluator misread: keep the estimator
            same = False
        if same:
            self._fast = (forward, model, trees)
            self.tree_max_rows = tree_max_rows(model)

    @property
    def fast_path(self) -> bool:
        return self._fast is not None

    def explain(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """SHAP values per input feature, against the background rows stored at training."""
        from keel.train import shap_values

        if getattr(self.pipeline, "format", None) == "onnx" or not self.explanations.get(
            "background"
        ):
            msg = (
                f"Explanations are not available for {self.ref}: it is an imported ONNX graph, "
                "and keel computes SHAP values only for the models it trains. Use /predict."
            )
            raise RequestError(msg)
        bg = pd.DataFrame(self.explanations["background"])[self.features]
        values, base, features = shap_values(self.pipeline, bg, self.frame(rows), self.features)
        return {
            "features": features,
            "values": values.round(6).tolist(),
            "expected_value": float(np.asarray(base).reshape(-1)[-1]),
        }
