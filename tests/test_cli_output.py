"""What the CLI prints is data shown, never data obeyed: rich markup and terminal control
characters in journal rows, payloads and broker answers are printed as visible text."""

from __future__ import annotations

import json
import sqlite3

import pytest
from rich.console import Console
from rich.text import Text

from tests.helpers import tradepipe, write_config
from tradepipe.cli.render import cell, markup, printable

# Markup that would raise MarkupError ("[/]" closes nothing), a style that would swallow text,
# an ESC sequence that would recolour the terminal, a newline that would split a table row and
# an RTL override that would reverse what follows it.
HOSTILE = "[/]x[bold]y\x1b[31mred\nline\u202eevil"
WIDE = {"COLUMNS": "400"}  # no cell cut to an ellipsis


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain AAPL", "plain AAPL"),
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
        ("abc\u202eevil\u2066x\u2028", "abc\\u202eevil\\u2066x\\u2028"),
        ("BTC/USD ünï 株", "BTC/USD ünï 株"),
        (None, ""),
        (12.5, "12.5"),
    ],
)
def test_printable_shows_every_control_character_as_an_escape(value, shown):
    assert printable(value) == shown


def test_markup_escapes_the_arguments_and_keeps_the_template():
    line = markup("[bold]{}[/] → {:,.2f}", "[/][red]x", 1234.5)
    assert Text.from_markup(line).plain == "[/][red]x → 1,234.50"
    assert [span.style for span in Text.from_markup(line).spans] == ["bold"]
    assert cell(HOSTILE).plain == printable(HOSTILE) and not cell(HOSTILE).spans


def _journal_with_one_trade(tmp_path):
    config = write_config(tmp_path)
    buy = {"ticker": "AAPL", "action": "buy", "quantity": 2, "signalPrice": 10}
    tradepipe(config, "send", json.dumps(buy))
    return config, tmp_path / "journal.db"


def _rewrite(journal, *statements):
    db = sqlite3.connect(journal)
    with db:
        for sql in statements:
            db.execute(sql, (HOSTILE,))
    db.close()


def _assert_shown_as_text(result):
    assert result.returncode == 0, result.stderr
    assert "MarkupError" not in result.stderr and "Traceback" not in result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    # Rich may wrap a long cell, so compare without the table's layout.
    flat = "".join(result.stdout.split())
    assert "".join(printable(HOSTILE).split()) in flat, result.stdout


def test_every_listing_shows_markup_and_control_characters_in_journal_rows_as_text(tmp_path):
    config, journal = _journal_with_one_trade(tmp_path)
    _rewrite(
        journal,
        "UPDATE signals SET strategy = ?",
        "UPDATE orders SET ticker = ?",
        "UPDATE fills SET ticker = ?",
        "UPDATE positions SET ticker = ?",
        "UPDATE deliveries SET reason = ?",
    )
    for command in (["signals"], ["orders"], ["trades"], ["positions"], ["signals", "show", "1"]):
        _assert_shown_as_text(tradepipe(config, *command, check=False, env=WIDE))


def test_signals_show_prints_a_broker_message_and_the_body_as_text(tmp_path):
    config, journal = _journal_with_one_trade(tmp_path)
    _rewrite(
        journal,
        "UPDATE orders SET broker_message = ?",
        "UPDATE signals SET body = ?",
    )
    _assert_shown_as_text(tradepipe(config, "signals", "show", "1", check=False, env=WIDE))


def test_unknown_fields_and_rejections_with_markup_print_as_text(tmp_path):
    # Data that passes any ticker rule: a field name and an action, echoed in warnings and errors.
    config = write_config(tmp_path)
    body = json.dumps(
        {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 5, "[bold]qty": 1}
    )
    sent = tradepipe(config, "send", body, check=False)
    assert sent.returncode == 0 and "[bold]qty" in sent.stdout, sent.stderr
    shown = tradepipe(config, "signals", "show", "1", check=False)
    assert shown.returncode == 0 and "[bold]qty" in shown.stdout, shown.stderr

    bad_action = json.dumps({"ticker": "AAPL", "action": "[/]"})
    rejected = tradepipe(config, "send", bad_action, check=False)
    assert rejected.returncode == 1 and "MarkupError" not in rejected.stderr
    assert "[/]" in rejected.stdout
    listed = tradepipe(config, "signals", check=False)
    assert listed.returncode == 0 and "[/]" in listed.stdout, listed.stderr
    shown = tradepipe(config, "signals", "show", "2", check=False)
    assert shown.returncode == 0 and "[/]" in shown.stdout, shown.stderr


def test_flatten_reports_every_position_whatever_its_ticker_holds(tmp_path):
    config, journal = _journal_with_one_trade(tmp_path)
    _rewrite(journal, "UPDATE paper_positions SET ticker = ?", "UPDATE positions SET ticker = ?")
    result = tradepipe(config, "flatten", "--yes", check=False)
    assert result.returncode == 0, result.stderr
    assert "MarkupError" not in result.stderr and "\x1b" not in result.stdout
    assert "[/]X[BOLD]Y" in result.stdout.upper()  # the account spells tickers upper-case


def test_a_stream_reason_from_the_broker_is_shown_as_text():
    # the reason and the polling error are exception text from a websocket or a broker
    from tradepipe.cli.render_health import stream_line

    stream = {
        "up": False,
        "since": None,
        "poll_interval": 2.0,
        "reason": "refused \x1b[31m[bold]red\n",
        "poll_error": "[/]\u202e",
    }
    console = Console(record=True, width=200, color_system=None)
    console.print(stream_line(stream))
    shown = console.export_text()
    assert "\x1b" not in shown and "\u202e" not in shown and shown.count("\n") == 1
    assert "[bold]red" in shown and "[/]" in shown
