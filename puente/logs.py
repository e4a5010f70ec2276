"""JSON logs, one object a line. Lines carry route templates, never query strings or bodies
(names and CURPs travel in search parameters)."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from collections.abc import Mapping
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# Celery logs a task's arguments, return value, exception text and traceback, both in the
# message (`%(return_value)s`) and as `data`: what a task was given may name a patient, and
# an exception's text may quote it (as uvicorn's do; only their type is kept, below).
_HIDDEN = frozenset({"args", "kwargs", "return_value", "exc", "traceback"})


def _hide(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: "[hidden]" if key in _HIDDEN else value for key, value in mapping.items()}


def _message(record: logging.LogRecord) -> str:
    if isinstance(record.args, Mapping) and _HIDDEN & record.args.keys():
        return str(record.msg) % _hide(record.args)
    return record.getMessage()


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _message(record),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = _hide(value) if isinstance(value, Mapping) else value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where it was raised; its text may quote patient data.
            payload["exception"] = record.exc_info[0].__name__
            tb = record.exc_info[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                payload["at"] = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        return json.dumps(payload, default=str, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's access log prints the raw request line, query string included:
            # Puente writes its own access line (puente.access) instead.
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            "uvicorn.error": {"level": level},
            "uvicorn": {"handlers": ["stderr"], "propagate": False, "level": level},
            # With no broker, every request runs the audit sealer in-process: a "task
            # succeeded" line per request is noise; failures still log as errors.
            "celery.app.trace": {"level": "WARNING"},
        },
    }


def configure(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
    # Python warnings would otherwise print plain text to stderr, between JSON lines.
    logging.captureWarnings(True)
