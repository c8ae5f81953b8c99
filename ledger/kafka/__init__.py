"""Kafka, as the ledger's publishers and operators meet it: the topic layout and which
event goes where (``topics``), publishing with barrier markers (``publisher``), the
principals' SASL settings (``auth``) and the ACLs (``acls``). The consumer side is
``consumers/``."""
