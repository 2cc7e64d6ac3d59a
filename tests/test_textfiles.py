"""`memento.textfiles`: the one reader of users' text, JSON and JSON-lines files; every fault names file, line and
byte offset, and the caller's error class is kept."""

from __future__ import annotations

import gzip

import pytest

from memento import textfiles
from memento.textfiles import FileFormatError


def test_lines_with_their_byte_offsets_and_gzip(tmp_path):
    data = '{"a": "é"}\r\n\n{"b": 2}\n'.encode()
    plain, packed = tmp_path / "rows.jsonl", tmp_path / "rows.jsonl.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    for path in (plain, packed):
        assert list(textfiles.read_lines(path)) == [(1, 0, '{"a": "é"}'), (2, 13, ""), (3, 14, '{"b": 2}')]
        assert list(textfiles.read_jsonl(path)) == [(1, {"a": "é"}), (3, {"b": 2})]


def test_not_utf8_names_the_line_and_the_byte(tmp_path):
    data = b'{"a": 1}\n{"b": "\xff"}\n'
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    message = f"{path}:2: not UTF-8: byte 0xff at byte offset {data.index(0xFF)} of the file; expected UTF-8 text"
    with pytest.raises(FileFormatError) as caught:
        list(textfiles.read_jsonl(path))
    assert str(caught.value) == message
    for read in (textfiles.read_text, textfiles.read_json):
        with pytest.raises(FileFormatError) as caught:
            read(path)
        assert str(caught.value) == message


def test_invalid_json_is_reported_where_it_is(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"b": 2\n{"c": x}\n')
    with pytest.raises(ValueError) as caught:
        list(textfiles.read_jsonl(path, error=ValueError))
    assert type(caught.value) is ValueError  # the caller's class
    assert str(caught.value) == f"{path}:2: invalid JSON at column 8 (byte offset 16), where the line ends: " + (
        "Expecting ',' delimiter"
    )
    path.write_text('{"a": 1}\n{"c": x}\n')
    with pytest.raises(FileFormatError, match=r"rows.jsonl:2: invalid JSON at column 7 \(byte offset 15\): Expecting"):
        list(textfiles.read_jsonl(path))
    document = tmp_path / "doc.json"
    document.write_text('{\n  "a": [1,\n  "é" 2]\n}\n')  # line 3 starts at byte 13; "é" is 2 bytes
    with pytest.raises(FileFormatError, match=r"doc.json:3: invalid JSON at column 7 \(byte offset 20\): Expecting"):
        textfiles.read_json(document)


def test_a_gz_that_is_not_gzip_or_is_cut_off(tmp_path):
    fake, cut = tmp_path / "fake.jsonl.gz", tmp_path / "cut.jsonl.gz"
    fake.write_text('{"a": 1}\n')
    cut.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:30])
    with pytest.raises(FileFormatError, match=r"fake.jsonl.gz: not a readable gzip file \(Not a gzipped file"):
        list(textfiles.read_jsonl(fake))
    with pytest.raises(FileFormatError, match=r"cut.jsonl.gz: not a readable gzip file \(Compressed file ended"):
        list(textfiles.read_jsonl(cut))


def test_text_keeps_read_texts_newlines(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_bytes("one\r\ntwo\rthree é\n".encode())
    assert textfiles.read_text(path) == path.read_text(encoding="utf-8") == "one\ntwo\nthree é\n"
