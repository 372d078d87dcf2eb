"""Settings sections that monitoring reads (`drift`, `performance`, `alert_rules`) are checked
when settings load: a typo or an unknown kind fails there, naming the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.store import AlertRuleSection, ConfigError, DriftSection, load_settings


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEEL_CONFIG", raising=False)
    for name in ("KEEL_DRIFT", "KEEL_PERFORMANCE", "KEEL_ALERT_RULES"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_typo_in_drift_names_the_valid_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_DRIFT with a misspelt key fails at load, naming it and the keys drift takes."""
    monkeypatch.setenv("KEEL_DRIFT", '{"psi_treshold": 1}')

    with pytest.raises(ConfigError) as exc:
        load_settings()

    assert str(exc.value) == (
        "Setting 'drift' has the value {'psi_treshold': 1}: unknown key 'psi_treshold' in "
        "drift; expected one of alpha, wasserstein, jensen_shannon, min_rows. "
        "Fix it in keel.toml or in the KEEL_DRIFT environment variable."
    )


def test_a_typo_in_performance_names_the_valid_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The performance section refuses unknown keys the same way."""
    monkeypatch.setenv("KEEL_PERFORMANCE", '{"min_label": 10}')

    with pytest.raises(ConfigError, match="expected one of min_coverage, min_labels, pool_windows"):
        load_settings()


def test_an_unknown_alert_rule_kind_in_keel_toml_names_the_valid_kinds(here: Path) -> None:
    """A mistyped kind used to never fire; now keel.toml fails to load, naming the kinds."""
    (here / "keel.toml").write_text(
        '[[alert_rules]]\nname = "drift"\nkind = "drfit"\nthreshold = 3\n'
    )

    with pytest.raises(ConfigError) as exc:
        load_settings()

    assert str(exc.value) == (
        "Setting 'alert_rules.0.kind' has the value 'drfit': unknown alert rule kind 'drfit'; "
        "expected one of drift, performance, estimated_performance, error_rate, latency_p99, "
        "unseen_categories. Fix it in keel.toml or in the KEEL_ALERT_RULES environment variable."
    )


def test_a_typo_in_an_alert_rule_names_the_valid_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """An alert rule with an unknown key fails, listing the keys a rule takes."""
    monkeypatch.setenv(
        "KEEL_ALERT_RULES", '[{"name": "d", "kind": "drift", "threshold": 1, "window": 2}]'
    )

    with pytest.raises(ConfigError, match=r"unknown key 'window' in an alert rule; expected one of name, kind, threshold, windows"):  # fmt: skip
        load_settings()


def test_drift_keys_on_other_kinds_are_refused() -> None:
    """windows, statistic and psi_threshold mean something to drift rules only."""
    with pytest.raises(ConfigError, match="alert rule 'e' of kind 'error_rate' takes no 'windows'"):
        load_settings(alert_rules=[{"name": "e", "kind": "error_rate", "threshold": 0.1, "windows": 3}])  # fmt: skip


def test_sections_load_from_keel_toml_and_keep_what_was_given(here: Path) -> None:
    """Given keys are typed; keys left out are not set (the monitor's defaults apply)."""
    (here / "keel.toml").write_text(
        "[drift]\nmin_rows = 30\n\n"
        '[[alert_rules]]\nname = "drift"\nkind = "drift"\nthreshold = 3\nwindows = 2\n'
        "trigger = true\n"
    )

    settings = load_settings()

    assert settings.drift == DriftSection(min_rows=30)
    assert settings.drift.given() == {"min_rows": 30}
    assert settings.performance.given() == {}
    assert settings.alert_rules == [
        AlertRuleSection(name="drift", kind="drift", threshold=3, windows=2, trigger=True)
    ]
