"""Per-image brightness populations of detected spots: molecules versus dim puncta (pure numpy).

Why
---
People who count RNA molecules call a spot a molecule when it is about as bright as one (or brighter, for a cluster).
Real images carry, besides their molecules, a population of much dimmer puncta: non-specific probe binding,
autofluorescent granules, out-of-focus light, background speckle. A network that enhances every bump down to SNR 3
lights them up too, and no fixed threshold on the enhanced image can tell them apart, because what counts as dim
depends on how bright the molecules of *this* image are. The detections' brightness can: the molecules form one
population of similar amplitude, the puncta a separate one several times dimmer.

How
---
:func:`split_populations` models the log amplitude of one channel's detections (the raw peak above the local
background) with one and with two Gaussian populations (:class:`sklearn.mixture.GaussianMixture`), cuts where the
detections are sparsest between the two populations' means (minimum of a kernel density estimate, Silverman's
bandwidth), and removes everything below the cut only when all of these hold:

* there are at least ``min_spots`` (10) detections with a positive amplitude (fewer: everything is kept);
* two populations explain the log amplitudes clearly better than one: ``BIC(1) - BIC(2) > min_delta_bic`` (10,
  "very strong" on the usual scale of Bayes factors);
* the two-population density has two modes, so there is a valley between them to cut at (a skewed or broad single
  population is fitted by two overlapping Gaussians with one mode);
* far apart: the detections above the cut are at least ``min_ratio`` (3) times brighter than those below (medians):
  puncta are 0.03–0.3 of a molecule's brightness (those bright enough to be detected sit at about a quarter to a
  third of the molecules);
* the upper side looks like single molecules: it holds at least ``min_bright_share`` (5 %) of the detections (a
  handful of transcription sites above thousands of molecules does not make the molecules "dim"), and its spread
  (robust standard deviation of the log amplitude) is at most ``max_spread_ratio`` (2) times the lower side's:
  molecules are the image's most uniform population, while clusters of 2–30 molecules spread over more than a
  decade;
* a minority above the cut needs a margin: when fewer than half of the detections lie above it, they might be
  clusters over single molecules (clusters are always fewer than single molecules; a population of clusters of 2–5
  molecules has modes at 2, 3, 4 and 5× the single molecules, and a cut between its modes leaves the upper ones
  about 4× brighter), so the ratio must be ``minority_margin`` (1.5) times larger (4.5) and the spread that many
  times smaller (1.33).

Detections below the cut, and detections with a non-positive amplitude, are not molecules; NaN amplitudes are kept.
A single population, a broad continuum, or overlapping populations are left untouched. The ratio, share and spread
are measured on the detections on either side of the cut, not on the Gaussians (neither the detection-truncated
puncta nor a broad molecule population is Gaussian), and must pass both at the cut and at the valley of the
two-Gaussian density, so that a cut that slid into the sparse tail of a cluster population cannot make a minority
look far apart.

Known limit: a sizeable population of clusters (more than 5 % of the spots) that is 4.5× or more brighter than
the single molecules and not much broader (or a majority of clusters 3× brighter) looks like molecules above dim
puncta; for such images set ``min_amplitude`` of :func:`deepspot_sd.tl.detect_spots` by hand (or ``None``), and
check the decision with :func:`deepspot_sd.pl.spot_brightness`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from deepspot_sd._robust import MAD_TO_STD

__all__ = ["PopulationSplit", "split_populations"]

#: Defaults of :func:`split_populations`.
MIN_SPOTS = 10
MIN_DELTA_BIC = 10.0
MIN_RATIO = 3.0
MINORITY_MARGIN = 1.5
MIN_BRIGHT_SHARE = 0.05
MAX_SPREAD_RATIO = 2.0


@dataclass(frozen=True)
class PopulationSplit:
    """The molecule decision for one channel.

    Attributes
    ----------
    keep
        ``bool (n,)``: which detections are molecules.
    cut
        Amplitude threshold (raw units above the local background): detections at or above it are molecules;
        ``None`` when nothing was removed.
    reason
        One line saying what was decided and why.
    n_components
        1 or 2: the number of brightness populations that BIC prefers (0 when not modelled).
    means, sds, weights
        That model's Gaussians on the natural log of the amplitude, dimmest first (empty when not modelled).
    delta_bic
        ``BIC(1 population) - BIC(2 populations)`` (NaN when not modelled).
    ratio
        Median amplitude above the cut divided by the median below it (NaN when nothing was removed).
    """

    keep: np.ndarray
    cut: float | None
    reason: str
    n_components: int = 0
    means: tuple[float, ...] = ()
    sds: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    delta_bic: float = math.nan
    ratio: float = math.nan

    @property
    def n_removed(self) -> int:
        """Number of detections that are not molecules."""
        return int(np.size(self.keep) - np.count_nonzero(self.keep))

    def record(self) -> dict[str, Any]:
        """JSON-friendly summary (everything but ``keep``), for the points element's attrs."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "keep"}
        out["n_spots"] = int(np.size(self.keep))
        out["n_removed"] = self.n_removed
        for key in ("delta_bic", "ratio"):
            out[key] = float(out[key]) if np.isfinite(out[key]) else None
        out["means"], out["sds"], out["weights"] = list(self.means), list(self.sds), list(self.weights)
        return out


def split_populations(
    amplitude: np.ndarray,
    *,
    min_spots: int = MIN_SPOTS,
    min_delta_bic: float = MIN_DELTA_BIC,
    min_ratio: float = MIN_RATIO,
    minority_margin: float = MINORITY_MARGIN,
    min_bright_share: float = MIN_BRIGHT_SHARE,
    max_spread_ratio: float = MAX_SPREAD_RATIO,
    seed: int = 0,
) -> PopulationSplit:
    """Decide which detections of one channel belong to its molecule population (see the module notes).

    Parameters
    ----------
    amplitude
        ``(n,)`` brightness of each detection above its local background (raw units), e.g. the ``amplitude`` column
        of :func:`deepspot_sd.tl.detect_spots`. NaN values are kept and ignored by the model.
    min_spots
        Fewest detections with a positive amplitude needed to model the populations; fewer are all kept.
    min_delta_bic
        How much better (BIC) a mixture of two Gaussians must explain the log amplitudes than one.
    min_ratio
        Smallest ratio of the median amplitude above the cut to the median below it.
    minority_margin
        When fewer than half of the detections lie above the cut, ``min_ratio`` is multiplied and
        ``max_spread_ratio`` divided by this factor.
    min_bright_share
        Smallest share of the detections above the cut.
    max_spread_ratio
        Largest ratio of the spread of the log amplitudes above the cut to the spread below it.
    seed
        Seed of the mixture fit (the result is deterministic).

    Returns
    -------
    The decision; ``keep`` is all true unless a separate dim population was found.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> amp = np.concatenate([rng.lognormal(np.log(1000), 0.25, 300), rng.lognormal(np.log(100), 0.4, 900)])
    >>> split = split_populations(amp)
    >>> int(split.keep[:300].sum()), int(split.keep[300:].sum())
    (300, 0)
    """
    amplitude = np.asarray(amplitude, dtype=np.float64).ravel()
    n = amplitude.size
    keep_all = np.ones(n, dtype=bool)
    positive = amplitude > 0
    n_positive = int(np.count_nonzero(positive))
    if n_positive < min_spots:
        return PopulationSplit(
            keep_all,
            None,
            f"{n} detection(s), {n_positive} with a positive amplitude: too few to model (< {min_spots}); all kept.",
        )
    x = np.log(amplitude[positive])
    if np.ptp(x) == 0:
        return PopulationSplit(keep_all, None, "All detections have the same amplitude: one population, all kept.")
    from sklearn.mixture import GaussianMixture

    values = x.reshape(-1, 1)
    one = GaussianMixture(1, random_state=seed).fit(values)
    two = GaussianMixture(2, n_init=3, random_state=seed).fit(values)
    order = np.argsort(two.means_.ravel())
    model = {
        "n_components": 2,
        "means": tuple(float(v) for v in two.means_.ravel()[order]),
        "sds": tuple(float(v) for v in np.sqrt(two.covariances_.ravel()[order])),
        "weights": tuple(float(v) for v in two.weights_[order]),
        "delta_bic": float(one.bic(values) - two.bic(values)),
    }
    failed = []
    if model["delta_bic"] <= min_delta_bic:
        failed.append(f"ΔBIC {model['delta_bic']:.1f} <= {min_delta_bic:g}")
    # two modes: the two-population density has a valley between its means (else one skewed population)
    grid = np.linspace(model["means"][0], model["means"][1], 512)
    i_model = int(np.argmin(np.exp(two.score_samples(grid.reshape(-1, 1)))))
    ratio = math.nan
    if not 0 < i_model < grid.size - 1:
        failed.append("the two-population model has a single mode")
    else:
        # cut where the detections themselves are sparsest between the means (Gaussians fit the tails poorly); the
        # sides must pass the checks at this cut and at the model's valley, so a cut that slid into a sparse tail
        # (clusters) cannot make a minority look far apart
        i_data = int(np.argmin(_kde(x, grid)))
        cut = float(math.exp(grid[i_data]))
        for i in (i_model, i_data):
            side_failed, side_ratio = _side_checks(
                x,
                grid[i],
                min_ratio=min_ratio,
                minority_margin=minority_margin,
                min_bright_share=min_bright_share,
                max_spread_ratio=max_spread_ratio,
            )
            failed += [f if i == i_data else f"{f} at the model's valley" for f in side_failed]
            ratio = side_ratio if i == i_data else ratio
    if failed:
        if model["delta_bic"] <= min_delta_bic:  # report the one-population model
            model.update(
                n_components=1, means=(float(one.means_[0, 0]),), sds=(float(np.sqrt(one.covariances_.ravel()[0])),)
            )
            model["weights"] = (1.0,)
        return PopulationSplit(keep_all, None, f"One molecule population ({', '.join(failed)}); all {n} kept.", **model)
    keep = ~(amplitude < cut)  # NaN amplitudes are kept
    removed = n - int(np.count_nonzero(keep))
    return PopulationSplit(
        keep,
        cut,
        f"Two brightness populations {ratio:.1f}x apart (ΔBIC {model['delta_bic']:.0f}): kept {n - removed} "
        f"molecule(s) with amplitude >= {cut:.4g}, removed {removed} dim punct{'um' if removed == 1 else 'a'}.",
        ratio=ratio,
        **model,
    )


def _side_checks(
    x: np.ndarray,
    cut: float,
    *,
    min_ratio: float,
    minority_margin: float,
    min_bright_share: float,
    max_spread_ratio: float,
) -> tuple[list[str], float]:
    """Check the detections on either side of ``cut`` (log amplitude); return ``(failed checks, ratio)``."""
    below, above = x[x < cut], x[x >= cut]
    if not below.size or not above.size:
        return ["nothing on one side of the cut"], math.nan
    ratio = math.exp(np.median(above) - np.median(below))
    share = above.size / x.size
    spread = _robust_sd(above) / max(_robust_sd(below), 1e-12)
    margin = 1.0 if share >= 0.5 else minority_margin
    failed = []
    if ratio < min_ratio * margin:
        failed.append(f"ratio {ratio:.2f} < {min_ratio * margin:.3g}")
    if share < min_bright_share:
        failed.append(f"bright share {share:.3f} < {min_bright_share:g}")
    if spread > max_spread_ratio / margin:
        failed.append(f"bright spread {spread:.2f}x > {max_spread_ratio / margin:.3g}x")
    return failed, ratio


def _robust_sd(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (0 for fewer than two values)."""
    if x.size < 2:
        return 0.0
    return float(MAD_TO_STD * np.median(np.abs(x - np.median(x))))


def _kde(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``x`` at ``grid`` (Silverman's rule-of-thumb bandwidth)."""
    iqr = float(np.subtract(*np.percentile(x, [75, 25])))
    spread = min(float(np.std(x)), iqr / 1.34) if iqr > 0 else float(np.std(x))
    bandwidth = 0.9 * spread * x.size ** (-0.2)
    return np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bandwidth) ** 2).sum(axis=1)
