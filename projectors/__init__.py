"""Read views kept from the journal: sharer balances, the multi-level payout view, fee and
merchant totals. ``runner`` catches them up (per-chain checkpoints) and rebuilds them,
``check`` compares them with a recomputation, ``read`` answers queries from them."""
