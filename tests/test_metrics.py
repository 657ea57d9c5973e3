import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from deepspot_sd.metrics import (
    MatchResult,
    aggregate_scores,
    f1_integral,
    localization_rmse,
    match_hungarian,
    match_kdtree,
    score_images,
)

MATCHERS = [match_kdtree, match_hungarian]
EMPTY = np.zeros((0, 2))


@pytest.mark.parametrize("match", MATCHERS)
@pytest.mark.parametrize("empty", [EMPTY, [], np.zeros(0)])
def test_empty_sets(match, empty):
    both = match(empty, empty)
    assert (both.tp, both.fp, both.fn, both.am) == (0, 0, 0, 0)
    assert (both.precision, both.recall, both.f1) == (1.0, 1.0, 1.0)
    assert np.isnan(both.rmse) and both.pairs.shape == (0, 2)
    no_pred = match([[1.0, 1.0], [5.0, 5.0]], empty)
    assert (no_pred.tp, no_pred.fp, no_pred.fn) == (0, 0, 2)
    assert (no_pred.precision, no_pred.recall, no_pred.f1) == (0.0, 0.0, 0.0)
    no_true = match(empty, [[1.0, 1.0]])
    assert (no_true.tp, no_true.fp, no_true.fn) == (0, 1, 0)
    assert (no_true.precision, no_true.recall, no_true.f1) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("match", MATCHERS)
def test_perfect_and_partial(match):
    true = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0]])
    pred = np.array([[10.0, 11.0], [20.0, 20.0], [30.0, 30.0], [90.0, 90.0], [50.0, 50.0]])
    res = match(true, pred, radius=3.0)
    assert isinstance(res, MatchResult)
    assert (res.n_true, res.n_pred, res.tp, res.fp, res.fn, res.am) == (4, 5, 3, 2, 1, 0)
    assert_allclose([res.precision, res.recall, res.f1], [3 / 5, 3 / 4, 6 / 9])
    assert_array_equal(res.pairs, [[0, 0], [1, 1], [2, 2]])
    assert_allclose(res.rmse, np.sqrt(1 / 3))


@pytest.mark.parametrize("match", MATCHERS)
def test_point_exactly_at_radius_matches(match):
    true = np.array([[0.0, 0.0], [10.0, 10.0]])
    pred = np.array([[3.0, 0.0], [10.0, 13.0 + 1e-9]])
    res = match(true, pred, radius=3.0)
    assert res.tp == 1 and res.fp == 1 and res.fn == 1
    assert_array_equal(res.pairs, [[0, 0]])
    assert_allclose(res.distances, [3.0])


def test_kdtree_ambiguous_match():
    # two true spots share one detection (paper Fig. 4)
    res = match_kdtree([[10.0, 10.0], [10.0, 12.0]], [[10.0, 11.0]])
    assert (res.tp, res.fp, res.fn, res.am) == (1, 0, 1, 1)
    assert_allclose([res.precision, res.recall], [1.0, 0.5])
    # three true spots on one detection still count as one ambiguous match
    res = match_kdtree([[0.0, 0.0], [0.0, 2.0], [2.0, 1.0], [50.0, 50.0]], [[0.5, 1.0], [50.0, 51.0]])
    assert (res.tp, res.fp, res.fn, res.am) == (2, 0, 2, 1)
    assert_array_equal(res.pairs, [[0, 0], [3, 1]])


@pytest.mark.parametrize("match", MATCHERS)
def test_duplicate_detections(match):
    # two detections on one true spot: one TP, one FP
    res = match([[5.0, 5.0]], [[5.0, 5.0], [5.0, 5.0]])
    assert (res.tp, res.fp, res.fn, res.am) == (1, 1, 0, 0)
    # duplicated true spots: one TP, one FN; for the k-d tree also one ambiguous match
    res = match([[5.0, 5.0], [5.0, 5.0]], [[5.0, 6.0]])
    assert (res.tp, res.fp, res.fn) == (1, 0, 1)
    assert res.am == (1 if match is match_kdtree else 0)


def test_hungarian_vs_kdtree():
    true = np.array([[0.0, 0.0], [0.0, 2.4]])
    pred = np.array([[0.0, 1.0], [0.0, 4.0]])
    kd = match_kdtree(true, pred)
    hu = match_hungarian(true, pred)
    assert (kd.tp, kd.fp, kd.fn, kd.am) == (1, 1, 1, 1)
    assert (hu.tp, hu.fp, hu.fn, hu.am) == (2, 0, 0, 0)
    assert_array_equal(hu.pairs, [[0, 0], [1, 1]])
    assert_allclose(hu.distances, [1.0, 1.6])
    # Hungarian takes the most pairs (A-Q, B-P: total 4.5) before the smallest distance (A-P alone: 2)
    hu = match_hungarian([[0.0, 0.0], [0.0, 4.0]], [[0.0, 2.0], [0.0, -2.5]])
    assert_array_equal(hu.pairs, [[0, 1], [1, 0]])
    assert_allclose(hu.distances, [2.5, 2.0])


def test_hungarian_many_spots_matches_exactly_shifted_copy():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 2000, size=(5000, 2))
    pred = true + rng.normal(0, 0.3, true.shape)
    res = match_hungarian(true, pred[::-1])
    assert res.tp == 5000
    assert_array_equal(res.pairs[:, 1], 4999 - res.pairs[:, 0])


def test_f1_integral_known_values():
    true = np.array([[0.0, 0.0]])
    # F1 is 0 at radii 0 and 1 and 1 at radii 2 and 3: trapezoid 1.5 over 3
    assert f1_integral(true, [[0.0, 1.5]], max_radius=3.0, n_radii=4) == pytest.approx(0.5)
    assert f1_integral(true, [[0.0, 0.0]]) == pytest.approx(1.0)
    assert f1_integral(true, [[0.0, 5.0]]) == pytest.approx(0.0)
    assert f1_integral(EMPTY, EMPTY) == pytest.approx(1.0)
    # half the spots exact, half 1.5 px off: mean of 1 and about 0.5
    true = np.array([[0.0, 0.0], [10.0, 10.0]])
    value = f1_integral(true, [[0.0, 0.0], [10.0, 11.5]], max_radius=3.0, n_radii=301)
    assert value == pytest.approx(0.75, abs=0.005)
    with pytest.raises(ValueError, match="n_radii"):
        f1_integral(true, true, n_radii=1)


def test_localization_rmse():
    true = np.array([[0.0, 0.0], [10.0, 10.0], [20.0, 20.0]])
    pred = np.array([[0.0, 0.3], [10.4, 10.0], [40.0, 40.0]])
    assert localization_rmse(true, pred) == pytest.approx(np.sqrt((0.09 + 0.16) / 2))
    assert localization_rmse(true, pred, method="kdtree") == pytest.approx(np.sqrt((0.09 + 0.16) / 2))
    assert np.isnan(localization_rmse(true, EMPTY))


def test_invalid_input():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        match_kdtree(np.zeros((3, 3)), EMPTY)
    with pytest.raises(ValueError, match="NaN"):
        match_hungarian([[np.nan, 0.0]], EMPTY)
    with pytest.raises(ValueError, match="radius"):
        match_kdtree(EMPTY, EMPTY, radius=-1.0)
    with pytest.raises(ValueError, match="method"):
        score_images([EMPTY], [EMPTY], method="greedy")
    with pytest.raises(ValueError, match="detection arrays"):
        score_images([EMPTY, EMPTY], [EMPTY])


@pytest.mark.parametrize("method", ["kdtree", "hungarian"])
def test_score_images_and_aggregate(method):
    trues = [np.array([[0.0, 0.0], [10.0, 10.0]]), np.array([[5.0, 5.0]]), EMPTY]
    preds = [np.array([[0.0, 1.0]]), np.array([[5.0, 5.0], [30.0, 30.0]]), EMPTY]
    df = score_images(trues, preds, method=method)
    assert isinstance(df, pd.DataFrame) and len(df) == 3 and df.index.name == "image"
    assert_array_equal(df["tp"], [1, 1, 0])
    assert_allclose(df["f1"], [2 / 3, 2 / 3, 1.0])
    agg = aggregate_scores(df)
    assert list(agg.index) == ["mean", "pooled"]
    assert agg.loc["mean", "f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert agg.loc["mean", "precision"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert (agg.loc["pooled", "tp"], agg.loc["pooled", "fp"], agg.loc["pooled", "fn"]) == (2, 1, 1)
    assert agg.loc["pooled", "f1"] == pytest.approx(4 / 6)
    assert agg.loc["pooled", "rmse"] == pytest.approx(np.sqrt(1 / 2))
    assert (agg["n_images"] == 3).all()
    with pytest.raises(KeyError, match="Available columns"):
        aggregate_scores(df.drop(columns="tp"))
