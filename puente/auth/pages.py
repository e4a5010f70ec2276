"""The sign-in pages people see: server-rendered, in their language, escaped, unframeable.

One Jinja2 environment per locale with `jinja2.ext.i18n` installed over the Babel catalog;
`_("signin.title", app=...)` fills `{name}` placeholders like every other message.
Autoescape is on for everything, translations included.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.responses import HTMLResponse

from translation.i18n import SUPPORTED, bcp47, gettext, translations

TEMPLATES = Path(__file__).parent / "templates"

# Inline, so that the page needs no other request; allowed by its hash in the CSP below,
# which otherwise forbids every style, script, image and frame.
STYLE = (
    "*{box-sizing:border-box}"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "background:#f4f6f8;color:#1b2733}"
    "main{max-width:26rem;margin:3rem auto;padding:2rem;background:#fff;"
    "border-radius:.5rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.5rem;margin:0 0 .5rem}"
    "label{display:block;font-weight:600;margin-top:1rem}"
    "input{width:100%;padding:.6rem;margin-top:.25rem;font:inherit;"
    "border:1px solid #8a97a5;border-radius:.25rem}"
    "input:focus,button:focus,a:focus{outline:3px solid #1565c0;outline-offset:2px}"
    "button{margin-top:1.5rem;width:100%;padding:.7rem;font:inherit;font-weight:600;"
    "color:#fff;background:#0d47a1;border:0;border-radius:.25rem;cursor:pointer}"
    ".error{padding:.75rem;background:#fdecea;color:#8a1c12;border-left:4px solid #c62828}"
    "footer{margin-top:1.5rem;font-size:.875rem;color:#4a5866}"
    "footer a{color:#0d47a1}"
)
STYLE_SOURCE = "'sha256-{}'".format(
    base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
)
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


@lru_cache(maxsize=len(SUPPORTED))
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )

    def _gettext(key: str, **params: Any) -> str:
        return gettext(locale, key, **params)

    catalog = translations(locale)
    # newstyle=False: the callables get the parameters themselves and fill `{name}`
    # placeholders, as the rest of Puente does; the result is still escaped on output.
    cast(Any, env).install_gettext_callables(_gettext, catalog.ngettext, newstyle=False)
    return env


def other_locale(locale: str) -> str:
    return next(candidate for candidate in SUPPORTED if candidate != locale)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if _ORIGIN.match(origin) else None


def security_headers(*, form_target: str | None = None) -> dict[str, str]:
    """A strict CSP and no framing (clickjacking), no caching, no referrer (the URL carries
    the authorization request). `form-action` must also allow the app's redirect_uri:
    browsers apply it to the redirect that follows the form post."""
    targets = "'none'"
    if form_target is not None:
        targets = " ".join(filter(None, ["'self'", _origin(form_target)]))
    policy = (
        f"default-src 'none'; style-src {STYLE_SOURCE}; form-action {targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def render(
    locale: str,
    template: str,
    *,
    status_code: int,
    form_target: str | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = (
        environment(locale)
        .get_template(template)
        .render(lang=bcp47(locale), style=Markup(STYLE), **context)  # noqa: S704 - a constant
    )
    all_headers = {
        **security_headers(form_target=form_target),
        "Content-Language": bcp47(locale),
        **(headers or {}),
    }
    return HTMLResponse(html, status_code=status_code, headers=all_headers)


def signin_page(
    locale: str,
    *,
    app_name: str,
    params: list[tuple[str, str]],
    redirect_uri: str,
    status_code: int = 200,
    email: str = "",
    error_key: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The sign-in form; `params` (the authorization request) travel in hidden fields, so
    the form needs no server-side session and no cookie to forge a request against."""
    other = other_locale(locale)
    return render(
        locale,
        "signin.html",
        status_code=status_code,
        form_target=redirect_uri,
        headers=headers,
        app_name=app_name,
        hidden=[*params, ("ui_locales", bcp47(locale))],
        email=email,
        error_key=error_key,
        other_lang=bcp47(other),
        other_url="authorize?" + urlencode([*params, ("ui_locales", bcp47(other))]),
    )


def error_page(locale: str, message_key: str, *, status_code: int = 400) -> HTMLResponse:
    return render(locale, "error.html", status_code=status_code, message_key=message_key)
