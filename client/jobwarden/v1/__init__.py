"""Generated protobuf and gRPC code for jobwarden.v1 (scripts/gen-protos; do not edit)."""
