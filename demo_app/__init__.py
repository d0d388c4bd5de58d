"""The demo service Narrows is shown and tested on: sharded, cached, with switchable faults."""

from demo_app.main import create_app

__all__ = ["create_app"]
