"""Log lines a collector can parse: logfmt on stderr, one line per event.

`time=... level=info logger=drip.jobs.worker msg="dispatch pass" sent=3 retrying=1`: fields come
from `extra={"fields": {...}}`; an exception's traceback is one escaped `error=` field, so
a multi-line traceback never splits an event over several lines.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_BARE = re.compile(r"[^\s\"=\\]+")


def _value(value: Any) -> str:
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}))
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


def configure_logging(level: int = logging.INFO) -> None:
    """drip's own loggers to stderr in logfmt (`drip serve`, `drip worker`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # other libraries: warnings and errors only
    logging.getLogger("drip").setLevel(level)
