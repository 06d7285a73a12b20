"""The providers package's exceptions, in one tree. Adapters translate foreign errors (httpx, web3, a plugin's own)
into these once, at the edge; the resilience layer decides from the class alone whether a call failed.

    ProviderError                      a provider failed or could not be asked
    ├── ProviderTimeout                no complete answer within the provider's own time limit (connect, read,
    │   │                              slow body)
    │   └── DeadlineReached            the caller's deadline (the fan-out's) ended the call first, or left no time
    │                                  to start it: says nothing about the provider, never counted against it
    ├── ProviderUnavailable            connection refused or reset, DNS, TLS
    ├── ProviderServerError            HTTP 5xx
    ├── ProviderProtocolError          an answer the protocol does not allow (schema, negative rate, expired offer,
    │   │                              unexpected status, bad signature)
    │   └── WebhookRejected            a webhook with a bad signature, a replay, or a body that is not the schema
    ├── LocalRequestError              the request could not be built here (an unencodable header, a bad URL): says
    │                                  nothing about the provider, never counted against it
    ├── ProviderRejected               not sent at all: the provider is protected from us or we from it
    │   ├── CircuitOpen                its breaker is open, or its half-open trials are taken
    │   ├── BulkheadFull               its concurrency limit is reached for the remaining deadline
    │   ├── RateLimited                its rate limit has no token left within the remaining deadline
    │   └── DestinationRefused         its URL resolves to a loopback, link-local or private address (SSRF guard)
    └── RegistryError                  registration or plugin loading is wrong
        ├── InvalidPlugin              an entry point does not give a complete ProviderAdapter
        ├── UnknownProviderKind        no entry point of that name
        ├── InvalidRegistration        a registration's configuration does not validate
        │   └── AlreadyRegistered      a provider with that id exists
        └── UnknownProvider            no provider with that id
"""

from __future__ import annotations


class ProviderError(Exception):
    """Root of the providers package's errors: a provider failed (timeout, transport, 5xx, bad body)."""

    #: counts against the provider's circuit breaker and error rate
    counts_as_failure = True
    #: a quote attempt that ended so may be tried again (quotes only, within the deadline)
    retryable = False


class ProviderTimeout(ProviderError):
    retryable = True


class DeadlineReached(ProviderTimeout):
    """The caller's deadline came before the provider's own time limit: the caller stopped waiting, which says how
    busy we were, not how the provider did (neither a failure nor a success of its breaker)."""

    counts_as_failure = False
    retryable = False


class ProviderUnavailable(ProviderError):
    retryable = True


class ProviderServerError(ProviderError):
    retryable = True

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ProviderProtocolError(ProviderError):
    """A provider answered something the protocol does not allow (schema violation, bad signature)."""


class WebhookRejected(ProviderProtocolError):
    def __init__(self, message: str, status_code: int = 401) -> None:
        super().__init__(message)
        self.status_code = status_code


class LocalRequestError(ProviderError):
    """Our side could not build or send the request (e.g. a header value httpx cannot encode)."""

    counts_as_failure = False


class ProviderRejected(ProviderError):
    """The call was not made: it says nothing about the provider's health."""

    counts_as_failure = False


class CircuitOpen(ProviderRejected):
    pass


class BulkheadFull(ProviderRejected):
    pass


class RateLimited(ProviderRejected):
    pass


class DestinationRefused(ProviderRejected):
    pass


class RegistryError(ProviderError):
    counts_as_failure = False


class InvalidPlugin(RegistryError):
    pass


class UnknownProviderKind(RegistryError):
    pass


class InvalidRegistration(RegistryError):
    pass


class AlreadyRegistered(InvalidRegistration):
    pass


class PoolAlreadyServed(InvalidRegistration):
    """A pool registration whose pool (chain, address) a provider that quotes already stands for."""


class UnknownProvider(RegistryError):
    pass
