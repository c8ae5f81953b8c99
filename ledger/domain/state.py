"""The state one batch works on: a cache over a loader, recording what changed.

The engine reads and changes state only through ``WorkingState``. Behind it a
``StateLoader`` fetches what the cache lacks (from a database, in the service; nothing at
all for a purely in-memory ledger). After the batch the service writes ``changes()``.
Everything here is pure: no I/O of its own, no clock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar

from ledger.domain.entries import JournalEntry, sharer_account
from ledger.domain.events import SharerEnrolled
from ledger.domain.model import Click, Order, ParkedEvent, Payout, Sharer
from ledger.domain.plans import Plan, PlanBook

Key = tuple[str, str]  # (account, currency)
Probe = tuple[str, int, int]  # (buyer, order time, since): see StateLoader.latest_clicks

# SPEC §3 "Bounds": no account's balance may go beyond ±2^62, so every balance, and the
# sum of any two, fits a signed 64-bit integer.
BALANCE_BOUND = 2**62

# Due orders a settlement run reads at once (``WorkingState.due_pages``): a run over
# millions of orders holds one page of them, never all.
DUE_PAGE = 5_000

# Takes one page of a settlement run as soon as it is decided (its entries, in order, and
# its orders as settled), so that nothing of it stays in memory: the service's writer.
PageSink = Callable[[list[JournalEntry], list[Order]], None]


class StateLoader(Protocol):
    """Bulk look-ups of committed state. Each returns only what exists."""

    def plans(self) -> list[Plan]: ...
    def sharers(self, ids: Iterable[str]) -> dict[str, Sharer]: ...
    def clicks(self, ids: Iterable[str]) -> dict[str, Click]: ...
    def latest_clicks(self, probes: Iterable[Probe]) -> dict[Probe, Click]:
        """Per (buyer, at, since): the buyer's latest click with since <= time <= at, the
        first received among same-time ones (SPEC §3: what attribution falls back to)."""
        ...

    def orders(self, ids: Iterable[str]) -> dict[str, Order]: ...
    def orders_due(
        self, as_of: int, after: str | None = None, limit: int | None = None
    ) -> list[Order]:
        """Orders due by ``as_of`` and not settled, by order id (code point order), only
        those after ``after`` and at most ``limit`` of them: one page of a keyset scan."""
        ...

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

    def latest_clicks(self, probes: Iterable[Probe]) -> dict[Probe, Click]:
        return {}

    def orders(self, ids: Iterable[str]) -> dict[str, Order]:
        return {}

    def orders_due(
        self, as_of: int, after: str | None = None, limit: int | None = None
    ) -> list[Order]:
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


def _is_due(order: Order | None, as_of: int) -> bool:
    """Completed, unsettled, commission-earning and due by ``as_of``."""
    return (
        order is not None
        and order.earns
        and not order.settled
        and order.settle_due is not None
        and order.settle_due <= as_of
    )


def _order_id(order: Order) -> str:
    return order.order_id


def _click_order(click: Click) -> tuple[int, int]:
    return (click.occurred_at, click.arrival)


def _time(click: Click) -> int:
    return click.occurred_at


def _latest(clicks: list[Click], since: int, at: int) -> Click | None:
    """Of ``clicks`` (ordered by (time, arrival)) the latest with since <= time <= at, the
    first received among same-time ones: two bisections, however many there are."""
    end = bisect_right(clicks, at, key=_time)
    if not end or clicks[end - 1].occurred_at < since:
        return None
    return clicks[bisect_left(clicks, clicks[end - 1].occurred_at, hi=end, key=_time)]


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
        self,
        loader: StateLoader | None = None,
        *,
        optimistic_balances: bool = False,
        page_sink: PageSink | None = None,
    ) -> None:
        if page_sink is not None and optimistic_balances:
            # a page written at once cannot be taken back by a second pass
            raise ValueError("a state with a page sink checks its balances exactly")
        self._page_sink = page_sink
        self._loader: StateLoader = loader or NothingLoader()
        load = self._loader
        self.plans = PlanBook(load.plans())
        self._sharers: Lookup[Sharer | None] = Lookup(load.sharers, None)
        self._clicks: Lookup[Click | None] = Lookup(load.clicks, None)
        # (buyer, order time) -> (looked back to this time, the latest committed click
        # found there): one click per order, however many the buyer has
        self._latest: dict[tuple[str, int], tuple[int, Click | None]] = {}
        # clicks added through this state, by buyer, by (time, arrival): the loader does
        # not see them, so they are candidates beside the committed latest
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
        latest_clicks: Iterable[Probe] = (),
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
        self._load_latest(latest_clicks)
        self._load_waiting(enrollments)
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

    def _load_latest(self, probes: Iterable[Probe]) -> None:
        """The latest committed click per probe not answered yet, in one look-up."""
        wanted: dict[tuple[str, int], int] = {}  # (buyer, at) -> the earliest since asked
        for buyer, at, since in probes:
            key = (buyer, at)
            wanted[key] = min(since, wanted.get(key, since))
        latest = self._latest
        missing = [
            (buyer, at, since)
            for (buyer, at), since in wanted.items()
            if (known := latest.get((buyer, at))) is None or known[0] > since
        ]
        if missing:
            found = self._loader.latest_clicks(missing)
            for probe in missing:
                latest[(probe[0], probe[1])] = (probe[2], found.get(probe))

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
        wanted.update(c.sharer_id for _, c in self._latest.values() if c is not None)
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

    def candidate_clicks(self, buyer_id: str, at: int, since: int) -> list[Click]:
        """The candidates for the buyer's latest click with since <= time <= at (SPEC §3's
        fallback), ordered by (time, arrival): the latest committed one and the latest of
        those added through this state. The latest of these is the buyer's."""
        key = (buyer_id, at)
        known = self._latest.get(key)
        if known is None or known[0] > since:
            self._load_latest(((buyer_id, at, since),))
            known = self._latest[key]
        committed = known[1]
        if committed is not None and committed.occurred_at < since:
            committed = None  # looked up over a longer window
        added = _latest(self._new_clicks.get(buyer_id, []), since, at)
        if committed is None or committed == added:  # one click, committed and added here
            return [] if added is None else [added]
        return [committed] if added is None else sorted((committed, added), key=_click_order)

    def add_click(self, click: Click) -> None:
        self._clicks.put(click.click_id, click)
        insort(self._new_clicks[click.buyer_id], click, key=_click_order)
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

    def due_pages(self, as_of: int, size: int | None = None) -> Iterator[list[Order]]:
        """Completed, unsettled, commission-earning orders due by ``as_of``, by order id,
        in pages of at most ``size`` (``DUE_PAGE``): loaded a page at a time (keyset on
        the order id), merged with the cached orders in that id range.

        Cached versions win over committed ones: they carry this batch's changes. Loaded
        orders are not cached, so a run over any number of orders holds one page of them
        (and the cached ones, which are in memory anyway)."""
        size = size or DUE_PAGE
        cached = self._orders.known
        mine = sorted(k for k, order in cached.items() if _is_due(order, as_of))
        after: str | None = None
        taken = 0  # how many of ``mine`` are paged already
        while True:
            loaded = self._loader.orders_due(as_of, after, size)
            last = loaded[-1].order_id if len(loaded) == size else None  # None: no more
            upto = len(mine) if last is None else bisect_right(mine, last)
            page = [o for o in loaded if o.order_id not in cached]
            for k in mine[taken:upto]:
                order = cached[k]
                if order is not None and _is_due(order, as_of):
                    page.append(order)
            page.sort(key=_order_id)
            taken = upto
            for start in range(0, len(page), size):
                yield page[start : start + size]
            if last is None:
                return
            after = last

    def settle_page(self, entries: list[JournalEntry], orders: list[Order]) -> list[JournalEntry]:
        """Record one page of a settlement run: ``orders`` as settled, ``entries`` posted.
        With a page sink the page is handed to it at once and forgotten (nothing is
        returned); without one it is kept like any change, and ``entries`` are returned."""
        for order in orders:
            self.update_order(order)
        self.post(entries)
        if self._page_sink is None:
            return entries
        self._page_sink(entries, orders)
        known, changed = self._orders.known, self._changed_orders
        for order in orders:  # written: read again from the loader if ever needed
            del known[order.order_id]
            changed.pop(order.order_id, None)
        return []

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
        return self.beyond_bound_by(_sums(entries))

    def beyond_bound_by(self, sums: Mapping[Key, int]) -> tuple[str, str, int] | None:
        """``beyond_bound`` of postings that add ``sums`` per (account, currency)."""
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
