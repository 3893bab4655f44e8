"""The transport's life cycle as one state, in place of a flag per fact (as trio's ``_ssl._State``).

::

    NEW --start()--> RUNNING --aclose()--> CLOSING --(flushed, or timed out)--> CLOSED
    RUNNING, CLOSING --(our tasks cancelled from outside)--> CANCELLED --aclose()--> CLOSED
    NEW --aclose()--> CLOSED
    NEW, RUNNING, CLOSING, CANCELLED --(an error)--> FAILING --(DISCONNECT sent, or not)--> FAILED

(An aclose() while FAILING cancels the tasks' scopes at once, and leaves the
status to the failure: see ``_stopping``.)

``error`` is set on entering FAILING or CLOSED, and only then: it is None
exactly while the status is in :data:`LIVE`, so code that raises it tests it
(one load, and the error is what it raises) rather than the status.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["ENDED", "LIVE", "SHUT_DOWN", "WRITABLE", "TransportStatus"]


class TransportStatus(enum.Enum):
    """Where a :class:`~trissh.SSHClientTransport` is in its life."""

    #: Made, not started: packets may be queued, but no task runs.
    NEW = "new"
    #: Started: the reader runs, and a writer whenever there is something to send.
    RUNNING = "running"
    #: :meth:`aclose` is flushing what is queued, its DISCONNECT last; senders may still send.
    CLOSING = "closing"
    #: Our tasks were cancelled from outside (a cancel scope around the connection):
    #: nobody reads or writes any more, and :meth:`aclose` finishes the job.
    CANCELLED = "cancelled"
    #: An error is recorded; a DISCONNECT is on its way (for at most a second) before shutting down.
    FAILING = "failing"
    #: Ended by an error: the socket is closed, every waiter woken, the close callbacks called.
    FAILED = "failed"
    #: Ended by :meth:`aclose`, as FAILED otherwise (``error`` is a ConnectionLost).
    CLOSED = "closed"


NEW: Final = TransportStatus.NEW
RUNNING: Final = TransportStatus.RUNNING
CLOSING: Final = TransportStatus.CLOSING
CANCELLED: Final = TransportStatus.CANCELLED
FAILING: Final = TransportStatus.FAILING
FAILED: Final = TransportStatus.FAILED
CLOSED: Final = TransportStatus.CLOSED

# Tuples, not sets: ``in`` compares by identity, without the Python-level Enum.__hash__.
#: No error yet (``error is None``).
LIVE: Final = (RUNNING, CLOSING, NEW, CANCELLED)
#: The error is recorded: the connection is ending or has ended.
ENDED: Final = (FAILING, FAILED, CLOSED)
#: A writer task may start (the tasks run and were not cancelled).
WRITABLE: Final = (RUNNING, CLOSING)
#: Shut down: socket closed, waiters woken (:attr:`~trissh.SSHClientTransport.is_closed`).
SHUT_DOWN: Final = (FAILED, CLOSED)
