"""`GET /metrics`: Prometheus text format, read from the database at scrape time.

Each application gets its own CollectorRegistry (not prometheus-client's global one), so
several apps in one process (tests) never share or double-register collectors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from drip.bounces import event_counts, sending_paused
from drip.models import Delivery, DeliveryStatus, EnrollmentStatus
from drip.queries import counts_by_sequence_and_status
from drip.services import Services
from drip.stats import last_pass, scheduler_alive


class DripCollector(Collector):
    """Counts by status and the age of the last dispatch pass, queried on each scrape."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        now = self.svc.clock()
        with self.svc.sessions() as session:
            deliveries = dict(session.execute(select(Delivery.status, func.count())
                                              .group_by(Delivery.status)).all())
            enrollments = counts_by_sequence_and_status(session)
            beat = last_pass(session)
            bounces = event_counts(session)
            paused = sending_paused(session)
        by_status = GaugeMetricFamily("drip_deliveries", "Deliveries by status.",
                                      labels=["status"])
        for status in DeliveryStatus:
            by_status.add_metric([status.value], int(deliveries.get(status, 0)))
        yield by_status
        readers = GaugeMetricFamily("drip_enrollments", "Enrollments by sequence and status.",
                                    labels=["sequence", "status"])
        for slug in sorted(set(enrollments) | set(self.svc.content.library().sequences)):
            found = enrollments.get(slug, Counter())
            for state in EnrollmentStatus:
                readers.add_metric([slug, state.value], found[state.value])
        yield readers
        last = beat.last_pass_at if beat else None
        age = GaugeMetricFamily("drip_last_pass_age_seconds",
                                "Seconds since the newest dispatch pass (NaN before the first).")
        age.add_metric([], (now - last).total_seconds() if last else float("nan"))
        yield age
        alive = GaugeMetricFamily("drip_scheduler_alive",
                                  "1 while the last pass is younger than 3 dispatch intervals.")
        alive.add_metric([], 1 if scheduler_alive(last, now, self.svc.settings.dispatch_interval)
                         else 0)
        yield alive
        events = GaugeMetricFamily("drip_bounce_events", "Bounce and complaint events "
                                   "recorded, by kind and match (none: nothing matched).",
                                   labels=["kind", "matched_by"])
        for (kind, matched_by), number in sorted(bounces.items()):
            events.add_metric([kind, matched_by], number)
        yield events
        stopped = GaugeMetricFamily("drip_sending_paused",
                                    "1 while a bounce or complaint guardrail pauses sending.")
        stopped.add_metric([], 1 if paused else 0)
        yield stopped


def init_app(app: Flask) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DripCollector(app.extensions["drip"]))

    def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics)
