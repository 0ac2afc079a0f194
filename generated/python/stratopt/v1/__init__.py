"""Generated protobuf and gRPC stubs for stratopt.v1 (do not edit)."""
