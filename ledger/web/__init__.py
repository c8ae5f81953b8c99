"""The finance dashboard: server-rendered pages (Jinja2), static assets shipped here."""
