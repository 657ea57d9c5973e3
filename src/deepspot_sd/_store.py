"""Store a new element in a SpatialData object and, when it is backed, in its zarr store, all or nothing.

The wrappers of :mod:`deepspot_sd.pp` and :mod:`deepspot_sd.tl` call :func:`store_element` once all input
checks have passed. For a backed object the element is computed into a staging folder inside the store first
(``<store>/.deepspot_tmp/``, never listed as an element); only when that succeeded is it moved into place with one
rename (an existing element of the same name swapped out in the same step where the filesystem allows it) and the
in-memory object updated, with the element read back lazily from the store so that nothing is computed twice. A
failure removes the staging folder and leaves the object and the store as they were; a killed run leaves only its
staging folder, which the next write into the store removes. The short metadata steps hold a lock on the store, so
several processes can write different elements into one store at the same time (the Reliability page of the docs).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from deepspot_sd._logging import logger

__all__ = [
    "ATTRS_KEY",
    "STAGING_DIR",
    "clean_up_store",
    "get_provenance",
    "progress_bar",
    "store_element",
    "store_lock",
    "write_in_regions",
]

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

    Looks at ``element.attrs["deepspot_sd"]`` first (in memory), then, for a backed object, at the record written
    with the element into its own group of the store (it is replaced with the element, in one step), then at
    ``sdata.attrs["deepspot_sd"][key]`` (persisted in the zarr store of a backed object).
    """
    attrs = getattr(element, "attrs", None)
    if isinstance(attrs, dict) and isinstance(attrs.get(ATTRS_KEY), dict):
        return dict(attrs[ATTRS_KEY])
    on_disk = _element_record_on_disk(sdata, key)
    if on_disk is not None:
        return on_disk
    record = (sdata.attrs or {}).get(ATTRS_KEY, {})
    if isinstance(record, dict) and isinstance(record.get(key), dict):
        return dict(record[key])
    return {}


def _element_record_on_disk(sdata: Any, key: str) -> dict[str, Any] | None:
    """Return the provenance record in the zarr attributes of element ``key``'s own group in the store, if any."""
    path = getattr(sdata, "path", None)
    if path is None:
        return None
    root = Path(str(path))
    for kind in _KINDS:
        folder = root / kind / key
        if not ((folder / "zarr.json").is_file() or (folder / ".zattrs").is_file()):
            continue
        import zarr

        try:
            record = zarr.open_group(str(folder), mode="r").attrs.get(ATTRS_KEY)
        except (OSError, ValueError, KeyError):  # unreadable metadata: fall back to the store-level record
            return None
        return dict(record) if isinstance(record, dict) else None
    return None


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

    For a backed object the element is written into a staging folder inside the store (``.deepspot_tmp/``, which
    no reader lists as an element), then moved into place with one rename (an existing element of the same name is
    swapped out in the same step where the filesystem allows it); the store-level metadata (provenance record,
    consolidated metadata) is updated under a lock on the store, so several processes can write different elements
    into one store at the same time. Staging folders of runs that were killed are removed by the next call on the
    store (logged). A failure leaves the object in memory and the elements of the store as they were.

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
        JSON-serialisable record stored in ``element.attrs["deepspot_sd"]`` and ``sdata.attrs["deepspot_sd"][key]``
        (for a backed object also in the element's own group of the store).
    show_progress_bar
        Show a dask progress bar while computing into the store.
    fill
        Backed objects and single-scale raster elements only: ``element`` then holds placeholder data of the right
        shape, chunks and dtype (e.g. :func:`dask.array.zeros`), and ``fill(array)`` writes the values into the
        element's full-resolution zarr array in the staging folder, before the swap, so that they are written once
        (e.g. with :func:`write_in_regions`).

    Returns
    -------
    The element now held by ``sdata`` (for a backed object: read back lazily from the store).

    Raises
    ------
    FileNotFoundError
        The store of a backed object does not exist (any more).
    OSError
        The store could not be written (read-only, full disk, ...); nothing was changed.
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
    what = f"`sdata.{kind}[{key!r}]`"
    _check_store(root, what)
    formats = _store_formats(root)
    try:
        with store_lock(root):
            clean_up_store(sdata)
            staging = _Staging.create(root, kind, key)
    except OSError as e:
        raise _clear_os_error(e, root, what) from e
    committed = False
    try:
        folder = staging.write(element, kind, key, formats, provenance, show_progress_bar)
        if fill is not None:
            fill(_full_resolution_array(folder))
        with store_lock(root):
            _check_store(root, what, during=True)
            _commit(root, kind, key, folder, staging.path)
            committed = True
            merged = _merged_attrs(sdata, root, key, provenance)
            if merged is not None:
                _write_root_attrs(sdata, merged, formats)
            if sdata.has_consolidated_metadata():
                sdata.write_consolidated_metadata()
        new = _read_back(root, kind, key)
    except OSError as e:
        staging.remove(root)
        if not _store_present(root):
            with contextlib.suppress(OSError):
                root.rmdir()  # the store was deleted during the run; zarr re-created its folder for our writes
        if committed:  # pragma: no cover - the element is in the store, its metadata update failed
            raise
        raise _clear_os_error(e, root, what) from e
    except BaseException:
        staging.remove(root)
        raise
    staging.remove(root)
    if provenance is not None:
        new.attrs[ATTRS_KEY] = provenance
    container[key] = new
    if merged is not None:
        sdata.attrs = merged
    logger.info("Adding %s and writing it to %s.", what, root)
    return new


#: Folder inside a store that holds the staging folders of runs in progress (hidden: spatialdata lists no element
#: under it and zarr does not see it as a group, so the consolidated metadata leaves it out too).
STAGING_DIR = ".deepspot_tmp"
_LEGACY_TMP = re.compile(r".+_tmp_[0-9a-f]{8}$")


@contextlib.contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the store at ``root`` (:func:`fcntl.flock` on its folder) for the block.

    Held only around the short metadata steps (clean-up, the swap, the store's attributes and consolidated
    metadata), not while computing. The operating system releases it when the process dies, also on ``SIGKILL``.
    Where the platform or filesystem has no such locks, the block runs unlocked (logged once).
    """
    try:
        fd = os.open(root, os.O_RDONLY)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            errno.ENOENT, f"The store of the SpatialData object does not exist (deleted or moved?): {root}"
        ) from e
    try:
        _flock(fd, blocking=True)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


_NO_LOCKS_LOGGED = False


def _flock(fd: int, *, blocking: bool) -> bool:
    """Take an exclusive flock on ``fd``; ``False`` if it is held elsewhere (non-blocking only)."""
    global _NO_LOCKS_LOGGED
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                raise
    if not _NO_LOCKS_LOGGED:  # pragma: no cover - platform dependent
        _NO_LOCKS_LOGGED = True
        logger.warning(
            "This filesystem or platform has no file locks: concurrent writers into one store are not protected, "
            "and staging folders of killed runs are only removed when they are older than a day."
        )
    return True


class _Staging:
    """A staging folder ``<store>/.deepspot_tmp/<kind>-<key>-<hex>/`` held (flock) by this process while it lives."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def create(cls, root: Path, kind: str, key: str) -> _Staging:
        path = root / STAGING_DIR / f"{kind}-{key}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        fd = os.open(path, os.O_RDONLY)
        _flock(fd, blocking=True)  # fresh folder: nobody else holds it
        return cls(path, fd)

    def write(
        self,
        element: Any,
        kind: str,
        key: str,
        formats: list[Any] | None,
        provenance: dict[str, Any] | None,
        show_progress_bar: bool,
    ) -> Path:
        """Write ``element`` as a one-element SpatialData container in the staging folder; return its folder."""
        import zarr
        from spatialdata import SpatialData

        with warnings.catch_warnings():
            # a table's annotated elements are in the store, not in the one-element container
            warnings.filterwarnings("ignore", message="The table is annotating", category=UserWarning)
            single = SpatialData(**{kind: {key: element}})
            with progress_bar(show_progress_bar):
                single.write(self.path / "sdata.zarr", sdata_formats=formats, consolidate_metadata=False)
        folder = self.path / "sdata.zarr" / kind / key
        if provenance is not None and kind != "tables":
            # the record travels with the element: the swap replaces both at once
            group = zarr.open_group(str(folder), mode="r+", use_consolidated=False)
            group.attrs[ATTRS_KEY] = provenance
        return folder

    def remove(self, root: Path) -> None:
        """Delete the staging folder (after a failure: with what was written of the element) and release it."""
        with contextlib.suppress(OSError), store_lock(root):
            shutil.rmtree(self.path, ignore_errors=True)
            with contextlib.suppress(OSError):
                (root / STAGING_DIR).rmdir()  # only if empty: other runs may stage at the same time
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def clean_up_store(sdata: Any) -> list[str]:
    """Remove what killed runs left in the store of ``sdata``; return the removed staging folders' names.

    A staging folder whose lock no live process holds belongs to a run that died (killed, out of memory, power
    loss): it is deleted (after putting back an element it had moved aside, see :func:`_commit`) and the store's
    consolidated metadata is rewritten if it no longer lists the elements on disk. Each removal is logged. Elements
    named like the temporary elements of deepspot_sd 0.5 and older (``<key>_tmp_<8 hex digits>``) are reported,
    not deleted. Called by every write into a backed object, under :func:`store_lock`.
    """
    root = Path(str(sdata.path))
    base = root / STAGING_DIR
    removed: list[str] = []
    if base.is_dir():
        for folder in sorted(base.iterdir()):
            if not folder.is_dir():
                with contextlib.suppress(OSError):
                    folder.unlink()
                continue
            fd = os.open(folder, os.O_RDONLY)
            try:
                if not _flock(fd, blocking=False):
                    continue  # a live run is writing it
                _roll_back(root, folder)
                shutil.rmtree(folder)
                removed.append(folder.name)
                logger.info(
                    "Removed %s from the store %s: the staging folder of a run that was interrupted (it was never "
                    "listed as an element).",
                    folder.name,
                    root,
                )
            except OSError as e:
                logger.warning("Could not remove the staging folder %s of an interrupted run: %s", folder, e)
            finally:
                os.close(fd)
        with contextlib.suppress(OSError):
            base.rmdir()
    if removed and sdata.has_consolidated_metadata() and _consolidated_is_stale(root):
        sdata.write_consolidated_metadata()
        logger.info("Rewrote the consolidated metadata of %s: an interrupted run had not updated it.", root)
    for kind in _KINDS:
        folder = root / kind
        if folder.is_dir():
            for child in sorted(folder.iterdir()):
                if child.is_dir() and _LEGACY_TMP.match(child.name):
                    logger.warning(
                        "The store %s holds `%s/%s`, named like a temporary element that deepspot_sd 0.5 or older "
                        "left behind when a run was killed. If it is one, delete it: "
                        "`sdata.delete_element_from_disk(%r)`.",
                        root,
                        kind,
                        child.name,
                        child.name,
                    )
    return removed


def _consolidated_is_stale(root: Path) -> bool:
    """Whether the consolidated metadata of the store lists other elements than its folders hold."""
    import zarr

    consolidated = zarr.open_group(str(root), mode="r")
    plain = zarr.open_group(str(root), mode="r", use_consolidated=False)

    def listing(group: Any) -> set[str]:
        out = set()
        for kind in _KINDS:
            if kind in group:
                out.update(f"{kind}/{name}" for name in group[kind].group_keys() if not name.startswith("."))
        return out

    return listing(consolidated) != listing(plain)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # pragma: no cover - glibc < 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # pragma: no cover - filesystem without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _commit(root: Path, kind: str, key: str, folder: Path, staging: Path) -> None:
    """Move the complete element ``folder`` to ``<root>/<kind>/<key>``, under the store lock.

    A new element arrives with one rename. An existing element is swapped with it in one step where the
    filesystem allows (``renameat2``, Linux): afterwards ``folder`` holds the old element, deleted with the staging
    folder. Elsewhere the old element is first moved into the staging folder (written down in ``replace.json``), then
    the new one renamed into place; a run killed between the two renames gets the old element put back by the next
    call (:func:`clean_up_store`).
    """
    import zarr

    kind_dir = root / kind
    if not kind_dir.is_dir():
        zarr.open_group(str(root), mode="r+", use_consolidated=False).require_group(kind)
    target = kind_dir / key
    if not target.exists():
        os.rename(folder, target)
    elif not _rename_exchange(folder, target):  # pragma: no cover - exercised where renameat2 is missing
        (staging / "replace.json").write_text(json.dumps({"kind": kind, "key": key}))
        os.rename(target, staging / "old")
        os.rename(folder, target)
    if kind == "labels":
        _register_label(root, key)


def _roll_back(root: Path, folder: Path) -> None:
    """Put back an element that a killed run had moved aside into its staging ``folder`` (see :func:`_commit`)."""
    journal = folder / "replace.json"
    if not journal.is_file() or not (folder / "old").is_dir():
        return
    record = json.loads(journal.read_text())
    target = root / record["kind"] / record["key"]
    if not target.exists():
        os.rename(folder / "old", target)
        logger.info("Put back `%s/%s` in %s: a run replacing it was interrupted.", record["kind"], record["key"], root)


def _register_label(root: Path, key: str) -> None:
    """Add ``key`` to the OME-NGFF list of labels in the attributes of the store's ``labels`` group."""
    import zarr

    group = zarr.open_group(str(root / "labels"), mode="r+", use_consolidated=False)
    attrs = group.attrs.asdict()
    ome = attrs.get("ome", attrs) if "ome" in attrs or "labels" not in attrs else attrs
    names = list(ome.get("labels", []))
    if key not in names:
        ome["labels"] = [*names, key]
        if ome is not attrs:
            attrs["ome"] = ome
        group.attrs.put(attrs)


def _merged_attrs(sdata: Any, root: Path, key: str, provenance: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the store-level attributes to write: those on disk (other writers' records), this object's, ``key``'s.

    ``None`` when nothing about ``key`` changes (no record before, none now).
    """
    import zarr

    disk = zarr.open_group(str(root), mode="r", use_consolidated=False).attrs.asdict()
    disk.pop("spatialdata_attrs", None)
    memory = dict(sdata.attrs or {})
    disk_records = disk.get(ATTRS_KEY, {}) if isinstance(disk.get(ATTRS_KEY), dict) else {}
    memory_records = memory.get(ATTRS_KEY, {}) if isinstance(memory.get(ATTRS_KEY), dict) else {}
    if provenance is None and key not in disk_records and key not in memory_records:
        return None
    records = {**memory_records, **disk_records}
    if provenance is None:
        records.pop(key, None)
    else:
        records[key] = provenance
    return {**disk, **memory, ATTRS_KEY: records}


def _write_root_attrs(sdata: Any, attrs: dict[str, Any], formats: list[Any] | None) -> None:
    previous = sdata.attrs
    sdata.attrs = attrs
    try:
        sdata.write_attrs(sdata_format=None if formats is None else formats[-1])
    finally:
        sdata.attrs = previous


def _store_present(root: Path) -> bool:
    return (root / "zarr.json").is_file() or (root / ".zgroup").is_file()


def _check_store(root: Path, what: str, *, during: bool = False) -> None:
    """Raise a :class:`FileNotFoundError` when the store at ``root`` is gone (or is no zarr store any more)."""
    if _store_present(root):
        return
    when = "was deleted or moved while writing" if during else "does not exist (deleted or moved?); cannot write"
    raise FileNotFoundError(
        errno.ENOENT,
        f"The store of the SpatialData object {when} {what}: {root}. The object in memory is unchanged; write it "
        f"to a new store with `sdata.write(path)`.",
    )


def _clear_os_error(e: OSError, root: Path, what: str) -> OSError:
    """Return the same kind of error, saying what could not be written where and that nothing was changed."""
    if isinstance(e, FileNotFoundError) and "SpatialData object" in str(e):
        return e
    reason = e.strerror or str(e)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "The store is read-only: open a writable copy, or pass `inplace=False` to get the result in memory."
    elif e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        fix = "Free some space (or write the object to a store on another disk with `sdata.write(path)`) and rerun."
    else:
        fix = "Check the store and rerun."
    return OSError(
        e.errno,
        f"Could not write {what} to the store {root}: {reason}. Nothing was changed: the object in memory and the "
        f"elements of the store are as they were. {fix}",
    )


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
