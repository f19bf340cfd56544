"""The query service as an optional server of the local stack: `vectorlake stack up --with serve`.

It runs `vectorlake serve` from this venv with the environment `stack up` ran in (so the same config),
logs to ``<stack.state_dir>/serve/serve.log`` and is healthy once it answers ``/livez``: it reads the alias
and loads the live generation's models before it binds its port, so healthy means warm.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from vectorlake.config import Config
from vectorlake.stack.process import ServerSpec, venv_bin

NAME = "serve"


def spec(cfg: Config) -> ServerSpec:
    home = cfg.state_dir / "serve"
    url = cfg.serve_url
    command = venv_bin() / "vectorlake"

    def health() -> str:
        with urllib.request.urlopen(f"{url}/livez", timeout=5):  # noqa: S310 - loopback URL from config
            pass
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:  # noqa: S310
                found = json.loads(resp.read())
            return f"serving {found['generation']} ({', '.join(found['warm'])})"
        except urllib.error.HTTPError as e:  # up, but nothing to serve yet (no live generation)
            return f"up; {json.loads(e.read()).get('error', e.reason)}"

    return ServerSpec(
        name=NAME,
        address=url,
        host=cfg.serve.host,
        ports={"serve.port": cfg.serve.port},
        command=[str(command), "serve", "--host", cfg.serve.host, "--port", str(cfg.serve.port)],
        env={},
        workdir=home,
        log_path=home / "serve.log",
        pid_path=home / "serve.pid",
        health=health,
        prepare=lambda: home.mkdir(parents=True, exist_ok=True),
        installed=command.exists,
    )
