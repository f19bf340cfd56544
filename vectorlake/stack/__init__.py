"""The local stack: `vectorlake stack up | down | status`.

Servers are started together and waited on together (OpenSearch is the slow one); a failure stops
nothing that was already healthy and reports the cause, the fix and the log path in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from vectorlake.config import Config
from vectorlake.errors import StackError
from vectorlake.stack import process, servers
from vectorlake.stack.process import ServerSpec, ServerState

log = logging.getLogger(__name__)

# Servers that join only when asked for (`stack up --with NAME`); a later release registers Airflow here.
OPTIONAL_SERVERS: dict[str, object] = {}


@dataclass(frozen=True)
class StackStatus:
    servers: tuple[ServerState, ...]
    mlflow: tuple[str, bool, str]  # uri, ready, detail

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.servers) and self.mlflow[1]


def specs(cfg: Config, extra: Sequence[str] = ()) -> list[ServerSpec]:
    unknown = [name for name in extra if name not in OPTIONAL_SERVERS]
    if unknown:
        raise StackError(f"unknown optional server '{unknown[0]}'")
    return servers.all_servers(cfg)


def up(cfg: Config, extra: Sequence[str] = ()) -> StackStatus:
    _require_local(cfg)
    store = servers.MlflowStore.from_config(cfg)
    store.prepare()
    started = []
    for spec in specs(cfg, extra):
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
    return status(cfg, extra)


def down(cfg: Config, extra: Sequence[str] = ()) -> list[str]:
    _require_local(cfg)
    return [spec.name for spec in reversed(specs(cfg, extra)) if process.stop(spec)]


def status(cfg: Config, extra: Sequence[str] = ()) -> StackStatus:
    states = tuple(process.state(spec) for spec in specs(cfg, extra))
    store = servers.MlflowStore.from_config(cfg)
    try:
        mlflow = (store.uri, True, store.health())
    except Exception as e:  # reported as not ready, with the reason
        mlflow = (store.uri, False, str(e))
    return StackStatus(states, mlflow)


def _require_local(cfg: Config) -> None:
    if not cfg.stack.local:
        raise StackError(f"the '{cfg.env}' environment has no local stack (stack.local is false)")
