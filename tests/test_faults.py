"""Fault injection on backed stores: SIGKILL at several points of each writing function, concurrent writers, a
read-only store, a full disk, a store deleted during a run (issue 23; the table on the Reliability page)."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import spatialdata as sd

import deepspot_sd as dsd
from deepspot_sd import _store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}

# the steps of the pipeline, each on the store the previous one left; `key`: the elements each step writes
STEPS = {
    "enhance": ("dsd.tl.enhance(sdata, 'smfish', show_progress_bar=False)", ["smfish_enhanced"]),
    "detect_spots": (
        "dsd.tl.detect_spots(sdata, 'smfish_enhanced', show_progress_bar=False)",
        ["smfish_enhanced_spots"],
    ),
    "assign_spots": (
        "dsd.tl.assign_spots(sdata, 'smfish_enhanced_spots', 'cells', nuclei_key='nuclei')",
        ["smfish_enhanced_spots", "cells_smfish_enhanced_spots"],
    ),
    "sector_enrichment": (
        "dsd.tl.sector_enrichment(sdata, 'cells_smfish_enhanced_spots', reference='wound')",
        ["cells_smfish_enhanced_spots"],
    ),
}
ORDER = list(STEPS)

# the child: open the store, arm one kill point, run the step. Kill points (what is killed, when):
#   region N       the N-th region write of enhance's result (regions of 64 px), mid-computation
#   zarr N         the N-th file zarr writes into the staging folder, while spatialdata writes the element
#   commit N       the N-th swap into place, before anything moved (the staged element complete)
#   after-commit N just after the N-th swap, before the store's attributes and consolidated metadata are updated
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import spatialdata as sd
    import deepspot_sd as dsd
    from deepspot_sd import _store
    from deepspot_sd.tl import _enhance

    store, point, n, code = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    count = [0]

    def hit():
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    if point == "region":
        original = _enhance.write_in_regions

        class Target:
            def __init__(self, target):
                self.target, self.shape = target, target.shape

            def __setitem__(self, index, value):
                hit()
                self.target[index] = value

        _enhance.write_in_regions = lambda arr, target, **kw: original(arr, Target(target), **{**kw, "region_px": 64})
    elif point == "zarr":
        import zarr.storage._local as local
        put = local._put

        def counted(path, value, exclusive=False):
            if _store.STAGING_DIR in str(path):
                hit()
            return put(path, value, exclusive)

        local._put = counted
    elif point in ("commit", "after-commit"):
        commit = _store._commit

        def killing(*args, **kwargs):
            if point == "commit":
                hit()
            commit(*args, **kwargs)
            if point == "after-commit":
                hit()

        _store._commit = killing
    sdata = sd.read_zarr(store)
    exec(code)
    print("FINISHED")
    """
)


def _run(step, store, point="none", n=0):
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(store), point, str(n), STEPS[step][0]],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _listing(path):
    back = sd.read_zarr(path)
    return {
        f"{kind}/{name}" for kind in ("images", "labels", "points", "shapes", "tables") for name in getattr(back, kind)
    }


def _content(path, key):
    back = sd.read_zarr(path)
    element = back[key]
    if hasattr(element, "obs"):  # table
        return (
            element.obs.sort_index().to_string()
            + repr(np.asarray(element.X).tolist())
            # sorted: the order of obsm keys read back follows the file system's listing, not the content
            + repr({k: np.asarray(element.obsm[k]).round(9).tolist() for k in sorted(element.obsm)})
        )
    if hasattr(element, "compute") and hasattr(element, "columns"):  # points
        df = element.compute().sort_values(["y", "x"]).reset_index(drop=True)
        return df.round(6).to_string()
    return np.asarray(element.values)


def _same(a, b):
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """The store before each step (stage i: steps 0..i-1 run, uninterrupted, in-process), and after the last."""
    base = tmp_path_factory.mktemp("stages")
    sdata = dsd.datasets.wound_healing((256, 256), seed=0, cell_spacing_px=100)
    paths = []
    for i, _step in enumerate([*ORDER, None]):
        path = base / f"stage{i}.zarr"
        if i == 0:
            sdata.write(path)
        else:
            shutil.copytree(paths[-1], path)
            sdata = sd.read_zarr(path)
            exec(STEPS[ORDER[i - 1]][0], {"dsd": dsd, "sdata": sdata})
        paths.append(path)
    return paths


KILLS = [
    ("enhance", "zarr", 3),
    ("enhance", "commit", 1),
    ("enhance", "after-commit", 1),
    ("detect_spots", "zarr", 2),
    ("detect_spots", "after-commit", 1),
    ("assign_spots", "commit", 1),
    ("assign_spots", "commit", 2),
    ("sector_enrichment", "commit", 1),
]


@pytest.mark.parametrize(("step", "point", "n"), KILLS, ids=[f"{s}-{p}-{n}" for s, p, n in KILLS])
def test_sigkill_leaves_no_orphan_and_rerun_gives_the_same_result(stages, tmp_path, caplog, step, point, n):
    i = ORDER.index(step)
    store = tmp_path / "s.zarr"
    shutil.copytree(stages[i], store)
    before = _listing(store)
    sources = {key: _content(store, key.split("/")[1]) for key in before if not key.startswith("shapes")}
    result = _run(step, store, point, n)
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr[-3000:]
    assert "FINISHED" not in result.stdout

    # what read_zarr lists: exactly the elements before, or those plus the finished result
    after = _listing(store)
    written = {
        f"{kind}/{key}"
        for key in STEPS[step][1]
        for kind in ("images", "points", "tables")
        if f"{kind}/{key}" in _listing(stages[i + 1])
    }
    assert after == before or after == before | written, after ^ before
    assert not any("tmp" in key for key in after)
    for key, content in sources.items():  # sources intact (an element the step replaces: old or new, whole)
        if key in written:
            continue
        _same(_content(store, key.split("/")[1]), content)

    # the next call removes what the killed run left (logged) and gives the uninterrupted run's result
    sdata = sd.read_zarr(store)
    with caplog.at_level("INFO", logger="deepspot_sd"):
        exec(STEPS[step][0], {"dsd": dsd, "sdata": sdata})
    assert "interrupted" in caplog.text
    assert not (store / _store.STAGING_DIR).exists()
    assert _listing(store) == _listing(stages[i + 1])
    for key in written:
        _same(_content(store, key.split("/")[1]), _content(stages[i + 1], key.split("/")[1]))
    if step == "enhance":  # the provenance record detect_spots reads arrives with the element
        assert _store.get_provenance(sd.read_zarr(store), "smfish_enhanced")["function"] == "enhance"


def test_two_processes_write_different_elements_into_one_store(stages, tmp_path):
    """Two runs stage at the same time (a barrier in the child holds both at the swap) and both land."""
    store = tmp_path / "s.zarr"
    shutil.copytree(stages[1], store)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    code = textwrap.dedent(
        f"""
        import os, sys, time
        import spatialdata as sd
        import deepspot_sd as dsd
        from deepspot_sd import _store
        me = sys.argv[1]
        commit = _store._commit
        def waiting(*args, **kwargs):
            open(os.path.join({str(barrier)!r}, me), "w").close()
            t0 = time.time()
            while len(os.listdir({str(barrier)!r})) < 2 and time.time() - t0 < 120:
                time.sleep(0.05)
            commit(*args, **kwargs)
        _store._commit = waiting
        sdata = sd.read_zarr({str(store)!r})
        dsd.tl.detect_spots(sdata, "smfish_enhanced", key_added="spots_" + me, threshold=float(sys.argv[2]),
                            show_progress_bar=False)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, name, thr], env=ENV, stderr=subprocess.PIPE, text=True)
        for name, thr in (("a", "0.5"), ("b", "0.6"))
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    back = sd.read_zarr(store)
    assert {"spots_a", "spots_b", "smfish_enhanced_spots"} - set(back.points) == {"smfish_enhanced_spots"}
    records = back.attrs["deepspot_sd"]
    assert records["spots_a"]["threshold"] != records["spots_b"]["threshold"]  # neither record lost
    assert "smfish_enhanced" in records
    assert back.has_consolidated_metadata()
    assert not (store / _store.STAGING_DIR).exists()


def test_threads_writing_into_one_store(stages, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(stages[1], store)
    errors = []

    def work(name):
        try:
            sdata = sd.read_zarr(store)
            dsd.tl.detect_spots(sdata, "smfish_enhanced", key_added=name, show_progress_bar=False)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"spots_{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    back = sd.read_zarr(store)
    assert {"spots_0", "spots_1", "spots_2"} <= set(back.points)
    assert {"spots_0", "spots_1", "spots_2"} <= set(back.attrs["deepspot_sd"])


def _state(sdata, path):
    return sorted(sdata.images), dict(sdata.attrs), _listing(path), sorted(os.listdir(path))


@pytest.mark.parametrize(
    ("where", "err"),
    [("mkdir", errno.EROFS), ("mkdir", errno.EACCES), ("commit", errno.ENOSPC)],
    ids=["read-only-fs", "permission", "disk-full-at-swap"],
)
def test_write_errors_are_clear_and_change_nothing(stages, tmp_path, monkeypatch, where, err):
    store = tmp_path / "s.zarr"
    shutil.copytree(stages[1], store)
    sdata = sd.read_zarr(store)
    state = _state(sdata, store)
    if where == "mkdir":  # the first write into the store is the staging folder

        def fail(self, *args, **kwargs):
            raise OSError(err, os.strerror(err), str(self))

        monkeypatch.setattr(_store.Path, "mkdir", fail)
    elif where == "chunk":  # the second region of the result fails to write, after the first was written
        import zarr.storage._local as local

        put, count = local._put, [0]

        def full(path, value, exclusive=False):
            if _store.STAGING_DIR in str(path) and "/c/" in str(path):
                count[0] += 1
                if count[0] > 1:
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return put(path, value, exclusive)

        monkeypatch.setattr(local, "_put", full)
        from deepspot_sd.tl import _enhance

        original = _enhance.write_in_regions
        monkeypatch.setattr(_enhance, "write_in_regions", lambda a, t, **kw: original(a, t, **{**kw, "region_px": 64}))
    else:

        def fail(*args, **kwargs):
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(_store, "_commit", fail)
    with pytest.raises(OSError, match="Nothing was changed") as info:
        dsd.tl.enhance(sdata, "smfish", key_added="again", show_progress_bar=False)
    assert info.value.errno == err
    assert str(store) in str(info.value)
    monkeypatch.undo()
    assert _state(sdata, store) == state
    # the object in memory is still usable: the same call now works and writes into the store
    dsd.tl.enhance(sdata, "smfish", key_added="again", show_progress_bar=False)
    _same(sdata.images["again"].values, _content(stages[2], "smfish_enhanced"))
    assert "images/again" in _listing(store)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_store_by_permissions(stages, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(stages[1], store)
    sdata = sd.read_zarr(store)
    os.chmod(store, 0o555)
    try:
        with pytest.raises(PermissionError, match="read-only"):
            dsd.tl.detect_spots(sdata, "smfish_enhanced", show_progress_bar=False)
    finally:
        os.chmod(store, 0o755)
    assert "smfish_enhanced_spots" not in sdata.points


def test_store_deleted_during_a_run(stages, tmp_path, monkeypatch):
    store = tmp_path / "s.zarr"
    shutil.copytree(stages[0], store)
    sdata = sd.read_zarr(store)
    commit = _store._commit

    def delete_then_commit(*args, **kwargs):
        raise AssertionError("the swap must not run into a deleted store")

    from deepspot_sd.tl import _enhance

    original = _enhance.write_in_regions

    def delete_midway(arr, target, **kw):
        shutil.rmtree(store)  # the store goes away while the result is computed (zarr re-creates folders it writes)
        original(arr, target, **kw)

    monkeypatch.setattr(_enhance, "write_in_regions", delete_midway)
    monkeypatch.setattr(_store, "_commit", delete_then_commit)
    with pytest.raises(FileNotFoundError, match="deleted or moved"):
        dsd.tl.enhance(sdata, "smfish", show_progress_bar=False)
    assert not store.exists()  # nothing half-made left where the store was
    assert "smfish_enhanced" not in sdata.images
    monkeypatch.setattr(_store, "_commit", commit)
    monkeypatch.setattr(_enhance, "write_in_regions", original)
    # the next call says so before computing anything
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dsd.tl.enhance(sdata, "smfish", show_progress_bar=False)
    assert sorted(sdata.images) == ["smfish"]
