"""The part of the client every generated endpoint method calls: `_call`.

It validates and encodes the arguments (`wire.prepare`), runs the endpoint's preflight once per client, and sends
the request through the transport with the endpoint's retry policy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .endpoint import EndpointSpec
from .result import Result
from .transport import Transport
from .wire import prepare


class ClientCore:
    """State shared by all endpoint mixins. `IbkrClient.__init__` sets it up."""

    account_id: str | None
    _transport: Transport
    _endpoints: Mapping[str, EndpointSpec]
    _auto_preflight: bool
    _preflight_done: set[str]
    _preflight_lock: threading.Lock

    def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        call = prepare(spec, args, self.account_id, method_name)
        if spec.preflight and self._auto_preflight:
            self._run_preflight(spec)
        result = self._transport.send(call, retry_safe=spec.retry_safe, pacing=spec.pacing)
        # A successful call also satisfies the preflight of endpoints that name this one.
        self._preflight_done.add(spec.name)
        return result

    def _run_preflight(self, spec: EndpointSpec) -> None:
        missing = [name for name in spec.preflight if name not in self._preflight_done]
        if not missing:
            return
        with self._preflight_lock:
            for name in missing:
                if name in self._preflight_done:
                    continue
                target = self._endpoints[name]
                self._transport.send(
                    prepare(target, {}, self.account_id), retry_safe=target.retry_safe, pacing=target.pacing
                )
                self._preflight_done.add(name)
