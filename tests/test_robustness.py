"""What production throws at a long run: an endpoint that dies, garbled bodies, SIGTERM, a full
disk. Real synth subprocesses against the fake endpoint; exit codes and files checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FakeEndpoint
from test_cli import _cached, closed_port, synth

ARGS = ["--num", "24", "--concurrency", "2", "--no-discriminator"]


def _popen(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    return subprocess.Popen([sys.executable, "-m", "synth", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_cached(run: Path, n: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _cached(run) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def _rows(run: Path) -> list[str]:
    return (run / "dataset" / "jsonl" / "train.jsonl").read_text().splitlines()


def _last_line(out: str) -> str:
    return [ln for ln in out.splitlines() if ln.strip()][-1]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeds")
    src = Path(__file__).parents[1] / "synth" / "llm"
    proc = synth("seeds", "extract", str(src), "--run-dir", str(out), "--per-file", "8")
    assert proc.returncode == 0, proc.stderr
    return out / "seeds.jsonl"


def test_endpoint_killed_mid_run_stops_then_resumes(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    args = ["--seeds", str(seeds), *ARGS]
    clean = tmp_path / "clean"
    proc = synth("generate", "--base-url", fake_server().base_url, "--run-dir", str(clean),
                 *args)
    assert proc.returncode == 0, proc.stderr

    port = closed_port()
    fake = fake_server(delay=0.1, port=port)
    run = tmp_path / "run"
    proc = _popen("generate", "--base-url", fake.base_url, "--run-dir", str(run),
                  "--max-outage", "3", *args)
    _wait_cached(run, 6, proc)
    fake.proc.kill()
    killed_at = time.monotonic()
    out, err = proc.communicate(timeout=120)
    stopped_after = time.monotonic() - killed_at
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    assert stopped_after < 3 + 40, "stopped soon after the outage limit (loaded CI machines)"
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "rerun" in errors[0], err
    stats = json.loads((run / "stats.json").read_text())
    done = stats["kept"]
    assert 1 <= done < 24 and done == len(_rows(run))
    cached = _cached(run)

    again = fake_server(port=port)
    resumed = synth("generate", "--base-url", again.base_url, "--run-dir", str(run), *args)
    assert resumed.returncode == 0, resumed.stderr
    assert len(again.requests()) == 24 - cached, "no cached request is sent again"
    assert _rows(run) == _rows(clean)


def test_endpoint_back_within_outage_limit_completes(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    port = closed_port()
    # Slow replies: 20 requests are still to go when the endpoint dies (at 0.1 s a loaded
    # machine's test process could wake up after the run had finished them all).
    fake = fake_server(delay=0.5, port=port)
    run = tmp_path / "run"
    proc = _popen("generate", "--base-url", fake.base_url, "--run-dir", str(run),
                  "--seeds", str(seeds), "--max-outage", "60", *ARGS)
    _wait_cached(run, 4, proc)
    fake.proc.kill()
    assert _cached(run) < 24
    time.sleep(4.0)
    fake_server(port=port)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "pausing requests" in err and "resuming" in err
    assert "left to retry 0" in _last_line(out)
    assert len(_rows(run)) == 24


def test_garbled_bodies_are_retried_and_the_run_completes(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server(garbage_every=3)
    run = tmp_path / "run"
    proc = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run),
                 "--seeds", str(seeds), *ARGS)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stats = json.loads((run / "stats.json").read_text())
    assert stats["llm"]["malformed_replies"] >= 1
    assert stats["kept"] == 24 and stats["left_to_retry"] == 0


def test_llm_error_is_left_to_retry_and_kept_by_the_rerun(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    # every body garbled on first sight, one attempt per request: all left to retry
    fake = fake_server(garbage_every=1)
    run = tmp_path / "run"
    args = ["--seeds", str(seeds), "--max-attempts", "1", *ARGS]
    proc = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), *args)
    assert proc.returncode == 3, proc.stderr
    assert "left to retry 24" in _last_line(proc.stdout)
    rejects = [json.loads(ln) for ln in (run / "rejects.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejects} == {"llm_malformed"}
    assert all(r["retryable"] for r in rejects)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["rejected"] == 0 and stats["left_to_retry"] == 24
    rerun = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), *args)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((run / "stats.json").read_text())["kept"] == 24


def test_sigterm_writes_outputs_and_the_rerun_pays_nothing_twice(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server(delay=0.15)
    run = tmp_path / "run"
    args = ["--seeds", str(seeds), *ARGS]
    proc = _popen("generate", "--base-url", fake.base_url, "--run-dir", str(run), *args)
    _wait_cached(run, 5, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "interrupted" in err
    stats = json.loads((run / "stats.json").read_text())
    assert stats["interrupted"] is True and (run / "rejects.jsonl").exists()
    assert len(_rows(run)) == stats["kept"] >= 1
    sent = len(fake.requests())
    cached = _cached(run)
    rerun = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), *args)
    assert rerun.returncode == 0, rerun.stderr
    assert len(fake.requests()) - sent == 24 - cached


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    return proc.returncode == 0


def test_full_disk_is_one_line_and_costs_at_most_the_requests_in_flight(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    mnt = tmp_path / "tiny"
    if not _mount_tmpfs(mnt, "400k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        fake = fake_server(delay=0.02)
        run = mnt / "run"
        args = ["--seeds", str(seeds), "--num", "400", "--concurrency", "4",
                "--no-discriminator"]
        proc = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), *args)
        assert proc.returncode == 3, proc.stderr
        assert "Traceback" not in proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "rerun" in errors[0], proc.stderr
        assert not list(mnt.rglob("*.tmp")), "no temp file left behind"
        sent = fake.requests()
        # move the run to a roomy disk and resume: only what was not cached is sent
        roomy = tmp_path / "roomy"
        shutil.copytree(run, roomy)
        cached = _cached(roomy)
        rerun = synth("generate", "--base-url", fake.base_url, "--run-dir", str(roomy), *args)
        assert rerun.returncode == 0, rerun.stderr
        resent = set(sent) & set(fake.requests()[len(sent):])
        assert len(resent) <= 4, "re-paid at most the requests in flight"
        assert len(fake.requests()) - len(sent) <= 400 - cached + 4
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_only_run_dir_is_one_line(tmp_path: Path, seeds: Path,
                                       fake_server: Callable[..., FakeEndpoint]) -> None:
    run = tmp_path / "ro"
    run.mkdir()
    mnt_ok = _mount_tmpfs(run, "1m")
    if not mnt_ok:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(run)], check=True)
        proc = synth("generate", "--base-url", fake_server().base_url, "--run-dir", str(run),
                     "--seeds", str(seeds), *ARGS)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]) == 1
    finally:
        subprocess.run(["umount", "-l", str(run)], check=False)
