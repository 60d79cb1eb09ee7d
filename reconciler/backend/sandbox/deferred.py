"""Routes built when first used. FastAPI builds a route whole when it is declared: the endpoint's signature, a
dependant per parameter and per dependency, a pydantic TypeAdapter per parameter, body and response model. For the
sandbox's 40 routes that was ~50 ms of every embedded session's start (a third of opening it besides importing
FastAPI), while a plan uses 7 of them. A `DeferredRoute` knows at once only what routing asks of every route (its
path pattern, methods and name) and builds the rest, as FastAPI would have, when anything else is first asked of
it: its first request, or the OpenAPI document (so a mistake in a route's declaration shows there, and in
tests/backend/sandbox/test_openapi.py, which builds them all)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from fastapi.routing import APIRoute
from starlette.routing import compile_path, get_name

#: One route is built at a time: apps in several threads share the routes (`app._share_routes`).
_BUILDING = threading.RLock()
_IN_PROGRESS = object()


class DeferredRoute(APIRoute):
    """An `APIRoute` whose construction waits for its first use (`APIRouter(route_class=DeferredRoute)`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:  # noqa: D107
        # What matching (`Route.matches`), `url_path_for` and the request counts read of every route, as
        # `APIRoute` sets it.
        self.path = path
        self.endpoint = endpoint
        self.name = get_name(endpoint) if options.get("name") is None else options["name"]
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self.methods = {method.upper() for method in options.get("methods") or ["GET"]}
        self.include_in_schema = options.get("include_in_schema", True)
        self._deferred: Any = (path, endpoint, options)

    def __getattr__(self, name: str) -> Any:
        """Only for what is not set yet: builds the route (once), then answers from it."""
        if name.startswith("__") or self.__dict__.get("_deferred") is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with _BUILDING:
            deferred = self.__dict__["_deferred"]
            if deferred is _IN_PROGRESS:      # asked while this thread builds it: not there yet, as in APIRoute
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            if deferred is not None:
                before = dict(self.__dict__)
                self._deferred = _IN_PROGRESS
                path, endpoint, options = deferred
                try:
                    APIRoute.__init__(self, path, endpoint, **options)
                except BaseException:
                    vars(self).clear()           # not half built: the next use fails the same way
                    vars(self).update(before)
                    raise
                self._deferred = None
        return object.__getattribute__(self, name)
