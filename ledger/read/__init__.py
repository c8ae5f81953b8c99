"""The read side: every read that the CLI, the API, the dashboard and the demo make, one
definition each, returning the typed rows of ``models``. Each function takes an open
Connection (one snapshot per request: ``with store.read() as conn``).

- ``balances``: balances from the view, and from the journal (the definition)
- ``orders``: an order's levels and their states, a sharer's orders, id look-ups
- ``sharers``: earnings by level, downline and month, the referral team, known sharers
- ``totals``: fees and merchant charges per day or month
- ``operations``: dead letters, parked events, lag, an event's logged outcome
- ``audit``: journal entries with their postings
- ``money``: amounts as people read them per locale, and each currency's exponent
- ``order_story``: where one order's money went (lines, refunds, split, levels, payouts,
  settlement, entries)
- ``downloads``: the tables finance downloads, read a keyset page at a time
"""
