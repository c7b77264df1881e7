"""Data operations: backup, restore, objects, config, rendered host files."""
