"""A standard-library client of the query service, for `vectorlake search` and the demo (no torch, no
FastAPI): `serves` says whether the service answers for this config's alias, `search` sends one request and
returns its JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from vectorlake.config import Config
from vectorlake.errors import VectorlakeError

UP_TIMEOUT_S = 0.5  # a service on this machine answers /livez in milliseconds


def health(cfg: Config) -> dict[str, Any] | None:
    """The service's ``GET /healthz`` answer (``status``, ``alias``, ...), or None if nothing answers."""
    try:
        with urllib.request.urlopen(f"{cfg.serve_url}/healthz", timeout=UP_TIMEOUT_S) as resp:  # noqa: S310
            found = json.loads(resp.read())
    except urllib.error.HTTPError as e:  # 503: up, but it cannot serve (it says why)
        try:
            found = json.loads(e.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def serves(cfg: Config) -> tuple[bool, str]:
    """Whether the service at ``serve.port`` can answer this config's searches, and if not, why."""
    found = health(cfg)
    if found is None:
        return False, "the query service is not up: `vectorlake serve` keeps the models loaded"
    if found.get("alias") != cfg.index.alias:
        return False, f"the query service serves the alias '{found.get('alias')}', not '{cfg.index.alias}'"
    if found.get("status") != "ok":
        return False, f"the query service cannot serve: {found.get('error')}"
    return True, ""


def search(cfg: Config, body: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
    """The service's answer to ``POST /search`` with ``body``; VectorlakeError with its one-line reason."""
    request = urllib.request.Request(  # noqa: S310 - the service's URL from config
        f"{cfg.serve_url}/search",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            answer: dict[str, Any] = json.loads(resp.read())
            return answer
    except urllib.error.HTTPError as e:
        try:
            reason = json.loads(e.read()).get("error") or e.reason
        except ValueError:
            reason = e.reason
        raise VectorlakeError(f"the query service refused the search (HTTP {e.code}): {reason}") from None
    except OSError as e:
        raise VectorlakeError(f"the query service at {cfg.serve_url} did not answer: {e}") from None
