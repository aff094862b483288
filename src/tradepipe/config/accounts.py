"""The account tables (`[accounts.NAME]`): one per broker kind, each with its risk table and,
for paper, its instruments."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from tradepipe.config.fields import Port, Url, WsUrl
from tradepipe.config.messages import _fail, _shown
from tradepipe.config.settings import ClockTime, Positive, TimeZone, _Table
from tradepipe.core.instruments import ROOT, ContractSpec, overridden
from tradepipe.core.limits import AccountLimits, Amount


class InstrumentOverride(_Table):
    """What one contract of a futures root is worth on a paper account (SPEC §12); a key not
    given keeps the value of SPEC §12's table."""

    multiplier: Positive | None = None
    tick_size: Positive | None = None
    lot_size: Positive | None = None


def _amount(value: Any) -> Any:
    if isinstance(value, Amount):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _fail(f'must be an amount like 50000 or a share like "2%" (got {_shown(value)})')
    try:
        return Amount.parse(str(value))  # a TOML float goes through its shortest text, 2.5
    except ValueError as e:
        raise _fail(str(e)) from None


# A limit in the account's currency (50000) or a share of the day's starting equity ("2%").
AmountSetting = Annotated[Amount, BeforeValidator(_amount)]


class RiskConfig(_Table):
    """`[accounts.NAME.risk]` (SPEC §13): the account's limits, what a trip does, and when its
    trading day starts (daily loss, the daily summary of SPEC §14)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    max_order_value: AmountSetting = Amount(Decimal(100), is_percent=True)
    max_open_positions: Annotated[int, Field(ge=1)] | None = None
    max_gross_exposure: AmountSetting | None = None
    max_daily_loss: AmountSetting | None = None
    max_drawdown: AmountSetting | None = None
    max_orders_per_minute: Annotated[int, Field(ge=1)] = 60
    on_trip: Literal["reduce_only", "flatten"] = "reduce_only"
    day_starts_at: ClockTime = "00:00"
    timezone: TimeZone = "UTC"

    def limits(self) -> AccountLimits:
        return AccountLimits(
            max_order_value=self.max_order_value,
            max_open_positions=self.max_open_positions,
            max_gross_exposure=self.max_gross_exposure,
            max_daily_loss=self.max_daily_loss,
            max_drawdown=self.max_drawdown,
            max_orders_per_minute=self.max_orders_per_minute,
        )


class _Account(_Table):
    # Percent inputs above 100 (risk_percent, percent_of_equity, stop-loss and trail percents)
    # need margin: refused unless the account says it has it (SPEC §12).
    allow_leverage: bool = False
    # A continuous futures ticker (ES1!) trades the front contract until this many calendar
    # days before its expiry, then the next one (SPEC §15; TradersPost rolls 2 days before).
    roll_days_before_expiry: Annotated[int, Field(ge=0, le=60)] = 2
    risk: RiskConfig = Field(default_factory=RiskConfig)


class PaperAccount(_Account):
    broker: Literal["paper"] = "paper"
    cash: Positive = Decimal(100000)
    native_brackets: bool = True
    instruments: dict[str, InstrumentOverride] = Field(default_factory=dict)

    @field_validator("instruments", mode="before")
    @classmethod
    def _roots(cls, tables: Any) -> Any:
        # Environment overrides arrive lower-cased: a root is one spelling, upper case.
        if not isinstance(tables, dict):
            return tables
        roots: dict[str, Any] = {}
        for key, table in tables.items():
            root = str(key).upper()
            if not ROOT.fullmatch(root):
                raise _fail(
                    f'"{key}" is not a futures root: 1-6 letters and digits starting with a'
                    ' letter, as in ESZ2026 (root "ES")'
                )
            if root in roots:
                raise _fail(f'the root "{root}" is given twice')
            roots[root] = table
        return roots

    @field_validator("instruments")
    @classmethod
    def _complete(cls, tables: dict[str, InstrumentOverride]) -> dict[str, InstrumentOverride]:
        for root, table in tables.items():
            spec = overridden(root, table.multiplier, table.tick_size, table.lot_size)
            if isinstance(spec, str):
                raise _fail(spec)
        return tables

    def contract_specs(self) -> dict[str, ContractSpec]:
        """The configured roots' contracts, each completed from SPEC §12's table."""
        specs = {}
        for root, table in self.instruments.items():
            spec = overridden(root, table.multiplier, table.tick_size, table.lot_size)
            assert not isinstance(spec, str)  # checked when the file was read
            specs[root] = spec
        return specs


class AlpacaAccount(_Account):
    broker: Literal["alpaca"] = "alpaca"
    paper: bool = True
    base_url: Url | None = None
    stream_url: WsUrl | None = None
    data_url: Url | None = None
    timeout: Positive = Decimal(10)


class IbkrAccount(_Account):
    broker: Literal["ibkr"] = "ibkr"
    host: str = Field(default="127.0.0.1", min_length=1)
    port: Port = 4002
    client_id: int = Field(default=1)
    account: str | None = Field(default=None, min_length=1)
    timeout: Positive = Decimal(10)

    @field_validator("client_id")
    @classmethod
    def _not_tws_own(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"must be 1 or more (got {value}): client id 0 is TWS's own, and with it IB"
                " hands tradepipe the orders typed into TWS by hand as if they were its own"
            )
        return value


class CcxtAccount(_Account):
    broker: Literal["ccxt"] = "ccxt"
    exchange: str = Field(pattern=r"^[a-z0-9_]+$")
    sandbox: bool = True
    market_type: Literal["spot", "swap"] = "spot"
    base_url: Url | None = None
    timeout: Positive = Decimal(10)


Account = Annotated[
    PaperAccount | AlpacaAccount | IbkrAccount | CcxtAccount, Field(discriminator="broker")
]
