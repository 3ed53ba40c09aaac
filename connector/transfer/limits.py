"""Message-size limits of the transfer stream, kept apart so dialling a peer stays import-light."""

MAX_BATCH_BYTES = 4 * 1024 * 1024      # one gRPC message stays well under the receive limit
GRPC_MESSAGE_LIMIT = 8 * 1024 * 1024
