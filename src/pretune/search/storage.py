"""Where a study lives: SQLite in the study directory by default, any optuna RDB URL otherwise
(postgresql://user:pass@host/db to share one study between machines).

Every worker records a heartbeat while it runs a trial; a trial whose heartbeat lapses (its
worker was killed) is marked failed and queued again with the same parameters, up to
`search.retries` times (optuna's heartbeat and RetryHeartbeatStaleTrialCallback, the current
name of RetryFailedTrialCallback).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from pretune.errors import MissingExtraError, PretuneError
from pretune.recipe import SearchConfig

DB = "study.db"


def storage_url(cfg: SearchConfig, study_dir: Path) -> str:
    return cfg.storage or f"sqlite:///{(study_dir / DB).resolve()}"


def shown(url: str) -> str:
    """The URL without its password, for messages and study.json."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_storage(url: str, cfg: SearchConfig) -> RDBStorage:
    """Open (and create the tables of) an RDB storage with heartbeats; fail in one line."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise PretuneError(f"--storage '{url}' is not a database URL (e.g. postgresql://user:pass@host/db, "
                           "sqlite:///study.db)") from None
    if parsed.get_backend_name() == "sqlite":
        # Local workers share one file: wait for its lock rather than fail.
        engine_kwargs: dict = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat_interval is "experimental" since optuna 2.9
            return RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=cfg.heartbeat_seconds,
                grace_period=cfg.grace_seconds or 3 * cfg.heartbeat_seconds,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=cfg.retries))
    except ImportError as e:
        if parsed.get_backend_name() == "postgresql":
            raise MissingExtraError("psycopg", "search") from None
        raise PretuneError(f"storage {shown(url)}: {e}") from None
    except sqlalchemy.exc.SQLAlchemyError as e:
        where = f"{parsed.host}:{parsed.port or 'default port'}" if parsed.host else parsed.database
        raise PretuneError(f"cannot open the study storage at {where} ({shown(url)}): {reason_of(e)}") from None


def reason_of(error: Exception) -> str:
    """The first line of what the database driver said (SQLAlchemy wraps it as `.orig`)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def open_study(storage: RDBStorage, name: str, directions: list[str], sampler=None, pruner=None) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler,
                               pruner=pruner, load_if_exists=True)
