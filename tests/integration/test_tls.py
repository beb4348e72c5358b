"""TLS and mutual TLS against an in-process server, with certificates made for each test.

A wrong trust anchor or a missing client certificate fails the handshake, which gRPC reports as
UNAVAILABLE before any handler runs; under mTLS a verified certificate's common name can stand in
for a bearer token, and owners stay apart either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import certs, rpc

from jobwarden import errors
from jobwarden.client import Client, Job, JobStatus, TlsOptions
from jobwarden_server import app
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.tls import TlsSettings

# Handshake failures are answered at once; the timeout only bounds a test that would otherwise hang.
TIMEOUT = 10.0
BOTH = frozenset({Role.CLIENT, Role.WORKER})


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: certs.Authority
    other_ca: certs.Authority
    server: certs.Pair

    def tls(self, *, mutual: bool = False) -> TlsSettings:
        settings = TlsSettings.from_files(self.server.cert, self.server.key, self.ca.cert if mutual else None)
        assert settings is not None
        return settings

    def client(self, cn: str | None = None, *, signed_by: certs.Authority | None = None) -> TlsOptions:
        """Options trusting our CA, with a client certificate for `cn` when given."""
        if cn is None:
            return TlsOptions(ca_cert=self.ca.cert)
        pair = (signed_by or self.ca).client(cn)
        return TlsOptions(ca_cert=self.ca.cert, client_cert=pair.cert, client_key=pair.key)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = certs.Authority.create(tmp_path / "pki", "main")
    return Pki(ca=ca, other_ca=certs.Authority.create(tmp_path / "pki", "other"), server=ca.server())


@pytest.fixture
async def tls_srv(tmp_path: Path, pki: Pki) -> AsyncIterator[app.RunningServer]:
    """A TLS server (no client certificates) in local mode."""
    async with rpc.server(tmp_path, tls=pki.tls()) as running:
        yield running


@pytest.fixture
async def mtls_srv(tmp_path: Path, pki: Pki) -> AsyncIterator[app.RunningServer]:
    """A mutual-TLS server: certificate CN "alice-1" is alice, "worker-only" is a worker of alice;
    bob uses a bearer token (his certificate's CN maps to nobody)."""
    by_cn = {
        "alice-1": Principal(owner="alice", roles=BOTH, name="alice-1"),
        "worker-only": Principal(owner="alice", roles=frozenset({Role.WORKER}), name="worker-only"),
    }
    async with rpc.server(
        tmp_path,
        tls=pki.tls(mutual=True),
        principals_by_cn=by_cn,
        principals_by_hash=rpc.principals({"token-b": ("bob", BOTH)}),
    ) as running:
        yield running


async def test_tls_round_trip(tls_srv: app.RunningServer, pki: Pki) -> None:
    # PEM given as bytes here, as paths elsewhere: both are accepted.
    tls = TlsOptions(ca_cert=pki.ca.cert.read_bytes())
    async with Client(tls_srv.address, tls=tls, timeout=TIMEOUT) as client:
        job = await client.create_job("tls.demo", {"n": 1})
        assert (await client.get_job(job.id)).status == JobStatus.QUEUED
        [claim] = await client.claim_jobs("w-tls", ["tls.demo"])
        await client.complete_job(job.id, claim.lease_token, {"ok": True})
        items = [item async for item in client.watch_job(job.id)]
    assert isinstance(items[0], Job) and items[-1].to_status == JobStatus.COMPLETED  # type: ignore[union-attr]


async def test_plaintext_client_against_a_tls_server_is_unavailable(tls_srv: app.RunningServer) -> None:
    async with Client(tls_srv.address, timeout=TIMEOUT) as client:
        with pytest.raises(errors.Unavailable):
            await client.list_jobs()


async def test_client_trusting_another_ca_is_unavailable(tls_srv: app.RunningServer, pki: Pki) -> None:
    async with Client(tls_srv.address, tls=TlsOptions(ca_cert=pki.other_ca.cert), timeout=TIMEOUT) as client:
        with pytest.raises(errors.Unavailable):
            await client.list_jobs()


async def test_server_name_verifies_a_certificate_for_another_name(tmp_path: Path, pki: Pki) -> None:
    named = pki.ca.server("named", hosts=("jobs.internal",))
    tls = TlsSettings.from_files(named.cert, named.key)
    async with rpc.server(tmp_path, tls=tls) as srv:
        async with Client(srv.address, tls=TlsOptions(ca_cert=pki.ca.cert), timeout=TIMEOUT) as client:
            with pytest.raises(errors.Unavailable):  # the certificate does not name 127.0.0.1
                await client.list_jobs()
        options = TlsOptions(ca_cert=pki.ca.cert, server_name="jobs.internal")
        async with Client(srv.address, tls=options, timeout=TIMEOUT) as client:
            assert await client.list_jobs() == ([], "")


@pytest.mark.parametrize("case", ["no client certificate", "client certificate of another CA"])
async def test_mtls_refuses_clients_without_a_certificate_of_its_ca(
    mtls_srv: app.RunningServer, pki: Pki, case: str
) -> None:
    tls = pki.client() if case == "no client certificate" else pki.client("alice-1", signed_by=pki.other_ca)
    # A valid token does not help: the handshake fails before any call is read.
    async with Client(mtls_srv.address, token="token-b", tls=tls, timeout=TIMEOUT) as client:
        with pytest.raises(errors.Unavailable):
            await client.list_jobs()


async def test_mtls_identity_comes_from_the_certificate_and_owners_stay_apart(
    mtls_srv: app.RunningServer, pki: Pki
) -> None:
    bob_tls = pki.client("bob-laptop")  # verified, but its CN maps to nobody: bob needs his token
    async with (
        Client(mtls_srv.address, tls=pki.client("alice-1"), timeout=TIMEOUT) as alice,
        Client(mtls_srv.address, token="token-b", tls=bob_tls, timeout=TIMEOUT) as bob,
        Client(mtls_srv.address, tls=bob_tls, timeout=TIMEOUT) as bob_without_token,
    ):
        mine = await alice.create_job("tls.iso")
        theirs = await bob.create_job("tls.iso")
        assert (mine.owner, theirs.owner) == ("alice", "bob")

        jobs, _ = await alice.list_jobs()
        assert [j.id for j in jobs] == [mine.id]
        with pytest.raises(errors.NotFound):
            await alice.get_job(theirs.id)
        with pytest.raises(errors.NotFound):
            await alice.cancel_job(theirs.id)
        # Streams pass the same check as unary calls.
        snapshot = await anext(aiter(alice.watch_job(mine.id)))
        assert isinstance(snapshot, Job) and snapshot.id == mine.id
        with pytest.raises(errors.NotFound):
            await anext(aiter(alice.watch_job(theirs.id)))
        jobs, _ = await bob.list_jobs()
        assert [j.id for j in jobs] == [theirs.id]

        with pytest.raises(errors.Unauthenticated):
            await bob_without_token.list_jobs()


async def test_a_sent_token_decides_over_the_certificate(mtls_srv: app.RunningServer, pki: Pki) -> None:
    tls = pki.client("alice-1")
    async with (
        Client(mtls_srv.address, token="token-b", tls=tls, timeout=TIMEOUT) as as_bob,
        Client(mtls_srv.address, token="wrong", tls=tls, timeout=TIMEOUT) as wrong,
    ):
        assert (await as_bob.create_job("tls.who")).owner == "bob"
        # A wrong token is refused, not quietly replaced by the certificate's identity.
        with pytest.raises(errors.Unauthenticated):
            await wrong.list_jobs()


async def test_roles_of_a_certificate_entry_apply(mtls_srv: app.RunningServer, pki: Pki) -> None:
    async with Client(mtls_srv.address, tls=pki.client("worker-only"), timeout=TIMEOUT) as worker:
        with pytest.raises(errors.PermissionDenied):
            await worker.create_job("tls.roles")
        assert await worker.claim_jobs("w", ["tls.roles"]) == []


async def test_a_key_of_another_certificate_stops_the_server_with_a_clear_error(
    tmp_path: Path, pki: Pki
) -> None:
    stranger = pki.ca.server("stranger")
    tls = TlsSettings.from_files(pki.server.cert, stranger.key)
    with pytest.raises(ConfigError, match="TLS certificate and key do not belong together"):
        async with rpc.server(tmp_path, tls=tls):
            pass


def test_client_cert_without_key_is_refused(pki: Pki) -> None:
    pair = pki.ca.client("x")
    with pytest.raises(ValueError, match="client_cert and client_key go together"):
        TlsOptions(ca_cert=pki.ca.cert, client_cert=pair.cert)
    with pytest.raises(ValueError, match="tls or credentials"):
        Client("127.0.0.1:1", tls=True, credentials=TlsOptions().channel_credentials())
