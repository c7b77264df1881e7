"""The operator CLI `drctl` and the helpers it is built from."""
