"""Import shim for the GPU machine of ``scripts/gpu/train_on_jax.sh``: stub what training does not use.

That machine has no spatialdata stack and no TensorFlow, and cannot install them; training needs neither. The
listed top-level modules are stubbed only when they cannot be imported, so ``import deepspot_sd`` works there.
"""

import importlib.abc
import importlib.machinery
import sys
import types
from unittest import mock

STUBS = {
    "spatialdata",
    "spatialdata_plot",
    "anndata",
    "dask",
    "distributed",
    "zarr",
    "squidpy",
    "geopandas",
    "shapely",
    "pooch",
    "multiscale_spatial_image",
    "spatial_image",
    "ome_zarr",
    "xarray_schema",
    "tensorflow",
    "numcodecs",
    "datashader",
    "xarray",
    "tqdm",
}


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


class _StubFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in STUBS:
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        return None


sys.meta_path.append(_StubFinder())  # last: only what the real finders cannot find gets a stub
