import unittest

from cart import Cart
from pricing import apply_discount, with_tax


class TestPricing(unittest.TestCase):
    def test_discount(self):
        self.assertAlmostEqual(apply_discount(200, 10), 180)
        self.assertAlmostEqual(apply_discount(80, 25), 60)

    def test_tax(self):
        self.assertEqual(with_tax(100), 120.0)


class TestCart(unittest.TestCase):
    def test_adding_the_same_sku_again_adds_to_its_quantity(self):
        c = Cart()
        c.add("A", 2.5, 2)
        c.add("A", 2.5, 3)
        self.assertEqual(c.lines, [["A", 2.5, 5]])

    def test_total_with_code(self):
        c = Cart()
        c.add("A", 10.0, 3)
        c.add("B", 5.0, 2)
        c.use_code("SPRING10")
        self.assertEqual(c.total(), 43.2)

    def test_total_without_code(self):
        c = Cart()
        c.add("A", 1.25, 4)
        self.assertEqual(c.total(), 6.0)

    def test_unknown_code(self):
        with self.assertRaises(ValueError):
            Cart().use_code("FREE")


if __name__ == "__main__":
    unittest.main()
