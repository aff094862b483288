"""`[[notify]]` targets (SPEC §14): an Apprise URL each and the kinds of event it is sent.

The URL is a secret (a bot token, a webhook key, a password): it is never echoed in an error,
a log line or a status; `label` is how a target is named instead (its index and what Apprise
shows of it with the secrets masked).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field, field_validator

from tradepipe.config.messages import _fail
from tradepipe.config.settings import _Table
from tradepipe.core.notify import DEFAULT_KINDS, NotifyKind

_CHOOSABLE = [k.value for k in NotifyKind if k is not NotifyKind.TEST]


def apprise_service(url: str) -> Any:
    """The Apprise service of a URL, or None when Apprise cannot read it. Imported here, not at
    the top: a config without `[[notify]]` never pays for Apprise."""
    import apprise

    return apprise.Apprise.instantiate(url)


def masked_url(url: str) -> str:
    """What a person may see of a target's URL: the scheme and the first part of Apprise's
    privacy form (`tgram://1...p`, `json://127.0.0.1:9000`); never a path or query, which
    may carry a token Apprise does not know to mask (a JSON webhook's path)."""
    scheme = url.split("://", 1)[0]
    service = apprise_service(url)
    if service is None:
        return f"{scheme}://…"
    shown = str(service.url(privacy=True)).split("://", 1)[-1]
    return f"{scheme}://{shown.split('/', 1)[0].split('?', 1)[0]}"


class NotifyTarget(_Table):
    # repr=False: a logged or printed config must not reveal the secrets.
    url: str = Field(repr=False, min_length=1)
    events: list[str] = Field(default_factory=lambda: sorted(str(k) for k in DEFAULT_KINDS))

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        scheme = url.split("://", 1)[0] if "://" in url else None
        if scheme is None:
            raise _fail('must be an Apprise URL such as "tgram://BOT_TOKEN/CHAT_ID"')
        if apprise_service(url) is None:
            # The scheme only: the rest is the secret.
            raise _fail(
                f'Apprise cannot use this "{scheme}://" URL (unknown service, or a part it'
                " needs is missing: see https://github.com/caronc/apprise/wiki)"
            )
        return url

    @field_validator("events")
    @classmethod
    def _check_events(cls, events: list[str]) -> list[str]:
        unknown = [e for e in events if e not in _CHOOSABLE]
        if unknown:
            raise _fail(f'unknown event kind "{unknown[0]}" (valid: {", ".join(_CHOOSABLE)})')
        return events

    @property
    def kinds(self) -> frozenset[NotifyKind]:
        return frozenset(NotifyKind(e) for e in self.events) | {NotifyKind.TEST}

    @property
    def key(self) -> str:
        """The target's name in the journal's outbox: a digest of its URL, never the URL."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]
