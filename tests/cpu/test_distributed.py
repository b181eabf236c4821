"""CPU: ``torchrun`` tuning with AITune's distributed mode (gloo): one build shared by all ranks, rank-safe files.

``tests/scripts/tune_ranks.py`` runs in every rank, launched by ``python -m torch.distributed.run`` with this
checkout on ``PYTHONPATH`` (not installed), as the GPU test of the full tier launches it with ResNet-50. Here it
tunes the MLP with the CPU tests' tracing frontend, whose build takes 1 s, so the other ranks wait for it.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import run_ranks


def _launch(tmp_path: Path, ranks: int, *flags: str) -> tuple[list[dict], str]:
    env = {"AITUNE_CACHE_DIR": str(tmp_path / "aitune"), "AITUNE_TRT_AOT_CACHE_DIR": str(tmp_path / "builds")}
    result, reports = run_ranks(ranks, ["mlp", "cpu", str(tmp_path / "out"), "--fake", *flags], tmp_path / "out", env)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    assert result.returncode == 0, output
    assert [report["rank"] for report in reports] == list(range(ranks)), output
    return reports, output


def test_one_rank_builds_the_others_reuse_and_every_rank_saves_its_own_checkpoint(tmp_path: Path) -> None:
    """Three ranks, one shared build cache: one compile; every rank loads and checks it, saves, and loads back."""
    reports, output = _launch(tmp_path, 3)
    assert all(report["error"] is None for report in reports), output
    (builder,) = [report for report in reports if not report["built_from_cache"]]
    waiters = [report for report in reports if report["built_from_cache"]]
    assert len(waiters) == 2
    who = f"rank {builder['rank']} of 3 on host "
    assert any(line.startswith(who) and "building" in line for line in builder["log"])
    for waiter in waiters:
        assert waiter["waited_seconds"] > 0.2, "it waited for the build instead of compiling"
        assert any(f"waiting for the build of {who}" in line for line in waiter["log"]), waiter["log"]
        assert any(f"reusing the build of {who}" in line for line in waiter["log"]), waiter["log"]
    for report in reports:
        rank = report["rank"]
        assert f"/rank-{rank}-of-3/" in report["artifact"], "each rank's artifact and kernels lie in its own folder"
        assert report["calls_served"] == 2 and report["error_vs_eager"] <= 1e-5
        assert report["saved"] == str(tmp_path / "out" / f"model.rank-{rank}-of-3.ait")
        assert report["loaded_error_vs_eager"] <= 1e-5
    (entry,) = _cache_contents(tmp_path)
    assert not entry.startswith("."), "one entry; no lock, failure marker or reader's mark left behind"
    assert not list((tmp_path / "out").glob(".*.saving")), "no save left its private folder behind"


def _cache_contents(tmp_path: Path) -> list[str]:
    folder = tmp_path / "builds"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_failed_build_fails_every_rank_with_the_builders_error(tmp_path: Path) -> None:
    """The building rank fails: it raises its error, and the rank waiting for it raises a BuildError naming it."""
    reports, output = _launch(tmp_path, 2, "--fail")
    errors = {report["rank"]: report["error"] for report in reports}
    assert all(errors.values()), output
    (builder,) = [rank for rank, error in errors.items() if "waited for the build" not in error]
    (waiter,) = [rank for rank in errors if rank != builder]
    assert "RuntimeError: the fake compile failed" in errors[builder]
    assert errors[waiter].startswith(f"BuildError: rank {waiter} of 2 on host ")
    assert f"waited for the build of this model by rank {builder} of 2 on host " in errors[waiter]
    assert "RuntimeError: the fake compile failed" in errors[waiter]
    assert [name for name in _cache_contents(tmp_path) if not name.endswith(".failed")] == [], "nothing published"
