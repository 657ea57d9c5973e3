"""A simulated wound-healing smFISH scene as a SpatialData object, generated lazily chunk by chunk."""

from __future__ import annotations

from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from deepspot_sd._coords import pixel_centre_transformations
from deepspot_sd._validation import check_positive

from ._simulate import ClusterKind, cluster_molecule_positions, draw_cluster_sizes, render_spots

__all__ = ["WoundHealingLayout", "wound_healing", "wound_healing_layout"]

_GENE = "actb"
_OCTAVES_PX = (96.0, 32.0, 10.0)


@dataclass(frozen=True)
class WoundHealingLayout:
    """Geometry and ground truth of a wound-healing scene, everything but the pixels.

    Attributes
    ----------
    shape
        ``(y, x)`` image size in pixels.
    wound_width_px
        The wound is the band ``0 <= x < wound_width_px`` along the left edge.
    centres
        ``(n_cells, 2)`` cell centres ``(row, col)``; cell ``k`` has label ``k + 1``.
    cell_radius_px
        Cells are the Voronoi regions of the centres clipped to discs of this radius.
    nucleus_axes_px, nucleus_angles
        ``(n_cells, 2)`` semi-axes and ``(n_cells,)`` orientation of each elliptic nucleus centred on its cell.
    migrating
        ``(n_cells,)`` whether a cell's spots are enriched toward the wound.
    spots
        ``(n, 2)`` true spot centres ``(row, col)``.
    spot_cell, spot_in_nucleus
        ``(n,)`` label of each spot's cell and whether it lies in the nucleus.
    heights, sigmas
        ``(n,)`` brightest-pixel height and PSF sigma of each spot.
    spot_cluster
        ``(n,)`` index into ``clusters`` of each spot that is a molecule of a cluster, -1 for single molecules
        (empty when the scene has no clusters: all are single).
    clusters
        ``(k, 2)`` cluster centres ``(row, col)``: cytoplasmic clusters, then transcription sites.
    cluster_sizes, cluster_tight, cluster_cell, cluster_in_nucleus
        ``(k,)`` true number of molecules, tight (within one PSF) or loose, cell label and whether the centre lies
        in the nucleus (a transcription site) of each cluster.
    """

    shape: tuple[int, int]
    wound_width_px: float
    centres: np.ndarray
    cell_radius_px: float
    nucleus_axes_px: np.ndarray
    nucleus_angles: np.ndarray
    migrating: np.ndarray
    spots: np.ndarray
    spot_cell: np.ndarray
    spot_in_nucleus: np.ndarray
    heights: np.ndarray
    sigmas: np.ndarray
    background_mean: float
    noise_std: float
    spot_cluster: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    clusters: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    cluster_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cluster_tight: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cluster_cell: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    cluster_in_nucleus: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _in_nucleus(layout_centres, axes, angles, cell_idx, rows, cols) -> np.ndarray:
    dr = rows - layout_centres[cell_idx, 0]
    dc = cols - layout_centres[cell_idx, 1]
    cos, sin = np.cos(angles[cell_idx]), np.sin(angles[cell_idx])
    u = dr * cos + dc * sin
    v = -dr * sin + dc * cos
    return (u / axes[cell_idx, 0]) ** 2 + (v / axes[cell_idx, 1]) ** 2 <= 1.0


def wound_healing_layout(
    shape: tuple[int, int] = (2048, 2048),
    *,
    cell_spacing_px: float = 180.0,
    migrating_fraction: float = 0.5,
    enrichment: float = 4.0,
    spots_per_cell: tuple[int, int] = (40, 120),
    nuclear_fraction: float = 0.1,
    snr_range: tuple[float, float] = (6.0, 30.0),
    psf_sigma_range: tuple[float, float] = (1.0, 1.8),
    background_mean: float = 100.0,
    clusters_per_cell: int = 0,
    transcription_sites_per_cell: int = 0,
    cluster_size_range: tuple[int, int] = (2, 30),
    cluster_kind: ClusterKind = "mixed",
    loose_cluster_spread_px: float = 2.0,
    seed: int = 0,
) -> WoundHealingLayout:
    """Draw the cells, nuclei, wound and true spots of a wound-healing scene (no pixels).

    Cells sit on a jittered grid right of a wound band along the left image edge. In a ``migrating_fraction``
    of the cells, cytoplasmic spots falling in the 120° sector that faces the wound are ``enrichment`` times
    more likely than elsewhere (DypFISH-style polarity); in the other ("control") cells spots are uniform.
    Parameters are those of :func:`wound_healing`. Clusters are drawn after everything else, so a scene without
    clusters is the same as before they existed.
    """
    check_positive("cell_spacing_px", cell_spacing_px)
    check_positive("enrichment", enrichment)
    if not 0 <= migrating_fraction <= 1:
        raise ValueError(f"Parameter migrating_fraction should be in [0, 1], got {migrating_fraction}.")
    rng = np.random.default_rng(seed)
    height, width = int(shape[0]), int(shape[1])
    if min(height, width) < 2 * cell_spacing_px:
        raise ValueError(
            f"Parameter shape should be at least {int(2 * cell_spacing_px)} px per side for cells "
            f"{cell_spacing_px} px apart, got {shape}; lower cell_spacing_px."
        )
    wound_width = 0.1 * width
    rows = np.arange(cell_spacing_px / 2, height - cell_spacing_px / 2 + 1, cell_spacing_px)
    cols = np.arange(wound_width + 0.76 * cell_spacing_px, width - cell_spacing_px / 2 + 1, cell_spacing_px)
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    centres = grid + rng.uniform(-0.12, 0.12, size=grid.shape) * cell_spacing_px
    n_cells = len(centres)
    cell_radius = 0.62 * cell_spacing_px
    axes = rng.uniform(0.18, 0.28, size=(n_cells, 2)) * cell_spacing_px
    angles = rng.uniform(0, np.pi, size=n_cells)
    migrating = rng.random(n_cells) < migrating_fraction
    tree = cKDTree(centres)

    spots, spot_cell, spot_nuc = [], [], []
    for k in range(n_cells):
        n_total = int(rng.integers(spots_per_cell[0], spots_per_cell[1] + 1))
        n_nuclear = int(rng.binomial(n_total, nuclear_fraction))
        cell_spots: list[np.ndarray] = []
        in_nuc: list[bool] = []
        while len(cell_spots) < n_total:
            radius = cell_radius * np.sqrt(rng.random(64))
            theta = rng.uniform(-np.pi, np.pi, 64)
            cand = centres[k] + np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
            cand = cand[(cand[:, 0] >= 0) & (cand[:, 0] <= height - 1) & (cand[:, 1] >= 0) & (cand[:, 1] <= width - 1)]
            if len(cand) == 0:
                continue
            # cell and nucleus membership is decided on the pixel a spot falls in, as in the label images
            pixel = np.floor(cand + 0.5)
            dist, owner = tree.query(pixel)
            nuc = _in_nucleus(centres, axes, angles, np.full(len(cand), k), pixel[:, 0], pixel[:, 1])
            # toward the wound = toward smaller x: angle of (spot - centre) within +-60 degrees of pi
            toward_wound = (
                np.abs(
                    np.angle(np.exp(1j * (np.arctan2(cand[:, 0] - centres[k, 0], cand[:, 1] - centres[k, 1]) - np.pi)))
                )
                <= np.pi / 3
            )
            weight = np.where(migrating[k] & toward_wound & ~nuc, enrichment, 1.0) / enrichment
            keep = (owner == k) & (dist <= cell_radius) & (rng.random(len(cand)) < weight)
            n_nuc_now = sum(in_nuc)
            for point, is_nuc in zip(cand[keep], nuc[keep], strict=True):
                if len(cell_spots) >= n_total:
                    break
                if (
                    is_nuc
                    and n_nuc_now >= n_nuclear
                    or not is_nuc
                    and len(cell_spots) - n_nuc_now >= n_total - n_nuclear
                ):
                    continue
                if cell_spots and np.min(np.hypot(*(np.asarray(cell_spots) - point).T)) < 3.0:
                    continue
                cell_spots.append(point)
                in_nuc.append(bool(is_nuc))
                n_nuc_now += int(is_nuc)
        spots.extend(cell_spots)
        spot_cell.extend([k + 1] * len(cell_spots))
        spot_nuc.extend(in_nuc)

    spots_arr = np.asarray(spots, dtype=np.float64).reshape(-1, 2)
    noise_std = float(np.sqrt(background_mean))
    n_spots = len(spots_arr)
    heights = rng.uniform(*snr_range, size=n_spots) * noise_std
    sigmas = rng.uniform(*psf_sigma_range, size=n_spots)
    cluster_fields: dict[str, np.ndarray] = {}
    spot_cell_arr = np.asarray(spot_cell, dtype=np.int32)
    spot_nuc_arr = np.asarray(spot_nuc, dtype=bool)
    for name, value in (
        ("clusters_per_cell", clusters_per_cell),
        ("transcription_sites_per_cell", transcription_sites_per_cell),
    ):
        if int(value) < 0:
            raise ValueError(f"Parameter {name} should be >= 0, got {value}.")
    if clusters_per_cell or transcription_sites_per_cell:
        geometry = (centres, cell_radius, axes, angles, tree, (height, width))
        cluster_fields, molecules, m_heights, m_sigmas = _scene_clusters(
            rng,
            geometry,
            spots_arr,
            n_cyto=int(clusters_per_cell),
            n_nuclear=int(transcription_sites_per_cell),
            size_range=cluster_size_range,
            kind=cluster_kind,
            loose_spread_px=loose_cluster_spread_px,
            snr_range=snr_range,
            psf_sigma_range=psf_sigma_range,
            noise_std=noise_std,
        )
        m_cell, m_nuc = _membership(geometry, molecules)
        spots_arr = np.concatenate([spots_arr, molecules])
        spot_cell_arr = np.concatenate([spot_cell_arr, m_cell])
        spot_nuc_arr = np.concatenate([spot_nuc_arr, m_nuc])
        heights = np.concatenate([heights, m_heights])
        sigmas = np.concatenate([sigmas, m_sigmas])
    return WoundHealingLayout(
        shape=(height, width),
        wound_width_px=wound_width,
        centres=centres,
        cell_radius_px=cell_radius,
        nucleus_axes_px=axes,
        nucleus_angles=angles,
        migrating=migrating,
        spots=spots_arr,
        spot_cell=spot_cell_arr,
        spot_in_nucleus=spot_nuc_arr,
        heights=heights,
        sigmas=sigmas,
        background_mean=background_mean,
        noise_std=noise_std,
        **cluster_fields,
    )


def _membership(geometry: tuple, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell label (0 outside) and nucleus flag of each point, decided on its pixel as in the label images."""
    centres, cell_radius, axes, angles, tree, _ = geometry
    pixel = np.floor(points + 0.5)
    dist, owner = tree.query(pixel)
    inside = dist <= cell_radius
    nuc = inside & _in_nucleus(centres, axes, angles, owner, pixel[:, 0], pixel[:, 1])
    return np.where(inside, owner + 1, 0).astype(np.int32), nuc


def _scene_clusters(
    rng: np.random.Generator,
    geometry: tuple,
    spots: np.ndarray,
    *,
    n_cyto: int,
    n_nuclear: int,
    size_range: tuple[int, int],
    kind: str,
    loose_spread_px: float,
    snr_range: tuple[float, float],
    psf_sigma_range: tuple[float, float],
    noise_std: float,
    min_distance_px: float = 8.0,
    n_candidates: int = 256,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Cytoplasmic clusters and transcription sites of every cell, and their molecules (see :func:`wound_healing`).

    Each centre is the candidate farthest from the single molecules among up to ``n_candidates`` drawn in the
    cytoplasm (at least 6 px inside the cell and outside the nucleus) or in the inner 60 % of the nucleus, taken at
    once when it is ``min_distance_px`` away from them.
    """
    centres, cell_radius, axes, angles, tree, (height, width) = geometry
    spot_tree = cKDTree(spots) if len(spots) else None
    picked, owner_cell, nuclear = [], [], []
    for k in range(len(centres)):
        for is_nuc, count in ((False, n_cyto), (True, n_nuclear)):
            for _ in range(count):
                if is_nuc:
                    radius = 0.6 * np.sqrt(rng.random(n_candidates))
                    theta = rng.uniform(-np.pi, np.pi, n_candidates)
                    u, v = radius * np.cos(theta) * axes[k, 0], radius * np.sin(theta) * axes[k, 1]
                    cos, sin = np.cos(angles[k]), np.sin(angles[k])
                    cand = centres[k] + np.stack([u * cos - v * sin, u * sin + v * cos], axis=1)
                else:
                    radius = (cell_radius - 6.0) * np.sqrt(rng.random(n_candidates))
                    theta = rng.uniform(-np.pi, np.pi, n_candidates)
                    cand = centres[k] + np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
                dist, owner = tree.query(cand)
                nuc = _in_nucleus(centres, axes, angles, np.full(len(cand), k), cand[:, 0], cand[:, 1])
                ok = (owner == k) & (dist <= cell_radius - 6.0) & (nuc == is_nuc)
                ok &= (cand[:, 0] >= 6) & (cand[:, 0] <= height - 7) & (cand[:, 1] >= 6) & (cand[:, 1] <= width - 7)
                cand = cand[ok]
                if not len(cand):
                    continue
                others = np.asarray(picked).reshape(-1, 2)
                far = np.full(len(cand), np.inf)
                if spot_tree is not None:
                    far = spot_tree.query(cand)[0]
                if len(others):
                    far = np.minimum(far, cKDTree(others).query(cand)[0])
                first = np.flatnonzero(far >= min_distance_px)
                picked.append(cand[first[0] if len(first) else int(np.argmax(far))])
                owner_cell.append(k + 1)
                nuclear.append(is_nuc)
    cluster_centres = np.asarray(picked, dtype=np.float64).reshape(-1, 2)
    n = len(cluster_centres)
    sizes, tight = draw_cluster_sizes(n, size_range, kind, rng)
    cluster_sigmas = rng.uniform(*psf_sigma_range, size=n)
    molecules, which = cluster_molecule_positions(
        cluster_centres, sizes, tight, cluster_sigmas, rng, loose_spread_px=loose_spread_px
    )
    molecules = np.clip(molecules, 0.0, np.array([height - 1.0, width - 1.0]))
    m_heights = rng.uniform(*snr_range, size=len(molecules)) * noise_std
    n_single = len(spots)
    spot_cluster = np.concatenate([np.full(n_single, -1, dtype=np.int64), which.astype(np.int64)])
    fields_ = {
        "spot_cluster": spot_cluster,
        "clusters": cluster_centres,
        "cluster_sizes": sizes,
        "cluster_tight": tight,
        "cluster_cell": np.asarray(owner_cell, dtype=np.int32),
        "cluster_in_nucleus": np.asarray(nuclear, dtype=bool),
    }
    return fields_, molecules, m_heights, cluster_sigmas[which]


def _hash_normal(seed: int, octave: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Deterministic unit-variance noise at integer grid nodes, the same whichever chunk asks for it."""
    with np.errstate(over="ignore"):
        key = (rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            cols.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        )
        key ^= np.uint64((seed * 1_000_003 + octave * 7919) & 0xFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        key ^= key >> np.uint64(33)
        key *= np.uint64(0xFF51AFD7ED558CCD)
        key ^= key >> np.uint64(33)
        key *= np.uint64(0xC4CEB9FE1A85EC53)
        key ^= key >> np.uint64(33)
    uniform = (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return (uniform - 0.5) * np.sqrt(12.0)


def _texture(seed: int, row0: int, col0: int, shape: tuple[int, int]) -> np.ndarray:
    """Value-noise texture in global coordinates: cubic B-spline smoothing of hashed grid nodes (chunk-exact)."""
    out = np.zeros(shape, dtype=np.float64)
    for octave, period in enumerate(_OCTAVES_PX):
        n0r, n0c = int(np.floor(row0 / period)) - 2, int(np.floor(col0 / period)) - 2
        n1r, n1c = int(np.ceil((row0 + shape[0]) / period)) + 3, int(np.ceil((col0 + shape[1]) / period)) + 3
        nodes = _hash_normal(seed, octave, *np.meshgrid(np.arange(n0r, n1r), np.arange(n0c, n1c), indexing="ij"))
        rr = (row0 + np.arange(shape[0])) / period - n0r
        cc = (col0 + np.arange(shape[1])) / period - n0c
        coords = np.meshgrid(rr, cc, indexing="ij")
        # prefilter=False: the B-spline is a local average of 4x4 nodes, so every chunk computes the same values
        out += 0.5**octave * ndimage.map_coordinates(nodes, coords, order=3, prefilter=False)
    return out / 0.55


def _cell_geometry(layout: WoundHealingLayout, row0: int, col0: int, shape: tuple[int, int]):
    rows, cols = np.meshgrid(row0 + np.arange(shape[0]), col0 + np.arange(shape[1]), indexing="ij")
    dist, idx = cKDTree(layout.centres).query(np.stack([rows.ravel(), cols.ravel()], axis=1))
    dist, idx = dist.reshape(shape), idx.reshape(shape)
    in_cell = dist <= layout.cell_radius_px
    in_nuc = in_cell & _in_nucleus(layout.centres, layout.nucleus_axes_px, layout.nucleus_angles, idx, rows, cols)
    return idx, dist, in_cell, in_nuc


def _render_labels(layout: WoundHealingLayout, nuclei: bool, block_info=None) -> np.ndarray:
    info = block_info[None]
    (r0, r1), (c0, c1) = info["array-location"]
    idx, _, in_cell, in_nuc = _cell_geometry(layout, r0, c0, (r1 - r0, c1 - c0))
    return np.where(in_nuc if nuclei else in_cell, idx + 1, 0).astype(np.int32)


def _render_image(
    layout: WoundHealingLayout, seed: int, camera_offset: float, camera_gain: float, block_info=None
) -> np.ndarray:
    info = block_info[None]
    (r0, r1), (c0, c1) = info["array-location"][-2:]
    shape = (r1 - r0, c1 - c0)
    _, dist, in_cell, in_nuc = _cell_geometry(layout, r0, c0, shape)
    bg = layout.background_mean
    # autofluorescent cytoplasm with soft edges, slightly dimmer nuclei, dim medium outside the cells
    cytoplasm = np.clip((layout.cell_radius_px - dist) / 12.0, 0, 1)
    image = bg * (0.55 + 0.45 * cytoplasm) - 0.12 * bg * ndimage.uniform_filter(in_nuc.astype(float), 9)
    image += 0.08 * bg * _texture(seed, r0, c0, shape)
    margin = 12
    near = np.all((layout.spots >= [r0 - margin, c0 - margin]) & (layout.spots < [r1 + margin, c1 + margin]), axis=1)
    image += render_spots(shape, layout.spots[near], layout.heights[near], layout.sigmas[near], origin=(r0, c0))
    rng = np.random.default_rng([seed, r0, c0])
    noisy = rng.poisson(np.maximum(image, 0)).astype(np.float64)
    raw = camera_offset + camera_gain * noisy
    return np.clip(np.rint(raw), 0, np.iinfo(np.uint16).max).astype(np.uint16)[None]


def wound_healing(
    shape: tuple[int, int] = (2048, 2048),
    *,
    cell_spacing_px: float = 180.0,
    migrating_fraction: float = 0.5,
    enrichment: float = 4.0,
    spots_per_cell: tuple[int, int] = (40, 120),
    nuclear_fraction: float = 0.1,
    snr_range: tuple[float, float] = (6.0, 30.0),
    psf_sigma_range: tuple[float, float] = (1.0, 1.8),
    camera_offset: float = 100.0,
    camera_gain: float = 4.0,
    chunks: int = 1024,
    clusters_per_cell: int = 0,
    transcription_sites_per_cell: int = 0,
    cluster_size_range: tuple[int, int] = (2, 30),
    cluster_kind: ClusterKind = "mixed",
    loose_cluster_spread_px: float = 2.0,
    seed: int = 0,
):
    """Simulate a wound-healing smFISH experiment as a :class:`spatialdata.SpatialData` object.

    Fibroblast-like cells fill the image right of a wound along the left edge. The image is generated lazily
    chunk by chunk (a 16384 x 16384 scene never exists as one array in memory) and is a uint16 camera image
    (``raw = camera_offset + camera_gain * photons``) with autofluorescent cytoplasm, dimmer nuclei, texture
    and Poisson noise. The same arguments (``chunks`` included) give the same data.

    Parameters
    ----------
    shape
        ``(y, x)`` image size in pixels.
    cell_spacing_px
        Distance between neighbouring cell centres in pixels.
    migrating_fraction
        Fraction of cells ("migrating") whose cytoplasmic spots are enriched toward the wound.
    enrichment
        How many times more likely a cytoplasmic spot is in the wound-facing 120° sector of a migrating cell.
    spots_per_cell
        Range of the number of spots per cell.
    nuclear_fraction
        Expected fraction of a cell's spots that lie in its nucleus.
    snr_range
        Spot SNR range (definition in :mod:`deepspot_sd.datasets`: brightest noise-free pixel above background
        over the background noise standard deviation).
    psf_sigma_range
        PSF sigma range in pixels.
    camera_offset, camera_gain
        Camera model for the uint16 image.
    chunks
        Chunk size in pixels of the image and label elements.
    clusters_per_cell
        Clusters of molecules per cell in the cytoplasm (P-bodies, dense RNA); 0 (default) adds none.
    transcription_sites_per_cell
        Clusters per cell in the nucleus (transcription sites); 0 (default) adds none.
    cluster_size_range, cluster_kind, loose_cluster_spread_px
        Molecules per cluster (inclusive range, log-uniform), ``"tight"`` (within one PSF), ``"loose"`` (a few px
        apart) or ``"mixed"``, and the spread of a loose cluster, as in :func:`deepspot_sd.datasets.simulate_image`.
        A cluster's molecules have its PSF sigma and their own heights drawn from ``snr_range``. Cluster centres
        lie in the cytoplasm or the inner 60 % of the nucleus, at least 8 px from the single molecules when there
        is room. Clusters are drawn after everything else: without them, the scene is unchanged.
    seed
        Random seed.

    Returns
    -------
    A :class:`spatialdata.SpatialData` with ``images["smfish"]`` (``c, y, x``, channel ``"actb"``, uint16),
    ``labels["cells"]`` and ``labels["nuclei"]`` (the nucleus of cell ``k`` has label ``k``),
    ``shapes["wound"]`` (the wound polygon), ``points["true_spots"]`` (``x``, ``y``, ``gene``, ``cell_id``,
    ``in_nucleus``) and ``tables["cell_truth"]`` annotating ``"cells"`` (``obs``: ``cell_id``, ``group`` in
    ``{"migrating", "control"}``, ``n_spots_true``, ``n_spots_cytoplasm_true``). With clusters, ``true_spots``
    holds every molecule (one row each, ``cluster_id`` the index of its cluster or -1), so ``n_spots_true`` is the
    true number of molecules per cell; ``points["true_clusters"]`` holds one row per cluster (``x``, ``y``,
    ``gene``, ``cluster_id``, ``n_molecules``, ``tight``, ``cell_id``, ``in_nucleus``: a transcription site) and
    ``obs`` gains ``n_molecules_true`` (= ``n_spots_true``), ``n_clusters_true`` and
    ``n_molecules_in_clusters_true``. Images and labels have the
    identity transformation to ``"global"``. The spots and the wound are in pixel-index coordinates (a spot centred
    on pixel (row ``i``, col ``j``) has ``x = j``, ``y = i``, like :func:`deepspot_sd.tl.detect_spots` output) and
    carry ``Translation([0.5, 0.5], axes=("x", "y"))`` to ``"global"``, where spatialdata puts that pixel's centre.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> sdata = dsd.datasets.wound_healing((512, 512), cell_spacing_px=150, seed=0)
    >>> sorted(sdata.images), sorted(sdata.labels)
    (['smfish'], ['cells', 'nuclei'])
    """
    import anndata as ad
    import geopandas as gpd
    from shapely.geometry import box
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel, Labels2DModel, PointsModel, ShapesModel, TableModel

    check_positive("chunks", chunks)
    layout = wound_healing_layout(
        shape,
        cell_spacing_px=cell_spacing_px,
        migrating_fraction=migrating_fraction,
        enrichment=enrichment,
        spots_per_cell=spots_per_cell,
        nuclear_fraction=nuclear_fraction,
        snr_range=snr_range,
        psf_sigma_range=psf_sigma_range,
        clusters_per_cell=clusters_per_cell,
        transcription_sites_per_cell=transcription_sites_per_cell,
        cluster_size_range=cluster_size_range,
        cluster_kind=cluster_kind,
        loose_cluster_spread_px=loose_cluster_spread_px,
        seed=seed,
    )
    height, width = layout.shape
    chunk = int(chunks)
    image = da.map_blocks(
        _render_image,
        layout,
        seed,
        camera_offset,
        camera_gain,
        chunks=((1,), *da.core.normalize_chunks((chunk, chunk), (height, width))),
        dtype=np.uint16,
        meta=np.empty((0, 0, 0), dtype=np.uint16),
    )
    label_chunks = da.core.normalize_chunks((chunk, chunk), (height, width))
    labels = {
        name: da.map_blocks(
            _render_labels,
            layout,
            name == "nuclei",
            chunks=label_chunks,
            dtype=np.int32,
            meta=np.empty((0, 0), np.int32),
        )
        for name in ("cells", "nuclei")
    }

    points = pd.DataFrame(
        {
            "x": layout.spots[:, 1],
            "y": layout.spots[:, 0],
            "gene": pd.Categorical([_GENE] * len(layout.spots)),
            "cell_id": layout.spot_cell,
            "in_nucleus": layout.spot_in_nucleus,
        }
    )
    has_clusters = len(layout.spot_cluster) > 0
    if has_clusters:
        points["cluster_id"] = layout.spot_cluster
    n_cells = len(layout.centres)
    cell_ids = np.arange(1, n_cells + 1)
    n_true = np.bincount(layout.spot_cell, minlength=n_cells + 1)[1:]
    n_cyto = np.bincount(layout.spot_cell[~layout.spot_in_nucleus], minlength=n_cells + 1)[1:]
    obs = pd.DataFrame(
        {
            "cell_id": cell_ids,
            "region": pd.Categorical(["cells"] * n_cells),
            "group": pd.Categorical(
                np.where(layout.migrating, "migrating", "control"), categories=["migrating", "control"]
            ),
            "n_spots_true": n_true,
            "n_spots_cytoplasm_true": n_cyto,
        },
        index=[str(i) for i in cell_ids],
    )
    if has_clusters:
        in_cluster = layout.spot_cluster >= 0
        obs["n_molecules_true"] = n_true
        obs["n_clusters_true"] = np.bincount(layout.cluster_cell, minlength=n_cells + 1)[1:]
        obs["n_molecules_in_clusters_true"] = np.bincount(layout.spot_cell[in_cluster], minlength=n_cells + 1)[1:]
    truth = ad.AnnData(X=n_true[:, None].astype(np.float32), obs=obs, var=pd.DataFrame(index=[_GENE]))
    truth.obsm["spatial"] = layout.centres[:, ::-1].copy()
    wound = gpd.GeoDataFrame(geometry=[box(-0.5, -0.5, layout.wound_width_px - 0.5, height - 0.5)])
    # spots and wound are in pixel-index coordinates (pixel (i, j) centred on x = j, y = i); the image has the
    # identity transformation, so they get the half-pixel translation onto spatialdata's pixel centres
    index_transformations = pixel_centre_transformations(None)
    points_elements = {
        "true_spots": PointsModel.parse(
            points, coordinates={"x": "x", "y": "y"}, feature_key="gene", transformations=index_transformations
        )
    }
    if has_clusters:
        clusters = pd.DataFrame(
            {
                "x": layout.clusters[:, 1],
                "y": layout.clusters[:, 0],
                "gene": pd.Categorical([_GENE] * len(layout.clusters)),
                "cluster_id": np.arange(len(layout.clusters)),
                "n_molecules": layout.cluster_sizes,
                "tight": layout.cluster_tight,
                "cell_id": layout.cluster_cell,
                "in_nucleus": layout.cluster_in_nucleus,
            }
        )
        points_elements["true_clusters"] = PointsModel.parse(
            clusters, coordinates={"x": "x", "y": "y"}, feature_key="gene", transformations=index_transformations
        )

    return SpatialData(
        images={"smfish": Image2DModel.parse(image, dims=("c", "y", "x"), c_coords=[_GENE])},
        labels={name: Labels2DModel.parse(arr, dims=("y", "x")) for name, arr in labels.items()},
        shapes={"wound": ShapesModel.parse(wound, transformations=index_transformations)},
        points=points_elements,
        tables={"cell_truth": TableModel.parse(truth, region="cells", region_key="region", instance_key="cell_id")},
    )
