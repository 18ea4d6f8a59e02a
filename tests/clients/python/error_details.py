"""A generated Python client reads keygate's richer errors.

Generates stubs from proto/ with grpcio-tools, makes calls that fail, and prints one JSON line
per call: the status code, the google.rpc.ErrorInfo reason and domain read with grpcio-status,
and the x-request-id trailer.

    python error_details.py PROTO_DIR OUT_DIR ENDPOINT TOKEN
"""

import importlib.resources
import json
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from grpc_tools import protoc


def generate(proto_dir, out_dir):
    # grpcio-tools ships the well-known types (google/protobuf/*.proto) beside its protoc.
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    files = [f"{proto_dir}/keygate/v1/{name}.proto" for name in ("keys", "audit", "admin")]
    if protoc.main(args + files) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out_dir)


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
    proto_dir, out_dir, endpoint, token = sys.argv[1:5]
    generate(proto_dir, out_dir)
    from keygate.v1 import keys_pb2, keys_pb2_grpc

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
