"""The commission ledger. Importing it first picks the domain's build: compiled with mypyc
when a current one is installed, else the plain Python (ledger/compiled.py)."""

from ledger import compiled

compiled.activate()
