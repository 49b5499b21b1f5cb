"""Subscriptions kept as intent: what the user asked for, what was sent on the current connection, what the gateway
acknowledged. The client's reader thread asks `due()` what to send; every other method may be called from any thread.

Rules: on a ready connection every subscription the user wants is sent once; an acknowledged topic counts as active
on its first frame (or its acknowledgement message), an unacknowledged one once sent. Without an acknowledgement
within `ack_timeout` it is re-sent up to `retries` times, then FAILED (visible on its handle, and as a
`SubscriptionUpdated` event). A lost connection marks active subscriptions DEGRADED; the next ready connection sends
each of them again, exactly once. Subscriptions with `expiry_seconds` are re-sent that long after they were sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .events import SubscriptionUpdated, WsEvent
from .subscriptions import BindingStatus, Subscription, SubscriptionConflictError, SubscriptionHandle

logger = logging.getLogger("ibkr_sdk.ws")

ACTIVE = BindingStatus.ACTIVE
UNSUBSCRIBED = BindingStatus.UNSUBSCRIBED


@dataclass
class Binding:
    subscription: Subscription
    intent: BindingStatus
    status: BindingStatus = BindingStatus.NEW
    attempts: int = 0
    in_flight: bool = False  # sent on this connection, acknowledgement pending
    live: bool = False  # subscribed on the current connection (so an unsubscribe must be sent)
    sent_at: float = 0.0
    sends: int = 0
    renewals: int = 0

    @property
    def done(self) -> bool:
        return self.status is self.intent


class SubscriptionController:
    """The bindings of one client. `send` queues a text frame on the current connection."""

    def __init__(
        self,
        emit: Callable[[WsEvent], None],
        kick: Callable[[], None],
        *,
        ack_timeout: float,
        retries: int,
        renew_after: float | None = None,
    ) -> None:
        self._emit = emit
        self._kick = kick
        self._ack_timeout = ack_timeout
        self._retries = retries
        self._renew_after = renew_after
        self._bindings: dict[str, Binding] = {}
        self._condition = threading.Condition(threading.RLock())

    # -- user side --------------------------------------------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> SubscriptionHandle:
        key = subscription.binding_key()
        with self._condition:
            binding = self._bindings.get(key)
            if binding is None:
                binding = self._bindings[key] = Binding(subscription, ACTIVE)
            else:
                if binding.subscription != subscription:
                    pristine = binding.status is BindingStatus.NEW and binding.sends == 0
                    if not (pristine or binding.status is UNSUBSCRIBED or binding.status is BindingStatus.FAILED):
                        raise SubscriptionConflictError(
                            f"subscribe(): a different subscription holds {key!r}; unsubscribe it and wait until its "
                            f"status is {UNSUBSCRIBED.value} before subscribing with other parameters"
                        )
                    binding.subscription = subscription
                if binding.intent is not ACTIVE or binding.status is BindingStatus.FAILED:
                    binding.intent = ACTIVE
                    binding.attempts = 0
                    binding.in_flight = False
                    if binding.status is not ACTIVE:
                        self._set(binding, BindingStatus.NEW)
            self._condition.notify_all()
            subscription = binding.subscription
        self._kick()
        return SubscriptionHandle(self, subscription)

    def unsubscribe(self, subscription: Subscription) -> SubscriptionHandle:
        key = subscription.binding_key()
        with self._condition:
            binding = self._bindings.get(key)
            if binding is None:
                binding = self._bindings[key] = Binding(subscription, UNSUBSCRIBED, status=UNSUBSCRIBED)
            elif binding.intent is not UNSUBSCRIBED or binding.status is BindingStatus.FAILED:
                binding.intent = UNSUBSCRIBED
                binding.attempts = 0
                binding.in_flight = False
            self._condition.notify_all()
            subscription = binding.subscription
        self._kick()
        return SubscriptionHandle(self, subscription)

    def get_status(self, key: str) -> BindingStatus | None:
        binding = self._bindings.get(key)
        return None if binding is None else binding.status

    def is_done(self, key: str) -> bool | None:
        binding = self._bindings.get(key)
        return None if binding is None else binding.done

    def is_subscription_active(self, key: str) -> bool:
        return self.get_status(key) is ACTIVE

    def subscription(self, key: str) -> Subscription | None:
        binding = self._bindings.get(key)
        return None if binding is None else binding.subscription

    def wait_for(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while True:
                binding = self._bindings.get(key)
                if binding is None or binding.status is BindingStatus.FAILED:
                    return False
                if binding.done:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)

    def stats(self) -> dict[str, dict[str, object]]:
        with self._condition:
            return {
                key: {"status": b.status.value, "intent": b.intent.value, "sends": b.sends, "renewals": b.renewals}
                for key, b in self._bindings.items()
            }

    # -- reader side ------------------------------------------------------------------------------------------------

    def confirm(self, key: str, subscribed: bool) -> None:
        """An acknowledgement (a first frame, or an unsubscribe message) arrived for `key`."""
        binding = self._bindings.get(key)
        if binding is None:
            return
        if subscribed and binding.status is ACTIVE and not binding.in_flight:
            return  # the common case: one more frame of an active stream
        with self._condition:
            if subscribed and binding.intent is ACTIVE:
                binding.in_flight = False
                binding.attempts = 0
                binding.live = True
                if binding.status is not ACTIVE:
                    self._set(binding, ACTIVE)
            elif not subscribed and binding.intent is UNSUBSCRIBED:
                binding.in_flight = False
                binding.live = False
                if binding.status is not UNSUBSCRIBED:
                    self._set(binding, UNSUBSCRIBED)

    def refused(self, key: str, reason: str) -> None:
        """The gateway refused the subscription of `key` (an error frame naming it)."""
        with self._condition:
            binding = self._bindings.get(key)
            if binding is not None and binding.in_flight:
                logger.warning("subscription %s refused by the gateway: %s", key, reason)
                binding.in_flight = False
                self._set(binding, BindingStatus.FAILED)

    def connection_lost(self) -> None:
        """The connection ended: the gateway forgot every subscription."""
        with self._condition:
            for binding in self._bindings.values():
                binding.in_flight = False
                binding.live = False
                binding.attempts = 0
                if binding.intent is ACTIVE:
                    if binding.status is not BindingStatus.FAILED and binding.status is not BindingStatus.DEGRADED:
                        if binding.status is not BindingStatus.NEW:
                            self._set(binding, BindingStatus.DEGRADED)
                elif binding.status is not UNSUBSCRIBED:
                    self._set(binding, UNSUBSCRIBED)

    def due(self, now: float, *, unsubscribes_only: bool = False) -> list[str]:
        """The frames to send now on a ready connection; updates what is in flight. `unsubscribes_only`: just the
        unsubscribe frames (the connection is closing: nothing new is asked for)."""
        out: list[str] = []
        with self._condition:
            for binding in self._bindings.values():
                if unsubscribes_only and binding.intent is not UNSUBSCRIBED:
                    continue
                payload = self._step(binding, now)
                if payload is not None:
                    out.append(payload)
        return out

    def _step(self, binding: Binding, now: float) -> str | None:
        sub = binding.subscription
        if binding.status is BindingStatus.FAILED:
            return None
        if binding.in_flight:
            if now - binding.sent_at < self._ack_timeout:
                return None
            if binding.attempts > self._retries:
                logger.warning("subscription %s not acknowledged after %d attempts", sub, binding.attempts)
                binding.in_flight = False
                self._set(binding, BindingStatus.FAILED)
                return None
            logger.info("subscription %s not acknowledged within %.1fs; sending again", sub, self._ack_timeout)
        elif binding.intent is ACTIVE:
            if binding.status is ACTIVE:
                expiry = self._renew_after if self._renew_after is not None else sub.expiry_seconds
                if expiry is None or now - binding.sent_at < expiry:
                    return None
                binding.renewals += 1
                binding.sent_at = now
                binding.sends += 1
                return sub.subscribe_payload()
        else:  # unsubscribe wanted
            if binding.status is UNSUBSCRIBED:
                return None
            if not binding.live:
                self._set(binding, UNSUBSCRIBED)
                return None
        binding.attempts += 1
        binding.sent_at = now
        binding.sends += 1
        if binding.intent is ACTIVE:
            payload = sub.subscribe_payload()
            if sub.confirms_subscribe:
                binding.in_flight = True
            else:
                binding.live = True
                binding.in_flight = False
                self._set(binding, ACTIVE)
            return payload
        try:
            payload = sub.unsubscribe_payload()
        except RuntimeError as exc:  # e.g. history without a server id yet
            logger.warning("%s", exc)
            binding.attempts -= 1
            binding.sends -= 1
            return None
        binding.live = False
        if sub.confirms_unsubscribe:
            binding.in_flight = True
        else:
            binding.in_flight = False
            self._set(binding, UNSUBSCRIBED)
        return payload

    def _set(self, binding: Binding, status: BindingStatus) -> None:
        previous = binding.status
        if previous is status:
            return
        binding.status = status
        self._condition.notify_all()
        key = binding.subscription.binding_key()
        logger.debug("subscription %s: %s -> %s", key, previous.value, status.value)
        self._emit(
            SubscriptionUpdated(
                subscription=binding.subscription, binding_key=key, status=status, previous_status=previous
            )
        )
