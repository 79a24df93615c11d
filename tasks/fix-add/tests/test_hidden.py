"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import calc


class TestAdd(unittest.TestCase):
    def test_small(self):
        self.assertEqual(calc.add(2, 3), 5)

    def test_negative(self):
        self.assertEqual(calc.add(-4, 1), -3)

    def test_zero(self):
        self.assertEqual(calc.add(0, 0), 0)

    def test_float(self):
        self.assertAlmostEqual(calc.add(0.5, 0.25), 0.75)

    def test_mul_untouched(self):
        self.assertEqual(calc.mul(3, 4), 12)


if __name__ == "__main__":
    unittest.main()
