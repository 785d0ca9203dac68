"""The author's identity (issue 12): sequences/site.yaml, inherited field by field; the From
name, the signature under every message, the PDF button; the guardrail on an unsigned
course; and what the sign-up, check-your-inbox and you're-in pages show of it."""

from __future__ import annotations

import email
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from drip.app import create_app
from drip.content.authors import is_placeholder
from drip.content.loader import load_sequences
from drip.core.clock import FrozenClock
from drip.core.config import PROJECT_ROOT, Settings, load_settings
from drip.deliverability import guardrails
from drip.mail.headers import mailbox
from drip.mail.links import Links
from drip.mail.render import SAMPLE_READER, Renderer
from drip.services import Services
from tests.conftest import TESTS, make_settings
from tests.smtp import SmtpServer
from tests.web.test_public_signup import BROWSER_UA, open_confirmation, sign_up

NAME = "Dr. Zoë Ağaoğlu"
CREDENTIAL = "Assistant Professor of Medicine practicing in US"
BLOG = "https://blog.example.org/"
SITE = f"""author:
  name: "{NAME}"
  credential: "{CREDENTIAL}"
  photo: author.png
  url: {BLOG}
privacy_url: https://blog.example.org/privacy
after_confirm_url: https://www.blog.example.org/start-here
"""


def png(width: int = 8, height: int = 8) -> bytes:
    """A small valid PNG (one colour), so the photo is a real picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x2a\x6f\xb0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    """The tiny course with no author of its own, under a site.yaml that names one."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences" / "tiny", root / "tiny")
    yaml_file = root / "tiny" / "sequence.yaml"
    yaml_file.write_text(re.sub(r"(?m)^author:.*\n", "", yaml_file.read_text()))
    (root / "site.yaml").write_text(SITE)
    (root / "author.png").write_bytes(png())
    return root


def problems(root: Path, author_name: str = "") -> list[str]:
    return [str(p).replace(f"{root}/", "") for p in load_sequences(root, author_name).problems]


# -- site.yaml and sequence.yaml --------------------------------------------------------------


def test_every_sequence_inherits_the_site_author_and_overrides_it_field_by_field(
    courses: Path,
) -> None:
    shutil.copytree(courses / "tiny", courses / "guest")
    guest = courses / "guest" / "sequence.yaml"
    guest.write_text(guest.read_text() + 'author:\n  name: "Dr. Ada Guest"\n  url:\n')

    library = load_sequences(courses)

    assert problems(courses) == []
    tiny, other = library.sequences["tiny"], library.sequences["guest"]
    assert (tiny.author.name, tiny.author.credential, tiny.author.url) == (NAME, CREDENTIAL, BLOG)
    assert tiny.author.photo_file == (courses / "author.png").resolve()
    assert tiny.privacy_url == "https://blog.example.org/privacy"
    assert tiny.after_confirm_url == "https://www.blog.example.org/start-here"
    # the guest's own name, the site's credential and photo, and no blog link (cleared)
    assert (other.author.name, other.author.credential, other.author.url) == (
        "Dr. Ada Guest",
        CREDENTIAL,
        "",
    )
    assert other.author.photo == tiny.author.photo


def test_drip_author_name_names_the_author_where_no_file_does_and_the_file_wins(
    courses: Path,
) -> None:
    site = courses / "site.yaml"
    site.write_text(SITE.replace(f'name: "{NAME}"', 'name: ""'))
    assert load_sequences(courses, "Dr. Env Name").sequences["tiny"].author.name == "Dr. Env Name"
    assert problems(courses, "Dr. Env Name") == []

    site.write_text(SITE)
    assert load_sequences(courses, "Dr. Env Name").sequences["tiny"].author.name == NAME
    assert problems(courses, "Dr. Env Name") == [
        f"site.yaml:2: warning: DRIP_AUTHOR_NAME ('Dr. Env Name') and author.name ({NAME!r}) "
        "differ; the file's name is used: drop one of them"
    ]


@pytest.mark.parametrize(
    ("name", "said"),
    [("", "no author name is set"), ("Dr. Author", "author.name 'Dr. Author' is a placeholder")],
)
def test_an_unset_or_placeholder_name_is_a_warning_at_site_yaml(
    courses: Path, name: str, said: str
) -> None:
    (courses / "site.yaml").write_text(SITE.replace(f'name: "{NAME}"', f'name: "{name}"'))

    library = load_sequences(courses)

    assert "tiny" in library.sequences  # a warning: the course is not held
    assert problems(courses) == [
        f"site.yaml:2: warning: {said}, so tiny would go out signed without one: "
        "set author.name in site.yaml (every sequence inherits it) or DRIP_AUTHOR_NAME"
    ]


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        (
            "  photo: author.png",
            "  photo: ../outside.png",
            "site.yaml:4: author.photo '../outside.png' is outside the sequences folder: "
            "put the picture there",
        ),
        (
            "  photo: author.png",
            "  photo: missing.jpg",
            "site.yaml:4: author.photo 'missing.jpg' does not exist",
        ),
        (
            "  photo: author.png",
            "  photo: site.yaml",
            "site.yaml:4: author.photo 'site.yaml' must be a picture (.jpeg, .jpg, .png, .webp)",
        ),
        (
            "  photo: author.png",
            "  photo: http://example.org/me.png",
            "site.yaml:4: author.photo is an https:// address or a file in the sequences folder",
        ),
        (
            f"  url: {BLOG}",
            "  url: blog.example.org",
            "site.yaml:5: author.url must be a web address starting with https://, "
            "e.g. https://blog.example.org/privacy",
        ),
        (
            "privacy_url: https://blog.example.org/privacy",
            "privacy_url: javascript:alert(1)",
            "site.yaml:6: privacy_url must be a web address starting with https://, "
            "e.g. https://blog.example.org/privacy",
        ),
        (
            f'  name: "{NAME}"',
            f'  name: "{NAME}"\n  twitter: "@me"',
            "site.yaml:3: unknown key author.twitter (allowed: name, credential, photo, url)",
        ),
    ],
)
def test_a_mistake_in_site_yaml_is_an_error_at_its_line_and_holds_every_sequence(
    courses: Path, line: str, replacement: str, expected: str
) -> None:
    (courses / "site.yaml").write_text(SITE.replace(line, replacement))

    library = load_sequences(courses)

    (found,) = problems(courses)
    assert found.startswith(expected), found
    assert "tiny" in library.broken and "tiny" not in library.sequences
    assert library.for_sign_up("tiny") is not None  # its sign-up form stays up


def test_a_placeholder_a_sequence_names_itself_is_a_warning_at_its_own_line(
    courses: Path,
) -> None:
    path = courses / "tiny" / "sequence.yaml"
    path.write_text(path.read_text() + 'author: {name: "Your Name"}\n')

    assert load_sequences(courses).sequences["tiny"].author.name == "Your Name"
    assert problems(courses) == [
        "tiny/sequence.yaml:12: warning: author.name 'Your Name' is a placeholder: "
        "put in the name readers should see"
    ]


def test_a_mistake_in_a_sequence_author_is_an_error_at_its_line(courses: Path) -> None:
    path = courses / "tiny" / "sequence.yaml"
    path.write_text(path.read_text() + "author:\n  url: ftp://example.org\n")

    (found,) = problems(courses)

    assert found == (
        "tiny/sequence.yaml:13: author.url must be a web address starting with https://, "
        "e.g. https://blog.example.org/privacy"
    )


# -- the messages ----------------------------------------------------------------------------


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_every_lesson_ends_with_the_signature_and_comes_from_the_author(
    courses: Path, tmp_path: Path, clock: FrozenClock
) -> None:
    settings = load_settings(
        environ={},
        data_dir=tmp_path,
        sequences_dir=courses,
        secret_key="k",
        postal_address="1 Main St",
    )
    sequence = load_sequences(courses).sequences["tiny"]
    renderer = Renderer(settings)
    links = Links("k", "http://drip.test", 3, 3, clock)

    for lesson in sequence.lessons:
        raw = renderer.lesson(sequence, lesson).build(SAMPLE_READER, links, "<m@x>", clock())
        message = parsed(raw)
        header = raw.split(b"\r\n\r\n", 1)[0]
        assert re.search(rb"^From: =\?utf-8\?[bq]\?[^ ]+\?= <author@example\.org>\r$", header, re.M)
        assert message["From"].addresses[0].display_name == NAME  # sequence's address, her name
        text = plain(message)
        html_part = message.get_body(("html",))
        assert html_part is not None
        html = str(html_part.get_content())
        body, signature = text.split("\n-- \n", 1)
        assert signature.startswith(f"{NAME}\n{CREDENTIAL}\n{BLOG}\n\n"), signature
        assert "Talk soon" not in body
        # the HTML's lesson ends with the signature: only the footer comes after it
        visible = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
        lesson_part = visible.split("You are getting this email", 1)[0].rstrip()
        assert lesson_part.endswith(f"{NAME} {CREDENTIAL} blog.example.org/"), lesson_part
        assert f'<a href="{BLOG}"' in html


def test_without_an_author_name_the_sender_display_name_stays_and_the_credential_signs(
    courses: Path, tmp_path: Path, clock: FrozenClock
) -> None:
    (courses / "site.yaml").write_text(SITE.replace(f'name: "{NAME}"', 'name: ""'))
    settings = load_settings(environ={}, data_dir=tmp_path, sequences_dir=courses, secret_key="k")
    sequence = load_sequences(courses).sequences["tiny"]
    links = Links("k", "http://drip.test", 3, 3, clock)

    raw = Renderer(settings).lesson(sequence, sequence.lessons[0])
    message = parsed(raw.build(SAMPLE_READER, links, "<m@x>", clock()))

    assert message["From"] == "Tiny Author <author@example.org>"
    signature = plain(message).split("\n-- \n", 1)[1]
    assert signature.startswith(f"{CREDENTIAL}\n{BLOG}\n\n")


def test_placeholders_are_told_from_real_names_in_any_script() -> None:
    for stand_in in ("", "  ", "Dr. Author", "DR AUTHOR", "Your Name", "Dr. Jane Doe", "TODO"):
        assert is_placeholder(stand_in), stand_in
    for real_name in (NAME, "山田太郎", "Dr. Amara Okafor", "Авторова Анна"):
        assert not is_placeholder(real_name), real_name


def test_an_ascii_name_with_a_dot_is_one_quoted_string() -> None:
    assert mailbox("Dr. Jane Roe", "jane@example.org") == '"Dr. Jane Roe" <jane@example.org>'
    assert mailbox("", "jane@example.org") == "jane@example.org"


def test_the_welcome_lessons_pdf_link_is_a_button_in_html_and_its_own_line_in_text(
    tmp_path: Path, clock: FrozenClock
) -> None:
    settings = load_settings(
        environ={}, data_dir=tmp_path, sequences_dir=PROJECT_ROOT / "sequences", secret_key="k"
    )
    library = load_sequences(PROJECT_ROOT / "sequences")
    links = Links("k", "http://drip.test", 3, 3, clock)
    renderer = Renderer(settings)
    with_pdf = [s for s in library.sequences.values() if s.lead_magnet is not None]
    assert sorted(s.slug for s in with_pdf) == ["interview-questions", "usmle-insider-kit"]
    for sequence in with_pdf:
        welcome = sequence.lessons[0]
        assert "{.button}" in welcome.body, sequence.slug
        _, html, text = renderer.lesson(sequence, welcome).parts(SAMPLE_READER, links)
        url = links.magnet_url(SAMPLE_READER.enrollment_id)
        button = re.search(
            rf'<td bgcolor="#0b5cad"[^>]*><a class="button" href="{re.escape(url)}" '
            r'style="([^"]+)"',
            html,
        )
        assert button, sequence.slug
        assert "background:#0b5cad" in button[1] and "color:#ffffff" in button[1]
        assert re.search(rf"^Download the [^\n]*PDF\)?: {re.escape(url)}$", text, re.M), text[:400]
        assert "{.button}" not in text


def test_no_lesson_in_the_courses_ends_with_its_own_unsigned_sign_off() -> None:
    sign_off = re.compile(
        r"(talk soon|speak soon|until next time|best wishes|cheers|warmly|see you),?\s*\Z", re.I
    )
    lessons = sorted((PROJECT_ROOT / "sequences").glob("*/[0-9]*.md"))
    assert len(lessons) == 26
    for path in lessons:
        assert not sign_off.search(path.read_text()), path.relative_to(PROJECT_ROOT)


# -- guardrails ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("", "not set for tiny"),
        ("Dr. Author", "placeholder 'Dr. Author' for tiny"),
        ("your name", "placeholder 'your name' for tiny"),
    ],
)
def test_an_unsigned_course_is_a_production_problem(
    courses: Path, tmp_path: Path, name: str, verdict: str
) -> None:
    """DRIP_AUTHOR_NAME fills an empty name; a placeholder in the file still wins over it."""
    (courses / "site.yaml").write_text(SITE.replace(f'name: "{NAME}"', f'name: "{name}"'))

    def production(unsafe: bool = False) -> Settings:
        return load_settings(
            environ={},
            data_dir=tmp_path,
            smtp_url="smtp://relay:587",
            base_url="https://drip.example.org",
            postal_address="1 Main St",
            allow_unsafe_sending=unsafe,
        )

    library = load_sequences(courses)

    (problem,) = guardrails.problems(production(), library)
    assert problem == (
        f"author name: {verdict}: set author.name in sequences/site.yaml (or DRIP_AUTHOR_NAME); "
        "readers see it in the From line and under every lesson. In the browser: the "
        "admin's Sequences → Site & author page (/admin/site)"
    )
    assert guardrails.blocking(production(unsafe=True), library) == []  # a test relay's mail
    with_env = guardrails.problems(production(), load_sequences(courses, "Dr. Amara Okafor"))
    assert with_env == ([] if not name else [problem])


# -- the reader's pages --------------------------------------------------------------------


@pytest.fixture
def author_app(
    tmp_path: Path, sqlite_url: str, smtp_server: SmtpServer, clock: FrozenClock, courses: Path
) -> Iterator[Flask]:
    application = create_app(
        make_settings(
            tmp_path,
            sqlite_url,
            smtp_url=smtp_server.url,
            sequences_dir=courses,
            check_email_domain=False,
        ),
        clock=clock,
    )
    application.config["TESTING"] = True
    yield application
    application.extensions["drip"].engine.dispose()


@pytest.fixture
def web(author_app: Flask) -> FlaskClient:
    client = author_app.test_client()
    client.environ_base.update(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=BROWSER_UA)
    return client


def test_the_sign_up_page_shows_who_the_course_is_from_and_links_the_privacy_policy(
    web: FlaskClient, courses: Path
) -> None:
    page = web.get("/subscribe/tiny").text

    block = re.search(r'<figure class="author".*?</figure>', page, re.S)
    assert block, page
    assert f'<a href="{BLOG}">{NAME}</a>' in block[0]
    assert CREDENTIAL in block[0]
    assert f'alt="{NAME}"' in block[0] and 'src="/subscribe/tiny/author-photo"' in block[0]
    assert '<a href="https://blog.example.org/privacy" class="privacy">Privacy policy</a>' in page
    photo = web.get("/subscribe/tiny/author-photo")
    assert (photo.status_code, photo.mimetype) == (200, "image/png")
    assert photo.data == (courses / "author.png").read_bytes()


def test_an_https_photo_is_linked_and_no_local_photo_is_served(
    web: FlaskClient, courses: Path
) -> None:
    (courses / "site.yaml").write_text(
        SITE.replace("photo: author.png", "photo: https://cdn.example.org/me.jpg")
    )

    assert 'src="https://cdn.example.org/me.jpg"' in web.get("/subscribe/tiny").text
    assert web.get("/subscribe/tiny/author-photo").status_code == 404


def test_the_check_your_inbox_page_shows_the_typed_address_and_a_way_to_fix_it(
    web: FlaskClient,
) -> None:
    answer = sign_up(web, email="ada@exmaple.org", first_name="Ada")
    thanks = web.get(answer.headers["Location"]).text

    assert '<strong class="sent-to">ada@exmaple.org</strong>' in thanks
    fix = re.search(r'Wrong address\? <a href="([^"]+)" class="fix-address">Fix it</a>', thanks)
    assert fix and fix[1] == "/subscribe/tiny?change=address"
    form = web.get(fix[1]).text
    assert re.search(r'name="email"[^>]*value="ada@exmaple\.org"', form, re.S)
    assert re.search(r'name="first_name"[^>]*value="Ada"', form, re.S)
    assert 'value="ada@exmaple.org"' not in web.get("/subscribe/tiny").text  # only when asked
    again = sign_up(web, email="ada@example.org", first_name="Ada")
    assert "ada@example.org</strong>" in web.get(again.headers["Location"]).text


def test_the_check_your_inbox_page_of_another_browser_shows_no_address(
    web: FlaskClient, author_app: Flask
) -> None:
    sign_up(web, email="ada@example.org")
    stranger = author_app.test_client().get("/subscribe/tiny/thanks").text

    assert "ada@example.org" not in stranger and "Fix it" not in stranger
    assert "Check your inbox" in stranger


def test_the_you_are_in_page_offers_the_pdf_and_names_the_sender_to_add_to_contacts(
    web: FlaskClient, author_app: Flask, clock: FrozenClock, smtp_server: SmtpServer
) -> None:
    svc: Services = author_app.extensions["drip"]
    sign_up(web)
    svc.dispatcher().run_pass(clock())
    (confirmation,) = smtp_server.to("ada@example.org")
    assert confirmation.message["From"] == f'"{NAME}" <author@example.org>'
    link = re.search(r"http://drip\.test(/confirm/\S+)", confirmation.text())
    assert link

    page = open_confirmation(web, link[1]).text

    pdf = re.search(r'<a class="button" href="http://drip\.test(/magnet/[^"]+)">', page)
    assert pdf, page
    download = web.get(pdf[1])
    assert (download.status_code, download.mimetype) == (200, "application/pdf")
    assert "Add <strong>author@example.org</strong> to your contacts" in page
    # a link on, not a redirect away from the PDF
    assert (
        '<a class="continue" href="https://www.blog.example.org/start-here">'
        "Continue to blog.example.org</a>"
    ) in page
