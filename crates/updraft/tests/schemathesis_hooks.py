"""schemathesis hooks for updraft's API (loaded through SCHEMATHESIS_HOOKS by tests/schemathesis.rs).

A device import in NDJSON is documented as an array of device objects sent one per line; schemathesis
has no serializer for `application/x-ndjson`, so this one writes each element on its own line (a body
that is not an array goes on the wire as one JSON line, which the server must refuse properly).
"""

import json
import sys

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        return "\n".join(json.dumps(item) for item in value).encode("utf-8")
    return json.dumps(value).encode("utf-8")


def _describe_lambdas_safely():
    """Works around a CPython 3.11 bug: `ast.parse` called deep in the stack can raise
    `SystemError: AST constructor recursion depth mismatch`, and Hypothesis parses a module's
    source when it first describes one of its lambdas (only to print a strategy's repr), which
    it does while drawing from deeply nested strategies. A description that fails is given as
    Hypothesis's own fallback, `lambda: <unknown>`, instead of failing the run."""
    try:
        from hypothesis.internal import lambda_sources
    except ImportError:
        return
    describe = getattr(lambda_sources, "_lambda_description", None)
    if describe is None:
        return

    def safely(f, *args, **kwargs):
        try:
            return describe(f, *args, **kwargs)
        except SystemError:
            return "lambda: <unknown>"

    lambda_sources._lambda_description = safely


if sys.version_info < (3, 12):
    _describe_lambdas_safely()
