"""What content may make drip read (drip.content.fetch_rule): a lead magnet's PDF holds nothing of
the server's files and fetches nothing from the network, whatever its magnet.md says; its
own pictures and data: URLs still print; `drip check` and the studio name each refused
reference at its line; lessons, the magnet's file and the author photo keep to the folder."""

from __future__ import annotations

import base64
import io
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import DictionaryObject

from drip.cli import cli
from drip.content import magnets
from drip.content.loader import load_sequences
from drip.content.sequences import Sequence
from drip.core.config import Settings, load_settings
from drip.services import build_services
from drip.studio.editing import Studio
from drip.studio.lesson_format import lesson_files
from drip.studio.outcomes import Refused, Saved, version_of
from tests.conftest import CHEAP_HASHER, TESTS, make_settings

SECRET = b"SECRET-KEY-7f3a9c-never-in-a-pdf"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Loopback:
    """An HTTP server on 127.0.0.1 that answers every GET with a PNG and counts them."""

    def __init__(self) -> None:
        png = picture((3, 3), "blue")
        counted: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                counted.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.requests = counted
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    yield server
    server.stop()


def picture(size: tuple[int, int], colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    """The tiny course, and beside the sequences folder a secret (as the data dir holds one)."""
    root = tmp_path / "sequences"
    shutil.copytree(TESTS / "sequences", root)
    (tmp_path / "secret_key").write_bytes(SECRET)
    (tmp_path / "outside.png").write_bytes(picture((7, 5), "red"))
    return root


def settings_for(tmp_path: Path, courses: Path) -> Settings:
    return load_settings(
        environ={}, data_dir=tmp_path / "data", sequences_dir=courses, secret_key="k"
    )


def tiny(courses: Path) -> Sequence:
    sequence = load_sequences(courses).get("tiny")
    assert sequence is not None and sequence.lead_magnet is not None
    return sequence


def write_magnet(courses: Path, body: str) -> Path:
    path = courses / "tiny" / "magnet.md"
    path.write_text(f"---\ntitle: Tiny guide\n---\n## One section\n\n{body}\n", encoding="utf-8")
    return path


def images_of(pdf: bytes) -> list[tuple[int, int]]:
    """The sizes of the pictures the PDF holds, each once."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return sorted({i.image.size for page in pages for i in page.images if i.image is not None})


def check(tmp_path: Path, courses: Path) -> Result:
    env = {
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_SEQUENCES_DIR": str(courses),
        "DRIP_SECRET_KEY": "k",
        "DRIP_BASE_URL": "http://drip.test",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'drip.sqlite3'}",
    }
    return CliRunner().invoke(cli, ["check"], env=env, catch_exceptions=False)


def test_a_magnet_pdf_embeds_no_server_file_and_fetches_nothing_from_the_network(
    tmp_path: Path, courses: Path, loopback: Loopback
) -> None:
    secret = tmp_path / "secret_key"
    (courses / "tiny" / "notes.txt").symlink_to(secret)  # a link out of the folder
    write_magnet(
        courses,
        f'<a rel="attachment" href="file://{secret}">key</a>\n'
        f'<link rel="attachment" href="{secret.as_uri()}">\n'
        '<a rel="attachment" href="notes.txt">notes</a>\n'
        f"[again]({secret.as_uri()}){{: rel=attachment }}\n\n"
        '<img src="file:///etc/passwd" alt="passwd">\n'
        f'<img src="{loopback.url}/pixel.png" alt="pixel">\n'
        f'<link rel="stylesheet" href="{loopback.url}/style.css">\n'
        f"<style>@import url({loopback.url}/import.css);</style>\n"
        f'<p style="background: url({loopback.url}/bg.png)">Styled.</p>\n',
    )
    settings = settings_for(tmp_path, courses)

    rebuilt = magnets.rebuild(settings, tiny(courses), force=True)  # A4 and Letter, as a save

    assert rebuilt.built == ("A4", "Letter")
    for size in rebuilt.built:
        pdf = magnets.common_path(settings, tiny(courses), size).read_bytes()
        reader = PdfReader(io.BytesIO(pdf))
        assert reader.attachments == {}
        assert "/EmbeddedFiles" not in str(reader.root_object.get("/Names", {}))
        annotations = [a.get_object() for page in reader.pages for a in page.get("/Annots") or []]
        assert not any(
            isinstance(a, DictionaryObject) and a.get("/Subtype") == "/FileAttachment"
            for a in annotations
        )
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        assert SECRET.decode() not in text and SECRET not in pdf
        assert "root:x:0:0" not in text
        assert images_of(pdf) == []
    assert loopback.requests == []


def test_the_course_folders_own_picture_and_a_data_url_print_but_a_link_out_does_not(
    tmp_path: Path, courses: Path
) -> None:
    (courses / "tiny" / "plan.png").write_bytes(picture((4, 2), "green"))
    (courses / "tiny" / "evil.png").symlink_to(tmp_path / "outside.png")
    inline = base64.b64encode(picture((6, 1), "black")).decode()
    write_magnet(
        courses,
        f'![Plan](plan.png)\n\n<img src="data:image/png;base64,{inline}" alt="Inline">\n\n'
        f'![Evil](evil.png)\n\n<img src="{(tmp_path / "outside.png").as_uri()}" alt="Out">\n',
    )

    pdf = magnets.typeset(tiny(courses), magnets.read_source(tiny(courses)))

    assert images_of(pdf) == [(4, 2), (6, 1)]  # not the 7×5 picture outside the folder


def test_drip_check_names_each_refused_reference_of_the_magnet_at_its_line(
    tmp_path: Path, courses: Path
) -> None:
    (courses / "tiny" / "plan.png").write_bytes(picture((4, 2), "green"))
    (courses / "tiny" / "evil.png").symlink_to(tmp_path / "outside.png")
    path = write_magnet(
        courses,
        "![Plan](plan.png)\n\n"  # line 6: allowed
        '<img src="file:///etc/passwd" alt="a">\n\n'  # line 8
        '<img src="http://127.0.0.1:8080/x.png" alt="b">\n\n'  # line 10
        "![Evil](evil.png)\n\n"  # line 12
        "![Up](../../outside.png)\n\n"  # line 14
        '<a rel="attachment" href="notes.txt">notes</a>\n',  # line 16
    )

    result = check(tmp_path, courses)

    assert result.exit_code == 1
    out = result.output
    assert f"{path}:8: picture file:///etc/passwd is not a file in the course folder tiny/" in out
    assert f"{path}:10: picture http://127.0.0.1:8080/x.png is fetched from the web" in out
    assert f"{path}:12: picture evil.png is not a file in the course folder tiny/" in out
    assert f"{path}:14: picture ../../outside.png is not a file in the course folder" in out
    assert f'{path}:16: rel="attachment" on <a> is not allowed in a lead magnet' in out
    assert f"{path}:6:" not in out  # the folder's own picture is fine


def test_a_lesson_picture_from_a_file_or_loopback_makes_drip_read_nothing_and_check_warns(
    tmp_path: Path, courses: Path, loopback: Loopback
) -> None:
    lesson = courses / "tiny" / "02-second.md"
    text = lesson.read_text(encoding="utf-8")
    secret = (tmp_path / "secret_key").as_uri()
    lesson.write_text(
        text + f'\n<img src="{secret}" alt="k">\n\n<img src="{loopback.url}/p.png" alt="p">\n',
        encoding="utf-8",
    )
    line = len(text.splitlines()) + 2

    result = check(tmp_path, courses)

    svc = build_services(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'r.sqlite3'}", sequences_dir=courses),
        password_hasher=CHEAP_HASHER,
    )
    sequence = tiny(courses)
    html = svc.renderer.lesson(sequence, sequence.lessons[1]).html
    assert SECRET.decode() not in html and loopback.requests == []
    assert f"{lesson}:{line}: warning: {secret} is a file on a computer" in result.output
    assert f"{lesson}:{line + 2}: warning: plain http link {loopback.url}/p.png" in result.output


def test_an_mjml_include_in_a_lesson_is_refused_at_its_line_and_reads_nothing(
    tmp_path: Path, courses: Path
) -> None:
    lesson = courses / "tiny" / "03-third.md"
    text = lesson.read_text(encoding="utf-8")
    lesson.write_text(
        text + f'\n<mj-include path="{tmp_path / "secret_key"}" type="html" />\n', encoding="utf-8"
    )

    result = check(tmp_path, courses)

    line = len(text.splitlines()) + 2
    assert result.exit_code == 1
    assert f"{lesson}:{line}: <mj-include> reads another file into the email" in result.output
    assert SECRET.decode() not in result.output


def test_a_magnet_file_or_lesson_that_links_out_of_the_course_folder_is_refused(
    tmp_path: Path, courses: Path
) -> None:
    folder = courses / "tiny"
    (tmp_path / "elsewhere.md").write_text("---\nsubject: Hi\ndelay: 1 day\n---\nHello.\n")
    (folder / "04-linked.md").symlink_to(tmp_path / "elsewhere.md")
    yaml = (folder / "sequence.yaml").read_text(encoding="utf-8")
    (folder / "sequence.yaml").write_text(yaml.replace("file: magnet.md", "file: ../../secret_key"))

    result = check(tmp_path, courses)

    assert result.exit_code == 1
    assert f"{folder / '04-linked.md'}:1: this lesson is a link to a file outside" in result.output
    assert (
        f"{folder / 'sequence.yaml'}:11: lead magnet file ../../secret_key is not in the course "
        "folder" in result.output
    )
    assert SECRET.decode() not in result.output


def test_the_studio_refuses_a_magnet_that_reaches_out_and_saves_one_with_its_own_picture(
    tmp_path: Path, courses: Path, loopback: Loopback
) -> None:
    (courses / "tiny" / "plan.png").write_bytes(picture((4, 2), "green"))
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}", sequences_dir=courses)
    svc = build_services(settings, password_hasher=CHEAP_HASHER)
    studio = Studio(svc.settings, svc.links)
    path = courses / "tiny" / "magnet.md"
    version = version_of(path.read_bytes())
    head = "---\ntitle: Tiny guide\n---\n## One section\n\n![Plan](plan.png)\n\n"

    refused = studio.save(
        path, head + f'<img src="{loopback.url}/x.png" alt="x">\n', version, "ed@x.org", NOW
    )

    assert isinstance(refused, Refused)
    assert [(p.path, p.line) for p in refused.errors] == [(path, 8)]
    assert "is fetched from the web" in refused.errors[0].message
    assert loopback.requests == []
    saved = studio.save(path, head + "Just text.\n", version, "ed@x.org", NOW)
    assert isinstance(saved, Saved), saved  # its own picture, checked in a scratch copy


def posix_locks(path: Path) -> list[str]:
    """This process's POSIX locks on `path`, from /proc/locks."""
    inode, pid = os.stat(path).st_ino, str(os.getpid())
    with open("/proc/locks", encoding="ascii") as table:
        rows = [row.split()[1:] for row in table]  # without the table's own numbering
    return [" ".join(row) for row in rows if row[3] == pid and row[4].endswith(f":{inode}")]


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads Linux's /proc/locks")
def test_a_database_beside_the_pictures_is_never_opened_so_its_sqlite_locks_hold(
    tmp_path: Path, courses: Path
) -> None:
    # Closing any descriptor of a file drops every POSIX lock this process holds on it,
    # SQLite's among them (sqlite.org/howtocorrupt.html, 2.2): a PDF that opened the
    # database would let another process checkpoint under a live connection.
    database = courses / "tiny" / "drip.sqlite3"
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("BEGIN")
        connection.execute("SELECT * FROM t").fetchall()  # a reader mid-request
        held = posix_locks(database)
        write_magnet(courses, '<img src="drip.sqlite3" alt="db">\n\n![Again](./drip.sqlite3)\n')

        magnets.typeset(tiny(courses), magnets.read_source(tiny(courses)))

        assert held and posix_locks(database) == held
    finally:
        connection.close()


def test_the_studio_neither_lists_nor_opens_a_lesson_or_magnet_that_links_out_of_the_folder(
    tmp_path: Path, courses: Path
) -> None:
    folder = courses / "tiny"
    (folder / "04-linked.md").symlink_to(tmp_path / "secret_key")
    (folder / "magnet.md").unlink()
    (folder / "magnet.md").symlink_to(tmp_path / "secret_key")
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}", sequences_dir=courses)
    svc = build_services(settings, password_hasher=CHEAP_HASHER)
    studio = Studio(svc.settings, svc.links)

    assert [item.key for item in lesson_files(folder)] == ["welcome", "second", "third"]
    assert studio.magnet_path("tiny") is None  # the editor's page answers 404


@pytest.mark.parametrize("slug", ["interview-questions", "usmle-insider-kit"])
def test_the_allow_list_keeps_everything_the_real_magnets_are_written_with(slug: str) -> None:
    sequence = load_sequences(TESTS.parent / "sequences").get(slug)
    assert sequence is not None and sequence.lead_magnet is not None

    cleaned = magnets.body_html(magnets.read_source(sequence).body)

    assert cleaned.removed == []
    assert ('id="' in cleaned.html and "<table>" in cleaned.html) or slug != "usmle-insider-kit"
    assert "<!-- schedule -->" in cleaned.html or slug != "usmle-insider-kit"


def test_raw_html_that_could_reach_out_is_cut_whatever_it_hides_in() -> None:
    cleaned = magnets.body_html(
        "<svg><image href='file:///etc/passwd'/><p>x</svg>**kept**\n\n"
        "<!--><link rel=attachment href=/etc/passwd>-->\n\n"
        '<object data="file:///etc/passwd"></object><iframe src="http://127.0.0.1/"></iframe>\n\n'
        '<a href="jav&#x61;script:alert(1)" onclick="x()">link</a> and after\n'
    )

    kept = " ".join(cleaned.html.split())
    assert kept == "<p><strong>kept</strong></p> <p><a>link</a> and after</p>"
    assert {removed.needle for removed in cleaned.removed} >= {"<svg", "<object", "<iframe", "x()"}


def test_the_usmle_kits_schedule_marker_and_table_survive_the_allow_list() -> None:
    sequence = load_sequences(TESTS.parent / "sequences").get("usmle-insider-kit")
    assert sequence is not None

    html = magnets.body_html(magnets.read_source(sequence).body).html

    assert "<!-- schedule -->" in html and "<table>" in html
