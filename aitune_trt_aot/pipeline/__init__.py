"""The build as a pipeline of named steps, each a module with typed inputs and outputs.

A build passes, in order (``build.run_build``):

1. requirements  ``Toolkit.require_build`` (``toolkit.py``): Torch-TensorRT and CUDA, or the fakes of the CPU tests
2. plan          ``plan.make_plan`` -> ``BuildPlan``: frontend, format, precision route, ranges; every refusal
3. capture       ``capture.prepare_capture`` -> ``Capture``: the shape guard and the frontend's compile request
4. cache         ``shared_build.reuse_or_claim``: ``cache_reuse.fingerprint``, ``cache_lock.take_turn`` (look the entry
                 up, or wait for the process building it), ``cache_reuse.reuse_cached_build`` -> ``Build`` from the
                 cache (copied, loaded, checked on one call); or the entry's build lock, and on to step 5
                 (``shared_build.building``: steps 4b-11 under the lock; a failure is recorded for the waiters)
4b. quantize     int8/fp8 only: ``quantize.quantize_capture`` -> ``Capture`` holding a ModelOpt-quantized copy of the
                 module, calibrated on recorded calls, and its ``Calibration``
5. compile       ``compile.compile_model`` -> ``CompiledModel`` and the plan it was built under (autocast fallback)
6. refuse empty  ``plan.refuse_without_engines``, ``plan.refuse_without_quantized_layers``
7. save          ``save.save_artifact`` -> ``ArtifactPath``; ``save.built_entry`` -> ``CheckpointEntry``
8. activate      ``activation.activate``: the saved file loaded back -> ``Activation``
9. self-check    ``self_check.check_against_eager`` -> ``SelfCheckReport``; ``self_check.refuse_mismatch``
10. keep kernels ``kernels.keep_kernel_cache``
11. store        ``cache_reuse.store_build``
"""

from aitune_trt_aot.pipeline.build import run_build
from aitune_trt_aot.pipeline.job import Build, BuildJob, StepTracker, TorchTensorRTAotBuildStep, untracked

__all__ = ["Build", "BuildJob", "StepTracker", "TorchTensorRTAotBuildStep", "run_build", "untracked"]
