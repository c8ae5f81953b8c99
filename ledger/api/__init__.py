"""The HTTP API (FastAPI): finance, auditor and publisher endpoints, roles by token."""
