import socket

import optuna
import pytest

from course_utils.studies import (
    StorageUnavailableError,
    open_storage,
    open_study,
    redact_url,
    sqlite_url,
    suggest,
    trial_states,
)
from course_utils.tuning import Choice, LogUniform, Uniform

SPACE = {"lr": LogUniform(1e-3, 1.0), "momentum": Uniform(0.8, 0.99), "weight_decay": Choice((0.0, 1e-4))}


@pytest.fixture(autouse=True)
def quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_redact_url_hides_only_the_password():
    assert redact_url("postgresql+psycopg://course:s3cret@db:5432/optuna") == \
        "postgresql+psycopg://course:***@db:5432/optuna"
    assert redact_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    assert redact_url("no url") == "<not a database URL>"


def test_sqlite_study_round_trip(tmp_path):
    url = sqlite_url(tmp_path / "sub" / "study.db")
    study = open_study(url, "lr", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: -abs(suggest(trial, SPACE)["lr"] - 0.05), n_trials=6)
    again = open_study(open_storage(url), "lr", direction="maximize")
    assert len(again.trials) == 6 and again.best_trial.number == study.best_trial.number
    assert trial_states(again) == {"COMPLETE": 6}
    assert set(again.best_params) == set(SPACE)
    assert again.best_params["weight_decay"] in (0.0, 1e-4)
    assert 1e-3 <= again.best_params["lr"] <= 1.0 and 0.8 <= again.best_params["momentum"] <= 0.99


def test_existing_study_with_the_other_direction_is_refused(tmp_path):
    url = sqlite_url(tmp_path / "study.db")
    open_study(url, "lr", direction="maximize")
    with pytest.raises(ValueError, match=r"'lr' .* already exists with direction 'maximize'.*'minimize'"):
        open_study(url, "lr", direction="minimize")


def test_unreachable_postgres_names_the_url_without_the_password():
    port = closed_port()
    url = f"postgresql+psycopg://course:s3cret-pw@127.0.0.1:{port}/optuna"
    with pytest.raises(StorageUnavailableError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert f"postgresql+psycopg://course:***@127.0.0.1:{port}/optuna" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unopenable_sqlite_file_and_bad_urls(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageUnavailableError, match="cannot open the study storage sqlite"):
        open_storage(f"sqlite:///{blocker}/study.db")
    with pytest.raises(ValueError, match="not a database URL"):
        open_storage("results/study.db")
    with pytest.raises(StorageUnavailableError, match="driver is missing or unknown"):
        open_storage("mysql+nosuchdriver://user:pw@127.0.0.1/db")


def test_bad_arguments(tmp_path):
    url = sqlite_url(tmp_path / "study.db")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        open_storage(url, heartbeat_interval=0)
    with pytest.raises(ValueError, match="direction"):
        open_study(url, "x", direction="up")
    with pytest.raises(ValueError, match="name"):
        open_study(url, " ", direction="maximize")
    with pytest.raises(ValueError, match="empty"):
        suggest(optuna.trial.FixedTrial({}), {})
