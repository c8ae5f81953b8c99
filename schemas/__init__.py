"""Event contracts: the Avro schemas (``<type>.v<n>.avsc``) and their codec.

Modules: ``codec`` (single-object encode/decode, ``DecodeError``/``EncodeError``),
``registry`` (schemas by fingerprint, reader per type), ``fingerprint`` (Parsing Canonical
Form, CRC-64-AVRO), ``compat`` (writer→reader resolvability), ``validate`` (the record
checker shared with the JSON form), ``records`` (fast record→event), ``times``,
``examples`` (the events behind the golden vectors; ledger/docgen.py writes them and
docs/events.md), ``bench``. See docs/events.md.
"""
