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

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
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
