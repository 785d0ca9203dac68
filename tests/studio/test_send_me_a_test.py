""" "Send me a test" goes to any address typed, so each operator may send at most ten a
minute, whichever button they use (a lesson, the confirmation email, a broadcast); the
eleventh says so and sends nothing. Counted against a real SMTP server."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from drip.core.clock import FrozenClock
from drip.store.models import Role
from drip.studio.samples import TESTS_PER_MINUTE
from tests.ops.test_roles import EDITOR, add
from tests.smtp import SmtpServer
from tests.web.test_admin_access import OPERATOR, csrf_token, log_in, logged_in_client

LESSON = {
    "subject": "Welcome",
    "delay": "0",
    "preheader": "",
    "body": "Hello, tested.\n",
    "action": "test",
}


def confirmation_test(web: FlaskClient, token: str) -> str:
    """Press the sequence page's "send the confirmation email to me"; the page it leads to."""
    answer = web.post(
        "/admin/sequences/tiny/test-confirmation", data={"csrf_token": token}, follow_redirects=True
    )
    assert answer.status_code == 200
    return answer.text


def test_an_operator_sends_at_most_ten_tests_a_minute_whichever_button(
    app: Flask, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    web = logged_in_client(app)
    token = csrf_token(web.get("/admin/sequences/tiny").text)
    for _ in range(TESTS_PER_MINUTE - 2):
        assert "Sent the confirmation email" in confirmation_test(web, token)
    lesson = web.post("/admin/sequences/tiny/lessons/welcome", data={"csrf_token": token, **LESSON})
    assert lesson.status_code == 200 and "marked [TEST]" in lesson.text
    written = web.post(
        "/admin/broadcasts/",
        data={"csrf_token": token, "subject": "News", "body": "Hi.\n", "to": ["tiny"]},
    )
    assert written.status_code == 302, written.text
    broadcast = web.post(f"{written.location}/test", data={"csrf_token": token})
    assert "Sent [TEST] News" in web.get(broadcast.location).text
    assert len(smtp_server.to(OPERATOR)) == TESTS_PER_MINUTE

    refused = confirmation_test(web, token)
    assert "The test was not sent: ops@example.org has sent 10 tests this minute" in refused
    assert "try again after 13:01:00 UTC" in refused
    again = web.post("/admin/sequences/tiny/lessons/welcome", data={"csrf_token": token, **LESSON})
    assert again.status_code == 429 and "has sent 10 tests this minute" in again.text
    late = web.post(f"{written.location}/test", data={"csrf_token": token})
    assert "The test did not go out" in web.get(late.location).text
    assert len(smtp_server.to(OPERATOR)) == TESTS_PER_MINUTE

    add(app.extensions["drip"], EDITOR, Role.editor)
    other = app.test_client()
    assert log_in(other, email=EDITOR).status_code == 302
    other_token = csrf_token(other.get("/admin/sequences/tiny").text)
    assert "Sent the confirmation email" in confirmation_test(other, other_token)
    assert len(smtp_server.to(EDITOR)) == 1  # another operator's count is their own

    clock.advance(minutes=1)
    assert "Sent the confirmation email" in confirmation_test(web, token)
    assert len(smtp_server.to(OPERATOR)) == TESTS_PER_MINUTE + 1
