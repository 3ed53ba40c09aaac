"""``load_document``: JSON objects take the json module's fast path and read exactly as the YAML
parser reads them; YAML still loads; hostile nesting gets a clear error, not a crash."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.datasets import canonical_json, load_document
from mesh.errors import InvalidRequest

from .catalog_fixtures import DATASETS

# Text without control characters: the YAML parser reads some of them otherwise than JSON says
# (U+0085 NEL as a line break, so as a space); the fast path reads them as JSON does.
texts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(texts, json_values, max_size=6))
def test_a_json_object_reads_as_the_yaml_parser_reads_it(doc):
    """Where the YAML parser reads the JSON at all (it refuses some characters JSON allows,
    such as U+007F), it reads the same value; the fast path reads every JSON object."""
    raw = canonical_json(doc)             # NFC-normalised: compare with what it says
    expected = json.loads(raw)
    assert load_document(raw) == expected
    try:
        by_yaml = yaml.safe_load(raw.decode())
    except yaml.YAMLError:
        return
    assert by_yaml == expected


def test_every_catalog_fixture_reads_the_same_either_way():
    for _, doc in DATASETS:
        raw = canonical_json(doc)
        assert load_document(raw) == yaml.safe_load(raw.decode())


def test_control_characters_read_as_json_says():
    """YAML reads U+0085 in a JSON string as a line break folded to a space; JSON keeps it."""
    raw = canonical_json({"note": "a\x85b\x7f"})
    assert load_document(raw) == {"note": "a\x85b\x7f"}


def test_yaml_and_yaml_flow_style_still_load():
    assert load_document(b"id: himeji-aed\ntitle:\n  ja: AED\n") == {
        "id": "himeji-aed", "title": {"ja": "AED"}}
    assert load_document(b"{id: himeji-aed, themes: [\xe9\x98\xb2\xe7\x81\xbd]}") == {
        "id": "himeji-aed", "themes": ["防災"]}


@pytest.mark.parametrize("raw", [b'{"a":' * 100_000, b'{"a":[' * 5_000 + b"1" + b"]}" * 5_000,
                                 b"[" * 100_000, b"a: [1\nb: 2"])
def test_hostile_or_broken_documents_are_refused_clearly(raw):
    with pytest.raises(InvalidRequest) as info:
        load_document(raw)
    assert info.value.message_ja
