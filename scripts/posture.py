"""`drctl posture`: placeholder until the rules module lands (this commit is the skeleton)."""


def register(app) -> None:
    @app.command()
    def posture(stack: str = "prod") -> None:
        """Offline report of how each data class is protected (work in progress)."""
        raise SystemExit(5)
