"""Generated protobuf code for qingfeng.v1 (build output of `make protos`, git-ignored)."""
