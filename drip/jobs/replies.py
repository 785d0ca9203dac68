"""Before each pass: the reply mailbox read (DRIP_REPLY_IMAP_URL), then the replies
forwarded to site.yaml's `forward_replies_to`. A failure in either is logged and holds
neither the other nor the pass back."""

from __future__ import annotations

import logging

from drip.content.site import load_site
from drip.replies.forward import forward_replies
from drip.replies.mailbox import read_replies
from drip.replies.matching import ReplyPolicy
from drip.services import Services

log = logging.getLogger(__name__)


def reply_job(services: Services) -> None:
    settings = services.settings
    if settings.reply_imap_url:
        try:
            with services.sessions() as session:
                result = read_replies(
                    session,
                    services.content.library(),
                    settings.reply_imap_url,
                    settings.reply_imap_processed,
                    services.clock(),
                    ReplyPolicy.from_settings(settings),
                )
            if result.read:
                log.info(result.summary())
        except Exception:
            log.exception("reading the reply mailbox failed; the next pass will try again")
    try:
        site, _ = load_site(settings.sequences_dir, settings.author_name)
        if site.forward_replies_to:
            with services.sessions() as session:
                forward_replies(
                    session,
                    services.transport,
                    site.forward_replies_to,
                    settings.sender,
                    services.clock(),
                )
    except Exception:
        log.exception("forwarding replies failed; the next pass will try again")
