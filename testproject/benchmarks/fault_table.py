"""What one fault cost, from the load's records (benchmarks/fault_load.py)
and the views' runs, its bounds checked, and the tables that print it.

*Full service* is back at the first request, message or handshake that
went well after the last one that did not (a status other than 200, a
message lost or echoed twice, a handshake refused, a socket the server
closed); its seconds are counted from the fault. The *longest wait* of a
request or message is from the later of its sending and the fault, until
its answer, its echo or its socket's end; a message lost on a socket
left open is never answered.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

from benchmarks.fault_load import Load


@dataclass
class Marks:
    """When a fault began, was repaired and (Sentinel) promoted a replica,
    what the report saw meanwhile, and the fault's own checks."""

    fault_at: float = 0.0
    repair_at: float | None = None
    promotion_at: float | None = None
    notes: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)


@dataclass
class Outcome:
    name: str
    title: str
    marks: Marks
    sent: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    unanswered: int = 0
    ran_twice: int = 0
    ran_unseen: int = 0
    ws_sent: int = 0
    echoed: int = 0
    lost: int = 0
    lost_silently: int = 0
    duplicated: int = 0
    misdelivered: int = 0
    closes: collections.Counter = field(default_factory=collections.Counter)
    refused: collections.Counter = field(default_factory=collections.Counter)
    full_service: float | None = None
    http_wait: float = 0.0
    ws_wait: float = 0.0
    checks: list[tuple[str, bool]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return all(ok for _, ok in self.checks)


def measure(name: str, title: str, load: Load, runs: collections.Counter, marks: Marks,
            logs: list[tuple[float, str, str]], wait_bound: float | None,
            bound_websockets: bool = True) -> Outcome:
    """``wait_bound`` applies to WebSocket messages too if
    ``bound_websockets``: a message may wait with nobody to answer it (no
    worker runs), which is not a loss."""
    outcome = Outcome(name, title, marks)
    end = load.ended
    fault = marks.fault_at
    bad, good = [], []

    def wait(sent: float, until: float) -> float:
        return until - max(sent, fault) if until > fault else 0.0

    for request in load.requests:
        outcome.sent += 1
        if request.status is None:
            outcome.unanswered += 1
        else:
            outcome.statuses[request.status] += 1
        ran = runs.get(request.id, 0)
        outcome.ran_twice += ran > 1
        outcome.ran_unseen += ran > 0 and request.status != 200
        (good if request.status == 200 else bad).append(request.sent)
        outcome.http_wait = max(outcome.http_wait, wait(request.sent, request.done or end))

    closed_by_server = {sock.id: sock for sock in load.sockets if sock.code is not None}
    ended = {sock.id: sock.closed for sock in load.sockets if sock.closed is not None}
    for message in load.messages.values():
        outcome.ws_sent += 1
        outcome.echoed += bool(message.echoes)
        outcome.duplicated += len(message.echoes) > 1
        if not message.echoes:
            outcome.lost += 1
            outcome.lost_silently += message.socket not in closed_by_server
        (good if len(message.echoes) == 1 else bad).append(message.sent)
        if message.echoes or message.socket in closed_by_server:
            outcome.ws_wait = max(outcome.ws_wait, wait(
                message.sent, message.echoes[0] if message.echoes else ended[message.socket]))
    outcome.misdelivered = len(load.misdelivered)
    for sock in closed_by_server.values():
        outcome.closes[sock.code] += 1
        bad.append(sock.closed)
    for handshake in load.handshakes:
        if handshake.status != 101:
            outcome.refused[handshake.status] += 1
        (good if handshake.status == 101 else bad).append(handshake.at)

    last_bad = max(bad, default=None)
    if last_bad is None or last_bad < fault:
        outcome.full_service = 0.0
    else:
        after = [moment for moment in good if moment > last_bad]
        outcome.full_service = min(after) - fault if after else None
    outcome.logs = summarize_logs(logs, load.started, end)

    outcome.checks.append((
        f"nothing duplicated (messages echoed twice: {outcome.duplicated}, views run twice: "
        f"{outcome.ran_twice}, echoes on another socket: {outcome.misdelivered})",
        outcome.duplicated == outcome.ran_twice == outcome.misdelivered == 0))
    outcome.checks.append((f"every request answered (unanswered: {outcome.unanswered})",
                           outcome.unanswered == 0))
    if wait_bound is not None:
        if bound_websockets:
            holds = (max(outcome.http_wait, outcome.ws_wait) <= wait_bound
                     and outcome.lost_silently == 0)
        else:
            holds = outcome.http_wait <= wait_bound
        outcome.checks.append((
            f"nothing unanswered past {wait_bound:g} s{'' if bound_websockets else ' (HTTP)'} "
            f"({waits(outcome)})", holds))
    if marks.promotion_at is not None:
        if outcome.full_service == 0:
            back, text = 0.0, "never interrupted"
        elif outcome.full_service is None:
            back, text = None, "not in the run"
        else:
            back = outcome.full_service + fault - marks.promotion_at
            text = f"{back:.1f} s"
        outcome.checks.append((f"service back within 10 s of the promotion ({text})",
                               back is not None and back <= 10))
    outcome.checks += marks.checks
    return outcome


def summarize_logs(logs: list[tuple[float, str, str]], start: float, end: float,
                   shown: int = 8) -> list[str]:
    """The lines the processes wrote during the run, alike ones counted
    together (numbers, addresses and tokens masked), most frequent first;
    a traceback counts once, by its first line."""
    counts: collections.Counter = collections.Counter()
    for moment, kind, line in logs:
        if start <= moment <= end and line.strip() and not line[0].isspace():
            text = re.sub(r"\b[0-9a-f]{8,}\b", "…", line)
            text = re.sub(r"\d+\.\d+\.\d+\.\d+:\d+", "HOST:PORT", text)
            counts[kind, re.sub(r"\d+(\.\d+)?", "N", text)] += 1
    return [f"{count:5}x {kind}: {text[:240]}" for (kind, text), count in
            counts.most_common(shown)] + ([f"      ... and {len(counts) - shown} other kinds "
                                           f"of line"] if len(counts) > shown else [])


def waits(outcome: Outcome) -> str:
    """The longest waits; a message lost on a socket left open waits for
    ever."""
    text = f"longest wait: HTTP {outcome.http_wait:.1f} s, WebSocket {outcome.ws_wait:.1f} s"
    if outcome.lost_silently:
        text += f", and {outcome.lost_silently} message(s) never answered"
    return text


def counts(counter: collections.Counter) -> str:
    return ", ".join(f"{key}: {value}" for key, value in
                     sorted(counter.items(), key=lambda item: str(item[0]))) or "none"


def seconds(value: float | None) -> str:
    return "not in the run" if value is None else f"{value:.1f} s"


def report(outcome: Outcome) -> str:
    """The fault's table, as the report prints it."""
    marks = outcome.marks
    repair = ""
    if marks.repair_at is not None and outcome.full_service:
        after = outcome.full_service + marks.fault_at - marks.repair_at
        repair = (f" ({after:.1f} s after the repair)" if after >= 0.05
                  else " (before the repair)")
    lines = [
        f"--- {outcome.name}: {outcome.title}",
        *(f"  {note}" for note in marks.notes),
        f"  HTTP requests       sent {outcome.sent}; answered by status: "
        f"{counts(outcome.statuses)}; unanswered: {outcome.unanswered}",
        f"                      views run for a client not answered 200: "
        f"{outcome.ran_unseen}; run twice: {outcome.ran_twice}",
        f"  WebSocket messages  sent {outcome.ws_sent}; echoed {outcome.echoed}; lost "
        f"{outcome.lost} ({outcome.lost_silently} on a socket left open); duplicated "
        f"{outcome.duplicated}",
        f"  sockets closed      by code: {counts(outcome.closes)}; handshakes refused: "
        f"{counts(outcome.refused)}",
        f"  full service after  {seconds(outcome.full_service)}{repair}",
        f"  {waits(outcome)}",
        "  bounds:",
        *(f"    [{'ok' if ok else 'FAILED'}] {text}" for text, ok in outcome.checks),
        "  logged meanwhile (all processes):",
        *(f"    {line}" for line in outcome.logs or ["      nothing"]),
    ]
    return "\n".join(lines)


HEADERS = ("fault", "HTTP sent", "answered by status", "unanswered", "run twice", "WS sent",
           "echoed", "lost", "dup.", "closed by code", "full service (s)", "bounds")


def summary_table(outcomes: list[Outcome]) -> str:
    """All faults in one reStructuredText table (docs/benchmarks.rst)."""
    rows = [HEADERS] + [(
        outcome.name, str(outcome.sent), counts(outcome.statuses), str(outcome.unanswered),
        str(outcome.ran_twice), str(outcome.ws_sent), str(outcome.echoed), str(outcome.lost),
        str(outcome.duplicated), counts(outcome.closes),
        "-" if outcome.full_service is None else f"{outcome.full_service:.1f}",
        "hold" if outcome.holds else "FAILED") for outcome in outcomes]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    rule = "  ".join("=" * width for width in widths)

    def line(row):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        return "  ".join(cells).rstrip()

    return "\n".join([rule, line(rows[0]), rule, *map(line, rows[1:]), rule])
