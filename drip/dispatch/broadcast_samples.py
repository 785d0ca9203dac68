"""A broadcast before it goes out: the preview as the sample reader would get it, and a test
send to an operator's own address through the real transport; neither touches a reader."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from drip.audience.subscriptions import normalize_email
from drip.content.sequences import Library
from drip.dispatch.broadcast_template import template_for
from drip.mail.links import Links, sample_links
from drip.mail.message_ids import message_id_for
from drip.mail.render import SAMPLE_READER, Reader, Renderer
from drip.mail.transports import Transport, envelope_sender
from drip.store.models import Broadcast


def preview(
    renderer: Renderer, library: Library, broadcast: Broadcast, links: Links
) -> tuple[str, str, str]:
    """(subject, HTML, text) as the sample reader would get it, rendered by the renderer
    that sends; its links lead to a page that says it was a preview."""
    template = template_for(renderer, library, broadcast)
    sample = sample_links(links, "preview")
    return template.parts(SAMPLE_READER, sample, {"unsubscribe_url": sample.stop_url(0)})


def send_test(
    renderer: Renderer,
    library: Library,
    broadcast: Broadcast,
    links: Links,
    transport: Callable[[], Transport],
    to: str,
    now: datetime,
) -> str:
    """The broadcast to an operator's own address through the real transport, its subject
    marked [TEST] and its links touching no reader (as drip.studio.samples does for lessons).
    Returns its Message-ID; raises SendError as a real send would."""
    template = dataclasses.replace(
        template_for(renderer, library, broadcast), subject=f"[TEST] {broadcast.subject}"
    )
    address = normalize_email(to)
    reader = Reader(
        address, SAMPLE_READER.first_name, SAMPLE_READER.subscriber_id, SAMPLE_READER.enrollment_id
    )
    sample = sample_links(links, "test")
    secret = renderer.settings.secret_key  # signed like any other; enrollment 0 is no one's
    mid = message_id_for(
        secret, SAMPLE_READER.enrollment_id, "test", template.sender, renderer.domain
    )
    extra = {"unsubscribe_url": sample.stop_url(0)}
    message = template.build(reader, sample, mid, now, extra=extra)
    with transport() as relay:
        relay.send(
            envelope_sender(template.sender),
            address,
            message,
            name=f"{now:%Y%m%dT%H%M%S}-test-broadcast-{broadcast.id}",
        )
    return mid
