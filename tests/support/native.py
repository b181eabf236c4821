"""What a native program that crashed was doing: the libraries it loaded and a backtrace of the fatal signal."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Preloaded into the crashing program: prints the native backtrace of SIGSEGV/SIGABRT/SIGBUS to stderr.
# (The GPU host has no gdb.)
_HANDLER_SOURCE = r"""
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>
static void report(int sig) {
  void* frames[64];
  int count = backtrace(frames, 64);
  const char header[] = "\n--- fatal signal, native backtrace ---\n";
  write(2, header, sizeof(header) - 1);
  backtrace_symbols_fd(frames, count, 2);
  _exit(128 + sig);
}
__attribute__((constructor)) static void install(void) {
  signal(SIGSEGV, report);
  signal(SIGABRT, report);
  signal(SIGBUS, report);
}
"""


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def crash_report(command: list[str], workdir: Path) -> str:
    """Run ``command`` again with a backtrace handler preloaded and the loader's library log; return what they say.

    Also runs it once with libstdc++ preloaded (first in the global symbol scope), and lists the libraries the
    program needs in link order: a crash in libstdc++'s locale code has come from two copies of it disagreeing.
    """
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("g++")
    preload: list[str] = []
    if compiler is not None:
        source, handler = workdir / "crash_handler.c", workdir / "crash_handler.so"
        source.write_text(_HANDLER_SOURCE)
        build = [compiler, "-shared", "-fPIC", "-x", "c", str(source), "-o", str(handler)]
        if subprocess.run(build, text=True, capture_output=True).returncode == 0:
            preload.append(str(handler))
    result = _run(command, {**os.environ, "LD_DEBUG": "libs", "LD_PRELOAD": " ".join(preload)})
    lines = result.stderr.splitlines()
    # what the loader could not find (exit 127), what it initialised, and where libstdc++ came from
    markers = ("needed by", "cannot open", "calling init:", "libstdc++")
    loaded = [line for line in lines if any(marker in line for marker in markers)]
    backtrace = lines[next((i for i, line in enumerate(lines) if "native backtrace" in line), len(lines)) :]
    with_stdcxx_first = _run(command, {**os.environ, "LD_PRELOAD": " ".join(["libstdc++.so.6", *preload])})
    needed = subprocess.run(["readelf", "-d", command[0]], capture_output=True, text=True).stdout.splitlines()
    return "\n".join(
        [
            f"exit status {result.returncode}",
            "stdout:",
            result.stdout[-1500:],
            "libraries looked for and initialised (last 40):",
        ]
        + loaded[-40:]
        + ["backtrace:"]
        + [line for line in backtrace if "LD_DEBUG" not in line and ":\t" not in line][:60]
        + ["needed, in link order:"]
        + [line for line in needed if "NEEDED" in line or "RPATH" in line or "RUNPATH" in line]
        + [
            f"with LD_PRELOAD=libstdc++.so.6: exit status {with_stdcxx_first.returncode}",
            with_stdcxx_first.stdout[-800:],
            with_stdcxx_first.stderr[-1500:],
        ]
    )
