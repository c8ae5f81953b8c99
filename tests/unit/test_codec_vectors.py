"""Golden vectors: the codec reproduces schemas/vectors/*.hex byte for byte, and back.

The vectors are frozen; a failure here means the wire format changed, which breaks every
publisher in another language. Never regenerate them to make this pass.
"""

from __future__ import annotations

import json

import pytest

from ledger.docgen import DOCS_PATH, render_docs
from ledger.domain.events import EVENT_TYPES
from ledger.jsonform import event_from_json, event_to_json
from schemas.codec import decode, encode
from schemas.examples import EXAMPLES, VECTORS_DIR, json_text

VECTORS = sorted(p.name.removesuffix(".json") for p in VECTORS_DIR.glob("*.json"))


def test_one_vector_per_event_type():
    assert sorted(v.split(".")[0] for v in VECTORS) == sorted(EVENT_TYPES)
    assert sorted(e.TYPE for e in EXAMPLES) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("name", VECTORS)
def test_vector_encodes_byte_for_byte_and_decodes_back(name):
    text = (VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8")
    expected = bytes.fromhex((VECTORS_DIR / f"{name}.hex").read_text().strip())
    event = event_from_json(json.loads(text))
    assert name.split(".")[0] == event.TYPE
    assert encode(event) == expected
    assert decode(expected) == event
    assert json_text(event_to_json(decode(expected))) == text


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.TYPE)
def test_examples_are_the_vectors(event):
    text = (VECTORS_DIR / f"{event.TYPE}.v1.json").read_text(encoding="utf-8")
    assert event_from_json(json.loads(text)) == event


def test_docs_events_md_is_generated_from_the_vectors():
    docs = DOCS_PATH.read_text(encoding="utf-8")
    for name in VECTORS:
        assert (VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8").rstrip() in docs
        assert (VECTORS_DIR / f"{name}.hex").read_text().strip() in docs
    assert docs == render_docs(), "docs/events.md is stale: run python -m ledger.docgen docs"
