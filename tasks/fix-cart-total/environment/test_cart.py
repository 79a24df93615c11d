import unittest

import cart
import money


class TestCart(unittest.TestCase):
    def test_to_text(self):
        self.assertEqual(money.to_text(1250), "12.50")

    def test_checkout(self):
        self.assertEqual(cart.checkout(["1.05", "2.00"]), "3.05")


if __name__ == "__main__":
    unittest.main()
