"""Runbooks: the journaled step engine and the failover, failback and rebuild runbooks."""
