"""Flatteners: turn decoded protocol messages into Arrow column batches for the store."""
