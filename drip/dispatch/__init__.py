"""The dispatcher, one module per stage of a pass (see drip/dispatch/pass_.py):

claim (what is due, leased to this worker) -> plan (pure: what each reader gets) ->
send (write-ahead row, SMTP hand-off, outcome, retry time, heartbeat); the other kinds of
message (fresh links, offers, broadcast copies) are producers of the one sender (sender).
"""

from drip.dispatch.claim import Claimed, DispatchLocked, dispatch_lock
from drip.dispatch.pass_ import Dispatcher, new_worker_id
from drip.dispatch.plan import Plan, Send, Settle, Verdict, plan
from drip.dispatch.report import Outcome, OutcomeStatus, PassReport
from drip.mail.pace import backoff

__all__ = [
    "Claimed",
    "DispatchLocked",
    "Dispatcher",
    "Outcome",
    "OutcomeStatus",
    "PassReport",
    "Plan",
    "Send",
    "Settle",
    "Verdict",
    "backoff",
    "dispatch_lock",
    "new_worker_id",
    "plan",
]
