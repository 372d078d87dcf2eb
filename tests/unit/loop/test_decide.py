"""`decide`, branch by branch: a pure function of what the loop sees, tested in milliseconds."""

from __future__ import annotations

import datetime as dt

import pytest

from keel.loop import Decision, LoopPolicy, Move, ShadowFigures, Situation, decide
from keel.loop.controller import drifted_since
from keel.monitor import ModelStatus, WindowStatus
from keel.monitor.compare import Backtest, PairedDifference, VersionComparison

NOW = dt.datetime(2025, 7, 10, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
POLICY = LoopPolicy(
    min_new_labels=100,
    retrain_cooldown_s=3 * 86400,
    shadow_max_wait_s=10 * 86400,
    backtest_min_labels=300,
    backtest_min_minority=30,
    health_min_requests=100,
    watch_s=7 * 86400,
    min_watch_rows=200,
)


def _seen(**kw: object) -> Situation:
    base: dict[str, object] = {"model": "fraud", "production": 2, "labelled_rows": 5000}
    return Situation(**{**base, **kw})  # type: ignore[arg-type]


def _difference(
    low: float, high: float, *, labels: int = 900, minority: int = 40
) -> PairedDifference:
    return PairedDifference(
        "roc_auc", labels, minority, 0.80, 0.80 + (low + high) / 2, (low + high) / 2, low, high
    )


def _backtest(low: float, high: float, **kw: int) -> Backtest:
    return Backtest(3, 2, NOW - 2 * DAY, 1000, _difference(low, high, **kw))


SHADOWED = [Move(NOW - 2 * DAY, "loop.retrain"), Move(NOW - 2 * DAY, "alias.set", "shadow", 3)]
HEALTHY = ShadowFigures(requests=600, labels=0, agreement=0.97)


class TestRetrain:
    def test_a_trigger_alert_retrains(self) -> None:
        """An open trigger alert, labels enough, no recent retrain: retrain production."""
        d = decide(_seen(triggers=("feature_drift",)), [], POLICY, NOW)

        assert (d.action, d.acted, d.version) == ("retrain", True, 2)
        assert d.reason == "retrain (alert(s) feature_drift)"

    def test_nothing_to_do_without_a_trigger(self) -> None:
        """No trigger, no schedule, nothing in play: nothing to do."""
        assert decide(_seen(), [], POLICY, NOW) == Decision("none", "nothing to do", acted=False)

    def test_the_schedule_retrains(self) -> None:
        """With `retrain_every_s`, a retrain that old is due without any alert."""
        policy = POLICY.model_copy(update={"retrain_every_s": 2 * 86400})
        moves = [Move(NOW - 3 * DAY, "loop.retrain")]

        d = decide(_seen(), moves, policy, NOW)

        assert d.action == "retrain"
        assert d.numbers["trigger"] == "schedule"

    def test_cool_down_waits(self) -> None:
        """A trigger within the cool-down after the last retrain waits, saying how long ago."""
        d = decide(_seen(triggers=("auc_drop",)), [Move(NOW - DAY, "loop.retrain")], POLICY, NOW)

        assert (d.action, d.acted) == ("wait", False)
        assert d.reason == "retrain wanted but the last one was 1.0 days ago (cool-down 3 days)"

    def test_by_hand_skips_the_cool_down(self) -> None:
        """A retrain by hand ignores the cool-down."""
        d = decide(_seen(forced_retrain=True), [Move(NOW - DAY, "loop.retrain")], POLICY, NOW)

        assert d.action == "retrain"
        assert d.numbers["trigger"] == "by hand"

    def test_too_few_labels_waits(self) -> None:
        """Without `min_new_labels` labelled rows, the retrain waits."""
        d = decide(_seen(triggers=("auc_drop",), labelled_rows=40), [], POLICY, NOW)

        assert d.action == "wait"
        assert d.reason == "retrain wanted (alert(s) auc_drop) but only 40 labelled rows of 100"

    def test_dry_run_says_what_it_would_do(self) -> None:
        """A dry run returns the same decision, not acted, worded as what it would do."""
        d = decide(_seen(triggers=("feature_drift",)), [], POLICY, NOW, dry_run=True)

        assert (d.action, d.acted) == ("retrain", False)
        assert d.reason == "would retrain (alert(s) feature_drift)"


class TestChallenger:
    def test_a_confident_backtest_promotes_at_once(self) -> None:
        """The backtest's whole interval above the margin and the shadow healthy: promote."""
        seen = _seen(shadow=3, shadow_figures=HEALTHY, backtest=_backtest(0.02, 0.09))

        d = decide(seen, SHADOWED, POLICY, NOW)

        assert (d.action, d.version) == ("promote", 3)
        assert "beat fraud@2 in the backtest" in d.reason
        assert d.numbers["backtest"]["difference"]["low"] == 0.02

    def test_a_confident_backtest_waits_for_serving_health(self) -> None:
        """A winning backtest still waits until the shadow answered `health_min_requests`."""
        seen = _seen(
            shadow=3, shadow_figures=ShadowFigures(20, 0, 1.0), backtest=_backtest(0.02, 0.09)
        )

        d = decide(seen, SHADOWED, POLICY, NOW)

        assert d.action == "wait"
        assert d.numbers["health"] == "waiting"

    def test_shadow_wait_while_the_backtest_has_few_labels(self) -> None:
        """Too few labelled rows of the rarer class: no verdict yet, wait."""
        seen = _seen(shadow=3, shadow_figures=HEALTHY, backtest=_backtest(0.02, 0.09, minority=5))

        d = decide(seen, SHADOWED, POLICY, NOW)

        assert (d.action, d.acted) == ("wait", False)
        assert d.reason.startswith(
            "shadow fraud@3: 600 requests, 0 labels; backtest on 900 rows (5 of the rarer class)"
        )

    def test_a_backtest_below_the_margin_rejects(self) -> None:
        """The whole interval below the margin: reject the challenger at once."""
        seen = _seen(shadow=3, shadow_figures=HEALTHY, backtest=_backtest(-0.05, -0.01))

        d = decide(seen, SHADOWED, POLICY, NOW)

        assert (d.action, d.version) == ("reject", 3)
        assert "did not beat fraud@2 in the backtest" in d.reason

    def test_no_winner_within_the_wait_rejects(self) -> None:
        """An undecided challenger older than `shadow_max_wait_s` is rejected."""
        moves = [Move(NOW - 11 * DAY, "alias.set", "shadow", 3)]
        seen = _seen(shadow=3, shadow_figures=HEALTHY, backtest=_backtest(-0.02, 0.03))

        d = decide(seen, moves, POLICY, NOW)

        assert d.action == "reject"
        assert d.reason == "no clear winner within the wait (10 days)"

    def test_the_shadow_judge_ignores_the_backtest(self) -> None:
        """`judge = "shadow"` (the earlier design) waits for labelled shadow requests."""
        policy = POLICY.model_copy(update={"judge": "shadow"})
        seen = _seen(shadow=3, shadow_figures=HEALTHY, backtest=_backtest(0.02, 0.09))

        assert decide(seen, SHADOWED, policy, NOW).action == "wait"

    def test_labelled_shadow_requests_promote(self) -> None:
        """Enough labelled shadow requests with the interval above the margin: promote."""
        policy = POLICY.model_copy(update={"judge": "shadow"})
        figures = ShadowFigures(1000, 400, 0.95, 0.04, 0.01, 0.07)

        d = decide(_seen(shadow=3, shadow_figures=figures), SHADOWED, policy, NOW)

        assert d.action == "promote"
        assert d.reason.startswith("fraud@3 beat fraud@2 on 400 labelled shadow requests")

    def test_a_win_goes_to_canary_first_when_configured(self) -> None:
        """With canary weights, a winner goes to canary at the first weight."""
        policy = POLICY.model_copy(update={"canary_weights": (0.1, 0.5)})
        seen = _seen(shadow=3, shadow_figures=HEALTHY, backtest=_backtest(0.02, 0.09))

        d = decide(seen, SHADOWED, policy, NOW)

        assert (d.action, d.version, d.weight) == ("canary", 3, 0.1)

    @pytest.mark.parametrize(
        ("weight", "action", "next_weight"), [(0.1, "canary", 0.5), (0.5, "promote", None)]
    )
    def test_canary_ramps_then_promotes(
        self, weight: float, action: str, next_weight: float | None
    ) -> None:
        """A healthy canary moves to the next weight, and after the last one to production."""
        policy = POLICY.model_copy(update={"canary_weights": (0.1, 0.5)})

        d = decide(_seen(canary=3, canary_weight=weight), [], policy, NOW)

        assert (d.action, d.version, d.weight) == (action, 3, next_weight)

    def test_a_failing_canary_is_rejected(self) -> None:
        """A canary whose error rate is over `rollback_error_rate` is rejected."""
        policy = POLICY.model_copy(update={"canary_weights": (0.1, 0.5)})

        d = decide(_seen(canary=3, canary_weight=0.1, canary_error_rate=0.05), [], policy, NOW)

        assert (d.action, d.reason) == ("reject", "canary error rate 5.00%")


def _watch(**kw: object) -> VersionComparison:
    base: dict[str, object] = {
        "before": 2, "after": 3, "since": NOW - 2 * DAY, "metric": "roc_auc", "rows": 600,
        "error_rate": 0.0, "estimated_after": 0.80, "estimated_before": 0.81, "live": None,
    }  # fmt: skip
    return VersionComparison(**{**base, **kw})  # type: ignore[arg-type]


MOVED = [Move(NOW - 2 * DAY, "alias.set", "production", 3, from_version=2)]


class TestWatch:
    def test_a_healthy_new_version_is_watched(self) -> None:
        """Within the watch period and no regression: wait, and nothing else happens."""
        seen = _seen(production=3, watch=_watch(), triggers=("feature_drift",))

        d = decide(seen, MOVED, POLICY, NOW)

        assert (d.action, d.acted) == ("wait", False)
        assert d.reason.startswith(
            "watching fraud@3 (production since 2025-07-08 00:00, 600 rows so far)"
        )

    def test_a_retrain_may_go_ahead_while_watching(self) -> None:
        """With `retrain_while_watching`, a due retrain is not held by a healthy watch (the
        challenger waits for the watch's end to be judged); a regression still rolls back."""
        policy = POLICY.model_copy(update={"retrain_while_watching": True})
        seen = _seen(production=3, watch=_watch(), triggers=("feature_drift",))

        d = decide(seen, MOVED, policy, NOW)

        assert (d.action, d.version) == ("retrain", 3)
        assert d.reason == "retrain (alert(s) feature_drift), while watching fraud@3"
        regressed = _seen(production=3, watch=_watch(estimated_after=0.5), triggers=("x",))
        assert decide(regressed, MOVED, policy, NOW).action == "rollback"

    def test_while_watching_a_pending_challenger_waits(self) -> None:
        """A shadow already in play is not judged, and no retrain replaces it, during a watch."""
        policy = POLICY.model_copy(update={"retrain_while_watching": True})
        seen = _seen(
            production=3, watch=_watch(), triggers=("feature_drift",), shadow=4,
            shadow_figures=HEALTHY, backtest=_backtest(0.02, 0.09),
        )  # fmt: skip

        d = decide(seen, MOVED, policy, NOW)

        assert (d.action, d.acted) == ("wait", False)
        assert d.reason.startswith("watching fraud@3")

    def test_while_watching_the_cool_down_still_holds(self) -> None:
        policy = POLICY.model_copy(update={"retrain_while_watching": True})
        seen = _seen(production=3, watch=_watch(), triggers=("feature_drift",))
        moves = [Move(NOW - 3 * DAY, "loop.retrain"), *MOVED]

        d = decide(seen, moves, policy.model_copy(update={"retrain_cooldown_s": 5 * 86400}), NOW)

        assert d.action == "wait"
        assert d.reason.startswith("watching fraud@3")

    def test_too_few_rows_keep_watching(self) -> None:
        """Before `min_watch_rows`, no verdict."""
        seen = _seen(production=3, watch=_watch(rows=50, estimated_after=0.5))

        assert decide(seen, MOVED, POLICY, NOW).action == "wait"

    def test_an_estimated_drop_rolls_back(self) -> None:
        """Scores that say the new version is far worse (before labels): roll back."""
        seen = _seen(production=3, watch=_watch(estimated_after=0.5))

        d = decide(seen, MOVED, POLICY, NOW)

        assert (d.action, d.version) == ("rollback", 2)
        assert d.reason == (
            "fraud@3 regressed within the watch period: estimated roc_auc 0.5000 is 0.3100 "
            "below the previous version's 0.8100"
        )

    def test_a_confident_live_drop_on_the_same_rows_rolls_back(self) -> None:
        """On the same labelled rows, worse by `rollback_drop` with the interval below 0."""
        live = PairedDifference("roc_auc", 800, 40, 0.85, 0.78, -0.07, -0.10, -0.04)

        d = decide(_seen(production=3, watch=_watch(live=live)), MOVED, POLICY, NOW)

        assert d.action == "rollback"
        assert "on the same 800 labelled rows" in d.reason

    def test_an_uncertain_live_drop_keeps_watching(self) -> None:
        """A drop whose interval reaches 0 is noise, not a regression."""
        live = PairedDifference("roc_auc", 800, 40, 0.85, 0.80, -0.05, -0.10, 0.01)

        assert (
            decide(_seen(production=3, watch=_watch(live=live)), MOVED, POLICY, NOW).action
            == "wait"
        )

    def test_an_error_rate_rolls_back(self) -> None:
        """A window's error rate over `rollback_error_rate`: roll back."""
        d = decide(_seen(production=3, watch=_watch(error_rate=0.1)), MOVED, POLICY, NOW)

        assert d.action == "rollback"
        assert d.reason.endswith("error rate 10.00% over 2.00%")

    def test_after_the_watch_period_the_loop_moves_on(self) -> None:
        """A move older than `watch_s` is not watched: other branches decide."""
        old = [Move(NOW - 8 * DAY, "alias.set", "production", 3, from_version=2)]

        assert (
            decide(_seen(production=3, watch=_watch(estimated_after=0.5)), old, POLICY, NOW).action
            == "none"
        )

    def test_a_rollback_is_not_watched(self) -> None:
        """After a rollback, the version back in production is not watched again."""
        moves = [*MOVED, Move(NOW - DAY, "alias.rollback", "production", 2, from_version=3)]

        assert decide(_seen(production=2), moves, POLICY, NOW).action == "none"

    def test_dry_run_rollback_is_not_acted(self) -> None:
        """A dry run names the rollback without acting."""
        d = decide(
            _seen(production=3, watch=_watch(error_rate=0.1)), MOVED, POLICY, NOW, dry_run=True
        )

        assert (d.action, d.acted) == ("rollback", False)


class TestPolicy:
    def test_a_mistyped_key_names_the_valid_ones(self) -> None:
        """A typo in the `loop` section is refused at load, naming the valid keys."""
        from keel.store import Settings

        with pytest.raises(
            ValueError,
            match=r"unknown loop setting 'shadow_max_wiat_s'; valid keys: backtest_holdout_days, backtest_min_labels, ",
        ):
            Settings(loop={"shadow_max_wiat_s": 3})

    def test_settings_carry_the_policy(self) -> None:
        """`Settings.loop` is the validated policy."""
        from keel.store import Settings

        assert Settings(loop={"judge": "shadow", "margin": -0.02}).loop == LoopPolicy(
            judge="shadow", margin=-0.02
        )


class TestRefresh:
    """A drifted production is replaced by a challenger trained on the drifted rows that is no
    worse in the backtest (`refresh_margin`), though it does not beat production."""

    REFRESH = POLICY.model_copy(update={"refresh_margin": 0.01})

    def _seen(self, low: float, high: float, **kw: object) -> Situation:
        base: dict[str, object] = {
            "shadow": 3,
            "shadow_figures": HEALTHY,
            "backtest": _backtest(low, high),
            "drifted_since": NOW - 6 * DAY,
            "trained_until": NOW - 3 * DAY,
        }
        return _seen(**{**base, **kw})

    def test_no_worse_on_drifted_inputs_refreshes(self) -> None:
        d = decide(self._seen(-0.008, 0.012), SHADOWED, self.REFRESH, NOW)

        assert (d.action, d.version) == ("promote", 3)
        assert "refreshes fraud@2, whose inputs drift since 2025-07-04 00:00" in d.reason
        assert "no worse in the backtest" in d.reason
        assert d.numbers["refresh"].startswith("whose inputs drift since")

    def test_a_refresh_goes_through_the_canary_ramp(self) -> None:
        policy = self.REFRESH.model_copy(update={"canary_weights": (0.2, 0.5)})

        d = decide(self._seen(-0.008, 0.012), SHADOWED, policy, NOW)

        assert (d.action, d.weight) == ("canary", 0.2)

    def test_a_clearly_worse_challenger_is_rejected(self) -> None:
        d = decide(self._seen(-0.05, -0.02), SHADOWED, self.REFRESH, NOW)

        assert (d.action, d.version) == ("reject", 3)
        assert "did not beat" in d.reason

    def test_below_production_on_the_rows_is_no_refresh(self) -> None:
        """Within the margin but below production on the backtest's rows: not "no worse"."""
        d = decide(self._seen(-0.009, 0.001), SHADOWED, self.REFRESH, NOW)

        assert d.action == "wait"

    def test_an_unsure_challenger_waits(self) -> None:
        """Lower bound below -refresh_margin, upper above 0: no verdict yet."""
        d = decide(self._seen(-0.03, 0.01), SHADOWED, self.REFRESH, NOW)

        assert d.action == "wait"

    def test_trained_before_the_drift_does_not_refresh(self) -> None:
        """A challenger whose rows end before the drift began knows no more than production:
        it is judged as any other (and here rejected: it does not beat production)."""
        seen = self._seen(-0.008, -0.001, trained_until=NOW - 7 * DAY)

        d = decide(seen, SHADOWED, self.REFRESH, NOW)

        assert d.action == "reject"

    def test_without_drift_no_refresh(self) -> None:
        d = decide(self._seen(-0.008, 0.012, drifted_since=None), SHADOWED, self.REFRESH, NOW)

        assert d.action == "wait"

    def test_off_by_default(self) -> None:
        d = decide(self._seen(-0.008, 0.012), SHADOWED, POLICY, NOW)

        assert d.action == "wait"

    def test_a_challenger_that_beats_production_is_no_refresh(self) -> None:
        d = decide(self._seen(0.01, 0.05), SHADOWED, self.REFRESH, NOW)

        assert d.action == "promote"
        assert "beat fraud@2 in the backtest" in d.reason
        assert "refresh" not in d.numbers

    def test_refresh_waits_for_serving_health(self) -> None:
        seen = self._seen(-0.008, 0.012, shadow_figures=ShadowFigures(20, 0, 1.0))

        d = decide(seen, SHADOWED, self.REFRESH, NOW)

        assert d.action == "wait"
        assert d.numbers["health"] == "waiting"


def _window(day: int, drifted: tuple[str, ...], *, judged: bool = True) -> WindowStatus:
    return WindowStatus(
        start=NOW - (10 - day) * DAY, version=2, rows=300, drift=(), drifted=drifted,
        output_drift=None, estimated={}, error_rate=0.0, latency_p99_ms=None,
        latency_counts=(), unseen_share=0.0, complete=True, judged=judged,
    )  # fmt: skip


def _status(*windows: WindowStatus) -> ModelStatus:
    return ModelStatus("fraud", 2, "classification", "roc_auc", {}, windows=windows)


class TestDriftedSince:
    def test_the_start_of_the_newest_unbroken_run(self) -> None:
        s = _status(_window(1, ("region",)), _window(2, ()), _window(3, ("region",)),
                    _window(4, ("region", "amount")), _window(5, ("amount",)))  # fmt: skip

        assert drifted_since(s) == NOW - 7 * DAY

    def test_windows_not_judged_are_skipped(self) -> None:
        s = _status(_window(3, ("region",)), _window(4, (), judged=False), _window(5, ("region",)))

        assert drifted_since(s) == NOW - 7 * DAY

    def test_one_drifted_window_is_not_yet_drift(self) -> None:
        assert drifted_since(_status(_window(4, ()), _window(5, ("region",)))) is None

    def test_none_when_the_newest_window_did_not_drift(self) -> None:
        assert (
            drifted_since(_status(_window(4, ("region",)), _window(5, ("region",)), _window(6, ())))
            is None
        )
        assert drifted_since(_status()) is None
