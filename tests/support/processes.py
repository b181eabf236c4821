"""Fresh Python processes that can import this checkout (reload tests, examples, scripts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    """Environment for a fresh Python process that can import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(REPO_ROOT)) if p)
    return env


def run_python(
    *args: str, cwd: Path | None = None, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in a fresh process that can import this checkout; capture its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd or REPO_ROOT,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class PrestartedPython:
    """``python -m MODULE --args-from-stdin FLAGS`` started now, given its arguments later with :meth:`run`.

    A test starts it before it tunes: the process imports torch, Torch-TensorRT and AITune (15-35 s on the GPU host
    while the other test workers build) at the same time as the tune, instead of after it. It is still a fresh
    process: it has seen nothing of the model when it gets the checkpoint's path.
    """

    def __init__(self, module: str, *flags: str, workdir: Path) -> None:
        """Start the process; its output goes to files under ``workdir``."""
        self.stdout_path, self.stderr_path = workdir / f"{module}.stdout", workdir / f"{module}.stderr"
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, "--args-from-stdin", *flags],
                cwd=REPO_ROOT,
                env=subprocess_env(),
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                text=True,
            )

    def run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        """Hand the process its arguments (one JSON line) and wait for it to finish."""
        self.process.communicate(json.dumps(list(args)) + "\n", timeout=timeout)
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, self.stdout_path.read_text(), self.stderr_path.read_text()
        )

    def close(self) -> None:
        """Stop the process if it is still waiting (the test ended before it needed it)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> PrestartedPython:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def arguments(argv: list[str]) -> list[str]:
    """A script's arguments: ``argv[1:]``, or, after ``--args-from-stdin``, its flags plus one JSON line of stdin."""
    if "--args-from-stdin" not in argv:
        return argv[1:]
    flags = [a for a in argv[1:] if a != "--args-from-stdin"]
    return json.loads(sys.stdin.readline()) + flags


def json_tail(result: subprocess.CompletedProcess, what: str) -> dict:
    """The JSON object a script printed on its last line; fails the test with its output otherwise."""
    assert result.returncode == 0, (
        f"{what} failed (exit status {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_ranks(
    ranks: int, script_args: list[str], out: Path, env: dict[str, str], timeout: int = 600
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """``python -m torch.distributed.run`` with ``ranks`` processes of ``tests.scripts.tune_ranks SCRIPT_ARGS``.

    Each child gets :func:`subprocess_env` (this checkout on ``PYTHONPATH``) updated with ``env``. Returns the
    launcher's result and the reports the ranks wrote to ``out`` (``rank-R.json``), in rank order.
    """
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    result = subprocess.run(
        [*launcher, "-m", "tests.scripts.tune_ranks", *script_args],
        cwd=REPO_ROOT,
        env={**subprocess_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    reports = [json.loads(path.read_text()) for path in sorted(out.glob("rank-*.json"))]
    return result, sorted(reports, key=lambda report: report["rank"])


def light_env(**extra: str) -> dict[str, str]:
    """:func:`subprocess_env` for processes that need the package without AITune (faster to start)."""
    return {**subprocess_env(), "AITUNE_TRT_AOT_RUNTIME_ONLY": "1", **extra}


def start_python(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python ARGS`` in the background (this checkout importable), stdin, stdout and stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=env or subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def deploy_pt2(package: Path, cases: Path, *flags: str) -> dict:
    """``examples/deploy_pt2.py --check-cases`` on ``package`` in a fresh process (no AITune, no torch_tensorrt).

    ``flags`` are passed on (e.g. ``--cuda-graphs false``).

    Returns its JSON report: what it imported, load seconds, and the largest error per batch size against the outputs
    stored in ``cases`` (``examples/pt2_cases.write_cases``).
    """
    script = str(REPO_ROOT / "examples" / "deploy_pt2.py")
    result = subprocess.run(
        [sys.executable, script, str(package), "--check-cases", str(cases), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    return json_tail(result, " ".join(["examples/deploy_pt2.py", *flags]))


def kill_once_marked(command: list[str], marker: Path, timeout: float = 120) -> bool:
    """Start ``command`` (a fresh Python process), SIGKILL it once ``marker`` exists; whether the marker appeared.

    The process is killed in any case (also when the marker never appears within ``timeout`` seconds) and reaped.
    """
    process = subprocess.Popen(command, env=subprocess_env())
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return marker.exists()
    finally:
        process.kill()
        process.wait()
