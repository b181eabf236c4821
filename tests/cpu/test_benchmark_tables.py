"""CPU: the benchmark's tables (``benchmarks/run.py``), so a GPU run never fails at printing what it measured."""

from __future__ import annotations

from benchmarks.run import OURS, STEP_COLUMNS, Row, table, tune_breakdown


def test_quantized_rows_show_cosine_beside_latency_and_calibration_in_the_breakdown() -> None:
    """An int8 row: its cosine next to its median; quantize and calibration columns; AITune's own excludes details."""
    steps = {"cache_lookup": 0.1, "quantize": 2.0, "calibration": 1.5, "capture": 1.0, "compile": 5.0,
             "artifact_save": 0.5, "artifact_load": 0.4, "self_check": 1.0, "first_calls": 0.6,
             "kernel_cache_save": 0.1}  # fmt: skip
    label = OURS["ours-int8"][0]
    rows = [
        Row("resnet50", label, 32, median_ms=1.234, cosine=0.99876, tune_s=20.0, tune_steps=steps),
        Row("resnet50", "eager fp32", 32, median_ms=4.0, cosine=1.0),
    ]
    text = table(rows)
    assert f"| resnet50 | {label} | 32 | 1.234 | 0.99876 |" in text
    assert "| median ms | cos vs fp32 |" in text.splitlines()[0]
    breakdown = tune_breakdown(rows)
    head, _, line = breakdown.splitlines()
    assert "| quantize | of which calibration | capture | TensorRT compile |" in head
    assert line.startswith(f"| resnet50 | {label} | 20.0 | 0.1 | 2.0 | 1.5 | 1.0 | 4.0 | 0.5 | 0.4 | 1.0 | 0.6 | 0.1 |")
    assert "calibration" not in STEP_COLUMNS and "quantize" in STEP_COLUMNS
    own = 20.0 - (0.1 + 2.0 + 1.0 + 4.0 + 0.5 + 0.4 + 1.0 + 0.1)
    assert line.endswith(f"| {own:.1f} |  |")
    assert {"ours-int8", "ours-fp8"} <= set(OURS) and OURS["ours-fp8"][1] == "fp8"
