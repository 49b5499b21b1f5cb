"""Matching request paths against the path templates of the endpoint catalogue.

Every catalogue endpoint becomes a route, so the simulator knows the whole API surface even where it does not
model the behaviour (those routes answer 501). When several templates fit a path, the one with literal segments
earliest wins: `/iserver/account/orders` matches the literal route rather than `/iserver/account/{accountId}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from ..lib.endpoint import EndpointSpec


@dataclass(frozen=True)
class Route:
    spec: EndpointSpec
    segments: tuple[str | None, ...]  # None marks a {placeholder}
    names: tuple[str, ...]  # placeholder names, in path order

    @property
    def specificity(self) -> tuple[int, ...]:
        return tuple(0 if s is not None else 1 for s in self.segments)


def _split(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/")]


def _compile(spec: EndpointSpec) -> Route:
    segments: list[str | None] = []
    names: list[str] = []
    for part in _split(spec.path):
        if part.startswith("{") and part.endswith("}"):
            segments.append(None)
            names.append(part[1:-1])
        else:
            segments.append(part)
    return Route(spec, tuple(segments), tuple(names))


class RouteTable:
    """All catalogue routes, indexed by HTTP method and number of path segments."""

    def __init__(self, endpoints: Mapping[str, EndpointSpec]) -> None:
        self._index: dict[tuple[str, int], list[Route]] = {}
        for spec in endpoints.values():
            route = _compile(spec)
            self._index.setdefault((spec.http, len(route.segments)), []).append(route)
        for routes in self._index.values():
            routes.sort(key=lambda r: r.specificity)
        self._methods = sorted({m for m, _ in self._index})

    def match(self, method: str, path: str) -> tuple[EndpointSpec, dict[str, str]] | None:
        """The endpoint serving `method path` (path below /v1/api) and its path parameters, or None."""
        parts = _split(path)
        for route in self._index.get((method, len(parts)), ()):
            params: dict[str, str] = {}
            names = iter(route.names)
            for want, got in zip(route.segments, parts, strict=True):
                if want is None:
                    if not got:
                        break
                    params[next(names)] = unquote(got)
                elif want != got:
                    break
            else:
                return route.spec, params
        return None

    def methods_for(self, path: str) -> list[str]:
        """HTTP methods accepted for this path (for a 405 answer and its Allow header): those of the most specific
        templates that fit, so `/fyi/deliveryoptions/device` (POST) does not also list DELETE of `.../{deviceId}`."""
        found: dict[str, tuple[int, ...]] = {}
        for m in self._methods:
            matched = self.match(m, path) if m != "HEAD" else None
            if matched is not None:
                found[m] = _compile(matched[0]).specificity
        best = min(found.values(), default=())
        return [m for m, specificity in found.items() if specificity == best]
