"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import stats


class TestMean(unittest.TestCase):
    def test_empty_list(self):
        self.assertIsNone(stats.mean([]))

    def test_empty_tuple(self):
        self.assertIsNone(stats.mean(()))

    def test_ints(self):
        self.assertEqual(stats.mean([1, 2, 3, 4]), 2.5)

    def test_one(self):
        self.assertEqual(stats.mean([7]), 7)

    def test_zeros_are_not_empty(self):
        self.assertEqual(stats.mean([0, 0]), 0)

    def test_spread_untouched(self):
        self.assertEqual(stats.spread([4, 1, 7]), 6)


if __name__ == "__main__":
    unittest.main()
