"""Generated protobuf and gRPC code for the areamesh wire contract (see protos/)."""
