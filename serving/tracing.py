"""A server span per HTTP request, named by route template (installed only when tracing is on).

Its context is current while the route runs, so the producer's span (``streams/producer.py``) and
the ``traceparent`` it puts in the Kafka record's headers are its children. An incoming
``traceparent`` header (a traced client) becomes the parent.
"""

from __future__ import annotations

from core import tracing
from serving.metrics import route_template
from serving.middleware import ASGIApp, Message, Receive, Scope, Send

_HEADER = tracing.HEADER.encode()


class TracingMiddleware:
    """Wrap each HTTP request in a SERVER span (status code and route as attributes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.ENABLED:
            await self.app(scope, receive, send)
            return
        given = next((v.decode() for k, v in scope.get("headers") or () if k == _HEADER), None)
        with tracing.span(f'{scope["method"]} {scope["path"]}', parent=given, kind=tracing.SpanKind.SERVER,
                          attributes={"http.request.method": scope["method"]}) as sp:
            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start" and sp is not None:
                    sp.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        sp.set_status(tracing.trace.StatusCode.ERROR)
                await send(message)

            try:
                await self.app(scope, receive, capture)
            finally:
                if sp is not None:
                    template = route_template(scope)
                    sp.update_name(f'{scope["method"]} {template}')
                    sp.set_attribute("http.route", template)
