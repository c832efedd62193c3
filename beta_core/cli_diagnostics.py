"""CLI commands of the diagnostic pipeline (filled in with attribution and surgery)."""
HANDLERS: dict = {}


def add_parsers(sub) -> None:
    return None
