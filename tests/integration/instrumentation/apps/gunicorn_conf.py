"""gunicorn settings for the multi-worker test: the Narrows multiprocess hooks."""

from instrumentation.multiprocess import child_exit, on_starting

__all__ = ["child_exit", "on_starting"]
