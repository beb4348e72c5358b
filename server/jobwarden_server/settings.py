"""Server settings: defaults, the TOML config file, environment variables and flags, in that order.

Config file (all keys optional):

    listen = "127.0.0.1:50051"            # host:port; port 0: any free port (printed at start)
    database = "jobwarden.db"            # or postgresql://user@host/db (env JOBWARDEN_DATABASE_URL)
    database_pool_size = 5                # connections per process (PostgreSQL: >= 2, plus one LISTENing)
    shutdown_grace_seconds = 10
    reaper_interval_seconds = 1           # how often expired leases and deadlines are looked for
    cancel_grace_seconds = 30             # a running job's worker has this long to confirm a cancel
    max_streams_per_owner = 256           # open watch streams + long polls per owner
    watch_queue_size = 256                # events a live watcher may fall behind before it is cut off
    sqlite_synchronous = "NORMAL"         # FULL: every commit also survives a power loss (slower)
    log_format = "text"                   # or "json": one JSON object per line (--log-format)

    [[tokens]]                            # no tokens = local mode (loopback only, owner "default")
    sha256 = "<hex sha256 of the token>"  # printf %s "$TOKEN" | sha256sum
    owner = "acme"
    roles = ["client", "worker"]          # client, worker, admin (admin-global: every owner; metrics)
    name = "acme-ci"

    [[tokens]]                            # mTLS: a verified client certificate instead of a token
    client_cn = "worker-7"                # the certificate's subject common name
    owner = "acme"
    roles = ["worker"]

    [http]                                # the HTTP port: web dashboard (and /metrics); off by default
    listen = "127.0.0.1:8080"             # flag --http-listen; another host needs [tls] (or insecure)
    insecure = false                      # true: plaintext on a non-loopback address (behind a TLS proxy)

    [tls]                                 # paths relative to this file; flags --tls-* override
    cert = "server.pem"
    key = "server-key.pem"
    client_ca = "clients-ca.pem"          # optional: require client certificates signed by this CA

    [retry]
    default_max_attempts = 3
    initial_backoff_seconds = 1.0
    max_backoff_seconds = 300.0
    multiplier = 2.0

    [job_types]                           # job type -> lifecycle table (default: standard)
    "report.render" = "staged"

    [queue_timeouts]                      # job type -> seconds a job may wait to start (default: none)
    "report.render" = 3600

    [lifecycles.review]                   # custom tables, checked at start-up
    initial = "QUEUED"
    transitions = [["QUEUED", "RUNNING"], ["RUNNING", "COMPLETED"], ["RUNNING", "FAILED"]]

    [callbacks]                           # completion callbacks (all keys optional)
    timeout_seconds = 10                  # per attempt
    initial_backoff_seconds = 5           # retries: exponential backoff with jitter ...
    max_backoff_seconds = 3600
    multiplier = 2.0
    horizon_seconds = 259200              # ... for at most this long after the job ended
    poll_interval_seconds = 1             # how often due callbacks are looked for
    concurrency = 16                      # attempts in flight at once per server
    allow_networks = ["10.1.0.0/16"]      # non-public networks callbacks may go to all the same

    [callbacks.secrets]                   # per owner: one whsec_ secret, or two while rotating
    acme = ["whsec_<new>", "whsec_<old>"]

    [retention]                           # finished jobs kept this long after they ended (default:
    completed = "7d"                      # for good); seconds, or a number with s, m, h or d
    failed = "30d"
    interval_seconds = 60                 # how often jobs past their retention are deleted
    [retention.types."report.render"]     # per job type, over the defaults; "never" keeps for good
    completed = "1d"

    [stall.types."report.render"]         # per job type: a running job whose progress stands still
    after = 300                           # this long (seconds, or "5m") while its worker keeps the
    action = "fail"                       # lease is flagged stalled; "fail" also ends the attempt
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobwarden_server.domain import limits
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.errors import ConfigError, InvalidArgument
from jobwarden_server.domain.lifecycle import Lifecycle, Lifecycles
from jobwarden_server.domain.retention import Retention
from jobwarden_server.domain.retention import parse as parse_retention
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.stall import StallRules
from jobwarden_server.domain.stall import parse as parse_stall
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.domain.webhooks import CallbackPolicy, IpNetwork, parse_secret
from jobwarden_server.listen import parse_listen
from jobwarden_server.observability.logs import LOG_FORMATS
from jobwarden_server.store import SQLITE_SYNCHRONOUS
from jobwarden_server.tls import TlsSettings

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE = "jobwarden.db"
ENV_DATABASE = "JOBWARDEN_DATABASE_URL"
ENV_LISTEN = "JOBWARDEN_LISTEN"
ENV_CONFIG = "JOBWARDEN_CONFIG"
ENV_HTTP_LISTEN = "JOBWARDEN_HTTP_LISTEN"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the composition root needs."""

    listen: str = DEFAULT_LISTEN
    http_listen: str = ""
    """host:port of the HTTP port (dashboard); "" keeps it off."""
    http_insecure: bool = False
    """Serve the HTTP port in plaintext on a non-loopback address (the operator's explicit opt-out)."""
    database: str = DEFAULT_DATABASE
    database_pool_size: int = 5
    """Connections per process: SQLite readers; on PostgreSQL all requests' (the listener has its own)."""
    principals_by_hash: Mapping[str, Principal] = dataclasses.field(default_factory=dict)
    principals_by_cn: Mapping[str, Principal] = dataclasses.field(default_factory=dict)
    """Callers identified by the common name of their verified client certificate (needs mTLS)."""
    tls: TlsSettings | None = None
    lifecycles: Lifecycles = dataclasses.field(default_factory=Lifecycles.build)
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    max_request_bytes: int = 4 << 20
    subscriber_queue_size: int = 256
    """Events a live watcher may fall behind before its stream ends with WATCHER_TOO_SLOW."""
    shutdown_grace_s: float = 10.0
    reaper_interval_s: float = 1.0
    max_streams_per_owner: int = 256
    """Watch streams plus long-polling claims one owner may hold open at once."""
    sqlite_busy_timeout_ms: int = 5000
    """How long a SQLite write waits for another process's lock before the RPC gets UNAVAILABLE."""
    sqlite_synchronous: str = "NORMAL"
    """NORMAL: an acknowledged change survives a crash of the process; FULL: a power loss too (slower)."""
    cancel_grace_s: float = 30.0
    """How long a worker has to confirm a cancel of a running job before the server cancels it."""
    queue_timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Job type -> how long its jobs may wait to start when CreateJob sets no queue_timeout."""
    callbacks: CallbackPolicy = dataclasses.field(default_factory=CallbackPolicy)
    """How completion callbacks are signed, sent and retried, and where they may go."""
    retention: Retention = dataclasses.field(default_factory=Retention)
    """How long finished jobs are kept, per status and job type (default: for good)."""
    stall: StallRules = dataclasses.field(default_factory=dict)
    """Job type -> when its running jobs count as stalled, and what then (default: never)."""
    log_format: str = "text"
    """How log records are written to stderr: "text", or "json" (one object per line)."""

    def checked(self) -> Settings:
        """Refuse settings that are malformed or would be unsafe: without tokens, only a loopback address.

        TLS alone does not count: it hides the traffic but says nothing about who may call.
        """
        parse_listen(self.listen)  # first: "without tokens" would be a confusing answer to a typo
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be text or json, not {self.log_format!r}")
        if self.principals_by_cn and (self.tls is None or not self.tls.mutual):
            # Without a client CA no client certificate is requested, so no common name is ever verified.
            raise ConfigError(
                "[[tokens]] with client_cn need mutual TLS: set [tls] client_ca (--tls-client-ca)"
            )
        if not self.principals_by_hash and not self.principals_by_cn and not is_loopback(self.listen):
            raise ConfigError(
                f"refusing to listen on {self.listen} without tokens: configure [[tokens]] or use 127.0.0.1"
            )
        self._check_http()
        if self.database.startswith(("postgresql", "postgres:")) and self.database_pool_size < 2:
            # The reaper holds one pooled connection (its advisory lock) while its pass uses another.
            raise ConfigError("database_pool_size must be at least 2 with PostgreSQL")
        postgres = self.database.startswith(("postgresql", "postgres:"))
        if postgres and self.retention.enabled and self.database_pool_size < 3:
            # The retention loop holds one more for its own lock while its batches use another.
            raise ConfigError("database_pool_size must be at least 3 with PostgreSQL and [retention]")
        return self

    def _check_http(self) -> None:
        """The HTTP port follows the gRPC port's rule (no tokens: loopback only), and on any other
        address it carries the tokens (cookies) only over TLS, unless the operator opts out."""
        if not self.http_listen:
            return
        parse_listen(self.http_listen)
        if is_loopback(self.http_listen):
            return
        if not self.principals_by_hash and not self.principals_by_cn:
            raise ConfigError(
                f"refusing to serve HTTP on {self.http_listen} without tokens: configure [[tokens]] "
                "or use 127.0.0.1"
            )
        if self.tls is None and not self.http_insecure:
            raise ConfigError(
                f"refusing to serve HTTP on {self.http_listen} without TLS: set [tls] cert and key "
                "(--tls-cert, --tls-key), or, behind a proxy that terminates TLS, [http] insecure = true "
                "(--http-insecure)"
            )


def is_loopback(listen: str) -> bool:
    """Whether host:port names a loopback address only."""
    host = parse_listen(listen).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(config_path: str | None = None, **overrides: Any) -> Settings:
    """Settings from the config file (if any), then environment, then non-None overrides.

    The overrides `tls_cert`, `tls_key` and `tls_client_ca` (paths, from the flags) replace the
    matching keys of the file's [tls] table one by one.
    """
    path = config_path or os.environ.get(ENV_CONFIG)
    values: dict[str, Any] = {}
    if path:
        values.update(_from_file(Path(path)))
    tls_paths: dict[str, Path] = values.pop("tls", {})
    for key in ("cert", "key", "client_ca"):
        flag = overrides.pop(f"tls_{key}", None)
        if flag is not None:
            tls_paths[key] = Path(flag)
    values["tls"] = TlsSettings.from_files(**tls_paths)
    if ENV_DATABASE in os.environ:
        values["database"] = os.environ[ENV_DATABASE]
    if ENV_LISTEN in os.environ:
        values["listen"] = os.environ[ENV_LISTEN]
    if ENV_HTTP_LISTEN in os.environ:
        values["http_listen"] = os.environ[ENV_HTTP_LISTEN]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values).checked()


def _from_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: {err}") from err
    known = {
        "listen",
        "database",
        "tokens",
        "tls",
        "retry",
        "job_types",
        "lifecycles",
        "queue_timeouts",
        "callbacks",
        "retention",
        "http",
        "stall",
    }
    known |= {
        "shutdown_grace_seconds",
        "reaper_interval_seconds",
        "cancel_grace_seconds",
        "max_streams_per_owner",
    }
    known |= {"database_pool_size", "watch_queue_size", "sqlite_synchronous"}
    known |= {"log_format"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {unknown}")
    values: dict[str, Any] = {}
    for key in ("listen", "database", "log_format"):
        if key in raw:
            values[key] = str(raw[key])
    if "sqlite_synchronous" in raw:
        mode = str(raw["sqlite_synchronous"]).upper()
        if mode not in SQLITE_SYNCHRONOUS:
            raise ConfigError(f"config file {path}: sqlite_synchronous must be NORMAL or FULL")
        values["sqlite_synchronous"] = mode
    for key, field in (
        ("database_pool_size", "database_pool_size"),
        ("max_streams_per_owner", "max_streams_per_owner"),
        ("watch_queue_size", "subscriber_queue_size"),
    ):
        if key in raw:
            number = raw[key]
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                raise ConfigError(f"config file {path}: {key} must be a whole number >= 1")
            values[field] = number
    for key in ("shutdown_grace", "reaper_interval", "cancel_grace"):
        if f"{key}_seconds" in raw:
            values[f"{key}_s"] = float(raw[f"{key}_seconds"])
    values["principals_by_hash"], values["principals_by_cn"] = _tokens(raw.get("tokens", []))
    values["tls"] = _tls_paths(raw.get("tls", {}), path.parent)
    values.update(_http(raw.get("http", {})))
    values["retry"] = _retry(raw.get("retry", {}))
    values["callbacks"] = callbacks_policy(raw.get("callbacks", {}))
    values["retention"] = parse_retention(raw.get("retention", {}))
    custom = [_lifecycle(name, spec) for name, spec in raw.get("lifecycles", {}).items()]
    values["lifecycles"] = Lifecycles.build(
        custom, {str(k): str(v) for k, v in raw.get("job_types", {}).items()}
    )
    values["queue_timeouts"] = _queue_timeouts(raw.get("queue_timeouts", {}), values["lifecycles"])
    values["stall"] = parse_stall(raw.get("stall", {}), values["lifecycles"])
    return values


def _queue_timeouts(raw: Any, lifecycles: Lifecycles) -> dict[str, float]:
    """`[queue_timeouts]`: seconds per job type, each within the limits and on a table that can expire
    its jobs while they wait (else no job of the type could ever honour it)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("queue_timeouts must be a table of job type = seconds")
    timeouts: dict[str, float] = {}
    for job_type, seconds in raw.items():
        where = f"queue_timeouts.{job_type}"
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ConfigError(f"{where} must be a number of seconds")
        try:
            limits.check_queue_timeout(where, float(seconds))
        except InvalidArgument as err:
            raise ConfigError(f"{where} {err.description}") from None
        table = lifecycles.for_job_type(str(job_type))
        if not table.allows(table.initial, JobStatus.EXPIRED):
            raise ConfigError(
                f"{where}: lifecycle {table.name!r} has no EXPIRED state to end waiting jobs in"
            )
        timeouts[str(job_type)] = float(seconds)
    return timeouts


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _tokens(entries: list[Mapping[str, Any]]) -> tuple[dict[str, Principal], dict[str, Principal]]:
    """Each entry names a token hash (`sha256`) or a client certificate's common name (`client_cn`)."""
    by_hash: dict[str, Principal] = {}
    by_cn: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        principal = _principal(i, entry)
        if "client_cn" in entry:
            if "sha256" in entry:
                raise ConfigError(f"tokens[{i}]: give sha256 or client_cn, not both")
            cn = str(entry["client_cn"])
            if not cn:
                raise ConfigError(f"tokens[{i}].client_cn must not be empty")
            if cn in by_cn:
                raise ConfigError(f"tokens[{i}] repeats client_cn {cn!r}")
            by_cn[cn] = dataclasses.replace(principal, name=str(entry.get("name", cn)))
            continue
        digest = str(entry.get("sha256", "")).lower()
        if not _HEX64.match(digest):
            raise ConfigError(
                f"tokens[{i}].sha256 must be 64 hex characters (printf %s TOKEN | sha256sum), "
                "or give client_cn for a client certificate"
            )
        if digest in by_hash:
            raise ConfigError(f"tokens[{i}] repeats a token")
        by_hash[digest] = principal
    return by_hash, by_cn


def _principal(i: int, entry: Mapping[str, Any]) -> Principal:
    owner = str(entry.get("owner", ""))
    if not owner:
        raise ConfigError(f"tokens[{i}].owner is required")
    try:
        roles = frozenset(Role(r) for r in entry.get("roles", ["client", "worker"]))
    except ValueError as err:
        raise ConfigError(
            f"tokens[{i}].roles: {err} (use client, worker, admin, admin-global, metrics)"
        ) from err
    return Principal(owner=owner, roles=roles, name=str(entry.get("name", owner)))


def _tls_paths(raw: Any, base: Path) -> dict[str, Path]:
    """The [tls] table's file paths; relative ones are taken from the config file's directory, so the
    server finds them whatever directory it is started from."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[tls] must be a table (cert, key, client_ca)")
    unknown = sorted(set(raw) - {"cert", "key", "client_ca"})
    if unknown:
        raise ConfigError(f"[tls]: unknown keys {unknown} (use cert, key, client_ca)")
    return {key: base / str(value) for key, value in raw.items()}


def _http(raw: Any) -> dict[str, Any]:
    """The [http] table: listen (host:port) and insecure (true/false)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[http] must be a table (listen, insecure)")
    unknown = sorted(set(raw) - {"listen", "insecure"})
    if unknown:
        raise ConfigError(f"[http]: unknown keys {unknown} (use listen, insecure)")
    values: dict[str, Any] = {}
    if "listen" in raw:
        values["http_listen"] = str(raw["listen"])
    if "insecure" in raw:
        if not isinstance(raw["insecure"], bool):
            raise ConfigError("[http] insecure must be true or false")
        values["http_insecure"] = raw["insecure"]
    return values


def _retry(raw: Mapping[str, Any]) -> RetryPolicy:
    try:
        policy = RetryPolicy(
            default_max_attempts=int(raw.get("default_max_attempts", 3)),
            initial_backoff_s=float(raw.get("initial_backoff_seconds", 1.0)),
            max_backoff_s=float(raw.get("max_backoff_seconds", 300.0)),
            multiplier=float(raw.get("multiplier", 2.0)),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[retry]: {err}") from err
    if policy.default_max_attempts < 1 or policy.initial_backoff_s < 0 or policy.multiplier < 1:
        raise ConfigError(
            "[retry]: need default_max_attempts >= 1, initial_backoff_seconds >= 0, multiplier >= 1"
        )
    return policy


def _status(where: str, value: Any) -> JobStatus:
    try:
        return JobStatus(str(value).upper())
    except ValueError as err:
        raise ConfigError(f"{where}: unknown status {value!r} (use {', '.join(JobStatus)})") from err


def _lifecycle(name: str, spec: Mapping[str, Any]) -> Lifecycle:
    where = f"lifecycles.{name}"
    pairs = spec.get("transitions", [])
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ConfigError(f"{where}.transitions must be a list of [from, to] pairs")
    edges = [(_status(where, a), _status(where, b)) for a, b in pairs]
    return Lifecycle.checked(name, _status(where, spec.get("initial", "QUEUED")), edges)


_CALLBACK_SECONDS = {
    "timeout_seconds": "timeout_s",
    "initial_backoff_seconds": "initial_backoff_s",
    "max_backoff_seconds": "max_backoff_s",
    "horizon_seconds": "horizon_s",
    "poll_interval_seconds": "poll_interval_s",
}


def callbacks_policy(raw: Any) -> CallbackPolicy:
    """The [callbacks] table (and [callbacks.secrets]); ConfigError naming the key that is wrong."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[callbacks] must be a table")
    known = {*_CALLBACK_SECONDS, "multiplier", "concurrency", "allow_networks", "secrets"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[callbacks]: unknown keys {unknown} (use {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key, field in _CALLBACK_SECONDS.items():
        if key in raw:
            number = raw[key]
            if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
                raise ConfigError(f"[callbacks] {key} must be a number of seconds above 0")
            values[field] = float(number)
    if "multiplier" in raw:
        if isinstance(raw["multiplier"], bool) or not isinstance(raw["multiplier"], int | float):
            raise ConfigError("[callbacks] multiplier must be a number >= 1")
        values["multiplier"] = float(raw["multiplier"])
        if values["multiplier"] < 1:
            raise ConfigError("[callbacks] multiplier must be a number >= 1")
    if "concurrency" in raw:
        number = raw["concurrency"]
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ConfigError("[callbacks] concurrency must be a whole number >= 1")
        values["concurrency"] = number
    values["allow_networks"] = _networks(raw.get("allow_networks", []))
    values["secrets"] = _callback_secrets(raw.get("secrets", {}))
    policy = CallbackPolicy(**values)
    if policy.max_backoff_s < policy.initial_backoff_s:
        raise ConfigError("[callbacks] max_backoff_seconds must not be below initial_backoff_seconds")
    return policy


def _networks(raw: Any) -> tuple[IpNetwork, ...]:
    if not isinstance(raw, list):
        raise ConfigError('[callbacks] allow_networks must be a list of networks, e.g. ["127.0.0.0/8"]')
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in raw)
    except ValueError as err:
        raise ConfigError(f"[callbacks] allow_networks: {err}") from err


def _callback_secrets(raw: Any) -> dict[str, tuple[bytes, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError("[callbacks.secrets] must be a table: owner = secret, or owner = [new, old]")
    secrets: dict[str, tuple[bytes, ...]] = {}
    for owner, value in raw.items():
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not 1 <= len(texts) <= 2:
            raise ConfigError(f"[callbacks.secrets] {owner}: one secret, or a list of two while rotating")
        try:
            secrets[str(owner)] = tuple(parse_secret(str(text)) for text in texts)
        except ValueError as err:
            raise ConfigError(f"[callbacks.secrets] {owner}: {err}") from err
    return secrets
