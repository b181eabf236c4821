"""Run a ``.pt2`` AOTInductor package that embeds TensorRT engines: no AITune, no ``torch_tensorrt`` import.

What a process needs to run such a package: PyTorch (the version that wrote it), a CUDA GPU of the
architecture it was built on, the TensorRT (or TensorRT-RTX) library, and Torch-TensorRT's runtime
library ``libtorchtrt_runtime.so``, which registers the ``tensorrt::Engine`` class the engines are
stored as. The Python ``torch_tensorrt`` package itself is not imported: ``pt2.installed`` loads the two
libraries directly (see docs/pt2.md for what that avoids).

Before anything is deserialised, :func:`load_pt2` checks every entry of the archive against its CRC32 (the
C++ loader does not) and compares what the package records it was built for with this machine, found from
installed files only (``pt2.package``, ``pt2.installed``).

Calls then take the same path as the ``.ait`` default: on TensorRT-RTX the package's engines get the kernel
specialization it records (``pt2.engines``; "eager" where calls are captured), and each input shape's call is
captured in a CUDA graph on its first call (``cuda_graphs``). The AOTInductor runner is created single-threaded
(the thread-safe one queries and synchronises CUDA events on every call, which a capture refuses), so
:class:`Pt2Model` runs one call at a time under a lock.

Example:
    >>> from aitune_trt_aot.pt2.runtime import load_pt2  # doctest: +SKIP
    >>> model = load_pt2("model.pt2")  # doctest: +SKIP
    >>> y = model(torch.randn(4, 64, device="cuda"))  # doctest: +SKIP

"""

from __future__ import annotations

import json
import logging
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot import hints
from aitune_trt_aot.cuda_graphs import CudaGraphRunner, check_cuda_graphs, plain_tensors
from aitune_trt_aot.engine_errors import CheckedEngines
from aitune_trt_aot.engine_runtime import kernel_strategy
from aitune_trt_aot.errors import ConfigError, Pt2InputError, Pt2LoadError
from aitune_trt_aot.placement import PinnedRunner, current_device, needs_pinning, resolve_device
from aitune_trt_aot.pt2.engines import give_settings, package_engines
from aitune_trt_aot.pt2.installed import installed_torch_tensorrt, load_tensorrt_runtime, share_cxx_runtime
from aitune_trt_aot.pt2.package import (
    CONSTANTS_METADATA_KEY,
    DEFAULT_MODEL_NAME,
    INPUTS_METADATA_KEY,
    check_built_for,
    check_intact,
    input_ranges_from_metadata,
    model_names,
    package_metadata,
    recorded_kernel_specialization,
)
from aitune_trt_aot.ranges import InputRange

logger = logging.getLogger(__name__)


def traced_keyword_order(in_spec: pytree.TreeSpec) -> list[str]:
    """The keyword argument names of a package's ``(args, kwargs)`` call spec, in traced order."""
    return list(in_spec.child(1).context) if in_spec.num_children == 2 else []


class Pt2Model:
    """A loaded ``.pt2`` package: call it like the module it was compiled from.

    The call signature is the traced module's, without the plain-valued arguments that were built into
    the engines (``constants`` lists them with their values). Tensors are checked against the compiled
    ranges first: a batch outside them raises :class:`Pt2InputError` instead of returning nothing.

    Thread safety: the package's runner is single-threaded (:func:`load_pt2`), so calls into it take turns under a
    lock; under CUDA graphs a replay runs without it (``cuda_graphs.CudaGraphRunner`` has its own).

    Attributes:
        graphs: The CUDA-graph runner the calls go through, None where calls are not captured.

    """

    def __init__(self, loader: Any, path: Path, device: torch.device, cuda_graphs: bool | str = False) -> None:
        """Wrap an ``AOTIModelPackageLoader``; use :func:`load_pt2` rather than this.

        ``cuda_graphs``: True captures one graph per input signature (a failed capture raises), ``"auto"`` too but
        a signature whose capture fails runs without one (with a warning), False never captures.
        """
        self._loader = loader
        self._lock = threading.Lock()
        # TensorRT failures inside the package's engines are only logged: the call raises EngineCallError instead.
        checked = CheckedEngines(self._run_package, f"{path} (.pt2)")
        self.graphs = None if not cuda_graphs else CudaGraphRunner(checked, device, fall_back=cuda_graphs == "auto")
        self._run: Any = checked if self.graphs is None else self.graphs
        if self.graphs is not None and needs_pinning(device):  # a capture runs on the current device's streams
            self._run = PinnedRunner(self.graphs, device, f"{path} (.pt2)")
        self.path = path
        self.device = device
        in_spec, out_spec = loader.get_call_spec()
        self._keyword_order = traced_keyword_order(pytree.treespec_loads(in_spec))
        self._out_spec = pytree.treespec_loads(out_spec)
        self.metadata: dict[str, str] = dict(loader.get_metadata())
        inputs = self.metadata.get(INPUTS_METADATA_KEY)
        self.inputs: list[InputRange] | None = None if inputs is None else input_ranges_from_metadata(inputs)
        constants = self.metadata.get(CONSTANTS_METADATA_KEY)
        self.constants: dict[str, Any] = {} if constants is None else json.loads(constants)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the package on ``args``/``kwargs`` (tensors on ``self.device``)."""
        if plain_tensors(args, kwargs):
            flat = list(args)  # the common call, without a pytree walk (1 us, not 9: benchmarks/call_overhead.py)
        else:
            if kwargs:
                kwargs = self._traced_keywords(kwargs)
            flat = [leaf for leaf in pytree.tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
        return pytree.tree_unflatten(self.run_flat(flat), self._out_spec)

    def _traced_keywords(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword tensors in the order the package was traced with (what pytree flattening expects).

        A keyword that names a value built into the package must carry that value; any other unknown keyword
        is an error, never silently dropped.
        """
        for key, value in kwargs.items():
            if key in self._keyword_order:
                continue
            if key in self.constants:
                if type(value) is not type(self.constants[key]) or value != self.constants[key]:
                    raise Pt2InputError(
                        f"{self.path} was compiled with {key}={self.constants[key]!r} built in; this call passes "
                        f"{key}={value!r}. Call it with the compiled value (or leave it out), or re-tune with this one."
                    )
                continue
            raise Pt2InputError(
                f"{self.path} takes no keyword {key!r}; its keyword inputs are {self._keyword_order or 'none'} and "
                f"its built-in values {self.constants or 'none'}."
            )
        return {key: kwargs[key] for key in self._keyword_order if key in kwargs}

    def run_flat(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run on the flat list of input tensors (positional, then keyword, as traced); return the flat outputs.

        The same calling convention as C++'s ``AOTIModelPackageLoader::run``.
        """
        self._check(tensors)
        return self._run(*tensors)

    def _run_package(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """One call of the package's runner, which is not thread-safe: one at a time."""
        with self._lock:
            return self._loader.boxed_run(list(tensors))

    def tensorrt_engines(self) -> list[Any]:
        """The package's live TensorRT engine objects (``pt2.engines``); raises :class:`Pt2LoadError` if unreachable."""
        return package_engines(self._loader, self.path)

    def _check(self, flat: list[torch.Tensor]) -> None:
        if self.inputs is None:
            return
        if len(flat) != len(self.inputs):
            raise Pt2InputError(
                f"{self.path} takes {len(self.inputs)} tensors, got {len(flat)}. Call it with the tensors of the "
                f"traced module, without the values built into it ({self.constants or 'none'})."
            )
        for index, (tensor, allowed) in enumerate(zip(flat, self.inputs, strict=True)):
            problem = allowed.violation(tensor)
            if problem is not None:
                raise Pt2InputError(
                    f"Input tensor {index} {problem} ({self.path}). Call it with shapes inside the compiled ranges "
                    f"({allowed.describe()}), or re-tune with a wider range."
                )
            if tensor.device != self.device:
                raise Pt2InputError(f"Input tensor {index} is on {tensor.device}; the package runs on {self.device}.")


def load_pt2(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    cuda_graphs: bool | str = "auto",
    runtime_settings: bool = True,
) -> Pt2Model:
    """Load a ``.pt2`` package written by this backend (or ``torch_tensorrt.save(output_format="aot_inductor")``).

    Args:
        path: The package file.
        device: The CUDA device to run on (default: the current CUDA device). The package's engines are loaded with
            it current, so they and the outputs land on it whichever device the package was built on.
        model_name: The model inside the package (packages written by this backend hold one, ``"model"``).
        cuda_graphs: As the backend config's: ``"auto"`` (default) captures one CUDA graph per input shape on its
            first call, and a shape whose capture fails runs without one (with a warning); ``True`` too, but a
            failed capture raises; ``False`` never captures. A package built with
            ``kernel_specialization="lazy"`` is not captured under ``"auto"``.
        runtime_settings: Give the engines their kernel specialization here (False: the caller does, as the
            ``.ait`` activation does, which also gives them the checkpoint's kernel cache: ``engine_runtime``).

    Before anything is deserialised the package is checked: every archive entry against its CRC32, and what it
    records it was built for (GPU architecture, TensorRT flavour and version, Torch-TensorRT, torch's release)
    against this machine; facts unknown on either side are not compared. On TensorRT-RTX the engines then get the
    kernel specialization the package records ("eager" where calls are captured: ``engine_runtime.kernel_strategy``).

    Raises:
        Pt2LoadError: the file is missing, damaged or built for another machine or stack, ``device`` is not a CUDA
            device this machine has, or CUDA or the TensorRT / Torch-TensorRT runtime libraries are missing.
        ConfigError: ``cuda_graphs`` is not True, False or ``"auto"``, or is True for a package built with
            ``kernel_specialization="lazy"``.

    """
    check_cuda_graphs(cuda_graphs)
    path = Path(path)
    if not path.is_file():
        raise Pt2LoadError(f"No .pt2 package at {path}.")
    if not zipfile.is_zipfile(path):
        raise Pt2LoadError(
            f"{path} is not a complete .pt2 package (not a readable zip archive): the file is damaged or was cut "
            "short. Write it again with aitune_trt_aot.save_pt2."
        )
    check_intact(path)
    device = resolve_device(device, error=Pt2LoadError)  # refuses a device this machine does not have
    metadata = package_metadata(path, model_name)
    check_built_for(path, metadata, device)
    choice = recorded_kernel_specialization(metadata, path)
    cuda_graphs = graphs_for(choice, cuda_graphs, path)
    if not torch.cuda.is_available():
        raise Pt2LoadError(f"{path} holds TensorRT engines, which need an NVIDIA GPU; CUDA is not available here.")
    load_tensorrt_runtime()
    share_cxx_runtime()
    torch.cuda.init()
    if device.type != "cuda":
        raise Pt2LoadError(f"TensorRT engines run on CUDA devices, not {device}.")
    index = device.index
    # The loader is created directly: torch._inductor.aoti_load_package first tries the newer archive reader
    # and, on any RuntimeError, loads the whole package a second time as an "outdated" one. It is created with the
    # device current: Torch-TensorRT deserialises the package's engines on the current device (``placement``).
    # It is single-threaded (run_single_threaded=True, one runner): the thread-safe runner queries and synchronises
    # a CUDA event on every call, which invalidates a CUDA-graph capture (pytorch#148601); Pt2Model locks instead.
    try:
        with current_device(device):
            loader = torch._C._aoti.AOTIModelPackageLoader(str(path), model_name, True, 1, index)
    except RuntimeError as error:
        names = model_names(path)
        if names and model_name not in names:
            raise Pt2LoadError(f"{path} has no model {model_name!r}; it holds {names}.") from error
        raise Pt2LoadError(f"Could not load {path}: {error}") from error
    model = Pt2Model(loader, path, torch.device("cuda", index), cuda_graphs)
    if runtime_settings and installed_torch_tensorrt()[0] == "TensorRT-RTX":  # standard TensorRT has none
        set_kernel_strategy(model, kernel_strategy(choice, model.graphs is not None))
    return model


def graphs_for(choice: str, cuda_graphs: bool | str, path: Path) -> bool | str:
    """The ``cuda_graphs`` a package built with kernel specialization ``choice`` runs under when asked for one.

    Lazily specialised kernels must not be captured: ``"auto"`` then runs without graphs, ``True`` is refused.
    """
    if choice != "lazy" or cuda_graphs is False:
        return cuda_graphs
    if cuda_graphs is True:
        raise ConfigError(
            f"{path} was built with kernel_specialization='lazy', and {hints.LAZY_KERNELS_UNDER_GRAPHS} Load it with "
            "cuda_graphs=False (or 'auto', which then captures nothing)."
        )
    logger.info("%s was built with kernel_specialization='lazy': its calls run without CUDA graphs.", path)
    return False


def set_kernel_strategy(model: Pt2Model, strategy: str) -> None:
    """Give the package's engines the kernel specialization ``strategy``; where they cannot be reached, warn once.

    Standalone packages get no kernel cache (the ``.ait`` checkpoint keeps one: ``engine_runtime``).
    """
    try:
        engines = model.tensorrt_engines()
        for engine in engines:
            give_settings(engine, strategy)
    except Exception as error:  # a torch or Torch-TensorRT without this API: slower first calls, same results
        logger.warning(
            "Could not set the kernel specialization of the engines in %s (%s: %s); they run with TensorRT-RTX's "
            "defaults.",
            model.path,
            type(error).__name__,
            error,
        )
        return
    logger.info("Gave %d engine(s) of %s kernel specialization %r.", len(engines), model.path, strategy)
