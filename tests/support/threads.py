"""Calling one model from several threads at once, for the thread-safety tests (CPU and GPU)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch


def worst_errors_from_threads(
    call: Callable[[torch.Tensor], torch.Tensor],
    reference: torch.nn.Module,
    make_input: Callable[[int, int], torch.Tensor],
    threads: int,
    calls_per_thread: int,
) -> list[float]:
    """Call ``call`` from ``threads`` threads at once; per thread, the largest error against ``reference``.

    Each thread makes ``calls_per_thread`` calls, the ``index``-th with ``make_input(thread, index)``.
    """

    def worker(thread: int) -> float:
        worst = 0.0
        with torch.no_grad():  # grad mode is per thread
            for index in range(calls_per_thread):
                x = make_input(thread, index)
                worst = max(worst, float((call(x) - reference(x)).abs().max()))
        return worst

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(worker, range(threads)))
