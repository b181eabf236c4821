"""CPU: every build step records its wall time, so a tune's time can be split (``backend.build_seconds``)."""

from __future__ import annotations

import time

import pytest

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBuildStep


def test_each_build_step_records_its_seconds_even_when_it_fails() -> None:
    """Steps that finish and steps that raise both carry ``seconds``; the capture time rides on the compile step."""
    backend = TorchTensorRTAotBackend()
    assert backend.build_seconds == {}
    with backend._track_build_step(TorchTensorRTAotBuildStep.COMPILE) as result:
        result["capture_seconds"] = 0.005
        time.sleep(0.02)
    with pytest.raises(RuntimeError, match="save failed"):
        with backend._track_build_step(TorchTensorRTAotBuildStep.ARTIFACT_SAVE):
            raise RuntimeError("save failed")
    timings = backend.build_seconds
    assert set(timings) == {"compile", "capture", "artifact_save"}
    assert timings["compile"] >= 0.02 and timings["capture"] == 0.005 and timings["artifact_save"] >= 0
    assert [r["success"] for r in backend._build_results] == [True, False]  # AITune's own record is kept
