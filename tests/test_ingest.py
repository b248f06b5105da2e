"""Ingestion: every input format becomes one document table; bad input is a clear ConfigError."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlm_ray.corpus.ingest import read_corpus, read_corpus_bytes, write_corpus
from rlm_ray.errors import ConfigError


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def jsonl(*records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def check_shape(table):
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("source").type == pa.string()
    assert table.schema.field("text").type == pa.large_string()
    assert table.column_names[:3] == ["id", "source", "text"]
    assert table["id"].to_pylist() == list(range(table.num_rows))


def test_jsonl_one_document_per_line_with_metadata(tmp_path):
    path = write(
        tmp_path / "c.jsonl",
        jsonl(
            {"id": "a7", "text": "héllo", "year": 2020}, {"id": "b9", "text": "world", "year": 2021}
        ),
    )
    table, report = read_corpus(path)
    check_shape(table)
    assert table["text"].to_pylist() == ["héllo", "world"]
    assert table["source"].to_pylist() == [f"{path}:1", f"{path}:2"]
    assert table["year"].to_pylist() == [2020, 2021]
    assert table["meta_id"].to_pylist() == ["a7", "b9"]  # a clashing field is kept, renamed
    assert (report.documents, report.total_chars, report.sources) == (2, 10, 1)
    assert report.replaced_decoding == report.skipped_binary == []


def test_ndjson_picks_the_first_known_text_column(tmp_path):
    path = write(
        tmp_path / "c.ndjson", jsonl({"title": "t", "body": "b1"}, {"title": "u", "body": "b2"})
    )
    table, _ = read_corpus(path)
    assert table["text"].to_pylist() == ["b1", "b2"]
    assert table.column_names == ["id", "source", "text", "title"]


def test_text_field_chooses_the_column(tmp_path):
    path = write(tmp_path / "c.jsonl", jsonl({"text": "short", "abstract": "the abstract"}))
    table, _ = read_corpus(path, text_field="abstract")
    assert table["text"].to_pylist() == ["the abstract"]
    assert table["meta_text"].to_pylist() == ["short"]


def test_missing_text_column_names_the_columns_found(tmp_path):
    path = write(tmp_path / "c.jsonl", jsonl({"title": "t", "n": 1}))
    with pytest.raises(ConfigError, match=r"no text column .*found \['title', 'n'\]"):
        read_corpus(path)
    with pytest.raises(ConfigError, match=r"no column 'summary' \(`text_field`\)"):
        read_corpus(path, text_field="summary")


def test_non_string_text_column_is_an_error(tmp_path):
    path = write(tmp_path / "c.jsonl", jsonl({"text": "a", "n": 1}))
    with pytest.raises(ConfigError, match="text column 'n' holds int64"):
        read_corpus(path, text_field="n")


def test_jsonl_missing_text_becomes_empty(tmp_path):
    path = write(tmp_path / "c.jsonl", jsonl({"text": "a"}, {"other": 1}))
    table, _ = read_corpus(path)
    assert table["text"].to_pylist() == ["a", ""]


def test_jsonl_long_line_beyond_a_block(tmp_path):
    big = "x" * (17 << 20)  # longer than the reader's first block size
    path = write(tmp_path / "c.jsonl", jsonl({"text": "a"}, {"text": big}))
    table, report = read_corpus(path)
    assert report.total_chars == 1 + len(big)


def test_jsonl_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = write(tmp_path / "c.jsonl", b'{"text": "caf\xe9"}\n{"text": "ok"}\n')
    table, report = read_corpus(path)
    assert table["text"].to_pylist() == ["caf\ufffd", "ok"]
    assert report.replaced_decoding == [str(path)]


def test_broken_jsonl_names_the_file(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": "a"}\n{"text": oops}\n')
    with pytest.raises(
        ConfigError, match=r"cannot read .*c\.jsonl as JSONL: JSON parse error"
    ) as e:
        read_corpus(path)
    assert "\n" not in str(e.value)


def test_csv_one_document_per_row_with_metadata(tmp_path):
    path = write(tmp_path / "c.csv", 'content,author,n\n"multi\nline",ann,1\nsecond,bob,2\n')
    table, report = read_corpus(path)
    check_shape(table)
    assert table["text"].to_pylist() == ["multi\nline", "second"]
    assert table["source"].to_pylist() == [f"{path}:1", f"{path}:2"]
    assert table["author"].to_pylist() == ["ann", "bob"]
    assert table["n"].to_pylist() == [1, 2]
    assert report.documents == 2


def test_csv_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = write(tmp_path / "c.csv", b"text,n\ncaf\xe9,1\nok,2\n")
    table, report = read_corpus(path)
    assert table["text"].to_pylist() == ["caf\ufffd", "ok"]
    assert report.replaced_decoding == [str(path)]


def test_broken_csv_names_the_file(tmp_path):
    path = write(tmp_path / "c.csv", "text,n\na,1\nb,2,3\n")
    with pytest.raises(ConfigError, match=r"cannot read .*c\.csv as CSV: CSV parse error"):
        read_corpus(path)


def test_parquet_input_keeps_columns_as_they_are(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"document": ["d1", "d2"], "tags": [["a"], ["b", "c"]]}), path)
    table, report = read_corpus(path)
    check_shape(table)
    assert table["text"].to_pylist() == ["d1", "d2"]
    assert table["tags"].to_pylist() == [["a"], ["b", "c"]]
    assert table["source"].to_pylist() == [f"{path}:1", f"{path}:2"]


def test_corrupt_parquet_is_an_error(tmp_path):
    path = write(tmp_path / "c.parquet", b"PAR1 not really")
    with pytest.raises(ConfigError, match=r"cannot read .*c\.parquet as Parquet"):
        read_corpus(path)


def test_write_corpus_round_trip(tmp_path):
    path = write(tmp_path / "c.jsonl", jsonl({"text": "a", "year": 1}, {"text": "bb", "year": 2}))
    table, report = read_corpus(path)
    write_corpus(table, tmp_path / "corpus.parquet")
    again, again_report = read_corpus(tmp_path / "corpus.parquet")
    assert again.equals(table, check_metadata=True)
    assert (again_report.documents, again_report.total_chars) == (2, 3)


def test_write_corpus_rejects_other_tables(tmp_path):
    with pytest.raises(ConfigError, match="needs a table from read_corpus"):
        write_corpus(pa.table({"text": ["a"]}), tmp_path / "x.parquet")


def test_single_text_file(tmp_path):
    path = write(tmp_path / "notes.log", "one document\nwith lines\n")
    table, report = read_corpus(path)
    check_shape(table)
    assert table["source"].to_pylist() == [str(path)]
    assert table["text"].to_pylist() == ["one document\nwith lines\n"]
    assert report.sources == 1


def tree(root):
    write(root / "README.md", "readme")
    write(root / "docs" / "guide.md", "guide")
    write(root / "docs" / "api" / "ref.rst", "ref")
    write(root / "src" / "main.py", "print(1)")
    write(root / "build" / "out.txt", "generated")
    write(root / "data.bin", "not a text suffix")
    write(root / ".git" / "HEAD.txt", "hidden dir")
    write(root / ".hidden.md", "hidden file")
    return root


def sources(table, root):
    return [s.removeprefix(f"{root}/") for s in table["source"].to_pylist()]


def test_directory_walk_reads_text_files_and_skips_hidden(tmp_path):
    root = tree(tmp_path / "repo")
    table, report = read_corpus(root)
    check_shape(table)
    assert sources(table, root) == [
        "README.md",
        "build/out.txt",
        "docs/guide.md",
        "docs/api/ref.rst",
        "src/main.py",
    ]
    assert report.sources == 5 and report.documents == 5


@pytest.mark.parametrize(
    "include, exclude, expected",
    [
        (["*.md"], [], ["README.md", "docs/guide.md"]),
        (["docs/**"], [], ["docs/guide.md", "docs/api/ref.rst"]),
        ([], ["build"], ["README.md", "docs/guide.md", "docs/api/ref.rst", "src/main.py"]),
        ([], ["docs/**", "*.py"], ["README.md", "build/out.txt"]),
        (["*.bin"], [], ["data.bin"]),
    ],
)
def test_directory_include_exclude(tmp_path, include, exclude, expected):
    root = tree(tmp_path / "repo")
    table, _ = read_corpus(root, include=include, exclude=exclude)
    assert sorted(sources(table, root)) == sorted(expected)


def test_non_utf8_file_is_decoded_and_counted(tmp_path):
    write(tmp_path / "good.txt", "fine")
    bad = write(tmp_path / "latin1.txt", "café".encode("latin-1"))
    table, report = read_corpus(tmp_path)
    assert table["text"].to_pylist() == ["fine", "caf\ufffd"]
    assert report.replaced_decoding == [str(bad)]


def test_binary_file_is_skipped_and_listed(tmp_path):
    write(tmp_path / "a.txt", "text")
    blob = write(tmp_path / "blob.txt", b"\x89PNG\x00\x00rest")
    table, report = read_corpus(tmp_path)
    assert table["text"].to_pylist() == ["text"]
    assert report.skipped_binary == [str(blob)]
    assert report.sources == 2 and report.documents == 1


def test_empty_corpus_says_what_was_skipped(tmp_path):
    write(tmp_path / "blob.txt", b"\x00\x01")
    write(tmp_path / "empty.md", "")
    with pytest.raises(ConfigError, match=r"empty corpus.*2 files read.*skipped 1 binary: .*blob"):
        read_corpus(tmp_path)


@pytest.mark.parametrize(
    "name, data",
    [
        ("empty.txt", ""),
        ("empty.jsonl", ""),
        ("blank.jsonl", jsonl({"text": ""})),
        ("e.csv", "text\n"),
    ],
)
def test_empty_inputs_are_errors(tmp_path, name, data):
    with pytest.raises(ConfigError, match="empty corpus"):
        read_corpus(write(tmp_path / name, data))


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_corpus(tmp_path / "nope.jsonl")


def test_stdin_bytes_sniffed_and_given(tmp_path):
    table, _ = read_corpus_bytes(b"  plain text from a pipe")
    assert table["source"].to_pylist() == ["stdin"]
    assert table["text"].to_pylist() == ["  plain text from a pipe"]

    table, _ = read_corpus_bytes(jsonl({"text": "a", "k": 1}, {"text": "b", "k": 2}).encode())
    assert table["source"].to_pylist() == ["stdin:1", "stdin:2"]
    assert table["k"].to_pylist() == [1, 2]

    table, _ = read_corpus_bytes(b"body,k\nx,1\n", format="csv", name="-")
    assert table["text"].to_pylist() == ["x"] and table["source"].to_pylist() == ["-:1"]

    write_corpus(table, tmp_path / "c.parquet")
    again, _ = read_corpus_bytes((tmp_path / "c.parquet").read_bytes())
    assert again.equals(table, check_metadata=True)


def test_stdin_errors():
    with pytest.raises(ConfigError, match="`format` must be one of"):
        read_corpus_bytes(b"x", format="xml")
    with pytest.raises(ConfigError, match="empty corpus"):
        read_corpus_bytes(b"\x00binary")


def test_parquet_binary_text_is_decoded_with_replacement(tmp_path):
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok", b"caf\xe9"], pa.binary())}), path)
    table, report = read_corpus(path)
    assert table["text"].to_pylist() == ["ok", "caf\ufffd"]
    assert report.replaced_decoding == [str(path)]
