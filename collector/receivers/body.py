"""Reading a request body under a size limit that holds after decompression.

gzip and deflate bodies are inflated in a streaming decompressor that never produces more
than the limit plus one byte, so a gzip bomb costs at most ``limit`` bytes of memory before
it is refused with 413. Every chunk is also reserved in the memory gate; a full gate
refuses the request with 503 before it is read any further.
"""

from __future__ import annotations

import zlib

from starlette.requests import ClientDisconnect, Request

from collector.store.gate import MemoryGate

__all__ = ["BodyError", "read_body"]


class BodyError(Exception):
    """The body cannot be accepted: ``status`` is 400, 413 or 503."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int, gate: MemoryGate) -> tuple[bytes, int]:
    """(decompressed body, bytes reserved in ``gate``); the caller releases the reservation."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise BodyError(400, f"unsupported Content-Encoding {encoding[:40]!r} (use gzip)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    inflater = zlib.decompressobj(wbits=47) if encoding in ("gzip", "x-gzip", "deflate") else None
    buf = bytearray()
    raw_total = 0
    reserved = 0
    try:
        async for chunk in request.stream():
            raw_total += len(chunk)
            if raw_total > limit:
                raise BodyError(413, f"body is over the {limit}-byte limit")
            if inflater is None:
                buf += chunk
            else:
                data = chunk
                while data:
                    try:
                        buf += inflater.decompress(data, limit + 1 - len(buf))
                    except zlib.error as exc:
                        raise BodyError(400, f"body is not valid {encoding}: {exc}") from None
                    if len(buf) > limit:
                        raise BodyError(
                            413, f"body is over the {limit}-byte limit after decompression"
                        )
                    data = inflater.unconsumed_tail
                    if inflater.eof and inflater.unused_data:
                        # A multi-member gzip stream (RFC 1952): go on with the next member
                        # instead of dropping it silently.
                        data = inflater.unused_data + data
                        inflater = zlib.decompressobj(wbits=47)
            grow = len(buf) - reserved
            if grow > 0:
                if not gate.reserve(grow):
                    raise BodyError(503, "the collector is overloaded; retry later")
                reserved += grow
        if inflater is not None and not inflater.eof and raw_total:
            raise BodyError(400, f"body is a truncated {encoding} stream")
    except ClientDisconnect:
        gate.release(reserved)
        raise BodyError(400, "client disconnected") from None
    except BodyError:
        gate.release(reserved)
        raise
    return bytes(buf), reserved
