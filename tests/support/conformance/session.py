"""A running scenario: its actors (one SDK client each), managed workers, receivers and saved values."""

from __future__ import annotations

import asyncio
from typing import Any, Self

from jobwarden.client import Claim, Client, Job
from support.receiver import Receiver

from . import handlers
from .expect import Mismatch


class Session:
    """What the steps of one scenario share. Use as an async context manager (closes every actor)."""

    def __init__(self, scenario: dict[str, Any], address: str, principals: dict[str, dict[str, Any]]) -> None:
        self.scenario = scenario
        self.name: str = scenario["name"]
        self.prefix = f"{self.name}."
        self.address = address
        self.principals = principals
        self.actors: dict[str, dict[str, Any]] = scenario["actors"]
        self.default_actor = next(iter(self.actors))
        self.saved: dict[str, Any] = {}
        self.clients: dict[str, Client] = {}
        self.workers: dict[str, handlers.ManagedWorker] = {}
        self.receivers: dict[str, Receiver] = {}
        self.background: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Self:
        for name, spec in self.scenario.get("receivers", {}).items():
            receiver = Receiver(handlers.answers(spec["answers"]))
            receiver.up()
            self.receivers[name] = receiver
            self.saved[f"${name}"] = receiver
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        for worker in self.workers.values():
            await worker.stop(force=True)
        for client in self.clients.values():
            await client.close()
        for receiver in self.receivers.values():
            receiver.down()

    # --- actors -----------------------------------------------------------------------------------

    def client(self, actor: str | None) -> Client:
        """The SDK client of `actor` (default: the first actor declared), opened on first use."""
        name = actor or self.default_actor
        if name not in self.clients:
            token = self.principals[self.actors[name]["principal"]]["token"]
            self.clients[name] = Client(self.address, token=token, timeout=10)
        return self.clients[name]

    def worker_id(self, actor: str | None) -> str:
        """The worker id an actor claims under (its own name unless it declares one)."""
        name = actor or self.default_actor
        return str(self.actors[name].get("worker_id", name))

    def managed(self, actor: str) -> handlers.ManagedWorker:
        """The managed SDK Worker of `actor` (built from its `handlers` on first use)."""
        if actor not in self.workers:
            self.workers[actor] = handlers.ManagedWorker(self, actor, self.actors[actor])
        return self.workers[actor]

    # --- names ------------------------------------------------------------------------------------

    def job_type(self, symbol: str) -> str:
        """The job type a symbol stands for in this scenario: "<scenario name>.<symbol>"."""
        return self.prefix + symbol

    def job_types(self, symbols: list[str] | None) -> list[str]:
        """Job types of symbols; none given: every type the scenario declares (so lists stay inside it)."""
        return [self.job_type(s) for s in (symbols if symbols is not None else self.scenario["job_types"])]

    def request_id(self, given: str | None) -> str | None:
        """A scenario's request id, made unique to it (None: let the SDK generate one)."""
        return None if given is None else f"{self.name}:{given}"

    def ref(self, name: str) -> Any:
        """A value saved by an earlier step."""
        if name not in self.saved:
            raise KeyError(f"{name} was not saved by an earlier step")
        return self.saved[name]

    def job_id(self, ref: str) -> str:
        """The job id `ref` names: a saved job, or a saved claim's job."""
        value = self.ref(ref)
        if isinstance(value, Claim):
            return value.job.id
        if isinstance(value, Job):
            return value.id
        raise TypeError(f"{ref} is not a job or a claim")

    def claim(self, ref: str) -> Claim:
        """A claim saved by a claim_jobs step."""
        value = self.ref(ref)
        if not isinstance(value, Claim):
            raise TypeError(f"{ref} is not a claim")
        return value

    def resolve(self, value: Any) -> Any:
        """An expectation with every "$name" replaced: by the id of a saved job or claim, the URL of a
        receiver, or the saved value itself."""
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, str) and value.startswith("$"):
            saved = self.ref(value)
            if isinstance(saved, Job | Claim):
                return self.job_id(value)
            if isinstance(saved, Receiver):
                return saved.url
            return saved
        return value

    def save(self, names: str | list[str | None] | None, value: Any) -> None:
        """Save `value` under a name, or each item of a list under the name in the same place."""
        if names is None:
            return
        if isinstance(names, str):
            if isinstance(value, list) and not value:
                raise Mismatch(f"nothing to save as {names}")
            self.saved[names] = value[0] if isinstance(value, list) else value
            return
        if len(names) > len(value):
            raise Mismatch(f"{len(value)} values to save as {names}")
        for name, item in zip(names, value, strict=False):
            if name is not None:
                self.saved[name] = item
