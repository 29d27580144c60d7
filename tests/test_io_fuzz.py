"""Property tests: a mutated model file loads as a valid Network or raises ModelFileError, fast.

The property itself (``check_bytes``) lives in the atheris harness ``fuzz/fuzz_load.py``; here
hypothesis drives it with structured mutations. The default run is short. For more examples
set ``LAYERPROP_FUZZ_EXAMPLES=N`` or pass ``--fuzz`` (2000 per test unless the variable is set).
"""

import functools
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from _harnesses import load_harness

from layerprop import io as lpio

EXAMPLES = int(os.environ.get("LAYERPROP_FUZZ_EXAMPLES", "0")) or 200
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         derandomize="LAYERPROP_FUZZ_EXAMPLES" not in os.environ,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


harness = load_harness("fuzz_load")


@functools.cache
def valid_file(kind: str) -> bytes:
    """The harness's small valid "model" or "checkpoint" file (sparse, with bias)."""
    model, checkpoint = harness.seed_files(Path(tempfile.mkdtemp(prefix="layerprop-seed-")))
    return (model if kind == "model" else checkpoint).read_bytes()


def check_outcome(data: bytes) -> None:
    for outcome in harness.check_bytes(data):
        event(outcome)


kinds = st.sampled_from(["model", "checkpoint"])


@fuzz_settings
@given(kind=kinds, in_body=st.booleans(),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_mutations(kind, in_body, edits):
    """Random bytes changed anywhere, or only in the tensor data (which often still loads)."""
    data = bytearray(valid_file(kind))
    start = 8 + int.from_bytes(data[:8], "little") if in_body else 0
    for i, value in edits:
        data[start + i % (len(data) - start)] = value
    check_outcome(bytes(data))


@fuzz_settings
@given(kind=kinds, cut=st.integers(0, 10**6), tail=st.binary(max_size=32))
def test_truncations_and_appends(kind, cut, tail):
    data = valid_file(kind)
    check_outcome(data[:cut % (len(data) + 1)] + tail)


@fuzz_settings
@given(kind=kinds, prefix=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 4096)))
def test_header_length_field(kind, prefix):
    data = valid_file(kind)
    check_outcome(prefix.to_bytes(8, "little") + data[8:])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def paths(node, prefix=()):
    """Every location in a JSON document, as a tuple of keys/indices."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from paths(child, prefix + (key,))


def mutate(doc, draw):
    """Replace, delete or add at one random location of a JSON document."""
    locations = list(paths(doc))[1:]
    if not locations:
        return draw(json_values)
    where = draw(st.sampled_from(locations))
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[where[-1]] = draw(json_values)
    elif action == "delete":
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(json_values)
    else:
        parent.append(draw(json_values))
    return doc


def split(data: bytes):
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


@fuzz_settings
@given(kind=kinds, data=st.data())
def test_header_json_mutations(kind, data):
    header, body = split(valid_file(kind))
    check_outcome(join(mutate(header, data.draw), body))


@fuzz_settings
@given(kind=kinds, data=st.data())
def test_layerprop_metadata_mutations(kind, data):
    header, body = split(valid_file(kind))
    settings_doc = json.loads(header["__metadata__"]["layerprop"])
    for _ in range(data.draw(st.integers(1, 3))):
        settings_doc = mutate(settings_doc, data.draw)
    header["__metadata__"]["layerprop"] = json.dumps(settings_doc)
    check_outcome(join(header, body))


def test_unmutated_files_are_read():
    assert harness.check_bytes(valid_file("model")) == [
        "load: read", "read_info: read", "load_checkpoint: refused"]
    assert harness.check_bytes(valid_file("checkpoint")) == [
        "load: read", "read_info: read", "load_checkpoint: read"]


def test_harness_catches_a_reader_that_breaks_the_property(monkeypatch):
    """The property is not vacuous: an exception other than ModelFileError fails it."""
    def crash(path):
        raise IndexError("boom")

    monkeypatch.setattr(lpio, "load", crash)
    with pytest.raises(IndexError):
        harness.check_bytes(valid_file("model"))
