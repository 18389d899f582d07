"""Prices, discounts and tax for the shop."""

TAX_RATE = 0.2


def line_total(unit_price, qty):
    return unit_price * qty


def apply_discount(amount, percent):
    """`amount` reduced by `percent` per cent."""
    return amount * percent / 100


def with_tax(amount):
    return round(amount * (1 + TAX_RATE), 2)
