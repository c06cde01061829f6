"""Many workers on one PostgreSQL study: a worker killed mid-trial is found by its lapsed
heartbeat and its trial retried; the study ends with the trials asked for, none twice. The
server restarted between trials: the workers reconnect and completed trials are kept.

Needs PostgreSQL's server binaries (Debian's `postgresql`, which .ci/run installs); skipped
where they are absent, except under CI=true, where it must run."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from tests.conftest import tiny_recipe
from tests.postgres import postgres_server, server_binaries


@pytest.fixture(scope="module")
def postgres_url():
    if server_binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but PostgreSQL's server binaries are missing (.ci/run installs postgresql)")
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres_server() as url:
        yield url


def test_unreachable_or_wrong_study_is_one_line(postgres_url, tiny_model_dir, sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1)
    recipe["search"] = {"space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    bad = postgres_url.replace("/postgres", "/no_such_db")
    proc = subprocess.run([sys.executable, "-m", "pretune", "search", path, "--storage", bad, "--out", tmp_path / "s"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot open the study storage at 127.0.0.1:" in proc.stderr and "no_such_db" in proc.stderr


def test_killed_worker_trial_is_retried_and_the_study_completes(postgres_url, tiny_model_dir, sentiment_csv,
                                                              tmp_path):
    trials = 4
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2)
    recipe["search"] = {
        "space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]}, "train.batch_size": {"choice": [8, 16]}},
        "trials": trials, "sampler": "random", "pruner": "none", "keep": "none", "evaluations": 2,
        "heartbeat_seconds": 1, "grace_seconds": 4, "storage": str(postgres_url), "study": "kill-test", "workers": 2,
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "pretune", "search", str(path), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, storage = None, optuna.storages.RDBStorage(postgres_url)
    try:
        deadline = time.time() + 180
        while killed is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name="kill-test", storage=storage)
            except KeyError:  # not created yet
                continue
            for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                history = out / f"trial-{t.number:04d}" / "metrics.jsonl"
                if "worker" in t.user_attrs and history.is_file() and history.read_text().strip():
                    pid = int(t.user_attrs["worker"].rsplit(":", 1)[1])
                    os.kill(pid, signal.SIGKILL)  # mid-trial: it has logged training steps
                    killed = t.number
                    break
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no trial was seen running"
    assert proc.returncode == 0, stderr[-3000:]
    study = optuna.load_study(study_name="kill-test", storage=storage)
    by_state = {s: [t for t in study.trials if t.state == s] for s in optuna.trial.TrialState}
    complete = by_state[optuna.trial.TrialState.COMPLETE]
    assert len(complete) == trials, [(t.number, t.state.name) for t in study.trials]
    assert study.trials[killed].state == optuna.trial.TrialState.FAIL
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == study.trials[killed].params
    assert len({tuple(sorted(t.params.items())) for t in complete}) == trials, "no trial ran twice"
    assert not by_state[optuna.trial.TrialState.RUNNING] and not by_state[optuna.trial.TrialState.WAITING]
    assert "best trial" in stdout and (out / "best.yaml").is_file()


def test_a_study_survives_a_restart_of_its_server(postgres_url, tiny_model_dir, sentiment_csv, tmp_path):
    """The server restarts (every connection dropped) as soon as the first trial has completed, the
    next one running: the worker reconnects (pool_pre_ping), the completed trial is kept, and the
    study ends with every trial complete."""
    trials = 4
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2)
    recipe["search"] = {
        "space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]}}, "trials": trials, "sampler": "random",
        "pruner": "none", "keep": "none", "evaluations": 2, "heartbeat_seconds": 1, "grace_seconds": 4,
        "storage": str(postgres_url), "study": "restart-test", "workers": 1,
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = subprocess.Popen([sys.executable, "-m", "pretune", "search", str(path), "--out", str(tmp_path / "study")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first, storage = None, optuna.storages.RDBStorage(postgres_url, engine_kwargs={"pool_pre_ping": True})
    try:
        deadline = time.time() + 180
        while first is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                done = optuna.load_study(study_name="restart-test", storage=storage).get_trials(
                    states=(optuna.trial.TrialState.COMPLETE,))
            except KeyError:  # not created yet
                continue
            if done:
                first = (done[0].number, done[0].values, done[0].params)
                postgres_url.restart()
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first is not None, "no trial was seen completing before the search ended"
    assert proc.returncode == 0, stderr[-3000:]
    study = optuna.load_study(study_name="restart-test", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == trials, [(t.number, t.state.name) for t in study.trials]
    kept = study.trials[first[0]]
    assert (kept.number, kept.values, kept.params) == first
    assert "best trial" in stdout
