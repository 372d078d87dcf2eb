"""Alert rules: each class fires on its condition with its evidence, stays quiet otherwise, and
the settings' kinds are exactly the registered classes."""

from __future__ import annotations

import dataclasses

import pytest
from status_factories import DAY, T0, make_recent, make_status, make_window

from keel.monitor import (
    DEFAULT_RULES,
    RULES,
    AlertRule,
    DriftRule,
    ErrorRateRule,
    EstimatedPerformanceRule,
    LatencyP99Rule,
    PerformanceRule,
    UnseenCategoriesRule,
    rule_from_section,
    rules_from_settings,
)
from keel.store import ALERT_RULE_KINDS, AlertRuleSection


class TestDriftRule:
    def test_fires_when_enough_columns_drift_in_enough_windows_in_a_row(self) -> None:
        """Two columns drifted in each of the last two judged windows fire a 2-window rule."""
        status = make_status(
            (make_window(0), make_window(1, drifted=("a", "b")), make_window(2, drifted=("a", "b")))
        )

        alerts = DriftRule("feature_drift", 2, windows=2, trigger=True).check(status)

        assert len(alerts) == 1
        a = alerts[0]
        assert (a.model, a.rule, a.severity, a.trigger) == (
            "fraud",
            "feature_drift",
            "warning",
            True,
        )
        assert a.window_start == T0 + DAY * 2
        assert a.message == "2 columns show drift for 2 windows in a row: a, b"
        assert a.evidence == {
            "version": 1,
            "columns": ["a", "b"],
            "windows": [(T0 + DAY * 1).isoformat(), (T0 + DAY * 2).isoformat()],
            "statistics": {
                c: {"method": "wasserstein", "statistic": 0.2, "p_value": 0.001, "psi": 0.0}
                for c in ("a", "b")
            },
        }

    def test_quiet_when_the_run_is_shorter_than_windows(self) -> None:
        """Drift in only the last window does not fire a rule asking for two in a row."""
        status = make_status((make_window(0), make_window(1, drifted=("a", "b", "c"))))

        assert DriftRule("d", 1, windows=2).check(status) == []

    def test_quiet_when_the_newest_window_is_calm(self) -> None:
        """A run that ended before the newest judged window does not fire."""
        status = make_status(
            (make_window(0, drifted=("a",)), make_window(1, drifted=("a",)), make_window(2))
        )

        assert DriftRule("d", 1, windows=2).check(status) == []

    def test_ignores_open_and_unjudged_windows(self) -> None:
        """Windows still open or with too few rows neither count nor break the run."""
        status = make_status(
            (
                make_window(0, drifted=("a",)),
                make_window(1, drifted=("a",)),
                make_window(2, judged=False, rows=10),
                make_window(3, complete=False),
            )
        )

        alerts = DriftRule("d", 1, windows=2).check(status)

        assert [a.window_start for a in alerts] == [T0 + DAY * 1]

    def test_psi_counts_columns_and_the_output_over_psi_threshold(self) -> None:
        """With statistic psi, every column and the output over psi_threshold count."""
        status = make_status((make_window(0, psi=0.3, output_psi=0.5, columns=("a",)),))

        alerts = DriftRule("psi", 2, statistic="psi", psi_threshold=0.2).check(status)

        assert alerts[0].evidence["columns"] == ["a", "__output__"]
        assert alerts[0].message.startswith("2 columns show PSI > 0.2 for 1 windows")
        assert DriftRule("psi", 3, statistic="psi").check(status) == []

    def test_no_windows_no_alert(self) -> None:
        """A status without judged windows raises nothing."""
        assert DriftRule("d", 0).check(make_status()) == []

    def test_refuses_an_unknown_statistic_by_name(self) -> None:
        """statistic is 'verdict' or 'psi'."""
        with pytest.raises(ValueError, match="drift rule 'd' has statistic 'ks'; expected"):
            DriftRule("d", 1, statistic="ks")  # type: ignore[arg-type]


class TestPerformanceRule:
    def test_fires_when_the_interval_is_wholly_below_training(self) -> None:
        """A drop of at least threshold whose 95 % interval ends below training fires."""
        status = make_status(recent=make_recent(0.80, 0.78, 0.82))

        alerts = PerformanceRule("auc_drop", 0.03, severity="critical").check(status)

        assert len(alerts) == 1
        assert alerts[0].window_start == T0 + DAY * 6
        assert alerts[0].evidence == {
            "version": 1,
            "metric": "roc_auc",
            "value": 0.80,
            "low": 0.78,
            "high": 0.82,
            "training": 0.9,
            "drop": pytest.approx(0.1),
            "labels": 2000,
            "windows": 7,
        }
        assert alerts[0].severity == "critical"

    def test_quiet_when_the_interval_reaches_training(self) -> None:
        """A drop not significant (the interval reaches training's figure) does not fire."""
        status = make_status(recent=make_recent(0.80, 0.70, 0.91))

        assert PerformanceRule("p", 0.03).check(status) == []

    def test_quiet_when_the_drop_is_under_threshold(self) -> None:
        """A significant but small drop does not fire."""
        status = make_status(recent=make_recent(0.89, 0.885, 0.895))

        assert PerformanceRule("p", 0.03).check(status) == []

    def test_lower_is_better_metrics_count_a_rise_as_the_drop(self) -> None:
        """For rmse, a rise whose interval is wholly above training fires."""
        status = make_status(
            metric="rmse", training={"rmse": 1.0}, recent=make_recent(1.5, 1.4, 1.6)
        )

        alerts = PerformanceRule("rmse_rise", 0.2).check(status)

        assert alerts[0].evidence["drop"] == pytest.approx(0.5)

    def test_quiet_without_labels_or_interval(self) -> None:
        """No pooled figure, or one without an interval, raises nothing."""
        no_interval = dataclasses.replace(make_recent(0.5, 0.4, 0.6), low=None, high=None)

        assert PerformanceRule("p", 0.0).check(make_status()) == []
        assert PerformanceRule("p", 0.0).check(make_status(recent=no_interval)) == []


class TestEstimatedPerformanceRule:
    def test_fires_on_the_newest_judged_window_below_the_holdouts_estimate(self) -> None:
        """The newest judged window's estimate at least threshold below the holdout's fires."""
        training = {"roc_auc": 0.9, "estimated_roc_auc": 0.85}
        status = make_status(
            (
                make_window(0, estimated={"roc_auc": 0.70}),
                make_window(1, estimated={"roc_auc": 0.80}),
            ),
            training=training,
        )

        alerts = EstimatedPerformanceRule("est", 0.03).check(status)

        assert [a.window_start for a in alerts] == [T0 + DAY * 1]
        assert alerts[0].evidence == {
            "version": 1,
            "metric": "roc_auc",
            "estimated": 0.80,
            "reference": 0.85,
        }

    def test_quiet_above_the_threshold_or_without_an_estimate(self) -> None:
        """A small drop, a window without an estimate, or no holdout estimate: nothing."""
        training = {"estimated_roc_auc": 0.85}
        small = make_status((make_window(0, estimated={"roc_auc": 0.84}),), training=training)
        none = make_status((make_window(0, estimated={"roc_auc": None}),), training=training)
        no_base = make_status((make_window(0, estimated={"roc_auc": 0.1}),))

        for status in (small, none, no_base):
            assert EstimatedPerformanceRule("est", 0.03).check(status) == []


@pytest.mark.parametrize(
    ("rule", "figure", "over", "under"),
    [
        (ErrorRateRule("error_rate", 0.01), "error_rate", 0.02, 0.01),
        (LatencyP99Rule("latency_p99", 250.0), "latency_p99_ms", 500.0, 250.0),
        (UnseenCategoriesRule("unseen_categories", 0.01), "unseen_share", 0.5, 0.0),
    ],
    ids=lambda x: getattr(x, "kind", None),
)
def test_window_figure_rules_fire_over_their_threshold(
    rule: AlertRule, figure: str, over: float, under: float
) -> None:
    """A figure of the newest judged window over the threshold fires; at it, nothing."""
    fires = make_status((make_window(0), make_window(1, **{figure: over})))
    quiet = make_status((make_window(0, **{figure: over}), make_window(1, **{figure: under})))

    alerts = rule.check(fires)

    assert [a.window_start for a in alerts] == [T0 + DAY * 1]
    assert alerts[0].evidence == {
        "version": 1,
        "value": over,
        "threshold": rule.threshold,
        "rows": 500,
    }
    assert alerts[0].message == (
        f"{rule.kind.replace('_', ' ')} {over:.4g} over {rule.threshold:g} in window 2025-03-02 00:00"
    )
    assert rule.check(quiet) == []


def test_latency_rule_is_quiet_without_a_latency() -> None:
    """A window that measured no latency raises no latency alert."""
    status = make_status((make_window(0, latency_p99_ms=None),))

    assert LatencyP99Rule("l", 1.0).check(status) == []


def test_every_kind_of_the_settings_has_one_rule_class() -> None:
    """The kinds settings accept are exactly the registered classes, each under its kind."""
    assert sorted(RULES) == sorted(ALERT_RULE_KINDS)
    assert all(cls.kind == kind for kind, cls in RULES.items())


def test_rules_are_built_from_sections_with_the_class_defaults() -> None:
    """A section gives its keys; what it leaves out keeps the rule class's default."""
    section = AlertRuleSection.model_validate(
        {"name": "drift", "kind": "drift", "threshold": 3, "windows": 2, "trigger": True}
    )

    rule = rule_from_section(section)

    assert rule == DriftRule("drift", 3, windows=2, trigger=True)
    assert rule.cooldown_s == 24 * 3600
    assert rules_from_settings([]) == DEFAULT_RULES
    assert rules_from_settings([section]) == (rule,)
