"""The hash chains, pure: the journal's canonical entry bytes, links and checker
(``journal``), the event log's chains (``eventlog``), and signed checkpoints of both
heads (``checkpoint``). The SQL that stores and verifies them is in ``ledger/store/``."""
