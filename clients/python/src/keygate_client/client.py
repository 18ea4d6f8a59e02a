"""A small client over keygate's generated gRPC stubs.

    from keygate_client import connect

    with connect("http://127.0.0.1:50051", token) as kg:
        sealed = kg.encrypt("payments/card-dek", b"4111 1111 1111 1111")
        assert kg.decrypt(sealed.ciphertext).plaintext == b"4111 1111 1111 1111"

Every method sends the bearer token as `authorization: Bearer TOKEN`, returns the reply
message of the generated `keygate.v1` package, and raises `KeygateError` (with the stable
ErrorInfo reason) when the call fails. For anything the methods do not cover, the generated
stubs are at hand: `kg.keys`, `kg.audit`, `kg.admin`, `kg.approvals` and `kg.posture`, called
with `metadata=kg.metadata`.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import duration_pb2

from keygate.v1 import (
    admin_pb2_grpc,
    approvals_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    posture_pb2_grpc,
)

from .errors import KeygateError, request_id_of

#: A crypto-period or TTL: a timedelta, or whole seconds.
Period = datetime.timedelta | int


def _duration(period: Period) -> duration_pb2.Duration:
    if isinstance(period, datetime.timedelta):
        seconds = period.total_seconds()
    else:
        seconds = period
    if int(seconds) != seconds or seconds <= 0:
        raise ValueError(f"a period must be a positive whole number of seconds, not {period!r}")
    return duration_pb2.Duration(seconds=int(seconds))


def _read(what: str, path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read {what} {path}: {e.strerror}") from e


def connect(
    endpoint: str = "http://127.0.0.1:50051",
    token: str | None = None,
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    server_name: str | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> "Client":
    """Opens a channel to a gateway.

    `endpoint` is `http://HOST:PORT` (plaintext, e.g. `serve --dev` on loopback),
    `https://HOST:PORT` or `HOST:PORT` (TLS). With TLS, `ca_file` is the PEM of the CA that
    signed the gateway's certificate (default: the system's roots); `cert_file` and
    `key_file` are the client certificate and key for mTLS; `server_name` overrides the name
    checked in the gateway's certificate. `token` is the bearer token (`serve --dev` prints
    one); it may be left out for a principal bound to its client certificate alone.
    """
    if endpoint.startswith("http://"):
        if ca_file or cert_file or key_file:
            raise ValueError(f"{endpoint} is plaintext: use https:// with ca_file/cert_file/key_file")
        channel = grpc.insecure_channel(endpoint.removeprefix("http://"), options=options)
    else:
        if (cert_file is None) != (key_file is None):
            raise ValueError("mTLS needs both cert_file and key_file")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("the CA file", ca_file),
            private_key=_read("the client key", key_file),
            certificate_chain=_read("the client certificate", cert_file),
        )
        all_options = list(options or [])
        if server_name:
            all_options.append(("grpc.ssl_target_name_override", server_name))
        channel = grpc.secure_channel(endpoint.removeprefix("https://"), credentials, options=all_options)
    return Client(channel, token)


class Client:
    """keygate's services over one channel. Use `connect()` to make one; close it when done
    (or use it as a context manager)."""

    def __init__(self, channel: grpc.Channel, token: str | None = None) -> None:
        self.channel = channel
        #: The metadata every call carries: the bearer token.
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self.keys = keys_pb2_grpc.KeyServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.approvals = approvals_pb2_grpc.ApprovalServiceStub(channel)
        self.posture = posture_pb2_grpc.PostureServiceStub(channel)
        self._last = threading.local()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel."""
        self.channel.close()

    @property
    def last_request_id(self) -> str:
        """The `x-request-id` of this thread's latest call through the methods below: the id
        its audit event records."""
        return getattr(self._last, "request_id", "")

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        try:
            reply, call = method.with_call(request, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as error:
            failure = KeygateError.from_rpc_error(error)
            self._last.request_id = failure.request_id
            raise failure from None
        self._last.request_id = request_id_of(call)
        return reply

    def _pages(self, method: Callable[..., Any], request: Any, items: str, timeout: float | None) -> Iterator[Any]:
        """The ITEMS of each page of a paged listing, sending each page's token back unchanged."""
        while True:
            page = self._call(method, request, timeout)
            yield from getattr(page, items)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    # --- keys ---

    def create_key(
        self,
        name: str,
        *,
        algorithm: str,
        owner: str,
        crypto_period: Period,
        purpose: str = "",
        environment: str = "",
        provider: str = "",
        labels: dict[str, str] | None = None,
        ttl: Period | None = None,
        timeout: float | None = None,
    ) -> keys_pb2.Key:
        """Creates a key. Every key has an owner (a person or service account) and a
        crypto-period; the purpose follows from the algorithm when left out."""
        request = keys_pb2.CreateKeyRequest(
            name=name,
            algorithm=algorithm,
            owner=owner,
            crypto_period=_duration(crypto_period),
            purpose=purpose,
            environment=environment,
            provider=provider,
            labels=labels or {},
        )
        if ttl is not None:
            request.ttl.CopyFrom(_duration(ttl))
        return self._call(self.keys.CreateKey, request, timeout)

    def get_key(self, key: str, *, usage: bool = False, timeout: float | None = None) -> keys_pb2.Key:
        """A key by name or id: owner, state, versions, rotation due date."""
        return self._call(self.keys.GetKey, keys_pb2.GetKeyRequest(key=key, usage=usage), timeout)

    def list_keys(
        self,
        *,
        owner: str = "",
        environment: str = "",
        page_size: int = 100,
        timeout: float | None = None,
    ) -> Iterator[keys_pb2.Key]:
        """Every key the caller may see, fetching page after page."""
        request = keys_pb2.ListKeysRequest(page_size=page_size, owner=owner, environment=environment)
        return self._pages(self.keys.ListKeys, request, "keys", timeout)

    def rotate_key(self, key: str, *, timeout: float | None = None) -> keys_pb2.Key:
        """Adds a version and makes it primary; older versions keep decrypting and verifying."""
        return self._call(self.keys.RotateKey, keys_pb2.RotateKeyRequest(key=key), timeout)

    # --- use ---

    def encrypt(
        self, key: str, plaintext: bytes, *, associated_data: bytes = b"", timeout: float | None = None
    ) -> keys_pb2.EncryptResponse:
        """Encrypts under the key's primary version. The ciphertext names its key and version."""
        request = keys_pb2.EncryptRequest(key=key, plaintext=plaintext, associated_data=associated_data)
        return self._call(self.keys.Encrypt, request, timeout)

    def decrypt(
        self, ciphertext: bytes, *, associated_data: bytes = b"", timeout: float | None = None
    ) -> keys_pb2.DecryptResponse:
        """Decrypts a keygate ciphertext; it names its own key and version."""
        request = keys_pb2.DecryptRequest(ciphertext=ciphertext, associated_data=associated_data)
        return self._call(self.keys.Decrypt, request, timeout)

    def generate_data_key(
        self,
        key: str,
        *,
        length_bytes: int = 0,
        without_plaintext: bool = False,
        associated_data: bytes = b"",
        timeout: float | None = None,
    ) -> keys_pb2.GenerateDataKeyResponse:
        """A fresh data key and the same key sealed under KEY (envelope encryption)."""
        request = keys_pb2.GenerateDataKeyRequest(
            key=key, length_bytes=length_bytes, without_plaintext=without_plaintext, associated_data=associated_data
        )
        return self._call(self.keys.GenerateDataKey, request, timeout)

    def re_encrypt(
        self, ciphertext: bytes, *, destination_key: str = "", timeout: float | None = None
    ) -> keys_pb2.ReEncryptResponse:
        """Moves a ciphertext to its key's newest version (or to another key) without the
        plaintext leaving the gateway."""
        request = keys_pb2.ReEncryptRequest(ciphertext=ciphertext, destination_key=destination_key)
        return self._call(self.keys.ReEncrypt, request, timeout)

    def sign(
        self, key: str, *, message: bytes | None = None, digest: bytes | None = None, timeout: float | None = None
    ) -> keys_pb2.SignResponse:
        """Signs a message (hashed by the backend) or a digest computed with the algorithm's hash."""
        request = keys_pb2.SignRequest(key=key, **_sign_input(message, digest))
        return self._call(self.keys.Sign, request, timeout)

    def verify(
        self,
        key: str,
        signature: bytes,
        *,
        message: bytes | None = None,
        digest: bytes | None = None,
        key_version: int = 0,
        timeout: float | None = None,
    ) -> bool:
        """Whether the signature is valid for the message or digest (version 0: the primary)."""
        request = keys_pb2.VerifyRequest(
            key=key, signature=signature, key_version=key_version, **_sign_input(message, digest)
        )
        return bool(self._call(self.keys.Verify, request, timeout).valid)

    def public_key(
        self, key: str, *, key_version: int = 0, timeout: float | None = None
    ) -> keys_pb2.GetPublicKeyResponse:
        """A signing key's public key (`der`, `pem`), for verifiers that never call keygate."""
        request = keys_pb2.GetPublicKeyRequest(key=key, key_version=key_version)
        return self._call(self.keys.GetPublicKey, request, timeout)

    # --- audit ---

    def audit_query(
        self,
        *,
        key: str = "",
        actor: str = "",
        action: str = "",
        outcome: str = "",
        request_id: str = "",
        page_size: int = 100,
        timeout: float | None = None,
    ) -> Iterator[audit_pb2.AuditEvent]:
        """Audit events matching every filter given, oldest first, fetching page after page."""
        request = audit_pb2.AuditQueryRequest(
            key=key, actor=actor, action=action, outcome=outcome, request_id=request_id, page_size=page_size
        )
        return self._pages(self.audit.Query, request, "events", timeout)

    def audit_verify(self, *, timeout: float | None = None) -> audit_pb2.AuditVerifyResponse:
        """Checks the checkpoints, their witnesses and the chain since the newest checkpoint."""
        return self._call(self.audit.Verify, audit_pb2.AuditVerifyRequest(), timeout)


def _sign_input(message: bytes | None, digest: bytes | None) -> dict[str, bytes]:
    if (message is None) == (digest is None):
        raise ValueError("give exactly one of message and digest")
    return {"message": message} if message is not None else {"digest": digest}  # type: ignore[dict-item]
