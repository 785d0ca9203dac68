"""What is a reply and what is not: auto-replies by each sign, delivery reports, the quoted
part split off; and the site.yaml and sequence.yaml keys checked where they are written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drip.content.loader import load_sequences
from drip.content.site import load_site
from drip.replies.incoming import automatic, from_mime, is_report, split_quoted
from tests.conftest import TESTS


def mail(*headers: str, body: str = "Thanks!") -> bytes:
    lines = ["From: Ada <ada@example.org>", "To: reply+x@drip.test", *headers, "", body]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (["Subject: Re: Welcome", "Auto-Submitted: auto-replied"], "Auto-Submitted: auto-replied"),
        (["Subject: Re: Welcome", "X-Autoreply: yes"], "X-Autoreply header"),
        (["Subject: Re: Welcome", "Precedence: bulk"], "Precedence: bulk"),
        (["Subject: Out of Office: Welcome"], "out-of-office subject 'Out of Office: Welcome'"),
        (["Subject: Automatic reply: Welcome"], "out-of-office subject 'Automatic reply: Welcome'"),
        (
            ["Subject: Abwesenheitsnotiz: Welcome"],
            "out-of-office subject 'Abwesenheitsnotiz: Welcome'",
        ),
    ],
)
def test_auto_replies_are_recognised_by_each_sign(headers: list[str], why: str) -> None:
    assert automatic(from_mime(mail(*headers), "mailbox")) == why


def test_a_persons_answer_is_no_auto_reply_even_with_auto_submitted_no() -> None:
    incoming = from_mime(mail("Subject: Re: Welcome", "Auto-Submitted: no"), "mailbox")
    assert automatic(incoming) is None and not is_report(incoming)


def test_a_delivery_report_or_a_mailer_daemon_is_a_report_not_a_reply() -> None:
    report = mail(
        "Subject: Undelivered",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
    )
    assert is_report(from_mime(report, "mailbox"))
    daemon = mail("Subject: failure").replace(
        b"Ada <ada@example.org>", b"MAILER-DAEMON@example.org"
    )
    assert is_report(from_mime(daemon, "mailbox"))


def test_the_quoted_message_is_split_from_what_the_reader_wrote() -> None:
    body = "Thank you!\nIt helped.\n\nOn Sun, 6 Dec 2026, Tiny Author wrote:\n> Welcome, Ada\n> Hi"
    assert split_quoted(body) == (
        "Thank you!\nIt helped.",
        "On Sun, 6 Dec 2026, Tiny Author wrote:\n> Welcome, Ada\n> Hi",
    )
    assert split_quoted("Just this.") == ("Just this.", "")


def test_forward_replies_to_and_pause_on_reply_are_checked_where_they_are_written(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", root)
    (root / "site.yaml").write_text("forward_replies_to: not an address\n")
    _, problems = load_site(root)
    assert [(p.line, p.message) for p in problems] == [
        (
            1,
            "forward_replies_to must be one email address such as you@example.org, "
            "got 'not an address'",
        )
    ]
    (root / "site.yaml").write_text("forward_replies_to: you@example.org\n")
    site, problems = load_site(root)
    assert (site.forward_replies_to, problems) == ("you@example.org", [])
    yaml = root / "tiny" / "sequence.yaml"
    yaml.write_text(yaml.read_text() + "pause_on_reply: sometimes\n")
    library = load_sequences(root)
    assert [p.message for p in library.problems] == ["pause_on_reply must be true or false"]
