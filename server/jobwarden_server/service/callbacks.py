"""The callback dispatcher: the server loop that delivers completion callbacks from the outbox.

The outbox row of a callback is written in the transaction that ends its job (store/_outbox.py), so
this loop only ever reads committed work: it claims due rows under a lease, POSTs each one's fixed
body, signed (domain/webhooks.py), and records every attempt as an event of the job. Deliveries run
concurrently, up to `concurrency` at once, each bounded by the attempt timeout, so a slow or dead
receiver holds one slot and never delays another callback, let alone a job's transitions (which
never wait for this loop). What an attempt's outcome means:

- 2xx: delivered; the row is settled and never sent again.
- 410 Gone: the receiver wants no more; failed, no retry.
- a refused target (the name resolves to an address that is not public and not allow-listed, or no
  secret is configured for the owner): failed, no retry.
- anything else (another status, redirects included, which are never followed; a connection error;
  the timeout): retried with exponential backoff and jitter while the next attempt would still start
  within the retry horizon, counted from the job's end; failed after that.

The address a name resolves to is checked at each attempt, and the request goes to that very address
(the URL's host is kept for the Host header and TLS), so a name that changes its answer between the
check and the connection cannot point a callback at an internal service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx

from jobwarden_server import store
from jobwarden_server.domain import errors, webhooks
from jobwarden_server.domain.records import CallbackState
from jobwarden_server.events.bus import EventBus
from jobwarden_server.observability.metrics import Metrics

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""host, port -> the addresses it resolves to (tests may swap in their own)."""

OUTCOMES = {
    CallbackState.DELIVERED: "delivered",
    CallbackState.DELIVERING: "retrying",
    CallbackState.FAILED: "failed",
}
"""An attempt's outcome as jobwarden_callback_deliveries_total counts it, by the state it left."""
RECORD_RETRY_S = 0.5
STOP_GRACE_S = 1.0
"""On shutdown, attempts in flight get this long to finish; the others are resent after their lease."""


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order (an IP literal resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Refused(Exception):
    """The attempt may not be made at all; retrying would not change that."""


class CallbackDispatcher:
    """Claims due callbacks, sends them, records each attempt; one per server process."""

    def __init__(
        self,
        db: store.Store,
        bus: EventBus,
        policy: webhooks.CallbackPolicy,
        clock: Clock,
        metrics: Metrics,
        *,
        resolver: Resolver = resolve,
    ) -> None:
        self._store = db
        self._bus = bus
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._resolve = resolver
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set. A failing pass (database down) is logged and tried again."""
        # Redirects are never followed (httpx's default, said out loud); no proxy from the environment.
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            try:
                while not stop.is_set():
                    try:
                        await self._claim_and_start(client)
                    except errors.StoreUnavailable as err:
                        logger.warning("callbacks: store unavailable (%s); retrying", err)
                    except Exception:
                        logger.exception("callbacks: unexpected failure; retrying")
                    await self._pause(stop)
            finally:
                await self._wind_down()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Until the next poll, or until a slot frees up, whichever comes first (or stop)."""
        self._slot_freed.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._slot_freed.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self._policy.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _claim_and_start(self, client: httpx.AsyncClient) -> None:
        free = self._policy.concurrency - len(self._inflight)
        if free <= 0:
            return
        claimed = await self._store.callback_claim(
            store.CallbackClaimParams(now=self._clock(), limit=free, lease_s=self._policy.lease_s())
        )
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(client, delivery), name=f"callback-{delivery.id}")
            self._inflight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    async def _wind_down(self) -> None:
        if not self._inflight:
            return
        _, pending = await asyncio.wait(set(self._inflight), timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _attempt(self, client: httpx.AsyncClient, delivery: store.CallbackDelivery) -> None:
        """One attempt, whatever happens: a bug here must not go unlogged in a task nobody awaits (the
        delivery is attempted again once its lease runs out)."""
        try:
            await self._deliver(client, delivery)
        except Exception:
            logger.exception("callbacks: attempt of %s failed unexpectedly", delivery.id)

    async def _deliver(self, client: httpx.AsyncClient, delivery: store.CallbackDelivery) -> None:
        started = time.monotonic()
        status, error, refused = 0, "", False
        try:
            async with asyncio.timeout(self._policy.timeout_s):
                status = await self._post(client, delivery)
        except _Refused as err:
            error, refused = f"refused: {err}", True
        except (httpx.InvalidURL, ValueError) as err:  # stored as given; nothing to retry
            error, refused = f"refused: not a URL that can be called ({err})", True
        except TimeoutError:
            error = f"no answer within {self._policy.timeout_s:g} s"
        except (httpx.HTTPError, OSError) as err:
            error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        duration = time.monotonic() - started
        if status and not 200 <= status < 300:
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        await self._record(delivery, status, error, duration, stop=refused or status == 410)

    async def _post(self, client: httpx.AsyncClient, delivery: store.CallbackDelivery) -> int:
        keys = self._policy.secrets.get(delivery.owner)
        if not keys:
            raise _Refused(f"no callback secret is configured for owner {delivery.owner!r}")
        url = httpx.URL(delivery.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._permitted_address(url.host, port)
        headers = webhooks.headers(keys, delivery.id, int(self._clock().timestamp()), delivery.body)
        headers["host"] = url.netloc.decode("ascii")
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request = client.build_request(
            "POST",
            url.copy_with(host=address),
            content=delivery.body.encode(),
            headers=headers,
            extensions=extensions,
            timeout=self._policy.timeout_s,
        )
        # Only the status matters: the body, however large or slow, is never read.
        response = await client.send(request, stream=True)
        await response.aclose()
        return response.status_code

    async def _permitted_address(self, host: str, port: int) -> str:
        """The address to connect to: the first the host resolves to that may be called."""
        addresses = await self._resolve(host, port)
        refusals = []
        for text in addresses:
            refusal = self._policy.address_refusal(ipaddress.ip_address(text.split("%")[0]))
            if refusal is None:
                return text
            refusals.append(refusal)
        raise _Refused(
            f"{host} resolves to no address that may be called ({'; '.join(refusals) or 'no address'})"
        )

    async def _record(
        self, delivery: store.CallbackDelivery, status: int, error: str, duration: float, *, stop: bool
    ) -> None:
        now = self._clock()
        attempts = delivery.attempts + 1
        next_time = None
        if 200 <= status < 300:
            state = CallbackState.DELIVERED
        elif stop:
            state = CallbackState.FAILED
        else:
            next_time = now + dt.timedelta(seconds=self._policy.backoff_s(attempts))
            horizon = delivery.create_time + dt.timedelta(seconds=self._policy.horizon_s)
            state = CallbackState.DELIVERING
            if next_time > horizon:
                state, next_time = CallbackState.FAILED, None
                error = f"{error}; given up after {attempts} attempts ({self._policy.horizon_s:g} s horizon)"
        params = store.CallbackAttemptParams(
            delivery_id=delivery.id,
            lease_token=delivery.lease_token,
            now=now,
            state=state,
            http_status=status,
            error=error,
            duration_s=round(duration, 6),
            next_attempt_time=next_time,
        )
        change = await self._record_within_lease(params)
        if change is None:
            logger.warning(
                "callbacks: attempt %d of %s could not be recorded under its lease", attempts, delivery.id
            )
            return
        logger.info(
            "callback job=%s webhook_id=%s attempt=%d http_status=%d state=%s error=%r",
            delivery.job_id,
            delivery.id,
            attempts,
            status,
            state.value,
            error,
            extra={"job_id": delivery.job_id},
        )
        self._metrics.callback_attempt(OUTCOMES[state])
        self._bus.publish(change.events)

    async def _record_within_lease(self, params: store.CallbackAttemptParams) -> store.Change | None:
        """Record, retrying a database outage while the lease lasts: an acknowledged delivery that
        went unrecorded would be sent again once the lease runs out (at least once, never lost)."""
        give_up = time.monotonic() + self._policy.timeout_s + 4.0
        while True:
            try:
                return await self._store.callback_record(params)
            except errors.StoreUnavailable as err:
                if time.monotonic() >= give_up:
                    logger.warning(
                        "callbacks: store unavailable (%s); %s goes out again", err, params.delivery_id
                    )
                    return None
                await asyncio.sleep(RECORD_RETRY_S)
