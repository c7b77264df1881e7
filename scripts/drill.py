"""`drctl drill` (placeholder while being written)."""


def register(app) -> None:
    pass
