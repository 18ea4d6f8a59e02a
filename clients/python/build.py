"""Generates the keygate gRPC stubs for the Python client from ../../proto.

The stubs are the `keygate.v1` package (`keys_pb2`, `keys_pb2_grpc`, …), written beside the
hand-written `keygate_client` package in src/ (they are not committed: run this after each
change to proto/). Needs grpcio-tools:

    python build.py                 # into src/, ready for `pip install .` or PYTHONPATH=src
    python build.py --out DIR       # elsewhere (the tests build into a temporary folder)
"""

import argparse
import importlib.resources
import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"


def generate(out: pathlib.Path, proto: pathlib.Path = PROTO) -> list[pathlib.Path]:
    """Writes the stubs of every proto/keygate/v1/*.proto under OUT; returns the files made."""
    files = sorted((proto / "keygate" / "v1").glob("*.proto"))
    if not files:
        raise SystemExit(f"build.py: no .proto files under {proto / 'keygate' / 'v1'}")
    out.mkdir(parents=True, exist_ok=True)
    # grpcio-tools carries the well-known types (google/protobuf/*.proto) beside its protoc.
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{proto}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
    ]
    if protoc.main(args + [str(f) for f in files]) != 0:
        raise SystemExit("build.py: protoc failed (its message is above)")
    made = []
    for package in (out / "keygate", out / "keygate" / "v1"):
        init = package / "__init__.py"
        init.write_text('"""Generated from keygate\'s proto/ by clients/python/build.py."""\n')
        made.append(init)
    made.extend(sorted((out / "keygate" / "v1").glob("*_pb2*.py*")))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "src", help="where the keygate package goes (default: src/)")
    parser.add_argument("--proto", type=pathlib.Path, default=PROTO, help="the proto folder (default: the repository's proto/)")
    args = parser.parse_args()
    made = generate(args.out, args.proto)
    print(f"build.py: {len(made)} files under {args.out / 'keygate'}", file=sys.stderr)


if __name__ == "__main__":
    main()
