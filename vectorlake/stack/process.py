"""Start, stop and inspect one local server process: pid file, log file, health check, port check."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vectorlake.errors import StackError, one_line

log = logging.getLogger(__name__)

# A health check returns a short description when the server answers, and raises when it does not.
HealthCheck = Callable[[], str]


@dataclass(frozen=True)
class ServerSpec:
    """Everything needed to run one local server; built from the config by vectorlake.stack.servers."""

    name: str
    address: str
    host: str
    ports: Mapping[str, int]  # config key -> port, e.g. {"opensearch.port": 9200}
    command: Sequence[str]
    env: Mapping[str, str]
    workdir: Path
    log_path: Path
    pid_path: Path
    health: HealthCheck
    prepare: Callable[[], None] = lambda: None
    installed: Callable[[], bool] = lambda: True
    run_as: str | None = None  # drop root privileges to this user (OpenSearch refuses to run as root)
    owned_paths: Sequence[Path] = field(default_factory=tuple)  # handed to run_as before start
    marker: str | None = None  # in its command line when the process is ours (default: the program)


@dataclass(frozen=True)
class ServerState:
    name: str
    address: str
    pid: int | None
    healthy: bool
    detail: str
    log_path: Path


def read_pid(spec: ServerSpec) -> int | None:
    """The pid in the pid file if that process is still alive and is ours, else None."""
    try:
        pid = int(spec.pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    # pids are reused: only a process whose command line is the one we started counts as ours
    if spec.marker is not None:
        return pid if spec.marker in cmdline else None
    return pid if spec.command[0] in cmdline or Path(spec.command[0]).name in cmdline else None


def state(spec: ServerSpec) -> ServerState:
    pid = read_pid(spec)
    try:
        detail = spec.health()
        healthy = True
    except Exception as e:  # a health check reports any failure as "not healthy", with its reason
        detail = one_line(e, limit=300)
        healthy = False
    if healthy and pid is None:
        detail += " (not started by this stack)"
    return ServerState(spec.name, spec.address, pid, healthy, detail, spec.log_path)


def venv_bin() -> Path:
    """The bin folder of the interpreter running vectorlake: `vectorlake`, `airflow` and `spark-submit`."""
    return Path(sys.executable).parent


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def launch(spec: ServerSpec) -> subprocess.Popen[bytes] | None:
    """Start the server in the background unless it already runs; None when it was already running."""
    if read_pid(spec) is not None:
        return None
    if not spec.installed():
        raise StackError(f"{spec.name} is not installed under {spec.workdir}; run `make setup` first")
    for key, port in spec.ports.items():
        if port_in_use(spec.host, port):
            env_name = "VECTORLAKE__" + key.upper().replace(".", "__")
            raise StackError(
                f"{spec.name}: port {port} on {spec.host} is already in use by another process; stop it or "
                f"pick another port with {env_name}=<port> (log: {spec.log_path})"
            )
    spec.pid_path.parent.mkdir(parents=True, exist_ok=True)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    spec.prepare()
    user = spec.run_as if os.geteuid() == 0 else None
    if user is not None:
        _hand_over(spec, user)
    env = {**os.environ, **spec.env}
    with spec.log_path.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(spec.command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(spec.command),
            cwd=spec.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends it with its children
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    spec.pid_path.write_text(f"{proc.pid}\n")
    log.info("started %s (pid %d), log %s", spec.name, proc.pid, spec.log_path)
    return proc


def wait_healthy(spec: ServerSpec, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> str:
    """Poll the health check until it passes; StackError if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            spec.pid_path.unlink(missing_ok=True)
            raise StackError(
                f"{spec.name} exited during start-up (exit code {proc.returncode}): "
                f"{last_log_error(spec.log_path)} (log: {spec.log_path})"
            )
        try:
            return spec.health()
        except Exception as e:  # not up yet; keep the reason for the timeout message
            last_error = one_line(e, limit=300)
        time.sleep(1.0)
    raise StackError(
        f"{spec.name} did not become healthy within {timeout_s:.0f} s ({last_error}); "
        f"see the log: {spec.log_path}"
    )


def stop(spec: ServerSpec, timeout_s: float = 60.0) -> bool:
    """Stop the server (SIGTERM, then SIGKILL); True if something was running."""
    pid = read_pid(spec)
    if pid is None:
        spec.pid_path.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.3)
    if _alive(pid):
        log.warning("%s did not stop within %.0f s; killing it", spec.name, timeout_s)
        _signal_group(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    spec.pid_path.unlink(missing_ok=True)
    return True


def last_log_error(path: Path, max_lines: int = 400) -> str:
    """The most telling line near the end of a log: the last error or exception, else the last line."""
    try:
        lines = [
            ln.strip() for ln in path.read_text(errors="replace").splitlines()[-max_lines:] if ln.strip()
        ]
    except OSError:
        return "no log written"
    for ln in reversed(lines):
        if any(w in ln for w in ("ERROR", "Exception", "Error:", "error:", "FATAL")):
            return ln[:300]
    return lines[-1][:300] if lines else "empty log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie has exited; reap it if it is our child
    try:
        with Path(f"/proc/{pid}/stat").open() as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                return False
    except (OSError, IndexError):
        return False
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _hand_over(spec: ServerSpec, user: str) -> None:
    """Give ``user`` the server's writable folders and check it can reach its install folder."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError as e:
        raise StackError(
            f"{spec.name} must not run as root and user '{user}' does not exist; "
            f"set VECTORLAKE__STACK__RUN_AS to an existing unprivileged user"
        ) from e
    for path in spec.owned_paths:
        path.mkdir(parents=True, exist_ok=True)
        for p in [path, *path.rglob("*")]:
            os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    blocked = first_untraversable(spec.workdir, pw.pw_uid)
    if blocked is not None:
        raise StackError(
            f"{spec.name} runs as '{user}', who cannot enter {blocked}; put the state folder somewhere "
            f"world-readable, e.g. VECTORLAKE__STACK__STATE_DIR=/var/tmp/vectorlake"
        )


def first_untraversable(path: Path, uid: int) -> Path | None:
    for p in [*reversed(path.parents), path]:
        st = p.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & stat.S_IXOTH:
            return p
    return None
