"""The tables, typed SQLAlchemy 2 models, one module per part of drip; every table and
enum is re-exported here, so `from drip.store.models import Enrollment` (and the
migrations' `drip.store.models.UTCDateTime`) name them whatever module holds them, and
importing this package maps them all onto `Base.metadata`."""

from __future__ import annotations

from drip.store.models.broadcasts import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    RecipientStatus,
    Segment,
)
from drip.store.models.columns import Base, StrEnumType, UTCDateTime
from drip.store.models.deliverability import BounceEvent, SendingPause, SendPace, WebhookToken
from drip.store.models.engagement import EngagementDay, EngagementSweep, LinkClick
from drip.store.models.integrations import ApiKey, WebhookCursor, WebhookDelivery, WebhookEndpoint
from drip.store.models.jobs import ImportJob, MagnetBuild
from drip.store.models.operations import (
    AuditEntry,
    Operator,
    OperatorSession,
    RateLimit,
    Role,
    SequenceState,
    WorkerHeartbeat,
)
from drip.store.models.readers import (
    HOLD_CONTENT,
    OUTCOME_UNKNOWN,
    ConsentRecord,
    Delivery,
    DeliveryStatus,
    Engagement,
    Enrollment,
    EnrollmentStatus,
    Event,
    EventKind,
    LinkRequest,
    SignUpRequest,
    Subscriber,
    SubscriberTag,
)
from drip.store.models.replies import Reply
from drip.store.models.tallies import DailyTally, DeliveryTally, EnrollmentTally

__all__ = [
    "HOLD_CONTENT",
    "OUTCOME_UNKNOWN",
    "ApiKey",
    "AuditEntry",
    "Base",
    "BounceEvent",
    "Broadcast",
    "BroadcastRecipient",
    "BroadcastStatus",
    "ConsentRecord",
    "DailyTally",
    "Delivery",
    "DeliveryStatus",
    "DeliveryTally",
    "Engagement",
    "EngagementDay",
    "EngagementSweep",
    "Enrollment",
    "EnrollmentStatus",
    "EnrollmentTally",
    "Event",
    "EventKind",
    "ImportJob",
    "LinkClick",
    "LinkRequest",
    "MagnetBuild",
    "Operator",
    "OperatorSession",
    "RateLimit",
    "RecipientStatus",
    "Reply",
    "Role",
    "Segment",
    "SendPace",
    "SendingPause",
    "SequenceState",
    "SignUpRequest",
    "StrEnumType",
    "Subscriber",
    "SubscriberTag",
    "UTCDateTime",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookToken",
    "WorkerHeartbeat",
]
