"""A shopping cart: lines of (sku, unit price, quantity) and a discount code."""

from pricing import apply_discount, line_total, with_tax

CODES = {"SPRING10": 10, "VIP25": 25}


class Cart:
    def __init__(self):
        self.lines = []
        self.code = None

    def add(self, sku, unit_price, qty=1):
        for line in self.lines:
            if line[0] == sku:
                line[2] = qty
                return
        self.lines.append([sku, unit_price, qty])

    def use_code(self, code):
        if code not in CODES:
            raise ValueError(f"unknown code {code}")
        self.code = code

    def subtotal(self):
        return sum(line_total(price, qty) for _, price, qty in self.lines)

    def total(self):
        amount = self.subtotal()
        if self.code:
            amount = apply_discount(amount, CODES[self.code])
        return with_tax(amount)
