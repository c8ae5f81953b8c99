"""Helpers shared by the tests: real-server plumbing (Kafka topics, consumer processes,
scratch databases), hypothesis strategies, event streams, tampering, views and API
clients. Test modules import from here, never from each other."""
