"""A protoc plugin (stdin: CodeGeneratorRequest, stdout: CodeGeneratorResponse) for gRPC Python stubs.

grpcio-tools has the official grpc_python generator compiled into its protoc and ships no
`protoc-gen-grpc_python` binary. This adapter lets buf.gen.yaml use it like any other plugin:
it writes the request's descriptors to a temporary file, runs that protoc on them with
`--grpc_python_out`, and returns the generated files.
"""

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as work:
        descriptors = pathlib.Path(work, "descriptors.pb")
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = pathlib.Path(work, "out")
        out.mkdir()
        arguments = ["protoc", f"--descriptor_set_in={descriptors}", f"--grpc_python_out={out}"]
        if request.parameter:
            arguments[-1] = f"--grpc_python_out={request.parameter}:{out}"
        status = protoc.main([*arguments, *request.file_to_generate])
        if status != 0:
            response.error = f"grpc_tools.protoc exited with status {status}"
        for path in sorted(out.rglob("*.py")):
            generated = response.file.add()
            generated.name = path.relative_to(out).as_posix()
            generated.content = path.read_text()
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
