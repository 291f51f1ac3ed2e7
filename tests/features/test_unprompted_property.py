"""``unprompted_read_seconds_top_ua``, property-based: whatever a window holds, the count is at most the
different reads of one user agent and the seconds of the window; a poll answer with a body (a prompt)
never raises anyone's count, wherever it falls; and what a program reads right after its own poll
answer (within ``PROMPTED_WITHIN``) never counts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.features import functions as f
from detector.features.view import ClientEvents

from ..conftest import events

AT, WIDTH = 100.0, 60.0
CLIENTS = ("a", "b")
# a client that holds polls, so that /v1/poll is the window's long-poll endpoint
ANCHOR = [dict(client="anchor", start=s, end=s + 25.0, status=204) for s in (45.0, 70.2)]

reads = st.builds(lambda c, ua, t, p, q, m: dict(client=c, ua=ua, start=t, end=t + 0.05, path=p, query=q, method=m),
                  st.sampled_from(CLIENTS), st.sampled_from(("A", "B")), st.floats(40.5, 99.9),
                  st.sampled_from(("/", "/x", "/v1/messages/1", "/v1/messages/2")),
                  st.sampled_from(("", "page=1", "page=2")), st.sampled_from(("GET", "GET", "POST")))
answers = st.builds(lambda c, ua, t, d: dict(client=c, ua=ua, start=t - d, end=t, status=200, bytes=300),
                    st.sampled_from(CLIENTS), st.sampled_from(("A", "B")), st.floats(40.5, 99.9),
                    st.floats(0.01, 1.0))


def _count(rows: list[dict]) -> np.ndarray:
    ev = ClientEvents.from_frame(events(ANCHOR + rows), AT, WIDTH, clients=np.array(CLIENTS, dtype=object))
    return f.unprompted_read_seconds_top_ua(ev)


@settings(max_examples=150, deadline=None)
@given(st.lists(reads, max_size=30), st.lists(answers, max_size=6))
def test_bounded_by_one_agents_different_reads_and_the_windows_seconds(read_rows, answer_rows):
    out = _count(read_rows + answer_rows)
    for i, c in enumerate(CLIENTS):
        different = max((len({(r["path"], r["query"]) for r in read_rows
                              if r["client"] == c and r["ua"] == ua and r["method"] == "GET"})
                         for ua in ("A", "B")), default=0)
        assert 0 <= out[i] <= min(different, WIDTH / f.WALK_STEP)


@settings(max_examples=150, deadline=None)
@given(st.lists(reads, max_size=30), st.lists(answers, max_size=4), answers)
def test_a_prompt_never_raises_a_count(read_rows, answer_rows, prompt):
    before = _count(read_rows + answer_rows)
    after = _count(read_rows + answer_rows + [prompt])
    assert (after <= before).all()


@settings(max_examples=150, deadline=None)
@given(st.lists(reads, max_size=30), st.lists(answers, max_size=4), answers, st.floats(0.0, 0.99 * f.PROMPTED_WITHIN))
def test_what_a_poll_answer_announced_never_counts(read_rows, answer_rows, prompt, after):
    # a poll answer and, within PROMPTED_WITHIN, a read of something never asked before by the same agent
    t = prompt["end"] + after
    fetch = dict(client=prompt["client"], ua=prompt["ua"], start=t, end=t + 0.05, path="/v1/messages/announced")
    before = _count(read_rows + answer_rows)
    assert (_count(read_rows + answer_rows + [prompt, fetch]) <= before).all()
