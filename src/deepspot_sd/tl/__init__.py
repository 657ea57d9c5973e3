"""`deepspot_sd.tl`."""

from deepspot_sd._detection import find_spots_local_max, find_spots_log, find_spots_wavelet

from ._assign import assign_spots
from ._detect import detect_spots, measure_spots
from ._enhance import enhance, enhance_array
from ._enrichment import polarity_index, sector_enrichment
from ._molecules import (
    count_molecules,
    count_molecules_array,
    detect_clusters,
    group_spots,
    single_molecule_intensity,
    summarize_clusters,
)
from ._population import PopulationSplit, split_populations

__all__ = [
    "PopulationSplit",
    "assign_spots",
    "count_molecules",
    "count_molecules_array",
    "detect_clusters",
    "detect_spots",
    "enhance",
    "enhance_array",
    "find_spots_local_max",
    "find_spots_log",
    "find_spots_wavelet",
    "group_spots",
    "measure_spots",
    "polarity_index",
    "sector_enrichment",
    "single_molecule_intensity",
    "split_populations",
    "summarize_clusters",
]
