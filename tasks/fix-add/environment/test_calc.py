import unittest

import calc


class TestCalc(unittest.TestCase):
    def test_mul(self):
        self.assertEqual(calc.mul(3, 4), 12)

    def test_add(self):
        self.assertEqual(calc.add(2, 3), 5)


if __name__ == "__main__":
    unittest.main()
