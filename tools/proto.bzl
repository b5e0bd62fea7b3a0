"""nas_cc_proto_library: C++ (and gRPC) code from .proto files with the system protoc.

Bazel 4's native proto rules want to build protoc from source, which needs the
network. This macro runs Debian's protoc and grpc_cpp_plugin in a genrule and
wraps the generated files in a cc_library. Imports are relative to the
workspace root (import "proto/foo.proto"); generated headers are included the
same way (#include "proto/foo.pb.h").
"""

def nas_cc_proto_library(name, srcs = [], grpc_srcs = [], deps = [], visibility = None):
    """Generates message code for srcs and message + service code for grpc_srcs.

    Args:
      name: the cc_library to create.
      srcs: .proto files with messages only.
      grpc_srcs: .proto files that also define services; mock stubs are generated.
      deps: other nas_cc_proto_library targets whose .proto files are imported.
      visibility: as usual.
    """
    all_srcs = srcs + grpc_srcs
    outs = []
    for src in all_srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
    grpc_outs = []
    for src in grpc_srcs:
        base = src[:-len(".proto")]
        grpc_outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc", base + "_mock.grpc.pb.h"]

    dep_protos = [d + "_protos" for d in deps]
    native.filegroup(name = name + "_protos", srcs = all_srcs + dep_protos, visibility = visibility)

    src_list = " ".join(["$(location %s)" % s for s in all_srcs])
    cmd = "protoc --proto_path=. --cpp_out=$(GENDIR) " + src_list
    if grpc_srcs:
        grpc_list = " ".join(["$(location %s)" % s for s in grpc_srcs])
        cmd += (" && protoc --proto_path=. --grpc_out=generate_mock_code=true:$(GENDIR)" +
                " --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin " + grpc_list)

    native.genrule(
        name = name + "_gen",
        srcs = all_srcs + dep_protos,
        outs = outs + grpc_outs,
        cmd = cmd,
        message = "protoc " + name,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs + grpc_outs if o.endswith(".cc")],
        hdrs = [o for o in outs + grpc_outs if o.endswith(".h")],
        deps = deps + [
            "//third_party:grpc",
            "//third_party:protobuf",
        ],
        visibility = visibility,
    )
