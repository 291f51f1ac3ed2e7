"""Ingest: pure parsers that turn log lines into columnar event batches, and the sources that feed them."""

from detector.ingest.formats import EVENT_COLUMNS, FORMATS, ParsedBatch, detect_format, empty_events, parse_lines

__all__ = ["EVENT_COLUMNS", "FORMATS", "ParsedBatch", "detect_format", "empty_events", "parse_lines"]
