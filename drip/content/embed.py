"""The sign-up form an author pastes into a blog post, and `drip embed SEQUENCE` to print it.

The snippet is a plain HTML form that posts to `/subscribe/<slug>` and works without
JavaScript. A form served by another site cannot carry our session-bound CSRF token (the
reader has no drip session, and SameSite=Lax keeps our cookie off cross-site posts), so the
snippet carries an *embed token* instead: the sequence slug signed with the secret key.

Why that is enough: CSRF protects a signed-in person's session from being used by another
site, and a sign-up uses no session. What a forged cross-site sign-up could do is put an
address on a list, and double opt-in, the honeypot and the per-IP and per-address rate limits
bound that exactly as for our own page. The token only lets a form post to the sequence it
was printed for, and it cannot be minted without the secret, so nobody can point a form at a
sequence the author never offered for embedding (e.g. a single opt-in one).
"""

from __future__ import annotations

from functools import cache

from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from drip.content.sequences import Sequence
from drip.core.config import signing_order
from drip.core.paths import TEMPLATES

EMBED_FIELD = "embed_token"


def _serializer(secret: str, fallbacks: tuple[str, ...] = ()) -> URLSafeSerializer:
    """Signs with `secret`; reads a token made under it or any fallback (a form pasted into a
    blog post before the key was rotated)."""
    return URLSafeSerializer(signing_order(secret, fallbacks), salt="drip.embed")


def embed_token(secret: str, slug: str, tags: tuple[str, ...] = ()) -> str:
    """The form's token: the sequence, and the tags its sign-ups get, signed, so a visitor
    who edits the form can neither point it elsewhere nor choose their own tags."""
    return str(_serializer(secret).dumps([slug, list(tags)] if tags else slug))


def embed_tags(
    secret: str, slug: str, token: str, fallbacks: tuple[str, ...] = ()
) -> tuple[str, ...] | None:
    """The tags an embedded form gives its sign-ups, or None when its token is not valid
    for this sequence."""
    try:
        value = _serializer(secret, fallbacks).loads(token)
    except BadSignature:
        return None
    if value == slug:
        return ()
    if isinstance(value, list) and len(value) == 2 and value[0] == slug:
        return tuple(str(tag) for tag in value[1])
    return None


@cache
def _templates() -> Environment:
    """The public pages' templates without Flask: `drip embed` runs with no web layer."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())


def snippet(sequence: Sequence, base_url: str, secret: str, tags: tuple[str, ...] = ()) -> str:
    """The form's HTML, as the public sign-up page's own fields render it."""
    return (
        _templates()
        .get_template("public/embed.html")
        .render(
            sequence=sequence,
            base_url=base_url,
            embed_field=EMBED_FIELD,
            token=embed_token(secret, sequence.slug, tags),
        )
        .strip()
        + "\n"
    )
