"""Request parsers: DRF's, hardened."""

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Every JSON body we accept is a flat object of a few fields: an image in base64 (which has
# no brackets or commas), a URL, options, a list of up to 100 classes. A body of 20 MB of
# `{}` or `0,` is millions of Python objects, about 24 times its size in memory; counting
# brackets and commas in the raw bytes (at C speed, before any object exists) refuses it.
MAX_JSON_STRUCTURE = 1000


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, reading a bounded body and checking its shape before expanding it.

    A document nested too deeply for Python's json module (1 KB of "[" does it) is a 400,
    not a RecursionError and a 500.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise RequestDataTooBig(f"the JSON body is over {limit} bytes")  # a 413 (jobs/api/errors.py)
        structure = body.count(b"{") + body.count(b"[") + body.count(b",")
        if structure > MAX_JSON_STRUCTURE:
            raise ParseError(  # malformed_request
                f"the JSON body has {structure} brackets and commas; a request needs at most "
                f"{MAX_JSON_STRUCTURE} (send images as base64 strings or files)"
            )
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply") from None
