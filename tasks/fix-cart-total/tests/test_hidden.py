"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import cart
import money


class TestMoney(unittest.TestCase):
    def test_to_cents(self):
        self.assertEqual(money.to_cents("12.50"), 1250)

    def test_to_cents_small(self):
        self.assertEqual(money.to_cents("0.05"), 5)

    def test_to_text(self):
        self.assertEqual(money.to_text(305), "3.05")


class TestCheckout(unittest.TestCase):
    def test_total(self):
        self.assertEqual(cart.checkout(["1.05", "2.00"]), "3.05")

    def test_carry(self):
        self.assertEqual(cart.checkout(["0.50", "0.55"]), "1.05")

    def test_round_total(self):
        self.assertEqual(cart.checkout(["2.50", "2.50"]), "5.00")

    def test_empty(self):
        self.assertEqual(cart.checkout([]), "0.00")


if __name__ == "__main__":
    unittest.main()
