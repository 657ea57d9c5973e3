"""smFISH image simulator: backgrounds, spots with exact centres, and the enhancement target.

All randomness comes from one :class:`numpy.random.Generator`; the same seed gives the same data.

Conventions
-----------
* Coordinates are ``(row, col)`` floats; pixel ``(i, j)`` covers ``[i - 0.5, i + 0.5) x [j - 0.5, j + 0.5)``,
  so a spot centred on a pixel has integer coordinates.
* Intensities are on an 8-bit-like photon scale (background mean 80–150 by default) before the optional
  camera model (``camera_gain``, ``camera_offset``) maps them to raw counts.
* **SNR** of a spot = (height of its brightest noise-free pixel above the noise-free local background)
  / (standard deviation of the pixel noise at the image's mean background level). This one definition is used
  by the simulator, the benchmarks and the docs.

Dim puncta and out-of-focus molecules
-------------------------------------
Real smFISH images hold bright-ish bumps that are not counted as molecules, and a detector must learn to leave them
out. :func:`simulate_image` can add two kinds, both absent from ``spots`` and left as background in the target:

* **dim puncta** (``n_puncta``): probes bound non-specifically (one or a few fluorophores where a molecule carries
  tens), autofluorescent granules, background speckle. Their peak is a fraction of the molecules' typical peak,
  drawn log-uniformly from ``puncta_amplitude_range`` (0.03–0.3 by default: 1–10 fluorophores against the ~30–50
  of a smFISH probe set), and their width is the PSF's to a little wider (``puncta_sigma_scale`` 1–1.5 times a
  drawn PSF sigma: a granule of up to ~200 nm is close to diffraction-limited);
* **out-of-focus molecules** (``n_out_of_focus``): molecules a few hundred nm above or below the focal plane. The
  PSF widens by ``out_of_focus_sigma_scale`` (2–3×) while the photons stay the same, so the peak drops by the square
  of the widening (to 0.11–0.25 of an in-focus molecule's).

Clusters and transcription sites
--------------------------------
Where RNAs crowd (transcription sites, P-bodies, dense cytoplasm) several molecules sit closer than a spot is wide.
:func:`simulate_image` can add ``n_clusters`` clusters of ``cluster_size_range`` (2–30 by default) molecules each,
drawn log-uniformly, each cluster one of two kinds (``cluster_kind``):

* **tight**: the molecules sit within one PSF (offsets normal with a standard deviation of
  :data:`TIGHT_SPREAD` times the cluster's PSF sigma), so the cluster looks like one brighter, slightly wider spot;
* **loose**: the molecules sit a few pixels apart (offsets normal with ``loose_cluster_spread_px``, 2 px by
  default), so the cluster looks like a group of touching spots.

Every molecule of a cluster is rendered like a single molecule (its own height drawn as for the spots, the
cluster's PSF sigma), so a cluster of ``n`` molecules carries ``n`` times a molecule's integrated intensity.
Cluster centres lie at least :data:`CLUSTER_MIN_DISTANCE_PX` from the spots, the puncta and each other, and
:data:`CLUSTER_MARGIN_PX` inside the image. The truth is in :class:`SimulatedImage` (``clusters``,
``cluster_sizes``, ``cluster_tight``, ``cluster_molecules``, ``molecule_cluster``); ``spots`` keeps the single
molecules only. The target has a stamp at the centre of a tight cluster and at every molecule of a loose one.
With ``n_clusters=0`` (the default) no random draw is made, so images without clusters are unchanged.

"The molecules' typical peak" is the median height of the image's spots (or, without spots, the middle of
``snr_range`` times the noise for ``hybrid`` and of ``amplitude_range`` minus the background mean otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.special import expit

from deepspot_sd._validation import check_positive

__all__ = [
    "CLUSTER_MARGIN_PX",
    "CLUSTER_MIN_DISTANCE_PX",
    "STAMP",
    "TIGHT_SPREAD",
    "SimulatedImage",
    "add_blobs",
    "add_regions",
    "cluster_molecule_positions",
    "draw_cluster_sizes",
    "perlin_background",
    "render_spots",
    "sample_spot_positions",
    "simulate_image",
    "stamp_target",
]

#: The 3x3 target stamp of the original DeepSpot code: 255 centre, 230 edges, 200 corners.
STAMP = np.array([[200.0, 230.0, 200.0], [230.0, 255.0, 230.0], [200.0, 230.0, 200.0]], dtype=np.float32)

Family = Literal["fixed", "variable", "hybrid"]
ClusterKind = Literal["tight", "loose", "mixed"]

#: Molecules of a tight cluster: offsets from its centre with this standard deviation, in PSF sigmas.
TIGHT_SPREAD = 0.25
#: Smallest distance in px from a cluster centre to a spot, a punctum or another cluster centre.
CLUSTER_MIN_DISTANCE_PX = 12.0
#: Cluster centres lie at least this far inside the image (px).
CLUSTER_MARGIN_PX = 6.0


@dataclass(frozen=True)
class SimulatedImage:
    """One simulated smFISH image and its ground truth.

    Attributes
    ----------
    image
        ``float32 (y, x)`` raw image (after the camera model when one was requested).
    target
        ``float32 (y, x)`` enhancement target on the 8-bit-like scale: the noisy image (before the camera
        model), non-spot intensities optionally capped, with :data:`STAMP` at every spot centre.
    spots
        ``float64 (n, 2)`` exact spot centres ``(row, col)``.
    heights
        ``float64 (n,)`` height of each spot's brightest noise-free pixel above the local background.
    sigmas
        ``float64 (n,)`` Gaussian PSF sigma of each spot in pixels.
    snr
        ``float64 (n,)`` signal-to-noise ratio of each spot (definition in the module docstring).
    background
        ``float32 (y, x)`` noise-free background without spots, on the 8-bit-like scale (non-spot structures
        such as blobs included).
    noise_std
        Pixel-noise standard deviation at the mean background level, on the 8-bit-like scale.
    puncta
        ``float64 (m, 2)`` centres of the dim puncta and out-of-focus molecules (not spots; background in the
        target), puncta first.
    params
        The drawn scalar parameters (background mean, camera gain, ...), for reporting.
    clusters
        ``float64 (k, 2)`` centres ``(row, col)`` of the clusters (module notes); empty without clusters.
    cluster_sizes
        ``int64 (k,)`` true number of molecules of each cluster.
    cluster_tight
        ``bool (k,)`` whether a cluster is tight (within one PSF) rather than loose.
    cluster_molecules
        ``float64 (m, 2)`` centres of the molecules of all clusters, ``m = cluster_sizes.sum()``.
    molecule_cluster
        ``int64 (m,)`` index into ``clusters`` of each of ``cluster_molecules``.
    """

    image: np.ndarray
    target: np.ndarray
    spots: np.ndarray
    heights: np.ndarray
    sigmas: np.ndarray
    snr: np.ndarray
    background: np.ndarray
    noise_std: float
    params: dict = field(default_factory=dict)
    puncta: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    clusters: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    cluster_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cluster_tight: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cluster_molecules: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    molecule_cluster: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def molecules(self) -> np.ndarray:
        """``float64 (n + m, 2)`` centres of every molecule: the single ``spots``, then ``cluster_molecules``."""
        return np.concatenate([np.asarray(self.spots).reshape(-1, 2), np.asarray(self.cluster_molecules)])


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None) -> np.ndarray | float:
    low, high = float(bounds[0]), float(bounds[1])
    if high < low:
        raise ValueError(f"Range {bounds} should be (low, high) with low <= high.")
    return rng.uniform(low, high, size=size)


def smooth_field(shape: tuple[int, int], period_px: float, rng: np.random.Generator) -> np.ndarray:
    """Return a smooth random field with unit standard deviation and features about ``period_px`` wide.

    Random values on a coarse grid (one node every ``period_px`` pixels) interpolated with cubic splines:
    the value-noise form of Perlin noise.
    """
    check_positive("period_px", period_px)
    grid_shape = tuple(int(np.ceil(s / period_px)) + 4 for s in shape)
    grid = rng.standard_normal(grid_shape)
    rows = np.arange(shape[0]) / period_px + 1.5
    cols = np.arange(shape[1]) / period_px + 1.5
    coords = np.meshgrid(rows, cols, indexing="ij")
    field_ = ndimage.map_coordinates(grid, coords, order=3, mode="mirror")
    std = field_.std()
    return ((field_ - field_.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def perlin_background(
    shape: tuple[int, int],
    *,
    mean: float,
    texture_std: float,
    rng: np.random.Generator,
    octaves: tuple[float, ...] = (64.0, 24.0, 8.0, 3.0),
    elastic_alpha_px: float = 6.0,
) -> np.ndarray:
    """Simulate a cytoplasm-like textured background (paper §3.1.3), noise-free.

    Parameters
    ----------
    shape
        ``(y, x)`` size in pixels.
    mean
        Mean intensity of the background.
    texture_std
        Standard deviation of the texture around ``mean``.
    rng
        Random generator.
    octaves
        Feature sizes in pixels of the summed smooth fields (coarse to fine, weights halving).
    elastic_alpha_px
        Amplitude in pixels of the smooth elastic deformation applied to the texture (0 disables it).

    Returns
    -------
    ``float32 (y, x)`` background, at least 0.
    """
    texture = np.zeros(shape, dtype=np.float32)
    for k, period in enumerate(octaves):
        texture += 0.5**k * smooth_field(shape, period, rng)
    if elastic_alpha_px > 0:
        dy = elastic_alpha_px * smooth_field(shape, 32.0, rng)
        dx = elastic_alpha_px * smooth_field(shape, 32.0, rng)
        rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        texture = ndimage.map_coordinates(texture, [rows + dy, cols + dx], order=1, mode="mirror")
    std = texture.std()
    texture = (texture - texture.mean()) / (std if std > 0 else 1.0)
    return np.maximum(mean + texture_std * texture, 0.0).astype(np.float32)


def sample_spot_positions(
    shape: tuple[int, int],
    n_spots: int,
    rng: np.random.Generator,
    *,
    min_distance_px: float = 2.0,
    cluster_fraction: float = 0.0,
    cluster_radius_px: float = 5.0,
    mask: np.ndarray | None = None,
    max_tries: int = 200,
) -> np.ndarray:
    """Draw ``n_spots`` float ``(row, col)`` positions at least ``min_distance_px`` apart.

    A ``cluster_fraction`` of the spots is placed around a few cluster centres within ``cluster_radius_px``
    (dense, touching spots as around transcription sites). Positions lie in ``[0, size - 1]`` and, when
    ``mask`` is given, on pixels where it is true.

    Raises
    ------
    ValueError
        If the requested number of spots does not fit at the requested distance.
    """
    if n_spots < 0:
        raise ValueError(f"Parameter n_spots should be >= 0, got {n_spots}.")
    spots = np.empty((0, 2))
    if n_spots == 0:
        return spots
    upper = np.array(shape, dtype=float) - 1.0
    # random sequential placement of discs of diameter min_distance jams at ~55 % coverage: fail fast beyond it
    coverage = n_spots * np.pi * (min_distance_px / 2.0) ** 2 / max(np.prod(upper), 1.0)
    if coverage > 0.5:
        raise ValueError(
            f"Could not place {n_spots} spots at least {min_distance_px} px apart in an image of shape {shape}; "
            "lower n_spots or min_distance_px."
        )
    n_cluster = int(round(cluster_fraction * n_spots))
    n_centres = max(1, n_cluster // 8)
    centres = rng.uniform(0, 1, size=(n_centres, 2)) * upper
    accepted: list[np.ndarray] = []
    tree: cKDTree | None = None
    tries = 0
    while len(accepted) < n_spots:
        tries += 1
        if tries > max_tries:
            raise ValueError(
                f"Could not place {n_spots} spots at least {min_distance_px} px apart in an image of shape {shape}; "
                "lower n_spots or min_distance_px."
            )
        need = n_spots - len(accepted)
        batch = 2 * need + 16
        in_cluster = len(accepted) < n_cluster
        if in_cluster:
            which = rng.integers(0, n_centres, size=batch)
            offsets = rng.normal(0, cluster_radius_px / 2, size=(batch, 2))
            cand = np.clip(centres[which] + offsets, 0, upper)
        else:
            cand = rng.uniform(0, 1, size=(batch, 2)) * upper
        if mask is not None:
            ij = np.floor(cand + 0.5).astype(int)
            cand = cand[mask[ij[:, 0], ij[:, 1]]]
        for point in cand:
            if len(accepted) >= (n_cluster if in_cluster else n_spots):
                break
            if min_distance_px > 0 and accepted:
                if tree is not None and tree.query_ball_point(point, min_distance_px - 1e-9):
                    continue
                recent = np.asarray(accepted[-64:])
                if np.any(np.hypot(*(recent - point).T) < min_distance_px):
                    continue
            accepted.append(point)
            if len(accepted) % 64 == 0:
                tree = cKDTree(np.asarray(accepted))
    return np.asarray(accepted, dtype=np.float64)


def render_spots(
    shape: tuple[int, int],
    spots: np.ndarray,
    heights: np.ndarray,
    sigmas: np.ndarray,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Render Gaussian spots whose brightest pixel equals their height.

    Parameters
    ----------
    shape
        ``(y, x)`` size of the rendered array.
    spots
        ``(n, 2)`` centres ``(row, col)`` in the coordinates of the full image.
    heights, sigmas
        ``(n,)`` brightest-pixel height and PSF sigma in pixels.
    origin
        Full-image coordinates of this array's pixel ``(0, 0)``; lets a large image be rendered chunk by chunk
        with spots from neighbouring chunks contributing their tails.

    Returns
    -------
    ``float32 (y, x)`` spot image (0 where there are no spots).
    """
    out = np.zeros(shape, dtype=np.float32)
    for (row, col), height, sigma in zip(np.asarray(spots) - np.asarray(origin), heights, sigmas, strict=True):
        radius = int(np.ceil(4 * sigma)) + 1
        r0, c0 = int(np.floor(row)) - radius, int(np.floor(col)) - radius
        r1, c1 = r0 + 2 * radius + 2, c0 + 2 * radius + 2
        rr = np.arange(r0, r1)[:, None]
        cc = np.arange(c0, c1)[None, :]
        profile = np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * sigma**2))
        profile *= height / profile.max()
        rs, cs = slice(max(r0, 0), min(r1, shape[0])), slice(max(c0, 0), min(c1, shape[1]))
        if rs.start >= rs.stop or cs.start >= cs.stop:
            continue
        out[rs, cs] += profile[rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0]
    return out


def stamp_target(image: np.ndarray, spots: np.ndarray, *, cap: float | None = None) -> np.ndarray:
    """Build the enhancement target: ``image`` with :data:`STAMP` at every spot centre.

    Parameters
    ----------
    image
        ``(y, x)`` image on the network's 0–255 scale.
    spots
        ``(n, 2)`` spot centres ``(row, col)``; each is stamped at its nearest pixel.
    cap
        If given, every non-stamp pixel is limited to this value, so bright structures that are not spots
        (nuclei, debris, autofluorescent granules) are taught to stay below the detection threshold.

    Returns
    -------
    ``float32 (y, x)`` target. Where stamps of touching spots overlap, the larger stamp value wins.
    """
    target = np.asarray(image, dtype=np.float32).copy()
    if cap is not None:
        np.minimum(target, cap, out=target)
    if len(spots) == 0:
        return target
    stamps = np.full(target.shape, -np.inf, dtype=np.float32)
    centres = np.floor(np.asarray(spots) + 0.5).astype(int)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            rows, cols = centres[:, 0] + dr, centres[:, 1] + dc
            inside = (rows >= 0) & (rows < target.shape[0]) & (cols >= 0) & (cols < target.shape[1])
            np.maximum.at(stamps, (rows[inside], cols[inside]), STAMP[dr + 1, dc + 1])
    has_stamp = np.isfinite(stamps)
    target[has_stamp] = stamps[has_stamp]
    return target


def add_blobs(
    shape: tuple[int, int],
    n_blobs: int,
    rng: np.random.Generator,
    *,
    height_range: tuple[float, float],
    sigma_range_px: tuple[float, float] = (3.0, 10.0),
) -> np.ndarray:
    """Bright structures that are not spots: autofluorescent granules, debris, nuclei-like blobs.

    Each blob is an anisotropic, rotated Gaussian, wider than any spot, with a random height.
    """
    out = np.zeros(shape, dtype=np.float32)
    if n_blobs == 0:
        return out
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for _ in range(n_blobs):
        r, c = rng.uniform(0, shape[0] - 1), rng.uniform(0, shape[1] - 1)
        s1, s2 = _uniform(rng, sigma_range_px, 2)
        theta = rng.uniform(0, np.pi)
        radius = int(4 * max(s1, s2)) + 1
        rs = slice(max(int(r) - radius, 0), min(int(r) + radius + 1, shape[0]))
        cs = slice(max(int(c) - radius, 0), min(int(c) + radius + 1, shape[1]))
        dr, dc = rows[rs, cs] - r, cols[rs, cs] - c
        u = dr * np.cos(theta) + dc * np.sin(theta)
        v = -dr * np.sin(theta) + dc * np.cos(theta)
        out[rs, cs] += _uniform(rng, height_range) * np.exp(-(u**2 / (2 * s1**2) + v**2 / (2 * s2**2)))
    return out


def add_regions(
    shape: tuple[int, int],
    n_regions: int,
    rng: np.random.Generator,
    *,
    level_range: tuple[float, float],
    axis_range_px: tuple[float, float] = (20.0, 120.0),
) -> np.ndarray:
    """Large autofluorescent regions with soft edges: cell bodies, nuclei, tissue patches, embryo haze.

    Each region is a rotated ellipse whose inside is raised by a random level (with a mild texture) and whose
    edge falls off over 0.5–10 px (sharp cell and nucleus borders to diffuse haze).
    """
    out = np.zeros(shape, dtype=np.float32)
    if n_regions == 0:
        return out
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    texture = 1.0 + 0.15 * smooth_field(shape, 12.0, rng)
    for _ in range(n_regions):
        r, c = rng.uniform(0, shape[0] - 1), rng.uniform(0, shape[1] - 1)
        a, b = _uniform(rng, axis_range_px, 2)
        theta = rng.uniform(0, np.pi)
        u = (rows - r) * np.cos(theta) + (cols - c) * np.sin(theta)
        v = -(rows - r) * np.sin(theta) + (cols - c) * np.cos(theta)
        # signed distance-like coordinate: 0 on the ellipse edge, about -min(a, b) at its centre
        edge = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * min(a, b)
        softness = rng.uniform(0.5, 10.0)
        out += _uniform(rng, level_range) * texture * expit(-edge / (softness / 4.0))
    return out


def simulate_image(
    shape: tuple[int, int] = (256, 256),
    *,
    n_spots: int = 50,
    family: Family = "hybrid",
    snr_range: tuple[float, float] = (10.0, 40.0),
    amplitude_range: tuple[float, float] = (160.0, 220.0),
    background_mean_range: tuple[float, float] = (80.0, 150.0),
    texture_std_range: tuple[float, float] = (3.0, 12.0),
    psf_sigma_range: tuple[float, float] = (0.7, 2.5),
    min_spot_distance_px: float = 2.0,
    cluster_fraction: float = 0.0,
    photons_per_unit: float = 1.0,
    read_noise_std: float = 0.0,
    n_blobs: int = 0,
    blob_snr_range: tuple[float, float] = (5.0, 60.0),
    n_regions: int = 0,
    region_level_range: tuple[float, float] = (0.2, 1.5),
    haze_fraction: float = 0.0,
    illumination_falloff: float = 0.0,
    camera_gain: float = 1.0,
    camera_offset: float = 0.0,
    target_cap: float | None = None,
    n_puncta: int = 0,
    puncta_amplitude_range: tuple[float, float] = (0.03, 0.3),
    puncta_sigma_scale: tuple[float, float] = (1.0, 1.5),
    n_out_of_focus: int = 0,
    out_of_focus_sigma_scale: tuple[float, float] = (2.0, 3.0),
    puncta_per_spot: float | tuple[float, float] = 0.0,
    out_of_focus_per_spot: float | tuple[float, float] = 0.0,
    n_clusters: int = 0,
    cluster_size_range: tuple[int, int] = (2, 30),
    cluster_kind: ClusterKind = "mixed",
    loose_cluster_spread_px: float = 2.0,
    seed: int | np.random.Generator | None = None,
) -> SimulatedImage:
    """Simulate one smFISH image with exact spot centres and its enhancement target (design.md §1).

    Parameters
    ----------
    shape
        ``(y, x)`` image size in pixels; any size of at least 8 px per side.
    n_spots
        Exact number of spots.
    family
        ``"fixed"`` (DSfixed: one absolute peak intensity per image drawn from ``amplitude_range``),
        ``"variable"`` (DSvar: one per spot) or ``"hybrid"`` (each spot's SNR drawn from ``snr_range``).
        For ``fixed``/``variable`` the spot height above the local background is ``amplitude − background``,
        floored at one noise standard deviation.
    snr_range
        SNR range of the ``hybrid`` family (SNR as defined in the module docstring).
    amplitude_range
        Absolute peak intensity range for ``fixed``/``variable`` (paper: 160–220 on the 8-bit scale).
    background_mean_range, texture_std_range
        Range of the background mean and of its texture standard deviation.
    psf_sigma_range
        Range of the Gaussian PSF sigma in pixels (about 0.7 px at 40x to 2.5 px at 100x).
    min_spot_distance_px
        Smallest distance between two spot centres (2 px allows touching spots).
    cluster_fraction
        Fraction of spots placed in tight clusters (dense regions).
    photons_per_unit
        Photons per intensity unit: the Poisson noise variance is ``intensity / photons_per_unit``.
    read_noise_std
        Gaussian camera read noise in intensity units (Poisson–Gaussian noise model).
    n_blobs
        Number of bright non-spot structures (debris, granules, nuclei-like blobs); absent from the spots.
    blob_snr_range
        Height range of the blobs in units of the noise standard deviation.
    n_regions
        Number of large autofluorescent regions with soft edges (cells, nuclei, tissue patches).
    region_level_range
        Intensity added inside a region, relative to the background mean.
    haze_fraction
        Strength of out-of-focus haze (a very smooth additive field) relative to the background mean.
    illumination_falloff
        Relative intensity loss at the image corners from uneven illumination (multiplicative vignetting).
    camera_gain, camera_offset
        Camera model applied last: ``raw = camera_offset + camera_gain * image``.
    target_cap
        Cap for non-spot pixels in the target (see :func:`stamp_target`); ``None`` keeps the background as is.
    n_puncta
        Number of dim puncta (not molecules; module notes).
    puncta_amplitude_range
        Range of a punctum's peak relative to the molecules' typical peak (drawn log-uniformly).
    puncta_sigma_scale
        Range of a punctum's width relative to a PSF sigma drawn from ``psf_sigma_range``.
    n_out_of_focus
        Number of out-of-focus molecules (not counted; module notes).
    out_of_focus_sigma_scale
        Range of their PSF widening; their peak is an in-focus peak divided by the square of the widening.
    puncta_per_spot, out_of_focus_per_spot
        More dim puncta / out-of-focus molecules, relative to ``n_spots``: ``round(r * n_spots)`` are added to
        ``n_puncta`` / ``n_out_of_focus``, ``r`` a number or drawn uniformly from a ``(low, high)`` range per image
        (for training data: none to several times the molecules). No random draw is made when both are 0.
    n_clusters
        Number of clusters of molecules (module notes: tight within one PSF, or loose a few px apart); 0 (default)
        adds none and makes no random draw.
    cluster_size_range
        Inclusive range of the number of molecules per cluster, drawn log-uniformly (2–30 by default).
    cluster_kind
        ``"tight"``, ``"loose"`` or ``"mixed"`` (each cluster tight or loose with probability 1/2).
    loose_cluster_spread_px
        Standard deviation in px of the molecule offsets in a loose cluster.
    seed
        Seed or generator; the same seed gives the same image.

    Returns
    -------
    The image, its target and ground truth as a :class:`SimulatedImage`.

    Raises
    ------
    ValueError
        For an unknown family or cluster kind, ranges in the wrong order, a too small shape, too many spots or
        clusters that do not fit.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sim = dsd.datasets.simulate_image((64, 64), n_spots=20, seed=0)
    >>> sim.image.shape, sim.spots.shape
    ((64, 64), (20, 2))
    """
    if family not in ("fixed", "variable", "hybrid"):
        raise ValueError(f"Parameter family should be one of 'fixed', 'variable', 'hybrid', got {family!r}.")
    shape = (int(shape[0]), int(shape[1]))
    if min(shape) < 8:
        raise ValueError(f"Parameter shape should be at least 8 px per side, got {shape}.")
    check_positive("photons_per_unit", photons_per_unit)
    check_positive("camera_gain", camera_gain)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    bg_mean = float(_uniform(rng, background_mean_range))
    background = perlin_background(shape, mean=bg_mean, texture_std=float(_uniform(rng, texture_std_range)), rng=rng)
    if n_regions:
        scale = min(shape) / 256.0
        background += add_regions(
            shape,
            n_regions,
            rng,
            level_range=tuple(np.asarray(region_level_range) * bg_mean),
            axis_range_px=(15.0 * scale, 100.0 * scale),
        )
    if haze_fraction > 0:
        background += haze_fraction * bg_mean * (1.0 + smooth_field(shape, max(shape) / 2.0, rng)).clip(0)
    if illumination_falloff > 0:
        rows, cols = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
        centre = rng.uniform(-0.5, 0.5, size=2)
        dist2 = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / 2.0
        background *= (1.0 - illumination_falloff * dist2).clip(0.05).astype(np.float32)
    noise_std = float(np.sqrt(bg_mean / photons_per_unit + read_noise_std**2))
    if n_blobs:
        background += add_blobs(shape, n_blobs, rng, height_range=tuple(np.asarray(blob_snr_range) * noise_std))

    spots = sample_spot_positions(
        shape, n_spots, rng, min_distance_px=min_spot_distance_px, cluster_fraction=cluster_fraction
    )
    sigmas = np.asarray(_uniform(rng, psf_sigma_range, n_spots), dtype=np.float64)
    ij = np.floor(spots + 0.5).astype(int)
    local_bg = background[ij[:, 0], ij[:, 1]].astype(np.float64) if n_spots else np.empty(0)
    if family == "hybrid":
        snr = np.asarray(_uniform(rng, snr_range, n_spots), dtype=np.float64)
        heights = snr * noise_std
    else:
        fixed_peak = float(_uniform(rng, amplitude_range)) if family == "fixed" else math.nan
        peaks = np.full(n_spots, fixed_peak) if family == "fixed" else _uniform(rng, amplitude_range, n_spots)
        heights = np.maximum(np.asarray(peaks) - local_bg, noise_std)
        snr = heights / noise_std

    clean = background + render_spots(shape, spots, heights, sigmas)
    n_puncta += _per_spot(puncta_per_spot, n_spots, rng, "puncta_per_spot")
    n_out_of_focus += _per_spot(out_of_focus_per_spot, n_spots, rng, "out_of_focus_per_spot")
    puncta = np.zeros((0, 2))
    if n_puncta or n_out_of_focus:
        puncta, puncta_heights, puncta_sigmas = _dim_puncta(
            shape,
            rng,
            reference_height=_typical_height(heights, family, snr_range, amplitude_range, bg_mean, noise_std),
            psf_sigma_range=psf_sigma_range,
            n_puncta=n_puncta,
            amplitude_range=puncta_amplitude_range,
            sigma_scale=puncta_sigma_scale,
            n_out_of_focus=n_out_of_focus,
            out_of_focus_sigma_scale=out_of_focus_sigma_scale,
        )
        clean += render_spots(shape, puncta, puncta_heights, puncta_sigmas)
    clusters: dict[str, np.ndarray] = {}
    stamps = spots
    if n_clusters:
        clusters, molecule_heights, molecule_sigmas = _draw_clusters(
            shape,
            rng,
            n_clusters=n_clusters,
            avoid=np.concatenate([spots, puncta]),
            size_range=cluster_size_range,
            kind=cluster_kind,
            psf_sigma_range=psf_sigma_range,
            loose_spread_px=loose_cluster_spread_px,
            family=family,
            snr_range=snr_range,
            amplitude_range=amplitude_range,
            fixed_peak=fixed_peak if family == "fixed" else None,
            background=background,
            noise_std=noise_std,
        )
        clean += render_spots(shape, clusters["cluster_molecules"], molecule_heights, molecule_sigmas)
        tight_molecules = clusters["cluster_tight"][clusters["molecule_cluster"]]
        stamps = np.concatenate(
            [spots, clusters["clusters"][clusters["cluster_tight"]], clusters["cluster_molecules"][~tight_molecules]]
        )
    noisy = rng.poisson(np.maximum(clean, 0) * photons_per_unit).astype(np.float32) / photons_per_unit
    if read_noise_std > 0:
        noisy += rng.normal(0, read_noise_std, size=shape).astype(np.float32)
    target = stamp_target(noisy, stamps, cap=target_cap)
    image = (camera_offset + camera_gain * noisy).astype(np.float32)
    params = {
        "family": family,
        "background_mean": bg_mean,
        "camera_gain": camera_gain,
        "camera_offset": camera_offset,
        "photons_per_unit": photons_per_unit,
        "read_noise_std": read_noise_std,
        "n_blobs": n_blobs,
        "n_regions": n_regions,
        "n_puncta": n_puncta,
        "n_out_of_focus": n_out_of_focus,
    }
    if n_clusters:
        params.update(
            n_clusters=n_clusters, cluster_kind=cluster_kind, n_cluster_molecules=int(clusters["cluster_sizes"].sum())
        )
    return SimulatedImage(image, target, spots, heights, sigmas, snr, background, noise_std, params, puncta, **clusters)


def _per_spot(ratio: float | tuple[float, float], n_spots: int, rng: np.random.Generator, name: str) -> int:
    """``round(r * n_spots)`` for a ratio ``r`` or a ``(low, high)`` range drawn from (only when it is not 0)."""
    bounds = (float(ratio), float(ratio)) if np.isscalar(ratio) else tuple(float(v) for v in ratio)
    if len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1]:
        raise ValueError(f"Parameter {name} should be >= 0 or a (low, high) range with 0 <= low <= high, got {ratio}.")
    if bounds[1] == 0:
        return 0
    return int(round(float(_uniform(rng, bounds)) * n_spots))


def _typical_height(
    heights: np.ndarray,
    family: str,
    snr_range: tuple[float, float],
    amplitude_range: tuple[float, float],
    bg_mean: float,
    noise_std: float,
) -> float:
    """Return the molecules' typical peak above the background (module notes), the dim puncta's reference."""
    if len(heights):
        return float(np.median(heights))
    if family == "hybrid":
        return 0.5 * (snr_range[0] + snr_range[1]) * noise_std
    return max(0.5 * (amplitude_range[0] + amplitude_range[1]) - bg_mean, noise_std)


def _dim_puncta(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    reference_height: float,
    psf_sigma_range: tuple[float, float],
    n_puncta: int,
    amplitude_range: tuple[float, float],
    sigma_scale: tuple[float, float],
    n_out_of_focus: int,
    out_of_focus_sigma_scale: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres, peaks and widths of dim puncta then out-of-focus molecules (module notes)."""
    for name, value in (("n_puncta", n_puncta), ("n_out_of_focus", n_out_of_focus)):
        if value < 0:
            raise ValueError(f"Parameter {name} should be >= 0, got {value}.")
    lo, hi = amplitude_range
    if not 0 < lo <= hi:
        raise ValueError(
            f"Parameter puncta_amplitude_range should be (low, high) with 0 < low <= high, got {amplitude_range}."
        )
    n = n_puncta + n_out_of_focus
    centres = rng.uniform(-0.5, np.array(shape) - 0.5, size=(n, 2))
    psf = np.asarray(_uniform(rng, psf_sigma_range, n), dtype=np.float64)
    relative = np.exp(rng.uniform(np.log(lo), np.log(hi), n_puncta))
    widen_puncta = np.asarray(_uniform(rng, sigma_scale, n_puncta), dtype=np.float64)
    widen_focus = np.asarray(_uniform(rng, out_of_focus_sigma_scale, n_out_of_focus), dtype=np.float64)
    heights = reference_height * np.concatenate([relative, 1.0 / widen_focus**2])
    sigmas = psf * np.concatenate([widen_puncta, widen_focus])
    return centres, heights, sigmas


def cluster_molecule_positions(
    centres: np.ndarray,
    sizes: np.ndarray,
    tight: np.ndarray,
    sigmas: np.ndarray,
    rng: np.random.Generator,
    *,
    loose_spread_px: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the molecules of clusters around their centres (module notes: tight or loose).

    Parameters
    ----------
    centres
        ``(k, 2)`` cluster centres ``(row, col)``.
    sizes
        ``(k,)`` number of molecules of each cluster.
    tight
        ``(k,)`` whether each cluster is tight (offsets of :data:`TIGHT_SPREAD` x its PSF sigma) or loose (offsets
        of ``loose_spread_px``).
    sigmas
        ``(k,)`` PSF sigma of each cluster in px.
    rng
        Random generator.
    loose_spread_px
        Standard deviation of the molecule offsets in a loose cluster, px.

    Returns
    -------
    ``(positions, cluster)``: ``float64 (m, 2)`` molecule centres and ``int64 (m,)`` the cluster of each,
    ``m = sizes.sum()``.
    """
    check_positive("loose_spread_px", loose_spread_px)
    sizes = np.asarray(sizes, dtype=np.int64)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    spread = np.where(np.asarray(tight, dtype=bool), TIGHT_SPREAD * np.asarray(sigmas, float), loose_spread_px)
    offsets = rng.normal(0.0, 1.0, size=(int(sizes.sum()), 2)) * spread[cluster, None]
    return np.asarray(centres, dtype=np.float64).reshape(-1, 2)[cluster] + offsets, cluster


def _check_cluster_options(size_range: tuple[int, int], kind: str) -> tuple[int, int]:
    lo, hi = (int(v) for v in size_range)
    if not 1 <= lo <= hi:
        raise ValueError(f"Parameter cluster_size_range should be (low, high) with 1 <= low <= high, got {size_range}.")
    if kind not in ("tight", "loose", "mixed"):
        raise ValueError(f"Parameter cluster_kind should be one of 'tight', 'loose', 'mixed', got {kind!r}.")
    return lo, hi


def draw_cluster_sizes(
    n: int, size_range: tuple[int, int], kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes, tight)`` of ``n`` clusters: sizes log-uniform integers in ``size_range``, kinds by ``kind``."""
    lo, hi = _check_cluster_options(size_range, kind)
    sizes = np.floor(np.exp(rng.uniform(np.log(lo), np.log(hi + 1), n))).astype(np.int64).clip(lo, hi)
    if kind == "mixed":
        tight = rng.random(n) < 0.5
    else:
        tight = np.full(n, kind == "tight")
    return sizes, tight


def _draw_clusters(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    n_clusters: int,
    avoid: np.ndarray,
    size_range: tuple[int, int],
    kind: str,
    psf_sigma_range: tuple[float, float],
    loose_spread_px: float,
    family: str,
    snr_range: tuple[float, float],
    amplitude_range: tuple[float, float],
    fixed_peak: float | None,
    background: np.ndarray,
    noise_std: float,
    max_tries: int = 200,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Clusters of :func:`simulate_image` (module notes): truth fields, molecule heights and sigmas."""
    if n_clusters < 0:
        raise ValueError(f"Parameter n_clusters should be >= 0, got {n_clusters}.")
    _check_cluster_options(size_range, kind)
    low = np.full(2, CLUSTER_MARGIN_PX)
    high = np.array(shape, dtype=float) - 1.0 - CLUSTER_MARGIN_PX
    if np.any(high <= low):
        raise ValueError(f"Image of shape {shape} is too small for clusters.")
    accepted: list[np.ndarray] = []
    fixed = cKDTree(avoid) if len(avoid) else None
    for _ in range(max_tries):
        for point in rng.uniform(low, high, size=(4 * n_clusters + 16, 2)):
            if len(accepted) >= n_clusters:
                break
            if fixed is not None and fixed.query(point)[0] < CLUSTER_MIN_DISTANCE_PX:
                continue
            if accepted and np.min(np.hypot(*(np.asarray(accepted) - point).T)) < CLUSTER_MIN_DISTANCE_PX:
                continue
            accepted.append(point)
        if len(accepted) >= n_clusters:
            break
    else:
        raise ValueError(
            f"Could not place {n_clusters} clusters {CLUSTER_MIN_DISTANCE_PX:g} px away from {len(avoid)} spots and "
            f"each other in an image of shape {shape}; lower n_clusters or n_spots."
        )
    centres = np.asarray(accepted, dtype=np.float64)
    sizes, tight = draw_cluster_sizes(n_clusters, size_range, kind, rng)
    cluster_sigmas = np.asarray(_uniform(rng, psf_sigma_range, n_clusters), dtype=np.float64)
    molecules, cluster = cluster_molecule_positions(
        centres, sizes, tight, cluster_sigmas, rng, loose_spread_px=loose_spread_px
    )
    molecules = np.clip(molecules, 0.0, np.array(shape, dtype=float) - 1.0)
    m = len(molecules)
    if family == "hybrid":
        heights = np.asarray(_uniform(rng, snr_range, m), dtype=np.float64) * noise_std
    else:
        peaks = np.full(m, fixed_peak) if fixed_peak is not None else _uniform(rng, amplitude_range, m)
        ij = np.floor(molecules + 0.5).astype(int)
        heights = np.maximum(np.asarray(peaks) - background[ij[:, 0], ij[:, 1]], noise_std)
    truth = {
        "clusters": centres,
        "cluster_sizes": sizes,
        "cluster_tight": tight,
        "cluster_molecules": molecules,
        "molecule_cluster": cluster,
    }
    return truth, heights, cluster_sigmas[cluster]
