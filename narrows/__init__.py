"""The `narrows` command: one entry point that dispatches to each part and runs them together.

Each part (collector, dashboard, demo_app) owns its subcommand's options and code in its own
``cli`` module; this package only wires them into one parser and supervises ``narrows up``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
