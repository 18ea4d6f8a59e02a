"""keygate's errors: a gRPC status plus the `google.rpc.ErrorInfo` every keygate error carries."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

#: The ErrorInfo domain of keygate's own errors.
ERROR_DOMAIN = "keygate.v1"


class KeygateError(Exception):
    """A failed call.

    `reason` is the stable `google.rpc.ErrorInfo` reason (e.g. `KEY_NOT_FOUND`,
    `POLICY_DENIED`), for programs to match on; `message` is the gateway's explanation for
    people; `request_id` is the id the call's audit event records.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str | None = None,
        domain: str | None = None,
        metadata: dict[str, str] | None = None,
        request_id: str = "",
        field_violations: list[tuple[str, str]] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.request_id = request_id
        #: From `google.rpc.BadRequest`: (field, description) for bad input.
        self.field_violations = list(field_violations or [])
        super().__init__(str(self))

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        request = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.code.name}{reason}: {self.message}{request}"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "KeygateError":
        """Reads the status details (ErrorInfo, BadRequest) and the `x-request-id` of a failed call."""
        # A grpc.RpcError raised by a call is also a grpc.Call; one made by hand may not be.
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        info = None
        violations: list[tuple[str, str]] = []
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
        return cls(
            code=code,
            message=message or "",
            reason=info.reason if info else None,
            domain=info.domain if info else None,
            metadata=dict(info.metadata) if info else None,
            request_id=request_id_of(error),
            field_violations=violations,
        )


def request_id_of(call: object) -> str:
    """The `x-request-id` a reply carried, in its headers or (for an error) its trailers."""
    for read in ("initial_metadata", "trailing_metadata"):
        get = getattr(call, read, None)
        if get is None:
            continue
        for key, value in get() or ():
            if key == "x-request-id":
                return value if isinstance(value, str) else value.decode()
    return ""
