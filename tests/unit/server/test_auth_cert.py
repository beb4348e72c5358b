"""Authenticator: a verified client certificate's common name as an identity, next to bearer tokens."""

from __future__ import annotations

import hashlib

import pytest

from jobwarden_server.api.auth import Authenticator
from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Principal, Role

ALICE = Principal(owner="alice", roles=frozenset({Role.CLIENT}), name="alice-1")
BOB = Principal(owner="bob", roles=frozenset({Role.CLIENT}), name="bob")
BY_HASH = {hashlib.sha256(b"token-b").hexdigest(): BOB}
BY_CN = {"alice-1": ALICE}


def _verified(cn: str) -> dict[str, list[bytes]]:
    """What gRPC puts in the auth context after verifying a client certificate."""
    return {"transport_security_type": [b"ssl"], "x509_common_name": [cn.encode()]}


def test_certificate_entries_alone_end_local_mode() -> None:
    auth = Authenticator({}, BY_CN)
    assert not auth.local_mode
    with pytest.raises(errors.Unauthenticated):
        auth.authenticate((), None)
    with pytest.raises(errors.Unauthenticated):
        auth.authenticate((), _verified("mallory"))
    assert auth.authenticate((), _verified("alice-1")) is ALICE


def test_a_token_decides_when_sent() -> None:
    auth = Authenticator(BY_HASH, BY_CN)
    assert auth.authenticate((("authorization", "Bearer token-b"),), _verified("alice-1")) is BOB
    with pytest.raises(errors.Unauthenticated, match="unknown token"):
        auth.authenticate((("authorization", "Bearer wrong"),), _verified("alice-1"))


def test_without_certificate_entries_a_common_name_means_nothing() -> None:
    auth = Authenticator(BY_HASH)
    with pytest.raises(errors.Unauthenticated):
        auth.authenticate((), _verified("alice-1"))
