"""The validated value types of the config file: names, URLs, networks, ports."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
)

from tradepipe.config.messages import _fail

# No leading, trailing or doubled separators: then the credential variable derived from an
# account name (`TRADEPIPE_<NAME>_KEY`) never contains "__" and cannot be read as a config key.
_NAME = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")


def _check_name(name: str) -> str:
    if len(name) > 40 or not _NAME.fullmatch(name):
        raise _fail(
            f'name "{name}" must be 1-40 letters and digits, with single "-" or "_" between them'
        )
    return name


def _check_url(url: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise _fail(f'"{url}" must be an http:// or https:// URL')
    return url.rstrip("/")


def _check_ws_url(url: str) -> str:
    if not re.fullmatch(r"wss?://[^\s/]+(/\S*)?", url):
        raise _fail(f'"{url}" must be a ws:// or wss:// URL')
    return url.rstrip("/")


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _fail(f'"{value}" is not an IP address or CIDR network') from None
        raise _fail(f'"{value}" has host bits set (did you mean "{network}"?)') from None
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Url = Annotated[str, AfterValidator(_check_url)]
WsUrl = Annotated[str, AfterValidator(_check_ws_url)]
Network = Annotated[str, AfterValidator(_check_network)]
Port = Annotated[int, Field(ge=1, le=65535)]
