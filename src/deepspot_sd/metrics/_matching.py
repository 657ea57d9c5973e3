"""Matching detected spots to ground truth and scoring detections (paper §4.1, deepBlink, Spotiflow).

Conventions
-----------
* Spots are ``(n, 2)`` arrays of ``(row, col)`` in pixels; an empty list or a ``(0,)``/``(0, 2)`` array is an
  empty set.
* A detection at distance exactly ``radius`` from a true spot matches it: distances are compared with ``<=``.
* Ratios with a zero denominator are 0, except that when both sets are empty precision, recall and F1 are all 1
  (nothing to find and nothing found is a perfect result).
* ``F1 = 2 TP / (2 TP + FP + FN)``; for both matchings here ``FP = n_pred - TP`` and ``FN = n_true - TP``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from deepspot_sd._validation import check_positive

__all__ = [
    "MatchResult",
    "aggregate_scores",
    "f1_integral",
    "localization_rmse",
    "match_hungarian",
    "match_kdtree",
    "score_images",
]

Method = Literal["kdtree", "hungarian"]

_SCORE_COLUMNS = ["n_true", "n_pred", "tp", "fp", "fn", "am", "precision", "recall", "f1", "rmse"]


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Result of matching detections to true spots.

    Attributes
    ----------
    n_true, n_pred
        Number of true spots and of detections.
    tp, fp, fn
        True positives, false positives (``n_pred - tp``) and false negatives (``n_true - tp``).
    am
        Ambiguous matches: detections that are the nearest match of two or more true spots (k-d tree matching;
        always 0 for the one-to-one Hungarian matching).
    precision, recall, f1
        ``tp / n_pred``, ``tp / n_true`` and ``2 tp / (n_true + n_pred)``, with the empty-set rules of the module.
    rmse
        Root mean squared distance over the matched pairs in pixels; NaN without pairs.
    pairs
        ``int (tp, 2)`` matched ``(true index, detection index)`` pairs, one per true positive.
    distances
        ``float64 (tp,)`` distance of each pair in pixels.
    radius
        Matching radius in pixels.
    method
        ``"kdtree"`` or ``"hungarian"``.
    """

    n_true: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    am: int
    precision: float
    recall: float
    f1: float
    rmse: float
    pairs: np.ndarray = field(repr=False)
    distances: np.ndarray = field(repr=False)
    radius: float = 3.0
    method: str = "kdtree"

    def to_dict(self) -> dict[str, Any]:
        """Return the scalar scores as a dict (no pairs), e.g. for a :class:`pandas.DataFrame` row."""
        d = asdict(self)
        d.pop("pairs")
        d.pop("distances")
        return d


def _as_points(points: Any, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"`{name}` should be an (n, 2) array of (row, col) coordinates, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite coordinates.")
    return arr


def _check_radius(radius: float, name: str = "radius") -> float:
    check_positive(name, radius, allow_zero=True)
    return float(radius)


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else 0.0


def _result(
    n_true: int, n_pred: int, pairs: np.ndarray, dist: np.ndarray, am: int, radius: float, method: str
) -> MatchResult:
    tp = len(pairs)
    if n_true == 0 and n_pred == 0:
        precision = recall = f1 = 1.0
    else:
        precision, recall, f1 = _ratio(tp, n_pred), _ratio(tp, n_true), _ratio(2 * tp, n_true + n_pred)
    rmse = float(np.sqrt(np.mean(dist**2))) if tp else float("nan")
    return MatchResult(
        n_true=n_true,
        n_pred=n_pred,
        tp=tp,
        fp=n_pred - tp,
        fn=n_true - tp,
        am=am,
        precision=precision,
        recall=recall,
        f1=f1,
        rmse=rmse,
        pairs=pairs.astype(np.intp).reshape(-1, 2),
        distances=dist.astype(np.float64).reshape(-1),
        radius=radius,
        method=method,
    )


def match_kdtree(true: Any, pred: Any, *, radius: float = 3.0) -> MatchResult:
    """Match with a k-d tree: each true spot takes its one nearest detection within ``radius`` (paper §4.1).

    TP is the number of distinct detections that are the nearest match of some true spot; ``FP = n_pred - TP``;
    ``FN = n_true - TP``; an ambiguous match (AM) is a detection that is the nearest match of two or more true
    spots. A detection exactly at ``radius`` matches (``<=``). The reported pair of an ambiguous detection is its
    nearest true spot.

    Parameters
    ----------
    true
        ``(m, 2)`` true spot centres ``(row, col)``.
    pred
        ``(n, 2)`` detected centres ``(row, col)``.
    radius
        Matching radius in pixels (paper: 3).

    Returns
    -------
    Counts and scores as a :class:`MatchResult`.

    Examples
    --------
    >>> import numpy as np
    >>> from deepspot_sd.metrics import match_kdtree
    >>> res = match_kdtree(np.array([[10.0, 10.0], [10.0, 12.0]]), np.array([[10.0, 11.0]]))
    >>> res.tp, res.fn, res.am
    (1, 1, 1)
    """
    t, p = _as_points(true, "true"), _as_points(pred, "pred")
    radius = _check_radius(radius)
    empty = np.zeros((0, 2), dtype=np.intp)
    if len(t) == 0 or len(p) == 0:
        return _result(len(t), len(p), empty, np.zeros(0), 0, radius, "kdtree")
    # distance_upper_bound is exclusive in scipy: query just above the radius, then compare with <=
    dist, idx = cKDTree(p).query(t, k=1, distance_upper_bound=np.nextafter(radius, np.inf))
    ok = np.isfinite(dist) & (dist <= radius)
    t_idx, p_idx, d = np.flatnonzero(ok), idx[ok], dist[ok]
    if len(t_idx) == 0:
        return _result(len(t), len(p), empty, np.zeros(0), 0, radius, "kdtree")
    counts = np.bincount(p_idx, minlength=len(p))
    am = int(np.sum(counts >= 2))
    # one pair per matched detection: its nearest true spot (ties: lowest true index)
    order = np.lexsort((t_idx, d, p_idx))
    first = np.ones(len(order), dtype=bool)
    first[1:] = p_idx[order][1:] != p_idx[order][:-1]
    keep = order[first]
    pairs = np.column_stack([t_idx[keep], p_idx[keep]])
    return _result(len(t), len(p), pairs, d[keep], am, radius, "kdtree")


def match_hungarian(true: Any, pred: Any, *, radius: float = 3.0) -> MatchResult:
    """Match one-to-one with the Hungarian algorithm; pairs farther apart than ``radius`` are forbidden.

    The matching has the largest possible number of pairs within ``radius`` (``<=``), and among those the smallest
    total distance. Only pairs within the radius are built (k-d tree), and the assignment is solved separately on
    each connected group of such pairs with :func:`scipy.optimize.linear_sum_assignment`, so tens of thousands of
    spots are cheap.

    Parameters
    ----------
    true
        ``(m, 2)`` true spot centres ``(row, col)``.
    pred
        ``(n, 2)`` detected centres ``(row, col)``.
    radius
        Matching radius in pixels.

    Returns
    -------
    Counts and scores as a :class:`MatchResult` (``am`` is always 0).

    Examples
    --------
    >>> import numpy as np
    >>> from deepspot_sd.metrics import match_hungarian
    >>> match_hungarian(np.array([[0.0, 0.0], [0.0, 2.4]]), np.array([[0.0, 1.0], [0.0, 4.0]])).tp
    2
    """
    t, p = _as_points(true, "true"), _as_points(pred, "pred")
    radius = _check_radius(radius)
    empty = np.zeros((0, 2), dtype=np.intp)
    if len(t) == 0 or len(p) == 0:
        return _result(len(t), len(p), empty, np.zeros(0), 0, radius, "hungarian")
    cand = cKDTree(t).sparse_distance_matrix(cKDTree(p), max_distance=radius, output_type="ndarray")
    ti, pi, dd = cand["i"].astype(np.intp), cand["j"].astype(np.intp), cand["v"].astype(np.float64)
    ok = dd <= radius
    ti, pi, dd = ti[ok], pi[ok], dd[ok]
    if len(ti) == 0:
        return _result(len(t), len(p), empty, np.zeros(0), 0, radius, "hungarian")
    # connected groups of the bipartite graph (true nodes 0..m-1, detections m..m+n-1)
    m, n = len(t), len(p)
    graph = coo_matrix((np.ones(len(ti)), (ti, m + pi)), shape=(m + n, m + n))
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[ti]
    order = np.argsort(edge_comp, kind="stable")
    ti, pi, dd, edge_comp = ti[order], pi[order], dd[order], edge_comp[order]
    bounds = np.flatnonzero(np.diff(edge_comp)) + 1
    pairs_t: list[np.ndarray] = []
    pairs_p: list[np.ndarray] = []
    dists: list[np.ndarray] = []
    for g_t, g_p, g_d in zip(np.split(ti, bounds), np.split(pi, bounds), np.split(dd, bounds), strict=True):
        ut, rt = np.unique(g_t, return_inverse=True)
        up, rp = np.unique(g_p, return_inverse=True)
        if len(ut) == 1 or len(up) == 1:  # a star: the nearest pair wins
            k = int(np.argmin(g_d))
            pairs_t.append(g_t[k : k + 1])
            pairs_p.append(g_p[k : k + 1])
            dists.append(g_d[k : k + 1])
            continue
        # a forbidden pair costs more than any set of allowed pairs: maximise the count, then minimise distance
        big = radius * (min(len(ut), len(up)) + 1) + 1.0
        cost = np.full((len(ut), len(up)), big)
        cost[rt, rp] = g_d
        rows, cols = linear_sum_assignment(cost)
        allowed = cost[rows, cols] < big
        rows, cols = rows[allowed], cols[allowed]
        pairs_t.append(ut[rows])
        pairs_p.append(up[cols])
        dists.append(cost[rows, cols])
    pairs = np.column_stack([np.concatenate(pairs_t), np.concatenate(pairs_p)])
    order = np.argsort(pairs[:, 0], kind="stable")
    return _result(m, n, pairs[order], np.concatenate(dists)[order], 0, radius, "hungarian")


def _match(true: Any, pred: Any, *, method: Method, radius: float) -> MatchResult:
    if method == "kdtree":
        return match_kdtree(true, pred, radius=radius)
    if method == "hungarian":
        return match_hungarian(true, pred, radius=radius)
    raise ValueError(f"Parameter method should be one of 'kdtree', 'hungarian', got {method!r}.")


def f1_integral(true: Any, pred: Any, *, max_radius: float = 3.0, n_radii: int = 50) -> float:
    """Return the mean F1 over matching radii from 0 to ``max_radius`` (deepBlink's F1 integral).

    F1 is computed with :func:`match_hungarian` at ``n_radii`` evenly spaced radii ``numpy.linspace(0,
    max_radius, n_radii)`` and integrated with the trapezoidal rule, divided by ``max_radius`` (deepBlink's
    ``f1_integral`` with its 50 cut-offs by default). It rewards precise localisation: a detection ``d`` px away
    from its true spot contributes only for radii ``>= d``.

    Parameters
    ----------
    true
        ``(m, 2)`` true spot centres ``(row, col)``.
    pred
        ``(n, 2)`` detected centres ``(row, col)``.
    max_radius
        Largest radius in pixels.
    n_radii
        Number of radii, at least 2.

    Returns
    -------
    The F1 integral in ``[0, 1]``; 1.0 when both sets are empty.

    Examples
    --------
    >>> import numpy as np
    >>> from deepspot_sd.metrics import f1_integral
    >>> f1_integral(np.array([[0.0, 0.0]]), np.array([[0.0, 1.5]]), max_radius=3.0, n_radii=4)
    0.5
    """
    check_positive("max_radius", max_radius)
    if not isinstance(n_radii, int | np.integer) or n_radii < 2:
        raise ValueError(f"Parameter n_radii should be an integer >= 2, got {n_radii!r}.")
    radii = np.linspace(0.0, float(max_radius), int(n_radii))
    f1 = np.array([match_hungarian(true, pred, radius=r).f1 for r in radii])
    return float(np.trapezoid(f1, radii) / float(max_radius))


def localization_rmse(true: Any, pred: Any, *, radius: float = 3.0, method: Method = "hungarian") -> float:
    """Return the root mean squared distance between matched true spots and detections, in pixels.

    Parameters
    ----------
    true
        ``(m, 2)`` true spot centres ``(row, col)``.
    pred
        ``(n, 2)`` detected centres ``(row, col)``.
    radius
        Matching radius in pixels.
    method
        ``"hungarian"`` (one-to-one, default) or ``"kdtree"`` (one pair per matched detection, its nearest true
        spot).

    Returns
    -------
    The RMSE over matched pairs; NaN when nothing matches.
    """
    return _match(true, pred, method=method, radius=radius).rmse


def score_images(
    true_list: Sequence[Any],
    pred_list: Sequence[Any],
    *,
    method: Method = "kdtree",
    radius: float = 3.0,
) -> pd.DataFrame:
    """Score detections image by image.

    Parameters
    ----------
    true_list
        One ``(m_i, 2)`` array of true centres per image.
    pred_list
        One ``(n_i, 2)`` array of detections per image, in the same order.
    method
        ``"kdtree"`` (paper §4.1, default) or ``"hungarian"``.
    radius
        Matching radius in pixels.

    Returns
    -------
    One row per image (index ``image``) with columns ``n_true, n_pred, tp, fp, fn, am, precision, recall, f1,
    rmse``.

    Raises
    ------
    ValueError
        If the lists differ in length or ``method`` is unknown.
    """
    if len(true_list) != len(pred_list):
        raise ValueError(f"Got {len(true_list)} ground-truth arrays but {len(pred_list)} detection arrays.")
    rows = [_match(t, p, method=method, radius=radius).to_dict() for t, p in zip(true_list, pred_list, strict=True)]
    df = pd.DataFrame(rows, columns=[*_SCORE_COLUMNS, "radius", "method"])
    df.index.name = "image"
    return df


def aggregate_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Summarise per-image scores: the mean over images and the pooled scores.

    Parameters
    ----------
    df
        Output of :func:`score_images` (columns ``n_true, n_pred, tp, fp, fn, am, precision, recall, f1, rmse``).

    Returns
    -------
    Two rows: ``"mean"`` (mean over images of every column; ``am`` is then AM per image, as the paper reports) and
    ``"pooled"`` (``n_true, n_pred, tp, fp, fn, am`` summed over images; precision, recall and F1 from the sums, with
    the module's empty-set rules; RMSE over all matched pairs). Column ``n_images`` gives the number of images.

    Raises
    ------
    KeyError
        If a column is missing.
    """
    missing = [c for c in _SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise KeyError(f"Columns {missing} not found in the scores. Available columns: {list(df.columns)}.")
    n_images = len(df)
    mean = df[_SCORE_COLUMNS].astype(float).mean(axis=0)
    sums = df[["n_true", "n_pred", "tp", "fp", "fn", "am"]].sum(axis=0)
    tp, n_true, n_pred = int(sums["tp"]), int(sums["n_true"]), int(sums["n_pred"])
    if n_true == 0 and n_pred == 0:
        precision = recall = f1 = 1.0
    else:
        precision, recall, f1 = _ratio(tp, n_pred), _ratio(tp, n_true), _ratio(2 * tp, n_true + n_pred)
    has_pairs = df["tp"].to_numpy() > 0
    sq = (df["rmse"].to_numpy()[has_pairs] ** 2 * df["tp"].to_numpy()[has_pairs]).sum()
    pooled = {
        **{k: float(v) for k, v in sums.items()},
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "rmse": float(np.sqrt(sq / tp)) if tp else float("nan"),
    }
    out = pd.DataFrame([mean.to_dict(), pooled], index=pd.Index(["mean", "pooled"], name="aggregate"))
    out["n_images"] = n_images
    return out[[*_SCORE_COLUMNS, "n_images"]]
