"""The store-backed Limiter: rate limits and quotas from the request's merged policies.

Steady state costs at most one store round trip per served request: the rate window's
and the quota period's increments together (plus, once per window and worker, the
previous window's count, and a new session's first record, in the same round trip); none while leases last (``limits.mode``
``auto`` leases large limits, ``leased`` every limit). A refused request then costs one
more round trip, giving back what it took from each counter (unless
``limits.refused: counted``): windows count served
requests only, so a client above its limit is served the limit, not locked out.
Counters key on the session ID, so they follow an identity across token re-issue;
anonymous requests key on the client address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config.limits import LimitsConfig, StoreFailureConfig
from ..config.policies import PolicyConfig, most_permissive
from ..config.units import Rate
from ..errors import Forbidden, ServiceUnavailable, StoreError, TooManyRequests
from ..store.base import Store
from .counters import Counters, PreviousWindows, auto_lease
from .windows import Verdict, Window, sliding_count

log = logging.getLogger("wsgi_gateway.limits")


@dataclass(frozen=True)
class MergedLimits:
    """The limits in force for one request: the most permissive of its policies."""

    rate: Rate | None
    quota: Rate | None
    key: str | None = None  # the winning policy's rate_key expression

    @classmethod
    def merge(cls, names: tuple[str, ...], policies: Mapping[str, PolicyConfig]) -> "MergedLimits":
        found = [policies[n] for n in names if n in policies]
        rates = [p.rate for p in found if p.rate]
        quotas = [p.quota for p in found if p.quota]
        # a policy without a rate (or quota) is unlimited on that count
        unlimited_rate = any(p.rate is None for p in found)
        unlimited_quota = any(p.quota is None for p in found)
        rate = None if unlimited_rate else most_permissive(rates)
        key = next((p.rate_key for p in found if p.rate is rate and p.rate_key), None)
        return cls(rate, None if unlimited_quota else most_permissive(quotas), key)


@dataclass(frozen=True, slots=True)
class _Plan:
    """One counter a request takes a number from."""

    kind: str                   # "rate" or "quota"
    limit: Rate
    key: str
    ttl: float
    lease: int                  # 1: exact
    window: Window
    previous: str | None = None  # the previous window's key (sliding rate)
    keep_previous: float = 0.0   # how long its count stays final for this worker


class StoreLimiter:
    """The :class:`~wsgi_gateway.middleware.limits.Limiter` on the gateway's store.

    :param store: where counters live (memcached for several workers or hosts).
    :param config: algorithm, mode, headers, failure behaviour.
    :param api: the API's name (counters are per API).
    :param policies: the config's policies by name.
    :param default_policy: the API's policy when the rules assigned none.
    :param clock: wall-clock seconds.
    :param on_failure: open or closed per concern while the store fails.
    """

    def __init__(self, store: Store, config: LimitsConfig, api: str,
                 policies: Mapping[str, PolicyConfig], *, default_policy: str | None = None,
                 clock: Callable[[], float] = time.time, keys: Mapping[str, object] | None = None,
                 on_failure: StoreFailureConfig = StoreFailureConfig(), sessions=None):
        self.store, self.config, self.api = store, config, api
        self.on_failure = on_failure
        self.policies = policies
        self.default = (default_policy,) if default_policy else ()
        self.clock = clock
        self.counters = Counters(store)
        self.previous = PreviousWindows(clock)
        self._failing = False
        self._merged: dict[tuple[str, ...], MergedLimits] = {}
        self.keys = dict(keys or {})  # rate_key expression -> compiled RateKey
        self.sessions = sessions  # a new session's record rides in the counters' round trip

    def limits_for(self, names: tuple[str, ...]) -> MergedLimits:
        merged = self._merged.get(names)
        if merged is None:
            merged = self._merged[names] = MergedLimits.merge(names, self.policies)
            if len(self._merged) > 1024:  # bounded: policy combinations are few
                self._merged.clear()
        return merged

    def check(self, ctx, request) -> list[tuple[str, str]]:
        limits = self.limits_for(ctx.policies or self.default)
        if limits.rate is None and limits.quota is None:
            return []
        subject = ctx.session_id or f"addr:{request.remote_addr or '-'}"
        if limits.key is not None:
            subject = self.keys[limits.key].subject(ctx, request) or subject
        verdicts = self._count(limits, subject, ctx)
        ctx.limit_verdicts = tuple(verdicts)
        headers = rate_limit_headers(verdicts, self.config.headers, self.clock())
        for verdict in verdicts:
            if not verdict.allowed:
                raise self._refusal(verdict, headers)
        return headers

    def _count(self, limits: MergedLimits, subject: str, ctx) -> list[Verdict]:
        """Both counters (and the previous rate window, when this worker lacks it) in
        one store round trip, then the verdicts; a refusal gives back what it took."""
        now = self.clock()
        plans: list[_Plan] = []
        reads: list[str] = []
        if limits.rate is not None:
            plans.append(self._rate_plan(limits.rate, subject, now))
            previous = plans[-1].previous
            if previous is not None and self.previous.known(previous) is None:
                reads.append(previous)
        if limits.quota is not None:
            plans.append(self._quota_plan(limits.quota, subject, now, ctx))
        first = self.sessions.pending_add(ctx) if self.sessions is not None else None
        try:
            numbers, found, stored = self.counters.take([(p.key, p.ttl, p.lease) for p in plans],
                                                        reads, [first[:3]] if first else ())
        except StoreError:
            for plan in plans:
                refusal = self._store_failed(ctx, plan.kind)
                if refusal is not None:  # this concern fails closed
                    raise refusal from None
            return []
        self._recovered()
        if first is not None and stored[0]:  # else touch() adds it after the request
            self.sessions.added(ctx, first[3])
        verdicts: list[Verdict] = []
        for plan, number in zip(plans, numbers):
            used: float = number
            if plan.previous is not None:
                count = (self.previous.remember(plan.previous, found.get(plan.previous), plan.keep_previous)
                         if plan.previous in reads else self.previous.known(plan.previous) or 0)
                used = sliding_count(count, number, plan.window)
            verdicts.append(Verdict(plan.kind, plan.limit.count, plan.limit.period, used,
                                    plan.window.resets_in))
        if not all(v.allowed for v in verdicts):  # a refused request spends neither count
            self._give_back(plans)
            verdicts = verdicts[:next(i for i, v in enumerate(verdicts) if not v.allowed) + 1]
        return verdicts

    def _give_back(self, plans: list["_Plan"]) -> None:
        if self.config.refused == "counted":
            return  # the penalty mode: refused requests count against the window
        try:
            self.counters.give_back([(plan.key, plan.lease) for plan in plans])
        except StoreError:
            return  # the counters stay one high: stricter, never looser

    def _lease(self, limit: int) -> int:
        mode = self.config.mode
        return 1 if mode == "exact" else self.config.lease if mode == "leased" else auto_lease(limit)

    def _rate_plan(self, rate: Rate, subject: str, now: float) -> "_Plan":
        window = Window.at(now, rate.period)
        base = f"rl:{self.api}:{subject}:{rate.period:g}"
        sliding = self.config.algorithm == "sliding"
        return _Plan("rate", rate, f"{base}:{window.index}", window.counter_ttl(sliding),
                     self._lease(rate.count), window,
                     f"{base}:{window.index - 1}" if sliding else None, window.resets_in + 1)

    def _quota_plan(self, quota: Rate, subject: str, now: float, ctx) -> "_Plan":
        anchor = 0.0
        if self.config.quota_renewal == "first_use":
            anchor = float((ctx.session_record or {}).get("created", 0.0))
        window = Window.at(now, quota.period, anchor)
        key = f"q:{self.api}:{subject}:{quota.period:g}:{int(anchor)}:{window.index}"
        return _Plan("quota", quota, key, window.counter_ttl(False), self._lease(quota.count), window)

    def _refusal(self, verdict: Verdict, headers: list[tuple[str, str]]):
        extra = dict(headers)
        if verdict.kind == "quota":
            detail = f"the quota of {verdict.limit} requests per {verdict.period:g}s is used up"
            if self.config.quota_status == 403:
                return Forbidden(detail, headers=extra)
            return TooManyRequests(detail, retry_after=verdict.retry_after, headers=extra)
        detail = f"the rate limit of {verdict.limit} requests per {verdict.period:g}s is reached"
        return TooManyRequests(detail, retry_after=verdict.retry_after, headers=extra)

    def _store_failed(self, ctx, kind: str) -> ServiceUnavailable | None:
        """A counter could not be read: serve without it (open) or answer 503 (closed),
        as ``store.on_failure`` says for rate limits and quotas."""
        mode = self.on_failure.rate_limits if kind == "rate" else self.on_failure.quotas
        if not self._failing:
            self._failing = True
            log.warning("limits: the store is unavailable; rate limits are %s, quotas %s",
                        *(("not applied" if m == "open" else "refused with 503")
                          for m in (self.on_failure.rate_limits, self.on_failure.quotas)))
        ctx.record("limits", self.api, f"store unavailable ({kind})", mode)
        if mode == "closed":
            return ServiceUnavailable(f"{'rate limits' if kind == 'rate' else 'quotas'} "
                                      "cannot be checked now", retry_after=1)
        return None

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("limits: the store is back; counting again")


def rate_limit_headers(verdicts: list[Verdict], which: str, now: float) -> list[tuple[str, str]]:
    """``X-RateLimit-*`` (the first verdict shown; reset as a Unix time, as Tyk and
    GitHub do) and the IETF ``RateLimit-Policy`` / ``RateLimit`` fields (reset in
    seconds), for the configured kinds."""
    shown = [v for v in verdicts if which == "both" or v.kind == which]
    if not shown:
        return []
    tightest = min(shown, key=lambda v: (v.remaining, v.resets_in))
    headers = [
        ("X-RateLimit-Limit", str(tightest.limit)),
        ("X-RateLimit-Remaining", str(tightest.remaining)),
        ("X-RateLimit-Reset", str(int(now + tightest.resets_in + 0.999))),
        ("RateLimit-Policy", ", ".join(f'"{v.kind}";q={v.limit};w={int(v.period)}' for v in shown)),
        ("RateLimit", ", ".join(f'"{v.kind}";r={v.remaining};t={int(v.resets_in + 0.999)}'
                                for v in shown)),
    ]
    return headers
