"""Processes that take part in a shared build cache, for the CPU tests of its locks and readers' marks.

Usage: python -m tests.support.cache_processes COMMAND ROOT NAME [ARG]
  hold-lock ROOT NAME READY   take entry NAME's build lock, write READY, then wait to be killed
  read ROOT NAME READY        hold a reader's mark on entry NAME, write READY, then wait until stdin closes
  build ROOT NAME SECONDS     write ROOT/../ready-PID, wait for ROOT/../go, then take a turn on entry NAME: build
                              it (a folder, after SECONDS) or wait for it; print one JSON line:
                              {"built": bool, "waited": seconds, "builder": who built it}
  publish ROOT NAME TEXT      store an entry NAME whose artifact holds TEXT; print the entry's folder

``tests.support.processes.light_env`` runs them without importing AITune (``AITUNE_TRT_AOT_RUNTIME_ONLY``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from aitune_trt_aot import build_cache, cache_lock, cache_readers
from aitune_trt_aot.files import file_digest


def _hold_lock(root: Path, name: str, ready: Path) -> None:
    turn = cache_lock.take_turn(root, name, lambda: None)
    assert turn.lock is not None
    ready.write_text(turn.lock.holder.token)
    time.sleep(600)


def _read(root: Path, name: str, ready: Path) -> None:
    with cache_readers.reading(root, name):
        ready.write_text("reading")
        sys.stdin.read()


def _build(root: Path, name: str, seconds: float) -> None:
    (root.parent / f"ready-{os.getpid()}").write_text("")
    while not (root.parent / "go").exists():  # every process starts its turn at once (imports took their time)
        time.sleep(0.01)
    folder = root / name
    turn = cache_lock.take_turn(root, name, lambda: folder if folder.is_dir() else None)
    if turn.lock is not None:
        time.sleep(seconds)
        folder.mkdir()
        (folder / "builder").write_text(str(os.getpid()))
        turn.lock.release()
    builder = (folder / "builder").read_text()
    print(json.dumps({"built": turn.lock is not None, "waited": turn.waited, "builder": builder}))


def _publish(root: Path, name: str, text: str) -> None:
    work = root.parent / f"work-{os.getpid()}"
    work.mkdir()
    artifact = work / "model.pt"
    artifact.write_text(text * 10000)
    print(build_cache.store(name, artifact, {"artifact_format": "torch_save", "checksum": file_digest(artifact)}))


def main() -> None:
    """Run one command (module docstring)."""
    command, root, name, argument = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ[build_cache.CACHE_DIR_ENV] = str(root)
    if command == "hold-lock":
        _hold_lock(root, name, Path(argument))
    elif command == "read":
        _read(root, name, Path(argument))
    elif command == "build":
        _build(root, name, float(argument))
    elif command == "publish":
        _publish(root, name, argument)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
