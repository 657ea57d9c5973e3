"""Store a new element in a SpatialData object and, when it is backed, in its zarr store, all or nothing.

The wrappers of :mod:`deepspot_sd.pp` and :mod:`deepspot_sd.tl` call :func:`store_element` once all input
checks have passed. For a backed object the element is computed into the store under a temporary name first; only
when that succeeded is an existing element of the same name replaced (its folder deleted, the temporary folder
renamed) and the in-memory object updated, with the element read back lazily from the store so that nothing is
computed twice. A failure while computing removes the temporary folder and leaves the object and the store as they
were.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from deepspot_sd._logging import logger

__all__ = ["ATTRS_KEY", "get_provenance", "progress_bar", "store_element", "write_in_regions"]

#: Key of the package's provenance records, in ``element.attrs`` and in ``sdata.attrs`` (persisted in the store).
ATTRS_KEY = "deepspot_sd"

ElementKind = Literal["images", "labels", "points", "shapes"]
_KINDS = ("images", "labels", "points", "shapes", "tables")


@contextlib.contextmanager
def progress_bar(show: bool) -> Iterator[None]:
    """Show a :class:`dask.diagnostics.ProgressBar` around the computations of the block, if ``show``.

    The bar reports the local schedulers (threads, processes); with a :class:`distributed.Client` it stays silent
    and the client's dashboard shows the progress instead.
    """
    if not show:
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0):
        yield


def write_in_regions(
    arr: Any,
    target: Any,
    *,
    region_px: int = 4096,
    show_progress_bar: bool = True,
    desc: str = "compute",
) -> None:
    """Compute a lazy ``(c, y, x)`` array region by region and write each region into a zarr array.

    One computation per region of whole chunks (at most ``region_px`` px on a side) keeps the task graph and the
    intermediate results that dask holds (e.g. the halos of :func:`dask.array.map_overlap`) bounded by the region,
    where one computation of the whole array holds about two rows of chunks of it and a graph of all its tasks: with
    regions, peak memory does not grow with the image size. Regions are unions of ``arr``'s chunks, so no task is
    computed twice; they need not match the chunks of ``target``.

    Parameters
    ----------
    arr
        Lazy dask array ``(c, y, x)``.
    target
        Zarr array of the same shape, e.g. the full-resolution array of an element being written.
    region_px
        Largest side of a region in px (a region holds at least one chunk).
    show_progress_bar
        Show a tqdm bar over the chunks of ``arr`` (it advances as each chunk is finished, also within a region;
        with a :class:`distributed.Client` it advances region by region).
    desc
        Label of the bar.
    """
    import math

    regions = [_regions_1d(c, region_px) for c in arr.chunks[1:]]
    items = [(ys, xs) for ys in regions[0] for xs in regions[1]]
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=math.prod(arr.numblocks), desc=desc, unit="chunk")
    done = 0
    try:
        for ys, xs in items:
            part = arr[:, ys, xs]
            # written by this one process, not by the tasks: regions that share a chunk of `target` cannot race, and
            # after a failure no straggling task writes into a folder that is being removed
            with _count_blocks(part.name, bar):
                target[:, ys, xs] = part.compute()
            done += math.prod(part.numblocks)
            if bar is not None and bar.n < done:  # no callbacks under a distributed client: catch up per region
                bar.update(done - bar.n)
    finally:
        if bar is not None:
            bar.close()


@contextlib.contextmanager
def _count_blocks(name: str, bar: Any) -> Iterator[None]:
    """Advance ``bar`` by one for every finished output block of the dask collection ``name`` (local schedulers)."""
    if bar is None:
        yield
        return
    from dask.callbacks import Callback

    class _Counter(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if isinstance(key, tuple) and key and key[0] == name:
                bar.update(1)

    with _Counter():
        yield


def _regions_1d(chunks: tuple[int, ...], region_px: int) -> list[slice]:
    """Consecutive runs of whole chunks, each at most ``region_px`` long (or one chunk, if that is longer)."""
    out, start, stop = [], 0, 0
    for c in chunks:
        if stop > start and stop + int(c) - start > region_px:
            out.append(slice(start, stop))
            start = stop
        stop += int(c)
    out.append(slice(start, stop))
    return out


def get_provenance(sdata: Any, key: str, element: Any = None) -> dict[str, Any]:
    """Return the provenance record the package stored for element ``key`` (``{}`` if there is none).

    Looks at ``element.attrs["deepspot_sd"]`` first (in memory), then at ``sdata.attrs["deepspot_sd"][key]``
    (persisted in the zarr store of a backed object).
    """
    attrs = getattr(element, "attrs", None)
    if isinstance(attrs, dict) and isinstance(attrs.get(ATTRS_KEY), dict):
        return dict(attrs[ATTRS_KEY])
    record = (sdata.attrs or {}).get(ATTRS_KEY, {})
    if isinstance(record, dict) and isinstance(record.get(key), dict):
        return dict(record[key])
    return {}


def check_key_added(sdata: Any, key_added: str, kind: ElementKind) -> None:
    """Raise a :class:`ValueError` when ``key_added`` is not a valid element name or names an element of another kind.

    An element of the same kind is overwritten (logged).
    """
    from spatialdata._core.validation import check_valid_name

    if not isinstance(key_added, str):
        raise TypeError(f"Parameter key_added should be a ('str',). It is a {type(key_added).__name__!r} instead.")
    try:
        check_valid_name(key_added)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Parameter key_added {key_added!r} is not a valid element name: {e}") from e
    for other in _KINDS:
        if other != kind and key_added in getattr(sdata, other):
            raise ValueError(
                f"Key {key_added!r} already names an element of `sdata.{other}`; element names are unique across "
                f"element types. Please pass another `key_added`."
            )


def store_element(
    sdata: Any,
    key: str,
    element: Any,
    *,
    kind: ElementKind,
    provenance: dict[str, Any] | None = None,
    show_progress_bar: bool = True,
    fill: Callable[[Any], None] | None = None,
) -> Any:
    """Add ``element`` as ``sdata.{kind}[key]`` and, if ``sdata`` is backed, write it to its store, all or nothing.

    Parameters
    ----------
    sdata
        The :class:`spatialdata.SpatialData` object.
    key
        Element name; an existing element of the same kind is replaced.
    element
        The parsed element (lazy dask data is computed here for a backed object).
    kind
        Element type.
    provenance
        JSON-serialisable record stored in ``element.attrs["deepspot_sd"]`` and ``sdata.attrs["deepspot_sd"][key]``.
    show_progress_bar
        Show a dask progress bar while computing into the store.
    fill
        Backed objects and single-scale raster elements only: ``element`` then holds placeholder data of the right
        shape, chunks and dtype (e.g. :func:`dask.array.zeros`), and ``fill(array)`` writes the values into the
        element's full-resolution zarr array in the store, before the swap, so that they are written once
        (e.g. with :func:`write_in_regions`).

    Returns
    -------
    The element now held by ``sdata`` (for a backed object: read back lazily from the store).
    """
    check_key_added(sdata, key, kind)
    if fill is not None and (kind not in ("images", "labels") or not sdata.is_backed()):
        raise ValueError("`fill` needs a backed SpatialData object and a raster element.")
    if provenance is not None:
        element.attrs[ATTRS_KEY] = provenance
    container = getattr(sdata, kind)
    if not sdata.is_backed():
        container[key] = element
        _set_sdata_provenance(sdata, key, provenance)
        logger.info("Adding `sdata.%s[%r]`.", kind, key)
        return element

    root = Path(str(sdata.path))
    formats = _store_formats(root)
    tmp = f"{key}_tmp_{uuid.uuid4().hex[:8]}"
    try:
        container[tmp] = element
        with progress_bar(show_progress_bar):
            sdata.write_element(tmp, sdata_formats=formats)
        if fill is not None:
            fill(_full_resolution_array(root / kind / tmp))
    except BaseException:
        _remove_quietly(sdata, kind, tmp, root)
        raise
    finally:
        if tmp in container:
            del container[tmp]

    # the new data is complete in the store: swap it in (a folder removal and a rename, no computation)
    old = container.pop(key, None) if key in container else None
    try:
        target = root / kind / key
        if target.exists():
            shutil.rmtree(target)
        (root / kind / tmp).rename(target)
        if sdata.has_consolidated_metadata():
            sdata.write_consolidated_metadata()
        new = _read_back(root, kind, key)
    except BaseException:
        if old is not None:
            container[key] = old
        _remove_quietly(sdata, kind, tmp, root)
        raise
    if provenance is not None:
        new.attrs[ATTRS_KEY] = provenance
    container[key] = new
    _set_sdata_provenance(sdata, key, provenance)
    if provenance is not None:
        sdata.write_attrs(sdata_format=None if formats is None else formats[-1])
    logger.info("Adding `sdata.%s[%r]` and writing it to %s.", kind, key, root)
    return new


def _set_sdata_provenance(sdata: Any, key: str, provenance: dict[str, Any] | None) -> None:
    attrs = dict(sdata.attrs or {})
    record = dict(attrs.get(ATTRS_KEY, {}))
    if provenance is None:
        if key not in record:
            return
        record.pop(key)
    else:
        record[key] = provenance
    attrs[ATTRS_KEY] = record
    sdata.attrs = attrs


def _store_formats(root: Path) -> list[Any] | None:
    """Return the on-disk formats for new elements of the store at ``root`` (``None``: spatialdata's current ones).

    A store written before spatialdata moved to zarr v3 (container format 0.1) only takes elements in zarr v2
    formats: for it, the latest of those, the container format last.
    """
    import zarr
    from spatialdata._io import format as fmt

    attrs = zarr.open_group(str(root), mode="r").attrs
    if attrs.get("spatialdata_attrs", {}).get("version", "0.1") != "0.1":
        return None
    return [
        fmt.RasterFormatV02(),
        fmt.PointsFormatV01(),
        fmt.ShapesFormatV02(),
        fmt.TablesFormatV01(),
        fmt.SpatialDataContainerFormatV01(),
    ]


def _full_resolution_array(folder: Path) -> Any:
    """Open the scale-0 zarr array of the OME-zarr raster element in ``folder`` for writing."""
    import zarr

    group = zarr.open_group(str(folder), mode="r+")
    ome = group.attrs.get("ome", group.attrs)  # OME-NGFF 0.5 nests the metadata under "ome", 0.4 does not
    return group[ome["multiscales"][0]["datasets"][0]["path"]]


def _read_back(root: Path, kind: str, key: str) -> Any:
    from spatialdata import read_zarr

    with warnings.catch_warnings():
        # reading only `kind` leaves out the elements a table annotates, which spatialdata warns about: the
        # warning is spurious here, the annotated elements are in `sdata`
        warnings.filterwarnings("ignore", message="The table is annotating", category=UserWarning)
        # the user was warned about an old-format store on opening it
        warnings.filterwarnings("ignore", message="SpatialData is not stored in the most current format")
        return getattr(read_zarr(root, selection=(kind,)), kind)[key]


def _remove_quietly(sdata: Any, kind: str, name: str, root: Path) -> None:
    """Delete a partially written element folder, if any, and re-consolidate the metadata."""
    folder = root / kind / name
    if not folder.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    try:
        if sdata.has_consolidated_metadata():
            sdata.write_consolidated_metadata()
    except (OSError, ValueError, KeyError) as e:  # pragma: no cover - best effort clean-up
        logger.warning("Could not re-consolidate the metadata of %s after a failed write: %s", root, e)
