"""`deepspot_sd.metrics`: spot matching and detection scores (k-d tree, Hungarian, F1 integral, localisation)."""

from ._matching import (
    MatchResult,
    aggregate_scores,
    f1_integral,
    localization_rmse,
    match_hungarian,
    match_kdtree,
    score_images,
)

__all__ = [
    "MatchResult",
    "aggregate_scores",
    "f1_integral",
    "localization_rmse",
    "match_hungarian",
    "match_kdtree",
    "score_images",
]
