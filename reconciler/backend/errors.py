"""Errors from talking to a beheer backend, as a typed hierarchy with messages a beheerder understands.

The client maps every problem+json response (RFC 9457) and every transport failure to one of these, so
callers branch on the class (a `RuleRefused` is a planning bug or a race, a `PreconditionFailed` means
"plan again") and the CLI prints `str(error)`: one sentence, never a traceback or a token. Messages are
built from what the backend said; the client redacts the token from that text before it gets here.
"""

from __future__ import annotations

from typing import Any


class ConfigurationError(ValueError):
    """The backend cannot even be addressed: a bad `--backend` value or a missing `BEHEER_API_TOKEN`."""


class BackendError(Exception):
    """A request to the backend failed. `status` is the HTTP status (None when no response came),
    `code` the problem code (`R1`..`R20` for rule refusals, else e.g. `not-found`), `detail` the backend's
    own explanation."""

    default_code: str | None = None
    #: What went wrong, in words a beheerder reads; `{detail}` is the backend's explanation.
    headline: str = "The beheer backend reported an error"
    #: The advice when it needs nothing from the error itself (else the class overrides `advice()`).
    fixed_advice: str = ""
    #: Whether the message names the code and HTTP status (not for failures that had no problem answer).
    tagged: bool = True

    def __init_subclass__(cls, *, code: str | None = None, headline: str | None = None, advice: str | None = None,
                          tagged: bool | None = None, **kwargs: Any) -> None:
        """A subclass declares only what differs: its problem code, headline, fixed advice and tagging."""
        super().__init_subclass__(**kwargs)
        declared = {"default_code": code, "headline": headline, "fixed_advice": advice, "tagged": tagged}
        for name, value in declared.items():
            if value is not None:
                setattr(cls, name, value)

    def __init__(self, detail: str = "", *, status: int | None = None, code: str | None = None,
                 title: str | None = None, method: str | None = None, path: str | None = None,
                 attempts: int = 1, retry_after: float | None = None) -> None:
        self.status = status
        self.code = code or self.default_code
        self.title = title
        self.detail = detail
        self.method = method
        self.path = path
        self.attempts = attempts
        self.retry_after = retry_after
        super().__init__(self._message())

    # -- message
    def _what(self) -> str:
        """The backend's own words, or its title when it gave no detail: on one line (escaped), so a backend
        cannot forge a line of its own under ours (the message may span lines only where we break it; every other
        control character is escaped where the message is shown)."""
        return (self.detail or self.title or "").replace("\n", "\\n")

    def _message(self) -> str:
        text = self.headline
        tag = self._tag()
        if tag:
            text += f" ({tag})"
        what = self._what()
        if what:
            text += f": {what}"
        advice = self.advice()
        if advice:
            text = f"{text.rstrip('.')}. {advice}"
        if self.method and self.path:
            text += f" [{self.method} {self.path}]"
        return text

    def _tag(self) -> str:
        if not self.tagged:
            return ""
        bits = []
        if self.code:
            bits.append(f"rule {self.code}" if _is_rule(self.code) else self.code)
        if self.status is not None and not isinstance(self, RuleRefused):
            bits.append(f"HTTP {self.status}")
        return ", ".join(bits)

    def advice(self) -> str:
        """What the beheerder can do about it; empty when nothing general applies."""
        return self.fixed_advice

    def __reduce__(self) -> Any:
        # keep keyword attributes across pickling (pytest-xdist, multiprocessing)
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[BackendError], state: dict[str, Any]) -> BackendError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._message())
    return error


def _is_rule(code: str) -> bool:
    return len(code) >= 2 and code[0] == "R" and code[1:].isdigit()


class RuleRefused(BackendError, headline="The backend refused the change"):
    """409: the change would break a backend rule (R1..R20); the plan should not have contained it."""


class PreconditionFailed(BackendError, code="precondition-failed",
                         headline="The organisation changed in the backend since the plan was made",
                         advice="Make a new plan and apply that."):
    """412: the organisation changed since it was read (If-Match)."""


class Unauthorized(BackendError, code="unauthorized", headline="The backend did not accept the API token",
                   advice="Check that BEHEER_API_TOKEN holds a valid token of an admin."):
    """401: no valid token."""


class Forbidden(BackendError, code="forbidden", headline="The acting admin is not allowed to do this",
                advice="Use the token of an active beheerder of this organisation that is not read-only."):
    """403: the acting admin may not do this (not an active beheerder there, or a read-only token)."""


class NotFound(BackendError, code="not-found", headline="The backend does not know this"):
    """404: the organisation, means or intermediary does not exist (any more)."""


class InvalidRequest(BackendError, code="invalid", headline="The backend rejected the request as invalid"):
    """422: the backend rejected the request body (a bug here, or a value the backend does not accept)."""


class IdempotencyMismatch(InvalidRequest, code="idempotency-mismatch",
                          headline="The backend already saw this step with different content",
                          advice="The plan was probably edited or is stale: make a new plan."):
    """422 `idempotency-mismatch`: a key was reused for a different request (a stale or edited plan)."""


class RateLimited(BackendError, code="rate-limited", headline="The backend's rate limit for this token is exhausted"):
    """429 that outlasted the retries: the token's request budget is spent."""

    def advice(self) -> str:
        wait = f" in {self.retry_after:g} seconds" if self.retry_after is not None else " later"
        return f"Gave up after {self.attempts} attempt(s); try again{wait}."


class Unavailable(BackendError, code="unavailable", headline="The backend is temporarily unavailable"):
    """503 (or 502/504) that outlasted the retries."""

    def advice(self) -> str:
        return f"It stayed unavailable over {self.attempts} attempt(s); try again later."


class BackendUnreachable(BackendError, code="unreachable", headline="Could not reach the beheer backend",
                         tagged=False):
    """No response at all (connection refused, timeout, dropped connection) after the retries."""

    def advice(self) -> str:
        return (f"Gave up after {self.attempts} attempt(s); check the --backend address and the network, "
                "then try again (applying again is safe: steps already done are not repeated).")


class UnexpectedResponse(BackendError, code="unexpected-response",
                         headline="The backend sent a response the reconciler does not understand", tagged=False):
    """A 2xx answer the client cannot read (off-contract JSON): a backend bug or a version mismatch."""


class ServerError(BackendError, code="server-error", headline="The backend failed while handling the request"):
    """5xx other than 502/503/504: the backend failed; not retried, as it is unlikely to heal by itself."""


_BY_STATUS: dict[int, type[BackendError]] = {
    401: Unauthorized, 403: Forbidden, 404: NotFound, 409: RuleRefused, 412: PreconditionFailed,
    422: InvalidRequest, 429: RateLimited, 502: Unavailable, 503: Unavailable, 504: Unavailable,
}


def error_class_for(status: int, code: str | None) -> type[BackendError]:
    """The exception class for an error response: by status first, refined by a few codes."""
    if code == "idempotency-mismatch":
        return IdempotencyMismatch
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return BackendError


__all__ = [
    "BackendError", "BackendUnreachable", "ConfigurationError", "Forbidden", "IdempotencyMismatch",
    "InvalidRequest", "NotFound", "PreconditionFailed", "RateLimited", "RuleRefused", "ServerError",
    "Unauthorized", "Unavailable", "UnexpectedResponse", "error_class_for",
]
