"""Optuna studies: the searches of :mod:`course_utils.tuning`, stored in a database so that any
number of processes, on one machine or many, can work on the same study.

- :func:`open_storage` opens a study database from a URL: ``sqlite:///results/studies/x.db`` for
  one machine (no server), ``postgresql+psycopg://user:password@host:5432/db`` for a cluster; the
  one-line change between the two is the URL. Heartbeats let a live worker mark a dead worker's
  running trial as failed and queue it again.
- :func:`open_study` creates or joins a study, refusing one stored with the other direction.
- :func:`suggest` draws a trial's parameters from a :mod:`course_utils.tuning` search space.

Errors name the storage URL with its password hidden (:func:`redact_url`). Optuna is imported
inside the functions, so ``import course_utils`` stays fast. Notebook 10; ``scripts/tune.py`` is
the worker.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from course_utils.tuning import Choice, Dimension, LogUniform, check_space

DIRECTIONS = ("maximize", "minimize")


class StorageUnavailableError(ConnectionError):
    """The study database cannot be opened (server down, wrong host, port, password or path)."""


def sqlite_url(path: str | Path) -> str:
    """The storage URL of a local SQLite file (its folder is created if missing)."""
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to print and log)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<not a database URL>"


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # an unparsable URL has no password we could leak
        return None


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several processes share one file: wait for the write lock instead of failing.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {}


def open_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int = 1, attempts: int = 3) -> Any:
    """Open (and, the first time, initialize) the study database at ``url``.

    Args:
        heartbeat_interval: seconds between a running trial's heartbeats; with it, a trial whose
            worker died (its heartbeat older than ``grace_period``, default twice the interval)
            is marked FAIL by the next worker that starts a trial, and queued again up to
            ``max_retry`` times (Optuna's RetryHeartbeatStaleTrialCallback).
        attempts: tries when several processes create the tables at the same moment.

    Raises:
        ValueError: ``url`` is not a database URL, or bad heartbeat numbers.
        StorageUnavailableError: the database cannot be reached; the message names the URL with
            the password hidden.
    """
    import optuna
    from sqlalchemy import exc

    safe = redact_url(url)
    if not isinstance(url, str) or "://" not in url or safe == "<not a database URL>":
        raise ValueError(f"not a database URL: {url!r}; use sqlite:///path/to/study.db (one machine) "
                         "or postgresql+psycopg://user:password@host:5432/dbname (a cluster)")
    for name, value in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int (seconds) or None, got {value!r}")
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                callback = None if heartbeat_interval is None else \
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=_engine_kwargs(url), heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, heartbeat_stale_trial_callback=callback)
        except (exc.IntegrityError, exc.ProgrammingError, exc.OperationalError) as err:
            racing = "already exists" in str(err) or not isinstance(err, exc.OperationalError)
            if racing and attempt < attempts - 1:  # another process is creating the same tables
                time.sleep(0.5 * (attempt + 1))
                continue
            raise _unavailable(url, safe, err) from None
        except (ImportError, exc.NoSuchModuleError) as err:
            raise StorageUnavailableError(
                f"cannot open the study storage {safe}: its database driver is missing or unknown "
                f"({err}); for PostgreSQL install psycopg (pip install 'psycopg[binary]') and write "
                "the URL as postgresql+psycopg://...") from None
        except (exc.ArgumentError, exc.SQLAlchemyError, OSError) as err:
            raise _unavailable(url, safe, err) from None
    raise AssertionError("unreachable")


def _unavailable(url: str, safe: str, err: Exception) -> StorageUnavailableError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    secret = _password(url)
    if secret:
        reason = reason.replace(secret, "***")
    return StorageUnavailableError(
        f"cannot open the study storage {safe}: {reason}. Check that the database server is "
        "running and reachable from here, that the database exists and the user name and "
        "password are right; for a study on this machine alone use sqlite:///path/to/study.db")


def open_study(storage: Any, name: str, *, direction: str, sampler: Any = None,
               pruner: Any = None) -> Any:
    """Create the study ``name`` in ``storage`` (a URL or :func:`open_storage`'s result), or join it.

    Raises:
        ValueError: an unknown direction, an empty name, or a study of that name stored with
            the other direction.
        StorageUnavailableError: see :func:`open_storage`.
    """
    import optuna

    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; choose one of {DIRECTIONS}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"the study needs a non-empty name, got {name!r}")
    if isinstance(storage, str):
        storage = open_storage(storage)
    where = redact_url(storage.url) if hasattr(storage, "url") else type(storage).__name__
    study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    stored = study.direction.name.lower()
    if stored != direction:
        raise ValueError(f"study {name!r} in {where} already exists with direction {stored!r}, "
                         f"but {direction!r} was asked for: its trials cannot be compared with the "
                         "new ones. Use another study name, or the stored direction.")
    return study

def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    """The parameters of an Optuna ``trial`` drawn from a :mod:`course_utils.tuning` space."""
    params: dict[str, Any] = {}
    for name, dim in check_space(space).items():
        if isinstance(dim, Choice):
            params[name] = trial.suggest_categorical(name, list(dim.values))
        else:
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=isinstance(dim, LogUniform))
    return params


def trial_states(study: Any) -> dict[str, int]:
    """How many of the study's trials are in each state, e.g. ``{"COMPLETE": 12, "PRUNED": 8}``."""
    return dict(Counter(trial.state.name for trial in study.get_trials(deepcopy=False)))
