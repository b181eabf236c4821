"""The one stack seam: what the installed Torch-TensorRT / TensorRT stack is, and every release workaround.

Other modules ask questions here (``current_stack().tensorrt_rtx``, ``has_frontend``, ...) and never look
at versions or flavours themselves. What builds and activations require of the machine is asked through
``aitune_trt_aot.toolkit``, which calls :func:`require_torch_tensorrt` and :func:`require_cuda` from here.

Everything that exists only because of a particular release is listed below, each with the condition for
deleting it; the code of some lives where it acts, named here. ``tests/cpu/test_stack_list.py`` fails when the
package reaches into a private name (one starting with ``_``) of torch, Torch-TensorRT or AITune that this list
does not name.

Release workarounds:

* ``ensure_tensorrt_module``: TensorRT-RTX installs its Python module as ``tensorrt_rtx``, while
  ``aitune.torch`` imports ``tensorrt`` at import time. The alias itself is the top-level module
  ``aitune_trt_aot_tensorrt_alias``, which the installed ``aitune_trt_aot_tensorrt_alias.pth`` also runs at
  interpreter start (so ``aitune.torch`` may be imported first; ``setup.py`` installs the file). Delete all of it
  when AITune imports TensorRT-RTX itself or no longer imports ``tensorrt`` at import time.
* ``MINIMUM_TORCH`` / ``MINIMUM_TORCH_TENSORRT``: torch 2.14 with Torch-TensorRT 2.14 is the oldest
  supported stack. Older Torch-TensorRT releases gave wrong results with dynamic shapes on TensorRT-RTX
  in the C++ runtime and had a separate Python runtime; the workarounds for them were removed. Raise the
  minimum, never lower it without bringing those workarounds back.
* ``strongly_typed``: TensorRT-RTX networks are always strongly typed, so the TorchScript frontend's
  builder-flag precisions (weak typing) are refused there (``plan``). Delete when the TorchScript frontend gains
  strong typing.
* The autocast fallback (``plan.autocast_fallback``, run by ``pipeline/compile.py``): Torch-TensorRT 2.14's
  rule-based autocast fails on transformer graphs with dynamic shapes (``'SymInt' object has no attribute 'to'``,
  measured 2026-11); ``precision_route="auto"`` then builds with the module cast instead. Delete the fallback when
  autocast builds a dynamic-batch ``TransformerEncoder`` in fp16 (the GPU encoder case with ``precision_route=
  "autocast"``).
* ``exported_program`` engines are pickled as raw bytes with this package's constructor
  (``aitune_trt_aot.formats.raw_engines``): Torch-TensorRT 2.14 stores them as base64 text and decodes
  every TensorRT-RTX engine on load (it skips only standard TensorRT's ``ftrt`` magic). Delete when
  Torch-TensorRT stores engines as bytes; keep ``rebuild_engine`` importable while artifacts that name it
  are to be loaded.
* The retrace fallback (``formats/exported_program.py``): ``torch_tensorrt.save(retrace=False)`` fails on some
  graphs (verifier errors, non-tensor inputs, graphs with PyTorch-run submodules: "'Node' object is not
  iterable", measured for an rfft graph on 2.14), so the save is retried with ``retrace=True`` from the recorded
  call. Delete when ``retrace=False`` saves every graph the dynamo frontend builds (the GPU ``fft_mlp`` case).
* The packaging lock (``formats/aot_inductor.packaging_lock``): AOTInductor zips a package from a cache folder
  named by the hash of its generated code, which one-engine models of the same shapes share; parallel builds
  packaged each other's files (docs/known-issues.md). Delete when AOTInductor packages from a folder of its own
  per build.
* The ``.pt2`` loader (``aitune_trt_aot.pt2.runtime``; ``pt2.installed``): ``share_cxx_runtime`` puts libstdc++ in
  the global symbol scope before a package opens (the segfault after ``import torch_tensorrt``; delete when
  AOTInductor's ``wrapper.so`` no longer exports its static libstdc++), and ``load_pt2`` creates
  ``torch._C._aoti.AOTIModelPackageLoader`` itself because ``torch._inductor.aoti_load_package`` loads a package a
  second time after any error (delete when it no longer does). That module must not import this one's
  Torch-TensorRT parts. The loader is created single-threaded (``run_single_threaded=True``) so that its calls can be
  captured in CUDA graphs: the thread-safe runner queries and synchronises a CUDA event on every call, which
  invalidates a capture (pytorch#148601); ``Pt2Model`` serialises calls with a lock instead. Go back to the
  thread-safe runner (and drop the lock) when AOTInductor's thread-safe run can be captured or AOTInductor captures
  CUDA graphs itself (the "AOTI cuda graph" pull requests, not in torch 2.14).
* The ``.pt2`` engines' runtime settings (``pt2/engines.py``): reached through the loader's
  ``get_custom_objs`` (in torch 2.14's extension module, not in its ``_aoti.pyi`` stubs) and the engine class's
  TorchBind method ``update_runtime_settings``, which takes TensorRT-RTX's enum values: ``KERNEL_STRATEGY_CODES``
  copies Torch-TensorRT's private ``runtime._runtime_config`` map because ``load_pt2`` does not import
  ``torch_tensorrt``. Delete the copy when Torch-TensorRT's runtime library takes the strategy by name, or a
  package can record its engines' runtime settings.
* The package compile's Inductor settings (``formats/aot_inductor.PACKAGE_COMPILE_CONFIGS``, passed for that call
  only): ``compile_threads=1`` because AOTInductor wakes Inductor's compile-worker pool (up to 32 processes, each
  importing torch) whenever the example inputs are on the GPU, although a graph of TensorRT engines has few or no
  Triton kernels for it; delete when AOTInductor starts the pool only for Triton kernels.
  ``aot_inductor.compile_wrapper_opt_level="O0"``: the wrapper only passes handles; keep it only while the GPU
  benchmark shows it shortens tunes without slowing ``cuda_graphs=False`` calls. ``pattern_matcher=False``: the
  pattern passes find nothing to rewrite in a graph of engines, and their set-up traces every pattern once per
  process (0.2-0.6 s of a package compile on the CPU machine); keep it only while the benchmark's ``.pt2`` calls
  are as fast as with them. ``without_joint_pattern_setup`` replaces torch 2.14's ``joint_graph.lazy_init`` with a
  no-op during the package compile, because the joint-graph pass sets its patterns up before it reads
  ``pattern_matcher`` (0.37 s of a first package compile on the CPU machine); delete when that pass checks the flag
  first, as the post-grad pass does.
* ``pt2/link_stubs``: the package library links against stubs of torch's largest libraries because GNU ld loads all
  of a library's exported symbols (libtorch_cpu.so in torch 2.14: 74,567, most of a 0.6 s link). Delete when torch's
  libraries hide what AOTInductor's wrappers never use, or AOTInductor links through a small interface library.
* The engine-error watch (``engine_errors``): Torch-TensorRT 2.14's runtimes ignore what ``enqueueV3`` returns and
  set no TensorRT error recorder, so a failed engine call is visible only as a line its C++ logger writes to
  standard error; the package reads its own standard error for those lines. Delete when Torch-TensorRT raises on a
  failed ``enqueueV3`` (or lets a caller give a loaded engine an error recorder).
* ``pipeline/range_search.narrow_graph_spec`` lowers the batch axes of AITune's recorded tensor specs to the range
  that was built: AITune 0.6 raises a graph's batch range before building and checks and profiles the backend up to
  it, but offers a backend no way to state a smaller maximum (``update_max_batch_size`` only raises). Delete when
  AITune lets a backend report the range it built.
* ``formats/aot_inductor._quiet_fake_engine_warnings`` silences the logger ``torch._library.fake_class_registry``
  while a package is exported: Torch-TensorRT's fake engine class lacks methods export never calls, and each
  is logged. Delete when that fake class is complete.
* INT8/FP8 builds read ModelOpt 0.47's forms: ``compiled.layer_precisions`` counts the layers whose operands come
  from ``tensorrt.quantize_op(x, amax, num_bits, exponent_bits, ...)``, the node ModelOpt's ``export_torch_mode``
  writes for a quantizer (and Torch-TensorRT converts); ``pipeline/quantize.recipe_config`` disables excluded
  modules' quantizers in a recipe's ``quant_cfg`` list (a dict in older ModelOpt releases). Change them with
  ModelOpt's export form (``tests/cpu/test_quantization.py`` counts real FP8 exports and fails when it changes).
  The torchscript format refuses quantized builds (``formats/torchscript.py``) until a GPU run shows
  ``torch_tensorrt.save(output_format="torchscript")`` keeps them.

Private names reached into (each where no public API gives the same):

* Torch-TensorRT ``runtime._runtime_cache._to_torchbind_handle`` (``engine_runtime``): a loaded C++ engine takes
  its runtime cache only as a TorchBind handle (and its strategies as TensorRT's enum values: ``pt2.engines``).
  Delete when Torch-TensorRT can give a loaded module's engines a ``RuntimeSettings`` (with its runtime cache)
  publicly.
* Torch-TensorRT ``dynamo.runtime._serialized_engine_layout.ENGINE_IDX`` and ``dynamo.runtime._TRTEngine``'s
  ``EngineSerializer`` and ``TRTEngine`` (``formats/raw_engines``): go with the raw-engine workaround above.
* torch ``ScriptObject._type()`` (``pt2.engines.is_tensorrt_engine``): tells Torch-TensorRT's engine objects
  from other TorchBind objects a graph or a package holds. Delete when ``isinstance`` against the engine class works.
* torch ``torch._C._aoti`` (the loader above) and ``torch._inductor`` (``aoti_compile_and_package``, and
  ``runtime.cache_dir_utils.cache_dir`` for the packaging lock): AOTInductor has no other entry points in torch
  2.14. Delete when torch offers them outside ``_inductor`` / ``_C``.
* torch ``torch._inductor.cpp_builder._run_compile_cmd`` (``pt2.object_reuse``), wrapped while a package compiles:
  AOTInductor recompiles a wrapper whose object file of the same code is already in its cache folder (4.6 s a
  build), and links the same objects again. Delete when AOTInductor reuses the outputs of unchanged code itself.
  Inside it, ``pt2.wrapper_split`` compiles a wrapper as AOTInductor's runtime interface (the text of its
  ``codegen/aoti_runtime/interface.cpp``, which ends with ``} // extern "C"``, compiled once per machine with
  ``AOTInductorModelBase<AOTInductorModel>`` instantiated) plus the model's code (that instantiation declared
  ``extern``); a wrapper laid out otherwise compiles whole. Delete when AOTInductor compiles its runtime once itself.
  The model's code compiles against ``pt2.lean_headers``: a copy of torch 2.14's ``aoti_runtime/model_base.h``
  without the body of ``parse_device_str`` (its ``std::regex`` costs every translation unit about 2,500 template
  instantiations) and a precompiled header built against it; a header of other text keeps AOTInductor's. Delete
  when AOTInductor's headers stop instantiating ``std::regex`` in an inline function.
* torch ``torch.utils._pytree`` (the precision boundary, validation, the self-check, the CUDA-graph runner, the
  ``.pt2`` runtime's call specs, ``placement``'s output-device check, ``engine_errors``' input shapes): torch's
  pytree, the form AOTInductor's call specs use. Delete when ``torch.utils.pytree`` offers
  ``treespec_dumps``/``treespec_loads`` and the tree functions used here.
* torch ``torch.fx.node._get_qualified_name`` (``settings``): ops in ``torch_executed_ops`` are stored by the name
  Torch-TensorRT itself matches them by. Delete when Torch-TensorRT takes op names it documents.
* torch ``nn.Module._modules`` (``tuned.aitune_modules``): the stored children, because walking through an
  ``ait.Module`` proxy reaches the module it wraps. Delete when AITune modules show in ``nn.Module.modules()``.
* AITune ``ait.Module._self_wrapper`` (``tuned.tuned_module``, the tuned graphs and their backends) and the tuned
  module's ``_forward_signature`` (``direct_call``, to bind keywords as AITune does). Delete when AITune exposes
  a tuned module's backends and signature.
* AITune ``Storage._get_target_folder_path`` (``safe_save.destination``): where ``ait.save`` writes, so the atomic
  save lands at the same path. Delete when ``ait.save`` writes atomically itself.
* AITune ``Backend._build_results`` and ``Backend._device`` (``backend``): the state AITune's ``Backend`` template
  keeps for its subclasses (with ``_track_build_step`` and the ``_build``/``_activate``/``_infer`` hooks, the
  subclass interface AITune's own backends use). Not a workaround: change with that interface.
* ``namedtuple._asdict`` (Torch-TensorRT's ``ENABLED_FEATURES``) is public despite its name.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

import torch

from aitune_trt_aot.errors import MissingRequirementError
from aitune_trt_aot_tensorrt_alias import ensure_tensorrt

MINIMUM_TORCH = (2, 14)
MINIMUM_TORCH_TENSORRT = (2, 14)

__all__ = ["MissingRequirementError", "Stack", "current_stack", "ensure_tensorrt_module", "require_torch_tensorrt"]


def ensure_tensorrt_module() -> None:
    """Make ``import tensorrt`` work, which ``aitune.torch`` needs at import time.

    Standard TensorRT provides the module itself. TensorRT-RTX installs it as ``tensorrt_rtx``;
    Torch-TensorRT aliases it to ``tensorrt`` when it is imported, which ``aitune_trt_aot_tensorrt_alias`` does
    the same way without importing Torch-TensorRT (that import fails on machines without an NVIDIA driver).
    """
    ensure_tensorrt()


@cache
def _import_torch_tensorrt() -> ModuleType | str:
    try:
        return importlib.import_module("torch_tensorrt")
    except Exception as error:  # Torch-TensorRT raises plain Exception when its libraries are missing
        return f"{type(error).__name__}: {error}"


def torch_tensorrt_or_none() -> ModuleType | None:
    """Return the ``torch_tensorrt`` module, or None where it cannot be imported here."""
    module = _import_torch_tensorrt()
    return module if isinstance(module, ModuleType) else None


def version_tuple(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``2.14.1+cu130``."""
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Stack:
    """The installed stack, as the build plan and the artifacts' metadata need it.

    Attributes:
        torch_version: ``torch.__version__``.
        torch_tensorrt_version: Torch-TensorRT's version, None where it does not import.
        tensorrt_version: TensorRT's (or TensorRT-RTX's) version, None where unknown.
        tensorrt_rtx: Whether Torch-TensorRT is built against TensorRT-RTX.
        features: Torch-TensorRT's ``ENABLED_FEATURES`` (frontends, runtimes).
        import_error: Why Torch-TensorRT does not import, when it does not.

    """

    torch_version: str
    torch_tensorrt_version: str | None
    tensorrt_version: str | None
    tensorrt_rtx: bool
    features: dict[str, bool] = field(default_factory=dict)
    import_error: str | None = None

    @property
    def flavour(self) -> str:
        """``"TensorRT-RTX"`` or ``"TensorRT"``."""
        return "TensorRT-RTX" if self.tensorrt_rtx else "TensorRT"

    @property
    def strongly_typed(self) -> bool:
        """True where every network is strongly typed (TensorRT-RTX): builder-flag precisions do not apply."""
        return self.tensorrt_rtx

    def has_frontend(self, feature: str) -> bool:
        """Whether Torch-TensorRT has the named frontend (``dynamo_frontend``, ``torchscript_frontend``, ...)."""
        return bool(self.features.get(feature, False))

    def describe(self) -> str:
        """One line naming the installed versions, for logs and error messages."""
        if self.torch_tensorrt_version is None:
            return f"torch {self.torch_version}, Torch-TensorRT not importable"
        return (
            f"torch {self.torch_version}, Torch-TensorRT {self.torch_tensorrt_version}, "
            f"{self.flavour} {self.tensorrt_version or '?'}"
        )

    def unsupported_reason(self) -> str | None:
        """Why this stack is too old to build or load engines, or None when it is supported."""
        old = []
        if version_tuple(self.torch_version) < MINIMUM_TORCH:
            old.append(f"torch {self.torch_version}")
        if self.torch_tensorrt_version and version_tuple(self.torch_tensorrt_version) < MINIMUM_TORCH_TENSORRT:
            old.append(f"Torch-TensorRT {self.torch_tensorrt_version}")
        if not old:
            return None
        return (
            f"aitune-trt-aot needs torch >= {_dotted(MINIMUM_TORCH)} and Torch-TensorRT >= "
            f"{_dotted(MINIMUM_TORCH_TENSORRT)}; this machine has {' and '.join(old)}. Install `aitune-trt-aot"
            "[tensorrt-rtx]` (TensorRT-RTX from PyPI) or `aitune-trt-aot[tensorrt]` (standard TensorRT)."
        )


@cache
def current_stack() -> Stack:
    """The stack installed in this process (Torch-TensorRT is imported on the first call)."""
    module = torch_tensorrt_or_none()
    if module is None:
        return Stack(torch.__version__, None, None, False, {}, str(_import_torch_tensorrt()))
    features = dict(module.ENABLED_FEATURES._asdict())
    trt = sys.modules.get("tensorrt")
    return Stack(
        torch_version=torch.__version__,
        torch_tensorrt_version=module.__version__,
        tensorrt_version=getattr(trt, "__version__", None),
        tensorrt_rtx=bool(features.get("tensorrt_rtx", False)),
        features=features,
    )


def require_torch_tensorrt() -> ModuleType:
    """Return ``torch_tensorrt`` on a supported stack, or raise an error that says what to install."""
    module = torch_tensorrt_or_none()
    if module is None:
        raise MissingRequirementError(
            f"Torch-TensorRT is not usable on this machine ({_import_torch_tensorrt()}). Install it with "
            "`pip install aitune-trt-aot[tensorrt]` (standard TensorRT, needs NVIDIA's package index) or "
            "`pip install aitune-trt-aot[tensorrt-rtx]` (TensorRT-RTX from PyPI), on a machine with an NVIDIA GPU "
            "and driver."
        )
    reason = current_stack().unsupported_reason()
    if reason is not None:
        raise MissingRequirementError(reason)
    return module


def require_cuda() -> None:
    """Raise a clear error unless PyTorch sees a CUDA GPU."""
    if not torch.cuda.is_available():
        raise MissingRequirementError(
            "No CUDA GPU is available to PyTorch (torch.cuda.is_available() is False). Building and running "
            "TensorRT engines needs an NVIDIA GPU with its driver and a CUDA build of PyTorch."
        )
