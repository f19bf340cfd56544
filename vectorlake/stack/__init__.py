"""The local stack: `vectorlake stack up | down | status`.

Servers are started together and waited on together (OpenSearch is the slow one); a failure stops
nothing that was already healthy and reports the cause, the fix and the log path in one line. Optional
servers (Airflow, the query service, a Spark standalone cluster) join with ``--with NAME``; ``only=True``
acts on the named optional servers alone, so Airflow can be started or stopped while the core servers
others use keep running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vectorlake.config import Config
from vectorlake.errors import StackError
from vectorlake.stack import airflow, process, serve, servers, standalone
from vectorlake.stack.process import ServerSpec, ServerState

log = logging.getLogger(__name__)

# Servers that join only when asked for (`stack up --with NAME`), by name: their specs from the config.
OPTIONAL_SERVERS: dict[str, Callable[[Config], list[ServerSpec]]] = {
    airflow.NAME: lambda cfg: [airflow.spec(cfg)],
    serve.NAME: lambda cfg: [serve.spec(cfg)],
    standalone.NAME: standalone.specs,
}


@dataclass(frozen=True)
class StackStatus:
    servers: tuple[ServerState, ...]
    mlflow: tuple[str, bool, str]  # uri, ready, detail
    airflow_login: airflow.AdminLogin | None = None  # when Airflow was asked for

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.servers) and self.mlflow[1]


def specs(cfg: Config, extra: Sequence[str] = (), only: bool = False) -> list[ServerSpec]:
    """The core servers and the optional ones named in ``extra`` (with ``only``: those alone)."""
    unknown = [name for name in extra if name not in OPTIONAL_SERVERS]
    if unknown:
        raise StackError(f"unknown optional server '{unknown[0]}'")
    optional = [spec for name in dict.fromkeys(extra) for spec in OPTIONAL_SERVERS[name](cfg)]
    return optional if only else [*servers.all_servers(cfg), *optional]


def up(cfg: Config, extra: Sequence[str] = (), only: bool = False) -> StackStatus:
    _require_local(cfg)
    store = servers.MlflowStore.from_config(cfg)
    store.prepare()
    started = []
    for spec in specs(cfg, extra, only):
        proc = process.launch(spec)
        started.append((spec, proc))
    errors = []
    for spec, proc in started:
        try:
            detail = process.wait_healthy(spec, proc, cfg.stack.startup_timeout_s)
            log.info("%s healthy: %s", spec.name, detail)
        except StackError as e:
            errors.append(str(e))
    if errors:
        raise StackError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    return status(cfg, extra, only)


def down(cfg: Config, extra: Sequence[str] = (), only: bool = False) -> list[str]:
    """Stop the servers, optional ones first. Without ``only`` that is every server, whether named or
    not: a plain `stack down` also stops an Airflow an earlier `up --with airflow` started."""
    _require_local(cfg)
    targets = specs(cfg, extra, only) if only else specs(cfg, list(OPTIONAL_SERVERS))
    return [spec.name for spec in reversed(targets) if process.stop(spec)]


def status(cfg: Config, extra: Sequence[str] = (), only: bool = False) -> StackStatus:
    states = tuple(process.state(spec) for spec in specs(cfg, extra, only))
    store = servers.MlflowStore.from_config(cfg)
    try:
        mlflow = (store.uri, True, store.health())
    except Exception as e:  # reported as not ready, with the reason
        mlflow = (store.uri, False, str(e))
    login = airflow.admin_login(cfg) if airflow.NAME in extra else None
    return StackStatus(states, mlflow, login)


def _require_local(cfg: Config) -> None:
    if not cfg.stack.local:
        raise StackError(f"the '{cfg.env}' environment has no local stack (stack.local is false)")
