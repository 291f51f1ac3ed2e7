"""Pure feature functions: ``ClientEvents`` in, one value per client out.

Each function looks only at the window it is given, so the same function serves replay, live
scoring and training. NaN means "not measurable in this window" (for example hold time from a log
format without durations); the model imputes it, so a format that lacks a field degrades, not crashes.
"""

from __future__ import annotations

import numpy as np

from detector.features.view import (NOT_REPEATABLE, ClientEvents, counted_agents, distinct_per_group, group_max,
                                   group_median, refused)

ABORTED = 499
THROTTLED = 429
NO_CONTENT = 204
PARTIAL = 206  # a range of a resource: a viewer fetching a file by parts asks the same URL many times
#: Repeats of one read that do not count (``_repeats``): asking for something once or twice more is
#: ordinary (a person reloading a page that seems stuck).
ONCE_AGAIN = 2
#: Seconds after the first answer to a read before asking for it again is a repeat (``_repeats``): the tabs
#: of one browser on one channel each poll and each fetch the message they were sent, within a moment of
#: each other; a loop or a replay keeps asking long after.
AGAIN_AFTER = 1.0
#: An empty answer within this share of the server's hold time came back early (see ``early_empty...``).
EARLY = 0.25
#: Seconds after an answer with a body from the long-poll endpoint within which the same program's reads
#: elsewhere count as prompted by it (``unprompted_read_seconds_top_ua``): a consumer fetches the messages its
#: poll announced at once, a browser its newest one within half a second.
PROMPTED_WITHIN = 2.0
#: ``unprompted_read_seconds_top_ua`` counts the seconds in which a program asked for something new: a page load
#: asks for all its files within a second or two, whatever their number; a walk goes on second after second.
WALK_STEP = 1.0


def _per_minute(ev: ClientEvents, counts: np.ndarray) -> np.ndarray:
    return counts * 60.0 / ev.width


def _timed(ev: ClientEvents, values: np.ndarray) -> np.ndarray:
    """``values``, NaN for clients none of whose requests carries a duration (formats without one)."""
    return np.where(ev.total(np.isnan(ev.duration).astype(np.float64)) == ev.count, np.nan, values)


def _quick(ev: ClientEvents) -> np.ndarray:
    """Requests answered in under a second (a long poll is held longer; no duration: not quick)."""
    return np.nan_to_num(ev.duration, nan=np.inf) < 1.0


def _per_ua(ev: ClientEvents, values: np.ndarray) -> np.ndarray:
    return values / np.maximum(ev.agents, 1.0)


def requests_per_minute(ev: ClientEvents) -> np.ndarray:
    """Requests that ended in the window, scaled to one minute."""
    return _per_minute(ev, ev.count)


def user_agents(ev: ClientEvents) -> np.ndarray:
    """Distinct user agents not only refused (``ClientEvents.agents``): an office behind one NAT shows many,
    one abusive process one, one rotating its user agent on refused requests none."""
    return ev.agents.copy()


def requests_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Requests per minute per distinct user agent: a NAT's volume spread over its many browsers."""
    return _per_ua(ev, requests_per_minute(ev))


def _matching_per_ua_per_minute(ev: ClientEvents, mask: np.ndarray) -> np.ndarray:
    return _per_ua(ev, _per_minute(ev, ev.total(mask.astype(np.float64))))


def aborts_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Requests the client gave up on (nginx 499) per minute per user agent."""
    return _matching_per_ua_per_minute(ev, ev.status == ABORTED)


def client_errors_top_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """4xx answers other than 429 and 499 (401, 403, 404, ...) per minute: those of the client's most
    refused user agent among the ones also served, plus those of user agents never served (strings sent
    along, a rotation's: see ``ClientEvents.agents``).

    Refusals are rare in legitimate use, so unlike the rates they are not spread over the address's
    other user agents: a scraper's 404s on an address where a browser tab also polls would count half,
    and a client could dilute its failed logins with a few decoy agents' ordinary requests. A prefix row
    (``fleet_ua`` set) stays per served program (address and agent), as the rates are: there the most
    refused program is one phone's script, which must not stand for its carrier's whole pool (the
    prefix's summed refusals are ``fleet_client_errors_per_ua_per_minute``).
    """
    bad = refused(ev.status)
    if ev.fleet_ua is not None:
        return _matching_per_ua_per_minute(ev, bad)
    return _per_minute(ev, _refusals_top_ua(ev, bad, ~bad))


def _refusals_top_ua(ev: ClientEvents, bad: np.ndarray, served: np.ndarray) -> np.ndarray:
    """Per client, the refusals (``bad`` events) of its most refused user agent among those with a
    ``served`` event, plus those of its user agents with none."""
    refusals, owner = ev.by_agent(bad.astype(np.float64))
    was_served = ev.by_agent(served.astype(np.float64))[0] > 0
    out = np.bincount(owner, weights=np.where(was_served, 0.0, refusals), minlength=ev.n)
    return out + group_max(np.where(was_served, refusals, 0.0), owner, ev.n)


def refusals_top_ua(ev: ClientEvents) -> np.ndarray:
    """Refused attempts (4xx but 429 and 499) in the window, counted as ``client_errors_top_ua_per_minute``
    counts refusals but not scaled to a minute, and a read refused again counted once: over five minutes, a
    login tried every 10–20 s (15–30 writes) or a scan of a new path every 10 s (30), each within what one
    minute allows a person who mistypes a password (the ceilings' floor, 6 a minute: ``AnomalyModel``).

    What adds up for a low and slow client is new attempts: each write (another password, another code)
    and each new read (another path, another id). A program asking again for what was refused is stuck,
    not probing: a tab whose session expired re-polls every 30 s, a page asks for its missing logo on every
    view (37 times in 23 minutes in the NASA log); how fast it asks is the 10 s and 60 s counts' business.
    (In a log that names no methods every request is a read: a trickle of logins to one path is one attempt.)
    A user agent counts as served where ``ev.served`` says so (the stream holds only refusals for so long:
    ``FeatureStream``) or, without it, where an event of the window was not refused. NaN on a prefix's row:
    summed over a /24 for five minutes, refusals held an address blocked minutes before, and had its
    neighbours blocked with it in an unseen hour.
    """
    if ev.fleet_ua is not None:
        return np.full(ev.n, np.nan)
    bad = refused(ev.status)
    write = ev.request == NOT_REPEATABLE
    attempts = bad & write
    attempts[_first_asked(ev, np.flatnonzero(bad & ~write))] = True
    return _refusals_top_ua(ev, attempts, ~bad if ev.served is None else ev.served)


def _first_asked(ev: ClientEvents, rows: np.ndarray) -> np.ndarray:
    """Those of ``rows`` (event indices) that are their program's (client and user agent) first asking of
    their request (path and query) among ``rows``."""
    pair = ev.agent_pairs[0]
    rows = rows[np.lexsort((ev.start[rows], ev.request[rows], pair[rows]))]
    program, request = pair[rows], ev.request[rows]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (program[1:] != program[:-1]) | (request[1:] != request[:-1])
    return rows[first]


def throttled_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """429 answers per minute per user agent: a client that keeps coming back despite being throttled."""
    return _matching_per_ua_per_minute(ev, ev.status == THROTTLED)


def server_errors_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """5xx answers per minute per user agent."""
    return _matching_per_ua_per_minute(ev, ev.status >= 500)


def _group_median(ev: ClientEvents, values: np.ndarray, mask: np.ndarray | None = None,
                  order: np.ndarray | None = None) -> np.ndarray:
    code = ev.code if order is None else ev.code[order]
    if mask is not None:
        values, code = values[mask], code[mask]
    ok = ~np.isnan(values)
    return group_median(values[ok], code[ok], ev.n)


def median_hold_seconds(ev: ClientEvents) -> np.ndarray:
    """Median seconds a request was held open (long polls: up to the server's hold time)."""
    return _group_median(ev, ev.duration)


def hold_share(ev: ClientEvents) -> np.ndarray:
    """Median hold as a share of the server's hold time, read off the traffic itself
    (``ClientEvents.population_hold``: the 99th percentile of the durations on the window's long-poll
    endpoint, or of all where it shows none), so that a 25 s and a 55 s
    long-poll service look alike: about 1 for a patient long-poller, near 0 for one that cuts its polls
    or is answered at once."""
    if not ev.population_hold > 0:
        return np.full(ev.n, np.nan)
    return median_hold_seconds(ev) / ev.population_hold


def early_empty_answers_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Answers to polls that carried no message (204, 3xx, or another 2xx without a body such as a HEAD's:
    ``_empty``) and came back within a quarter of the server's hold time, per minute per user agent.

    A long-poll server answers empty only when its hold runs out, unless the client asked for a
    shorter wait: a client collecting early empty answers is short-polling a long-poll endpoint. A
    mobile app asking for 10 s on a 55 s service counts too (about 6 a minute, the model's lowest
    ceiling); one asking for a second or two every few seconds counts far more. The hold time is read
    off the traffic, as in ``hold_share``; NaN without durations. Where the window shows its long-poll
    endpoint (``ClientEvents.poll_paths``) only polls of it count: a beacon or a DELETE answered 204 at
    once is no early answer, nor is a stylesheet answered 304. Where it does not, every 204 counts: an
    outage's quick failures can outnumber the held polls for a while, and a flood of short polls too.
    """
    if not ev.population_hold > 0:
        return np.full(ev.n, np.nan)
    return _matching_per_ua_per_minute(ev, _early_empty(ev))


def _empty(ev: ClientEvents) -> np.ndarray:
    """Per event: an answer that carried no message: a 204, a redirect or "not modified" (3xx), or another
    2xx without a body (a HEAD's, an empty 200) where the log gives response sizes
    (``ClientEvents.bodies_logged``: a format without them reads 0 for every answer)."""
    empty = (ev.status == NO_CONTENT) | ((ev.status >= 300) & (ev.status < 400))
    if ev.bodies_logged:
        empty |= (ev.status >= 200) & (ev.status < 300) & (ev.bytes == 0)
    return empty


def _early_empty(ev: ClientEvents) -> np.ndarray:
    """Per event: an answer to a poll of the window's long-poll endpoint that carried no message
    (``_empty``) and came back within ``EARLY`` of the server's hold time. Where the window shows no
    long-poll endpoint, every 204 that came back so early: nothing then tells a poll from a page's
    stylesheet answered "not modified" (304)."""
    early = np.nan_to_num(ev.duration, nan=np.inf) < EARLY * ev.population_hold
    polls = ev.poll_paths
    return early & _empty(ev) & np.isin(ev.path, polls) if len(polls) else early & (ev.status == NO_CONTENT)


def _time_open(ev: ClientEvents) -> np.ndarray:
    """Per event, the seconds the request was open inside the window ``(at - width, at]`` (0 without a
    duration)."""
    overlap = np.clip(np.minimum(ev.end, ev.at) - np.maximum(ev.start, ev.at - ev.width), 0.0, None)
    return np.nan_to_num(overlap, nan=0.0)


def concurrency_per_ua(ev: ClientEvents) -> np.ndarray:
    """Mean number of open requests over the window, per user agent.

    The time each request overlapped the window, summed and divided by the window's width. Formats
    without durations give NaN.
    """
    held = ev.total(_time_open(ev)) / ev.width
    return _timed(ev, _per_ua(ev, held))


def busiest_agent_concurrency(ev: ClientEvents) -> np.ndarray:
    """Mean open requests of the client's busiest user agent: one program holding dozens of polls.

    An office behind a NAT spreads its polls over many browser builds; a flood sits on one.
    """
    held, owner = ev.by_agent(_time_open(ev) / ev.width)
    return _timed(ev, group_max(held, owner, ev.n))


def open_surge_per_ua(ev: ClientEvents) -> np.ndarray:
    """Requests open now beyond the mean open over the window, per user agent: a client that suddenly holds
    many more requests than it just did. Seen only where the log writes a line when a request starts
    (Envoy's start records, ``FeatureStream``); NaN elsewhere.

    Every other feature waits for a request's end, so forty long polls opened at once show only when they
    are answered, a hold time later; with start records they show at the next tick. A browser or app
    replaces each answered poll with the next one, and the people of a NAT office do so each on their own
    (a message to a team room answers its polls together, and they are asked again together), so what
    they hold open stays near its mean. The mean counts each request's time open inside the window (ended
    requests up to their end, open ones up to now), divided by the window's width; user agents are
    counted over the window's ended requests and the open ones (an open request is not refused).
    """
    if ev.open_code is None:
        return np.full(ev.n, np.nan)
    now = np.bincount(ev.open_code, minlength=ev.n).astype(np.float64)
    held = ev.total(_time_open(ev)) + np.bincount(
        ev.open_code, weights=ev.at - np.maximum(ev.open_start, ev.at - ev.width), minlength=ev.n)
    agents = counted_agents(np.concatenate([ev.code, ev.open_code]), np.concatenate([ev.ua, ev.open_ua]),
                            np.concatenate([ev.status, np.zeros(len(ev.open_code), dtype=ev.status.dtype)]), ev.n)
    return (now - held / ev.width) / np.maximum(agents, 1.0)


def bytes_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Response bytes per minute per user agent: a client replaying a backlog pulls megabytes."""
    return _per_ua(ev, _per_minute(ev, ev.total(ev.bytes)))


def quick_requests_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Requests answered in under a second, per minute per user agent (a long poll is held longer).

    NaN for formats without durations.
    """
    return _timed(ev, _matching_per_ua_per_minute(ev, _quick(ev)))


def population_failing_share(ev: ClientEvents) -> np.ndarray:
    """Share of *all* active clients that got a 5xx or 429 in the window (the same for every client).

    Context, not blame: during an outage everyone's error counts rise, and the model and the policy
    see that everyone's did. Counted over clients, not requests, so one client's retry storm does
    not look like an outage.
    """
    return np.full(ev.n, ev.population_failing / ev.population if ev.population else 0.0)


def _next_gaps(ev: ClientEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gap from each response to the next request of the same client and user agent (clipped at 0).

    Returns the gaps, a mask of the events that have a next request, and the order (by client,
    user agent, start) the gaps are in. Following each user agent apart keeps the interleaved
    requests of an office's many browsers from looking like instant re-polls.
    """
    n = len(ev.code)
    order = np.lexsort((ev.start, ev.ua, ev.code))
    if n < 2:
        return np.zeros(n), np.zeros(n, dtype=bool), order
    start, end, code, ua = ev.start[order], ev.end[order], ev.code[order], ev.ua[order]
    gaps = np.empty(n)
    gaps[:-1] = np.clip(start[1:] - end[:-1], 0.0, None)
    gaps[-1] = np.nan
    valid = np.zeros(n, dtype=bool)
    valid[:-1] = (code[1:] == code[:-1]) & (ua[1:] == ua[:-1])
    return gaps, valid, order


def median_gap_seconds(ev: ClientEvents) -> np.ndarray:
    """Median seconds between a response and the next request of the same browser (re-poll delay)."""
    gaps, valid, order = _next_gaps(ev)
    return _group_median(ev, gaps, valid, order)


def gap_after_error_seconds(ev: ClientEvents) -> np.ndarray:
    """Median seconds before the next request after a 429 or 5xx: a polite client backs off."""
    gaps, valid, order = _next_gaps(ev)
    status = ev.status[order]
    return _group_median(ev, gaps, valid & ((status == THROTTLED) | (status >= 500)), order)


def bytes_per_request(ev: ClientEvents) -> np.ndarray:
    """Mean response body bytes."""
    return ev.total(ev.bytes) / np.maximum(ev.count, 1.0)


def writes_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Requests that change state (a method the log names other than GET, HEAD and OPTIONS: POST, PUT, PATCH,
    DELETE, ...) per minute per user agent: a publisher posts at its own pace, a client flooding writes
    (spam, a stuck retry of a POST, a fake-event generator) at many times any pace the training day saw."""
    return _matching_per_ua_per_minute(ev, ev.request == NOT_REPEATABLE)


def written_paths_per_ua(ev: ClientEvents) -> np.ndarray:
    """Distinct things written to (``writes_per_ua_per_minute``'s methods; the path, record ids taken out:
    ``write_targets``) per user agent; 0 where the log names no methods (every request a read).

    A publisher posts to its one publish URL however fast it goes, and a person to the room in front of
    them, marking message after message read at one target (``/v1/messages/*/read``); a program posting
    to one room or inbox after another by name (spam across rooms, a walk of write endpoints) writes to
    many. The rate of writes cannot tell them apart (a busy publisher writes more often than a spammer),
    what they write to can. A walk over record ids (``PATCH /v1/users/<n>``) is one target here; its
    refusals are what the 4xx counts see.
    """
    writes = ev.request == NOT_REPEATABLE  # as writes_per_ua_per_minute counts them
    targets = np.unique(ev.target[writes], return_inverse=True)[1].reshape(-1)  # hashes -> 0.. (distinct_per_group)
    return _per_ua(ev, distinct_per_group(ev.code[writes], targets, ev.n))


def quick_one_off_agents(ev: ClientEvents) -> np.ndarray:
    """User agents whose only request in the window was answered within a second; NaN for a network
    prefix judged whole (its programs are address and user agent) and for formats without durations.

    A person's browser or app keeps asking (a poll every hold time, a page's assets together), and at a
    hold near a minute its one request a minute is a held poll, not a quick answer; a client sending a
    new user-agent string with each request makes one of these per request, and would otherwise pass
    for an office (every per-user-agent rate divided by its rotation).
    """
    if ev.fleet_ua is not None:
        return np.full(ev.n, np.nan)
    if len(ev.code) == 0:
        return np.zeros(ev.n)
    base = int(ev.ua.max()) + 1
    _, inverse, counts = np.unique(ev.code * base + ev.ua, return_inverse=True, return_counts=True)
    alone = counts[inverse.reshape(-1)] == 1
    return _timed(ev, np.bincount(ev.code[alone & _quick(ev)], minlength=ev.n).astype(np.float64))


def paths_per_ua(ev: ClientEvents) -> np.ndarray:
    """Distinct URI paths per user agent: scanners and scrapers walk many."""
    return _per_ua(ev, ev.distinct(ev.path))


def failed_paths_per_ua(ev: ClientEvents) -> np.ndarray:
    """Distinct URI paths the client was answered an error on (4xx or 5xx, but 429 and 499) per user agent.

    Someone whose page or poll fails asks for the same few things again; a scanner or a scraper walks
    on through paths that fail. During an outage every request fails with a 502, and the refusal and
    5xx counts cannot tell a scanner from a browser retrying its poll (an office of them retries more);
    the number of different things that failed can. A throttled client's 429s are our own doing, and a
    499 is the client giving up.
    """
    failed = refused(ev.status) | (ev.status >= 500)
    return _per_ua(ev, distinct_per_group(ev.code[failed], ev.path[failed], ev.n))


def unprompted_read_seconds_top_ua(ev: ClientEvents) -> np.ndarray:
    """Seconds (``WALK_STEP``) in which the program asked for a read (a path and query asked with a method
    that changes nothing, or with none named: ``request_hashes``) outside the long-poll endpoint(s) that it
    had not asked for before in the window and that no answer of its own polls prompted, for the client's
    user agent with the most such seconds.

    A consumer that fetches every message its poll announces, or a browser its newest one, asks for many
    different things, but each within a moment (``PROMPTED_WITHIN``) of a poll answer with a body. A page
    load asks for its files, however many, within a second or two, and for the same ones on a reload. A
    scraper or a crawler walks on through ids or pages that nothing announced, second after second.
    Counted for one user agent (the one with most), not spread over an office's browsers nor diluted by
    decoys; reads that failed count too (a scraper's 404s on ids that are gone). A read first asked in the
    window's first ``PROMPTED_WITHIN`` seconds is left out, then and when asked again: its prompt may have
    ended before the window (a consumer catching up after an outage fetches dozens of messages on one
    answer). NaN where the window shows no long polling (``ClientEvents.poll_paths``): without it nothing
    can be told prompted. NaN on a network prefix's row (``fleet_ua`` set): the most of one program is that
    program's own, judged on its address's row; taken for the prefix, a scraper on one phone of a carrier's
    pool had the pool's other phones blocked with it.
    """
    polls = ev.poll_paths
    if len(polls) == 0 or ev.fleet_ua is not None:
        return np.full(ev.n, np.nan)
    pair, owner = ev.agent_pairs
    on_poll = np.isin(ev.path, polls)
    answer = np.flatnonzero(on_poll & (ev.status >= 200) & (ev.status < 300) & (ev.bytes > 0))
    # each read's first asking in the window by its program; judged only from PROMPTED_WITHIN s in
    read = _first_asked(ev, np.flatnonzero(~on_poll & (ev.request != NOT_REPEATABLE)))
    read = read[ev.start[read] >= ev.at - ev.width + PROMPTED_WITHIN]
    if len(read) == 0:
        return np.zeros(ev.n)
    # answers (at their end) and reads (at their start) in time order per program, answers first on ties
    when = np.r_[ev.end[answer], ev.start[read]]
    who = np.r_[pair[answer], pair[read]]
    is_read = np.r_[np.zeros(len(answer), dtype=bool), np.ones(len(read), dtype=bool)]
    order = np.lexsort((is_read, when, who))
    when, who, is_read = when[order], who[order], is_read[order]
    # the position of the latest answer before each read (-1 for none yet), if it is the program's own
    last = np.maximum.accumulate(np.where(is_read, -1, np.arange(len(when))))
    own = np.maximum(last, 0)
    prompted = (last >= 0) & (who[own] == who) & (when - when[own] <= PROMPTED_WITHIN)
    new = is_read & ~prompted
    second = np.floor((when[new] - (ev.at - ev.width)) / WALK_STEP).astype(np.int64)  # 0, 1, ... of the window
    return group_max(distinct_per_group(who[new], second, len(owner)), owner, ev.n)


def unprompted_read_seconds_per_minute(ev: ClientEvents) -> np.ndarray:
    """``unprompted_read_seconds_top_ua`` per minute of the window: over 10 s, six times the seconds.

    A scraper walking on at half a read a second shows five such seconds in its first 10 s, past what a
    page load and a reload give (two or three), while over a minute it needs as long to pass the
    training day's most as that takes; per minute, like the other short-window counts, so that the
    ceiling floor is one such second in 10 s."""
    return _per_minute(ev, unprompted_read_seconds_top_ua(ev))


def path_entropy(ev: ClientEvents) -> np.ndarray:
    """Shannon entropy (bits) of the paths the client asked for: 0 for a client that only polls,
    log2(n) for n requests to n different paths (a scanner, a scraper walking ids); a browser loading
    a page and then polling sits between."""
    if len(ev.code) == 0:
        return np.zeros(ev.n)
    base = int(ev.path.max()) + 1
    pairs, counts = np.unique(ev.code * base + ev.path, return_counts=True)
    owner = pairs // base
    p = counts / ev.count[owner]
    return np.bincount(owner, weights=-p * np.log2(p), minlength=ev.n)


def outside_poll_share(ev: ClientEvents) -> np.ndarray:
    """Share of the client's requests to paths other than the long-poll endpoint(s), which are read off
    everyone's traffic in the window (``ClientEvents.poll_paths``: where the server holds requests).
    NaN where the window shows no long polling (no durations in the format, or nothing held)."""
    if len(ev.poll_paths) == 0:
        return np.full(ev.n, np.nan)
    outside = ev.total((~np.isin(ev.path, ev.poll_paths)).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ev.count > 0, outside / ev.count, np.nan)


def repeated_answers_top_read_per_minute(ev: ClientEvents) -> np.ndarray:
    """Answers (``_answered``: with a body, or any but an error within a second) to the read (GET or HEAD of
    the same path and query, by one user agent) the client asked for again most often once it had the
    earlier answer, from the third time again on (``_repeats``), per minute per user agent.

    A long-poll client moves its cursor on after each answer, so the next poll is a new request; one that
    replays an old cursor, or re-downloads the same thing in a loop, is answered the same request again and
    again. Counted for its most repeated read, not summed over reads, and only what is asked again a
    second or more after the answer (``AGAIN_AFTER``): a phone with three or four tabs open on one channel
    asks for every poll and every message once per tab, a moment apart, while a loop asks for its one
    thing without end (summed, and counted at once, browsers with three tabs were throttled in unseen
    hours; counted at once, one with four tabs was blocked). Writes (a consumer POSTing to one publish
    URL) are never the same request twice; two user agents (two browsers behind one NAT, two hosts of a
    fleet) each asking once is no repeat, nor are colleagues on one browser build asking at the same time
    (neither had the answer yet), nor the parts (206) of a file a viewer fetches by ranges.
    """
    if ev.fleet_ua is not None:
        return np.full(ev.n, np.nan)  # see _top_read_per_minute
    code, _bytes, read = _all_repeats(ev)
    return _top_read_per_minute(ev, code, read)


def replayed_polls_top_read_per_minute(ev: ClientEvents) -> np.ndarray:
    """The poll of the long-poll endpoint (``ClientEvents.poll_paths``) the client asked for again most often,
    and was answered again (with data, or at once: ``_answered``), after the same client and user agent had
    been answered that very poll, per minute per user agent (as ``repeated_answers_top_read_per_minute``,
    among polls). NaN where the window shows no long polling.

    A long-poll client answered with data moves its cursor on; one asking for the same cursor again and
    again is replaying it. Colleagues behind one NAT with the same browser build polling the same
    channel ask *at the same time* and are answered together (no replay), and the same script bundle
    loaded again, or a health check, is not a poll.
    """
    if len(ev.poll_paths) == 0 or ev.fleet_ua is not None:  # a prefix row: see _top_read_per_minute
        return np.full(ev.n, np.nan)
    code, _bytes, read = _repeats(ev, np.isin(ev.path, ev.poll_paths))
    return _top_read_per_minute(ev, code, read)


def repeated_bytes_top_read_per_minute(ev: ClientEvents) -> np.ndarray:
    """Bytes of the repeated answers (as ``repeated_answers_top_read_per_minute`` counts them) to the one
    read that drew the most, per minute per user agent.

    A health check asks the same small question every few seconds; a client replaying an old cursor pulls
    the same backlog again and again. (No ceiling: one person downloading a large file twice is more bytes
    than any loop over small ones.)
    """
    if ev.fleet_ua is not None:
        return np.full(ev.n, np.nan)  # see _top_read_per_minute
    code, nbytes, read = _all_repeats(ev)
    return _top_read_per_minute(ev, code, read, nbytes)


def _top_read_per_minute(ev: ClientEvents, code: np.ndarray, read: np.ndarray,
                         weights: np.ndarray | None = None) -> np.ndarray:
    """Per client, the most any one of its reads drew of the repeats ``code`` and ``read`` (``_repeats``)
    name (their count, or the sum of their ``weights``), per minute per user agent: colleagues behind one
    NAT on one browser build are one user agent, and each opening the message they were all sent is the
    same read asked again (counted per address, not per user agent, the training day's highest in 10 s
    rose from 24 to 60 a minute).

    NaN on a network prefix's row (``fleet_ua`` set): a read is one program's (address and agent), so the
    prefix's most is its busiest address's own, never more than that address's row shows; taken for the
    prefix, a client replaying a cursor had two server consumers of its cloud /24 throttled with it."""
    if ev.fleet_ua is not None:
        return np.full(ev.n, np.nan)
    if len(read) == 0:
        return np.zeros(ev.n)
    sums = np.bincount(read, weights=weights)
    owner = np.zeros(len(sums), dtype=np.int64)
    owner[read] = code
    return _per_ua(ev, _per_minute(ev, group_max(sums, owner, ev.n)))


def _all_repeats(ev: ClientEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_repeats`` among every answer of the window, worked out once for the count and the bytes."""
    if "repeats" not in ev.shared:
        ev.shared["repeats"] = _repeats(ev)
    return ev.shared["repeats"]


def _repeats(ev: ClientEvents, among: np.ndarray | bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Client codes, bytes and read numbers (one number per client, user agent and read) of the answers
    (``_answered``, of the events ``among`` selects) that repeat an earlier answer to the same client, user
    agent and read, asked for ``AGAIN_AFTER`` seconds or more after the first answer to it had come (the first answer of
    each is not a repeat, nor is one asked while every earlier one was still open, nor the same poll or
    message asked by a browser's other tabs a moment later) -- and from its third repeat on
    (``ONCE_AGAIN``): a person reloading a page asks for it once or twice more (counted from the second,
    two reloads in a minute made browsers the commonest false positive of unseen hours); a loop or a
    replayed cursor asks again and again."""
    answered = np.flatnonzero(_answered(ev) & (ev.request != NOT_REPEATABLE) & among)
    if len(answered) == 0:
        return answered, np.empty(0), answered
    order = answered[np.lexsort((ev.start[answered], ev.request[answered], ev.ua[answered], ev.code[answered]))]
    code, ua, request = ev.code[order], ev.ua[order], ev.request[order]
    same = np.r_[False, (code[1:] == code[:-1]) & (ua[1:] == ua[:-1]) & (request[1:] == request[:-1])]
    # when the first answer of the same read so far had come: a running minimum of ends within each run
    # of ``same``, restarted per run by lowering each run below the one before it
    end = ev.end[order] - ev.end[order].min()
    run = np.cumsum(~same)
    step = end.max() + 1.0
    first_end = np.minimum.accumulate(end - run * step) + run * step
    asked = ev.start[order] - ev.end[order].min() + 1e-6  # (a microsecond: the offsets' rounding)
    again = same & (asked >= np.r_[np.inf, first_end[:-1]] + AGAIN_AFTER)
    # the how-manieth repeat of its read each one is (1, 2, ...), counted within each run
    nth = np.cumsum(again)
    nth = nth - np.r_[0, nth[:-1]][np.flatnonzero(~same)][run - 1]
    again &= nth > ONCE_AGAIN
    return code[again], ev.bytes[order][again].astype(np.float64), run[again]


def _answered(ev: ClientEvents) -> np.ndarray:
    """Per event, an answer a repeat of the same request would be asked again after (``_repeats``): one with a
    body (2xx but 206, bytes > 0), or any answer but an error (1xx to 3xx, a body or not) that came within a
    second (``_quick``). An empty poll answered when the server's hold ran out is asked again as it is (the
    cursor did not move): no repeat; the same request answered at once without a body again and again (an
    upgrade to a WebSocket dropped at once, a redirect, a poll told there is nothing) is a loop."""
    body = (ev.status >= 200) & (ev.status < 300) & (ev.bytes > 0)
    return (body | ((ev.status >= 100) & (ev.status < 400) & _quick(ev))) & (ev.status != PARTIAL)


def _prefix(ev: ClientEvents):
    if ev.prefix is None:
        raise ValueError("these events carry no prefix view (build them with ClientEvents.from_arrays)")
    return ev.prefix


def prefix_addresses(ev: ClientEvents) -> np.ndarray:
    """Addresses of the client's IPv4 /24 (IPv6 /64) active in the window, the client included."""
    return _prefix(ev).addresses.copy()


def prefix_requests_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """Requests per minute per distinct user agent of the whole /24 (/64): forty addresses sending with
    one program look like one flood here, while a carrier's pool of phones spreads over many builds."""
    p = _prefix(ev)
    return _per_minute(ev, p.requests) / np.maximum(p.agents, 1.0)


def prefix_failures_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """4xx answers (401, 404, 429, 499, ...) per minute per distinct user agent of the whole /24 (/64)."""
    p = _prefix(ev)
    return _per_minute(ev, p.failures) / np.maximum(p.agents, 1.0)


def fleet_client_errors_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """For a network prefix judged whole: its 4xx answers other than 429 and 499 (401, 403, 404, ...) per
    minute per distinct user-agent *string*, summed over all its addresses; NaN for a single address.

    Each address of a fleet spraying logins may fail only a few times a minute, about what one person
    mistyping a password does; the program all 28 of them run fails 28 times as often. Where the prefix row
    otherwise counts per user agent on each address (so a carrier's pool of phones running one app is
    not one flood), failures are rare enough in legitimate use to be summed.
    """
    return _fleet_per_ua_string_per_minute(ev, refused(ev.status))


def _fleet_per_ua_string_per_minute(ev: ClientEvents, mask: np.ndarray) -> np.ndarray:
    """The events in ``mask`` per minute per distinct user-agent string (those not only refused, as
    ``counted_agents``), summed over all the addresses of a prefix judged whole; NaN on an address's row."""
    if ev.fleet_ua is None:
        return np.full(ev.n, np.nan)
    strings = counted_agents(ev.code, ev.fleet_ua, ev.status, ev.n)
    return _per_minute(ev, ev.total(mask.astype(np.float64))) / np.maximum(strings, 1.0)


def fleet_early_empty_answers_per_ua_per_minute(ev: ClientEvents) -> np.ndarray:
    """For a network prefix judged whole: its early empty answers (as in
    ``early_empty_answers_per_ua_per_minute``) per minute per distinct user-agent *string*, summed over all
    its addresses; NaN for a single address, or without durations.

    A fleet short-polling a long-poll endpoint from forty addresses, each re-asking every few seconds
    for a hold of a second or two, is on each address an eager client, and per program (address and
    agent, as the prefix row's other counts go) no more; summed, it is one program collecting a hundred
    early answers a minute. Legitimate clients let the server hold their polls, so early empty answers
    are rare enough to be summed over a carrier's pool, as refusals are
    (``fleet_client_errors_per_ua_per_minute``): an app build that asks for a short wait shows in the
    training day's traffic and so in the ceiling.
    """
    if ev.fleet_ua is None or not ev.population_hold > 0:
        return np.full(ev.n, np.nan)
    return _fleet_per_ua_string_per_minute(ev, _early_empty(ev))


def timing_irregularity(ev: ClientEvents) -> np.ndarray:
    """Coefficient of variation of the gaps between request starts; near 0 is machine-perfect timing.

    NaN with fewer than three requests.
    """
    if len(ev.code) < 2:
        return np.full(ev.n, np.nan)
    d = np.diff(ev.start)
    same = ev.code[1:] == ev.code[:-1]
    d, code = d[same], ev.code[1:][same]
    n = np.bincount(code, minlength=ev.n).astype(np.float64)
    s1 = np.bincount(code, weights=d, minlength=ev.n)
    s2 = np.bincount(code, weights=d * d, minlength=ev.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = np.clip(s2 / n - mean * mean, 0.0, None)
        cv = np.sqrt(var) / mean
    cv[(n < 2) | ~np.isfinite(cv)] = np.nan
    return cv
