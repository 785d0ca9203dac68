"""The wheel as a user gets it: built from the sources, installed into a fresh virtualenv and
run from a folder that is not the checkout. Pages come with their stylesheets, emails with
their layout, and the lead magnet with its typesetting: all of it shipped in the wheel.

Tests reach no host but loopback: the build runs without isolation, on the test environment's
setuptools (a test dependency), and the fresh virtualenv does not download the dependencies:
it sees those of the test environment through a .pth file (which runs none of that
environment's own .pth files, so not its editable drip), and `pip check` shows that the
wheel's declared dependencies are met there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest

from tests.conftest import TESTS
from tests.jobs.test_processes import wait_for
from tests.smtp import free_port

REPO = TESTS.parent
# What the build reads. A clean copy: an in-tree build/ could carry files deleted since.
SOURCES = ("pyproject.toml", "README.md", "drip", "templates")
COURSE = "interview-questions"
STYLESHEET = re.compile(r'<link rel="stylesheet" href="([^"]+)">')
LINK = re.compile(r"http://127\.0\.0\.1:\d+(/(?:magnet|confirm)/[\w.~-]+)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtualenv holding the wheel, with the test environment's packages."""
    root = tmp_path_factory.mktemp("wheel")
    (root / "source").mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, root / "source" / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(REPO / name, root / "source" / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"  # offline: the build uses the test environment's setuptools

    def run(*command: str | Path) -> str:
        done = subprocess.run(
            [str(c) for c in command], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        root / "dist",
        root / "source",
    )
    (wheel,) = (root / "dist").glob("drip-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", root / "venv")
    python = root / "venv" / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    theirs = dict.fromkeys((sysconfig.get_path("purelib"), sysconfig.get_path("platlib")))
    (site / "test-dependencies.pth").write_text("".join(f"{path}\n" for path in theirs))
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-compile",
        wheel,
    )
    run(sys.executable, "-m", "pip", "--python", python, "check")
    return python.parent


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return answer.status, answer.headers.get_content_type(), answer.read()
    except HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


def answers(url: str) -> bool:
    try:
        return fetch(url)[0] == 200
    except OSError:
        return False


def read_eml(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None, f"no HTML part in {message['Subject']!r}"
    return str(part.get_content())


def test_every_package_under_drip_is_listed_for_the_wheel() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "drip").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "drip.templates" in listed


@pytest.mark.slow
def test_the_installed_wheel_serves_styled_pages_and_sends_its_emails_from_any_folder(
    installed: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"  # an author's folder: drip finds ./sequences by itself
    shutil.copytree(REPO / "sequences", site / "sequences")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": f"{installed}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp_path / "home"),
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_BASE_URL": base,
        "DRIP_POSTAL_ADDRESS": "1 Wheel Street, Testville",
        "DRIP_CHECK_EMAIL_DOMAIN": "false",
    }

    def drip(*args: str) -> str:
        done = subprocess.run(
            [str(installed / "drip"), *args],
            cwd=site,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"drip {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    where = subprocess.run(
        [str(installed / "python"), "-c", "import drip; print(drip.__file__)"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), where.stdout
    drip("init")
    drip("subscribe", "ada@example.org", COURSE, "--name", "Ada", "--confirmed")
    drip("subscribe", "bob@example.org", COURSE, "--name", "Bob")
    drip("dispatch")
    messages = {
        parseaddr(str(m["To"]))[1]: m
        for m in map(read_eml, (tmp_path / "data" / "outbox").glob("*.eml"))
    }
    assert sorted(messages) == ["ada@example.org", "bob@example.org"]
    welcome, confirm = messages["ada@example.org"], messages["bob@example.org"]
    assert welcome["Subject"] == "Your residency interview questions PDF is here"
    assert confirm["Subject"] == "Please confirm: Residency interview questions for IMGs"
    for message in (welcome, confirm):
        assert "1 Wheel Street, Testville" in html_of(message)  # the layout's footer
    magnet = LINK.search(html_of(welcome))
    confirm_link = LINK.search(html_of(confirm))
    assert magnet is not None and confirm_link is not None

    server = subprocess.Popen(
        [str(installed / "drip"), "serve", "--port", str(port)],
        cwd=site,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: answers(f"{base}/healthz"), 120), "drip serve did not answer"
        pages = {
            path: fetch(base + path)
            for path in (f"/subscribe/{COURSE}", "/admin/login", confirm_link[1])
        }
        sheets = {
            path: [
                fetch(base + urlsplit(sheet).path) for sheet in STYLESHEET.findall(body.decode())
            ]
            for path, (_, _, body) in pages.items()
        }
        pdf = fetch(base + magnet[1])
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=60)
    for path, (status, kind, _) in pages.items():
        assert (status, kind) == (200, "text/html"), (path, status, errors)
        assert sheets[path], f"{path} links no stylesheet"
        for sheet_status, sheet_kind, css in sheets[path]:
            assert (sheet_status, sheet_kind) == (200, "text/css") and css.strip(), path
    assert b"Residency interview questions for IMGs" in pages[f"/subscribe/{COURSE}"][2]
    assert pdf[:2] == (200, "application/pdf") and pdf[2].startswith(b"%PDF"), errors
