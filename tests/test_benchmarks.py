"""Benchmarks exit non-zero when an acceptance line they print says FAIL."""

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
QUICK = ["--n-images", "1", "--n-family", "1", "--n-dense", "1", "--n-train", "1", "--peers", "none", "--no-write"]


@pytest.mark.slow
@pytest.mark.parametrize(("bar", "code"), [(0.5, 0), (1.01, 1)])
def test_accuracy_exit_code_follows_its_checks(monkeypatch, capsys, bar, code):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    accuracy = importlib.import_module("accuracy")
    acceptance = accuracy.acceptance

    def mean_f1_only(*args, **kwargs):  # the per-stratum comparisons are noise on one image per stratum
        return [check for check in acceptance(*args, **kwargs) if check[0].startswith("DeepSpot mean F1")]

    monkeypatch.setattr(accuracy, "acceptance", mean_f1_only)
    monkeypatch.setattr(accuracy, "TARGET_F1", bar)
    assert accuracy.main(QUICK) == code
    out = capsys.readouterr().out
    assert f"{'PASS' if code == 0 else 'FAIL'}: DeepSpot mean F1 >= {bar}" in out
