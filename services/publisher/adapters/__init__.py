"""The publisher's adapters to outside systems (SQL, policy files)."""
