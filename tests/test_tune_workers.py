"""scripts/tune.py: several worker processes on one study, in SQLite and in a real PostgreSQL.

The tests marked ``workers`` start worker processes and the one marked ``postgres`` also starts a
throwaway PostgreSQL server (Debian's ``postgresql`` package; ``make postgres`` installs it):
each takes a few seconds, and all of them run in ``make test``. The exactly-once checks: every
finished trial in the storage was logged by exactly one worker with the same value and
parameters, no trial is left RUNNING or WAITING, and the best trial of a fresh read of the storage
is the best of the logs.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT / "scripts" / "tune.py"
FINISHED = ("COMPLETE", "PRUNED")


def load_tune():
    spec = importlib.util.spec_from_file_location("tune_script", TUNE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(url, study, log, *extra, trials=16, seed=0, wait_for=None, out=None):
    command = [sys.executable, str(TUNE), "--storage", url, "--study", study, "--trials", str(trials),
               "--objective", "synthetic", "--seed", str(seed), "--log", str(log), *extra]
    if wait_for is not None:
        command += ["--wait-for", str(wait_for)]
    return subprocess.Popen(command, stdout=open(out, "w"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait_for_text(path: Path, text: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never showed {text!r}: {path.read_text() if path.exists() else ''}")


def run_workers(url: str, study: str, folder: Path, *, workers: int = 2, trials: int = 16,
                extra: tuple = ()) -> list[Path]:
    """Start ``workers`` workers, let them begin together, wait for all; return their logs."""
    go = folder / "go"
    logs = [folder / f"worker{k}.jsonl" for k in range(workers)]
    outs = [folder / f"worker{k}.out" for k in range(workers)]
    procs = [worker(url, study, logs[k], *extra, trials=trials, seed=k, wait_for=go, out=outs[k])
             for k in range(workers)]
    try:
        for out in outs:
            wait_for_text(out, '"ready": true')
        go.touch()
        for proc, out in zip(procs, outs, strict=True):
            assert proc.wait(timeout=300) == 0, out.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return logs


def read_logs(logs: list[Path]) -> list[dict]:
    return [json.loads(line) for log in logs if log.exists() for line in log.read_text().splitlines()]


def check_exactly_once(url: str, study_name: str, logs: list[Path], *, trials: int, workers: int):
    study = optuna.load_study(study_name=study_name, storage=url)
    stored = {t.number: t for t in study.get_trials(deepcopy=False)}
    states = Counter(t.state.name for t in stored.values())
    assert states["RUNNING"] == 0 and states["WAITING"] == 0, states
    finished = {n: t for n, t in stored.items() if t.state.name in FINISHED}
    # MaxTrialsCallback stops a worker after its trial; workers that started together may overshoot
    assert trials <= len(finished) <= trials + workers - 1, states
    records = [r for r in read_logs(logs) if r["state"] in FINISHED]
    numbers = [r["number"] for r in records]
    assert len(numbers) == len(set(numbers)), "a trial was run by two workers"
    assert set(numbers) == set(finished), "a finished trial is missing from the logs, or vice versa"
    for record in records:
        trial = finished[record["number"]]
        assert record["state"] == trial.state.name and record["params"] == trial.params
        assert record["value"] == trial.value
    assert len({r["worker"] for r in records}) == workers, "every worker should have run trials"
    best = max((r for r in records if r["state"] == "COMPLETE"), key=lambda r: r["value"])
    assert study.best_trial.value == best["value"]
    assert study.best_trial.params == best["params"]
    return study


@pytest.mark.workers
def test_two_workers_on_one_sqlite_study_record_every_trial_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    logs = run_workers(url, "two-workers", tmp_path, workers=2, trials=16,
                       extra=("--trial-seconds", "0.2"))
    study = check_exactly_once(url, "two-workers", logs, trials=16, workers=2)
    assert "PRUNED" in Counter(t.state.name for t in study.trials)  # the median pruner stopped some


@pytest.mark.workers
def test_a_killed_worker_loses_no_finished_trial_and_its_running_trial_is_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    common = ("--heartbeat", "1", "--grace", "2", "--pruner", "none")
    victim_log = tmp_path / "victim.jsonl"
    victim = worker(url, "killed", victim_log, *common, "--trial-seconds", "1.5", trials=8,
                    out=tmp_path / "victim.out")
    try:
        deadline = time.monotonic() + 180
        while len(read_logs([victim_log])) < 2:  # two trials finished, the third is running
            assert victim.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "victim.out").read_text()
            time.sleep(0.05)
        study = optuna.load_study(study_name="killed", storage=url)
        deadline = time.monotonic() + 30
        while not any(t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    before = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    running = [n for n, state in before.items() if state == "RUNNING"]
    assert len(running) == 1
    time.sleep(3)  # longer than the grace period: the dead worker's heartbeat is now stale
    rescuer_log = tmp_path / "rescuer.jsonl"
    rescuer = worker(url, "killed", rescuer_log, *common, "--trial-seconds", "0.05", trials=8,
                     seed=1, out=tmp_path / "rescuer.out")
    assert rescuer.wait(timeout=300) == 0, (tmp_path / "rescuer.out").read_text()
    trials = {t.number: t for t in optuna.load_study(study_name="killed", storage=url).trials}
    assert trials[running[0]].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == running[0]]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == trials[running[0]].params
    for record in read_logs([victim_log]):  # what finished before the kill is still there
        assert trials[record["number"]].state.name == record["state"]
        assert trials[record["number"]].value == record["value"]
    assert not any(t.state.name in ("RUNNING", "WAITING") for t in trials.values())
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 8


def test_cli_refuses_bad_spaces_storages_and_directions(tmp_path, capsys):
    tune = load_tune()
    base = ["--study", "s", "--trials", "2", "--objective", "synthetic"]
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for space, words in (("{}", "empty"), ('{"lr": ["log", 1.0, 0.001]}', "inverted"),
                         ('{"lr": ["log", 0.001]}', "is not"), ("lr=0.1", "--space")):
        with pytest.raises(SystemExit) as caught:
            tune.main([*base, "--storage", url, "--space", space])
        assert caught.value.code == 2
        assert words in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert tune.main([*base, "--storage", f"postgresql+psycopg://course:pa55word@127.0.0.1:{port}/x"]) == 2
    err = capsys.readouterr().err
    assert f"postgresql+psycopg://course:***@127.0.0.1:{port}/x" in err and "pa55word" not in err
    assert tune.main([*base, "--storage", url, "--trial-seconds", "0"]) == 0
    assert tune.main([*base, "--storage", url, "--direction", "minimize"]) == 2
    assert "already exists with direction 'maximize'" in capsys.readouterr().err


def postgres_bin() -> Path:
    found = [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    for initdb in found:
        if initdb and Path(initdb).resolve().with_name("pg_ctl").exists():
            return Path(initdb).resolve().parent
    pytest.fail("PostgreSQL's server programs (initdb, pg_ctl) are not installed: run `make postgres` "
                "(Debian's postgresql package) or install PostgreSQL and put initdb on the PATH")


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on a loopback port, stopped by PID at the end."""
    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="course-pg-"))
    as_user = {}
    if os.geteuid() == 0:  # initdb refuses to run as root: use the package's postgres user
        user = pwd.getpwnam("postgres")
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        os.chown(root, user.pw_uid, user.pw_gid)
    password = "t3st-pw"
    (root / "pw").write_text(password + "\n")
    if as_user:
        os.chown(root / "pw", as_user["user"], as_user["group"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    run = {"check": True, "capture_output": True, "text": True, "env": env, **as_user}
    pid = None
    try:
        subprocess.run([str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "course",
                        "--pwfile", str(root / "pw"), "--auth", "scram-sha-256", "--no-sync"], **run)
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"),
                        "-w", "-t", "60", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off", "start"], **run)
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
        yield f"postgresql+psycopg://course:{password}@127.0.0.1:{port}/postgres"
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGINT)  # "fast" shutdown of the server by its PID
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.workers
@pytest.mark.postgres
def test_two_workers_on_postgresql_record_every_trial_once(postgres_url, tmp_path):
    logs = run_workers(postgres_url, "cluster", tmp_path, workers=2, trials=16,
                       extra=("--trial-seconds", "0.2"))
    check_exactly_once(postgres_url, "cluster", logs, trials=16, workers=2)
    for out in tmp_path.glob("worker*.out"):
        assert "t3st-pw" not in out.read_text()
