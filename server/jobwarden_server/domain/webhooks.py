"""Completion callbacks, the pure rules: when one fires, what it says, how it is signed, when it is
retried, and which addresses it may go to.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): the headers `webhook-id` (one
per delivery, the same on every retry of it, so a receiver can drop duplicates), `webhook-timestamp`
(Unix seconds of the attempt) and `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
`id.timestamp.body` under a `whsec_` secret, one per secret configured for the owner, separated by
spaces, so a receiver keeps verifying while the owner rotates from an old secret to a new one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import random
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from jobwarden_server.domain.errors import InvalidArgument
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SECRET_PREFIX = "whsec_"
REFUSED = "CALLBACK_TARGET_REFUSED"
"""The ErrorReason of a callback CreateJob refuses to accept."""
MAX_RESULT_BYTES = 16 * 1024
"""A result larger than this (as JSON) is left out of the payload: fetch it with GetJob."""

# Cloud metadata services: never a receiver, and the classic way to turn a callback into a credential
# leak. The addresses are link-local or private anyway; the names are refused before any lookup.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)


def fires(job: Job) -> bool:
    """Whether `job`, now terminal, has a callback for the status it ended in."""
    if not job.callback_url or not job.status.terminal:
        return False
    return not job.callback_statuses or job.status in job.callback_statuses


def payload(job: Job) -> str:
    """The JSON body of a terminal job's callback, fixed when the job ends so every retry sends the
    same bytes. A result over MAX_RESULT_BYTES is left out (`result_truncated`: fetch it)."""
    result: Any = job.result
    truncated = False
    if result is not None and len(json.dumps(result, separators=(",", ":"))) > MAX_RESULT_BYTES:
        result, truncated = None, True
    error = None
    if job.error is not None:
        error = {"message": job.error.message, "reason": job.error.reason, "retryable": job.error.retryable}
    complete = job.complete_time.isoformat().replace("+00:00", "Z") if job.complete_time else None
    body = {
        "type": f"job.{job.status.value.lower()}",
        "timestamp": complete,
        "data": {
            "job_id": job.id,
            "job_type": job.job_type,
            "status": job.status.value,
            "stop_reason": job.stop_reason.value,
            "complete_time": complete,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "labels": dict(job.labels),
            "result": result,
            "result_truncated": truncated,
            "error": error,
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def parse_secret(text: str) -> bytes:
    """The key of a `whsec_<base64>` secret (24 to 64 bytes, as Standard Webhooks asks); ValueError."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a callback secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as err:
        raise ValueError(f"a callback secret is {SECRET_PREFIX} and base64: {err}") from err
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a callback secret's key is 24 to 64 bytes, not {len(key)}")
    return key


def signature(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: str) -> str:
    """The webhook-signature header: `v1,<base64 HMAC-SHA256>` per key, space-separated."""
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    )


def headers(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "content-type": "application/json",
        "user-agent": "jobwarden-callbacks",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(keys, webhook_id, timestamp, body),
    }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackPolicy:
    """How callbacks are sent: the server config's [callbacks] table."""

    timeout_s: float = 10.0
    """Per attempt: connecting, sending and reading the response status."""
    initial_backoff_s: float = 5.0
    max_backoff_s: float = 3600.0
    multiplier: float = 2.0
    horizon_s: float = 3 * 24 * 3600.0
    """No retry is scheduled for later than this after the job ended: the callback is FAILED instead."""
    poll_interval_s: float = 1.0
    """How often each server looks for callbacks due."""
    concurrency: int = 16
    """Deliveries in flight at once per server: a slow receiver holds one slot, never the others."""
    allow_networks: tuple[IpNetwork, ...] = ()
    """Non-public networks callbacks may go to all the same (loopback for tests, an internal range)."""
    secrets: Mapping[str, tuple[bytes, ...]] = dataclasses.field(default_factory=dict)
    """Signing keys per owner; two while rotating."""

    def backoff_s(self, attempts: int, rng: random.Random | None = None) -> float:
        """Delay after the `attempts`-th failed attempt: exponential, capped, with jitter that keeps at
        least half of it, so receivers coming back up are not hit by every retry at once."""
        nominal = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(0, attempts - 1))
        return nominal * (rng or random).uniform(0.5, 1.0)

    def lease_s(self) -> float:
        """How long a server holds a claimed delivery: longer than an attempt can take, so another
        replica takes it over only from a server that died (or stalled) with it."""
        return self.timeout_s * 2 + 5.0

    def address_refusal(self, address: IpAddress) -> str | None:
        """Why `address` may not be called (None: it may): not public and not allow-listed."""
        if address in METADATA_ADDRESSES and not self._allowed(address):
            return f"{address} is a cloud metadata address"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.address_refusal(address.ipv4_mapped)
        if address.is_global or self._allowed(address):
            return None
        return f"{address} is a {_kind(address)} address"

    def _allowed(self, address: IpAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow_networks)

    def target_refusal(self, url: str) -> str | None:
        """Why CreateJob refuses `url` (None: accepted). A name is not looked up here (that would put
        DNS on every create); the addresses it resolves to are checked at each delivery."""
        host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
        if not host:
            return "has no host"
        if host in METADATA_NAMES:
            return f"{host} is a cloud metadata service"
        if host == "localhost" or host.endswith(".localhost"):
            refusals = [self.address_refusal(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
            return None if None in refusals else f"{host} is a loopback name"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        return self.address_refusal(address)

    def check(self, field: str, owner: str, url: str) -> None:
        """InvalidArgument (CALLBACK_TARGET_REFUSED) if a job of `owner` may not call back `url`."""
        if not url:
            return
        refusal = self.target_refusal(url)
        if refusal is not None:
            raise InvalidArgument(
                field,
                f"callback target refused: {refusal}; allow it in the server config "
                "([callbacks] allow_networks) if it is meant",
                reason=REFUSED,
            )
        if not self.secrets.get(owner):
            raise InvalidArgument(
                field,
                f"no callback secret is configured for owner {owner!r} ([callbacks.secrets] in the server "
                "config), so its callbacks could not be signed",
                reason=REFUSED,
            )


def _kind(address: IpAddress) -> str:
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "non-public"


def check_statuses(field: str, url: str, statuses: frozenset[JobStatus]) -> frozenset[JobStatus]:
    """callback_statuses: terminal ones only, and only with a callback_url."""
    if statuses and not url:
        raise InvalidArgument(field, "needs callback_url")
    for status in statuses:
        if not status.terminal:
            raise InvalidArgument(field, f"{status.value} is not a terminal status")
    return statuses
