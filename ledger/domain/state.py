"""The state one batch works on: a cache over a loader, recording what changed.

The engine reads and changes state only through ``WorkingState``. Behind it a
``StateLoader`` fetches what the cache lacks (from a database, in the service; nothing at
all for a purely in-memory ledger). After the batch the service writes ``changes()``.
Everything here is pure: no I/O of its own, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar

from ledger.domain.entries import JournalEntry, sharer_account
from ledger.domain.events import SharerEnrolled
from ledger.domain.model import Click, Order, ParkedEvent, Payout, Sharer
from ledger.domain.plans import Plan, PlanBook

Key = tuple[str, str]  # (account, currency)

# SPEC §3 "Bounds": no account's balance may go beyond ±2^62, so every balance, and the
# sum of any two, fits a signed 64-bit integer.
BALANCE_BOUND = 2**62


class StateLoader(Protocol):
    """Bulk look-ups of committed state. Each returns only what exists."""

    def plans(self) -> list[Plan]: ...
    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]: ...
    def clicks(self, ids: Iterable[str]) -> dict[str, Click]: ...
    def clicks_of_buyers(self, buyer_ids: Iterable[str], since: int) -> dict[str, list[Click]]: ...
    def orders(self, ids: Iterable[str]) -> dict[str, Order]: ...
    def orders_due(self, as_of: int) -> list[Order]: ...
    def refunds(self, ids: Iterable[str]) -> set[str]: ...
    def payouts(self, ids: Iterable[str]) -> dict[str, Payout]: ...
    def runs(self, ids: Iterable[str]) -> set[str]: ...
    def balances(self, keys: Iterable[Key]) -> dict[Key, int]: ...
    def processed(self, event_ids: Iterable[str]) -> set[str]: ...
    def parked_for(self, refs: Iterable[str]) -> list[ParkedEvent]: ...
    def waiting_enrollments(self, sharer_ids: Iterable[str]) -> dict[str, str | None]: ...


class NothingLoader:
    """A loader with nothing committed: the whole ledger lives in the WorkingState."""

    def plans(self) -> list[Plan]:
        return []

    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]:
        return {}

    def clicks(self, ids: Iterable[str]) -> dict[str, Click]:
        return {}

    def clicks_of_buyers(self, buyer_ids: Iterable[str], since: int) -> dict[str, list[Click]]:
        return {}

    def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {}

    def orders_due(self, as_of: int) -> list[Order]:
        return []

    def refunds(self, ids: Iterable[str]) -> set[str]:
        return set()

    def payouts(self, ids: Iterable[str]) -> dict[str, Payout]:
        return {}

    def runs(self, ids: Iterable[str]) -> set[str]:
        return set()

    def balances(self, keys: Iterable[Key]) -> dict[Key, int]:
        return {}

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        return set()

    def parked_for(self, refs: Iterable[str]) -> list[ParkedEvent]:
        return []

    def waiting_enrollments(self, sharer_ids: Iterable[str]) -> dict[str, str | None]:
        return {}


@dataclass
class Changes:
    """What a batch added or changed, for the service to write."""

    plans: list[Plan] = field(default_factory=list)
    sharers: list[Sharer] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    new_orders: list[Order] = field(default_factory=list)
    changed_orders: list[Order] = field(default_factory=list)
    refunds: list[tuple[str, str]] = field(default_factory=list)  # (refund_id, order_id)
    new_payouts: list[Payout] = field(default_factory=list)
    changed_payouts: list[Payout] = field(default_factory=list)
    runs: list[tuple[str, int]] = field(default_factory=list)  # (run_id, as_of)
    parked: list[ParkedEvent] = field(default_factory=list)  # newly parked, still waiting
    released: list[str] = field(default_factory=list)  # event ids no longer parked


def _sums(entries: Iterable[JournalEntry]) -> dict[Key, int]:
    """Net amount per (account, currency) over the postings of ``entries``."""
    sums: dict[Key, int] = defaultdict(int)
    for entry in entries:
        for posting in entry.postings:
            sums[(posting.account, posting.currency)] += posting.amount
    return sums


def _click_order(click: Click) -> tuple[int, int]:
    return (click.occurred_at, click.arrival)


V = TypeVar("V")


class Lookup(Generic[V]):
    """Get-or-load by id: each id is asked of the loader at most once, absent ones too
    (remembered as ``absent``)."""

    __slots__ = ("_absent", "_load", "known")

    def __init__(self, load: Callable[[list[str]], Mapping[str, V]], absent: V) -> None:
        self._load = load
        self._absent = absent
        self.known: dict[str, V] = {}

    def get(self, key: str) -> V:
        if key not in self.known:
            self.fill((key,))
        return self.known[key]

    def fill(self, keys: Iterable[str]) -> None:
        """Load every one of ``keys`` not known yet, in one look-up."""
        known = self.known
        missing = [k for k in set(keys) if k not in known]
        if missing:
            found = self._load(missing)
            for key in missing:
                known[key] = found.get(key, self._absent)

    def assume_absent(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.known.setdefault(key, self._absent)

    def put(self, key: str, value: V) -> None:
        self.known[key] = value


def _existing(load: Callable[[list[str]], set[str]]) -> Callable[[list[str]], dict[str, bool]]:
    """A loader of the ids that exist, as a loader of ``{id: True}``."""
    return lambda ids: dict.fromkeys(load(ids), True)


class WorkingState:
    """Cache + unit of work. Absent keys are looked up once through the loader.

    Orders and payouts are frozen records: the engine changes one by handing the state
    its new version (``update_order``, ``update_payout``), the same call that records it
    for the writer, so no change can be made and then forgotten.

    Account balances: with ``optimistic_balances`` False every balance an event posts to
    is loaded (once) and the bound is checked exactly, event by event. With True (the
    service's first pass) a balance not loaded yet is assumed far from the bound: the
    lowest and highest this batch takes it are recorded instead, and ``breaches()``
    checks them against the committed balances in one look-up afterwards; the service
    then redoes the batch with the breached balances loaded, so the event at fault is
    rejected exactly as the exact mode would."""

    def __init__(
        self, loader: StateLoader | None = None, *, optimistic_balances: bool = False
    ) -> None:
        self._loader: StateLoader = loader or NothingLoader()
        load = self._loader
        self.plans = PlanBook(load.plans())
        self._sharers: Lookup[Sharer | None] = Lookup(load.sharers, None)
        self._clicks: Lookup[Click | None] = Lookup(load.clicks, None)
        # buyer -> (clicks at or after this time are loaded, those clicks by (time, arrival))
        self._buyer_clicks: dict[str, tuple[int, list[Click]]] = {}
        # clicks added through this state, by buyer: merged into whatever the loader finds
        self._new_clicks: dict[str, list[Click]] = defaultdict(list)
        self._orders: Lookup[Order | None] = Lookup(load.orders, None)
        self._refunds: Lookup[bool] = Lookup(_existing(load.refunds), False)
        self._payouts: Lookup[Payout | None] = Lookup(load.payouts, None)
        self._runs: Lookup[bool] = Lookup(_existing(load.runs), False)
        self._processed: Lookup[bool] = Lookup(_existing(load.processed), False)
        # sharer -> the upline its waiting enrollment waits for; None: none waits
        self._waiting: Lookup[str | None] = Lookup(load.waiting_enrollments, None)
        self._optimistic = optimistic_balances
        self._base: dict[Key, int] = {}  # committed balances, loaded
        self._posted: dict[Key, int] = defaultdict(int)  # what this batch posted
        self._extremes: dict[Key, tuple[int, int]] = {}  # unloaded: (lowest, highest) posted
        self._parked: dict[str, list[ParkedEvent]] = {}  # ref -> waiting events (loaded)
        self._changes = Changes()
        # the latest version of every order and payout this batch created or changed
        self._new_orders: dict[str, Order] = {}
        self._changed_orders: dict[str, Order] = {}
        self._new_payouts: dict[str, Payout] = {}
        self._changed_payouts: dict[str, Payout] = {}

    # --- prefetch: one bulk look-up per kind instead of one per event --------------------

    def prefetch(
        self,
        *,
        sharers: Iterable[str] = (),
        clicks: Iterable[str] = (),
        buyers: Iterable[str] = (),
        clicks_since: int = 0,
        orders: Iterable[str] = (),
        refunds: Iterable[str] = (),
        payouts: Iterable[str] = (),
        runs: Iterable[str] = (),
        processed: Iterable[str] = (),
        parked_refs: Iterable[str] = (),
        balances: Iterable[Key] = (),
        enrollments: Iterable[str] = (),
    ) -> None:
        self._sharers.fill(sharers)
        self._clicks.fill(clicks)
        self._orders.fill(orders)
        self._payouts.fill(payouts)
        self._refunds.fill(refunds)
        self._runs.fill(runs)
        self._processed.fill(processed)
        self._load_waiting(enrollments)
        self._load_buyer_clicks(buyers, clicks_since)
        self._load_parked(parked_refs)
        self._fill_balances(balances)

    def _load_waiting(self, sharer_ids: Iterable[str]) -> None:
        """The waiting enrollments of ``sharer_ids``, and up the chain of the uplines they
        wait for (the referral cycle check walks it), one look-up per level."""
        wanted = set(sharer_ids)
        known = self._waiting.known
        while wanted:
            self._waiting.fill(wanted)
            self._sharers.fill(wanted)
            wanted = {u for k in wanted if (u := known[k]) is not None and u not in known}

    def _load_parked(self, refs: Iterable[str]) -> None:
        """The committed events waiting for each of ``refs``, loaded once, by arrival."""
        missing = [r for r in set(refs) if r not in self._parked]
        if not missing:
            return
        found: dict[str, list[ParkedEvent]] = defaultdict(list)
        for parked in self._loader.parked_for(missing):
            found[parked.waits_for].append(parked)
        for ref in missing:
            self._parked[ref] = sorted(found[ref], key=lambda p: p.arrival)

    def _load_buyer_clicks(self, buyers: Iterable[str], since: int) -> None:
        missing = [
            b
            for b in set(buyers)
            if b not in self._buyer_clicks or self._buyer_clicks[b][0] > since
        ]
        if not missing:
            return
        found = self._loader.clicks_of_buyers(missing, since)
        for buyer in missing:
            known = {c.click_id for c in found.get(buyer, [])}
            merged = found.get(buyer, []) + [
                c for c in self._new_clicks.get(buyer, []) if c.click_id not in known
            ]
            self._buyer_clicks[buyer] = (since, sorted(merged, key=_click_order))

    def assume_absent(
        self,
        *,
        processed: Iterable[str] = (),
        clicks: Iterable[str] = (),
        orders: Iterable[str] = (),
    ) -> None:
        """Treat these ids as unknown without asking the loader (see the service's
        optimistic pass: a wrong assumption is caught by the store's unique keys)."""
        self._processed.assume_absent(processed)
        self._clicks.assume_absent(clicks)
        self._orders.assume_absent(orders)

    def prefetch_levels(self, also: Iterable[str] = ()) -> None:
        """Load the sharers of the cached clicks (and ``also``) with their uplines, 3
        levels deep, in three bulk look-ups instead of one per order."""
        wanted = {c.sharer_id for c in self._clicks.known.values() if c is not None}
        wanted.update(also)
        for _, clicks in self._buyer_clicks.values():
            wanted.update(c.sharer_id for c in clicks)
        sharers = self._sharers.known
        for _ in range(3):
            self._sharers.fill(wanted)
            wanted = {
                s.upline_id
                for k in wanted
                if (s := sharers.get(k)) is not None and s.upline_id is not None
            }

    # --- idempotency --------------------------------------------------------------------

    def is_processed(self, event_id: str) -> bool:
        return self._processed.get(event_id)

    def mark_processed(self, event_id: str) -> None:
        self._processed.put(event_id, True)

    # --- plans ----------------------------------------------------------------------------

    def add_plan(self, plan: Plan) -> None:
        self.plans.add(plan)
        self._changes.plans.append(plan)

    # --- sharers ----------------------------------------------------------------------------

    def sharer(self, sharer_id: str) -> Sharer | None:
        return self._sharers.get(sharer_id)

    def add_sharer(self, sharer: Sharer) -> None:
        self._sharers.put(sharer.sharer_id, sharer)
        self._waiting.put(sharer.sharer_id, None)
        self._changes.sharers.append(sharer)

    def waiting_upline(self, sharer_id: str) -> tuple[bool, str | None]:
        """(is an enrollment of this sharer waiting, its upline)."""
        upline = self._waiting.get(sharer_id)  # a waiting enrollment always waits for one
        return upline is not None, upline

    # --- clicks ---------------------------------------------------------------------------

    def click(self, click_id: str) -> Click | None:
        return self._clicks.get(click_id)

    def clicks_of(self, buyer_id: str, since: int = 0) -> list[Click]:
        """The buyer's clicks at or after ``since``, ordered by (time, arrival); the list
        may also hold earlier ones."""
        loaded = self._buyer_clicks.get(buyer_id)
        if loaded is None or loaded[0] > since:
            self._load_buyer_clicks((buyer_id,), since)
            loaded = self._buyer_clicks[buyer_id]
        return loaded[1]

    def add_click(self, click: Click) -> None:
        self._clicks.put(click.click_id, click)
        self._new_clicks[click.buyer_id].append(click)
        loaded = self._buyer_clicks.get(click.buyer_id)
        if loaded is not None:
            clicks = loaded[1]
            clicks.append(click)
            if len(clicks) > 1 and _click_order(clicks[-2]) > _click_order(click):
                clicks.sort(key=_click_order)
        self._changes.clicks.append(click)

    # --- orders ---------------------------------------------------------------------------

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def add_order(self, order: Order) -> None:
        self._orders.put(order.order_id, order)
        self._new_orders[order.order_id] = order

    def update_order(self, order: Order) -> None:
        """Replace the order of the same id with this version, to be written as such."""
        order_id = order.order_id
        self._orders.put(order_id, order)
        if order_id in self._new_orders:
            self._new_orders[order_id] = order
        else:
            self._changed_orders[order_id] = order

    def orders_due(self, as_of: int) -> list[Order]:
        """Completed, unsettled, commission-earning orders due by ``as_of``, by order id.

        Cached versions win over committed ones: they carry this batch's changes.
        """
        cached = self._orders.known
        for order in self._loader.orders_due(as_of):
            cached.setdefault(order.order_id, order)
        return sorted(
            (
                o
                for o in cached.values()
                if o is not None
                and o.earns
                and not o.settled
                and o.settle_due is not None
                and o.settle_due <= as_of
            ),
            key=lambda o: o.order_id,
        )

    # --- refunds, runs ----------------------------------------------------------------------

    def refund_seen(self, refund_id: str) -> bool:
        return self._refunds.get(refund_id)

    def add_refund(self, refund_id: str, order_id: str) -> None:
        self._refunds.put(refund_id, True)
        self._changes.refunds.append((refund_id, order_id))

    def run_seen(self, run_id: str) -> bool:
        return self._runs.get(run_id)

    def add_run(self, run_id: str, as_of: int) -> None:
        self._runs.put(run_id, True)
        self._changes.runs.append((run_id, as_of))

    # --- payouts, balances ------------------------------------------------------------------

    def payout(self, payout_id: str) -> Payout | None:
        return self._payouts.get(payout_id)

    def add_payout(self, payout: Payout) -> None:
        self._payouts.put(payout.payout_id, payout)
        self._new_payouts[payout.payout_id] = payout

    def update_payout(self, payout: Payout) -> None:
        """Replace the payout of the same id with this version, to be written as such."""
        payout_id = payout.payout_id
        self._payouts.put(payout_id, payout)
        if payout_id in self._new_payouts:
            self._new_payouts[payout_id] = payout
        else:
            self._changed_payouts[payout_id] = payout

    def available(self, sharer_id: str, currency: str) -> int:
        return self.balance(sharer_account(sharer_id, "available"), currency)

    # --- account balances (SPEC §3 "Bounds") -------------------------------------------------

    def _fill_balances(self, keys: Iterable[Key]) -> None:
        missing = sorted(k for k in set(keys) if k not in self._base)
        if missing:
            found = self._loader.balances(missing)
            for key in missing:
                self._base[key] = found.get(key, 0)

    def balance(self, account: str, currency: str) -> int:
        """The balance as this batch leaves it so far (committed + posted here)."""
        key = (account, currency)
        self._fill_balances((key,))
        return self._base[key] + self._posted[key]

    def beyond_bound(self, entries: Iterable[JournalEntry]) -> tuple[str, str, int] | None:
        """The first (account, currency, balance) that posting ``entries`` would take
        beyond ±BALANCE_BOUND, or None. Unloaded balances are skipped when optimistic."""
        sums = _sums(entries)
        if not self._optimistic:
            self._fill_balances(sums)
        base, posted = self._base, self._posted
        beyond = []
        for key, amount in sums.items():
            committed = base.get(key)
            if committed is None:  # not loaded: assumed far from the bound (optimistic)
                continue
            after = committed + posted.get(key, 0) + amount
            if not -BALANCE_BOUND <= after <= BALANCE_BOUND:
                beyond.append((key, after))
        if not beyond:
            return None
        (account, currency), after = min(beyond)
        return account, currency, after

    def post(self, entries: Iterable[JournalEntry]) -> None:
        """Record that ``entries`` were applied (their postings move the balances)."""
        for key, amount in _sums(entries).items():
            posted = self._posted[key] + amount
            self._posted[key] = posted
            if self._optimistic and key not in self._base:
                low, high = self._extremes.get(key, (0, 0))
                self._extremes[key] = (min(low, posted), max(high, posted))

    def breaches(self) -> set[Key]:
        """The balances assumed far from the bound that this batch took beyond it (one
        bulk look-up of the committed balances). Empty: every event was checked right."""
        self._fill_balances(self._extremes)
        return {
            key
            for key, (low, high) in self._extremes.items()
            if self._base[key] + high > BALANCE_BOUND or self._base[key] + low < -BALANCE_BOUND
        }

    # --- parking ----------------------------------------------------------------------------

    def park(self, parked: ParkedEvent) -> None:
        self.waiting_for(parked.waits_for).append(parked)
        self._changes.parked.append(parked)
        event = parked.event
        if isinstance(event, SharerEnrolled):
            self._waiting.put(event.sharer_id, event.upline_id)

    def waiting_for(self, ref: str) -> list[ParkedEvent]:
        """Events waiting for ``ref``: committed ones (loaded once) and this batch's."""
        self._load_parked((ref,))
        return self._parked[ref]

    def release(self, ref: str) -> list[ParkedEvent]:
        """Take every event waiting for ``ref``, in arrival order."""
        waiting = self.waiting_for(ref)
        self._parked[ref] = []
        newly = {id(p) for p in self._changes.parked}
        for parked in waiting:
            if id(parked) in newly:
                self._changes.parked.remove(parked)
            else:
                self._changes.released.append(parked.event.event_id)
            event = parked.event
            if isinstance(event, SharerEnrolled):
                self._waiting.put(event.sharer_id, None)
        return waiting

    def changes(self) -> Changes:
        return replace(
            self._changes,
            new_orders=list(self._new_orders.values()),
            changed_orders=list(self._changed_orders.values()),
            new_payouts=list(self._new_payouts.values()),
            changed_payouts=list(self._changed_payouts.values()),
        )

    def reset_changes(self) -> None:
        """Forget what was recorded (after the service wrote it), keep the cache."""
        self._changes = Changes()
        self._new_orders.clear()
        self._changed_orders.clear()
        self._new_payouts.clear()
        self._changed_payouts.clear()
