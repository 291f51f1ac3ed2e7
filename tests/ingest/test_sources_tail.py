"""Following a log file: new lines, partial lines, both kinds of rotation, and resuming from a stored position
(same file, rotated while down, gone) with neither lost nor repeated lines; the offsets file."""

from __future__ import annotations

import json
import os

import pytest

from detector.ingest.lines import LineSplitter
from detector.ingest.offsets import OffsetBook, offsets_path_for, source_key
from detector.ingest.sources import stream_chunks
from detector.ingest.tail import FileTailer, Position


def drain(tailer: FileTailer, polls: int = 20) -> list[bytes]:
    """Every line the tailer hands on within ``polls`` quiet polls (bounded)."""
    out: list[bytes] = []
    quiet = 0
    for _ in range(10_000):
        chunk = tailer.poll()
        if chunk is None:
            quiet += 1
            if quiet >= polls:
                break
            continue
        quiet = 0
        out.extend(chunk.lines)
        tailer.last = chunk.position
    return out


def read_all(log, *lines: str) -> Position:
    """Write ``lines``, read them with a tailer that then stops: the position a restart would get."""
    append(log, *lines)
    t = FileTailer(log)
    drain(t)
    t.close()
    return t.last


def append(path, *lines: str, end: str = "\n") -> None:
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines[:-1]) + (lines[-1] + end if lines else ""))


def test_new_lines_are_read_and_a_partial_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "access.log"
    append(log, "a", "b")
    t = FileTailer(log)
    assert drain(t) == [b"a", b"b"]
    append(log, "c", "par", end="")
    assert drain(t) == [b"c"]
    assert t.last.offset == len(b"a\nb\nc\n") and t.last.lines == 3
    append(log, "tial")
    assert drain(t) == [b"partial"]
    assert t.last.offset == log.stat().st_size


@pytest.mark.parametrize("existing", [[], ["old"]])
def test_from_end_skips_what_was_there_but_not_a_file_that_appears_later(tmp_path, existing):
    log = tmp_path / "access.log"
    if existing:
        append(log, *existing)
    t = FileTailer(log, from_end=True)
    assert drain(t, 2) == []
    append(log, "new")
    assert drain(t) == [b"new"]


def test_rename_and_create_reads_the_old_file_to_its_end_then_the_new_one(tmp_path):
    log = tmp_path / "access.log"
    append(log, "1", "2")
    t = FileTailer(log, rotate_wait=2)
    assert drain(t) == [b"1", b"2"]
    os.rename(log, tmp_path / "access.log.1")
    append(log, "4")  # the new file
    append(tmp_path / "access.log.1", "3")  # nginx writes to the old one until it reopens
    assert drain(t) == [b"3", b"4"]
    append(log, "5")
    assert drain(t) == [b"5"]
    assert t.counts["rotated"] == 1 and t.last.lines == 2


def test_rotation_while_the_new_file_is_not_there_yet(tmp_path):
    log = tmp_path / "access.log"
    append(log, "1")
    t = FileTailer(log)
    assert drain(t) == [b"1"]
    os.rename(log, tmp_path / "access.log.1")
    assert drain(t, 5) == []
    append(log, "2")
    assert drain(t) == [b"2"]


def test_copytruncate_starts_over(tmp_path):
    log = tmp_path / "access.log"
    append(log, "first line", "second line")
    t = FileTailer(log)
    assert len(drain(t)) == 2
    with open(log, "r+") as fh:
        fh.truncate(0)
    append(log, "x")
    assert drain(t) == [b"x"]
    assert t.counts["truncated"] == 1


def test_copytruncate_noticed_after_the_file_grew_past_the_old_offset(tmp_path):
    log = tmp_path / "access.log"
    append(log, "aaaa")
    t = FileTailer(log)
    assert drain(t) == [b"aaaa"]
    with open(log, "w") as fh:  # truncated and written again, longer than before, between two polls
        fh.write("bbbbbbbb\nc\n")
    assert drain(t) == [b"bbbbbbbb", b"c"]
    assert t.counts["truncated"] == 1


def test_resume_from_a_position_reads_only_what_came_after(tmp_path):
    log = tmp_path / "access.log"
    stored = read_all(log, "1", "2")
    append(log, "3")
    again = FileTailer(log, stored)
    assert drain(again) == [b"3"]
    assert again.counts["resumed"] == 1 and again.last.lines == 3


def test_resume_after_a_rotation_while_down_finishes_the_rotated_file_first(tmp_path):
    log = tmp_path / "access.log"
    stored = read_all(log, "1", "2")
    append(log, "3")  # written while detector was down
    os.rename(log, tmp_path / "access.log.1")
    append(log, "4")
    again = FileTailer(log, stored)
    assert drain(again) == [b"3", b"4"]


def test_resume_when_the_old_file_is_gone_reads_the_new_one_and_counts_the_loss(tmp_path):
    log = tmp_path / "access.log"
    stored = read_all(log, "1", "2")
    os.remove(log)
    append(log, "new file, longer than the old one was")
    again = FileTailer(log, stored)
    assert drain(again) == [b"new file, longer than the old one was"]
    assert again.counts["lost"] == 1


def test_a_position_of_the_same_inode_with_other_first_bytes_is_not_trusted(tmp_path):
    log = tmp_path / "access.log"
    stored = read_all(log, "hello", "world")
    with open(log, "w") as fh:  # copytruncate while down, then written again past the offset
        fh.write("other content\nmore lines\n")
    again = FileTailer(log, stored)
    assert drain(again) == [b"other content", b"more lines"]


def test_chunks_are_capped_and_every_position_is_a_line_boundary(tmp_path):
    log = tmp_path / "access.log"
    lines = [f"line {i:04d} " + "x" * (i % 17) for i in range(1000)]
    append(log, *lines)
    t = FileTailer(log, max_lines=64)
    data = log.read_bytes()
    seen = 0
    for _ in range(100):
        chunk = t.poll()
        if chunk is None:
            break
        assert len(chunk.lines) <= 64
        seen += len(chunk.lines)
        pos = chunk.position
        assert pos.lines == seen and data[:pos.offset].count(b"\n") == seen and data[pos.offset - 1] == ord("\n")
    assert seen == 1000


def test_offsets_survive_a_new_book_and_bad_files_are_ignored(tmp_path):
    path = tmp_path / "detector.offsets.json"
    book = OffsetBook(path)
    key = source_key(tmp_path / "access.log")
    pos = Position(1, 2, 300, 4, b"{\"msec\"")
    book.commit(key, pos)
    book.close()
    assert OffsetBook(path).get(key) == pos
    assert json.loads(path.read_text())["version"] == 1
    path.write_text("{not json")
    assert OffsetBook(path).get(key) is None
    assert offsets_path_for(str(tmp_path / "d.db"), None) == tmp_path / "d.offsets.json"


def test_line_splitter_cuts_runaway_lines():
    s = LineSplitter(max_line=8)
    assert s.feed(b"0123456789") == [b"0123456789"] and s.cut == 1
    assert s.feed(b"ab\ncd") == [b"ab"] and s.flush() == [b"cd"]


@pytest.mark.parametrize("size", [1, 3, 1 << 16])
def test_stream_chunks_hand_on_lines_as_they_come(size):
    import io

    data = b"".join(b"%d\n" % i for i in range(100)) + b"last"
    got = [line for chunk in stream_chunks(io.BytesIO(data).read1, max_lines=7, read_bytes=size) for line in chunk]
    assert got == [b"%d" % i for i in range(100)] + [b"last"]
