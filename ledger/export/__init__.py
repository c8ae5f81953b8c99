"""The history as evidence: a sealed, optionally signed Avro OCF file of the event log and
the dead letters (``write``), its format read with every size bounded (``file``), checking
and authenticating a file (``check``), and its all-or-nothing replay into a new ledger
(``replay``)."""
