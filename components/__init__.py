"""Reusable Pulumi components of platform-dr; objectives.py is the model they all import."""
