"""Receivers: turn protocol payloads into validated column batches for the writer."""
