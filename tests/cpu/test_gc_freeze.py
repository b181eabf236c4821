"""Importing the package keeps the garbage collector off import-time objects, unless AITUNE_TRT_AOT_GC_FREEZE=0."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import run_python, subprocess_env

CODE = (
    "import gc, json, time, aitune_trt_aot\n"
    "start = time.perf_counter(); gc.collect(); seconds = time.perf_counter() - start\n"
    "print(json.dumps({'frozen': gc.get_freeze_count(), 'collect_seconds': seconds}))\n"
)


@pytest.mark.parametrize("setting", [None, "0"])
def test_import_freezes_what_the_stack_created(setting: str | None) -> None:
    env = subprocess_env()
    env.pop("AITUNE_TRT_AOT_GC_FREEZE", None)
    if setting is not None:
        env["AITUNE_TRT_AOT_GC_FREEZE"] = setting
    result = run_python("-c", CODE, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\n[AITUNE_TRT_AOT_GC_FREEZE={setting}] {report}")
    if setting == "0":
        assert report["frozen"] == 0
    else:
        assert report["frozen"] > 100_000  # torch and AITune alone leave several hundred thousand objects


def test_objects_are_unfrozen_before_interpreter_shutdown() -> None:
    """Shutdown collects only unfrozen objects; a handler registered before the import runs after the unfreeze."""
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit', gc.get_freeze_count()))\n"
        "import aitune_trt_aot\n"
        "print('frozen after import', gc.get_freeze_count())\n"
    )
    env = subprocess_env()
    env.pop("AITUNE_TRT_AOT_GC_FREEZE", None)
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("frozen")]
    assert int(lines[0].split()[-1]) > 100_000
    assert lines[1] == "frozen at exit 0"
