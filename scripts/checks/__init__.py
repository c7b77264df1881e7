"""Checks: posture, verify, the AWS Backup audit and the drill."""
