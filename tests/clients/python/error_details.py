"""A generated Python client reads keygate's richer errors.

Uses the bare stubs that clients/python/build.py generates with grpcio-tools (on PYTHONPATH),
makes calls that fail, and prints one JSON line per call: the status code, the
google.rpc.ErrorInfo reason and domain read with grpcio-status, and the x-request-id trailer.

    PYTHONPATH=STUBS python error_details.py ENDPOINT TOKEN
"""

import json
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from keygate.v1 import keys_pb2, keys_pb2_grpc


def report(error):
    status = rpc_status.from_call(error)
    info = None
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
    trailers = dict(error.trailing_metadata() or ())
    return {
        "code": error.code().name,
        "reason": info.reason if info else None,
        "domain": info.domain if info else None,
        "request_id": trailers.get("x-request-id", ""),
        "message": error.details(),
    }


def main():
    endpoint, token = sys.argv[1:3]

    stub = keys_pb2_grpc.KeyServiceStub(grpc.insecure_channel(endpoint))
    auth = [("authorization", f"Bearer {token}")]
    calls = [
        lambda: stub.Encrypt(keys_pb2.EncryptRequest(key="no-such-key", plaintext=b"x"), metadata=auth),
        lambda: stub.Decrypt(keys_pb2.DecryptRequest(ciphertext=b"garbage"), metadata=auth),
        lambda: stub.GetKey(keys_pb2.GetKeyRequest(key="no-such-key")),
    ]
    for call in calls:
        try:
            call()
            print(json.dumps({"code": "OK"}))
        except grpc.RpcError as error:
            print(json.dumps(report(error)))


if __name__ == "__main__":
    main()
